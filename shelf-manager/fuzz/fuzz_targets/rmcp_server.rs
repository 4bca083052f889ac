//! Arbitrary datagram sequences into an RMCP+ server: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shelf_manager::rmcp::fuzzing::fuzz_server(data);
});
