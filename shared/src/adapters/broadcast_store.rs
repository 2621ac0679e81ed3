//! The broadcast inbox's own rules on top of the generic event store: coalescing at
//! ingest, and the per-broadcast sync state (GHL record, last computation, lease).
//!
//! Coalescing: a broadcast's figures are recomputed from Verity's database, so one
//! computation that starts after an event was received answers that event. An event
//! that arrives while an earlier event of the same broadcast still waits for its
//! computation (`pending`/`error`) is stored `skipped` ("coalesced into …") with no
//! queue message; the waiting row's computation will start after it. A new waiting row
//! is due no sooner than one settle interval after the last computation, so a burst
//! costs one computation and one GHL write per interval.
//!
//! Coalescing writes the waiting row (`coalesced_at`) instead of only reading it: the
//! row lock orders it against a claim or a settle of that row, and a computation that
//! started before the coalesced event never settles the row that answers it.
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

use super::db::DbError;
use super::event_store::{self, Stored, ToEnqueue};
use crate::domain::broadcast::group_key;
use crate::domain::dedupe::DedupeKey;
use crate::domain::EventKind;

/// A broadcast event about to be stored.
pub struct NewBroadcastEvent<'a> {
    /// `verity` or `ghl_appointment`.
    pub source: &'a str,
    pub broadcast_id: &'a str,
    pub event_type: &'a str,
    pub payload_json: &'a str,
    pub dedupe: &'a DedupeKey,
    pub quarantine: Option<&'a str>,
    /// The minimum time between two computations of one broadcast.
    pub settle: Duration,
}

/// Store one broadcast event in one statement (dedupe, coalescing, quarantine).
pub async fn insert(pool: &Pool, new: &NewBroadcastEvent<'_>) -> Result<Stored, DbError> {
    let client = pool.get().await?;
    insert_on(&client, new).await
}

/// [`insert`] on a connection the caller holds.
pub async fn insert_on(
    client: &deadpool_postgres::Client,
    new: &NewBroadcastEvent<'_>,
) -> Result<Stored, DbError> {
    let DedupeKey::Id(key) = new.dedupe else {
        return Err(DbError::Query {
            code: "df001".into(),
            message: "broadcast events are keyed by id".into(),
        });
    };
    let group = group_key(new.broadcast_id);
    let settle = new.settle.as_secs_f64();
    let row = client
        .query_opt(
            "WITH open AS (
                UPDATE broadcast_webhook_events SET coalesced_at = now()
                WHERE id = (SELECT id FROM broadcast_webhook_events
                            WHERE entity_id = $2 AND status IN ('pending', 'error')
                            ORDER BY received_at LIMIT 1)
                  AND status IN ('pending', 'error') AND $7::text IS NULL
                RETURNING id),
             ins AS (
                INSERT INTO broadcast_webhook_events (id, source, event_type, entity_id, payload_json,
                    person_key, dedupe_key, dedupe_kind, status, skip_reason, processed_at,
                    next_attempt_at, enqueued_at, enqueue_count)
                SELECT gen_random_uuid(), $1, $3, $2, $4::text::jsonb, $5, $6, 'id',
                    CASE WHEN $7::text IS NOT NULL THEN 'quarantined'
                         WHEN o.id IS NOT NULL THEN 'skipped' ELSE 'pending' END,
                    CASE WHEN $7::text IS NULL AND o.id IS NOT NULL THEN 'coalesced into ' || o.id END,
                    CASE WHEN $7::text IS NULL AND o.id IS NOT NULL THEN now() END,
                    GREATEST(now(), (SELECT s.computed_at + make_interval(secs => $8)
                                     FROM broadcast_sync_state s WHERE s.broadcast_id = $2)),
                    CASE WHEN $7::text IS NULL AND o.id IS NULL THEN now() END,
                    CASE WHEN $7::text IS NULL AND o.id IS NULL THEN 1 ELSE 0 END
                FROM (SELECT 1) one LEFT JOIN open o ON true
                ON CONFLICT (dedupe_key) WHERE dedupe_kind = 'id' DO NOTHING
                RETURNING id, person_key, enqueue_count, status, skip_reason),
             held AS (
                INSERT INTO quarantine_events (event_id, event_source, reason, quarantined_by)
                SELECT id, 'broadcast', $7, 'ingest' FROM ins WHERE $7::text IS NOT NULL)
             SELECT id, person_key, enqueue_count, status,
                (SELECT o.id FROM open o) FROM ins",
            &[
                &new.source,
                &new.broadcast_id,
                &new.event_type,
                &new.payload_json,
                &group,
                key,
                &new.quarantine,
                &settle,
            ],
        )
        .await?;
    let Some(row) = row else {
        return event_store::duplicate_of(client, EventKind::Broadcast, new.dedupe).await;
    };
    let id: Uuid = row.get(0);
    let status: String = row.get(3);
    Ok(match status.as_str() {
        "pending" => Stored::Inserted {
            id,
            enqueue: Some(ToEnqueue {
                id,
                person_key: row.get(1),
                seq: row.get(2),
            }),
        },
        "skipped" => Stored::Coalesced {
            id,
            into: row.get(4),
        },
        _ => Stored::Inserted { id, enqueue: None },
    })
}

/// A broadcast's sync state while this consumer holds its lease.
#[derive(Debug, Clone)]
pub struct Leased {
    pub ghl_record_id: Option<String>,
    /// When the last computation started: every event received before it is answered.
    pub computed_at: Option<DateTime<Utc>>,
    pub figures: Option<Value>,
    /// The database's clock when the lease was taken: the start of this computation.
    pub now: DateTime<Utc>,
    /// The latest event this row answers: its own receipt or the last coalesced into it.
    pub answers_up_to: DateTime<Utc>,
}

/// Take the broadcast's lease for `hold` (one computation at a time) to answer the
/// claimed event `event_id`; `None` when another consumer holds it.
pub async fn lease(
    pool: &Pool,
    broadcast_id: &str,
    event_id: Uuid,
    hold: Duration,
) -> Result<Option<Leased>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO broadcast_sync_state (broadcast_id, lease_until)
             VALUES ($1, clock_timestamp() + make_interval(secs => $2))
             ON CONFLICT (broadcast_id) DO UPDATE
                SET lease_until = EXCLUDED.lease_until, updated_at = now()
                WHERE broadcast_sync_state.lease_until IS NULL
                   OR broadcast_sync_state.lease_until < clock_timestamp()
             RETURNING ghl_record_id, computed_at, figures, clock_timestamp(),
                (SELECT GREATEST(e.received_at, e.coalesced_at) FROM broadcast_webhook_events e
                 WHERE e.id = $3)",
            &[&broadcast_id, &hold.as_secs_f64(), &event_id],
        )
        .await?;
    Ok(row.map(|r| {
        let now: DateTime<Utc> = r.get(3);
        Leased {
            ghl_record_id: r.get(0),
            computed_at: r.get(1),
            figures: r.get(2),
            now,
            answers_up_to: r.get::<_, Option<DateTime<Utc>>>(4).unwrap_or(now),
        }
    }))
}

/// Give the lease back without a computation.
pub async fn release(pool: &Pool, broadcast_id: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE broadcast_sync_state SET lease_until = NULL, updated_at = now() WHERE broadcast_id = $1",
            &[&broadcast_id],
        )
        .await?;
    Ok(())
}

/// What one computation produced.
pub struct Computed<'a> {
    pub broadcast_id: &'a str,
    /// The lease's start ([`Leased::now`]).
    pub started_at: DateTime<Utc>,
    pub ghl_record_id: &'a str,
    pub figures: &'a Value,
    pub wrote: bool,
    /// The event that ran the computation (not coalesced into itself).
    pub event_id: Uuid,
}

/// Record a computation, release the lease, and settle every other waiting event of
/// the broadcast that it answered: received, and with every event coalesced into it
/// received, before the computation started.
pub async fn commit(pool: &Pool, c: &Computed<'_>) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "WITH st AS (
                UPDATE broadcast_sync_state SET computed_at = $2, ghl_record_id = $3, figures = $4,
                    lease_until = NULL, computations = computations + 1,
                    ghl_writes = ghl_writes + CASE WHEN $5 THEN 1 ELSE 0 END, updated_at = now()
                WHERE broadcast_id = $1 RETURNING 1),
             settled AS (
                UPDATE broadcast_webhook_events SET status = 'skipped', updated_at = now(),
                    processed_at = now(), skip_reason = 'coalesced into ' || $6::uuid
                WHERE entity_id = $1 AND id <> $6 AND status IN ('pending', 'error')
                  AND GREATEST(received_at, coalesced_at) <= $2
                RETURNING 1)
             SELECT (SELECT count(*) FROM settled)",
            &[
                &c.broadcast_id,
                &c.started_at,
                &c.ghl_record_id,
                c.figures,
                &c.wrote,
                &c.event_id,
            ],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Forget a GHL record id that GHL no longer knows (deleted by a user).
pub async fn forget_record(pool: &Pool, broadcast_id: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE broadcast_sync_state SET ghl_record_id = NULL, figures = NULL WHERE broadcast_id = $1",
            &[&broadcast_id],
        )
        .await?;
    Ok(())
}
