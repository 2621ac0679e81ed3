//! `sweep-pending`, the outbox relay (SPEC §5), run every minute by EventBridge. It
//! re-sends the queue message of every stored row that has none alive:
//! - rows whose send failed at ingest, or whose ingest died between the commit and the
//!   send (no message was ever sent);
//! - rows whose message died: dead-lettered after too many receives, expired, or lost
//!   with a consumer — recognised by having shown no sign of life (send, claim, finish
//!   or due time) for longer than any live message could stay hidden.
//!
//! A row whose message is merely waiting behind an older row of the same person (FIFO)
//! is not sent twice: only the oldest unfinished row of a person is judged by age.
//! Rows are sent oldest first, so each person's order is kept.
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::time::Instant;

use crate::adapters::event_store;
use crate::adapters::queue::EventQueue;
use crate::domain::EventKind;
use crate::lambda::config::queue_setting;
use crate::lambda::{ConfigError, Settings};
use crate::pipeline::consumer::CLAIM_LEASE;

/// Default age after which a row's message is presumed dead: longer than the queue's
/// visibility timeout (360 s, the longest a live message stays hidden after a consumer
/// died) plus the back-off ceiling's slack.
pub const DEFAULT_STALE: Duration = Duration::from_secs(15 * 60);
/// Rows chosen per statement.
const BATCH: i64 = 100;

pub struct Relay {
    pub pool: Pool,
    pub queues: Vec<(EventKind, EventQueue)>,
    /// `RELAY_STALE_SECONDS`.
    pub stale: Duration,
    /// The run stops choosing new rows after this long (`RELAY_BUDGET_SECONDS`; the
    /// function's timeout is 60 s).
    pub budget: Duration,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct KindReport {
    pub kind: &'static str,
    pub resent: usize,
    pub send_failures: usize,
    /// Unfinished rows (pending, error, processing).
    pub backlog: i64,
    /// Rows waiting for an attempt (pending, error).
    pub pending: i64,
}

impl Relay {
    /// The relay of every inbox whose queue URL is configured.
    pub async fn from_settings(s: &Settings, kinds: &[EventKind]) -> Result<Self, ConfigError> {
        let mut queues = Vec::new();
        for kind in kinds {
            if s.get(queue_setting(*kind)).is_some() {
                queues.push((*kind, s.queue(queue_setting(*kind)).await?));
            }
        }
        Ok(Relay {
            pool: s.pool()?,
            queues,
            stale: Duration::from_secs(s.parse_or("RELAY_STALE_SECONDS", DEFAULT_STALE.as_secs())?),
            budget: Duration::from_secs(s.parse_or("RELAY_BUDGET_SECONDS", 40u64)?),
        })
    }

    pub async fn run_once(&self) -> Vec<KindReport> {
        let deadline = Instant::now() + self.budget;
        let mut reports = Vec::new();
        for (kind, queue) in &self.queues {
            reports.push(Box::pin(self.relay_kind(*kind, queue, deadline, self.stale, None)).await);
        }
        reports
    }

    /// `jobs-enqueue-pending`: send a message now for up to `limit` due rows of `kind`
    /// at the head of their person's line, however recently they were sent (an
    /// operator's push; the consumer ignores a message whose row is already finished).
    /// `None` when this relay has no queue for `kind`.
    pub async fn enqueue_due(&self, kind: EventKind, limit: usize) -> Option<KindReport> {
        let (_, queue) = self.queues.iter().find(|(k, _)| *k == kind)?;
        let deadline = Instant::now() + self.budget;
        Some(Box::pin(self.relay_kind(kind, queue, deadline, Duration::ZERO, Some(limit))).await)
    }

    async fn relay_kind(
        &self,
        kind: EventKind,
        queue: &EventQueue,
        deadline: Instant,
        stale: Duration,
        limit: Option<usize>,
    ) -> KindReport {
        let mut report = KindReport {
            kind: kind.as_str(),
            ..Default::default()
        };
        while Instant::now() < deadline {
            let room = limit.map_or(BATCH, |l| {
                (l.saturating_sub(report.resent) as i64).min(BATCH)
            });
            if room == 0 {
                break;
            }
            let chosen = match event_store::take_resends(
                &self.pool,
                kind,
                stale,
                CLAIM_LEASE,
                room,
                limit.is_some(),
            )
            .await
            {
                Ok(chosen) => chosen,
                Err(e) => {
                    tracing::error!(kind = kind.as_str(), error = %e, "relay could not read the inbox");
                    break;
                }
            };
            let full = chosen.len() as i64 == room;
            for (i, row) in chosen.iter().enumerate() {
                if let Err(e) = queue.send(row.id, kind, &row.person_key, row.seq).await {
                    // Stop here: sending later rows now could overtake this one.
                    tracing::warn!(kind = kind.as_str(), error = %e, "relay send failed; the rest waits for the next run");
                    let unsent: Vec<_> = chosen[i..].iter().map(|r| r.id).collect();
                    report.send_failures += unsent.len();
                    if let Err(e) = event_store::unmark_resends(&self.pool, kind, &unsent).await {
                        tracing::warn!(error = %e, "could not unmark unsent rows; they go stale instead");
                    }
                    return self.finish(report, kind).await;
                }
                tracing::info!(kind = kind.as_str(), event_id = %row.id, seq = row.seq, "relayed");
                report.resent += 1;
            }
            if !full {
                break;
            }
        }
        self.finish(report, kind).await
    }

    async fn finish(&self, mut report: KindReport, kind: EventKind) -> KindReport {
        report.backlog = event_store::backlog(&self.pool, kind)
            .await
            .map(|(n, _)| n)
            .unwrap_or(-1);
        report.pending = event_store::pending_count(&self.pool, kind)
            .await
            .unwrap_or(-1);
        tracing::info!(
            kind = report.kind,
            resent = report.resent,
            send_failures = report.send_failures,
            backlog = report.backlog,
            "relay run"
        );
        report
    }
}
