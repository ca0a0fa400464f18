//! One step of RFC 1034 4.3.2 inside one zone.
//!
//! Walk from the apex down to the query name, one hash lookup per label: a delegation on the
//! way gives a referral; a missing name ends the walk at the closest encloser, where the only
//! wildcard that may apply is `*.<closest encloser>` (RFC 4592), else NXDOMAIN; the name
//! itself gives its data, a CNAME, or NODATA.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::key::{WILDCARD_BUF, WireName, wildcard_child};
use super::{Lookup, Node, RrSet, StoredRData, Zone};

impl Lookup {
    fn empty(rcode: ResponseCode, authoritative: bool) -> Self {
        Lookup {
            rcode,
            authoritative,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            cname_target: None,
        }
    }
}

impl Zone {
    /// One step of RFC 1034 4.3.2 for `qname` (inside this zone) and `qtype`. Answer owner
    /// names are `qname` exactly as given, wildcard-synthesised ones included. CNAMEs are not
    /// followed: `cname_target` tells the caller where to continue.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        let wire = WireName::new(qname);
        let labels = wire.label_count();
        if labels < self.origin_labels || wire.ancestor(self.origin_labels) != &*self.origin_key {
            return Lookup::empty(ResponseCode::Refused, false);
        }
        let Some(mut node) = self.nodes.get(&*self.origin_key) else {
            return Lookup::empty(ResponseCode::ServFail, false);
        };
        for depth in self.origin_labels + 1..=labels {
            let Some(child) = self.nodes.get(wire.ancestor(depth)) else {
                return self.below_closest_encloser(qname, qtype, wire.ancestor(depth - 1));
            };
            // DS belongs to the parent side of a cut (RFC 4035 3.1.4.1).
            let parent_side_ds = depth == labels && qtype == RecordType::DS;
            // Below the apex, NS means a zone cut (RFC 1034 4.2.1).
            if !parent_side_ds && child.rrset(RecordType::NS).is_some() {
                return self.referral(qname.trim_to(depth), child);
            }
            node = child;
        }
        self.answer_from(qname, qtype, node)
    }

    /// `qname` does not exist; `encloser` is the key of its closest encloser.
    fn below_closest_encloser(&self, qname: &Name, qtype: RecordType, encloser: &[u8]) -> Lookup {
        let mut buf = [0u8; WILDCARD_BUF];
        let len = wildcard_child(encloser, &mut buf);
        match self.nodes.get(&buf[..len]) {
            Some(wildcard) => self.answer_from(qname, qtype, wildcard),
            None => {
                let mut lookup = Lookup::empty(ResponseCode::NXDomain, true);
                lookup.authority.push(self.negative_soa.clone());
                lookup
            }
        }
    }

    /// The answer from `node`, which is `qname` itself or the wildcard synthesising it.
    fn answer_from(&self, qname: &Name, qtype: RecordType, node: &Node) -> Lookup {
        let mut lookup = Lookup::empty(ResponseCode::NoError, true);
        let rrset = if qtype == RecordType::ANY {
            // RFC 8482: one RRset, the lowest type, rather than everything.
            node.rrsets.first()
        } else if let Some(cname) = node.rrset(RecordType::CNAME)
            && qtype != RecordType::CNAME
        {
            lookup.cname_target = cname
                .rdatas()
                .iter()
                .find_map(|rdata| match rdata.as_rdata() {
                    Some(RData::CNAME(target)) => Some(target.0.clone()),
                    _ => None,
                });
            Some(cname)
        } else {
            node.rrset(qtype)
        };
        match rrset {
            Some(rrset) => {
                push_rrset(&mut lookup.answers, qname, rrset);
                if qtype != RecordType::ANY {
                    self.add_target_addresses(&mut lookup.additional, rrset);
                }
            }
            None => lookup.authority.push(self.negative_soa.clone()),
        }
        lookup
    }

    /// A referral to the child zone at `cut` (owner `cut_name`): its NS and their glue.
    fn referral(&self, cut_name: Name, cut: &Node) -> Lookup {
        let mut lookup = Lookup::empty(ResponseCode::NoError, false);
        if let Some(ns) = cut.rrset(RecordType::NS) {
            push_rrset(&mut lookup.authority, &cut_name, ns);
            self.add_target_addresses(&mut lookup.additional, ns);
        }
        lookup
    }

    /// A and AAAA of the in-zone targets of NS, MX and SRV records (glue included).
    fn add_target_addresses(&self, additional: &mut Vec<Record>, rrset: &RrSet) {
        let rdatas = rrset.rdatas();
        for (index, rdata) in rdatas.iter().enumerate() {
            let Some(target) = target_of(rdata) else {
                return;
            };
            let repeated = rdatas[..index]
                .iter()
                .any(|earlier| target_of(earlier) == Some(target));
            if repeated || !self.origin.zone_of(target) {
                continue;
            }
            let Some(node) = self.nodes.get(WireName::new(target).bytes()) else {
                continue;
            };
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Some(addresses) = node.rrset(rtype) {
                    push_rrset(additional, target, addresses);
                }
            }
        }
    }
}

/// The host name an NS, MX or SRV record points to.
fn target_of(rdata: &StoredRData) -> Option<&Name> {
    match rdata.as_rdata() {
        Some(RData::NS(ns)) => Some(&ns.0),
        Some(RData::MX(mx)) => Some(&mx.exchange),
        Some(RData::SRV(srv)) => Some(&srv.target),
        _ => None,
    }
}

pub(super) fn push_rrset(section: &mut Vec<Record>, owner: &Name, rrset: &RrSet) {
    section.reserve_exact(rrset.rdatas().len());
    section.extend(
        rrset
            .rdatas()
            .iter()
            .map(|rdata| Record::from_rdata(owner.clone(), rrset.ttl, rdata.to_rdata())),
    );
}
