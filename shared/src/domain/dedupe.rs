//! Dedupe keys (SPEC §4): one stored row per distinct delivery.
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the raw body, for keys of events that carry no delivery id.
pub fn body_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// GHL: the `webhookId` when present, else type + entity id + body hash.
pub fn ghl(
    webhook_id: Option<&str>,
    event_type: &str,
    entity_id: Option<&str>,
    raw: &[u8],
) -> String {
    match webhook_id {
        Some(id) => format!("ghl:webhook:{id}"),
        None => format!(
            "ghl:{event_type}:{}:{}",
            entity_id.unwrap_or("-"),
            body_hash(raw)
        ),
    }
}

/// Aloware call events: communication id + disposition state, so `Call-Disposed`
/// restating a disposition collides with the disposition event it repeats.
pub fn aloware_call(communication_id: &str, disposition_state: &str) -> String {
    format!("aloware:call:{communication_id}:{disposition_state}")
}

/// Other Aloware events: entity type + id + a discriminator of what changed (the body
/// hash when nothing better is known).
pub fn aloware_other(entity_type: &str, entity_id: Option<&str>, discriminator: &str) -> String {
    format!(
        "aloware:{entity_type}:{}:{discriminator}",
        entity_id.unwrap_or("-")
    )
}

/// Texting: event type + message id (body hash when the event has no id).
pub fn texting(event_type: &str, message_id: Option<&str>, raw: &[u8]) -> String {
    match message_id {
        Some(id) => format!("texting:{event_type}:{id}"),
        None => format!("texting:{event_type}:body:{}", body_hash(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghl_prefers_webhook_id() {
        assert_eq!(
            ghl(Some("w1"), "ContactUpdate", Some("c1"), b"{}"),
            "ghl:webhook:w1"
        );
        let a = ghl(None, "ContactUpdate", Some("c1"), b"{\"a\":1}");
        let b = ghl(None, "ContactUpdate", Some("c1"), b"{\"a\":2}");
        assert_ne!(
            a, b,
            "different bodies without webhookId are different deliveries"
        );
        assert!(a.starts_with("ghl:ContactUpdate:c1:"));
    }

    #[test]
    fn texting_falls_back_to_body_hash() {
        assert_eq!(
            texting("message.received", Some("m1"), b"x"),
            "texting:message.received:m1"
        );
        assert_ne!(
            texting("message.received", None, b"x"),
            texting("message.received", None, b"y")
        );
    }
}
