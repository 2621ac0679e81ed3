//! The ingest contract (SPEC §4) shared by the webhook functions: size limit, JSON
//! parsing, store-then-enqueue (transactional outbox), and the JSON answers.
//!
//! Nothing is acknowledged before it is stored. A store that fails or does not finish
//! inside [`STORE_BUDGET`] answers 429 to GHL (its only retry trigger) and 503 to the
//! others, well before the function's timeout could make API Gateway answer 5xx. A
//! stored row whose queue send fails is still acknowledged: `sweep-pending` (and any
//! duplicate delivery) sends it later.
pub mod registry;
pub mod webhook_aloware;
pub mod webhook_broadcast;
pub mod webhook_ghl;
pub mod webhook_texting;

use std::time::Duration;

use deadpool_postgres::Pool;
use lambda_http::{
    http::{Method, StatusCode},
    Body, Request, Response,
};
use serde_json::{json, Value};

use crate::adapters::db::{self, DbError};
use crate::adapters::event_store::{self, NewEvent, Stored, ToEnqueue};
use crate::adapters::queue::EventQueue;
use crate::domain::{Classified, EventKind};
use crate::lambda::http::{body_bytes, error_response, json_response, Arrival, MAX_BODY_BYTES};
use tokio::time::Instant;

/// Time allowed for storing a webhook, when the request has it to spare.
pub const STORE_BUDGET: Duration = Duration::from_secs(6);
/// Everything a webhook's answer must fit in, counted from its arrival (a cold start's
/// secret read included): the ingest functions' timeout is 15 s (template.yaml), and an
/// answer we do not give in time is a 5xx from API Gateway, which GHL never retries.
pub const INGEST_DEADLINE: Duration = Duration::from_secs(12);
/// The queue send after a store (inside the SDK's own 5 s operation deadline).
pub const SEND_BUDGET: Duration = Duration::from_secs(4);
/// Marking a row unqueued after a failed send.
pub const MARK_BUDGET: Duration = Duration::from_secs(1);
/// Below this, a store is not even tried: the retry status goes out at once.
const MIN_STORE_TIME: Duration = Duration::from_millis(300);

/// What an ingest function builds once per cold start.
#[derive(Clone)]
pub struct Ingest {
    pub pool: Pool,
    pub queue: EventQueue,
    pub kind: EventKind,
    pub default_country: String,
    pub store_budget: Duration,
}

impl Ingest {
    /// Everything an ingest function needs, built once per cold start: the pool and
    /// the queue of its inbox.
    pub async fn from_settings(
        s: &crate::lambda::Settings,
        kind: EventKind,
    ) -> Result<Self, crate::lambda::ConfigError> {
        Ok(Ingest {
            pool: s.pool()?,
            queue: s.queue(crate::lambda::config::queue_setting(kind)).await?,
            kind,
            default_country: s.default_country(),
            store_budget: STORE_BUDGET,
        })
    }
}

/// A request refused before anything was stored: status, error code and message.
#[derive(Debug)]
pub struct Rejection {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, code: &'static str, message: impl std::fmt::Display) -> Self {
        Rejection {
            status,
            code,
            message: message.to_string(),
        }
    }

    pub(crate) fn unauthorized(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn invalid_payload(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_payload", message)
    }

    pub fn into_response(self) -> Response<Body> {
        error_response(self.status, self.code, self.message)
    }
}

/// Method and size checks; yields the raw body (signatures are over these bytes).
pub(crate) fn raw_body(req: &Request) -> Result<&[u8], Rejection> {
    if req.method() != Method::POST {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        ));
    }
    let body = body_bytes(req);
    if body.len() > MAX_BODY_BYTES {
        return Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "body exceeds 1 MiB",
        ));
    }
    Ok(body)
}

/// Parse the body as JSON. Postgres `jsonb` cannot hold U+0000, so a body whose strings
/// or keys contain one is refused here with 400 rather than failing at insert time.
use crate::domain::json::contains_nul;

pub(crate) fn parse_json(body: &[u8]) -> Result<(Value, &str), Rejection> {
    let bad = |msg: String| Rejection::new(StatusCode::BAD_REQUEST, "invalid_json", msg);
    let text = std::str::from_utf8(body).map_err(|_| bad("body is not UTF-8".into()))?;
    let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if contains_nul(&value) {
        return Err(bad("NUL characters (\\u0000) are not accepted".into()));
    }
    Ok((value, text))
}

/// Why an authenticated body cannot be stored as the JSON it is (Postgres `jsonb`
/// holds neither invalid UTF-8 nor U+0000), when that is the only thing wrong with it.
pub(crate) fn unstorable(body: &[u8]) -> Option<&'static str> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Some("the body is not UTF-8");
    };
    let value: Value = serde_json::from_str(text).ok()?;
    contains_nul(&value).then_some("the body holds NUL characters (\\u0000)")
}

/// What is stored of a body that cannot be stored as JSON: every byte, base64.
pub(crate) fn unstorable_payload(body: &[u8], reason: &str) -> String {
    use base64::Engine;
    json!({"unstorable": reason,
        "bodyBase64": base64::engine::general_purpose::STANDARD.encode(body)})
    .to_string()
}

/// The answer when the store is unavailable (or the function could not configure
/// itself): the status this provider retries on, with a JSON body.
pub fn unavailable(store_failure_status: StatusCode) -> Response<Body> {
    error_response(
        store_failure_status,
        "store_unavailable",
        "could not store the webhook; retry later",
    )
}

impl Ingest {
    /// When the answer to a request that arrived at `arrival` must be out.
    pub(crate) fn deadline(arrival: Arrival) -> Instant {
        arrival.at + INGEST_DEADLINE
    }

    /// Store a delivery, enqueue what needs a message, and answer the provider.
    pub(crate) async fn store_and_acknowledge(
        &self,
        new: NewEvent<'_>,
        store_failure_status: StatusCode,
        arrival: Arrival,
    ) -> Response<Body> {
        let deadline = Self::deadline(arrival);
        let stored = match self.store_connection(deadline).await {
            Ok(held) => {
                let insert = event_store::insert_on(held.client(), self.kind, &new);
                let outcome = tokio::time::timeout(held.left(), insert).await;
                held.settle(outcome)
            }
            Err(e) => Err(e),
        };
        self.acknowledge(
            new.source.as_str(),
            new.classified,
            stored,
            store_failure_status,
            deadline,
        )
        .await
    }

    /// A connection for the store, held for the store budget clamped so that the queue
    /// send and the unqueued mark still fit before `deadline`. A store that does not
    /// finish in it counts as a failure, and its connection is discarded (`db::Held`).
    pub(crate) async fn store_connection(&self, deadline: Instant) -> Result<db::Held, DbError> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(SEND_BUDGET + MARK_BUDGET);
        let budget = self.store_budget.min(left);
        if budget < MIN_STORE_TIME {
            // The cold start took the time: answer the retry status while we still can.
            return Err(DbError::Timeout);
        }
        db::hold(&self.pool, budget).await
    }

    /// Enqueue what the store asks for and answer the provider.
    pub(crate) async fn acknowledge(
        &self,
        source: &str,
        c: &Classified,
        stored: Result<Stored, DbError>,
        store_failure_status: StatusCode,
        deadline: Instant,
    ) -> Response<Body> {
        let stored = match stored {
            Ok(stored) => stored,
            Err(err) => {
                tracing::error!(source, event_type = %c.event_type, error = %err, "webhook not stored");
                return unavailable(store_failure_status);
            }
        };
        match stored {
            Stored::Inserted { id, enqueue: None } => {
                tracing::warn!(source, event_id = %id, event_type = %c.event_type, "webhook stored quarantined");
                json_response(StatusCode::OK, &json!({"id": id, "status": "quarantined"}))
            }
            Stored::Inserted {
                id,
                enqueue: Some(message),
            } => {
                let queued = self.enqueue_before(&message, deadline).await;
                tracing::info!(
                    source,
                    event_id = %id,
                    event_type = %c.event_type,
                    entity_type = c.entity_type.as_str(),
                    queued,
                    "webhook stored"
                );
                json_response(
                    StatusCode::OK,
                    &json!({"id": id, "status": "pending", "queued": queued}),
                )
            }
            Stored::Coalesced { id, into } => {
                tracing::info!(source, event_id = %id, event_type = %c.event_type, "webhook stored, coalesced");
                json_response(
                    StatusCode::OK,
                    &json!({"id": id, "status": "coalesced", "coalescedInto": into}),
                )
            }
            Stored::Duplicate { id, requeue } => {
                let requeued = match &requeue {
                    Some(message) => self.enqueue_before(message, deadline).await,
                    None => false,
                };
                tracing::info!(source, event_id = %id, event_type = %c.event_type, requeued, "duplicate webhook");
                json_response(StatusCode::OK, &json!({"duplicate": true, "id": id}))
            }
        }
    }

    /// Send the row's message outside any request's budget (jobs, routers).
    pub async fn enqueue(&self, m: &ToEnqueue) -> bool {
        self.enqueue_before(m, Instant::now() + SEND_BUDGET + MARK_BUDGET)
            .await
    }

    /// Send the row's message before `deadline`; a failed (or unfinished) send leaves
    /// the row marked unqueued for the relay (best effort: if even that fails, the relay
    /// finds the send time stale).
    pub(crate) async fn enqueue_before(&self, m: &ToEnqueue, deadline: Instant) -> bool {
        let left = |reserve: Duration| {
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(reserve)
        };
        let send = self.queue.send(m.id, self.kind, &m.person_key, m.seq);
        let sent = match tokio::time::timeout(SEND_BUDGET.min(left(MARK_BUDGET)), send).await {
            Ok(Ok(())) => return true,
            Ok(Err(err)) => err.to_string(),
            Err(_) => "no answer within the send budget".to_string(),
        };
        tracing::warn!(event_id = %m.id, error = %sent, "enqueue failed; the relay will send it");
        let mark = event_store::mark_unqueued(&self.pool, self.kind, m.id);
        if let Ok(Err(e)) | Err(e) =
            tokio::time::timeout(MARK_BUDGET.min(left(Duration::ZERO)), mark)
                .await
                .map_err(|_| DbError::Timeout)
        {
            tracing::warn!(event_id = %m.id, error = %e, "could not mark the row unqueued");
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_refused_but_escaped_backslashes_are_not() {
        assert!(parse_json(br#"{"a":"x\u0000"}"#).is_err());
        assert!(parse_json(br#"{"a\u0000":1}"#).is_err());
        // A literal backslash followed by the text u0000 is ordinary text.
        let (v, _) = parse_json(br#"{"a":"C:\\u0000"}"#).unwrap();
        assert_eq!(v["a"], "C:\\u0000");
        assert!(parse_json(b"\xff").is_err());
    }
}
