//! Sync routers (SPEC §6): what a claimed event means for the other systems.
pub mod aloware_to_ghl;
pub mod ghl_to_aloware;
pub mod tag_lists;

use deadpool_postgres::Pool;
use serde_json::Value;

use crate::adapters::sync_repo::{EventRow, RepoError};
use crate::domain::contact::Policy;
use crate::providers::aloware::AlowareClient;
use crate::providers::ghl::GhlClient;
use crate::providers::ProviderError;

/// Everything a router needs, built once per cold start.
#[derive(Clone)]
pub struct SyncDeps {
    pub pool: Pool,
    pub ghl: GhlClient,
    pub aloware: AlowareClient,
    pub policy: Policy,
    pub default_country: String,
    pub echo_window_seconds: i64,
    /// `ALOWARE_LIST_MAP`: GHL tag (lower-case) → Aloware list id; `call_list_mappings` adds to it.
    pub list_map: std::collections::BTreeMap<String, String>,
    /// `WRITE_ORIGIN_MARKERS`: tag GHL writes with the event id (detection is always on).
    pub write_origin_markers: bool,
}

/// How a sync ended, when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    Done {
        direction: &'static str,
        source_id: Option<String>,
        target_id: Option<String>,
        decisions: Value,
    },
    Skipped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] RepoError),
    #[error("invalid event: {0}")]
    Invalid(String),
}

impl SyncError {
    pub fn retryable(&self) -> bool {
        match self {
            SyncError::Provider(e) => e.retryable,
            SyncError::Store(_) => true,
            SyncError::Invalid(_) => false,
        }
    }
}

pub async fn route(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    if is_marked_echo(deps, event).await? {
        return Ok(Outcome::Skipped(
            "echo: carries the origin marker of a middleware write".into(),
        ));
    }
    match (event.source.as_str(), event.entity_type.as_str()) {
        ("aloware", "contact") => aloware_to_ghl::contact_event(deps, event).await,
        ("aloware", "call" | "recording" | "transcription") => {
            aloware_to_ghl::call_event(deps, event).await
        }
        ("ghl", "contact") => ghl_to_aloware::contact_event(deps, event).await,
        ("ghl", "tag") => tag_lists::tag_event(deps, event).await,
        (source, entity) => Ok(Outcome::Skipped(format!(
            "no sync rule for {source} {entity} events"
        ))),
    }
}

/// A contact webhook carrying the origin marker of an event processed within the echo
/// window is that event's echo. Older markers are stale: the change is a person's.
async fn is_marked_echo(deps: &SyncDeps, event: &EventRow) -> Result<bool, SyncError> {
    let body = event.payload.get("body").unwrap_or(&event.payload);
    match crate::domain::origin::find(body) {
        Some(origin) if origin != event.id => Ok(crate::adapters::sync_repo::processed_recently(
            &deps.pool,
            origin,
            deps.echo_window_seconds,
        )
        .await?),
        _ => Ok(false),
    }
}

/// `body` with the origin marker custom field of event `origin`, when markers are on.
pub(crate) fn marked(deps: &SyncDeps, origin: uuid::Uuid, mut body: Value) -> Value {
    if deps.write_origin_markers {
        use crate::domain::origin::{marker, GHL_FIELD_KEY};
        let field = serde_json::json!({"key": GHL_FIELD_KEY, "field_value": marker(origin)});
        match body.get_mut("customFields").and_then(Value::as_array_mut) {
            Some(fields) => fields.push(field),
            None => body["customFields"] = serde_json::json!([field]),
        }
    }
    body
}
