//! Deterministic simulation of N Totem nodes, checked by the virtual-synchrony checker.
//!
//! **Layer:** a test tool above the Totem layer. It depends on `totem-dpdk` and `totem-evlog`
//! and is used by the tests of the layers above (`ais`); nothing ships with it
//! (`publish = false`).
//!
//! **What it holds:**
//! - [`sim`]: a single-threaded, virtual-time network of real `totem-dpdk` nodes where one seed
//!   fixes one exact run ([`sim::Schedule`]), with per-link faults from [`net`] (loss,
//!   duplication, reordering, delay and jitter, corruption), node faults from [`sim::NodeFault`]
//!   (crash, restart, pause, partition) and a random workload;
//! - [`record`]: the event-log lines of a simulated run, made from the core's outputs;
//! - [`runner`]: many schedules on several threads, each checked, summed up; the `totem-sim`
//!   binary is its command line (`docs/simulator.md`).
//!
//! [`log`] (the JSON Lines event-log format, `docs/event-log.md`) and [`checker`] (the
//! extended-virtual-synchrony checker) live in `totem-evlog`, which `aisexec` links without
//! the simulator; they are re-exported here so `totem_sim::log` and `totem_sim::checker` keep
//! naming them.

#![forbid(unsafe_code)]

pub use totem_evlog::{checker, log};
pub mod net;
pub mod record;
pub mod runner;
pub mod sim;
