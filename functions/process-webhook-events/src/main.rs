//! SQS (webhook-events.fifo) → df_shared::pipeline: apply GHL and Aloware events.
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use df_shared::{lambda, pipeline::Consumer};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let settings = lambda::Settings::load().await?;
    let consumer = Consumer::from_settings(&settings).await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<SqsBatchResponse, Error>(consumer.handle(event.payload).await)
    }))
    .await
}
