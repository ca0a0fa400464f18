//! A small hyper origin for the edge's integration tests.
//!
//! ```ignore
//! let origin = origin()
//!     .route("/a.txt", Reply::ok("hello").header("cache-control", "max-age=60"))
//!     .route("/big.bin", Reply::generated(300 << 20).header("etag", "\"big\""))
//!     .start().await;
//! origin.count("/a.txt");            // requests seen for that path
//! origin.seen("/big.bin");           // their headers, in order
//! origin.stop().await; origin.restart().await;   // same port
//! ```
//!
//! Replies honour `If-None-Match` (304 when it matches the reply's ETag) and, for generated
//! bodies, single `Range` requests (206), producing bytes on the fly so that a 300 MB body is
//! never held in memory.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Body = BoxBody<Bytes, Infallible>;

/// The byte at `offset` of every generated body.
pub fn generated_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

#[derive(Clone, Debug)]
enum Content {
    Fixed(Bytes),
    Generated(u64),
}

/// What the origin answers on one path.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    content: Content,
    delay: Duration,
    /// Stop after this many body bytes and drop the connection (a broken origin).
    cut_after: Option<u64>,
    /// Pause this long between 64 KiB chunks of a generated body.
    trickle: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            content: Content::Fixed(body.into()),
            delay: Duration::ZERO,
            cut_after: None,
            trickle: Duration::ZERO,
        }
    }

    /// A body of `len` bytes, [`generated_byte`] each, made on the fly; honours Range.
    pub fn generated(len: u64) -> Reply {
        Reply {
            content: Content::Generated(len),
            ..Reply::ok("")
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits before answering (so that concurrent requests overlap).
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Sends the headers and this many body bytes, then stalls forever.
    pub fn stall_after(mut self, bytes: u64) -> Reply {
        self.cut_after = Some(bytes);
        self
    }

    pub fn trickle(mut self, pause: Duration) -> Reply {
        self.trickle = pause;
        self
    }
}

/// A request the origin saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub method: String,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Reply>>,
    seen: Mutex<Vec<Seen>>,
}

pub struct OriginBuilder {
    routes: HashMap<String, Reply>,
}

pub fn origin() -> OriginBuilder {
    OriginBuilder {
        routes: HashMap::new(),
    }
}

impl OriginBuilder {
    pub fn route(mut self, path: &str, reply: Reply) -> OriginBuilder {
        self.routes.insert(path.into(), reply);
        self
    }

    pub async fn start(self) -> Origin {
        let state = Arc::new(State::default());
        *state.routes.lock().unwrap() = self.routes;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut origin = Origin {
            addr,
            state,
            shutdown: CancellationToken::new(),
        };
        origin.serve(listener);
        origin
    }
}

pub struct Origin {
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Origin {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen for `path` (any method).
    pub fn count(&self, path: &str) -> usize {
        self.seen(path).len()
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Replaces (or adds) the reply on a path.
    pub fn set(&self, path: &str, reply: Reply) {
        self.state.routes.lock().unwrap().insert(path.into(), reply);
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&mut self) {
        self.shutdown.cancel();
    }

    /// Serves again on the same port.
    pub async fn restart(&mut self) {
        self.shutdown = CancellationToken::new();
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    () = shutdown.cancelled() => return,
                };
                let state = state.clone();
                let conn_shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        () = conn_shutdown.cancelled() => {}
                    }
                });
            }
        });
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    state.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        method: req.method().to_string(),
        headers: req.headers().clone(),
    });
    let reply = state.routes.lock().unwrap().get(&path).cloned();
    let Some(reply) = reply else {
        return response(404, &[], full("no such path on the test origin\n"));
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let etag = reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    if let (Some(etag), Some(inm)) = (&etag, req.headers().get("if-none-match"))
        && inm
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim() == etag)
    {
        return response(304, &reply.headers, full(""));
    }
    match reply.content {
        Content::Fixed(bytes) => {
            let mut headers = reply.headers.clone();
            headers.push(("content-length".into(), bytes.len().to_string()));
            let body = match reply.cut_after {
                Some(cut) => stalled(bytes.slice(..cut as usize)),
                None => full(bytes),
            };
            response(reply.status, &headers, body)
        }
        Content::Generated(len) => {
            let mut headers = reply.headers.clone();
            headers.push(("accept-ranges".into(), "bytes".into()));
            let range = req
                .headers()
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, b)| {
                    let a: u64 = a.parse().ok()?;
                    let b: u64 = if b.is_empty() {
                        len - 1
                    } else {
                        b.parse().ok()?
                    };
                    Some((a, b.min(len - 1)))
                });
            let (status, start, end) = match range {
                Some((a, b)) if a <= b && a < len => {
                    headers.push(("content-range".into(), format!("bytes {a}-{b}/{len}")));
                    (206, a, b + 1)
                }
                Some(_) => {
                    headers.push(("content-range".into(), format!("bytes */{len}")));
                    return response(416, &headers, full(""));
                }
                None => (reply.status, 0, len),
            };
            // The announced length stays whole: a cut body is a broken one.
            headers.push(("content-length".into(), (end - start).to_string()));
            let end = reply.cut_after.map_or(end, |cut| end.min(start + cut));
            response(
                status,
                &headers,
                generated(start, end, reply.cut_after.is_some(), reply.trickle),
            )
        }
    }
}

fn response(status: u16, headers: &[(String, String)], body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        if status == 304 && name == "content-length" {
            continue;
        }
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// `bytes`, then a body that never ends (the connection is closed when the origin stops).
fn stalled(bytes: Bytes) -> Body {
    let stream =
        futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(bytes))]).chain_pending();
    StreamBody::new(stream).boxed()
}

fn generated(start: u64, end: u64, stall_at_end: bool, trickle: Duration) -> Body {
    const CHUNK: u64 = 64 << 10;
    let chunks = futures_util::stream::unfold(start, move |pos| async move {
        if pos >= end {
            return None;
        }
        if !trickle.is_zero() {
            tokio::time::sleep(trickle).await;
        }
        let n = CHUNK.min(end - pos);
        let data: Vec<u8> = (pos..pos + n).map(generated_byte).collect();
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(data))), pos + n))
    });
    if stall_at_end {
        StreamBody::new(chunks.chain_pending()).boxed()
    } else {
        StreamBody::new(chunks).boxed()
    }
}

trait ChainPending: futures_util::Stream + Sized {
    fn chain_pending(
        self,
    ) -> futures_util::stream::Chain<Self, futures_util::stream::Pending<Self::Item>> {
        futures_util::StreamExt::chain(self, futures_util::stream::pending())
    }
}

impl<S: futures_util::Stream> ChainPending for S {}
