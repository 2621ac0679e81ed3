//! `scripts/bench sync`: provider calls per event for each flow (against the sandbox),
//! and the GHL rate-budget utilisation when one location drains a backlog against a
//! sandbox that enforces 100 requests / 10 s. Needs DF_BENCH_DATABASE_URL (migrated).
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use df_sandbox::SandboxConfig;
use df_shared::adapters::event_store::{self, NewEvent};
use df_shared::adapters::rate_budget::RateBudget;
use df_shared::app::webhook_consumer;
use df_shared::domain::{aloware_webhook as aloware, EventKind, Source};
use df_shared::lambda::Settings;
use df_shared::pipeline::Consumer;
use df_shared::providers::ghl_api::{GhlApiConfig, GhlClient};
use df_shared::sync::WebhookRouter;
use serde_json::{json, Value};

struct Bench {
    sandbox: String,
    consumer: Consumer<WebhookRouter>,
    http: reqwest::Client,
}

impl Bench {
    async fn requests(&self) -> Vec<Value> {
        let url = format!("{}/_sandbox/requests", self.sandbox);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }

    /// Store an Aloware webhook, run it through the consumer, count provider calls.
    async fn aloware(&self, payload: Value) -> (usize, usize, usize) {
        let raw = payload.to_string();
        let aloware::AlowareWebhook::Event {
            classified,
            dedupe_key,
        } = aloware::classify(&payload, raw.as_bytes(), "US").unwrap()
        else {
            panic!("not an event")
        };
        let new = NewEvent {
            source: Source::Aloware,
            classified: &classified,
            payload_json: &raw,
            dedupe: &dedupe_key,
            texting: None,
            quarantine: None,
            received_at: None,
        };
        let stored = event_store::insert(&self.consumer.pool, EventKind::Webhook, &new)
            .await
            .unwrap();
        self.consume(stored.id()).await
    }

    async fn consume(&self, id: uuid::Uuid) -> (usize, usize, usize) {
        let before = self.requests().await.len();
        let mut record = SqsMessage::default();
        record.message_id = Some(id.to_string());
        record.body = Some(json!({"event_id": id, "kind": "webhook"}).to_string());
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let response = self.consumer.handle(event, deadline).await;
        assert!(response.batch_item_failures.is_empty(), "event failed");
        let new: Vec<Value> = self.requests().await.into_iter().skip(before).collect();
        let ghl = new.iter().filter(|r| r["provider"] == "ghl").count();
        let ghl_writes = new
            .iter()
            .filter(|r| r["provider"] == "ghl" && r["method"] != "GET")
            .count();
        let aloware = new.iter().filter(|r| r["provider"] == "aloware").count();
        (ghl, ghl_writes, aloware)
    }
}

fn consumer_settings(database_url: &str, sandbox: &str, policy: &str) -> Settings {
    Settings::from_pairs([
        ("DATABASE_URL", database_url.to_string()),
        (
            "WEBHOOK_EVENTS_QUEUE_URL",
            "http://127.0.0.1:1/000000000000/unused.fifo".into(),
        ),
        ("GHL_BASE_URL", format!("{sandbox}/ghl")),
        ("GHL_API_KEY", "sandbox-ghl-token".into()),
        ("GHL_LOCATION_ID", "sandbox-location".into()),
        ("ALOWARE_BASE_URL", format!("{sandbox}/aloware")),
        ("ALOWARE_API_TOKEN", "sandbox-aloware-token".into()),
        ("CONTACT_SOURCE_OF_TRUTH", policy.into()),
    ])
}

#[tokio::main]
async fn main() {
    let database_url = std::env::var("DF_BENCH_DATABASE_URL")
        .expect("DF_BENCH_DATABASE_URL: run scripts/bench sync");
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let settings = consumer_settings(&database_url, &sandbox, "merge");
    let consumer = webhook_consumer(&settings).await.unwrap();
    let pool = consumer.pool.clone();
    let b = Bench {
        sandbox: sandbox.clone(),
        consumer,
        http: reqwest::Client::new(),
    };
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let n: u64 = u64::from_str_radix(&run, 16).unwrap() % 9000 + 1000;
    let phone = format!("+1818600{n:04}");
    let contact = json!({"id": format!("c{run}"), "first_name": "Test", "last_name": "Merchant", "phone_number": phone,
        "email": format!("m{run}@example.com"), "timezone": "America/New_York"});

    println!("== sync benchmark (sandbox at {sandbox})");
    println!("provider calls per event (GHL total / GHL writes / Aloware):");
    let show = |flow: &str, (g, w, a): (usize, usize, usize), target: &str| {
        println!("  {flow:<52} {g} / {w} / {a}   {target}")
    };
    show(
        "new Aloware contact (policy merge)",
        b.aloware(json!({"event": "Contact-Created", "body": contact}))
            .await,
        "(target: 1 GHL call)",
    );
    let aloware_policy = consumer_settings(&database_url, &sandbox, "aloware");
    let b2 = Bench {
        sandbox: sandbox.clone(),
        consumer: webhook_consumer(&aloware_policy).await.unwrap(),
        http: reqwest::Client::new(),
    };
    let other = json!({"id": format!("d{run}"), "first_name": "Ann", "phone_number": format!("+1818602{n:04}")});
    show(
        "new Aloware contact (policy aloware)",
        b2.aloware(json!({"event": "Contact-Created", "body": other}))
            .await,
        "(target: 1 GHL call)",
    );
    let mut again = contact.clone();
    again["note"] = json!("same fields, new delivery");
    show(
        "unchanged Aloware contact",
        b.aloware(json!({"event": "Contact-Updated", "body": again}))
            .await,
        "(target: no write)",
    );
    let call = |id: &str, event: &str, extra: Value| {
        let mut body = json!({"id": id, "direction": 2, "disposition_status2": 4, "talk_time": 63, "user_id": 7,
            "contact_id": format!("c{run}"), "lead_number": phone, "created_at": "2026-08-05 20:58:49"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        json!({"event": event, "body": body})
    };
    let call_id = format!("9{n}");
    show(
        "call disposition, mapped contact",
        b.aloware(call(
            &call_id,
            "OutboundPhoneCall-DispositionCompleted",
            json!({"call_disposition": "No Answer"}),
        ))
        .await,
        "(target: ≤ 3 GHL calls)",
    );
    show(
        "Recording-Saved",
        b.aloware(call(
            &call_id,
            "Recording-Saved",
            json!({"direct_recording_url": "https://x/r"}),
        ))
        .await,
        "(target: ≤ 3)",
    );
    show("transcription.call.summarized", b.aloware(json!({"event": "transcription.call.summarized",
        "body": {"communication": {"id": call_id}, "summary": "Callback.", "transcription": {"id": 1}}})).await, "(target: ≤ 3)");
    let mut unknown = call(
        &format!("8{n}"),
        "OutboundPhoneCall-DispositionCompleted",
        json!({"call_disposition": "Interested"}),
    );
    unknown["body"]["contact_id"] = json!(format!("u{run}"));
    unknown["body"]["lead_number"] = json!(format!("+1818601{:04}", n));
    show(
        "call disposition, contact unknown to GHL",
        b.aloware(unknown).await,
        "(target: ≤ 3)",
    );

    // Rate budget: one location drains a backlog of GHL calls from 16 concurrent workers.
    let budget = RateBudget::new(pool, 90, 100, Duration::from_secs(10));
    let cfg = GhlApiConfig {
        base_url: format!("{sandbox}/ghl"),
        token: "sandbox-ghl-token".into(),
        location_id: format!("bench-{run}"),
    };
    let client = Arc::new(GhlClient::new(reqwest::Client::new(), cfg, budget));
    let before = b.requests().await.len();
    let total: usize = std::env::var("DF_BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    // Let the sandbox's window forget the calls above.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                let mut errors = 0;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    if client.get_contact("missing").await.is_err() {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = 0;
    for t in tasks {
        errors += t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let reqs: Vec<Value> = b.requests().await.into_iter().skip(before).collect();
    let throttled = reqs.iter().filter(|r| r["status"] == 429).count();
    let rate = total as f64 / elapsed;
    println!(
        "rate budget, one location, {total} GHL calls from 16 workers against 100 req / 10 s:"
    );
    println!("  {rate:.2} req/s over {elapsed:.1} s = {:.0} % of the allowed 10 req/s; 429 answers: {throttled}; errors: {errors}  (target ≥ 90 %, zero 429s)", rate * 10.0);
}
