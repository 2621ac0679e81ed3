//! The opt-out job (SPEC §7): what follows a request recorded at ingest. The request is
//! in the registry before its webhook is acknowledged; the job, stored in the same
//! transaction under a message group of its own (never behind the person's earlier,
//! perhaps failing, events), then sends the one reply the request asks for and shows the
//! registry's status on every GHL contact of the number.
//!
//! Replies: the confirmation of an opt-out that changed the registry, at most once and
//! only within [`CONFIRMATION_WINDOW`] of the STOP (later it would be a text to an
//! opted-out number outside the safe harbour); the HELP answer, to any number, opted
//! out or not. Both through the guarded texting client, only for requests made by text
//! to the texting system (its number answers them).
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::optout_mirror;
use super::{Outcome, SyncDeps, SyncError};
use crate::adapters::event_store::EventRow;
use crate::adapters::optout_store::{self, StoredRequest};
use crate::providers::texting_api::{Purpose, SendError, TextingClient};

/// A confirmation goes out this soon after the STOP, or not at all (FCC: one
/// confirmation, within five minutes).
pub const CONFIRMATION_WINDOW: Duration = Duration::from_secs(5 * 60);
pub use crate::domain::optout::JOB_EVENT;

/// The texts the middleware itself sends (SPEC §7), both through the guarded client.
#[derive(Debug, Clone)]
pub struct Replies {
    /// `TEXTING_HELP_REPLY`: the answer to HELP / INFO.
    pub help: Option<String>,
    /// `TEXTING_STOP_CONFIRMATION`: at most one per opt-out.
    pub stop_confirmation: Option<String>,
    /// `TEXTING_FROM_NUMBER`: used when the request does not say which number it reached.
    pub from_number: Option<String>,
    /// `TEXTING_STOP_CONFIRMATION_WINDOW_SECONDS`: how soon after the STOP a
    /// confirmation may still go out; never more than [`CONFIRMATION_WINDOW`].
    pub confirmation_window: Duration,
}

/// Run the job of `event`: the reply (when `texting` is given) and the GHL mirror.
pub async fn run(
    deps: &SyncDeps,
    texting: Option<(&TextingClient, &Replies)>,
    event: &EventRow,
) -> Result<Outcome, SyncError> {
    let id: Uuid = event
        .payload
        .get("optoutEventId")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| SyncError::Invalid("opt-out job without its request".into()))?;
    let Some(request) = optout_store::request(&deps.pool, id).await? else {
        return Err(SyncError::Invalid(
            "the job's request is not on record".into(),
        ));
    };
    let reply_from = event.payload.get("replyFrom").and_then(Value::as_str);
    let mut decisions = json!({"request": id, "action": request.action});
    decisions["reply"] = match texting {
        Some(t) => json!(reply(deps, t, &request, reply_from).await?),
        None => json!("none: the request was not made to the texting system"),
    };
    if matches!(request.action.as_str(), "opt_out" | "opt_in") {
        let shown = optout_mirror::show_everywhere(deps, &request.phone).await?;
        decisions["ghl_contacts"] = json!(shown.len());
        decisions["ghl_written"] = json!(shown.iter().filter(|(_, w)| *w).count());
    }
    Ok(Outcome::Done {
        direction: "registry_to_ghl",
        source_id: Some(id.to_string()),
        target_id: None,
        decisions,
    })
}

/// The one reply a request asks for: claimed once, then sent through the guarded
/// client. Never retried once claimed: a second confirmation is worse than a missing one.
pub async fn reply(
    deps: &SyncDeps,
    (client, replies): (&TextingClient, &Replies),
    request: &StoredRequest,
    reply_from: Option<&str>,
) -> Result<String, SyncError> {
    let pool = &deps.pool;
    if request.source != "texting" {
        return Ok("none: the request was not made to the texting system".into());
    }
    let (text, kind, purpose) = match request.action.as_str() {
        "opt_out" if !request.changed => return Ok("none: the number was already opted out".into()),
        "opt_out" => {
            // From the STOP's arrival: a confirmation held up by anything (a backlog, a
            // replay) does not go out late.
            let age = (Utc::now() - request.received_at)
                .to_std()
                .unwrap_or_default();
            let window = replies.confirmation_window.min(CONFIRMATION_WINDOW);
            if age > window {
                return Ok(format!(
                    "none: the STOP is {}s old, past the {}s a confirmation may follow it",
                    age.as_secs(),
                    window.as_secs()
                ));
            }
            (
                replies.stop_confirmation.as_deref(),
                "confirmation",
                Purpose::OptoutConfirmation(request.id),
            )
        }
        "help" => (
            replies.help.as_deref(),
            "help",
            Purpose::HelpReply(request.id),
        ),
        _ => return Ok("none".into()),
    };
    let Some(text) = text else {
        return Ok(format!("none: no {kind} text configured"));
    };
    // The number the person texted answers them.
    let Some(from) = reply_from.or(replies.from_number.as_deref()) else {
        return Ok("none: no number to send from (TEXTING_FROM_NUMBER)".into());
    };
    if !optout_store::take_reply(pool, request.id, kind).await? {
        return Ok(format!("none: the {kind} was already handled"));
    }
    match client.send(&request.phone, from, text, purpose).await {
        Ok(sent) => {
            optout_store::save_reply_send(pool, request.id, sent.send_id).await?;
            Ok(format!("{kind} sent"))
        }
        Err(SendError::OptedOut) => Ok(format!("{kind} refused: the number is opted out")),
        Err(SendError::Store(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(kind, error = %e, "reply not sent");
            Ok(format!("{kind} not sent: {e}"))
        }
    }
}
