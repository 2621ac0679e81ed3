//! The SMS opt-out registry (SPEC §7): `optout_events`, the append-only audit trail
//! (the database refuses updates and deletes), and `optout_registry`, the current status
//! per E.164 number. A request is recorded once per source message; a redelivery finds
//! its first recording and changes nothing.
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

use super::db::DbError;
use crate::domain::optout::Status;

pub use crate::domain::optout::RequestKind;

/// One request about a number, from some system.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub phone: &'a str,
    pub kind: RequestKind,
    pub keyword: Option<&'a str>,
    /// `texting`, `ghl`, `aloware` or `admin`.
    pub source: &'a str,
    /// The source's id for it (texting message id, our event id for a GHL change).
    pub source_message_id: &'a str,
    pub raw_text: Option<&'a str>,
    /// When the person made it (the provider's time of the message or change): the
    /// registry applies requests in this order.
    pub occurred_at: DateTime<Utc>,
    /// Who acted and how, for a change made in another system (kept for ever).
    pub evidence: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub event_id: Uuid,
    /// This call recorded it (false: a redelivery of a recorded request).
    pub new: bool,
    /// It moved the registry (opted in → out, or out → in); kept with the event, so a
    /// redelivery answers the same.
    pub changed: bool,
    /// Older than the latest request applied: on record, it moved nothing.
    pub superseded: bool,
    /// When we received it.
    pub received_at: DateTime<Utc>,
}

fn status_of(s: Option<&str>) -> Status {
    match s {
        Some("opted_out") => Status::OptedOut,
        Some("opted_in") => Status::OptedIn,
        _ => Status::Unknown,
    }
}

/// The number's current status.
pub async fn status(pool: &Pool, phone: &str) -> Result<Status, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT status FROM optout_registry WHERE phone_number = $1",
            &[&phone],
        )
        .await?;
    Ok(status_of(row.as_ref().map(|r| r.get::<_, &str>(0))))
}

/// Record a request. The database applies it to the registry as it is inserted (the
/// triggers of migration V0009, in the order of the person's own requests); the
/// functions cannot write the registry at all. An opt-in is recorded only for a number
/// that is opted out (`Ok(None)` otherwise: a "yes" is not an opt-in). A redelivered
/// request returns its first recording.
pub async fn record(pool: &Pool, req: &Request<'_>) -> Result<Option<Recorded>, DbError> {
    let client = pool.get().await?;
    record_on(&client, req).await
}

/// [`record`] on a connection the caller holds (inside the ingest's transaction).
pub async fn record_on(
    client: &deadpool_postgres::Client,
    req: &Request<'_>,
) -> Result<Option<Recorded>, DbError> {
    let row = client
        .query_opt(
            "INSERT INTO optout_events (phone_number, action, keyword, source, source_message_id,
                 raw_text, occurred_at, received_at, evidence)
             SELECT $1, $2, $3, $4, $5, $6, $7, now(), $8
             WHERE $2 <> 'opt_in' OR EXISTS (
                 SELECT 1 FROM optout_registry WHERE phone_number = $1 AND status = 'opted_out')
             ON CONFLICT (source, source_message_id, action) DO NOTHING
             RETURNING id, changed_status, superseded, received_at",
            &[
                &req.phone,
                &req.kind.as_str(),
                &req.keyword,
                &req.source,
                &req.source_message_id,
                &req.raw_text,
                &req.occurred_at,
                &req.evidence,
            ],
        )
        .await?;
    if let Some(r) = row {
        return Ok(Some(Recorded {
            event_id: r.get(0),
            new: true,
            changed: r.get(1),
            superseded: r.get(2),
            received_at: r.get(3),
        }));
    }
    let existing = client
        .query_opt(
            "SELECT id, changed_status, superseded, received_at FROM optout_events
             WHERE source = $1 AND source_message_id = $2 AND action = $3",
            &[&req.source, &req.source_message_id, &req.kind.as_str()],
        )
        .await?;
    Ok(existing.map(|r| Recorded {
        event_id: r.get(0),
        new: false,
        changed: r.get(1),
        superseded: r.get(2),
        received_at: r.get(3),
    }))
}

/// One recorded request, as a job reads it back.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    pub id: Uuid,
    pub phone: String,
    pub action: String,
    pub source: String,
    pub changed: bool,
    pub received_at: DateTime<Utc>,
    pub occurred_at: DateTime<Utc>,
}

pub async fn request(pool: &Pool, id: Uuid) -> Result<Option<StoredRequest>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT id, phone_number, action, source, changed_status, received_at, occurred_at
             FROM optout_events WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|r| StoredRequest {
            id: r.get(0),
            phone: r.get(1),
            action: r.get(2),
            source: r.get(3),
            changed: r.get(4),
            received_at: r.get(5),
            occurred_at: r.get(6),
        }))
}

/// Claim the one reply (confirmation or help answer) of request `event_id`: `true`
/// only the first time, so a redelivered STOP never sends a second confirmation.
pub async fn take_reply(pool: &Pool, event_id: Uuid, kind: &str) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO optout_replies (optout_event_id, kind) VALUES ($1, $2)
             ON CONFLICT (optout_event_id) DO NOTHING RETURNING optout_event_id",
            &[&event_id, &kind],
        )
        .await?;
    Ok(row.is_some())
}

pub async fn save_reply_send(pool: &Pool, event_id: Uuid, send_id: Uuid) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE optout_replies SET send_id = $2 WHERE optout_event_id = $1",
            &[&event_id, &send_id],
        )
        .await?;
    Ok(())
}

/// What a GHL contact of the number was last told (its SMS DND and tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhlState {
    pub status: String,
    pub event_id: Uuid,
    pub applied_at: DateTime<Utc>,
}

pub async fn ghl_state(
    pool: &Pool,
    phone: &str,
    ghl_contact_id: &str,
) -> Result<Option<GhlState>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT status, event_id, applied_at FROM optout_ghl_contacts
             WHERE phone_number = $1 AND ghl_contact_id = $2",
            &[&phone, &ghl_contact_id],
        )
        .await?;
    Ok(row.map(|r| GhlState {
        status: r.get(0),
        event_id: r.get(1),
        applied_at: r.get(2),
    }))
}

/// The number's registry status and the event that set it (`None`: never seen).
pub async fn current(pool: &Pool, phone: &str) -> Result<Option<(Status, Uuid)>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT status, last_event_id FROM optout_registry WHERE phone_number = $1",
            &[&phone],
        )
        .await?;
    Ok(row.and_then(|r| {
        let id: Option<Uuid> = r.get(1);
        id.map(|id| (status_of(Some(r.get::<_, &str>(0))), id))
    }))
}

pub async fn save_ghl_state(
    pool: &Pool,
    phone: &str,
    ghl_contact_id: &str,
    status: &str,
    event_id: Uuid,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO optout_ghl_contacts (phone_number, ghl_contact_id, status, event_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (phone_number, ghl_contact_id) DO UPDATE SET
                 status = EXCLUDED.status, event_id = EXCLUDED.event_id, applied_at = now()",
            &[&phone, &ghl_contact_id, &status, &event_id],
        )
        .await?;
    Ok(())
}

/// The registry entry of a number, for the admin view.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub phone_number: String,
    pub status: String,
    pub source: Option<String>,
    pub reason: Option<String>,
    pub last_event_at: DateTime<Utc>,
}

/// One row of the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: Uuid,
    pub action: String,
    pub keyword: Option<String>,
    pub source: String,
    pub source_message_id: String,
    pub raw_text: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub applied_at: DateTime<Utc>,
    pub resulting_status: Option<String>,
    pub changed: bool,
    pub superseded: bool,
    pub evidence: serde_json::Value,
    /// The reply sent for it (confirmation, help answer), when one was.
    pub reply: Option<String>,
    /// For a `review`: how an operator resolved it.
    pub resolution: Option<serde_json::Value>,
}

/// One send the texting client attempted (refused ones included).
#[derive(Debug, Clone, Serialize)]
pub struct SendRecord {
    pub id: Uuid,
    pub purpose: String,
    pub status: String,
    pub texting_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The newest sends shown with a number's audit trail.
const AUDIT_SENDS: i64 = 200;

/// A number's registry entry, full audit trail (oldest first) and its newest sends.
pub async fn audit(
    pool: &Pool,
    phone: &str,
) -> Result<(Option<Entry>, Vec<AuditEvent>, Vec<SendRecord>), DbError> {
    let client = pool.get().await?;
    let entry = client
        .query_opt(
            "SELECT phone_number, status, source, reason, last_event_at FROM optout_registry WHERE phone_number = $1",
            &[&phone],
        )
        .await?
        .map(|r| Entry {
            phone_number: r.get(0),
            status: r.get(1),
            source: r.get(2),
            reason: r.get(3),
            last_event_at: r.get(4),
        });
    let events = client
        .query(
            "SELECT e.id, e.action, e.keyword, e.source, e.source_message_id, e.raw_text, e.received_at,
                    e.applied_at, e.resulting_status, r.kind || ': ' || coalesce(s.status, 'not sent'),
                    e.occurred_at, e.changed_status, e.superseded, e.evidence,
                    CASE WHEN v.review_event_id IS NOT NULL THEN jsonb_build_object('resolution', v.resolution,
                        'reason', v.reason, 'resolvedBy', v.resolved_by, 'resolvedAt', v.resolved_at) END
             FROM optout_events e
             LEFT JOIN optout_replies r ON r.optout_event_id = e.id
             LEFT JOIN texting_sends s ON s.id = r.send_id
             LEFT JOIN optout_review_resolutions v ON v.review_event_id = e.id
             WHERE e.phone_number = $1 ORDER BY e.applied_at, e.id",
            &[&phone],
        )
        .await?
        .iter()
        .map(|r| AuditEvent {
            id: r.get(0),
            action: r.get(1),
            keyword: r.get(2),
            source: r.get(3),
            source_message_id: r.get(4),
            raw_text: r.get(5),
            received_at: r.get(6),
            applied_at: r.get(7),
            resulting_status: r.get(8),
            reply: r.get(9),
            occurred_at: r.get(10),
            changed: r.get(11),
            superseded: r.get(12),
            evidence: r.get(13),
            resolution: r.get(14),
        })
        .collect();
    let sends = client
        .query(
            "SELECT id, purpose, status, texting_message_id, created_at FROM texting_sends
             WHERE to_number = $1 ORDER BY created_at DESC LIMIT $2",
            &[&phone, &AUDIT_SENDS],
        )
        .await?
        .iter()
        .map(|r| SendRecord {
            id: r.get(0),
            purpose: r.get(1),
            status: r.get(2),
            texting_message_id: r.get(3),
            created_at: r.get(4),
        })
        .collect();
    Ok((entry, events, sends))
}

/// One message waiting for an operator's decision (`review`).
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub id: Uuid,
    pub phone_number: String,
    pub keyword: Option<String>,
    pub source: String,
    pub raw_text: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// The unresolved `review` messages, oldest first.
pub async fn open_reviews(pool: &Pool, limit: i64) -> Result<Vec<Review>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT e.id, e.phone_number, e.keyword, e.source, e.raw_text, e.occurred_at, e.received_at
             FROM optout_events e
             WHERE e.action = 'review'
               AND NOT EXISTS (SELECT 1 FROM optout_review_resolutions v WHERE v.review_event_id = e.id)
             ORDER BY e.received_at, e.id LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| Review {
            id: r.get(0),
            phone_number: r.get(1),
            keyword: r.get(2),
            source: r.get(3),
            raw_text: r.get(4),
            occurred_at: r.get(5),
            received_at: r.get(6),
        })
        .collect())
}

/// Why a review could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewRefused {
    Unknown,
    AlreadyResolved,
}

/// An operator resolves review `id`: `opt_out` records an opt-out (source `admin`, at
/// the message's own time, the decision as its evidence); `dismiss` only the decision.
/// Returns the opt-out recorded, if any.
pub async fn resolve_review(
    pool: &Pool,
    id: Uuid,
    opt_out: bool,
    reason: &str,
    by: Option<&str>,
) -> Result<Result<Option<Recorded>, ReviewRefused>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // One resolution at a time per review (the audit is append-only for us: no row
    // locks, which need UPDATE); the resolutions' key refuses a second one anyway.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('optout-review:' || $1::text, 0))",
        &[&id.to_string()],
    )
    .await?;
    let review = tx
        .query_opt(
            "SELECT phone_number, raw_text, occurred_at, keyword FROM optout_events
             WHERE id = $1 AND action = 'review'",
            &[&id],
        )
        .await?;
    let Some(review) = review else {
        return Ok(Err(ReviewRefused::Unknown));
    };
    let done: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM optout_review_resolutions WHERE review_event_id = $1)",
            &[&id],
        )
        .await?
        .get(0);
    if done {
        return Ok(Err(ReviewRefused::AlreadyResolved));
    }
    let mut recorded = None;
    if opt_out {
        let phone: String = review.get(0);
        let text: Option<String> = review.get(1);
        let source_id = format!("review:{id}");
        let row = tx
            .query_one(
                "INSERT INTO optout_events (phone_number, action, keyword, source, source_message_id,
                     raw_text, occurred_at, received_at, evidence)
                 VALUES ($1, 'opt_out', $2, 'admin', $3, $4, $5, now(),
                     jsonb_build_object('review', $6::text, 'reason', $7::text, 'resolvedBy', $8::text))
                 RETURNING id, changed_status, superseded, received_at",
                &[
                    &phone,
                    &review.get::<_, Option<String>>(3),
                    &source_id,
                    &text,
                    &review.get::<_, DateTime<Utc>>(2),
                    &id.to_string(),
                    &reason,
                    &by,
                ],
            )
            .await?;
        recorded = Some(Recorded {
            event_id: row.get(0),
            new: true,
            changed: row.get(1),
            superseded: row.get(2),
            received_at: row.get(3),
        });
    }
    tx.execute(
        "INSERT INTO optout_review_resolutions (review_event_id, resolution, reason, resolved_by, optout_event_id)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &id,
            &if opt_out { "opt_out" } else { "dismiss" },
            &reason,
            &by,
            &recorded.as_ref().map(|r| r.event_id),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(recorded))
}

/// A text to an opted-out number that the middleware did not send.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: Uuid,
    pub phone_number: String,
    pub source: String,
    pub event_id: Uuid,
    pub sent_at: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
}

/// Record an incident if `phone` was opted out when the text went out (`sent_at`):
/// inside the ingest's transaction. Returns whether it was one.
pub async fn note_unguarded_send(
    client: &deadpool_postgres::Client,
    phone: &str,
    source: &str,
    event_id: Uuid,
    sent_at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = client
        .execute(
            "INSERT INTO compliance_incidents (phone_number, source, event_id, sent_at, optout_event_id)
             SELECT $1, $2, $3, $4, r.last_event_id FROM optout_registry r
             WHERE r.phone_number = $1 AND r.status = 'opted_out' AND r.last_event_at <= $4",
            &[&phone, &source, &event_id, &sent_at],
        )
        .await?;
    Ok(n > 0)
}

/// Incidents, newest first (`phone` narrows them to one number).
pub async fn incidents(
    pool: &Pool,
    phone: Option<&str>,
    limit: i64,
) -> Result<Vec<Incident>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT id, phone_number, source, event_id, sent_at, detected_at FROM compliance_incidents
             WHERE $1::text IS NULL OR phone_number = $1 ORDER BY detected_at DESC LIMIT $2",
            &[&phone, &limit],
        )
        .await?
        .iter()
        .map(|r| Incident {
            id: r.get(0),
            phone_number: r.get(1),
            source: r.get(2),
            event_id: r.get(3),
            sent_at: r.get(4),
            detected_at: r.get(5),
        })
        .collect())
}

/// The GHL contacts of `phone` the registry was ever shown on.
pub async fn ghl_contacts_told(pool: &Pool, phone: &str) -> Result<Vec<String>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT ghl_contact_id FROM optout_ghl_contacts WHERE phone_number = $1 ORDER BY applied_at",
            &[&phone],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
