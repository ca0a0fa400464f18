//! The access log (`--access-log FILE`): one line per client request, in nginx's
//! "combined" format followed by the Host, the cache outcome and the time taken:
//!
//! ```text
//! 127.0.0.1 - - [26/Nov/2026:15:40:07 +0000] "GET /a.css HTTP/1.1" 200 1024 "-" "curl/7.88.1" "www.example.com" "hit" 0.000
//! ```
//!
//! - Text from the client (request line, `Referer`, `User-Agent`, `Host`) is escaped as nginx
//!   escapes it (`"`, `\`, control and non-ASCII bytes as `\xHH`), so a request is one line
//!   and cannot forge another; a missing header is `-`.
//! - The cache field is this edge's `Cache-Status` value without the edge's name (`hit`,
//!   `fwd=miss; stored`, `fwd=stale; fwd-status=304`, ...), `-` for answers that have none
//!   (404 for an unknown Host, 508 for a loop).
//! - The byte count is the body bytes handed to the connection, and the line is logged
//!   when the response body ends or the client goes away (a cut-short download logs the
//!   bytes it got this far); the time is from the request head to then, in seconds, and the
//!   timestamp is that moment, in UTC.
//!
//! Lines are appended to a shared in-memory batch (no system call, no thread wake-up per
//! request); a batch goes to the writer thread when it reaches 64 KiB, and the writer
//! writes whatever has gathered at least once a second, as nginx's `access_log ...
//! buffer=64k flush=1s` does. So a line reaches the file within about a second of its
//! response's end. A batch that finds the writer's queue full (the disk cannot keep up) is
//! dropped and its lines counted (`meridian_edge_access_log_dropped_total`). `SIGUSR1`
//! reopens the file (as with nginx), so logrotate can rename it and signal.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use crate::edge::body::{Body, BodyError};

/// A batch is handed to the writer when it holds this many bytes.
const BATCH_BYTES: usize = 64 << 10;
/// Batches that may wait for the writer before new ones are dropped (4 MiB).
const QUEUE_BATCHES: usize = 64;
/// The longest a line waits in memory.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown waits for the last lines to be written.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// The access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open the access log {}: {source} (check that its directory exists and is writable)",
    path.display()
)]
pub struct AccessLogError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

enum Message {
    Batch(Vec<u8>),
    /// Wakes the writer for a reopen ([`Shared::reopen`]).
    Reopen,
    /// Acknowledge once every line logged before this is written and flushed.
    Sync(mpsc::Sender<()>),
}

/// Lines gathered since the last hand-over to the writer.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
    /// The formatted timestamp of second `time_second` (lines of one second share it).
    time_second: u64,
    time_text: String,
}

impl Batch {
    fn take(&mut self) -> (Vec<u8>, u64) {
        let lines = std::mem::take(&mut self.lines);
        let bytes = std::mem::replace(&mut self.bytes, Vec::with_capacity(BATCH_BYTES + 4096));
        (bytes, lines)
    }
}

struct Shared {
    batch: Mutex<Batch>,
    dropped: Arc<AtomicU64>,
    /// Set by [`AccessLog::reopen`]; the writer reopens the file when it next runs.
    reopen: AtomicBool,
}

impl Shared {
    fn take_batch(&self) -> Vec<u8> {
        self.batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .0
    }
}

/// The handle request paths log through; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
    writer: SyncSender<Message>,
}

impl AccessLog {
    /// Opens (creates, appends to) `path` and starts the writer thread. Lines lost because
    /// the writer fell behind are counted in `dropped`.
    pub fn open(path: &Path, dropped: Arc<AtomicU64>) -> Result<AccessLog, AccessLogError> {
        let error = |source| AccessLogError {
            path: path.to_path_buf(),
            source,
        };
        let file = open_append(path).map_err(error)?;
        let shared = Arc::new(Shared {
            batch: Mutex::default(),
            dropped,
            reopen: AtomicBool::new(false),
        });
        let (writer, messages) = mpsc::sync_channel(QUEUE_BATCHES);
        let path = path.to_path_buf();
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_batches(messages, &for_writer, file, &path))
            .map_err(error)?;
        Ok(AccessLog { shared, writer })
    }

    /// Reopens the file at its path once the lines logged so far are written. Never
    /// blocks: a writer that is behind reopens when it catches up.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
        let _ = self.writer.try_send(Message::Reopen);
    }

    /// Returns once every line logged so far is written and flushed, or after a few
    /// seconds if the file does not take them (at shutdown: a stuck disk must not keep the
    /// edge from exiting). Blocks.
    pub fn sync(&self) {
        let (done, wait) = mpsc::channel();
        let written = match self.writer.try_send(Message::Sync(done)) {
            Ok(()) => wait.recv_timeout(SYNC_TIMEOUT).is_ok(),
            Err(TrySendError::Disconnected(_)) => true,
            Err(TrySendError::Full(_)) => false,
        };
        if !written {
            tracing::warn!("the access log is not keeping up; its last lines may be lost");
        }
    }

    /// Notes what the line needs from `request`; [`Pending::finish`] completes it.
    pub fn start<B>(&self, request: &Request<B>, client: SocketAddr) -> Pending {
        let uri = request.uri();
        let mut request_line = String::with_capacity(64);
        escape_into(&mut request_line, request.method().as_str().as_bytes());
        request_line.push(' ');
        match uri.path_and_query() {
            Some(target) => escape_into(&mut request_line, target.as_str().as_bytes()),
            None => escape_into(&mut request_line, uri.to_string().as_bytes()),
        }
        request_line.push_str(match request.version() {
            http::Version::HTTP_09 => " HTTP/0.9",
            http::Version::HTTP_10 => " HTTP/1.0",
            http::Version::HTTP_2 => " HTTP/2.0",
            http::Version::HTTP_3 => " HTTP/3.0",
            _ => " HTTP/1.1",
        });
        let headers = request.headers();
        let host = match uri.authority() {
            Some(authority) => Some(authority.as_str().as_bytes()),
            None => header_bytes(headers, header::HOST),
        };
        // "REFERER" "USER-AGENT" "HOST"
        let mut quoted = String::with_capacity(96);
        for (at, value) in [
            header_bytes(headers, header::REFERER),
            header_bytes(headers, header::USER_AGENT),
            host,
        ]
        .into_iter()
        .enumerate()
        {
            if at > 0 {
                quoted.push(' ');
            }
            quoted.push('"');
            match value {
                Some(bytes) => escape_into(&mut quoted, bytes),
                None => quoted.push('-'),
            }
            quoted.push('"');
        }
        Pending {
            log: self.clone(),
            started: Instant::now(),
            client: client.ip().to_canonical(),
            request_line,
            quoted,
        }
    }

    /// Appends one line to the batch; hands the batch to the writer when it is full.
    fn append(&self, pending: &Pending, status: u16, sent: u64, cache: &str) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let seconds = pending.started.elapsed().as_secs_f64();
        let full = {
            let mut batch = self.shared.batch.lock().unwrap_or_else(|e| e.into_inner());
            if batch.time_text.is_empty() || batch.time_second != second {
                batch.time_second = second;
                batch.time_text = log_time(now);
            }
            let Batch {
                bytes, time_text, ..
            } = &mut *batch;
            let _ = writeln!(
                bytes,
                "{} - - [{time_text}] \"{}\" {status} {sent} {} \"{cache}\" {seconds:.3}",
                pending.client, pending.request_line, pending.quoted,
            );
            batch.lines += 1;
            (batch.bytes.len() >= BATCH_BYTES).then(|| batch.take())
        };
        if let Some((bytes, lines)) = full {
            match self.writer.try_send(Message::Batch(bytes)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.shared.dropped.fetch_add(lines, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A request whose line is written when its response body is done.
pub struct Pending {
    log: AccessLog,
    started: Instant,
    client: IpAddr,
    /// `METHOD TARGET VERSION`, escaped.
    request_line: String,
    /// `"REFERER" "USER-AGENT" "HOST"`, escaped.
    quoted: String,
}

impl Pending {
    /// The response with its body wrapped so that the line is written when the body is
    /// dropped (sent whole, or abandoned by the client).
    pub fn finish(self, response: Response<Body>) -> Response<Body> {
        let status = response.status().as_u16();
        let mut cache = String::new();
        match response.headers().get("cache-status") {
            Some(value) => {
                let value = value.as_bytes();
                // "<edge name>; <parameters>": the name is the same on every line.
                let params = value
                    .windows(2)
                    .position(|w| w == b"; ")
                    .map_or(value, |at| &value[at + 2..]);
                escape_into(&mut cache, params);
            }
            None => cache.push('-'),
        }
        response.map(|inner| {
            LoggedBody {
                inner,
                sent: 0,
                status,
                cache,
                pending: Some(self),
            }
            .boxed()
        })
    }
}

/// A response body that counts its data and logs the request when dropped.
struct LoggedBody {
    inner: Body,
    sent: u64,
    status: u16,
    cache: String,
    pending: Option<Pending>,
}

impl hyper::body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sent += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending
                .log
                .append(&pending, self.status, self.sent, &self.cache);
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: full batches as they come, and whatever has gathered once a second.
fn write_batches(messages: Receiver<Message>, shared: &Shared, file: File, path: &Path) {
    let mut out = Output {
        file: BufWriter::with_capacity(BATCH_BYTES, file),
        path,
        failing: false,
    };
    loop {
        let message = messages.recv_timeout(FLUSH_INTERVAL);
        if shared.reopen.swap(false, Ordering::Relaxed) {
            out.write(&shared.take_batch());
            out.flush();
            match open_append(path) {
                Ok(file) => {
                    out.file = BufWriter::with_capacity(BATCH_BYTES, file);
                    out.failing = false;
                    tracing::info!(path = %path.display(), "access log reopened");
                }
                Err(error) => tracing::error!(
                    %error,
                    path = %path.display(),
                    "cannot reopen the access log; still writing to the old file"
                ),
            }
        }
        match message {
            Ok(Message::Batch(bytes)) => out.write(&bytes),
            Ok(Message::Reopen) => {}
            Ok(Message::Sync(done)) => {
                out.write(&shared.take_batch());
                out.flush();
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                out.write(&shared.take_batch());
                out.flush();
            }
            Err(RecvTimeoutError::Disconnected) => {
                out.write(&shared.take_batch());
                out.flush();
                return;
            }
        }
    }
}

/// The file being written, reporting the first failure of a run of them.
struct Output<'a> {
    file: BufWriter<File>,
    path: &'a Path,
    failing: bool,
}

impl Output<'_> {
    fn write(&mut self, bytes: &[u8]) {
        let result = self.file.write_all(bytes);
        self.report(result);
    }

    fn flush(&mut self) {
        let result = self.file.flush();
        self.report(result);
    }

    fn report(&mut self, result: io::Result<()>) {
        if let Err(error) = result
            && !self.failing
        {
            self.failing = true;
            tracing::error!(%error, path = %self.path.display(), "access log write failed; lines are being lost");
        }
    }
}

fn header_bytes(headers: &HeaderMap, name: header::HeaderName) -> Option<&[u8]> {
    headers.get(name).map(|value| value.as_bytes())
}

/// nginx's access-log escaping: `"`, `\`, control bytes and bytes above 0x7E as `\xHH`.
fn escape_into(out: &mut String, bytes: &[u8]) {
    let plain = |byte: u8| byte != b'"' && byte != b'\\' && (0x20..0x7f).contains(&byte);
    if bytes.iter().all(|&byte| plain(byte)) {
        // Printable ASCII: valid UTF-8 as it is.
        out.push_str(std::str::from_utf8(bytes).unwrap_or_default());
        return;
    }
    for &byte in bytes {
        if plain(byte) {
            out.push(byte as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push_str("\\x");
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xF)] as char);
        }
    }
}

/// `26/Nov/2026:15:40:07 +0000` (nginx's `$time_local`, in UTC).
fn log_time(now: SystemTime) -> String {
    // "Thu, 26 Nov 2026 15:40:07 GMT" -> day, month, year, time.
    let date = httpdate::fmt_http_date(now);
    let parts: Vec<&str> = date.split(' ').collect();
    match parts[..] {
        [_, day, month, year, time, _] => format!("{day}/{month}/{year}:{time} +0000"),
        _ => date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn escape(bytes: &[u8]) -> String {
        let mut out = String::new();
        escape_into(&mut out, bytes);
        out
    }

    #[test]
    fn client_text_is_escaped_like_nginx() {
        assert_eq!(escape(b"curl/8.0 (x)"), "curl/8.0 (x)");
        assert_eq!(
            escape(b"a\"b\\c\nd\x7f\xc3\xa9"),
            "a\\x22b\\x5Cc\\x0Ad\\x7F\\xC3\\xA9"
        );
    }

    #[test]
    fn timestamps_are_nginx_time_local_in_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_707_607); // 2026-11-26 15:40:07 UTC
        assert_eq!(log_time(t), "26/Nov/2026:15:40:07 +0000");
        assert_eq!(log_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
    }
}
