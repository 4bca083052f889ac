//! Arbitrary commands, direct and bridged to the simulated IPMCs, into the simulated shelf
//! over a session: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shelf_manager::commands::fuzzing::fuzz_commands(data);
});
