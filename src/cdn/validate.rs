//! `cdn.toml` text -> [`CdnConfig`], collecting every problem before giving up.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::names::{self, NameProblem};
use super::spec::{CdnSpec, DomainSpec, EdgeSpec, FileSpec, HealthSpec};
use super::{
    Business, CdnConfig, CdnError, CdnErrors, DEFAULT_ANSWERS, DEFAULT_MAX_DOMAINS,
    DEFAULT_ORIGIN_PORT, DEFAULT_TTL, DEFAULT_WEIGHT, Domain, DomainIndex, Edge, Entry, ErrorKind,
    HealthSettings, Origin, Region, Scheme,
};
use crate::geo::{Country, centroid, unit_vector};

/// Collects problems with file and line context.
struct Report<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<CdnError>,
    warnings: Vec<CdnError>,
}

impl Report<'_> {
    fn line_of(&self, span: Range<usize>) -> Option<usize> {
        let start = span.start.min(self.text.len());
        Some(
            self.text.as_bytes()[..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        )
    }

    fn make(
        &self,
        span: Option<Range<usize>>,
        entry: Option<Entry>,
        kind: ErrorKind,
        message: String,
    ) -> CdnError {
        CdnError {
            file: self.file.to_owned(),
            line: span.and_then(|s| self.line_of(s)),
            entry,
            kind,
            message,
        }
    }

    fn error(
        &mut self,
        span: Option<Range<usize>>,
        entry: &Entry,
        kind: ErrorKind,
        message: String,
    ) {
        let error = self.make(span, Some(entry.clone()), kind, message);
        self.errors.push(error);
    }

    fn warn(&mut self, span: Option<Range<usize>>, entry: &Entry, message: String) {
        let warning = self.make(span, Some(entry.clone()), ErrorKind::Warning, message);
        self.warnings.push(warning);
    }

    fn name_error(
        &mut self,
        span: Option<Range<usize>>,
        entry: &Entry,
        what: &str,
        raw: &str,
        problem: NameProblem,
    ) {
        let kind = match problem {
            NameProblem::Idn => ErrorKind::NonAsciiName,
            NameProblem::MisplacedWildcard => ErrorKind::BadWildcard,
            _ => ErrorKind::InvalidName,
        };
        self.error(
            span,
            entry,
            kind,
            format!("{what} {raw:?} is invalid: {problem}"),
        );
    }
}

pub(super) fn parse(text: &str, path: &Path) -> Result<CdnConfig, CdnErrors> {
    let mut report = Report {
        file: path,
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let spec: FileSpec = match toml::from_str(text) {
        Ok(spec) => spec,
        Err(e) => {
            let error = report.make(
                e.span(),
                None,
                ErrorKind::Syntax,
                e.message().trim_end().to_owned(),
            );
            return Err(CdnErrors(vec![error]));
        }
    };

    let cdn = match &spec.cdn {
        Some(cdn) => check_cdn(&mut report, cdn),
        None => {
            let error = report.make(
                None,
                None,
                ErrorKind::Syntax,
                "missing [cdn] section (it needs at least `zone` and `suffix`)".to_owned(),
            );
            report.errors.push(error);
            None
        }
    };
    let health = check_health(&mut report, &spec.health);
    let edges = check_edges(&mut report, &spec.edge);
    let max_domains = cdn.as_ref().map_or(DEFAULT_MAX_DOMAINS, |c| c.max_domains);
    let suffix_text = cdn.as_ref().map(|c| c.suffix_text.clone());
    let domains = check_domains(
        &mut report,
        &spec.domain,
        max_domains,
        suffix_text.as_deref(),
    );
    let index = DomainIndex::build(&domains);
    check_origin_loops(&mut report, &spec.domain, &domains, &index);
    warn_unserved_regions(&mut report, &spec.domain, &domains, &edges);

    match cdn {
        Some(cdn) if report.errors.is_empty() => Ok(CdnConfig {
            suffix_labels: cdn
                .suffix_text
                .split('.')
                .map(|label| label.as_bytes().into())
                .collect(),
            zone: cdn.zone,
            suffix: cdn.suffix,
            ttl: cdn.ttl,
            answers: cdn.answers,
            max_domains: cdn.max_domains,
            default_country: cdn.default_country,
            health,
            edges,
            domains,
            source: path.to_owned(),
            warnings: report.warnings,
            index,
        }),
        _ => Err(CdnErrors(report.errors)),
    }
}

struct CdnPart {
    /// Fully qualified, lowercase: "cdn.example.net.".
    zone: String,
    suffix: String,
    /// `suffix` without its trailing dot.
    suffix_text: String,
    ttl: u32,
    answers: usize,
    max_domains: usize,
    default_country: Country,
}

/// A checked name (lowercase, no trailing dot) in its fully qualified form.
fn fqdn(text: &str) -> Option<String> {
    Some(format!("{text}."))
}

fn check_cdn(report: &mut Report<'_>, spec: &CdnSpec) -> Option<CdnPart> {
    let entry = Entry::Cdn;
    let mut ok = true;
    let name_field = |report: &mut Report<'_>, what: &str, field: &toml::Spanned<String>| {
        match names::zone_name(field.get_ref())
            .ok()
            .and_then(|t| fqdn(&t).map(|n| (t, n)))
        {
            Some(pair) => Some(pair),
            None => {
                let problem = names::zone_name(field.get_ref())
                    .err()
                    .unwrap_or(NameProblem::Empty);
                report.name_error(Some(field.span()), &entry, what, field.get_ref(), problem);
                None
            }
        }
    };
    let zone = name_field(report, "zone", &spec.zone);
    let suffix = name_field(report, "suffix", &spec.suffix);
    if let (Some((_, zone)), Some((_, suffix))) = (&zone, &suffix)
        && !names::is_at_or_below(suffix, zone)
    {
        report.error(
                Some(spec.suffix.span()),
                &entry,
                ErrorKind::SuffixOutsideZone,
                format!("suffix \"{suffix}\" is outside the CDN zone \"{zone}\": it must be the zone or a name below it"),
            );
        ok = false;
    }

    let mut bounded = |report: &mut Report<'_>,
                       what: &str,
                       field: &Option<toml::Spanned<i64>>,
                       default: i64,
                       min: i64,
                       max: i64|
     -> i64 {
        match field {
            None => default,
            Some(v) if (min..=max).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                report.error(
                    Some(v.span()),
                    &entry,
                    ErrorKind::InvalidValue,
                    format!(
                        "{what} = {} is out of range: use {min} to {max}",
                        v.get_ref()
                    ),
                );
                ok = false;
                default
            }
        }
    };
    let ttl = bounded(
        report,
        "ttl",
        &spec.ttl,
        i64::from(DEFAULT_TTL),
        0,
        i64::from(i32::MAX),
    );
    let answers = bounded(
        report,
        "answers",
        &spec.answers,
        DEFAULT_ANSWERS as i64,
        1,
        64,
    );
    let max_domains = bounded(
        report,
        "max_domains",
        &spec.max_domains,
        DEFAULT_MAX_DOMAINS as i64,
        0,
        1_000_000,
    );

    let default_country = match &spec.default_country {
        None => Country::US,
        Some(field) => match field.get_ref().parse::<Country>() {
            Ok(c) if c.is_known() => c,
            _ => {
                report.error(
                    Some(field.span()),
                    &entry,
                    ErrorKind::UnknownCountry,
                    format!(
                        "default_country {:?} is not a known ISO 3166-1 alpha-2 code",
                        field.get_ref()
                    ),
                );
                ok = false;
                Country::US
            }
        },
    };
    let ((suffix_text, suffix), (_, zone)) = (suffix?, zone?);
    ok.then_some(CdnPart {
        zone,
        suffix,
        suffix_text,
        ttl: ttl as u32,
        answers: answers as usize,
        max_domains: max_domains as usize,
        default_country,
    })
}

/// Longest accepted health interval or timeout.
const MAX_HEALTH_DURATION: Duration = Duration::from_secs(24 * 3600);

/// "2s", "500ms", "1m", "1h" (a whole number and a unit).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        "h" => Duration::from_secs(number.checked_mul(3600)?),
        _ => return None,
    };
    Some(duration)
}

fn check_health(report: &mut Report<'_>, spec: &HealthSpec) -> HealthSettings {
    let entry = Entry::Health;
    let defaults = HealthSettings::default();
    let duration = |report: &mut Report<'_>,
                    what: &str,
                    field: &Option<toml::Spanned<String>>,
                    default: Duration| {
        let Some(field) = field else { return default };
        match parse_duration(field.get_ref()) {
            Some(d) if !d.is_zero() && d <= MAX_HEALTH_DURATION => d,
            _ => {
                report.error(
                    Some(field.span()),
                    &entry,
                    ErrorKind::InvalidValue,
                    format!(
                        "{what} {:?} is not a duration from \"1ms\" to \"24h\", such as \"2s\" or \"500ms\"",
                        field.get_ref()
                    ),
                );
                default
            }
        }
    };
    let interval = duration(report, "interval", &spec.interval, defaults.interval);
    let timeout = duration(report, "timeout", &spec.timeout, defaults.timeout);
    let count =
        |report: &mut Report<'_>, what: &str, field: &Option<toml::Spanned<i64>>, default: u32| {
            let Some(field) = field else { return default };
            match u32::try_from(*field.get_ref()) {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    report.error(
                        Some(field.span()),
                        &entry,
                        ErrorKind::InvalidValue,
                        format!(
                            "{what} = {} is out of range: use 1 to 1000 consecutive checks",
                            field.get_ref()
                        ),
                    );
                    default
                }
            }
        };
    let rise = count(report, "rise", &spec.rise, defaults.rise);
    let fall = count(report, "fall", &spec.fall, defaults.fall);
    HealthSettings {
        interval,
        timeout,
        rise,
        fall,
    }
}

fn valid_edge_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_edges(report: &mut Report<'_>, specs: &[EdgeSpec]) -> Vec<Edge> {
    let mut edges = Vec::with_capacity(specs.len());
    let mut first_line: HashMap<&str, Option<usize>> = HashMap::new();
    for spec in specs {
        let name = spec.name.get_ref();
        let span = Some(spec.name.span());
        let entry = Entry::Edge(name.clone());
        let errors_before = report.errors.len();

        if !valid_edge_name(name) {
            report.error(
                span.clone(),
                &entry,
                ErrorKind::InvalidName,
                format!(
                    "edge name {name:?} is invalid: use 1 to 63 letters, digits, '-', '_' or '.'"
                ),
            );
        }
        let line = report.line_of(spec.name.span());
        if let Some(first) = first_line.insert(name, line) {
            let at = first
                .map(|l| format!(" (first at line {l})"))
                .unwrap_or_default();
            report.error(
                span.clone(),
                &entry,
                ErrorKind::DuplicateEdge,
                format!("edge name {name:?} is used twice{at}: edge names must be unique"),
            );
        }

        let country = match spec.country.parse::<Country>() {
            Ok(c) if c.is_known() => Some(c),
            _ => {
                report.error(span.clone(), &entry, ErrorKind::UnknownCountry, format!(
                    "country {:?} is not a known ISO 3166-1 alpha-2 code (e.g. \"CN\", \"HK\", \"US\")",
                    spec.country
                ));
                None
            }
        };

        let position = match (spec.lat, spec.lon) {
            (Some(lat), Some(lon)) => {
                let (lat, lon) = (lat.value(), lon.value());
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
                    Some((lat, lon))
                } else {
                    report.error(span.clone(), &entry, ErrorKind::InvalidValue, format!(
                        "lat = {lat}, lon = {lon} is not a position: lat must be within -90..90 and lon within -180..180"
                    ));
                    None
                }
            }
            (None, None) => country.and_then(centroid),
            _ => {
                report.error(
                    span.clone(),
                    &entry,
                    ErrorKind::InvalidValue,
                    "give both lat and lon, or neither (the country's centroid is then used)"
                        .to_owned(),
                );
                None
            }
        };

        let mut ipv4 = Vec::new();
        for text in &spec.ipv4 {
            match text.parse::<Ipv4Addr>() {
                Ok(ip) if usable_ip(IpAddr::V4(ip)) => ipv4.push(ip),
                Ok(_) => report.error(span.clone(), &entry, ErrorKind::InvalidValue,
                    format!("ipv4 address {text:?} cannot be given to clients (unspecified, broadcast or multicast)")),
                Err(_) => report.error(span.clone(), &entry, ErrorKind::InvalidValue,
                    format!("ipv4 entry {text:?} is not an IPv4 address")),
            }
        }
        let mut ipv6 = Vec::new();
        for text in &spec.ipv6 {
            match text.parse::<Ipv6Addr>() {
                Ok(ip) if usable_ip(IpAddr::V6(ip)) => ipv6.push(ip),
                Ok(_) => report.error(span.clone(), &entry, ErrorKind::InvalidValue,
                    format!("ipv6 address {text:?} cannot be given to clients (unspecified or multicast)")),
                Err(_) => report.error(span.clone(), &entry, ErrorKind::InvalidValue,
                    format!("ipv6 entry {text:?} is not an IPv6 address")),
            }
        }
        if spec.ipv4.is_empty() && spec.ipv6.is_empty() {
            report.error(
                span.clone(),
                &entry,
                ErrorKind::EdgeWithoutAddress,
                "the edge has no address: give at least one in ipv4 or ipv6".to_owned(),
            );
        }

        let health = match &spec.health {
            None => None,
            Some(text) => match text.parse::<http::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {
                    Some(uri)
                }
                Ok(uri) if uri.scheme_str() == Some("https") => {
                    report.error(span.clone(), &entry, ErrorKind::InvalidValue, format!(
                        "health URL {text:?}: https checks are not supported; use an http:// URL"
                    ));
                    None
                }
                _ => {
                    report.error(span.clone(), &entry, ErrorKind::InvalidValue, format!(
                        "health {text:?} is not an http:// URL such as \"http://127.0.1.1:8080/health\""
                    ));
                    None
                }
            },
        };

        let weight = match spec.weight {
            None => DEFAULT_WEIGHT,
            Some(w) => u32::try_from(w).unwrap_or_else(|_| {
                report.error(
                    span.clone(),
                    &entry,
                    ErrorKind::InvalidValue,
                    format!("weight = {w} is out of range: use 0 to {}", u32::MAX),
                );
                DEFAULT_WEIGHT
            }),
        };

        if report.errors.len() == errors_before
            && let (Some(country), Some((lat, lon))) = (country, position)
        {
            edges.push(Edge {
                name: name.clone(),
                country,
                lat,
                lon,
                ipv4,
                ipv6,
                health,
                weight,
                position: unit_vector(lat, lon),
            });
        }
    }
    edges
}

fn usable_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

fn check_domains(
    report: &mut Report<'_>,
    specs: &[DomainSpec],
    max_domains: usize,
    suffix: Option<&str>,
) -> Vec<Domain> {
    let mut domains = Vec::with_capacity(specs.len());
    let mut first_line: HashMap<String, Option<usize>> = HashMap::new();
    if specs.len() > max_domains {
        let span = specs.get(max_domains).map(|s| s.name.span());
        let error = report.make(span, Some(Entry::Cdn), ErrorKind::TooManyDomains, format!(
            "{} domains are configured but max_domains is {max_domains}: remove domains or raise the quota",
            specs.len()
        ));
        report.errors.push(error);
    }
    for spec in specs {
        let raw_name = spec.name.get_ref();
        let span = Some(spec.name.span());
        let errors_before = report.errors.len();

        let name = match names::host_name(raw_name, true) {
            Ok(name) => Some(name),
            Err(problem) => {
                let entry = Entry::Domain(raw_name.clone());
                report.name_error(span.clone(), &entry, "domain name", raw_name, problem);
                None
            }
        };
        let entry = Entry::Domain(name.clone().unwrap_or_else(|| raw_name.clone()));
        if let Some(name) = &name {
            let line = report.line_of(spec.name.span());
            if let Some(first) = first_line.insert(name.clone(), line) {
                let at = first
                    .map(|l| format!(" (first at line {l})"))
                    .unwrap_or_default();
                report.error(
                    span.clone(),
                    &entry,
                    ErrorKind::DomainAlreadyExist,
                    format!("DomainAlreadyExist: domain {name:?} is configured twice{at}"),
                );
            }
            if let Some(suffix) = suffix {
                let target_len = name.len() + 1 + suffix.len();
                if target_len > names::MAX_NAME_LEN {
                    report.error(span.clone(), &entry, ErrorKind::InvalidName, format!(
                        "the CNAME target \"{name}.{suffix}\" would be {target_len} characters long; at most {} fit in DNS",
                        names::MAX_NAME_LEN
                    ));
                }
            }
        }

        let region = Region::parse_keyword(&spec.region);
        if region.is_none() {
            report.error(
                span.clone(),
                &entry,
                ErrorKind::InvalidValue,
                format!(
                    "region {:?} is not one of {}",
                    spec.region,
                    Region::KEYWORDS.join(", ")
                ),
            );
        }
        let business = Business::parse_keyword(&spec.business);
        if business.is_none() {
            report.error(
                span.clone(),
                &entry,
                ErrorKind::InvalidValue,
                format!(
                    "business {:?} is not one of {}",
                    spec.business,
                    Business::KEYWORDS.join(", ")
                ),
            );
        }

        if spec.origins.is_empty() {
            report.error(
                span.clone(),
                &entry,
                ErrorKind::InvalidValue,
                "origins is empty: give at least one origin IP or site domain".to_owned(),
            );
        }
        let mut origins = Vec::with_capacity(spec.origins.len());
        for text in &spec.origins {
            let bare = text.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                if usable_ip(ip) {
                    origins.push(Origin::Ip(ip));
                } else {
                    report.error(
                        span.clone(),
                        &entry,
                        ErrorKind::InvalidValue,
                        format!("origin address {text:?} is unspecified or multicast"),
                    );
                }
                continue;
            }
            match names::host_name(text, false) {
                Ok(host) => origins.push(Origin::Host(host)),
                Err(problem) => report.name_error(span.clone(), &entry, "origin", text, problem),
            }
        }

        let origin_port = match spec.origin_port {
            None => DEFAULT_ORIGIN_PORT,
            Some(port) => {
                match u16::try_from(port) {
                    Ok(p) if p != 0 => p,
                    _ => {
                        report.error(span.clone(), &entry, ErrorKind::InvalidValue,
                        format!("origin_port = {port} is not a port: use 1 to 65535 (usually 80 or 443)"));
                        DEFAULT_ORIGIN_PORT
                    }
                }
            }
        };
        let origin_scheme = match &spec.origin_scheme {
            None if origin_port == 443 => Scheme::Https,
            None => Scheme::Http,
            Some(text) => Scheme::parse_keyword(text).unwrap_or_else(|| {
                report.error(
                    span.clone(),
                    &entry,
                    ErrorKind::InvalidValue,
                    format!(
                        "origin_scheme {text:?} is not one of {}",
                        Scheme::KEYWORDS.join(", ")
                    ),
                );
                Scheme::Http
            }),
        };
        let origin_host = match &spec.origin_host {
            None => None,
            Some(text) => {
                let (host, port_ok) = match text.rsplit_once(':') {
                    Some((host, port)) => (host, port.parse::<u16>().is_ok_and(|p| p != 0)),
                    None => (text.as_str(), true),
                };
                match names::host_name(host, false) {
                    Ok(_) if port_ok => Some(text.to_ascii_lowercase()),
                    Ok(_) => {
                        report.error(
                            span.clone(),
                            &entry,
                            ErrorKind::InvalidValue,
                            format!("origin_host {text:?} has an invalid port"),
                        );
                        None
                    }
                    Err(problem) => {
                        report.name_error(span.clone(), &entry, "origin_host", text, problem);
                        None
                    }
                }
            }
        };
        let icp = spec
            .icp
            .as_ref()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if let Some(region @ (Region::Mainland | Region::Global)) = region
            && icp.is_none()
        {
            report.error(
                span.clone(),
                &entry,
                ErrorKind::IcpRequired,
                format!(
                    "icp is required for region \"{region}\": give the domain's ICP filing number"
                ),
            );
        }

        if report.errors.len() == errors_before
            && let (Some(name), Some(region), Some(business)) = (name, region, business)
        {
            domains.push(Domain {
                name,
                region,
                business,
                origins,
                origin_port,
                origin_scheme,
                origin_host,
                icp,
            });
        }
    }
    domains
}

/// An origin site domain that an accelerated domain matches would make the edge resolve
/// the origin back to the CDN (a resolution loop).
fn check_origin_loops(
    report: &mut Report<'_>,
    specs: &[DomainSpec],
    domains: &[Domain],
    index: &DomainIndex,
) {
    for domain in domains {
        let Some(spec) = specs
            .iter()
            .find(|s| names::host_name(s.name.get_ref(), true).is_ok_and(|n| n == domain.name))
        else {
            continue;
        };
        for origin in &domain.origins {
            let Origin::Host(host) = origin else { continue };
            if let Some(j) = index.lookup(host.as_bytes()) {
                let matched = &domains[j].name;
                let how = if matched == host {
                    "is".to_owned()
                } else {
                    format!("is covered by {matched:?}, which is")
                };
                report.error(
                    Some(spec.name.span()),
                    &Entry::Domain(domain.name.clone()),
                    ErrorKind::OriginLoop,
                    format!(
                        "origin {host:?} {how} an accelerated domain: the edge would resolve the origin to the CDN itself (a resolution loop); use the origin's IP or another site domain"
                    ),
                );
            }
        }
    }
}

fn warn_unserved_regions(
    report: &mut Report<'_>,
    specs: &[DomainSpec],
    domains: &[Domain],
    edges: &[Edge],
) {
    let has_mainland = edges.iter().any(Edge::is_mainland);
    let has_overseas = edges.iter().any(|e| !e.is_mainland());
    for (domain, spec) in domains.iter().zip(specs) {
        let served = match domain.region {
            Region::Mainland => has_mainland,
            Region::Overseas => has_overseas,
            Region::Global => has_mainland || has_overseas,
        };
        if !served {
            let side = match domain.region {
                Region::Mainland => "no edge is in CN",
                Region::Overseas => "every edge is in CN",
                Region::Global => "there are no edges",
            };
            report.warn(
                Some(spec.name.span()),
                &Entry::Domain(domain.name.clone()),
                format!(
                    "region \"{}\" but {side}: queries for this domain get no address",
                    domain.region
                ),
            );
        }
    }
}
