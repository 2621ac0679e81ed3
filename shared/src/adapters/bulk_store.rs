//! Bulk replay (SPEC §8): the events a filter selects, counted, sampled, or reset for
//! another run oldest first — never one that an attempt holds right now, never one whose
//! payload retention removed, `done` ones only when the filter names `done` — each reset
//! recorded in `admin_actions`, the whole call in `admin_bulk_actions`.
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::db::DbError;
use super::event_store::table;
use crate::domain::EventKind;

/// What a bulk replay selects; every field optional but the statuses.
#[derive(Debug, Clone)]
pub struct BulkFilter {
    pub source: Option<String>,
    /// Statuses to select (never `processing`).
    pub statuses: Vec<String>,
    pub event_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// A substring of the last error (case-insensitive).
    pub error_contains: Option<String>,
}

/// One selected row, as a dry run shows it.
#[derive(Debug, Clone)]
pub struct Selected {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub error_message: Option<String>,
}

/// One reset row, to be queued again.
#[derive(Debug, Clone)]
pub struct Reset {
    pub id: Uuid,
    pub person_key: String,
    pub seq: i32,
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn where_clause(kind: EventKind, f: &BulkFilter, params: &mut Params) -> String {
    let mut clauses = vec![
        "e.status <> 'processing'".to_string(),
        "e.payload_purged_at IS NULL".to_string(),
    ];
    let mut bind = |clause: &str, value: Box<dyn ToSql + Sync + Send>, params: &mut Params| {
        params.push(value);
        clauses.push(clause.replace('?', &format!("${}", params.len())));
    };
    let source = match kind {
        EventKind::Texting => "'texting'",
        _ => "e.source",
    };
    bind("e.status = ANY(?)", Box::new(f.statuses.clone()), params);
    if let Some(s) = &f.source {
        bind(&format!("{source} = ?"), Box::new(s.clone()), params);
    }
    if let Some(s) = &f.event_type {
        bind("e.event_type = ?", Box::new(s.clone()), params);
    }
    if let Some(t) = f.from {
        bind("e.received_at >= ?", Box::new(t), params);
    }
    if let Some(t) = f.to {
        bind("e.received_at < ?", Box::new(t), params);
    }
    if let Some(s) = &f.error_contains {
        // A literal substring: LIKE's own wildcards in it match themselves.
        let escaped = s
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        bind(
            "e.error_message ILIKE '%' || ? || '%'",
            Box::new(escaped),
            params,
        );
    }
    clauses.join(" AND ")
}

fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// How many rows the filter selects, and the oldest `sample` of them.
pub async fn count_and_sample(
    pool: &Pool,
    kind: EventKind,
    f: &BulkFilter,
    sample: i64,
) -> Result<(i64, Vec<Selected>), DbError> {
    let client = pool.get().await?;
    let mut params: Params = Vec::new();
    let w = where_clause(kind, f, &mut params);
    let t = table(kind);
    let count: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {t} e WHERE {w}"),
            &refs(&params),
        )
        .await?
        .get(0);
    let source = match kind {
        EventKind::Texting => "'texting'",
        _ => "e.source",
    };
    params.push(Box::new(sample));
    let rows = client
        .query(
            &format!(
                "SELECT e.id, e.received_at, {source}, e.event_type, e.status, e.attempts, e.error_message
                 FROM {t} e WHERE {w} ORDER BY e.received_at, e.id LIMIT ${}",
                params.len()
            ),
            &refs(&params),
        )
        .await?;
    Ok((
        count,
        rows.iter()
            .map(|r| Selected {
                id: r.get(0),
                received_at: r.get(1),
                source: r.get(2),
                event_type: r.get(3),
                status: r.get(4),
                attempts: r.get(5),
                error_message: r.get(6),
            })
            .collect(),
    ))
}

/// Record the call itself (who, the filter, how many it selected).
pub async fn record_call(
    pool: &Pool,
    kind: EventKind,
    actor: Option<&str>,
    filter: &Value,
    selected: i64,
) -> Result<Uuid, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "INSERT INTO admin_bulk_actions (event_source, action, actor, filter, selected)
             VALUES ($1, 'replay', $2, $3, $4) RETURNING id",
            &[&kind.as_str(), &actor, filter, &selected],
        )
        .await?
        .get(0))
}

/// Reset up to `limit` selected rows (oldest first) to `pending` with a fresh attempt
/// budget, each with its replay on record; returns them oldest first, to be queued.
pub async fn reset(
    pool: &Pool,
    kind: EventKind,
    f: &BulkFilter,
    limit: i64,
    actor: Option<&str>,
    bulk: Uuid,
) -> Result<Vec<Reset>, DbError> {
    let client = pool.get().await?;
    let mut params: Params = Vec::new();
    let w = where_clause(kind, f, &mut params);
    let t = table(kind);
    params.push(Box::new(limit));
    let n_limit = params.len();
    params.push(Box::new(kind.as_str().to_string()));
    let n_kind = params.len();
    params.push(Box::new(actor.map(str::to_string)));
    let n_actor = params.len();
    params.push(Box::new(bulk.to_string()));
    let n_bulk = params.len();
    let sql = format!(
        "WITH picked AS (
            SELECT e.id, e.status FROM {t} e WHERE {w}
            ORDER BY e.received_at, e.id LIMIT ${n_limit} FOR UPDATE SKIP LOCKED),
         upd AS (
            UPDATE {t} e SET status = 'pending', attempts = 0, next_attempt_at = now(),
                error_message = NULL, skip_reason = NULL, processed_at = NULL, claimed_at = NULL,
                yields = false, paused_provider = NULL,
                enqueued_at = now(), enqueue_count = e.enqueue_count + 1, updated_at = now()
            FROM picked WHERE e.id = picked.id
            RETURNING e.id, e.person_key, e.enqueue_count, e.received_at, picked.status AS previous),
         act AS (
            INSERT INTO admin_actions (event_id, event_source, action, actor, detail)
            SELECT id, ${n_kind}, 'replay', ${n_actor},
                   jsonb_build_object('previousStatus', previous, 'bulk', ${n_bulk}::text)
            FROM upd)
         SELECT id, person_key, enqueue_count FROM upd ORDER BY received_at, id"
    );
    let rows = client.query(&sql, &refs(&params)).await?;
    Ok(rows
        .iter()
        .map(|r| Reset {
            id: r.get(0),
            person_key: r.get(1),
            seq: r.get(2),
        })
        .collect())
}

/// The call's outcome, once known.
pub async fn finish_call(pool: &Pool, id: Uuid, replayed: i64, queued: i64) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE admin_bulk_actions SET replayed = $2, queued = $3, finished_at = now() WHERE id = $1",
            &[&id, &replayed, &queued],
        )
        .await?;
    Ok(())
}
