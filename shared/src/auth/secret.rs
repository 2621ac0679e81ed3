//! Shared-secret checks, all constant-time.
use base64::{engine::general_purpose::STANDARD, Engine};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Constant-time equality. Comparing SHA-256 digests keeps the time independent of
/// both the content and the length of the secret.
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    Sha256::digest(given)
        .ct_eq(&Sha256::digest(expected))
        .into()
}

/// `Authorization: Basic base64(user:pass)` against the configured pair.
pub fn basic_auth_matches(header: Option<&str>, user: &str, pass: &str) -> bool {
    let Some(encoded) = header.and_then(|h| strip_scheme(h, "basic")) else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let (given_user, given_pass) = match decoded.iter().position(|b| *b == b':') {
        Some(i) => (&decoded[..i], &decoded[i + 1..]),
        None => (&decoded[..], &[][..]),
    };
    // Both halves are always compared: no early exit on a wrong user name.
    secret_eq(given_user, user.as_bytes()) & secret_eq(given_pass, pass.as_bytes())
}

/// `Authorization: Bearer <token>` against a configured token.
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    header
        .and_then(|h| strip_scheme(h, "bearer"))
        .is_some_and(|given| secret_eq(given.trim().as_bytes(), token.as_bytes()))
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let header = format!("Basic {}", STANDARD.encode("aloware:s3cret"));
        assert!(basic_auth_matches(Some(&header), "aloware", "s3cret"));
        assert!(basic_auth_matches(
            Some(&header.replace("Basic", "basic")),
            "aloware",
            "s3cret"
        ));
        assert!(!basic_auth_matches(Some(&header), "aloware", "s3cret!"));
        assert!(!basic_auth_matches(Some(&header), "other", "s3cret"));
        assert!(!basic_auth_matches(Some("Basic !!!"), "aloware", "s3cret"));
        assert!(!basic_auth_matches(Some("Bearer x"), "aloware", "s3cret"));
        assert!(!basic_auth_matches(None, "aloware", "s3cret"));
    }

    #[test]
    fn secrets_and_bearer() {
        assert!(secret_eq(b"abc", b"abc"));
        assert!(!secret_eq(b"abc", b"abcd"));
        assert!(bearer_matches(Some("Bearer tok"), "tok"));
        assert!(!bearer_matches(Some("Bearer tok2"), "tok"));
    }
}
