//! `GET /api/health` → df_shared::ops::health.
use df_shared::lambda::{
    self,
    config::{TEXTING_EVENTS_QUEUE_URL, WEBHOOK_EVENTS_QUEUE_URL},
};
use df_shared::ops::health::{self, Health};
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let settings = lambda::Settings::load().await?;
    let health = Health {
        pool: settings.pool()?,
        queues: vec![
            (
                "webhook-events",
                settings.queue(WEBHOOK_EVENTS_QUEUE_URL).await?,
            ),
            (
                "texting-events",
                settings.queue(TEXTING_EVENTS_QUEUE_URL).await?,
            ),
        ],
    };
    run(service_fn(|req| health::serve(&health, req))).await
}
