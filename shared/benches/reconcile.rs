//! `scripts/bench reconcile`: reconciliation throughput (contacts checked per minute
//! under the real rate budgets, against a sandbox enforcing GHL's 100 requests / 10 s)
//! and the provider calls and writes per unchanged contact. Needs DF_BENCH_DATABASE_URL
//! (migrated, empty).
use std::time::{Duration, Instant};

use df_sandbox::SandboxConfig;
use df_shared::adapters::sync_store;
use df_shared::lambda::Settings;
use df_shared::sync::reconcile::Reconciler;
use serde_json::{json, Value};

fn settings(database_url: &str, sandbox: &str, aloware_per_10s: u32) -> Settings {
    Settings::from_pairs([
        ("DATABASE_URL", database_url.to_string()),
        ("GHL_BASE_URL", format!("{sandbox}/ghl")),
        ("GHL_API_KEY", "sandbox-ghl-token".into()),
        ("GHL_LOCATION_ID", "sandbox-location".into()),
        ("ALOWARE_BASE_URL", format!("{sandbox}/aloware")),
        ("ALOWARE_API_TOKEN", "sandbox-aloware-token".into()),
        ("ALOWARE_RATE_LIMIT_PER_10S", aloware_per_10s.to_string()),
        ("DB_POOL_SIZE", "4".into()),
    ])
}

async fn requests(http: &reqwest::Client, sandbox: &str) -> Vec<Value> {
    http.get(format!("{sandbox}/_sandbox/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::main]
async fn main() {
    let database_url = std::env::var("DF_BENCH_DATABASE_URL")
        .expect("DF_BENCH_DATABASE_URL: run scripts/bench reconcile");
    let contacts: u64 = std::env::var("DF_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let http = reqwest::Client::new();
    let (mut ghl, mut aloware) = (Vec::new(), Vec::new());
    for i in 0..contacts {
        let phone = format!("+1303555{i:04}");
        ghl.push(json!({"id": format!("r{i:05}"), "locationId": "sandbox-location", "firstName": format!("R{i}"),
            "lastName": "Bench", "phone": phone, "email": format!("r{i}@example.com"), "tags": []}));
        aloware.push(
            json!({"id": 100000 + i, "first_name": format!("R{i}"), "last_name": "Bench",
            "phone_number": phone, "email": format!("r{i}@example.com")}),
        );
    }
    http.post(format!("{sandbox}/_sandbox/seed"))
        .json(&json!({"ghl_contacts": ghl, "aloware_contacts": aloware}))
        .send()
        .await
        .unwrap();
    println!("== reconciliation benchmark: {contacts} mapped contacts, identical on both sides (sandbox at {sandbox})");
    for (label, aloware_per_10s) in [
        ("default budgets (GHL 90 / 10 s, Aloware 10 / 10 s)", 10),
        ("Aloware budget raised to 100 / 10 s (GHL-bound)", 100),
    ] {
        let s = settings(&database_url, &sandbox, aloware_per_10s);
        let reconciler = Reconciler::from_settings(&s).unwrap();
        let pool = reconciler.deps.pool.clone();
        for i in 0..contacts {
            let phone = format!("+1303555{i:04}");
            let id = (100000 + i).to_string();
            sync_store::save_mapping(
                &pool,
                Some(&id),
                &format!("r{i:05}"),
                Some(&phone),
                None,
                "bidirectional",
            )
            .await
            .unwrap();
        }
        // Let the sandbox's GHL window and the buckets refill.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let before = requests(&http, &sandbox).await.len();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
        let (_, status, totals) = reconciler.run(deadline).await.unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        let new: Vec<Value> = requests(&http, &sandbox)
            .await
            .into_iter()
            .skip(before)
            .collect();
        let count = |provider: &str, writes: bool| {
            new.iter()
                .filter(|r| r["provider"] == provider && (!writes || r["method"] != "GET"))
                .count()
        };
        let throttled = new.iter().filter(|r| r["status"] == 429).count();
        let checked = totals.checked.max(1) as f64;
        println!("{label}:");
        println!(
            "  run {status}: {} checked, drift {}, errors {} in {elapsed:.1} s = {:.0} contacts/min",
            totals.checked,
            totals.drift,
            totals.errors,
            totals.checked as f64 * 60.0 / elapsed
        );
        println!(
            "  per unchanged contact: {:.2} GHL calls, {:.2} Aloware calls, {:.2} writes (GHL {} / Aloware {} writes in all); 429 answers: {throttled}  (target: no write)",
            count("ghl", false) as f64 / checked,
            count("aloware", false) as f64 / checked,
            (count("ghl", true) + count("aloware", true)) as f64 / checked,
            count("ghl", true),
            count("aloware", true),
        );
    }
}
