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
