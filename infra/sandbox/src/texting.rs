//! The in-house texting API of SPEC §3: `POST /messages {to, from, body}` → `{id, status}`,
//! `GET /messages/{id}`; Bearer `TEXTING_API_KEY`.
use axum::http::Method;
use serde_json::{json, Value};

use crate::state::State;
use crate::{Incoming, Reply};

pub fn handle(st: &mut State, req: &Incoming) -> Reply {
    let expected = format!("Bearer {}", st.config.texting_api_key);
    if req.header("authorization") != Some(expected.as_str()) {
        return Reply::json(401, json!({"error": "unauthorized"}));
    }
    match (req.method.clone(), req.segments.as_slice()) {
        (Method::POST, ["messages"]) => {
            let field = |k: &str| {
                req.body
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
            };
            let (Some(to), Some(from), Some(body)) = (field("to"), field("from"), field("body"))
            else {
                return Reply::json(400, json!({"error": "to, from and body are required"}));
            };
            let e164 = |n: &str| {
                n.len() > 8 && n.starts_with('+') && n[1..].chars().all(|c| c.is_ascii_digit())
            };
            if !e164(to) || !e164(from) {
                return Reply::json(400, json!({"error": "to and from must be E.164 numbers"}));
            }
            let id = format!("tx-{}", st.numeric_id());
            let message = json!({"id": id, "to": to, "from": from, "body": body, "status": "queued",
                "createdAt": chrono::Utc::now().to_rfc3339()});
            st.texting_messages.insert(id.clone(), message);
            Reply::json(201, json!({"id": id, "status": "queued"}))
        }
        (Method::GET, ["messages", id]) => match st.texting_messages.get(*id) {
            Some(m) => Reply::json(200, m.clone()),
            None => Reply::json(404, json!({"error": "message not found"})),
        },
        _ => Reply::json(404, json!({"error": "not found"})),
    }
}
