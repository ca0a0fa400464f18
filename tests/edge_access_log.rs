//! `meridian-edge --access-log FILE`: one nginx-combined line per request (plus Host, cache
//! status and seconds), escaping of client text, the bytes a cut-short download got,
//! reopening on SIGUSR1 after a logrotate-style rename, and a clear error for a bad path.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::edge::{Client, EdgeProcess, counter, path_str, temp_dir};
use common::origin::{Reply, origin};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One parsed access-log line.
#[derive(Debug)]
struct Line {
    client: String,
    time: String,
    request: String,
    status: u16,
    bytes: u64,
    referer: String,
    user_agent: String,
    host: String,
    cache: String,
    seconds: f64,
}

/// Parses `CLIENT - - [TIME] "REQUEST" STATUS BYTES "REFERER" "UA" "HOST" "CACHE" SECONDS`.
fn parse(line: &str) -> Line {
    let (client, rest) = line.split_once(" - - [").expect("client, then - - [");
    let (time, rest) = rest.split_once("] \"").expect("time in brackets");
    let (request, rest) = rest.split_once("\" ").expect("quoted request line");
    let mut words = rest.splitn(3, ' ');
    let status = words.next().unwrap().parse().expect("status");
    let bytes = words.next().unwrap().parse().expect("byte count");
    let quoted: Vec<&str> = words.next().unwrap().split('"').collect();
    // "REFERER" "UA" "HOST" "CACHE" SECONDS -> ["", R, " ", UA, " ", H, " ", C, " SECONDS"]
    assert_eq!(
        quoted.len(),
        9,
        "four quoted fields then the seconds: {line:?}"
    );
    Line {
        client: client.into(),
        time: time.into(),
        request: request.into(),
        status,
        bytes,
        referer: quoted[1].into(),
        user_agent: quoted[3].into(),
        host: quoted[5].into(),
        cache: quoted[7].into(),
        seconds: quoted[8].trim().parse().expect("seconds"),
    }
}

/// Polls `path` until it holds at least `n` lines; returns them all.
fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, expected {n}:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn each_request_is_one_line_with_host_cache_status_and_time() {
    let origin = origin()
        .route(
            "/a.css",
            Reply::ok("body{}").header("cache-control", "max-age=600"),
        )
        .route(
            "/api",
            Reply::ok("dynamic").header("cache-control", "no-store"),
        )
        .start()
        .await;
    let dir = temp_dir("access-log");
    let log = dir.path().join("access.log");
    let edge = EdgeProcess::spawn(&["--origin", &origin.url(), "--access-log", path_str(&log)]);
    let client = Client::default();

    client.get(&edge.url("/a.css"), &[]).await;
    let hit = client
        .get(
            &edge.url("/a.css"),
            &[
                ("referer", "https://www.example.com/"),
                ("user-agent", "test/1.0"),
            ],
        )
        .await;
    assert_eq!(hit.header("x-cache"), "HIT");
    client.get(&edge.url("/api?q=1"), &[]).await;
    client
        .send(Method::HEAD, &edge.url("/a.css"), &[], Bytes::new())
        .await;

    let lines: Vec<Line> = wait_for_lines(&log, 4).iter().map(|l| parse(l)).collect();
    let host = edge.addr.to_string();
    let miss = &lines[0];
    assert_eq!(miss.client, "127.0.0.1");
    assert_eq!(miss.request, "GET /a.css HTTP/1.1");
    assert_eq!((miss.status, miss.bytes), (200, 6));
    assert_eq!(
        (miss.referer.as_str(), miss.host.as_str()),
        ("-", host.as_str())
    );
    assert_eq!(miss.cache, "fwd=miss; stored");
    assert!(miss.seconds >= 0.0 && miss.seconds < 60.0);
    // 26/Nov/2026:15:40:07 +0000
    let time = &miss.time;
    assert!(
        time.len() == 26 && &time[2..3] == "/" && &time[6..7] == "/" && time.ends_with(" +0000"),
        "nginx $time_local form: {time:?}"
    );

    let hit = &lines[1];
    assert_eq!((hit.status, hit.bytes, hit.cache.as_str()), (200, 6, "hit"));
    assert_eq!(hit.referer, "https://www.example.com/");
    assert_eq!(hit.user_agent, "test/1.0");

    let pass = &lines[2];
    assert_eq!(pass.request, "GET /api?q=1 HTTP/1.1");
    assert_eq!((pass.status, pass.bytes), (200, 7));
    assert!(pass.cache.starts_with("fwd=miss"), "{pass:?}");

    let head = &lines[3];
    assert_eq!(head.request, "HEAD /a.css HTTP/1.1");
    assert_eq!(
        (head.status, head.bytes, head.cache.as_str()),
        (200, 0, "hit")
    );
}

#[tokio::test]
async fn client_text_cannot_break_or_forge_a_line() {
    let origin = origin()
        .route("/x", Reply::ok("x").header("cache-control", "max-age=600"))
        .start()
        .await;
    let dir = temp_dir("access-log");
    let log = dir.path().join("access.log");
    let edge = EdgeProcess::spawn(&["--origin", &origin.url(), "--access-log", path_str(&log)]);

    // A raw request: a quote, a backslash and a non-ASCII byte in the User-Agent, a
    // quote-laden Referer that tries to close the field early.
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(
            b"GET /x HTTP/1.1\r\nHost: h\r\nUser-Agent: a\"b\\c\xe9\r\n\
              Referer: x\" 200 1 \"forged\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );

    let lines = wait_for_lines(&log, 1);
    assert_eq!(lines.len(), 1, "one request, one line: {lines:?}");
    let line = parse(&lines[0]);
    assert_eq!(line.user_agent, "a\\x22b\\x5Cc\\xE9");
    assert_eq!(line.referer, "x\\x22 200 1 \\x22forged");
    assert_eq!((line.host.as_str(), line.status), ("h", 200));
}

#[tokio::test]
async fn a_download_cut_short_logs_the_bytes_it_got() {
    const LEN: u64 = 64 << 20;
    let origin = origin()
        .route(
            "/big.bin",
            Reply::generated(LEN).header("cache-control", "max-age=600"),
        )
        .start()
        .await;
    let dir = temp_dir("access-log");
    let log = dir.path().join("access.log");
    let cache = dir.path().join("cache");
    let edge = EdgeProcess::spawn(&[
        "--origin",
        &origin.url(),
        "--cache-dir",
        path_str(&cache),
        "--access-log",
        path_str(&log),
    ]);
    let client = Client::default();
    let full = client.get(&edge.url("/big.bin"), &[]).await;
    assert_eq!(full.body.len() as u64, LEN);
    // Until the fill is committed, a request would follow it instead of being a hit.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .send(Method::HEAD, &edge.url("/big.bin"), &[], Bytes::new())
        .await
        .header("x-cache")
        != "HIT"
    {
        assert!(Instant::now() < deadline, "the object never became a hit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A hit read for 64 KiB, then abandoned.
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    let request = format!("GET /big.bin HTTP/1.1\r\nHost: {}\r\n\r\n", edge.addr);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = vec![0u8; 64 << 10];
    stream.read_exact(&mut got).await.unwrap();
    drop(stream);

    // Lines are written as responses end, so the order is not the requests' order.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (whole, cut) = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Line> = text.lines().map(parse).collect();
        let gets = |cache: &str| {
            lines
                .iter()
                .find(|l| l.request.starts_with("GET ") && l.cache == cache)
                .map(|l| (l.status, l.bytes))
        };
        if let (Some(whole), Some(cut)) = (gets("fwd=miss; stored"), gets("hit")) {
            break (whole, cut);
        }
        assert!(Instant::now() < deadline, "no miss and hit lines:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(whole, (200, LEN));
    assert_eq!(cut.0, 200);
    assert!(
        cut.1 < LEN,
        "a cut-short download logs what it got, not the length: {cut:?}"
    );
}

#[tokio::test]
async fn sigusr1_reopens_a_log_that_logrotate_renamed() {
    let origin = origin()
        .route("/x", Reply::ok("x").header("cache-control", "max-age=600"))
        .start()
        .await;
    let dir = temp_dir("access-log");
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let edge = EdgeProcess::spawn(&["--origin", &origin.url(), "--access-log", path_str(&log)]);
    let client = Client::default();

    client.get(&edge.url("/x?before"), &[]).await;
    wait_for_lines(&log, 1);
    std::fs::rename(&log, &rotated).unwrap();
    assert!(edge.signal("USR1"));
    // The reopen creates the file at the configured path.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(
            Instant::now() < deadline,
            "SIGUSR1 did not reopen the access log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    client.get(&edge.url("/x?after"), &[]).await;

    let after = wait_for_lines(&log, 1);
    assert_eq!(after.len(), 1);
    assert!(after[0].contains("GET /x?after "), "{after:?}");
    let before = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(before.lines().count(), 1);
    assert!(before.contains("GET /x?before "), "{before}");
}

#[test]
fn an_access_log_that_cannot_be_opened_stops_the_start_with_its_path() {
    let dir = temp_dir("access-log");
    let bad = dir.path().join("no-such-dir").join("access.log");
    let output = Command::new(env!("CARGO_BIN_EXE_meridian-edge"))
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args([
            "--origin",
            "http://127.0.0.1:9",
            "--access-log",
            path_str(&bad),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the access log") && stderr.contains(path_str(&bad)),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_log_that_cannot_keep_up_loses_counted_lines_never_requests() {
    use std::os::unix::fs::OpenOptionsExt;
    let origin = origin()
        .route("/x", Reply::ok("x").header("cache-control", "max-age=600"))
        .start()
        .await;
    let dir = temp_dir("access-log");
    // A FIFO that is opened for reading (so the edge can open it) and never read: once
    // its 64 KiB buffer is full, every write to it blocks, like a disk that stopped.
    let fifo = dir.path().join("access.fifo");
    let c_path = std::ffi::CString::new(path_str(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let edge = EdgeProcess::spawn(&["--origin", &origin.url(), "--access-log", path_str(&fifo)]);
    let client = Client::default();

    // 8 KiB request targets: 1,500 requests make ~12 MiB of lines, more than the FIFO's
    // buffer and the writer's 4 MiB queue together.
    let long = "q".repeat(8 << 10);
    let url = edge.url(&format!("/x?{long}"));
    for _ in 0..1500 {
        let got = client.get(&url, &[]).await;
        assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"x"[..]));
    }
    let dropped = counter(edge.admin, "access_log_dropped_total").await;
    assert!(dropped > 0, "lines beyond the queue are counted as dropped");
    // Nor does a stuck log hold the edge at shutdown.
    let mut edge = edge;
    let status = edge.terminate_within(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM with a stuck access log: {status:?}"
    );
}
