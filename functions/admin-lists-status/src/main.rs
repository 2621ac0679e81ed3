//! `GET /api/admin/lists/status` → df_shared::ops::lists.
use df_shared::lambda::{self, Settings};
use df_shared::ops::lists::{self, ListsStatus};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { ListsStatus::from_settings(&Settings::load().await?) },
        lists::handle,
    )
    .await
}
