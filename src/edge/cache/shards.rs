//! Sharded state with one least-recently-used order across the shards.
//!
//! Owns [`Shards`]: `N` independently locked shards of some state `S`, a key's shard
//! picked by its hash, and a logical clock. Every item of an LRU kept in shards records
//! the clock's value when it was last used (taken under its shard's lock, so each shard's
//! own LRU order is the order of those values); the least recently used item of the
//! whole is then the oldest of the shards' least recently used ones
//! ([`Shards::oldest`]). So readers of different shards never wait for each other, and
//! eviction by bytes still follows one global LRU order. [`ShardedLru`] is that for a
//! plain key -> value cache bounded by a total weight (bytes, or a count).
//!
//! Locks are taken one at a time, never two together: no lock order to get wrong. Under
//! concurrent use an eviction may pick an item that was used a moment after it looked
//! (the order is exact when nothing races). No I/O.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

/// How many shards a cache structure is split into.
pub const SHARDS: usize = 16;

/// `SHARDS` locked states and the clock that orders their items' uses.
pub struct Shards<S> {
    shards: Box<[Mutex<S>]>,
    hasher: std::hash::RandomState,
    clock: AtomicU64,
}

impl<S> Shards<S> {
    pub fn new(mut make: impl FnMut() -> S) -> Shards<S> {
        Shards {
            shards: (0..SHARDS).map(|_| Mutex::new(make())).collect(),
            hasher: std::hash::RandomState::new(),
            clock: AtomicU64::new(0),
        }
    }

    /// The shard holding `key`.
    pub fn shard_of<K: Hash + ?Sized>(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    /// Locks shard `index` (a poisoned lock is taken over: the state stays consistent
    /// because every update is finished before a panic could unwind past it).
    pub fn lock(&self, index: usize) -> MutexGuard<'_, S> {
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the shard holding `key`.
    pub fn lock_key<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, S> {
        self.lock(self.shard_of(key))
    }

    /// The next value of the use clock. Take it while holding the shard's lock.
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The shard whose least recently used item is the oldest, given each shard's
    /// oldest use (`None` for a shard with nothing to evict). Locks each shard in turn.
    pub fn oldest(&self, oldest_use: impl Fn(&S) -> Option<u64>) -> Option<usize> {
        (0..self.shards.len())
            .filter_map(|i| oldest_use(&self.lock(i)).map(|used| (used, i)))
            .min()
            .map(|(_, i)| i)
    }

    /// Visits every shard, one lock at a time.
    pub fn for_each(&self, mut visit: impl FnMut(&mut S)) {
        for i in 0..self.shards.len() {
            visit(&mut self.lock(i));
        }
    }
}

/// A key -> value cache holding at most `capacity` of total weight, least recently used
/// (over all shards) evicted first.
pub struct ShardedLru<K, V> {
    shards: Shards<LruCache<K, Item<V>>>,
    capacity: u64,
    weight: AtomicU64,
    len: AtomicU64,
}

struct Item<V> {
    value: V,
    weight: u64,
    /// The clock when last used.
    used: u64,
}

impl<K: Hash + Eq, V> ShardedLru<K, V> {
    pub fn new(capacity: u64) -> ShardedLru<K, V> {
        ShardedLru {
            shards: Shards::new(LruCache::unbounded),
            capacity,
            weight: AtomicU64::new(0),
            len: AtomicU64::new(0),
        }
    }

    /// `read(value)` of the item under `key`, which becomes the most recently used.
    pub fn get_with<R>(&self, key: &K, read: impl FnOnce(&V) -> R) -> Option<R> {
        let mut shard = self.shards.lock_key(key);
        let item = shard.get_mut(key)?;
        item.used = self.shards.tick();
        Some(read(&item.value))
    }

    /// Stores `value` (replacing the key's old one), then evicts least recently used items
    /// while the total weight is over capacity.
    pub fn put(&self, key: K, value: V, weight: u64) {
        {
            let mut shard = self.shards.lock_key(&key);
            let used = self.shards.tick();
            match shard.put(
                key,
                Item {
                    value,
                    weight,
                    used,
                },
            ) {
                Some(old) => self.weight.fetch_sub(old.weight, Ordering::Relaxed),
                None => self.len.fetch_add(1, Ordering::Relaxed),
            };
            self.weight.fetch_add(weight, Ordering::Relaxed);
        }
        while self.weight.load(Ordering::Relaxed) > self.capacity {
            let oldest = self
                .shards
                .oldest(|shard| shard.peek_lru().map(|(_, item)| item.used));
            let Some(index) = oldest else { break };
            if let Some((_, item)) = self.shards.lock(index).pop_lru() {
                self.forgotten(&item);
            }
        }
    }

    /// Removes `key`'s item, if any.
    pub fn remove(&self, key: &K) -> Option<V> {
        let item = self.shards.lock_key(key).pop(key)?;
        self.forgotten(&item);
        Some(item.value)
    }

    /// `(items, total weight)`.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.len.load(Ordering::Relaxed),
            self.weight.load(Ordering::Relaxed),
        )
    }

    fn forgotten(&self, item: &Item<V>) {
        self.weight.fetch_sub(item.weight, Ordering::Relaxed);
        self.len.fetch_sub(1, Ordering::Relaxed);
    }

    /// The shard holding `key` (tests).
    #[cfg(test)]
    pub fn shard_of(&self, key: &K) -> usize {
        self.shards.shard_of(key)
    }

    /// Holds the lock of `key`'s shard (tests: other shards must not wait for it).
    #[cfg(test)]
    pub fn hold_shard_of(&self, key: &K) -> impl Sized + '_ {
        self.shards.lock_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_is_the_minimum_over_shards() {
        let shards: Shards<Vec<u64>> = Shards::new(Vec::new);
        shards.lock(3).push(7);
        shards.lock(5).push(2);
        shards.lock(9).push(4);
        assert_eq!(shards.oldest(|s| s.first().copied()), Some(5));
        shards.lock(5).clear();
        assert_eq!(shards.oldest(|s| s.first().copied()), Some(9));
        let empty: Shards<Vec<u64>> = Shards::new(Vec::new);
        assert_eq!(empty.oldest(|s| s.first().copied()), None);
    }

    #[test]
    fn evicts_in_one_lru_order_across_shards() {
        let lru: ShardedLru<u32, u32> = ShardedLru::new(3);
        for key in 0..3 {
            lru.put(key, key, 1);
        }
        assert_eq!(lru.get_with(&0, |v| *v), Some(0)); // 0 is now the most recent
        lru.put(3, 3, 1);
        assert_eq!(
            lru.get_with(&1, |v| *v),
            None,
            "1 was the least recently used"
        );
        assert_eq!(lru.usage(), (3, 3));
        lru.put(4, 4, 2);
        assert_eq!(lru.get_with(&2, |v| *v), None);
        assert_eq!(lru.get_with(&0, |v| *v), None);
        assert_eq!(lru.remove(&3), Some(3));
        assert_eq!(lru.usage(), (1, 2));
    }

    #[test]
    fn a_shard_stays_usable_while_another_is_locked() {
        let shards: Shards<u64> = Shards::new(|| 0);
        let _held = shards.lock(0);
        *shards.lock(1) += 1;
        assert_eq!(*shards.lock(1), 1);
    }
}
