//! GHL API v2 (contacts `Version: 2021-07-28`, conversations `2021-04-15`), shapes from
//! `reference/ghl/openapi/*.json` and `research/ghl.md` §1–2, §4, §7. Every request is
//! validated against the OpenAPI when it is loaded (`openapi.rs`): a violation is
//! answered as GHL answers it and recorded for `/_sandbox/violations`. Semantics follow
//! the documents, and the harsher reading where they are silent: upsert and PUT `tags`
//! replace all tags; custom fields are written by their opaque id (an unknown id is
//! refused) and read back as `{id, value}`; `dndSettings` replaces the whole object; a
//! create that duplicates a contact's email or phone is refused (the location default).
use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::ghl_conversations as conversations;
use crate::ghl_objects as objects;
use crate::state::State;
use crate::{openapi, Incoming, Reply};

const CONTACT_FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "name",
    "email",
    "phone",
    "dnd",
    "dndSettings",
    "source",
    "companyName",
    "address1",
    "city",
    "state",
    "postalCode",
    "country",
    "timezone",
    "website",
    "dateOfBirth",
    "assignedTo",
    "gender",
];

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, json!({"statusCode": status, "message": message}))
}

fn unprocessable(messages: &[&str]) -> Reply {
    Reply::json(
        422,
        json!({"statusCode": 422, "message": messages, "error": "Unprocessable Entity"}),
    )
}

pub fn handle(st: &mut State, req: &Incoming) -> Reply {
    let expected = format!("Bearer {}", st.config.ghl_token);
    if req.header("authorization") != Some(expected.as_str()) {
        return Reply::json(
            401,
            json!({"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"}),
        );
    }
    let location = st.config.ghl_location_id.clone();
    let limit = st.config.ghl_rate_max;
    let window_ms = st.config.ghl_rate_window.as_millis().to_string();
    let remaining = st.rate_take(&location);
    let mut reply = match remaining {
        Err(()) => error(429, "Too many requests"),
        Ok(_) => match validate(st, req) {
            Some(refusal) => refusal,
            None => route(st, req, &location),
        },
    };
    reply.headers.extend([
        ("x-ratelimit-max", limit.to_string()),
        ("x-ratelimit-remaining", remaining.unwrap_or(0).to_string()),
        ("x-ratelimit-interval-milliseconds", window_ms),
        ("x-ratelimit-limit-daily", "200000".to_string()),
        ("x-ratelimit-daily-remaining", "199000".to_string()),
    ]);
    reply
}

/// The request against GHL's OpenAPI (or, without it, the `Version` header alone): the
/// refusal GHL would answer, recorded as a violation.
fn validate(st: &mut State, req: &Incoming) -> Option<Reply> {
    let version = req.header("version");
    let method = req.method.as_str().to_string();
    let path = format!("/ghl/{}", req.segments.join("/"));
    let Some(api) = st.config.openapi.clone() else {
        let expected = if req.segments.first() == Some(&"conversations") {
            "2021-04-15"
        } else {
            "2021-07-28"
        };
        if version == Some(expected) {
            return None;
        }
        st.violation(
            "ghl",
            &method,
            &path,
            vec!["Version header is missing or invalid".into()],
        );
        return Some(error(400, "Version header is missing or invalid"));
    };
    if req.segments.as_slice() == ["users"] {
        return users_request(st, req, &method, &path);
    }
    let body = (!req.body.is_null()).then_some(&req.body);
    let refusal = match api.check(&method, &req.segments, version, &req.query, body) {
        Ok(_) => return None,
        Err(v) => v,
    };
    let messages = refusal.messages();
    st.violation("ghl", &method, &path, messages.clone());
    Some(match refusal {
        openapi::Violation::UnknownRoute(m) => Reply::json(
            404,
            json!({"statusCode": 404, "message": m, "error": "Not Found"}),
        ),
        openapi::Violation::Version(m) => error(400, &m),
        openapi::Violation::Invalid { .. } => {
            let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
            unprocessable(&refs)
        }
    })
}

/// `GET /users/?locationId=` ("Get User by Location") is not in the reference's OpenAPI
/// files: checked by hand against GHL's docs — GET only, `Version: 2021-07-28`,
/// `locationId` required (422 like GHL's validation), nothing else accepted.
fn users_request(st: &mut State, req: &Incoming, method: &str, path: &str) -> Option<Reply> {
    let mut problems = Vec::new();
    if method != "GET" {
        problems.push(format!("{method} is not an operation of /users/"));
    }
    if req.header("version") != Some("2021-07-28") {
        problems.push("Version header must be 2021-07-28".to_string());
    }
    if !req.query.contains_key("locationId") {
        problems.push("locationId should not be empty".to_string());
    }
    if let Some(extra) = req.query.keys().find(|k| *k != "locationId") {
        problems.push(format!("property {extra} should not exist"));
    }
    if problems.is_empty() {
        return None;
    }
    st.violation("ghl", method, path, problems.clone());
    let refs: Vec<&str> = problems.iter().map(String::as_str).collect();
    Some(unprocessable(&refs))
}

fn route(st: &mut State, req: &Incoming, location: &str) -> Reply {
    let m = req.method;
    match req.segments.as_slice() {
        ["locations", loc, "customFields"] if *loc != location => {
            error(403, "The token does not have access to this location.")
        }
        ["users"] => match req.query.get("locationId") {
            Some(loc) if loc != location => {
                error(403, "The token does not have access to this location.")
            }
            _ => Reply::json(200, json!({"users": st.ghl_users})),
        },
        ["locations", _, "customFields"] if m == Method::GET => Reply::json(
            200,
            json!({"customFields": st.ghl_custom_fields.values().collect::<Vec<_>>()}),
        ),
        ["locations", _, "customFields"] if m == Method::POST => {
            let name = req.body.get("name").and_then(Value::as_str).unwrap_or("");
            let data_type = req
                .body
                .get("dataType")
                .and_then(Value::as_str)
                .unwrap_or("TEXT");
            if name.trim().is_empty() {
                return unprocessable(&["name should not be empty"]);
            }
            let field = st.create_custom_field(name, data_type);
            Reply::json(201, json!({"customField": field}))
        }
        ["contacts", "upsert"] if m == Method::POST => upsert(st, &req.body, location),
        ["contacts", "search", "duplicate"] if m == Method::GET => duplicate(st, req),
        ["contacts", "search"] if m == Method::POST => search(st, &req.body),
        ["contacts"] if m == Method::POST => create(st, &req.body, location),
        ["contacts", id] => match *m {
            Method::GET => with_contact(st, id, |c| Reply::json(200, json!({"contact": c}))),
            Method::PUT => update(st, id, &req.body),
            Method::DELETE => {
                st.ghl_notes.remove(*id);
                let removed = st.ghl_contacts.remove(*id);
                st.index_contact(id, false);
                match removed {
                    Some(_) => Reply::json(200, json!({"succeded": true})),
                    None => error(400, "Contact not found"),
                }
            }
            _ => not_found(req),
        },
        ["contacts", id, "tags"] if m == Method::POST || m == Method::DELETE => {
            tags(st, id, &req.body, m == Method::POST)
        }
        ["contacts", id, "notes"] if m == Method::GET => match st.ghl_contacts.contains_key(*id) {
            true => Reply::json(
                200,
                json!({"notes": st.ghl_notes.get(*id).cloned().unwrap_or_default()}),
            ),
            false => error(400, "Contact not found"),
        },
        ["contacts", id, "notes"] if m == Method::POST => create_note(st, id, &req.body),
        ["contacts", id, "notes", note] if m == Method::PUT => update_note(st, id, note, &req.body),
        ["contacts", id, "notes", note] if m == Method::GET => match find_note(st, id, note) {
            Some(n) => Reply::json(200, json!({"note": n})),
            None => error(404, "Note not found"),
        },
        ["objects", key, "records", "search"] if m == Method::POST => {
            objects::search(st, key, &req.body, location)
        }
        ["objects", key, "records"] if m == Method::POST => {
            objects::create(st, key, &req.body, location)
        }
        ["objects", key, "records", id] if m == Method::PUT => {
            let loc = req.query.get("locationId").map(String::as_str);
            objects::update(st, key, id, loc, &req.body, location)
        }
        ["objects", key, "records", id] if m == Method::GET => objects::get(st, key, id),
        ["conversations", "search"] if m == Method::GET => conversations::search(st, req, location),
        ["conversations"] if m == Method::POST => conversations::create(st, &req.body, location),
        ["conversations", "messages", route @ ("inbound" | "outbound")] if m == Method::POST => {
            conversations::record(st, route, &req.body)
        }
        ["conversations", "messages", id, "status"] if m == Method::PUT => {
            conversations::update_status(st, id, &req.body)
        }
        ["conversations", id, "messages"] if m == Method::GET => conversations::messages(st, id),
        _ => not_found(req),
    }
}

fn not_found(req: &Incoming) -> Reply {
    error(
        404,
        &format!("Cannot {} /{}", req.method, req.segments.join("/")),
    )
}

fn with_contact(st: &State, id: &str, f: impl FnOnce(&Value) -> Reply) -> Reply {
    match st.ghl_contacts.get(id) {
        Some(c) => f(c),
        None => error(400, "Contact not found"),
    }
}

/// GHL stores tags lower-cased.
fn normalise_tags(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|t| t.trim().to_lowercase())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Custom field writes must name fields the location has, by id: `Err` lists the
/// unknown ones (GHL refuses them; a key alone fails the schema before this).
fn check_custom_fields(st: &State, body: &Value) -> Result<(), Reply> {
    let unknown: Vec<String> = body
        .get("customFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("id").and_then(Value::as_str))
        .filter(|id| !st.ghl_custom_fields.contains_key(*id))
        .map(|id| format!("customFields: no custom field with id {id} in this location"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        let refs: Vec<&str> = unknown.iter().map(String::as_str).collect();
        Err(unprocessable(&refs))
    }
}

fn apply_fields(contact: &mut Map<String, Value>, body: &Value) {
    for field in CONTACT_FIELDS {
        // A partial `dndSettings` replaces the whole object (the harsher reading of an
        // undocumented behaviour): every channel not sent is gone.
        if let Some(v) = body.get(*field) {
            contact.insert(field.to_string(), v.clone());
        }
    }
    if let Some(email) = body.get("email").and_then(Value::as_str) {
        contact.insert("email".into(), Value::from(email.trim().to_lowercase()));
    }
    // Writes take `{id, field_value}`; reads return `{id, value}`.
    if let Some(fields) = body.get("customFields").and_then(Value::as_array) {
        let existing = contact.entry("customFields").or_insert_with(|| json!([]));
        let list = existing.as_array_mut().unwrap();
        for f in fields {
            let Some(id) = f.get("id").and_then(Value::as_str) else {
                continue;
            };
            let value = f
                .get("field_value")
                .or_else(|| f.get("value"))
                .cloned()
                .unwrap_or(Value::Null);
            list.retain(|e| e.get("id").and_then(Value::as_str) != Some(id));
            list.push(json!({"id": id, "value": value}));
        }
    }
    let first = contact
        .get("firstName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let last = contact
        .get("lastName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let full = format!("{first} {last}").trim().to_string();
    if !full.is_empty() {
        contact.insert("name".into(), Value::from(full));
    }
    contact.insert(
        "dateUpdated".into(),
        Value::from(chrono::Utc::now().to_rfc3339()),
    );
}

fn new_contact(st: &mut State, body: &Value, location: &str) -> Value {
    let id = st.ghl_id('c');
    let mut c = Map::new();
    c.insert("id".into(), Value::from(id.clone()));
    c.insert("locationId".into(), Value::from(location));
    c.insert("tags".into(), json!(normalise_tags(body.get("tags"))));
    c.insert("customFields".into(), json!([]));
    c.insert(
        "dateAdded".into(),
        Value::from(chrono::Utc::now().to_rfc3339()),
    );
    apply_fields(&mut c, body);
    let contact = Value::Object(c);
    st.ghl_contacts.insert(id.clone(), contact.clone());
    st.index_contact(&id, false);
    contact
}

fn create(st: &mut State, body: &Value, location: &str) -> Reply {
    if body.get("locationId").and_then(Value::as_str).is_none() {
        return unprocessable(&["locationId should not be empty"]);
    }
    if let Err(refusal) = check_custom_fields(st, body) {
        return refusal;
    }
    // "Allow Duplicate Contact" is off by default: a create matching an existing
    // contact by email or phone is refused, with the body GHL documents for a 400
    // (`BadRequestDTO`: no id of the contact it matched). With the setting on, GHL
    // creates a second contact.
    let email = body.get("email").and_then(Value::as_str);
    let phone = body.get("phone").and_then(Value::as_str);
    if !st.config.ghl_allow_duplicate_contacts && find_by(st, email, phone).is_some() {
        return error(400, "This location does not allow duplicated contacts.");
    }
    let contact = new_contact(st, body, location);
    Reply::json(201, json!({"contact": contact}))
}

fn find_by(st: &State, email: Option<&str>, phone: Option<&str>) -> Option<String> {
    find_in(&st.ghl_contacts, email, phone)
}

fn find_in(
    contacts: &std::collections::BTreeMap<String, Value>,
    email: Option<&str>,
    phone: Option<&str>,
) -> Option<String> {
    let email = email
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty());
    let by = |field: &str, want: &str| {
        contacts
            .iter()
            .find(|(_, c)| {
                c.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case(want))
            })
            .map(|(id, _)| id.clone())
    };
    email
        .and_then(|e| by("email", &e))
        .or_else(|| phone.filter(|p| !p.is_empty()).and_then(|p| by("phone", p)))
}

fn upsert(st: &mut State, body: &Value, location: &str) -> Reply {
    if body.get("locationId").and_then(Value::as_str).is_none() {
        return unprocessable(&["locationId should not be empty"]);
    }
    if let Err(refusal) = check_custom_fields(st, body) {
        return refusal;
    }
    let existing = find_by(
        st,
        body.get("email").and_then(Value::as_str),
        body.get("phone").and_then(Value::as_str),
    );
    let trace = uuid::Uuid::new_v4().to_string();
    match existing {
        Some(id) => {
            let contact = st
                .ghl_contacts
                .get_mut(&id)
                .unwrap()
                .as_object_mut()
                .unwrap();
            apply_fields(contact, body);
            // "This field will overwrite all current tags" (UpsertContactDto.tags).
            if body.get("tags").is_some() {
                contact.insert("tags".into(), json!(normalise_tags(body.get("tags"))));
            }
            let contact = Value::Object(contact.clone());
            st.index_contact(&id, false);
            Reply::json(
                200,
                json!({"new": false, "contact": contact, "traceId": trace}),
            )
        }
        None => {
            let contact = new_contact(st, body, location);
            Reply::json(
                200,
                json!({"new": true, "contact": contact, "traceId": trace}),
            )
        }
    }
}

fn update(st: &mut State, id: &str, body: &Value) -> Reply {
    if let Err(refusal) = check_custom_fields(st, body) {
        return refusal;
    }
    let Some(contact) = st.ghl_contacts.get_mut(id).and_then(Value::as_object_mut) else {
        return error(400, "Contact not found");
    };
    apply_fields(contact, body);
    // PUT replaces the whole tag list, as the real API does.
    if body.get("tags").is_some() {
        contact.insert("tags".into(), json!(normalise_tags(body.get("tags"))));
    }
    let contact = Value::Object(contact.clone());
    st.index_contact(id, false);
    Reply::json(200, json!({"succeded": true, "contact": contact}))
}

fn tags(st: &mut State, id: &str, body: &Value, add: bool) -> Reply {
    let Some(contact) = st.ghl_contacts.get_mut(id).and_then(Value::as_object_mut) else {
        return error(400, "Contact not found");
    };
    let given = normalise_tags(body.get("tags"));
    if given.is_empty() {
        return unprocessable(&["tags should not be empty"]);
    }
    let mut tags = normalise_tags(contact.get("tags"));
    if add {
        for t in given {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
    } else {
        tags.retain(|t| !given.contains(t));
    }
    contact.insert("tags".into(), json!(tags.clone()));
    st.index_contact(id, false);
    Reply::json(if add { 201 } else { 200 }, json!({"tags": tags}))
}

/// The duplicate search reads GHL's search index, which trails writes.
fn duplicate(st: &mut State, req: &Incoming) -> Reply {
    if req.query.get("locationId").is_none_or(|l| l.is_empty()) {
        return unprocessable(&["locationId should not be empty"]);
    }
    let index = st.searchable_contacts();
    let id = find_in(
        index,
        req.query.get("email").map(String::as_str),
        req.query.get("number").map(String::as_str),
    );
    let found = id.and_then(|id| index.get(&id).cloned());
    Reply::json(200, json!({"contact": found}))
}

fn search(st: &mut State, body: &Value) -> Reply {
    if body.get("locationId").and_then(Value::as_str).is_none() {
        return unprocessable(&["locationId should not be empty"]);
    }
    let page_limit = body.get("pageLimit").and_then(Value::as_u64).unwrap_or(20);
    if page_limit == 0 || page_limit > 500 {
        return unprocessable(&["pageLimit must not be greater than 500"]);
    }
    let page = body.get("page").and_then(Value::as_u64).unwrap_or(1).max(1);
    let filters = body
        .get("filters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // A filter the sandbox cannot evaluate is refused, never read as "matches all".
    if let Some(bad) = filters.iter().find_map(unsupported_filter) {
        return unprocessable(&[&bad]);
    }
    let matches: Vec<&Value> = st
        .searchable_contacts()
        .values()
        .filter(|c| filters.iter().all(|f| filter_matches(c, f)))
        .collect();
    let total = matches.len();
    let start = ((page - 1) * page_limit) as usize;
    let contacts: Vec<Value> = matches
        .into_iter()
        .skip(start)
        .take(page_limit as usize)
        .cloned()
        .collect();
    Reply::json(200, json!({"contacts": contacts, "total": total}))
}

/// Why a search filter cannot be evaluated: fields and operators beyond these, or a
/// group other than AND / OR.
fn unsupported_filter(f: &Value) -> Option<String> {
    if let Some(group) = f.get("group") {
        if !matches!(group.as_str(), Some("AND" | "OR")) {
            return Some(format!("filter group {group} must be AND or OR"));
        }
        return match f.get("filters").and_then(Value::as_array) {
            Some(inner) => inner.iter().find_map(unsupported_filter),
            None => Some("a filter group needs filters".into()),
        };
    }
    match (
        f.get("field").and_then(Value::as_str),
        f.get("operator").and_then(Value::as_str),
    ) {
        (Some("tags"), Some("contains" | "eq")) | (Some("phone" | "email"), Some("eq")) => f
            .get("value")
            .and_then(Value::as_str)
            .is_none()
            .then(|| "filter value must be a string".into()),
        (field, op) => Some(format!("unsupported filter {field:?} {op:?}")),
    }
}

fn filter_matches(c: &Value, f: &Value) -> bool {
    if let Some(group) = f.get("group").and_then(Value::as_str) {
        let inner = f
            .get("filters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        return match group {
            "OR" => inner.iter().any(|g| filter_matches(c, g)),
            _ => inner.iter().all(|g| filter_matches(c, g)),
        };
    }
    let value = f
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let field = |name: &str| {
        c.get(name)
            .and_then(Value::as_str)
            .is_some_and(|v| v.to_lowercase() == value)
    };
    match f.get("field").and_then(Value::as_str) {
        Some("tags") => normalise_tags(c.get("tags")).contains(&value),
        Some("phone") => field("phone"),
        Some("email") => field("email"),
        _ => false,
    }
}

/// A note's `body`, required and non-empty (422 otherwise, as GHL answers).
fn note_text(body: &Value) -> Result<&str, Reply> {
    body.get("body")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| unprocessable(&["body should not be empty"]))
}

fn create_note(st: &mut State, contact_id: &str, body: &Value) -> Reply {
    if !st.ghl_contacts.contains_key(contact_id) {
        return error(400, "Contact not found");
    }
    let text = match note_text(body) {
        Ok(text) => text,
        Err(reply) => return reply,
    };
    let note = json!({"id": st.ghl_id('n'), "body": text, "contactId": contact_id, "userId": null,
        "dateAdded": chrono::Utc::now().to_rfc3339()});
    st.ghl_notes
        .entry(contact_id.to_string())
        .or_default()
        .push(note.clone());
    Reply::json(201, json!({"note": note}))
}

fn find_note(st: &State, contact_id: &str, note_id: &str) -> Option<Value> {
    st.ghl_notes
        .get(contact_id)?
        .iter()
        .find(|n| n["id"] == note_id)
        .cloned()
}

fn update_note(st: &mut State, contact_id: &str, note_id: &str, body: &Value) -> Reply {
    let text = match note_text(body) {
        Ok(text) => text,
        Err(reply) => return reply,
    };
    let note = st
        .ghl_notes
        .get_mut(contact_id)
        .and_then(|ns| ns.iter_mut().find(|n| n["id"] == note_id));
    match note {
        Some(n) => {
            n["body"] = Value::from(text);
            Reply::json(200, json!({"note": n.clone()}))
        }
        None => error(404, "Note not found"),
    }
}
