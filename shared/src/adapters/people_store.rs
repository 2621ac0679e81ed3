//! One person across every inbox (SPEC §8 "person view"): the contact mappings that
//! name them, every stored event about them with its sync log and operator actions,
//! and what the middleware wrote for them (GHL call notes, conversation messages, list
//! memberships).
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

use super::db::DbError;
use super::event_store::table;
use crate::domain::EventKind;

/// How the operator named the person.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub ghl_contact_id: Option<String>,
    pub aloware_contact_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub aloware_contact_id: Option<String>,
    pub ghl_contact_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub last_synced_at: DateTime<Utc>,
}

/// Everyone's ids, gathered from the lookup and the mappings it finds.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub ghl: Vec<String>,
    pub aloware: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PersonEvent {
    pub kind: EventKind,
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub source: String,
    pub event_type: String,
    pub entity_type: String,
    pub status: String,
    pub attempts: i32,
    pub error_message: Option<String>,
    pub skip_reason: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
    pub payload: Option<Value>,
    pub sync_log: Vec<Value>,
    pub actions: Vec<Value>,
}

fn push(list: &mut Vec<String>, v: Option<String>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

/// The mappings that name the person, and every id they hold.
pub async fn resolve(pool: &Pool, l: &Lookup) -> Result<(Vec<Mapping>, Ids), DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT aloware_contact_id, ghl_contact_id, phone_number, email, last_synced_at
             FROM contact_mappings
             WHERE phone_number = $1 OR lower(email) = lower($2) OR ghl_contact_id = $3 OR aloware_contact_id = $4
             ORDER BY last_synced_at DESC LIMIT 20",
            &[&l.phone, &l.email, &l.ghl_contact_id, &l.aloware_contact_id],
        )
        .await?;
    let mappings: Vec<Mapping> = rows
        .iter()
        .map(|r| Mapping {
            aloware_contact_id: r.get(0),
            ghl_contact_id: r.get(1),
            phone: r.get(2),
            email: r.get(3),
            last_synced_at: r.get(4),
        })
        .collect();
    let mut ids = Ids::default();
    push(&mut ids.phones, l.phone.clone());
    push(&mut ids.emails, l.email.clone());
    push(&mut ids.ghl, l.ghl_contact_id.clone());
    push(&mut ids.aloware, l.aloware_contact_id.clone());
    for m in &mappings {
        push(&mut ids.phones, m.phone.clone());
        push(&mut ids.emails, m.email.clone());
        push(&mut ids.ghl, m.ghl_contact_id.clone());
        push(&mut ids.aloware, m.aloware_contact_id.clone());
    }
    Ok((mappings, ids))
}

/// The person keys their events are grouped under (`domain::PersonRef::fallback_key`).
pub fn person_keys(ids: &Ids) -> Vec<String> {
    let mut keys = ids.phones.clone();
    keys.extend(ids.ghl.iter().map(|id| format!("ghl:{id}")));
    keys.extend(ids.aloware.iter().map(|id| format!("aloware:{id}")));
    keys
}

/// Every stored event about the person in one inbox, oldest first (at most `limit`).
pub async fn events(
    pool: &Pool,
    kind: EventKind,
    ids: &Ids,
    limit: i64,
) -> Result<Vec<PersonEvent>, DbError> {
    let client = pool.get().await?;
    let keys = person_keys(ids);
    let mut entity_ids = ids.ghl.clone();
    entity_ids.extend(ids.aloware.iter().cloned());
    let source = match kind {
        EventKind::Texting => "'texting'",
        _ => "e.source",
    };
    let t = table(kind);
    // Texting rows also by their numbers (an outbound text's party is `to`).
    let numbers = match kind {
        EventKind::Texting => "OR e.from_number = ANY($4) OR e.to_number = ANY($4)",
        _ => "",
    };
    let sql = format!(
        "SELECT e.id, e.received_at, e.occurred_at, {source}, e.event_type, e.entity_type, e.status,
                e.attempts, e.error_message, e.skip_reason, e.processed_at, e.payload_json,
                COALESCE((SELECT jsonb_agg(jsonb_build_object('direction', s.direction, 'status', s.status,
                    'startedAt', s.started_at, 'finishedAt', s.finished_at, 'error', s.error_message,
                    'targetId', s.target_id, 'decisions', s.decisions) ORDER BY s.started_at)
                  FROM sync_log s WHERE s.correlation_id = e.id::text), '[]'::jsonb),
                COALESCE((SELECT jsonb_agg(jsonb_build_object('action', a.action, 'actor', a.actor,
                    'at', a.at, 'detail', a.detail) ORDER BY a.at)
                  FROM admin_actions a WHERE a.event_id = e.id), '[]'::jsonb)
         FROM {t} e
         WHERE e.person_key = ANY($2) OR e.entity_id = ANY($3) {numbers}
         ORDER BY e.received_at, e.id LIMIT $1"
    );
    let phones = &ids.phones;
    let rows = match kind {
        EventKind::Texting => {
            client
                .query(&sql, &[&limit, &keys, &entity_ids, phones])
                .await?
        }
        _ => client.query(&sql, &[&limit, &keys, &entity_ids]).await?,
    };
    Ok(rows
        .iter()
        .map(|r| PersonEvent {
            kind,
            id: r.get(0),
            received_at: r.get(1),
            occurred_at: r.get(2),
            source: r.get(3),
            event_type: r.get(4),
            entity_type: r.get(5),
            status: r.get(6),
            attempts: r.get(7),
            error_message: r.get(8),
            skip_reason: r.get(9),
            processed_at: r.get(10),
            payload: r.get(11),
            sync_log: r
                .get::<_, Value>(12)
                .as_array()
                .cloned()
                .unwrap_or_default(),
            actions: r
                .get::<_, Value>(13)
                .as_array()
                .cloned()
                .unwrap_or_default(),
        })
        .collect())
}

/// What the middleware wrote for the person: GHL call notes, conversation messages and
/// SMS notes, the GHL conversation, Aloware list memberships from their tags.
pub async fn writes(pool: &Pool, ids: &Ids) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let notes = client
        .query_one(
            "SELECT COALESCE(jsonb_agg(jsonb_build_object('alowareCallId', aloware_call_id,
                 'ghlContactId', ghl_contact_id, 'ghlNoteId', ghl_note_id, 'disposition', disposition,
                 'hasRecording', recording_url IS NOT NULL, 'hasSummary', summary IS NOT NULL,
                 'updatedAt', updated_at) ORDER BY created_at), '[]'::jsonb)
             FROM call_notes WHERE ghl_contact_id = ANY($1)",
            &[&ids.ghl],
        )
        .await?
        .get::<_, Value>(0);
    let messages = client
        .query_one(
            "SELECT COALESCE(jsonb_agg(jsonb_build_object('textingMessageId', texting_message_id,
                 'ghlMessageId', ghl_message_id, 'ghlContactId', ghl_contact_id, 'direction', direction,
                 'status', status, 'at', created_at) ORDER BY created_at), '[]'::jsonb)
             FROM message_mappings WHERE ghl_contact_id = ANY($1) OR from_number = ANY($2) OR to_number = ANY($2)",
            &[&ids.ghl, &ids.phones],
        )
        .await?
        .get::<_, Value>(0);
    let conversations = client
        .query_one(
            "SELECT COALESCE(jsonb_agg(jsonb_build_object('ghlContactId', ghl_contact_id,
                 'conversationId', conversation_id)), '[]'::jsonb)
             FROM ghl_conversations WHERE ghl_contact_id = ANY($1)",
            &[&ids.ghl],
        )
        .await?
        .get::<_, Value>(0);
    let lists = client
        .query_one(
            "SELECT COALESCE(jsonb_agg(DISTINCT jsonb_build_object('tag', m.ghl_tag, 'alowareListId', m.aloware_list_id)), '[]'::jsonb)
             FROM contact_tag_snapshots s CROSS JOIN LATERAL unnest(s.tags) AS tag(name)
             JOIN call_list_mappings m ON lower(m.ghl_tag) = lower(tag.name)
             WHERE s.ghl_contact_id = ANY($1)",
            &[&ids.ghl],
        )
        .await?
        .get::<_, Value>(0);
    Ok(
        serde_json::json!({"ghlCallNotes": notes, "messages": messages,
        "ghlConversations": conversations, "alowareLists": lists}),
    )
}
