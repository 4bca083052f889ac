//! The PICMG 3.0 group extension (netfn 0x2C, first data byte 0x00 in requests and
//! responses): properties, address info, FRU activation and its policy.

use tracing::{info, warn};

use super::ShelfHandler;
use crate::hotswap::Policy;
use crate::ipmc::Ipmc;
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

/// PICMG extension version 2.2 (PICMG 3.0 R2.0), low nibble major.
const EXTENSION_VERSION: u8 = 0x22;
/// Site type of a dedicated shelf manager.
const SITE_DEDICATED_SHMC: u8 = 0x03;

/// The privilege `cmd` needs; `None` when not offered.
pub fn privilege(cmd: u8) -> Option<Privilege> {
    match cmd {
        GET_PROPERTIES | GET_ADDRESS_INFO | GET_ACTIVATION_POLICY => Some(Privilege::User),
        SET_ACTIVATION_POLICY | SET_ACTIVATION => Some(Privilege::Operator),
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
            let result = h.shelf.set_policy(fru, new);
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
        _ => (cc::INVALID_COMMAND, vec![]),
    }
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
    ok(vec![
        b.ipmb_address >> 1,
        b.ipmb_address,
        0xFF,
        u8::try_from(i + 1).unwrap_or(u8::MAX),
        b.site_number,
        b.site_type.code(),
    ])
}
