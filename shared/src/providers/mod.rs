//! Clients of the provider APIs. Every failure is a [`ProviderError`] that says whether
//! retrying can help.
pub mod aloware;
pub mod error;
pub mod ghl;
pub mod texting;

pub use error::{Provider, ProviderError};

/// One shared HTTP client per process: connection reuse across invocations.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .expect("HTTP client builds")
}
