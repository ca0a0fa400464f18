//! `large-files` domains: objects are fetched and stored in slices, so a range request on a
//! 300 MB object only pulls the slices it covers (the origin generates bytes on the fly).

mod common;

use common::edge::{Client, TestEdge};
use common::origin::{Reply, generated_byte, origin};
use http::StatusCode;
use meridian::cdn::{Business, Origin, Scheme};
use meridian::edge::EdgeConfig;
use meridian::edge::route::OriginSpec;

const MIB: u64 = 1 << 20;

async fn sliced_edge(port: u16, slice: u64) -> TestEdge {
    TestEdge::start(EdgeConfig {
        catch_all: Some(OriginSpec {
            domain: "dl.customer.com".into(),
            business: Business::LargeFiles,
            origins: vec![Origin::Ip("127.0.0.1".parse().unwrap())],
            port,
            scheme: Scheme::Http,
            host_header: None,
        }),
        slice_bytes: slice,
        ..EdgeConfig::default()
    })
    .await
}

fn ranges_seen(origin: &common::origin::Origin, path: &str) -> Vec<String> {
    origin
        .seen(path)
        .iter()
        .map(|s| {
            s.headers
                .get("range")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        })
        .collect()
}

fn expected(start: u64, end: u64) -> Vec<u8> {
    (start..end).map(generated_byte).collect()
}

#[tokio::test]
async fn a_range_on_a_300_mb_object_fetches_only_the_covering_slices() {
    let len = 300_000_000u64;
    let origin = origin()
        .route(
            "/big.iso",
            Reply::generated(len)
                .header("cache-control", "max-age=600")
                .header("etag", "\"iso\""),
        )
        .start()
        .await;
    let edge = sliced_edge(origin.addr.port(), 4 * MIB).await;
    let client = Client::default();

    let start = 200_000_000u64;
    let got = client
        .get(
            &edge.url("/big.iso"),
            &[("range", "bytes=200000000-200000099")],
        )
        .await;
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        got.header("content-range"),
        format!("bytes 200000000-200000099/{len}")
    );
    assert_eq!(got.body.as_ref(), expected(start, start + 100).as_slice());
    let slice = start / (4 * MIB);
    let first = slice * 4 * MIB;
    assert_eq!(
        ranges_seen(&origin, "/big.iso"),
        [format!("bytes={first}-{}", first + 4 * MIB - 1)]
    );

    // The same slice again: from the stored (or still filling) slice, not the origin.
    let again = client
        .get(
            &edge.url("/big.iso"),
            &[("range", "bytes=200000050-200000149")],
        )
        .await;
    assert_eq!(
        again.body.as_ref(),
        expected(start + 50, start + 150).as_slice()
    );
    assert_eq!(origin.count("/big.iso"), 1);

    // Across a slice boundary: one more slice, the next one.
    let boundary = (slice + 1) * 4 * MIB;
    let got = client
        .get(
            &edge.url("/big.iso"),
            &[(
                "range",
                &format!("bytes={}-{}", boundary - 10, boundary + 9),
            )],
        )
        .await;
    assert_eq!(
        got.body.as_ref(),
        expected(boundary - 10, boundary + 10).as_slice()
    );
    assert_eq!(
        ranges_seen(&origin, "/big.iso")[1],
        format!("bytes={boundary}-{}", boundary + 4 * MIB - 1)
    );
    assert_eq!(origin.count("/big.iso"), 2);

    // The tail, and past the end.
    let tail = client
        .get(&edge.url("/big.iso"), &[("range", "bytes=-5")])
        .await;
    assert_eq!(tail.body.as_ref(), expected(len - 5, len).as_slice());
    let past = client
        .get(
            &edge.url("/big.iso"),
            &[("range", &format!("bytes={len}-"))],
        )
        .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn a_whole_sliced_object_streams_in_order_and_is_then_served_from_cache() {
    let len = 5 * MIB + 123;
    let origin = origin()
        .route(
            "/v.mp4",
            Reply::generated(len)
                .header("cache-control", "max-age=600")
                .header("etag", "\"v\""),
        )
        .start()
        .await;
    let edge = sliced_edge(origin.addr.port(), MIB).await;
    let client = Client::default();
    let got = client.get(&edge.url("/v.mp4"), &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-length"), len.to_string());
    assert_eq!(got.body.as_ref(), expected(0, len).as_slice());
    assert_eq!(origin.count("/v.mp4"), 6);
    assert!(
        ranges_seen(&origin, "/v.mp4")
            .iter()
            .all(|r| r.starts_with("bytes="))
    );

    let again = client.get(&edge.url("/v.mp4"), &[]).await;
    assert_eq!(again.body.len() as u64, len);
    assert_eq!(again.header("x-cache"), "HIT");
    assert_eq!(origin.count("/v.mp4"), 6);
}

#[tokio::test]
async fn an_origin_ignoring_ranges_falls_back_to_whole_objects() {
    let origin = origin()
        .route(
            "/plain.zip",
            Reply::ok("not ranged").header("cache-control", "max-age=600"),
        )
        .start()
        .await;
    let edge = sliced_edge(origin.addr.port(), MIB).await;
    let client = Client::default();
    let got = client
        .get(&edge.url("/plain.zip"), &[("range", "bytes=4-9")])
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"ranged"[..])
    );
}

#[tokio::test]
async fn prefetch_warms_the_slices_of_a_sliced_object() {
    let len = 3 * MIB;
    let origin = origin()
        .route(
            "/p.bin",
            Reply::generated(len).header("cache-control", "max-age=600"),
        )
        .start()
        .await;
    let edge = sliced_edge(origin.addr.port(), MIB).await;
    let client = Client::default();
    let warm = client
        .send(
            http::Method::POST,
            &edge.admin_url("/prefetch?url=http://dl.customer.com/p.bin"),
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(warm.status, StatusCode::OK);
    assert_eq!(origin.count("/p.bin"), 3);
    let got = client
        .get(
            &edge.url("/p.bin"),
            &[
                ("range", "bytes=1048570-1048580"),
                ("host", "dl.customer.com"),
            ],
        )
        .await;
    assert_eq!(got.body.as_ref(), expected(1048570, 1048581).as_slice());
    assert_eq!(origin.count("/p.bin"), 3);
}
