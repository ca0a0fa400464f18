//! The edge's admin endpoints: health, status, metrics, purge (URL and directory), prefetch.

mod common;

use bytes::Bytes;
use common::edge::{Client, TestEdge};
use common::origin::{Reply, origin};
use http::{Method, StatusCode};

fn cached(path: &str) -> Reply {
    Reply::ok(format!("body of {path}")).header("cache-control", "max-age=600")
}

#[tokio::test]
async fn purge_a_url_and_a_directory() {
    let origin = origin()
        .route("/img/a.png", cached("/img/a.png"))
        .route("/img/sub/b.png", cached("/img/sub/b.png"))
        .route("/css/c.css", cached("/css/c.css"))
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    let host = [("host", "img.customer.com")];
    for path in ["/img/a.png", "/img/sub/b.png", "/css/c.css"] {
        client.get(&edge.url(path), &host).await;
        assert_eq!(
            client.get(&edge.url(path), &host).await.header("x-cache"),
            "HIT"
        );
    }

    // One URL, named in the query.
    let purge = client
        .send(
            Method::POST,
            &edge.admin_url("/purge?url=http%3A%2F%2Fimg.customer.com%2Fcss%2Fc.css"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(purge.status, StatusCode::OK, "{:?}", purge.body);
    assert!(String::from_utf8_lossy(&purge.body).contains("\"removed\":1"));
    assert_eq!(
        client
            .get(&edge.url("/css/c.css"), &host)
            .await
            .header("x-cache"),
        "MISS"
    );
    assert_eq!(
        client
            .get(&edge.url("/img/a.png"), &host)
            .await
            .header("x-cache"),
        "HIT"
    );

    // A directory, named in the body: everything under it goes.
    let purge = client
        .send(
            Method::POST,
            &edge.admin_url("/purge"),
            &[],
            Bytes::from("http://img.customer.com/img/\n"),
        )
        .await;
    assert_eq!(purge.status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&purge.body).contains("\"removed\":2"),
        "{:?}",
        purge.body
    );
    assert_eq!(
        client
            .get(&edge.url("/img/a.png"), &host)
            .await
            .header("x-cache"),
        "MISS"
    );
    assert_eq!(
        client
            .get(&edge.url("/img/sub/b.png"), &host)
            .await
            .header("x-cache"),
        "MISS"
    );
    assert_eq!(
        client
            .get(&edge.url("/css/c.css"), &host)
            .await
            .header("x-cache"),
        "HIT"
    );
    assert_eq!(origin.count("/img/a.png"), 2);

    let empty = client
        .send(Method::POST, &edge.admin_url("/purge"), &[], Bytes::new())
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn prefetch_warms_a_url() {
    let origin = origin().route("/warm.js", cached("/warm.js")).start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    let warm = client
        .send(
            Method::POST,
            &edge.admin_url("/prefetch?url=http://site.test/warm.js"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(warm.status, StatusCode::OK, "{:?}", warm.body);
    assert_eq!(origin.count("/warm.js"), 1);
    let got = client
        .get(&edge.url("/warm.js"), &[("host", "site.test")])
        .await;
    assert_eq!(
        (got.header("x-cache"), got.body.as_ref()),
        ("HIT", &b"body of /warm.js"[..])
    );
    assert_eq!(origin.count("/warm.js"), 1);
}

#[tokio::test]
async fn health_status_and_metrics() {
    let origin = origin().route("/m.txt", cached("/m.txt")).start().await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();
    client.get(&edge.url("/m.txt"), &[]).await;
    client.get(&edge.url("/m.txt"), &[]).await;

    assert_eq!(
        client.get(&edge.admin_url("/health"), &[]).await.status,
        StatusCode::OK
    );

    let status = client.get(&edge.admin_url("/status"), &[]).await;
    let json: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(json["cache"]["entries"], 1);
    assert_eq!(json["cache"]["disk_bytes"], "body of /m.txt".len());
    assert_eq!(json["cache"]["memory_entries"], 1);
    assert_eq!(json["cache"]["entries_per_domain"]["*"], 1);
    assert_eq!(json["per_domain"]["*"]["requests"], 2);
    assert_eq!(json["per_domain"]["*"]["hits"], 1);

    let metrics = client.get(&edge.admin_url("/metrics"), &[]).await;
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "meridian_edge_requests_total 2",
        "meridian_edge_cache_hits_total 1",
        "meridian_edge_cache_misses_total 1",
        "meridian_edge_bytes_from_cache_total 14",
        "meridian_edge_bytes_from_origin_total 14",
        "meridian_edge_origin_errors_total 0",
        "meridian_edge_domain_requests_total{domain=\"*\"} 2",
        "meridian_edge_domain_hits_total{domain=\"*\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let wrong = client
        .send(Method::GET, &edge.admin_url("/purge"), &[], Bytes::new())
        .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
}
