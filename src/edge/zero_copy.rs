//! Zero-copy sends of stored bodies on HTTP/1.x connections: `sendfile(2)` from the disk
//! tier's files straight into the client's socket.
//!
//! ```text
//! server : TcpStream -> ZeroCopyIo (owns a queue of file regions) -> hyper (h1 | h2)
//!          HTTP/1.x request -> extensions += FileSender (a handle to that queue)
//! proxy  : disk-tier hit + FileSender -> FileSender::body(file, start, end)
//!          each frame: push Region(file, offset, len), yield a placeholder of len bytes
//! hyper  : queues the frames as they are (writev strategy) -> poll_write_vectored(slices)
//! here   : ordinary slices -> writev; a placeholder -> sendfile(the region at the front)
//! ```
//!
//! hyper frames and writes every response itself and has no notion of files, so a body
//! that wants `sendfile` hands hyper *placeholder* slices instead of bytes: views of one
//! private buffer that nothing ever reads (virtual memory only; its pages are never
//! touched). Because [`ZeroCopyIo::is_write_vectored`] is true, hyper's HTTP/1 writer queues
//! body buffers without copying them (`proto/h1/io.rs`, `WriteStrategy::Queue`; hyper-util's
//! `Rewind` and `TokioIo` forward `is_write_vectored`), so the placeholders reach
//! [`ZeroCopyIo::poll_write_vectored`] by address. There each one is matched to the region
//! queued when its frame was produced (address *and* length must match) and replaced by
//! `sendfile` from that region.
//!
//! The safety property: **placeholder bytes never reach the wire**. A placeholder is never
//! passed to a socket write; one that matches no queued region, or a file that ends before
//! its region does (`sendfile` returns 0), fails the connection with an I/O error: the
//! client sees an aborted response, never zeros or wrong bytes.
//!
//! `sendfile` hands the kernel page-cache pages by reference: bytes changed *in place* while
//! a send is in flight would go out changed. The cache never writes a committed body file
//! (fills write a temporary file that is renamed into place under a fresh name), so only
//! an outside actor could; a file cut short is caught by the length check before the
//! response starts ([`crate::edge::cache::Cache::zero_copy_body`]) or by `sendfile`
//! returning 0 during it.
//!
//! HTTP/2 requests never get a [`FileSender`]: hyper's h2 copies data into its own frames.
//! Owns no cache logic; the cache decides which bodies may be sent this way.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::edge::body::{Body, BodyError};

/// Largest region (and placeholder) one body frame stands for.
const MAX_REGION: usize = 4 << 20;
/// Placeholders start at one of this many page-aligned offsets, in turn, so that
/// consecutive regions of equal length still have distinct addresses.
const SLOTS: usize = 1024;
const SLOT_STRIDE: usize = 4096;
const PLACEHOLDER_LEN: usize = MAX_REGION + SLOTS * SLOT_STRIDE;

/// The placeholder buffer: zeroed (calloc: untouched pages cost no memory) and never read.
fn placeholder() -> &'static [u8] {
    static BUF: OnceLock<&'static [u8]> = OnceLock::new();
    BUF.get_or_init(|| Box::leak(vec![0u8; PLACEHOLDER_LEN].into_boxed_slice()))
}

fn placeholder_offset(ptr: *const u8) -> Option<usize> {
    let buf = placeholder();
    let offset = (ptr as usize).wrapping_sub(buf.as_ptr() as usize);
    (offset < buf.len()).then_some(offset)
}

/// Whether zero-copy sends exist on this platform.
pub const SUPPORTED: bool = cfg!(target_os = "linux");

/// Where a region's bytes come from.
#[derive(Clone)]
enum Source {
    /// Sent with `sendfile` from the file.
    File(Arc<File>),
    /// Written from a read-only mapping of the whole file (see [`FileSender::mapped_body`]).
    Mapped(Arc<memmap2::Mmap>),
}

/// Part of a file to send in place of one placeholder.
struct Region {
    source: Source,
    /// Where in the file the region starts, and how much of it is sent already.
    offset: u64,
    len: usize,
    sent: usize,
    /// Offset of its placeholder in the placeholder buffer.
    slot: usize,
}

#[derive(Default)]
struct Queue {
    regions: VecDeque<Region>,
    next_slot: usize,
}

/// A handle to one connection's region queue, put into each HTTP/1.x request's extensions.
#[derive(Clone)]
pub struct FileSender {
    queue: Arc<Mutex<Queue>>,
}

impl FileSender {
    /// A body sending `start..end` of `file` with `sendfile`. Only for a response on the
    /// connection this sender belongs to, and only when `file` holds at least `end` bytes.
    pub fn body(&self, file: Arc<File>, start: u64, end: u64) -> Body {
        FileBody {
            sender: self.clone(),
            source: Source::File(file),
            pos: start,
            end,
        }
        .boxed()
    }

    /// A body sending `start..end` of a mapped body file with plain socket writes from the
    /// mapping: one copy, page cache to socket, as `sendfile` costs the sender, but the
    /// kernel builds the socket buffers from its own large page fragments instead of
    /// referencing the file's 4 KiB pages, which the receiving end then copies out far
    /// more cheaply (over loopback, twice the throughput for the same sender CPU per byte:
    /// see the README's large-object figures). For large bodies, whose mapping is kept with
    /// the open file. Only when the mapping covers at least `end` bytes.
    pub fn mapped_body(&self, map: Arc<memmap2::Mmap>, start: u64, end: u64) -> Body {
        let end = end.min(map.len() as u64);
        FileBody {
            sender: self.clone(),
            source: Source::Mapped(map),
            pos: start,
            end,
        }
        .boxed()
    }

    /// Queues a region; returns its placeholder.
    fn push(&self, source: Source, offset: u64, len: usize) -> Bytes {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let slot = queue.next_slot * SLOT_STRIDE;
        queue.next_slot = (queue.next_slot + 1) % SLOTS;
        queue.regions.push_back(Region {
            source,
            offset,
            len,
            sent: 0,
            slot,
        });
        Bytes::from_static(&placeholder()[slot..slot + len])
    }
}

/// Yields placeholders of at most [`MAX_REGION`] bytes, queueing each one's region.
struct FileBody {
    sender: FileSender,
    source: Source,
    pos: u64,
    end: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let len = (this.end - this.pos).min(MAX_REGION as u64) as usize;
        let data = this.sender.push(this.source.clone(), this.pos, len);
        this.pos += len as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.pos))
    }
}

/// An accepted connection: reads and ordinary writes go to the socket; placeholders
/// become `sendfile` calls (see the module docs).
pub struct ZeroCopyIo {
    stream: TcpStream,
    queue: Arc<Mutex<Queue>>,
    /// Bytes sent with `sendfile` (the edge's `sendfile_bytes_total`).
    sent: Arc<AtomicU64>,
}

impl ZeroCopyIo {
    pub fn new(stream: TcpStream, sent: Arc<AtomicU64>) -> ZeroCopyIo {
        ZeroCopyIo {
            stream,
            queue: Arc::default(),
            sent,
        }
    }

    /// The handle for this connection's HTTP/1.x requests (`None` where unsupported).
    pub fn sender(&self) -> Option<FileSender> {
        SUPPORTED.then(|| FileSender {
            queue: self.queue.clone(),
        })
    }

    /// Writes the ordinary slices `bufs` (no placeholder among them); `more` when a
    /// placeholder follows, so that the kernel holds them for the file's bytes.
    fn poll_write_plain(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        more: bool,
    ) -> Poll<io::Result<usize>> {
        #[cfg(target_os = "linux")]
        if more {
            use std::os::fd::AsRawFd;
            let fd = self.stream.as_raw_fd();
            let iovcnt = bufs.len().min(libc::UIO_MAXIOV as usize);
            // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix; the slices outlive
            // the call; msghdr is zero-initialised apart from the iovecs.
            return self.poll_write_syscall(cx, || unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = iovcnt as _;
                libc::sendmsg(fd, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
            });
        }
        let _ = more;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    /// Sends (part of) the region at the front of the queue in place of `slice`.
    fn poll_send_region(
        &mut self,
        cx: &mut Context<'_>,
        slice: &[u8],
        offset: usize,
    ) -> Poll<io::Result<usize>> {
        let (source, file_offset, want) = {
            let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let Some(region) = queue.regions.front() else {
                return Poll::Ready(Err(mismatch("a placeholder with no queued file region")));
            };
            if offset != region.slot + region.sent || slice.len() != region.len - region.sent {
                return Poll::Ready(Err(mismatch(
                    "a placeholder that does not match the queued file region",
                )));
            }
            (
                region.source.clone(),
                region.offset + region.sent as u64,
                region.len - region.sent,
            )
        };
        let n = match &source {
            Source::File(file) => ready!(self.poll_sendfile(cx, file, file_offset, want))?,
            Source::Mapped(map) => {
                // Only the kernel reads these bytes (see `Cache::zero_copy_body`): never
                // touch them here, so a file truncated behind the edge's back makes the
                // write fail (EFAULT) instead of faulting this process.
                let start = (file_offset as usize).min(map.len());
                let bytes = &map[start..(start + want).min(map.len())];
                ready!(Pin::new(&mut self.stream).poll_write(cx, bytes))?
            }
        };
        if n == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cache body file ended before its recorded length; aborting the response",
            )));
        }
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(region) = queue.regions.front_mut() {
            region.sent += n;
            if region.sent >= region.len {
                queue.regions.pop_front();
            }
        }
        Poll::Ready(Ok(n))
    }

    #[cfg(target_os = "linux")]
    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        use std::os::fd::AsRawFd;
        let (out_fd, in_fd) = (self.stream.as_raw_fd(), file.as_raw_fd());
        let Ok(mut off) = libc::off_t::try_from(offset) else {
            return Poll::Ready(Err(io::Error::other("file offset out of range")));
        };
        // SAFETY: both descriptors are open for the duration of the call (we hold the
        // stream and the file); `off` is a valid off_t.
        self.poll_write_syscall(cx, || unsafe {
            libc::sendfile(out_fd, in_fd, &mut off, len)
        })
    }

    /// Runs `syscall` (a write to the socket returning a byte count or -1 with errno) when
    /// the socket is writable, waiting again whenever it would block.
    #[cfg(target_os = "linux")]
    fn poll_write_syscall(
        &self,
        cx: &mut Context<'_>,
        mut syscall: impl FnMut() -> isize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let result = self.stream.try_io(tokio::io::Interest::WRITABLE, || {
                let n = syscall();
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn poll_sendfile(
        &mut self,
        _cx: &mut Context<'_>,
        _file: &File,
        _offset: u64,
        _len: usize,
    ) -> Poll<io::Result<usize>> {
        // Unreachable: `sender()` hands out no FileSender on these systems.
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sendfile is not supported on this system",
        )))
    }
}

fn mismatch(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("zero-copy send: {what}"),
    )
}

impl AsyncRead for ZeroCopyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let bufs = {
            let skip = bufs.iter().take_while(|b| b.is_empty()).count();
            &bufs[skip..]
        };
        let Some(first) = bufs.first() else {
            return Poll::Ready(Ok(0));
        };
        if let Some(offset) = placeholder_offset(first.as_ptr()) {
            return this.poll_send_region(cx, first, offset);
        }
        // Ordinary slices up to the first placeholder (never past it).
        let plain = bufs
            .iter()
            .position(|b| !b.is_empty() && placeholder_offset(b.as_ptr()).is_some())
            .unwrap_or(bufs.len());
        this.poll_write_plain(cx, &bufs[..plain], plain < bufs.len())
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn sender() -> FileSender {
        FileSender {
            queue: Arc::default(),
        }
    }

    fn file_with(bytes: &[u8]) -> Arc<File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        Arc::new(file)
    }

    /// A connected pair: the edge's side wrapped, and the client's side.
    async fn pair() -> (ZeroCopyIo, TcpStream, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        (ZeroCopyIo::new(server, sent.clone()), client, sent)
    }

    async fn read_all(mut client: TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got).await;
        got
    }

    #[test]
    fn placeholders_are_recognised_by_address_and_have_distinct_slots() {
        let sender = sender();
        let file = file_with(b"0123456789abcdefghij");
        let a = sender.push(Source::File(file.clone()), 0, 10);
        let b = sender.push(Source::File(file), 10, 10);
        assert_eq!(placeholder_offset(a.as_ptr()), Some(0));
        assert_eq!(placeholder_offset(b.as_ptr()), Some(SLOT_STRIDE));
        assert_eq!(placeholder_offset([0u8; 4].as_ptr()), None);
        assert_eq!(sender.queue.lock().unwrap().regions.len(), 2);
    }

    #[tokio::test]
    async fn placeholders_become_the_files_bytes_between_ordinary_ones() {
        let (mut io, client, sent) = pair().await;
        let sender = io.sender().unwrap();
        let file = file_with(b"0123456789");
        let middle = sender.push(Source::File(file.clone()), 2, 5);
        let last = sender.push(Source::File(file), 0, 3);
        let bufs = [
            Bytes::from_static(b"head:"),
            middle,
            Bytes::from_static(b"|"),
            last,
        ];
        for buf in bufs {
            io.write_all(&buf).await.unwrap();
        }
        drop(io);
        assert_eq!(read_all(client).await, b"head:23456|012");
        assert_eq!(sent.load(Ordering::Relaxed), 8);
    }

    #[tokio::test]
    async fn a_placeholder_without_its_region_fails_and_sends_nothing() {
        let (mut io, client, _) = pair().await;
        let other = sender(); // another connection's queue
        let stray = other.push(Source::File(file_with(b"secret")), 0, 6);
        let error = io.write_all(&stray).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // A placeholder of the wrong length for the queued region fails too.
        let own = io
            .sender()
            .unwrap()
            .push(Source::File(file_with(b"abcdef")), 0, 6);
        let error = io.write_all(&own[..3]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        drop(io);
        assert!(
            read_all(client).await.is_empty(),
            "no placeholder bytes sent"
        );
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_region_fails_after_its_real_bytes() {
        let (mut io, client, _) = pair().await;
        let placeholder = io
            .sender()
            .unwrap()
            .push(Source::File(file_with(b"abc")), 0, 6);
        let error = io.write_all(&placeholder).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        drop(io);
        assert_eq!(read_all(client).await, b"abc");
    }
}
