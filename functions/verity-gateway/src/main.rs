//! `GET`/`POST /api/verity` → df_shared::verity::gateway.
use df_shared::app::verity as setup;
use df_shared::lambda::{self, Settings};
use df_shared::verity::gateway;
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { setup::gateway(&Settings::load().await?).await },
        gateway::handle,
    )
    .await
}
