//! `POST /api/webhooks/aloware` → df_shared::ingest::webhook_aloware.
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_aloware::{self, AlowareWebhookAuth};
use df_shared::lambda::{self, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        webhook_aloware::STORE_FAILURE_STATUS,
        || async {
            let settings = Settings::load().await?;
            let ingest =
                df_shared::ingest::Ingest::from_settings(&settings, EventKind::Webhook).await?;
            Ok((ingest, AlowareWebhookAuth::from_settings(&settings)?))
        },
        |(ingest, auth), req| webhook_aloware::handle(ingest, auth, req),
    )
    .await
}
