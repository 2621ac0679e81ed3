//! Manual sync jobs (`POST /api/sync/contacts`, `POST /api/sync/lists`), applied by
//! `process-webhook-events` like any event: the same claim, retries, relay and admin
//! views. Contacts reuse the Aloware → GHL contact sync; lists reuse the tag → list
//! rules one member at a time, so a list is never cleared and refilled while agents
//! dial from it.
use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{aloware_to_ghl, tag_lists, Outcome, SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::sync_store;
use crate::domain::contact::ghl_tags;
use crate::domain::json::id_str;

/// GHL search page size for a list rebuild.
const PAGE: u32 = 100;

/// `SyncContact`: the latest stored Aloware data of the contact (by id), else Aloware's
/// phone lookup, synced into GHL under the contact policy.
pub async fn contact_job(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    let aloware_id = event
        .payload
        .get("alowareContactId")
        .and_then(Value::as_str);
    let phone = event.payload.get("phone").and_then(Value::as_str);
    let mut source: Option<Value> = None;
    if let Some(id) = aloware_id {
        source = sync_store::latest_aloware_contact(&deps.pool, id).await?;
    }
    let lookup_phone = match (&source, phone, aloware_id) {
        (Some(_), _, _) => None,
        (None, Some(p), _) => Some(p.to_string()),
        (None, None, Some(id)) => sync_store::mapped_phone_of_aloware(&deps.pool, id).await?,
        (None, None, None) => None,
    };
    if let Some(p) = &lookup_phone {
        source = deps.aloware.lookup_phone(p).await?;
    }
    let Some(source) = source else {
        return Err(SyncError::Invalid(
            "Aloware has no such contact (no stored data, no mapped phone, or the lookup found nobody)".into(),
        ));
    };
    match aloware_to_ghl::sync_contact(deps, &source, event.id).await? {
        None => Ok(Outcome::Skipped(
            "GHL already has this contact as the middleware last wrote it".into(),
        )),
        Some(s) => {
            let mut decisions = s.decisions;
            decisions["written"] = json!(s.wrote);
            decisions["manual"] = json!(true);
            Ok(Outcome::Done {
                direction: "aloware_to_ghl",
                source_id: id_str(source.get("id")),
                target_id: Some(s.ghl_id),
                decisions,
            })
        }
    }
}

/// `SyncList`: GHL's contacts with the tag (every page) against the contacts we last
/// saw with it; each contact that joined or left goes through the tag → list rules
/// (Aloware has no API to read a list's members, so our snapshots are the other side).
pub async fn list_job(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    let tag = event
        .entity_id
        .clone()
        .ok_or_else(|| SyncError::Invalid("list sync without a tag".into()))?
        .to_lowercase();
    let lists = sync_store::call_list_map(&deps.pool, &deps.list_map).await?;
    let Some(list_id) = lists.get(&tag).cloned() else {
        return Err(SyncError::Invalid(format!(
            "tag {tag:?} is not mapped to an Aloware list"
        )));
    };
    let mut in_ghl: Vec<Value> = Vec::new();
    let mut page = 1;
    loop {
        let (contacts, total) = deps.ghl.search_by_tag(&tag, page, PAGE).await?;
        let n = contacts.len();
        in_ghl.extend(contacts);
        if n < PAGE as usize || in_ghl.len() as u64 >= total {
            break;
        }
        page += 1;
    }
    // The search matches tags by "contains": keep exact (case-insensitive) holders.
    in_ghl.retain(|c| ghl_tags(c.get("tags")).contains(&tag));
    let ghl_ids: BTreeSet<String> = in_ghl.iter().filter_map(|c| id_str(c.get("id"))).collect();
    let known: BTreeSet<String> = sync_store::snapshot_holders(&deps.pool, &tag)
        .await?
        .into_iter()
        .collect();
    let mut joined = 0u32;
    let mut left = 0u32;
    let mut gone = 0u32;
    for contact in in_ghl
        .iter()
        .filter(|c| id_str(c.get("id")).is_some_and(|id| !known.contains(&id)))
    {
        member_changed(deps, event, contact.clone()).await?;
        joined += 1;
    }
    for id in known.difference(&ghl_ids) {
        match deps.ghl.get_contact(id).await? {
            Some(current) => {
                member_changed(deps, event, current).await?;
                left += 1;
            }
            // Deleted in GHL: its snapshot stays (nothing to diff against); reported.
            None => gone += 1,
        }
    }
    Ok(Outcome::Done {
        direction: "ghl_to_aloware",
        source_id: Some(tag.clone()),
        target_id: Some(list_id),
        decisions: json!({"manual": true, "membersInGhl": ghl_ids.len(), "joined": joined,
            "left": left, "deletedInGhl": gone, "cleared": false}),
    })
}

/// One member's tags through the tag → list rules, as a `ContactTagUpdate` would.
async fn member_changed(deps: &SyncDeps, job: &EventRow, contact: Value) -> Result<(), SyncError> {
    let member = EventRow {
        entity_id: id_str(contact.get("id")),
        entity_type: "tag".into(),
        payload: contact,
        newer_applied_at: None,
        ..job.clone()
    };
    tag_lists::tag_event(deps, &member).await.map(|_| ())
}
