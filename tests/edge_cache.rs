//! Caching behaviour of the edge, in-process against a real origin on loopback.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::edge::{Client, TestEdge};
use common::origin::{Reply, origin};
use http::{Method, StatusCode};

#[tokio::test]
async fn second_request_is_a_hit_with_the_same_body() {
    let origin = origin()
        .route(
            "/a.txt",
            Reply::ok("hello world").header("cache-control", "max-age=60"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();

    let first = client.get(&edge.url("/a.txt"), &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "hello world");
    assert_eq!(first.header("x-cache"), "MISS");
    assert_eq!(
        first.header("cache-status"),
        "meridian-edge; fwd=miss; stored"
    );

    let second = client.get(&edge.url("/a.txt"), &[]).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("x-cache"), "HIT");
    assert_eq!(second.header("cache-status"), "meridian-edge; hit");
    assert!(second.header("age").parse::<u64>().is_ok(), "Age on a hit");
    assert_eq!(origin.count("/a.txt"), 1);
}

#[tokio::test]
async fn no_store_private_and_dynamic_responses_always_go_to_the_origin() {
    let origin = origin()
        .route(
            "/ns.jpg",
            Reply::ok("n").header("cache-control", "no-store"),
        )
        .route(
            "/private.css",
            Reply::ok("p").header("cache-control", "private, max-age=60"),
        )
        .route("/api/now", Reply::ok("dynamic"))
        .route(
            "/cookie.js",
            Reply::ok("c")
                .header("cache-control", "max-age=60")
                .header("set-cookie", "s=1"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    for path in ["/ns.jpg", "/private.css", "/api/now", "/cookie.js"] {
        for _ in 0..3 {
            let got = client.get(&edge.url(path), &[]).await;
            assert_eq!(got.status, StatusCode::OK, "{path}");
            assert_eq!(got.header("x-cache"), "MISS", "{path}");
        }
        assert_eq!(origin.count(path), 3, "{path} forwarded every time");
    }
}

#[tokio::test]
async fn static_path_without_freshness_gets_the_default_ttl() {
    let origin = origin().route("/logo.png", Reply::ok("png")).start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/logo.png"), &[]).await;
    let again = client.get(&edge.url("/logo.png"), &[]).await;
    assert_eq!(again.header("x-cache"), "HIT");
    assert_eq!(origin.count("/logo.png"), 1);
}

#[tokio::test]
async fn stale_entry_is_revalidated_and_the_client_gets_200() {
    let origin = origin()
        .route(
            "/r.css",
            Reply::ok("body-v1")
                .header("cache-control", "max-age=0")
                .header("etag", "\"v1\""),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    assert_eq!(client.get(&edge.url("/r.css"), &[]).await.body, "body-v1");

    let again = client.get(&edge.url("/r.css"), &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, "body-v1");
    assert_eq!(
        again.header("cache-status"),
        "meridian-edge; fwd=stale; fwd-status=304"
    );
    let seen = origin.seen("/r.css");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");

    // A changed object replaces the stored one.
    origin.set(
        "/r.css",
        Reply::ok("body-v2")
            .header("cache-control", "max-age=60")
            .header("etag", "\"v2\""),
    );
    assert_eq!(client.get(&edge.url("/r.css"), &[]).await.body, "body-v2");
    let hit = client.get(&edge.url("/r.css"), &[]).await;
    assert_eq!(
        (hit.body.as_ref(), hit.header("x-cache")),
        (&b"body-v2"[..], "HIT")
    );
}

#[tokio::test]
async fn client_conditional_is_answered_304_from_cache() {
    let origin = origin()
        .route(
            "/c.js",
            Reply::ok("js")
                .header("cache-control", "max-age=60")
                .header("etag", "\"abc\""),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/c.js"), &[]).await;
    let got = client
        .get(&edge.url("/c.js"), &[("if-none-match", "\"abc\"")])
        .await;
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    assert!(got.body.is_empty());
    assert_eq!(got.header("etag"), "\"abc\"");
    let other = client
        .get(&edge.url("/c.js"), &[("if-none-match", "\"zzz\"")])
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(origin.count("/c.js"), 1);
}

#[tokio::test]
async fn vary_keeps_one_variant_per_header_value() {
    let origin = origin()
        .route(
            "/v.txt",
            Reply::ok("v")
                .header("cache-control", "max-age=60")
                .header("vary", "Accept-Language"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(
        client.get(&edge.url("/v.txt"), &en).await.header("x-cache"),
        "MISS"
    );
    assert_eq!(
        client.get(&edge.url("/v.txt"), &fr).await.header("x-cache"),
        "MISS"
    );
    assert_eq!(
        client.get(&edge.url("/v.txt"), &en).await.header("x-cache"),
        "HIT"
    );
    assert_eq!(
        client.get(&edge.url("/v.txt"), &fr).await.header("x-cache"),
        "HIT"
    );
    assert_eq!(origin.count("/v.txt"), 2);
    let langs: Vec<_> = origin
        .seen("/v.txt")
        .iter()
        .map(|s| s.headers["accept-language"].clone())
        .collect();
    assert_eq!(langs, ["en", "fr"]);
}

#[tokio::test]
async fn ranges_are_served_from_cache() {
    let origin = origin()
        .route(
            "/r.bin",
            Reply::ok("0123456789")
                .header("cache-control", "max-age=60")
                .header("etag", "\"r\""),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    // A range on a miss: the edge fetches the whole object and answers the range.
    let got = client
        .get(&edge.url("/r.bin"), &[("range", "bytes=2-4")])
        .await;
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(got.body, "234");
    assert_eq!(got.header("content-range"), "bytes 2-4/10");
    let got = client
        .get(&edge.url("/r.bin"), &[("range", "bytes=-3")])
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"789"[..])
    );
    let got = client
        .get(&edge.url("/r.bin"), &[("range", "bytes=10-")])
        .await;
    assert_eq!(got.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(got.header("content-range"), "bytes */10");
    // If-Range with another validator: the whole object.
    let got = client
        .get(
            &edge.url("/r.bin"),
            &[("range", "bytes=0-0"), ("if-range", "\"old\"")],
        )
        .await;
    assert_eq!((got.status, got.body.len()), (StatusCode::OK, 10));
    let got = client
        .get(
            &edge.url("/r.bin"),
            &[("range", "bytes=0-0"), ("if-range", "\"r\"")],
        )
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"0"[..])
    );
    assert_eq!(origin.count("/r.bin"), 1);
    assert!(origin.seen("/r.bin")[0].headers.get("range").is_none());
}

#[tokio::test]
async fn fifty_concurrent_misses_make_one_origin_fetch() {
    let body = Bytes::from(vec![b'x'; 200_000]);
    let origin = origin()
        .route(
            "/hot.bin",
            Reply::ok(body.clone())
                .header("cache-control", "max-age=60")
                .delay(Duration::from_millis(300)),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url) = (client.clone(), edge.url("/hot.bin"));
        tasks.push(tokio::spawn(async move { client.get(&url, &[]).await }));
    }
    for task in tasks {
        let got = task.await.unwrap();
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, body);
    }
    assert_eq!(origin.count("/hot.bin"), 1);
}

#[tokio::test]
async fn unsafe_methods_are_forwarded_and_invalidate_the_url() {
    let origin = origin()
        .route(
            "/item",
            Reply::ok("item").header("cache-control", "max-age=60"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/item"), &[]).await;
    assert_eq!(
        client.get(&edge.url("/item"), &[]).await.header("x-cache"),
        "HIT"
    );
    let posted = client
        .send(Method::POST, &edge.url("/item"), &[], Bytes::from("data"))
        .await;
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(posted.header("cache-status"), "meridian-edge; fwd=method");
    assert_eq!(
        client.get(&edge.url("/item"), &[]).await.header("x-cache"),
        "MISS"
    );
    let methods: Vec<_> = origin
        .seen("/item")
        .iter()
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(methods, ["GET", "POST", "GET"]);
}

#[tokio::test]
async fn cdn_cache_control_rules_the_edge_and_is_not_forwarded() {
    let origin = origin()
        .route(
            "/cdn.html",
            Reply::ok("x")
                .header("cache-control", "no-cache")
                .header("cdn-cache-control", "max-age=60"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    let first = client.get(&edge.url("/cdn.html"), &[]).await;
    assert!(first.headers.get("cdn-cache-control").is_none());
    assert_eq!(first.header("cache-control"), "no-cache");
    let second = client.get(&edge.url("/cdn.html"), &[]).await;
    assert_eq!(second.header("x-cache"), "HIT");
    assert!(second.headers.get("cdn-cache-control").is_none());
    assert_eq!(origin.count("/cdn.html"), 1);
}

#[tokio::test]
async fn forwarded_requests_carry_xff_via_and_cdn_loop() {
    let origin = origin().route("/p", Reply::ok("p")).start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client
        .get(
            &edge.url("/p"),
            &[
                ("x-forwarded-for", "10.0.0.1"),
                ("cdn-loop", "upstream-cdn"),
            ],
        )
        .await;
    let seen = &origin.seen("/p")[0].headers;
    assert_eq!(seen["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(seen["via"], "1.1 meridian-edge");
    let loops: Vec<_> = seen
        .get_all("cdn-loop")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(loops, ["upstream-cdn", "meridian-edge"]);

    let looped = client
        .get(&edge.url("/p"), &[("cdn-loop", "a, meridian-edge")])
        .await;
    assert_eq!(looped.status, StatusCode::LOOP_DETECTED);
    assert_eq!(origin.count("/p"), 1, "a loop never reaches the origin");
}

#[tokio::test]
async fn origin_down_gives_502_quickly_and_stale_if_error_serves_the_old_copy() {
    let mut origin = origin()
        .route(
            "/s.txt",
            Reply::ok("old")
                .header("cache-control", "max-age=0, stale-if-error=600")
                .header("etag", "\"s\""),
        )
        .route(
            "/m.txt",
            Reply::ok("m")
                .header("cache-control", "max-age=0, must-revalidate")
                .header("etag", "\"m\""),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/s.txt"), &[]).await;
    client.get(&edge.url("/m.txt"), &[]).await;
    origin.stop();

    let stale = client.get(&edge.url("/s.txt"), &[]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, "old");
    assert_eq!(
        stale.header("cache-status"),
        "meridian-edge; fwd=stale; detail=stale-if-error"
    );

    let started = Instant::now();
    let miss = client.get(&edge.url("/never-fetched"), &[]).await;
    assert_eq!(miss.status, StatusCode::BAD_GATEWAY);
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");
    let must = client.get(&edge.url("/m.txt"), &[]).await;
    assert_eq!(
        must.status,
        StatusCode::BAD_GATEWAY,
        "must-revalidate is never served stale"
    );

    origin.restart().await;
    assert_eq!(client.get(&edge.url("/s.txt"), &[]).await.body, "old");
}

#[tokio::test]
async fn origin_5xx_on_revalidation_serves_stale_when_allowed() {
    let origin = origin()
        .route(
            "/e.txt",
            Reply::ok("good")
                .header("cache-control", "max-age=0, stale-if-error=600")
                .header("etag", "\"e\""),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/e.txt"), &[]).await;
    origin.set("/e.txt", Reply::status(503, "down"));
    let got = client.get(&edge.url("/e.txt"), &[]).await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"good"[..])
    );
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_background() {
    let origin = origin()
        .route(
            "/w.txt",
            Reply::ok("one")
                .header("cache-control", "max-age=0, stale-while-revalidate=600")
                .header("etag", "\"1\""),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/w.txt"), &[]).await;
    // Age must pass the (zero) lifetime: Age has one-second resolution.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = client.get(&edge.url("/w.txt"), &[]).await;
        assert_eq!(got.body, "one");
        if got
            .header("cache-status")
            .contains("stale-while-revalidate")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served stale-while-revalidate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin
        .seen("/w.txt")
        .iter()
        .all(|s| s.headers.get("if-none-match").is_none())
    {
        assert!(
            Instant::now() < deadline,
            "background revalidation never happened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn head_is_answered_from_the_cached_get() {
    let origin = origin()
        .route(
            "/h.txt",
            Reply::ok("12345").header("cache-control", "max-age=60"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/h.txt"), &[]).await;
    let head = client
        .send(Method::HEAD, &edge.url("/h.txt"), &[], Bytes::new())
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "5");
    assert!(head.body.is_empty());
    assert_eq!(head.header("x-cache"), "HIT");
    assert_eq!(origin.count("/h.txt"), 1);
}

#[tokio::test]
async fn concurrent_clients_of_a_large_object_follow_one_streaming_fill() {
    use common::origin::generated_byte;
    let len: u64 = 24 << 20;
    let origin = origin()
        .route(
            "/large.bin",
            Reply::generated(len)
                .header("cache-control", "max-age=60")
                .trickle(Duration::from_millis(1)),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), edge.url("/large.bin"));
        tasks.push(tokio::spawn(async move { client.get(&url, &[]).await }));
    }
    let expected: Vec<u8> = (0..len).map(generated_byte).collect();
    for task in tasks {
        let got = task.await.unwrap();
        assert_eq!(got.status, StatusCode::OK);
        assert!(got.body == expected, "a follower got a different body");
    }
    assert_eq!(origin.count("/large.bin"), 1);
}

#[tokio::test]
async fn an_origin_that_never_answers_gives_504() {
    let origin = origin()
        .route("/slow", Reply::ok("late").delay(Duration::from_secs(30)))
        .start()
        .await;
    let edge = TestEdge::start(meridian::edge::EdgeConfig {
        catch_all: Some(meridian::edge::route::OriginSpec::from_url(&origin.url()).unwrap()),
        origin_response_timeout: Duration::from_millis(500),
        ..meridian::edge::EdgeConfig::default()
    })
    .await;
    let got = Client::default().get(&edge.url("/slow"), &[]).await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(String::from_utf8_lossy(&got.body).contains("no response within"));
}

#[tokio::test]
async fn a_post_also_invalidates_the_url_its_location_names() {
    let origin = origin()
        .route(
            "/list",
            Reply::ok("list").header("cache-control", "max-age=60"),
        )
        .route(
            "/new",
            Reply::status(201, "created").header("location", "/list"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/list"), &[]).await;
    assert_eq!(
        client.get(&edge.url("/list"), &[]).await.header("x-cache"),
        "HIT"
    );
    let created = client
        .send(Method::POST, &edge.url("/new"), &[], Bytes::from("x"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        client.get(&edge.url("/list"), &[]).await.header("x-cache"),
        "MISS"
    );
}

#[tokio::test]
async fn only_if_cached_never_reaches_the_origin() {
    let origin = origin()
        .route(
            "/o.txt",
            Reply::ok("o").header("cache-control", "max-age=60"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    let only = [("cache-control", "only-if-cached")];
    assert_eq!(
        client.get(&edge.url("/o.txt"), &only).await.status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(origin.count("/o.txt"), 0);
    client.get(&edge.url("/o.txt"), &[]).await;
    let got = client.get(&edge.url("/o.txt"), &only).await;
    assert_eq!((got.status, got.body.as_ref()), (StatusCode::OK, &b"o"[..]));
    assert_eq!(origin.count("/o.txt"), 1);
}
