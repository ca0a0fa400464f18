//! The memory tier: whole bodies of small objects, LRU by bytes.
//!
//! In: bodies of committed entries (by [`EntryId`]). Out: `Bytes` clones on hits. Objects
//! over `max_object` bytes are never held (they stream from disk). No I/O.

use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;

use super::EntryId;

pub struct MemoryTier {
    inner: Mutex<Inner>,
    capacity: u64,
    max_object: u64,
}

struct Inner {
    lru: LruCache<EntryId, Bytes>,
    bytes: u64,
}

impl MemoryTier {
    /// A tier holding at most `capacity` body bytes; objects up to an eighth of it (16 MiB max).
    pub fn new(capacity: u64) -> MemoryTier {
        MemoryTier {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity,
            max_object: (capacity / 8).min(16 << 20),
        }
    }

    /// Largest body this tier accepts.
    pub fn max_object(&self) -> u64 {
        self.max_object
    }

    pub fn get(&self, id: &EntryId) -> Option<Bytes> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.lru.get(id).cloned()
    }

    /// Stores a body, evicting least recently used ones to stay within capacity.
    pub fn insert(&self, id: EntryId, body: Bytes) {
        let size = body.len() as u64;
        if size > self.max_object {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.lru.put(id, body) {
            inner.bytes -= old.len() as u64;
        }
        inner.bytes += size;
        while inner.bytes > self.capacity {
            match inner.lru.pop_lru() {
                Some((_, evicted)) => inner.bytes -= evicted.len() as u64,
                None => break,
            }
        }
    }

    pub fn remove(&self, id: &EntryId) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.lru.pop(id) {
            inner.bytes -= old.len() as u64;
        }
    }

    /// `(entries, bytes)`.
    pub fn usage(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.lru.len() as u64, inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EntryId {
        EntryId([n; 32])
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let tier = MemoryTier::new(800); // max object 100
        for n in 0..8 {
            tier.insert(id(n), Bytes::from(vec![n; 100]));
        }
        assert_eq!(tier.usage(), (8, 800));
        assert!(tier.get(&id(0)).is_some()); // 0 is now most recent
        tier.insert(id(8), Bytes::from(vec![8; 100]));
        assert!(tier.get(&id(1)).is_none());
        assert!(tier.get(&id(0)).is_some());
        tier.insert(id(9), Bytes::from(vec![9; 101]));
        assert!(tier.get(&id(9)).is_none(), "over max object");
        tier.remove(&id(0));
        assert_eq!(tier.usage(), (7, 700));
    }
}
