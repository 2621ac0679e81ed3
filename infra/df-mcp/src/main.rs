//! `df-mcp`: the same Verity toolset as `mcp-http`, over stdio. Settings come from the
//! environment (VERITY_BASE_URL, VERITY_CATALOG_URI, VERITY_API_KEY, MCP_TOOLS_MODE, ...);
//! stdout carries the protocol, so logs go to stderr.
use df_shared::app::verity as setup;
use df_shared::lambda::Settings;
use df_shared::verity::mcp::Principal;
use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let settings = Settings::load().await?;
    let user = std::env::var("USER").unwrap_or_else(|_| "local".into());
    // The local user: every operation but `requireAdmin` ones, unless MCP_STDIO_ADMIN.
    let mut who = Principal::full(format!("stdio:{user}"));
    who.admin = settings.parse_or("MCP_STDIO_ADMIN", false)?;
    let handler = setup::mcp_handler(&settings, Some(who)).await?;
    handler
        .serve(rmcp::transport::stdio())
        .await?
        .waiting()
        .await?;
    Ok(())
}
