//! The scheduled answer for `<domain>.<suffix>`: where the client is (ECS or source address,
//! through GeoIP), which edges [`crate::gslb::select`] picks, and the A/AAAA records that
//! carry them, with the ECS scope the answer is valid for.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::ecs::ClientNet;
use crate::cdn::{CdnConfig, Region};
use crate::daemon::metrics::{Metrics, ScheduledCount};
use crate::gslb::{ClientLocation, Family, select};
use crate::snapshot::Snapshot;

/// One scheduled step of a resolution.
pub struct Scheduled {
    /// Empty: NODATA (no allowed edge has an address of the asked family, or the type is
    /// neither A nor AAAA).
    pub records: Vec<Record>,
    /// The prefix the answer holds for (the GeoIP network's), for the ECS echo.
    pub ecs_scope: u8,
    /// The answer depends on the source address (no ECS in the query).
    pub per_source: bool,
    pub count: Option<Arc<ScheduledCount>>,
}

fn policy_name(region: Region) -> &'static str {
    match region {
        Region::Mainland => "mainland",
        Region::Global => "global",
        Region::Overseas => "overseas",
    }
}

/// The question being scheduled and who asks it.
pub struct Asked<'a> {
    /// The name as asked (owner of the answer records).
    pub name: &'a Name,
    pub qtype: RecordType,
    /// The source address of the query.
    pub source: IpAddr,
    /// The query's validated client subnet, if it had one.
    pub client_net: Option<&'a ClientNet>,
}

/// Answer `asked.name` (which matched `cdn.domains[domain]`).
pub fn answer(
    snapshot: &Snapshot,
    metrics: &Metrics,
    cdn: &CdnConfig,
    domain: usize,
    asked: &Asked<'_>,
) -> Scheduled {
    let Asked {
        name,
        qtype,
        source,
        client_net,
    } = *asked;
    let family = match qtype {
        RecordType::A | RecordType::ANY => Family::V4,
        RecordType::AAAA => Family::V6,
        _ => {
            return Scheduled {
                records: Vec::new(),
                ecs_scope: 0,
                per_source: false,
                count: None,
            };
        }
    };
    // RFC 7871 7.1.2: a source prefix of 0 asks us not to use client information; the
    // answer then holds for everyone (scope 0) and comes from the resolver's address.
    let (client_ip, from_ecs) = match client_net {
        Some(net) if net.source_prefix > 0 => (net.addr, true),
        _ => (source, false),
    };
    let lookup = snapshot.geo.as_ref().map(|g| g.db.lookup(client_ip));
    let location =
        ClientLocation::from_lookup(lookup.and_then(|l| l.location), cdn.default_country);
    let selection = select(cdn, domain, &location, family, |i| snapshot.health.is_up(i));
    let Some(domain_cfg) = cdn.domains.get(domain) else {
        return Scheduled {
            records: Vec::new(),
            ecs_scope: 0,
            per_source: false,
            count: None,
        };
    };
    let policy = policy_name(domain_cfg.region);
    let records: Vec<Record> = selection
        .addresses(cdn, family)
        .map(|ip| {
            let data = match ip {
                IpAddr::V4(a) => RData::A(A(a)),
                IpAddr::V6(a) => RData::AAAA(AAAA(a)),
            };
            Record::from_rdata(name.clone(), cdn.ttl, data)
        })
        .collect();
    let chosen: Vec<&str> = selection
        .edges
        .iter()
        .filter_map(|&i| cdn.edges.get(i))
        .map(|e| e.name.as_str())
        .collect();
    tracing::debug!(
        client = %client_ip,
        from_ecs,
        country = %location.country,
        lat = location.lat,
        lon = location.lon,
        domain = %domain_cfg.name,
        policy,
        side = %selection.side,
        edges = ?chosen,
        reason = %selection.reason,
        "scheduled"
    );
    let count = ScheduledCount {
        edges: chosen
            .iter()
            .map(|edge| metrics.scheduled_counter(policy, edge))
            .collect(),
        fail_open: selection.fail_open,
    };
    let located = snapshot.geo.is_some();
    Scheduled {
        records,
        ecs_scope: if from_ecs {
            lookup.map_or(0, |l| l.prefix_len)
        } else {
            0
        },
        per_source: located && !from_ecs,
        count: Some(Arc::new(count)),
    }
}
