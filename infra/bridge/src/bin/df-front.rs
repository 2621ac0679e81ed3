//! `df-front`: the local stand-in for API Gateway in front of `cargo lambda watch`.
//! It forwards every request unchanged but for one thing API Gateway does and the
//! emulator does not: a body that is not UTF-8 reaches the function. The emulator turns
//! a `text/*` or `application/json` body into a string and answers 500 itself when the
//! bytes are not UTF-8, so the handler's own answer (a 400, or an Aloware body stored
//! and quarantined) was never seen locally. Such a body is sent as
//! `application/octet-stream`, which the emulator hands over base64-encoded, as API
//! Gateway hands over binary bodies.
//!
//! `DF_FRONT_LISTEN` (default 127.0.0.1:9000), `DF_FRONT_UPSTREAM` (the emulator,
//! default http://127.0.0.1:10000).
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

/// API Gateway's own limit on a request body (HTTP APIs: 10 MB).
const MAX_BODY: usize = 10 * 1024 * 1024;

struct Front {
    upstream: String,
    http: reqwest::Client,
}

#[tokio::main]
async fn main() {
    let listen = std::env::var("DF_FRONT_LISTEN").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let upstream =
        std::env::var("DF_FRONT_UPSTREAM").unwrap_or_else(|_| "http://127.0.0.1:10000".into());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client builds");
    let front = std::sync::Arc::new(Front { upstream, http });
    let app = axum::Router::new().fallback(forward).with_state(front);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("df-front: cannot listen on {listen}: {e}"));
    axum::serve(listener, app).await.expect("df-front serves");
}

fn json_error(status: StatusCode, error: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": error, "message": message}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The types the emulator reads as text (cargo-lambda-watch's trigger router).
fn read_as_text(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|c| c.trim().to_ascii_lowercase())
        .is_some_and(|c| c.starts_with("text/") || c.starts_with("application/json"))
}

/// Hop-by-hop headers, and the length the client recomputes.
fn forwardable(name: &str) -> bool {
    !matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "content-length"
    )
}

async fn forward(State(front): State<std::sync::Arc<Front>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is over API Gateway's 10 MB limit",
        );
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if forwardable(name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if read_as_text(&headers) && std::str::from_utf8(&bytes).is_err() {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let answer = front
        .http
        .request(parts.method, format!("{}{path}", front.upstream))
        .headers(headers)
        .body(bytes)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(_) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "cargo lambda watch did not answer",
            )
        }
    };
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if forwardable(name.as_str()) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    *r.headers_mut() = out_headers;
    r
}
