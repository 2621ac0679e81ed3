//! Aloware → GHL: contacts (merge policy, fewest calls) and calls (one note per call,
//! updated in place; call tags; DNC mirrored to GHL DND).
//!
//! One note per call under any single failure: the event takes the call's note intent
//! before writing to GHL and saves the note id the moment GHL returns it; an attempt
//! that resumes an intent first looks for the call's note in GHL (its body names the
//! call) and adopts it rather than creating a second. Recordings and summaries that
//! arrive before the call's disposition wait for it.
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::dnd::{set_channel, Want};
use super::ghl_contact::{create_once, CreateOnce, Identity};
use super::{conversations, marked, optout_mirror, Outcome, SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::sync_store::{self, CallNote, NoteIntent};
use crate::domain::call::{self, CallEventKind, CallFacts};
use crate::domain::contact::{changed, fingerprint, ghl_fields, merge, Contact, Policy, Side};
use crate::domain::json::{id_str, text};
use crate::domain::phone::to_e164;

const DIRECTION: &str = "aloware_to_ghl";

/// An intent older than this belongs to an attempt that died (it must exceed the
/// consumer's timeout: an attempt still running keeps its intent).
const NOTE_INTENT_LEASE: Duration = Duration::from_secs(300);

/// The event's body: native envelopes nest it, Zapier-style bodies are flat.
fn body_of(event: &EventRow) -> &Value {
    event.payload.get("body").unwrap_or(&event.payload)
}

/// GHL write body for a new contact: fields, tags and the Aloware custom fields
/// (written by their ids in the location).
fn new_contact_body(
    deps: &SyncDeps,
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
    let fields = &deps.custom_fields;
    let custom: Vec<Value> = [
        aloware_id.and_then(|id| fields.item("aloware_contact_id", id)),
        text(source.get("intake_source")).and_then(|v| fields.item("intake_source", v)),
        incoming
            .lead_source
            .as_deref()
            .and_then(|v| fields.item("lead_source", v)),
    ]
    .into_iter()
    .flatten()
    .collect();
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

fn has_tag(contact: &Contact, tag: &str) -> bool {
    contact.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
}

pub(crate) struct SyncedContact {
    pub ghl_id: String,
    pub decisions: Value,
    pub wrote: bool,
}

/// Bring one Aloware contact into GHL. `None` when it is the echo of our own write.
pub(crate) async fn sync_contact(
    deps: &SyncDeps,
    source: &Value,
    origin: uuid::Uuid,
) -> Result<Option<SyncedContact>, SyncError> {
    let aloware_id = id_str(source.get("id"));
    let incoming = Contact::from_aloware(source, &deps.default_country);
    if let Some(id) = &aloware_id {
        let hash = fingerprint(&incoming);
        if sync_store::is_echo(&deps.pool, "aloware", id, &hash, deps.echo_window_seconds).await? {
            return Ok(None);
        }
        sync_store::forget_fingerprints(&deps.pool, "aloware", id).await?;
    }
    let mapped = match &aloware_id {
        Some(id) => sync_store::mapping_by_aloware(&deps.pool, id)
            .await?
            .and_then(|m| m.ghl_contact_id),
        None => None,
    };
    let mapped = match mapped {
        Some(id) => Some(id),
        None => sync_store::mapping_by_phone_or_email(
            &deps.pool,
            incoming.phone.as_deref(),
            incoming.email.as_deref(),
        )
        .await?
        .and_then(|m| m.ghl_contact_id),
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
        None => create_contact(deps, &incoming, aloware_id.as_deref(), source, origin).await?,
        Some(current_json) => update_contact(deps, &incoming, &current_json, origin).await?,
    };
    sync_store::save_mapping(
        &deps.pool,
        aloware_id.as_deref(),
        &synced.ghl_id,
        incoming.phone.as_deref(),
        incoming.email.as_deref(),
        DIRECTION,
    )
    .await?;
    // The SMS opt-out registry reaches every GHL contact of the number, this one too.
    if let Some(phone) = incoming.phone.as_deref().filter(|p| p.starts_with('+')) {
        optout_mirror::show_in_ghl(deps, phone, &synced.ghl_id).await?;
    }
    Ok(Some(synced))
}

async fn create_contact(
    deps: &SyncDeps,
    incoming: &Contact,
    aloware_id: Option<&str>,
    source: &Value,
    origin: uuid::Uuid,
) -> Result<SyncedContact, SyncError> {
    if incoming.phone.is_none() && incoming.email.is_none() {
        return Err(SyncError::Invalid(
            "Aloware contact has neither phone nor email".into(),
        ));
    }
    let mut body = new_contact_body(deps, incoming, aloware_id, source, &[]);
    if deps.policy != Policy::Aloware {
        // A contact made for an opted-out number is made with its DND and tags.
        body = optout_mirror::with_registry(deps, incoming.phone.as_deref(), body).await?;
    }
    // Policy aloware skips the search: GHL's upsert (match by email / phone, overwrite)
    // is the policy, one call. It may land on an existing contact, whose tags an
    // upsert's `tags` would replace: tags go through the additive tags endpoint. After a
    // search that found nobody, a create carries everything.
    let unsearched_tags = match (deps.policy, body.as_object_mut()) {
        (Policy::Aloware, Some(fields)) => fields.remove("tags"),
        _ => None,
    };
    let contact = match deps.policy {
        Policy::Aloware => {
            deps.ghl
                .upsert_contact(&marked(deps, origin, body))
                .await?
                .1
        }
        _ => match create_once(
            deps,
            &Identity {
                phone: incoming.phone.as_deref(),
                email: incoming.email.as_deref(),
            },
            &marked(deps, origin, body),
            origin,
        )
        .await?
        {
            CreateOnce::Created(contact) => contact,
            // Created by another writer since our search (a texting event about the
            // same person, on the other queue), or by an earlier attempt: merge into it.
            CreateOnce::Existing(id) => {
                return match deps.ghl.get_contact(&id).await? {
                    Some(current) => update_contact(deps, incoming, &current, origin).await,
                    None => Err(SyncError::Waiting(
                        "GHL named a duplicate contact it cannot show yet".into(),
                    )),
                }
            }
        },
    };
    let ghl_id = Contact::ghl_id(&contact)
        .ok_or_else(|| SyncError::Invalid("GHL returned a contact without id".into()))?;
    let mut written = Contact::from_ghl(&contact, &deps.default_country);
    if let Some(tags) = unsearched_tags {
        let tags: Vec<String> = serde_json::from_value(tags).unwrap_or_default();
        written.tags.extend(tags.iter().map(|t| t.to_lowercase()));
        sync_store::record_fingerprint(&deps.pool, "ghl", &ghl_id, &fingerprint(&written)).await?;
        deps.ghl.add_tags(&ghl_id, &tags).await?;
    } else {
        sync_store::record_fingerprint(&deps.pool, "ghl", &ghl_id, &fingerprint(&written)).await?;
    }
    Ok(SyncedContact {
        ghl_id,
        decisions: json!({"created": true}),
        wrote: true,
    })
}

async fn update_contact(
    deps: &SyncDeps,
    incoming: &Contact,
    current_json: &Value,
    origin: uuid::Uuid,
) -> Result<SyncedContact, SyncError> {
    let ghl_id = Contact::ghl_id(current_json)
        .ok_or_else(|| SyncError::Invalid("GHL contact without id".into()))?;
    let current = Contact::from_ghl(current_json, &deps.default_country);
    let merged = merge(incoming, Side::Aloware, &current, deps.policy);
    let diff: Map<String, Value> = changed(&ghl_fields(&current), &ghl_fields(&merged.contact))
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut missing_tags: Vec<String> = Vec::new();
    // Call DND goes through the contact's DND lock (below), never in this PUT.
    let call_dnd = merged.contact.dnc == Some(true) && current.dnc != Some(true);
    if merged.contact.dnc == Some(true) && !has_tag(&current, "dnc") {
        missing_tags.push("DNC".into());
    }
    let wrote = !diff.is_empty() || !missing_tags.is_empty() || call_dnd;
    if wrote {
        // The state GHL will report once written: recorded first, so the echo webhook
        // is recognised however soon it arrives.
        let mut resulting = merged.contact.clone();
        resulting.tags = current.tags.clone();
        resulting
            .tags
            .extend(missing_tags.iter().map(|t| t.to_lowercase()));
        sync_store::record_fingerprint(&deps.pool, "ghl", &ghl_id, &fingerprint(&resulting))
            .await?;
    }
    if !diff.is_empty() {
        deps.ghl
            .update_contact(&ghl_id, &marked(deps, origin, Value::Object(diff)))
            .await?;
    }
    if !missing_tags.is_empty() {
        deps.ghl.add_tags(&ghl_id, &missing_tags).await?;
    }
    if call_dnd {
        set_channel(deps, &ghl_id, "Call", Want::On, |after| {
            after
                .tags
                .extend(missing_tags.iter().map(|t| t.to_lowercase()));
        })
        .await?;
    }
    Ok(SyncedContact {
        ghl_id,
        decisions: json!({"policy": deps.policy, "fields": merged.decisions}),
        wrote,
    })
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

/// The GHL contact a call belongs to: mapping (by Aloware id, then by the mapped phone
/// and email), else GHL's duplicate search, else one create that also carries the call
/// tags. Returns the id and whether the call tags were written with it.
async fn call_contact(
    deps: &SyncDeps,
    body: &Value,
    facts: &CallFacts,
    origin: uuid::Uuid,
) -> Result<(String, bool), SyncError> {
    let contact = body.get("contact").filter(|c| c.is_object());
    let aloware_id =
        id_str(body.get("contact_id")).or_else(|| contact.and_then(|c| id_str(c.get("id"))));
    let mut incoming = contact
        .map(|c| Contact::from_aloware(c, &deps.default_country))
        .unwrap_or_default();
    if incoming.phone.is_none() {
        incoming.phone =
            text(body.get("lead_number")).and_then(|p| to_e164(p, &deps.default_country));
    }
    if let Some(id) = &aloware_id {
        if let Some(ghl_id) = sync_store::mapping_by_aloware(&deps.pool, id)
            .await?
            .and_then(|m| m.ghl_contact_id)
        {
            return Ok((ghl_id, false));
        }
    }
    if let Some(ghl_id) = sync_store::mapping_by_phone_or_email(
        &deps.pool,
        incoming.phone.as_deref(),
        incoming.email.as_deref(),
    )
    .await?
    .and_then(|m| m.ghl_contact_id)
    {
        return Ok((ghl_id, false));
    }
    if incoming.phone.is_none() && incoming.email.is_none() {
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
            let body = optout_mirror::with_registry(
                deps,
                incoming.phone.as_deref(),
                new_contact_body(
                    deps,
                    &incoming,
                    aloware_id.as_deref(),
                    &source,
                    &facts.tags(),
                ),
            )
            .await?;
            let who = Identity {
                phone: incoming.phone.as_deref(),
                email: incoming.email.as_deref(),
            };
            match create_once(deps, &who, &marked(deps, origin, body), origin).await? {
                CreateOnce::Created(created) => {
                    let id = Contact::ghl_id(&created).ok_or_else(|| {
                        SyncError::Invalid("GHL returned a contact without id".into())
                    })?;
                    (id, true)
                }
                CreateOnce::Existing(id) => (id, false),
            }
        }
    };
    sync_store::save_mapping(
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
    let existing = sync_store::call_note(&deps.pool, &call_id).await?;
    match existing.filter(|n| n.written().is_some()) {
        Some(note) => update_call_note(deps, event, body, &call_id, note).await,
        None if kind == CallEventKind::Disposition => {
            create_call_note(deps, event, body, &call_id).await
        }
        None => Err(SyncError::Waiting(
            "the call's disposition has not been applied yet".into(),
        )),
    }
}

/// The call's note exists: rewrite it when this event adds to it, then add the call
/// tags still missing and mirror DNC.
async fn update_call_note(
    deps: &SyncDeps,
    event: &EventRow,
    body: &Value,
    call_id: &str,
    note: CallNote,
) -> Result<Outcome, SyncError> {
    let (ghl_id, note_id) = note
        .written()
        .map(|(c, n)| (c.to_string(), n.to_string()))
        .expect("a written note");
    let mut facts = note.facts.clone();
    facts.absorb(&event.event_type, body);
    let rewrote = facts != note.facts;
    if rewrote {
        deps.ghl
            .update_note(&ghl_id, &note_id, &facts.note_body())
            .await?;
        sync_store::save_note_written(&deps.pool, call_id, &ghl_id, &note_id, &facts).await?;
    }
    let tags_added = add_missing_tags(deps, call_id, &ghl_id, &facts, &note.tags_written).await?;
    let dnc = mirror_dnc(deps, body, &ghl_id).await?;
    let conversation = conversations::record_call(deps, event, body, &facts, &ghl_id).await?;
    if !rewrote && tags_added.is_empty() && !dnc && !conversation.wrote() {
        return Ok(Outcome::Skipped(
            "no change: the call note already says this".into(),
        ));
    }
    Ok(Outcome::Done {
        direction: DIRECTION,
        source_id: Some(call_id.to_string()),
        target_id: Some(ghl_id),
        decisions: json!({"note_id": note_id, "note_rewritten": rewrote, "tags_added": tags_added,
            "dnc_applied": dnc, "conversation": conversation}),
    })
}

/// No note yet: take the call's note intent, find the contact, create the note (or
/// adopt the one an earlier attempt created), then tags and DNC.
async fn create_call_note(
    deps: &SyncDeps,
    event: &EventRow,
    body: &Value,
    call_id: &str,
) -> Result<Outcome, SyncError> {
    let (resumed, note) =
        match sync_store::take_note_intent(&deps.pool, call_id, event.id, NOTE_INTENT_LEASE).await?
        {
            NoteIntent::Written(note) => {
                return update_call_note(deps, event, body, call_id, note).await
            }
            NoteIntent::Held => {
                return Err(SyncError::Waiting(
                    "another event is writing this call's note".into(),
                ))
            }
            NoteIntent::Mine { resumed, note } => (resumed, note),
        };
    let mut facts = if note.facts.call_id.is_empty() {
        CallFacts {
            call_id: call_id.to_string(),
            ..Default::default()
        }
    } else {
        note.facts.clone()
    };
    facts.absorb(&event.event_type, body);
    let mut tags_written = note.tags_written.clone();
    let ghl_id = match note.ghl_contact_id.clone() {
        Some(id) => id,
        None => {
            let (id, tagged) = call_contact(deps, body, &facts, event.id).await?;
            sync_store::save_note_contact(&deps.pool, call_id, &id).await?;
            let lead =
                text(body.get("lead_number")).and_then(|p| to_e164(p, &deps.default_country));
            if let Some(phone) = lead {
                optout_mirror::show_in_ghl(deps, &phone, &id).await?;
            }
            if tagged {
                tags_written = facts.tags();
                sync_store::save_note_tags(&deps.pool, call_id, &tags_written).await?;
            }
            id
        }
    };
    // An earlier attempt may have created the note and died before recording its id.
    let adopted = if resumed || event.attempts > 1 {
        find_call_note(deps, &ghl_id, call_id).await?
    } else {
        None
    };
    let note_id = match &adopted {
        Some(id) => {
            deps.ghl
                .update_note(&ghl_id, id, &facts.note_body())
                .await?;
            id.clone()
        }
        None => deps.ghl.create_note(&ghl_id, &facts.note_body()).await?,
    };
    sync_store::save_note_written(&deps.pool, call_id, &ghl_id, &note_id, &facts).await?;
    let tags_added = add_missing_tags(deps, call_id, &ghl_id, &facts, &tags_written).await?;
    let dnc = mirror_dnc(deps, body, &ghl_id).await?;
    let conversation = conversations::record_call(deps, event, body, &facts, &ghl_id).await?;
    Ok(Outcome::Done {
        direction: DIRECTION,
        source_id: Some(call_id.to_string()),
        target_id: Some(ghl_id),
        decisions: json!({"note_id": note_id, "note_adopted": adopted.is_some(),
            "tags_added": tags_added, "dnc_applied": dnc, "conversation": conversation}),
    })
}

/// The id of the call's note on the contact, when one exists.
async fn find_call_note(
    deps: &SyncDeps,
    ghl_id: &str,
    call_id: &str,
) -> Result<Option<String>, SyncError> {
    let notes = deps.ghl.list_notes(ghl_id).await?;
    Ok(notes
        .iter()
        .find(|n| {
            n.get("body")
                .and_then(Value::as_str)
                .is_some_and(|b| call::is_note_of(b, call_id))
        })
        .and_then(|n| id_str(n.get("id"))))
}

/// Add the call tags the contact does not have yet (tag adds are additive and
/// idempotent in GHL); returns what was added.
async fn add_missing_tags(
    deps: &SyncDeps,
    call_id: &str,
    ghl_id: &str,
    facts: &CallFacts,
    written: &[String],
) -> Result<Vec<String>, SyncError> {
    let missing: Vec<String> = facts
        .tags()
        .into_iter()
        .filter(|t| !written.iter().any(|w| w.eq_ignore_ascii_case(t)))
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    deps.ghl.add_tags(ghl_id, &missing).await?;
    let mut all = written.to_vec();
    all.extend(missing.iter().cloned());
    sync_store::save_note_tags(&deps.pool, call_id, &all).await?;
    Ok(missing)
}

/// A call for a contact marked do-not-call in Aloware (SPEC §6): GHL DND (Call) on —
/// under the contact's DND lock, every other channel kept — and the `DNC` tag. Returns
/// whether it wrote.
async fn mirror_dnc(deps: &SyncDeps, body: &Value, ghl_id: &str) -> Result<bool, SyncError> {
    if !call::says_dnc(body) {
        return Ok(false);
    }
    let mut tagged = true;
    let set = set_channel(deps, ghl_id, "Call", Want::On, |after| {
        tagged = has_tag(after, "dnc");
        if !tagged {
            after.tags.push("dnc".into());
        }
    })
    .await?;
    let Some((_, dnd_written)) = set else {
        return Ok(false);
    };
    if !tagged {
        deps.ghl.add_tags(ghl_id, &["DNC".to_string()]).await?;
    }
    Ok(dnd_written || !tagged)
}
