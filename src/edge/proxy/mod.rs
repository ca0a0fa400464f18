//! The request path: Host routing, loop refusal, cache lookup, coalesced origin fetches,
//! and the response the client gets.
//!
//! ```text
//! request -> Host -> Router -> OriginSpec            (404 unknown Host, 508 CDN-Loop)
//!   GET/HEAD: cache.lookup -> Fresh        -> stored response (Age, Cache-Status, X-Cache)
//!                          -> StaleWhileRevalidate -> stored response + background refresh
//!                          -> Revalidate / miss -> coalescer -> one origin fetch
//!                                 -> 304: merged into the entry, client gets it (200/206/304)
//!                                 -> storable: fill (clients stream the growing file)
//!                                 -> not storable: forwarded to one client; others fetch
//!                                 -> failure: stale-if-error, else 502/504
//!   other methods: forwarded, then the URL is invalidated on a non-error answer
//! ```
//!
//! Decisions come from `cache::policy` and `range`; bytes from `cache`; the origin from
//! `origin`. This module owns the glue; `respond` builds what clients get (header fields,
//! 304/206/416); `slice` serves `large-files` / `vod` objects slice by slice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use crate::cdn::normalize_host;
use crate::edge::body::Body;
use crate::edge::cache::coalesce::{self, Coalescer, Join};
use crate::edge::cache::disk::{META_VERSION, StoredMeta};
use crate::edge::cache::policy::{self, CacheRequest, Reuse, StoreDecision};
use crate::edge::cache::{Cache, Entry, EntryId, Fill, FillWriter, headers_to_pairs};
use crate::edge::metrics::{self, DomainCounters, Metrics};
use crate::edge::origin::{OriginClient, OriginError, OriginErrorKind, OriginRequest};
use crate::edge::range;
use crate::edge::route::{OriginSpec, Router};
use crate::edge::zero_copy::FileSender;

mod respond;
mod slice;

pub use respond::text;
use respond::{not_modified, unsatisfiable};

/// Largest request body forwarded for non-GET methods (it is buffered for failover).
const MAX_FORWARDED_BODY: usize = 64 << 20;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
static CDN_LOOP: HeaderName = HeaderName::from_static("cdn-loop");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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

    /// Answers one client request.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<Body> {
        metrics::inc(&self.metrics.requests);
        let host_raw = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        let Some(host_raw) = host_raw.filter(|h| !h.is_empty()) else {
            return text(
                StatusCode::BAD_REQUEST,
                "meridian-edge: the request has no Host\n",
            );
        };
        if cdn_loop_names(req.headers(), &self.name) {
            metrics::inc(&self.metrics.loops_refused);
            return text(
                StatusCode::LOOP_DETECTED,
                &format!(
                    "meridian-edge: loop detected: CDN-Loop already contains {:?}\n",
                    self.name
                ),
            );
        }
        let host = normalize_host(&host_raw);
        let Some(spec) = self.router.route(&host) else {
            metrics::inc(&self.metrics.unknown_host);
            return text(
                StatusCode::NOT_FOUND,
                &format!("meridian-edge: {host:?} is not an accelerated domain on this edge\n"),
            );
        };
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| p.starts_with('/'))
            .unwrap_or_else(|| "/".to_string());
        let spec_domain = spec.domain.clone();
        let ctx = Ctx {
            primary: policy::primary_key(&host, &target),
            view: CacheRequest::new(&host, &target, req.headers()),
            host_raw,
            spec,
            target,
            head: req.method() == Method::HEAD,
            client,
            version: req.version(),
            slice: None,
            counters: self.metrics.domain(&spec_domain),
            file_sender: req.extensions().get::<FileSender>().cloned(),
        };
        metrics::inc(&ctx.counters.requests);
        if req.method() == Method::CONNECT {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "meridian-edge: CONNECT is not supported\n",
            );
        }
        if req.method() == Method::GET || req.method() == Method::HEAD {
            if ctx.spec.business.sliced() {
                return self.serve_sliced(&ctx).await;
            }
            self.serve_cacheable(&ctx).await
        } else {
            self.forward_other(req, &ctx).await
        }
    }

    async fn serve_cacheable(self: &Arc<Self>, ctx: &Ctx) -> Response<Body> {
        let now = SystemTime::now();
        // An unreadable stored body (damaged, evicted meanwhile) is dropped: a miss.
        let stale = match self.cache.lookup(&ctx.primary, &ctx.view, now) {
            Some((entry, Reuse::Fresh)) => {
                if let Some(response) = self.try_respond_entry(ctx, &entry, Served::Hit).await {
                    metrics::inc(&self.metrics.hits);
                    metrics::inc(&ctx.counters.hits);
                    return response;
                }
                None
            }
            Some((entry, Reuse::StaleWhileRevalidate)) => {
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
            Some((entry, Reuse::Revalidate)) => Some(entry),
            None => None,
        };
        if !ctx.view.is_plain()
            && policy::directives(ctx.view.headers(), "cache-control")
                .iter()
                .any(|(name, _)| name == "only-if-cached")
        {
            // RFC 9111 5.2.1.7: nothing usable stored, and the client forbids forwarding.
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

    /// One origin fetch for a cacheable request: a revalidation when `stale` is given.
    async fn fetch(
        &self,
        ctx: &Ctx,
        stale: Option<&Arc<Entry>>,
    ) -> (Arc<Outcome>, Option<(FillWriter, Incoming)>) {
        let mut headers = self.forward_headers(ctx.view.headers(), ctx.client, ctx.version);
        for name in [
            header::RANGE,
            header::IF_RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
        ] {
            headers.remove(name);
        }
        if let Some((index, size)) = ctx.slice {
            let range = format!("bytes={}-{}", index * size, index * size + size - 1);
            if let Ok(value) = HeaderValue::from_str(&range) {
                headers.insert(header::RANGE, value);
            }
        }
        match stale {
            Some(stale) => {
                metrics::inc(&self.metrics.revalidations);
                for (name, value) in policy::validators(&stale.headers) {
                    headers.insert(name, value);
                }
            }
            None => metrics::inc(&self.metrics.misses),
        }
        let request = OriginRequest {
            method: Method::GET,
            target: ctx.target.clone(),
            headers,
            body: Bytes::new(),
        };
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
        if let Some(stale) = stale {
            if status == StatusCode::NOT_MODIFIED {
                return (
                    Arc::new(Outcome::Revalidated(
                        self.refresh_entry(ctx, stale, &headers, now).await,
                    )),
                    None,
                );
            }
            if status.is_server_error() {
                metrics::inc(&self.metrics.origin_errors);
                return (pass(response, "origin-error", true), None);
            }
        }
        // A slice is stored as the 206 it is, and judged as the 200 it is part of.
        let judged_status = match ctx.slice {
            Some((index, size)) => {
                let covers = headers
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(range::parse_content_range)
                    .is_some_and(|(first, _, _)| first == index * size);
                if status != StatusCode::PARTIAL_CONTENT || !covers {
                    return (
                        pass(response, "origin-ignored-range", status.is_server_error()),
                        None,
                    );
                }
                StatusCode::OK
            }
            None => status,
        };
        match policy::decide_store(&ctx.view, judged_status, &headers, ctx.spec.business, now) {
            StoreDecision::Pass(reason) => (pass(response, reason, status.is_server_error()), None),
            StoreDecision::Store { policy, freshness } => {
                let id = EntryId::for_variant(&ctx.primary, &headers, ctx.view.headers());
                let expected_len = headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let meta = StoredMeta {
                    version: META_VERSION,
                    primary: ctx.primary.clone(),
                    domain: ctx.spec.domain.clone(),
                    business: ctx.spec.business,
                    status: status.as_u16(),
                    headers: headers_to_pairs(&headers),
                    policy: *policy,
                    freshness,
                    body_file: String::new(),
                    body_len: 0,
                    body_sha256: String::new(),
                };
                match self
                    .cache
                    .start_fill(id, meta, expected_len, self.frame_timeout)
                {
                    Ok((fill, writer)) => (
                        Arc::new(Outcome::Fill(fill)),
                        Some((writer, response.into_body())),
                    ),
                    Err(error) if error.kind() == std::io::ErrorKind::FileTooLarge => {
                        (pass(response, "too-large", false), None)
                    }
                    Err(error) => {
                        tracing::warn!(%error, key = %ctx.primary, "cannot start a cache fill; forwarding");
                        (pass(response, "cache-write-error", false), None)
                    }
                }
            }
        }
    }

    /// Merges a 304 into the stored entry and persists the new metadata.
    async fn refresh_entry(
        &self,
        ctx: &Ctx,
        stale: &Arc<Entry>,
        not_modified: &HeaderMap,
        now: SystemTime,
    ) -> Arc<Entry> {
        let judged_status = if ctx.slice.is_some() {
            StatusCode::OK
        } else {
            stale.status
        };
        let (merged, policy, freshness) = policy::revalidated(
            &ctx.view,
            judged_status,
            &stale.headers,
            not_modified,
            ctx.spec.business,
            now,
        );
        let mut meta = stale.meta.clone();
        meta.headers = headers_to_pairs(&merged);
        meta.policy = *policy;
        meta.freshness = freshness;
        let entry = Arc::new(Entry::new(stale.id, meta));
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

    async fn respond_outcome(
        self: &Arc<Self>,
        ctx: &Ctx,
        outcome: Arc<Outcome>,
        stale: Option<Arc<Entry>>,
        joined: Joined,
        may_refetch: bool,
    ) -> Response<Body> {
        let now = SystemTime::now();
        let coalesced = joined != Joined::Led;
        // What a late joiner gets is a stored response like any other: it may serve it only
        // while it is fresh (a response stale on arrival was for the requests before it).
        let usable = |reuse: Option<Reuse>| match joined {
            Joined::Late => reuse == Some(Reuse::Fresh),
            Joined::Led | Joined::Followed => reuse.is_some(),
        };
        let serve_stale = |stale: &Option<Arc<Entry>>| {
            stale
                .as_ref()
                .filter(|e| policy::may_serve_on_error(&e.meta.policy, &e.meta.freshness, now))
                .cloned()
        };
        match &*outcome {
            Outcome::Fill(fill) => {
                let matches = usable(policy::reuse(
                    &fill.entry.meta.policy,
                    &fill.entry.meta.freshness,
                    fill.entry.varies,
                    &ctx.view,
                    now,
                ));
                if !matches && may_refetch {
                    // Another Vary variant than the one fetched, or stale for a late
                    // joiner: fetch ours.
                    return Box::pin(self.uncoalesced(ctx, stale)).await;
                }
                self.respond_fill(
                    ctx,
                    fill,
                    Served::Miss {
                        stored: true,
                        coalesced,
                    },
                )
            }
            Outcome::Revalidated(entry) => {
                let matches = usable(policy::reuse(
                    &entry.meta.policy,
                    &entry.meta.freshness,
                    entry.varies,
                    &ctx.view,
                    now,
                ));
                if !matches && may_refetch {
                    // Another Vary variant was revalidated, or stale for a late joiner:
                    // fetch ours.
                    return Box::pin(self.uncoalesced(ctx, stale)).await;
                }
                metrics::inc(&self.metrics.hits);
                metrics::inc(&ctx.counters.hits);
                self.respond_entry(ctx, entry, Served::Revalidated).await
            }
            Outcome::Pass {
                response,
                reason,
                server_error,
            } => {
                if *server_error && let Some(stale) = serve_stale(&stale) {
                    metrics::inc(&self.metrics.stale_served);
                    return self.respond_entry(ctx, &stale, Served::StaleIfError).await;
                }
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
            Outcome::Failed(error) => {
                if let Some(stale) = serve_stale(&stale) {
                    metrics::inc(&self.metrics.stale_served);
                    return self.respond_entry(ctx, &stale, Served::StaleIfError).await;
                }
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

    /// Methods other than GET/HEAD: forwarded; unsafe ones invalidate the URL on success.
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
            headers: self.forward_headers(&parts.headers, ctx.client, ctx.version),
            body,
        };
        metrics::inc(&self.metrics.passes);
        metrics::inc(&self.metrics.origin_requests);
        match self.origin.send(&ctx.spec, &ctx.host_raw, &request).await {
            Ok(response) => {
                let safe = matches!(parts.method, Method::OPTIONS | Method::TRACE);
                let status = response.status();
                if !safe && (status.is_success() || status.is_redirection()) {
                    self.remove_url(&ctx.primary);
                    // RFC 9111 4.4: also the URLs it names, when on the same host.
                    let host = normalize_host(&ctx.host_raw);
                    for name in [header::LOCATION, header::CONTENT_LOCATION] {
                        let named = response.headers().get(name).and_then(|v| v.to_str().ok());
                        if let Some(target) = named.and_then(|v| same_host_target(&host, v)) {
                            self.remove_url(&policy::primary_key(&host, &target));
                        }
                    }
                }
                self.respond_forwarded(ctx, response, Served::Method)
            }
            Err(error) => {
                metrics::inc(&self.metrics.origin_errors);
                text(error.status(), &format!("meridian-edge: {error}\n"))
            }
        }
    }

    /// Request fields for the origin: hop-by-hop removed; X-Forwarded-For, Via, CDN-Loop.
    /// (X-Forwarded-Proto is already set, by the listener: [`crate::edge::serve_all`].)
    fn forward_headers(
        &self,
        incoming: &HeaderMap,
        client: SocketAddr,
        version: Version,
    ) -> HeaderMap {
        let mut headers = incoming.clone();
        policy::strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        let ip = client.ip().to_string();
        let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {ip}"),
            None => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&xff) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
        let protocol = match version {
            Version::HTTP_2 => "2",
            Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        if let Ok(value) = HeaderValue::from_str(&format!("{protocol} {}", self.name)) {
            headers.append(header::VIA, value);
        }
        if let Ok(value) = HeaderValue::from_str(&self.name) {
            headers.append(CDN_LOOP.clone(), value);
        }
        headers
    }

    /// Removes every stored variant and slice of one URL.
    fn remove_url(&self, primary: &str) -> usize {
        self.cache.remove_primary(primary)
            + self.cache.remove_prefix(&slice::slice_key_prefix(primary))
    }

    /// Removes a URL (or, ending in `/`, every URL under that directory) from the cache.
    pub fn purge(&self, url: &str) -> Result<usize, String> {
        let (host, target) = split_url(url)?;
        let removed = if target.ends_with('/') && !target.contains('?') {
            self.cache
                .remove_prefix(&policy::primary_key(&host, &target))
        } else {
            self.remove_url(&policy::primary_key(&host, &target))
        };
        metrics::add(&self.metrics.purged, removed as u64);
        Ok(removed)
    }

    /// Fetches a URL through the cache as a client would, to warm it; returns the status
    /// and `Cache-Status` the fetch got.
    pub async fn prefetch(self: &Arc<Self>, url: &str) -> Result<(u16, String), String> {
        let (host, target) = split_url(url)?;
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

/// `(normalized host, origin-form target)` of an absolute URL.
fn split_url(url: &str) -> Result<(String, String), String> {
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|_| format!("{url:?} is not a URL like http://host/path"))?;
    let host = uri
        .authority()
        .map(|a| normalize_host(a.as_str()))
        .ok_or_else(|| {
            format!("{url:?} has no host: give an absolute URL like http://host/path")
        })?;
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let target = if target.is_empty() { "/" } else { target };
    Ok((host, target.to_string()))
}

/// The target of a Location-like value if it names `host` (or is a relative path).
fn same_host_target(host: &str, value: &str) -> Option<String> {
    if value.starts_with('/') && !value.starts_with("//") {
        return Some(value.to_string());
    }
    let (url_host, target) = split_url(value).ok()?;
    (url_host == host).then_some(target)
}

fn pass(response: Response<Incoming>, reason: &'static str, server_error: bool) -> Arc<Outcome> {
    Arc::new(Outcome::Pass {
        response: Mutex::new(Some(response)),
        reason,
        server_error,
    })
}

/// Whether a CDN-Loop field (RFC 8586) already names this edge.
fn cdn_loop_names(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(&CDN_LOOP)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|member| member.split(';').next())
        .any(|id| id.trim().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdn_loop_matches_members_case_insensitively() {
        let mut h = HeaderMap::new();
        h.append(
            &CDN_LOOP,
            HeaderValue::from_static("other, Meridian-Edge; v=1"),
        );
        assert!(cdn_loop_names(&h, "meridian-edge"));
        assert!(!cdn_loop_names(&h, "meridian"));
        assert!(!cdn_loop_names(&HeaderMap::new(), "meridian-edge"));
    }

    #[test]
    fn location_targets_on_the_same_host_only() {
        assert_eq!(same_host_target("a.com", "/x?1").as_deref(), Some("/x?1"));
        assert_eq!(
            same_host_target("a.com", "http://A.com/y").as_deref(),
            Some("/y")
        );
        assert_eq!(same_host_target("a.com", "http://b.com/y"), None);
        assert_eq!(same_host_target("a.com", "//b.com/y"), None);
        assert_eq!(same_host_target("a.com", "relative"), None);
    }

    #[test]
    fn urls_split_into_host_and_target() {
        assert_eq!(
            split_url("http://A.com:80/x?y=1").unwrap(),
            ("a.com".into(), "/x?y=1".into())
        );
        assert_eq!(
            split_url("http://a.com").unwrap(),
            ("a.com".into(), "/".into())
        );
        assert!(split_url("/relative").is_err());
    }
}
