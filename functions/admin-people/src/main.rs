//! `GET /api/admin/people` → df_shared::ops::people.
use df_shared::lambda::{self, Settings};
use df_shared::ops::people::{self, People};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { People::from_settings(&Settings::load().await?).await },
        people::handle,
    )
    .await
}
