//! End to end: webhook → ingest handler → SQS FIFO queue (moto, with the template's
//! visibility timeout and redrive policy) → `process-webhook-events` fed the received
//! messages by several concurrent pollers, as Lambda runs several batches at once
//! (successes deleted, failures left for redelivery) → provider sandbox over HTTP.
//! Then the sandbox's state is checked.
mod common;

use common::world::*;
use common::*;
use df_sandbox::SandboxConfig;
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_aloware as aloware;
use df_shared::ingest::webhook_ghl::{self as ghl, GhlWebhookAuth};
use df_shared::pipeline::deployment::CONSUMER_TIMEOUT;
use serde_json::{json, Value};
use std::time::Duration;

/// A call lifecycle of the captured shape (init → disposition → recording → summary).
/// `n` call dispositions, ids from `first_id`, each to its own person (`prefix` + i).
async fn send_calls(w: &World, n: i64, first_id: i64, prefix: &str) {
    for i in 0..n {
        let mut call = call_lifecycle()[1].clone();
        call["body"]["id"] = json!(first_id + i);
        call["body"]["lead_number"] = json!(format!("{prefix}{i}"));
        w.aloware_webhook(call).await;
    }
}

fn call_lifecycle() -> Vec<Value> {
    let base = json!({"id": 940868616, "direction": 2, "talk_time": 63, "wait_time": 2, "user_id": 120776,
        "incoming_number": "+12025550142", "lead_number": "+12025550177", "created_at": "2026-08-05 20:58:49"});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    vec![
        json!({"event": "OutboundPhoneCall", "body": with(json!({"current_status2": 1, "disposition_status2": 1, "talk_time": 0, "user_id": null}))}),
        json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": with(json!({"current_status2": 9, "disposition_status2": 4, "call_disposition": "No Answer"}))}),
        json!({"event": "Recording-Saved", "body": with(json!({"current_status2": 9, "disposition_status2": 4, "direct_recording_url": "https://app.aloware.io/static/recording/fixture"}))}),
        json!({"event": "transcription.call.summarized", "body": {"communication": {"id": 940868616}, "summary": "Seller confirmed coverage and scheduled a callback.",
            "transcription": {"id": 1, "transcription_id": "abc", "driver": "deepgram"}, "contact": {"id": 155091981}}}),
    ]
}

#[tokio::test]
async fn a_call_lifecycle_yields_exactly_one_note_with_everything() {
    let w = World::new().await;
    for event in call_lifecycle() {
        w.aloware_webhook(event).await;
    }
    // Call-Disposed repeating the disposition is a duplicate at ingest.
    let repeat = json!({"event": "Call-Disposed", "body": call_lifecycle()[1]["body"].clone()});
    assert_eq!(w.aloware_webhook(repeat).await["duplicate"], true);
    w.drain_queue().await;

    let state = w.state().await;
    let contacts = state["ghl"]["contacts"].as_array().unwrap();
    assert_eq!(
        contacts.len(),
        1,
        "one contact created for the lead: {contacts:?}"
    );
    assert_eq!(contacts[0]["phone"], "+12025550177");
    let tags: Vec<&str> = contacts[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"call: no answer") && tags.contains(&"outbound call"),
        "{tags:?}"
    );
    let notes = state["ghl"]["notes"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|n| n.as_array().unwrap().clone())
        .collect::<Vec<_>>();
    assert_eq!(notes.len(), 1, "one note per call: {notes:?}");
    let body = notes[0]["body"].as_str().unwrap();
    for part in [
        "Disposition: No Answer",
        "https://app.aloware.io/static/recording/fixture",
        "Seller confirmed coverage",
    ] {
        assert!(body.contains(part), "{part} missing from note: {body}");
    }
    let statuses = w.statuses().await;
    assert_eq!(
        statuses[0].1, "skipped",
        "initiation is skipped: {statuses:?}"
    );
    assert!(statuses[1..].iter().all(|s| s.1 == "done"), "{statuses:?}");
    // GHL calls per call event: ≤ 3 (SPEC §12).
    let ghl_calls = w.requests("ghl").await.len();
    assert!(
        ghl_calls <= 3 + 1 + 1,
        "disposition ≤ 3, recording 1, summary 1; got {ghl_calls}"
    );
}

#[tokio::test]
async fn aloware_contact_reaches_ghl_and_its_echo_is_skipped() {
    let w = World::new().await;
    let contact = json!({"id": 155091981, "first_name": "Test", "last_name": "Merchant", "phone_number": "+12025550177",
        "email": "merchant@example.com", "timezone": "America/New_York", "lead_source": "Google Ads", "intake_source": "gohighlevel"});
    w.aloware_webhook(json!({"event": "Contact-Created", "body": contact}))
        .await;
    w.drain_queue().await;
    let state = w.state().await;
    let ghl_contact = state["ghl"]["contacts"][0].clone();
    assert_eq!(ghl_contact["firstName"], "Test");
    assert_eq!(ghl_contact["email"], "merchant@example.com");
    let field_id = w.custom_field_id("aloware_contact_id").await;
    assert!(
        ghl_contact["customFields"]
            .as_array()
            .unwrap()
            .contains(&json!({"id": field_id, "value": "155091981"})),
        "written by id, read back as {{id, value}}: {}",
        ghl_contact["customFields"]
    );

    // GHL now sends the ContactUpdate our write caused: an echo, not a change.
    let echo = json!({"contact_id": ghl_contact["id"], "customData": {"event": "ContactUpdate"}});
    w.ghl_workflow_webhook(echo).await;
    let aloware_before = w.requests("aloware").await.len();
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses.last().unwrap().1, "skipped");
    assert_eq!(
        statuses.last().unwrap().2.as_deref(),
        Some("echo of a middleware write"),
        "{statuses:?}"
    );
    assert_eq!(
        w.requests("aloware").await.len(),
        aloware_before,
        "no Aloware call for an echo"
    );

    // The same contact again changes nothing and writes nothing.
    let ghl_writes = |reqs: &[Value]| reqs.iter().filter(|r| r["method"] != "GET").count();
    let before = ghl_writes(&w.requests("ghl").await);
    let mut again = contact.clone();
    again["updated_at"] = json!("later");
    w.aloware_webhook(json!({"event": "Contact-Updated", "body": again}))
        .await;
    w.drain_queue().await;
    assert_eq!(
        ghl_writes(&w.requests("ghl").await),
        before,
        "an unchanged contact costs no write"
    );
}

#[tokio::test]
async fn twenty_interleaved_updates_of_a_contact_end_in_the_last_state() {
    let mut w = World::new().await;
    let signer = GhlSigner::install(&mut w);
    // Complete ContactUpdate bodies: the consumer applies their own fields (no re-read),
    // so applying them out of order would end in an earlier state. Email is the field
    // where GHL's newest value must win under the default `merge` policy.
    for i in 0..20 {
        for (id, first, phone) in [
            ("gc1", "Ann", "+12025550111"),
            ("gc2", "Bob", "+12025550112"),
        ] {
            signer
                .send(&w, json!({"type": "ContactUpdate", "id": id, "locationId": "sandbox-location", "firstName": first,
                    "lastName": "Lee", "phone": phone, "email": format!("{first}{i}@example.com"), "tags": [],
                    "webhookId": format!("{id}-{i}"), "timestamp": chrono::Utc::now().to_rfc3339()}))
                .await;
        }
    }
    w.drain_queue().await;
    let state = w.state().await;
    let alo = state["aloware"]["contacts"].as_array().unwrap();
    assert_eq!(alo.len(), 2, "{alo:?}");
    let email_of = |phone: &str| {
        alo.iter()
            .find(|c| c["phone_number"] == phone)
            .map(|c| c["email"].clone())
    };
    assert_eq!(
        email_of("+12025550111"),
        Some(json!("ann19@example.com")),
        "final state equals the last update"
    );
    assert_eq!(email_of("+12025550112"), Some(json!("bob19@example.com")));
    let client = db_client(&w.stack.database_url).await;
    let mapped: i64 = client
        .query_one("SELECT count(*) FROM contact_mappings WHERE ghl_contact_id IN ('gc1', 'gc2') AND aloware_contact_id IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mapped, 2);
    // One applied sync per update. Our own Aloware budget (1 call/s) may turn an
    // attempt away under load: those rows are `throttled` retries that applied nothing.
    let logged: i64 = client
        .query_one("SELECT count(*) FROM sync_log WHERE status <> 'error'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 40, "one sync_log row per sync");
    let other: i64 = client
        .query_one(
            "SELECT count(*) FROM sync_log WHERE status = 'error' AND decisions->>'class' <> 'throttled'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(other, 0, "no failed attempt but our own throttling");
    // No Aloware endpoint that does not exist was called.
    for r in w.requests("aloware").await {
        let path = r["path"].as_str().unwrap();
        assert!(
            path.starts_with("/aloware/api/v1/webhook/forms")
                || path.starts_with("/aloware/api/v1/webhook/contact/phone-number"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn provider_errors_retry_until_done_without_double_writes() {
    let w = World::with_short_rate_window().await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 500, "count": 3}),
    )
    .await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 429, "count": 2}),
    )
    .await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses[0].1, "done", "{statuses:?}");
    let state = w.state().await;
    let notes: usize = state["ghl"]["notes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_array().unwrap().len())
        .sum();
    assert_eq!(notes, 1, "applied once despite five failed attempts");
    let client = db_client(&w.stack.database_url).await;
    let attempts: i32 = client
        .query_one("SELECT attempts FROM webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(attempts >= 2, "retried ({attempts} attempts)");
}

#[tokio::test]
async fn a_poison_event_ends_failed_while_others_proceed() {
    let w = World::new().await;
    // No phone, no email: nothing to key the contact on. Not retryable.
    w.aloware_webhook(
        json!({"event": "Contact-Created", "body": {"id": 1, "first_name": "Nobody"}}),
    )
    .await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses[0].1, "failed");
    assert!(
        statuses[0]
            .2
            .as_deref()
            .unwrap()
            .contains("neither phone nor email"),
        "{statuses:?}"
    );
    assert_eq!(statuses[1].1, "done");
}

#[tokio::test]
async fn contact_delete_drops_the_mapping_and_leaves_aloware_alone() {
    let w = World::new().await;
    let client = db_client(&w.stack.database_url).await;
    client.execute("INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id) VALUES ('77', 'gdel')", &[]).await.unwrap();
    let signer = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::Signer as _;
    let keys = df_shared::auth::GhlKeys::from_pem(
        &signer
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
        df_shared::auth::ghl_signature::PUBLISHED_RSA_PEM,
    )
    .unwrap();
    let mut w = w;
    w.ghl = GhlWebhookAuth::new(keys, None);
    let body = json!({"type": "ContactDelete", "id": "gdel", "locationId": "sandbox-location", "phone": "+12025550123"}).to_string();
    use base64::Engine;
    let sig =
        base64::engine::general_purpose::STANDARD.encode(signer.sign(body.as_bytes()).to_bytes());
    let req = post("/api/webhooks/ghl", &[("x-ghl-signature", &sig)], body);
    assert_eq!(
        ghl::handle(&w.stack.ingest, &w.ghl, req).await.status(),
        200
    );
    w.drain_queue().await;
    let left: i64 = client
        .query_one("SELECT count(*) FROM contact_mappings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert!(
        w.requests("aloware").await.is_empty(),
        "ContactDelete touches nothing in Aloware"
    );
}

#[tokio::test]
async fn ghl_tags_drive_aloware_power_dialer_lists() {
    let w = World::with(
        SandboxConfig::default(),
        &[(
            "ALOWARE_LIST_MAP",
            r#"{"Hot Lead": "101", "call list": 102}"#,
        )],
    )
    .await;
    let tag_update = |tags: &str| json!({"contact_id": "gt1", "phone": "+12025550155", "tags": tags, "customData": {"event": "ContactTagUpdate"}});
    w.ghl_workflow_webhook(tag_update("hot lead,call list,unmapped"))
        .await;
    w.drain_queue().await;
    let lists = w.state().await["aloware"]["lists"].clone();
    let contact_id = w.state().await["aloware"]["contacts"][0]["id"].clone();
    assert_eq!(lists["101"], json!([contact_id]), "{lists}");
    assert_eq!(lists["102"], json!([contact_id]), "{lists}");

    w.ghl_workflow_webhook(tag_update("call list,unmapped"))
        .await;
    w.drain_queue().await;
    let lists = w.state().await["aloware"]["lists"].clone();
    assert_eq!(
        lists.get("101").cloned().unwrap_or(json!([])),
        json!([]),
        "removed from the untagged list: {lists}"
    );
    assert_eq!(
        lists["102"],
        json!([contact_id]),
        "still on the list it is tagged for: {lists}"
    );

    // An unmapped tag change alone is skipped with its reason.
    w.ghl_workflow_webhook(tag_update("call list")).await;
    w.drain_queue().await;
    let last = w.statuses().await.pop().unwrap();
    assert_eq!(last.1, "skipped");
    assert!(last.2.unwrap().starts_with("no mapped tag changed"));
}

/// Aloware's `forms` `list_ids` may replace a contact's lists (the sandbox takes that
/// reading): adding a tag keeps the contact on the lists of its other tags. And a mapped
/// Aloware contact that no longer exists (deleted, made again under a new id) is found
/// again by phone, instead of failing every later tag change of the contact.
#[tokio::test]
async fn tag_lists_survive_replacing_list_ids_and_a_recreated_aloware_contact() {
    let w = World::with(
        SandboxConfig::default(),
        &[(
            "ALOWARE_LIST_MAP",
            r#"{"hot lead": "201", "call list": 202}"#,
        )],
    )
    .await;
    let tags = |t: &str| json!({"contact_id": "gt2", "phone": "+12025550156", "tags": t, "customData": {"event": "ContactTagUpdate"}});
    w.ghl_workflow_webhook(tags("hot lead")).await;
    w.drain_queue().await;
    w.ghl_workflow_webhook(tags("hot lead,call list")).await;
    w.drain_queue().await;
    let state = w.state().await;
    let first = state["aloware"]["contacts"][0]["id"].clone();
    assert_eq!(
        state["aloware"]["lists"]["201"],
        json!([first]),
        "kept on the first list"
    );
    assert_eq!(state["aloware"]["lists"]["202"], json!([first]));
    // The contact sync had mapped it; then someone deletes the Aloware contact, and it
    // comes back under a new id.
    db_client(&w.stack.database_url)
        .await
        .execute(
            "INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id, phone_number) VALUES ($1, 'gt2', '+12025550156')",
            &[&first.to_string()],
        )
        .await
        .unwrap();
    w.sandbox_post("remove", json!({"aloware_contact_ids": [first]}))
        .await;
    w.sandbox_post(
        "seed",
        json!({"aloware_contacts": [{"id": 990001, "phone_number": "+12025550156"}],
            "aloware_lists": {"201": [990001], "202": [990001]}}),
    )
    .await;
    w.ghl_workflow_webhook(tags("call list")).await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    let lists = w.state().await["aloware"]["lists"].clone();
    assert_eq!(lists["201"], json!([]), "{lists}");
    assert_eq!(lists["202"], json!([990001]), "{lists}");
    let mapped = w
        .stack
        .count("SELECT count(*) FROM contact_mappings WHERE ghl_contact_id = 'gt2' AND aloware_contact_id = '990001'")
        .await;
    assert_eq!(mapped, 1, "the mapping now names the contact Aloware has");
}

/// The sandbox's GHL fails every request with 500 for two minutes (DF_OUTAGE_SECONDS
/// shortens it for quick local runs), then recovers; retries back off from 1 s.
#[tokio::test]
async fn a_provider_outage_ends_with_every_event_done_exactly_once() {
    let outage: f64 = std::env::var("DF_OUTAGE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120.0);
    let w = World::with(SandboxConfig::default(), &[("RETRY_BASE_SECONDS", "1")]).await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 500, "seconds": outage}),
    )
    .await;
    let started = std::time::Instant::now();
    send_calls(&w, 5, 1000, "+1202555012").await;
    w.drain_queue().await;
    assert!(
        started.elapsed().as_secs_f64() >= outage,
        "drained only after the outage"
    );
    let statuses = w.statuses().await;
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    let notes_created = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().unwrap().ends_with("/notes")
                && r["status"] == 201
        })
        .count();
    assert_eq!(notes_created, 5, "each call's note written exactly once");
    let failed = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| r["status"] == 500)
        .count();
    assert!(
        failed >= 2,
        "the outage was felt and retried ({failed} failed requests)"
    );
}

/// GHL answers 503 to everything for 20 s while retries cost nothing in time
/// (RETRY_BASE_SECONDS=0): without the outage pause every event spends its ten attempts
/// within the outage and ends `failed`. With it, five outage answers pause GHL, the
/// work waits without spending attempts, the relay's probe resumes it, all end done.
#[tokio::test]
async fn a_provider_outage_pauses_its_work_instead_of_spending_attempts() {
    let w = World::new().await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 503, "seconds": 20}),
    )
    .await;
    send_calls(&w, 10, 2000, "+1202555013").await;
    w.drain_for(std::time::Duration::from_secs(120)).await;
    let statuses = w.statuses().await;
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    let most = w
        .stack
        .count("SELECT max(attempts)::bigint FROM webhook_events")
        .await;
    assert!(most <= 5, "attempts spent in the outage: at most {most}");
    let pauses = w
        .stack
        .count("SELECT count(*) FROM provider_pause_log WHERE provider = 'ghl' AND kind = 'outage' AND resumed_at IS NOT NULL")
        .await;
    assert!(pauses >= 1, "GHL was paused for the outage and resumed");
    let notes = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().unwrap().ends_with("/notes")
                && r["status"] == 201
        })
        .count();
    assert_eq!(notes, 10, "each call's note written exactly once");
}

#[tokio::test]
async fn a_429_storm_loses_nothing() {
    let w = World::with_short_rate_window().await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 429, "count": 25}),
    )
    .await;
    send_calls(&w, 8, 2000, "+1202555013").await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses.len(), 8);
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    let notes: usize = w.state().await["ghl"]["notes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_array().unwrap().len())
        .sum();
    assert_eq!(notes, 8);
    let storm = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(storm, 25, "every injected 429 was met");
    let client = db_client(&w.stack.database_url).await;
    let most: i32 = client
        .query_one("SELECT max(attempts) FROM webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        most, 1,
        "a rate limit is not the event's failure: no attempt spent"
    );
}

/// Stored events' ids, oldest first.
async fn event_ids(w: &World) -> Vec<uuid::Uuid> {
    let client = db_client(&w.stack.database_url).await;
    client
        .query("SELECT id FROM webhook_events ORDER BY received_at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A batch as Lambda builds it, without message groups (one group, in effect).
fn sqs_batch(ids: &[uuid::Uuid]) -> aws_lambda_events::sqs::SqsEvent {
    grouped_batch(&ids.iter().map(|id| (*id, "")).collect::<Vec<_>>())
}

/// A batch whose records carry their message group.
fn grouped_batch(records: &[(uuid::Uuid, &str)]) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = records
        .iter()
        .map(|(id, group)| {
            let mut r = aws_lambda_events::sqs::SqsMessage::default();
            r.message_id = Some(format!("m-{id}"));
            r.body = Some(json!({"event_id": id, "kind": "webhook"}).to_string());
            if !group.is_empty() {
                r.attributes
                    .insert("MessageGroupId".into(), group.to_string());
            }
            r
        })
        .collect();
    event
}

/// A deadline as far off as a fresh invocation's.
fn fresh_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + CONSUMER_TIMEOUT
}

#[tokio::test]
async fn once_a_record_fails_every_later_record_of_the_batch_is_reported() {
    let w = World::new().await;
    for i in 0..3 {
        let mut call = call_lifecycle()[1].clone();
        call["body"]["id"] = json!(3000 + i);
        w.aloware_webhook(call).await;
    }
    let ids = event_ids(&w).await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 503, "count": 1}),
    )
    .await;
    let response = w.consumer.handle(sqs_batch(&ids), fresh_deadline()).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        ids.iter().map(|id| format!("m-{id}")).collect::<Vec<_>>(),
        "FIFO: the failure and all after it"
    );
    let statuses = w.statuses().await;
    assert_eq!(
        (statuses[0].1.as_str(), statuses[1].1.as_str()),
        ("error", "pending"),
        "later records untouched: {statuses:?}"
    );
    assert!(statuses[0].2.as_deref().unwrap().contains("will retry"));
    let response = w.consumer.handle(sqs_batch(&ids), fresh_deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(w.statuses().await.iter().all(|s| s.1 == "done"));
}

#[tokio::test]
async fn quarantined_events_are_never_processed_and_finished_events_not_reapplied() {
    let w = World::new().await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    let ids = event_ids(&w).await;
    let held = df_shared::adapters::event_store::quarantine(
        &w.consumer.pool,
        EventKind::Webhook,
        ids[0],
        "operator: bad data",
        Some("test"),
    )
    .await
    .unwrap();
    assert!(held);
    // Its message is acknowledged: the row is held until an operator replays it.
    assert!(w
        .consumer
        .handle(sqs_batch(&ids), fresh_deadline())
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(w.statuses().await[0].1, "quarantined");
    assert!(
        w.requests("ghl").await.is_empty(),
        "nothing sent for a quarantined event"
    );
    // Released and processed, a redelivery of the finished event changes nothing.
    let client = db_client(&w.stack.database_url).await;
    client
        .execute(
            "UPDATE webhook_events SET status = 'pending' WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(w
            .consumer
            .handle(sqs_batch(&ids), fresh_deadline())
            .await
            .batch_item_failures
            .is_empty());
    }
    assert_eq!(w.statuses().await[0].1, "done");
    let logged: i64 = client
        .query_one("SELECT count(*) FROM sync_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1, "applied once");
    assert_eq!(w.notes().await.len(), 1);
}

#[tokio::test]
async fn clients_type_their_failures() {
    use df_shared::providers::aloware_api::AlowareClient;
    let w = World::new().await;
    // A base URL that reaches no API path: Aloware answers 200 with HTML — as its
    // maintenance and CDN pages do, so it is retried, never final at once.
    let wrong_base = AlowareClient::new(
        reqwest::Client::new(),
        &format!("{}/aloware/app", w.sandbox),
        "sandbox-aloware-token",
    );
    let err = wrong_base.lookup_phone("+12025550100").await.unwrap_err();
    assert!(
        err.retryable && err.message.contains("not the expected JSON"),
        "{err}"
    );
    // The sandbox records the call to a path Aloware does not document.
    let violations = w.sandbox_get("violations").await;
    assert_eq!(violations.as_array().unwrap().len(), 1, "{violations}");
    assert_eq!(violations[0]["provider"], "aloware");
    let wrong_token = AlowareClient::new(
        reqwest::Client::new(),
        &format!("{}/aloware", w.sandbox),
        "nope",
    );
    let err = wrong_token.lookup_phone("+12025550100").await.unwrap_err();
    assert!(
        err.is_credential() && err.message.contains("credentials rejected"),
        "{err}"
    );
    assert_eq!(
        err.class(),
        df_shared::domain::retry::FailureClass::Credential,
        "retried slowly, not final"
    );
    w.sandbox_post(
        "faults",
        json!({"provider": "aloware", "status": 502, "count": 1}),
    )
    .await;
    let err = w
        .consumer
        .router
        .deps
        .aloware
        .lookup_phone("+12025550100")
        .await
        .unwrap_err();
    assert!(err.retryable, "{err}");
    let err = w
        .consumer
        .router
        .deps
        .ghl
        .update_contact("missing", &json!({"firstName": "x"}))
        .await
        .unwrap_err();
    assert_eq!((err.status, err.retryable), (Some(400), false), "{err}");
}

#[tokio::test]
async fn the_captured_call_lifecycle_from_the_reference_data_yields_one_note() {
    let Some(dir) = reference_dir() else {
        eprintln!("SKIPPED: ../shared/reference is absent (set DF_REFERENCE_DIR to run it)");
        return;
    };
    let w = World::new().await;
    let text =
        std::fs::read_to_string(dir.join("aloware/webhook_call_lifecycle_captured_shape.json"))
            .unwrap();
    let deliveries: Vec<Value> = serde_json::from_str(&text).unwrap();
    for d in deliveries {
        w.aloware_webhook(d).await;
    }
    w.drain_queue().await;
    let state = w.state().await;
    let notes: Vec<Value> = state["ghl"]["notes"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|n| n.as_array().unwrap().clone())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let body = notes[0]["body"].as_str().unwrap();
    for part in [
        "Disposition: No Answer",
        "static/recording/32c1a2f8-fixture",
        "Seller confirmed coverage and scheduled a callback.",
    ] {
        assert!(body.contains(part), "{part} missing: {body}");
    }
}

#[tokio::test]
async fn an_echo_is_skipped_but_a_human_edit_inside_the_echo_window_is_applied() {
    let w = World::with(
        SandboxConfig::default(),
        &[
            ("WRITE_ORIGIN_MARKERS", "true"),
            ("ECHO_WINDOW_SECONDS", "600"),
        ],
    )
    .await;
    let contact = json!({"id": 42, "first_name": "Mia", "last_name": "Stone", "phone_number": "+12025550166"});
    w.aloware_webhook(json!({"event": "Contact-Created", "body": contact}))
        .await;
    w.drain_queue().await;
    let mut ghl_contact = w.state().await["ghl"]["contacts"][0].clone();
    assert!(
        ghl_contact["customFields"]
            .to_string()
            .contains("SYS:origin_id:"),
        "marker written: {ghl_contact}"
    );
    // GHL reports our own write back: the values equal what we wrote.
    w.ghl_workflow_webhook(
        json!({"contact_id": ghl_contact["id"], "customData": {"event": "ContactUpdate", "n": 1}}),
    )
    .await;
    w.drain_queue().await;
    let last = w.statuses().await.pop().unwrap();
    assert_eq!(
        (last.1.as_str(), last.2.as_deref()),
        ("skipped", Some("echo of a middleware write"))
    );
    // Seconds later, well inside the echo window, a person edits the name and turns
    // call DND on. The marker is still there; the values are not ours: applied.
    ghl_contact["firstName"] = json!("Mía");
    ghl_contact["dndSettings"] = json!({"Call": {"status": "active"}});
    w.sandbox_post("seed", json!({"ghl_contacts": [ghl_contact.clone()]}))
        .await;
    w.ghl_workflow_webhook(
        json!({"contact_id": ghl_contact["id"], "customData": {"event": "ContactUpdate", "n": 2}}),
    )
    .await;
    w.drain_queue().await;
    assert_eq!(w.statuses().await.pop().unwrap().1, "done");
    let alo = w.state().await["aloware"]["contacts"][0].clone();
    assert_eq!(alo["first_name"], "Mía", "{alo}");
    assert_eq!(alo["is_dnc"], true, "the DND change reached Aloware: {alo}");
}

#[tokio::test]
async fn aloware_dnc_is_mirrored_to_ghl_dnd_and_tag() {
    let w = World::new().await;
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gdnc", "locationId": "sandbox-location", "firstName": "Dee",
        "phone": "+12025550144", "tags": ["lead"]}]}),
    )
    .await;
    let client = db_client(&w.stack.database_url).await;
    client.execute("INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id) VALUES ('501', 'gdnc')", &[]).await.unwrap();
    w.aloware_webhook(json!({"event": "Contact-DNC-Updated", "body": {"id": 501, "first_name": "Dee", "phone_number": "+12025550144", "is_dnc": true}})).await;
    w.drain_queue().await;
    let c = w.state().await["ghl"]["contacts"][0].clone();
    assert_eq!(c["dndSettings"]["Call"]["status"], "active", "{c}");
    assert_eq!(c["tags"], json!(["lead", "dnc"]));
}

#[tokio::test]
async fn the_aloware_policy_overwrites_ghl_and_merge_keeps_ghl_on_conflict() {
    for (policy, expected_email) in [("aloware", "new@example.com"), ("merge", "old@example.com")] {
        let w = World::with(
            SandboxConfig::default(),
            &[("CONTACT_SOURCE_OF_TRUTH", policy)],
        )
        .await;
        w.sandbox_post("seed", json!({"ghl_contacts": [{"id": "gp", "locationId": "sandbox-location", "firstName": "Al",
            "lastName": "Bo", "phone": "+12025550133", "email": "old@example.com"}]})).await;
        let client = db_client(&w.stack.database_url).await;
        client.execute("INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id) VALUES ('77', 'gp')", &[]).await.unwrap();
        w.aloware_webhook(json!({"event": "Contact-Updated", "body": {"id": 77, "first_name": "Al", "last_name": "Bo",
            "phone_number": "+12025550133", "email": "new@example.com"}})).await;
        w.drain_queue().await;
        assert_eq!(
            w.state().await["ghl"]["contacts"][0]["email"],
            expected_email,
            "policy {policy}"
        );
        let decisions: Value = client
            .query_one("SELECT decisions FROM sync_log", &[])
            .await
            .unwrap()
            .get(0);
        assert!(
            decisions.to_string().contains("email"),
            "decision recorded under {policy}: {decisions}"
        );
    }
}

#[tokio::test]
async fn ghl_contact_sync_writes_back_what_the_merge_fills_in() {
    let w = World::new().await;
    w.sandbox_post("seed", json!({
        "ghl_contacts": [{"id": "gw", "locationId": "sandbox-location", "firstName": "Ray", "lastName": "Ng", "phone": "+12025550122"}],
        "aloware_contacts": [{"id": 900, "first_name": "Ray", "last_name": "Ng", "phone_number": "+12025550122",
            "email": "ray@example.com", "timezone": "America/Denver"}]
    })).await;
    w.ghl_workflow_webhook(json!({"contact_id": "gw", "customData": {"event": "ContactUpdate"}}))
        .await;
    w.drain_queue().await;
    let c = w.state().await["ghl"]["contacts"][0].clone();
    assert_eq!(
        (c["email"].clone(), c["timezone"].clone()),
        (json!("ray@example.com"), json!("America/Denver")),
        "{c}"
    );
    let puts = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| r["method"] == "PUT")
        .count();
    assert_eq!(puts, 1, "one write-back");
    // Aloware was already complete: no forms call.
    assert!(w
        .requests("aloware")
        .await
        .iter()
        .all(|r| r["path"].as_str().unwrap().ends_with("phone-number")));
}

#[tokio::test]
async fn an_event_that_keeps_failing_ends_failed_after_ten_attempts_not_in_the_dlq() {
    let w = World::new().await;
    // Only this event's write fails: GHL itself answers (the outage probe succeeds), so
    // the strikes never hold it for long and its own budget runs out.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 500, "seconds": 120, "path_contains": "/notes"}),
    )
    .await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses[0].1, "failed", "{statuses:?}");
    assert!(
        statuses[0]
            .2
            .as_deref()
            .unwrap()
            .contains("attempt 10 of 10; retries exhausted"),
        "{statuses:?}"
    );
    let attempts = w
        .stack
        .count("SELECT attempts::bigint FROM webhook_events")
        .await;
    assert_eq!(
        attempts, 10,
        "the row's budget, not the queue's receive count"
    );
    assert!(
        drain(w.stack.dlq_url.as_deref().unwrap()).await.is_empty(),
        "the row gave up; the queue's poison net was never needed"
    );
}

#[tokio::test]
async fn a_new_contact_costs_one_ghl_call_under_the_aloware_policy() {
    let w = World::with(
        SandboxConfig::default(),
        &[("CONTACT_SOURCE_OF_TRUTH", "aloware")],
    )
    .await;
    w.aloware_webhook(json!({"event": "Contact-Created", "body": {"id": 8, "first_name": "Lu", "phone_number": "+12025550188"}})).await;
    w.drain_queue().await;
    let calls = w.requests("ghl").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["path"], "/ghl/contacts/upsert");
}

#[tokio::test]
async fn a_delivery_for_an_event_in_progress_is_retried_not_dropped() {
    let w = World::new().await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    let ids = event_ids(&w).await;
    let client = db_client(&w.stack.database_url).await;
    // Another consumer claimed it (or crashed holding the claim) a moment ago.
    client
        .execute(
            "UPDATE webhook_events SET status = 'processing', attempts = 1, claimed_at = now(), updated_at = now()",
            &[],
        )
        .await
        .unwrap();
    let response = w.consumer.handle(sqs_batch(&ids), fresh_deadline()).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "kept for redelivery, not acknowledged"
    );
    assert!(w.requests("ghl").await.is_empty());
    // Once the claim's five-minute lease has passed, a redelivery takes it over.
    client
        .execute(
            "UPDATE webhook_events SET claimed_at = now() - interval '6 minutes'",
            &[],
        )
        .await
        .unwrap();
    assert!(w
        .consumer
        .handle(sqs_batch(&ids), fresh_deadline())
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(w.statuses().await[0].1, "done");
    // A delivery for a finished event is acknowledged and changes nothing.
    let writes = w.requests("ghl").await.len();
    assert!(w
        .consumer
        .handle(sqs_batch(&ids), fresh_deadline())
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(w.requests("ghl").await.len(), writes);
}

#[tokio::test]
async fn unsearched_upserts_send_tags_through_the_additive_endpoint() {
    let w = World::with(
        SandboxConfig::default(),
        &[("CONTACT_SOURCE_OF_TRUTH", "aloware")],
    )
    .await;
    w.sandbox_post("seed", json!({"ghl_contacts": [{"id": "gt", "locationId": "sandbox-location", "phone": "+12025550177", "tags": ["vip"]}]})).await;
    w.aloware_webhook(json!({"event": "Contact-Updated", "body": {"id": 9, "first_name": "Vi", "phone_number": "+12025550177", "is_dnc": true}})).await;
    w.drain_queue().await;
    let calls = w.requests("ghl").await;
    let paths: Vec<&str> = calls.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/ghl/contacts/upsert", "/ghl/contacts/gt/tags"]);
    assert!(
        calls[0]["body"].get("tags").is_none(),
        "no tags in the upsert: {}",
        calls[0]["body"]
    );
    let c = w.state().await["ghl"]["contacts"][0].clone();
    assert_eq!(c["tags"], json!(["vip", "dnc"]), "existing tags kept");
    assert_eq!(c["dndSettings"]["Call"]["status"], "active");
}

/// A call disposition for call `id` on the lead `phone`.
fn disposition(id: u64, phone: &str) -> Value {
    let mut call = call_lifecycle()[1].clone();
    call["body"]["id"] = json!(id);
    call["body"]["lead_number"] = json!(phone);
    call
}

#[tokio::test]
async fn queue_down_at_ingest_the_relay_delivers_each_event_exactly_once() {
    let w = World::new().await;
    let down = Stack::with(&w.stack.database_url, DEAD_QUEUE_URL).await;
    for (id, phone) in [
        (4001, "+12025550141"),
        (4002, "+12025550141"),
        (4003, "+12025550143"),
    ] {
        let req = post(
            "/api/webhooks/aloware",
            &[("authorization", &basic_auth())],
            disposition(id, phone).to_string(),
        );
        let (status, answer) = json_of(aloware::handle(&down.ingest, &w.aloware, req).await).await;
        assert_eq!(
            (status, answer["queued"].as_bool()),
            (200, Some(false)),
            "{answer}"
        );
    }
    let relay = w.relay().await;
    assert_eq!(relay.run_once().await[0].enqueued, 3);
    assert_eq!(relay.run_once().await[0].enqueued, 0, "sent once");
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    assert_eq!(w.notes().await.len(), 3, "each call applied exactly once");
    let sends: i64 = w
        .stack
        .count("SELECT sum(enqueue_count)::bigint FROM webhook_events")
        .await;
    assert_eq!(sends, 3, "one message per row");
}

/// Ten people, twenty contact changes each, all queued; then the queue is deleted and
/// recreated with the 200 messages in it. The relay's next run sees the new queue and
/// re-sends every chain at once, in order: all 200 are applied within two minutes of
/// that run, each person's in order (each change carries Aloware's `updated_at`, so one
/// applied out of order would end `skipped` as stale).
#[tokio::test]
async fn a_recreated_queue_is_recovered_whole_in_one_relay_run() {
    // Aloware's values overwrite GHL's: every change is a write.
    let w = World::with(
        SandboxConfig::default(),
        &[("CONTACT_SOURCE_OF_TRUTH", "aloware")],
    )
    .await;
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    for i in 0..20 {
        for p in 0..10u64 {
            let updated = (start + chrono::Duration::seconds(i * 10 + p as i64))
                .format("%Y-%m-%d %H:%M:%S")
                .to_string();
            w.aloware_webhook(json!({"event": "Contact-Updated", "body": {"id": 7700 + p,
                "first_name": format!("P{p}v{i}"), "last_name": "Lee",
                "phone_number": format!("+120255502{p:02}"), "updated_at": updated}}))
                .await;
        }
    }
    let relay = w.relay().await;
    assert_eq!(
        relay.run_once().await[0].enqueued,
        0,
        "every row has its message"
    );
    assert_eq!(depth(&w.stack.queue_url).await, 200);
    recreate_queue(&Queues {
        url: w.stack.queue_url.clone(),
        dlq: w.stack.dlq_url.clone().unwrap(),
    })
    .await;
    assert_eq!(depth(&w.stack.queue_url).await, 0, "the messages are gone");
    let run = relay.run_once().await;
    let started = std::time::Instant::now();
    assert_eq!(run[0].lost.queue_recreated, 200, "{run:?}");
    assert_eq!(
        run[0].enqueued, 200,
        "every chain re-sent in one run: {run:?}"
    );
    w.drain_for(Duration::from_secs(120)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(120), "took {took:?}");
    println!("200 events applied {took:?} after the relay's run");
    let statuses = w.statuses().await;
    assert!(
        statuses.iter().all(|s| s.1 == "done"),
        "all applied, none out of order: {:?}",
        statuses
            .iter()
            .filter(|s| s.1 != "done")
            .collect::<Vec<_>>()
    );
    let names: Vec<String> = w.state().await["ghl"]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["firstName"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with("v19")), "{names:?}");
    // Each person's changes were applied in the order they were made.
    let client = db_client(&w.stack.database_url).await;
    let out_of_order: i64 = client
        .query_one(
            "SELECT count(*) FROM (
                SELECT e.person_key, e.received_at,
                       lag(s.started_at) OVER (PARTITION BY e.person_key ORDER BY e.received_at) AS prev,
                       s.started_at
                FROM webhook_events e JOIN sync_log s ON s.correlation_id = e.id::text AND s.status = 'success') x
             WHERE prev > started_at",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(out_of_order, 0);
    assert_eq!(depth(w.stack.dlq_url.as_deref().unwrap()).await, 0);
}

/// A purged queue (every message gone, the queue itself the same): the relay sees it
/// hold nothing while rows believe they have messages, and re-sends their chains.
#[tokio::test]
async fn a_purged_queue_is_recovered_by_the_relay() {
    let w = World::new().await;
    for i in 0..3 {
        w.aloware_webhook(disposition(4300 + i, "+12025550171"))
            .await;
    }
    let mut relay = w.relay().await;
    relay.run_once().await;
    sqs()
        .await
        .purge_queue()
        .queue_url(&w.stack.queue_url)
        .send()
        .await
        .unwrap();
    let first = relay.run_once().await;
    assert_eq!(
        first[0].enqueued, 0,
        "an empty queue is not a loss at first sight"
    );
    // The queue has been seen empty for a while (the test moves the clock back: the
    // sends, then the first empty observation, a minute ago).
    let client = db_client(&w.stack.database_url).await;
    client
        .batch_execute(
            "UPDATE webhook_events SET enqueued_at = now() - interval '2 minutes';
             UPDATE queue_observations SET empty_since = now() - interval '1 minute'",
        )
        .await
        .unwrap();
    relay.stale = Duration::from_secs(3600);
    let second = relay.run_once().await;
    assert_eq!(second[0].lost.queue_emptied, 3, "{second:?}");
    assert_eq!(second[0].enqueued, 3);
    w.drain_queue().await;
    assert!(w.statuses().await.iter().all(|s| s.1 == "done"));
    assert_eq!(w.notes().await.len(), 3, "each call applied once");
}

/// A message dead-lettered (received over and over, never processed): the relay drains
/// the DLQ at its next run, re-sending the row (its message is gone), and the DLQ is
/// empty again, so its alarm clears.
#[tokio::test]
async fn a_row_whose_message_was_dead_lettered_is_delivered_by_the_relay() {
    let w = World::new().await;
    w.aloware_webhook(disposition(4101, "+12025550151")).await;
    w.aloware_webhook(disposition(4102, "+12025550151")).await;
    let sqs = sqs().await;
    for _ in 0..=df_shared::pipeline::deployment::MAX_RECEIVE_COUNT {
        sqs.receive_message()
            .queue_url(&w.stack.queue_url)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let dlq = w.stack.dlq_url.clone().unwrap();
    assert_eq!(
        depth(&w.stack.queue_url).await,
        1,
        "the person's second message waits"
    );
    assert_eq!(depth(&dlq).await, 1, "dead-lettered");
    assert_eq!(w.statuses().await[0].1, "pending", "never attempted");
    let run = w.relay().await.run_once().await;
    assert_eq!(run[0].lost.dead_lettered, 2, "the whole chain: {run:?}");
    assert_eq!(run[0].enqueued, 2, "{run:?}");
    assert_eq!(run[0].dead_letters_cleared, 1);
    assert_eq!(depth(&dlq).await, 0, "the DLQ is drained");
    w.drain_queue().await;
    assert!(w.statuses().await.iter().all(|s| s.1 == "done"));
    assert_eq!(
        w.notes().await.len(),
        2,
        "each applied once, the superseded message dropped"
    );
}

/// The last resort when nothing says a message was lost: a chain whose first row has
/// shown no sign of life for the staleness horizon is re-sent.
#[tokio::test]
async fn a_chain_with_no_sign_of_life_is_re_sent_after_the_staleness_horizon() {
    let w = World::new().await;
    w.aloware_webhook(disposition(4111, "+12025550152")).await;
    // The message vanishes without a trace (no DLQ, the queue still busy with others).
    let sqs = sqs().await;
    let got = sqs
        .receive_message()
        .queue_url(&w.stack.queue_url)
        .send()
        .await
        .unwrap();
    for m in got.messages.unwrap_or_default() {
        sqs.delete_message()
            .queue_url(&w.stack.queue_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let relay = w.relay().await;
    assert_eq!(
        relay.run_once().await[0].enqueued,
        0,
        "a recently sent message may still be alive: not re-sent yet"
    );
    db_client(&w.stack.database_url)
        .await
        .execute(
            "UPDATE webhook_events SET enqueued_at = now() - interval '20 minutes',
                 updated_at = now() - interval '20 minutes', next_attempt_at = now() - interval '20 minutes'",
            &[],
        )
        .await
        .unwrap();
    let run = relay.run_once().await;
    assert_eq!((run[0].lost.stale, run[0].enqueued), (1, 1), "{run:?}");
    w.drain_queue().await;
    assert_eq!(w.statuses().await[0].1, "done");
    assert_eq!(w.notes().await.len(), 1);
}

/// A rotated GHL token: every GHL call is refused 401, for longer than the whole retry
/// budget would have lasted. GHL's work pauses: no attempt is spent, the person's later
/// events wait behind it, one alert goes out; the relay's probe resumes the work once
/// the token is accepted again, and every event ends `done` — none `failed`.
#[tokio::test]
async fn a_rejected_credential_pauses_the_provider_and_a_probe_resumes_it() {
    let w = World::with(
        SandboxConfig::default(),
        &[("CREDENTIAL_PROBE_SECONDS", "1")],
    )
    .await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 401, "seconds": 600}),
    )
    .await;
    for (i, phone) in ["+12025550161", "+12025550162", "+12025550163"]
        .iter()
        .enumerate()
    {
        for j in 0..3 {
            w.aloware_webhook(disposition(4200 + (i * 10 + j) as u64, phone))
                .await;
        }
    }
    // Run the consumers and the relay until every row is held by the pause.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        for _ in 0..300 {
            let held = w
                .stack
                .count("SELECT count(*) FROM webhook_events WHERE paused_provider = 'ghl' AND status = 'error'")
                .await;
            if held == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Long enough for many probes (one a second) and many retry cycles.
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    futures::join!(watch, w.run_consumers_until(&stop));
    // Each person's first event is held by the pause; the later ones wait behind it
    // (never attempted, and not sent again while the first is held).
    let statuses = w.statuses().await;
    assert_eq!(
        statuses.iter().filter(|s| s.1 == "error").count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| s.1 == "error" || s.1 == "pending"),
        "{statuses:?}"
    );
    assert_eq!(
        w.stack
            .count("SELECT sum(attempts)::bigint FROM webhook_events")
            .await,
        0,
        "no attempt spent"
    );
    assert_eq!(
        w.stack
            .count("SELECT count(*) FROM provider_pause_log WHERE provider = 'ghl'")
            .await,
        1,
        "one pause"
    );
    let refused = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| r["status"] == 401)
        .count();
    assert!(
        refused <= 3 + 10,
        "paused work sends nothing: {refused} refused requests (first attempts and probes)"
    );
    let alerts = df_shared::ops::alerts::Alerts::from_settings(&consumer_settings(
        &w.stack.database_url,
        &w.stack.queue_url,
        &w.sandbox,
        "merge",
        &[("ALERT_WEBHOOK_URL", &format!("{}/alerts", w.sandbox))],
    ))
    .await
    .unwrap();
    alerts.run().await.unwrap();
    alerts.run().await.unwrap();
    let sent: Vec<Value> = w.state().await["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["alert"]
                .as_str()
                .unwrap()
                .starts_with("provider_paused:ghl:")
        })
        .cloned()
        .collect();
    assert_eq!(sent.len(), 1, "one alert per pause: {sent:?}");
    // The token is replaced: the next probe resumes the work, in each person's order.
    reqwest::Client::new()
        .delete(format!("{}/_sandbox/faults", w.sandbox))
        .send()
        .await
        .unwrap();
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    assert_eq!(w.notes().await.len(), 9);
    assert_eq!(
        w.stack
            .count("SELECT max(attempts)::bigint FROM webhook_events")
            .await,
        1,
        "only the attempt that worked counted"
    );
    assert_eq!(
        w.stack.count("SELECT count(*) FROM provider_pauses").await,
        0
    );
    assert_eq!(
        w.stack
            .count("SELECT count(*) FROM provider_pause_log WHERE resumed_at IS NOT NULL")
            .await,
        1
    );
}

/// The GHL request sequence of a disposition, per scenario: a contact GHL already
/// has (search, note, tags) and a new one (search, upsert, note).
#[tokio::test]
async fn a_failure_at_any_step_of_the_call_note_path_leaves_exactly_one_note() {
    let mut cases = Vec::new();
    for existing in [true, false] {
        for step in 1..=3u32 {
            for apply in [false, true] {
                cases.push((existing, step, apply));
            }
        }
    }
    let run = |&(existing, step, apply): &(bool, u32, bool)| async move {
        let w = World::new().await;
        if existing {
            w.sandbox_post(
                "seed",
                json!({"ghl_contacts": [{"id": "gstep", "locationId": "sandbox-location",
                "firstName": "Step", "phone": "+12025550171", "tags": []}]}),
            )
            .await;
        }
        // The step's request fails: before GHL acted on it, or after (answer lost).
        w.sandbox_post(
            "faults",
            json!({"provider": "ghl", "status": 500, "count": 1,
            "skip": step - 1, "apply": apply}),
        )
        .await;
        w.aloware_webhook(disposition(4300 + step as u64, "+12025550171"))
            .await;
        w.drain_queue().await;
        let what = format!("existing={existing} step={step} apply={apply}");
        assert_eq!(w.statuses().await[0].1, "done", "{what}");
        let notes = w.notes().await;
        assert_eq!(notes.len(), 1, "{what}: {notes:?}");
        assert!(
            notes[0]["body"]
                .as_str()
                .unwrap()
                .contains("Disposition: No Answer"),
            "{what}"
        );
        let contacts = w.state().await["ghl"]["contacts"].clone();
        assert_eq!(contacts.as_array().unwrap().len(), 1, "{what}: {contacts}");
        let tags = contacts[0]["tags"].to_string();
        assert!(
            tags.contains("call: no answer") && tags.contains("outbound call"),
            "{what}: {tags}"
        );
    };
    // A few worlds at a time: each holds its own database connections.
    for chunk in cases.chunks(4) {
        futures::future::join_all(chunk.iter().map(run)).await;
    }
}

#[tokio::test]
async fn a_database_failure_after_the_note_is_created_leaves_exactly_one_note() {
    let db = fresh_database().await;
    let proxy = PgProxy::start(&db).await;
    let queues = fresh_queues().await;
    let stack = Stack::with(&proxy.url, &queues.url).await;
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    let w = World::on(stack, sandbox, &[]).await;
    w.aloware_webhook(disposition(4401, "+12025550181")).await;
    let ids = event_ids(&w).await;
    // GHL takes a moment to create the note; the database goes away meanwhile, so the
    // note's id cannot be recorded.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "latency_ms": 1500, "count": 1,
        "path_contains": "/notes"}),
    )
    .await;
    let cut = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        proxy.cut();
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        proxy.restore();
    };
    let (response, ()) = futures::join!(w.consumer.handle(sqs_batch(&ids), fresh_deadline()), cut);
    assert_eq!(response.batch_item_failures.len(), 1, "kept for redelivery");
    assert_eq!(w.notes().await.len(), 1, "GHL created the note");
    // The claim's lease passes; the redelivery takes the event over and finds the note.
    let client = db_client(&db).await;
    let status: String = client
        .query_one("SELECT status FROM webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "processing", "outcome could not be recorded");
    client
        .execute(
            "UPDATE webhook_events SET claimed_at = now() - interval '6 minutes'",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE call_notes SET creating_since = now() - interval '6 minutes'",
            &[],
        )
        .await
        .unwrap();
    let response = w.consumer.handle(sqs_batch(&ids), fresh_deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(w.statuses().await[0].1, "done");
    assert_eq!(w.notes().await.len(), 1, "adopted, not created twice");
}

#[tokio::test]
async fn a_summary_that_arrives_before_its_disposition_waits_and_ends_in_the_one_note() {
    let w = World::with(SandboxConfig::default(), &[("RETRY_BASE_SECONDS", "1")]).await;
    let lifecycle = call_lifecycle();
    w.aloware_webhook(lifecycle[3].clone()).await; // summary first
    w.aloware_webhook(lifecycle[2].clone()).await; // then the recording
    w.aloware_webhook(lifecycle[1].clone()).await; // and the disposition last
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    let notes = w.notes().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let body = notes[0]["body"].as_str().unwrap();
    for part in [
        "Disposition: No Answer",
        "https://app.aloware.io/static/recording/fixture",
        "Seller confirmed coverage",
    ] {
        assert!(body.contains(part), "{part} missing from note: {body}");
    }
}

#[tokio::test]
async fn two_consumers_racing_on_one_call_write_one_note() {
    let w = World::with(SandboxConfig::default(), &[("RETRY_BASE_SECONDS", "1")]).await;
    w.aloware_webhook(disposition(4501, "+12025550191")).await;
    let mut changed = disposition(4501, "+12025550191");
    changed["event"] = json!("Call-Disposed");
    changed["body"]["call_disposition"] = json!("Interested");
    w.aloware_webhook(changed).await;
    let ids = event_ids(&w).await;
    // Two invocations, each with one of the call's events, at the same moment.
    let (a, b) = futures::join!(
        w.consumer.handle(sqs_batch(&ids[..1]), fresh_deadline()),
        w.consumer.handle(sqs_batch(&ids[1..]), fresh_deadline())
    );
    let _ = (a, b);
    w.drain_queue().await;
    // Forced past FIFO order, the later event may win the race: the earlier one is then
    // skipped as stale (the high-water mark), never applied over it.
    let statuses = w.statuses().await;
    assert!(statuses.iter().any(|s| s.1 == "done"), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.1 == "done"
            || (s.1 == "skipped" && s.2.as_deref().is_some_and(|r| r.starts_with("stale")))),
        "{statuses:?}"
    );
    let notes = w.notes().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
}

#[tokio::test]
async fn a_b_a_tag_changes_are_three_applications() {
    let w = World::with(
        SandboxConfig::default(),
        &[("ALOWARE_LIST_MAP", r#"{"hot lead": "101"}"#)],
    )
    .await;
    let update = |tags: &str| {
        json!({"contact_id": "gaba", "phone": "+12025550105", "tags": tags,
        "customData": {"event": "ContactTagUpdate"}})
    };
    for tags in ["hot lead", "cold", "hot lead"] {
        w.ghl_workflow_webhook(update(tags)).await;
        w.drain_queue().await;
    }
    let statuses = w.statuses().await;
    assert_eq!(statuses.len(), 3, "A → B → A is three events: {statuses:?}");
    assert!(statuses.iter().all(|s| s.1 == "done"), "{statuses:?}");
    let state = w.state().await;
    let id = state["aloware"]["contacts"][0]["id"].clone();
    assert_eq!(
        state["aloware"]["lists"]["101"],
        json!([id]),
        "back on the list"
    );
}

#[tokio::test]
async fn an_older_event_replayed_after_a_newer_one_is_ignored() {
    let mut w = World::new().await;
    let signer = GhlSigner::install(&mut w);
    for (n, email) in [(1, "old@example.com"), (2, "new@example.com")] {
        signer
            .send(
                &w,
                json!({"type": "ContactUpdate", "id": "gold", "locationId": "sandbox-location",
                "firstName": "Ola", "phone": "+12025550106", "email": email, "tags": [],
                "webhookId": format!("gold-{n}"), "timestamp": chrono::Utc::now().to_rfc3339()}),
            )
            .await;
        w.drain_queue().await;
    }
    assert_eq!(
        w.state().await["aloware"]["contacts"][0]["email"],
        "new@example.com"
    );
    // A replay of the first event (an operator's, the relay's, a DLQ redrive).
    let ids = event_ids(&w).await;
    db_client(&w.stack.database_url)
        .await
        .execute(
            "UPDATE webhook_events SET status = 'pending' WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    w.consumer
        .queue
        .send(ids[0], EventKind::Webhook, "+12025550106", 99)
        .await
        .unwrap();
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses[0].1, "skipped", "{statuses:?}");
    assert!(
        statuses[0].2.as_deref().unwrap().starts_with("stale"),
        "{statuses:?}"
    );
    assert_eq!(
        w.state().await["aloware"]["contacts"][0]["email"],
        "new@example.com",
        "the newer data stands"
    );
}

/// GHL retries a webhook it got a 429 for, with the original bytes, up to ~70 minutes
/// later: the retry of an older change arrives (and is stored) after a newer one. The
/// high-water mark judges by GHL's own time of the change, so it changes nothing.
#[tokio::test]
async fn a_ghl_retry_of_an_older_body_arriving_after_a_newer_one_changes_nothing() {
    let mut w = World::new().await;
    let signer = GhlSigner::install(&mut w);
    let changed_at = chrono::Utc::now() - chrono::Duration::minutes(30);
    let body = |n: i64, email: &str| {
        json!({"type": "ContactUpdate", "id": "gretry", "locationId": "sandbox-location",
            "firstName": "Rita", "phone": "+12025550107", "email": email, "tags": [],
            "webhookId": format!("gretry-{n}"),
            "timestamp": (changed_at + chrono::Duration::seconds(40 * n)).to_rfc3339()})
    };
    // U2 (the newer change) reached us first; U1 got a 429 and comes back now.
    signer.send(&w, body(2, "new@example.com")).await;
    w.drain_queue().await;
    signer.send(&w, body(1, "old@example.com")).await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses[0].1, "done", "{statuses:?}");
    assert_eq!(statuses[1].1, "skipped", "{statuses:?}");
    assert!(
        statuses[1].2.as_deref().unwrap().starts_with("stale"),
        "{statuses:?}"
    );
    assert_eq!(
        w.state().await["aloware"]["contacts"][0]["email"],
        "new@example.com",
        "the newer change stands"
    );
    // Our clock only breaks ties: a body without GHL's time is judged by arrival.
    signer
        .send(&w, json!({"type": "ContactUpdate", "id": "gretry", "locationId": "sandbox-location",
            "firstName": "Rita", "phone": "+12025550107", "email": "later@example.com", "tags": []}))
        .await;
    w.drain_queue().await;
    assert_eq!(
        w.state().await["aloware"]["contacts"][0]["email"],
        "later@example.com"
    );
}

#[tokio::test]
async fn dnc_on_a_call_for_a_known_contact_reaches_ghl_dnd_keeping_sms_dnd() {
    let w = World::new().await;
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gcdnc", "locationId": "sandbox-location",
        "firstName": "Dee", "phone": "+12025550107", "tags": ["lead"],
        "dndSettings": {"SMS": {"status": "active", "message": "opted out by text"}}}]}),
    )
    .await;
    db_client(&w.stack.database_url)
        .await
        .execute("INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id, phone_number) VALUES ('777', 'gcdnc', '+12025550107')", &[])
        .await
        .unwrap();
    let mut call = disposition(4601, "+12025550107");
    call["body"]["contact_id"] = json!(777);
    call["body"]["contact"] = json!({"id": 777, "phone_number": "+12025550107", "is_dnc": true});
    w.aloware_webhook(call).await;
    w.drain_queue().await;
    assert_eq!(w.statuses().await[0].1, "done");
    let c = w.state().await["ghl"]["contacts"][0].clone();
    assert_eq!(c["dndSettings"]["Call"]["status"], "active", "{c}");
    assert_eq!(
        c["dndSettings"]["SMS"]["status"], "active",
        "SMS DND kept: {c}"
    );
    assert!(c["tags"].to_string().contains("\"dnc\""), "{c}");
}

#[tokio::test]
async fn records_blocked_behind_a_failure_spend_no_attempt_and_other_groups_proceed() {
    let w = World::new().await;
    for (id, phone) in [
        (4701, "+12025550201"),
        (4702, "+12025550201"),
        (4703, "+12025550203"),
    ] {
        w.aloware_webhook(disposition(id, phone)).await;
    }
    let ids = event_ids(&w).await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 503, "count": 1}),
    )
    .await;
    let batch = grouped_batch(&[(ids[0], "g1"), (ids[1], "g1"), (ids[2], "g2")]);
    let response = w.consumer.handle(batch, fresh_deadline()).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [format!("m-{}", ids[0]), format!("m-{}", ids[1])]);
    let attempts: Vec<(String, i32)> = db_client(&w.stack.database_url)
        .await
        .query(
            "SELECT status, attempts FROM webhook_events ORDER BY received_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        attempts,
        [
            ("error".into(), 1),
            ("pending".into(), 0),
            ("done".into(), 1)
        ],
        "the blocked record was not attempted; the other group went ahead"
    );
}

#[tokio::test]
async fn records_that_cannot_start_before_the_deadline_are_handed_back_unattempted() {
    let w = World::new().await;
    w.aloware_webhook(disposition(4801, "+12025550211")).await;
    w.aloware_webhook(disposition(4802, "+12025550212")).await;
    let ids = event_ids(&w).await;
    let near = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let response = w.consumer.handle(sqs_batch(&ids), near).await;
    assert_eq!(response.batch_item_failures.len(), 2);
    let untouched = w
        .stack
        .count("SELECT count(*) FROM webhook_events WHERE status = 'pending' AND attempts = 0")
        .await;
    assert_eq!(untouched, 2);
    assert!(w.requests("ghl").await.is_empty());
}

/// Postgres goes away for six minutes (DF_DB_OUTAGE_SECONDS shortens it locally) while
/// webhooks keep arriving and the consumers keep polling, with the template's queue
/// settings. Every acknowledged event ends done; GHL's webhooks refused with 429 during
/// the outage are stored when GHL retries them; no message is dead-lettered and no
/// attempt is spent on claims the outage made impossible.
#[tokio::test]
async fn a_database_outage_loses_nothing_dead_letters_nothing_and_spends_no_attempts() {
    let outage: u64 = std::env::var("DF_DB_OUTAGE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(360);
    let db = fresh_database().await;
    let proxy = PgProxy::start(&db).await;
    let queues = fresh_queues().await;
    let mut stack = Stack::with(&proxy.url, &queues.url).await;
    stack.dlq_url = Some(queues.dlq.clone());
    let sandbox = df_sandbox::spawn(SandboxConfig::default()).await;
    // The template's retry of an impossible claim (30 s), not the harness's short one.
    let w = World::on(stack, sandbox, &[("STORE_RETRY_SECONDS", "30")]).await;
    let contact = |n: usize| {
        json!({"contact_id": format!("gout{n}"), "first_name": "Out", "last_name": format!("N{n}"),
        "phone": format!("+120255502{:02}", n), "customData": {"event": "ContactUpdate"}})
    };
    let seed: Vec<Value> = (0..40)
        .map(|n| {
            json!({"id": format!("gout{n}"), "locationId": "sandbox-location", "firstName": "Out",
            "lastName": format!("N{n}"), "phone": format!("+120255502{:02}", n)})
        })
        .collect();
    w.sandbox_post("seed", json!({"ghl_contacts": seed})).await;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let flow = async {
        // Events arriving just before the outage: stored and queued, mostly unprocessed.
        for n in 0..20 {
            let (status, answer) = w.try_ghl_workflow_webhook(&contact(n)).await;
            assert_eq!(status, 200, "{answer}");
            acknowledged
                .lock()
                .unwrap()
                .push(answer["id"].as_str().unwrap().to_string());
        }
        proxy.cut();
        // During the outage GHL keeps sending; each is refused with 429 (and retried).
        let mut refused = Vec::new();
        for n in 20..40 {
            let (status, _) = w.try_ghl_workflow_webhook(&contact(n)).await;
            assert_eq!(status, 429, "no store, no acknowledgement: GHL will retry");
            refused.push(n);
            tokio::time::sleep(std::time::Duration::from_secs_f64(outage as f64 / 25.0)).await;
        }
        let remaining = std::time::Duration::from_secs(outage).saturating_sub(
            std::time::Duration::from_secs_f64(outage as f64 * 20.0 / 25.0),
        );
        tokio::time::sleep(remaining).await;
        proxy.restore();
        // GHL's retries of the refused deliveries.
        for n in refused {
            let (status, answer) = w.try_ghl_workflow_webhook(&contact(n)).await;
            assert_eq!(status, 200, "{answer}");
            acknowledged
                .lock()
                .unwrap()
                .push(answer["id"].as_str().unwrap().to_string());
        }
        // Let everything settle, then stop the consumers. Rows caught mid-attempt by the
        // cut could not record their outcome: they wait out the claim's lease.
        let settle = std::time::Instant::now()
            + df_shared::pipeline::consumer::CLAIM_LEASE
            + std::time::Duration::from_secs(120);
        loop {
            if depth(&w.stack.queue_url).await == 0 && w.unfinished().await == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < settle,
                "not settled: {:?}",
                w.statuses().await
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    futures::join!(flow, w.run_consumers_until(&stop));
    let client = db_client(&db).await;
    let rows: Vec<(String, String, i32)> = client
        .query("SELECT id::text, status, attempts FROM webhook_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let acknowledged = acknowledged.into_inner().unwrap();
    assert_eq!(
        rows.len(),
        acknowledged.len(),
        "stored exactly what was acknowledged"
    );
    for id in &acknowledged {
        let row = rows.iter().find(|r| &r.0 == id).expect("acknowledged row");
        assert_eq!(row.1, "done", "{row:?}");
    }
    let spent: i32 = rows.iter().map(|r| r.2).sum();
    let retried: Vec<String> = client
        .query(
            "SELECT e.attempts::text || ': ' || string_agg(coalesce(l.error_message, l.status), ' | ' ORDER BY l.started_at)
             FROM webhook_events e JOIN sync_log l ON l.correlation_id = e.id::text
             WHERE e.attempts > 1 GROUP BY e.id, e.attempts",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        spent <= rows.len() as i32 + POLLERS as i32,
        "claims refused by the outage spend no attempt ({spent} attempts for {} rows; only the \
         records being processed at the moment of the cut may be attempted twice): {retried:#?}",
        rows.len()
    );
    assert_eq!(depth(&queues.dlq).await, 0, "nothing dead-lettered");
    let aloware = w.state().await["aloware"]["contacts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(aloware, 40, "every contact reached Aloware once");
}

#[tokio::test]
async fn custom_fields_missing_in_ghl_stop_the_cold_start_unless_created() {
    let sandbox = df_sandbox::spawn(SandboxConfig {
        seed_custom_fields: false,
        ..SandboxConfig::default()
    })
    .await;
    let stack = Stack::new().await;
    let settings = consumer_settings(
        &stack.database_url,
        &stack.queue_url,
        &sandbox,
        "merge",
        &[],
    );
    let err = df_shared::app::webhook_consumer(&settings)
        .await
        .err()
        .expect("missing fields stop the start");
    let message = err.to_string();
    for key in ["aloware_contact_id", "intake_source", "lead_source"] {
        assert!(message.contains(key), "{message}");
    }
    assert!(message.contains("GHL_CREATE_CUSTOM_FIELDS"), "{message}");
    let w = World::on(stack, sandbox, &[("GHL_CREATE_CUSTOM_FIELDS", "true")]).await;
    let fields = w.state().await["ghl"]["custom_fields"].clone();
    assert_eq!(fields.as_array().unwrap().len(), 3, "created: {fields}");
    w.aloware_webhook(
        json!({"event": "Contact-Created", "body": {"id": 31, "first_name": "Cy",
        "phone_number": "+12025550131", "lead_source": "Ads"}}),
    )
    .await;
    w.drain_queue().await;
    let lead_id = w.custom_field_id("lead_source").await;
    let contact = w.state().await["ghl"]["contacts"][0].clone();
    assert!(
        contact["customFields"]
            .as_array()
            .unwrap()
            .contains(&json!({"id": lead_id, "value": "Ads"})),
        "{contact}"
    );
}

#[tokio::test]
async fn ghl_to_aloware_reads_the_phone_lookup_in_every_shape() {
    for shape in ["plain", "contact", "data", "list"] {
        let w = World::new().await;
        w.sandbox_post("config", json!({"aloware_lookup_shape": shape}))
            .await;
        w.sandbox_post("seed", json!({
            "ghl_contacts": [{"id": "gshape", "locationId": "sandbox-location", "firstName": "Sha", "lastName": "Pe",
                "phone": "+12025550132", "email": "shape@example.com"}],
            "aloware_contacts": [{"id": 932, "first_name": "Sha", "last_name": "Pe", "phone_number": "+12025550132"}]
        }))
        .await;
        w.ghl_workflow_webhook(
            json!({"contact_id": "gshape", "customData": {"event": "ContactUpdate"}}),
        )
        .await;
        w.drain_queue().await;
        assert_eq!(w.statuses().await[0].1, "done", "{shape}");
        let alo = w.state().await["aloware"]["contacts"].clone();
        assert_eq!(
            alo.as_array().unwrap().len(),
            1,
            "{shape}: updated, not duplicated: {alo}"
        );
        assert_eq!(alo[0]["email"], "shape@example.com", "{shape}");
        let mapped = w
            .stack
            .count("SELECT count(*) FROM contact_mappings WHERE aloware_contact_id = '932'")
            .await;
        assert_eq!(mapped, 1, "{shape}: the Aloware id was read");
    }
}

#[tokio::test]
async fn aloware_calls_are_metered_by_their_own_bucket() {
    let w = World::with(
        SandboxConfig::default(),
        &[("ALOWARE_RATE_LIMIT_PER_10S", "10")],
    )
    .await;
    let aloware = &w.consumer.router.deps.aloware;
    let started = std::time::Instant::now();
    for _ in 0..10 {
        aloware.lookup_phone("+12025550133").await.unwrap();
    }
    let took = started.elapsed();
    // A burst of 5, then one token a second: the last of 10 calls waits ~5 s.
    assert!(
        took >= std::time::Duration::from_secs(4),
        "10 calls at 1/s after a burst of 5 took {took:?}"
    );
    let buckets = w
        .stack
        .count("SELECT count(*) FROM rate_limit_buckets WHERE bucket_key LIKE 'aloware:%'")
        .await;
    assert_eq!(buckets, 1);
}

#[tokio::test]
async fn contacts_resolve_by_the_mapped_phone_before_asking_ghl() {
    let w = World::new().await;
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gmapped", "locationId": "sandbox-location",
        "firstName": "Map", "phone": "+12025550134"}]}),
    )
    .await;
    // Known by phone from an earlier sync, but not by this Aloware id.
    db_client(&w.stack.database_url)
        .await
        .execute("INSERT INTO contact_mappings (ghl_contact_id, phone_number) VALUES ('gmapped', '+12025550134')", &[])
        .await
        .unwrap();
    w.aloware_webhook(
        json!({"event": "Contact-Updated", "body": {"id": 934, "first_name": "Map",
        "last_name": "Ped", "phone_number": "+12025550134"}}),
    )
    .await;
    w.drain_queue().await;
    let paths: Vec<String> = w
        .requests("ghl")
        .await
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        paths,
        ["GET /ghl/contacts/gmapped", "PUT /ghl/contacts/gmapped"],
        "the mapping's contact, no duplicate search"
    );
    let mapped = w
        .stack
        .count("SELECT count(*) FROM contact_mappings WHERE ghl_contact_id = 'gmapped' AND aloware_contact_id = '934'")
        .await;
    assert_eq!(mapped, 1);
}

#[tokio::test]
async fn an_id_from_a_webhook_body_cannot_steer_a_provider_request() {
    let w = World::new().await;
    w.ghl_workflow_webhook(
        json!({"contact_id": "x/notes", "customData": {"event": "ContactUpdate"}}),
    )
    .await;
    w.ghl_workflow_webhook(
        json!({"contact_id": "..", "customData": {"event": "ContactUpdate", "n": 2}}),
    )
    .await;
    w.drain_for(std::time::Duration::from_secs(60)).await;
    let paths: Vec<String> = w
        .requests("ghl")
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        ["/ghl/contacts/x%2Fnotes"],
        "the id stays inside its segment; a dot-segment id is never sent"
    );
    let statuses = w.statuses().await;
    assert_eq!(statuses[1].1, "failed", "{statuses:?}");
    assert!(statuses[1]
        .2
        .as_deref()
        .unwrap()
        .contains("not a usable path segment"));
}

/// A location that allows duplicate contacts, and GHL's search trailing its writes:
/// the create of a new contact goes through but its answer is lost. The retry must not
/// make a second contact: it finds the earlier attempt's intent, waits out the search
/// lag and adopts the contact GHL made.
#[tokio::test]
async fn a_lost_create_answer_never_makes_a_second_contact_where_duplicates_are_allowed() {
    let w = World::with(
        SandboxConfig {
            ghl_allow_duplicate_contacts: true,
            ..SandboxConfig::default()
        },
        &[("RETRY_BASE_SECONDS", "1")],
    )
    .await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 502, "count": 1, "apply": true,
            "method": "POST", "path_contains": "ghl/contacts"}),
    )
    .await;
    w.aloware_webhook(json!({"event": "Contact-Updated", "body": {"id": 8801,
        "first_name": "Dee", "last_name": "Upe", "phone_number": "+12025550181"}}))
        .await;
    w.drain_queue().await;
    assert_eq!(w.statuses().await[0].1, "done", "{:?}", w.statuses().await);
    let contacts = w.state().await["ghl"]["contacts"].clone();
    assert_eq!(contacts.as_array().unwrap().len(), 1, "{contacts}");
    let creates = w
        .requests("ghl")
        .await
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/ghl/contacts")
        .collect::<Vec<_>>();
    assert_eq!(
        creates.len(),
        1,
        "one create, answered 502: the retry adopted it"
    );
    assert_eq!(creates[0]["status"], 502);
}

/// The texting and the webhook consumers meet on a person GHL does not know yet (an SMS
/// and a call at once), on a location that allows duplicates: one contact, both records
/// on it.
#[tokio::test]
async fn two_consumers_racing_on_a_new_person_make_one_contact() {
    let w = World::with_texting(
        SandboxConfig {
            ghl_allow_duplicate_contacts: true,
            ..SandboxConfig::default()
        },
        &[("RETRY_BASE_SECONDS", "1")],
    )
    .await;
    let phone = "+12025550182";
    w.aloware_webhook(disposition(8802, phone)).await;
    w.texting_webhook(json!({"type": "message.received", "data": {"id": "race-1", "from": phone,
        "to": "+12025550142", "body": "calling you back", "createdAt": chrono::Utc::now().to_rfc3339()}}))
        .await;
    w.drain_queue().await;
    let contacts = w.state().await["ghl"]["contacts"].clone();
    assert_eq!(contacts.as_array().unwrap().len(), 1, "{contacts}");
    assert_eq!(w.notes().await.len(), 2, "the call's note and the SMS note");
}
