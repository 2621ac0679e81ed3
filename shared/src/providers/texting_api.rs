//! The in-house texting API (SPEC §3): `POST /messages {to, from, body}` → `{id, status}`,
//! `GET /messages/{id}`; Bearer `TEXTING_API_KEY`.
//!
//! Every send goes through the opt-out registry (SPEC §7): the statement that records
//! the attempt in `texting_sends` also checks the registry, so no attempt is unrecorded
//! and an opted-out number is refused with [`SendError::OptedOut`]. The only exception
//! is the one confirmation of the opt-out that is the number's current registry entry.
//! The HTTP client that sends without the guard is private to this module: no code path
//! can send around it.
use deadpool_postgres::Pool;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::{Provider, ProviderError};
use crate::adapters::db::DbError;
use crate::domain::phone::to_e164;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    pub id: String,
    pub status: String,
}

/// Why a send did not happen (or may not have).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("refused: the number is opted out of SMS")]
    OptedOut,
    #[error("refused: not a valid phone number")]
    InvalidNumber,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// Why a message is sent: the guard's exception applies only to an opt-out's
/// confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The single confirmation of opt-out event `0` (allowed to that opted-out number).
    OptoutConfirmation(Uuid),
    /// The answer to HELP request `0`.
    HelpReply(Uuid),
    /// Anything else.
    Message,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::OptoutConfirmation(_) => "optout_confirmation",
            Purpose::HelpReply(_) => "help_reply",
            Purpose::Message => "message",
        }
    }

    fn event(self) -> Option<Uuid> {
        match self {
            Purpose::OptoutConfirmation(id) | Purpose::HelpReply(id) => Some(id),
            Purpose::Message => None,
        }
    }
}

/// The guarded texting client.
#[derive(Clone)]
pub struct TextingClient {
    raw: unguarded::Api,
    pool: Pool,
    default_country: String,
}

/// A recorded, allowed send: its id in `texting_sends`, and the answer.
#[derive(Debug, Clone)]
pub struct Sent {
    pub send_id: Uuid,
    pub message: SentMessage,
}

/// The guard's statement: the attempt is recorded as it reads the registry. An opted-out
/// number is refused, but for the confirmation of the opt-out that is its current entry
/// and the answer to a HELP it sent (HELP is answered to any number).
pub const GUARD: &str =
    "INSERT INTO texting_sends (to_number, from_number, purpose, optout_event_id, status)
    SELECT $1, $2, $3, $4,
        CASE WHEN r.status = 'opted_out'
                  AND NOT ($3 = 'optout_confirmation' AND r.last_event_id IS NOT DISTINCT FROM $4)
                  AND NOT ($3 = 'help_reply' AND EXISTS (SELECT 1 FROM optout_events h
                           WHERE h.id = $4 AND h.action = 'help' AND h.phone_number = $1))
             THEN 'refused' ELSE 'sending' END
    FROM (SELECT 1) AS one LEFT JOIN optout_registry r ON r.phone_number = $1
    RETURNING id, status";

/// Read the registry for a send after any opt-out of `phone` being recorded right now
/// has committed: the request holds this key exclusively while it is applied (the
/// registry's trigger), a guard shared; the guard's own statement then reads the
/// registry in a snapshot taken after the lock.
pub const GUARD_LOCK: &str = "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))";

impl TextingClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api_key: &str,
        pool: Pool,
        default_country: &str,
    ) -> Self {
        TextingClient {
            raw: unguarded::Api::new(http, base_url, api_key),
            pool,
            default_country: default_country.to_string(),
        }
    }

    /// Send `body` to `to`, unless the registry forbids it. The attempt is recorded
    /// (refused ones too) in the same statement that reads the registry.
    pub async fn send(
        &self,
        to: &str,
        from: &str,
        body: &str,
        purpose: Purpose,
    ) -> Result<Sent, SendError> {
        let to = to_e164(to, &self.default_country).ok_or(SendError::InvalidNumber)?;
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let (send_id, status) = guarded(
            &mut client,
            &to,
            Some(from),
            purpose.name(),
            purpose.event(),
        )
        .await?;
        if status == "refused" {
            tracing::warn!(send_id = %send_id, purpose = purpose.name(), "send to an opted-out number refused");
            return Err(SendError::OptedOut);
        }
        let result = self.raw.send(&to, from, body).await;
        let (status, message_id, error) = match &result {
            Ok(m) => ("sent", Some(m.id.as_str()), None),
            Err(e) => ("failed", None, Some(e.to_string())),
        };
        client
            .execute(
                "UPDATE texting_sends SET status = $2, texting_message_id = $3, error_message = $4, updated_at = now() WHERE id = $1",
                &[&send_id, &status, &message_id, &error],
            )
            .await
            .map_err(DbError::from)?;
        Ok(Sent {
            send_id,
            message: result?,
        })
    }

    /// `None` when the texting system does not know the id.
    pub async fn get(&self, id: &str) -> Result<Option<Value>, ProviderError> {
        self.raw.get(id).await
    }

    /// Pause the texting system's work when it refuses our key, and send nothing
    /// while paused.
    pub fn with_pauses(mut self, pauses: crate::adapters::provider_pause::ProviderPauses) -> Self {
        self.raw.pauses = Some(pauses);
        self
    }
}

/// Record a send attempt to `to` and read the registry for it, after any opt-out being
/// recorded has committed: `(send id, "sending" | "refused")`.
pub async fn guarded(
    client: &mut deadpool_postgres::Client,
    to: &str,
    from: Option<&str>,
    purpose: &str,
    event: Option<Uuid>,
) -> Result<(Uuid, String), DbError> {
    let tx = client.transaction().await?;
    tx.execute(GUARD_LOCK, &[&to]).await?;
    let row = tx.query_one(GUARD, &[&to, &from, &purpose, &event]).await?;
    tx.commit().await?;
    Ok((row.get(0), row.get(1)))
}

/// The HTTP API itself. Private: sends happen only through [`TextingClient::send`].
mod unguarded {
    use super::*;
    use reqwest::Method;

    #[derive(Clone)]
    pub(super) struct Api {
        http: reqwest::Client,
        base: String,
        api_key: String,
        pub(super) pauses: Option<crate::adapters::provider_pause::ProviderPauses>,
    }

    impl Api {
        pub(super) fn new(http: reqwest::Client, base_url: &str, api_key: &str) -> Self {
            Api {
                http,
                base: base_url.trim_end_matches('/').to_string(),
                api_key: api_key.to_string(),
                pauses: None,
            }
        }

        async fn call(
            &self,
            op: &'static str,
            method: Method,
            path: &str,
            body: Option<&Value>,
        ) -> Result<Value, ProviderError> {
            use crate::adapters::provider_pause::Gate;
            if let Some(p) = &self.pauses {
                if let Gate::Paused { since } = p.check(Provider::Texting.key()).await {
                    return Err(ProviderError::paused(Provider::Texting, op, since));
                }
            }
            let mut req = self
                .http
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.api_key);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| ProviderError::transport(Provider::Texting, op, e))?;
            let status = resp.status().as_u16();
            let text = resp
                .text()
                .await
                .map_err(|e| ProviderError::transport(Provider::Texting, op, e))?;
            if !(200..300).contains(&status) {
                let err = ProviderError::from_status(Provider::Texting, op, status, &text);
                if let (Some(p), true) = (&self.pauses, err.is_credential()) {
                    if p.pause(Provider::Texting.key(), &err.message).await.is_ok() {
                        return Err(ProviderError {
                            paused: true,
                            ..err
                        });
                    }
                }
                return Err(err);
            }
            serde_json::from_str(&text)
                .map_err(|_| ProviderError::unexpected_body(Provider::Texting, op, &text))
        }

        pub(super) async fn send(
            &self,
            to: &str,
            from: &str,
            body: &str,
        ) -> Result<SentMessage, ProviderError> {
            let v = self
                .call(
                    "send message",
                    Method::POST,
                    "/messages",
                    Some(&json!({"to": to, "from": from, "body": body})),
                )
                .await?;
            serde_json::from_value(v.clone()).map_err(|_| {
                ProviderError::unexpected_body(Provider::Texting, "send message", &v.to_string())
            })
        }

        pub(super) async fn get(&self, id: &str) -> Result<Option<Value>, ProviderError> {
            let path = format!(
                "/messages/{}",
                super::super::segment(Provider::Texting, "get message", id)?
            );
            match self.call("get message", Method::GET, &path, None).await {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.status == Some(404) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}
