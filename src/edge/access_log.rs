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
//! - The byte count is the body bytes handed to the connection, and the line is written
//!   when the response body ends or the client goes away (a cut-short download logs the
//!   bytes it got this far); the time is from the request head to then, in seconds, and the
//!   timestamp is that moment, in UTC.
//!
//! Lines go through a bounded queue to one writer thread, so the request path never waits
//! on the file; the writer flushes whenever the queue is empty. A line that finds the
//! queue full is dropped and counted (`meridian_edge_access_log_dropped_total`). `SIGUSR1`
//! reopens the file (as with nginx), so logrotate can rename it and signal.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use crate::edge::body::{Body, BodyError};

/// Lines that may wait for the writer before new ones are dropped.
const QUEUE_LINES: usize = 64 * 1024;

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
    Line(String),
    /// Reopen the file at its path (after a rename by logrotate).
    Reopen,
    /// Acknowledge once every line queued before this one is written and flushed.
    Sync(mpsc::Sender<()>),
}

/// The handle request paths log through; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Opens (creates, appends to) `path` and starts the writer thread. Lines that find the
    /// queue full are counted in `dropped`.
    pub fn open(path: &Path, dropped: Arc<AtomicU64>) -> Result<AccessLog, AccessLogError> {
        let error = |source| AccessLogError {
            path: path.to_path_buf(),
            source,
        };
        let file = open_append(path).map_err(error)?;
        let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(lines, file, &path))
            .map_err(error)?;
        Ok(AccessLog { queue, dropped })
    }

    /// Reopens the file at its path once the lines queued so far are written. Blocks while
    /// the queue is full: call it from a blocking context.
    pub fn reopen(&self) {
        let _ = self.queue.send(Message::Reopen);
    }

    /// Returns once every line logged so far is written and flushed (at shutdown). Blocks.
    pub fn sync(&self) {
        let (done, wait) = mpsc::channel();
        if self.queue.send(Message::Sync(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Notes what the line needs from `request`; [`Pending::finish`] completes it.
    pub fn start<B>(&self, request: &Request<B>, client: SocketAddr) -> Pending {
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().to_string(), |p| p.as_str().to_string());
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().as_bytes().to_vec())
            .or_else(|| header_bytes(request.headers(), header::HOST));
        Pending {
            log: self.clone(),
            started: Instant::now(),
            client: client.ip().to_canonical(),
            request_line: format!(
                "{} {} {:?}",
                escape(request.method().as_str().as_bytes()),
                escape(target.as_bytes()),
                request.version()
            ),
            referer: field(header_bytes(request.headers(), header::REFERER)),
            user_agent: field(header_bytes(request.headers(), header::USER_AGENT)),
            host: field(host),
        }
    }

    fn write(&self, line: String) {
        match self.queue.try_send(Message::Line(line)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A request whose line is written when its response body is done.
pub struct Pending {
    log: AccessLog,
    started: Instant,
    client: IpAddr,
    request_line: String,
    referer: String,
    user_agent: String,
    host: String,
}

impl Pending {
    /// The response with its body wrapped so that the line is written when the body is
    /// dropped (sent whole, or abandoned by the client).
    pub fn finish(self, response: Response<Body>) -> Response<Body> {
        let status = response.status().as_u16();
        let cache = response
            .headers()
            .get("cache-status")
            .map(|value| {
                let value = value.as_bytes();
                // "<edge name>; <parameters>": the name is the same on every line.
                let params = value
                    .windows(2)
                    .position(|w| w == b"; ")
                    .map_or(value, |at| &value[at + 2..]);
                escape(params)
            })
            .unwrap_or_else(|| "-".into());
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

    fn line(&self, status: u16, sent: u64, cache: &str, now: SystemTime) -> String {
        format!(
            "{} - - [{}] \"{}\" {status} {sent} \"{}\" \"{}\" \"{}\" \"{cache}\" {:.3}\n",
            self.client,
            log_time(now),
            self.request_line,
            self.referer,
            self.user_agent,
            self.host,
            self.started.elapsed().as_secs_f64(),
        )
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
            let line = pending.line(self.status, self.sent, &self.cache, SystemTime::now());
            pending.log.write(line);
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: lines in, batched writes out, a flush whenever the queue is empty.
fn write_lines(lines: Receiver<Message>, file: File, path: &Path) {
    let mut out = BufWriter::with_capacity(64 << 10, file);
    let mut failing = false;
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    if let Err(error) = out.write_all(line.as_bytes())
                        && !failing
                    {
                        failing = true;
                        tracing::error!(%error, path = %path.display(), "access log write failed; lines are being lost");
                    }
                }
                Message::Reopen => {
                    let _ = out.flush();
                    match open_append(path) {
                        Ok(file) => {
                            out = BufWriter::with_capacity(64 << 10, file);
                            failing = false;
                            tracing::info!(path = %path.display(), "access log reopened");
                        }
                        Err(error) => tracing::error!(
                            %error,
                            path = %path.display(),
                            "cannot reopen the access log; still writing to the old file"
                        ),
                    }
                }
                Message::Sync(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = lines.try_recv().ok();
        }
        if let Err(error) = out.flush()
            && !failing
        {
            failing = true;
            tracing::error!(%error, path = %path.display(), "access log write failed; lines are being lost");
        }
    }
}

fn header_bytes(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<u8>> {
    headers.get(name).map(|value| value.as_bytes().to_vec())
}

fn field(bytes: Option<Vec<u8>>) -> String {
    bytes.map_or_else(|| "-".into(), |bytes| escape(&bytes))
}

/// nginx's access-log escaping: `"`, `\`, control bytes and bytes above 0x7E as `\xHH`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            out.push_str(&format!("\\x{byte:02X}"));
        } else {
            out.push(byte as char);
        }
    }
    out
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

    #[test]
    fn client_text_is_escaped_like_nginx() {
        assert_eq!(escape(b"curl/8.0 (x)"), "curl/8.0 (x)");
        assert_eq!(
            escape(b"a\"b\\c\nd\x7f\xc3\xa9"),
            "a\\x22b\\x5Cc\\x0Ad\\x7F\\xC3\\xA9"
        );
        assert_eq!(field(None), "-");
    }

    #[test]
    fn timestamps_are_nginx_time_local_in_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_707_607); // 2026-11-26 15:40:07 UTC
        assert_eq!(log_time(t), "26/Nov/2026:15:40:07 +0000");
        assert_eq!(log_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
    }
}
