//! Verity broadcast events and analytics (SPEC §13), pure: the event body, its dedupe
//! key, the figures of one broadcast and the GHL custom-object record they become.
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::dedupe::DedupeKey;
use super::event::{Classified, EntityType, PersonRef};

/// The GHL custom object the figures are kept in.
pub const GHL_OBJECT_KEY: &str = "custom_objects.broadcasts";
/// The property that identifies a broadcast's record.
pub const GHL_ID_PROPERTY: &str = "broadcast_id";
/// A broadcast id longer than this is not Verity's (ids are uuids / cuids).
const MAX_ID_LEN: usize = 128;

/// What Verity says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastEventType {
    AnalyticsUpdated,
    BroadcastCompleted,
}

impl BroadcastEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastEventType::AnalyticsUpdated => "analytics_updated",
            BroadcastEventType::BroadcastCompleted => "broadcast_completed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "analytics_updated" => Some(BroadcastEventType::AnalyticsUpdated),
            "broadcast_completed" => Some(BroadcastEventType::BroadcastCompleted),
            _ => None,
        }
    }
}

/// A readable broadcast event: what to store, and whether to hold it for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastWebhook {
    pub classified: Classified,
    pub dedupe_key: DedupeKey,
    /// An event type this version does not know: stored quarantined, not guessed at.
    pub quarantine: Option<String>,
}

/// Read `{broadcastId, eventType, timestamp?}`. `delivery` makes the dedupe key of an
/// event without a timestamp unique: such events are never duplicates of each other
/// (the original collapsed every one of them into the first), and coalescing makes a
/// repeat cheap instead.
pub fn classify(payload: &Value, delivery: &str) -> Result<BroadcastWebhook, String> {
    let id = match payload.get("broadcastId") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        Some(Value::Number(_)) => return Err("broadcastId must be a string".into()),
        _ => return Err("broadcastId is required".into()),
    };
    if id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(format!(
            "broadcastId must be at most {MAX_ID_LEN} printable characters"
        ));
    }
    let event_type = match payload.get("eventType") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return Err("eventType is required".into()),
    };
    let timestamp = match payload.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err("timestamp must be a string".into()),
    };
    let known = BroadcastEventType::parse(event_type);
    let dedupe_key = DedupeKey::Id(match timestamp {
        Some(ts) => format!("broadcast:{id}:{event_type}:{ts}"),
        None => format!("broadcast:{id}:{event_type}:delivery:{delivery}"),
    });
    Ok(BroadcastWebhook {
        classified: classified(id, event_type),
        dedupe_key,
        quarantine: known
            .is_none()
            .then(|| format!("unknown broadcast eventType {event_type:?}")),
    })
}

/// The stored shape of a broadcast event (one message group per broadcast).
pub fn classified(broadcast_id: &str, event_type: &str) -> Classified {
    Classified {
        event_type: event_type.to_string(),
        entity_type: EntityType::Unknown,
        entity_id: Some(broadcast_id.to_string()),
        person: PersonRef::default(),
        location_id: None,
        occurred_at: None,
    }
}

/// The message group of a broadcast's events.
pub fn group_key(broadcast_id: &str) -> String {
    format!("broadcast:{broadcast_id}")
}

/// The dedupe key of the re-computation a GHL appointment asks for: one per
/// (broadcast, appointment), however often GHL re-sends the appointment.
pub fn appointment_dedupe_key(broadcast_id: &str, appointment_id: &str) -> DedupeKey {
    DedupeKey::Id(format!(
        "broadcast:{broadcast_id}:appointment:{appointment_id}"
    ))
}

/// SMS or email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("email") {
            Channel::Email
        } else {
            Channel::Sms
        }
    }

    /// The label in the GHL record (as the original wrote it).
    pub fn label(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::Email => "Email",
        }
    }
}

/// Raw counts of one broadcast, as read from Verity's database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub recipients: i64,
    pub delivered: i64,
    pub failed: i64,
    pub bounced: i64,
    pub pending: i64,
    pub responses: i64,
    pub appointments: i64,
}

/// A broadcast as Verity describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastInfo {
    pub id: String,
    pub subject: Option<String>,
    pub channel: Channel,
    /// RFC 3339, when it was executed.
    pub executed_at: Option<String>,
}

/// The figures SPEC §13 defines, rates in percent to 2 decimals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub name: String,
    pub channel: Channel,
    pub sent_at: Option<String>,
    pub recipients: i64,
    pub sent: i64,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
    pub bounced: i64,
    pub responses: i64,
    pub appointments: i64,
    pub delivery_rate: f64,
    pub failure_rate: f64,
    pub response_rate: f64,
    pub conversion_rate: f64,
}

/// `part / whole` in percent, 2 decimals; 0 when `whole` is 0.
pub fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

pub fn figures(info: &BroadcastInfo, c: &Counts) -> Figures {
    let sent = c.delivered + c.failed;
    let name = match info.subject.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => {
            let prefix: String = info.id.chars().take(8).collect();
            let channel = match info.channel {
                Channel::Sms => "SMS",
                Channel::Email => "EMAIL",
            };
            format!("{channel} Broadcast {prefix}")
        }
    };
    Figures {
        name,
        channel: info.channel,
        sent_at: info.executed_at.clone(),
        recipients: c.recipients,
        sent,
        delivered: c.delivered,
        pending: c.pending,
        failed: c.failed,
        bounced: c.bounced,
        responses: c.responses,
        appointments: c.appointments,
        delivery_rate: percent(c.delivered, sent),
        failure_rate: percent(c.failed + c.bounced, sent),
        response_rate: percent(c.responses, c.delivered),
        conversion_rate: percent(c.appointments, c.responses),
    }
}

/// A percentage as the decimal GHL stores (66.67 → 0.6667), without float noise.
fn decimal(rate: f64) -> Value {
    json!((rate * 100.0).round() / 10_000.0)
}

/// The record's properties (SPEC §13); rates as decimals.
pub fn ghl_properties(broadcast_id: &str, f: &Figures) -> Value {
    let mut p = Map::new();
    p.insert(GHL_ID_PROPERTY.into(), json!(broadcast_id));
    p.insert("broadcast_name".into(), json!(f.name));
    p.insert("channel".into(), json!(f.channel.label()));
    if let Some(at) = &f.sent_at {
        p.insert("sent_at".into(), json!(at));
    }
    for (k, v) in [
        ("recipients", f.recipients),
        ("sent", f.sent),
        ("delivered", f.delivered),
        ("pending", f.pending),
        ("failed", f.failed),
        ("responses", f.responses),
        ("appointments_set", f.appointments),
    ] {
        p.insert(k.into(), json!(v));
    }
    for (k, v) in [
        ("delivery_rate", f.delivery_rate),
        ("response_rate", f.response_rate),
        ("failure_rate", f.failure_rate),
        ("conversion_rate", f.conversion_rate),
    ] {
        p.insert(k.into(), decimal(v));
    }
    Value::Object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_need_an_id_and_a_type_and_unknown_types_are_held() {
        let ok = classify(
            &json!({"broadcastId": "b1", "eventType": "analytics_updated", "timestamp": "t1"}),
            "d",
        )
        .unwrap();
        assert_eq!(ok.classified.entity_id.as_deref(), Some("b1"));
        assert_eq!(
            ok.dedupe_key,
            DedupeKey::Id("broadcast:b1:analytics_updated:t1".into())
        );
        assert!(ok.quarantine.is_none());
        let odd = classify(&json!({"broadcastId": "b1", "eventType": "paused"}), "d").unwrap();
        assert!(odd.quarantine.unwrap().contains("paused"));
        for bad in [
            json!({"eventType": "analytics_updated"}),
            json!({"broadcastId": "", "eventType": "analytics_updated"}),
            json!({"broadcastId": 7, "eventType": "analytics_updated"}),
            json!({"broadcastId": "b1"}),
            json!({"broadcastId": "b1", "eventType": "analytics_updated", "timestamp": 5}),
            json!({"broadcastId": "x".repeat(200), "eventType": "analytics_updated"}),
            json!([]),
        ] {
            assert!(classify(&bad, "d").is_err(), "{bad}");
        }
    }

    #[test]
    fn events_without_a_timestamp_never_collapse_into_each_other() {
        let body = json!({"broadcastId": "b1", "eventType": "analytics_updated"});
        let a = classify(&body, "delivery-1").unwrap().dedupe_key;
        let b = classify(&body, "delivery-2").unwrap().dedupe_key;
        assert_ne!(a, b);
        let with_ts =
            json!({"broadcastId": "b1", "eventType": "analytics_updated", "timestamp": "t"});
        assert_eq!(
            classify(&with_ts, "delivery-1").unwrap().dedupe_key,
            classify(&with_ts, "delivery-2").unwrap().dedupe_key
        );
    }

    #[test]
    fn rates_follow_the_spec() {
        assert_eq!(percent(2, 3), 66.67);
        assert_eq!(percent(1, 0), 0.0);
        let info = BroadcastInfo {
            id: "0123456789abcdef".into(),
            subject: None,
            channel: Channel::Sms,
            executed_at: Some("2026-11-01T10:00:00.000Z".into()),
        };
        let c = Counts {
            recipients: 10,
            delivered: 6,
            failed: 2,
            bounced: 1,
            pending: 1,
            responses: 3,
            appointments: 1,
        };
        let f = figures(&info, &c);
        assert_eq!(f.name, "SMS Broadcast 01234567");
        assert_eq!(f.sent, 8);
        assert_eq!(f.delivery_rate, 75.0);
        assert_eq!(f.failure_rate, 37.5);
        assert_eq!(f.response_rate, 50.0);
        assert_eq!(f.conversion_rate, 33.33);
        let p = ghl_properties("0123456789abcdef", &f);
        assert_eq!(p["delivery_rate"], json!(0.75));
        assert_eq!(p["conversion_rate"], json!(0.3333));
        assert_eq!(p["appointments_set"], json!(1));
        assert_eq!(p["channel"], json!("SMS"));
        let email = BroadcastInfo {
            subject: Some("Spring sale".into()),
            channel: Channel::Email,
            ..info
        };
        assert_eq!(figures(&email, &c).name, "Spring sale");
        let unnamed = BroadcastInfo {
            subject: Some("  ".into()),
            ..email
        };
        assert_eq!(figures(&unnamed, &c).name, "EMAIL Broadcast 01234567");
    }
}
