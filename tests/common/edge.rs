//! Test edges: [`TestEdge`] runs the real server in-process on 127.0.0.1:0;
//! [`EdgeProcess`] spawns the real binary, reads its bound ports from the stderr log lines
//! and kills it on drop. [`Client`] is a plain hyper client for both.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meridian::edge::{self, EdgeConfig, proxy::Edge, route::OriginSpec};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A response, body collected.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl Client {
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Got {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Got {
        self.try_send(method, url, headers, body)
            .await
            .expect("request failed")
    }

    pub async fn try_send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Got, String> {
        let mut builder = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(60), self.inner.request(request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(120), body.collect())
            .await
            .map_err(|_| "body timed out".to_string())?
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Got {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// The real server, in-process.
pub struct TestEdge {
    /// The cache directory this helper created (removed on drop), if the config named none.
    _own_dir: Option<tempfile::TempDir>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub edge: Arc<Edge>,
    shutdown: CancellationToken,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl TestEdge {
    /// An edge serving every Host from `origin_url`, memory + a private disk directory.
    pub async fn for_origin(origin_url: &str) -> TestEdge {
        TestEdge::start(EdgeConfig {
            catch_all: Some(OriginSpec::from_url(origin_url).unwrap()),
            origin_connect_timeout: Duration::from_secs(2),
            origin_response_timeout: Duration::from_secs(5),
            ..EdgeConfig::default()
        })
        .await
    }

    pub async fn start(mut config: EdgeConfig) -> TestEdge {
        let own_dir = match config.cache_dir {
            Some(_) => None,
            None => {
                let dir = temp_dir("cache");
                config.cache_dir = Some(dir.path().to_path_buf());
                Some(dir)
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let edge = edge::build(&config).await.expect("edge builds");
        let shutdown = CancellationToken::new();
        let done = tokio::spawn({
            let (edge, shutdown) = (edge.clone(), shutdown.clone());
            async move {
                edge::serve(edge, &config, vec![listener], Some(admin), shutdown)
                    .await
                    .unwrap();
            }
        });
        TestEdge {
            _own_dir: own_dir,
            addr,
            admin: admin_addr,
            edge,
            shutdown,
            done: Some(done),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The real binary, spawned; killed on drop.
pub struct EdgeProcess {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The first `--tls-listen` address, when it has one.
    pub https: Option<SocketAddr>,
}

impl EdgeProcess {
    pub fn spawn(args: &[&str]) -> EdgeProcess {
        EdgeProcess::spawn_at("127.0.0.1:0", "127.0.0.1:0", args)
    }

    /// The binary listening on `listen` with its admin on `admin` (ports may be 0).
    pub fn spawn_at(listen: &str, admin: &str, args: &[&str]) -> EdgeProcess {
        EdgeProcess::spawn_with_env(listen, admin, args, &[])
    }

    /// [`spawn_at`](Self::spawn_at) with extra environment variables.
    pub fn spawn_with_env(
        listen: &str,
        admin: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> EdgeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian-edge"))
            .args(["--listen", listen, "--admin", admin])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn meridian-edge");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[edge] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut addr, mut admin, mut https) = (None, None, None);
        while addr.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("edge did not log its listening addresses");
            let found = line
                .split("listening on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse::<SocketAddr>().ok());
            // HTTPS listeners are bound (and logged) before the admin one.
            if let Some(found) = line
                .split("listening for HTTPS on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse::<SocketAddr>().ok())
            {
                https.get_or_insert(found);
            }
            if let Some(found) = found {
                if line.contains("admin listening on") {
                    admin = Some(found);
                } else {
                    addr = Some(found);
                }
            }
        }
        let process = EdgeProcess {
            child,
            addr: addr.unwrap(),
            admin: admin.unwrap(),
            https,
        };
        process.wait_ready();
        process
    }

    /// Polls `/health` until the edge answers (the cache index is rebuilt before serving).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.admin).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("edge admin never accepted connections");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends the signal `name` ("HUP", "USR1", "TERM") with kill(1); whether it was sent.
    pub fn signal(&self, name: &str) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// SIGTERM, then the exit status if the process exits within `limit`.
    pub fn terminate_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().unwrap()
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counter `meridian_edge_{name}` from the admin `/metrics` at `admin`.
pub async fn counter(admin: SocketAddr, name: &str) -> u64 {
    let metrics = Client::default()
        .get(&format!("http://{admin}/metrics"), &[])
        .await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("meridian_edge_{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no counter meridian_edge_{name} in /metrics:\n{text}"))
}

/// A fresh empty directory under the system temp dir, removed when dropped.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("meridian-edge-{tag}-"))
        .tempdir()
        .unwrap()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
