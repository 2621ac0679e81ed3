//! Postgres side of the sync engine: claiming and finishing events, mappings, call
//! notes, write fingerprints and the sync log.
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::call::CallFacts;

#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct RepoError(pub String);

fn err(e: impl std::fmt::Display) -> RepoError {
    RepoError(e.to_string())
}

/// A claimed webhook event.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: Uuid,
    pub source: String,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub payload: Value,
    pub attempts: i32,
}

/// A processing claim older than this is presumed abandoned (crashed consumer).
const CLAIM_LEASE: &str = "5 minutes";

/// `pending|error → processing`, atomically; `None` when the row is finished, being
/// processed elsewhere, or unknown.
pub async fn claim(pool: &Pool, id: Uuid) -> Result<Option<EventRow>, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let sql = format!(
        "UPDATE webhook_events SET status = 'processing', attempts = attempts + 1, updated_at = now()
         WHERE id = $1 AND (status IN ('pending', 'error')
               OR (status = 'processing' AND updated_at < now() - interval '{CLAIM_LEASE}'))
         RETURNING id, source, event_type, entity_type, entity_id, payload_json, attempts"
    );
    let row = client.query_opt(&sql, &[&id]).await.map_err(err)?;
    Ok(row.map(|r| EventRow {
        id: r.get(0),
        source: r.get(1),
        event_type: r.get(2),
        entity_type: r.get(3),
        entity_id: r.get(4),
        payload: r.get(5),
        attempts: r.get(6),
    }))
}

pub async fn status(pool: &Pool, id: Uuid) -> Result<Option<String>, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let row = client
        .query_opt("SELECT status FROM webhook_events WHERE id = $1", &[&id])
        .await
        .map_err(err)?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn is_quarantined(pool: &Pool, id: Uuid) -> Result<bool, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let row = client
        .query_opt("SELECT 1 FROM quarantine_events WHERE event_id = $1 AND event_source = 'webhook' LIMIT 1", &[&id])
        .await
        .map_err(err)?;
    Ok(row.is_some())
}

/// Final (or retry-pending) state of a claimed event.
pub enum Finish<'a> {
    Done,
    Skipped(&'a str),
    Error(&'a str),
}

pub async fn finish(pool: &Pool, id: Uuid, how: Finish<'_>) -> Result<(), RepoError> {
    let client = pool.get().await.map_err(err)?;
    let (status, skip, error): (&str, Option<&str>, Option<&str>) = match how {
        Finish::Done => ("done", None, None),
        Finish::Skipped(reason) => ("skipped", Some(reason), None),
        Finish::Error(message) => ("error", None, Some(message)),
    };
    client
        .execute(
            "UPDATE webhook_events SET status = $2, skip_reason = $3, error_message = $4, updated_at = now(),
                 processed_at = CASE WHEN $2 IN ('done', 'skipped') THEN now() ELSE processed_at END
             WHERE id = $1",
            &[&id, &status, &skip, &error],
        )
        .await
        .map_err(err)?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub aloware_contact_id: Option<String>,
    pub ghl_contact_id: Option<String>,
}

pub async fn mapping_by_aloware(
    pool: &Pool,
    aloware_id: &str,
) -> Result<Option<Mapping>, RepoError> {
    mapping_where(pool, "aloware_contact_id", aloware_id).await
}

pub async fn mapping_by_ghl(pool: &Pool, ghl_id: &str) -> Result<Option<Mapping>, RepoError> {
    mapping_where(pool, "ghl_contact_id", ghl_id).await
}

async fn mapping_where(
    pool: &Pool,
    column: &str,
    value: &str,
) -> Result<Option<Mapping>, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let sql = format!(
        "SELECT aloware_contact_id, ghl_contact_id FROM contact_mappings WHERE {column} = $1"
    );
    let row = client.query_opt(&sql, &[&value]).await.map_err(err)?;
    Ok(row.map(|r| Mapping {
        aloware_contact_id: r.get(0),
        ghl_contact_id: r.get(1),
    }))
}

/// Link an Aloware and a GHL contact. Either id may already be linked elsewhere: the
/// newest observation wins and stale links are cleared, so both columns stay unique.
pub async fn save_mapping(
    pool: &Pool,
    aloware_id: Option<&str>,
    ghl_id: &str,
    phone: Option<&str>,
    email: Option<&str>,
    direction: &str,
) -> Result<(), RepoError> {
    let mut client = pool.get().await.map_err(err)?;
    let tx = client.transaction().await.map_err(err)?;
    if let Some(aloware_id) = aloware_id {
        tx.execute(
            "UPDATE contact_mappings SET aloware_contact_id = NULL, updated_at = now() WHERE aloware_contact_id = $1 AND ghl_contact_id <> $2",
            &[&aloware_id, &ghl_id],
        )
        .await
        .map_err(err)?;
    }
    tx.execute(
        "INSERT INTO contact_mappings (aloware_contact_id, ghl_contact_id, phone_number, email, sync_direction)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (ghl_contact_id) DO UPDATE SET
             aloware_contact_id = COALESCE(EXCLUDED.aloware_contact_id, contact_mappings.aloware_contact_id),
             phone_number = COALESCE(EXCLUDED.phone_number, contact_mappings.phone_number),
             email = COALESCE(EXCLUDED.email, contact_mappings.email),
             last_synced_at = now(), updated_at = now()",
        &[&aloware_id, &ghl_id, &phone, &email, &direction],
    )
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)
}

pub async fn delete_mapping_by_ghl(pool: &Pool, ghl_id: &str) -> Result<u64, RepoError> {
    let client = pool.get().await.map_err(err)?;
    client
        .execute(
            "DELETE FROM contact_mappings WHERE ghl_contact_id = $1",
            &[&ghl_id],
        )
        .await
        .map_err(err)
}

pub struct CallNote {
    pub ghl_contact_id: String,
    pub ghl_note_id: String,
    pub facts: CallFacts,
}

pub async fn call_note(pool: &Pool, call_id: &str) -> Result<Option<CallNote>, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let row = client
        .query_opt("SELECT ghl_contact_id, ghl_note_id, call_facts FROM call_notes WHERE aloware_call_id = $1", &[&call_id])
        .await
        .map_err(err)?;
    Ok(row.map(|r| CallNote {
        ghl_contact_id: r.get(0),
        ghl_note_id: r.get(1),
        facts: serde_json::from_value(r.get(2)).unwrap_or_default(),
    }))
}

pub async fn save_call_note(pool: &Pool, call_id: &str, note: &CallNote) -> Result<(), RepoError> {
    let client = pool.get().await.map_err(err)?;
    let facts = serde_json::to_value(&note.facts).map_err(err)?;
    client
        .execute(
            "INSERT INTO call_notes (aloware_call_id, ghl_contact_id, ghl_note_id, disposition, recording_url, summary, call_facts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (aloware_call_id) DO UPDATE SET disposition = EXCLUDED.disposition,
                 recording_url = EXCLUDED.recording_url, summary = EXCLUDED.summary,
                 call_facts = EXCLUDED.call_facts, updated_at = now()",
            &[&call_id, &note.ghl_contact_id, &note.ghl_note_id, &note.facts.disposition, &note.facts.recording_url, &note.facts.summary, &facts],
        )
        .await
        .map_err(err)?;
    Ok(())
}

pub async fn record_fingerprint(
    pool: &Pool,
    system: &str,
    entity_id: &str,
    hash: &str,
) -> Result<(), RepoError> {
    let client = pool.get().await.map_err(err)?;
    client
        .execute(
            "INSERT INTO write_fingerprints (system, entity_id, fields_hash) VALUES ($1, $2, $3)",
            &[&system, &entity_id, &hash],
        )
        .await
        .map_err(err)?;
    Ok(())
}

/// Whether the middleware itself wrote exactly these fields within the echo window.
pub async fn is_echo(
    pool: &Pool,
    system: &str,
    entity_id: &str,
    hash: &str,
    window_seconds: i64,
) -> Result<bool, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let row = client
        .query_opt(
            "SELECT 1 FROM write_fingerprints WHERE system = $1 AND entity_id = $2 AND fields_hash = $3
               AND written_at > now() - make_interval(secs => $4) LIMIT 1",
            &[&system, &entity_id, &hash, &(window_seconds as f64)],
        )
        .await
        .map_err(err)?;
    Ok(row.is_some())
}

pub struct SyncLogEntry<'a> {
    pub direction: &'a str,
    pub entity_type: &'a str,
    pub entity_id: Option<&'a str>,
    pub source_id: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub status: &'a str,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub error_message: Option<&'a str>,
    pub correlation_id: Uuid,
    pub decisions: Value,
}

pub async fn write_sync_log(pool: &Pool, e: &SyncLogEntry<'_>) -> Result<(), RepoError> {
    let client = pool.get().await.map_err(err)?;
    client
        .execute(
            "INSERT INTO sync_log (direction, entity_type, entity_id, source_id, target_id, status, started_at, finished_at, error_message, correlation_id, decisions)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9, $10)",
            &[&e.direction, &e.entity_type, &e.entity_id, &e.source_id, &e.target_id, &e.status, &e.started_at, &e.error_message, &e.correlation_id.to_string(), &e.decisions],
        )
        .await
        .map_err(err)?;
    Ok(())
}

pub async fn tag_snapshot(pool: &Pool, ghl_id: &str) -> Result<Vec<String>, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let row = client
        .query_opt(
            "SELECT tags FROM contact_tag_snapshots WHERE ghl_contact_id = $1",
            &[&ghl_id],
        )
        .await
        .map_err(err)?;
    Ok(row.map(|r| r.get(0)).unwrap_or_default())
}

pub async fn save_tag_snapshot(
    pool: &Pool,
    ghl_id: &str,
    tags: &std::collections::BTreeSet<String>,
) -> Result<(), RepoError> {
    let client = pool.get().await.map_err(err)?;
    let tags: Vec<&String> = tags.iter().collect();
    client
        .execute(
            "INSERT INTO contact_tag_snapshots (ghl_contact_id, tags) VALUES ($1, $2)
             ON CONFLICT (ghl_contact_id) DO UPDATE SET tags = EXCLUDED.tags, updated_at = now()",
            &[&ghl_id, &tags],
        )
        .await
        .map_err(err)?;
    Ok(())
}

/// Tag → list id: `call_list_mappings` rows over the configured map (rows win).
pub async fn call_list_map(
    pool: &Pool,
    configured: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let rows = client
        .query(
            "SELECT ghl_tag, aloware_list_id FROM call_list_mappings",
            &[],
        )
        .await
        .map_err(err)?;
    let mut map = configured.clone();
    map.extend(
        rows.iter()
            .map(|r| (r.get::<_, String>(0).to_lowercase(), r.get(1))),
    );
    Ok(map)
}

/// Whether event `id` was processed within the last `window_seconds` (origin markers).
pub async fn processed_recently(
    pool: &Pool,
    id: Uuid,
    window_seconds: i64,
) -> Result<bool, RepoError> {
    let client = pool.get().await.map_err(err)?;
    let row = client
        .query_opt(
            "SELECT 1 FROM webhook_events WHERE id = $1 AND updated_at > now() - make_interval(secs => $2)",
            &[&id, &(window_seconds as f64)],
        )
        .await
        .map_err(err)?;
    Ok(row.is_some())
}
