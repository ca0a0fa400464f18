//! Zone store at scale: load time and memory of a large generated zone, then lookup cost for
//! hits, NXDOMAIN and wildcard synthesis (which must not grow with zone size).
//!
//! `cargo bench --bench zone_lookup -- --quick`. `ZONE_BENCH_RECORDS` sets the zone size
//! (default 1,000,000 records).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::Criterion;
use hickory_proto::rr::{Name, RecordType};
use meridian::zone::{QueryName, Zone, ZoneSet};

/// Counts live and peak heap bytes, to report memory per record.
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const ORIGIN: &str = "bench.example.";

/// Writes a zone of about `records` records: hosts with A (every 10th also AAAA, every 100th
/// also MX), every 20th host aliased by a CNAME, and a wildcard.
fn write_zone(path: &std::path::Path, records: usize) -> std::io::Result<usize> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "$ORIGIN {ORIGIN}\n$TTL 3600")?;
    writeln!(
        out,
        "@ SOA ns1 hostmaster ( 2024010101 7200 3600 1209600 300 )\n@ NS ns1\n@ NS ns2\n\
         ns1 A 192.0.2.1\nns2 A 192.0.2.2\n*.wild A 192.0.2.3\n*.wild AAAA 2001:db8::3"
    )?;
    let mut written = 7;
    let mut host = 0usize;
    while written < records {
        let [_, b, c, d] = (host as u32).to_be_bytes();
        writeln!(out, "host{host} A 10.{b}.{c}.{d}")?;
        written += 1;
        if host.is_multiple_of(10) {
            writeln!(out, "host{host} AAAA 2001:db8::{:x}", host & 0xffff)?;
            written += 1;
        }
        if host.is_multiple_of(100) {
            writeln!(out, "host{host} MX 10 host{}", host + 1)?;
            written += 1;
        }
        if host.is_multiple_of(20) {
            writeln!(out, "alias{host} CNAME host{host}")?;
            written += 1;
        }
        host += 1;
    }
    out.flush()?;
    Ok(host)
}

/// Query names as the server holds them (lowercased wire form on the stack).
fn names(count: usize, make: impl Fn(usize) -> String) -> Vec<QueryName> {
    (0..count)
        .map(|i| {
            let name = Name::from_ascii(make(i)).expect("generated name");
            QueryName::from_labels(name.iter())
        })
        .collect()
}

/// One lookup as the answer path uses it: the borrowed answer and its additional section
/// (the glue is walked, as the encoder does).
fn lookup(zone: &Zone, qname: &QueryName, qtype: u16) -> usize {
    let found = zone.lookup(qname, qtype);
    let glue = found.glue_for.map_or(0, |rrset| zone.glue(rrset).count());
    found.answer.map_or(0, |rrset| rrset.len()) + glue
}

fn main() {
    let records: usize = std::env::var("ZONE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.example.zone");
    let hosts = write_zone(&path, records).expect("write zone");
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let live_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(live_before, Ordering::Relaxed);
    let started = Instant::now();
    let set = match ZoneSet::load_dir(dir.path()) {
        Ok(set) => set,
        Err(errors) => panic!("generated zone must load:\n{errors}"),
    };
    let load_time = started.elapsed();
    let held = LIVE.load(Ordering::Relaxed) - live_before;
    let peak = PEAK.load(Ordering::Relaxed) - live_before;
    let loaded = set.record_count();
    println!(
        "zone_lookup: {loaded} records ({file_bytes} bytes of zone text) loaded in {:.2?} \
         ({:.2} us/record); heap held {:.1} MiB = {} bytes/record; peak during load {:.1} MiB",
        load_time,
        load_time.as_secs_f64() * 1e6 / loaded as f64,
        held as f64 / (1 << 20) as f64,
        held / loaded.max(1),
        peak as f64 / (1 << 20) as f64,
    );

    let sample: usize = std::env::var("ZONE_BENCH_sample")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    // A stride coprime with the host count spreads the sample over the whole zone.
    let hits = names(sample, |i| {
        format!("host{}.{ORIGIN}", (i * 7919 + 13) % hosts)
    });
    let misses = names(sample, |i| format!("missing{i}.{ORIGIN}"));
    let wildcards = names(sample, |i| format!("w{i}.wild.{ORIGIN}"));
    let aliases = names(sample, |i| format!("alias{}.{ORIGIN}", (i * 20) % hosts));
    let zone = set.zones().next().expect("one zone");

    let mx_hosts = names(sample, |i| format!("host{}.{ORIGIN}", (i * 100) % hosts));
    let cases = [
        ("hit_A", &hits, RecordType::A),
        ("hit_MX_with_additional", &mx_hosts, RecordType::MX),
        ("nodata_TXT", &hits, RecordType::TXT),
        ("nxdomain", &misses, RecordType::A),
        ("wildcard_A", &wildcards, RecordType::A),
        ("cname", &aliases, RecordType::A),
    ];

    // `ZONE_BENCH_LOOP=<case>`: a plain loop of lookups (`ZONE_BENCH_LOOP_COUNT`, default
    // 1,000,000), for `perf record` or callgrind on a machine too noisy for timings.
    if let Ok(wanted) = std::env::var("ZONE_BENCH_LOOP") {
        for (label, qnames, qtype) in &cases {
            if *label == wanted {
                let count: usize = std::env::var("ZONE_BENCH_LOOP_COUNT")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1_000_000);
                let started = Instant::now();
                for i in 0..count {
                    black_box(lookup(
                        zone,
                        black_box(&qnames[i % sample]),
                        u16::from(*qtype),
                    ));
                }
                println!(
                    "{label}: {:.0} ns/lookup",
                    started.elapsed().as_nanos() as f64 / 1e6
                );
            }
        }
        return;
    }

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("zone_lookup");
    for (label, qnames, qtype) in cases {
        let mut next = 0usize;
        group.bench_function(label, |b| {
            b.iter(|| {
                next = (next + 1) % sample;
                black_box(lookup(zone, black_box(&qnames[next]), u16::from(qtype)))
            })
        });
    }
    let lower_hits = &hits;
    let mut next = 0usize;
    group.bench_function("find_zone", |b| {
        b.iter(|| {
            next = (next + 1) % sample;
            black_box(set.find(black_box(&lower_hits[next])).is_some())
        })
    });
    group.finish();
    criterion.final_summary();
}
