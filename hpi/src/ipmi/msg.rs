//! Request bodies and response parsers for the IPMI commands `hpi` uses (pure, no I/O).
//!
//! ipmi-rs carries the bytes (RMCP+ session, IPMB framing); what the bytes mean for PICMG
//! (netfn 0x2C), Send Message bridging, SDR, SEL, sensors and FRU inventory is decoded here.
//! Every parser takes the response data *after* the completion code, checks every length
//! through [`Reader`], and returns [`MsgError`] naming the field it could not read: a
//! truncated or malformed answer is an error value, never a panic (see `hpi/fuzz`).

use std::fmt;

/// Network functions (request values; the response is `netfn | 1`).
pub mod netfn {
    /// Sensor/Event.
    pub const SENSOR: u8 = 0x04;
    /// Application.
    pub const APP: u8 = 0x06;
    /// Storage (SDR, SEL, FRU).
    pub const STORAGE: u8 = 0x0A;
    /// PICMG group extension.
    pub const PICMG: u8 = 0x2C;
}

/// The PICMG identifier: the first byte of every PICMG request and response body.
pub const PICMG_ID: u8 = 0x00;

/// A response that could not be decoded: which command, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} response: {detail}")]
pub struct MsgError {
    /// The command or structure being decoded.
    pub what: &'static str,
    /// What was wrong with it.
    pub detail: String,
}

impl MsgError {
    fn new(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            what,
            detail: detail.into(),
        }
    }
}

/// A bounds-checked cursor over response bytes; errors name the missing field.
#[derive(Debug)]
pub struct Reader<'a> {
    what: &'static str,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `data`, the body of a `what` response.
    pub fn new(what: &'static str, data: &'a [u8]) -> Self {
        Self { what, data, pos: 0 }
    }

    /// One byte, or an error naming `field`.
    pub fn u8(&mut self, field: &str) -> Result<u8, MsgError> {
        let b = self.data.get(self.pos).copied().ok_or_else(|| {
            MsgError::new(
                self.what,
                format!(
                    "{} bytes, no {field} at offset {}",
                    self.data.len(),
                    self.pos
                ),
            )
        })?;
        self.pos += 1;
        Ok(b)
    }

    /// A little-endian u16.
    pub fn u16_le(&mut self, field: &str) -> Result<u16, MsgError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian u32.
    pub fn u32_le(&mut self, field: &str) -> Result<u32, MsgError> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize, field: &str) -> Result<&'a [u8], MsgError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return Err(MsgError::new(
                self.what,
                format!(
                    "{} bytes, {field} needs {n} at offset {}",
                    self.data.len(),
                    self.pos
                ),
            ));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The rest of the data.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos.min(self.data.len())..];
        self.pos = self.data.len();
        s
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize, field: &str) -> Result<(), MsgError> {
        self.bytes(n, field).map(|_| ())
    }

    /// Reads the PICMG identifier and checks it.
    pub fn picmg_id(&mut self) -> Result<(), MsgError> {
        let id = self.u8("PICMG identifier")?;
        if id != PICMG_ID {
            return Err(MsgError::new(
                self.what,
                format!("PICMG identifier 0x{id:02x}, expected 0x00"),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// PICMG (netfn 0x2C)

/// PICMG command codes used here (PICMG 3.0 table 3-10).
pub mod picmg {
    /// Get PICMG Properties.
    pub const GET_PROPERTIES: u8 = 0x00;
    /// Get Address Info.
    pub const GET_ADDRESS_INFO: u8 = 0x01;
    /// Get FRU LED Properties.
    pub const GET_LED_PROPERTIES: u8 = 0x05;
    /// Set FRU LED State.
    pub const SET_LED_STATE: u8 = 0x07;
    /// Get FRU LED State.
    pub const GET_LED_STATE: u8 = 0x08;
    /// Set FRU Activation Policy.
    pub const SET_ACTIVATION_POLICY: u8 = 0x0A;
    /// Get FRU Activation Policy.
    pub const GET_ACTIVATION_POLICY: u8 = 0x0B;
    /// Set FRU Activation.
    pub const SET_ACTIVATION: u8 = 0x0C;
}

/// Get PICMG Properties response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PicmgProperties {
    /// Extension major version (2 = AdvancedTCA, 5 = MicroTCA).
    pub major: u8,
    /// Extension minor version.
    pub minor: u8,
    /// Highest FRU device id the controller manages.
    pub max_fru_id: u8,
    /// FRU device id of the controller itself.
    pub ipmc_fru_id: u8,
}

impl PicmgProperties {
    /// Parses the response data after the completion code.
    pub fn parse(data: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("Get PICMG Properties", data);
        r.picmg_id()?;
        let v = r.u8("extension version")?;
        Ok(Self {
            major: v & 0x0F,
            minor: v >> 4,
            max_fru_id: r.u8("max FRU device id")?,
            ipmc_fru_id: r.u8("IPMC FRU device id")?,
        })
    }
}

/// PICMG site types (Get Address Info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SiteType {
    /// AdvancedTCA board.
    Board,
    /// Power entry module.
    PowerEntry,
    /// Shelf FRU information.
    ShelfFru,
    /// Dedicated shelf management controller.
    ShelfManager,
    /// Fan tray.
    FanTray,
    /// Anything else (fan filter, alarm, AMC, PMC, RTM, OEM).
    Other(u8),
}

impl From<u8> for SiteType {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Board,
            1 => Self::PowerEntry,
            2 => Self::ShelfFru,
            3 => Self::ShelfManager,
            4 => Self::FanTray,
            o => Self::Other(o),
        }
    }
}

impl From<SiteType> for u8 {
    fn from(v: SiteType) -> u8 {
        match v {
            SiteType::Board => 0,
            SiteType::PowerEntry => 1,
            SiteType::ShelfFru => 2,
            SiteType::ShelfManager => 3,
            SiteType::FanTray => 4,
            SiteType::Other(o) => o,
        }
    }
}

/// Get Address Info response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressInfo {
    /// Hardware address (7 bits).
    pub hw_addr: u8,
    /// IPMB-0 address of the controller.
    pub ipmb_addr: u8,
    /// FRU device id.
    pub fru_id: u8,
    /// Site number.
    pub site_number: u8,
    /// Site type.
    pub site_type: SiteType,
}

impl AddressInfo {
    /// Request body for "the FRU at `site` of `site_type`" (key type 3: physical address).
    pub fn request_by_site(site: u8, site_type: SiteType) -> Vec<u8> {
        vec![PICMG_ID, 0x00, 0x03, site, u8::from(site_type)]
    }

    /// Parses the response data after the completion code.
    pub fn parse(data: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("Get Address Info", data);
        r.picmg_id()?;
        let hw_addr = r.u8("hardware address")?;
        let ipmb_addr = r.u8("IPMB-0 address")?;
        r.skip(1, "reserved byte")?;
        let fru_id = r.u8("FRU device id")?;
        let site_number = r.u8("site number")?;
        let site_type = SiteType::from(r.u8("site type")?);
        Ok(Self {
            hw_addr,
            ipmb_addr,
            fru_id,
            site_number,
            site_type,
        })
    }
}

/// Get FRU Activation Policy response: bit 0 Locked, bit 1 Deactivation-Locked.
pub fn parse_activation_policy(data: &[u8]) -> Result<u8, MsgError> {
    let mut r = Reader::new("Get FRU Activation Policy", data);
    r.picmg_id()?;
    Ok(r.u8("policy bits")? & 0x03)
}

/// A response whose body is only the PICMG identifier (Set commands).
pub fn parse_picmg_ack(what: &'static str, data: &[u8]) -> Result<(), MsgError> {
    Reader::new(what, data).picmg_id()
}

/// Get FRU LED Properties response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedProperties {
    /// Bit 0 blue LED, bits 1..3 LED1..LED3.
    pub general: u8,
    /// Number of application-specific LEDs (ids 4..).
    pub app_count: u8,
}

impl LedProperties {
    /// Parses the response data after the completion code.
    pub fn parse(data: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("Get FRU LED Properties", data);
        r.picmg_id()?;
        Ok(Self {
            general: r.u8("general LED bits")? & 0x0F,
            app_count: r.u8("application LED count")?,
        })
    }

    /// The LED ids this FRU has, blue LED (0) first.
    pub fn led_ids(&self) -> Vec<u8> {
        let mut ids: Vec<u8> = (0..4).filter(|i| self.general & (1 << i) != 0).collect();
        ids.extend((0..self.app_count.min(0xFB)).map(|i| 4 + i));
        ids
    }
}

/// What an LED does (PICMG 3.0 LED function byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedFunction {
    /// Off.
    Off,
    /// On.
    On,
    /// Blinking: off for `off_ms`, on for `on_ms`.
    Blink {
        /// Off time, ms.
        off_ms: u16,
        /// On time, ms.
        on_ms: u16,
    },
    /// Lamp test.
    LampTest,
}

impl LedFunction {
    fn decode(func: u8, on: u8) -> Self {
        match func {
            0x00 => Self::Off,
            0xFF => Self::On,
            0x01..=0xFA => Self::Blink {
                off_ms: u16::from(func) * 10,
                on_ms: u16::from(on) * 10,
            },
            _ => Self::LampTest,
        }
    }

    /// The (function, on-duration) bytes of Set FRU LED State.
    pub fn encode(&self) -> (u8, u8) {
        match *self {
            Self::Off => (0x00, 0),
            Self::On => (0xFF, 0),
            Self::Blink { off_ms, on_ms } => (
                (off_ms / 10).clamp(1, 0xFA) as u8,
                (on_ms / 10).clamp(1, 0xFA) as u8,
            ),
            Self::LampTest => (0xFB, 0),
        }
    }
}

/// Get FRU LED State response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedState {
    /// The IPMC runs the LED itself (no override).
    pub local_control: bool,
    /// What the LED does now (override if active, else local).
    pub function: LedFunction,
    /// Colour code of what it shows now (1 blue, 2 red, 3 green, 4 amber, 5 orange, 6 white).
    pub colour: u8,
}

impl LedState {
    /// Parses the response data after the completion code.
    pub fn parse(data: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("Get FRU LED State", data);
        r.picmg_id()?;
        let states = r.u8("LED states")?;
        let lf = r.u8("local function")?;
        let lon = r.u8("local on-duration")?;
        let lc = r.u8("local colour")? & 0x0F;
        let override_on = states & 0x02 != 0;
        if override_on {
            let of = r.u8("override function")?;
            let oon = r.u8("override on-duration")?;
            let oc = r.u8("override colour")? & 0x0F;
            return Ok(Self {
                local_control: false,
                function: LedFunction::decode(of, oon),
                colour: oc,
            });
        }
        Ok(Self {
            local_control: true,
            function: LedFunction::decode(lf, lon),
            colour: lc,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Bridging (App 0x34 Send Message)

/// Completion codes of Send Message that mean "the target IPMC is not there".
pub fn send_message_target_absent(cc: u8) -> bool {
    // 0x82 bus error, 0x83 NAK on write, 0x81 lost arbitration
    matches!(cc, 0x81..=0x83)
}

/// IPMB two's complement checksum.
pub fn ipmb_checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// The Send Message request body that carries `cmd` to IPMB address `target` on channel 0
/// with track request; `our_addr` is the requester address the shelf manager answers to.
pub fn send_message_body(
    target: u8,
    netfn: u8,
    cmd: u8,
    data: &[u8],
    our_addr: u8,
    seq: u8,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + data.len());
    body.push(0x40); // track request, channel 0 (IPMB-0)
    let hdr = [target, netfn << 2];
    body.extend(hdr);
    body.push(ipmb_checksum(&hdr));
    let start = body.len();
    body.extend([our_addr, ((seq & 0x3F) << 2) | 0x02, cmd]); // rqLUN 2 (SMS)
    body.extend_from_slice(data);
    let ck = ipmb_checksum(&body[start..]);
    body.push(ck);
    body
}

/// A response to a bridged request carried inside the Send Message response (the other way
/// shelf managers answer; ipmi_sim sends it as a separate message instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedResponse {
    /// Response netfn (odd).
    pub netfn: u8,
    /// Command.
    pub cmd: u8,
    /// Sequence number.
    pub seq: u8,
    /// Completion code.
    pub cc: u8,
    /// Data after the completion code.
    pub data: Vec<u8>,
}

impl EmbeddedResponse {
    /// Parses an IPMB response frame `rqSA netFn/rqLUN chk rsSA rqSeq/rsLUN cmd cc data chk`.
    pub fn parse(frame: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("embedded IPMB response", frame);
        let hdr = r.bytes(2, "header")?;
        let ck1 = r.u8("header checksum")?;
        if ipmb_checksum(hdr) != ck1 {
            return Err(MsgError::new(
                "embedded IPMB response",
                "header checksum mismatch",
            ));
        }
        let body = r.rest();
        if body.len() < 5 {
            return Err(MsgError::new(
                "embedded IPMB response",
                format!("{} body bytes, at least 5 needed", body.len()),
            ));
        }
        let (payload, ck2) = body.split_at(body.len() - 1);
        if ipmb_checksum(payload) != ck2[0] {
            return Err(MsgError::new(
                "embedded IPMB response",
                "body checksum mismatch",
            ));
        }
        Ok(Self {
            netfn: hdr[1] >> 2,
            seq: payload[1] >> 2,
            cmd: payload[2],
            cc: payload[3],
            data: payload[4..].to_vec(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sensors (netfn 0x04)

/// Sensor/Event command codes.
pub mod sensor {
    /// Get Sensor Thresholds.
    pub const GET_THRESHOLDS: u8 = 0x27;
    /// Get Sensor Reading.
    pub const GET_READING: u8 = 0x2D;
}

/// Get Sensor Reading response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorReading {
    /// Raw reading byte (meaningless for discrete sensors).
    pub raw: u8,
    /// Reading/state unavailable (initial update in progress or not present).
    pub unavailable: bool,
    /// Event messages enabled.
    pub events_enabled: bool,
    /// Threshold comparison bits (threshold sensors) or states 0..14 (discrete sensors).
    pub states: u16,
}

impl SensorReading {
    /// Parses the response data after the completion code.
    pub fn parse(data: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("Get Sensor Reading", data);
        let raw = r.u8("reading")?;
        let flags = r.u8("flags")?;
        // Byte 3 is optional in IPMI 2.0 for sensors without states; byte 4 is optional.
        let lo = r.u8("states 0-7").unwrap_or(0);
        let hi = r.u8("states 8-14").unwrap_or(0) & 0x7F;
        Ok(Self {
            raw,
            unavailable: flags & 0x20 != 0,
            events_enabled: flags & 0x80 != 0,
            states: u16::from(lo) | (u16::from(hi) << 8),
        })
    }

    /// The PICMG M-state of a FRU Hot Swap sensor (lowest set state bit among M0..M7).
    pub fn hot_swap_state(&self) -> Option<MState> {
        (0..8u8)
            .find(|i| self.states & (1 << i) != 0)
            .map(MState::from_u8)
    }
}

/// Raw thresholds of a threshold sensor, as Get Sensor Thresholds returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawThresholds {
    /// Lower non-critical.
    pub lnc: Option<u8>,
    /// Lower critical.
    pub lc: Option<u8>,
    /// Lower non-recoverable.
    pub lnr: Option<u8>,
    /// Upper non-critical.
    pub unc: Option<u8>,
    /// Upper critical.
    pub uc: Option<u8>,
    /// Upper non-recoverable.
    pub unr: Option<u8>,
}

impl RawThresholds {
    /// Parses the Get Sensor Thresholds response data after the completion code.
    pub fn parse(data: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("Get Sensor Thresholds", data);
        let mask = r.u8("readable mask")?;
        let v = r.bytes(6, "threshold values")?;
        let pick = |bit: u8, i: usize| (mask & (1 << bit) != 0).then_some(v[i]);
        Ok(Self {
            lnc: pick(0, 0),
            lc: pick(1, 1),
            lnr: pick(2, 2),
            unc: pick(3, 3),
            uc: pick(4, 4),
            unr: pick(5, 5),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// PICMG hot-swap states

/// A PICMG 3.0 FRU hot-swap state M0..M7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MState {
    /// M0 Not Installed.
    M0,
    /// M1 Inactive.
    M1,
    /// M2 Activation Request.
    M2,
    /// M3 Activation In Progress.
    M3,
    /// M4 Active.
    M4,
    /// M5 Deactivation Request.
    M5,
    /// M6 Deactivation In Progress.
    M6,
    /// M7 Communication Lost.
    M7,
}

impl MState {
    /// From the low three bits of `v`.
    pub fn from_u8(v: u8) -> Self {
        match v & 0x07 {
            0 => Self::M0,
            1 => Self::M1,
            2 => Self::M2,
            3 => Self::M3,
            4 => Self::M4,
            5 => Self::M5,
            6 => Self::M6,
            _ => Self::M7,
        }
    }

    /// 0..7.
    pub fn number(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for MState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "M{}", self.number())
    }
}

// ---------------------------------------------------------------------------------------------
// SEL (netfn 0x0A)

/// Storage command codes.
pub mod storage {
    /// Get FRU Inventory Area Info.
    pub const GET_FRU_AREA_INFO: u8 = 0x10;
    /// Read FRU Data.
    pub const READ_FRU_DATA: u8 = 0x11;
    /// Reserve SDR Repository.
    pub const RESERVE_SDR: u8 = 0x22;
    /// Get SDR.
    pub const GET_SDR: u8 = 0x23;
    /// Get SEL Info.
    pub const GET_SEL_INFO: u8 = 0x40;
    /// Reserve SEL.
    pub const RESERVE_SEL: u8 = 0x42;
    /// Get SEL Entry.
    pub const GET_SEL_ENTRY: u8 = 0x43;
}

/// Get SEL Info response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelInfo {
    /// Number of entries.
    pub entries: u16,
    /// Free space in bytes.
    pub free_bytes: u16,
    /// Timestamp of the most recent addition.
    pub last_add: u32,
    /// Timestamp of the most recent erase.
    pub last_erase: u32,
    /// The SEL overflowed (an entry could not be logged).
    pub overflow: bool,
}

impl SelInfo {
    /// Parses the response data after the completion code.
    pub fn parse(data: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("Get SEL Info", data);
        r.skip(1, "SEL version")?;
        let entries = r.u16_le("entries")?;
        let free_bytes = r.u16_le("free space")?;
        let last_add = r.u32_le("addition timestamp")?;
        let last_erase = r.u32_le("erase timestamp")?;
        let ops = r.u8("operation support")?;
        Ok(Self {
            entries,
            free_bytes,
            last_add,
            last_erase,
            overflow: ops & 0x80 != 0,
        })
    }
}

/// Get SEL Entry request body: reservation (0 = none), record id, offset 0, whole record.
pub fn get_sel_entry_body(record_id: u16) -> Vec<u8> {
    let id = record_id.to_le_bytes();
    vec![0, 0, id[0], id[1], 0, 0xFF]
}

/// Record id meaning "the last entry" in Get SEL Entry, and "no more" as the next id.
pub const SEL_LAST: u16 = 0xFFFF;

/// One SEL record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelRecord {
    /// A system event record (type 0x02).
    Event(EventRecord),
    /// Timestamped or non-timestamped OEM record.
    Oem {
        /// Record id.
        record_id: u16,
        /// Record type (0xC0..0xFF).
        record_type: u8,
    },
}

impl SelRecord {
    /// Record id.
    pub fn record_id(&self) -> u16 {
        match self {
            Self::Event(e) => e.record_id,
            Self::Oem { record_id, .. } => *record_id,
        }
    }
}

/// A system event record (SEL record type 0x02, or a Platform Event message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord {
    /// Record id.
    pub record_id: u16,
    /// Timestamp (SEL clock).
    pub timestamp: u32,
    /// Generator: IPMB slave address (bit 0 clear) or software id (bit 0 set).
    pub generator: u8,
    /// Generator LUN / channel byte.
    pub generator_hi: u8,
    /// Event message revision.
    pub evm_rev: u8,
    /// Sensor type.
    pub sensor_type: u8,
    /// Sensor number.
    pub sensor_number: u8,
    /// Deassertion (bit 7 of the event type byte).
    pub deassertion: bool,
    /// Event/reading type code.
    pub event_type: u8,
    /// Event data 1..3.
    pub data: [u8; 3],
}

impl EventRecord {
    /// The generator's IPMB address, or `None` for a software generator.
    pub fn ipmb_addr(&self) -> Option<u8> {
        (self.generator & 1 == 0).then_some(self.generator)
    }

    /// The offset (low nibble of event data 1).
    pub fn offset(&self) -> u8 {
        self.data[0] & 0x0F
    }

    /// A PICMG FRU Hot Swap event, if this is one (PICMG 3.0 §3.2.4.2.3).
    pub fn hot_swap(&self) -> Option<HotSwapEvent> {
        if self.sensor_type != 0xF0 || self.event_type != 0x6F {
            return None;
        }
        let ipmb = self.ipmb_addr()?;
        let oem = self.data[0] & 0xF0 == 0xA0;
        Some(HotSwapEvent {
            ipmb_addr: ipmb,
            sensor_number: self.sensor_number,
            new: MState::from_u8(self.data[0]),
            previous: oem.then(|| MState::from_u8(self.data[1])),
            cause: if oem { self.data[1] >> 4 } else { 0x0F },
            fru_id: if oem { self.data[2] } else { 0 },
        })
    }
}

/// A decoded PICMG hot-swap event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotSwapEvent {
    /// IPMC that sent it.
    pub ipmb_addr: u8,
    /// Its hot-swap sensor.
    pub sensor_number: u8,
    /// New state.
    pub new: MState,
    /// Previous state (absent when event data 2 is not OEM-coded).
    pub previous: Option<MState>,
    /// PICMG cause of the change (0xF unknown).
    pub cause: u8,
    /// FRU device id.
    pub fru_id: u8,
}

/// Parses a Get SEL Entry response: next record id and the 16-byte record.
pub fn parse_sel_entry(data: &[u8]) -> Result<(u16, SelRecord), MsgError> {
    let mut r = Reader::new("Get SEL Entry", data);
    let next = r.u16_le("next record id")?;
    let rec = r.bytes(16, "SEL record")?;
    Ok((next, parse_sel_record(rec)?))
}

/// Parses one 16-byte SEL record.
pub fn parse_sel_record(rec: &[u8]) -> Result<SelRecord, MsgError> {
    let mut r = Reader::new("SEL record", rec);
    let record_id = r.u16_le("record id")?;
    let record_type = r.u8("record type")?;
    if record_type != 0x02 {
        if record_type >= 0xC0 {
            return Ok(SelRecord::Oem {
                record_id,
                record_type,
            });
        }
        return Err(MsgError::new(
            "SEL record",
            format!("record type 0x{record_type:02x}"),
        ));
    }
    let timestamp = r.u32_le("timestamp")?;
    let generator = r.u8("generator id")?;
    let generator_hi = r.u8("generator LUN/channel")?;
    let evm_rev = r.u8("event message revision")?;
    let sensor_type = r.u8("sensor type")?;
    let sensor_number = r.u8("sensor number")?;
    let et = r.u8("event direction/type")?;
    let d = r.bytes(3, "event data")?;
    Ok(SelRecord::Event(EventRecord {
        record_id,
        timestamp,
        generator,
        generator_hi,
        evm_rev,
        sensor_type,
        sensor_number,
        deassertion: et & 0x80 != 0,
        event_type: et & 0x7F,
        data: [d[0], d[1], d[2]],
    }))
}

// ---------------------------------------------------------------------------------------------
// SDR repository

/// Parses a Reserve SDR Repository / Reserve SEL response (the reservation id).
pub fn parse_reservation(data: &[u8]) -> Result<u16, MsgError> {
    Reader::new("Reserve", data).u16_le("reservation id")
}

/// Get SDR request body.
pub fn get_sdr_body(reservation: u16, record_id: u16, offset: u8, len: u8) -> Vec<u8> {
    let rsv = reservation.to_le_bytes();
    let id = record_id.to_le_bytes();
    vec![rsv[0], rsv[1], id[0], id[1], offset, len]
}

/// Parses a Get SDR response: next record id and the bytes read.
pub fn parse_get_sdr(data: &[u8]) -> Result<(u16, &[u8]), MsgError> {
    let mut r = Reader::new("Get SDR", data);
    let next = r.u16_le("next record id")?;
    Ok((next, r.rest()))
}

/// Conversion factors of a linear full sensor record: `y = (M*x + B*10^Bexp) * 10^Rexp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conversion {
    /// Analog data format: 0 unsigned, 1 one's complement, 2 two's complement.
    pub format: u8,
    /// M (10-bit signed).
    pub m: i16,
    /// B (10-bit signed).
    pub b: i16,
    /// B exponent (4-bit signed).
    pub b_exp: i8,
    /// Result exponent (4-bit signed).
    pub r_exp: i8,
    /// Linearization code (0 linear; others are not converted).
    pub linearization: u8,
}

fn sign_extend(v: u16, bits: u32) -> i16 {
    let shift = 16 - bits;
    ((v << shift) as i16) >> shift
}

impl Conversion {
    /// Converts a raw reading; `None` for non-linear sensors or a non-analog format.
    pub fn convert(&self, raw: u8) -> Option<f64> {
        if self.linearization != 0 {
            return None;
        }
        let x = match self.format {
            0 => f64::from(raw),
            1 => {
                let v = raw as i8;
                f64::from(if v < 0 { v + 1 } else { v })
            }
            2 => f64::from(raw as i8),
            _ => return None,
        };
        let m = f64::from(self.m);
        let b = f64::from(self.b) * 10f64.powi(i32::from(self.b_exp));
        Some((m * x + b) * 10f64.powi(i32::from(self.r_exp)))
    }
}

/// The SDR records `hpi` uses.
#[derive(Debug, Clone, PartialEq)]
pub enum SdrRecord {
    /// Full (0x01) or compact (0x02) sensor record.
    Sensor(SensorSdr),
    /// Management Controller Device Locator (0x12).
    McLocator(McLocator),
    /// FRU Device Locator (0x11): a FRU behind a controller, such as an IPMC's subsidiary
    /// FRU (FRU device id > 0: an RTM, an AMC).
    FruLocator(FruLocator),
    /// Any other record type.
    Other {
        /// Record id.
        record_id: u16,
        /// Record type.
        record_type: u8,
    },
}

/// A sensor's SDR.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorSdr {
    /// Record id.
    pub record_id: u16,
    /// Owner IPMB address.
    pub owner: u8,
    /// Owner LUN.
    pub lun: u8,
    /// Sensor number.
    pub number: u8,
    /// Entity id.
    pub entity_id: u8,
    /// Entity instance.
    pub entity_instance: u8,
    /// Sensor type (0x01 temperature, 0xF0 FRU hot swap, ...).
    pub sensor_type: u8,
    /// Event/reading type (0x01 threshold, 0x6F sensor-specific, ...).
    pub event_type: u8,
    /// Base unit code (1 = degrees C).
    pub unit: u8,
    /// Conversion (full records only).
    pub conversion: Option<Conversion>,
    /// Thresholds from the record (full records only).
    pub thresholds: RawThresholds,
    /// Name.
    pub name: String,
}

/// A Management Controller Device Locator record.
#[derive(Debug, Clone, PartialEq)]
pub struct McLocator {
    /// Record id.
    pub record_id: u16,
    /// IPMB address.
    pub ipmb_addr: u8,
    /// Channel.
    pub channel: u8,
    /// Entity id.
    pub entity_id: u8,
    /// Entity instance.
    pub entity_instance: u8,
    /// Name.
    pub name: String,
}

/// A FRU Device Locator record (IPMI 2.0 §43.8).
#[derive(Debug, Clone, PartialEq)]
pub struct FruLocator {
    /// Record id.
    pub record_id: u16,
    /// IPMB address of the controller that gives access to the FRU (the IPMC).
    pub ipmb_addr: u8,
    /// FRU device id inside that controller (logical FRUs), or the device's slave address.
    pub fru_id: u8,
    /// A logical FRU device (reached with the FRU commands of its controller): what an
    /// IPMC's subsidiary FRUs are.
    pub logical: bool,
    /// Channel.
    pub channel: u8,
    /// Entity id (0xA0 PICMG front board, 0xC0 rear transition module, 0xC1 AMC).
    pub entity_id: u8,
    /// Entity instance.
    pub entity_instance: u8,
    /// Name.
    pub name: String,
}

/// Decodes a type/length string (SDR id strings and FRU fields).
pub fn decode_type_length(tl: u8, bytes: &[u8]) -> String {
    match tl >> 6 {
        0b11 => bytes
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .trim_end_matches('\0')
            .to_string(),
        0b10 => {
            // 6-bit packed ASCII: 3 bytes hold 4 characters
            let mut out = String::new();
            let mut acc: u32 = 0;
            let mut nbits = 0;
            for &b in bytes {
                acc |= u32::from(b) << nbits;
                nbits += 8;
                while nbits >= 6 {
                    out.push(char::from((acc & 0x3F) as u8 + 0x20));
                    acc >>= 6;
                    nbits -= 6;
                }
            }
            out.trim_end().to_string()
        }
        0b01 => bytes
            .iter()
            .flat_map(|&b| [b & 0x0F, b >> 4])
            .map(|n| match n {
                0..=9 => char::from(b'0' + n),
                0xA => ' ',
                0xB => '-',
                0xC => '.',
                _ => '?',
            })
            .collect(),
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn id_string(r: &mut Reader<'_>) -> Result<String, MsgError> {
    let Ok(tl) = r.u8("id string type/length") else {
        return Ok(String::new());
    };
    let len = usize::from(tl & 0x1F);
    let bytes = r.bytes(len.min(r.data.len().saturating_sub(r.pos)), "id string")?;
    Ok(decode_type_length(tl, bytes))
}

impl SdrRecord {
    /// Parses a whole SDR record (5-byte header and body).
    pub fn parse(rec: &[u8]) -> Result<Self, MsgError> {
        let mut r = Reader::new("SDR record", rec);
        let record_id = r.u16_le("record id")?;
        r.skip(1, "SDR version")?;
        let record_type = r.u8("record type")?;
        let len = usize::from(r.u8("record length")?);
        let body = r.bytes(len, "record body")?;
        let mut b = Reader::new("SDR record body", body);
        match record_type {
            0x01 | 0x02 => {
                let owner = b.u8("owner id")?;
                let lun = b.u8("owner LUN")? & 0x03;
                let number = b.u8("sensor number")?;
                let entity_id = b.u8("entity id")?;
                let entity_instance = b.u8("entity instance")?;
                b.skip(2, "initialization/capabilities")?;
                let sensor_type = b.u8("sensor type")?;
                let event_type = b.u8("event/reading type")?;
                b.skip(6, "event masks")?;
                let units1 = b.u8("units 1")?;
                let unit = b.u8("base unit")?;
                b.skip(1, "modifier unit")?;
                let (conversion, thresholds) = if record_type == 0x01 {
                    let linearization = b.u8("linearization")? & 0x7F;
                    let m_lo = b.u8("M")?;
                    let m_hi = b.u8("M/tolerance")?;
                    let b_lo = b.u8("B")?;
                    let b_hi = b.u8("B/accuracy")?;
                    b.skip(1, "accuracy")?;
                    let exps = b.u8("exponents")?;
                    b.skip(6, "analog flags and nominal/normal/sensor range")?;
                    let t = b.bytes(6, "thresholds")?;
                    b.skip(5, "hysteresis, reserved, OEM")?;
                    let m = sign_extend(u16::from(m_lo) | (u16::from(m_hi & 0xC0) << 2), 10);
                    let bb = sign_extend(u16::from(b_lo) | (u16::from(b_hi & 0xC0) << 2), 10);
                    let conv = Conversion {
                        format: units1 >> 6,
                        m,
                        b: bb,
                        r_exp: sign_extend(u16::from(exps >> 4), 4) as i8,
                        b_exp: sign_extend(u16::from(exps & 0x0F), 4) as i8,
                        linearization,
                    };
                    let th = RawThresholds {
                        unr: Some(t[0]),
                        uc: Some(t[1]),
                        unc: Some(t[2]),
                        lnr: Some(t[3]),
                        lc: Some(t[4]),
                        lnc: Some(t[5]),
                    };
                    (Some(conv), th)
                } else {
                    b.skip(8, "sharing, hysteresis, reserved, OEM")?;
                    (None, RawThresholds::default())
                };
                let name = id_string(&mut b)?;
                Ok(Self::Sensor(SensorSdr {
                    record_id,
                    owner,
                    lun,
                    number,
                    entity_id,
                    entity_instance,
                    sensor_type,
                    event_type,
                    unit,
                    conversion,
                    thresholds,
                    name,
                }))
            }
            0x12 => {
                let ipmb_addr = b.u8("device slave address")? & 0xFE;
                let channel = b.u8("channel")? & 0x0F;
                b.skip(5, "power state, capabilities, reserved")?;
                let entity_id = b.u8("entity id")?;
                let entity_instance = b.u8("entity instance")?;
                b.skip(1, "OEM")?;
                let name = id_string(&mut b)?;
                Ok(Self::McLocator(McLocator {
                    record_id,
                    ipmb_addr,
                    channel,
                    entity_id,
                    entity_instance,
                    name,
                }))
            }
            0x11 => {
                let ipmb_addr = b.u8("device access address")? & 0xFE;
                let fru_id = b.u8("FRU device id")?;
                let logical = b.u8("logical/physical, access LUN, private bus")? & 0x80 != 0;
                let channel = b.u8("channel")? >> 4;
                b.skip(3, "reserved, device type, device type modifier")?;
                let entity_id = b.u8("FRU entity id")?;
                let entity_instance = b.u8("FRU entity instance")?;
                b.skip(1, "OEM")?;
                let name = id_string(&mut b)?;
                Ok(Self::FruLocator(FruLocator {
                    record_id,
                    ipmb_addr,
                    fru_id,
                    logical,
                    channel,
                    entity_id,
                    entity_instance,
                    name,
                }))
            }
            t => Ok(Self::Other {
                record_id,
                record_type: t,
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FRU inventory

/// Parses Get FRU Inventory Area Info: area size in bytes, and whether access is by words.
pub fn parse_fru_area_info(data: &[u8]) -> Result<(u16, bool), MsgError> {
    let mut r = Reader::new("Get FRU Inventory Area Info", data);
    let size = r.u16_le("area size")?;
    let words = r.u8("access type")? & 1 != 0;
    Ok((size, words))
}

/// Parses Read FRU Data: the bytes read.
pub fn parse_read_fru(data: &[u8]) -> Result<&[u8], MsgError> {
    let mut r = Reader::new("Read FRU Data", data);
    let n = usize::from(r.u8("count returned")?);
    r.bytes(n, "FRU data")
}

/// The FRU inventory areas `hpi` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FruArea {
    /// Chassis info area.
    Chassis,
    /// Board info area.
    Board,
    /// Product info area.
    Product,
}

/// One decoded inventory field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FruField {
    /// Area it came from.
    pub area: FruArea,
    /// Field name (HPI field type name: MANUFACTURER, PRODUCT_NAME, SERIAL_NUMBER, ...).
    pub name: &'static str,
    /// Decoded value.
    pub value: String,
}

fn fru_fields(
    data: &[u8],
    area: FruArea,
    offset: usize,
    names: &[&'static str],
    skip: usize,
    out: &mut Vec<FruField>,
) -> Result<(), MsgError> {
    let what = match area {
        FruArea::Chassis => "FRU chassis area",
        FruArea::Board => "FRU board area",
        FruArea::Product => "FRU product area",
    };
    let area_bytes = data
        .get(offset..)
        .ok_or_else(|| MsgError::new(what, format!("offset {offset} past the end")))?;
    let mut r = Reader::new(what, area_bytes);
    r.skip(1, "format version")?;
    let len = usize::from(r.u8("area length")?) * 8;
    let area_bytes = area_bytes
        .get(..len)
        .ok_or_else(|| MsgError::new(what, format!("length {len} past the end")))?;
    if len == 0 || ipmb_checksum(&area_bytes[..len - 1]) != area_bytes[len - 1] {
        return Err(MsgError::new(what, "area checksum mismatch"));
    }
    let mut r = Reader::new(what, &area_bytes[..len - 1]);
    r.skip(2 + skip, "area header")?;
    for name in names {
        let tl = r.u8(name)?;
        if tl == 0xC1 {
            break;
        }
        let v = r.bytes(usize::from(tl & 0x3F), name)?;
        out.push(FruField {
            area,
            name,
            value: decode_type_length(tl, v),
        });
    }
    Ok(())
}

/// Parses a FRU inventory image (common header and chassis/board/product areas).
pub fn parse_fru_inventory(data: &[u8]) -> Result<Vec<FruField>, MsgError> {
    let mut r = Reader::new("FRU common header", data);
    let hdr = r.bytes(8, "common header")?;
    if hdr[0] & 0x0F != 0x01 {
        return Err(MsgError::new(
            "FRU common header",
            format!("format version 0x{:02x}", hdr[0]),
        ));
    }
    if ipmb_checksum(&hdr[..7]) != hdr[7] {
        return Err(MsgError::new(
            "FRU common header",
            "header checksum mismatch",
        ));
    }
    let mut out = Vec::new();
    if hdr[2] != 0 {
        // chassis: version, length, chassis type, then part number, serial number
        fru_fields(
            data,
            FruArea::Chassis,
            usize::from(hdr[2]) * 8,
            &["PART_NUMBER", "SERIAL_NUMBER"],
            1,
            &mut out,
        )?;
    }
    if hdr[3] != 0 {
        // board: version, length, language, 3-byte date, then the fields
        fru_fields(
            data,
            FruArea::Board,
            usize::from(hdr[3]) * 8,
            &[
                "MANUFACTURER",
                "PRODUCT_NAME",
                "SERIAL_NUMBER",
                "PART_NUMBER",
                "FILE_ID",
            ],
            4,
            &mut out,
        )?;
    }
    if hdr[4] != 0 {
        fru_fields(
            data,
            FruArea::Product,
            usize::from(hdr[4]) * 8,
            &[
                "MANUFACTURER",
                "PRODUCT_NAME",
                "PART_NUMBER",
                "PRODUCT_VERSION",
                "SERIAL_NUMBER",
                "ASSET_TAG",
                "FILE_ID",
            ],
            1,
            &mut out,
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picmg_properties_from_the_sim() {
        let p = PicmgProperties::parse(&[0x00, 0x22, 0x00, 0x00]).unwrap();
        assert_eq!((p.major, p.minor, p.max_fru_id), (2, 2, 0));
        assert!(PicmgProperties::parse(&[0x00, 0x22]).is_err());
        let e = PicmgProperties::parse(&[0x01, 0x22, 0, 0]).unwrap_err();
        assert!(e.to_string().contains("PICMG identifier 0x01"), "{e}");
    }

    #[test]
    fn fru_device_locator() {
        // Record 7, IPMC 0x84, logical FRU 1, entity 0xC0 (RTM) instance 0x61, "rtm-2".
        let rec = [
            0x07, 0x00, 0x51, 0x11, 16, 0x84, 0x01, 0x80, 0x00, 0x00, 0x10, 0x00, 0xC0, 0x61, 0x00,
            0xC5, b'r', b't', b'm', b'-', b'2',
        ];
        let SdrRecord::FruLocator(l) = SdrRecord::parse(&rec).unwrap() else {
            panic!("not a FRU locator")
        };
        assert_eq!(
            (l.record_id, l.ipmb_addr, l.fru_id, l.logical, l.channel),
            (7, 0x84, 1, true, 0)
        );
        assert_eq!(
            (l.entity_id, l.entity_instance, l.name.as_str()),
            (0xC0, 0x61, "rtm-2")
        );
        // A physical FRU device on a private bus: not logical.
        let mut phys = rec;
        phys[7] = 0x02;
        let SdrRecord::FruLocator(l) = SdrRecord::parse(&phys).unwrap() else {
            panic!("not a FRU locator")
        };
        assert!(!l.logical);
        // Cut before the entity: the field is named.
        let mut cut = rec[..12].to_vec();
        cut[4] = 7;
        let e = SdrRecord::parse(&cut).unwrap_err();
        assert!(e.to_string().contains("FRU entity id"), "{e}");
    }

    #[test]
    fn address_info_by_site() {
        let a = AddressInfo::parse(&[0x00, 0x41, 0x82, 0xFF, 0x00, 0x01, 0x00]).unwrap();
        assert_eq!(a.ipmb_addr, 0x82);
        assert_eq!(a.site_number, 1);
        assert_eq!(a.site_type, SiteType::Board);
        let e = AddressInfo::parse(&[0x00, 0x41, 0x82]).unwrap_err();
        assert!(e.to_string().contains("reserved byte"), "{e}");
    }

    #[test]
    fn hot_swap_reading_and_event() {
        let r = SensorReading::parse(&[0x04, 0xC0, 0x10, 0x00]).unwrap();
        assert_eq!(r.hot_swap_state(), Some(MState::M4));
        // "Generator ID 0086 ... Event Data a20100" = blade 0x86 M1 -> M2, cause 0, FRU 0
        let rec = [
            0x0B, 0x00, 0x02, 1, 2, 3, 4, 0x86, 0x00, 0x04, 0xF0, 0x00, 0x6F, 0xA2, 0x01, 0x00,
        ];
        let SelRecord::Event(e) = parse_sel_record(&rec).unwrap() else {
            panic!("not an event")
        };
        let hs = e.hot_swap().unwrap();
        assert_eq!(hs.ipmb_addr, 0x86);
        assert_eq!(hs.new, MState::M2);
        assert_eq!(hs.previous, Some(MState::M1));
        assert_eq!((hs.cause, hs.fru_id), (0, 0));
        assert!(parse_sel_record(&rec[..15]).is_err());
    }

    #[test]
    fn thresholds_and_sel_info_from_the_sim() {
        let t = RawThresholds::parse(&[0x38, 0, 0, 0, 0x3C, 0x4B, 0x5A]).unwrap();
        assert_eq!(
            (t.unc, t.uc, t.unr, t.lnc),
            (Some(60), Some(75), Some(90), None)
        );
        let i = SelInfo::parse(&[
            0x51, 0x09, 0x00, 0xF0, 0x3D, 0x4E, 0x27, 0, 0, 0, 0, 0, 0, 0x0A,
        ])
        .unwrap();
        assert_eq!(i.entries, 9);
        assert_eq!(i.last_add, 0x274E);
    }

    #[test]
    fn temperature_sdr_of_the_sim() {
        // what gen_shelf_emu.py writes for Blade1's sensor #1
        let mut body = vec![
            0x82, 0x00, 0x01, 0xA0, 0x60, 0x63, 0x44, 0x01, 0x01, 0x80, 0x0A, 0x80, 0x7A, 0x38,
            0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 40, 0x3C, 0x00,
            0xFF, 0x00, 90, 75, 60, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        body.push(0xC4);
        body.extend(b"Temp");
        let mut rec = vec![0x05, 0x00, 0x51, 0x01, body.len() as u8];
        rec.extend(&body);
        let SdrRecord::Sensor(s) = SdrRecord::parse(&rec).unwrap() else {
            panic!("not a sensor")
        };
        assert_eq!((s.owner, s.number, s.sensor_type), (0x82, 1, 0x01));
        assert_eq!(s.name, "Temp");
        assert_eq!(s.thresholds.uc, Some(75));
        assert_eq!(s.conversion.unwrap().convert(80), Some(80.0));
        assert!(SdrRecord::parse(&rec[..20]).is_err());
    }

    #[test]
    fn conversion_with_exponents() {
        let c = Conversion {
            format: 0,
            m: 5,
            b: -3,
            b_exp: 1,
            r_exp: -1,
            linearization: 0,
        };
        // (5*10 + -3*10) * 0.1 = 2.0
        assert!((c.convert(10).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(sign_extend(0x3FF, 10), -1);
        assert_eq!(sign_extend(0x0F, 4), -1);
    }

    #[test]
    fn send_message_body_and_embedded_response() {
        let b = send_message_body(0x86, netfn::SENSOR, 0x2D, &[0x00], 0x20, 1);
        assert_eq!(b[0], 0x40);
        assert_eq!(ipmb_checksum(&b[1..3]), b[3]);
        assert_eq!(ipmb_checksum(&b[4..b.len() - 1]), b[b.len() - 1]);
        // a response frame from 0x86 to 0x20
        let mut f = vec![0x20, (netfn::SENSOR | 1) << 2];
        f.push(ipmb_checksum(&f));
        let body = [0x86, 1 << 2, 0x2D, 0x00, 0x04, 0xC0, 0x10];
        f.extend(body);
        f.push(ipmb_checksum(&body));
        let e = EmbeddedResponse::parse(&f).unwrap();
        assert_eq!(
            (e.netfn, e.cmd, e.cc, e.seq),
            (netfn::SENSOR | 1, 0x2D, 0, 1)
        );
        assert_eq!(e.data, vec![0x04, 0xC0, 0x10]);
        f[4] ^= 1;
        assert!(EmbeddedResponse::parse(&f).is_err());
    }

    #[test]
    fn led_state_and_ids() {
        let p = LedProperties::parse(&[0x00, 0x03, 0x00]).unwrap();
        assert_eq!(p.led_ids(), vec![0, 1]);
        let s = LedState::parse(&[0x00, 0x01, 0xFF, 0x00, 0x01]).unwrap();
        assert!(s.local_control);
        assert_eq!(s.function, LedFunction::On);
        let s = LedState::parse(&[0x00, 0x03, 0xFF, 0x00, 0x01, 0x32, 0x0A, 0x02]).unwrap();
        assert_eq!(
            s.function,
            LedFunction::Blink {
                off_ms: 500,
                on_ms: 100
            }
        );
        assert!(LedState::parse(&[0x00, 0x03, 0xFF, 0x00, 0x01]).is_err());
    }

    #[test]
    fn type_length_strings() {
        assert_eq!(decode_type_length(0xC4, b"Temp"), "Temp");
        assert_eq!(decode_type_length(0x42, &[0x21, 0x43]), "1234");
        // 6-bit ASCII "ABCD": A=0x21 B=0x22 C=0x23 D=0x24
        let v: u32 = 0x21 | (0x22 << 6) | (0x23 << 12) | (0x24 << 18);
        let b = v.to_le_bytes();
        assert_eq!(decode_type_length(0x83, &b[..3]), "ABCD");
    }
}
