//! Admission to the cache: TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly
//! Efficient Cache Admission Policy", 2017), the filter Caffeine and moka put in front of
//! their LRU.
//!
//! Owns [`FrequencySketch`], an approximate count of how often each URL was asked for
//! lately, and [`admit`], the pure rule that uses it. Every lookup records its primary key;
//! when storing a new object would evict others, the object is kept only if it was asked for
//! more often than every entry it would push out. One-hit objects (scans, crawlers, a
//! random-URL flood) then never flush the working set; an object asked for twice gets in.
//!
//! The sketch is a count-min sketch of four rows of 4-bit-range counters (held in `u8`,
//! saturating at 15) with a doorkeeper bit set in front, so that a key seen once costs one
//! bit, and ageing: after `reset_at` recordings every counter is halved and the doorkeeper
//! cleared, so yesterday's hits fade. Written here rather than taken from moka because moka
//! keeps its sketch private to its own cache, and the index it would guard is ours (disk
//! files, Vary variants, purges). Counters are atomics: recording never takes a lock, and
//! a race costs at most a lost increment. No I/O, no clock.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// Counters saturate here (4 bits' worth, as in the paper and Caffeine).
const MAX_COUNT: u8 = 15;
/// One multiplier per row: each row indexes by a different mix of the key's hash.
const ROW_SEEDS: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x27d4_eb2f_1656_67c5,
];

/// How often each key was recorded lately, approximately (never under-counted between
/// resets, except for races).
pub struct FrequencySketch {
    /// `ROW_SEEDS.len()` rows of `width` counters, row after row.
    counters: Box<[AtomicU8]>,
    width_mask: u64,
    /// Keys seen at least once since the last reset (a one-hash Bloom filter).
    doorkeeper: Box<[AtomicU64]>,
    door_mask: u64,
    recorded: AtomicU64,
    reset_at: u64,
    resetting: AtomicBool,
    hasher: std::hash::RandomState,
}

impl FrequencySketch {
    /// A sketch for a cache expected to hold about `items` entries: four counters per
    /// expected entry in each row (at least 1024), ageing after ten recordings per entry.
    pub fn for_items(items: u64) -> FrequencySketch {
        let width = (items.saturating_mul(4))
            .clamp(1024, 1 << 22)
            .next_power_of_two();
        let door_words = (width / 16).max(64); // 4 doorkeeper bits per counter
        FrequencySketch {
            counters: (0..width * ROW_SEEDS.len() as u64)
                .map(|_| AtomicU8::new(0))
                .collect(),
            width_mask: width - 1,
            doorkeeper: (0..door_words).map(|_| AtomicU64::new(0)).collect(),
            door_mask: door_words * 64 - 1,
            recorded: AtomicU64::new(0),
            reset_at: items.max(256).saturating_mul(10),
            resetting: AtomicBool::new(false),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// The sketch's hash of a key (a primary cache key).
    pub fn key(&self, primary: &str) -> u64 {
        self.hasher.hash_one(primary)
    }

    /// Counts one request for `key`.
    pub fn record(&self, key: u64) {
        let bit = key & self.door_mask;
        let word = &self.doorkeeper[(bit / 64) as usize];
        let mask = 1u64 << (bit % 64);
        if word.fetch_or(mask, Ordering::Relaxed) & mask != 0 {
            for row in 0..ROW_SEEDS.len() {
                let counter = &self.counters[self.slot(row, key)];
                let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    (c < MAX_COUNT).then_some(c + 1)
                });
            }
        }
        if self.recorded.fetch_add(1, Ordering::Relaxed) + 1 >= self.reset_at {
            self.age();
        }
    }

    /// Counts `key` as asked for as often as the sketch can count (an operator's prefetch:
    /// the object should be kept).
    pub fn favour(&self, key: u64) {
        let bit = key & self.door_mask;
        self.doorkeeper[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::Relaxed);
        for row in 0..ROW_SEEDS.len() {
            self.counters[self.slot(row, key)].store(MAX_COUNT, Ordering::Relaxed);
        }
    }

    /// How often `key` was recorded lately (0 to 16).
    pub fn estimate(&self, key: u64) -> u8 {
        let bit = key & self.door_mask;
        let seen = self.doorkeeper[(bit / 64) as usize].load(Ordering::Relaxed) & (1 << (bit % 64));
        let counted = (0..ROW_SEEDS.len())
            .map(|row| self.counters[self.slot(row, key)].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        counted + u8::from(seen != 0)
    }

    fn slot(&self, row: usize, key: u64) -> usize {
        let mixed = key.wrapping_mul(ROW_SEEDS[row]).rotate_right(29);
        row * (self.width_mask as usize + 1) + (mixed & self.width_mask) as usize
    }

    /// Halves every counter and clears the doorkeeper (one thread does it; others go on
    /// recording meanwhile, which only blurs the counts a little).
    fn age(&self) {
        if self.resetting.swap(true, Ordering::Acquire) {
            return;
        }
        for counter in self.counters.iter() {
            counter.store(counter.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
        }
        for word in self.doorkeeper.iter() {
            word.store(0, Ordering::Relaxed);
        }
        self.recorded.store(self.reset_at / 2, Ordering::Relaxed);
        self.resetting.store(false, Ordering::Release);
    }
}

/// TinyLFU's rule: a new object displaces `victims` (the entries it would evict, each by
/// its estimated frequency) only if it was asked for more often than every one of them.
/// Ties keep the residents, as Caffeine does: an object seen once does not push out
/// another seen once.
pub fn admit(candidate: u8, victims: impl IntoIterator<Item = u8>) -> bool {
    victims.into_iter().all(|victim| candidate > victim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_it_records_and_nothing_else() {
        let sketch = FrequencySketch::for_items(1000);
        let hot = sketch.key("example.com/hot");
        let cold = sketch.key("example.com/cold");
        for _ in 0..5 {
            sketch.record(hot);
        }
        sketch.record(cold);
        assert_eq!(sketch.estimate(hot), 5);
        assert_eq!(
            sketch.estimate(cold),
            1,
            "the doorkeeper counts a first request"
        );
        assert_eq!(sketch.estimate(sketch.key("example.com/never")), 0);
    }

    #[test]
    fn counters_saturate() {
        let sketch = FrequencySketch::for_items(1000);
        let key = sketch.key("k");
        for _ in 0..100 {
            sketch.record(key);
        }
        assert_eq!(sketch.estimate(key), MAX_COUNT + 1);
    }

    #[test]
    fn old_counts_fade_after_enough_recordings() {
        let sketch = FrequencySketch::for_items(256); // ages every 2560 recordings
        let old = sketch.key("old");
        for _ in 0..8 {
            sketch.record(old);
        }
        assert_eq!(sketch.estimate(old), 8);
        let other = sketch.key("other");
        for _ in 0..2560 {
            sketch.record(other);
        }
        // 7 counted + doorkeeper, halved: 3 counted, doorkeeper cleared.
        assert_eq!(sketch.estimate(old), 3);
    }

    #[test]
    fn estimates_stay_close_over_many_keys() {
        let sketch = FrequencySketch::for_items(10_000);
        for n in 0..10_000u32 {
            let key = sketch.key(&n.to_string());
            for _ in 0..(n % 4) {
                sketch.record(key);
            }
        }
        let over: u32 = (0..10_000u32)
            .map(|n| u32::from(sketch.estimate(sketch.key(&n.to_string()))) - (n % 4))
            .sum();
        assert!(over < 10_000 / 10, "over-counted by {over} in all");
    }

    #[test]
    fn prefetched_keys_beat_anything_counted() {
        let sketch = FrequencySketch::for_items(1000);
        let key = sketch.key("warm-me");
        sketch.favour(key);
        assert!(admit(sketch.estimate(key), [MAX_COUNT]));
    }

    #[test]
    fn admission_needs_more_requests_than_every_victim() {
        assert!(admit(2, [1, 0, 1]));
        assert!(!admit(2, [1, 2]), "a tie keeps the resident");
        assert!(!admit(1, [1]));
        assert!(admit(1, []), "nothing to evict: always");
    }
}
