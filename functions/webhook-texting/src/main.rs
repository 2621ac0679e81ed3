//! `POST /api/webhooks/texting` → df_shared::ingest::texting.
use df_shared::{ingest::texting, lambda};
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let settings = lambda::Settings::load().await?;
    let ingest = settings
        .ingest(lambda::config::TEXTING_EVENTS_QUEUE_URL)
        .await?;
    let config = texting::TextingConfig::from_settings(&settings)?;
    run(service_fn(|req| texting::serve(&ingest, &config, req))).await
}
