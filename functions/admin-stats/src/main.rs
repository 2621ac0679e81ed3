//! `GET /api/admin/stats` → df_shared::ops::stats.
use df_shared::lambda::{self, Settings};
use df_shared::ops::stats::{self, Stats};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { Stats::from_settings(&Settings::load().await?).await },
        stats::handle,
    )
    .await
}
