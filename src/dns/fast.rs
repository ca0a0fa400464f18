//! The answer path for the common query shape, without hickory and without allocating: the
//! query read straight from its bytes, the answer written straight into the reused output
//! buffer.
//!
//! Why by hand: a resolver's queries defeat the exact-bytes answer cache ([`super::cache`])
//! — 0x20 case randomisation, ECS from many client subnets, random subdomains — so every
//! one of them is decoded, resolved and encoded. hickory's `Message` decoding and encoding
//! allocate (vectors of queries and records, `Name`s cloned into every record, a compression
//! table of owned labels) and cost more user CPU than the whole kernel path of the datagram.
//! Only what the hot path needs is written here:
//!
//! - [`parse`]: header, one uncompressed question of class IN, and at most one additional
//!   record, an OPT of version 0 whose options are ECS (validated as [`super::ecs`] does),
//!   cookie or padding. The name is lowercased into a stack buffer ([`QueryName`]) as it is
//!   read. Anything else returns `None` and the caller takes hickory's path
//!   ([`super::handler::answer_reference`]), which answers it exactly as before.
//! - [`super::handler::resolve`] decides the answer, the same function the hickory path uses.
//! - [`encode`]: the header, the question copied from the query (its case preserved), the
//!   records with their data copied from the zone (encoded once at load, names
//!   uncompressed) or the edges' addresses, and the OPT record with the ECS echo. Owner
//!   names are compressed against the question and against names written uncompressed
//!   before them (CNAME targets, NS targets). An answer that would not fit the client's
//!   payload size is left to hickory's encoder, which compresses every name and sets TC
//!   when even that does not fit: TC decisions stay hickory's.

use super::handler::{Answered, Client, Resolution, Rrs, resolve};
use super::{MAX_UDP_PAYLOAD, Transport, ecs};
use crate::cdn::CdnConfig;
use crate::snapshot::Snapshot;
use crate::zone::{QueryName, RrSet, rtype};

const OPT: u16 = 41;
const TSIG: u16 = 250;
const CLASS_IN: u16 = 1;
const OPTION_ECS: u16 = 8;
const OPTION_COOKIE: u16 = 10;
const OPTION_PADDING: u16 = 12;

/// A query of the common shape, read from its bytes.
pub(crate) struct Parsed<'q> {
    /// The question as it is on the wire: name (uncompressed, as asked), type, class.
    pub(crate) question: &'q [u8],
    pub(crate) qname_len: usize,
    pub(crate) lower: QueryName,
    pub(crate) qtype: u16,
    /// The OPT record's UDP payload size, when the query has one.
    pub(crate) edns_payload: Option<u16>,
    pub(crate) client_net: Option<ecs::ClientNet>,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

/// Read `request` if it has the common shape (see the module doc); `None` otherwise.
pub(crate) fn parse(request: &[u8]) -> Option<Parsed<'_>> {
    let header = request.get(..12)?;
    // QR = 0, opcode QUERY; one question, no answer or authority records.
    if header[2] & 0xF8 != 0 || header[4..10] != [0, 1, 0, 0, 0, 0] {
        return None;
    }
    let additional = u16_at(header, 10)?;
    if additional > 1 {
        return None;
    }
    let (lower, qname_len) = QueryName::from_wire(&request[12..])?;
    let qtype = u16_at(request, 12 + qname_len)?;
    if u16_at(request, 14 + qname_len)? != CLASS_IN
        || matches!(qtype, OPT | TSIG | rtype::IXFR | rtype::AXFR)
    {
        return None;
    }
    let question_end = 16 + qname_len;
    let mut parsed = Parsed {
        question: &request[12..question_end],
        qname_len,
        lower,
        qtype,
        edns_payload: None,
        client_net: None,
    };
    if additional == 1 {
        // OPT: root owner, type 41, class = payload size, TTL = ext rcode, version, flags.
        let opt = request.get(question_end..question_end + 11)?;
        if opt[0] != 0 || u16_at(opt, 1)? != OPT || opt[6] != 0 {
            return None;
        }
        let rdlen = usize::from(u16_at(opt, 9)?);
        let rdata = request.get(question_end + 11..question_end + 11 + rdlen)?;
        parsed.edns_payload = Some(u16_at(opt, 3)?);
        let mut at = 0;
        while at < rdata.len() {
            let code = u16_at(rdata, at)?;
            let len = usize::from(u16_at(rdata, at + 2)?);
            let data = rdata.get(at + 4..at + 4 + len)?;
            match code {
                OPTION_ECS if parsed.client_net.is_none() => {
                    parsed.client_net = Some(ecs::parse_option(data)?);
                }
                OPTION_COOKIE | OPTION_PADDING => {}
                _ => return None,
            }
            at += 4 + len;
        }
    }
    Some(parsed)
}

/// Answer `request` if it has the common shape and its answer fits; `None` leaves it to
/// the hickory path (nothing is counted or kept then).
pub fn answer(
    snapshot: &Snapshot,
    client: Client,
    request: &[u8],
    out: &mut Vec<u8>,
) -> Option<Answered> {
    let parsed = parse(request)?;
    let resolution = resolve(
        snapshot,
        &parsed.question[..parsed.qname_len],
        &parsed.lower,
        parsed.qtype,
        client.src.ip(),
        parsed.client_net.as_ref(),
    );
    let limit = match client.transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match parsed.edns_payload {
            Some(size) => usize::from(size.clamp(512, MAX_UDP_PAYLOAD)),
            None => 512,
        },
    };
    if !encode(
        snapshot.cdn.as_deref(),
        request,
        &parsed,
        &resolution,
        limit,
        out,
    ) {
        out.clear();
        return None;
    }
    tracing::debug!(src = %client.src, qtype = parsed.qtype, rcode = resolution.rcode.code(), "answered");
    Some(Answered {
        qtype: Some(parsed.qtype),
        rcode: u16::from(resolution.rcode.code()),
        truncated: false,
        cacheability: resolution.cacheability(),
        scheduled: resolution.scheduled.as_ref().and_then(|s| s.count),
        fast: true,
    })
}

/// Names written uncompressed so far (offset in the message, length), to point at.
struct Written {
    names: [(u16, u16); 16],
    count: usize,
}

impl Written {
    fn add(&mut self, offset: usize, len: usize) {
        if offset < 0x3FFF
            && let Some(slot) = self.names.get_mut(self.count)
        {
            *slot = (offset as u16, len as u16);
            self.count += 1;
        }
    }
}

/// Offsets of the labels of an uncompressed wire name (at most 128), and how many.
fn label_starts(name: &[u8], starts: &mut [u8; 128]) -> usize {
    let (mut count, mut at) = (0, 0usize);
    while let Some(&len) = name.get(at) {
        if len == 0 || count >= starts.len() || at > usize::from(u8::MAX) {
            break;
        }
        starts[count] = at as u8;
        count += 1;
        at += 1 + usize::from(len);
    }
    count
}

/// Write `name` (uncompressed wire form) compressed against the names in `written`: its
/// longest suffix, at a label boundary, equal byte for byte to a suffix of one of them
/// becomes a pointer.
fn write_name(out: &mut Vec<u8>, name: &[u8], written: &Written) {
    let mut starts = [0u8; 128];
    let labels = label_starts(name, &mut starts);
    for &start in &starts[..labels] {
        let suffix = &name[usize::from(start)..];
        for &(offset, len) in &written.names[..written.count] {
            let (offset, len) = (usize::from(offset), usize::from(len));
            let Some(candidate) = out.get(offset..offset + len) else {
                continue;
            };
            if candidate.len() < suffix.len() {
                continue;
            }
            let at = candidate.len() - suffix.len();
            if candidate[at..] != *suffix || !is_label_boundary(candidate, at) {
                continue;
            }
            let pointer = 0xC000 | (offset + at) as u16;
            out.extend_from_slice(&name[..usize::from(start)]);
            out.extend_from_slice(&pointer.to_be_bytes());
            return;
        }
    }
    out.extend_from_slice(name);
}

fn is_label_boundary(name: &[u8], at: usize) -> bool {
    let mut starts = [0u8; 128];
    let labels = label_starts(name, &mut starts);
    at == name.len() - 1 || starts[..labels].iter().any(|&s| usize::from(s) == at)
}

/// Write one resource record's fixed part and data.
fn write_record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Write one RRset (`owner`, uncompressed wire); returns how many records.
fn write_rrset(out: &mut Vec<u8>, owner: &[u8], rrset: &RrSet, written: &mut Written) -> u16 {
    let mut count = 0;
    let target_offset = match rrset.rtype() {
        rtype::CNAME | rtype::NS => Some(0),
        _ => None,
    };
    for rdata in rrset.wire_rdatas() {
        write_name(out, owner, written);
        let data_at = out.len() + 10;
        write_record(out, rrset.rtype(), rrset.ttl(), rdata.bytes());
        if let Some(skip) = target_offset {
            written.add(data_at + skip, rdata.bytes().len() - skip);
        }
        count += 1;
    }
    count
}

/// Write the scheduled addresses (`owner`, uncompressed wire); returns how many records.
fn write_scheduled(
    out: &mut Vec<u8>,
    owner: &[u8],
    resolution: &Resolution<'_>,
    cdn: Option<&CdnConfig>,
    written: &Written,
) -> u16 {
    let (Some(scheduled), Some(cdn)) = (&resolution.scheduled, cdn) else {
        return 0;
    };
    let mut count = 0;
    for ip in scheduled.addresses(cdn) {
        write_name(out, owner, written);
        match ip {
            std::net::IpAddr::V4(a) => write_record(out, rtype::A, cdn.ttl, &a.octets()),
            std::net::IpAddr::V6(a) => write_record(out, rtype::AAAA, cdn.ttl, &a.octets()),
        }
        count += 1;
    }
    count
}

fn write_rrs(
    out: &mut Vec<u8>,
    rrs: &Rrs<'_>,
    resolution: &Resolution<'_>,
    cdn: Option<&CdnConfig>,
    written: &mut Written,
) -> u16 {
    match *rrs {
        Rrs::Zone { owner, rrset } => write_rrset(out, owner, rrset, written),
        Rrs::Scheduled { owner } => write_scheduled(out, owner, resolution, cdn, written),
    }
}

/// Write the answer into `out`; false when it does not fit `limit` (or a count overflows).
fn encode(
    cdn: Option<&CdnConfig>,
    request: &[u8],
    parsed: &Parsed<'_>,
    resolution: &Resolution<'_>,
    limit: usize,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    // ID; QR, opcode 0, AA, RD copied; CD copied, rcode.
    let aa = if resolution.authoritative { 0x04 } else { 0 };
    out.extend_from_slice(&[
        request[0],
        request[1],
        0x80 | aa | (request[2] & 0x01),
        (request[3] & 0x10) | resolution.rcode.code(),
    ]);
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(parsed.question);
    let mut written = Written {
        names: [(0, 0); 16],
        count: 0,
    };
    written.add(12, parsed.qname_len);

    let mut answers = 0u16;
    for rrs in resolution.answers() {
        answers += write_rrs(out, rrs, resolution, cdn, &mut written);
    }
    let mut authority = 0u16;
    if let Some(rrs) = &resolution.authority {
        authority += write_rrs(out, rrs, resolution, cdn, &mut written);
    }
    let mut additional = 0u16;
    for (owner, rrset) in resolution.glue() {
        additional += write_rrset(out, owner, rrset, &mut written);
    }
    if parsed.edns_payload.is_some() {
        additional += 1;
        out.extend_from_slice(&[0]);
        out.extend_from_slice(&OPT.to_be_bytes());
        out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        match &parsed.client_net {
            Some(net) => {
                let octets = usize::from(net.source_prefix).div_ceil(8);
                let (family, address) = match net.addr {
                    std::net::IpAddr::V4(a) => (1u16, a.to_ipv6_mapped().octets()),
                    std::net::IpAddr::V6(a) => (2u16, a.octets()),
                };
                let address = if family == 1 {
                    &address[12..12 + octets]
                } else {
                    &address[..octets]
                };
                let option_len = 4 + address.len() as u16;
                out.extend_from_slice(&(4 + option_len).to_be_bytes());
                out.extend_from_slice(&OPTION_ECS.to_be_bytes());
                out.extend_from_slice(&option_len.to_be_bytes());
                out.extend_from_slice(&family.to_be_bytes());
                let scope = resolution.ecs_scope.min(net.source_prefix);
                out.extend_from_slice(&[net.source_prefix, scope]);
                out.extend_from_slice(address);
            }
            None => out.extend_from_slice(&[0, 0]),
        }
    }
    if out.len() > limit {
        return false;
    }
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    out[8..10].copy_from_slice(&authority.to_be_bytes());
    out[10..12].copy_from_slice(&additional.to_be_bytes());
    true
}

/// Answer `request` on both paths and compare: `Ok(false)` when the fast path leaves the
/// query to hickory, `Ok(true)` when both answered and the answers decode to the same
/// message (header, question, every record with its owner's case, TTL and data, OPT
/// payload size, version and options), `Err` with both messages otherwise. The safety net
/// of the fast path, for the differential test and the `dns_packet` fuzz target.
pub fn compare_with_reference(
    snapshot: &Snapshot,
    client: Client,
    request: &[u8],
) -> Result<bool, String> {
    let (mut fast, mut reference) = (Vec::new(), Vec::new());
    let Some(fast_answered) = answer(snapshot, client, request, &mut fast) else {
        return Ok(false);
    };
    let Some(reference_answered) =
        super::handler::answer_reference(snapshot, client, request, &mut reference)
    else {
        return Err("the fast path answered a query the reference path drops".into());
    };
    let (a, b) = (describe(&fast)?, describe(&reference)?);
    if a != b {
        return Err(format!("fast:\n{a}\nreference:\n{b}"));
    }
    let counted = |x: &Answered| (x.qtype, x.rcode, x.truncated, x.cacheability, x.scheduled);
    if counted(&fast_answered) != counted(&reference_answered) {
        return Err(format!(
            "counted differently: fast {fast_answered:?}, reference {reference_answered:?}"
        ));
    }
    Ok(true)
}

/// A decoded message as text, names in their case (hickory compares names ignoring case).
fn describe(wire: &[u8]) -> Result<String, String> {
    use std::fmt::Write as _;
    let message = hickory_proto::op::Message::from_vec(wire)
        .map_err(|e| format!("answer does not decode: {e}"))?;
    let mut text = format!("{:?}\n", message.metadata);
    for query in &message.queries {
        let _ = writeln!(
            text,
            "Q {} {} {}",
            query.name(),
            query.query_type(),
            query.query_class()
        );
    }
    let sections = [
        ("AN", &message.answers),
        ("NS", &message.authorities),
        ("AR", &message.additionals),
    ];
    for (section, records) in sections {
        for r in records {
            let _ = writeln!(
                text,
                "{section} {} {} {} {} {}",
                r.name,
                r.dns_class,
                r.ttl,
                r.record_type(),
                r.data
            );
        }
    }
    if let Some(edns) = &message.edns {
        let _ = writeln!(
            text,
            "OPT {} {} {} {:?}",
            edns.max_payload(),
            edns.version(),
            edns.rcode_high(),
            edns.options()
        );
    }
    Ok(text)
}
