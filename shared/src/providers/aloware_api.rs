//! Aloware public API client (research/aloware.md §2): everything under
//! `/api/v1/webhook/...`, `api_token` in the query (GET) or the JSON body (POST). Only
//! endpoints that exist: forms, lookup by phone, power-dialer removal and clearing.
//! Aloware publishes no rate limit: every call takes a token from a conservative
//! bucket of its own (`ALOWARE_RATE_LIMIT_PER_10S`), shared by every function.
use reqwest::Method;
use serde_json::{Map, Value};

use super::error::{Provider, ProviderError};
use crate::adapters::provider_pause::{Gate, ProviderPauses};
use crate::adapters::rate_budget::RateBudget;

#[derive(Clone)]
pub struct AlowareClient {
    http: reqwest::Client,
    base: String,
    token: String,
    budget: Option<RateBudget>,
    pauses: Option<ProviderPauses>,
}

/// The bucket key of the account the token belongs to (the token itself is never
/// stored: a hash prefix tells accounts apart).
fn bucket_key(token: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "aloware:{}",
        hex::encode(&Sha256::digest(token.as_bytes())[..6])
    )
}

impl AlowareClient {
    pub fn new(http: reqwest::Client, base_url: &str, token: &str) -> Self {
        AlowareClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            budget: None,
            pauses: None,
        }
    }

    /// Pause Aloware's work when it refuses our token, and send nothing while paused.
    pub fn with_pauses(mut self, pauses: ProviderPauses) -> Self {
        self.pauses = Some(pauses);
        self
    }

    /// Meter every call through `budget`.
    pub fn with_budget(mut self, budget: RateBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Map<String, Value>>,
    ) -> Result<(u16, Value), ProviderError> {
        if let Some(p) = &self.pauses {
            if let Gate::Paused { since } = p.check(Provider::Aloware.key()).await {
                return Err(ProviderError::paused(Provider::Aloware, op, since));
            }
        }
        if let Some(budget) = &self.budget {
            budget
                .acquire(&bucket_key(&self.token))
                .await
                .map_err(|e| ProviderError::throttled(Provider::Aloware, op, e))?;
        }
        let url = format!("{}/api/v1/webhook/{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("Accept", "application/json");
        if method == Method::GET {
            req = req
                .query(&[("api_token", self.token.as_str())])
                .query(query);
        } else {
            let mut body = body.unwrap_or_default();
            body.insert("api_token".into(), Value::from(self.token.clone()));
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ProviderError::transport(Provider::Aloware, op, e))?;
        let status = resp.status().as_u16();
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("json"));
        let text = resp
            .text()
            .await
            .map_err(|e| ProviderError::transport(Provider::Aloware, op, e))?;
        if !is_json && (200..300).contains(&status) {
            // Aloware answers 200 with an HTML page on paths it does not know, and its
            // maintenance or CDN pages look alike: not applied, worth retrying.
            return Err(ProviderError {
                retryable: true,
                ..ProviderError::unexpected_body(Provider::Aloware, op, &text)
            });
        }
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let (Some(p), 401 | 403) = (&self.pauses, status) {
            let err = Self::fail(op, status, &value);
            if let Err(e) = p.pause(Provider::Aloware.key(), &err.message).await {
                tracing::warn!(error = %e, "could not record the Aloware pause");
                return Err(err);
            }
            return Err(ProviderError {
                paused: true,
                ..err
            });
        }
        Ok((status, value))
    }

    fn fail(op: &'static str, status: u16, body: &Value) -> ProviderError {
        ProviderError::from_status(Provider::Aloware, op, status, &body.to_string())
    }

    /// `POST forms`: create or update the contact keyed by `phone_number`. Without
    /// `force_update` an existing contact is refused (409); with it, the fields given
    /// (only those) are overwritten.
    pub async fn upsert_form(&self, fields: Map<String, Value>) -> Result<(), ProviderError> {
        match self
            .call("forms", Method::POST, "forms", &[], Some(fields))
            .await?
        {
            (200..=299, _) => Ok(()),
            (status, body) => Err(Self::fail("forms", status, &body)),
        }
    }

    /// `GET users`: the account's users (agents).
    pub async fn list_users(&self) -> Result<Vec<Value>, ProviderError> {
        match self
            .call("list users", Method::GET, "users", &[], None)
            .await?
        {
            (200, Value::Array(users)) => Ok(users),
            (200, other) => Err(ProviderError::unexpected_body(
                crate::providers::Provider::Aloware,
                "list users",
                &other.to_string(),
            )),
            (status, body) => Err(Self::fail("list users", status, &body)),
        }
    }

    /// `GET contact/phone-number`; `None` on 404.
    pub async fn lookup_phone(&self, phone: &str) -> Result<Option<Value>, ProviderError> {
        match self
            .call(
                "lookup contact",
                Method::GET,
                "contact/phone-number",
                &[("phone_number", phone)],
                None,
            )
            .await?
        {
            (200, body) => Ok(contact_of_lookup(&body)),
            (404, _) => Ok(None),
            (status, body) => Err(Self::fail("lookup contact", status, &body)),
        }
    }

    /// Aloware can only remove a contact from every power-dialer list at once (lists
    /// built by hand in Aloware included).
    pub async fn remove_from_all_lists(&self, contact_id: &str) -> Result<(), ProviderError> {
        let mut body = Map::new();
        body.insert("contact_id".into(), Value::from(contact_id));
        match self
            .call(
                "remove from lists",
                Method::POST,
                "powerdialer-remove-contact-from-lists",
                &[],
                Some(body),
            )
            .await?
        {
            (200..=299, _) => Ok(()),
            (status, body) => Err(Self::fail("remove from lists", status, &body)),
        }
    }
}

/// The contact of a phone lookup's 200 answer, whose shape Aloware does not document:
/// the contact object itself (what the n8n node and S5 read), or wrapped as
/// `{contact: {...}}`, `{data: {...}}`, `{data: [...]}` or a bare list.
pub fn contact_of_lookup(v: &Value) -> Option<Value> {
    let candidate = match v {
        Value::Array(items) => items.first(),
        Value::Object(o) if o.contains_key("id") => Some(v),
        Value::Object(o) => {
            o.get("contact")
                .or_else(|| o.get("data"))
                .and_then(|inner| match inner {
                    Value::Array(items) => items.first(),
                    other => Some(other),
                })
        }
        _ => None,
    }?;
    (candidate.is_object() && candidate.get("id").is_some()).then(|| candidate.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_are_read_in_every_shape() {
        let c = json!({"id": 155091981, "phone_number": "+12025550177"});
        for answer in [
            c.clone(),
            json!({"contact": c}),
            json!({"data": c}),
            json!({"data": [c]}),
            json!([c]),
        ] {
            assert_eq!(contact_of_lookup(&answer), Some(c.clone()), "{answer}");
        }
        for nothing in [
            json!({}),
            json!([]),
            json!({"data": []}),
            json!({"message": "ok"}),
            json!(null),
        ] {
            assert_eq!(contact_of_lookup(&nothing), None, "{nothing}");
        }
    }

    #[test]
    fn buckets_never_carry_the_token() {
        let key = bucket_key("secret-token");
        assert!(key.starts_with("aloware:") && !key.contains("secret"));
        assert_ne!(key, bucket_key("other-token"));
    }
}
