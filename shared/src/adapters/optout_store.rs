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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    OptOut,
    OptIn,
    Help,
}

impl RequestKind {
    fn as_str(self) -> &'static str {
        match self {
            RequestKind::OptOut => "opt_out",
            RequestKind::OptIn => "opt_in",
            RequestKind::Help => "help",
        }
    }
}

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
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub event_id: Uuid,
    /// This call recorded it (false: a redelivery of a recorded request).
    pub new: bool,
    /// It moved the registry (opted in → out, or out → in); kept with the event, so a
    /// redelivery answers the same.
    pub changed: bool,
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

/// Record a request and apply it to the registry, in one transaction. An opt-in is
/// recorded only for a number that is opted out (`Ok(None)` otherwise): a "yes" is
/// not an opt-in. A redelivered request returns its first recording.
pub async fn record(pool: &Pool, req: &Request<'_>) -> Result<Option<Recorded>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Serialise requests about one number (the row may not exist yet: lock its key).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&req.phone],
    )
    .await?;
    if let Some(existing) = tx
        .query_opt(
            "SELECT id, changed_status FROM optout_events WHERE source = $1 AND source_message_id = $2 AND action = $3",
            &[&req.source, &req.source_message_id, &req.kind.as_str()],
        )
        .await?
    {
        return Ok(Some(Recorded {
            event_id: existing.get(0),
            new: false,
            changed: existing.get(1),
        }));
    }
    let current = status_of(
        tx.query_opt(
            "SELECT status FROM optout_registry WHERE phone_number = $1",
            &[&req.phone],
        )
        .await?
        .as_ref()
        .map(|r| r.get::<_, &str>(0)),
    );
    let (resulting, changed) = match req.kind {
        RequestKind::OptOut => (Some("opted_out"), current != Status::OptedOut),
        RequestKind::OptIn if current == Status::OptedOut => (Some("opted_in"), true),
        RequestKind::OptIn => return Ok(None),
        RequestKind::Help => (None, false),
    };
    let event_id: Uuid = tx
        .query_one(
            "INSERT INTO optout_events (phone_number, action, keyword, source, source_message_id,
                 raw_text, received_at, resulting_status, changed_status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                &req.phone,
                &req.kind.as_str(),
                &req.keyword,
                &req.source,
                &req.source_message_id,
                &req.raw_text,
                &req.received_at,
                &resulting,
                &changed,
            ],
        )
        .await?
        .get(0);
    if let Some(status) = resulting {
        tx.execute(
            "INSERT INTO optout_registry (phone_number, status, source, reason, last_event_at, last_event_id)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (phone_number) DO UPDATE SET status = EXCLUDED.status, source = EXCLUDED.source,
                 reason = EXCLUDED.reason, last_event_at = EXCLUDED.last_event_at,
                 last_event_id = EXCLUDED.last_event_id, updated_at = now()",
            &[&req.phone, &status, &req.source, &req.keyword, &req.received_at, &event_id],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(Recorded {
        event_id,
        new: true,
        changed,
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

/// What GHL was last told about a number (its contact's SMS DND and tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhlState {
    pub status: String,
    pub event_id: Uuid,
    pub applied_at: DateTime<Utc>,
}

pub async fn ghl_state(pool: &Pool, phone: &str) -> Result<Option<GhlState>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT status, event_id, applied_at FROM optout_ghl_state WHERE phone_number = $1",
            &[&phone],
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
            "INSERT INTO optout_ghl_state (phone_number, ghl_contact_id, status, event_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (phone_number) DO UPDATE SET ghl_contact_id = EXCLUDED.ghl_contact_id,
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
    pub received_at: DateTime<Utc>,
    pub applied_at: DateTime<Utc>,
    pub resulting_status: Option<String>,
    /// The reply sent for it (confirmation, help answer), when one was.
    pub reply: Option<String>,
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
                    e.applied_at, e.resulting_status, r.kind || ': ' || coalesce(s.status, 'not sent')
             FROM optout_events e
             LEFT JOIN optout_replies r ON r.optout_event_id = e.id
             LEFT JOIN texting_sends s ON s.id = r.send_id
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
