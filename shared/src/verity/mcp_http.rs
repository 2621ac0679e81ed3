//! `mcp-http` (`POST /mcp`): rmcp's streamable HTTP service in stateless JSON mode
//! inside lambda_http, behind two checks made before the protocol layer: the `Host`
//! must be in `MCP_ALLOWED_HOSTS` (403), and the caller must present a Bearer key from
//! `MCP_API_KEYS` or a valid Clerk session token (401 with `WWW-Authenticate` naming the
//! RFC 9728 metadata, served unauthenticated at `/.well-known/oauth-protected-resource`).
use std::sync::Arc;

use http_body_util::BodyExt;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::mcp::VerityMcp;
use super::principal::{of_bearer, ClerkSessions};
use crate::domain::verity::access::ScopedKey;
use crate::lambda::http::{error_response, header, MAX_BODY_BYTES};

pub struct McpHttp {
    service: StreamableHttpService<VerityMcp, NeverSessionManager>,
    keys: Vec<ScopedKey>,
    clerk: Option<ClerkSessions>,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

impl McpHttp {
    pub fn new(
        handler: VerityMcp,
        keys: Vec<ScopedKey>,
        clerk: Option<ClerkSessions>,
        allowed_hosts: Vec<String>,
        allowed_origins: Vec<String>,
    ) -> Self {
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_allowed_hosts(allowed_hosts.clone())
            .with_max_request_body_bytes(MAX_BODY_BYTES);
        McpHttp {
            service: StreamableHttpService::new(
                move || Ok(handler.clone()),
                Arc::new(NeverSessionManager::default()),
                config,
            ),
            keys,
            clerk,
            allowed_hosts,
            allowed_origins: allowed_origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect(),
        }
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host.map(str::to_ascii_lowercase) else {
            return false;
        };
        let bare = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(&host);
        self.allowed_hosts
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .any(|a| a == host || (!a.contains(':') && a == bare))
    }

    /// An `Origin` (sent by browsers) must be one of `MCP_ALLOWED_ORIGINS`.
    fn origin_allowed(&self, origin: Option<&str>) -> bool {
        origin.is_none_or(|o| {
            self.allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/')))
        })
    }
}

const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The public origin of this server as the caller reached it (the `Host` was checked
/// against `MCP_ALLOWED_HOSTS` first); API Gateway says the scheme in X-Forwarded-Proto.
fn origin(req: &Request) -> String {
    let host = header(req, "host").unwrap_or("localhost");
    let bare = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    let scheme = header(req, "x-forwarded-proto").unwrap_or(
        if matches!(bare, "localhost" | "127.0.0.1" | "[::1]") {
            "http"
        } else {
            "https"
        },
    );
    format!("{scheme}://{host}")
}

/// RFC 9728 protected-resource metadata: what this resource is and how to present a
/// token. Clerk is named as the authorization server only when its sessions are allowed.
fn resource_metadata(ctx: &McpHttp, req: &Request) -> Response<Body> {
    let mut doc = serde_json::json!({
        "resource": format!("{}/mcp", origin(req)),
        "resource_name": "df-middleware Verity MCP",
        "bearer_methods_supported": ["header"],
    });
    if let Some(clerk) = &ctx.clerk {
        doc["authorization_servers"] = serde_json::json!([clerk.verifier.issuer()]);
    }
    let mut r = Response::new(Body::Text(doc.to_string()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("max-age=300"));
    r
}

fn unauthorized(ctx: &McpHttp, req: &Request) -> Response<Body> {
    let message = match ctx.clerk {
        Some(_) => "an MCP API key or a Clerk session token is required (Authorization: Bearer …)",
        None => "an MCP API key is required (Authorization: Bearer …)",
    };
    let mut r = error_response(StatusCode::UNAUTHORIZED, "unauthorized", message);
    // RFC 6750: an error code only when a token was presented and refused.
    let error = match header(req, "authorization") {
        Some(_) => ", error=\"invalid_token\"",
        None => "",
    };
    let challenge = format!(
        "Bearer realm=\"df-middleware-mcp\", resource_metadata=\"{}{METADATA_PATH}/mcp\"{error}",
        origin(req)
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert("www-authenticate", value);
    }
    r
}

fn is_json(headers: &lambda_http::http::HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
}

/// rmcp's refusals are plain text; ours are JSON like every other route. A body that is
/// not a JSON-RPC message (rmcp says 415) is a 400 with JSON-RPC's own error, which a
/// client can read: -32700 when it is not JSON, -32600 when it is not a message.
fn as_json_error(status: StatusCode, text: &str) -> Response<Body> {
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE && text.starts_with("fail to deserialize") {
        let (code, message) = if text.contains("unrecognized JSON-RPC message") {
            (-32600, "Invalid Request: not a JSON-RPC 2.0 message")
        } else {
            (-32700, "Parse error: the body is not JSON")
        };
        let body = serde_json::json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": code, "message": message}});
        let mut r = Response::new(Body::Text(body.to_string()));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return r;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        s if s.is_client_error() => "invalid_request",
        _ => "mcp_error",
    };
    let message: String = text.chars().take(300).collect();
    error_response(status, code, message.trim())
}

pub async fn handle(ctx: &McpHttp, mut req: Request) -> Response<Body> {
    if !ctx.host_allowed(header(&req, "host")) {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Host header is not allowed (MCP_ALLOWED_HOSTS)",
        );
    }
    if !ctx.origin_allowed(header(&req, "origin")) {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Origin is not allowed (MCP_ALLOWED_ORIGINS)",
        );
    }
    if req.uri().path().starts_with(METADATA_PATH) {
        return match req.method().as_str() {
            "GET" => resource_metadata(ctx, &req),
            _ => error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "GET only",
            ),
        };
    }
    let principal = of_bearer(&ctx.keys, ctx.clerk.as_ref(), header(&req, "authorization")).await;
    let Some(principal) = principal else {
        return unauthorized(ctx, &req);
    };
    req.extensions_mut().insert(principal);
    let response = ctx.service.handle(req).await;
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    if !parts.status.is_success() && !is_json(&parts.headers) {
        return as_json_error(parts.status, &String::from_utf8_lossy(&bytes));
    }
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Response::from_parts(parts, body)
}
