//! `POST /api/jobs/run-once` → df_shared::ops::jobs: process due events in the call.
use df_shared::app;
use df_shared::lambda::{self, Settings};
use df_shared::ops::jobs;
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { app::run_once_job(&Settings::load().await?).await },
        jobs::handle_run_once,
    )
    .await
}
