//! Verity broadcast analytics into GHL (SPEC §13): `process-broadcast-events` computes a
//! broadcast's figures from Verity's database and keeps one `custom_objects.broadcasts`
//! record per broadcast; a GHL appointment re-computes the broadcasts its contact got.
//!
//! One computation per broadcast at a time (a lease in `broadcast_sync_state`); an event
//! received before the last computation started is answered by it (coalesced); a new
//! computation waits until the settle interval since the last one has passed.
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::{json, Value};

use super::{Outcome, SyncDeps, SyncError};
use crate::adapters::broadcast_store::{self, Computed, Leased, NewBroadcastEvent};
use crate::adapters::event_store::{EventRow, Stored};
use crate::adapters::verity_db::VerityDb;
use crate::domain::broadcast::{
    appointment_dedupe_key, figures, ghl_properties, BroadcastEventType, GHL_ID_PROPERTY,
    GHL_OBJECT_KEY,
};
use crate::domain::phone::to_e164;
use crate::ingest::Ingest;
use crate::pipeline::Router;
use crate::providers::ghl_api::GhlClient;
use crate::providers::ghl_objects::RecordCreated;
use crate::providers::{Provider, ProviderError};

/// Longer than one computation can take inside the consumer's 60 s timeout; a consumer
/// that dies holding it blocks its broadcast this long at most.
const LEASE: Duration = Duration::from_secs(90);
/// How soon to look again when another consumer is computing the same broadcast.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// `process-broadcast-events`' router.
pub struct BroadcastRouter {
    pub pool: Pool,
    pub ghl: GhlClient,
    pub verity: VerityDb,
    pub settle: Duration,
}

impl Router for BroadcastRouter {
    async fn route(&self, event: &EventRow) -> Result<Outcome, SyncError> {
        let id = event
            .entity_id
            .clone()
            .ok_or_else(|| SyncError::Invalid("broadcast event without a broadcast id".into()))?;
        let Some(state) = broadcast_store::lease(&self.pool, &id, event.id, LEASE).await? else {
            return Ok(Outcome::Deferred {
                retry_in: BUSY_RETRY,
                reason: "another computation of this broadcast is running".into(),
            });
        };
        let result = self.recompute(event, &id, &state).await;
        if !matches!(result, Ok(Outcome::Done { .. })) {
            if let Err(e) = broadcast_store::release(&self.pool, &id).await {
                tracing::warn!(error = %e, "could not release a broadcast lease; it expires");
            }
        }
        result
    }
}

impl BroadcastRouter {
    async fn recompute(
        &self,
        event: &EventRow,
        id: &str,
        state: &Leased,
    ) -> Result<Outcome, SyncError> {
        if let Some(at) = state.computed_at {
            // Events coalesced into this one count too: it answers them all.
            if state.answers_up_to <= at {
                return Ok(Outcome::Skipped(format!(
                    "coalesced: the computation started at {} already counted it",
                    at.to_rfc3339()
                )));
            }
            let due = at + chrono::Duration::from_std(self.settle).unwrap_or_default();
            if due > state.now {
                let wait = (due - state.now).to_std().unwrap_or_default();
                return Ok(Outcome::Deferred {
                    retry_in: wait,
                    reason: "settling: computed less than one settle interval ago".into(),
                });
            }
        }
        let Some((info, counts)) = self.verity.analytics(id).await? else {
            return Err(SyncError::Waiting(
                "the broadcast is not (yet) in Verity's database".into(),
            ));
        };
        let properties = ghl_properties(id, &figures(&info, &counts));
        let unchanged = state.figures.as_ref() == Some(&properties);
        let (record_id, wrote) = match (&state.ghl_record_id, unchanged) {
            (Some(record), true) => (record.clone(), false),
            _ => (self.write(id, state, &properties).await?, true),
        };
        let coalesced = broadcast_store::commit(
            &self.pool,
            &Computed {
                broadcast_id: id,
                started_at: state.now,
                ghl_record_id: &record_id,
                figures: &properties,
                wrote,
                event_id: event.id,
            },
        )
        .await?;
        Ok(Outcome::Done {
            direction: "verity_to_ghl",
            source_id: Some(id.to_string()),
            target_id: Some(record_id),
            decisions: json!({
                "ghlWrite": if wrote { "written" } else { "unchanged" },
                "coalesced": coalesced,
                "figures": properties,
            }),
        })
    }

    /// Update the known record, else find it by `broadcast_id`, else create it.
    async fn write(
        &self,
        id: &str,
        state: &Leased,
        properties: &Value,
    ) -> Result<String, SyncError> {
        if let Some(record) = &state.ghl_record_id {
            if self
                .ghl
                .update_record(GHL_OBJECT_KEY, record, properties)
                .await?
            {
                return Ok(record.clone());
            }
            broadcast_store::forget_record(&self.pool, id).await?;
        }
        if let Some(record) = self.find(id).await? {
            return self.update_found(id, &record, properties).await;
        }
        match self.ghl.create_record(GHL_OBJECT_KEY, properties).await? {
            RecordCreated::New(record) => Ok(record),
            RecordCreated::Duplicate(Some(record)) => {
                self.update_found(id, &record, properties).await
            }
            RecordCreated::Duplicate(None) => match self.find(id).await? {
                Some(record) => self.update_found(id, &record, properties).await,
                // GHL's search index lags its writes: the record exists but is not
                // searchable yet. Retrying later finds it.
                None => Err(ProviderError {
                    provider: Provider::Ghl,
                    operation: "create object record",
                    status: Some(400),
                    message: "GHL reports a duplicate record it cannot find yet".into(),
                    retryable: true,
                    retry_after: None,
                    throttled: false,
                    paused: false,
                }
                .into()),
            },
        }
    }

    async fn find(&self, id: &str) -> Result<Option<String>, SyncError> {
        Ok(self
            .ghl
            .find_records(GHL_OBJECT_KEY, GHL_ID_PROPERTY, id)
            .await?
            .into_iter()
            .next())
    }

    async fn update_found(
        &self,
        id: &str,
        record: &str,
        properties: &Value,
    ) -> Result<String, SyncError> {
        if self
            .ghl
            .update_record(GHL_OBJECT_KEY, record, properties)
            .await?
        {
            Ok(record.to_string())
        } else {
            Err(SyncError::Waiting(format!(
                "the GHL record of broadcast {id} vanished while it was written"
            )))
        }
    }
}

/// What the webhook consumer needs to turn GHL appointments into broadcast events.
#[derive(Clone)]
pub struct AppointmentLink {
    pub verity: VerityDb,
    /// The broadcast inbox's store and queue.
    pub inbox: Ingest,
    pub settle: Duration,
}

/// A GHL appointment: one `analytics_updated` per broadcast the contact received (one
/// per broadcast and appointment, however often GHL re-sends it).
pub async fn appointment_event(deps: &SyncDeps, event: &EventRow) -> Result<Outcome, SyncError> {
    let Some(link) = &deps.appointments else {
        return Ok(Outcome::Skipped(
            "broadcast analytics are not configured (VERITY_DATABASE_URL)".into(),
        ));
    };
    let appointment = event.payload.get("appointment").unwrap_or(&event.payload);
    let (Some(appointment_id), Some(contact_id)) = (
        event.entity_id.as_deref(),
        appointment.get("contactId").and_then(Value::as_str),
    ) else {
        return Ok(Outcome::Skipped(
            "appointment without an id or contact".into(),
        ));
    };
    let Some(contact) = deps.ghl.get_contact(contact_id).await? else {
        return Ok(Outcome::Skipped(
            "the appointment's contact is not in GHL".into(),
        ));
    };
    let phone = contact
        .get("phone")
        .and_then(Value::as_str)
        .and_then(|p| to_e164(p, &deps.default_country));
    let email = contact.get("email").and_then(Value::as_str);
    let broadcasts = link
        .verity
        .broadcasts_of_contact(phone.as_deref(), email)
        .await?;
    let mut queued = Vec::new();
    for broadcast_id in &broadcasts {
        store_appointment_event(link, event, broadcast_id, appointment_id).await?;
        queued.push(broadcast_id.clone());
    }
    if queued.is_empty() {
        return Ok(Outcome::Skipped("the contact received no broadcast".into()));
    }
    Ok(Outcome::Done {
        direction: "ghl_to_verity_analytics",
        source_id: Some(appointment_id.to_string()),
        target_id: None,
        decisions: json!({"broadcasts": queued}),
    })
}

async fn store_appointment_event(
    link: &AppointmentLink,
    event: &EventRow,
    broadcast_id: &str,
    appointment_id: &str,
) -> Result<(), SyncError> {
    let payload = json!({
        "broadcastId": broadcast_id,
        "eventType": BroadcastEventType::AnalyticsUpdated.as_str(),
        "triggeredBy": "ghl_appointment",
        "appointmentId": appointment_id,
        "webhookEventId": event.id,
    })
    .to_string();
    let dedupe = appointment_dedupe_key(broadcast_id, appointment_id);
    let new = NewBroadcastEvent {
        source: "ghl_appointment",
        broadcast_id,
        event_type: BroadcastEventType::AnalyticsUpdated.as_str(),
        payload_json: &payload,
        dedupe: &dedupe,
        quarantine: None,
        settle: link.settle,
    };
    match broadcast_store::insert(&link.inbox.pool, &new).await? {
        Stored::Inserted {
            enqueue: Some(m), ..
        }
        | Stored::Duplicate {
            requeue: Some(m), ..
        } => {
            // A failed send leaves the row to the relay.
            link.inbox.enqueue(&m).await;
        }
        _ => {}
    }
    Ok(())
}
