//! `POST /api/admin/events/{id}/replay` → df_shared::ops::events.
use df_shared::lambda::{self, Settings};
use df_shared::ops::events::{self, AdminEvents};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { AdminEvents::from_settings(&Settings::load().await?).await },
        events::handle_replay,
    )
    .await
}
