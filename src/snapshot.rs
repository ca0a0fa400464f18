//! One immutable view of everything a query needs — zones, CDN configuration, GeoIP
//! database — built aside by [`Snapshot::load`] and swapped in whole by the reload path.
//!
//! A query loads the current snapshot once and uses that one to the end, so it never sees
//! half of a reload. Startup and every reload run the same `load` (parse + validate all
//! files); on any error nothing is swapped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
        let in_zones_dir = path.parent() == Some(self.zones_dir.as_path())
            || path
                .parent()
                .map(|p| p.ends_with(&self.zones_dir))
                .unwrap_or(false);
        (in_zones_dir
            && (path.extension().is_some_and(|e| e == "zone")
                || path.file_name().is_some_and(|n| n == "cdn.toml")))
            || included.iter().any(|f| f == path)
            || self.geoip.as_deref() == Some(path)
    }
}

/// Everything one query needs, immutable.
pub struct Snapshot {
    /// Increases by one with every successful load; 1 is the startup load.
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub zones: ZoneSet,
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
    /// Parse and validate every source into a new snapshot. Reports every error at once.
    pub fn load(sources: &Sources, generation: u64) -> Result<Snapshot, LoadError> {
        let zones = ZoneSet::load_dir(&sources.zones_dir)?;
        Ok(Snapshot {
            generation,
            loaded_at: SystemTime::now(),
            zones,
        })
    }

    /// Files whose change calls for a reload, besides the zones directory itself.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.zones.source_files().to_vec()
    }
}
