//! Arbitrary bytes as RMCP / RMCP+ packets and IPMI messages: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shelf_manager::rmcp::fuzzing::fuzz_wire(data);
});
