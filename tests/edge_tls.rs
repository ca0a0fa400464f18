//! `meridian-edge --tls-listen ADDR --tls-cert CERT.pem:KEY.pem`: HTTPS for clients, the
//! certificate chosen by SNI (exact and wildcard names), HTTP/1.1 and h2 by ALPN, the cache
//! shared with plain HTTP, and clear errors for bad certificate arguments.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::edge::{EdgeProcess, counter, path_str, temp_dir};
use common::origin::{Reply, origin};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A test CA and two leaf certificates signed by it, written as PEM files in `dir`:
/// `a.pem`/`a.key` for `a.test`, `b.pem`/`b.key` for `*.b.test`. Returns the CA's PEM.
fn certificates(dir: &Path) -> String {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    for (file, name) in [("a", "a.test"), ("b", "*.b.test")] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
    ca_cert.pem()
}

fn pair(dir: &Path, cert: &str, key: &str) -> String {
    let path = |name: &str| -> PathBuf { dir.join(name) };
    format!("{}:{}", path_str(&path(cert)), path_str(&path(key)))
}

/// A client trusting only the test CA, offering `alpn`.
fn connector(ca_pem: &str, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// GET `path` over TLS to `addr` with SNI and Host `name`; the negotiated ALPN protocol,
/// the status, `X-Cache` and the body. Err when the handshake fails (certificate refused).
async fn get(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
    path: &str,
) -> Result<(Option<Vec<u8>>, StatusCode, String, Bytes), String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let h2 = alpn.as_deref() == Some(b"h2");
    let request = Request::builder()
        .uri(if h2 {
            format!("https://{name}{path}")
        } else {
            path.to_string()
        })
        .header("host", name)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let status = response.status();
    let x_cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((alpn, status, x_cache, body))
}

#[tokio::test]
async fn https_clients_get_the_certificate_for_their_name_and_the_cached_content() {
    let origin = origin()
        .route(
            "/logo.png",
            Reply::ok("png bytes").header("cache-control", "max-age=600"),
        )
        .start()
        .await;
    let dir = temp_dir("tls");
    let ca = certificates(dir.path());
    let edge = EdgeProcess::spawn(&[
        "--origin",
        &origin.url(),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &pair(dir.path(), "a.pem", "a.key"),
        "--tls-cert",
        &pair(dir.path(), "b.pem", "b.key"),
    ]);
    let https = edge.https.expect("the HTTPS address is logged");
    let http1 = connector(&ca, &[b"http/1.1"]);

    // The exact name: a.test's certificate verifies; the first request fills the cache.
    let (alpn, status, x_cache, body) = get(&http1, https, "a.test", "/logo.png").await.unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(
        (status, x_cache.as_str(), &body[..]),
        (StatusCode::OK, "MISS", &b"png bytes"[..])
    );
    let (_, _, x_cache, body) = get(&http1, https, "a.test", "/logo.png").await.unwrap();
    assert_eq!((x_cache.as_str(), &body[..]), ("HIT", &b"png bytes"[..]));

    // A name under the wildcard certificate: chosen by SNI, and served over h2 by ALPN.
    let h2 = connector(&ca, &[b"h2", b"http/1.1"]);
    let (alpn, status, _, body) = get(&h2, https, "img.b.test", "/logo.png").await.unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"png bytes"[..]));

    // A name no certificate covers gets the first one, which the client refuses.
    let refused = get(&http1, https, "c.test", "/logo.png").await.unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");

    // Plain HTTP still works beside it, and shares the cache.
    let plain = common::edge::Client::default()
        .get(&edge.url("/logo.png"), &[("host", "a.test")])
        .await;
    assert_eq!(plain.header("x-cache"), "HIT");
    assert_eq!(
        origin.count("/logo.png"),
        2,
        "one fill per Host: a.test, img.b.test"
    );
}

fn start_error(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian-edge"))
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args([
            "--origin",
            "http://127.0.0.1:9",
            "--tls-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{args:?} must not start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_certificate_arguments_stop_the_start_and_say_which_file() {
    let dir = temp_dir("tls");
    certificates(dir.path());
    let error = start_error(&[]);
    assert!(
        error.contains("--tls-listen needs at least one --tls-cert"),
        "{error}"
    );

    let missing = dir.path().join("missing.pem");
    let error = start_error(&["--tls-cert", &format!("{}:x.key", path_str(&missing))]);
    assert!(error.contains(path_str(&missing)), "{error}");

    // a.test's certificate with b's key.
    let error = start_error(&["--tls-cert", &pair(dir.path(), "a.pem", "b.key")]);
    assert!(
        error.contains("does not fit") && error.contains(path_str(&dir.path().join("b.key"))),
        "{error}"
    );

    // A key file where the certificate should be.
    let error = start_error(&["--tls-cert", &pair(dir.path(), "a.key", "a.key")]);
    assert!(error.contains("no PEM CERTIFICATE"), "{error}");

    let error = start_error(&["--tls-cert", "only-one-path.pem"]);
    assert!(error.contains("CERT.pem:KEY.pem"), "{error}");
}

async fn wait_for_counter(edge: &EdgeProcess, name: &str, at_least: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while counter(edge.admin, name).await < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never reached {at_least}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_renewed_certificates_and_a_bad_one_keeps_the_old() {
    let origin = origin()
        .route("/x", Reply::ok("x").header("cache-control", "max-age=600"))
        .start()
        .await;
    let dir = temp_dir("tls");
    let ca = certificates(dir.path());
    let edge = EdgeProcess::spawn(&[
        "--origin",
        &origin.url(),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &pair(dir.path(), "a.pem", "a.key"),
    ]);
    let https = edge.https.unwrap();
    let client = connector(&ca, &[b"http/1.1"]);
    let hup = || assert!(edge.signal("HUP"));
    assert!(get(&client, https, "img.b.test", "/x").await.is_err());

    // "Renewal": a.pem/a.key now hold the *.b.test certificate.
    std::fs::copy(dir.path().join("b.pem"), dir.path().join("a.pem")).unwrap();
    std::fs::copy(dir.path().join("b.key"), dir.path().join("a.key")).unwrap();
    hup();
    wait_for_counter(&edge, "tls_reloads_total", 1).await;
    let (_, status, _, _) = get(&client, https, "img.b.test", "/x").await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // A broken edit is refused and the certificate in use stays.
    std::fs::write(dir.path().join("a.pem"), "not a certificate").unwrap();
    hup();
    wait_for_counter(&edge, "tls_reload_failures_total", 1).await;
    let (_, status, _, _) = get(&client, https, "img.b.test", "/x").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counter(edge.admin, "tls_reloads_total").await, 1);
}

#[tokio::test]
async fn sighup_without_https_does_not_stop_the_edge() {
    let origin = origin()
        .route("/x", Reply::ok("x").header("cache-control", "max-age=600"))
        .start()
        .await;
    let edge = EdgeProcess::spawn(&["--origin", &origin.url()]);
    let client = common::edge::Client::default();
    assert_eq!(
        client.get(&edge.url("/x"), &[]).await.status,
        StatusCode::OK
    );
    assert!(edge.signal("HUP"));
    // Still serving afterwards (a default SIGHUP would have ended the process).
    let got = client.get(&edge.url("/x"), &[]).await;
    assert_eq!((got.status, got.header("x-cache")), (StatusCode::OK, "HIT"));
    let mut edge = edge;
    assert!(
        edge.terminate().success(),
        "exits cleanly on SIGTERM, not from the SIGHUP"
    );
}

#[tokio::test]
async fn the_origin_hears_the_clients_scheme_and_can_vary_on_it() {
    let origin = origin()
        .route(
            "/page",
            Reply::ok("page")
                .header("cache-control", "max-age=600")
                .header("vary", "X-Forwarded-Proto"),
        )
        .start()
        .await;
    let dir = temp_dir("tls");
    let ca = certificates(dir.path());
    let edge = EdgeProcess::spawn(&[
        "--origin",
        &origin.url(),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &pair(dir.path(), "a.pem", "a.key"),
    ]);
    let plain = common::edge::Client::default();
    let https = connector(&ca, &[b"http/1.1"]);
    let plain_get = |spoof: bool| {
        let (plain, url) = (plain.clone(), edge.url("/page"));
        async move {
            let mut headers = vec![("host", "a.test")];
            if spoof {
                headers.push(("x-forwarded-proto", "https"));
            }
            plain
                .get(&url, &headers)
                .await
                .header("x-cache")
                .to_string()
        }
    };

    assert_eq!(plain_get(false).await, "MISS");
    let (_, _, x_cache, _) = get(&https, edge.https.unwrap(), "a.test", "/page")
        .await
        .unwrap();
    assert_eq!(x_cache, "MISS", "the HTTPS variant is its own");
    let (_, _, x_cache, _) = get(&https, edge.https.unwrap(), "a.test", "/page")
        .await
        .unwrap();
    assert_eq!(x_cache, "HIT");
    // A plain-HTTP client claiming https is still the http variant.
    assert_eq!(plain_get(true).await, "HIT");

    let schemes: Vec<String> = origin
        .seen("/page")
        .iter()
        .map(|seen| {
            let values: Vec<_> = seen.headers.get_all("x-forwarded-proto").iter().collect();
            assert_eq!(values.len(), 1, "one X-Forwarded-Proto, the edge's");
            values[0].to_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(schemes, ["http", "https"]);
}
