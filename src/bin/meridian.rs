//! `meridian`: the authoritative DNS server with GSLB scheduling. Thin: flags, tracing,
//! then the library's `daemon::start`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use meridian::cdn::CdnConfig;
use meridian::daemon::{self, Options};
use meridian::dns::chaos;
use meridian::dns::transfer::TransferPolicy;
use meridian::dns::tsig::TsigKey;
use meridian::snapshot::{Snapshot, Sources};

#[derive(Parser)]
#[command(version, about = "Authoritative DNS with GSLB scheduling for a CDN")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS (the default).
    Serve(ServeArgs),
    /// Validate the zones directory; exit 0, or 1 with one `FILE:LINE: message` per problem.
    Check(DataArgs),
    /// Print the CNAME target a customer must set for DOMAIN.
    Cname {
        domain: String,
        #[arg(long, default_value = "zones")]
        zones: PathBuf,
    },
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Directory of `*.zone` files and the optional `cdn.toml`.
    #[arg(long, default_value = "zones")]
    zones: PathBuf,
    /// GeoIP database (MaxMind DB format).
    #[arg(long, default_value = "geoip/dbip-country.mmdb")]
    geoip: PathBuf,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// UDP and TCP listen address; repeat for more (IPv4 and IPv6). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:1053")]
    listen: Vec<SocketAddr>,
    /// Admin HTTP address (/health, /status, /metrics, POST /reload).
    #[arg(long, default_value = "127.0.0.1:8053")]
    admin: SocketAddr,
    /// Bearer token for state-changing admin requests; required when --admin is not loopback.
    #[arg(long, env = "MERIDIAN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// UDP worker threads per listen address (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Network (or address) allowed to transfer the plain zones (AXFR/IXFR over TCP; an IXFR
    /// over UDP gets the zone's SOA); repeat for more. Default: nobody. The CDN zone is never
    /// transferred.
    #[arg(long = "allow-transfer", value_name = "CIDR", value_parser = parse_network)]
    allow_transfer: Vec<ipnet::IpNet>,
    /// Secondary to send a NOTIFY for each plain zone at startup and when a reload changes a
    /// zone's serial (IP or IP:PORT, port 53 by default); repeat for more.
    #[arg(long, value_name = "ADDR", value_parser = parse_notify_target)]
    notify: Vec<SocketAddr>,
    /// TSIG key `[ALGORITHM:]NAME:BASE64-SECRET` (as `dig -y`); repeat (or comma-separate in
    /// the environment) for more. With keys, transfers must be signed with one of them and
    /// NOTIFYs are signed with the first.
    #[arg(
        long = "tsig-key",
        value_name = "KEY",
        env = "MERIDIAN_TSIG_KEY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    tsig_key: Vec<TsigKey>,
    /// Answer to `dig CH TXT id.server` (and hostname.bind); default: the host name.
    #[arg(long)]
    identity: Option<String>,
    /// Refuse `dig CH TXT version.bind` instead of naming the version.
    #[arg(long)]
    hide_version: bool,
}

fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a network like 192.0.2.0/24 or an address"))
}

fn parse_notify_target(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("{text:?} is not an address like 192.0.2.1 or 192.0.2.1:5353"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Some(Command::Check(data)) => check(&data),
        Some(Command::Cname { domain, zones }) => cname(&domain, &zones),
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn sources(data: &DataArgs) -> Result<Sources, String> {
    Sources::new(&data.zones, Some(&data.geoip)).map_err(|e| e.to_string())
}

fn check(data: &DataArgs) -> ExitCode {
    let loaded = sources(data).and_then(|s| Snapshot::load(&s, 1, None).map_err(|e| e.to_string()));
    match loaded {
        Ok(snapshot) => {
            let zones = snapshot.zones.zones().count();
            println!(
                "ok: {zones} zones, {} records",
                snapshot.zones.record_count()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn cname(domain: &str, zones: &std::path::Path) -> ExitCode {
    let path = zones.join("cdn.toml");
    let config = match CdnConfig::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            println!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    match config.cname_target(domain) {
        Some(target) => {
            println!("{target}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "{domain} is not an accelerated domain: add a [[domain]] entry for it to {}",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meridian: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        // Installed before the sockets open, so a stop signal is never the default kill.
        let stop_signal = match StopSignal::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("meridian: cannot handle stop signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let sources = match sources(&args.data) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let mut identity = chaos::Identity::default();
        if let Some(id) = args.identity {
            identity.id = id;
        }
        if args.hide_version {
            identity.version = None;
        }
        chaos::configure(identity);
        let options = Options {
            sources,
            listen: args.listen,
            admin: Some(args.admin),
            admin_token: args.admin_token,
            udp_workers: args
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            transfer: TransferPolicy {
                allow: args.allow_transfer,
                notify: args.notify,
                keys: args.tsig_key,
            },
        };
        let running = match daemon::start(options).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = running.shutdown_token();
        tokio::spawn(async move {
            stop_signal.wait().await;
            tracing::info!("stopping: draining in-flight queries");
            shutdown.cancel();
        });
        running.wait().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    });
    // A reload still parsing a large zone must not hold up the exit.
    runtime.shutdown_background();
    code
}

/// SIGINT and SIGTERM, both meaning "drain and stop".
struct StopSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> std::io::Result<StopSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignal {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignal {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
