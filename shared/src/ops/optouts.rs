//! The opt-out registry for operators (SPEC §7–§8):
//! - `GET /api/admin/optouts?phone=`: a number's status and its full audit trail (every
//!   request from every system with its evidence, the reply sent for it, every send the
//!   guard saw, texts other systems sent it while opted out);
//! - `GET /api/admin/optouts?review=true`: messages that may be revocations, waiting for
//!   a person; `POST /api/admin/optouts/review/{id}` `{resolution: opt_out | dismiss,
//!   reason, resolvedBy?}` resolves one (audited, append-only);
//! - `GET /api/admin/optouts?incidents=true`: texts other systems sent to opted-out
//!   numbers.
//!
//! Numbers and message texts are masked unless `includeBody=true`.
use deadpool_postgres::Pool;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

use super::admin::{authorize, include_body, query, require_method, Refusal};
use crate::adapters::optout_store;
use crate::domain::phone::to_e164;
use crate::domain::pii::{mask_phone, mask_text};
use crate::lambda::http::json_response;

pub struct Optouts {
    pub pool: Pool,
    pub admin_secret: String,
    pub default_country: String,
}

pub async fn handle(ctx: &Optouts, req: Request) -> Response<Body> {
    let answer = if req.method() == "POST" && req.uri().path().contains("/optouts/review/") {
        resolve(ctx, &req).await
    } else {
        answer(ctx, &req).await
    };
    answer.unwrap_or_else(Refusal::into_response)
}

fn store_refusal(e: crate::adapters::db::DbError) -> Refusal {
    tracing::error!(error = %e, "admin optouts: store unavailable");
    Refusal::store_unavailable()
}

/// `POST /api/admin/optouts/review/{id}`.
async fn resolve(ctx: &Optouts, req: &Request) -> Result<Response<Body>, Refusal> {
    authorize(req, &ctx.admin_secret)?;
    let segments: Vec<&str> = req.uri().path().split('/').collect();
    let id = segments
        .iter()
        .position(|s| *s == "review")
        .and_then(|i| segments.get(i + 1))
        .ok_or_else(|| Refusal::bad_request("the review id is missing from the path"))?;
    let id: uuid::Uuid = id
        .parse()
        .map_err(|_| Refusal::bad_request("the review id must be a UUID"))?;
    let body: Value = match crate::lambda::http::body_bytes(req) {
        [] => json!({}),
        b => serde_json::from_slice(b)
            .map_err(|_| Refusal::bad_request("the body must be a JSON object"))?,
    };
    if crate::domain::json::contains_nul(&body) {
        return Err(Refusal::bad_request(
            "the body holds NUL characters (\\u0000), which cannot be stored",
        ));
    }
    let opt_out = match body.get("resolution").and_then(Value::as_str) {
        Some("opt_out") => true,
        Some("dismiss") => false,
        _ => {
            return Err(Refusal::bad_request(
                "resolution must be opt_out or dismiss",
            ))
        }
    };
    let reason: String = body
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Refusal::bad_request("reason is required"))?
        .chars()
        .take(1000)
        .collect();
    let by: Option<String> = body
        .get("resolvedBy")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(200).collect());
    let resolved = optout_store::resolve_review(&ctx.pool, id, opt_out, &reason, by.as_deref())
        .await
        .map_err(store_refusal)?;
    let recorded = match resolved {
        Ok(r) => r,
        Err(optout_store::ReviewRefused::Unknown) => {
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: format!("no review {id}"),
            })
        }
        Err(optout_store::ReviewRefused::AlreadyResolved) => {
            return Err(Refusal {
                status: StatusCode::CONFLICT,
                code: "already_resolved",
                message: "this review was resolved already".into(),
            })
        }
    };
    // The opt-out reaches GHL through a job the relay sends (this route has no queue).
    if let Some(r) = &recorded {
        queue_mirror(&ctx.pool, r.event_id)
            .await
            .map_err(store_refusal)?;
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"resolved": true, "reviewId": id,
            "resolution": if opt_out { "opt_out" } else { "dismiss" },
            "optoutEventId": recorded.as_ref().map(|r| r.event_id),
            "changed": recorded.as_ref().map(|r| r.changed)}),
    ))
}

/// The mirror job of request `event_id`, stored without a message: the relay sends it.
async fn queue_mirror(
    pool: &Pool,
    event_id: uuid::Uuid,
) -> Result<(), crate::adapters::db::DbError> {
    use crate::adapters::event_store::{self, NewEvent, Stored};
    let (classified, dedupe, payload) = crate::domain::optout::job(event_id, None);
    let new = NewEvent {
        source: crate::domain::Source::Registry,
        classified: &classified,
        payload_json: &payload,
        dedupe: &dedupe,
        texting: None,
        quarantine: None,
        received_at: None,
    };
    let kind = crate::domain::EventKind::Webhook;
    if let Stored::Inserted { id, .. } = event_store::insert(pool, kind, &new).await? {
        event_store::mark_unqueued(pool, kind, id).await?;
    }
    Ok(())
}

async fn answer(ctx: &Optouts, req: &Request) -> Result<Response<Body>, Refusal> {
    require_method(req, "GET")?;
    authorize(req, &ctx.admin_secret)?;
    let unmasked = include_body(req)?;
    let flag = |name: &str| query(req, name).as_deref() == Some("true");
    if flag("review") {
        return reviews(ctx, unmasked).await;
    }
    if flag("incidents") {
        return incident_list(ctx, unmasked, None).await;
    }
    let raw = query(req, "phone").ok_or_else(|| Refusal::bad_request("phone is required"))?;
    let phone = to_e164(&raw, &ctx.default_country)
        .ok_or_else(|| Refusal::bad_request("phone is not a valid number"))?;
    let (entry, events, sends) = optout_store::audit(&ctx.pool, &phone)
        .await
        .map_err(store_refusal)?;
    let unguarded = optout_store::incidents(&ctx.pool, Some(&phone), 100)
        .await
        .map_err(store_refusal)?;
    let shown_phone = |p: &str| {
        if unmasked {
            p.to_string()
        } else {
            mask_phone(p)
        }
    };
    let shown_text = |t: &Option<String>| match t {
        Some(t) if unmasked => Value::from(t.as_str()),
        Some(t) => Value::from(mask_text(t)),
        None => Value::Null,
    };
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({"id": e.id, "action": e.action, "keyword": e.keyword, "source": e.source,
                "sourceMessageId": e.source_message_id, "rawText": shown_text(&e.raw_text),
                "occurredAt": e.occurred_at, "receivedAt": e.received_at, "appliedAt": e.applied_at,
                "resultingStatus": e.resulting_status, "changed": e.changed,
                "superseded": e.superseded, "reply": e.reply, "resolution": e.resolution,
                "evidence": if unmasked { e.evidence.clone() } else { json!({"keys": e.evidence.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>())}) }})
        })
        .collect();
    let sends: Vec<Value> = sends
        .iter()
        .map(|s| {
            json!({"id": s.id, "purpose": s.purpose, "status": s.status,
                "textingMessageId": s.texting_message_id, "at": s.created_at})
        })
        .collect();
    let status = entry.as_ref().map_or("unknown", |e| e.status.as_str());
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "phone": shown_phone(&phone),
            "status": status,
            "canText": status != "opted_out",
            "source": entry.as_ref().and_then(|e| e.source.clone()),
            "lastEventAt": entry.as_ref().map(|e| e.last_event_at),
            "events": events,
            "sends": sends,
            "unguardedSends": unguarded.iter().map(|i| json!({"id": i.id, "source": i.source,
                "eventId": i.event_id, "sentAt": i.sent_at, "detectedAt": i.detected_at})).collect::<Vec<_>>(),
            "masked": !unmasked,
        }),
    ))
}

async fn reviews(ctx: &Optouts, unmasked: bool) -> Result<Response<Body>, Refusal> {
    let open = optout_store::open_reviews(&ctx.pool, 200)
        .await
        .map_err(store_refusal)?;
    let shown: Vec<Value> = open
        .iter()
        .map(|r| {
            json!({"id": r.id,
                "phone": if unmasked { r.phone_number.clone() } else { mask_phone(&r.phone_number) },
                "keyword": r.keyword, "source": r.source,
                "rawText": match &r.raw_text { Some(t) if unmasked => Value::from(t.as_str()),
                    Some(t) => Value::from(mask_text(t)), None => Value::Null },
                "occurredAt": r.occurred_at, "receivedAt": r.received_at})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"reviews": shown, "count": shown.len(), "masked": !unmasked}),
    ))
}

async fn incident_list(
    ctx: &Optouts,
    unmasked: bool,
    phone: Option<&str>,
) -> Result<Response<Body>, Refusal> {
    let all = optout_store::incidents(&ctx.pool, phone, 200)
        .await
        .map_err(store_refusal)?;
    let shown: Vec<Value> = all
        .iter()
        .map(|i| {
            json!({"id": i.id,
                "phone": if unmasked { i.phone_number.clone() } else { mask_phone(&i.phone_number) },
                "source": i.source, "eventId": i.event_id, "sentAt": i.sent_at, "detectedAt": i.detected_at})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"incidents": shown, "count": shown.len(), "masked": !unmasked}),
    ))
}
