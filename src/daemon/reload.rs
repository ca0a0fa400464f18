//! The reload path: what triggers a reload (file changes through [`crate::watch`], SIGHUP,
//! the admin `POST /reload`) and how it is applied.
//!
//! Every trigger runs the same [`Reloader::reload`]: parse and validate *all* sources into a
//! new [`Snapshot`] off the async runtime, then swap it in with one `ArcSwap::store`. On any
//! error the old snapshot keeps serving; the error is logged, counted, and kept for
//! `/status`. Reloads are serialised so two triggers never race.
//!
//! Nothing a query touches waits on a reload: the new snapshot is built on a blocking
//! thread, the swap is one atomic pointer store (readers never lock), and the replaced
//! snapshot is freed by the reloader's retire thread ([`Retirer`]), never by a query thread
//! that happened to hold it last (freeing a million-record zone takes long enough to stall
//! a UDP worker's whole batch).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::snapshot::Shared;
use crate::snapshot::{Snapshot, Sources};
use crate::watch::{self, Batch, RecursiveMode, Watch, WatchError};

/// How long file events settle before a reload: an editor's write-rename-chmod, or an
/// operator copying several files, becomes one reload.
pub const DEBOUNCE: Duration = watch::SETTLE;

/// The longest a change waits for its reload while edits keep coming.
pub const MAX_WAIT: Duration = watch::MAX_WAIT;

/// The outcome of the last reload attempt, for `/status`.
#[derive(Clone, Debug)]
pub struct ReloadOutcome {
    pub at: SystemTime,
    pub trigger: &'static str,
    /// The new generation, or every error found (one `FILE:LINE: message` per line).
    pub result: Result<u64, String>,
}

/// Called with each new snapshot just before it is swapped in (the health checker takes the
/// new edges and attaches their health this way).
pub type BeforeSwap = Box<dyn Fn(&mut Snapshot) + Send + Sync>;

/// Called with the old and the new snapshot once the new one serves (secondaries are
/// notified of changed zones this way).
pub type AfterSwap = Box<dyn Fn(&Snapshot, &Snapshot) + Send + Sync>;

/// Applies reloads to the shared snapshot.
pub struct Reloader {
    shared: Arc<Shared>,
    sources: Sources,
    last: Mutex<Option<ReloadOutcome>>,
    serial: tokio::sync::Mutex<()>,
    /// Reloads begun so far (for coalescing triggers).
    started: AtomicU64,
    /// When the last reload began reading the files.
    last_started: Mutex<Option<Instant>>,
    before_swap: Option<BeforeSwap>,
    after_swap: Option<AfterSwap>,
    retirer: Retirer<Snapshot>,
}

impl Reloader {
    pub fn new(
        shared: Arc<Shared>,
        sources: Sources,
        before_swap: Option<BeforeSwap>,
        after_swap: Option<AfterSwap>,
    ) -> Reloader {
        Reloader {
            shared,
            sources,
            last: Mutex::new(None),
            serial: tokio::sync::Mutex::new(()),
            started: AtomicU64::new(0),
            last_started: Mutex::new(None),
            before_swap,
            after_swap,
            retirer: Retirer::start(),
        }
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// When the last reload began reading the files.
    pub fn last_started(&self) -> Option<Instant> {
        *self.last_started.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last reload's outcome; `None` before the first reload after startup.
    pub fn last_outcome(&self) -> Option<ReloadOutcome> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Load everything anew and swap it in, or keep the old snapshot and report why not.
    ///
    /// Triggers that arrive while a reload runs are coalesced: once the lock is ours, if a
    /// reload *started* after this request was made, it read the files after whatever change
    /// prompted this request, so its outcome is this request's outcome too.
    pub async fn reload(&self, trigger: &'static str) -> Result<u64, String> {
        let ticket = self.started.load(Ordering::Acquire);
        let _one_at_a_time = self.serial.lock().await;
        if self.started.load(Ordering::Acquire) > ticket
            && let Some(outcome) = self.last_outcome()
        {
            tracing::debug!(trigger, "reload coalesced with one that started after it");
            return outcome.result;
        }
        self.started.fetch_add(1, Ordering::AcqRel);
        *self.last_started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let previous = self.shared.snapshot.load_full();
        let generation = previous.generation + 1;
        let sources = self.sources.clone();
        let started = std::time::Instant::now();
        let loaded = load_in_background(move || {
            Snapshot::load(&sources, generation, Some(&previous)).map_err(|e| e.to_string())
        })
        .await;
        let result = match loaded {
            Ok(mut snapshot) => {
                if let Some(hook) = &self.before_swap {
                    hook(&mut snapshot);
                }
                let old = self.shared.snapshot.swap(Arc::new(snapshot));
                if let Some(hook) = &self.after_swap {
                    hook(&old, &self.shared.snapshot.load());
                }
                self.retirer.retire(old);
                self.shared
                    .metrics
                    .reloads_ok
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    generation,
                    trigger,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "reloaded"
                );
                Ok(generation)
            }
            Err(errors) => {
                self.shared
                    .metrics
                    .reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    trigger,
                    "reload refused, still serving generation {}:\n{errors}",
                    generation - 1
                );
                Err(errors)
            }
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(ReloadOutcome {
            at: SystemTime::now(),
            trigger,
            result: result.clone(),
        });
        result
    }

    /// Start watching the sources. Returns once the watches are in place, so no edit made
    /// after this returns can be missed; [`Watcher::run`] then reloads on each change.
    pub fn watch(self: &Arc<Self>) -> Result<Watcher, WatchError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Batch>();
        let relevant = {
            let (shared, sources) = (self.shared.clone(), self.sources.clone());
            move |path: &Path| sources.is_relevant(path, &shared.snapshot.load().watched_files())
        };
        let watch = Watch::new(DEBOUNCE, MAX_WAIT, relevant, move |batch| {
            let _ = tx.send(batch);
        })?;
        // Installed now, not in `run`: a SIGHUP before then would otherwise kill the process.
        #[cfg(unix)]
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| notify::Error::generic(&format!("cannot handle SIGHUP: {e}")))?;
        let mut watcher = Watcher {
            reloader: self.clone(),
            watch,
            rx,
            watched: Vec::new(),
            #[cfg(unix)]
            hangup,
        };
        watcher.add(&self.sources.zones_dir.clone(), RecursiveMode::Recursive);
        watcher.follow_snapshot();
        Ok(watcher)
    }
}

/// File watches on the sources, feeding reloads.
pub struct Watcher {
    reloader: Arc<Reloader>,
    watch: Watch,
    rx: tokio::sync::mpsc::UnboundedReceiver<Batch>,
    watched: Vec<PathBuf>,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Watcher {
    fn add(&mut self, dir: &Path, mode: RecursiveMode) {
        if self.watched.iter().any(|w| w == dir) {
            return;
        }
        match self.watch.add(dir, mode) {
            Ok(()) => self.watched.push(dir.to_path_buf()),
            Err(e) => tracing::warn!("cannot watch {}: {e}", dir.display()),
        }
    }

    /// Watch the directories of included files and of the GeoIP file outside the zones
    /// directory (which is watched whole).
    fn follow_snapshot(&mut self) {
        let sources = self.reloader.sources.clone();
        let snapshot = self.reloader.shared.snapshot.load();
        let dirs: Vec<PathBuf> = snapshot
            .watched_files()
            .iter()
            .chain(sources.geoip.iter())
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .filter(|d| !d.starts_with(&sources.zones_dir))
            .collect();
        for dir in dirs {
            self.add(&dir, RecursiveMode::NonRecursive);
        }
    }

    /// Reload on file changes and SIGHUP until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> std::io::Result<()> {
        loop {
            #[cfg(unix)]
            let sighup = self.hangup.recv();
            #[cfg(not(unix))]
            let sighup = std::future::pending::<Option<()>>();
            let trigger = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = sighup => "SIGHUP",
                batch = self.rx.recv() => {
                    let Some(mut batch) = batch else { return Ok(()) };
                    // Batches that piled up during the last reload make one reload, not many.
                    while let Ok(more) = self.rx.try_recv() {
                        batch.last = batch.last.max(more.last);
                    }
                    match self.reloader.last_started() {
                        // A reload (SIGHUP, POST) that began after the change already read it.
                        Some(started) if started > batch.last => continue,
                        _ => "file change",
                    }
                }
            };
            if self.reloader.reload(trigger).await.is_ok() {
                self.follow_snapshot();
            }
        }
    }
}

/// Frees replaced snapshots on a thread of its own.
///
/// A query thread may still hold the snapshot a reload replaced (a UDP worker holds one for
/// a batch, a zone transfer for the whole transfer): ArcSwap pays those readers' debts with
/// real references during the swap, so whoever drops the last reference frees the
/// snapshot. The retire thread keeps one reference and lets go of it only through
/// [`Arc::try_unwrap`], which succeeds only when that reference is the last: nobody else
/// can then obtain one (the snapshot is out of the `ArcSwap`, and no `Weak` to it exists),
/// so the free happens here, always. There is no time bound after which it gives up and
/// hands the free back to a query: a snapshot held for a long transfer just waits longer.
struct Retirer<T: Send + Sync + 'static> {
    tx: mpsc::Sender<Arc<T>>,
}

/// Runs a load on a thread of its own at background priority, so that on a busy machine
/// the query threads get the CPU first and a reload never makes them wait: a large zone
/// takes a core for a second or more, and on a two-core machine under load the workers
/// would otherwise queue behind it.
async fn load_in_background<R: Send + 'static>(
    load: impl FnOnce() -> Result<R, String> + Send + 'static,
) -> Result<R, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("meridian-load".into())
        .spawn(move || {
            background_priority();
            let _ = tx.send(load());
        })
        .map_err(|e| format!("cannot start the reload thread: {e}"))?;
    rx.await
        .map_err(|_| "the reload thread ended without a result".to_owned())?
}

/// Lowers the calling thread's CPU priority (nice 10) where the system allows it; the
/// thread then runs whenever a query thread does not need the core.
fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id has no memory effects; failure (a
    // sandbox that forbids it) leaves the priority as it was, which is harmless.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// How often the retire thread looks again at a snapshot still in use: soon at first
/// (queries let go within a batch), then less often (a zone transfer may take minutes).
const RETIRE_FIRST_LOOK: Duration = Duration::from_millis(1);
const RETIRE_LONGEST_LOOK: Duration = Duration::from_millis(100);

impl<T: Send + Sync + 'static> Retirer<T> {
    fn start() -> Retirer<T> {
        let (tx, rx) = mpsc::channel::<Arc<T>>();
        // The thread ends once the reloader is gone and every snapshot it was given is freed.
        let spawned = std::thread::Builder::new()
            .name("meridian-retire".into())
            .spawn(move || retire_loop(rx));
        if let Err(e) = spawned {
            // Without it, replaced snapshots are freed by whoever holds them last, as
            // before; serving goes on.
            tracing::error!("cannot start the snapshot retire thread: {e}");
        }
        Retirer { tx }
    }

    fn retire(&self, old: Arc<T>) {
        if let Err(mpsc::SendError(old)) = self.tx.send(old) {
            // No retire thread (it could not start): free it from this reload task then.
            drop(old);
        }
    }
}

fn retire_loop<T>(rx: mpsc::Receiver<Arc<T>>) {
    background_priority();
    let mut held: Vec<Arc<T>> = Vec::new();
    let mut look = RETIRE_FIRST_LOOK;
    let mut open = true;
    while open || !held.is_empty() {
        let received = if held.is_empty() {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else if open {
            rx.recv_timeout(look)
        } else {
            std::thread::sleep(look);
            Err(mpsc::RecvTimeoutError::Timeout)
        };
        match received {
            Ok(old) => {
                held.push(old);
                look = RETIRE_FIRST_LOOK;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => look = (look * 2).min(RETIRE_LONGEST_LOOK),
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        held = held
            .into_iter()
            .filter_map(|old| match Arc::try_unwrap(old) {
                Ok(last) => {
                    let started = Instant::now();
                    drop(last);
                    tracing::debug!(
                        freed_ms = started.elapsed().as_millis() as u64,
                        "replaced snapshot freed"
                    );
                    None
                }
                Err(still_used) => Some(still_used),
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A load runs off the runtime, on its own thread, below the query threads' priority;
    /// its error comes back as the reload's error.
    #[tokio::test]
    async fn loads_run_on_a_background_priority_thread() {
        let seen = load_in_background(|| {
            let name = std::thread::current().name().map(str::to_string);
            #[cfg(target_os = "linux")]
            // SAFETY: reads this thread's own priority.
            let nice =
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            #[cfg(not(target_os = "linux"))]
            let nice = 10;
            Ok((name, nice))
        })
        .await
        .unwrap();
        assert_eq!(seen.0.as_deref(), Some("meridian-load"));
        assert!(seen.1 >= 10, "nice {} on the load thread", seen.1);
        let failed = load_in_background(|| Err::<(), _>("bad zone".to_owned())).await;
        assert_eq!(failed, Err("bad zone".to_owned()));
    }

    /// Reports the thread it is dropped on.
    struct Probe(Mutex<mpsc::Sender<Option<String>>>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let name = std::thread::current().name().map(str::to_string);
            let _ = self.0.lock().unwrap().send(name);
        }
    }

    /// The reference a query thread still holds when the reload retires its snapshot is
    /// never the one that frees it: the retire thread waits for it and frees it itself.
    #[test]
    fn a_snapshot_held_by_a_query_is_freed_on_the_retire_thread() {
        let retirer = Retirer::start();
        for _ in 0..20 {
            let (tx, freed) = mpsc::channel();
            let old = Arc::new(Probe(Mutex::new(tx)));
            let (held, release) = (old.clone(), mpsc::channel::<()>());
            let (release_tx, release_rx) = release;
            let query = std::thread::Builder::new()
                .name("query".into())
                .spawn(move || {
                    release_rx.recv().unwrap();
                    drop(held);
                })
                .unwrap();
            retirer.retire(old);
            release_tx.send(()).unwrap();
            query.join().unwrap();
            let on = freed.recv_timeout(Duration::from_secs(20)).unwrap();
            assert_eq!(on.as_deref(), Some("meridian-retire"));
        }
    }

    #[test]
    fn an_unshared_snapshot_is_freed_on_the_retire_thread_too() {
        let retirer = Retirer::start();
        let (tx, freed) = mpsc::channel();
        retirer.retire(Arc::new(Probe(Mutex::new(tx))));
        let on = freed.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(on.as_deref(), Some("meridian-retire"));
    }
}
