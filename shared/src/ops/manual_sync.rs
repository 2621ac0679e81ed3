//! `POST /api/sync/contacts?alowareContactId=|phone=` and `POST /api/sync/lists?tagName=`
//! (header `X-DF-ADMIN-SECRET`): each request becomes a job in the webhook inbox
//! (source `admin`), answered 202 with its id at once and applied through the queue
//! like any event; its outcome shows in `GET /api/admin/events?source=admin`.
use std::collections::BTreeMap;

use deadpool_postgres::Pool;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

use super::admin::{authorize, query, require_method, respond, Refusal};
use crate::adapters::event_store::{self, NewEvent, Stored};
use crate::adapters::sync_store;
use crate::domain::dedupe::DedupeKey;
use crate::domain::event::{Classified, EntityType, PersonRef, Source};
use crate::domain::phone::to_e164;
use crate::domain::EventKind;
use crate::ingest::Ingest;
use crate::lambda::{ConfigError, Settings};

pub struct ManualSync {
    pub ingest: Ingest,
    pub admin_secret: String,
    /// `ALOWARE_LIST_MAP` (the database's `call_list_mappings` adds to it).
    pub list_map: BTreeMap<String, String>,
}

impl ManualSync {
    pub async fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(ManualSync {
            ingest: crate::ingest::Ingest::from_settings(s, EventKind::Webhook).await?,
            admin_secret: s.require("DF_ADMIN_SECRET")?.to_string(),
            list_map: crate::sync::parse_list_map(s.get_or("ALOWARE_LIST_MAP", "{}"))?,
        })
    }

    fn pool(&self) -> &Pool {
        &self.ingest.pool
    }
}

/// `POST /api/sync/contacts`.
pub async fn handle_contacts(ctx: &ManualSync, req: Request) -> Response<Body> {
    respond(StatusCode::ACCEPTED, contacts(ctx, &req).await)
}

async fn contacts(ctx: &ManualSync, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.admin_secret)?;
    let aloware_id = query(req, "alowareContactId");
    let phone = query(req, "phone");
    let (aloware_id, phone) = match (aloware_id, phone) {
        (Some(id), None) if id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(id), None)
        }
        (Some(_), None) => return Err(Refusal::bad_request("alowareContactId must be a number")),
        (None, Some(raw)) => (
            None,
            Some(
                to_e164(&raw, &ctx.ingest.default_country)
                    .ok_or_else(|| Refusal::bad_request("phone is not a valid phone number"))?,
            ),
        ),
        _ => {
            return Err(Refusal::bad_request(
                "give exactly one of alowareContactId or phone",
            ))
        }
    };
    let payload =
        json!({"alowareContactId": aloware_id, "phone": phone, "requestedAt": chrono::Utc::now()});
    let classified = Classified {
        event_type: "SyncContact".into(),
        entity_type: EntityType::Contact,
        entity_id: aloware_id.clone().or_else(|| phone.clone()),
        person: PersonRef {
            phone: phone.clone(),
            aloware_contact_id: aloware_id.clone(),
            ..Default::default()
        },
        location_id: None,
        occurred_at: None,
    };
    store_job(ctx, &classified, &payload).await
}

/// `POST /api/sync/lists`.
pub async fn handle_lists(ctx: &ManualSync, req: Request) -> Response<Body> {
    respond(StatusCode::ACCEPTED, lists(ctx, &req).await)
}

async fn lists(ctx: &ManualSync, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.admin_secret)?;
    let tag = query(req, "tagName")
        .ok_or_else(|| Refusal::bad_request("tagName is required"))?
        .to_lowercase();
    let mapped = sync_store::call_list_map(ctx.pool(), &ctx.list_map)
        .await
        .map_err(|_| Refusal::store_unavailable())?;
    let Some(list_id) = mapped.get(&tag) else {
        return Err(Refusal {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message:
                "this tag is not mapped to an Aloware list (ALOWARE_LIST_MAP or call_list_mappings)"
                    .into(),
        });
    };
    let payload =
        json!({"tagName": tag, "alowareListId": list_id, "requestedAt": chrono::Utc::now()});
    let classified = Classified {
        event_type: "SyncList".into(),
        entity_type: EntityType::List,
        entity_id: Some(tag),
        person: PersonRef::default(),
        location_id: None,
        occurred_at: None,
    };
    store_job(ctx, &classified, &payload).await
}

/// Store the job and send its message (a failed send is the relay's to retry).
async fn store_job(
    ctx: &ManualSync,
    classified: &Classified,
    payload: &Value,
) -> Result<Value, Refusal> {
    let text = payload.to_string();
    let dedupe = DedupeKey::Id(format!("admin:{}", uuid::Uuid::new_v4()));
    let new = NewEvent {
        source: Source::Admin,
        classified,
        payload_json: &text,
        dedupe: &dedupe,
        texting: None,
        quarantine: None,
        received_at: None,
    };
    let stored = event_store::insert(ctx.pool(), EventKind::Webhook, &new)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "manual sync: job not stored");
            Refusal::store_unavailable()
        })?;
    let (id, queued) = match stored {
        Stored::Inserted {
            id,
            enqueue: Some(m),
        } => (id, ctx.ingest.enqueue(&m).await),
        Stored::Inserted { id, enqueue: None }
        | Stored::Duplicate { id, .. }
        | Stored::Coalesced { id, .. } => (id, false),
    };
    tracing::info!(job_id = %id, event_type = %classified.event_type, queued, "manual sync job stored");
    Ok(json!({"jobId": id, "status": "pending", "queued": queued,
        "statusUrl": format!("/api/admin/events?source=admin&entityId={}",
            classified.entity_id.as_deref().map(encode).unwrap_or_default())}))
}

fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}
