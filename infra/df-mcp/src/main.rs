//! `df-mcp`: the same Verity toolset as `mcp-http`, over stdio. Settings come from the
//! environment (VERITY_BASE_URL, VERITY_CATALOG_URI, VERITY_API_KEY, MCP_TOOLS_MODE, ...);
//! stdout carries the protocol, so logs go to stderr.
//!
//! `df-mcp --bridge <url>` (or `DF_MCP_BRIDGE_URL`) instead relays stdio to a running
//! `mcp-http`, with the key in `DF_MCP_BRIDGE_KEY`: no Verity settings needed locally.
mod bridge;

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
    if let Some(url) = bridge_url() {
        let key = std::env::var("DF_MCP_BRIDGE_KEY").ok();
        bridge::run(
            bridge::Bridge::new(url, key),
            tokio::io::stdin(),
            tokio::io::stdout(),
        )
        .await;
        return Ok(());
    }
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

fn bridge_url() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--bridge" {
            return args.next();
        }
        if let Some(url) = arg.strip_prefix("--bridge=") {
            return Some(url.to_string());
        }
    }
    std::env::var("DF_MCP_BRIDGE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}
