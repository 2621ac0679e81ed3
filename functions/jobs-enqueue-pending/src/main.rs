//! `POST /api/jobs/enqueue-pending` → df_shared::ops::jobs (webhook inbox).
use df_shared::domain::EventKind;
use df_shared::lambda::{self, Settings};
use df_shared::ops::jobs::{self, EnqueueJob};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { EnqueueJob::from_settings(&Settings::load().await?, EventKind::Webhook).await },
        jobs::handle_enqueue,
    )
    .await
}
