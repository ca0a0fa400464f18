//! The response body type every edge handler returns, and small constructors.
//!
//! Bodies are boxed streams of `Bytes` so that memory hits, disk reads, fills in progress and
//! origin pass-through all share one type. No I/O here beyond what callers box.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

/// Errors a body stream may end with (origin failures mid-body, disk read errors).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the edge sends.
pub type Body = BoxBody<Bytes, BodyError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
