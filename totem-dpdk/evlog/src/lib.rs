//! The event log of a Totem run and the extended-virtual-synchrony checker that reads it.
//!
//! **Layer:** beside the Totem layer, below its users. It depends on `totem-dpdk` for the id
//! types only; the simulator (`totem-sim`) and `aisexec` (`ais`) both depend on it, so the
//! executive writes and checks logs without linking the simulator.
//!
//! **What it holds:**
//! - [`log`]: the JSON Lines event-log format (`docs/event-log.md`): one [`log::LogEvent`] per
//!   line, written by [`log::EventLog`] and read by [`log::read_log`];
//! - [`checker`]: the extended-virtual-synchrony properties, the token invariants and
//!   convergence after faults ([`checker::Property`]), checked on a log from any source: one
//!   file ([`checker::check_file`]), the files of every node of a run
//!   ([`checker::check_files`]), or events in memory ([`checker::check`]).

#![forbid(unsafe_code)]

pub mod checker;
pub mod log;
