//! How much of a skewed, scan-heavy CDN workload the edge keeps: a request trace replayed
//! through a real `meridian-edge` in front of a counting origin, beside an exact
//! byte-bounded LRU computed on the same trace.
//!
//! The trace (seeded, so every run and every build replays the same one): `TRACE_REQUESTS`
//! requests (default 40,000); 90 % of them Zipf(0.9) over `TRACE_OBJECTS` objects (default
//! 10,000), 10 % one-hit scan objects never asked for again; sizes log-uniform from 2 KB to
//! 2 MB. For each cache size (5 %, 10 %, 25 % of the trace's distinct bytes) a fresh edge
//! gets that size as memory and disk tiers together (a tenth in memory, the rest on disk:
//! the memory tier holds copies of disk entries, so the disk tier alone bounds what is
//! kept, and the comparison does not flatter the edge), and the trace is replayed one
//! request at a time. Printed per size: the origin bytes the edge fetched, those of an exact
//! LRU of the whole size, their ratio, and two references computed on the trace: an LFU that
//! knows every past request exactly (admission as TinyLFU, victims by fewest requests; what
//! frequency-based policies can reach online) and the static oracle that knows each object's
//! future popularity. Hit latency (small objects, ≤ 32 KB, served as hits) as p50/p99.
//!
//! `cargo bench --bench cache_trace`. `EDGE_BIN` replays through another build (a baseline).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MIN_SIZE: u64 = 2 << 10;
const MAX_SIZE: u64 = 2 << 20;
const SMALL: u64 = 32 << 10;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request: object id and its size.
#[derive(Clone, Copy)]
struct Ask {
    id: u64,
    size: u64,
}

fn trace(requests: usize, objects: usize, seed: u64) -> Vec<Ask> {
    let mut rng = StdRng::seed_from_u64(seed);
    let log_size = |rng: &mut StdRng| {
        let (lo, hi) = ((MIN_SIZE as f64).ln(), (MAX_SIZE as f64).ln());
        rng.random_range(lo..hi).exp() as u64
    };
    let sizes: Vec<u64> = (0..objects).map(|_| log_size(&mut rng)).collect();
    let mut cumulative = Vec::with_capacity(objects);
    let mut total = 0.0;
    for rank in 0..objects {
        total += 1.0 / ((rank + 1) as f64).powf(0.9);
        cumulative.push(total);
    }
    // Ranks map to ids in a shuffled order, so popularity is not the id order.
    let mut ids: Vec<u64> = (0..objects as u64).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.random_range(0..=i));
    }
    let mut next_scan = objects as u64;
    (0..requests)
        .map(|_| {
            if rng.random_bool(0.10) {
                next_scan += 1;
                Ask {
                    id: next_scan,
                    size: log_size(&mut rng),
                }
            } else {
                let point = rng.random_range(0.0..total);
                let rank = cumulative.partition_point(|&c| c < point).min(objects - 1);
                let id = ids[rank];
                Ask {
                    id,
                    size: sizes[id as usize],
                }
            }
        })
        .collect()
}

fn distinct_bytes(trace: &[Ask]) -> u64 {
    let sizes: HashMap<u64, u64> = trace.iter().map(|a| (a.id, a.size)).collect();
    sizes.values().sum()
}

/// Origin bytes of an exact LRU bounded by `capacity` bytes.
fn exact_lru(trace: &[Ask], capacity: u64) -> u64 {
    let mut clock = 0u64;
    let mut last_use: HashMap<u64, u64> = HashMap::new();
    let mut order: BTreeMap<u64, (u64, u64)> = BTreeMap::new(); // use -> (id, size)
    let (mut used, mut fetched) = (0u64, 0u64);
    for ask in trace {
        clock += 1;
        if let Some(old) = last_use.insert(ask.id, clock) {
            let entry = order.remove(&old).expect("indexed");
            order.insert(clock, entry);
            continue;
        }
        fetched += ask.size;
        if ask.size > capacity {
            last_use.remove(&ask.id);
            continue;
        }
        order.insert(clock, (ask.id, ask.size));
        used += ask.size;
        while used > capacity {
            let (_, (id, size)) = order.pop_first().expect("over capacity");
            last_use.remove(&id);
            used -= size;
        }
    }
    fetched
}

/// Origin bytes of an LFU with exact request counts: a new object evicts the least asked
/// for entries only if it was asked for more often than each of them.
fn exact_lfu(trace: &[Ask], capacity: u64) -> u64 {
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let mut stored: HashMap<u64, u64> = HashMap::new();
    let mut by_count: BTreeMap<(u64, u64), u64> = BTreeMap::new(); // (count, id) -> size
    let (mut used, mut fetched) = (0u64, 0u64);
    for ask in trace {
        let count = counts.entry(ask.id).or_default();
        *count += 1;
        let count = *count;
        if let Some(&size) = stored.get(&ask.id) {
            by_count.remove(&(count - 1, ask.id));
            by_count.insert((count, ask.id), size);
            continue;
        }
        fetched += ask.size;
        if ask.size > capacity {
            continue;
        }
        let need = (used + ask.size).saturating_sub(capacity);
        let mut victims = Vec::new();
        let mut freed = 0;
        for (&(victim_count, id), &size) in &by_count {
            if freed >= need {
                break;
            }
            if victim_count >= count {
                break;
            }
            victims.push((victim_count, id));
            freed += size;
        }
        if freed < need {
            continue;
        }
        for key in victims {
            let size = by_count.remove(&key).expect("victim");
            stored.remove(&key.1);
            used -= size;
        }
        stored.insert(ask.id, ask.size);
        by_count.insert((count, ask.id), ask.size);
        used += ask.size;
    }
    fetched
}

/// Origin bytes when the most requested objects (counted over the whole trace, future
/// included) are kept from their first request.
fn static_oracle(trace: &[Ask], capacity: u64) -> u64 {
    let mut counts: HashMap<u64, (u64, u64)> = HashMap::new();
    for ask in trace {
        counts.entry(ask.id).or_insert((0, ask.size)).0 += 1;
    }
    let mut ranked: Vec<(u64, u64, u64)> = counts.iter().map(|(&id, &(n, s))| (n, id, s)).collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut keep = HashSet::new();
    let mut used = 0;
    for (_, id, size) in ranked {
        if used + size <= capacity {
            keep.insert(id);
            used += size;
        }
    }
    let mut seen = HashSet::new();
    trace
        .iter()
        .filter(|ask| !keep.contains(&ask.id) || seen.insert(ask.id))
        .map(|ask| ask.size)
        .sum()
}

/// An origin serving `/o/<id>/<size>` (cacheable for a day), counting the bytes it sends.
async fn start_origin(sent: Arc<AtomicU64>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = Bytes::from(vec![b'x'; MAX_SIZE as usize]);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (sent, filler) = (sent.clone(), filler.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let size = req
                        .uri()
                        .path()
                        .rsplit('/')
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0)
                        .min(MAX_SIZE);
                    sent.fetch_add(size, Ordering::Relaxed);
                    let body = filler.slice(..size as usize);
                    async move {
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .header("cache-control", "public, max-age=86400")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

struct Edge {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_edge(origin: SocketAddr, dir: &std::path::Path, total: u64) -> Edge {
    let binary = std::env::var("EDGE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_meridian-edge").to_string());
    let memory = total / 10;
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--origin")
        .arg(format!("http://{origin}"))
        .arg("--cache-dir")
        .arg(dir)
        .arg("--memory-cache")
        .arg(memory.to_string())
        .arg("--disk-cache")
        .arg((total - memory).to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start meridian-edge");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("meridian-edge exited before listening")
            .unwrap();
        if line.contains("admin listening") {
            continue;
        }
        if let Some(addr) = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
        {
            break addr;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Edge { child, addr }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let requests = env("TRACE_REQUESTS", 40_000);
    let objects = env("TRACE_OBJECTS", 10_000);
    let trace = trace(requests, objects, 9);
    let distinct = distinct_bytes(&trace);
    println!(
        "trace: {requests} requests, {objects} objects + one-hit scans, {:.2} GB distinct, {:.2} GB asked",
        distinct as f64 / 1e9,
        trace.iter().map(|a| a.size).sum::<u64>() as f64 / 1e9
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let origin = runtime.block_on(start_origin(sent.clone()));
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    println!(
        "{:>5} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>10} {:>10}",
        "size",
        "cache MB",
        "LRU GB",
        "edge GB",
        "edge/LRU",
        "LFU/LRU",
        "opt/LRU",
        "hit p50",
        "hit p99"
    );
    for percent in [5u64, 10, 25] {
        let capacity = distinct * percent / 100;
        let dir = tempfile::tempdir().unwrap();
        let edge = start_edge(origin, dir.path(), capacity);
        let before = sent.load(Ordering::Relaxed);
        let mut hits = Vec::new();
        runtime.block_on(async {
            for ask in &trace {
                let uri = format!("http://{}/o/{}/{}", edge.addr, ask.id, ask.size);
                let started = Instant::now();
                let response = client
                    .request(Request::get(uri).body(Full::default()).unwrap())
                    .await
                    .expect("the edge answers");
                let hit = response
                    .headers()
                    .get("x-cache")
                    .is_some_and(|v| v.as_bytes().starts_with(b"HIT"));
                let body = response.into_body().collect().await.expect("body");
                assert_eq!(body.to_bytes().len() as u64, ask.size, "a whole body");
                if hit && ask.size <= SMALL {
                    hits.push(started.elapsed());
                }
            }
        });
        let fetched = sent.load(Ordering::Relaxed) - before;
        drop(edge);
        hits.sort_unstable();
        let lru = exact_lru(&trace, capacity);
        println!(
            "{:>4}% {:>9.0} {:>9.3} {:>9.3} {:>7.3} {:>8.3} {:>8.3} {:>8.0}µs {:>8.0}µs",
            percent,
            capacity as f64 / 1e6,
            lru as f64 / 1e9,
            fetched as f64 / 1e9,
            fetched as f64 / lru as f64,
            exact_lfu(&trace, capacity) as f64 / lru as f64,
            static_oracle(&trace, capacity) as f64 / lru as f64,
            percentile(&hits, 0.5).as_secs_f64() * 1e6,
            percentile(&hits, 0.99).as_secs_f64() * 1e6,
        );
    }
}
