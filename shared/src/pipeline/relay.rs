//! `sweep-pending`, the outbox relay (SPEC §5), run every minute by EventBridge. The
//! row is the truth; the relay gives every unfinished row that has no live queue
//! message one, person by person in order (`domain::chain`):
//! - rows that never got a message (the send failed at ingest), rows that stepped
//!   aside and are due, rows a claim found out of their person's order;
//! - rows whose message is known lost — and then each such person's *whole* chain, at
//!   once, each row under a new send number (the consumer drops a message that is not
//!   its row's latest): the queue was deleted and recreated (its creation time
//!   changed), the queue has held no message at all for a while although rows believe
//!   they have one (purged), a message was dead-lettered (the DLQ is drained: messages
//!   of finished rows deleted, the rest re-sent), or, as the last resort, the chain's
//!   first row has shown no sign of life for `RELAY_STALE_SECONDS`.
//!
//! Recovery is proportional to the work, not to the number of lost messages: one run
//! re-sends everything a loss affected. One relay at a time per inbox (an advisory
//! lock): EventBridge's at-least-once delivery or an operator's push never run two.
//! Each run first probes the providers paused for a rejected credential.
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::adapters::event_store;
use crate::adapters::provider_pause::ProviderPauses;
use crate::adapters::queue::{EventQueue, QueueMessage};
use crate::domain::EventKind;
use crate::lambda::config::queue_setting;
use crate::lambda::{ConfigError, Settings};
use crate::pipeline::consumer::CLAIM_LEASE;
use crate::providers::aloware_api::AlowareClient;
use crate::providers::ghl_api::GhlClient;
use crate::providers::texting_api::TextingClient;
use crate::providers::ProviderError;

/// Default age after which a chain whose first row shows no sign of life is presumed to
/// have lost its messages: longer than the queue's visibility timeout (360 s, the
/// longest a live message stays hidden after a consumer died) plus the back-off
/// ceiling's slack. Only the last resort: the queue's own state says it sooner.
pub const DEFAULT_STALE: Duration = Duration::from_secs(15 * 60);
/// A queue seen empty this long while rows believe they have messages has lost them.
pub const EMPTY_FOR: Duration = Duration::from_secs(30);
/// A recreated queue: rows sent up to this long after its creation time are re-sent
/// too (two clocks; a re-send of a live message costs only an obsolete copy).
const CREATION_SLACK: chrono::Duration = chrono::Duration::seconds(5);
/// Persons per chain read.
const PERSONS: i64 = 200;
/// Dead letters taken per run, at most (10 per receive).
const DLQ_RECEIVES: usize = 20;

/// One inbox the relay serves: its queue and, when configured, its dead-letter queue.
pub struct Inbox {
    pub kind: EventKind,
    pub queue: EventQueue,
    pub dlq: Option<EventQueue>,
}

pub struct Relay {
    pub pool: Pool,
    pub inboxes: Vec<Inbox>,
    /// `RELAY_STALE_SECONDS`.
    pub stale: Duration,
    /// The run stops choosing new rows after this long (`RELAY_BUDGET_SECONDS`; the
    /// function's timeout is 60 s).
    pub budget: Duration,
    /// The paused providers' probes (`None`: this relay probes nothing).
    pub probes: Option<Probes>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KindReport {
    pub kind: &'static str,
    /// Messages sent.
    pub enqueued: usize,
    pub send_failures: usize,
    /// Rows whose message was found lost, by how (their whole chains were re-sent).
    pub lost: Lost,
    /// Dead letters deleted (their rows finished, or re-sent).
    pub dead_letters_cleared: usize,
    /// Another relay held this inbox: this run did nothing.
    pub skipped: bool,
    /// Unfinished rows (pending, error, processing).
    pub unfinished: i64,
    /// Rows waiting for an attempt (pending, error).
    pub waiting: i64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Lost {
    pub queue_recreated: u64,
    pub queue_emptied: u64,
    pub dead_lettered: u64,
    pub stale: u64,
    /// An operator's push (`jobs-enqueue-pending`).
    pub pushed: u64,
}

/// The providers a relay can probe while they are paused, each with a read that costs
/// nothing: the probe's only question is whether our credential is accepted again.
pub struct Probes {
    pub pauses: ProviderPauses,
    pub ghl: Option<GhlClient>,
    pub aloware: Option<AlowareClient>,
    pub texting: Option<TextingClient>,
}

impl Probes {
    /// Probe every paused provider whose probe is due; resume those that take our
    /// credential again. Returns the providers resumed.
    pub async fn run(&self) -> Vec<&'static str> {
        if let Err(e) = self.pauses.release_orphans().await {
            tracing::warn!(error = %e, "could not release rows held by an ended pause");
        }
        let due = match self.pauses.take_due_probes().await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the provider pauses");
                return Vec::new();
            }
        };
        let mut resumed = Vec::new();
        for provider in due {
            let (key, answer): (&'static str, Option<Result<(), ProviderError>>) =
                match provider.as_str() {
                    "ghl" => (
                        "ghl",
                        match &self.ghl {
                            Some(c) => Some(c.list_custom_fields().await.map(|_| ())),
                            None => None,
                        },
                    ),
                    "aloware" => (
                        "aloware",
                        match &self.aloware {
                            Some(c) => Some(c.list_users().await.map(|_| ())),
                            None => None,
                        },
                    ),
                    "texting" => (
                        "texting",
                        match &self.texting {
                            Some(c) => Some(c.get("df-middleware-probe").await.map(|_| ())),
                            None => None,
                        },
                    ),
                    _ => continue,
                };
            match answer {
                // Any answer but a credential refusal (a 404 included) says the
                // credential is accepted; a 5xx or no answer says nothing.
                Some(Ok(())) => {}
                Some(Err(e)) if !e.is_credential() && e.status.is_some_and(|s| s < 500) => {}
                Some(Err(e)) => {
                    tracing::warn!(provider = key, error = %e, "probe: still paused");
                    continue;
                }
                None => {
                    tracing::warn!(
                        provider = key,
                        "probe: this relay has no client for the provider"
                    );
                    continue;
                }
            }
            match self.pauses.resume(key).await {
                Ok(_) => resumed.push(key),
                Err(e) => {
                    tracing::warn!(provider = key, error = %e, "probe succeeded; resume failed")
                }
            }
        }
        resumed
    }
}

/// The advisory lock key of one inbox's relay.
fn lock_key(kind: EventKind) -> i64 {
    0x7265_6c61_0000 + kind as i64
}

impl Relay {
    /// The relay of every inbox whose queue URL is configured, with its DLQ when its
    /// URL is (`*_EVENTS_DLQ_URL`). Probes are the composition root's to add.
    pub async fn from_settings(s: &Settings, kinds: &[EventKind]) -> Result<Self, ConfigError> {
        let mut inboxes = Vec::new();
        for kind in kinds {
            if s.get(queue_setting(*kind)).is_none() {
                continue;
            }
            let dlq_setting = dlq_setting(*kind);
            let dlq = match s.get(dlq_setting) {
                Some(_) => Some(s.queue(dlq_setting).await?),
                None => None,
            };
            inboxes.push(Inbox {
                kind: *kind,
                queue: s.queue(queue_setting(*kind)).await?,
                dlq,
            });
        }
        Ok(Relay {
            pool: s.pool()?,
            inboxes,
            stale: Duration::from_secs(s.parse_or("RELAY_STALE_SECONDS", DEFAULT_STALE.as_secs())?),
            budget: Duration::from_secs(s.parse_or("RELAY_BUDGET_SECONDS", 40u64)?),
            probes: None,
        })
    }

    pub async fn run_once(&self) -> Vec<KindReport> {
        let deadline = Instant::now() + self.budget;
        if let Some(probes) = &self.probes {
            probes.run().await;
        }
        let mut reports = Vec::new();
        for inbox in &self.inboxes {
            reports.push(Box::pin(self.relay_inbox(inbox, deadline, None)).await);
        }
        reports
    }

    /// `jobs-enqueue-pending`: re-send now the chains of up to `limit` persons whose
    /// first row is due, least recently sent first (an operator's push; the consumer
    /// drops the superseded messages). `None` when this relay has no queue for `kind`.
    pub async fn enqueue_due(&self, kind: EventKind, limit: usize) -> Option<KindReport> {
        let inbox = self.inboxes.iter().find(|i| i.kind == kind)?;
        let deadline = Instant::now() + self.budget;
        Some(Box::pin(self.relay_inbox(inbox, deadline, Some(limit))).await)
    }

    async fn relay_inbox(
        &self,
        inbox: &Inbox,
        deadline: Instant,
        push: Option<usize>,
    ) -> KindReport {
        let kind = inbox.kind;
        let mut report = KindReport {
            kind: kind.as_str(),
            ..Default::default()
        };
        // One relay per inbox: the lock lives with its session, so a relay that dies
        // releases it.
        let lock = match self.pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(kind = kind.as_str(), error = %e, "relay: database unavailable");
                return self.finish(report, kind).await;
            }
        };
        let key = lock_key(kind);
        match lock
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
        {
            Ok(r) if r.get::<_, bool>(0) => {}
            Ok(_) => {
                tracing::info!(kind = kind.as_str(), "another relay holds this inbox");
                report.skipped = true;
                return self.finish(report, kind).await;
            }
            Err(e) => {
                tracing::error!(kind = kind.as_str(), error = %e, "relay: could not take its lock");
                return self.finish(report, kind).await;
            }
        }
        self.detect_losses(inbox, &mut report, push).await;
        self.send_chains(inbox, deadline, &mut report).await;
        if lock
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await
            .is_err()
        {
            crate::adapters::db::discard(lock);
        }
        self.finish(report, kind).await
    }

    /// Find the rows whose message is gone, and unqueue their chains.
    async fn detect_losses(&self, inbox: &Inbox, report: &mut KindReport, push: Option<usize>) {
        let kind = inbox.kind;
        let warn = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(kind = kind.as_str(), error = %e, "relay: {what}");
        };
        if let Some(limit) = push {
            match event_store::lose_due_chains(&self.pool, kind, limit as i64).await {
                Ok(n) => report.lost.pushed = n,
                Err(e) => warn("could not read the due rows", &e),
            }
        }
        match inbox.queue.state().await {
            Ok(state) => self.judge_queue(inbox, state, report).await,
            Err(e) => warn("queue state unreadable (sends will tell)", &e),
        }
        if let Some(dlq) = &inbox.dlq {
            self.drain_dead_letters(kind, dlq, report).await;
        }
        match event_store::lose_stale_chains(&self.pool, kind, self.stale, CLAIM_LEASE).await {
            Ok(n) => report.lost.stale = n,
            Err(e) => warn("could not read stale rows", &e),
        }
        let lost = &report.lost;
        let total = lost.queue_recreated + lost.queue_emptied + lost.dead_lettered + lost.stale;
        if total > 0 {
            tracing::warn!(
                kind = kind.as_str(),
                recreated = lost.queue_recreated,
                emptied = lost.queue_emptied,
                dead_lettered = lost.dead_lettered,
                stale = lost.stale,
                "relay: queue messages lost; re-sending their chains"
            );
        }
    }

    /// The queue's creation time and its message count against what rows believe.
    async fn judge_queue(
        &self,
        inbox: &Inbox,
        state: crate::adapters::queue::QueueState,
        report: &mut KindReport,
    ) {
        let kind = inbox.kind;
        let url = inbox.queue.url();
        let observed = event_store::observe_queue(
            &self.pool,
            kind,
            url,
            state.created_timestamp,
            state.messages == 0,
            0,
        )
        .await;
        let (before, empty_since) = match observed {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), error = %e, "relay: could not record the queue's state");
                return;
            }
        };
        let recreated_at = match &before {
            // A different queue behind the setting: everything sent to the old one.
            Some(b) if b.queue_url.as_deref() != Some(url) => Some(chrono::Utc::now()),
            Some(b) => match (b.created_timestamp, state.created_timestamp) {
                (Some(old), Some(new)) if (new - old).abs() > 0.5 => {
                    chrono::DateTime::from_timestamp(new as i64, 0).map(|t| t + CREATION_SLACK)
                }
                _ => None,
            },
            None => None,
        };
        if let Some(at) = recreated_at {
            match event_store::lose_chains_sent_before(&self.pool, kind, at).await {
                Ok(n) => report.lost.queue_recreated = n,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: could not re-queue after a queue change")
                }
            }
        }
        if let Some(since) = empty_since {
            let for_long = chrono::Utc::now() - since
                >= chrono::Duration::from_std(EMPTY_FOR).unwrap_or_default();
            if for_long {
                match event_store::lose_chains_sent_before(&self.pool, kind, since).await {
                    Ok(n) => report.lost.queue_emptied = n,
                    Err(e) => {
                        tracing::warn!(error = %e, "relay: could not re-queue after an empty queue")
                    }
                }
            }
        }
    }

    /// Take the dead letters: those of finished rows are deleted, the others' chains
    /// re-sent (and then deleted), so the DLQ's alarm clears once things recover.
    async fn drain_dead_letters(&self, kind: EventKind, dlq: &EventQueue, report: &mut KindReport) {
        for _ in 0..DLQ_RECEIVES {
            let batch = match dlq.receive(Duration::from_secs(30)).await {
                Ok(batch) if !batch.is_empty() => batch,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(kind = kind.as_str(), error = %e, "relay: dead letters unreadable");
                    return;
                }
            };
            let ids: Vec<Uuid> = batch
                .iter()
                .filter_map(|m| m.body.as_deref())
                .filter_map(|b| serde_json::from_str::<QueueMessage>(b).ok())
                .filter(|m| m.kind == kind)
                .map(|m| m.event_id)
                .collect();
            match event_store::lose_chains_of(&self.pool, kind, &ids).await {
                Ok(n) => report.lost.dead_lettered += n,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: could not re-queue dead-lettered rows; they stay in the DLQ");
                    return;
                }
            }
            for m in &batch {
                if let Some(handle) = &m.receipt_handle {
                    if dlq.delete(handle).await.is_ok() {
                        report.dead_letters_cleared += 1;
                    }
                }
            }
        }
    }

    /// Give every row without a live message one, chain by chain, in order.
    async fn send_chains(&self, inbox: &Inbox, deadline: Instant, report: &mut KindReport) {
        let kind = inbox.kind;
        let mut after: Option<String> = None;
        while Instant::now() < deadline {
            let links = match event_store::chain_links(&self.pool, kind, after.as_deref(), PERSONS)
                .await
            {
                Ok(links) if !links.is_empty() => links,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(kind = kind.as_str(), error = %e, "relay could not read the inbox");
                    return;
                }
            };
            after = links.last().map(|l| l.person_key.clone());
            let ids = crate::domain::chain::to_send(&links);
            let chosen = match event_store::mark_sent(&self.pool, kind, &ids).await {
                Ok(chosen) => chosen,
                Err(e) => {
                    tracing::error!(kind = kind.as_str(), error = %e, "relay could not mark rows sent");
                    return;
                }
            };
            if !self.send(inbox, &chosen, report).await {
                return;
            }
        }
    }

    /// Send `chosen` in order; on the first failed send the rest is unmarked (sending
    /// later rows now could overtake it). Returns whether every send succeeded.
    async fn send(
        &self,
        inbox: &Inbox,
        chosen: &[event_store::Resend],
        report: &mut KindReport,
    ) -> bool {
        let kind = inbox.kind;
        for (i, row) in chosen.iter().enumerate() {
            if let Err(e) = inbox
                .queue
                .send(row.id, kind, &row.person_key, row.seq)
                .await
            {
                tracing::warn!(kind = kind.as_str(), error = %e, "relay send failed; the rest waits for the next run");
                let unsent: Vec<_> = chosen[i..].iter().map(|r| r.id).collect();
                report.send_failures += unsent.len();
                if let Err(e) = event_store::unmark_resends(&self.pool, kind, &unsent).await {
                    tracing::warn!(error = %e, "could not unmark unsent rows; they go stale instead");
                }
                return false;
            }
            tracing::debug!(kind = kind.as_str(), event_id = %row.id, seq = row.seq, "relayed");
            report.enqueued += 1;
        }
        true
    }

    async fn finish(&self, mut report: KindReport, kind: EventKind) -> KindReport {
        report.unfinished = event_store::backlog(&self.pool, kind)
            .await
            .map(|(n, _)| n)
            .unwrap_or(-1);
        report.waiting = event_store::pending_count(&self.pool, kind)
            .await
            .unwrap_or(-1);
        tracing::info!(
            kind = report.kind,
            enqueued = report.enqueued,
            send_failures = report.send_failures,
            unfinished = report.unfinished,
            "relay run"
        );
        report
    }
}

/// The setting naming an inbox's dead-letter queue.
pub fn dlq_setting(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Webhook => "WEBHOOK_EVENTS_DLQ_URL",
        EventKind::Texting => "TEXTING_EVENTS_DLQ_URL",
        EventKind::Broadcast => "BROADCAST_EVENTS_DLQ_URL",
    }
}
