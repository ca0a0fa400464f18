//! The DNS server's admin HTTP endpoints (hyper), loopback by default:
//!
//! - `GET /health` — 200 while serving.
//! - `GET /status` — JSON: snapshot generation and load time, zones with SOA serials, the
//!   last reload's result, every edge with its health state.
//! - `GET /metrics` — Prometheus text (names in [`crate::metrics`]).
//! - `POST /reload` — reload now; 200 with the new generation, or 500 with every error.
//!
//! State-changing endpoints need `Authorization: Bearer <token>` when the admin address is
//! not loopback (the binary refuses to start without a token in that case).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::reload::Reloader;
use crate::snapshot::Shared;

/// What the admin endpoints read and act on.
pub struct Admin {
    pub shared: Arc<Shared>,
    pub reloader: Arc<Reloader>,
    /// Required on state-changing requests when set.
    pub token: Option<String>,
    /// Extra `/status` fields and `/metrics` text from other owners (the health table).
    pub extra: Option<Box<dyn Fn() -> (serde_json::Value, String) + Send + Sync>>,
}

/// Serve admin HTTP on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { tracing::warn!("admin accept failed: {e}"); continue; }
            },
        };
        let admin = admin.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

fn text(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn route(admin: &Admin, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => text(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/status") => {
            let body = serde_json::to_vec_pretty(&status(admin)).unwrap_or_default();
            text(StatusCode::OK, "application/json", body)
        }
        (&Method::GET, "/metrics") => {
            let extra = admin.extra.as_ref().map(|f| f().1).unwrap_or_default();
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                admin.shared.metrics.render(&extra),
            )
        }
        (&Method::POST, "/reload") => {
            if !authorized(admin, &req) {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "text/plain",
                    "a bearer token is required: Authorization: Bearer <token>\n",
                );
            }
            let _ = req.into_body().collect().await;
            match admin.reloader.reload("admin POST /reload").await {
                Ok(generation) => text(
                    StatusCode::OK,
                    "text/plain",
                    format!("reloaded: generation {generation}\n"),
                ),
                Err(errors) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("reload refused, old data still served:\n{errors}\n"),
                ),
            }
        }
        (_, "/health" | "/status" | "/metrics" | "/reload") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /health, /status, /metrics or POST /reload\n",
        ),
    }
}

fn authorized(admin: &Admin, req: &Request<Incoming>) -> bool {
    let Some(token) = &admin.token else {
        return true;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == token)
}

fn status(admin: &Admin) -> serde_json::Value {
    let snapshot = admin.shared.snapshot.load();
    let zones: Vec<_> = snapshot
        .zones
        .zones()
        .map(|z| {
            json!({
                "origin": z.origin_text(),
                "serial": z.serial(),
                "file": z.file().display().to_string(),
                "records": z.record_count(),
            })
        })
        .collect();
    let last_reload = admin.reloader.last_outcome().map(|o| {
        json!({
            "at": unix_seconds(o.at),
            "trigger": o.trigger,
            "ok": o.result.is_ok(),
            "generation": o.result.as_ref().ok(),
            "error": o.result.as_ref().err(),
        })
    });
    let mut value = json!({
        "generation": snapshot.generation,
        "loaded_at": unix_seconds(snapshot.loaded_at),
        "zones": zones,
        "last_reload": last_reload,
        "queries": admin.shared.metrics.total_queries(),
    });
    if let (Some(extra), Some(obj)) = (admin.extra.as_ref().map(|f| f().0), value.as_object_mut())
        && let Some(extra) = extra.as_object()
    {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    value
}

/// Is `addr` a loopback address (admin without a token is allowed there)?
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
