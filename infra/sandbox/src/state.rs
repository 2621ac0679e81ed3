//! The sandbox's in-memory world: provider records, the request log, faults, rate windows.
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub ghl_token: String,
    pub ghl_location_id: String,
    pub aloware_token: String,
    pub texting_api_key: String,
    /// GHL burst limit: requests per window per location.
    pub ghl_rate_max: usize,
    pub ghl_rate_window: Duration,
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
    pub ghl_notes: BTreeMap<String, Vec<Value>>,
    pub ghl_messages: Vec<Value>,
    pub aloware_contacts: BTreeMap<u64, Value>,
    pub aloware_lists: BTreeMap<String, BTreeSet<u64>>,
    pub aloware_sms: Vec<Value>,
    pub texting_messages: BTreeMap<String, Value>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Vec<Fault>,
    pub rate_windows: HashMap<String, VecDeque<Instant>>,
    pub next_id: u64,
}

impl State {
    pub fn new(config: SandboxConfig) -> Self {
        State {
            config,
            ghl_contacts: BTreeMap::new(),
            ghl_notes: BTreeMap::new(),
            ghl_messages: Vec::new(),
            aloware_contacts: BTreeMap::new(),
            aloware_lists: BTreeMap::new(),
            aloware_sms: Vec::new(),
            texting_messages: BTreeMap::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            rate_windows: HashMap::new(),
            next_id: 1000,
        }
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
    pub fn take_fault(&mut self, provider: &str, path: &str) -> Option<AppliedFault> {
        let now = Instant::now();
        self.faults
            .retain(|f| f.remaining != Some(0) && f.until.is_none_or(|u| u > now));
        let fault = self.faults.iter_mut().find(|f| {
            f.provider.as_deref().is_none_or(|p| p == provider)
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
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
