//! Settings (SPEC §10): the Secrets Manager JSON secret named by `CONFIG_SECRET_ID`,
//! read once per cold start, overlaid by environment variables (which win).
use std::collections::HashMap;

use aws_config::SdkConfig;

use crate::adapters::{db, queue::EventQueue, secrets};
use crate::domain::EventKind;

pub const WEBHOOK_EVENTS_QUEUE_URL: &str = "WEBHOOK_EVENTS_QUEUE_URL";
pub const TEXTING_EVENTS_QUEUE_URL: &str = "TEXTING_EVENTS_QUEUE_URL";
pub const BROADCAST_EVENTS_QUEUE_URL: &str = "BROADCAST_EVENTS_QUEUE_URL";

/// The setting that names the queue of an inbox.
pub fn queue_setting(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Webhook => WEBHOOK_EVENTS_QUEUE_URL,
        EventKind::Texting => TEXTING_EVENTS_QUEUE_URL,
        EventKind::Broadcast => BROADCAST_EVENTS_QUEUE_URL,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required setting {0}")]
    Missing(&'static str),
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
}

#[derive(Debug, Default)]
pub struct Settings {
    values: HashMap<String, String>,
    /// Loaded on first use: a function that needs neither the secret nor a queue
    /// (the `migrate` command) never resolves AWS region or credentials.
    aws: tokio::sync::OnceCell<SdkConfig>,
}

impl Settings {
    /// Secret (when `CONFIG_SECRET_ID` is set) overlaid by the process environment.
    pub async fn load() -> Result<Self, ConfigError> {
        // Collected first: `std::env::Vars` may not be held across an await.
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with(env).await
    }

    /// As [`Settings::load`], with `env` standing for the process environment.
    pub async fn load_with(
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        let settings = Settings::default();
        let mut values = HashMap::new();
        if let Some(id) = env.get("CONFIG_SECRET_ID").filter(|v| !v.trim().is_empty()) {
            values = secrets::load_json_secret(settings.aws().await, id.trim()).await?;
        }
        values.extend(env);
        Ok(Settings { values, ..settings })
    }

    /// Settings from explicit pairs (tests, tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let values = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Settings {
            values,
            ..Default::default()
        }
    }

    async fn aws(&self) -> &SdkConfig {
        self.aws
            .get_or_init(crate::adapters::queue::aws_config)
            .await
    }

    /// A non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    pub fn parse_or<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
        }
    }

    pub fn default_country(&self) -> String {
        self.get_or("DEFAULT_COUNTRY", "US").to_ascii_uppercase()
    }

    /// How to reach Postgres over TLS: `DATABASE_SSLMODE` (when the URL names no
    /// `sslmode`), and the CA bundle `verify-full` trusts: `DATABASE_CA_CERT` (PEM text)
    /// or the file `DATABASE_CA_FILE`.
    pub fn database_tls(&self) -> Result<db::TlsSettings, ConfigError> {
        let mode = match self.get("DATABASE_SSLMODE") {
            Some(m) => Some(m.parse().map_err(|reason| ConfigError::Invalid {
                name: "DATABASE_SSLMODE",
                reason,
            })?),
            None => None,
        };
        let ca_pem = match (self.get("DATABASE_CA_CERT"), self.get("DATABASE_CA_FILE")) {
            (Some(pem), _) => Some(pem.to_string()),
            (None, Some(path)) => {
                Some(
                    std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                        name: "DATABASE_CA_FILE",
                        reason: e.to_string(),
                    })?,
                )
            }
            (None, None) => None,
        };
        Ok(db::TlsSettings { mode, ca_pem })
    }

    /// The pool (lazy: no connection is opened here).
    pub fn pool(&self) -> Result<deadpool_postgres::Pool, ConfigError> {
        let url = self.require("DATABASE_URL")?;
        let size = self.parse_or("DB_POOL_SIZE", 4usize)?;
        db::pool(url, size, &self.database_tls()?).map_err(|e| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: e.to_string(),
        })
    }

    /// Verity's database, read only (`VERITY_DATABASE_URL`, same TLS rules as ours);
    /// `None` when it is not configured.
    pub fn verity_db(&self) -> Result<Option<crate::adapters::verity_db::VerityDb>, ConfigError> {
        let Some(url) = self.get("VERITY_DATABASE_URL") else {
            return Ok(None);
        };
        crate::adapters::verity_db::VerityDb::connect(url, &self.database_tls()?)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                name: "VERITY_DATABASE_URL",
                reason: e.to_string(),
            })
    }

    /// The queue whose URL is in setting `url_setting`.
    pub async fn queue(&self, url_setting: &'static str) -> Result<EventQueue, ConfigError> {
        let url = self.require(url_setting)?;
        Ok(EventQueue::new(self.aws().await, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_settings_are_named() {
        let s = Settings::from_pairs([("A", " "), ("B", "x")]);
        assert_eq!(s.get("A"), None);
        assert_eq!(s.require("B").unwrap(), "x");
        let err = s.require("DATABASE_URL").unwrap_err();
        assert_eq!(err.to_string(), "missing required setting DATABASE_URL");
        assert!(s.pool().is_err());
    }

    #[test]
    fn numbers_parse_or_fail_clearly() {
        let s = Settings::from_pairs([("DB_POOL_SIZE", "x")]);
        let err = s.parse_or("DB_POOL_SIZE", 4usize).unwrap_err();
        assert!(err.to_string().starts_with("invalid setting DB_POOL_SIZE"));
        assert_eq!(
            Settings::default()
                .parse_or("DB_POOL_SIZE", 4usize)
                .unwrap(),
            4
        );
    }
}
