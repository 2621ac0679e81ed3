//! Clients of the provider APIs. Every failure is a [`ProviderError`] that says whether
//! retrying can help.
pub mod aloware_api;
pub mod error;
pub mod ghl_api;
pub mod texting_api;

pub use error::{Provider, ProviderError};

/// One URL path segment: ids from webhook bodies are percent-encoded so that an id such
/// as `x/notes` or `..` stays inside its segment and cannot steer a request elsewhere.
pub fn segment(id: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // Unreserved characters (RFC 3986) stay as they are; everything else is encoded.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');
    let encoded = utf8_percent_encode(id, SEGMENT).to_string();
    // `.` alone or `..` would still be a dot-segment: encode dots too.
    encoded.replace('.', "%2E")
}

/// One shared HTTP client per process: connection reuse across invocations.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .expect("HTTP client builds")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_stay_inside_their_segment() {
        assert_eq!(super::segment("abc-DEF_9"), "abc-DEF_9");
        assert_eq!(super::segment("x/notes"), "x%2Fnotes");
        assert_eq!(super::segment(".."), "%2E%2E");
        assert_eq!(super::segment("a?b#c"), "a%3Fb%23c");
    }
}
