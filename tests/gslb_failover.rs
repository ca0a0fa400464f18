//! Failover on real health checks (issue 3, "a failover test"): edges on 127.0.N.1 whose
//! health endpoints are real HTTP servers. Stopping one moves the answers within
//! fall × interval + timeout; starting it brings them back; with every edge of one side
//! down a global domain is served by the other side, and a mainland domain fails open.

mod common;

use std::time::Instant;

use common::dns::{DEADLINE, Server, query_message, udp_exchange};
use common::health::HealthEndpoint;
use hickory_proto::rr::RecordType;

const ZONE: &str = "$ORIGIN cdn.example.net.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n  IN NS ns1\nns1 IN A 127.0.0.1\n";

struct Edges {
    shanghai: HealthEndpoint,
    beijing: HealthEndpoint,
    hongkong: HealthEndpoint,
    virginia: HealthEndpoint,
}

fn config(e: &Edges) -> String {
    format!(
        r#"
[cdn]
zone = "cdn.example.net"
suffix = "w.cdn.example.net"
ttl = 5

[health]
interval = "100ms"
timeout = "200ms"
rise = 2
fall = 2

[[edge]]
name = "shanghai-1"
country = "CN"
lat = 31.23
lon = 121.47
ipv4 = ["127.0.1.1"]
health = "{}"

[[edge]]
name = "beijing-1"
country = "CN"
lat = 39.90
lon = 116.40
ipv4 = ["127.0.1.2"]
health = "{}"

[[edge]]
name = "hongkong-1"
country = "HK"
ipv4 = ["127.0.2.1"]
health = "{}"

[[edge]]
name = "virginia-1"
country = "US"
lat = 38.95
lon = -77.45
ipv4 = ["127.0.3.1"]
health = "{}"

[[domain]]
name = "img.customer.com"
region = "global"
business = "small-files"
origins = ["192.0.2.10"]
icp = "TEST-ICP-1"

[[domain]]
name = "cn.customer.com"
region = "mainland"
business = "small-files"
origins = ["192.0.2.11"]
icp = "TEST-ICP-1"
"#,
        e.shanghai.url(),
        e.beijing.url(),
        e.hongkong.url(),
        e.virginia.url()
    )
}

fn answer(s: &Server, name: &str, subnet: (&str, u8)) -> Vec<String> {
    let m = udp_exchange(
        s.dns,
        &query_message(name, RecordType::A, true, Some(subnet)),
    )
    .expect("answer");
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

fn metric(s: &Server, line_start: &str) -> u64 {
    let (_, body) = s.admin("GET", "/metrics");
    body.lines()
        .find_map(|l| {
            l.strip_prefix(line_start)
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// Poll until `name` from `subnet` answers `want`; returns how long it took.
fn wait_answer(s: &Server, name: &str, subnet: (&str, u8), want: &[&str]) -> std::time::Duration {
    let started = Instant::now();
    s.wait_for(
        &format!("{name} from {subnet:?} to answer {want:?}"),
        || (answer(s, name, subnet) == want).then_some(()),
    );
    started.elapsed()
}

/// Four edges with live health endpoints, their zones directory, and Meridian serving it.
fn start() -> (Edges, tempfile::TempDir, Server) {
    let edges = Edges {
        shanghai: HealthEndpoint::start("127.0.1.1"),
        beijing: HealthEndpoint::start("127.0.1.2"),
        hongkong: HealthEndpoint::start("127.0.2.1"),
        virginia: HealthEndpoint::start("127.0.3.1"),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cdn.example.net.zone"), ZONE).unwrap();
    std::fs::write(dir.path().join("cdn.toml"), config(&edges)).unwrap();
    let db = common::geo::write_maxmind(dir.path());
    let server = Server::with_zones(dir.path()).geoip(&db).start();
    (edges, dir, server)
}

#[test]
fn answers_follow_edge_health() {
    let (mut edges, _dir, s) = start();

    let img = "img.customer.com.w.cdn.example.net.";
    let cn = "cn.customer.com.w.cdn.example.net.";
    let us_client = ("3.0.0.0", 24);
    let cn_client = ("1.0.0.0", 24);

    s.wait_for("every edge to be checked up", || {
        let (_, body) = s.admin("GET", "/status");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["edges"]
            .as_array()?
            .iter()
            .all(|e| e["state"] == "up")
            .then_some(())
    });
    assert_eq!(answer(&s, img, us_client), ["127.0.3.1"]);

    // Stop Virginia: the US client moves to Hong Kong, the nearest healthy overseas edge.
    edges.virginia.stop();
    let moved = wait_answer(&s, img, us_client, &["127.0.2.1"]);
    eprintln!(
        "answer moved {} ms after the edge stopped (fall x interval + timeout = 400 ms)",
        moved.as_millis()
    );
    assert!(moved < DEADLINE);
    assert!(metric(&s, "meridian_health_transitions_total{to=\"down\"}") >= 1);

    // Start it again: the answers come back.
    edges.virginia.restart();
    let back = wait_answer(&s, img, us_client, &["127.0.3.1"]);
    eprintln!(
        "answer came back {} ms after the edge restarted (rise 2 x interval 100 ms)",
        back.as_millis()
    );

    // Every overseas edge down: a global domain is served by the mainland side, not failed open.
    edges.virginia.stop();
    edges.hongkong.stop();
    wait_answer(&s, img, us_client, &["127.0.1.2"]);
    assert_eq!(metric(&s, "meridian_gslb_fail_open_total"), 0);
    assert_eq!(
        answer(&s, img, cn_client),
        ["127.0.1.1"],
        "mainland clients unaffected"
    );

    // Every mainland edge down too: a mainland-only domain fails open (its edges are served
    // as if healthy, nearest first) and it is counted.
    edges.shanghai.stop();
    edges.beijing.stop();
    s.wait_for("the mainland edges to be down", || {
        let (_, body) = s.admin("GET", "/status");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["edges"]
            .as_array()?
            .iter()
            .all(|e| e["state"] == "down")
            .then_some(())
    });
    assert_eq!(
        answer(&s, cn, cn_client),
        ["127.0.1.1"],
        "fail-open still answers"
    );
    assert!(metric(&s, "meridian_gslb_fail_open_total") >= 1);
}

#[test]
fn health_survives_a_reload_and_new_edges_start_served() {
    let (mut edges, dir, s) = start();
    let cfg = config(&edges);
    let img = "img.customer.com.w.cdn.example.net.";
    let us_client = ("3.0.0.0", 24);

    edges.virginia.stop();
    wait_answer(&s, img, us_client, &["127.0.2.1"]);
    // A reload with an unrelated change keeps Virginia down (health lives outside the snapshot).
    common::dns::write_atomically(
        &dir.path().join("cdn.toml"),
        &cfg.replace("ttl = 5", "ttl = 6"),
    );
    s.wait_for("the reload", || {
        let m = udp_exchange(
            s.dns,
            &query_message(img, RecordType::A, true, Some(us_client)),
        )?;
        m.answers.first().is_some_and(|r| r.ttl == 6).then_some(())
    });
    assert_eq!(
        answer(&s, img, us_client),
        ["127.0.2.1"],
        "still failed over after the reload"
    );
    // A new edge without a health URL is served at once.
    let with_new = cfg.replace("ttl = 5", "ttl = 7")
        + "\n[[edge]]\nname = \"newyork-1\"\ncountry = \"US\"\nlat = 40.7\nlon = -74.0\nipv4 = [\"127.0.3.9\"]\n";
    common::dns::write_atomically(&dir.path().join("cdn.toml"), &with_new);
    wait_answer(&s, img, us_client, &["127.0.3.9"]);
}

#[test]
fn removing_cdn_toml_stops_every_health_check() {
    let (edges, dir, s) = start();
    let all = [
        &edges.shanghai,
        &edges.beijing,
        &edges.hongkong,
        &edges.virginia,
    ];
    let requests = || all.iter().map(|e| e.requests()).sum::<u64>();
    s.wait_for("every edge checked once", || {
        all.iter().all(|e| e.requests() > 0).then_some(())
    });

    std::fs::remove_file(dir.path().join("cdn.toml")).unwrap();
    s.wait_for("/status without edges", || {
        let (_, status) = s.admin("GET", "/status");
        (!status.contains("virginia-1")).then_some(())
    });
    let img = "img.customer.com.w.cdn.example.net.";
    assert!(
        answer(&s, img, ("3.0.0.0", 24)).is_empty(),
        "no scheduling without cdn.toml"
    );

    // Ten check intervals (100 ms) later, no checker has probed again (a check per edge
    // already on the wire when the reload landed may still arrive; left running, the four
    // checkers would send about forty).
    let after = requests();
    let window = Instant::now();
    while window.elapsed() < std::time::Duration::from_secs(1) {
        assert!(
            requests() <= after + all.len() as u64,
            "health checks continued after cdn.toml was removed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
