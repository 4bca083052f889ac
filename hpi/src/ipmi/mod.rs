//! The IPMI backend: an RMCP+ session on ipmi-rs ([`session`]), the command bodies and
//! response parsers ([`msg`]), the credentials file ([`credentials`]), and [`IpmiShelf`],
//! which implements [`ShelfAccess`] with them.

pub mod credentials;
pub mod msg;
pub mod session;

use crate::access::{AccessError, AccessResult, ShelfAccess};
use credentials::Credentials;
use msg::{
    AddressInfo, FruField, LedFunction, LedProperties, LedState, PICMG_ID, PicmgProperties,
    RawThresholds, SdrRecord, SelInfo, SelRecord, SensorReading, SiteType, netfn, picmg, sensor,
    storage,
};
use session::{ConnectError, RequestError, Session, SessionConfig};

/// Completion code: invalid command (not implemented).
const CC_INVALID_COMMAND: u8 = 0xC1;
/// Completion code: requested record not present.
const CC_NOT_PRESENT: u8 = 0xCB;
/// Completion code: reservation cancelled.
const CC_RESERVATION_CANCELLED: u8 = 0xC5;
/// Completion code: parameter out of range (Get Address Info of a site that does not exist).
const CC_OUT_OF_RANGE: u8 = 0xC9;
/// Completion code: destination unavailable (ipmi_sim: no such site).
const CC_DEST_UNAVAILABLE: u8 = 0xD3;
/// Completion code: invalid data field.
const CC_INVALID_DATA: u8 = 0xCC;

/// Bytes read per Get SDR / Read FRU Data request (fits any IPMB frame).
const CHUNK: u8 = 16;

/// [`ShelfAccess`] over an RMCP+ session to the shelf manager.
#[derive(Debug)]
pub struct IpmiShelf {
    cfg: SessionConfig,
    creds: Credentials,
    session: Option<Session>,
    /// The last connect error, for the operator.
    pub last_connect_error: Option<String>,
}

impl IpmiShelf {
    /// A shelf reached with `cfg` and `creds`; no traffic until [`ShelfAccess::connect`].
    pub fn new(cfg: SessionConfig, creds: Credentials) -> Self {
        Self {
            cfg,
            creds,
            session: None,
            last_connect_error: None,
        }
    }

    /// Opens the session, returning the typed error (the trait flattens it).
    ///
    /// # Errors
    /// [`ConnectError`].
    pub fn open(&mut self) -> Result<(), ConnectError> {
        self.session = None;
        let s = Session::connect(&self.cfg, &self.creds)?;
        self.session = Some(s);
        Ok(())
    }

    fn session(&mut self) -> AccessResult<&mut Session> {
        self.session
            .as_mut()
            .ok_or_else(|| AccessError::ConnectionLost("not connected".into()))
    }

    fn map(&mut self, e: RequestError, what: &str) -> AccessError {
        match e {
            RequestError::TargetAbsent { target, .. } => AccessError::NotPresent(target),
            e @ RequestError::TargetNoAnswer { .. } => AccessError::Failed(format!("{what}: {e}")),
            RequestError::Completion { cc, .. } if cc == CC_INVALID_COMMAND => {
                AccessError::Unsupported(format!("{what}: completion code 0xC1"))
            }
            RequestError::Completion { cc, .. } => {
                AccessError::Failed(format!("{what}: completion code 0x{cc:02x}"))
            }
            RequestError::Malformed(m) => AccessError::Malformed(m.to_string()),
            e @ (RequestError::Timeout { .. } | RequestError::SessionBroken(_)) => {
                self.session = None;
                AccessError::ConnectionLost(format!("{what}: {e}"))
            }
        }
    }

    fn call(
        &mut self,
        target: u8,
        nf: u8,
        cmd: u8,
        data: &[u8],
        what: &str,
    ) -> AccessResult<Vec<u8>> {
        let r = self.session()?.ok_to(target, nf, cmd, data);
        r.map_err(|e| self.map(e, what))
    }

    fn read_sdr(&mut self, reservation: u16, id: u16) -> AccessResult<Result<(u16, Vec<u8>), u8>> {
        // header first, then the body in chunks
        let mut rec = Vec::new();
        let mut next = 0;
        let mut want = 5usize;
        while rec.len() < want {
            let len = (want - rec.len()).min(usize::from(CHUNK)) as u8;
            let body = msg::get_sdr_body(reservation, id, rec.len() as u8, len);
            let a = self
                .session()?
                .request(netfn::STORAGE, storage::GET_SDR, &body)
                .map_err(|e| self.map(e, "Get SDR"))?;
            if a.cc != 0 {
                return Ok(Err(a.cc));
            }
            let (n, bytes) =
                msg::parse_get_sdr(&a.data).map_err(|e| AccessError::Malformed(e.to_string()))?;
            if bytes.is_empty() {
                return Err(AccessError::Malformed("Get SDR returned no bytes".into()));
            }
            next = n;
            rec.extend_from_slice(bytes);
            if rec.len() >= 5 && want == 5 {
                want = 5 + usize::from(rec[4]);
            }
        }
        rec.truncate(want);
        Ok(Ok((next, rec)))
    }
}

impl ShelfAccess for IpmiShelf {
    fn connect(&mut self) -> AccessResult<()> {
        match self.open() {
            Ok(()) => {
                self.last_connect_error = None;
                Ok(())
            }
            Err(e) => {
                let s = e.to_string();
                self.last_connect_error = Some(s.clone());
                Err(AccessError::ConnectionLost(s))
            }
        }
    }

    fn picmg_properties(&mut self, ipmb: u8) -> AccessResult<PicmgProperties> {
        let d = self.call(
            ipmb,
            netfn::PICMG,
            picmg::GET_PROPERTIES,
            &[PICMG_ID],
            "Get PICMG Properties",
        )?;
        PicmgProperties::parse(&d).map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn address_info(&mut self, site: u8, site_type: SiteType) -> AccessResult<Option<AddressInfo>> {
        let body = AddressInfo::request_by_site(site, site_type);
        let a = self
            .session()?
            .request(netfn::PICMG, picmg::GET_ADDRESS_INFO, &body)
            .map_err(|e| self.map(e, "Get Address Info"))?;
        match a.cc {
            0 => AddressInfo::parse(&a.data)
                .map(Some)
                .map_err(|e| AccessError::Malformed(e.to_string())),
            CC_OUT_OF_RANGE | CC_INVALID_DATA | CC_NOT_PRESENT | CC_INVALID_COMMAND
            | CC_DEST_UNAVAILABLE => Ok(None),
            cc => Err(AccessError::Failed(format!(
                "Get Address Info: completion code 0x{cc:02x}"
            ))),
        }
    }

    fn sdr_repository(&mut self) -> AccessResult<Vec<SdrRecord>> {
        'again: for _ in 0..3 {
            let d = self.call(
                0x20,
                netfn::STORAGE,
                storage::RESERVE_SDR,
                &[],
                "Reserve SDR Repository",
            )?;
            let rsv =
                msg::parse_reservation(&d).map_err(|e| AccessError::Malformed(e.to_string()))?;
            let mut out = Vec::new();
            let mut id = 0u16;
            for _ in 0..4096 {
                match self.read_sdr(rsv, id)? {
                    Err(CC_RESERVATION_CANCELLED) => continue 'again,
                    Err(cc) => {
                        return Err(AccessError::Failed(format!(
                            "Get SDR 0x{id:04x}: completion code 0x{cc:02x}"
                        )));
                    }
                    Ok((next, rec)) => {
                        match SdrRecord::parse(&rec) {
                            Ok(r) => out.push(r),
                            Err(e) => {
                                tracing::warn!(record = id, error = %e, "skipped an SDR record")
                            }
                        }
                        if next == 0xFFFF || next == id {
                            return Ok(out);
                        }
                        id = next;
                    }
                }
            }
            return Err(AccessError::Malformed("SDR repository does not end".into()));
        }
        Err(AccessError::Failed(
            "SDR reservation cancelled three times".into(),
        ))
    }

    fn sensor_reading(&mut self, owner: u8, number: u8) -> AccessResult<SensorReading> {
        let d = self.call(
            owner,
            netfn::SENSOR,
            sensor::GET_READING,
            &[number],
            "Get Sensor Reading",
        )?;
        SensorReading::parse(&d).map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn sensor_thresholds(&mut self, owner: u8, number: u8) -> AccessResult<RawThresholds> {
        let d = self.call(
            owner,
            netfn::SENSOR,
            sensor::GET_THRESHOLDS,
            &[number],
            "Get Sensor Thresholds",
        )?;
        RawThresholds::parse(&d).map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn sel_info(&mut self) -> AccessResult<SelInfo> {
        let d = self.call(
            0x20,
            netfn::STORAGE,
            storage::GET_SEL_INFO,
            &[],
            "Get SEL Info",
        )?;
        SelInfo::parse(&d).map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn sel_entry(&mut self, id: u16) -> AccessResult<Option<(u16, SelRecord)>> {
        let a = self
            .session()?
            .request(
                netfn::STORAGE,
                storage::GET_SEL_ENTRY,
                &msg::get_sel_entry_body(id),
            )
            .map_err(|e| self.map(e, "Get SEL Entry"))?;
        match a.cc {
            0 => msg::parse_sel_entry(&a.data)
                .map(Some)
                .map_err(|e| AccessError::Malformed(e.to_string())),
            CC_NOT_PRESENT => Ok(None),
            cc => Err(AccessError::Failed(format!(
                "Get SEL Entry 0x{id:04x}: completion code 0x{cc:02x}"
            ))),
        }
    }

    fn fru_inventory(&mut self, ipmb: u8, fru: u8) -> AccessResult<Vec<FruField>> {
        let d = self.call(
            ipmb,
            netfn::STORAGE,
            storage::GET_FRU_AREA_INFO,
            &[fru],
            "Get FRU Inventory Area Info",
        )?;
        let (size, _words) =
            msg::parse_fru_area_info(&d).map_err(|e| AccessError::Malformed(e.to_string()))?;
        let size = usize::from(size).min(4096);
        let mut image = Vec::with_capacity(size);
        while image.len() < size {
            let off = (image.len() as u16).to_le_bytes();
            let n = (size - image.len()).min(usize::from(CHUNK)) as u8;
            let d = self.call(
                ipmb,
                netfn::STORAGE,
                storage::READ_FRU_DATA,
                &[fru, off[0], off[1], n],
                "Read FRU Data",
            )?;
            let bytes =
                msg::parse_read_fru(&d).map_err(|e| AccessError::Malformed(e.to_string()))?;
            if bytes.is_empty() {
                break;
            }
            image.extend_from_slice(bytes);
        }
        msg::parse_fru_inventory(&image).map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn set_fru_activation(&mut self, ipmb: u8, fru: u8, activate: bool) -> AccessResult<()> {
        let d = self.call(
            ipmb,
            netfn::PICMG,
            picmg::SET_ACTIVATION,
            &[PICMG_ID, fru, u8::from(activate)],
            "Set FRU Activation",
        )?;
        msg::parse_picmg_ack("Set FRU Activation", &d)
            .map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn set_activation_policy(&mut self, ipmb: u8, fru: u8, mask: u8, bits: u8) -> AccessResult<()> {
        let d = self.call(
            ipmb,
            netfn::PICMG,
            picmg::SET_ACTIVATION_POLICY,
            &[PICMG_ID, fru, mask & 3, bits & 3],
            "Set FRU Activation Policy",
        )?;
        msg::parse_picmg_ack("Set FRU Activation Policy", &d)
            .map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn led_properties(&mut self, ipmb: u8, fru: u8) -> AccessResult<LedProperties> {
        let d = self.call(
            ipmb,
            netfn::PICMG,
            picmg::GET_LED_PROPERTIES,
            &[PICMG_ID, fru],
            "Get FRU LED Properties",
        )?;
        LedProperties::parse(&d).map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn led_state(&mut self, ipmb: u8, fru: u8, led: u8) -> AccessResult<LedState> {
        let d = self.call(
            ipmb,
            netfn::PICMG,
            picmg::GET_LED_STATE,
            &[PICMG_ID, fru, led],
            "Get FRU LED State",
        )?;
        LedState::parse(&d).map_err(|e| AccessError::Malformed(e.to_string()))
    }

    fn set_led_state(
        &mut self,
        ipmb: u8,
        fru: u8,
        led: u8,
        function: Option<LedFunction>,
    ) -> AccessResult<()> {
        let (f, on) = match function {
            Some(f) => f.encode(),
            None => (0xFC, 0), // restore local control
        };
        // colour 0x0F: "use the default colour"
        let d = self.call(
            ipmb,
            netfn::PICMG,
            picmg::SET_LED_STATE,
            &[PICMG_ID, fru, led, f, on, 0x0F],
            "Set FRU LED State",
        )?;
        msg::parse_picmg_ack("Set FRU LED State", &d)
            .map_err(|e| AccessError::Malformed(e.to_string()))
    }
}
