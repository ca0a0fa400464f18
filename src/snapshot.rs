//! One immutable view of everything a query needs — zones, CDN configuration, GeoIP
//! database — built aside by [`Snapshot::load`] and swapped in whole by the reload path.
//!
//! A query loads the current snapshot once and uses that one to the end, so it never sees
//! half of a reload. Startup and every reload run the same `load` (parse + validate all
//! files); on any error nothing is swapped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::cdn::CdnConfig;
use crate::daemon::metrics::{EdgeCounters, Metrics};
use crate::dns::transfer::TransferPolicy;
use crate::geo::GeoDb;
use crate::health::{HealthTable, HealthView};
use crate::zone::{ZoneErrors, ZoneSet};

/// Where the data comes from: the command line's `--zones` and `--geoip`.
#[derive(Clone, Debug)]
pub struct Sources {
    pub zones_dir: PathBuf,
    pub geoip: Option<PathBuf>,
}

impl Sources {
    /// Sources with absolute paths (file events arrive with absolute paths). The zones
    /// directory must exist; a GeoIP file that does not is left as given (reported at load).
    pub fn new(zones_dir: &Path, geoip: Option<&Path>) -> std::io::Result<Sources> {
        let zones_dir = zones_dir.canonicalize().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("zones directory {}: {e}", zones_dir.display()),
            )
        })?;
        let geoip = geoip.map(|g| g.canonicalize().unwrap_or_else(|_| g.to_path_buf()));
        Ok(Sources { zones_dir, geoip })
    }

    /// `cdn.toml` inside the zones directory.
    pub fn cdn_config(&self) -> PathBuf {
        self.zones_dir.join("cdn.toml")
    }

    /// Does a change to `path` call for a reload? Zone files, `cdn.toml`, files the zones
    /// include, and the GeoIP database; not editor swap files or other strays.
    pub fn is_relevant(&self, path: &Path, included: &[PathBuf]) -> bool {
        let in_zones_dir = path.parent() == Some(self.zones_dir.as_path());
        (in_zones_dir
            && (path.extension().is_some_and(|e| e == "zone")
                || path.file_name().is_some_and(|n| n == "cdn.toml")))
            || included.iter().any(|f| f == path)
            || self.geoip.as_deref() == Some(path)
    }
}

/// What the query path shares: the current snapshot, the counters and edge health.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Metrics,
    /// Edge health, outside the snapshot: it survives reloads.
    pub health: Arc<HealthTable>,
    /// Who may transfer zones (AXFR and IXFR over TCP, IXFR's SOA over UDP).
    pub transfer: TransferPolicy,
}

impl Shared {
    /// Changes whenever an edge's health changes (answer caches key on it).
    pub fn health_generation(&self) -> u64 {
        self.health.generation()
    }
}

/// Everything one query needs, immutable.
pub struct Snapshot {
    /// Increases by one with every successful load; 1 is the startup load.
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub zones: ZoneSet,
    /// The scheduling configuration; `None` without `cdn.toml` (a plain authoritative server).
    pub cdn: Option<Arc<CdnConfig>>,
    /// The GeoIP database; `None` when the file does not exist (every client is then placed
    /// in `[cdn].default_country`).
    pub geo: Option<Arc<GeoFile>>,
    /// Health of `cdn.edges`, by edge index (set by the daemon once the health checker has
    /// taken this configuration; empty means every edge is served).
    pub health: HealthView,
    /// The scheduled-answer counters of `cdn.edges`, by edge index (set by the daemon with
    /// the health view; empty: counted by name, see [`Metrics::count_scheduled`]).
    pub edge_counters: EdgeCounters,
}

/// An open GeoIP database and what identifies the file it came from, so that a reload can
/// reuse it when the file has not changed.
pub struct GeoFile {
    pub db: GeoDb,
    pub path: PathBuf,
    stamp: FileStamp,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// Why a load was refused: every problem found, each on its own line as `FILE:LINE: message`.
#[derive(Debug)]
pub struct LoadError {
    pub lines: Vec<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(line)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

impl From<ZoneErrors> for LoadError {
    fn from(errors: ZoneErrors) -> Self {
        LoadError {
            lines: errors.to_string().lines().map(str::to_string).collect(),
        }
    }
}

impl Snapshot {
    /// Parse and validate every source into a new snapshot. Reports every error of every
    /// file at once. `previous` lets an unchanged GeoIP file be reused instead of re-read.
    pub fn load(
        sources: &Sources,
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, LoadError> {
        let mut lines = Vec::new();
        let zones = match ZoneSet::load_dir(&sources.zones_dir) {
            Ok(zones) => Some(zones),
            Err(errors) => {
                lines.extend(LoadError::from(errors).lines);
                None
            }
        };
        let cdn_path = sources.cdn_config();
        let cdn = if cdn_path.exists() {
            match CdnConfig::load(&cdn_path) {
                Ok(cfg) => {
                    for warning in &cfg.warnings {
                        tracing::warn!("{warning}");
                    }
                    Some(cfg)
                }
                Err(errors) => {
                    lines.extend(errors.to_string().lines().map(str::to_string));
                    None
                }
            }
        } else {
            None
        };
        if let (Some(zones), Some(cfg)) = (&zones, &cdn)
            && zones.get_named(&cfg.zone).is_none()
        {
            lines.push(format!(
                "{}: [cdn] zone \"{}\" is not served: add a zone file with this origin to {}",
                cdn_path.display(),
                cfg.zone,
                sources.zones_dir.display()
            ));
        }
        let geo = match &sources.geoip {
            Some(path) if path.exists() => match load_geo(path, previous) {
                Ok(geo) => Some(geo),
                Err(e) => {
                    lines.push(e);
                    None
                }
            },
            _ => None,
        };
        match zones {
            Some(zones) if lines.is_empty() => Ok(Snapshot {
                generation,
                loaded_at: SystemTime::now(),
                zones,
                cdn: cdn.map(Arc::new),
                geo,
                health: HealthView::default(),
                edge_counters: EdgeCounters::default(),
            }),
            _ => Err(LoadError { lines }),
        }
    }

    /// Files whose change calls for a reload, besides the zones directory itself.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.zones.source_files().to_vec()
    }
}

/// The GeoIP database at `path`: the previous snapshot's when the file is unchanged.
fn load_geo(path: &Path, previous: Option<&Snapshot>) -> Result<Arc<GeoFile>, String> {
    let stamp = FileStamp::of(path)
        .map_err(|e| format!("{}: cannot read the GeoIP database: {e}", path.display()))?;
    if let Some(old) = previous.and_then(|p| p.geo.as_ref())
        && old.path == path
        && old.stamp == stamp
    {
        return Ok(old.clone());
    }
    let db = GeoDb::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Arc::new(GeoFile {
        db,
        path: path.to_path_buf(),
        stamp,
    }))
}
