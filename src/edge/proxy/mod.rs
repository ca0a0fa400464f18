//! The request path: Host routing, loop refusal, cache lookup, coalesced origin fetches,
//! and the response the client gets.
//!
//! ```text
//! request -> route: Host -> Router -> OriginSpec      (404 unknown Host, 508 CDN-Loop)
//!   GET/HEAD: look up: cache.lookup -> Hit        -> stored response (Age, Cache-Status)
//!                                   -> StaleWhileRevalidate -> stored + background refresh
//!                                   -> Fetch (revalidate | miss) -> coalescer -> one fetch
//!             fetch: origin_request -> origin -> judge -> 304: merged into the entry
//!                                                      -> store: fill (clients stream it)
//!                                                      -> pass: forwarded to one client
//!             respond: after_outcome -> fill | entry | forward | refetch | 502/504
//!                                       (failure: stale-if-error first)
//!   other methods: forwarded, then the URLs the answer invalidates are removed
//! ```
//!
//! Each step is a function of [`steps`] that returns a decision and does no I/O (so unit
//! tests drive it without sockets); this module is the executor: it calls the steps in
//! order and does what they decide (cache reads, origin requests, fills, counters).
//! Decisions underneath come from `cache::policy` and `range`; bytes from `cache`; the
//! origin from `origin`. `respond` builds what clients get (header fields, 304/206/416);
//! `slice` serves `large-files` / `vod` objects slice by slice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use crate::edge::body::Body;
use crate::edge::cache::coalesce::{self, Coalescer, Join};
use crate::edge::cache::policy::{self, CacheRequest};
use crate::edge::cache::{Cache, Entry, Fill, FillWriter};
use crate::edge::metrics::{self, DomainCounters, Metrics};
use crate::edge::origin::{OriginClient, OriginError, OriginErrorKind, OriginRequest};
use crate::edge::route::{OriginSpec, Router};
use crate::edge::zero_copy::FileSender;
use steps::{Handling, Judged, Lookup, Reply, Routed};

mod respond;
mod slice;
mod steps;

pub use respond::text;
use respond::{not_modified, unsatisfiable};

/// Largest request body forwarded for non-GET methods (it is buffered for failover).
const MAX_FORWARDED_BODY: usize = 64 << 20;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The shared state of one running edge.
pub struct Edge {
    pub name: String,
    pub router: Router,
    pub cache: Arc<Cache>,
    pub origin: OriginClient,
    pub metrics: Metrics,
    coalescer: Coalescer<Arc<Outcome>>,
    /// How long an origin body may stall before its fill is abandoned.
    frame_timeout: Duration,
    /// Slice size for `large-files` / `vod` domains.
    pub slice_bytes: u64,
    labels: Labels,
    /// Background work (fills, refreshes), drained at shutdown.
    pub tasks: TaskTracker,
    /// The last `cdn.toml` reload's result: "ok", or the error text (for `/status`).
    pub last_reload: Mutex<Option<String>>,
}

/// What one origin fetch produced, shared by every request that waited for it.
pub enum Outcome {
    /// Storable: being written; every waiter streams it.
    Fill(Arc<Fill>),
    /// The origin said 304: the stored entry is fresh again.
    Revalidated(Arc<Entry>),
    /// Not storable: the first waiter forwards this response, the others fetch their own.
    Pass {
        response: Mutex<Option<Response<Incoming>>>,
        reason: &'static str,
        /// A 5xx answer: waiters holding a stale copy may serve it instead.
        server_error: bool,
    },
    Failed(OriginError),
}

/// How a request got its origin outcome from the coalescer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Joined {
    /// It led the fetch: the response was fetched for it.
    Led,
    /// It joined while the fetch was in flight.
    Followed,
    /// It joined after the outcome was published, while the fill was still being stored.
    Late,
}

/// How a response was produced, for `Cache-Status` and `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Hit,
    StaleWhileRevalidate,
    StaleIfError,
    Revalidated,
    Miss { stored: bool, coalesced: bool },
    Pass(&'static str),
    Method,
}

impl Served {
    fn body_from_cache(self) -> bool {
        matches!(
            self,
            Served::Hit | Served::StaleWhileRevalidate | Served::StaleIfError | Served::Revalidated
        )
    }
}

/// Header values built once: the hit path only clones them.
struct Labels {
    via: HeaderValue,
    hit: HeaderValue,
}

impl Labels {
    fn new(name: &str) -> Labels {
        let value = |text: String| {
            HeaderValue::from_str(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("meridian-edge"))
        };
        Labels {
            via: value(format!("1.1 {name}")),
            hit: value(format!("{name}; hit")),
        }
    }
}

/// One request as the proxy sees it.
#[derive(Clone)]
struct Ctx {
    /// The Host as received (sent to the origin unless `origin_host` is set).
    host_raw: String,
    spec: Arc<OriginSpec>,
    target: String,
    primary: String,
    view: CacheRequest,
    head: bool,
    client: SocketAddr,
    version: Version,
    /// For one slice of a sliced object: `(index, slice size)`; the key names the slice.
    slice: Option<(u64, u64)>,
    counters: Arc<DomainCounters>,
    /// The connection's zero-copy sender (HTTP/1.x client connections only).
    file_sender: Option<FileSender>,
}

impl Ctx {
    fn for_slice(&self, index: u64, size: u64) -> Ctx {
        Ctx {
            primary: slice::slice_key(&self.primary, index),
            slice: Some((index, size)),
            ..self.clone()
        }
    }
}

impl Edge {
    pub fn new(
        name: String,
        router: Router,
        cache: Arc<Cache>,
        origin: OriginClient,
        frame_timeout: Duration,
        slice_bytes: u64,
    ) -> Edge {
        Edge {
            labels: Labels::new(&name),
            name,
            router,
            cache,
            origin,
            metrics: Metrics::default(),
            coalescer: Coalescer::default(),
            frame_timeout,
            slice_bytes: slice_bytes.max(64 << 10),

            tasks: TaskTracker::new(),
            last_reload: Mutex::new(None),
        }
    }

    /// Answers one client request: step 1 ([`steps::route`]), then the handling it chose.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<Body> {
        metrics::inc(&self.metrics.requests);
        let routed = match steps::route(&req, &self.name, &self.router) {
            Routed::Domain(routed) => routed,
            Routed::NoHost => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "meridian-edge: the request has no Host\n",
                );
            }
            Routed::Loop => {
                metrics::inc(&self.metrics.loops_refused);
                return text(
                    StatusCode::LOOP_DETECTED,
                    &format!(
                        "meridian-edge: loop detected: CDN-Loop already contains {:?}\n",
                        self.name
                    ),
                );
            }
            Routed::UnknownHost(host) => {
                metrics::inc(&self.metrics.unknown_host);
                return text(
                    StatusCode::NOT_FOUND,
                    &format!("meridian-edge: {host:?} is not an accelerated domain on this edge\n"),
                );
            }
        };
        let steps::RoutedDomain {
            host_raw,
            host,
            spec,
            target,
            handling,
        } = *routed;
        let ctx = Ctx {
            primary: policy::primary_key(&host, &target),
            view: CacheRequest::new(&host, &target, req.headers()),
            counters: self.metrics.domain(&spec.domain),
            host_raw,
            spec,
            target,
            head: req.method() == Method::HEAD,
            client,
            version: req.version(),
            slice: None,
            file_sender: req.extensions().get::<FileSender>().cloned(),
        };
        metrics::inc(&ctx.counters.requests);
        match handling {
            Handling::Refuse => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "meridian-edge: CONNECT is not supported\n",
            ),
            Handling::Sliced => self.serve_sliced(&ctx).await,
            Handling::Cacheable => self.serve_cacheable(&ctx).await,
            Handling::Forward => self.forward_other(req, &ctx).await,
        }
    }

    /// GET/HEAD through the cache: step 2 ([`steps::after_lookup`]), then a coalesced
    /// fetch (steps 3-5) and step 6 ([`steps::after_outcome`]) when nothing stored serves.
    async fn serve_cacheable(self: &Arc<Self>, ctx: &Ctx) -> Response<Body> {
        let now = SystemTime::now();
        // An unreadable stored body (damaged, evicted meanwhile) is dropped: a miss.
        let stale = match steps::after_lookup(self.cache.lookup(&ctx.primary, &ctx.view, now)) {
            Lookup::Hit(entry) => {
                if let Some(response) = self.try_respond_entry(ctx, &entry, Served::Hit).await {
                    metrics::inc(&self.metrics.hits);
                    metrics::inc(&ctx.counters.hits);
                    return response;
                }
                None
            }
            Lookup::StaleWhileRevalidate(entry) => {
                let served = Served::StaleWhileRevalidate;
                if let Some(response) = self.try_respond_entry(ctx, &entry, served).await {
                    metrics::inc(&self.metrics.hits);
                    metrics::inc(&ctx.counters.hits);
                    metrics::inc(&self.metrics.stale_served);
                    self.spawn_refresh(ctx, entry.clone());
                    return response;
                }
                None
            }
            Lookup::Fetch { stale } => stale,
        };
        if steps::only_if_cached(&ctx.view) {
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                "meridian-edge: not in cache (only-if-cached)\n",
            );
        }
        let (outcome, joined) = self.coalesced_fetch(ctx, stale.clone()).await;
        self.respond_outcome(ctx, outcome, stale, joined, true)
            .await
    }

    fn spawn_refresh(self: &Arc<Self>, ctx: &Ctx, stale: Arc<Entry>) {
        let edge = self.clone();
        let ctx = ctx.clone();
        self.tasks.spawn(async move {
            let _ = edge.coalesced_fetch(&ctx, Some(stale)).await;
        });
    }

    /// Joins or leads the origin fetch for this URL.
    async fn coalesced_fetch(
        self: &Arc<Self>,
        ctx: &Ctx,
        stale: Option<Arc<Entry>>,
    ) -> (Arc<Outcome>, Joined) {
        let (rx, joined) = match self.coalescer.join(&ctx.primary) {
            Join::Leader(guard) => {
                let rx = guard.subscribe();
                let edge = self.clone();
                let ctx = ctx.clone();
                // The fetch runs in its own task so that followers never depend on the
                // leader's client staying connected.
                self.tasks.spawn(async move {
                    let (outcome, fill) = edge.fetch(&ctx, stale.as_ref()).await;
                    guard.publish(outcome);
                    if let Some((writer, body)) = fill {
                        let _ = writer.run(body, &edge.metrics).await;
                    }
                    drop(guard);
                });
                (rx, Joined::Led)
            }
            Join::Follower(rx) => {
                metrics::inc(&self.metrics.coalesced);
                let late = rx.borrow().is_some();
                (rx, if late { Joined::Late } else { Joined::Followed })
            }
        };
        let outcome = coalesce::wait(rx).await.unwrap_or_else(|| {
            Arc::new(Outcome::Failed(OriginError {
                kind: OriginErrorKind::Protocol,
                target: String::new(),
                message: "the origin fetch was abandoned".into(),
            }))
        });
        (outcome, joined)
    }

    /// One origin fetch for a cacheable request (a revalidation when `stale` is given):
    /// step 3 ([`steps::origin_request`]), the origin, step 4 ([`steps::judge`]) and, to
    /// store, step 5 ([`steps::stored_meta`]) and the fill's start. Returns the outcome
    /// every waiter gets and, when storing, the writer that copies the body.
    async fn fetch(
        &self,
        ctx: &Ctx,
        stale: Option<&Arc<Entry>>,
    ) -> (Arc<Outcome>, Option<(FillWriter, Incoming)>) {
        match stale {
            Some(_) => metrics::inc(&self.metrics.revalidations),
            None => metrics::inc(&self.metrics.misses),
        }
        let request = steps::origin_request(ctx, stale.map(|e| &**e), &self.name);
        metrics::inc(&self.metrics.origin_requests);
        let response = match self.origin.send(&ctx.spec, &ctx.host_raw, &request).await {
            Ok(response) => response,
            Err(error) => {
                metrics::inc(&self.metrics.origin_errors);
                return (Arc::new(Outcome::Failed(error)), None);
            }
        };
        let now = SystemTime::now();
        let status = response.status();
        let mut headers = response.headers().clone();
        policy::strip_hop_by_hop(&mut headers);
        match steps::judge(ctx, stale.is_some(), status, &headers, now) {
            Judged::NotModified => {
                let Some(stale) = stale else {
                    unreachable!("judge says NotModified only to a revalidation")
                };
                let entry = self.refresh_entry(ctx, stale, &headers, now).await;
                (Arc::new(Outcome::Revalidated(entry)), None)
            }
            Judged::RevalidationFailed => {
                metrics::inc(&self.metrics.origin_errors);
                (pass(response, "origin-error", true), None)
            }
            Judged::Pass {
                reason,
                server_error,
            } => (pass(response, reason, server_error), None),
            Judged::Store { policy, freshness } => {
                let (id, meta, expected_len) =
                    steps::stored_meta(ctx, status, &headers, *policy, freshness);
                match self
                    .cache
                    .start_fill(id, meta, expected_len, self.frame_timeout)
                {
                    Ok((fill, writer)) => (
                        Arc::new(Outcome::Fill(fill)),
                        Some((writer, response.into_body())),
                    ),
                    Err(error) => {
                        let reason = steps::fill_refused(&error);
                        if reason != "too-large" {
                            tracing::warn!(%error, key = %ctx.primary, "cannot start a cache fill; forwarding");
                        }
                        (pass(response, reason, false), None)
                    }
                }
            }
        }
    }

    /// Merges a 304 into the stored entry ([`steps::revalidated_entry`]) and persists
    /// the new metadata.
    async fn refresh_entry(
        &self,
        ctx: &Ctx,
        stale: &Arc<Entry>,
        not_modified: &HeaderMap,
        now: SystemTime,
    ) -> Arc<Entry> {
        let entry = steps::revalidated_entry(ctx, stale, not_modified, now);
        let cache = self.cache.clone();
        let stored = entry.clone();
        match tokio::task::spawn_blocking(move || cache.update_meta(stored)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, key = %ctx.primary, "cannot persist revalidated metadata")
            }
            Err(error) => tracing::warn!(%error, "revalidation update task failed"),
        }
        entry
    }

    /// Step 6 ([`steps::after_outcome`]) and the response it decides.
    async fn respond_outcome(
        self: &Arc<Self>,
        ctx: &Ctx,
        outcome: Arc<Outcome>,
        stale: Option<Arc<Entry>>,
        joined: Joined,
        may_refetch: bool,
    ) -> Response<Body> {
        let now = SystemTime::now();
        let reply = steps::after_outcome(
            &outcome,
            joined,
            stale.as_ref(),
            &ctx.view,
            now,
            may_refetch,
        );
        match reply {
            Reply::Refetch => Box::pin(self.uncoalesced(ctx, stale)).await,
            Reply::Fill(fill, served) => self.respond_fill(ctx, fill, served),
            Reply::Entry(entry, served) => {
                if served == Served::StaleIfError {
                    metrics::inc(&self.metrics.stale_served);
                } else {
                    metrics::inc(&self.metrics.hits);
                    metrics::inc(&ctx.counters.hits);
                }
                self.respond_entry(ctx, &entry, served).await
            }
            Reply::Forward(reason) => {
                let Outcome::Pass { response, .. } = &*outcome else {
                    unreachable!("after_outcome forwards only a Pass")
                };
                let taken = response.lock().unwrap_or_else(|e| e.into_inner()).take();
                match taken {
                    Some(response) => {
                        metrics::inc(&self.metrics.passes);
                        self.respond_forwarded(ctx, response, Served::Pass(reason))
                    }
                    None if may_refetch => Box::pin(self.uncoalesced(ctx, stale)).await,
                    None => text(
                        StatusCode::BAD_GATEWAY,
                        "meridian-edge: origin response unavailable\n",
                    ),
                }
            }
            Reply::Failed(error) => {
                let mut response = text(error.status(), &format!("meridian-edge: {error}\n"));
                self.decorate(response.headers_mut(), Served::Pass("origin-error"));
                response
            }
        }
    }

    /// A fetch of this request's own, not shared with others.
    async fn uncoalesced(self: &Arc<Self>, ctx: &Ctx, stale: Option<Arc<Entry>>) -> Response<Body> {
        let (outcome, fill) = self.fetch(ctx, stale.as_ref()).await;
        if let Some((writer, body)) = fill {
            let edge = self.clone();
            self.tasks.spawn(async move {
                let _ = writer.run(body, &edge.metrics).await;
            });
        }
        self.respond_outcome(ctx, outcome, stale, Joined::Led, false)
            .await
    }

    /// Methods other than GET/HEAD: forwarded; step 7 ([`steps::invalidated`]) says
    /// which URLs the answer makes stale.
    async fn forward_other(self: &Arc<Self>, req: Request<Incoming>, ctx: &Ctx) -> Response<Body> {
        let (parts, incoming) = req.into_parts();
        let body = match Limited::new(incoming, MAX_FORWARDED_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "meridian-edge: request body too large or broken\n",
                );
            }
        };
        let request = OriginRequest {
            method: parts.method.clone(),
            target: ctx.target.clone(),
            headers: steps::forward_headers(&parts.headers, ctx.client, ctx.version, &self.name),
            body,
        };
        metrics::inc(&self.metrics.passes);
        metrics::inc(&self.metrics.origin_requests);
        match self.origin.send(&ctx.spec, &ctx.host_raw, &request).await {
            Ok(response) => {
                let host = crate::cdn::normalize_host(&ctx.host_raw);
                let stale = steps::invalidated(
                    &parts.method,
                    response.status(),
                    response.headers(),
                    &host,
                    &ctx.primary,
                );
                for primary in &stale {
                    self.remove_url(primary);
                }
                self.respond_forwarded(ctx, response, Served::Method)
            }
            Err(error) => {
                metrics::inc(&self.metrics.origin_errors);
                text(error.status(), &format!("meridian-edge: {error}\n"))
            }
        }
    }

    /// Removes every stored variant and slice of one URL.
    fn remove_url(&self, primary: &str) -> usize {
        self.cache.remove_primary(primary)
            + self.cache.remove_prefix(&slice::slice_key_prefix(primary))
    }

    /// Removes a URL (or, ending in `/`, every URL under that directory) from the cache.
    pub fn purge(&self, url: &str) -> Result<usize, String> {
        let (key, directory) = steps::purge_keys(url)?;
        let removed = if directory {
            self.cache.remove_prefix(&key)
        } else {
            self.remove_url(&key)
        };
        metrics::add(&self.metrics.purged, removed as u64);
        Ok(removed)
    }

    /// Fetches a URL through the cache as a client would, to warm it; returns the status
    /// and `Cache-Status` the fetch got.
    pub async fn prefetch(self: &Arc<Self>, url: &str) -> Result<(u16, String), String> {
        let (host, target) = steps::split_url(url)?;
        let Some(spec) = self.router.route(&host) else {
            return Err(format!(
                "{host:?} is not an accelerated domain on this edge"
            ));
        };
        let spec_domain = spec.domain.clone();
        let ctx = Ctx {
            primary: policy::primary_key(&host, &target),
            view: CacheRequest::new(&host, &target, &HeaderMap::new()),
            host_raw: host,
            spec,
            target,
            head: false,
            client: SocketAddr::from(([127, 0, 0, 1], 0)),
            version: Version::HTTP_11,
            slice: None,
            counters: self.metrics.domain(&spec_domain),
            file_sender: None,
        };
        self.cache.favour(&ctx.primary);
        let response = if ctx.spec.business.sliced() {
            self.serve_sliced(&ctx).await
        } else {
            self.serve_cacheable(&ctx).await
        };
        let status = response.status().as_u16();
        let cache_status = response
            .headers()
            .get(&CACHE_STATUS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok((status, cache_status))
    }
}

fn pass(response: Response<Incoming>, reason: &'static str, server_error: bool) -> Arc<Outcome> {
    Arc::new(Outcome::Pass {
        response: Mutex::new(Some(response)),
        reason,
        server_error,
    })
}
