//! `POST /api/webhooks/ghl` → df_shared::ingest::ghl.
use df_shared::{ingest::ghl, lambda};
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let settings = lambda::Settings::load().await?;
    let ingest = settings
        .ingest(lambda::config::WEBHOOK_EVENTS_QUEUE_URL)
        .await?;
    let config = ghl::GhlConfig::from_settings(&settings)?;
    run(service_fn(|req| ghl::serve(&ingest, &config, req))).await
}
