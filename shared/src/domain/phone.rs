//! Phone numbers to E.164, with the `phonenumber` crate (libphonenumber's metadata).
use phonenumber::{country, Mode};

/// Normalise a phone number to E.164, or `None` when it is not a valid number.
/// `default_country` (ISO 3166 alpha-2, e.g. "US") applies to national-format input.
pub fn to_e164(raw: &str, default_country: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 40 {
        return None;
    }
    let region = default_country.parse::<country::Id>().ok();
    let parsed = phonenumber::parse(region, raw).ok()?;
    phonenumber::is_valid(&parsed).then(|| parsed.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::to_e164;

    #[test]
    fn national_and_international_forms_agree() {
        assert_eq!(
            to_e164("(818) 600-6750", "US").as_deref(),
            Some("+18186006750")
        );
        assert_eq!(to_e164("8186006750", "US").as_deref(), Some("+18186006750"));
        assert_eq!(
            to_e164("+1 818 600 6750", "US").as_deref(),
            Some("+18186006750")
        );
        assert_eq!(
            to_e164("+919509597501", "US").as_deref(),
            Some("+919509597501")
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(to_e164("client:agent42", "US"), None);
        assert_eq!(to_e164("", "US"), None);
        assert_eq!(to_e164("12", "US"), None);
    }
}
