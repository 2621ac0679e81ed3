//! Pure domain rules: no I/O, no clocks, no configuration lookups.
pub mod aloware;
pub mod call;
pub mod contact;
pub mod dedupe;
pub mod event;
pub mod event_filter;
pub mod ghl;
pub mod json;
pub mod origin;
pub mod phone;
pub mod texting;

pub use event::{Classified, EntityType, Source};
