//! GHL webhook classification (SPEC §3, research/ghl.md §5 and §8).
//!
//! Marketplace webhooks are flat JSON with a `type`; several families (invoices,
//! products, custom objects, associations) arrive without one and are recognised by shape.
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::dedupe::{self, DedupeKey};
use super::event::PersonRef;
use super::json::{first_id, first_text, id_str, text};
use super::phone::to_e164;
use super::{Classified, EntityType};

/// Replay window of a signed delivery's `timestamp` (SPEC §4.8). GHL retries a 429 up
/// to 6 times about 10 minutes apart with the same signed body, so a 5-minute window
/// would refuse GHL's own retries (and a 401 is final for GHL). Two hours covers the
/// retry horizon (~70 min plus jitter); the `webhookId` dedupe makes a replay harmless.
pub const REPLAY_WINDOW_SECONDS: i64 = 2 * 3600;
/// How far in the future a timestamp may be (clock skew), not a retry horizon.
pub const FUTURE_SKEW_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GhlError {
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("`type` must be a string")]
    TypeNotString,
    #[error("workflow webhook needs `contact_id`")]
    WorkflowWithoutContact,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhlWebhook {
    pub classified: Classified,
    pub dedupe_key: DedupeKey,
}

/// Type names (or their prefixes) to entity types, most specific first.
const TYPE_PREFIXES: &[(&str, EntityType)] = &[
    ("ContactTagUpdate", EntityType::Tag),
    ("Contact", EntityType::Contact),
    ("InboundMessage", EntityType::Message),
    ("OutboundMessage", EntityType::Message),
    ("ProviderOutboundMessage", EntityType::Message),
    ("SMS", EntityType::Message),
    ("Email", EntityType::Message),
    ("ConversationUnread", EntityType::Conversation),
    ("Conversation", EntityType::Conversation),
    ("Note", EntityType::Note),
    ("Task", EntityType::Task),
    ("Appointment", EntityType::Appointment),
    ("Opportunity", EntityType::Opportunity),
    ("CampaignStatus", EntityType::Campaign),
    ("Invoice", EntityType::Invoice),
    ("Order", EntityType::Order),
    ("Product", EntityType::Product),
    ("Price", EntityType::Price),
    ("ObjectSchema", EntityType::ObjectSchema),
    ("Record", EntityType::Record),
    ("Association", EntityType::Association),
    ("Relation", EntityType::Relation),
    ("Location", EntityType::Location),
    ("User", EntityType::User),
    ("LCEmailStats", EntityType::Email),
    ("INSTALL", EntityType::App),
    ("UNINSTALL", EntityType::App),
    ("PLAN_CHANGE", EntityType::App),
    ("App", EntityType::App),
];

/// Classify a signed marketplace webhook.
pub fn classify(
    payload: &Value,
    raw: &[u8],
    default_country: &str,
) -> Result<GhlWebhook, GhlError> {
    if !payload.is_object() {
        return Err(GhlError::NotAnObject);
    }
    if payload
        .get("type")
        .is_some_and(|t| !t.is_string() && !t.is_null())
    {
        return Err(GhlError::TypeNotString);
    }
    let declared = text(payload.get("type"));
    let entity_type = declared
        .and_then(entity_for_type)
        .unwrap_or_else(|| entity_from_shape(payload));
    let event_type = match declared {
        Some(t) if entity_for_type(t).is_some() => t.to_string(),
        _ => entity_type.as_str().to_string(),
    };
    let entity_id = entity_id(entity_type, payload);
    let webhook_id = text(payload.get("webhookId"));
    let dedupe_key = match (webhook_id, timestamp(payload).flatten()) {
        // Nothing tells one delivery from a replay of it but its bytes: a signed body
        // seen before is a duplicate, however long ago (no replay window applies).
        (None, None) => dedupe::ghl_signed_body(&event_type, entity_id.as_deref(), raw),
        _ => dedupe::ghl(webhook_id, &event_type, entity_id.as_deref(), raw),
    };
    let classified = Classified {
        person: person(entity_type, payload, default_country),
        location_id: location_id(payload),
        occurred_at: provider_time(payload),
        event_type,
        entity_type,
        entity_id,
    };
    Ok(GhlWebhook {
        classified,
        dedupe_key,
    })
}

/// Classify an unsigned workflow "Webhook" action body (`contact_id`, `location{}`, ...).
pub fn classify_workflow(
    payload: &Value,
    raw: &[u8],
    default_country: &str,
) -> Result<GhlWebhook, GhlError> {
    if !payload.is_object() {
        return Err(GhlError::NotAnObject);
    }
    let contact_id = first_id(payload, &["contact_id", "contactId", "id"])
        .ok_or(GhlError::WorkflowWithoutContact)?;
    let event_type = payload
        .get("customData")
        .and_then(|c| first_text(c, &["event", "type"]))
        .unwrap_or("WorkflowWebhook")
        .to_string();
    let dedupe_key = dedupe::ghl(None, &event_type, Some(&contact_id), raw);
    let classified = Classified {
        person: PersonRef {
            phone: phone_of(payload, default_country),
            ghl_contact_id: Some(contact_id.clone()),
            ..Default::default()
        },
        location_id: payload
            .get("location")
            .and_then(|l| id_str(l.get("id")))
            .or_else(|| location_id(payload)),
        occurred_at: None,
        // "Tag added/removed" automations carry the contact's tags: list sync input.
        entity_type: if event_type.contains("Tag") {
            EntityType::Tag
        } else {
            EntityType::Contact
        },
        event_type,
        entity_id: Some(contact_id),
    };
    Ok(GhlWebhook {
        classified,
        dedupe_key,
    })
}

fn entity_for_type(declared: &str) -> Option<EntityType> {
    TYPE_PREFIXES
        .iter()
        .find(|(prefix, _)| declared.starts_with(prefix))
        .map(|(_, e)| *e)
}

fn has(payload: &Value, key: &str) -> bool {
    payload.get(key).is_some_and(|v| !v.is_null())
}

fn entity_from_shape(p: &Value) -> EntityType {
    if has(p, "invoiceNumber") {
        EntityType::Invoice
    } else if has(p, "productType") {
        EntityType::Product
    } else if has(p, "fulfillmentStatus") || has(p, "contactSnapshot") {
        EntityType::Order
    } else if has(p, "associationId") && has(p, "firstRecordId") {
        EntityType::Relation
    } else if has(p, "associationType") || (has(p, "firstObjectKey") && has(p, "secondObjectKey")) {
        EntityType::Association
    } else if has(p, "primaryDisplayProperty") || has(p, "searchableProperties") {
        EntityType::ObjectSchema
    } else if has(p, "properties") && (has(p, "owners") || has(p, "followers")) {
        EntityType::Record
    } else if has(p, "appointment") {
        EntityType::Appointment
    } else if has(p, "messageType") || has(p, "messageId") {
        EntityType::Message
    } else if has(p, "webhookPayload") {
        EntityType::Email
    } else if has(p, "role") && has(p, "permissions") {
        EntityType::User
    } else if has(p, "appId") {
        EntityType::App
    } else if has(p, "id") && (has(p, "phone") || has(p, "email") || has(p, "firstName")) {
        EntityType::Contact
    } else {
        EntityType::Unknown
    }
}

fn entity_id(entity_type: EntityType, p: &Value) -> Option<String> {
    match entity_type {
        EntityType::Appointment => p
            .get("appointment")
            .and_then(|a| id_str(a.get("id")))
            .or_else(|| id_str(p.get("id"))),
        EntityType::Message => {
            first_id(p, &["messageId", "emailMessageId", "id", "conversationId"])
        }
        EntityType::Email => p.get("webhookPayload").and_then(|w| id_str(w.get("id"))),
        EntityType::App => first_id(p, &["locationId", "companyId", "appId"]),
        _ => first_id(p, &["id", "_id"]),
    }
}

/// The GHL contact the event is about, and its phone when the body carries one.
fn person(entity_type: EntityType, p: &Value, default_country: &str) -> PersonRef {
    let id = match entity_type {
        EntityType::Contact | EntityType::Tag => id_str(p.get("id")),
        EntityType::Appointment => p
            .get("appointment")
            .and_then(|a| id_str(a.get("contactId"))),
        EntityType::Invoice => p.get("contactDetails").and_then(|c| id_str(c.get("id"))),
        _ => id_str(p.get("contactId")),
    };
    let phone = match entity_type {
        EntityType::Contact | EntityType::Tag => phone_of(p, default_country),
        _ => None,
    };
    PersonRef {
        phone,
        ghl_contact_id: id,
        ..Default::default()
    }
}

fn phone_of(p: &Value, default_country: &str) -> Option<String> {
    text(p.get("phone")).and_then(|raw| to_e164(raw, default_country))
}

fn location_id(p: &Value) -> Option<String> {
    if let Some(id) = id_str(p.get("locationId")) {
        return Some(id);
    }
    (text(p.get("altType")) == Some("location"))
        .then(|| id_str(p.get("altId")))
        .flatten()
}

/// The body's `timestamp`: ISO-8601 text, or epoch seconds / milliseconds.
/// `None` when absent; `Some(None)` when present but unreadable.
pub fn timestamp(payload: &Value) -> Option<Option<DateTime<Utc>>> {
    let value = payload.get("timestamp")?;
    Some(match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => n.as_i64().and_then(|n| {
            if n > 100_000_000_000 {
                Utc.timestamp_millis_opt(n).single()
            } else {
                Utc.timestamp_opt(n, 0).single()
            }
        }),
        _ => None,
    })
}

/// When GHL says the change happened: the delivery's `timestamp`, else the entity's
/// `dateUpdated` (API contact objects carry it; webhook examples do not).
pub fn provider_time(payload: &Value) -> Option<DateTime<Utc>> {
    timestamp(payload).flatten().or_else(|| {
        text(payload.get("dateUpdated"))
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
            .map(|t| t.with_timezone(&Utc))
    })
}

/// Whether a delivery's timestamp is inside the replay window before `now` (and not
/// implausibly far in the future).
pub fn is_fresh(timestamp: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let age = (now - timestamp).num_seconds();
    (-FUTURE_SKEW_SECONDS..=REPLAY_WINDOW_SECONDS).contains(&age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webhook_id_is_the_dedupe_key() {
        let body =
            json!({"type": "ContactUpdate", "id": "c1", "locationId": "l1", "webhookId": "w-9"});
        let w = classify(&body, b"{}", "US").unwrap();
        assert_eq!(w.dedupe_key, DedupeKey::Id("ghl:webhook:w-9".into()));
        assert_eq!(w.classified.entity_type, EntityType::Contact);
        assert_eq!(
            w.classified.person.fallback_key().as_deref(),
            Some("ghl:c1")
        );
        assert_eq!(w.classified.location_id.as_deref(), Some("l1"));
    }

    #[test]
    fn tag_updates_are_about_the_contact() {
        let w = classify(
            &json!({"type": "ContactTagUpdate", "id": "c1", "tags": ["a"], "phone": "(202) 555-0177"}),
            b"x",
            "US",
        )
        .unwrap();
        assert_eq!(w.classified.person.phone.as_deref(), Some("+12025550177"));
        assert_eq!(w.classified.entity_type, EntityType::Tag);
        assert_eq!(w.classified.entity_id.as_deref(), Some("c1"));
    }

    #[test]
    fn workflow_bodies_key_on_contact_id() {
        let body =
            json!({"contact_id": "c7", "tags": "a,b", "location": {"id": "L"}, "customData": {}});
        let w = classify_workflow(&body, b"{}", "US").unwrap();
        assert_eq!(w.classified.entity_type, EntityType::Contact);
        assert_eq!(w.classified.entity_id.as_deref(), Some("c7"));
        assert_eq!(w.classified.location_id.as_deref(), Some("L"));
        assert_eq!(w.classified.event_type, "WorkflowWebhook");
    }

    #[test]
    fn wrongly_typed_bodies_are_errors() {
        assert_eq!(
            classify(&json!({"type": 5}), b"", "US"),
            Err(GhlError::TypeNotString)
        );
        assert_eq!(classify(&json!([]), b"", "US"), Err(GhlError::NotAnObject));
        assert_eq!(
            classify_workflow(&json!({"tags": "a"}), b"", "US"),
            Err(GhlError::WorkflowWithoutContact)
        );
    }

    #[test]
    fn timestamps_in_text_and_epoch_forms() {
        let now = Utc::now();
        let iso = json!({"timestamp": now.to_rfc3339()});
        assert!(is_fresh(timestamp(&iso).unwrap().unwrap(), now));
        // GHL's sixth retry of a 429, ~70 minutes after the original: still accepted.
        let retried = json!({"timestamp": (now.timestamp_millis() - 75 * 60_000)});
        assert!(is_fresh(timestamp(&retried).unwrap().unwrap(), now));
        let old = json!({"timestamp": (now.timestamp_millis() - 3 * 3_600_000)});
        assert!(!is_fresh(timestamp(&old).unwrap().unwrap(), now));
        let future = json!({"timestamp": (now.timestamp_millis() + 600_000)});
        assert!(!is_fresh(timestamp(&future).unwrap().unwrap(), now));
        assert_eq!(timestamp(&json!({"timestamp": "yesterday"})), Some(None));
        assert_eq!(timestamp(&json!({})), None);
    }
}
