//! Postgres side of the sync engine: contact mappings, call notes, write fingerprints,
//! the sync log's extra entries, tag snapshots and the tag → list map. (The event
//! lifecycle itself is `adapters::event_store`.)
use std::time::Duration;

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::db::DbError;
use crate::domain::call::CallFacts;

#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub aloware_contact_id: Option<String>,
    pub ghl_contact_id: Option<String>,
}

pub async fn mapping_by_aloware(pool: &Pool, aloware_id: &str) -> Result<Option<Mapping>, DbError> {
    mapping_where(pool, "aloware_contact_id", aloware_id).await
}

pub async fn mapping_by_ghl(pool: &Pool, ghl_id: &str) -> Result<Option<Mapping>, DbError> {
    mapping_where(pool, "ghl_contact_id", ghl_id).await
}

/// The mapping whose stored phone (E.164) is `phone`, then whose email is `email`
/// (SPEC §6: mapping, then the mapped phone and email, then the provider).
pub async fn mapping_by_phone_or_email(
    pool: &Pool,
    phone: Option<&str>,
    email: Option<&str>,
) -> Result<Option<Mapping>, DbError> {
    if let Some(phone) = phone {
        if let Some(m) = mapping_where(pool, "phone_number", phone).await? {
            return Ok(Some(m));
        }
    }
    match email {
        Some(email) => mapping_where(pool, "email", &email.to_lowercase()).await,
        None => Ok(None),
    }
}

/// The phone mapped to GHL contact `ghl_id`.
pub async fn mapping_by_ghl_phone(pool: &Pool, ghl_id: &str) -> Result<Option<String>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT phone_number FROM contact_mappings WHERE ghl_contact_id = $1",
            &[&ghl_id],
        )
        .await?
        .and_then(|r| r.get(0)))
}

/// Every mapped GHL contact with this phone (duplicates in GHL map separately).
pub async fn ghl_contacts_by_phone(pool: &Pool, phone: &str) -> Result<Vec<String>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT ghl_contact_id FROM contact_mappings WHERE phone_number = $1
               AND ghl_contact_id IS NOT NULL ORDER BY updated_at DESC",
            &[&phone],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

async fn mapping_where(pool: &Pool, column: &str, value: &str) -> Result<Option<Mapping>, DbError> {
    let client = pool.get().await?;
    // `column` is one of this module's literals, never input.
    let sql = format!(
        "SELECT aloware_contact_id, ghl_contact_id FROM contact_mappings WHERE {column} = $1
         ORDER BY updated_at DESC LIMIT 1"
    );
    let row = client.query_opt(&sql, &[&value]).await?;
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
) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(aloware_id) = aloware_id {
        tx.execute(
            "UPDATE contact_mappings SET aloware_contact_id = NULL, updated_at = now() WHERE aloware_contact_id = $1 AND ghl_contact_id <> $2",
            &[&aloware_id, &ghl_id],
        )
        .await?;
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
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn delete_mapping_by_ghl(pool: &Pool, ghl_id: &str) -> Result<u64, DbError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM contact_mappings WHERE ghl_contact_id = $1",
            &[&ghl_id],
        )
        .await?)
}

/// The call's GHL note as far as it exists: the intent of an event creating it, the
/// contact it goes on, and the note once GHL returned its id.
#[derive(Debug, Clone)]
pub struct CallNote {
    pub ghl_contact_id: Option<String>,
    pub ghl_note_id: Option<String>,
    pub facts: CallFacts,
    /// Call tags already added to the GHL contact.
    pub tags_written: Vec<String>,
}

impl CallNote {
    /// `(contact, note)` once the note exists.
    pub fn written(&self) -> Option<(&str, &str)> {
        Some((
            self.ghl_contact_id.as_deref()?,
            self.ghl_note_id.as_deref()?,
        ))
    }
}

fn call_note_of(r: &tokio_postgres::Row) -> CallNote {
    CallNote {
        ghl_contact_id: r.get(0),
        ghl_note_id: r.get(1),
        facts: serde_json::from_value(r.get(2)).unwrap_or_default(),
        tags_written: r.get(3),
    }
}

const NOTE_COLUMNS: &str = "ghl_contact_id, ghl_note_id, call_facts, tags_written";

pub async fn call_note(pool: &Pool, call_id: &str) -> Result<Option<CallNote>, DbError> {
    let client = pool.get().await?;
    let sql = format!("SELECT {NOTE_COLUMNS} FROM call_notes WHERE aloware_call_id = $1");
    let row = client.query_opt(&sql, &[&call_id]).await?;
    Ok(row.as_ref().map(call_note_of))
}

/// The outcome of asking to create a call's note.
#[derive(Debug, Clone)]
pub enum NoteIntent {
    /// This event may create the note. `resumed`: an earlier attempt (this event's, or
    /// one whose intent expired) may already have created it in GHL.
    Mine { resumed: bool, note: CallNote },
    /// Another event is creating it right now.
    Held,
    /// The note exists already.
    Written(CallNote),
}

/// Take (or resume) the intent to create the call's note. Racing events serialise on
/// the call's row: exactly one holds the intent at a time.
pub async fn take_note_intent(
    pool: &Pool,
    call_id: &str,
    event_id: Uuid,
    lease: Duration,
) -> Result<NoteIntent, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "INSERT INTO call_notes (aloware_call_id, creating_event, creating_since)
         VALUES ($1, $2, now())
         ON CONFLICT (aloware_call_id) DO UPDATE SET creating_event = $2,
             creating_since = CASE WHEN call_notes.creating_event = $2 THEN call_notes.creating_since ELSE now() END
         WHERE call_notes.ghl_note_id IS NULL
           AND (call_notes.creating_event IS NULL OR call_notes.creating_event = $2
                OR call_notes.creating_since < now() - make_interval(secs => $3))
         RETURNING {NOTE_COLUMNS}, (xmax <> 0)"
    );
    let row = client
        .query_opt(&sql, &[&call_id, &event_id, &lease.as_secs_f64()])
        .await?;
    if let Some(r) = row {
        // xmax <> 0: the row existed (an earlier attempt left its intent).
        return Ok(NoteIntent::Mine {
            resumed: r.get(4),
            note: call_note_of(&r),
        });
    }
    match call_note(pool, call_id).await? {
        Some(note) if note.ghl_note_id.is_some() => Ok(NoteIntent::Written(note)),
        _ => Ok(NoteIntent::Held),
    }
}

/// Remember the GHL contact the note goes on (before it is created).
pub async fn save_note_contact(
    pool: &Pool,
    call_id: &str,
    ghl_contact_id: &str,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE call_notes SET ghl_contact_id = $2, updated_at = now() WHERE aloware_call_id = $1",
            &[&call_id, &ghl_contact_id],
        )
        .await?;
    Ok(())
}

/// The note exists in GHL: its id and what it says, and the intent is over.
pub async fn save_note_written(
    pool: &Pool,
    call_id: &str,
    ghl_contact_id: &str,
    ghl_note_id: &str,
    facts: &CallFacts,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    let facts_json = serde_json::to_value(facts).unwrap_or_default();
    client
        .execute(
            "UPDATE call_notes SET ghl_contact_id = $2, ghl_note_id = $3, call_facts = $4,
                 disposition = $5, recording_url = $6, summary = $7,
                 creating_event = NULL, creating_since = NULL, updated_at = now()
             WHERE aloware_call_id = $1",
            &[
                &call_id,
                &ghl_contact_id,
                &ghl_note_id,
                &facts_json,
                &facts.disposition,
                &facts.recording_url,
                &facts.summary,
            ],
        )
        .await?;
    Ok(())
}

/// The call tags now on the GHL contact.
pub async fn save_note_tags(pool: &Pool, call_id: &str, tags: &[String]) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE call_notes SET tags_written = $2, updated_at = now() WHERE aloware_call_id = $1",
            &[&call_id, &tags],
        )
        .await?;
    Ok(())
}

pub async fn record_fingerprint(
    pool: &Pool,
    system: &str,
    entity_id: &str,
    hash: &str,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO write_fingerprints (system, entity_id, fields_hash) VALUES ($1, $2, $3)",
            &[&system, &entity_id, &hash],
        )
        .await?;
    Ok(())
}

/// Whether these fields are the echo of the middleware's *latest* write to the entity,
/// within the echo window (SPEC §5): a person reverting to a value we wrote earlier
/// (A → B → A) is a real change, not an echo.
pub async fn is_echo(
    pool: &Pool,
    system: &str,
    entity_id: &str,
    hash: &str,
    window_seconds: i64,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT fields_hash = $3 FROM write_fingerprints WHERE system = $1 AND entity_id = $2
               AND written_at > now() - make_interval(secs => $4)
             ORDER BY written_at DESC, id DESC LIMIT 1",
            &[&system, &entity_id, &hash, &(window_seconds as f64)],
        )
        .await?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// A real change of the entity was applied: what we wrote before is no longer what it
/// holds, so none of those writes can be echoed any more.
pub async fn forget_fingerprints(
    pool: &Pool,
    system: &str,
    entity_id: &str,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "DELETE FROM write_fingerprints WHERE system = $1 AND entity_id = $2",
            &[&system, &entity_id],
        )
        .await?;
    Ok(())
}

pub async fn tag_snapshot(pool: &Pool, ghl_id: &str) -> Result<Vec<String>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT tags FROM contact_tag_snapshots WHERE ghl_contact_id = $1",
            &[&ghl_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)).unwrap_or_default())
}

pub async fn save_tag_snapshot(
    pool: &Pool,
    ghl_id: &str,
    tags: &std::collections::BTreeSet<String>,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    let tags: Vec<&String> = tags.iter().collect();
    client
        .execute(
            "INSERT INTO contact_tag_snapshots (ghl_contact_id, tags) VALUES ($1, $2)
             ON CONFLICT (ghl_contact_id) DO UPDATE SET tags = EXCLUDED.tags, updated_at = now()",
            &[&ghl_id, &tags],
        )
        .await?;
    Ok(())
}

/// Tag → list id: `call_list_mappings` rows over the configured map (rows win).
pub async fn call_list_map(
    pool: &Pool,
    configured: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT ghl_tag, aloware_list_id FROM call_list_mappings",
            &[],
        )
        .await?;
    let mut map = configured.clone();
    map.extend(
        rows.iter()
            .map(|r| (r.get::<_, String>(0).to_lowercase(), r.get(1))),
    );
    Ok(map)
}

/// A texting message's GHL record as far as it exists.
#[derive(Debug, Clone, Default)]
pub struct MessageMapping {
    pub ghl_contact_id: Option<String>,
    /// The GHL note id or conversation message id.
    pub ghl_record_id: Option<String>,
    /// `note` or `conversation`.
    pub ghl_record_kind: Option<String>,
    pub conversation_id: Option<String>,
    pub status: Option<String>,
    /// When the current intent was taken (a resumed attempt only adopts records newer).
    pub creating_since: Option<chrono::DateTime<chrono::Utc>>,
}

const MESSAGE_COLUMNS: &str =
    "ghl_contact_id, ghl_message_id, ghl_record_kind, conversation_id, status, creating_since";

fn message_mapping_of(r: &tokio_postgres::Row) -> MessageMapping {
    MessageMapping {
        ghl_contact_id: r.get(0),
        ghl_record_id: r.get(1),
        ghl_record_kind: r.get(2),
        conversation_id: r.get(3),
        status: r.get(4),
        creating_since: r.get(5),
    }
}

pub async fn message_mapping(
    pool: &Pool,
    texting_id: &str,
) -> Result<Option<MessageMapping>, DbError> {
    let client = pool.get().await?;
    let sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM message_mappings WHERE texting_message_id = $1");
    Ok(client
        .query_opt(&sql, &[&texting_id])
        .await?
        .as_ref()
        .map(message_mapping_of))
}

/// The outcome of asking to write a texting message's GHL record.
#[derive(Debug, Clone)]
pub enum MessageIntent {
    /// This event may write it; `resumed`: an earlier attempt may already have.
    Mine {
        resumed: bool,
        mapping: MessageMapping,
    },
    /// Another event is writing it now.
    Held,
    /// It exists.
    Written(MessageMapping),
}

pub async fn take_message_intent(
    pool: &Pool,
    texting_id: &str,
    event_id: Uuid,
    lease: Duration,
) -> Result<MessageIntent, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "INSERT INTO message_mappings (texting_message_id, creating_event, creating_since)
         VALUES ($1, $2, now())
         ON CONFLICT (texting_message_id) DO UPDATE SET creating_event = $2,
             creating_since = CASE WHEN message_mappings.creating_event = $2
                                   THEN message_mappings.creating_since ELSE now() END
         WHERE message_mappings.ghl_message_id IS NULL
           AND (message_mappings.creating_event IS NULL OR message_mappings.creating_event = $2
                OR message_mappings.creating_since < now() - make_interval(secs => $3))
         RETURNING {MESSAGE_COLUMNS}, (xmax <> 0)"
    );
    if let Some(r) = client
        .query_opt(&sql, &[&texting_id, &event_id, &lease.as_secs_f64()])
        .await?
    {
        return Ok(MessageIntent::Mine {
            resumed: r.get(6),
            mapping: message_mapping_of(&r),
        });
    }
    match message_mapping(pool, texting_id).await? {
        Some(m) if m.ghl_record_id.is_some() => Ok(MessageIntent::Written(m)),
        _ => Ok(MessageIntent::Held),
    }
}

/// What a texting message's mapping records.
pub struct MessageWritten<'a> {
    pub ghl_contact_id: &'a str,
    pub ghl_record_id: &'a str,
    pub kind: &'a str,
    pub conversation_id: Option<&'a str>,
    pub direction: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub status: &'a str,
}

pub async fn save_message_written(
    pool: &Pool,
    texting_id: &str,
    m: &MessageWritten<'_>,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE message_mappings SET ghl_contact_id = $2, ghl_message_id = $3, ghl_record_kind = $4,
                 conversation_id = $5, direction = $6, from_number = $7, to_number = $8,
                 status = coalesce(status, $9), creating_event = NULL, creating_since = NULL, updated_at = now()
             WHERE texting_message_id = $1",
            &[
                &texting_id,
                &m.ghl_contact_id,
                &m.ghl_record_id,
                &m.kind,
                &m.conversation_id,
                &m.direction,
                &m.from,
                &m.to,
                &m.status,
            ],
        )
        .await?;
    Ok(())
}

/// A delivery status for a texting message (the mapping is created when the status
/// arrives before the message itself); the history keeps every status seen.
pub async fn save_message_status(
    pool: &Pool,
    texting_id: &str,
    status: &str,
) -> Result<MessageMapping, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "INSERT INTO message_mappings (texting_message_id, status, status_history)
         VALUES ($1, $2, jsonb_build_array(jsonb_build_object('status', $2::text, 'at', now())))
         ON CONFLICT (texting_message_id) DO UPDATE SET status = EXCLUDED.status,
             status_history = message_mappings.status_history || EXCLUDED.status_history, updated_at = now()
         RETURNING {MESSAGE_COLUMNS}"
    );
    let row = client.query_one(&sql, &[&texting_id, &status]).await?;
    Ok(message_mapping_of(&row))
}

/// The contact's GHL conversation, when known.
pub async fn conversation_of(pool: &Pool, ghl_contact_id: &str) -> Result<Option<String>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT conversation_id FROM ghl_conversations WHERE ghl_contact_id = $1",
            &[&ghl_contact_id],
        )
        .await?
        .map(|r| r.get(0)))
}

pub async fn save_conversation(
    pool: &Pool,
    ghl_contact_id: &str,
    conversation_id: &str,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO ghl_conversations (ghl_contact_id, conversation_id) VALUES ($1, $2)
             ON CONFLICT (ghl_contact_id) DO UPDATE SET conversation_id = EXCLUDED.conversation_id",
            &[&ghl_contact_id, &conversation_id],
        )
        .await?;
    Ok(())
}

/// The call's message in the GHL conversation, once recorded.
pub async fn save_call_message(
    pool: &Pool,
    call_id: &str,
    message_id: &str,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE call_notes SET ghl_message_id = $2, message_creating_event = NULL,
                 message_creating_since = NULL, updated_at = now() WHERE aloware_call_id = $1",
            &[&call_id, &message_id],
        )
        .await?;
    Ok(())
}

/// The outcome of asking to record a call in its GHL conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallMessageIntent {
    /// This event may write it; `resumed`: an earlier attempt (this event's, or one
    /// whose intent expired) may already have.
    Mine { resumed: bool },
    /// Another event of the call is writing it now.
    Held,
    /// It exists.
    Written(String),
}

/// Take (or resume) the intent to record call `call_id` in the conversation, as for
/// its note: racing events of the call serialise on its row.
pub async fn take_call_message_intent(
    pool: &Pool,
    call_id: &str,
    event_id: Uuid,
    lease: Duration,
) -> Result<CallMessageIntent, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE call_notes SET message_creating_event = $2,
                 message_creating_since = CASE WHEN message_creating_event = $2
                     THEN message_creating_since ELSE now() END
             WHERE aloware_call_id = $1 AND ghl_message_id IS NULL
               AND (message_creating_event IS NULL OR message_creating_event = $2
                    OR message_creating_since < now() - make_interval(secs => $3))
             RETURNING (SELECT message_creating_event IS NOT NULL FROM call_notes WHERE aloware_call_id = $1)",
            &[&call_id, &event_id, &lease.as_secs_f64()],
        )
        .await?;
    if let Some(r) = row {
        return Ok(CallMessageIntent::Mine { resumed: r.get(0) });
    }
    Ok(match call_message(pool, call_id).await? {
        Some(id) => CallMessageIntent::Written(id),
        None => CallMessageIntent::Held,
    })
}

pub async fn call_message(pool: &Pool, call_id: &str) -> Result<Option<String>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT ghl_message_id FROM call_notes WHERE aloware_call_id = $1",
            &[&call_id],
        )
        .await?
        .and_then(|r| r.get(0)))
}

/// Whether a GHL conversation message is already the record of some texting message or
/// call (a retried attempt adopts only a message nobody owns).
pub async fn ghl_message_owned(pool: &Pool, message_id: &str) -> Result<bool, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM message_mappings WHERE ghl_message_id = $1)
                 OR EXISTS (SELECT 1 FROM call_notes WHERE ghl_message_id = $1)",
            &[&message_id],
        )
        .await?
        .get(0))
}

/// The newest stored Aloware body of contact `aloware_id` (a contact event's `body`).
pub async fn latest_aloware_contact(
    pool: &Pool,
    aloware_id: &str,
) -> Result<Option<serde_json::Value>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT COALESCE(payload_json->'body', payload_json) FROM webhook_events
             WHERE source = 'aloware' AND entity_type = 'contact' AND entity_id = $1
               AND payload_purged_at IS NULL
             ORDER BY received_at DESC LIMIT 1",
            &[&aloware_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The phone stored with the mapping of Aloware contact `aloware_id`.
pub async fn mapped_phone_of_aloware(
    pool: &Pool,
    aloware_id: &str,
) -> Result<Option<String>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT phone_number FROM contact_mappings WHERE aloware_contact_id = $1",
            &[&aloware_id],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// GHL contacts whose last known tags include `tag` (lower-case).
pub async fn snapshot_holders(pool: &Pool, tag: &str) -> Result<Vec<String>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT ghl_contact_id FROM contact_tag_snapshots WHERE $1 = ANY(tags)",
            &[&tag],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
