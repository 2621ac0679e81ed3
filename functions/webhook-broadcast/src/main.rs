//! `POST /api/webhooks/broadcast` → df_shared::ingest::webhook_broadcast.
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_broadcast::{self, BroadcastWebhookConfig};
use df_shared::lambda::{self, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        webhook_broadcast::STORE_FAILURE_STATUS,
        || async {
            let settings = Settings::load().await?;
            let ingest =
                df_shared::ingest::Ingest::from_settings(&settings, EventKind::Broadcast).await?;
            Ok((ingest, BroadcastWebhookConfig::from_settings(&settings)?))
        },
        |(ingest, cfg), req| webhook_broadcast::handle(ingest, cfg, req),
    )
    .await
}
