//! `webhook_events` and `texting_webhook_events`: the durable inbox. A row is stored
//! once per dedupe key; concurrent copies of one delivery all learn the same row id.
use deadpool_postgres::{Pool, PoolError};
use uuid::Uuid;

use crate::domain::texting::TextingMessage;
use crate::domain::{Classified, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Inserted(Uuid),
    Duplicate(Uuid),
}

impl Stored {
    pub fn id(self) -> Uuid {
        match self {
            Stored::Inserted(id) | Stored::Duplicate(id) => id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Pool(#[from] PoolError),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("row for dedupe key vanished")]
    Vanished,
}

const INSERT_WEBHOOK: &str = "INSERT INTO webhook_events
    (source, event_type, entity_type, entity_id, person_key, location_id, payload_json, dedupe_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)
    ON CONFLICT (dedupe_key) DO NOTHING RETURNING id";
const SELECT_WEBHOOK: &str = "SELECT id FROM webhook_events WHERE dedupe_key = $1";

const INSERT_TEXTING: &str = "INSERT INTO texting_webhook_events
    (event_type, entity_type, entity_id, conversation_id, from_number, to_number, person_key, payload_json, dedupe_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9)
    ON CONFLICT (dedupe_key) DO NOTHING RETURNING id";
const SELECT_TEXTING: &str = "SELECT id FROM texting_webhook_events WHERE dedupe_key = $1";

/// Store a GHL or Aloware webhook. `payload_json` must be valid JSON text.
pub async fn insert_webhook_event(
    pool: &Pool,
    source: Source,
    c: &Classified,
    payload_json: &str,
    dedupe_key: &str,
) -> Result<Stored, StoreError> {
    let client = pool.get().await?;
    let insert = client.prepare_cached(INSERT_WEBHOOK).await?;
    let row = client
        .query_opt(
            &insert,
            &[
                &source.as_str(),
                &c.event_type,
                &c.entity_type.as_str(),
                &c.entity_id,
                &c.person_key,
                &c.location_id,
                &payload_json,
                &dedupe_key,
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(Stored::Inserted(row.get(0))),
        None => existing(&client, SELECT_WEBHOOK, dedupe_key).await,
    }
}

/// Store a texting-system webhook.
pub async fn insert_texting_event(
    pool: &Pool,
    c: &Classified,
    m: &TextingMessage,
    payload_json: &str,
    dedupe_key: &str,
) -> Result<Stored, StoreError> {
    let client = pool.get().await?;
    let insert = client.prepare_cached(INSERT_TEXTING).await?;
    let row = client
        .query_opt(
            &insert,
            &[
                &c.event_type,
                &c.entity_type.as_str(),
                &c.entity_id,
                &m.conversation_id,
                &m.from,
                &m.to,
                &c.person_key,
                &payload_json,
                &dedupe_key,
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(Stored::Inserted(row.get(0))),
        None => existing(&client, SELECT_TEXTING, dedupe_key).await,
    }
}

/// The id of the row that won the dedupe key. Run as its own statement: the insert's
/// snapshot predates a concurrent winner's commit and could not see it.
async fn existing(
    client: &deadpool_postgres::Client,
    sql: &str,
    dedupe_key: &str,
) -> Result<Stored, StoreError> {
    let select = client.prepare_cached(sql).await?;
    let row = client.query_opt(&select, &[&dedupe_key]).await?;
    row.map(|r| Stored::Duplicate(r.get(0)))
        .ok_or(StoreError::Vanished)
}
