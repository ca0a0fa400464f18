//! GSLB selection: which edges answer a scheduled query. Pure: inputs in, decision out.
//!
//! ```text
//! (CdnConfig, domain, ClientLocation, Family, is_up) --select--> Selection
//!   1. region policy  -> the sides allowed, in order of preference
//!        mainland: [CN]   overseas: [non-CN]   global: [client's side, other side]
//!   2. health         -> the first allowed side with a healthy edge serves;
//!                        none healthy: fail open (the first side with edges, all as up)
//!   3. family         -> only edges with an address of the asked family compete
//!                        (none: "no address of this family", answered NODATA)
//!   4. distance       -> nearest first (great circle), ties by weight (higher), then name
//!   5. the first `answers` edges; each gives all its addresses of the family
//! ```
//!
//! A *side* is mainland China (edges in "CN") or overseas (every other country; HK, MO and
//! TW are overseas). The side is chosen before the address family so that a client's A and
//! AAAA answers come from the same side of the border.
//!
//! This module does no I/O, never reads the clock and never panics on its inputs: the
//! caller looks the client up ([`crate::geo`]) and passes health as a closure
//! ([`crate::health::HealthTable`]).

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use crate::cdn::{CdnConfig, Edge, Region};
use crate::geo::{Country, Located, centroid, unit_vector};

/// The address family asked for: A or AAAA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// True if `edge` has at least one address of this family.
    pub fn has_address(self, edge: &Edge) -> bool {
        match self {
            Family::V4 => !edge.ipv4.is_empty(),
            Family::V6 => !edge.ipv6.is_empty(),
        }
    }
}

/// Where the client is, as far as scheduling is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLocation {
    pub country: Country,
    /// Degrees.
    pub lat: f64,
    pub lon: f64,
}

impl ClientLocation {
    /// A client at `country`'s centroid; `None` for codes the centroid table does not know.
    pub fn at_centroid(country: Country) -> Option<ClientLocation> {
        let (lat, lon) = centroid(country)?;
        Some(ClientLocation { country, lat, lon })
    }

    /// The client's location from a GeoIP result, or `default_country`'s centroid for
    /// clients the database does not know (`[cdn].default_country`, validated to exist).
    pub fn from_lookup(located: Option<Located>, default_country: Country) -> ClientLocation {
        match located {
            Some(at) => ClientLocation {
                country: at.country,
                lat: at.lat,
                lon: at.lon,
            },
            None => ClientLocation::at_centroid(default_country).unwrap_or(ClientLocation {
                country: default_country,
                lat: 0.0,
                lon: 0.0,
            }),
        }
    }
}

/// Mainland China or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Edges (and clients) in "CN".
    Mainland,
    /// Everything else, HK, MO and TW included.
    Overseas,
}

impl Side {
    /// The side a country is on.
    pub fn of(country: Country) -> Side {
        if country.is_mainland() {
            Side::Mainland
        } else {
            Side::Overseas
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Mainland => "mainland",
            Side::Overseas => "overseas",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decided a [`Selection`], for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The nearest healthy edges of the preferred side.
    Nearest,
    /// `global` domain: the client's side had no healthy edge, the other side serves.
    OtherSide,
    /// No allowed edge is healthy: allowed edges served as if healthy.
    FailOpen,
    /// No allowed (serving) edge has an address of the asked family: NODATA.
    NoAddressOfFamily,
    /// The region allows no configured edge at all: NODATA.
    NoEdgeInRegion,
    /// The domain index is out of range (a caller bug; answered as no edge).
    UnknownDomain,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Nearest => "nearest",
            Reason::OtherSide => "other-side",
            Reason::FailOpen => "fail-open",
            Reason::NoAddressOfFamily => "no-address-of-family",
            Reason::NoEdgeInRegion => "no-edge-in-region",
            Reason::UnknownDomain => "unknown-domain",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Chosen edges kept inline: a selection allocates nothing unless `[cdn].answers` is
/// above this (it is 1 almost everywhere).
const INLINE_EDGES: usize = 8;

/// The chosen edges of a [`Selection`], best first: a slice of indices into
/// [`CdnConfig::edges`] (it derefs to `[usize]`), held inline up to eight edges.
#[derive(Clone, Default)]
pub struct Edges {
    len: usize,
    inline: [usize; INLINE_EDGES],
    /// Used instead of `inline` when there are more edges than it holds.
    spilled: Vec<usize>,
}

impl Edges {
    fn push(&mut self, edge: usize) {
        if self.len < INLINE_EDGES && self.spilled.is_empty() {
            self.inline[self.len] = edge;
            self.len += 1;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.len]);
            }
            self.spilled.push(edge);
        }
    }
}

impl std::ops::Deref for Edges {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

impl<'a> IntoIterator for &'a Edges {
    type Item = &'a usize;
    type IntoIter = std::slice::Iter<'a, usize>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<usize> for Edges {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut edges = Edges::default();
        for edge in iter {
            edges.push(edge);
        }
        edges
    }
}

impl PartialEq for Edges {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Edges {}

impl PartialEq<Vec<usize>> for Edges {
    fn eq(&self, other: &Vec<usize>) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Edges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The decision for one scheduled query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Indices into [`CdnConfig::edges`], best first, at most `[cdn].answers`. Empty: no
    /// address to give (see `reason`), the server answers NODATA.
    pub edges: Edges,
    /// True when no allowed edge was healthy and they were served anyway.
    pub fail_open: bool,
    /// The side that serves (or would have served).
    pub side: Side,
    pub reason: Reason,
}

impl Selection {
    /// The answer's addresses: every address of `family` of each chosen edge, in order.
    pub fn addresses<'a>(
        &'a self,
        cfg: &'a CdnConfig,
        family: Family,
    ) -> impl Iterator<Item = IpAddr> + 'a {
        self.edges
            .iter()
            .filter_map(|&i| cfg.edges.get(i))
            .flat_map(move |edge| -> Box<dyn Iterator<Item = IpAddr> + 'a> {
                match family {
                    Family::V4 => Box::new(edge.ipv4.iter().map(|ip| IpAddr::V4(*ip))),
                    Family::V6 => Box::new(edge.ipv6.iter().map(|ip| IpAddr::V6(*ip))),
                }
            })
    }
}

/// Chooses the edges answering a query for `cfg.domains[domain]` from `client`, for
/// `family`. `is_up(i)` tells whether `cfg.edges[i]` is healthy (unknown counts as up).
pub fn select(
    cfg: &CdnConfig,
    domain: usize,
    client: &ClientLocation,
    family: Family,
    is_up: impl Fn(usize) -> bool,
) -> Selection {
    let client_side = Side::of(client.country);
    let Some(domain) = cfg.domains.get(domain) else {
        return empty(client_side, Reason::UnknownDomain);
    };
    let preference: &[Side] = match (domain.region, client_side) {
        (Region::Mainland, _) => &[Side::Mainland],
        (Region::Overseas, _) => &[Side::Overseas],
        (Region::Global, Side::Mainland) => &[Side::Mainland, Side::Overseas],
        (Region::Global, Side::Overseas) => &[Side::Overseas, Side::Mainland],
    };
    let on_side = |side: Side| {
        cfg.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| Side::of(e.country) == side)
            .map(|(i, _)| i)
    };

    let healthy_side = preference
        .iter()
        .position(|&side| on_side(side).any(&is_up));
    let (rank, fail_open) = match healthy_side {
        Some(rank) => (rank, false),
        None => match preference
            .iter()
            .position(|&side| on_side(side).next().is_some())
        {
            Some(rank) => (rank, true),
            None => return empty(preference[0], Reason::NoEdgeInRegion),
        },
    };
    let side = preference[rank];

    let client_position = unit_vector(client.lat, client.lon);
    // Larger dot product of unit vectors = smaller great-circle distance.
    let competing = on_side(side)
        .filter(|&i| family.has_address(&cfg.edges[i]) && (fail_open || is_up(i)))
        .map(|i| (i, dot(cfg.edges[i].position, client_position)));
    let order = |a: &(usize, f64), b: &(usize, f64)| -> Ordering {
        let (ea, eb) = (&cfg.edges[a.0], &cfg.edges[b.0]);
        b.1.total_cmp(&a.1)
            .then_with(|| eb.weight.cmp(&ea.weight))
            .then_with(|| ea.name.cmp(&eb.name))
    };
    let answers = cfg.answers.max(1);
    let edges: Edges = if answers == 1 {
        // The common case: the best edge, no sorting.
        competing
            .min_by(order)
            .map(|(i, _)| i)
            .into_iter()
            .collect()
    } else {
        let mut candidates: Vec<(usize, f64)> = competing.collect();
        if candidates.len() > answers {
            candidates.select_nth_unstable_by(answers - 1, order);
            candidates.truncate(answers);
        }
        candidates.sort_unstable_by(order);
        candidates.into_iter().map(|(i, _)| i).collect()
    };
    if edges.is_empty() {
        return Selection {
            edges,
            fail_open,
            side,
            reason: Reason::NoAddressOfFamily,
        };
    }

    Selection {
        edges,
        fail_open,
        side,
        reason: if fail_open {
            Reason::FailOpen
        } else if rank > 0 {
            Reason::OtherSide
        } else {
            Reason::Nearest
        },
    }
}

fn empty(side: Side, reason: Reason) -> Selection {
    Selection {
        edges: Edges::default(),
        fail_open: false,
        side,
        reason,
    }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
