//! Verity's HTTP API as this system calls it (SPEC §13): a service credential from
//! configuration (never a borrowed user session, never the caller's token), a time
//! budget per call, retries of 429 / 503 (and other 5xx for idempotent methods) with
//! back-off inside that budget, and a cap on the response size.
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::domain::verity::tools::Request;

/// How Verity learns who is calling.
#[derive(Clone)]
pub enum VerityAuth {
    /// `VERITY_API_KEY`, sent as a Bearer token.
    ApiKey(String),
    /// A Clerk machine-to-machine token minted with `CLERK_MACHINE_SECRET_KEY`, cached
    /// for its lifetime, refreshed once on a 401.
    ClerkMachine {
        api_url: String,
        secret: String,
        cached: Arc<Mutex<Option<(String, Instant)>>>,
    },
}

/// Lifetime asked for a machine token; it is reused until a minute before it ends.
const MACHINE_TOKEN_SECONDS: u64 = 3600;

#[derive(Clone)]
pub struct VerityClient {
    http: reqwest::Client,
    base: String,
    auth: VerityAuth,
    /// Larger answers are refused (`too_large`), not buffered.
    pub max_response_bytes: usize,
}

/// Verity's answer.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub status: u16,
    /// JSON when Verity sent JSON, else the text as a JSON string.
    pub body: Value,
}

impl Upstream {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// What Verity said went wrong (`error`, `error.message` or `message`).
    pub fn error_message(&self) -> &str {
        let b = &self.body;
        b.get("error")
            .and_then(|e| {
                e.as_str()
                    .or_else(|| e.get("message").and_then(Value::as_str))
            })
            .or_else(|| b.get("message").and_then(Value::as_str))
            .unwrap_or("Verity refused the request")
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("Verity did not answer within the time budget")]
    Timeout,
    #[error("Verity's answer exceeds {0} bytes")]
    TooLarge(usize),
    #[error("could not reach Verity: {0}")]
    Transport(String),
    /// No connection was made: the request cannot have reached Verity.
    #[error("could not connect to Verity: {0}")]
    NotConnected(String),
    #[error("could not obtain a service credential for Verity: {0}")]
    Credential(String),
}

/// Request headers a caller may pass through (everything else is dropped: never
/// `Authorization`, `Cookie`, `Host` or hop-by-hop headers).
pub const FORWARDED_HEADERS: &[&str] = &[
    "accept-language",
    "idempotency-key",
    "x-request-id",
    "x-correlation-id",
];

impl VerityClient {
    pub fn new(http: reqwest::Client, base: &str, auth: VerityAuth) -> Self {
        VerityClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth,
            max_response_bytes: 5 * 1024 * 1024,
        }
    }

    async fn credential(&self, refresh: bool) -> Result<String, UpstreamError> {
        match &self.auth {
            VerityAuth::ApiKey(key) => Ok(key.clone()),
            VerityAuth::ClerkMachine {
                api_url,
                secret,
                cached,
            } => {
                let mut slot = cached.lock().await;
                if let Some((token, until)) = slot.as_ref() {
                    if !refresh && *until > Instant::now() {
                        return Ok(token.clone());
                    }
                }
                let resp = self
                    .http
                    .post(format!("{}/m2m_tokens", api_url.trim_end_matches('/')))
                    .bearer_auth(secret)
                    .json(&json!({"seconds_until_expiration": MACHINE_TOKEN_SECONDS}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .map_err(|e| UpstreamError::Credential(e.without_url().to_string()))?;
                let status = resp.status().as_u16();
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                let token = v
                    .get("token")
                    .and_then(Value::as_str)
                    .filter(|_| (200..300).contains(&status))
                    .ok_or_else(|| UpstreamError::Credential(format!("Clerk answered {status}")))?;
                let until =
                    Instant::now() + Duration::from_secs(MACHINE_TOKEN_SECONDS.saturating_sub(60));
                *slot = Some((token.to_string(), until));
                Ok(token.to_string())
            }
        }
    }

    /// Send `req` with the allow-listed `headers`, retrying inside `deadline`.
    pub async fn send(
        &self,
        req: &Request,
        headers: &[(String, String)],
        deadline: Instant,
    ) -> Result<Upstream, UpstreamError> {
        let mut attempts = 0u32;
        let mut refreshed = false;
        loop {
            attempts += 1;
            let token = self.credential(false).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(UpstreamError::Timeout);
            }
            let (status, retry_after, body) = match self.once(req, headers, &token, left).await {
                Ok(r) => r,
                // A refused connection never reached Verity: safe to repeat any method.
                Err(UpstreamError::Transport(_) | UpstreamError::NotConnected(_))
                    if attempts < 3 && req.method.idempotent() =>
                {
                    tokio::time::sleep(backoff(attempts, None, deadline)).await;
                    continue;
                }
                Err(UpstreamError::NotConnected(_)) if attempts < 3 => {
                    tokio::time::sleep(backoff(attempts, None, deadline)).await;
                    continue;
                }
                Err(UpstreamError::NotConnected(e)) => return Err(UpstreamError::Transport(e)),
                Err(e) => return Err(e),
            };
            if status == 401 && matches!(self.auth, VerityAuth::ClerkMachine { .. }) && !refreshed {
                refreshed = true;
                self.credential(true).await?;
                continue;
            }
            // 429: not processed. A 5xx may come after the work was done (an SMS handed
            // to the carrier, then a failed write): only repeatable methods retry it.
            let retryable = status == 429
                || (matches!(status, 500 | 502 | 503 | 504) && req.method.idempotent());
            let wait = backoff(attempts, retry_after, deadline);
            if retryable
                && attempts < 5
                && Instant::now() + wait + Duration::from_millis(200) < deadline
            {
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(Upstream { status, body });
        }
    }

    async fn once(
        &self,
        req: &Request,
        headers: &[(String, String)],
        token: &str,
        left: Duration,
    ) -> Result<(u16, Option<Duration>, Value), UpstreamError> {
        let method = reqwest::Method::from_bytes(req.method.as_str().as_bytes())
            .map_err(|e| UpstreamError::Transport(e.to_string()))?;
        let mut r = self
            .http
            .request(method, format!("{}{}", self.base, req.path))
            .query(&req.query)
            .bearer_auth(token)
            .header("accept", "application/json")
            .timeout(left);
        for (k, v) in headers {
            let lower = k.to_ascii_lowercase();
            if !FORWARDED_HEADERS.contains(&lower.as_str()) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(lower.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                r = r.header(name, value);
            }
        }
        if let Some(body) = &req.body {
            r = r.json(body);
        }
        let mut resp = r.send().await.map_err(|e| {
            if e.is_timeout() {
                UpstreamError::Timeout
            } else if e.is_connect() {
                UpstreamError::NotConnected(e.without_url().to_string())
            } else {
                UpstreamError::Transport(e.without_url().to_string())
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("json"));
        if resp
            .content_length()
            .is_some_and(|n| n as usize > self.max_response_bytes)
        {
            return Err(UpstreamError::TooLarge(self.max_response_bytes));
        }
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            if e.is_timeout() {
                UpstreamError::Timeout
            } else {
                UpstreamError::Transport(e.without_url().to_string())
            }
        })? {
            if buf.len() + chunk.len() > self.max_response_bytes {
                return Err(UpstreamError::TooLarge(self.max_response_bytes));
            }
            buf.extend_from_slice(&chunk);
        }
        let body = if is_json {
            serde_json::from_slice(&buf)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&buf).into()))
        } else if buf.is_empty() {
            Value::Null
        } else {
            Value::String(String::from_utf8_lossy(&buf).into())
        };
        Ok((status, retry_after, body))
    }
}

/// 200 ms, 400 ms, 800 ms … or the server's `Retry-After`, never past the deadline.
fn backoff(attempt: u32, retry_after: Option<Duration>, deadline: Instant) -> Duration {
    let exp = Duration::from_millis(200 * 2u64.pow(attempt.saturating_sub(1).min(5)));
    let wait = retry_after.unwrap_or(exp);
    wait.min(deadline.saturating_duration_since(Instant::now()))
}
