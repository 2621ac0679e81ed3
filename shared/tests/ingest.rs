//! The ingest contract (SPEC §4) end to end in-process: handlers driven by API Gateway
//! v2 fixtures and built requests, against a real Postgres and the SQS emulator.
mod common;

use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::Utc;
use common::*;
use df_shared::auth::GhlKeys;
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_aloware::{self as aloware, AlowareWebhookAuth};
use df_shared::ingest::webhook_ghl::{self as ghl, GhlWebhookAuth};
use df_shared::ingest::webhook_texting::{self as texting, TextingWebhookAuth};
use df_shared::ingest::Ingest;
use df_shared::lambda::http::MAX_BODY_BYTES;
use df_shared::ops::health::{self, Health};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

struct Handlers {
    stack: Stack,
    aloware: AlowareWebhookAuth,
    ghl: GhlWebhookAuth,
    texting: TextingWebhookAuth,
}

impl Handlers {
    async fn new() -> Handlers {
        Self::on(Stack::new().await)
    }

    fn on(stack: Stack) -> Handlers {
        Handlers {
            aloware: AlowareWebhookAuth::from_settings(&stack.settings).unwrap(),
            ghl: GhlWebhookAuth::from_settings(&stack.settings).unwrap(),
            texting: TextingWebhookAuth::from_settings(&stack.settings).unwrap(),
            stack,
        }
    }

    /// Route by path, as API Gateway does; texting goes to its own inbox.
    async fn call(&self, req: Request) -> Response<Body> {
        let path = req.uri().path().to_string();
        let ingest = &self.stack.ingest;
        match path.as_str() {
            "/api/webhooks/aloware" => aloware::handle(ingest, &self.aloware, req).await,
            "/api/webhooks/ghl" => ghl::handle(ingest, &self.ghl, req).await,
            "/api/webhooks/texting" => {
                let texting_ingest = Ingest {
                    kind: EventKind::Texting,
                    ..ingest.clone()
                };
                texting::handle(&texting_ingest, &self.texting, req).await
            }
            other => panic!("no route {other}"),
        }
    }

    async fn status_and_json(&self, req: Request) -> (u16, Value) {
        json_of(self.call(req).await).await
    }

    async fn rows(&self) -> i64 {
        self.stack.count("SELECT (SELECT count(*) FROM webhook_events) + (SELECT count(*) FROM texting_webhook_events)").await
    }
}

#[tokio::test]
async fn fixtures_get_the_contracted_answers() {
    let h = Handlers::new().await;
    let cases: &[(&str, u16)] = &[
        ("aloware-call-disposition.json", 200),
        ("aloware-test-payload.json", 200),
        ("aloware-wrong-password.json", 401),
        ("aloware-malformed-json.json", 400),
        // Authenticated JSON that does not classify is kept for an operator.
        ("aloware-not-a-webhook.json", 200),
        ("ghl-workflow-tag.json", 200),
        ("ghl-unsigned.json", 401),
        ("ghl-forged-signature.json", 401),
        ("texting-message-received.json", 200),
        ("texting-optout-base64.json", 200),
        ("texting-wrong-secret.json", 401),
    ];
    for (file, want) in cases {
        let (status, body) = h.status_and_json(fixture(file)).await;
        assert_eq!(status, *want, "{file}: {body}");
        if *want != 200 {
            assert!(body["error"].is_string(), "{file}: error body {body}");
        }
    }
    // Stored: the call, the unclassifiable body (held), the workflow webhook, two
    // texting events. Not the ping.
    let client = db_client(&h.stack.database_url).await;
    let rows = client
        .query(
            "SELECT source, entity_type, entity_id, status FROM webhook_events ORDER BY source, entity_type",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, Option<String>, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "aloware".into(),
                "call".into(),
                Some("54363660".into()),
                "pending".into()
            ),
            (
                "aloware".into(),
                "unknown".into(),
                None,
                "quarantined".into()
            ),
            (
                "ghl".into(),
                "tag".into(),
                Some("nmFmQEsNgz6AVpgLVUJ0".into()),
                "pending".into()
            ),
        ]
    );
    let texting = client
        .query("SELECT event_type, entity_type, entity_id, from_number, status FROM texting_webhook_events ORDER BY event_type", &[])
        .await
        .unwrap();
    let got: Vec<(String, String, String, Option<String>)> = texting
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        (
            "message.received".into(),
            "sms".into(),
            "msg-1001".into(),
            Some("+12025550177".into())
        )
    );
    // The STOP's reply and GHL mirror: a job of its own, stored with it.
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str(), &got[1].3),
        ("optout.job", "optout", &None)
    );
    assert_eq!(
        got[2],
        (
            "optout.stop".into(),
            "optout".into(),
            "msg-1002".into(),
            Some("+12025550177".into())
        )
    );
    let messages = drain(&h.stack.queue_url).await;
    assert_eq!(messages.len(), 5, "one queue message per stored row");
    for m in &messages {
        let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert!(
            body["event_id"].is_string() && body["kind"].is_string(),
            "{body}"
        );
        let group = m
            .attributes()
            .unwrap()
            .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .unwrap();
        assert_eq!(group.len(), 32, "hashed person key");
    }
}

#[tokio::test]
async fn fifty_concurrent_copies_store_one_row_and_one_message() {
    let h = Handlers::new().await;
    let requests: Vec<_> = (0..50)
        .map(|_| fixture("aloware-call-disposition.json"))
        .collect();
    let answers =
        futures::future::join_all(requests.into_iter().map(|r| h.status_and_json(r))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|(_, b)| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "every copy names the same row");
    let fresh = answers
        .iter()
        .filter(|(_, b)| b["status"] == "pending")
        .count();
    let duplicates = answers
        .iter()
        .filter(|(_, b)| b["duplicate"] == true)
        .count();
    assert_eq!((fresh, duplicates), (1, 49));
    assert_eq!(h.rows().await, 1);
    assert_eq!(drain(&h.stack.queue_url).await.len(), 1);
}

#[tokio::test]
async fn call_disposed_repeating_the_disposition_is_a_duplicate() {
    let h = Handlers::new().await;
    let send = |event: &str, disposition: &str| {
        let body = json!({"event": event, "body": {"id": 940868616, "type": 1, "disposition_status2": 4,
            "call_disposition": disposition, "contact_id": 155091981, "updated_at": Utc::now().to_rfc3339()}});
        post(
            "/api/webhooks/aloware",
            &[("authorization", &basic_auth())],
            body.to_string(),
        )
    };
    let (_, first) = h
        .status_and_json(send("OutboundPhoneCall-DispositionCompleted", "No Answer"))
        .await;
    let (_, repeat) = h.status_and_json(send("Call-Disposed", "No Answer")).await;
    let (_, changed) = h.status_and_json(send("Call-Disposed", "Interested")).await;
    assert_eq!(repeat, json!({"duplicate": true, "id": first["id"]}));
    assert_eq!(changed["status"], "pending");
    assert_eq!(h.rows().await, 2);
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused_and_not_stored() {
    let h = Handlers::new().await;
    let big = format!(
        "{{\"event\":\"x\",\"body\":{{\"pad\":\"{}\"}}}}",
        "a".repeat(MAX_BODY_BYTES)
    );
    let auth = basic_auth();
    let routes: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "/api/webhooks/aloware",
            vec![("authorization", auth.as_str())],
        ),
        (
            "/api/webhooks/ghl",
            vec![("x-df-workflow-secret", WORKFLOW_SECRET)],
        ),
        (
            "/api/webhooks/texting",
            vec![("x-texting-secret", TEXTING_SECRET)],
        ),
    ];
    for (path, headers) in &routes {
        let (status, body) = h.status_and_json(post(path, headers, big.clone())).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (413, Some("payload_too_large")),
            "{path}"
        );
        for bad in ["{", "\u{0}"] {
            let (status, body) = h.status_and_json(post(path, headers, bad)).await;
            assert_eq!(status, 400, "{path} with {bad:?}: {body}");
            assert!(body["message"].is_string());
        }
        // JSON holding NUL, and bytes that are not UTF-8: Postgres can hold neither as
        // JSON. Aloware never retries: there they are kept whole, quarantined.
        let nul: &[u8] = b"{\"event\":\"Contact-Updated\",\"body\":{\"first_name\":\"A\\u0000\"}}";
        for bad in [nul, &[0xff, 0xfe, b'{'][..]] {
            let (status, body) = h.status_and_json(post(path, headers, bad.to_vec())).await;
            if *path == "/api/webhooks/aloware" {
                assert_eq!(
                    (status, body["status"].as_str()),
                    (200, Some("quarantined")),
                    "{body}"
                );
            } else {
                assert_eq!(status, 400, "{path}: {body}");
            }
        }
        // JSON that is not a webhook: refused, except from Aloware (authenticated,
        // never retried), where it is stored quarantined.
        for odd in ["[1,2]", "\"text\"", "{\"type\": 5}"] {
            let (status, body) = h.status_and_json(post(path, headers, odd)).await;
            if *path == "/api/webhooks/aloware" {
                assert_eq!(
                    (status, body["status"].as_str()),
                    (200, Some("quarantined")),
                    "{odd}: {body}"
                );
            } else {
                assert_eq!(status, 400, "{path} with {odd:?}: {body}");
            }
        }
    }
    assert_eq!(h.rows().await, 5, "only the five odd Aloware bodies, held");
    assert_eq!(
        h.stack
            .count("SELECT count(*) FROM quarantine_events WHERE quarantined_by = 'ingest'")
            .await,
        5
    );
    // Every byte of the unstorable ones is kept.
    let kept = h
        .stack
        .count("SELECT count(*) FROM webhook_events WHERE payload_json ? 'bodyBase64'")
        .await;
    assert_eq!(kept, 2);
}

#[tokio::test]
async fn aloware_allowed_events_filter_and_bearer_auth() {
    let db = fresh_database().await;
    let queue = fresh_queue().await;
    let mut stack = Stack::with(&db, &queue).await;
    stack.settings = df_shared::lambda::Settings::from_pairs([
        ("ALOWARE_WEBHOOK_BASIC_USER", ALOWARE_USER),
        ("ALOWARE_WEBHOOK_BASIC_PASS", ALOWARE_PASS),
        ("ALOWARE_WEBHOOK_BEARER_TOKEN", "bearer-token"),
        (
            "ALOWARE_WEBHOOK_ALLOWED_EVENTS",
            "OutboundPhoneCall-*,Recording-Saved",
        ),
        ("GHL_WORKFLOW_WEBHOOK_SECRET", WORKFLOW_SECRET),
        ("TEXTING_WEBHOOK_SECRET", TEXTING_SECRET),
    ]);
    let h = Handlers::on(stack);
    let body = |event: &str| {
        json!({"event": event, "body": {"id": 1, "type": 1, "disposition_status2": 4}}).to_string()
    };
    let bearer = [("authorization", "Bearer bearer-token")];
    let (s, b) = h
        .status_and_json(post(
            "/api/webhooks/aloware",
            &bearer,
            body("OutboundPhoneCall-DispositionCompleted"),
        ))
        .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("pending")));
    let (s, b) = h
        .status_and_json(post(
            "/api/webhooks/aloware",
            &bearer,
            body("InboundPhoneCall-DispositionMissed"),
        ))
        .await;
    assert_eq!((s, b["ignored"].as_bool()), (200, Some(true)));
    let (s, _) = h
        .status_and_json(post(
            "/api/webhooks/aloware",
            &[("authorization", "Bearer nope")],
            body("Recording-Saved"),
        ))
        .await;
    assert_eq!(s, 401);
    let (s, _) = h
        .status_and_json(post("/api/webhooks/aloware", &[], body("Recording-Saved")))
        .await;
    assert_eq!(s, 401);
    assert_eq!(h.rows().await, 1);
}

struct Signer {
    ed: ed25519_dalek::SigningKey,
    rsa: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    keys: GhlKeys,
}

fn signer() -> Signer {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let mut rng = rand::thread_rng();
    let ed = ed25519_dalek::SigningKey::generate(&mut rng);
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let keys = GhlKeys::from_pem(
        &ed.verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
        &private
            .to_public_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    Signer {
        ed,
        rsa: rsa::pkcs1v15::SigningKey::new(private),
        keys,
    }
}

impl Signer {
    fn ed(&self, body: &str) -> String {
        use ed25519_dalek::Signer as _;
        STANDARD.encode(self.ed.sign(body.as_bytes()).to_bytes())
    }
    fn rsa(&self, body: &str) -> String {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        STANDARD.encode(self.rsa.sign(body.as_bytes()).to_vec())
    }
}

#[tokio::test]
async fn ghl_signed_webhooks_verify_replays_are_refused() {
    let s = signer();
    let other = signer();
    let mut h = Handlers::new().await;
    h.ghl = GhlWebhookAuth::new(s.keys.clone(), Some(WORKFLOW_SECRET.into()));
    let now = Utc::now();
    let body = |id: &str, ts: chrono::DateTime<Utc>, webhook: &str| {
        json!({"type": "ContactUpdate", "locationId": "loc1", "id": id, "phone": "+12025550177",
            "timestamp": ts.to_rfc3339(), "webhookId": webhook})
        .to_string()
    };
    let ghl = |headers: &[(&str, &str)], b: &str| post("/api/webhooks/ghl", headers, b.to_string());

    let b1 = body("c1", now, "wh-1");
    let (st, first) = h
        .status_and_json(ghl(&[("x-ghl-signature", &s.ed(&b1))], &b1))
        .await;
    assert_eq!(
        (st, first["status"].as_str()),
        (200, Some("pending")),
        "{first}"
    );
    let (st, again) = h
        .status_and_json(ghl(&[("x-ghl-signature", &s.ed(&b1))], &b1))
        .await;
    assert_eq!(
        (st, again),
        (200, json!({"duplicate": true, "id": first["id"]})),
        "repeated webhookId"
    );

    let b2 = body("c2", now, "wh-2");
    let (st, _) = h
        .status_and_json(ghl(&[("x-wh-signature", &s.rsa(&b2))], &b2))
        .await;
    assert_eq!(st, 200, "legacy RSA path");

    let b3 = body("c3", now, "wh-3");
    let tampered = b3.replace("c3", "c4");
    let refusals: Vec<(&str, Request)> = vec![
        (
            "tampered body",
            ghl(&[("x-ghl-signature", &s.ed(&b3))], &tampered),
        ),
        (
            "wrong ed25519 key",
            ghl(&[("x-ghl-signature", &other.ed(&b3))], &b3),
        ),
        (
            "wrong rsa key",
            ghl(&[("x-wh-signature", &other.rsa(&b3))], &b3),
        ),
        (
            "bad ed25519 with good rsa",
            ghl(
                &[
                    ("x-ghl-signature", &other.ed(&b3)),
                    ("x-wh-signature", &s.rsa(&b3)),
                ],
                &b3,
            ),
        ),
        ("unsigned", ghl(&[], &b3)),
        (
            "wrong workflow secret",
            ghl(&[("x-df-workflow-secret", "nope")], &b3),
        ),
    ];
    for (what, req) in refusals {
        let (st, b) = h.status_and_json(req).await;
        assert_eq!(st, 401, "{what}: {b}");
    }
    // GHL retries a 429 about every 10 minutes with the same signed body: a body
    // signed 15 minutes ago is one of those retries and is accepted; 3 hours is a replay.
    let retried = body("c5", now - chrono::Duration::minutes(15), "wh-5");
    let (st, b) = h
        .status_and_json(ghl(&[("x-ghl-signature", &s.ed(&retried))], &retried))
        .await;
    assert_eq!((st, b["status"].as_str()), (200, Some("pending")), "{b}");
    let stale = body("c6", now - chrono::Duration::hours(3), "wh-6");
    let (st, b) = h
        .status_and_json(ghl(&[("x-ghl-signature", &s.ed(&stale))], &stale))
        .await;
    assert_eq!(
        (st, b["message"].as_str().map(|m| m.contains("stale"))),
        (401, Some(true))
    );
    assert_eq!(h.rows().await, 3);
    // A timestamp we cannot read is no reason to refuse a good signature (GHL never
    // retries a 401): accepted, and its webhookId makes a replay a duplicate.
    for ts in [
        json!("1738075000000"),
        json!("2025-01-28T14:35:00+0000"),
        json!({"at": 1}),
    ] {
        let odd = json!({"type": "ContactUpdate", "locationId": "loc1", "id": "c7",
            "phone": "+12025550177", "timestamp": ts, "webhookId": format!("wh-7-{ts}")})
        .to_string();
        let (st, b) = h
            .status_and_json(ghl(&[("x-ghl-signature", &s.ed(&odd))], &odd))
            .await;
        assert_eq!(
            (st, b["status"].as_str()),
            (200, Some("pending")),
            "{ts}: {b}"
        );
        let (st, b) = h
            .status_and_json(ghl(&[("x-ghl-signature", &s.ed(&odd))], &odd))
            .await;
        assert_eq!(
            (st, b["duplicate"].as_bool()),
            (200, Some(true)),
            "{ts}: {b}"
        );
    }
    // Neither webhookId nor timestamp: the signed bytes are the key, for ever — a
    // replay after a newer body is still a duplicate, not a change.
    let bare = |email: &str| {
        json!({"type": "ContactUpdate", "locationId": "loc1", "id": "c8", "email": email})
            .to_string()
    };
    let (a, b_) = (bare("a@example.com"), bare("b@example.com"));
    for (body, duplicate) in [(&a, false), (&b_, false), (&a, true)] {
        let (st, answer) = h
            .status_and_json(ghl(&[("x-ghl-signature", &s.ed(body))], body))
            .await;
        assert_eq!(st, 200, "{answer}");
        assert_eq!(
            answer["duplicate"].as_bool().unwrap_or(false),
            duplicate,
            "{answer}"
        );
    }
    assert_eq!(h.rows().await, 3 + 3 + 2);
}

#[tokio::test]
async fn database_down_answers_429_to_ghl_and_503_to_the_others() {
    let h = Handlers::on(Stack::with(DEAD_DATABASE_URL, &fresh_queue().await).await);
    let cases = [
        ("aloware-call-disposition.json", 503),
        ("ghl-workflow-tag.json", 429),
        ("texting-message-received.json", 503),
    ];
    for (file, want) in cases {
        let (status, body) = h.status_and_json(fixture(file)).await;
        assert_eq!(status, want, "{file}: {body}");
        assert_eq!(body["error"], "store_unavailable");
    }
    assert!(
        drain(&h.stack.queue_url).await.is_empty(),
        "nothing is enqueued that was not stored"
    );
}

#[tokio::test]
async fn queue_down_still_acknowledges_and_leaves_the_row_pending() {
    let db = fresh_database().await;
    let h = Handlers::on(Stack::with(&db, DEAD_QUEUE_URL).await);
    for file in [
        "aloware-call-disposition.json",
        "ghl-workflow-tag.json",
        "texting-message-received.json",
    ] {
        let (status, body) = h.status_and_json(fixture(file)).await;
        assert_eq!(
            (status, body["status"].as_str(), body["queued"].as_bool()),
            (200, Some("pending"), Some(false)),
            "{file}"
        );
    }
    let pending = h
        .stack
        .count("SELECT (SELECT count(*) FROM webhook_events WHERE status = 'pending') + (SELECT count(*) FROM texting_webhook_events WHERE status = 'pending')")
        .await;
    assert_eq!(pending, 3);
}

#[tokio::test]
async fn health_reports_database_and_queues() {
    let db = fresh_database().await;
    let queue = fresh_queue().await;
    let check = |db: &str, queue: &str| {
        let settings = settings(db, queue);
        async move {
            let health = Health {
                pool: settings.pool().unwrap(),
                queues: vec![(
                    "webhook-events",
                    settings.queue("WEBHOOK_EVENTS_QUEUE_URL").await.unwrap(),
                )],
            };
            json_of(health::handle(&health, fixture("health.json")).await).await
        }
    };
    let (s, b) = check(&db, &queue).await;
    assert_eq!(
        (s, b["status"].as_str(), b["database"].as_str()),
        (200, Some("ok"), Some("ok")),
        "{b}"
    );
    let (s, b) = check(&db, DEAD_QUEUE_URL).await;
    assert_eq!(
        (
            s,
            b["status"].as_str(),
            b["queues"]["webhook-events"].as_str()
        ),
        (200, Some("degraded"), Some("unreachable"))
    );
    let (s, b) = check(DEAD_DATABASE_URL, &queue).await;
    assert_eq!(
        (s, b["status"].as_str(), b["database"].as_str()),
        (503, Some("down"), Some("unreachable"))
    );
}

#[tokio::test]
async fn settings_come_from_the_secret_and_the_environment_wins() {
    let client =
        aws_sdk_secretsmanager::Client::new(&df_shared::adapters::queue::aws_config().await);
    let name = format!("df-config-{}", uuid::Uuid::new_v4().simple());
    client
        .create_secret()
        .name(&name)
        .secret_string(json!({"TEXTING_WEBHOOK_SECRET": "from-secret", "DATABASE_URL": "postgres://secret/db", "JOBS_BATCH_SIZE": 50}).to_string())
        .send()
        .await
        .expect("create secret in the emulator");
    let env = [
        ("CONFIG_SECRET_ID".to_string(), name.clone()),
        ("DATABASE_URL".to_string(), "postgres://env/db".to_string()),
    ];
    let settings = df_shared::lambda::Settings::load_with(env).await.unwrap();
    assert_eq!(settings.get("TEXTING_WEBHOOK_SECRET"), Some("from-secret"));
    assert_eq!(settings.get("JOBS_BATCH_SIZE"), Some("50"));
    assert_eq!(
        settings.get("DATABASE_URL"),
        Some("postgres://env/db"),
        "environment wins"
    );
    let missing = df_shared::lambda::Settings::load_with([(
        "CONFIG_SECRET_ID".to_string(),
        "no-such-secret".to_string(),
    )])
    .await;
    assert!(missing.unwrap_err().to_string().contains("no-such-secret"));
}

#[tokio::test]
async fn migrations_are_idempotent_and_serialised() {
    let db = fresh_owned_database().await;
    let runs =
        futures::future::join_all((0..4).map(|_| df_shared::adapters::migrations::run_url(&db)))
            .await;
    for run in runs {
        assert_eq!(
            run.unwrap(),
            Vec::<String>::new(),
            "already applied by fresh_database"
        );
    }
    let admin = admin_url();
    let base = admin.rsplit_once('/').unwrap().0;
    let blank = format!("{base}/df_test_{}", uuid::Uuid::new_v4().simple());
    df_shared::adapters::migrations::ensure_database(&blank)
        .await
        .unwrap();
    let runs =
        futures::future::join_all((0..4).map(|_| df_shared::adapters::migrations::run_url(&blank)))
            .await;
    let applied: usize = runs.into_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(
        applied,
        df_shared::adapters::migrations::MIGRATIONS.len(),
        "each migration applied exactly once"
    );
}

fn workflow(body: &Value) -> Request {
    post(
        "/api/webhooks/ghl",
        &[("x-df-workflow-secret", WORKFLOW_SECRET)],
        body.to_string(),
    )
}

#[tokio::test]
async fn a_store_that_hangs_is_answered_429_to_ghl_and_503_to_aloware_within_the_budget() {
    let h = Handlers::new().await;
    // A real hang: another session holds a lock the INSERT must wait for.
    let blocker = db_client(&h.stack.database_url).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let body = json!({"contact_id": "hang1", "phone": "+12025550101", "customData": {"event": "ContactUpdate"}});
    let started = std::time::Instant::now();
    let (status, answer) = h.status_and_json(workflow(&body)).await;
    let waited = started.elapsed();
    assert_eq!(
        (status, answer["error"].as_str()),
        (429, Some("store_unavailable")),
        "{answer}"
    );
    assert!(
        waited < df_shared::pipeline::deployment::INGEST_TIMEOUT,
        "answered inside the function's timeout ({waited:?})"
    );
    let (status, _) = h
        .status_and_json(fixture("aloware-call-disposition.json"))
        .await;
    assert_eq!(status, 503);
    blocker.batch_execute("ROLLBACK").await.unwrap();
    // GHL retries the 429 with the same body: now it is stored.
    let (status, answer) = h.status_and_json(workflow(&body)).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("pending")),
        "{answer}"
    );
    assert_eq!(h.rows().await, 1);
}

#[tokio::test]
async fn body_hash_dedupe_compares_with_the_latest_delivery_only() {
    let h = Handlers::new().await;
    let state = |tags: &str| json!({"contact_id": "abac", "phone": "+12025550102", "tags": tags, "customData": {"event": "ContactTagUpdate"}});
    let (a, b) = (state("hot lead"), state("cold"));
    let (_, first) = h.status_and_json(workflow(&a)).await;
    let (_, repeat) = h.status_and_json(workflow(&a)).await;
    assert_eq!(
        repeat,
        json!({"duplicate": true, "id": first["id"]}),
        "A → A is one delivery"
    );
    let (_, second) = h.status_and_json(workflow(&b)).await;
    let (_, third) = h.status_and_json(workflow(&a)).await;
    assert_eq!(
        (second["status"].as_str(), third["status"].as_str()),
        (Some("pending"), Some("pending")),
        "A → B → A is three changes: {second} {third}"
    );
    assert_ne!(first["id"], third["id"]);
    assert_eq!(h.rows().await, 3);
    assert_eq!(drain(&h.stack.queue_url).await.len(), 3);
}

#[tokio::test]
async fn a_duplicate_delivery_of_an_unqueued_row_re_enqueues_it() {
    let db = fresh_database().await;
    let down = Handlers::on(Stack::with(&db, DEAD_QUEUE_URL).await);
    let (_, first) = down.status_and_json(fixture("ghl-workflow-tag.json")).await;
    assert_eq!(first["queued"], false);
    let queue = fresh_queue().await;
    let up = Handlers::on(Stack::with(&db, &queue).await);
    let (_, again) = up.status_and_json(fixture("ghl-workflow-tag.json")).await;
    assert_eq!(again, json!({"duplicate": true, "id": first["id"]}));
    let (_, thrice) = up.status_and_json(fixture("ghl-workflow-tag.json")).await;
    assert_eq!(thrice["duplicate"], true);
    let messages = drain(&queue).await;
    assert_eq!(messages.len(), 1, "re-enqueued once, not per duplicate");
    let body: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(body["event_id"], first["id"]);
}

#[tokio::test]
async fn queue_down_at_ingest_then_the_relay_sends_each_row_exactly_once_in_order() {
    use df_shared::pipeline::relay::Relay;
    let db = fresh_database().await;
    let down = Handlers::on(Stack::with(&db, DEAD_QUEUE_URL).await);
    let call = |id: u64, phone: &str| {
        let body = json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": id, "type": 1,
            "disposition_status2": 4, "call_disposition": "No Answer", "lead_number": phone}});
        post(
            "/api/webhooks/aloware",
            &[("authorization", &basic_auth())],
            body.to_string(),
        )
    };
    for (id, phone) in [
        (1, "+12025550111"),
        (2, "+12025550112"),
        (3, "+12025550111"),
    ] {
        let (_, b) = down.status_and_json(call(id, phone)).await;
        assert_eq!(b["queued"], false);
    }
    let queue = fresh_queue().await;
    let relay = Relay::from_settings(&settings(&db, &queue), &[EventKind::Webhook])
        .await
        .unwrap();
    let reports = relay.run_once().await;
    assert_eq!(
        (reports[0].enqueued, reports[0].send_failures),
        (3, 0),
        "{reports:?}"
    );
    let again = relay.run_once().await;
    assert_eq!(again[0].enqueued, 0, "a queued row is not sent twice");
    let messages = drain(&queue).await;
    assert_eq!(messages.len(), 3);
    let group = |m: &aws_sdk_sqs::types::Message| {
        m.attributes().unwrap()[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId]
            .clone()
    };
    let ids: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["event_id"].clone())
        .collect();
    let client = db_client(&db).await;
    let order: Vec<Value> = client
        .query(
            "SELECT id::text FROM webhook_events ORDER BY received_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Value::from(r.get::<_, String>(0)))
        .collect();
    // One person's two calls share a group, in the order they were received.
    let person: Vec<&Value> = ids
        .iter()
        .filter(|id| **id == order[0] || **id == order[2])
        .collect();
    assert_eq!(person, [&order[0], &order[2]]);
    let by_id = |id: &Value| group(&messages[ids.iter().position(|x| x == id).unwrap()]);
    assert_eq!(by_id(&order[0]), by_id(&order[2]));
    assert_ne!(by_id(&order[0]), by_id(&order[1]));
}

#[tokio::test]
async fn every_event_about_one_person_shares_a_message_group() {
    let h = Handlers::new().await;
    let aloware = |body: Value| {
        post(
            "/api/webhooks/aloware",
            &[("authorization", &basic_auth())],
            body.to_string(),
        )
    };
    // The captured lifecycle: the disposition names the lead's phone, the summary only
    // the Aloware contact and the call.
    h.status_and_json(aloware(
        json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": 940868616,
        "type": 1, "disposition_status2": 4, "lead_number": "+12025550177", "contact_id": null}}),
    ))
    .await;
    h.status_and_json(aloware(json!({"event": "transcription.call.summarized", "body": {"communication": {"id": 940868616},
        "summary": "s", "transcription": {"id": 1}, "contact": {"id": 155091981}}}))).await;
    // A GHL event for the contact mapped to that phone.
    let client = db_client(&h.stack.database_url).await;
    client
        .execute("INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id, phone_number) VALUES ('155091981', 'g-same', '+12025550177')", &[])
        .await
        .unwrap();
    h.status_and_json(workflow(
        &json!({"contact_id": "g-same", "customData": {"event": "ContactUpdate"}}),
    ))
    .await;
    // And an Aloware contact event by its id alone.
    h.status_and_json(aloware(
        json!({"event": "Contact-Updated", "body": {"id": 155091981, "first_name": "T"}}),
    ))
    .await;
    let keys: Vec<String> = client
        .query(
            "SELECT person_key FROM webhook_events ORDER BY received_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, vec!["+12025550177"; 4], "one person, one key");
    let groups: std::collections::HashSet<String> = drain(&h.stack.queue_url)
        .await
        .iter()
        .map(|m| {
            m.attributes().unwrap()[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId]
                .clone()
        })
        .collect();
    assert_eq!(groups.len(), 1, "one message group: {groups:?}");
}

/// The database hangs — it does not refuse, it swallows packets, as in a failover — for
/// 30 s. Every answer in the meantime is the retry status, inside the budget; a
/// connection whose statement did not come back is discarded, never reused, so within
/// seconds of the recovery ingest answers 2xx again (a reused one would queue every
/// later request behind its lost statement for as long as the kernel keeps it).
#[tokio::test]
async fn a_hung_database_is_answered_within_the_budget_and_ingest_recovers_in_seconds() {
    let db = fresh_database().await;
    let proxy = PgProxy::start(&db).await;
    let h = Handlers::on(Stack::with(&proxy.url, &fresh_queue().await).await);
    let body = |n: u32| {
        json!({"contact_id": format!("hung{n}"), "phone": "+12025550103",
            "customData": {"event": "ContactUpdate"}})
    };
    for n in 0..3 {
        let (status, answer) = h.status_and_json(workflow(&body(n))).await;
        assert_eq!(status, 200, "warm connections: {answer}");
    }
    proxy.hang();
    let hung_at = std::time::Instant::now();
    let mut n = 10;
    while hung_at.elapsed() < std::time::Duration::from_secs(30) {
        let started = std::time::Instant::now();
        let (status, answer) = h.status_and_json(workflow(&body(n))).await;
        assert_eq!(status, 429, "GHL's retry status while hung: {answer}");
        assert!(
            started.elapsed() < df_shared::ingest::INGEST_DEADLINE,
            "answered within the budget ({:?})",
            started.elapsed()
        );
        n += 1;
    }
    proxy.restore();
    let restored = std::time::Instant::now();
    loop {
        let (status, _) = h.status_and_json(workflow(&body(n))).await;
        if status == 200 {
            break;
        }
        assert!(
            restored.elapsed() < std::time::Duration::from_secs(10),
            "ingest still refuses {:?} after the database came back",
            restored.elapsed()
        );
        n += 1;
    }
    println!("2xx again {:?} after the recovery", restored.elapsed());
}

/// A cold start spends part of the first request's time (reading the secret, building
/// clients): the store gets what is left, so a hanging store is still answered with
/// the retry status before the function's timeout (else API Gateway answers 5xx, which
/// GHL never retries).
#[tokio::test]
async fn a_slow_cold_start_and_a_hanging_store_still_answer_inside_the_timeout() {
    let h = Handlers::new().await;
    let blocker = db_client(&h.stack.database_url).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    static CELL: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let build = || async {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        Ok::<_, df_shared::lambda::ConfigError>(())
    };
    let handlers = &h;
    let handle = |_: &'static (), req: Request| async move { handlers.call(req).await };
    let body = json!({"contact_id": "cold1", "phone": "+12025550104", "customData": {"event": "ContactUpdate"}});
    let started = std::time::Instant::now();
    let response = df_shared::lambda::init::respond(
        &CELL,
        lambda_http::http::StatusCode::TOO_MANY_REQUESTS,
        &build,
        &handle,
        workflow(&body),
    )
    .await;
    let took = started.elapsed();
    let (status, answer) = json_of(response).await;
    assert_eq!(status, 429, "{answer}");
    assert!(
        took < df_shared::ingest::INGEST_DEADLINE + std::time::Duration::from_millis(500),
        "answered {took:?} after arrival, cold start included"
    );
    assert!(took < df_shared::pipeline::deployment::INGEST_TIMEOUT);
    blocker.batch_execute("ROLLBACK").await.unwrap();
}
