//! Polling packet I/O: the bottom layer of the openais-rs runtime.
//!
//! **Layer:** `dataplane` sits under Totem (`totem-dpdk`) and above the operating system. It
//! may depend on `dpdk-sys` (behind the `dpdk` feature) and on nothing else in the workspace;
//! nothing in it knows about Totem, AIS services or configuration files.
//!
//! **What it will hold** (see `docs/architecture.md`): one `Transport` trait used with static
//! dispatch on the hot path, and its backends: kernel UDP (multicast and unicast, batched with
//! `recvmmsg`/`sendmmsg`; the default, runs anywhere), DPDK on pinned polling cores (the
//! production path, `dpdk` feature), and an in-memory network with fault injection for tests;
//! plus jumbo-frame packing of many small messages per frame. The trait and the UDP backend
//! arrive with the runtime issue; today the crate carries the DPDK binding check below.
//!
//! **Unsafe code** is denied crate-wide and allowed only in the modules that talk to the
//! operating system or to DPDK (`dpdk`, later `udp::sys`); every `unsafe` block carries a
//! `// SAFETY:` comment (enforced by `clippy::undocumented_unsafe_blocks`).
//!
//! # Features
//! - `dpdk`: the DPDK backend, built against the system DPDK through `dpdk-sys`. Without DPDK
//!   installed the build stops with a message naming the packages to install.

#![deny(unsafe_code)]

#[cfg(feature = "dpdk")]
pub mod dpdk;
