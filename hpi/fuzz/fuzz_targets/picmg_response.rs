//! Arbitrary bytes as PICMG (netfn 0x2C) responses: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hpi::fuzzing::fuzz_picmg(data);
});
