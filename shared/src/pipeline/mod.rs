//! Moving stored events through the queues: the SQS consumer shared by every inbox
//! ([`consumer`]), the outbox relay ([`relay`]), and SQS events as Lambda's trigger
//! builds them, for the local bridge and the tests ([`sqs_event`]).
pub mod consumer;
pub mod deployment;
pub mod relay;
pub mod sqs_event;

pub use consumer::{Consumer, Router, Timing};

use crate::domain::EventKind;
use crate::lambda::config::queue_setting;
use crate::lambda::{ConfigError, Settings};
use crate::sync::{SyncDeps, WebhookRouter};

/// `process-webhook-events`: GHL and Aloware events through the sync routers.
pub async fn webhook_consumer(s: &Settings) -> Result<Consumer<WebhookRouter>, ConfigError> {
    let mut deps = SyncDeps::from_settings(s)?;
    deps.resolve_custom_fields().await?;
    Ok(Consumer {
        kind: EventKind::Webhook,
        pool: deps.pool.clone(),
        queue: s.queue(queue_setting(EventKind::Webhook)).await?,
        router: WebhookRouter { deps },
        timing: Timing::from_settings(s)?,
    })
}
