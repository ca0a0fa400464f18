//! Sliced objects (`large-files`, `vod`): an object is fetched and stored as fixed-size
//! slices, each its own cache entry holding the origin's 206 for that byte span, so that a
//! range request fetches only the slices it covers and a whole-object request streams the
//! slices in order (never the whole object in memory).
//!
//! ```text
//! request -> first covering slice (cache | coalesced Range fetch) -> total length, validators
//!         -> 200/206/304/416 decided -> pump task streams slice after slice into the body
//! ```
//!
//! A slice whose validator differs from the first slice's (the object changed mid-way)
//! aborts the response rather than splice two versions. An origin that ignores Range
//! requests makes the request fall back to the unsliced path.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::steps::{self, Lookup};
use super::{Ctx, Edge, Outcome, Served, not_modified, text, unsatisfiable};
use crate::edge::body::{self, Body, BodyError};
use crate::edge::cache::policy::{self, CDN_CACHE_CONTROL};
use crate::edge::cache::{Entry, Fill};
use crate::edge::metrics;
use crate::edge::origin::OriginError;
use crate::edge::range::{self, RangeAnswer};

/// The cache key of one slice of the object `primary`.
pub fn slice_key(primary: &str, index: u64) -> String {
    format!("{}{index}", slice_key_prefix(primary))
}

/// The prefix shared by every slice key of `primary`.
pub fn slice_key_prefix(primary: &str) -> String {
    format!("{primary}#slice=")
}

enum Source {
    Stored(Arc<Entry>),
    Filling(Arc<Fill>),
}

/// One slice, ready to be read.
struct Slice {
    index: u64,
    source: Source,
    /// The object's total length (from Content-Range).
    total: u64,
    /// This slice's length.
    len: u64,
    from_cache: bool,
}

enum SliceError {
    /// The origin did not answer the Range request with a storable 206.
    NotSliceable,
    Origin(OriginError),
    Inconsistent(String),
}

impl Slice {
    fn entry(&self) -> &Arc<Entry> {
        match &self.source {
            Source::Stored(entry) => entry,
            Source::Filling(fill) => &fill.entry,
        }
    }

    fn validator(&self) -> Option<HeaderValue> {
        let headers = &self.entry().headers;
        headers
            .get(header::ETAG)
            .or_else(|| headers.get(header::LAST_MODIFIED))
            .cloned()
    }

    async fn body(&self, edge: &Edge, start: u64, end: u64) -> Result<Body, BodyError> {
        match &self.source {
            Source::Stored(entry) => Ok(edge.cache.body(entry, start, end).await?),
            Source::Filling(fill) => Ok(fill.body(start, Some(end))),
        }
    }
}

/// The first byte a Range header asks for, when it names one.
fn requested_start(headers: &HeaderMap) -> Option<u64> {
    let range = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = range.trim().strip_prefix("bytes=")?;
    let (first, _) = spec.split_once('-')?;
    first.trim().parse().ok()
}

impl Edge {
    pub(super) async fn serve_sliced(self: &Arc<Self>, ctx: &Ctx) -> Response<Body> {
        let size = self.slice_bytes;
        let req = ctx.view.headers();
        let first_index = requested_start(req).map_or(0, |start| start / size);
        let first = match self.slice(ctx, first_index).await {
            Ok(slice) => slice,
            Err(SliceError::NotSliceable) => return self.serve_cacheable(ctx).await,
            Err(SliceError::Origin(error)) => {
                return text(error.status(), &format!("meridian-edge: {error}\n"));
            }
            Err(SliceError::Inconsistent(why)) => {
                return text(StatusCode::BAD_GATEWAY, &format!("meridian-edge: {why}\n"));
            }
        };
        let total = first.total;
        let entry = first.entry().clone();
        let served = if first.from_cache {
            Served::Hit
        } else {
            Served::Miss {
                stored: true,
                coalesced: false,
            }
        };
        let mut headers = entry.headers.clone();
        headers.remove(CDN_CACHE_CONTROL);
        headers.remove(header::CONTENT_RANGE);
        headers.remove(header::CONTENT_LENGTH);
        let age = entry.meta.policy.age(SystemTime::now()).as_secs();
        headers.insert(header::AGE, HeaderValue::from(age));
        self.decorate(&mut headers, served);
        if policy::client_not_modified(req, StatusCode::OK, &entry.headers) {
            return not_modified(&headers);
        }
        let (status, start, end) = match range::answer(req, &entry.headers, total) {
            RangeAnswer::Full => (StatusCode::OK, 0, total),
            RangeAnswer::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
            RangeAnswer::Unsatisfiable => return unsatisfiable(headers, total),
        };
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if status == StatusCode::PARTIAL_CONTENT
            && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1))
        {
            headers.insert(header::CONTENT_RANGE, value);
        }
        let body = if ctx.head || start >= end {
            body::empty()
        } else {
            self.pump(ctx.clone(), first, start, end)
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }

    /// Streams `start..end` of the object, slice after slice, from a task of its own.
    fn pump(self: &Arc<Self>, ctx: Ctx, first: Slice, start: u64, end: u64) -> Body {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BodyError>>(4);
        let edge = self.clone();
        self.tasks.spawn(async move {
            let size = edge.slice_bytes;
            let validator = first.validator();
            let total = first.total;
            let mut next = Some(first);
            let mut pos = start;
            while pos < end {
                let index = pos / size;
                let slice = match next.take().filter(|s| s.index == index) {
                    Some(slice) => slice,
                    None => match edge.slice(&ctx, index).await {
                        Ok(slice) => slice,
                        Err(error) => {
                            let why = match error {
                                SliceError::NotSliceable => {
                                    "the origin stopped answering Range requests".to_string()
                                }
                                SliceError::Origin(e) => e.to_string(),
                                SliceError::Inconsistent(why) => why,
                            };
                            let _ = tx.send(Err(why.into())).await;
                            return;
                        }
                    },
                };
                if slice.validator() != validator || slice.total != total {
                    let _ = tx
                        .send(Err(
                            "the object changed at the origin while it was being served".into(),
                        ))
                        .await;
                    return;
                }
                let slice_start = index * size;
                let from = pos - slice_start;
                let to = end.min(slice_start + slice.len) - slice_start;
                if to <= from {
                    let _ = tx
                        .send(Err("a slice is shorter than its Content-Range".into()))
                        .await;
                    return;
                }
                let mut body = match slice.body(&edge, from, to).await {
                    Ok(body) => body,
                    Err(error) => {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                };
                while let Some(frame) = body.frame().await {
                    let failed = frame.is_err();
                    if tx.send(frame).await.is_err() || failed {
                        return;
                    }
                }
                if slice.from_cache {
                    metrics::add(&edge.metrics.bytes_from_cache, to - from);
                }
                pos = slice_start + to;
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        BodyExt::boxed(StreamBody::new(stream))
    }

    /// One slice from the cache, or fetched (coalesced with other requests for it).
    async fn slice(self: &Arc<Self>, ctx: &Ctx, index: u64) -> Result<Slice, SliceError> {
        let sctx = ctx.for_slice(index, self.slice_bytes);
        let now = SystemTime::now();
        let stale = match steps::after_lookup(self.cache.lookup(&sctx.primary, &sctx.view, now)) {
            Lookup::Hit(entry) => {
                metrics::inc(&self.metrics.hits);
                metrics::inc(&ctx.counters.hits);
                return describe(index, Source::Stored(entry), true);
            }
            Lookup::StaleWhileRevalidate(entry) => {
                metrics::inc(&self.metrics.hits);
                metrics::inc(&ctx.counters.hits);
                metrics::inc(&self.metrics.stale_served);
                self.spawn_refresh(&sctx, entry.clone());
                return describe(index, Source::Stored(entry), true);
            }
            Lookup::Fetch { stale } => stale,
        };
        let (outcome, _) = self.coalesced_fetch(&sctx, stale.clone()).await;
        match &*outcome {
            Outcome::Fill(fill) => describe(index, Source::Filling(fill.clone()), false),
            Outcome::Revalidated(entry) => describe(index, Source::Stored(entry.clone()), true),
            Outcome::Pass { server_error, .. } => {
                if *server_error
                    && let Some(stale) = stale.filter(|e| {
                        policy::may_serve_on_error(&e.meta.policy, &e.meta.freshness, now)
                    })
                {
                    return describe(index, Source::Stored(stale), true);
                }
                Err(SliceError::NotSliceable)
            }
            Outcome::Failed(error) => match stale
                .filter(|e| policy::may_serve_on_error(&e.meta.policy, &e.meta.freshness, now))
            {
                Some(stale) => describe(index, Source::Stored(stale), true),
                None => Err(SliceError::Origin(error.clone())),
            },
        }
    }
}

fn describe(index: u64, source: Source, from_cache: bool) -> Result<Slice, SliceError> {
    let entry = match &source {
        Source::Stored(entry) => entry,
        Source::Filling(fill) => &fill.entry,
    };
    let (first, last, total) = entry
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(range::parse_content_range)
        .ok_or_else(|| {
            SliceError::Inconsistent("a stored slice has no valid Content-Range".into())
        })?;
    Ok(Slice {
        index,
        source,
        total,
        len: last - first + 1,
        from_cache,
    })
}
