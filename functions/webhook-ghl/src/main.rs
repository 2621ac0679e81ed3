//! `POST /api/webhooks/ghl` → df_shared::ingest::webhook_ghl.
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_ghl::{self, GhlWebhookAuth};
use df_shared::lambda::{self, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        webhook_ghl::STORE_FAILURE_STATUS,
        || async {
            let settings = Settings::load().await?;
            let ingest =
                df_shared::ingest::Ingest::from_settings(&settings, EventKind::Webhook).await?;
            Ok((ingest, GhlWebhookAuth::from_settings(&settings)?))
        },
        |(ingest, auth), req| webhook_ghl::handle(ingest, auth, req),
    )
    .await
}
