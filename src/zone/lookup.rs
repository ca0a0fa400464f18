//! One step of RFC 1034 4.3.2 inside one zone.
//!
//! Walk from the apex down to the query name, one hash lookup per label: a delegation on the
//! way gives a referral; a missing name ends the walk at the closest encloser, where the only
//! wildcard that may apply is `*.<closest encloser>` (RFC 4592), else NXDOMAIN; the name
//! itself gives its data, a CNAME, or NODATA.
//!
//! The answer borrows the zone's RRsets ([`Lookup`]): nothing is copied or allocated; the
//! wire module writes the records out (owner names are the caller's: the query name, an
//! ancestor of it, or the origin).

use super::key::{QueryName, WILDCARD_BUF, WireName, wildcard_child};
use super::{Node, Rcode, RrSet, StoredRData, Zone, rtype};
use hickory_proto::rr::RecordType;

/// The answer of one lookup step inside one zone, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'z> {
    /// `NoError` or `NxDomain`; `Refused` only if the name is not in the zone at all.
    pub rcode: Rcode,
    /// False for a referral (and for a refusal).
    pub authoritative: bool,
    /// The answer's RRset. Its owner is the query name as asked (also when a wildcard
    /// synthesised it).
    pub answer: Option<&'z RrSet>,
    pub authority: Authority<'z>,
    /// The RRset (the answer's, or the referral's NS) whose in-zone targets' addresses go in
    /// the additional section: see [`Zone::glue`].
    pub glue_for: Option<&'z RrSet>,
    /// The CNAME's target (wire form, the zone file's case) when the answer is a CNAME and
    /// the query type is neither CNAME nor ANY: the caller continues the chain from there,
    /// with loop protection.
    pub cname_target: Option<&'z [u8]>,
}

/// The authority section of a [`Lookup`].
#[derive(Debug, Clone, Copy)]
pub enum Authority<'z> {
    None,
    /// A negative answer's SOA ([`Zone::negative_soa`]); owner: the zone's origin.
    NegativeSoa(&'z RrSet),
    /// A referral: the child's NS RRset, owned by the query name's ancestor with `labels`
    /// labels (the zone cut).
    Referral {
        labels: usize,
        ns: &'z RrSet,
    },
}

impl Lookup<'_> {
    fn empty(rcode: Rcode, authoritative: bool) -> Self {
        Lookup {
            rcode,
            authoritative,
            answer: None,
            authority: Authority::None,
            glue_for: None,
            cname_target: None,
        }
    }
}

impl Zone {
    /// One step of RFC 1034 4.3.2 for `qname` (inside this zone) and type code `qtype`.
    /// CNAMEs are not followed: `cname_target` tells the caller where to continue.
    pub fn lookup(&self, qname: &QueryName, qtype: u16) -> Lookup<'_> {
        let labels = qname.label_count();
        if labels < self.origin_labels || qname.ancestor(self.origin_labels) != &*self.origin_key {
            return Lookup::empty(Rcode::Refused, false);
        }
        let Some(mut node) = self.nodes.get(&*self.origin_key) else {
            return Lookup::empty(Rcode::ServFail, false);
        };
        for depth in self.origin_labels + 1..=labels {
            let Some(child) = self.nodes.get(qname.ancestor(depth)) else {
                return self.below_closest_encloser(qtype, qname.ancestor(depth - 1));
            };
            // DS belongs to the parent side of a cut (RFC 4035 3.1.4.1).
            let parent_side_ds = depth == labels && qtype == rtype::DS;
            // Below the apex, NS means a zone cut (RFC 1034 4.2.1).
            if !parent_side_ds && let Some(ns) = child.rrset(RecordType::NS) {
                let mut lookup = Lookup::empty(Rcode::NoError, false);
                lookup.authority = Authority::Referral { labels: depth, ns };
                lookup.glue_for = Some(ns);
                return lookup;
            }
            node = child;
        }
        self.answer_from(qtype, node)
    }

    /// The query name does not exist; `encloser` is the key of its closest encloser.
    fn below_closest_encloser(&self, qtype: u16, encloser: &[u8]) -> Lookup<'_> {
        let mut buf = [0u8; WILDCARD_BUF];
        let len = wildcard_child(encloser, &mut buf);
        match self.nodes.get(&buf[..len]) {
            Some(wildcard) => self.answer_from(qtype, wildcard),
            None => {
                let mut lookup = Lookup::empty(Rcode::NxDomain, true);
                lookup.authority = Authority::NegativeSoa(&self.negative_soa);
                lookup
            }
        }
    }

    /// The answer from `node`, which is the query name itself or the wildcard synthesising it.
    fn answer_from<'z>(&'z self, qtype: u16, node: &'z Node) -> Lookup<'z> {
        let mut lookup = Lookup::empty(Rcode::NoError, true);
        let rrset = if qtype == rtype::ANY {
            // RFC 8482: one RRset, the lowest type, rather than everything.
            node.rrsets.first()
        } else if let Some(cname) = node.rrset(RecordType::CNAME)
            && qtype != rtype::CNAME
        {
            lookup.cname_target = cname.rdatas().iter().find_map(StoredRData::wire);
            Some(cname)
        } else {
            node.rrsets.iter().find(|rrset| rrset.rtype() == qtype)
        };
        match rrset {
            Some(rrset) => {
                lookup.answer = Some(rrset);
                if qtype != rtype::ANY {
                    lookup.glue_for = Some(rrset);
                }
            }
            None => lookup.authority = Authority::NegativeSoa(&self.negative_soa),
        }
        lookup
    }

    /// The additional section for `rrset` (from a [`Lookup`] of this zone): the A and AAAA
    /// RRsets of the in-zone targets of NS, MX and SRV records (glue included), each target
    /// once, in record order. Items are (owner in wire form as the record names it, RRset).
    pub fn glue<'z>(&'z self, rrset: &'z RrSet) -> Glue<'z> {
        Glue {
            zone: self,
            rrset,
            index: 0,
            pending: None,
        }
    }
}

/// Iterator of [`Zone::glue`].
pub struct Glue<'z> {
    zone: &'z Zone,
    rrset: &'z RrSet,
    index: usize,
    /// The AAAA RRset still to give for the current target.
    pending: Option<(&'z [u8], &'z RrSet)>,
}

impl<'z> Iterator for Glue<'z> {
    type Item = (&'z [u8], &'z RrSet);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(pending) = self.pending.take() {
            return Some(pending);
        }
        let rdatas = self.rrset.rdatas();
        let offset = target_offset(self.rrset.rtype())?;
        while let Some(rdata) = rdatas.get(self.index) {
            self.index += 1;
            let Some(target) = rdata.wire().and_then(|wire| wire.get(offset..)) else {
                continue;
            };
            let Some((lower, used)) = QueryName::from_wire(target) else {
                continue;
            };
            let target = &target[..used];
            let repeated = rdatas[..self.index - 1].iter().any(|earlier| {
                earlier
                    .wire()
                    .and_then(|wire| wire.get(offset..))
                    .and_then(QueryName::from_wire)
                    .is_some_and(|(name, _)| name.bytes() == lower.bytes())
            });
            let zone = self.zone;
            let in_zone = lower.label_count() >= zone.origin_labels
                && lower.ancestor(zone.origin_labels) == &*zone.origin_key;
            if repeated || !in_zone {
                continue;
            }
            let Some(node) = zone.nodes.get(WireName::bytes(&lower)) else {
                continue;
            };
            let a = node.rrset(RecordType::A).map(|r| (target, r));
            let aaaa = node.rrset(RecordType::AAAA).map(|r| (target, r));
            match (a, aaaa) {
                (Some(a), aaaa) => {
                    self.pending = aaaa;
                    return Some(a);
                }
                (None, Some(aaaa)) => return Some(aaaa),
                (None, None) => {}
            }
        }
        None
    }
}

/// Where the host name starts in the data of an NS, MX or SRV record.
fn target_offset(rtype: u16) -> Option<usize> {
    match rtype {
        rtype::NS => Some(0),
        rtype::MX => Some(2),
        rtype::SRV => Some(6),
        _ => None,
    }
}
