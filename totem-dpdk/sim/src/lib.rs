//! Deterministic simulation of N Totem nodes, and the virtual-synchrony checker.
//!
//! **Layer:** a test tool beside the Totem layer. It depends on `totem-dpdk` and is used by the
//! tests of the layers above (`ais`); nothing ships with it (`publish = false`).
//!
//! **What it holds:**
//! - [`sim`]: a single-threaded, virtual-time network of real `totem-dpdk` nodes where one seed
//!   fixes one exact run ([`sim::Schedule`]), with per-link faults from [`net`] (loss,
//!   duplication, reordering, delay and jitter, corruption) and a random workload;
//! - [`log`]: the JSON Lines event log (`docs/event-log.md`), written by [`record`];
//! - [`checker`]: the extended-virtual-synchrony and token properties, checked on a log from
//!   the simulator or, later, from a real `aisexec` run;
//! - [`runner`]: many schedules on several threads, summed up; the `totem-sim` binary is its
//!   command line (`docs/simulator.md`).
//!
//! Node faults (crash, restart, pause, partition) arrive with the membership protocol.

#![forbid(unsafe_code)]

pub mod checker;
pub mod log;
pub mod net;
pub mod record;
pub mod runner;
pub mod sim;
