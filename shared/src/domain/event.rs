use serde::Serialize;

/// Which provider a webhook came from; stored in `webhook_events.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Aloware,
    Ghl,
    Texting,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Aloware => "aloware",
            Source::Ghl => "ghl",
            Source::Texting => "texting",
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
            EntityType::Unknown => "unknown",
        }
    }
}

/// The result of classifying one webhook body. `person_key` orders events about one
/// person (SQS message group); it may be a phone number, so it is never logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub event_type: String,
    pub entity_type: EntityType,
    pub entity_id: Option<String>,
    pub person_key: Option<String>,
    pub location_id: Option<String>,
}
