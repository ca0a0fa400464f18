//! The DNS wire boundary: sockets in [`server`], one message in / one message out in
//! [`handler`] (the common query shape parsed and answered by hand in [`fast`], everything
//! else through hickory), EDNS Client Subnet rules in [`ecs`], replayed answers in [`cache`], zone
//! transfers and NOTIFY in [`transfer`], `id.server`/`version.bind` in [`chaos`].
//!
//! Wire types (hickory-proto) stay in this folder; the zone store and the scheduler below
//! it speak records and the project's own types.

pub mod cache;
pub mod chaos;
pub mod ecs;
pub mod fast;
pub mod handler;
#[cfg(target_os = "linux")]
pub mod mmsg;
pub mod schedule;
pub mod server;
pub mod transfer;
pub mod tsig;

/// The transport a query came over: decides truncation and the size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The EDNS UDP payload size Meridian advertises and caps its UDP answers at (the 2020
/// DNS flag day value: no IP fragmentation on common paths).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
