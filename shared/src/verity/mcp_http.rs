//! `mcp-http` (`POST /mcp`): rmcp's streamable HTTP service in stateless JSON mode
//! inside lambda_http, behind two checks made before the protocol layer: the `Host`
//! must be in `MCP_ALLOWED_HOSTS` (403), and the caller must present a Bearer key from
//! `MCP_API_KEYS` or a valid Clerk session token (401 with `WWW-Authenticate`).
use std::sync::Arc;

use http_body_util::BodyExt;
use lambda_http::{http::StatusCode, Body, Request, Response};
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

fn unauthorized() -> Response<Body> {
    let mut r = error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "an MCP API key is required (Authorization: Bearer …)",
    );
    r.headers_mut().insert(
        "www-authenticate",
        lambda_http::http::HeaderValue::from_static(
            "Bearer realm=\"df-middleware-mcp\", error=\"invalid_token\"",
        ),
    );
    r
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
    let principal = of_bearer(&ctx.keys, ctx.clerk.as_ref(), header(&req, "authorization")).await;
    let Some(principal) = principal else {
        return unauthorized();
    };
    req.extensions_mut().insert(principal);
    let response = ctx.service.handle(req).await;
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Response::from_parts(parts, body)
}
