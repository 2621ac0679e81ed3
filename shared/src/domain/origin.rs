//! Origin markers (SPEC §5 b): `SYS:origin_id:<uuid>` written into a GHL custom field (or
//! an Aloware contact's notes) by the middleware's own writes, when enabled. A webhook
//! carrying one is the echo of the event with that id.
use serde_json::Value;
use uuid::Uuid;

pub const PREFIX: &str = "SYS:origin_id:";
/// The GHL custom field key the marker is written to.
pub const GHL_FIELD_KEY: &str = "df_origin_id";

pub fn marker(event_id: Uuid) -> String {
    format!("{PREFIX}{event_id}")
}

fn find_in(text: &str) -> Option<Uuid> {
    let start = text.find(PREFIX)? + PREFIX.len();
    text.get(start..start + 36)
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// The event id of a marker in a GHL contact body's `customFields` values, or in an
/// Aloware contact's `notes`.
pub fn find(payload: &Value) -> Option<Uuid> {
    let custom = payload
        .get("customFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    custom
        .filter_map(|f| {
            f.get("value")
                .or_else(|| f.get("field_value"))
                .and_then(Value::as_str)
        })
        .chain(payload.get("notes").and_then(Value::as_str))
        .find_map(find_in)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markers_round_trip_from_custom_fields_and_notes() {
        let id = Uuid::new_v4();
        assert_eq!(
            find(
                &json!({"customFields": [{"id": "x", "value": "other"}, {"id": "df", "value": marker(id)}]})
            ),
            Some(id)
        );
        assert_eq!(
            find(&json!({"notes": format!("synced. {}", marker(id))})),
            Some(id)
        );
        assert_eq!(
            find(&json!({"customFields": [{"id": "df", "value": "SYS:origin_id:not-a-uuid"}]})),
            None
        );
        assert_eq!(find(&json!({"firstName": "x"})), None);
    }
}
