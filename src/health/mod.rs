//! Edge health: checks, the rise/fall state machine and the shared health table.
//!
//! ```text
//! CdnConfig --HealthChecker::reconcile--> one task per edge with a `health` URL
//!   task: every interval, GET url (hyper, timeout) -> 2xx? -> HealthTable::record
//!                                                        -> Tracker (rise/fall, pure)
//! query path: HealthTable::is_up(name) / HealthView::is_up(index)   (atomic loads)
//!             HealthTable::generation()  (bumped on every transition: cache key)
//! /status, /metrics: HealthTable::snapshot(), transitions_up(), transitions_down()
//! ```
//!
//! The table lives outside the configuration snapshot, keyed by edge name, so health
//! survives reloads. New edges start `unknown` and are served until their first checks
//! decide; edges without a `health` URL are always up. The state machine ([`Tracker`])
//! takes results, never the clock; only the checker tasks do I/O and read the time.
//! Nothing here decides which edge answers: that is [`crate::gslb`].

mod checker;
mod state;
mod table;

pub use checker::HealthChecker;
pub use state::{State, Tracker, Transition};
pub use table::{EdgeHealth, EdgeStatus, HealthTable, HealthView};
