//! The DPDK backend (feature `dpdk`): safe wrappers over `dpdk-sys`.
//!
//! Today this is the smallest safe surface that proves the binding links and runs; EAL setup,
//! ports, queues, owned mbufs and the `Transport` implementation come with the DPDK issue.

#![allow(unsafe_code)]

use std::ffi::CStr;

/// The DPDK version string of the library this process is linked against at run time, for
/// example `"DPDK 22.11.11"`. It can differ from [`BUILT_AGAINST`] when the shared library was
/// upgraded after the build.
pub fn runtime_version() -> &'static str {
    // SAFETY: rte_version() takes no arguments, needs no EAL initialisation and returns a
    // pointer to a NUL-terminated string with static storage inside librte_eal.
    let ptr = unsafe { dpdk_sys::rte_version() };
    // SAFETY: the pointer is non-null, NUL-terminated and valid for the life of the process
    // (see above); DPDK never writes to it.
    let version = unsafe { CStr::from_ptr(ptr) };
    version
        .to_str()
        .unwrap_or("DPDK (version string is not UTF-8)")
}

/// The DPDK version the bindings were generated against (pkg-config's `libdpdk` version).
pub const BUILT_AGAINST: &str = dpdk_sys::PKG_VERSION;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_library_matches_the_headers_we_built_against() {
        let runtime = runtime_version();
        assert!(
            runtime.starts_with("DPDK "),
            "unexpected version string {runtime:?}"
        );
        // Same major.minor: an ABI break between headers and library would show here.
        let major_minor: Vec<&str> = BUILT_AGAINST.split('.').take(2).collect();
        let want = format!("DPDK {}", major_minor.join("."));
        assert!(
            runtime.starts_with(&want),
            "built against {BUILT_AGAINST}, running {runtime}"
        );
    }
}
