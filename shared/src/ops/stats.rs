//! `GET /api/admin/stats`: the numbers an operator looks at first — events by source
//! and status over 1 h and 24 h, the oldest waiting event, dead-letter depths, each
//! rate budget's use, and the last reconcile run.
use deadpool_postgres::Pool;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

use super::admin::{authorize, require_method, respond, Refusal};
use crate::adapters::{db::DbError, ops_store, queue::EventQueue};
use crate::domain::EventKind;
use crate::lambda::{ConfigError, Settings};

/// The dead-letter queues, by the settings that name them.
pub const DLQ_SETTINGS: [(&str, &str); 3] = [
    ("webhook-events-dlq", "WEBHOOK_EVENTS_DLQ_URL"),
    ("texting-events-dlq", "TEXTING_EVENTS_DLQ_URL"),
    ("broadcast-events-dlq", "BROADCAST_EVENTS_DLQ_URL"),
];

pub struct Stats {
    pub pool: Pool,
    pub admin_secret: String,
    pub dead_letter_queues: Vec<(&'static str, EventQueue)>,
}

/// The configured dead-letter queues (absent settings are skipped).
pub async fn dead_letter_queues(
    s: &Settings,
) -> Result<Vec<(&'static str, EventQueue)>, ConfigError> {
    let mut out = Vec::new();
    for (name, setting) in DLQ_SETTINGS {
        if s.get(setting).is_some() {
            out.push((name, s.queue(setting).await?));
        }
    }
    Ok(out)
}

impl Stats {
    pub async fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Stats {
            pool: s.pool()?,
            admin_secret: s.require("DF_ADMIN_SECRET")?.to_string(),
            dead_letter_queues: dead_letter_queues(s).await?,
        })
    }
}

/// Messages waiting in each dead-letter queue (`null` when it cannot be read).
pub async fn dead_letter_depths(queues: &[(&'static str, EventQueue)]) -> Value {
    let mut out = json!({});
    for (name, queue) in queues {
        out[*name] = match queue.depth().await {
            Ok((visible, in_flight)) => json!(visible + in_flight),
            Err(e) => {
                tracing::warn!(queue = *name, error = %e, "stats: dead-letter depth unavailable");
                Value::Null
            }
        };
    }
    out
}

pub async fn handle(ctx: &Stats, req: Request) -> Response<Body> {
    let answer = async {
        require_method(&req, "GET")?;
        authorize(&req, &ctx.admin_secret)?;
        numbers(ctx).await.map_err(|e| {
            tracing::error!(error = %e, "stats: store unavailable");
            Refusal::store_unavailable()
        })
    };
    respond(StatusCode::OK, answer.await)
}

async fn numbers(ctx: &Stats) -> Result<Value, DbError> {
    let mut inboxes = json!({});
    for kind in [EventKind::Webhook, EventKind::Texting, EventKind::Broadcast] {
        inboxes[kind.as_str()] = json!({
            "lastHour": ops_store::counts_since(&ctx.pool, kind, 1).await?,
            "last24Hours": ops_store::counts_since(&ctx.pool, kind, 24).await?,
            "oldestWaitingSeconds": ops_store::oldest_waiting_seconds(&ctx.pool, kind).await?
                .map(|s| s.round()),
        });
    }
    Ok(json!({
        "generatedAt": chrono::Utc::now(),
        "events": inboxes,
        "deadLetterQueues": dead_letter_depths(&ctx.dead_letter_queues).await,
        "rateBudgets": ops_store::budgets(&ctx.pool).await?,
        "lastReconcile": ops_store::last_reconcile(&ctx.pool).await?,
    }))
}
