//! Building the Verity functions' contexts from settings (SPEC §10, §13), once per cold
//! start.
use std::sync::Arc;

use crate::adapters::catalog_source;
use crate::auth::clerk::ClerkVerifier;
use crate::domain::verity::catalog::Catalog;
use crate::domain::verity::tools::Toolset;
use crate::lambda::{ConfigError, Settings};
use crate::providers::verity_api::{VerityAuth, VerityClient};
use crate::verity::gateway::{Gateway, GATEWAY_BUDGET};
use crate::verity::mcp::{McpSettings, Principal, VerityMcp};
use crate::verity::mcp_http::McpHttp;

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
        crate::providers::http_client(),
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

pub async fn gateway(s: &Settings) -> Result<Gateway, ConfigError> {
    let catalog = catalog(s).await.map(Arc::new);
    if let Err(e) = &catalog {
        tracing::error!(error = %e, "verity catalog unavailable");
    }
    Ok(Gateway {
        catalog,
        client: client(s)?,
        api_key: s.require("DF_MIDDLEWARE_API_KEY")?.to_string(),
        budget: GATEWAY_BUDGET,
    })
}

/// The MCP handler; `audit` rows go to `DATABASE_URL` when it is set.
pub async fn mcp_handler(
    s: &Settings,
    principal: Option<Principal>,
) -> Result<VerityMcp, ConfigError> {
    let catalog = catalog(s).await.map_err(|reason| ConfigError::Invalid {
        name: "VERITY_CATALOG_URI",
        reason,
    })?;
    let audit = match s.get("DATABASE_URL") {
        Some(_) => Some(s.pool()?),
        None => None,
    };
    Ok(VerityMcp::new(
        Arc::new(Toolset::new(Arc::new(catalog))),
        client(s)?,
        McpSettings::from_settings(s)?,
        audit,
        principal,
    ))
}

/// `mcp-http`: keys from `MCP_API_KEYS` (else `DF_MIDDLEWARE_API_KEY`), hosts from
/// `MCP_ALLOWED_HOSTS` (else loopback only).
pub async fn mcp_http(s: &Settings) -> Result<McpHttp, ConfigError> {
    let keys: Vec<String> = match s.get("MCP_API_KEYS") {
        Some(list) => list
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        None => vec![s.require("DF_MIDDLEWARE_API_KEY")?.to_string()],
    };
    let hosts: Vec<String> = s
        .get_or("MCP_ALLOWED_HOSTS", "localhost,127.0.0.1")
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    let handler = mcp_handler(s, None).await?;
    Ok(McpHttp::new(handler, keys, clerk(s)?, hosts))
}
