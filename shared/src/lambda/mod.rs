//! Lambda glue: configuration, tracing, HTTP responses, and building clients once.
pub mod config;
pub mod http;
pub mod init;
pub mod telemetry;

pub use config::{ConfigError, Settings};
pub use init::serve_http;
pub use telemetry::init_tracing;
