//! The configuration secret: one Secrets Manager JSON object, read once per cold start.
use std::collections::HashMap;

use aws_config::SdkConfig;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read secret {id}: {reason}")]
    Read { id: String, reason: String },
    #[error("secret {0} is not a JSON object of strings")]
    NotJsonObject(String),
}

/// How long a cold start waits for the secret: part of the first request's time
/// budget (`ingest::INGEST_DEADLINE`), so a slow read ends as the provider's retry
/// status, not as a function timeout that API Gateway would answer 5xx.
pub const SECRET_READ_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

pub async fn load_json_secret(
    config: &SdkConfig,
    secret_id: &str,
) -> Result<HashMap<String, String>, SecretError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let read = client.get_secret_value().secret_id(secret_id).send();
    let out = tokio::time::timeout(SECRET_READ_BUDGET, read)
        .await
        .map_err(|_| SecretError::Read {
            id: secret_id.to_string(),
            reason: format!("no answer within {SECRET_READ_BUDGET:?}"),
        })?
        .map_err(|e| SecretError::Read {
            id: secret_id.to_string(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    let text = out.secret_string().unwrap_or_default();
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err(SecretError::NotJsonObject(secret_id.to_string()));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect())
}
