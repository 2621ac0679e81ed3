//! `POST /mcp` → df_shared::verity::mcp_http (MCP streamable HTTP, stateless JSON).
use df_shared::app::verity as setup;
use df_shared::lambda::{self, Settings};
use df_shared::verity::mcp_http;
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { setup::mcp_http(&Settings::load().await?).await },
        mcp_http::handle,
    )
    .await
}
