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
//! Implemented so far: [`config`], the `aisexec` configuration file (TOML, corosync's `totem`
//! key names) and its conversion to the Totem core's and the UDP transport's settings; and
//! [`ringseq`], the durable ring sequence number that keeps ring ids unique across restarts;
//! and the `aisexec` binary, which so far runs the Totem ring over kernel UDP and logs
//! configuration changes (no client IPC or services yet).

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
