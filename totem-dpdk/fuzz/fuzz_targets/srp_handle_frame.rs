//! Sequences of frames (valid checksum, arbitrary content) fed to one node of a 3-node ring.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    totem_dpdk::srp::Totem::fuzz_handle_frames(data);
});
