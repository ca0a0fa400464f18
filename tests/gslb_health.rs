//! Health table semantics without sockets, and real checks against a hyper endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use meridian::cdn::CdnConfig;
use meridian::health::{HealthChecker, HealthTable, State};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A config with one edge per `(name, health URL)`; interval 50ms.
fn config(edges: &[(&str, Option<String>)]) -> CdnConfig {
    let mut text = String::from(
        "[cdn]\nzone = \"cdn.example.net\"\nsuffix = \"w.cdn.example.net\"\n\
         [health]\ninterval = \"50ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n",
    );
    for (i, (name, url)) in edges.iter().enumerate() {
        text.push_str(&format!(
            "[[edge]]\nname = \"{name}\"\ncountry = \"US\"\nipv4 = [\"127.0.0.{}\"]\n",
            i + 1
        ));
        if let Some(url) = url {
            text.push_str(&format!("health = \"{url}\"\n"));
        }
    }
    CdnConfig::parse(&text, Path::new("cdn.toml")).unwrap()
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
}

/// The table as the checker leaves it after `reconcile`, without running any check: the
/// URLs point at a closed port but no runtime ticks before the assertions.
fn synced_table(cfg: &CdnConfig) -> Arc<HealthTable> {
    let table = Arc::new(HealthTable::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let checker = HealthChecker::new(Arc::clone(&table));
        checker.reconcile(cfg);
        checker.shutdown().await;
    });
    table
}

#[test]
fn edges_start_unknown_and_served_edges_without_url_are_up() {
    let cfg = config(&[("a", Some("http://127.0.0.1:9/h".into())), ("b", None)]);
    let table = synced_table(&cfg);
    assert_eq!(table.state("a"), Some(State::Unknown));
    assert!(table.is_up("a"), "unknown is served");
    assert_eq!(table.state("b"), Some(State::Up));
    assert!(
        table.is_up("not-an-edge"),
        "names the table does not know are served"
    );
    let view = table.view(&cfg);
    assert!(view.is_up(0) && view.is_up(1) && view.is_up(99));
    let rows = table.snapshot();
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(rows[0].checked && !rows[1].checked);
}

#[test]
fn rise_and_fall_drive_state_generation_and_counters() {
    let cfg = config(&[("a", Some("http://127.0.0.1:9/h".into()))]);
    let table = synced_table(&cfg);
    let g0 = table.generation();

    assert_eq!(table.record_named("a", false, 2, 2, at(1)), None);
    assert_eq!(table.state("a"), Some(State::Unknown));
    assert_eq!(table.generation(), g0, "no transition, same generation");
    let t = table.record_named("a", false, 2, 2, at(2)).unwrap();
    assert_eq!((t.from, t.to), (State::Unknown, State::Down));
    assert!(!table.is_up("a"));
    assert!(!table.view(&cfg).is_up(0));
    assert_eq!(table.generation(), g0 + 1);
    assert_eq!((table.transitions_up(), table.transitions_down()), (0, 1));
    let row = &table.snapshot()[0];
    assert_eq!(
        (row.state, row.since, row.consecutive_failures),
        (State::Down, at(2), 2)
    );

    table.record_named("a", true, 2, 2, at(3));
    assert!(!table.is_up("a"), "one success is not enough with rise = 2");
    table.record_named("a", true, 2, 2, at(4));
    assert!(table.is_up("a"));
    assert_eq!(table.state("a"), Some(State::Up));
    assert_eq!(table.generation(), g0 + 2);
    assert_eq!((table.transitions_up(), table.transitions_down()), (1, 1));
    assert_eq!(table.snapshot()[0].since, at(4));
}

#[test]
fn reconcile_keeps_state_of_kept_edges_and_drops_removed_ones() {
    let table = Arc::new(HealthTable::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let checker = HealthChecker::new(Arc::clone(&table));
        let url = Some("http://127.0.0.1:9/h".to_owned());
        checker.reconcile(&config(&[("a", url.clone()), ("b", url.clone())]));
        assert_eq!(checker.checked_edges(), ["a", "b"]);
        table.record_named("a", false, 1, 1, at(1));
        assert_eq!(table.state("a"), Some(State::Down));
        let g = table.generation();

        // Reload: "b" removed, "c" added, "a" kept (now at another index).
        let cfg = config(&[("c", url.clone()), ("a", url.clone())]);
        checker.reconcile(&cfg);
        assert_eq!(checker.checked_edges(), ["a", "c"]);
        assert_eq!(
            table.state("a"),
            Some(State::Down),
            "kept edge keeps its state"
        );
        assert_eq!(table.state("b"), None);
        assert_eq!(table.state("c"), Some(State::Unknown));
        assert!(
            table.generation() > g,
            "membership change bumps the generation"
        );
        let view = table.view(&cfg);
        assert!(view.is_up(0) && !view.is_up(1));

        // The health URL removed: always up from now on.
        checker.reconcile(&config(&[("a", None)]));
        assert!(checker.checked_edges().is_empty());
        assert_eq!(table.state("a"), Some(State::Up));
        checker.shutdown().await;
    });
}

/// Serves `status` on 127.0.0.1:0 until the handle is aborted (connections included).
async fn endpoint(status: StatusCode) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(async move {
                let service = service_fn(move |_req| async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .body(Empty::<Bytes>::new())
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, handle)
}

async fn wait_for(table: &HealthTable, edge: &str, state: State) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while table.state(edge) != Some(state) {
        assert!(
            Instant::now() < deadline,
            "{edge} never became {state}: {:?}",
            table.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_real_endpoint_goes_up_and_then_down_when_stopped() {
    let (addr, server) = endpoint(StatusCode::OK).await;
    let table = Arc::new(HealthTable::new());
    let checker = HealthChecker::new(Arc::clone(&table));
    checker.reconcile(&config(&[(
        "edge-1",
        Some(format!("http://{addr}/health")),
    )]));
    assert_eq!(table.state("edge-1"), Some(State::Unknown));

    wait_for(&table, "edge-1", State::Up).await;
    assert_eq!(table.transitions_up(), 1);

    server.abort();
    let _ = server.await;
    wait_for(&table, "edge-1", State::Down).await;
    assert!(!table.is_up("edge-1"));
    let row = &table.snapshot()[0];
    assert!(row.consecutive_failures >= 2);
    assert!(row.last_error.is_some(), "{row:?}");

    checker.shutdown().await;
    assert!(checker.checked_edges().is_empty());
}

#[tokio::test]
async fn a_non_2xx_answer_is_a_failure() {
    let (addr, server) = endpoint(StatusCode::SERVICE_UNAVAILABLE).await;
    let table = Arc::new(HealthTable::new());
    let checker = HealthChecker::new(Arc::clone(&table));
    checker.reconcile(&config(&[(
        "edge-1",
        Some(format!("http://{addr}/health")),
    )]));
    wait_for(&table, "edge-1", State::Down).await;
    let row = &table.snapshot()[0];
    assert!(
        row.last_error.as_deref().unwrap_or("").contains("503"),
        "{row:?}"
    );
    checker.shutdown().await;
    server.abort();
}

#[test]
fn reconcile_outside_a_runtime_updates_the_table_without_panicking() {
    let table = Arc::new(HealthTable::new());
    let checker = HealthChecker::new(Arc::clone(&table));
    checker.reconcile(&config(&[("a", Some("http://127.0.0.1:9/h".into()))]));
    assert_eq!(table.state("a"), Some(State::Unknown));
    assert!(checker.checked_edges().is_empty());
}
