//! Arbitrary bytes as Get SEL Info / Get SEL Entry responses and the events decoded from them: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hpi::fuzzing::fuzz_sel(data);
});
