//! Routing: which origin serves a request's `Host`.
//!
//! Owns [`OriginSpec`] (where and how to fetch a domain's content) and [`Router`], the
//! swappable table `Host -> OriginSpec` built from `--origin URL` (catch-all) and, with
//! `--zones`, from the domains of `cdn.toml`. In: a Host header value. Out: the spec, or
//! `None` (the proxy answers 404). Does no I/O; the table is replaced whole on reload.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::cdn::{self, CdnConfig};

/// What kind of content a domain serves; picks default TTLs and slicing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Business {
    SmallFiles,
    LargeFiles,
    Vod,
    Dcdn,
}

impl Business {
    /// Whether large objects of this domain are fetched and stored in slices.
    pub fn sliced(self) -> bool {
        matches!(self, Business::LargeFiles | Business::Vod)
    }
}

/// The scheme used to talk to an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One origin address: an IP or a site domain resolved at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginAddr {
    Ip(IpAddr),
    Host(String),
}

impl OriginAddr {
    /// The address as it appears in a URI authority (IPv6 in brackets).
    pub fn authority_host(&self) -> String {
        match self {
            OriginAddr::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            OriginAddr::Ip(ip) => ip.to_string(),
            OriginAddr::Host(h) => h.clone(),
        }
    }
}

/// Where and how to fetch one domain's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginSpec {
    /// The accelerated domain's name (for logs and per-domain counts); "*" for catch-all.
    pub domain: String,
    pub business: Business,
    /// Tried in order; the next one on a connect error or timeout.
    pub origins: Vec<OriginAddr>,
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
            business: match domain.business {
                cdn::Business::SmallFiles => Business::SmallFiles,
                cdn::Business::LargeFiles => Business::LargeFiles,
                cdn::Business::Vod => Business::Vod,
                cdn::Business::Dcdn => Business::Dcdn,
            },
            origins: domain
                .origins
                .iter()
                .map(|o| match o {
                    cdn::Origin::Ip(ip) => OriginAddr::Ip(*ip),
                    cdn::Origin::Host(host) => OriginAddr::Host(host.to_ascii_lowercase()),
                })
                .collect(),
            port: domain.origin_port,
            scheme: match domain.origin_scheme {
                cdn::Scheme::Http => Scheme::Http,
                cdn::Scheme::Https => Scheme::Https,
            },
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
            Ok(ip) => OriginAddr::Ip(ip),
            Err(_) => OriginAddr::Host(host.to_ascii_lowercase()),
        };
        let port = authority.port_u16().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
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

/// The domains known from `cdn.toml`: exact names and `*.` wildcards.
#[derive(Debug, Default)]
pub struct DomainTable {
    /// When built from a `cdn.toml`, its own Host matching decides (the same rules as the
    /// DNS side); `exact` then maps each configured domain name to its spec.
    cdn: Option<Arc<CdnConfig>>,
    exact: HashMap<String, Arc<OriginSpec>>,
    /// Wildcard suffixes without the `*`, e.g. ".customer.com", longest first.
    wildcards: Vec<(String, Arc<OriginSpec>)>,
}

impl DomainTable {
    pub fn new(specs: impl IntoIterator<Item = OriginSpec>) -> DomainTable {
        let mut table = DomainTable::default();
        for spec in specs {
            let name = spec.domain.to_ascii_lowercase();
            if let Some(suffix) = name.strip_prefix('*') {
                table.wildcards.push((suffix.to_string(), Arc::new(spec)));
            } else {
                table.exact.insert(name, Arc::new(spec));
            }
        }
        table
            .wildcards
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        table
    }

    /// The table of a validated `cdn.toml`.
    pub fn from_cdn(config: Arc<CdnConfig>) -> DomainTable {
        let exact = config
            .domains
            .iter()
            .map(|d| (d.name.clone(), Arc::new(OriginSpec::from_domain(d))))
            .collect();
        DomainTable {
            cdn: Some(config),
            exact,
            wildcards: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, host: &str) -> Option<Arc<OriginSpec>> {
        if let Some(cdn) = &self.cdn {
            return cdn
                .match_host(host)
                .and_then(|domain| self.exact.get(&domain.name))
                .cloned();
        }
        if let Some(spec) = self.exact.get(host) {
            return Some(spec.clone());
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, spec)| spec.clone())
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
        let name = normalize_host(host);
        self.domains
            .load()
            .lookup(&name)
            .or_else(|| self.catch_all.clone())
    }
}

/// Lower-cases a Host value and drops its port and a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| host.to_string())
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(domain: &str) -> OriginSpec {
        OriginSpec {
            domain: domain.into(),
            business: Business::SmallFiles,
            origins: vec![OriginAddr::Ip("127.0.0.1".parse().unwrap())],
            port: 80,
            scheme: Scheme::Http,
            host_header: None,
        }
    }

    #[test]
    fn origin_url_parses_scheme_host_and_port() {
        let s = OriginSpec::from_url("https://Origin.Example:8443").unwrap();
        assert_eq!(s.scheme, Scheme::Https);
        assert_eq!(s.port, 8443);
        assert_eq!(s.origins, vec![OriginAddr::Host("origin.example".into())]);
        let s = OriginSpec::from_url("http://[::1]/").unwrap();
        assert_eq!(s.origins, vec![OriginAddr::Ip("::1".parse().unwrap())]);
        assert_eq!(s.port, 80);
        assert!(OriginSpec::from_url("ftp://x").is_err());
        assert!(OriginSpec::from_url("http://x/path").is_err());
        assert!(OriginSpec::from_url("not a url").is_err());
    }

    #[test]
    fn exact_then_longest_wildcard_then_catch_all() {
        let router = Router::new(None);
        router.set_domains(DomainTable::new([
            spec("img.customer.com"),
            spec("*.customer.com"),
            spec("*.v.customer.com"),
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
        let router = Router::new(Some(spec("*")));
        assert_eq!(router.route("other.org").unwrap().domain, "*");
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("Example.COM."), "example.com");
        assert_eq!(normalize_host("example.com:80"), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
    }
}
