//! Tracing: JSON lines when Lambda's advanced logging asks for JSON (SAM
//! `LoggingConfig.LogFormat: JSON`), plain text locally. Fields never carry PII.
use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    // The runtime crates log whole raw events at TRACE (API Gateway's carry the
    // Authorization and secret headers, phones and message bodies): capped at DEBUG
    // whatever the configured level.
    let directives = format!(
        "{},lambda_runtime=debug,lambda_runtime_api_client=debug,lambda_http=debug",
        level.to_ascii_lowercase()
    );
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}
