//! Start the real `meridian` binary on ephemeral loopback ports and talk to it: a DNS
//! client over UDP and TCP (hickory-proto for the wire format), `dig`, and the admin HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

/// How long a test waits for anything before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running `meridian serve`, killed on drop.
pub struct Server {
    child: Child,
    pub dns: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

/// Builder for [`Server`].
pub struct ServerBuilder {
    zones: PathBuf,
    geoip: Option<PathBuf>,
    extra: Vec<String>,
    log_filter: String,
}

impl ServerBuilder {
    pub fn geoip(mut self, path: &Path) -> Self {
        self.geoip = Some(path.to_path_buf());
        self
    }

    /// `RUST_LOG` for the server (default "info", what an operator gets).
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = filter.to_string();
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_string());
        self
    }

    pub fn start(self) -> Server {
        let geoip = self.geoip.unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("geoip/dbip-country.mmdb")
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .arg("serve")
            .arg("--zones")
            .arg(&self.zones)
            .arg("--geoip")
            .arg(geoip)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--workers",
                "2",
            ])
            .args(&self.extra)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start meridian");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line.clone());
                    log.lock().unwrap().push(line);
                }
            });
        }
        let (mut dns, mut admin) = (None, None);
        let deadline = Instant::now() + DEADLINE;
        while dns.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "meridian did not report its addresses; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            };
            if let Some(rest) = line.split("admin listening on http://").nth(1) {
                admin = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            } else if let Some(rest) = line.split("listening on ").nth(1) {
                dns = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
        }
        Server {
            child,
            dns: dns.unwrap(),
            admin: admin.unwrap(),
            log,
        }
    }
}

impl Server {
    pub fn with_zones(zones: &Path) -> ServerBuilder {
        ServerBuilder {
            zones: zones.to_path_buf(),
            geoip: None,
            extra: Vec::new(),
            log_filter: "info".to_string(),
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Is the process still running?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "meridian did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A UDP query for `name`/`qtype` with EDNS.
    pub fn query(&self, name: &str, qtype: RecordType) -> Message {
        udp_exchange(self.dns, &query_message(name, qtype, true, None)).expect("answer")
    }

    /// GET (or POST) on the admin port; returns (status, body).
    pub fn admin(&self, method: &str, path: &str) -> (u16, String) {
        http(self.admin, method, path, None)
    }

    /// Poll `f` until it returns Some, or fail after the deadline.
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query message; `ecs` as ("192.0.2.0", 24).
pub fn query_message(
    name: &str,
    qtype: RecordType,
    edns: bool,
    ecs: Option<(&str, u8)>,
) -> Message {
    let mut msg = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if edns || ecs.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        if let Some((addr, prefix)) = ecs {
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                addr.parse().unwrap(),
                prefix,
                0,
            )));
        }
        msg.set_edns(e);
    }
    msg
}

/// Send a message over UDP and read one answer (None on timeout).
pub fn udp_exchange(server: SocketAddr, msg: &Message) -> Option<Message> {
    let bytes = msg.to_vec().expect("encode");
    let answer = udp_raw(server, &bytes)?;
    Some(Message::from_vec(&answer).expect("decode answer"))
}

/// Send raw bytes over UDP and read one datagram back (None on timeout).
pub fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(if server.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    })
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(bytes, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// Send several messages on one TCP connection and read an answer to each.
pub fn tcp_exchange(server: SocketAddr, msgs: &[Message]) -> Vec<Message> {
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    msgs.iter()
        .map(|msg| {
            let bytes = msg.to_vec().unwrap();
            stream
                .write_all(&(bytes.len() as u16).to_be_bytes())
                .unwrap();
            stream.write_all(&bytes).unwrap();
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            stream.read_exact(&mut buf).unwrap();
            Message::from_vec(&buf).unwrap()
        })
        .collect()
}

/// Run `dig` against the server: `dig @127.0.0.1 -p PORT <args>`; returns stdout.
pub fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is installed (apt-get install bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A minimal HTTP/1.1 request; returns (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Copy a fixture directory into a fresh temporary directory the test may edit.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    dir
}

fn copy_dir(src: &Path, dst: &Path) {
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
}

/// Replace a file atomically (write aside, rename), as editors and deploy tools do.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
