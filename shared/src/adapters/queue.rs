//! SQS FIFO queues. Messages carry only the event id (SPEC §5); the row is the truth.
use std::time::Duration;

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, SdkConfig};
use serde::Serialize;
use uuid::Uuid;

/// Which inbox table a message points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Webhook,
    Texting,
}

#[derive(Debug, thiserror::Error)]
#[error("queue error: {0}")]
pub struct QueueError(String);

#[derive(Clone, Debug)]
pub struct EventQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// AWS configuration for the SDK clients, with short deadlines: a webhook must be
/// answered promptly even when the queue is unreachable (the row stays pending).
/// `AWS_ENDPOINT_URL` (read by aws-config) points the clients at a local emulator.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

#[derive(Serialize)]
struct Message {
    event_id: Uuid,
    kind: EventKind,
}

impl EventQueue {
    pub fn new(config: &SdkConfig, url: impl Into<String>) -> Self {
        EventQueue {
            client: aws_sdk_sqs::Client::new(config),
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Send one event. FIFO dedup id = event id + attempt, so a resend by the sweeper
    /// after a consumer failure is not swallowed by SQS's five-minute dedup window.
    pub async fn send(
        &self,
        event_id: Uuid,
        kind: EventKind,
        group_id: &str,
        attempt: i32,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(&Message { event_id, kind }).expect("message serialises");
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(group_id)
            .message_deduplication_id(format!("{event_id}-{attempt}"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }

    /// Reachability probe for the health check.
    pub async fn ping(&self) -> Result<(), QueueError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}

impl EventQueue {
    /// Hide a received message for `delay` (the consumer's retry back-off).
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}
