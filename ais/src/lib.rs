//! The AIS executive and services: the top layer of the per-blade runtime.
//!
//! **Layer:** services → Totem → dataplane. `ais` may depend on `totem-dpdk`, `dataplane` and
//! `hpi`; nothing in the workspace depends on `ais` except `bench`.
//!
//! **What it holds:**
//! - [`ipc`]: the client ⇄ executive wire format over Unix SEQPACKET sockets, and the SA Forum
//!   error codes (`SaAisErrorT`), translated here and nowhere else;
//! - [`exec`]: the executive. [`exec::core`] is pure: every service's state, request routing,
//!   the service sync barrier after each membership change; effects come out as values, so
//!   the seeded simulator runs it. [`exec::Exec`] carries the effects out in `aisexec`, and
//!   [`exec::server`] is the IPC server with peer credentials;
//! - [`services`]: each service's state machine (CPG with its checker, EVS, online rekeying of
//!   the frame key);
//! - [`client`]: the library applications link;
//! - [`executive`]: the `aisexec` program (Totem over kernel UDP or DPDK, secauth, the event
//!   log); [`config`] (its configuration file: TOML, corosync's `totem` key names, errors with
//!   file, line and key); [`keyfile`] (the cluster key); [`ringseq`] (durable counters: ring
//!   sequence, message numbers, nonce lease); [`eventlog`] (the JSON Lines log of a real run,
//!   for the `totem-evlog` checker);
//! - binaries `aisexec`, `aisctl` and `ais-keygen`.
//!
//! See `docs/services.md`, `docs/security.md` and `docs/architecture.md`.

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod eventlog;
pub mod exec;
pub mod executive;
pub mod ipc;
pub mod keyfile;
pub mod ringseq;
pub mod services;
