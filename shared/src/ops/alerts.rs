//! `alerts-evaluate` (EventBridge, every 5 minutes): checks the conditions of SPEC §8
//! — an event gave up, the error rate over 15 minutes passed `ALERT_ERROR_RATE`, the
//! oldest waiting event is older than `ALERT_BACKLOG_SECONDS`, a reconcile run failed
//! — plus a dead-letter queue holding messages and a provider refusing our
//! credential, and POSTs each to `ALERT_WEBHOOK_URL`, at most once per key per hour.
//! Evaluated here, never on the hot path.
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::{json, Value};

use super::stats::dead_letter_queues;
use crate::adapters::db::DbError;
use crate::adapters::ops_store;
use crate::adapters::queue::EventQueue;
use crate::domain::EventKind;
use crate::lambda::{ConfigError, Settings};

/// One alert per key per this many minutes.
pub const ALERT_WINDOW_MINUTES: i32 = 60;
/// The error-rate window (SPEC §8).
const RATE_WINDOW_MINUTES: i32 = 15;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// What the once-per-hour rule counts by, e.g. `events_failed:webhook`.
    pub key: String,
    pub severity: &'static str,
    pub summary: String,
    pub details: Value,
    /// Where an operator looks first.
    pub look_at: Vec<String>,
    /// Sent at most once per this many minutes.
    #[serde(skip)]
    pub window_minutes: i32,
}

/// An alert about one occurrence (a pause) is sent once, however long it lasts.
const ONCE: i32 = 10 * 365 * 24 * 60;

pub struct Alerts {
    pub pool: Pool,
    pub webhook_url: Option<String>,
    pub http: reqwest::Client,
    pub error_rate: f64,
    /// Fewer attempts than this in the window never make a rate (one error of one).
    pub min_attempts: i64,
    pub backlog_seconds: f64,
    pub dead_letter_queues: Vec<(&'static str, EventQueue)>,
    /// `BASE_URL`: admin links in the alert body.
    pub base_url: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertReport {
    pub firing: Vec<String>,
    pub sent: Vec<String>,
    /// Firing but sent within the hour already.
    pub suppressed: Vec<String>,
    pub send_failures: Vec<String>,
}

impl Alerts {
    pub async fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Alerts {
            pool: s.pool()?,
            webhook_url: s
                .get("ALERT_WEBHOOK_URL")
                .filter(|u| !u.trim().is_empty())
                .map(str::to_string),
            http: crate::providers::http_client(),
            error_rate: s.parse_or("ALERT_ERROR_RATE", 0.2f64)?,
            min_attempts: s.parse_or("ALERT_MIN_ATTEMPTS", 5i64)?,
            backlog_seconds: s.parse_or("ALERT_BACKLOG_SECONDS", 900f64)?,
            dead_letter_queues: dead_letter_queues(s).await?,
            base_url: s.get_or("BASE_URL", "").trim_end_matches('/').to_string(),
        })
    }

    fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Every condition that holds now.
    pub async fn firing(&self) -> Result<Vec<Alert>, DbError> {
        let mut out = Vec::new();
        for kind in [EventKind::Webhook, EventKind::Texting, EventKind::Broadcast] {
            let (n, ids) =
                ops_store::recently_failed(&self.pool, kind, ALERT_WINDOW_MINUTES).await?;
            if n > 0 {
                let list = match kind {
                    EventKind::Texting => "/api/admin/texting/events?status=failed",
                    EventKind::Broadcast => "/api/admin/events?inbox=broadcast&status=failed",
                    _ => "/api/admin/events?status=failed",
                };
                out.push(Alert {
                    key: format!("events_failed:{}", kind.as_str()),
                    severity: "error",
                    summary: format!("{n} {} event(s) gave up in the last hour", kind.as_str()),
                    details: json!({"count": n, "eventIds": ids}),
                    look_at: vec![self.link(list)],
                    window_minutes: ALERT_WINDOW_MINUTES,
                });
            }
            if let Some(age) = ops_store::oldest_waiting_seconds(&self.pool, kind).await? {
                if age > self.backlog_seconds {
                    out.push(Alert {
                        key: format!("backlog:{}", kind.as_str()),
                        severity: "warning",
                        summary: format!(
                            "the oldest waiting {} event arrived {:.0} s ago (limit {:.0} s)",
                            kind.as_str(),
                            age,
                            self.backlog_seconds
                        ),
                        details: json!({"oldestWaitingSeconds": age.round()}),
                        look_at: vec![self.link("/api/admin/stats")],
                        window_minutes: ALERT_WINDOW_MINUTES,
                    });
                }
            }
        }
        let (errors, all) = ops_store::attempt_outcomes(&self.pool, RATE_WINDOW_MINUTES).await?;
        if all >= self.min_attempts && errors as f64 / all as f64 > self.error_rate {
            out.push(Alert {
                key: "error_rate".into(),
                severity: "error",
                summary: format!(
                    "{errors} of {all} attempts failed in the last {RATE_WINDOW_MINUTES} minutes (limit {:.0} %)",
                    self.error_rate * 100.0
                ),
                details: json!({"errors": errors, "attempts": all, "limit": self.error_rate}),
                look_at: vec![self.link("/api/admin/events?status=error")],
                window_minutes: ALERT_WINDOW_MINUTES,
            });
        }
        // One alert per pause: its work waits (no attempt spent) until a probe finds
        // the credential accepted again.
        for (id, provider, since, reason) in ops_store::open_pauses(&self.pool).await? {
            out.push(Alert {
                key: format!("provider_paused:{provider}:{id}"),
                severity: "critical",
                summary: format!(
                    "{provider} refused our credential: its work is paused since {since} (nothing is lost or spent); replace the token in the config secret and it resumes within a minute"
                ),
                details: json!({"provider": provider, "pausedAt": since, "reason": reason}),
                look_at: vec![self.link("/api/admin/stats")],
                window_minutes: ONCE,
            });
        }
        // Texts another system sent to an opted-out number: once per number per hour.
        for (phone, count) in ops_store::recent_incidents(&self.pool, ALERT_WINDOW_MINUTES).await? {
            use sha2::Digest;
            let tag = &hex::encode(sha2::Sha256::digest(phone.as_bytes()))[..12];
            out.push(Alert {
                key: format!("texted_opted_out:{tag}"),
                severity: "critical",
                summary: format!(
                    "another system texted an opted-out number ({}) {count} time(s) in the last hour",
                    crate::domain::pii::mask_phone(&phone)
                ),
                details: json!({"number": crate::domain::pii::mask_phone(&phone), "texts": count}),
                look_at: vec![self.link("/api/admin/optouts?incidents=true")],
                window_minutes: ALERT_WINDOW_MINUTES,
            });
        }
        // Without a pause (a function that pauses nothing) a rejection still alerts.
        let rejected = ops_store::credential_rejections(&self.pool, RATE_WINDOW_MINUTES).await?;
        if rejected > 0 {
            out.push(Alert {
                key: "credential_rejected".into(),
                severity: "critical",
                summary: format!(
                    "a provider refused our credential {rejected} time(s) in the last {RATE_WINDOW_MINUTES} minutes: replace the token in the config secret"
                ),
                details: json!({"rejections": rejected}),
                look_at: vec![self.link("/api/admin/events?status=error")],
                window_minutes: ALERT_WINDOW_MINUTES,
            });
        }
        let failed_runs = ops_store::failed_reconciles(&self.pool, ALERT_WINDOW_MINUTES).await?;
        if let Some((id, error)) = failed_runs.first() {
            out.push(Alert {
                key: "reconcile_failed".into(),
                severity: "error",
                summary: "a reconcile-contacts run failed".into(),
                details: json!({"runId": id, "error": error, "failedRuns": failed_runs.len()}),
                look_at: vec![self.link("/api/admin/stats")],
                window_minutes: ALERT_WINDOW_MINUTES,
            });
        }
        for (name, queue) in &self.dead_letter_queues {
            if let Ok((visible, in_flight)) = queue.depth().await {
                if visible + in_flight > 0 {
                    out.push(Alert {
                        key: format!("dlq:{name}"),
                        severity: "warning",
                        summary: format!(
                            "{} message(s) in {name}: sweep-pending re-sends their rows; look for a poison message",
                            visible + in_flight
                        ),
                        details: json!({"messages": visible + in_flight}),
                        look_at: vec![self.link("/api/admin/stats")],
                        window_minutes: ALERT_WINDOW_MINUTES,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Evaluate and send what is due.
    pub async fn run(&self) -> Result<AlertReport, DbError> {
        let mut report = AlertReport::default();
        for alert in self.firing().await? {
            report.firing.push(alert.key.clone());
            tracing::warn!(alert = %alert.key, summary = %alert.summary, "alert condition holds");
            let Some(url) = &self.webhook_url else {
                continue;
            };
            let body = json!({"alert": alert.key, "severity": alert.severity, "summary": alert.summary,
                "details": alert.details, "lookAt": alert.look_at, "at": chrono::Utc::now(),
                "service": "df-middleware"});
            if !ops_store::claim_alert(&self.pool, &alert.key, &body, alert.window_minutes).await? {
                report.suppressed.push(alert.key);
                continue;
            }
            let sent = self
                .http
                .post(url)
                .timeout(Duration::from_secs(5))
                .json(&body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if sent {
                report.sent.push(alert.key);
            } else {
                tracing::error!(alert = %alert.key, "alert could not be delivered; retried next evaluation");
                ops_store::release_alert(&self.pool, &alert.key).await?;
                report.send_failures.push(alert.key);
            }
        }
        Ok(report)
    }
}
