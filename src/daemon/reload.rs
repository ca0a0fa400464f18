//! The reload path: what triggers a reload (file changes through [`crate::watch`], SIGHUP,
//! the admin `POST /reload`) and how it is applied.
//!
//! Every trigger runs the same [`Reloader::reload`]: parse and validate *all* sources into a
//! new [`Snapshot`] off the async runtime, then swap it in with one `ArcSwap::store`. On any
//! error the old snapshot keeps serving; the error is logged, counted, and kept for
//! `/status`. Reloads are serialised so two triggers never race.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
        let loaded = tokio::task::spawn_blocking(move || {
            Snapshot::load(&sources, generation, Some(&previous))
        })
        .await
        .map_err(|e| format!("reload task failed: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
        let result = match loaded {
            Ok(mut snapshot) => {
                if let Some(hook) = &self.before_swap {
                    hook(&mut snapshot);
                }
                let old = self.shared.snapshot.swap(Arc::new(snapshot));
                if let Some(hook) = &self.after_swap {
                    hook(&old, &self.shared.snapshot.load());
                }
                retire(old);
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

/// Free a replaced snapshot on a blocking thread, not on the query path: freeing a
/// million-record zone takes long enough to stall a UDP worker that happened to hold the
/// last reference. Queries hold a snapshot only for one batch, so the wait for them to let
/// go is short; it is bounded, and past the bound whoever holds it last frees it.
fn retire(old: Arc<Snapshot>) {
    tokio::task::spawn_blocking(move || {
        for _ in 0..100_000 {
            if Arc::strong_count(&old) == 1 {
                break;
            }
            std::thread::yield_now();
        }
        drop(old);
    });
}
