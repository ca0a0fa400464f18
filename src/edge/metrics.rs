//! The edge's counters and their Prometheus names, in one place.
//!
//! In: increments from the proxy, the cache and the origin client. Out: the text exposition
//! served at `GET /metrics`. Lock-free (atomics); no I/O.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// Counts of one accelerated domain ("*" is the `--origin` catch-all).
#[derive(Debug, Default)]
pub struct DomainCounters {
    pub requests: AtomicU64,
    pub hits: AtomicU64,
}

/// Every edge counter. Names are the Prometheus names without the `meridian_edge_` prefix.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub passes: AtomicU64,
    pub revalidations: AtomicU64,
    pub stale_served: AtomicU64,
    pub coalesced: AtomicU64,
    pub bytes_from_cache: AtomicU64,
    pub bytes_from_origin: AtomicU64,
    /// Shared with every client connection, which counts what `sendfile` sent.
    pub sendfile_bytes: Arc<AtomicU64>,
    /// Shared with the access log, which counts the lines it had to drop.
    pub access_log_dropped: Arc<AtomicU64>,
    pub origin_errors: AtomicU64,
    pub origin_requests: AtomicU64,
    pub purged: AtomicU64,
    pub loops_refused: AtomicU64,
    pub unknown_host: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub tls_reloads_ok: AtomicU64,
    pub tls_reloads_failed: AtomicU64,
    /// Read on every request without a lock; copied and swapped when a domain is new.
    per_domain: ArcSwap<HashMap<String, Arc<DomainCounters>>>,
    /// Serialises the rare additions to `per_domain`.
    adding_domain: Mutex<()>,
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// The counters of one domain (created on first use).
    pub fn domain(&self, name: &str) -> Arc<DomainCounters> {
        if let Some(counters) = self.per_domain.load().get(name) {
            return counters.clone();
        }
        let _adding = self.adding_domain.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = HashMap::clone(&self.per_domain.load());
        let counters = map.entry(name.to_string()).or_default().clone();
        self.per_domain.store(Arc::new(map));
        counters
    }

    /// `(domain, requests, hits)`, sorted by domain.
    pub fn per_domain(&self) -> Vec<(String, u64, u64)> {
        let map = self.per_domain.load();
        let mut out: Vec<_> = map
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    c.requests.load(Ordering::Relaxed),
                    c.hits.load(Ordering::Relaxed),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Prometheus text exposition; `gauges` are extra (name, help, value) lines.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let counters: [(&str, &str, &AtomicU64); 20] = [
            (
                "requests_total",
                "Client requests received.",
                &self.requests,
            ),
            (
                "cache_hits_total",
                "Requests answered from cache without contacting the origin.",
                &self.hits,
            ),
            (
                "cache_misses_total",
                "Cacheable requests forwarded to the origin.",
                &self.misses,
            ),
            (
                "cache_passes_total",
                "Requests forwarded uncached (dynamic, unsafe method, not storable).",
                &self.passes,
            ),
            (
                "cache_revalidations_total",
                "Conditional requests sent to revalidate stored responses.",
                &self.revalidations,
            ),
            (
                "cache_stale_served_total",
                "Stale responses served (stale-while-revalidate, stale-if-error).",
                &self.stale_served,
            ),
            (
                "cache_coalesced_total",
                "Misses that waited for another request's origin fetch.",
                &self.coalesced,
            ),
            (
                "bytes_from_cache_total",
                "Body bytes served from cache.",
                &self.bytes_from_cache,
            ),
            (
                "bytes_from_origin_total",
                "Body bytes received from origins.",
                &self.bytes_from_origin,
            ),
            (
                "sendfile_bytes_total",
                "Body bytes served from cache with sendfile (zero-copy, HTTP/1.x).",
                &self.sendfile_bytes,
            ),
            (
                "access_log_dropped_total",
                "Access log lines dropped because the writer fell behind.",
                &self.access_log_dropped,
            ),
            (
                "origin_errors_total",
                "Origin fetches that failed (connect, timeout, TLS, 5xx on revalidation).",
                &self.origin_errors,
            ),
            (
                "origin_requests_total",
                "Requests sent to origins.",
                &self.origin_requests,
            ),
            (
                "purged_entries_total",
                "Cache entries removed by purge.",
                &self.purged,
            ),
            (
                "loops_refused_total",
                "Requests refused because CDN-Loop already named this edge.",
                &self.loops_refused,
            ),
            (
                "unknown_host_total",
                "Requests for a Host that is not an accelerated domain.",
                &self.unknown_host,
            ),
            (
                "config_reloads_total",
                "Successful cdn.toml reloads.",
                &self.reloads_ok,
            ),
            (
                "config_reload_failures_total",
                "Rejected cdn.toml edits (old config kept).",
                &self.reloads_failed,
            ),
            (
                "tls_reloads_total",
                "TLS certificate reloads (SIGHUP) that took effect.",
                &self.tls_reloads_ok,
            ),
            (
                "tls_reload_failures_total",
                "TLS certificate reloads refused (old certificates kept).",
                &self.tls_reloads_failed,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP meridian_edge_{name} {help}");
            let _ = writeln!(out, "# TYPE meridian_edge_{name} counter");
            let _ = writeln!(
                out,
                "meridian_edge_{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let domains = self.per_domain();
        for (metric, help, pick) in [
            (
                "domain_requests_total",
                "Client requests per accelerated domain.",
                0,
            ),
            ("domain_hits_total", "Cache hits per accelerated domain.", 1),
        ] {
            let _ = writeln!(out, "# HELP meridian_edge_{metric} {help}");
            let _ = writeln!(out, "# TYPE meridian_edge_{metric} counter");
            for (domain, requests, hits) in &domains {
                let value = if pick == 0 { requests } else { hits };
                let domain = domain.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "meridian_edge_{metric}{{domain=\"{domain}\"}} {value}");
            }
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP meridian_edge_{name} {help}");
            let _ = writeln!(out, "# TYPE meridian_edge_{name} gauge");
            let _ = writeln!(out, "meridian_edge_{name} {value}");
        }
        out
    }
}
