//! The opt-out guard on Verity's SMS operations (SPEC §7, §13): the gateway and MCP
//! refuse a send to an opted-out number before anything reaches Verity, through the
//! same guarded statement as the texting client (the attempt — refused or not — is on
//! record in `texting_sends`, purpose `verity_gateway` / `verity_mcp`).
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::phone::to_e164;
use crate::domain::verity::access::{recipient, sms_operation, SmsOperation};
use crate::domain::verity::catalog::Operation;
use crate::providers::texting_api::guarded;

/// Why an SMS operation may not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error("the recipient has opted out of SMS")]
    OptedOut,
    #[error("{0}")]
    NoRecipient(String),
    #[error("the recipient is not a phone number")]
    InvalidNumber,
    #[error("the opt-out registry cannot be read, so no SMS goes out: {0}")]
    Registry(String),
}

impl Blocked {
    /// The HTTP status the gateway answers, and MCP reports in its tool error.
    pub fn status(&self) -> u16 {
        match self {
            Blocked::OptedOut => 403,
            Blocked::Registry(_) => 503,
            Blocked::NoRecipient(_) | Blocked::InvalidNumber => 400,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Blocked::OptedOut => "OPTED_OUT",
            Blocked::NoRecipient(_) | Blocked::InvalidNumber => "INVALID_REQUEST",
            Blocked::Registry(_) => "REGISTRY_UNAVAILABLE",
        }
    }
}

#[derive(Clone)]
pub struct SmsGuard {
    pub operations: Vec<SmsOperation>,
    /// The registry's database; without it every SMS operation is refused.
    pub pool: Option<Pool>,
    pub default_country: String,
}

/// A send the guard let through: settle it with its outcome.
pub struct Pass {
    id: Uuid,
    pool: Pool,
}

impl SmsGuard {
    /// `Ok(None)` when `op` sends no SMS; `Ok(Some)` when it may go out.
    pub async fn check(
        &self,
        op: &Operation,
        body: Option<&Value>,
        purpose: &str,
    ) -> Result<Option<Pass>, Blocked> {
        let Some(sms) = sms_operation(&self.operations, op) else {
            return Ok(None);
        };
        let to = recipient(sms, body).map_err(Blocked::NoRecipient)?;
        let to = to_e164(to, &self.default_country).ok_or(Blocked::InvalidNumber)?;
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| Blocked::Registry("no DATABASE_URL".into()))?;
        let check = async {
            let mut client = pool.get().await?;
            guarded(&mut client, &to, None, purpose, None).await
        };
        let (id, status) = tokio::time::timeout(std::time::Duration::from_secs(3), check)
            .await
            .map_err(|_| Blocked::Registry("timeout".into()))?
            .map_err(|e| Blocked::Registry(e.to_string()))?;
        if status == "refused" {
            tracing::warn!(send_id = %id, purpose, "verity SMS to an opted-out number refused");
            return Err(Blocked::OptedOut);
        }
        Ok(Some(Pass {
            id,
            pool: pool.clone(),
        }))
    }
}

impl Pass {
    /// Record what Verity answered (`sent` for a 2xx, else `failed`).
    pub async fn settle(self, status: u16) {
        let outcome = if (200..300).contains(&status) {
            "sent"
        } else {
            "failed"
        };
        let error = (outcome == "failed").then(|| format!("Verity answered {status}"));
        let write = async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "UPDATE texting_sends SET status = $2, error_message = $3, updated_at = now() WHERE id = $1",
                    &[&self.id, &outcome, &error],
                )
                .await?;
            Ok::<_, crate::adapters::db::DbError>(())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "verity SMS outcome not recorded"),
            Err(_) => tracing::warn!("verity SMS outcome not recorded: timeout"),
        }
    }
}
