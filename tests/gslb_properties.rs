//! Properties of `select` over random configurations, health and clients, checked against
//! an independent haversine ordering.

use std::fmt::Write as _;
use std::path::Path;

use meridian::cdn::{CdnConfig, Region};
use meridian::geo::{Country, great_circle_km};
use meridian::gslb::{ClientLocation, Family, Reason, Side, select};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COUNTRIES: [&str; 8] = ["CN", "HK", "MO", "TW", "US", "DE", "JP", "SG"];
/// A few fixed positions, so that exact distance ties happen.
const POSITIONS: [(f64, f64); 4] = [
    (31.23, 121.47),
    (22.32, 114.17),
    (50.11, 8.68),
    (39.04, -77.49),
];

fn random_config(rng: &mut StdRng) -> CdnConfig {
    let mut text =
        String::from("[cdn]\nzone = \"cdn.example.net\"\nsuffix = \"w.cdn.example.net\"\n");
    let _ = writeln!(text, "answers = {}", rng.random_range(1..=3));
    for i in 0..rng.random_range(1..=8) {
        let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let _ = writeln!(
            text,
            "[[edge]]\nname = \"e{}\"\ncountry = \"{country}\"",
            rng.random_range(0..3) * 100 + i
        );
        match rng.random_range(0..3) {
            0 => {} // the country's centroid
            1 => {
                let (lat, lon) = POSITIONS[rng.random_range(0..POSITIONS.len())];
                let _ = writeln!(text, "lat = {lat}\nlon = {lon}");
            }
            _ => {
                let lat = rng.random_range(-60.0..60.0);
                let lon = rng.random_range(-180.0..180.0);
                let _ = writeln!(text, "lat = {lat}\nlon = {lon}");
            }
        }
        let (v4, v6) = match rng.random_range(0..3) {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        if v4 {
            let _ = writeln!(text, "ipv4 = [\"127.0.0.{}\"]", i + 1);
        }
        if v6 {
            let _ = writeln!(text, "ipv6 = [\"fd00::{}\"]", i + 1);
        }
        let _ = writeln!(text, "weight = {}", rng.random_range(0..3) * 50);
    }
    for region in ["mainland", "overseas", "global"] {
        let _ = writeln!(
            text,
            "[[domain]]\nname = \"{region}.customer.com\"\nregion = \"{region}\"\nbusiness = \"vod\"\norigins = [\"203.0.113.1\"]\nicp = \"X\""
        );
    }
    CdnConfig::parse(&text, Path::new("random.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn selection_invariants_hold_for_random_inputs() {
    let mut rng = StdRng::seed_from_u64(20260601);
    for round in 0..3000 {
        let cfg = random_config(&mut rng);
        let up: Vec<bool> = cfg.edges.iter().map(|_| rng.random_bool(0.6)).collect();
        let country: Country = COUNTRIES[rng.random_range(0..COUNTRIES.len())]
            .parse()
            .unwrap();
        let mut client = ClientLocation::at_centroid(country).unwrap();
        if rng.random_bool(0.5) {
            (client.lat, client.lon) = (
                rng.random_range(-60.0..60.0),
                rng.random_range(-180.0..180.0),
            );
        }
        let domain = rng.random_range(0..cfg.domains.len());
        let family = if rng.random_bool(0.5) {
            Family::V4
        } else {
            Family::V6
        };
        let got = select(&cfg, domain, &client, family, |i| up[i]);
        let ctx = format!("round {round}: {got:?} client {client:?} up {up:?}\n{cfg:#?}");

        let region = cfg.domains[domain].region;
        let allowed = |i: usize| match region {
            Region::Mainland => cfg.edges[i].is_mainland(),
            Region::Overseas => !cfg.edges[i].is_mainland(),
            Region::Global => true,
        };
        let side_of = |i: usize| Side::of(cfg.edges[i].country);
        let any_up = |side: Option<Side>| {
            (0..cfg.edges.len())
                .any(|i| allowed(i) && up[i] && side.is_none_or(|s| side_of(i) == s))
        };

        assert!(got.edges.len() <= cfg.answers, "{ctx}");
        let mut seen = got.edges.to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), got.edges.len(), "duplicates: {ctx}");
        for &i in &got.edges {
            assert!(allowed(i), "edge not allowed by region: {ctx}");
            assert_eq!(side_of(i), got.side, "edge not on the chosen side: {ctx}");
            assert!(
                family.has_address(&cfg.edges[i]),
                "edge without the family: {ctx}"
            );
            assert!(
                got.fail_open || up[i],
                "down edge served without fail-open: {ctx}"
            );
        }
        let any_allowed = (0..cfg.edges.len()).any(allowed);
        assert_eq!(
            got.fail_open,
            any_allowed && !any_up(None),
            "fail-open exactly when allowed edges exist and none is up: {ctx}"
        );
        if !any_allowed {
            assert_eq!(got.reason, Reason::NoEdgeInRegion, "{ctx}");
        }
        if region == Region::Global && !got.fail_open {
            let own = Side::of(client.country);
            assert_eq!(
                got.side != own,
                !any_up(Some(own)),
                "other side only when own side is all down: {ctx}"
            );
        }

        // Ordering and completeness against an independent haversine ranking.
        let km = |i: usize| {
            great_circle_km(
                (client.lat, client.lon),
                (cfg.edges[i].lat, cfg.edges[i].lon),
            )
        };
        let better = |a: usize, b: usize| -> bool {
            let (ea, eb) = (&cfg.edges[a], &cfg.edges[b]);
            if (ea.lat, ea.lon) == (eb.lat, eb.lon) {
                (eb.weight, &ea.name) < (ea.weight, &eb.name)
            } else {
                km(a) < km(b)
            }
        };
        for pair in got.edges.windows(2) {
            assert!(better(pair[0], pair[1]), "out of order: {ctx}");
        }
        let competing: Vec<usize> = (0..cfg.edges.len())
            .filter(|&i| allowed(i) && side_of(i) == got.side && family.has_address(&cfg.edges[i]))
            .filter(|&i| got.fail_open || up[i])
            .collect();
        if got.edges.is_empty() {
            assert!(competing.is_empty(), "an edge could have answered: {ctx}");
            assert!(
                matches!(
                    got.reason,
                    Reason::NoAddressOfFamily | Reason::NoEdgeInRegion
                ),
                "{ctx}"
            );
        } else {
            assert_eq!(got.edges.len(), competing.len().min(cfg.answers), "{ctx}");
            let last = *got.edges.last().unwrap();
            for &i in competing.iter().filter(|i| !got.edges.contains(i)) {
                assert!(!better(i, last), "a better edge was left out: {ctx}");
            }
        }
    }
}
