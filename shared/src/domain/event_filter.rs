//! `ALOWARE_WEBHOOK_ALLOWED_EVENTS`: exact names and `Prefix-*` patterns.

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    exact: Vec<String>,
    prefixes: Vec<String>,
    allow_all: bool,
}

impl EventFilter {
    /// Parse a comma-separated list; an empty list allows every event.
    pub fn parse(spec: &str) -> Self {
        let mut filter = EventFilter::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.strip_suffix('*') {
                Some("") => filter.allow_all = true,
                Some(prefix) => filter.prefixes.push(prefix.to_string()),
                None => filter.exact.push(item.to_string()),
            }
        }
        if filter.exact.is_empty() && filter.prefixes.is_empty() {
            filter.allow_all = true;
        }
        filter
    }

    pub fn allows(&self, event: &str) -> bool {
        self.allow_all
            || self.exact.iter().any(|e| e == event)
            || self.prefixes.iter().any(|p| event.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::EventFilter;

    #[test]
    fn exact_and_prefix_patterns() {
        let f = EventFilter::parse("OutboundPhoneCall-*, Recording-Saved ,Contact-Created");
        assert!(f.allows("OutboundPhoneCall-DispositionCompleted"));
        assert!(f.allows("Recording-Saved"));
        assert!(f.allows("Contact-Created"));
        assert!(!f.allows("OutboundPhoneCall"), "the pattern needs the dash");
        assert!(!f.allows("InboundPhoneCall-DispositionMissed"));
        assert!(!f.allows("Recording-Saved2"));
    }

    #[test]
    fn empty_or_star_allows_everything() {
        assert!(EventFilter::parse("").allows("Anything"));
        assert!(EventFilter::parse(" , ").allows("Anything"));
        assert!(EventFilter::parse("*").allows("Anything"));
    }
}
