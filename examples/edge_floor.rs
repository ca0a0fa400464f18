//! The cost floor of `meridian-edge`'s HTTP stack, for benchmarks: the same accept loop,
//! hyper settings and zero-copy writer, serving stored copies under the header set of a
//! cache hit, with no caching logic at all (no freshness, no Vary, no conditionals, no
//! metrics). Run in the edge harness beside `meridian-edge`, nginx and Varnish, it shows how
//! much of a hit's CPU the stack itself takes (README, "Benchmarks"):
//!
//! ```text
//! cargo build --release --example edge_floor
//! ../shared/bench/edge/run.sh --name floor -- \
//!     "$PWD/target/release/examples/edge_floor {LISTEN} {ORIGIN} {WORKDIR}"
//! ```
//!
//! The first request for a path fetches it from the origin (HTTP/1.0, whole body) into a
//! file in the work directory; every later one is a "hit": bodies under 32 KiB from memory,
//! larger ones with `sendfile` on HTTP/1.x (as `meridian-edge` serves its disk tier).
//! Not a cache: it never expires or revalidates anything.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use meridian::edge::body::{self, Body};
use meridian::edge::server::{ZeroCopy, serve};
use meridian::edge::zero_copy::FileSender;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Bodies at least this long go out with `sendfile` (`meridian-edge`'s threshold).
const SENDFILE_MIN: u64 = 32 * 1024;

/// The headers `meridian-edge` sends with a hit of the harness's objects.
const HIT_HEADERS: [(&str, &str); 9] = [
    ("content-type", "application/octet-stream"),
    ("cache-status", "meridian-edge; hit"),
    ("last-modified", "Thu, 26 Nov 2026 12:19:19 GMT"),
    ("accept-ranges", "bytes"),
    ("etag", "\"6b0823c7-19000\""),
    ("cache-control", "max-age=3600"),
    ("age", "0"),
    ("via", "1.1 meridian-edge"),
    ("x-cache", "HIT"),
];

struct Stored {
    file: Arc<File>,
    len: u64,
    /// The body itself when shorter than [`SENDFILE_MIN`].
    small: Option<Bytes>,
}

struct Floor {
    origin: SocketAddr,
    dir: PathBuf,
    stored: Mutex<HashMap<String, Arc<Stored>>>,
}

impl Floor {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let found = self.stored.lock().unwrap().get(&path).cloned();
        let stored = match found {
            Some(stored) => stored,
            None => match self.fetch(&path).await {
                Ok(stored) => stored,
                Err(error) => {
                    let mut response = Response::new(body::full(format!("{error}\n")));
                    *response.status_mut() = StatusCode::BAD_GATEWAY;
                    return response;
                }
            },
        };
        let body = match (&stored.small, request.extensions().get::<FileSender>()) {
            (Some(bytes), _) => body::full(bytes.clone()),
            (None, Some(sender)) => sender.body(stored.file.clone(), 0, stored.len),
            (None, None) => body::full(std::fs::read(self.file_name(&path)).unwrap_or_default()),
        };
        let mut head = HeaderMap::with_capacity(HIT_HEADERS.len() + 1);
        for (name, value) in HIT_HEADERS {
            head.insert(name, HeaderValue::from_static(value));
        }
        head.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.len));
        let mut response = Response::new(body);
        *response.headers_mut() = head;
        response
    }

    fn file_name(&self, path: &str) -> PathBuf {
        self.dir.join(path.replace('/', "_"))
    }

    /// GET `path` from the origin over HTTP/1.0 and store its body.
    async fn fetch(&self, path: &str) -> std::io::Result<Arc<Stored>> {
        let mut origin = tokio::net::TcpStream::connect(self.origin).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.origin);
        origin.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        origin.read_to_end(&mut reply).await?;
        let Some(head_end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err(std::io::Error::other(
                "origin sent no complete response head",
            ));
        };
        if !reply.starts_with(b"HTTP/1.1 200") && !reply.starts_with(b"HTTP/1.0 200") {
            return Err(std::io::Error::other("origin did not answer 200"));
        }
        let body = &reply[head_end + 4..];
        let name = self.file_name(path);
        File::create(&name)?.write_all(body)?;
        let stored = Arc::new(Stored {
            file: Arc::new(File::open(&name)?),
            len: body.len() as u64,
            small: (body.len() < SENDFILE_MIN as usize).then(|| Bytes::copy_from_slice(body)),
        });
        self.stored
            .lock()
            .unwrap()
            .insert(path.to_owned(), stored.clone());
        Ok(stored)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, origin, dir] = &args[..] else {
        eprintln!("usage: edge_floor LISTEN_ADDR http://ORIGIN_ADDR DIRECTORY");
        std::process::exit(2);
    };
    let parse = |what: &str, text: &str| -> SocketAddr {
        text.parse().unwrap_or_else(|_| {
            eprintln!("edge_floor: {what} must be ADDR:PORT, not {text:?}");
            std::process::exit(2);
        })
    };
    let listen = parse("LISTEN_ADDR", listen);
    let origin = parse("ORIGIN", origin.trim_start_matches("http://"));
    let floor = Arc::new(Floor {
        origin,
        dir: PathBuf::from(dir),
        stored: Mutex::default(),
    });
    let handler = move |request: Request<Incoming>, _peer| {
        let floor = floor.clone();
        async move { floor.respond(request).await }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("edge_floor: cannot listen on {listen}: {error}");
                std::process::exit(1);
            }
        };
        let zero_copy = ZeroCopy::Enabled(Arc::new(AtomicU64::new(0)));
        serve(listener, CancellationToken::new(), zero_copy, handler).await;
    });
}
