//! EventBridge (daily) → df_shared::ops::retention: purge what aged out.
use std::time::Duration;

use df_shared::lambda::{self, init::context, Settings};
use df_shared::ops::retention::Retention;
use df_shared::pipeline::consumer::deadline_from_ms;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tokio::sync::OnceCell;

/// The template's Timeout for this function.
const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let cell = OnceCell::new();
    let cell = &cell;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let job = context(cell, || async {
                Retention::from_settings(&Settings::load().await?)
            })
            .await?;
            let deadline = deadline_from_ms(event.context.deadline, TIMEOUT);
            let report = job.run(deadline).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}
