//! The SQS consumer of every inbox (SPEC §5), parameterised by event kind and router.
//!
//! For each record: claim the row (counting the attempt), skip it when a newer event
//! of the same entity was already applied, route it, and finish it as `done`,
//! `skipped`, `error` (retryable: due again after a back-off) or `failed` (final). The
//! row owns the retry budget; the queue only carries pointers:
//! - a failed record stays on the queue, hidden until its row is due again, so the
//!   rest of its person's events wait behind it (FIFO);
//! - once a record of a message group fails, every later record of that group in the
//!   batch is reported failed too, made visible again at once, and spends no attempt;
//!   records of other groups proceed;
//! - a claim that fails because the database is down spends no attempt either;
//! - records that cannot start before the function's deadline are handed back.
//!
//! The queue's `maxReceiveCount` (50) is only a poison-message net far above the row's
//! budget (10 attempts); the relay re-sends any row whose message died.
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use deadpool_postgres::Pool;
use serde_json::json;
use tokio::time::Instant;

use super::outcome::{Outcome, SyncError};
use crate::adapters::event_store::{self, EventRow, Finish, SyncLog, Unclaimed};
use crate::adapters::queue::{EventQueue, QueueMessage};
use crate::domain::retry::{FailureClass, RetryPolicy, Verdict, MAX_ATTEMPTS};
use crate::domain::EventKind;
use crate::lambda::{ConfigError, Settings};

/// A `processing` claim older than this belongs to a consumer that died. It must
/// exceed the consumer's function timeout (60 s, template.yaml) and stay below the
/// queue's visibility timeout (360 s), so a redelivery after a crash can take it over.
pub const CLAIM_LEASE: Duration = Duration::from_secs(300);
/// Time kept back from the deadline to record an outcome.
const FINISH_RESERVE: Duration = Duration::from_secs(3);
/// A claim or a finish that takes longer is abandoned and its connection discarded
/// (`db::Held`): a database that hangs must not run the invocation into its timeout.
const BOOKKEEPING_BUDGET: Duration = Duration::from_secs(10);

/// Claim the row on a connection that is discarded if the claim overruns its budget.
async fn bounded_claim(
    pool: &Pool,
    kind: EventKind,
    id: uuid::Uuid,
    seq: Option<i32>,
) -> Result<Result<EventRow, Unclaimed>, crate::adapters::db::DbError> {
    let held = crate::adapters::db::hold(pool, BOOKKEEPING_BUDGET).await?;
    let claim = event_store::claim_on(held.client(), kind, id, CLAIM_LEASE, seq);
    let outcome = tokio::time::timeout(held.left(), claim).await;
    held.settle(outcome)
}

/// Record an attempt's outcome, likewise bounded.
async fn bounded_finish(
    pool: &Pool,
    event: &EventRow,
    how: &Finish,
    log: &SyncLog<'_>,
) -> Result<bool, crate::adapters::db::DbError> {
    let held = crate::adapters::db::hold(pool, BOOKKEEPING_BUDGET).await?;
    let finish = event_store::finish_on(held.client(), event, how, log);
    let outcome = tokio::time::timeout(held.left(), finish).await;
    held.settle(outcome)
}

/// What turns a claimed event into an outcome.
pub trait Router: Send + Sync {
    fn route(&self, event: &EventRow) -> impl Future<Output = Result<Outcome, SyncError>> + Send;
}

/// Timing settings of a consumer.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Back-off of failed attempts (`RETRY_BASE_SECONDS`, `CREDENTIAL_RETRY_SECONDS`).
    pub retry: RetryPolicy,
    /// Delay before retrying a record whose claim failed (database down).
    pub store_retry: Duration,
    /// A record is started only while at least this much time remains.
    pub record_min_time: Duration,
    /// The function's timeout, for invocations that carry no deadline.
    pub function_timeout: Duration,
}

impl Timing {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Timing {
            retry: RetryPolicy {
                base: Duration::from_secs(s.parse_or("RETRY_BASE_SECONDS", 30u64)?),
                credential_delay: Duration::from_secs(s.parse_or(
                    "CREDENTIAL_RETRY_SECONDS",
                    crate::domain::retry::CREDENTIAL_RETRY_DELAY.as_secs(),
                )?),
            },
            store_retry: Duration::from_secs(s.parse_or("STORE_RETRY_SECONDS", 30u64)?),
            record_min_time: Duration::from_secs(s.parse_or("RECORD_MIN_SECONDS", 15u64)?),
            function_timeout: Duration::from_secs(s.parse_or("FUNCTION_TIMEOUT_SECONDS", 60u64)?),
        })
    }
}

pub struct Consumer<R> {
    pub kind: EventKind,
    pub pool: Pool,
    pub queue: EventQueue,
    pub router: R,
    pub timing: Timing,
}

fn failure(message_id: &str) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id.to_string();
    f
}

/// What `jobs-run-once` did.
#[derive(Debug, Default, Clone, serde::Serialize, PartialEq, Eq)]
pub struct RunReport {
    /// Rows attempted.
    pub processed: usize,
    /// Attempts that did not end `done` or `skipped` (and reads that failed).
    pub errors: usize,
    /// Stopped by its time budget with rows left to do.
    pub out_of_time: bool,
}

/// Why a record goes back to the queue, and when it should be seen again.
struct Requeue {
    after: Duration,
}

/// The deadline of an invocation: Lambda's, or now + the function timeout when the
/// invoker gave none (or an absurd one).
pub fn deadline_from_ms(deadline_ms: u64, function_timeout: Duration) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let remaining = deadline_ms.saturating_sub(now_ms);
    if remaining == 0 || remaining > function_timeout.as_millis() as u64 * 2 {
        Instant::now() + function_timeout
    } else {
        Instant::now() + Duration::from_millis(remaining)
    }
}

impl<R: Router> Consumer<R> {
    /// Handle one batch before `deadline`.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let mut failures = Vec::new();
        let mut blocked_groups: HashSet<String> = HashSet::new();
        let mut out_of_time = false;
        for record in &event.records {
            let Some(message_id) = record.message_id.as_deref() else {
                tracing::error!("SQS record without message id: cannot be reported");
                continue;
            };
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default();
            out_of_time |=
                deadline.saturating_duration_since(Instant::now()) < self.timing.record_min_time;
            let requeue = if out_of_time || blocked_groups.contains(&group) {
                // Not attempted: back on the queue at once, behind whatever blocks it.
                Some(Requeue {
                    after: Duration::ZERO,
                })
            } else {
                Box::pin(self.process(record, deadline)).await.err()
            };
            if let Some(requeue) = requeue {
                blocked_groups.insert(group);
                self.hide(record, requeue.after).await;
                failures.push(failure(message_id));
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    /// `jobs-run-once`: attempt up to `limit` due rows in this call, each through the
    /// same claim, attempt and finish as a queue record, never a person's younger row
    /// before its older one; stops when less than a record's minimum time is left.
    pub async fn run_due(&self, limit: usize, deadline: Instant) -> RunReport {
        let mut report = RunReport::default();
        let mut tried: HashSet<uuid::Uuid> = HashSet::new();
        while report.processed < limit {
            let heads = match event_store::due_heads(&self.pool, self.kind, limit as i64).await {
                Ok(heads) => heads,
                Err(e) => {
                    tracing::error!(error = %e, "run-once could not read the inbox");
                    report.errors += 1;
                    break;
                }
            };
            let fresh: Vec<uuid::Uuid> = heads.into_iter().filter(|id| tried.insert(*id)).collect();
            if fresh.is_empty() {
                break;
            }
            for id in fresh {
                // An attempt needs its minimum time plus the reserve for recording it.
                let needed = self.timing.record_min_time + FINISH_RESERVE;
                if report.processed >= limit
                    || deadline.saturating_duration_since(Instant::now()) < needed
                {
                    report.out_of_time = report.processed < limit;
                    return report;
                }
                let event = match bounded_claim(&self.pool, self.kind, id, None).await {
                    Ok(Ok(event)) => event,
                    Ok(Err(_)) => continue,
                    Err(e) => {
                        tracing::warn!(event_id = %id, error = %e, "run-once claim failed");
                        report.errors += 1;
                        continue;
                    }
                };
                report.processed += 1;
                let _ = Box::pin(self.attempt(&event, deadline)).await;
                match event_store::status(&self.pool, self.kind, id).await {
                    Ok(Some(s)) if s == "done" || s == "skipped" => {}
                    _ => report.errors += 1,
                }
            }
        }
        report
    }

    async fn hide(&self, record: &SqsMessage, delay: Duration) {
        if let Some(handle) = &record.receipt_handle {
            if let Err(e) = self.queue.change_visibility(handle, delay).await {
                tracing::warn!(error = %e, "could not set the record's visibility; the queue's timeout applies");
            }
        }
    }

    async fn process(&self, record: &SqsMessage, deadline: Instant) -> Result<(), Requeue> {
        let Some(message) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<QueueMessage>(b).ok())
        else {
            // Not ours to interpret; if a row is behind it, the relay finds the row.
            tracing::error!(message_id = ?record.message_id, "unreadable queue message dropped");
            return Ok(());
        };
        if message.kind != self.kind {
            tracing::error!(
                kind = message.kind.as_str(),
                "message of another inbox dropped; its relay re-sends it where it belongs"
            );
            return Ok(());
        }
        let claimed = bounded_claim(&self.pool, self.kind, message.event_id, message.seq).await;
        let event = match claimed {
            Ok(Ok(event)) => event,
            Ok(Err(Unclaimed::Finished | Unclaimed::Unknown | Unclaimed::Obsolete)) => {
                return Ok(())
            }
            Ok(Err(Unclaimed::Blocked)) => {
                // Dropped, the row unqueued: the relay re-sends the person's chain in
                // order (hiding it would block the group the older row waits behind).
                tracing::info!(event_id = %message.event_id, "message out of its person's order; the relay re-sends it after the older event");
                if let Err(e) = event_store::mark_out_of_line(
                    &self.pool,
                    self.kind,
                    message.event_id,
                    message.seq,
                )
                .await
                {
                    tracing::warn!(event_id = %message.event_id, error = %e, "could not mark the row unqueued; the relay finds it stale");
                }
                return Ok(());
            }
            Ok(Err(Unclaimed::Busy { retry_in })) => {
                tracing::info!(event_id = %message.event_id, "event is being processed elsewhere; retrying after its claim's lease");
                return Err(Requeue { after: retry_in });
            }
            Ok(Err(Unclaimed::NotDue { due_in })) => return Err(Requeue { after: due_in }),
            Err(e) => {
                tracing::warn!(event_id = %message.event_id, error = %e, "claim failed; no attempt spent");
                return Err(Requeue {
                    after: self.timing.store_retry,
                });
            }
        };
        self.attempt(&event, deadline).await
    }

    async fn attempt(&self, event: &EventRow, deadline: Instant) -> Result<(), Requeue> {
        let started = chrono::Utc::now();
        let result = match event.newer_applied_at {
            Some(newer) => Ok(Outcome::Stale(format!(
                "stale: an event received later ({}) was already applied to this entity",
                newer.to_rfc3339()
            ))),
            None => {
                let time = deadline
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(FINISH_RESERVE);
                // Boxed: routers nest deep futures (HTTP clients inside sync steps), too
                // deep for the compiler to lay out inside every caller.
                let routed = crate::adapters::rate_budget::ATTEMPT_DEADLINE
                    .scope(Instant::now() + time, self.router.route(event));
                match tokio::time::timeout(time, Box::pin(routed)).await {
                    Ok(result) => result,
                    Err(_) => Err(SyncError::Deadline),
                }
            }
        };
        if let Ok(Outcome::Deferred { retry_in, reason }) = &result {
            return self.defer(event, *retry_in, reason).await;
        }
        let (finish, log) = self.outcome(event, &result);
        // A retry keeps its place at the head of its group (hidden until due), unless
        // it steps aside: then its message is acknowledged and the relay re-queues it.
        let retry_in = match &finish {
            Finish::Retry {
                retry_in,
                step_aside: false,
                ..
            } => Some(*retry_in),
            _ => None,
        };
        let log = SyncLog {
            started_at: started,
            ..log
        };
        match bounded_finish(&self.pool, event, &finish, &log).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(event_id = %event.id, "claim was taken over meanwhile; its new owner records the outcome");
                return Ok(());
            }
            Err(e) => {
                // The row stays `processing`: keep the message until the claim's lease
                // has passed, so a redelivery takes it over.
                tracing::error!(event_id = %event.id, error = %e, "could not record the event's outcome");
                return Err(Requeue { after: CLAIM_LEASE });
            }
        }
        self.log_outcome(event, &finish);
        if let Err(e) = &result {
            if e.class() == FailureClass::Credential {
                tracing::error!(alert = "provider_credential_rejected", event_id = %event.id, error = %e,
                    "a provider refused our credential; retrying slowly until it is replaced");
            }
        }
        match retry_in {
            Some(after) => Err(Requeue { after }),
            None => Ok(()),
        }
    }

    /// The router asked for later: the attempt is given back and the record hidden
    /// until then (its FIFO group waits behind it).
    async fn defer(
        &self,
        event: &EventRow,
        retry_in: Duration,
        reason: &str,
    ) -> Result<(), Requeue> {
        match event_store::release(&self.pool, event, retry_in).await {
            Ok(()) => {
                tracing::info!(kind = self.kind.as_str(), event_id = %event.id, reason, retry_in_s = retry_in.as_secs_f64(), "event deferred");
                Err(Requeue { after: retry_in })
            }
            Err(e) => {
                tracing::error!(event_id = %event.id, error = %e, "could not defer the event");
                Err(Requeue { after: CLAIM_LEASE })
            }
        }
    }

    /// The row's new state and its sync log entry.
    fn outcome<'a>(
        &self,
        event: &'a EventRow,
        result: &'a Result<Outcome, SyncError>,
    ) -> (Finish, SyncLog<'a>) {
        let log = |direction, status, source_id, target_id, decisions| SyncLog {
            direction,
            entity_type: &event.entity_type,
            entity_id: event.entity_id.as_deref(),
            source_id,
            target_id,
            status,
            started_at: chrono::Utc::now(),
            error_message: None,
            decisions,
        };
        match result {
            Ok(Outcome::Done {
                direction,
                source_id,
                target_id,
                decisions,
            }) => (
                Finish::Done,
                log(
                    direction,
                    "success",
                    source_id.as_deref(),
                    target_id.as_deref(),
                    decisions.clone(),
                ),
            ),
            Ok(Outcome::Skipped(reason)) => (
                Finish::Skipped {
                    reason: reason.clone(),
                    advances_watermark: true,
                },
                log("none", "skipped", None, None, json!({"skipped": reason})),
            ),
            Ok(Outcome::Stale(reason)) => (
                Finish::Skipped {
                    reason: reason.clone(),
                    advances_watermark: false,
                },
                log("none", "skipped", None, None, json!({"skipped": reason})),
            ),
            // `attempt` releases deferred rows before this; kept total all the same.
            Ok(Outcome::Deferred { retry_in, reason }) => (
                Finish::Retry {
                    message: reason.clone(),
                    retry_in: *retry_in,
                    step_aside: false,
                    refund: true,
                    held_by: None,
                },
                log("none", "skipped", None, None, json!({"deferred": reason})),
            ),
            Err(e) => {
                let class = e.class();
                let finish = match self.timing.retry.verdict(class, event.attempts) {
                    Verdict::RetryAfter(retry_in) => Finish::Retry {
                        message: format!(
                            "{e} (attempt {} of {MAX_ATTEMPTS}; will retry in {}s)",
                            event.attempts,
                            retry_in.as_secs()
                        ),
                        retry_in,
                        step_aside: e.steps_aside(),
                        refund: false,
                        held_by: None,
                    },
                    Verdict::RetryUncounted(retry_in) => Finish::Retry {
                        message: format!(
                            "{e} (not counted as an attempt; will retry in {}s)",
                            retry_in.as_secs()
                        ),
                        retry_in,
                        step_aside: false,
                        refund: true,
                        held_by: None,
                    },
                    // The row gives up its message (the person's later events are held
                    // by the claim's order rule) and waits for the resume.
                    Verdict::Hold { provider } => Finish::Retry {
                        message: format!("{e} (not counted as an attempt)"),
                        retry_in: crate::adapters::provider_pause::HOLD,
                        step_aside: true,
                        refund: true,
                        held_by: Some(provider),
                    },
                    Verdict::GiveUp { exhausted: true } => Finish::Failed {
                        message: format!(
                            "{e} (attempt {} of {MAX_ATTEMPTS}; retries exhausted)",
                            event.attempts
                        ),
                    },
                    Verdict::GiveUp { exhausted: false } => Finish::Failed {
                        message: format!("{e} (not retryable)"),
                    },
                };
                let entry = SyncLog {
                    error_message: finish.error().map(str::to_string),
                    ..log(
                        "none",
                        "error",
                        None,
                        None,
                        json!({"class": class_name(class)}),
                    )
                };
                (finish, entry)
            }
        }
    }

    fn log_outcome(&self, event: &EventRow, finish: &Finish) {
        let status = match finish {
            Finish::Done => "done",
            Finish::Skipped { .. } => "skipped",
            Finish::Retry { .. } => "error",
            Finish::Failed { .. } => "failed",
        };
        tracing::info!(kind = self.kind.as_str(), event_id = %event.id, source = %event.source,
            event_type = %event.event_type, status, attempts = event.attempts, "event processed");
        if let Finish::Failed { .. } = finish {
            // The alert hook: `alerts-evaluate` reports failed rows; this line is what a
            // log-based alarm matches on meanwhile.
            tracing::error!(alert = "event_failed", kind = self.kind.as_str(), event_id = %event.id,
                event_type = %event.event_type, attempts = event.attempts, "event gave up");
        }
    }
}

fn class_name(class: FailureClass) -> &'static str {
    match class {
        FailureClass::Retryable { .. } => "retryable",
        FailureClass::Credential => "credential",
        FailureClass::Paused { .. } => "paused",
        FailureClass::Throttled { .. } => "throttled",
        FailureClass::Unavailable { .. } => "database_unavailable",
        FailureClass::Final => "final",
    }
}
