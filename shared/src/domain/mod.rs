//! Pure domain rules: no I/O, no clocks, no configuration lookups.
pub mod aloware_webhook;
pub mod broadcast;
pub mod call;
pub mod chain;
pub mod contact;
pub mod dedupe;
pub mod event;
pub mod event_filter;
pub mod ghl_webhook;
pub mod json;
pub mod optout;
pub mod origin;
pub mod phone;
pub mod pii;
pub mod retry;
pub mod sms;
pub mod texting_webhook;
pub mod verity;

pub use event::{Classified, EntityType, EventKind, PersonRef, Source};
