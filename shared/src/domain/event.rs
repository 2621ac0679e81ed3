use serde::Serialize;

/// Which provider a webhook came from; stored in `webhook_events.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Aloware,
    Ghl,
    Texting,
    /// An operator's manual sync request (a job in the webhook inbox).
    Admin,
    /// The opt-out registry's own job (the reply and GHL mirror of a request).
    Registry,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Aloware => "aloware",
            Source::Ghl => "ghl",
            Source::Texting => "texting",
            Source::Admin => "admin",
            Source::Registry => "registry",
        }
    }
}

/// What a webhook is about. SPEC §4 names the first ten; the rest cover the other
/// GHL marketplace events so every delivery is stored with a meaningful type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    Contact,
    Call,
    Transcription,
    Recording,
    Sms,
    Appointment,
    Tag,
    Message,
    Optout,
    Note,
    Task,
    Opportunity,
    Conversation,
    Campaign,
    Invoice,
    Order,
    Product,
    Price,
    Record,
    Association,
    Relation,
    ObjectSchema,
    Location,
    User,
    App,
    Email,
    /// An Aloware power-dialer list (manual list sync).
    List,
    Unknown,
}

impl EntityType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Contact => "contact",
            EntityType::Call => "call",
            EntityType::Transcription => "transcription",
            EntityType::Recording => "recording",
            EntityType::Sms => "sms",
            EntityType::Appointment => "appointment",
            EntityType::Tag => "tag",
            EntityType::Message => "message",
            EntityType::Optout => "optout",
            EntityType::Note => "note",
            EntityType::Task => "task",
            EntityType::Opportunity => "opportunity",
            EntityType::Conversation => "conversation",
            EntityType::Campaign => "campaign",
            EntityType::Invoice => "invoice",
            EntityType::Order => "order",
            EntityType::Product => "product",
            EntityType::Price => "price",
            EntityType::Record => "record",
            EntityType::Association => "association",
            EntityType::Relation => "relation",
            EntityType::ObjectSchema => "object_schema",
            EntityType::Location => "location",
            EntityType::User => "user",
            EntityType::App => "app",
            EntityType::Email => "email",
            EntityType::List => "list",
            EntityType::Unknown => "unknown",
        }
    }
}

/// Who an event is about, as far as its body says. SQS FIFO groups events by one key
/// per person so they apply in order whichever provider sent them (SPEC §5); the store
/// resolves the key (`adapters::event_store`) from these parts: an earlier event of the
/// same call, then the phone of a known contact mapping, then [`PersonRef::fallback_key`].
/// Phones are personal data: the key is stored, hashed for SQS, never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonRef {
    /// The person's phone in E.164, when the body carries a valid one.
    pub phone: Option<String>,
    pub ghl_contact_id: Option<String>,
    pub aloware_contact_id: Option<String>,
    /// Aloware communication id, for the events of one call (disposition, recording,
    /// summary): they share the group of the call's first stored event.
    pub call_id: Option<String>,
}

impl PersonRef {
    /// The key when nothing stored says better: the phone, else a provider id.
    pub fn fallback_key(&self) -> Option<String> {
        self.phone
            .clone()
            .or_else(|| self.ghl_contact_id.as_ref().map(|id| format!("ghl:{id}")))
            .or_else(|| {
                self.aloware_contact_id
                    .as_ref()
                    .map(|id| format!("aloware:{id}"))
            })
            .or_else(|| self.call_id.as_ref().map(|id| format!("aloware-call:{id}")))
    }
}

/// The result of classifying one webhook body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub event_type: String,
    pub entity_type: EntityType,
    pub entity_id: Option<String>,
    pub person: PersonRef,
    pub location_id: Option<String>,
    /// When the provider says the change happened (GHL `timestamp` / `dateUpdated`,
    /// Aloware `updated_at`, the texting message's time): the high-water mark orders an
    /// entity's events by it, our receive time only breaking ties (SPEC §5).
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Classified {
    /// The person key this body alone implies, or `source:entity:id` for events about
    /// no person (every stored row has a key, so every row has a message group).
    pub fn fallback_person_key(&self, source: Source) -> String {
        self.person.fallback_key().unwrap_or_else(|| {
            format!(
                "{}:{}:{}",
                source.as_str(),
                self.entity_type.as_str(),
                self.entity_id.as_deref().unwrap_or("-")
            )
        })
    }
}

/// Which inbox table an event lives in and which queue carries it (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Webhook,
    Texting,
    Broadcast,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Webhook => "webhook",
            EventKind::Texting => "texting",
            EventKind::Broadcast => "broadcast",
        }
    }
}

/// The high-water-mark key of an event (SPEC §5): events that carry an entity's whole
/// state (contacts, tag lists, a call's disposition) must never be overwritten by an
/// older one. Recordings and summaries add to a call and need no mark.
pub fn watermark_key(source: &str, entity_type: &str, entity_id: Option<&str>) -> Option<String> {
    let id = entity_id?;
    matches!(entity_type, "contact" | "tag" | "call")
        .then(|| format!("{source}:{entity_type}:{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_key_prefers_the_phone() {
        let p = PersonRef {
            phone: Some("+12025550177".into()),
            aloware_contact_id: Some("9".into()),
            ..Default::default()
        };
        assert_eq!(p.fallback_key().as_deref(), Some("+12025550177"));
        let p = PersonRef {
            aloware_contact_id: Some("9".into()),
            call_id: Some("7".into()),
            ..Default::default()
        };
        assert_eq!(p.fallback_key().as_deref(), Some("aloware:9"));
        assert_eq!(PersonRef::default().fallback_key(), None);
        let c = Classified {
            event_type: "X".into(),
            entity_type: EntityType::Note,
            entity_id: Some("n1".into()),
            person: PersonRef::default(),
            location_id: None,
            occurred_at: None,
        };
        assert_eq!(c.fallback_person_key(Source::Ghl), "ghl:note:n1");
    }

    #[test]
    fn watermarks_cover_whole_state_events_only() {
        assert_eq!(
            watermark_key("ghl", "contact", Some("c1")).as_deref(),
            Some("ghl:contact:c1")
        );
        assert!(watermark_key("aloware", "call", Some("7")).is_some());
        assert!(watermark_key("aloware", "recording", Some("7")).is_none());
        assert!(watermark_key("ghl", "contact", None).is_none());
    }
}
