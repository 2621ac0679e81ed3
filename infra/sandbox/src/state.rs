//! The sandbox's in-memory world: provider records, the request log, faults, rate windows.
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::openapi::OpenApi;

/// The custom fields a set-up location has for the middleware (README: "GHL custom
/// fields"), seeded unless a test asks for an empty location.
pub const SEEDED_CUSTOM_FIELDS: &[&str] = &[
    "aloware_contact_id",
    "intake_source",
    "lead_source",
    "df_origin_id",
];

/// `../shared/reference` (GHL's OpenAPI among it): `DF_REFERENCE_DIR`, else beside this
/// checkout. Under `CI=true` its absence is fatal: CI has it, and a sandbox that cannot
/// validate would pass requests GHL refuses.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var("DF_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/reference"
            ))
        });
    if dir.join("ghl/openapi").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "{} is missing under CI=true: the sandbox validates GHL requests against it",
            dir.display()
        );
    }
    eprintln!(
        "df-sandbox: {} is absent: GHL requests are NOT validated against the OpenAPI",
        dir.display()
    );
    None
}
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub ghl_token: String,
    pub ghl_location_id: String,
    pub aloware_token: String,
    pub texting_api_key: String,
    /// GHL burst limit: requests per window per location.
    pub ghl_rate_max: usize,
    pub ghl_rate_window: Duration,
    /// GHL's OpenAPI, when the reference data is present.
    pub openapi: Option<Arc<OpenApi>>,
    /// Start the location with the middleware's custom fields (a set-up location).
    pub seed_custom_fields: bool,
    /// The location's conversation provider (`GHL_CONVERSATION_PROVIDER_ID`).
    pub ghl_conversation_provider_id: String,
    /// Verity's service key (`VERITY_API_KEY`) and Clerk's machine secret.
    pub verity_api_key: String,
    pub clerk_machine_secret: String,
    /// The catalog whose operations the sandbox's Verity serves.
    pub verity_catalog: PathBuf,
    /// GHL's contact search trails its writes ("updates can take a few seconds to show
    /// in search", research/ghl.md §2): a write is found by the duplicate search and
    /// `POST /contacts/search` only this long after it.
    pub ghl_contact_search_lag: Duration,
    /// The location's "Allow Duplicate Contact" setting (off by default, as in GHL).
    pub ghl_allow_duplicate_contacts: bool,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenApi({} operations)", self.operation_count())
    }
}

/// GHL's OpenAPI from the reference directory, loaded once per process.
pub fn ghl_openapi() -> Option<Arc<OpenApi>> {
    static LOADED: std::sync::OnceLock<Option<Arc<OpenApi>>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let dir = reference_dir()?.join("ghl/openapi");
            OpenApi::load(&dir).map(Arc::new)
        })
        .clone()
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            ghl_token: "sandbox-ghl-token".into(),
            ghl_location_id: "sandbox-location".into(),
            aloware_token: "sandbox-aloware-token".into(),
            texting_api_key: "sandbox-texting-key".into(),
            ghl_rate_max: 100,
            ghl_rate_window: Duration::from_secs(10),
            openapi: ghl_openapi(),
            seed_custom_fields: true,
            ghl_conversation_provider_id: "sandbox-conversation-provider".into(),
            verity_api_key: "sandbox-verity-key".into(),
            clerk_machine_secret: "sandbox-clerk-machine-secret".into(),
            verity_catalog: crate::verity::default_catalog_path(),
            ghl_contact_search_lag: Duration::from_millis(1500),
            ghl_allow_duplicate_contacts: false,
        }
    }
}

impl SandboxConfig {
    /// Defaults overridden by the same variables the middleware reads.
    pub fn from_env() -> Self {
        let d = SandboxConfig::default();
        let var = |name: &str, default: String| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
        };
        SandboxConfig {
            ghl_token: var("GHL_API_KEY", d.ghl_token),
            ghl_location_id: var("GHL_LOCATION_ID", d.ghl_location_id),
            aloware_token: var("ALOWARE_API_TOKEN", d.aloware_token),
            texting_api_key: var("TEXTING_API_KEY", d.texting_api_key),
            ghl_conversation_provider_id: var(
                "GHL_CONVERSATION_PROVIDER_ID",
                d.ghl_conversation_provider_id,
            ),
            verity_api_key: var("VERITY_API_KEY", d.verity_api_key),
            clerk_machine_secret: var("CLERK_MACHINE_SECRET_KEY", d.clerk_machine_secret),
            verity_catalog: std::env::var("VERITY_CATALOG_URI")
                .ok()
                .filter(|v| !v.is_empty() && !v.contains("://"))
                .map(PathBuf::from)
                .unwrap_or(d.verity_catalog),
            ghl_contact_search_lag: std::env::var("DF_SANDBOX_GHL_SEARCH_LAG_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or(d.ghl_contact_search_lag),
            ..d
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub provider: String,
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Value,
    pub status: u16,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Request headers, recorded for Verity only (what the gateway forwards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub provider: Option<String>,
    pub status: Option<u16>,
    pub remaining: Option<u32>,
    pub until: Option<Instant>,
    pub latency_ms: Option<u64>,
    /// Requests of the provider to let through untouched before the fault applies.
    pub skip: u32,
    /// Perform the request, then answer with the fault's status (the write happened,
    /// its answer was lost).
    pub apply: bool,
    /// Only requests whose path contains this text.
    pub path_contains: Option<String>,
    /// Only requests of this method.
    pub method: Option<String>,
}

/// What applies to one request.
#[derive(Debug, Clone, Copy)]
pub struct AppliedFault {
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub apply: bool,
}

pub struct State {
    pub config: SandboxConfig,
    pub ghl_contacts: BTreeMap<String, Value>,
    /// What GHL's contact search sees: writes older than the lag folded in, the newer
    /// ones still on their way (`None` = deleted).
    pub ghl_contact_index: BTreeMap<String, Value>,
    pub ghl_contact_index_pending: VecDeque<(Instant, String, Option<Value>)>,
    /// The location's custom fields by opaque id (`{id, name, fieldKey, dataType, ...}`).
    pub ghl_custom_fields: BTreeMap<String, Value>,
    /// Requests that broke the provider's contract, with why.
    pub violations: Vec<Value>,
    /// How the Aloware phone lookup wraps its contact (`plain`, `contact`, `data`, `list`).
    pub aloware_lookup_shape: String,
    pub ghl_notes: BTreeMap<String, Vec<Value>>,
    /// Custom-object records by id (`ghl_objects`), and when each was written.
    pub ghl_records: BTreeMap<String, Value>,
    pub ghl_record_written: HashMap<String, Instant>,
    /// GHL's record search is an index that trails writes: a record written less than
    /// this long ago is not found yet (`/_sandbox/config {"ghl_search_lag_ms": n}`).
    pub ghl_search_lag: Duration,
    pub ghl_messages: Vec<Value>,
    /// Conversations by id (one per contact).
    pub ghl_conversations: BTreeMap<String, Value>,
    /// Whether our token may set a message's status (only the provider app's may).
    pub ghl_status_updates_allowed: bool,
    pub aloware_contacts: BTreeMap<u64, Value>,
    pub aloware_lists: BTreeMap<String, BTreeSet<u64>>,
    pub aloware_sms: Vec<Value>,
    pub texting_messages: BTreeMap<String, Value>,
    /// What the alert receiver (`ALERT_WEBHOOK_URL`) was sent.
    pub alerts: Vec<Value>,
    /// The location's users (`GET /users/`) and Aloware's (`GET users`).
    pub ghl_users: Vec<Value>,
    pub aloware_users: Vec<Value>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Vec<Fault>,
    pub rate_windows: HashMap<String, VecDeque<Instant>>,
    pub next_id: u64,
    /// Verity's operations (`verity::load_operations`), the machine tokens Clerk
    /// minted (valid at Verity until revoked) and the JWKS Clerk publishes.
    pub verity_operations: Vec<(String, Vec<String>)>,
    pub verity_machine_tokens: Vec<String>,
    pub clerk_jwks: Value,
}

impl State {
    pub fn new(config: SandboxConfig) -> Self {
        let mut st = State {
            ghl_custom_fields: BTreeMap::new(),
            violations: Vec::new(),
            aloware_lookup_shape: "plain".into(),
            config,
            ghl_contacts: BTreeMap::new(),
            ghl_contact_index: BTreeMap::new(),
            ghl_contact_index_pending: VecDeque::new(),
            ghl_notes: BTreeMap::new(),
            ghl_records: BTreeMap::new(),
            ghl_record_written: HashMap::new(),
            ghl_search_lag: Duration::ZERO,
            ghl_messages: Vec::new(),
            ghl_conversations: BTreeMap::new(),
            ghl_status_updates_allowed: false,
            aloware_contacts: BTreeMap::new(),
            aloware_lists: BTreeMap::new(),
            aloware_sms: Vec::new(),
            texting_messages: BTreeMap::new(),
            alerts: Vec::new(),
            ghl_users: vec![
                serde_json::json!({"id": "sandbox-user-1", "name": "Sandbox Agent",
                "firstName": "Sandbox", "lastName": "Agent", "email": "agent@example.com"}),
            ],
            aloware_users: vec![
                serde_json::json!({"id": 1, "name": "Sandbox Agent", "email": "agent@example.com",
                "agent_status": 1, "human_readable_agent_status": "Available"}),
            ],
            requests: Vec::new(),
            faults: Vec::new(),
            rate_windows: HashMap::new(),
            next_id: 1000,
            verity_operations: Vec::new(),
            verity_machine_tokens: Vec::new(),
            clerk_jwks: json!({"keys": []}),
        };
        st.verity_operations = crate::verity::load_operations(&st.config.verity_catalog);
        if st.config.seed_custom_fields {
            for key in SEEDED_CUSTOM_FIELDS {
                st.create_custom_field(key, "TEXT");
            }
        }
        st
    }

    /// A location custom field, as GHL creates one: an opaque id and a `contact.` key.
    pub fn create_custom_field(&mut self, name: &str, data_type: &str) -> Value {
        let id = self.ghl_id('f');
        let slug: String = name
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let field = json!({"id": id, "name": name, "fieldKey": format!("contact.{slug}"), "dataType": data_type,
            "model": "contact", "locationId": self.config.ghl_location_id, "position": 0, "placeholder": ""});
        self.ghl_custom_fields.insert(id, field.clone());
        field
    }

    /// A contact was written (or removed, `None`): its search entry changes after the
    /// search lag. `at_once` for contacts seeded as already there.
    pub fn index_contact(&mut self, id: &str, at_once: bool) {
        let now = Instant::now();
        let at = if at_once {
            now.checked_sub(self.config.ghl_contact_search_lag)
                .unwrap_or(now)
        } else {
            now
        };
        let value = self.ghl_contacts.get(id).cloned();
        self.ghl_contact_index_pending
            .push_back((at, id.to_string(), value));
    }

    /// The contacts GHL's search finds now.
    pub fn searchable_contacts(&mut self) -> &BTreeMap<String, Value> {
        let lag = self.config.ghl_contact_search_lag;
        let now = Instant::now();
        while self
            .ghl_contact_index_pending
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) >= lag)
        {
            let (_, id, value) = self.ghl_contact_index_pending.pop_front().unwrap();
            match value {
                Some(v) => self.ghl_contact_index.insert(id, v),
                None => self.ghl_contact_index.remove(&id),
            };
        }
        &self.ghl_contact_index
    }

    pub fn violation(&mut self, provider: &str, method: &str, path: &str, errors: Vec<String>) {
        self.violations
            .push(json!({"provider": provider, "method": method, "path": path,
            "errors": errors, "at": chrono::Utc::now().to_rfc3339()}));
    }

    pub fn reset(&mut self) {
        *self = State::new(self.config.clone());
    }

    pub fn record(&mut self, request: RecordedRequest) {
        self.requests.push(request);
    }

    /// GHL-style 20-character ids, unique within this sandbox.
    pub fn ghl_id(&mut self, prefix: char) -> String {
        self.next_id += 1;
        format!("{prefix}{:0>19}", self.next_id)
    }

    pub fn numeric_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The first active fault for this request, consumed by one use when counted.
    pub fn take_fault(&mut self, provider: &str, method: &str, path: &str) -> Option<AppliedFault> {
        let now = Instant::now();
        self.faults
            .retain(|f| f.remaining != Some(0) && f.until.is_none_or(|u| u > now));
        let fault = self.faults.iter_mut().find(|f| {
            f.provider.as_deref().is_none_or(|p| p == provider)
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        Some(AppliedFault {
            status: fault.status,
            latency_ms: fault.latency_ms,
            apply: fault.apply,
        })
    }

    /// Sliding-window limiter: `Ok(remaining)` or `Err(())` when over the limit.
    pub fn rate_take(&mut self, key: &str) -> Result<usize, ()> {
        let now = Instant::now();
        let window = self.config.ghl_rate_window;
        let max = self.config.ghl_rate_max;
        let q = self.rate_windows.entry(key.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= max {
            return Err(());
        }
        q.push_back(now);
        Ok(max - q.len())
    }
}
