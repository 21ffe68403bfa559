//! TLS for STARTTLS: the configured certificate, or a self-signed one generated into the data
//! directory on first start (so STARTTLS works out of the box; peers doing opportunistic TLS
//! accept it, as they do for most MX hosts).

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The acceptor for `cert`/`key`, or for a self-signed certificate for `hostname` kept in
/// `data_dir/tls/` when both paths are empty.
pub fn acceptor(
    cert: &Path,
    key: &Path,
    data_dir: &Path,
    hostname: &str,
) -> Result<TlsAcceptor, TlsError> {
    let (cert, key) = if cert.as_os_str().is_empty() {
        self_signed(data_dir, hostname)?
    } else {
        (cert.to_owned(), key.to_owned())
    };
    let certs = CertificateDer::pem_file_iter(&cert)
        .map_err(|_| TlsError::Pem {
            path: cert.clone(),
            what: "certificate",
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem {
            path: cert.clone(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert,
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|_| TlsError::Pem {
        path: key.clone(),
        what: "private key",
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn self_signed(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Read { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let generated = rcgen::generate_simple_self_signed(vec![hostname.to_owned()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes()).map_err(io(&key))?;
    std::fs::write(&cert, generated.cert.pem()).map_err(io(&cert))?;
    tracing::info!(path = %cert.display(), "tls: generated a self-signed certificate");
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        acceptor(Path::new(""), Path::new(""), dir.path(), "mx.test").unwrap();
        let first = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
        acceptor(Path::new(""), Path::new(""), dir.path(), "mx.test").unwrap();
        let second = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_missing_configured_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = acceptor(
            &dir.path().join("nope.pem"),
            &dir.path().join("nope.key"),
            dir.path(),
            "mx.test",
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }
}
