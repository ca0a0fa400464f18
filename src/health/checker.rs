//! One task per edge with a health URL: GET it every interval, feed the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::table::{EdgeHealth, HealthTable};
use crate::cdn::{CdnConfig, HealthSettings};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What a running checker checks; a change restarts it (its state is kept in the table).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CheckSpec {
    uri: http::Uri,
    settings: HealthSettings,
}

struct Running {
    spec: CheckSpec,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Tasks {
    set: JoinSet<()>,
    running: HashMap<String, Running>,
}

/// Owns the health-check tasks. Call [`HealthChecker::reconcile`] with every configuration
/// that goes live (start and each reload), and [`HealthChecker::shutdown`] at the end.
pub struct HealthChecker {
    table: Arc<HealthTable>,
    client: HttpClient,
    root: CancellationToken,
    tasks: Mutex<Tasks>,
}

impl HealthChecker {
    /// A checker feeding `table`. Starts nothing until `reconcile`.
    pub fn new(table: Arc<HealthTable>) -> HealthChecker {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // Every check opens a fresh connection: a kept-alive one would hide a listener
        // that no longer accepts.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        HealthChecker {
            table,
            client,
            root: CancellationToken::new(),
            tasks: Mutex::new(Tasks::default()),
        }
    }

    /// The table this checker writes.
    pub fn table(&self) -> &Arc<HealthTable> {
        &self.table
    }

    /// Aligns tasks and table with `cfg`: edges added get a checker (and start unknown),
    /// removed edges lose theirs, kept edges keep their state; a kept edge whose URL or
    /// `[health]` settings changed gets a new checker that continues from its state.
    /// Starts tasks only inside a Tokio runtime (outside one it only updates the table).
    /// Does nothing after `shutdown`.
    pub fn reconcile(&self, cfg: &CdnConfig) {
        if self.root.is_cancelled() {
            return;
        }
        let entries = self.table.sync(cfg, SystemTime::now());
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!(
                "health checks not started: reconcile was called outside a Tokio runtime"
            );
            return;
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.set.try_join_next().is_some() {}

        let mut wanted: HashMap<&str, (CheckSpec, Arc<EdgeHealth>)> = HashMap::new();
        for (edge, entry) in cfg.edges.iter().zip(entries) {
            if let Some(uri) = &edge.health {
                let spec = CheckSpec {
                    uri: uri.clone(),
                    settings: cfg.health,
                };
                wanted.insert(edge.name.as_str(), (spec, entry));
            }
        }
        tasks.running.retain(|name, running| {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|(spec, _)| *spec == running.spec);
            if !keep {
                running.cancel.cancel();
            }
            keep
        });
        for (name, (spec, entry)) in wanted {
            if tasks.running.contains_key(name) {
                continue;
            }
            let cancel = self.root.child_token();
            tasks.set.spawn(check_loop(
                Arc::clone(&self.table),
                entry,
                name.to_owned(),
                spec.clone(),
                self.client.clone(),
                cancel.clone(),
            ));
            tasks
                .running
                .insert(name.to_owned(), Running { spec, cancel });
        }
    }

    /// Stops every checker and forgets every edge: the live snapshot has no `cdn.toml` any
    /// more (it was removed), so no edge is scheduled and none should be probed.
    pub fn reconcile_without_cdn(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for running in tasks.running.values() {
            running.cancel.cancel();
        }
        tasks.running.clear();
        while tasks.set.try_join_next().is_some() {}
        drop(tasks);
        self.table.clear();
    }

    /// Names of the edges being checked now, sorted.
    pub fn checked_edges(&self) -> Vec<String> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = tasks.running.keys().cloned().collect();
        names.sort();
        names
    }

    /// Stops every checker and waits for them to finish.
    pub async fn shutdown(&self) {
        self.root.cancel();
        let mut set = {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.running.clear();
            std::mem::take(&mut tasks.set)
        };
        while set.join_next().await.is_some() {}
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

async fn check_loop(
    table: Arc<HealthTable>,
    entry: Arc<EdgeHealth>,
    name: String,
    spec: CheckSpec,
    client: HttpClient,
    cancel: CancellationToken,
) {
    let settings = spec.settings;
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `biased`: a cancelled checker never starts another check.
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            outcome = probe(&client, &spec.uri, settings.timeout) => outcome,
        };
        let ok = outcome.is_ok();
        let transition = table.record(
            &entry,
            ok,
            settings.rise,
            settings.fall,
            SystemTime::now(),
            outcome.err(),
        );
        if let Some(t) = transition {
            tracing::info!(edge = %name, from = %t.from, to = %t.to, url = %spec.uri, "edge health changed");
        }
    }
}

/// One GET: `Ok` for any 2xx within `timeout`, else why not.
async fn probe(client: &HttpClient, uri: &http::Uri, timeout: Duration) -> Result<(), String> {
    let request = http::Request::get(uri.clone())
        .header(http::header::USER_AGENT, "meridian-health")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err(format!("no response within {timeout:?}")),
        Ok(Err(e)) => Err(format!("request failed: {e}")),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("status {}", response.status())),
    }
}
