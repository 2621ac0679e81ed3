//! MCP tools from Verity's catalog (SPEC §13), pure. One tool per catalogued operation,
//! named deterministically and kept in a map (a call is never re-parsed from its name);
//! legacy names that prompts and voice-agent configurations use are aliases of
//! explicit operations. Arguments are validated against the tool's schema before any
//! request, and split into path (each value one percent-encoded segment), query and body.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::catalog::{Catalog, Method, Operation, ParamType};

/// `MCP_MAX_TOOL_NAME`'s default: a client's `<server>_` prefix (Cursor counts server +
/// tool ≤ 60) still fits.
pub const MAX_NAME_LEN: usize = 48;

/// Legacy names (`<domain>_<resource>_<action>`) and the operation each stands for.
pub const ALIASES: &[(&str, Method, &str)] = &[
    (
        "calls_agents_test",
        Method::Post,
        "/api/calls/agents/{agentId}/test",
    ),
    ("calls_agents_create", Method::Post, "/api/calls/agents"),
    ("calls_agents_get", Method::Get, "/api/calls/agents"),
    ("comms_contacts_create", Method::Post, "/api/comms/contacts"),
    ("comms_contacts_get", Method::Get, "/api/comms/contacts"),
    (
        "comms_contacts_patch",
        Method::Patch,
        "/api/comms/contacts/{id}",
    ),
    (
        "sms_sms_create",
        Method::Post,
        "/api/integrations/df-middleware/send-message",
    ),
    (
        "conversations_messages_create",
        Method::Post,
        "/api/conversations/messages",
    ),
];

/// One tool: its name, description, input schema and hints, and its operation.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub read_only: bool,
    pub destructive: bool,
    /// Index into the catalog's operations.
    pub operation: usize,
    /// `Some(canonical name)` for a legacy alias.
    pub alias_of: Option<String>,
}

/// What a tool call becomes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    /// The path with every placeholder replaced by its percent-encoded value.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

/// The tools of one catalog.
#[derive(Debug, Clone)]
pub struct Toolset {
    pub catalog: Arc<Catalog>,
    tools: Vec<Tool>,
    by_name: HashMap<String, usize>,
}

/// `get /api/comms/broadcasts/{id}/stats` → `get_comms_broadcasts_by_id_stats`.
pub fn base_name(op: &Operation) -> String {
    let mut parts = vec![op.method.as_str().to_ascii_lowercase()];
    for seg in op.path.split('/').filter(|s| !s.is_empty()).skip(1) {
        match super::catalog::placeholder(seg) {
            Some(p) => parts.push(format!("by_{p}")),
            None => parts.push(seg.to_string()),
        }
    }
    sanitise(&parts.join("_"))
}

/// Whether the base name loses nothing: `/api/` then segments of `[a-z0-9]` (never the
/// word `by`) or placeholders named `[A-Za-z0-9]`. Two operations with such paths
/// never share a base name, so it can be theirs alone.
fn lossless(op: &Operation) -> bool {
    let mut segs = op.path.split('/').filter(|s| !s.is_empty());
    if segs.next() != Some("api") {
        return false;
    }
    segs.all(|seg| match super::catalog::placeholder(seg) {
        Some(p) => p.chars().all(|c| c.is_ascii_alphanumeric()),
        None => {
            seg != "by"
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }
    })
}

fn sanitise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_matches('_').to_string()
}

/// The tool name of `op`, a function of the operation alone (adding or removing other
/// catalog entries never changes it): its base name when lossless and short enough,
/// else a head of it and `__` + 8 hex of the method and path (`__` never occurs in a
/// base name, so the two kinds cannot meet).
pub fn tool_name(op: &Operation, max: usize) -> String {
    let name = base_name(op);
    if lossless(op) && name.len() <= max {
        return name;
    }
    let digest = Sha256::digest(format!("{} {}", op.method.as_str(), op.path).as_bytes());
    let tag = &hex::encode(digest)[..8];
    let keep = max.saturating_sub(tag.len() + 2);
    let head: String = name.chars().take(keep).collect();
    format!("{}__{tag}", head.trim_end_matches('_'))
}

fn property(t: ParamType, description: String) -> Value {
    let mut p = match t {
        ParamType::String => json!({"type": "string"}),
        ParamType::Number => json!({"type": "number"}),
        ParamType::Integer => json!({"type": "integer"}),
        ParamType::Boolean => json!({"type": "boolean"}),
        ParamType::StringArray => json!({"type": "array", "items": {"type": "string"}}),
        ParamType::Object => json!({"type": "object"}),
    };
    p["description"] = Value::String(description);
    p
}

/// The tool's input schema: path params required, query params typed, `body` only for
/// methods with one; nothing else accepted.
pub fn input_schema(op: &Operation) -> Value {
    let mut props = Map::new();
    for p in &op.path_params {
        props.insert(
            p.clone(),
            json!({"type": "string", "minLength": 1, "description": format!("path parameter {p} (sent as one URL segment)")}),
        );
    }
    for (q, t) in &op.query_params {
        if !props.contains_key(q) {
            props.insert(q.clone(), property(*t, format!("query parameter {q}")));
        }
    }
    if op.method.has_body() {
        let mut fields = Map::new();
        for (f, t) in &op.body_fields {
            fields.insert(f.clone(), property(*t, format!("body field {f}")));
        }
        props.insert(
            "body".into(),
            json!({"type": "object", "properties": fields, "description": "the JSON body sent to Verity"}),
        );
    }
    json!({
        "type": "object",
        "properties": props,
        "required": op.path_params,
        "additionalProperties": false,
    })
}

/// A legacy alias's schema: the original merged top-level arguments into the body, so
/// its prompts send `{agentId, to}` or `{to, from, body}` flat. Path and query
/// parameters by name, declared body fields at the top level, anything else (for
/// methods with a body) into the body too.
pub fn legacy_input_schema(op: &Operation) -> Value {
    let mut props = Map::new();
    for p in &op.path_params {
        props.insert(
            p.clone(),
            json!({"type": "string", "minLength": 1, "description": format!("path parameter {p} (sent as one URL segment)")}),
        );
    }
    for (q, t) in &op.query_params {
        props
            .entry(q.clone())
            .or_insert_with(|| property(*t, format!("query parameter {q}")));
    }
    if op.method.has_body() {
        for (f, t) in &op.body_fields {
            props
                .entry(f.clone())
                .or_insert_with(|| property(*t, format!("body field {f}")));
        }
    }
    json!({
        "type": "object",
        "properties": props,
        "required": op.path_params,
        "additionalProperties": op.method.has_body(),
    })
}

fn description(op: &Operation) -> String {
    let what = op
        .description
        .clone()
        .unwrap_or_else(|| format!("{} {}", op.method.as_str(), op.path));
    format!("{what} ({} {})", op.method.as_str(), op.path)
}

impl Toolset {
    pub fn new(catalog: Arc<Catalog>) -> Toolset {
        Self::with_max_name(catalog, MAX_NAME_LEN)
    }

    /// Tools named within `max` characters: the legacy aliases first (clients that read
    /// one page, or cut the list, still see them), then one per operation.
    pub fn with_max_name(catalog: Arc<Catalog>, max: usize) -> Toolset {
        let mut tools: Vec<Tool> = Vec::new();
        for (alias, method, path) in ALIASES {
            let Some(index) = catalog.index_of(path, *method) else {
                continue;
            };
            let op = &catalog.operations[index];
            tools.push(Tool {
                name: alias.to_string(),
                description: format!("{} Legacy name of {}.", description(op), tool_name(op, max)),
                input_schema: legacy_input_schema(op),
                read_only: op.method == Method::Get,
                destructive: op.method == Method::Delete,
                operation: index,
                alias_of: Some(tool_name(op, max)),
            });
        }
        for (i, op) in catalog.operations.iter().enumerate() {
            tools.push(Tool {
                name: tool_name(op, max),
                description: description(op),
                input_schema: input_schema(op),
                read_only: op.method == Method::Get,
                destructive: op.method == Method::Delete,
                operation: i,
                alias_of: None,
            });
        }
        let mut by_name: HashMap<String, usize> = HashMap::new();
        // A name met twice (only an alias can be: a hash collision is 1 in 4 billion)
        // keeps its first holder.
        let tools: Vec<Tool> = tools
            .into_iter()
            .filter(|t| {
                !by_name.contains_key(&t.name) && {
                    by_name.insert(t.name.clone(), by_name.len());
                    true
                }
            })
            .collect();
        Toolset {
            catalog,
            tools,
            by_name,
        }
    }

    /// Every tool: aliases first, then operations (catalog order).
    pub fn all(&self) -> &[Tool] {
        &self.tools
    }

    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.by_name.get(name).map(|i| &self.tools[*i])
    }

    pub fn operation(&self, tool: &Tool) -> &Operation {
        &self.catalog.operations[tool.operation]
    }

    /// Close names, for an unknown tool's error.
    pub fn suggestions(&self, name: &str) -> Vec<&str> {
        let wanted: Vec<&str> = name.split('_').filter(|p| p.len() > 2).collect();
        let mut scored: Vec<(usize, &str)> = self
            .tools
            .iter()
            .map(|t| {
                (
                    wanted.iter().filter(|w| t.name.contains(*w)).count(),
                    t.name.as_str(),
                )
            })
            .filter(|(s, _)| *s > 0)
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        scored.into_iter().take(3).map(|(_, n)| n).collect()
    }
}

/// Why arguments were refused (each problem named; values never echoed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid arguments: {}", .0.join("; "))]
pub struct InvalidArguments(pub Vec<String>);

fn type_ok(schema: &Value, v: &Value) -> bool {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => v
            .as_str()
            .is_some_and(|s| !s.is_empty() || schema.get("minLength").is_none()),
        Some("number") => v.is_number(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("boolean") => v.is_boolean(),
        Some("array") => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Some("object") => v.is_object(),
        _ => true,
    }
}

/// Check `args` against the tool's schema: no unknown argument, every required one,
/// every type (declared body fields included).
pub fn validate(tool: &Tool, args: &Map<String, Value>) -> Result<(), InvalidArguments> {
    let schema = &tool.input_schema;
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    let open = schema["additionalProperties"] == Value::Bool(true);
    for key in args.keys() {
        if !props.contains_key(key) && !open {
            problems.push(format!("unknown argument {key:?}"));
        }
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for req in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !args.contains_key(req) {
            problems.push(format!("missing required argument {req:?}"));
        }
    }
    for (key, value) in args {
        let Some(p) = props.get(key) else { continue };
        // Models often send null for an optional argument: it is left out.
        if value.is_null() && !required.contains(&key.as_str()) {
            continue;
        }
        if !type_ok(p, value) {
            problems.push(format!(
                "argument {key:?} must be {}",
                p["type"].as_str().unwrap_or("valid")
            ));
            continue;
        }
        if key == "body" {
            let fields = p["properties"].as_object().cloned().unwrap_or_default();
            for (f, v) in value.as_object().into_iter().flatten() {
                if let Some(fs) = fields.get(f) {
                    if !v.is_null() && !type_ok(fs, v) {
                        problems.push(format!(
                            "body field {f:?} must be {}",
                            fs["type"].as_str().unwrap_or("valid")
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InvalidArguments(problems))
    }
}

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~')
    .remove(b'.');

/// One path segment from a caller's value: everything outside the unreserved set is
/// encoded (`/` and `?` stay inside the segment); values that URL parsers would treat as
/// "go up" (`.`, `..`, empty) are refused.
pub fn encode_segment(value: &str) -> Result<String, String> {
    if value.is_empty() || value.chars().all(|c| c == '.') {
        return Err("a path parameter may not be empty or only dots".into());
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Fill the operation's path from `params` (each value one encoded segment).
pub fn fill_path(op: &Operation, params: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = Vec::new();
    for seg in op.path.split('/').filter(|s| !s.is_empty()) {
        match super::catalog::placeholder(seg) {
            Some(name) => {
                let value = params
                    .get(name)
                    .ok_or_else(|| format!("missing path parameter {name:?}"))?;
                out.push(encode_segment(value)?);
            }
            None => out.push(seg.to_string()),
        }
    }
    Ok(format!("/{}", out.join("/")))
}

/// Query pairs from a JSON object: scalars as text, arrays repeated.
pub fn query_pairs(query: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, v) in query {
        match v {
            Value::Array(items) => {
                for item in items {
                    out.push((
                        k.clone(),
                        scalar(item).ok_or_else(|| format!("query {k:?} holds a non-scalar"))?,
                    ));
                }
            }
            Value::Null => {}
            other => out.push((
                k.clone(),
                scalar(other).ok_or_else(|| format!("query {k:?} must be a scalar or an array"))?,
            )),
        }
    }
    Ok(out)
}

/// A validated call of a legacy alias: path and query parameters by name, everything
/// else the body.
pub fn to_legacy_request(op: &Operation, args: &Map<String, Value>) -> Result<Request, String> {
    let mut r = to_request(op, args)?;
    if op.method.has_body() {
        let body: Map<String, Value> = args
            .iter()
            .filter(|(k, _)| {
                !op.path_params.contains(k) && !op.query_params.iter().any(|(q, _)| q == *k)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        r.body = Some(Value::Object(body));
    }
    Ok(r)
}

/// A validated tool call as a request.
pub fn to_request(op: &Operation, args: &Map<String, Value>) -> Result<Request, String> {
    let params: BTreeMap<String, String> = op
        .path_params
        .iter()
        .filter_map(|p| args.get(p).and_then(scalar).map(|v| (p.clone(), v)))
        .collect();
    let path = fill_path(op, &params)?;
    let declared: Map<String, Value> = op
        .query_params
        .iter()
        .filter_map(|(q, _)| args.get(q).map(|v| (q.clone(), v.clone())))
        .collect();
    Ok(Request {
        method: op.method,
        path,
        query: query_pairs(&declared)?,
        body: if op.method.has_body() {
            Some(args.get("body").cloned().unwrap_or_else(|| json!({})))
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Arc<Catalog> {
        Arc::new(
            Catalog::parse(
                r#"{"endpoints":[
                {"path":"/api/comms/broadcasts","methods":["GET","POST"],"parameters":{"query":{"limit":"number"},"body":{"subject":"string"}}},
                {"path":"/api/comms/broadcasts/{id}","methods":["GET","DELETE"],"parameters":{"path":{"id":"string"}}},
                {"path":"/api/comms/broadcasts/{id}/stats","methods":["GET"]},
                {"path":"/api/comms-broadcasts","methods":["GET"]},
                {"path":"/apicalls/agents/[agentId]/test","methods":["POST"],"parameters":{"body":{"to":"string"}}},
                {"path":"/api/very/long/path/with/many/segments/that/goes/on/and/on/for/ever/and/ever","methods":["GET"]}]}"#,
            )
            .unwrap(),
        )
    }

    #[test]
    fn names_are_deterministic_unique_short_and_stable() {
        let t = Toolset::new(catalog());
        let names: Vec<&str> = t.all().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names[0], "calls_agents_test", "aliases first");
        assert!(names.contains(&"get_comms_broadcasts"));
        assert!(names.contains(&"get_comms_broadcasts_by_id"));
        assert!(names.contains(&"get_comms_broadcasts_by_id_stats"));
        assert!(names.contains(&"delete_comms_broadcasts_by_id"));
        assert!(names.contains(&"post_calls_agents_by_agentid_test"));
        // `/api/comms-broadcasts` would sanitise to the same name: it gets a hash, and
        // the plain name stays with the path it spells.
        let dashed = t
            .all()
            .iter()
            .find(|x| t.operation(x).path == "/api/comms-broadcasts")
            .unwrap();
        assert!(
            dashed.name.starts_with("get_comms_broadcasts__"),
            "{}",
            dashed.name
        );
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for n in &names {
            assert!(
                n.len() <= MAX_NAME_LEN
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
        }
        let short = Toolset::with_max_name(catalog(), 30);
        assert!(short.all().iter().all(|x| x.name.len() <= 30));
        assert_eq!(
            t.get("calls_agents_test").unwrap().alias_of.as_deref(),
            Some("post_calls_agents_by_agentid_test")
        );
    }

    #[test]
    fn arguments_are_validated_then_split() {
        let t = Toolset::new(catalog());
        let get = t.get("get_comms_broadcasts_by_id").unwrap();
        let op = t.operation(get);
        let args = |v: Value| v.as_object().unwrap().clone();
        assert!(validate(get, &args(json!({}))).is_err());
        assert!(validate(get, &args(json!({"id": "b1", "extra": 1}))).is_err());
        assert!(validate(get, &args(json!({"id": 7}))).is_err());
        assert!(
            validate(get, &args(json!({"id": "b1", "body": {}}))).is_err(),
            "GET takes no body"
        );
        let r = to_request(op, &args(json!({"id": "../../admin/users"}))).unwrap();
        assert_eq!(r.path, "/api/comms/broadcasts/..%2F..%2Fadmin%2Fusers");
        assert!(to_request(op, &args(json!({"id": ".."}))).is_err());
        let list = t.get("get_comms_broadcasts").unwrap();
        assert!(
            validate(list, &args(json!({"limit": null}))).is_ok(),
            "null = left out"
        );
        assert!(validate(list, &args(json!({"limit": "ten"}))).is_err());
        let r = to_request(t.operation(list), &args(json!({"limit": 10}))).unwrap();
        assert_eq!(r.query, [("limit".to_string(), "10".to_string())]);
        assert_eq!(r.body, None);
        let post = t.get("post_comms_broadcasts").unwrap();
        assert!(validate(post, &args(json!({"body": {"subject": 5}}))).is_err());
        let r = to_request(t.operation(post), &args(json!({"body": {"subject": "Hi"}}))).unwrap();
        assert_eq!(r.body, Some(json!({"subject": "Hi"})));
        // The legacy alias takes the original's flat shape.
        let alias = t.get("calls_agents_test").unwrap();
        let flat = args(json!({"agentId": "a1", "to": "+12025550100", "note": "x"}));
        assert!(validate(alias, &flat).is_ok());
        let r = to_legacy_request(t.operation(alias), &flat).unwrap();
        assert_eq!(r.path, "/api/calls/agents/a1/test");
        assert_eq!(r.body, Some(json!({"to": "+12025550100", "note": "x"})));
        assert!(
            validate(alias, &args(json!({"to": "+1"}))).is_err(),
            "agentId required"
        );
    }
}
