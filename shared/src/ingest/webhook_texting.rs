//! `POST /api/webhooks/texting`: `X-Texting-Secret`, then the generic normaliser.
use std::convert::Infallible;

use lambda_http::{http::StatusCode, Body, Request, Response};

use super::{parse_json, raw_body, Ingest, Rejection};
use crate::adapters::event_store::NewEvent;
use crate::auth::secret_eq;
use crate::domain::texting_webhook::classify;
use crate::domain::Source;
use crate::lambda::http::{header, Arrival};
use crate::lambda::{ConfigError, Settings};

/// How texting-system webhooks prove themselves.
pub struct TextingWebhookAuth {
    secret: String,
}

pub const STORE_FAILURE_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

impl TextingWebhookAuth {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(TextingWebhookAuth {
            secret: s.require("TEXTING_WEBHOOK_SECRET")?.to_string(),
        })
    }
}

pub async fn handle(ingest: &Ingest, cfg: &TextingWebhookAuth, req: Request) -> Response<Body> {
    accept(ingest, cfg, &req)
        .await
        .unwrap_or_else(Rejection::into_response)
}

async fn accept(
    ingest: &Ingest,
    cfg: &TextingWebhookAuth,
    req: &Request,
) -> Result<Response<Body>, Rejection> {
    let arrival = Arrival::of(req);
    let body = raw_body(req)?;
    let given = header(req, "x-texting-secret");
    if !given.is_some_and(|s| secret_eq(s.as_bytes(), cfg.secret.as_bytes())) {
        return Err(Rejection::unauthorized("missing or wrong X-Texting-Secret"));
    }
    let (payload, text) = parse_json(body)?;
    let webhook =
        classify(&payload, body, &ingest.default_country).map_err(Rejection::invalid_payload)?;
    let new = NewEvent {
        source: Source::Texting,
        classified: &webhook.classified,
        payload_json: text,
        dedupe: &webhook.dedupe_key,
        texting: Some(&webhook.message),
        quarantine: None,
        received_at: Some(arrival.wall),
    };
    let at = super::registry::from_texting(&webhook.message, arrival.wall);
    Ok(ingest
        .store_with_registry(new, at, STORE_FAILURE_STATUS, arrival)
        .await)
}

pub async fn serve(
    ingest: &Ingest,
    cfg: &TextingWebhookAuth,
    req: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(handle(ingest, cfg, req).await)
}
