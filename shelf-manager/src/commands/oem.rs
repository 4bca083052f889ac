//! OEM commands (netfn 0x30) of this shelf manager: the simulated shelf's operator actions.
//!
//! | Cmd | Request | Privilege |
//! |---|---|---|
//! | 0x01 Simulated Handle | FRU device id, 0 open / 1 close | operator |
//!
//! Answered with 0xC1 (invalid command) when the IPMCs are not simulated.

use tracing::info;

use super::ShelfHandler;
use crate::ipmc::Ipmc;
use crate::rmcp::users::Privilege;
use crate::rmcp::wire::cc;

/// The OEM network function.
pub const NETFN_OEM: u8 = 0x30;
/// Simulated Handle.
pub const SIMULATED_HANDLE: u8 = 0x01;

/// The privilege `cmd` needs; `None` when not offered.
pub fn privilege(cmd: u8) -> Option<Privilege> {
    (cmd == SIMULATED_HANDLE).then_some(Privilege::Operator)
}

/// Answers an OEM command.
pub fn handle<I: Ipmc>(h: &mut ShelfHandler<I>, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
    if cmd != SIMULATED_HANDLE {
        return (cc::INVALID_COMMAND, vec![]);
    }
    let [id, what, ..] = *data else {
        return (cc::BAD_LENGTH, vec![]);
    };
    let Some((i, fru)) = h.board_fru(id) else {
        return (cc::INVALID_DATA, vec![]);
    };
    if what > 1 {
        return (cc::INVALID_DATA, vec![]);
    }
    match h.ipmc.simulate_handle(fru, what == 1) {
        None => (cc::INVALID_COMMAND, vec![]),
        Some(false) => (cc::WRONG_STATE, vec![]),
        Some(true) => {
            let board = &h.config.board[i].name;
            let handle = if what == 1 { "closed" } else { "opened" };
            info!(%board, handle, "simulated handle");
            (cc::OK, vec![])
        }
    }
}
