//! `POST /api/webhooks/texting`: `X-Texting-Secret`, then the generic normaliser.
use std::convert::Infallible;

use lambda_http::{http::StatusCode, Body, Request, Response};

use super::{parse_json, raw_body, Ingest, Rejection};
use crate::adapters::events_repo::insert_texting_event;
use crate::adapters::queue::EventKind;
use crate::auth::secret_eq;
use crate::domain::texting::classify;
use crate::domain::Source;
use crate::lambda::http::header;
use crate::lambda::{ConfigError, Settings};

pub struct TextingConfig {
    secret: String,
}

impl TextingConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(TextingConfig {
            secret: s.require("TEXTING_WEBHOOK_SECRET")?.to_string(),
        })
    }
}

pub async fn handle(ingest: &Ingest, cfg: &TextingConfig, req: Request) -> Response<Body> {
    accept(ingest, cfg, &req)
        .await
        .unwrap_or_else(Rejection::into_response)
}

async fn accept(
    ingest: &Ingest,
    cfg: &TextingConfig,
    req: &Request,
) -> Result<Response<Body>, Rejection> {
    let body = raw_body(req)?;
    let given = header(req, "x-texting-secret");
    if !given.is_some_and(|s| secret_eq(s.as_bytes(), cfg.secret.as_bytes())) {
        return Err(Rejection::unauthorized("missing or wrong X-Texting-Secret"));
    }
    let (payload, text) = parse_json(body)?;
    let webhook =
        classify(&payload, body, &ingest.default_country).map_err(Rejection::invalid_payload)?;
    let c = &webhook.classified;
    let stored =
        insert_texting_event(&ingest.pool, c, &webhook.message, text, &webhook.dedupe_key).await;
    Ok(ingest
        .acknowledge(
            stored,
            Source::Texting,
            EventKind::Texting,
            c,
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await)
}

pub async fn serve(
    ingest: &Ingest,
    cfg: &TextingConfig,
    req: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(handle(ingest, cfg, req).await)
}
