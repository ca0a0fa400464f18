//! `--zones DIR`: the accelerated domains of `DIR/cdn.toml`, loaded at start and reloaded
//! when the file changes (a bad edit keeps the previous table and is counted).
//!
//! In: the zones directory. Out: a [`DomainTable`] swapped into the [`Router`].
//! Parsing, validation and Host matching are the shared [`crate::cdn`] module's, so the
//! edge and the DNS server agree on every domain; the edge uses the `[[domain]]` entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cdn::CdnConfig;
use crate::edge::metrics::{self, Metrics};
use crate::edge::route::{DomainTable, Router};
use crate::watch::{self, RecursiveMode, Watch};

/// Why `cdn.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ZonesError {
    #[error("{}", .problems.join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("watching {path}: {message}")]
    Watch { path: PathBuf, message: String },
}

/// Reads and validates `dir/cdn.toml` (the shared `cdn` module) into a domain table.
pub fn load(dir: &Path) -> Result<DomainTable, ZonesError> {
    let path = dir.join("cdn.toml");
    match CdnConfig::load(&path) {
        Ok(config) => Ok(DomainTable::from_cdn(Arc::new(config))),
        Err(errors) => Err(ZonesError::Invalid {
            path,
            problems: errors.0.iter().map(|e| e.to_string()).collect(),
        }),
    }
}

/// Reloads the table now; on error the router keeps its table.
pub fn reload(dir: &Path, router: &Router, metrics: &Metrics) -> Result<usize, ZonesError> {
    match load(dir) {
        Ok(table) => {
            let count = table.len();
            router.set_domains(table);
            metrics::inc(&metrics.reloads_ok);
            Ok(count)
        }
        Err(error) => {
            metrics::inc(&metrics.reloads_failed);
            Err(error)
        }
    }
}

/// The live watcher; dropping it stops watching.
pub type Watcher = Watch;

/// Watches `dir` and reloads `cdn.toml` when it changes: the shared debounced watch (one
/// reload per burst of edits, and at least one a second while edits never stop).
pub fn watch(dir: &Path, on_change: impl Fn() + Send + 'static) -> Result<Watcher, ZonesError> {
    let watch_err = |e: watch::WatchError| ZonesError::Watch {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let is_config = |p: &Path| p.file_name().is_some_and(|n| n == "cdn.toml");
    let mut watcher = Watch::new(watch::SETTLE, watch::MAX_WAIT, is_config, move |_| {
        on_change()
    })
    .map_err(watch_err)?;
    watcher
        .add(dir, RecursiveMode::NonRecursive)
        .map_err(watch_err)?;
    Ok(watcher)
}

/// Starts watching and logs each reload's result.
pub fn watch_and_reload(
    dir: &Path,
    edge: Arc<crate::edge::proxy::Edge>,
) -> Result<Watcher, ZonesError> {
    let owned = dir.to_path_buf();
    watch(dir, move || {
        let outcome = match reload(&owned, &edge.router, &edge.metrics) {
            Ok(count) => {
                tracing::info!(domains = count, "cdn.toml reloaded");
                "ok".to_string()
            }
            Err(error) => {
                tracing::error!(%error, "cdn.toml reload rejected; keeping the previous domains");
                error.to_string()
            }
        };
        *edge.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::{Business, Origin, Scheme};

    const HEAD: &str = "[cdn]\nzone = \"cdn.example.net\"\nsuffix = \"w.cdn.example.net\"\n\n[[edge]]\nname = \"e1\"\ncountry = \"US\"\nipv4 = [\"127.0.1.1\"]\n\n";

    #[test]
    fn reads_domains_and_keeps_the_old_table_on_a_bad_edit() {
        let dir = std::env::temp_dir().join(format!("meridian-edge-zones-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let domain = "[[domain]]\nname = \"img.customer.com\"\nregion = \"overseas\"\nbusiness = \"large-files\"\norigins = [\"127.0.0.1\", \"origin.example.org\"]\norigin_port = 443\norigin_host = \"img.customer.com\"\n";
        std::fs::write(dir.join("cdn.toml"), format!("{HEAD}{domain}")).unwrap();
        let table = load(&dir).unwrap();
        assert_eq!(table.len(), 1);
        let router = Router::new(None);
        router.set_domains(table);
        let spec = router.route("IMG.customer.com:8080").unwrap();
        assert_eq!(spec.scheme, Scheme::Https);
        assert_eq!(spec.business, Business::LargeFiles);
        assert_eq!(spec.origins[1], Origin::Host("origin.example.org".into()));
        assert_eq!(spec.host_header.as_deref(), Some("img.customer.com"));

        std::fs::write(
            dir.join("cdn.toml"),
            format!("{HEAD}[[domain]]\nname = \"a.com\"\nbusiness = \"huge\"\n"),
        )
        .unwrap();
        assert!(load(&dir).is_err());
        let metrics = Metrics::default();
        assert!(reload(&dir, &router, &metrics).is_err());
        assert!(router.route("img.customer.com").is_some(), "old table kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
