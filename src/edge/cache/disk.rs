//! The disk tier: one committed entry = a metadata file plus a body file.
//!
//! Layout under the cache directory:
//!
//! ```text
//! objects/ab/<id>.meta           JSON: key, status, headers, policy, body file, length, sha256
//! objects/ab/<id>-<gen>.body     the body, exactly `body_len` bytes
//! tmp/                           fills in progress (emptied at start)
//! ```
//!
//! Atomicity: a body is written under `tmp/`, renamed into `objects/`, then its metadata is
//! written to a temporary file and renamed over `<id>.meta`. An entry exists only when its
//! metadata parses and names a body file of the recorded length, so a kill at any point
//! never exposes a partial body: at worst an orphan body, removed by the next scan. (The
//! sha256 is checked when a body is read whole into memory; the scan reads no bodies, so
//! start-up stays fast with a large cache.) In: bodies and metadata from the cache. Out: the scanned
//! index at start, open files for reads. Knows nothing of HTTP semantics.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use http_cache_semantics::CachePolicy;

use super::EntryId;
use super::policy::Freshness;
use crate::cdn::Business;

/// Bumped when the metadata format changes; other versions are discarded at scan.
pub const META_VERSION: u32 = 1;

/// What a `.meta` file holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredMeta {
    pub version: u32,
    /// Primary cache key (`host` + path and query).
    pub primary: String,
    pub domain: String,
    pub business: Business,
    pub status: u16,
    /// Origin response headers as received, hop-by-hop fields removed.
    pub headers: Vec<(String, Vec<u8>)>,
    pub policy: CachePolicy,
    pub freshness: Freshness,
    /// Body file name inside the entry's `objects/xx/` directory.
    pub body_file: String,
    pub body_len: u64,
    /// Hex sha256 of the body.
    pub body_sha256: String,
}

pub struct DiskTier {
    objects: PathBuf,
    tmp: PathBuf,
    generation: AtomicU64,
}

/// One entry found by [`DiskTier::scan`].
pub struct Scanned {
    pub id: EntryId,
    pub meta: StoredMeta,
}

impl DiskTier {
    /// Opens (creating) the directory layout and clears leftovers of interrupted fills.
    pub fn open(root: &Path) -> io::Result<DiskTier> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        fs::create_dir_all(&objects)?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(DiskTier {
            objects,
            tmp,
            generation: AtomicU64::new(seed),
        })
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed)
    }

    fn dir_of(&self, id: &EntryId) -> PathBuf {
        self.objects.join(&id.hex()[..2])
    }

    fn meta_path(&self, id: &EntryId) -> PathBuf {
        self.dir_of(id).join(format!("{}.meta", id.hex()))
    }

    /// A new, empty temporary body file (read + write).
    pub fn create_temp_body(&self) -> io::Result<(PathBuf, File)> {
        let path = self
            .tmp
            .join(format!("fill-{:x}.part", self.next_generation()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((path, file))
    }

    /// Moves a completed temporary body into place and writes its metadata; sets
    /// `meta.body_file`. Blocking.
    pub fn commit(&self, id: &EntryId, temp_body: &Path, meta: &mut StoredMeta) -> io::Result<()> {
        let dir = self.dir_of(id);
        fs::create_dir_all(&dir)?;
        let body_file = format!("{}-{:x}.body", id.hex(), self.next_generation());
        fs::rename(temp_body, dir.join(&body_file))?;
        let previous = self.read_meta(id).ok().map(|m| m.body_file);
        meta.body_file = body_file;
        self.write_meta(id, meta)?;
        if let Some(previous) = previous.filter(|p| *p != meta.body_file) {
            let _ = fs::remove_file(dir.join(previous));
        }
        Ok(())
    }

    /// Atomically replaces an entry's metadata (after a revalidation). Blocking.
    pub fn write_meta(&self, id: &EntryId, meta: &StoredMeta) -> io::Result<()> {
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        let tmp = self
            .tmp
            .join(format!("meta-{:x}.part", self.next_generation()));
        {
            let mut file = File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_data()?;
        }
        fs::rename(&tmp, self.meta_path(id))
    }

    fn read_meta(&self, id: &EntryId) -> io::Result<StoredMeta> {
        let bytes = fs::read(self.meta_path(id))?;
        serde_json::from_slice(&bytes).map_err(io::Error::other)
    }

    /// Opens a committed body for reading.
    pub fn open_body(&self, id: &EntryId, meta: &StoredMeta) -> io::Result<File> {
        File::open(self.dir_of(id).join(&meta.body_file))
    }

    /// Deletes an entry's files (readers holding them open keep reading). Blocking.
    pub fn remove(&self, id: &EntryId, body_file: &str) {
        let dir = self.dir_of(id);
        let _ = fs::remove_file(self.meta_path(id));
        let _ = fs::remove_file(dir.join(body_file));
    }

    /// Rebuilds the index: every valid entry; removes invalid metadata and orphan bodies.
    pub fn scan(&self) -> io::Result<Vec<Scanned>> {
        let mut found = Vec::new();
        for shard in fs::read_dir(&self.objects)? {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            let mut bodies = Vec::new();
            let mut metas = Vec::new();
            for file in fs::read_dir(&shard)? {
                let path = file?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string();
                if let Some(stem) = name.strip_suffix(".meta") {
                    metas.push((stem.to_string(), path));
                } else {
                    bodies.push(name);
                }
            }
            let mut referenced = std::collections::HashSet::new();
            for (stem, path) in metas {
                match self.check_entry(&shard, &stem, &path) {
                    Some(scanned) => {
                        referenced.insert(scanned.meta.body_file.clone());
                        found.push(scanned);
                    }
                    None => {
                        tracing::warn!(file = %path.display(), "discarding invalid cache entry");
                        let _ = fs::remove_file(&path);
                    }
                }
            }
            for body in bodies.iter().filter(|b| !referenced.contains(*b)) {
                let _ = fs::remove_file(shard.join(body));
            }
        }
        Ok(found)
    }

    fn check_entry(&self, shard: &Path, stem: &str, meta_path: &Path) -> Option<Scanned> {
        let id = EntryId::from_hex(stem)?;
        let meta: StoredMeta = serde_json::from_slice(&fs::read(meta_path).ok()?).ok()?;
        if meta.version != META_VERSION || !meta.body_file.starts_with(stem) {
            return None;
        }
        let body_path = shard.join(&meta.body_file);
        let len = fs::metadata(&body_path).ok()?.len();
        if len != meta.body_len {
            return None;
        }
        Some(Scanned { id, meta })
    }
}
