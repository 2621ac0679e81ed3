//! The composition root: which router, clients and settings each function is built
//! from, once per cold start. The binaries in `functions/` call these and nothing
//! below them knows how they are put together; every other module imports only from
//! modules below it (domain → auth, adapters, providers → lambda → ingest → pipeline →
//! sync → ops, verity → app; `shared/tests/layers.rs` checks it).
pub mod verity;

use std::time::Duration;

use crate::domain::EventKind;
use crate::ingest::webhook_broadcast::settle_interval;
use crate::ingest::Ingest;
use crate::lambda::config::queue_setting;
use crate::lambda::{ConfigError, Settings};
use crate::ops::jobs::{self, RunOnceJob};
use crate::pipeline::relay::{Probes, Relay};
use crate::pipeline::{Consumer, Timing};
use crate::providers::texting_api::TextingClient;
use crate::sync::broadcast::{AppointmentLink, BroadcastRouter};
use crate::sync::texting_to_ghl::{Replies, TextingRouter};
use crate::sync::{SyncDeps, WebhookRouter};

/// `process-webhook-events`: GHL and Aloware events through the sync routers.
pub async fn webhook_consumer(s: &Settings) -> Result<Consumer<WebhookRouter>, ConfigError> {
    let mut deps = SyncDeps::from_settings(s)?;
    deps.resolve_custom_fields().await?;
    // GHL appointments re-compute broadcasts when Verity's database is configured.
    if let Some(verity) = s.verity_db()? {
        deps.appointments = Some(AppointmentLink {
            verity,
            inbox: Ingest::from_settings(s, EventKind::Broadcast).await?,
            settle: settle_interval(s)?,
        });
    }
    Ok(Consumer {
        kind: EventKind::Webhook,
        pool: deps.pool.clone(),
        queue: s.queue(queue_setting(EventKind::Webhook)).await?,
        router: WebhookRouter { deps },
        timing: Timing::from_settings(s)?,
    })
}

/// `process-texting-events`: texting messages and opt-out requests into GHL (and the
/// registry), through the same consumer as the webhook events.
pub async fn texting_consumer(s: &Settings) -> Result<Consumer<TextingRouter>, ConfigError> {
    let deps = SyncDeps::from_settings(s)?;
    let texting = TextingClient::new(
        crate::providers::http_client(),
        s.require("TEXTING_BASE_URL")?,
        s.require("TEXTING_API_KEY")?,
        deps.pool.clone(),
        &deps.default_country,
    )
    .with_pauses(deps.pauses.clone());
    let replies = Replies {
        help: s.get("TEXTING_HELP_REPLY").map(str::to_string),
        stop_confirmation: s.get("TEXTING_STOP_CONFIRMATION").map(str::to_string),
        from_number: s.get("TEXTING_FROM_NUMBER").map(str::to_string),
        confirmation_window: Duration::from_secs(s.parse_or(
            "TEXTING_STOP_CONFIRMATION_WINDOW_SECONDS",
            crate::sync::optout_job::CONFIRMATION_WINDOW.as_secs(),
        )?),
    };
    Ok(Consumer {
        kind: EventKind::Texting,
        pool: deps.pool.clone(),
        queue: s.queue(queue_setting(EventKind::Texting)).await?,
        router: TextingRouter {
            sync_to_aloware: s.parse_or("TEXTING_SYNC_TO_ALOWARE", false)?,
            deps,
            texting,
            replies,
        },
        timing: Timing::from_settings(s)?,
    })
}

/// `process-broadcast-events`: Verity broadcast analytics into GHL custom-object records.
pub async fn broadcast_consumer(s: &Settings) -> Result<Consumer<BroadcastRouter>, ConfigError> {
    let deps = SyncDeps::from_settings(s)?;
    let verity = s
        .verity_db()?
        .ok_or(ConfigError::Missing("VERITY_DATABASE_URL"))?;
    Ok(Consumer {
        kind: EventKind::Broadcast,
        pool: deps.pool.clone(),
        queue: s.queue(queue_setting(EventKind::Broadcast)).await?,
        router: BroadcastRouter {
            pool: deps.pool.clone(),
            ghl: deps.ghl,
            verity,
            settle: settle_interval(s)?,
        },
        timing: Timing::from_settings(s)?,
    })
}

/// `sweep-pending`: the relay of every inbox, with the probes of paused providers
/// (each provider's client only where its credential is configured).
pub async fn relay(s: &Settings) -> Result<Relay, ConfigError> {
    let kinds = [EventKind::Webhook, EventKind::Texting, EventKind::Broadcast];
    let mut relay = Relay::from_settings(s, &kinds).await?;
    let pool = relay.pool.clone();
    let texting = match (s.get("TEXTING_BASE_URL"), s.get("TEXTING_API_KEY")) {
        (Some(base), Some(key)) => Some(TextingClient::new(
            crate::providers::http_client(),
            base,
            key,
            pool.clone(),
            &s.default_country(),
        )),
        _ => None,
    };
    relay.probes = Some(Probes {
        pauses: crate::sync::provider_pauses(s, &pool)?,
        ghl: s
            .get("GHL_API_KEY")
            .map(|_| crate::sync::ghl_client(s, &pool))
            .transpose()?,
        aloware: s
            .get("ALOWARE_API_TOKEN")
            .map(|_| crate::sync::aloware_client(s, &pool))
            .transpose()?,
        texting,
    });
    Ok(relay)
}

/// `jobs-run-once`: the webhook inbox's consumer, run inside the call.
pub async fn run_once_job(s: &Settings) -> Result<RunOnceJob<WebhookRouter>, ConfigError> {
    Ok(RunOnceJob {
        consumer: webhook_consumer(s).await?,
        jobs_secret: s.require("X_DF_JOBS_SECRET")?.to_string(),
        batch_size: jobs::batch_size(s)?,
    })
}
