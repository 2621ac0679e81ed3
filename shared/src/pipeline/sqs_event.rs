//! Received SQS messages as the Lambda SQS trigger delivers them, for the local bridge
//! and the tests (Lambda itself builds these events in AWS).
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};

pub fn from_received(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> SqsEvent {
    let records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id().map(str::to_string);
            r.receipt_handle = m.receipt_handle().map(str::to_string);
            r.body = m.body().map(str::to_string);
            r.md5_of_body = m.md5_of_body().map(str::to_string);
            r.event_source = Some("aws:sqs".into());
            r.event_source_arn = Some(queue_arn.to_string());
            r.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            r
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}
