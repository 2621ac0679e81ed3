//! The ingest contract (SPEC §4) shared by the three webhook functions: size limit,
//! JSON parsing, store-then-enqueue (transactional outbox), and the JSON answers.
pub mod aloware;
pub mod ghl;
pub mod texting;

use deadpool_postgres::Pool;
use lambda_http::{
    http::{Method, StatusCode},
    Body, Request, Response,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::adapters::events_repo::{StoreError, Stored};
use crate::adapters::queue::{EventKind, EventQueue};
use crate::domain::{Classified, Source};
use crate::lambda::http::{body_bytes, error_response, json_response, MAX_BODY_BYTES};

/// What an ingest function builds once per cold start.
#[derive(Clone)]
pub struct Ingest {
    pub pool: Pool,
    pub queue: EventQueue,
    pub default_country: String,
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

/// Parse the body as JSON. Postgres `jsonb` cannot hold U+0000, so such bodies are
/// refused here with 400 rather than failing at insert time.
pub(crate) fn parse_json(body: &[u8]) -> Result<(Value, &str), Rejection> {
    let bad = |msg: String| Rejection::new(StatusCode::BAD_REQUEST, "invalid_json", msg);
    let text = std::str::from_utf8(body).map_err(|_| bad("body is not UTF-8".into()))?;
    let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if text.contains("\\u0000") {
        return Err(bad("NUL characters (\\u0000) are not accepted".into()));
    }
    Ok((value, text))
}

/// SQS message group: events about one person apply in order. The person key may be a
/// phone number, so the group id is its hash (SQS ids are visible to operators).
pub fn message_group_id(source: Source, c: &Classified) -> String {
    let key = match &c.person_key {
        Some(person) => person.clone(),
        None => format!(
            "{}:{}:{}",
            source.as_str(),
            c.entity_type.as_str(),
            c.entity_id.as_deref().unwrap_or("-")
        ),
    };
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

impl Ingest {
    /// After the row is stored: enqueue a new row (a failed send leaves it pending for
    /// the sweeper) and answer. Duplicates are answered with the stored row's id.
    pub(crate) async fn acknowledge(
        &self,
        stored: Result<Stored, StoreError>,
        source: Source,
        kind: EventKind,
        c: &Classified,
        store_failure_status: StatusCode,
    ) -> Response<Body> {
        let stored = match stored {
            Ok(stored) => stored,
            Err(err) => {
                tracing::error!(source = source.as_str(), event_type = %c.event_type, error = %err, "webhook not stored");
                return error_response(
                    store_failure_status,
                    "store_unavailable",
                    "could not store the webhook; retry later",
                );
            }
        };
        let id = stored.id();
        if let Stored::Duplicate(_) = stored {
            tracing::info!(source = source.as_str(), event_id = %id, event_type = %c.event_type, "duplicate webhook");
            return json_response(StatusCode::OK, &json!({"duplicate": true, "id": id}));
        }
        let queued = match self
            .queue
            .send(id, kind, &message_group_id(source, c), 0)
            .await
        {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(source = source.as_str(), event_id = %id, error = %err, "enqueue failed; row stays pending for the sweeper");
                false
            }
        };
        tracing::info!(
            source = source.as_str(),
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
}
