//! The TLS client side of outbound delivery: one configuration that checks nothing (encryption
//! for opportunistic STARTTLS) and one that verifies against the system's roots and any CA the
//! operator names (MTA-STS, a smart host, TLS required).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// The two TLS configurations outbound mail uses.
#[derive(Clone)]
pub struct Connectors {
    /// Checks nothing: for encryption without authentication (opportunistic, required).
    pub any_certificate: TlsConnector,
    /// Checks the certificate against the system's roots (and any configured extra ones).
    pub verified: TlsConnector,
}

/// Builds the two connectors; `extra_roots` (PEM) are trusted besides the system's roots.
pub fn connectors(extra_roots: &Path) -> Result<Connectors, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let any = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
        .with_no_client_auth();
    let verified = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier(extra_roots, provider)?))
        .with_no_client_auth();
    Ok(Connectors {
        any_certificate: TlsConnector::from(Arc::new(any)),
        verified: TlsConnector::from(Arc::new(verified)),
    })
}

/// The system's roots plus the operator's extra ones (PEM; none when the path is empty).
fn verifier(
    extra_roots: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls_platform_verifier::Verifier, String> {
    let extra: Vec<CertificateDer<'static>> = if extra_roots.as_os_str().is_empty() {
        Vec::new()
    } else {
        CertificateDer::pem_file_iter(extra_roots)
            .map_err(|e| format!("{}: {e}", extra_roots.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", extra_roots.display()))?
    };
    rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        .map_err(|e| e.to_string())
}

/// Accepts any certificate but still checks the handshake's signatures: encryption without
/// authentication, for opportunistic STARTTLS.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);
impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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
