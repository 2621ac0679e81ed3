//! `process-webhook-events` (SPEC §5): for each SQS record, claim the row atomically,
//! honour quarantine, route it, finish it as done / skipped / error, and log the sync.
//! FIFO semantics: once a record fails, every later record of the batch is reported
//! failed too, so one person's events never overtake each other. Retryable failures
//! back off through message visibility (base · 2^(attempt-1), capped); after the
//! queue's maxReceiveCount (10) SQS moves the message to the DLQ.
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::adapters::queue::EventQueue;
use crate::adapters::rate_budget::RateBudget;
use crate::adapters::sync_repo::{self, EventRow, Finish, SyncLogEntry};
use crate::domain::contact::Policy;
use crate::lambda::config::WEBHOOK_EVENTS_QUEUE_URL;
use crate::lambda::{ConfigError, Settings};
use crate::providers::aloware::AlowareClient;
use crate::providers::ghl::{GhlClient, GhlConfig};
use crate::sync::{self, Outcome, SyncDeps, SyncError};

pub mod sqs_event;

pub const MAX_ATTEMPTS: i32 = 10;
/// Matches `sync_repo::claim`'s lease on a `processing` row.
const CLAIM_LEASE: Duration = Duration::from_secs(300);

fn failure(message_id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id;
    f
}
const MAX_BACKOFF: Duration = Duration::from_secs(900);

pub struct Consumer {
    pub deps: SyncDeps,
    pub queue: EventQueue,
    pub retry_base: Duration,
}

#[derive(Deserialize)]
struct QueueMessage {
    event_id: Uuid,
    kind: String,
}

/// `ALOWARE_LIST_MAP`: a JSON object of GHL tag → Aloware list id (string or number).
fn parse_list_map(json: &str) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "ALOWARE_LIST_MAP",
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| invalid("must be a JSON object".into()))?;
    object
        .iter()
        .map(|(tag, list)| {
            crate::domain::json::id_str(Some(list))
                .map(|l| (tag.trim().to_lowercase(), l))
                .ok_or_else(|| {
                    invalid(format!("list id of tag {tag:?} must be a string or number"))
                })
        })
        .collect()
}

/// A record to leave on the queue, visible again after `delay`.
struct Retry {
    delay: Duration,
}

impl Consumer {
    pub async fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let pool = s.pool()?;
        let per_10s = s.parse_or("GHL_RATE_LIMIT_PER_10S", 90u32)?;
        let budget = RateBudget::new(pool.clone(), per_10s, 100, Duration::from_secs(10));
        let http = crate::providers::http_client();
        let ghl = GhlClient::new(
            http.clone(),
            GhlConfig {
                base_url: s
                    .get_or("GHL_BASE_URL", "https://services.leadconnectorhq.com")
                    .to_string(),
                token: s.require("GHL_API_KEY")?.to_string(),
                location_id: s.require("GHL_LOCATION_ID")?.to_string(),
            },
            budget,
        );
        let aloware = AlowareClient::new(
            http,
            s.get_or("ALOWARE_BASE_URL", "https://app.aloware.com"),
            s.require("ALOWARE_API_TOKEN")?,
        );
        let policy: Policy = s
            .get_or("CONTACT_SOURCE_OF_TRUTH", "merge")
            .parse()
            .map_err(|reason| ConfigError::Invalid {
                name: "CONTACT_SOURCE_OF_TRUTH",
                reason,
            })?;
        Ok(Consumer {
            deps: SyncDeps {
                pool,
                ghl,
                aloware,
                policy,
                default_country: s.default_country(),
                echo_window_seconds: s.parse_or("ECHO_WINDOW_SECONDS", 600i64)?,
                list_map: parse_list_map(s.get_or("ALOWARE_LIST_MAP", "{}"))?,
                write_origin_markers: s.parse_or("WRITE_ORIGIN_MARKERS", false)?,
            },
            queue: s.queue(WEBHOOK_EVENTS_QUEUE_URL).await?,
            retry_base: Duration::from_secs(s.parse_or("RETRY_BASE_SECONDS", 30u64)?),
        })
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        let mut blocked = false;
        for record in &event.records {
            let Some(message_id) = record.message_id.clone() else {
                tracing::error!("SQS record without message id: cannot be reported");
                continue;
            };
            if blocked {
                failures.push(failure(message_id));
                continue;
            }
            if let Err(retry) = self.process(record).await {
                blocked = true;
                if let Some(handle) = &record.receipt_handle {
                    if let Err(e) = self.queue.change_visibility(handle, retry.delay).await {
                        tracing::warn!(error = %e, "could not set the retry delay; the queue's visibility timeout applies");
                    }
                }
                failures.push(failure(message_id));
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    async fn process(&self, record: &SqsMessage) -> Result<(), Retry> {
        let retry_soon = Retry {
            delay: self.retry_base,
        };
        let Some(message) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<QueueMessage>(b).ok())
        else {
            tracing::error!(message_id = ?record.message_id, "unreadable queue message dropped");
            return Ok(());
        };
        if message.kind != "webhook" {
            tracing::error!(kind = %message.kind, "message of another kind on the webhook queue dropped");
            return Ok(());
        }
        let pool = &self.deps.pool;
        let Some(event) = sync_repo::claim(pool, message.event_id)
            .await
            .map_err(|_| retry_soon)?
        else {
            return self.unclaimed(message.event_id).await;
        };
        let started = chrono::Utc::now();
        let result = match sync_repo::is_quarantined(pool, event.id).await {
            Ok(true) => Ok(Outcome::Skipped("quarantined".into())),
            Ok(false) => sync::route(&self.deps, &event).await,
            Err(e) => Err(SyncError::Store(e)),
        };
        let retry = match &result {
            Err(e) if e.retryable() => Some(self.backoff(event.attempts, e)),
            _ => None,
        };
        // An outcome that cannot be recorded leaves the row `processing`: keep the
        // message, so it is retried once the claim's lease expires.
        let recorded = self.finish(&event, started, result).await;
        match (retry, recorded) {
            (Some(delay), _) => Err(Retry { delay }),
            (None, false) => Err(Retry { delay: CLAIM_LEASE }),
            (None, true) => Ok(()),
        }
    }

    /// The row could not be claimed: finished (acknowledge the message), or claimed by
    /// another delivery / a crashed consumer (retry after the claim's lease).
    async fn unclaimed(&self, event_id: Uuid) -> Result<(), Retry> {
        match sync_repo::status(&self.deps.pool, event_id).await {
            Ok(Some(status)) if status == "processing" => {
                tracing::info!(event_id = %event_id, "event is being processed elsewhere; retrying after the claim's lease");
                Err(Retry { delay: CLAIM_LEASE })
            }
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                tracing::error!(event_id = %event_id, "queue message for an unknown event dropped");
                Ok(())
            }
            Err(_) => Err(Retry {
                delay: self.retry_base,
            }),
        }
    }

    fn backoff(&self, attempts: i32, err: &SyncError) -> Duration {
        let exp = self
            .retry_base
            .saturating_mul(1u32 << (attempts.clamp(1, 16) - 1) as u32)
            .min(MAX_BACKOFF);
        match err {
            SyncError::Provider(p) => exp.max(p.retry_after.unwrap_or_default()),
            _ => exp,
        }
    }

    async fn finish(
        &self,
        event: &EventRow,
        started: chrono::DateTime<chrono::Utc>,
        result: Result<Outcome, SyncError>,
    ) -> bool {
        let error = result.as_ref().err().map(|e| match e.retryable() {
            true if event.attempts >= MAX_ATTEMPTS => format!(
                "{e} (attempt {} of {MAX_ATTEMPTS}; retries exhausted: the queue moves it to the DLQ)",
                event.attempts
            ),
            true => format!("{e} (attempt {} of {MAX_ATTEMPTS}; will retry)", event.attempts),
            false => format!("{e} (not retryable)"),
        });
        let (finish, status, direction, source_id, target_id, decisions) = match &result {
            Ok(Outcome::Done {
                direction,
                source_id,
                target_id,
                decisions,
            }) => (
                Finish::Done,
                "success",
                *direction,
                source_id.as_deref(),
                target_id.as_deref(),
                decisions.clone(),
            ),
            Ok(Outcome::Skipped(reason)) => (
                Finish::Skipped(reason),
                "skipped",
                "none",
                None,
                None,
                json!({"skipped": reason}),
            ),
            Err(_) => (
                Finish::Error(error.as_deref().unwrap_or_default()),
                "error",
                "none",
                None,
                None,
                json!({}),
            ),
        };
        let pool = &self.deps.pool;
        let recorded = match sync_repo::finish(pool, event.id, finish).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(event_id = %event.id, error = %e, "could not record the event's outcome");
                false
            }
        };
        let entry = SyncLogEntry {
            direction,
            entity_type: &event.entity_type,
            entity_id: event.entity_id.as_deref(),
            source_id,
            target_id,
            status,
            started_at: started,
            error_message: error.as_deref(),
            correlation_id: event.id,
            decisions,
        };
        if let Err(e) = sync_repo::write_sync_log(pool, &entry).await {
            tracing::error!(event_id = %event.id, error = %e, "could not write the sync log");
        }
        tracing::info!(event_id = %event.id, source = %event.source, event_type = %event.event_type, status, attempts = event.attempts, "event processed");
        recorded
    }
}
