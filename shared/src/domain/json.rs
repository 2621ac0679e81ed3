//! Lenient readers for provider JSON, where ids and numbers arrive as strings in some
//! payloads and as numbers in others.
use serde_json::Value;

/// An id given as a non-empty string or an integer, as a string.
pub fn id_str(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0)
            .map(|f| format!("{f:.0}")),
        _ => None,
    }
}

/// An integer given as a number or a numeric string.
pub fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-empty string field.
pub fn text(value: Option<&Value>) -> Option<&str> {
    value?.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// The first of several keys that holds an id.
pub fn first_id(obj: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| id_str(obj.get(*k)))
}

/// The first of several keys that holds a non-empty string.
pub fn first_text<'a>(obj: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| text(obj.get(*k)))
}

/// Whether any string or key holds U+0000, which Postgres text and `jsonb` cannot store.
pub fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_accept_strings_and_numbers() {
        assert_eq!(
            id_str(Some(&json!("54363660"))).as_deref(),
            Some("54363660")
        );
        assert_eq!(
            id_str(Some(&json!(940868616))).as_deref(),
            Some("940868616")
        );
        assert_eq!(
            id_str(Some(&json!(940868616.0))).as_deref(),
            Some("940868616")
        );
        assert_eq!(id_str(Some(&json!(""))), None);
        assert_eq!(id_str(Some(&json!(null))), None);
        assert_eq!(id_str(Some(&json!({"id": 1}))), None);
        assert_eq!(int(Some(&json!("2"))), Some(2));
        assert_eq!(int(Some(&json!(2))), Some(2));
        assert_eq!(int(Some(&json!("x"))), None);
    }
}
