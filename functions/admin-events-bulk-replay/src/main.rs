//! `POST /api/admin/events/replay` → df_shared::ops::bulk_replay.
use df_shared::lambda::{self, Settings};
use df_shared::ops::bulk_replay;
use df_shared::ops::events::AdminEvents;
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { AdminEvents::from_settings(&Settings::load().await?).await },
        bulk_replay::handle,
    )
    .await
}
