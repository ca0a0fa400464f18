//! Batched UDP I/O for the UDP workers: `recvmmsg`/`sendmmsg` (Linux) move up to
//! [`BATCH`] datagrams per system call, which is most of a small query's cost.
//!
//! The only `unsafe` of the query path lives here: building `mmsghdr` arrays that point into
//! buffers this struct owns, for the duration of one call.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Receive buffer per datagram. A DNS query is far smaller; a longer datagram arrives cut
/// short (and is then answered FORMERR, as malformed).
pub const SLOT: usize = 4096;

/// Receive buffers and the scratch arrays the kernel fills.
pub struct Batch {
    bufs: Vec<Box<[u8; SLOT]>>,
    lens: [usize; BATCH],
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: [libc::socklen_t; BATCH],
    received: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            bufs: (0..BATCH).map(|_| Box::new([0u8; SLOT])).collect(),
            lens: [0; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
            addrs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            addr_lens: [0; BATCH],
            received: 0,
        }
    }
}

impl Batch {
    /// Block until at least one datagram arrives (or the socket's read timeout passes),
    /// then take every datagram already queued, up to [`BATCH`]. Returns how many.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let mut iovecs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain old data; zero is a valid empty header.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovecs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovecs[i].iov_len = SLOT;
            let hdr = &mut headers[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut iovecs[i];
            hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a buffer and an address slot owned by `self` (or
        // at `iovecs` on this stack frame), all alive and unaliased for the whole call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.received = 0;
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, header) in headers.iter().enumerate().take(n) {
            self.lens[i] = (header.msg_len as usize).min(SLOT);
            self.addr_lens[i] = header.msg_hdr.msg_namelen;
        }
        self.received = n;
        Ok(n)
    }

    /// Datagram `i` of the last [`Batch::recv`] and its source (`None` for a source
    /// address that is neither IPv4 nor IPv6, which never happens on our sockets).
    pub fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.received {
            return None;
        }
        let addr = socket_addr(&self.addrs[i], self.addr_lens[i])?;
        Some((&self.bufs[i][..self.lens[i]], addr))
    }
}

/// The IPv4 or IPv6 address the kernel wrote into `storage`.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in, and it is long enough.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6, and it is long enough.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Send each `(bytes, destination)` with as few `sendmmsg` calls as possible. A datagram
/// the kernel refuses is skipped (logged at debug), the rest still go out.
pub fn send_all(socket: &impl AsRawFd, datagrams: &[(&[u8], SocketAddr)]) {
    let mut start = 0;
    while start < datagrams.len() {
        let chunk = &datagrams[start..(start + BATCH).min(datagrams.len())];
        let addrs: Vec<SockAddr> = chunk.iter().map(|(_, a)| SockAddr::from(*a)).collect();
        let mut iovecs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain old data; zero is a valid empty header.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (bytes, _)) in chunk.iter().enumerate() {
            // sendmmsg never writes through iov_base.
            iovecs[i].iov_base = bytes.as_ptr() as *mut libc::c_void;
            iovecs[i].iov_len = bytes.len();
            let hdr = &mut headers[i].msg_hdr;
            hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = addrs[i].len();
            hdr.msg_iov = &mut iovecs[i];
            hdr.msg_iovlen = 1;
        }
        // SAFETY: headers point at `iovecs`, `addrs` and the callers' byte slices, all alive
        // for the call; the kernel only reads them (and writes msg_len).
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                chunk.len() as libc::c_uint,
                0,
            )
        };
        if sent <= 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::debug!(dest = %chunk[0].1, "UDP send failed: {err}");
            start += 1;
        } else {
            start += sent as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn receives_a_burst_in_one_call_and_answers_each_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let clients: Vec<UdpSocket> = (0..5)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            c.send_to(&[i as u8; 3], server.local_addr().unwrap())
                .unwrap();
        }
        let mut batch = Batch::default();
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = batch.recv(&server).unwrap();
            for i in 0..n {
                let (bytes, src) = batch.datagram(i).unwrap();
                got.push((bytes.to_vec(), src));
            }
        }
        let replies: Vec<(&[u8], SocketAddr)> =
            got.iter().map(|(b, a)| (b.as_slice(), *a)).collect();
        send_all(&server, &replies);
        for (i, c) in clients.iter().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 16];
            let (len, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], &[i as u8; 3]);
        }
    }
}
