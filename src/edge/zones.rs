//! `--zones DIR`: the accelerated domains of `DIR/cdn.toml`, loaded at start and reloaded
//! when the file changes (a bad edit keeps the previous table and is counted).
//!
//! In: the zones directory. Out: a [`DomainTable`] swapped into the [`Router`].
//! Only the `[[domain]]` entries matter to the edge; the rest of the file is the DNS
//! server's. (Interim reader until the shared `cdn` module lands; validation is its job.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use crate::edge::metrics::{self, Metrics};
use crate::edge::route::{Business, DomainTable, OriginAddr, OriginSpec, Router, Scheme};

/// Why `cdn.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ZonesError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: {}", .problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("watching {path}: {message}")]
    Watch { path: PathBuf, message: String },
}

#[derive(serde::Deserialize)]
struct CdnFile {
    #[serde(default)]
    domain: Vec<DomainEntry>,
}

#[derive(serde::Deserialize)]
struct DomainEntry {
    name: String,
    #[serde(default)]
    business: Option<String>,
    #[serde(default)]
    origins: Vec<String>,
    #[serde(default)]
    origin_port: Option<u16>,
    #[serde(default)]
    origin_scheme: Option<String>,
    #[serde(default)]
    origin_host: Option<String>,
}

/// Reads `dir/cdn.toml` into a domain table; every problem is reported at once.
pub fn load(dir: &Path) -> Result<DomainTable, ZonesError> {
    let path = dir.join("cdn.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| ZonesError::Read {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let file: CdnFile = toml::from_str(&text).map_err(|e| ZonesError::Read {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut problems = Vec::new();
    let mut specs = Vec::new();
    for d in file.domain {
        let business = match d.business.as_deref().unwrap_or("small-files") {
            "small-files" => Business::SmallFiles,
            "large-files" => Business::LargeFiles,
            "vod" => Business::Vod,
            "dcdn" => Business::Dcdn,
            other => {
                problems.push(format!("domain {:?}: unknown business {other:?}", d.name));
                continue;
            }
        };
        let port = d.origin_port.unwrap_or(80);
        let scheme = match d.origin_scheme.as_deref() {
            None if port == 443 => Scheme::Https,
            None | Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                problems.push(format!(
                    "domain {:?}: origin_scheme {other:?} is not http or https",
                    d.name
                ));
                continue;
            }
        };
        if d.origins.is_empty() {
            problems.push(format!("domain {:?}: no origins", d.name));
            continue;
        }
        let origins = d
            .origins
            .iter()
            .map(|o| match o.parse() {
                Ok(ip) => OriginAddr::Ip(ip),
                Err(_) => OriginAddr::Host(o.to_ascii_lowercase()),
            })
            .collect();
        specs.push(OriginSpec {
            domain: d.name.to_ascii_lowercase(),
            business,
            origins,
            port,
            scheme,
            host_header: d.origin_host,
        });
    }
    if problems.is_empty() {
        Ok(DomainTable::new(specs))
    } else {
        Err(ZonesError::Invalid { path, problems })
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
pub type Watcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Watches `dir` and reloads `cdn.toml` when it changes.
pub fn watch(dir: &Path, on_change: impl Fn() + Send + 'static) -> Result<Watcher, ZonesError> {
    let watch_err = |e: notify::Error| ZonesError::Watch {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut debouncer = new_debouncer(
        Duration::from_millis(200),
        None,
        move |result: DebounceEventResult| {
            let touches_config = match &result {
                Ok(events) => events.iter().any(|e| {
                    e.paths
                        .iter()
                        .any(|p| p.file_name().is_some_and(|n| n == "cdn.toml"))
                }),
                Err(_) => true,
            };
            if touches_config {
                on_change();
            }
        },
    )
    .map_err(watch_err)?;
    debouncer
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(watch_err)?;
    Ok(debouncer)
}

/// Starts watching and logs each reload's result.
pub fn watch_and_reload(
    dir: &Path,
    edge: Arc<crate::edge::proxy::Edge>,
) -> Result<Watcher, ZonesError> {
    let owned = dir.to_path_buf();
    watch(dir, move || {
        match reload(&owned, &edge.router, &edge.metrics) {
            Ok(count) => tracing::info!(domains = count, "cdn.toml reloaded"),
            Err(error) => {
                tracing::error!(%error, "cdn.toml reload rejected; keeping the previous domains")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_domains_and_reports_all_problems() {
        let dir = std::env::temp_dir().join(format!("meridian-edge-zones-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cdn.toml"),
            r#"
[cdn]
zone = "cdn.example.net"
[[domain]]
name = "img.customer.com"
business = "large-files"
origins = ["127.0.0.1", "Origin.Customer.com"]
origin_port = 443
origin_host = "img.customer.com"
"#,
        )
        .unwrap();
        let table = load(&dir).unwrap();
        assert_eq!(table.len(), 1);
        let router = Router::new(None);
        router.set_domains(table);
        let spec = router.route("img.customer.com").unwrap();
        assert_eq!(spec.scheme, Scheme::Https);
        assert_eq!(spec.business, Business::LargeFiles);
        assert_eq!(
            spec.origins[1],
            OriginAddr::Host("origin.customer.com".into())
        );

        std::fs::write(
            dir.join("cdn.toml"),
            "[[domain]]\nname = \"a.com\"\nbusiness = \"huge\"\norigins = [\"1.2.3.4\"]\n[[domain]]\nname = \"b.com\"\n",
        )
        .unwrap();
        let err = load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("unknown business") && err.contains("no origins"),
            "{err}"
        );
        let metrics = Metrics::default();
        assert!(reload(&dir, &router, &metrics).is_err());
        assert!(router.route("img.customer.com").is_some(), "old table kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
