//! Aloware's public API (`/api/v1/webhook/...`, `api_token` in the query or JSON body),
//! shapes from `reference/aloware/api_*.json` and `research/aloware.md` §2. Unknown
//! paths answer 200 with an HTML page, as the real one does — and, a call to an
//! endpoint that does not exist being a bug of the caller, are recorded as violations.
//! `forms` refuses an existing contact with 409 unless `force_update` is set
//! (research §2.1), and then overwrites only the fields it is given; its `list_ids`
//! replace the contact's list memberships (undocumented: the harsher reading).
use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::state::State;
use crate::{Incoming, Reply, ReplyBody};

const SPA_SHELL: &str = "<!DOCTYPE html><html><head><title>Aloware</title></head><body><div id=\"app\"></div></body></html>";

const CONTACT_FIELDS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "email",
    "company_name",
    "lead_source",
    "date_of_birth",
    "timezone",
    "city",
    "state",
    "zipcode",
    "country",
    "address",
    "website",
    "notes",
    "csf1",
    "csf2",
    "is_dnc",
];

fn html() -> Reply {
    Reply {
        status: 200,
        headers: Vec::new(),
        body: ReplyBody::Html(SPA_SHELL),
    }
}

/// Digits of a North American or international number, for matching.
fn digits(phone: &str) -> String {
    let d: String = phone.chars().filter(char::is_ascii_digit).collect();
    if d.len() == 10 {
        format!("1{d}")
    } else {
        d
    }
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An undocumented path: the SPA shell, and a violation on record.
fn undocumented(st: &mut State, req: &Incoming) -> Reply {
    let path = format!("/aloware/{}", req.segments.join("/"));
    st.violation(
        "aloware",
        req.method.as_str(),
        &path,
        vec!["not a documented Aloware API path: Aloware answers 200 with its HTML app".into()],
    );
    html()
}

pub fn handle(st: &mut State, req: &Incoming) -> Reply {
    let ["api", "v1", "webhook", rest @ ..] = req.segments.as_slice() else {
        return undocumented(st, req);
    };
    let token = if *req.method == Method::GET {
        req.query.get("api_token").cloned()
    } else {
        text_of(req.body.get("api_token"))
    };
    let known = matches!(
        rest,
        ["forms"]
            | ["contact", "phone-number"]
            | ["powerdialer-remove-contact-from-lists"]
            | ["powerdialer-clear-list"]
            | ["sms-gateway", "send"]
            | ["users"]
    );
    if !known {
        return undocumented(st, req);
    }
    if token.as_deref() != Some(st.config.aloware_token.as_str()) {
        return Reply::json(401, json!({"message": "Unauthenticated."}));
    }
    match (req.method.clone(), rest) {
        (Method::POST, ["forms"]) => forms(st, &req.body),
        (Method::GET, ["contact", "phone-number"]) => {
            lookup(st, req.query.get("phone_number").map(String::as_str))
        }
        (Method::POST, ["powerdialer-remove-contact-from-lists"]) => {
            remove_from_lists(st, &req.body)
        }
        (Method::POST, ["powerdialer-clear-list"]) => {
            let list = text_of(req.body.get("list_id")).unwrap_or_default();
            st.aloware_lists.remove(&list);
            Reply::json(
                200,
                json!({"message": "The Power Dialer list has been cleared."}),
            )
        }
        (Method::POST, ["sms-gateway", "send"]) => sms(st, &req.body),
        (Method::GET, ["users"]) => Reply::json(200, json!(st.aloware_users)),
        _ => undocumented(st, req),
    }
}

fn find_by_phone(st: &State, phone: &str) -> Option<u64> {
    let want = digits(phone);
    st.aloware_contacts
        .iter()
        .find(|(_, c)| {
            c.get("phone_number")
                .and_then(Value::as_str)
                .is_some_and(|p| digits(p) == want)
        })
        .map(|(id, _)| *id)
}

fn list_ids(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| text_of(Some(x))).collect(),
        Some(v) => text_of(Some(v))
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

fn forms(st: &mut State, body: &Value) -> Reply {
    let Some(phone) = text_of(body.get("phone_number")).filter(|p| digits(p).len() >= 10) else {
        return Reply::json(
            422,
            json!({"errors": {"phone_number": ["The phone number field is required."]}}),
        );
    };
    let force = body
        .get("force_update")
        .is_some_and(|v| v == &json!(true) || v == &json!(1) || v == &json!("true"));
    let (id, created) = match find_by_phone(st, &phone) {
        // research/aloware.md §2.1: 409 "Contact already exists" without force_update.
        Some(_) if !force => {
            return Reply::json(409, json!({"message": "Contact already exists."}));
        }
        Some(id) => (id, false),
        None => {
            let id = st.numeric_id();
            let e164 = format!("+{}", digits(&phone));
            st.aloware_contacts
                .insert(id, json!({"id": id, "phone_number": e164, "is_dnc": false}));
            (id, true)
        }
    };
    let contact: &mut Map<String, Value> = st
        .aloware_contacts
        .get_mut(&id)
        .unwrap()
        .as_object_mut()
        .unwrap();
    for field in CONTACT_FIELDS {
        let Some(v) = body
            .get(*field)
            .filter(|v| !v.is_null() && v != &&json!(""))
        else {
            continue;
        };
        // A created contact takes every field; force_update overwrites the fields sent
        // (and only those).
        contact.insert(field.to_string(), v.clone());
    }
    // Whether `list_ids` adds or replaces is undocumented: the harsher reading, the
    // contact's lists become exactly these.
    if body.get("list_ids").is_some() {
        for members in st.aloware_lists.values_mut() {
            members.remove(&id);
        }
        for list in list_ids(body.get("list_ids")) {
            st.aloware_lists.entry(list).or_default().insert(id);
        }
    }
    if created {
        Reply::json(201, json!({"message": "Contact created."}))
    } else {
        Reply::json(200, json!({"message": "Contact updated."}))
    }
}

fn lookup(st: &State, phone: Option<&str>) -> Reply {
    let Some(phone) = phone.filter(|p| digits(p).len() >= 10) else {
        return Reply::json(400, json!({"error": "Phone number is empty or invalid."}));
    };
    match find_by_phone(st, phone) {
        // The 200 shape is undocumented: the sandbox can answer in each shape the
        // research lists, so the client is proven against all of them.
        Some(id) => {
            let contact = st.aloware_contacts[&id].clone();
            let body = match st.aloware_lookup_shape.as_str() {
                "contact" => json!({"contact": contact}),
                "data" => json!({"data": contact}),
                "list" => json!([contact]),
                _ => contact,
            };
            Reply::json(200, body)
        }
        None => Reply::json(404, json!({"error": "Contact not found."})),
    }
}

fn remove_from_lists(st: &mut State, body: &Value) -> Reply {
    let id = text_of(body.get("contact_id")).and_then(|s| s.parse::<u64>().ok());
    match id.filter(|id| st.aloware_contacts.contains_key(id)) {
        Some(id) => {
            for members in st.aloware_lists.values_mut() {
                members.remove(&id);
            }
            Reply::json(
                200,
                json!({"message": "The contact has been removed from the Power Dialer lists."}),
            )
        }
        None => Reply::json(
            404,
            json!({"message": "The requested contact id does not exist."}),
        ),
    }
}

fn sms(st: &mut State, body: &Value) -> Reply {
    let (Some(to), Some(message)) = (text_of(body.get("to")), text_of(body.get("message"))) else {
        return Reply::json(
            422,
            json!({"errors": {"to": ["The to field is required."], "message": ["The message field is required."]}}),
        );
    };
    st.aloware_sms.push(json!({"to": to, "message": message, "from": body.get("from"), "line_id": body.get("line_id")}));
    Reply::json(202, json!({"message": "Message sent."}))
}
