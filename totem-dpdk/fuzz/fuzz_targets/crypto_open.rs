//! Wire frames opened in place by the frame-protection layer, sealed frames opened again,
//! damaged and replayed (`totem_dpdk::crypto::fuzz_open`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    totem_dpdk::crypto::fuzz_open(data);
});
