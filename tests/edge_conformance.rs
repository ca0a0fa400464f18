//! RFC 9111 parsing details the public HTTP caching conformance suite (http-tests/cache-tests)
//! checks, each shown here over real sockets: see benches/conformance/README.md.

mod common;

use common::edge::{Client, TestEdge};
use common::origin::{Reply, origin};

#[tokio::test]
async fn cache_control_directive_names_are_case_insensitive() {
    let origin = origin()
        .route(
            "/no-cache",
            Reply::ok("revalidate me").header("cache-control", "max-age=10000, No-CaChE"),
        )
        .route(
            "/max-age",
            Reply::ok("keep me").header("cache-control", "MaX-aGe=3600"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();

    for _ in 0..2 {
        assert_eq!(
            client.get(&edge.url("/no-cache"), &[]).await.body,
            "revalidate me"
        );
        assert_eq!(client.get(&edge.url("/max-age"), &[]).await.body, "keep me");
    }
    assert_eq!(origin.count("/no-cache"), 2, "No-CaChE is no-cache");
    assert_eq!(origin.count("/max-age"), 1, "MaX-aGe is max-age");
}

#[tokio::test]
async fn age_given_as_a_list_counts_its_first_member() {
    let origin = origin()
        .route(
            "/old",
            Reply::ok("old")
                .header("cache-control", "max-age=3600")
                .header("age", "7200, 0"),
        )
        .route(
            "/young",
            Reply::ok("young")
                .header("cache-control", "max-age=3600")
                .header("age", "0, 7200"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();

    for _ in 0..2 {
        client.get(&edge.url("/old"), &[]).await;
        client.get(&edge.url("/young"), &[]).await;
    }
    assert_eq!(origin.count("/old"), 2, "Age 7200 > max-age 3600: stale");
    assert_eq!(origin.count("/young"), 1, "Age 0: fresh");
}

#[tokio::test]
async fn expires_in_any_http_date_form_counts_and_an_invalid_one_means_expired() {
    let origin = origin()
        .route(
            "/rfc850",
            Reply::ok("a").header("expires", "Thursday, 18-Aug-50 02:01:18 GMT"),
        )
        .route(
            "/asctime",
            Reply::ok("b").header("expires", "Thu Aug  8 02:01:18 2050"),
        )
        .route(
            "/extra-spaces",
            Reply::ok("c").header("expires", "Thu, 18  Aug  2050 02:01:18 GMT"),
        )
        .route(
            "/utc",
            Reply::ok("d").header("expires", "Thu, 18 Aug 2050 02:01:18 UTC"),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;
    let client = Client::default();

    let paths = ["/rfc850", "/asctime", "/extra-spaces", "/utc"];
    for _ in 0..2 {
        for path in paths {
            client.get(&edge.url(path), &[]).await;
        }
    }
    assert_eq!(
        origin.count("/rfc850"),
        1,
        "obsolete RFC 850 date, year 2050"
    );
    assert_eq!(origin.count("/asctime"), 1, "ANSI C asctime() date");
    assert_eq!(
        origin.count("/extra-spaces"),
        2,
        "not an HTTP-date: expired"
    );
    assert_eq!(origin.count("/utc"), 2, "only GMT is allowed: expired");
}

/// Sends `GET path` on a new connection and returns once the response head has arrived,
/// with the connection (and the body still streaming) kept open.
async fn response_head(edge: &TestEdge, path: &str) -> (String, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut byte))
            .await
            .expect("a response head before the deadline")
            .unwrap();
        assert_eq!(n, 1, "connection closed before the response head");
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}

/// A request that arrives after the origin's response was handed out, while its body is
/// still being stored, must not be given that response when it is already stale
/// (cache-tests `status-204-stale` hit this race): it gets a fetch of its own.
#[tokio::test]
async fn a_response_stale_on_arrival_is_not_shared_with_later_requests() {
    let origin = origin()
        .route(
            "/stale",
            Reply::generated(1 << 20)
                .header("cache-control", "max-age=0")
                .header("etag", "\"v1\"")
                .stall_after(64 * 1024),
        )
        .route(
            "/fresh",
            Reply::generated(1 << 20)
                .header("cache-control", "max-age=3600")
                .stall_after(64 * 1024),
        )
        .start()
        .await;
    let edge = TestEdge::for_origin(&origin.url()).await;

    // The first request's body never finishes, so its fill stays in flight.
    let (first, _keep) = response_head(&edge, "/stale").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (second, _keep2) = response_head(&edge, "/stale").await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert_eq!(origin.count("/stale"), 2, "the stale response was shared");

    // A fresh one is shared, as coalescing wants.
    let (_, _keep3) = response_head(&edge, "/fresh").await;
    let (shared, _keep4) = response_head(&edge, "/fresh").await;
    assert!(shared.starts_with("HTTP/1.1 200"), "{shared}");
    assert_eq!(
        origin.count("/fresh"),
        1,
        "a fresh response in flight is shared"
    );
}
