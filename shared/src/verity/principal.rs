//! Who is calling, from the request (SPEC §13 "Authorization"): a Bearer API key
//! (scoped, compared in constant time against every configured key), or — only when
//! `CLERK_SESSIONS_ALLOWED=true` — a Clerk session token, admin when its
//! `CLERK_ADMIN_CLAIM` says so. Refused and permitted calls alike are audited in
//! `mcp_tool_calls`.
use std::time::Duration;

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use crate::auth::clerk::ClerkVerifier;
use crate::auth::secret_eq;
use crate::domain::verity::access::{Principal, ScopedKey};

/// Clerk sessions as principals: off unless `CLERK_SESSIONS_ALLOWED=true`.
pub struct ClerkSessions {
    pub verifier: ClerkVerifier,
    /// `CLERK_ADMIN_CLAIM`: the claim (`a.b` for a nested one) that makes a user admin.
    pub admin_claim: Option<String>,
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization?
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
}

/// The principal of an API key; every key is compared, with no early exit.
pub fn of_key(keys: &[ScopedKey], token: &str) -> Option<Principal> {
    let mut matched = None;
    for key in keys {
        if secret_eq(token.as_bytes(), key.secret.as_bytes()) && matched.is_none() {
            matched = Some(key);
        }
    }
    matched.map(|key| Principal {
        // Named without being revealed: the first 8 hex of its SHA-256.
        id: format!(
            "key:{}",
            &hex::encode(Sha256::digest(key.secret.as_bytes()))[..8]
        ),
        read_only: key.read_only,
        domains: key.domains.clone(),
        admin: key.admin,
    })
}

/// The principal of a Bearer token: a key, else an allowed Clerk session.
pub async fn of_bearer(
    keys: &[ScopedKey],
    clerk: Option<&ClerkSessions>,
    authorization: Option<&str>,
) -> Option<Principal> {
    let token = bearer(authorization)?;
    if let Some(p) = of_key(keys, token) {
        return Some(p);
    }
    let clerk = clerk.filter(|_| token.matches('.').count() == 2)?;
    match clerk.verifier.verify(token).await {
        Ok(claims) => Some(Principal {
            id: format!("clerk:{}", claims.sub),
            read_only: false,
            domains: None,
            admin: clerk.admin_claim.as_deref().is_some_and(|c| claims.flag(c)),
        }),
        Err(e) => {
            tracing::info!(error = %e, "Clerk token refused");
            None
        }
    }
}

/// One row of the call audit (who, what, Verity's status or 0, how long, why refused):
/// never arguments or bodies.
#[allow(clippy::too_many_arguments)]
pub async fn audit(
    pool: Option<&Pool>,
    who: &Principal,
    tool: &str,
    method: &str,
    path: &str,
    status: i32,
    elapsed: Duration,
    error: Option<String>,
) {
    let ms = elapsed.as_millis() as i32;
    tracing::info!(principal = %who.id, tool, method, path, status, duration_ms = ms, refused = error.is_some(), "verity call");
    let Some(pool) = pool else {
        return;
    };
    let write = async {
        let client = pool.get().await?;
        client
            .execute(
                "INSERT INTO mcp_tool_calls (principal, tool, method, path, status, duration_ms, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&who.id, &tool, &method, &path, &status, &ms, &error],
            )
            .await?;
        Ok::<_, crate::adapters::db::DbError>(())
    };
    match tokio::time::timeout(Duration::from_secs(2), write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "audit row not written"),
        Err(_) => tracing::warn!("audit row not written: timeout"),
    }
}
