//! `scripts/bench ingest`: ingest throughput against a bare INSERT loop (same Postgres,
//! same pool, same concurrency), the emulator's own SendMessage rate, the handler's CPU
//! per webhook, and the cold start of a release webhook binary. Every ratio printed is
//! between figures measured in this run: the bare INSERT and ingest loops run in
//! alternating rounds (the order flips each round) and the medians are compared, so
//! neither phase benefits from running second on a warmer table. Needs
//! DF_BENCH_DATABASE_URL (migrated), AWS_ENDPOINT_URL (moto) and WEBHOOK_EVENTS_QUEUE_URL.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::{engine::general_purpose::STANDARD, Engine};
use df_shared::adapters::event_store::{self, NewEvent};
use df_shared::auth::GhlKeys;
use df_shared::domain::{aloware_webhook as aloware, ghl_webhook as ghl, EventKind, Source};
use df_shared::ingest::webhook_ghl::{handle as ghl_handle, GhlWebhookAuth};
use df_shared::lambda::Settings;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::Signer as _;
use serde_json::json;
use uuid::Uuid;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench ingest"))
}

fn contact_body(i: usize, run: &str) -> String {
    json!({"type": "ContactUpdate", "locationId": "ve9EPM428h8vShlRW1KT", "id": format!("c-{run}-{i}"),
        "firstName": "John", "lastName": "Deo", "email": "johndeo@example.com", "phone": "+12025550177",
        "tags": ["hot lead", "call list"], "address1": "3535 1st St N", "city": "Springfield", "state": "AL",
        "postalCode": "35201", "country": "US", "source": "xyz form", "dnd": false,
        "customFields": [{"id": "BcdmQEsNgz6AVpgLVUJ0", "value": "XYZ Corp"}],
        "webhookId": format!("wh-{run}-{i}"), "timestamp": chrono::Utc::now().to_rfc3339()})
    .to_string()
}

/// A new, empty FIFO queue: moto's SendMessage slows down as a FIFO queue fills, so
/// each phase that enqueues gets its own.
async fn fresh_queue(aws: &aws_config::SdkConfig) -> df_shared::adapters::queue::EventQueue {
    let out = aws_sdk_sqs::Client::new(aws)
        .create_queue()
        .queue_name(format!("bench-{}.fifo", Uuid::new_v4().simple()))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create a queue in the emulator");
    df_shared::adapters::queue::EventQueue::new(aws, out.queue_url().unwrap())
}

/// Run `total` operations over `concurrency` tasks; returns operations per second.
async fn throughput<F, Fut>(total: usize, concurrency: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median of per-iteration times of a CPU-bound closure, in microseconds.
fn cpu_micros(iterations: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..iterations / 10 {
        f(i); // warm-up
    }
    let mut samples = Vec::with_capacity(10);
    for round in 0..10 {
        let start = Instant::now();
        for i in 0..iterations / 10 {
            f(round * iterations + i);
        }
        samples.push(start.elapsed().as_secs_f64() * 1e6 / (iterations / 10) as f64);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[5]
}

async fn cold_start_ms(binary: &str, extra_env: &[(&str, String)]) -> Option<f64> {
    use tokio::io::AsyncReadExt;
    if !std::path::Path::new(binary).exists() {
        return None;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut runs = Vec::new();
    for _ in 0..15 {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "webhook-ghl")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        // Ready = the runtime asks for its first invocation.
        let (mut sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .ok()?
            .ok()?;
        let mut buf = [0u8; 256];
        let _ = sock.read(&mut buf).await;
        runs.push(start.elapsed().as_secs_f64() * 1e3);
        let _ = child.kill().await;
    }
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(runs[runs.len() / 2])
}

#[tokio::main]
async fn main() {
    let database_url = env("DF_BENCH_DATABASE_URL");
    let queue_url = env("WEBHOOK_EVENTS_QUEUE_URL");
    let endpoint = env("AWS_ENDPOINT_URL");
    let settings = Settings::from_pairs([
        ("DATABASE_URL", database_url.as_str()),
        ("WEBHOOK_EVENTS_QUEUE_URL", queue_url.as_str()),
        ("DB_POOL_SIZE", "16"),
    ]);
    let ingest = df_shared::ingest::Ingest::from_settings(&settings, EventKind::Webhook)
        .await
        .unwrap();
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
    let pem = signing
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let keys = GhlKeys::from_pem(&pem, df_shared::auth::ghl_signature::PUBLISHED_RSA_PEM).unwrap();
    let n1: usize = std::env::var("DF_BENCH_N1")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let n16: usize = std::env::var("DF_BENCH_N16")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20000);
    // The split-CPU run of `scripts/bench` repeats only the INSERT / ingest ratios.
    let throughput_only = std::env::var_os("DF_BENCH_THROUGHPUT_ONLY").is_some();
    let moto_total: usize = std::env::var("DF_BENCH_MOTO_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);

    println!(
        "== ingest benchmark (Postgres: {}, SQS: moto at {endpoint})",
        database_url.rsplit('@').next().unwrap_or("")
    );

    // Pure handler work per webhook: verify + parse + classify + dedupe key, no I/O.
    let run = Uuid::new_v4().simple().to_string();
    let bodies: Vec<(String, String)> = (0..2000)
        .map(|i| {
            let b = contact_body(i, &run);
            let sig = STANDARD.encode(signing.sign(b.as_bytes()).to_bytes());
            (b, sig)
        })
        .collect();
    let ghl_cpu = cpu_micros(20_000, |i| {
        let (b, sig) = &bodies[i % bodies.len()];
        keys.verify(Some(sig), None, b.as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        std::hint::black_box(ghl::classify(&v, b.as_bytes(), "US").unwrap());
    });
    let aloware_body = json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": 940868616, "type": 1,
        "direction": 2, "disposition_status2": 4, "call_disposition": "No Answer", "talk_time": 63, "contact_id": 155091981,
        "lead_number": "+12025550177", "incoming_number": "+12025550142", "created_at": "2026-08-05 20:58:49",
        "contact": {"id": 155091981, "phone_number": "+12025550177", "first_name": "Test", "last_name": "Merchant"}}})
    .to_string();
    let auth = format!("Basic {}", STANDARD.encode("aloware:pass"));
    let aloware_cpu = cpu_micros(20_000, |_| {
        assert!(df_shared::auth::basic_auth_matches(
            Some(&auth),
            "aloware",
            "pass"
        ));
        let v: serde_json::Value = serde_json::from_str(&aloware_body).unwrap();
        std::hint::black_box(aloware::classify(&v, aloware_body.as_bytes(), "US").unwrap());
    });
    println!("handler CPU per webhook (no I/O, median of 10 rounds):");
    println!("  GHL ContactUpdate, Ed25519 verify + parse + classify: {ghl_cpu:.1} µs  (target < 300 µs)");
    println!("  Aloware call, Basic auth + parse + classify + E.164:  {aloware_cpu:.1} µs  (target < 300 µs)");

    // Bare INSERT loop: the same row shape into the same table, no handler.
    let insert_sql = "INSERT INTO webhook_events (source, event_type, entity_type, entity_id, person_key, location_id, payload_json, dedupe_key) \
                      VALUES ('ghl', 'ContactUpdate', 'contact', $1, $2, 'loc', $3::text::jsonb, $4)";
    let body_len = bodies[0].0.len();
    let rounds: usize = std::env::var("DF_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!("throughput (ops/s; payload ≈ {body_len} bytes; pool of 16; {rounds} alternating rounds, medians):");
    for (concurrency, total) in [(1usize, n1 / rounds), (16usize, n16 / rounds)] {
        let mut bare_rounds = Vec::new();
        let mut ingest_rounds = Vec::new();
        let mut statement_rounds = Vec::new();
        for round in 0..rounds {
            let bare = || {
                let tag = Uuid::new_v4().simple().to_string();
                let pool = ingest.pool.clone();
                let payload = bodies[0].0.clone();
                throughput(total, concurrency, move |i| {
                    let (pool, payload, tag) = (pool.clone(), payload.clone(), tag.clone());
                    async move {
                        let client = pool.get().await.unwrap();
                        let stmt = client.prepare_cached(insert_sql).await.unwrap();
                        let key = format!("bare-{tag}-{i}");
                        client
                            .execute(&stmt, &[&key, &key, &payload, &key])
                            .await
                            .unwrap();
                    }
                })
            };
            // The ingest path up to the commit: verify, parse, classify, dedupe key,
            // and the one INSERT statement that also resolves the person key.
            let to_commit = || {
                let run = Uuid::new_v4().simple().to_string();
                let signed: Arc<Vec<(String, String)>> = Arc::new(
                    (0..total)
                        .map(|i| {
                            let b = contact_body(i, &run);
                            let sig = STANDARD.encode(signing.sign(b.as_bytes()).to_bytes());
                            (b, sig)
                        })
                        .collect(),
                );
                let (pool, keys) = (ingest.pool.clone(), keys.clone());
                throughput(total, concurrency, move |i| {
                    let (pool, keys, signed) = (pool.clone(), keys.clone(), signed.clone());
                    async move {
                        let (b, sig) = &signed[i];
                        keys.verify(Some(sig), None, b.as_bytes()).unwrap();
                        let v: serde_json::Value = serde_json::from_str(b).unwrap();
                        let w = ghl::classify(&v, b.as_bytes(), "US").unwrap();
                        let new = NewEvent {
                            source: Source::Ghl,
                            classified: &w.classified,
                            payload_json: b,
                            dedupe: &w.dedupe_key,
                            texting: None,
                            quarantine: None,
                            received_at: None,
                        };
                        event_store::insert(&pool, EventKind::Webhook, &new)
                            .await
                            .unwrap();
                    }
                })
            };
            // The store statement alone (bodies classified beforehand): what the
            // database pays for the ingest, without the handler's CPU.
            let statement_only = || {
                let run = Uuid::new_v4().simple().to_string();
                let classified: Arc<Vec<(String, ghl::GhlWebhook)>> = Arc::new(
                    (0..total)
                        .map(|i| {
                            let b = contact_body(i, &run);
                            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
                            let w = ghl::classify(&v, b.as_bytes(), "US").unwrap();
                            (b, w)
                        })
                        .collect(),
                );
                let pool = ingest.pool.clone();
                throughput(total, concurrency, move |i| {
                    let (pool, classified) = (pool.clone(), classified.clone());
                    async move {
                        let (b, w) = &classified[i];
                        let new = NewEvent {
                            source: Source::Ghl,
                            classified: &w.classified,
                            payload_json: b,
                            dedupe: &w.dedupe_key,
                            texting: None,
                            quarantine: None,
                            received_at: None,
                        };
                        event_store::insert(&pool, EventKind::Webhook, &new)
                            .await
                            .unwrap();
                    }
                })
            };
            if round % 2 == 0 {
                bare_rounds.push(bare().await);
                ingest_rounds.push(to_commit().await);
                statement_rounds.push(statement_only().await);
            } else {
                statement_rounds.push(statement_only().await);
                ingest_rounds.push(to_commit().await);
                bare_rounds.push(bare().await);
            }
        }
        let (bare, store_only) = (median(&bare_rounds), median(&ingest_rounds));
        let per_round: Vec<f64> = ingest_rounds
            .iter()
            .zip(&bare_rounds)
            .map(|(i, b)| 100.0 * i / b)
            .collect();
        let c = concurrency;
        println!("  concurrency {c:>2}: bare INSERT {bare:>8.0} | ingest to commit {store_only:>8.0} = {:.0} % of INSERT (per-round ratios {})",
            100.0 * store_only / bare,
            per_round.iter().map(|r| format!("{r:.0} %")).collect::<Vec<_>>().join(", "));
        let statement = median(&statement_rounds);
        println!("                  the store statement alone (classified beforehand) {statement:>8.0} = {:.0} % of INSERT",
            100.0 * statement / bare);

        if throughput_only {
            continue;
        }
        let aws = df_shared::adapters::queue::aws_config().await;
        let queue = fresh_queue(&aws).await;
        let send = throughput(moto_total, concurrency, move |i| {
            let queue = queue.clone();
            async move {
                queue
                    .send(
                        Uuid::new_v4(),
                        EventKind::Webhook,
                        &format!("g{}", i % 64),
                        1,
                    )
                    .await
                    .unwrap();
            }
        })
        .await;
        // The full handler: the above plus SendMessage to moto and the JSON answer.
        let run = Uuid::new_v4().simple().to_string();
        let requests: Arc<Vec<(String, String)>> = Arc::new(
            (0..moto_total)
                .map(|i| {
                    let b = contact_body(i, &run);
                    let sig = STANDARD.encode(signing.sign(b.as_bytes()).to_bytes());
                    (b, sig)
                })
                .collect(),
        );
        let cfg = Arc::new(GhlWebhookAuth::new(keys.clone(), None));
        let mut fresh = ingest.clone();
        fresh.queue = fresh_queue(&aws).await;
        let ingest2 = Arc::new(fresh);
        let full = throughput(moto_total, concurrency, move |i| {
            let (cfg, ingest, requests) = (cfg.clone(), ingest2.clone(), requests.clone());
            async move {
                let (b, sig) = &requests[i];
                let req = lambda_http::http::Request::builder()
                    .method("POST")
                    .uri("http://localhost/api/webhooks/ghl")
                    .header("x-ghl-signature", sig.as_str())
                    .body(lambda_http::Body::Text(b.clone()))
                    .unwrap();
                let resp = ghl_handle(&ingest, &cfg, req).await;
                assert_eq!(resp.status(), 200);
            }
        })
        .await;
        let bound = 1.0 / (1.0 / bare + 1.0 / send);
        println!("                  moto SendMessage {send:>6.0} ({moto_total} sends, fresh queue) | full handler incl. enqueue {full:>6.0} = {:.0} % of the serial INSERT+send bound {bound:.0}",
            100.0 * full / bound);
    }

    if throughput_only {
        return;
    }
    let bin =
        std::env::var("DF_BENCH_BINARY").unwrap_or_else(|_| "target/release/webhook-ghl".into());
    let base_env = vec![
        ("DATABASE_URL", database_url.clone()),
        ("WEBHOOK_EVENTS_QUEUE_URL", queue_url.clone()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
    ];
    match cold_start_ms(&bin, &base_env).await {
        Some(ms) => println!("cold start of {bin} (spawn → first /next request, median of 15): {ms:.1} ms  (target < 50 ms)"),
        None => println!("cold start: {bin} missing or did not start"),
    }
    if let Ok(secret_id) = std::env::var("DF_BENCH_SECRET_ID") {
        let mut with_secret = base_env.clone();
        with_secret.push(("CONFIG_SECRET_ID", secret_id));
        if let Some(ms) = cold_start_ms(&bin, &with_secret).await {
            println!("cold start with one Secrets Manager read (moto): {ms:.1} ms");
        }
    }
}
