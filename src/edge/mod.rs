//! `meridian-edge`: the caching HTTP reverse proxy the GSLB answers point to.
//!
//! ```text
//! server (hyper auto: HTTP/1.1 + h2c) -> proxy: Host -> route::Router -> OriginSpec
//!     GET/HEAD: cache::policy decides -> cache (memory | disk | fill in progress)
//!               miss/revalidate -> coalesce -> origin (failover, pooled) -> fill -> client
//!     others  : origin pass-through, then invalidate the URL
//! admin  : /health /status /metrics /purge /prefetch
//! ```
//!
//! - [`route`]: Host -> [`route::OriginSpec`] (`--origin` catch-all, `--zones` domains).
//! - [`zones`]: `cdn.toml` through the shared [`crate::cdn`] module, hot-reloaded.
//! - [`proxy`]: the request path (lookup, coalesced fetches, slices, client responses).
//! - [`cache`]: [`cache::policy`] (pure RFC 9111 decisions), [`cache::memory`],
//!   [`cache::disk`], [`cache::fill`] (streaming writes), [`cache::coalesce`].
//! - [`origin`]: pooled HTTP/HTTPS client with failover; [`range`]: byte ranges (pure).
//! - [`server`]: accept loop and graceful shutdown; [`admin`]: the admin endpoints;
//!   [`metrics`]: every edge counter name.
//! - [`zero_copy`]: `sendfile` of disk-tier bodies on HTTP/1.x connections, under hyper.
//! - [`access_log`]: one line per client request (`--access-log`), reopened on `SIGUSR1`.
//! - [`tls`]: HTTPS for clients (`--tls-listen`, `--tls-cert`), certificates chosen by SNI.
//!
//! The binary parses flags and binds sockets; [`run`] does the rest until the shutdown
//! token is cancelled, then drains connections.

pub mod access_log;
pub mod admin;
pub mod body;
pub mod cache;
pub mod config;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod range;
pub mod route;
pub mod server;
pub mod tls;
pub mod zero_copy;
pub mod zones;

pub use config::{EdgeConfig, parse_size};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use http::header::HeaderName;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::edge::access_log::{AccessLog, AccessLogError};
use crate::edge::admin::AdminAuth;
use crate::edge::cache::{Cache, CacheError};
use crate::edge::origin::{OriginClient, OriginTlsError};
use crate::edge::proxy::Edge;
use crate::edge::route::Router;
use crate::edge::server::{Transport, ZeroCopy};
use crate::edge::tls::TlsError;
use crate::edge::zones::ZonesError;

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    OriginTls(#[from] OriginTlsError),
    #[error(transparent)]
    Zones(#[from] ZonesError),
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("--tls-listen needs at least one --tls-cert CERT.pem:KEY.pem")]
    TlsWithoutCert,
    #[error("a startup task failed: {0}")]
    Task(String),
}

/// Builds the edge's shared state (cache index rebuilt from disk, routes loaded).
pub async fn build(config: &EdgeConfig) -> Result<Arc<Edge>, EdgeError> {
    let (dir, memory, disk) = (
        config.cache_dir.clone(),
        config.memory_cache_bytes,
        config.disk_cache_bytes,
    );
    let cache = tokio::task::spawn_blocking(move || Cache::open(dir.as_deref(), memory, disk))
        .await
        .map_err(|e| EdgeError::Task(e.to_string()))??;
    let origin = OriginClient::new(
        config.origin_ca.as_deref(),
        config.origin_connect_timeout,
        config.origin_response_timeout,
    )?;
    let router = Router::new(config.catch_all.clone());
    if let Some(dir) = &config.zones_dir {
        router.set_domains(zones::load(dir)?);
    }
    Ok(Arc::new(Edge::new(
        config.name.clone(),
        router,
        Arc::new(cache),
        origin,
        config.origin_response_timeout,
        config.slice_bytes,
    )))
}

/// The sockets the edge serves, already bound.
#[derive(Default)]
pub struct Listeners {
    /// Plain HTTP (`--listen`).
    pub http: Vec<TcpListener>,
    /// HTTPS (`--tls-listen`), with the certificates of `EdgeConfig::tls_certs`.
    pub https: Vec<TcpListener>,
    /// The admin endpoints (`--admin`).
    pub admin: Option<TcpListener>,
}

/// Runs the edge on already-bound listeners until `shutdown` is cancelled, then drains.
pub async fn run(
    config: EdgeConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), EdgeError> {
    let edge = build(&config).await?;
    serve_all(edge, &config, listeners, shutdown).await
}

/// Serves a built edge (see [`build`]) on plain HTTP listeners; tests use it to reach the
/// edge's state.
pub async fn serve(
    edge: Arc<Edge>,
    config: &EdgeConfig,
    listeners: Vec<TcpListener>,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), EdgeError> {
    let listeners = Listeners {
        http: listeners,
        https: Vec::new(),
        admin,
    };
    serve_all(edge, config, listeners, shutdown).await
}

/// Serves a built edge on every kind of listener until `shutdown` is cancelled.
pub async fn serve_all(
    edge: Arc<Edge>,
    config: &EdgeConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), EdgeError> {
    let certificates = match (listeners.https.is_empty(), config.tls_certs.is_empty()) {
        (true, _) => None,
        (false, true) => return Err(EdgeError::TlsWithoutCert),
        (false, false) => Some(Arc::new(tls::Certificates::load(&config.tls_certs)?)),
    };
    let tls = certificates.as_ref().map(|c| c.acceptor()).transpose()?;
    reload_on_sighup(certificates, edge.clone(), shutdown.clone());
    let _watcher = match &config.zones_dir {
        Some(dir) => Some(zones::watch_and_reload(dir, edge.clone())?),
        None => None,
    };
    let access_log = match &config.access_log {
        Some(path) => {
            let log = AccessLog::open(path, edge.metrics.access_log_dropped.clone())?;
            reopen_on_sigusr1(log.clone(), shutdown.clone());
            Some(log)
        }
        None => None,
    };
    let mut servers = JoinSet::new();
    let plain = Transport::Plain(ZeroCopy::Enabled(edge.metrics.sendfile_bytes.clone()));
    let mut client_listeners: Vec<(TcpListener, Transport)> = (listeners.http.into_iter())
        .map(|listener| (listener, plain.clone()))
        .collect();
    if let Some(tls) = tls {
        client_listeners.extend(
            (listeners.https.into_iter()).map(|listener| (listener, Transport::Tls(tls.clone()))),
        );
    }
    for (listener, transport) in client_listeners {
        let (edge, access_log) = (edge.clone(), access_log.clone());
        // The scheme the client used, for the origin (and for `Vary: X-Forwarded-Proto`);
        // whatever the client itself sent in this field is replaced.
        let scheme = HeaderValue::from_static(match transport {
            Transport::Plain(_) => "http",
            Transport::Tls(_) => "https",
        });
        servers.spawn(server::serve(
            listener,
            shutdown.clone(),
            transport,
            move |mut req: http::Request<hyper::body::Incoming>, peer: SocketAddr| {
                req.headers_mut()
                    .insert(X_FORWARDED_PROTO.clone(), scheme.clone());
                let edge = edge.clone();
                let logged = access_log.as_ref().map(|log| log.start(&req, peer));
                async move {
                    let response = edge.handle(req, peer).await;
                    match logged {
                        Some(logged) => logged.finish(response),
                        None => response,
                    }
                }
            },
        ));
    }
    if let Some(listener) = listeners.admin {
        let required = listener
            .local_addr()
            .map(|a| !a.ip().is_loopback())
            .unwrap_or(true);
        let auth = Arc::new(AdminAuth {
            required,
            token: config.admin_token.clone(),
        });
        let edge = edge.clone();
        servers.spawn(server::serve(
            listener,
            shutdown.clone(),
            ZeroCopy::Disabled,
            move |req, _| {
                let (edge, auth) = (edge.clone(), auth.clone());
                async move { admin::handle(edge, auth, req).await }
            },
        ));
    }
    while servers.join_next().await.is_some() {}
    edge.tasks.close();
    if tokio::time::timeout(server::GRACE, edge.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("background cache fills still running at exit; they will be discarded");
    }
    if let Some(log) = access_log {
        // Responses still held by hyper are gone with their connections by now.
        let _ = tokio::task::spawn_blocking(move || log.sync()).await;
    }
    Ok(())
}

/// Reloads the TLS certificates on each `SIGHUP` (renewed certificates, as `nginx -s
/// reload`); a bad file keeps the old ones. Without HTTPS there is nothing to reload
/// (`cdn.toml` is reloaded when it changes), but `SIGHUP` still does not stop the edge.
fn reload_on_sighup(
    certificates: Option<Arc<tls::Certificates>>,
    edge: Arc<Edge>,
    shutdown: CancellationToken,
) {
    let unwatched = "SIGHUP: TLS certificates will not be reloaded";
    on_signal(SignalKind::hangup(), unwatched, shutdown, move || {
        let (certificates, edge) = (certificates.clone(), edge.clone());
        async move {
            let Some(reloading) = certificates else {
                tracing::info!(
                    "SIGHUP: no TLS certificates to reload (cdn.toml reloads on change)"
                );
                return;
            };
            match tokio::task::spawn_blocking(move || reloading.reload()).await {
                Ok(Ok(())) => {
                    metrics::inc(&edge.metrics.tls_reloads_ok);
                    tracing::info!("TLS certificates reloaded");
                }
                Ok(Err(error)) => {
                    metrics::inc(&edge.metrics.tls_reloads_failed);
                    tracing::error!(%error, "TLS certificates not reloaded; the old ones stay in use");
                }
                Err(error) => tracing::error!(%error, "TLS certificate reload failed"),
            }
        }
    });
}

/// Reopens the access log on each `SIGUSR1` (after logrotate renamed it), as nginx does.
fn reopen_on_sigusr1(log: AccessLog, shutdown: CancellationToken) {
    let unwatched = "SIGUSR1: the access log will not be reopened";
    on_signal(
        SignalKind::user_defined1(),
        unwatched,
        shutdown,
        move || {
            log.reopen();
            std::future::ready(())
        },
    );
}

/// Runs `action` on each signal of `kind` until `shutdown`. The handler is registered
/// before this returns, so before any listener is served: a signal that early cannot end
/// the process. `unwatched` names the signal and what is lost if it cannot be watched.
fn on_signal<A, F>(kind: SignalKind, unwatched: &str, shutdown: CancellationToken, mut action: A)
where
    A: FnMut() -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let mut signals = match signal(kind) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot watch {unwatched}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                received = signals.recv() => if received.is_none() { return },
                () = shutdown.cancelled() => return,
            }
            action().await;
        }
    });
}
