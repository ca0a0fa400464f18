//! The whole product (issue 4, "one end-to-end test"): `meridian` schedules
//! `img.customer.com` onto two real `meridian-edge` processes on 127.0.1.1 and 127.0.2.1,
//! whose admin `/health` are the health checks; `dig` gives the edge, the edge serves the
//! origin's content; kill that edge and the answer moves to the other one.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use common::dns::{Server, dig};
use common::edge::{Client, EdgeProcess};
use common::origin::{Reply, origin};

/// A `meridian-edge` on `ip` (HTTP on `port`, admin on any port) routing by `zones/cdn.toml`.
fn spawn_edge(ip: &str, port: u16, zones: &Path, name: &str) -> EdgeProcess {
    EdgeProcess::spawn_at(
        &format!("{ip}:{port}"),
        &format!("{ip}:0"),
        &["--zones", zones.to_str().unwrap(), "--name", name],
    )
}

fn health_url(edge: &EdgeProcess) -> String {
    format!("http://{}/health", edge.admin)
}

const CDN_ZONE: &str = "$ORIGIN cdn.example.net.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n  IN NS ns1\nns1 IN A 127.0.0.1\n";
const CUSTOMER_ZONE: &str = "$ORIGIN customer.com.\n$TTL 3600\n@ IN SOA ns1.cdn.example.net. hostmaster 1 7200 3600 1209600 300\n  IN NS ns1.cdn.example.net.\nimg IN CNAME img.customer.com.w.cdn.example.net.\n";

fn cdn_toml(origin_port: u16, health: Option<(&str, &str)>) -> String {
    let (a, b) = match health {
        Some((a, b)) => (format!("health = \"{a}\""), format!("health = \"{b}\"")),
        None => (String::new(), String::new()),
    };
    format!(
        r#"
[cdn]
zone = "cdn.example.net"
suffix = "w.cdn.example.net"
ttl = 5

[health]
interval = "200ms"
timeout = "300ms"
rise = 2
fall = 2

[[edge]]
name = "virginia-1"
country = "US"
lat = 38.95
lon = -77.45
ipv4 = ["127.0.1.1"]
{a}

[[edge]]
name = "frankfurt-1"
country = "DE"
lat = 50.11
lon = 8.68
ipv4 = ["127.0.2.1"]
{b}

[[domain]]
name = "img.customer.com"
region = "global"
business = "small-files"
origins = ["127.0.0.1"]
origin_port = {origin_port}
icp = "TEST-ICP-1"
"#
    )
}

/// The address `dig` gives for the customer's name: follows the CNAME to the scheduled A.
fn scheduled_edge(dns: SocketAddr) -> Option<String> {
    let out = dig(dns, &["img.customer.com", "A", "+short"]);
    let lines: Vec<&str> = out.lines().collect();
    match lines.as_slice() {
        ["img.customer.com.w.cdn.example.net.", ip] => Some(ip.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "peer-tests"),
    ignore = "needs dig: --features peer-tests"
)]
async fn dns_sends_clients_to_a_healthy_edge_that_serves_the_origin() {
    let origin = origin()
        .route(
            "/img/logo.png",
            Reply::ok("the origin's logo bytes").header("Cache-Control", "max-age=300"),
        )
        .start()
        .await;
    let zones = tempfile::tempdir().unwrap();
    std::fs::write(zones.path().join("cdn.example.net.zone"), CDN_ZONE).unwrap();
    std::fs::write(zones.path().join("customer.com.zone"), CUSTOMER_ZONE).unwrap();
    std::fs::write(
        zones.path().join("cdn.toml"),
        cdn_toml(origin.addr.port(), None),
    )
    .unwrap();

    // Both edges on one port number, each on its own address, as edges on port 80 would be.
    let port = std::net::TcpListener::bind("127.0.1.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut virginia = spawn_edge("127.0.1.1", port, zones.path(), "virginia-1");
    let frankfurt = spawn_edge("127.0.2.1", port, zones.path(), "frankfurt-1");
    let with_health = cdn_toml(
        origin.addr.port(),
        Some((&health_url(&virginia), &health_url(&frankfurt))),
    );
    std::fs::write(zones.path().join("cdn.toml"), with_health).unwrap();
    let meridian = tokio::task::spawn_blocking({
        let dir = zones.path().to_path_buf();
        move || Server::with_zones(&dir).start()
    })
    .await
    .unwrap();
    let dns = meridian.dns;

    // dig from 127.0.0.1 (placed in the US): the Virginia edge.
    let edge_ip = tokio::task::spawn_blocking(move || scheduled_edge(dns))
        .await
        .unwrap();
    assert_eq!(edge_ip.as_deref(), Some("127.0.1.1"));
    let client = Client::default();
    let got = client
        .get(
            &format!("http://127.0.1.1:{port}/img/logo.png"),
            &[("Host", "img.customer.com")],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"the origin's logo bytes");
    let again = client
        .get(
            &format!("http://127.0.1.1:{port}/img/logo.png"),
            &[("Host", "img.customer.com")],
        )
        .await;
    assert_eq!(again.header("x-cache"), "HIT");
    assert_eq!(origin.count("/img/logo.png"), 1);

    // Kill the Virginia edge: the health checks see it and the answer moves to Frankfurt.
    virginia.kill9();
    let killed = Instant::now();
    let moved = tokio::task::spawn_blocking(move || {
        meridian.wait_for("the answer to move to Frankfurt", || {
            (scheduled_edge(dns).as_deref() == Some("127.0.2.1")).then_some(())
        });
        meridian
    })
    .await
    .unwrap();
    eprintln!(
        "answer moved {} ms after the edge was killed (fall 2 x 200 ms + 300 ms timeout)",
        killed.elapsed().as_millis()
    );
    let got = client
        .get(
            &format!("http://127.0.2.1:{port}/img/logo.png"),
            &[("Host", "img.customer.com")],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"the origin's logo bytes");
    drop(frankfurt);
    drop(moved);
}
