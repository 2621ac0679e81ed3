//! The in-house texting API (SPEC §3): `POST /messages {to, from, body}` → `{id, status}`,
//! `GET /messages/{id}`; Bearer `TEXTING_API_KEY`. (The opt-out registry check on every
//! send belongs to the texting issue and wraps this client.)
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{Provider, ProviderError};

#[derive(Clone)]
pub struct TextingClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    pub id: String,
    pub status: String,
}

impl TextingClient {
    pub fn new(http: reqwest::Client, base_url: &str, api_key: &str) -> Self {
        TextingClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
        }
    }

    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.api_key);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ProviderError::transport(Provider::Texting, op, e))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ProviderError::transport(Provider::Texting, op, e))?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::from_status(
                Provider::Texting,
                op,
                status,
                &text,
            ));
        }
        serde_json::from_str(&text)
            .map_err(|_| ProviderError::unexpected_body(Provider::Texting, op, &text))
    }

    pub async fn send(
        &self,
        to: &str,
        from: &str,
        body: &str,
    ) -> Result<SentMessage, ProviderError> {
        let v = self
            .call(
                "send message",
                Method::POST,
                "/messages",
                Some(&json!({"to": to, "from": from, "body": body})),
            )
            .await?;
        serde_json::from_value(v.clone()).map_err(|_| {
            ProviderError::unexpected_body(Provider::Texting, "send message", &v.to_string())
        })
    }

    /// `None` when the texting system does not know the id.
    pub async fn get(&self, id: &str) -> Result<Option<Value>, ProviderError> {
        match self
            .call(
                "get message",
                Method::GET,
                &format!(
                    "/messages/{}",
                    super::segment(Provider::Texting, "get message", id)?
                ),
                None,
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
