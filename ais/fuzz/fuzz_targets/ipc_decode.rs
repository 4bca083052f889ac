//! Arbitrary client packets: decode, and a packet that decodes survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ais_core::exec::fuzzing::fuzz_ipc_decode(data);
});
