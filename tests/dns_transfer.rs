//! Zone transfers out and NOTIFY, so that standard secondaries can serve the plain zones:
//! `dig AXFR` from an allowed client, refusals (not allowed, the CDN zone, a zone not served),
//! and a real Knot DNS secondary that follows an edited zone through NOTIFY.

mod common;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dns::{DEADLINE, Server, copy_fixture, dig, query_message, write_atomically};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm, TsigError, make_tsig_record, message_tbs, signed_bitmessage_to_buf,
};
use hickory_proto::rr::{Name, RData, RecordType};

/// Generated hosts added to `customer.com` so that its transfer needs several messages.
const HOSTS: usize = 3000;

fn zone_with_hosts(serial: u32, extra: &str) -> String {
    zone_with_n_hosts(serial, extra, HOSTS)
}

fn zone_with_n_hosts(serial: u32, extra: &str, hosts: usize) -> String {
    let mut zone = format!(
        "$ORIGIN customer.com.\n$TTL 3600\n@ IN SOA ns1.cdn.example.net. hostmaster {serial} 7200 3600 1209600 300\n  IN NS ns1.cdn.example.net.\nimg IN CNAME img.customer.com.w.cdn.example.net.\nwww IN A 192.0.2.80\n{extra}"
    );
    for i in 0..hosts {
        let _ = writeln!(zone, "host{i} IN A 10.{}.{}.1", i / 256 % 256, i % 256);
    }
    zone
}

/// Every message of one transfer over TCP, until the closing SOA (or an error message).
fn transfer(server: std::net::SocketAddr, zone: &str, qtype: RecordType) -> Vec<Message> {
    transfer_wire(server, &query_message(zone, qtype, false, None))
        .iter()
        .map(|wire| Message::from_vec(wire).unwrap())
        .collect()
}

/// [`transfer`] for a given request, each message as received.
fn transfer_wire(server: std::net::SocketAddr, request: &Message) -> Vec<Vec<u8>> {
    let mut stream = TcpStream::connect(server).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let bytes = request.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stream.write_all(&bytes).unwrap();
    let mut messages = Vec::new();
    let mut soas = 0;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).unwrap();
        let message = Message::from_vec(&buf).unwrap();
        soas += message
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        let end = message.metadata.response_code != ResponseCode::NoError || soas >= 2;
        messages.push(buf);
        if end {
            return messages;
        }
    }
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn an_allowed_client_transfers_a_plain_zone_with_dig() {
    let dir = copy_fixture("gslb-dns");
    std::fs::write(
        dir.path().join("customer.com.zone"),
        zone_with_hosts(7, "mail IN MX 10 mx.example.org.\n"),
    )
    .unwrap();
    let s = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .start();

    let out = dig(s.dns, &["customer.com", "AXFR", "+onesoa"]);
    let records: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect();
    assert!(
        records[0].contains("SOA") && records[0].contains(" 7 7200 3600"),
        "{out}"
    );
    for expected in [
        "customer.com.\t\t3600\tIN\tNS\tns1.cdn.example.net.",
        "img.customer.com.\t3600\tIN\tCNAME\timg.customer.com.w.cdn.example.net.",
        "mail.customer.com.\t3600\tIN\tMX\t10 mx.example.org.",
        "host0.customer.com.\t3600\tIN\tA\t10.0.0.1",
        "host2999.customer.com.\t3600\tIN\tA\t10.11.183.1",
    ] {
        assert!(
            records.contains(&expected),
            "missing {expected:?} in:\n{out}"
        );
    }
    // SOA, NS, CNAME, www A, MX and the hosts, once each (dig +onesoa drops the last SOA).
    assert_eq!(records.len(), 5 + HOSTS, "{out}");

    // The same transfer without dig: SOA first and last, several messages, AA set.
    let messages = transfer(s.dns, "customer.com.", RecordType::AXFR);
    assert!(messages.len() > 1, "{} messages", messages.len());
    assert!(messages.iter().all(|m| m.metadata.authoritative));
    let all: Vec<_> = messages.iter().flat_map(|m| m.answers.iter()).collect();
    assert_eq!(all.first().unwrap().record_type(), RecordType::SOA);
    assert_eq!(all.last().unwrap().record_type(), RecordType::SOA);
    assert_eq!(all.len(), 5 + HOSTS + 1);
    assert_eq!(messages[0].queries.len(), 1);
    assert!(messages[1..].iter().all(|m| m.queries.is_empty()));

    // IXFR gets the whole zone in the same form (RFC 1995 section 4).
    let ixfr = transfer(s.dns, "customer.com.", RecordType::IXFR);
    assert_eq!(
        ixfr.iter().map(|m| m.answers.len()).sum::<usize>(),
        all.len()
    );
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn transfers_are_refused_unless_allowed_and_never_for_the_cdn_zone() {
    let dir = copy_fixture("gslb-dns");
    let closed = Server::with_zones(dir.path()).start();
    assert!(
        dig(closed.dns, &["customer.com", "AXFR"]).contains("Transfer failed."),
        "no --allow-transfer: nobody may transfer"
    );
    let refused = transfer(closed.dns, "customer.com.", RecordType::AXFR);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].metadata.response_code, ResponseCode::Refused);
    assert!(refused[0].answers.is_empty());

    // Allowed, but only 127.0.0.2: a client on 127.0.0.1 is still refused.
    let narrow = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.2")
        .start();
    let refused = transfer(narrow.dns, "customer.com.", RecordType::AXFR);
    assert_eq!(refused[0].metadata.response_code, ResponseCode::Refused);

    let open = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .start();
    let cdn = transfer(open.dns, "cdn.example.net.", RecordType::AXFR);
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].metadata.response_code, ResponseCode::Refused);
    open.wait_for("the refusal logged with its reason", || {
        open.log()
            .contains("the CDN zone is scheduled per client")
            .then_some(())
    });
    let unknown = transfer(open.dns, "not-served.example.", RecordType::AXFR);
    assert_eq!(unknown[0].metadata.response_code, ResponseCode::NotAuth);
    // AXFR over UDP is not a thing (RFC 5936 4.2): refused, whoever asks.
    let udp = common::dns::udp_exchange(
        open.dns,
        &query_message("customer.com.", RecordType::AXFR, false, None),
    )
    .unwrap();
    assert_eq!(udp.metadata.response_code, ResponseCode::Refused);

    // The CDN zone, the zone not served and the AXFR over UDP.
    let (_, metrics) = open.admin("GET", "/metrics");
    assert!(
        metrics.contains("meridian_zone_transfers_refused_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meridian_dns_queries_total{qtype=\"AXFR\",rcode=\"NOTAUTH\"} 1"),
        "{metrics}"
    );
}

/// A Knot DNS process serving `customer.com` as a secondary of `primary`.
struct KnotSecondary {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl KnotSecondary {
    /// Starts knotd on 127.0.0.1:`port`; with `tsig` (name, base64 secret), transfers are
    /// signed with that hmac-sha256 key and only NOTIFYs signed with it are accepted.
    fn start_on(
        primary: std::net::SocketAddr,
        port: u16,
        tsig: Option<(&str, &str)>,
    ) -> KnotSecondary {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("knot.conf");
        let work = dir.path().display();
        let (keys, use_key) = match tsig {
            Some((name, secret)) => (
                format!("key:\n  - id: {name}\n    algorithm: hmac-sha256\n    secret: {secret}\n"),
                format!("    key: {name}\n"),
            ),
            None => (String::new(), String::new()),
        };
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "server:\n    rundir: \"{work}\"\n    listen: 127.0.0.1@{port}\n\
                 database:\n    storage: \"{work}/db\"\n\
                 log:\n  - target: stderr\n    any: info\n\
                 {keys}\
                 remote:\n  - id: primary\n    address: {}@{}\n{use_key}\
                 acl:\n  - id: notify_from_primary\n    address: 127.0.0.0/8\n    action: notify\n{use_key}\
                 template:\n  - id: default\n    storage: \"{work}\"\n    zonefile-sync: -1\n\
                 zone:\n  - domain: customer.com\n    master: primary\n    acl: notify_from_primary\n",
                primary.ip(),
                primary.port()
            ),
        )
        .unwrap();
        // Debian installs it in /usr/sbin, which a CI user's PATH may lack.
        let knotd = ["/usr/sbin/knotd", "/usr/local/sbin/knotd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("knotd");
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd is installed (apt-get install knot)");
        KnotSecondary {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            _dir: dir,
        }
    }

    /// Polls the secondary until `name A` answers `address`.
    fn wait_for_answer(&self, name: &str, address: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let out = dig(self.addr, &[name, "A", "+short"]);
            if out.lines().any(|l| l.trim() == address) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the secondary never answered {name} A {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for KnotSecondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP, below the ephemeral range (where the kernel never
/// picks ports for other tests' sockets on its own).
fn free_port() -> u16 {
    // Tests of this binary run in parallel: each call starts somewhere else.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = std::process::id() as usize + call * 3001;
    (0..1000)
        .map(|i| 20_000 + (seed * 7919 + i * 104_729) % 12_000)
        .find(|&port| {
            let addr = ("127.0.0.1", port as u16);
            std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok()
        })
        .expect("a free port below the ephemeral range") as u16
}

/// The operator's flow: Knot is a secondary of Meridian for `customer.com`; it loads the
/// zone by AXFR, and after an edit of the zone file Meridian's NOTIFY makes it transfer the
/// new version at once (its SOA refresh is two hours away).
#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs knotd and dig: --features peer-tests"
)]
fn a_knot_secondary_follows_the_zone_through_notify() {
    follow_through_notify(None);
}

/// The same with TSIG, as secondaries across the internet run it: Knot signs its requests
/// and checks every message of the (multi-message) answer and the NOTIFY.
#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs knotd and dig: --features peer-tests"
)]
fn a_knot_secondary_follows_the_zone_through_signed_transfers_and_notify() {
    follow_through_notify(Some(("xfr-key", TSIG_SECRET)));
}

const TSIG_SECRET: &str = "a2VlcC10aGlzLXNlY3JldC1vdXQtb2YtdGhlLWxvZ3Mh";

fn follow_through_notify(tsig: Option<(&str, &str)>) {
    let dir = copy_fixture("gslb-dns");
    let zone_file = dir.path().join("customer.com.zone");
    std::fs::write(&zone_file, zone_with_hosts(1, "")).unwrap();
    // Knot's port must be known before Meridian starts (for --notify), and Meridian's
    // address before Knot starts: reserve Knot's port first.
    let knot_port = free_port();
    let mut builder = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .arg("--notify")
        .arg(&format!("127.0.0.1:{knot_port}"));
    if let Some((name, secret)) = tsig {
        builder = builder
            .arg("--tsig-key")
            .arg(&format!("hmac-sha256:{name}:{secret}"));
    }
    let s = builder.start();
    let knot = KnotSecondary::start_on(s.dns, knot_port, tsig);
    knot.wait_for_answer("host2999.customer.com", "10.11.183.1", DEADLINE);

    write_atomically(&zone_file, &zone_with_hosts(2, "added IN A 192.0.2.99\n"));
    knot.wait_for_answer("added.customer.com", "192.0.2.99", DEADLINE);
    // The startup NOTIFY went out before Knot ran (and failed); the reload's was answered.
    s.wait_for("the NOTIFY counted and logged as answered", || {
        (metric(&s, "meridian_notify_answered_total") >= 1 && s.log().contains("NOTIFY answered"))
            .then_some(())
    });
}

/// The value of a counter without labels.
fn metric(s: &Server, name: &str) -> u64 {
    let (_, metrics) = s.admin("GET", "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

/// A secondary that asks for a large zone and then stops reading must not hold its
/// connection, nor the server's shutdown, forever: the write times out like an idle client.
#[test]
fn a_secondary_that_stops_reading_does_not_hold_the_server() {
    let dir = copy_fixture("gslb-dns");
    // About 5 MB of transfer: more than the socket buffers on both sides hold.
    std::fs::write(
        dir.path().join("customer.com.zone"),
        zone_with_n_hosts(1, "", 200_000),
    )
    .unwrap();
    let s = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .start();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&s.dns.into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    let bytes = query_message("customer.com.", RecordType::AXFR, false, None)
        .to_vec()
        .unwrap();
    stalled
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stalled.write_all(&bytes).unwrap();
    s.wait_for("the transfer to start", || {
        let (_, metrics) = s.admin("GET", "/metrics");
        metrics
            .contains("meridian_zone_transfers_total 1")
            .then_some(())
    });
    // Never read; stop the server: it must exit (within the helper's deadline).
    assert!(s.terminate().success());
    drop(stalled);
}

/// With `--tsig-key`, a transfer must be signed with that key: `dig -y` gets the zone (and
/// checks every message's signature), unsigned or wrongly signed requests do not.
#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn with_a_tsig_key_only_signed_transfers_are_served() {
    let dir = copy_fixture("gslb-dns");
    std::fs::write(dir.path().join("customer.com.zone"), zone_with_hosts(3, "")).unwrap();
    let key = format!("hmac-sha256:xfr-key:{TSIG_SECRET}");
    let s = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .arg("--tsig-key")
        .arg(&key)
        .start();
    let signed = dig(s.dns, &["-y", &key, "customer.com", "AXFR"]);
    assert!(signed.contains("host2999.customer.com."), "{signed}");
    let size = signed
        .lines()
        .find(|l| l.contains("XFR size"))
        .unwrap_or_default();
    assert!(
        !size.contains("messages 1,"),
        "several signed messages: {size}"
    );
    assert!(
        !signed.contains("verify"),
        "dig checked every signature: {signed}"
    );

    assert!(dig(s.dns, &["customer.com", "AXFR"]).contains("Transfer failed."));
    let refused = transfer(s.dns, "customer.com.", RecordType::AXFR);
    assert_eq!(refused[0].metadata.response_code, ResponseCode::Refused);
    let wrong = dig(
        s.dns,
        &[
            "-y",
            "hmac-sha256:xfr-key:b3RoZXItc2VjcmV0",
            "customer.com",
            "AXFR",
        ],
    );
    assert!(wrong.contains("Transfer failed."), "{wrong}");
    s.wait_for("the bad signature logged", || {
        s.log().contains("bad TSIG signature").then_some(())
    });
}

/// A request that fails TSIG gets NOTAUTH with a TSIG record naming the error (RFC 8945
/// 5.3.2), as BIND and Knot answer: dig and the secondary's operator see why.
#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn a_failed_tsig_is_answered_with_its_error() {
    let dir = copy_fixture("gslb-dns");
    let key = format!("hmac-sha256:xfr-key:{TSIG_SECRET}");
    let s = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .arg("--tsig-key")
        .arg(&key)
        .start();
    let tsig_line = |out: &str| {
        assert!(
            out.contains(";; Couldn't verify signature: tsig indicates error"),
            "{out}"
        );
        assert!(out.contains("Transfer failed."), "{out}");
        out.lines()
            .find(|l| l.contains("\tTSIG\t"))
            .unwrap_or_else(|| panic!("no TSIG record in:\n{out}"))
            .to_string()
    };

    // The right key name with another secret.
    let wrong_secret = dig(
        s.dns,
        &[
            "-y",
            "hmac-sha256:xfr-key:b3RoZXItc2VjcmV0",
            "customer.com",
            "AXFR",
        ],
    );
    let line = tsig_line(&wrong_secret);
    assert!(line.starts_with("xfr-key."), "{line}");
    assert!(line.contains(" BADSIG "), "{line}");

    // A key the server does not have.
    let unknown = dig(
        s.dns,
        &[
            "-y",
            &format!("hmac-sha256:other-key:{TSIG_SECRET}"),
            "customer.com",
            "AXFR",
        ],
    );
    let line = tsig_line(&unknown);
    assert!(line.starts_with("other-key."), "{line}");
    assert!(line.contains(" BADKEY "), "{line}");

    // Signed an hour ago: BADTIME, signed with the key over the request's MAC, with the
    // request's time and the server's in Other Data.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (request, request_mac) = signed_query("customer.com.", "xfr-key.", now - 3600);
    let answer = transfer_wire(s.dns, &request);
    assert_eq!(answer.len(), 1);
    let message = Message::from_vec(&answer[0]).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::NotAuth);
    assert!(message.answers.is_empty());
    let tsig = &message.signature.as_ref().expect("a TSIG record").data;
    assert_eq!(tsig.error, Some(TsigError::BadTime));
    assert_eq!(tsig.time, now - 3600);
    let server_time = tsig
        .other
        .iter()
        .fold(0u64, |time, &byte| time << 8 | u64::from(byte));
    assert_eq!(tsig.other.len(), 6);
    assert!(server_time.abs_diff(now) < 300, "{server_time} vs {now}");
    let (tbs, record) = signed_bitmessage_to_buf(&answer[0], Some(&request_mac), true).unwrap();
    TsigAlgorithm::HmacSha256
        .verify_mac(&secret(), &tbs, &record.data.mac)
        .expect("BADTIME is signed with the key");

    s.wait_for("the three refusals logged", || {
        let log = s.log();
        (log.contains("bad TSIG signature with key xfr-key.")
            && log.contains("unknown TSIG key other-key.")
            && log.contains("check the clocks"))
        .then_some(())
    });
    let (_, metrics) = s.admin("GET", "/metrics");
    assert!(
        metrics.contains("meridian_zone_transfers_refused_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meridian_dns_queries_total{qtype=\"AXFR\",rcode=\"NOTAUTH\"} 3"),
        "{metrics}"
    );
}

fn secret() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(TSIG_SECRET)
        .unwrap()
}

/// An AXFR query for `zone` signed with `key_name` and [`TSIG_SECRET`] as of `time`;
/// returns it and its MAC.
fn signed_query(zone: &str, key_name: &str, time: u64) -> (Message, Vec<u8>) {
    let mut request = query_message(zone, RecordType::AXFR, false, None);
    let key_name = Name::from_ascii(key_name).unwrap();
    let stub = TSIG::new(
        TsigAlgorithm::HmacSha256,
        time,
        300,
        Vec::new(),
        request.metadata.id,
        None,
        Vec::new(),
    );
    let tbs = message_tbs(&request, &stub, &key_name).unwrap();
    let mac = TsigAlgorithm::HmacSha256.mac_data(&secret(), &tbs).unwrap();
    request.set_signature(Box::new(make_tsig_record(
        key_name,
        stub.set_mac(mac.clone()),
    )));
    (request, mac)
}

/// An IXFR over UDP gets the zone's current SOA alone, as from BIND and Knot (RFC 1995
/// section 2): a secondary that is behind asks again over TCP. The same clients as over TCP
/// may ask; AXFR over UDP stays REFUSED.
#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn ixfr_over_udp_is_answered_with_the_current_soa() {
    let dir = copy_fixture("gslb-dns");
    std::fs::write(dir.path().join("customer.com.zone"), zone_with_hosts(5, "")).unwrap();
    let s = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .start();
    let out = dig(s.dns, &["customer.com", "IXFR=1", "+notcp"]);
    assert!(out.contains("(UDP)"), "{out}");
    let records: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect();
    assert_eq!(records.len(), 1, "{out}");
    assert!(
        records[0].starts_with("customer.com.")
            && records[0].contains("\tSOA\t")
            && records[0].contains(" 5 7200 3600 1209600 300"),
        "{out}"
    );

    let udp = |server, zone: &str, qtype| {
        common::dns::udp_exchange(server, &query_message(zone, qtype, false, None)).unwrap()
    };
    let answer = udp(s.dns, "customer.com.", RecordType::IXFR);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    assert_eq!(answer.answers.len(), 1);
    assert!(answer.authorities.is_empty() && answer.additionals.is_empty());
    match &answer.answers[0].data {
        RData::SOA(soa) => assert_eq!(soa.serial, 5),
        other => panic!("not a SOA: {other:?}"),
    }
    let cdn = udp(s.dns, "cdn.example.net.", RecordType::IXFR);
    assert_eq!(cdn.metadata.response_code, ResponseCode::Refused);
    assert!(cdn.answers.is_empty());
    let unknown = udp(s.dns, "not-served.example.", RecordType::IXFR);
    assert_eq!(unknown.metadata.response_code, ResponseCode::NotAuth);
    let axfr = udp(s.dns, "customer.com.", RecordType::AXFR);
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);
    assert!(axfr.answers.is_empty());
    let (_, metrics) = s.admin("GET", "/metrics");
    assert!(
        metrics.contains("meridian_dns_queries_total{qtype=\"IXFR\",rcode=\"NOERROR\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meridian_zone_transfers_total 0"),
        "a SOA is not a transfer: {metrics}"
    );

    // A client outside --allow-transfer is refused, over UDP as over TCP.
    let narrow = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.2")
        .start();
    let refused = udp(narrow.dns, "customer.com.", RecordType::IXFR);
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert!(refused.answers.is_empty());
    let out = dig(narrow.dns, &["customer.com", "IXFR=1", "+notcp"]);
    assert!(!out.contains("SOA"), "{out}");
}

/// With `--tsig-key`, an IXFR over UDP must be signed too, and its SOA answer is signed.
#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn a_signed_ixfr_over_udp_gets_a_signed_soa() {
    let dir = copy_fixture("gslb-dns");
    std::fs::write(dir.path().join("customer.com.zone"), zone_with_hosts(6, "")).unwrap();
    let key = format!("hmac-sha256:xfr-key:{TSIG_SECRET}");
    let s = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .arg("--tsig-key")
        .arg(&key)
        .start();
    let out = dig(s.dns, &["-y", &key, "customer.com", "IXFR=1", "+notcp"]);
    assert!(out.contains("(UDP)"), "{out}");
    assert!(!out.contains("verify") && !out.contains("WARNING"), "{out}");
    let records: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect();
    assert_eq!(records.len(), 2, "the SOA and the TSIG: {out}");
    assert!(records[0].contains(" 6 7200 3600 1209600 300"), "{out}");
    assert!(
        records[1].starts_with("xfr-key.") && records[1].contains(" NOERROR "),
        "{out}"
    );

    // A refusal after a valid signature is signed as well (dig checks it).
    let unknown = dig(
        s.dns,
        &["-y", &key, "not-served.example", "IXFR=1", "+notcp"],
    );
    assert!(
        !unknown.contains("verify") && !unknown.contains("WARNING"),
        "{unknown}"
    );
    assert!(unknown.contains("xfr-key.\t\t0\tANY\tTSIG\t"), "{unknown}");
    assert!(!unknown.contains("SOA"), "{unknown}");

    let unsigned = common::dns::udp_exchange(
        s.dns,
        &query_message("customer.com.", RecordType::IXFR, false, None),
    )
    .unwrap();
    assert_eq!(unsigned.metadata.response_code, ResponseCode::Refused);
    assert!(unsigned.answers.is_empty());
}

/// At startup every plain zone is announced to the `--notify` secondaries, as Knot and NSD
/// do when they load a zone: one that missed changes while the primary was down catches up
/// at once. The CDN zone is never announced.
#[test]
fn the_secondaries_hear_of_every_plain_zone_at_startup() {
    let dir = copy_fixture("gslb-dns");
    std::fs::write(dir.path().join("customer.com.zone"), zone_with_hosts(9, "")).unwrap();
    let secondary = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    secondary.set_read_timeout(Some(DEADLINE)).unwrap();
    let s = Server::with_zones(dir.path())
        .arg("--allow-transfer")
        .arg("127.0.0.0/8")
        .arg("--notify")
        .arg(&secondary.local_addr().unwrap().to_string())
        .start();

    let mut buf = [0u8; 4096];
    let (len, from) = secondary
        .recv_from(&mut buf)
        .expect("a NOTIFY at startup, without any reload");
    let notify = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(notify.metadata.op_code, OpCode::Notify);
    assert_eq!(notify.metadata.message_type, MessageType::Query);
    assert_eq!(notify.queries.len(), 1);
    assert_eq!(notify.queries[0].name().to_string(), "customer.com.");
    assert_eq!(notify.queries[0].query_type(), RecordType::SOA);
    match &notify.answers[0].data {
        RData::SOA(soa) => assert_eq!(soa.serial, 9),
        other => panic!("not a SOA: {other:?}"),
    }

    // Answered as a secondary answers, it is counted and not sent again.
    let mut reply = Message::new(notify.metadata.id, MessageType::Response, OpCode::Notify);
    reply.metadata.authoritative = true;
    reply.queries = notify.queries.clone();
    secondary.send_to(&reply.to_vec().unwrap(), from).unwrap();
    s.wait_for("the NOTIFY counted and logged as answered", || {
        (metric(&s, "meridian_notify_answered_total") == 1 && s.log().contains("NOTIFY answered"))
            .then_some(())
    });
    assert_eq!(metric(&s, "meridian_notify_failed_total"), 0);
    // Every NOTIFY of the startup goes out at once: by now any other zone's has arrived.
    secondary.set_nonblocking(true).unwrap();
    while let Ok(len) = secondary.recv(&mut buf) {
        let other = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(other.queries[0].name().to_string(), "customer.com.");
    }
}
