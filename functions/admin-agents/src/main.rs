//! `GET` / `POST /api/admin/agents` → df_shared::ops::agents.
use df_shared::lambda::{self, Settings};
use df_shared::ops::agents::{self, Agents};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { Agents::from_settings(&Settings::load().await?) },
        agents::handle,
    )
    .await
}
