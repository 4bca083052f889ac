//! Arbitrary bytes as Get Sensor Reading / Thresholds responses: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hpi::fuzzing::fuzz_sensor(data);
});
