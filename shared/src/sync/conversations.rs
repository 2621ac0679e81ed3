//! The contact's GHL conversation (GHL keeps one per contact), and Aloware calls
//! recorded in it when `GHL_CONVERSATION_PROVIDER_ID` is set (SPEC §6): inbound calls
//! through `POST /conversations/messages/inbound`, outbound through `.../outbound`, both
//! type `Call` with `call {to, from, status}`. One message per call: its id is kept in
//! `call_notes`, and a retried attempt adopts the message an earlier one wrote.
use serde_json::{json, Map, Value};

use super::{SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::sync_store::{self, CallMessageIntent};

/// Longer than the consumer's timeout: an attempt still running keeps its intent.
const MESSAGE_INTENT_LEASE: std::time::Duration = std::time::Duration::from_secs(300);
use crate::domain::call::CallFacts;
use crate::domain::json::text;
use crate::domain::phone::to_e164;
use crate::domain::sms::{ghl_call_status, parse_time};

/// The contact's conversation id: cached, else found, else created.
pub async fn conversation_for(deps: &SyncDeps, contact_id: &str) -> Result<String, SyncError> {
    if let Some(id) = sync_store::conversation_of(&deps.pool, contact_id).await? {
        return Ok(id);
    }
    let id = match deps.ghl.find_conversation(contact_id).await? {
        Some(id) => id,
        None => match deps.ghl.create_conversation(contact_id).await {
            Ok(id) => id,
            // Another writer created it a moment ago: GHL refuses a second one.
            Err(e) if e.status == Some(400) => {
                match deps.ghl.find_conversation(contact_id).await? {
                    Some(id) => id,
                    None => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        },
    };
    sync_store::save_conversation(&deps.pool, contact_id, &id).await?;
    Ok(id)
}

/// A message of the conversation nobody owns yet that `matches`: what an earlier
/// attempt wrote before it could record the id.
pub async fn unowned_message(
    deps: &SyncDeps,
    conversation_id: &str,
    matches: impl Fn(&Value) -> bool,
) -> Result<Option<String>, SyncError> {
    for message in deps.ghl.conversation_messages(conversation_id).await? {
        let Some(id) = message.get("id").and_then(Value::as_str) else {
            continue;
        };
        if matches(&message) && !sync_store::ghl_message_owned(&deps.pool, id).await? {
            return Ok(Some(id.to_string()));
        }
    }
    Ok(None)
}

/// What recording the call in the conversation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallRecord {
    /// No provider id configured: notes only.
    Off,
    Written(String),
    Adopted(String),
    /// Recorded by an earlier event of the call.
    Exists(String),
    /// Not recordable: GHL matches the call to the contact by the lead's number.
    NoPhone,
}

impl CallRecord {
    pub fn wrote(&self) -> bool {
        matches!(self, CallRecord::Written(_) | CallRecord::Adopted(_))
    }
}

/// Record the call once in the contact's conversation.
pub async fn record_call(
    deps: &SyncDeps,
    event: &EventRow,
    body: &Value,
    facts: &CallFacts,
    ghl_id: &str,
) -> Result<CallRecord, SyncError> {
    let Some(provider) = deps.conversation_provider_id.as_deref() else {
        return Ok(CallRecord::Off);
    };
    // The intent before the write, as for the call's note: a retry after a fault (the
    // answer lost, our database gone after GHL wrote) adopts what it finds.
    let resumed = match sync_store::take_call_message_intent(
        &deps.pool,
        &facts.call_id,
        event.id,
        MESSAGE_INTENT_LEASE,
    )
    .await?
    {
        CallMessageIntent::Written(id) => return Ok(CallRecord::Exists(id)),
        CallMessageIntent::Held => {
            return Err(SyncError::Waiting(
                "another event is recording this call in the conversation".into(),
            ))
        }
        CallMessageIntent::Mine { resumed } => resumed,
    };
    let phone = |v: Option<&Value>| text(v).and_then(|p| to_e164(p, &deps.default_country));
    let Some(lead) =
        phone(body.get("lead_number")).or_else(|| phone(body.pointer("/contact/phone_number")))
    else {
        return Ok(CallRecord::NoPhone);
    };
    let line = facts
        .line
        .as_deref()
        .and_then(|l| to_e164(l, &deps.default_country));
    let inbound = facts.direction.as_deref() == Some("Inbound");
    let (from, to) = if inbound {
        (Some(lead), line)
    } else {
        (line, Some(lead))
    };
    let mut call = Map::new();
    call.extend(from.map(|f| ("from".to_string(), Value::from(f))));
    call.extend(to.map(|t| ("to".to_string(), Value::from(t))));
    call.insert(
        "status".into(),
        Value::from(ghl_call_status(facts.status.as_deref(), facts.missed)),
    );
    let date = facts
        .started_at
        .as_deref()
        .and_then(|t| parse_time(Some(t.trim_end_matches(" UTC"))));
    let conversation_id = conversation_for(deps, ghl_id).await?;
    let direction = if inbound { "inbound" } else { "outbound" };
    if resumed {
        let adopted = unowned_message(deps, &conversation_id, |m| {
            m.get("messageType").and_then(Value::as_str) == Some("TYPE_CALL")
                && m.get("direction").and_then(Value::as_str) == Some(direction)
                && date.is_some()
                && parse_time(m.get("dateAdded").and_then(Value::as_str)) == date
        })
        .await?;
        if let Some(id) = adopted {
            sync_store::save_call_message(&deps.pool, &facts.call_id, &id).await?;
            return Ok(CallRecord::Adopted(id));
        }
    }
    let mut message = json!({"type": "Call", "conversationId": conversation_id,
        "conversationProviderId": provider, "altId": facts.call_id, "call": call});
    if let Some(date) = date {
        message["date"] = Value::from(date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    let id = if inbound {
        message["contactId"] = Value::from(ghl_id);
        message["direction"] = Value::from("inbound");
        deps.ghl.add_conversation_message(&message).await?
    } else {
        deps.ghl.add_outbound_call(&message).await?
    };
    sync_store::save_call_message(&deps.pool, &facts.call_id, &id).await?;
    Ok(CallRecord::Written(id))
}
