//! Lambda glue: configuration, tracing, HTTP responses, and building clients once.
pub mod config;
pub mod http;
pub mod telemetry;

pub use config::{ConfigError, Settings};
pub use telemetry::init_tracing;
