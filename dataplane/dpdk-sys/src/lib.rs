//! Raw bindings to the system DPDK (>= 22.11): the lowest layer of openais-rs.
//!
//! **Layer:** below `dataplane`, which is the only crate allowed to depend on this one. It
//! depends on nothing in the workspace. Everything here is `unsafe` and unchecked; the safe
//! wrappers (owned mbufs, EAL setup, ports and queues) live in `dataplane::dpdk`.
//!
//! **What it contains:** bindgen's output for the DPDK headers listed in `src/shim.h` (EAL,
//! ethdev, mbuf, mempool, ring, lcore), and `shim_*` functions compiled from `src/shim.c` that
//! give DPDK's `static inline` functions and the thread-local `rte_errno` a real symbol.
//!
//! **How it is built:** `build.rs` asks the `pkg-config` program for `libdpdk` and uses its raw
//! cflags (which carry `-include rte_config.h` and `-march`), compiles the shim with `cc`,
//! generates the bindings with bindgen (needs libclang) and links DPDK's shared libraries.
//! Poll-mode drivers are loaded by EAL at run time from DPDK's plugin directory.
//!
//! All of that happens only with the `link` feature, which `dataplane`'s `dpdk` feature turns
//! on. Without it this crate is empty, so `cargo build --workspace` works on machines that have
//! no DPDK; with it, a missing or too old DPDK stops the build with a message that says what to
//! install. There is deliberately no fallback: a DPDK build never silently becomes a non-DPDK one.

#![cfg_attr(feature = "link", allow(unsafe_code))]
#![cfg_attr(not(feature = "link"), forbid(unsafe_code))]

#[cfg(feature = "link")]
#[allow(
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    rustdoc::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(feature = "link")]
pub use bindings::*;

/// The version of DPDK these bindings were generated against, as pkg-config reported it.
#[cfg(feature = "link")]
pub const PKG_VERSION: &str = env!("DPDK_SYS_PKG_VERSION");
