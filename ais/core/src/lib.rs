//! The executive core of `aisexec` and its services, pure: no threads, sockets, clocks, files or
//! randomness inside, so the seeded simulator drives it exactly as the runtime does.
//!
//! - [`exec`]: the core ([`exec::ExecCore`]): every service's state, request routing, the
//!   service sync barrier after each membership change; effects come out as values;
//! - [`services`]: each service's state machine (CPG, CLM and quorum, each with its checker;
//!   EVS; online rekeying of the frame key);
//! - [`key`]: the secret of one key epoch, as the key file holds it and rekeying replicates it.
//!
//! The runtime that carries the effects out (`ais::runtime`), the IPC server and the
//! configuration are in the `ais` crate; the packet types in `ais-proto`.

#![forbid(unsafe_code)]

pub mod exec;
pub mod key;
pub mod services;
