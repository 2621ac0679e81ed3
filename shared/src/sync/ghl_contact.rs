//! Creating a GHL contact once per person (SPEC §5–§6). GHL's search trails its writes
//! and a location may allow duplicate contacts, so "search, then create" alone makes a
//! second contact when an attempt dies between the create and the mapping, or when two
//! consumers meet on a new person. The intent is taken first (`ghl_contact_intents`,
//! keyed by the phone, else the email): one creator at a time; an attempt resuming an
//! intent looks for what the earlier one may have made, and waits out GHL's search lag
//! before it would create again.
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::{SyncDeps, SyncError};
use crate::domain::contact::Contact;
use crate::providers::ghl_api::Created;

/// Longer than the consumer's timeout: an attempt still running keeps its intent.
const INTENT_LEASE: Duration = Duration::from_secs(300);
/// How long after an unfinished create its contact may still be missing from GHL's
/// search ("updates can take a few seconds to show in search").
pub const SEARCH_SETTLES: Duration = Duration::from_secs(20);

/// Who the contact is, as a create and a search know them.
pub struct Identity<'a> {
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
}

impl Identity<'_> {
    fn key(&self) -> Option<String> {
        self.phone
            .map(|p| format!("phone:{p}"))
            .or_else(|| self.email.map(|e| format!("email:{}", e.to_lowercase())))
    }
}

/// What creating the contact came to.
pub enum CreateOnce {
    /// Created now: GHL's answer.
    Created(Value),
    /// It exists already (an earlier attempt, another writer): its id.
    Existing(String),
}

enum Intent {
    Mine { resumed: bool, age: Duration },
    Held,
    Made(String),
}

async fn take(deps: &SyncDeps, key: &str, event: Uuid) -> Result<Intent, SyncError> {
    let client = deps
        .pool
        .get()
        .await
        .map_err(crate::adapters::db::DbError::from)?;
    let row = client
        .query_opt(
            "INSERT INTO ghl_contact_intents (identity, creating_event, creating_since)
             VALUES ($1, $2, now())
             ON CONFLICT (identity) DO UPDATE SET creating_event = $2, updated_at = now(),
                 creating_since = CASE WHEN ghl_contact_intents.creating_event = $2
                     THEN ghl_contact_intents.creating_since ELSE now() END
             WHERE ghl_contact_intents.ghl_contact_id IS NULL
               AND (ghl_contact_intents.creating_event IS NULL OR ghl_contact_intents.creating_event = $2
                    OR ghl_contact_intents.creating_since < now() - make_interval(secs => $3))
             RETURNING (xmax <> 0),
                 EXTRACT(EPOCH FROM now() - (SELECT creating_since FROM ghl_contact_intents WHERE identity = $1))::float8",
            &[&key, &event, &INTENT_LEASE.as_secs_f64()],
        )
        .await
        .map_err(crate::adapters::db::DbError::from)?;
    if let Some(r) = row {
        let age = r.get::<_, Option<f64>>(1).unwrap_or(0.0).max(0.0);
        return Ok(Intent::Mine {
            resumed: r.get(0),
            age: Duration::from_secs_f64(age),
        });
    }
    let made: Option<String> = client
        .query_opt(
            "SELECT ghl_contact_id FROM ghl_contact_intents WHERE identity = $1",
            &[&key],
        )
        .await
        .map_err(crate::adapters::db::DbError::from)?
        .and_then(|r| r.get(0));
    Ok(made.map_or(Intent::Held, Intent::Made))
}

async fn settle(deps: &SyncDeps, key: &str, id: Option<&str>) -> Result<(), SyncError> {
    let client = deps
        .pool
        .get()
        .await
        .map_err(crate::adapters::db::DbError::from)?;
    client
        .execute(
            "UPDATE ghl_contact_intents SET ghl_contact_id = $2, creating_event = NULL,
                 creating_since = NULL, updated_at = now() WHERE identity = $1",
            &[&key, &id],
        )
        .await
        .map_err(crate::adapters::db::DbError::from)?;
    Ok(())
}

async fn search(deps: &SyncDeps, who: &Identity<'_>) -> Result<Option<String>, SyncError> {
    Ok(deps
        .ghl
        .find_duplicate(who.phone, who.email)
        .await?
        .as_ref()
        .and_then(Contact::ghl_id))
}

/// Create the contact of `who` with `body` (callers searched already and found
/// nobody), at most once whatever fails or races.
pub async fn create_once(
    deps: &SyncDeps,
    who: &Identity<'_>,
    body: &Value,
    event: Uuid,
) -> Result<CreateOnce, SyncError> {
    let Some(key) = who.key() else {
        return Err(SyncError::Invalid(
            "a contact needs a phone or an email".into(),
        ));
    };
    let taken = take(deps, &key, event).await?;
    let age = match &taken {
        Intent::Mine { age, .. } => *age,
        _ => Duration::ZERO,
    };
    match taken {
        Intent::Held => {
            return Err(SyncError::Later {
                after: Duration::from_secs(2),
                reason: "another event is creating this person's GHL contact".into(),
            })
        }
        Intent::Made(id) => {
            if deps.ghl.get_contact(&id).await?.is_some() {
                return Ok(CreateOnce::Existing(id));
            }
            // Deleted in GHL since: a new one may be made.
            settle(deps, &key, None).await?;
            return Box::pin(create_once(deps, who, body, event)).await;
        }
        Intent::Mine { resumed: true, age } => {
            // An earlier attempt may have created it and died before it said so.
            if let Some(id) = search(deps, who).await? {
                settle(deps, &key, Some(&id)).await?;
                return Ok(CreateOnce::Existing(id));
            }
            if age < SEARCH_SETTLES {
                return Err(SyncError::Later {
                    after: Duration::from_secs(2),
                    reason: "an earlier attempt's contact may not be searchable yet".into(),
                });
            }
        }
        Intent::Mine { resumed: false, .. } => {}
    }
    match deps.ghl.create_contact(body).await? {
        Created::New(contact) => {
            let id = Contact::ghl_id(&contact)
                .ok_or_else(|| SyncError::Invalid("GHL returned a contact without id".into()))?;
            settle(deps, &key, Some(&id)).await?;
            Ok(CreateOnce::Created(contact))
        }
        Created::Duplicate(Some(id)) => {
            settle(deps, &key, Some(&id)).await?;
            Ok(CreateOnce::Existing(id))
        }
        // GHL has the person but does not say who, and its search may not show them
        // yet: later.
        Created::Duplicate(None) => match search(deps, who).await? {
            Some(id) => {
                settle(deps, &key, Some(&id)).await?;
                Ok(CreateOnce::Existing(id))
            }
            // Not waited for without end: past a minute it counts as attempts.
            None if age < 3 * SEARCH_SETTLES => Err(SyncError::Later {
                after: Duration::from_secs(2),
                reason: "GHL names a duplicate contact its search does not show yet".into(),
            }),
            None => Err(SyncError::Waiting(
                "GHL names a duplicate contact its search does not find".into(),
            )),
        },
    }
}
