//! Inbound Clerk session JWTs (SPEC §13): RS256, the key from `CLERK_JWT_KEY` (PEM) or
//! the JWKS at `CLERK_JWKS_URL` (cached per cold start, refetched at most once a minute
//! for an unknown `kid`), `iss` = `CLERK_ISSUER`, `exp` / `nbf` with 10 s leeway, and
//! `azp` among `CLERK_AUTHORIZED_PARTIES` when the token carries one.
use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Clock skew tolerated on `exp` and `nbf` (Clerk's own SDKs allow 5 s).
pub const LEEWAY_SECONDS: u64 = 10;
const JWKS_REFETCH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ClerkClaims {
    pub sub: String,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub azp: Option<String>,
    /// Every other claim (an admin claim, `metadata`, …), for the authorization rules.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl ClerkClaims {
    /// Whether the claim `name` (a top-level claim, or `a.b` inside one) is `true` (or
    /// the string "true" / "admin").
    pub fn flag(&self, name: &str) -> bool {
        let mut parts = name.split('.');
        let Some(first) = parts.next() else {
            return false;
        };
        let mut v = self.other.get(first);
        for p in parts {
            v = v.and_then(|x| x.get(p));
        }
        match v {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true" || s == "admin",
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClerkError {
    #[error("not a JWT")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("authorized party not allowed")]
    Party,
    #[error("cannot fetch the JWKS: {0}")]
    Jwks(String),
}

enum Keys {
    Pem(DecodingKey),
    Jwks {
        url: String,
        http: reqwest::Client,
        cache: Mutex<(HashMap<String, DecodingKey>, Option<Instant>)>,
    },
}

pub struct ClerkVerifier {
    keys: Keys,
    issuer: String,
    authorized_parties: Vec<String>,
    /// `CLERK_AUDIENCE`: when set, `aud` must name it.
    audience: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<jsonwebtoken::jwk::Jwk>,
}

impl ClerkVerifier {
    /// The issuer sessions must come from (the authorization server of RFC 9728).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// With a PEM public key (no network).
    pub fn with_pem(pem: &str, issuer: &str, parties: Vec<String>) -> Result<Self, ClerkError> {
        let key = DecodingKey::from_rsa_pem(pem.replace("\\n", "\n").as_bytes())
            .map_err(|e| ClerkError::Rejected(format!("CLERK_JWT_KEY: {e}")))?;
        Ok(ClerkVerifier {
            keys: Keys::Pem(key),
            issuer: issuer.to_string(),
            authorized_parties: parties,
            audience: None,
        })
    }

    /// Require `aud` to name `audience` (`CLERK_AUDIENCE`).
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience.filter(|a| !a.trim().is_empty());
        self
    }

    /// With the instance's JWKS URL (fetched on first use).
    pub fn with_jwks(http: reqwest::Client, url: &str, issuer: &str, parties: Vec<String>) -> Self {
        ClerkVerifier {
            keys: Keys::Jwks {
                url: url.to_string(),
                http,
                cache: Mutex::new((HashMap::new(), None)),
            },
            issuer: issuer.to_string(),
            authorized_parties: parties,
            audience: None,
        }
    }

    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, ClerkError> {
        match &self.keys {
            Keys::Pem(k) => Ok(k.clone()),
            Keys::Jwks { url, http, cache } => {
                let kid = kid.ok_or(ClerkError::UnknownKey)?;
                let mut c = cache.lock().await;
                if let Some(k) = c.0.get(kid) {
                    return Ok(k.clone());
                }
                if c.1.is_some_and(|at| at.elapsed() < JWKS_REFETCH) {
                    return Err(ClerkError::UnknownKey);
                }
                c.1 = Some(Instant::now());
                let set: JwkSet = http
                    .get(url)
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await
                    .map_err(|e| ClerkError::Jwks(e.without_url().to_string()))?
                    .json()
                    .await
                    .map_err(|e| ClerkError::Jwks(e.without_url().to_string()))?;
                c.0 = set
                    .keys
                    .iter()
                    .filter_map(|k| {
                        Some((k.common.key_id.clone()?, DecodingKey::from_jwk(k).ok()?))
                    })
                    .collect();
                c.0.get(kid).cloned().ok_or(ClerkError::UnknownKey)
            }
        }
    }

    pub async fn verify(&self, token: &str) -> Result<ClerkClaims, ClerkError> {
        let header = decode_header(token).map_err(|_| ClerkError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(ClerkError::Rejected("algorithm must be RS256".into()));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = LEEWAY_SECONDS;
        v.validate_nbf = true;
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => v.validate_aud = false,
        }
        v.set_issuer(&[&self.issuer]);
        if self.audience.is_none() {
            v.set_required_spec_claims(&["exp", "iss", "sub"]);
        }
        let data = decode::<ClerkClaims>(token, &key, &v)
            .map_err(|e| ClerkError::Rejected(e.to_string()))?;
        if let Some(azp) = &data.claims.azp {
            if !self.authorized_parties.is_empty()
                && !self.authorized_parties.iter().any(|p| p == azp)
            {
                return Err(ClerkError::Party);
            }
        }
        Ok(data.claims)
    }
}
