//! `retention-cleanup` (EventBridge, daily): removes what has aged out, in short
//! batches, until done or out of time. Configurable ages (days):
//! `RETENTION_PAYLOAD_DAYS` (30: payloads of finished events; the rows stay),
//! `RETENTION_SYNC_LOG_DAYS` (90), `RETENTION_FINGERPRINT_DAYS` (7; the echo window is
//! minutes), `RETENTION_SNAPSHOT_DAYS` (365: tag snapshots of contacts not seen since),
//! `RETENTION_RECONCILE_RUN_DAYS` (180). The opt-out audit (`optout_events`,
//! `optout_replies`, `texting_sends`) is never touched: kept at least four years.
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::time::Instant;

use crate::adapters::db::DbError;
use crate::adapters::ops_store::{self, PurgeTarget, Purged};
use crate::domain::EventKind;
use crate::lambda::{ConfigError, Settings};

#[derive(Debug, Clone, Copy)]
pub struct RetentionAges {
    pub payload_days: i32,
    pub sync_log_days: i32,
    pub fingerprint_days: i32,
    pub snapshot_days: i32,
    pub reconcile_run_days: i32,
}

impl RetentionAges {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let days = |name: &'static str, default: i32| -> Result<i32, ConfigError> {
            let v = s.parse_or(name, default)?;
            if v < 1 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1 day".into(),
                });
            }
            Ok(v)
        };
        Ok(RetentionAges {
            payload_days: days("RETENTION_PAYLOAD_DAYS", 30)?,
            sync_log_days: days("RETENTION_SYNC_LOG_DAYS", 90)?,
            fingerprint_days: days("RETENTION_FINGERPRINT_DAYS", 7)?,
            snapshot_days: days("RETENTION_SNAPSHOT_DAYS", 365)?,
            reconcile_run_days: days("RETENTION_RECONCILE_RUN_DAYS", 180)?,
        })
    }
}

pub struct Retention {
    pub pool: Pool,
    pub ages: RetentionAges,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    pub purged: Purged,
    /// Stopped with work left (the next run continues).
    pub out_of_time: bool,
}

impl Retention {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Retention {
            pool: s.pool()?,
            ages: RetentionAges::from_settings(s)?,
        })
    }

    pub async fn run(&self, deadline: Instant) -> Result<RetentionReport, DbError> {
        let mut purged = Purged::default();
        let a = self.ages;
        let steps: [(Step, i32); 7] = [
            (Step::Payloads(EventKind::Webhook), a.payload_days),
            (Step::Payloads(EventKind::Texting), a.payload_days),
            (Step::Payloads(EventKind::Broadcast), a.payload_days),
            (Step::Table(PurgeTarget::SyncLog), a.sync_log_days),
            (
                Step::Table(PurgeTarget::WriteFingerprints),
                a.fingerprint_days,
            ),
            (Step::Table(PurgeTarget::TagSnapshots), a.snapshot_days),
            (
                Step::Table(PurgeTarget::ReconcileRuns),
                a.reconcile_run_days,
            ),
        ];
        for (step, days) in steps {
            loop {
                if deadline.saturating_duration_since(Instant::now()) < Duration::from_secs(5) {
                    tracing::warn!(
                        ?purged,
                        "retention stopped for time; the next run continues"
                    );
                    return Ok(RetentionReport {
                        purged,
                        out_of_time: true,
                    });
                }
                let n = match step {
                    Step::Payloads(kind) => {
                        ops_store::purge_payloads(&self.pool, kind, days).await?
                    }
                    Step::Table(t) => ops_store::purge_table(&self.pool, t, days).await?,
                };
                *counter(&mut purged, step) += n;
                if n == 0 {
                    break;
                }
            }
        }
        tracing::info!(?purged, "retention run");
        Ok(RetentionReport {
            purged,
            out_of_time: false,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Payloads(EventKind),
    Table(PurgeTarget),
}

fn counter(p: &mut Purged, step: Step) -> &mut u64 {
    match step {
        Step::Payloads(EventKind::Texting) => &mut p.texting_payloads,
        Step::Payloads(EventKind::Broadcast) => &mut p.broadcast_payloads,
        Step::Payloads(_) => &mut p.webhook_payloads,
        Step::Table(PurgeTarget::SyncLog) => &mut p.sync_log,
        Step::Table(PurgeTarget::WriteFingerprints) => &mut p.write_fingerprints,
        Step::Table(PurgeTarget::TagSnapshots) => &mut p.tag_snapshots,
        Step::Table(PurgeTarget::ReconcileRuns) => &mut p.reconcile_runs,
    }
}
