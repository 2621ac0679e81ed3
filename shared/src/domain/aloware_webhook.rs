//! Aloware webhook classification (SPEC §3, research/aloware.md §1).
//!
//! Aloware event names are unreliable (the Zapier path labels calls as SMS), so the
//! body's `type` (1 call, 2 SMS) and status fields decide first; names are hints.
use serde_json::{Map, Value};

use super::dedupe::{self, DedupeKey};
use super::event::PersonRef;
use super::json::{first_id, id_str, int, text};
use super::phone::to_e164;
use super::{Classified, EntityType};

const TYPE_CALL: i64 = 1;
const TYPE_SMS: i64 = 2;
const DISPOSITION_APPOINTMENT: i64 = 11;
const DISPOSITION_SMS_INVALID: i64 = 7;
const STATUS_SMS_INVALID: i64 = 19;

// One value per request, moved once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlowareWebhook {
    /// "Save and Test Webhook" sends `{"test_payload":true}`: answered, never stored.
    TestPing,
    Event {
        classified: Classified,
        dedupe_key: DedupeKey,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AlowareError {
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("missing string field `event`")]
    MissingEvent,
    #[error("missing object field `body`")]
    MissingBody,
}

pub fn classify(
    payload: &Value,
    raw: &[u8],
    default_country: &str,
) -> Result<AlowareWebhook, AlowareError> {
    let obj = payload.as_object().ok_or(AlowareError::NotAnObject)?;
    if obj.get("test_payload").and_then(Value::as_bool) == Some(true) {
        return Ok(AlowareWebhook::TestPing);
    }
    let (event, body) = envelope(obj)?;
    let entity_type = entity_type(&event, &body);
    if event == UNNAMED_EVENT && entity_type == EntityType::Unknown {
        return Err(AlowareError::MissingEvent);
    }
    let entity_id = entity_id(entity_type, &body);
    let dedupe_key = dedupe_key(entity_type, &event, entity_id.as_deref(), &body, raw);
    let classified = Classified {
        person: person(entity_type, entity_id.as_deref(), &body, default_country),
        occurred_at: super::sms::parse_time(text(body.get("updated_at"))),
        event_type: event,
        entity_type,
        entity_id,
        location_id: None,
    };
    Ok(AlowareWebhook::Event {
        classified,
        dedupe_key,
    })
}

/// An authenticated body that does not classify is still stored (Aloware never retries),
/// as entity `unknown` for an operator to look at (SPEC §4.9).
pub fn unclassifiable(payload: &Value, raw: &[u8]) -> (Classified, DedupeKey) {
    let event_type = text(payload.get("event"))
        .or_else(|| text(payload.get("Event")))
        .unwrap_or("unclassified")
        .to_string();
    let classified = Classified {
        event_type,
        entity_type: EntityType::Unknown,
        entity_id: None,
        person: PersonRef::default(),
        location_id: None,
        occurred_at: None,
    };
    (classified, dedupe::aloware_body("unknown", None, raw))
}

/// Event name recorded when a native envelope carries a body but no `event`
/// (seen in documented excerpts); the body alone then classifies it.
pub const UNNAMED_EVENT: &str = "unnamed";

/// The native `{event, body}` envelope, or a Zapier-style flat Title-Case body.
fn envelope(obj: &Map<String, Value>) -> Result<(String, Value), AlowareError> {
    if let Some(body) = obj.get("body") {
        let body = body
            .is_object()
            .then(|| body.clone())
            .ok_or(AlowareError::MissingBody)?;
        let event = match obj.get("event") {
            None | Some(Value::Null) => UNNAMED_EVENT.to_string(),
            Some(event) => text(Some(event))
                .ok_or(AlowareError::MissingEvent)?
                .to_string(),
        };
        return Ok((event, body));
    }
    if obj.contains_key("event") {
        return Err(AlowareError::MissingBody);
    }
    if let Some(event) = text(obj.get("Event")) {
        return Ok((
            event.to_string(),
            snake_case_keys(&Value::Object(obj.clone())),
        ));
    }
    Err(AlowareError::MissingEvent)
}

/// "Current Status 2" → "current_status2", "Contact Id" → "contact_id", recursively.
fn snake_case_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let mut key = k.trim().to_ascii_lowercase().replace(' ', "_");
                    if key.len() > 2
                        && key.as_bytes()[key.len() - 2] == b'_'
                        && key.ends_with(|c: char| c.is_ascii_digit())
                    {
                        key.remove(key.len() - 2);
                    }
                    (key, snake_case_keys(v))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn entity_type(event: &str, body: &Value) -> EntityType {
    let name = event.to_ascii_lowercase();
    // The summary body has no `id`; its call id is at `communication.id`.
    let has_object = |key: &str| body.get(key).is_some_and(Value::is_object);
    if has_object("communication") || has_object("transcription") || name.contains("transcription")
    {
        return EntityType::Transcription;
    }
    // Recording-Saved restates the call's disposition state; it must not dedupe against it.
    if name.contains("recording") {
        return EntityType::Recording;
    }
    match int(body.get("type")) {
        Some(TYPE_CALL) => return EntityType::Call,
        Some(TYPE_SMS) => return EntityType::Sms,
        _ => {}
    }
    let disposition = int(body.get("disposition_status2"));
    if disposition == Some(DISPOSITION_APPOINTMENT) {
        return EntityType::Appointment;
    }
    if disposition == Some(DISPOSITION_SMS_INVALID)
        || int(body.get("current_status2")) == Some(STATUS_SMS_INVALID)
    {
        return EntityType::Sms;
    }
    if name.contains("appointment") {
        return EntityType::Appointment;
    }
    if name.contains("sms") {
        return EntityType::Sms;
    }
    if name.contains("call") || has_call_fields(body) {
        return EntityType::Call;
    }
    if name.contains("contact") {
        return EntityType::Contact;
    }
    EntityType::Unknown
}

fn has_call_fields(body: &Value) -> bool {
    [
        "current_status2",
        "disposition_status2",
        "talk_time",
        "lead_number",
    ]
    .iter()
    .any(|k| body.get(*k).is_some())
}

fn entity_id(entity_type: EntityType, body: &Value) -> Option<String> {
    match entity_type {
        EntityType::Transcription => body
            .get("communication")
            .and_then(|c| id_str(c.get("id")))
            .or_else(|| {
                body.get("transcription")
                    .and_then(|t| id_str(t.get("communication_id")))
            }),
        EntityType::Contact => first_id(body, &["id", "contact_id"]),
        _ => id_str(body.get("id")),
    }
}

/// Disposition state of a communication: what `Call-Disposed` repeats. Both status
/// forms count: Zapier's pair shows the text changing while the number stays.
fn disposition_state(body: &Value) -> String {
    let number = id_str(body.get("disposition_status2")).unwrap_or_else(|| "-".into());
    let status = text(body.get("disposition_status"))
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "-".into());
    let disposition = id_str(body.get("call_disposition_id"))
        .or_else(|| text(body.get("call_disposition")).map(str::to_string))
        .unwrap_or_else(|| "-".into());
    format!("{number}:{status}:{disposition}")
}

fn dedupe_key(
    entity_type: EntityType,
    event: &str,
    id: Option<&str>,
    body: &Value,
    raw: &[u8],
) -> DedupeKey {
    match (entity_type, id) {
        (EntityType::Call, Some(id)) => dedupe::aloware_call(id, &disposition_state(body)),
        (EntityType::Sms, Some(id)) => {
            dedupe::aloware_other("sms", Some(id), &disposition_state(body))
        }
        (EntityType::Recording, Some(_)) => {
            let url = text(body.get("direct_recording_url")).unwrap_or("");
            dedupe::aloware_other("recording", id, &dedupe::body_hash(url.as_bytes()))
        }
        (EntityType::Transcription, Some(_)) => {
            let transcription = body
                .get("transcription")
                .and_then(|t| first_id(t, &["transcription_id", "id"]));
            let discriminator = transcription.unwrap_or_else(|| dedupe::body_hash(raw));
            dedupe::aloware_other("transcription", id, &format!("{event}:{discriminator}"))
        }
        _ => dedupe::aloware_body(entity_type.as_str(), id, raw),
    }
}

/// Who the event is about: the lead's phone, the Aloware contact, and for the events of
/// one call (init, disposition, recording, summary) the call itself.
fn person(
    entity_type: EntityType,
    entity_id: Option<&str>,
    body: &Value,
    default_country: &str,
) -> PersonRef {
    let contact = body.get("contact");
    let aloware_contact_id = match entity_type {
        EntityType::Contact => first_id(body, &["id", "contact_id"]),
        _ => id_str(body.get("contact_id")).or_else(|| contact.and_then(|c| id_str(c.get("id")))),
    };
    let phone = [
        body.get("lead_number"),
        body.get("phone_number"),
        contact.and_then(|c| c.get("phone_number")),
    ]
    .into_iter()
    .find_map(|v| text(v).and_then(|p| to_e164(p, default_country)));
    let call_id = matches!(
        entity_type,
        EntityType::Call | EntityType::Recording | EntityType::Transcription
    )
    .then(|| entity_id.map(str::to_string))
    .flatten();
    PersonRef {
        phone,
        ghl_contact_id: None,
        aloware_contact_id,
        call_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> (Classified, DedupeKey) {
        let raw = serde_json::to_vec(&v).unwrap();
        match classify(&v, &raw, "US").unwrap() {
            AlowareWebhook::Event {
                classified,
                dedupe_key,
            } => (classified, dedupe_key),
            AlowareWebhook::TestPing => panic!("not an event"),
        }
    }

    #[test]
    fn test_ping_is_recognised() {
        assert_eq!(
            classify(&json!({"test_payload": true}), b"", "US"),
            Ok(AlowareWebhook::TestPing)
        );
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        assert_eq!(
            classify(&json!([1]), b"", "US"),
            Err(AlowareError::NotAnObject)
        );
        assert_eq!(
            classify(&json!({"body": {}}), b"", "US"),
            Err(AlowareError::MissingEvent)
        );
        assert_eq!(
            classify(&json!({"event": 5, "body": {}}), b"", "US"),
            Err(AlowareError::MissingEvent)
        );
        assert_eq!(
            classify(&json!({"event": "X"}), b"", "US"),
            Err(AlowareError::MissingBody)
        );
    }

    #[test]
    fn a_body_without_event_name_is_classified_by_shape() {
        let (c, _) =
            event(json!({"body": {"summary": "s", "transcription": {"communication_id": 373640}}}));
        assert_eq!(c.event_type, UNNAMED_EVENT);
        assert_eq!(c.entity_type, EntityType::Transcription);
        assert_eq!(c.entity_id.as_deref(), Some("373640"));
    }

    #[test]
    fn type_field_beats_the_event_name() {
        let (c, _) = event(
            json!({"event": "OutboundSMS-DispositionCompleted", "body": {"id": 1, "type": 1}}),
        );
        assert_eq!(c.entity_type, EntityType::Call);
        let (c, _) = event(json!({"event": "OutboundPhoneCall", "body": {"id": "1", "type": "2"}}));
        assert_eq!(c.entity_type, EntityType::Sms);
    }

    #[test]
    fn string_and_number_ids_give_the_same_keys() {
        let (a, ka) = event(json!({"event": "OutboundPhoneCall-DispositionCompleted",
            "body": {"id": "54363660", "type": "1", "disposition_status2": "4", "contact_id": "6896898"}}));
        let (b, kb) = event(json!({"event": "OutboundPhoneCall-DispositionCompleted",
            "body": {"id": 54363660, "type": 1, "disposition_status2": 4, "contact_id": 6896898}}));
        assert_eq!(a, b);
        assert_eq!(ka, kb);
        assert_eq!(a.person.aloware_contact_id.as_deref(), Some("6896898"));
        assert_eq!(a.person.call_id.as_deref(), Some("54363660"));
    }

    #[test]
    fn call_disposed_repeating_a_disposition_is_a_duplicate() {
        let completed = json!({"event": "OutboundPhoneCall-DispositionCompleted",
            "body": {"id": 7, "disposition_status2": 4, "call_disposition": "No Answer", "talk_time": 63}});
        let repeated = json!({"event": "Call-Disposed",
            "body": {"id": 7, "disposition_status2": 4, "call_disposition": "No Answer", "talk_time": 63, "updated_at": "later"}});
        let changed = json!({"event": "Call-Disposed",
            "body": {"id": 7, "disposition_status2": 4, "call_disposition": "Interested", "talk_time": 63}});
        assert_eq!(event(completed.clone()).1, event(repeated).1);
        assert_ne!(event(completed).1, event(changed).1);
    }

    #[test]
    fn recording_and_summary_do_not_collide_with_the_disposition() {
        let disposition = event(json!({"event": "OutboundPhoneCall-DispositionCompleted",
            "body": {"id": 7, "disposition_status2": 4}}));
        let recording = event(json!({"event": "Recording-Saved",
            "body": {"id": 7, "disposition_status2": 4, "direct_recording_url": "https://x/1"}}));
        let summary = event(json!({"event": "transcription.call.summarized",
            "body": {"communication": {"id": 7}, "summary": "s", "transcription": {"id": 1}}}));
        assert_eq!(recording.0.entity_type, EntityType::Recording);
        assert_eq!(summary.0.entity_type, EntityType::Transcription);
        assert_eq!(summary.0.entity_id.as_deref(), Some("7"));
        assert_ne!(disposition.1, recording.1);
        assert_ne!(disposition.1, summary.1);
    }

    #[test]
    fn the_person_is_the_lead_phone_and_the_call() {
        let (c, _) = event(
            json!({"event": "InboundPhoneCall", "body": {"id": 9, "lead_number": "(202) 555-0177"}}),
        );
        assert_eq!(c.person.phone.as_deref(), Some("+12025550177"));
        assert_eq!(c.person.fallback_key().as_deref(), Some("+12025550177"));
    }

    #[test]
    fn contact_events_match_case_insensitively() {
        let (c, _) = event(
            json!({"event": "Contact-Created", "body": {"id": 155, "phone_number": "+12025550177"}}),
        );
        assert_eq!(c.entity_type, EntityType::Contact);
        assert_eq!(c.entity_id.as_deref(), Some("155"));
        assert_eq!(c.person.aloware_contact_id.as_deref(), Some("155"));
        assert_eq!(c.person.phone.as_deref(), Some("+12025550177"));
        assert_eq!(c.person.call_id, None);
        let (c, _) = event(json!({"event": "contactupdated", "body": {"id": "155"}}));
        assert_eq!(c.entity_type, EntityType::Contact);
    }

    #[test]
    fn appointments_by_status_or_name() {
        let (c, _) =
            event(json!({"event": "Whatever", "body": {"id": 3, "disposition_status2": 11}}));
        assert_eq!(c.entity_type, EntityType::Appointment);
        let (c, _) = event(json!({"event": "OutboundAppointment", "body": {"id": 3}}));
        assert_eq!(c.entity_type, EntityType::Appointment);
    }
}
