//! `cdn.toml` text in, a validated configuration or errors naming the file out, never a
//! panic; whatever validates then serves every lookup the DNS server and the edge make
//! (CNAME targets, query-name and Host matching, scheduling from a few client places, both
//! families, healthy and not) without panicking. Run with `cargo +nightly fuzz run
//! cdn_config` from the repository root (seed inputs: `fuzz/corpus/cdn_config/`).
#![no_main]

use std::path::Path;

use hickory_proto::rr::{LowerName, Name};
use libfuzzer_sys::fuzz_target;
use meridian::cdn::{CdnConfig, TargetMatch};
use meridian::geo::Country;
use meridian::gslb::{ClientLocation, Family, select};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("zones/cdn.toml");
    let config = match CdnConfig::parse(text, path) {
        Ok(config) => config,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refused config names its errors");
            for error in &errors.0 {
                assert!(
                    error.to_string().contains("cdn.toml"),
                    "an error names the file: {error}"
                );
            }
            return;
        }
    };
    let clients: Vec<ClientLocation> = [*b"CN", *b"HK", *b"US", *b"DE", *b"ZZ"]
        .into_iter()
        .filter_map(Country::from_bytes)
        .filter_map(ClientLocation::at_centroid)
        .collect();
    let hosts = ["img.customer.com", "a.b.customer.com:8080", "x.", "", "*"];
    for (index, domain) in config.domains.iter().enumerate() {
        let _ = config.match_host(&domain.name);
        let Some(target) = config.cname_target(&domain.name) else {
            continue;
        };
        let Ok(target) = Name::from_ascii(&target) else {
            panic!("the CNAME target {target} of {} is a DNS name", domain.name);
        };
        let matched = config.match_target(LowerName::new(&target).iter());
        assert!(
            matches!(matched, TargetMatch::Scheduled(_)),
            "the CNAME target {target} of {} is scheduled",
            domain.name
        );
        for client in &clients {
            for family in [Family::V4, Family::V6] {
                let all_up = select(&config, index, client, family, |_| true);
                let all_down = select(&config, index, client, family, |_| false);
                for selection in [all_up, all_down] {
                    assert!(selection.edges.len() <= config.answers);
                    assert!(selection.edges.iter().all(|&i| i < config.edges.len()));
                    let _ = selection.addresses(&config, family).count();
                }
            }
        }
    }
    for host in hosts {
        let _ = config.match_host(host);
        let _ = config.cname_target(host);
        if let Ok(name) = Name::from_ascii(format!("{host}.{}", config.suffix)) {
            let _ = config.match_target(LowerName::new(&name).iter());
        }
    }
});
