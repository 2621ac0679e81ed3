//! Texting end to end (SPEC §6–§7): texting webhooks through the ingest, the
//! template-shaped texting queue and `process-texting-events` (several concurrent
//! pollers, the relay running) into the provider sandbox, and the opt-out registry.
mod common;

use common::world::*;
use common::*;
use df_sandbox::SandboxConfig;
use df_shared::ops::optouts::{self, Optouts};
use df_shared::providers::texting_api::{Purpose, SendError, TextingClient};
use serde_json::{json, Value};

/// The seed README's two texting examples (inbound SMS, then STOP), bodies verbatim.
const SEED_INBOUND: &str = r#"{
    "type":"message.received",
    "message":{
      "id":"msg_123",
      "conversationId":"conv_abc",
      "from":"+16195550111",
      "to":"+18885550123",
      "body":"Hey, I have a question about my investment",
      "timestamp":"2025-12-26T14:00:00Z"
    }
  }"#;
const SEED_STOP: &str = r#"{
    "type":"message.received",
    "message":{
      "id":"msg_124",
      "conversationId":"conv_abc",
      "from":"+16195550111",
      "to":"+18885550123",
      "body":"STOP",
      "timestamp":"2025-12-26T14:01:00Z"
    }
  }"#;
const PARTY: &str = "+16195550111";
const OUR_NUMBER: &str = "+18885550123";
const CONFIRMATION: &str = "You are unsubscribed. Reply START to resubscribe.";
const HELP_REPLY: &str = "Reply STOP to unsubscribe.";
const PROVIDER: &str = "sandbox-conversation-provider";

async fn world(extra: &[(&str, &str)]) -> World {
    let mut all = vec![
        ("TEXTING_STOP_CONFIRMATION", CONFIRMATION),
        ("TEXTING_HELP_REPLY", HELP_REPLY),
    ];
    all.extend_from_slice(extra);
    World::with_texting(SandboxConfig::default(), &all).await
}

fn inbound(id: &str, from: &str, body: &str, at: &str) -> Value {
    json!({"type": "message.received", "message": {"id": id, "from": from, "to": OUR_NUMBER,
        "body": body, "timestamp": at}})
}

fn outbound(event: &str, id: &str, to: &str, body: &str) -> Value {
    json!({"type": event, "data": {"messageId": id, "from": OUR_NUMBER, "to": to, "text": body,
        "createdAt": "2026-11-20T09:00:00Z"}})
}

/// The GHL contacts with this phone.
async fn contacts_with(w: &World, phone: &str) -> Vec<Value> {
    w.state().await["ghl"]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["phone"] == phone)
        .cloned()
        .collect()
}

/// Texts the texting sandbox was asked to send, as `(to, from, body)`.
async fn texts_sent(w: &World) -> Vec<(String, String, String)> {
    w.state().await["texting"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("to"), s("from"), s("body"))
        })
        .collect()
}

fn has_tag(contact: &Value, tag: &str) -> bool {
    contact["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x.as_str() == Some(tag)))
}

fn sms_dnd(contact: &Value) -> Option<&str> {
    contact
        .pointer("/dndSettings/SMS/status")
        .and_then(Value::as_str)
}

async fn registry(w: &World, phone: &str) -> Option<String> {
    db_client(&w.stack.database_url)
        .await
        .query_opt(
            "SELECT status FROM optout_registry WHERE phone_number = $1",
            &[&phone],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn audit(w: &World, phone: &str) -> Vec<(String, String, Option<String>)> {
    db_client(&w.stack.database_url)
        .await
        .query(
            "SELECT action, source, resulting_status FROM optout_events WHERE phone_number = $1 ORDER BY applied_at, id",
            &[&phone],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn assert_all_done(statuses: &[(String, String, Option<String>)]) {
    assert!(
        statuses.iter().all(|s| s.1 == "done" || s.1 == "skipped"),
        "{statuses:?}"
    );
}

fn guarded_client(w: &World, pool: deadpool_postgres::Pool) -> TextingClient {
    TextingClient::new(
        reqwest::Client::new(),
        &format!("{}/texting", w.sandbox),
        "sandbox-texting-key",
        pool,
        "US",
    )
}

fn pool(w: &World) -> deadpool_postgres::Pool {
    w.stack.settings.pool().unwrap()
}

#[tokio::test]
async fn the_seeds_inbound_sms_and_stop_work_verbatim() {
    let w = world(&[]).await;
    w.texting_webhook(serde_json::from_str(SEED_INBOUND).unwrap())
        .await;
    w.texting_webhook(serde_json::from_str(SEED_STOP).unwrap())
        .await;
    w.drain_queue().await;
    assert_all_done(&w.texting_statuses().await);
    let contacts = contacts_with(&w, PARTY).await;
    assert_eq!(contacts.len(), 1, "one contact for the party");
    let contact = &contacts[0];
    let id = contact["id"].as_str().unwrap();
    let notes = w.state().await["ghl"]["notes"][id].clone();
    let bodies: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies.iter().any(|b| b.starts_with(
        "[SMS][Inbound] 2025-12-26 14:00:00 UTC\nFrom: +16195550111\nTo: +18885550123\n\nHey, I have a question about my investment"
    )), "{bodies:?}");
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with("[SMS][Inbound] 2025-12-26 14:01:00 UTC")
                && b.contains("\n\nSTOP"))
    );
    // The STOP: registry, GHL DND + both tags, one confirmation from the number texted.
    assert_eq!(registry(&w, PARTY).await.as_deref(), Some("opted_out"));
    assert_eq!(sms_dnd(contact), Some("active"));
    assert!(
        has_tag(contact, "dnc-sms") && has_tag(contact, "sms opted out"),
        "{contact}"
    );
    assert_eq!(
        texts_sent(&w).await,
        vec![(PARTY.into(), OUR_NUMBER.into(), CONFIRMATION.into())]
    );
    let client = db_client(&w.stack.database_url).await;
    let mapped: Vec<(String, String, String)> = client
        .query("SELECT texting_message_id, ghl_record_kind, status FROM message_mappings ORDER BY texting_message_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        mapped,
        vec![
            ("msg_123".into(), "note".into(), "received".into()),
            ("msg_124".into(), "note".into(), "received".into())
        ]
    );
    // Redelivered, both are duplicates; the texting system's own `optout.stop` for the
    // same message is the same request: nothing twice.
    let again = w
        .texting_webhook(serde_json::from_str(SEED_STOP).unwrap())
        .await;
    assert_eq!(again["duplicate"], true);
    w.texting_webhook(
        json!({"type": "optout.stop", "message": {"id": "msg_124", "from": PARTY,
        "to": OUR_NUMBER, "body": "STOP"}}),
    )
    .await;
    w.drain_queue().await;
    assert_eq!(audit(&w, PARTY).await.len(), 1, "one opt-out on record");
    assert_eq!(texts_sent(&w).await.len(), 1, "no second confirmation");
    assert_eq!(w.notes().await.len(), 2, "no second note");
}

#[tokio::test]
async fn stop_start_stop_is_on_record_and_visible_to_an_operator() {
    let w = world(&[]).await;
    for (id, body, at) in [
        ("m1", "Stop.", "2026-11-20T10:00:00Z"),
        ("m2", "start", "2026-11-20T10:05:00Z"),
        ("m3", "🛑 UNSUBSCRIBE 🛑", "2026-11-20T10:10:00Z"),
        // Not requests: a sentence, and a YES from a number that is opted out only
        // after the third message (it was opted in again before).
        ("m4", "don't stop calling me", "2026-11-20T10:15:00Z"),
    ] {
        // Minutes apart, as a person texts: each request's job runs before the next.
        w.texting_webhook(inbound(id, PARTY, body, at)).await;
        w.drain_queue().await;
    }
    assert_all_done(&w.texting_statuses().await);
    assert_eq!(
        audit(&w, PARTY).await,
        vec![
            ("opt_out".into(), "texting".into(), Some("opted_out".into())),
            ("opt_in".into(), "texting".into(), Some("opted_in".into())),
            ("opt_out".into(), "texting".into(), Some("opted_out".into())),
        ]
    );
    assert_eq!(registry(&w, PARTY).await.as_deref(), Some("opted_out"));
    let contact = contacts_with(&w, PARTY).await.remove(0);
    assert_eq!(sms_dnd(&contact), Some("active"));
    assert!(has_tag(&contact, "dnc-sms") && has_tag(&contact, "sms opted out"));
    assert_eq!(
        texts_sent(&w).await.len(),
        2,
        "one confirmation per opt-out"
    );

    // The operator's view: masked by default, complete with includeBody=true.
    let ctx = Optouts {
        pool: pool(&w),
        admin_secret: "admin-test-secret".into(),
        default_country: "US".into(),
    };
    let get = |_query: &str, secret: &str| {
        lambda_http::http::Request::builder()
            .uri("http://localhost/api/admin/optouts")
            .header("x-df-admin-secret", secret)
            .body(lambda_http::Body::Empty)
            .unwrap()
    };
    use lambda_http::RequestExt as _;
    let with_query = |query: &str, secret: &str| {
        let pairs: std::collections::HashMap<String, String> = url_pairs(query);
        get(query, secret).with_query_string_parameters(pairs)
    };
    let (status, masked) = json_of(
        optouts::handle(
            &ctx,
            with_query("phone=%2B16195550111", "admin-test-secret"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{masked}");
    assert_eq!(masked["phone"], "***0111");
    assert_eq!(masked["status"], "opted_out");
    assert_eq!(masked["canText"], false);
    let events = masked["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["rawText"], "[5 characters]");
    assert_eq!(events[0]["reply"], "confirmation: sent");
    assert_eq!(events[1]["reply"], Value::Null);
    assert!(!masked.to_string().contains("16195550111"), "{masked}");
    let (_, full) = json_of(
        optouts::handle(
            &ctx,
            with_query("phone=(619) 555-0111&includeBody=true", "admin-test-secret"),
        )
        .await,
    )
    .await;
    assert_eq!(full["phone"], PARTY);
    assert_eq!(full["events"][0]["rawText"], "Stop.");
    assert_eq!(full["events"][2]["keyword"], "UNSUBSCRIBE");
    assert_eq!(full["sends"].as_array().unwrap().len(), 2);
    for (query, secret, expected) in [
        ("phone=%2B16195550111", "wrong", 401),
        ("", "admin-test-secret", 400),
        ("phone=12", "admin-test-secret", 400),
        (
            "phone=%2B16195550111&includeBody=yes",
            "admin-test-secret",
            400,
        ),
    ] {
        let (status, body) = json_of(optouts::handle(&ctx, with_query(query, secret)).await).await;
        assert_eq!(status, expected, "{query}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let post = lambda_http::http::Request::builder()
        .method("POST")
        .uri("http://localhost/api/admin/optouts")
        .header("x-df-admin-secret", "admin-test-secret")
        .body(lambda_http::Body::Empty)
        .unwrap();
    assert_eq!(optouts::handle(&ctx, post).await.status(), 405);
}

/// `a=b&c=d` with `%2B` decoded, as API Gateway hands query parameters to the function.
fn url_pairs(query: &str) -> std::collections::HashMap<String, String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2B", "+")))
        .collect()
}

#[tokio::test]
async fn sends_to_an_opted_out_number_are_refused_and_the_trail_cannot_be_rewritten() {
    let w = world(&[]).await;
    w.texting_webhook(inbound("m1", PARTY, "STOP", "2026-11-20T10:00:00Z"))
        .await;
    w.drain_queue().await;
    let texting = guarded_client(&w, pool(&w));
    let before = texts_sent(&w).await.len();
    let refused = texting
        .send(
            "(619) 555-0111",
            OUR_NUMBER,
            "Still interested?",
            Purpose::Message,
        )
        .await;
    assert!(matches!(refused, Err(SendError::OptedOut)), "{refused:?}");
    // Only the current opt-out's confirmation is exempt, and it was already claimed by
    // the consumer; any other event id is refused.
    let other = uuid::Uuid::new_v4();
    assert!(matches!(
        texting
            .send(
                PARTY,
                OUR_NUMBER,
                CONFIRMATION,
                Purpose::OptoutConfirmation(other)
            )
            .await,
        Err(SendError::OptedOut)
    ));
    assert!(matches!(
        texting
            .send(PARTY, OUR_NUMBER, HELP_REPLY, Purpose::HelpReply(other))
            .await,
        Err(SendError::OptedOut)
    ));
    assert_eq!(
        texts_sent(&w).await.len(),
        before,
        "nothing reached the texting system"
    );
    let sent = texting
        .send("+12025550133", OUR_NUMBER, "Hello", Purpose::Message)
        .await
        .expect("a number that never opted out");
    assert_eq!(sent.message.status, "queued");
    assert!(matches!(
        texting.send("12", OUR_NUMBER, "x", Purpose::Message).await,
        Err(SendError::InvalidNumber)
    ));
    let client = db_client(&w.stack.database_url).await;
    let refused: i64 = client
        .query_one(
            "SELECT count(*) FROM texting_sends WHERE to_number = $1 AND status = 'refused'",
            &[&PARTY],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refused, 3, "every refused attempt is on record");
    for sql in [
        "UPDATE optout_events SET action = 'opt_in'",
        "DELETE FROM optout_events",
        "TRUNCATE optout_events CASCADE",
    ] {
        let err = client.execute(sql, &[]).await.unwrap_err();
        let message = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(
            message.contains("append-only") || message.contains("permission denied"),
            "{sql}: {err}"
        );
    }
    assert_eq!(audit(&w, PARTY).await.len(), 1);
}

#[tokio::test]
async fn the_texting_client_reads_and_types_provider_errors() {
    let w = world(&[]).await;
    let texting = guarded_client(&w, pool(&w));
    let sent = texting
        .send("+12025550177", "+12025550142", "Hello", Purpose::Message)
        .await
        .unwrap();
    assert_eq!(
        texting.get(&sent.message.id).await.unwrap().unwrap()["body"],
        "Hello"
    );
    assert_eq!(texting.get("tx-nope").await.unwrap(), None);
    // The texting system refuses a non-E.164 sender: a typed provider error, recorded.
    match texting
        .send("+12025550177", "main line", "x", Purpose::Message)
        .await
    {
        Err(SendError::Provider(e)) => assert_eq!((e.status, e.retryable), (Some(400), false)),
        other => panic!("{other:?}"),
    }
    let wrong = TextingClient::new(
        reqwest::Client::new(),
        &format!("{}/texting", w.sandbox),
        "nope",
        pool(&w),
        "US",
    );
    match wrong
        .send("+12025550177", "+12025550142", "x", Purpose::Message)
        .await
    {
        Err(SendError::Provider(e)) => assert!(e.message.contains("credentials rejected")),
        other => panic!("{other:?}"),
    }
    let failed: i64 = db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT count(*) FROM texting_sends WHERE status = 'failed' AND error_message IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 2);
}

#[tokio::test]
async fn help_is_answered_once_to_any_number_opted_out_or_not() {
    let w = world(&[]).await;
    w.texting_webhook(inbound("h1", PARTY, "Help", "2026-11-20T10:00:00Z"))
        .await;
    w.texting_webhook(json!({"type": "optout.help", "message": {"id": "h1", "from": PARTY, "to": OUR_NUMBER, "body": "Help"}}))
        .await;
    w.texting_webhook(inbound(
        "h2",
        "+12025550144",
        "STOP",
        "2026-11-20T10:00:00Z",
    ))
    .await;
    w.texting_webhook(inbound(
        "h3",
        "+12025550144",
        "INFO",
        "2026-11-20T10:01:00Z",
    ))
    .await;
    w.drain_queue().await;
    assert_all_done(&w.texting_statuses().await);
    let sent = texts_sent(&w).await;
    // CTIA: HELP is answered, opted out or not (the guard lets exactly that reply pass).
    assert_eq!(
        sent.iter().filter(|t| t.2 == HELP_REPLY).count(),
        2,
        "one answer per HELP, the opted-out number's included: {sent:?}"
    );
    assert!(sent.contains(&(PARTY.into(), OUR_NUMBER.into(), HELP_REPLY.into())));
    assert!(sent.contains(&("+12025550144".into(), OUR_NUMBER.into(), HELP_REPLY.into())));
    let refused: i64 = db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT count(*) FROM texting_sends WHERE purpose = 'help_reply' AND status = 'refused'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refused, 0);
}

#[tokio::test]
async fn sms_dnd_turned_on_in_ghl_opts_the_number_out_and_off_opts_it_back_in() {
    let mut w = world(&[]).await;
    let signer = GhlSigner::install(&mut w);
    let phone = "+12025550166";
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gdnd1", "locationId": "sandbox-location",
        "firstName": "Dee", "phone": phone, "tags": [],
        "dndSettings": {"SMS": {"status": "active"}, "Call": {"status": "active"}}}]}),
    )
    .await;
    let dnd = |sms: &str, hook: &str| {
        json!({"type": "ContactDndUpdate", "id": "gdnd1", "locationId": "sandbox-location",
            "firstName": "Dee", "phone": phone, "tags": [], "webhookId": hook,
            "dndSettings": {"SMS": {"status": sms}, "Call": {"status": "active"}},
            "timestamp": chrono::Utc::now().to_rfc3339()})
    };
    signer.send(&w, dnd("active", "wh-1")).await;
    w.drain_queue().await;
    assert_eq!(registry(&w, phone).await.as_deref(), Some("opted_out"));
    assert_eq!(
        audit(&w, phone).await,
        vec![("opt_out".into(), "ghl".into(), Some("opted_out".into()))]
    );
    let contact = contacts_with(&w, phone).await.remove(0);
    assert!(
        has_tag(&contact, "dnc-sms") && has_tag(&contact, "sms opted out"),
        "{contact}"
    );
    assert_eq!(
        contact.pointer("/dndSettings/Call/status"),
        Some(&json!("active")),
        "the call DND is kept"
    );
    let texting = guarded_client(&w, pool(&w));
    assert!(matches!(
        texting
            .send(phone, OUR_NUMBER, "hi", Purpose::Message)
            .await,
        Err(SendError::OptedOut)
    ));
    // A person turns SMS DND off in GHL: an opt-in, and the tags go.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gdnd1", "locationId": "sandbox-location",
        "firstName": "Dee", "phone": phone, "tags": [],
        "dndSettings": {"SMS": {"status": "inactive"}, "Call": {"status": "active"}}}]}),
    )
    .await;
    signer.send(&w, dnd("inactive", "wh-2")).await;
    w.drain_queue().await;
    assert_eq!(registry(&w, phone).await.as_deref(), Some("opted_in"));
    assert_eq!(audit(&w, phone).await.len(), 2);
    assert!(texting
        .send(phone, OUR_NUMBER, "hi", Purpose::Message)
        .await
        .is_ok());
}

#[tokio::test]
async fn a_ghl_outage_during_a_stop_ends_with_the_dnd_applied_and_no_false_opt_in() {
    let mut w = world(&[("RETRY_BASE_SECONDS", "1")]).await;
    let signer = GhlSigner::install(&mut w);
    let phone = "+12025550155";
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gout1", "locationId": "sandbox-location",
        "firstName": "Out", "phone": phone, "tags": ["vip"]}]}),
    )
    .await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 503, "seconds": 6}),
    )
    .await;
    w.texting_webhook(inbound("o1", phone, "STOP", "2026-11-20T10:00:00Z"))
        .await;
    let started = std::time::Instant::now();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let probe = async {
        // While GHL is down, the STOP already holds: the registry is written first.
        let texting = guarded_client(&w, pool(&w));
        loop {
            if registry(&w, phone).await.as_deref() == Some("opted_out") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            started.elapsed().as_secs_f64() < 6.0,
            "recorded during the outage"
        );
        assert!(matches!(
            texting
                .send(phone, OUR_NUMBER, "hi", Purpose::Message)
                .await,
            Err(SendError::OptedOut)
        ));
        // A person edits the contact in GHL meanwhile: its SMS DND still reads
        // inactive (GHL has not been told yet). That is no opt-in.
        signer
            .send(&w, json!({"type": "ContactUpdate", "id": "gout1", "locationId": "sandbox-location",
                "firstName": "Outage", "phone": phone, "tags": ["vip"], "webhookId": "wh-out",
                "dndSettings": {"SMS": {"status": "inactive"}}, "timestamp": chrono::Utc::now().to_rfc3339()}))
            .await;
        while w
            .stack
            .count("SELECT count(*) FROM webhook_events WHERE attempts > 0")
            .await
            == 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    futures::join!(probe, w.run_consumers_until(&stop));
    w.drain_queue().await;
    assert_all_done(&w.texting_statuses().await);
    assert_all_done(&w.statuses().await);
    let contact = contacts_with(&w, phone).await.remove(0);
    assert_eq!(sms_dnd(&contact), Some("active"), "{contact}");
    assert!(
        has_tag(&contact, "dnc-sms") && has_tag(&contact, "vip"),
        "{contact}"
    );
    assert_eq!(registry(&w, phone).await.as_deref(), Some("opted_out"));
    assert_eq!(
        audit(&w, phone).await.len(),
        1,
        "no opt-in from the stale DND"
    );
    let failed = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| r["status"] == 503)
        .count();
    assert!(failed >= 1, "the outage was felt");
    assert_eq!(
        texts_sent(&w).await.len(),
        1,
        "one confirmation despite the retries"
    );
}

#[tokio::test]
async fn delivery_statuses_update_the_mapping_and_duplicates_change_nothing() {
    let w = world(&[]).await;
    let to = "+12025550188";
    let sent = outbound("message.sent", "out-1", to, "Your appointment is at 3pm");
    for _ in 0..5 {
        w.texting_webhook(sent.clone()).await;
    }
    w.texting_webhook(outbound(
        "message.delivered",
        "out-1",
        to,
        "Your appointment is at 3pm",
    ))
    .await;
    // A status that overtakes its message (another group's retry, or the texting
    // system's order): kept, and the message takes it when it is recorded.
    w.texting_webhook(outbound("message.failed", "out-2", to, "Second"))
        .await;
    w.texting_webhook(outbound("message.sent", "out-2", to, "Second"))
        .await;
    w.drain_queue().await;
    assert_all_done(&w.texting_statuses().await);
    assert_eq!(
        w.stack
            .count("SELECT count(*) FROM texting_webhook_events")
            .await,
        4,
        "five deliveries of one webhook, one row"
    );
    let client = db_client(&w.stack.database_url).await;
    let rows: Vec<(String, String, i64)> = client
        .query("SELECT texting_message_id, status, jsonb_array_length(status_history)::int8 FROM message_mappings ORDER BY texting_message_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("out-1".into(), "delivered".into(), 1),
            ("out-2".into(), "failed".into(), 1)
        ]
    );
    let notes = w.notes().await;
    assert_eq!(notes.len(), 2, "one note per message");
    assert!(notes
        .iter()
        .any(|n| n["body"].as_str().unwrap().starts_with(
            "[SMS][Outbound] 2026-11-20 09:00:00 UTC\nFrom: +18885550123\nTo: +12025550188"
        )));
}

#[tokio::test]
async fn a_lost_answer_from_ghl_never_makes_a_second_note() {
    let w = world(&[]).await;
    // GHL writes the note but the answer is lost (500 after applying), twice.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 500, "count": 2, "apply": true, "path_contains": "/notes"}),
    )
    .await;
    w.texting_webhook(inbound(
        "lost-1",
        "+12025550122",
        "Call me back",
        "2026-11-20T10:00:00Z",
    ))
    .await;
    w.drain_queue().await;
    assert_all_done(&w.texting_statuses().await);
    assert_eq!(w.notes().await.len(), 1, "adopted, not duplicated");
}

#[tokio::test]
async fn with_a_conversation_provider_sms_go_into_the_contacts_conversation() {
    let w = world(&[("GHL_CONVERSATION_PROVIDER_ID", PROVIDER)]).await;
    w.sandbox_post("config", json!({"ghl_status_updates_allowed": true}))
        .await;
    let party = "+12025550199";
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 502, "count": 1, "apply": true, "path_contains": "/messages/inbound"}),
    )
    .await;
    w.texting_webhook(inbound(
        "c-in",
        party,
        "Is it still available?",
        "2026-11-20T10:00:00Z",
    ))
    .await;
    w.texting_webhook(outbound("message.sent", "c-out", party, "Yes it is"))
        .await;
    w.texting_webhook(outbound("message.delivered", "c-out", party, "Yes it is"))
        .await;
    w.drain_queue().await;
    assert_all_done(&w.texting_statuses().await);
    let state = w.state().await;
    assert_eq!(state["ghl"]["conversations"].as_array().unwrap().len(), 1);
    let messages = state["ghl"]["messages"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["messageType"].as_str().unwrap(),
                m["direction"].as_str().unwrap(),
                m["body"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("TYPE_SMS", "inbound", "Is it still available?", "delivered"),
            ("TYPE_SMS", "outbound", "Yes it is", "delivered"),
        ],
        "one message each despite the lost answer; direction as sent"
    );
    assert_eq!(messages[0]["altId"], "c-in");
    assert!(w.notes().await.is_empty(), "no notes in conversation mode");
    let status_updates = w
        .requests("ghl")
        .await
        .iter()
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().unwrap().ends_with("/status"))
        .count();
    assert_eq!(status_updates, 1);
}

#[tokio::test]
async fn ghl_refusing_our_token_a_status_update_is_reported_not_retried() {
    let w = world(&[("GHL_CONVERSATION_PROVIDER_ID", PROVIDER)]).await;
    let party = "+12025550198";
    w.texting_webhook(outbound("message.sent", "r-out", party, "Hello"))
        .await;
    w.drain_queue().await;
    w.texting_webhook(outbound("message.failed", "r-out", party, "Hello"))
        .await;
    w.drain_queue().await;
    let statuses = w.texting_statuses().await;
    assert_eq!(
        statuses.iter().filter(|s| s.1 == "done").count(),
        2,
        "{statuses:?}"
    );
    let client = db_client(&w.stack.database_url).await;
    let attempts: i32 = client
        .query_one("SELECT max(attempts) FROM texting_webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1);
    let decision: Value = client
        .query_one(
            "SELECT decisions FROM sync_log WHERE entity_id = 'r-out' AND decisions ? 'status'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        decision["ghl"]
            .as_str()
            .unwrap()
            .contains("only the provider app"),
        "{decision}"
    );
    let status: String = client
        .query_one(
            "SELECT status FROM message_mappings WHERE texting_message_id = 'r-out'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "failed");
}

#[tokio::test]
async fn texting_sync_to_aloware_maps_the_contact_and_fakes_no_sms_record() {
    let w = world(&[("TEXTING_SYNC_TO_ALOWARE", "true")]).await;
    let party = "+12025550191";
    w.sandbox_post(
        "seed",
        json!({"aloware_contacts": [{"id": 4242, "first_name": "Al",
        "phone_number": party}]}),
    )
    .await;
    w.texting_webhook(inbound("a-1", party, "Hi there", "2026-11-20T10:00:00Z"))
        .await;
    w.drain_queue().await;
    assert_all_done(&w.texting_statuses().await);
    let client = db_client(&w.stack.database_url).await;
    let aloware_id: Option<String> = client
        .query_one(
            "SELECT aloware_contact_id FROM contact_mappings WHERE phone_number = $1",
            &[&party],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(aloware_id.as_deref(), Some("4242"));
    let decisions: Value = client
        .query_one(
            "SELECT decisions FROM sync_log WHERE direction = 'texting_to_ghl'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        decisions["aloware"]["message"]
            .as_str()
            .unwrap()
            .contains("Aloware has no API to record an SMS"),
        "{decisions}"
    );
    let aloware_paths: Vec<String> = w
        .requests("aloware")
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        aloware_paths
            .iter()
            .all(|p| p.ends_with("/contact/phone-number")),
        "only the lookup: {aloware_paths:?}"
    );
}

#[tokio::test]
async fn the_texting_system_sending_to_an_opted_out_number_is_flagged() {
    let w = world(&[]).await;
    let party = "+12025550177";
    w.texting_webhook(inbound("f-1", party, "stop", "2026-11-20T10:00:00Z"))
        .await;
    w.drain_queue().await;
    w.texting_webhook(outbound("message.sent", "f-2", party, "Promo!"))
        .await;
    w.drain_queue().await;
    let decisions: Value = db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT decisions FROM sync_log WHERE source_id = 'f-2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        decisions["compliance"],
        "the texting system sent this to an opted-out number"
    );
}

#[tokio::test]
async fn calls_go_into_the_conversation_too_when_a_provider_is_set() {
    let w = world(&[("GHL_CONVERSATION_PROVIDER_ID", PROVIDER)]).await;
    let lead = "+12025550170";
    for (id, direction, status2) in [(7001, 2, 4), (7002, 1, 3)] {
        w.aloware_webhook(json!({"event": "PhoneCall-DispositionCompleted", "body": {"id": id.to_string(),
            "type": 1, "direction": direction, "disposition_status2": status2, "call_disposition": "Answered",
            "talk_time": 30, "contact_id": "5001", "lead_number": lead, "incoming_number": "+12025550142",
            "created_at": "2026-11-20 10:00:00"}}))
            .await;
        // The recording of the same call adds nothing to the conversation.
        w.aloware_webhook(json!({"event": "Call-Recording-Saved", "body": {"id": id.to_string(), "type": 1,
            "direction": direction, "lead_number": lead, "direct_recording_url": format!("https://rec.example/{id}.mp3")}}))
            .await;
    }
    w.drain_queue().await;
    assert_all_done(&w.statuses().await);
    let state = w.state().await;
    let calls: Vec<(String, String, Value)> = state["ghl"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["messageType"].as_str().unwrap().to_string(),
                m["direction"].as_str().unwrap().to_string(),
                m["call"].clone(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "TYPE_CALL".into(),
                "outbound".into(),
                json!({"from": "+12025550142", "to": lead, "status": "completed"})
            ),
            (
                "TYPE_CALL".into(),
                "inbound".into(),
                json!({"from": lead, "to": "+12025550142", "status": "no-answer"})
            ),
        ]
    );
    assert_eq!(w.notes().await.len(), 2, "the notes are still written");
}

#[tokio::test]
async fn a_call_and_a_text_from_a_new_person_at_once_make_one_contact() {
    let w = world(&[]).await;
    // Two queues, two consumers: nothing orders them. Each may search GHL, find
    // nobody and create; GHL refuses the second create and names the first. A slow
    // duplicate search widens the window, as a loaded GHL does.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "latency_ms": 300, "seconds": 60, "path_contains": "/search/duplicate"}),
    )
    .await;
    for i in 0..10 {
        let phone = format!("+120255502{i:02}");
        w.aloware_webhook(
            json!({"event": "PhoneCall-DispositionCompleted", "body": {"id": format!("88{i}"),
            "type": 1, "direction": 1, "disposition_status2": 4, "call_disposition": "Answered",
            "talk_time": 12, "contact_id": format!("99{i}"), "lead_number": phone,
            "created_at": "2026-11-20 10:00:00"}}),
        )
        .await;
        w.texting_webhook(inbound(
            &format!("race-{i}"),
            &phone,
            "Hi",
            "2026-11-20T10:00:00Z",
        ))
        .await;
    }
    w.drain_queue().await;
    assert_all_done(&w.statuses().await);
    assert_all_done(&w.texting_statuses().await);
    for i in 0..10 {
        let phone = format!("+120255502{i:02}");
        assert_eq!(contacts_with(&w, &phone).await.len(), 1, "{phone}");
    }
    assert_eq!(
        w.notes().await.len(),
        20,
        "a call note and an SMS note each"
    );
}

/// GHL records the call but its answer is a 429 (nothing to count against the event:
/// the attempt is given back), so the retry is the event's first counted attempt. The
/// call's conversation record has a write intent like its note: the retry adopts the
/// message GHL already holds instead of recording the call twice.
#[tokio::test]
async fn a_lost_answer_after_the_call_record_never_records_the_call_twice() {
    let w = world(&[("GHL_CONVERSATION_PROVIDER_ID", PROVIDER)]).await;
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 429, "count": 1, "apply": true,
            "path_contains": "/conversations/messages/outbound"}),
    )
    .await;
    w.aloware_webhook(
        json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": "7101",
        "type": 1, "direction": 2, "disposition_status2": 4, "call_disposition": "Answered",
        "talk_time": 30, "contact_id": "5101", "lead_number": "+12025550171",
        "incoming_number": "+12025550142", "created_at": "2026-11-20 10:00:00"}}),
    )
    .await;
    w.drain_queue().await;
    assert_all_done(&w.statuses().await);
    let calls = w.state().await["ghl"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["messageType"] == "TYPE_CALL")
        .count();
    assert_eq!(calls, 1, "the call recorded once");
    let posts: Vec<Value> = w
        .requests("ghl")
        .await
        .into_iter()
        .filter(|r| r["path"] == "/ghl/conversations/messages/outbound")
        .collect();
    assert_eq!(
        posts.len(),
        1,
        "the fault hit, and the retry adopted: {posts:?}"
    );
    assert_eq!(posts[0]["status"], 429);
    assert_eq!(w.notes().await.len(), 1);
}

// ---- the registry as the one source of truth (SPEC §7) ----

/// Run the pollers and the relay until `done` holds or `limit` passes; whether it held.
async fn run_until<F, Fut>(w: &World, limit: std::time::Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let stop = std::sync::atomic::AtomicBool::new(false);
    let held = std::sync::atomic::AtomicBool::new(false);
    let deadline = std::time::Instant::now() + limit;
    let watch = async {
        while std::time::Instant::now() < deadline {
            if done().await {
                held.store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    futures::join!(watch, w.run_consumers_until(&stop));
    held.load(std::sync::atomic::Ordering::SeqCst)
}

async fn texting_status_of(w: &World, message_id: &str) -> (String, i32) {
    let row = db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT status, attempts FROM texting_webhook_events WHERE payload_json->'message'->>'id' = $1",
            &[&message_id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn optouts_ctx(w: &World) -> Optouts {
    Optouts {
        pool: pool(w),
        admin_secret: "admin-test-secret".into(),
        default_country: "US".into(),
    }
}

async fn admin_get(w: &World, query: &str) -> (u16, Value) {
    use lambda_http::RequestExt as _;
    let req = lambda_http::http::Request::builder()
        .uri(format!("http://localhost/api/admin/optouts?{query}"))
        .header("x-df-admin-secret", "admin-test-secret")
        .body(lambda_http::Body::Empty)
        .unwrap()
        .with_query_string_parameters(url_pairs(query));
    json_of(optouts::handle(&optouts_ctx(w), req).await).await
}

async fn admin_resolve(w: &World, id: &str, body: Value) -> (u16, Value) {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost/api/admin/optouts/review/{id}"))
        .header("x-df-admin-secret", "admin-test-secret")
        .header("content-type", "application/json")
        .body(lambda_http::Body::from(body.to_string()))
        .unwrap();
    json_of(optouts::handle(&optouts_ctx(w), req).await).await
}

fn seed_contact(id: &str, phone: &str) -> Value {
    json!({"id": id, "locationId": "sandbox-location", "firstName": "Pat", "phone": phone, "tags": []})
}

#[tokio::test]
async fn a_stop_holds_from_its_200_while_the_persons_earlier_events_fail() {
    let w = world(&[("RETRY_BASE_SECONDS", "5")]).await;
    let phone = "+12025550301";
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [seed_contact("gack1", phone)]}),
    )
    .await;
    // GHL refuses notes for ten minutes: the person's first text cannot be written.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 503, "seconds": 600, "path_contains": "/notes"}),
    )
    .await;
    w.texting_webhook(inbound(
        "ack-1",
        phone,
        "Is the offer still open?",
        "2026-11-20T10:00:00Z",
    ))
    .await;
    let failed = run_until(&w, std::time::Duration::from_secs(60), || async {
        texting_status_of(&w, "ack-1").await.1 > 0
    })
    .await;
    assert!(failed, "the first text failed once");

    w.texting_webhook(inbound("ack-2", phone, "STOP", "2026-11-20T10:01:00Z"))
        .await;
    // Right after the 200, nothing processed since: the registry holds and the guard refuses.
    assert_eq!(registry(&w, phone).await.as_deref(), Some("opted_out"));
    let refused = guarded_client(&w, pool(&w))
        .send(phone, OUR_NUMBER, "Last chance!", Purpose::Message)
        .await;
    assert!(matches!(refused, Err(SendError::OptedOut)), "{refused:?}");

    // The confirmation and the GHL mirror follow through the queue, not behind the
    // failing text.
    let mirrored = run_until(&w, std::time::Duration::from_secs(60), || async {
        let c = contacts_with(&w, phone).await;
        c.first().and_then(sms_dnd) == Some("active")
    })
    .await;
    assert!(
        mirrored,
        "DND mirrored: {:?}",
        contacts_with(&w, phone).await
    );
    let (status, attempts) = texting_status_of(&w, "ack-1").await;
    assert_ne!(
        status, "done",
        "the earlier text is still failing ({attempts} attempts)"
    );
    let sent = texts_sent(&w).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].2, CONFIRMATION);
}

#[tokio::test]
async fn a_stop_by_aloware_sms_or_ghl_sms_is_on_record_before_the_200() {
    let mut w = world(&[]).await;
    let signer = GhlSigner::install(&mut w);
    let alo = "+12025550302";
    w.aloware_webhook(
        json!({"event": "Communication-InboundSMS", "body": {"id": 88001, "type": 2,
        "direction": 1, "lead_number": alo, "body": "Please stop texting me",
        "created_at": "2026-11-20 10:00:00"}}),
    )
    .await;
    assert_eq!(registry(&w, alo).await.as_deref(), Some("opted_out"));
    assert_eq!(
        audit(&w, alo).await,
        vec![("opt_out".into(), "aloware".into(), Some("opted_out".into()))]
    );

    let ghl_phone = "+12025550303";
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [seed_contact("gsms1", ghl_phone)]}),
    )
    .await;
    db_client(&w.stack.database_url)
        .await
        .execute(
            "INSERT INTO contact_mappings (ghl_contact_id, phone_number) VALUES ('gsms1', $1)",
            &[&ghl_phone],
        )
        .await
        .unwrap();
    signer
        .send(
            &w,
            json!({"type": "InboundMessage", "locationId": "sandbox-location",
            "contactId": "gsms1", "conversationId": "gc1", "messageId": "gmsg-1",
            "messageType": "SMS", "direction": "inbound", "body": "UNSUBSCRIBE",
            "dateAdded": "2026-11-20T10:02:00.000Z", "webhookId": "wh-sms-1",
            "timestamp": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(registry(&w, ghl_phone).await.as_deref(), Some("opted_out"));
    w.drain_queue().await;
    let c = contacts_with(&w, ghl_phone).await.remove(0);
    assert_eq!(sms_dnd(&c), Some("active"), "{c}");
    assert!(has_tag(&c, "dnc-sms"), "{c}");
}

#[tokio::test]
async fn an_older_start_arriving_after_a_newer_stop_never_resubscribes() {
    let w = world(&[]).await;
    let phone = "+12025550304";
    w.texting_webhook(inbound("ord-2", phone, "STOP", "2026-11-20T10:05:00Z"))
        .await;
    // The START was sent first but reaches us second (a provider retry).
    w.texting_webhook(inbound("ord-1", phone, "START", "2026-11-20T10:00:00Z"))
        .await;
    w.drain_queue().await;
    assert_eq!(registry(&w, phone).await.as_deref(), Some("opted_out"));
    let (status, trail) = admin_get(&w, &format!("phone={}", phone.replace('+', "%2B"))).await;
    assert_eq!(status, 200, "{trail}");
    let events = trail["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "both on record: {trail}");
    let start = events.iter().find(|e| e["action"] == "opt_in").unwrap();
    assert_eq!(start["superseded"], true, "{start}");
    assert_eq!(start["changed"], false, "{start}");
    let c = contacts_with(&w, phone).await;
    assert!(c.iter().all(|c| sms_dnd(c) == Some("active")), "{c:?}");
}

#[tokio::test]
async fn permanent_dnd_set_in_ghl_is_an_opt_out_and_is_never_downgraded() {
    let mut w = world(&[]).await;
    let signer = GhlSigner::install(&mut w);
    let phone = "+12025550305";
    let mut contact = seed_contact("gperm", phone);
    contact["dndSettings"] =
        json!({"SMS": {"status": "permanent", "message": "set by compliance"}});
    w.sandbox_post("seed", json!({"ghl_contacts": [contact]}))
        .await;
    signer
        .send(&w, json!({"type": "ContactDndUpdate", "id": "gperm", "locationId": "sandbox-location",
            "firstName": "Pat", "phone": phone, "tags": [], "webhookId": "wh-perm",
            "userId": "user-compliance-1",
            "dndSettings": {"SMS": {"status": "permanent"}}, "timestamp": chrono::Utc::now().to_rfc3339()}))
        .await;
    w.drain_queue().await;
    assert_eq!(registry(&w, phone).await.as_deref(), Some("opted_out"));
    // A STOP by text afterwards changes nothing in GHL: permanent stays permanent.
    w.texting_webhook(inbound(
        "perm-1",
        phone,
        "STOP",
        &chrono::Utc::now().to_rfc3339(),
    ))
    .await;
    w.drain_queue().await;
    let c = contacts_with(&w, phone).await.remove(0);
    assert_eq!(sms_dnd(&c), Some("permanent"), "{c}");
    // Who set it is kept on the opt-out event itself (payloads are purged; this is not).
    let evidence: Value = db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT evidence FROM optout_events WHERE phone_number = $1 AND source = 'ghl'",
            &[&phone],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(evidence["userId"], "user-compliance-1", "{evidence}");
    assert_eq!(evidence["webhookId"], "wh-perm", "{evidence}");
}

#[tokio::test]
async fn every_ghl_contact_of_an_opted_out_number_gets_its_dnd_even_one_made_later() {
    let w = world(&[]).await;
    let phone = "+12025550306";
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [seed_contact("gdup1", phone), seed_contact("gdup2", phone)]}),
    )
    .await;
    w.texting_webhook(inbound("dup-1", phone, "stop", "2026-11-20T10:00:00Z"))
        .await;
    w.drain_queue().await;
    let both = contacts_with(&w, phone).await;
    assert_eq!(both.len(), 2);
    for c in &both {
        assert_eq!(sms_dnd(c), Some("active"), "{c}");
        assert!(has_tag(c, "dnc-sms"), "{c}");
    }
    // An Aloware contact of that number, new to GHL: created with the DND and tag.
    let other = "+12025550307";
    w.texting_webhook(inbound("dup-2", other, "stop", "2026-11-20T10:00:00Z"))
        .await;
    w.drain_queue().await;
    assert!(contacts_with(&w, other)
        .await
        .iter()
        .all(|c| sms_dnd(c) == Some("active")));
    let before = contacts_with(&w, other).await.len();
    w.aloware_webhook(
        json!({"event": "Contact-Created", "body": {"id": 99307, "first_name": "New",
        "phone_number": other, "email": "new307@example.com"}}),
    )
    .await;
    w.drain_queue().await;
    let made = contacts_with(&w, other).await;
    assert!(made.len() >= before.max(1), "{made:?}");
    for c in &made {
        assert_eq!(sms_dnd(c), Some("active"), "{c}");
        assert!(has_tag(c, "dnc-sms"), "{c}");
    }
}

#[tokio::test]
async fn a_text_stop_and_a_call_dnc_racing_on_one_contact_keep_both_channels() {
    for round in 0..3 {
        let w = world(&[]).await;
        let phone = format!("+1202555031{round}");
        w.sandbox_post(
            "seed",
            json!({"ghl_contacts": [seed_contact("grace", &phone)],
                "aloware_contacts": [{"id": 7300, "first_name": "Pat", "phone_number": phone}]}),
        )
        .await;
        db_client(&w.stack.database_url)
            .await
            .execute(
                "INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id, phone_number) VALUES ('7300', 'grace', $1)",
                &[&phone],
            )
            .await
            .unwrap();
        // Each write of the contact takes 300 ms, so without one writer at a time the
        // two read-modify-writes overlap and the later one erases the other's channel.
        w.sandbox_post(
            "faults",
            json!({"provider": "ghl", "latency_ms": 300, "method": "PUT",
                "path_contains": "contacts/grace", "seconds": 60}),
        )
        .await;
        // Both arrive together, each on its own queue and consumer.
        futures::join!(
            w.texting_webhook(inbound(
                &format!("race-{round}"),
                &phone,
                "STOP",
                "2026-11-20T10:00:00Z"
            )),
            w.aloware_webhook(json!({"event": "Contact-DNC-Updated", "body": {"id": 7300,
                "first_name": "Pat", "phone_number": phone, "is_dnc": true}})),
        );
        w.drain_queue().await;
        let c = contacts_with(&w, &phone).await.remove(0);
        assert_eq!(
            c.pointer("/dndSettings/Call/status")
                .and_then(Value::as_str),
            Some("active"),
            "{c}"
        );
        assert_eq!(sms_dnd(&c), Some("active"), "round {round}: {c}");
    }
}

#[tokio::test]
async fn texts_other_systems_send_to_an_opted_out_number_are_incidents_alerted_once() {
    let w = world(&[]).await;
    let phone = "+12025550320";
    w.texting_webhook(inbound("inc-1", phone, "STOP", "2026-11-20T10:00:00Z"))
        .await;
    // The texting system's own send, and an Aloware agent's, after the STOP.
    let mut sent = outbound("message.sent", "inc-2", phone, "Promo!");
    sent["data"]["createdAt"] = json!("2026-11-20T10:30:00Z");
    w.texting_webhook(sent).await;
    w.aloware_webhook(
        json!({"event": "OutboundSMS-Sent", "body": {"id": 88020, "type": 2,
        "direction": 2, "lead_number": phone, "body": "Following up",
        "created_at": "2026-11-20 11:00:00"}}),
    )
    .await;
    w.drain_queue().await;
    let (status, listed) = admin_get(&w, "incidents=true").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["count"], 2, "{listed}");
    assert!(
        !listed.to_string().contains("2025550320"),
        "masked: {listed}"
    );
    let sources: Vec<&str> = listed["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"texting") && sources.contains(&"aloware"),
        "{sources:?}"
    );

    let receiver = format!("{}/alerts", w.sandbox);
    let owned: Vec<(&str, &str)> = w
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([
            ("ALERT_WEBHOOK_URL", receiver.as_str()),
            ("DF_ADMIN_SECRET", "x"),
        ])
        .collect();
    let settings = consumer_settings(
        &w.stack.database_url,
        &w.stack.queue_url,
        &w.sandbox,
        "merge",
        &owned,
    );
    let alerts = df_shared::ops::alerts::Alerts::from_settings(&settings)
        .await
        .unwrap();
    let first = alerts.run().await.unwrap();
    let key = first
        .sent
        .iter()
        .find(|k| k.starts_with("texted_opted_out:"))
        .cloned();
    assert!(key.is_some(), "{first:?}");
    let second = alerts.run().await.unwrap();
    assert!(
        second.suppressed.contains(&key.unwrap()),
        "once an hour: {second:?}"
    );
    let received = w.state().await["alerts"].clone();
    let ours = received
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["alert"]
                .as_str()
                .is_some_and(|k| k.starts_with("texted_opted_out:"))
        })
        .count();
    assert_eq!(ours, 1, "{received}");
    assert!(
        !received.to_string().contains("2025550320"),
        "no number in the alert: {received}"
    );
}

#[tokio::test]
async fn the_application_role_cannot_rewrite_the_audit_or_the_registry() {
    let w = world(&[]).await;
    w.texting_webhook(inbound("role-1", PARTY, "STOP", "2026-11-20T10:00:00Z"))
        .await;
    let client = db_client(&w.stack.database_url).await;
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        who, "df_app",
        "the functions connect as the application role"
    );
    for sql in [
        "UPDATE optout_events SET action = 'opt_in'",
        "DELETE FROM optout_events",
        "TRUNCATE optout_events",
        "ALTER TABLE optout_events DISABLE TRIGGER USER",
        "ALTER TABLE optout_events DISABLE TRIGGER optout_events_no_update_or_delete",
        "DROP TABLE optout_events CASCADE",
        "DROP TRIGGER optout_events_apply ON optout_events",
        "UPDATE optout_registry SET status = 'opted_in'",
        "INSERT INTO optout_registry (phone_number, status, source, last_event_at) VALUES ('+12025550399', 'opted_in', 'admin', now())",
        "DELETE FROM optout_registry",
        "DELETE FROM texting_sends",
    ] {
        let err = client.execute(sql, &[]).await.unwrap_err();
        let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(
            message.contains("permission denied") || message.contains("must be owner"),
            "{sql}: {err}"
        );
    }
    assert_eq!(registry(&w, PARTY).await.as_deref(), Some("opted_out"));
    assert_eq!(audit(&w, PARTY).await.len(), 1);
}

#[tokio::test]
async fn an_ambiguous_message_waits_for_an_operator_and_each_resolution_is_on_record() {
    let w = world(&[]).await;
    // Two messages that are not clear requests, from numbers that are opted in.
    let (b, c) = ("+12025550331", "+12025550332");
    w.texting_webhook(inbound(
        "rev-1",
        b,
        "how do I cancel?",
        "2026-11-20T10:00:00Z",
    ))
    .await;
    w.texting_webhook(inbound(
        "rev-2",
        c,
        "Can I unsubscribe later?",
        "2026-11-20T10:00:00Z",
    ))
    .await;
    w.drain_queue().await;
    let (status, open) = admin_get(&w, "review=true").await;
    assert_eq!(status, 200, "{open}");
    let reviews = open["reviews"].as_array().unwrap().clone();
    assert!(reviews.len() >= 2, "{open}");
    assert!(!open.to_string().contains("how do I"), "masked: {open}");
    assert_eq!(
        registry(&w, b).await.as_deref(),
        None,
        "a review changes nothing by itself"
    );
    let of = |phone: &str| -> String {
        let masked = format!("***{}", &phone[phone.len() - 4..]);
        reviews.iter().find(|r| r["phone"] == masked).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (status, refused) =
        admin_resolve(&w, &of(b), json!({"resolution": "maybe", "reason": "x"})).await;
    assert_eq!(status, 400, "{refused}");
    let (status, done) = admin_resolve(
        &w,
        &of(b),
        json!({"resolution": "opt_out",
        "reason": "reads as stop texting me", "resolvedBy": "ops@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(registry(&w, b).await.as_deref(), Some("opted_out"));
    let (status, again) =
        admin_resolve(&w, &of(b), json!({"resolution": "dismiss", "reason": "x"})).await;
    assert_eq!(status, 409, "{again}");
    let (status, dismissed) = admin_resolve(
        &w,
        &of(c),
        json!({"resolution": "dismiss", "reason": "a wrong number, not a revocation"}),
    )
    .await;
    assert_eq!(status, 200, "{dismissed}");
    assert_eq!(registry(&w, c).await.as_deref(), None);
    let (_, left) = admin_get(&w, "review=true").await;
    let left_phones: Vec<&str> = left["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["phone"].as_str().unwrap())
        .collect();
    assert!(
        !left_phones.contains(&"***0331") && !left_phones.contains(&"***0332"),
        "{left}"
    );
    let (status, unknown) = admin_resolve(
        &w,
        &uuid::Uuid::new_v4().to_string(),
        json!({"resolution": "dismiss", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 404, "{unknown}");
    // The opt-out reaches GHL through the relay.
    w.drain_queue().await;
    let trail = admin_get(&w, "phone=%2B12025550331").await.1;
    let actions: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["review", "opt_out"], "{trail}");
    assert_eq!(
        trail["events"][0]["resolution"]["resolution"], "opt_out",
        "{trail}"
    );
}

#[tokio::test]
async fn a_confirmation_held_up_past_its_window_is_not_sent() {
    let w = world(&[("TEXTING_STOP_CONFIRMATION_WINDOW_SECONDS", "2")]).await;
    let phone = "+12025550340";
    w.texting_webhook(inbound("win-1", phone, "STOP", "2026-11-20T10:00:00Z"))
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    w.drain_queue().await;
    assert!(
        texts_sent(&w).await.is_empty(),
        "{:?}",
        texts_sent(&w).await
    );
    assert_eq!(registry(&w, phone).await.as_deref(), Some("opted_out"));
    let decisions: Vec<Value> = db_client(&w.stack.database_url)
        .await
        .query("SELECT decisions FROM sync_log", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        decisions.iter().any(|d| d["reply"]
            .as_str()
            .is_some_and(|r| r.contains("past the 2s"))),
        "{decisions:?}"
    );
}

#[tokio::test]
async fn reconciliation_puts_back_an_sms_dnd_someone_removed_in_ghl() {
    let w = world(&[]).await;
    let phone = "+12025550350";
    let aloware = json!({"id": 7350, "first_name": "Pat", "phone_number": phone});
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [seed_contact("grec", phone)], "aloware_contacts": [aloware]}),
    )
    .await;
    db_client(&w.stack.database_url)
        .await
        .execute(
            "INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id, phone_number) VALUES ('7350', 'grec', $1)",
            &[&phone],
        )
        .await
        .unwrap();
    w.texting_webhook(inbound("rec-1", phone, "STOP", "2026-11-20T10:00:00Z"))
        .await;
    w.drain_queue().await;
    assert_eq!(sms_dnd(&contacts_with(&w, phone).await[0]), Some("active"));
    // Someone clears it in GHL, and GHL's webhook never reaches us.
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [seed_contact("grec", phone)]}),
    )
    .await;
    assert_eq!(sms_dnd(&contacts_with(&w, phone).await[0]), None);
    let owned: Vec<(&str, &str)> = w
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let settings = consumer_settings(
        &w.stack.database_url,
        &w.stack.queue_url,
        &w.sandbox,
        "merge",
        &owned,
    );
    let reconciler = df_shared::sync::reconcile::Reconciler::from_settings(&settings).unwrap();
    let (_, status, totals) = reconciler
        .run(tokio::time::Instant::now() + std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(status, "completed", "{totals:?}");
    let c = contacts_with(&w, phone).await.remove(0);
    assert_eq!(sms_dnd(&c), Some("active"), "repaired: {c}");
    assert!(has_tag(&c, "dnc-sms"), "{c}");
}
