//! GHL custom-object records (`reference/ghl/openapi/objects.json`; the schema there
//! leaves record bodies open, so the rules below are GHL's documented semantics with
//! the harsher reading): the location has one custom object, `custom_objects.broadcasts`
//! (README "Broadcast analytics" lists its fields); unknown properties and wrong types
//! are refused with 422; `broadcast_id` is unique (a second create is refused as a
//! duplicate, naming no record); an update merges the properties it carries; search
//! matches `property:value` on the searchable properties only, and (with
//! `ghl_search_lag_ms`) only records written longer ago than the index lag.
use serde_json::{json, Map, Value};

use crate::state::State;
use crate::Reply;

pub const BROADCASTS: &str = "custom_objects.broadcasts";
const TEXT: &[&str] = &["broadcast_id", "broadcast_name", "channel", "sent_at"];
const NUMBERS: &[&str] = &[
    "recipients",
    "sent",
    "delivered",
    "pending",
    "failed",
    "responses",
    "appointments_set",
    "delivery_rate",
    "response_rate",
    "failure_rate",
    "conversion_rate",
];
const UNIQUE: &str = "broadcast_id";
const SEARCHABLE: &[&str] = &["broadcast_id", "broadcast_name"];

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, json!({"statusCode": status, "message": message}))
}

fn unprocessable(messages: Vec<String>) -> Reply {
    Reply::json(
        422,
        json!({"statusCode": 422, "message": messages, "error": "Unprocessable Entity"}),
    )
}

fn known_schema(key: &str) -> Result<(), Reply> {
    match key {
        BROADCASTS => Ok(()),
        _ => Err(error(404, &format!("Object schema {key} not found"))),
    }
}

fn check_location(given: Option<&str>, location: &str) -> Result<(), Reply> {
    match given {
        None => Err(unprocessable(vec!["locationId should not be empty".into()])),
        Some(l) if l != location => Err(error(
            403,
            "The token does not have access to this location.",
        )),
        Some(_) => Ok(()),
    }
}

/// The properties of a create or update: known keys, right types.
fn check_properties(body: &Value, creating: bool) -> Result<Map<String, Value>, Reply> {
    let Some(props) = body.get("properties").and_then(Value::as_object) else {
        return Err(unprocessable(vec!["properties must be an object".into()]));
    };
    let mut problems = Vec::new();
    for (k, v) in props {
        if TEXT.contains(&k.as_str()) {
            if !v.is_string() {
                problems.push(format!("{k} must be a string"));
            }
        } else if NUMBERS.contains(&k.as_str()) {
            if !v.is_number() {
                problems.push(format!("{k} must be a number"));
            }
        } else {
            problems.push(format!("property {k} does not exist on {BROADCASTS}"));
        }
    }
    let has_unique = props
        .get(UNIQUE)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if creating && !has_unique {
        problems.push(format!("{UNIQUE} is required"));
    }
    if let Some(extra) = body
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| !["locationId", "properties", "owner", "followers"].contains(&k.as_str()))
    {
        problems.push(format!("property {extra} should not exist"));
    }
    if problems.is_empty() {
        Ok(props.clone())
    } else {
        Err(unprocessable(problems))
    }
}

fn record_with(st: &State, unique: &str) -> Option<String> {
    st.ghl_records
        .iter()
        .find(|(_, r)| {
            r.pointer(&format!("/properties/{UNIQUE}"))
                .and_then(Value::as_str)
                == Some(unique)
        })
        .map(|(id, _)| id.clone())
}

pub fn create(st: &mut State, key: &str, body: &Value, location: &str) -> Reply {
    if let Err(r) = known_schema(key)
        .and_then(|_| check_location(body.get("locationId").and_then(Value::as_str), location))
    {
        return r;
    }
    let props = match check_properties(body, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let unique = props
        .get(UNIQUE)
        .and_then(Value::as_str)
        .unwrap_or_default();
    if record_with(st, unique).is_some() {
        return Reply::json(
            400,
            json!({"statusCode": 400, "message": "duplicate_record: a record with this broadcast_id already exists",
                "error": "Bad Request"}),
        );
    }
    let id = st.ghl_id('r');
    let now = chrono::Utc::now().to_rfc3339();
    let record = json!({"id": id, "owner": [], "followers": [], "properties": props,
        "objectKey": key, "locationId": location, "dateAdded": now, "dateUpdated": now});
    st.ghl_record_written
        .insert(id.clone(), std::time::Instant::now());
    st.ghl_records.insert(id, record.clone());
    Reply::json(201, json!({"record": record}))
}

pub fn update(
    st: &mut State,
    key: &str,
    id: &str,
    query_location: Option<&str>,
    body: &Value,
    location: &str,
) -> Reply {
    if let Err(r) = known_schema(key).and_then(|_| check_location(query_location, location)) {
        return r;
    }
    let props = match check_properties(body, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(unique) = props.get(UNIQUE).and_then(Value::as_str) {
        if record_with(st, unique).is_some_and(|other| other != id) {
            return error(
                400,
                "duplicate_record: a record with this broadcast_id already exists",
            );
        }
    }
    let Some(record) = st.ghl_records.get_mut(id) else {
        return error(404, "Record not found");
    };
    if let Some(existing) = record.get_mut("properties").and_then(Value::as_object_mut) {
        existing.extend(props);
    }
    record["dateUpdated"] = json!(chrono::Utc::now().to_rfc3339());
    Reply::json(200, json!({"record": record}))
}

pub fn get(st: &State, key: &str, id: &str) -> Reply {
    if let Err(r) = known_schema(key) {
        return r;
    }
    match st.ghl_records.get(id) {
        Some(r) => Reply::json(200, json!({"record": r})),
        None => error(404, "Record not found"),
    }
}

pub fn search(st: &State, key: &str, body: &Value, location: &str) -> Reply {
    if let Err(r) = known_schema(key)
        .and_then(|_| check_location(body.get("locationId").and_then(Value::as_str), location))
    {
        return r;
    }
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let page = body.get("page").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
    let limit = body
        .get("pageLimit")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .clamp(1, 100) as usize;
    let matches = |r: &Value| match query.split_once(':') {
        Some((prop, value)) if SEARCHABLE.contains(&prop) => {
            r.pointer(&format!("/properties/{prop}"))
                .and_then(Value::as_str)
                == Some(value)
        }
        Some(_) => false,
        None => SEARCHABLE.iter().any(|p| {
            r.pointer(&format!("/properties/{p}"))
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_lowercase().contains(&query.to_lowercase()))
        }),
    };
    let indexed = |id: &String| {
        st.ghl_record_written
            .get(id)
            .is_none_or(|at| at.elapsed() >= st.ghl_search_lag)
    };
    let found: Vec<&Value> = st
        .ghl_records
        .iter()
        .filter(|(id, r)| indexed(id) && matches(r))
        .map(|(_, r)| r)
        .collect();
    let records: Vec<&Value> = found
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .copied()
        .collect();
    Reply::json(200, json!({"records": records, "total": found.len()}))
}
