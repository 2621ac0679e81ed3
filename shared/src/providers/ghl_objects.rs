//! GHL custom-object records (`reference/ghl/openapi/objects.json`): search, create and
//! update, metered by the same rate budget as every other GHL call.
use reqwest::Method;
use serde_json::{json, Value};

use super::error::{Provider, ProviderError};
use super::ghl_api::{is_not_found, GhlClient};
use super::segment as path_segment;

/// What `POST /objects/{key}/records` did.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordCreated {
    New(String),
    /// GHL refused a duplicate of a unique property; the existing record's id when the
    /// answer names it.
    Duplicate(Option<String>),
}

impl GhlClient {
    /// `POST /objects/{key}/records/search` for records whose `property` is exactly
    /// `value` (GHL's query matches searchable properties loosely: filtered here).
    pub async fn find_records(
        &self,
        object_key: &str,
        property: &str,
        value: &str,
    ) -> Result<Vec<String>, ProviderError> {
        const OP: &str = "search object records";
        let path = format!(
            "/objects/{}/records/search",
            path_segment(Provider::Ghl, OP, object_key)?
        );
        let body = json!({
            "locationId": self.location_id(),
            "page": 1,
            "pageLimit": 20,
            "query": format!("{property}:{value}"),
            "searchAfter": [],
        });
        let v = self.call(OP, Method::POST, &path, &[], Some(&body)).await?;
        let records = v.get("records").and_then(Value::as_array);
        Ok(records
            .into_iter()
            .flatten()
            .filter(|r| r.pointer(&format!("/properties/{property}")) == Some(&json!(value)))
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// `POST /objects/{key}/records`.
    pub async fn create_record(
        &self,
        object_key: &str,
        properties: &Value,
    ) -> Result<RecordCreated, ProviderError> {
        const OP: &str = "create object record";
        let path = format!(
            "/objects/{}/records",
            path_segment(Provider::Ghl, OP, object_key)?
        );
        let body = json!({"locationId": self.location_id(), "properties": properties});
        let (status, text) = self
            .exchange(OP, Method::POST, &path, &[], Some(&body))
            .await?;
        let v: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return v
                .as_ref()
                .and_then(|v| v.pointer("/record/id"))
                .and_then(Value::as_str)
                .map(|id| RecordCreated::New(id.to_string()))
                .ok_or_else(|| ProviderError::unexpected_body(Provider::Ghl, OP, &text));
        }
        if status == 400 || status == 409 {
            if let Some(dup) = v.as_ref().and_then(duplicate_answer) {
                return Ok(RecordCreated::Duplicate(dup));
            }
        }
        Err(ProviderError::from_status(Provider::Ghl, OP, status, &text))
    }

    /// `PUT /objects/{key}/records/{id}?locationId=`; `Ok(false)` when GHL does not
    /// know the record (deleted).
    pub async fn update_record(
        &self,
        object_key: &str,
        id: &str,
        properties: &Value,
    ) -> Result<bool, ProviderError> {
        const OP: &str = "update object record";
        let path = format!(
            "/objects/{}/records/{}",
            path_segment(Provider::Ghl, OP, object_key)?,
            path_segment(Provider::Ghl, OP, id)?
        );
        let body = json!({"properties": properties});
        let location = self.location_id().to_string();
        match self
            .call(
                OP,
                Method::PUT,
                &path,
                &[("locationId", location.as_str())],
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A create refused as a duplicate (`duplicate_record` / `primary_property_conflict`,
/// as GHL's answers and the original's handling name it): `Some(existing id?)`.
fn duplicate_answer(v: &Value) -> Option<Option<String>> {
    let text = v.to_string().to_ascii_lowercase();
    let duplicate = ["duplicate_record", "primary_property_conflict", "duplicate"]
        .iter()
        .any(|k| text.contains(k));
    if !duplicate {
        return None;
    }
    let id = [
        "/conflictingRecordId",
        "/meta/conflictingRecordId",
        "/meta/recordId",
    ]
    .iter()
    .find_map(|p| v.pointer(p).and_then(Value::as_str))
    .map(str::to_string);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_answers_name_the_existing_record_when_they_can() {
        assert_eq!(
            duplicate_answer(&json!({"message": "duplicate_record", "conflictingRecordId": "r1"})),
            Some(Some("r1".into()))
        );
        assert_eq!(
            duplicate_answer(&json!({"statusCode": 400, "error": "primary_property_conflict"})),
            Some(None)
        );
        assert_eq!(
            duplicate_answer(
                &json!({"statusCode": 422, "message": ["properties must be an object"]})
            ),
            None
        );
    }
}
