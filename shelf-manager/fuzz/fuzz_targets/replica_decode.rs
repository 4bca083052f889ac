//! Arbitrary bytes as a replicated shelf snapshot (what a standby reads from the checkpoint):
//! never a panic; what decodes restores against the example shelf or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shelf_manager::replica::fuzzing::fuzz_decode(data);
});
