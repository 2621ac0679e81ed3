//! `POST /api/admin/mappings/repair?phone=&email=` → df_shared::ops::mappings.
use df_shared::lambda::{self, Settings};
use df_shared::ops::mappings::{self, MappingsRepair};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async { MappingsRepair::from_settings(&Settings::load().await?) },
        mappings::handle,
    )
    .await
}
