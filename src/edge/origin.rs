//! The origin client: sends a request to a domain's origins, in order, with failover.
//!
//! In: an [`OriginSpec`], the request's Host, method, target, prepared headers and body.
//! Out: the first origin response, or an [`OriginError`] saying which side failed and how
//! (mapped to 502/504 by [`OriginError::status`]). Connections are pooled (hyper-util's
//! client); HTTPS uses rustls trusting the system's CAs and `--origin-ca`.
//! The next origin is tried on a connect error, a TLS failure or a response-header timeout;
//! never after a response has started. Does no caching.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::cdn::{self, Origin, Scheme};
use crate::edge::route::OriginSpec;

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How an origin fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginErrorKind {
    /// No origin accepted a connection (refused, unreachable, DNS, TLS handshake).
    Connect,
    /// The origin did not answer within the response timeout.
    Timeout,
    /// The connection broke or the response was not HTTP.
    Protocol,
}

/// Every origin failed; the last failure is reported.
#[derive(Debug, Clone, thiserror::Error)]
#[error("origin {target}: {message}")]
pub struct OriginError {
    pub kind: OriginErrorKind,
    /// The last origin tried (`scheme://addr:port`).
    pub target: String,
    pub message: String,
}

impl OriginError {
    /// The status the client gets when nothing stale may be served instead.
    pub fn status(&self) -> http::StatusCode {
        match self.kind {
            OriginErrorKind::Timeout => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// Why the origin TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OriginTlsError {
    #[error("--origin-ca {path}: {message} (give a PEM file with one or more CERTIFICATE blocks)")]
    Ca { path: String, message: String },
}

/// One request to send to an origin.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    pub method: Method,
    /// Origin-form target: path and query.
    pub target: String,
    /// Already prepared (hop-by-hop removed, forwarding fields added); Host is set here.
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct OriginClient {
    http: HttpClient,
    tls: rustls::ClientConfig,
    /// One HTTPS client per TLS server name (SNI), each with its own pool.
    https: Mutex<HashMap<String, HttpsClient>>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    http
}

/// The system's trusted CAs (the platform store, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when
/// set, as OpenSSL reads them), so that origins with public certificates work without
/// `--origin-ca`. Unreadable certificates are logged and skipped.
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!("system CA certificates: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates loaded");
    roots
}

impl OriginClient {
    pub fn new(
        origin_ca: Option<&Path>,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<OriginClient, OriginTlsError> {
        let mut roots = system_roots();
        if let Some(path) = origin_ca {
            let ca_err = |message: String| OriginTlsError::Ca {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificate found".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OriginTlsError::Ca {
                path: String::new(),
                message: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector(connect_timeout));
        Ok(OriginClient {
            http,
            tls,
            https: Mutex::new(HashMap::new()),
            connect_timeout,
            response_timeout,
        })
    }

    fn https_client(&self, server_name: &str) -> HttpsClient {
        let mut clients = self.https.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(server_name.to_string())
            .or_insert_with(|| {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(self.tls.clone())
                    .https_only()
                    .with_server_name_resolver({
                        let name = server_name
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_string();
                        move |_: &http::Uri| rustls::pki_types::ServerName::try_from(name.clone())
                    })
                    .enable_http1()
                    .wrap_connector(connector(self.connect_timeout));
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build(connector)
            })
            .clone()
    }

    /// Sends `req` to the spec's origins in order until one answers.
    pub async fn send(
        &self,
        spec: &OriginSpec,
        request_host: &str,
        req: &OriginRequest,
    ) -> Result<Response<Incoming>, OriginError> {
        let host_header = spec.host_header.as_deref().unwrap_or(request_host);
        let mut last = OriginError {
            kind: OriginErrorKind::Connect,
            target: String::new(),
            message: "no origin configured".into(),
        };
        for origin in &spec.origins {
            let authority = format!("{}:{}", origin.authority_host(), spec.port);
            let target = format!("{}://{}", spec.scheme.as_str(), authority);
            let uri = format!("{target}{}", req.target);
            let mut request = match Request::builder()
                .method(req.method.clone())
                .uri(&uri)
                .body(Full::new(req.body.clone()))
            {
                Ok(request) => request,
                Err(e) => {
                    last = OriginError {
                        kind: OriginErrorKind::Protocol,
                        target,
                        message: format!("cannot build request {uri:?}: {e}"),
                    };
                    break;
                }
            };
            *request.headers_mut() = req.headers.clone();
            if let Ok(value) = HeaderValue::from_str(host_header) {
                request.headers_mut().insert(header::HOST, value);
            }
            let sent = match spec.scheme {
                Scheme::Http => {
                    tokio::time::timeout(self.response_timeout, self.http.request(request)).await
                }
                Scheme::Https => {
                    let name = match (&spec.host_header, origin) {
                        (Some(name), _) => name.clone(),
                        (None, Origin::Host(name)) => name.clone(),
                        (None, Origin::Ip(_)) => cdn::normalize_host(request_host),
                    };
                    let client = self.https_client(&name);
                    tokio::time::timeout(self.response_timeout, client.request(request)).await
                }
            };
            match sent {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error)) => {
                    let kind = if error.is_connect() {
                        OriginErrorKind::Connect
                    } else {
                        OriginErrorKind::Protocol
                    };
                    let mut message = error.to_string();
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        message = format!("{message}: {cause}");
                        source = cause.source();
                    }
                    tracing::warn!(origin = %target, domain = %spec.domain, %message, "origin request failed");
                    last = OriginError {
                        kind,
                        target,
                        message,
                    };
                    if kind != OriginErrorKind::Connect {
                        break;
                    }
                }
                Err(_) => {
                    tracing::warn!(origin = %target, domain = %spec.domain, "origin timed out");
                    last = OriginError {
                        kind: OriginErrorKind::Timeout,
                        target,
                        message: format!("no response within {:?}", self.response_timeout),
                    };
                }
            }
        }
        Err(last)
    }
}
