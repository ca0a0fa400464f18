//! HTTPS for clients: `--tls-listen ADDR` with one or more `--tls-cert CERT.pem:KEY.pem`.
//!
//! TLS is terminated with rustls. Each connection gets the certificate for the name the
//! client asks for (SNI), the way nginx picks a server block's: the first `--tls-cert` whose
//! certificate is valid for that name (exact or wildcard subjectAltName), else the first
//! one (a client without SNI, or a name no certificate covers, sees that one and its
//! browser warns, as with nginx's default server). ALPN offers h2 and http/1.1.
//!
//! Certificates and keys are read at start, and again on `SIGHUP` (renewed certificates
//! without a restart; connections already open keep theirs). At start, a file that does
//! not parse, or a key that does not belong to its certificate, stops the start with the
//! file's path; on a reload it is logged and every old certificate stays in use: a bad
//! edit never replaces good ones. TLS connections never get zero-copy sends: their bytes
//! are encrypted in user space.

use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
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

/// The certificates in use, reloadable from their files.
#[derive(Debug)]
pub struct Certificates {
    files: Vec<CertFiles>,
    provider: Arc<CryptoProvider>,
    keys: ArcSwap<Vec<Arc<CertifiedKey>>>,
}

impl Certificates {
    /// Reads every pair of `files` (at least one).
    pub fn load(files: &[CertFiles]) -> Result<Certificates, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let keys = load_all(files, &provider)?;
        Ok(Certificates {
            files: files.to_vec(),
            provider,
            keys: ArcSwap::from_pointee(keys),
        })
    }

    /// Reads the files again and uses them for new connections; on any error, keeps every
    /// certificate in use and says which file is wrong.
    pub fn reload(&self) -> Result<(), TlsError> {
        let keys = load_all(&self.files, &self.provider)?;
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// A TLS acceptor serving these certificates, chosen by SNI.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&self.files[0].cert, e))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(BySni {
                certificates: self.clone(),
            }));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn load_all(
    files: &[CertFiles],
    provider: &CryptoProvider,
) -> Result<Vec<Arc<CertifiedKey>>, TlsError> {
    if files.is_empty() {
        return Err(tls_error(Path::new("--tls-cert"), "none given"));
    }
    files
        .iter()
        .map(|pair| load(pair, provider).map(Arc::new))
        .collect()
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
    certificates: Arc<Certificates>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let keys = self.certificates.keys.load();
        let chosen = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name).ok())
            .and_then(|name| {
                keys.iter().find(|key| {
                    key.end_entity_cert()
                        .ok()
                        .and_then(|leaf| ParsedCertificate::try_from(leaf).ok())
                        .is_some_and(|leaf| verify_server_name(&leaf, &name).is_ok())
                })
            });
        chosen.or_else(|| keys.first()).cloned()
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
