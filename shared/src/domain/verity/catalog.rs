//! Verity's API catalog (SPEC §13): the generated `api-catalog.json`, parsed into typed
//! operations with their paths normalised. Pure: loading the file is
//! `adapters::catalog_source`.
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The file as Verity's build writes it (only the fields this system reads).
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogFile {
    #[serde(default)]
    pub version: String,
    #[serde(default, rename = "generatedAt")]
    pub generated_at: String,
    pub endpoints: Vec<EndpointInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EndpointInfo {
    pub path: String,
    pub methods: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(default, rename = "authType")]
    pub auth_type: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Parameters {
    #[serde(default)]
    pub path: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub query: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub body: Option<Value>,
}

/// HTTP methods an operation may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Whether repeating the request cannot apply it twice (HTTP's idempotent methods).
    pub fn idempotent(self) -> bool {
        matches!(self, Method::Get | Method::Put | Method::Delete)
    }

    /// Whether a request of this method carries a JSON body.
    pub fn has_body(self) -> bool {
        matches!(self, Method::Post | Method::Put | Method::Patch)
    }
}

/// The JSON type of a catalogued parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Number,
    Integer,
    Boolean,
    StringArray,
    Object,
}

impl ParamType {
    /// The catalog writes types loosely (`"string"`, `"number"`, `"string[]"`, `"boolean"`).
    pub fn from_catalog(v: &Value) -> Self {
        let t = match v {
            Value::String(s) => s.to_ascii_lowercase(),
            Value::Object(o) => o
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_ascii_lowercase(),
            _ => "string".into(),
        };
        match t.trim() {
            "number" | "float" | "double" => ParamType::Number,
            "integer" | "int" => ParamType::Integer,
            "boolean" | "bool" => ParamType::Boolean,
            "object" | "record" | "json" => ParamType::Object,
            t if t.ends_with("[]") || t == "array" => ParamType::StringArray,
            _ => ParamType::String,
        }
    }
}

/// One catalogued (endpoint, method) pair.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    /// The path as the catalog writes it (malformed prefixes included).
    pub raw_path: String,
    /// The path Verity serves, placeholders as `{name}`.
    pub path: String,
    pub path_params: Vec<String>,
    pub query_params: Vec<(String, ParamType)>,
    /// Declared body fields (`{name: type}`), when the catalog gives them.
    pub body_fields: Vec<(String, ParamType)>,
    pub description: Option<String>,
    pub auth_type: Option<String>,
}

impl Operation {
    /// Verity's domain of the operation: the first segment after `/api`.
    pub fn domain(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .nth(1)
            .unwrap_or("root")
    }
}

/// The parsed catalog: every operation once, in (path, method) order.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub version: String,
    pub generated_at: String,
    pub operations: Vec<Operation>,
    /// The file's JSON, for `GET /api/verity`.
    pub raw: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog is not valid JSON of the expected shape: {0}")]
    Shape(String),
}

/// The generator's malformed prefixes and what Verity really serves (SPEC §13).
fn fix_prefix(path: &str) -> String {
    let p = path.trim();
    if let Some(rest) = p.strip_prefix("/apicalls") {
        return format!("/api/calls{rest}");
    }
    if p == "/apisms" || p.starts_with("/apisms/") {
        return "/api/integrations/df-middleware/send-message".into();
    }
    if let Some(rest) = p.strip_prefix("/apicomms") {
        return format!("/api/comms{rest}");
    }
    p.to_string()
}

/// `[id]`, `[...slug]` and `{id}` placeholders as `{name}`; empty segments dropped.
pub fn normalise_path(path: &str) -> String {
    let fixed = fix_prefix(path);
    let segments: Vec<String> = fixed
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match placeholder(s) {
            Some(name) => format!("{{{name}}}"),
            None => s.to_string(),
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// The parameter name of a placeholder segment.
pub fn placeholder(segment: &str) -> Option<&str> {
    let inner = segment
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .or_else(|| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))?;
    let name = inner.trim_start_matches("...");
    (!name.is_empty()).then_some(name)
}

fn typed(map: Option<&BTreeMap<String, Value>>) -> Vec<(String, ParamType)> {
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), ParamType::from_catalog(v)))
        .collect()
}

impl Catalog {
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let raw: Value =
            serde_json::from_str(text).map_err(|e| CatalogError::Shape(e.to_string()))?;
        let file: CatalogFile =
            serde_json::from_value(raw.clone()).map_err(|e| CatalogError::Shape(e.to_string()))?;
        let mut operations = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for e in &file.endpoints {
            let path = normalise_path(&e.path);
            let path_params: Vec<String> = path
                .split('/')
                .filter_map(placeholder)
                .map(str::to_string)
                .collect();
            let params = e.parameters.clone().unwrap_or_default();
            let body_fields = match &params.body {
                Some(Value::Object(o)) => o
                    .iter()
                    .map(|(k, v)| (k.clone(), ParamType::from_catalog(v)))
                    .collect(),
                _ => Vec::new(),
            };
            for m in &e.methods {
                let Some(method) = Method::parse(m) else {
                    continue;
                };
                // One operation per (served path, method), whatever the catalog repeats.
                if !seen.insert((path.clone(), method)) {
                    continue;
                }
                operations.push(Operation {
                    method,
                    raw_path: e.path.clone(),
                    path: path.clone(),
                    path_params: path_params.clone(),
                    query_params: typed(params.query.as_ref()),
                    body_fields: if method.has_body() {
                        body_fields.clone()
                    } else {
                        Vec::new()
                    },
                    description: e.description.clone().filter(|d| !d.trim().is_empty()),
                    auth_type: e.auth_type.clone(),
                });
            }
        }
        operations.sort_by(|a, b| (&a.path, a.method).cmp(&(&b.path, b.method)));
        Ok(Catalog {
            version: file.version,
            generated_at: file.generated_at,
            operations,
            raw,
        })
    }

    /// The operation for a path as a caller writes it (catalog spelling, malformed
    /// prefixes, `[x]` or `{x}`) and a method.
    pub fn find(&self, path: &str, method: Method) -> Option<&Operation> {
        self.index_of(path, method).map(|i| &self.operations[i])
    }

    /// The position of [`Catalog::find`]'s operation in `operations`.
    pub fn index_of(&self, path: &str, method: Method) -> Option<usize> {
        let wanted = normalise_path(path);
        let same_shape = |a: &str, b: &str| {
            let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
            a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|(x, y)| x == y || (placeholder(x).is_some() && placeholder(y).is_some()))
        };
        self.operations
            .iter()
            .position(|o| o.method == method && (o.path == wanted || same_shape(&o.path, &wanted)))
    }

    /// Whether any operation has this path, whatever its method.
    pub fn knows_path(&self, path: &str) -> bool {
        let wanted = normalise_path(path);
        self.operations.iter().any(|o| o.path == wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_prefixes_and_placeholders_are_normalised() {
        assert_eq!(
            normalise_path("/apicalls/agents/[agentId]/test"),
            "/api/calls/agents/{agentId}/test"
        );
        assert_eq!(
            normalise_path("/apisms"),
            "/api/integrations/df-middleware/send-message"
        );
        assert_eq!(
            normalise_path("/apisms/status"),
            "/api/integrations/df-middleware/send-message"
        );
        assert_eq!(
            normalise_path("/apicomms/contacts/[id]"),
            "/api/comms/contacts/{id}"
        );
        assert_eq!(normalise_path("/api/files/[...key]"), "/api/files/{key}");
        assert_eq!(normalise_path("/api//health/"), "/api/health");
        // Not a malformed prefix: a real segment that starts like one.
        assert_eq!(normalise_path("/api/smsx"), "/api/smsx");
    }

    #[test]
    fn operations_are_one_per_path_and_method() {
        let c = Catalog::parse(
            r#"{"version":"1","endpoints":[
                {"path":"/api/a/[id]","methods":["GET","PATCH","TRACE"],"parameters":{"path":{"id":"string"},"query":{"n":"number","tags":"string[]"},"body":{"x":"boolean"}}},
                {"path":"/api/a/{id}","methods":["GET"]}]}"#,
        )
        .unwrap();
        let ops: Vec<(String, Method)> = c
            .operations
            .iter()
            .map(|o| (o.path.clone(), o.method))
            .collect();
        assert_eq!(
            ops,
            [
                ("/api/a/{id}".to_string(), Method::Get),
                ("/api/a/{id}".to_string(), Method::Patch)
            ]
        );
        let get = c.find("/api/a/[other]", Method::Get).unwrap();
        assert!(get.body_fields.is_empty(), "GET has no body");
        assert_eq!(get.query_params[0], ("n".to_string(), ParamType::Number));
        assert_eq!(
            get.query_params[1],
            ("tags".to_string(), ParamType::StringArray)
        );
        assert!(c.find("/api/a/{id}", Method::Delete).is_none());
        assert!(c.find("/api/b", Method::Get).is_none());
        assert!(Catalog::parse("[]").is_err());
    }
}
