//! `template.yaml` and the code agree on the numbers that must fit together (visibility
//! timeout ≥ 6 × consumer timeout, claim lease between them, receive count far above
//! the row's budget) — see `pipeline::deployment`. The template is read as text: each
//! resource is a block of lines indented under `Resources:`.
mod common;

use df_shared::pipeline::deployment::*;

fn template() -> String {
    std::fs::read_to_string(common::repo_root().join("template.yaml")).expect("template.yaml")
}

/// `(name, body)` of every resource.
fn resources(t: &str) -> Vec<(String, String)> {
    let body = t.split("\nResources:\n").nth(1).expect("Resources section");
    let body = body.split("\nOutputs:").next().unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if let Some(name) = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        {
            out.push((name.trim_end_matches(':').to_string(), String::new()));
        } else if let Some((_, text)) = out.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

fn values(text: &str, key: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

#[test]
fn queues_and_consumers_use_the_agreed_timings() {
    let t = template();
    let all = resources(&t);
    let queues: Vec<_> = all
        .iter()
        .filter(|(n, b)| b.contains("Type: AWS::SQS::Queue") && !n.contains("DeadLetter"))
        .collect();
    assert!(queues.len() >= 2, "{queues:?}");
    for (name, body) in &queues {
        assert_eq!(
            values(body, "VisibilityTimeout:"),
            [QUEUE_VISIBILITY_TIMEOUT.as_secs()],
            "{name}"
        );
        assert_eq!(
            values(body, "maxReceiveCount:"),
            [MAX_RECEIVE_COUNT as u64],
            "{name}"
        );
        let dlq = body
            .lines()
            .find_map(|l| l.trim().strip_prefix("deadLetterTargetArn: !GetAtt "))
            .and_then(|v| v.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("{name} has a DLQ"));
        assert!(
            all.iter()
                .any(|(_, b)| b.contains("Type: AWS::CloudWatch::Alarm")
                    && b.contains(&format!("!GetAtt {dlq}.QueueName"))),
            "{dlq} has a depth alarm"
        );
    }
    let consumers: Vec<_> = all
        .iter()
        .filter(|(_, b)| b.contains("Type: AWS::Serverless::Function") && b.contains("Type: SQS"))
        .collect();
    assert!(!consumers.is_empty());
    for (name, body) in consumers {
        assert_eq!(
            values(body, "Timeout:"),
            [CONSUMER_TIMEOUT.as_secs()],
            "{name}"
        );
        assert_eq!(
            values(body, "MaximumConcurrency:"),
            [CONSUMER_MAX_CONCURRENCY as u64],
            "{name}"
        );
        assert!(body.contains("ReportBatchItemFailures"), "{name}");
    }
    let globals = t
        .split("\nGlobals:\n")
        .nth(1)
        .unwrap()
        .split("\nResources:")
        .next()
        .unwrap();
    assert_eq!(
        values(globals, "Timeout:"),
        [INGEST_TIMEOUT.as_secs()],
        "ingest functions' timeout"
    );
}

#[test]
fn the_relay_runs_every_minute_and_every_function_keeps_logs_for_a_while() {
    let t = template();
    let all = resources(&t);
    let relay = all
        .iter()
        .find(|(_, b)| b.contains("Binary: sweep-pending"))
        .expect("sweep-pending in the template");
    assert!(relay.1.contains("Schedule: rate(1 minute)"), "{}", relay.1);
    for (name, body) in all
        .iter()
        .filter(|(_, b)| b.contains("Type: AWS::Serverless::Function"))
    {
        let group = format!("/aws/lambda/${{{name}}}");
        assert!(
            all.iter()
                .any(|(_, b)| b.contains("Type: AWS::Logs::LogGroup")
                    && b.contains(&group)
                    && b.contains("RetentionInDays")),
            "{name} has a log group with retention"
        );
        assert!(body.contains("Binary: "), "{name} names its binary");
    }
    let allowed = t
        .lines()
        .find(|l| l.trim().starts_with("AllowedValues: [DEBUG"))
        .expect("LogLevel's allowed values");
    assert!(
        !allowed.contains("TRACE"),
        "TRACE would log raw API Gateway events"
    );
}

/// `key: value` (a number, quoted or not) on a line of `text`.
fn number(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .find_map(|v| v.trim().trim_matches('"').parse().ok())
}

#[test]
fn reserved_concurrency_times_pool_size_fits_the_database() {
    let t = template();
    let globals = t
        .split("\nGlobals:\n")
        .nth(1)
        .unwrap()
        .split("\nResources:")
        .next()
        .unwrap();
    let default_reserved =
        number(globals, "ReservedConcurrentExecutions:").expect("a default reservation");
    let default_pool = number(globals, "DB_POOL_SIZE:").expect("a default pool size");
    let max: u64 = t
        .split("\n  DatabaseMaxConnections:\n")
        .nth(1)
        .and_then(|p| number(p.split("\n\n").next().unwrap(), "Default:"))
        .expect("the DatabaseMaxConnections parameter");
    let mut total = 0;
    let mut rows = Vec::new();
    for (name, body) in resources(&t)
        .iter()
        .filter(|(_, b)| b.contains("Type: AWS::Serverless::Function"))
    {
        let reserved = number(body, "ReservedConcurrentExecutions:").unwrap_or(default_reserved);
        let pool = number(body, "DB_POOL_SIZE:").unwrap_or(default_pool);
        assert!(pool >= 1 && reserved >= 1, "{name}");
        if let Some(concurrency) = number(body, "MaximumConcurrency:") {
            assert!(
                reserved >= concurrency,
                "{name}: the trigger's concurrency fits its reservation"
            );
        }
        if body.contains("Binary: sweep-pending") || body.contains("Type: SQS") {
            assert!(
                pool >= 2,
                "{name} holds a connection (a lock) while it uses another"
            );
        }
        total += reserved * pool;
        rows.push(format!("{name}: {reserved} × {pool}"));
    }
    assert!(
        total + 20 <= max,
        "{total} connections at most, over {max} − 20: {rows:#?}"
    );
}
