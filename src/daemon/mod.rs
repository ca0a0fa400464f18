//! Starting and stopping the whole DNS server: load the first snapshot, bind the sockets,
//! then run the query path, the reload watcher (with NOTIFY to secondaries after each
//! reload that changes a zone) and the admin endpoints until shutdown. Once serving, every
//! plain zone is announced to the secondaries with a NOTIFY, as Knot and NSD do on loading.
//!
//! Used by the `meridian` binary and by in-process tests alike: [`start`] returns once
//! every socket is bound (with the real addresses of `:0` listens) and the first snapshot is
//! serving.
//!
//! The folder holds the rest of the DNS server's run-time: [`admin`] (its HTTP endpoints),
//! [`metrics`] (every metric name) and [`reload`] (what triggers a reload and how it is
//! applied).

pub mod admin;
pub mod metrics;
pub mod reload;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dns::server::{Listeners, serve};
use crate::dns::transfer::{self, TransferPolicy};
use crate::health::{HealthChecker, HealthTable};
use crate::snapshot::{LoadError, Shared, Snapshot, Sources};

use self::admin::Admin;
use self::metrics::{Metrics, ScheduledRegistry};
use self::reload::{AfterSwap, BeforeSwap, Reloader};

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Options {
    pub sources: Sources,
    pub listen: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<String>,
    /// UDP worker threads (sockets) per listen address.
    pub udp_workers: usize,
    /// Zone transfers out and NOTIFY targets.
    pub transfer: TransferPolicy,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the zones do not load, nothing to serve:\n{0}")]
    Load(#[from] LoadError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "the admin address {0} is not loopback: give a token with --admin-token or MERIDIAN_ADMIN_TOKEN"
    )]
    AdminTokenRequired(SocketAddr),
}

/// A started server.
pub struct Running {
    pub dns_addrs: Vec<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    pub reloader: Arc<Reloader>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stop accepting, drain in-flight queries, and wait for every task.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Wait until the server stops (after its shutdown token is cancelled).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Load, bind and start serving.
pub async fn start(options: Options) -> Result<Running, StartError> {
    if let Some(addr) = options.admin
        && !admin::is_loopback(&addr)
        && options.admin_token.is_none()
    {
        return Err(StartError::AdminTokenRequired(addr));
    }
    let sources = options.sources.clone();
    let mut snapshot = tokio::task::spawn_blocking(move || Snapshot::load(&sources, 1, None))
        .await
        .map_err(|e| LoadError {
            lines: vec![format!("load task failed: {e}")],
        })??;
    let listeners = Listeners::bind(&options.listen, options.udp_workers).map_err(|source| {
        StartError::Bind {
            addr: options
                .listen
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            source,
        }
    })?;
    let dns_addrs = listeners.local_addrs().to_vec();
    let admin_listener = match options.admin {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: addr.to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());

    let health = Arc::new(HealthTable::new());
    let checker = Arc::new(HealthChecker::new(health.clone()));
    let metrics = Metrics::default();
    let registry = metrics.scheduled.clone();
    attach_health(&checker, &registry, &mut snapshot);
    if snapshot.cdn.is_some() && snapshot.geo.is_none() {
        tracing::warn!(
            "no GeoIP database at {:?}: every client is placed in [cdn].default_country",
            options.sources.geoip
        );
    }
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(snapshot),
        metrics,
        health: health.clone(),
        transfer: options.transfer.clone(),
    });
    let before_swap: BeforeSwap = {
        let checker = checker.clone();
        Box::new(move |snapshot: &mut Snapshot| attach_health(&checker, &registry, snapshot))
    };
    let after_swap: Option<AfterSwap> = (!options.transfer.notify.is_empty()).then(|| {
        let (shared, targets) = (shared.clone(), options.transfer.notify.clone());
        let key = options.transfer.keys.first().cloned();
        Box::new(move |old: &Snapshot, new: &Snapshot| {
            transfer::notify_secondaries(
                &shared,
                &targets,
                key.as_ref(),
                transfer::changed_zones(old, new),
            )
        }) as AfterSwap
    });
    let reloader = Arc::new(Reloader::new(
        shared.clone(),
        options.sources.clone(),
        Some(before_swap),
        after_swap,
    ));
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    {
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = serve(listeners, shared, shutdown).await {
                tracing::error!("DNS service failed: {e}");
            }
        });
    }
    match reloader.watch() {
        Ok(watcher) => {
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                if let Err(e) = watcher.run(shutdown).await {
                    tracing::error!("reload triggers failed, use POST /reload: {e}");
                }
            });
        }
        Err(e) => {
            tracing::error!("cannot watch the zones, reload with SIGHUP or POST /reload: {e}")
        }
    }
    if let Some(listener) = admin_listener {
        let admin = Arc::new(Admin {
            shared: shared.clone(),
            reloader: reloader.clone(),
            token: options.admin_token.clone(),
            extra: Some(Box::new(move || health_status(&health))),
        });
        tasks.spawn(admin::serve(listener, admin, shutdown.clone()));
    }
    {
        let (checker, shutdown) = (checker.clone(), shutdown.clone());
        tasks.spawn(async move {
            shutdown.cancelled().await;
            checker.shutdown().await;
        });
    }
    for addr in &dns_addrs {
        tracing::info!("listening on {addr} (udp, tcp)");
    }
    if let Some(addr) = admin_addr {
        tracing::info!("admin listening on http://{addr}");
    }
    if !options.transfer.notify.is_empty() {
        transfer::notify_secondaries(
            &shared,
            &options.transfer.notify,
            options.transfer.keys.first(),
            transfer::plain_zones(&shared.snapshot.load()),
        );
    }
    Ok(Running {
        dns_addrs,
        admin_addr,
        shared,
        reloader,
        shutdown,
        tasks,
    })
}

/// Give the health checker the snapshot's edges (new edges get checkers, removed edges lose
/// theirs) and attach their health and their scheduled-answer counters to the snapshot,
/// before it goes live.
fn attach_health(checker: &HealthChecker, registry: &ScheduledRegistry, snapshot: &mut Snapshot) {
    match snapshot.cdn.as_deref() {
        Some(cfg) => {
            checker.reconcile(cfg);
            snapshot.health = checker.table().view(cfg);
            snapshot.edge_counters = registry.counters_for(cfg);
        }
        None => checker.reconcile_without_cdn(),
    }
}

/// The health table's part of `/status` and `/metrics`.
fn health_status(table: &HealthTable) -> (serde_json::Value, String) {
    let edges: Vec<_> = table
        .snapshot()
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "state": e.state.as_str(),
                "since": e.since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                "checked": e.checked,
                "consecutive_successes": e.consecutive_successes,
                "consecutive_failures": e.consecutive_failures,
                "last_error": e.last_error,
            })
        })
        .collect();
    let metrics = metrics::render_health(table);
    (
        serde_json::json!({ "edges": edges, "health_generation": table.generation() }),
        metrics,
    )
}
