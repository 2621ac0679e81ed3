//! Aloware → GHL: contacts (merge policy, fewest calls) and calls (one note per call,
//! updated in place; call tags; DNC mirrored).
use serde_json::{json, Map, Value};

use super::{marked, Outcome, SyncDeps, SyncError};
use crate::adapters::sync_repo::{self, CallNote, EventRow};
use crate::domain::call::{self, CallEventKind, CallFacts};
use crate::domain::contact::{changed, fingerprint, ghl_fields, merge, Contact, Policy, Side};
use crate::domain::json::{id_str, text};
use crate::domain::phone::to_e164;

const DIRECTION: &str = "aloware_to_ghl";

/// The event's body: native envelopes nest it, Zapier-style bodies are flat.
fn body_of(event: &EventRow) -> &Value {
    event.payload.get("body").unwrap_or(&event.payload)
}

/// GHL write body for a new contact: fields, tags and the Aloware custom fields.
fn new_contact_body(
    incoming: &Contact,
    aloware_id: Option<&str>,
    source: &Value,
    extra_tags: &[String],
) -> Value {
    let mut body: Map<String, Value> = ghl_fields(incoming)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut tags: Vec<String> = extra_tags.to_vec();
    let mut custom = Vec::new();
    if let Some(id) = aloware_id {
        custom.push(json!({"key": "aloware_contact_id", "field_value": id}));
    }
    if let Some(intake) = text(source.get("intake_source")) {
        custom.push(json!({"key": "intake_source", "field_value": intake}));
    }
    if let Some(lead) = &incoming.lead_source {
        custom.push(json!({"key": "lead_source", "field_value": lead}));
    }
    if incoming.dnc == Some(true) {
        body.insert("dndSettings".into(), json!({"Call": {"status": "active"}}));
        tags.push("DNC".into());
    }
    if !tags.is_empty() {
        body.insert("tags".into(), json!(tags));
    }
    if !custom.is_empty() {
        body.insert("customFields".into(), Value::Array(custom));
    }
    Value::Object(body)
}

struct SyncedContact {
    ghl_id: String,
    decisions: Value,
    wrote: bool,
}

/// Bring one Aloware contact into GHL. `None` when it is the echo of our own write.
async fn sync_contact(
    deps: &SyncDeps,
    source: &Value,
    origin: uuid::Uuid,
) -> Result<Option<SyncedContact>, SyncError> {
    let aloware_id = id_str(source.get("id"));
    let incoming = Contact::from_aloware(source, &deps.default_country);
    let hash = fingerprint(&incoming);
    if let Some(id) = &aloware_id {
        if sync_repo::is_echo(&deps.pool, "aloware", id, &hash, deps.echo_window_seconds).await? {
            return Ok(None);
        }
    }
    let mapped = match &aloware_id {
        Some(id) => sync_repo::mapping_by_aloware(&deps.pool, id)
            .await?
            .and_then(|m| m.ghl_contact_id),
        None => None,
    };
    // Under policy `aloware`, GHL's upsert (which matches by email / phone and
    // overwrites) is exactly the policy: one call. Otherwise look first, so that
    // existing GHL values are merged, not overwritten.
    let current = match (&mapped, deps.policy) {
        (Some(ghl_id), _) => deps.ghl.get_contact(ghl_id).await?,
        (None, Policy::Aloware) => None,
        (None, _) => {
            deps.ghl
                .find_duplicate(incoming.phone.as_deref(), incoming.email.as_deref())
                .await?
        }
    };
    let synced = match current {
        None => {
            if incoming.phone.is_none() && incoming.email.is_none() {
                return Err(SyncError::Invalid(
                    "Aloware contact has neither phone nor email".into(),
                ));
            }
            let mut body = new_contact_body(&incoming, aloware_id.as_deref(), source, &[]);
            // Unsearched (policy aloware), the upsert may land on an existing contact, and
            // whether GHL's upsert replaces or adds tags is undocumented: tags go through
            // the additive tags endpoint instead.
            let unsearched_tags = match (deps.policy, body.as_object_mut()) {
                (Policy::Aloware, Some(fields)) => fields.remove("tags"),
                _ => None,
            };
            let (_, contact) = deps.ghl.upsert_contact(&marked(deps, origin, body)).await?;
            let ghl_id = Contact::ghl_id(&contact)
                .ok_or_else(|| SyncError::Invalid("GHL upsert returned no id".into()))?;
            if let Some(tags) = unsearched_tags {
                let tags: Vec<String> = serde_json::from_value(tags).unwrap_or_default();
                deps.ghl.add_tags(&ghl_id, &tags).await?;
            }
            let written = Contact::from_ghl(&contact, &deps.default_country);
            sync_repo::record_fingerprint(&deps.pool, "ghl", &ghl_id, &fingerprint(&written))
                .await?;
            SyncedContact {
                ghl_id,
                decisions: json!({"created": true}),
                wrote: true,
            }
        }
        Some(current_json) => {
            let ghl_id = Contact::ghl_id(&current_json)
                .ok_or_else(|| SyncError::Invalid("GHL contact without id".into()))?;
            let current = Contact::from_ghl(&current_json, &deps.default_country);
            let merged = merge(&incoming, Side::Aloware, &current, deps.policy);
            let mut diff: Map<String, Value> =
                changed(&ghl_fields(&current), &ghl_fields(&merged.contact))
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
            let mut missing_tags: Vec<String> = Vec::new();
            if merged.contact.dnc == Some(true) && current.dnc != Some(true) {
                diff.insert("dndSettings".into(), json!({"Call": {"status": "active"}}));
                if !current.tags.iter().any(|t| t == "dnc") {
                    missing_tags.push("DNC".into());
                }
            }
            let wrote = !diff.is_empty() || !missing_tags.is_empty();
            if !diff.is_empty() {
                deps.ghl
                    .update_contact(&ghl_id, &marked(deps, origin, Value::Object(diff)))
                    .await?;
            }
            if !missing_tags.is_empty() {
                deps.ghl.add_tags(&ghl_id, &missing_tags).await?;
            }
            if wrote {
                sync_repo::record_fingerprint(
                    &deps.pool,
                    "ghl",
                    &ghl_id,
                    &fingerprint(&merged.contact),
                )
                .await?;
            }
            SyncedContact {
                ghl_id,
                decisions: json!({"policy": deps.policy, "fields": merged.decisions}),
                wrote,
            }
        }
    };
    sync_repo::save_mapping(
        &deps.pool,
        aloware_id.as_deref(),
        &synced.ghl_id,
        incoming.phone.as_deref(),
        incoming.email.as_deref(),
        DIRECTION,
    )
    .await?;
    Ok(Some(synced))
}

pub async fn contact_event(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    let source = body_of(event);
    match sync_contact(deps, source, event.id).await? {
        None => Ok(Outcome::Skipped("echo of a middleware write".into())),
        // A sync that writes nothing is still done, and its decisions are still logged.
        Some(s) => {
            let mut decisions = s.decisions;
            decisions["written"] = json!(s.wrote);
            Ok(Outcome::Done {
                direction: DIRECTION,
                source_id: id_str(source.get("id")),
                target_id: Some(s.ghl_id),
                decisions,
            })
        }
    }
}

/// The GHL contact a call belongs to: mapping, else duplicate search, else one upsert
/// that also carries the call tags. Returns the id and whether the tags were written.
async fn call_contact(
    deps: &SyncDeps,
    body: &Value,
    facts: &CallFacts,
    origin: uuid::Uuid,
) -> Result<(String, bool), SyncError> {
    let contact = body.get("contact").filter(|c| c.is_object());
    let aloware_id =
        id_str(body.get("contact_id")).or_else(|| contact.and_then(|c| id_str(c.get("id"))));
    if let Some(id) = &aloware_id {
        if let Some(ghl_id) = sync_repo::mapping_by_aloware(&deps.pool, id)
            .await?
            .and_then(|m| m.ghl_contact_id)
        {
            return Ok((ghl_id, false));
        }
    }
    let mut incoming = contact
        .map(|c| Contact::from_aloware(c, &deps.default_country))
        .unwrap_or_default();
    if incoming.phone.is_none() {
        incoming.phone =
            text(body.get("lead_number")).and_then(|p| to_e164(p, &deps.default_country));
    }
    if incoming.phone.is_none() && incoming.email.is_none() {
        // Only the summary event lacks both; its call's note normally exists already.
        return Err(SyncError::Invalid(
            "cannot find the call's contact: no mapping, phone or email".into(),
        ));
    }
    let found = deps
        .ghl
        .find_duplicate(incoming.phone.as_deref(), incoming.email.as_deref())
        .await?;
    let (ghl_id, tagged) = match found.as_ref().and_then(Contact::ghl_id) {
        Some(id) => (id, false),
        None => {
            let source = contact.cloned().unwrap_or(Value::Null);
            let (_, created) = deps
                .ghl
                .upsert_contact(&marked(
                    deps,
                    origin,
                    new_contact_body(&incoming, aloware_id.as_deref(), &source, &facts.tags()),
                ))
                .await?;
            let id = Contact::ghl_id(&created)
                .ok_or_else(|| SyncError::Invalid("GHL upsert returned no id".into()))?;
            (id, true)
        }
    };
    sync_repo::save_mapping(
        &deps.pool,
        aloware_id.as_deref(),
        &ghl_id,
        incoming.phone.as_deref(),
        incoming.email.as_deref(),
        DIRECTION,
    )
    .await?;
    Ok((ghl_id, tagged))
}

pub async fn call_event(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    let body = body_of(event);
    let call_id = event
        .entity_id
        .clone()
        .ok_or_else(|| SyncError::Invalid("call event without a call id".into()))?;
    let kind = call::kind_of(&event.event_type, body);
    if kind == CallEventKind::Initiated {
        return Ok(Outcome::Skipped(
            "call initiated: nothing to record before its disposition".into(),
        ));
    }
    let existing = sync_repo::call_note(&deps.pool, &call_id).await?;
    let before = existing.as_ref().map(|n| n.facts.clone());
    let mut facts = before.clone().unwrap_or_else(|| CallFacts {
        call_id: call_id.clone(),
        ..Default::default()
    });
    facts.absorb(&event.event_type, body);
    if before.as_ref() == Some(&facts) {
        return Ok(Outcome::Skipped(
            "no change: the call note already says this".into(),
        ));
    }
    let (ghl_id, note_id, tags_written) = match existing {
        Some(note) => {
            deps.ghl
                .update_note(&note.ghl_contact_id, &note.ghl_note_id, &facts.note_body())
                .await?;
            (note.ghl_contact_id, note.ghl_note_id, false)
        }
        None => {
            let (ghl_id, tagged) = call_contact(deps, body, &facts, event.id).await?;
            let note_id = deps.ghl.create_note(&ghl_id, &facts.note_body()).await?;
            (ghl_id, note_id, tagged)
        }
    };
    let old_tags = before.map(|f| f.tags()).unwrap_or_default();
    let new_tags: Vec<String> = facts
        .tags()
        .into_iter()
        .filter(|t| !old_tags.contains(t))
        .collect();
    if !tags_written && !new_tags.is_empty() {
        deps.ghl.add_tags(&ghl_id, &new_tags).await?;
    }
    let note = CallNote {
        ghl_contact_id: ghl_id.clone(),
        ghl_note_id: note_id.clone(),
        facts,
    };
    sync_repo::save_call_note(&deps.pool, &call_id, &note).await?;
    Ok(Outcome::Done {
        direction: DIRECTION,
        source_id: Some(call_id),
        target_id: Some(ghl_id),
        decisions: json!({"note_id": note_id, "tags_added": new_tags}),
    })
}
