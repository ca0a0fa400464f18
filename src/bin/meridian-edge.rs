//! `meridian-edge`: the caching edge. Parses flags, binds sockets, starts tracing, and
//! hands over to `meridian::edge::run` until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use meridian::edge::{self, EdgeConfig, Listeners, parse_size, route::OriginSpec, tls::CertFiles};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "meridian-edge",
    version,
    about = "Caching HTTP edge for Meridian-scheduled domains"
)]
struct Args {
    /// Directory holding cdn.toml (domains and their origins); reloaded on change.
    #[arg(long)]
    zones: Option<PathBuf>,
    /// Address to serve HTTP on (repeatable; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: Vec<SocketAddr>,
    /// Admin HTTP address (/health, /status, /metrics, /purge, /prefetch).
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin: SocketAddr,
    /// Disk tier directory (kept across restarts). Default: a temporary directory.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Memory tier size, e.g. 256MiB.
    #[arg(long, default_value = "256MiB", value_parser = size)]
    memory_cache: u64,
    /// Disk tier size, e.g. 10GiB.
    #[arg(long, default_value = "10GiB", value_parser = size)]
    disk_cache: u64,
    /// This edge's name in CDN-Loop, Via and Cache-Status (letters, digits, '.', '_', '-').
    #[arg(long, default_value = "meridian-edge", value_parser = edge_name)]
    name: String,
    /// Origin for every Host no domain of cdn.toml claims, e.g. http://127.0.0.1:9000.
    #[arg(long)]
    origin: Option<String>,
    /// Extra CA certificate (PEM) trusted for HTTPS origins, besides the system's CAs
    /// (SSL_CERT_FILE / SSL_CERT_DIR replace the system store, as with OpenSSL).
    #[arg(long)]
    origin_ca: Option<PathBuf>,
    /// Bearer token for POST /purge and /prefetch when --admin is not loopback.
    #[arg(long, env = "MERIDIAN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Slice size for large-files and vod domains, e.g. 4MiB.
    #[arg(long, default_value = "4MiB", value_parser = size)]
    slice_size: u64,
    /// Seconds allowed to connect to an origin.
    #[arg(long, default_value_t = 3)]
    origin_connect_timeout: u64,
    /// Seconds allowed for an origin's response headers (and between body chunks).
    #[arg(long, default_value_t = 30)]
    origin_timeout: u64,
    /// Access log file: one line per request, nginx's combined format plus Host, cache
    /// status and seconds taken; SIGUSR1 reopens it (for logrotate).
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// Address to serve HTTPS on (repeatable; port 0 picks a free port); needs --tls-cert.
    #[arg(long)]
    tls_listen: Vec<SocketAddr>,
    /// Certificate chain and key for HTTPS, as CERT.pem:KEY.pem (repeatable); each client
    /// gets the first one valid for the name it asks for (SNI), else the first.
    #[arg(long)]
    tls_cert: Vec<CertFiles>,
}

fn edge_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(text.to_string())
    } else {
        Err("use letters, digits, '.', '_' and '-' only (it goes into CDN-Loop and Via)".into())
    }
}

fn size(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,meridian=info,meridian_edge=info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let catch_all = args
        .origin
        .as_deref()
        .map(OriginSpec::from_url)
        .transpose()
        .context("--origin")?;
    let zones_dir = match (args.zones, &catch_all) {
        (Some(dir), _) => Some(dir),
        // No flags at all: serve the repository's own zones/ when it has a cdn.toml.
        (None, None) if PathBuf::from("zones/cdn.toml").is_file() => Some(PathBuf::from("zones")),
        (None, _) => None,
    };
    if zones_dir.is_none() && catch_all.is_none() {
        tracing::warn!("no --origin and no --zones: every request will get 404");
    }
    let config = EdgeConfig {
        name: args.name,
        catch_all,
        zones_dir,
        cache_dir: args.cache_dir,
        memory_cache_bytes: args.memory_cache,
        disk_cache_bytes: args.disk_cache,
        origin_ca: args.origin_ca,
        admin_token: args.admin_token,
        slice_bytes: args.slice_size,
        origin_connect_timeout: Duration::from_secs(args.origin_connect_timeout),
        origin_response_timeout: Duration::from_secs(args.origin_timeout),
        access_log: args.access_log,
        tls_certs: args.tls_cert,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut listeners = Listeners::default();
        for addr in &args.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --listen {addr}"))?;
            tracing::info!("listening on {}", listener.local_addr()?);
            listeners.http.push(listener);
        }
        for addr in &args.tls_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --tls-listen {addr}"))?;
            tracing::info!("listening for HTTPS on {}", listener.local_addr()?);
            listeners.https.push(listener);
        }
        let admin = tokio::net::TcpListener::bind(args.admin)
            .await
            .with_context(|| format!("binding --admin {}", args.admin))?;
        tracing::info!("admin listening on {}", admin.local_addr()?);
        listeners.admin = Some(admin);

        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        edge::run(config, listeners, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining connections");
    shutdown.cancel();
}
