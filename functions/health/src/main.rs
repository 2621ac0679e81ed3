//! `GET /api/health` → df_shared::ops::health.
use df_shared::lambda::config::{TEXTING_EVENTS_QUEUE_URL, WEBHOOK_EVENTS_QUEUE_URL};
use df_shared::lambda::{self, Settings};
use df_shared::ops::health::{self, Health};
use lambda_http::http::StatusCode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    lambda::serve_http(
        StatusCode::SERVICE_UNAVAILABLE,
        || async {
            let settings = Settings::load().await?;
            Ok(Health {
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
            })
        },
        health::handle,
    )
    .await
}
