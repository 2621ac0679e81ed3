//! `POST /api/webhooks/texting` → df_shared::ingest::webhook_texting.
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_texting::{self, TextingWebhookAuth};
use df_shared::lambda::{self, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        webhook_texting::STORE_FAILURE_STATUS,
        || async {
            let settings = Settings::load().await?;
            let ingest =
                df_shared::ingest::Ingest::from_settings(&settings, EventKind::Texting).await?;
            Ok((ingest, TextingWebhookAuth::from_settings(&settings)?))
        },
        |(ingest, auth), req| webhook_texting::handle(ingest, auth, req),
    )
    .await
}
