//! Broadcast analytics end to end (SPEC §13): `webhook-broadcast` against a fresh
//! database and template-shaped queue, `process-broadcast-events` fed by concurrent
//! pollers and the relay, Verity's database as a real Postgres database built from
//! `infra/verity/schema.sql`, and GHL's objects API in the sandbox.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::world::{poll_queue, World, POLLERS};
use common::*;
use df_sandbox::SandboxConfig;
use df_shared::auth::broadcast_signature::sign;
use df_shared::domain::EventKind;
use df_shared::ingest::webhook_broadcast::{self, BroadcastWebhookConfig};
use df_shared::ingest::Ingest;
use df_shared::pipeline::relay::Relay;
use df_shared::pipeline::Consumer;
use df_shared::sync::broadcast::BroadcastRouter;
use serde_json::{json, Value};

const SECRET: &str = "test-verity-secret";

/// A new Verity database with the schema the analytics read.
async fn verity_database() -> String {
    let base = admin_url()
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap();
    let name = format!("verity_test_{}", uuid::Uuid::new_v4().simple());
    db_client(&admin_url())
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{base}/{name}");
    let schema = std::fs::read_to_string(repo_root().join("infra/verity/schema.sql")).unwrap();
    db_client(&url).await.batch_execute(&schema).await.unwrap();
    url
}

struct Broadcasts {
    database_url: String,
    verity_url: String,
    queue_url: String,
    /// The queue's dead-letter queue, when this test made the queue.
    dlq: Option<String>,
    sandbox: String,
    ingest: Ingest,
    config: BroadcastWebhookConfig,
    consumer: Consumer<BroadcastRouter>,
    relay: Relay,
    http: reqwest::Client,
}

impl Broadcasts {
    async fn new(settle_seconds: &str, sandbox: SandboxConfig) -> Broadcasts {
        let sandbox = df_sandbox::spawn(sandbox).await;
        let queues = fresh_queues().await;
        let mut b = Self::on(
            settle_seconds,
            sandbox,
            &fresh_database().await,
            &verity_database().await,
            queues.url,
        )
        .await;
        b.dlq = Some(queues.dlq);
        b
    }

    async fn on(
        settle_seconds: &str,
        sandbox: String,
        database_url: &str,
        verity_url: &str,
        queue_url: String,
    ) -> Broadcasts {
        let ghl = format!("{sandbox}/ghl");
        let settings = df_shared::lambda::Settings::from_pairs([
            ("DATABASE_URL", database_url),
            ("BROADCAST_EVENTS_QUEUE_URL", queue_url.as_str()),
            ("VERITY_DATABASE_URL", verity_url),
            ("VERITY_WEBHOOK_SECRET", SECRET),
            ("BROADCAST_SETTLE_SECONDS", settle_seconds),
            ("GHL_BASE_URL", ghl.as_str()),
            ("GHL_API_KEY", "sandbox-ghl-token"),
            ("GHL_LOCATION_ID", "sandbox-location"),
            ("ALOWARE_API_TOKEN", "unused"),
            ("RETRY_BASE_SECONDS", "1"),
            ("STORE_RETRY_SECONDS", "1"),
            ("DB_POOL_SIZE", "8"),
        ]);
        Broadcasts {
            database_url: database_url.into(),
            verity_url: verity_url.into(),
            queue_url: queue_url.clone(),
            dlq: None,
            ingest: df_shared::ingest::Ingest::from_settings(&settings, EventKind::Broadcast)
                .await
                .unwrap(),
            config: BroadcastWebhookConfig::from_settings(&settings).unwrap(),
            consumer: df_shared::app::broadcast_consumer(&settings).await.unwrap(),
            relay: Relay::from_settings(&settings, &[EventKind::Broadcast])
                .await
                .unwrap(),
            sandbox,
            http: reqwest::Client::new(),
        }
    }

    async fn post_raw(&self, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
        let req = post("/api/webhooks/broadcast", headers, body.to_string());
        json_of(webhook_broadcast::handle(&self.ingest, &self.config, req).await).await
    }

    /// A correctly signed event.
    async fn event(&self, body: Value) -> Value {
        let text = body.to_string();
        let sig = sign(SECRET, text.as_bytes());
        let (status, answer) = self
            .post_raw(&[("x-broadcast-signature", &sig)], &text)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn verity(&self, sql: &str) {
        db_client(&self.verity_url)
            .await
            .batch_execute(sql)
            .await
            .unwrap();
    }

    async fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        db_client(&self.database_url)
            .await
            .query(sql, &[])
            .await
            .unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        self.rows(sql).await[0].get(0)
    }

    async fn unfinished(&self) -> i64 {
        self.count("SELECT count(*) FROM broadcast_webhook_events WHERE status IN ('pending', 'error', 'processing')")
            .await
    }

    /// Lambda's trigger (POLLERS concurrent batches) and the relay, until every event
    /// is finished and the queue is empty.
    async fn drain(&self, limit: Duration) {
        let stop = AtomicBool::new(false);
        let sqs = sqs().await;
        let deadline = Instant::now() + limit;
        let watcher = async {
            let mut idle = 0;
            while Instant::now() < deadline {
                if self.unfinished().await == 0 && depth(&self.queue_url).await == 0 {
                    idle += 1;
                    if idle >= 3 {
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                } else {
                    idle = 0;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            stop.store(true, Ordering::SeqCst);
            panic!("broadcast events still unfinished after {limit:?}");
        };
        let poller = || async {
            while !stop.load(Ordering::SeqCst) {
                if poll_queue(&self.consumer, &sqs, &self.queue_url).await == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let relaying = async {
            while !stop.load(Ordering::SeqCst) {
                self.relay.run_once().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        };
        futures::join!(
            watcher,
            futures::future::join_all((0..POLLERS).map(|_| poller())),
            relaying
        );
        let violations: Value = self.sandbox_get("violations").await;
        assert_eq!(violations, json!([]), "requests GHL would refuse");
        if let Some(dlq) = &self.dlq {
            // Deferrals and blocked records are receives too: none may reach the
            // redrive policy's limit.
            assert_eq!(depth(dlq).await, 0, "messages dead-lettered");
        }
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

    async fn records(&self) -> Vec<Value> {
        self.sandbox_get("state").await["ghl"]["records"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// GHL requests to the objects API, as `METHOD path`.
    async fn object_requests(&self) -> Vec<String> {
        self.sandbox_get("requests")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().unwrap_or_default().contains("/objects/"))
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    }

    async fn fault(&self, body: Value) {
        let r = self
            .http
            .post(format!("{}/_sandbox/faults", self.sandbox))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

/// An SMS broadcast whose figures are computed by hand below, and an e-mail one.
const SMS_FIXTURE: &str = "
INSERT INTO broadcast VALUES ('bc-sms-000001', NULL, 'sms', '2026-11-20T15:00:00Z', 'u1');
INSERT INTO contacts VALUES ('c1', '+12025550101', 'c1@example.com'), ('c2', '+12025550102', NULL),
  ('c3', '+12025550103', NULL), ('c4', '+12025550104', NULL), ('c5', '+12025550105', NULL),
  ('c6', '+12025550106', NULL), ('c7', '+12025550107', NULL);
INSERT INTO broadcast_recipient VALUES
  ('r1', 'bc-sms-000001', 'c1', 'sent'), ('r2', 'bc-sms-000001', 'c2', 'sent'),
  ('r3', 'bc-sms-000001', 'c3', 'sent'), ('r4', 'bc-sms-000001', 'c4', 'failed'),
  ('r5', 'bc-sms-000001', 'c5', 'pending'), ('r6', 'bc-sms-000001', 'c6', 'bounced'),
  ('r7', 'bc-sms-000001', 'c7', 'sent');
INSERT INTO chat VALUES ('h1', 'u1'), ('h2', 'u1'), ('h3', 'u1'), ('h7', 'u1');
INSERT INTO chat_participant VALUES ('p1', 'h1', 'c1'), ('p2', 'h2', 'c2'), ('p3', 'h3', 'c3'), ('p7', 'h7', 'c7');
INSERT INTO chat_message VALUES
  -- c1: replies 2 hours after the broadcast's message: a response.
  ('m1', 'h1', 'p1', 'sent', 'bc-sms-000001', '2026-11-20T15:00:05Z'),
  ('m2', 'h1', 'p1', 'received', NULL, '2026-11-20T17:00:00Z'),
  -- c2: two sends, replies 6 days after the first: a response (counted once).
  ('m3', 'h2', 'p2', 'sent', 'bc-sms-000001', '2026-11-20T15:00:06Z'),
  ('m3b', 'h2', 'p2', 'sent', 'bc-sms-000001', '2026-11-21T15:00:06Z'),
  ('m4', 'h2', 'p2', 'received', NULL, '2026-11-26T15:00:00Z'),
  ('m4b', 'h2', 'p2', 'received', NULL, '2026-11-26T16:00:00Z'),
  -- c3: replies 8 days later: not a response.
  ('m5', 'h3', 'p3', 'sent', 'bc-sms-000001', '2026-11-20T15:00:07Z'),
  ('m6', 'h3', 'p3', 'received', NULL, '2026-11-28T15:00:08Z'),
  -- c7: wrote before the broadcast only: not a response.
  ('m7', 'h7', 'p7', 'received', NULL, '2026-11-19T10:00:00Z'),
  ('m8', 'h7', 'p7', 'sent', 'bc-sms-000001', '2026-11-20T15:00:09Z');
INSERT INTO leads VALUES
  -- c1 booked after the send: counted. c2 booked before it: not. c3 has no appointment.
  ('l1', 'c1', 'appt-1', '2026-11-21T10:00:00Z', '2026-11-01T00:00:00Z'),
  ('l2', 'c2', 'appt-2', '2026-11-19T10:00:00Z', '2026-11-01T00:00:00Z'),
  ('l3', 'c3', NULL, '2026-11-22T10:00:00Z', '2026-11-01T00:00:00Z'),
  -- c4's send failed: its booking does not count.
  ('l4', 'c4', 'appt-4', '2026-11-22T10:00:00Z', '2026-11-01T00:00:00Z');

INSERT INTO broadcast VALUES ('bc-email-0001', 'Spring sale', 'email', '2026-11-10T09:00:00Z', 'u1');
INSERT INTO contacts VALUES ('e1', NULL, 'e1@example.com'), ('e2', NULL, 'e2@example.com'),
  ('e3', NULL, 'e3@example.com'), ('e4', NULL, 'e4@example.com');
INSERT INTO broadcast_recipient VALUES
  ('s1', 'bc-email-0001', 'e1', 'opened'), ('s2', 'bc-email-0001', 'e2', 'clicked'),
  ('s3', 'bc-email-0001', 'e3', 'bounced'), ('s4', 'bc-email-0001', 'e4', 'sent');
INSERT INTO leads VALUES ('l5', 'e1', 'appt-5', NULL, '2026-11-12T00:00:00Z');
";

fn record_of<'a>(records: &'a [Value], broadcast_id: &str) -> &'a Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["properties"]["broadcast_id"] == broadcast_id)
        .collect();
    assert_eq!(found.len(), 1, "one record for {broadcast_id}: {records:?}");
    &found[0]["properties"]
}

#[tokio::test]
async fn signatures_are_checked_and_events_deduplicated() {
    let b = Broadcasts::new("0", SandboxConfig::default()).await;
    let body = json!({"broadcastId": "bc-1", "eventType": "analytics_updated", "timestamp": "2026-11-23T10:00:00Z"}).to_string();
    let sig = sign(SECRET, body.as_bytes());
    // Hex HMAC in either header.
    let (s, first) = b.post_raw(&[("x-broadcast-signature", &sig)], &body).await;
    assert_eq!(
        (s, first["status"].as_str()),
        (200, Some("pending")),
        "{first}"
    );
    let (s, again) = b.post_raw(&[("x-signature", &sig)], &body).await;
    assert_eq!(s, 200);
    assert_eq!(again["duplicate"], true, "same timestamp: the same event");
    assert_eq!(again["id"], first["id"]);
    // Refusals: 401 with a JSON error, nothing stored.
    let other = sign("wrong-secret", body.as_bytes());
    for headers in [
        vec![("x-broadcast-signature", &sig[..63])],
        vec![("x-broadcast-signature", other.as_str())],
        vec![("x-signature", "not-hex")],
        vec![("x-df-broadcast-secret", "nope")],
        vec![],
        // A wrong signature is not rescued by the right secret.
        vec![
            ("x-signature", other.as_str()),
            ("x-df-broadcast-secret", SECRET),
        ],
    ] {
        let (s, answer) = b.post_raw(&headers, &body).await;
        assert_eq!(s, 401, "{headers:?}: {answer}");
        assert_eq!(answer["error"], "unauthorized", "{answer}");
    }
    // The fallback header alone.
    let other_event =
        json!({"broadcastId": "bc-1", "eventType": "broadcast_completed", "timestamp": "t2"})
            .to_string();
    let (s, answer) = b
        .post_raw(&[("x-df-broadcast-secret", SECRET)], &other_event)
        .await;
    assert_eq!(s, 200, "{answer}");
    // Malformed bodies: 400, never stored.
    for bad in [
        "{",
        r#"{"eventType":"analytics_updated"}"#,
        r#"{"broadcastId":"bc-1"}"#,
    ] {
        let (s, answer) = b
            .post_raw(&[("x-signature", &sign(SECRET, bad.as_bytes()))], bad)
            .await;
        assert_eq!(s, 400, "{bad}: {answer}");
    }
    // An unknown event type is kept for an operator, not guessed at.
    let odd = b
        .event(json!({"broadcastId": "bc-2", "eventType": "paused"}))
        .await;
    assert_eq!(odd["status"], "quarantined", "{odd}");
    // Events without a timestamp never collapse into an earlier one (the original's
    // bug): the second is stored, coalesced into the first, which is still waiting.
    let a = b
        .event(json!({"broadcastId": "bc-3", "eventType": "analytics_updated"}))
        .await;
    let c = b
        .event(json!({"broadcastId": "bc-3", "eventType": "analytics_updated"}))
        .await;
    assert_eq!(a["status"], "pending", "{a}");
    assert_eq!(c["status"], "coalesced", "{c}");
    assert_eq!(c["coalescedInto"], a["id"]);
    assert_eq!(
        b.count("SELECT count(*) FROM broadcast_webhook_events")
            .await,
        5
    );
    assert_eq!(
        b.count("SELECT count(*) FROM quarantine_events WHERE event_source = 'broadcast'")
            .await,
        1
    );
}

/// A computation settles the waiting rows it answers, but not a row that answers an
/// event coalesced into it after the computation started: that event's figures would
/// never be computed.
#[tokio::test]
async fn an_event_coalesced_after_a_computation_started_is_still_computed() {
    use df_shared::adapters::broadcast_store::{self, Computed};
    use df_shared::adapters::event_store;
    let b = Broadcasts::new("0", SandboxConfig::default()).await;
    let pool = &b.ingest.pool;
    let id_of = |v: &Value| v["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let event =
        |t: &str| json!({"broadcastId": "bc-9", "eventType": "analytics_updated", "timestamp": t});
    // X is claimed; A arrives while X runs, so A waits on its own.
    let x = id_of(&b.event(event("t1")).await);
    event_store::claim(pool, EventKind::Broadcast, x, Duration::from_secs(60), None)
        .await
        .unwrap()
        .unwrap();
    let a = b.event(event("t2")).await;
    assert_eq!(a["status"], "pending", "{a}");
    // X's computation starts, then another event is coalesced into A.
    let started = broadcast_store::lease(pool, "bc-9", x, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap()
        .now;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = b.event(event("t3")).await;
    assert_eq!(late["status"], "coalesced", "{late}");
    assert_eq!(late["coalescedInto"], a["id"]);
    let settled = broadcast_store::commit(
        pool,
        &Computed {
            broadcast_id: "bc-9",
            started_at: started,
            ghl_record_id: "rec-1",
            figures: &json!({}),
            wrote: true,
            event_id: x,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        settled, 0,
        "A answers an event received after X's computation started"
    );
    let status = event_store::status(pool, EventKind::Broadcast, id_of(&a))
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some("pending"));
    // When A runs, its computation is not skipped as already answered.
    let leased = broadcast_store::lease(pool, "bc-9", id_of(&a), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(leased.answers_up_to > leased.computed_at.unwrap());
}

#[tokio::test]
async fn analytics_match_hand_computed_figures_and_the_record_is_updated_never_duplicated() {
    let b = Broadcasts::new("0", SandboxConfig::default()).await;
    b.verity(SMS_FIXTURE).await;
    b.event(json!({"broadcastId": "bc-sms-000001", "eventType": "broadcast_completed", "timestamp": "t1"})).await;
    b.event(json!({"broadcastId": "bc-email-0001", "eventType": "broadcast_completed", "timestamp": "t1"})).await;
    b.drain(Duration::from_secs(60)).await;
    let records = b.records().await;
    assert_eq!(records.len(), 2);
    // SMS by hand: 7 recipients; delivered = status sent = c1 c2 c3 c7 = 4; failed 1
    // (c4); bounced 1 (c6); pending 1 (c5); sent = delivered + failed = 5. Responses: c1
    // and c2 = 2. Appointments: c1's lead = 1 (c2 booked before the send, c4 failed).
    // delivery 4/5 = 80 %, failure (1+1)/5 = 40 %, response 2/4 = 50 %, conversion 1/2.
    assert_eq!(
        record_of(&records, "bc-sms-000001"),
        &json!({"broadcast_id": "bc-sms-000001", "broadcast_name": "SMS Broadcast bc-sms-0",
            "channel": "SMS", "sent_at": "2026-11-20T15:00:00.000Z", "recipients": 7, "sent": 5,
            "delivered": 4, "pending": 1, "failed": 1, "responses": 2, "appointments_set": 1,
            "delivery_rate": 0.8, "response_rate": 0.5, "failure_rate": 0.4, "conversion_rate": 0.5})
    );
    // E-mail by hand: delivered = opened + clicked = 2 (status sent does not count for
    // e-mail); failed 0; bounced 1; sent 2; responses 0 (SMS only); appointments 1 (e1,
    // booked after the send); delivery 100 %, failure 1/2 = 50 %, response 0 %,
    // conversion 0 (no responses).
    assert_eq!(
        record_of(&records, "bc-email-0001"),
        &json!({"broadcast_id": "bc-email-0001", "broadcast_name": "Spring sale",
            "channel": "Email", "sent_at": "2026-11-10T09:00:00.000Z", "recipients": 4, "sent": 2,
            "delivered": 2, "pending": 0, "failed": 0, "responses": 0, "appointments_set": 1,
            "delivery_rate": 1.0, "response_rate": 0.0, "failure_rate": 0.5, "conversion_rate": 0.0})
    );
    let log = b
        .rows("SELECT direction, entity_type, entity_id, status FROM sync_log ORDER BY started_at")
        .await;
    assert_eq!(log.len(), 2);
    for r in &log {
        assert_eq!(
            (
                r.get::<_, &str>(0),
                r.get::<_, &str>(1),
                r.get::<_, &str>(3)
            ),
            ("verity_to_ghl", "broadcast", "success")
        );
    }

    // Verity changes; the next event updates the same record (no search, no create).
    b.verity("UPDATE broadcast_recipient SET status = 'sent' WHERE id = 'r5'")
        .await;
    let before = b.object_requests().await.len();
    b.event(json!({"broadcastId": "bc-sms-000001", "eventType": "analytics_updated", "timestamp": "t2"})).await;
    b.drain(Duration::from_secs(60)).await;
    let records = b.records().await;
    assert_eq!(records.len(), 2, "updated, not duplicated");
    let p = record_of(&records, "bc-sms-000001");
    assert_eq!(
        (
            p["delivered"].clone(),
            p["pending"].clone(),
            p["sent"].clone()
        ),
        (json!(5), json!(0), json!(6))
    );
    let after: Vec<String> = b.object_requests().await[before..].to_vec();
    assert_eq!(
        after,
        vec![
            "PUT /ghl/objects/custom_objects.broadcasts/records/".to_string()
                + record_id(&records, "bc-sms-000001")
        ]
    );

    // Nothing changed in Verity: a new event costs no GHL write.
    b.event(json!({"broadcastId": "bc-sms-000001", "eventType": "analytics_updated", "timestamp": "t3"})).await;
    b.drain(Duration::from_secs(60)).await;
    assert_eq!(b.object_requests().await.len(), before + 1);

    // Our state lost (a restored database): the record is found by broadcast_id and
    // updated, not created a second time.
    db_client(&b.database_url)
        .await
        .batch_execute("DELETE FROM broadcast_sync_state")
        .await
        .unwrap();
    b.event(json!({"broadcastId": "bc-sms-000001", "eventType": "analytics_updated", "timestamp": "t4"})).await;
    b.drain(Duration::from_secs(60)).await;
    assert_eq!(b.records().await.len(), 2);
    let last: Vec<String> = b.object_requests().await[before + 1..].to_vec();
    assert_eq!(last.len(), 2, "search, then update: {last:?}");
    assert_eq!(
        last[0],
        "POST /ghl/objects/custom_objects.broadcasts/records/search"
    );
    assert!(
        last[1].starts_with("PUT /ghl/objects/custom_objects.broadcasts/records/"),
        "{last:?}"
    );
}

fn record_id<'a>(records: &'a [Value], broadcast_id: &str) -> &'a str {
    records
        .iter()
        .find(|r| r["properties"]["broadcast_id"] == broadcast_id)
        .and_then(|r| r["id"].as_str())
        .unwrap()
}

/// GHL created the record but its answer was lost (502), and GHL's search index trails
/// its writes: the retry's search misses the record, its create is refused as a
/// duplicate naming no record, and a later attempt finds and updates it. One record.
#[tokio::test]
async fn a_lost_create_answer_never_duplicates_the_record() {
    let b = Broadcasts::new("0", SandboxConfig::default()).await;
    b.verity(SMS_FIXTURE).await;
    let r = b
        .http
        .post(format!("{}/_sandbox/config", b.sandbox))
        .json(&json!({"ghl_search_lag_ms": 2500}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // The first objects call is the search; the second, the create, happens but its
    // answer is lost.
    b.fault(
        json!({"provider": "ghl", "status": 502, "count": 1, "skip": 1, "apply": true,
        "path_contains": "/objects/"}),
    )
    .await;
    b.event(json!({"broadcastId": "bc-sms-000001", "eventType": "broadcast_completed", "timestamp": "t1"})).await;
    b.drain(Duration::from_secs(90)).await;
    let records = b.records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(record_of(&records, "bc-sms-000001")["delivered"], 4);
    let calls = b.object_requests().await;
    let creates = calls.iter().filter(|c| c.ends_with("/records")).count();
    assert!(
        creates >= 2,
        "the lost create and the refused one: {calls:?}"
    );
    assert!(
        calls.last().unwrap().starts_with("PUT "),
        "ends with an update: {calls:?}"
    );
    let row = b
        .rows("SELECT status, attempts FROM broadcast_webhook_events")
        .await;
    assert_eq!(row[0].get::<_, &str>(0), "done");
}

/// 500 `analytics_updated` for one broadcast, 16 at a time over about 6 seconds, with a
/// 2 s settle interval: a handful of computations and GHL writes, not 500.
#[tokio::test]
async fn a_burst_is_coalesced_into_one_computation_per_settle_interval() {
    let b = Broadcasts::new("2", SandboxConfig::default()).await;
    b.verity(SMS_FIXTURE).await;
    let started = Instant::now();
    let sqs = sqs().await;
    let stop = AtomicBool::new(false);
    let posting = async {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let worker = || async {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= 500 {
                    return;
                }
                if i == 250 {
                    // Verity's data moves during the burst.
                    b.verity("UPDATE broadcast_recipient SET status = 'sent' WHERE id = 'r5'")
                        .await;
                }
                b.event(
                    json!({"broadcastId": "bc-sms-000001", "eventType": "analytics_updated",
                    "timestamp": format!("t{i}")}),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(180)).await;
            }
        };
        futures::future::join_all((0..16).map(|_| worker())).await;
    };
    // The consumers run while the burst arrives, as in production.
    let consuming = async {
        let poller = || async {
            while !stop.load(Ordering::SeqCst) {
                if poll_queue(&b.consumer, &sqs, &b.queue_url).await == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        futures::future::join_all((0..POLLERS).map(|_| poller())).await;
    };
    let run = async {
        posting.await;
        stop.store(true, Ordering::SeqCst);
    };
    futures::join!(run, consuming);
    let burst = started.elapsed();
    b.drain(Duration::from_secs(120)).await;
    let state = b
        .rows("SELECT computations, ghl_writes FROM broadcast_sync_state WHERE broadcast_id = 'bc-sms-000001'")
        .await;
    let (computations, writes): (i64, i64) = (state[0].get(0), state[0].get(1));
    let intervals = (burst.as_secs_f64() / 2.0).ceil() as i64 + 2;
    println!("burst of 500 over {burst:?}: {computations} computations, {writes} GHL writes (bound {intervals})");
    assert!(
        computations <= intervals,
        "{computations} computations for {intervals} settle intervals"
    );
    assert!(writes <= computations);
    assert!(
        b.object_requests().await.len() as i64 <= writes + 1,
        "one search at most besides the writes"
    );
    assert_eq!(
        b.count("SELECT count(*) FROM broadcast_webhook_events")
            .await,
        500,
        "every event stored"
    );
    assert_eq!(
        b.count(
            "SELECT count(*) FROM broadcast_webhook_events WHERE status NOT IN ('done', 'skipped')"
        )
        .await,
        0
    );
    // The last computation started after the last event: the record has the final figures.
    let records = b.records().await;
    let p = record_of(&records, "bc-sms-000001");
    assert_eq!(
        (p["delivered"].clone(), p["pending"].clone()),
        (json!(5), json!(0))
    );
}

/// GHL answers 429 to every objects call for 4 seconds while 100 events arrive: the
/// events wait (no attempt spent), and the record ends with the right figures, once.
#[tokio::test]
async fn a_ghl_429_storm_during_a_burst_ends_with_the_right_record() {
    let b = Broadcasts::new(
        "1",
        SandboxConfig {
            ghl_rate_window: Duration::from_secs(1),
            ..SandboxConfig::default()
        },
    )
    .await;
    b.verity(SMS_FIXTURE).await;
    b.fault(json!({"provider": "ghl", "status": 429, "seconds": 4, "path_contains": "/objects/"}))
        .await;
    let posting = async {
        for i in 0..100 {
            b.event(json!({"broadcastId": "bc-sms-000001", "eventType": "analytics_updated", "timestamp": format!("t{i}")}))
                .await;
            if i == 50 {
                b.verity("UPDATE broadcast_recipient SET status = 'sent' WHERE id = 'r5'")
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    futures::join!(posting, b.drain(Duration::from_secs(120)));
    b.drain(Duration::from_secs(120)).await;
    let records = b.records().await;
    assert_eq!(records.len(), 1);
    let p = record_of(&records, "bc-sms-000001");
    assert_eq!(
        (p["delivered"].clone(), p["pending"].clone()),
        (json!(5), json!(0))
    );
    assert_eq!(
        b.count("SELECT count(*) FROM broadcast_webhook_events WHERE status = 'failed'")
            .await,
        0
    );
    let throttled = b
        .sandbox_get("requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    println!("429s answered during the storm: {throttled}");
}

/// A GHL appointment for a contact who received broadcasts re-computes each of them,
/// once per (broadcast, appointment) however often GHL re-sends the appointment.
#[tokio::test]
async fn an_appointment_recomputes_the_contacts_broadcasts() {
    let verity_url = verity_database().await;
    let broadcast_queue = fresh_queues().await;
    let mut w = World::with(
        SandboxConfig::default(),
        &[
            ("VERITY_DATABASE_URL", verity_url.as_str()),
            ("BROADCAST_EVENTS_QUEUE_URL", broadcast_queue.url.as_str()),
            ("BROADCAST_SETTLE_SECONDS", "0"),
        ],
    )
    .await;
    db_client(&verity_url)
        .await
        .batch_execute(SMS_FIXTURE)
        .await
        .unwrap();
    // c1 (+12025550101) received the SMS broadcast; it is also in a second one.
    db_client(&verity_url)
        .await
        .batch_execute(
            "INSERT INTO broadcast VALUES ('bc-sms-000002', 'Follow-up', 'sms', '2026-11-21T15:00:00Z', 'u1');
             INSERT INTO broadcast_recipient VALUES ('r9', 'bc-sms-000002', 'c1', 'sent');",
        )
        .await
        .unwrap();
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [{"id": "ghl-c1", "locationId": "sandbox-location", "firstName": "Ann",
            "phone": "+12025550101", "email": "c1@example.com", "tags": []}]}),
    )
    .await;
    let signer = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::Signer as _;
    w.ghl = df_shared::ingest::webhook_ghl::GhlWebhookAuth::new(
        df_shared::auth::GhlKeys::from_pem(
            &signer
                .verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap(),
            df_shared::auth::ghl_signature::PUBLISHED_RSA_PEM,
        )
        .unwrap(),
        None,
    );
    let appointment = |webhook_id: &str| {
        json!({"type": "AppointmentCreate", "locationId": "sandbox-location", "webhookId": webhook_id,
            "appointment": {"id": "appt-77", "contactId": "ghl-c1", "calendarId": "cal1",
                "appointmentStatus": "confirmed", "startTime": "2026-11-25T16:00:00Z"}})
        .to_string()
    };
    // GHL delivers the appointment twice (two webhook ids, as a create and a retry).
    for id in ["wh-1", "wh-2"] {
        use base64::Engine;
        let body = appointment(id);
        let sig = base64::engine::general_purpose::STANDARD
            .encode(signer.sign(body.as_bytes()).to_bytes());
        let req = post("/api/webhooks/ghl", &[("x-ghl-signature", &sig)], body);
        let resp = df_shared::ingest::webhook_ghl::handle(&w.stack.ingest, &w.ghl, req).await;
        assert_eq!(resp.status(), 200);
        w.drain_queue().await;
    }
    let client = db_client(&w.stack.database_url).await;
    let rows = client
        .query(
            "SELECT entity_id, source, event_type FROM broadcast_webhook_events ORDER BY entity_id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            ("bc-sms-000001", "ghl_appointment", "analytics_updated"),
            ("bc-sms-000002", "ghl_appointment", "analytics_updated")
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    // The broadcast consumer applies them: both records exist with the figures.
    // Its queue is the one the webhook consumer sent to.
    let b = Broadcasts::on(
        "0",
        w.sandbox.clone(),
        &w.stack.database_url,
        &verity_url,
        broadcast_queue.url.clone(),
    )
    .await;
    b.drain(Duration::from_secs(60)).await;
    let records = b.records().await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(record_of(&records, "bc-sms-000002")["delivered"], 1);
    assert_eq!(record_of(&records, "bc-sms-000001")["appointments_set"], 1);
}
