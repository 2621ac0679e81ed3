//! `POST /api/webhooks/aloware`: Basic (or Bearer) auth, event filter, test pings.
use std::convert::Infallible;

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::json;

use super::{parse_json, raw_body, Ingest, Rejection};
use crate::adapters::events_repo::insert_webhook_event;
use crate::adapters::queue::EventKind;
use crate::auth::{basic_auth_matches, bearer_matches};
use crate::domain::aloware::{classify, AlowareWebhook};
use crate::domain::event_filter::EventFilter;
use crate::domain::Source;
use crate::lambda::http::{header, json_response};
use crate::lambda::{ConfigError, Settings};

pub struct AlowareConfig {
    user: String,
    pass: String,
    bearer: Option<String>,
    filter: EventFilter,
}

impl AlowareConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(AlowareConfig {
            user: s.require("ALOWARE_WEBHOOK_BASIC_USER")?.to_string(),
            pass: s.require("ALOWARE_WEBHOOK_BASIC_PASS")?.to_string(),
            bearer: s.get("ALOWARE_WEBHOOK_BEARER_TOKEN").map(str::to_string),
            filter: EventFilter::parse(s.get_or("ALOWARE_WEBHOOK_ALLOWED_EVENTS", "")),
        })
    }

    fn authorised(&self, authorization: Option<&str>) -> bool {
        let basic = basic_auth_matches(authorization, &self.user, &self.pass);
        let bearer = self
            .bearer
            .as_deref()
            .is_some_and(|t| bearer_matches(authorization, t));
        basic | bearer
    }
}

pub async fn handle(ingest: &Ingest, cfg: &AlowareConfig, req: Request) -> Response<Body> {
    accept(ingest, cfg, &req)
        .await
        .unwrap_or_else(Rejection::into_response)
}

async fn accept(
    ingest: &Ingest,
    cfg: &AlowareConfig,
    req: &Request,
) -> Result<Response<Body>, Rejection> {
    let body = raw_body(req)?;
    if !cfg.authorised(header(req, "authorization")) {
        return Err(Rejection::unauthorized("missing or wrong credentials"));
    }
    let (payload, text) = parse_json(body)?;
    let (classified, dedupe_key) = match classify(&payload, body, &ingest.default_country) {
        Ok(AlowareWebhook::TestPing) => {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"ok": true, "test": true}),
            ))
        }
        Ok(AlowareWebhook::Event {
            classified,
            dedupe_key,
        }) => (classified, dedupe_key),
        Err(err) => return Err(Rejection::invalid_payload(err)),
    };
    if !cfg.filter.allows(&classified.event_type) {
        tracing::info!(event_type = %classified.event_type, "aloware event not in ALOWARE_WEBHOOK_ALLOWED_EVENTS");
        return Ok(json_response(
            StatusCode::OK,
            &json!({"ignored": true, "reason": "event not allowed"}),
        ));
    }
    let stored = insert_webhook_event(
        &ingest.pool,
        Source::Aloware,
        &classified,
        text,
        &dedupe_key,
    )
    .await;
    Ok(ingest
        .acknowledge(
            stored,
            Source::Aloware,
            EventKind::Webhook,
            &classified,
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await)
}

/// `service_fn` adapter.
pub async fn serve(
    ingest: &Ingest,
    cfg: &AlowareConfig,
    req: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(handle(ingest, cfg, req).await)
}
