//! `parse_frame` on arbitrary bytes; a frame that parses must re-emit to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    totem_dpdk::wire::fuzz_parse_roundtrip(data);
});
