//! GSLB selection as data: every `tests/data/gslb/scenarios/*.toml` is one case.
//!
//! A case gives a configuration (`base = "<file in tests/data/gslb>"` or inline `config`),
//! the accelerated name asked (`query`, matched like a real query for
//! `<query>.<suffix>`), the client (`country`, optional `lat`/`lon`, or `unknown = true`
//! for a client the GeoIP database does not know), edge health (`down`, `unknown`; every
//! other edge is up) and, per family, the expected edges in order, `fail_open`, and
//! optionally `side`, `reason` and the answer's `addresses`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{LowerName, Name};
use meridian::cdn::{CdnConfig, TargetMatch};
use meridian::geo::Country;
use meridian::gslb::{ClientLocation, Family, select};
use meridian::health::State;
use serde::Deserialize;

const DATA: &str = "tests/data/gslb";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    description: String,
    base: Option<String>,
    config: Option<String>,
    query: String,
    answers: Option<usize>,
    default_country: Option<String>,
    client: Client,
    #[serde(default)]
    health: Health,
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Client {
    country: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(default)]
    unknown: bool,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Health {
    #[serde(default)]
    down: Vec<String>,
    #[serde(default)]
    unknown: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    family: String,
    edges: Vec<String>,
    fail_open: bool,
    side: Option<String>,
    reason: Option<String>,
    addresses: Option<Vec<String>>,
}

fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(DATA).join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Runs one scenario file; returns a description of every mismatch.
fn run(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let sc: Scenario = toml::from_str(&text).map_err(|e| format!("bad scenario file: {e}"))?;
    let mut cfg = match (&sc.base, &sc.config) {
        (Some(base), None) => CdnConfig::load(&Path::new(DATA).join(base)),
        (None, Some(inline)) => CdnConfig::parse(inline, path),
        _ => return Err("give exactly one of `base` and `config`".into()),
    }
    .map_err(|e| format!("config does not load:\n{e}"))?;
    if let Some(answers) = sc.answers {
        cfg.answers = answers;
    }
    if let Some(country) = &sc.default_country {
        cfg.default_country = country.parse().map_err(|e| format!("{e}"))?;
    }

    let qname =
        Name::from_str(&format!("{}.{}", sc.query, cfg.suffix)).map_err(|e| e.to_string())?;
    let domain = match cfg.match_target(LowerName::from(qname).iter()) {
        TargetMatch::Scheduled(i) => i,
        other => return Err(format!("query {:?} is not scheduled: {other:?}", sc.query)),
    };

    let client = if sc.client.unknown {
        ClientLocation::from_lookup(None, cfg.default_country)
    } else {
        let country: Country = sc
            .client
            .country
            .as_deref()
            .ok_or("client needs a country")?
            .parse()
            .map_err(|e| format!("{e}"))?;
        let mut at = ClientLocation::at_centroid(country).ok_or("country without centroid")?;
        if let (Some(lat), Some(lon)) = (sc.client.lat, sc.client.lon) {
            (at.lat, at.lon) = (lat, lon);
        }
        at
    };

    for name in sc.health.down.iter().chain(&sc.health.unknown) {
        if cfg.edge_index(name).is_none() {
            return Err(format!("health names unknown edge {name:?}"));
        }
    }
    let states: Vec<State> = cfg
        .edges
        .iter()
        .map(|e| {
            if sc.health.down.contains(&e.name) {
                State::Down
            } else if sc.health.unknown.contains(&e.name) {
                State::Unknown
            } else {
                State::Up
            }
        })
        .collect();
    let is_up = |i: usize| states[i].is_served();

    let mut problems = String::new();
    for expect in &sc.expect {
        let family = match expect.family.as_str() {
            "A" => Family::V4,
            "AAAA" => Family::V6,
            other => return Err(format!("family {other:?} is not A or AAAA")),
        };
        let got = select(&cfg, domain, &client, family, is_up);
        let names: Vec<&str> = got
            .edges
            .iter()
            .map(|&i| cfg.edges[i].name.as_str())
            .collect();
        let mut check = |what: &str, ok: bool, detail: String| {
            if !ok {
                let _ = writeln!(problems, "  {}: {what}: {detail}", expect.family);
            }
        };
        check(
            "edges",
            names == expect.edges,
            format!("expected {:?}, got {names:?} ({got:?})", expect.edges),
        );
        check(
            "fail_open",
            got.fail_open == expect.fail_open,
            format!("expected {}, got {}", expect.fail_open, got.fail_open),
        );
        if let Some(side) = &expect.side {
            check(
                "side",
                got.side.as_str() == side,
                format!("expected {side}, got {}", got.side),
            );
        }
        if let Some(reason) = &expect.reason {
            check(
                "reason",
                got.reason.as_str() == reason,
                format!("expected {reason}, got {}", got.reason),
            );
        }
        if let Some(addresses) = &expect.addresses {
            let got_addresses: Vec<String> =
                got.addresses(&cfg, family).map(|a| a.to_string()).collect();
            check(
                "addresses",
                &got_addresses == addresses,
                format!("expected {addresses:?}, got {got_addresses:?}"),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{problems}", sc.description))
    }
}

#[test]
fn every_scenario_file_gives_the_expected_edges() {
    let files = scenario_files();
    assert!(files.len() >= 30, "scenario files missing: {}", files.len());
    let mut failures = HashMap::new();
    for path in &files {
        if let Err(problem) = run(path) {
            failures.insert(path.display().to_string(), problem);
        }
    }
    let mut report = String::new();
    for (file, problem) in &failures {
        let _ = writeln!(report, "{file}: {problem}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{report}",
        failures.len(),
        files.len()
    );
}

#[test]
fn a_domain_index_out_of_range_gives_no_edges_instead_of_panicking() {
    let cfg = CdnConfig::load(&Path::new(DATA).join("scenario-base.toml")).unwrap();
    let client = ClientLocation::at_centroid(Country::CN).unwrap();
    let got = select(&cfg, cfg.domains.len(), &client, Family::V4, |_| true);
    assert!(got.edges.is_empty());
    assert_eq!(got.reason.as_str(), "unknown-domain");
}
