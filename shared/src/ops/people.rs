//! `GET /api/admin/people?phone=|email=|ghlContactId=|alowareContactId=` (SPEC §8): one
//! person — "what happened to this person's call?" — their mappings; every stored event
//! of every inbox about them in time order, each with its attempts (the sync log),
//! decisions and operator actions; what was written where; their SMS opt-out status and
//! its audit; with `live=true` their live GHL and Aloware records (through the metered
//! clients, so under the rate budget). Phones and emails are masked and payloads left
//! out unless `includeBody=true`; a phone in any format resolves.
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

use super::admin::{authorize, include_body, query, require_method, respond, Refusal};
use crate::adapters::optout_store;
use crate::adapters::people_store::{self, Lookup, PersonEvent};
use crate::domain::phone::to_e164;
use crate::domain::pii::{mask_email, mask_phone};
use crate::domain::EventKind;
use crate::lambda::{ConfigError, Settings};
use crate::sync::SyncDeps;

/// Events shown per inbox at most (oldest first).
pub const MAX_EVENTS: i64 = 500;

pub struct People {
    pub deps: SyncDeps,
    pub admin_secret: String,
}

impl People {
    pub async fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(People {
            deps: SyncDeps::from_settings(s)?,
            admin_secret: s.require("DF_ADMIN_SECRET")?.to_string(),
        })
    }
}

fn store_refusal(e: crate::adapters::db::DbError) -> Refusal {
    tracing::error!(error = %e, "admin people: store unavailable");
    Refusal::store_unavailable()
}

fn flag(req: &Request, name: &str) -> Result<bool, Refusal> {
    match query(req, name).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Refusal::bad_request(format!(
            "{name} must be true or false"
        ))),
    }
}

fn id_param(req: &Request, name: &str) -> Result<Option<String>, Refusal> {
    match query(req, name) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) if v.len() <= 200 && !v.contains('\0') => Ok(Some(v.trim().to_string())),
        Some(_) => Err(Refusal::bad_request(format!("{name} is not a valid id"))),
    }
}

fn lookup(req: &Request, default_country: &str) -> Result<Lookup, Refusal> {
    let phone = match query(req, "phone") {
        Some(raw) if !raw.trim().is_empty() => Some(
            to_e164(&raw, default_country)
                .ok_or_else(|| Refusal::bad_request("phone is not a valid number"))?,
        ),
        _ => None,
    };
    let email = id_param(req, "email")?.map(|e| e.to_lowercase());
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(Refusal::bad_request("email is not an email address"));
    }
    let l = Lookup {
        phone,
        email,
        ghl_contact_id: id_param(req, "ghlContactId")?,
        aloware_contact_id: id_param(req, "alowareContactId")?,
    };
    if l.phone.is_none()
        && l.email.is_none()
        && l.ghl_contact_id.is_none()
        && l.aloware_contact_id.is_none()
    {
        return Err(Refusal::bad_request(
            "name the person: phone, email, ghlContactId or alowareContactId",
        ));
    }
    Ok(l)
}

pub async fn handle(ctx: &People, req: Request) -> Response<Body> {
    respond(StatusCode::OK, person(ctx, &req).await)
}

fn event_json(e: &PersonEvent, unmasked: bool) -> Value {
    json!({"inbox": e.kind.as_str(), "id": e.id, "receivedAt": e.received_at,
        "occurredAt": e.occurred_at, "source": e.source, "eventType": e.event_type,
        "entityType": e.entity_type, "status": e.status, "attempts": e.attempts,
        "errorMessage": e.error_message, "skipReason": e.skip_reason,
        "processedAt": e.processed_at, "syncLog": e.sync_log, "actions": e.actions,
        "payload": if unmasked { e.payload.clone().unwrap_or(Value::Null) } else { Value::Null }})
}

async fn person(ctx: &People, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "GET")?;
    authorize(req, &ctx.admin_secret)?;
    let unmasked = include_body(req)?;
    let live = flag(req, "live")?;
    let l = lookup(req, &ctx.deps.default_country)?;
    let pool = &ctx.deps.pool;
    let (mappings, ids) = people_store::resolve(pool, &l)
        .await
        .map_err(store_refusal)?;
    let mut events = Vec::new();
    for kind in [EventKind::Webhook, EventKind::Texting] {
        events.extend(
            people_store::events(pool, kind, &ids, MAX_EVENTS)
                .await
                .map_err(store_refusal)?,
        );
    }
    events.sort_by_key(|e| (e.received_at, e.id));
    let writes = people_store::writes(pool, &ids)
        .await
        .map_err(store_refusal)?;
    let phone_shown = |p: &str| {
        if unmasked {
            p.to_string()
        } else {
            mask_phone(p)
        }
    };
    let email_shown = |e: &str| {
        if unmasked {
            e.to_string()
        } else {
            mask_email(e)
        }
    };
    let mut optouts = Vec::new();
    for phone in &ids.phones {
        let (entry, trail, _) = optout_store::audit(pool, phone)
            .await
            .map_err(store_refusal)?;
        optouts.push(json!({"phone": phone_shown(phone),
            "status": entry.as_ref().map_or("unknown", |e| e.status.as_str()),
            "canText": entry.as_ref().is_none_or(|e| e.status != "opted_out"),
            "events": trail.iter().map(|e| json!({"action": e.action, "source": e.source,
                "occurredAt": e.occurred_at, "receivedAt": e.received_at, "changed": e.changed,
                "superseded": e.superseded, "resultingStatus": e.resulting_status})).collect::<Vec<_>>()}));
    }
    let mut answer = json!({
        "found": !mappings.is_empty() || !events.is_empty(),
        "mappings": mappings.iter().map(|m| json!({
            "alowareContactId": m.aloware_contact_id, "ghlContactId": m.ghl_contact_id,
            "phone": m.phone.as_deref().map(phone_shown), "email": m.email.as_deref().map(email_shown),
            "lastSyncedAt": m.last_synced_at})).collect::<Vec<_>>(),
        "ids": {"phones": ids.phones.iter().map(|p| phone_shown(p)).collect::<Vec<_>>(),
                "ghlContactIds": ids.ghl, "alowareContactIds": ids.aloware},
        "events": events.iter().map(|e| event_json(e, unmasked)).collect::<Vec<_>>(),
        "writes": writes,
        "optouts": optouts,
        "masked": !unmasked,
    });
    if live {
        answer["live"] = live_records(ctx, &ids, unmasked).await;
    }
    Ok(answer)
}

/// The person's records as GHL and Aloware hold them now (GHL calls metered).
async fn live_records(ctx: &People, ids: &people_store::Ids, unmasked: bool) -> Value {
    let mut ghl = Vec::new();
    for id in ids.ghl.iter().take(3) {
        ghl.push(match ctx.deps.ghl.get_contact(id).await {
            Ok(Some(c)) if unmasked => c,
            Ok(Some(c)) => json!({"id": c.get("id"), "tags": c.get("tags"),
                "dndSettings": c.get("dndSettings"), "dateUpdated": c.get("dateUpdated"),
                "masked": true}),
            Ok(None) => json!({"id": id, "error": "GHL has no such contact"}),
            Err(e) => json!({"id": id, "error": e.to_string()}),
        });
    }
    let mut aloware = Vec::new();
    for phone in ids.phones.iter().take(2) {
        aloware.push(match ctx.deps.aloware.lookup_phone(phone).await {
            Ok(Some(c)) if unmasked => c,
            Ok(Some(c)) => json!({"id": c.get("id"), "is_dnc": c.get("is_dnc"), "masked": true}),
            Ok(None) => json!({"phone": mask_phone(phone), "error": "Aloware has no such contact"}),
            Err(e) => json!({"phone": mask_phone(phone), "error": e.to_string()}),
        });
    }
    json!({"ghl": ghl, "aloware": aloware})
}
