//! Meridian: an authoritative DNS server with a GSLB scheduler, and the caching edge its
//! answers point to.
//!
//! # Layout
//!
//! ```text
//! query  : dns::server (UDP/TCP sockets) -> dns::handler -> Snapshot (ArcSwap)
//!             -> zone (authoritative lookup)      \-> gslb (pure selection)
//!                                                     <- geo (client location) <- health (table)
//! reload : daemon::reload (watch / SIGHUP / admin POST) -> snapshot::Snapshot::load
//!             -> ArcSwap::store (snapshot::Shared)
//! health : health (one task per edge, hyper GET) -> health::Table (atomics)
//! edge   : edge (hyper reverse proxy + RFC 9111 cache), its own binary
//! ```
//!
//! - [`zone`]: zone files -> validated, immutable zones; the authoritative lookup.
//! - [`cdn`]: `cdn.toml` -> validated scheduling configuration (shared with the edge).
//! - [`geo`]: GeoIP database + country centroids -> client location.
//! - [`gslb`]: region policy + health + distance -> chosen edges. No I/O, no clock.
//! - [`health`]: edge health checks and the shared health table.
//! - [`snapshot`]: one immutable view of zones + CDN config + GeoIP, swapped whole, and
//!   [`snapshot::Shared`], what every query reads (the current snapshot, counters, health).
//! - [`dns`]: the wire: sockets, request parsing, EDNS/ECS, response encoding.
//! - [`daemon`]: the DNS server's run-time (binary and tests alike): start and stop,
//!   [`daemon::reload`] (what triggers a reload and how it is applied),
//!   [`daemon::admin`] (its admin HTTP endpoints), [`daemon::metrics`] (every metric name).
//! - [`edge`]: the caching edge (`meridian-edge`).
//! - [`watch`]: the debounced file watch both binaries reload from (settle + max wait).

pub mod cdn;
pub mod daemon;
pub mod dns;
pub mod edge;
pub mod geo;
pub mod gslb;
pub mod health;
pub mod snapshot;
pub mod watch;
pub mod zone;
