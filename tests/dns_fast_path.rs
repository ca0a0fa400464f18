//! The hand-written fast path against hickory's path: for a corpus of queries — every name
//! of the fixture zones and of the shipped CDN zones, names below them (wildcards, NXDOMAIN,
//! referrals), the scheduled names, with random 0x20 case, with and without EDNS, with ECS
//! from random client subnets, small and large payload sizes, over UDP and TCP — the fast
//! path's answer decodes to the same message as the reference path's, names' case included,
//! and counts the same. Seeded: the same corpus on every run.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use meridian::dns::Transport;
use meridian::dns::fast::compare_with_reference;
use meridian::dns::handler::Client;
use meridian::snapshot::{Snapshot, Sources};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn snapshots() -> Vec<Snapshot> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = Sources::new(&root.join("tests/data/dns"), None).expect("fixture zones");
    let shipped = Sources::new(
        &root.join("zones"),
        Some(&root.join("geoip/dbip-country.mmdb")),
    )
    .expect("shipped zones");
    vec![
        Snapshot::load(&fixtures, 1, None).expect("fixtures load"),
        Snapshot::load(&shipped, 1, None).expect("shipped zones load"),
    ]
}

/// Every owner name of every zone, names below them, and the scheduled names.
fn names(snapshot: &Snapshot) -> Vec<String> {
    let mut names = BTreeSet::new();
    for zone in snapshot.zones.zones() {
        let origin = zone.origin_text();
        names.insert(origin.clone());
        names.insert(format!("nothing-here.{origin}"));
        names.insert(format!("a.b.c.{origin}"));
        for record in zone.transfer_records() {
            let owner = record.name.to_string();
            names.insert(format!("x.{owner}"));
            names.insert(owner);
        }
    }
    if let Some(cdn) = snapshot.cdn.as_deref() {
        for domain in &cdn.domains {
            let name = domain.name.replace('*', "some.where");
            names.insert(format!("{name}.{}", cdn.suffix));
            names.insert(cdn.suffix.clone());
        }
        names.insert(format!("unknown.customer.{}", cdn.suffix));
        names.insert(format!("customer.com.{}", cdn.suffix));
    }
    names.insert("outside.example.org.".into());
    names.insert(".".into());
    names.into_iter().collect()
}

/// `name` in wire form with random letter case (0x20 randomisation).
fn wire_name(name: &str, rng: &mut StdRng) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        wire.push(label.len() as u8);
        for b in label.bytes() {
            wire.push(if rng.random_bool(0.5) {
                b.to_ascii_uppercase()
            } else {
                b
            });
        }
    }
    wire.push(0);
    wire
}

/// How a query's OPT record is made.
#[derive(Clone, Copy, Debug)]
enum Opt {
    None,
    Plain(u16),
    /// Payload size, then an ECS option: family 1 or 2 and the source prefix.
    Ecs(u16, u16, u8),
    /// A cookie and padding beside ECS.
    CookieEcs(u16),
}

fn query(name: &[u8], qtype: u16, opt: Opt, flags: [u8; 2], rng: &mut StdRng) -> Vec<u8> {
    let additional = u8::from(!matches!(opt, Opt::None));
    let mut q = vec![
        rng.random(),
        rng.random(),
        flags[0],
        flags[1],
        0,
        1,
        0,
        0,
        0,
        0,
        0,
    ];
    q.push(additional);
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    let (payload, mut options) = match opt {
        Opt::None => return q,
        Opt::Plain(payload) => (payload, Vec::new()),
        Opt::Ecs(payload, family, source) => (payload, ecs(family, source, rng)),
        Opt::CookieEcs(payload) => {
            let mut options = vec![0, 10, 0, 8];
            options.extend((0..8).map(|_| rng.random::<u8>()));
            options.extend(ecs(1, 24, rng));
            options.extend_from_slice(&[0, 12, 0, 3, 0, 0, 0]);
            (payload, options)
        }
    };
    q.push(0);
    q.extend_from_slice(&41u16.to_be_bytes());
    q.extend_from_slice(&payload.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0x80 * u8::from(rng.random_bool(0.3)), 0]);
    q.extend_from_slice(&(options.len() as u16).to_be_bytes());
    q.append(&mut options);
    q
}

/// An ECS option for a random network of `family` with `source` bits.
fn ecs(family: u16, source: u8, rng: &mut StdRng) -> Vec<u8> {
    let bits: u128 = rng.random();
    let width = if family == 1 { 32 } else { 128 };
    let addr = if source == 0 {
        0
    } else {
        (bits >> (128 - width)) & !((1u128 << (width - u32::from(source))) - 1)
    };
    let octets: Vec<u8> = if family == 1 {
        (addr as u32).to_be_bytes().to_vec()
    } else {
        addr.to_be_bytes().to_vec()
    };
    let used = usize::from(source).div_ceil(8);
    let mut option = vec![0, 8];
    option.extend_from_slice(&((4 + used) as u16).to_be_bytes());
    option.extend_from_slice(&family.to_be_bytes());
    option.extend_from_slice(&[source, 0]);
    option.extend_from_slice(&octets[..used]);
    option
}

const QTYPES: [u16; 14] = [1, 28, 5, 15, 2, 6, 16, 33, 12, 257, 43, 255, 99, 65];

#[test]
fn the_fast_path_answers_as_the_reference_path_does() {
    let mut rng = StdRng::seed_from_u64(0x20);
    let sources: [SocketAddr; 3] = [
        "192.0.2.7:5353".parse().unwrap(),
        "[2001:db8::7]:5353".parse().unwrap(),
        "1.2.4.8:53".parse().unwrap(),
    ];
    let (mut fast, mut total) = (0usize, 0usize);
    let mut failures = Vec::new();
    for snapshot in snapshots() {
        let names = names(&snapshot);
        assert!(names.len() > 20, "corpus too small: {names:?}");
        for name in &names {
            for &qtype in &QTYPES {
                for variant in 0..4 {
                    let wire = wire_name(name, &mut rng);
                    let opt = match variant {
                        0 => Opt::None,
                        1 => Opt::Plain(*[512u16, 1232, 4096].get(rng.random_range(0..3)).unwrap()),
                        2 => {
                            let family = if rng.random_bool(0.7) { 1 } else { 2 };
                            let max = if family == 1 { 32 } else { 128 };
                            let source = match rng.random_range(0..4) {
                                0 => 0,
                                1 => 24.min(max),
                                2 => 56.min(max),
                                _ => rng.random_range(0..=max),
                            };
                            Opt::Ecs(1232, family, source)
                        }
                        _ => Opt::CookieEcs(rng.random_range(0..2000)),
                    };
                    let flags = [
                        u8::from(rng.random_bool(0.5)),
                        0x10 * u8::from(rng.random_bool(0.3)),
                    ];
                    let request = query(&wire, qtype, opt, flags, &mut rng);
                    for transport in [Transport::Udp, Transport::Tcp] {
                        let client = Client {
                            src: sources[rng.random_range(0..sources.len())],
                            transport,
                        };
                        total += 1;
                        match compare_with_reference(&snapshot, client, &request) {
                            Ok(true) => fast += 1,
                            Ok(false) => {}
                            Err(difference) => failures.push(format!(
                                "{name} type {qtype} {opt:?} {transport:?} from {}:\n{difference}",
                                client.src
                            )),
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} differ; first:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n")
    );
    // Everything in this corpus has the common shape; only answers too large for a small
    // payload size go to hickory (to be truncated).
    assert!(
        fast * 10 >= total * 9,
        "fast path took only {fast} of {total}"
    );
}

#[test]
fn unusual_queries_are_left_to_the_reference_path() {
    let snapshot = &snapshots()[0];
    let client = Client {
        src: SocketAddr::new(IpAddr::from([192, 0, 2, 7]), 53),
        transport: Transport::Udp,
    };
    let mut rng = StdRng::seed_from_u64(1);
    let plain = query(
        &wire_name("www.example.test.", &mut rng),
        1,
        Opt::None,
        [1, 0],
        &mut rng,
    );
    assert_eq!(compare_with_reference(snapshot, client, &plain), Ok(true));
    let mut variants = Vec::new();
    // Opcode NOTIFY; class CH; two questions' worth of count; EDNS version 1; a bad ECS
    // scope; a compressed question name.
    let mut notify = plain.clone();
    notify[2] = 0x20;
    variants.push(notify);
    let mut chaos = plain.clone();
    let class_at = chaos.len() - 1;
    chaos[class_at] = 3;
    variants.push(chaos);
    let mut two = plain.clone();
    two[5] = 2;
    variants.push(two);
    let mut v1 = query(
        &wire_name("www.example.test.", &mut rng),
        1,
        Opt::Plain(1232),
        [1, 0],
        &mut rng,
    );
    let version_at = v1.len() - 5;
    v1[version_at] = 1;
    variants.push(v1);
    let mut scoped = query(
        &wire_name("www.example.test.", &mut rng),
        1,
        Opt::Ecs(1232, 1, 24),
        [1, 0],
        &mut rng,
    );
    let scope_at = scoped.len() - 4;
    scoped[scope_at] = 16;
    variants.push(scoped);
    let mut pointer = plain[..12].to_vec();
    pointer.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    variants.push(pointer);
    for request in variants {
        assert_eq!(
            compare_with_reference(snapshot, client, &request),
            Ok(false),
            "{request:?}"
        );
    }
}
