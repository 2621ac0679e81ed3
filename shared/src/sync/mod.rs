//! Sync routers (SPEC §6): what a claimed event means for the other systems. Each
//! implements `pipeline::Router` and answers in the consumer's vocabulary
//! (`pipeline::{Outcome, SyncError}`, imported here for the routers).
pub mod aloware_to_ghl;
pub mod broadcast;
pub mod conversations;
pub mod dnd;
pub mod ghl_contact;
pub mod ghl_to_aloware;
pub mod manual;
pub mod optout_job;
pub mod optout_mirror;
pub mod reconcile;
pub mod tag_lists;
pub mod texting_to_ghl;

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;

use crate::adapters::event_store::EventRow;
use crate::adapters::provider_pause::ProviderPauses;
use crate::adapters::rate_budget::RateBudget;
use crate::domain::contact::Policy;
use crate::lambda::{ConfigError, Settings};
use crate::pipeline::{Outcome, Router, SyncError};
use crate::providers::aloware_api::AlowareClient;
use crate::providers::ghl_api::{CustomFieldIds, GhlApiConfig, GhlClient, SYNC_CUSTOM_FIELDS};

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
    pub list_map: BTreeMap<String, String>,
    /// `WRITE_ORIGIN_MARKERS`: tag GHL writes with the event id (detection is always on).
    pub write_origin_markers: bool,
    /// The ids of the GHL custom fields the sync writes ([`SyncDeps::resolve_custom_fields`]).
    pub custom_fields: CustomFieldIds,
    /// `GHL_CREATE_CUSTOM_FIELDS`: create missing custom fields instead of refusing to start.
    pub create_custom_fields: bool,
    /// `GHL_CONVERSATION_PROVIDER_ID`: record SMS and calls in the contact's GHL
    /// conversation (as this provider) instead of as notes only.
    pub conversation_provider_id: Option<String>,
    /// GHL appointments → broadcast re-computations, when Verity's database is set.
    pub appointments: Option<broadcast::AppointmentLink>,
    /// Providers paused for a rejected credential (shared by every client here).
    pub pauses: ProviderPauses,
}

/// The GHL client of the configured location, metered by its shared rate budget.
pub fn ghl_client(s: &Settings, pool: &Pool) -> Result<GhlClient, ConfigError> {
    let per_10s = s.parse_or("GHL_RATE_LIMIT_PER_10S", 90u32)?;
    let budget = RateBudget::new(pool.clone(), per_10s, 100, Duration::from_secs(10));
    Ok(GhlClient::new(
        crate::providers::http_client(),
        GhlApiConfig {
            base_url: s
                .get_or("GHL_BASE_URL", "https://services.leadconnectorhq.com")
                .to_string(),
            token: s.require("GHL_API_KEY")?.to_string(),
            location_id: s.require("GHL_LOCATION_ID")?.to_string(),
        },
        budget,
    ))
}

/// The Aloware client, metered by its own budget: Aloware publishes no limit, so 1
/// call/s sustained and a burst of 5 by default.
pub fn aloware_client(s: &Settings, pool: &Pool) -> Result<AlowareClient, ConfigError> {
    let per_10s = s.parse_or("ALOWARE_RATE_LIMIT_PER_10S", 10u32)?;
    let budget = RateBudget::new(pool.clone(), per_10s, per_10s + 5, Duration::from_secs(10));
    Ok(AlowareClient::new(
        crate::providers::http_client(),
        s.get_or("ALOWARE_BASE_URL", "https://app.aloware.com"),
        s.require("ALOWARE_API_TOKEN")?,
    )
    .with_budget(budget))
}

/// `CREDENTIAL_PROBE_SECONDS` (default 60): how often a paused provider is probed.
pub fn provider_pauses(s: &Settings, pool: &Pool) -> Result<ProviderPauses, ConfigError> {
    let mut pauses = ProviderPauses::new(
        pool.clone(),
        Duration::from_secs(s.parse_or("CREDENTIAL_PROBE_SECONDS", 60u64)?),
    );
    pauses.outage_probe_every = Duration::from_secs(s.parse_or(
        "OUTAGE_PROBE_SECONDS",
        crate::adapters::provider_pause::OUTAGE_PROBE_EVERY.as_secs(),
    )?);
    Ok(pauses)
}

impl SyncDeps {
    /// Resolve the custom fields once per cold start (GHL writes them by opaque id):
    /// created when missing only if `GHL_CREATE_CUSTOM_FIELDS=true`, else the cold start
    /// fails naming the missing fields.
    pub async fn resolve_custom_fields(&mut self) -> Result<(), ConfigError> {
        let mut keys: Vec<&str> = SYNC_CUSTOM_FIELDS.to_vec();
        if self.write_origin_markers {
            keys.push(crate::domain::origin::GHL_FIELD_KEY);
        }
        self.custom_fields = self
            .ghl
            .resolve_custom_fields(&keys, self.create_custom_fields)
            .await
            .map_err(|e| ConfigError::Invalid {
                name: "GHL custom fields",
                reason: e.to_string(),
            })?;
        Ok(())
    }

    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let pool = s.pool()?;
        let pauses = provider_pauses(s, &pool)?;
        let ghl = ghl_client(s, &pool)?.with_pauses(pauses.clone());
        let aloware = aloware_client(s, &pool)?.with_pauses(pauses.clone());
        let policy: Policy = s
            .get_or("CONTACT_SOURCE_OF_TRUTH", "merge")
            .parse()
            .map_err(|reason| ConfigError::Invalid {
                name: "CONTACT_SOURCE_OF_TRUTH",
                reason,
            })?;
        Ok(SyncDeps {
            pool,
            ghl,
            aloware,
            policy,
            default_country: s.default_country(),
            echo_window_seconds: s.parse_or("ECHO_WINDOW_SECONDS", 600i64)?,
            list_map: parse_list_map(s.get_or("ALOWARE_LIST_MAP", "{}"))?,
            write_origin_markers: s.parse_or("WRITE_ORIGIN_MARKERS", false)?,
            custom_fields: CustomFieldIds::default(),
            create_custom_fields: s.parse_or("GHL_CREATE_CUSTOM_FIELDS", false)?,
            conversation_provider_id: s
                .get("GHL_CONVERSATION_PROVIDER_ID")
                .filter(|v| !v.trim().is_empty())
                .map(str::to_string),
            appointments: None,
            pauses,
        })
    }
}

/// `ALOWARE_LIST_MAP`: a JSON object of GHL tag → Aloware list id (string or number).
pub fn parse_list_map(json: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "ALOWARE_LIST_MAP",
        reason,
    };
    let value: Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| invalid("must be a JSON object".into()))?;
    object
        .iter()
        .map(|(tag, list)| {
            crate::domain::json::id_str(Some(list))
                .map(|l| (tag.trim().to_lowercase(), l))
                .ok_or_else(|| {
                    invalid(format!("list id of tag {tag:?} must be a string or number"))
                })
        })
        .collect()
}

/// `process-webhook-events`'s router: GHL and Aloware events.
pub struct WebhookRouter {
    pub deps: SyncDeps,
}

impl Router for WebhookRouter {
    async fn route(&self, event: &EventRow) -> Result<Outcome, SyncError> {
        route(&self.deps, event).await
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
        ("ghl", "appointment") => broadcast::appointment_event(deps, event).await,
        ("admin", "contact") => manual::contact_job(deps, event).await,
        ("registry", "optout") => optout_job::run(deps, None, event).await,
        ("ghl", "message") => optout_mirror::ghl_message(deps, event).await,
        ("admin", "list") => manual::list_job(deps, event).await,
        (source, entity) => Ok(Outcome::Skipped(format!(
            "no sync rule for {source} {entity} events"
        ))),
    }
}

/// `body` with the origin marker custom field of event `origin`, when markers are on.
pub(crate) fn marked(deps: &SyncDeps, origin: uuid::Uuid, mut body: Value) -> Value {
    use crate::domain::origin::{marker, GHL_FIELD_KEY};
    let field = deps
        .write_origin_markers
        .then(|| deps.custom_fields.item(GHL_FIELD_KEY, &marker(origin)))
        .flatten();
    if let Some(field) = field {
        match body.get_mut("customFields").and_then(Value::as_array_mut) {
            Some(fields) => fields.push(field),
            None => body["customFields"] = serde_json::json!([field]),
        }
    }
    body
}
