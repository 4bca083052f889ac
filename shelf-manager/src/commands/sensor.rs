//! Sensor commands (netfn 0x04): Get Sensor Reading and Get Sensor Thresholds, and the SDR
//! records that describe the sensors (served by [`super::storage`]).
//!
//! Sensors, numbered from the model's order: feed `k` (0-based) has power-use sensor
//! `0x40 + k` in watts; 0x80 is the power budget; reading number `n` (1-based) gives board
//! `n`'s M-state as the shelf core keeps it (the board's hot-swap sensor itself belongs to
//! its IPMC, whose records the repository copies).

use super::ShelfHandler;
use crate::hotswap::{FruAddr, MState};
use crate::ipmc::Ipmc;
use crate::model::{Config, SHELF_MANAGER_IPMB};
use crate::rmcp::wire::cc;

/// Get Sensor Thresholds.
pub const GET_THRESHOLDS: u8 = 0x27;
/// Get Sensor Reading.
pub const GET_READING: u8 = 0x2D;

/// First feed sensor number.
pub const FEED_SENSOR_BASE: u8 = 0x40;
/// The power budget sensor number.
pub const BUDGET_SENSOR: u8 = 0x80;
/// Watts per raw count of a feed sensor (the SDR's M factor).
pub const WATTS_PER_COUNT: u32 = 4;
/// Power Unit offset 5, "soft power control failure": a FRU waits for power.
pub const BUDGET_OFFSET_DENIED: u8 = 5;

/// SDR record types.
const SDR_FULL: u8 = 0x01;
const SDR_COMPACT: u8 = 0x02;
const SDR_FRU_LOCATOR: u8 = 0x11;
const SDR_MC_LOCATOR: u8 = 0x12;
/// PICMG shelf management controller entity.
const ENTITY_SHMC: u8 = 0xF0;
/// Power unit entity.
const ENTITY_POWER_UNIT: u8 = 0x13;
/// FRU hot-swap sensor type (PICMG).
pub const SENSOR_TYPE_HOT_SWAP: u8 = 0xF0;
/// Power Unit sensor type.
pub const SENSOR_TYPE_POWER_UNIT: u8 = 0x09;

/// Whether the handler answers `cmd`.
pub fn known(cmd: u8) -> bool {
    matches!(cmd, GET_THRESHOLDS | GET_READING)
}

/// Answers a sensor command.
pub fn handle<I: Ipmc>(h: &mut ShelfHandler<I>, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
    let Some(&number) = data.first() else {
        return (cc::BAD_LENGTH, vec![]);
    };
    match cmd {
        GET_READING => match reading(h, number) {
            Some(r) => (cc::OK, r),
            None => (cc::NOT_PRESENT, vec![]),
        },
        GET_THRESHOLDS => match reading(h, number) {
            // No thresholds are readable.
            Some(_) => (cc::OK, vec![0; 7]),
            None => (cc::NOT_PRESENT, vec![]),
        },
        _ => (cc::INVALID_COMMAND, vec![]),
    }
}

/// The Get Sensor Reading answer of sensor `number`.
fn reading<I: Ipmc>(h: &ShelfHandler<I>, number: u8) -> Option<Vec<u8>> {
    // Event messages and scanning enabled.
    const FLAGS: u8 = 0xC0;
    if number == BUDGET_SENSOR {
        let waiting = h.shelf.budget().waiting().next().is_some();
        let state = if waiting {
            1 << BUDGET_OFFSET_DENIED
        } else {
            0
        };
        return Some(vec![0, FLAGS, state, 0]);
    }
    if number >= FEED_SENSOR_BASE {
        let feed = h
            .shelf
            .budget()
            .feeds()
            .get(usize::from(number - FEED_SENSOR_BASE))?;
        let raw = (feed.used_watts / WATTS_PER_COUNT).min(255) as u8;
        return Some(vec![raw, FLAGS, 0]);
    }
    let (_, fru) = h.board_fru(number)?;
    let state = h.shelf.state(fru)?;
    Some(vec![0, FLAGS, 1 << state.code(), 0])
}

/// The M-state whose bit a hot-swap reading carries (for tests and clients).
pub fn state_of_reading(reading: &[u8]) -> Option<MState> {
    let bits = *reading.get(2)?;
    if bits.count_ones() != 1 {
        return None;
    }
    MState::ALL.into_iter().find(|s| 1u8 << s.code() == bits)
}

fn id_string(out: &mut Vec<u8>, name: &str) {
    let bytes: Vec<u8> = name
        .bytes()
        .filter(|b| (b' '..=b'~').contains(b))
        .take(16)
        .collect();
    let bytes = if bytes.is_empty() {
        b"?".to_vec()
    } else {
        bytes
    };
    out.push(0xC0 | bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

fn header(id: u16, kind: u8) -> Vec<u8> {
    let [lo, hi] = id.to_le_bytes();
    vec![lo, hi, 0x51, kind, 0]
}

fn finish(mut rec: Vec<u8>) -> Vec<u8> {
    rec[4] = (rec.len() - 5) as u8;
    rec
}

/// The SDR repository of a shelf, as on a real shelf: the shelf manager's own sensors (per
/// feed a full power-use record, then the power budget), its MC Device Locator, then for
/// every IPMC (in the model's order of its boards) a copy of the IPMC's device SDRs
/// ([`crate::ipmc::ipmc_sdrs`]: its MC Device Locator, its FRUs' hot-swap sensors, FRU
/// Device Locators for FRUs other than 0). Record ids count from 1 in this order.
pub fn sdr_records(config: &Config) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let id = |records: &Vec<Vec<u8>>| u16::try_from(records.len() + 1).unwrap_or(u16::MAX);
    for (k, f) in config.feed.iter().enumerate() {
        let mut r = header(id(&records), SDR_FULL);
        r.extend_from_slice(&[SHELF_MANAGER_IPMB, 0, FEED_SENSOR_BASE + k as u8]);
        r.extend_from_slice(&[ENTITY_POWER_UNIT, (k + 1) as u8, 0x63, 0x40]);
        r.extend_from_slice(&[0x0B, 0x01]);
        r.extend_from_slice(&[0; 6]);
        // Units: unsigned, watts.
        r.extend_from_slice(&[0x00, 6, 0]);
        // Linear; M = WATTS_PER_COUNT, B = 0, exponents 0.
        r.extend_from_slice(&[0, WATTS_PER_COUNT as u8, 0, 0, 0, 0, 0]);
        // Analog flags, nominal, normal max/min, sensor max/min.
        r.extend_from_slice(&[0, 0, 0, 0, 0xFF, 0]);
        // Thresholds, hysteresis, reserved, OEM.
        r.extend_from_slice(&[0; 6]);
        r.extend_from_slice(&[0, 0, 0, 0, 0]);
        id_string(&mut r, &format!("Feed {} W", f.name));
        records.push(finish(r));
    }
    let mut r = header(id(&records), SDR_COMPACT);
    r.extend_from_slice(&[SHELF_MANAGER_IPMB, 0, BUDGET_SENSOR]);
    r.extend_from_slice(&[ENTITY_POWER_UNIT, 0x60, 0x63, 0x40]);
    r.extend_from_slice(&[SENSOR_TYPE_POWER_UNIT, 0x6F]);
    r.extend_from_slice(&[
        1 << BUDGET_OFFSET_DENIED,
        0,
        0,
        0,
        1 << BUDGET_OFFSET_DENIED,
        0,
    ]);
    r.extend_from_slice(&[0xC0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0]);
    id_string(&mut r, "Power budget");
    records.push(finish(r));
    // The shelf manager's own MC Device Locator (system managers such as OpenHPI's
    // ipmidirect find controllers by these): event receiver, FRU inventory, SEL, SDR
    // repository, sensor device; entity: PICMG shelf management controller.
    let mut r = header(id(&records), SDR_MC_LOCATOR);
    r.extend_from_slice(&[
        SHELF_MANAGER_IPMB,
        0,
        0,
        0x1F,
        0,
        0,
        0,
        ENTITY_SHMC,
        0x60,
        0,
    ]);
    id_string(&mut r, "Shelf manager");
    records.push(finish(r));
    let mut ipmcs: Vec<u8> = Vec::new();
    for b in &config.board {
        if !ipmcs.contains(&b.ipmb_address) {
            ipmcs.push(b.ipmb_address);
        }
    }
    for to in ipmcs {
        let frus: Vec<(u8, &str, u8)> = config
            .board
            .iter()
            .filter(|b| b.ipmb_address == to)
            .map(|b| {
                let entity = crate::ipmc::fru_entity(b.site_type.code());
                (b.fru_id, b.name.as_str(), entity)
            })
            .collect();
        for mut r in crate::ipmc::ipmc_sdrs(to, &frus) {
            let [lo, hi] = id(&records).to_le_bytes();
            r[0] = lo;
            r[1] = hi;
            records.push(r);
        }
    }
    records
}

/// The record id of the repository's locator of `board` (its IPMC's MC Device Locator for
/// FRU 0, else its FRU Device Locator).
pub fn locator_record_id(records: &[Vec<u8>], board: &crate::model::Board) -> Option<[u8; 2]> {
    records
        .iter()
        .find(|r| match (r[3], board.fru_id) {
            (SDR_MC_LOCATOR, 0) => r[5] == board.ipmb_address,
            (SDR_FRU_LOCATOR, id) => r[5] == board.ipmb_address && r[6] == id && id != 0,
            _ => false,
        })
        .map(|r| [r[0], r[1]])
}

/// The FRU of a hot-swap sensor number, for SEL records.
pub fn hot_swap_sensor(config: &Config, fru: FruAddr) -> Option<u8> {
    config
        .board
        .iter()
        .position(|b| b.ipmb_address == fru.ipmb && b.fru_id == fru.fru_id)
        .map(|i| (i + 1) as u8)
}
