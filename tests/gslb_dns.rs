//! Scheduled answers over real sockets (issue 3): the real `meridian` with a `cdn.toml` and
//! a GeoIP database written by the test, queried with `dig +subnet` and a hickory client.

mod common;

use common::dns::{Server, copy_fixture, dig, query_message, udp_exchange};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

const TARGET: &str = "img.customer.com.w.cdn.example.net.";

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
}

fn start_with(schema: fn(&std::path::Path) -> std::path::PathBuf) -> Setup {
    let dir = copy_fixture("gslb-dns");
    let geo_dir = tempfile::tempdir().unwrap();
    let db = schema(geo_dir.path());
    // Keep the database beside the zones so that it lives as long as the test.
    let db_in_dir = dir.path().join("geo.mmdb");
    std::fs::copy(&db, &db_in_dir).unwrap();
    let server = Server::with_zones(dir.path()).geoip(&db_in_dir).start();
    Setup { _dir: dir, server }
}

fn start() -> Setup {
    start_with(common::geo::write_maxmind)
}

/// The addresses answered for `name` from the client subnet `subnet` ("1.0.0.0/24").
fn addresses(s: &Server, name: &str, qtype: RecordType, subnet: &str) -> Vec<String> {
    let m = ecs_query(s, name, qtype, subnet);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{name} from {subnet}"
    );
    m.answers
        .iter()
        .filter(|r| r.record_type() == qtype)
        .map(|r| r.data.to_string())
        .collect()
}

fn ecs_query(s: &Server, name: &str, qtype: RecordType, subnet: &str) -> Message {
    let (addr, prefix) = subnet.split_once('/').unwrap();
    let q = query_message(name, qtype, true, Some((addr, prefix.parse().unwrap())));
    udp_exchange(s.dns, &q).expect("answer")
}

fn ecs_scope(m: &Message) -> Option<(u8, u8)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

#[test]
fn global_policy_sends_each_client_to_its_sides_nearest_edge() {
    let Setup { server: s, .. } = start();
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "1.0.0.0/24"),
        ["127.0.1.1"],
        "CN -> Shanghai"
    );
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "2.0.0.0/24"),
        ["127.0.2.1"],
        "HK -> Hong Kong"
    );
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "5.0.0.0/24"),
        ["127.0.2.1"],
        "TW -> Hong Kong, not the mainland"
    );
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "6.0.0.0/24"),
        ["127.0.2.1"],
        "MO -> Hong Kong"
    );
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "3.0.0.0/24"),
        ["127.0.3.1", "127.0.3.2"],
        "US -> Virginia, all its addresses"
    );
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "4.0.0.0/24"),
        ["127.0.4.1"],
        "DE -> Frankfurt"
    );
}

#[test]
fn mainland_policy_only_gives_mainland_edges() {
    let Setup { server: s, .. } = start();
    let name = "cn.customer.com.w.cdn.example.net.";
    for subnet in [
        "1.0.0.0/24",
        "2.0.0.0/24",
        "5.0.0.0/24",
        "3.0.0.0/24",
        "4.0.0.0/24",
    ] {
        let got = addresses(&s, name, RecordType::A, subnet);
        assert_eq!(got.len(), 1, "{subnet}");
        assert!(got[0].starts_with("127.0.1."), "{subnet} got {got:?}");
    }
    // Nearest mainland edge by great circle: Shanghai for Shanghai, Beijing for Frankfurt.
    assert_eq!(
        addresses(&s, name, RecordType::A, "1.0.0.0/24"),
        ["127.0.1.1"]
    );
    assert_eq!(
        addresses(&s, name, RecordType::A, "4.0.0.0/24"),
        ["127.0.1.2"]
    );
}

#[test]
fn overseas_policy_never_gives_mainland_edges() {
    let Setup { server: s, .. } = start();
    let name = "os.customer.com.w.cdn.example.net.";
    assert_eq!(
        addresses(&s, name, RecordType::A, "1.0.0.0/24"),
        ["127.0.2.1"],
        "CN client -> Hong Kong"
    );
    assert_eq!(
        addresses(&s, name, RecordType::A, "3.0.0.0/24"),
        ["127.0.3.1", "127.0.3.2"]
    );
}

#[test]
fn aaaa_comes_from_the_nearest_edge_with_an_ipv6_address() {
    let Setup { server: s, .. } = start();
    assert_eq!(
        addresses(&s, TARGET, RecordType::AAAA, "2001:db8:1::/48"),
        ["fd00:1::1"]
    );
    // Frankfurt has no IPv6 address: the nearest overseas edge that has one answers.
    assert_eq!(
        addresses(&s, TARGET, RecordType::AAAA, "4.0.0.0/24"),
        ["fd00:3::1"]
    );
    // No mainland... every mainland AAAA comes from Shanghai, Beijing has none.
    assert_eq!(
        addresses(
            &s,
            "cn.customer.com.w.cdn.example.net.",
            RecordType::AAAA,
            "3.0.0.0/24"
        ),
        ["fd00:1::1"]
    );
}

#[test]
fn answers_are_authoritative_with_the_configured_ttl() {
    let Setup { server: s, .. } = start();
    let m = ecs_query(&s, TARGET, RecordType::A, "3.0.0.0/24");
    assert!(m.metadata.authoritative);
    assert!(m.answers.iter().all(|r| r.ttl == 30), "{:?}", m.answers);
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn ecs_is_echoed_with_the_geoip_network_as_scope() {
    let Setup { server: s, .. } = start();
    let m = ecs_query(&s, TARGET, RecordType::A, "1.0.0.0/24");
    assert_eq!(ecs_scope(&m), Some((24, 24)));
    // A source prefix shorter than the database network bounds the scope.
    let m = ecs_query(&s, TARGET, RecordType::A, "1.0.0.0/16");
    assert_eq!(ecs_scope(&m), Some((16, 16)));
    let m = ecs_query(&s, TARGET, RecordType::AAAA, "2001:db8:1::/56");
    assert_eq!(ecs_scope(&m), Some((56, 48)));
    let out = dig(s.dns, &[TARGET, "A", "+subnet=4.0.0.0/24"]);
    assert!(out.contains("CLIENT-SUBNET: 4.0.0.0/24/24"), "{out}");
    assert!(out.contains("127.0.4.1"), "{out}");
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn clients_the_database_does_not_know_go_to_the_default_country() {
    let Setup { server: s, .. } = start();
    // dig from 127.0.0.1 (unknown: loopback) without ECS: placed in "US".
    let out = dig(s.dns, &[TARGET, "A", "+short"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["127.0.3.1", "127.0.3.2"],
        "{out}"
    );
    // An ECS subnet the database does not know: the default too.
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "192.0.2.0/24"),
        ["127.0.3.1", "127.0.3.2"]
    );
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn the_source_address_locates_clients_without_ecs() {
    let Setup { server: s, .. } = start();
    // 127.5.0.0/16 is CN in the test database.
    let out = dig(s.dns, &["-b", "127.5.0.1", TARGET, "A", "+short"]);
    assert_eq!(out.trim(), "127.0.1.1", "{out}");
    let out = dig(s.dns, &["-b", "127.0.0.1", TARGET, "A", "+short"]);
    assert_eq!(out.lines().next(), Some("127.0.3.1"), "{out}");
}

#[test]
fn unknown_names_under_the_suffix_are_nxdomain() {
    let Setup { server: s, .. } = start();
    let m = s.query("nope.customer.com.w.cdn.example.net.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    // Names on the way to scheduled names exist (empty non-terminals): NODATA.
    for name in ["customer.com.w.cdn.example.net.", "w.cdn.example.net."] {
        let m = s.query(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}");
    }
    // Other names in the CDN zone come from the zone file.
    assert_eq!(
        s.query("console.cdn.example.net.", RecordType::A)
            .answers
            .len(),
        1
    );
}

#[test]
fn wildcard_domains_schedule_every_name_below_them() {
    let Setup { server: s, .. } = start();
    for name in [
        "a.wild.customer.com.w.cdn.example.net.",
        "x.y.wild.customer.com.w.cdn.example.net.",
    ] {
        assert_eq!(
            addresses(&s, name, RecordType::A, "2.0.0.0/24"),
            ["127.0.2.1"],
            "{name}"
        );
    }
    let m = s.query("wild.customer.com.w.cdn.example.net.", RecordType::A);
    assert!(
        m.answers.is_empty(),
        "the wildcard's own parent is not scheduled"
    );
}

#[test]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
fn customer_name_answers_the_cname_then_the_scheduled_edge() {
    let Setup { server: s, .. } = start();
    let out = dig(s.dns, &["img.customer.com", "A", "+subnet=4.0.0.0/24"]);
    assert!(
        out.contains("img.customer.com.\t3600\tIN\tCNAME\timg.customer.com.w.cdn.example.net."),
        "{out}"
    );
    assert!(
        out.contains("img.customer.com.w.cdn.example.net. 30 IN A\t127.0.4.1"),
        "{out}"
    );
    assert!(out.contains("flags: qr aa"), "{out}");
}

#[test]
fn other_types_at_a_scheduled_name_are_nodata() {
    let Setup { server: s, .. } = start();
    let m = s.query(TARGET, RecordType::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
    );
}

#[test]
fn flat_schema_databases_work_too() {
    let Setup { server: s, .. } = start_with(common::geo::write_flat);
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "1.0.0.0/24"),
        ["127.0.1.1"]
    );
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "4.0.0.0/24"),
        ["127.0.4.1"]
    );
}

#[test]
fn the_shipped_database_places_real_networks() {
    // The repository's own zones/ and geoip/ with no flags but ports: 1.2.4.0/24 (CNNIC)
    // is CN in DB-IP's data, 8.8.8.0/24 is US.
    let zones = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zones");
    let s = Server::with_zones(&zones).start();
    let name = "img.customer.com.w.cdn.example.net.";
    assert_eq!(
        addresses(&s, name, RecordType::A, "1.2.4.0/24"),
        ["127.0.1.1"]
    );
    assert_eq!(
        addresses(&s, name, RecordType::A, "8.8.8.0/24"),
        ["127.0.4.1", "127.0.4.2"]
    );
}

#[test]
fn metrics_count_scheduled_answers_per_edge_and_policy() {
    let Setup { server: s, .. } = start();
    for _ in 0..3 {
        addresses(&s, TARGET, RecordType::A, "4.0.0.0/24");
    }
    addresses(
        &s,
        "cn.customer.com.w.cdn.example.net.",
        RecordType::A,
        "1.0.0.0/24",
    );
    let (_, metrics) = s.admin("GET", "/metrics");
    assert!(
        metrics.contains("meridian_gslb_answers_total{policy=\"global\",edge=\"frankfurt-1\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meridian_gslb_answers_total{policy=\"mainland\",edge=\"shanghai-1\"} 1"),
        "{metrics}"
    );
    let (_, status) = s.admin("GET", "/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let edges = status["edges"].as_array().expect("edges in /status");
    assert_eq!(edges.len(), 5);
    assert!(
        edges.iter().all(|e| e["state"] == "up"),
        "edges without a health URL are up: {edges:?}"
    );
}

#[test]
fn a_bad_cdn_toml_edit_keeps_the_old_configuration() {
    let dir = copy_fixture("gslb-dns");
    let s = Server::with_zones(dir.path()).start();
    let path = dir.path().join("cdn.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    common::dns::write_atomically(&path, &good.replace("ttl = 30", "ttl = 30\nbogus_key = 1"));
    let error = s.wait_for("the refused reload", || {
        let (_, body) = s.admin("GET", "/status");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["last_reload"]["ok"] == false)
            .then(|| v["last_reload"]["error"].as_str().unwrap_or("").to_string())
    });
    assert!(error.contains("cdn.toml"), "{error}");
    assert!(
        s.query(TARGET, RecordType::A)
            .answers
            .iter()
            .all(|r| r.ttl == 30)
    );
    common::dns::write_atomically(&path, &good.replace("ttl = 30", "ttl = 45"));
    s.wait_for("the fixed configuration", || {
        let m = s.query(TARGET, RecordType::A);
        m.answers.first().is_some_and(|r| r.ttl == 45).then_some(())
    });
}

#[test]
fn a_replaced_geoip_database_is_reloaded() {
    let dir = copy_fixture("gslb-dns");
    let geo_dir = tempfile::tempdir().unwrap();
    let db = common::geo::write_maxmind(geo_dir.path());
    let s = Server::with_zones(dir.path()).geoip(&db).start();
    assert_eq!(
        addresses(&s, TARGET, RecordType::A, "4.0.0.0/24"),
        ["127.0.4.1"]
    );
    // The operator drops in a new database (written aside, renamed over the old one) in
    // which 4.0.0.0/24 has moved to Shanghai.
    let staging = tempfile::tempdir_in(geo_dir.path()).unwrap();
    let new_db = common::geo::write_moved(staging.path(), "4.0.0.0/24", "CN", 31.22, 121.46);
    std::fs::rename(&new_db, &db).unwrap();
    s.wait_for("the new database to be used", || {
        (addresses(&s, TARGET, RecordType::A, "4.0.0.0/24") == ["127.0.1.1"]).then_some(())
    });
}

#[test]
fn a_debug_log_line_explains_each_scheduled_answer() {
    let dir = copy_fixture("gslb-dns");
    let db = common::geo::write_maxmind(dir.path());
    let s = Server::with_zones(dir.path())
        .geoip(&db)
        .log_filter("info,meridian::dns=debug")
        .start();
    addresses(
        &s,
        "os.customer.com.w.cdn.example.net.",
        RecordType::A,
        "1.0.0.0/24",
    );
    let line = s.wait_for("the scheduling log line", || {
        s.log()
            .lines()
            .find(|l| l.contains("scheduled"))
            .map(str::to_string)
    });
    for part in [
        "client=1.0.0.0",
        "from_ecs=true",
        "country=CN",
        "policy=\"overseas\"",
        "hongkong-1",
        "reason=nearest",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
}
