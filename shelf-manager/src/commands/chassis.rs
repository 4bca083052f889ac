//! Chassis commands (netfn 0x00): Get Chassis Status.

use super::ShelfHandler;
use crate::hotswap::MState;
use crate::ipmc::Ipmc;
use crate::rmcp::wire::cc;

/// Get Chassis Status.
pub const GET_CHASSIS_STATUS: u8 = 0x01;

/// Whether the handler answers `cmd`.
pub fn known(cmd: u8) -> bool {
    cmd == GET_CHASSIS_STATUS
}

/// Answers a chassis command. The shelf is "powered" when any FRU is in M4.
pub fn handle<I: Ipmc>(h: &mut ShelfHandler<I>, cmd: u8, _data: &[u8]) -> (u8, Vec<u8>) {
    match cmd {
        GET_CHASSIS_STATUS => {
            let on = (1..=h.max_fru_id())
                .filter_map(|id| h.board_fru(id))
                .any(|(_, fru)| h.shelf.state(fru) == Some(MState::M4));
            // Power state (bit 0 on; power restore policy "always off" = 00), last power
            // event, miscellaneous state.
            (cc::OK, vec![u8::from(on), 0x00, 0x00])
        }
        _ => (cc::INVALID_COMMAND, vec![]),
    }
}
