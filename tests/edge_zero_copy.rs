//! Zero-copy hits: stored bodies of 32 KiB and more go to HTTP/1.x clients with `sendfile`
//! from the disk tier. What clients get must be exactly what the origin sent (whole bodies,
//! ranges, keep-alive and pipelined requests, HEAD); HTTP/2 still works (without
//! `sendfile`); and a body file damaged behind the edge's back aborts the response instead
//! of sending wrong bytes. `meridian_edge_sendfile_bytes_total` shows the path was taken.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::edge::{Client, TestEdge, counter, temp_dir};
use common::origin::{Reply, generated_byte, origin};
use http::StatusCode;
use meridian::edge::EdgeConfig;
use meridian::edge::route::OriginSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: u64 = 1 << 20;

fn generated(start: u64, end: u64) -> Vec<u8> {
    (start..end).map(generated_byte).collect()
}

fn cacheable(len: u64) -> Reply {
    Reply::generated(len)
        .header("cache-control", "max-age=600")
        .header("etag", "\"v1\"")
}

/// `meridian_edge_sendfile_bytes_total` from the admin `/metrics`.
async fn sendfile_bytes(edge: &TestEdge) -> u64 {
    counter(edge.admin, "sendfile_bytes_total").await
}

#[tokio::test]
async fn large_hits_are_sent_with_sendfile_byte_for_byte() {
    // Above the threshold in memory too; one region; several 4 MiB regions with a ragged
    // end; and larger than the memory tier takes.
    let sizes = [40 * 1024 + 3, MIB + 1, 9 * MIB + 4097, 17 * MIB + 5];
    let mut builder = origin().route("/small.bin", cacheable(1000));
    for len in sizes {
        builder = builder.route(&format!("/{len}.bin"), cacheable(len));
    }
    let origin = builder.start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    for len in sizes {
        let url = edge.url(&format!("/{len}.bin"));
        let miss = client.get(&url, &[]).await;
        assert_eq!(
            (miss.status, miss.header("x-cache")),
            (StatusCode::OK, "MISS")
        );
        assert_eq!(miss.body.len() as u64, len);
    }
    let small = client.get(&edge.url("/small.bin"), &[]).await;
    assert_eq!(small.body.len(), 1000);
    let before = sendfile_bytes(&edge).await;
    assert_eq!(before, 0, "misses stream the fill, not sendfile");

    for len in sizes {
        let hit = client.get(&edge.url(&format!("/{len}.bin")), &[]).await;
        assert_eq!((hit.status, hit.header("x-cache")), (StatusCode::OK, "HIT"));
        assert_eq!(hit.header("content-length"), len.to_string());
        assert!(
            hit.body == generated(0, len),
            "hit body of {len} bytes differs from the origin's"
        );
    }
    let small = client.get(&edge.url("/small.bin"), &[]).await;
    assert_eq!(small.header("x-cache"), "HIT");
    assert_eq!(small.body, Bytes::from(generated(0, 1000)));
    assert_eq!(
        sendfile_bytes(&edge).await,
        sizes.iter().sum::<u64>(),
        "every large hit and nothing else went out with sendfile"
    );
    for len in sizes {
        assert_eq!(origin.count(&format!("/{len}.bin")), 1);
    }
}

#[tokio::test]
async fn ranges_of_a_stored_body_are_sent_with_sendfile() {
    let len = 6 * MIB + 17;
    let origin = origin().route("/r.bin", cacheable(len)).start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    assert_eq!(
        client.get(&edge.url("/r.bin"), &[]).await.body.len() as u64,
        len
    );
    let cases = [
        ("bytes=5000-5242879", 5000, 5 * MIB),
        ("bytes=-100000", len - 100000, len),
        ("bytes=4194300-", 4194300, len),
    ];
    let mut expected_sent = 0;
    for (range, start, end) in cases {
        let got = client.get(&edge.url("/r.bin"), &[("range", range)]).await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(got.header("x-cache"), "HIT");
        assert_eq!(
            got.header("content-range"),
            format!("bytes {start}-{}/{len}", end - 1)
        );
        assert!(got.body == generated(start, end), "{range}: wrong bytes");
        expected_sent += end - start;
    }
    assert_eq!(sendfile_bytes(&edge).await, expected_sent);
    assert_eq!(origin.count("/r.bin"), 1);
}

/// One HTTP/1.1 response read off a raw connection.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Reads one response (`head`: the request was HEAD, so no body follows).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, head: bool) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(60);
    let end_of_head = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        read_more(stream, buf, deadline).await;
    };
    let text = String::from_utf8(buf[..end_of_head].to_vec()).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    buf.drain(..end_of_head);
    let mut raw = Raw {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = if head {
        0
    } else {
        raw.header("content-length").parse().unwrap()
    };
    while buf.len() < len {
        read_more(stream, buf, deadline).await;
    }
    raw.body = buf.drain(..len).collect();
    raw
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) {
    let mut chunk = vec![0u8; 256 << 10];
    let left = deadline.saturating_duration_since(Instant::now());
    let n = tokio::time::timeout(left, stream.read(&mut chunk))
        .await
        .expect("response timed out")
        .expect("read failed");
    assert!(n > 0, "connection closed mid-response");
    buf.extend_from_slice(&chunk[..n]);
}

/// A request for `path` with the Host the client's warm-up used (the cache key has it).
fn request(edge: &TestEdge, method: &str, path: &str, extra: &str) -> String {
    let host = edge.addr;
    format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")
}

#[tokio::test]
async fn keep_alive_pipelined_and_head_requests_on_one_connection() {
    let big = 5 * MIB + 3;
    let origin = origin()
        .route("/big.bin", cacheable(big))
        .route("/mid.bin", cacheable(100_000))
        .route("/small.bin", cacheable(1000))
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    for path in ["/big.bin", "/mid.bin", "/small.bin"] {
        client.get(&edge.url(path), &[]).await;
    }

    // (method, path, extra header fields, expected status, expected body)
    let plan: Vec<(&str, &str, &str, u16, Vec<u8>)> = vec![
        ("GET", "/big.bin", "", 200, generated(0, big)),
        ("HEAD", "/big.bin", "", 200, Vec::new()),
        ("GET", "/small.bin", "", 200, generated(0, 1000)),
        ("GET", "/mid.bin", "", 200, generated(0, 100_000)),
        (
            "GET",
            "/big.bin",
            "Range: bytes=100-4194403\r\n",
            206,
            generated(100, 4194404),
        ),
        ("HEAD", "/mid.bin", "", 200, Vec::new()),
        ("GET", "/mid.bin", "", 200, generated(0, 100_000)),
        ("GET", "/big.bin", "", 200, generated(0, big)),
    ];
    let check = |raw: &Raw, step: &(&str, &str, &str, u16, Vec<u8>)| {
        let (method, path, _, status, body) = step;
        assert_eq!(raw.status, *status, "{method} {path}");
        assert_eq!(raw.header("x-cache"), "HIT", "{method} {path}");
        assert!(raw.body == *body, "{method} {path}: wrong body");
        if *method == "HEAD" {
            let full = if *path == "/big.bin" { big } else { 100_000 };
            assert_eq!(raw.header("content-length"), full.to_string());
        }
    };

    // Keep-alive: one request after the other on one connection.
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    let mut buf = Vec::new();
    for step in &plan {
        let (method, path, extra, _, _) = step;
        stream
            .write_all(request(&edge, method, path, extra).as_bytes())
            .await
            .unwrap();
        let raw = read_response(&mut stream, &mut buf, *method == "HEAD").await;
        check(&raw, step);
    }

    // Pipelined: every request written at once, the responses read in order.
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    let all: String = plan
        .iter()
        .map(|(method, path, extra, _, _)| request(&edge, method, path, extra))
        .collect();
    stream.write_all(all.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for step in &plan {
        let raw = read_response(&mut stream, &mut buf, step.0 == "HEAD").await;
        check(&raw, step);
    }
    assert!(buf.is_empty(), "no bytes beyond the last response");
    let bodies: u64 = plan
        .iter()
        .filter(|step| step.2.is_empty() && step.0 == "GET" && step.1 != "/small.bin")
        .map(|step| step.4.len() as u64)
        .sum::<u64>()
        + 4194304;
    assert_eq!(sendfile_bytes(&edge).await, 2 * bodies);
    assert_eq!(origin.count("/big.bin"), 1);
}

#[tokio::test]
async fn h2c_hits_are_correct_and_do_not_use_sendfile() {
    let len = 3 * MIB + 11;
    let origin = origin().route("/h2.bin", cacheable(len)).start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<Bytes>>();
    for expected in ["MISS", "HIT", "HIT"] {
        let response = h2.get(edge.url("/h2.bin").parse().unwrap()).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-cache"], expected);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(body == generated(0, len), "h2 body differs");
    }
    let client = Client::default();
    assert_eq!(sendfile_bytes(&edge).await, 0);
    // The same hit over HTTP/1.1 does use it.
    let hit = client.get(&edge.url("/h2.bin"), &[]).await;
    assert!(hit.body == generated(0, len));
    assert_eq!(sendfile_bytes(&edge).await, len);
    assert_eq!(origin.count("/h2.bin"), 1);
}

#[tokio::test]
async fn a_body_file_truncated_behind_the_edge_aborts_the_response() {
    let len = 24 * MIB;
    let origin = origin().route("/t.bin", cacheable(len)).start().await;
    let dir = temp_dir("zc-truncate");
    let edge = TestEdge::start(EdgeConfig {
        catch_all: Some(OriginSpec::from_url(&origin.url()).unwrap()),
        cache_dir: Some(dir.path().to_path_buf()),
        origin_response_timeout: Duration::from_secs(5),
        ..EdgeConfig::default()
    })
    .await;
    let client = Client::default();
    assert_eq!(
        client.get(&edge.url("/t.bin"), &[]).await.body.len() as u64,
        len
    );
    let body_file = std::fs::read_dir(dir.path().join("objects"))
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "body"))
        .expect("the body file");

    // A hit starts; the client reads its head, then the file loses its bytes.
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(request(&edge, "GET", "/t.bin", "").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        read_more(&mut stream, &mut buf, deadline).await;
    }
    let end_of_head = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..end_of_head]).to_lowercase();
    assert!(head.contains("x-cache: hit"), "{head}");
    assert!(head.contains(&format!("content-length: {len}")), "{head}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&body_file)
        .unwrap()
        .set_len(0)
        .unwrap();

    // Whatever arrives is the body's true prefix, and the response ends short.
    let mut body = buf.split_off(end_of_head);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk))
            .await
            .expect("the aborted response never ended")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    assert!(
        (body.len() as u64) < len,
        "the response must be cut short, got all {} bytes",
        body.len()
    );
    assert!(
        body == generated(0, body.len() as u64),
        "the bytes that were sent must be the body's own"
    );

    // The damaged entry is dropped: the next request fetches the object again.
    let again = client.get(&edge.url("/t.bin"), &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body == generated(0, len));
    assert_eq!(origin.count("/t.bin"), 2);
}
