//! `POST /api/webhooks/ghl`: Ed25519 / RSA signatures with a replay window, or the
//! workflow shared secret. A store failure answers 429: GHL's only retry trigger.
use std::convert::Infallible;

use chrono::Utc;
use lambda_http::{http::StatusCode, Body, Request, Response};

use super::{parse_json, raw_body, Ingest, Rejection};
use crate::adapters::events_repo::insert_webhook_event;
use crate::adapters::queue::EventKind;
use crate::auth::{secret_eq, GhlKeys};
use crate::domain::ghl::{classify, classify_workflow, is_fresh, timestamp};
use crate::domain::Source;
use crate::lambda::http::header;
use crate::lambda::{ConfigError, Settings};

pub struct GhlConfig {
    keys: GhlKeys,
    workflow_secret: Option<String>,
}

impl GhlConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let published = crate::auth::ghl_signature::PUBLISHED_ED25519_PEM;
        let ed = s.get("GHL_WEBHOOK_ED25519_PUBLIC_KEY").unwrap_or(published);
        let rsa = s
            .get("GHL_WEBHOOK_RSA_PUBLIC_KEY")
            .unwrap_or(crate::auth::ghl_signature::PUBLISHED_RSA_PEM);
        let keys = GhlKeys::from_pem(ed, rsa).map_err(|e| ConfigError::Invalid {
            name: "GHL_WEBHOOK_ED25519_PUBLIC_KEY / GHL_WEBHOOK_RSA_PUBLIC_KEY",
            reason: e.to_string(),
        })?;
        Ok(GhlConfig {
            keys,
            workflow_secret: s.get("GHL_WORKFLOW_WEBHOOK_SECRET").map(str::to_string),
        })
    }

    pub fn new(keys: GhlKeys, workflow_secret: Option<String>) -> Self {
        GhlConfig {
            keys,
            workflow_secret,
        }
    }
}

/// How a delivery proved itself.
enum Authenticated {
    Signed,
    Workflow,
}

fn authenticate(cfg: &GhlConfig, req: &Request, body: &[u8]) -> Result<Authenticated, Rejection> {
    let signed = cfg.keys.verify(
        header(req, "x-ghl-signature"),
        header(req, "x-wh-signature"),
        body,
    );
    match signed {
        Ok(Some(_)) => Ok(Authenticated::Signed),
        Err(err) => Err(Rejection::unauthorized(err)),
        Ok(None) => {
            let given = header(req, "x-df-workflow-secret");
            match (&cfg.workflow_secret, given) {
                (Some(expected), Some(given))
                    if secret_eq(given.as_bytes(), expected.as_bytes()) =>
                {
                    Ok(Authenticated::Workflow)
                }
                _ => Err(Rejection::unauthorized(
                    "missing signature or workflow secret",
                )),
            }
        }
    }
}

/// Replay protection for signed deliveries: a `timestamp`, when present, must be
/// readable and inside the five-minute window.
fn check_timestamp(payload: &serde_json::Value) -> Result<(), Rejection> {
    match timestamp(payload) {
        Some(Some(ts)) if !is_fresh(ts, Utc::now()) => Err(Rejection::unauthorized(
            "stale timestamp (replay window is 5 minutes)",
        )),
        Some(None) => Err(Rejection::unauthorized("unreadable timestamp")),
        _ => Ok(()),
    }
}

pub async fn handle(ingest: &Ingest, cfg: &GhlConfig, req: Request) -> Response<Body> {
    accept(ingest, cfg, &req)
        .await
        .unwrap_or_else(Rejection::into_response)
}

async fn accept(
    ingest: &Ingest,
    cfg: &GhlConfig,
    req: &Request,
) -> Result<Response<Body>, Rejection> {
    let body = raw_body(req)?;
    let auth = authenticate(cfg, req, body)?;
    let (payload, text) = parse_json(body)?;
    let webhook = match auth {
        Authenticated::Signed => {
            check_timestamp(&payload)?;
            classify(&payload, body)
        }
        Authenticated::Workflow => classify_workflow(&payload, body),
    }
    .map_err(Rejection::invalid_payload)?;
    let c = &webhook.classified;
    let stored =
        insert_webhook_event(&ingest.pool, Source::Ghl, c, text, &webhook.dedupe_key).await;
    Ok(ingest
        .acknowledge(
            stored,
            Source::Ghl,
            EventKind::Webhook,
            c,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await)
}

pub async fn serve(
    ingest: &Ingest,
    cfg: &GhlConfig,
    req: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(handle(ingest, cfg, req).await)
}
