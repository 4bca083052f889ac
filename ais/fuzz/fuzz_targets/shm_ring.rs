//! A client's shared-memory segment as the executive reads it: arbitrary control page
//! (indices, flags) and ring bytes; the reader must report corruption, never panic or read
//! outside the segment.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::shm::fuzzing::fuzz_ring_read(data);
});
