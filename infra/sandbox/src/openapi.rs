//! GHL's published OpenAPI (`../shared/reference/ghl/openapi/*.json`, read at start-up,
//! never copied into the project): every request the sandbox's GHL receives is matched
//! to an operation and checked — path, method, `Version` header, required and typed
//! query parameters, and the JSON body against the operation's schema.
//!
//! Where the documents are silent the sandbox takes the harsher reading: an object
//! schema that lists its properties accepts no others (GHL's DTO validation refuses
//! unknown properties), and a `nullable` field accepts `null` only where it says so.
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// The spec files of the v2 API (the `-v3` files describe the `/v3` prefix, unused).
const SPEC_FILES: &[&str] = &[
    "contacts.json",
    "conversations.json",
    "locations.json",
    "objects.json",
    "custom-fields.json",
    "phone-system.json",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

struct QueryParam {
    name: String,
    required: bool,
    schema: Value,
}

struct Operation {
    file: &'static str,
    id: String,
    method: String,
    template: String,
    segments: Vec<Segment>,
    versions: Option<Vec<String>>,
    query: Vec<QueryParam>,
    /// `(required, schema)` of an `application/json` body.
    body: Option<(bool, Value)>,
    /// The file's components, prepared, for `$ref` resolution.
    components: std::sync::Arc<Value>,
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

pub struct OpenApi {
    operations: Vec<Operation>,
}

/// Why a request does not conform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// No operation has this path and method (GHL: 404).
    UnknownRoute(String),
    /// The `Version` header is missing or not the operation's.
    Version(String),
    /// Query or body errors (GHL: 422).
    Invalid {
        operation: String,
        errors: Vec<String>,
    },
}

impl Violation {
    pub fn messages(&self) -> Vec<String> {
        match self {
            Violation::UnknownRoute(m) | Violation::Version(m) => vec![m.clone()],
            Violation::Invalid { errors, .. } => errors.clone(),
        }
    }
}

impl OpenApi {
    /// Load every spec file found in `dir`; `None` when none is there.
    pub fn load(dir: &Path) -> Option<OpenApi> {
        let mut operations = Vec::new();
        for file in SPEC_FILES {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
                continue;
            };
            let spec: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", dir.join(file).display()));
            operations.extend(operations_of(file, &spec));
        }
        (!operations.is_empty()).then_some(OpenApi { operations })
    }

    pub fn operation_count(&self) -> usize {
        self.operations.len()
    }

    /// Check one request; `Ok(operation id)` when it conforms.
    pub fn check(
        &self,
        method: &str,
        segments: &[&str],
        version: Option<&str>,
        query: &HashMap<String, String>,
        body: Option<&Value>,
    ) -> Result<String, Violation> {
        let op = self.route(method, segments).ok_or_else(|| {
            Violation::UnknownRoute(format!("Cannot {method} /{}", segments.join("/")))
        })?;
        if let Some(versions) = &op.versions {
            if !version.is_some_and(|v| versions.iter().any(|a| a == v)) {
                return Err(Violation::Version(format!(
                    "{}: header Version must be one of {versions:?}, got {version:?}",
                    op.id
                )));
            }
        }
        let mut errors = Vec::new();
        for p in &op.query {
            match query.get(&p.name) {
                None if p.required => errors.push(format!("query {} is required", p.name)),
                None => {}
                Some(v) => {
                    if let Some(e) = check_query_value(&p.name, v, &p.schema) {
                        errors.push(e);
                    }
                }
            }
        }
        if let Some((required, _)) = &op.body {
            match body {
                None | Some(Value::Null) if *required => {
                    errors.push("a JSON request body is required".into())
                }
                None | Some(Value::Null) => {}
                Some(body) => match op.validator() {
                    Ok(v) => errors.extend(
                        v.iter_errors(body)
                            .map(|e| format!("{} {}", e.instance_path(), e).trim().to_string()),
                    ),
                    Err(e) => errors.push(format!("schema of {} does not compile: {e}", op.id)),
                },
            }
        }
        if errors.is_empty() {
            Ok(op.id.clone())
        } else {
            Err(Violation::Invalid {
                operation: format!("{} {} ({})", op.method, op.template, op.file),
                errors,
            })
        }
    }

    /// The operation serving `method` on these segments: the most specific path (most
    /// literal segments) that has the method, as a router tries them.
    fn route(&self, method: &str, segments: &[&str]) -> Option<&Operation> {
        let mut candidates: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|op| {
                op.method == method
                    && op.segments.len() == segments.len()
                    && op.segments.iter().zip(segments).all(|(s, given)| match s {
                        Segment::Literal(l) => l == given,
                        Segment::Param => !given.is_empty(),
                    })
            })
            .collect();
        candidates.sort_by_key(|op| {
            std::cmp::Reverse(
                op.segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count(),
            )
        });
        candidates.into_iter().next()
    }
}

impl Operation {
    fn validator(&self) -> Result<&jsonschema::Validator, String> {
        self.validator
            .get_or_init(|| {
                let (_, schema) = self.body.as_ref().expect("an operation with a body");
                let mut root = prepare(schema);
                if let Value::Object(map) = &mut root {
                    map.insert("components".into(), (*self.components).clone());
                }
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft7)
                    .build(&root)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

fn operations_of(file: &'static str, spec: &Value) -> Vec<Operation> {
    let components = std::sync::Arc::new(
        spec.get("components")
            .map(prepare)
            .unwrap_or_else(|| json!({})),
    );
    let mut out = Vec::new();
    let Some(paths) = spec.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for (template, item) in paths {
        let segments: Vec<Segment> = template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        let Some(methods) = item.as_object() else {
            continue;
        };
        for (method, op) in methods {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let params = op
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let versions = params
                .iter()
                .find(|p| p["in"] == "header" && p["name"] == "Version")
                .and_then(|p| p.pointer("/schema/enum"))
                .and_then(Value::as_array)
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                });
            let query = params
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| QueryParam {
                    name: p["name"].as_str().unwrap_or_default().to_string(),
                    required: p["required"].as_bool().unwrap_or(false),
                    schema: p.get("schema").cloned().unwrap_or(Value::Null),
                })
                .collect();
            let body = op.get("requestBody").and_then(|rb| {
                let schema = rb.pointer("/content/application~1json/schema")?;
                Some((rb["required"].as_bool().unwrap_or(false), schema.clone()))
            });
            out.push(Operation {
                file,
                id: op["operationId"]
                    .as_str()
                    .unwrap_or(template.as_str())
                    .to_string(),
                method: method.to_uppercase(),
                template: template.clone(),
                segments: segments.clone(),
                versions,
                query,
                body,
                components: components.clone(),
                validator: OnceLock::new(),
            });
        }
    }
    out
}

/// An OpenAPI 3.0 schema as JSON Schema (draft 7), under the harsher readings:
/// `nullable` becomes a `null` type, objects listing properties accept no others,
/// references outside the file (only used by error responses) accept anything.
fn prepare(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                return if r.starts_with('#') {
                    json!({"$ref": r})
                } else {
                    json!({})
                };
            }
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "example" | "examples" | "nullable"))
                .map(|(k, v)| (k.clone(), prepare(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type") {
                    out.insert("type".into(), json!([t, "null"]));
                }
            }
            // A schema whose own default contradicts its declared type is read from its
            // default and examples (GHL's message `direction`: type object, default
            // "outbound", example ["outbound", "inbound"]): a string, one of those.
            if let (Some(Value::String(t)), Some(Value::String(default))) =
                (map.get("type"), map.get("default"))
            {
                if t != "string" {
                    out.insert("type".into(), json!("string"));
                    let mut allowed: Vec<Value> = map
                        .get("example")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter(|v| v.is_string()).cloned().collect())
                        .unwrap_or_default();
                    if !allowed.contains(&json!(default)) {
                        allowed.push(json!(default));
                    }
                    out.insert("enum".into(), Value::Array(allowed));
                }
            }
            let lists_properties = map
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|p| !p.is_empty());
            if lists_properties && !map.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(prepare).collect()),
        other => other.clone(),
    }
}

fn check_query_value(name: &str, value: &str, schema: &Value) -> Option<String> {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.iter().any(|a| a.as_str() == Some(value)) {
            return Some(format!("query {name} must be one of {allowed:?}"));
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("number") if value.parse::<f64>().is_err() => {
            Some(format!("query {name} must be a number"))
        }
        Some("integer") if value.parse::<i64>().is_err() => {
            Some(format!("query {name} must be an integer"))
        }
        Some("boolean") if !matches!(value, "true" | "false") => {
            Some(format!("query {name} must be a boolean"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OpenApi {
        let spec = json!({"paths": {
            "/contacts/upsert": {"post": {"operationId": "upsert", "parameters": [
                {"name": "Version", "in": "header", "required": true, "schema": {"type": "string", "enum": ["2021-07-28"]}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Upsert"}}}}}},
            "/contacts/{contactId}": {"get": {"operationId": "get", "parameters": [
                {"name": "Version", "in": "header", "required": true, "schema": {"type": "string", "enum": ["2021-07-28"]}}]}},
            "/contacts/search/duplicate": {"get": {"operationId": "dup", "parameters": [
                {"name": "locationId", "in": "query", "required": true, "schema": {"type": "string"}}]}}
        }, "components": {"schemas": {
            "Upsert": {"type": "object", "required": ["locationId"], "properties": {
                "locationId": {"type": "string"}, "email": {"type": "string", "nullable": true},
                "customFields": {"type": "array", "items": {"anyOf": [{"$ref": "#/components/schemas/Text"}]}}}},
            "Text": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "key": {"type": "string"}, "field_value": {"type": "string"}}}
        }}});
        OpenApi {
            operations: operations_of("test.json", &spec),
        }
    }

    #[test]
    fn bodies_are_checked_under_the_harsher_reading() {
        let api = spec();
        let v = Some("2021-07-28");
        let q = HashMap::new();
        let ok = json!({"locationId": "L", "email": null, "customFields": [{"id": "f1", "field_value": "x"}]});
        assert_eq!(
            api.check("POST", &["contacts", "upsert"], v, &q, Some(&ok)),
            Ok("upsert".into())
        );
        for bad in [
            json!({"email": "a"}),
            json!({"locationId": "L", "customFields": [{"key": "k", "field_value": "x"}]}),
            json!({"locationId": "L", "unknown": 1}),
        ] {
            assert!(
                matches!(
                    api.check("POST", &["contacts", "upsert"], v, &q, Some(&bad)),
                    Err(Violation::Invalid { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            api.check(
                "POST",
                &["contacts", "upsert"],
                Some("2021-04-15"),
                &q,
                Some(&ok)
            ),
            Err(Violation::Version(_))
        ));
        assert!(matches!(
            api.check("POST", &["contacts", "upsert"], v, &q, None),
            Err(Violation::Invalid { .. })
        ));
    }

    #[test]
    fn a_schema_contradicting_its_own_default_is_read_from_its_default_and_examples() {
        let direction =
            json!({"type": "object", "default": "outbound", "example": ["outbound", "inbound"]});
        assert_eq!(
            prepare(&direction),
            json!({"type": "string", "default": "outbound", "enum": ["outbound", "inbound"]})
        );
    }

    #[test]
    fn routes_prefer_literal_segments_and_check_queries() {
        let api = spec();
        let v = Some("2021-07-28");
        let mut q = HashMap::new();
        assert_eq!(
            api.check("GET", &["contacts", "c1"], v, &q, None),
            Ok("get".into())
        );
        assert!(matches!(
            api.check("GET", &["contacts", "search", "duplicate"], None, &q, None),
            Err(Violation::Invalid { .. })
        ));
        q.insert("locationId".into(), "L".into());
        assert_eq!(
            api.check("GET", &["contacts", "search", "duplicate"], None, &q, None),
            Ok("dup".into())
        );
        assert!(matches!(
            api.check("PATCH", &["contacts", "c1"], v, &q, None),
            Err(Violation::UnknownRoute(_))
        ));
    }
}
