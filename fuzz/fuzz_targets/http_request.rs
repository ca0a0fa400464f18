//! The edge's request path: any bytes a client sends in, a well-formed response or a closed
//! connection out, never a panic or a hang. Run with `cargo +nightly fuzz run http_request`
//! from the repository root (seed inputs: `fuzz/corpus/http_request/`).
//!
//! One real `meridian-edge` runs in-process on loopback, with a disk cache and an access
//! log, in front of a small origin that answers every path with something cacheable (or
//! not: `no-store`, `Vary`, stale-while-revalidate, 304s to validators, ranges, errors),
//! so that inputs reach hits, misses, revalidation, ranges, slices (`big.fuzz`,
//! `large-files`), purges by unsafe methods, the access log's escaping, and both HTTP/1.x
//! and h2c. Each input is written on a fresh connection, the write side is closed, and
//! whatever comes back is read to the end.
//! Every 64 inputs a known request must still get its known body (the edge stays usable).
#![no_main]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use meridian::cdn::CdnConfig;
use meridian::edge::EdgeConfig;
use meridian::edge::route::{DomainTable, OriginSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// A response that takes longer than this is a hang (the origin answers at once).
const HANG: Duration = Duration::from_secs(10);

struct Harness {
    runtime: Runtime,
    edge: SocketAddr,
    _cache_dir: tempfile::TempDir,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cache_dir = tempfile::tempdir().expect("cache dir");
    let edge = runtime.block_on(async {
        let origin = TcpListener::bind("127.0.0.1:0").await.expect("origin bind");
        let origin_port = origin.local_addr().unwrap().port();
        tokio::spawn(serve_origin(origin));
        let origin_url = format!("http://127.0.0.1:{origin_port}");
        let config = EdgeConfig {
            name: "fuzz-edge".into(),
            catch_all: Some(OriginSpec::from_url(&origin_url).expect("origin URL")),
            cache_dir: Some(cache_dir.path().to_path_buf()),
            memory_cache_bytes: 1 << 20,
            disk_cache_bytes: 64 << 20,
            slice_bytes: 64 << 10,
            origin_response_timeout: Duration::from_secs(2),
            // Every line is formatted and escaped; none is kept.
            access_log: Some("/dev/null".into()),
            ..EdgeConfig::default()
        };
        let edge = meridian::edge::build(&config).await.expect("edge");
        // Domains are routed as in production: a validated cdn.toml and its own Host matching.
        edge.router
            .set_domains(DomainTable::from_cdn(Arc::new(domains(origin_port))));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("edge bind");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = meridian::edge::serve(
                edge,
                &config,
                vec![listener],
                None,
                CancellationToken::new(),
            )
            .await;
        });
        addr
    });
    Harness {
        runtime,
        edge,
        _cache_dir: cache_dir,
    }
});

/// `cdn.toml` with a sliced domain and a wildcard one, both from the fuzz origin.
fn domains(origin_port: u16) -> CdnConfig {
    let domain = |name: &str, business: &str| {
        format!(
            "[[domain]]\nname = \"{name}\"\nregion = \"overseas\"\nbusiness = \"{business}\"\n\
             origins = [\"127.0.0.1\"]\norigin_port = {origin_port}\n\n"
        )
    };
    let text = format!(
        "[cdn]\nzone = \"cdn.fuzz\"\nsuffix = \"w.cdn.fuzz\"\n\n\
         [[edge]]\nname = \"fuzz-edge\"\ncountry = \"US\"\nipv4 = [\"127.0.0.1\"]\n\n{}{}",
        domain("big.fuzz", "large-files"),
        domain("*.wild.fuzz", "vod"),
    );
    CdnConfig::parse(&text, std::path::Path::new("fuzz-cdn.toml")).expect("fuzz cdn.toml")
}

static INPUTS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let harness = &*HARNESS;
    harness.runtime.block_on(async {
        let reply = exchange(harness.edge, data).await;
        let h2 = data.starts_with(b"PRI * HTTP/2.0");
        assert!(
            reply.is_empty() || h2 || reply.starts_with(b"HTTP/1."),
            "an HTTP/1 client got something other than a response: {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(200)])
        );
        if INPUTS.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
            let probe = b"GET /probe.txt HTTP/1.1\r\nHost: probe.example\r\n\r\n";
            let reply = exchange(harness.edge, probe).await;
            let text = String::from_utf8_lossy(&reply);
            assert!(
                text.starts_with("HTTP/1.1 200") && text.ends_with(&body_text("/probe.txt")),
                "the edge stopped serving a plain request: {text:?}"
            );
        }
    });
});

/// Writes `request` on a new connection, closes the write side, reads until EOF.
async fn exchange(edge: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(edge).await.expect("connect to the edge");
    let mut reply = Vec::new();
    let io = async {
        // The edge may answer (and close) before reading everything: that is fine.
        if stream.write_all(request).await.is_ok() {
            let _ = stream.shutdown().await;
        }
        let _ = stream.read_to_end(&mut reply).await;
    };
    tokio::time::timeout(HANG, io)
        .await
        .unwrap_or_else(|_| panic!("no end to the response after {HANG:?}"));
    reply
}

/// The origin: keep-alive HTTP/1.1, behaviour chosen by words in the path.
async fn serve_origin(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                Ok::<_, Infallible>(origin_reply(req).await)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn body_text(path: &str) -> String {
    format!("body of {path}\n")
}

async fn origin_reply(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let _ = req.into_body().collect().await;
    let body: Bytes = if path.contains("big") {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    } else {
        body_text(&path).into()
    };
    let mut builder = Response::builder()
        .header(header::ETAG, "\"v1\"")
        .header(header::LAST_MODIFIED, "Mon, 02 Nov 2026 10:00:00 GMT");
    builder = builder.header(
        header::CACHE_CONTROL,
        if path.contains("nostore") {
            "no-store"
        } else if path.contains("stale") {
            "max-age=0, stale-while-revalidate=30, stale-if-error=60"
        } else if path.contains("private") {
            "private, max-age=60"
        } else {
            "max-age=60"
        },
    );
    if path.contains("vary") {
        builder = builder.header(header::VARY, "Accept-Encoding");
    }
    if path.contains("cdncc") {
        builder = builder.header("cdn-cache-control", "max-age=5");
    }
    if path.contains("cookie") {
        builder = builder.header(header::SET_COOKIE, "a=b");
    }
    if path.contains("e500") {
        return builder
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Full::new(Bytes::from_static(b"origin error\n")))
            .unwrap();
    }
    if headers.get(header::IF_NONE_MATCH) == Some(&HeaderValue::from_static("\"v1\"")) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if let Some((start, end)) = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| single_range(r, body.len()))
    {
        return builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", body.len()),
            )
            .body(Full::new(body.slice(start..=end)))
            .unwrap();
    }
    builder.body(Full::new(body)).unwrap()
}

/// `bytes=A-B` / `bytes=A-` within `len`, inclusive bounds.
fn single_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start: usize = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => len.checked_sub(1)?,
        end => end.parse::<usize>().ok()?.min(len.checked_sub(1)?),
    };
    (start <= end).then_some((start, end))
}
