//! `mcp-http` (`POST /mcp`): rmcp's streamable HTTP service in stateless JSON mode
//! inside lambda_http, behind two checks made before the protocol layer: the `Host`
//! must be in `MCP_ALLOWED_HOSTS` (403), and the caller must present a Bearer key from
//! `MCP_API_KEYS` or a valid Clerk session token (401 with `WWW-Authenticate`).
use std::sync::Arc;

use http_body_util::BodyExt;
use lambda_http::{http::StatusCode, Body, Request, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest, Sha256};

use super::mcp::{Principal, VerityMcp};
use crate::auth::clerk::ClerkVerifier;
use crate::auth::secret_eq;
use crate::lambda::http::{error_response, header, MAX_BODY_BYTES};

pub struct McpHttp {
    service: StreamableHttpService<VerityMcp, NeverSessionManager>,
    keys: Vec<String>,
    clerk: Option<ClerkVerifier>,
    allowed_hosts: Vec<String>,
}

impl McpHttp {
    pub fn new(
        handler: VerityMcp,
        keys: Vec<String>,
        clerk: Option<ClerkVerifier>,
        allowed_hosts: Vec<String>,
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
            keys: keys.into_iter().filter(|k| !k.trim().is_empty()).collect(),
            clerk,
            allowed_hosts,
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

    /// The caller, from its Bearer token; `None` when it proves nothing.
    async fn principal(&self, authorization: Option<&str>) -> Option<Principal> {
        let token = authorization?
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())?;
        // Every key is compared (constant time each): no early exit on a match.
        let mut matched = None;
        for key in &self.keys {
            if secret_eq(token.as_bytes(), key.as_bytes()) && matched.is_none() {
                matched = Some(key);
            }
        }
        if let Some(key) = matched {
            // Name the key without revealing it: the first 8 hex of its SHA-256.
            let id = &hex::encode(Sha256::digest(key.as_bytes()))[..8];
            return Some(Principal(format!("key:{id}")));
        }
        if token.matches('.').count() == 2 {
            if let Some(clerk) = &self.clerk {
                match clerk.verify(token).await {
                    Ok(claims) => return Some(Principal(format!("clerk:{}", claims.sub))),
                    Err(e) => tracing::info!(error = %e, "mcp: Clerk token refused"),
                }
            }
        }
        None
    }
}

fn unauthorized() -> Response<Body> {
    let mut r = error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "an MCP API key or a Clerk session token is required (Authorization: Bearer …)",
    );
    r.headers_mut().insert(
        "www-authenticate",
        lambda_http::http::HeaderValue::from_static("Bearer realm=\"df-middleware-mcp\""),
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
    let Some(principal) = ctx.principal(header(&req, "authorization")).await else {
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
