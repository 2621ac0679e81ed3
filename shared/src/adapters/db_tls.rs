//! TLS to Postgres, with libpq's `sslmode` names: `disable`, `prefer` (libpq's default:
//! TLS when the server offers it, unverified), `require` (TLS, unverified) and
//! `verify-full` (TLS, certificate chain and host name verified). `verify-full` trusts
//! the CA bundle from configuration (`DATABASE_CA_CERT` PEM text, or the file named by
//! `DATABASE_CA_FILE`) — RDS's CA is not in public root stores — else the system roots.
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disable" => Ok(SslMode::Disable),
            "prefer" | "allow" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            "verify-ca" => Err("sslmode verify-ca is not supported: use verify-full".into()),
            other => Err(format!(
                "sslmode must be disable, prefer, require or verify-full, not {other:?}"
            )),
        }
    }
}

/// How to reach Postgres: the mode, and the CA bundle `verify-full` trusts.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `None`: the URL's `sslmode`, else `prefer`.
    pub mode: Option<SslMode>,
    /// PEM certificates; empty: the system's roots.
    pub ca_pem: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid sslmode: {0}")]
    Mode(String),
    #[error("the CA bundle holds no usable certificate: {0}")]
    Ca(String),
}

/// `sslmode` taken out of a URL's query (tokio-postgres knows only disable / prefer /
/// require), and the URL without it.
pub fn split_sslmode(url: &str) -> Result<(String, Option<SslMode>), TlsError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut mode = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(value.parse().map_err(TlsError::Mode)?),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, mode))
}

/// The wire mode for tokio-postgres and the connector for `mode`.
pub fn connector(
    mode: SslMode,
    ca_pem: Option<&str>,
) -> Result<(WireMode, MakeRustlsConnect), TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the provider supports TLS 1.2 and 1.3");
    let config = match mode {
        SslMode::VerifyFull => builder
            .with_root_certificates(roots(ca_pem)?)
            .with_no_client_auth(),
        // libpq's require / prefer encrypt without verifying the server.
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    };
    let wire = match mode {
        SslMode::Disable => WireMode::Disable,
        SslMode::Prefer => WireMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => WireMode::Require,
    };
    Ok((wire, MakeRustlsConnect::new(config)))
}

fn roots(ca_pem: Option<&str>) -> Result<RootCertStore, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let mut store = RootCertStore::empty();
    match ca_pem.map(str::trim).filter(|p| !p.is_empty()) {
        Some(pem) => {
            let pem = pem.replace("\\n", "\n");
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| TlsError::Ca(e.to_string()))?;
                store.add(cert).map_err(|e| TlsError::Ca(e.to_string()))?;
            }
            if store.is_empty() {
                return Err(TlsError::Ca("no PEM certificate found".into()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    Ok(store)
}

/// Encryption without authentication (libpq's `require`): the handshake's signatures
/// are still checked, the certificate is not.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_the_url() {
        let (url, mode) =
            split_sslmode("postgres://u@h:5432/db?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(url, "postgres://u@h:5432/db?application_name=x");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        let (url, mode) = split_sslmode("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(
            (url.as_str(), mode),
            ("postgres://u@h/db", Some(SslMode::Disable))
        );
        assert_eq!(split_sslmode("postgres://u@h/db").unwrap().1, None);
        assert!(split_sslmode("postgres://u@h/db?sslmode=verify-ca").is_err());
        assert!(split_sslmode("postgres://u@h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn a_ca_bundle_must_hold_a_certificate() {
        assert!(matches!(roots(Some("not a pem")), Err(TlsError::Ca(_))));
        assert!(connector(SslMode::Require, None).is_ok());
    }
}
