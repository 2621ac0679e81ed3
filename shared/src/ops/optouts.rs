//! `GET /api/admin/optouts?phone=`: a number's opt-out status and its full audit trail
//! (every request from every system, the reply sent for it, every send the guard saw),
//! for a compliance answer. The number and message texts are masked unless
//! `includeBody=true`.
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
    answer(ctx, &req)
        .await
        .unwrap_or_else(Refusal::into_response)
}

async fn answer(ctx: &Optouts, req: &Request) -> Result<Response<Body>, Refusal> {
    require_method(req, "GET")?;
    authorize(req, &ctx.admin_secret)?;
    let unmasked = include_body(req)?;
    let raw = query(req, "phone").ok_or_else(|| Refusal::bad_request("phone is required"))?;
    let phone = to_e164(&raw, &ctx.default_country)
        .ok_or_else(|| Refusal::bad_request("phone is not a valid number"))?;
    let (entry, events, sends) = optout_store::audit(&ctx.pool, &phone).await.map_err(|e| {
        tracing::error!(error = %e, "admin optouts: store unavailable");
        Refusal::store_unavailable()
    })?;
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
                "receivedAt": e.received_at, "appliedAt": e.applied_at,
                "resultingStatus": e.resulting_status, "reply": e.reply})
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
            "masked": !unmasked,
        }),
    ))
}
