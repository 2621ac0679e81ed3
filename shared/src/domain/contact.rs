//! The canonical contact and the merge rules of SPEC §6, pure. Every field decision is
//! recorded (field, chosen source, reason) for the sync log.
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::json::{first_id, first_text, text};
use super::phone::to_e164;

/// A person as both systems can express it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub timezone: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub lead_source: Option<String>,
    /// Do-not-call (GHL: `dndSettings.Call`; Aloware: `is_dnc`).
    pub dnc: Option<bool>,
    /// GHL's SMS DND (`dndSettings.SMS`), the opt-out registry's mirror; Aloware has none.
    pub sms_dnd: Option<bool>,
    /// GHL's SMS DND is `permanent`: never downgraded or cleared by the middleware.
    pub sms_dnd_permanent: bool,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Aloware,
    Ghl,
    Merge,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "aloware" => Ok(Policy::Aloware),
            "ghl" => Ok(Policy::Ghl),
            "merge" => Ok(Policy::Merge),
            other => Err(format!(
                "CONTACT_SOURCE_OF_TRUTH must be aloware, ghl or merge, not {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Aloware,
    Ghl,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub field: &'static str,
    pub chosen: Side,
    pub reason: &'static str,
}

fn owned(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn phone(raw: Option<&str>, country: &str) -> Option<String> {
    owned(raw).map(|p| to_e164(&p, country).unwrap_or(p))
}

fn bool_of(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.as_str() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl Contact {
    /// From an Aloware contact object (contact events, or `body.contact` of call events).
    pub fn from_aloware(c: &Value, country: &str) -> Contact {
        let (first, last) = split_name(c, "first_name", "last_name", "name");
        Contact {
            first_name: first,
            last_name: last,
            phone: phone(first_text(c, &["phone_number", "lead_number"]), country),
            email: owned(text(c.get("email"))).map(|e| e.to_lowercase()),
            timezone: owned(text(c.get("timezone"))),
            address: owned(text(c.get("address"))),
            city: owned(text(c.get("city"))),
            state: owned(text(c.get("state"))),
            postal_code: owned(first_text(c, &["zipcode", "zip"])),
            country: owned(text(c.get("country"))),
            lead_source: owned(first_text(c, &["lead_source", "contact_source"])),
            dnc: bool_of(c.get("is_dnc")),
            sms_dnd: None,
            sms_dnd_permanent: false,
            tags: Vec::new(),
        }
    }

    /// From a GHL contact (API `contact` object or a contact webhook body). DND as GHL
    /// defines it (`DndSettingSchema`): a channel's status is `active`, `inactive` or
    /// `permanent`, and only `inactive` is off (an unknown value is read as on: failing
    /// closed); `dnd: true` is DND on every channel.
    pub fn from_ghl(c: &Value, country: &str) -> Contact {
        let (first, last) = split_name(c, "firstName", "lastName", "name");
        let all = c.get("dnd").and_then(Value::as_bool) == Some(true);
        let channel = |name: &str| {
            c.pointer(&format!("/dndSettings/{name}/status"))
                .and_then(Value::as_str)
                .map(|s| s != "inactive")
        };
        let dnd_call = channel("Call").map(|on| on || all);
        let sms_status = c.pointer("/dndSettings/SMS/status").and_then(Value::as_str);
        Contact {
            first_name: first,
            last_name: last,
            phone: phone(text(c.get("phone")), country),
            email: owned(text(c.get("email"))).map(|e| e.to_lowercase()),
            timezone: owned(text(c.get("timezone"))),
            address: owned(text(c.get("address1"))),
            city: owned(text(c.get("city"))),
            state: owned(text(c.get("state"))),
            postal_code: owned(text(c.get("postalCode"))),
            country: owned(text(c.get("country"))),
            lead_source: owned(text(c.get("source"))),
            dnc: dnd_call.or_else(|| bool_of(c.get("dnd"))),
            sms_dnd: channel("SMS").map(|on| on || all).or(all.then_some(true)),
            sms_dnd_permanent: sms_status == Some("permanent"),
            tags: ghl_tags(c.get("tags")),
        }
    }

    pub fn full_name(&self) -> String {
        [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The GHL contact id of an API object or webhook body.
    pub fn ghl_id(c: &Value) -> Option<String> {
        first_id(c, &["id", "contact_id", "contactId"])
    }
}

fn split_name(c: &Value, first: &str, last: &str, full: &str) -> (Option<String>, Option<String>) {
    let (f, l) = (owned(text(c.get(first))), owned(text(c.get(last))));
    if f.is_some() || l.is_some() {
        return (f, l);
    }
    match owned(text(c.get(full))) {
        Some(name) => match name.split_once(' ') {
            Some((f, l)) => (owned(Some(f)), owned(Some(l))),
            None => (Some(name), None),
        },
        None => (None, None),
    }
}

/// Tags as an array (marketplace events, API) or a comma-separated string (workflows).
pub fn ghl_tags(v: Option<&Value>) -> Vec<String> {
    let raw: Vec<String> = match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let mut tags: Vec<String> = raw
        .into_iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// The merged result: the target's new values and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub contact: Contact,
    pub decisions: Vec<Decision>,
}

/// Merge `incoming` (from `source`) into `target` (the other system's current copy)
/// under `policy`. `Side::Ghl` is the side GHL-precedence rules favour.
pub fn merge(incoming: &Contact, source: Side, target: &Contact, policy: Policy) -> Merged {
    let target_side = if source == Side::Ghl {
        Side::Aloware
    } else {
        Side::Ghl
    };
    let mut decisions = Vec::new();
    let mut pick = |field: &'static str,
                    inc: &Option<String>,
                    cur: &Option<String>,
                    rule: Rule|
     -> Option<String> {
        let (chosen, reason) = decide(inc, cur, source, target_side, policy, rule);
        if inc != cur && inc.is_some() {
            decisions.push(Decision {
                field,
                chosen,
                reason,
            });
        }
        if chosen == source {
            inc.clone().or_else(|| cur.clone())
        } else {
            cur.clone().or_else(|| inc.clone())
        }
    };
    let contact = Contact {
        first_name: None,
        last_name: None,
        phone: pick("phone", &incoming.phone, &target.phone, Rule::Phone),
        email: pick(
            "email",
            &incoming.email,
            &target.email,
            Rule::GhlWinsConflict,
        ),
        timezone: pick(
            "timezone",
            &incoming.timezone,
            &target.timezone,
            Rule::GhlWinsConflict,
        ),
        address: pick(
            "address",
            &incoming.address,
            &target.address,
            Rule::GhlWinsConflict,
        ),
        city: pick("city", &incoming.city, &target.city, Rule::GhlWinsConflict),
        state: pick(
            "state",
            &incoming.state,
            &target.state,
            Rule::GhlWinsConflict,
        ),
        postal_code: pick(
            "postal_code",
            &incoming.postal_code,
            &target.postal_code,
            Rule::GhlWinsConflict,
        ),
        country: pick(
            "country",
            &incoming.country,
            &target.country,
            Rule::GhlWinsConflict,
        ),
        lead_source: pick(
            "lead_source",
            &incoming.lead_source,
            &target.lead_source,
            Rule::FillOnly,
        ),
        dnc: match (incoming.dnc, target.dnc) {
            // Do-not-call only ever tightens through a sync: a DNC flag is never lifted here.
            (Some(true), _) | (_, Some(true)) => Some(true),
            (inc, cur) => cur.or(inc),
        },
        // The registry decides SMS DND; a contact sync never changes it.
        sms_dnd: target.sms_dnd,
        sms_dnd_permanent: target.sms_dnd_permanent,
        tags: union_tags(&target.tags, &incoming.tags),
    };
    // Name: the longer non-empty full name (merge); else by policy.
    let (inc_name, cur_name) = (incoming.full_name(), target.full_name());
    let (chosen, reason) = match policy {
        _ if inc_name == cur_name || inc_name.is_empty() => (target_side, "unchanged"),
        _ if cur_name.is_empty() => (source, "target empty"),
        Policy::Merge if inc_name.len() > cur_name.len() => (source, "longer full name"),
        Policy::Merge => (target_side, "longer or equal full name kept"),
        Policy::Aloware if source == Side::Aloware => (source, "policy aloware"),
        Policy::Ghl if source == Side::Ghl => (source, "policy ghl"),
        _ => (target_side, "policy keeps target"),
    };
    if inc_name != cur_name && !inc_name.is_empty() {
        decisions.push(Decision {
            field: "name",
            chosen,
            reason,
        });
    }
    let from = if chosen == source { incoming } else { target };
    let contact = Contact {
        first_name: from.first_name.clone(),
        last_name: from.last_name.clone(),
        ..contact
    };
    Merged { contact, decisions }
}

#[derive(Clone, Copy)]
enum Rule {
    Phone,
    GhlWinsConflict,
    FillOnly,
}

fn decide(
    inc: &Option<String>,
    cur: &Option<String>,
    source: Side,
    target: Side,
    policy: Policy,
    rule: Rule,
) -> (Side, &'static str) {
    match (inc, cur) {
        (None, _) => (target, "incoming empty"),
        (Some(_), None) => (source, "target empty"),
        (Some(i), Some(c)) if i == c => (target, "unchanged"),
        (Some(i), Some(c)) => match policy {
            Policy::Aloware if source == Side::Aloware => (source, "policy aloware"),
            Policy::Ghl if source == Side::Ghl => (source, "policy ghl"),
            Policy::Aloware | Policy::Ghl => (target, "policy keeps target"),
            Policy::Merge => match rule {
                Rule::Phone if i.starts_with('+') && !c.starts_with('+') => {
                    (source, "valid E.164 replaces invalid")
                }
                Rule::Phone => (target, "phone kept once set"),
                Rule::GhlWinsConflict if source == Side::Ghl => (source, "GHL precedence"),
                Rule::GhlWinsConflict => (target, "conflict: GHL kept"),
                Rule::FillOnly => (target, "kept once set"),
            },
        },
    }
}

/// Union of tags; `SYS:` tags are never removed (they are only ever added here).
fn union_tags(a: &[String], b: &[String]) -> Vec<String> {
    let mut all: Vec<String> = a.iter().chain(b).cloned().collect();
    all.sort();
    all.dedup();
    all
}

/// The contact's text fields, in the order of the name tables below.
fn text_fields(c: &Contact) -> [&Option<String>; 11] {
    [
        &c.first_name,
        &c.last_name,
        &c.phone,
        &c.email,
        &c.timezone,
        &c.address,
        &c.city,
        &c.state,
        &c.postal_code,
        &c.country,
        &c.lead_source,
    ]
}

const GHL_NAMES: [&str; 11] = [
    "firstName",
    "lastName",
    "phone",
    "email",
    "timezone",
    "address1",
    "city",
    "state",
    "postalCode",
    "country",
    "source",
];
const ALOWARE_NAMES: [&str; 11] = [
    "first_name",
    "last_name",
    "phone_number",
    "email",
    "timezone",
    "address",
    "city",
    "state",
    "zipcode",
    "country",
    "lead_source",
];

fn named(c: &Contact, names: [&'static str; 11]) -> BTreeMap<&'static str, Value> {
    names
        .into_iter()
        .zip(text_fields(c))
        .filter_map(|(name, value)| value.as_ref().map(|v| (name, Value::from(v.clone()))))
        .collect()
}

/// GHL field values of a contact, for writes and comparisons.
pub fn ghl_fields(c: &Contact) -> BTreeMap<&'static str, Value> {
    named(c, GHL_NAMES)
}

/// Aloware `forms` field values of a contact.
pub fn aloware_fields(c: &Contact) -> BTreeMap<&'static str, Value> {
    let mut m = named(c, ALOWARE_NAMES);
    if let Some(dnc) = c.dnc {
        m.insert("is_dnc", Value::from(dnc));
    }
    m
}

/// Fields of `after` that differ from `before` (the no-op suppression of SPEC §5 c).
pub fn changed<'a>(
    before: &BTreeMap<&'a str, Value>,
    after: &BTreeMap<&'a str, Value>,
) -> BTreeMap<&'a str, Value> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (*k, v.clone()))
        .collect()
}

/// Hash of every synced field — names, phone, email, timezone, address, lead source,
/// DND and tags — for loop prevention (SPEC §5 a). A webhook is our own echo only when
/// *all* of these equal what we wrote: a person's edit or DND change made moments after
/// our write changes the hash and is applied.
pub fn fingerprint(c: &Contact) -> String {
    let mut parts: Vec<&str> = text_fields(c)
        .iter()
        .map(|p| p.as_deref().unwrap_or(""))
        .collect();
    // An unset flag and a cleared one are the same state.
    parts.push(if c.dnc == Some(true) { "dnc" } else { "no-dnc" });
    parts.push(if c.sms_dnd == Some(true) {
        "sms-dnd"
    } else {
        "no-sms-dnd"
    });
    let mut tags: Vec<String> = c.tags.iter().map(|t| t.trim().to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    let tags = tags.join("\u{1e}");
    parts.push(&tags);
    super::dedupe::body_hash(parts.join("\u{1f}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghl_dnd_as_ghl_defines_it() {
        let c = |v: Value| Contact::from_ghl(&v, "US");
        let sms = |status: &str| c(serde_json::json!({"dndSettings": {"SMS": {"status": status}}}));
        assert_eq!(sms("active").sms_dnd, Some(true));
        assert_eq!(sms("inactive").sms_dnd, Some(false));
        assert_eq!(sms("permanent").sms_dnd, Some(true));
        assert!(sms("permanent").sms_dnd_permanent);
        assert_eq!(sms("foo").sms_dnd, Some(true), "unknown values fail closed");
        assert_eq!(
            c(serde_json::json!({"dnd": true})).sms_dnd,
            Some(true),
            "dnd: all channels"
        );
        assert_eq!(
            c(serde_json::json!({"dnd": true, "dndSettings": {"SMS": {"status": "inactive"}}}))
                .sms_dnd,
            Some(true)
        );
        assert_eq!(c(serde_json::json!({"dnd": false})).sms_dnd, None);
        assert_eq!(
            c(serde_json::json!({"dndSettings": {"Call": {"status": "permanent"}}})).dnc,
            Some(true)
        );
    }

    #[test]
    fn the_fingerprint_covers_dnd_tags_and_lead_source() {
        let base = Contact {
            first_name: Some("Ann".into()),
            phone: Some("+12025550177".into()),
            tags: vec!["b".into(), "A".into()],
            ..Default::default()
        };
        let same = Contact {
            tags: vec!["a".into(), "b".into()],
            dnc: Some(false),
            ..base.clone()
        };
        assert_eq!(
            fingerprint(&base),
            fingerprint(&same),
            "tag order, case and an unset DND are no change"
        );
        for changed in [
            Contact {
                dnc: Some(true),
                ..base.clone()
            },
            Contact {
                tags: vec!["a".into()],
                ..base.clone()
            },
            Contact {
                lead_source: Some("Ads".into()),
                ..base.clone()
            },
            Contact {
                first_name: Some("Anne".into()),
                ..base.clone()
            },
        ] {
            assert_ne!(fingerprint(&base), fingerprint(&changed), "{changed:?}");
        }
    }

    fn c(first: &str, last: &str, phone: &str, email: &str, tz: &str) -> Contact {
        let o = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Contact {
            first_name: o(first),
            last_name: o(last),
            phone: o(phone),
            email: o(email),
            timezone: o(tz),
            ..Default::default()
        }
    }

    #[test]
    fn merge_policy_rules() {
        let alo = c(
            "Jonathan",
            "Deo",
            "+12025550177",
            "new@example.com",
            "America/New_York",
        );
        let ghl = c(
            "John",
            "Deo",
            "2025550100",
            "old@example.com",
            "America/Chicago",
        );
        let m = merge(&alo, Side::Aloware, &ghl, Policy::Merge);
        assert_eq!(
            m.contact.phone.as_deref(),
            Some("+12025550177"),
            "valid E.164 replaces invalid"
        );
        assert_eq!(
            m.contact.email.as_deref(),
            Some("old@example.com"),
            "email conflict keeps GHL"
        );
        assert_eq!(
            m.contact.timezone.as_deref(),
            Some("America/Chicago"),
            "timezone prefers GHL"
        );
        assert_eq!(
            m.contact.first_name.as_deref(),
            Some("Jonathan"),
            "longer full name"
        );
        let email = m.decisions.iter().find(|d| d.field == "email").unwrap();
        assert_eq!(
            (email.chosen, email.reason),
            (Side::Ghl, "conflict: GHL kept")
        );
    }

    #[test]
    fn aloware_and_ghl_policies() {
        let alo = c("Jo", "", "+12025550177", "new@example.com", "");
        let ghl = c("John", "Deo", "+12025550100", "", "America/Chicago");
        let m = merge(&alo, Side::Aloware, &ghl, Policy::Aloware);
        assert_eq!(m.contact.phone.as_deref(), Some("+12025550177"));
        assert_eq!(m.contact.first_name.as_deref(), Some("Jo"));
        assert_eq!(
            m.contact.timezone.as_deref(),
            Some("America/Chicago"),
            "empty incoming never blanks"
        );
        let m = merge(&alo, Side::Aloware, &ghl, Policy::Ghl);
        assert_eq!(m.contact.phone.as_deref(), Some("+12025550100"));
        assert_eq!(
            m.contact.email.as_deref(),
            Some("new@example.com"),
            "ghl policy fills empty fields"
        );
        assert_eq!(m.contact.first_name.as_deref(), Some("John"));
    }

    #[test]
    fn ghl_precedence_when_ghl_is_the_source() {
        let ghl = c(
            "John",
            "Deo",
            "+12025550177",
            "ghl@example.com",
            "America/Chicago",
        );
        let alo = c(
            "John",
            "Deo",
            "+12025550177",
            "alo@example.com",
            "America/New_York",
        );
        let m = merge(&ghl, Side::Ghl, &alo, Policy::Merge);
        assert_eq!(m.contact.email.as_deref(), Some("ghl@example.com"));
        assert_eq!(m.contact.timezone.as_deref(), Some("America/Chicago"));
    }

    #[test]
    fn dnc_only_tightens_and_tags_union() {
        let mut a = Contact {
            dnc: Some(true),
            tags: vec!["x".into()],
            ..Default::default()
        };
        let b = Contact {
            dnc: Some(false),
            tags: vec!["sys:df_middleware_origin".into(), "y".into()],
            ..Default::default()
        };
        let m = merge(&a, Side::Aloware, &b, Policy::Ghl);
        assert_eq!(m.contact.dnc, Some(true));
        assert_eq!(m.contact.tags, ["sys:df_middleware_origin", "x", "y"]);
        a.dnc = Some(false);
        assert_eq!(
            merge(&a, Side::Aloware, &b, Policy::Aloware).contact.dnc,
            Some(false)
        );
    }

    #[test]
    fn workflow_tags_and_changed_fields() {
        assert_eq!(
            ghl_tags(Some(&Value::from("Hot Lead, call list,,hot lead"))),
            ["call list", "hot lead"]
        );
        let before = ghl_fields(&c("John", "Deo", "+12025550177", "", ""));
        let after = ghl_fields(&c("John", "Doe", "+12025550177", "j@example.com", ""));
        let diff = changed(&before, &after);
        assert_eq!(
            diff.keys().copied().collect::<Vec<_>>(),
            ["email", "lastName"]
        );
    }
}
