//! The IPMI side as the HPI model sees it: one trait, implemented over RMCP+ by
//! [`crate::ipmi::IpmiShelf`] and by fakes in tests.

use crate::ipmi::msg::{
    AddressInfo, FruField, LedFunction, LedProperties, LedState, MState, PicmgProperties,
    RawThresholds, SdrRecord, SelInfo, SelRecord, SensorReading, SiteType,
};

/// Why a shelf operation failed, as far as the model cares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The connection to the shelf manager is gone (timeouts, socket errors): the domain
    /// reconnects with back-off.
    #[error("shelf manager connection lost: {0}")]
    ConnectionLost(String),
    /// The addressed IPMC does not answer (empty slot, extracted board).
    #[error("IPMC 0x{0:02x} is not present")]
    NotPresent(u8),
    /// The command is not supported there (completion code 0xC1).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Any other completion code, or a record that does not exist.
    #[error("{0}")]
    Failed(String),
    /// The answer could not be decoded.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// Short for `Result<T, AccessError>`.
pub type AccessResult<T> = Result<T, AccessError>;

/// Everything the HPI domain asks of the shelf. Calls block until answered or failed.
pub trait ShelfAccess {
    /// (Re)opens the connection to the shelf manager.
    fn connect(&mut self) -> AccessResult<()>;
    /// Get PICMG Properties of the IPMC at `ipmb` (0x20 = the shelf manager).
    fn picmg_properties(&mut self, ipmb: u8) -> AccessResult<PicmgProperties>;
    /// Get Address Info of site `site` of `site_type`, asked of the shelf manager;
    /// `Ok(None)` when there is no such site.
    fn address_info(&mut self, site: u8, site_type: SiteType) -> AccessResult<Option<AddressInfo>>;
    /// All records of the shelf manager's SDR repository.
    fn sdr_repository(&mut self) -> AccessResult<Vec<SdrRecord>>;
    /// Get Sensor Reading of sensor `number` owned by `owner`.
    fn sensor_reading(&mut self, owner: u8, number: u8) -> AccessResult<SensorReading>;
    /// Get Sensor Thresholds of sensor `number` owned by `owner`.
    fn sensor_thresholds(&mut self, owner: u8, number: u8) -> AccessResult<RawThresholds>;
    /// Get SEL Info of the shelf manager's SEL.
    fn sel_info(&mut self) -> AccessResult<SelInfo>;
    /// Get SEL Entry `id` (0 = first, 0xFFFF = last): (next id, record). `Ok(None)` when the
    /// record does not exist (cleared SEL).
    fn sel_entry(&mut self, id: u16) -> AccessResult<Option<(u16, SelRecord)>>;
    /// The decoded FRU inventory of FRU `fru` at `ipmb`.
    fn fru_inventory(&mut self, ipmb: u8, fru: u8) -> AccessResult<Vec<FruField>>;
    /// Set FRU Activation (activate or deactivate).
    fn set_fru_activation(&mut self, ipmb: u8, fru: u8, activate: bool) -> AccessResult<()>;
    /// Set FRU Activation Policy: change the bits in `mask` to `bits` (bit 0 Locked,
    /// bit 1 Deactivation-Locked).
    fn set_activation_policy(&mut self, ipmb: u8, fru: u8, mask: u8, bits: u8) -> AccessResult<()>;
    /// Get FRU LED Properties.
    fn led_properties(&mut self, ipmb: u8, fru: u8) -> AccessResult<LedProperties>;
    /// Get FRU LED State.
    fn led_state(&mut self, ipmb: u8, fru: u8, led: u8) -> AccessResult<LedState>;
    /// Set FRU LED State (override with `function`, or `None` to give control back to the
    /// IPMC).
    fn set_led_state(
        &mut self,
        ipmb: u8,
        fru: u8,
        led: u8,
        function: Option<LedFunction>,
    ) -> AccessResult<()>;
    /// The hot-swap state from the FRU Hot Swap sensor `number` at `ipmb`.
    fn hot_swap_state(&mut self, ipmb: u8, number: u8) -> AccessResult<MState> {
        let r = self.sensor_reading(ipmb, number)?;
        r.hot_swap_state()
            .ok_or_else(|| AccessError::Malformed("hot-swap sensor shows no M-state".into()))
    }
}
