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

pub mod admission;
pub mod coalesce;
pub mod disk;
pub mod fill;
pub mod memory;
pub mod policy;
pub mod shards;

use fill::file_body;
pub use fill::{Fill, FillError, FillWriter, Progress};

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::edge::body::{self, Body};
use crate::edge::zero_copy::FileSender;
use admission::FrequencySketch;
use disk::{DiskTier, StoredMeta};
use memory::MemoryTier;
use policy::CacheRequest;
use shards::{ShardedLru, Shards};

/// The object size the admission sketch is sized for (how many entries a disk tier of a
/// given size holds, roughly).
const EXPECTED_OBJECT_BYTES: u64 = 64 << 10;
/// At most this many Vary variants are kept per URL; the oldest goes first.
const MAX_VARIANTS: usize = 16;
/// Files are read in chunks of this size (one blocking-pool hop each).
const READ_CHUNK: usize = 1 << 20;
/// A fill writes (and shows its readers) what it received in chunks of this size.
const WRITE_CHUNK: usize = 64 << 10;
/// Bodies at least this long go to HTTP/1.x clients with `sendfile`; shorter ones are
/// cheaper as one `writev` from the memory tier (headers and body in one call).
pub const SENDFILE_MIN: u64 = 32 << 10;
/// Bodies at least this long are written from a mapping of their file rather than with
/// `sendfile` (the receiver copies large socket buffers out faster: [`FileSender::mapped_body`]).
pub const MAPPED_MIN: u64 = 8 << 20;
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

/// The index: primary key -> stored variants, with the disk tier's byte accounting.
/// Sharded by primary key, each shard its own lock; one LRU order over all of them.
struct Index {
    shards: Shards<IndexShard>,
    /// Body bytes of every indexed entry (the disk tier's use).
    bytes: AtomicU64,
    entries: AtomicU64,
}

/// The URLs whose primary key falls in one shard.
struct IndexShard {
    /// Copy-on-write lists: a lookup clones the `Arc` under the lock and judges the
    /// variants after releasing it.
    variants: HashMap<String, Arc<Vec<Arc<Entry>>>>,
    /// Disk accounting, least recently used first.
    lru: LruCache<EntryId, Slot>,
}

struct Slot {
    primary: String,
    /// The primary key's [`FrequencySketch::key`].
    demand_key: u64,
    bytes: u64,
    /// The index clock when last used ([`Shards::tick`]).
    used: u64,
}

impl Default for IndexShard {
    fn default() -> IndexShard {
        IndexShard {
            variants: HashMap::new(),
            lru: LruCache::unbounded(),
        }
    }
}

impl IndexShard {
    /// Drops `id` from the disk accounting, if it is there.
    fn unaccount(&mut self, id: &EntryId, index: &Index) {
        if let Some(slot) = self.lru.pop(id) {
            index.bytes.fetch_sub(slot.bytes, Ordering::Relaxed);
            index.entries.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A body file kept open for zero-copy sends, with its mapping once one was made.
#[derive(Clone)]
struct OpenBody {
    /// The body file's name (an entry replaced under the same id has a new one).
    name: String,
    file: Arc<File>,
    map: Option<Arc<memmap2::Mmap>>,
}

pub struct Cache {
    disk: Arc<DiskTier>,
    memory: MemoryTier,
    /// Open body files for zero-copy sends: id -> (body file name, file), LRU.
    open_files: ShardedLru<EntryId, OpenBody>,
    index: Index,
    /// How often each URL is asked for: decides what may evict what ([`admission`]).
    demand: FrequencySketch,
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
            open_files: ShardedLru::new(open_files_max() as u64),
            index: Index {
                shards: Shards::new(IndexShard::default),
                bytes: AtomicU64::new(0),
                entries: AtomicU64::new(0),
            },
            demand: FrequencySketch::for_items(disk_bytes / EXPECTED_OBJECT_BYTES),
            disk_capacity: disk_bytes,
            memory_capacity: memory_bytes,
            fills: Default::default(),
            owned_dir,
        };
        let count = scanned.len();
        for found in scanned {
            cache.store(Arc::new(Entry::new(found.id, found.meta)));
        }
        tracing::info!(entries = count, dir = %root.display(), "cache index rebuilt from disk");
        Ok(cache)
    }

    /// The stored variant matching `req`, and how it may be reused. The primary key's
    /// shard is locked only to clone its variant list and, after a match, to mark the entry
    /// used; freshness is judged with no lock held.
    pub fn lookup(
        &self,
        primary: &str,
        req: &CacheRequest,
        now: SystemTime,
    ) -> Option<(Arc<Entry>, policy::Reuse)> {
        self.demand.record(self.demand.key(primary));
        let shard = self.index.shards.shard_of(primary);
        let variants = self.index.shards.lock(shard).variants.get(primary)?.clone();
        let found = variants.iter().find_map(|entry| {
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
            let mut locked = self.index.shards.lock(shard);
            let used = self.index.shards.tick();
            if let Some(slot) = locked.lru.get_mut(&entry.id) {
                slot.used = used;
            }
        }
        found
    }

    /// Offers a committed entry to the index. When it fits, or replaces a stored one, it is
    /// kept; when keeping it would evict others, it is kept only if its URL was asked for
    /// more often than each of theirs ([`admission::admit`]), and otherwise its files are
    /// removed at once. Returns whether it was kept.
    pub fn insert(&self, entry: Arc<Entry>) -> bool {
        let size = entry.meta.body_len;
        let over =
            (self.index.bytes.load(Ordering::Relaxed) + size).saturating_sub(self.disk_capacity);
        if over > 0 && !self.is_indexed(&entry) {
            let demand = self.demand.estimate(self.demand.key(&entry.meta.primary));
            let victims = self.eviction_candidates(over);
            if !admission::admit(demand, victims.iter().map(|&key| self.demand.estimate(key))) {
                self.disk.remove(&entry.id, &entry.meta.body_file);
                return false;
            }
        }
        self.store(entry);
        true
    }

    /// Counts an operator's prefetch of `primary` as strong demand, so that what it
    /// fetches is admitted.
    pub fn favour(&self, primary: &str) {
        self.demand.favour(self.demand.key(primary));
    }

    fn is_indexed(&self, entry: &Entry) -> bool {
        let shard = self.index.shards.lock_key(entry.meta.primary.as_str());
        shard.lru.contains(&entry.id)
    }

    /// The demand keys of the least recently used entries whose bytes add up to `bytes`,
    /// oldest first: those an insertion of that size would evict (exact when nothing races).
    fn eviction_candidates(&self, bytes: u64) -> Vec<u64> {
        let mut oldest: Vec<(u64, u64, u64)> = Vec::new(); // (used, bytes, demand key)
        self.index.shards.for_each(|shard| {
            let mut taken = 0;
            for (_, slot) in shard.lru.iter().rev() {
                if taken >= bytes {
                    break;
                }
                taken += slot.bytes;
                oldest.push((slot.used, slot.bytes, slot.demand_key));
            }
        });
        oldest.sort_unstable_by_key(|&(used, _, _)| used);
        let mut freed = 0;
        oldest
            .into_iter()
            .take_while(|&(_, size, _)| {
                let more = freed < bytes;
                freed += size;
                more
            })
            .map(|(_, _, key)| key)
            .collect()
    }

    /// Adds (or replaces) an entry, evicting least recently used ones past capacity.
    fn store(&self, entry: Arc<Entry>) {
        let mut doomed = Vec::new();
        {
            let mut locked = self.index.shards.lock_key(entry.meta.primary.as_str());
            let shard = &mut *locked;
            let size = entry.meta.body_len;
            if shard.lru.contains(&entry.id) {
                shard.unaccount(&entry.id, &self.index);
                self.memory.remove(&entry.id);
                self.close_file(&entry.id);
            }
            let variants = Arc::make_mut(
                shard
                    .variants
                    .entry(entry.meta.primary.clone())
                    .or_default(),
            );
            variants.retain(|e| e.id != entry.id);
            if variants.len() >= MAX_VARIANTS {
                let oldest = variants.remove(0);
                if let Some(slot) = shard.lru.pop(&oldest.id) {
                    self.index.bytes.fetch_sub(slot.bytes, Ordering::Relaxed);
                    self.index.entries.fetch_sub(1, Ordering::Relaxed);
                }
                doomed.push(oldest);
            }
            variants.push(entry.clone());
            let used = self.index.shards.tick();
            shard.lru.put(
                entry.id,
                Slot {
                    primary: entry.meta.primary.clone(),
                    demand_key: self.demand.key(&entry.meta.primary),
                    bytes: size,
                    used,
                },
            );
            self.index.bytes.fetch_add(size, Ordering::Relaxed);
            self.index.entries.fetch_add(1, Ordering::Relaxed);
        }
        while self.index.bytes.load(Ordering::Relaxed) > self.disk_capacity
            && self.index.entries.load(Ordering::Relaxed) > 1
        {
            let oldest =
                (self.index.shards).oldest(|shard| shard.lru.peek_lru().map(|(_, slot)| slot.used));
            let Some(i) = oldest else { break };
            let mut locked = self.index.shards.lock(i);
            let shard = &mut *locked;
            let Some((id, slot)) = shard.lru.pop_lru() else {
                continue;
            };
            self.index.bytes.fetch_sub(slot.bytes, Ordering::Relaxed);
            self.index.entries.fetch_sub(1, Ordering::Relaxed);
            if let Some(list) = shard.variants.get_mut(&slot.primary) {
                let variants = Arc::make_mut(list);
                if let Some(pos) = variants.iter().position(|e| e.id == id) {
                    doomed.push(variants.remove(pos));
                }
                if variants.is_empty() {
                    shard.variants.remove(&slot.primary);
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
        let mut shard = self.index.shards.lock_key(entry.meta.primary.as_str());
        if let Some(list) = shard.variants.get_mut(&entry.meta.primary) {
            for slot in Arc::make_mut(list).iter_mut().filter(|e| e.id == entry.id) {
                *slot = entry.clone();
            }
        }
        Ok(())
    }

    /// Removes every variant of one URL; returns how many entries went.
    pub fn remove_primary(&self, primary: &str) -> usize {
        let removed = {
            let mut shard = self.index.shards.lock_key(primary);
            let removed = shard.variants.remove(primary).unwrap_or_default();
            for entry in removed.iter() {
                shard.unaccount(&entry.id, &self.index);
            }
            removed
        };
        for entry in removed.iter() {
            self.forget(entry);
        }
        removed.len()
    }

    /// Removes every entry whose primary key starts with `prefix` (a directory refresh).
    pub fn remove_prefix(&self, prefix: &str) -> usize {
        let mut keys: Vec<String> = Vec::new();
        self.index.shards.for_each(|shard| {
            let under = shard.variants.keys().filter(|k| k.starts_with(prefix));
            keys.extend(under.cloned());
        });
        keys.iter().map(|k| self.remove_primary(k)).sum()
    }

    pub fn stats(&self) -> CacheStats {
        let (memory_entries, memory_bytes) = self.memory.usage();
        let mut entries_per_domain: HashMap<String, u64> = HashMap::new();
        self.index.shards.for_each(|shard| {
            for entry in shard.variants.values().flat_map(|list| list.iter()) {
                *entries_per_domain
                    .entry(entry.meta.domain.clone())
                    .or_default() += 1;
            }
        });
        CacheStats {
            entries: self.index.entries.load(Ordering::Relaxed),
            disk_bytes: self.index.bytes.load(Ordering::Relaxed),
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
        let on_disk = file.file.metadata()?.len();
        if on_disk != len {
            self.close_file(&entry.id);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cache body file has {on_disk} bytes, its entry {len}"),
            ));
        }
        if len < MAPPED_MIN {
            return Ok(Some(sender.body(file.file, start, end)));
        }
        let map = match file.map {
            Some(map) => map,
            None => {
                let opened = file.file.clone();
                // SAFETY: the mapping is never read by this process, only handed to the
                // kernel as the source of socket writes ([`FileSender::mapped_body`]). If
                // an outside actor truncates the file (the edge never writes a committed
                // body file: fills write a temporary file renamed into place under a fresh
                // name; eviction and purges unlink, which leaves a mapping valid), the
                // kernel's copy faults and `write` returns a short count or EFAULT, which
                // aborts the response: no signal, no wrong bytes (tests/edge_zero_copy.rs).
                let map = tokio::task::spawn_blocking(move || unsafe {
                    memmap2::MmapOptions::new().populate().map(&*opened)
                })
                .await
                .map_err(io::Error::other)??;
                let map = Arc::new(map);
                let with_map = OpenBody {
                    map: Some(map.clone()),
                    ..file
                };
                self.open_files.put(entry.id, with_map, 1);
                map
            }
        };
        if (map.len() as u64) < end {
            self.close_file(&entry.id);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "cache body file mapped shorter than its entry",
            ));
        }
        Ok(Some(sender.mapped_body(map, start, end)))
    }

    /// The entry's body file, from the open-file LRU or opened (and verified) now.
    async fn open_file(&self, entry: &Arc<Entry>) -> io::Result<OpenBody> {
        let cached = self.open_files.get_with(&entry.id, |open| {
            (open.name == entry.meta.body_file).then(|| open.clone())
        });
        if let Some(open) = cached.flatten() {
            return Ok(open);
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
        let open = OpenBody {
            name: entry.meta.body_file.clone(),
            file: Arc::new(file),
            map: None,
        };
        self.open_files.put(entry.id, open.clone(), 1);
        Ok(open)
    }

    fn close_file(&self, id: &EntryId) {
        self.open_files.remove(id);
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::cdn::Business;
    use disk::META_VERSION;
    use policy::{Reuse, StoreDecision};

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    /// A fresh (max-age=3600), committed-looking entry for `path`, indexed only.
    fn entry(path: &str, body_len: u64) -> Arc<Entry> {
        let primary = policy::primary_key("example.com", path);
        let req = CacheRequest::new("example.com", path, &HeaderMap::new());
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=3600"),
        );
        let StoreDecision::Store { policy, freshness } =
            policy::decide_store(&req, StatusCode::OK, &headers, Business::SmallFiles, now())
        else {
            panic!("max-age=3600 is storable");
        };
        let meta = StoredMeta {
            version: META_VERSION,
            primary: primary.clone(),
            domain: "example.com".into(),
            business: Business::SmallFiles,
            status: 200,
            headers: headers_to_pairs(&headers),
            policy: *policy,
            freshness,
            body_file: format!("{path}.body").replace('/', "_"),
            body_len,
            body_sha256: String::new(),
        };
        Arc::new(Entry::new(
            EntryId::for_variant(&primary, &headers, &HeaderMap::new()),
            meta,
        ))
    }

    fn cache(disk_bytes: u64) -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(dir.path()), 1 << 20, disk_bytes).unwrap();
        (dir, cache)
    }

    /// A plain GET of what `entry` stores.
    fn request(entry: &Entry) -> CacheRequest {
        let path = entry.meta.primary.strip_prefix("example.com").unwrap();
        CacheRequest::new("example.com", path, &HeaderMap::new())
    }

    #[test]
    fn a_lookup_does_not_wait_for_another_shards_lock() {
        let (_dir, cache) = cache(1 << 30);
        let held = entry("/held", 10);
        let shard_of = |e: &Entry| cache.index.shards.shard_of(e.meta.primary.as_str());
        let other = (0..)
            .map(|n| entry(&format!("/other-{n}"), 10))
            .find(|e| shard_of(e) != shard_of(&held))
            .unwrap();
        cache.insert(held.clone());
        cache.insert(other.clone());
        std::thread::scope(|scope| {
            // Released when this closure ends, even by a failed assertion, before the
            // scope joins the thread.
            let _held = cache.index.shards.lock(shard_of(&held));
            let (tx, rx) = mpsc::channel();
            let (cache, other) = (&cache, &other);
            scope.spawn(move || tx.send(cache.lookup(&other.meta.primary, &request(other), now())));
            let found = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a lookup waited for another shard's lock");
            let (found, reuse) = found.expect("the other entry is stored");
            assert_eq!(found.id, other.id);
            assert_eq!(reuse, Reuse::Fresh);
        });
    }

    #[test]
    fn eviction_follows_one_lru_order_across_shards() {
        let (_dir, cache) = cache(300);
        let entries: Vec<_> = (0..3).map(|n| entry(&format!("/e{n}"), 100)).collect();
        for e in &entries {
            cache.insert(e.clone());
        }
        let look = |e: &Entry| cache.lookup(&e.meta.primary, &request(e), now());
        assert!(look(&entries[0]).is_some()); // /e0 is now the most recently used
        let e3 = entry("/e3", 100);
        assert!(look(&e3).is_none()); // asked for once: more than /e1 since it was stored
        assert!(cache.insert(e3));
        assert!(
            look(&entries[1]).is_none(),
            "/e1 was the least recently used"
        );
        assert!(look(&entries[0]).is_some() && look(&entries[2]).is_some());
        assert_eq!(cache.stats().entries, 3);
        assert_eq!(cache.stats().disk_bytes, 300);
        assert_eq!(cache.remove_prefix("example.com/e"), 3);
        assert_eq!((cache.stats().entries, cache.stats().disk_bytes), (0, 0));
    }

    #[test]
    fn a_full_cache_keeps_what_is_asked_for_more_than_what_it_would_evict() {
        let (_dir, cache) = cache(300);
        let look = |e: &Entry| cache.lookup(&e.meta.primary, &request(e), now());
        let residents: Vec<_> = (0..3).map(|n| entry(&format!("/r{n}"), 100)).collect();
        for e in &residents {
            look(e);
            cache.insert(e.clone());
            look(e); // each asked for twice
        }
        // A scan: objects asked for once never push out the residents.
        for n in 0..20 {
            let once = entry(&format!("/scan{n}"), 100);
            assert!(look(&once).is_none());
            assert!(!cache.insert(once), "/scan{n} was admitted");
        }
        assert!(residents.iter().all(|e| look(e).is_some()));
        assert_eq!((cache.stats().entries, cache.stats().disk_bytes), (3, 300));
        // An object asked for more often than the least recently used resident replaces it.
        let hot = entry("/hot", 100);
        for _ in 0..4 {
            assert!(look(&hot).is_none());
        }
        assert!(cache.insert(hot.clone()));
        assert!(look(&hot).is_some());
        assert_eq!(residents.iter().filter(|e| look(e).is_some()).count(), 2);
        // A prefetch is admitted on its first request.
        let warmed = entry("/warm", 100);
        cache.favour(&warmed.meta.primary);
        assert!(cache.insert(warmed));
    }
}
