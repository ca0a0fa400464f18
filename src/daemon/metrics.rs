//! Every metric of the DNS server, in one place, and their Prometheus text rendering.
//!
//! Counters are plain atomics bumped on the query path (relaxed ordering: they are
//! statistics, not synchronisation). The admin endpoint renders them; nothing else reads them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::cdn::{CdnConfig, Region};

/// Query types counted on their own (code, name as `dig` prints it); everything else is
/// "other". Plain RFC 1035/IANA codes: this module knows no wire library.
const QTYPES: [(u16, &str); 14] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (2, "NS"),
    (6, "SOA"),
    (16, "TXT"),
    (33, "SRV"),
    (12, "PTR"),
    (257, "CAA"),
    (43, "DS"),
    (255, "ANY"),
    (252, "AXFR"),
    (251, "IXFR"),
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;

/// Response codes counted on their own (extended code, name as `dig` prints it).
const RCODES: [(u16, &str); 8] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (9, "NOTAUTH"),
    (16, "BADVERS"),
];
const RCODE_SLOTS: usize = RCODES.len() + 1;

fn qtype_slot(qtype: Option<u16>) -> usize {
    qtype
        .and_then(|t| QTYPES.iter().position(|&(q, _)| q == t))
        .unwrap_or(QTYPES.len())
}

fn rcode_slot(rcode: u16) -> usize {
    RCODES
        .iter()
        .position(|&(r, _)| r == rcode)
        .unwrap_or(RCODES.len())
}

/// The region policies, in the order of [`EdgeCounters`]' columns.
const POLICIES: [(Region, &str); 3] = [
    (Region::Mainland, "mainland"),
    (Region::Global, "global"),
    (Region::Overseas, "overseas"),
];

fn policy_slot(region: Region) -> usize {
    POLICIES.iter().position(|&(r, _)| r == region).unwrap_or(0)
}

/// The name a region policy has in the metrics.
pub fn policy_name(region: Region) -> &'static str {
    POLICIES[policy_slot(region)].1
}

/// Every scheduled-answer counter ever made, by (policy, edge name): they outlive the
/// snapshots (an edge keeps its count across reloads).
#[derive(Default)]
pub struct ScheduledRegistry {
    counters: Mutex<BTreeMap<(String, String), Arc<AtomicU64>>>,
}

impl ScheduledRegistry {
    /// The counter for (`policy`, `edge`), created on first use.
    pub fn counter(&self, policy: &str, edge: &str) -> Arc<AtomicU64> {
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((policy.to_string(), edge.to_string()))
            .or_default()
            .clone()
    }

    /// The counters of every edge of `cdn`, indexed by edge, then policy: built once per
    /// snapshot, so that a scheduled answer counts with one atomic add per edge, no lock.
    pub fn counters_for(&self, cdn: &CdnConfig) -> EdgeCounters {
        EdgeCounters {
            by_edge: cdn
                .edges
                .iter()
                .map(|edge| POLICIES.map(|(_, policy)| self.counter(policy, &edge.name)))
                .collect(),
        }
    }
}

/// The scheduled-answer counters of one snapshot's edges: `by_edge[edge][policy]`.
#[derive(Default, Clone)]
pub struct EdgeCounters {
    by_edge: Vec<[Arc<AtomicU64>; 3]>,
}

impl EdgeCounters {
    fn get(&self, edge: usize, region: Region) -> Option<&AtomicU64> {
        self.by_edge.get(edge).map(|row| &*row[policy_slot(region)])
    }
}

/// Edges counted per scheduled answer without spilling to the heap; `[cdn].answers` is
/// at most 64 (validated) and almost always 1.
const INLINE_EDGES: usize = 8;

/// What one scheduled answer counts: one per chosen edge (indices into the snapshot's
/// `cdn.edges`), and whether it failed open. Plain data, copied into the answer cache;
/// counted against the snapshot the answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledCount {
    pub region: Region,
    pub fail_open: bool,
    len: u8,
    edges: [u16; INLINE_EDGES],
}

impl ScheduledCount {
    /// The count of an answer from `edges` (indices into `cdn.edges`); edges past the
    /// eighth are not counted (see [`INLINE_EDGES`]).
    pub fn new(region: Region, fail_open: bool, edges: &[usize]) -> Self {
        let mut count = ScheduledCount {
            region,
            fail_open,
            len: 0,
            edges: [0; INLINE_EDGES],
        };
        for (slot, &edge) in count.edges.iter_mut().zip(edges) {
            *slot = u16::try_from(edge).unwrap_or(u16::MAX);
            count.len += 1;
        }
        count
    }

    /// The chosen edges' indices.
    pub fn edges(&self) -> impl Iterator<Item = usize> + '_ {
        self.edges[..usize::from(self.len)]
            .iter()
            .map(|&e| usize::from(e))
    }
}

/// The DNS server's counters.
#[derive(Default)]
pub struct Metrics {
    queries: [[AtomicU64; RCODE_SLOTS]; QTYPE_SLOTS],
    /// Datagrams dropped without an answer (too short to answer, or a response).
    pub dropped: AtomicU64,
    /// UDP answers sent with TC because they did not fit.
    pub truncated: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Scheduled answers, by (region policy, edge name). Each snapshot holds the counters
    /// of its edges ([`EdgeCounters`]) so that counting takes no lock.
    pub scheduled: Arc<ScheduledRegistry>,
    /// Scheduled answers served from edges none of which was healthy.
    pub fail_open: AtomicU64,
    /// Zone transfers (AXFR/IXFR) served, and refused.
    pub transfers_ok: AtomicU64,
    pub transfers_refused: AtomicU64,
    /// NOTIFYs a secondary answered, and NOTIFYs given up on.
    pub notifies_answered: AtomicU64,
    pub notifies_failed: AtomicU64,
}

impl Metrics {
    /// Count one answered query: its type code (`None` when the question could not be
    /// read) and its response code (the extended one, 12 bits).
    pub fn count_query(&self, qtype: Option<u16>, rcode: u16) {
        self.queries[qtype_slot(qtype)][rcode_slot(rcode)].fetch_add(1, Relaxed);
    }

    /// Count one scheduled answer (also when it is replayed from the answer cache), with
    /// the counters of the snapshot it came from (`counters`), whose `cdn` chose the
    /// edges. Without counters (a snapshot no daemon prepared: tests, fuzzing) the
    /// registry is asked by name.
    pub fn count_scheduled(
        &self,
        counters: &EdgeCounters,
        cdn: Option<&CdnConfig>,
        count: &ScheduledCount,
    ) {
        for edge in count.edges() {
            match counters.get(edge, count.region) {
                Some(counter) => {
                    counter.fetch_add(1, Relaxed);
                }
                None => {
                    if let Some(e) = cdn.and_then(|cdn| cdn.edges.get(edge)) {
                        self.scheduled
                            .counter(policy_name(count.region), &e.name)
                            .fetch_add(1, Relaxed);
                    }
                }
            }
        }
        if count.fail_open {
            self.fail_open.fetch_add(1, Relaxed);
        }
    }

    /// Total queries answered, all types and codes.
    pub fn total_queries(&self) -> u64 {
        self.queries.iter().flatten().map(|c| c.load(Relaxed)).sum()
    }

    /// Prometheus text exposition of every counter. `extra` lets other owners (the health
    /// table) append their own families.
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP meridian_dns_queries_total DNS queries answered, by query type and response code.\n");
        out.push_str("# TYPE meridian_dns_queries_total counter\n");
        for (qi, row) in self.queries.iter().enumerate() {
            for (ri, counter) in row.iter().enumerate() {
                let n = counter.load(Relaxed);
                if n == 0 {
                    continue;
                }
                let qtype = QTYPES.get(qi).map_or("other", |t| t.1);
                let rcode = RCODES.get(ri).map_or("other", |r| r.1);
                let _ = writeln!(
                    out,
                    "meridian_dns_queries_total{{qtype=\"{qtype}\",rcode=\"{rcode}\"}} {n}"
                );
            }
        }
        let simple = [
            (
                "meridian_dns_dropped_total",
                "Datagrams dropped without an answer.",
                &self.dropped,
            ),
            (
                "meridian_dns_truncated_total",
                "UDP answers sent truncated (TC).",
                &self.truncated,
            ),
            (
                "meridian_reloads_total",
                "Successful reloads of zones and configuration.",
                &self.reloads_ok,
            ),
            (
                "meridian_reload_failures_total",
                "Reloads refused because a file failed to parse or validate.",
                &self.reloads_failed,
            ),
            (
                "meridian_gslb_fail_open_total",
                "Scheduled answers given from unhealthy edges because none was healthy.",
                &self.fail_open,
            ),
            (
                "meridian_zone_transfers_total",
                "Zone transfers (AXFR/IXFR) sent to secondaries.",
                &self.transfers_ok,
            ),
            (
                "meridian_zone_transfers_refused_total",
                "Zone transfer requests refused (not allowed, badly signed, not a zone served, the CDN zone, AXFR over UDP).",
                &self.transfers_refused,
            ),
            (
                "meridian_notify_answered_total",
                "NOTIFYs of a changed zone that a secondary answered.",
                &self.notifies_answered,
            ),
            (
                "meridian_notify_failed_total",
                "NOTIFYs given up on after every retry.",
                &self.notifies_failed,
            ),
        ];
        for (name, help, counter) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Relaxed)
            );
        }
        out.push_str(
            "# HELP meridian_gslb_answers_total Scheduled answers, by region policy and edge.\n",
        );
        out.push_str("# TYPE meridian_gslb_answers_total counter\n");
        let scheduled = self
            .scheduled
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for ((policy, edge), n) in scheduled.iter() {
            let n = n.load(Relaxed);
            let _ = writeln!(
                out,
                "meridian_gslb_answers_total{{policy=\"{policy}\",edge=\"{edge}\"}} {n}"
            );
        }
        out.push_str(extra);
        out
    }
}

/// The health table's counters and per-edge state, as Prometheus text.
pub fn render_health(table: &crate::health::HealthTable) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP meridian_health_transitions_total Edge health transitions, by new state.\n",
    );
    out.push_str("# TYPE meridian_health_transitions_total counter\n");
    let _ = writeln!(
        out,
        "meridian_health_transitions_total{{to=\"up\"}} {}",
        table.transitions_up()
    );
    let _ = writeln!(
        out,
        "meridian_health_transitions_total{{to=\"down\"}} {}",
        table.transitions_down()
    );
    out.push_str("# HELP meridian_edge_up Whether an edge is served (1) or down (0).\n");
    out.push_str("# TYPE meridian_edge_up gauge\n");
    for edge in table.snapshot() {
        let _ = writeln!(
            out,
            "meridian_edge_up{{edge=\"{}\",state=\"{}\"}} {}",
            edge.name,
            edge.state.as_str(),
            u8::from(edge.state.is_served())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_queries_by_type_and_rcode() {
        let m = Metrics::default();
        m.count_query(Some(1), 0);
        m.count_query(Some(1), 0);
        m.count_query(Some(10), 5);
        m.count_query(None, 1);
        let text = m.render("");
        assert!(
            text.contains("meridian_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("meridian_dns_queries_total{qtype=\"other\",rcode=\"REFUSED\"} 1"),
            "{text}"
        );
        assert_eq!(m.total_queries(), 4);
    }
}
