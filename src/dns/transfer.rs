//! Zone transfers out, so that standard secondaries (NSD, Knot, BIND) can serve the plain
//! zones: AXFR over TCP (RFC 5936), IXFR answered with the whole zone over TCP (RFC 1995
//! section 4) and with the zone's SOA alone over UDP (section 2: a secondary that is behind
//! asks again over TCP), to the clients `--allow-transfer` lists (signed with a `--tsig-key`
//! when keys are given, [`super::tsig`]; a request whose signature fails gets NOTAUTH with a
//! TSIG record naming the error); and NOTIFY (RFC 1996) to the `--notify` secondaries for
//! every plain zone at startup and when a reload changes a zone's serial.
//!
//! The CDN zone is never transferred: its scheduled names exist only as answers computed per
//! client, so a copy would serve NXDOMAIN for every CNAME target. Every Meridian server runs
//! its own scheduler instead (DESIGN.md, "Beyond one machine").
//!
//! [`messages_over`] is the one place that decides who may transfer what, over TCP and UDP alike.
//! It does no I/O (a snapshot and a request in, encoded messages out; it counts and logs
//! what it refused); the socket loops in [`super::server`] write the messages, and [`notify`]
//! owns the one socket of a NOTIFY exchange.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use ipnet::IpNet;
use tokio::net::UdpSocket;

use super::Transport;
use super::tsig::{Rejected, Signer, TsigKey, Verified};
use crate::daemon::metrics::Metrics;
use crate::snapshot::{Shared, Snapshot};
use crate::zone::Zone;

/// Records are packed into messages of about this many bytes (Knot and NSD use 16-64 KiB).
const MESSAGE_TARGET: usize = 16 * 1024;

/// Who may transfer zones, and whom to notify of changes.
#[derive(Clone, Debug, Default)]
pub struct TransferPolicy {
    /// Networks allowed to AXFR/IXFR; empty: nobody (every transfer is REFUSED).
    pub allow: Vec<IpNet>,
    /// Secondaries sent a NOTIFY for each plain zone at startup, and when a reload changes a
    /// zone's serial.
    pub notify: Vec<SocketAddr>,
    /// When not empty, transfers must be signed with one of these keys (their answers are
    /// signed with it), and NOTIFYs are signed with the first.
    pub keys: Vec<TsigKey>,
}

impl TransferPolicy {
    /// Whether `client` may transfer (a v4-mapped address counts as IPv4).
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.allow.iter().any(|net| net.contains(&client))
    }
}

/// AXFR or IXFR when `wire` is a query with one question of that type, else `None`. Read
/// from the wire without decoding: the TCP loop asks this of every message.
pub fn transfer_type(wire: &[u8]) -> Option<RecordType> {
    // QR = 0, opcode QUERY, QDCOUNT = 1.
    if wire.len() < 12 || wire[2] & 0xF8 != 0 || wire[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12;
    loop {
        match wire.get(at) {
            Some(0) => break,
            // A compression pointer in a question is legal but never used by clients; such
            // a query goes the ordinary way (and gets REFUSED).
            Some(&len) if len < 64 => at += 1 + usize::from(len),
            _ => return None,
        }
    }
    match wire.get(at + 1..at + 3)? {
        [0, 252] => Some(RecordType::AXFR),
        [0, 251] => Some(RecordType::IXFR),
        _ => None,
    }
}

/// The answer to a transfer query from `src` over TCP: the zone between two copies of its
/// SOA, in messages of about [`MESSAGE_TARGET`] bytes, or one message carrying the refusal.
pub fn messages<'a>(
    snapshot: &'a Snapshot,
    policy: &'a TransferPolicy,
    metrics: &Metrics,
    src: SocketAddr,
    request: &[u8],
) -> Transfer<'a> {
    messages_over(snapshot, policy, metrics, src, Transport::Tcp, request)
}

/// The answer to a transfer query from `src` over `transport`: over TCP as [`messages`];
/// over UDP, for IXFR, the zone's SOA alone in one message (RFC 1995 section 2: a secondary
/// that is behind asks again over TCP). AXFR over UDP is always refused (RFC 5936 4.2).
pub fn messages_over<'a>(
    snapshot: &'a Snapshot,
    policy: &'a TransferPolicy,
    metrics: &Metrics,
    src: SocketAddr,
    transport: Transport,
    request: &[u8],
) -> Transfer<'a> {
    let message = match Message::from_vec(request) {
        Ok(message) => message,
        Err(e) => {
            tracing::debug!(%src, "malformed transfer query: {e}");
            return Transfer::refusal(request_id(request), None, ResponseCode::FormErr);
        }
    };
    let id = message.metadata.id;
    let Some(query) = message
        .queries
        .first()
        .filter(|_| message.queries.len() == 1)
    else {
        return Transfer::refusal(id, None, ResponseCode::FormErr);
    };
    let qtype = query.query_type();
    let refused = |why: &str| {
        metrics.transfers_refused.fetch_add(1, Ordering::Relaxed);
        // A UDP source can be forged: one log line per datagram would let anyone flood it.
        match transport {
            Transport::Tcp => {
                tracing::info!(%src, zone = %query.name(), %qtype, "zone transfer refused: {why}")
            }
            Transport::Udp => {
                tracing::debug!(%src, zone = %query.name(), %qtype, "zone transfer refused over UDP: {why}")
            }
        }
    };
    let refuse = |rcode: ResponseCode, why: &str| {
        refused(why);
        Transfer::refusal(id, Some(query.clone()), rcode)
    };
    if query.query_class() != DNSClass::IN {
        return refuse(ResponseCode::Refused, "class is not IN");
    }
    if transport == Transport::Udp && qtype == RecordType::AXFR {
        return refuse(ResponseCode::Refused, "AXFR is only served over TCP");
    }
    if !policy.allows(src.ip()) {
        return refuse(
            ResponseCode::Refused,
            "the client is not in --allow-transfer",
        );
    }
    let signer = match super::tsig::verify(&policy.keys, request) {
        Verified::Valid { key, mac } => Some(Signer::new(key, Some(mac))),
        Verified::Unsigned if policy.keys.is_empty() => None,
        Verified::Unsigned => {
            return refuse(
                ResponseCode::Refused,
                "unsigned, and transfers need a TSIG key (--tsig-key)",
            );
        }
        Verified::Invalid(rejected) => {
            refused(&rejected.why);
            let mut refusal = Transfer::refusal(id, Some(query.clone()), ResponseCode::NotAuth);
            refusal.signing = Signing::Rejected(rejected);
            return refusal;
        }
    };
    // From here the request was signed if keys are given: so is the answer, refusals too.
    let refuse = |rcode: ResponseCode, why: &str, signer: Option<Signer<'a>>| {
        let mut refusal = refuse(rcode, why);
        refusal.signing = signer.map_or(Signing::None, Signing::Chain);
        refusal
    };
    let Some(zone) = snapshot.zones.get(&LowerName::new(query.name())) else {
        return refuse(ResponseCode::NotAuth, "not a zone served here", signer);
    };
    if snapshot
        .cdn
        .as_ref()
        .is_some_and(|cdn| zone.is_named(&cdn.zone))
    {
        return refuse(
            ResponseCode::Refused,
            "the CDN zone is scheduled per client and is not transferred",
            signer,
        );
    }
    if transport == Transport::Udp {
        tracing::debug!(%src, zone = %zone.origin(), serial = zone.serial(), "IXFR over UDP: answered with the SOA");
        return Transfer::soa_only(id, query.clone(), zone, signer);
    }
    metrics.transfers_ok.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        %src,
        zone = %zone.origin(),
        serial = zone.serial(),
        records = zone.record_count(),
        %qtype,
        "zone transfer"
    );
    Transfer::zone(id, query.clone(), zone, signer)
}

/// The messages of one transfer, encoded as they are asked for.
pub struct Transfer<'a> {
    id: u16,
    /// Sent in the first message only.
    question: Option<Query>,
    rcode: ResponseCode,
    records: Box<dyn Iterator<Item = Record> + Send + 'a>,
    /// A record that did not fit in the previous message.
    pending: Option<Record>,
    done: bool,
    signing: Signing<'a>,
}

/// The TSIG on a transfer's messages.
enum Signing<'a> {
    /// The request was not signed.
    None,
    /// Each message, in a chain from the request's MAC.
    Chain(Signer<'a>),
    /// The request's signature failed: the refusal carries the TSIG error.
    Rejected(Box<Rejected<'a>>),
}

impl<'a> Transfer<'a> {
    fn zone(id: u16, question: Query, zone: &'a Zone, signer: Option<Signer<'a>>) -> Transfer<'a> {
        let soa = zone.soa();
        let records = std::iter::once(soa.clone())
            .chain(zone.transfer_records())
            .chain(std::iter::once(soa));
        Transfer {
            id,
            question: Some(question),
            rcode: ResponseCode::NoError,
            records: Box::new(records),
            pending: None,
            done: false,
            signing: signer.map_or(Signing::None, Signing::Chain),
        }
    }

    /// The zone's SOA alone, in one message (IXFR over UDP).
    fn soa_only(
        id: u16,
        question: Query,
        zone: &'a Zone,
        signer: Option<Signer<'a>>,
    ) -> Transfer<'a> {
        Transfer {
            id,
            question: Some(question),
            rcode: ResponseCode::NoError,
            records: Box::new(std::iter::once(zone.soa())),
            pending: None,
            done: false,
            signing: signer.map_or(Signing::None, Signing::Chain),
        }
    }

    fn refusal(id: u16, question: Option<Query>, rcode: ResponseCode) -> Transfer<'a> {
        Transfer {
            id,
            question,
            rcode,
            records: Box::new(std::iter::empty()),
            pending: None,
            done: false,
            signing: Signing::None,
        }
    }

    /// NOERROR for a zone, else the refusal's code.
    pub fn rcode(&self) -> ResponseCode {
        self.rcode
    }
}

impl Iterator for Transfer<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        let mut message = Message::new(self.id, MessageType::Response, OpCode::Query);
        message.metadata.authoritative = self.rcode == ResponseCode::NoError;
        message.metadata.response_code = self.rcode;
        let first = self.question.is_some();
        message.queries.extend(self.question.take());
        let mut size: usize = 12;
        while let Some(record) = self.pending.take().or_else(|| self.records.next()) {
            let len = record.to_bytes().map_or(usize::MAX, |bytes| bytes.len());
            if !message.answers.is_empty() && size.saturating_add(len) > MESSAGE_TARGET {
                self.pending = Some(record);
                break;
            }
            size = size.saturating_add(len);
            message.answers.push(record);
        }
        if self.pending.is_none() {
            self.done = true;
        }
        if message.answers.is_empty() && !first {
            return None;
        }
        let mut out = Vec::with_capacity(size + 64);
        if message.emit(&mut BinEncoder::new(&mut out)).is_err()
            || out.len() > usize::from(u16::MAX)
        {
            // A record too large for any message: end the transfer with an error the
            // secondary reports, rather than a partial zone it would accept.
            self.done = true;
            return Some(header_only(self.id, ResponseCode::ServFail));
        }
        let signed = match &mut self.signing {
            Signing::None => return Some(out),
            Signing::Chain(signer) => signer.sign(out),
            Signing::Rejected(rejected) => rejected.sign(out),
        };
        match signed {
            Ok(signed) => Some(signed),
            Err(e) => {
                tracing::error!("cannot sign a transfer message: {e}");
                self.done = true;
                Some(header_only(self.id, ResponseCode::ServFail))
            }
        }
    }
}

fn request_id(request: &[u8]) -> u16 {
    match request {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn header_only(id: u16, rcode: ResponseCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x80, rcode.low()]);
    out.extend_from_slice(&[0; 8]);
    out
}

/// A zone to announce to the secondaries: its name and current SOA.
pub struct ZoneNotice {
    zone: Name,
    soa: Record,
}

impl ZoneNotice {
    fn of(zone: &Zone) -> ZoneNotice {
        ZoneNotice {
            zone: zone.origin().clone(),
            soa: zone.soa(),
        }
    }
}

/// Sends a NOTIFY for each changed zone to each secondary, in the background (each exchange
/// retries on its own; the reload does not wait).
pub fn notify_secondaries(
    shared: &Arc<Shared>,
    targets: &[SocketAddr],
    key: Option<&TsigKey>,
    zones: Vec<ZoneNotice>,
) {
    for ZoneNotice { zone, soa } in zones {
        for &target in targets {
            let (shared, zone, soa) = (shared.clone(), zone.clone(), soa.clone());
            let key = key.cloned();
            tokio::spawn(async move {
                match notify(&zone, &soa, target, key.as_ref()).await {
                    Ok(rcode) => {
                        shared
                            .metrics
                            .notifies_answered
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%zone, %target, %rcode, "NOTIFY answered");
                    }
                    Err(error) => {
                        shared
                            .metrics
                            .notifies_failed
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%zone, "NOTIFY failed: {error}");
                    }
                }
            });
        }
    }
}

/// The zones a secondary should hear about at startup: every zone but the CDN zone, as
/// Knot and NSD notify when they load a zone (a secondary that missed changes while we were
/// down catches up without waiting for its SOA refresh).
pub fn plain_zones(snapshot: &Snapshot) -> Vec<ZoneNotice> {
    plain(snapshot).map(ZoneNotice::of).collect()
}

/// The zones a secondary should hear about after a reload from `old` to `new`: zones whose
/// serial changed and zones that are new; never the CDN zone.
pub fn changed_zones(old: &Snapshot, new: &Snapshot) -> Vec<ZoneNotice> {
    plain(new)
        .filter(|zone| {
            old.zones
                .get(&LowerName::new(zone.origin()))
                .is_none_or(|before| before.serial() != zone.serial())
        })
        .map(ZoneNotice::of)
        .collect()
}

/// The zones of `snapshot` that may be transferred: all but the CDN zone.
fn plain(snapshot: &Snapshot) -> impl Iterator<Item = &Zone> {
    let cdn_zone = snapshot.cdn.as_ref().map(|cdn| cdn.zone.as_str());
    snapshot
        .zones
        .zones()
        .filter(move |zone| !cdn_zone.is_some_and(|name| zone.is_named(name)))
}

/// How long to wait for a secondary's NOTIFY response before sending again, and how many
/// times to send (RFC 1996 3.6: retry, then give up; the secondary's refresh timer remains).
const NOTIFY_WAIT: Duration = Duration::from_secs(2);
const NOTIFY_TRIES: u32 = 5;

/// Sends a NOTIFY for `zone` (with its SOA) to `target` until it is answered or the tries
/// run out. Returns the secondary's response code, or why none came.
/// Signed with `key` when one is given.
pub async fn notify(
    zone: &Name,
    soa: &Record,
    target: SocketAddr,
    key: Option<&TsigKey>,
) -> Result<ResponseCode, String> {
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect(target)
        .await
        .map_err(|e| format!("cannot reach {target}: {e}"))?;
    let id: u16 = rand_id();
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message
        .queries
        .push(Query::query(zone.clone(), RecordType::SOA));
    message.answers.push(soa.clone());
    let mut wire = message
        .to_vec()
        .map_err(|e| format!("cannot encode the NOTIFY: {e}"))?;
    if let Some(key) = key {
        wire = Signer::new(key, None).sign(wire)?;
    }
    let mut buf = vec![0u8; 4096];
    for _ in 0..NOTIFY_TRIES {
        socket
            .send(&wire)
            .await
            .map_err(|e| format!("cannot send to {target}: {e}"))?;
        let deadline = tokio::time::Instant::now() + NOTIFY_WAIT;
        // Datagrams that are not the answer (wrong ID, garbage) are skipped until the
        // deadline; a refused port (ICMP) is reported at once.
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            let len = received.map_err(|e| format!("{target}: {e}"))?;
            if let Ok(reply) = Message::from_vec(&buf[..len])
                && reply.metadata.id == id
                && reply.metadata.message_type == MessageType::Response
                && reply.metadata.op_code == OpCode::Notify
            {
                return Ok(reply.metadata.response_code);
            }
        }
    }
    Err(format!("{target} did not answer {NOTIFY_TRIES} NOTIFYs"))
}

/// A message ID that a spoofer cannot guess from the clock alone.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(std::time::SystemTime::now()) & 0xFFFF) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(qtype: u16) -> Vec<u8> {
        let mut wire = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        wire.extend_from_slice(b"\x07example\x03com\x00");
        wire.extend_from_slice(&qtype.to_be_bytes());
        wire.extend_from_slice(&[0, 1]);
        wire
    }

    #[test]
    fn transfer_queries_are_recognised_from_the_wire() {
        assert_eq!(transfer_type(&query(252)), Some(RecordType::AXFR));
        assert_eq!(transfer_type(&query(251)), Some(RecordType::IXFR));
        assert_eq!(transfer_type(&query(1)), None);
        let mut response = query(252);
        response[2] |= 0x80;
        assert_eq!(transfer_type(&response), None);
        assert_eq!(transfer_type(&query(252)[..20]), None);
        assert_eq!(transfer_type(&[0; 5]), None);
    }

    #[test]
    fn the_allow_list_matches_networks_and_v4_mapped_clients() {
        let policy = TransferPolicy {
            allow: vec![
                "127.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            ..TransferPolicy::default()
        };
        assert!(policy.allows("127.1.2.3".parse().unwrap()));
        assert!(policy.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(policy.allows("2001:db8::1".parse().unwrap()));
        assert!(!policy.allows("10.0.0.1".parse().unwrap()));
        assert!(!TransferPolicy::default().allows("127.0.0.1".parse().unwrap()));
    }
}
