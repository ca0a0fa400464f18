//! One DNS message in, one message out: header checks, EDNS, the question, the
//! authoritative answer (with CNAME chasing across the zones we serve, into scheduled
//! names), and encoding with truncation for UDP.
//!
//! ```text
//! request --fast::parse (common shape)--> Asked --resolve--> Resolution --fast::encode--> out
//!    \--(anything else) Message::from_vec -> Asked --resolve--> Resolution --hickory emit--> out
//! ```
//!
//! There is one answer: [`resolve`] decides it, from the snapshot, as a [`Resolution`] that
//! borrows the zones' RRsets and the chosen edges. Two encoders write it. The fast one
//! ([`super::fast`]) reads the common query shape straight from the bytes (one question,
//! class IN, at most an OPT record with ECS, cookie or padding options) and writes the
//! answer into the reused output buffer; it allocates nothing. Everything else — other
//! opcodes and classes, EDNS versions, malformed or odd options, compressed questions,
//! answers too large for the client — goes through hickory's decoder and encoder
//! ([`answer_reference`]), which also builds FORMERR, BADVERS, NOTIMP, REFUSED, CHAOS and
//! TC answers. Both give the same message for the queries both take (`tests/dns_fast_path.rs`
//! checks it over a corpus).
//!
//! Never panics on input: anything that does not decode gets FORMERR (or is dropped when
//! not even a header can be read back). Does no I/O; the socket loops in [`super::server`]
//! call [`answer`].

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::cache::Cacheability;
use super::schedule::{self, Scheduled};
use super::{MAX_UDP_PAYLOAD, Transport};
use super::{chaos, ecs, fast};
use crate::cdn::TargetMatch;
use crate::daemon::metrics::ScheduledCount;
use crate::snapshot::Snapshot;
use crate::zone::{Authority, Lookup, QueryName, Rcode, RrSet, Zone};

/// Longest CNAME chain followed before answering with what we have (loop protection).
pub(crate) const MAX_CNAME_CHAIN: usize = 12;

/// What was answered, for metrics and logs.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    /// The question's type code (`None` when the question could not be read).
    pub qtype: Option<u16>,
    /// The response code, extended (12 bits).
    pub rcode: u16,
    pub truncated: bool,
    /// Whether the encoded answer may be replayed for the same query bytes.
    pub cacheability: Cacheability,
    /// What the answer counts as in the scheduling metrics, when it was scheduled.
    pub scheduled: Option<ScheduledCount>,
    /// Answered by the fast path ([`super::fast`]): as cheap as replaying it, so the UDP
    /// worker does not keep it in its answer cache.
    pub fast: bool,
}

/// Where the query came from and how.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub src: SocketAddr,
    pub transport: Transport,
}

/// Answer one DNS message from `request`, writing the response into `out` (cleared first).
/// Returns `None` when nothing must be sent: a message too short to carry a header, or a
/// response (answering responses invites loops).
pub fn answer(
    snapshot: &Snapshot,
    client: Client,
    request: &[u8],
    out: &mut Vec<u8>,
) -> Option<Answered> {
    out.clear();
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return None;
    }
    if let Some(answered) = fast::answer(snapshot, client, request, out) {
        return Some(answered);
    }
    answer_reference(snapshot, client, request, out)
}

/// [`answer`] through hickory's decoder and encoder alone: the path for every query the
/// fast path leaves, and the reference the fast path is tested against.
pub fn answer_reference(
    snapshot: &Snapshot,
    client: Client,
    request: &[u8],
    out: &mut Vec<u8>,
) -> Option<Answered> {
    out.clear();
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return None;
    }
    let message = match Message::from_vec(request) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(src = %client.src, "malformed query: {e}");
            return Some(header_only_error(request, ResponseCode::FormErr, out));
        }
    };
    let (response, cacheability, scheduled) = respond(snapshot, client, &message, request);
    let qtype = message.queries.first().map(|q| u16::from(q.query_type()));
    let rcode = response.metadata.response_code;
    let truncated = encode(&response, client.transport, &message, out);
    tracing::debug!(
        src = %client.src,
        qname = %message.queries.first().map(|q| q.name().to_string()).unwrap_or_default(),
        qtype = ?qtype,
        rcode = %rcode,
        truncated,
        "answered"
    );
    Some(Answered {
        qtype,
        rcode: u16::from(rcode),
        truncated,
        cacheability,
        scheduled,
        fast: false,
    })
}

/// A FORMERR/SERVFAIL built from the raw header alone, for messages hickory cannot decode.
fn header_only_error(request: &[u8], rcode: ResponseCode, out: &mut Vec<u8>) -> Answered {
    // ID, then flags: QR=1, opcode copied, RD copied; counts all zero.
    let opcode_and_rd = request[2] & 0x79;
    out.extend_from_slice(&[request[0], request[1], 0x80 | opcode_and_rd, rcode.low()]);
    out.extend_from_slice(&[0; 8]);
    Answered {
        qtype: None,
        rcode: u16::from(rcode),
        truncated: false,
        cacheability: Cacheability::Never,
        scheduled: None,
        fast: false,
    }
}

/// Build the response message (not yet encoded). `wire` is the request as received, for the
/// one check hickory's decoding loses (the ECS option's declared length).
fn respond(
    snapshot: &Snapshot,
    client: Client,
    request: &Message,
    wire: &[u8],
) -> (Message, Cacheability, Option<ScheduledCount>) {
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.queries = request.queries.clone();

    // EDNS first: BADVERS and a malformed ECS option are answered before anything else.
    let mut client_net = None;
    if let Some(edns) = &request.edns {
        let mut reply = Edns::new();
        reply.set_max_payload(MAX_UDP_PAYLOAD);
        reply.set_version(0);
        if edns.version() > 0 {
            response.set_edns(reply);
            response.metadata.response_code = ResponseCode::BADVERS;
            return (response, Cacheability::Static, None);
        }
        if let Some(EdnsOption::Subnet(subnet)) = edns.option(EdnsCode::Subnet) {
            let checked =
                ecs::validate(subnet).and_then(|net| match ecs::declared_address_len(wire) {
                    Some(declared) => ecs::check_address_len(&net, declared).map(|()| net),
                    None => Ok(net),
                });
            match checked {
                Ok(net) => client_net = Some(net),
                Err(e) => {
                    tracing::debug!(src = %client.src, "FORMERR: {e}");
                    response.set_edns(reply);
                    response.metadata.response_code = ResponseCode::FormErr;
                    return (response, Cacheability::Static, None);
                }
            }
        }
        response.set_edns(reply);
    }

    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return (response, Cacheability::Static, None);
    }
    if request.queries.len() != 1 || !request.answers.is_empty() || !request.authorities.is_empty()
    {
        response.metadata.response_code = ResponseCode::FormErr;
        return (response, Cacheability::Static, None);
    }
    let query = &request.queries[0];
    let qtype = query.query_type();
    if query.query_class() == DNSClass::CH
        && let Some(records) = chaos::answer(query.name(), qtype)
    {
        response.metadata.authoritative = true;
        response.answers = records;
        return (response, Cacheability::Static, None);
    }
    // The socket loops hand transfer queries to `transfer`; one that still gets here (its
    // question compressed, say) is refused.
    if query.query_class() != DNSClass::IN || matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        response.metadata.response_code = ResponseCode::Refused;
        return (response, Cacheability::Static, None);
    }

    let Ok(qname_wire) = query.name().to_bytes() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return (response, Cacheability::Static, None);
    };
    let lower = QueryName::new(query.name());
    let resolution = resolve(
        snapshot,
        &qname_wire,
        &lower,
        u16::from(qtype),
        client.src.ip(),
        client_net.as_ref(),
    );
    response.metadata.authoritative = resolution.authoritative;
    response.metadata.response_code = ResponseCode::from_low(resolution.rcode.code());
    let cdn = snapshot.cdn.as_deref();
    for rrs in resolution.answers() {
        push_records(&mut response.answers, rrs, &resolution, cdn);
    }
    if let Some(rrs) = &resolution.authority {
        push_records(&mut response.authorities, rrs, &resolution, cdn);
    }
    for (owner, rrset) in resolution.glue() {
        push_rrset(&mut response.additionals, owner, rrset);
    }
    if let (Some(net), Some(edns)) = (client_net, response.edns.as_mut()) {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ecs::echo(&net, resolution.ecs_scope)));
    }
    let cacheability = resolution.cacheability();
    let count = resolution.scheduled.as_ref().and_then(|s| s.count);
    (response, cacheability, count)
}

/// The records of one entry of a resolution, as hickory records.
fn push_records(
    section: &mut Vec<Record>,
    rrs: &Rrs<'_>,
    resolution: &Resolution<'_>,
    cdn: Option<&crate::cdn::CdnConfig>,
) {
    match *rrs {
        Rrs::Zone { owner, rrset } => push_rrset(section, owner, rrset),
        Rrs::Scheduled { owner } => {
            let (Some(scheduled), Some(cdn)) = (&resolution.scheduled, cdn) else {
                return;
            };
            let name = name_of_wire(owner);
            section.extend(scheduled.addresses(cdn).map(|ip| {
                let data = match ip {
                    IpAddr::V4(a) => RData::A(A(a)),
                    IpAddr::V6(a) => RData::AAAA(AAAA(a)),
                };
                Record::from_rdata(name.clone(), cdn.ttl, data)
            }));
        }
    }
}

fn push_rrset(section: &mut Vec<Record>, owner: &[u8], rrset: &RrSet) {
    let name = name_of_wire(owner);
    section.extend(
        rrset
            .rdatas_hickory()
            .map(|rdata| Record::from_rdata(name.clone(), rrset.ttl(), rdata)),
    );
}

/// The name an uncompressed wire name stands for, in its case (the root for anything that
/// does not read: never for names taken from a decoded message or a loaded zone).
fn name_of_wire(wire: &[u8]) -> Name {
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        match wire.get(at + 1..at + 1 + usize::from(len)) {
            Some(label) => labels.push(label),
            None => break,
        }
        at += 1 + usize::from(len);
    }
    let mut name = Name::from_labels(labels).unwrap_or_else(|_| Name::root());
    name.set_fqdn(true);
    name
}

/// One RRset of an answer: from a zone, or the scheduled addresses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rrs<'a> {
    /// `owner` is an uncompressed wire name in the case it is to be written.
    Zone { owner: &'a [u8], rrset: &'a RrSet },
    /// The addresses of [`Resolution::scheduled`], owned by `owner`.
    Scheduled { owner: &'a [u8] },
}

/// The authoritative answer to one question, chased through CNAMEs: what both encoders
/// write. Borrows the snapshot (RRsets, edges) and the request (the query name).
pub(crate) struct Resolution<'a> {
    pub(crate) rcode: Rcode,
    pub(crate) authoritative: bool,
    answers: [Option<Rrs<'a>>; MAX_CNAME_CHAIN + 1],
    answer_count: usize,
    pub(crate) authority: Option<Rrs<'a>>,
    /// The zone and RRset whose targets' addresses make the additional section.
    glue: Option<(&'a Zone, &'a RrSet)>,
    pub(crate) scheduled: Option<Scheduled>,
    /// The ECS scope the answer is valid for: 0 unless an answer depended on location.
    pub(crate) ecs_scope: u8,
    /// The answer depended on the source address (scheduled without ECS).
    per_source: bool,
}

impl<'a> Resolution<'a> {
    pub(crate) fn answers(&self) -> impl Iterator<Item = &Rrs<'a>> {
        self.answers[..self.answer_count].iter().flatten()
    }

    pub(crate) fn glue(&self) -> impl Iterator<Item = (&'a [u8], &'a RrSet)> + use<'a> {
        self.glue
            .into_iter()
            .flat_map(|(zone, rrset)| zone.glue(rrset))
    }

    pub(crate) fn cacheability(&self) -> Cacheability {
        if self.per_source {
            Cacheability::PerSource
        } else {
            Cacheability::Static
        }
    }

    fn push_answer(&mut self, rrs: Rrs<'a>) {
        if let Some(slot) = self.answers.get_mut(self.answer_count) {
            *slot = Some(rrs);
            self.answer_count += 1;
        }
    }

    /// Whether `name` (lowercased) already owns an answer of the chain (a CNAME loop).
    fn seen(&self, name: &QueryName) -> bool {
        self.answers().any(|rrs| {
            let (Rrs::Zone { owner, .. } | Rrs::Scheduled { owner }) = *rrs;
            owner.eq_ignore_ascii_case(name.bytes())
        })
    }
}

/// The part of the uncompressed wire name `wire` made of its last `labels` labels.
fn wire_suffix(wire: &[u8], labels: usize) -> &[u8] {
    let mut starts = [0usize; 128];
    let (mut count, mut at) = (0, 0);
    while let Some(&len) = wire.get(at) {
        if len == 0 || count >= starts.len() {
            break;
        }
        starts[count] = at;
        count += 1;
        at += 1 + usize::from(len);
    }
    match count.checked_sub(labels) {
        Some(skip) if skip < count => wire.get(starts[skip]..).unwrap_or(wire),
        // As many labels as the name has, or more: the whole name; none: the root.
        Some(_) => wire.get(wire.len().saturating_sub(1)..).unwrap_or(wire),
        None => wire,
    }
}

/// The answer to `qname` (`qname_wire` as asked, `lower` the same lowercased) and `qtype`.
pub(crate) fn resolve<'a>(
    snapshot: &'a Snapshot,
    qname_wire: &'a [u8],
    lower: &QueryName,
    qtype: u16,
    source: IpAddr,
    client_net: Option<&ecs::ClientNet>,
) -> Resolution<'a> {
    let mut resolution = Resolution {
        rcode: Rcode::Refused,
        authoritative: false,
        answers: [None; MAX_CNAME_CHAIN + 1],
        answer_count: 0,
        authority: None,
        glue: None,
        scheduled: None,
        ecs_scope: 0,
        per_source: false,
    };
    let mut name: &'a [u8] = qname_wire;
    let mut next: Option<QueryName> = None;
    for hop in 0..MAX_CNAME_CHAIN {
        let lower = next.as_ref().unwrap_or(lower);
        let Some(zone) = snapshot.zones.find_for_query(lower, qtype) else {
            // Out of our zones: the first hop is REFUSED, a chain ends here with what it has.
            if hop > 0 {
                resolution.rcode = Rcode::NoError;
            }
            return resolution;
        };
        if let Some(cdn) = snapshot.cdn.as_deref() {
            match cdn.match_target(lower.labels()) {
                TargetMatch::Scheduled(domain) => {
                    let asked = schedule::Asked {
                        qtype,
                        source,
                        client_net,
                    };
                    let scheduled = schedule::answer(snapshot, cdn, domain, &asked);
                    if hop == 0 {
                        resolution.authoritative = true;
                    }
                    resolution.rcode = Rcode::NoError;
                    resolution.glue = None;
                    if scheduled.edges.is_empty() {
                        resolution.authority = Some(negative_soa(zone));
                    } else {
                        resolution.authority = None;
                        resolution.push_answer(Rrs::Scheduled { owner: name });
                    }
                    resolution.ecs_scope = scheduled.ecs_scope;
                    resolution.per_source |= scheduled.per_source;
                    resolution.scheduled = Some(scheduled);
                    return resolution;
                }
                _ if !zone.name_exists(lower) && cdn.is_scheduling_ancestor(lower.labels()) => {
                    if hop == 0 {
                        resolution.authoritative = true;
                    }
                    resolution.rcode = Rcode::NoError;
                    resolution.authority = Some(negative_soa(zone));
                    resolution.glue = None;
                    return resolution;
                }
                _ => {}
            }
        }
        let lookup: Lookup<'a> = zone.lookup(lower, qtype);
        if hop == 0 {
            resolution.authoritative = lookup.authoritative;
        }
        resolution.rcode = lookup.rcode;
        if let Some(rrset) = lookup.answer {
            resolution.push_answer(Rrs::Zone { owner: name, rrset });
        }
        resolution.authority = match lookup.authority {
            Authority::None => None,
            Authority::NegativeSoa(_) => Some(negative_soa(zone)),
            Authority::Referral { labels, ns } => Some(Rrs::Zone {
                owner: wire_suffix(name, labels),
                rrset: ns,
            }),
        };
        resolution.glue = lookup.glue_for.map(|rrset| (zone, rrset));
        let Some(target) = lookup.cname_target else {
            return resolution;
        };
        let Some((target_lower, used)) = QueryName::from_wire(target) else {
            return resolution;
        };
        if resolution.seen(&target_lower) {
            return resolution;
        }
        name = &target[..used];
        next = Some(target_lower);
    }
    resolution
}

fn negative_soa(zone: &Zone) -> Rrs<'_> {
    Rrs::Zone {
        owner: zone.origin_wire(),
        rrset: zone.negative_soa(),
    }
}

/// Encode `response` into `out`. Over UDP, an answer larger than the client's payload size
/// is replaced by a truncated one (TC set, question and OPT only). Returns whether it was.
fn encode(response: &Message, transport: Transport, request: &Message, out: &mut Vec<u8>) -> bool {
    out.clear();
    let limit = match transport {
        Transport::Tcp => u16::MAX as usize,
        Transport::Udp => match &request.edns {
            Some(edns) => edns.max_payload().clamp(512, MAX_UDP_PAYLOAD) as usize,
            None => 512,
        },
    };
    if emit(response, out).is_ok() && out.len() <= limit {
        return false;
    }
    let mut truncated = Message::new(
        response.metadata.id,
        MessageType::Response,
        response.metadata.op_code,
    );
    truncated.metadata = response.metadata;
    truncated.metadata.truncation = true;
    truncated.queries = response.queries.clone();
    if let Some(edns) = &response.edns {
        truncated.set_edns(edns.clone());
    }
    out.clear();
    if emit(&truncated, out).is_err() {
        out.clear();
        let mut failed = Message::new(
            response.metadata.id,
            MessageType::Response,
            response.metadata.op_code,
        );
        failed.metadata.response_code = ResponseCode::ServFail;
        let _ = emit(&failed, out);
    }
    true
}

fn emit(message: &Message, out: &mut Vec<u8>) -> Result<(), hickory_proto::ProtoError> {
    let mut encoder = BinEncoder::new(out);
    message.emit(&mut encoder)
}

/// What the zone store's answer to `qname`/`qtype` is as hickory records (owners as the
/// query name is written), for tests of the zone store that compare records.
pub fn lookup_records(zone: &Zone, qname: &Name, qtype: RecordType) -> LookupRecords {
    let lower = QueryName::new(qname);
    let wire = qname.to_bytes().unwrap_or_default();
    let lookup = zone.lookup(&lower, u16::from(qtype));
    let mut records = LookupRecords {
        rcode: lookup.rcode,
        authoritative: lookup.authoritative,
        answers: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
        cname_target: lookup.cname_target.map(name_of_wire),
    };
    if let Some(rrset) = lookup.answer {
        push_rrset(&mut records.answers, &wire, rrset);
    }
    match lookup.authority {
        Authority::None => {}
        Authority::NegativeSoa(soa) => push_rrset(&mut records.authority, zone.origin_wire(), soa),
        Authority::Referral { labels, ns } => {
            push_rrset(&mut records.authority, wire_suffix(&wire, labels), ns)
        }
    }
    if let Some(rrset) = lookup.glue_for {
        for (owner, addresses) in zone.glue(rrset) {
            push_rrset(&mut records.additional, owner, addresses);
        }
    }
    records
}

/// A zone lookup as hickory records: see [`lookup_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRecords {
    pub rcode: Rcode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    pub cname_target: Option<Name>,
}
