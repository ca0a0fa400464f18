//! The real `meridian-edge` binary: logging of bound ports, restart from the disk tier,
//! SIGTERM, and kill -9 in the middle of a cache fill.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::edge::{Client, EdgeProcess, path_str, temp_dir};
use common::origin::{Reply, generated_byte, origin};
use http::StatusCode;
use http_body_util::BodyExt;

fn expected(len: u64) -> Vec<u8> {
    (0..len).map(generated_byte).collect()
}

#[tokio::test]
async fn a_restarted_edge_serves_from_its_disk_tier() {
    let mut origin = origin()
        .route(
            "/small.css",
            Reply::ok("body{}").header("cache-control", "max-age=600"),
        )
        .route(
            "/big.bin",
            Reply::generated(3 << 20).header("cache-control", "max-age=600"),
        )
        .start()
        .await;
    let dir = temp_dir("restart");
    let args = [
        "--origin",
        &origin.url(),
        "--cache-dir",
        path_str(dir.path()),
        "--memory-cache",
        "4MiB",
    ];
    let client = Client::default();

    let mut edge = EdgeProcess::spawn(&args);
    assert_eq!(
        client
            .get(&edge.url("/small.css"), &[])
            .await
            .header("x-cache"),
        "MISS"
    );
    let big = client.get(&edge.url("/big.bin"), &[]).await;
    assert_eq!(big.body.len(), 3 << 20);
    assert!(edge.terminate().success(), "SIGTERM is a clean exit");

    origin.stop();
    let edge = EdgeProcess::spawn(&args);
    let small = client.get(&edge.url("/small.css"), &[]).await;
    assert_eq!(
        (small.status, small.header("x-cache")),
        (StatusCode::OK, "HIT")
    );
    assert_eq!(small.body, "body{}");
    let big = client.get(&edge.url("/big.bin"), &[]).await;
    assert_eq!(big.header("x-cache"), "HIT");
    assert_eq!(big.body, Bytes::from(expected(3 << 20)));
    assert_eq!(origin.count("/small.css"), 1);
    assert_eq!(origin.count("/big.bin"), 1);
}

#[tokio::test]
async fn kill_9_during_a_fill_never_leaves_a_truncated_entry() {
    let len: u64 = 4 << 20;
    let mut origin = origin()
        .route(
            "/fill.bin",
            Reply::generated(len)
                .header("cache-control", "max-age=600")
                .stall_after(1 << 20),
        )
        .start()
        .await;
    let dir = temp_dir("kill9");
    let args = [
        "--origin",
        &origin.url(),
        "--cache-dir",
        path_str(dir.path()),
    ];
    let mut edge = EdgeProcess::spawn(&args);

    // Read part of the body: those bytes are already in the fill's file.
    let connector =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Empty<Bytes>>();
    let response = connector
        .get(edge.url("/fill.bin").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received < 512 << 10 {
        assert!(Instant::now() < deadline, "the fill never streamed");
        let frame = body.frame().await.unwrap().unwrap();
        received += frame.data_ref().map_or(0, |d| d.len());
    }
    edge.kill9();
    drop(body);

    // Restarted with the origin down: nothing may be served from the partial fill.
    origin.stop();
    let client = Client::default();
    let edge = EdgeProcess::spawn(&args);
    let got = client.get(&edge.url("/fill.bin"), &[]).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);

    // With the origin healthy again, the whole object is fetched and served intact.
    origin.set(
        "/fill.bin",
        Reply::generated(len).header("cache-control", "max-age=600"),
    );
    origin.restart().await;
    let got = client.get(&edge.url("/fill.bin"), &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, Bytes::from(expected(len)));
    let again = client.get(&edge.url("/fill.bin"), &[]).await;
    assert_eq!(
        (again.header("x-cache"), again.body.len() as u64),
        ("HIT", len)
    );
}

#[tokio::test]
async fn a_stalled_origin_body_is_not_stored() {
    let len: u64 = 2 << 20;
    let origin = origin()
        .route(
            "/cut.bin",
            Reply::generated(len)
                .header("cache-control", "max-age=600")
                .stall_after(100_000),
        )
        .start()
        .await;
    let dir = temp_dir("stall");
    let edge = EdgeProcess::spawn(&[
        "--origin",
        &origin.url(),
        "--cache-dir",
        path_str(dir.path()),
        "--origin-timeout",
        "1",
    ]);
    let client = Client::default();
    let got = client
        .try_send(http::Method::GET, &edge.url("/cut.bin"), &[], Bytes::new())
        .await;
    assert!(
        got.is_err(),
        "a truncated body must not look complete: {:?}",
        got.map(|g| g.status)
    );
    origin.set(
        "/cut.bin",
        Reply::generated(len).header("cache-control", "max-age=600"),
    );
    let got = client.get(&edge.url("/cut.bin"), &[]).await;
    assert_eq!(got.body.len() as u64, len);
    assert_eq!(origin.count("/cut.bin"), 2);
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let origin = origin()
        .route(
            "/slow.txt",
            Reply::ok("finished").delay(Duration::from_millis(800)),
        )
        .start()
        .await;
    let mut edge = EdgeProcess::spawn(&["--origin", &origin.url()]);
    let client = Client::default();
    let url = edge.url("/slow.txt");
    let in_flight = tokio::spawn(async move { client.get(&url, &[]).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.count("/slow.txt") == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = tokio::task::spawn_blocking(move || edge.terminate())
        .await
        .unwrap();
    let got = in_flight.await.unwrap();
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"finished"[..])
    );
    assert!(status.success());
}
