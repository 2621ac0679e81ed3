//! Texting → GHL (SPEC §6) and the opt-out requests that arrive as texts (SPEC §7).
//!
//! A message is recorded once on the GHL contact of the external party (inbound: `from`,
//! outbound: `to`): a note by default, a message in the contact's conversation when
//! `GHL_CONVERSATION_PROVIDER_ID` is set. The record's intent is taken before GHL is
//! written and its id saved the moment GHL returns it; a retried attempt adopts what an
//! earlier one wrote. An opt-out request was recorded in the registry by the ingest,
//! before its webhook was acknowledged, and its reply and GHL mirror are the opt-out
//! job's (`optout_job`, a message group of its own); a message stored before the ingest
//! did so is recorded here (idempotent) and its job run inline.
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::conversations::{conversation_for, unowned_message};
use super::optout_job;
use super::optout_mirror::{self, contact_for_phone, opted_out_fields};
use super::{Outcome, SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::optout_store::{self, Recorded, Request, RequestKind};
use crate::adapters::sync_store::{self, MessageIntent, MessageMapping, MessageWritten};
use crate::domain::json::id_str;
use crate::domain::optout::{self, Action, Status};
use crate::domain::sms::{self, SmsNote};
use crate::domain::texting_webhook::{normalize, Direction, TextingMessage};
use crate::pipeline::Router;
use crate::providers::texting_api::TextingClient;

const DIRECTION: &str = "texting_to_ghl";

/// Longer than the consumer's timeout: an attempt still running keeps its intent.
const MESSAGE_INTENT_LEASE: Duration = Duration::from_secs(300);

pub use super::optout_job::Replies;

/// `process-texting-events`'s router.
pub struct TextingRouter {
    pub deps: SyncDeps,
    pub texting: TextingClient,
    pub replies: Replies,
    /// `TEXTING_SYNC_TO_ALOWARE`: map the Aloware contact of each message's party.
    pub sync_to_aloware: bool,
}

impl Router for TextingRouter {
    async fn route(&self, event: &EventRow) -> Result<Outcome, SyncError> {
        let m = normalize(&event.payload, &self.deps.default_country)
            .map_err(|e| SyncError::Invalid(e.to_string()))?;
        match m.event_type.as_str() {
            optout_job::JOB_EVENT => {
                optout_job::run(&self.deps, Some((&self.texting, &self.replies)), event).await
            }
            "message.received" | "message.sent" => self.message(event, &m).await,
            "message.delivered" | "message.failed" => self.status(&m).await,
            "optout.stop" | "optout.help" => self.optout_event(event, &m).await,
            "conversation.created" => Ok(Outcome::Skipped(
                "conversation.created: GHL keeps its own conversation per contact".into(),
            )),
            other => Ok(Outcome::Skipped(format!(
                "no sync rule for texting {other} events"
            ))),
        }
    }
}

/// The external party's number: who texted us, or whom we texted.
fn party(m: &TextingMessage) -> Result<(Direction, String), SyncError> {
    let direction = m.direction.unwrap_or(Direction::Inbound);
    let number = match direction {
        Direction::Inbound => m.from.as_deref(),
        Direction::Outbound => m.to.as_deref(),
    };
    number
        .filter(|n| n.starts_with('+'))
        .map(|n| (direction, n.to_string()))
        .ok_or_else(|| {
            SyncError::Invalid(format!(
                "no valid phone number for the external party (`{}`)",
                if direction == Direction::Inbound {
                    "from"
                } else {
                    "to"
                }
            ))
        })
}

fn message_id(m: &TextingMessage) -> Result<&str, SyncError> {
    m.message_id
        .as_deref()
        .ok_or_else(|| SyncError::Invalid("texting message without id".into()))
}

/// When the message was sent, else when we received the webhook.
fn sent_at(m: &TextingMessage, event: &EventRow) -> DateTime<Utc> {
    sms::parse_time(m.timestamp.as_deref()).unwrap_or(event.received_at)
}

impl TextingRouter {
    async fn message(&self, event: &EventRow, m: &TextingMessage) -> Result<Outcome, SyncError> {
        let deps = &self.deps;
        let id = message_id(m)?;
        let (direction, phone) = party(m)?;
        let mut decisions = json!({"direction": direction.as_str()});
        // 1. The request, if the ingest did not record it (a row stored before it did).
        let request = match direction {
            Direction::Inbound => self.keyword_request(event, m, &phone, id).await?,
            Direction::Outbound => None,
        };
        let status = optout_store::status(&deps.pool, &phone).await?;
        if direction == Direction::Outbound && status == Status::OptedOut {
            // Sent by the texting system itself, not through our guard: say so loudly.
            tracing::warn!(alert = "texted_opted_out_number", event_id = %event.id,
                "the texting system reports a message sent to an opted-out number");
            decisions["compliance"] = json!("the texting system sent this to an opted-out number");
        }
        // 2. Its job, inline, when the ingest did not store one.
        if let Some((action, recorded)) = &request {
            decisions["optout"] = json!(action_name(*action));
            if recorded.new {
                decisions["optout_job"] = self.job_inline(recorded.event_id, m).await?;
            }
        }
        // 3. The contact, created already opted out when the registry says so.
        let extra = if status == Status::OptedOut {
            opted_out_fields()
        } else {
            json!({})
        };
        let (ghl_id, created) = contact_for_phone(deps, &phone, extra, DIRECTION, event.id).await?;
        decisions["contact_created"] = json!(created);
        // 4. The message's one GHL record.
        let record = self
            .record_message(event, m, id, direction, &ghl_id)
            .await?;
        decisions["record"] = record;
        // 5. GHL shows the registry's state (DND + tags).
        decisions["optout_shown_in_ghl"] =
            json!(optout_mirror::show_in_ghl(deps, &phone, &ghl_id).await?);
        if self.sync_to_aloware {
            decisions["aloware"] = self.aloware_side(&phone, &ghl_id).await?;
        }
        Ok(Outcome::Done {
            direction: DIRECTION,
            source_id: Some(id.to_string()),
            target_id: Some(ghl_id),
            decisions,
        })
    }

    /// An inbound message that is a keyword request, recorded in the registry.
    async fn keyword_request(
        &self,
        event: &EventRow,
        m: &TextingMessage,
        phone: &str,
        id: &str,
    ) -> Result<Option<(Action, Recorded)>, SyncError> {
        let text = m.body.as_deref().unwrap_or_default();
        let Some((kind, keyword, action)) = request_of(text) else {
            return Ok(None);
        };
        let recorded = optout_store::record(
            &self.deps.pool,
            &Request {
                phone,
                kind,
                keyword: Some(keyword),
                source: "texting",
                source_message_id: id,
                raw_text: Some(text),
                occurred_at: sent_at(m, event),
                evidence: json!({}),
            },
        )
        .await?;
        Ok(recorded.map(|r| (action, r)))
    }

    /// `optout.stop` / `optout.help`: the texting system's own reading of a request.
    async fn optout_event(
        &self,
        event: &EventRow,
        m: &TextingMessage,
    ) -> Result<Outcome, SyncError> {
        let deps = &self.deps;
        let phone = m
            .from
            .as_deref()
            .filter(|n| n.starts_with('+'))
            .ok_or_else(|| SyncError::Invalid("opt-out event without a valid `from`".into()))?
            .to_string();
        let (kind, action) = if m.event_type == "optout.stop" {
            (RequestKind::OptOut, Action::OptOut("STOP"))
        } else {
            (RequestKind::Help, Action::Help("HELP"))
        };
        // The same message may also arrive as `message.received`: one request either way.
        let source_id = m.message_id.clone().unwrap_or_else(|| event.id.to_string());
        let keyword = m
            .body
            .as_deref()
            .and_then(optout::keyword)
            .map(|k| k.word())
            .unwrap_or(action_keyword(action));
        let recorded = optout_store::record(
            &deps.pool,
            &Request {
                phone: &phone,
                kind,
                keyword: Some(keyword),
                source: "texting",
                source_message_id: &source_id,
                raw_text: m.body.as_deref(),
                occurred_at: sent_at(m, event),
                evidence: json!({}),
            },
        )
        .await?
        .ok_or_else(|| SyncError::Invalid("not a recordable request".into()))?;
        let mut decisions = json!({"optout": action_name(action), "new": recorded.new});
        if recorded.new {
            decisions["optout_job"] = self.job_inline(recorded.event_id, m).await?;
        }
        if kind == RequestKind::OptOut {
            let extra = opted_out_fields();
            let (ghl_id, created) =
                contact_for_phone(deps, &phone, extra, DIRECTION, event.id).await?;
            decisions["contact_created"] = json!(created);
            decisions["optout_shown_in_ghl"] =
                json!(optout_mirror::show_in_ghl(deps, &phone, &ghl_id).await?);
        }
        Ok(Outcome::Done {
            direction: DIRECTION,
            source_id: Some(source_id),
            target_id: None,
            decisions,
        })
    }

    /// A request the ingest did not record (a row stored before it did): its job's
    /// reply and mirror, here.
    async fn job_inline(
        &self,
        request: uuid::Uuid,
        m: &TextingMessage,
    ) -> Result<Value, SyncError> {
        let Some(stored) = optout_store::request(&self.deps.pool, request).await? else {
            return Ok(json!("the request is not on record"));
        };
        let reply = optout_job::reply(
            &self.deps,
            (&self.texting, &self.replies),
            &stored,
            m.to.as_deref(),
        )
        .await?;
        let shown = if matches!(stored.action.as_str(), "opt_out" | "opt_in") {
            optout_mirror::show_everywhere(&self.deps, &stored.phone)
                .await?
                .len()
        } else {
            0
        };
        Ok(json!({"reply": reply, "ghl_contacts": shown}))
    }

    /// Write the message's GHL record once, or adopt the one an earlier attempt wrote.
    async fn record_message(
        &self,
        event: &EventRow,
        m: &TextingMessage,
        id: &str,
        direction: Direction,
        ghl_id: &str,
    ) -> Result<Value, SyncError> {
        let deps = &self.deps;
        let (resumed, mapping) =
            match sync_store::take_message_intent(&deps.pool, id, event.id, MESSAGE_INTENT_LEASE)
                .await?
            {
                MessageIntent::Written(m) => {
                    return Ok(
                        json!({"kind": m.ghl_record_kind, "id": m.ghl_record_id, "existing": true}),
                    )
                }
                MessageIntent::Held => {
                    return Err(SyncError::Waiting(
                        "another event is recording this message".into(),
                    ))
                }
                MessageIntent::Mine { resumed, mapping } => {
                    (resumed || event.attempts > 1, mapping)
                }
            };
        let at = sent_at(m, event);
        let body = m.body.as_deref().unwrap_or_default();
        let (kind, record_id, conversation_id, adopted) = match &deps.conversation_provider_id {
            Some(provider) => {
                let conversation = conversation_for(deps, ghl_id).await?;
                let adopted = if resumed {
                    unowned_message(deps, &conversation, |g| {
                        g.get("body").and_then(Value::as_str) == Some(body)
                            && g.get("direction").and_then(Value::as_str)
                                == Some(direction.as_str())
                    })
                    .await?
                } else {
                    None
                };
                let record_id = match &adopted {
                    Some(id) => id.clone(),
                    None => {
                        let message = json!({"type": "SMS", "conversationId": conversation,
                            "contactId": ghl_id, "conversationProviderId": provider,
                            "message": body, "direction": direction.as_str(),
                            "date": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                            "altId": id});
                        deps.ghl.add_conversation_message(&message).await?
                    }
                };
                (
                    "conversation",
                    record_id,
                    Some(conversation),
                    adopted.is_some(),
                )
            }
            None => {
                let adopted = if resumed {
                    deps.ghl
                        .list_notes(ghl_id)
                        .await?
                        .iter()
                        .find(|n| {
                            n.get("body")
                                .and_then(Value::as_str)
                                .is_some_and(|b| sms::is_note_of(b, id))
                        })
                        .and_then(|n| id_str(n.get("id")))
                } else {
                    None
                };
                let record_id = match &adopted {
                    Some(id) => id.clone(),
                    None => {
                        let note = SmsNote {
                            direction,
                            at,
                            from: m.from.as_deref(),
                            to: m.to.as_deref(),
                            body,
                            message_id: id,
                        };
                        deps.ghl.create_note(ghl_id, &note.render()).await?
                    }
                };
                ("note", record_id, None, adopted.is_some())
            }
        };
        let status = mapping.status.clone().unwrap_or_else(|| match direction {
            Direction::Inbound => "received".into(),
            Direction::Outbound => "sent".into(),
        });
        sync_store::save_message_written(
            &deps.pool,
            id,
            &MessageWritten {
                ghl_contact_id: ghl_id,
                ghl_record_id: &record_id,
                kind,
                conversation_id: conversation_id.as_deref(),
                direction: direction.as_str(),
                from: m.from.as_deref(),
                to: m.to.as_deref(),
                status: &status,
            },
        )
        .await?;
        // A delivery status that arrived before the message reaches GHL now.
        let status_pushed = match (kind, sms::ghl_message_status(&format!("message.{status}"))) {
            ("conversation", Some(s)) => Some(self.push_status(&record_id, s).await?),
            _ => None,
        };
        Ok(
            json!({"kind": kind, "id": record_id, "adopted": adopted, "status_pushed": status_pushed}),
        )
    }

    /// `message.delivered` / `message.failed`: the mapping's status, and the GHL
    /// message's where the conversation route is used.
    async fn status(&self, m: &TextingMessage) -> Result<Outcome, SyncError> {
        let id = message_id(m)?;
        let status = sms::ghl_message_status(&m.event_type).expect("a status event");
        let mapping: MessageMapping =
            sync_store::save_message_status(&self.deps.pool, id, status).await?;
        let ghl = match (mapping.ghl_record_kind.as_deref(), &mapping.ghl_record_id) {
            (Some("conversation"), Some(record)) => self.push_status(record, status).await?,
            (Some(_), Some(_)) => "a note has no status in GHL".to_string(),
            _ => "the message is not in GHL yet; its status goes with it".to_string(),
        };
        Ok(Outcome::Done {
            direction: DIRECTION,
            source_id: Some(id.to_string()),
            target_id: mapping.ghl_record_id,
            decisions: json!({"status": status, "ghl": ghl}),
        })
    }

    /// GHL lets only the conversation provider's own app token set a message's status
    /// (research/ghl.md §4): a refusal of our token is reported, not retried.
    async fn push_status(&self, record: &str, status: &str) -> Result<String, SyncError> {
        match self.deps.ghl.update_message_status(record, status).await {
            Ok(()) => Ok(format!("GHL message marked {status}")),
            Err(e) if e.is_credential() => Ok(format!(
                "GHL refused the status update (HTTP {}): only the provider app's token may set it",
                e.status.unwrap_or_default()
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `TEXTING_SYNC_TO_ALOWARE`: Aloware has no API to record an SMS; the party's
    /// Aloware contact is mapped, and the log says so.
    async fn aloware_side(&self, phone: &str, ghl_id: &str) -> Result<Value, SyncError> {
        let deps = &self.deps;
        let found = deps.aloware.lookup_phone(phone).await?;
        let aloware_id = found.as_ref().and_then(|c| id_str(c.get("id")));
        if let Some(aloware_id) = &aloware_id {
            sync_store::save_mapping(
                &deps.pool,
                Some(aloware_id),
                ghl_id,
                Some(phone),
                None,
                DIRECTION,
            )
            .await?;
        }
        Ok(json!({"contact": aloware_id, "message":
            "not supported: Aloware has no API to record an SMS"}))
    }
}

/// What an inbound text asks of the registry, if anything (the pure detector).
fn request_of(text: &str) -> Option<(RequestKind, &'static str, Action)> {
    let (kind, k) = optout::request_of(text)?;
    let action = match kind {
        RequestKind::OptOut => Action::OptOut(k),
        RequestKind::OptIn => Action::OptIn(k),
        RequestKind::Help => Action::Help(k),
        RequestKind::Review => Action::None,
    };
    Some((kind, k, action))
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::OptOut(_) => "opt_out",
        Action::OptIn(_) => "opt_in",
        Action::Help(_) => "help",
        Action::None => "none",
    }
}

fn action_keyword(action: Action) -> &'static str {
    match action {
        Action::OptOut(k) | Action::OptIn(k) | Action::Help(k) => k,
        Action::None => "",
    }
}
