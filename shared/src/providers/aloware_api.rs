//! Aloware public API client (research/aloware.md §2): everything under
//! `/api/v1/webhook/...`, `api_token` in the query (GET) or the JSON body (POST). Only
//! endpoints that exist: forms, lookup by phone, power-dialer removal and clearing.
use reqwest::Method;
use serde_json::{Map, Value};

use super::error::{Provider, ProviderError};

#[derive(Clone)]
pub struct AlowareClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AlowareClient {
    pub fn new(http: reqwest::Client, base_url: &str, token: &str) -> Self {
        AlowareClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Map<String, Value>>,
    ) -> Result<(u16, Value), ProviderError> {
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
            return Err(ProviderError::unexpected_body(Provider::Aloware, op, &text));
        }
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    fn fail(op: &'static str, status: u16, body: &Value) -> ProviderError {
        ProviderError::from_status(Provider::Aloware, op, status, &body.to_string())
    }

    /// `POST forms`: create or update the contact keyed by `phone_number`.
    pub async fn upsert_form(&self, fields: Map<String, Value>) -> Result<(), ProviderError> {
        match self
            .call("forms", Method::POST, "forms", &[], Some(fields))
            .await?
        {
            (200..=299, _) => Ok(()),
            (status, body) => Err(Self::fail("forms", status, &body)),
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
            (200, body) if body.is_object() => Ok(Some(body)),
            (404, _) => Ok(None),
            (status, body) => Err(Self::fail("lookup contact", status, &body)),
        }
    }

    /// Aloware can only remove a contact from every power-dialer list at once.
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
