//! `cdn.toml` parsing, validation and name matching, through the public API.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use meridian::cdn::{
    Business, CdnConfig, CdnErrors, Entry, ErrorKind, Origin, Region, Scheme, TargetMatch,
};
use meridian::geo::{Country, centroid};

const FILE: &str = "zones/cdn.toml";

const HEADER: &str = r#"
[cdn]
zone = "cdn.example.net"
suffix = "w.cdn.example.net"

[[edge]]
name = "hz"
country = "CN"
ipv4 = ["127.0.1.1"]
"#;

fn parse(text: &str) -> Result<CdnConfig, CdnErrors> {
    CdnConfig::parse(text, Path::new(FILE))
}

/// HEADER plus `rest`, expected to fail; returns the errors.
fn errors(rest: &str) -> CdnErrors {
    match parse(&format!("{HEADER}{rest}")) {
        Ok(_) => panic!("config was accepted:\n{rest}"),
        Err(e) => e,
    }
}

fn only_kind(errors: &CdnErrors, kind: ErrorKind) {
    assert!(
        errors.0.iter().all(|e| e.kind == kind) && !errors.0.is_empty(),
        "expected only {kind:?}, got:\n{errors}"
    );
}

fn domain(name: &str, extra: &str) -> String {
    format!(
        "\n[[domain]]\nname = \"{name}\"\nregion = \"overseas\"\nbusiness = \"small-files\"\norigins = [\"203.0.113.1\"]\n{extra}\n"
    )
}

#[test]
fn example_config_parses_with_its_values() {
    let cfg = CdnConfig::load(Path::new("tests/data/gslb/cdn.example.toml")).unwrap();
    assert_eq!(cfg.zone, "cdn.example.net.");
    assert_eq!(cfg.suffix, "w.cdn.example.net.");
    assert!(cfg.suffix.ends_with('.'), "fully qualified");
    assert_eq!((cfg.ttl, cfg.answers, cfg.max_domains), (60, 1, 50));
    assert_eq!(cfg.default_country, Country::US);
    assert_eq!(cfg.edges.len(), 5);
    assert_eq!(cfg.domains.len(), 3);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    let hk = &cfg.edges[2];
    assert_eq!(hk.name, "hongkong-1");
    assert!(!hk.is_mainland());
    assert_eq!((hk.lat, hk.lon), centroid("HK".parse().unwrap()).unwrap());
    assert_eq!(
        hk.ipv6,
        vec!["fd00:2::1".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    assert_eq!(hk.weight, 100);
    assert_eq!(
        hk.health.as_ref().unwrap().to_string(),
        "http://127.0.2.1:8080/health"
    );
    assert!(cfg.edges[4].health.is_none());

    let img = &cfg.domains[0];
    assert_eq!(img.region, Region::Global);
    assert_eq!(img.business, Business::SmallFiles);
    assert_eq!(
        img.origins,
        vec![
            Origin::Ip("203.0.113.10".parse().unwrap()),
            Origin::Host("origin.customer.com".into())
        ]
    );
    assert_eq!(img.origin_scheme, Scheme::Http);
    assert_eq!(img.icp.as_deref(), Some("ZJ-ICP-12345678"));
    assert_eq!(
        cfg.domains[1].origin_scheme,
        Scheme::Https,
        "443 defaults to https"
    );
    assert!(cfg.domains[2].is_wildcard());
}

#[test]
fn defaults_fill_what_is_left_out() {
    let cfg = parse(&format!("{HEADER}{}", domain("img.customer.com", ""))).unwrap();
    assert_eq!((cfg.ttl, cfg.answers, cfg.max_domains), (60, 1, 50));
    assert_eq!(cfg.default_country, Country::US);
    assert_eq!(cfg.health.interval, Duration::from_secs(2));
    assert_eq!(cfg.health.timeout, Duration::from_secs(1));
    assert_eq!((cfg.health.rise, cfg.health.fall), (2, 2));
    let d = &cfg.domains[0];
    assert_eq!((d.origin_port, d.origin_scheme), (80, Scheme::Http));
    assert_eq!(d.origin_host, None);
    assert_eq!(cfg.edges[0].weight, 100);
    assert_eq!(cfg.source, Path::new(FILE));
}

#[test]
fn durations_accept_seconds_and_milliseconds() {
    let cfg = parse(&format!(
        "{HEADER}\n[health]\ninterval = \"500ms\"\ntimeout = \"250ms\"\nrise = 3\nfall = 1\n"
    ))
    .unwrap();
    assert_eq!(cfg.health.interval, Duration::from_millis(500));
    assert_eq!(cfg.health.timeout, Duration::from_millis(250));
    assert_eq!((cfg.health.rise, cfg.health.fall), (3, 1));

    let e =
        errors("\n[health]\ninterval = \"2 parsecs\"\ntimeout = \"25h\"\nrise = 0\nfall = 1001\n");
    only_kind(&e, ErrorKind::InvalidValue);
    assert_eq!(e.0.len(), 4, "{e}");
    assert!(e.0.iter().all(|x| x.entry == Some(Entry::Health)));
    only_kind(
        &errors("\n[health]\ninterval = \"0s\"\n"),
        ErrorKind::InvalidValue,
    );
}

#[test]
fn duplicate_domain_is_domain_already_exist() {
    let e = errors(&format!(
        "{}{}",
        domain("img.customer.com", ""),
        domain("IMG.customer.com.", "")
    ));
    only_kind(&e, ErrorKind::DomainAlreadyExist);
    let text = e.to_string();
    assert!(text.contains("DomainAlreadyExist"), "{text}");
    assert!(text.starts_with(&format!("{FILE}:")), "{text}");
    assert!(text.contains("[domain \"img.customer.com\"]"), "{text}");
}

#[test]
fn origin_equal_to_an_accelerated_domain_is_a_loop() {
    let e = errors(&format!(
        "{}{}",
        domain("img.customer.com", ""),
        domain("cdn.customer.com", "").replace("\"203.0.113.1\"", "\"img.customer.com\"")
    ));
    only_kind(&e, ErrorKind::OriginLoop);
    assert_eq!(e.0[0].entry, Some(Entry::Domain("cdn.customer.com".into())));
    // A domain that is its own origin is the plainest loop.
    let e =
        errors(&domain("img.customer.com", "").replace("\"203.0.113.1\"", "\"img.customer.com\""));
    only_kind(&e, ErrorKind::OriginLoop);
}

#[test]
fn origin_covered_by_a_wildcard_domain_is_a_loop() {
    let e =
        errors(&domain("*.customer.com", "").replace("\"203.0.113.1\"", "\"origin.customer.com\""));
    only_kind(&e, ErrorKind::OriginLoop);
    assert!(e.to_string().contains("*.customer.com"), "{e}");
    // The wildcard's own base name is not covered by it: no loop.
    parse(&format!(
        "{HEADER}{}",
        domain("*.customer.com", "").replace("\"203.0.113.1\"", "\"customer.com\"")
    ))
    .unwrap();
}

#[test]
fn wildcard_only_as_leftmost_label() {
    for bad in [
        "img.*.customer.com",
        "*img.customer.com",
        "*.*.customer.com",
        "img.customer.*",
    ] {
        let e = errors(&domain(bad, ""));
        only_kind(&e, ErrorKind::BadWildcard);
    }
    let e = errors(&domain("*.customer.com", "").replace("\"203.0.113.1\"", "\"*.origin.com\""));
    only_kind(&e, ErrorKind::BadWildcard);
}

#[test]
fn idn_and_non_ascii_names_are_refused() {
    for bad in ["图片.customer.com", "xn--fiqs8s.customer.com", "bücher.de"] {
        let e = errors(&domain(bad, ""));
        only_kind(&e, ErrorKind::NonAsciiName);
        assert!(e.to_string().contains("IDN"), "{e}");
    }
}

#[test]
fn otherwise_invalid_names_are_refused() {
    for bad in [
        "img_1.customer.com",
        "localhost",
        "-img.customer.com",
        "a..com",
        "10.0.0.1",
    ] {
        let e = errors(&domain(bad, ""));
        only_kind(&e, ErrorKind::InvalidName);
    }
    let e =
        errors(&domain("img.customer.com", "").replace("\"203.0.113.1\"", "\"origin host.com\""));
    only_kind(&e, ErrorKind::InvalidName);
    // The CNAME target must fit in a DNS name.
    let long = format!("{}.com", vec!["a".repeat(60); 4].join("."));
    let e = errors(&domain(&long, ""));
    only_kind(&e, ErrorKind::InvalidName);
    assert!(e.to_string().contains("CNAME target"), "{e}");
}

#[test]
fn more_domains_than_the_quota() {
    let text = format!(
        "{}\nmax_domains = 2\n{}{}{}",
        HEADER.replace("[[edge]]", "#").split('#').next().unwrap(),
        domain("a.customer.com", ""),
        domain("b.customer.com", ""),
        domain("c.customer.com", "")
    );
    let text =
        format!("{text}\n[[edge]]\nname = \"hz\"\ncountry = \"US\"\nipv4 = [\"127.0.0.9\"]\n");
    let e = parse(&text).unwrap_err();
    only_kind(&e, ErrorKind::TooManyDomains);
    assert!(e.to_string().contains("max_domains is 2"), "{e}");
}

#[test]
fn icp_is_required_for_mainland_and_global() {
    for region in ["mainland", "global"] {
        let d = domain("img.customer.com", "").replace("overseas", region);
        let e = errors(&d);
        only_kind(&e, ErrorKind::IcpRequired);
        assert!(e.to_string().contains(region), "{e}");
        parse(&format!("{HEADER}{d}icp = \"ZJ-ICP-1\"\n")).unwrap();
    }
    // Overseas needs none.
    parse(&format!("{HEADER}{}", domain("img.customer.com", ""))).unwrap();
}

#[test]
fn unknown_edge_country() {
    let e = errors("\n[[edge]]\nname = \"x\"\ncountry = \"ZZ\"\nipv4 = [\"127.0.0.2\"]\n");
    only_kind(&e, ErrorKind::UnknownCountry);
    assert_eq!(e.0[0].entry, Some(Entry::Edge("x".into())));
    let e = errors("\n[[edge]]\nname = \"x\"\ncountry = \"China\"\nipv4 = [\"127.0.0.2\"]\n");
    only_kind(&e, ErrorKind::UnknownCountry);
    // Lowercase is fine.
    parse(&format!(
        "{HEADER}\n[[edge]]\nname = \"x\"\ncountry = \"hk\"\nipv4 = [\"127.0.0.2\"]\n"
    ))
    .unwrap();
}

#[test]
fn edge_without_any_address() {
    let e = errors("\n[[edge]]\nname = \"x\"\ncountry = \"US\"\nipv4 = []\nipv6 = []\n");
    only_kind(&e, ErrorKind::EdgeWithoutAddress);
    let e = errors("\n[[edge]]\nname = \"y\"\ncountry = \"US\"\n");
    only_kind(&e, ErrorKind::EdgeWithoutAddress);
}

#[test]
fn duplicate_edge_names() {
    let e = errors("\n[[edge]]\nname = \"hz\"\ncountry = \"US\"\nipv4 = [\"127.0.0.2\"]\n");
    only_kind(&e, ErrorKind::DuplicateEdge);
    assert!(e.to_string().contains("first at line"), "{e}");
}

#[test]
fn suffix_outside_the_zone() {
    let e = parse(&HEADER.replace("w.cdn.example.net", "w.cdn.example.org")).unwrap_err();
    only_kind(&e, ErrorKind::SuffixOutsideZone);
    assert_eq!(e.0[0].entry, Some(Entry::Cdn));
    // The zone itself is allowed as suffix.
    parse(&HEADER.replace("w.cdn.example.net", "cdn.example.net")).unwrap();
}

#[test]
fn bad_values_are_reported() {
    let e = errors(concat!(
        "\n[[edge]]\nname = \"x\"\ncountry = \"US\"\nipv4 = [\"::1\", \"0.0.0.0\"]\nipv6 = [\"1.2.3.4\"]\n",
        "health = \"https://127.0.0.1/health\"\nlat = 91\nlon = 0\n",
        "\n[[domain]]\nname = \"a.customer.com\"\nregion = \"moon\"\nbusiness = \"big\"\norigins = []\n",
        "origin_port = 70000\norigin_scheme = \"ftp\"\n",
    ));
    only_kind(&e, ErrorKind::InvalidValue);
    assert_eq!(e.0.len(), 10, "{e}");
}

#[test]
fn syntax_errors_and_unknown_fields_name_the_line() {
    let e = errors("\n[[domain]]\nname = \"a.customer.com\"\nregoin = \"global\"\n");
    only_kind(&e, ErrorKind::Syntax);
    let line = HEADER.lines().count() + 4; // "\n", "[[domain]]", "name", "regoin"
    assert!(
        e.to_string().starts_with(&format!("{FILE}:{line}: ")),
        "{e}"
    );
    assert!(e.to_string().contains("regoin"), "{e}");

    let e = parse("[cdn\nzone = 1").unwrap_err();
    only_kind(&e, ErrorKind::Syntax);
    let e = parse("").unwrap_err();
    only_kind(&e, ErrorKind::Syntax);
    assert!(e.to_string().contains("[cdn]"), "{e}");
}

#[test]
fn several_errors_are_all_reported_with_file_line_and_entry() {
    let text = format!(
        "{HEADER}{}{}{}{}",
        "\n[[edge]]\nname = \"hz\"\ncountry = \"XX\"\n",
        domain("img.customer.com", ""),
        domain("img.customer.com", "").replace("overseas", "mainland"),
        domain("*.x.*.com", ""),
    );
    let e = parse(&text).unwrap_err();
    for kind in [
        ErrorKind::DuplicateEdge,
        ErrorKind::UnknownCountry,
        ErrorKind::EdgeWithoutAddress,
        ErrorKind::DomainAlreadyExist,
        ErrorKind::IcpRequired,
        ErrorKind::BadWildcard,
    ] {
        assert!(e.has(kind), "{kind:?} missing from:\n{e}");
    }
    let text_out = e.to_string();
    let lines: Vec<&str> = text_out.lines().collect();
    assert_eq!(lines.len(), e.0.len());
    for line in &lines {
        assert!(line.starts_with(&format!("{FILE}:")), "{line}");
        let after = &line[FILE.len() + 1..];
        let (number, rest) = after.split_once(": ").unwrap();
        assert!(number.parse::<usize>().is_ok(), "{line}");
        assert!(
            rest.starts_with("[edge \"") || rest.starts_with("[domain \""),
            "{line}"
        );
    }
    let dup =
        e.0.iter()
            .find(|x| x.kind == ErrorKind::DomainAlreadyExist)
            .unwrap();
    let name_line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("img.customer.com"))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert_eq!(dup.line, Some(name_line));
}

#[test]
fn a_region_without_edges_is_a_warning_not_an_error() {
    let cfg = parse(&format!("{}{}", HEADER, domain("img.customer.com", ""))).unwrap();
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].to_string().contains("every edge is in CN"));
}

fn lower(name: &str) -> LowerName {
    LowerName::from(Name::from_str(name).unwrap())
}

#[test]
fn match_target_exact_wildcard_and_outside() {
    let cfg = CdnConfig::load(Path::new("tests/data/gslb/cdn.example.toml")).unwrap();
    let img = cfg.domain_index("img.customer.com").unwrap();
    let wild = cfg.domain_index("*.static.customer.com").unwrap();
    let m = |n: &str| cfg.match_target(lower(n).iter());
    assert_eq!(
        m("img.customer.com.w.cdn.example.net."),
        TargetMatch::Scheduled(img)
    );
    assert_eq!(
        m("IMG.Customer.COM.w.cdn.example.net."),
        TargetMatch::Scheduled(img)
    );
    assert_eq!(
        m("a.static.customer.com.w.cdn.example.net."),
        TargetMatch::Scheduled(wild)
    );
    assert_eq!(
        m("x.y.static.customer.com.w.cdn.example.net."),
        TargetMatch::Scheduled(wild)
    );
    assert_eq!(
        m("*.static.customer.com.w.cdn.example.net."),
        TargetMatch::Scheduled(wild)
    );
    assert_eq!(
        m("static.customer.com.w.cdn.example.net."),
        TargetMatch::UnknownUnderSuffix
    );
    assert_eq!(
        m("other.customer.com.w.cdn.example.net."),
        TargetMatch::UnknownUnderSuffix
    );
    assert_eq!(
        m("x.img.customer.com.w.cdn.example.net."),
        TargetMatch::UnknownUnderSuffix
    );
    assert_eq!(m("w.cdn.example.net."), TargetMatch::NotUnderSuffix);
    assert_eq!(m("www.cdn.example.net."), TargetMatch::NotUnderSuffix);
    assert_eq!(m("img.customer.com."), TargetMatch::NotUnderSuffix);
    assert_eq!(
        m("img.customer.com.w.cdn.example.org."),
        TargetMatch::NotUnderSuffix
    );
}

#[test]
fn exact_domain_wins_over_wildcard_and_specific_wildcard_over_general() {
    let cfg = parse(&format!(
        "{HEADER}{}{}{}",
        domain("*.customer.com", ""),
        domain("img.customer.com", ""),
        domain("*.eu.customer.com", "")
    ))
    .unwrap();
    let m = |n: &str| cfg.match_target(lower(&format!("{n}.w.cdn.example.net.")).iter());
    assert_eq!(m("img.customer.com"), TargetMatch::Scheduled(1));
    assert_eq!(m("www.customer.com"), TargetMatch::Scheduled(0));
    assert_eq!(m("a.b.customer.com"), TargetMatch::Scheduled(0));
    assert_eq!(m("www.eu.customer.com"), TargetMatch::Scheduled(2));
    assert_eq!(m("eu.customer.com"), TargetMatch::Scheduled(0));
    // Labels no domain can have never match (not even through a wildcard).
    let odd = Name::from_labels(vec![
        &b"a.b"[..],
        b"customer",
        b"com",
        b"w",
        b"cdn",
        b"example",
        b"net",
    ])
    .unwrap();
    assert_eq!(
        cfg.match_target(LowerName::from(odd).iter()),
        TargetMatch::UnknownUnderSuffix
    );
}

#[test]
fn match_host_strips_port_and_case() {
    let cfg = CdnConfig::load(Path::new("tests/data/gslb/cdn.example.toml")).unwrap();
    assert_eq!(
        cfg.match_host("img.customer.com").unwrap().name,
        "img.customer.com"
    );
    assert_eq!(
        cfg.match_host("IMG.customer.com:8080").unwrap().name,
        "img.customer.com"
    );
    assert_eq!(
        cfg.match_host("img.customer.com.").unwrap().name,
        "img.customer.com"
    );
    assert_eq!(
        cfg.match_host("a.b.static.customer.com").unwrap().name,
        "*.static.customer.com"
    );
    assert!(cfg.match_host("static.customer.com").is_none());
    assert!(cfg.match_host("[::1]:80").is_none());
    assert!(cfg.match_host("127.0.0.1:8080").is_none());
    assert!(cfg.match_host("").is_none());
    assert!(cfg.match_host(&"a".repeat(300)).is_none());
}

#[test]
fn cname_targets() {
    let cfg = CdnConfig::load(Path::new("tests/data/gslb/cdn.example.toml")).unwrap();
    assert_eq!(
        cfg.cname_target("img.customer.com").unwrap().to_string(),
        "img.customer.com.w.cdn.example.net."
    );
    assert_eq!(
        cfg.cname_target("IMG.customer.com.").unwrap().to_string(),
        "img.customer.com.w.cdn.example.net."
    );
    let wild = cfg.cname_target("*.static.customer.com").unwrap();
    assert_eq!(wild.to_string(), "*.static.customer.com.w.cdn.example.net.");
    // The wildcard target is itself scheduled by the wildcard domain.
    assert_eq!(
        cfg.match_target(lower(&wild).iter()),
        TargetMatch::Scheduled(cfg.domain_index("*.static.customer.com").unwrap())
    );
    assert_eq!(
        cfg.cname_target("a.static.customer.com")
            .unwrap()
            .to_string(),
        "a.static.customer.com.w.cdn.example.net."
    );
    assert!(cfg.cname_target("nope.customer.com").is_none());
}

#[test]
fn mangled_configs_and_names_never_panic() {
    use rand::{Rng, SeedableRng};
    let example = std::fs::read("tests/data/gslb/cdn.example.toml").unwrap();
    let cfg = CdnConfig::parse(std::str::from_utf8(&example).unwrap(), Path::new(FILE)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let alphabet = b"*.-_[]=\"\n #0aZ\xc3\xa9:";
    for _ in 0..2000 {
        let mut bytes = example.clone();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = alphabet[rng.random_range(0..alphabet.len())];
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = CdnConfig::parse(&text, Path::new(FILE));
        let host: String = (0..rng.random_range(0..40))
            .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
            .collect();
        let _ = cfg.match_host(&host);
        let _ = cfg.cname_target(&host);
        if let Ok(name) = Name::from_str(&format!("{host}.w.cdn.example.net.")) {
            let _ = cfg.match_target(LowerName::from(name).iter());
        }
    }
}
