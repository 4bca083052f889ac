//! OEM commands (netfn 0x30) of this shelf manager: the simulated shelf's operator actions.
//!
//! | Cmd | Request | Privilege |
//! |---|---|---|
//! | 0x01 Simulated Handle | FRU device id, 0 open / 1 close | operator |
//! | 0x02 Simulated Presence | FRU device id, 0 pull out / 1 insert | operator |
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
/// Simulated Presence: pull a board out (with the subsidiary FRUs of its IPMC when it is
/// FRU 0) or insert it (handle open).
pub const SIMULATED_PRESENCE: u8 = 0x02;

/// The privilege `cmd` needs; `None` when not offered.
pub fn privilege(cmd: u8) -> Option<Privilege> {
    matches!(cmd, SIMULATED_HANDLE | SIMULATED_PRESENCE).then_some(Privilege::Operator)
}

/// Answers an OEM command.
pub fn handle<I: Ipmc>(h: &mut ShelfHandler<I>, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
    if !matches!(cmd, SIMULATED_HANDLE | SIMULATED_PRESENCE) {
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
    let done = if cmd == SIMULATED_HANDLE {
        h.ipmc.simulate_handle(fru, what == 1)
    } else {
        h.ipmc.simulate_presence(fru, what == 1)
    };
    match done {
        None => (cc::INVALID_COMMAND, vec![]),
        Some(false) => (cc::WRONG_STATE, vec![]),
        Some(true) => {
            let board = &h.config.board[i].name;
            match (cmd, what) {
                (SIMULATED_HANDLE, 1) => info!(%board, handle = "closed", "simulated handle"),
                (SIMULATED_HANDLE, _) => info!(%board, handle = "opened", "simulated handle"),
                (_, 1) => info!(%board, "simulated insertion"),
                _ => info!(%board, "simulated extraction"),
            }
            (cc::OK, vec![])
        }
    }
}
