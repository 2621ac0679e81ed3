//! EventBridge (every minute) → df_shared::pipeline::relay: the outbox relay.
use df_shared::domain::EventKind;
use df_shared::lambda::{self, init::context, Settings};
use df_shared::pipeline::relay::Relay;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tokio::sync::OnceCell;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let cell = OnceCell::new();
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let relay = context(&cell, || async {
            let settings = Settings::load().await?;
            Relay::from_settings(
                &settings,
                &[EventKind::Webhook, EventKind::Texting, EventKind::Broadcast],
            )
            .await
        })
        .await?;
        Ok::<_, Error>(serde_json::json!({ "relayed": relay.run_once().await }))
    }))
    .await
}
