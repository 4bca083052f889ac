//! HPI types: resources, RDRs, hot-swap states, sensor values and events (SA Forum HPI
//! B.03 names, Rust shapes).

use std::fmt;

use crate::ipmi::msg::{Conversion, FruField, LedFunction, MState, RawThresholds};

/// A resource id in the domain's resource presence table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId(pub u32);

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// HPI hot-swap state (`SaHpiHsStateT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HsState {
    /// SAHPI_HS_STATE_INACTIVE.
    Inactive,
    /// SAHPI_HS_STATE_INSERTION_PENDING.
    InsertionPending,
    /// SAHPI_HS_STATE_ACTIVE.
    Active,
    /// SAHPI_HS_STATE_EXTRACTION_PENDING.
    ExtractionPending,
    /// SAHPI_HS_STATE_NOT_PRESENT.
    NotPresent,
}

impl HsState {
    /// The HPI state of a PICMG M-state; `None` for M7 (communication lost), which keeps
    /// the last known HPI state and marks the resource failed instead (docs/hpi.md).
    pub fn from_picmg(m: MState) -> Option<Self> {
        Some(match m {
            MState::M0 => Self::NotPresent,
            MState::M1 => Self::Inactive,
            MState::M2 | MState::M3 => Self::InsertionPending,
            MState::M4 => Self::Active,
            MState::M5 | MState::M6 => Self::ExtractionPending,
            MState::M7 => return None,
        })
    }

    /// The SaHpi.h name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Inactive => "INACTIVE",
            Self::InsertionPending => "INSERTION_PENDING",
            Self::Active => "ACTIVE",
            Self::ExtractionPending => "EXTRACTION_PENDING",
            Self::NotPresent => "NOT_PRESENT",
        }
    }
}

impl fmt::Display for HsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HPI cause of a hot-swap state change (`SaHpiHsCauseOfStateChangeT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HsCause {
    /// AUTO_POLICY: a normal change, or the domain's own auto-insert/extract.
    AutoPolicy,
    /// EXT_SOFTWARE: commanded by software (shelf manager, HPI user).
    ExtSoftware,
    /// OPERATOR_INIT: the operator moved the handle.
    OperatorInit,
    /// USER_UPDATE: change due to provided information.
    UserUpdate,
    /// UNEXPECTED_DEACTIVATION.
    UnexpectedDeactivation,
    /// SURPRISE_EXTRACTION.
    SurpriseExtraction,
    /// HARDWARE_FAULT: communication lost/regained, invalid hardware address.
    HardwareFault,
    /// UNKNOWN (also: a change found by rediscovery rather than by an event).
    Unknown,
}

impl HsCause {
    /// From the PICMG cause code (high nibble of event data 2).
    pub fn from_picmg(code: u8) -> Self {
        match code {
            0 => Self::AutoPolicy,
            1 | 3 => Self::ExtSoftware,
            2 => Self::OperatorInit,
            4 | 5 | 8 => Self::HardwareFault,
            6 => Self::SurpriseExtraction,
            7 => Self::UserUpdate,
            9 => Self::UnexpectedDeactivation,
            _ => Self::Unknown,
        }
    }
}

/// One step of an entity path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// SAHPI_ENT_ADVANCEDTCA_CHASSIS.
    AdvancedTcaChassis,
    /// SAHPI_ENT_PHYSICAL_SLOT.
    PhysicalSlot,
    /// SAHPI_ENT_PICMG_FRONT_BLADE.
    PicmgFrontBlade,
    /// SAHPI_ENT_SHELF_MANAGER.
    ShelfManager,
    /// SAHPI_ENT_BACK_PANEL_BOARD: a rear transition module (PICMG entity 0xC0).
    BackPanelBoard,
    /// SAHPI_ENT_AMC: an Advanced Mezzanine Card (PICMG entity 0xC1).
    Amc,
}

impl EntityType {
    fn name(self) -> &'static str {
        match self {
            Self::AdvancedTcaChassis => "ADVANCEDTCA_CHASSIS",
            Self::PhysicalSlot => "PHYSICAL_SLOT",
            Self::PicmgFrontBlade => "PICMG_FRONT_BLADE",
            Self::ShelfManager => "SHELF_MANAGER",
            Self::BackPanelBoard => "BACK_PANEL_BOARD",
            Self::Amc => "AMC",
        }
    }
}

/// An entity path, outermost first, printed as HPI prints it innermost last:
/// `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,3}{PICMG_FRONT_BLADE,0}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityPath(pub Vec<(EntityType, u32)>);

impl fmt::Display for EntityPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (t, n) in &self.0 {
            write!(f, "{{{},{n}}}", t.name())?;
        }
        Ok(())
    }
}

/// What kind of thing a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// The shelf (chassis) itself: Shelf FRU information.
    Shelf,
    /// The shelf manager (ShMC at 0x20).
    ShelfManager,
    /// A board in an ATCA board site (FRU 0 of its IPMC).
    Board {
        /// Site number.
        site: u8,
    },
    /// A subsidiary FRU of a board's IPMC (FRU device id > 0: an RTM, an AMC, a
    /// mezzanine), with hot-swap states of its own.
    Subsidiary {
        /// Site number of the board whose IPMC manages it.
        site: u8,
        /// The entity id of its FRU Device Locator record (0xC0 RTM, 0xC1 AMC, ...).
        entity_id: u8,
    },
}

/// Resource capabilities (the `SAHPI_CAPABILITY_*` bits this model uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// RESOURCE.
    pub resource: bool,
    /// FRU.
    pub fru: bool,
    /// MANAGED_HOTSWAP.
    pub managed_hotswap: bool,
    /// RDR.
    pub rdr: bool,
    /// SENSOR.
    pub sensor: bool,
    /// CONTROL.
    pub control: bool,
    /// INVENTORY_DATA.
    pub inventory: bool,
}

/// An entry of the resource presence table.
#[derive(Debug, Clone, PartialEq)]
pub struct RptEntry {
    /// Resource id.
    pub id: ResourceId,
    /// Entity path.
    pub entity: EntityPath,
    /// Tag (from the MC Device Locator or FRU).
    pub tag: String,
    /// Kind.
    pub kind: ResourceKind,
    /// IPMB address of its controller.
    pub ipmb_addr: u8,
    /// FRU device id within that controller.
    pub fru_id: u8,
    /// Capabilities.
    pub caps: Capabilities,
    /// Hot-swap state (managed hot-swap resources).
    pub hs_state: Option<HsState>,
    /// Last PICMG M-state seen.
    pub m_state: Option<MState>,
    /// ResourceFailed (M7: the shelf manager lost the IPMC).
    pub failed: bool,
}

/// How a sensor reports events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCategory {
    /// Threshold sensor.
    Threshold,
    /// Sensor-specific (0x6F), e.g. FRU Hot Swap.
    SensorSpecific,
    /// Generic discrete (0x02..0x0C).
    Generic(u8),
}

/// A sensor RDR.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRdr {
    /// Sensor number (the IPMI sensor number).
    pub num: u8,
    /// IPMI sensor type (0x01 temperature, 0xF0 FRU hot swap, ...).
    pub sensor_type: u8,
    /// Event category.
    pub category: EventCategory,
    /// IPMB address of the owner.
    pub owner: u8,
    /// IPMI base unit code.
    pub unit: u8,
    /// Name from the SDR.
    pub name: String,
    /// Raw-to-value conversion, when the SDR has one.
    pub conversion: Option<Conversion>,
    /// Thresholds as the SDR lists them (raw).
    pub sdr_thresholds: RawThresholds,
}

/// A control RDR: one FRU LED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRdr {
    /// Control number (the PICMG LED id).
    pub num: u8,
    /// Name ("blue LED", "LED1", "application LED 4", ...).
    pub name: String,
    /// This is the hot-swap indicator (the blue LED).
    pub hotswap_indicator: bool,
}

/// A resource data record.
#[derive(Debug, Clone, PartialEq)]
pub enum Rdr {
    /// Sensor.
    Sensor(SensorRdr),
    /// Control (LED).
    Control(ControlRdr),
    /// Inventory (decoded FRU fields).
    Inventory(Vec<FruField>),
}

/// A sensor reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorValue {
    /// Raw reading.
    pub raw: u8,
    /// Converted value (threshold sensors with a linear conversion).
    pub value: Option<f64>,
    /// Event state bits (threshold comparison or discrete states).
    pub event_state: u16,
    /// Reading unavailable.
    pub unavailable: bool,
}

/// Sensor thresholds in units (None: not readable/defined).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    /// LowMinor (lower non-critical).
    pub low_minor: Option<f64>,
    /// LowMajor (lower critical).
    pub low_major: Option<f64>,
    /// LowCritical (lower non-recoverable).
    pub low_critical: Option<f64>,
    /// UpMinor (upper non-critical).
    pub up_minor: Option<f64>,
    /// UpMajor (upper critical).
    pub up_major: Option<f64>,
    /// UpCritical (upper non-recoverable).
    pub up_critical: Option<f64>,
}

/// Threshold event states (`SAHPI_ES_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThresholdState {
    /// LOWER_MINOR.
    LowerMinor,
    /// LOWER_MAJOR.
    LowerMajor,
    /// LOWER_CRIT.
    LowerCrit,
    /// UPPER_MINOR.
    UpperMinor,
    /// UPPER_MAJOR.
    UpperMajor,
    /// UPPER_CRIT.
    UpperCrit,
}

impl ThresholdState {
    /// From the IPMI threshold event offset (0..11: going low/high pairs).
    pub fn from_offset(o: u8) -> Option<Self> {
        Some(match o >> 1 {
            0 => Self::LowerMinor,
            1 => Self::LowerMajor,
            2 => Self::LowerCrit,
            3 => Self::UpperMinor,
            4 => Self::UpperMajor,
            5 => Self::UpperCrit,
            _ => return None,
        })
    }

    /// The IPMI threshold event offset of this threshold crossed going `crossing` (the
    /// inverse of [`ThresholdState::from_offset`] with [`Crossing::from_offset`]).
    pub fn offset(self, crossing: Crossing) -> u8 {
        let level = match self {
            Self::LowerMinor => 0,
            Self::LowerMajor => 1,
            Self::LowerCrit => 2,
            Self::UpperMinor => 3,
            Self::UpperMajor => 4,
            Self::UpperCrit => 5,
        };
        2 * level + u8::from(crossing == Crossing::GoingHigh)
    }
}

/// Which way the reading went when it crossed a threshold (IPMI's threshold event offsets
/// come in going-low / going-high pairs; HPI's event states do not say, so it is kept beside
/// them). Lower thresholds usually assert going low and upper ones going high, but a sensor
/// may be set to report either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crossing {
    /// The reading went down through the threshold (even offsets).
    GoingLow,
    /// The reading went up through the threshold (odd offsets).
    GoingHigh,
}

impl Crossing {
    /// From the IPMI threshold event offset (even: going low, odd: going high).
    pub fn from_offset(o: u8) -> Self {
        if o & 1 == 1 {
            Self::GoingHigh
        } else {
            Self::GoingLow
        }
    }
}

/// What a sensor event says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SensorEventState {
    /// A threshold crossed, and which way.
    Threshold(ThresholdState, Crossing),
    /// A discrete state.
    Discrete {
        /// The IPMI event/reading type (0x02..0x0C generic, 0x6F sensor-specific, 0x70..
        /// OEM): what the offset means.
        event_type: u8,
        /// The state offset (0..14).
        offset: u8,
    },
}

impl SensorEventState {
    /// Whether the state is critical in IPMI's sense, or worse: a threshold at IPMI's
    /// critical or non-recoverable level (HPI's LOWER/UPPER_MAJOR and LOWER/UPPER_CRIT), or a
    /// discrete sensor of the generic severity type (0x07) entering Critical or
    /// Non-recoverable (offsets 2, 3, 5, 6). Sensor-specific states carry no severity IPMI
    /// defines, so they are not critical here.
    pub fn critical(&self) -> bool {
        match *self {
            SensorEventState::Threshold(t, _) => {
                !matches!(t, ThresholdState::LowerMinor | ThresholdState::UpperMinor)
            }
            SensorEventState::Discrete { event_type, offset } => {
                event_type == 0x07 && matches!(offset, 2 | 3 | 5 | 6)
            }
        }
    }
}

/// Domain-level events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    /// The connection to the shelf manager was lost; the domain reconnects with back-off.
    ShelfManagerLost {
        /// Why.
        reason: String,
    },
    /// Connected again and rediscovered.
    ShelfManagerRestored,
    /// The SEL was cleared by someone; states were read again.
    SelCleared,
    /// The SEL is full: the shelf manager drops events; states are read on every change.
    SelFull,
}

/// An HPI event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A resource appeared (insertion, rediscovery).
    ResourceAdded,
    /// A resource failed (M7).
    ResourceFailed,
    /// A failed resource came back.
    ResourceRestored,
    /// A resource disappeared without a hot-swap event (rediscovery).
    ResourceRemoved,
    /// Hot-swap state change.
    HotSwap {
        /// New state.
        state: HsState,
        /// Previous state.
        previous: HsState,
        /// Cause.
        cause: HsCause,
        /// The PICMG transition behind it: (previous, new, cause code); `None` when found
        /// by rediscovery.
        picmg: Option<(Option<MState>, MState, u8)>,
    },
    /// Sensor event.
    Sensor {
        /// Sensor number.
        num: u8,
        /// IPMI sensor type.
        sensor_type: u8,
        /// Assertion (true) or deassertion.
        assertion: bool,
        /// Which state.
        state: SensorEventState,
        /// Reading that triggered it, converted.
        trigger_reading: Option<f64>,
        /// Threshold that was crossed, converted.
        trigger_threshold: Option<f64>,
    },
    /// Domain event.
    Domain(DomainEvent),
}

/// An event as subscribers get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Domain-wide sequence number (1, 2, ...).
    pub seq: u64,
    /// Resource it is about (None for domain events).
    pub resource: Option<ResourceId>,
    /// That resource's RPT entry when the event was emitted (as saHpiEventGet hands it
    /// out): still there for a resource the event took out of the RPT (NOT_PRESENT,
    /// removed), whose slot and FRU id a reader can no longer look up.
    pub rpt_entry: Option<RptEntry>,
    /// SEL record that produced it, if any.
    pub sel_record: Option<u16>,
    /// That SEL record's timestamp (the shelf manager's clock, seconds): with the record id,
    /// what identifies the event across a cleared SEL that reuses ids.
    pub sel_timestamp: Option<u32>,
    /// What happened.
    pub kind: EventKind,
}

/// Auto-insert / auto-extract timeout (`SaHpiTimeoutT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// SAHPI_TIMEOUT_IMMEDIATE.
    Immediate,
    /// After this long.
    After(std::time::Duration),
    /// SAHPI_TIMEOUT_BLOCK: never on its own.
    Block,
}

/// saHpiHotSwapActionRequest actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HsAction {
    /// INSERTION (from INACTIVE).
    Insertion,
    /// EXTRACTION (from ACTIVE).
    Extraction,
}

/// A control's state (LEDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlState {
    /// The IPMC controls it (no override).
    pub auto: bool,
    /// What it does.
    pub function: LedFunction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_states_are_critical_or_non_recoverable_thresholds_and_severities() {
        let t = |o| {
            SensorEventState::Threshold(
                ThresholdState::from_offset(o).unwrap(),
                Crossing::from_offset(o),
            )
        };
        let critical: Vec<u8> = (0..12).filter(|&o| t(o).critical()).collect();
        // Lower critical and non-recoverable, upper critical and non-recoverable, each going
        // low and high; not the non-critical ones (0, 1, 6, 7).
        assert_eq!(critical, [2, 3, 4, 5, 8, 9, 10, 11]);
        let d = |event_type, offset| SensorEventState::Discrete { event_type, offset };
        let severity: Vec<u8> = (0..15).filter(|&o| d(0x07, o).critical()).collect();
        assert_eq!(severity, [2, 3, 5, 6]);
        // The same offsets of another type (e.g. 0x6F sensor-specific) are not.
        assert!((0..15).all(|o| !d(0x6F, o).critical() && !d(0x03, o).critical()));
    }

    #[test]
    fn a_threshold_offset_keeps_its_direction_both_ways() {
        let back: Vec<u8> = (0..12)
            .map(|o| {
                ThresholdState::from_offset(o)
                    .unwrap()
                    .offset(Crossing::from_offset(o))
            })
            .collect();
        assert_eq!(back, (0..12).collect::<Vec<u8>>());
        // Upper critical going low (8) is not upper critical going high (9).
        assert_eq!(Crossing::from_offset(8), Crossing::GoingLow);
        assert_eq!(ThresholdState::UpperMajor.offset(Crossing::GoingLow), 8);
        assert_eq!(ThresholdState::LowerCrit.offset(Crossing::GoingHigh), 5);
        assert_eq!(ThresholdState::from_offset(12), None);
    }
}
