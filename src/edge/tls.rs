//! HTTPS for clients: `--tls-listen ADDR` with one or more `--tls-cert CERT.pem:KEY.pem`.
//!
//! TLS is terminated with rustls. Each connection gets the certificate for the name the
//! client asks for (SNI), the way nginx picks a server block's: the first `--tls-cert` whose
//! certificate is valid for that name (exact or wildcard subjectAltName), else the first
//! one (a client without SNI, or a name no certificate covers, sees that one and its
//! browser warns, as with nginx's default server). ALPN offers h2 and http/1.1.
//!
//! Certificates and keys are read once at start; a file that does not parse, or a key that
//! does not belong to its certificate, stops the start with the file's path. TLS
//! connections never get zero-copy sends: their bytes are encrypted in user space.

use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::verify_server_name;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// One `--tls-cert CERT.pem:KEY.pem` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl FromStr for CertFiles {
    type Err = String;

    fn from_str(text: &str) -> Result<CertFiles, String> {
        match text.split_once(':') {
            Some((cert, key)) if !cert.is_empty() && !key.is_empty() => Ok(CertFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            _ => Err(format!(
                "{text:?}: give the certificate chain and its key as CERT.pem:KEY.pem"
            )),
        }
    }
}

/// Why the certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate {}: {why}", path.display())]
pub struct TlsError {
    path: PathBuf,
    why: String,
}

fn tls_error(path: &Path, why: impl fmt::Display) -> TlsError {
    TlsError {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// A TLS acceptor serving `files` (at least one), chosen by SNI.
pub fn acceptor(files: &[CertFiles]) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut keys = Vec::with_capacity(files.len());
    for pair in files {
        keys.push(Arc::new(load(pair, &provider)?));
    }
    if keys.is_empty() {
        return Err(tls_error(Path::new("--tls-cert"), "none given"));
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&files[0].cert, e))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { keys }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load(pair: &CertFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::File::open(path)
            .map(BufReader::new)
            .map_err(|e| tls_error(path, e))
    };
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut read(&pair.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&pair.cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(&pair.cert, "holds no PEM CERTIFICATE block"));
    }
    ParsedCertificate::try_from(&chain[0])
        .map_err(|e| tls_error(&pair.cert, format!("the first certificate is invalid: {e}")))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(&pair.key)?)
        .map_err(|e| tls_error(&pair.key, format!("not a PEM private key: {e}")))?
        .ok_or_else(|| tls_error(&pair.key, "holds no PEM private key"))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        tls_error(
            &pair.key,
            format!("does not fit {}: {e}", pair.cert.display()),
        )
    })
}

/// Picks the first certificate valid for the client's SNI name, else the first one.
#[derive(Debug)]
struct BySni {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name).ok())
            .and_then(|name| {
                self.keys.iter().find(|key| {
                    key.end_entity_cert()
                        .ok()
                        .and_then(|leaf| ParsedCertificate::try_from(leaf).ok())
                        .is_some_and(|leaf| verify_server_name(&leaf, &name).is_ok())
                })
            });
        chosen.or_else(|| self.keys.first()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_arguments_are_cert_then_key() {
        assert_eq!(
            "a.pem:b.key".parse::<CertFiles>(),
            Ok(CertFiles {
                cert: "a.pem".into(),
                key: "b.key".into()
            })
        );
        assert!("a.pem".parse::<CertFiles>().is_err());
        assert!(":b.key".parse::<CertFiles>().is_err());
    }
}
