//! `POST /api/webhooks/aloware` → df_shared::ingest::aloware.
use df_shared::{ingest::aloware, lambda};
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let settings = lambda::Settings::load().await?;
    let ingest = settings
        .ingest(lambda::config::WEBHOOK_EVENTS_QUEUE_URL)
        .await?;
    let config = aloware::AlowareConfig::from_settings(&settings)?;
    run(service_fn(|req| aloware::serve(&ingest, &config, req))).await
}
