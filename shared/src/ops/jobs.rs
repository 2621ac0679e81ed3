//! The job routes (SPEC §8), header `X-DF-JOBS-SECRET`: `POST /api/jobs/enqueue-pending`
//! and `.../enqueue-texting-pending` push due events to their queue through the relay
//! (`{enqueued, totalPending}`); `POST /api/jobs/run-once` processes due events in the
//! call itself through the consumer's own claim / attempt / finish
//! (`{processed, errors, totalPending}`), stopping before its time budget.
use std::time::Duration;

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::admin::{authorize_jobs as authorize, require_method, respond, Refusal};
use crate::adapters::event_store;
use crate::domain::EventKind;
use crate::lambda::{ConfigError, Settings};
use crate::pipeline::relay::Relay;
use crate::pipeline::{Consumer, Router};

/// `JOBS_BATCH_SIZE`'s default.
pub const DEFAULT_BATCH: usize = 100;

/// `run-once` answers within API Gateway's 30 s integration limit.
pub const RUN_ONCE_BUDGET: Duration = Duration::from_secs(25);

pub struct EnqueueJob {
    pub relay: Relay,
    pub jobs_secret: String,
    pub batch_size: usize,
    pub kind: EventKind,
}

/// `JOBS_BATCH_SIZE` (default 100, at least 1).
pub fn batch_size(s: &Settings) -> Result<usize, ConfigError> {
    Ok(s.parse_or("JOBS_BATCH_SIZE", DEFAULT_BATCH)?.max(1))
}

impl EnqueueJob {
    pub async fn from_settings(s: &Settings, kind: EventKind) -> Result<Self, ConfigError> {
        Ok(EnqueueJob {
            relay: Relay::from_settings(s, &[kind]).await?,
            jobs_secret: s.require("X_DF_JOBS_SECRET")?.to_string(),
            batch_size: batch_size(s)?,
            kind,
        })
    }
}

/// `POST /api/jobs/enqueue-pending` (webhook) or `.../enqueue-texting-pending`.
pub async fn handle_enqueue(ctx: &EnqueueJob, req: Request) -> Response<Body> {
    respond(StatusCode::OK, enqueue(ctx, &req).await)
}

async fn enqueue(ctx: &EnqueueJob, req: &Request) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.jobs_secret)?;
    let report = ctx
        .relay
        .enqueue_due(ctx.kind, ctx.batch_size)
        .await
        .ok_or_else(Refusal::store_unavailable)?;
    if report.waiting < 0 {
        return Err(Refusal::store_unavailable());
    }
    Ok(
        json!({"enqueued": report.enqueued, "sendFailures": report.send_failures,
        "totalPending": report.waiting, "skipped": report.skipped}),
    )
}

pub struct RunOnceJob<R> {
    pub consumer: Consumer<R>,
    pub jobs_secret: String,
    pub batch_size: usize,
}

/// `POST /api/jobs/run-once`.
pub async fn handle_run_once<R: Router>(ctx: &RunOnceJob<R>, req: Request) -> Response<Body> {
    respond(
        StatusCode::OK,
        run_once(ctx, &req, Instant::now() + RUN_ONCE_BUDGET).await,
    )
}

pub async fn run_once<R: Router>(
    ctx: &RunOnceJob<R>,
    req: &Request,
    deadline: Instant,
) -> Result<Value, Refusal> {
    require_method(req, "POST")?;
    authorize(req, &ctx.jobs_secret)?;
    let report = ctx.consumer.run_due(ctx.batch_size, deadline).await;
    let pending = event_store::pending_count(&ctx.consumer.pool, ctx.consumer.kind)
        .await
        .map_err(|_| Refusal::store_unavailable())?;
    Ok(
        json!({"processed": report.processed, "errors": report.errors,
        "stoppedForTime": report.out_of_time, "totalPending": pending}),
    )
}
