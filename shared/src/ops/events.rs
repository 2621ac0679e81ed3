//! The admin event routes (SPEC §8): `GET /api/admin/events`, `GET
//! /api/admin/texting/events`, and `POST /api/admin/events/{id}/replay | quarantine |
//! mark-done`. Personal data (phones in person keys, payloads) is shown only with
//! `includeBody=true`.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use super::admin::{authorize, include_body, query, require_method, respond, Refusal};
use crate::adapters::admin_store::{self, AdminEvent, Cursor, EventFilter, Refused};
use crate::adapters::queue::EventQueue;
use crate::domain::pii::mask_phone;
use crate::domain::EventKind;
use crate::lambda::config::queue_setting;
use crate::lambda::http::body_bytes;
use crate::lambda::{ConfigError, Settings};

/// Rows per page: `limit` (default 50, at most 200).
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub struct AdminEvents {
    pub pool: Pool,
    pub admin_secret: String,
    /// The queues a replay sends to (webhook, texting, broadcast).
    pub queues: Vec<(EventKind, EventQueue)>,
}

impl AdminEvents {
    /// Replays go to every inbox whose queue URL is configured.
    pub async fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let mut queues = Vec::new();
        for kind in [EventKind::Webhook, EventKind::Texting, EventKind::Broadcast] {
            if s.get(queue_setting(kind)).is_some() {
                queues.push((kind, s.queue(queue_setting(kind)).await?));
            }
        }
        Ok(AdminEvents {
            pool: s.pool()?,
            admin_secret: s.require("DF_ADMIN_SECRET")?.to_string(),
            queues,
        })
    }
}

fn store_refusal(e: crate::adapters::db::DbError) -> Refusal {
    tracing::error!(error = %e, "admin: store unavailable");
    Refusal::store_unavailable()
}

fn not_found(id: Uuid) -> Refusal {
    Refusal {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("no event {id}"),
    }
}

fn refused(id: Uuid, why: Refused) -> Refusal {
    match why {
        Refused::Unknown => not_found(id),
        Refused::Processing => Refusal {
            status: StatusCode::CONFLICT,
            code: "event_processing",
            message: "an attempt holds the event right now; retry in a moment".into(),
        },
        Refused::PayloadPurged => Refusal {
            status: StatusCode::CONFLICT,
            code: "payload_purged",
            message: "retention removed this event's payload: there is nothing to replay".into(),
        },
    }
}

pub fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", c.received_at.to_rfc3339(), c.id))
}

pub fn decode_cursor(text: &str) -> Option<Cursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
    let (at, id) = raw.split_once('|')?;
    Some(Cursor {
        received_at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
        id: id.parse().ok()?,
    })
}

fn time_param(req: &Request, name: &str) -> Result<Option<DateTime<Utc>>, Refusal> {
    query(req, name)
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Refusal::bad_request(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

fn limit_param(req: &Request) -> Result<i64, Refusal> {
    match query(req, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(Refusal::bad_request(format!(
                "limit must be a number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

fn one_of(req: &Request, name: &str, allowed: &[&str]) -> Result<Option<String>, Refusal> {
    match query(req, name) {
        Some(v) if !allowed.contains(&v.as_str()) => Err(Refusal::bad_request(format!(
            "{name} must be one of {}",
            allowed.join(", ")
        ))),
        other => Ok(other),
    }
}

const STATUSES: &[&str] = &[
    "pending",
    "processing",
    "done",
    "skipped",
    "error",
    "failed",
    "quarantined",
];

fn view(e: &AdminEvent, unmasked: bool) -> Value {
    let person = e.person_key.as_deref().map(|k| {
        if unmasked || !k.starts_with('+') {
            k.to_string()
        } else {
            mask_phone(k)
        }
    });
    let mut v = json!({
        "id": e.id, "receivedAt": e.received_at, "source": e.source, "eventType": e.event_type,
        "entityType": e.entity_type, "entityId": e.entity_id, "personKey": person,
        "status": e.status, "attempts": e.attempts, "lastError": e.error_message,
        "skipReason": e.skip_reason, "nextAttemptAt": e.next_attempt_at,
        "processedAt": e.processed_at, "syncLog": e.sync_log, "actions": e.actions,
        "quarantine": e.quarantine, "payloadPurgedAt": e.payload_purged_at,
    });
    if unmasked {
        v["payload"] = e.payload.clone().unwrap_or(Value::Null);
    }
    v
}

async fn list(ctx: &AdminEvents, req: &Request, kind: EventKind) -> Result<Value, Refusal> {
    require_method(req, "GET")?;
    authorize(req, &ctx.admin_secret)?;
    let unmasked = include_body(req)?;
    let source = match kind {
        EventKind::Webhook => one_of(req, "source", &["ghl", "aloware", "admin"])?,
        EventKind::Broadcast => one_of(req, "source", &["verity", "ghl_appointment"])?,
        _ => None,
    };
    let filter = EventFilter {
        source,
        status: one_of(req, "status", STATUSES)?,
        entity_id: query(req, "entityId"),
        event_type: query(req, "eventType"),
        since: time_param(req, "since")?,
        until: time_param(req, "until")?,
    };
    let limit = limit_param(req)?;
    let cursor = query(req, "cursor")
        .map(|c| {
            decode_cursor(&c).ok_or_else(|| Refusal::bad_request("cursor is not one we issued"))
        })
        .transpose()?;
    let events = admin_store::list(&ctx.pool, kind, &filter, cursor, limit)
        .await
        .map_err(store_refusal)?;
    let next = (events.len() as i64 == limit)
        .then(|| events.last())
        .flatten()
        .map(|e| {
            encode_cursor(&Cursor {
                received_at: e.received_at,
                id: e.id,
            })
        });
    let shown: Vec<Value> = events.iter().map(|e| view(e, unmasked)).collect();
    Ok(json!({"events": shown, "count": shown.len(), "nextCursor": next, "masked": !unmasked}))
}

/// `GET /api/admin/events` (`inbox=broadcast` lists Verity's broadcast events).
pub async fn handle_list(ctx: &AdminEvents, req: Request) -> Response<Body> {
    let kind = match query(&req, "inbox").as_deref() {
        None | Some("webhook") => Ok(EventKind::Webhook),
        Some("broadcast") => Ok(EventKind::Broadcast),
        Some(_) => Err(Refusal::bad_request("inbox must be webhook or broadcast")),
    };
    match kind {
        Ok(kind) => respond(StatusCode::OK, list(ctx, &req, kind).await),
        Err(refusal) => respond(StatusCode::OK, Err::<Value, _>(refusal)),
    }
}

/// `GET /api/admin/texting/events`.
pub async fn handle_texting_list(ctx: &AdminEvents, req: Request) -> Response<Body> {
    respond(StatusCode::OK, list(ctx, &req, EventKind::Texting).await)
}

/// The `{id}` of `/api/admin/events/{id}/<action>`: API Gateway's path parameter, else
/// the path itself (the local router may not pass parameters).
fn event_id(req: &Request) -> Result<Uuid, Refusal> {
    use lambda_http::RequestExt;
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first("id").map(str::to_string))
        .or_else(|| {
            let segments: Vec<&str> = req.uri().path().split('/').collect();
            segments
                .iter()
                .position(|s| *s == "events")
                .and_then(|i| segments.get(i + 1))
                .map(|s| s.to_string())
        })
        .ok_or_else(|| Refusal::bad_request("the event id is missing from the path"))?;
    raw.parse()
        .map_err(|_| Refusal::bad_request("the event id must be a UUID"))
}

/// `eventSource` in the body or query (`webhook` | `texting`), else wherever the id is.
async fn event_kind(
    ctx: &AdminEvents,
    req: &Request,
    body: &Value,
    id: Uuid,
) -> Result<EventKind, Refusal> {
    let named = body
        .get("eventSource")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| query(req, "eventSource"));
    match named.as_deref() {
        Some("webhook") => Ok(EventKind::Webhook),
        Some("texting") => Ok(EventKind::Texting),
        Some("broadcast") => Ok(EventKind::Broadcast),
        Some(_) => Err(Refusal::bad_request(
            "eventSource must be webhook, texting or broadcast",
        )),
        None => admin_store::kind_of(&ctx.pool, id)
            .await
            .map_err(store_refusal)?
            .ok_or_else(|| not_found(id)),
    }
}

/// A JSON object body, or none.
fn json_body(req: &Request) -> Result<Value, Refusal> {
    let bytes = body_bytes(req);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) if crate::domain::json::contains_nul(&v) => Err(Refusal::bad_request(
            "the body holds NUL characters (\\u0000), which cannot be stored",
        )),
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Refusal::bad_request("the body must be a JSON object")),
    }
}

fn actor(body: &Value, key: &str) -> Option<String> {
    body.get(key)
        .and_then(Value::as_str)
        .map(|s| s.chars().take(200).collect())
}

/// `POST /api/admin/events/{id}/replay`: back to pending with a fresh attempt budget,
/// and a new queue message. An older event than one already applied to its entity is
/// still replayed, and will be skipped as stale: the answer says so.
pub async fn handle_replay(ctx: &AdminEvents, req: Request) -> Response<Body> {
    respond(StatusCode::OK, replay(ctx, &req).await)
}

async fn replay(ctx: &AdminEvents, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.admin_secret)?;
    let id = event_id(req)?;
    let body = json_body(req)?;
    let kind = event_kind(ctx, req, &body, id).await?;
    let replayed = admin_store::replay(&ctx.pool, kind, id, actor(&body, "replayedBy").as_deref())
        .await
        .map_err(store_refusal)?
        .map_err(|why| refused(id, why))?;
    let queued = match ctx.queues.iter().find(|(k, _)| *k == kind) {
        Some((_, queue)) => match queue
            .send(id, kind, &replayed.person_key, replayed.seq)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                // The row is pending with no message: the relay sends it.
                tracing::warn!(event_id = %id, error = %e, "replay: queue send failed; the relay will send it");
                let _ = crate::adapters::event_store::mark_unqueued(&ctx.pool, kind, id).await;
                false
            }
        },
        None => false,
    };
    let stale = replayed.newer_applied_at.map(|t| {
        format!(
            "an event of the same entity received later ({}) was already applied: this replay will be skipped as stale, it cannot overwrite newer data",
            t.to_rfc3339()
        )
    });
    Ok(
        json!({"success": true, "message": "Event replayed", "eventId": id,
        "eventSource": kind.as_str(), "previousStatus": replayed.previous_status,
        "queued": queued, "willBeSkippedAsStale": stale.is_some(), "stale": stale}),
    )
}

/// `POST /api/admin/events/{id}/quarantine` `{reason, eventSource?, quarantinedBy?}`.
pub async fn handle_quarantine(ctx: &AdminEvents, req: Request) -> Response<Body> {
    respond(StatusCode::OK, quarantine(ctx, &req).await)
}

async fn quarantine(ctx: &AdminEvents, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.admin_secret)?;
    let id = event_id(req)?;
    let body = json_body(req)?;
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Refusal::bad_request("reason is required"))?
        .chars()
        .take(1000)
        .collect::<String>();
    let kind = event_kind(ctx, req, &body, id).await?;
    let previous = admin_store::quarantine(
        &ctx.pool,
        kind,
        id,
        &reason,
        actor(&body, "quarantinedBy").as_deref(),
    )
    .await
    .map_err(store_refusal)?
    .map_err(|why| refused(id, why))?;
    Ok(
        json!({"success": true, "message": "Event quarantined", "eventId": id,
        "eventSource": kind.as_str(), "previousStatus": previous}),
    )
}

/// `POST /api/admin/events/{id}/mark-done`.
pub async fn handle_mark_done(ctx: &AdminEvents, req: Request) -> Response<Body> {
    respond(StatusCode::OK, mark_done(ctx, &req).await)
}

async fn mark_done(ctx: &AdminEvents, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.admin_secret)?;
    let id = event_id(req)?;
    let body = json_body(req)?;
    let kind = event_kind(ctx, req, &body, id).await?;
    let previous = admin_store::mark_done(&ctx.pool, kind, id, actor(&body, "markedBy").as_deref())
        .await
        .map_err(store_refusal)?
        .map_err(|why| refused(id, why))?;
    Ok(
        json!({"success": true, "message": "Event marked done", "eventId": id,
        "eventSource": kind.as_str(), "previousStatus": previous}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = Cursor {
            received_at: DateTime::parse_from_rfc3339("2026-11-20T10:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            id: Uuid::new_v4(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x|y")), None);
    }
}
