//! A GHL contact's `dndSettings`, written by one writer at a time (SPEC §7). GHL may
//! replace the whole object on a write, so every writer reads it, changes its channel
//! and writes it all back; two consumers doing that at once (an SMS opt-out on the
//! texting queue, a call's DNC on the webhook queue) would erase one another's channel.
//! Each such read-modify-write holds a Postgres advisory lock on the contact for its
//! duration — across every consumer and queue — and `permanent` is never downgraded.
use serde_json::{json, Map, Value};

use super::{SyncDeps, SyncError};
use crate::adapters::db::{self, DbError};
use crate::adapters::sync_store;
use crate::domain::contact::{fingerprint, Contact};

/// The contact's DND lock, held by an open transaction on one connection. Dropped
/// unreleased (an error, a panic), the connection is discarded: the lock goes with it.
pub struct DndLock {
    client: Option<deadpool_postgres::Client>,
}

impl DndLock {
    pub async fn take(deps: &SyncDeps, ghl_id: &str) -> Result<DndLock, SyncError> {
        let client = deps.pool.get().await.map_err(DbError::from)?;
        let lock = DndLock {
            client: Some(client),
        };
        let c = lock.client.as_ref().expect("held");
        c.batch_execute("BEGIN").await.map_err(DbError::from)?;
        c.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('ghl-dnd:' || $1, 0))",
            &[&ghl_id],
        )
        .await
        .map_err(DbError::from)?;
        Ok(lock)
    }

    pub async fn release(mut self) -> Result<(), SyncError> {
        if let Some(c) = self.client.take() {
            if let Err(e) = c.batch_execute("COMMIT").await {
                db::discard(c);
                return Err(DbError::from(e).into());
            }
        }
        Ok(())
    }
}

impl Drop for DndLock {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            db::discard(c);
        }
    }
}

/// One channel's wanted DND state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    On,
    Off,
}

/// `settings` with `channel` set as wanted: `None` when nothing changes. On leaves an
/// `active` or `permanent` status as it is; off never touches `permanent`.
pub fn with_channel(settings: &Map<String, Value>, channel: &str, want: Want) -> Option<Value> {
    let status = settings
        .get(channel)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    let next = match (want, status) {
        (Want::On, Some("active" | "permanent")) => return None,
        (Want::Off, Some("inactive") | None) => return None,
        (Want::Off, Some("permanent")) => return None,
        (Want::On, _) => "active",
        (Want::Off, _) => "inactive",
    };
    let mut all = settings.clone();
    all.insert(channel.to_string(), json!({"status": next}));
    Some(Value::Object(all))
}

/// Set `channel` of contact `ghl_id` as wanted, under its lock: read the contact, and
/// write the whole `dndSettings` back only when it changes. `extra_tags` are added to
/// the fingerprint of what GHL will then report (the caller adds them). Returns the
/// contact as read and whether it wrote.
pub async fn set_channel(
    deps: &SyncDeps,
    ghl_id: &str,
    channel: &str,
    want: Want,
    resulting: impl FnOnce(&mut Contact),
) -> Result<Option<(Value, bool)>, SyncError> {
    let lock = DndLock::take(deps, ghl_id).await?;
    let Some(current) = deps.ghl.get_contact(ghl_id).await? else {
        lock.release().await?;
        return Ok(None);
    };
    let settings = current
        .get("dndSettings")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let next = with_channel(&settings, channel, want);
    let mut after = Contact::from_ghl(&current, &deps.default_country);
    if let Some(next) = &next {
        let mut merged = current.clone();
        merged["dndSettings"] = next.clone();
        after = Contact::from_ghl(&merged, &deps.default_country);
    }
    resulting(&mut after);
    // What GHL reports after our write, recorded first: its webhook is our echo.
    sync_store::record_fingerprint(&deps.pool, "ghl", ghl_id, &fingerprint(&after)).await?;
    if let Some(next) = &next {
        deps.ghl
            .update_contact(ghl_id, &json!({"dndSettings": next}))
            .await?;
    }
    lock.release().await?;
    Ok(Some((current, next.is_some())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_is_never_downgraded_and_other_channels_stay() {
        let settings = |v: Value| v.as_object().unwrap().clone();
        let s = settings(json!({"Call": {"status": "active"}, "SMS": {"status": "permanent"}}));
        assert_eq!(with_channel(&s, "SMS", Want::On), None);
        assert_eq!(with_channel(&s, "SMS", Want::Off), None, "permanent stays");
        let s = settings(json!({"Call": {"status": "active"}}));
        assert_eq!(
            with_channel(&s, "SMS", Want::On),
            Some(json!({"Call": {"status": "active"}, "SMS": {"status": "active"}}))
        );
        let s = settings(json!({"SMS": {"status": "active"}, "Email": {"status": "active"}}));
        assert_eq!(
            with_channel(&s, "SMS", Want::Off),
            Some(json!({"SMS": {"status": "inactive"}, "Email": {"status": "active"}}))
        );
    }
}
