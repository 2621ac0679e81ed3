//! Provider credential pauses (SPEC §5): a provider that refused our credential (401 /
//! 403) is paused. Its work waits without spending attempts — a rotated token must
//! never turn events into `failed` — and the relay's probe resumes it once the provider
//! takes our credential again. One row per paused provider (`provider_pauses`), one log
//! row per pause (`provider_pause_log`, what the alert is about).
//!
//! Every client asks [`ProviderPauses::check`] before a request. The answer is cached
//! per process for [`CACHE_FOR`]: a pause costs the other processes at most that long
//! of requests that are then refused too (and land in the same pause).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;

use super::db::DbError;

/// How long a process trusts what it last read.
pub const CACHE_FOR: Duration = Duration::from_secs(2);
/// How long work held by a pause waits before it is tried again even unresumed (a
/// pause of days re-checks now and then); a resume releases it at once.
pub const HOLD: Duration = Duration::from_secs(6 * 3600);

/// Whether a provider may be called now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Paused since `since`: do not call it.
    Paused {
        since: DateTime<Utc>,
    },
}

/// One paused provider, for operators.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    pub provider: String,
    pub paused_at: DateTime<Utc>,
    pub reason: String,
    pub probe_at: DateTime<Utc>,
    pub probes: i32,
}

#[derive(Clone)]
pub struct ProviderPauses {
    pool: Pool,
    /// Between two probes of a paused provider (`CREDENTIAL_PROBE_SECONDS`).
    pub probe_every: Duration,
    cache: Arc<Mutex<HashMap<&'static str, (tokio::time::Instant, Gate)>>>,
}

impl ProviderPauses {
    pub fn new(pool: Pool, probe_every: Duration) -> Self {
        ProviderPauses {
            pool,
            probe_every,
            cache: Arc::default(),
        }
    }

    fn cached(&self, provider: &'static str) -> Option<Gate> {
        let cache = self.cache.lock().unwrap();
        cache
            .get(provider)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, gate)| *gate)
    }

    fn remember(&self, provider: &'static str, gate: Gate) {
        self.cache
            .lock()
            .unwrap()
            .insert(provider, (tokio::time::Instant::now(), gate));
    }

    /// May `provider` be called now? A store that cannot answer lets the call go: the
    /// provider's own answer then decides.
    pub async fn check(&self, provider: &'static str) -> Gate {
        if let Some(gate) = self.cached(provider) {
            return gate;
        }
        let gate = match self.read(provider).await {
            Ok(Some(since)) => Gate::Paused { since },
            Ok(None) => Gate::Open,
            Err(e) => {
                tracing::warn!(provider, error = %e, "pause state unreadable; calling the provider");
                return Gate::Open;
            }
        };
        self.remember(provider, gate);
        gate
    }

    async fn read(&self, provider: &str) -> Result<Option<DateTime<Utc>>, DbError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt(
                "SELECT paused_at FROM provider_pauses WHERE provider = $1",
                &[&provider],
            )
            .await?
            .map(|r| r.get(0)))
    }

    /// `provider` refused our credential: pause it (one log row per pause). Returns
    /// whether this call started the pause.
    pub async fn pause(&self, provider: &'static str, reason: &str) -> Result<bool, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "WITH started AS (
                    INSERT INTO provider_pauses (provider, reason, probe_at)
                    VALUES ($1, $2, now() + make_interval(secs => $3))
                    ON CONFLICT (provider) DO NOTHING
                    RETURNING paused_at)
                 SELECT (SELECT paused_at FROM started),
                        (SELECT paused_at FROM provider_pauses WHERE provider = $1)",
                &[&provider, &reason, &self.probe_every.as_secs_f64()],
            )
            .await?;
        let started: Option<DateTime<Utc>> = row.get(0);
        if let Some(at) = started {
            tx.execute(
                "INSERT INTO provider_pause_log (provider, paused_at, reason) VALUES ($1, $2, $3)",
                &[&provider, &at, &reason],
            )
            .await?;
        }
        tx.commit().await?;
        let since = started
            .or(row.get::<_, Option<DateTime<Utc>>>(1))
            .unwrap_or_else(Utc::now);
        self.remember(provider, Gate::Paused { since });
        if started.is_some() {
            tracing::error!(
                alert = "provider_paused",
                provider,
                "a provider refused our credential: its work is paused until a probe succeeds"
            );
        }
        Ok(started.is_some())
    }

    /// The paused providers whose probe is due, each taken by this caller (concurrent
    /// relays never probe one provider twice at once).
    pub async fn take_due_probes(&self) -> Result<Vec<String>, DbError> {
        let client = self.pool.get().await?;
        Ok(client
            .query(
                "UPDATE provider_pauses SET probe_at = now() + make_interval(secs => $1),
                     probes = probes + 1
                 WHERE probe_at <= now() RETURNING provider",
                &[&self.probe_every.as_secs_f64()],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// A probe of `provider` was answered with our credential accepted: the pause ends
    /// and the work it held is due again at once (in each inbox). Returns the rows
    /// released.
    pub async fn resume(&self, provider: &'static str) -> Result<u64, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let ended = tx
            .query_opt(
                "DELETE FROM provider_pauses WHERE provider = $1 RETURNING probes",
                &[&provider],
            )
            .await?;
        tx.execute(
            "UPDATE provider_pause_log SET resumed_at = now(), probes = $2
             WHERE provider = $1 AND resumed_at IS NULL",
            &[&provider, &ended.as_ref().map_or(0, |r| r.get::<_, i32>(0))],
        )
        .await?;
        let mut released = 0;
        for table in [
            "webhook_events",
            "texting_webhook_events",
            "broadcast_webhook_events",
        ] {
            released += tx
                .execute(
                    &format!(
                        "UPDATE {table} SET next_attempt_at = now(), paused_provider = NULL, updated_at = now()
                         WHERE paused_provider = $1 AND status = 'error'"
                    ),
                    &[&provider],
                )
                .await?;
        }
        tx.commit().await?;
        self.remember(provider, Gate::Open);
        tracing::info!(
            provider,
            released,
            "provider credential accepted again: pause over"
        );
        Ok(released)
    }

    /// Every paused provider.
    pub async fn list(pool: &Pool) -> Result<Vec<Pause>, DbError> {
        let client = pool.get().await?;
        Ok(client
            .query(
                "SELECT provider, paused_at, reason, probe_at, probes FROM provider_pauses ORDER BY provider",
                &[],
            )
            .await?
            .iter()
            .map(|r| Pause {
                provider: r.get(0),
                paused_at: r.get(1),
                reason: r.get(2),
                probe_at: r.get(3),
                probes: r.get(4),
            })
            .collect())
    }
}
