//! EventBridge (every minute) → df_shared::pipeline::relay: the outbox relay, after
//! the probes of providers paused for a rejected credential.
use df_shared::app;
use df_shared::lambda::{self, init::context, Settings};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tokio::sync::OnceCell;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let cell = OnceCell::new();
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let relay = context(&cell, || async {
            app::relay(&Settings::load().await?).await
        })
        .await?;
        Ok::<_, Error>(serde_json::json!({ "relayed": relay.run_once().await }))
    }))
    .await
}
