//! The PICMG 3.0 group extension (netfn 0x2C, first data byte 0x00 in requests and
//! responses): properties, address info, shelf address info, FRU activation and its policy,
//! device locator record ids, and, forwarded to the board's IPMC, FRU control, LEDs and
//! power levels (Set Power Level within the budget's grant only).

use tracing::{info, warn};

use super::ShelfHandler;
use crate::hotswap::{FruAddr, MState, Policy};
use crate::ipmc::Ipmc;
use crate::ipmc::sim_commands::NETFN_GROUP;
use crate::model::SHELF_MANAGER_IPMB;
use crate::rmcp::users::Privilege;
use crate::rmcp::wire::cc;
use crate::shelf::ShelfError;

/// The PICMG identifier byte.
pub const PICMG_ID: u8 = 0x00;
/// Get PICMG Properties.
pub const GET_PROPERTIES: u8 = 0x00;
/// Get Address Info.
pub const GET_ADDRESS_INFO: u8 = 0x01;
/// Set FRU Activation Policy.
pub const SET_ACTIVATION_POLICY: u8 = 0x0A;
/// Get FRU Activation Policy.
pub const GET_ACTIVATION_POLICY: u8 = 0x0B;
/// Set FRU Activation.
pub const SET_ACTIVATION: u8 = 0x0C;
/// Get Shelf Address Info.
pub const GET_SHELF_ADDRESS_INFO: u8 = 0x02;
pub use crate::ipmc::sim_commands::{
    COMPUTE_POWER_PROPERTIES, FRU_CONTROL, FRU_CONTROL_CAPABILITIES, GET_LED_COLOR,
    GET_LED_PROPERTIES, GET_LED_STATE, GET_LOCATOR_RECORD_ID, GET_POWER_LEVEL, SET_LED_STATE,
    SET_POWER_LEVEL,
};

/// Completion code when the IPMC behind a FRU does not answer (timeout while processing).
const IPMC_SILENT: u8 = 0xC3;
/// Longest shelf address string (PICMG 3.0: 20 bytes).
const SHELF_ADDRESS_MAX: usize = 20;

/// PICMG extension version 2.2 (PICMG 3.0 R2.0), low nibble major.
const EXTENSION_VERSION: u8 = 0x22;
/// Site type of a dedicated shelf manager.
const SITE_DEDICATED_SHMC: u8 = 0x03;

/// The privilege `cmd` needs; `None` when not offered.
pub fn privilege(cmd: u8) -> Option<Privilege> {
    match cmd {
        GET_PROPERTIES
        | GET_ADDRESS_INFO
        | GET_ACTIVATION_POLICY
        | GET_SHELF_ADDRESS_INFO
        | GET_LED_PROPERTIES
        | GET_LED_COLOR
        | GET_LED_STATE
        | GET_LOCATOR_RECORD_ID
        | COMPUTE_POWER_PROPERTIES
        | GET_POWER_LEVEL
        | FRU_CONTROL_CAPABILITIES => Some(Privilege::User),
        SET_ACTIVATION_POLICY | SET_ACTIVATION | FRU_CONTROL | SET_LED_STATE | SET_POWER_LEVEL => {
            Some(Privilege::Operator)
        }
        _ => None,
    }
}

fn ok(mut data: Vec<u8>) -> (u8, Vec<u8>) {
    data.insert(0, PICMG_ID);
    (cc::OK, data)
}

fn fail(code: u8) -> (u8, Vec<u8>) {
    (code, vec![PICMG_ID])
}

/// Answers a PICMG command.
pub fn handle<I: Ipmc>(h: &mut ShelfHandler<I>, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
    if data.first() != Some(&PICMG_ID) {
        return (cc::INVALID_COMMAND, vec![]);
    }
    let args = &data[1..];
    match cmd {
        GET_PROPERTIES => ok(vec![EXTENSION_VERSION, h.max_fru_id(), 0]),
        GET_ADDRESS_INFO => address_info(h, args),
        GET_ACTIVATION_POLICY => {
            let Some(&id) = args.first() else {
                return fail(cc::BAD_LENGTH);
            };
            if id == 0 {
                return ok(vec![0]);
            }
            let Some((_, fru)) = h.board_fru(id) else {
                return fail(cc::INVALID_DATA);
            };
            let p = h.shelf.policy(fru).unwrap_or_default();
            ok(vec![
                u8::from(p.locked) | (u8::from(p.deactivation_locked) << 1),
            ])
        }
        SET_ACTIVATION_POLICY => {
            let [id, mask, bits, ..] = *args else {
                return fail(cc::BAD_LENGTH);
            };
            let Some((i, fru)) = h.board_fru(id) else {
                return fail(cc::INVALID_DATA);
            };
            let old = h.shelf.policy(fru).unwrap_or_default();
            let pick = |bit: u8, was: bool| {
                if mask & bit != 0 {
                    bits & bit != 0
                } else {
                    was
                }
            };
            let new = Policy {
                locked: pick(1, old.locked),
                deactivation_locked: pick(2, old.deactivation_locked),
            };
            // Clearing Locked in M1, or Deactivation-Locked in M4, is how system managers
            // ask a FRU to activate or deactivate (HPI's insertion and extraction action
            // requests through ipmidirect, `ipmi_sim`'s ATCA module): the machine moves when
            // the bit goes from set to clear, so a bit already clear is set first.
            let state = h.shelf.state(fru);
            let clears = |bit: u8| mask & bit != 0 && bits & bit == 0;
            let relock = Policy {
                locked: new.locked || (clears(1) && !old.locked && state == Some(MState::M1)),
                deactivation_locked: new.deactivation_locked
                    || (clears(2) && !old.deactivation_locked && state == Some(MState::M4)),
            };
            let result = if relock == new {
                h.shelf.set_policy(fru, new)
            } else {
                h.shelf
                    .set_policy(fru, relock)
                    .and_then(|()| h.shelf.set_policy(fru, new))
            };
            answer(h, i, "set activation policy", result)
        }
        SET_ACTIVATION => {
            let [id, what, ..] = *args else {
                return fail(cc::BAD_LENGTH);
            };
            let Some((i, fru)) = h.board_fru(id) else {
                return fail(cc::INVALID_DATA);
            };
            let result = match what {
                0 => h.shelf.deactivate(fru),
                1 => h.shelf.activate(fru),
                _ => return fail(cc::INVALID_DATA),
            };
            let verb = if what == 1 { "activate" } else { "deactivate" };
            answer(h, i, verb, result)
        }
        GET_SHELF_ADDRESS_INFO => {
            let name = h.config.shelf.name.as_bytes();
            let name = &name[..name.len().min(SHELF_ADDRESS_MAX)];
            let mut out = vec![0xC0 | name.len() as u8];
            out.extend_from_slice(name);
            ok(out)
        }
        GET_LOCATOR_RECORD_ID => {
            let Some(&id) = args.first() else {
                return fail(cc::BAD_LENGTH);
            };
            if id == 0 {
                return fail(cc::NOT_PRESENT);
            }
            let Some((i, _)) = h.board_fru(id) else {
                return fail(cc::INVALID_DATA);
            };
            // The locator of the board in the repository (its IPMC's MC Device Locator).
            match super::sensor::locator_record_id(&h.sdrs, &h.config.board[i]) {
                Some(r) => ok(r.to_vec()),
                None => fail(cc::NOT_PRESENT),
            }
        }
        SET_POWER_LEVEL => {
            let [id, level, copy, ..] = *args else {
                return fail(cc::BAD_LENGTH);
            };
            let Some((i, _)) = h.board_fru(id) else {
                return fail(cc::INVALID_DATA);
            };
            set_power_level(h, i, level, copy)
        }
        FRU_CONTROL
        | GET_LED_PROPERTIES
        | GET_LED_COLOR
        | SET_LED_STATE
        | GET_LED_STATE
        | COMPUTE_POWER_PROPERTIES
        | GET_POWER_LEVEL
        | FRU_CONTROL_CAPABILITIES => {
            let Some(&id) = args.first() else {
                return fail(cc::BAD_LENGTH);
            };
            let Some((i, _)) = h.board_fru(id) else {
                return fail(cc::INVALID_DATA);
            };
            forward(h, i, cmd, &args[1..])
        }
        _ => (cc::INVALID_COMMAND, vec![]),
    }
}

/// Forwards a PICMG command about board `board` (by index) to its IPMC, with the FRU id
/// the IPMC knows the board by; 0xC3 when the IPMC does not answer.
fn forward<I: Ipmc>(h: &mut ShelfHandler<I>, board: usize, cmd: u8, rest: &[u8]) -> (u8, Vec<u8>) {
    let b = &h.config.board[board];
    let (to, fru_id, name) = (b.ipmb_address, b.fru_id, b.name.clone());
    let mut data = vec![PICMG_ID, fru_id];
    data.extend_from_slice(rest);
    match h.ipmc.request(to, NETFN_GROUP, cmd, &data) {
        Ok((code, out)) => {
            if code == cc::OK && privilege(cmd) == Some(Privilege::Operator) {
                info!(board = %name, cmd, "system manager request");
            }
            (code, out)
        }
        Err(_) => {
            warn!(board = %name, cmd, "IPMC does not answer");
            fail(IPMC_SILENT)
        }
    }
}

/// Set Power Level from a system manager, for board `board` (by index): only while the
/// board is active (M4) with its power granted, and only to a level that draws no more
/// than the level the budget granted (its desired level); 0xFF changes nothing. Level 0 is
/// refused: turning a payload off is a deactivation. The IPMC then sets the level.
pub(crate) fn set_power_level<I: Ipmc>(
    h: &mut ShelfHandler<I>,
    board: usize,
    level: u8,
    copy: u8,
) -> (u8, Vec<u8>) {
    let b = &h.config.board[board];
    let fru = FruAddr {
        ipmb: b.ipmb_address,
        fru_id: b.fru_id,
    };
    let name = b.name.clone();
    if level == 0xFF {
        return ok(vec![]);
    }
    let granted = b.watts_at(b.desired_level());
    if level == 0 || usize::from(level) > b.power_levels.len() || b.watts_at(level) > granted {
        warn!(board = %name, level, granted_watts = granted, "set power level refused: outside the budget's grant");
        return fail(cc::INVALID_DATA);
    }
    if h.shelf.state(fru) != Some(MState::M4) || !h.shelf.budget().is_powered(fru) {
        warn!(board = %name, level, "set power level refused: the FRU is not active");
        return fail(cc::WRONG_STATE);
    }
    forward(h, board, SET_POWER_LEVEL, &[level, copy])
}

fn answer<I: Ipmc>(
    h: &ShelfHandler<I>,
    board: usize,
    what: &str,
    result: Result<(), ShelfError>,
) -> (u8, Vec<u8>) {
    let name = &h.config.board[board].name;
    match result {
        Ok(()) => {
            info!(board = %name, what, "system manager request");
            ok(vec![])
        }
        Err(e) => {
            warn!(board = %name, what, error = %e, "system manager request refused");
            fail(match e {
                ShelfError::UnknownFru(_) => cc::INVALID_DATA,
                _ => cc::WRONG_STATE,
            })
        }
    }
}

/// Get Address Info: by FRU device id (default 0, the shelf manager), or by hardware address
/// (key type 0), IPMB-0 address (1) or site number and type (3).
fn address_info<I: Ipmc>(h: &ShelfHandler<I>, args: &[u8]) -> (u8, Vec<u8>) {
    let shelf_manager = vec![
        SHELF_MANAGER_IPMB >> 1,
        SHELF_MANAGER_IPMB,
        0xFF,
        0,
        1,
        SITE_DEDICATED_SHMC,
    ];
    let boards = &h.config.board;
    let found = match args {
        [] | [0] => return ok(shelf_manager),
        [id] => usize::from(*id)
            .checked_sub(1)
            .filter(|&i| i < boards.len()),
        [_, 0, key, ..] => boards.iter().position(|b| b.ipmb_address >> 1 == *key),
        [_, 1, key, ..] => boards.iter().position(|b| b.ipmb_address == *key),
        [_, 3, key, site_type, ..] => boards
            .iter()
            .position(|b| b.site_number == *key && b.site_type.code() == *site_type),
        [_, 3, key] => boards.iter().position(|b| b.site_number == *key),
        _ => return fail(cc::INVALID_DATA),
    };
    let Some(i) = found else {
        return fail(cc::INVALID_DATA);
    };
    let b = &boards[i];
    // Asked by its FRU device id here, the FRU is the shelf manager's FRU i + 1; found by
    // hardware address, IPMB-0 address or site, it is the FRU inside the board's IPMC (its
    // own FRU id), which a system manager then reaches by bridging.
    let fru_id = match args {
        [_] => u8::try_from(i + 1).unwrap_or(u8::MAX),
        _ => b.fru_id,
    };
    ok(vec![
        b.ipmb_address >> 1,
        b.ipmb_address,
        0xFF,
        fru_id,
        b.site_number,
        b.site_type.code(),
    ])
}
