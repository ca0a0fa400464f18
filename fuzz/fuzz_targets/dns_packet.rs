//! The whole packet path: any bytes in, an answer or nothing out, never a panic; and every
//! query the hand-written fast path answers gets the same message from hickory's path.
//! Two snapshots: the test fixtures (wildcards, referrals, CNAME chains) and the shipped
//! `zones/` with `cdn.toml` and the default GeoIP database (scheduling, ECS). On TCP,
//! zone transfer queries take the transfer path, with every client allowed.
//! Run with `cargo +nightly fuzz run dns_packet` from the repository root.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meridian::dns::Transport;
use meridian::dns::fast::compare_with_reference;
use meridian::dns::handler::{Client, answer};
use meridian::dns::transfer::{self, TransferPolicy};
use meridian::daemon::metrics::Metrics;
use meridian::snapshot::{Snapshot, Sources};

static SNAPSHOTS: LazyLock<[Snapshot; 2]> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixtures = Sources::new(&root.join("tests/data/dns"), None).expect("fixture zones");
    let shipped = Sources::new(
        &root.join("zones"),
        Some(&root.join("geoip/dbip-country.mmdb")),
    )
    .expect("shipped zones");
    [
        Snapshot::load(&fixtures, 1, None).expect("fixture zones load"),
        Snapshot::load(&shipped, 1, None).expect("shipped zones load"),
    ]
});

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

static ALLOW_ALL: LazyLock<TransferPolicy> = LazyLock::new(|| TransferPolicy {
    allow: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
    ..TransferPolicy::default()
});

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let sources = [
        "192.0.2.7:5353",
        "[2001:db8::7]:5353",
        "[::ffff:1.2.4.8]:53",
    ];
    for snapshot in SNAPSHOTS.iter() {
        for src in sources {
            if transfer::transfer_type(data).is_some() {
                let src = src.parse().unwrap();
                for message in transfer::messages(snapshot, &ALLOW_ALL, &METRICS, src, data) {
                    assert!(message.len() >= 12, "a transfer message has a header");
                    assert!(message.len() <= usize::from(u16::MAX), "fits TCP framing");
                }
            }
            for transport in [Transport::Udp, Transport::Tcp] {
                let client = Client {
                    src: src.parse().unwrap(),
                    transport,
                };
                if let Err(difference) = compare_with_reference(snapshot, client, data) {
                    panic!("fast and reference paths differ: {difference}");
                }
                if answer(snapshot, client, data, &mut out).is_some() {
                    assert!(out.len() >= 12, "an answer always has a header");
                    if transport == Transport::Udp {
                        assert!(out.len() <= 1232, "UDP answers fit the advertised payload");
                    }
                }
            }
        }
    }
});
