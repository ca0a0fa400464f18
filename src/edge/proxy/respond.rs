//! The responses clients get: stored entries, fills in progress and forwarded origin
//! responses, with `Age`, `Via`, `X-Cache` and `Cache-Status`; 304s to conditional requests,
//! 206/416 for ranges, and short plain-text errors.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{CACHE_STATUS, Ctx, Edge, Served, X_CACHE};
use crate::edge::body::{self, Body, BodyError};
use crate::edge::cache::policy::{self, CDN_CACHE_CONTROL};
use crate::edge::cache::{Entry, Fill};
use crate::edge::metrics;
use crate::edge::range::{self, RangeAnswer};

impl Edge {
    /// Client-facing headers of a stored response.
    pub(super) fn stored_headers(
        &self,
        entry: &Entry,
        now: SystemTime,
        served: Served,
    ) -> HeaderMap {
        let mut headers = entry.client_headers.clone();
        let age = entry.meta.policy.age(now).as_secs();
        headers.insert(header::AGE, HeaderValue::from(age));
        self.decorate(&mut headers, served);
        headers
    }

    /// Adds `Via`, `X-Cache` and `Cache-Status`.
    pub(super) fn decorate(&self, headers: &mut HeaderMap, served: Served) {
        headers.append(header::VIA, self.labels.via.clone());
        headers.insert(
            X_CACHE.clone(),
            HeaderValue::from_static(if served.body_from_cache() {
                "HIT"
            } else {
                "MISS"
            }),
        );
        let detail = match served {
            Served::Hit => {
                headers.insert(CACHE_STATUS.clone(), self.labels.hit.clone());
                return;
            }
            Served::StaleWhileRevalidate => "hit; detail=stale-while-revalidate".into(),
            Served::StaleIfError => "fwd=stale; detail=stale-if-error".into(),
            Served::Revalidated => "fwd=stale; fwd-status=304".into(),
            Served::Miss {
                stored: true,
                coalesced: true,
            } => "fwd=miss; stored; collapsed".into(),
            Served::Miss { stored, .. } => {
                if stored {
                    "fwd=miss; stored".into()
                } else {
                    "fwd=miss".into()
                }
            }
            Served::Pass(reason) => format!("fwd=miss; detail={reason}"),
            Served::Method => "fwd=method".into(),
        };
        if let Ok(value) = HeaderValue::from_str(&format!("{}; {detail}", self.name)) {
            headers.insert(CACHE_STATUS.clone(), value);
        }
    }

    pub(super) async fn respond_entry(
        &self,
        ctx: &Ctx,
        entry: &Arc<Entry>,
        served: Served,
    ) -> Response<Body> {
        match self.try_respond_entry(ctx, entry, served).await {
            Some(response) => response,
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "meridian-edge: cache read failed, retry\n",
            ),
        }
    }

    /// `None` when the stored body cannot be read (the entry is then dropped).
    pub(super) async fn try_respond_entry(
        &self,
        ctx: &Ctx,
        entry: &Arc<Entry>,
        served: Served,
    ) -> Option<Response<Body>> {
        let headers = self.stored_headers(entry, SystemTime::now(), served);
        let len = entry.meta.body_len;
        match plan(ctx, entry.status, &entry.headers, Some(len)) {
            Plan::NotModified => Some(not_modified(&headers)),
            Plan::Unsatisfiable(len) => Some(unsatisfiable(headers, len)),
            Plan::Body { status, start, end } => {
                let end = end.unwrap_or(len);
                let body = if ctx.head || start >= end {
                    body::empty()
                } else {
                    match self.entry_body(ctx, entry, start, end).await {
                        Ok(body) => body,
                        Err(error) => {
                            tracing::warn!(%error, key = %ctx.primary, "cache read failed; dropping entry");
                            self.cache.remove_primary(&entry.meta.primary);
                            return None;
                        }
                    }
                };
                if !ctx.head {
                    metrics::add(&self.metrics.bytes_from_cache, end.saturating_sub(start));
                }
                Some(with_body(
                    status,
                    headers,
                    body,
                    Some(end - start),
                    start,
                    len,
                ))
            }
        }
    }

    /// `start..end` of a stored body: with `sendfile` when the connection offers it and the
    /// body is long enough, else from memory or disk.
    async fn entry_body(
        &self,
        ctx: &Ctx,
        entry: &Arc<Entry>,
        start: u64,
        end: u64,
    ) -> std::io::Result<Body> {
        if let Some(sender) = &ctx.file_sender
            && let Some(body) = self.cache.zero_copy_body(entry, start, end, sender).await?
        {
            return Ok(body);
        }
        self.cache.body(entry, start, end).await
    }

    pub(super) fn respond_fill(
        &self,
        ctx: &Ctx,
        fill: &Arc<Fill>,
        served: Served,
    ) -> Response<Body> {
        let entry = &fill.entry;
        let headers = self.stored_headers(entry, SystemTime::now(), served);
        match plan(ctx, entry.status, &entry.headers, fill.expected_len) {
            Plan::NotModified => not_modified(&headers),
            Plan::Unsatisfiable(len) => unsatisfiable(headers, len),
            Plan::Body { status, start, end } => {
                let body = if ctx.head {
                    body::empty()
                } else {
                    fill.body(start, end)
                };
                let len = end.map(|end| end - start);
                with_body(
                    status,
                    headers,
                    body,
                    len,
                    start,
                    fill.expected_len.unwrap_or(0),
                )
            }
        }
    }

    /// Forwards an origin response that is not stored.
    pub(super) fn respond_forwarded(
        self: &Arc<Self>,
        ctx: &Ctx,
        response: Response<Incoming>,
        served: Served,
    ) -> Response<Body> {
        let (mut parts, incoming) = response.into_parts();
        policy::strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(CDN_CACHE_CONTROL);
        self.decorate(&mut parts.headers, served);
        if matches!(served, Served::Pass(_))
            && policy::client_not_modified(ctx.view.headers(), parts.status, &parts.headers)
        {
            return not_modified(&parts.headers);
        }
        let body = if ctx.head {
            body::empty()
        } else {
            let edge = self.clone();
            incoming
                .map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        metrics::add(&edge.metrics.bytes_from_origin, data.len() as u64);
                    }
                    frame
                })
                .map_err(|e| Box::new(e) as BodyError)
                .boxed()
        };
        Response::from_parts(parts, body)
    }
}

/// What to send for a stored (or filling) response.
pub(super) enum Plan {
    NotModified,
    Unsatisfiable(u64),
    /// `end` exclusive; `None` = to the end of a body of unknown length.
    Body {
        status: StatusCode,
        start: u64,
        end: Option<u64>,
    },
}

pub(super) fn plan(ctx: &Ctx, status: StatusCode, stored: &HeaderMap, len: Option<u64>) -> Plan {
    let req = ctx.view.headers();
    if policy::client_not_modified(req, status, stored) {
        return Plan::NotModified;
    }
    let full = Plan::Body {
        status,
        start: 0,
        end: len,
    };
    let Some(len) = len.filter(|_| status == StatusCode::OK) else {
        return full;
    };
    match range::answer(req, stored, len) {
        RangeAnswer::Full => full,
        RangeAnswer::Unsatisfiable => Plan::Unsatisfiable(len),
        RangeAnswer::Partial { start, end } => Plan::Body {
            status: StatusCode::PARTIAL_CONTENT,
            start,
            end: Some(end + 1),
        },
    }
}

pub(super) fn with_body(
    status: StatusCode,
    mut headers: HeaderMap,
    body: Body,
    len: Option<u64>,
    start: u64,
    total: u64,
) -> Response<Body> {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_RANGE);
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Some(len) = len
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{total}", start + len - 1))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    if status == StatusCode::OK {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

pub(super) fn not_modified(headers: &HeaderMap) -> Response<Body> {
    let mut out = policy::not_modified_headers(headers);
    for name in [
        header::AGE,
        header::VIA,
        X_CACHE.clone(),
        CACHE_STATUS.clone(),
    ] {
        if let Some(value) = headers.get(&name) {
            out.insert(name, value.clone());
        }
    }
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    *response.headers_mut() = out;
    response
}

pub(super) fn unsatisfiable(mut headers: HeaderMap, len: u64) -> Response<Body> {
    headers.remove(header::CONTENT_LENGTH);
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    *response.headers_mut() = headers;
    response
}

/// A short plain-text response (errors and refusals).
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(body::full(Bytes::from(message.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
