//! The edge's admin HTTP endpoints.
//!
//! `GET /health`, `GET /status` (JSON), `GET /metrics` (Prometheus text), and the console's
//! "refresh and prefetch": `POST /purge` and `POST /prefetch`, each naming URLs in the query
//! (`?url=...`, repeatable) and/or the body (one URL per line). A purge URL ending in `/`
//! refreshes every URL under that directory. When the admin address is not loopback,
//! state-changing endpoints need `Authorization: Bearer <token>`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::edge::body::{self, Body};
use crate::edge::proxy::{Edge, text};

/// Who may call state-changing endpoints.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    /// Whether a bearer token is required (admin address not loopback).
    pub required: bool,
    pub token: Option<String>,
}

impl AdminAuth {
    fn check(&self, headers: &http::HeaderMap) -> Result<(), Box<Response<Body>>> {
        if !self.required {
            return Ok(());
        }
        let Some(token) = &self.token else {
            return Err(Box::new(text(
                StatusCode::FORBIDDEN,
                "admin: state-changing endpoints on a non-loopback address need --admin-token or MERIDIAN_ADMIN_TOKEN\n",
            )));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.as_bytes())) {
            Ok(())
        } else {
            let mut response = text(
                StatusCode::UNAUTHORIZED,
                "admin: missing or wrong bearer token\n",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(Box::new(response))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answers one admin request.
pub async fn handle(
    edge: Arc<Edge>,
    auth: Arc<AdminAuth>,
    req: Request<Incoming>,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/status") => json(StatusCode::OK, &status(&edge)),
        (&Method::GET, "/metrics") => metrics(&edge),
        (&Method::POST, "/purge") | (&Method::POST, "/prefetch") => {
            if let Err(refusal) = auth.check(req.headers()) {
                return *refusal;
            }
            let purge = req.uri().path() == "/purge";
            let urls = match urls_of(req).await {
                Ok(urls) if !urls.is_empty() => urls,
                Ok(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "admin: name at least one URL (?url=http://host/path, or one per line in the body)\n",
                    );
                }
                Err(response) => return *response,
            };
            if purge {
                purge_urls(&edge, &urls)
            } else {
                prefetch_urls(&edge, &urls).await
            }
        }
        (_, "/health" | "/status" | "/metrics" | "/purge" | "/prefetch") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "admin: wrong method for this endpoint\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "admin: endpoints are GET /health, GET /status, GET /metrics, POST /purge, POST /prefetch\n",
        ),
    }
}

fn status(edge: &Edge) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &edge.metrics;
    serde_json::json!({
        "name": edge.name,
        "domains": edge.router.domain_count(),
        "last_reload": edge.last_reload.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        "cache": edge.cache.stats(),
        "requests": m.requests.load(Relaxed),
        "hits": m.hits.load(Relaxed),
        "misses": m.misses.load(Relaxed),
        "origin_errors": m.origin_errors.load(Relaxed),
        "per_domain": m
            .per_domain()
            .into_iter()
            .map(|(domain, requests, hits)| {
                (domain, serde_json::json!({ "requests": requests, "hits": hits }))
            })
            .collect::<serde_json::Map<_, _>>(),
    })
}

fn metrics(edge: &Edge) -> Response<Body> {
    let stats = edge.cache.stats();
    let text = edge.metrics.render(&[
        (
            "cache_entries",
            "Stored responses (all on disk).",
            stats.entries,
        ),
        (
            "cache_disk_bytes",
            "Body bytes in the disk tier.",
            stats.disk_bytes,
        ),
        (
            "cache_memory_entries",
            "Bodies held in the memory tier.",
            stats.memory_entries,
        ),
        (
            "cache_memory_bytes",
            "Body bytes in the memory tier.",
            stats.memory_bytes,
        ),
        (
            "cache_fills_in_progress",
            "Responses being stored right now.",
            stats.fills_in_progress,
        ),
    ]);
    let mut response = Response::new(body::full(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

fn purge_urls(edge: &Edge, urls: &[String]) -> Response<Body> {
    let mut results = Vec::new();
    let mut failed = false;
    for url in urls {
        match edge.purge(url) {
            Ok(removed) => results.push(serde_json::json!({"url": url, "removed": removed})),
            Err(error) => {
                failed = true;
                results.push(serde_json::json!({"url": url, "error": error}));
            }
        }
    }
    let status = if failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    json(status, &serde_json::json!({ "purged": results }))
}

async fn prefetch_urls(edge: &Arc<Edge>, urls: &[String]) -> Response<Body> {
    let mut results = Vec::new();
    let mut failed = false;
    for url in urls {
        match edge.prefetch(url).await {
            Ok((status, cache_status)) => {
                failed |= status >= 400;
                results.push(
                    serde_json::json!({"url": url, "status": status, "cache_status": cache_status}),
                );
            }
            Err(error) => {
                failed = true;
                results.push(serde_json::json!({"url": url, "error": error}));
            }
        }
    }
    let status = if failed {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    json(status, &serde_json::json!({ "prefetched": results }))
}

/// URLs from `?url=` parameters and non-empty body lines.
async fn urls_of(req: Request<Incoming>) -> Result<Vec<String>, Box<Response<Body>>> {
    let mut urls: Vec<String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "url")
        .map(|(_, v)| percent_decode(v))
        .collect();
    let body = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|_| {
            Box::new(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "admin: body over 1 MiB\n",
            ))
        })?
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    urls.extend(
        body.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string),
    );
    Ok(urls)
}

/// Decodes `%XX` escapes and `+` in a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(body::full(Bytes::from(format!("{value}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_guards_non_loopback_admin() {
        let open = AdminAuth {
            required: false,
            token: None,
        };
        assert!(open.check(&http::HeaderMap::new()).is_ok());
        let no_token = AdminAuth {
            required: true,
            token: None,
        };
        assert_eq!(
            no_token
                .check(&http::HeaderMap::new())
                .unwrap_err()
                .status(),
            StatusCode::FORBIDDEN
        );
        let guarded = AdminAuth {
            required: true,
            token: Some("s3cret".into()),
        };
        let mut headers = http::HeaderMap::new();
        assert_eq!(
            guarded.check(&headers).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert!(guarded.check(&headers).is_err());
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(guarded.check(&headers).is_ok());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("http%3A%2F%2Fa.com%2Fx%3Fy%3D1"),
            "http://a.com/x?y=1"
        );
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é1"), "%é1");
    }
}
