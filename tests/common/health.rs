//! A stand-in for an edge's health endpoint: a real HTTP/1.1 server on a loopback address
//! that answers `200 ok` to every request, and can be stopped (connections refused) and
//! started again on the same address.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct HealthEndpoint {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl HealthEndpoint {
    /// Listen on `ip`, any free port.
    pub fn start(ip: &str) -> HealthEndpoint {
        let listener = TcpListener::bind((ip, 0)).expect("bind health endpoint");
        let addr = listener.local_addr().unwrap();
        let mut endpoint = HealthEndpoint {
            addr,
            requests: Arc::default(),
            running: None,
        };
        endpoint.serve(listener);
        endpoint
    }

    /// The URL for `cdn.toml`.
    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    /// Requests answered so far.
    #[allow(dead_code)]
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let requests = self.requests.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut buf = [0u8; 1024];
                            let _ = stream.read(&mut buf);
                            requests.fetch_add(1, Ordering::SeqCst);
                            let _ = stream.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                            );
                        }
                        // Idle: look again shortly (this is the server's accept loop, not a
                        // test waiting on something).
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        self.running = Some((stop, thread));
    }

    /// Close the listener: checks now fail with "connection refused".
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }

    /// Listen again on the same address.
    pub fn restart(&mut self) {
        self.stop();
        let listener = TcpListener::bind(self.addr).expect("rebind health endpoint");
        self.serve(listener);
    }
}

impl Drop for HealthEndpoint {
    fn drop(&mut self) {
        self.stop();
    }
}
