//! Routing: which origin serves a request's `Host`.
//!
//! Owns [`OriginSpec`] (where and how to fetch a domain's content, in the shared
//! [`crate::cdn`] types) and [`Router`], the swappable table `Host -> OriginSpec` built from
//! `--origin URL` (catch-all) and, with `--zones`, from the domains of `cdn.toml`. In: a
//! Host header value. Out: the spec, or `None` (the proxy answers 404). Which domain a Host
//! belongs to is decided by [`CdnConfig::match_host`] alone, the rule the DNS side
//! schedules by; Host normalisation is [`cdn::normalize_host`]. Does no I/O; the table is
//! replaced whole on reload.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::cdn::{self, Business, CdnConfig, Origin, Scheme};

/// Where and how to fetch one domain's content: a `[[domain]]` of `cdn.toml`, or the
/// `--origin URL` catch-all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginSpec {
    /// The accelerated domain's name (for logs and per-domain counts); "*" for catch-all.
    pub domain: String,
    pub business: Business,
    /// Tried in order; the next one on a connect error or timeout.
    pub origins: Vec<Origin>,
    pub port: u16,
    pub scheme: Scheme,
    /// Host header sent to the origin; `None` keeps the request's Host.
    pub host_header: Option<String>,
}

/// Why an `--origin` URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("origin URL {0:?} is not a valid absolute URL like http://127.0.0.1:9000")]
    BadUrl(String),
    #[error("origin URL {0:?}: scheme must be http or https")]
    BadScheme(String),
    #[error("origin URL {0:?} must not have a path, query or user info")]
    ExtraParts(String),
}

impl OriginSpec {
    /// The spec of one `[[domain]]` of `cdn.toml`.
    pub fn from_domain(domain: &cdn::Domain) -> OriginSpec {
        OriginSpec {
            domain: domain.name.clone(),
            business: domain.business,
            origins: domain.origins.clone(),
            port: domain.origin_port,
            scheme: domain.origin_scheme,
            host_header: domain.origin_host.clone(),
        }
    }

    /// The catch-all spec of `--origin URL` (like `varnishd -b`).
    pub fn from_url(url: &str) -> Result<OriginSpec, RouteError> {
        let uri: http::Uri = url.parse().map_err(|_| RouteError::BadUrl(url.into()))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(_) => return Err(RouteError::BadScheme(url.into())),
            None => return Err(RouteError::BadUrl(url.into())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| RouteError::BadUrl(url.into()))?;
        if authority.as_str().contains('@')
            || uri.query().is_some()
            || !matches!(uri.path(), "" | "/")
        {
            return Err(RouteError::ExtraParts(url.into()));
        }
        let host = authority.host();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let origin = match host.parse::<IpAddr>() {
            Ok(ip) => Origin::Ip(ip),
            Err(_) => Origin::Host(host.to_ascii_lowercase()),
        };
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        Ok(OriginSpec {
            domain: "*".into(),
            business: Business::SmallFiles,
            origins: vec![origin],
            port,
            scheme,
            host_header: None,
        })
    }
}

/// The domains of one validated `cdn.toml`: its own Host matching
/// ([`CdnConfig::match_host_index`]) picks the domain, whose spec was built with the table.
#[derive(Debug, Default)]
pub struct DomainTable {
    config: Option<Arc<CdnConfig>>,
    /// `specs[i]` serves `config.domains[i]`.
    specs: Vec<Arc<OriginSpec>>,
}

impl DomainTable {
    /// The table of a validated `cdn.toml`.
    pub fn from_cdn(config: Arc<CdnConfig>) -> DomainTable {
        let specs = (config.domains.iter())
            .map(|d| Arc::new(OriginSpec::from_domain(d)))
            .collect();
        DomainTable {
            config: Some(config),
            specs,
        }
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    fn lookup(&self, host: &str) -> Option<Arc<OriginSpec>> {
        let index = self.config.as_ref()?.match_host_index(host)?;
        self.specs.get(index).cloned()
    }
}

/// `Host -> OriginSpec`: the domain table (swapped whole on reload), then the catch-all.
#[derive(Debug)]
pub struct Router {
    domains: ArcSwap<DomainTable>,
    catch_all: Option<Arc<OriginSpec>>,
}

impl Router {
    pub fn new(catch_all: Option<OriginSpec>) -> Router {
        Router {
            domains: ArcSwap::from_pointee(DomainTable::default()),
            catch_all: catch_all.map(Arc::new),
        }
    }

    /// Replaces the domain table (a reload).
    pub fn set_domains(&self, table: DomainTable) {
        self.domains.store(Arc::new(table));
    }

    pub fn domain_count(&self) -> usize {
        self.domains.load().len()
    }

    /// The spec serving `host` (a Host header value, port allowed), if any.
    pub fn route(&self, host: &str) -> Option<Arc<OriginSpec>> {
        self.domains
            .load()
            .lookup(host)
            .or_else(|| self.catch_all.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cdn::normalize_host;

    /// A validated `cdn.toml` with these domains, each from 127.0.0.1:80.
    fn table(domains: &[&str]) -> DomainTable {
        let mut text = String::from(
            "[cdn]\nzone = \"cdn.example.net\"\nsuffix = \"w.cdn.example.net\"\n\n\
             [[edge]]\nname = \"e1\"\ncountry = \"US\"\nipv4 = [\"127.0.1.1\"]\n",
        );
        for name in domains {
            text.push_str(&format!(
                "\n[[domain]]\nname = \"{name}\"\nregion = \"overseas\"\n\
                 business = \"small-files\"\norigins = [\"127.0.0.1\"]\n"
            ));
        }
        let config = CdnConfig::parse(&text, Path::new("cdn.toml")).expect("valid cdn.toml");
        DomainTable::from_cdn(Arc::new(config))
    }

    #[test]
    fn origin_url_parses_scheme_host_and_port() {
        let s = OriginSpec::from_url("https://Origin.Example:8443").unwrap();
        assert_eq!(s.scheme, Scheme::Https);
        assert_eq!(s.port, 8443);
        assert_eq!(s.origins, vec![Origin::Host("origin.example".into())]);
        let s = OriginSpec::from_url("http://[::1]/").unwrap();
        assert_eq!(s.origins, vec![Origin::Ip("::1".parse().unwrap())]);
        assert_eq!(s.port, 80);
        assert!(OriginSpec::from_url("ftp://x").is_err());
        assert!(OriginSpec::from_url("http://x/path").is_err());
        assert!(OriginSpec::from_url("not a url").is_err());
    }

    #[test]
    fn exact_then_longest_wildcard_then_catch_all() {
        let router = Router::new(None);
        router.set_domains(table(&[
            "img.customer.com",
            "*.customer.com",
            "*.v.customer.com",
        ]));
        assert_eq!(
            router.route("IMG.customer.com:8080").unwrap().domain,
            "img.customer.com"
        );
        assert_eq!(
            router.route("a.b.customer.com").unwrap().domain,
            "*.customer.com"
        );
        assert_eq!(
            router.route("x.v.customer.com").unwrap().domain,
            "*.v.customer.com"
        );
        assert!(router.route("customer.com").is_none());
        assert!(router.route("other.org").is_none());
        let router = Router::new(Some(OriginSpec::from_url("http://127.0.0.1:9").unwrap()));
        assert_eq!(router.route("other.org").unwrap().domain, "*");
    }

    #[test]
    fn only_a_digit_port_is_stripped_before_matching() {
        let router = Router::new(None);
        router.set_domains(table(&["*.customer.com"]));
        assert!(router.route("a.customer.com..:80").is_some());
        assert!(router.route("x:abc.customer.com").is_none());
        assert!(router.route("[::1]:80").is_none());
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("Example.COM."), "example.com");
        assert_eq!(normalize_host("example.com:80"), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
    }
}
