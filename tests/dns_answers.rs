//! Authoritative answers over real sockets: the real `meridian` binary on ephemeral ports,
//! queried with a hickory-proto client and with `dig`. One test per rule of the zone
//! semantics (issue 2, point 3) and the transport (point 4).

mod common;

use std::path::PathBuf;

use common::dns::{Server, dig, query_message, tcp_exchange, udp_exchange, udp_raw};
use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, Record, RecordType};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns")
}

fn server() -> Server {
    Server::with_zones(&fixture()).start()
}

fn rdata_strings(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

fn soa_ttl(msg: &Message) -> Option<u32> {
    msg.authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.ttl)
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn exact_match_is_authoritative() {
    let s = server();
    let m = s.query("www.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(!m.metadata.recursion_available);
    assert_eq!(rdata_strings(&m.answers), ["www.example.test. A 192.0.2.1"]);
    let out = dig(s.dns, &["www.example.test", "AAAA", "+norec"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa;"), "{out}");
    assert!(out.contains("2001:db8::1"), "{out}");
}

#[test]
fn nodata_carries_soa_with_negative_ttl() {
    let s = server();
    let m = s.query("www.example.test.", RecordType::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    // RFC 2308: min(SOA TTL 3600, SOA MINIMUM 300).
    assert_eq!(soa_ttl(&m), Some(300));
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn nxdomain_carries_soa_with_negative_ttl() {
    let s = server();
    let m = s.query("nope.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(soa_ttl(&m), Some(300));
    let out = dig(s.dns, &["nope.example.test", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("AUTHORITY: 1"), "{out}");
}

#[test]
fn cname_chain_is_followed_across_served_zones() {
    let s = server();
    let m = s.query("chain1.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(
        rdata_strings(&m.answers),
        [
            "chain1.example.test. CNAME chain2.example.test.",
            "chain2.example.test. CNAME www.other.test.",
            "www.other.test. A 192.0.2.2",
        ]
    );
}

#[test]
fn cname_asked_for_itself_is_not_chased() {
    let s = server();
    let m = s.query("alias.example.test.", RecordType::CNAME);
    assert_eq!(
        rdata_strings(&m.answers),
        ["alias.example.test. CNAME www.example.test."]
    );
}

#[test]
fn cname_loop_ends_without_hanging() {
    let s = server();
    let m = s.query("loop1.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        rdata_strings(&m.answers),
        [
            "loop1.example.test. CNAME loop2.example.test.",
            "loop2.example.test. CNAME loop1.example.test."
        ]
    );
}

#[test]
fn cname_leaving_served_zones_ends_the_chain() {
    let s = server();
    let m = s.query("outside.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        rdata_strings(&m.answers),
        ["outside.example.test. CNAME www.not-served.invalid."]
    );
}

#[test]
fn existing_name_with_other_types_gives_nodata_not_the_wildcard() {
    // RFC 4592: `foo TXT` + `* A`: `foo A` is NODATA.
    let s = server();
    let m = s.query("foo.wild.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "{:?}", m.answers);
    assert!(soa_ttl(&m).is_some());
}

#[test]
fn wildcard_synthesises_records_owned_by_the_query_name() {
    let s = server();
    let m = s.query("anything.wild.test.", RecordType::A);
    assert!(m.metadata.authoritative);
    assert_eq!(
        rdata_strings(&m.answers),
        ["anything.wild.test. A 192.0.2.99"]
    );
    let m = s.query("two.labels.wild.test.", RecordType::A);
    assert_eq!(
        rdata_strings(&m.answers),
        ["two.labels.wild.test. A 192.0.2.99"]
    );
}

#[test]
fn wildcard_does_not_match_below_an_existing_name() {
    // `*.deep` with `sub.deep` existing: `x.sub.deep` is NXDOMAIN, `y.deep` is the wildcard.
    let s = server();
    let m = s.query("x.sub.deep.wild.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = s.query("y.deep.wild.test.", RecordType::A);
    assert_eq!(
        rdata_strings(&m.answers),
        ["y.deep.wild.test. A 192.0.2.11"]
    );
}

#[test]
fn wildcard_cname_is_synthesised_and_chased() {
    let s = server();
    let m = s.query("shop.cn.wild.test.", RecordType::A);
    assert_eq!(
        rdata_strings(&m.answers),
        [
            "shop.cn.wild.test. CNAME www.example.test.",
            "www.example.test. A 192.0.2.1"
        ]
    );
}

#[test]
fn empty_non_terminal_gives_nodata() {
    let s = server();
    for name in ["b.ent.example.test.", "ent.example.test."] {
        let m = s.query(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        assert!(soa_ttl(&m).is_some(), "{name}");
    }
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn delegation_gives_a_referral_with_glue() {
    let s = server();
    let m = s.query("host.child.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative, "a referral is not authoritative");
    assert!(m.answers.is_empty());
    let mut ns = rdata_strings(&m.authorities);
    ns.sort();
    assert_eq!(
        ns,
        [
            "child.example.test. NS ns.child.example.test.",
            "child.example.test. NS ns.elsewhere.invalid."
        ]
    );
    assert_eq!(
        rdata_strings(&m.additionals),
        ["ns.child.example.test. A 192.0.2.53"]
    );
    let out = dig(s.dns, &["host.child.example.test", "A", "+norec"]);
    assert!(out.contains("flags: qr;"), "{out}");
    assert!(
        out.contains("ns.child.example.test.\t3600\tIN\tA\t192.0.2.53"),
        "{out}"
    );
}

#[test]
fn ds_at_a_delegation_is_answered_from_the_parent() {
    let s = server();
    let m = s.query("child.example.test.", RecordType::DS);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative, "DS belongs to the parent side");
    assert!(m.answers.is_empty());
    assert_eq!(
        m.authorities
            .iter()
            .map(|r| r.record_type())
            .collect::<Vec<_>>(),
        [RecordType::SOA]
    );
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn ds_records_of_a_signed_delegation_are_served_by_the_parent() {
    let s = server();
    let m = s.query("signed.example.test.", RecordType::DS);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative, "DS belongs to the parent side");
    assert_eq!(
        rdata_strings(&m.answers),
        [
            "signed.example.test. DS 31589 13 2 3490A6806D47F17A34C29E2CE80E8A999FFBE4BE8F36A7C02A14F06F8E8C1E8B"
        ]
    );
    // Anything else at or below the cut is still a referral. (Meridian serves no DNSSEC:
    // the DS is not added to referrals, which RFC 4035 3.1.4 asks of signed zones only.)
    let out = dig(s.dns, &["www.signed.example.test", "A", "+norec"]);
    assert!(out.contains("flags: qr;"), "a referral: {out}");
    assert!(
        out.contains("signed.example.test.\t3600\tIN\tNS\tns.elsewhere.invalid."),
        "{out}"
    );
}

#[test]
fn additional_section_has_addresses_of_mx_srv_and_ns_targets() {
    let s = server();
    let m = s.query("example.test.", RecordType::MX);
    assert_eq!(
        rdata_strings(&m.additionals),
        ["mx1.example.test. A 192.0.2.25"]
    );
    let m = s.query("_sip._tcp.example.test.", RecordType::SRV);
    assert_eq!(
        rdata_strings(&m.additionals),
        ["sipserver.example.test. A 192.0.2.26"]
    );
    let m = s.query("example.test.", RecordType::NS);
    assert_eq!(m.answers.len(), 2);
    assert_eq!(
        rdata_strings(&m.additionals),
        ["ns1.example.test. A 127.0.0.53"]
    );
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn query_outside_every_zone_is_refused() {
    let s = server();
    let m = s.query("www.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    let out = dig(s.dns, &["www.example.com", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
}

#[test]
fn any_gets_a_minimal_answer() {
    let s = server();
    let m = s.query("www.example.test.", RecordType::ANY);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let types: std::collections::BTreeSet<_> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset, got {:?}", m.answers);
}

#[test]
fn other_opcodes_are_not_implemented() {
    let s = server();
    for opcode in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut q = query_message("www.example.test.", RecordType::A, false, None);
        q.metadata.op_code = opcode;
        let m = udp_exchange(s.dns, &q).expect("answer");
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{opcode:?}");
    }
}

#[test]
fn zone_transfer_is_refused() {
    let s = server();
    let m = tcp_exchange(
        s.dns,
        &[query_message(
            "example.test.",
            RecordType::AXFR,
            false,
            None,
        )],
    );
    assert_eq!(m[0].metadata.response_code, ResponseCode::Refused);
}

#[test]
fn two_questions_are_a_format_error() {
    let s = server();
    let mut q = query_message("www.example.test.", RecordType::A, false, None);
    q.add_query(hickory_proto::op::Query::query(
        "www.other.test.".parse().unwrap(),
        RecordType::A,
    ));
    let m = udp_exchange(s.dns, &q).expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn undecodable_message_is_a_format_error_with_its_id() {
    let s = server();
    // A header announcing one question, followed by a label running past the end.
    let bytes = [
        0xAB, 0xCD, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 40, b'x', b'y',
    ];
    let answer = udp_raw(s.dns, &bytes).expect("an answer");
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.metadata.id, 0xABCD);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn large_answer_is_truncated_over_udp_and_complete_over_tcp() {
    let s = server();
    let q = query_message("big.example.test.", RecordType::TXT, false, None);
    let udp = udp_exchange(s.dns, &q).expect("answer");
    assert!(udp.metadata.truncation, "TC over UDP");
    assert!(udp.answers.is_empty());
    let tcp = tcp_exchange(s.dns, &[q]);
    assert!(!tcp[0].metadata.truncation);
    assert_eq!(tcp[0].answers.len(), 40);
    // dig retries over TCP on TC, as resolvers do.
    let out = dig(s.dns, &["big.example.test", "TXT"]);
    assert!(out.contains("ANSWER: 40"), "{out}");
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
}

#[test]
fn tcp_connection_carries_several_queries() {
    let s = server();
    let qs: Vec<_> = [
        "www.example.test.",
        "mx1.example.test.",
        "sipserver.example.test.",
    ]
    .iter()
    .map(|n| query_message(n, RecordType::A, true, None))
    .collect();
    let answers = tcp_exchange(s.dns, &qs);
    assert_eq!(answers.len(), 3);
    for (q, a) in qs.iter().zip(&answers) {
        assert_eq!(a.metadata.id, q.metadata.id);
        assert_eq!(a.answers.len(), 1);
    }
}

#[test]
fn edns_is_echoed_with_our_payload_size() {
    let s = server();
    let m = s.query("www.example.test.", RecordType::A);
    let edns = m.edns.expect("OPT in the answer");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    let plain = udp_exchange(
        s.dns,
        &query_message("www.example.test.", RecordType::A, false, None),
    )
    .unwrap();
    assert!(plain.edns.is_none(), "no OPT when the query had none");
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn unknown_edns_version_gets_badvers() {
    let s = server();
    let out = dig(s.dns, &["www.example.test", "A", "+edns=1", "+noednsneg"]);
    assert!(out.contains("status: BADVERS"), "{out}");
    let mut q = query_message("www.example.test.", RecordType::A, true, None);
    let mut e = Edns::new();
    e.set_version(1);
    q.set_edns(e);
    let m = udp_exchange(s.dns, &q).unwrap();
    // hickory decodes extended code 16 as BADSIG (it shares the number with BADVERS).
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.edns.is_some(), "BADVERS travels in the OPT record");
}

#[test]
fn question_case_is_preserved() {
    let s = server();
    let m = s.query("WwW.ExAmPlE.tEsT.", RecordType::A);
    assert_eq!(m.queries[0].name().to_string(), "WwW.ExAmPlE.tEsT.");
    assert_eq!(rdata_strings(&m.answers), ["WwW.ExAmPlE.tEsT. A 192.0.2.1"]);
}

#[test]
fn malformed_client_subnet_gets_formerr() {
    let s = server();
    // Scope set in a query; bits past the prefix inside the bytes that go on the wire.
    let cases = [
        ("192.0.2.0", 24, 16),
        ("192.0.2.0", 20, 0),
        ("2001:db8:1::", 44, 0),
    ];
    for (addr, source, scope) in cases {
        let mut q = query_message("www.example.test.", RecordType::A, true, None);
        let mut e = Edns::new();
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            addr.parse().unwrap(),
            source,
            scope,
        )));
        q.set_edns(e);
        // Encode by hand: hickory's encoder masks nothing, so the bad bits go on the wire.
        let m = udp_exchange(s.dns, &q).expect("answer");
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::FormErr,
            "{addr}/{source} scope {scope}"
        );
    }
}

#[test]
fn client_subnet_with_more_address_octets_than_its_prefix_gets_formerr() {
    let s = server();
    // ECS for 192.0.2.0/24 carrying `address`: RFC 7871 wants exactly 3 octets for a /24.
    let with_address = |address: &[u8]| {
        let mut q = query_message("www.example.test.", RecordType::A, true, None);
        q.set_edns(Edns::new());
        let mut bytes = q.to_vec().unwrap();
        let option_len = 4 + address.len() as u16;
        // The empty OPT record ends the message: grow its RDLENGTH and append the option.
        let rdlength_at = bytes.len() - 2;
        bytes[rdlength_at..].copy_from_slice(&(4 + option_len).to_be_bytes());
        bytes.extend_from_slice(&8u16.to_be_bytes());
        bytes.extend_from_slice(&option_len.to_be_bytes());
        bytes.extend_from_slice(&[0, 1, 24, 0]);
        bytes.extend_from_slice(address);
        let answer = udp_raw(s.dns, &bytes).expect("an answer");
        Message::from_vec(&answer).unwrap().metadata.response_code
    };
    assert_eq!(with_address(&[192, 0, 2]), ResponseCode::NoError);
    assert_eq!(with_address(&[192, 0, 2, 0]), ResponseCode::FormErr);
    assert_eq!(
        with_address(&[192, 0, 2, 0, 0, 0, 0]),
        ResponseCode::FormErr
    );
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn client_subnet_on_static_data_is_echoed_with_scope_zero() {
    let s = server();
    let q = query_message(
        "www.example.test.",
        RecordType::A,
        true,
        Some(("198.51.100.0", 24)),
    );
    let m = udp_exchange(s.dns, &q).unwrap();
    let Some(EdnsOption::Subnet(subnet)) = m.edns.as_ref().and_then(|e| e.option(EdnsCode::Subnet))
    else {
        panic!("no ECS in the answer: {m:?}");
    };
    assert_eq!(subnet.source_prefix(), 24);
    assert_eq!(subnet.scope_prefix(), 0);
    let out = dig(s.dns, &["www.example.test", "A", "+subnet=198.51.100.0/24"]);
    assert!(out.contains("CLIENT-SUBNET: 198.51.100.0/24/0"), "{out}");
}

#[test]
fn listens_on_ipv6_too() {
    let s = Server::with_zones(&fixture())
        .arg("--listen")
        .arg("[::1]:0")
        .start();
    let v6 = s.wait_for("the IPv6 listen line", || {
        s.log()
            .lines()
            .filter_map(|l| l.split("listening on ").nth(1))
            .filter_map(|r| r.split_whitespace().next())
            .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
            .find(|a| a.is_ipv6())
    });
    let m = udp_exchange(
        v6,
        &query_message("www.example.test.", RecordType::AAAA, true, None),
    )
    .unwrap();
    assert!(matches!(m.answers[0].data, RData::AAAA(_)));
    let m = &tcp_exchange(
        v6,
        &[query_message(
            "www.example.test.",
            RecordType::A,
            true,
            None,
        )],
    )[0];
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let s = server();
    assert_eq!(s.query("www.example.test.", RecordType::A).answers.len(), 1);
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn per_query_logging_is_off_by_default() {
    let s = server();
    for _ in 0..5 {
        s.query("www.example.test.", RecordType::A);
    }
    s.wait_for("metrics to count the queries", || {
        let (_, body) = s.admin("GET", "/metrics");
        body.contains("meridian_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"} 5")
            .then_some(())
    });
    assert!(
        !s.log().contains("www.example.test"),
        "query logged at default level:\n{}",
        s.log()
    );
}

/// `dig CH TXT id.server` tells which server answered (several behind one anycast address),
/// `version.bind` what it runs, as NSD and Knot answer; `--identity` and `--hide-version`
/// set them. Other CHAOS names stay refused.
#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn chaos_txt_names_the_server_and_its_version() {
    let s = Server::with_zones(&fixture())
        .arg("--identity")
        .arg("ns1.fra")
        .start();
    let id = dig(s.dns, &["CH", "TXT", "id.server", "+norec"]);
    assert!(id.contains("id.server.\t\t0\tCH\tTXT\t\"ns1.fra\""), "{id}");
    assert!(id.contains("flags: qr aa;"), "{id}");
    let hostname = dig(s.dns, &["CH", "TXT", "hostname.bind", "+short"]);
    assert_eq!(hostname.trim(), "\"ns1.fra\"");
    let version = dig(s.dns, &["CH", "TXT", "version.bind", "+short"]);
    assert_eq!(
        version.trim(),
        format!("\"Meridian {}\"", env!("CARGO_PKG_VERSION"))
    );
    assert!(dig(s.dns, &["CH", "TXT", "authors.bind"]).contains("status: REFUSED"));

    let hidden = Server::with_zones(&fixture()).arg("--hide-version").start();
    assert!(dig(hidden.dns, &["CH", "TXT", "version.bind"]).contains("status: REFUSED"));
    let default_id = dig(hidden.dns, &["CH", "TXT", "id.server", "+short"]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(default_id.trim(), format!("\"{}\"", host.trim()));
}
