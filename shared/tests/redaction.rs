//! No secret and no personal data in logs or stored error messages (SPEC §4.7): an
//! end-to-end run with failures of every kind — wrong credentials, provider errors,
//! provider transport errors whose URL carries Aloware's token and a phone — logged at
//! DEBUG as JSON (Lambda's format), then the captured log and every error column are
//! scanned for the secrets, tokens, phones, emails and message bodies the run used.
mod common;

use std::sync::{Arc, Mutex};

use common::world::*;
use common::*;
use df_sandbox::SandboxConfig;
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

const PHONE: &str = "+12025550144";
const EMAIL: &str = "private.person@example.com";
const SMS_TEXT: &str = "my very private message body";

#[tokio::test]
async fn no_secret_or_personal_data_reaches_logs_or_error_columns() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(capture.clone())
        .json()
        .try_init()
        .expect("this test binary installs the only subscriber");

    let w = World::with_texting(
        SandboxConfig::default(),
        &[
            ("WRITE_ORIGIN_MARKERS", "true"),
            ("TEXTING_STOP_CONFIRMATION", "You are unsubscribed."),
        ],
    )
    .await;
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gpriv", "locationId": "sandbox-location",
        "firstName": "Priv", "phone": PHONE, "email": EMAIL}]}),
    )
    .await;
    // Refused deliveries: wrong password, wrong workflow secret.
    let wrong = post(
        "/api/webhooks/aloware",
        &[("authorization", "Basic d3Jvbmc6d3Jvbmc=")],
        json!({"event": "Contact-Updated", "body": {"id": 1, "phone_number": PHONE}}).to_string(),
    );
    assert_eq!(aloware_status(&w, wrong).await, 401);
    // Accepted ones, carrying the phone, the email and a message body.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 500, "count": 2}),
    )
    .await;
    w.aloware_webhook(json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": 5551, "type": 1,
        "direction": 2, "disposition_status2": 4, "call_disposition": "No Answer", "lead_number": PHONE,
        "contact": {"id": 88, "phone_number": PHONE, "email": EMAIL, "first_name": "Priv"}}}))
        .await;
    w.aloware_webhook(
        json!({"event": "Contact-Updated", "body": {"id": 88, "first_name": "Priv",
        "phone_number": PHONE, "email": EMAIL}}),
    )
    .await;
    w.ghl_workflow_webhook(
        json!({"contact_id": "gpriv", "phone": PHONE, "email": EMAIL,
        "customData": {"event": "ContactUpdate"}}),
    )
    .await;
    // Texts: processed into GHL notes and the opt-out registry (the confirmation's send
    // fails once at the texting system).
    w.texting_webhook(
        json!({"type": "message.received", "data": {"id": "m-priv", "from": PHONE,
        "to": "+12025550142", "body": SMS_TEXT}}),
    )
    .await;
    w.sandbox_post(
        "faults",
        json!({"provider": "texting", "status": 503, "count": 1}),
    )
    .await;
    w.texting_webhook(
        json!({"type": "message.received", "data": {"id": "m-stop", "from": PHONE,
        "to": "+12025550142", "body": "STOP"}}),
    )
    .await;
    w.drain_queue().await;
    let texting_done = w.texting_statuses().await;
    assert!(
        texting_done.iter().all(|s| s.1 == "done"),
        "{texting_done:?}"
    );

    // A consumer whose Aloware is unreachable: the transport error's URL carries the API
    // token and the looked-up phone.
    let broken = consumer_settings(
        &w.stack.database_url,
        &w.stack.queue_url,
        &w.sandbox,
        "merge",
        &[("ALOWARE_BASE_URL", "http://127.0.0.1:1/aloware")],
    );
    let broken = df_shared::app::webhook_consumer(&broken).await.unwrap();
    // A person edits the contact in GHL (not an echo of our writes), then its webhook.
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "gpriv", "locationId": "sandbox-location",
        "firstName": "Private", "phone": PHONE, "email": EMAIL}]}),
    )
    .await;
    w.ghl_workflow_webhook(
        json!({"contact_id": "gpriv", "customData": {"event": "ContactUpdate", "n": 2}}),
    )
    .await;
    let ids: Vec<uuid::Uuid> = db_client(&w.stack.database_url)
        .await
        .query(
            "SELECT id FROM webhook_events WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 1);
    let mut batch = aws_lambda_events::sqs::SqsEvent::default();
    let mut record = aws_lambda_events::sqs::SqsMessage::default();
    record.message_id = Some("m-broken".into());
    record.body = Some(json!({"event_id": ids[0], "kind": "webhook"}).to_string());
    batch.records = vec![record];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    broken.handle(batch, deadline).await;

    let stored_errors: Vec<String> = db_client(&w.stack.database_url)
        .await
        .query(
            "SELECT coalesce(error_message, '') || ' ' || coalesce(skip_reason, '') FROM webhook_events
             UNION ALL SELECT coalesce(error_message, '') || ' ' || coalesce(decisions::text, '') FROM sync_log
             UNION ALL SELECT coalesce(error_message, '') || ' ' || coalesce(skip_reason, '') FROM texting_webhook_events
             UNION ALL SELECT coalesce(error_message, '') FROM texting_sends",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        stored_errors.iter().any(|e| e.contains("request failed")),
        "the transport failure was recorded: {stored_errors:?}"
    );
    assert!(
        stored_errors.iter().any(|e| e.contains("HTTP 503")),
        "the texting system's refusal was recorded: {stored_errors:?}"
    );
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("event processed"), "the run was logged");
    let basic = basic_auth();
    let needles = [
        ALOWARE_PASS,
        WORKFLOW_SECRET,
        TEXTING_SECRET,
        basic.trim_start_matches("Basic "),
        "sandbox-ghl-token",
        "sandbox-aloware-token",
        "sandbox-texting-key",
        PHONE,
        "2025550144",
        EMAIL,
        "private.person",
        SMS_TEXT,
    ];
    for needle in needles {
        assert!(!log.contains(needle), "{needle:?} in the logs");
        for e in &stored_errors {
            assert!(!e.contains(needle), "{needle:?} in a stored error: {e}");
        }
    }
}

async fn aloware_status(w: &World, req: lambda_http::Request) -> u16 {
    df_shared::ingest::webhook_aloware::handle(&w.stack.ingest, &w.aloware, req)
        .await
        .status()
        .as_u16()
}
