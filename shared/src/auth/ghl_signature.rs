//! GHL webhook signatures (research/ghl.md §6): `X-GHL-Signature` is Ed25519 over the
//! raw body, legacy `X-WH-Signature` is RSA-SHA256 PKCS#1 v1.5; both base64.
use base64::{engine::general_purpose::STANDARD, Engine};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use sha2::Sha256;

/// GHL's published Ed25519 key for `X-GHL-Signature`.
pub const PUBLISHED_ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=
-----END PUBLIC KEY-----
";

/// GHL's published RSA-4096 key for the legacy `X-WH-Signature`.
pub const PUBLISHED_RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
";

/// Which header proved the body authentic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ed25519,
    Rsa,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("X-GHL-Signature does not verify")]
    BadEd25519,
    #[error("X-WH-Signature does not verify")]
    BadRsa,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {which} public key: {reason}")]
pub struct KeyError {
    which: &'static str,
    reason: String,
}

#[derive(Clone)]
pub struct GhlKeys {
    ed25519: ed25519_dalek::VerifyingKey,
    rsa: rsa::pkcs1v15::VerifyingKey<Sha256>,
}

impl GhlKeys {
    /// Keys from PEM text (SubjectPublicKeyInfo). Literal `\n` sequences, as they
    /// appear in single-line environment variables, are accepted.
    pub fn from_pem(ed25519_pem: &str, rsa_pem: &str) -> Result<Self, KeyError> {
        let ed25519 = ed25519_dalek::VerifyingKey::from_public_key_pem(&unescape(ed25519_pem))
            .map_err(|e| KeyError {
                which: "Ed25519",
                reason: e.to_string(),
            })?;
        let rsa =
            rsa::RsaPublicKey::from_public_key_pem(&unescape(rsa_pem)).map_err(|e| KeyError {
                which: "RSA",
                reason: e.to_string(),
            })?;
        Ok(GhlKeys {
            ed25519,
            rsa: rsa::pkcs1v15::VerifyingKey::new(rsa),
        })
    }

    pub fn published() -> Self {
        Self::from_pem(PUBLISHED_ED25519_PEM, PUBLISHED_RSA_PEM).expect("published GHL keys parse")
    }

    /// `Ok(Some(scheme))` when a signature verifies, `Ok(None)` when neither header is
    /// present, `Err` when the signature that must be checked does not verify. A present
    /// X-GHL-Signature is authoritative: a wrong one never falls back to RSA.
    pub fn verify(
        &self,
        ghl_signature: Option<&str>,
        wh_signature: Option<&str>,
        body: &[u8],
    ) -> Result<Option<Scheme>, SignatureError> {
        if let Some(sig) = present(ghl_signature) {
            let ok = decode(sig)
                .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
                .is_some_and(|s| self.ed25519.verify_strict(body, &s).is_ok());
            return if ok {
                Ok(Some(Scheme::Ed25519))
            } else {
                Err(SignatureError::BadEd25519)
            };
        }
        if let Some(sig) = present(wh_signature) {
            let ok = decode(sig)
                .and_then(|b| rsa::pkcs1v15::Signature::try_from(b.as_slice()).ok())
                .is_some_and(|s| self.rsa.verify(body, &s).is_ok());
            return if ok {
                Ok(Some(Scheme::Rsa))
            } else {
                Err(SignatureError::BadRsa)
            };
        }
        Ok(None)
    }
}

/// GHL's own examples treat a missing header and the literal "N/A" alike.
fn present(header: Option<&str>) -> Option<&str> {
    header
        .map(str::trim)
        .filter(|h| !h.is_empty() && *h != "N/A")
}

fn decode(sig: &str) -> Option<Vec<u8>> {
    STANDARD.decode(sig).ok()
}

fn unescape(pem: &str) -> String {
    pem.replace("\\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::Signer as _;
    use rsa::signature::SignatureEncoding as _;

    struct TestKeys {
        keys: GhlKeys,
        ed: ed25519_dalek::SigningKey,
        rsa: rsa::pkcs1v15::SigningKey<Sha256>,
    }

    fn test_keys() -> TestKeys {
        let mut rng = rand::thread_rng();
        let ed = ed25519_dalek::SigningKey::generate(&mut rng);
        let rsa_private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let ed_pem = ed
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let rsa_pem = rsa_private
            .to_public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        TestKeys {
            keys: GhlKeys::from_pem(&ed_pem, &rsa_pem).unwrap(),
            ed,
            rsa: rsa::pkcs1v15::SigningKey::new(rsa_private),
        }
    }

    fn ed_sig(k: &TestKeys, body: &[u8]) -> String {
        STANDARD.encode(k.ed.sign(body).to_bytes())
    }

    fn rsa_sig(k: &TestKeys, body: &[u8]) -> String {
        STANDARD.encode(k.rsa.sign(body).to_vec())
    }

    #[test]
    fn signatures_verify_and_reject() {
        let k = test_keys();
        let body = br#"{"type":"ContactCreate","id":"c1"}"#;
        let tampered = br#"{"type":"ContactCreate","id":"c2"}"#;
        let other = test_keys();

        assert_eq!(
            k.keys.verify(Some(&ed_sig(&k, body)), None, body),
            Ok(Some(Scheme::Ed25519))
        );
        assert_eq!(
            k.keys.verify(Some(&ed_sig(&k, body)), None, tampered),
            Err(SignatureError::BadEd25519)
        );
        assert_eq!(
            k.keys.verify(Some(&ed_sig(&other, body)), None, body),
            Err(SignatureError::BadEd25519)
        );
        assert_eq!(
            k.keys.verify(Some("not base64!"), None, body),
            Err(SignatureError::BadEd25519)
        );

        assert_eq!(
            k.keys.verify(None, Some(&rsa_sig(&k, body)), body),
            Ok(Some(Scheme::Rsa))
        );
        assert_eq!(
            k.keys.verify(None, Some(&rsa_sig(&k, body)), tampered),
            Err(SignatureError::BadRsa)
        );
        assert_eq!(
            k.keys.verify(None, Some(&rsa_sig(&other, body)), body),
            Err(SignatureError::BadRsa)
        );
        assert_eq!(
            k.keys.verify(Some("N/A"), Some(&rsa_sig(&k, body)), body),
            Ok(Some(Scheme::Rsa))
        );

        // A wrong Ed25519 signature is final even when a valid RSA one is present.
        assert_eq!(
            k.keys
                .verify(Some(&ed_sig(&other, body)), Some(&rsa_sig(&k, body)), body),
            Err(SignatureError::BadEd25519)
        );
        assert_eq!(k.keys.verify(None, None, body), Ok(None));
        assert_eq!(k.keys.verify(Some(""), Some("N/A"), body), Ok(None));
    }

    #[test]
    fn published_keys_parse_and_escaped_pem_is_accepted() {
        let _ = GhlKeys::published();
        assert!(GhlKeys::from_pem(
            &PUBLISHED_ED25519_PEM.replace('\n', "\\n"),
            PUBLISHED_RSA_PEM
        )
        .is_ok());
        assert!(GhlKeys::from_pem("garbage", PUBLISHED_RSA_PEM).is_err());
    }
}
