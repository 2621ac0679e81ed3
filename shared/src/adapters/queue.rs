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
    /// The row's send number when this message was sent: a message older than the
    /// row's latest send is obsolete (a relay re-send or a replay superseded it).
    /// Absent in messages of earlier versions, which are then always taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i32>,
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
        let body = serde_json::to_string(&QueueMessage {
            event_id,
            kind,
            seq: Some(seq),
        })
        .expect("message serialises");
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

/// What the relay reads of a queue to tell that messages were lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueState {
    /// When the queue was created (seconds since the epoch): a queue deleted and
    /// recreated under the same URL has lost every message sent to the old one.
    pub created_timestamp: Option<f64>,
    /// Visible, in flight and delayed messages.
    pub messages: i64,
}

/// A message taken off a queue (the relay drains dead letters).
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Option<String>,
    pub receipt_handle: Option<String>,
}

impl EventQueue {
    pub async fn state(&self) -> Result<QueueState, QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(A::CreatedTimestamp)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let attrs = out.attributes.unwrap_or_default();
        let n = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok(QueueState {
            created_timestamp: attrs
                .get(&A::CreatedTimestamp)
                .and_then(|v| v.parse::<f64>().ok()),
            messages: n(A::ApproximateNumberOfMessages)
                + n(A::ApproximateNumberOfMessagesNotVisible)
                + n(A::ApproximateNumberOfMessagesDelayed),
        })
    }

    /// Up to 10 messages, hidden for `visibility` while the caller deals with them.
    pub async fn receive(&self, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility_seconds(visibility))
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                body: m.body,
                receipt_handle: m.receipt_handle,
            })
            .collect())
    }

    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
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
