//! Provider pauses (SPEC §5): a provider that refused our credential (401 / 403), or
//! that is down ([`OUTAGE_STRIKES`] outage answers within [`OUTAGE_WINDOW`]), is
//! paused. Its work waits without spending attempts — a rotated token or an hour's
//! outage must never turn events into `failed` — and the relay's probe resumes it once
//! the provider answers (and takes our credential) again; the held rows are then due at
//! once, so catching up starts within one relay run. One row per paused provider
//! (`provider_pauses`), one log row per pause (`provider_pause_log`, what the alert is
//! about).
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
/// Outage answers (no connection, 500 / 502 / 503 / 504) that pause a provider when they
/// come within [`OUTAGE_WINDOW`] of the first, with no other answer between.
pub const OUTAGE_STRIKES: i32 = 5;
pub const OUTAGE_WINDOW: Duration = Duration::from_secs(30);
/// Between two probes of a provider paused for an outage (default).
pub const OUTAGE_PROBE_EVERY: Duration = Duration::from_secs(10);

/// Why a provider is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    Credential,
    Outage,
}

impl PauseKind {
    fn key(self) -> &'static str {
        match self {
            PauseKind::Credential => "credential",
            PauseKind::Outage => "outage",
        }
    }
}

/// An answer (or its absence) that says the provider is down rather than refusing us.
pub fn is_outage(status: Option<u16>) -> bool {
    matches!(status, None | Some(500 | 502 | 503 | 504))
}

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
    /// Between two probes of a provider paused for an outage (`OUTAGE_PROBE_SECONDS`).
    pub outage_probe_every: Duration,
    cache: Arc<Mutex<HashMap<&'static str, (tokio::time::Instant, Gate)>>>,
    /// Providers this process struck since their last good answer: only those cost a
    /// write when they answer again.
    struck: Arc<Mutex<std::collections::HashSet<&'static str>>>,
}

impl ProviderPauses {
    pub fn new(pool: Pool, probe_every: Duration) -> Self {
        ProviderPauses {
            pool,
            probe_every,
            outage_probe_every: OUTAGE_PROBE_EVERY,
            cache: Arc::default(),
            struck: Arc::default(),
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
        self.pause_for(provider, PauseKind::Credential, reason)
            .await
    }

    /// `provider` gave an outage answer: one strike. Returns whether it is paused now
    /// (this strike reached [`OUTAGE_STRIKES`], or another process paused it).
    pub async fn strike(&self, provider: &'static str, reason: &str) -> bool {
        self.struck.lock().unwrap().insert(provider);
        let strikes = async {
            let client = self.pool.get().await?;
            let row = client
                .query_one(
                    "INSERT INTO provider_outage_strikes AS s (provider, strikes) VALUES ($1, 1)
                     ON CONFLICT (provider) DO UPDATE SET
                       strikes = CASE WHEN s.first_at < now() - make_interval(secs => $2) THEN 1 ELSE s.strikes + 1 END,
                       first_at = CASE WHEN s.first_at < now() - make_interval(secs => $2) THEN now() ELSE s.first_at END
                     RETURNING strikes",
                    &[&provider, &OUTAGE_WINDOW.as_secs_f64()],
                )
                .await?;
            Ok::<i32, DbError>(row.get(0))
        }
        .await;
        match strikes {
            Ok(n) if n >= OUTAGE_STRIKES => self
                .pause_for(provider, PauseKind::Outage, &format!("outage: {reason}"))
                .await
                .is_ok(),
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(provider, error = %e, "could not record an outage strike");
                false
            }
        }
    }

    /// `provider` answered (not an outage answer): forget the strikes this process
    /// recorded. Costs nothing unless it struck since.
    pub async fn answered(&self, provider: &'static str) {
        if !self.struck.lock().unwrap().remove(provider) {
            return;
        }
        if let Ok(client) = self.pool.get().await {
            let _ = client
                .execute(
                    "DELETE FROM provider_outage_strikes WHERE provider = $1",
                    &[&provider],
                )
                .await;
        }
    }

    async fn pause_for(
        &self,
        provider: &'static str,
        kind: PauseKind,
        reason: &str,
    ) -> Result<bool, DbError> {
        let probe_in = match kind {
            PauseKind::Credential => self.probe_every,
            PauseKind::Outage => self.outage_probe_every,
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "WITH started AS (
                    INSERT INTO provider_pauses (provider, reason, probe_at, kind)
                    VALUES ($1, $2, now() + make_interval(secs => $3), $4)
                    ON CONFLICT (provider) DO NOTHING
                    RETURNING paused_at)
                 SELECT (SELECT paused_at FROM started),
                        (SELECT paused_at FROM provider_pauses WHERE provider = $1)",
                &[&provider, &reason, &probe_in.as_secs_f64(), &kind.key()],
            )
            .await?;
        let started: Option<DateTime<Utc>> = row.get(0);
        if let Some(at) = started {
            tx.execute(
                "INSERT INTO provider_pause_log (provider, paused_at, reason, kind) VALUES ($1, $2, $3, $4)",
                &[&provider, &at, &reason, &kind.key()],
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
                kind = kind.key(),
                "a provider refused our credential or is down: its work is paused until a probe succeeds"
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
                "UPDATE provider_pauses SET probe_at = now() + make_interval(secs =>
                       CASE kind WHEN 'outage' THEN $2::float8 ELSE $1::float8 END),
                     probes = probes + 1
                 WHERE probe_at <= now() RETURNING provider",
                &[
                    &self.probe_every.as_secs_f64(),
                    &self.outage_probe_every.as_secs_f64(),
                ],
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
            "DELETE FROM provider_outage_strikes WHERE provider = $1",
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
            "provider answers and accepts our credential again: pause over"
        );
        Ok(released)
    }

    /// Rows held by a pause that is already over: a consumer that held its row just as
    /// a probe resumed the provider wrote the hold after the resume released the rest.
    /// Each relay run makes them due again. Returns how many.
    pub async fn release_orphans(&self) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        let mut released = 0;
        for table in [
            "webhook_events",
            "texting_webhook_events",
            "broadcast_webhook_events",
        ] {
            released += client
                .execute(
                    &format!(
                        "UPDATE {table} e SET next_attempt_at = now(), paused_provider = NULL, updated_at = now()
                         WHERE e.paused_provider IS NOT NULL AND e.status = 'error'
                           AND NOT EXISTS (SELECT 1 FROM provider_pauses p WHERE p.provider = e.paused_provider)"
                    ),
                    &[],
                )
                .await?;
        }
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
