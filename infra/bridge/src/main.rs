//! `df-bridge`: does locally what Lambda's SQS trigger does in AWS. For each queue it runs
//! `DF_BRIDGE_CONCURRENCY` pollers (default 3, the template's MaximumConcurrency), each
//! long-polling the emulator and invoking the consumer through `cargo lambda watch`'s
//! invoke API with a real SQS event batch (up to 10 records), so several batches of
//! different message groups run at once, as in Lambda. It deletes what succeeded and
//! leaves reported failures to reappear after their visibility timeout; the emulator's
//! redrive policy moves a message to the DLQ after maxReceiveCount receives.
//!
//! It is also the local scheduler: `DF_SCHEDULES` = `function=seconds,...` (scripts/dev
//! derives it from the template's Schedule events) invokes each function on its rate
//! with an empty JSON object, as a schedule with `Input: {}` would.
//!
//! Configuration: `DF_BRIDGE_ROUTES` = `QUEUE_URL=function,...` (default: the webhook
//! queue → process-webhook-events, the texting queue → process-texting-events, the
//! broadcast queue → process-broadcast-events),
//! `DF_INVOKE_URL` (default http://127.0.0.1:9000).
use std::time::Duration;

use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use df_shared::pipeline::sqs_event;

struct Route {
    queue_url: String,
    function: String,
}

fn routes() -> Vec<Route> {
    let spec = std::env::var("DF_BRIDGE_ROUTES").unwrap_or_else(|_| {
        let queue = |name: &str| std::env::var(name).unwrap_or_default();
        format!(
            "{}=process-webhook-events,{}=process-texting-events,{}=process-broadcast-events",
            queue("WEBHOOK_EVENTS_QUEUE_URL"),
            queue("TEXTING_EVENTS_QUEUE_URL"),
            queue("BROADCAST_EVENTS_QUEUE_URL")
        )
    });
    spec.split(',')
        .filter_map(|r| r.rsplit_once('='))
        .filter(|(q, f)| !q.is_empty() && !f.is_empty())
        .map(|(q, f)| Route {
            queue_url: q.trim().to_string(),
            function: f.trim().to_string(),
        })
        .collect()
}

/// `http://host/ACCOUNT/NAME` → an ARN-shaped source for the event records.
fn queue_arn(url: &str) -> String {
    let mut parts = url.rsplit('/');
    let name = parts.next().unwrap_or("queue");
    let account = parts.next().unwrap_or("000000000000");
    format!("arn:aws:sqs:us-east-1:{account}:{name}")
}

async fn pump(sqs: aws_sdk_sqs::Client, http: reqwest::Client, invoke: String, route: Route) {
    let arn = queue_arn(&route.queue_url);
    let url = format!(
        "{invoke}/2015-03-31/functions/{}/invocations",
        route.function
    );
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&route.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(queue = %route.queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "receive failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let event = sqs_event::from_received(&messages, &arn);
        let answer = http.post(&url).json(&event).send().await;
        let failed: Vec<String> = match answer {
            Ok(resp) if resp.status().is_success() => match resp.json::<SqsBatchResponse>().await {
                Ok(batch) => batch
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect(),
                Err(e) => {
                    tracing::warn!(function = %route.function, error = %e, "unreadable batch response: the whole batch will be retried");
                    continue;
                }
            },
            Ok(resp) => {
                tracing::warn!(function = %route.function, status = %resp.status(), "invocation failed: the whole batch will be retried");
                continue;
            }
            Err(e) => {
                tracing::warn!(function = %route.function, error = %e, "invoke API unreachable: the whole batch will be retried");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut deleted = 0;
        for m in &messages {
            if failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                continue;
            }
            if let Some(handle) = m.receipt_handle() {
                if sqs
                    .delete_message()
                    .queue_url(&route.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .is_ok()
                {
                    deleted += 1;
                }
            }
        }
        tracing::info!(function = %route.function, received = messages.len(), deleted, failed = failed.len(), "batch delivered");
    }
}

fn schedules() -> Vec<(String, Duration)> {
    std::env::var("DF_SCHEDULES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.split_once('='))
        .filter_map(|(f, secs)| {
            secs.trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(|s| (f.trim().to_string(), Duration::from_secs(s)))
        })
        .collect()
}

async fn tick(http: reqwest::Client, invoke: String, function: String, every: Duration) {
    let url = format!("{invoke}/2015-03-31/functions/{function}/invocations");
    let mut interval = tokio::time::interval(every);
    interval.tick().await; // EventBridge's first run is one period after creation.
    loop {
        interval.tick().await;
        match http.post(&url).json(&serde_json::json!({})).send().await {
            Ok(r) => {
                tracing::info!(function = %function, status = %r.status(), "scheduled invocation")
            }
            Err(e) => {
                tracing::warn!(function = %function, error = %e, "scheduled invocation failed")
            }
        }
    }
}

#[tokio::main]
async fn main() {
    df_shared::lambda::init_tracing();
    let invoke = std::env::var("DF_INVOKE_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let routes = routes();
    let schedules = schedules();
    if routes.is_empty() && schedules.is_empty() {
        eprintln!("df-bridge: no routes (set WEBHOOK_EVENTS_QUEUE_URL or DF_BRIDGE_ROUTES) and no DF_SCHEDULES");
        std::process::exit(2);
    }
    let sqs = aws_sdk_sqs::Client::new(&df_shared::adapters::queue::aws_config().await);
    // The consumer may be compiling on its first invocation under cargo lambda watch.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("HTTP client");
    let concurrency: usize = std::env::var("DF_BRIDGE_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    let mut tasks = Vec::new();
    for r in routes {
        tracing::info!(queue = %r.queue_url, function = %r.function, concurrency, "bridging");
        for _ in 0..concurrency {
            let route = Route {
                queue_url: r.queue_url.clone(),
                function: r.function.clone(),
            };
            tasks.push(tokio::spawn(pump(
                sqs.clone(),
                http.clone(),
                invoke.clone(),
                route,
            )));
        }
    }
    for (function, every) in schedules {
        tracing::info!(function = %function, seconds = every.as_secs(), "scheduling");
        tasks.push(tokio::spawn(tick(
            http.clone(),
            invoke.clone(),
            function,
            every,
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}
