//! `GET /api/admin/optouts?phone=` → df_shared::ops::optouts.
use df_shared::lambda::{self, Settings};
use df_shared::ops::optouts::{self, Optouts};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async {
            let settings = Settings::load().await?;
            Ok(Optouts {
                pool: settings.pool()?,
                admin_secret: settings.require("DF_ADMIN_SECRET")?.to_string(),
                default_country: settings.default_country(),
            })
        },
        optouts::handle,
    )
    .await
}
