//! `POST /api/admin/events/replay` (SPEC §8): put a whole set of events through again —
//! "GHL was down for an hour, replay everything it failed". A JSON body filters by
//! `inbox` (webhook | texting | broadcast), `source`, `status` (one or a list; default
//! `failed`), `eventType`, `from` / `to`, `errorContains`; `dryRun: true` answers
//! `{count, sample}` and changes nothing. A real run resets at most `limit` rows (default
//! and cap [`MAX_PER_CALL`]) oldest first, queues them again in that order (so each
//! person's events run in order), records the call and each row, and says how many
//! remain. A row that an attempt holds is never touched; a `done` one only when `status`
//! names `done`.
use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::admin::{authorize, require_method, respond, Refusal};
use super::events::AdminEvents;
use crate::adapters::bulk_store::{self, BulkFilter};
use crate::adapters::event_store::mark_unqueued;
use crate::domain::EventKind;
use crate::lambda::http::body_bytes;

/// Rows one call resets (and queues) at most: well inside the function's time.
pub const MAX_PER_CALL: i64 = 500;
/// Sends stop after this; the rest are left to the relay (they are pending, unqueued).
const SEND_BUDGET: Duration = Duration::from_secs(8);
const STATUSES: &[&str] = &[
    "pending",
    "error",
    "failed",
    "skipped",
    "quarantined",
    "done",
];

fn store_refusal(e: crate::adapters::db::DbError) -> Refusal {
    tracing::error!(error = %e, "admin bulk replay: store unavailable");
    Refusal::store_unavailable()
}

/// The request, validated.
struct Asked {
    kind: EventKind,
    filter: BulkFilter,
    dry_run: bool,
    limit: i64,
    actor: Option<String>,
}

fn text(body: &Value, key: &str, max: usize) -> Result<Option<String>, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max && !s.contains('\0') => {
            Ok(Some(s.trim().to_string()))
        }
        Some(_) => Err(Refusal::bad_request(format!(
            "{key} must be a string of at most {max} characters"
        ))),
    }
}

fn time(body: &Value, key: &str) -> Result<Option<DateTime<Utc>>, Refusal> {
    text(body, key, 64)?
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Refusal::bad_request(format!("{key} must be an RFC 3339 time")))
        })
        .transpose()
}

fn parse(raw: &[u8]) -> Result<Asked, Refusal> {
    let body: Value = match raw {
        b if b.iter().all(u8::is_ascii_whitespace) => json!({}),
        b => serde_json::from_slice(b)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| Refusal::bad_request("the body must be a JSON object"))?,
    };
    const KNOWN: &[&str] = &[
        "inbox",
        "source",
        "status",
        "eventType",
        "from",
        "to",
        "errorContains",
        "dryRun",
        "limit",
        "replayedBy",
    ];
    if let Some(k) = body
        .as_object()
        .unwrap()
        .keys()
        .find(|k| !KNOWN.contains(&k.as_str()))
    {
        return Err(Refusal::bad_request(format!("unknown field {k:?}")));
    }
    let kind = match text(&body, "inbox", 16)?.as_deref() {
        None | Some("webhook") => EventKind::Webhook,
        Some("texting") => EventKind::Texting,
        Some("broadcast") => EventKind::Broadcast,
        Some(_) => {
            return Err(Refusal::bad_request(
                "inbox must be webhook, texting or broadcast",
            ))
        }
    };
    let statuses: Vec<String> = match body.get("status") {
        None | Some(Value::Null) => vec!["failed".into()],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= STATUSES.len() => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Refusal::bad_request("status must be a string or a list of strings"))?,
        Some(_) => {
            return Err(Refusal::bad_request(
                "status must be a string or a list of strings",
            ))
        }
    };
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
        let why = if bad == "processing" {
            "an attempt holds processing rows right now: they are never replayed".to_string()
        } else {
            format!("status {bad:?} is not one of {}", STATUSES.join(", "))
        };
        return Err(Refusal::bad_request(why));
    }
    let limit = match body.get("limit") {
        None | Some(Value::Null) => MAX_PER_CALL,
        // JSON has one number type: 300.0 is the integer 300 (as JSON Schema reads it).
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .filter(|n| (1..=MAX_PER_CALL).contains(n))
            .ok_or_else(|| Refusal::bad_request(format!("limit must be 1 to {MAX_PER_CALL}")))?,
    };
    let dry_run = match body.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Refusal::bad_request("dryRun must be true or false")),
    };
    let (from, to) = (time(&body, "from")?, time(&body, "to")?);
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(Refusal::bad_request("from must be before to"));
        }
    }
    Ok(Asked {
        kind,
        filter: BulkFilter {
            source: text(&body, "source", 32)?,
            statuses,
            event_type: text(&body, "eventType", 200)?,
            from,
            to,
            error_contains: text(&body, "errorContains", 200)?,
        },
        dry_run,
        limit,
        actor: text(&body, "replayedBy", 200)?,
    })
}

fn filter_json(a: &Asked) -> Value {
    let f = &a.filter;
    json!({"inbox": a.kind.as_str(), "source": f.source, "status": f.statuses,
        "eventType": f.event_type, "from": f.from, "to": f.to, "errorContains": f.error_contains})
}

pub async fn handle(ctx: &AdminEvents, req: Request) -> Response<Body> {
    respond(StatusCode::OK, bulk_replay(ctx, &req).await)
}

async fn bulk_replay(ctx: &AdminEvents, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.admin_secret)?;
    let asked = parse(body_bytes(req))?;
    let (count, sample) = bulk_store::count_and_sample(&ctx.pool, asked.kind, &asked.filter, 10)
        .await
        .map_err(store_refusal)?;
    if asked.dry_run {
        let sample: Vec<Value> = sample
            .iter()
            .map(|s| {
                json!({"id": s.id, "receivedAt": s.received_at, "source": s.source,
                    "eventType": s.event_type, "status": s.status, "attempts": s.attempts,
                    "errorMessage": s.error_message})
            })
            .collect();
        return Ok(json!({"dryRun": true, "count": count, "sample": sample,
            "filter": filter_json(&asked), "wouldReplay": count.min(asked.limit)}));
    }
    let bulk = bulk_store::record_call(
        &ctx.pool,
        asked.kind,
        asked.actor.as_deref(),
        &filter_json(&asked),
        count,
    )
    .await
    .map_err(store_refusal)?;
    let reset = bulk_store::reset(
        &ctx.pool,
        asked.kind,
        &asked.filter,
        asked.limit,
        asked.actor.as_deref(),
        bulk,
    )
    .await
    .map_err(store_refusal)?;
    let queued = send_in_order(ctx, asked.kind, &reset).await;
    bulk_store::finish_call(&ctx.pool, bulk, reset.len() as i64, queued as i64)
        .await
        .map_err(store_refusal)?;
    let remaining = (count - reset.len() as i64).max(0);
    Ok(
        json!({"success": true, "bulkId": bulk, "replayed": reset.len(), "queued": queued,
        "remaining": remaining, "more": remaining > 0,
        "message": if remaining > 0 {
            format!("{} replayed; {remaining} more match: call again for the next {}", reset.len(), asked.limit)
        } else {
            format!("{} replayed", reset.len())
        }}),
    )
}

/// Queue the reset rows oldest first. What cannot be sent in time (or at all) is marked
/// unqueued: the relay sends it, still in each person's order.
async fn send_in_order(ctx: &AdminEvents, kind: EventKind, rows: &[bulk_store::Reset]) -> usize {
    let Some((_, queue)) = ctx.queues.iter().find(|(k, _)| *k == kind) else {
        for r in rows {
            let _ = mark_unqueued(&ctx.pool, kind, r.id).await;
        }
        return 0;
    };
    let deadline = Instant::now() + SEND_BUDGET;
    let mut queued = 0;
    for r in rows {
        let sent =
            Instant::now() < deadline && queue.send(r.id, kind, &r.person_key, r.seq).await.is_ok();
        if sent {
            queued += 1;
        } else {
            let _ = mark_unqueued(&ctx.pool, kind, r.id).await;
        }
    }
    queued
}
