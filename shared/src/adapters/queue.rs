//! SQS FIFO queues. Messages carry only the event id (SPEC §5); the row is the truth.
use std::time::Duration;

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, SdkConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::domain::EventKind;

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

/// The message body (SPEC §5): the row is the truth, the message only points at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub event_id: Uuid,
    pub kind: EventKind,
}

/// SQS message group of a person key: events about one person apply in order. The key
/// may be a phone number and SQS ids are visible to operators, so it is hashed.
pub fn message_group_id(person_key: &str) -> String {
    hex::encode(&Sha256::digest(person_key.as_bytes())[..16])
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

    /// Send one event's message in its person's group. The FIFO deduplication id is
    /// the event id and the row's send count (`seq`), so a relay resend is not swallowed
    /// by SQS's five-minute deduplication window while a repeat of the same send is.
    pub async fn send(
        &self,
        event_id: Uuid,
        kind: EventKind,
        person_key: &str,
        seq: i32,
    ) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(&QueueMessage { event_id, kind }).expect("message serialises");
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(message_group_id(person_key))
            .message_deduplication_id(format!("{event_id}-{seq}"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }

    /// Reachability probe for the health check.
    pub async fn ping(&self) -> Result<(), QueueError> {
        self.depth().await.map(|_| ())
    }

    /// Messages waiting (visible) and in flight.
    pub async fn depth(&self) -> Result<(i64, i64), QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let attrs = out.attributes.unwrap_or_default();
        let n = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok((
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesNotVisible),
        ))
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
            .visibility_timeout(visibility_seconds(delay))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}

/// SQS takes whole seconds. Round up: a record hidden for less than it asked comes
/// back before its row is due, and each early return is one more receive toward the
/// redrive policy's `maxReceiveCount` (a 0.4 s wait rounded down to 0 loops at once).
fn visibility_seconds(delay: Duration) -> i32 {
    delay.as_millis().div_ceil(1000).min(43_200) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_rounds_up_to_whole_seconds() {
        assert_eq!(visibility_seconds(Duration::ZERO), 0);
        assert_eq!(visibility_seconds(Duration::from_millis(1)), 1);
        assert_eq!(visibility_seconds(Duration::from_millis(400)), 1);
        assert_eq!(visibility_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(visibility_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(visibility_seconds(Duration::from_secs(100_000)), 43_200);
    }
}
