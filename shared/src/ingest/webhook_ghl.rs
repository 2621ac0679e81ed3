//! `POST /api/webhooks/ghl`: Ed25519 / RSA signatures with a replay window, or the
//! workflow shared secret. A store failure answers 429: GHL's only retry trigger, and
//! GHL resends the same signed body, so the replay window covers its retry horizon.
use std::convert::Infallible;

use chrono::Utc;
use lambda_http::{http::StatusCode, Body, Request, Response};

use super::{parse_json, raw_body, Ingest, Rejection};
use crate::adapters::event_store::NewEvent;
use crate::auth::{secret_eq, GhlKeys};
use crate::domain::ghl_webhook::{
    classify, classify_workflow, is_fresh, timestamp, REPLAY_WINDOW_SECONDS,
};
use crate::domain::Source;
use crate::lambda::http::{header, Arrival};
use crate::lambda::{ConfigError, Settings};

/// How GHL webhooks prove themselves: GHL's signing keys and the workflow secret.
pub struct GhlWebhookAuth {
    keys: GhlKeys,
    workflow_secret: Option<String>,
}

/// GHL retries only a 429 (SPEC §3).
pub const STORE_FAILURE_STATUS: StatusCode = StatusCode::TOO_MANY_REQUESTS;

impl GhlWebhookAuth {
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
        Ok(GhlWebhookAuth {
            keys,
            workflow_secret: s.get("GHL_WORKFLOW_WEBHOOK_SECRET").map(str::to_string),
        })
    }

    pub fn new(keys: GhlKeys, workflow_secret: Option<String>) -> Self {
        GhlWebhookAuth {
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

fn authenticate(
    cfg: &GhlWebhookAuth,
    req: &Request,
    body: &[u8],
) -> Result<Authenticated, Rejection> {
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

/// Replay protection for signed deliveries: a readable `timestamp` must be inside the
/// replay window. One we cannot read is no reason to refuse a body whose signature is
/// good (a 401 is final for GHL, so a format change would lose every delivery): it is
/// accepted, and its `webhookId` — else its body hash, for ever — makes a replay a
/// duplicate.
fn check_timestamp(payload: &serde_json::Value) -> Result<(), Rejection> {
    match timestamp(payload) {
        Some(Some(ts)) if !is_fresh(ts, Utc::now()) => Err(Rejection::unauthorized(format!(
            "stale timestamp (the replay window is {} hours)",
            REPLAY_WINDOW_SECONDS / 3600
        ))),
        Some(None) => {
            tracing::warn!(
                "signed GHL webhook with an unreadable timestamp: accepted on its signature"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

pub async fn handle(ingest: &Ingest, cfg: &GhlWebhookAuth, req: Request) -> Response<Body> {
    accept(ingest, cfg, &req)
        .await
        .unwrap_or_else(Rejection::into_response)
}

async fn accept(
    ingest: &Ingest,
    cfg: &GhlWebhookAuth,
    req: &Request,
) -> Result<Response<Body>, Rejection> {
    let arrival = Arrival::of(req);
    let body = raw_body(req)?;
    let auth = authenticate(cfg, req, body)?;
    let (payload, text) = parse_json(body)?;
    let country = &ingest.default_country;
    let signed = matches!(auth, Authenticated::Signed);
    let webhook = match auth {
        Authenticated::Signed => {
            check_timestamp(&payload)?;
            classify(&payload, body, country)
        }
        Authenticated::Workflow => classify_workflow(&payload, body, country),
    }
    .map_err(Rejection::invalid_payload)?;
    let new = NewEvent {
        source: Source::Ghl,
        classified: &webhook.classified,
        payload_json: text,
        dedupe: &webhook.dedupe_key,
        texting: None,
        quarantine: None,
        received_at: Some(arrival.wall),
    };
    let at = if signed {
        super::registry::from_ghl(&payload, arrival.wall)
    } else {
        Default::default()
    };
    Ok(ingest
        .store_with_registry(new, at, STORE_FAILURE_STATUS, arrival)
        .await)
}

pub async fn serve(
    ingest: &Ingest,
    cfg: &GhlWebhookAuth,
    req: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(handle(ingest, cfg, req).await)
}
