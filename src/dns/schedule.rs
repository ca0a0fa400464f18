//! The scheduled answer for `<domain>.<suffix>`: where the client is (ECS or source address,
//! through GeoIP), which edges [`crate::gslb::select`] picks, and the ECS scope the answer is
//! valid for. The addresses are the chosen edges' own (`cdn.edges[i].ipv4`/`ipv6`): the
//! encoders write them out, nothing is copied or allocated here (the edges are held inline,
//! the metric is a few indices counted against the snapshot's per-edge counters).

use std::fmt;
use std::net::IpAddr;

use super::ecs::ClientNet;
use crate::cdn::CdnConfig;
use crate::daemon::metrics::{ScheduledCount, policy_name};
use crate::gslb::{ClientLocation, Edges, Family, select};
use crate::snapshot::Snapshot;
use crate::zone::rtype;

/// One scheduled step of a resolution.
pub struct Scheduled {
    pub family: Family,
    /// The chosen edges (indices into `cdn.edges`), each giving all its addresses of
    /// `family`. Empty: NODATA (no allowed edge has an address of the asked family, or the
    /// type is neither A nor AAAA).
    pub edges: Edges,
    /// The prefix the answer holds for (the GeoIP network's), for the ECS echo.
    pub ecs_scope: u8,
    /// The answer depends on the source address (no ECS in the query).
    pub per_source: bool,
    pub count: Option<ScheduledCount>,
}

impl Scheduled {
    /// The answer's addresses, in order.
    pub fn addresses<'a>(&'a self, cdn: &'a CdnConfig) -> impl Iterator<Item = IpAddr> + 'a {
        let family = self.family;
        self.edges
            .iter()
            .filter_map(|&i| cdn.edges.get(i))
            .flat_map(move |edge| {
                let v4 = (family == Family::V4).then_some(edge.ipv4.iter());
                let v6 = (family == Family::V6).then_some(edge.ipv6.iter());
                v4.into_iter()
                    .flatten()
                    .map(|ip| IpAddr::V4(*ip))
                    .chain(v6.into_iter().flatten().map(|ip| IpAddr::V6(*ip)))
            })
    }
}

/// The question being scheduled and who asks it.
pub struct Asked<'a> {
    /// The type code asked.
    pub qtype: u16,
    /// The source address of the query.
    pub source: IpAddr,
    /// The query's validated client subnet, if it had one.
    pub client_net: Option<&'a ClientNet>,
}

/// Edge names for a log line, formatted only when the line is written.
struct EdgeNames<'a>(&'a CdnConfig, &'a [usize]);

impl fmt::Display for EdgeNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.1.iter().filter_map(|&i| self.0.edges.get(i));
        f.debug_list()
            .entries(names.map(|e| e.name.as_str()))
            .finish()
    }
}

/// Schedule the name that matched `cdn.domains[domain]`.
pub fn answer(snapshot: &Snapshot, cdn: &CdnConfig, domain: usize, asked: &Asked<'_>) -> Scheduled {
    let Asked {
        qtype,
        source,
        client_net,
    } = *asked;
    let nothing = |family| Scheduled {
        family,
        edges: Edges::default(),
        ecs_scope: 0,
        per_source: false,
        count: None,
    };
    let family = match qtype {
        rtype::A | rtype::ANY => Family::V4,
        rtype::AAAA => Family::V6,
        _ => return nothing(Family::V4),
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
        return nothing(family);
    };
    tracing::debug!(
        client = %client_ip,
        from_ecs,
        country = %location.country,
        lat = location.lat,
        lon = location.lon,
        domain = %domain_cfg.name,
        policy = policy_name(domain_cfg.region),
        side = %selection.side,
        edges = %EdgeNames(cdn, &selection.edges),
        reason = %selection.reason,
        "scheduled"
    );
    let count = ScheduledCount::new(domain_cfg.region, selection.fail_open, &selection.edges);
    let located = snapshot.geo.is_some();
    Scheduled {
        family,
        edges: selection.edges,
        ecs_scope: if from_ecs {
            lookup.map_or(0, |l| l.prefix_len)
        } else {
            0
        },
        per_source: located && !from_ecs,
        count: Some(count),
    }
}
