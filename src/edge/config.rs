//! The edge's runtime settings, as the binary hands them to [`crate::edge::run`].
//!
//! Owns [`EdgeConfig`] and the parsing of byte sizes ("256MiB"). No I/O.

use std::path::PathBuf;
use std::time::Duration;

use crate::edge::route::OriginSpec;
use crate::edge::tls::CertFiles;

/// Everything `edge::run` needs besides its bound sockets.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// This edge's name: `CDN-Loop`, `Via` and `Cache-Status` use it.
    pub name: String,
    /// `--origin URL`: serves every Host no domain claims.
    pub catch_all: Option<OriginSpec>,
    /// `--zones DIR`: domains and origins from `DIR/cdn.toml`, hot-reloaded.
    pub zones_dir: Option<PathBuf>,
    /// Disk tier directory; `None` uses a private temporary directory removed at exit.
    pub cache_dir: Option<PathBuf>,
    pub memory_cache_bytes: u64,
    pub disk_cache_bytes: u64,
    /// Extra CA (PEM) trusted for HTTPS origins.
    pub origin_ca: Option<PathBuf>,
    /// Bearer token for state-changing admin endpoints on a non-loopback admin address.
    pub admin_token: Option<String>,
    /// Slice size for `large-files` / `vod` domains.
    pub slice_bytes: u64,
    pub origin_connect_timeout: Duration,
    /// Time allowed for an origin's response headers, per origin address tried.
    pub origin_response_timeout: Duration,
    /// `--access-log FILE`: one line per client request ([`crate::edge::access_log`]).
    pub access_log: Option<PathBuf>,
    /// `--tls-cert` pairs for the `--tls-listen` listeners ([`crate::edge::tls`]).
    pub tls_certs: Vec<CertFiles>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            name: "meridian-edge".into(),
            catch_all: None,
            zones_dir: None,
            cache_dir: None,
            memory_cache_bytes: 256 << 20,
            disk_cache_bytes: 10 << 30,
            origin_ca: None,
            admin_token: None,
            slice_bytes: 4 << 20,
            origin_connect_timeout: Duration::from_secs(3),
            origin_response_timeout: Duration::from_secs(30),
            access_log: None,
            tls_certs: Vec::new(),
        }
    }
}

/// Why a size such as "256MiB" was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size {0:?}: use a number with an optional unit, e.g. 4096, 512KiB, 256MiB, 10GiB")]
pub struct SizeError(pub String);

/// Parses "1024", "512k", "512KiB", "256MB", "256MiB", "10G"... (all units are powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits.parse().map_err(|_| SizeError(text.into()))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(SizeError(text.into())),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("10 KB"), Ok(10 << 10));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }
}
