//! The shared health table: written by checkers, read lock-free by the query path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use super::state::{State, Tracker, Transition};
use crate::cdn::CdnConfig;

/// One edge's health. Reads are atomic loads; writes go through [`HealthTable::record`].
#[derive(Debug)]
pub struct EdgeHealth {
    state: AtomicU8,
    since_ms: AtomicU64,
    successes: AtomicU32,
    failures: AtomicU32,
    /// Whether the edge has a health URL (edges without one are always up).
    checked: AtomicU8,
    /// Serialises writers (a checker being replaced may still record once).
    tracker: Mutex<Tracker>,
    last_error: Mutex<Option<String>>,
}

impl EdgeHealth {
    fn new(state: State, now: SystemTime, checked: bool) -> EdgeHealth {
        EdgeHealth {
            state: AtomicU8::new(state.to_u8()),
            since_ms: AtomicU64::new(unix_ms(now)),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            checked: AtomicU8::new(u8::from(checked)),
            tracker: Mutex::new(Tracker {
                state,
                successes: 0,
                failures: 0,
            }),
            last_error: Mutex::new(None),
        }
    }

    /// Current state (one atomic load).
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Served: up or unknown (one atomic load).
    pub fn is_up(&self) -> bool {
        self.state().is_served()
    }
}

/// A row of [`HealthTable::snapshot`], for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeStatus {
    pub name: String,
    pub state: State,
    /// When the edge entered `state` (or was added).
    pub since: SystemTime,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    /// False for edges without a health URL (always up).
    pub checked: bool,
    /// Why the last failed check failed (cleared by a success).
    pub last_error: Option<String>,
}

type EdgeMap = HashMap<Box<str>, Arc<EdgeHealth>>;

/// Health of every configured edge, keyed by edge name (names survive reloads, indices do
/// not). Lives outside the snapshot; shared as `Arc<HealthTable>`.
///
/// Edges the table does not know are reported up: the query path never fails closed
/// because a reload and its reconcile are a moment apart.
#[derive(Debug, Default)]
pub struct HealthTable {
    edges: ArcSwap<EdgeMap>,
    generation: AtomicU64,
    transitions_up: AtomicU64,
    transitions_down: AtomicU64,
}

impl HealthTable {
    pub fn new() -> HealthTable {
        HealthTable::default()
    }

    /// Whether `edge` is served (up or unknown; true for names the table does not know).
    pub fn is_up(&self, edge: &str) -> bool {
        self.edges.load().get(edge).is_none_or(|h| h.is_up())
    }

    /// The state of `edge`, if the table tracks it.
    pub fn state(&self, edge: &str) -> Option<State> {
        self.edges.load().get(edge).map(|h| h.state())
    }

    /// The live entry of `edge` (its reads are atomic loads).
    pub fn get(&self, edge: &str) -> Option<Arc<EdgeHealth>> {
        self.edges.load().get(edge).cloned()
    }

    /// Entries for `cfg.edges`, by edge index, for a query path that wants no name lookups:
    /// build once per snapshot (after [`HealthChecker::reconcile`](super::HealthChecker)).
    /// Edges unknown to the table are served.
    pub fn view(&self, cfg: &CdnConfig) -> HealthView {
        let edges = self.edges.load();
        HealthView {
            entries: cfg
                .edges
                .iter()
                .map(|e| edges.get(e.name.as_str()).cloned())
                .collect(),
        }
    }

    /// Bumped on every state change and every change of the set of edges: answers cached
    /// under an older generation may be stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Transitions to up (from unknown or down), since start.
    pub fn transitions_up(&self) -> u64 {
        self.transitions_up.load(Ordering::Relaxed)
    }

    /// Transitions to down (from unknown or up), since start.
    pub fn transitions_down(&self) -> u64 {
        self.transitions_down.load(Ordering::Relaxed)
    }

    /// Every edge's status, sorted by name.
    pub fn snapshot(&self) -> Vec<EdgeStatus> {
        let edges = self.edges.load();
        let mut rows: Vec<EdgeStatus> = edges
            .iter()
            .map(|(name, h)| {
                let tracker = *h.tracker.lock().unwrap_or_else(|e| e.into_inner());
                EdgeStatus {
                    name: name.to_string(),
                    state: h.state(),
                    since: UNIX_EPOCH + Duration::from_millis(h.since_ms.load(Ordering::Relaxed)),
                    consecutive_successes: tracker.successes,
                    consecutive_failures: tracker.failures,
                    checked: h.checked.load(Ordering::Relaxed) != 0,
                    last_error: h
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone(),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// Applies one check result to `edge` (rise/fall), publishing state, counts and, on a
    /// transition, the "since" time, the counters and a new generation.
    pub fn record(
        &self,
        edge: &EdgeHealth,
        ok: bool,
        rise: u32,
        fall: u32,
        now: SystemTime,
        error: Option<String>,
    ) -> Option<Transition> {
        let mut tracker = edge.tracker.lock().unwrap_or_else(|e| e.into_inner());
        let transition = tracker.observe(ok, rise, fall);
        edge.successes.store(tracker.successes, Ordering::Relaxed);
        edge.failures.store(tracker.failures, Ordering::Relaxed);
        *edge.last_error.lock().unwrap_or_else(|e| e.into_inner()) = if ok { None } else { error };
        if let Some(t) = transition {
            self.publish(edge, t.to, now);
        }
        transition
    }

    /// Like [`HealthTable::record`], by edge name (no-op for unknown names).
    pub fn record_named(
        &self,
        edge: &str,
        ok: bool,
        rise: u32,
        fall: u32,
        now: SystemTime,
    ) -> Option<Transition> {
        let entry = self.get(edge)?;
        self.record(&entry, ok, rise, fall, now, None)
    }

    fn publish(&self, edge: &EdgeHealth, to: State, now: SystemTime) {
        edge.since_ms.store(unix_ms(now), Ordering::Relaxed);
        edge.state.store(to.to_u8(), Ordering::Release);
        match to {
            State::Up => self.transitions_up.fetch_add(1, Ordering::Relaxed),
            State::Down => self.transitions_down.fetch_add(1, Ordering::Relaxed),
            State::Unknown => 0,
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Makes the table track exactly `cfg`'s edges: new edges start unknown (or up when
    /// they have no health URL), removed edges are dropped, kept edges keep their state.
    /// A kept edge that lost its health URL becomes up. Returns the kept or added entries.
    pub(crate) fn sync(&self, cfg: &CdnConfig, now: SystemTime) -> Vec<Arc<EdgeHealth>> {
        let old = self.edges.load_full();
        let mut next = EdgeMap::with_capacity(cfg.edges.len());
        let mut entries = Vec::with_capacity(cfg.edges.len());
        let mut membership_changed = old.len() != cfg.edges.len();
        for edge in &cfg.edges {
            let checked = edge.health.is_some();
            let entry = match old.get(edge.name.as_str()) {
                Some(entry) => {
                    entry.checked.store(u8::from(checked), Ordering::Relaxed);
                    if !checked {
                        let mut tracker = entry.tracker.lock().unwrap_or_else(|e| e.into_inner());
                        if tracker.state != State::Up {
                            *tracker = Tracker {
                                state: State::Up,
                                successes: 0,
                                failures: 0,
                            };
                            self.publish(entry, State::Up, now);
                        }
                    }
                    Arc::clone(entry)
                }
                None => {
                    membership_changed = true;
                    let state = if checked { State::Unknown } else { State::Up };
                    Arc::new(EdgeHealth::new(state, now, checked))
                }
            };
            next.insert(edge.name.as_str().into(), Arc::clone(&entry));
            entries.push(entry);
        }
        self.edges.store(Arc::new(next));
        if membership_changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        entries
    }

    /// Forget every edge: the configuration that listed them is gone.
    pub(crate) fn clear(&self) {
        let old = self.edges.swap(Arc::new(EdgeMap::new()));
        if !old.is_empty() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Health by edge index for one configuration (see [`HealthTable::view`]).
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    entries: Vec<Option<Arc<EdgeHealth>>>,
}

impl HealthView {
    /// Whether edge `index` is served (true for indices or edges the table does not know).
    pub fn is_up(&self, index: usize) -> bool {
        self.entries
            .get(index)
            .and_then(Option::as_ref)
            .is_none_or(|h| h.is_up())
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
