//! Single byte ranges (RFC 9110 14): parsing `Range`, checking `If-Range`, and the slices a
//! range covers. Pure; multipart ranges are answered with the whole body (allowed).

use http::header::{self, HeaderMap};

/// What a `Range` header asks of a body of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable single range: serve the whole body (200).
    Full,
    /// Serve `start..=end` (206).
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides from the request's `Range`/`If-Range` and the stored response's validators.
pub fn answer(req: &HeaderMap, resp: &HeaderMap, len: u64) -> RangeAnswer {
    let Some(range) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Full;
    };
    if !if_range_holds(req, resp) {
        return RangeAnswer::Full;
    }
    parse(range, len)
}

/// `If-Range` holds when absent, or when it equals the strong ETag or the exact Last-Modified.
fn if_range_holds(req: &HeaderMap, resp: &HeaderMap) -> bool {
    let Some(cond) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return req.get(header::IF_RANGE).is_none();
    };
    let cond = cond.trim();
    if cond.starts_with('"') || cond.starts_with("W/") {
        let etag = resp.get(header::ETAG).and_then(|v| v.to_str().ok());
        return !cond.starts_with("W/")
            && etag.is_some_and(|e| !e.starts_with("W/") && e.trim() == cond);
    }
    let lm = resp
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok());
    match (
        httpdate::parse_http_date(cond),
        lm.map(httpdate::parse_http_date),
    ) {
        (Ok(a), Some(Ok(b))) => a == b,
        _ => false,
    }
}

/// Parses one `bytes=` range against a body of `len` bytes.
pub fn parse(range: &str, len: u64) -> RangeAnswer {
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        if suffix == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        let start = len.saturating_sub(suffix);
        return RangeAnswer::Partial {
            start,
            end: len - 1,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.min(len - 1),
    }
}

/// Indexes of the fixed-size slices covering `start..=end`.
pub fn covering_slices(start: u64, end: u64, slice: u64) -> std::ops::RangeInclusive<u64> {
    let slice = slice.max(1);
    (start / slice)..=(end / slice)
}

/// Parses `Content-Range: bytes a-b/len` into `(a, b, len)`.
pub fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, total) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (a <= b && b < total).then_some((a, b, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn ranges() {
        assert_eq!(
            parse("bytes=0-9", 100),
            RangeAnswer::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse("bytes=90-", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse("bytes=-10", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse("bytes=-1000", 100),
            RangeAnswer::Partial { start: 0, end: 99 }
        );
        assert_eq!(
            parse("bytes=50-1000", 100),
            RangeAnswer::Partial { start: 50, end: 99 }
        );
        assert_eq!(parse("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse("bytes=0-1,5-6", 100), RangeAnswer::Full);
        assert_eq!(parse("bytes=9-1", 100), RangeAnswer::Full);
        assert_eq!(parse("items=0-1", 100), RangeAnswer::Full);
        assert_eq!(parse("bytes=x-1", 100), RangeAnswer::Full);
    }

    #[test]
    fn if_range() {
        let mut resp = HeaderMap::new();
        resp.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        let mut req = HeaderMap::new();
        req.insert(header::RANGE, HeaderValue::from_static("bytes=0-0"));
        req.insert(header::IF_RANGE, HeaderValue::from_static("\"v1\""));
        assert_eq!(
            answer(&req, &resp, 10),
            RangeAnswer::Partial { start: 0, end: 0 }
        );
        req.insert(header::IF_RANGE, HeaderValue::from_static("\"v0\""));
        assert_eq!(answer(&req, &resp, 10), RangeAnswer::Full);
    }

    #[test]
    fn slices_and_content_range() {
        assert_eq!(covering_slices(0, 0, 10), 0..=0);
        assert_eq!(covering_slices(5, 25, 10), 0..=2);
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes 9-0/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
    }
}
