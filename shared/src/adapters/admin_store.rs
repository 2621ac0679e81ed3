//! What operators read and do to stored events (SPEC §8): filtered, keyset-paged lists
//! with each event's attempts, last error, sync log and operator actions; replay,
//! quarantine and mark-done, each recorded in `admin_actions`.
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::db::DbError;
use super::event_store::table;
use crate::domain::EventKind;

/// Filters of an event list; every one optional.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub source: Option<String>,
    pub status: Option<String>,
    pub entity_id: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A page position: the last row shown (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub received_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One stored event as an operator sees it.
#[derive(Debug, Clone)]
pub struct AdminEvent {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub person_key: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub error_message: Option<String>,
    pub skip_reason: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub processed_at: Option<DateTime<Utc>>,
    pub payload: Option<Value>,
    pub payload_purged_at: Option<DateTime<Utc>>,
    pub sync_log: Vec<Value>,
    pub actions: Vec<Value>,
    pub quarantine: Option<Value>,
}

fn source_column(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Texting => "'texting'",
        _ => "e.source",
    }
}

/// Newest first, `limit` rows after `cursor`. New rows arriving meanwhile sort before
/// the first page, so paging on never shows a row twice or skips one.
pub async fn list(
    pool: &Pool,
    kind: EventKind,
    filter: &EventFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<AdminEvent>, DbError> {
    let client = pool.get().await?;
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut bind = |clause: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        clauses.push(clause.replace('?', &format!("${}", params.len())));
    };
    let source = source_column(kind);
    if let Some(s) = &filter.source {
        bind(&format!("{source} = ?"), Box::new(s.clone()));
    }
    if let Some(s) = &filter.status {
        bind("e.status = ?", Box::new(s.clone()));
    }
    if let Some(s) = &filter.entity_id {
        bind("e.entity_id = ?", Box::new(s.clone()));
    }
    if let Some(s) = &filter.event_type {
        bind("e.event_type = ?", Box::new(s.clone()));
    }
    if let Some(t) = filter.since {
        bind("e.received_at >= ?", Box::new(t));
    }
    if let Some(t) = filter.until {
        bind("e.received_at < ?", Box::new(t));
    }
    if let Some(c) = cursor {
        params.push(Box::new(c.received_at));
        params.push(Box::new(c.id));
        let n = params.len();
        clauses.push(format!("(e.received_at, e.id) < (${}, ${n})", n - 1));
    }
    params.push(Box::new(limit));
    let where_ = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT e.id, e.received_at, {source}, e.event_type, e.entity_type, e.entity_id, e.person_key,
                e.status, e.attempts, e.error_message, e.skip_reason, e.next_attempt_at, e.processed_at,
                e.payload_json, e.payload_purged_at
         FROM {} e {where_}
         ORDER BY e.received_at DESC, e.id DESC LIMIT ${}",
        table(kind),
        params.len()
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let mut events: Vec<AdminEvent> = client
        .query(&sql, &refs)
        .await?
        .iter()
        .map(|r| AdminEvent {
            id: r.get(0),
            received_at: r.get(1),
            source: r.get(2),
            event_type: r.get(3),
            entity_type: r.get(4),
            entity_id: r.get(5),
            person_key: r.get(6),
            status: r.get(7),
            attempts: r.get(8),
            error_message: r.get(9),
            skip_reason: r.get(10),
            next_attempt_at: r.get(11),
            processed_at: r.get(12),
            payload: r.get(13),
            payload_purged_at: r.get(14),
            sync_log: Vec::new(),
            actions: Vec::new(),
            quarantine: None,
        })
        .collect();
    attach_history(&client, kind, &mut events).await?;
    Ok(events)
}

/// Each event's sync log entries, operator actions and latest quarantine, in three
/// queries for the whole page.
async fn attach_history(
    client: &deadpool_postgres::Client,
    kind: EventKind,
    events: &mut [AdminEvent],
) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let texts: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let logs = client
        .query(
            "SELECT correlation_id, jsonb_build_object('direction', direction, 'status', status,
                    'startedAt', started_at, 'finishedAt', finished_at, 'error', error_message,
                    'sourceId', source_id, 'targetId', target_id, 'decisions', decisions)
             FROM sync_log WHERE correlation_id = ANY($1) ORDER BY started_at, id",
            &[&texts],
        )
        .await?;
    let actions = client
        .query(
            "SELECT event_id, jsonb_build_object('action', action, 'actor', actor, 'at', at, 'detail', detail)
             FROM admin_actions WHERE event_id = ANY($1) AND event_source = $2 ORDER BY at, id",
            &[&ids, &kind.as_str()],
        )
        .await?;
    let held = client
        .query(
            "SELECT DISTINCT ON (event_id) event_id, jsonb_build_object('reason', reason,
                    'quarantinedAt', quarantined_at, 'quarantinedBy', quarantined_by)
             FROM quarantine_events WHERE event_id = ANY($1) AND event_source = $2
             ORDER BY event_id, quarantined_at DESC",
            &[&ids, &kind.as_str()],
        )
        .await?;
    for e in events.iter_mut() {
        let id = e.id.to_string();
        e.sync_log = logs
            .iter()
            .filter(|r| r.get::<_, Option<String>>(0).as_deref() == Some(id.as_str()))
            .map(|r| r.get(1))
            .collect();
        e.actions = actions
            .iter()
            .filter(|r| r.get::<_, Uuid>(0) == e.id)
            .map(|r| r.get(1))
            .collect();
        e.quarantine = held
            .iter()
            .find(|r| r.get::<_, Uuid>(0) == e.id)
            .map(|r| r.get(1));
    }
    Ok(())
}

/// Which inbox holds event `id`, if any.
pub async fn kind_of(pool: &Pool, id: Uuid) -> Result<Option<EventKind>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT 'webhook' FROM webhook_events WHERE id = $1
             UNION ALL SELECT 'texting' FROM texting_webhook_events WHERE id = $1
             UNION ALL SELECT 'broadcast' FROM broadcast_webhook_events WHERE id = $1 LIMIT 1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| match r.get::<_, &str>(0) {
        "texting" => EventKind::Texting,
        "broadcast" => EventKind::Broadcast,
        _ => EventKind::Webhook,
    }))
}

/// Why an action on an event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    /// An attempt holds the row right now.
    Processing,
    /// Retention removed its payload: there is nothing left to apply.
    PayloadPurged,
}

/// A replayed event: what its new queue message needs, and whether the high-water mark
/// will skip it (an event of the same entity received later was already applied).
#[derive(Debug, Clone)]
pub struct Replayed {
    pub person_key: String,
    pub seq: i32,
    pub previous_status: String,
    pub newer_applied_at: Option<DateTime<Utc>>,
}

/// Back to `pending` with a fresh attempt budget, marked as sent (the caller sends).
pub async fn replay(
    pool: &Pool,
    kind: EventKind,
    id: Uuid,
    actor: Option<&str>,
) -> Result<Result<Replayed, Refused>, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let sql = format!(
        "WITH before AS (SELECT status, payload_purged_at FROM {t} WHERE id = $1),
         upd AS (
            UPDATE {t} e SET status = 'pending', attempts = 0, next_attempt_at = now(),
                error_message = NULL, skip_reason = NULL, processed_at = NULL, claimed_at = NULL,
                yields = false, paused_provider = NULL,
                enqueued_at = now(), enqueue_count = e.enqueue_count + 1, updated_at = now()
            WHERE e.id = $1 AND e.status <> 'processing' AND e.payload_purged_at IS NULL
            RETURNING e.person_key, e.enqueue_count, e.watermark_key, e.received_at, e.occurred_at),
         act AS (
            INSERT INTO admin_actions (event_id, event_source, action, actor, detail)
            SELECT $1, $2, 'replay', $3, jsonb_build_object('previousStatus', (SELECT status FROM before))
            FROM upd)
         SELECT (SELECT status FROM before), (SELECT payload_purged_at IS NOT NULL FROM before),
                upd.person_key, upd.enqueue_count,
                (SELECT w.applied_occurred_at FROM entity_watermarks w
                  WHERE w.kind = $2 AND w.entity_key = upd.watermark_key
                    AND (w.applied_occurred_at, w.applied_received_at)
                        > (COALESCE(upd.occurred_at, upd.received_at), upd.received_at)
                    AND w.event_id <> $1)
         FROM (SELECT 1) one LEFT JOIN upd ON true"
    );
    let row = client
        .query_one(&sql, &[&id, &kind.as_str(), &actor])
        .await?;
    let previous: Option<String> = row.get(0);
    let Some(previous_status) = previous else {
        return Ok(Err(Refused::Unknown));
    };
    let Some(seq) = row.get::<_, Option<i32>>(3) else {
        return Ok(Err(if row.get::<_, Option<bool>>(1) == Some(true) {
            Refused::PayloadPurged
        } else {
            Refused::Processing
        }));
    };
    Ok(Ok(Replayed {
        person_key: row.get::<_, Option<String>>(2).unwrap_or_default(),
        seq,
        previous_status,
        newer_applied_at: row.get(4),
    }))
}

/// Hold an event for an operator (never processed until replayed).
pub async fn quarantine(
    pool: &Pool,
    kind: EventKind,
    id: Uuid,
    reason: &str,
    actor: Option<&str>,
) -> Result<Result<String, Refused>, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let sql = format!(
        "WITH before AS (SELECT status FROM {t} WHERE id = $1),
         upd AS (UPDATE {t} SET status = 'quarantined', updated_at = now()
                 WHERE id = $1 AND status <> 'processing' RETURNING id),
         held AS (INSERT INTO quarantine_events (event_id, event_source, reason, quarantined_by)
                  SELECT id, $2, $3, $4 FROM upd),
         act AS (INSERT INTO admin_actions (event_id, event_source, action, actor, detail)
                 SELECT id, $2, 'quarantine', $4, jsonb_build_object('reason', $3::text,
                     'previousStatus', (SELECT status FROM before)) FROM upd)
         SELECT (SELECT status FROM before), (SELECT count(*) FROM upd)"
    );
    let row = client
        .query_one(&sql, &[&id, &kind.as_str(), &reason, &actor])
        .await?;
    match (row.get::<_, Option<String>>(0), row.get::<_, i64>(1)) {
        (None, _) => Ok(Err(Refused::Unknown)),
        (Some(_), 0) => Ok(Err(Refused::Processing)),
        (Some(previous), _) => Ok(Ok(previous)),
    }
}

/// Close an event by hand (an operator fixed it elsewhere).
pub async fn mark_done(
    pool: &Pool,
    kind: EventKind,
    id: Uuid,
    actor: Option<&str>,
) -> Result<Result<String, Refused>, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let sql = format!(
        "WITH before AS (SELECT status FROM {t} WHERE id = $1),
         upd AS (UPDATE {t} SET status = 'done', processed_at = now(), updated_at = now()
                 WHERE id = $1 AND status <> 'processing' RETURNING id),
         act AS (INSERT INTO admin_actions (event_id, event_source, action, actor, detail)
                 SELECT id, $2, 'mark_done', $3, jsonb_build_object('previousStatus', (SELECT status FROM before))
                 FROM upd)
         SELECT (SELECT status FROM before), (SELECT count(*) FROM upd)"
    );
    let row = client
        .query_one(&sql, &[&id, &kind.as_str(), &actor])
        .await?;
    match (row.get::<_, Option<String>>(0), row.get::<_, i64>(1)) {
        (None, _) => Ok(Err(Refused::Unknown)),
        (Some(_), 0) => Ok(Err(Refused::Processing)),
        (Some(previous), _) => Ok(Ok(previous)),
    }
}
