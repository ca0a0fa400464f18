//! The CDN's scheduling configuration: `cdn.toml` -> a validated [`CdnConfig`].
//!
//! Owns: the file format (see DESIGN.md, "Contract: the zones directory"), its validation
//! (every problem reported at once, each naming file, line and entry) and name matching:
//! which accelerated domain a DNS query name ([`CdnConfig::match_target`]) or an HTTP Host
//! header ([`CdnConfig::match_host`]) belongs to.
//!
//! ```text
//! cdn.toml --load/parse--> spec (serde, unknown fields refused)
//!                          --validate--> CdnConfig { zone, suffix, edges, domains, ... }
//!                                        |- match_target(qname)  (DNS server)
//!                                        |- match_host(Host)     (edge)
//!                                        '- cname_target(domain) (`meridian cname`)
//! ```
//!
//! Shared by `meridian` and `meridian-edge`. It reads one file and does nothing else: no
//! network, no clock, no check that `zone` is actually loaded (the snapshot does that).
//!
//! Words: an *accelerated domain* is a customer name (`img.customer.com`, or a wildcard
//! `*.customer.com` matching one or more labels). Its *CNAME target* is
//! `<domain>.<suffix>`. An *edge* is a node serving accelerated domains; a *side* is
//! mainland China (edges in "CN") or overseas (every other country, HK, MO, TW included).

mod error;
mod names;
mod spec;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::geo::Country;

pub use error::{CdnError, CdnErrors, Entry, ErrorKind};

/// Default `[cdn].ttl`.
pub const DEFAULT_TTL: u32 = 60;
/// Default `[cdn].answers`.
pub const DEFAULT_ANSWERS: usize = 1;
/// Default `[cdn].max_domains`.
pub const DEFAULT_MAX_DOMAINS: usize = 50;
/// Default `[[edge]].weight`.
pub const DEFAULT_WEIGHT: u32 = 100;
/// Default `[[domain]].origin_port`.
pub const DEFAULT_ORIGIN_PORT: u16 = 80;

/// The validated contents of one `cdn.toml`.
#[derive(Debug, Clone)]
pub struct CdnConfig {
    /// The CDN's zone (must also be loaded from a `*.zone` file), fully qualified and
    /// lowercase: `"cdn.example.net."`.
    pub zone: String,
    /// CNAME targets are `<domain>.<suffix>`; inside `zone`; fully qualified, lowercase.
    pub suffix: String,
    /// TTL of scheduled answers.
    pub ttl: u32,
    /// Edges per scheduled answer (at least 1).
    pub answers: usize,
    /// Domain quota.
    pub max_domains: usize,
    /// Where clients the GeoIP database does not know are placed.
    pub default_country: Country,
    pub health: HealthSettings,
    pub edges: Vec<Edge>,
    pub domains: Vec<Domain>,
    /// The file this was read from (for messages).
    pub source: PathBuf,
    /// Problems that do not stop the configuration from working (e.g. a `mainland` domain
    /// with no edge in CN: it can only get empty answers). `meridian check` prints them.
    pub warnings: Vec<CdnError>,
    /// Name lookup tables, built once by validation.
    index: DomainIndex,
    /// `suffix`'s labels, lowercase, leftmost first.
    suffix_labels: Vec<Box<[u8]>>,
}

/// Health-check settings (`[health]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Time between the starts of two checks of one edge.
    pub interval: Duration,
    /// Time a check may take, connection included.
    pub timeout: Duration,
    /// Consecutive successes to become up.
    pub rise: u32,
    /// Consecutive failures to become down.
    pub fall: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        }
    }
}

/// An edge node (`[[edge]]`). Identified by `name` across reloads; indices may change.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub name: String,
    pub country: Country,
    /// Degrees: as configured, else the country's centroid.
    pub lat: f64,
    pub lon: f64,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// `http://` URL to GET; any 2xx is up. `None`: always up.
    pub health: Option<http::Uri>,
    /// Higher wins ties in distance.
    pub weight: u32,
    /// `(lat, lon)` on the unit sphere, for distance comparisons without trigonometry.
    pub(crate) position: [f64; 3],
}

impl Edge {
    /// True for edges in mainland China ("CN").
    pub fn is_mainland(&self) -> bool {
        self.country.is_mainland()
    }
}

/// An accelerated domain (`[[domain]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Lowercase, no trailing dot; `*.customer.com` for a wildcard.
    pub name: String,
    pub region: Region,
    pub business: Business,
    /// Tried in order.
    pub origins: Vec<Origin>,
    pub origin_port: u16,
    pub origin_scheme: Scheme,
    /// Host header sent to the origin; `None`: the request's own Host.
    pub origin_host: Option<String>,
    /// ICP filing number (required for `mainland` and `global`).
    pub icp: Option<String>,
}

impl Domain {
    /// True for `*.customer.com` style domains.
    pub fn is_wildcard(&self) -> bool {
        self.name.starts_with("*.")
    }
}

/// Where a domain is accelerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// Only edges in mainland China.
    Mainland,
    /// Clients in CN get CN edges, others non-CN edges; each side backs up the other.
    Global,
    /// Only edges outside mainland China.
    Overseas,
}

/// The console's business types; they set the edge's default caching behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Business {
    SmallFiles,
    LargeFiles,
    Vod,
    Dcdn,
}

/// Scheme used to reach the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// One origin: an address, or a site domain resolved by the edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    Ip(IpAddr),
    /// Lowercase, no trailing dot.
    Host(String),
}

macro_rules! keyword_enum {
    ($ty:ty { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The spelling used in `cdn.toml`.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $text),+ }
            }
            pub(crate) fn parse_keyword(text: &str) -> Option<Self> {
                match text { $($text => Some(<$ty>::$variant),)+ _ => None }
            }
            pub(crate) const KEYWORDS: &'static [&'static str] = &[$($text),+];
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$ty>::parse_keyword(&text).ok_or_else(|| {
                    serde::de::Error::unknown_variant(&text, <$ty>::KEYWORDS)
                })
            }
        }
    };
}

keyword_enum!(Region { Mainland = "mainland", Global = "global", Overseas = "overseas" });
keyword_enum!(Business { SmallFiles = "small-files", LargeFiles = "large-files", Vod = "vod", Dcdn = "dcdn" });
keyword_enum!(Scheme { Http = "http", Https = "https" });

impl Business {
    /// Whether the edge fetches and stores large objects of this business in slices.
    pub fn sliced(self) -> bool {
        matches!(self, Business::LargeFiles | Business::Vod)
    }
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl Origin {
    /// The origin as the host part of a URI authority (an IPv6 address in brackets).
    pub fn authority_host(&self) -> String {
        match self {
            Origin::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            Origin::Ip(ip) => ip.to_string(),
            Origin::Host(host) => host.clone(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Ip(ip) => write!(f, "{ip}"),
            Origin::Host(host) => f.write_str(host),
        }
    }
}

/// What a query name is, for the CDN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetMatch {
    /// `<domain>.<suffix>` for this domain (index into [`CdnConfig::domains`]).
    Scheduled(usize),
    /// Below the suffix but no accelerated domain matches: NXDOMAIN.
    UnknownUnderSuffix,
    /// Not below the suffix (the suffix itself included): answer from the zone file.
    NotUnderSuffix,
}

impl CdnConfig {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<CdnConfig, CdnErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => CdnConfig::parse(&text, path),
            Err(e) => Err(CdnErrors(vec![CdnError {
                file: path.to_owned(),
                line: None,
                entry: None,
                kind: ErrorKind::Read,
                message: format!("cannot read the CDN configuration: {e}"),
            }])),
        }
    }

    /// Parses and validates `text`; `path` names the file in messages.
    pub fn parse(text: &str, path: &Path) -> Result<CdnConfig, CdnErrors> {
        validate::parse(text, path)
    }

    /// Classifies a query name, given as its labels leftmost first (any case; the root
    /// label left out, as DNS libraries' label iterators give them): `<domain>.<suffix>`
    /// of an accelerated domain (exact match first, then the most specific wildcard; a
    /// wildcard matches one or more labels), an unknown name below the suffix, or a name
    /// outside it. O(labels), no allocation.
    pub fn match_target<'a, L>(&self, labels: L) -> TargetMatch
    where
        L: IntoIterator<Item = &'a [u8]>,
        L::IntoIter: DoubleEndedIterator + ExactSizeIterator,
    {
        let mut buf = [0u8; 256];
        match self.below_suffix(labels, &mut buf) {
            Below::Outside | Below::Name(b"") => TargetMatch::NotUnderSuffix,
            Below::Unmatchable => TargetMatch::UnknownUnderSuffix,
            Below::Name(name) => match self.index.lookup(name) {
                Some(i) => TargetMatch::Scheduled(i),
                None => TargetMatch::UnknownUnderSuffix,
            },
        }
    }

    /// Is the name (labels as for [`match_target`](Self::match_target)) an empty
    /// non-terminal on the way to a scheduled name: the suffix itself, or
    /// `customer.com.<suffix>` on the way to `img.customer.com.<suffix>`? Such names exist:
    /// they get NODATA, not NXDOMAIN, or resolvers would deny everything below them
    /// (RFC 8020). One hash lookup, no allocation.
    pub fn is_scheduling_ancestor<'a, L>(&self, labels: L) -> bool
    where
        L: IntoIterator<Item = &'a [u8]>,
        L::IntoIter: DoubleEndedIterator + ExactSizeIterator,
    {
        let mut buf = [0u8; 256];
        match self.below_suffix(labels, &mut buf) {
            Below::Name(name) => self.index.ancestors.contains(name),
            Below::Outside | Below::Unmatchable => false,
        }
    }

    /// The part of a name left of the suffix, lowercase, as "img.customer.com" (empty for
    /// the suffix itself), written into `buf`.
    fn below_suffix<'a, 'b, L>(&self, labels: L, buf: &'b mut [u8; 256]) -> Below<'b>
    where
        L: IntoIterator<Item = &'a [u8]>,
        L::IntoIter: DoubleEndedIterator + ExactSizeIterator,
    {
        // One pass from the right: the suffix's labels, then the customer name's labels,
        // written right to left into the buffer.
        let mut labels = labels.into_iter();
        for suffix_label in self.suffix_labels.iter().rev() {
            match labels.next_back() {
                Some(label) if label.eq_ignore_ascii_case(suffix_label) => {}
                _ => return Below::Outside,
            }
        }
        let mut start = buf.len();
        while let Some(label) = labels.next_back() {
            // A '.' inside a label would fake a label boundary. Any other byte is harmless:
            // the index holds only lowercase letters, digits, '-' and '.', so it cannot match.
            if label.contains(&b'.') {
                return Below::Unmatchable;
            }
            let dot = usize::from(start != buf.len());
            if label.len() + dot > start {
                return Below::Unmatchable;
            }
            if dot == 1 {
                start -= 1;
                buf[start] = b'.';
            }
            start -= label.len();
            let slot = &mut buf[start..start + label.len()];
            slot.copy_from_slice(label);
            slot.make_ascii_lowercase();
        }
        Below::Name(&buf[start..])
    }

    /// The CNAME target a customer must set for `domain`: `<domain>.<suffix>.` when
    /// `domain` is accelerated (exactly, or covered by a wildcard domain), else `None`.
    ///
    /// For a wildcard domain `*.customer.com` the target is `*.customer.com.<suffix>.`
    /// (for the customer's wildcard CNAME record `*.customer.com CNAME
    /// *.customer.com.<suffix>.`); the literal `*` label is a name the wildcard covers, so
    /// it is scheduled like any other. A name under a wildcard domain, such as
    /// `img.customer.com`, gets `img.customer.com.<suffix>.`, which is scheduled too.
    pub fn cname_target(&self, domain: &str) -> Option<String> {
        let trimmed = domain.trim();
        let name = trimmed
            .strip_suffix('.')
            .unwrap_or(trimmed)
            .to_ascii_lowercase();
        self.index.lookup(name.as_bytes())?;
        Some(format!("{name}.{}", self.suffix))
    }

    /// The domain serving an HTTP `Host` header value (see [`host_name`]: port and trailing
    /// dots stripped; case-insensitive; exact domain first, then the most specific
    /// wildcard). An IP literal is never a domain.
    pub fn match_host(&self, host: &str) -> Option<&Domain> {
        self.match_host_index(host).map(|i| &self.domains[i])
    }

    /// [`CdnConfig::match_host`] as an index into [`CdnConfig::domains`]. No allocation.
    pub fn match_host_index(&self, host: &str) -> Option<usize> {
        let host = host_name(host);
        // A ':' left after the port is stripped is no name ("x:abc.customer.com").
        if host.starts_with('[') || host.contains(':') || host.len() > names::MAX_NAME_LEN {
            return None;
        }
        let mut buf = [0u8; names::MAX_NAME_LEN];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host.as_bytes());
        lower.make_ascii_lowercase();
        self.index.lookup(lower)
    }

    /// Index of the edge named `name`.
    pub fn edge_index(&self, name: &str) -> Option<usize> {
        self.edges.iter().position(|e| e.name == name)
    }

    /// Index of the domain configured exactly as `name` (`"*.customer.com"` for a
    /// wildcard); no wildcard matching.
    pub fn domain_index(&self, name: &str) -> Option<usize> {
        self.domains.iter().position(|d| d.name == name)
    }
}

/// The name an HTTP `Host` value (or a URI authority) names, as every Host comparison of
/// the edge and [`CdnConfig::match_host`] see it: surrounding whitespace, a `:port` (digits
/// only) and trailing dots dropped, case kept. A bracketed IPv6 literal keeps its brackets
/// and loses whatever follows them. No allocation.
pub fn host_name(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    name.trim_end_matches('.')
}

/// [`host_name`], lowercase: the form the edge keys its cache and its messages with.
pub fn normalize_host(host: &str) -> String {
    let mut name = host_name(host).to_ascii_lowercase();
    if name.starts_with('[') && !name.ends_with(']') {
        // "[::1" (no closing bracket) is still an IPv6 literal: close it.
        name.push(']');
    }
    name
}

/// Where a name sits relative to the suffix.
enum Below<'b> {
    /// Not the suffix nor below it.
    Outside,
    /// Below the suffix, but no configured name can be spelled so.
    Unmatchable,
    /// Below the suffix (or the suffix itself: empty): the part left of it.
    Name(&'b [u8]),
}

/// Names as lowercase ASCII bytes -> domain index. The keys come from the configuration and
/// query names only probe, so the zone store's fast name hasher serves here too.
type NameMap = HashMap<Box<[u8]>, usize, crate::zone::KeyHasher>;

/// Exact and wildcard domain names -> domain index.
#[derive(Debug, Clone, Default)]
struct DomainIndex {
    exact: NameMap,
    /// Keyed by the name below `*.` ("customer.com" for "*.customer.com").
    wildcard: NameMap,
    /// Every proper ancestor of a domain name, down to the empty name: "customer.com",
    /// "com" and "" for "img.customer.com" (the empty non-terminals under the suffix).
    ancestors: std::collections::HashSet<Box<[u8]>, crate::zone::KeyHasher>,
}

impl DomainIndex {
    fn build(domains: &[Domain]) -> DomainIndex {
        let mut index = DomainIndex::default();
        for domain in domains {
            let mut rest = domain.name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                index.ancestors.insert(parent.as_bytes().into());
                rest = parent;
            }
            index.ancestors.insert(Box::default());
        }
        for (i, domain) in domains.iter().enumerate() {
            match domain.name.strip_prefix("*.") {
                Some(base) => index.wildcard.entry(base.as_bytes().into()).or_insert(i),
                None => index
                    .exact
                    .entry(domain.name.as_bytes().into())
                    .or_insert(i),
            };
        }
        index
    }

    /// `name` lowercase without trailing dot. Exact first, then wildcards from the most
    /// specific: "a.b.customer.com" tries "*.b.customer.com", then "*.customer.com", ...
    fn lookup(&self, name: &[u8]) -> Option<usize> {
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut rest = name;
        while let Some(dot) = rest.iter().position(|&b| b == b'.') {
            rest = &rest[dot + 1..];
            if let Some(&i) = self.wildcard.get(rest) {
                return Some(i);
            }
        }
        None
    }
}
