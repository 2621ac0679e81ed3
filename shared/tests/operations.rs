//! The operations surface (SPEC §8) against the real stack: Postgres, moto's SQS, the
//! provider sandbox over HTTP, and the same consumer the queues feed. Each route's
//! handler is called with the request API Gateway would build.
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::world::*;
use common::*;
use df_shared::ops::events::{self, AdminEvents};
use df_shared::ops::jobs::{self, EnqueueJob};
use lambda_http::{Body, Request, RequestExt};
use serde_json::{json, Value};

const ADMIN: &str = "admin-test-secret";
const JOBS: &str = "jobs-test-secret";

fn ops_settings(w: &World, extra: &[(&str, &str)]) -> df_shared::lambda::Settings {
    let mut all = vec![("DF_ADMIN_SECRET", ADMIN), ("X_DF_JOBS_SECRET", JOBS)];
    all.extend_from_slice(extra);
    let owned: Vec<(&str, &str)> = w
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(all)
        .collect();
    consumer_settings(
        &w.stack.database_url,
        &w.stack.queue_url,
        &w.sandbox,
        "merge",
        &owned,
    )
}

/// A request as API Gateway hands it over: method, path, query, secret header, body.
fn request(method: &str, path_and_query: &str, header: (&str, &str), body: &str) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let pairs: HashMap<String, String> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2B", "+").replace("%3A", ":")))
        .collect();
    lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header(header.0, header.1)
        .body(Body::from(body.to_string()))
        .unwrap()
        .with_query_string_parameters(pairs)
}

fn admin(method: &str, path: &str, body: &str) -> Request {
    request(method, path, ("x-df-admin-secret", ADMIN), body)
}

fn jobs_req(path: &str) -> Request {
    request("POST", path, ("x-df-jobs-secret", JOBS), "")
}

/// An Aloware contact event for a distinct phone.
fn contact_event(i: usize) -> Value {
    json!({"event": "Contact Created", "body": {"id": 7100 + i, "first_name": format!("Op{i}"),
        "last_name": "Erator", "phone_number": format!("+1202555{:04}", 3000 + i),
        "email": format!("op{i}@example.com")}})
}

/// A call disposition for a distinct lead.
fn disposition(i: usize) -> Value {
    json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": 950000 + i, "direction": 2,
        "talk_time": 30, "current_status2": 9, "disposition_status2": 4, "call_disposition": "No Answer",
        "user_id": 120776, "incoming_number": "+12025550142",
        "lead_number": format!("+1202555{:04}", 4000 + i), "created_at": "2026-11-20 10:00:00"}})
}

async fn event_status(w: &World, id: &str) -> String {
    db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT status FROM webhook_events WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

async fn list(ctx: &AdminEvents, query: &str) -> (u16, Value) {
    json_of(events::handle_list(ctx, admin("GET", &format!("/api/admin/events{query}"), "")).await)
        .await
}

#[tokio::test]
async fn admin_events_pages_newest_first_stay_stable_while_rows_arrive_and_mask_pii() {
    let w = World::new().await;
    let ctx = AdminEvents::from_settings(&ops_settings(&w, &[]))
        .await
        .unwrap();
    for i in 0..5 {
        w.aloware_webhook(contact_event(i)).await;
    }
    let (status, first) = list(&ctx, "?limit=2").await;
    assert_eq!(status, 200, "{first}");
    let page1 = first["events"].as_array().unwrap().clone();
    assert_eq!(page1.len(), 2);
    // Rows arriving between pages go to the front, not into the next page.
    for i in 5..8 {
        w.aloware_webhook(contact_event(i)).await;
    }
    let mut seen: Vec<String> = page1
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let mut cursor = first["nextCursor"].as_str().unwrap().to_string();
    loop {
        let (status, page) = list(&ctx, &format!("?limit=2&cursor={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        for e in page["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let client = db_client(&w.stack.database_url).await;
    let first_five: Vec<String> = client
        .query(
            "SELECT id::text FROM webhook_events ORDER BY received_at DESC, id DESC OFFSET 3",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        seen, first_five,
        "every older row once, in order, none skipped"
    );

    // Masked by default: no phone, no email, no payload.
    let (_, masked) = list(&ctx, "?limit=200").await;
    let text = masked.to_string();
    assert!(
        !text.contains("2025553001") && !text.contains("op1@"),
        "{text}"
    );
    assert!(masked["events"][0].get("payload").is_none());
    assert_eq!(masked["masked"], true);
    assert!(masked["events"][0]["personKey"]
        .as_str()
        .unwrap()
        .ends_with("3007"));
    let (_, full) = list(&ctx, "?limit=1&includeBody=true").await;
    assert_eq!(
        full["events"][0]["payload"]["body"]["email"],
        "op7@example.com"
    );

    // Filters.
    let (_, by_entity) = list(&ctx, "?entityId=7102").await;
    assert_eq!(by_entity["count"], 1, "{by_entity}");
    let (_, by_status) = list(&ctx, "?status=done&source=aloware").await;
    assert_eq!(by_status["count"], 0);
    let (_, by_time) = list(
        &ctx,
        "?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(by_time["count"], 0);

    // Refusals: a clear 4xx with a JSON error.
    for (query, expected) in [
        ("?limit=201", 400),
        ("?limit=abc", 400),
        ("?status=bogus", 400),
        ("?source=zapier", 400),
        ("?cursor=not-ours", 400),
        ("?since=yesterday", 400),
        ("?includeBody=yes", 400),
    ] {
        let (status, body) = list(&ctx, query).await;
        assert_eq!(status, expected, "{query}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    for secret in ["wrong", ""] {
        let req = request(
            "GET",
            "/api/admin/events",
            ("x-df-admin-secret", secret),
            "",
        );
        assert_eq!(events::handle_list(&ctx, req).await.status(), 401);
    }
    let req = request("GET", "/api/admin/events", ("x-other", "x"), "");
    assert_eq!(events::handle_list(&ctx, req).await.status(), 401);
}

#[tokio::test]
async fn a_failed_event_replayed_ends_done_with_its_story_kept() {
    let w = World::new().await;
    let ctx = AdminEvents::from_settings(&ops_settings(&w, &[]))
        .await
        .unwrap();
    // GHL refuses the first request with a final error: the event fails at once.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 422, "count": 1}),
    )
    .await;
    let id = w.aloware_webhook(disposition(1)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.drain_queue().await;
    assert_eq!(event_status(&w, &id).await, "failed");

    let (status, listed) = list(&ctx, "?status=failed").await;
    assert_eq!(status, 200);
    let shown = &listed["events"][0];
    assert_eq!(shown["attempts"], 1);
    assert!(
        shown["lastError"].as_str().unwrap().contains("422"),
        "{shown}"
    );
    assert!(!shown["syncLog"].as_array().unwrap().is_empty(), "{shown}");

    let path = format!("/api/admin/events/{id}/replay");
    let (status, replayed) = json_of(
        events::handle_replay(&ctx, admin("POST", &path, r#"{"replayedBy":"ops@test"}"#)).await,
    )
    .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["previousStatus"], "failed");
    assert_eq!(replayed["queued"], true);
    assert_eq!(replayed["willBeSkippedAsStale"], false);
    w.drain_queue().await;
    assert_eq!(event_status(&w, &id).await, "done");
    let notes = w.notes().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (_, after) = list(&ctx, &format!("?entityId={}", 950001)).await;
    let actions = after["events"][0]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{after}");
    assert_eq!(actions[0]["action"], "replay");
    assert_eq!(actions[0]["actor"], "ops@test");

    // Unknown and malformed ids; no secret.
    let unknown = format!("/api/admin/events/{}/replay", uuid::Uuid::new_v4());
    let (status, body) =
        json_of(events::handle_replay(&ctx, admin("POST", &unknown, "")).await).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _) = json_of(
        events::handle_replay(&ctx, admin("POST", "/api/admin/events/12345/replay", "")).await,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) =
        json_of(events::handle_replay(&ctx, admin("POST", &path, "[1,2]")).await).await;
    assert_eq!(status, 400);
    let req = request("POST", &path, ("x-df-admin-secret", "nope"), "");
    assert_eq!(events::handle_replay(&ctx, req).await.status(), 401);
    let (status, _) = json_of(events::handle_replay(&ctx, admin("GET", &path, "")).await).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn replay_of_an_older_event_says_it_will_be_skipped_as_stale() {
    let w = World::new().await;
    let ctx = AdminEvents::from_settings(&ops_settings(&w, &[]))
        .await
        .unwrap();
    let mut older = contact_event(20);
    older["body"]["first_name"] = json!("Older");
    let old_id = w.aloware_webhook(older).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut newer = contact_event(20);
    newer["body"]["first_name"] = json!("Newer");
    w.aloware_webhook(newer).await;
    w.drain_queue().await;
    let path = format!("/api/admin/events/{old_id}/replay");
    let (status, replayed) =
        json_of(events::handle_replay(&ctx, admin("POST", &path, "")).await).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["willBeSkippedAsStale"], true, "{replayed}");
    let writes_before = w.requests("ghl").await.len();
    w.drain_queue().await;
    let client = db_client(&w.stack.database_url).await;
    let row = client
        .query_one(
            "SELECT status, skip_reason FROM webhook_events WHERE id = $1::text::uuid",
            &[&old_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "skipped");
    assert!(
        row.get::<_, String>(1).starts_with("stale"),
        "{:?}",
        row.get::<_, Option<String>>(1)
    );
    assert_eq!(
        w.requests("ghl").await.len(),
        writes_before,
        "the stale replay cost nothing"
    );
}

#[tokio::test]
async fn a_quarantined_event_is_never_processed_until_replayed() {
    let w = World::new().await;
    let settings = ops_settings(&w, &[("RECORD_MIN_SECONDS", "1")]);
    let ctx = AdminEvents::from_settings(&settings).await.unwrap();
    let run_once = df_shared::app::run_once_job(&settings).await.unwrap();
    let id = w.aloware_webhook(disposition(2)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ghl_before = w.requests("ghl").await.len();
    let path = format!("/api/admin/events/{id}/quarantine");
    let (status, body) =
        json_of(events::handle_quarantine(&ctx, admin("POST", &path, "{}")).await).await;
    assert_eq!(status, 400, "a reason is required: {body}");
    // Postgres text cannot hold U+0000: a clear 400, not a 503 from the store.
    let (status, body) = json_of(
        events::handle_quarantine(&ctx, admin("POST", &path, r#"{"reason":"a\u0000b"}"#)).await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("NUL"), "{body}");
    let (status, body) = json_of(
        events::handle_quarantine(
            &ctx,
            admin(
                "POST",
                &path,
                r#"{"reason":"suspicious payload","eventSource":"webhook","quarantinedBy":"ops"}"#,
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previousStatus"], "pending");
    // Its queue message is delivered and consumed; run-once and the relay pass it by.
    w.drain_queue().await;
    let (_, ran) =
        json_of(jobs::handle_run_once(&run_once, jobs_req("/api/jobs/run-once")).await).await;
    assert_eq!(ran["processed"], 0, "{ran}");
    w.relay().await.run_once().await;
    w.drain_queue().await;
    assert_eq!(event_status(&w, &id).await, "quarantined");
    assert_eq!(
        w.requests("ghl").await.len(),
        ghl_before,
        "nothing reached GHL"
    );
    let (_, shown) = list(&ctx, "?status=quarantined").await;
    assert_eq!(
        shown["events"][0]["quarantine"]["reason"], "suspicious payload",
        "{shown}"
    );

    let replay = format!("/api/admin/events/{id}/replay");
    let (status, _) = json_of(events::handle_replay(&ctx, admin("POST", &replay, "")).await).await;
    assert_eq!(status, 200);
    w.drain_queue().await;
    assert_eq!(event_status(&w, &id).await, "done");
    assert_eq!(w.notes().await.len(), 1);
}

#[tokio::test]
async fn mark_done_closes_an_event_and_refuses_what_it_cannot_find() {
    let w = World::new().await;
    let ctx = AdminEvents::from_settings(&ops_settings(&w, &[]))
        .await
        .unwrap();
    let id = w.aloware_webhook(disposition(3)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/admin/events/{id}/mark-done");
    let (status, body) =
        json_of(events::handle_mark_done(&ctx, admin("POST", &path, "")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previousStatus"], "pending");
    w.drain_queue().await;
    assert_eq!(event_status(&w, &id).await, "done");
    assert_eq!(
        w.requests("ghl").await.len(),
        0,
        "a closed event is not applied"
    );
    let unknown = format!("/api/admin/events/{}/mark-done", uuid::Uuid::new_v4());
    let (status, _) =
        json_of(events::handle_mark_done(&ctx, admin("POST", &unknown, "")).await).await;
    assert_eq!(status, 404);
    let (status, _) = json_of(
        events::handle_mark_done(
            &ctx,
            admin("POST", "/api/admin/events/not-a-uuid/mark-done", ""),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = json_of(
        events::handle_mark_done(&ctx, admin("POST", &path, r#"{"eventSource":"sms"}"#)).await,
    )
    .await;
    assert_eq!(status, 400);
    let req = request("POST", &path, ("x-df-admin-secret", "x"), "");
    assert_eq!(events::handle_mark_done(&ctx, req).await.status(), 401);
    // The texting list is its own inbox: this webhook event is not in it.
    let (status, texting) = json_of(
        events::handle_texting_list(&ctx, admin("GET", "/api/admin/texting/events", "")).await,
    )
    .await;
    assert_eq!((status, texting["count"].as_i64()), (200, Some(0)));
}

#[tokio::test]
async fn enqueue_pending_resends_what_lost_its_message() {
    let w = World::new().await;
    let settings = ops_settings(&w, &[("JOBS_BATCH_SIZE", "2")]);
    let job = EnqueueJob::from_settings(&settings, df_shared::domain::EventKind::Webhook)
        .await
        .unwrap();
    for i in 0..3 {
        w.aloware_webhook(disposition(10 + i)).await;
    }
    // Their messages are lost (received and deleted unprocessed).
    let sqs = sqs().await;
    for m in drain(&w.stack.queue_url).await {
        sqs.delete_message()
            .queue_url(&w.stack.queue_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let wrong = request(
        "POST",
        "/api/jobs/enqueue-pending",
        ("x-df-jobs-secret", "no"),
        "",
    );
    assert_eq!(jobs::handle_enqueue(&job, wrong).await.status(), 401);
    let (status, body) =
        json_of(jobs::handle_enqueue(&job, jobs_req("/api/jobs/enqueue-pending")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enqueued"], 2, "JOBS_BATCH_SIZE bounds it: {body}");
    assert_eq!(body["totalPending"], 3);
    let (_, body) =
        json_of(jobs::handle_enqueue(&job, jobs_req("/api/jobs/enqueue-pending")).await).await;
    assert!(body["enqueued"].as_u64().unwrap() >= 1, "{body}");
    w.drain_queue().await;
    assert!(
        w.statuses().await.iter().all(|s| s.1 == "done"),
        "{:?}",
        w.statuses().await
    );
    assert_eq!(w.notes().await.len(), 3);
    let (_, body) =
        json_of(jobs::handle_enqueue(&job, jobs_req("/api/jobs/enqueue-pending")).await).await;
    assert_eq!(
        (body["enqueued"].as_u64(), body["totalPending"].as_i64()),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn run_once_processes_through_the_consumer_and_stops_before_its_budget() {
    let w = World::new().await;
    let settings = ops_settings(&w, &[("RECORD_MIN_SECONDS", "1")]);
    let job = df_shared::app::run_once_job(&settings).await.unwrap();
    for i in 0..6 {
        w.aloware_webhook(disposition(30 + i)).await;
    }
    // Each GHL request takes 500 ms: six dispositions (3-4 requests each) need far
    // more than 8 s; an attempt needs RECORD_MIN_SECONDS plus 3 s to record it.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "latency_ms": 500, "seconds": 600}),
    )
    .await;
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(8);
    let body = jobs::run_once(&job, &jobs_req("/api/jobs/run-once"), deadline)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(body["stoppedForTime"], true, "{body}");
    let processed = body["processed"].as_u64().unwrap();
    assert!((1..6).contains(&processed), "{body}");
    // An attempt started with its minimum time left may still run out of it (each GHL
    // call takes 500 ms here): it ends `error`, due again, and is counted in `errors`.
    let errors = body["errors"].as_u64().unwrap();
    let finished = processed - errors;
    assert_eq!(
        body["totalPending"].as_i64().unwrap(),
        6 - finished as i64,
        "{body}"
    );
    reqwest::Client::new()
        .delete(format!("{}/_sandbox/faults", w.sandbox))
        .send()
        .await
        .unwrap();
    let (status, body) =
        json_of(jobs::handle_run_once(&job, jobs_req("/api/jobs/run-once")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processed"].as_u64().unwrap(), 6 - finished, "{body}");
    assert_eq!(
        (body["errors"].as_u64(), body["totalPending"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(w.notes().await.len(), 6, "each call noted once");
    // The queue's messages for the same rows are then no-ops.
    w.drain_queue().await;
    assert_eq!(w.notes().await.len(), 6);
    let wrong = request("POST", "/api/jobs/run-once", ("x-df-jobs-secret", "no"), "");
    assert_eq!(jobs::handle_run_once(&job, wrong).await.status(), 401);
}

// ---- stats, mappings repair, reconciliation, alerts, retention ----

use df_shared::ops::alerts::Alerts;
use df_shared::ops::mappings::{self, MappingsRepair};
use df_shared::ops::retention::Retention;
use df_shared::ops::stats::{self, Stats};
use df_shared::sync::reconcile::Reconciler;

fn dlq_settings(w: &World) -> Vec<(&'static str, String)> {
    vec![("WEBHOOK_EVENTS_DLQ_URL", w.stack.dlq_url.clone().unwrap())]
}

#[tokio::test]
async fn stats_show_counts_backlog_dead_letters_and_budget_use() {
    let w = World::new().await;
    let dlq = dlq_settings(&w);
    let extra: Vec<(&str, &str)> = dlq.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ctx = Stats::from_settings(&ops_settings(&w, &extra))
        .await
        .unwrap();
    for i in 0..3 {
        w.aloware_webhook(disposition(60 + i)).await;
    }
    w.drain_queue().await;
    w.aloware_webhook(disposition(70)).await; // waiting
    sqs()
        .await
        .send_message()
        .queue_url(w.stack.dlq_url.as_ref().unwrap())
        .message_body("{}")
        .message_group_id("g")
        .message_deduplication_id("d1")
        .send()
        .await
        .unwrap();
    let (status, body) =
        json_of(stats::handle(&ctx, admin("GET", "/api/admin/stats", "")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["events"]["webhook"]["lastHour"]["aloware"]["done"], 3,
        "{body}"
    );
    assert_eq!(
        body["events"]["webhook"]["last24Hours"]["aloware"]["pending"], 1,
        "{body}"
    );
    assert!(
        body["events"]["webhook"]["oldestWaitingSeconds"]
            .as_f64()
            .unwrap()
            >= 0.0
    );
    assert_eq!(body["deadLetterQueues"]["webhook-events-dlq"], 1, "{body}");
    let budgets = body["rateBudgets"].as_array().unwrap();
    let ghl = budgets
        .iter()
        .find(|b| b["bucket"].as_str().unwrap().contains("sandbox-location"))
        .unwrap_or_else(|| panic!("{budgets:?}"));
    assert!(ghl["takenTotal"].as_i64().unwrap() >= 6, "{ghl}");
    let req = request("GET", "/api/admin/stats", ("x-df-admin-secret", "no"), "");
    assert_eq!(stats::handle(&ctx, req).await.status(), 401);
}

/// Persons seeded identically on both sides, ids `g{i}` / `50{i}`.
fn seed_person(i: u64) -> (Value, Value) {
    let phone = format!("+1202555{:04}", 6000 + i);
    let email = format!("p{i}@example.com");
    (
        json!({"id": format!("g{i}"), "locationId": "sandbox-location", "firstName": format!("P{i}"),
            "lastName": "Seed", "phone": phone, "email": email, "tags": []}),
        json!({"id": 500 + i, "first_name": format!("P{i}"), "last_name": "Seed",
            "phone_number": phone, "email": email}),
    )
}

async fn writes(w: &World) -> usize {
    let all = w.sandbox_get("requests").await;
    all.as_array()
        .unwrap()
        .iter()
        .skip(w.startup_requests)
        .filter(|r| r["method"] != "GET" && (r["provider"] == "ghl" || r["provider"] == "aloware"))
        .count()
}

#[tokio::test]
async fn mappings_repair_links_both_sides_and_refuses_what_it_cannot_find() {
    let w = World::new().await;
    let ctx = MappingsRepair::from_settings(&ops_settings(&w, &[])).unwrap();
    let (g, a) = seed_person(1);
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": [g], "aloware_contacts": [a]}),
    )
    .await;
    let repair = |q: &str| admin("POST", &format!("/api/admin/mappings/repair{q}"), "");
    let (status, body) =
        json_of(mappings::handle(&ctx, repair("?phone=%2B12025556001")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["ghlContactId"].as_str(),
            body["alowareContactId"].as_str()
        ),
        (Some("g1"), Some("501"))
    );
    assert_eq!(body["phone"], "***6001");
    let client = db_client(&w.stack.database_url).await;
    let row = client
        .query_one(
            "SELECT aloware_contact_id FROM contact_mappings WHERE ghl_contact_id = 'g1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "501");
    let (status, body) =
        json_of(mappings::handle(&ctx, repair("?email=p1@example.com")).await).await;
    assert_eq!(
        (status, body["alowareContactId"].as_str()),
        (200, Some("501")),
        "{body}"
    );
    for (q, expected) in [
        ("", 400),
        ("?phone=12", 400),
        ("?email=nope", 400),
        ("?phone=%2B12025559999", 404),
    ] {
        let (status, body) = json_of(mappings::handle(&ctx, repair(q)).await).await;
        assert_eq!(status, expected, "{q}: {body}");
    }
    let req = request(
        "POST",
        "/api/admin/mappings/repair?phone=%2B12025556001",
        ("x-df-admin-secret", "no"),
        "",
    );
    assert_eq!(mappings::handle(&ctx, req).await.status(), 401);
}

#[tokio::test]
async fn reconciliation_repairs_drift_reports_deletions_and_costs_no_writes_when_in_sync() {
    let w = World::new().await;
    let settings = ops_settings(&w, &[("RECONCILE_PAGE_SIZE", "2")]);
    let repair = MappingsRepair::from_settings(&settings).unwrap();
    let reconciler = Reconciler::from_settings(&settings).unwrap();
    let people: Vec<(Value, Value)> = (1..=5).map(seed_person).collect();
    w.sandbox_post(
        "seed",
        json!({"ghl_contacts": people.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
        "aloware_contacts": people.iter().map(|p| p.1.clone()).collect::<Vec<_>>()}),
    )
    .await;
    for i in 1..=5 {
        let q = format!("/api/admin/mappings/repair?phone=%2B1202555{:04}", 6000 + i);
        assert_eq!(
            mappings::handle(&repair, admin("POST", &q, ""))
                .await
                .status(),
            200
        );
    }
    let far = || tokio::time::Instant::now() + Duration::from_secs(120);

    // In sync: every contact checked, nothing written.
    let before = writes(&w).await;
    let (_, status, totals) = reconciler.run(far()).await.unwrap();
    assert_eq!(status, "completed");
    assert_eq!(
        (totals.checked, totals.drift, totals.errors),
        (5, 0, 0),
        "{totals:?}"
    );
    assert_eq!(writes(&w).await, before, "zero writes when nothing differs");

    // Behind our back: GHL's email of P1 changed, P2 deleted in Aloware, P3 in GHL.
    let mut changed = people[0].0.clone();
    changed["email"] = json!("p1.new@example.com");
    w.sandbox_post("seed", json!({"ghl_contacts": [changed]}))
        .await;
    w.sandbox_post(
        "remove",
        json!({"aloware_contact_ids": [502], "ghl_contact_ids": ["g3"]}),
    )
    .await;
    let (run, status, totals) = reconciler.run(far()).await.unwrap();
    assert_eq!(status, "completed");
    assert_eq!(
        (
            totals.checked,
            totals.drift,
            totals.repaired,
            totals.missing_ghl,
            totals.missing_aloware,
            totals.errors
        ),
        (5, 1, 1, 1, 1, 0),
        "{totals:?}"
    );
    let state = w.state().await;
    let p1 = state["aloware"]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == 501)
        .cloned()
        .unwrap();
    assert_eq!(
        p1["email"], "p1.new@example.com",
        "GHL wins the email conflict: {p1}"
    );
    assert!(
        state["aloware"]["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != 502),
        "a contact deleted in Aloware is not recreated"
    );
    assert!(
        state["ghl"]["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "g3"),
        "a contact deleted in GHL is not recreated"
    );
    let client = db_client(&w.stack.database_url).await;
    let row = client
        .query_one(
            "SELECT status, totals FROM reconcile_runs WHERE id = $1",
            &[&run],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completed");
    let stored: Value = row.get(1);
    assert_eq!(stored["missingAloware"], 1);
    assert_eq!(stored["repaired"], 1);

    // Repaired: the next run writes nothing.
    let before = writes(&w).await;
    let (_, _, totals) = reconciler.run(far()).await.unwrap();
    assert_eq!((totals.drift, totals.repaired), (0, 0), "{totals:?}");
    assert_eq!(
        writes(&w).await,
        before,
        "zero writes on the run after the repair"
    );

    // Out of time mid-walk: the cursor keeps the place and the next run continues.
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "latency_ms": 1500, "seconds": 600}),
    )
    .await;
    let short = tokio::time::Instant::now() + Duration::from_millis(11_800);
    let (_, status, first) = reconciler.run(short).await.unwrap();
    assert_eq!(status, "partial", "{first:?}");
    assert!(
        first.stopped_for_time && first.checked >= 1 && first.checked < 5,
        "{first:?}"
    );
    reqwest::Client::new()
        .delete(format!("{}/_sandbox/faults", w.sandbox))
        .send()
        .await
        .unwrap();
    let (_, status, rest) = reconciler.run(far()).await.unwrap();
    assert_eq!(status, "completed");
    assert_eq!(first.checked + rest.checked, 5, "{first:?} then {rest:?}");
    w.assert_no_violations().await;
}

#[tokio::test]
async fn an_event_that_gives_up_alerts_once_within_the_hour() {
    let w = World::new().await;
    let receiver = format!("{}/alerts", w.sandbox);
    let dlq = dlq_settings(&w);
    let mut extra: Vec<(&str, &str)> = dlq.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.push(("ALERT_WEBHOOK_URL", receiver.as_str()));
    extra.push(("BASE_URL", "https://df.example.com"));
    let alerts = Alerts::from_settings(&ops_settings(&w, &extra))
        .await
        .unwrap();
    let quiet = alerts.run().await.unwrap();
    assert!(quiet.firing.is_empty(), "{quiet:?}");

    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 422, "count": 1}),
    )
    .await;
    w.aloware_webhook(disposition(80)).await;
    w.drain_queue().await;
    // The receiver is down on the first try: the alert is not lost.
    w.sandbox_post(
        "faults",
        json!({"provider": "alerts", "status": 503, "count": 1}),
    )
    .await;
    let first = alerts.run().await.unwrap();
    assert_eq!(
        first.send_failures,
        vec!["events_failed:webhook".to_string()],
        "{first:?}"
    );
    let second = alerts.run().await.unwrap();
    assert_eq!(
        second.sent,
        vec!["events_failed:webhook".to_string()],
        "{second:?}"
    );
    let third = alerts.run().await.unwrap();
    assert_eq!(
        third.suppressed,
        vec!["events_failed:webhook".to_string()],
        "{third:?}"
    );
    let received = w.state().await["alerts"].clone();
    assert_eq!(received.as_array().unwrap().len(), 1, "{received}");
    assert_eq!(received[0]["alert"], "events_failed:webhook");
    assert_eq!(
        received[0]["lookAt"][0],
        "https://df.example.com/api/admin/events?status=failed"
    );
    assert!(
        received[0]["summary"]
            .as_str()
            .unwrap()
            .contains("1 webhook event"),
        "{received}"
    );

    // A dead letter is its own key: sent although the failure alert is suppressed.
    sqs()
        .await
        .send_message()
        .queue_url(w.stack.dlq_url.as_ref().unwrap())
        .message_body("{}")
        .message_group_id("g")
        .message_deduplication_id("d1")
        .send()
        .await
        .unwrap();
    let fourth = alerts.run().await.unwrap();
    assert_eq!(
        fourth.sent,
        vec!["dlq:webhook-events-dlq".to_string()],
        "{fourth:?}"
    );
    assert_eq!(w.state().await["alerts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn retention_purges_what_aged_out_and_never_the_optout_audit() {
    let w = World::new().await;
    let settings = ops_settings(&w, &[]);
    let retention = Retention::from_settings(&settings).unwrap();
    let events_ctx = AdminEvents::from_settings(&settings).await.unwrap();
    for i in 0..3 {
        w.aloware_webhook(disposition(90 + i)).await;
    }
    w.drain_queue().await;
    let client = db_client(&w.stack.database_url).await;
    // Two of them (and their log, an old fingerprint, an old snapshot) are 40 days old;
    // so is an opt-out event.
    client
        .batch_execute(
            "UPDATE webhook_events SET processed_at = now() - interval '40 days'
               WHERE id IN (SELECT id FROM webhook_events ORDER BY received_at LIMIT 2);
             UPDATE sync_log SET started_at = now() - interval '100 days'
               WHERE correlation_id IN (SELECT id::text FROM webhook_events WHERE processed_at < now() - interval '30 days');
             INSERT INTO write_fingerprints (system, entity_id, fields_hash, written_at)
               VALUES ('ghl', 'old', 'h', now() - interval '8 days'), ('ghl', 'new', 'h', now());
             INSERT INTO contact_tag_snapshots (ghl_contact_id, tags, updated_at)
               VALUES ('old', '{a}', now() - interval '400 days'), ('new', '{a}', now());
             INSERT INTO optout_events (phone_number, action, source, source_message_id, occurred_at, received_at, applied_at)
               VALUES ('+12025550100', 'opt_out', 'texting', 'm-old', now() - interval '5 years', now() - interval '5 years', now() - interval '5 years');",
        )
        .await
        .unwrap();
    let optouts_before = w.stack.count("SELECT count(*) FROM optout_events").await;
    let report = retention
        .run(tokio::time::Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!report.out_of_time);
    assert_eq!(report.purged.webhook_payloads, 2, "{report:?}");
    assert_eq!(report.purged.sync_log, 2, "{report:?}");
    assert_eq!(
        (
            report.purged.write_fingerprints,
            report.purged.tag_snapshots
        ),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(
        w.stack.count("SELECT count(*) FROM optout_events").await,
        optouts_before
    );
    assert_eq!(
        w.stack.count("SELECT count(*) FROM webhook_events WHERE payload_json = '{}'::jsonb AND payload_purged_at IS NOT NULL").await,
        2
    );
    assert_eq!(
        w.stack.count("SELECT count(*) FROM webhook_events").await,
        3,
        "rows stay"
    );
    assert_eq!(
        w.stack
            .count("SELECT count(*) FROM write_fingerprints WHERE entity_id = 'new'")
            .await,
        1
    );
    // A purged event cannot be replayed: there is nothing left to apply.
    let purged: String = client
        .query_one(
            "SELECT id::text FROM webhook_events WHERE payload_purged_at IS NOT NULL LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let path = format!("/api/admin/events/{purged}/replay");
    let (status, body) =
        json_of(events::handle_replay(&events_ctx, admin("POST", &path, "")).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("payload_purged")),
        "{body}"
    );
    let again = retention
        .run(tokio::time::Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.purged, Default::default(), "{again:?}");
}

// ---- manual sync ----

use df_shared::ops::manual_sync::{self, ManualSync};

async fn job_status(w: &World, job: &Value) -> (String, Option<String>) {
    let id = job["jobId"].as_str().unwrap();
    let row = db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT status, error_message FROM webhook_events WHERE id = $1::text::uuid AND source = 'admin'",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn sync_contacts_answers_202_and_applies_the_job_through_the_queue() {
    let w = World::new().await;
    let settings = ops_settings(&w, &[]);
    let ctx = ManualSync::from_settings(&settings).await.unwrap();
    let events_ctx = AdminEvents::from_settings(&settings).await.unwrap();
    let sync = |q: &str| admin("POST", &format!("/api/sync/contacts{q}"), "");
    // By phone: Aloware's lookup.
    w.sandbox_post(
        "seed",
        json!({"aloware_contacts": [{"id": 777, "first_name": "Manual", "last_name": "Phone",
        "phone_number": "+12025557001"}]}),
    )
    .await;
    let (status, job) =
        json_of(manual_sync::handle_contacts(&ctx, sync("?phone=(202) 555-7001")).await).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["queued"], true);
    // By id: the latest stored Aloware data (here a contact event held in quarantine).
    let held = w.aloware_webhook(contact_event(50)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let q = format!("/api/admin/events/{held}/quarantine");
    assert_eq!(
        events::handle_quarantine(&events_ctx, admin("POST", &q, r#"{"reason":"hold"}"#))
            .await
            .status(),
        200
    );
    let (status, by_id) =
        json_of(manual_sync::handle_contacts(&ctx, sync("?alowareContactId=7150")).await).await;
    assert_eq!(status, 202, "{by_id}");
    let (_, unknown) =
        json_of(manual_sync::handle_contacts(&ctx, sync("?alowareContactId=999999")).await).await;
    w.drain_queue().await;
    assert_eq!(job_status(&w, &job).await.0, "done");
    assert_eq!(job_status(&w, &by_id).await.0, "done");
    let (status, error) = job_status(&w, &unknown).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("Aloware has no such contact"));
    let contacts = w.state().await["ghl"]["contacts"].clone();
    let names: Vec<&str> = contacts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["firstName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Manual") && names.contains(&"Op50"),
        "{names:?}"
    );
    let (_, listed) = list(&events_ctx, "?source=admin").await;
    assert_eq!(listed["count"], 3, "{listed}");
    for (q, expected) in [
        ("", 400),
        ("?phone=1&alowareContactId=2", 400),
        ("?phone=abc", 400),
        ("?alowareContactId=x1", 400),
    ] {
        let (status, body) = json_of(manual_sync::handle_contacts(&ctx, sync(q)).await).await;
        assert_eq!(status, expected, "{q}: {body}");
    }
    let req = request(
        "POST",
        "/api/sync/contacts?phone=%2B12025557001",
        ("x-df-admin-secret", "no"),
        "",
    );
    assert_eq!(manual_sync::handle_contacts(&ctx, req).await.status(), 401);
    w.assert_no_violations().await;
}

#[tokio::test]
async fn sync_lists_applies_the_member_diff_without_clearing_the_list() {
    let list_map = r#"{"hot lead": "list-9"}"#;
    let w = World::with(Default::default(), &[("ALOWARE_LIST_MAP", list_map)]).await;
    let ctx = ManualSync::from_settings(&ops_settings(&w, &[]))
        .await
        .unwrap();
    let ghl = |i: u64, tags: Vec<&str>| {
        json!({"id": format!("gl{i}"), "locationId": "sandbox-location",
        "firstName": format!("L{i}"), "phone": format!("+1202555{:04}", 8000 + i), "tags": tags})
    };
    // Three hold the tag in GHL; a fourth held it when we last saw it and is in the list.
    w.sandbox_post("seed", json!({
        "ghl_contacts": [ghl(1, vec!["hot lead"]), ghl(2, vec!["Hot Lead", "vip"]), ghl(3, vec!["hot lead"]), ghl(4, vec!["vip"]),
                         ghl(5, vec!["hot leads"])],
        "aloware_contacts": [{"id": 804, "first_name": "L4", "phone_number": "+12025558004"}],
        "aloware_lists": {"list-9": [804]},
    })).await;
    db_client(&w.stack.database_url)
        .await
        .execute("INSERT INTO contact_tag_snapshots (ghl_contact_id, tags) VALUES ('gl4', '{hot lead,vip}')", &[])
        .await
        .unwrap();
    let req = admin("POST", "/api/sync/lists?tagName=Hot Lead", "");
    let (status, job) = json_of(manual_sync::handle_lists(&ctx, req).await).await;
    assert_eq!(status, 202, "{job}");
    w.drain_queue().await;
    assert_eq!(job_status(&w, &job).await, ("done".to_string(), None));
    let state = w.state().await;
    let members: Vec<u64> = state["aloware"]["lists"]["list-9"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let phones: Vec<String> = state["aloware"]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| members.contains(&c["id"].as_u64().unwrap()))
        .map(|c| c["phone_number"].as_str().unwrap().to_string())
        .collect();
    let mut phones = phones;
    phones.sort();
    assert_eq!(
        phones,
        vec!["+12025558001", "+12025558002", "+12025558003"],
        "{state}"
    );
    let paths: Vec<String> = w
        .requests("aloware")
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        paths.iter().all(|p| !p.contains("powerdialer-clear-list")),
        "never cleared: {paths:?}"
    );
    // Again: nothing joined or left, no Aloware call.
    let before = w.requests("aloware").await.len();
    let (_, again) = json_of(
        manual_sync::handle_lists(&ctx, admin("POST", "/api/sync/lists?tagName=hot lead", ""))
            .await,
    )
    .await;
    w.drain_queue().await;
    assert_eq!(job_status(&w, &again).await.0, "done");
    assert_eq!(w.requests("aloware").await.len(), before);
    for (q, expected) in [("", 400), ("?tagName=unmapped", 404)] {
        let (status, body) = json_of(
            manual_sync::handle_lists(&ctx, admin("POST", &format!("/api/sync/lists{q}"), ""))
                .await,
        )
        .await;
        assert_eq!(status, expected, "{q}: {body}");
    }
    w.assert_no_violations().await;
}

// ---- agents and lists ----

use df_shared::ops::agents::{self, Agents};
use df_shared::ops::lists::{self as list_status, ListsStatus};

#[tokio::test]
async fn agents_are_paired_by_email_from_configuration_and_the_request() {
    let w = World::new().await;
    let roster = r#"[{"email": "Dana@Example.com"}, {"email": "sam@example.com", "displayName": "Sam (nights)"}]"#;
    let ctx = Agents::from_settings(&ops_settings(&w, &[("AGENT_DIRECTORY", roster)])).unwrap();
    w.sandbox_post("seed", json!({
        "ghl_users": [{"id": "u-dana", "name": "Dana Lee", "email": "dana@example.com"},
                      {"id": "u-sam", "name": "Sam Roe", "email": "SAM@example.com"},
                      {"id": "u-kim", "name": "Kim Poe", "email": "kim@example.com"}],
        "aloware_users": [{"id": 41, "name": "Dana L", "email": "dana@example.com", "agent_status": 1},
                          {"id": 42, "name": "Kim", "email": "kim@example.com", "agent_status": 0}],
    })).await;
    let (status, empty) =
        json_of(agents::handle(&ctx, admin("GET", "/api/admin/agents", "")).await).await;
    assert_eq!((status, empty["count"].as_i64()), (200, Some(0)), "{empty}");
    let body = r#"{"agents": [{"email": "kim@example.com"}, {"email": "dana@example.com"}]}"#;
    let (status, seeded) =
        json_of(agents::handle(&ctx, admin("POST", "/api/admin/agents", body)).await).await;
    assert_eq!(status, 200, "{seeded}");
    assert_eq!(
        (
            seeded["seeded"].as_i64(),
            seeded["matchedBothSides"].as_i64()
        ),
        (Some(3), Some(2)),
        "{seeded}"
    );
    let by_key = |k: &str| {
        seeded["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agentKey"] == k)
            .cloned()
            .unwrap()
    };
    let dana = by_key("dana@example.com");
    assert_eq!(
        (dana["ghlUserId"].as_str(), dana["alowareUserId"].as_str()),
        (Some("u-dana"), Some("41"))
    );
    assert_eq!(dana["displayName"], "Dana Lee");
    let sam = by_key("sam@example.com");
    assert_eq!(
        (sam["ghlUserId"].as_str(), sam["alowareUserId"].as_str()),
        (Some("u-sam"), None)
    );
    assert_eq!(sam["displayName"], "Sam (nights)");
    assert_eq!(sam["notes"][0], "no Aloware user has this email");
    let (_, listed) =
        json_of(agents::handle(&ctx, admin("GET", "/api/admin/agents", "")).await).await;
    assert_eq!(listed["count"], 3);
    for body in ["{", r#"{"agents": [{"email": "nope"}]}"#, r#"{"other": 1}"#] {
        let (status, answer) =
            json_of(agents::handle(&ctx, admin("POST", "/api/admin/agents", body)).await).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let req = request("GET", "/api/admin/agents", ("x-df-admin-secret", "no"), "");
    assert_eq!(agents::handle(&ctx, req).await.status(), 401);
    assert_eq!(
        agents::handle(&ctx, admin("DELETE", "/api/admin/agents", ""))
            .await
            .status(),
        405
    );
    w.assert_no_violations().await;
}

#[tokio::test]
async fn lists_status_shows_members_last_sync_and_errors_per_mapped_tag() {
    let list_map = r#"{"hot lead": "list-9", "cold": "list-3"}"#;
    let w = World::with(Default::default(), &[("ALOWARE_LIST_MAP", list_map)]).await;
    let settings = ops_settings(&w, &[]);
    let ctx = ListsStatus::from_settings(&settings).unwrap();
    let sync = ManualSync::from_settings(&settings).await.unwrap();
    w.sandbox_post("seed", json!({"ghl_contacts": [
        {"id": "gs1", "locationId": "sandbox-location", "phone": "+12025558101", "tags": ["hot lead"]},
        {"id": "gs2", "locationId": "sandbox-location", "phone": "+12025558102", "tags": ["hot lead"]}]})).await;
    let (_, job) = json_of(
        manual_sync::handle_lists(&sync, admin("POST", "/api/sync/lists?tagName=hot lead", ""))
            .await,
    )
    .await;
    w.drain_queue().await;
    assert_eq!(job_status(&w, &job).await.0, "done");
    let (status, body) =
        json_of(list_status::handle(&ctx, admin("GET", "/api/admin/lists/status", "")).await).await;
    assert_eq!(status, 200, "{body}");
    let lists = body["lists"].as_array().unwrap();
    let hot = lists.iter().find(|l| l["tag"] == "hot lead").unwrap();
    assert_eq!(
        (hot["alowareListId"].as_str(), hot["memberCount"].as_i64()),
        (Some("list-9"), Some(2)),
        "{hot}"
    );
    assert!(hot["lastSuccessfulSyncAt"].is_string(), "{hot}");
    let cold = lists.iter().find(|l| l["tag"] == "cold").unwrap();
    assert_eq!(
        (
            cold["memberCount"].as_i64(),
            cold["lastSuccessfulSyncAt"].is_null()
        ),
        (Some(0), true)
    );
    assert_eq!(body["summary"]["totalLists"], 2);
    let req = request(
        "GET",
        "/api/admin/lists/status",
        ("x-df-admin-secret", "no"),
        "",
    );
    assert_eq!(list_status::handle(&ctx, req).await.status(), 401);
}

/// A NUL character in a query parameter: no Postgres text holds one, so it is a 400
/// naming the parameter's problem, not a 503 "database did not answer".
#[tokio::test]
async fn a_nul_character_in_a_query_parameter_is_a_400() {
    let w = World::new().await;
    let ctx = AdminEvents::from_settings(&ops_settings(&w, &[]))
        .await
        .unwrap();
    for query in ["?entityId=a\u{0}b", "?eventType=\u{0}", "?cursor=x\u{0}"] {
        let (status, body) = list(&ctx, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains("NUL"), "{body}");
    }
}

// ---- bulk replay and the person view (SPEC §8) ----

use df_shared::ops::bulk_replay;
use df_shared::ops::people::{self, People};

async fn bulk(ctx: &AdminEvents, body: Value) -> (u16, Value) {
    json_of(
        bulk_replay::handle(
            ctx,
            admin("POST", "/api/admin/events/replay", &body.to_string()),
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn one_bulk_replay_after_an_outage_puts_three_hundred_failed_events_through_in_order() {
    let w = World::with(
        df_sandbox::SandboxConfig {
            ghl_rate_window: Duration::from_secs(1),
            ..Default::default()
        },
        &[("GHL_RATE_LIMIT_PER_10S", "900")],
    )
    .await;
    let ctx = AdminEvents::from_settings(&ops_settings(&w, &[]))
        .await
        .unwrap();
    // GHL refuses every write for a while: each event fails at once (not retryable).
    w.sandbox_post(
        "faults",
        json!({"provider": "ghl", "status": 400, "seconds": 600}),
    )
    .await;
    for step in 0..10 {
        for person in 0..30 {
            w.aloware_webhook(
                json!({"event": "Contact-Updated", "body": {"id": 88000 + person,
                "first_name": format!("P{person}v{step}"), "last_name": "Bulk",
                "phone_number": format!("+1202556{:04}", person),
                "updated_at": format!("2026-11-20 10:{step:02}:00")}}),
            )
            .await;
        }
    }
    w.drain_queue().await;
    let failed = w
        .stack
        .count("SELECT count(*) FROM webhook_events WHERE status = 'failed'")
        .await;
    assert_eq!(failed, 300);
    w.http
        .delete(format!("{}/_sandbox/faults", w.sandbox))
        .send()
        .await
        .unwrap();

    let (s, dry) = bulk(
        &ctx,
        json!({"status": "failed", "errorContains": "400", "dryRun": true}),
    )
    .await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(
        (
            dry["count"].as_i64(),
            dry["sample"].as_array().map(Vec::len)
        ),
        (Some(300), Some(10)),
        "{dry}"
    );
    assert_eq!(
        w.stack
            .count("SELECT count(*) FROM webhook_events WHERE status = 'failed'")
            .await,
        300,
        "a dry run changes nothing"
    );
    for (body, why) in [
        (
            json!({"status": "processing"}),
            "processing rows are never replayed",
        ),
        (json!({"status": ["failed", "bogus"]}), "an unknown status"),
        (json!({"limit": 0}), "a limit out of range"),
        (json!({"from": "yesterday"}), "a time that is not RFC 3339"),
        (json!({"inbox": "mail"}), "an unknown inbox"),
        (json!({"surprise": 1}), "an unknown field"),
    ] {
        let (s, v) = bulk(&ctx, body).await;
        assert_eq!(s, 400, "{why}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (s, v) = json_of(
        bulk_replay::handle(
            &ctx,
            request(
                "POST",
                "/api/admin/events/replay",
                ("x-df-admin-secret", "wrong"),
                "{}",
            ),
        )
        .await,
    )
    .await;
    assert_eq!(s, 401, "{v}");

    let started = std::time::Instant::now();
    let (s, done) = bulk(
        &ctx,
        json!({"status": ["failed"], "replayedBy": "ops@example.com"}),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(
        (done["replayed"].as_i64(), done["more"].as_bool()),
        (Some(300), Some(false)),
        "{done}"
    );
    // Sends stop after their time budget (under a loaded emulator some may not fit):
    // what was not queued is left pending for the relay, in order, and still ends done.
    let queued = done["queued"].as_i64().unwrap();
    assert!((1..=300).contains(&queued), "{done}");
    if queued < 300 {
        w.drain_for(std::time::Duration::from_secs(120)).await;
    }
    w.drain_queue().await;
    let drained = started.elapsed();
    let statuses = w.statuses().await;
    assert!(
        statuses.iter().all(|s| s.1 == "done"),
        "all done, none skipped as stale (so each person's ran in order): {:?}",
        statuses
            .iter()
            .filter(|s| s.1 != "done")
            .take(5)
            .collect::<Vec<_>>()
    );
    // Each person's ten updates ran in the order they were received.
    let orders: Vec<(String, Vec<String>)> = db_client(&w.stack.database_url)
        .await
        .query(
            "SELECT person_key, array_agg(payload_json->'body'->>'first_name' ORDER BY processed_at, id)
             FROM webhook_events GROUP BY person_key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(orders.len(), 30);
    for (_, names) in &orders {
        let person = names[0]
            .trim_start_matches('P')
            .split('v')
            .next()
            .unwrap()
            .to_string();
        let wanted: Vec<String> = (0..10).map(|s| format!("P{person}v{s}")).collect();
        assert_eq!(names, &wanted, "per-person order");
    }
    let audit = db_client(&w.stack.database_url)
        .await
        .query_one(
            "SELECT actor, selected, replayed, queued, filter FROM admin_bulk_actions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        audit.get::<_, Option<String>>(0).as_deref(),
        Some("ops@example.com")
    );
    assert_eq!(
        (
            audit.get::<_, i64>(1),
            audit.get::<_, Option<i64>>(2),
            audit.get::<_, Option<i64>>(3)
        ),
        (300, Some(300), Some(300))
    );
    assert_eq!(audit.get::<_, Value>(4)["status"], json!(["failed"]));
    assert_eq!(
        w.stack
            .count("SELECT count(*) FROM admin_actions WHERE detail ? 'bulk'")
            .await,
        300
    );
    // Done rows are not replayed unless asked; a cap per call says what remains.
    let (_, again) = bulk(&ctx, json!({})).await;
    assert_eq!(again["replayed"], 0, "{again}");
    let (_, some) = bulk(&ctx, json!({"status": "done", "limit": 5, "dryRun": false})).await;
    assert_eq!(
        (
            some["replayed"].as_i64(),
            some["remaining"].as_i64(),
            some["more"].as_bool()
        ),
        (Some(5), Some(295), Some(true)),
        "{some}"
    );
    w.drain_queue().await;
    println!(
        "bulk replay of 300 failed events: drained in {:.1} s",
        drained.as_secs_f64()
    );
}

#[tokio::test]
async fn broadcast_events_can_be_replayed_quarantined_and_closed() {
    let w = World::new().await;
    let settings = ops_settings(&w, &[]);
    let ctx = AdminEvents::from_settings(&settings).await.unwrap();
    let client = db_client(&w.stack.database_url).await;
    let ids: Vec<uuid::Uuid> = ["b-1", "b-2", "b-3"]
        .iter()
        .map(|_| uuid::Uuid::new_v4())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        client
            .execute(
                "INSERT INTO broadcast_webhook_events (id, entity_id, event_type, payload_json, dedupe_key, status, person_key, attempts)
                 VALUES ($1, $2, 'analytics_updated', '{}'::jsonb, $3, 'failed', $2, 10)",
                &[id, &format!("bc-{i}"), &format!("d-{i}")],
            )
            .await
            .unwrap();
    }
    for (path, id) in [
        ("replay", ids[0]),
        ("quarantine", ids[1]),
        ("mark-done", ids[2]),
    ] {
        let req = admin(
            "POST",
            &format!("/api/admin/events/{id}/{path}"),
            &json!({"eventSource": "broadcast", "reason": "test"}).to_string(),
        );
        let resp = match path {
            "replay" => events::handle_replay(&ctx, req).await,
            "quarantine" => events::handle_quarantine(&ctx, req).await,
            _ => events::handle_mark_done(&ctx, req).await,
        };
        let (s, v) = json_of(resp).await;
        assert_eq!(s, 200, "{path}: {v}");
    }
    let statuses: Vec<String> = client
        .query(
            "SELECT status FROM broadcast_webhook_events ORDER BY broadcast_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["pending", "quarantined", "done"]);
}

#[tokio::test]
async fn the_person_view_shows_a_call_and_a_text_of_one_person_in_order() {
    let w = World::with_texting(df_sandbox::SandboxConfig::default(), &[]).await;
    let phone = "+12025550177";
    w.aloware_webhook(json!({"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": "940868616", "type": 1,
        "direction": 2, "disposition_status2": 4, "call_disposition": "No Answer", "talk_time": 63,
        "contact_id": "155091981", "lead_number": phone, "incoming_number": "+12025550142",
        "created_at": "2026-08-05 20:58:49"}}))
        .await;
    w.drain_queue().await;
    w.texting_webhook(json!({"type": "message.received", "data": {"id": "msg-1001", "from": phone,
        "to": "+12025550142", "body": "Is this still available?", "createdAt": "2026-11-22T10:00:00Z"}}))
        .await;
    w.drain_queue().await;
    let ctx = People::from_settings(&ops_settings(&w, &[])).await.unwrap();
    let get = |q: &str| {
        let req = admin("GET", &format!("/api/admin/people?{q}"), "");
        async { json_of(people::handle(&ctx, req).await).await }
    };
    let (s, v) = get("phone=(202) 555-0177").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["found"], true, "{v}");
    let events = v["events"].as_array().unwrap();
    let inboxes: Vec<&str> = events
        .iter()
        .map(|e| e["inbox"].as_str().unwrap())
        .collect();
    assert_eq!(
        inboxes,
        ["webhook", "texting"],
        "both inboxes, in time order: {v}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["status"] == "done" && !e["syncLog"].as_array().unwrap().is_empty()),
        "{v}"
    );
    assert_eq!(
        v["writes"]["ghlCallNotes"].as_array().unwrap().len(),
        1,
        "{v}"
    );
    assert!(!v.to_string().contains("5550177"), "masked: {v}");
    assert!(events.iter().all(|e| e["payload"].is_null()));
    let ghl_id = v["ids"]["ghlContactIds"][0].as_str().unwrap().to_string();
    let (_, by_id) = get(&format!("ghlContactId={ghl_id}&includeBody=true&live=true")).await;
    assert_eq!(by_id["events"].as_array().unwrap().len(), 2, "{by_id}");
    assert!(
        by_id.to_string().contains("Is this still available?"),
        "unmasked on request"
    );
    assert_eq!(by_id["live"]["ghl"][0]["id"], ghl_id.as_str(), "{by_id}");
    for (q, why) in [
        ("", "no one named"),
        ("phone=12", "not a phone"),
        ("live=maybe&phone=%2B12025550177", "a bad flag"),
    ] {
        let (s, v) = get(q).await;
        assert_eq!(s, 400, "{why}: {v}");
    }
    let (s, v) = get("email=nobody@example.com").await;
    assert_eq!((s, v["found"].as_bool()), (200, Some(false)), "{v}");
}
