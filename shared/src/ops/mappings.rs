//! `POST /api/admin/mappings/repair?phone=&email=`: find the person in GHL (duplicate
//! search: phone, then email) and in Aloware (phone lookup) and link the two in
//! `contact_mappings`, replacing a stale link. 404 when neither side knows them.
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

use super::admin::{authorize, query, require_method, respond, Refusal};
use crate::adapters::sync_store;
use crate::domain::contact::Contact;
use crate::domain::json::id_str;
use crate::domain::phone::to_e164;
use crate::domain::pii::{mask_email, mask_phone};
use crate::lambda::{ConfigError, Settings};
use crate::sync::SyncDeps;

pub struct MappingsRepair {
    pub deps: SyncDeps,
    pub admin_secret: String,
}

impl MappingsRepair {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(MappingsRepair {
            deps: SyncDeps::from_settings(s)?,
            admin_secret: s.require("DF_ADMIN_SECRET")?.to_string(),
        })
    }
}

pub async fn handle(ctx: &MappingsRepair, req: Request) -> Response<Body> {
    respond(StatusCode::OK, repair(ctx, &req).await)
}

async fn repair(ctx: &MappingsRepair, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.admin_secret)?;
    let deps = &ctx.deps;
    let phone = match query(req, "phone") {
        Some(raw) => Some(
            to_e164(&raw, &deps.default_country)
                .ok_or_else(|| Refusal::bad_request("phone is not a valid phone number"))?,
        ),
        None => None,
    };
    let email = match query(req, "email") {
        Some(e) if e.contains('@') => Some(e.to_lowercase()),
        Some(_) => return Err(Refusal::bad_request("email is not an email address")),
        None => None,
    };
    if phone.is_none() && email.is_none() {
        return Err(Refusal::bad_request("give phone or email"));
    }
    let ghl = deps
        .ghl
        .find_duplicate(phone.as_deref(), email.as_deref())
        .await
        .map_err(Refusal::provider)?;
    let ghl_id = ghl.as_ref().and_then(Contact::ghl_id);
    // Aloware keys contacts by phone: the request's, else the one GHL has.
    let lookup_phone = phone.clone().or_else(|| {
        ghl.as_ref()
            .and_then(|c| Contact::from_ghl(c, &deps.default_country).phone)
    });
    let aloware = match &lookup_phone {
        Some(p) => deps
            .aloware
            .lookup_phone(p)
            .await
            .map_err(Refusal::provider)?,
        None => None,
    };
    let aloware_id = aloware.as_ref().and_then(|c| id_str(c.get("id")));
    let Some(ghl_id) = ghl_id else {
        if aloware_id.is_none() {
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: "neither GHL nor Aloware has a contact with this phone or email".into(),
            });
        }
        return Ok(
            json!({"repaired": false, "ghlContactId": null, "alowareContactId": aloware_id,
            "message": "only Aloware has this contact: its next event (or POST /api/sync/contacts) creates it in GHL"}),
        );
    };
    let before = sync_store::mapping_by_ghl(&deps.pool, &ghl_id)
        .await
        .map_err(|_| Refusal::store_unavailable())?;
    sync_store::save_mapping(
        &deps.pool,
        aloware_id.as_deref(),
        &ghl_id,
        lookup_phone.as_deref(),
        email.as_deref(),
        "bidirectional",
    )
    .await
    .map_err(|_| Refusal::store_unavailable())?;
    Ok(json!({
        "repaired": true,
        "ghlContactId": ghl_id,
        "alowareContactId": aloware_id,
        "previousAlowareContactId": before.and_then(|m| m.aloware_contact_id),
        "phone": lookup_phone.as_deref().map(mask_phone),
        "email": email.as_deref().map(mask_email),
    }))
}
