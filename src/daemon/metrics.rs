//! Every metric of the DNS server, in one place, and their Prometheus text rendering.
//!
//! Counters are plain atomics bumped on the query path (relaxed ordering: they are
//! statistics, not synchronisation). The admin endpoint renders them; nothing else reads them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Query types counted on their own; everything else is "other".
const QTYPES: [RecordType; 14] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::NS,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::CAA,
    RecordType::DS,
    RecordType::ANY,
    RecordType::AXFR,
    RecordType::IXFR,
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;

/// Response codes counted on their own, with the names `dig` prints.
const RCODES: [(ResponseCode, &str); 8] = [
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::NotImp, "NOTIMP"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::NotAuth, "NOTAUTH"),
    (ResponseCode::BADVERS, "BADVERS"),
];
const RCODE_SLOTS: usize = RCODES.len() + 1;

fn qtype_slot(qtype: Option<RecordType>) -> usize {
    qtype
        .and_then(|t| QTYPES.iter().position(|&q| q == t))
        .unwrap_or(QTYPES.len())
}

fn rcode_slot(rcode: ResponseCode) -> usize {
    RCODES
        .iter()
        .position(|&(r, _)| r == rcode)
        .unwrap_or(RCODES.len())
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
    /// Scheduled answers, by (region policy, edge name). The query path holds handles to
    /// these counters (see [`ScheduledCount`]) so that counting takes no lock.
    scheduled: Mutex<BTreeMap<(String, String), Arc<AtomicU64>>>,
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
    /// Count one answered query. `qtype` is `None` when the question could not be read.
    pub fn count_query(&self, qtype: Option<RecordType>, rcode: ResponseCode) {
        self.queries[qtype_slot(qtype)][rcode_slot(rcode)].fetch_add(1, Relaxed);
    }

    /// The counter of scheduled answers for (`policy`, `edge`), created on first use.
    pub fn scheduled_counter(&self, policy: &str, edge: &str) -> Arc<AtomicU64> {
        let mut map = self.scheduled.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((policy.to_string(), edge.to_string()))
            .or_default()
            .clone()
    }

    /// Count one scheduled answer (also when it is replayed from the answer cache).
    pub fn count_scheduled(&self, count: &ScheduledCount) {
        for counter in &count.edges {
            counter.fetch_add(1, Relaxed);
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
                let qtype = QTYPES
                    .get(qi)
                    .map_or("other".to_string(), |t| t.to_string());
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
        let scheduled = self.scheduled.lock().unwrap_or_else(|e| e.into_inner());
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

/// What one scheduled answer counts: one per chosen edge, and whether it failed open.
#[derive(Debug, Default)]
pub struct ScheduledCount {
    pub edges: Vec<Arc<AtomicU64>>,
    pub fail_open: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_queries_by_type_and_rcode() {
        let m = Metrics::default();
        m.count_query(Some(RecordType::A), ResponseCode::NoError);
        m.count_query(Some(RecordType::A), ResponseCode::NoError);
        m.count_query(Some(RecordType::NULL), ResponseCode::Refused);
        m.count_query(None, ResponseCode::FormErr);
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
