//! `scripts/bench catchup`: how long after a GHL outage until GHL is current, against
//! the floor GHL itself sets (GHL calls made ÷ the location's budget of 90 per 10 s).
//!
//! The end-to-end world of the tests (strict sandbox, fresh database, template-shaped
//! FIFO queues in the emulator, several pollers per queue as Lambda runs batches, the
//! relay on the production schedule): `DF_BENCH_CATCHUP_PEOPLE` people (default 250)
//! are created in GHL, then GHL answers 503 to everything for
//! `DF_BENCH_OUTAGE_SECONDS` (default 60) while each person's hour of traffic arrives
//! — 2 contact updates, 4 calls (disposition, recording, summary) and 6 texts: 20
//! events each, 5,000 by default. From the moment GHL recovers it measures the time
//! until every event is done, the GHL calls made, 429 answers, per-person order, and
//! the webhook-to-write latency of live calls arriving during the drain.
#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::world::{poll_queue, World, POLLERS};
use common::{db_client, sqs};
use df_sandbox::SandboxConfig;
use serde_json::{json, Value};

const OUR_NUMBER: &str = "+12025550142";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn phone(i: u64) -> String {
    format!("+1303555{i:04}")
}

fn contact(i: u64, event: &str, note: &str, minute: u64) -> Value {
    json!({"event": event, "body": {"id": 700000 + i, "first_name": "Catch", "last_name": format!("Up{i}"),
        "phone_number": phone(i), "email": format!("catchup{i}@example.com"), "notes": note,
        "updated_at": format!("2026-12-01 10:{minute:02}:00")}})
}

fn call(i: u64, n: u64, event: &str) -> Value {
    let id = 80_000_000 + i * 10 + n;
    let base = json!({"id": id, "direction": 2, "talk_time": 63, "wait_time": 2, "user_id": 120776,
        "incoming_number": OUR_NUMBER, "lead_number": phone(i), "contact_id": 700000 + i,
        "created_at": format!("2026-12-01 10:{:02}:00", 10 + n)});
    let mut body = base.clone();
    match event {
        "OutboundPhoneCall-DispositionCompleted" => {
            body["current_status2"] = json!(9);
            body["disposition_status2"] = json!(4);
            body["call_disposition"] = json!("No Answer");
        }
        "Recording-Saved" => {
            body["disposition_status2"] = json!(4);
            body["direct_recording_url"] = json!(format!("https://app.aloware.io/r/{id}"));
        }
        _ => {
            return json!({"event": event, "body": {"communication": {"id": id},
                "summary": "Callback tomorrow.", "transcription": {"id": id}}})
        }
    }
    json!({"event": event, "body": body})
}

fn text(i: u64, n: u64) -> Value {
    json!({"type": "message.received", "data": {"id": format!("cu-{i}-{n}"), "from": phone(i),
        "to": OUR_NUMBER, "body": format!("question {n} about my account"),
        "createdAt": format!("2026-12-01T10:{:02}:00Z", 20 + n)}})
}

async fn ghl_requests(w: &World) -> Vec<Value> {
    w.requests("ghl").await
}

async fn unfinished(w: &World) -> i64 {
    w.unfinished().await
}

#[tokio::main]
async fn main() {
    let people = env_or("DF_BENCH_CATCHUP_PEOPLE", 250);
    let outage = env_or("DF_BENCH_OUTAGE_SECONDS", 60);
    let relay_every = Duration::from_secs(env_or("DF_BENCH_RELAY_SECONDS", 60));
    let w = World::with_texting(
        SandboxConfig::default(),
        &[
            // The template's defaults, not the tests' short ones.
            ("RETRY_BASE_SECONDS", "30"),
            ("OUTAGE_PROBE_SECONDS", "10"),
            ("TEXTING_STOP_CONFIRMATION", ""),
            ("TEXTING_HELP_REPLY", ""),
        ],
    )
    .await;
    let sqs = sqs().await;
    let stop = AtomicBool::new(false);
    let relay = w.relay().await;
    let texting = w.texting.as_ref().expect("a texting world");

    // The consumers and the relay run throughout, as in production.
    let pollers = async {
        let webhook = (0..POLLERS).map(|_| async {
            while !stop.load(Ordering::SeqCst) {
                if w.poll_once(&sqs).await == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let texts = (0..POLLERS).map(|_| async {
            while !stop.load(Ordering::SeqCst) {
                if poll_queue(&texting.consumer, &sqs, &texting.queue_url).await == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        futures::join!(
            futures::future::join_all(webhook),
            futures::future::join_all(texts)
        );
    };
    let relaying = async {
        let mut last = Instant::now() - relay_every;
        while !stop.load(Ordering::SeqCst) {
            if last.elapsed() >= relay_every {
                last = Instant::now();
                relay.run_once().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };

    let scenario = async {
        println!("== catch-up benchmark: {people} people, GHL down {outage} s, relay every {relay_every:?}");
        // Everyone exists in GHL first (and one more person for the live calls).
        for i in 0..=people {
            w.aloware_webhook(contact(i, "Contact-Created", "", 0))
                .await;
        }
        while unfinished(&w).await > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!("  {} people created in GHL", people + 1);

        w.sandbox_post(
            "faults",
            json!({"provider": "ghl", "status": 503, "seconds": outage}),
        )
        .await;
        let down = Instant::now();
        let mut events = 0;
        for i in 0..people {
            for n in 0..2 {
                w.aloware_webhook(contact(i, "Contact-Updated", &format!("update {n}"), 1 + n))
                    .await;
                events += 1;
            }
            for n in 0..4 {
                for event in [
                    "OutboundPhoneCall-DispositionCompleted",
                    "Recording-Saved",
                    "transcription.call.summarized",
                ] {
                    w.aloware_webhook(call(i, n, event)).await;
                    events += 1;
                }
            }
            for n in 0..6 {
                w.texting_webhook(text(i, n)).await;
                events += 1;
            }
        }
        println!(
            "  {events} events acknowledged during the outage in {:.1} s",
            down.elapsed().as_secs_f64()
        );
        let remaining = Duration::from_secs(outage).saturating_sub(down.elapsed());
        tokio::time::sleep(remaining).await;
        let before = ghl_requests(&w).await.len();
        let restored = Instant::now();
        println!("  GHL restored; draining");

        // Live calls of the extra person, one every 10 s, while the backlog drains.
        let mut live = 0u64;
        let mut live_ids: Vec<String> = Vec::new();
        let mut next_live = Instant::now();
        loop {
            if unfinished(&w).await == 0 {
                break;
            }
            if next_live <= Instant::now() {
                let event = call(people, 100 + live, "OutboundPhoneCall-DispositionCompleted");
                live_ids.push(event["body"]["id"].to_string());
                w.aloware_webhook(event).await;
                live += 1;
                next_live = Instant::now() + Duration::from_secs(10);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let elapsed = restored.elapsed().as_secs_f64();
        let after: Vec<Value> = ghl_requests(&w).await.into_iter().skip(before).collect();
        let calls = after.len();
        let throttled = after.iter().filter(|r| r["status"] == 429).count();
        let floor = calls as f64 / 9.0;
        let db = db_client(&w.stack.database_url).await;
        let count = |sql: &'static str| {
            let db = &db;
            async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
        };
        let not_done = count(
            "SELECT (SELECT count(*) FROM webhook_events WHERE status NOT IN ('done','skipped'))
                  + (SELECT count(*) FROM texting_webhook_events WHERE status NOT IN ('done','skipped'))",
        )
        .await;
        let out_of_order = count(
            "SELECT (SELECT count(*) FROM webhook_events a JOIN webhook_events b
                       ON a.person_key = b.person_key AND a.received_at < b.received_at
                      AND a.processed_at > b.processed_at)
                  + (SELECT count(*) FROM texting_webhook_events a JOIN texting_webhook_events b
                       ON a.person_key = b.person_key AND a.received_at < b.received_at
                      AND a.processed_at > b.processed_at)",
        )
        .await;
        let latencies: Vec<f64> = db
            .query(
                "SELECT extract(epoch FROM processed_at - received_at)::float8 FROM webhook_events
                 WHERE event_type LIKE '%Disposition%' AND entity_id = ANY($1) ORDER BY 1",
                &[&live_ids],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let p95 = latencies
            .get(((latencies.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN);
        let per_flow = after.iter().fold(
            std::collections::BTreeMap::<String, usize>::new(),
            |mut m, r| {
                let path = r["path"].as_str().unwrap_or("");
                // Ids (segments holding digits) read as `{id}`: one key per resource.
                let shape: Vec<&str> = path
                    .split('/')
                    .map(|p| {
                        if p.len() >= 8 && p.chars().any(|c| c.is_ascii_digit()) {
                            "{id}"
                        } else {
                            p
                        }
                    })
                    .collect();
                let key = format!("{} {}", r["method"].as_str().unwrap_or(""), shape.join("/"));
                *m.entry(key).or_default() += 1;
                m
            },
        );
        println!("  drained in {elapsed:.1} s; GHL calls {calls} ({:.2} per event); floor {floor:.1} s at 9 req/s", calls as f64 / events as f64);
        println!(
            "  catch-up = floor / time = {:.0} % (target ≥ 90 %); 429 answers: {throttled}; not done: {not_done}; per-person order violations: {out_of_order}",
            floor / elapsed * 100.0
        );
        println!(
            "  live calls during the drain: {} ; webhook → write p95 {p95:.1} s, max {:.1} s",
            latencies.len(),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
        println!("  GHL calls after the restore by method and resource: {per_flow:?}");
        stop.store(true, Ordering::SeqCst);
    };
    futures::join!(pollers, relaying, scenario);
}
