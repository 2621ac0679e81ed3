//! The opt-out registry mirrored to and from GHL (SPEC §7).
//!
//! To GHL: an opted-out number's contact gets the tags `DNC-SMS` and `SMS Opted Out` and
//! `dndSettings.SMS` active; an opted-in one loses them. The contact's whole
//! `dndSettings` is read and written back (a partial object may replace the whole, and
//! must never clear the call DND), and what GHL will then report is fingerprinted
//! first, so the `ContactDndUpdate` our write causes is recognised as its echo.
//!
//! From GHL: a `ContactDndUpdate` that turns SMS DND on or off for a contact — an
//! opt-out taken in GHL's UI — is recorded in the registry (source `ghl`), unless it
//! only repeats the registry's state.
use serde_json::{json, Value};
use uuid::Uuid;

use super::{SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::optout_store::{self, Request, RequestKind};
use crate::adapters::sync_store;
use crate::domain::contact::{fingerprint, Contact};
use crate::domain::optout::Status;
use crate::providers::ghl_api::Created;

pub const OPTED_OUT_TAGS: [&str; 2] = ["DNC-SMS", "SMS Opted Out"];

/// The GHL contact of a phone: mapping, then GHL's duplicate search, then a new contact
/// (carrying `extra` fields, e.g. an opted-out number's DND and tags, in the same call).
pub async fn contact_for_phone(
    deps: &SyncDeps,
    phone: &str,
    extra: Value,
    direction: &str,
) -> Result<(String, bool), SyncError> {
    if let Some(id) = sync_store::mapping_by_phone_or_email(&deps.pool, Some(phone), None)
        .await?
        .and_then(|m| m.ghl_contact_id)
    {
        return Ok((id, false));
    }
    if let Some(id) = deps
        .ghl
        .find_duplicate(Some(phone), None)
        .await?
        .as_ref()
        .and_then(Contact::ghl_id)
    {
        sync_store::save_mapping(&deps.pool, None, &id, Some(phone), None, direction).await?;
        return Ok((id, false));
    }
    let mut body = json!({"phone": phone});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let (id, created) = match deps.ghl.create_contact(&body).await? {
        Created::New(contact) => {
            let id = Contact::ghl_id(&contact)
                .ok_or_else(|| SyncError::Invalid("GHL returned a contact without id".into()))?;
            let written = Contact::from_ghl(&contact, &deps.default_country);
            sync_store::record_fingerprint(&deps.pool, "ghl", &id, &fingerprint(&written)).await?;
            (id, true)
        }
        // Created by another writer since the search (an Aloware call on the other
        // queue): the registry's state reaches it through `show_in_ghl`.
        Created::Existing(id) => (id, false),
    };
    sync_store::save_mapping(&deps.pool, None, &id, Some(phone), None, direction).await?;
    Ok((id, created))
}

/// The fields a new contact for an opted-out number is created with.
pub fn opted_out_fields() -> Value {
    json!({"dndSettings": {"SMS": {"status": "active"}}, "tags": OPTED_OUT_TAGS})
}

/// Make the GHL contact say what the registry says (`status` set by event `event_id`).
/// Returns whether anything was written. Idempotent: a repeat writes nothing.
pub async fn to_ghl(
    deps: &SyncDeps,
    phone: &str,
    ghl_id: &str,
    status: Status,
    event_id: Uuid,
) -> Result<bool, SyncError> {
    let opted_out = status == Status::OptedOut;
    let wanted = if opted_out { "opted_out" } else { "opted_in" };
    let shown = optout_store::ghl_state(&deps.pool, phone).await?;
    if shown.is_some_and(|s| s.status == wanted && s.event_id == event_id) {
        return Ok(false);
    }
    let Some(current_json) = deps.ghl.get_contact(ghl_id).await? else {
        return Err(SyncError::Waiting(
            "the GHL contact of this number is gone; the mapping needs repair".into(),
        ));
    };
    let current = Contact::from_ghl(&current_json, &deps.default_country);
    let sms_active = current.sms_dnd == Some(true);
    let has = |tag: &str| current.tags.iter().any(|t| t.eq_ignore_ascii_case(tag));
    let tags_to_change: Vec<String> = OPTED_OUT_TAGS
        .iter()
        .filter(|t| has(t) != opted_out)
        .map(|t| t.to_string())
        .collect();
    let dnd_changes = sms_active != opted_out;
    if dnd_changes || !tags_to_change.is_empty() {
        let mut resulting = current.clone();
        resulting.sms_dnd = Some(opted_out);
        resulting
            .tags
            .retain(|t| !OPTED_OUT_TAGS.iter().any(|o| o.eq_ignore_ascii_case(t)));
        if opted_out {
            resulting
                .tags
                .extend(OPTED_OUT_TAGS.iter().map(|t| t.to_lowercase()));
        }
        sync_store::record_fingerprint(&deps.pool, "ghl", ghl_id, &fingerprint(&resulting)).await?;
    }
    if dnd_changes {
        let mut settings = current_json
            .get("dndSettings")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let status = if opted_out { "active" } else { "inactive" };
        settings.insert("SMS".into(), json!({"status": status}));
        deps.ghl
            .update_contact(ghl_id, &json!({"dndSettings": settings}))
            .await?;
    }
    if !tags_to_change.is_empty() {
        if opted_out {
            deps.ghl.add_tags(ghl_id, &tags_to_change).await?;
        } else {
            deps.ghl.remove_tags(ghl_id, &tags_to_change).await?;
        }
    }
    optout_store::save_ghl_state(&deps.pool, phone, ghl_id, wanted, event_id).await?;
    Ok(dnd_changes || !tags_to_change.is_empty())
}

/// Make the GHL contact show the number's current registry status, if it has one.
/// Idempotent (a repeat costs one query): every router that touches the number calls
/// it, so a mirror interrupted by a GHL outage completes on the next attempt.
pub async fn show_in_ghl(deps: &SyncDeps, phone: &str, ghl_id: &str) -> Result<bool, SyncError> {
    match optout_store::current(&deps.pool, phone).await? {
        Some((status, event_id)) => to_ghl(deps, phone, ghl_id, status, event_id).await,
        None => Ok(false),
    }
}

/// A GHL contact event's SMS DND into the registry (source `ghl`), when it differs from
/// the registry: an opt-out (or opt-in) made in GHL. Returns the recorded change.
///
/// Asymmetric on purpose: SMS DND on is an opt-out whatever event says so; SMS DND off
/// is an opt-in only when a person turned it off — a `ContactDndUpdate`, generated after
/// GHL was shown the opt-out. A contact GHL has not been told about yet (the mirror
/// waits out a GHL outage) says "inactive" without anyone consenting.
pub async fn from_ghl(
    deps: &SyncDeps,
    event: &EventRow,
    contact: &Contact,
) -> Result<Option<&'static str>, SyncError> {
    let (Some(phone), Some(sms_dnd)) = (contact.phone.as_deref(), contact.sms_dnd) else {
        return Ok(None);
    };
    if !phone.starts_with('+') {
        return Ok(None);
    }
    let status = optout_store::status(&deps.pool, phone).await?;
    let kind = match (sms_dnd, status) {
        (true, Status::OptedOut) | (false, Status::OptedIn | Status::Unknown) => return Ok(None),
        (true, _) => RequestKind::OptOut,
        (false, Status::OptedOut) => {
            let shown = optout_store::ghl_state(&deps.pool, phone).await?;
            let generated = crate::domain::sms::parse_time(
                event.payload.get("timestamp").and_then(Value::as_str),
            )
            .unwrap_or(event.received_at);
            let turned_off_by_a_person = event.event_type == "ContactDndUpdate"
                && shown.is_some_and(|s| s.status == "opted_out" && s.applied_at < generated);
            if !turned_off_by_a_person {
                return Ok(None);
            }
            RequestKind::OptIn
        }
    };
    let source_id = event.id.to_string();
    let recorded = optout_store::record(
        &deps.pool,
        &Request {
            phone,
            kind,
            keyword: None,
            source: "ghl",
            source_message_id: &source_id,
            raw_text: None,
            received_at: event.received_at,
        },
    )
    .await?;
    Ok(recorded.map(|_| match kind {
        RequestKind::OptOut => "opted_out",
        _ => "opted_in",
    }))
}
