//! Cache decisions, pure: what may be stored, for how long, and how a stored response may
//! be reused for a request.
//!
//! In: request and response headers, the path's business type, and `now`. Out: decisions
//! ([`StoreDecision`], [`Reuse`]) and derived header maps. RFC 9111 semantics come from
//! `http-cache-semantics` (as a shared cache); this module adds what it leaves out:
//! `CDN-Cache-Control` (RFC 9213), the CDN's default TTL for static paths without freshness
//! information, the "dynamic = never stored" rule, stale-while-revalidate / stale-if-error
//! (RFC 5861) and client conditionals. No I/O, never reads the clock.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy, RequestLike};

use crate::cdn::Business;

/// The RFC 9213 targeted field this edge obeys and never forwards.
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// Hop-by-hop fields (RFC 9110 7.6.1), never forwarded in either direction.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields a 304 must not change in the stored response (the body is reused as is).
const KEPT_ON_REVALIDATION: &[&str] = &[
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "content-range",
];

/// Path extensions the CDN treats as static when the origin gives no freshness.
const STATIC_EXTENSIONS: &[&str] = &[
    // images
    "jpg", "jpeg", "png", "gif", "webp", "avif", "svg", "ico", "bmp", "tif", "tiff",
    // scripts, styles
    "js", "mjs", "css", "wasm", "map", // fonts
    "woff", "woff2", "ttf", "otf", "eot", // media
    "mp4", "m4v", "m4a", "m4s", "webm", "mp3", "aac", "ogg", "oga", "ogv", "flac", "wav", "mov",
    "avi", "mkv", "flv", "ts", // archives, packages
    "zip", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar", "tar", "apk", "ipa", "dmg", "iso", "exe",
    "msi", "deb", "rpm",
];

/// The request as the cache sees it: origin-form URI, GET for GET and HEAD, Host set.
#[derive(Debug, Clone)]
pub struct CacheRequest {
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    /// No Cache-Control or Pragma: the client asks nothing special of the cache.
    plain: bool,
}

impl CacheRequest {
    /// `host` is the normalized Host; `path_and_query` the request target in origin form.
    pub fn new(host: &str, path_and_query: &str, headers: &HeaderMap) -> CacheRequest {
        let uri = path_and_query
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"));
        let mut headers = headers.clone();
        if let Ok(value) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, value);
        }
        let plain =
            !headers.contains_key(header::CACHE_CONTROL) && !headers.contains_key(header::PRAGMA);
        CacheRequest {
            uri,
            method: Method::GET,
            headers,
            plain,
        }
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// No Cache-Control or Pragma in the request.
    pub fn is_plain(&self) -> bool {
        self.plain
    }
}

impl RequestLike for CacheRequest {
    fn uri(&self) -> Uri {
        self.uri.clone()
    }
    fn is_same_uri(&self, other: &Uri) -> bool {
        &self.uri == other
    }
    fn method(&self) -> &Method {
        &self.method
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// The cache key shared by every variant of one URL.
pub fn primary_key(host: &str, path_and_query: &str) -> String {
    format!("{host}{path_and_query}")
}

/// Options of a shared cache.
pub fn cache_options() -> CacheOptions {
    CacheOptions {
        shared: true,
        ..CacheOptions::default()
    }
}

/// TTL given to static paths whose response carries no freshness information.
pub fn default_ttl(business: Business) -> Duration {
    match business {
        Business::SmallFiles => Duration::from_secs(3600),
        Business::LargeFiles | Business::Vod => Duration::from_secs(24 * 3600),
        Business::Dcdn => Duration::from_secs(600),
    }
}

/// Whether the path's last segment has a static extension.
pub fn is_static_path(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            let ext = ext.to_ascii_lowercase();
            STATIC_EXTENSIONS.contains(&ext.as_str())
        }
        _ => false,
    }
}

/// The `(directive, value)` pairs of every value of a Cache-Control-like field.
pub fn directives(headers: &HeaderMap, name: &str) -> Vec<(String, Option<String>)> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let d = d.trim();
            if d.is_empty() {
                return None;
            }
            Some(match d.split_once('=') {
                Some((k, v)) => (
                    k.trim().to_ascii_lowercase(),
                    Some(v.trim().trim_matches('"').to_string()),
                ),
                None => (d.to_ascii_lowercase(), None),
            })
        })
        .collect()
}

fn has_directive(dirs: &[(String, Option<String>)], name: &str) -> bool {
    dirs.iter().any(|(k, _)| k == name)
}

fn seconds_directive(dirs: &[(String, Option<String>)], name: &str) -> Option<Duration> {
    dirs.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The response headers the edge's decisions read: `CDN-Cache-Control` replaces
/// `Cache-Control`, `Expires` and `Pragma` when present (RFC 9213), and a 200 for a static
/// path with no freshness information gets the business type's default TTL.
pub fn edge_view(
    status: StatusCode,
    origin_headers: &HeaderMap,
    path: &str,
    business: Business,
    now: SystemTime,
) -> HeaderMap {
    let mut view = origin_headers.clone();
    if view.contains_key(CDN_CACHE_CONTROL) {
        let targeted: Vec<HeaderValue> = view.get_all(CDN_CACHE_CONTROL).iter().cloned().collect();
        view.remove(header::CACHE_CONTROL);
        view.remove(header::EXPIRES);
        view.remove(header::PRAGMA);
        for value in targeted {
            view.append(header::CACHE_CONTROL, value);
        }
        view.remove(CDN_CACHE_CONTROL);
    }
    lowercase_directive_names(&mut view);
    first_age_only(&mut view);
    strict_expires(&mut view, now);
    clamp_delta_seconds(&mut view);
    let dirs = directives(&view, "cache-control");
    let has_freshness = has_directive(&dirs, "max-age")
        || has_directive(&dirs, "s-maxage")
        || view.contains_key(header::EXPIRES);
    let forbids = ["no-store", "no-cache", "private"]
        .iter()
        .any(|d| has_directive(&dirs, d));
    if status == StatusCode::OK && !has_freshness && !forbids && is_static_path(path) {
        let ttl = default_ttl(business).as_secs();
        if let Ok(value) = HeaderValue::from_str(&format!("max-age={ttl}")) {
            view.append(header::CACHE_CONTROL, value);
        }
    }
    view
}

/// RFC 9111 5.2: directive names are case-insensitive. The library matches them as written,
/// so `No-CaChE` or `MaX-aGe=60` are rewritten in lower case (quoted values untouched).
fn lowercase_directive_names(view: &mut HeaderMap) {
    let values: Vec<HeaderValue> = view
        .get_all(header::CACHE_CONTROL)
        .iter()
        .cloned()
        .collect();
    if !values
        .iter()
        .any(|v| v.as_bytes().iter().any(u8::is_ascii_uppercase))
    {
        return;
    }
    view.remove(header::CACHE_CONTROL);
    for value in values {
        let Ok(text) = value.to_str() else {
            view.append(header::CACHE_CONTROL, value);
            continue;
        };
        // Lower-case every byte outside quoted strings that belongs to a name, i.e. that
        // follows a comma (or the start) and precedes the directive's '='.
        let mut out = String::with_capacity(text.len());
        let (mut quoted, mut escaped, mut in_name) = (false, false, true);
        for c in text.chars() {
            if quoted {
                quoted = escaped || c != '"';
                escaped = !escaped && c == '\\';
                out.push(c);
                continue;
            }
            match c {
                '"' => quoted = true,
                ',' => in_name = true,
                '=' => in_name = false,
                _ => {}
            }
            out.push(if in_name { c.to_ascii_lowercase() } else { c });
        }
        let fixed = HeaderValue::from_str(&out).unwrap_or(value);
        view.append(header::CACHE_CONTROL, fixed);
    }
}

/// RFC 9111 5.1: `Age` is one delta-seconds. When an origin sends a list (`7200, 0`) or several
/// lines, the first member counts; a first member that is not delta-seconds means no `Age`.
fn first_age_only(view: &mut HeaderMap) {
    let mut values = view.get_all(header::AGE).iter();
    let Some(first) = values.next() else { return };
    if values.next().is_none() && !first.as_bytes().contains(&b',') {
        return;
    }
    let member = first
        .to_str()
        .ok()
        .and_then(|t| t.split(',').next())
        .map(str::trim)
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| HeaderValue::from_str(m).ok());
    view.remove(header::AGE);
    if let Some(member) = member {
        view.insert(header::AGE, member);
    }
}

/// RFC 9111 5.3: an `Expires` that is not a valid HTTP-date (RFC 9110 5.6.7) means "already
/// expired". The three date forms are accepted (names case-insensitively, a two-digit year
/// read as the nearest past-or-next-50-years one) and handed on as an IMF-fixdate; anything
/// else — other zones, extra spaces, dashes in the IMF form, several lines — becomes the epoch.
fn strict_expires(view: &mut HeaderMap, now: SystemTime) {
    let mut values = view.get_all(header::EXPIRES).iter();
    let Some(first) = values.next() else { return };
    let parsed = if values.next().is_none() {
        first.to_str().ok().and_then(|t| parse_http_date(t, now))
    } else {
        None
    };
    let when = parsed.unwrap_or(SystemTime::UNIX_EPOCH);
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
        view.insert(header::EXPIRES, value);
    }
}

/// Parses the three HTTP-date forms of RFC 9110 5.6.7; `now` resolves two-digit years.
pub fn parse_http_date(text: &str, now: SystemTime) -> Option<SystemTime> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const LONG_DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let lower = text.trim().to_ascii_lowercase();
    let digits = |s: &str, n: usize| -> Option<u64> {
        (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let month = |s: &str| MONTHS.iter().position(|m| *m == s).map(|i| i as u64 + 1);
    let time = |s: &str| -> Option<(u64, u64, u64)> {
        let mut parts = s.split(':');
        let h = digits(parts.next()?, 2)?;
        let m = digits(parts.next()?, 2)?;
        let sec = digits(parts.next()?, 2)?;
        (parts.next().is_none() && h < 24 && m < 60 && sec < 61).then_some((h, m, sec))
    };
    let (year, mon, day, hms) = if let Some((name, rest)) = lower.split_once(", ") {
        let fields: Vec<&str> = rest.split(' ').collect();
        if DAYS.contains(&name) {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            let [d, m, y, t, "gmt"] = fields.as_slice() else {
                return None;
            };
            (digits(y, 4)?, month(m)?, digits(d, 2)?, time(t)?)
        } else if LONG_DAYS.contains(&name) {
            // rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT
            let [date, t, "gmt"] = fields.as_slice() else {
                return None;
            };
            let mut dmy = date.split('-');
            let (d, m, yy) = (dmy.next()?, dmy.next()?, dmy.next()?);
            if dmy.next().is_some() {
                return None;
            }
            let yy = digits(yy, 2)?;
            let this_year =
                1970 + now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() / 31_556_952;
            let mut year = this_year - this_year % 100 + yy;
            if year > this_year + 50 {
                year -= 100;
            }
            (year, month(m)?, digits(d, 2)?, time(t)?)
        } else {
            return None;
        }
    } else {
        // asctime-date: Sun Nov  6 08:49:37 1994
        let (name, rest) = lower.split_at_checked(3)?;
        let rest = rest.strip_prefix(' ')?;
        if !DAYS.contains(&name) || rest.len() != 20 {
            return None;
        }
        let (m, rest) = rest.split_at_checked(3)?;
        let rest = rest.strip_prefix(' ')?;
        let (d, rest) = rest.split_at_checked(2)?;
        let d = d.strip_prefix(' ').unwrap_or(d);
        let rest = rest.strip_prefix(' ')?;
        let (t, y) = rest.split_once(' ')?;
        (digits(y, 4)?, month(m)?, d.parse().ok()?, time(t)?)
    };
    if !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant), for years from 1970.
    let (y, m) = if mon <= 2 {
        (year - 1, mon + 9)
    } else {
        (year, mon - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + hms.0 * 3600 + hms.1 * 60 + hms.2;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// RFC 9111 1.2.2: delta-seconds beyond 2^31 count as 2^31. Applied to `Age` and to the
/// Cache-Control values so that no later time arithmetic can overflow.
fn clamp_delta_seconds(view: &mut HeaderMap) {
    const MAX_DELTA: u64 = 2_147_483_648;
    // All digits but over 2^31 (or over u64): clamp. Anything else is left to the parser.
    let too_big = |text: &str| {
        let digits = text.trim().trim_matches('"');
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<u64>().map_or(true, |n| n > MAX_DELTA)
    };
    if view
        .get_all(header::AGE)
        .iter()
        .any(|v| v.to_str().is_ok_and(too_big))
    {
        view.insert(header::AGE, HeaderValue::from(MAX_DELTA));
    }
    let values: Vec<HeaderValue> = view
        .get_all(header::CACHE_CONTROL)
        .iter()
        .cloned()
        .collect();
    let clamp = |text: &str| {
        text.split(',')
            .map(|d| match d.split_once('=') {
                Some((k, n)) if too_big(n) => format!("{}={MAX_DELTA}", k.trim()),
                _ => d.trim().to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let needs = values.iter().any(|v| {
        v.to_str().is_ok_and(|t| {
            t.split(',')
                .any(|d| d.split_once('=').is_some_and(|(_, n)| too_big(n)))
        })
    });
    if needs {
        view.remove(header::CACHE_CONTROL);
        for value in values {
            let fixed = value
                .to_str()
                .map(clamp)
                .ok()
                .and_then(|t| HeaderValue::from_str(&t).ok());
            view.append(header::CACHE_CONTROL, fixed.unwrap_or(value));
        }
    }
}

/// Freshness facts kept beside a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Freshness {
    /// Freshness lifetime (from its `Date`/`Age` origin), seconds.
    pub lifetime_secs: u64,
    pub stale_while_revalidate_secs: u64,
    pub stale_if_error_secs: u64,
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`: never served stale.
    pub must_revalidate: bool,
}

/// Whether and how to store a response.
#[derive(Debug)]
pub enum StoreDecision {
    Store {
        policy: Box<CachePolicy>,
        freshness: Freshness,
    },
    /// Forward only; the reason is for logs and `Cache-Status` detail.
    Pass(&'static str),
}

/// Decides whether a response to `req` may be stored, RFC 9111 first, then the CDN rules.
pub fn decide_store(
    req: &CacheRequest,
    status: StatusCode,
    origin_headers: &HeaderMap,
    business: Business,
    now: SystemTime,
) -> StoreDecision {
    let view = edge_view(status, origin_headers, req.path(), business, now);
    let dirs = directives(&view, "cache-control");
    if view.contains_key(header::SET_COOKIE) && !has_directive(&dirs, "public") {
        return StoreDecision::Pass("set-cookie");
    }
    if view.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim() == "*"))
            .unwrap_or(true)
    }) {
        return StoreDecision::Pass("vary-star");
    }
    let has_freshness = has_directive(&dirs, "max-age")
        || has_directive(&dirs, "s-maxage")
        || view.contains_key(header::EXPIRES);
    let has_validator = view.contains_key(header::ETAG) || view.contains_key(header::LAST_MODIFIED);
    let policy = policy_for(req, status, view, now);
    if !policy.is_storable() {
        return StoreDecision::Pass("not-storable");
    }
    if !has_freshness && !has_validator {
        return StoreDecision::Pass("dynamic");
    }
    let freshness = freshness_of(&policy, &dirs, now);
    StoreDecision::Store {
        policy: Box::new(policy),
        freshness,
    }
}

fn policy_for(
    req: &CacheRequest,
    status: StatusCode,
    view: HeaderMap,
    now: SystemTime,
) -> CachePolicy {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = view;
    CachePolicy::new_options(req, &response, now, cache_options())
}

fn freshness_of(
    policy: &CachePolicy,
    dirs: &[(String, Option<String>)],
    now: SystemTime,
) -> Freshness {
    let lifetime = policy.time_to_live(now).saturating_add(policy.age(now));
    Freshness {
        lifetime_secs: lifetime.as_secs(),
        stale_while_revalidate_secs: seconds_directive(dirs, "stale-while-revalidate")
            .unwrap_or_default()
            .as_secs(),
        stale_if_error_secs: seconds_directive(dirs, "stale-if-error")
            .unwrap_or_default()
            .as_secs(),
        must_revalidate: ["must-revalidate", "proxy-revalidate", "no-cache"]
            .iter()
            .any(|d| has_directive(dirs, d)),
    }
}

/// The stored response after a 304: its headers updated by the 304's, and a new policy.
pub fn revalidated(
    req: &CacheRequest,
    status: StatusCode,
    stored_headers: &HeaderMap,
    not_modified_headers: &HeaderMap,
    business: Business,
    now: SystemTime,
) -> (HeaderMap, Box<CachePolicy>, Freshness) {
    let mut merged = stored_headers.clone();
    for name in not_modified_headers.keys() {
        let n = name.as_str();
        if KEPT_ON_REVALIDATION.contains(&n) || HOP_BY_HOP.contains(&n) {
            continue;
        }
        merged.remove(name);
        for value in not_modified_headers.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    let view = edge_view(status, &merged, req.path(), business, now);
    let dirs = directives(&view, "cache-control");
    let policy = policy_for(req, status, view, now);
    let freshness = freshness_of(&policy, &dirs, now);
    (merged, Box::new(policy), freshness)
}

/// How a stored response may serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it; no origin contact.
    Fresh,
    /// Serve it now and revalidate in the background (stale-while-revalidate).
    StaleWhileRevalidate,
    /// Ask the origin first (conditional request).
    Revalidate,
}

/// `None` when the stored response does not match the request (another Vary variant).
/// `varies`: the stored response has a Vary field.
pub fn reuse(
    policy: &CachePolicy,
    freshness: &Freshness,
    varies: bool,
    req: &CacheRequest,
    now: SystemTime,
) -> Option<Reuse> {
    // The common hit, decided without building the library's response parts: same key
    // (so same URI and Host), no Vary, nothing asked by the client.
    if req.plain && !varies && !policy.is_stale(now) {
        return Some(Reuse::Fresh);
    }
    match policy.before_request(req, now) {
        BeforeRequest::Fresh(_) => Some(Reuse::Fresh),
        BeforeRequest::Stale { matches: false, .. } => None,
        BeforeRequest::Stale { matches: true, .. } => {
            let req_dirs = directives(req.headers(), "cache-control");
            let client_insists = has_directive(&req_dirs, "no-cache")
                || req
                    .headers()
                    .get(header::PRAGMA)
                    .is_some_and(|p| p.to_str().is_ok_and(|p| p.contains("no-cache")))
                || seconds_directive(&req_dirs, "max-age").is_some();
            let stale_for = staleness(policy, freshness, now);
            if !client_insists
                && !freshness.must_revalidate
                && stale_for > Duration::ZERO
                && stale_for <= Duration::from_secs(freshness.stale_while_revalidate_secs)
            {
                Some(Reuse::StaleWhileRevalidate)
            } else {
                Some(Reuse::Revalidate)
            }
        }
    }
}

/// How long past its freshness lifetime the stored response is (zero while fresh).
pub fn staleness(policy: &CachePolicy, freshness: &Freshness, now: SystemTime) -> Duration {
    policy
        .age(now)
        .saturating_sub(Duration::from_secs(freshness.lifetime_secs))
}

/// Whether a stored response may be served because the origin failed (RFC 5861).
pub fn may_serve_on_error(policy: &CachePolicy, freshness: &Freshness, now: SystemTime) -> bool {
    !freshness.must_revalidate
        && staleness(policy, freshness, now) <= Duration::from_secs(freshness.stale_if_error_secs)
}

/// The conditional headers that revalidate a stored response.
pub fn validators(stored: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    if let Some(etag) = stored.get(header::ETAG) {
        out.push((header::IF_NONE_MATCH, etag.clone()));
    }
    if let Some(lm) = stored.get(header::LAST_MODIFIED) {
        out.push((header::IF_MODIFIED_SINCE, lm.clone()));
    }
    out
}

fn opaque_tag(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/")
}

/// Whether a client's conditional GET is answered 304 by this response (RFC 9110 13.2.2).
pub fn client_not_modified(req: &HeaderMap, status: StatusCode, resp: &HeaderMap) -> bool {
    if status != StatusCode::OK {
        return false;
    }
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        if inm.trim() == "*" {
            return true;
        }
        let Some(etag) = resp.get(header::ETAG).and_then(|e| e.to_str().ok()) else {
            return false;
        };
        return inm.split(',').any(|t| opaque_tag(t) == opaque_tag(etag));
    }
    let since = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let modified = resp
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
}

/// Header fields a 304 to a client carries (RFC 9110 15.4.5).
pub fn not_modified_headers(resp: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
    ] {
        for value in resp.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Removes hop-by-hop fields, including those the Connection field names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn req(path: &str, pairs: &[(&str, &str)]) -> CacheRequest {
        CacheRequest::new("example.com", path, &headers(pairs))
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn store(path: &str, resp: &[(&str, &str)]) -> StoreDecision {
        decide_store(
            &req(path, &[]),
            StatusCode::OK,
            &headers(resp),
            Business::SmallFiles,
            now(),
        )
    }

    fn lifetime(d: StoreDecision) -> u64 {
        match d {
            StoreDecision::Store { freshness, .. } => freshness.lifetime_secs,
            StoreDecision::Pass(why) => panic!("passed: {why}"),
        }
    }

    #[test]
    fn explicit_freshness_is_stored_whatever_the_path() {
        assert_eq!(
            lifetime(store("/api/x", &[("cache-control", "max-age=60")])),
            60
        );
        assert_eq!(
            lifetime(store(
                "/api/x",
                &[("cache-control", "s-maxage=30, max-age=5")]
            )),
            30
        );
    }

    #[test]
    fn dynamic_and_forbidden_responses_pass() {
        assert!(matches!(
            store("/api/x", &[]),
            StoreDecision::Pass("dynamic")
        ));
        assert!(matches!(
            store("/a.jpg", &[("cache-control", "no-store")]),
            StoreDecision::Pass(_)
        ));
        assert!(matches!(
            store("/a.jpg", &[("cache-control", "private, max-age=60")]),
            StoreDecision::Pass(_)
        ));
        assert!(matches!(
            store(
                "/a.jpg",
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
            ),
            StoreDecision::Pass("set-cookie")
        ));
        assert!(matches!(
            store("/a.jpg", &[("cache-control", "max-age=60"), ("vary", "*")]),
            StoreDecision::Pass("vary-star")
        ));
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        let r = req("/a", &[("authorization", "Bearer x")]);
        let h = headers(&[("cache-control", "max-age=60")]);
        assert!(matches!(
            decide_store(&r, StatusCode::OK, &h, Business::SmallFiles, now()),
            StoreDecision::Pass(_)
        ));
        let h = headers(&[("cache-control", "s-maxage=60")]);
        assert!(matches!(
            decide_store(&r, StatusCode::OK, &h, Business::SmallFiles, now()),
            StoreDecision::Store { .. }
        ));
    }

    #[test]
    fn static_path_without_freshness_gets_default_ttl() {
        assert_eq!(lifetime(store("/img/a.PNG", &[])), 3600);
        let d = decide_store(
            &req("/v.mp4", &[]),
            StatusCode::OK,
            &HeaderMap::new(),
            Business::Vod,
            now(),
        );
        assert_eq!(lifetime(d), 86400);
        // Only a 200 gets the default: a 404 for a missing image is not kept an hour.
        let d = decide_store(
            &req("/gone.png", &[]),
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            Business::SmallFiles,
            now(),
        );
        assert!(matches!(d, StoreDecision::Pass("dynamic")));
        // A validator without freshness is stored and revalidated each time.
        assert_eq!(lifetime(store("/api/x", &[("etag", "\"1\"")])), 0);
        // no-cache on a static path keeps the RFC meaning.
        assert_eq!(
            lifetime(store(
                "/a.css",
                &[("cache-control", "no-cache"), ("etag", "\"1\"")]
            )),
            0
        );
    }

    #[test]
    fn cdn_cache_control_takes_precedence() {
        assert_eq!(
            lifetime(store(
                "/x",
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=120")
                ]
            )),
            120
        );
        assert!(matches!(
            store(
                "/x",
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "no-store")
                ]
            ),
            StoreDecision::Pass(_)
        ));
    }

    #[test]
    fn reuse_fresh_stale_and_swr() {
        let r = req("/x", &[]);
        let h = headers(&[(
            "cache-control",
            "max-age=10, stale-while-revalidate=30, stale-if-error=100",
        )]);
        let StoreDecision::Store { policy, freshness } =
            decide_store(&r, StatusCode::OK, &h, Business::SmallFiles, now())
        else {
            panic!()
        };
        let at = |s| now() + Duration::from_secs(s);
        assert_eq!(
            reuse(&policy, &freshness, false, &r, at(5)),
            Some(Reuse::Fresh)
        );
        assert_eq!(
            reuse(&policy, &freshness, false, &r, at(20)),
            Some(Reuse::StaleWhileRevalidate)
        );
        assert_eq!(
            reuse(&policy, &freshness, false, &r, at(50)),
            Some(Reuse::Revalidate)
        );
        let insist = req("/x", &[("cache-control", "no-cache")]);
        assert_eq!(
            reuse(&policy, &freshness, false, &insist, at(5)),
            Some(Reuse::Revalidate)
        );
        assert!(may_serve_on_error(&policy, &freshness, at(100)));
        assert!(!may_serve_on_error(&policy, &freshness, at(200)));
    }

    #[test]
    fn vary_selects_variants() {
        let r = req("/x", &[("accept-encoding", "gzip")]);
        let h = headers(&[("cache-control", "max-age=10"), ("vary", "Accept-Encoding")]);
        let StoreDecision::Store { policy, freshness } =
            decide_store(&r, StatusCode::OK, &h, Business::SmallFiles, now())
        else {
            panic!()
        };
        assert_eq!(
            reuse(&policy, &freshness, true, &r, now()),
            Some(Reuse::Fresh)
        );
        let other = req("/x", &[("accept-encoding", "br")]);
        assert_eq!(reuse(&policy, &freshness, true, &other, now()), None);
    }

    #[test]
    fn must_revalidate_is_never_served_stale() {
        let r = req("/x", &[]);
        let h = headers(&[(
            "cache-control",
            "max-age=1, must-revalidate, stale-if-error=100",
        )]);
        let StoreDecision::Store { policy, freshness } =
            decide_store(&r, StatusCode::OK, &h, Business::SmallFiles, now())
        else {
            panic!()
        };
        assert!(!may_serve_on_error(
            &policy,
            &freshness,
            now() + Duration::from_secs(5)
        ));
    }

    #[test]
    fn revalidation_merges_headers_but_keeps_length() {
        let r = req("/x", &[]);
        let stored = headers(&[("etag", "\"1\""), ("content-length", "5"), ("x-a", "old")]);
        let fresh = headers(&[
            ("cache-control", "max-age=99"),
            ("content-length", "0"),
            ("x-a", "new"),
        ]);
        let (merged, _, freshness) = revalidated(
            &r,
            StatusCode::OK,
            &stored,
            &fresh,
            Business::SmallFiles,
            now(),
        );
        assert_eq!(merged["content-length"], "5");
        assert_eq!(merged["x-a"], "new");
        assert_eq!(freshness.lifetime_secs, 99);
    }

    #[test]
    fn client_conditionals() {
        let resp = headers(&[
            ("etag", "W/\"abc\""),
            ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ]);
        let ok = StatusCode::OK;
        assert!(client_not_modified(
            &headers(&[("if-none-match", "\"x\", \"abc\"")]),
            ok,
            &resp
        ));
        assert!(!client_not_modified(
            &headers(&[("if-none-match", "\"x\"")]),
            ok,
            &resp
        ));
        assert!(client_not_modified(
            &headers(&[("if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            ok,
            &resp
        ));
        assert!(!client_not_modified(
            &headers(&[("if-modified-since", "Tue, 20 Oct 2015 07:28:00 GMT")]),
            ok,
            &resp
        ));
        assert!(!client_not_modified(&HeaderMap::new(), ok, &resp));
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        let mut h = headers(&[
            ("connection", "x-secret, close"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("x-keep", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn huge_numbers_are_clamped_not_overflowed() {
        let d = store(
            "/x",
            &[
                ("age", "18446744073709551615"),
                ("cache-control", "max-age=99999999999999999999"),
            ],
        );
        assert_eq!(lifetime(d), 2_147_483_648);
        let view = edge_view(
            StatusCode::OK,
            &headers(&[("age", "99999999999")]),
            "/x",
            Business::SmallFiles,
            now(),
        );
        assert_eq!(view["age"], "2147483648");
    }

    #[test]
    fn arbitrary_header_values_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let names = [
            "cache-control",
            "cdn-cache-control",
            "expires",
            "age",
            "date",
            "etag",
            "last-modified",
            "vary",
            "set-cookie",
            "pragma",
            "if-none-match",
            "if-modified-since",
            "range",
            "if-range",
            "authorization",
        ];
        let pieces = [
            "max-age=",
            "s-maxage=",
            "no-store",
            "no-cache",
            "private",
            "public",
            ",",
            "=",
            "\"",
            "W/",
            "*",
            "stale-if-error=",
            "stale-while-revalidate=",
            "bytes=",
            "-",
            "18446744073709551616",
            "18446744073709551615",
            "4294967296",
            "0",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            " ",
            ";",
            "must-revalidate",
        ];
        for _ in 0..3000 {
            let mut req = HeaderMap::new();
            let mut resp = HeaderMap::new();
            for map in [&mut req, &mut resp] {
                for _ in 0..rng.random_range(0..6) {
                    let name = names[rng.random_range(0..names.len())];
                    let value: String = (0..rng.random_range(0..5))
                        .map(|_| pieces[rng.random_range(0..pieces.len())])
                        .collect();
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        map.append(name, value);
                    }
                }
            }
            let r = CacheRequest::new("example.com", "/a.jpg?x", &req);
            let now = now() + Duration::from_secs(rng.random_range(0..100_000));
            if let StoreDecision::Store { policy, freshness } =
                decide_store(&r, StatusCode::OK, &resp, Business::Vod, now)
            {
                let later = now + Duration::from_secs(rng.random_range(0..100_000));
                let _ = reuse(&policy, &freshness, resp.contains_key("vary"), &r, later);
                let _ = may_serve_on_error(&policy, &freshness, later);
                let _ = revalidated(&r, StatusCode::OK, &resp, &req, Business::Vod, later);
            }
            let _ = client_not_modified(&req, StatusCode::OK, &resp);
            let _ = crate::edge::range::answer(&req, &resp, rng.random_range(0..1000));
            let mut stripped = resp.clone();
            strip_hop_by_hop(&mut stripped);
        }
    }
}
