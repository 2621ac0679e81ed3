//! `POST /api/sync/contacts` → df_shared::ops::manual_sync: a job, answered 202, applied via the queue.
use df_shared::lambda::{self, Settings};
use df_shared::ops::manual_sync::{self, ManualSync};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { ManualSync::from_settings(&Settings::load().await?).await },
        manual_sync::handle_contacts,
    )
    .await
}
