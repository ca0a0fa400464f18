//! The memory tier: whole bodies of small objects, LRU by bytes (one order over its
//! shards: [`super::shards`]).
//!
//! In: bodies of committed entries (by [`EntryId`]). Out: `Bytes` clones on hits. Objects
//! over `max_object` bytes are never held (they stream from disk). No I/O.

use bytes::Bytes;

use super::EntryId;
use super::shards::ShardedLru;

pub struct MemoryTier {
    /// Bodies weighed by their length; sharded, so hits on different bodies never wait
    /// for one another.
    lru: ShardedLru<EntryId, Bytes>,
    max_object: u64,
}

impl MemoryTier {
    /// A tier holding at most `capacity` body bytes; objects up to an eighth of it (16 MiB max).
    pub fn new(capacity: u64) -> MemoryTier {
        MemoryTier {
            lru: ShardedLru::new(capacity),
            max_object: (capacity / 8).min(16 << 20),
        }
    }

    /// Largest body this tier accepts.
    pub fn max_object(&self) -> u64 {
        self.max_object
    }

    pub fn get(&self, id: &EntryId) -> Option<Bytes> {
        self.lru.get_with(id, Bytes::clone)
    }

    /// Stores a body, evicting least recently used ones to stay within capacity.
    pub fn insert(&self, id: EntryId, body: Bytes) {
        let size = body.len() as u64;
        if size > self.max_object {
            return;
        }
        self.lru.put(id, body, size);
    }

    pub fn remove(&self, id: &EntryId) {
        self.lru.remove(id);
    }

    /// `(entries, bytes)`.
    pub fn usage(&self) -> (u64, u64) {
        self.lru.usage()
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

    #[test]
    fn a_hit_does_not_wait_for_another_bodys_lock() {
        let tier = MemoryTier::new(800);
        tier.insert(id(1), Bytes::from_static(b"one"));
        let other = (2..=255)
            .map(id)
            .find(|other| tier.lru.shard_of(other) != tier.lru.shard_of(&id(1)))
            .expect("ids in two shards");
        tier.insert(other, Bytes::from_static(b"two"));
        std::thread::scope(|scope| {
            let _held = tier.lru.hold_shard_of(&id(1));
            let (tx, rx) = std::sync::mpsc::channel();
            let tier = &tier;
            scope.spawn(move || tx.send(tier.get(&other)));
            let got = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a hit waited for another shard's lock");
            assert_eq!(got.as_deref(), Some(&b"two"[..]));
        });
    }
}
