//! `reconcile-contacts` (EventBridge, hourly): walks `contact_mappings` in GHL id order
//! from a cursor in `sync_state`, reads both sides, merges them under the contact
//! policy (the same rules as the webhook sync) and writes only the side that differs —
//! nothing at all for a contact in sync (two reads: GHL by id, Aloware by phone). A
//! contact missing on one side is reported, never recreated. Stops before the
//! function's time limit and resumes next run; each run is a `reconcile_runs` row.
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::{marked, SyncDeps, SyncError};
use crate::adapters::db::DbError;
use crate::adapters::ops_store::{self, MappedContact};
use crate::adapters::rate_budget::ATTEMPT_DEADLINE;
use crate::adapters::sync_store;
use crate::domain::contact::{
    aloware_fields, changed, fingerprint, ghl_fields, merge, Contact, Side,
};
use crate::domain::json::id_str;
use crate::domain::phone::to_e164;
use crate::domain::retry::FailureClass;

/// Time kept back at the end of a run: the last contact's writes and the run's row.
const RESERVE: Duration = Duration::from_secs(10);
/// Missing contacts listed by id in a run's totals (the counts are complete).
const LISTED: usize = 50;

/// What one contact's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    InSync,
    Repaired {
        ghl: bool,
        aloware: bool,
    },
    MissingGhl,
    MissingAloware,
    /// No phone on either record: Aloware keys contacts by phone.
    NoPhone,
}

/// The totals of SPEC §8, plus the ids behind the missing counts.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub checked: u64,
    pub drift: u64,
    pub repaired: u64,
    pub missing_ghl: u64,
    pub missing_aloware: u64,
    pub errors: u64,
    pub no_phone: u64,
    pub missing: Vec<Value>,
    /// The walk reached the end of the mappings (the next run starts over).
    pub completed_walk: bool,
    pub stopped_for_time: bool,
}

pub struct Reconciler {
    pub deps: SyncDeps,
    /// Mappings read per page (`RECONCILE_PAGE_SIZE`).
    pub page_size: i64,
}

/// Compare one mapped contact's two sides and write the side that differs.
pub async fn reconcile_one(
    deps: &SyncDeps,
    mapped: &MappedContact,
    run: Uuid,
) -> Result<Checked, SyncError> {
    let Some(ghl_json) = deps.ghl.get_contact(&mapped.ghl_contact_id).await? else {
        return Ok(Checked::MissingGhl);
    };
    let ghl = Contact::from_ghl(&ghl_json, &deps.default_country);
    let phone = ghl.phone.clone().or_else(|| {
        mapped
            .phone
            .as_deref()
            .and_then(|p| to_e164(p, &deps.default_country))
    });
    let Some(phone) = phone else {
        return Ok(Checked::NoPhone);
    };
    // The SMS opt-out registry first: a contact missing an opted-out number's DND.
    let dnd_repaired =
        super::optout_mirror::repair(deps, &phone, &mapped.ghl_contact_id, &ghl).await?;
    let Some(aloware_json) = deps.aloware.lookup_phone(&phone).await? else {
        return Ok(Checked::MissingAloware);
    };
    let aloware = Contact::from_aloware(&aloware_json, &deps.default_country);
    let aloware_id = id_str(aloware_json.get("id"));
    let merged = merge(&ghl, Side::Ghl, &aloware, deps.policy);
    let to_aloware = changed(&aloware_fields(&aloware), &aloware_fields(&merged.contact));
    let to_ghl: Map<String, Value> = changed(&ghl_fields(&ghl), &ghl_fields(&merged.contact))
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let wrote_aloware = !to_aloware.is_empty();
    if wrote_aloware {
        let resulting = Contact {
            tags: Vec::new(),
            sms_dnd: None,
            ..merged.contact.clone()
        };
        if let Some(id) = &aloware_id {
            // Recorded before the write: Aloware's echo webhook is then recognised.
            sync_store::record_fingerprint(&deps.pool, "aloware", id, &fingerprint(&resulting))
                .await?;
        }
        let mut form: Map<String, Value> = to_aloware
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        form.insert("phone_number".into(), Value::from(phone.clone()));
        form.insert("force_update".into(), Value::from(true));
        deps.aloware.upsert_form(form).await?;
    }
    let wrote_ghl = !to_ghl.is_empty() || dnd_repaired;
    if !to_ghl.is_empty() {
        let resulting = Contact {
            tags: ghl.tags.clone(),
            ..merged.contact.clone()
        };
        sync_store::record_fingerprint(
            &deps.pool,
            "ghl",
            &mapped.ghl_contact_id,
            &fingerprint(&resulting),
        )
        .await?;
        deps.ghl
            .update_contact(
                &mapped.ghl_contact_id,
                &marked(deps, run, Value::Object(to_ghl)),
            )
            .await?;
    }
    if aloware_id.is_some() && aloware_id != mapped.aloware_contact_id {
        sync_store::save_mapping(
            &deps.pool,
            aloware_id.as_deref(),
            &mapped.ghl_contact_id,
            Some(&phone),
            merged.contact.email.as_deref(),
            "bidirectional",
        )
        .await?;
    }
    Ok(if wrote_ghl || wrote_aloware {
        Checked::Repaired {
            ghl: wrote_ghl,
            aloware: wrote_aloware,
        }
    } else {
        Checked::InSync
    })
}

impl Reconciler {
    pub fn from_settings(s: &crate::lambda::Settings) -> Result<Self, crate::lambda::ConfigError> {
        Ok(Reconciler {
            deps: SyncDeps::from_settings(s)?,
            page_size: s.parse_or("RECONCILE_PAGE_SIZE", 100i64)?.max(1),
        })
    }

    /// One run, until the walk completes or `deadline` is near.
    pub async fn run(&self, deadline: Instant) -> Result<(Uuid, String, Totals), DbError> {
        let pool = &self.deps.pool;
        let run = ops_store::start_reconcile_run(pool).await?;
        let (status, totals, error) = match self.walk(run, deadline).await {
            Ok((totals, None)) => {
                let status = if totals.completed_walk {
                    "completed"
                } else {
                    "partial"
                };
                (status, totals, None)
            }
            Ok((totals, Some(fatal))) => ("failed", totals, Some(fatal)),
            Err(e) => ("failed", Totals::default(), Some(format!("store: {e}"))),
        };
        let totals_json = serde_json::to_value(&totals).unwrap_or_default();
        ops_store::finish_reconcile_run(pool, run, status, &totals_json, error.as_deref()).await?;
        tracing::info!(run = %run, status, totals = %totals_json, "reconcile run");
        Ok((run, status.to_string(), totals))
    }

    /// The walk; `Some(reason)` when a failure ended it early (a refused credential, a
    /// provider that keeps throttling, the database).
    async fn walk(
        &self,
        run: Uuid,
        deadline: Instant,
    ) -> Result<(Totals, Option<String>), DbError> {
        let pool = &self.deps.pool;
        let mut totals = Totals::default();
        let mut cursor = ops_store::reconcile_cursor(pool).await?;
        let stop_at = deadline.checked_sub(RESERVE).unwrap_or(deadline);
        loop {
            if Instant::now() >= stop_at {
                totals.stopped_for_time = true;
                break;
            }
            let page = ops_store::mappings_after(pool, cursor.as_deref(), self.page_size).await?;
            let last_page = (page.len() as i64) < self.page_size;
            for mapped in &page {
                if Instant::now() >= stop_at {
                    totals.stopped_for_time = true;
                    ops_store::save_reconcile_cursor(pool, cursor.as_deref()).await?;
                    return Ok((totals, None));
                }
                let checked = ATTEMPT_DEADLINE
                    .scope(stop_at, Box::pin(reconcile_one(&self.deps, mapped, run)))
                    .await;
                match checked {
                    Ok(c) => count(&mut totals, mapped, c),
                    Err(e) => {
                        totals.errors += 1;
                        tracing::warn!(ghl_contact_id = %mapped.ghl_contact_id, error = %e, "reconcile: contact not checked");
                        if let Some(fatal) = ends_the_run(&e) {
                            ops_store::save_reconcile_cursor(pool, cursor.as_deref()).await?;
                            return Ok((totals, Some(fatal)));
                        }
                    }
                }
                cursor = Some(mapped.ghl_contact_id.clone());
            }
            if last_page {
                cursor = None;
                totals.completed_walk = true;
                break;
            }
        }
        ops_store::save_reconcile_cursor(pool, cursor.as_deref()).await?;
        Ok((totals, None))
    }
}

/// Failures that would fail every following contact too: stop and report.
fn ends_the_run(e: &SyncError) -> Option<String> {
    match e.class() {
        FailureClass::Credential => Some(format!("provider credential refused: {e}")),
        FailureClass::Unavailable { .. } => Some(format!("database unavailable: {e}")),
        _ => None,
    }
}

fn count(totals: &mut Totals, mapped: &MappedContact, checked: Checked) {
    totals.checked += 1;
    let mut missing = |side: &str| {
        if totals.missing.len() < LISTED {
            totals
                .missing
                .push(json!({"ghlContactId": mapped.ghl_contact_id,
                "alowareContactId": mapped.aloware_contact_id, "missingIn": side}));
        }
    };
    match checked {
        Checked::InSync => {}
        Checked::Repaired { .. } => {
            totals.drift += 1;
            totals.repaired += 1;
        }
        Checked::MissingGhl => {
            missing("ghl");
            totals.missing_ghl += 1;
        }
        Checked::MissingAloware => {
            missing("aloware");
            totals.missing_aloware += 1;
        }
        Checked::NoPhone => totals.no_phone += 1,
    }
}
