//! Moving stored events through the queues: the SQS consumer shared by every inbox
//! ([`consumer`]) and its vocabulary ([`outcome`]: what routers answer), the outbox
//! relay ([`relay`]), and SQS events as Lambda's trigger builds them, for the local
//! bridge and the tests ([`sqs_event`]). Which router a consumer runs is decided by the
//! composition root (`app`), not here: this module knows no router.
pub mod consumer;
pub mod deployment;
pub mod outcome;
pub mod relay;
pub mod sqs_event;

pub use consumer::{Consumer, Router, Timing};
pub use outcome::{Outcome, SyncError};
