//! Received frames on two networks through the network tag check and the redundant-ring
//! layer, with operator commands in between (`totem_dpdk::driver::fuzz_receive`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    totem_dpdk::driver::fuzz_receive(data);
});
