//! The consumer's vocabulary (SPEC §5): how an attempt ended ([`Outcome`]) and how it
//! failed ([`SyncError`], whose [`FailureClass`] decides retry, refund or give up). Every
//! router speaks it; the consumer turns it into the row's next state.
use std::time::Duration;

use serde_json::Value;

use crate::adapters::db::DbError;
use crate::domain::retry::FailureClass;
use crate::providers::ProviderError;

/// How a sync ended, when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    Done {
        direction: &'static str,
        source_id: Option<String>,
        target_id: Option<String>,
        decisions: Value,
    },
    /// Nothing to do (an echo, no change, no rule).
    Skipped(String),
    /// Not applied: a newer event of the same entity already was (high-water mark).
    Stale(String),
    /// Not yet: try again after `retry_in` without spending an attempt (a broadcast's
    /// settle interval, or another consumer computing the same broadcast).
    Deferred { retry_in: Duration, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] DbError),
    #[error("invalid event: {0}")]
    Invalid(String),
    /// Not yet possible (a related event has not been applied yet): retry later, after
    /// the events queued behind this one (it steps aside; the relay re-queues it).
    #[error("waiting: {0}")]
    Waiting(String),
    /// Not yet, and through no fault of the event (GHL's search has not caught up with
    /// an earlier attempt's write, another event is creating the same contact): tried
    /// again after `after`, in its place, without spending an attempt.
    #[error("not yet: {reason}")]
    Later { after: Duration, reason: String },
    /// The attempt ran out of the function's time.
    #[error("did not finish before the function's deadline")]
    Deadline,
}

impl SyncError {
    pub fn class(&self) -> FailureClass {
        match self {
            SyncError::Provider(e) => e.class(),
            SyncError::Store(DbError::Unavailable(_)) => FailureClass::Unavailable {
                after: Duration::from_secs(5),
            },
            SyncError::Store(e) if e.retryable() => FailureClass::Retryable { at_least: None },
            SyncError::Store(_) | SyncError::Invalid(_) => FailureClass::Final,
            SyncError::Later { after, .. } => FailureClass::Throttled { after: *after },
            SyncError::Waiting(_) | SyncError::Deadline => {
                FailureClass::Retryable { at_least: None }
            }
        }
    }

    /// Whether the event should let the events behind it in its FIFO group go first.
    pub fn steps_aside(&self) -> bool {
        matches!(self, SyncError::Waiting(_))
    }
}
