//! How a texting message is recorded in GHL (SPEC §6): the note format, the time it
//! carries, and the call status a GHL conversation understands. Pure: no I/O.
use chrono::{DateTime, NaiveDateTime, Utc};

use super::texting_webhook::Direction;

/// The message's time: RFC 3339, or a naive `YYYY-MM-DD HH:MM:SS` read as UTC.
pub fn parse_time(raw: Option<&str>) -> Option<DateTime<Utc>> {
    let raw = raw?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| t.and_utc())
}

/// The line that names the texting message in its note, so a retried attempt finds the
/// note an earlier one wrote instead of writing a second.
pub fn note_marker(message_id: &str) -> String {
    format!("Texting message id: {message_id}")
}

pub fn is_note_of(body: &str, message_id: &str) -> bool {
    let marker = note_marker(message_id);
    body.lines().any(|l| l.trim() == marker)
}

/// One SMS as a GHL note:
/// `[SMS][Inbound] <time>\nFrom: ..\nTo: ..\n\n<body>`, then the message id line.
pub struct SmsNote<'a> {
    pub direction: Direction,
    pub at: DateTime<Utc>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub body: &'a str,
    pub message_id: &'a str,
}

impl SmsNote<'_> {
    pub fn render(&self) -> String {
        let direction = match self.direction {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        };
        format!(
            "[SMS][{direction}] {}\nFrom: {}\nTo: {}\n\n{}\n\n{}",
            self.at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.from.unwrap_or("unknown"),
            self.to.unwrap_or("unknown"),
            self.body,
            note_marker(self.message_id)
        )
    }
}

/// A texting delivery status as GHL's `UpdateMessageStatusDto` names it.
pub fn ghl_message_status(event_type: &str) -> Option<&'static str> {
    match event_type {
        "message.delivered" => Some("delivered"),
        "message.failed" => Some("failed"),
        _ => None,
    }
}

/// An Aloware call status as GHL's `CallDataDTO.status` enum names it.
pub fn ghl_call_status(status: Option<&str>, missed: bool) -> &'static str {
    if missed {
        return "no-answer";
    }
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("completed" | "appointment") => "completed",
        Some("failed") => "failed",
        Some("busy") => "busy",
        Some("voicemail") => "voicemail",
        Some("missed" | "no-answer" | "abandoned") => "no-answer",
        Some("canceled" | "cancelled") => "canceled",
        _ => "pending",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_has_the_spec_format_and_names_its_message() {
        let note = SmsNote {
            direction: Direction::Inbound,
            at: parse_time(Some("2025-12-26T14:00:00Z")).unwrap(),
            from: Some("+16195550111"),
            to: Some("+18885550123"),
            body: "Hey",
            message_id: "msg_123",
        }
        .render();
        assert!(note.starts_with(
            "[SMS][Inbound] 2025-12-26 14:00:00 UTC\nFrom: +16195550111\nTo: +18885550123\n\nHey"
        ));
        assert!(is_note_of(&note, "msg_123"));
        assert!(!is_note_of(&note, "msg_12"));
    }

    #[test]
    fn times_in_both_shapes() {
        assert_eq!(
            parse_time(Some("2026-08-05 20:58:44")),
            parse_time(Some("2026-08-05T20:58:44Z"))
        );
        assert_eq!(
            parse_time(Some("2026-08-05T22:58:44+02:00")),
            parse_time(Some("2026-08-05T20:58:44Z"))
        );
        assert_eq!(parse_time(Some("yesterday")), None);
    }

    #[test]
    fn call_statuses_map_into_ghls_enum() {
        assert_eq!(ghl_call_status(Some("Completed"), false), "completed");
        assert_eq!(ghl_call_status(Some("completed"), true), "no-answer");
        assert_eq!(ghl_call_status(Some("in-progress"), false), "pending");
        assert_eq!(ghl_message_status("message.failed"), Some("failed"));
        assert_eq!(ghl_message_status("message.sent"), None);
    }
}
