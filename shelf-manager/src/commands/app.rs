//! Application commands (netfn 0x06) past the session ones: Get Device ID.

use super::ShelfHandler;
use crate::ipmc::Ipmc;
use crate::rmcp::wire::cc;

/// Get Device ID.
pub const GET_DEVICE_ID: u8 = 0x01;

/// Whether the handler answers `cmd`.
pub fn known(cmd: u8) -> bool {
    cmd == GET_DEVICE_ID
}

/// Answers an application command.
pub fn handle<I: Ipmc>(_h: &mut ShelfHandler<I>, cmd: u8, _data: &[u8]) -> (u8, Vec<u8>) {
    match cmd {
        GET_DEVICE_ID => (
            cc::OK,
            vec![
                0x00, // device id
                0x01, // device revision 1; no device SDRs (the repository has them)
                0x01, // firmware 1.
                0x00, // .00
                0x02, // IPMI 2.0
                // Additional device support: chassis, IPMB event receiver, FRU inventory,
                // SEL, SDR repository, sensor device.
                0x80 | 0x10 | 0x08 | 0x04 | 0x02 | 0x01,
                0x00,
                0x00,
                0x00, // manufacturer id: unspecified
                0x01,
                0x00, // product id
            ],
        ),
        _ => (cc::INVALID_COMMAND, vec![]),
    }
}
