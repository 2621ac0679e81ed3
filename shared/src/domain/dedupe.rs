//! Dedupe keys (SPEC §4). A provider id (GHL `webhookId`, an Aloware call's id and
//! disposition state, a texting message id) identifies one delivery forever. A body hash
//! does not: GHL contact bodies carry no update time, so A → B → A repeats the first body
//! byte for byte. A body-hash delivery is therefore a duplicate only when it repeats the
//! most recent stored delivery of the same entity and type.
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupeKey {
    /// Unique for ever.
    Id(String),
    /// Duplicate only of the latest delivery stored for `entity` (type + id).
    Body { entity: String, hash: String },
}

impl DedupeKey {
    /// The text stored in the `dedupe_key` column.
    pub fn stored(&self) -> String {
        match self {
            DedupeKey::Id(key) => key.clone(),
            DedupeKey::Body { entity, hash } => format!("{entity}#{hash}"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            DedupeKey::Id(_) => "id",
            DedupeKey::Body { .. } => "body",
        }
    }
}

/// Hex SHA-256 of the raw body, for keys of events that carry no delivery id.
pub fn body_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// GHL: the `webhookId` when present, else the body against the entity's latest delivery.
pub fn ghl(
    webhook_id: Option<&str>,
    event_type: &str,
    entity_id: Option<&str>,
    raw: &[u8],
) -> DedupeKey {
    match webhook_id {
        Some(id) => DedupeKey::Id(format!("ghl:webhook:{id}")),
        None => DedupeKey::Body {
            entity: format!("ghl:{event_type}:{}", entity_id.unwrap_or("-")),
            hash: body_hash(raw),
        },
    }
}

/// A signed GHL body with neither `webhookId` nor a readable `timestamp`: nothing but
/// its bytes tells a replay from a new delivery, so the body hash is its key for ever.
pub fn ghl_signed_body(event_type: &str, entity_id: Option<&str>, raw: &[u8]) -> DedupeKey {
    DedupeKey::Id(format!(
        "ghl:signed-body:{event_type}:{}:{}",
        entity_id.unwrap_or("-"),
        body_hash(raw)
    ))
}

/// Aloware call events: communication id + disposition state, so `Call-Disposed`
/// restating a disposition collides with the disposition event it repeats.
pub fn aloware_call(communication_id: &str, disposition_state: &str) -> DedupeKey {
    DedupeKey::Id(format!(
        "aloware:call:{communication_id}:{disposition_state}"
    ))
}

/// Other Aloware events with a provider-side discriminator (SMS state, recording URL,
/// transcription id): unique for ever.
pub fn aloware_other(entity_type: &str, entity_id: Option<&str>, discriminator: &str) -> DedupeKey {
    DedupeKey::Id(format!(
        "aloware:{entity_type}:{}:{discriminator}",
        entity_id.unwrap_or("-")
    ))
}

/// Aloware events known only by their body (contacts): against the latest delivery.
pub fn aloware_body(entity_type: &str, entity_id: Option<&str>, raw: &[u8]) -> DedupeKey {
    DedupeKey::Body {
        entity: format!("aloware:{entity_type}:{}", entity_id.unwrap_or("-")),
        hash: body_hash(raw),
    }
}

/// Texting: event type + message id; the body against the latest delivery otherwise.
pub fn texting(event_type: &str, message_id: Option<&str>, raw: &[u8]) -> DedupeKey {
    match message_id {
        Some(id) => DedupeKey::Id(format!("texting:{event_type}:{id}")),
        None => DedupeKey::Body {
            entity: format!("texting:{event_type}"),
            hash: body_hash(raw),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghl_prefers_webhook_id() {
        assert_eq!(
            ghl(Some("w1"), "ContactUpdate", Some("c1"), b"{}"),
            DedupeKey::Id("ghl:webhook:w1".into())
        );
        let a = ghl(None, "ContactUpdate", Some("c1"), b"{\"a\":1}");
        let b = ghl(None, "ContactUpdate", Some("c1"), b"{\"a\":2}");
        assert_ne!(a, b, "different bodies are different deliveries");
        let DedupeKey::Body { entity, .. } = &a else {
            panic!("body key expected")
        };
        assert_eq!(entity, "ghl:ContactUpdate:c1");
        assert!(a.stored().starts_with("ghl:ContactUpdate:c1#"));
        assert_eq!(a.kind(), "body");
    }

    #[test]
    fn texting_falls_back_to_the_body() {
        assert_eq!(
            texting("message.received", Some("m1"), b"x"),
            DedupeKey::Id("texting:message.received:m1".into())
        );
        assert_ne!(
            texting("message.received", None, b"x"),
            texting("message.received", None, b"y")
        );
    }
}
