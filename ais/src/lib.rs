//! The `aisexec` and `aisctl` programs: the shell around the executive core. The crates below
//! it, by what links what:
//!
//! - `ais-proto`: the client ⇄ executive packets and the SA Forum error codes;
//! - `ais-client`: what an application links (no Totem, crypto, configuration or CLI);
//! - `ais-core`: the pure executive core and its services, driven by the seeded simulator.
//!
//! This crate holds what needs the operating system and the configuration:
//! - [`runtime`]: the executive thread that carries out the core's effects, and
//!   [`runtime::server`], the IPC server with peer credentials;
//! - [`aisexec`]: the `aisexec` program (Totem over kernel UDP or DPDK, secauth, the event log);
//! - [`config`] (the configuration file: TOML, corosync's `totem` key names, errors with file,
//!   line and key); [`keyfile`] (the cluster key file); [`ringseq`] (durable counters: ring
//!   sequence, message numbers, nonce lease); [`eventlog`] (the JSON Lines log of a real run,
//!   for the `totem-evlog` checker); [`faultfile`] (test-only fault injection for `aisexec`);
//! - [`amf`]: AMF's node side: the CLC-CLI runner and passive monitor, the IP takeover type;
//! - [`harness`]: clusters of real `aisexec` processes on this host (generated configurations,
//!   start, signals, status, waiting for a ring), shared by `aisctl demo`, the integration
//!   tests and the benchmarks;
//! - binaries `aisexec`, `aisctl` and `ais-keygen`.
//!
//! See `docs/services.md`, `docs/security.md` and `docs/architecture.md`.

#![forbid(unsafe_code)]

pub mod aisexec;
pub mod amf;
pub mod config;
pub mod eventlog;
pub mod faultfile;
pub mod harness;
pub mod keyfile;
pub mod ringseq;
pub mod runtime;
pub mod shelfwatch;
