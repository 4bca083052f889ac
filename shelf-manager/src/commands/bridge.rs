//! Requests bridged with Send Message to the boards' IPMCs (`ipmitool -b 0 -t 0x82`,
//! OpenHPI's ipmidirect): the session layer checks the privilege and formats the answer;
//! this module delivers the request.
//!
//! The IPMC at the request's IPMB-0 address answers it through [`Ipmc::request`], except for
//! what concerns the FRUs' hot-swap state, which the shelf core keeps (a real IPMC reports
//! its state changes to the shelf manager, which is where this core learns them): the
//! hot-swap sensor reading (sensor number = the FRU id inside the IPMC), Set FRU Activation
//! and Set/Get FRU Activation Policy are answered by the shelf core for that FRU, and Set
//! Power Level passes the same budget check as through the shelf manager. An address with no
//! configured board, or whose IPMC does not answer (absent, vanished), fails the Send
//! Message with 0x83, as on an IPMB where nobody acknowledges. Requests to 0x20 are the
//! shelf manager's own commands.

use super::{ShelfHandler, picmg, sensor};
use crate::hotswap::FruAddr;
use crate::ipmc::Ipmc;
use crate::ipmc::sim_commands::{GET_DEVICE_ID, NETFN_APP, NETFN_GROUP, NETFN_SENSOR};
use crate::model::SHELF_MANAGER_IPMB;
use crate::rmcp::server::{Handler, SEND_MESSAGE_NAK};
use crate::rmcp::users::Privilege;
use crate::rmcp::wire::{Request, cc};

/// The privilege a request bridged to `to` needs (the same as the command needs directly);
/// `None` for a command the shelf manager does not classify (the IPMC answers it, at User).
pub fn privilege<I: Ipmc>(
    h: &ShelfHandler<I>,
    to: u8,
    netfn: u8,
    cmd: u8,
    data: &[u8],
) -> Option<Privilege> {
    if to == SHELF_MANAGER_IPMB {
        return h.privilege(netfn, cmd, data);
    }
    match netfn {
        NETFN_GROUP if data.first() == Some(&picmg::PICMG_ID) => picmg::privilege(cmd),
        _ => Some(Privilege::User),
    }
}

/// Delivers `req` to the controller at `req.rs_addr`; `Err(0x83)` when nobody answers there.
pub fn deliver<I: Ipmc>(h: &mut ShelfHandler<I>, req: &Request<'_>) -> Result<(u8, Vec<u8>), u8> {
    let to = req.rs_addr;
    if to == SHELF_MANAGER_IPMB {
        return Ok(if h.privilege(req.netfn, req.cmd, req.data).is_some() {
            h.answer(req)
        } else {
            (cc::INVALID_COMMAND, vec![])
        });
    }
    let board_of = |h: &ShelfHandler<I>, fru_id: u8| {
        h.config
            .board
            .iter()
            .position(|b| b.ipmb_address == to && b.fru_id == fru_id)
    };
    if !h.config.board.iter().any(|b| b.ipmb_address == to) {
        return Err(SEND_MESSAGE_NAK);
    }
    let hot_swap_reading = matches!(
        (req.netfn, req.cmd, req.data),
        (NETFN_SENSOR, sensor::GET_READING, [_, ..])
    );
    let activation = matches!(
        (req.netfn, req.data),
        (NETFN_GROUP, [picmg::PICMG_ID, _, ..])
    ) && matches!(
        req.cmd,
        picmg::SET_ACTIVATION
            | picmg::SET_ACTIVATION_POLICY
            | picmg::GET_ACTIVATION_POLICY
            | picmg::SET_POWER_LEVEL
    );
    let intercepted = hot_swap_reading || activation;
    if !intercepted {
        return h
            .ipmc
            .request(to, req.netfn, req.cmd, req.data)
            .map_err(|_| SEND_MESSAGE_NAK);
    }
    // The IPMC must be there for the shelf core to answer in its name.
    if h.ipmc.request(to, NETFN_APP, GET_DEVICE_ID, &[]).is_err() {
        return Err(SEND_MESSAGE_NAK);
    }
    Ok(match (req.netfn, req.data) {
        (NETFN_SENSOR, [number, ..]) => {
            let fru = FruAddr {
                ipmb: to,
                fru_id: *number,
            };
            match h.shelf.state(fru) {
                Some(state) => (cc::OK, vec![0, 0xC0, 1 << state.code(), 0]),
                None => (cc::NOT_PRESENT, vec![]),
            }
        }
        (_, [_, fru_id, rest @ ..]) => match board_of(h, *fru_id) {
            None => (cc::INVALID_DATA, vec![picmg::PICMG_ID]),
            Some(i) if req.cmd == picmg::SET_POWER_LEVEL => match *rest {
                [level, copy, ..] => picmg::set_power_level(h, i, level, copy),
                _ => (cc::BAD_LENGTH, vec![picmg::PICMG_ID]),
            },
            Some(i) => {
                // As the shelf manager's own FRU device i + 1.
                let mut data = vec![picmg::PICMG_ID, (i + 1) as u8];
                data.extend_from_slice(rest);
                picmg::handle(h, req.cmd, &data)
            }
        },
        _ => (cc::INVALID_DATA, vec![]),
    })
}
