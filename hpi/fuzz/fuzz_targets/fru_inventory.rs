//! Arbitrary bytes as FRU inventory area info, Read FRU Data and whole FRU images: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hpi::fuzzing::fuzz_fru(data);
});
