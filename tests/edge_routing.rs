//! Host routing from cdn.toml (`--zones`), 404 for unknown Hosts, hot reload, origin
//! failover, and HTTPS origins trusted through `--origin-ca`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::edge::{Client, TestEdge, path_str, temp_dir};
use common::origin::{Reply, origin};
use http::StatusCode;
use meridian::cdn::{Business, Origin, Scheme};
use meridian::edge::EdgeConfig;
use meridian::edge::route::OriginSpec;

fn domain(name: &str, origins: &str, port: u16) -> String {
    format!(
        "[[domain]]\nname = \"{name}\"\nregion = \"global\"\nbusiness = \"small-files\"\norigins = [{origins}]\norigin_port = {port}\nicp = \"X\"\n\n"
    )
}

const HEAD: &str = "[cdn]\nzone = \"cdn.example.net\"\nsuffix = \"w.cdn.example.net\"\n\n[[edge]]\nname = \"edge-1\"\ncountry = \"US\"\nipv4 = [\"127.0.1.1\"]\n\n";

/// Replaces cdn.toml atomically (a rename), as an operator's tooling would.
fn write_config(dir: &std::path::Path, domains: &str) {
    let tmp = dir.join(".cdn.toml.tmp");
    std::fs::write(&tmp, format!("{HEAD}{domains}")).unwrap();
    std::fs::rename(&tmp, dir.join("cdn.toml")).unwrap();
}

#[tokio::test]
async fn hosts_route_to_their_own_origins_and_unknown_hosts_get_404() {
    let a = origin().route("/who", Reply::ok("origin-a")).start().await;
    let b = origin().route("/who", Reply::ok("origin-b")).start().await;
    let c = origin().route("/who", Reply::ok("origin-c")).start().await;
    let zones = temp_dir("zones");
    write_config(
        zones.path(),
        &(domain("a.customer.com", "\"127.0.0.1\"", a.addr.port())
            + &domain("*.b.customer.com", "\"127.0.0.1\"", b.addr.port())),
    );
    let edge = TestEdge::start(EdgeConfig {
        zones_dir: Some(zones.path().to_path_buf()),
        ..EdgeConfig::default()
    })
    .await;
    let client = Client::default();
    let who = |host: &'static str| {
        let (client, url) = (client.clone(), edge.url("/who"));
        async move { client.get(&url, &[("host", host)]).await }
    };
    assert_eq!(who("a.customer.com").await.body, "origin-a");
    assert_eq!(who("x.y.b.customer.com").await.body, "origin-b");
    let unknown = who("nobody.example").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&unknown.body).contains("not an accelerated domain"));

    // A new domain appears without a restart.
    write_config(
        zones.path(),
        &(domain("a.customer.com", "\"127.0.0.1\"", a.addr.port())
            + &domain("*.b.customer.com", "\"127.0.0.1\"", b.addr.port())
            + &domain("c.customer.com", "\"127.0.0.1\"", c.addr.port())),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while who("c.customer.com").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "cdn.toml was not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(who("c.customer.com").await.body, "origin-c");

    // A broken edit is refused and the previous domains keep serving.
    write_config(
        zones.path(),
        "[[domain]]\nname = \"a.customer.com\"\nbusiness = \"nonsense\"\n",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while edge.edge.metrics.reloads_failed.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the bad edit was never seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(who("c.customer.com").await.body, "origin-c");
    assert_eq!(who("a.customer.com").await.body, "origin-a");
    let status = client.get(&edge.admin_url("/status"), &[]).await;
    let json: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert!(
        json["last_reload"].as_str().unwrap().contains("cdn.toml:"),
        "{json}"
    );
    assert_eq!(json["domains"], 3);
}

#[tokio::test]
async fn the_next_origin_is_tried_when_one_refuses_connections() {
    let good = origin()
        .route("/f.txt", Reply::ok("from-second"))
        .start()
        .await;
    // 127.0.0.2 has nothing on that port: connections are refused.
    let spec = OriginSpec {
        domain: "*".into(),
        business: Business::SmallFiles,
        origins: vec![
            Origin::Ip("127.0.0.2".parse().unwrap()),
            Origin::Ip("127.0.0.1".parse().unwrap()),
        ],
        port: good.addr.port(),
        scheme: Scheme::Http,
        host_header: Some("origin.internal".into()),
    };
    let edge = TestEdge::start(EdgeConfig {
        catch_all: Some(spec),
        ..EdgeConfig::default()
    })
    .await;
    let got = Client::default()
        .get(&edge.url("/f.txt"), &[("host", "site.test")])
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"from-second"[..])
    );
    assert_eq!(good.seen("/f.txt")[0].headers["host"], "origin.internal");
}

/// A minimal HTTPS origin (one response per connection) using a certificate from `ca`.
struct TlsOrigin {
    port: u16,
    hosts: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
}

fn tls_origin(name: &str) -> (TlsOrigin, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (h, c) = (hosts.clone(), count.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (config, h, c) = (config.clone(), h.clone(), c.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                if let Some(host) = head.lines().find_map(|l| {
                    l.strip_prefix("host: ")
                        .or_else(|| l.strip_prefix("Host: "))
                }) {
                    h.lock().unwrap().push(host.to_string());
                }
                c.fetch_add(1, Ordering::SeqCst);
                let body = "secure body";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: max-age=60\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (TlsOrigin { port, hosts, count }, ca_cert.pem())
}

#[tokio::test]
async fn https_origin_is_trusted_through_origin_ca() {
    let (tls, ca_pem) = tls_origin("secure.test");
    let dir = temp_dir("ca");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let spec = OriginSpec {
        domain: "*".into(),
        business: Business::SmallFiles,
        origins: vec![Origin::Ip("127.0.0.1".parse().unwrap())],
        port: tls.port,
        scheme: Scheme::Https,
        host_header: None,
    };
    let client = Client::default();

    let trusting = TestEdge::start(EdgeConfig {
        catch_all: Some(spec.clone()),
        origin_ca: Some(ca_path),
        ..EdgeConfig::default()
    })
    .await;
    let got = client
        .get(&trusting.url("/s.txt"), &[("host", "secure.test")])
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"secure body"[..])
    );
    assert_eq!(
        client
            .get(&trusting.url("/s.txt"), &[("host", "secure.test")])
            .await
            .header("x-cache"),
        "HIT"
    );
    assert_eq!(tls.hosts.lock().unwrap().as_slice(), ["secure.test"]);

    // Without the CA the origin's certificate is not trusted: 502, not a hang.
    let untrusting = TestEdge::start(EdgeConfig {
        catch_all: Some(spec),
        ..EdgeConfig::default()
    })
    .await;
    let refused = client
        .get(&untrusting.url("/s.txt"), &[("host", "secure.test")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert_eq!(tls.count.load(Ordering::SeqCst), 1);
}

/// Origins with certificates from a CA in the system store need no `--origin-ca`: the
/// binary reads the system's CAs (here replaced through `SSL_CERT_FILE`, as with OpenSSL).
#[tokio::test]
async fn https_origin_is_trusted_through_the_system_store() {
    let (tls, ca_pem) = tls_origin("secure.test");
    let dir = temp_dir("system-ca");
    let ca_path = dir.path().join("system-ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let origin = format!("https://127.0.0.1:{}", tls.port);
    let cache = dir.path().join("cache");
    let edge = common::edge::EdgeProcess::spawn_with_env(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--origin", &origin, "--cache-dir", path_str(&cache)],
        &[("SSL_CERT_FILE", path_str(&ca_path))],
    );
    let got = Client::default()
        .get(&edge.url("/s.txt"), &[("host", "secure.test")])
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"secure body"[..])
    );
    assert_eq!(tls.hosts.lock().unwrap().as_slice(), ["secure.test"]);
}

/// `printf 'GET ...' | nc -N edge 8080`: the client closes its write side right after the
/// request and waits for the answer. It gets the whole response, for a miss and for a hit.
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = origin()
        .route(
            "/logo.png",
            Reply::ok("png bytes").header("cache-control", "max-age=60"),
        )
        .start()
        .await;
    let edge = TestEdge::start(EdgeConfig {
        catch_all: Some(OriginSpec::from_url(&origin.url()).unwrap()),
        ..EdgeConfig::default()
    })
    .await;
    for expected_cache in ["x-cache: miss", "x-cache: hit"] {
        let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
        stream
            .write_all(b"GET /logo.png HTTP/1.1\r\nHost: img.example\r\n\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply))
            .await
            .expect("the response ends")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply).to_lowercase();
        assert!(reply.starts_with("http/1.1 200"), "{reply:?}");
        assert!(reply.contains(expected_cache), "{reply:?}");
        assert!(reply.ends_with("\r\n\r\npng bytes"), "{reply:?}");
    }
    assert_eq!(origin.count("/logo.png"), 1);
}
