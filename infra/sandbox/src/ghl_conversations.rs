//! GHL conversations (`Version: 2021-04-15`), from `openapi/conversations.json` and
//! research/ghl.md §4, under the harsher reading where the documents are silent:
//! - one conversation per contact: creating a second is refused (400);
//! - a message names its conversation, which must be the contact's; the provider id
//!   must be the location's conversation provider;
//! - `direction` defaults to `outbound`, as documented: an inbound message recorded
//!   without it shows as outbound;
//! - a call log's party must match the contact's phone (inbound: `call.from`,
//!   outbound: `call.to`);
//! - only the provider app's token may set a message's status: our token is refused
//!   (401) unless `/_sandbox/config {"ghl_status_updates_allowed": true}`;
//! - a conversation's messages list holds the 20 newest.
use serde_json::{json, Value};

use crate::state::State;
use crate::{Incoming, Reply};

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, json!({"statusCode": status, "message": message}))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn search(st: &State, req: &Incoming, location: &str) -> Reply {
    if req.query.get("locationId").map(String::as_str) != Some(location) {
        return error(403, "The token does not have access to this location.");
    }
    let contact = req.query.get("contactId");
    let found: Vec<Value> = st
        .ghl_conversations
        .values()
        .filter(|c| contact.is_none_or(|id| c["contactId"] == id.as_str()))
        .map(|c| schema_of(st, c))
        .collect();
    Reply::json(200, json!({"total": found.len(), "conversations": found}))
}

/// A stored conversation as `ConversationSchema`.
fn schema_of(st: &State, c: &Value) -> Value {
    let contact = st
        .ghl_contacts
        .get(c["contactId"].as_str().unwrap_or_default())
        .cloned()
        .unwrap_or(Value::Null);
    let last = st
        .ghl_messages
        .iter()
        .rev()
        .find(|m| m["conversationId"] == c["id"]);
    let name = [text(&contact, "firstName"), text(&contact, "lastName")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    json!({"id": c["id"], "contactId": c["contactId"], "locationId": c["locationId"],
        "lastMessageBody": last.and_then(|m| text(m, "body")).unwrap_or(""),
        "lastMessageType": last.and_then(|m| text(m, "messageType")).unwrap_or("TYPE_SMS"),
        "type": "TYPE_PHONE", "unreadCount": 0, "fullName": name, "contactName": name,
        "email": text(&contact, "email").unwrap_or(""), "phone": text(&contact, "phone").unwrap_or("")})
}

pub fn create(st: &mut State, body: &Value, location: &str) -> Reply {
    if text(body, "locationId") != Some(location) {
        return error(403, "The token does not have access to this location.");
    }
    let contact = text(body, "contactId").unwrap_or_default().to_string();
    if !st.ghl_contacts.contains_key(&contact) {
        return error(400, "Contact not found");
    }
    if let Some(existing) = st
        .ghl_conversations
        .values()
        .find(|c| c["contactId"] == contact.as_str())
    {
        return Reply::json(
            400,
            json!({"statusCode": 400, "message": "Conversation already exists", "conversationId": existing["id"]}),
        );
    }
    let id = st.ghl_id('c');
    let at = now();
    let conversation = json!({"id": id, "dateUpdated": at, "dateAdded": at, "deleted": false,
        "contactId": contact, "locationId": location, "lastMessageDate": at});
    st.ghl_conversations.insert(id, conversation.clone());
    Reply::json(201, json!({"success": true, "conversation": conversation}))
}

/// `messageType` and GHL's numeric `type` of a recorded message type.
fn message_type(kind: &str) -> (&'static str, u32) {
    match kind {
        "Call" => ("TYPE_CALL", 1),
        "SMS" => ("TYPE_SMS", 2),
        "Email" => ("TYPE_EMAIL", 3),
        _ => ("TYPE_CUSTOM_SMS", 11),
    }
}

/// The conversation a message names, checked against the provider and contact.
fn conversation_of(st: &State, body: &Value) -> Result<Value, Reply> {
    let provider = text(body, "conversationProviderId").unwrap_or_default();
    if provider != st.config.ghl_conversation_provider_id {
        return Err(error(
            400,
            "Conversation provider not found for this location",
        ));
    }
    let id = text(body, "conversationId").unwrap_or_default();
    let conversation = st
        .ghl_conversations
        .get(id)
        .cloned()
        .ok_or_else(|| error(400, "Conversation not found"))?;
    if let Some(contact) = text(body, "contactId") {
        if conversation["contactId"] != contact {
            return Err(error(
                400,
                "The conversation does not belong to this contact",
            ));
        }
    }
    Ok(conversation)
}

/// `POST /conversations/messages/inbound` (`direction` given) and `.../outbound` (calls).
pub fn record(st: &mut State, route: &str, body: &Value) -> Reply {
    let conversation = match conversation_of(st, body) {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let contact_id = conversation["contactId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(contact) = st.ghl_contacts.get(&contact_id).cloned() else {
        return error(400, "Contact not found");
    };
    let kind = text(body, "type").unwrap_or_default();
    let direction = match route {
        "outbound" => "outbound",
        _ => text(body, "direction").unwrap_or("outbound"),
    };
    if kind == "Call" {
        let party = if route == "outbound" { "to" } else { "from" };
        let phone = body
            .pointer(&format!("/call/{party}"))
            .and_then(Value::as_str);
        if phone.is_none() || phone != text(&contact, "phone") {
            return error(
                400,
                &format!("call.{party} must be the phone number of the conversation's contact"),
            );
        }
    }
    let (message_type, type_number) = message_type(kind);
    let id = st.ghl_id('m');
    let date = text(body, "date").map(str::to_string).unwrap_or_else(now);
    let mut message = json!({"id": id, "type": type_number, "messageType": message_type,
        "locationId": conversation["locationId"], "contactId": contact_id,
        "conversationId": conversation["id"], "dateAdded": date, "direction": direction,
        "status": "delivered", "contentType": "text/plain", "attachments": body.get("attachments").cloned().unwrap_or(json!([])),
        "source": "api", "conversationProviderId": body["conversationProviderId"],
        "altId": body.get("altId")});
    if let Some(m) = text(body, "message") {
        message["body"] = Value::from(m);
    }
    if let Some(call) = body.get("call") {
        message["meta"] = json!({"callStatus": call.get("status")});
        message["call"] = call.clone();
    }
    st.ghl_messages.push(message);
    Reply::json(
        200,
        json!({"success": true, "conversationId": conversation["id"], "messageId": id,
            "message": "Message added successfully", "contactId": contact_id, "dateAdded": date}),
    )
}

pub fn messages(st: &State, conversation_id: &str) -> Reply {
    if !st.ghl_conversations.contains_key(conversation_id) {
        return error(400, "Conversation not found");
    }
    let all: Vec<&Value> = st
        .ghl_messages
        .iter()
        .rev()
        .filter(|m| m["conversationId"] == conversation_id)
        .collect();
    let page: Vec<Value> = all
        .iter()
        .take(20)
        .map(|m| {
            let mut m = (*m).clone();
            // The API's message has no `altId` or `call`: only what GetMessageResponseDto lists.
            if let Value::Object(o) = &mut m {
                o.remove("altId");
                o.remove("call");
            }
            m
        })
        .collect();
    Reply::json(
        200,
        json!({"lastMessageId": page.last().map(|m| m["id"].clone()).unwrap_or(json!("")),
            "nextPage": all.len() > 20, "messages": page}),
    )
}

pub fn update_status(st: &mut State, message_id: &str, body: &Value) -> Reply {
    if !st.ghl_status_updates_allowed {
        return Reply::json(
            401,
            json!({"statusCode": 401, "message": "Only the conversation provider's app can update the status of its messages", "error": "Unauthorized"}),
        );
    }
    let status = text(body, "status").unwrap_or_default().to_string();
    match st.ghl_messages.iter_mut().find(|m| m["id"] == message_id) {
        Some(m) => {
            m["status"] = Value::from(status.clone());
            Reply::json(
                200,
                json!({"conversationId": m["conversationId"], "messageId": message_id, "status": status}),
            )
        }
        None => error(400, "Message not found"),
    }
}
