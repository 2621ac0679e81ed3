//! Verity (the company's platform) and the Clerk endpoints the middleware uses, on
//! loopback. Verity serves exactly the operations of the example catalog
//! (`infra/verity/api-catalog.json`, or `VERITY_CATALOG_URI` when it is a file): a path
//! or method the catalog lacks is 404 / 405, as Next.js answers. Every call needs
//! `Authorization: Bearer` with the service key or a machine token Clerk minted here;
//! anything else is 401. Answers are plausible JSON built from the request: lists of
//! `limit` items (so a test can ask for a large answer), the record named by the path,
//! a created record echoing the body. Faults (`/_sandbox/faults`, provider `verity`)
//! give 401 / 429 / 500 on demand.
use std::path::PathBuf;

use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::state::State;
use crate::{Incoming, Reply};

/// The example catalog beside this crate.
pub fn default_catalog_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../verity/api-catalog.json"
    ))
}

/// `(method, segments)` of every catalogued operation, paths normalised as Verity serves them.
pub fn load_operations(path: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!(
            "df-sandbox: no Verity catalog at {}: Verity serves nothing",
            path.display()
        );
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut out = Vec::new();
    for e in v["endpoints"].as_array().into_iter().flatten() {
        let raw = e["path"].as_str().unwrap_or_default();
        let served = if let Some(rest) = raw.strip_prefix("/apicalls") {
            format!("/api/calls{rest}")
        } else if raw == "/apisms" || raw.starts_with("/apisms/") {
            "/api/integrations/df-middleware/send-message".into()
        } else if let Some(rest) = raw.strip_prefix("/apicomms") {
            format!("/api/comms{rest}")
        } else {
            raw.to_string()
        };
        let segments: Vec<String> = served
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if (s.starts_with('[') && s.ends_with(']'))
                    || (s.starts_with('{') && s.ends_with('}'))
                {
                    "*".to_string()
                } else {
                    s.to_string()
                }
            })
            .collect();
        for m in e["methods"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            out.push((m.to_ascii_uppercase(), segments.clone()));
        }
    }
    out
}

fn matches(template: &[String], segments: &[&str]) -> bool {
    template.len() == segments.len()
        && template
            .iter()
            .zip(segments)
            .all(|(t, s)| t == "*" || t == s)
}

fn unauthorized() -> Reply {
    Reply::json(401, json!({"error": "Unauthorized"}))
}

pub(crate) fn handle(st: &mut State, req: &Incoming) -> Reply {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let key_ok = token == st.config.verity_api_key;
    if !(key_ok || st.verity_machine_tokens.contains(&token)) {
        return unauthorized();
    }
    let method = req.method.as_str();
    let candidates: Vec<&(String, Vec<String>)> = st
        .verity_operations
        .iter()
        .filter(|(_, t)| matches(t, &req.segments))
        .collect();
    if candidates.is_empty() {
        return Reply::json(404, json!({"error": "Not Found"}));
    }
    let Some((_, template)) = candidates.iter().find(|(m, _)| m == method) else {
        return Reply::json(405, json!({"error": "Method Not Allowed"}));
    };
    // The record a path names: its last parameter value (decoded), else its last segment.
    let last_param = template
        .iter()
        .zip(&req.segments)
        .filter(|(t, _)| *t == "*")
        .map(|(_, s)| crate::percent_decode(s))
        .next_back()
        .unwrap_or_else(|| req.segments.last().copied().unwrap_or_default().to_string());
    let collection = template
        .last()
        .is_some_and(|t| t != "*" && t.ends_with('s') && t != "stats" && t != "status");
    // Verity validates JSON bodies: a write without an object body is refused.
    if [Method::POST, Method::PUT, Method::PATCH].contains(req.method) && !req.body.is_object() {
        return Reply::json(400, json!({"error": "Invalid JSON body"}));
    }
    match *req.method {
        Method::GET if collection || req.query.contains_key("limit") => list(st, req),
        Method::GET => Reply::json(
            200,
            json!({"id": last_param, "path": format!("/{}", req.segments.join("/")),
            "name": format!("Record {last_param}"), "updatedAt": "2026-11-20T12:00:00.000Z"}),
        ),
        Method::POST => {
            let id = format!("v{}", st.numeric_id());
            let mut record = req.body.as_object().cloned().unwrap_or_default();
            record.insert("id".into(), json!(id));
            Reply::json(201, json!({"success": true, "data": record}))
        }
        Method::PUT | Method::PATCH => {
            let mut record = req.body.as_object().cloned().unwrap_or_default();
            record.insert("id".into(), json!(last_param));
            Reply::json(200, json!({"success": true, "data": record}))
        }
        Method::DELETE => Reply::json(200, json!({"success": true, "deleted": last_param})),
        _ => Reply::json(405, json!({"error": "Method Not Allowed"})),
    }
}

fn list(st: &State, req: &Incoming) -> Reply {
    let limit: usize = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10)
        .min(100_000);
    let items: Vec<Value> = (0..limit)
        .map(|i| {
            json!({"id": format!("item-{i}"), "name": format!("Item {i}"), "status": "sent",
            "createdAt": "2026-11-20T12:00:00.000Z"})
        })
        .collect();
    let _ = st;
    Reply::json(200, json!({"data": items, "total": limit}))
}

/// Clerk's Backend API as far as the middleware uses it: machine tokens and the JWKS.
pub(crate) fn clerk(st: &mut State, req: &Incoming) -> Reply {
    match (req.method.as_str(), req.segments.as_slice()) {
        ("POST", ["m2m_tokens"]) => {
            let expected = format!("Bearer {}", st.config.clerk_machine_secret);
            if req.header("authorization") != Some(expected.as_str()) {
                return Reply::json(401, json!({"errors": [{"code": "authentication_invalid"}]}));
            }
            let token = format!("mt_{}", st.numeric_id());
            st.verity_machine_tokens.push(token.clone());
            let seconds = req
                .body
                .get("seconds_until_expiration")
                .and_then(Value::as_u64)
                .unwrap_or(3600);
            Reply::json(
                200,
                json!({"object": "machine_to_machine_token", "token": token,
                "expiration": chrono::Utc::now().timestamp() as u64 + seconds}),
            )
        }
        ("GET", ["jwks"]) => Reply::json(200, st.clerk_jwks.clone()),
        _ => Reply::json(404, json!({"errors": [{"code": "resource_not_found"}]})),
    }
}

/// Headers as recorded for Verity calls (tests check what was forwarded).
pub(crate) fn recorded_headers(req: &Incoming) -> Map<String, Value> {
    req.headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                json!(v.to_str().unwrap_or_default()),
            )
        })
        .collect()
}
