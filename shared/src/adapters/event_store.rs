//! The lifecycle of a stored event, one implementation for every inbox table
//! (`webhook_events`, `texting_webhook_events`, later `broadcast_webhook_events`):
//! store at ingest (dedupe, person key, quarantine), claim, finish with the row-owned
//! retry budget and the high-water mark, and the relay's selection of rows whose queue
//! message is gone. Table names come from [`EventKind`] only, never from input.
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::db::DbError;
use crate::domain::dedupe::DedupeKey;
use crate::domain::event::watermark_key;
use crate::domain::texting_webhook::TextingMessage;
use crate::domain::{Classified, EventKind, Source};

pub(crate) fn table(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Webhook => "webhook_events",
        EventKind::Texting => "texting_webhook_events",
        EventKind::Broadcast => "broadcast_webhook_events",
    }
}

/// The `source` of a row: a column for webhooks, implied by the table otherwise.
fn source_expr(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Webhook => "e.source",
        EventKind::Texting => "'texting'::text",
        EventKind::Broadcast => "e.source",
    }
}

/// A webhook about to be stored.
pub struct NewEvent<'a> {
    pub source: Source,
    pub classified: &'a Classified,
    /// The raw body, valid JSON text.
    pub payload_json: &'a str,
    pub dedupe: &'a DedupeKey,
    /// Texting events store the normalised message's parties.
    pub texting: Option<&'a TextingMessage>,
    /// Store held for an operator (`quarantined`) with this reason; not queued.
    pub quarantine: Option<&'a str>,
    /// When the delivery arrived (the handler's clock at the request's start), so a
    /// slow connection does not reorder two deliveries; `None`: the statement's time.
    pub received_at: Option<DateTime<Utc>>,
}

/// A row that needs a queue message: its id, message group source and sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToEnqueue {
    pub id: Uuid,
    pub person_key: String,
    /// The FIFO deduplication id of the message is `<id>-<seq>`.
    pub seq: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A new row; `None` when it was stored quarantined (nothing to queue).
    Inserted {
        id: Uuid,
        enqueue: Option<ToEnqueue>,
    },
    /// A repeat of a stored delivery; `requeue` when the stored row never got a live
    /// message (its send failed, or the ingest died before sending) and needs one now.
    Duplicate {
        id: Uuid,
        requeue: Option<ToEnqueue>,
    },
    /// A new row stored already answered (`skipped`): an earlier waiting event of the
    /// same entity covers it (broadcast events, `broadcast_store`).
    Coalesced { id: Uuid, into: Option<Uuid> },
}

impl Stored {
    pub fn id(&self) -> Uuid {
        match self {
            Stored::Inserted { id, .. }
            | Stored::Duplicate { id, .. }
            | Stored::Coalesced { id, .. } => *id,
        }
    }
}

/// How long after a send a still-untouched `pending` row may be presumed to have lost
/// its message when a duplicate delivery comes in (the ingest's "second chance").
const DUPLICATE_REQUEUE_AFTER: &str = "60 seconds";

/// Positional parameters collected while the SQL text is written, so every `$n` in the
/// text has exactly one value (Postgres refuses unreferenced parameters).
struct Params<'a> {
    values: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Params<'a> {
    fn new() -> Self {
        Params { values: Vec::new() }
    }

    fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }
}

/// Store one delivery in a single statement (one round trip on the new-row path): the
/// dedupe check, the person key resolution and, for quarantined rows, the quarantine
/// record. Duplicates cost a second statement.
pub async fn insert(pool: &Pool, kind: EventKind, new: &NewEvent<'_>) -> Result<Stored, DbError> {
    let client = pool.get().await?;
    insert_on(&client, kind, new).await
}

/// [`insert`] on a connection the caller holds (and discards if the store overruns
/// its budget: `adapters::db::bounded`).
pub async fn insert_on(
    client: &deadpool_postgres::Client,
    kind: EventKind,
    new: &NewEvent<'_>,
) -> Result<Stored, DbError> {
    let c = new.classified;
    let values = InsertValues {
        source: new.source.as_str(),
        fallback: c.fallback_person_key(new.source),
        entity_type: c.entity_type.as_str(),
        stored_key: new.dedupe.stored(),
        dedupe_kind: new.dedupe.kind(),
        watermark: watermark_key(
            new.source.as_str(),
            c.entity_type.as_str(),
            c.entity_id.as_deref(),
        ),
        status: if new.quarantine.is_some() {
            "quarantined"
        } else {
            "pending"
        },
        kind: kind.as_str(),
    };
    let mut params = Params::new();
    let sql = insert_sql(kind, new, &values, &mut params);
    let stmt = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&stmt, &params.values).await?;
    if let Some(row) = row {
        let id: Uuid = row.get(0);
        let enqueue = new.quarantine.is_none().then(|| ToEnqueue {
            id,
            person_key: row.get(1),
            seq: row.get(2),
        });
        return Ok(Stored::Inserted { id, enqueue });
    }
    duplicate_of(client, kind, new.dedupe).await
}

/// Values computed from a [`NewEvent`] that the statement binds by reference.
struct InsertValues {
    source: &'static str,
    fallback: String,
    entity_type: &'static str,
    stored_key: String,
    dedupe_kind: &'static str,
    watermark: Option<String>,
    status: &'static str,
    kind: &'static str,
}

fn insert_sql<'a>(
    kind: EventKind,
    new: &'a NewEvent<'a>,
    v: &'a InsertValues,
    p: &mut Params<'a>,
) -> String {
    let t = table(kind);
    let c = new.classified;
    let head = match new.dedupe {
        DedupeKey::Id(_) => String::new(),
        // Replaces the entity's latest body, or returns nothing when it is the same.
        DedupeKey::Body { entity, hash } => format!(
            "head AS (
                INSERT INTO delivery_heads (kind, entity_key, body_hash, event_id)
                VALUES ({}, {}, {}, gen_random_uuid())
                ON CONFLICT (kind, entity_key) DO UPDATE
                    SET body_hash = EXCLUDED.body_hash, event_id = EXCLUDED.event_id, updated_at = now()
                    WHERE delivery_heads.body_hash <> EXCLUDED.body_hash
                RETURNING event_id),",
            p.bind(&v.kind),
            p.bind(entity),
            p.bind(hash)
        ),
    };
    let fallback = p.bind(&v.fallback);
    let person = match kind {
        // One group per person across providers: the call's first stored event, then
        // the phone of a known mapping, then what the body says. Only the lookups the
        // event has keys for are in the statement (each costs an index probe).
        EventKind::Webhook => {
            let mut lookups = Vec::new();
            if let Some(call_id) = &c.person.call_id {
                lookups.push(format!(
                    "(SELECT w.person_key FROM {t} w WHERE w.source = 'aloware'
                       AND w.entity_type IN ('call', 'recording', 'transcription') AND w.entity_id = {}
                       ORDER BY w.received_at LIMIT 1)",
                    p.bind(call_id)
                ));
            }
            if let Some(id) = &c.person.ghl_contact_id {
                lookups.push(format!(
                    "(SELECT m.phone_number FROM contact_mappings m WHERE m.ghl_contact_id = {})",
                    p.bind(id)
                ));
            }
            if let Some(id) = &c.person.aloware_contact_id {
                lookups.push(format!(
                    "(SELECT m.phone_number FROM contact_mappings m WHERE m.aloware_contact_id = {})",
                    p.bind(id)
                ));
            }
            lookups.push(format!("{fallback}::text"));
            format!("COALESCE({})", lookups.join(", "))
        }
        _ => format!("{fallback}::text"),
    };
    let (columns, values) = match kind {
        EventKind::Webhook => (
            "source, event_type, entity_type, entity_id, location_id, payload_json",
            format!(
                "{}, {}, {}, {}, {}, {}::text::jsonb",
                p.bind(&v.source),
                p.bind(&c.event_type),
                p.bind(&v.entity_type),
                p.bind(&c.entity_id),
                p.bind(&c.location_id),
                p.bind(&new.payload_json)
            ),
        ),
        EventKind::Texting => {
            let m = new.texting;
            const NONE: &Option<String> = &None;
            (
                "event_type, entity_type, entity_id, payload_json, from_number, to_number, conversation_id",
                format!(
                    "{}, {}, {}, {}::text::jsonb, {}, {}, {}",
                    p.bind(&c.event_type),
                    p.bind(&v.entity_type),
                    p.bind(&c.entity_id),
                    p.bind(&new.payload_json),
                    p.bind(m.map_or(NONE, |m| &m.from)),
                    p.bind(m.map_or(NONE, |m| &m.to)),
                    p.bind(m.map_or(NONE, |m| &m.conversation_id)),
                ),
            )
        }
        EventKind::Broadcast => (
            "source, event_type, entity_id, payload_json",
            format!(
                "{}, {}, {}, {}::text::jsonb",
                p.bind(&v.source),
                p.bind(&c.event_type),
                p.bind(&c.entity_id),
                p.bind(&new.payload_json)
            ),
        ),
    };
    // Optimistic send time: the ingest sends right after this statement and clears it
    // when the send fails; a crash in between leaves a send time the relay sees go stale.
    let enqueued = if new.quarantine.is_some() {
        "NULL, 0"
    } else {
        "now(), 1"
    };
    let common = format!(
        "{}, {}, {}, {}, COALESCE({}::timestamptz, now()), {}::timestamptz, {enqueued}",
        p.bind(&v.stored_key),
        p.bind(&v.dedupe_kind),
        p.bind(&v.watermark),
        p.bind(&v.status),
        p.bind(&new.received_at),
        p.bind(&c.occurred_at),
    );
    let target =
        "person_key, dedupe_key, dedupe_kind, watermark_key, status, received_at, occurred_at,
        enqueued_at, enqueue_count";
    let insert = match new.dedupe {
        DedupeKey::Id(_) => format!(
            "INSERT INTO {t} (id, {columns}, {target})
             SELECT gen_random_uuid(), {values}, {person}, {common}
             ON CONFLICT (dedupe_key) WHERE dedupe_kind = 'id' DO NOTHING
             RETURNING id, person_key, enqueue_count"
        ),
        DedupeKey::Body { .. } => format!(
            "INSERT INTO {t} (id, {columns}, {target})
             SELECT head.event_id, {values}, {person}, {common} FROM head
             RETURNING id, person_key, enqueue_count"
        ),
    };
    let quarantine = match &new.quarantine {
        Some(reason) => format!(
            ", held AS (INSERT INTO quarantine_events (event_id, event_source, reason, quarantined_by)
                        SELECT id, {}, {}, 'ingest' FROM ins)",
            p.bind(&v.kind),
            p.bind(reason)
        ),
        None => String::new(),
    };
    format!(
        "WITH {head} ins AS ({insert}){quarantine} SELECT id, person_key, enqueue_count FROM ins"
    )
}

/// The stored row a repeat delivery refers to, re-enqueued when it never got a live
/// message. Runs as its own statement: the insert's snapshot predates a concurrent
/// winner's commit and could not see it.
pub(crate) async fn duplicate_of(
    client: &deadpool_postgres::Client,
    kind: EventKind,
    dedupe: &DedupeKey,
) -> Result<Stored, DbError> {
    let t = table(kind);
    let (target, params): (&str, Vec<String>) = match dedupe {
        DedupeKey::Id(key) => (
            "SELECT id FROM {t} WHERE dedupe_key = $1 AND dedupe_kind = 'id'",
            vec![key.clone()],
        ),
        DedupeKey::Body { entity, .. } => (
            "SELECT event_id AS id FROM delivery_heads WHERE entity_key = $1 AND kind = $2",
            vec![entity.clone(), kind.as_str().to_string()],
        ),
    };
    let target = target.replace("{t}", t);
    let sql = format!(
        "WITH target AS ({target}),
         requeued AS (
            UPDATE {t} SET enqueued_at = now(), enqueue_count = enqueue_count + 1
            WHERE id = (SELECT id FROM target) AND status = 'pending' AND attempts = 0
              AND (enqueued_at IS NULL OR enqueued_at < now() - interval '{DUPLICATE_REQUEUE_AFTER}')
            RETURNING id, person_key, enqueue_count)
         SELECT target.id, requeued.person_key, requeued.enqueue_count
         FROM target LEFT JOIN requeued ON requeued.id = target.id"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let params: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let row = client
        .query_opt(&stmt, &params)
        .await?
        .ok_or_else(|| DbError::Unavailable("the row of a duplicate delivery vanished".into()))?;
    let id: Uuid = row.get(0);
    let requeue = row.get::<_, Option<String>>(1).map(|person_key| ToEnqueue {
        id,
        person_key,
        seq: row.get(2),
    });
    Ok(Stored::Duplicate { id, requeue })
}

/// The send of a freshly stored row failed: no message exists, so the relay (and a
/// duplicate delivery) must send one. The send's sequence number is given back: the
/// resend reuses its FIFO deduplication id, so if the "failed" send did reach SQS, SQS
/// drops the copy.
pub async fn mark_unqueued(pool: &Pool, kind: EventKind, id: Uuid) -> Result<(), DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "UPDATE {} SET enqueued_at = NULL, enqueue_count = GREATEST(enqueue_count - 1, 0) WHERE id = $1",
        table(kind)
    );
    client.execute(&sql, &[&id]).await?;
    Ok(())
}

/// A message arrived out of its person's order (`Unclaimed::Blocked`) and is dropped:
/// the row has no live message now, unless a newer one was sent meanwhile.
pub async fn mark_out_of_line(
    pool: &Pool,
    kind: EventKind,
    id: Uuid,
    seq: Option<i32>,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "UPDATE {} SET enqueued_at = NULL
         WHERE id = $1 AND status IN ('pending', 'error') AND ($2::int IS NULL OR enqueue_count <= $2)",
        table(kind)
    );
    client.execute(&sql, &[&id, &seq]).await?;
    Ok(())
}

/// A claimed event.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub kind: EventKind,
    pub id: Uuid,
    pub source: String,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub payload: Value,
    /// This attempt's number (1-based): the claim counts it.
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    /// The provider's time of the change, when the body says.
    pub occurred_at: Option<DateTime<Utc>>,
    pub person_key: Option<String>,
    pub watermark_key: Option<String>,
    /// The provider's time (else receive time) of the newest change already applied to
    /// the same entity, when it is newer than this one (this event is then stale).
    pub newer_applied_at: Option<DateTime<Utc>>,
}

/// An event's place in its entity's history (SPEC §5): the provider's time of the
/// change, our receive time only where the provider gives none and as the tie-break.
/// `e` is the event table's alias.
pub(crate) const ORDER_KEY: &str = "(COALESCE(e.occurred_at, e.received_at), e.received_at)";

/// Why a row could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclaimed {
    /// done, skipped, failed or quarantined: the message has nothing left to do.
    Finished,
    /// Another consumer holds an unexpired claim; retry after `retry_in`.
    Busy { retry_in: Duration },
    /// Backing off: due in `due_in`.
    NotDue { due_in: Duration },
    /// An older unfinished event of the same person comes first (SPEC §5): this
    /// message is out of order (the older one's message was lost or re-sent behind it).
    /// It is dropped and the row marked unqueued, so the relay re-sends the person's
    /// chain in order.
    Blocked,
    /// The message is not the row's latest (`seq` below its send count): a newer one
    /// was sent (a relay re-send, a replay) and will do the work.
    Obsolete,
    /// No such row.
    Unknown,
}

/// No older unfinished row of the event's person in the same inbox comes first —
/// except one that yields (it stepped aside, waiting for a related event). `e` is the
/// event table's alias; `{t}` the table.
const FIRST_IN_LINE: &str = "NOT EXISTS (
    SELECT 1 FROM {t} o WHERE o.person_key = e.person_key
      AND (o.received_at, o.id) < (e.received_at, e.id)
      AND o.status IN ('pending', 'error', 'processing') AND NOT o.yields)";

/// A message may arrive a moment before its row is due (two clocks): tolerate it.
const DUE_TOLERANCE_SECONDS: f64 = 2.0;

/// `pending|error` (due) or an expired `processing` claim → `processing`, atomically,
/// counting the attempt.
///
/// `seq` is the send number the message carries (`None`: a caller without one, such as
/// `jobs-run-once`): a message older than the row's latest send is [`Unclaimed::Obsolete`].
/// A row whose person has an older unfinished event is [`Unclaimed::Blocked`].
pub async fn claim(
    pool: &Pool,
    kind: EventKind,
    id: Uuid,
    lease: Duration,
    seq: Option<i32>,
) -> Result<Result<EventRow, Unclaimed>, DbError> {
    let client = pool.get().await?;
    claim_on(&client, kind, id, lease, seq).await
}

/// [`claim`] on a connection the caller holds.
pub async fn claim_on(
    client: &deadpool_postgres::Client,
    kind: EventKind,
    id: Uuid,
    lease: Duration,
    seq: Option<i32>,
) -> Result<Result<EventRow, Unclaimed>, DbError> {
    let t = table(kind);
    let source = source_expr(kind);
    let first = FIRST_IN_LINE.replace("{t}", t);
    let sql = format!(
        "UPDATE {t} e SET status = 'processing', attempts = e.attempts + 1,
             claimed_at = now(), updated_at = now()
         WHERE e.id = $1 AND (
             (e.status IN ('pending', 'error') AND e.next_attempt_at <= now() + make_interval(secs => $2))
             OR (e.status = 'processing' AND e.claimed_at < now() - make_interval(secs => $3)))
           AND ($5::int IS NULL OR e.enqueue_count <= $5)
           AND {first}
         RETURNING e.id, {source}, e.event_type, e.entity_type, e.entity_id, e.payload_json, e.attempts,
             e.received_at, e.person_key, e.watermark_key,
             (SELECT w.applied_occurred_at FROM entity_watermarks w
               WHERE w.kind = $4 AND w.entity_key = e.watermark_key
                 AND (w.applied_occurred_at, w.applied_received_at) > {ORDER_KEY}
                 AND w.event_id <> e.id),
             e.occurred_at"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &id,
                &DUE_TOLERANCE_SECONDS,
                &lease.as_secs_f64(),
                &kind.as_str(),
                &seq,
            ],
        )
        .await?;
    if let Some(r) = row {
        return Ok(Ok(EventRow {
            kind,
            id: r.get(0),
            source: r.get(1),
            event_type: r.get(2),
            entity_type: r.get(3),
            entity_id: r.get(4),
            payload: r.get(5),
            attempts: r.get(6),
            received_at: r.get(7),
            person_key: r.get(8),
            watermark_key: r.get(9),
            newer_applied_at: r.get(10),
            occurred_at: r.get(11),
        }));
    }
    let sql = format!(
        "SELECT e.status,
            GREATEST(EXTRACT(EPOCH FROM (e.next_attempt_at - now())), 0)::float8,
            GREATEST(EXTRACT(EPOCH FROM (e.claimed_at + make_interval(secs => $2) - now())), 0)::float8,
            ($3::int IS NOT NULL AND e.enqueue_count > $3), NOT {first}
         FROM {t} e WHERE e.id = $1"
    );
    let row = client
        .query_opt(&sql, &[&id, &lease.as_secs_f64(), &seq])
        .await?;
    Ok(Err(match row {
        None => Unclaimed::Unknown,
        Some(r) => {
            let status: String = r.get(0);
            let secs =
                |i: usize| Duration::from_secs_f64(r.get::<_, Option<f64>>(i).unwrap_or(0.0));
            let (obsolete, blocked): (bool, bool) = (r.get(3), r.get(4));
            let unfinished = matches!(status.as_str(), "pending" | "error" | "processing");
            if unfinished && obsolete {
                return Ok(Err(Unclaimed::Obsolete));
            }
            if matches!(status.as_str(), "pending" | "error") && blocked {
                return Ok(Err(Unclaimed::Blocked));
            }
            match status.as_str() {
                "processing" => Unclaimed::Busy {
                    retry_in: secs(2).max(Duration::from_secs(1)),
                },
                "pending" | "error" => Unclaimed::NotDue {
                    due_in: secs(1).max(Duration::from_secs(1)),
                },
                _ => Unclaimed::Finished,
            }
        }
    }))
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Finish {
    Done,
    /// Nothing to do; `advances_watermark` when the entity's state was seen as is (an
    /// echo, no change), not when the event was stale or held.
    Skipped {
        reason: String,
        advances_watermark: bool,
    },
    /// Retryable: `error`, due again after `retry_in`. `step_aside`: the row gives up
    /// its queue message (it is acknowledged) so the events behind it in its FIFO group
    /// go first; the relay sends it a new one when it is due.
    Retry {
        message: String,
        retry_in: Duration,
        step_aside: bool,
        /// The attempt did not really happen (our own throttling): give it back.
        refund: bool,
        /// Held by the pause of this provider until it resumes (`provider_pause`).
        held_by: Option<&'static str>,
    },
    /// Final: `failed`.
    Failed {
        message: String,
    },
}

impl Finish {
    /// The error text of a failed attempt.
    pub fn error(&self) -> Option<&str> {
        match self {
            Finish::Retry { message, .. } | Finish::Failed { message } => Some(message),
            _ => None,
        }
    }
}

/// The sync log entry written with the outcome.
pub struct SyncLog<'a> {
    pub direction: &'a str,
    pub entity_type: &'a str,
    pub entity_id: Option<&'a str>,
    pub source_id: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub status: &'a str,
    pub started_at: DateTime<Utc>,
    pub error_message: Option<String>,
    pub decisions: Value,
}

/// Record an attempt's outcome, the entity's high-water mark and the sync log in one
/// statement. `Ok(false)` when the claim was lost meanwhile (another consumer took over
/// an expired lease): the outcome belongs to that consumer now.
pub async fn finish(
    pool: &Pool,
    event: &EventRow,
    how: &Finish,
    log: &SyncLog<'_>,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    finish_on(&client, event, how, log).await
}

/// [`finish`] on a connection the caller holds.
pub async fn finish_on(
    client: &deadpool_postgres::Client,
    event: &EventRow,
    how: &Finish,
    log: &SyncLog<'_>,
) -> Result<bool, DbError> {
    let t = table(event.kind);
    let (status, skip, error, retry_in, advances) = match how {
        Finish::Done => ("done", None, None, 0.0, true),
        Finish::Skipped {
            reason,
            advances_watermark,
        } => (
            "skipped",
            Some(reason.as_str()),
            None,
            0.0,
            *advances_watermark,
        ),
        Finish::Retry {
            message, retry_in, ..
        } => (
            "error",
            None,
            Some(message.as_str()),
            retry_in.as_secs_f64(),
            false,
        ),
        Finish::Failed { message } => ("failed", None, Some(message.as_str()), 0.0, false),
    };
    let step_aside = matches!(
        how,
        Finish::Retry {
            step_aside: true,
            ..
        }
    );
    let refund = matches!(how, Finish::Retry { refund: true, .. });
    let held_by = match how {
        Finish::Retry { held_by, .. } => *held_by,
        _ => None,
    };
    let sql = format!(
        "WITH fin AS (
            UPDATE {t} SET status = $3, skip_reason = $4, error_message = $5, updated_at = now(),
                next_attempt_at = now() + make_interval(secs => $6),
                enqueued_at = CASE WHEN $18 THEN NULL ELSE enqueued_at END,
                attempts = attempts - CASE WHEN $19 THEN 1 ELSE 0 END,
                paused_provider = $20,
                yields = ($3 = 'error' AND $18 AND $20::text IS NULL),
                processed_at = CASE WHEN $3 IN ('done', 'skipped', 'failed') THEN now() ELSE processed_at END
            WHERE id = $1 AND status = 'processing' AND attempts = $2
            RETURNING id, watermark_key, received_at, occurred_at),
         mark AS (
            INSERT INTO entity_watermarks (kind, entity_key, applied_occurred_at, applied_received_at, event_id)
            SELECT $7, watermark_key, COALESCE(occurred_at, received_at), received_at, id FROM fin
            WHERE $8 AND watermark_key IS NOT NULL
            ON CONFLICT (kind, entity_key) DO UPDATE
                SET applied_occurred_at = EXCLUDED.applied_occurred_at,
                    applied_received_at = EXCLUDED.applied_received_at,
                    event_id = EXCLUDED.event_id, updated_at = now()
                WHERE (entity_watermarks.applied_occurred_at, entity_watermarks.applied_received_at)
                    < (EXCLUDED.applied_occurred_at, EXCLUDED.applied_received_at)),
         logged AS (
            INSERT INTO sync_log (direction, entity_type, entity_id, source_id, target_id, status,
                started_at, finished_at, error_message, correlation_id, decisions)
            SELECT $9, $10, $11, $12, $13, $14, $15, now(), $16, id::text, $17 FROM fin)
         SELECT count(*) FROM fin"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &event.id,
                &event.attempts,
                &status,
                &skip,
                &error,
                &retry_in,
                &event.kind.as_str(),
                &advances,
                &log.direction,
                &log.entity_type,
                &log.entity_id,
                &log.source_id,
                &log.target_id,
                &log.status,
                &log.started_at,
                &log.error_message,
                &log.decisions,
                &step_aside,
                &refund,
                &held_by,
            ],
        )
        .await?;
    Ok(row.get::<_, i64>(0) == 1)
}

/// A deferred attempt gives its attempt back: the record ran out of the function's time
/// before it could start for real, so it must not spend the budget.
pub async fn release(pool: &Pool, event: &EventRow, retry_in: Duration) -> Result<(), DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "UPDATE {} SET status = CASE WHEN attempts > 1 THEN 'error' ELSE 'pending' END,
             attempts = attempts - 1, updated_at = now(),
             next_attempt_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND status = 'processing' AND attempts = $2",
        table(event.kind)
    );
    client
        .execute(&sql, &[&event.id, &event.attempts, &retry_in.as_secs_f64()])
        .await?;
    Ok(())
}

/// Status of one row (`None`: unknown).
pub async fn status(pool: &Pool, kind: EventKind, id: Uuid) -> Result<Option<String>, DbError> {
    let client = pool.get().await?;
    let sql = format!("SELECT status FROM {} WHERE id = $1", table(kind));
    Ok(client.query_opt(&sql, &[&id]).await?.map(|r| r.get(0)))
}

/// Hold an event for an operator: it is never processed until replayed.
pub async fn quarantine(
    pool: &Pool,
    kind: EventKind,
    id: Uuid,
    reason: &str,
    by: Option<&str>,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "WITH q AS (UPDATE {} SET status = 'quarantined', updated_at = now()
                    WHERE id = $1 AND status <> 'processing' RETURNING id)
         INSERT INTO quarantine_events (event_id, event_source, reason, quarantined_by)
         SELECT id, $2, $3, $4 FROM q RETURNING event_id",
        table(kind)
    );
    let row = client
        .query_opt(&sql, &[&id, &kind.as_str(), &reason, &by])
        .await?;
    Ok(row.is_some())
}

/// Relay bookkeeping of the rows chosen for a resend, in the order to send them.
#[derive(Debug, Clone)]
pub struct Resend {
    pub id: Uuid,
    pub person_key: String,
    pub seq: i32,
}

/// Rows whose queue message is lost, and every other unfinished row of their persons:
/// unqueued (`enqueued_at = NULL`), so the relay re-sends each person's whole chain in
/// order, and their surviving messages become obsolete. An attempt in progress keeps its
/// claim (it is only marked: when it ends it has no message to come back with).
const LOSE_CHAINS: &str = "UPDATE {t} e SET enqueued_at = NULL
     FROM (SELECT DISTINCT person_key FROM lost WHERE person_key IS NOT NULL) p
     WHERE e.person_key = p.person_key AND e.enqueued_at IS NOT NULL
       AND e.status IN ('pending', 'error', 'processing')";

async fn lose(
    pool: &Pool,
    kind: EventKind,
    lost: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let sql = format!(
        "WITH lost AS ({}) {}",
        lost.replace("{t}", t),
        LOSE_CHAINS.replace("{t}", t)
    );
    Ok(client.execute(&sql, params).await?)
}

/// Every chain with a row sent before `before` (its queue was recreated or emptied).
pub async fn lose_chains_sent_before(
    pool: &Pool,
    kind: EventKind,
    before: DateTime<Utc>,
) -> Result<u64, DbError> {
    lose(
        pool,
        kind,
        "SELECT person_key FROM {t} WHERE status IN ('pending', 'error', 'processing')
           AND enqueued_at < $1",
        &[&before],
    )
    .await
}

/// The chains of rows `ids` (their messages were dead-lettered).
pub async fn lose_chains_of(pool: &Pool, kind: EventKind, ids: &[Uuid]) -> Result<u64, DbError> {
    lose(
        pool,
        kind,
        "SELECT person_key FROM {t} WHERE id = ANY($1) AND status IN ('pending', 'error', 'processing')",
        &[&ids],
    )
    .await
}

/// The last resort: chains whose first row is due and has shown no sign of life (send,
/// claim, finish, due time) for `stale`, or whose attempt outlived its claim's lease.
pub async fn lose_stale_chains(
    pool: &Pool,
    kind: EventKind,
    stale: Duration,
    lease: Duration,
) -> Result<u64, DbError> {
    let first = FIRST_IN_LINE;
    lose(
        pool,
        kind,
        &format!(
            "SELECT e.person_key FROM {{t}} e
             WHERE ((e.status IN ('pending', 'error') AND e.next_attempt_at <= now()
                     AND GREATEST(e.enqueued_at, e.updated_at, e.next_attempt_at) < now() - make_interval(secs => $1))
                    OR (e.status = 'processing' AND e.claimed_at < now() - make_interval(secs => $2)))
               AND e.enqueued_at IS NOT NULL AND {first}"
        ),
        &[&stale.as_secs_f64(), &lease.as_secs_f64()],
    )
    .await
}

/// An operator's push (`jobs-enqueue-pending`): the chains of up to `limit` persons
/// whose first row is due, least recently sent first, are re-sent now.
pub async fn lose_due_chains(pool: &Pool, kind: EventKind, limit: i64) -> Result<u64, DbError> {
    let first = FIRST_IN_LINE;
    lose(
        pool,
        kind,
        &format!(
            "SELECT e.person_key FROM {{t}} e
             WHERE e.status IN ('pending', 'error') AND e.next_attempt_at <= now()
               AND e.paused_provider IS NULL AND {first}
             ORDER BY e.enqueued_at NULLS FIRST, e.received_at LIMIT $1"
        ),
        &[&limit],
    )
    .await
}

/// The chains (persons after `after`, at most `persons` of them) that have a row
/// without a message the relay could send now; each chain whole, oldest first.
pub async fn chain_links(
    pool: &Pool,
    kind: EventKind,
    after: Option<&str>,
    persons: i64,
) -> Result<Vec<crate::domain::chain::Link>, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let sql = format!(
        "WITH p AS (
            SELECT DISTINCT e.person_key FROM {t} e
            WHERE e.status IN ('pending', 'error') AND e.enqueued_at IS NULL
              AND e.paused_provider IS NULL AND e.person_key > $1
              AND (NOT e.yields OR e.next_attempt_at <= now() + make_interval(secs => $3))
            ORDER BY e.person_key LIMIT $2)
         SELECT e.id, e.person_key,
                e.enqueued_at IS NOT NULL OR e.status = 'processing',
                e.paused_provider IS NOT NULL, e.yields,
                e.next_attempt_at <= now() + make_interval(secs => $3)
         FROM {t} e JOIN p ON p.person_key = e.person_key
         WHERE e.status IN ('pending', 'error', 'processing')
         ORDER BY e.person_key, e.received_at, e.id"
    );
    let rows = client
        .query(
            &sql,
            &[&after.unwrap_or(""), &persons, &DUE_TOLERANCE_SECONDS],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| crate::domain::chain::Link {
            id: r.get(0),
            person_key: r.get(1),
            live: r.get(2),
            held: r.get(3),
            yields: r.get(4),
            due: r.get(5),
        })
        .collect())
}

/// Rows `ids` are being sent now (in that order): each gets a new send number, unless
/// it was finished or sent meanwhile.
pub async fn mark_sent(pool: &Pool, kind: EventKind, ids: &[Uuid]) -> Result<Vec<Resend>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await?;
    let sql = format!(
        "UPDATE {} e SET enqueued_at = now(), enqueue_count = e.enqueue_count + 1
         WHERE e.id = ANY($1) AND e.enqueued_at IS NULL AND e.status IN ('pending', 'error')
         RETURNING e.id, e.person_key, e.enqueue_count",
        table(kind)
    );
    let rows = client.query(&sql, &[&ids]).await?;
    let mut sent: std::collections::HashMap<Uuid, Resend> = rows
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            (
                id,
                Resend {
                    id,
                    person_key: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    seq: r.get(2),
                },
            )
        })
        .collect();
    Ok(ids.iter().filter_map(|id| sent.remove(id)).collect())
}

/// What the relay last saw of an inbox's queue, and what it sees now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSeen {
    pub queue_url: Option<String>,
    pub created_timestamp: Option<f64>,
    pub empty_since: Option<DateTime<Utc>>,
}

/// Record an observation of `kind`'s queue; returns the previous one (`None` the first
/// time) and the time the queue has been empty since (now included).
pub async fn observe_queue(
    pool: &Pool,
    kind: EventKind,
    queue_url: &str,
    created_timestamp: Option<f64>,
    empty: bool,
    lost: u64,
) -> Result<(Option<QueueSeen>, Option<DateTime<Utc>>), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let before = tx
        .query_opt(
            "SELECT queue_url, created_timestamp, empty_since FROM queue_observations WHERE kind = $1 FOR UPDATE",
            &[&kind.as_str()],
        )
        .await?
        .map(|r| QueueSeen {
            queue_url: r.get(0),
            created_timestamp: r.get(1),
            empty_since: r.get(2),
        });
    let row = tx
        .query_one(
            "INSERT INTO queue_observations (kind, queue_url, created_timestamp, empty_since, losses_detected)
             VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END, $5)
             ON CONFLICT (kind) DO UPDATE SET queue_url = EXCLUDED.queue_url,
                 created_timestamp = COALESCE(EXCLUDED.created_timestamp, queue_observations.created_timestamp),
                 empty_since = CASE WHEN $4 THEN COALESCE(queue_observations.empty_since, now()) END,
                 losses_detected = queue_observations.losses_detected + $5, observed_at = now()
             RETURNING empty_since",
            &[&kind.as_str(), &queue_url, &created_timestamp, &empty, &(lost as i64)],
        )
        .await?;
    tx.commit().await?;
    Ok((before, row.get(0)))
}

/// Rows the relay chose but could not send: back to "no message" (and to the sequence
/// number they had, as in [`mark_unqueued`]).
pub async fn unmark_resends(pool: &Pool, kind: EventKind, ids: &[Uuid]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let client = pool.get().await?;
    let sql = format!(
        "UPDATE {} SET enqueued_at = NULL, enqueue_count = GREATEST(enqueue_count - 1, 0) WHERE id = ANY($1)",
        table(kind)
    );
    client.execute(&sql, &[&ids]).await?;
    Ok(())
}

/// Unfinished rows and the age of the oldest (the relay's and operators' backlog view).
pub async fn backlog(pool: &Pool, kind: EventKind) -> Result<(i64, Option<f64>), DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT count(*), EXTRACT(EPOCH FROM (now() - min(received_at)))::float8
         FROM {} WHERE status IN ('pending', 'error', 'processing')",
        table(kind)
    );
    let r = client.query_one(&sql, &[]).await?;
    Ok((r.get(0), r.get(1)))
}

/// Rows waiting for an attempt (`pending`, `error`).
pub async fn pending_count(pool: &Pool, kind: EventKind) -> Result<i64, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT count(*) FROM {} WHERE status IN ('pending', 'error')",
        table(kind)
    );
    Ok(client.query_one(&sql, &[]).await?.get(0))
}

/// Up to `limit` due rows that are the oldest unfinished row of their person, oldest
/// first: what `jobs-run-once` may process now without overtaking anyone's older event.
pub async fn due_heads(pool: &Pool, kind: EventKind, limit: i64) -> Result<Vec<Uuid>, DbError> {
    let client = pool.get().await?;
    let t = table(kind);
    let sql = format!(
        "SELECT e.id FROM {t} e
         WHERE e.status IN ('pending', 'error') AND e.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1 FROM {t} o WHERE o.person_key = e.person_key
                 AND o.received_at < e.received_at AND o.status IN ('pending', 'error', 'processing'))
         ORDER BY e.received_at LIMIT $1"
    );
    Ok(client
        .query(&sql, &[&limit])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
