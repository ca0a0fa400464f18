//! Hot paths of scheduling on their own: one `select` decision, one `GeoDb::locate` on
//! the shipped database, one `match_target`.
//!
//! Run: `cargo bench --bench selection`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::str::FromStr;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::rr::{LowerName, Name};
use meridian::cdn::CdnConfig;
use meridian::geo::{Country, GeoDb};
use meridian::gslb::{ClientLocation, Family, select};

fn config() -> CdnConfig {
    CdnConfig::load(Path::new("tests/data/gslb/scenario-base.toml")).expect("scenario base config")
}

fn bench_select(c: &mut Criterion) {
    let mut cfg = config();
    let global = cfg.domain_index("global.customer.com").unwrap();
    let cn = ClientLocation::at_centroid(Country::CN).unwrap();
    let us = ClientLocation::at_centroid(Country::US).unwrap();
    let up = vec![true; cfg.edges.len()];
    let down_cn: Vec<bool> = cfg.edges.iter().map(|e| !e.is_mainland()).collect();

    c.bench_function("select/global/cn/A/answers=1", |b| {
        b.iter(|| select(&cfg, global, black_box(&cn), Family::V4, |i| up[i]))
    });
    c.bench_function("select/global/us/AAAA/answers=1", |b| {
        b.iter(|| select(&cfg, global, black_box(&us), Family::V6, |i| up[i]))
    });
    c.bench_function("select/global/cn/A/cn-down-fallback", |b| {
        b.iter(|| select(&cfg, global, black_box(&cn), Family::V4, |i| down_cn[i]))
    });
    cfg.answers = 2;
    c.bench_function("select/global/cn/A/answers=2", |b| {
        b.iter(|| select(&cfg, global, black_box(&cn), Family::V4, |i| up[i]))
    });
}

/// Deterministic spread of public-looking IPv4 addresses (xorshift).
fn addresses(n: usize) -> Vec<IpAddr> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            IpAddr::V4(Ipv4Addr::from(x))
        })
        .collect()
}

fn bench_locate(c: &mut Criterion) {
    let db = GeoDb::open(Path::new("geoip/dbip-country.mmdb")).expect("shipped database");
    let ips = addresses(4096);
    let mut next = 0usize;
    c.bench_function("geo/locate/dbip-country/ipv4-mix", |b| {
        b.iter(|| {
            next = (next + 1) % ips.len();
            db.locate(black_box(ips[next]))
        })
    });
    let v6: IpAddr = "2400:3200::1".parse().unwrap();
    c.bench_function("geo/locate/dbip-country/ipv6", |b| {
        b.iter(|| db.locate(black_box(v6)))
    });
}

fn bench_match(c: &mut Criterion) {
    let cfg = config();
    let exact = LowerName::from(Name::from_str("global.customer.com.w.cdn.example.net.").unwrap());
    let wild =
        LowerName::from(Name::from_str("a.b.static.customer.com.w.cdn.example.net.").unwrap());
    c.bench_function("cdn/match_target/exact", |b| {
        b.iter(|| cfg.match_target(black_box(&exact).iter()))
    });
    c.bench_function("cdn/match_target/wildcard", |b| {
        b.iter(|| cfg.match_target(black_box(&wild).iter()))
    });
}

criterion_group!(benches, bench_select, bench_locate, bench_match);
criterion_main!(benches);
