//! Arbitrary bytes as IPMB responses embedded in a Send Message answer: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hpi::fuzzing::fuzz_bridged(data);
});
