//! The IPMC side: what the shelf manager sends to a board's IPM controller, what comes back,
//! the [`Ipmc`] trait the shelf manager talks through, and [`SimIpmc`], simulated boards that
//! answer like real ones.
//!
//! [`SimIpmc`] plays every board of a [`Config`]: the test (or demo) inserts boards, moves
//! their handles and pulls them out, and each board honours the failure knobs of its
//! `[board.sim]` table. It is the only implementation of [`Ipmc`] in this crate.
//!
//! A real shelf reaches its IPMCs over IPMB-0, two I2C buses (A and B) to every board; that
//! implementation of [`Ipmc`] is not written. It would send each [`ToIpmc`] as an IPMB request
//! to the FRU's IPMC (IPMB-0 address = hardware address × 2; Set FRU Activation, Set and Get
//! Power Level, Get Device ID), retry a request that times out with the same sequence number
//! on the other bus, match answers by (responder, sequence number, command), turn the IPMCs'
//! hot-swap Platform Event messages into [`Report`]s, carry [`Ipmc::request`] for bridged
//! commands, and isolate a failed bus (PICMG Set IPMB State) while the other carries the
//! traffic. On Linux it would sit on the kernel's IPMB drivers (`ipmb-dev-int`'s
//! `/dev/ipmb-N`, or the IPMI message handler's `ipmi_ipmb` interface), which needs an I2C
//! controller that can act as a slave. docs/shelf-manager.md, "The hardware IPMB path", has
//! the details.

use std::collections::VecDeque;

use crate::hotswap::{Command, FruAddr};
use crate::model::{Config, SimKnobs};

/// What the simulated IPMCs answer, by network function and command.
pub mod sim_commands {
    /// App network function.
    pub const NETFN_APP: u8 = 0x06;
    /// Sensor/event network function.
    pub const NETFN_SENSOR: u8 = 0x04;
    /// Storage network function.
    pub const NETFN_STORAGE: u8 = 0x0A;
    /// Group extension network function (PICMG, first data byte 0x00).
    pub const NETFN_GROUP: u8 = 0x2C;
    /// App: Get Device ID.
    pub const GET_DEVICE_ID: u8 = 0x01;
    /// Sensor/event: Set Event Receiver.
    pub const SET_EVENT_RECEIVER: u8 = 0x00;
    /// Sensor/event: Get Event Receiver.
    pub const GET_EVENT_RECEIVER: u8 = 0x01;
    /// Sensor: Get Device SDR Info.
    pub const GET_DEVICE_SDR_INFO: u8 = 0x20;
    /// Sensor: Get Device SDR.
    pub const GET_DEVICE_SDR: u8 = 0x21;
    /// Sensor: Reserve Device SDR Repository.
    pub const RESERVE_DEVICE_SDR: u8 = 0x22;
    /// Storage: Get FRU Inventory Area Info.
    pub const GET_FRU_AREA_INFO: u8 = 0x10;
    /// Storage: Read FRU Data.
    pub const READ_FRU_DATA: u8 = 0x11;
    /// PICMG: Get PICMG Properties.
    pub const GET_PROPERTIES: u8 = 0x00;
    /// PICMG: Get Address Info.
    pub const GET_ADDRESS_INFO: u8 = 0x01;
    /// PICMG: FRU Control.
    pub const FRU_CONTROL: u8 = 0x04;
    /// PICMG: Get FRU LED Properties.
    pub const GET_LED_PROPERTIES: u8 = 0x05;
    /// PICMG: Get LED Color Capabilities.
    pub const GET_LED_COLOR: u8 = 0x06;
    /// PICMG: Set FRU LED State.
    pub const SET_LED_STATE: u8 = 0x07;
    /// PICMG: Get FRU LED State.
    pub const GET_LED_STATE: u8 = 0x08;
    /// PICMG: Get Device Locator Record ID.
    pub const GET_LOCATOR_RECORD_ID: u8 = 0x0D;
    /// PICMG: Compute Power Properties.
    pub const COMPUTE_POWER_PROPERTIES: u8 = 0x10;
    /// PICMG: Set Power Level.
    pub const SET_POWER_LEVEL: u8 = 0x11;
    /// PICMG: Get Power Level.
    pub const GET_POWER_LEVEL: u8 = 0x12;
    /// PICMG: FRU Control Capabilities.
    pub const FRU_CONTROL_CAPABILITIES: u8 = 0x1E;
}

/// Completion codes the simulated IPMCs answer with.
mod code {
    pub(super) const OK: u8 = 0x00;
    pub(super) const INVALID_COMMAND: u8 = 0xC1;
    pub(super) const BAD_RESERVATION: u8 = 0xC5;
    pub(super) const BAD_LENGTH: u8 = 0xC7;
    pub(super) const OUT_OF_RANGE: u8 = 0xC9;
    pub(super) const NOT_PRESENT: u8 = 0xCB;
    pub(super) const INVALID_DATA: u8 = 0xCC;
    pub(super) const WRONG_STATE: u8 = 0xD5;
}

/// A FRU inventory image: the common header and a board info area (manufacturer
/// "openais-rs", `product`, `serial`, part number "shelf-sim"), with its checksums.
pub fn board_fru_image(product: &str, serial: &str) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, text: &str) {
        let bytes = &text.as_bytes()[..text.len().min(63)];
        out.push(0xC0 | bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    fn zero_checksum(bytes: &[u8]) -> u8 {
        bytes
            .iter()
            .fold(0u8, |a, &b| a.wrapping_add(b))
            .wrapping_neg()
    }
    let mut area = vec![0x01, 0, 0x00, 0, 0, 0];
    field(&mut area, "openais-rs");
    field(&mut area, product);
    field(&mut area, serial);
    field(&mut area, "shelf-sim");
    field(&mut area, "");
    area.push(0xC1);
    while (area.len() + 1) % 8 != 0 {
        area.push(0);
    }
    area[1] = ((area.len() + 1) / 8) as u8;
    area.push(zero_checksum(&area));
    let mut image = vec![0x01, 0, 0, 1, 0, 0, 0];
    image.push(zero_checksum(&image));
    image.extend_from_slice(&area);
    image
}

/// The LEDs of a simulated FRU: 0 the blue hot-swap LED, 1 the red LED 1.
pub const SIM_LEDS: usize = 2;

/// An LED's override state, set by Set FRU LED State.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedOverride {
    /// 0 off, 0x01–0xFA blink (off time in tens of ms), 0xFF on.
    pub function: u8,
    /// On time of a blink in tens of ms.
    pub on_duration: u8,
    /// PICMG colour code (1 blue, 2 red, …).
    pub colour: u8,
}

/// A message from the shelf manager to an IPMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToIpmc {
    /// A hot-swap command (Set FRU Activation, Set Power Level).
    Command(Command),
    /// Get Power Level, desired steady state: the level and watts the FRU asks for.
    GetDesiredPower,
    /// Get Device ID, used as a health check.
    GetDeviceId,
}

/// What an IPMC tells the shelf manager: answers and the board's own events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Report {
    /// The board was inserted and has management power.
    Inserted,
    /// The handle closed.
    HandleClosed,
    /// The handle opened.
    HandleOpened,
    /// The board was pulled out.
    Extracted,
    /// Answer to [`ToIpmc::GetDesiredPower`].
    DesiredPower {
        /// The level asked for.
        level: u8,
        /// The watts at that level.
        watts: u32,
    },
    /// The payload is powered and running.
    ActivationDone,
    /// The payload is off after a deactivation.
    DeactivationDone,
    /// The payload failed and is shutting down.
    PayloadFailed,
    /// Answer to [`ToIpmc::GetDeviceId`].
    Alive,
}

/// The IPMC did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("IPMC {0} does not answer")]
pub struct NoAnswer(pub FruAddr);

/// The shelf manager's view of the IPMCs.
///
/// Implemented by [`SimIpmc`] (simulated boards, for tests and the demo). A hardware
/// implementation over IPMB-0 (dual I2C buses A/B, Linux `ipmb-dev-int` or `ipmi_ipmb`) is not
/// written; the module documentation and docs/shelf-manager.md say what it would do.
pub trait Ipmc {
    /// Delivers `message` to the IPMC of `to`; its answers come from [`Ipmc::poll_report`].
    ///
    /// # Errors
    /// [`NoAnswer`] when the IPMC cannot be reached.
    fn send(&mut self, to: FruAddr, message: ToIpmc) -> Result<(), NoAnswer>;

    /// The next report from any IPMC, in the order they happened.
    fn poll_report(&mut self) -> Option<(FruAddr, Report)>;

    /// Moves the injector handle of `fru`'s board (`closed` or open), for an operator at a
    /// simulated shelf. `None` when the IPMCs are real boards whose handles only people
    /// move (the default); `Some(false)` when the board is not in.
    fn simulate_handle(&mut self, fru: FruAddr, closed: bool) -> Option<bool> {
        let _ = (fru, closed);
        None
    }

    /// Inserts (`inserted`) or pulls out the board of `fru`, for an operator at a simulated
    /// shelf. `None` when the IPMCs are real boards (the default); `Some(false)` when the
    /// board is already in (out), or is a subsidiary FRU whose carrier is not in.
    fn simulate_presence(&mut self, fru: FruAddr, inserted: bool) -> Option<bool> {
        let _ = (fru, inserted);
        None
    }

    /// An IPMI request for the IPMC at IPMB-0 address `to` (a system manager's request the
    /// shelf manager bridges or forwards), answered by the IPMC: (completion code, data).
    /// The default reaches no IPMC (the hardware IPMB path is not in this crate).
    ///
    /// # Errors
    /// [`NoAnswer`] when no IPMC answers at `to`.
    fn request(&mut self, to: u8, netfn: u8, cmd: u8, data: &[u8]) -> Result<Answer, NoAnswer> {
        let _ = (netfn, cmd, data);
        Err(NoAnswer(FruAddr {
            ipmb: to,
            fru_id: 0,
        }))
    }
}

/// An IPMC's answer to a request: (completion code, response data).
pub type Answer = (u8, Vec<u8>);

/// One simulated board.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SimBoard {
    name: String,
    addr: FruAddr,
    desired_level: u8,
    desired_watts: u32,
    knobs: SimKnobs,
    present: bool,
    answering: bool,
    /// Between Set FRU Activation (activate) and the end of the deactivation.
    activating: bool,
    payload_level: u8,
    site_number: u8,
    site_type: u8,
    power_levels: Vec<u32>,
    /// LED override states (`None`: under local control).
    leds: [Option<LedOverride>; SIM_LEDS],
    /// Lamp tests running (the duration asked, in hundreds of ms).
    lamp_test: [Option<u8>; SIM_LEDS],
    /// FRU Control requests taken (option codes, in order).
    controls: Vec<u8>,
}

/// Simulated IPMCs for every board of a shelf model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIpmc {
    boards: Vec<SimBoard>,
    reports: VecDeque<(FruAddr, Report)>,
}

impl SimIpmc {
    /// One simulated board per `[[board]]`, none inserted yet.
    pub fn new(config: &Config) -> SimIpmc {
        let boards = config
            .board
            .iter()
            .map(|b| SimBoard {
                name: b.name.clone(),
                addr: FruAddr {
                    ipmb: b.ipmb_address,
                    fru_id: b.fru_id,
                },
                desired_level: b.desired_level(),
                desired_watts: b.watts_at(b.desired_level()),
                knobs: b.sim,
                present: false,
                answering: true,
                activating: false,
                payload_level: 0,
                site_number: b.site_number,
                site_type: b.site_type.code(),
                power_levels: b.power_levels.clone(),
                leds: [None; SIM_LEDS],
                lamp_test: [None; SIM_LEDS],
                controls: Vec::new(),
            })
            .collect();
        SimIpmc {
            boards,
            reports: VecDeque::new(),
        }
    }

    /// Inserts the board called `name` (handle open). Returns `false` for an unknown name or a
    /// board already in.
    pub fn insert(&mut self, name: &str) -> bool {
        self.physical(
            name,
            |b| !b.present,
            Report::Inserted,
            |b| {
                b.present = true;
                b.answering = true;
            },
        )
    }

    /// Closes the handle of the board called `name`; `false` if it is not in.
    pub fn close_handle(&mut self, name: &str) -> bool {
        self.physical(name, |b| b.present, Report::HandleClosed, |_| {})
    }

    /// Opens the handle of the board called `name`; `false` if it is not in.
    pub fn open_handle(&mut self, name: &str) -> bool {
        self.physical(name, |b| b.present, Report::HandleOpened, |_| {})
    }

    /// Pulls the board called `name` out; `false` if it is not in. A board that is FRU 0 of
    /// its IPMC takes that IPMC with it, so its subsidiary FRUs (RTMs, AMCs: the other FRUs
    /// at the same IPMB address) leave with it: each reports its own extraction after the
    /// board's, in FRU id order, as a shelf manager that lost the IPMC would log them.
    pub fn extract(&mut self, name: &str) -> bool {
        let pull = |b: &mut SimBoard| {
            b.present = false;
            b.activating = false;
            b.payload_level = 0;
        };
        if !self.physical(name, |b| b.present, Report::Extracted, pull) {
            return false;
        }
        let addr = self
            .boards
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.addr)
            .expect("physical found it");
        if addr.fru_id == 0 {
            let mut behind: Vec<(u8, String)> = self
                .boards
                .iter()
                .filter(|b| b.addr.ipmb == addr.ipmb && b.addr.fru_id != 0 && b.present)
                .map(|b| (b.addr.fru_id, b.name.clone()))
                .collect();
            behind.sort();
            for (_, sub) in behind {
                self.physical(&sub, |b| b.present, Report::Extracted, pull);
            }
        }
        true
    }

    /// Lets the board called `name` answer again after it vanished; `false` for an unknown
    /// name.
    pub fn reconnect(&mut self, name: &str) -> bool {
        match self.boards.iter_mut().find(|b| b.name == name) {
            Some(b) => {
                b.answering = true;
                true
            }
            None => false,
        }
    }

    /// The payload power level of the board called `name` (0: off).
    pub fn payload_level(&self, name: &str) -> Option<u8> {
        self.boards
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.payload_level)
    }

    /// The FRU Control options the board called `name` took, in order.
    pub fn controls(&self, name: &str) -> Option<&[u8]> {
        self.boards
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.controls.as_slice())
    }

    /// The override state of LED `led` of the board called `name` (`None` under local
    /// control, or an unknown board or LED).
    pub fn led_override(&self, name: &str, led: usize) -> Option<LedOverride> {
        let b = self.boards.iter().find(|b| b.name == name)?;
        *b.leds.get(led)?
    }

    fn physical(
        &mut self,
        name: &str,
        allowed: impl Fn(&SimBoard) -> bool,
        report: Report,
        change: impl FnOnce(&mut SimBoard),
    ) -> bool {
        let Some(board) = self.boards.iter_mut().find(|b| b.name == name) else {
            return false;
        };
        if !allowed(board) {
            return false;
        }
        change(board);
        // A board whose IPMC does not answer reports nothing, not even its extraction.
        if board.answering {
            self.reports.push_back((board.addr, report));
        }
        true
    }
}

impl Ipmc for SimIpmc {
    fn simulate_handle(&mut self, fru: FruAddr, closed: bool) -> Option<bool> {
        let name = self.boards.iter().find(|b| b.addr == fru)?.name.clone();
        Some(if closed {
            self.close_handle(&name)
        } else {
            self.open_handle(&name)
        })
    }

    fn simulate_presence(&mut self, fru: FruAddr, inserted: bool) -> Option<bool> {
        let name = self.boards.iter().find(|b| b.addr == fru)?.name.clone();
        if !inserted {
            return Some(self.extract(&name));
        }
        // A subsidiary FRU needs its IPMC, which comes with FRU 0 of that address.
        let carrier_in = fru.fru_id == 0
            || self
                .boards
                .iter()
                .any(|b| b.addr.ipmb == fru.ipmb && b.addr.fru_id == 0 && b.present);
        Some(carrier_in && self.insert(&name))
    }

    fn send(&mut self, to: FruAddr, message: ToIpmc) -> Result<(), NoAnswer> {
        let Some(board) = self.boards.iter_mut().find(|b| b.addr == to) else {
            return Err(NoAnswer(to));
        };
        if !board.present || !board.answering {
            return Err(NoAnswer(to));
        }
        let mut report = |r| self.reports.push_back((to, r));
        match message {
            ToIpmc::GetDeviceId => report(Report::Alive),
            ToIpmc::GetDesiredPower => report(Report::DesiredPower {
                level: board.desired_level,
                watts: board.desired_watts,
            }),
            ToIpmc::Command(Command::SetFruActivation(true)) => board.activating = true,
            ToIpmc::Command(Command::SetFruActivation(false)) => {
                // Deactivating an FRU that started activating ends in M1 with its payload off;
                // one still in M2 goes straight back to M1 and reports nothing.
                if board.activating {
                    board.activating = false;
                    board.payload_level = 0;
                    report(Report::DeactivationDone);
                }
            }
            ToIpmc::Command(Command::SetPowerLevel(0)) => board.payload_level = 0,
            ToIpmc::Command(Command::SetPowerLevel(level)) => {
                if board.knobs.fails_to_activate {
                    // The payload dies at power-up; the IPMC shuts it down on its own.
                    board.activating = false;
                    report(Report::PayloadFailed);
                    report(Report::DeactivationDone);
                } else {
                    board.payload_level = level;
                    report(Report::ActivationDone);
                    if board.knobs.vanishes {
                        board.answering = false;
                    }
                }
            }
        }
        Ok(())
    }

    fn poll_report(&mut self) -> Option<(FruAddr, Report)> {
        self.reports.pop_front()
    }

    fn request(&mut self, to: u8, netfn: u8, cmd: u8, data: &[u8]) -> Result<Answer, NoAnswer> {
        let here: Vec<usize> = (0..self.boards.len())
            .filter(|&i| self.boards[i].addr.ipmb == to)
            .collect();
        if !here
            .iter()
            .any(|&i| self.boards[i].present && self.boards[i].answering)
        {
            return Err(NoAnswer(FruAddr {
                ipmb: to,
                fru_id: 0,
            }));
        }
        Ok(sim_answer(self, &here, to, netfn, cmd, data))
    }
}

/// The device SDRs of the simulated IPMC at `to` with the boards `here`.
fn device_sdrs(boards: &[SimBoard], here: &[usize], to: u8) -> Vec<Vec<u8>> {
    let frus: Vec<(u8, &str, u8)> = here
        .iter()
        .map(|&i| {
            let b = &boards[i];
            (b.addr.fru_id, b.name.as_str(), fru_entity(b.site_type))
        })
        .collect();
    ipmc_sdrs(to, &frus)
}

/// The PICMG entity id of a FRU in a site of type `site_type` (its code): 0xC0 rear
/// transition module (RTM sites), 0xC1 AMC (AMC sites), else 0xA0 front board.
pub fn fru_entity(site_type: u8) -> u8 {
    match site_type {
        9 => 0xC0,
        7 => 0xC1,
        _ => 0xA0,
    }
}

/// The device SDRs of an IPMC at IPMB-0 address `to` managing `frus` (FRU id, board name,
/// entity id from [`fru_entity`]), as the simulated IPMCs serve them and the shelf manager's
/// repository copies them: its MC Device Locator (record 1, named after its FRU 0 or first
/// FRU, entity 0xA0/0x60), then per FRU (by FRU id) the FRU's hot-swap sensor (number = FRU
/// id, a compact record, named `HS <board>`) and, for FRUs other than 0 (subsidiary FRUs:
/// RTMs, AMCs), a FRU Device Locator. A FRU's sensor and locator share its entity (id,
/// instance `0x60 | FRU id`), which is how a system manager tells whose sensor it is.
/// Record ids count from 1.
pub fn ipmc_sdrs(to: u8, frus: &[(u8, &str, u8)]) -> Vec<Vec<u8>> {
    fn id_string(out: &mut Vec<u8>, text: &str) {
        let bytes: Vec<u8> = text
            .bytes()
            .filter(|b| (b' '..=b'~').contains(b))
            .take(16)
            .collect();
        out.push(0xC0 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    let mut records = Vec::new();
    let push = |records: &mut Vec<Vec<u8>>, kind: u8, body: Vec<u8>| {
        let id = u16::try_from(records.len() + 1).unwrap_or(u16::MAX);
        let [lo, hi] = id.to_le_bytes();
        let mut r = vec![lo, hi, 0x51, kind, body.len() as u8];
        r.extend_from_slice(&body);
        records.push(r);
    };
    let mut sorted = frus.to_vec();
    sorted.sort_by_key(|f| f.0);
    let first = sorted.first().map_or("IPMC", |f| f.1);
    // FRU 0 is the IPMC's own board: a front board entity whatever its site says.
    let entity_of = |fru_id: u8, entity: u8| if fru_id == 0 { 0xA0 } else { entity };
    // MC Device Locator: event generator, FRU inventory, sensor device; entity: PICMG front
    // board, device-relative instance 0x60.
    let mut body = vec![to, 0, 0, 0x29, 0, 0, 0, 0xA0, 0x60, 0];
    id_string(&mut body, first);
    push(&mut records, 0x12, body);
    for (fru_id, name, entity) in sorted {
        let instance = 0x60 | (fru_id & 0x1F);
        let entity = entity_of(fru_id, entity);
        let mut body = vec![to, 0, fru_id, entity, instance, 0x63, 0x40, 0xF0, 0x6F];
        body.extend_from_slice(&[0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00]);
        body.extend_from_slice(&[0xC0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0]);
        id_string(&mut body, &format!("HS {name}"));
        push(&mut records, 0x02, body);
        if fru_id != 0 {
            let mut body = vec![to, fru_id, 0x80, 0, 0, 0x10, 0, entity, instance, 0];
            id_string(&mut body, name);
            push(&mut records, 0x11, body);
        }
    }
    records
}

/// Get Power Level's answer after the PICMG id: properties (the level), delay, multiplier (tenths of a watt
/// per count), one draw per level, each rounded up to whole multipliers.
fn power_level_answer(b: &SimBoard, kind: u8) -> Vec<u8> {
    let max = b.power_levels.iter().copied().max().unwrap_or(0);
    // Whole watts per count, as few as fit the highest level in a byte.
    let watts_per_count = max.div_ceil(255).max(1);
    let level = match kind {
        0 | 2 => b.payload_level,
        _ => b.desired_level,
    };
    let mut out = vec![level & 0x1F, 0, (watts_per_count * 10).min(255) as u8];
    out.extend(
        b.power_levels
            .iter()
            .map(|w| w.div_ceil(watts_per_count).min(255) as u8),
    );
    out
}

/// A simulated IPMC's answer to one request (PICMG answers start with the PICMG id 0x00).
fn sim_answer(
    sim: &mut SimIpmc,
    here: &[usize],
    to: u8,
    netfn: u8,
    cmd: u8,
    data: &[u8],
) -> Answer {
    use sim_commands as c;
    let fru_of = |sim: &SimIpmc, id: u8| {
        here.iter()
            .copied()
            .find(|&i| sim.boards[i].addr.fru_id == id)
    };
    let max_fru = here
        .iter()
        .map(|&i| sim.boards[i].addr.fru_id)
        .max()
        .unwrap_or(0);
    match (netfn, cmd) {
        (c::NETFN_APP, c::GET_DEVICE_ID) => (
            code::OK,
            // Device id 0, revision 1 with device SDRs, firmware 1.00, IPMI 1.5, support:
            // event generator, FRU inventory, sensor device; no manufacturer.
            vec![0x00, 0x81, 0x01, 0x00, 0x51, 0x29, 0, 0, 0, 0, 0],
        ),
        (c::NETFN_SENSOR, c::GET_DEVICE_SDR_INFO) => {
            let sdrs = device_sdrs(&sim.boards, here, to);
            let n = if data.first() == Some(&1) {
                sdrs.len()
            } else {
                sdrs.iter().filter(|r| r[3] == 0x02).count()
            };
            (code::OK, vec![n.min(255) as u8, 0x01])
        }
        (c::NETFN_SENSOR, c::RESERVE_DEVICE_SDR) => (code::OK, vec![0x01, 0x00]),
        // Its events go to the shelf manager whatever a system manager asks.
        (c::NETFN_SENSOR, c::SET_EVENT_RECEIVER) => (code::OK, vec![]),
        (c::NETFN_SENSOR, c::GET_EVENT_RECEIVER) => (code::OK, vec![0x20, 0]),
        (c::NETFN_SENSOR, c::GET_DEVICE_SDR) => {
            let [r0, r1, i0, i1, offset, count, ..] = *data else {
                return (code::BAD_LENGTH, vec![]);
            };
            if offset != 0 && [r0, r1] != [0x01, 0x00] {
                return (code::BAD_RESERVATION, vec![]);
            }
            let sdrs = device_sdrs(&sim.boards, here, to);
            let index = match u16::from_le_bytes([i0, i1]) {
                0 => 0,
                0xFFFF => sdrs.len() - 1,
                id => usize::from(id) - 1,
            };
            let Some(record) = sdrs.get(index) else {
                return (code::NOT_PRESENT, vec![]);
            };
            let next = if index + 1 < sdrs.len() {
                (index + 2) as u16
            } else {
                0xFFFF
            };
            let start = usize::from(offset).min(record.len());
            let end = if count == 0xFF {
                record.len()
            } else {
                (start + usize::from(count)).min(record.len())
            };
            let mut out = next.to_le_bytes().to_vec();
            out.extend_from_slice(&record[start..end]);
            (code::OK, out)
        }
        (c::NETFN_STORAGE, c::GET_FRU_AREA_INFO | c::READ_FRU_DATA) => {
            let Some(&id) = data.first() else {
                return (code::BAD_LENGTH, vec![]);
            };
            let Some(i) = fru_of(sim, id) else {
                return (code::NOT_PRESENT, vec![]);
            };
            let b = &sim.boards[i];
            let image = board_fru_image(&b.name, &format!("site-{}", b.site_number));
            if cmd == c::GET_FRU_AREA_INFO {
                let mut out = (image.len() as u16).to_le_bytes().to_vec();
                out.push(0);
                return (code::OK, out);
            }
            let [_, o0, o1, count, ..] = *data else {
                return (code::BAD_LENGTH, vec![]);
            };
            let offset = usize::from(u16::from_le_bytes([o0, o1]));
            if offset >= image.len() {
                return (code::OUT_OF_RANGE, vec![]);
            }
            let end = (offset + usize::from(count)).min(image.len());
            let mut out = vec![(end - offset) as u8];
            out.extend_from_slice(&image[offset..end]);
            (code::OK, out)
        }
        (c::NETFN_GROUP, _) if data.first() == Some(&0) => {
            let args = &data[1..];
            let ok = |mut v: Vec<u8>| {
                v.insert(0, 0);
                (code::OK, v)
            };
            let fail = |cc: u8| (cc, vec![0]);
            if cmd == c::GET_PROPERTIES {
                return ok(vec![0x22, max_fru, 0]);
            }
            // Every other PICMG command names a FRU of this IPMC first (Get Address Info
            // may leave it out: FRU 0).
            let id = args.first().copied().unwrap_or(0);
            if args.is_empty() && cmd != c::GET_ADDRESS_INFO {
                return fail(code::BAD_LENGTH);
            }
            let Some(i) = fru_of(sim, id) else {
                return fail(code::INVALID_DATA);
            };
            let locator = device_sdrs(&sim.boards, here, to)
                .iter()
                .find(|r| match id {
                    0 => r[3] == 0x12,
                    _ => r[3] == 0x11 && r[6] == id,
                })
                .map(|r| [r[0], r[1]]);
            let b = &mut sim.boards[i];
            match cmd {
                c::GET_ADDRESS_INFO => ok(vec![to >> 1, to, 0xFF, id, b.site_number, b.site_type]),
                c::FRU_CONTROL => {
                    let Some(&option) = args.get(1) else {
                        return fail(code::BAD_LENGTH);
                    };
                    if option > 3 {
                        return fail(code::INVALID_DATA);
                    }
                    // Resets and interrupts act on a running payload only.
                    if b.payload_level == 0 {
                        return fail(code::WRONG_STATE);
                    }
                    b.controls.push(option);
                    ok(vec![])
                }
                c::FRU_CONTROL_CAPABILITIES => ok(vec![0x0E]),
                c::GET_LED_PROPERTIES => ok(vec![0x03, 0]),
                c::GET_LED_COLOR => {
                    let led = args.get(1).copied().unwrap_or(0xFF);
                    match led {
                        0 => ok(vec![1 << 1, 1, 1]),
                        1 => ok(vec![1 << 2, 2, 2]),
                        _ => fail(code::INVALID_DATA),
                    }
                }
                c::SET_LED_STATE => {
                    let [_, led, function, on, colour, ..] = *args else {
                        return fail(code::BAD_LENGTH);
                    };
                    let Some(slot) = b.leds.get_mut(usize::from(led)) else {
                        return fail(code::INVALID_DATA);
                    };
                    // Colours 0x0E (do not change) and 0x0F (default) keep the LED's colour.
                    let own = if led == 0 { 1 } else { 2 };
                    let colour = match colour & 0x0F {
                        0x0E | 0x0F => own,
                        x if x == own => x,
                        _ => return fail(code::INVALID_DATA),
                    };
                    match function {
                        0xFC => *slot = None,
                        0xFB => {
                            if on >= 128 {
                                return fail(code::INVALID_DATA);
                            }
                            b.lamp_test[usize::from(led)] = Some(on);
                        }
                        0xFD | 0xFE => return fail(code::INVALID_DATA),
                        _ => {
                            *slot = Some(LedOverride {
                                function,
                                on_duration: on,
                                colour,
                            })
                        }
                    }
                    ok(vec![])
                }
                c::GET_LED_STATE => {
                    let Some(&led) = args.get(1) else {
                        return fail(code::BAD_LENGTH);
                    };
                    let Some(over) = b.leds.get(usize::from(led)).copied() else {
                        return fail(code::INVALID_DATA);
                    };
                    let lamp = b.lamp_test[usize::from(led)];
                    let own = if led == 0 { 1 } else { 2 };
                    // Local control: the blue LED is on while the payload is off (safe to
                    // pull), LED 1 is off.
                    let local = if led == 0 && b.payload_level == 0 {
                        0xFF
                    } else {
                        0
                    };
                    let mut out = vec![
                        0x01 | (u8::from(over.is_some()) << 1) | (u8::from(lamp.is_some()) << 2),
                        local,
                        0,
                        own,
                    ];
                    if let Some(o) = over {
                        out.extend_from_slice(&[o.function, o.on_duration, o.colour]);
                    }
                    if let Some(t) = lamp {
                        if over.is_none() {
                            out.extend_from_slice(&[local, 0, own]);
                        }
                        out.push(t);
                    }
                    ok(out)
                }
                c::GET_LOCATOR_RECORD_ID => match locator {
                    Some(id) => ok(id.to_vec()),
                    None => fail(code::NOT_PRESENT),
                },
                c::COMPUTE_POWER_PROPERTIES => ok(vec![1, 0]),
                c::GET_POWER_LEVEL => {
                    let kind = args.get(1).copied().unwrap_or(0);
                    if kind > 3 {
                        return fail(code::INVALID_DATA);
                    }
                    ok(power_level_answer(b, kind))
                }
                c::SET_POWER_LEVEL => {
                    let Some(&level) = args.get(1) else {
                        return fail(code::BAD_LENGTH);
                    };
                    if level != 0xFF && usize::from(level) > b.power_levels.len() {
                        return fail(code::INVALID_DATA);
                    }
                    if level != 0xFF {
                        b.payload_level = level;
                    }
                    ok(vec![])
                }
                _ => (code::INVALID_COMMAND, vec![0]),
            }
        }
        _ => (code::INVALID_COMMAND, vec![]),
    }
}
