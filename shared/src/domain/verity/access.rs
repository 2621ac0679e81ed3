//! Who may call what (SPEC §13 "Authorization"), for the gateway and MCP alike. Pure:
//! principals and their scopes, the catalog's `authType` of each operation, which
//! operations send a text or place a call, and where their recipient is.
use serde_json::Value;

use super::catalog::{Method, Operation};

/// An authenticated caller and its rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// For audit rows and logs: `key:<8 hex of its hash>`, `clerk:<user>`, `local`.
    pub id: String,
    /// Only GET operations.
    pub read_only: bool,
    /// Only these domains (the first segment after `/api`), when set.
    pub domains: Option<Vec<String>>,
    /// May call `requireAdmin` operations.
    pub admin: bool,
}

impl Principal {
    /// A caller with every right (the stdio transport's local user, a full key).
    pub fn full(id: impl Into<String>) -> Self {
        Principal {
            id: id.into(),
            read_only: false,
            domains: None,
            admin: true,
        }
    }
}

/// Why a call is refused before it reaches Verity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this key is read-only; {0} is not")]
    ReadOnly(&'static str),
    #[error("this key may not call the {0} domain")]
    Domain(String),
    #[error("this operation requires an admin")]
    Admin,
    #[error("the catalog gives this operation an unknown authType {0:?}")]
    UnknownAuthType(String),
}

/// Whether `who` may call `op`.
pub fn may_call(who: &Principal, op: &Operation) -> Result<(), Denied> {
    if who.read_only && op.method != Method::Get {
        return Err(Denied::ReadOnly(op.method.as_str()));
    }
    if let Some(domains) = &who.domains {
        if !domains.iter().any(|d| d == op.domain()) {
            return Err(Denied::Domain(op.domain().to_string()));
        }
    }
    match op.auth_type.as_deref().map(str::trim) {
        None | Some("" | "none" | "requireAuth" | "requireUser") => Ok(()),
        Some("requireAdmin") if who.admin => Ok(()),
        Some("requireAdmin") => Err(Denied::Admin),
        // The harsher reading: an authType this code does not know is for admins.
        Some(_) if who.admin => Ok(()),
        Some(other) => Err(Denied::UnknownAuthType(other.to_string())),
    }
}

/// One configured API key and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedKey {
    pub secret: String,
    pub read_only: bool,
    pub domains: Option<Vec<String>>,
    pub admin: bool,
}

/// `MCP_API_KEYS` / `DF_MIDDLEWARE_API_KEY`: comma-separated keys, each `<key>` (every
/// operation but `requireAdmin`), or with `;ro`, `;domains=a,b`, `;admin`. A piece with
/// no `;` right after a `domains=` list that looks like a domain name continues that
/// list; end the list with `;` to put a key after it.
pub fn parse_keys(spec: &str) -> Result<Vec<ScopedKey>, String> {
    let mut keys: Vec<ScopedKey> = Vec::new();
    let mut open_domains = false;
    for piece in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // `calls` or `calls;` (the `;` ends the list) after `;domains=comms`.
        let bare = piece.strip_suffix(';').unwrap_or(piece);
        if open_domains && !bare.contains(';') && is_domain(bare) {
            if let Some(list) = keys.last_mut().and_then(|k| k.domains.as_mut()) {
                list.push(bare.to_ascii_lowercase());
            }
            open_domains = bare.len() == piece.len();
            continue;
        }
        let mut parts = piece.split(';');
        let secret = parts.next().unwrap_or_default().trim().to_string();
        if secret.is_empty() {
            return Err("an API key is empty".into());
        }
        let mut key = ScopedKey {
            secret,
            read_only: false,
            domains: None,
            admin: false,
        };
        open_domains = false;
        for attr in parts.map(str::trim) {
            open_domains = false;
            match attr {
                "" => {}
                "ro" => key.read_only = true,
                "admin" => key.admin = true,
                a if a.starts_with("domains=") => {
                    let list: Vec<String> = a["domains=".len()..]
                        .split(',')
                        .map(|d| d.trim().to_ascii_lowercase())
                        .filter(|d| !d.is_empty())
                        .collect();
                    key.domains = Some(list);
                    open_domains = true;
                }
                other => {
                    return Err(format!(
                        "unknown key scope {other:?} (ro, admin, domains=…)"
                    ))
                }
            }
        }
        keys.push(key);
    }
    Ok(keys)
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// An operation that sends a text, with the JSON pointer of its recipient in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsOperation {
    pub method: Method,
    pub path: String,
    pub recipient: String,
}

/// Verity's own SMS send (the catalog's `/apisms`, which Verity serves here).
pub const BUILT_IN_SMS: &[(&str, &str, &str)] = &[(
    "POST",
    "/api/integrations/df-middleware/send-message",
    "/to",
)];

/// Operations that send or call (annotated destructive, never retried) besides the SMS
/// ones: an agent's test call, a broadcast's send, a conversation message.
pub const BUILT_IN_SENDING: &[(&str, &str)] = &[
    ("POST", "/api/calls/agents/{agentId}/test"),
    ("POST", "/api/comms/broadcasts/{id}/send"),
    ("POST", "/api/conversations/messages"),
    ("POST", "/api/conversations/{conversationId}/messages"),
];

/// `VERITY_SMS_OPERATIONS`: `METHOD /path=/json/pointer` entries, comma-separated, added
/// to [`BUILT_IN_SMS`]. Paths as the catalog normalises them (`{name}` placeholders).
pub fn parse_sms_operations(spec: &str) -> Result<Vec<SmsOperation>, String> {
    let mut out: Vec<SmsOperation> = BUILT_IN_SMS
        .iter()
        .map(|(m, p, r)| SmsOperation {
            method: Method::parse(m).expect("built-in method"),
            path: (*p).to_string(),
            recipient: (*r).to_string(),
        })
        .collect();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (method, rest) = entry
            .split_once(' ')
            .ok_or_else(|| format!("{entry:?}: expected \"METHOD /path=/pointer\""))?;
        let method = Method::parse(method).ok_or_else(|| format!("{entry:?}: unknown method"))?;
        let (path, pointer) = rest
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("{entry:?}: expected \"METHOD /path=/pointer\""))?;
        if !path.starts_with('/') || !pointer.starts_with('/') {
            return Err(format!("{entry:?}: the path and the pointer start with /"));
        }
        out.push(SmsOperation {
            method,
            path: super::catalog::normalise_path(path),
            recipient: pointer.to_string(),
        });
    }
    Ok(out)
}

/// The SMS operation `op` is, if any.
pub fn sms_operation<'a>(ops: &'a [SmsOperation], op: &Operation) -> Option<&'a SmsOperation> {
    ops.iter()
        .find(|s| s.method == op.method && s.path == op.path)
}

/// Whether `op` sends or calls: an SMS operation or a built-in sending one.
pub fn sends(ops: &[SmsOperation], op: &Operation) -> bool {
    sms_operation(ops, op).is_some()
        || BUILT_IN_SENDING
            .iter()
            .any(|(m, p)| op.method.as_str() == *m && op.path == *p)
}

/// The recipient of an SMS request: the string at the pointer of its body. `Err` when
/// the body holds none (a send we cannot check is refused).
pub fn recipient<'a>(sms: &SmsOperation, body: Option<&'a Value>) -> Result<&'a str, String> {
    body.and_then(|b| b.pointer(&sms.recipient))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("the recipient ({}) is missing from the body", sms.recipient))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, path: &str, auth: Option<&str>) -> Operation {
        Operation {
            method,
            raw_path: path.into(),
            path: path.into(),
            path_params: vec![],
            query_params: vec![],
            body_fields: vec![],
            description: None,
            auth_type: auth.map(str::to_string),
        }
    }

    #[test]
    fn scopes_and_auth_types_decide() {
        let keys = parse_keys(
            "full-key, ro-key;ro, comms-key;domains=comms,calls;, admin-key;admin, last",
        )
        .unwrap();
        assert_eq!(keys.len(), 5, "{keys:?}");
        assert_eq!(keys[2].domains, Some(vec!["comms".into(), "calls".into()]));
        let who = |k: &ScopedKey| Principal {
            id: "x".into(),
            read_only: k.read_only,
            domains: k.domains.clone(),
            admin: k.admin,
        };
        let get = op(Method::Get, "/api/comms/contacts", Some("requireUser"));
        let post = op(Method::Post, "/api/comms/contacts", Some("requireUser"));
        let admin = op(Method::Get, "/api/admin/users", Some("requireAdmin"));
        let odd = op(Method::Get, "/api/comms/x", Some("requireOwner"));
        assert_eq!(may_call(&who(&keys[0]), &post), Ok(()));
        assert_eq!(may_call(&who(&keys[0]), &admin), Err(Denied::Admin));
        assert_eq!(
            may_call(&who(&keys[0]), &odd),
            Err(Denied::UnknownAuthType("requireOwner".into()))
        );
        assert_eq!(may_call(&who(&keys[1]), &get), Ok(()));
        assert_eq!(
            may_call(&who(&keys[1]), &post),
            Err(Denied::ReadOnly("POST"))
        );
        assert_eq!(may_call(&who(&keys[2]), &post), Ok(()));
        assert_eq!(
            may_call(&who(&keys[2]), &admin),
            Err(Denied::Domain("admin".into()))
        );
        assert_eq!(may_call(&who(&keys[3]), &admin), Ok(()));
        assert!(parse_keys("k;sudo").is_err());
        // Without the closing `;`, a domain-like piece continues the list.
        let open = parse_keys("a;domains=comms,calls").unwrap();
        assert_eq!(open.len(), 1);
    }

    #[test]
    fn sms_operations_and_their_recipients() {
        let ops = parse_sms_operations("POST /api/sms/bulk/[id]=/recipient/phone").unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].path, "/api/sms/bulk/{id}");
        let send = op(
            Method::Post,
            "/api/integrations/df-middleware/send-message",
            None,
        );
        let sms = sms_operation(&ops, &send).unwrap();
        let body = serde_json::json!({"to": "+12025550100", "body": "hi"});
        assert_eq!(recipient(sms, Some(&body)), Ok("+12025550100"));
        assert!(recipient(sms, Some(&serde_json::json!({"body": "hi"}))).is_err());
        assert!(sends(
            &ops,
            &op(Method::Post, "/api/comms/broadcasts/{id}/send", None)
        ));
        assert!(!sends(
            &ops,
            &op(Method::Get, "/api/comms/broadcasts/{id}", None)
        ));
        assert!(parse_sms_operations("POST /api/x").is_err());
    }
}
