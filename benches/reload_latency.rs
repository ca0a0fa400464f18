//! What a reload costs the queries it runs under: the longest a query waits while a
//! 1,000,000-record zone is reloaded (parsed and validated aside, swapped in, the old one
//! freed), beside the longest wait with no reload.
//!
//! `cargo bench --bench reload_latency`. `RELOAD_BENCH_RECORDS` sets the zone size (default
//! 1,000,000 A records), `RELOAD_BENCH_REPS` the number of reloads (default 5). The server
//! runs in-process (`daemon::start`, one UDP worker) on a loopback port; one client thread
//! keeps one query outstanding at a time and records every round trip, so a worker stalled
//! by the reload (waiting on it, or freeing the replaced zone) shows as one long wait.

use std::io::{BufWriter, Write};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use meridian::daemon::{self, Options};
use meridian::dns::transfer::TransferPolicy;
use meridian::snapshot::Sources;

const ORIGIN: &str = "bench.example.";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_zone(dir: &std::path::Path, records: usize) {
    let file = std::fs::File::create(dir.join("bench.example.zone")).unwrap();
    let mut out = BufWriter::new(file);
    writeln!(out, "$ORIGIN {ORIGIN}\n$TTL 300").unwrap();
    writeln!(
        out,
        "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.53"
    )
    .unwrap();
    for i in 0..records {
        writeln!(
            out,
            "host{i} IN A 10.{}.{}.{}",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn query(id: u16, name: &Name) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), RecordType::A));
    m.to_vec().unwrap()
}

/// The longest and the 99.9th percentile wait, in ms, of the samples sent in `[from, to)`.
fn waits(samples: &[(Instant, Duration)], from: Instant, to: Instant) -> (usize, f64, f64) {
    let mut w: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|&(_, d)| d)
        .collect();
    w.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    match w.len() {
        0 => (0, 0.0, 0.0),
        n => (n, ms(w[n - 1]), ms(w[(n * 999 / 1000).min(n - 1)])),
    }
}

fn main() {
    let records = env("RELOAD_BENCH_RECORDS", 1_000_000);
    let reps = env("RELOAD_BENCH_REPS", 5);
    let dir = tempfile::tempdir().unwrap();
    write_zone(dir.path(), records);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cold = Instant::now();
    let running = runtime
        .block_on(daemon::start(Options {
            sources: Sources::new(dir.path(), None).unwrap(),
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            admin: None,
            admin_token: None,
            udp_workers: 1,
            transfer: TransferPolicy::default(),
        }))
        .expect("the generated zone loads");
    println!(
        "{records} records: cold load {:.2} s",
        cold.elapsed().as_secs_f64()
    );
    let server = running.dns_addrs[0];

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.connect(server).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let names: Vec<Name> = (0..1000)
                .map(|i| Name::from_ascii(format!("host{}.{ORIGIN}", i * 997 % records)).unwrap())
                .collect();
            let mut samples = Vec::with_capacity(4_000_000);
            let mut buf = [0u8; 1500];
            let mut lost = 0u64;
            let mut id = 0u16;
            while !stop.load(Ordering::Relaxed) {
                id = id.wrapping_add(1);
                let sent = Instant::now();
                socket
                    .send(&query(id, &names[id as usize % names.len()]))
                    .unwrap();
                loop {
                    match socket.recv(&mut buf) {
                        Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                            samples.push((sent, sent.elapsed()));
                            break;
                        }
                        Ok(_) => continue,
                        Err(_) => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            (samples, lost)
        })
    };

    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let quiet_to = Instant::now();
    let mut windows = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let generation = runtime
            .block_on(running.reloader.reload("bench"))
            .expect("the reload succeeds");
        let swapped = Instant::now();
        // The replaced zone is freed after the swap: keep measuring while that happens.
        std::thread::sleep(Duration::from_secs(2));
        windows.push((generation, start, swapped, Instant::now()));
    }
    stop.store(true, Ordering::Relaxed);
    let (samples, lost) = client.join().unwrap();
    runtime.block_on(running.stop());

    let (n, max, p999) = waits(&samples, quiet_from, quiet_to);
    println!("no reload: {n} queries, longest wait {max:.2} ms, p99.9 {p999:.3} ms");
    let mut longest: f64 = 0.0;
    for (generation, start, swapped, end) in windows {
        let (n, max, p999) = waits(&samples, start, end);
        longest = longest.max(max);
        println!(
            "reload to generation {generation}: {:.2} s; {n} queries during it and 2 s after, \
             longest wait {max:.2} ms, p99.9 {p999:.3} ms",
            (swapped - start).as_secs_f64()
        );
    }
    println!("longest query wait during reloads: {longest:.2} ms; queries lost: {lost}");
}
