//! The request path's decisions, one function per step, in the order they run. Each takes
//! what it needs (the request's view, the stored entry, the origin's status and fields,
//! `now`) and returns a decision; none does I/O, touches a counter or reads the clock, so
//! tests drive every one without sockets. The executor in [`super`] (`Edge::handle` and
//! the methods it calls) does what they decide.
//!
//! ```text
//! route          every request, first         -> Routed   (refuse 400/508/404, or a domain
//!                                                          and how to handle the method)
//! after_lookup   GET/HEAD, after cache.lookup -> Lookup   (serve stored | fetch, maybe
//!                                                          revalidating a stale entry)
//! only_if_cached a fetch is due               -> bool     (true: 504, never forwarded)
//! origin_request a fetch is due               -> OriginRequest (the fields the origin gets)
//! judge          the origin answered          -> Judged   (304 merge | pass | store)
//! stored_meta    Judged::Store                -> what the fill records (id, meta, length)
//! after_outcome  the fetch's outcome arrived  -> Reply    (stream the fill | a stored entry
//!                                                          | forward | fetch again | error)
//! invalidated    an unsafe method's answer    -> the cache keys it makes stale
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Version};
use http_cache_semantics::CachePolicy;

use super::{Ctx, Joined, Outcome, Served};
use crate::cdn::normalize_host;
use crate::edge::cache::disk::{META_VERSION, StoredMeta};
use crate::edge::cache::policy::{self, CacheRequest, Freshness, Reuse, StoreDecision};
use crate::edge::cache::{Entry, EntryId, Fill, headers_to_pairs};
use crate::edge::origin::{OriginError, OriginRequest};
use crate::edge::range;
use crate::edge::route::{OriginSpec, Router};

pub(super) static CDN_LOOP: HeaderName = HeaderName::from_static("cdn-loop");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Step 1, `route`: runs first, for every client request.
#[derive(Debug)]
pub(super) enum Routed {
    /// Neither the URI nor a Host field names a host: 400.
    NoHost,
    /// `CDN-Loop` already names this edge: 508, counted.
    Loop,
    /// No domain and no catch-all serve the host (normalised): 404, counted.
    UnknownHost(String),
    /// `spec` serves the request; `handling` says how.
    Domain(Box<RoutedDomain>),
}

/// What [`route`] found for a request an accelerated domain (or the catch-all) serves.
#[derive(Debug)]
pub(super) struct RoutedDomain {
    /// The Host as received (sent to the origin unless the domain sets `origin_host`).
    pub host_raw: String,
    /// Normalised: the cache key's host.
    pub host: String,
    pub spec: Arc<OriginSpec>,
    /// Origin-form target ("/" when the request had none).
    pub target: String,
    pub handling: Handling,
}

/// How a routed request is handled (after the domain's request is counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handling {
    /// CONNECT: 405.
    Refuse,
    /// GET/HEAD of a `large-files` / `vod` domain: slice by slice.
    Sliced,
    /// GET/HEAD: through the cache.
    Cacheable,
    /// Any other method: forwarded; unsafe ones then invalidate the URL.
    Forward,
}

/// Step 1: which domain serves `req`, or why it is refused. `name` is this edge's.
pub(super) fn route<B>(req: &Request<B>, name: &str, router: &Router) -> Routed {
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
        return Routed::NoHost;
    };
    if cdn_loop_names(req.headers(), name) {
        return Routed::Loop;
    }
    let host = normalize_host(&host_raw);
    let Some(spec) = router.route(&host) else {
        return Routed::UnknownHost(host);
    };
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| p.starts_with('/'))
        .unwrap_or_else(|| "/".to_string());
    let handling = match *req.method() {
        Method::CONNECT => Handling::Refuse,
        Method::GET | Method::HEAD if spec.business.sliced() => Handling::Sliced,
        Method::GET | Method::HEAD => Handling::Cacheable,
        _ => Handling::Forward,
    };
    Routed::Domain(Box::new(RoutedDomain {
        host_raw,
        host,
        spec,
        target,
        handling,
    }))
}

/// Step 2, `after_lookup`: runs for GET/HEAD (and each slice) once the cache was asked.
#[derive(Debug)]
pub(super) enum Lookup {
    /// Fresh: serve it (should its body be unreadable: fetch, with nothing stale).
    Hit(Arc<Entry>),
    /// Stale within `stale-while-revalidate`: serve it and refresh it in the background.
    StaleWhileRevalidate(Arc<Entry>),
    /// Go to the origin; with `stale`, as a revalidation of that entry.
    Fetch { stale: Option<Arc<Entry>> },
}

/// Step 2: what a cache lookup's result means for the request.
pub(super) fn after_lookup(found: Option<(Arc<Entry>, Reuse)>) -> Lookup {
    match found {
        Some((entry, Reuse::Fresh)) => Lookup::Hit(entry),
        Some((entry, Reuse::StaleWhileRevalidate)) => Lookup::StaleWhileRevalidate(entry),
        Some((entry, Reuse::Revalidate)) => Lookup::Fetch { stale: Some(entry) },
        None => Lookup::Fetch { stale: None },
    }
}

/// Step 2b, `only_if_cached`: runs when a fetch is due. True when the client forbids it
/// (RFC 9111 5.2.1.7: nothing usable stored, so 504).
pub(super) fn only_if_cached(view: &CacheRequest) -> bool {
    !view.is_plain()
        && policy::directives(view.headers(), "cache-control")
            .iter()
            .any(|(name, _)| name == "only-if-cached")
}

/// Step 3, `origin_request`: runs when a cacheable request (or slice) goes to the origin.
/// The client's fields, forwarded ([`forward_headers`]) without its own conditions and
/// range; a slice's range; `stale`'s validators for a revalidation. Always a GET.
pub(super) fn origin_request(ctx: &Ctx, stale: Option<&Entry>, name: &str) -> OriginRequest {
    let mut headers = forward_headers(ctx.view.headers(), ctx.client, ctx.version, name);
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
    if let Some(stale) = stale {
        for (name, value) in policy::validators(&stale.headers) {
            headers.insert(name, value);
        }
    }
    OriginRequest {
        method: Method::GET,
        target: ctx.target.clone(),
        headers,
        body: bytes::Bytes::new(),
    }
}

/// Step 4, `judge`: runs when the origin answered a cacheable request.
#[derive(Debug)]
pub(super) enum Judged {
    /// A 304 to a revalidation: merge it into the stale entry, which is fresh again.
    NotModified,
    /// A 5xx to a revalidation: forwarded (counted as an origin error); waiters holding
    /// the stale entry may serve it instead.
    RevalidationFailed,
    /// Forwarded to one client, not stored; with `server_error`, waiters holding a stale
    /// copy may serve it instead.
    Pass {
        reason: &'static str,
        server_error: bool,
    },
    /// Stored (and streamed to every waiter while it is written).
    Store {
        policy: Box<CachePolicy>,
        freshness: Freshness,
    },
}

/// Step 4: what to do with the origin's answer `status` + `headers` (hop-by-hop fields
/// already removed); `revalidating` when the request sent a stale entry's validators.
pub(super) fn judge(
    ctx: &Ctx,
    revalidating: bool,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Judged {
    if revalidating {
        if status == StatusCode::NOT_MODIFIED {
            return Judged::NotModified;
        }
        if status.is_server_error() {
            return Judged::RevalidationFailed;
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
                return Judged::Pass {
                    reason: "origin-ignored-range",
                    server_error: status.is_server_error(),
                };
            }
            StatusCode::OK
        }
        None => status,
    };
    match policy::decide_store(&ctx.view, judged_status, headers, ctx.spec.business, now) {
        StoreDecision::Pass(reason) => Judged::Pass {
            reason,
            server_error: status.is_server_error(),
        },
        StoreDecision::Store { policy, freshness } => Judged::Store { policy, freshness },
    }
}

/// Step 5, `stored_meta`: runs for [`Judged::Store`], before the fill starts. The entry's
/// id (its Vary variant), the metadata the fill records (length and checksum are filled
/// in at commit) and the length the origin announced.
pub(super) fn stored_meta(
    ctx: &Ctx,
    status: StatusCode,
    headers: &HeaderMap,
    policy: CachePolicy,
    freshness: Freshness,
) -> (EntryId, StoredMeta, Option<u64>) {
    let id = EntryId::for_variant(&ctx.primary, headers, ctx.view.headers());
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
        headers: headers_to_pairs(headers),
        policy,
        freshness,
        body_file: String::new(),
        body_len: 0,
        body_sha256: String::new(),
    };
    (id, meta, expected_len)
}

/// Step 5b: the `Cache-Status` reason when a fill could not start (the response is then
/// forwarded unstored).
pub(super) fn fill_refused(error: &std::io::Error) -> &'static str {
    if error.kind() == std::io::ErrorKind::FileTooLarge {
        "too-large"
    } else {
        "cache-write-error"
    }
}

/// Step 4b, after [`Judged::NotModified`]: the stale entry with the 304's fields merged
/// and its freshness recomputed (the executor persists it).
pub(super) fn revalidated_entry(
    ctx: &Ctx,
    stale: &Entry,
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
    Arc::new(Entry::new(stale.id, meta))
}

/// Step 6, `after_outcome`: runs when the (coalesced) fetch's outcome reached a request.
pub(super) enum Reply<'a> {
    /// Stream the fill: a stored miss.
    Fill(&'a Arc<Fill>, Served),
    /// Serve a stored entry: [`Served::Revalidated`] (a hit) or [`Served::StaleIfError`].
    Entry(Arc<Entry>, Served),
    /// Forward the origin's unstored response, if no other waiter took it first (if one
    /// did: fetch again when allowed, else 502).
    Forward(&'static str),
    /// Fetch this request's own, uncoalesced: another Vary variant was fetched, or the
    /// outcome was stale for a late joiner.
    Refetch,
    /// The origin failed and nothing stale may be served: 502/504.
    Failed(&'a OriginError),
}

/// Step 6: what the request gets from `outcome`. `stale` is the entry it was revalidating;
/// `may_refetch` is false for a request already on its own fetch.
pub(super) fn after_outcome<'a>(
    outcome: &'a Outcome,
    joined: Joined,
    stale: Option<&Arc<Entry>>,
    view: &CacheRequest,
    now: SystemTime,
    may_refetch: bool,
) -> Reply<'a> {
    // What a late joiner gets is a stored response like any other: it may serve it only
    // while it is fresh (a response stale on arrival was for the requests before it).
    let usable = |entry: &Entry| {
        let reuse = policy::reuse(
            &entry.meta.policy,
            &entry.meta.freshness,
            entry.varies,
            view,
            now,
        );
        match joined {
            Joined::Late => reuse == Some(Reuse::Fresh),
            Joined::Led | Joined::Followed => reuse.is_some(),
        }
    };
    let stale_if_error = || {
        stale
            .filter(|e| policy::may_serve_on_error(&e.meta.policy, &e.meta.freshness, now))
            .map(|e| Reply::Entry(e.clone(), Served::StaleIfError))
    };
    match outcome {
        Outcome::Fill(fill) => {
            if !usable(&fill.entry) && may_refetch {
                return Reply::Refetch;
            }
            let coalesced = joined != Joined::Led;
            let stored = true;
            Reply::Fill(fill, Served::Miss { stored, coalesced })
        }
        Outcome::Revalidated(entry) => {
            if !usable(entry) && may_refetch {
                return Reply::Refetch;
            }
            Reply::Entry(entry.clone(), Served::Revalidated)
        }
        Outcome::Pass {
            reason,
            server_error,
            ..
        } => match server_error.then(stale_if_error).flatten() {
            Some(reply) => reply,
            None => Reply::Forward(reason),
        },
        Outcome::Failed(error) => stale_if_error().unwrap_or(Reply::Failed(error)),
    }
}

/// Step 7, `invalidated`: runs when the origin answered a forwarded method. The cache keys
/// (URLs; each with its slices) the answer makes stale: none for safe methods or error
/// answers; else the request's URL and the same-host URLs its Location and
/// Content-Location name (RFC 9111 4.4).
pub(super) fn invalidated(
    method: &Method,
    status: StatusCode,
    response: &HeaderMap,
    host: &str,
    primary: &str,
) -> Vec<String> {
    let safe = matches!(*method, Method::OPTIONS | Method::TRACE);
    if safe || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut keys = vec![primary.to_string()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let named = response.get(name).and_then(|v| v.to_str().ok());
        if let Some(target) = named.and_then(|v| same_host_target(host, v)) {
            keys.push(policy::primary_key(host, &target));
        }
    }
    keys
}

/// Request fields for the origin: hop-by-hop removed; X-Forwarded-For, Via, CDN-Loop
/// (`name` is this edge's). X-Forwarded-Proto is already set, by the listener
/// ([`crate::edge::serve_all`]).
pub(super) fn forward_headers(
    incoming: &HeaderMap,
    client: SocketAddr,
    version: Version,
    name: &str,
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
    if let Ok(value) = HeaderValue::from_str(&format!("{protocol} {name}")) {
        headers.append(header::VIA, value);
    }
    if let Ok(value) = HeaderValue::from_str(name) {
        headers.append(CDN_LOOP.clone(), value);
    }
    headers
}

/// The keys [`super::Edge::purge`] removes for `url`: `(key, whole directory)`. A URL
/// ending in `/` (no query) is a directory: every key under it; else the URL and its
/// slices.
pub(super) fn purge_keys(url: &str) -> Result<(String, bool), String> {
    let (host, target) = split_url(url)?;
    let directory = target.ends_with('/') && !target.contains('?');
    Ok((policy::primary_key(&host, &target), directory))
}

/// `(normalized host, origin-form target)` of an absolute URL.
pub(super) fn split_url(url: &str) -> Result<(String, String), String> {
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

/// Whether a CDN-Loop field (RFC 8586) already names this edge.
pub(super) fn cdn_loop_names(headers: &HeaderMap, name: &str) -> bool {
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
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::cdn::CdnConfig;
    use crate::edge::metrics::DomainCounters;
    use crate::edge::origin::OriginErrorKind;
    use crate::edge::route::DomainTable;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// `img.customer.com` (small files) and `dl.customer.com` (large files), plus a
    /// catch-all.
    fn router() -> Router {
        let text = "[cdn]\nzone = \"cdn.example.net\"\nsuffix = \"w.cdn.example.net\"\n\n\
            [[edge]]\nname = \"e1\"\ncountry = \"US\"\nipv4 = [\"127.0.1.1\"]\n\n\
            [[domain]]\nname = \"img.customer.com\"\nregion = \"overseas\"\n\
            business = \"small-files\"\norigins = [\"127.0.0.1\"]\n\n\
            [[domain]]\nname = \"dl.customer.com\"\nregion = \"overseas\"\n\
            business = \"large-files\"\norigins = [\"127.0.0.1\"]\n";
        let config = CdnConfig::parse(text, Path::new("cdn.toml")).unwrap();
        let router = Router::new(None);
        router.set_domains(DomainTable::from_cdn(Arc::new(config)));
        router
    }

    fn request(method: Method, uri: &str, pairs: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::builder().method(method).uri(uri).body(()).unwrap();
        *req.headers_mut() = headers(pairs);
        req
    }

    fn routed(req: &Request<()>) -> RoutedDomain {
        match route(req, "edge-1", &router()) {
            Routed::Domain(routed) => *routed,
            other => panic!("not routed: {other:?}"),
        }
    }

    fn ctx(path: &str, pairs: &[(&str, &str)]) -> Ctx {
        let spec = OriginSpec::from_url("http://127.0.0.1:9").unwrap();
        Ctx {
            host_raw: "img.customer.com".into(),
            spec: Arc::new(spec),
            target: path.into(),
            primary: policy::primary_key("img.customer.com", path),
            view: CacheRequest::new("img.customer.com", path, &headers(pairs)),
            head: false,
            client: "192.0.2.7:5000".parse().unwrap(),
            version: Version::HTTP_11,
            slice: None,
            counters: Arc::new(DomainCounters::default()),
            file_sender: None,
        }
    }

    /// The entry `ctx`'s request would store from a 200 with `response` fields at `now()`.
    fn stored(ctx: &Ctx, response: &[(&str, &str)]) -> Arc<Entry> {
        let h = headers(response);
        let Judged::Store { policy, freshness } = judge(ctx, false, StatusCode::OK, &h, now())
        else {
            panic!("not storable: {response:?}");
        };
        let (id, mut meta, _) = stored_meta(ctx, StatusCode::OK, &h, *policy, freshness);
        meta.body_len = 1;
        Arc::new(Entry::new(id, meta))
    }

    fn failed() -> Outcome {
        Outcome::Failed(OriginError {
            kind: OriginErrorKind::Connect,
            target: "http://127.0.0.1:9".into(),
            message: "refused".into(),
        })
    }

    #[test]
    fn route_refuses_or_names_the_domain_and_the_handling() {
        let router = router();
        let no_host = request(Method::GET, "/x", &[]);
        assert!(matches!(route(&no_host, "edge-1", &router), Routed::NoHost));
        let looped = request(
            Method::GET,
            "/x",
            &[("host", "img.customer.com"), ("cdn-loop", "other, Edge-1")],
        );
        assert!(matches!(route(&looped, "edge-1", &router), Routed::Loop));
        let unknown = request(Method::GET, "/x", &[("host", "Other.ORG:8080")]);
        assert!(
            matches!(route(&unknown, "edge-1", &router), Routed::UnknownHost(h) if h == "other.org")
        );

        let got = routed(&request(
            Method::GET,
            "/a?b=1",
            &[("host", "IMG.customer.com.")],
        ));
        assert_eq!(got.host_raw, "IMG.customer.com.");
        assert_eq!(got.host, "img.customer.com");
        assert_eq!(got.spec.domain, "img.customer.com");
        assert_eq!(got.target, "/a?b=1");
        assert_eq!(got.handling, Handling::Cacheable);
        let absolute = routed(&request(Method::HEAD, "http://dl.customer.com/f", &[]));
        assert_eq!(absolute.handling, Handling::Sliced);
        let host = [("host", "img.customer.com")];
        assert_eq!(
            routed(&request(Method::POST, "/", &host)).handling,
            Handling::Forward
        );
        assert_eq!(
            routed(&request(Method::CONNECT, "img.customer.com:443", &[])).handling,
            Handling::Refuse
        );
    }

    #[test]
    fn lookup_results_become_decisions() {
        let ctx = ctx("/a", &[]);
        let entry = stored(&ctx, &[("cache-control", "max-age=60")]);
        let found = |reuse| Some((entry.clone(), reuse));
        assert!(matches!(after_lookup(found(Reuse::Fresh)), Lookup::Hit(_)));
        assert!(matches!(
            after_lookup(found(Reuse::StaleWhileRevalidate)),
            Lookup::StaleWhileRevalidate(_)
        ));
        assert!(matches!(
            after_lookup(found(Reuse::Revalidate)),
            Lookup::Fetch { stale: Some(_) }
        ));
        assert!(matches!(after_lookup(None), Lookup::Fetch { stale: None }));
        assert!(only_if_cached(&ctx_view(&[(
            "cache-control",
            "only-if-cached"
        )])));
        assert!(!only_if_cached(&ctx_view(&[("cache-control", "no-cache")])));
        assert!(!only_if_cached(&ctx_view(&[])));
    }

    fn ctx_view(pairs: &[(&str, &str)]) -> CacheRequest {
        ctx("/a", pairs).view
    }

    #[test]
    fn the_origin_request_drops_client_conditions_and_adds_ours() {
        let client = [
            ("range", "bytes=0-1"),
            ("if-none-match", "\"client\""),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("x-forwarded-for", "198.51.100.1"),
            ("accept", "*/*"),
        ];
        let miss = origin_request(&ctx("/a", &client), None, "edge-1");
        assert_eq!(miss.method, Method::GET);
        assert_eq!(miss.target, "/a");
        let h = &miss.headers;
        assert!(h.get("range").is_none() && h.get("if-none-match").is_none());
        assert!(h.get("x-hop").is_none(), "hop-by-hop fields are removed");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 192.0.2.7");
        assert_eq!(h["via"], "1.1 edge-1");
        assert_eq!(h["cdn-loop"], "edge-1");
        assert_eq!(h["accept"], "*/*");

        let plain = ctx("/a", &[]);
        let stale = stored(
            &plain,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
        );
        let revalidation = origin_request(&plain, Some(&stale), "edge-1");
        assert_eq!(revalidation.headers["if-none-match"], "\"v1\"");
        let slice = Ctx {
            slice: Some((2, 100)),
            ..plain
        };
        assert_eq!(
            origin_request(&slice, None, "edge-1").headers["range"],
            "bytes=200-299"
        );
    }

    #[test]
    fn the_origin_answer_is_judged() {
        let plain = ctx("/a", &[]);
        let h = |pairs: &[(&str, &str)]| headers(pairs);
        let fresh = h(&[("cache-control", "max-age=60")]);
        let at = now();
        assert!(matches!(
            judge(&plain, true, StatusCode::NOT_MODIFIED, &fresh, at),
            Judged::NotModified
        ));
        assert!(matches!(
            judge(&plain, true, StatusCode::BAD_GATEWAY, &fresh, at),
            Judged::RevalidationFailed
        ));
        assert!(matches!(
            judge(&plain, false, StatusCode::OK, &fresh, at),
            Judged::Store { .. }
        ));
        let cookie = h(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]);
        assert!(matches!(
            judge(&plain, false, StatusCode::OK, &cookie, at),
            Judged::Pass {
                reason: "set-cookie",
                server_error: false
            }
        ));
        let slice = Ctx {
            slice: Some((1, 100)),
            ..ctx("/a", &[])
        };
        assert!(matches!(
            judge(&slice, false, StatusCode::OK, &fresh, at),
            Judged::Pass {
                reason: "origin-ignored-range",
                ..
            }
        ));
        let covering = h(&[
            ("cache-control", "max-age=60"),
            ("content-range", "bytes 100-199/1000"),
        ]);
        assert!(matches!(
            judge(&slice, false, StatusCode::PARTIAL_CONTENT, &covering, at),
            Judged::Store { .. }
        ));
    }

    #[test]
    fn what_is_stored_names_the_variant_and_the_announced_length() {
        let ctx = ctx("/a", &[("accept-encoding", "gzip")]);
        let h = headers(&[
            ("cache-control", "max-age=60"),
            ("vary", "accept-encoding"),
            ("content-length", "1234"),
        ]);
        let Judged::Store { policy, freshness } = judge(&ctx, false, StatusCode::OK, &h, now())
        else {
            panic!("storable");
        };
        let (id, meta, len) = stored_meta(&ctx, StatusCode::OK, &h, *policy, freshness);
        assert_eq!(
            id,
            EntryId::for_variant(&ctx.primary, &h, ctx.view.headers())
        );
        assert_ne!(
            id,
            EntryId::for_variant(&ctx.primary, &h, &HeaderMap::new())
        );
        assert_eq!(len, Some(1234));
        assert_eq!(
            (meta.primary.as_str(), meta.domain.as_str()),
            ("img.customer.com/a", "*")
        );
        let too_large = std::io::Error::new(std::io::ErrorKind::FileTooLarge, "big");
        assert_eq!(fill_refused(&too_large), "too-large");
        assert_eq!(
            fill_refused(&std::io::Error::other("disk")),
            "cache-write-error"
        );
    }

    #[test]
    fn a_304_refreshes_the_stale_entry() {
        let ctx = ctx("/a", &[]);
        let stale = stored(&ctx, &[("cache-control", "max-age=1"), ("etag", "\"v1\"")]);
        let later = now() + Duration::from_secs(30);
        let not_modified = headers(&[("cache-control", "max-age=600"), ("etag", "\"v1\"")]);
        let fresh = revalidated_entry(&ctx, &stale, &not_modified, later);
        assert_eq!(fresh.id, stale.id);
        let reuse = |e: &Entry| {
            policy::reuse(
                &e.meta.policy,
                &e.meta.freshness,
                e.varies,
                &ctx.view,
                later,
            )
        };
        assert_eq!(reuse(&fresh), Some(Reuse::Fresh));
        assert_eq!(reuse(&stale), Some(Reuse::Revalidate));
    }

    #[test]
    fn outcomes_become_replies() {
        let ctx = ctx("/a", &[]);
        let at = now();
        let later = at + Duration::from_secs(30);
        let failed = failed();
        assert!(matches!(
            after_outcome(&failed, Joined::Led, None, &ctx.view, at, true),
            Reply::Failed(_)
        ));
        let spare = stored(&ctx, &[("cache-control", "max-age=1, stale-if-error=3600")]);
        assert!(matches!(
            after_outcome(&failed, Joined::Led, Some(&spare), &ctx.view, later, true),
            Reply::Entry(_, Served::StaleIfError)
        ));
        let server_error = Outcome::Pass {
            response: Mutex::new(None),
            reason: "origin-error",
            server_error: true,
        };
        assert!(matches!(
            after_outcome(
                &server_error,
                Joined::Followed,
                Some(&spare),
                &ctx.view,
                later,
                true
            ),
            Reply::Entry(_, Served::StaleIfError)
        ));
        assert!(matches!(
            after_outcome(
                &server_error,
                Joined::Followed,
                None,
                &ctx.view,
                later,
                true
            ),
            Reply::Forward("origin-error")
        ));
        let revalidated = Outcome::Revalidated(stored(&ctx, &[("cache-control", "max-age=1")]));
        assert!(matches!(
            after_outcome(&revalidated, Joined::Followed, None, &ctx.view, at, true),
            Reply::Entry(_, Served::Revalidated)
        ));
        // Stale on arrival: served to those who waited for it, not to a late joiner.
        assert!(matches!(
            after_outcome(&revalidated, Joined::Followed, None, &ctx.view, later, true),
            Reply::Entry(_, Served::Revalidated)
        ));
        assert!(matches!(
            after_outcome(&revalidated, Joined::Late, None, &ctx.view, later, true),
            Reply::Refetch
        ));
        assert!(matches!(
            after_outcome(&revalidated, Joined::Late, None, &ctx.view, later, false),
            Reply::Entry(_, Served::Revalidated)
        ));
    }

    #[test]
    fn unsafe_methods_invalidate_their_url_and_the_urls_they_name() {
        let answer = headers(&[
            ("location", "http://A.com/created"),
            ("content-location", "http://b.com/elsewhere"),
        ]);
        let keys = invalidated(
            &Method::POST,
            StatusCode::CREATED,
            &answer,
            "a.com",
            "a.com/x",
        );
        assert_eq!(keys, ["a.com/x", "a.com/created"]);
        let none = HeaderMap::new();
        let ok = StatusCode::OK;
        assert!(invalidated(&Method::OPTIONS, ok, &none, "a.com", "a.com/x").is_empty());
        let error = StatusCode::INTERNAL_SERVER_ERROR;
        assert!(invalidated(&Method::DELETE, error, &none, "a.com", "a.com/x").is_empty());
        assert_eq!(
            purge_keys("http://A.com/dir/").unwrap(),
            ("a.com/dir/".into(), true)
        );
        assert_eq!(
            purge_keys("http://a.com/f?v=1").unwrap(),
            ("a.com/f?v=1".into(), false)
        );
    }

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
