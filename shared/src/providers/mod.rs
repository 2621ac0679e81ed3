//! Clients of the provider APIs. Every failure is a [`ProviderError`] that says whether
//! retrying can help.
pub mod aloware_api;
pub mod error;
pub mod ghl_api;
pub mod ghl_objects;
pub mod texting_api;
pub mod verity_api;

pub use error::{Provider, ProviderError};

/// One URL path segment from an id. Ids come from webhook bodies: everything but the
/// unreserved characters is percent-encoded, so `x/notes` or `a?b` stays inside its
/// segment; ids that are empty or only dots are refused, because URL parsers treat
/// `..` and `%2E%2E` alike as "go up" (WHATWG URL), which no encoding prevents.
pub fn segment(
    provider: Provider,
    operation: &'static str,
    id: &str,
) -> Result<String, ProviderError> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'~')
        .remove(b'.');
    if id.is_empty() || id.chars().all(|c| c == '.') || id.len() > 200 {
        return Err(ProviderError {
            provider,
            operation,
            status: None,
            message: "refused an id that is not a usable path segment".into(),
            retryable: false,
            retry_after: None,
            throttled: false,
            paused: false,
        });
    }
    Ok(utf8_percent_encode(id, SEGMENT).to_string())
}

/// One shared HTTP client per process: connection reuse across invocations.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .expect("HTTP client builds")
}

/// As [`http_client`], following no redirect: a 3xx from Verity is passed through, never
/// replayed with the service credential to a path the catalog does not list.
pub fn http_client_no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client builds")
}

#[cfg(test)]
mod tests {
    use super::{segment, Provider};

    #[test]
    fn ids_stay_inside_their_segment() {
        let s = |id: &str| segment(Provider::Ghl, "op", id);
        assert_eq!(s("abc-DEF_9").unwrap(), "abc-DEF_9");
        assert_eq!(s("x/notes").unwrap(), "x%2Fnotes");
        assert_eq!(s("a?b#c").unwrap(), "a%3Fb%23c");
        assert_eq!(s("v1.2").unwrap(), "v1.2");
        for bad in ["", ".", "..", "..."] {
            assert!(s(bad).is_err(), "{bad:?}");
        }
    }
}
