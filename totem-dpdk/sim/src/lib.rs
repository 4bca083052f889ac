//! Deterministic simulation of N Totem nodes, and the virtual-synchrony checker.
//!
//! **Layer:** a test tool beside the Totem layer. It depends on `totem-dpdk` and is used by the
//! tests of the layers above (`ais`); nothing ships with it (`publish = false`).
//!
//! **What it will hold:** a single-threaded, virtual-time network of sans-IO Totem nodes where
//! one seed fixes one exact run, with per-link faults (loss, duplication, reordering, delay,
//! corruption) and node faults (crash, restart, pause, partition); a JSON Lines event log; and a
//! checker of the extended-virtual-synchrony properties that reads such logs, from the
//! simulator or from real `aisexec` runs. Nothing is implemented yet.

#![forbid(unsafe_code)]

pub mod checker;
pub mod log;
pub mod net;
pub mod record;
pub mod runner;
pub mod sim;
