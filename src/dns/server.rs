//! The sockets: UDP and TCP on every listen address, and the loops that feed
//! [`super::handler::answer`].
//!
//! UDP runs on plain OS threads, one per worker, each with its own `SO_REUSEPORT` socket,
//! reused buffers and answer cache, moving datagrams in batches (`recvmmsg`/`sendmmsg`): the
//! kernel spreads datagrams over the sockets and a query never waits on a lock. TCP runs on tokio, one task per connection, several
//! queries per connection until an idle timeout; zone transfers are streamed there from
//! [`super::transfer`], which also answers AXFR/IXFR queries that come over UDP (never from
//! the answer cache). Every query loads the current snapshot
//! once (lock-free, `ArcSwap`) and is answered from it to the end.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Transport;
use super::cache::{AnswerCache, Counted};
use super::handler::{self, Client};
use super::transfer;
use crate::snapshot::{Shared, Snapshot};

/// How long a TCP connection may sit idle between queries (Knot's default).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a UDP worker looks up from `recv` to notice shutdown.
const UDP_SHUTDOWN_CHECK: Duration = Duration::from_millis(200);

/// Bound sockets, ready to serve. Binding is separate from serving so that callers (and
/// tests) learn the real addresses of `:0` listens before the first query.
pub struct Listeners {
    udp: Vec<UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
    addrs: Vec<SocketAddr>,
}

impl Listeners {
    /// Bind UDP (`workers` sockets with `SO_REUSEPORT`) and TCP on each address, on the same
    /// port for both; port 0 picks a free one.
    pub fn bind(addrs: &[SocketAddr], workers: usize) -> io::Result<Listeners> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
            addrs: Vec::new(),
        };
        for &addr in addrs {
            let (udp, tcp, bound) = bind_one(addr, workers.max(1))?;
            listeners.udp.extend(udp);
            listeners.tcp.push(tcp);
            listeners.addrs.push(bound);
        }
        Ok(listeners)
    }

    /// The bound addresses (real ports, even for `:0`).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

fn bind_one(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(Vec<UdpSocket>, std::net::TcpListener, SocketAddr)> {
    // With port 0 the UDP port is picked first and TCP may find it taken: try a few times.
    let attempts = if addr.port() == 0 { 8 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let first = udp_socket(addr)?;
        let bound = first.local_addr()?;
        let tcp = match tcp_listener(bound) {
            Ok(tcp) => tcp,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let mut udp = vec![first];
        for _ in 1..workers {
            udp.push(udp_socket(bound)?);
        }
        return Ok((udp, tcp, bound));
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not bind")))
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Room for bursts: a full default buffer drops queries before we ever see them.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(UDP_SHUTDOWN_CHECK))?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Serve until `shutdown` is cancelled, then stop accepting, let in-flight TCP queries
/// finish, and return.
pub async fn serve(
    listeners: Listeners,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let stop_udp = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    for (i, socket) in listeners.udp.into_iter().enumerate() {
        let shared = shared.clone();
        let stop = stop_udp.clone();
        udp_threads.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || udp_worker(socket, &shared, &stop))?,
        );
    }
    let connections = TaskTracker::new();
    let mut acceptors = tokio::task::JoinSet::new();
    for listener in listeners.tcp {
        let listener = TcpListener::from_std(listener)?;
        acceptors.spawn(accept_loop(
            listener,
            shared.clone(),
            shutdown.clone(),
            connections.clone(),
        ));
    }
    shutdown.cancelled().await;
    stop_udp.store(true, Ordering::Relaxed);
    while acceptors.join_next().await.is_some() {}
    connections.close();
    connections.wait().await;
    tokio::task::spawn_blocking(move || {
        for t in udp_threads {
            let _ = t.join();
        }
    })
    .await
    .map_err(io::Error::other)?;
    Ok(())
}

fn is_idle(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One UDP worker on Linux: batches of datagrams in with `recvmmsg`, answers out with
/// `sendmmsg`.
#[cfg(target_os = "linux")]
fn udp_worker(socket: UdpSocket, shared: &Shared, stop: &AtomicBool) {
    use super::mmsg::{BATCH, Batch, send_all};
    let mut batch = Batch::default();
    let mut responses: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut cache = AnswerCache::default();
    let mut outgoing: Vec<(usize, SocketAddr)> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.recv(&socket) {
            Ok(n) => n,
            Err(e) if is_idle(&e) => continue,
            Err(e) => {
                tracing::warn!("UDP receive failed: {e}");
                continue;
            }
        };
        let snapshot = shared.snapshot.load();
        outgoing.clear();
        for (i, response) in responses.iter_mut().enumerate().take(received) {
            let Some((query, src)) = batch.datagram(i) else {
                continue;
            };
            if answer_datagram(shared, &snapshot, &mut cache, query, src, response) {
                outgoing.push((i, src));
            }
        }
        let datagrams: Vec<(&[u8], SocketAddr)> = outgoing
            .iter()
            .map(|&(i, src)| (responses[i].as_slice(), src))
            .collect();
        send_all(&socket, &datagrams);
    }
}

/// One UDP worker elsewhere: a datagram at a time.
#[cfg(not(target_os = "linux"))]
fn udp_worker(socket: UdpSocket, shared: &Shared, stop: &AtomicBool) {
    let mut request = vec![0u8; 65535];
    let mut response = Vec::with_capacity(1232);
    let mut cache = AnswerCache::default();
    while !stop.load(Ordering::Relaxed) {
        let (len, src) = match socket.recv_from(&mut request) {
            Ok(r) => r,
            Err(e) if is_idle(&e) => continue,
            Err(e) => {
                tracing::warn!("UDP receive failed: {e}");
                continue;
            }
        };
        let snapshot = shared.snapshot.load();
        if answer_datagram(
            shared,
            &snapshot,
            &mut cache,
            &request[..len],
            src,
            &mut response,
        ) {
            if let Err(e) = socket.send_to(&response, src) {
                tracing::debug!(%src, "UDP send failed: {e}");
            }
        }
    }
}

/// Answer one datagram into `response`, from the worker's answer cache when it can, and
/// count it. Returns whether there is something to send.
fn answer_datagram(
    shared: &Shared,
    snapshot: &Snapshot,
    cache: &mut AnswerCache,
    query: &[u8],
    src: SocketAddr,
    response: &mut Vec<u8>,
) -> bool {
    let generation = (snapshot.generation, shared.health_generation());
    let counted = match cache.answer(generation, query, src.ip(), response) {
        Some(counted) => counted,
        // Transfer queries are never cached: who may transfer depends on the source, and
        // signed answers on the time.
        None if transfer::transfer_type(query).is_some() => {
            udp_transfer(shared, snapshot, query, src, response)
        }
        None => {
            let client = Client {
                src,
                transport: Transport::Udp,
            };
            let Some(answered) = handler::answer(snapshot, client, query, response) else {
                shared.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            let counted = Counted {
                qtype: answered.qtype,
                rcode: answered.rcode,
                truncated: answered.truncated,
                scheduled: answered.scheduled,
            };
            // Every answer is kept: a replay (~0.3 µs of user CPU measured) is about half
            // of a fast-path answer, and a full cache takes no more entries, so a flood of
            // queries that never repeat pays for the stores only until then.
            cache.store(
                generation,
                query,
                src.ip(),
                answered.cacheability,
                counted,
                response,
            );
            counted
        }
    };
    shared.metrics.count_query(counted.qtype, counted.rcode);
    if let Some(scheduled) = &counted.scheduled {
        shared
            .metrics
            .count_scheduled(&snapshot.edge_counters, snapshot.cdn.as_deref(), scheduled);
    }
    if counted.truncated {
        shared.metrics.truncated.fetch_add(1, Ordering::Relaxed);
    }
    true
}

/// An AXFR/IXFR query over UDP, answered by [`transfer::messages_over`] in one datagram.
fn udp_transfer(
    shared: &Shared,
    snapshot: &Snapshot,
    query: &[u8],
    src: SocketAddr,
    response: &mut Vec<u8>,
) -> Counted {
    let mut transfer = transfer::messages_over(
        snapshot,
        &shared.transfer,
        &shared.metrics,
        src,
        Transport::Udp,
        query,
    );
    let rcode = u16::from(transfer.rcode());
    response.clear();
    response.extend(transfer.next().unwrap_or_default());
    Counted {
        qtype: transfer::transfer_type(query).map(u16::from),
        rcode,
        truncated: false,
        scheduled: None,
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, src)) => {
                connections.spawn(tcp_connection(
                    stream,
                    src,
                    shared.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!("TCP accept failed: {e}");
                // Out of descriptors and the like: let the condition pass.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Queries on one TCP connection, each a 2-byte length then the message (RFC 1035 4.2.2),
/// until the client closes, goes idle, sends garbage framing, or the server stops.
async fn tcp_connection(
    mut stream: TcpStream,
    src: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut request = Vec::with_capacity(512);
    let mut response = Vec::with_capacity(4096);
    loop {
        let mut len_buf = [0u8; 2];
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut len_buf)) => r,
        };
        match read {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let len = u16::from_be_bytes(len_buf) as usize;
        request.resize(len, 0);
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut request)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        if let Some(qtype) = transfer::transfer_type(&request) {
            let snapshot = shared.snapshot.load_full();
            let transfer =
                transfer::messages(&snapshot, &shared.transfer, &shared.metrics, src, &request);
            shared
                .metrics
                .count_query(Some(u16::from(qtype)), u16::from(transfer.rcode()));
            for message in transfer {
                // A secondary that stops reading must not hold the connection (or shutdown).
                let framed = framed(&message);
                let write = tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.write_all(&framed));
                if !matches!(write.await, Ok(Ok(()))) {
                    return;
                }
            }
            continue;
        }
        let answered = {
            let snapshot = shared.snapshot.load();
            let client = Client {
                src,
                transport: Transport::Tcp,
            };
            let answered = handler::answer(&snapshot, client, &request, &mut response);
            if let Some(scheduled) = answered.as_ref().and_then(|a| a.scheduled.as_ref()) {
                shared.metrics.count_scheduled(
                    &snapshot.edge_counters,
                    snapshot.cdn.as_deref(),
                    scheduled,
                );
            }
            answered
        };
        let Some(answered) = answered else {
            shared.metrics.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        shared.metrics.count_query(answered.qtype, answered.rcode);
        if stream.write_all(&framed(&response)).await.is_err() {
            return;
        }
    }
}

/// `message` with its TCP length prefix (RFC 1035 4.2.2), written in one call.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}
