//! Arbitrary bytes as Get SDR responses and whole SDR records: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hpi::fuzzing::fuzz_sdr(data);
});
