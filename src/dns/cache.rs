//! A per-worker cache of encoded answers, keyed by the query's own bytes.
//!
//! An answer is a pure function of the query bytes after the ID, the snapshot, the health
//! table and, for scheduled names asked without ECS, the client's address. So the UDP
//! worker keeps the encoded answer of each query it has seen, and answers a repeat by
//! copying it and patching the ID: no decode, no lookup, no encode, no allocation. Entries
//! are dropped whole when the snapshot or health generation changes; a full cache takes
//! no new entries until then. Keys are exact bytes, so a query whose name differs only in case
//! (0x20 randomisation) is a different entry and gets its own, exact, answer.
//!
//! Only answers from hickory's path and scheduled answers are kept: the fast path
//! ([`super::fast`]) answers a zone name at about the cost of a replay, and storing (two
//! allocations) would cost more than it saves on traffic that never repeats.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::daemon::metrics::ScheduledCount;

/// Entries per worker before the cache starts over.
const MAX_ENTRIES: usize = 100_000;

/// Whether, and how, an answer may be replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cacheability {
    /// Depends on the query bytes only.
    Static,
    /// Depends on the client's source address too (scheduled, without ECS).
    PerSource,
    /// Not worth keeping (malformed input).
    Never,
}

/// What a cached answer counts as in the metrics (type and response codes as numbers).
#[derive(Clone, Copy, Debug)]
pub struct Counted {
    pub qtype: Option<u16>,
    pub rcode: u16,
    pub truncated: bool,
    pub scheduled: Option<ScheduledCount>,
}

/// A cached answer: what it counts as, and its bytes.
type Replay = (Counted, Box<[u8]>);

enum Slot {
    Answer(Counted, Box<[u8]>),
    /// The answer depends on the source: look in `per_source`.
    PerSource,
}

/// One worker's answers.
#[derive(Default)]
pub struct AnswerCache {
    generation: (u64, u64),
    by_query: HashMap<Box<[u8]>, Slot>,
    per_source: HashMap<Box<[u8]>, Replay>,
    key: Vec<u8>,
}

impl AnswerCache {
    /// Write the cached answer to `query` (ID patched) into `out`; `None` on a miss.
    /// `generation` is (snapshot, health): a change empties the cache.
    pub fn answer(
        &mut self,
        generation: (u64, u64),
        query: &[u8],
        src: IpAddr,
        out: &mut Vec<u8>,
    ) -> Option<Counted> {
        if generation != self.generation {
            self.clear(generation);
            return None;
        }
        if query.len() < 12 || self.by_query.is_empty() {
            return None;
        }
        let (counted, bytes) = match self.by_query.get(&query[2..])? {
            Slot::Answer(counted, bytes) => (*counted, bytes),
            Slot::PerSource => {
                source_key(&mut self.key, query, src);
                let (counted, bytes) = self.per_source.get(self.key.as_slice())?;
                (*counted, bytes)
            }
        };
        out.clear();
        out.extend_from_slice(bytes);
        out[..2].copy_from_slice(&query[..2]);
        Some(counted)
    }

    /// Keep the answer just computed for `query`.
    pub fn store(
        &mut self,
        generation: (u64, u64),
        query: &[u8],
        src: IpAddr,
        how: Cacheability,
        counted: Counted,
        answer: &[u8],
    ) {
        if generation != self.generation {
            self.clear(generation);
        }
        if query.len() < 12 || answer.len() < 12 || how == Cacheability::Never {
            return;
        }
        // Full: keep what is there until the next generation. Traffic that never repeats
        // (random subdomains, ECS from everywhere) then costs one failed lookup per query
        // instead of a store and, every MAX_ENTRIES queries, dropping them all.
        if self.by_query.len() + self.per_source.len() >= MAX_ENTRIES {
            return;
        }
        let key: Box<[u8]> = query[2..].into();
        match how {
            Cacheability::Static => {
                self.by_query
                    .insert(key, Slot::Answer(counted, answer.into()));
            }
            Cacheability::PerSource => {
                self.by_query.insert(key, Slot::PerSource);
                source_key(&mut self.key, query, src);
                self.per_source
                    .insert(self.key.as_slice().into(), (counted, answer.into()));
            }
            Cacheability::Never => {}
        }
    }

    fn clear(&mut self, generation: (u64, u64)) {
        self.generation = generation;
        self.by_query.clear();
        self.per_source.clear();
    }
}

fn source_key(key: &mut Vec<u8>, query: &[u8], src: IpAddr) {
    key.clear();
    key.extend_from_slice(&query[2..]);
    match src {
        IpAddr::V4(a) => key.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => key.extend_from_slice(&a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &[u8] = &[
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
    ];
    const COUNTED: Counted = Counted {
        qtype: Some(1),
        rcode: 0,
        truncated: false,
        scheduled: None,
    };

    fn answer_bytes() -> Vec<u8> {
        let mut a = Q.to_vec();
        a[2] |= 0x80;
        a
    }

    #[test]
    fn replays_with_the_new_id() {
        let mut cache = AnswerCache::default();
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let mut out = Vec::new();
        assert!(cache.answer((1, 0), Q, src, &mut out).is_none());
        cache.store(
            (1, 0),
            Q,
            src,
            Cacheability::Static,
            COUNTED,
            &answer_bytes(),
        );
        let mut again = Q.to_vec();
        again[..2].copy_from_slice(&[0xbe, 0xef]);
        assert!(cache.answer((1, 0), &again, src, &mut out).is_some());
        assert_eq!(&out[..2], &[0xbe, 0xef]);
        assert_eq!(&out[2..], &answer_bytes()[2..]);
    }

    #[test]
    fn a_new_generation_forgets_everything() {
        let mut cache = AnswerCache::default();
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        cache.store(
            (1, 0),
            Q,
            src,
            Cacheability::Static,
            COUNTED,
            &answer_bytes(),
        );
        let mut out = Vec::new();
        assert!(
            cache.answer((1, 1), Q, src, &mut out).is_none(),
            "health changed"
        );
        cache.store(
            (1, 1),
            Q,
            src,
            Cacheability::Static,
            COUNTED,
            &answer_bytes(),
        );
        assert!(
            cache.answer((2, 1), Q, src, &mut out).is_none(),
            "snapshot changed"
        );
    }

    #[test]
    fn per_source_answers_are_kept_per_source() {
        let mut cache = AnswerCache::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "198.51.100.1".parse().unwrap();
        cache.store(
            (1, 0),
            Q,
            a,
            Cacheability::PerSource,
            COUNTED,
            &answer_bytes(),
        );
        let mut out = Vec::new();
        assert!(cache.answer((1, 0), Q, a, &mut out).is_some());
        assert!(cache.answer((1, 0), Q, b, &mut out).is_none());
    }

    #[test]
    fn never_is_never_kept() {
        let mut cache = AnswerCache::default();
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        cache.store(
            (1, 0),
            Q,
            src,
            Cacheability::Never,
            COUNTED,
            &answer_bytes(),
        );
        assert!(cache.answer((1, 0), Q, src, &mut Vec::new()).is_none());
    }
}
