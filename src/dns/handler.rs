//! One DNS message in, one message out: header checks, EDNS, the question, the
//! authoritative answer (with CNAME chasing across the zones we serve), and encoding with
//! truncation for UDP.
//!
//! Never panics on input: anything that does not decode gets FORMERR (or is dropped when
//! not even a header can be read back). Does no I/O; the socket loops in [`super::server`]
//! call [`answer`].

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::cache::Cacheability;
use super::{MAX_UDP_PAYLOAD, Transport};
use super::{chaos, ecs};
use crate::cdn::TargetMatch;
use crate::daemon::metrics::{Metrics, ScheduledCount};
use crate::snapshot::Snapshot;

use super::schedule;

/// Longest CNAME chain followed before answering with what we have (loop protection).
const MAX_CNAME_CHAIN: usize = 12;

/// What was answered, for metrics and logs.
#[derive(Debug, Clone)]
pub struct Answered {
    pub qtype: Option<RecordType>,
    pub rcode: ResponseCode,
    pub truncated: bool,
    /// Whether the encoded answer may be replayed for the same query bytes.
    pub cacheability: Cacheability,
    /// What the answer counts as in the scheduling metrics, when it was scheduled.
    pub scheduled: Option<Arc<ScheduledCount>>,
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
    metrics: &Metrics,
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
    let (response, cacheability, scheduled) = respond(snapshot, metrics, client, &message, request);
    let qtype = message.queries.first().map(|q| q.query_type());
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
        rcode,
        truncated,
        cacheability,
        scheduled,
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
        rcode,
        truncated: false,
        cacheability: Cacheability::Never,
        scheduled: None,
    }
}

/// Build the response message (not yet encoded). `wire` is the request as received, for the
/// one check hickory's decoding loses (the ECS option's declared length).
fn respond(
    snapshot: &Snapshot,
    metrics: &Metrics,
    client: Client,
    request: &Message,
    wire: &[u8],
) -> (Message, Cacheability, Option<Arc<ScheduledCount>>) {
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

    let resolution = resolve(
        snapshot,
        metrics,
        query.name(),
        qtype,
        client.src.ip(),
        client_net.as_ref(),
    );
    let scope = resolution.ecs_scope;
    response.metadata.authoritative = resolution.authoritative;
    response.metadata.response_code = resolution.rcode;
    response.answers = resolution.answers;
    response.authorities = resolution.authority;
    response.additionals = resolution.additional;
    if let (Some(net), Some(edns)) = (client_net, response.edns.as_mut()) {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ecs::echo(&net, scope)));
    }
    let cacheability = if resolution.per_source {
        Cacheability::PerSource
    } else {
        Cacheability::Static
    };
    (response, cacheability, resolution.scheduled)
}

/// The authoritative answer to one question, chased through CNAMEs.
struct Resolution {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additional: Vec<Record>,
    /// The ECS scope the answer is valid for: 0 unless an answer depended on location.
    ecs_scope: u8,
    /// The answer depended on the source address (scheduled without ECS).
    per_source: bool,
    scheduled: Option<Arc<ScheduledCount>>,
}

fn resolve(
    snapshot: &Snapshot,
    metrics: &Metrics,
    qname: &Name,
    qtype: RecordType,
    source: std::net::IpAddr,
    client_net: Option<&ecs::ClientNet>,
) -> Resolution {
    let mut resolution = Resolution {
        rcode: ResponseCode::Refused,
        authoritative: false,
        answers: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
        ecs_scope: 0,
        per_source: false,
        scheduled: None,
    };
    let mut name = qname.clone();
    let mut seen: Vec<LowerName> = Vec::new();
    for hop in 0..MAX_CNAME_CHAIN {
        let lower = LowerName::from(&name);
        let Some(zone) = snapshot.zones.find_for_query(&lower, qtype) else {
            // Out of our zones: the first hop is REFUSED, a chain ends here with what it has.
            if hop > 0 {
                resolution.rcode = ResponseCode::NoError;
            }
            return resolution;
        };
        if let Some(cdn) = snapshot.cdn.as_deref() {
            match cdn.match_target(lower.iter()) {
                TargetMatch::Scheduled(domain) => {
                    let asked = schedule::Asked {
                        name: &name,
                        qtype,
                        source,
                        client_net,
                    };
                    let scheduled = schedule::answer(snapshot, metrics, cdn, domain, &asked);
                    if hop == 0 {
                        resolution.authoritative = true;
                    }
                    resolution.rcode = ResponseCode::NoError;
                    resolution.authority = if scheduled.records.is_empty() {
                        vec![zone.negative_soa()]
                    } else {
                        Vec::new()
                    };
                    resolution.additional = Vec::new();
                    resolution.answers.extend(scheduled.records);
                    resolution.ecs_scope = scheduled.ecs_scope;
                    resolution.per_source |= scheduled.per_source;
                    resolution.scheduled = scheduled.count;
                    return resolution;
                }
                _ if !zone.name_exists(&lower) && cdn.is_scheduling_ancestor(lower.iter()) => {
                    if hop == 0 {
                        resolution.authoritative = true;
                    }
                    resolution.rcode = ResponseCode::NoError;
                    resolution.authority = vec![zone.negative_soa()];
                    resolution.additional = Vec::new();
                    return resolution;
                }
                _ => {}
            }
        }
        seen.push(lower);
        let lookup = zone.lookup(&name, qtype);
        if hop == 0 {
            resolution.authoritative = lookup.authoritative;
        }
        resolution.rcode = lookup.rcode;
        resolution.answers.extend(lookup.answers);
        resolution.authority = lookup.authority;
        resolution.additional = lookup.additional;
        match lookup.cname_target {
            Some(target) if !seen.contains(&LowerName::from(&target)) => name = target,
            _ => return resolution,
        }
    }
    resolution
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
