//! The benchmark harness.
//!
//! **Layer:** the top of the workspace; it may depend on every other crate and nothing
//! depends on it (`publish = false`).
//!
//! **What it will hold:** throughput and latency versus message size, node count, crypto and
//! transport; checkpoint write rate (`ckpt`, beside CPG on the same cluster in the same run);
//! failover time; the raw link and corosync measured on the same topology in the same run;
//! JSON/CSV output and plots. Every figure it produces that we quote goes into
//! `docs/performance.md` with its command, machine and date. Today it holds the CPU benchmark
//! of the Totem ordering core (`ordering`) and the workspace layering test
//! (`tests/workspace_layers.rs`).

#![forbid(unsafe_code)]

pub mod aead;
pub mod amf;
pub mod amf_failover;
pub mod ckpt;
pub mod ckptload;
pub mod corosync;
pub mod cpgload;
pub mod dpdk_ring;
pub mod evt;
pub mod failover;
pub mod hpi;
pub mod lck;
pub mod load;
pub mod measure;
pub mod msg;
pub mod ordering;
pub mod raw;
pub mod report;
pub mod shelf_failover;
pub mod stack;
pub mod throughput;
pub mod timeline;
pub mod udp;
