//! The HPI domain: resource presence table, RDRs, hot-swap state machine per FRU, timers and
//! the event queue. Pure: it talks to the shelf only through [`ShelfAccess`] and takes the
//! time as an argument.
//!
//! # Calling contract
//! - [`Domain::start`] once: connect and discover.
//! - [`Domain::poll`] whenever [`Domain::poll_timeout`] is reached (or sooner): it reads
//!   new SEL records (one Get SEL Info per `sel_poll_interval`, entries only when it
//!   changed), turns them into events, runs expired auto-insert/auto-extract timers and
//!   reconnects with back-off after a lost connection.
//! - [`Domain::subscribe`] then [`Domain::event_get`] to read events.
//!
//! Discovery reads the whole shelf at start, after a reconnect, and after a cleared SEL;
//! otherwise only an event about an IPMC it does not know (an insertion) makes it read
//! that IPMC. It never polls the shelf's states in a loop.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::access::{AccessError, ShelfAccess};
use crate::ipmi::msg::{
    AddressInfo, EventRecord, FruLocator, LedFunction, MState, SdrRecord, SelInfo, SelRecord,
    SiteType,
};
use crate::model::*;

/// IPMB address of the shelf manager.
const SHMC: u8 = 0x20;
/// FRU device id of the Shelf FRU information.
const SHELF_FRU: u8 = 254;

/// Domain settings.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// How often to ask the shelf manager whether its SEL changed (also the session's
    /// keep-alive: keep it well under the shelf manager's idle timeout, 30 s in ipmi_sim).
    pub sel_poll_interval: Duration,
    /// Auto-insert timeout (domain-wide): how long after INSERTION_PENDING the domain
    /// activates the FRU itself.
    pub auto_insert_timeout: Timeout,
    /// Default auto-extract timeout of new resources.
    pub auto_extract_timeout: Timeout,
    /// First reconnect delay; doubles after each failure.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Events kept per subscriber before the oldest are dropped (and overflow is flagged).
    pub queue_capacity: usize,
    /// Board sites probed with Get Address Info (stops at the first missing one).
    pub max_board_sites: u8,
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self {
            sel_poll_interval: Duration::from_millis(100),
            auto_insert_timeout: Timeout::Immediate,
            auto_extract_timeout: Timeout::After(Duration::from_secs(10)),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            queue_capacity: 4096,
            max_board_sites: 16,
        }
    }
}

/// Errors of the HPI calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpiError {
    /// No such resource (SA_ERR_HPI_INVALID_RESOURCE).
    #[error("no resource {0}")]
    InvalidResource(ResourceId),
    /// No such RDR (SA_ERR_HPI_NOT_PRESENT).
    #[error("resource {0} has no {1}")]
    NotPresent(ResourceId, String),
    /// Not allowed in this state (SA_ERR_HPI_INVALID_REQUEST).
    #[error("resource {resource}: {detail}")]
    InvalidRequest {
        /// Resource.
        resource: ResourceId,
        /// Why.
        detail: String,
    },
    /// No such subscription.
    #[error("no subscription {0}")]
    InvalidSubscription(u32),
    /// The shelf is not connected right now.
    #[error("shelf manager not connected")]
    NotConnected,
    /// The shelf answered with an error.
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Get SEL Info polls.
    pub sel_polls: u64,
    /// SEL records read.
    pub sel_records: u64,
    /// Get SEL Entry requests sent (the records read, plus the last record seen read again
    /// to learn what follows it, plus the last record read at every discovery).
    pub sel_entry_requests: u64,
    /// Full discoveries.
    pub discoveries: u64,
    /// Connection losses.
    pub connection_losses: u64,
    /// Events queued (before fan-out).
    pub events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    AutoInsert,
    AutoExtract,
}

#[derive(Debug)]
struct Resource {
    entry: RptEntry,
    rdrs: Vec<Rdr>,
    hs_sensor: Option<u8>,
    auto_extract: Timeout,
}

#[derive(Debug)]
enum Conn {
    Idle,
    Connected {
        next_poll: Instant,
    },
    Down {
        retry_at: Instant,
        backoff: Duration,
    },
}

#[derive(Debug, Default)]
struct Subscriber {
    queue: VecDeque<Event>,
    overflow: bool,
}

/// A subscription handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u32);

/// One HPI domain over one shelf.
#[derive(Debug)]
pub struct Domain<S> {
    shelf: S,
    cfg: DomainConfig,
    conn: Conn,
    resources: BTreeMap<ResourceId, Resource>,
    by_fru: BTreeMap<(u8, u8), ResourceId>,
    next_rid: u32,
    sites: Vec<AddressInfo>,
    sdrs: Vec<SdrRecord>,
    sel_last: Option<u16>,
    sel_info: Option<SelInfo>,
    timers: BTreeMap<ResourceId, (Instant, TimerKind)>,
    subs: BTreeMap<SubscriptionId, Subscriber>,
    next_sub: u32,
    seq: u64,
    /// The timestamp of the SEL record being handled, for the events it produces.
    sel_timestamp: Option<u32>,
    update_count: u64,
    stats: Stats,
}

impl<S: ShelfAccess> Domain<S> {
    /// A domain over `shelf`; nothing happens until [`Domain::start`].
    pub fn new(shelf: S, cfg: DomainConfig) -> Self {
        Self {
            shelf,
            cfg,
            conn: Conn::Idle,
            resources: BTreeMap::new(),
            by_fru: BTreeMap::new(),
            next_rid: 1,
            sites: Vec::new(),
            sdrs: Vec::new(),
            sel_last: None,
            sel_info: None,
            timers: BTreeMap::new(),
            subs: BTreeMap::new(),
            next_sub: 1,
            seq: 0,
            sel_timestamp: None,
            update_count: 0,
            stats: Stats::default(),
        }
    }

    /// The shelf access (tests drive fakes through it).
    pub fn shelf_mut(&mut self) -> &mut S {
        &mut self.shelf
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Connected to the shelf manager right now.
    pub fn connected(&self) -> bool {
        matches!(self.conn, Conn::Connected { .. })
    }

    /// RPT update counter (bumped on every add/remove/state change).
    pub fn update_count(&self) -> u64 {
        self.update_count
    }

    /// Connects and discovers. On failure the domain keeps retrying from [`Domain::poll`]
    /// with back-off; the error is returned so a caller can report it.
    ///
    /// # Errors
    /// The connect or discovery error.
    pub fn start(&mut self, now: Instant) -> Result<(), AccessError> {
        match self.shelf.connect().and_then(|()| self.discover(now)) {
            Ok(()) => {
                self.conn = Conn::Connected { next_poll: now };
                Ok(())
            }
            Err(e) => {
                self.conn = Conn::Down {
                    retry_at: now + self.cfg.backoff_min,
                    backoff: self.cfg.backoff_min,
                };
                Err(e)
            }
        }
    }

    /// When [`Domain::poll`] wants to run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = match self.conn {
            Conn::Idle => None,
            Conn::Connected { next_poll } => Some(next_poll),
            Conn::Down { retry_at, .. } => Some(retry_at),
        };
        let timer = self.timers.values().map(|(t, _)| *t).min();
        match (conn, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Does what is due at `now`: reconnect, SEL check, timers.
    pub fn poll(&mut self, now: Instant) {
        match self.conn {
            Conn::Idle => {}
            Conn::Down { retry_at, backoff } if now >= retry_at => {
                match self.shelf.connect().and_then(|()| self.discover(now)) {
                    Ok(()) => {
                        tracing::info!("shelf manager connection restored");
                        self.conn = Conn::Connected { next_poll: now };
                        self.emit(
                            None,
                            None,
                            EventKind::Domain(DomainEvent::ShelfManagerRestored),
                        );
                    }
                    Err(e) => {
                        let backoff = (backoff * 2).min(self.cfg.backoff_max);
                        tracing::debug!(error = %e, ?backoff, "reconnect failed");
                        self.conn = Conn::Down {
                            retry_at: now + backoff,
                            backoff,
                        };
                    }
                }
            }
            Conn::Down { .. } => {}
            Conn::Connected { next_poll } if now >= next_poll => {
                self.conn = Conn::Connected {
                    next_poll: now + self.cfg.sel_poll_interval,
                };
                if let Err(e) = self.check_sel(now) {
                    self.access_failed(now, &e);
                }
            }
            Conn::Connected { .. } => {}
        }
        self.run_timers(now);
    }

    fn access_failed(&mut self, now: Instant, e: &AccessError) {
        if let AccessError::ConnectionLost(reason) = e {
            if matches!(self.conn, Conn::Down { .. }) {
                return;
            }
            tracing::warn!(%reason, "shelf manager connection lost");
            self.stats.connection_losses += 1;
            self.conn = Conn::Down {
                retry_at: now + self.cfg.backoff_min,
                backoff: self.cfg.backoff_min,
            };
            self.emit(
                None,
                None,
                EventKind::Domain(DomainEvent::ShelfManagerLost {
                    reason: reason.clone(),
                }),
            );
        } else {
            tracing::warn!(error = %e, "shelf request failed");
        }
    }

    fn guard<T>(&mut self, now: Instant, r: Result<T, AccessError>) -> Result<T, HpiError> {
        r.map_err(|e| {
            self.access_failed(now, &e);
            HpiError::Access(e)
        })
    }

    // -----------------------------------------------------------------------------------
    // discovery

    /// Reads the whole shelf and merges it into the RPT (events for differences).
    fn discover(&mut self, now: Instant) -> Result<(), AccessError> {
        self.stats.discoveries += 1;
        let props = self.shelf.picmg_properties(SHMC)?;
        if props.major != 2 {
            return Err(AccessError::Failed(format!(
                "not an AdvancedTCA shelf manager (PICMG extension major version {})",
                props.major
            )));
        }
        // SEL position first: events logged while we read states are read afterwards.
        let info = self.shelf.sel_info()?;
        self.stats.sel_entry_requests += 1;
        self.sel_last = self.shelf.sel_entry(0xFFFF)?.map(|(_, r)| r.record_id());
        self.sel_info = Some(info);
        self.sdrs = self.shelf.sdr_repository()?;
        let mut sites = Vec::new();
        for site in 1..=self.cfg.max_board_sites {
            match self.shelf.address_info(site, SiteType::Board)? {
                Some(a) => sites.push(a),
                None => break,
            }
        }
        self.sites = sites;

        let mut found: Vec<(Resource, Option<MState>)> = Vec::new();
        found.push((self.build_shelf()?, None));
        found.push((self.build_shmc()?, None));
        for a in self.sites.clone() {
            let max_fru = match self.build_board(a, None) {
                Ok((r, max_fru)) => {
                    let m = r.entry.m_state;
                    found.push((r, m));
                    max_fru
                }
                Err(AccessError::NotPresent(_)) => continue,
                Err(e @ AccessError::ConnectionLost(_)) => return Err(e),
                // one IPMC that answers nonsense must not keep the whole shelf undiscovered
                Err(e) => {
                    tracing::warn!(ipmb = a.ipmb_addr, error = %e, "board skipped");
                    continue;
                }
            };
            for l in self.subsidiary_locators(a.ipmb_addr, max_fru) {
                match self.build_subsidiary(a, &l, None) {
                    Ok(r) => {
                        let m = r.entry.m_state;
                        found.push((r, m));
                    }
                    Err(AccessError::NotPresent(_)) => {}
                    Err(e @ AccessError::ConnectionLost(_)) => return Err(e),
                    Err(e) => tracing::warn!(
                        ipmb = a.ipmb_addr,
                        fru = l.fru_id,
                        error = %e,
                        "subsidiary FRU skipped"
                    ),
                }
            }
        }
        let first = self.resources.is_empty();
        let mut seen = Vec::new();
        for (mut res, m) in found {
            let key = (res.entry.ipmb_addr, res.entry.fru_id);
            seen.push(key);
            if let Some(&rid) = self.by_fru.get(&key) {
                let old = self
                    .resources
                    .get_mut(&rid)
                    .expect("by_fru points at resources");
                old.rdrs = std::mem::take(&mut res.rdrs);
                old.entry.tag = res.entry.tag;
                old.entry.caps = res.entry.caps;
                old.hs_sensor = res.hs_sensor;
                if let Some(m) = m
                    && old.entry.m_state != Some(m)
                {
                    self.apply_m_state(now, rid, m, None, 0x0F, None);
                }
            } else {
                let rid = self.insert(res);
                if !first {
                    self.emit(Some(rid), None, EventKind::ResourceAdded);
                }
                if let Some(m) = m {
                    self.start_timer_for(now, rid, m);
                }
            }
        }
        let gone: Vec<_> = self
            .by_fru
            .iter()
            .filter(|(k, _)| !seen.contains(k))
            .map(|(_, r)| *r)
            .collect();
        for rid in gone {
            // a subsidiary FRU may have left already with its board (gone before it)
            let Some(res) = self.resources.get(&rid) else {
                continue;
            };
            let managed = res.entry.hs_state.is_some();
            if managed {
                self.apply_m_state(now, rid, MState::M0, None, 0x0F, None);
            } else {
                self.emit(Some(rid), None, EventKind::ResourceRemoved);
                self.remove(rid);
            }
        }
        Ok(())
    }

    fn insert(&mut self, mut res: Resource) -> ResourceId {
        let rid = ResourceId(self.next_rid);
        self.next_rid += 1;
        res.entry.id = rid;
        self.by_fru
            .insert((res.entry.ipmb_addr, res.entry.fru_id), rid);
        self.resources.insert(rid, res);
        self.update_count += 1;
        rid
    }

    fn remove(&mut self, rid: ResourceId) {
        if let Some(r) = self.resources.remove(&rid) {
            self.by_fru.remove(&(r.entry.ipmb_addr, r.entry.fru_id));
            self.timers.remove(&rid);
            self.update_count += 1;
        }
    }

    fn mc_name(&self, ipmb: u8) -> Option<String> {
        self.sdrs.iter().find_map(|r| match r {
            SdrRecord::McLocator(l) if l.ipmb_addr == ipmb && !l.name.is_empty() => {
                Some(l.name.clone())
            }
            _ => None,
        })
    }

    /// The subsidiary FRUs (FRU device id 1..=`max_fru`) of the IPMC at `ipmb`, as its
    /// logical FRU Device Locator records in the repository list them, by FRU id.
    fn subsidiary_locators(&self, ipmb: u8, max_fru: u8) -> Vec<FruLocator> {
        let mut v: Vec<FruLocator> = self
            .sdrs
            .iter()
            .filter_map(|r| match r {
                SdrRecord::FruLocator(l)
                    if l.ipmb_addr == ipmb && l.logical && (1..=max_fru).contains(&l.fru_id) =>
                {
                    Some(l.clone())
                }
                _ => None,
            })
            .collect();
        v.sort_by_key(|l| l.fru_id);
        v.dedup_by_key(|l| l.fru_id);
        v
    }

    /// The entities (id, instance) of the subsidiary FRUs of the IPMC at `ipmb`: their
    /// sensors belong to them, not to the board (FRU 0).
    fn subsidiary_entities(&self, ipmb: u8, max_fru: u8) -> Vec<(u8, u8)> {
        self.subsidiary_locators(ipmb, max_fru)
            .iter()
            .map(|l| (l.entity_id, l.entity_instance))
            .collect()
    }

    /// The sensor RDRs of owner `owner` whose entity `keep` accepts.
    fn sensor_rdrs(&self, owner: u8, keep: impl Fn((u8, u8)) -> bool) -> Vec<Rdr> {
        self.sdrs
            .iter()
            .filter_map(|r| match r {
                SdrRecord::Sensor(s)
                    if s.owner == owner && s.lun == 0 && keep((s.entity_id, s.entity_instance)) =>
                {
                    Some(Rdr::Sensor(SensorRdr {
                        num: s.number,
                        sensor_type: s.sensor_type,
                        category: match s.event_type {
                            0x01 => EventCategory::Threshold,
                            0x6F => EventCategory::SensorSpecific,
                            t => EventCategory::Generic(t),
                        },
                        owner: s.owner,
                        unit: s.unit,
                        name: s.name.clone(),
                        conversion: s.conversion,
                        sdr_thresholds: s.thresholds,
                    }))
                }
                _ => None,
            })
            .collect()
    }

    fn inventory_rdr(&mut self, ipmb: u8, fru: u8) -> Result<Option<Rdr>, AccessError> {
        match self.shelf.fru_inventory(ipmb, fru) {
            Ok(f) => Ok(Some(Rdr::Inventory(f))),
            Err(e @ (AccessError::ConnectionLost(_) | AccessError::NotPresent(_))) => Err(e),
            Err(e) => {
                tracing::debug!(ipmb, fru, error = %e, "no FRU inventory");
                Ok(None)
            }
        }
    }

    fn caps_of(rdrs: &[Rdr], managed: bool, fru: bool) -> Capabilities {
        Capabilities {
            resource: true,
            fru,
            managed_hotswap: managed,
            rdr: !rdrs.is_empty(),
            sensor: rdrs.iter().any(|r| matches!(r, Rdr::Sensor(_))),
            control: rdrs.iter().any(|r| matches!(r, Rdr::Control(_))),
            inventory: rdrs.iter().any(|r| matches!(r, Rdr::Inventory(_))),
        }
    }

    fn chassis() -> (EntityType, u32) {
        (EntityType::AdvancedTcaChassis, 1)
    }

    fn build_shelf(&mut self) -> Result<Resource, AccessError> {
        let rdrs: Vec<Rdr> = self.inventory_rdr(SHMC, SHELF_FRU)?.into_iter().collect();
        Ok(Resource {
            entry: RptEntry {
                id: ResourceId(0),
                entity: EntityPath(vec![Self::chassis()]),
                tag: "Shelf".into(),
                kind: ResourceKind::Shelf,
                ipmb_addr: SHMC,
                fru_id: SHELF_FRU,
                caps: Self::caps_of(&rdrs, false, false),
                hs_state: None,
                m_state: None,
                failed: false,
            },
            rdrs,
            hs_sensor: None,
            auto_extract: Timeout::Block,
        })
    }

    fn build_shmc(&mut self) -> Result<Resource, AccessError> {
        let mut rdrs = self.sensor_rdrs(SHMC, |_| true);
        rdrs.extend(self.inventory_rdr(SHMC, 0)?);
        let site = match self.shelf.address_info(1, SiteType::ShelfManager)? {
            Some(a) if a.ipmb_addr == SHMC => u32::from(a.site_number),
            _ => 1,
        };
        Ok(Resource {
            entry: RptEntry {
                id: ResourceId(0),
                entity: EntityPath(vec![Self::chassis(), (EntityType::ShelfManager, site)]),
                tag: self.mc_name(SHMC).unwrap_or_else(|| "Shelf Manager".into()),
                kind: ResourceKind::ShelfManager,
                ipmb_addr: SHMC,
                fru_id: 0,
                caps: Self::caps_of(&rdrs, false, false),
                hs_state: None,
                m_state: None,
                failed: false,
            },
            rdrs,
            hs_sensor: None,
            auto_extract: Timeout::Block,
        })
    }

    /// Reads one board's IPMC (its FRU 0); `Err(NotPresent)` for an empty slot. `m`
    /// overrides the M-state read from the hot-swap sensor (the state an event just
    /// reported). Also returns the IPMC's highest FRU device id (Get PICMG Properties).
    fn build_board(
        &mut self,
        a: AddressInfo,
        m: Option<MState>,
    ) -> Result<(Resource, u8), AccessError> {
        let ipmb = a.ipmb_addr;
        let props = self.shelf.picmg_properties(ipmb)?;
        let subsidiary = self.subsidiary_entities(ipmb, props.max_fru_id);
        let mut rdrs = self.sensor_rdrs(ipmb, |e| !subsidiary.contains(&e));
        let (hs_sensor, m) = self.hot_swap_of(ipmb, &rdrs, m)?;
        self.push_leds(ipmb, a.fru_id, &mut rdrs)?;
        rdrs.extend(self.inventory_rdr(ipmb, a.fru_id)?);
        let tag = self
            .mc_name(ipmb)
            .unwrap_or_else(|| format!("Board {}", a.site_number));
        let res = self.fru_resource(
            (a, EntityType::PicmgFrontBlade, a.fru_id),
            tag,
            ResourceKind::Board {
                site: a.site_number,
            },
            (rdrs, hs_sensor, m),
        );
        Ok((res, props.max_fru_id))
    }

    /// Reads subsidiary FRU `l` of the board in site `a` (an RTM, an AMC): its sensors
    /// (those of its locator's entity), hot-swap state, LEDs and inventory. `Err(NotPresent)`
    /// when it is not installed (M0). `m` as in [`Self::build_board`].
    fn build_subsidiary(
        &mut self,
        a: AddressInfo,
        l: &FruLocator,
        m: Option<MState>,
    ) -> Result<Resource, AccessError> {
        let ipmb = a.ipmb_addr;
        let entity = (l.entity_id, l.entity_instance);
        let mut rdrs = self.sensor_rdrs(ipmb, |e| e == entity);
        let (hs_sensor, m) = self.hot_swap_of(ipmb, &rdrs, m)?;
        if m == MState::M0 {
            return Err(AccessError::NotPresent(ipmb));
        }
        self.push_leds(ipmb, l.fru_id, &mut rdrs)?;
        rdrs.extend(self.inventory_rdr(ipmb, l.fru_id)?);
        let kind = match l.entity_id {
            0xC0 => EntityType::BackPanelBoard,
            0xC1 => EntityType::Amc,
            _ => EntityType::PicmgFrontBlade,
        };
        let tag = if l.name.is_empty() {
            format!("FRU {} of board {}", l.fru_id, a.site_number)
        } else {
            l.name.clone()
        };
        Ok(self.fru_resource(
            (a, kind, l.fru_id),
            tag,
            ResourceKind::Subsidiary {
                site: a.site_number,
                entity_id: l.entity_id,
            },
            (rdrs, hs_sensor, m),
        ))
    }

    /// The resource of FRU `fru_id` of the board in site `a`, at entity path chassis / slot /
    /// (`entity`, `fru_id`), with its RDRs, hot-swap sensor and M-state `m`.
    fn fru_resource(
        &self,
        (a, entity, fru_id): (AddressInfo, EntityType, u8),
        tag: String,
        kind: ResourceKind,
        (rdrs, hs_sensor, m): (Vec<Rdr>, Option<u8>, MState),
    ) -> Resource {
        Resource {
            entry: RptEntry {
                id: ResourceId(0),
                entity: EntityPath(vec![
                    Self::chassis(),
                    (EntityType::PhysicalSlot, u32::from(a.site_number)),
                    (entity, u32::from(fru_id)),
                ]),
                tag,
                kind,
                ipmb_addr: a.ipmb_addr,
                fru_id,
                caps: Self::caps_of(&rdrs, true, true),
                hs_state: HsState::from_picmg(m).or(Some(HsState::NotPresent)),
                m_state: Some(m),
                failed: m == MState::M7,
            },
            rdrs,
            hs_sensor,
            auto_extract: self.cfg.auto_extract_timeout,
        }
    }

    /// The FRU Hot Swap sensor among `rdrs` and the M-state: `m` when given, else its
    /// reading (M4 for a FRU without one).
    fn hot_swap_of(
        &mut self,
        ipmb: u8,
        rdrs: &[Rdr],
        m: Option<MState>,
    ) -> Result<(Option<u8>, MState), AccessError> {
        let hs_sensor = rdrs.iter().find_map(|r| match r {
            Rdr::Sensor(s) if s.sensor_type == 0xF0 => Some(s.num),
            _ => None,
        });
        let m = match (m, hs_sensor) {
            (Some(m), _) => m,
            (None, Some(n)) => self.shelf.hot_swap_state(ipmb, n)?,
            (None, None) => MState::M4,
        };
        Ok((hs_sensor, m))
    }

    /// Adds the control RDRs of FRU `fru`'s LEDs (Get FRU LED Properties).
    fn push_leds(&mut self, ipmb: u8, fru: u8, rdrs: &mut Vec<Rdr>) -> Result<(), AccessError> {
        match self.shelf.led_properties(ipmb, fru) {
            Ok(p) => {
                for id in p.led_ids() {
                    let name = match id {
                        0 => "blue LED".to_string(),
                        1..=3 => format!("LED{id}"),
                        n => format!("application LED {n}"),
                    };
                    rdrs.push(Rdr::Control(ControlRdr {
                        num: id,
                        name,
                        hotswap_indicator: id == 0,
                    }));
                }
            }
            Err(e @ (AccessError::ConnectionLost(_) | AccessError::NotPresent(_))) => {
                return Err(e);
            }
            Err(e) => tracing::debug!(ipmb, fru, error = %e, "no FRU LEDs"),
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // events from the SEL

    fn check_sel(&mut self, now: Instant) -> Result<(), AccessError> {
        self.stats.sel_polls += 1;
        let info = self.shelf.sel_info()?;
        let prev = self.sel_info;
        if let Some(p) = prev
            && p.entries == info.entries
            && p.last_add == info.last_add
            && p.last_erase == info.last_erase
        {
            return Ok(());
        }
        if let Some(p) = prev
            && (p.last_erase != info.last_erase || info.entries < p.entries)
        {
            return self.sel_cleared(now);
        }
        if info.overflow && !prev.is_some_and(|p| p.overflow) {
            self.emit(None, None, EventKind::Domain(DomainEvent::SelFull));
        }
        let mut id = match self.sel_last {
            None => 0,
            Some(last) => {
                self.stats.sel_entry_requests += 1;
                match self.shelf.sel_entry(last)? {
                    Some((next, _)) => next,
                    None => return self.sel_cleared(now),
                }
            }
        };
        let mut n = 0;
        while id != 0xFFFF && n < 4096 {
            n += 1;
            self.stats.sel_entry_requests += 1;
            let Some((next, rec)) = self.shelf.sel_entry(id)? else {
                break;
            };
            self.stats.sel_records += 1;
            self.sel_last = Some(rec.record_id());
            if let SelRecord::Event(e) = rec {
                self.on_event_record(now, &e)?;
            }
            if next == id {
                break;
            }
            id = next;
        }
        self.sel_info = Some(info);
        Ok(())
    }

    fn sel_cleared(&mut self, now: Instant) -> Result<(), AccessError> {
        tracing::info!("SEL cleared: reading the shelf again");
        self.emit(None, None, EventKind::Domain(DomainEvent::SelCleared));
        self.discover(now)
    }

    fn on_event_record(&mut self, now: Instant, e: &EventRecord) -> Result<(), AccessError> {
        self.sel_timestamp = Some(e.timestamp);
        let r = self.on_event_record_inner(now, e);
        self.sel_timestamp = None;
        r
    }

    fn on_event_record_inner(&mut self, now: Instant, e: &EventRecord) -> Result<(), AccessError> {
        if let Some(hs) = e.hot_swap() {
            let key = (hs.ipmb_addr, hs.fru_id);
            if let Some(&rid) = self.by_fru.get(&key) {
                self.apply_m_state(now, rid, hs.new, hs.previous, hs.cause, Some(e.record_id));
            } else if hs.new != MState::M0 {
                self.discover_board(now, hs.ipmb_addr, hs.fru_id, hs, e.record_id)?;
            }
            return Ok(());
        }
        let Some(owner) = e.ipmb_addr() else {
            return Ok(());
        };
        let found = self.resources.iter().find_map(|(rid, r)| {
            r.rdrs.iter().find_map(|d| match d {
                Rdr::Sensor(s) if s.owner == owner && s.num == e.sensor_number => {
                    Some((*rid, s.clone()))
                }
                _ => None,
            })
        });
        let Some((rid, s)) = found else {
            tracing::debug!(
                owner,
                sensor = e.sensor_number,
                "event from an unknown sensor"
            );
            return Ok(());
        };
        let conv = |raw: u8| s.conversion.and_then(|c| c.convert(raw));
        let (state, reading, threshold) = if e.event_type == 0x01 {
            let Some(t) = ThresholdState::from_offset(e.offset()) else {
                return Ok(());
            };
            let reading = (e.data[0] >> 6 == 1).then(|| conv(e.data[1])).flatten();
            let threshold = ((e.data[0] >> 4) & 3 == 1)
                .then(|| conv(e.data[2]))
                .flatten();
            let crossing = Crossing::from_offset(e.offset());
            (SensorEventState::Threshold(t, crossing), reading, threshold)
        } else {
            (
                SensorEventState::Discrete {
                    event_type: e.event_type,
                    offset: e.offset(),
                },
                None,
                None,
            )
        };
        self.emit(
            Some(rid),
            Some(e.record_id),
            EventKind::Sensor {
                num: e.sensor_number,
                sensor_type: e.sensor_type,
                assertion: !e.deassertion,
                state,
                trigger_reading: reading,
                trigger_threshold: threshold,
            },
        );
        Ok(())
    }

    /// An event from a FRU the RPT does not hold: an insertion (of a board, or of a
    /// subsidiary FRU such as an RTM). Reads that FRU only.
    fn discover_board(
        &mut self,
        now: Instant,
        ipmb: u8,
        fru: u8,
        hs: crate::ipmi::msg::HotSwapEvent,
        record: u16,
    ) -> Result<(), AccessError> {
        let mut site = self.sites.iter().find(|a| a.ipmb_addr == ipmb).copied();
        if site.is_none() {
            // a site we did not know: read the address table again
            for n in 1..=self.cfg.max_board_sites {
                match self.shelf.address_info(n, SiteType::Board)? {
                    Some(a) => {
                        if !self.sites.contains(&a) {
                            self.sites.push(a);
                        }
                        if a.ipmb_addr == ipmb {
                            site = Some(a);
                        }
                    }
                    None => break,
                }
            }
        }
        let Some(a) = site else {
            tracing::debug!(ipmb, "hot-swap event from an IPMC in no board site");
            return Ok(());
        };
        let built = if fru == 0 {
            self.build_board(a, Some(hs.new)).map(|(r, _)| r)
        } else {
            match self.locator_of(ipmb, fru)? {
                Some(l) => self.build_subsidiary(a, &l, Some(hs.new)),
                None => {
                    tracing::debug!(ipmb, fru, "hot-swap event from a FRU without a locator");
                    return Ok(());
                }
            }
        };
        let mut res = match built {
            Ok(r) => r,
            Err(e @ AccessError::ConnectionLost(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(ipmb, fru, error = %e, "inserted FRU could not be read");
                return Ok(());
            }
        };
        // the event's transition is reported from NOT_PRESENT
        let state = res.entry.hs_state.unwrap_or(HsState::NotPresent);
        res.entry.hs_state = Some(HsState::NotPresent);
        res.entry.m_state = Some(MState::M0);
        let rid = self.insert(res);
        self.emit(Some(rid), Some(record), EventKind::ResourceAdded);
        if state != HsState::NotPresent {
            self.apply_m_state(now, rid, hs.new, hs.previous, hs.cause, Some(record));
        }
        Ok(())
    }

    /// The FRU Device Locator of subsidiary FRU `fru` of the IPMC at `ipmb`. A FRU the
    /// repository read at discovery does not list (inserted since, with its IPMC's device
    /// SDRs added to the repository) makes the domain read the repository again, once.
    fn locator_of(&mut self, ipmb: u8, fru: u8) -> Result<Option<FruLocator>, AccessError> {
        let find = |sdrs: &[SdrRecord]| {
            sdrs.iter().find_map(|r| match r {
                SdrRecord::FruLocator(l) if l.ipmb_addr == ipmb && l.logical && l.fru_id == fru => {
                    Some(l.clone())
                }
                _ => None,
            })
        };
        if let Some(l) = find(&self.sdrs) {
            return Ok(Some(l));
        }
        self.sdrs = self.shelf.sdr_repository()?;
        Ok(find(&self.sdrs))
    }

    /// Moves resource `rid` to PICMG state `m`: events, timers, removal at M0.
    fn apply_m_state(
        &mut self,
        now: Instant,
        rid: ResourceId,
        m: MState,
        picmg_prev: Option<MState>,
        cause: u8,
        record: Option<u16>,
    ) {
        let Some(res) = self.resources.get_mut(&rid) else {
            return;
        };
        let old_m = res.entry.m_state;
        res.entry.m_state = Some(m);
        let carrier = matches!(res.entry.kind, ResourceKind::Board { .. });
        let ipmb = res.entry.ipmb_addr;
        if m == MState::M7 {
            if !res.entry.failed {
                res.entry.failed = true;
                self.update_count += 1;
                self.emit(Some(rid), record, EventKind::ResourceFailed);
                if carrier {
                    self.set_subsidiaries_failed(ipmb, true);
                }
            }
            return;
        }
        if res.entry.failed {
            res.entry.failed = false;
            self.update_count += 1;
            self.emit(Some(rid), record, EventKind::ResourceRestored);
            if carrier {
                self.set_subsidiaries_failed(ipmb, false);
            }
        }
        let res = self.resources.get_mut(&rid).expect("checked above");
        let old = res.entry.hs_state.unwrap_or(HsState::NotPresent);
        let new = HsState::from_picmg(m).unwrap_or(old);
        if matches!(m, MState::M3 | MState::M6) {
            // activation / deactivation under way: no auto action pending any more
            self.timers.remove(&rid);
        }
        if new == old {
            return;
        }
        res.entry.hs_state = Some(new);
        self.update_count += 1;
        let hpi_cause = if record.is_some() {
            HsCause::from_picmg(cause)
        } else {
            HsCause::Unknown
        };
        self.emit(
            Some(rid),
            record,
            EventKind::HotSwap {
                state: new,
                previous: old,
                cause: hpi_cause,
                picmg: Some((picmg_prev.or(old_m), m, cause)),
            },
        );
        self.timers.remove(&rid);
        if new == HsState::NotPresent {
            self.remove(rid);
            if carrier {
                self.remove_subsidiaries(ipmb, hpi_cause);
            }
        } else {
            self.start_timer_for(now, rid, m);
        }
    }

    /// The subsidiary FRUs (FRU id 1 and up) in the RPT behind the IPMC at `ipmb`, by FRU id.
    fn subsidiaries_of(&self, ipmb: u8) -> Vec<ResourceId> {
        self.by_fru
            .range((ipmb, 1)..=(ipmb, u8::MAX))
            .map(|(_, rid)| *rid)
            .collect()
    }

    /// The board (FRU 0) at `ipmb` left: its IPMC went with it, and so did every subsidiary
    /// FRU it managed. Each gets its hot-swap event to NOT_PRESENT (with the board's cause,
    /// no PICMG transition and no SEL record of its own), in FRU id order after the board's,
    /// and leaves the RPT. A later M0 record of such a FRU finds no resource and gives
    /// nothing.
    fn remove_subsidiaries(&mut self, ipmb: u8, cause: HsCause) {
        for rid in self.subsidiaries_of(ipmb) {
            let Some(res) = self.resources.get(&rid) else {
                continue;
            };
            let previous = res.entry.hs_state.unwrap_or(HsState::NotPresent);
            tracing::debug!(resource = %rid, ipmb, "subsidiary FRU gone with its board");
            self.emit(
                Some(rid),
                None,
                EventKind::HotSwap {
                    state: HsState::NotPresent,
                    previous,
                    cause,
                    picmg: None,
                },
            );
            self.remove(rid);
        }
    }

    /// The board (FRU 0) at `ipmb` lost (`failed`) or regained contact with the shelf
    /// manager (M7): its subsidiary FRUs are behind the same IPMC, so each is marked failed
    /// (restored) too, with its own `ResourceFailed` (`ResourceRestored`) event after the
    /// board's, and keeps its hot-swap state as the board does.
    fn set_subsidiaries_failed(&mut self, ipmb: u8, failed: bool) {
        for rid in self.subsidiaries_of(ipmb) {
            let Some(res) = self.resources.get_mut(&rid) else {
                continue;
            };
            if res.entry.failed == failed {
                continue;
            }
            res.entry.failed = failed;
            self.update_count += 1;
            let kind = if failed {
                EventKind::ResourceFailed
            } else {
                EventKind::ResourceRestored
            };
            self.emit(Some(rid), None, kind);
        }
    }

    fn start_timer_for(&mut self, now: Instant, rid: ResourceId, m: MState) {
        let (timeout, kind) = match m {
            MState::M2 => (self.cfg.auto_insert_timeout, TimerKind::AutoInsert),
            MState::M5 => match self.resources.get(&rid) {
                Some(r) => (r.auto_extract, TimerKind::AutoExtract),
                None => return,
            },
            _ => return,
        };
        let at = match timeout {
            Timeout::Block => return,
            Timeout::Immediate => now,
            Timeout::After(d) => now + d,
        };
        self.timers.insert(rid, (at, kind));
    }

    fn run_timers(&mut self, now: Instant) {
        if !self.connected() {
            return;
        }
        let due: Vec<_> = self
            .timers
            .iter()
            .filter(|(_, (t, _))| *t <= now)
            .map(|(r, (_, k))| (*r, *k))
            .collect();
        for (rid, kind) in due {
            self.timers.remove(&rid);
            let Some(r) = self.resources.get(&rid) else {
                continue;
            };
            let (ipmb, fru) = (r.entry.ipmb_addr, r.entry.fru_id);
            let activate = kind == TimerKind::AutoInsert;
            tracing::info!(resource = %rid, ?kind, "auto policy: Set FRU Activation({activate})");
            let res = self.shelf.set_fru_activation(ipmb, fru, activate);
            if let Err(e) = res {
                self.access_failed(now, &e);
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // events out

    fn emit(&mut self, resource: Option<ResourceId>, sel_record: Option<u16>, kind: EventKind) {
        self.seq += 1;
        self.stats.events += 1;
        let ev = Event {
            seq: self.seq,
            resource,
            rpt_entry: resource
                .and_then(|r| self.resources.get(&r))
                .map(|r| r.entry.clone()),
            sel_record,
            sel_timestamp: sel_record.and(self.sel_timestamp),
            kind,
        };
        tracing::debug!(?ev, "event");
        let cap = self.cfg.queue_capacity.max(1);
        for s in self.subs.values_mut() {
            if s.queue.len() >= cap {
                s.queue.pop_front();
                s.overflow = true;
            }
            s.queue.push_back(ev.clone());
        }
    }

    /// Subscribes: events from now on are queued for this subscription (saHpiSubscribe).
    pub fn subscribe(&mut self) -> SubscriptionId {
        let id = SubscriptionId(self.next_sub);
        self.next_sub += 1;
        self.subs.insert(id, Subscriber::default());
        id
    }

    /// Ends a subscription (saHpiUnsubscribe).
    ///
    /// # Errors
    /// [`HpiError::InvalidSubscription`].
    pub fn unsubscribe(&mut self, id: SubscriptionId) -> Result<(), HpiError> {
        self.subs
            .remove(&id)
            .map(|_| ())
            .ok_or(HpiError::InvalidSubscription(id.0))
    }

    /// The next queued event of `id`, if any (saHpiEventGet with TIMEOUT_IMMEDIATE; a
    /// caller that wants to block runs [`Domain::poll`] until one arrives).
    ///
    /// # Errors
    /// [`HpiError::InvalidSubscription`].
    pub fn event_get(&mut self, id: SubscriptionId) -> Result<Option<Event>, HpiError> {
        let s = self
            .subs
            .get_mut(&id)
            .ok_or(HpiError::InvalidSubscription(id.0))?;
        Ok(s.queue.pop_front())
    }

    /// Whether events were dropped for `id` since the last call (and clears the flag).
    ///
    /// # Errors
    /// [`HpiError::InvalidSubscription`].
    pub fn queue_overflowed(&mut self, id: SubscriptionId) -> Result<bool, HpiError> {
        let s = self
            .subs
            .get_mut(&id)
            .ok_or(HpiError::InvalidSubscription(id.0))?;
        Ok(std::mem::take(&mut s.overflow))
    }

    // -----------------------------------------------------------------------------------
    // the HPI calls

    /// The RPT, by resource id.
    pub fn rpt(&self) -> impl Iterator<Item = &RptEntry> {
        self.resources.values().map(|r| &r.entry)
    }

    /// One RPT entry.
    ///
    /// # Errors
    /// [`HpiError::InvalidResource`].
    pub fn rpt_entry(&self, rid: ResourceId) -> Result<&RptEntry, HpiError> {
        self.res(rid).map(|r| &r.entry)
    }

    /// The resource of FRU `fru` at IPMB address `ipmb`.
    pub fn resource_by_fru(&self, ipmb: u8, fru: u8) -> Option<ResourceId> {
        self.by_fru.get(&(ipmb, fru)).copied()
    }

    /// The RDRs of a resource.
    ///
    /// # Errors
    /// [`HpiError::InvalidResource`].
    pub fn rdrs(&self, rid: ResourceId) -> Result<&[Rdr], HpiError> {
        self.res(rid).map(|r| r.rdrs.as_slice())
    }

    fn res(&self, rid: ResourceId) -> Result<&Resource, HpiError> {
        self.resources
            .get(&rid)
            .ok_or(HpiError::InvalidResource(rid))
    }

    fn sensor(&self, rid: ResourceId, num: u8) -> Result<SensorRdr, HpiError> {
        self.res(rid)?
            .rdrs
            .iter()
            .find_map(|d| match d {
                Rdr::Sensor(s) if s.num == num => Some(s.clone()),
                _ => None,
            })
            .ok_or_else(|| HpiError::NotPresent(rid, format!("sensor {num}")))
    }

    fn connected_or_err(&self) -> Result<(), HpiError> {
        if self.connected() {
            Ok(())
        } else {
            Err(HpiError::NotConnected)
        }
    }

    /// saHpiSensorReadingGet.
    ///
    /// # Errors
    /// No such resource/sensor, not connected, shelf errors.
    pub fn sensor_reading(
        &mut self,
        now: Instant,
        rid: ResourceId,
        num: u8,
    ) -> Result<SensorValue, HpiError> {
        let s = self.sensor(rid, num)?;
        self.connected_or_err()?;
        let r = self.shelf.sensor_reading(s.owner, num);
        let r = self.guard(now, r)?;
        let value = if s.category == EventCategory::Threshold && !r.unavailable {
            s.conversion.and_then(|c| c.convert(r.raw))
        } else {
            None
        };
        Ok(SensorValue {
            raw: r.raw,
            value,
            event_state: r.states,
            unavailable: r.unavailable,
        })
    }

    /// saHpiSensorThresholdsGet (Get Sensor Thresholds, converted).
    ///
    /// # Errors
    /// No such resource/sensor, not a threshold sensor, not connected, shelf errors.
    pub fn sensor_thresholds(
        &mut self,
        now: Instant,
        rid: ResourceId,
        num: u8,
    ) -> Result<Thresholds, HpiError> {
        let s = self.sensor(rid, num)?;
        if s.category != EventCategory::Threshold {
            return Err(HpiError::InvalidRequest {
                resource: rid,
                detail: format!("sensor {num} is not a threshold sensor"),
            });
        }
        self.connected_or_err()?;
        let r = self.shelf.sensor_thresholds(s.owner, num);
        let t = self.guard(now, r)?;
        let c = |v: Option<u8>| v.and_then(|raw| s.conversion.and_then(|c| c.convert(raw)));
        Ok(Thresholds {
            low_minor: c(t.lnc),
            low_major: c(t.lc),
            low_critical: c(t.lnr),
            up_minor: c(t.unc),
            up_major: c(t.uc),
            up_critical: c(t.unr),
        })
    }

    fn managed(&self, rid: ResourceId) -> Result<(u8, u8, HsState), HpiError> {
        let r = self.res(rid)?;
        match r.entry.hs_state {
            Some(s) if r.entry.caps.managed_hotswap => Ok((r.entry.ipmb_addr, r.entry.fru_id, s)),
            _ => Err(HpiError::InvalidRequest {
                resource: rid,
                detail: "not a managed hot-swap resource".into(),
            }),
        }
    }

    /// saHpiHotSwapStateGet.
    ///
    /// # Errors
    /// No such resource, not managed hot-swap.
    pub fn hotswap_state(&self, rid: ResourceId) -> Result<HsState, HpiError> {
        self.managed(rid).map(|(_, _, s)| s)
    }

    /// saHpiHotSwapPolicyCancel: stops the running auto-insert/auto-extract timer of a
    /// resource in a pending state; the FRU stays pending until told otherwise.
    ///
    /// # Errors
    /// Not in a pending state.
    pub fn policy_cancel(&mut self, rid: ResourceId) -> Result<(), HpiError> {
        let (_, _, s) = self.managed(rid)?;
        if !matches!(s, HsState::InsertionPending | HsState::ExtractionPending) {
            return Err(HpiError::InvalidRequest {
                resource: rid,
                detail: format!("policy cancel needs a pending state, not {s}"),
            });
        }
        self.timers.remove(&rid);
        Ok(())
    }

    /// saHpiHotSwapActionRequest: INSERTION from INACTIVE clears the Locked bit,
    /// EXTRACTION from ACTIVE clears the Deactivation-Locked bit (Set FRU Activation
    /// Policy), which makes the IPMC request activation (M2) / deactivation (M5).
    ///
    /// # Errors
    /// Wrong state, not connected, shelf errors.
    pub fn action_request(
        &mut self,
        now: Instant,
        rid: ResourceId,
        action: HsAction,
    ) -> Result<(), HpiError> {
        let (ipmb, fru, s) = self.managed(rid)?;
        let (need, mask) = match action {
            HsAction::Insertion => (HsState::Inactive, 0x01),
            HsAction::Extraction => (HsState::Active, 0x02),
        };
        if s != need {
            return Err(HpiError::InvalidRequest {
                resource: rid,
                detail: format!("{action:?} request needs {need}, resource is {s}"),
            });
        }
        self.connected_or_err()?;
        let r = self.shelf.set_activation_policy(ipmb, fru, mask, 0);
        self.guard(now, r)
    }

    /// saHpiResourceActiveSet: activates a FRU in INSERTION_PENDING (Set FRU Activation).
    ///
    /// # Errors
    /// Wrong state, not connected, shelf errors.
    pub fn resource_active_set(&mut self, now: Instant, rid: ResourceId) -> Result<(), HpiError> {
        let (ipmb, fru, s) = self.managed(rid)?;
        if s != HsState::InsertionPending {
            return Err(HpiError::InvalidRequest {
                resource: rid,
                detail: format!("active set needs INSERTION_PENDING, resource is {s}"),
            });
        }
        self.connected_or_err()?;
        self.timers.remove(&rid);
        let r = self.shelf.set_fru_activation(ipmb, fru, true);
        self.guard(now, r)
    }

    /// saHpiResourceInactiveSet: deactivates a FRU in a pending state.
    ///
    /// # Errors
    /// Wrong state, not connected, shelf errors.
    pub fn resource_inactive_set(&mut self, now: Instant, rid: ResourceId) -> Result<(), HpiError> {
        let (ipmb, fru, s) = self.managed(rid)?;
        if !matches!(s, HsState::InsertionPending | HsState::ExtractionPending) {
            return Err(HpiError::InvalidRequest {
                resource: rid,
                detail: format!("inactive set needs a pending state, resource is {s}"),
            });
        }
        self.connected_or_err()?;
        self.timers.remove(&rid);
        let r = self.shelf.set_fru_activation(ipmb, fru, false);
        self.guard(now, r)
    }

    /// saHpiAutoInsertTimeoutGet.
    pub fn auto_insert_timeout(&self) -> Timeout {
        self.cfg.auto_insert_timeout
    }

    /// saHpiAutoInsertTimeoutSet (applies to insertions from now on).
    pub fn set_auto_insert_timeout(&mut self, t: Timeout) {
        self.cfg.auto_insert_timeout = t;
    }

    /// saHpiAutoExtractTimeoutGet.
    ///
    /// # Errors
    /// No such resource / not managed hot-swap.
    pub fn auto_extract_timeout(&self, rid: ResourceId) -> Result<Timeout, HpiError> {
        self.managed(rid)?;
        Ok(self.res(rid)?.auto_extract)
    }

    /// saHpiAutoExtractTimeoutSet (applies to extractions from now on).
    ///
    /// # Errors
    /// No such resource / not managed hot-swap.
    pub fn set_auto_extract_timeout(
        &mut self,
        rid: ResourceId,
        t: Timeout,
    ) -> Result<(), HpiError> {
        self.managed(rid)?;
        if let Some(r) = self.resources.get_mut(&rid) {
            r.auto_extract = t;
        }
        Ok(())
    }

    fn control(&self, rid: ResourceId, num: u8) -> Result<(u8, u8), HpiError> {
        let r = self.res(rid)?;
        if !r
            .rdrs
            .iter()
            .any(|d| matches!(d, Rdr::Control(c) if c.num == num))
        {
            return Err(HpiError::NotPresent(rid, format!("control {num}")));
        }
        Ok((r.entry.ipmb_addr, r.entry.fru_id))
    }

    /// saHpiControlGet for an LED.
    ///
    /// # Errors
    /// No such control, not connected, shelf errors.
    pub fn control_get(
        &mut self,
        now: Instant,
        rid: ResourceId,
        num: u8,
    ) -> Result<ControlState, HpiError> {
        let (ipmb, fru) = self.control(rid, num)?;
        self.connected_or_err()?;
        let r = self.shelf.led_state(ipmb, fru, num);
        let s = self.guard(now, r)?;
        Ok(ControlState {
            auto: s.local_control,
            function: s.function,
        })
    }

    /// saHpiControlSet for an LED: `None` gives the LED back to the IPMC (AUTO mode).
    ///
    /// # Errors
    /// No such control, not connected, shelf errors.
    pub fn control_set(
        &mut self,
        now: Instant,
        rid: ResourceId,
        num: u8,
        function: Option<LedFunction>,
    ) -> Result<(), HpiError> {
        let (ipmb, fru) = self.control(rid, num)?;
        self.connected_or_err()?;
        let r = self.shelf.set_led_state(ipmb, fru, num, function);
        self.guard(now, r)
    }

    /// saHpiHotSwapIndicatorStateGet: the blue LED is on (or blinking).
    ///
    /// # Errors
    /// As [`Domain::control_get`].
    pub fn hotswap_indicator(&mut self, now: Instant, rid: ResourceId) -> Result<bool, HpiError> {
        self.managed(rid)?;
        let s = self.control_get(now, rid, 0)?;
        Ok(s.function != LedFunction::Off)
    }

    /// saHpiHotSwapIndicatorStateSet: the blue LED on or off (override of the IPMC's own
    /// control).
    ///
    /// # Errors
    /// As [`Domain::control_set`].
    pub fn set_hotswap_indicator(
        &mut self,
        now: Instant,
        rid: ResourceId,
        on: bool,
    ) -> Result<(), HpiError> {
        self.managed(rid)?;
        let f = if on {
            LedFunction::On
        } else {
            LedFunction::Off
        };
        self.control_set(now, rid, 0, Some(f))
    }

    /// The inventory fields of a resource.
    ///
    /// # Errors
    /// No such resource, or no inventory RDR.
    pub fn inventory(&self, rid: ResourceId) -> Result<&[crate::ipmi::msg::FruField], HpiError> {
        self.res(rid)?
            .rdrs
            .iter()
            .find_map(|d| match d {
                Rdr::Inventory(f) => Some(f.as_slice()),
                _ => None,
            })
            .ok_or_else(|| HpiError::NotPresent(rid, "inventory".into()))
    }
}

#[cfg(test)]
mod tests;
