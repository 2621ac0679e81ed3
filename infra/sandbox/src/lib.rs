//! A stateful stand-in for GHL, Aloware and the texting system, served on loopback with
//! the request and response shapes of `../shared/reference/` (see `research/ghl.md` and
//! `research/aloware.md`): auth checks, GHL's `Version` header and its 100 requests per
//! 10 s rate limit with `X-RateLimit-*` headers, Aloware's HTML answer to unknown paths.
//!
//! Control endpoints (`/_sandbox/...`): `GET state`, `GET requests[?provider=]`,
//! `POST reset`, `POST seed`, an alert receiver at `/alerts`, `POST faults` / `DELETE faults` (fail the next N requests
//! or every request for some seconds with a status, and/or add latency).
mod aloware;
mod control;
mod ghl;
mod ghl_conversations;
mod ghl_objects;
pub mod openapi;
mod state;
mod texting;
pub mod verity;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use state::SandboxConfig;
use state::{RecordedRequest, State};

type Shared = Arc<Mutex<State>>;

/// What a provider handler answers.
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: ReplyBody,
}

pub(crate) enum ReplyBody {
    Json(Value),
    Html(&'static str),
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(body),
        }
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = match self.body {
            ReplyBody::Json(v) => (status, axum::Json(v)).into_response(),
            ReplyBody::Html(h) => {
                (status, [("content-type", "text/html; charset=UTF-8")], h).into_response()
            }
        };
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(n, v);
            }
        }
        response
    }
}

/// One incoming request, decoded.
pub(crate) struct Incoming<'a> {
    pub method: &'a Method,
    pub segments: Vec<&'a str>,
    pub query: HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: Value,
}

impl Incoming<'_> {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Serve until the listener closes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SandboxConfig,
) -> std::io::Result<()> {
    let shared: Shared = Arc::new(Mutex::new(State::new(config)));
    let app = axum::Router::new().fallback(dispatch).with_state(shared);
    axum::serve(listener, app).await
}

/// Spawn on an ephemeral loopback port; returns the base URL (tests).
pub async fn spawn(config: SandboxConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, config));
    format!("http://{addr}")
}

pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn dispatch(
    AxumState(shared): AxumState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let path = uri.path().trim_matches('/').to_string();
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Reply::json(404, serde_json::json!({"error": "unknown provider"})).into_response();
    }
    let provider = segments.remove(0).to_string();
    let incoming = Incoming {
        method: &method,
        segments,
        query: parse_query(uri.query()),
        headers: &headers,
        body: body_value,
    };

    if provider == "_sandbox" {
        let mut st = shared.lock().unwrap();
        return control::handle(&mut st, &incoming).into_response();
    }
    let fault = shared
        .lock()
        .unwrap()
        .take_fault(&provider, method.as_str(), &path);
    if let Some(latency) = fault.as_ref().and_then(|f| f.latency_ms) {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let mut st = shared.lock().unwrap();
    if let Some(f) = fault.filter(|f| f.apply) {
        // The provider performs the request; its answer is lost on the way back.
        let _ = match provider.as_str() {
            "ghl" => Some(ghl::handle(&mut st, &incoming)),
            "aloware" => Some(aloware::handle(&mut st, &incoming)),
            "texting" => Some(texting::handle(&mut st, &incoming)),
            _ => None,
        };
        let reply = injected(f.status.unwrap_or(502), &provider);
        st.record(RecordedRequest {
            provider: provider.clone(),
            method: method.to_string(),
            path: format!("/{path}"),
            query: incoming.query.clone(),
            body: incoming.body.clone(),
            status: reply.status,
            at: chrono::Utc::now(),
            headers: (provider == "verity").then(|| verity::recorded_headers(&incoming)),
        });
        return reply.into_response();
    }
    let reply = match (fault.and_then(|f| f.status), provider.as_str()) {
        (Some(status), p) => {
            let mut reply = injected(status, p);
            if p == "ghl" && status == 429 {
                let window = st.config.ghl_rate_window.as_millis().to_string();
                reply.headers.push(("x-ratelimit-remaining", "0".into()));
                reply
                    .headers
                    .push(("x-ratelimit-interval-milliseconds", window));
            }
            reply
        }
        (None, "ghl") => ghl::handle(&mut st, &incoming),
        (None, "aloware") => aloware::handle(&mut st, &incoming),
        (None, "texting") => texting::handle(&mut st, &incoming),
        (None, "alerts") => receive_alert(&mut st, &incoming),
        (None, "verity") => verity::handle(&mut st, &incoming),
        (None, "clerk") => verity::clerk(&mut st, &incoming),
        (None, _) => Reply::json(404, serde_json::json!({"error": "unknown provider"})),
    };
    st.record(RecordedRequest {
        provider: provider.clone(),
        method: method.to_string(),
        path: format!("/{path}"),
        query: incoming.query.clone(),
        body: incoming.body.clone(),
        status: reply.status,
        at: chrono::Utc::now(),
        headers: (provider == "verity").then(|| verity::recorded_headers(&incoming)),
    });
    reply.into_response()
}

/// The alert receiver (a chat or paging webhook): a JSON object by POST, else 400.
fn receive_alert(st: &mut State, req: &Incoming) -> Reply {
    if *req.method != Method::POST || !req.body.is_object() {
        return Reply::json(400, serde_json::json!({"error": "POST a JSON object"}));
    }
    st.alerts.push(req.body.clone());
    Reply::json(200, serde_json::json!({"ok": true}))
}

/// A provider-shaped error for an injected fault.
fn injected(status: u16, provider: &str) -> Reply {
    let body = match provider {
        "ghl" => serde_json::json!({"statusCode": status, "message": "Injected fault"}),
        "aloware" => serde_json::json!({"message": "Server Error"}),
        _ => serde_json::json!({"error": "injected fault"}),
    };
    Reply::json(status, body)
}
