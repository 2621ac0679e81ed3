//! The texting system's webhooks (SPEC §3): shapes vary, so one normaliser reads
//! `type|eventType|event`, the message under `message|data|root`, and the field aliases.
use serde_json::Value;

use super::dedupe::{self, DedupeKey};
use super::event::PersonRef;
use super::json::{first_id, first_text};
use super::phone::to_e164;
use super::{Classified, EntityType};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextingError {
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("missing event type (`type`, `eventType` or `event`)")]
    MissingEventType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One texting event in a single shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextingMessage {
    pub event_type: String,
    pub message_id: Option<String>,
    pub conversation_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub body: Option<String>,
    pub timestamp: Option<String>,
    pub direction: Option<Direction>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextingWebhook {
    pub classified: Classified,
    pub dedupe_key: DedupeKey,
    pub message: TextingMessage,
}

pub fn normalize(payload: &Value, default_country: &str) -> Result<TextingMessage, TextingError> {
    if !payload.is_object() {
        return Err(TextingError::NotAnObject);
    }
    let event_type = first_text(payload, &["type", "eventType", "event"])
        .ok_or(TextingError::MissingEventType)?
        .to_string();
    let message = ["message", "data", "root"]
        .iter()
        .find_map(|k| payload.get(*k).filter(|v| v.is_object()))
        .unwrap_or(payload);
    let read_id = |keys: &[&str]| first_id(message, keys).or_else(|| first_id(payload, keys));
    let read_text = |keys: &[&str]| {
        first_text(message, keys)
            .or_else(|| first_text(payload, keys))
            .map(str::to_string)
    };
    let phone = |keys: &[&str]| read_text(keys).map(|p| to_e164(&p, default_country).unwrap_or(p));
    let direction = read_text(&["direction"])
        .and_then(|d| match d.to_ascii_lowercase().as_str() {
            "inbound" | "incoming" | "in" => Some(Direction::Inbound),
            "outbound" | "outgoing" | "out" => Some(Direction::Outbound),
            _ => None,
        })
        .or_else(|| implied_direction(&event_type));
    Ok(TextingMessage {
        message_id: read_id(&["id", "messageId"]),
        conversation_id: read_id(&["conversationId"]),
        from: phone(&["from"]),
        to: phone(&["to"]),
        body: read_text(&["body", "text"]),
        timestamp: read_text(&["timestamp", "createdAt", "date"]),
        status: read_text(&["status"]),
        direction,
        event_type,
    })
}

fn implied_direction(event_type: &str) -> Option<Direction> {
    match event_type {
        "message.received" | "optout.stop" | "optout.help" => Some(Direction::Inbound),
        "message.sent" | "message.delivered" | "message.failed" => Some(Direction::Outbound),
        _ => None,
    }
}

fn entity_type(event_type: &str) -> EntityType {
    match event_type.split('.').next().unwrap_or_default() {
        "message" => EntityType::Sms,
        "optout" => EntityType::Optout,
        "conversation" => EntityType::Conversation,
        _ => EntityType::Unknown,
    }
}

pub fn classify(
    payload: &Value,
    raw: &[u8],
    default_country: &str,
) -> Result<TextingWebhook, TextingError> {
    let message = normalize(payload, default_country)?;
    let entity_type = entity_type(&message.event_type);
    let entity_id = match entity_type {
        EntityType::Conversation => message
            .conversation_id
            .clone()
            .or_else(|| message.message_id.clone()),
        _ => message.message_id.clone(),
    };
    // The external party: who texted us, or whom we texted.
    let party = match message.direction {
        Some(Direction::Outbound) => message.to.as_deref(),
        _ => message.from.as_deref(),
    };
    let phone = party.filter(|p| p.starts_with('+')).map(str::to_string);
    let dedupe_key = dedupe::texting(&message.event_type, entity_id.as_deref(), raw);
    let classified = Classified {
        event_type: message.event_type.clone(),
        entity_type,
        entity_id,
        person: PersonRef {
            phone,
            ..Default::default()
        },
        location_id: None,
        occurred_at: super::sms::parse_time(message.timestamp.as_deref()),
    };
    Ok(TextingWebhook {
        classified,
        dedupe_key,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_shapes_normalise_alike() {
        let nested = json!({"type": "message.received", "data": {"messageId": "m1", "from": "(202) 555-0177",
            "to": "+12025550142", "text": "hi", "createdAt": "2026-01-01T00:00:00Z", "conversationId": 5}});
        let flat = json!({"eventType": "message.received", "id": "m1", "from": "+12025550177",
            "to": "+12025550142", "body": "hi", "date": "2026-01-01T00:00:00Z", "conversationId": "5"});
        let a = normalize(&nested, "US").unwrap();
        let b = normalize(&flat, "US").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.direction, Some(Direction::Inbound));
        assert_eq!(a.from.as_deref(), Some("+12025550177"));
    }

    #[test]
    fn person_is_the_external_party() {
        let inbound = classify(&json!({"event": "message.received", "message": {"id": "1", "from": "+12025550177", "to": "+12025550142"}}), b"", "US").unwrap();
        assert_eq!(
            inbound.classified.person.phone.as_deref(),
            Some("+12025550177")
        );
        let outbound = classify(&json!({"event": "message.delivered", "message": {"id": "1", "from": "+12025550142", "to": "+12025550177"}}), b"", "US").unwrap();
        assert_eq!(
            outbound.classified.person.phone.as_deref(),
            Some("+12025550177")
        );
        assert_eq!(
            outbound.dedupe_key,
            DedupeKey::Id("texting:message.delivered:1".into())
        );
        assert_ne!(inbound.dedupe_key, outbound.dedupe_key);
    }

    #[test]
    fn entity_types_follow_the_event_family() {
        let c = |t: &str| {
            classify(
                &json!({"type": t, "id": "x", "conversationId": "c"}),
                b"",
                "US",
            )
            .unwrap()
            .classified
        };
        assert_eq!(c("optout.stop").entity_type, EntityType::Optout);
        assert_eq!(c("message.failed").entity_type, EntityType::Sms);
        assert_eq!(
            c("conversation.created").entity_type,
            EntityType::Conversation
        );
        assert_eq!(c("conversation.created").entity_id.as_deref(), Some("c"));
        assert_eq!(c("weird").entity_type, EntityType::Unknown);
    }

    #[test]
    fn missing_type_is_an_error() {
        assert_eq!(
            normalize(&json!({"id": 1}), "US"),
            Err(TextingError::MissingEventType)
        );
        assert_eq!(normalize(&json!("x"), "US"), Err(TextingError::NotAnObject));
    }
}
