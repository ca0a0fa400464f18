//! The storage tiers: the disk tier is bounded by bytes (TinyLFU admission, LRU eviction),
//! survives a restart, and a
//! damaged body file is dropped (checksum) instead of being served.

mod common;

use std::time::Duration;

use common::edge::{Client, TestEdge, temp_dir};
use common::origin::{Reply, origin};
use http::StatusCode;
use meridian::edge::EdgeConfig;
use meridian::edge::route::OriginSpec;

fn config(origin_url: &str, dir: &std::path::Path, disk: u64) -> EdgeConfig {
    EdgeConfig {
        catch_all: Some(OriginSpec::from_url(origin_url).unwrap()),
        cache_dir: Some(dir.to_path_buf()),
        disk_cache_bytes: disk,
        origin_response_timeout: Duration::from_secs(5),
        ..EdgeConfig::default()
    }
}

fn kb(tag: u8) -> Reply {
    Reply::ok(vec![tag; 1000]).header("cache-control", "max-age=600")
}

#[tokio::test]
async fn the_disk_tier_keeps_what_is_asked_for_again_past_its_size() {
    let origin = origin()
        .route("/a", kb(b'a'))
        .route("/b", kb(b'b'))
        .route("/c", kb(b'c'))
        .start()
        .await;
    let dir = temp_dir("evict");
    let edge = TestEdge::start(config(&origin.url(), dir.path(), 2500)).await;
    let client = Client::default();
    let cache = |path: &'static str| {
        let client = &client;
        let url = edge.url(path);
        async move { client.get(&url, &[]).await.header("x-cache").to_string() }
    };
    assert_eq!(cache("/a").await, "MISS");
    assert_eq!(cache("/b").await, "MISS");
    assert_eq!(cache("/a").await, "HIT"); // a is asked for more, and more recently, than b
    // Full: /c, asked for once, does not push out b, asked for as often.
    assert_eq!(cache("/c").await, "MISS");
    assert_eq!(cache("/b").await, "HIT");
    // Now a is the least recently used, asked for twice: /c needs a third request to win.
    assert_eq!(cache("/c").await, "MISS");
    assert_eq!(cache("/c").await, "MISS"); // kept now, and a evicted
    assert_eq!(cache("/c").await, "HIT");
    assert_eq!(cache("/b").await, "HIT");
    assert_eq!(cache("/a").await, "MISS");
    let stats = edge.edge.cache.stats();
    assert!(stats.disk_bytes <= 2500, "{stats:?}");
    assert_eq!(stats.entries, 2);
}

#[tokio::test]
async fn a_damaged_body_file_is_never_served() {
    let mut origin = origin()
        .route("/d.css", kb(b'd'))
        .route("/ok.css", kb(b'k'))
        .start()
        .await;
    let dir = temp_dir("damaged");
    let edge = TestEdge::start(config(&origin.url(), dir.path(), 1 << 30)).await;
    let client = Client::default();
    client.get(&edge.url("/d.css"), &[]).await;
    client.get(&edge.url("/ok.css"), &[]).await;
    edge.stop().await;

    // Flip bytes in /d.css's body file (same length): only a checksum can tell.
    let mut damaged = 0;
    for shard in std::fs::read_dir(dir.path().join("objects")).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "body")
                && std::fs::read(&path).unwrap()[0] == b'd'
            {
                std::fs::write(&path, vec![b'x'; 1000]).unwrap();
                damaged += 1;
            }
        }
    }
    assert_eq!(damaged, 1);

    origin.stop();
    let edge = TestEdge::start(config(&origin.url(), dir.path(), 1 << 30)).await;
    let ok = client.get(&edge.url("/ok.css"), &[]).await;
    assert_eq!(
        (ok.status, ok.body.as_ref()),
        (StatusCode::OK, &[b'k'; 1000][..])
    );
    let gone = client.get(&edge.url("/d.css"), &[]).await;
    assert_eq!(
        gone.status,
        StatusCode::BAD_GATEWAY,
        "the damaged entry is not served"
    );
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let origin = origin().route("/h2.txt", kb(b'h')).start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    for _ in 0..2 {
        let response = client
            .get(edge.url("/h2.txt").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body.len(), 1000);
    }
    assert_eq!(origin.count("/h2.txt"), 1);
}

#[tokio::test]
async fn objects_larger_than_the_disk_tier_are_served_but_not_stored() {
    let origin = origin()
        .route(
            "/known.bin",
            Reply::generated(5000).header("cache-control", "max-age=600"),
        )
        .start()
        .await;
    let dir = temp_dir("toolarge");
    let edge = TestEdge::start(config(&origin.url(), dir.path(), 4000)).await;
    let client = Client::default();
    for _ in 0..2 {
        let got = client.get(&edge.url("/known.bin"), &[]).await;
        assert_eq!((got.status, got.body.len()), (StatusCode::OK, 5000));
    }
    assert_eq!(origin.count("/known.bin"), 2);
    assert_eq!(edge.edge.cache.stats().entries, 0);
}
