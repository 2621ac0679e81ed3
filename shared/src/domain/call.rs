//! Aloware call → GHL note (SPEC §6): the facts of a call, one note text per call that
//! later events (recording, AI summary) rewrite in place, and the call tags.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::{id_str, int, text};

/// What a call note says. Stored in `call_notes.call_facts`, so each event merges into it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFacts {
    pub call_id: String,
    pub direction: Option<String>,
    pub started_at: Option<String>,
    pub talk_time_seconds: Option<i64>,
    pub disposition: Option<String>,
    pub status: Option<String>,
    pub agent: Option<String>,
    pub line: Option<String>,
    pub missed: bool,
    pub recording_url: Option<String>,
    pub summary: Option<String>,
}

/// Which part of the call an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEventKind {
    /// Initiation, no disposition yet: nothing to write.
    Initiated,
    Disposition,
    Recording,
    Summary,
}

const DISPOSITION_STATUS: &[(i64, &str)] = &[
    (1, "in-progress"),
    (3, "missed"),
    (4, "completed"),
    (5, "failed"),
    (11, "appointment"),
];

pub fn kind_of(event_type: &str, body: &Value) -> CallEventKind {
    let name = event_type.to_ascii_lowercase();
    if body.get("communication").is_some()
        || body.get("summary").is_some()
        || name.contains("transcription")
    {
        return CallEventKind::Summary;
    }
    if name.contains("recording") {
        return CallEventKind::Recording;
    }
    let status = int(body.get("disposition_status2"));
    let text_status = text(body.get("disposition_status")).map(str::to_ascii_lowercase);
    let disposed = name.contains("disposition")
        || name == "call-disposed"
        || body.get("call_disposition").is_some()
        || matches!(status, Some(3..=5))
        || text_status.as_deref().is_some_and(|s| s != "in-progress");
    if disposed {
        CallEventKind::Disposition
    } else {
        CallEventKind::Initiated
    }
}

impl CallFacts {
    /// Merge what this event says into what earlier events said.
    pub fn absorb(&mut self, event_type: &str, body: &Value) {
        let set = |slot: &mut Option<String>, v: Option<String>| {
            if v.is_some() {
                *slot = v;
            }
        };
        if let Some(summary) = text(body.get("summary")).or_else(|| {
            body.pointer("/transcription/custom_summary")
                .and_then(Value::as_str)
        }) {
            self.summary = Some(summary.to_string());
            return;
        }
        set(
            &mut self.direction,
            match int(body.get("direction")) {
                Some(1) => Some("Inbound".into()),
                Some(2) => Some("Outbound".into()),
                _ => None,
            },
        );
        set(
            &mut self.started_at,
            text(body.get("created_at")).map(|t| format!("{t} UTC")),
        );
        if let Some(t) = int(body.get("talk_time")) {
            self.talk_time_seconds = Some(t);
        }
        set(
            &mut self.disposition,
            text(body.get("call_disposition")).map(str::to_string),
        );
        let status = text(body.get("disposition_status"))
            .map(str::to_ascii_lowercase)
            .or_else(|| {
                int(body.get("disposition_status2")).and_then(|s| {
                    DISPOSITION_STATUS
                        .iter()
                        .find(|(n, _)| *n == s)
                        .map(|(_, t)| t.to_string())
                })
            });
        set(&mut self.status, status);
        set(&mut self.agent, id_str(body.get("user_id")));
        set(
            &mut self.line,
            text(body.get("incoming_number")).map(str::to_string),
        );
        set(
            &mut self.recording_url,
            text(body.get("direct_recording_url")).map(str::to_string),
        );
        let name = event_type.to_ascii_lowercase();
        self.missed |= name.contains("missed") || self.status.as_deref() == Some("missed");
    }

    /// The note body. Identifying the call by id lets a person match note and Aloware.
    pub fn note_body(&self) -> String {
        let mut lines = vec![format!(
            "[Call] {} · {}",
            self.direction.as_deref().unwrap_or("Unknown direction"),
            self.started_at.as_deref().unwrap_or("time unknown")
        )];
        let mut line = |label: &str, v: Option<String>| {
            if let Some(v) = v {
                lines.push(format!("{label}: {v}"));
            }
        };
        line("Disposition", self.disposition.clone());
        line("Status", self.status.clone());
        line(
            "Talk time",
            self.talk_time_seconds
                .map(|s| format!("{}m {:02}s", s / 60, s % 60)),
        );
        line("Agent", self.agent.clone());
        line("Line", self.line.clone());
        line("Recording", self.recording_url.clone());
        lines.push(note_marker(&self.call_id));
        if let Some(summary) = &self.summary {
            lines.push(String::new());
            lines.push("Summary:".into());
            lines.push(summary.clone());
        }
        lines.join("\n")
    }

    /// `Call: <disposition>`, `Inbound Call` / `Outbound Call`, `Missed Call`.
    pub fn tags(&self) -> Vec<String> {
        let mut tags = Vec::new();
        if let Some(d) = &self.disposition {
            tags.push(format!("Call: {d}"));
        }
        if let Some(dir) = &self.direction {
            tags.push(format!("{dir} Call"));
        }
        if self.missed {
            tags.push("Missed Call".into());
        }
        tags
    }
}

/// The line of a call's note that names the call: lets a person match note and Aloware,
/// and lets a retry find a note an earlier attempt created but could not record.
pub fn note_marker(call_id: &str) -> String {
    format!("Aloware call id: {call_id}")
}

/// Whether a GHL note body is the note of call `call_id`.
pub fn is_note_of(body: &str, call_id: &str) -> bool {
    let marker = note_marker(call_id);
    body.lines().any(|l| l.trim() == marker)
}

/// Whether a call event says its contact is on the do-not-call list (the nested
/// `body.contact.is_dnc`, or a flat `is_dnc`).
pub fn says_dnc(body: &Value) -> bool {
    let flag = body
        .get("contact")
        .and_then(|c| c.get("is_dnc"))
        .or_else(|| body.get("is_dnc"));
    match flag {
        Some(Value::Bool(b)) => *b,
        Some(v) => int(Some(v)) == Some(1) || v.as_str() == Some("true"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifecycle_builds_one_note() {
        let mut f = CallFacts {
            call_id: "940868616".into(),
            ..Default::default()
        };
        let disposition = json!({"id": 940868616, "direction": 2, "disposition_status2": 4, "talk_time": 63,
            "user_id": 120776, "call_disposition": "No Answer", "incoming_number": "+12025550142", "created_at": "2026-08-05 20:58:49"});
        assert_eq!(
            kind_of(
                "OutboundPhoneCall",
                &json!({"id": 1, "disposition_status2": 1})
            ),
            CallEventKind::Initiated
        );
        assert_eq!(
            kind_of("OutboundPhoneCall-DispositionCompleted", &disposition),
            CallEventKind::Disposition
        );
        f.absorb("OutboundPhoneCall-DispositionCompleted", &disposition);
        let recording = json!({"id": 940868616, "direct_recording_url": "https://x/rec"});
        assert_eq!(
            kind_of("Recording-Saved", &recording),
            CallEventKind::Recording
        );
        f.absorb("Recording-Saved", &recording);
        let summary = json!({"communication": {"id": 940868616}, "summary": "Callback scheduled."});
        assert_eq!(
            kind_of("transcription.call.summarized", &summary),
            CallEventKind::Summary
        );
        f.absorb("transcription.call.summarized", &summary);
        let note = f.note_body();
        assert!(
            note.starts_with("[Call] Outbound · 2026-08-05 20:58:49 UTC"),
            "{note}"
        );
        for part in [
            "Disposition: No Answer",
            "Status: completed",
            "Talk time: 1m 03s",
            "Recording: https://x/rec",
            "Summary:\nCallback scheduled.",
        ] {
            assert!(note.contains(part), "{part} missing from {note}");
        }
        assert_eq!(f.tags(), ["Call: No Answer", "Outbound Call"]);
        assert!(is_note_of(&note, "940868616"));
        assert!(!is_note_of(&note, "94086861"), "the whole id, not a prefix");
    }

    #[test]
    fn dnc_flags_in_every_form() {
        assert!(says_dnc(&json!({"contact": {"is_dnc": true}})));
        assert!(says_dnc(&json!({"contact": {"is_dnc": "1"}})));
        assert!(says_dnc(&json!({"is_dnc": 1})));
        assert!(!says_dnc(&json!({"contact": {"is_dnc": false}})));
        assert!(!says_dnc(&json!({"id": 1})));
    }

    #[test]
    fn missed_inbound_calls_are_tagged() {
        let mut f = CallFacts::default();
        f.absorb(
            "InboundPhoneCall-DispositionMissed",
            &json!({"direction": 1, "disposition_status2": 3}),
        );
        assert_eq!(f.tags(), ["Inbound Call", "Missed Call"]);
    }
}
