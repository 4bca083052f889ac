//! Arbitrary messages from other nodes, and configuration changes, into an executive core with
//! CPG, EVS, CLM, the key service, quorum, CKPT and EVT.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ais_core::exec::fuzzing::fuzz_exec_deliver(data);
});
