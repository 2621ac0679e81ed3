//! GHL API v2 client (research/ghl.md §1–2): Bearer token, `Version` header, every call
//! metered by the location's shared rate budget, which the `X-RateLimit-*` answers tighten.
use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::error::{Provider, ProviderError};
use super::segment as path_segment;
use crate::adapters::provider_pause::{is_outage, Gate, ProviderPauses};
use crate::adapters::rate_budget::RateBudget;

const CONTACTS_VERSION: &str = "2021-07-28";
/// Every `/conversations/*` operation wants this one (reference/ghl/openapi).
const CONVERSATIONS_VERSION: &str = "2021-04-15";

/// What `POST /contacts/` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(Value),
    /// The location does not allow duplicates and already has this contact (another
    /// writer created it since our search). GHL documents the refusal as a plain 400
    /// (`BadRequestDTO`): the id, when some answer names it anyway.
    Duplicate(Option<String>),
}

#[derive(Clone)]
pub struct GhlClient {
    http: reqwest::Client,
    base: String,
    token: String,
    location_id: String,
    budget: RateBudget,
    pauses: Option<ProviderPauses>,
}

/// Operations whose 401/403 is a refusal of that operation, not of our credential:
/// GHL lets only the conversation provider's own app set a message's status.
const NOT_A_CREDENTIAL_CHECK: &[&str] = &["update message status"];

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
            pauses: None,
        }
    }

    /// Pause GHL's work when it refuses our credential, and send nothing while paused.
    pub fn with_pauses(mut self, pauses: ProviderPauses) -> Self {
        self.pauses = Some(pauses);
        self
    }

    pub fn location_id(&self) -> &str {
        &self.location_id
    }

    fn budget_key(&self) -> String {
        format!("ghl:{}", self.location_id)
    }

    pub(super) async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        let (status, text) = self.exchange(op, method, path, query, body).await?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::from_status(Provider::Ghl, op, status, &text));
        }
        serde_json::from_str(&text)
            .map_err(|_| ProviderError::unexpected_body(Provider::Ghl, op, &text))
    }

    /// One metered request: the answer's status and text (a 429 is an error here,
    /// after the budget has been told).
    pub(super) async fn exchange(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, String), ProviderError> {
        let pauses = self
            .pauses
            .as_ref()
            .filter(|_| !NOT_A_CREDENTIAL_CHECK.contains(&op));
        if let Some(p) = pauses {
            if let Gate::Paused { since } = p.check(Provider::Ghl.key()).await {
                return Err(ProviderError::paused(Provider::Ghl, op, since));
            }
        }
        let key = self.budget_key();
        self.budget
            .acquire(&key)
            .await
            .map_err(|e| ProviderError::throttled(Provider::Ghl, op, e))?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(
                "Version",
                if path.starts_with("/conversations") {
                    CONVERSATIONS_VERSION
                } else {
                    CONTACTS_VERSION
                },
            )
            .header("Accept", "application/json")
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                return Err(outage(pauses, ProviderError::transport(Provider::Ghl, op, e)).await)
            }
        };
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
        let text = match resp.text().await {
            Ok(text) => text,
            Err(e) => {
                return Err(outage(pauses, ProviderError::transport(Provider::Ghl, op, e)).await)
            }
        };
        if is_outage(Some(status)) {
            let err = ProviderError::from_status(Provider::Ghl, op, status, &text);
            return Err(outage(pauses, err).await);
        }
        if let Some(p) = pauses {
            p.answered(Provider::Ghl.key()).await;
        }
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
        if let (Some(p), 401 | 403) = (pauses, status) {
            let err = ProviderError::from_status(Provider::Ghl, op, status, &text);
            if let Err(e) = p.pause(Provider::Ghl.key(), &err.message).await {
                tracing::warn!(error = %e, "could not record the GHL pause");
                return Err(err);
            }
            return Err(ProviderError {
                paused: true,
                ..err
            });
        }
        Ok((status, text))
    }

    /// `GET /contacts/{id}`; `None` when GHL does not know the id.
    pub async fn get_contact(&self, id: &str) -> Result<Option<Value>, ProviderError> {
        match self
            .call(
                "get contact",
                Method::GET,
                &format!(
                    "/contacts/{}",
                    path_segment(Provider::Ghl, "get contact", id)?
                ),
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

    /// `POST /contacts/`: a new contact. Safe for `tags`: a create never touches an
    /// existing contact's tags (an upsert's `tags` would replace them).
    pub async fn create_contact(&self, fields: &Value) -> Result<Created, ProviderError> {
        const OP: &str = "create contact";
        let mut body = fields.clone();
        body["locationId"] = Value::from(self.location_id.clone());
        let (status, text) = self
            .exchange(OP, Method::POST, "/contacts/", &[], Some(&body))
            .await?;
        let v: Option<Value> = serde_json::from_str(&text).ok();
        let says_duplicate = v
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str)
            .is_some_and(|m| m.to_ascii_lowercase().contains("duplicat"));
        if status == 400 && says_duplicate {
            let id = v
                .as_ref()
                .and_then(|v| v.pointer("/meta/contactId"))
                .and_then(Value::as_str)
                .map(str::to_string);
            return Ok(Created::Duplicate(id));
        }
        if !(200..300).contains(&status) {
            return Err(ProviderError::from_status(Provider::Ghl, OP, status, &text));
        }
        v.as_ref()
            .and_then(|v| v.get("contact"))
            .cloned()
            .map(Created::New)
            .ok_or_else(|| ProviderError::unexpected_body(Provider::Ghl, OP, &text))
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
                &format!(
                    "/contacts/{}",
                    path_segment(Provider::Ghl, "update contact", id)?
                ),
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
            &format!(
                "/contacts/{}/tags",
                path_segment(Provider::Ghl, "add tags", id)?
            ),
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
            &format!(
                "/contacts/{}/tags",
                path_segment(Provider::Ghl, "remove tags", id)?
            ),
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
                &format!(
                    "/contacts/{}/notes",
                    path_segment(Provider::Ghl, "create note", contact_id)?
                ),
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
                &format!(
                    "/contacts/{}/notes",
                    path_segment(Provider::Ghl, "list notes", contact_id)?
                ),
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
            path_segment(Provider::Ghl, "update note", contact_id)?,
            path_segment(Provider::Ghl, "update note", note_id)?
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

    /// `GET /contacts/search/duplicate`, by phone first, then by email (SPEC §6: one
    /// key per request, so GHL's "email first" rule does not decide for us). Costs a
    /// second call only when the phone finds nobody and an email is known.
    pub async fn find_duplicate(
        &self,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<Option<Value>, ProviderError> {
        if let (Some(phone), Some(email)) = (phone, email) {
            return self.find_by_phone_or_email(phone, email).await;
        }
        for (param, value) in [("number", phone), ("email", email)] {
            let Some(value) = value else { continue };
            let query = [("locationId", self.location_id.as_str()), (param, value)];
            let v = self
                .call(
                    "find duplicate",
                    Method::GET,
                    "/contacts/search/duplicate",
                    &query,
                    None,
                )
                .await?;
            if let Some(contact) = duplicate_of(&v) {
                return Ok(Some(contact));
            }
        }
        Ok(None)
    }

    /// The contact's conversation id (GHL keeps one per contact):
    /// `GET /conversations/search?locationId&contactId`.
    pub async fn find_conversation(
        &self,
        contact_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let query = [
            ("locationId", self.location_id.as_str()),
            ("contactId", contact_id),
        ];
        let v = self
            .call(
                "find conversation",
                Method::GET,
                "/conversations/search",
                &query,
                None,
            )
            .await?;
        Ok(v.get("conversations")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// `POST /conversations/`: the contact's conversation.
    pub async fn create_conversation(&self, contact_id: &str) -> Result<String, ProviderError> {
        let body = json!({"locationId": self.location_id, "contactId": contact_id});
        let v = self
            .call(
                "create conversation",
                Method::POST,
                "/conversations/",
                &[],
                Some(&body),
            )
            .await?;
        v.pointer("/conversation/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::unexpected_body(Provider::Ghl, "create conversation", &v.to_string())
            })
    }

    /// `POST /conversations/messages/inbound` (`ProcessMessageBodyDto`): a message that
    /// did not pass through GHL (an SMS of the texting system, an inbound call log);
    /// `direction` says which way it went. Returns GHL's message id.
    pub async fn add_conversation_message(&self, body: &Value) -> Result<String, ProviderError> {
        let v = self
            .call(
                "add conversation message",
                Method::POST,
                "/conversations/messages/inbound",
                &[],
                Some(body),
            )
            .await?;
        message_id_of(&v, "add conversation message")
    }

    /// `POST /conversations/messages/outbound` (`ProcessOutboundMessageBodyDto`, type
    /// `Call` only): an outbound call made outside GHL.
    pub async fn add_outbound_call(&self, body: &Value) -> Result<String, ProviderError> {
        let v = self
            .call(
                "add outbound call",
                Method::POST,
                "/conversations/messages/outbound",
                &[],
                Some(body),
            )
            .await?;
        message_id_of(&v, "add outbound call")
    }

    /// `PUT /conversations/messages/{id}/status` (`delivered`, `failed`, ...).
    pub async fn update_message_status(
        &self,
        message_id: &str,
        status: &str,
    ) -> Result<(), ProviderError> {
        let path = format!(
            "/conversations/messages/{}/status",
            path_segment(Provider::Ghl, "update message status", message_id)?
        );
        self.call(
            "update message status",
            Method::PUT,
            &path,
            &[],
            Some(&json!({"status": status})),
        )
        .await
        .map(|_| ())
    }

    /// The newest messages of a conversation (`GET /conversations/{id}/messages`).
    pub async fn conversation_messages(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Value>, ProviderError> {
        let path = format!(
            "/conversations/{}/messages",
            path_segment(Provider::Ghl, "list conversation messages", conversation_id)?
        );
        let v = self
            .call("list conversation messages", Method::GET, &path, &[], None)
            .await?;
        // `{lastMessageId, nextPage, messages: [...]}`; some answers nest it once more.
        let list = v.get("messages").and_then(|m| {
            m.as_array()
                .or_else(|| m.get("messages").and_then(Value::as_array))
        });
        Ok(list.cloned().unwrap_or_default())
    }

    /// `GET /locations/{id}/customFields?model=contact`.
    pub async fn list_custom_fields(&self) -> Result<Vec<Value>, ProviderError> {
        let location = path_segment(Provider::Ghl, "list custom fields", &self.location_id)?;
        let path = format!("/locations/{location}/customFields");
        let v = self
            .call(
                "list custom fields",
                Method::GET,
                &path,
                &[("model", "contact")],
                None,
            )
            .await?;
        Ok(v.get("customFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `POST /locations/{id}/customFields`: a TEXT field on contacts named `key` (GHL
    /// derives the field key `contact.<key>` from the name).
    pub async fn create_custom_field(&self, key: &str) -> Result<Value, ProviderError> {
        let location = path_segment(Provider::Ghl, "create custom field", &self.location_id)?;
        let path = format!("/locations/{location}/customFields");
        let body = json!({"name": key, "dataType": "TEXT", "model": "contact"});
        let v = self
            .call("create custom field", Method::POST, &path, &[], Some(&body))
            .await?;
        v.get("customField").cloned().ok_or_else(|| {
            ProviderError::unexpected_body(Provider::Ghl, "create custom field", &v.to_string())
        })
    }

    /// The ids of the custom fields `keys` (GHL writes custom fields by opaque id),
    /// created when missing and `create` is set; otherwise the missing keys are named.
    pub async fn resolve_custom_fields(
        &self,
        keys: &[&str],
        create: bool,
    ) -> Result<CustomFieldIds, CustomFieldError> {
        let existing = self.list_custom_fields().await?;
        let mut ids = BTreeMap::new();
        for field in &existing {
            let key = field
                .get("fieldKey")
                .and_then(Value::as_str)
                .map(|k| k.trim_start_matches("contact.").to_string());
            if let (Some(key), Some(id)) = (key, field.get("id").and_then(Value::as_str)) {
                if keys.contains(&key.as_str()) {
                    ids.insert(key, id.to_string());
                }
            }
        }
        let missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !ids.contains_key(*k))
            .collect();
        if !missing.is_empty() && !create {
            return Err(CustomFieldError::Missing(
                missing.iter().map(|k| k.to_string()).collect(),
            ));
        }
        for key in missing {
            let field = self.create_custom_field(key).await?;
            let id = field.get("id").and_then(Value::as_str).ok_or_else(|| {
                ProviderError::unexpected_body(
                    Provider::Ghl,
                    "create custom field",
                    &field.to_string(),
                )
            })?;
            ids.insert(key.to_string(), id.to_string());
        }
        Ok(CustomFieldIds(ids))
    }

    /// `GET /users/?locationId=` ("Get User by Location"): the location's users.
    pub async fn list_users(&self) -> Result<Vec<Value>, ProviderError> {
        let query = [("locationId", self.location_id.as_str())];
        let v = self
            .call("list users", Method::GET, "/users/", &query, None)
            .await?;
        Ok(v.get("users")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Both keys in one call: `POST /contacts/search` with an OR group answers the
    /// contacts holding either, and the phone's match wins here (SPEC §6), not GHL's
    /// email-first rule. One call where two duplicate searches cost two.
    async fn find_by_phone_or_email(
        &self,
        phone: &str,
        email: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let filter = json!({"group": "OR", "filters": [
            {"field": "phone", "operator": "eq", "value": phone},
            {"field": "email", "operator": "eq", "value": email}]});
        let (found, _) = self.search(filter, 1, 20).await?;
        let field_is = |c: &&Value, field: &str, want: &str| {
            c.get(field)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(want))
        };
        Ok(found
            .iter()
            .find(|c| field_is(c, "phone", phone))
            .or_else(|| found.iter().find(|c| field_is(c, "email", email)))
            .cloned())
    }

    /// Every contact with this phone (E.164), through `POST /contacts/search`: unlike
    /// the duplicate search, it finds duplicates of the number too (first 100).
    pub async fn search_by_phone(&self, phone: &str) -> Result<Vec<Value>, ProviderError> {
        let filter = json!({"field": "phone", "operator": "eq", "value": phone});
        Ok(self.search(filter, 1, 100).await?.0)
    }

    /// One page of `POST /contacts/search` with one filter: `(contacts, total)`.
    async fn search(
        &self,
        filter: Value,
        page: u32,
        page_limit: u32,
    ) -> Result<(Vec<Value>, u64), ProviderError> {
        let body = json!({"locationId": self.location_id, "page": page, "pageLimit": page_limit,
            "filters": [filter]});
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

    /// One page of `POST /contacts/search` filtered by tag: `(contacts, total)`.
    pub async fn search_by_tag(
        &self,
        tag: &str,
        page: u32,
        page_limit: u32,
    ) -> Result<(Vec<Value>, u64), ProviderError> {
        let filter = json!({"field": "tags", "operator": "contains", "value": tag});
        self.search(filter, page, page_limit).await
    }
}

/// The custom fields the middleware writes on GHL contacts, by key (GHL's field key is
/// `contact.<key>`). README "GHL custom fields" lists them.
pub const SYNC_CUSTOM_FIELDS: &[&str] = &["aloware_contact_id", "intake_source", "lead_source"];

/// Key → opaque field id in the location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomFieldIds(pub BTreeMap<String, String>);

impl CustomFieldIds {
    /// A write item `{id, field_value}` for `key`, when the location has the field.
    pub fn item(&self, key: &str, value: &str) -> Option<Value> {
        self.0
            .get(key)
            .map(|id| json!({"id": id, "field_value": value}))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CustomFieldError {
    #[error(
        "GHL location lacks the custom fields {0:?} the sync writes: create them (TEXT, on contacts) or set GHL_CREATE_CUSTOM_FIELDS=true"
    )]
    Missing(Vec<String>),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

fn message_id_of(v: &Value, op: &'static str) -> Result<String, ProviderError> {
    v.get("messageId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::unexpected_body(Provider::Ghl, op, &v.to_string()))
}

/// An outage answer from GHL: one strike against it; the error is a pause (its event
/// held, no attempt spent) once the strikes pause GHL.
async fn outage(pauses: Option<&ProviderPauses>, err: ProviderError) -> ProviderError {
    match pauses {
        Some(p) if p.strike(Provider::Ghl.key(), &err.message).await => ProviderError {
            paused: true,
            ..err
        },
        _ => err,
    }
}

/// The contact in a duplicate-search answer, whose 200 shape GHL does not document:
/// `{contact: {...}}` (what GHL is seen to send), `{contacts: [...]}`, or the contact
/// itself. `{contact: null}`, `{}` and `{contacts: []}` mean nobody.
pub fn duplicate_of(v: &Value) -> Option<Value> {
    let contact = v
        .get("contact")
        .filter(|c| c.is_object())
        .or_else(|| {
            v.get("contacts")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
        })
        .or_else(|| v.get("id").is_some().then_some(v))?;
    contact.get("id").is_some().then(|| contact.clone())
}

pub(super) fn is_not_found(e: &ProviderError) -> bool {
    e.status == Some(404)
        || (e.status == Some(400) && e.message.to_ascii_lowercase().contains("not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_search_answers_in_every_shape() {
        let c = json!({"id": "c1", "phone": "+12025550177"});
        for answer in [json!({"contact": c}), json!({"contacts": [c]}), c.clone()] {
            assert_eq!(duplicate_of(&answer), Some(c.clone()), "{answer}");
        }
        for nobody in [
            json!({"contact": null}),
            json!({}),
            json!({"contacts": []}),
            json!({"contact": {}}),
        ] {
            assert_eq!(duplicate_of(&nobody), None, "{nobody}");
        }
    }

    #[test]
    fn custom_fields_are_written_by_id() {
        let ids = CustomFieldIds(BTreeMap::from([(
            "lead_source".to_string(),
            "f9".to_string(),
        )]));
        assert_eq!(
            ids.item("lead_source", "Ads"),
            Some(json!({"id": "f9", "field_value": "Ads"}))
        );
        assert_eq!(ids.item("intake_source", "x"), None);
    }
}
