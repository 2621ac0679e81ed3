//! GHL → Aloware: contacts through `forms` (the only write API), the id learned by phone
//! lookup, GHL write-back when the merge fills GHL-side fields; ContactDelete drops the
//! mapping and touches nothing in Aloware.
use serde_json::{json, Map, Value};

use super::{marked, optout_mirror, Outcome, SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::sync_store;
use crate::domain::contact::{
    aloware_fields, changed, fingerprint, ghl_fields, merge, Contact, Side,
};
use crate::domain::json::id_str;

const DIRECTION: &str = "ghl_to_aloware";

/// Whether a webhook body carries the contact itself (marketplace events do; workflow
/// bodies are flattened and partial).
fn is_complete(p: &Value) -> bool {
    p.get("contact_id").is_none()
        && (p.get("phone").is_some() || p.get("email").is_some())
        && p.get("id").is_some()
}

pub async fn contact_event(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    let ghl_id = event
        .entity_id
        .clone()
        .ok_or_else(|| SyncError::Invalid("GHL contact event without id".into()))?;
    if event.event_type == "ContactDelete" {
        let removed = sync_store::delete_mapping_by_ghl(&deps.pool, &ghl_id).await?;
        return Ok(Outcome::Done {
            direction: DIRECTION,
            source_id: Some(ghl_id),
            target_id: None,
            decisions: json!({"mapping_removed": removed > 0, "aloware": "untouched"}),
        });
    }
    let contact_json = if is_complete(&event.payload) {
        event.payload.clone()
    } else {
        match deps.ghl.get_contact(&ghl_id).await? {
            Some(c) => c,
            None => return Ok(Outcome::Skipped("contact no longer exists in GHL".into())),
        }
    };
    // An origin marker says a middleware write touched the contact; only the values
    // decide whether this event is that write's echo (a person may have edited since).
    let origin_marker = crate::domain::origin::find(&contact_json).is_some();
    let incoming = Contact::from_ghl(&contact_json, &deps.default_country);
    if sync_store::is_echo(
        &deps.pool,
        "ghl",
        &ghl_id,
        &fingerprint(&incoming),
        deps.echo_window_seconds,
    )
    .await?
    {
        return Ok(Outcome::Skipped("echo of a middleware write".into()));
    }
    // A person's change: our earlier writes to this contact are history now.
    sync_store::forget_fingerprints(&deps.pool, "ghl", &ghl_id).await?;
    // An SMS opt-out (or a person's opt-in) made in GHL goes into the registry, and
    // the contact then shows the registry's state (tags too).
    let optout = optout_mirror::from_ghl(deps, event, &incoming).await?;
    let optout_shown = match incoming.phone.as_deref() {
        Some(phone) if phone.starts_with('+') => {
            optout_mirror::show_in_ghl(deps, phone, &ghl_id).await?
        }
        _ => false,
    };
    let Some(phone) = incoming.phone.clone() else {
        return Ok(Outcome::Skipped(
            "no phone number: Aloware keys contacts by phone".into(),
        ));
    };
    let current_json = deps.aloware.lookup_phone(&phone).await?;
    let current = current_json
        .as_ref()
        .map(|c| Contact::from_aloware(c, &deps.default_country));
    let merged = match &current {
        Some(cur) => merge(&incoming, Side::Ghl, cur, deps.policy),
        None => merge(&incoming, Side::Ghl, &Contact::default(), deps.policy),
    };
    let before = current.as_ref().map(aloware_fields).unwrap_or_default();
    let diff = changed(&before, &aloware_fields(&merged.contact));
    let mut aloware_id = current_json.as_ref().and_then(|c| id_str(c.get("id")));
    let wrote_aloware = !diff.is_empty();
    if wrote_aloware {
        let mut form: Map<String, Value> =
            diff.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        form.insert("phone_number".into(), Value::from(phone.clone()));
        // The merge already decided each field: overwrite what it chose to change.
        form.insert("force_update".into(), Value::from(current.is_some()));
        // Recorded before the write, so an early echo is recognised; Aloware contacts
        // carry no tags.
        let resulting = Contact {
            tags: Vec::new(),
            sms_dnd: None,
            ..merged.contact.clone()
        };
        if let Some(id) = &aloware_id {
            sync_store::record_fingerprint(&deps.pool, "aloware", id, &fingerprint(&resulting))
                .await?;
        }
        match deps.aloware.upsert_form(form).await {
            Ok(()) => {}
            // Created as new because the lookup found nobody, yet Aloware has the
            // contact: its values were never read, so they are not overwritten blindly.
            Err(e) if e.status == Some(409) && current.is_none() => {
                return Err(SyncError::Invalid(
                    "Aloware has a contact with this phone (forms: 409) that its phone lookup does not return; not overwriting it unread".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        if aloware_id.is_none() {
            aloware_id = deps
                .aloware
                .lookup_phone(&phone)
                .await?
                .and_then(|c| id_str(c.get("id")));
            if let Some(id) = &aloware_id {
                sync_store::record_fingerprint(&deps.pool, "aloware", id, &fingerprint(&resulting))
                    .await?;
            }
        }
    }
    // Write-back: fields the merge took from Aloware into GHL's copy.
    let write_back: Map<String, Value> =
        changed(&ghl_fields(&incoming), &ghl_fields(&merged.contact))
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    if !write_back.is_empty() {
        let resulting = Contact {
            tags: incoming.tags.clone(),
            ..merged.contact.clone()
        };
        sync_store::record_fingerprint(&deps.pool, "ghl", &ghl_id, &fingerprint(&resulting))
            .await?;
        deps.ghl
            .update_contact(
                &ghl_id,
                &marked(deps, event.id, Value::Object(write_back.clone())),
            )
            .await?;
    }
    sync_store::save_mapping(
        &deps.pool,
        aloware_id.as_deref(),
        &ghl_id,
        Some(&phone),
        incoming.email.as_deref(),
        DIRECTION,
    )
    .await?;
    Ok(Outcome::Done {
        direction: DIRECTION,
        source_id: Some(ghl_id),
        target_id: aloware_id,
        decisions: json!({"policy": deps.policy, "fields": merged.decisions, "written": wrote_aloware,
            "ghl_write_back": write_back.keys().collect::<Vec<_>>(), "origin_marker": origin_marker,
            "sms_optout_recorded": optout, "sms_optout_shown_in_ghl": optout_shown}),
    })
}
