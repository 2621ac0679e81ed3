//! Building the Verity functions' contexts from settings (SPEC §10, §13), once per cold
//! start.
use std::sync::Arc;

use crate::adapters::catalog_source;
use crate::auth::clerk::ClerkVerifier;
use crate::domain::verity::access::{parse_keys, parse_sms_operations, ScopedKey};
use crate::domain::verity::catalog::Catalog;
use crate::domain::verity::tools::Toolset;
use crate::lambda::{ConfigError, Settings};
use crate::providers::verity_api::{VerityAuth, VerityClient};
use crate::verity::gateway::{Gateway, GATEWAY_BUDGET};
use crate::verity::guard::SmsGuard;
use crate::verity::mcp::{McpSettings, Principal, VerityMcp};
use crate::verity::mcp_http::McpHttp;
use crate::verity::principal::ClerkSessions;
use deadpool_postgres::Pool;

/// Verity's client with the service credential: `VERITY_API_KEY`, else a Clerk machine
/// token minted with `CLERK_MACHINE_SECRET_KEY`. Never a user's session.
pub fn client(s: &Settings) -> Result<VerityClient, ConfigError> {
    let auth = match (s.get("VERITY_API_KEY"), s.get("CLERK_MACHINE_SECRET_KEY")) {
        (Some(key), _) => VerityAuth::ApiKey(key.to_string()),
        (None, Some(secret)) => VerityAuth::ClerkMachine {
            api_url: s
                .get_or("CLERK_API_URL", "https://api.clerk.com/v1")
                .to_string(),
            secret: secret.to_string(),
            cached: Arc::default(),
        },
        (None, None) => return Err(ConfigError::Missing("VERITY_API_KEY")),
    };
    let mut c = VerityClient::new(
        crate::providers::http_client_no_redirects(),
        s.require("VERITY_BASE_URL")?,
        auth,
    );
    c.max_response_bytes = s.parse_or("VERITY_MAX_RESPONSE_BYTES", 5 * 1024 * 1024usize)?;
    Ok(c)
}

/// The catalog at `VERITY_CATALOG_URI`.
pub async fn catalog(s: &Settings) -> Result<Catalog, String> {
    let uri = s
        .get("VERITY_CATALOG_URI")
        .ok_or_else(|| "VERITY_CATALOG_URI is not set".to_string())?;
    catalog_source::load(uri).await.map_err(|e| e.to_string())
}

/// Inbound Clerk verification, when `CLERK_JWT_KEY` or `CLERK_JWKS_URL` is set.
pub fn clerk(s: &Settings) -> Result<Option<ClerkVerifier>, ConfigError> {
    let parties: Vec<String> = s
        .get_or("CLERK_AUTHORIZED_PARTIES", "")
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let invalid = |reason: String| ConfigError::Invalid {
        name: "CLERK_JWT_KEY",
        reason,
    };
    match (s.get("CLERK_JWT_KEY"), s.get("CLERK_JWKS_URL")) {
        (None, None) => Ok(None),
        (Some(pem), _) => ClerkVerifier::with_pem(pem, s.require("CLERK_ISSUER")?, parties)
            .map(Some)
            .map_err(|e| invalid(e.to_string())),
        (None, Some(url)) => Ok(Some(ClerkVerifier::with_jwks(
            crate::providers::http_client(),
            url,
            s.require("CLERK_ISSUER")?,
            parties,
        ))),
    }
}

/// The callers' keys: `MCP_API_KEYS` when set, else `DF_MIDDLEWARE_API_KEY`; for the
/// gateway `DF_MIDDLEWARE_API_KEY` always counts too. Each may carry a scope.
pub fn keys(s: &Settings, gateway: bool) -> Result<Vec<ScopedKey>, ConfigError> {
    let invalid = |name, reason| ConfigError::Invalid { name, reason };
    let mut keys = match s.get("MCP_API_KEYS") {
        Some(list) => parse_keys(list).map_err(|r| invalid("MCP_API_KEYS", r))?,
        None => Vec::new(),
    };
    if gateway || keys.is_empty() {
        let own = parse_keys(s.require("DF_MIDDLEWARE_API_KEY")?)
            .map_err(|r| invalid("DF_MIDDLEWARE_API_KEY", r))?;
        keys.extend(own);
    }
    Ok(keys)
}

/// The opt-out guard of SMS operations (`VERITY_SMS_OPERATIONS` beside the built-in
/// ones), on the registry at `DATABASE_URL`.
pub fn sms_guard(s: &Settings, pool: Option<Pool>) -> Result<SmsGuard, ConfigError> {
    Ok(SmsGuard {
        operations: parse_sms_operations(s.get_or("VERITY_SMS_OPERATIONS", "")).map_err(
            |reason| ConfigError::Invalid {
                name: "VERITY_SMS_OPERATIONS",
                reason,
            },
        )?,
        pool,
        default_country: s.default_country(),
    })
}

fn audit_pool(s: &Settings) -> Result<Option<Pool>, ConfigError> {
    match s.get("DATABASE_URL") {
        Some(_) => Ok(Some(s.pool()?)),
        None => Ok(None),
    }
}

pub async fn gateway(s: &Settings) -> Result<Gateway, ConfigError> {
    let catalog = catalog(s).await.map(Arc::new);
    if let Err(e) = &catalog {
        tracing::error!(error = %e, "verity catalog unavailable");
    }
    let pool = audit_pool(s)?;
    Ok(Gateway {
        catalog,
        client: client(s)?,
        keys: keys(s, true)?,
        budget: GATEWAY_BUDGET,
        guard: sms_guard(s, pool.clone())?,
        audit: pool,
    })
}

/// The MCP handler; `audit` rows go to `DATABASE_URL` when it is set, and the SMS
/// guard reads the registry there.
pub async fn mcp_handler(
    s: &Settings,
    principal: Option<Principal>,
) -> Result<VerityMcp, ConfigError> {
    let catalog = catalog(s).await.map_err(|reason| ConfigError::Invalid {
        name: "VERITY_CATALOG_URI",
        reason,
    })?;
    let pool = audit_pool(s)?;
    let settings = McpSettings::from_settings(s)?;
    Ok(VerityMcp::new(
        Arc::new(Toolset::with_max_name(
            Arc::new(catalog),
            settings.max_tool_name,
        )),
        client(s)?,
        settings,
        pool.clone(),
        principal,
        sms_guard(s, pool)?,
    ))
}

fn list(s: &Settings, name: &str, default: &str) -> Vec<String> {
    s.get_or(name, default)
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// `mcp-http`: scoped keys, hosts from `MCP_ALLOWED_HOSTS` (else loopback only),
/// origins from `MCP_ALLOWED_ORIGINS` (else none: a browser's request is refused),
/// Clerk sessions only with `CLERK_SESSIONS_ALLOWED=true`.
pub async fn mcp_http(s: &Settings) -> Result<McpHttp, ConfigError> {
    let sessions = match s.parse_or("CLERK_SESSIONS_ALLOWED", false)? {
        true => Some(ClerkSessions {
            verifier: clerk(s)?
                .ok_or(ConfigError::Missing("CLERK_JWT_KEY"))?
                .with_audience(s.get("CLERK_AUDIENCE").map(str::to_string)),
            admin_claim: s.get("CLERK_ADMIN_CLAIM").map(str::to_string),
        }),
        false => None,
    };
    let handler = mcp_handler(s, None).await?;
    Ok(McpHttp::new(
        handler,
        keys(s, false)?,
        sessions,
        list(s, "MCP_ALLOWED_HOSTS", "localhost,127.0.0.1"),
        list(s, "MCP_ALLOWED_ORIGINS", ""),
    ))
}
