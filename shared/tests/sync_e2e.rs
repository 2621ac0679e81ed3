//! End to end: webhook → ingest handler → SQS FIFO queue (moto) → `process-webhook-events`
//! fed the received messages as Lambda's trigger would (successes deleted, failures left
//! for redelivery) → provider sandbox over HTTP. Then the sandbox's state is checked.
mod common;

use common::*;
use df_sandbox::SandboxConfig;
use df_shared::ingest::{aloware, ghl};
use df_shared::pipeline::{sqs_event, Consumer};
use serde_json::{json, Value};

/// The consumer's settings against a database, a queue and a sandbox; `extra` wins.
fn consumer_settings(
    database_url: &str,
    queue_url: &str,
    sandbox: &str,
    policy: &str,
    extra: &[(&str, &str)],
) -> df_shared::lambda::Settings {
    let (ghl, aloware) = (format!("{sandbox}/ghl"), format!("{sandbox}/aloware"));
    let base = [
        ("DATABASE_URL", database_url),
        ("WEBHOOK_EVENTS_QUEUE_URL", queue_url),
        ("GHL_BASE_URL", ghl.as_str()),
        ("GHL_API_KEY", "sandbox-ghl-token"),
        ("GHL_LOCATION_ID", "sandbox-location"),
        ("ALOWARE_BASE_URL", aloware.as_str()),
        ("ALOWARE_API_TOKEN", "sandbox-aloware-token"),
        ("CONTACT_SOURCE_OF_TRUTH", policy),
        ("RETRY_BASE_SECONDS", "0"),
    ];
    df_shared::lambda::Settings::from_pairs(base.into_iter().chain(extra.iter().copied()))
}

struct World {
    stack: Stack,
    sandbox: String,
    consumer: Consumer,
    aloware: aloware::AlowareConfig,
    ghl: ghl::GhlConfig,
    http: reqwest::Client,
}

impl World {
    async fn new() -> World {
        Self::with(SandboxConfig::default(), &[]).await
    }

    /// A sandbox with a 1 s rate window: a 429's back-off (one window) stays short.
    async fn with_short_rate_window() -> World {
        Self::with(
            SandboxConfig {
                ghl_rate_window: std::time::Duration::from_secs(1),
                ..SandboxConfig::default()
            },
            &[],
        )
        .await
    }

    async fn with(sandbox_config: SandboxConfig, extra: &[(&str, &str)]) -> World {
        let sandbox = df_sandbox::spawn(sandbox_config).await;
        let stack = Stack::new().await;
        let consumer_settings = consumer_settings(
            &stack.database_url,
            &stack.queue_url,
            &sandbox,
            "merge",
            extra,
        );
        let consumer = Consumer::from_settings(&consumer_settings)
            .await
            .expect("consumer");
        World {
            aloware: aloware::AlowareConfig::from_settings(&stack.settings).unwrap(),
            ghl: ghl::GhlConfig::from_settings(&stack.settings).unwrap(),
            stack,
            sandbox,
            consumer,
            http: reqwest::Client::new(),
        }
    }

    async fn aloware_webhook(&self, body: Value) -> Value {
        let req = post(
            "/api/webhooks/aloware",
            &[("authorization", &basic_auth())],
            body.to_string(),
        );
        let (status, answer) =
            json_of(aloware::handle(&self.stack.ingest, &self.aloware, req).await).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn ghl_workflow_webhook(&self, body: Value) -> Value {
        let req = post(
            "/api/webhooks/ghl",
            &[("x-df-workflow-secret", WORKFLOW_SECRET)],
            body.to_string(),
        );
        let (status, answer) = json_of(ghl::handle(&self.stack.ingest, &self.ghl, req).await).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Act as Lambda's SQS trigger until the queue is empty: batches of up to 10,
    /// successes deleted, reported failures left to reappear after their visibility.
    async fn drain_queue(&self) {
        let sqs = sqs().await;
        let mut idle = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(400);
        while std::time::Instant::now() < deadline {
            let out = sqs
                .receive_message()
                .queue_url(&self.stack.queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                idle += 1;
                if idle >= 3 && self.in_flight(&sqs).await == 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            idle = 0;
            let response = self
                .consumer
                .handle(sqs_event::from_received(
                    &messages,
                    "arn:aws:sqs:us-east-1:123456789012:test.fifo",
                ))
                .await;
            let failed: Vec<String> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            for m in &messages {
                if !failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                    sqs.delete_message()
                        .queue_url(&self.stack.queue_url)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        panic!("queue did not drain");
    }

    async fn in_flight(&self, sqs: &aws_sdk_sqs::Client) -> i64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = sqs
            .get_queue_attributes()
            .queue_url(&self.stack.queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes.unwrap_or_default();
        let n = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible)
    }

    async fn sandbox_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_sandbox/{path}", self.sandbox))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn sandbox_post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}/_sandbox/{path}", self.sandbox))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn state(&self) -> Value {
        self.sandbox_get("state").await
    }

    async fn requests(&self, provider: &str) -> Vec<Value> {
        self.sandbox_get(&format!("requests?provider={provider}"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    async fn statuses(&self) -> Vec<(String, String, Option<String>)> {
        let client = db_client(&self.stack.database_url).await;
        client
            .query("SELECT event_type, status, coalesce(skip_reason, error_message) FROM webhook_events ORDER BY received_at", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

/// A call lifecycle of the captured shape (init → disposition → recording → summary).
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
    let fields = ghl_contact["customFields"].to_string();
    assert!(
        fields.contains("aloware_contact_id") && fields.contains("155091981"),
        "{fields}"
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

/// Signs GHL marketplace webhooks with a test key the world's GHL config trusts.
struct GhlSigner(ed25519_dalek::SigningKey);

impl GhlSigner {
    fn install(w: &mut World) -> GhlSigner {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
        let pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let keys = df_shared::auth::GhlKeys::from_pem(
            &pem,
            df_shared::auth::ghl_signature::PUBLISHED_RSA_PEM,
        )
        .unwrap();
        w.ghl = ghl::GhlConfig::new(keys, Some(WORKFLOW_SECRET.into()));
        GhlSigner(key)
    }

    async fn send(&self, w: &World, body: Value) {
        use base64::Engine;
        use ed25519_dalek::Signer as _;
        let text = body.to_string();
        let sig = base64::engine::general_purpose::STANDARD
            .encode(self.0.sign(text.as_bytes()).to_bytes());
        let req = post("/api/webhooks/ghl", &[("x-ghl-signature", &sig)], text);
        let (status, answer) = json_of(ghl::handle(&w.stack.ingest, &w.ghl, req).await).await;
        assert_eq!(status, 200, "{answer}");
    }
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
    let logged: i64 = client
        .query_one("SELECT count(*) FROM sync_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 40, "one sync_log row per sync");
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
async fn a_poison_event_ends_as_error_while_others_proceed() {
    let w = World::new().await;
    // No phone, no email: nothing to key the contact on. Not retryable.
    w.aloware_webhook(
        json!({"event": "Contact-Created", "body": {"id": 1, "first_name": "Nobody"}}),
    )
    .await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses[0].1, "error");
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
    w.ghl = ghl::GhlConfig::new(keys, None);
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
    for i in 0..5 {
        let mut call = call_lifecycle()[1].clone();
        call["body"]["id"] = json!(1000 + i);
        call["body"]["lead_number"] = json!(format!("+1202555012{i}"));
        w.aloware_webhook(call).await;
    }
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

#[tokio::test]
async fn a_429_storm_loses_nothing() {
    let w = World::with_short_rate_window().await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 429, "count": 25}),
    )
    .await;
    for i in 0..8 {
        let mut call = call_lifecycle()[1].clone();
        call["body"]["id"] = json!(2000 + i);
        call["body"]["lead_number"] = json!(format!("+1202555013{i}"));
        w.aloware_webhook(call).await;
    }
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

fn sqs_batch(ids: &[uuid::Uuid]) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = ids
        .iter()
        .map(|id| {
            let mut r = aws_lambda_events::sqs::SqsMessage::default();
            r.message_id = Some(format!("m-{id}"));
            r.body = Some(json!({"event_id": id, "kind": "webhook"}).to_string());
            r
        })
        .collect();
    event
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
    let response = w.consumer.handle(sqs_batch(&ids)).await;
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
    let response = w.consumer.handle(sqs_batch(&ids)).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(w.statuses().await.iter().all(|s| s.1 == "done"));
}

#[tokio::test]
async fn quarantined_events_are_skipped_and_finished_events_not_reapplied() {
    let w = World::new().await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    let ids = event_ids(&w).await;
    let client = db_client(&w.stack.database_url).await;
    client
        .execute("INSERT INTO quarantine_events (event_id, event_source, reason) VALUES ($1, 'webhook', 'operator: bad data')", &[&ids[0]])
        .await
        .unwrap();
    assert!(w
        .consumer
        .handle(sqs_batch(&ids))
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(
        w.statuses().await[0],
        (
            "OutboundPhoneCall-DispositionCompleted".into(),
            "skipped".into(),
            Some("quarantined".into())
        )
    );
    assert!(
        w.requests("ghl").await.is_empty(),
        "nothing sent for a quarantined event"
    );
    // Redelivery of a finished event changes nothing.
    assert!(w
        .consumer
        .handle(sqs_batch(&ids))
        .await
        .batch_item_failures
        .is_empty());
    let logged: i64 = client
        .query_one("SELECT count(*) FROM sync_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn clients_type_their_failures() {
    use df_shared::providers::aloware::AlowareClient;
    let w = World::new().await;
    // A base URL that reaches no API path: Aloware answers 200 with HTML.
    let wrong_base = AlowareClient::new(
        reqwest::Client::new(),
        &format!("{}/aloware/app", w.sandbox),
        "sandbox-aloware-token",
    );
    let err = wrong_base.lookup_phone("+12025550100").await.unwrap_err();
    assert!(
        !err.retryable && err.message.contains("not the expected JSON"),
        "{err}"
    );
    let wrong_token = AlowareClient::new(
        reqwest::Client::new(),
        &format!("{}/aloware", w.sandbox),
        "nope",
    );
    let err = wrong_token.lookup_phone("+12025550100").await.unwrap_err();
    assert!(
        !err.retryable && err.message.contains("credentials rejected"),
        "{err}"
    );
    w.sandbox_post(
        "faults",
        json!({"provider": "aloware", "status": 502, "count": 1}),
    )
    .await;
    let err = w
        .consumer
        .deps
        .aloware
        .lookup_phone("+12025550100")
        .await
        .unwrap_err();
    assert!(err.retryable, "{err}");
    let err = w
        .consumer
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
async fn origin_markers_are_written_when_enabled_and_detected_while_recent() {
    let w = World::with(
        SandboxConfig::default(),
        &[
            ("WRITE_ORIGIN_MARKERS", "true"),
            ("ECHO_WINDOW_SECONDS", "3"),
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
    // GHL's copy changed meanwhile (the fingerprint no longer matches); the marker still says "ours".
    ghl_contact["firstName"] = json!("Mía");
    w.sandbox_post("seed", json!({"ghl_contacts": [ghl_contact.clone()]}))
        .await;
    w.ghl_workflow_webhook(
        json!({"contact_id": ghl_contact["id"], "customData": {"event": "ContactUpdate", "n": 1}}),
    )
    .await;
    w.drain_queue().await;
    let last = w.statuses().await.pop().unwrap();
    assert_eq!(
        (last.1.as_str(), last.2.as_deref()),
        (
            "skipped",
            Some("echo: carries the origin marker of a middleware write")
        )
    );
    // Past the echo window the marker is stale: a person's edit syncs.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    w.ghl_workflow_webhook(
        json!({"contact_id": ghl_contact["id"], "customData": {"event": "ContactUpdate", "n": 2}}),
    )
    .await;
    w.drain_queue().await;
    assert_eq!(w.statuses().await.pop().unwrap().1, "done");
    assert_eq!(
        w.state().await["aloware"]["contacts"][0]["first_name"],
        "Mía"
    );
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
async fn an_event_that_keeps_failing_goes_to_the_dlq_after_ten_attempts() {
    let dlq = {
        let out = sqs()
            .await
            .create_queue()
            .queue_name(format!("dlq-{}.fifo", uuid::Uuid::new_v4().simple()))
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .unwrap();
        out.queue_url().unwrap().to_string()
    };
    let dlq_arn = sqs()
        .await
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs()
        .await
        .create_queue()
        .queue_name(format!("q-{}.fifo", uuid::Uuid::new_v4().simple()))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "10"}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let mut w = World::new().await;
    w.stack = Stack::with(&w.stack.database_url.clone(), &queue).await;
    let settings = consumer_settings(&w.stack.database_url, &queue, &w.sandbox, "merge", &[]);
    w.consumer = Consumer::from_settings(&settings).await.unwrap();
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 500, "seconds": 120}),
    )
    .await;
    w.aloware_webhook(call_lifecycle()[1].clone()).await;
    w.drain_queue().await;
    let statuses = w.statuses().await;
    assert_eq!(statuses[0].1, "error");
    assert!(
        statuses[0]
            .2
            .as_deref()
            .unwrap()
            .contains("attempt 10 of 10"),
        "{statuses:?}"
    );
    assert_eq!(drain(&dlq).await.len(), 1, "the message is in the DLQ");
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
async fn the_texting_client_sends_reads_and_types_errors() {
    use df_shared::providers::texting::TextingClient;
    let w = World::new().await;
    let client = TextingClient::new(
        reqwest::Client::new(),
        &format!("{}/texting", w.sandbox),
        "sandbox-texting-key",
    );
    let sent = client
        .send("+12025550177", "+12025550142", "Hello")
        .await
        .unwrap();
    assert_eq!(sent.status, "queued");
    assert_eq!(
        client.get(&sent.id).await.unwrap().unwrap()["body"],
        "Hello"
    );
    assert_eq!(client.get("tx-nope").await.unwrap(), None);
    let err = client.send("", "+12025550142", "x").await.unwrap_err();
    assert_eq!((err.status, err.retryable), (Some(400), false));
    let wrong = TextingClient::new(
        reqwest::Client::new(),
        &format!("{}/texting", w.sandbox),
        "nope",
    );
    assert!(wrong
        .send("+12025550177", "+12025550142", "x")
        .await
        .unwrap_err()
        .message
        .contains("credentials rejected"));
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
            "UPDATE webhook_events SET status = 'processing', updated_at = now()",
            &[],
        )
        .await
        .unwrap();
    let response = w.consumer.handle(sqs_batch(&ids)).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "kept for redelivery, not acknowledged"
    );
    assert!(w.requests("ghl").await.is_empty());
    // Once the claim's five-minute lease has passed, a redelivery takes it over.
    client
        .execute(
            "UPDATE webhook_events SET updated_at = now() - interval '6 minutes'",
            &[],
        )
        .await
        .unwrap();
    assert!(w
        .consumer
        .handle(sqs_batch(&ids))
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(w.statuses().await[0].1, "done");
    // A delivery for a finished event is acknowledged and changes nothing.
    let writes = w.requests("ghl").await.len();
    assert!(w
        .consumer
        .handle(sqs_batch(&ids))
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
