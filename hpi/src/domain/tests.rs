//! The domain against a fake shelf: time is synthetic, so timers and back-off are exact.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::access::AccessResult;
use crate::ipmi::msg::{
    FruField, FruLocator, LedProperties, LedState, McLocator, PicmgProperties, RawThresholds,
    SensorReading, SensorSdr,
};

#[derive(Debug, Default)]
struct Fake {
    /// ipmb -> (site, state, present)
    boards: BTreeMap<u8, (u8, MState, bool)>,
    sel: Vec<EventRecord>,
    next_record: u16,
    last_add: u32,
    last_erase: u32,
    overflow: bool,
    down: bool,
    connects: Vec<Instant>,
    clock: Option<Instant>,
    activations: Vec<(u8, bool)>,
    policies: Vec<(u8, u8, u8)>,
    sel_info_calls: u32,
    sel_entry_calls: u64,
    other_calls: u32,
    /// an IPMC the shelf manager bridges to but that never answers
    mute: Option<u8>,
    /// A subsidiary FRU 1 (an RTM, entity 0xC0/0x61, hot-swap sensor 1) behind the IPMC
    /// at this address, and its M-state.
    rtm: Option<(u8, MState)>,
    /// Set FRU Activation and Set FRU Activation Policy calls: (ipmb, FRU id).
    fru_calls: Vec<(u8, u8)>,
    /// The repository does not hold the RTM's records (yet).
    rtm_sdrs_hidden: bool,
    /// Reads of the SDR repository.
    sdr_reads: u32,
    /// Every board also has a threshold sensor (number 2, temperature).
    temp_sensor: bool,
}

impl Fake {
    fn shelf() -> Self {
        let mut f = Fake {
            next_record: 1,
            ..Fake::default()
        };
        f.boards.insert(0x82, (1, MState::M4, true));
        f.boards.insert(0x84, (2, MState::M1, true));
        f.boards.insert(0x86, (3, MState::M0, false));
        f
    }

    fn log(&mut self, rec: EventRecord) {
        let mut rec = rec;
        rec.record_id = self.next_record;
        // The SEL clock: one second per record here.
        rec.timestamp = 5_000 + u32::from(rec.record_id);
        self.next_record += 1;
        self.last_add += 1;
        self.sel.push(rec);
    }

    /// A hot-swap transition of the RTM (FRU 1, sensor 1), logged as its IPMC reports it.
    fn hs_rtm(&mut self, new: MState, cause: u8) {
        let (ipmb, prev) = self.rtm.unwrap();
        self.rtm = Some((ipmb, new));
        self.log(EventRecord {
            record_id: 0,
            timestamp: 0,
            generator: ipmb,
            generator_hi: 0,
            evm_rev: 4,
            sensor_type: 0xF0,
            sensor_number: 1,
            deassertion: false,
            event_type: 0x6F,
            data: [0xA0 | new.number(), (cause << 4) | prev.number(), 1],
        });
    }

    fn hs(&mut self, ipmb: u8, new: MState, cause: u8) {
        let b = self.boards.get_mut(&ipmb).unwrap();
        let prev = b.1;
        b.1 = new;
        b.2 = new != MState::M0;
        self.log(EventRecord {
            record_id: 0,
            timestamp: 0,
            generator: ipmb,
            generator_hi: 0,
            evm_rev: 4,
            sensor_type: 0xF0,
            sensor_number: 0,
            deassertion: false,
            event_type: 0x6F,
            data: [0xA0 | new.number(), (cause << 4) | prev.number(), 0],
        });
    }

    fn up(&self) -> AccessResult<()> {
        if self.down {
            Err(AccessError::ConnectionLost("fake shelf down".into()))
        } else {
            Ok(())
        }
    }

    fn present(&mut self, ipmb: u8) -> AccessResult<()> {
        self.up()?;
        self.other_calls += 1;
        if self.mute == Some(ipmb) {
            return Err(AccessError::Failed(format!(
                "IPMC 0x{ipmb:02x} took no answer back"
            )));
        }
        match self.boards.get(&ipmb) {
            Some((_, _, true)) => Ok(()),
            _ if ipmb == SHMC => Ok(()),
            _ => Err(AccessError::NotPresent(ipmb)),
        }
    }
}

impl ShelfAccess for Fake {
    fn connect(&mut self) -> AccessResult<()> {
        if let Some(c) = self.clock {
            self.connects.push(c);
        }
        self.up()
    }
    fn picmg_properties(&mut self, ipmb: u8) -> AccessResult<PicmgProperties> {
        self.present(ipmb)?;
        Ok(PicmgProperties {
            major: 2,
            minor: 2,
            max_fru_id: u8::from(self.rtm.is_some_and(|(a, _)| a == ipmb)),
            ipmc_fru_id: 0,
        })
    }
    fn address_info(&mut self, site: u8, t: SiteType) -> AccessResult<Option<AddressInfo>> {
        self.up()?;
        self.other_calls += 1;
        if t != SiteType::Board {
            return Ok(None);
        }
        Ok(self
            .boards
            .iter()
            .find(|(_, (s, _, _))| *s == site)
            .map(|(ipmb, (s, _, _))| AddressInfo {
                hw_addr: ipmb >> 1,
                ipmb_addr: *ipmb,
                fru_id: 0,
                site_number: *s,
                site_type: SiteType::Board,
            }))
    }
    fn sdr_repository(&mut self) -> AccessResult<Vec<SdrRecord>> {
        self.up()?;
        self.other_calls += 1;
        let mut v = Vec::new();
        for ipmb in self.boards.keys() {
            v.push(SdrRecord::McLocator(McLocator {
                record_id: 0,
                ipmb_addr: *ipmb,
                channel: 0,
                entity_id: 0xA0,
                entity_instance: 0x60,
                name: format!("Blade{:02x}", ipmb),
            }));
            v.push(SdrRecord::Sensor(SensorSdr {
                record_id: 0,
                owner: *ipmb,
                lun: 0,
                number: 0,
                entity_id: 0xA0,
                entity_instance: 0x60,
                sensor_type: 0xF0,
                event_type: 0x6F,
                unit: 0,
                conversion: None,
                thresholds: RawThresholds::default(),
                name: "HotSwap".into(),
            }));
            if self.temp_sensor {
                v.push(SdrRecord::Sensor(SensorSdr {
                    record_id: 0,
                    owner: *ipmb,
                    lun: 0,
                    number: 2,
                    entity_id: 0xA0,
                    entity_instance: 0x60,
                    sensor_type: 0x01,
                    event_type: 0x01,
                    unit: 1,
                    conversion: None,
                    thresholds: RawThresholds::default(),
                    name: "Temp".into(),
                }));
            }
        }
        self.sdr_reads += 1;
        if let Some((ipmb, _)) = self.rtm.filter(|_| !self.rtm_sdrs_hidden) {
            v.push(SdrRecord::FruLocator(FruLocator {
                record_id: 0,
                ipmb_addr: ipmb,
                fru_id: 1,
                logical: true,
                channel: 0,
                entity_id: 0xC0,
                entity_instance: 0x61,
                name: "RTM".into(),
            }));
            v.push(SdrRecord::Sensor(SensorSdr {
                record_id: 0,
                owner: ipmb,
                lun: 0,
                number: 1,
                entity_id: 0xC0,
                entity_instance: 0x61,
                sensor_type: 0xF0,
                event_type: 0x6F,
                unit: 0,
                conversion: None,
                thresholds: RawThresholds::default(),
                name: "HS RTM".into(),
            }));
        }
        Ok(v)
    }
    fn sensor_reading(&mut self, owner: u8, n: u8) -> AccessResult<SensorReading> {
        self.present(owner)?;
        let m = match self.rtm {
            Some((ipmb, m)) if ipmb == owner && n == 1 => m,
            _ => self.boards[&owner].1,
        };
        Ok(SensorReading {
            raw: 0,
            unavailable: false,
            events_enabled: true,
            states: 1 << m.number(),
        })
    }
    fn sensor_thresholds(&mut self, owner: u8, _n: u8) -> AccessResult<RawThresholds> {
        self.present(owner)?;
        Ok(RawThresholds::default())
    }
    fn sel_info(&mut self) -> AccessResult<SelInfo> {
        self.up()?;
        self.sel_info_calls += 1;
        Ok(SelInfo {
            entries: self.sel.len() as u16,
            free_bytes: 1000,
            last_add: self.last_add,
            last_erase: self.last_erase,
            overflow: self.overflow,
        })
    }
    fn sel_entry(&mut self, id: u16) -> AccessResult<Option<(u16, SelRecord)>> {
        self.up()?;
        self.sel_entry_calls += 1;
        let i = match id {
            0 => 0,
            0xFFFF => self.sel.len().wrapping_sub(1),
            id => match self.sel.iter().position(|r| r.record_id == id) {
                Some(i) => i,
                None => return Ok(None),
            },
        };
        let Some(r) = self.sel.get(i) else {
            return Ok(None);
        };
        let next = self.sel.get(i + 1).map_or(0xFFFF, |n| n.record_id);
        Ok(Some((next, SelRecord::Event(*r))))
    }
    fn fru_inventory(&mut self, ipmb: u8, _fru: u8) -> AccessResult<Vec<FruField>> {
        self.present(ipmb)?;
        Err(AccessError::Unsupported("no FRU data in the fake".into()))
    }
    fn set_fru_activation(&mut self, ipmb: u8, fru: u8, activate: bool) -> AccessResult<()> {
        self.up()?;
        self.fru_calls.push((ipmb, fru));
        self.activations.push((ipmb, activate));
        Ok(())
    }
    fn set_activation_policy(&mut self, ipmb: u8, fru: u8, mask: u8, bits: u8) -> AccessResult<()> {
        self.up()?;
        self.fru_calls.push((ipmb, fru));
        self.policies.push((ipmb, mask, bits));
        Ok(())
    }
    fn led_properties(&mut self, ipmb: u8, _fru: u8) -> AccessResult<LedProperties> {
        self.present(ipmb)?;
        Ok(LedProperties {
            general: 1,
            app_count: 0,
        })
    }
    fn led_state(&mut self, ipmb: u8, _fru: u8, _led: u8) -> AccessResult<LedState> {
        self.present(ipmb)?;
        Ok(LedState {
            local_control: true,
            function: LedFunction::Off,
            colour: 1,
        })
    }
    fn set_led_state(
        &mut self,
        ipmb: u8,
        _fru: u8,
        _led: u8,
        _f: Option<LedFunction>,
    ) -> AccessResult<()> {
        self.present(ipmb)
    }
}

fn cfg() -> DomainConfig {
    DomainConfig {
        sel_poll_interval: Duration::from_millis(100),
        auto_insert_timeout: Timeout::Block,
        auto_extract_timeout: Timeout::Block,
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_millis(1600),
        queue_capacity: 64,
        max_board_sites: 8,
    }
}

fn started(cfg: DomainConfig) -> (Domain<Fake>, SubscriptionId, Instant) {
    let t0 = Instant::now();
    let mut d = Domain::new(Fake::shelf(), cfg);
    d.start(t0).unwrap();
    let sub = d.subscribe();
    (d, sub, t0)
}

fn drain(d: &mut Domain<Fake>, sub: SubscriptionId) -> Vec<EventKind> {
    std::iter::from_fn(|| d.event_get(sub).unwrap())
        .map(|e| e.kind)
        .collect()
}

fn hs(previous: HsState, state: HsState) -> impl Fn(&EventKind) -> bool {
    move |k| matches!(k, EventKind::HotSwap { previous: p, state: s, .. } if *p == previous && *s == state)
}

#[test]
fn discovery_builds_the_rpt_from_present_boards_only() {
    let (d, _, _) = started(cfg());
    let tags: Vec<_> = d.rpt().map(|e| (e.tag.clone(), e.hs_state)).collect();
    assert_eq!(tags.len(), 4, "{tags:?}");
    assert_eq!(d.resource_by_fru(0x86, 0), None);
    let b = d.resource_by_fru(0x82, 0).unwrap();
    assert_eq!(d.hotswap_state(b).unwrap(), HsState::Active);
    assert_eq!(
        d.hotswap_state(d.resource_by_fru(0x84, 0).unwrap())
            .unwrap(),
        HsState::Inactive
    );
}

#[test]
fn quiet_shelf_costs_one_sel_info_per_interval_and_nothing_else() {
    let (mut d, sub, t0) = started(cfg());
    let (si, other) = (d.shelf_mut().sel_info_calls, d.shelf_mut().other_calls);
    let before = d.stats();
    for i in 1..=50 {
        d.poll(t0 + Duration::from_millis(100 * i));
    }
    assert_eq!(d.shelf_mut().sel_info_calls - si, 50);
    assert_eq!(
        d.shelf_mut().other_calls,
        other,
        "no discovery without a change"
    );
    assert!(drain(&mut d, sub).is_empty());
    assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_millis(5100)));
    let quiet = d.stats();
    assert_eq!(quiet.sel_polls - before.sel_polls, 50);
    assert_eq!(quiet.sel_entry_requests, before.sel_entry_requests);
    // A first record in the empty SEL costs one Get SEL Info and one Get SEL Entry; a
    // further one two Get SEL Entry (the last record seen, for its successor, then the new
    // one), as the counters say.
    d.shelf_mut().hs(0x84, MState::M2, 2);
    d.poll(t0 + Duration::from_millis(5100));
    let first = d.stats();
    assert_eq!(first.sel_polls - quiet.sel_polls, 1);
    assert_eq!(first.sel_entry_requests - quiet.sel_entry_requests, 1);
    d.shelf_mut().hs(0x84, MState::M1, 2);
    d.poll(t0 + Duration::from_millis(5200));
    let after = d.stats();
    assert_eq!(after.sel_polls - first.sel_polls, 1);
    assert_eq!(after.sel_entry_requests - first.sel_entry_requests, 2);
    assert_eq!(after.sel_records - quiet.sel_records, 2);
    assert_eq!(
        d.shelf_mut().sel_entry_calls,
        after.sel_entry_requests,
        "the counter counts every Get SEL Entry sent"
    );
    assert_eq!(d.shelf_mut().other_calls, other, "nothing else");
}

#[test]
fn m7_fails_the_resource_without_a_hot_swap_event_and_restores_it() {
    let (mut d, sub, t0) = started(cfg());
    let b = d.resource_by_fru(0x82, 0).unwrap();
    d.shelf_mut().hs(0x82, MState::M7, 4);
    d.poll(t0 + Duration::from_millis(100));
    assert_eq!(drain(&mut d, sub), vec![EventKind::ResourceFailed]);
    assert!(d.rpt_entry(b).unwrap().failed);
    assert_eq!(d.hotswap_state(b).unwrap(), HsState::Active);
    d.shelf_mut().hs(0x82, MState::M4, 4);
    d.poll(t0 + Duration::from_millis(200));
    assert_eq!(drain(&mut d, sub), vec![EventKind::ResourceRestored]);
    assert!(!d.rpt_entry(b).unwrap().failed);
}

#[test]
fn auto_insert_runs_at_its_timeout_and_policy_cancel_stops_it() {
    let (mut d, sub, t0) = started(DomainConfig {
        auto_insert_timeout: Timeout::After(Duration::from_secs(5)),
        ..cfg()
    });
    let b = d.resource_by_fru(0x84, 0).unwrap();
    d.shelf_mut().hs(0x84, MState::M2, 2);
    let t1 = t0 + Duration::from_millis(100);
    d.poll(t1);
    assert!(
        drain(&mut d, sub)
            .iter()
            .any(hs(HsState::Inactive, HsState::InsertionPending))
    );
    assert_eq!(d.poll_timeout(), Some(t1 + Duration::from_millis(100)));
    d.poll(t1 + Duration::from_millis(4999));
    assert!(d.shelf_mut().activations.is_empty());
    d.poll(t1 + Duration::from_secs(5));
    assert_eq!(d.shelf_mut().activations, vec![(0x84, true)]);

    // again, but cancelled: nothing happens however long we wait
    d.shelf_mut().hs(0x84, MState::M1, 0);
    d.shelf_mut().hs(0x84, MState::M2, 2);
    let t2 = t1 + Duration::from_secs(6);
    d.poll(t2);
    assert_eq!(d.hotswap_state(b).unwrap(), HsState::InsertionPending);
    d.policy_cancel(b).unwrap();
    d.poll(t2 + Duration::from_secs(60));
    assert_eq!(d.shelf_mut().activations.len(), 1);
    // policy cancel outside a pending state is refused
    d.resource_inactive_set(t2, b).unwrap();
    d.shelf_mut().hs(0x84, MState::M1, 1);
    d.poll(t2 + Duration::from_secs(61));
    assert!(matches!(
        d.policy_cancel(b),
        Err(HpiError::InvalidRequest { .. })
    ));
}

#[test]
fn auto_extract_per_resource_and_action_requests() {
    let (mut d, sub, t0) = started(cfg());
    let b = d.resource_by_fru(0x82, 0).unwrap();
    d.set_auto_extract_timeout(b, Timeout::Immediate).unwrap();
    assert_eq!(d.auto_extract_timeout(b).unwrap(), Timeout::Immediate);
    d.action_request(t0, b, HsAction::Extraction).unwrap();
    assert_eq!(d.shelf_mut().policies, vec![(0x82, 0x02, 0)]);
    d.shelf_mut().hs(0x82, MState::M5, 3);
    d.poll(t0 + Duration::from_millis(100));
    assert_eq!(d.shelf_mut().activations, vec![(0x82, false)]);
    let evs = drain(&mut d, sub);
    assert!(
        evs.iter()
            .any(hs(HsState::Active, HsState::ExtractionPending))
    );
    // M6 cancels nothing more, M1 ends it
    d.shelf_mut().hs(0x82, MState::M6, 1);
    d.shelf_mut().hs(0x82, MState::M1, 0);
    d.poll(t0 + Duration::from_millis(200));
    let evs = drain(&mut d, sub);
    assert_eq!(evs.len(), 1);
    assert!(hs(HsState::ExtractionPending, HsState::Inactive)(&evs[0]));
    assert!(matches!(
        d.action_request(t0, b, HsAction::Extraction),
        Err(HpiError::InvalidRequest { .. })
    ));
    d.action_request(t0, b, HsAction::Insertion).unwrap();
    assert_eq!(d.shelf_mut().policies.last(), Some(&(0x82, 0x01, 0)));
}

#[test]
fn lost_shelf_reconnects_with_doubling_back_off_and_rediscovers() {
    let (mut d, sub, t0) = started(cfg());
    d.shelf_mut().down = true;
    d.poll(t0 + Duration::from_millis(100));
    assert!(matches!(
        drain(&mut d, sub)[..],
        [EventKind::Domain(DomainEvent::ShelfManagerLost { .. })]
    ));
    // HPI calls that need the shelf say so
    let b = d.resource_by_fru(0x82, 0).unwrap();
    assert_eq!(d.sensor_reading(t0, b, 0), Err(HpiError::NotConnected));
    let start = t0 + Duration::from_millis(100);
    d.shelf_mut().clock = Some(start);
    let mut t = start;
    while t < start + Duration::from_secs(8) {
        t += Duration::from_millis(10);
        d.shelf_mut().clock = Some(t);
        d.poll(t);
    }
    let gaps: Vec<u128> = d
        .shelf_mut()
        .connects
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(&gaps[..4], &[400, 800, 1600, 1600], "{gaps:?}");
    // the shelf comes back with board 0x84 active and 0x86 inserted
    let f = d.shelf_mut();
    f.down = false;
    f.boards.insert(0x84, (2, MState::M4, true));
    f.boards.insert(0x86, (3, MState::M1, true));
    let t = t + Duration::from_secs(2);
    d.poll(t);
    assert!(d.connected());
    let evs = drain(&mut d, sub);
    assert!(evs.contains(&EventKind::Domain(DomainEvent::ShelfManagerRestored)));
    assert!(evs.iter().any(hs(HsState::Inactive, HsState::Active)));
    assert!(evs.contains(&EventKind::ResourceAdded));
    assert!(d.resource_by_fru(0x86, 0).is_some());
}

#[test]
fn insertion_event_from_an_unknown_ipmc_discovers_only_that_ipmc() {
    let (mut d, sub, t0) = started(cfg());
    let before = d.shelf_mut().other_calls;
    d.shelf_mut().hs(0x86, MState::M1, 0);
    d.poll(t0 + Duration::from_millis(100));
    let evs = drain(&mut d, sub);
    assert_eq!(evs[0], EventKind::ResourceAdded);
    assert!(hs(HsState::NotPresent, HsState::Inactive)(&evs[1]));
    // picmg properties, sdr-free: a handful of calls, not a whole-shelf rediscovery
    let calls = d.shelf_mut().other_calls - before;
    assert!(calls <= 4, "{calls} calls");
    // and the slot emptied again: NOT_PRESENT and gone from the RPT
    d.shelf_mut().hs(0x86, MState::M0, 6);
    d.poll(t0 + Duration::from_millis(200));
    let evs = drain(&mut d, sub);
    assert!(matches!(
        evs[..],
        [EventKind::HotSwap {
            state: HsState::NotPresent,
            cause: HsCause::SurpriseExtraction,
            ..
        }]
    ));
    assert_eq!(d.resource_by_fru(0x86, 0), None);
}

#[test]
fn cleared_sel_rereads_states_and_full_sel_is_reported() {
    let (mut d, sub, t0) = started(cfg());
    let f = d.shelf_mut();
    f.sel.clear();
    f.last_erase += 1;
    f.boards.get_mut(&0x84).unwrap().1 = MState::M4; // changed while nobody logged it
    d.poll(t0 + Duration::from_millis(100));
    let evs = drain(&mut d, sub);
    assert_eq!(evs[0], EventKind::Domain(DomainEvent::SelCleared));
    assert!(matches!(
        evs[1],
        EventKind::HotSwap {
            state: HsState::Active,
            cause: HsCause::Unknown,
            picmg: Some((Some(MState::M1), MState::M4, 0x0F)),
            ..
        }
    ));
    d.shelf_mut().overflow = true;
    d.shelf_mut().hs(0x82, MState::M5, 2);
    d.poll(t0 + Duration::from_millis(200));
    let evs = drain(&mut d, sub);
    assert_eq!(evs[0], EventKind::Domain(DomainEvent::SelFull));
    assert!(
        evs.iter()
            .any(hs(HsState::Active, HsState::ExtractionPending))
    );
    d.shelf_mut().hs(0x82, MState::M4, 2);
    d.poll(t0 + Duration::from_millis(300));
    assert_eq!(drain(&mut d, sub).len(), 1, "SelFull only once");
}

#[test]
fn events_from_unknown_sensors_or_software_are_ignored_and_queues_overflow() {
    let (mut d, sub, t0) = started(DomainConfig {
        queue_capacity: 2,
        ..cfg()
    });
    let f = d.shelf_mut();
    let mut rec = EventRecord {
        record_id: 0,
        timestamp: 0,
        generator: 0x41, // software id
        generator_hi: 0,
        evm_rev: 4,
        sensor_type: 0xF0,
        sensor_number: 0,
        deassertion: false,
        event_type: 0x6F,
        data: [0xA2, 0x01, 0x00],
    };
    f.log(rec);
    rec.generator = 0x82;
    rec.sensor_type = 0x01;
    rec.event_type = 0x01;
    rec.sensor_number = 9; // no such sensor
    f.log(rec);
    d.poll(t0 + Duration::from_millis(100));
    assert!(drain(&mut d, sub).is_empty());
    // three hot-swap events into a queue of two: the oldest is dropped and flagged
    d.shelf_mut().hs(0x84, MState::M2, 0);
    d.shelf_mut().hs(0x84, MState::M4, 0);
    d.shelf_mut().hs(0x84, MState::M5, 0);
    d.poll(t0 + Duration::from_millis(200));
    assert!(d.queue_overflowed(sub).unwrap());
    assert!(!d.queue_overflowed(sub).unwrap());
    let evs = drain(&mut d, sub);
    assert_eq!(evs.len(), 2);
    assert!(hs(HsState::InsertionPending, HsState::Active)(&evs[0]));
    d.unsubscribe(sub).unwrap();
    assert_eq!(d.event_get(sub), Err(HpiError::InvalidSubscription(sub.0)));
}

#[test]
fn an_ipmc_that_never_answers_does_not_stop_discovery() {
    let t0 = Instant::now();
    let mut f = Fake::shelf();
    f.mute = Some(0x84);
    let mut d = Domain::new(f, cfg());
    d.start(t0).unwrap();
    assert!(d.connected());
    assert!(d.resource_by_fru(0x82, 0).is_some());
    assert_eq!(d.resource_by_fru(0x84, 0), None);
    // and the blue LED of a healthy one can be driven
    let b = d.resource_by_fru(0x82, 0).unwrap();
    d.set_hotswap_indicator(t0, b, true).unwrap();
    assert!(
        !d.hotswap_indicator(t0, b).unwrap(),
        "the fake reports its LEDs off"
    );
}

#[test]
fn events_from_sel_records_carry_the_record_id_and_its_timestamp() {
    let (mut d, sub, t0) = started(cfg());
    drain(&mut d, sub);
    d.shelf_mut().hs(0x84, MState::M2, 0);
    d.poll(t0 + Duration::from_millis(100));
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    let e = evs
        .iter()
        .find(|e| matches!(e.kind, EventKind::HotSwap { .. }))
        .expect("a hot-swap event");
    let record = e.sel_record.expect("from a SEL record");
    assert_eq!(e.sel_timestamp, Some(5_000 + u32::from(record)));
}

fn rtm_shelf(rtm: MState) -> (Domain<Fake>, SubscriptionId, Instant) {
    let t0 = Instant::now();
    let mut f = Fake::shelf();
    f.rtm = Some((0x82, rtm));
    let mut d = Domain::new(f, cfg());
    d.start(t0).unwrap();
    let sub = d.subscribe();
    (d, sub, t0)
}

fn hs_of(evs: &[Event], rid: ResourceId) -> Vec<(HsState, HsState)> {
    evs.iter()
        .filter(|e| e.resource == Some(rid))
        .filter_map(|e| match e.kind {
            EventKind::HotSwap {
                previous, state, ..
            } => Some((previous, state)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_subsidiary_fru_is_a_resource_with_its_own_sensor_and_state() {
    let (d, _, _) = rtm_shelf(MState::M1);
    let board = d.resource_by_fru(0x82, 0).unwrap();
    let rtm = d
        .resource_by_fru(0x82, 1)
        .expect("the RTM behind 0x82 is discovered");
    let e = d.rpt_entry(rtm).unwrap();
    assert_eq!(e.tag, "RTM");
    assert_eq!(
        e.kind,
        ResourceKind::Subsidiary {
            site: 1,
            entity_id: 0xC0
        }
    );
    assert_eq!(
        e.entity.to_string(),
        "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,1}{BACK_PANEL_BOARD,1}"
    );
    assert!(e.caps.managed_hotswap && e.caps.fru);
    // Its own M-state (M1), not the board's (M4).
    assert_eq!(e.m_state, Some(MState::M1));
    assert_eq!(d.hotswap_state(rtm).unwrap(), HsState::Inactive);
    assert_eq!(d.hotswap_state(board).unwrap(), HsState::Active);
    // Each has its own hot-swap sensor.
    let sensors = |rid| -> Vec<u8> {
        d.rdrs(rid)
            .unwrap()
            .iter()
            .filter_map(|r| match r {
                Rdr::Sensor(s) => Some(s.num),
                _ => None,
            })
            .collect()
    };
    assert_eq!(sensors(rtm), [1]);
    assert_eq!(sensors(board), [0]);
    // No subsidiary where the IPMC has none.
    assert_eq!(d.resource_by_fru(0x84, 1), None);
}

#[test]
fn a_subsidiary_fru_goes_through_its_cycle_and_the_board_does_not_move() {
    let (mut d, sub, t0) = rtm_shelf(MState::M4);
    let board = d.resource_by_fru(0x82, 0).unwrap();
    let rtm = d.resource_by_fru(0x82, 1).unwrap();
    for m in [
        MState::M5,
        MState::M6,
        MState::M1,
        MState::M2,
        MState::M3,
        MState::M4,
    ] {
        d.shelf_mut().hs_rtm(m, 1);
    }
    d.poll(t0 + Duration::from_millis(100));
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    use HsState::*;
    assert_eq!(
        hs_of(&evs, rtm),
        [
            (Active, ExtractionPending),
            (ExtractionPending, Inactive),
            (Inactive, InsertionPending),
            (InsertionPending, Active)
        ]
    );
    assert!(hs_of(&evs, board).is_empty(), "{evs:?}");
    assert_eq!(d.hotswap_state(board).unwrap(), Active);
    // HPI calls on it address FRU 1 of its IPMC.
    d.action_request(t0, rtm, HsAction::Extraction).unwrap();
    assert_eq!(d.shelf_mut().fru_calls, [(0x82, 1)]);
}

#[test]
fn an_inserted_subsidiary_fru_is_added_from_its_event() {
    let (mut d, sub, t0) = rtm_shelf(MState::M0);
    assert_eq!(
        d.resource_by_fru(0x82, 1),
        None,
        "not installed: no resource"
    );
    d.shelf_mut().hs_rtm(MState::M1, 0);
    d.poll(t0 + Duration::from_millis(100));
    let rtm = d
        .resource_by_fru(0x82, 1)
        .expect("added by its M0 -> M1 event");
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    assert!(
        evs.iter()
            .any(|e| e.resource == Some(rtm) && e.kind == EventKind::ResourceAdded)
    );
    assert_eq!(hs_of(&evs, rtm), [(HsState::NotPresent, HsState::Inactive)]);
    assert_eq!(
        d.rpt_entry(rtm).unwrap().entity.to_string(),
        "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,1}{BACK_PANEL_BOARD,1}"
    );
}

#[test]
fn an_rtm_whose_records_are_new_makes_the_domain_read_the_repository_once() {
    let t0 = Instant::now();
    let mut f = Fake::shelf();
    // Inserted after discovery: neither its state nor its records were there.
    f.rtm = Some((0x82, MState::M0));
    f.rtm_sdrs_hidden = true;
    let mut d = Domain::new(f, cfg());
    d.start(t0).unwrap();
    let sub = d.subscribe();
    assert_eq!(d.shelf_mut().sdr_reads, 1);
    d.shelf_mut().rtm_sdrs_hidden = false;
    d.shelf_mut().hs_rtm(MState::M1, 0);
    d.poll(t0 + Duration::from_millis(100));
    assert_eq!(d.shelf_mut().sdr_reads, 2, "read again for the new locator");
    let rtm = d.resource_by_fru(0x82, 1).expect("added");
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    assert_eq!(hs_of(&evs, rtm), [(HsState::NotPresent, HsState::Inactive)]);
    // A further event of a known FRU reads nothing again.
    d.shelf_mut().hs_rtm(MState::M2, 2);
    d.poll(t0 + Duration::from_millis(200));
    assert_eq!(d.shelf_mut().sdr_reads, 2);
    assert_eq!(d.hotswap_state(rtm).unwrap(), HsState::InsertionPending);
}

/// (resource, event kind) of every event but the domain's own.
fn per_resource(evs: &[Event]) -> Vec<(Option<ResourceId>, EventKind)> {
    evs.iter()
        .filter(|e| !matches!(e.kind, EventKind::Domain(_)))
        .map(|e| (e.resource, e.kind.clone()))
        .collect()
}

#[test]
fn a_pulled_board_takes_its_subsidiary_frus_out_of_the_rpt_at_once() {
    let (mut d, sub, t0) = rtm_shelf(MState::M4);
    let board = d.resource_by_fru(0x82, 0).unwrap();
    let rtm = d.resource_by_fru(0x82, 1).unwrap();
    // The board is pulled (surprise extraction, cause 6); the shelf manager logs the
    // board's M0 only for now.
    d.shelf_mut().hs(0x82, MState::M0, 6);
    d.poll(t0 + Duration::from_millis(100));
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    use HsState::*;
    let not_present = |previous, picmg| EventKind::HotSwap {
        state: NotPresent,
        previous,
        cause: HsCause::SurpriseExtraction,
        picmg,
    };
    // The board's event (its SEL record), then its RTM's (no record of its own).
    assert_eq!(
        per_resource(&evs),
        [
            (
                Some(board),
                not_present(Active, Some((Some(MState::M4), MState::M0, 6)))
            ),
            (Some(rtm), not_present(Active, None)),
        ]
    );
    assert!(evs[0].sel_record.is_some() && evs[1].sel_record.is_none());
    // Each event keeps its resource's entry, though both left the RPT.
    let fru = |e: &Event| e.rpt_entry.as_ref().map(|r| (r.ipmb_addr, r.fru_id));
    assert_eq!(
        (fru(&evs[0]), fru(&evs[1])),
        (Some((0x82, 0)), Some((0x82, 1)))
    );
    assert_eq!(d.resource_by_fru(0x82, 0), None);
    assert_eq!(
        d.resource_by_fru(0x82, 1),
        None,
        "the RTM left with its board"
    );
    assert!(d.rpt_entry(rtm).is_err());
    // The RTM's own M0 record, logged later, changes nothing and says nothing.
    let count = d.update_count();
    d.shelf_mut().hs_rtm(MState::M0, 6);
    d.poll(t0 + Duration::from_millis(200));
    assert_eq!(drain(&mut d, sub), []);
    assert_eq!(d.update_count(), count);
    assert_eq!(d.resource_by_fru(0x82, 1), None);
    // A board at another IPMC keeps its place.
    assert!(d.resource_by_fru(0x84, 0).is_some());
}

#[test]
fn a_board_gone_at_rediscovery_takes_its_subsidiary_frus_once() {
    let (mut d, sub, t0) = rtm_shelf(MState::M1);
    let board = d.resource_by_fru(0x82, 0).unwrap();
    let rtm = d.resource_by_fru(0x82, 1).unwrap();
    d.shelf_mut().down = true;
    d.poll(t0 + Duration::from_millis(100));
    // Pulled while the shelf manager was away: the board is not there when it comes back.
    let f = d.shelf_mut();
    f.boards.insert(0x82, (1, MState::M0, false));
    f.rtm = Some((0x82, MState::M0));
    f.down = false;
    d.poll(t0 + Duration::from_secs(1));
    assert!(d.connected());
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    use HsState::*;
    assert_eq!(
        per_resource(&evs),
        [
            (
                Some(board),
                EventKind::HotSwap {
                    state: NotPresent,
                    previous: Active,
                    cause: HsCause::Unknown,
                    picmg: Some((Some(MState::M4), MState::M0, 0x0F)),
                }
            ),
            (
                Some(rtm),
                EventKind::HotSwap {
                    state: NotPresent,
                    previous: Inactive,
                    cause: HsCause::Unknown,
                    picmg: None,
                }
            ),
        ],
        "one event each, board first"
    );
    assert_eq!(d.resource_by_fru(0x82, 1), None);
}

#[test]
fn a_board_whose_ipmc_is_lost_fails_its_subsidiary_frus_with_it() {
    let (mut d, sub, t0) = rtm_shelf(MState::M4);
    let board = d.resource_by_fru(0x82, 0).unwrap();
    let rtm = d.resource_by_fru(0x82, 1).unwrap();
    d.shelf_mut().hs(0x82, MState::M7, 4);
    d.poll(t0 + Duration::from_millis(100));
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    assert_eq!(
        per_resource(&evs),
        [
            (Some(board), EventKind::ResourceFailed),
            (Some(rtm), EventKind::ResourceFailed)
        ]
    );
    // Both keep their place and state (the blade may still run), marked failed.
    assert!(d.rpt_entry(rtm).unwrap().failed);
    assert_eq!(d.hotswap_state(rtm).unwrap(), HsState::Active);
    // The RTM's own M7 record, if the shelf manager logs one, says nothing more.
    d.shelf_mut().hs_rtm(MState::M7, 4);
    d.poll(t0 + Duration::from_millis(200));
    assert_eq!(drain(&mut d, sub), []);
    // The IPMC answers again: both restored, board first.
    d.shelf_mut().hs(0x82, MState::M4, 5);
    d.poll(t0 + Duration::from_millis(300));
    let evs: Vec<Event> = std::iter::from_fn(|| d.event_get(sub).unwrap()).collect();
    assert_eq!(
        per_resource(&evs),
        [
            (Some(board), EventKind::ResourceRestored),
            (Some(rtm), EventKind::ResourceRestored)
        ]
    );
    assert!(!d.rpt_entry(rtm).unwrap().failed);
    // The pulled board then takes the RTM with it as above.
    d.shelf_mut().hs(0x82, MState::M0, 6);
    d.poll(t0 + Duration::from_millis(400));
    assert_eq!(d.resource_by_fru(0x82, 1), None);
}

#[test]
fn a_threshold_event_keeps_which_way_the_reading_crossed() {
    let t0 = Instant::now();
    let mut f = Fake::shelf();
    f.temp_sensor = true;
    let mut d = Domain::new(f, cfg());
    d.start(t0).unwrap();
    let sub = d.subscribe();
    // Upper critical going high (offset 9), then going low (8: a sensor set to assert on the
    // way down), then lower critical going high (3).
    for offset in [9u8, 8, 3] {
        d.shelf_mut().log(EventRecord {
            record_id: 0,
            timestamp: 0,
            generator: 0x82,
            generator_hi: 0,
            evm_rev: 4,
            sensor_type: 0x01,
            sensor_number: 2,
            deassertion: false,
            event_type: 0x01,
            data: [offset, 0xFF, 0xFF],
        });
    }
    d.poll(t0 + Duration::from_millis(100));
    let states: Vec<SensorEventState> = drain(&mut d, sub)
        .into_iter()
        .filter_map(|k| match k {
            EventKind::Sensor { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    use Crossing::*;
    use ThresholdState::*;
    assert_eq!(
        states,
        [
            SensorEventState::Threshold(UpperMajor, GoingHigh),
            SensorEventState::Threshold(UpperMajor, GoingLow),
            SensorEventState::Threshold(LowerMajor, GoingHigh),
        ]
    );
    // and back to the offsets of the records
    let offsets: Vec<u8> = states
        .iter()
        .map(|s| match *s {
            SensorEventState::Threshold(t, c) => t.offset(c),
            SensorEventState::Discrete { offset, .. } => offset,
        })
        .collect();
    assert_eq!(offsets, [9, 8, 3]);
}
