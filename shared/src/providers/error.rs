//! Provider failures, typed by what the caller should do about them.
use std::time::Duration;

use serde_json::Value;

use crate::domain::retry::FailureClass;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ghl,
    Aloware,
    Texting,
}

impl Provider {
    /// The provider's name in tables and keys (`provider_pauses.provider`).
    pub fn key(self) -> &'static str {
        match self {
            Provider::Ghl => "ghl",
            Provider::Aloware => "aloware",
            Provider::Texting => "texting",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Ghl => "GHL",
            Provider::Aloware => "Aloware",
            Provider::Texting => "texting",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider} {operation}: {message}")]
pub struct ProviderError {
    pub provider: Provider,
    pub operation: &'static str,
    pub status: Option<u16>,
    pub message: String,
    /// Whether the same call may succeed later (network, 408, 429, 5xx, and a rejected
    /// credential once a person has replaced it).
    pub retryable: bool,
    /// At least this long before retrying (GHL's rate-limit interval on a 429).
    pub retry_after: Option<Duration>,
    /// Nothing was applied because of a rate limit: our own budget had no token in
    /// time, or the provider answered 429. Not a failure of the event, so retried
    /// without spending an attempt (GHL's daily limit would otherwise fail a day's
    /// events after ten tries).
    pub throttled: bool,
    /// The provider is paused for a rejected credential (this answer paused it, or the
    /// request was not sent because it already was): the work waits for the resume.
    pub paused: bool,
}

/// How long a throttled call waits before its event is tried again.
const THROTTLED_RETRY: Duration = Duration::from_secs(5);

impl ProviderError {
    /// Our own rate budget for `provider` refused a token in time: the request was not
    /// sent. Not a failure of the event.
    pub fn throttled(
        provider: Provider,
        operation: &'static str,
        reason: impl std::fmt::Display,
    ) -> Self {
        ProviderError {
            provider,
            operation,
            status: None,
            message: format!("rate budget: {reason}"),
            retryable: true,
            retry_after: Some(THROTTLED_RETRY),
            throttled: true,
            paused: false,
        }
    }

    /// Not sent: `provider` is paused since `since` (it refused our credential).
    pub fn paused(
        provider: Provider,
        operation: &'static str,
        since: impl std::fmt::Display,
    ) -> Self {
        ProviderError {
            provider,
            operation,
            status: None,
            message: format!(
                "paused since {since}: {provider} refused our credential or is down; resumes when a probe succeeds"
            ),
            retryable: true,
            retry_after: None,
            throttled: false,
            paused: true,
        }
    }

    /// A request that got no answer. The URL is dropped from the text: Aloware's carries
    /// the API token and GHL's the searched phone or email, and this text is stored.
    pub fn transport(provider: Provider, operation: &'static str, err: reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            "timed out".to_string()
        } else if err.is_connect() {
            "could not connect".to_string()
        } else {
            err.without_url().to_string()
        };
        ProviderError {
            provider,
            operation,
            status: None,
            message: format!("request failed: {kind}"),
            retryable: true,
            retry_after: None,
            throttled: false,
            paused: false,
        }
    }

    /// From a non-2xx answer. Credentials errors say so plainly: they need a person.
    pub fn from_status(
        provider: Provider,
        operation: &'static str,
        status: u16,
        body: &str,
    ) -> Self {
        let detail = error_message(body).unwrap_or_else(|| truncate(body));
        let message = match status {
            401 | 403 => format!(
                "credentials rejected (HTTP {status}): check the {provider} API token ({detail})"
            ),
            _ => format!("HTTP {status}: {detail}"),
        };
        ProviderError {
            provider,
            operation,
            status: Some(status),
            message,
            retryable: matches!(status, 401 | 403 | 408 | 429) || status >= 500,
            retry_after: None,
            throttled: status == 429,
            paused: false,
        }
    }

    /// Whether this is the provider refusing our credential (a rotated or expired token).
    pub fn is_credential(&self) -> bool {
        matches!(self.status, Some(401 | 403))
    }

    /// How the event's retry budget treats this failure.
    pub fn class(&self) -> FailureClass {
        if self.paused {
            FailureClass::Paused {
                provider: self.provider.key(),
            }
        } else if self.throttled {
            FailureClass::Throttled {
                after: self.retry_after.unwrap_or(THROTTLED_RETRY),
            }
        } else if self.is_credential() {
            FailureClass::Credential
        } else if self.retryable {
            FailureClass::Retryable {
                at_least: self.retry_after,
            }
        } else {
            FailureClass::Final
        }
    }

    /// A 2xx answer that is not the JSON we asked for (Aloware answers unknown paths
    /// with an HTML page and status 200).
    pub fn unexpected_body(provider: Provider, operation: &'static str, body: &str) -> Self {
        ProviderError {
            provider,
            operation,
            status: None,
            message: format!("answer is not the expected JSON: {}", truncate(body)),
            retryable: false,
            retry_after: None,
            throttled: false,
            paused: false,
        }
    }
}

/// GHL's `message` is a string or an array of strings; Aloware uses `error`, `message`
/// or Laravel's `errors {field: [..]}`.
pub fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Value::Object(o) => Some(
            o.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}: {}",
                        v.as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    };
    ["message", "error", "errors", "detail"]
        .iter()
        .find_map(|k| v.get(*k).and_then(text))
        .filter(|s| !s.is_empty())
}

fn truncate(body: &str) -> String {
    let t: String = body.chars().take(160).collect();
    if t.is_empty() {
        "(empty body)".into()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghl_messages_as_string_or_array() {
        assert_eq!(
            error_message(r#"{"statusCode":400,"message":"Bad Request"}"#).as_deref(),
            Some("Bad Request")
        );
        assert_eq!(
            error_message(
                r#"{"statusCode":422,"message":["a","b"],"error":"Unprocessable Entity"}"#
            )
            .as_deref(),
            Some("a; b")
        );
        assert_eq!(
            error_message(r#"{"errors":{"phone_number":["required"]}}"#).as_deref(),
            Some("phone_number: required")
        );
        assert_eq!(error_message("<html>"), None);
    }

    #[test]
    fn retryability_by_status() {
        let e = |s| ProviderError::from_status(Provider::Ghl, "op", s, "{}");
        assert!(e(429).retryable && e(500).retryable && e(503).retryable && e(408).retryable);
        assert!(!e(400).retryable && !e(404).retryable && !e(422).retryable);
        assert!(e(401).message.contains("credentials rejected"));
        assert_eq!(e(401).class(), FailureClass::Credential);
        assert_eq!(e(403).class(), FailureClass::Credential);
        assert_eq!(e(422).class(), FailureClass::Final);
        assert_eq!(e(503).class(), FailureClass::Retryable { at_least: None });
        assert!(
            matches!(e(429).class(), FailureClass::Throttled { .. }),
            "a provider 429 never spends an attempt"
        );
    }
}
