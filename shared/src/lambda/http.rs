//! HTTP helpers for lambda_http handlers: JSON bodies for every answer, errors included.
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};

/// SPEC §4: bodies over 1 MiB are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("static response parts are valid")
}

/// `{"error": code, "message": ...}` with the given status.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: impl std::fmt::Display,
) -> Response<Body> {
    json_response(
        status,
        &json!({"error": code, "message": message.to_string()}),
    )
}

/// When a request reached the function (set before a cold start builds its context):
/// the ingest's time budget and the stored `received_at` count from here.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub at: tokio::time::Instant,
    pub wall: chrono::DateTime<chrono::Utc>,
}

impl Arrival {
    pub fn now() -> Self {
        Arrival {
            at: tokio::time::Instant::now(),
            wall: chrono::Utc::now(),
        }
    }

    /// The request's arrival, or now when nothing recorded it (tests, tools).
    pub fn of(req: &Request) -> Self {
        req.extensions()
            .get::<Arrival>()
            .copied()
            .unwrap_or_else(Arrival::now)
    }
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}
