//! Length-prefixed mcast frames from arbitrary bytes, their chunks fed to a `Reassembler`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    totem_dpdk::pg::fuzz_reassemble(data);
});
