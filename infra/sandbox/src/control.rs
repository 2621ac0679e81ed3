//! `/_sandbox/...`: inspect state and requests, reset, seed, inject faults.
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{json, Value};

use crate::state::{Fault, State};
use crate::{Incoming, Reply};

pub fn handle(st: &mut State, req: &Incoming) -> Reply {
    match (req.method.clone(), req.segments.as_slice()) {
        (Method::GET, ["state"]) => Reply::json(200, snapshot(st)),
        (Method::GET, ["requests"]) => {
            let provider = req.query.get("provider");
            let list: Vec<_> = st
                .requests
                .iter()
                .filter(|r| provider.is_none_or(|p| &r.provider == p))
                .collect();
            Reply::json(200, json!(list))
        }
        (Method::GET, ["violations"]) => Reply::json(200, json!(st.violations)),
        (Method::DELETE, ["violations"]) => {
            st.violations.clear();
            Reply::json(200, json!({"violations": 0}))
        }
        (Method::GET, ["info"]) => Reply::json(
            200,
            json!({"ghl_openapi_operations": st.config.openapi.as_ref().map(|a| a.operation_count())}),
        ),
        (Method::POST, ["config"]) => {
            if let Some(shape) = req.body.get("aloware_lookup_shape").and_then(Value::as_str) {
                st.aloware_lookup_shape = shape.to_string();
            }
            if let Some(allowed) = req
                .body
                .get("ghl_status_updates_allowed")
                .and_then(Value::as_bool)
            {
                st.ghl_status_updates_allowed = allowed;
            }
            if let Some(ms) = req.body.get("ghl_search_lag_ms").and_then(Value::as_u64) {
                st.ghl_search_lag = std::time::Duration::from_millis(ms);
            }
            if let Some(ms) = req
                .body
                .get("ghl_contact_search_lag_ms")
                .and_then(Value::as_u64)
            {
                st.config.ghl_contact_search_lag = std::time::Duration::from_millis(ms);
            }
            if let Some(allow) = req
                .body
                .get("ghl_allow_duplicate_contacts")
                .and_then(Value::as_bool)
            {
                st.config.ghl_allow_duplicate_contacts = allow;
            }
            Reply::json(
                200,
                json!({"aloware_lookup_shape": st.aloware_lookup_shape,
                    "ghl_status_updates_allowed": st.ghl_status_updates_allowed,
                    "ghl_search_lag_ms": st.ghl_search_lag.as_millis() as u64,
                    "ghl_contact_search_lag_ms": st.config.ghl_contact_search_lag.as_millis() as u64,
                    "ghl_allow_duplicate_contacts": st.config.ghl_allow_duplicate_contacts}),
            )
        }
        (Method::POST, ["reset"]) => {
            st.reset();
            Reply::json(200, json!({"reset": true}))
        }
        (Method::POST, ["seed"]) => seed(st, &req.body),
        // `{"ghl_contact_ids": [..], "aloware_contact_ids": [..]}`: deleted behind the
        // middleware's back (by a person in either app).
        (Method::POST, ["remove"]) => {
            let mut n = 0;
            for id in req.body["ghl_contact_ids"].as_array().into_iter().flatten() {
                let Some(id) = id.as_str() else { continue };
                n += st.ghl_contacts.remove(id).is_some() as u32;
                st.index_contact(id, false);
            }
            for id in req.body["aloware_contact_ids"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(id) = id.as_u64() else { continue };
                n += st.aloware_contacts.remove(&id).is_some() as u32;
                for members in st.aloware_lists.values_mut() {
                    members.remove(&id);
                }
            }
            Reply::json(200, json!({"removed": n}))
        }
        (Method::POST, ["faults"]) => add_fault(st, &req.body),
        (Method::DELETE, ["faults"]) => {
            st.faults.clear();
            Reply::json(200, json!({"faults": 0}))
        }
        _ => Reply::json(404, json!({"error": "unknown control endpoint"})),
    }
}

fn snapshot(st: &State) -> Value {
    let lists: serde_json::Map<String, Value> = st
        .aloware_lists
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.iter().collect::<Vec<_>>())))
        .collect();
    json!({
        "ghl": {"contacts": st.ghl_contacts.values().collect::<Vec<_>>(), "notes": st.ghl_notes, "messages": st.ghl_messages,
            "conversations": st.ghl_conversations.values().collect::<Vec<_>>(),
            "records": st.ghl_records.values().collect::<Vec<_>>(),
            "custom_fields": st.ghl_custom_fields.values().collect::<Vec<_>>()},
        "aloware": {"contacts": st.aloware_contacts.values().collect::<Vec<_>>(), "lists": lists, "sms": st.aloware_sms},
        "texting": {"messages": st.texting_messages.values().collect::<Vec<_>>()},
        "alerts": st.alerts,
    })
}

/// `{"ghl_contacts": [...], "aloware_contacts": [...], "aloware_lists": {..}}`: records
/// stored as given (ids kept).
fn seed(st: &mut State, body: &Value) -> Reply {
    let mut n = 0;
    for c in body
        .get("ghl_contacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = c.get("id").and_then(Value::as_str) {
            st.ghl_contacts.insert(id.to_string(), c.clone());
            st.index_contact(id, true);
            n += 1;
        }
    }
    for c in body
        .get("aloware_contacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = c.get("id").and_then(Value::as_u64) {
            st.aloware_contacts.insert(id, c.clone());
            n += 1;
        }
    }
    // `"ghl_users"` / `"aloware_users"`: replace each account's users.
    if let Some(users) = body.get("ghl_users").and_then(Value::as_array) {
        st.ghl_users = users.clone();
        n += users.len();
    }
    if let Some(jwks) = body.get("clerk_jwks") {
        st.clerk_jwks = jwks.clone();
        n += 1;
    }
    if body.get("verity_revoke_tokens") == Some(&Value::Bool(true)) {
        n += st.verity_machine_tokens.len();
        st.verity_machine_tokens.clear();
    }
    if let Some(users) = body.get("aloware_users").and_then(Value::as_array) {
        st.aloware_users = users.clone();
        n += users.len();
    }
    // `"aloware_lists": {"<list id>": [<contact id>, ...]}` (lists made in Aloware's UI).
    for (list, members) in body
        .get("aloware_lists")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let set = st.aloware_lists.entry(list.clone()).or_default();
        set.extend(
            members
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64),
        );
        n += 1;
    }
    Reply::json(200, json!({"seeded": n}))
}

/// `{"provider"?: "ghl", "status"?: 500, "count"?: 3, "seconds"?: 120, "latency_ms"?: 200,
/// "skip"?: 2, "apply"?: true, "path_contains"?: "/notes"}`.
fn add_fault(st: &mut State, body: &Value) -> Reply {
    let status = body.get("status").and_then(Value::as_u64).map(|s| s as u16);
    let latency_ms = body.get("latency_ms").and_then(Value::as_u64);
    if status.is_none() && latency_ms.is_none() {
        return Reply::json(
            400,
            json!({"error": "a fault needs a status or latency_ms"}),
        );
    }
    let remaining = body.get("count").and_then(Value::as_u64).map(|n| n as u32);
    let until = body
        .get("seconds")
        .and_then(Value::as_f64)
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let remaining = if remaining.is_none() && until.is_none() {
        Some(1)
    } else {
        remaining
    };
    st.faults.push(Fault {
        provider: body
            .get("provider")
            .and_then(Value::as_str)
            .map(str::to_string),
        status,
        remaining,
        until,
        latency_ms,
        skip: body.get("skip").and_then(Value::as_u64).unwrap_or(0) as u32,
        apply: body.get("apply").and_then(Value::as_bool).unwrap_or(false),
        path_contains: body
            .get("path_contains")
            .and_then(Value::as_str)
            .map(str::to_string),
        method: body
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string),
    });
    Reply::json(200, json!({"faults": st.faults.len()}))
}
