//! `POST /api/webhooks/broadcast`: Verity's broadcast events (SPEC §13). Same contract
//! as the other ingest functions (store, then queue; 503 when the store is down), plus
//! coalescing (`adapters::broadcast_store`).
use std::time::Duration;

use lambda_http::{http::StatusCode, Body, Request, Response};

use super::{parse_json, raw_body, Ingest, Rejection};
use crate::adapters::broadcast_store::{self, NewBroadcastEvent};
use crate::auth::broadcast_signature::{self, BroadcastProof};
use crate::domain::broadcast::classify;
use crate::lambda::http::{header, Arrival};
use crate::lambda::{ConfigError, Settings};

pub const STORE_FAILURE_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// How Verity proves its broadcast webhooks, and how long a broadcast's events settle.
pub struct BroadcastWebhookConfig {
    secret: String,
    pub settle: Duration,
}

/// `BROADCAST_SETTLE_SECONDS`: the minimum time between two computations of one
/// broadcast (a burst of events costs one computation per interval).
pub fn settle_interval(s: &Settings) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs_f64(
        s.parse_or("BROADCAST_SETTLE_SECONDS", 30.0f64)?.max(0.0),
    ))
}

impl BroadcastWebhookConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(BroadcastWebhookConfig {
            secret: s.require("VERITY_WEBHOOK_SECRET")?.to_string(),
            settle: settle_interval(s)?,
        })
    }
}

pub async fn handle(ingest: &Ingest, cfg: &BroadcastWebhookConfig, req: Request) -> Response<Body> {
    accept(ingest, cfg, &req)
        .await
        .unwrap_or_else(Rejection::into_response)
}

async fn accept(
    ingest: &Ingest,
    cfg: &BroadcastWebhookConfig,
    req: &Request,
) -> Result<Response<Body>, Rejection> {
    let arrival = Arrival::of(req);
    let body = raw_body(req)?;
    let proof = BroadcastProof {
        signature: header(req, "x-broadcast-signature").or_else(|| header(req, "x-signature")),
        secret: header(req, "x-df-broadcast-secret"),
    };
    broadcast_signature::verify(&cfg.secret, body, proof).map_err(Rejection::unauthorized)?;
    let (payload, text) = parse_json(body)?;
    let delivery = uuid::Uuid::new_v4().to_string();
    let webhook = classify(&payload, &delivery).map_err(Rejection::invalid_payload)?;
    let c = &webhook.classified;
    let new = NewBroadcastEvent {
        source: "verity",
        broadcast_id: c.entity_id.as_deref().unwrap_or_default(),
        event_type: &c.event_type,
        payload_json: text,
        dedupe: &webhook.dedupe_key,
        quarantine: webhook.quarantine.as_deref(),
        settle: cfg.settle,
    };
    let deadline = Ingest::deadline(arrival);
    let stored = match ingest.store_connection(deadline).await {
        Ok(held) => {
            let insert = broadcast_store::insert_on(held.client(), &new);
            let outcome = tokio::time::timeout(held.left(), insert).await;
            held.settle(outcome)
        }
        Err(e) => Err(e),
    };
    Ok(ingest
        .acknowledge("verity", c, stored, STORE_FAILURE_STATUS, deadline)
        .await)
}
