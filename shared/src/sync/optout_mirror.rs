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

use super::dnd::{set_channel, Want};
use super::ghl_contact::{create_once, CreateOnce, Identity};
use super::{SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::optout_store::{self, Request, RequestKind};
use crate::adapters::sync_store;
use crate::domain::contact::{fingerprint, Contact};
use crate::domain::optout::Status;

pub const OPTED_OUT_TAGS: [&str; 2] = ["DNC-SMS", "SMS Opted Out"];

/// The GHL contact of a phone: mapping, then GHL's duplicate search, then a new contact
/// (carrying `extra` fields, e.g. an opted-out number's DND and tags, in the same call).
pub async fn contact_for_phone(
    deps: &SyncDeps,
    phone: &str,
    extra: Value,
    direction: &str,
    event: Uuid,
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
    let who = Identity {
        phone: Some(phone),
        email: None,
    };
    let (id, created) = match create_once(deps, &who, &body, event).await? {
        CreateOnce::Created(contact) => {
            let id = Contact::ghl_id(&contact)
                .ok_or_else(|| SyncError::Invalid("GHL returned a contact without id".into()))?;
            let written = Contact::from_ghl(&contact, &deps.default_country);
            sync_store::record_fingerprint(&deps.pool, "ghl", &id, &fingerprint(&written)).await?;
            (id, true)
        }
        // Created by another writer since the search (an Aloware call on the other
        // queue): the registry's state reaches it through `show_in_ghl`.
        CreateOnce::Existing(id) => (id, false),
    };
    sync_store::save_mapping(&deps.pool, None, &id, Some(phone), None, direction).await?;
    Ok((id, created))
}

/// The fields a new contact for an opted-out number is created with.
pub fn opted_out_fields() -> Value {
    json!({"dndSettings": {"SMS": {"status": "active"}}, "tags": OPTED_OUT_TAGS})
}

/// A new GHL contact's body for `phone`, carrying the opt-out's DND and tags when the
/// registry says the number is opted out (whichever sync creates it): `body` with
/// `dndSettings.SMS` active (other channels kept) and the two tags added.
pub async fn with_registry(
    deps: &SyncDeps,
    phone: Option<&str>,
    mut body: Value,
) -> Result<Value, SyncError> {
    let Some(phone) = phone.filter(|p| p.starts_with('+')) else {
        return Ok(body);
    };
    if optout_store::status(&deps.pool, phone).await? != Status::OptedOut {
        return Ok(body);
    }
    let obj = body.as_object_mut().expect("a contact body is an object");
    let mut dnd = obj
        .get("dndSettings")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    dnd.insert("SMS".into(), json!({"status": "active"}));
    obj.insert("dndSettings".into(), Value::Object(dnd));
    let mut tags: Vec<Value> = obj
        .get("tags")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in OPTED_OUT_TAGS {
        if !tags
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(t)))
        {
            tags.push(Value::from(t));
        }
    }
    obj.insert("tags".into(), Value::Array(tags));
    Ok(body)
}

/// Make GHL contact `ghl_id` say what the registry says (`status` set by event
/// `event_id`), under the contact's DND lock: SMS DND on (or off — never a `permanent`
/// one) and the two tags. Returns whether anything was written. Idempotent per contact:
/// a repeat for the same contact and event writes nothing.
pub async fn to_ghl(
    deps: &SyncDeps,
    phone: &str,
    ghl_id: &str,
    status: Status,
    event_id: Uuid,
) -> Result<bool, SyncError> {
    let wanted = if status == Status::OptedOut {
        "opted_out"
    } else {
        "opted_in"
    };
    let shown = optout_store::ghl_state(&deps.pool, phone, ghl_id).await?;
    if shown.is_some_and(|s| s.status == wanted && s.event_id == event_id) {
        return Ok(false);
    }
    write_status(deps, phone, ghl_id, status, event_id).await
}

/// Reconciliation's check (SPEC §7): the contact as just read from GHL lacks the SMS DND
/// or the tags of an opted-out number — someone removed them, or a write was lost —
/// and is repaired whatever GHL was told before. Costs nothing when it agrees.
pub async fn repair(
    deps: &SyncDeps,
    phone: &str,
    ghl_id: &str,
    seen: &Contact,
) -> Result<bool, SyncError> {
    let Some((Status::OptedOut, event_id)) = optout_store::current(&deps.pool, phone).await? else {
        return Ok(false);
    };
    let tagged = OPTED_OUT_TAGS
        .iter()
        .all(|t| seen.tags.iter().any(|x| x.eq_ignore_ascii_case(t)));
    if seen.sms_dnd == Some(true) && tagged {
        return Ok(false);
    }
    write_status(deps, phone, ghl_id, Status::OptedOut, event_id).await
}

async fn write_status(
    deps: &SyncDeps,
    phone: &str,
    ghl_id: &str,
    status: Status,
    event_id: Uuid,
) -> Result<bool, SyncError> {
    let opted_out = status == Status::OptedOut;
    let wanted = if opted_out { "opted_out" } else { "opted_in" };
    let want = if opted_out { Want::On } else { Want::Off };
    let mut tags_to_change: Vec<String> = Vec::new();
    let set = set_channel(deps, ghl_id, "SMS", want, |after| {
        let has = |tag: &str| after.tags.iter().any(|t| t.eq_ignore_ascii_case(tag));
        tags_to_change = OPTED_OUT_TAGS
            .iter()
            .filter(|t| has(t) != opted_out)
            .map(|t| t.to_string())
            .collect();
        after
            .tags
            .retain(|t| !OPTED_OUT_TAGS.iter().any(|o| o.eq_ignore_ascii_case(t)));
        if opted_out {
            after
                .tags
                .extend(OPTED_OUT_TAGS.iter().map(|t| t.to_lowercase()));
        }
    })
    .await?;
    let Some((_, dnd_written)) = set else {
        return Err(SyncError::Waiting(
            "the GHL contact of this number is gone; the mapping needs repair".into(),
        ));
    };
    if !tags_to_change.is_empty() {
        if opted_out {
            deps.ghl.add_tags(ghl_id, &tags_to_change).await?;
        } else {
            deps.ghl.remove_tags(ghl_id, &tags_to_change).await?;
        }
    }
    optout_store::save_ghl_state(&deps.pool, phone, ghl_id, wanted, event_id).await?;
    Ok(dnd_written || !tags_to_change.is_empty())
}

/// Make GHL contact `ghl_id` show the number's current registry status, if it has one.
/// Idempotent (a repeat costs one query): every router that touches the number calls
/// it, so a mirror interrupted by a GHL outage completes on the next attempt.
pub async fn show_in_ghl(deps: &SyncDeps, phone: &str, ghl_id: &str) -> Result<bool, SyncError> {
    match optout_store::current(&deps.pool, phone).await? {
        Some((status, event_id)) => to_ghl(deps, phone, ghl_id, status, event_id).await,
        None => Ok(false),
    }
}

/// Every GHL contact of a number that we know of: the mapped ones, the ones GHL was
/// told about before, and what GHL's duplicate search finds.
pub async fn contacts_of(deps: &SyncDeps, phone: &str) -> Result<Vec<String>, SyncError> {
    let mut ids = sync_store::ghl_contacts_by_phone(&deps.pool, phone).await?;
    for id in optout_store::ghl_contacts_told(&deps.pool, phone).await? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    // Every GHL contact of the number, duplicates included (the duplicate search
    // answers one).
    for found in deps.ghl.search_by_phone(phone).await? {
        let matches = found
            .get("phone")
            .and_then(Value::as_str)
            .and_then(|p| crate::domain::phone::to_e164(p, &deps.default_country))
            .is_some_and(|p| p == phone);
        if let Some(id) = found.get("id").and_then(Value::as_str).filter(|_| matches) {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
    }
    Ok(ids)
}

/// Show the number's registry status on every GHL contact of it (the opt-out job's
/// mirror). Returns `(contact, wrote)` for each.
pub async fn show_everywhere(
    deps: &SyncDeps,
    phone: &str,
) -> Result<Vec<(String, bool)>, SyncError> {
    let Some((status, event_id)) = optout_store::current(&deps.pool, phone).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for id in contacts_of(deps, phone).await? {
        match to_ghl(deps, phone, &id, status, event_id).await {
            Ok(wrote) => out.push((id, wrote)),
            // A contact deleted in GHL since we knew it: nothing to show it on.
            Err(SyncError::Waiting(_)) => out.push((id, false)),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What a GHL webhook says about who changed a contact, kept with the request for
/// ever (its payload is purged after `RETENTION_PAYLOAD_DAYS`).
fn evidence(event: &EventRow, ghl_id: &str) -> Value {
    let p = &event.payload;
    let mut e =
        json!({"ghlContactId": ghl_id, "eventType": event.event_type, "ourEventId": event.id});
    for key in [
        "webhookId",
        "timestamp",
        "dnd",
        "dndSettings",
        "userId",
        "user",
        "workflow",
        "source",
        "customData",
    ] {
        if let Some(v) = p.get(key) {
            e[key] = v.clone();
        }
    }
    e
}

/// A GHL contact event's SMS DND into the registry (source `ghl`), when it differs from
/// the registry: an opt-out (or opt-in) made in GHL, with the webhook's evidence of who
/// made it. Returns the recorded change.
///
/// Asymmetric on purpose: SMS DND on (`active`, `permanent`, `dnd: true`) is an opt-out
/// whatever event says so; SMS DND off is an opt-in only when a person turned it off — a
/// `ContactDndUpdate`, made after this contact was shown the opt-out (a contact GHL has
/// not been told about yet says "inactive" without anyone consenting). The registry
/// applies it only if it is newer than the latest opt-out (GHL's time of the change).
pub async fn from_ghl(
    deps: &SyncDeps,
    event: &EventRow,
    contact: &Contact,
) -> Result<Option<&'static str>, SyncError> {
    let (Some(phone), Some(sms_dnd)) = (contact.phone.as_deref(), contact.sms_dnd) else {
        return Ok(None);
    };
    let Some(ghl_id) = event.entity_id.as_deref() else {
        return Ok(None);
    };
    if !phone.starts_with('+') {
        return Ok(None);
    }
    let status = optout_store::status(&deps.pool, phone).await?;
    let changed_at = event.occurred_at.unwrap_or(event.received_at);
    let kind = match (sms_dnd, status) {
        (true, Status::OptedOut) | (false, Status::OptedIn | Status::Unknown) => return Ok(None),
        (true, _) => RequestKind::OptOut,
        (false, Status::OptedOut) => {
            let shown = optout_store::ghl_state(&deps.pool, phone, ghl_id).await?;
            let turned_off_by_a_person = event.event_type == "ContactDndUpdate"
                && shown.is_some_and(|s| s.status == "opted_out" && s.applied_at < changed_at);
            if !turned_off_by_a_person {
                return Ok(None);
            }
            RequestKind::OptIn
        }
    };
    let source_id = event
        .payload
        .get("webhookId")
        .and_then(Value::as_str)
        .map(|w| format!("ghl-webhook:{w}"))
        .unwrap_or_else(|| event.id.to_string());
    let recorded = optout_store::record(
        &deps.pool,
        &Request {
            phone,
            kind,
            keyword: Some(if contact.sms_dnd_permanent {
                "GHL DND permanent"
            } else {
                "GHL DND"
            }),
            source: "ghl",
            source_message_id: &source_id,
            raw_text: None,
            occurred_at: changed_at,
            evidence: evidence(event, ghl_id),
        },
    )
    .await?;
    Ok(recorded.filter(|r| r.changed).map(|_| match kind {
        RequestKind::OptOut => "opted_out",
        _ => "opted_in",
    }))
}

/// A GHL `InboundMessage` of type SMS that is a request, for a contact the ingest could
/// not map to a number (it records the others itself): the number from GHL, then the
/// request and its mirror here. Anything else about messages has no sync rule.
pub async fn ghl_message(deps: &SyncDeps, event: &EventRow) -> Result<super::Outcome, SyncError> {
    use crate::ingest::registry::{from_ghl as found_in, Number};
    let at = found_in(&event.payload, event.received_at);
    let Some(found) = at.request else {
        return Ok(super::Outcome::Skipped(
            "no sync rule for ghl message events".into(),
        ));
    };
    let Number::OfGhlContact(ghl_id) = &found.number else {
        return Ok(super::Outcome::Skipped(
            "not a GHL contact's message".into(),
        ));
    };
    let phone = match sync_store::mapping_by_ghl_phone(&deps.pool, ghl_id).await? {
        Some(p) => Some(p),
        None => deps
            .ghl
            .get_contact(ghl_id)
            .await?
            .and_then(|c| Contact::from_ghl(&c, &deps.default_country).phone),
    };
    let Some(phone) = phone.filter(|p| p.starts_with('+')) else {
        return Ok(super::Outcome::Skipped(
            "the GHL contact has no valid phone: no SMS request to record".into(),
        ));
    };
    let recorded = optout_store::record(
        &deps.pool,
        &Request {
            phone: &phone,
            kind: found.kind,
            keyword: Some(found.keyword),
            source: "ghl",
            source_message_id: &found.source_message_id,
            raw_text: found.raw_text.as_deref(),
            occurred_at: found.occurred_at,
            evidence: json!({"ghlContactId": ghl_id}),
        },
    )
    .await?;
    let shown = match found.kind {
        RequestKind::OptOut | RequestKind::OptIn => show_everywhere(deps, &phone).await?.len(),
        _ => 0,
    };
    Ok(super::Outcome::Done {
        direction: "ghl_to_registry",
        source_id: Some(found.source_message_id.clone()),
        target_id: None,
        decisions: json!({"request": found.kind.as_str(), "new": recorded.as_ref().map(|r| r.new),
            "ghl_contacts": shown}),
    })
}
