//! Verity's broadcast webhooks (SPEC §13): lower-case hex HMAC-SHA256 of the raw body
//! in `X-Broadcast-Signature` or `X-Signature`, else the shared secret itself in
//! `X-DF-Broadcast-Secret`. Every comparison is constant-time.
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::secret_eq;

/// Why a broadcast webhook was refused (never says more than which check failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastAuthError {
    #[error("signature is not 64 lower-case hex characters")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
    #[error("missing or wrong X-DF-Broadcast-Secret")]
    WrongSecret,
    #[error("no signature and no X-DF-Broadcast-Secret")]
    Missing,
}

/// The headers that may prove a broadcast webhook.
#[derive(Debug, Default, Clone, Copy)]
pub struct BroadcastProof<'a> {
    /// `X-Broadcast-Signature`, else `X-Signature`.
    pub signature: Option<&'a str>,
    pub secret: Option<&'a str>,
}

pub fn verify(
    secret: &str,
    body: &[u8],
    proof: BroadcastProof<'_>,
) -> Result<(), BroadcastAuthError> {
    if let Some(sig) = proof.signature {
        return verify_signature(secret, body, sig);
    }
    match proof.secret {
        Some(given) if secret_eq(given.trim().as_bytes(), secret.as_bytes()) => Ok(()),
        Some(_) => Err(BroadcastAuthError::WrongSecret),
        None => Err(BroadcastAuthError::Missing),
    }
}

fn verify_signature(secret: &str, body: &[u8], sig: &str) -> Result<(), BroadcastAuthError> {
    let sig = sig.trim();
    let well_formed = sig.len() == 64
        && sig
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(BroadcastAuthError::Malformed);
    }
    let given = hex::decode(sig).map_err(|_| BroadcastAuthError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| BroadcastAuthError::Mismatch)?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| BroadcastAuthError::Mismatch)
}

/// The signature Verity sends for `body` (for tests, tools and the README's example).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec-broadcast";
    const BODY: &[u8] = br#"{"broadcastId":"b1","eventType":"analytics_updated"}"#;

    fn sig(s: &str) -> BroadcastProof<'_> {
        BroadcastProof {
            signature: Some(s),
            secret: None,
        }
    }

    #[test]
    fn hex_hmac_of_the_raw_body() {
        let good = sign(SECRET, BODY);
        assert_eq!(verify(SECRET, BODY, sig(&good)), Ok(()));
        // The value Python's hmac module gives for the same key and message.
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let other_body = br#"{"broadcastId":"b2","eventType":"analytics_updated"}"#;
        assert_eq!(
            verify(SECRET, other_body, sig(&good)),
            Err(BroadcastAuthError::Mismatch)
        );
        assert_eq!(
            verify("other", BODY, sig(&good)),
            Err(BroadcastAuthError::Mismatch)
        );
    }

    #[test]
    fn malformed_signatures_are_refused_before_any_comparison() {
        let good = sign(SECRET, BODY);
        for bad in [
            &good[..63],
            &format!("{good}0"),
            &good.to_uppercase(),
            "",
            "zz",
        ] {
            assert_eq!(
                verify(SECRET, BODY, sig(bad)),
                Err(BroadcastAuthError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secret_header_is_the_fallback_only() {
        let secret = |s| BroadcastProof {
            signature: None,
            secret: Some(s),
        };
        assert_eq!(verify(SECRET, BODY, secret(SECRET)), Ok(()));
        assert_eq!(verify(SECRET, BODY, secret(" whsec-broadcast ")), Ok(()));
        assert_eq!(
            verify(SECRET, BODY, secret("nope")),
            Err(BroadcastAuthError::WrongSecret)
        );
        assert_eq!(
            verify(SECRET, BODY, BroadcastProof::default()),
            Err(BroadcastAuthError::Missing)
        );
        // A present but wrong signature is not rescued by a right secret.
        let both = BroadcastProof {
            signature: Some("00"),
            secret: Some(SECRET),
        };
        assert_eq!(
            verify(SECRET, BODY, both),
            Err(BroadcastAuthError::Malformed)
        );
    }
}
