//! `POST /api/webhooks/aloware`: Basic (or Bearer) auth, event filter, test pings.
//! Aloware never retries, so an authenticated body that does not classify is stored
//! anyway, as entity `unknown` and quarantined for an operator (SPEC §4.9).
use std::convert::Infallible;

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::json;

use super::{parse_json, raw_body, Ingest, Rejection};
use crate::adapters::event_store::NewEvent;
use crate::auth::{basic_auth_matches, bearer_matches};
use crate::domain::aloware_webhook::{classify, unclassifiable, AlowareWebhook};
use crate::domain::event_filter::EventFilter;
use crate::domain::Source;
use crate::lambda::http::{header, json_response, Arrival};
use crate::lambda::{ConfigError, Settings};

/// How Aloware webhooks prove themselves, and which events are kept.
pub struct AlowareWebhookAuth {
    user: String,
    pass: String,
    bearer: Option<String>,
    filter: EventFilter,
}

impl AlowareWebhookAuth {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(AlowareWebhookAuth {
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

/// Aloware does not retry: a store failure is answered 503 (it is lost either way, but
/// the answer is honest and logged).
pub const STORE_FAILURE_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

pub async fn handle(ingest: &Ingest, auth: &AlowareWebhookAuth, req: Request) -> Response<Body> {
    accept(ingest, auth, &req)
        .await
        .unwrap_or_else(Rejection::into_response)
}

async fn accept(
    ingest: &Ingest,
    auth: &AlowareWebhookAuth,
    req: &Request,
) -> Result<Response<Body>, Rejection> {
    let arrival = Arrival::of(req);
    let body = raw_body(req)?;
    if !auth.authorised(header(req, "authorization")) {
        return Err(Rejection::unauthorized("missing or wrong credentials"));
    }
    // Aloware never retries: a body only Postgres cannot hold (invalid UTF-8, NUL) is
    // kept whole, quarantined for an operator, rather than refused and lost.
    if let Some(reason) = super::unstorable(body) {
        let stored = super::unstorable_payload(body, reason);
        let (classified, dedupe_key) =
            crate::domain::aloware_webhook::unclassifiable(&serde_json::Value::Null, body);
        let quarantine = format!("unstorable Aloware body: {reason}");
        let new = NewEvent {
            source: Source::Aloware,
            classified: &classified,
            payload_json: &stored,
            dedupe: &dedupe_key,
            texting: None,
            quarantine: Some(&quarantine),
            received_at: Some(arrival.wall),
        };
        return Ok(ingest
            .store_and_acknowledge(new, STORE_FAILURE_STATUS, arrival)
            .await);
    }
    let (payload, text) = parse_json(body)?;
    let (classified, dedupe_key, problem) = match classify(&payload, body, &ingest.default_country)
    {
        Ok(AlowareWebhook::TestPing) => {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"ok": true, "test": true}),
            ))
        }
        Ok(AlowareWebhook::Event {
            classified,
            dedupe_key,
        }) => (classified, dedupe_key, None),
        Err(err) => {
            let (classified, dedupe_key) = unclassifiable(&payload, body);
            (
                classified,
                dedupe_key,
                Some(format!("unclassifiable Aloware body: {err}")),
            )
        }
    };
    if problem.is_none() && !auth.filter.allows(&classified.event_type) {
        tracing::info!(event_type = %classified.event_type, "aloware event not in ALOWARE_WEBHOOK_ALLOWED_EVENTS");
        return Ok(json_response(
            StatusCode::OK,
            &json!({"ignored": true, "reason": "event not allowed"}),
        ));
    }
    let new = NewEvent {
        source: Source::Aloware,
        classified: &classified,
        payload_json: text,
        dedupe: &dedupe_key,
        texting: None,
        quarantine: problem.as_deref(),
        received_at: Some(arrival.wall),
    };
    let at = match problem {
        None => super::registry::from_aloware(&payload, &ingest.default_country, arrival.wall),
        Some(_) => Default::default(),
    };
    Ok(ingest
        .store_with_registry(new, at, STORE_FAILURE_STATUS, arrival)
        .await)
}

/// `service_fn` adapter.
pub async fn serve(
    ingest: &Ingest,
    auth: &AlowareWebhookAuth,
    req: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(handle(ingest, auth, req).await)
}
