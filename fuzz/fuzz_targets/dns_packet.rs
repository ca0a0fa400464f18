//! The whole packet path: any bytes in, an answer or nothing out, never a panic.
//! Run with `cargo fuzz run dns_packet` (nightly) from the repository root.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meridian::dns::Transport;
use meridian::dns::handler::{Client, answer};
use meridian::metrics::Metrics;
use meridian::snapshot::{Snapshot, Sources};

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let zones = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/dns");
    let sources = Sources::new(&zones, None).expect("fixture zones");
    Snapshot::load(&sources, 1, None).expect("fixture zones load")
});

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        let client = Client { src: "192.0.2.7:5353".parse().unwrap(), transport };
        if answer(&SNAPSHOT, &METRICS, client, data, &mut out).is_some() {
            assert!(out.len() >= 12, "an answer always has a header");
            if transport == Transport::Udp {
                assert!(out.len() <= 1232.max(512), "UDP answers fit the advertised payload");
            }
        }
    }
});
