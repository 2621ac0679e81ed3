//! The opt-out registry at acknowledgement (SPEC §7): a request that arrives by text —
//! the texting system's webhook, an Aloware `InboundSMS…`, a GHL `InboundMessage` of type
//! SMS — is written to `optout_events` (and so, by the database, to `optout_registry`) in
//! the same transaction that stores its webhook, before the 200. From that moment no
//! send passes the guard, whatever is queued ahead of it. Its reply and GHL mirror are
//! the opt-out job's, stored in the same transaction under a message group of its own.
//! A text sent to an opted-out number by another system is a compliance incident,
//! recorded there too.
use chrono::{DateTime, Utc};
use lambda_http::{http::StatusCode, Body, Response};
use serde_json::json;

use super::Ingest;
use crate::adapters::db::DbError;
use crate::adapters::event_store::{self, NewEvent, Stored};
use crate::adapters::optout_store::{self, Request, RequestKind};
use crate::domain::{EventKind, Source};
use crate::lambda::http::Arrival;

/// Whose number a request is about.
#[derive(Debug, Clone)]
pub enum Number {
    /// E.164, from the body.
    Known(String),
    /// The mapped phone of this GHL contact (GHL's message webhooks carry no phone).
    OfGhlContact(String),
}

/// A request found in a webhook, recorded with it.
#[derive(Debug, Clone)]
pub struct Found {
    pub number: Number,
    pub kind: RequestKind,
    pub keyword: &'static str,
    /// `texting`, `aloware` or `ghl`.
    pub source: &'static str,
    pub source_message_id: String,
    pub raw_text: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The number the person texted (the reply comes from it).
    pub reply_from: Option<String>,
}

/// A text another system sent, checked against the registry as it is stored.
#[derive(Debug, Clone)]
pub struct SentElsewhere {
    pub phone: String,
    pub source: &'static str,
    pub sent_at: DateTime<Utc>,
}

/// What the registry makes of one webhook.
#[derive(Debug, Clone, Default)]
pub struct AtIngest {
    pub request: Option<Found>,
    pub sent: Option<SentElsewhere>,
}

impl AtIngest {
    pub fn is_empty(&self) -> bool {
        self.request.is_none() && self.sent.is_none()
    }
}

pub use crate::domain::optout::request_of;

/// What one transaction stored: the webhook's row, and the job's when there is one.
struct Stores {
    event: Stored,
    job: Option<Stored>,
}

impl Ingest {
    /// Store a webhook with what it means for the registry, in one transaction, then
    /// enqueue and answer as [`Ingest::store_and_acknowledge`] does.
    pub(crate) async fn store_with_registry(
        &self,
        new: NewEvent<'_>,
        at: AtIngest,
        store_failure_status: StatusCode,
        arrival: Arrival,
    ) -> Response<Body> {
        if at.is_empty() {
            return self
                .store_and_acknowledge(new, store_failure_status, arrival)
                .await;
        }
        let deadline = Self::deadline(arrival);
        let stored = match self.store_connection(deadline).await {
            Ok(held) => {
                let work = self.transaction(held.client(), &new, &at, arrival);
                match tokio::time::timeout(held.left(), work).await {
                    Ok(Ok(stores)) => Ok(stores),
                    // A transaction left open on the connection: it goes, whatever
                    // went wrong.
                    Ok(Err(e)) => {
                        held.discard();
                        Err(e)
                    }
                    Err(_) => {
                        held.discard();
                        Err(DbError::Timeout)
                    }
                }
            }
            Err(e) => Err(e),
        };
        let (event, job) = match stored {
            Ok(s) => (Ok(s.event), s.job),
            Err(e) => (Err(e), None),
        };
        if let Some(Stored::Inserted {
            enqueue: Some(message),
            ..
        }) = &job
        {
            self.enqueue_before(message, deadline).await;
        }
        self.acknowledge(
            new.source.as_str(),
            new.classified,
            event,
            store_failure_status,
            deadline,
        )
        .await
    }

    async fn transaction(
        &self,
        client: &deadpool_postgres::Client,
        new: &NewEvent<'_>,
        at: &AtIngest,
        arrival: Arrival,
    ) -> Result<Stores, DbError> {
        client.batch_execute("BEGIN").await?;
        let event = event_store::insert_on(client, self.kind, new).await?;
        let mut job = None;
        if let Stored::Inserted { id, .. } = &event {
            if let Some(found) = &at.request {
                job = self.record(client, found, arrival).await?;
            }
            if let Some(sent) = &at.sent {
                if optout_store::note_unguarded_send(
                    client,
                    &sent.phone,
                    sent.source,
                    *id,
                    sent.sent_at,
                )
                .await?
                {
                    tracing::error!(alert = "texted_opted_out_number", event_id = %id, source = sent.source,
                        "another system texted an opted-out number");
                }
            }
        }
        client.batch_execute("COMMIT").await?;
        Ok(Stores { event, job })
    }

    /// Record the request; store its job when it asks for one (a reply, a mirror).
    async fn record(
        &self,
        client: &deadpool_postgres::Client,
        found: &Found,
        arrival: Arrival,
    ) -> Result<Option<Stored>, DbError> {
        let phone = match &found.number {
            Number::Known(p) => Some(p.clone()),
            Number::OfGhlContact(id) => client
                .query_opt(
                    "SELECT phone_number FROM contact_mappings WHERE ghl_contact_id = $1",
                    &[id],
                )
                .await?
                .and_then(|r| r.get::<_, Option<String>>(0)),
        };
        // An unmapped GHL contact: the consumer records it once it knows the number.
        let Some(phone) = phone.filter(|p| p.starts_with('+')) else {
            return Ok(None);
        };
        let recorded = optout_store::record_on(
            client,
            &Request {
                phone: &phone,
                kind: found.kind,
                keyword: Some(found.keyword),
                source: found.source,
                source_message_id: &found.source_message_id,
                raw_text: found.raw_text.as_deref(),
                occurred_at: found.occurred_at,
                evidence: json!({}),
            },
        )
        .await?;
        let Some(recorded) = recorded.filter(|r| r.new) else {
            return Ok(None);
        };
        if found.kind == RequestKind::Review {
            return Ok(None);
        }
        let (classified, dedupe, payload) =
            crate::domain::optout::job(recorded.event_id, found.reply_from.as_deref());
        let source = match self.kind {
            EventKind::Webhook => Source::Registry,
            _ => Source::Texting,
        };
        let job = NewEvent {
            source,
            classified: &classified,
            payload_json: &payload,
            dedupe: &dedupe,
            texting: None,
            quarantine: None,
            received_at: Some(arrival.wall),
        };
        Ok(Some(event_store::insert_on(client, self.kind, &job).await?))
    }
}

/// The texting system's webhook: an inbound text that is a request, its own
/// `optout.stop` / `optout.help`, or a `message.sent` it sent itself.
pub fn from_texting(
    m: &crate::domain::texting_webhook::TextingMessage,
    now: DateTime<Utc>,
) -> AtIngest {
    use crate::domain::texting_webhook::Direction;
    let occurred = crate::domain::sms::parse_time(m.timestamp.as_deref()).unwrap_or(now);
    let e164 = |p: &Option<String>| p.clone().filter(|p| p.starts_with('+'));
    let inbound = m.direction != Some(Direction::Outbound);
    let found = |kind: RequestKind, keyword: &'static str| -> Option<Found> {
        Some(Found {
            number: Number::Known(e164(&m.from)?),
            kind,
            keyword,
            source: "texting",
            source_message_id: m.message_id.clone()?,
            raw_text: m.body.clone(),
            occurred_at: occurred,
            reply_from: m.to.clone(),
        })
    };
    match m.event_type.as_str() {
        "message.received" if inbound => AtIngest {
            request: m
                .body
                .as_deref()
                .and_then(request_of)
                .and_then(|(kind, k)| found(kind, k)),
            sent: None,
        },
        "optout.stop" => AtIngest {
            request: found(
                RequestKind::OptOut,
                m.body
                    .as_deref()
                    .and_then(crate::domain::optout::keyword)
                    .map(|k| k.word())
                    .unwrap_or("STOP"),
            ),
            sent: None,
        },
        "optout.help" => AtIngest {
            request: found(RequestKind::Help, "HELP"),
            sent: None,
        },
        "message.sent" => AtIngest {
            request: None,
            sent: e164(&m.to).map(|phone| SentElsewhere {
                phone,
                source: "texting",
                sent_at: occurred,
            }),
        },
        _ => AtIngest::default(),
    }
}

/// An Aloware SMS (`body.type` 2): an inbound one that is a request, or an agent's
/// outbound one.
pub fn from_aloware(
    payload: &serde_json::Value,
    default_country: &str,
    now: DateTime<Utc>,
) -> AtIngest {
    use crate::domain::json::{id_str, int, text};
    let body = payload.get("body").unwrap_or(payload);
    if int(body.get("type")) != Some(2) {
        return AtIngest::default();
    }
    let Some(phone) = text(body.get("lead_number"))
        .and_then(|p| crate::domain::phone::to_e164(p, default_country))
    else {
        return AtIngest::default();
    };
    let occurred = crate::domain::sms::parse_time(
        text(body.get("created_at")).or_else(|| text(body.get("updated_at"))),
    )
    .unwrap_or(now);
    match int(body.get("direction")) {
        Some(1) => {
            let message = text(body.get("body")).map(str::to_string);
            let request = message
                .as_deref()
                .and_then(request_of)
                .zip(id_str(body.get("id")))
                .map(|((kind, keyword), id)| Found {
                    number: Number::Known(phone),
                    kind,
                    keyword,
                    source: "aloware",
                    source_message_id: format!("aloware-sms:{id}"),
                    raw_text: message.clone(),
                    occurred_at: occurred,
                    reply_from: None,
                });
            AtIngest {
                request,
                sent: None,
            }
        }
        Some(2) => AtIngest {
            request: None,
            sent: Some(SentElsewhere {
                phone,
                source: "aloware",
                sent_at: occurred,
            }),
        },
        _ => AtIngest::default(),
    }
}

/// A GHL `InboundMessage` of type SMS that is a request (its number is the mapped
/// phone of its contact).
pub fn from_ghl(payload: &serde_json::Value, now: DateTime<Utc>) -> AtIngest {
    use crate::domain::json::{id_str, text};
    let sms = text(payload.get("messageType")).is_some_and(|t| t.eq_ignore_ascii_case("sms"));
    let inbound = text(payload.get("direction")) == Some("inbound");
    let (Some(contact), Some(message_id)) = (
        id_str(payload.get("contactId")),
        id_str(payload.get("messageId")),
    ) else {
        return AtIngest::default();
    };
    if !sms || !inbound {
        return AtIngest::default();
    }
    let message = text(payload.get("body")).map(str::to_string);
    let occurred = crate::domain::sms::parse_time(text(payload.get("dateAdded"))).unwrap_or(now);
    AtIngest {
        request: message
            .as_deref()
            .and_then(request_of)
            .map(|(kind, keyword)| Found {
                number: Number::OfGhlContact(contact),
                kind,
                keyword,
                source: "ghl",
                source_message_id: format!("ghl-message:{message_id}"),
                raw_text: message.clone(),
                occurred_at: occurred,
                reply_from: None,
            }),
        sent: None,
    }
}
