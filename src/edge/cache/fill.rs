//! Fills: a response being written to a temp file while any number of clients read it.
//!
//! In: the origin body and the entry's metadata. Out: the growing file's bytes to readers
//! ([`Fill::body`]), then a committed entry in the [`Cache`]. A fill never holds a large
//! body in memory; small bodies are also kept whole for the memory tier. A failed fill
//! stores nothing and its readers see an error instead of a short body.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::disk::StoredMeta;
use super::{Cache, Entry, EntryId, READ_CHUNK, WRITE_CHUNK};
use crate::edge::body::{Body, BodyError};
use crate::edge::metrics::{self, Metrics};

/// How far a body file has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Writing(u64),
    Complete(u64),
    Failed,
}

/// A response being stored; any number of clients read it while it is written.
pub struct Fill {
    /// Status, headers and policy (its `body_len` is not known yet).
    pub entry: Arc<Entry>,
    /// From the origin's Content-Length, when it sent one.
    pub expected_len: Option<u64>,
    pub(super) file: Arc<File>,
    pub(super) progress: watch::Receiver<Progress>,
}

impl Fill {
    /// The body `start..end` (end exclusive; `None` = to the end), following the writer.
    pub fn body(&self, start: u64, end: Option<u64>) -> Body {
        file_body(self.file.clone(), start, end, self.progress.clone())
    }

    /// Waits until the fill is committed (`Some(len)`) or failed (`None`).
    pub async fn finished(&self) -> Option<u64> {
        let mut rx = self.progress.clone();
        loop {
            match *rx.borrow_and_update() {
                Progress::Complete(len) => return Some(len),
                Progress::Failed => return None,
                Progress::Writing(_) => {}
            }
            if rx.changed().await.is_err() {
                return match *rx.borrow() {
                    Progress::Complete(len) => Some(len),
                    _ => None,
                };
            }
        }
    }
}

/// Why a fill was abandoned (nothing is stored).
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("origin body failed: {0}")]
    Origin(String),
    #[error("origin body stalled for more than {0:?}")]
    Stalled(Duration),
    #[error("origin body ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("writing the cache: {0}")]
    Io(#[from] io::Error),
}

/// The writing half of a fill; `run` it in its own task.
pub struct FillWriter {
    pub(super) cache: Arc<Cache>,
    pub(super) id: EntryId,
    pub(super) meta: StoredMeta,
    pub(super) temp_path: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) progress: watch::Sender<Progress>,
    pub(super) expected_len: Option<u64>,
    pub(super) frame_timeout: Duration,
}

impl FillWriter {
    /// Copies the origin body into the temp file, then commits the entry. On any failure
    /// the temp file is removed, readers see an error, and nothing is stored.
    pub async fn run<B>(mut self, body: B, metrics: &Metrics) -> Result<u64, FillError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let result = self.copy_and_commit(body, metrics).await;
        self.cache
            .fills
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        match &result {
            Ok(len) => {
                self.progress.send_replace(Progress::Complete(*len));
            }
            Err(error) => {
                tracing::warn!(key = %self.meta.primary, %error, "cache fill abandoned");
                self.progress.send_replace(Progress::Failed);
                let _ = std::fs::remove_file(&self.temp_path);
            }
        }
        result
    }

    async fn copy_and_commit<B>(&mut self, body: B, metrics: &Metrics) -> Result<u64, FillError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let max_memory = self.cache.memory.max_object();
        let mut in_memory = self
            .expected_len
            .is_none_or(|len| len <= max_memory)
            .then(BytesMut::new);
        let mut pending = BytesMut::new();
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut body = pin!(body);
        loop {
            let frame = tokio::time::timeout(self.frame_timeout, body.frame())
                .await
                .map_err(|_| FillError::Stalled(self.frame_timeout))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| FillError::Origin(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            metrics::add(&metrics.bytes_from_origin, data.len() as u64);
            hasher.update(&data);
            if let Some(buf) = &mut in_memory {
                if (buf.len() + data.len()) as u64 <= max_memory {
                    buf.extend_from_slice(&data);
                } else {
                    in_memory = None;
                }
            }
            pending.extend_from_slice(&data);
            if pending.len() >= WRITE_CHUNK {
                written = self.flush(&mut pending, written, true).await?;
            }
        }
        // The last bytes become visible only with the commit, so that a client that has
        // read the whole body finds the entry in the index.
        written = self.flush(&mut pending, written, false).await?;
        if let Some(expected) = self.expected_len
            && expected != written
        {
            return Err(FillError::Truncated {
                got: written,
                expected,
            });
        }
        if written > self.cache.disk_capacity {
            // Served to the clients that followed it, never stored: it would evict everything.
            let _ = std::fs::remove_file(&self.temp_path);
            tracing::info!(key = %self.meta.primary, bytes = written, "object larger than the disk tier; not stored");
            return Ok(written);
        }
        self.meta.body_len = written;
        self.meta.body_sha256 = hex::encode(hasher.finalize());
        let disk = self.cache.disk.clone();
        let (file, temp, id, mut meta) = (
            self.file.clone(),
            self.temp_path.clone(),
            self.id,
            self.meta.clone(),
        );
        let committed = tokio::task::spawn_blocking(move || {
            file.sync_data()?;
            disk.commit(&id, &temp, &mut meta)?;
            Ok::<_, io::Error>(meta)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|result| result);
        let meta = match committed {
            Ok(meta) => meta,
            Err(error) => {
                // The body is whole: its readers finish; it is just not kept.
                tracing::warn!(key = %self.meta.primary, %error, "cannot commit a cache entry");
                let _ = std::fs::remove_file(&self.temp_path);
                return Ok(written);
            }
        };
        // Insert first: it drops any memory copy of the entry this one replaces.
        let kept = self.cache.insert(Arc::new(Entry::new(self.id, meta)));
        if let Some(bytes) = in_memory.filter(|_| kept) {
            self.cache.memory.insert(self.id, bytes.freeze());
        }
        Ok(written)
    }

    async fn flush(&self, pending: &mut BytesMut, written: u64, publish: bool) -> io::Result<u64> {
        if pending.is_empty() {
            return Ok(written);
        }
        let chunk = pending.split().freeze();
        let len = chunk.len() as u64;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.write_all_at(&chunk, written))
            .await
            .map_err(io::Error::other)??;
        // The last byte of a body of known length is published only with the commit.
        if publish && self.expected_len != Some(written + len) {
            self.progress.send_replace(Progress::Writing(written + len));
        }
        Ok(written + len)
    }
}

fn body_error(message: &str) -> BodyError {
    Box::new(io::Error::other(message.to_string()))
}

/// Streams `start..end` of a file whose written length `progress` reports.
pub(super) fn file_body(
    file: Arc<File>,
    start: u64,
    end: Option<u64>,
    progress: watch::Receiver<Progress>,
) -> Body {
    struct State {
        file: Arc<File>,
        pos: u64,
        end: Option<u64>,
        progress: watch::Receiver<Progress>,
        done: bool,
        /// Reused once the previous chunk has been written out (no fresh pages per chunk).
        buf: BytesMut,
    }
    let state = State {
        file,
        pos: start,
        end,
        progress,
        done: false,
        buf: BytesMut::new(),
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let current = *st.progress.borrow_and_update();
            let (available, complete) = match current {
                Progress::Writing(n) => (n, false),
                Progress::Complete(n) => (n, true),
                Progress::Failed => {
                    st.done = true;
                    return Some((Err(body_error("origin fetch failed while streaming")), st));
                }
            };
            let limit = st.end.map_or(available, |e| e.min(available));
            if st.pos < limit {
                let want = (limit - st.pos).min(READ_CHUNK as u64) as usize;
                let (file, pos) = (st.file.clone(), st.pos);
                let mut buf = std::mem::take(&mut st.buf);
                let read = tokio::task::spawn_blocking(move || {
                    buf.clear();
                    buf.reserve(want);
                    buf.resize(want, 0);
                    let n = file.read_at(&mut buf, pos)?;
                    buf.truncate(n);
                    Ok::<_, io::Error>(buf)
                })
                .await;
                return match read {
                    Ok(Ok(mut buf)) if !buf.is_empty() => {
                        st.pos += buf.len() as u64;
                        let chunk = buf.split().freeze();
                        st.buf = buf;
                        Some((Ok(Frame::data(chunk)), st))
                    }
                    Ok(Ok(_)) => {
                        st.done = true;
                        Some((Err(body_error("cache file shorter than recorded")), st))
                    }
                    Ok(Err(e)) => {
                        st.done = true;
                        Some((Err(Box::new(e) as BodyError), st))
                    }
                    Err(e) => {
                        st.done = true;
                        Some((Err(Box::new(e) as BodyError), st))
                    }
                };
            }
            if complete || st.end.is_some_and(|e| st.pos >= e) {
                return None;
            }
            if st.progress.changed().await.is_err()
                && matches!(*st.progress.borrow(), Progress::Writing(_))
            {
                st.done = true;
                return Some((Err(body_error("cache fill abandoned")), st));
            }
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}
