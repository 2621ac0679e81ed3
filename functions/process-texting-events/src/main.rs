//! SQS (texting-events.fifo) → df_shared::pipeline: texting messages and opt-outs into GHL.
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use df_shared::app;
use df_shared::lambda::{self, init::context, Settings};
use df_shared::pipeline::consumer::deadline_from_ms;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tokio::sync::OnceCell;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    let cell = OnceCell::new();
    let cell = &cell;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let consumer = context(cell, || async {
            app::texting_consumer(&Settings::load().await?).await
        })
        .await?;
        let deadline = deadline_from_ms(event.context.deadline, consumer.timing.function_timeout);
        Ok::<SqsBatchResponse, Error>(consumer.handle(event.payload, deadline).await)
    }))
    .await
}
