//! The AIS executive and services: the top layer of the per-blade runtime.
//!
//! **Layer:** services → Totem → dataplane. `ais` may depend on `totem-dpdk`, `dataplane` and
//! `hpi`; nothing in the workspace depends on `ais` except `bench`.
//!
//! **What it will hold** (see `docs/architecture.md`):
//! - `ipc`: the client ⇄ executive wire format over Unix SEQPACKET sockets, and the SA Forum
//!   error codes (`SaAisErrorT`), translated here and nowhere else;
//! - `exec`: the service framework of `aisexec` (library request handlers, handlers for
//!   messages delivered by Totem, configuration-change and sync hooks);
//! - `services`: CPG, EVS, CLM, CKPT, EVT, MSG, LCK and AMF, each a state machine driven by
//!   Totem deliveries, so the simulator can run them;
//! - `client`: the library applications link;
//! - binaries `aisexec`, `aisctl` and `ais-keygen`.
//!
//! Implemented so far: [`config`] (the `aisexec` configuration file: TOML, corosync's `totem`
//! key names, errors with file, line and key); [`ipc`] (the packet format and error codes);
//! [`exec`] (the service framework and the IPC server with peer credentials); [`services`]
//! (CPG, EVS, and online rekeying of the frame key); [`client`]; [`executive`] (the `aisexec`
//! program: Totem over kernel UDP or DPDK, secauth, the event log); [`keyfile`] (the cluster
//! key); [`ringseq`] (durable counters: ring sequence, message numbers, nonce lease);
//! [`eventlog`] (the JSON Lines log of a real run, for the `totem-evlog` checker); binaries
//! `aisexec`, `aisctl` and `ais-keygen`. See `docs/services.md` and `docs/security.md`.
//! CLM, CKPT, EVT, MSG, LCK and AMF are still to come.

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
