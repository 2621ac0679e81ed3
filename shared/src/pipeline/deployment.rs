//! Timing values the deployment must agree with, in one place. `template.yaml` sets
//! the same numbers (a test reads the template and compares), the local stack creates
//! its queues from the template, and the test harness uses these.
use std::time::Duration;

/// `Timeout` of the queue consumers.
pub const CONSUMER_TIMEOUT: Duration = Duration::from_secs(60);
/// Queue `VisibilityTimeout`: at least 6 × the consumer's timeout (AWS guidance for
/// SQS event sources), so a batch still running is never redelivered.
pub const QUEUE_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(360);
/// Queue `maxReceiveCount`: a poison-message net well above the row's own budget
/// (`domain::retry::MAX_ATTEMPTS` = 10). Receives that are not attempts (records
/// blocked behind a failure, claims during a database outage) must not exhaust it.
pub const MAX_RECEIVE_COUNT: u32 = 50;
/// `ScalingConfig.MaximumConcurrency` of the consumers (see template.yaml).
pub const CONSUMER_MAX_CONCURRENCY: u32 = 3;
/// `Timeout` of the ingest functions: `ingest::STORE_BUDGET` plus the queue send's
/// 5 s operation deadline fit inside it.
pub const INGEST_TIMEOUT: Duration = Duration::from_secs(15);

const _: () = assert!(QUEUE_VISIBILITY_TIMEOUT.as_secs() >= 6 * CONSUMER_TIMEOUT.as_secs());
const _: () = assert!(
    super::consumer::CLAIM_LEASE.as_secs() > CONSUMER_TIMEOUT.as_secs()
        && super::consumer::CLAIM_LEASE.as_secs() < QUEUE_VISIBILITY_TIMEOUT.as_secs()
);
const _: () = assert!(MAX_RECEIVE_COUNT as i32 >= 5 * crate::domain::retry::MAX_ATTEMPTS);
const _: () = assert!(crate::ingest::STORE_BUDGET.as_secs() + 5 < INGEST_TIMEOUT.as_secs());
