//! GHL API v2 client (research/ghl.md §1–2): Bearer token, `Version` header, every call
//! metered by the location's shared rate budget, which the `X-RateLimit-*` answers tighten.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::error::{Provider, ProviderError};
use super::segment;
use crate::adapters::rate_budget::RateBudget;

const CONTACTS_VERSION: &str = "2021-07-28";

#[derive(Clone)]
pub struct GhlClient {
    http: reqwest::Client,
    base: String,
    token: String,
    location_id: String,
    budget: RateBudget,
}

/// Where and as whom the GHL API is called.
pub struct GhlApiConfig {
    pub base_url: String,
    pub token: String,
    pub location_id: String,
}

impl GhlClient {
    pub fn new(http: reqwest::Client, cfg: GhlApiConfig, budget: RateBudget) -> Self {
        GhlClient {
            http,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            token: cfg.token,
            location_id: cfg.location_id,
            budget,
        }
    }

    pub fn location_id(&self) -> &str {
        &self.location_id
    }

    fn budget_key(&self) -> String {
        format!("ghl:{}", self.location_id)
    }

    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        let key = self.budget_key();
        self.budget.acquire(&key).await.map_err(|e| ProviderError {
            provider: Provider::Ghl,
            operation: op,
            status: None,
            message: format!("rate budget: {e}"),
            retryable: true,
            retry_after: None,
        })?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Version", CONTACTS_VERSION)
            .header("Accept", "application/json")
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ProviderError::transport(Provider::Ghl, op, e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok())
        };
        let remaining = header("x-ratelimit-remaining");
        let interval =
            header("x-ratelimit-interval-milliseconds").map(|ms| Duration::from_millis(ms as u64));
        let text = resp
            .text()
            .await
            .map_err(|e| ProviderError::transport(Provider::Ghl, op, e))?;
        if status == 429 {
            let wait = interval.unwrap_or(Duration::from_secs(10));
            let _ = self.budget.penalise(&key, wait).await;
            let mut err = ProviderError::from_status(Provider::Ghl, op, status, &text);
            err.retry_after = Some(wait);
            return Err(err);
        }
        if let Some(remaining) = remaining {
            let _ = self.budget.observe_remaining(&key, remaining).await;
        }
        if !(200..300).contains(&status) {
            return Err(ProviderError::from_status(Provider::Ghl, op, status, &text));
        }
        serde_json::from_str(&text)
            .map_err(|_| ProviderError::unexpected_body(Provider::Ghl, op, &text))
    }

    /// `GET /contacts/{id}`; `None` when GHL does not know the id.
    pub async fn get_contact(&self, id: &str) -> Result<Option<Value>, ProviderError> {
        match self
            .call(
                "get contact",
                Method::GET,
                &format!("/contacts/{}", segment(id)),
                &[],
                None,
            )
            .await
        {
            Ok(v) => Ok(v.get("contact").cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /contacts/upsert`: `(created, contact)`.
    pub async fn upsert_contact(&self, fields: &Value) -> Result<(bool, Value), ProviderError> {
        let mut body = fields.clone();
        body["locationId"] = Value::from(self.location_id.clone());
        let v = self
            .call(
                "upsert contact",
                Method::POST,
                "/contacts/upsert",
                &[],
                Some(&body),
            )
            .await?;
        let contact = v.get("contact").cloned().ok_or_else(|| {
            ProviderError::unexpected_body(Provider::Ghl, "upsert contact", &v.to_string())
        })?;
        Ok((
            v.get("new").and_then(Value::as_bool).unwrap_or(false),
            contact,
        ))
    }

    /// `PUT /contacts/{id}` with only the changed fields. Never carries `tags`.
    pub async fn update_contact(&self, id: &str, fields: &Value) -> Result<Value, ProviderError> {
        debug_assert!(fields.get("tags").is_none(), "PUT replaces all tags");
        let v = self
            .call(
                "update contact",
                Method::PUT,
                &format!("/contacts/{}", segment(id)),
                &[],
                Some(fields),
            )
            .await?;
        Ok(v.get("contact").cloned().unwrap_or(Value::Null))
    }

    pub async fn add_tags(&self, id: &str, tags: &[String]) -> Result<(), ProviderError> {
        self.call(
            "add tags",
            Method::POST,
            &format!("/contacts/{}/tags", segment(id)),
            &[],
            Some(&json!({"tags": tags})),
        )
        .await
        .map(|_| ())
    }

    pub async fn remove_tags(&self, id: &str, tags: &[String]) -> Result<(), ProviderError> {
        self.call(
            "remove tags",
            Method::DELETE,
            &format!("/contacts/{}/tags", segment(id)),
            &[],
            Some(&json!({"tags": tags})),
        )
        .await
        .map(|_| ())
    }

    /// `POST /contacts/{id}/notes` → the note id.
    pub async fn create_note(&self, contact_id: &str, body: &str) -> Result<String, ProviderError> {
        let v = self
            .call(
                "create note",
                Method::POST,
                &format!("/contacts/{}/notes", segment(contact_id)),
                &[],
                Some(&json!({"body": body})),
            )
            .await?;
        v.pointer("/note/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::unexpected_body(Provider::Ghl, "create note", &v.to_string())
            })
    }

    /// `GET /contacts/{id}/notes`: the contact's notes (`[{id, body, ...}]`).
    pub async fn list_notes(&self, contact_id: &str) -> Result<Vec<Value>, ProviderError> {
        let v = self
            .call(
                "list notes",
                Method::GET,
                &format!("/contacts/{}/notes", segment(contact_id)),
                &[],
                None,
            )
            .await?;
        Ok(v.get("notes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn update_note(
        &self,
        contact_id: &str,
        note_id: &str,
        body: &str,
    ) -> Result<(), ProviderError> {
        let path = format!(
            "/contacts/{}/notes/{}",
            segment(contact_id),
            segment(note_id)
        );
        self.call(
            "update note",
            Method::PUT,
            &path,
            &[],
            Some(&json!({"body": body})),
        )
        .await
        .map(|_| ())
    }

    /// `GET /contacts/search/duplicate` with the phone and the email in one request
    /// (GHL applies the location's duplicate rules: email first, then phone).
    pub async fn find_duplicate(
        &self,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<Option<Value>, ProviderError> {
        let mut query = vec![("locationId", self.location_id.as_str())];
        query.extend(phone.map(|p| ("number", p)));
        query.extend(email.map(|e| ("email", e)));
        if query.len() == 1 {
            return Ok(None);
        }
        let v = self
            .call(
                "find duplicate",
                Method::GET,
                "/contacts/search/duplicate",
                &query,
                None,
            )
            .await?;
        Ok(v.get("contact").filter(|c| c.is_object()).cloned())
    }

    /// One page of `POST /contacts/search` filtered by tag: `(contacts, total)`.
    pub async fn search_by_tag(
        &self,
        tag: &str,
        page: u32,
        page_limit: u32,
    ) -> Result<(Vec<Value>, u64), ProviderError> {
        let body = json!({"locationId": self.location_id, "page": page, "pageLimit": page_limit,
            "filters": [{"field": "tags", "operator": "contains", "value": tag}]});
        let v = self
            .call(
                "search contacts",
                Method::POST,
                "/contacts/search",
                &[],
                Some(&body),
            )
            .await?;
        let contacts = v
            .get("contacts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok((
            contacts,
            v.get("total").and_then(Value::as_u64).unwrap_or(0),
        ))
    }
}

fn is_not_found(e: &ProviderError) -> bool {
    e.status == Some(404)
        || (e.status == Some(400) && e.message.to_ascii_lowercase().contains("not found"))
}
