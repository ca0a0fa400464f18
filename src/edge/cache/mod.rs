//! The edge's cache: an index of stored responses over two tiers, and fills.
//!
//! ```text
//! lookup : primary key -> variants (Vary) -> policy::reuse -> entry
//! body   : memory tier (small bodies, LRU by bytes) -> disk tier (every entry)
//! fill   : origin body -> temp file (readers follow the growing file) -> commit -> index
//!          (see [`fill`])
//! ```
//!
//! Every committed entry is on disk; the memory tier caches small bodies. Bodies of at least
//! [`SENDFILE_MIN`] bytes go to HTTP/1.x clients with `sendfile` from their disk file
//! ([`Cache::zero_copy_body`], kept open in a small LRU of files). The index is
//! bounded by the disk tier's bytes (LRU) and rebuilt from disk at start. A fill in progress
//! is readable by any number of clients while it is written, so a large object is never
//! held whole in memory. Decisions (what to store, how to reuse) live in [`policy`]; this
//! module does storage only.

pub mod coalesce;
pub mod disk;
pub mod fill;
pub mod memory;
pub mod policy;

use fill::file_body;
pub use fill::{Fill, FillError, FillWriter, Progress};

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::edge::body::{self, Body};
use crate::edge::zero_copy::FileSender;
use disk::{DiskTier, StoredMeta};
use memory::MemoryTier;
use policy::CacheRequest;

/// At most this many Vary variants are kept per URL; the oldest goes first.
const MAX_VARIANTS: usize = 16;
/// Files are read in chunks of this size (one blocking-pool hop each).
const READ_CHUNK: usize = 1 << 20;
/// A fill writes (and shows its readers) what it received in chunks of this size.
const WRITE_CHUNK: usize = 64 << 10;
/// Bodies at least this long go to HTTP/1.x clients with `sendfile`; shorter ones are
/// cheaper as one `writev` from the memory tier (headers and body in one call).
pub const SENDFILE_MIN: u64 = 32 << 10;
/// At most this many body files are kept open for `sendfile` (fewer when the process's
/// descriptor limit is low: a quarter of it).
const MAX_OPEN_FILES: u64 = 1024;

/// Identifies one stored variant: sha256 of the primary key and the request's values of the
/// response's Vary fields. Also the disk file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryId(pub [u8; 32]);

impl EntryId {
    pub fn for_variant(primary: &str, response: &HeaderMap, request: &HeaderMap) -> EntryId {
        let mut hasher = Sha256::new();
        hasher.update(primary.as_bytes());
        let mut names: Vec<String> = response
            .get_all(http::header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            hasher.update([0]);
            hasher.update(name.as_bytes());
            for value in request.get_all(name.as_str()) {
                hasher.update([1]);
                hasher.update(value.as_bytes());
            }
        }
        EntryId(hasher.finalize().into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<EntryId> {
        let bytes = hex::decode(text).ok()?;
        Some(EntryId(bytes.try_into().ok()?))
    }
}

/// A stored response: its metadata plus the parsed status and headers.
#[derive(Debug)]
pub struct Entry {
    pub id: EntryId,
    pub meta: StoredMeta,
    pub status: StatusCode,
    /// Origin headers (hop-by-hop removed), including `CDN-Cache-Control`.
    pub headers: HeaderMap,
    /// What clients get: `headers` without `CDN-Cache-Control` (Age etc. added per response).
    pub client_headers: HeaderMap,
    /// The response has a Vary field (variants must be matched).
    pub varies: bool,
}

impl Entry {
    pub fn new(id: EntryId, meta: StoredMeta) -> Entry {
        let status = StatusCode::from_u16(meta.status).unwrap_or(StatusCode::OK);
        let headers = headers_from_pairs(&meta.headers);
        let mut client_headers = headers.clone();
        client_headers.remove(policy::CDN_CACHE_CONTROL);
        Entry {
            id,
            meta,
            status,
            varies: headers.contains_key(http::header::VARY),
            headers,
            client_headers,
        }
    }
}

/// Reads a whole body, checked against its recorded checksum. Blocking.
fn read_verified(file: &File, meta: &StoredMeta) -> io::Result<Bytes> {
    let mut buf = vec![0u8; meta.body_len as usize];
    file.read_exact_at(&mut buf, 0)?;
    // Small bodies are checked whole on their way into memory.
    if hex::encode(Sha256::digest(&buf)) != meta.body_sha256 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "cache body does not match its checksum",
        ));
    }
    Ok(Bytes::from(buf))
}

/// How many body files to keep open: a quarter of the descriptor limit, at most
/// [`MAX_OPEN_FILES`].
fn open_files_max() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur as u64
    } else {
        256
    };
    (soft / 4).clamp(16, MAX_OPEN_FILES) as usize
}

pub fn headers_to_pairs(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect()
}

pub fn headers_from_pairs(pairs: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {path}: {source} (check that it exists and is writable)")]
    Dir { path: PathBuf, source: io::Error },
}

/// Sizes and counts for `/status` and `/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheStats {
    pub entries: u64,
    pub disk_bytes: u64,
    pub disk_capacity: u64,
    pub memory_entries: u64,
    pub memory_bytes: u64,
    pub memory_capacity: u64,
    pub fills_in_progress: u64,
    pub entries_per_domain: HashMap<String, u64>,
}

struct Index {
    variants: HashMap<String, Vec<Arc<Entry>>>,
    /// Disk accounting, least recently used first.
    lru: LruCache<EntryId, (String, u64)>,
    bytes: u64,
}

pub struct Cache {
    disk: Arc<DiskTier>,
    memory: MemoryTier,
    /// Open body files for zero-copy sends: id -> (body file name, file), LRU.
    open_files: Mutex<LruCache<EntryId, (String, Arc<File>)>>,
    open_files_max: usize,
    index: Mutex<Index>,
    disk_capacity: u64,
    memory_capacity: u64,
    fills: std::sync::atomic::AtomicU64,
    /// A private directory (no `--cache-dir`) removed when the cache is dropped.
    owned_dir: Option<PathBuf>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Cache {
    /// Opens the cache in `dir` (or a private temporary directory) and rebuilds the index
    /// from disk. Blocking.
    pub fn open(
        dir: Option<&Path>,
        memory_bytes: u64,
        disk_bytes: u64,
    ) -> Result<Cache, CacheError> {
        let (root, owned_dir) = match dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let dir =
                    std::env::temp_dir().join(format!("meridian-edge-{}", std::process::id()));
                (dir.clone(), Some(dir))
            }
        };
        let err = |source| CacheError::Dir {
            path: root.clone(),
            source,
        };
        let disk = DiskTier::open(&root).map_err(err)?;
        let scanned = disk.scan().map_err(err)?;
        let cache = Cache {
            disk: Arc::new(disk),
            memory: MemoryTier::new(memory_bytes),
            open_files: Mutex::new(LruCache::unbounded()),
            open_files_max: open_files_max(),
            index: Mutex::new(Index {
                variants: HashMap::new(),
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            disk_capacity: disk_bytes,
            memory_capacity: memory_bytes,
            fills: Default::default(),
            owned_dir,
        };
        let count = scanned.len();
        for found in scanned {
            cache.insert(Arc::new(Entry::new(found.id, found.meta)));
        }
        tracing::info!(entries = count, dir = %root.display(), "cache index rebuilt from disk");
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored variant matching `req`, and how it may be reused.
    pub fn lookup(
        &self,
        primary: &str,
        req: &CacheRequest,
        now: SystemTime,
    ) -> Option<(Arc<Entry>, policy::Reuse)> {
        let mut index = self.lock();
        let found = index.variants.get(primary)?.iter().find_map(|entry| {
            policy::reuse(
                &entry.meta.policy,
                &entry.meta.freshness,
                entry.varies,
                req,
                now,
            )
            .map(|reuse| (entry.clone(), reuse))
        });
        if let Some((entry, _)) = &found {
            index.lru.get(&entry.id);
        }
        found
    }

    /// Adds (or replaces) a committed entry, evicting least recently used ones past capacity.
    pub fn insert(&self, entry: Arc<Entry>) {
        let mut doomed = Vec::new();
        {
            let mut index = self.lock();
            let index = &mut *index;
            let size = entry.meta.body_len;
            if let Some((_, old_size)) = index.lru.pop(&entry.id) {
                index.bytes -= old_size;
                self.memory.remove(&entry.id);
                self.close_file(&entry.id);
            }
            let variants = index
                .variants
                .entry(entry.meta.primary.clone())
                .or_default();
            variants.retain(|e| e.id != entry.id);
            if variants.len() >= MAX_VARIANTS {
                let oldest = variants.remove(0);
                if let Some((_, old_size)) = index.lru.pop(&oldest.id) {
                    index.bytes -= old_size;
                }
                doomed.push(oldest);
            }
            variants.push(entry.clone());
            index.lru.put(entry.id, (entry.meta.primary.clone(), size));
            index.bytes += size;
            while index.bytes > self.disk_capacity && index.lru.len() > 1 {
                let Some((id, (primary, size))) = index.lru.pop_lru() else {
                    break;
                };
                index.bytes -= size;
                if let Some(variants) = index.variants.get_mut(&primary) {
                    if let Some(pos) = variants.iter().position(|e| e.id == id) {
                        doomed.push(variants.remove(pos));
                    }
                    if variants.is_empty() {
                        index.variants.remove(&primary);
                    }
                }
            }
        }
        for entry in doomed {
            self.forget(&entry);
        }
    }

    fn forget(&self, entry: &Entry) {
        self.memory.remove(&entry.id);
        self.close_file(&entry.id);
        self.disk.remove(&entry.id, &entry.meta.body_file);
    }

    /// Replaces an entry's metadata after a 304 (same body). Blocking (writes the meta file).
    pub fn update_meta(&self, entry: Arc<Entry>) -> io::Result<()> {
        self.disk.write_meta(&entry.id, &entry.meta)?;
        let mut index = self.lock();
        if let Some(variants) = index.variants.get_mut(&entry.meta.primary) {
            for slot in variants.iter_mut().filter(|e| e.id == entry.id) {
                *slot = entry.clone();
            }
        }
        Ok(())
    }

    /// Removes every variant of one URL; returns how many entries went.
    pub fn remove_primary(&self, primary: &str) -> usize {
        let removed = {
            let mut index = self.lock();
            let removed = index.variants.remove(primary).unwrap_or_default();
            for entry in &removed {
                if let Some((_, size)) = index.lru.pop(&entry.id) {
                    index.bytes -= size;
                }
            }
            removed
        };
        for entry in &removed {
            self.forget(entry);
        }
        removed.len()
    }

    /// Removes every entry whose primary key starts with `prefix` (a directory refresh).
    pub fn remove_prefix(&self, prefix: &str) -> usize {
        let keys: Vec<String> = self
            .lock()
            .variants
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.iter().map(|k| self.remove_primary(k)).sum()
    }

    pub fn stats(&self) -> CacheStats {
        let (memory_entries, memory_bytes) = self.memory.usage();
        let index = self.lock();
        let mut entries_per_domain: HashMap<String, u64> = HashMap::new();
        for entry in index.variants.values().flatten() {
            *entries_per_domain
                .entry(entry.meta.domain.clone())
                .or_default() += 1;
        }
        CacheStats {
            entries: index.lru.len() as u64,
            disk_bytes: index.bytes,
            disk_capacity: self.disk_capacity,
            memory_entries,
            memory_bytes,
            memory_capacity: self.memory_capacity,
            fills_in_progress: self.fills.load(std::sync::atomic::Ordering::Relaxed),
            entries_per_domain,
        }
    }

    /// The body `start..end` (end exclusive) of a committed entry, from memory or disk.
    pub async fn body(&self, entry: &Arc<Entry>, start: u64, end: u64) -> io::Result<Body> {
        let range = start as usize..end as usize;
        if let Some(bytes) = self.memory.get(&entry.id) {
            return Ok(body::full(bytes.slice(range)));
        }
        let disk = self.disk.clone();
        let owned = entry.clone();
        let file = tokio::task::spawn_blocking(move || disk.open_body(&owned.id, &owned.meta))
            .await
            .map_err(io::Error::other)??;
        let len = entry.meta.body_len;
        if len <= self.memory.max_object() {
            let meta = entry.meta.clone();
            let bytes = tokio::task::spawn_blocking(move || read_verified(&file, &meta))
                .await
                .map_err(io::Error::other)??;
            self.memory.insert(entry.id, bytes.clone());
            return Ok(body::full(bytes.slice(range)));
        }
        let (tx, rx) = watch::channel(Progress::Complete(len));
        drop(tx);
        Ok(file_body(Arc::new(file), start, Some(end), rx))
    }

    /// The body `start..end` of a committed entry sent with `sendfile` through `sender`, or
    /// `None` when the body is shorter than [`SENDFILE_MIN`] (use [`Cache::body`]). The
    /// file's length is checked (`fstat`) against the entry on every call; a body that is
    /// also small enough for the memory tier has its checksum verified when its file is
    /// first opened, as [`Cache::body`] does.
    pub async fn zero_copy_body(
        &self,
        entry: &Arc<Entry>,
        start: u64,
        end: u64,
        sender: &FileSender,
    ) -> io::Result<Option<Body>> {
        let len = entry.meta.body_len;
        if len < SENDFILE_MIN || end > len {
            return Ok(None);
        }
        let file = self.open_file(entry).await?;
        let on_disk = file.metadata()?.len();
        if on_disk != len {
            self.close_file(&entry.id);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cache body file has {on_disk} bytes, its entry {len}"),
            ));
        }
        Ok(Some(sender.body(file, start, end)))
    }

    /// The entry's body file, from the open-file LRU or opened (and verified) now.
    async fn open_file(&self, entry: &Arc<Entry>) -> io::Result<Arc<File>> {
        {
            let mut open = self.open_files.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((name, file)) = open.get(&entry.id)
                && *name == entry.meta.body_file
            {
                return Ok(file.clone());
            }
        }
        let disk = self.disk.clone();
        let owned = entry.clone();
        let verify = entry.meta.body_len <= self.memory.max_object();
        let (file, verified) = tokio::task::spawn_blocking(move || {
            let file = disk.open_body(&owned.id, &owned.meta)?;
            if !verify {
                return Ok::<_, io::Error>((file, None));
            }
            let bytes = read_verified(&file, &owned.meta)?;
            Ok((file, Some(bytes)))
        })
        .await
        .map_err(io::Error::other)??;
        if let Some(bytes) = verified {
            self.memory.insert(entry.id, bytes);
        }
        let file = Arc::new(file);
        let mut open = self.open_files.lock().unwrap_or_else(|e| e.into_inner());
        open.put(entry.id, (entry.meta.body_file.clone(), file.clone()));
        while open.len() > self.open_files_max {
            open.pop_lru();
        }
        Ok(file)
    }

    fn close_file(&self, id: &EntryId) {
        let mut open = self.open_files.lock().unwrap_or_else(|e| e.into_inner());
        open.pop(id);
    }

    /// Starts storing a response: a temp file that readers can follow while it grows.
    /// `meta.body_len` is filled in at commit.
    pub fn start_fill(
        self: &Arc<Self>,
        id: EntryId,
        meta: StoredMeta,
        expected_len: Option<u64>,
        frame_timeout: Duration,
    ) -> io::Result<(Arc<Fill>, FillWriter)> {
        if expected_len.is_some_and(|len| len > self.disk_capacity) {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "object larger than the disk tier",
            ));
        }
        let (temp_path, file) = self.disk.create_temp_body()?;
        let file = Arc::new(file);
        let (progress_tx, progress_rx) = watch::channel(Progress::Writing(0));
        let fill = Arc::new(Fill {
            entry: Arc::new(Entry::new(id, meta.clone())),
            expected_len,
            file: file.clone(),
            progress: progress_rx,
        });
        self.fills
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let writer = FillWriter {
            cache: self.clone(),
            id,
            meta,
            temp_path,
            file,
            progress: progress_tx,
            expected_len,
            frame_timeout,
        };
        Ok((fill, writer))
    }
}
