//! File watching for reloads, shared by both binaries: the DNS daemon's zones directory
//! ([`crate::daemon::reload`]) and the edge's `cdn.toml` ([`crate::edge::zones`]).
//!
//! ```text
//! notify (inotify, ...) -> relevant? -> Debounce (pure: settle + max wait) -> on_batch(Batch)
//!      notify's thread                    the watch's own thread
//! ```
//!
//! [`Debounce`] owns the decision of *when* to fire, and nothing else: it takes change
//! times and `now` as arguments and never reads the clock, so its tests need no sleeps. A
//! burst of edits (an editor's write-rename-chmod, an operator copying several files)
//! settles for [`SETTLE`] after its last event and becomes one batch; edits that never stop
//! (a file rewritten every 100 ms for minutes) still fire at most [`MAX_WAIT`] after the
//! first change not yet delivered, so a reload is never starved by the edits that call for
//! it. [`Watch`] is the thin plumbing around it: the `notify` watcher, a filter of which
//! paths matter, and one thread that waits for the decision's deadline and hands each
//! batch to the caller. Dropping the [`Watch`] stops watching and ends its thread.
//!
//! It does not reload anything itself, and what a batch means (which files, whether a
//! reload already read them) is the caller's.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use notify::RecursiveMode;
use notify::Watcher as _;

/// How long file events settle before a batch fires: a burst of events becomes one batch.
pub const SETTLE: Duration = Duration::from_millis(150);

/// The longest a change waits for its batch while events keep arriving.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// The "when to fire" decision: changes in, a batch out once they have settled or the
/// oldest one has waited long enough. Pure: time is an argument.
#[derive(Clone, Debug)]
pub struct Debounce {
    settle: Duration,
    max_wait: Duration,
    /// The first and the last change not yet delivered.
    pending: Option<(Instant, Instant)>,
}

/// Changes delivered together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The changed paths that passed the filter, in arrival order, each once; empty when
    /// the watcher lost track (an error or an event queue overflow: anything may have
    /// changed).
    pub paths: Vec<PathBuf>,
    /// When the first and the last of its changes arrived.
    pub first: Instant,
    pub last: Instant,
}

impl Debounce {
    pub fn new(settle: Duration, max_wait: Duration) -> Debounce {
        Debounce {
            settle,
            max_wait,
            pending: None,
        }
    }

    /// A change arrived at `at`.
    pub fn change(&mut self, at: Instant) {
        self.pending = Some(match self.pending {
            None => (at, at),
            Some((first, last)) => (first.min(at), last.max(at)),
        });
    }

    /// When the pending changes are due: `settle` after the last one, but never later than
    /// `max_wait` after the first. `None` when nothing is pending.
    pub fn due(&self) -> Option<Instant> {
        self.pending
            .map(|(first, last)| (last + self.settle).min(first + self.max_wait))
    }

    /// If the pending changes are due at `now`, take them: returns the first and the last
    /// change time, and starts afresh.
    pub fn fire(&mut self, now: Instant) -> Option<(Instant, Instant)> {
        if self.due()? <= now {
            self.pending.take()
        } else {
            None
        }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WatchError(#[from] notify::Error);

/// One change as the watch's thread receives it from `notify`'s.
enum Raw {
    /// A relevant path changed.
    Path(PathBuf, Instant),
    /// The watcher lost events: anything may have changed.
    Lost(Instant),
}

/// A debounced watch on directories. Dropping it stops watching.
pub struct Watch {
    watcher: notify::RecommendedWatcher,
}

impl Watch {
    /// Start a watch (on nothing yet: see [`Watch::add`]). `relevant` says which changed
    /// paths count (it runs on `notify`'s thread for every event); `on_batch` gets each
    /// batch on the watch's own thread, in order, one at a time.
    pub fn new(
        settle: Duration,
        max_wait: Duration,
        relevant: impl Fn(&Path) -> bool + Send + 'static,
        on_batch: impl FnMut(Batch) + Send + 'static,
    ) -> Result<Watch, WatchError> {
        let (tx, rx) = mpsc::channel::<Raw>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let now = Instant::now();
            match event {
                // Opening and reading a file (every reload does) is no change.
                Ok(event) if event.kind.is_access() => {}
                Ok(event) if event.need_rescan() => {
                    let _ = tx.send(Raw::Lost(now));
                }
                Ok(event) => {
                    for path in event.paths.into_iter().filter(|p| relevant(p)) {
                        let _ = tx.send(Raw::Path(path, now));
                    }
                }
                Err(error) => {
                    tracing::warn!("file watch: {error}; reloading in case");
                    let _ = tx.send(Raw::Lost(now));
                }
            }
        })?;
        std::thread::Builder::new()
            .name("meridian-watch".into())
            .spawn(move || deliver(Debounce::new(settle, max_wait), rx, on_batch))
            .map_err(|e| notify::Error::generic(&format!("cannot start the watch thread: {e}")))?;
        Ok(Watch { watcher })
    }

    /// Watch `path` too (a directory: its entries; `Recursive`: and below). Changes made
    /// after this returns are seen.
    pub fn add(&mut self, path: &Path, mode: RecursiveMode) -> Result<(), WatchError> {
        Ok(self.watcher.watch(path, mode)?)
    }
}

/// The watch's thread: feed the decision, sleep until its deadline, hand out batches. Ends
/// when the `notify` watcher (the only sender) is dropped.
fn deliver(mut debounce: Debounce, rx: mpsc::Receiver<Raw>, mut on_batch: impl FnMut(Batch)) {
    let mut paths: Vec<PathBuf> = Vec::new();
    loop {
        let received = match debounce.due() {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(Raw::Path(path, at)) => {
                debounce.change(at);
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
            Ok(Raw::Lost(at)) => debounce.change(at),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if let Some((first, last)) = debounce.fire(Instant::now()) {
            on_batch(Batch {
                paths: std::mem::take(&mut paths),
                first,
                last,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn debounce() -> Debounce {
        Debounce::new(SETTLE, MAX_WAIT)
    }

    #[test]
    fn nothing_pending_is_never_due() {
        let mut d = debounce();
        let t0 = Instant::now();
        assert_eq!(d.due(), None);
        assert_eq!(d.fire(t0 + Duration::from_secs(3600)), None);
    }

    #[test]
    fn one_change_fires_once_it_has_settled() {
        let mut d = debounce();
        let t0 = Instant::now();
        d.change(t0);
        assert_eq!(d.due(), Some(t0 + SETTLE));
        assert_eq!(d.fire(t0 + ms(149)), None);
        assert_eq!(d.fire(t0 + ms(150)), Some((t0, t0)));
        assert_eq!(d.due(), None, "fired changes are gone");
        assert_eq!(d.fire(t0 + ms(1000)), None);
    }

    #[test]
    fn a_burst_settles_after_its_last_event_and_fires_once() {
        let mut d = debounce();
        let t0 = Instant::now();
        for i in 0..5 {
            d.change(t0 + ms(20 * i));
            assert_eq!(d.fire(t0 + ms(20 * i)), None);
        }
        assert_eq!(d.fire(t0 + ms(80 + 149)), None);
        assert_eq!(d.fire(t0 + ms(80 + 150)), Some((t0, t0 + ms(80))));
    }

    /// The starvation this module exists for: an edit every 100 ms never settles, yet a
    /// batch fires every `MAX_WAIT` from its first change, and the last edit's batch fires
    /// once the edits stop.
    #[test]
    fn edits_that_never_stop_fire_every_max_wait() {
        let mut d = debounce();
        let t0 = Instant::now();
        let mut fired = Vec::new();
        for i in 0..=100u64 {
            let now = t0 + ms(100 * i);
            // The watch thread checks at every event and at every deadline in between.
            if let Some(due) = d.due()
                && due < now
                && let Some(batch) = d.fire(due)
            {
                fired.push((due, batch));
            }
            d.change(now);
            if let Some(batch) = d.fire(now) {
                fired.push((now, batch));
            }
        }
        let last = t0 + ms(10_000);
        let end = d.due().expect("the last edit is pending");
        assert_eq!(end, last + SETTLE);
        fired.push((end, d.fire(end).unwrap()));
        assert!(fired.len() >= 9, "{} batches in 10 s", fired.len());
        for (at, (first, _)) in &fired[..fired.len() - 1] {
            assert!(
                *at - *first <= MAX_WAIT,
                "a change waited {:?}",
                *at - *first
            );
        }
        // Every change is in exactly one batch: each batch starts after the previous ended.
        for pair in fired.windows(2) {
            assert!(pair[1].1.0 > pair[0].1.1);
        }
        assert_eq!(fired.last().unwrap().1.1, last);
    }

    #[test]
    fn a_late_reported_change_does_not_move_the_first_one() {
        let mut d = debounce();
        let t0 = Instant::now();
        d.change(t0 + ms(50));
        d.change(t0);
        assert_eq!(d.due(), Some(t0 + ms(50) + SETTLE));
        assert_eq!(d.fire(t0 + ms(200)), Some((t0, t0 + ms(50))));
    }

    #[test]
    fn max_wait_shorter_than_settle_wins() {
        let mut d = Debounce::new(ms(500), ms(100));
        let t0 = Instant::now();
        d.change(t0);
        assert_eq!(d.due(), Some(t0 + ms(100)));
    }
}
