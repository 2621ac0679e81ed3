//! `verity-gateway` (`GET`/`POST /api/verity`, SPEC §13): catalogued Verity requests
//! proxied with the service credential. The original's request and
//! `{success, data, error, meta}` shapes and error codes, but only catalogued (endpoint,
//! method) pairs pass, every path parameter is one encoded segment, and only
//! allow-listed headers are forwarded.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::guard::SmsGuard;
use super::principal::{audit, bearer, of_key};
use crate::domain::verity::access::{may_call, Principal, ScopedKey};
use crate::domain::verity::catalog::{Catalog, Method, Operation};
use crate::domain::verity::tools::{fill_path, query_pairs, Request as VerityRequest};
use crate::lambda::http::{body_bytes, header, json_response, MAX_BODY_BYTES};
use crate::providers::verity_api::{UpstreamError, VerityClient};

/// Well inside API Gateway's 30 s integration limit.
pub const GATEWAY_BUDGET: Duration = Duration::from_secs(25);

pub struct Gateway {
    /// `Err` when the catalog could not be loaded at cold start (answered 503).
    pub catalog: Result<Arc<Catalog>, String>,
    pub client: VerityClient,
    /// `DF_MIDDLEWARE_API_KEY` (and `MCP_API_KEYS`), each with its scope.
    pub keys: Vec<ScopedKey>,
    pub budget: Duration,
    /// SMS operations are refused to opted-out numbers.
    pub guard: SmsGuard,
    /// Where every call, refused ones included, is audited.
    pub audit: Option<deadpool_postgres::Pool>,
}

struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

fn meta(endpoint: &str, method: &str, status: u16, started: Instant) -> Value {
    json!({
        "endpoint": endpoint,
        "method": method,
        "status": status,
        "duration": started.elapsed().as_millis() as u64,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

fn error_body(r: &Refusal, endpoint: &str, method: &str, started: Instant) -> Response<Body> {
    json_response(
        r.status,
        &json!({
            "success": false,
            "error": {"message": r.message, "code": r.code},
            "meta": meta(endpoint, method, r.status.as_u16(), started),
        }),
    )
}

pub async fn handle(gw: &Gateway, req: Request) -> Response<Body> {
    let started = Instant::now();
    let principal = bearer(header(&req, "authorization")).and_then(|t| of_key(&gw.keys, t));
    let Some(principal) = principal else {
        let r = refuse(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or wrong API key",
        );
        return error_body(&r, "", "", started);
    };
    let catalog = match &gw.catalog {
        Ok(c) => c.clone(),
        Err(e) => {
            let r = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "CATALOG_UNAVAILABLE",
                e.clone(),
            );
            return error_body(&r, "", "", started);
        }
    };
    match req.method().as_str() {
        "GET" => json_response(
            StatusCode::OK,
            &json!({"success": true, "data": {
                "catalog": catalog.raw,
                "gateway": {"endpoint": "/api/verity", "method": "POST",
                    "description": "POST {endpoint, method, params?, query?, body?, headers?}: one catalogued Verity request"},
            }}),
        ),
        "POST" => proxy(gw, &catalog, &req, &principal, started).await,
        _ => {
            let r = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "INVALID_METHOD",
                "use GET or POST",
            );
            error_body(&r, "", "", started)
        }
    }
}

/// What a caller asked for, validated against the catalog.
struct Proxied {
    op: Operation,
    endpoint: String,
    method: Method,
    request: VerityRequest,
    headers: Vec<(String, String)>,
}

fn string_map(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, Refusal> {
    let bad = || {
        refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            format!("{what} must be an object of strings or numbers"),
        )
    };
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn parse(catalog: &Catalog, raw: &[u8]) -> Result<Proxied, (Refusal, String, String)> {
    let no = |r: Refusal| (r, String::new(), String::new());
    if raw.len() > MAX_BODY_BYTES {
        return Err(no(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_REQUEST",
            "body exceeds 1 MiB",
        )));
    }
    let body: Value = serde_json::from_slice(raw).map_err(|_| {
        no(refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "the body is not JSON",
        ))
    })?;
    let (Some(endpoint), Some(method)) = (
        body.get("endpoint").and_then(Value::as_str),
        body.get("method").and_then(Value::as_str),
    ) else {
        return Err(no(refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "endpoint and method are required strings",
        )));
    };
    let with = |r: Refusal| (r, endpoint.to_string(), method.to_string());
    if !endpoint.starts_with("/api")
        || endpoint.split('/').any(|s| s == ".." || s == ".")
        || endpoint.contains(['?', '#'])
    {
        return Err(with(refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_ENDPOINT",
            "endpoint must be a catalogued path under /api",
        )));
    }
    let m = Method::parse(method).ok_or_else(|| {
        with(refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_METHOD",
            "method must be GET, POST, PUT, PATCH or DELETE",
        ))
    })?;
    let op = catalog.find(endpoint, m).ok_or_else(|| {
        let why = if catalog.knows_path(endpoint) {
            "the catalog has this endpoint, but not with this method"
        } else {
            "the catalog has no such endpoint"
        };
        with(refuse(StatusCode::NOT_FOUND, "UNKNOWN_ENDPOINT", why))
    })?;
    let params = string_map(body.get("params"), "params").map_err(with)?;
    // The caller's placeholder names may differ from the catalog's (`[id]` vs `{agentId}`):
    // map by position through the caller's own spelling.
    let params = rename_params(endpoint, &op.path, params);
    let path = fill_path(op, &params)
        .map_err(|e| with(refuse(StatusCode::BAD_REQUEST, "INVALID_REQUEST", e)))?;
    let query = match body.get("query") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(o)) => query_pairs(o)
            .map_err(|e| with(refuse(StatusCode::BAD_REQUEST, "INVALID_REQUEST", e)))?,
        Some(_) => {
            return Err(with(refuse(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "query must be an object",
            )))
        }
    };
    let payload = body.get("body").filter(|b| !b.is_null()).cloned();
    if payload.is_some() && !m.has_body() {
        return Err(with(refuse(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            format!("{} requests carry no body", m.as_str()),
        )));
    }
    let headers = string_map(body.get("headers"), "headers").map_err(with)?;
    Ok(Proxied {
        op: op.clone(),
        endpoint: endpoint.to_string(),
        method: m,
        request: VerityRequest {
            method: m,
            path,
            query,
            body: if m.has_body() {
                Some(payload.unwrap_or_else(|| json!({})))
            } else {
                None
            },
        },
        headers: headers.into_iter().collect(),
    })
}

/// Params named after the caller's placeholders, renamed to the catalog's.
fn rename_params(
    given: &str,
    template: &str,
    mut params: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let given = crate::domain::verity::catalog::normalise_path(given);
    for (g, t) in given.split('/').zip(template.split('/')) {
        if let (Some(gn), Some(tn)) = (
            crate::domain::verity::catalog::placeholder(g),
            crate::domain::verity::catalog::placeholder(t),
        ) {
            if gn != tn && !params.contains_key(tn) {
                if let Some(v) = params.remove(gn) {
                    params.insert(tn.to_string(), v);
                }
            }
        }
    }
    params
}

/// Refuse `p` for `who` before anything reaches Verity, and audit the refusal.
async fn refused(
    gw: &Gateway,
    who: &Principal,
    p: &Proxied,
    r: Refusal,
    started: Instant,
) -> Response<Body> {
    audit(
        gw.audit.as_ref(),
        who,
        "gateway",
        p.method.as_str(),
        &p.op.path,
        r.status.as_u16() as i32,
        started.elapsed(),
        Some(format!("{}: {}", r.code, r.message)),
    )
    .await;
    error_body(&r, &p.endpoint, p.method.as_str(), started)
}

async fn proxy(
    gw: &Gateway,
    catalog: &Catalog,
    req: &Request,
    who: &Principal,
    started: Instant,
) -> Response<Body> {
    let p = match parse(catalog, body_bytes(req)) {
        Ok(p) => p,
        Err((r, endpoint, method)) => return error_body(&r, &endpoint, &method, started),
    };
    if let Err(denied) = may_call(who, &p.op) {
        let r = refuse(StatusCode::FORBIDDEN, "FORBIDDEN", denied.to_string());
        return refused(gw, who, &p, r, started).await;
    }
    let pass = match gw
        .guard
        .check(&p.op, p.request.body.as_ref(), "verity_gateway")
        .await
    {
        Ok(pass) => pass,
        Err(blocked) => {
            let status = StatusCode::from_u16(blocked.status()).unwrap_or(StatusCode::FORBIDDEN);
            let r = refuse(status, blocked.code(), blocked.to_string());
            return refused(gw, who, &p, r, started).await;
        }
    };
    let deadline = started + gw.budget;
    let answer = gw.client.send(&p.request, &p.headers, deadline).await;
    let status = answer.as_ref().map(|u| u.status).unwrap_or(0);
    if let Some(pass) = pass {
        pass.settle(status).await;
    }
    audit(
        gw.audit.as_ref(),
        who,
        "gateway",
        p.method.as_str(),
        &p.op.path,
        status as i32,
        started.elapsed(),
        answer.as_ref().err().map(|e| e.to_string()),
    )
    .await;
    match answer {
        Ok(up) => {
            let status = StatusCode::from_u16(up.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let ok = up.ok();
            let mut body = Map::new();
            body.insert("success".into(), json!(ok));
            if ok {
                body.insert("data".into(), up.body);
            } else {
                let message = up.error_message().to_string();
                body.insert(
                    "error".into(),
                    json!({"message": message, "code": format!("HTTP_{}", up.status), "details": up.body}),
                );
            }
            body.insert(
                "meta".into(),
                meta(&p.endpoint, p.method.as_str(), up.status, started),
            );
            json_response(status, &Value::Object(body))
        }
        Err(e) => {
            let status = match e {
                UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            let r = refuse(status, "PROXY_ERROR", e.to_string());
            error_body(&r, &p.endpoint, p.method.as_str(), started)
        }
    }
}
