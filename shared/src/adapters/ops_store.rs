//! Postgres side of the scheduled operations (SPEC §8): the operator's numbers, the
//! alert conditions and their once-per-hour memory, retention, and reconciliation's
//! cursor and run rows.
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use uuid::Uuid;

use super::db::DbError;
use super::event_store::table;
use crate::domain::EventKind;

/// Counts by source and status over the last `hours`, e.g. `{"aloware": {"done": 3}}`.
pub async fn counts_since(pool: &Pool, kind: EventKind, hours: i32) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let source = match kind {
        EventKind::Webhook => "source",
        EventKind::Texting => "'texting'::text",
        EventKind::Broadcast => "source",
    };
    let sql = format!(
        "SELECT {source}, status, count(*) FROM {t}
         WHERE received_at > now() - make_interval(hours => $1) GROUP BY 1, 2"
    );
    let mut out = json!({});
    for r in client.query(&sql, &[&hours]).await? {
        let (source, status, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        out[source.as_str()][status.as_str()] = json!(n);
    }
    Ok(out)
}

/// Seconds since the oldest row waiting for an attempt (pending or error) arrived.
pub async fn oldest_waiting_seconds(pool: &Pool, kind: EventKind) -> Result<Option<f64>, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT EXTRACT(EPOCH FROM now() - min(received_at))::float8 FROM {}
         WHERE status IN ('pending', 'error')",
        table(kind)
    );
    Ok(client.query_one(&sql, &[]).await?.get(0))
}

/// Each rate budget now: tokens left, capacity, refill, requests taken since created.
pub async fn budgets(pool: &Pool) -> Result<Vec<Value>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT bucket_key,
                LEAST(capacity, tokens + EXTRACT(EPOCH FROM (clock_timestamp() - updated_at))::float8 * refill_per_sec),
                capacity, refill_per_sec, taken, updated_at
             FROM rate_limit_buckets ORDER BY bucket_key",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (left, capacity): (f64, f64) = (r.get(1), r.get(2));
            json!({"bucket": r.get::<_, String>(0), "tokensLeft": (left * 10.0).round() / 10.0,
                "capacity": capacity, "refillPerSecond": r.get::<_, f64>(3),
                "burstUsedPercent": (((capacity - left.max(0.0)) / capacity) * 1000.0).round() / 10.0,
                "takenTotal": r.get::<_, i64>(4), "lastTakenAt": r.get::<_, DateTime<Utc>>(5)})
        })
        .collect())
}

/// The last reconcile run.
pub async fn last_reconcile(pool: &Pool) -> Result<Option<Value>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, started_at, finished_at, status, totals, error_message FROM reconcile_runs
             WHERE job_name = 'reconcile-contacts' ORDER BY started_at DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| {
        json!({"id": r.get::<_, Uuid>(0), "startedAt": r.get::<_, DateTime<Utc>>(1),
            "finishedAt": r.get::<_, Option<DateTime<Utc>>>(2), "status": r.get::<_, String>(3),
            "totals": r.get::<_, Option<Value>>(4), "error": r.get::<_, Option<String>>(5)})
    }))
}

// ---- alerts ----

/// Rows of `kind` that gave up (`failed`) in the last `minutes`: count and a few ids.
pub async fn recently_failed(
    pool: &Pool,
    kind: EventKind,
    minutes: i32,
) -> Result<(i64, Vec<Uuid>), DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT id FROM {} WHERE status = 'failed'
           AND COALESCE(processed_at, updated_at) > now() - make_interval(mins => $1)
         ORDER BY COALESCE(processed_at, updated_at) DESC",
        table(kind)
    );
    let ids: Vec<Uuid> = client
        .query(&sql, &[&minutes])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((ids.len() as i64, ids.into_iter().take(5).collect()))
}

/// Attempts recorded in the sync log over the last `minutes`: (errors, all).
pub async fn attempt_outcomes(pool: &Pool, minutes: i32) -> Result<(i64, i64), DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'error'), count(*) FROM sync_log
             WHERE started_at > now() - make_interval(mins => $1)",
            &[&minutes],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Attempts a provider refused for our credential in the last `minutes`.
pub async fn credential_rejections(pool: &Pool, minutes: i32) -> Result<i64, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM sync_log WHERE status = 'error'
               AND decisions->>'class' = 'credential'
               AND started_at > now() - make_interval(mins => $1)",
            &[&minutes],
        )
        .await?
        .get(0))
}

/// Numbers texted by another system while opted out, in the last `minutes`.
pub async fn recent_incidents(pool: &Pool, minutes: i32) -> Result<Vec<(String, i64)>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT phone_number, count(*) FROM compliance_incidents
             WHERE detected_at > now() - make_interval(mins => $1) GROUP BY 1 ORDER BY 1",
            &[&minutes],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Pauses that have not ended: `(log id, provider, paused at, reason)`.
pub async fn open_pauses(
    pool: &Pool,
) -> Result<Vec<(i64, String, chrono::DateTime<chrono::Utc>, String)>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT id, provider, paused_at, reason FROM provider_pause_log
             WHERE resumed_at IS NULL ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// Reconcile runs that failed in the last `minutes`.
pub async fn failed_reconciles(
    pool: &Pool,
    minutes: i32,
) -> Result<Vec<(Uuid, Option<String>)>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT id, error_message FROM reconcile_runs WHERE status = 'failed'
               AND started_at > now() - make_interval(mins => $1) ORDER BY started_at DESC",
            &[&minutes],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Claim the right to send alert `key` (none sent for it within `window_minutes`).
/// Claimed atomically: two evaluators never both send.
pub async fn claim_alert(
    pool: &Pool,
    key: &str,
    body: &Value,
    window_minutes: i32,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO alerts_sent (alert_key, last_sent_at, last_body) VALUES ($1, now(), $2)
             ON CONFLICT (alert_key) DO UPDATE SET last_sent_at = now(), last_body = EXCLUDED.last_body,
                 sent_count = alerts_sent.sent_count + 1
             WHERE alerts_sent.last_sent_at <= now() - make_interval(mins => $3)
             RETURNING alert_key",
            &[&key, body, &window_minutes],
        )
        .await?;
    Ok(row.is_some())
}

/// The send failed: let the next evaluation try again.
pub async fn release_alert(pool: &Pool, key: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE alerts_sent SET last_sent_at = '-infinity' WHERE alert_key = $1",
            &[&key],
        )
        .await?;
    Ok(())
}

// ---- retention ----

/// What one retention statement removed.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Purged {
    pub webhook_payloads: u64,
    pub texting_payloads: u64,
    pub broadcast_payloads: u64,
    pub sync_log: u64,
    pub write_fingerprints: u64,
    pub tag_snapshots: u64,
    pub reconcile_runs: u64,
}

/// Rows per statement: short transactions, no long locks on the hot tables.
const PURGE_BATCH: i64 = 5000;

/// Empty the payloads of finished events older than `days` (the row, its status and
/// its story stay). One batch; returns the rows purged.
pub async fn purge_payloads(pool: &Pool, kind: EventKind, days: i32) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let sql = format!(
        "UPDATE {t} SET payload_json = '{{}}'::jsonb, payload_purged_at = now()
         WHERE id IN (SELECT id FROM {t}
             WHERE status IN ('done', 'skipped', 'failed') AND payload_purged_at IS NULL
               AND processed_at < now() - make_interval(days => $1)
             LIMIT $2)"
    );
    Ok(client.execute(&sql, &[&days, &PURGE_BATCH]).await?)
}

/// Delete one batch of rows older than `days` from one of the purgeable tables.
/// `optout_events`, `optout_replies` and `texting_sends` are not among them: the
/// opt-out audit is kept (at least four years) and append-only.
pub async fn purge_table(pool: &Pool, target: PurgeTarget, days: i32) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let (t, key, at) = match target {
        PurgeTarget::SyncLog => ("sync_log", "id", "started_at"),
        PurgeTarget::WriteFingerprints => ("write_fingerprints", "id", "written_at"),
        PurgeTarget::TagSnapshots => ("contact_tag_snapshots", "ghl_contact_id", "updated_at"),
        PurgeTarget::ReconcileRuns => ("reconcile_runs", "id", "started_at"),
    };
    let sql = format!(
        "DELETE FROM {t} WHERE {key} IN (SELECT {key} FROM {t}
             WHERE {at} < now() - make_interval(days => $1) LIMIT $2)"
    );
    Ok(client.execute(&sql, &[&days, &PURGE_BATCH]).await?)
}

#[derive(Debug, Clone, Copy)]
pub enum PurgeTarget {
    SyncLog,
    WriteFingerprints,
    TagSnapshots,
    ReconcileRuns,
}

// ---- reconciliation ----

/// One mapping to reconcile.
#[derive(Debug, Clone)]
pub struct MappedContact {
    pub ghl_contact_id: String,
    pub aloware_contact_id: Option<String>,
    pub phone: Option<String>,
}

const RECONCILE_DIRECTION: &str = "reconcile";
const RECONCILE_ENTITY: &str = "contact";

/// Where the last run stopped (a GHL contact id), if it stopped mid-walk.
pub async fn reconcile_cursor(pool: &Pool) -> Result<Option<String>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT cursor_id FROM sync_state WHERE direction = $1 AND entity_type = $2",
            &[&RECONCILE_DIRECTION, &RECONCILE_ENTITY],
        )
        .await?
        .and_then(|r| r.get(0)))
}

/// Save the cursor (`None`: the walk completed; the next run starts over).
pub async fn save_reconcile_cursor(pool: &Pool, cursor: Option<&str>) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO sync_state (direction, entity_type, cursor_id, last_run_at, last_success_at)
             VALUES ($1, $2, $3, now(), CASE WHEN $3::text IS NULL THEN now() END)
             ON CONFLICT (direction, entity_type) DO UPDATE SET cursor_id = EXCLUDED.cursor_id,
                 last_run_at = now(),
                 last_success_at = COALESCE(EXCLUDED.last_success_at, sync_state.last_success_at)",
            &[&RECONCILE_DIRECTION, &RECONCILE_ENTITY, &cursor],
        )
        .await?;
    Ok(())
}

/// The next page of mappings after `cursor`, in GHL id order.
pub async fn mappings_after(
    pool: &Pool,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<MappedContact>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT ghl_contact_id, aloware_contact_id, phone_number FROM contact_mappings
             WHERE ghl_contact_id IS NOT NULL AND ($1::text IS NULL OR ghl_contact_id > $1)
             ORDER BY ghl_contact_id LIMIT $2",
            &[&cursor, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MappedContact {
            ghl_contact_id: r.get(0),
            aloware_contact_id: r.get(1),
            phone: r.get(2),
        })
        .collect())
}

pub async fn start_reconcile_run(pool: &Pool) -> Result<Uuid, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "INSERT INTO reconcile_runs (job_name, status) VALUES ('reconcile-contacts', 'running') RETURNING id",
            &[],
        )
        .await?
        .get(0))
}

pub async fn finish_reconcile_run(
    pool: &Pool,
    id: Uuid,
    status: &str,
    totals: &Value,
    error: Option<&str>,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE reconcile_runs SET finished_at = now(), status = $2, totals = $3, error_message = $4
             WHERE id = $1",
            &[&id, &status, totals, &error],
        )
        .await?;
    Ok(())
}
