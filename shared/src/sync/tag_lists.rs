//! GHL tags → Aloware power-dialer lists (SPEC §6). `ContactTagUpdate` carries the full
//! tag list: it is diffed against the contact's last known tags. Mapped tags added →
//! `forms` with `list_ids`; mapped tags removed → Aloware can only remove a contact from
//! every list, so remove, then re-add to the lists it still belongs to.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{Outcome, SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::sync_store;
use crate::domain::contact::{ghl_tags, Contact};
use crate::domain::json::id_str;

const DIRECTION: &str = "ghl_to_aloware";

pub async fn tag_event(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    let ghl_id = event
        .entity_id
        .clone()
        .ok_or_else(|| SyncError::Invalid("tag event without contact id".into()))?;
    let now: BTreeSet<String> = ghl_tags(event.payload.get("tags")).into_iter().collect();
    let before: BTreeSet<String> = sync_store::tag_snapshot(&deps.pool, &ghl_id)
        .await?
        .into_iter()
        .collect();
    let lists = sync_store::call_list_map(&deps.pool, &deps.list_map).await?;
    let list_of = |tags: &BTreeSet<String>| -> BTreeMap<String, String> {
        tags.iter()
            .filter_map(|t| lists.get(t).map(|l| (t.clone(), l.clone())))
            .collect()
    };
    let added = list_of(&now.difference(&before).cloned().collect());
    let removed = list_of(&before.difference(&now).cloned().collect());
    let unmapped: Vec<&String> = now
        .symmetric_difference(&before)
        .filter(|t| !lists.contains_key(*t))
        .collect();
    if added.is_empty() && removed.is_empty() {
        sync_store::save_tag_snapshot(&deps.pool, &ghl_id, &now).await?;
        return Ok(Outcome::Skipped(format!(
            "no mapped tag changed (unmapped changes: {})",
            unmapped.len()
        )));
    }
    let contact = Contact::from_ghl(&event.payload, &deps.default_country);
    let phone = match contact.phone {
        Some(p) => p,
        None => match deps.ghl.get_contact(&ghl_id).await? {
            Some(c) => Contact::from_ghl(&c, &deps.default_country)
                .phone
                .ok_or_else(|| SyncError::Invalid("GHL contact has no phone".into()))?,
            None => return Ok(Outcome::Skipped("contact no longer exists in GHL".into())),
        },
    };
    // Aloware refuses `forms` for an existing contact without `force_update` (409), and
    // with it overwrites what it is given: only the phone (the key) and the lists.
    let form = |list_ids: Vec<&String>| {
        let mut f = Map::new();
        f.insert("phone_number".into(), Value::from(phone.clone()));
        f.insert(
            "list_ids".into(),
            Value::from(list_ids.into_iter().cloned().collect::<Vec<_>>().join(",")),
        );
        f.insert("force_update".into(), Value::from(true));
        f
    };
    if !removed.is_empty() {
        remove_from_lists(deps, &ghl_id, &phone).await?;
    }
    // Every list the contact belongs to now, not only the added ones: whether `forms`
    // adds `list_ids` or replaces the contact's lists with them is undocumented, and
    // the full set is right under both readings (a retry repeats it harmlessly).
    let keep: BTreeSet<String> = list_of(&now).into_values().collect();
    if !keep.is_empty() {
        deps.aloware
            .upsert_form(form(keep.iter().collect()))
            .await?;
    }
    sync_store::save_tag_snapshot(&deps.pool, &ghl_id, &now).await?;
    Ok(Outcome::Done {
        direction: DIRECTION,
        source_id: Some(ghl_id),
        target_id: None,
        decisions: json!({"lists_added": added, "lists_removed": removed, "unmapped_tags": unmapped}),
    })
}

/// Aloware can only remove a contact from every list. The mapped Aloware id may name a
/// contact Aloware no longer has (deleted and made again under a new id): then the
/// contact is found again by phone; nobody there means nothing to remove.
async fn remove_from_lists(deps: &SyncDeps, ghl_id: &str, phone: &str) -> Result<(), SyncError> {
    let mapped = sync_store::mapping_by_ghl(&deps.pool, ghl_id)
        .await?
        .and_then(|m| m.aloware_contact_id);
    let by_phone = || async {
        Ok::<_, SyncError>(
            deps.aloware
                .lookup_phone(phone)
                .await?
                .and_then(|c| id_str(c.get("id"))),
        )
    };
    let id = match mapped {
        Some(id) => id,
        None => match by_phone().await? {
            Some(id) => id,
            None => return Ok(()),
        },
    };
    match deps.aloware.remove_from_all_lists(&id).await {
        Ok(()) => Ok(()),
        Err(e) if e.status == Some(404) => {
            let Some(current) = by_phone().await? else {
                return Ok(());
            };
            deps.aloware.remove_from_all_lists(&current).await?;
            sync_store::save_mapping(
                &deps.pool,
                Some(&current),
                ghl_id,
                Some(phone),
                None,
                DIRECTION,
            )
            .await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
