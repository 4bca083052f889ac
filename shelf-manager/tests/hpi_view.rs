//! Our `hpi/` crate against `shelfd` and against OpenIPMI's `ipmi_sim` (the ATCA shelf of
//! `hpi/tests/atca-sim`, with its module): the same checks run on both backends.
//!
//! Checked on each: the shelf manager is a resource without managed hot-swap; the boards
//! are exactly the backend's boards, each a managed hot-swap resource tagged with its IPMC's
//! name, at `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,<site>}{PICMG_FRONT_BLADE,0}`, with the
//! M-state the board's IPMC reports through the bridge (`ipmitool -b 0 -t ADDR raw 0x04 0x2d
//! 0x00`) and the HPI state it maps to; then, after `ipmitool -b 0 -t 0x84 picmg deactivate
//! 0` (the same command for both), hpi reports the board's HOTSWAP events ACTIVE →
//! EXTRACTION_PENDING → INACTIVE from the SEL and its state INACTIVE, agreeing with the
//! IPMC's M1; and hpi's insertion action request on it gives INACTIVE → INSERTION_PENDING
//! (the IPMC in M2 or M3: `shelfd` activates on its own and the board then waits for power,
//! `ipmi_sim` waits for the system manager). The shelves differ in content (boards, names, which are active), so each
//! backend says what it holds; the checks are one function.
//!
//! Subsidiary FRUs (`hpi_sees_a_subsidiary_fru_of_shelfd`) run against `shelfd` only: the
//! `ipmi_sim` shelf has one FRU per IPMC (its `atca_ext` module keeps one M-state per IPMB
//! address), so there is none to see there; `check_view` above shows that its discovery is
//! unchanged. On `configs/shelf-sim-rtm.toml` the node board's IPMC (0x84) also manages an
//! RTM, FRU 1: hpi lists it as a resource of its own (tag, entity path, kind, its hot-swap
//! sensor 1 and the M-state that sensor reports through the bridge, its inventory); `ipmitool
//! -b 0 -t 0x84 picmg deactivate 1` gives its HOTSWAP events ACTIVE → EXTRACTION_PENDING →
//! INACTIVE, hpi's insertion action request then INACTIVE → INSERTION_PENDING → ACTIVE (the
//! shelf manager activates and powers it), and the board (FRU 0 of the same IPMC) has no
//! hot-swap event throughout and stays ACTIVE (M4).

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Shelfd;
use hpi::ipmi::IpmiShelf;
use hpi::ipmi::credentials::Credentials;
use hpi::ipmi::msg::MState;
use hpi::ipmi::session::SessionConfig;
use hpi::{Domain, EventKind, HsAction, HsState, ResourceKind};

/// `ipmi_sim` with the ATCA module, started with `hpi/tests/atca-sim/sim-shelf.sh` on its
/// own ports (the environment `hpi`'s own tests give it), stopped on drop.
struct IpmiSim {
    port: u16,
    dir: PathBuf,
}

impl IpmiSim {
    fn start() -> IpmiSim {
        let port = (0..200)
            .find_map(|_| {
                let p = UdpSocket::bind("127.0.0.1:0")
                    .ok()?
                    .local_addr()
                    .ok()?
                    .port();
                (p < 65000 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()).then_some(p)
            })
            .expect("a free UDP port with the next one free for TCP");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hpi-view-sim-{port}"));
        let sim = IpmiSim { port, dir };
        let out = sim.script(&["start"]).output().expect("run sim-shelf.sh");
        assert!(
            out.status.success(),
            "sim-shelf.sh start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sim
    }

    fn script(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hpi/tests/atca-sim/sim-shelf.sh"))
            .args(args)
            .env("SIM_PORT", self.port.to_string())
            .env("SIM_DIR", &self.dir)
            .env("SIM_EXT", "1")
            .env(
                "SIM_BUILD_DIR",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("atca-sim-build"),
            )
            .env("SIM_LIFETIME", "600");
        c
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        let _ = self.script(&["stop"]).output();
    }
}

/// What the checks need from a backend.
struct Backend {
    name: &'static str,
    port: u16,
    user: &'static str,
    password: &'static str,
    /// (tag, IPMB-0 address, site) of every board present.
    boards: Vec<(&'static str, u8, u8)>,
}

impl Backend {
    fn ipmitool(&self, args: &[&str]) -> String {
        let out = Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", self.user, "-P", self.password, "-R", "2", "-N", "2"])
            .args(args)
            .output()
            .expect("run ipmitool");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}: ipmitool {args:?}: {text}{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The M-state the board's IPMC reports (its hot-swap sensor 0, through the bridge).
    fn m_state(&self, ipmb: u8) -> MState {
        self.m_state_of(ipmb, 0)
    }

    /// The M-state the IPMC at `ipmb` reports on its hot-swap sensor `sensor`, through the
    /// bridge.
    fn m_state_of(&self, ipmb: u8, sensor: u8) -> MState {
        let to = format!("{ipmb:#04x}");
        let sensor = format!("{sensor:#04x}");
        let raw = self.ipmitool(&["-b", "0", "-t", &to, "raw", "0x04", "0x2d", &sensor]);
        let bits = u8::from_str_radix(raw.split_whitespace().nth(2).unwrap(), 16).unwrap();
        assert_eq!(bits.count_ones(), 1, "{}: {raw}", self.name);
        MState::from_u8(bits.trailing_zeros() as u8)
    }
}

/// The checks, the same for every backend.
/// A domain over `b`, started (discovery done), the auto timeouts blocked.
fn started_domain(b: &Backend) -> Domain<IpmiShelf> {
    common::started_domain(b.port, b.user, b.password)
}

/// The tags of the boards in the domain's RPT, sorted.
fn board_tags(d: &Domain<IpmiShelf>) -> Vec<&str> {
    let mut tags: Vec<&str> = d
        .rpt()
        .filter(|e| matches!(e.kind, ResourceKind::Board { .. }))
        .map(|e| e.tag.as_str())
        .collect();
    tags.sort_unstable();
    tags
}

fn check_view(b: &Backend) {
    let mut d = started_domain(b);
    assert!(
        d.rpt()
            .any(|e| e.kind == ResourceKind::ShelfManager && !e.caps.managed_hotswap),
        "{}: the shelf manager, without managed hot-swap",
        b.name
    );
    let tags = board_tags(&d);
    let mut want: Vec<&str> = b.boards.iter().map(|x| x.0).collect();
    want.sort_unstable();
    assert_eq!(tags, want, "{}: the boards", b.name);
    for &(tag, ipmb, site) in &b.boards {
        let e = d.rpt().find(|e| e.tag == tag).unwrap();
        assert_eq!(
            (e.ipmb_addr, e.fru_id, e.kind, e.caps.managed_hotswap),
            (ipmb, 0, ResourceKind::Board { site }, true),
            "{}: {tag}",
            b.name
        );
        assert_eq!(
            e.entity.to_string(),
            format!("{{ADVANCEDTCA_CHASSIS,1}}{{PHYSICAL_SLOT,{site}}}{{PICMG_FRONT_BLADE,0}}"),
            "{}: {tag}",
            b.name
        );
        let m = b.m_state(ipmb);
        assert_eq!(e.m_state, Some(m), "{}: {tag}", b.name);
        assert_eq!(e.hs_state, HsState::from_picmg(m), "{}: {tag}", b.name);
    }

    // The board at 0x84 is active on both shelves: deactivate it through its IPMC.
    let rid = d.resource_by_fru(0x84, 0).unwrap();
    assert_eq!(d.hotswap_state(rid).unwrap(), HsState::Active, "{}", b.name);
    let sub = d.subscribe();
    b.ipmitool(&["-b", "0", "-t", "0x84", "picmg", "deactivate", "0"]);
    let last = (HsState::ExtractionPending, HsState::Inactive);
    let seen = transitions_until(&mut d, sub, rid, last, b);
    assert_eq!(
        seen,
        [(HsState::Active, HsState::ExtractionPending), last],
        "{}",
        b.name
    );
    assert_eq!(
        d.hotswap_state(rid).unwrap(),
        HsState::Inactive,
        "{}",
        b.name
    );
    assert_eq!(b.m_state(0x84), MState::M1, "{}", b.name);

    // saHpiHotSwapActionRequest(INSERTION) through hpi: the board asks to activate again.
    d.action_request(Instant::now(), rid, HsAction::Insertion)
        .unwrap();
    let last = (HsState::Inactive, HsState::InsertionPending);
    let seen = transitions_until(&mut d, sub, rid, last, b);
    assert_eq!(seen, [last], "{}", b.name);
    let m = b.m_state(0x84);
    assert!(matches!(m, MState::M2 | MState::M3), "{}: {m:?}", b.name);
}

/// Polls the domain until resource `rid` reports the hot-swap transition `last`; returns its
/// transitions (previous, new) seen on the way, `last` included. Panics after 40 s.
fn transitions_until(
    d: &mut Domain<IpmiShelf>,
    sub: hpi::SubscriptionId,
    rid: hpi::ResourceId,
    last: (HsState, HsState),
    b: &Backend,
) -> Vec<(HsState, HsState)> {
    let end = Instant::now() + Duration::from_secs(40);
    let mut seen = Vec::new();
    while !seen.contains(&last) {
        assert!(
            Instant::now() < end,
            "{}: no {last:?} event for {rid:?}; saw {seen:?}",
            b.name
        );
        d.poll(Instant::now());
        while let Some(e) = d.event_get(sub).unwrap() {
            if let (
                Some(r),
                EventKind::HotSwap {
                    state, previous, ..
                },
            ) = (e.resource, &e.kind)
                && r == rid
            {
                seen.push((*previous, *state));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

#[test]
fn hpi_sees_shelfd_as_it_sees_ipmi_sim() {
    let sim = IpmiSim::start();
    check_view(&Backend {
        name: "ipmi_sim",
        port: sim.port,
        user: "admin",
        password: "admin",
        // Blade4's slot is empty at start.
        boards: vec![
            ("Blade1", 0x82, 1),
            ("Blade2", 0x84, 2),
            ("Blade3", 0x86, 3),
        ],
    });
    drop(sim);
    let s = Shelfd::start("hpi-view", &[]);
    check_view(&Backend {
        name: "shelfd",
        port: s.addr.port(),
        user: "admin",
        password: "admin-secret",
        boards: vec![
            ("hub-1", 0x82, 1),
            ("node-2", 0x84, 2),
            ("node-3", 0x86, 3),
            ("node-4", 0x88, 4),
        ],
    });
}

/// Polls the domain until `done` holds for the hot-swap transitions seen so far; returns
/// every transition as (resource, previous, new), in order. Panics after 40 s.
fn all_transitions_until(
    d: &mut Domain<IpmiShelf>,
    sub: hpi::SubscriptionId,
    done: impl Fn(&[(hpi::ResourceId, HsState, HsState)]) -> bool,
) -> Vec<(hpi::ResourceId, HsState, HsState)> {
    let transitions = |events: &[(hpi::ResourceId, EventKind)]| -> Vec<_> {
        events
            .iter()
            .filter_map(|(r, k)| match k {
                EventKind::HotSwap {
                    state, previous, ..
                } => Some((*r, *previous, *state)),
                _ => None,
            })
            .collect()
    };
    transitions(&events_until(d, sub, |events| done(&transitions(events))))
}

/// The backend of a `shelfd` with the hub in slot 1 and `board` in slot 2 (IPMB 0x84) with
/// subsidiary FRUs `subs` behind its IPMC, once every one of them is active (`shelfd`
/// activates every FRU at start).
fn subsidiary_backend(s: &Shelfd, board: &'static str, subs: &[u8]) -> Backend {
    let b = Backend {
        name: "shelfd",
        port: s.addr.port(),
        user: "admin",
        password: "admin-secret",
        boards: vec![("hub-1", 0x82, 1), (board, 0x84, 2)],
    };
    let end = Instant::now() + Duration::from_secs(30);
    while subs
        .iter()
        .any(|&fru| b.m_state_of(0x84, fru) != MState::M4)
    {
        assert!(
            Instant::now() < end,
            "the subsidiary FRUs {subs:?} never reached M4"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b
}

#[test]
fn hpi_sees_a_subsidiary_fru_of_shelfd() {
    let s = Shelfd::start_model("hpi-rtm", "shelf-sim-rtm.toml", &[]);
    let b = subsidiary_backend(&s, "node-2", &[1]);
    let mut d = started_domain(&b);

    // Discovery: the boards as before, and the RTM as a resource of its own.
    let boards = board_tags(&d);
    assert_eq!(boards, ["hub-1", "node-2"]);
    let board = d.resource_by_fru(0x84, 0).unwrap();
    let rtm = d
        .resource_by_fru(0x84, 1)
        .expect("FRU 1 of the IPMC at 0x84 is a resource");
    let e = d.rpt_entry(rtm).unwrap().clone();
    assert_eq!(e.tag, "rtm-2");
    assert_eq!(
        e.kind,
        ResourceKind::Subsidiary {
            site: 2,
            entity_id: 0xC0
        }
    );
    assert_eq!(
        e.entity.to_string(),
        "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{BACK_PANEL_BOARD,1}"
    );
    assert!(e.caps.managed_hotswap && e.caps.fru && e.caps.inventory);
    assert_eq!(e.m_state, Some(b.m_state_of(0x84, 1)));
    assert_eq!(d.hotswap_state(rtm).unwrap(), HsState::Active);
    let hs_sensors = |rid| -> Vec<u8> {
        d.rdrs(rid)
            .unwrap()
            .iter()
            .filter_map(|r| match r {
                hpi::Rdr::Sensor(s) if s.sensor_type == 0xF0 => Some(s.num),
                _ => None,
            })
            .collect()
    };
    assert_eq!(hs_sensors(rtm), [1], "the RTM's own hot-swap sensor");
    assert_eq!(hs_sensors(board), [0], "the board's, without the RTM's");
    let product = d
        .inventory(rtm)
        .unwrap()
        .iter()
        .find(|f| f.name == "PRODUCT_NAME")
        .map(|f| f.value.clone());
    assert_eq!(product.as_deref(), Some("rtm-2"), "FRU 1's inventory");

    // Deactivation of FRU 1 through its IPMC.
    let sub = d.subscribe();
    b.ipmitool(&["-b", "0", "-t", "0x84", "picmg", "deactivate", "1"]);
    let last = (rtm, HsState::ExtractionPending, HsState::Inactive);
    let mut seen = all_transitions_until(&mut d, sub, |s| s.contains(&last));
    assert_eq!(b.m_state_of(0x84, 1), MState::M1);
    // Insertion through hpi: the RTM asks, the shelf manager activates and powers it.
    d.action_request(Instant::now(), rtm, HsAction::Insertion)
        .unwrap();
    let last = (rtm, HsState::InsertionPending, HsState::Active);
    seen.extend(all_transitions_until(&mut d, sub, |s| s.contains(&last)));
    assert_eq!(b.m_state_of(0x84, 1), MState::M4);
    let rtm_seen: Vec<_> = seen
        .iter()
        .filter(|t| t.0 == rtm)
        .map(|t| (t.1, t.2))
        .collect();
    use HsState::*;
    assert_eq!(
        rtm_seen,
        [
            (Active, ExtractionPending),
            (ExtractionPending, Inactive),
            (Inactive, InsertionPending),
            (InsertionPending, Active)
        ]
    );
    // The board behind the same IPMC did not move.
    assert!(seen.iter().all(|t| t.0 == rtm), "{seen:?}");
    assert_eq!(d.hotswap_state(board).unwrap(), Active);
    assert_eq!(b.m_state(0x84), MState::M4);
}

/// The hot-swap records in the shelf manager's SEL, in order: (IPMB address, FRU id, new
/// M-state), read through a session of its own.
fn sel_hot_swaps(b: &Backend) -> Vec<(u8, u8, MState)> {
    use hpi::ShelfAccess;
    use hpi::ipmi::msg::SelRecord;
    let session = SessionConfig::new(("127.0.0.1", b.port)).unwrap();
    let mut shelf = IpmiShelf::new(session, Credentials::new(b.user, b.password));
    shelf.connect().unwrap();
    let mut out = Vec::new();
    let mut id = 0;
    while id != 0xFFFF {
        let Some((next, rec)) = shelf.sel_entry(id).unwrap() else {
            break;
        };
        if let SelRecord::Event(e) = rec
            && let Some(hs) = e.hot_swap()
        {
            out.push((hs.ipmb_addr, hs.fru_id, hs.new));
        }
        id = next;
    }
    out
}

/// Every event of `sub` with a resource, as (resource, kind), until `done` holds for them;
/// panics after 40 s.
fn events_until(
    d: &mut Domain<IpmiShelf>,
    sub: hpi::SubscriptionId,
    done: impl Fn(&[(hpi::ResourceId, EventKind)]) -> bool,
) -> Vec<(hpi::ResourceId, EventKind)> {
    let end = Instant::now() + Duration::from_secs(40);
    let mut seen = Vec::new();
    while !done(&seen) {
        assert!(Instant::now() < end, "not done; saw {seen:?}");
        d.poll(Instant::now());
        while let Some(e) = d.event_get(sub).unwrap() {
            if let Some(r) = e.resource {
                seen.push((r, e.kind));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

/// A board pulled out of `shelfd` (its OEM Simulated Presence command) takes its IPMC and the
/// RTM behind it: hpi reports the board's NOT_PRESENT (surprise extraction, from its SEL
/// record) and at once the RTM's, both leave the RPT, and the RTM's own M0 record that
/// `shelfd` logs after the board's gives no second event. Inserted again, the board and
/// then its RTM come back as new resources.
#[test]
fn hpi_loses_an_rtm_with_its_pulled_board() {
    let s = Shelfd::start_model("hpi-rtm-pull", "shelf-sim-rtm.toml", &[]);
    let b = subsidiary_backend(&s, "node-2", &[1]);
    let mut d = started_domain(&b);
    let board = d.resource_by_fru(0x84, 0).unwrap();
    let rtm = d.resource_by_fru(0x84, 1).unwrap();
    let hub = d.resource_by_fru(0x82, 0).unwrap();
    let sub = d.subscribe();
    let records_before = sel_hot_swaps(&b).len();

    // Pull node-2 (FRU device 2 of the shelf manager) out.
    b.ipmitool(&["raw", "0x30", "0x02", "2", "0"]);
    let gone = |r| {
        move |s: &[(hpi::ResourceId, EventKind)]| {
            s.iter().any(|(x, k)| {
                *x == r
                    && matches!(
                        k,
                        EventKind::HotSwap {
                            state: HsState::NotPresent,
                            ..
                        }
                    )
            })
        }
    };
    let seen = events_until(&mut d, sub, gone(rtm));
    use HsState::*;
    assert_eq!(
        seen,
        [
            (
                board,
                EventKind::HotSwap {
                    state: NotPresent,
                    previous: Active,
                    cause: hpi::HsCause::SurpriseExtraction,
                    picmg: Some((Some(MState::M4), MState::M0, 6)),
                }
            ),
            (
                rtm,
                EventKind::HotSwap {
                    state: NotPresent,
                    previous: Active,
                    cause: hpi::HsCause::SurpriseExtraction,
                    picmg: None,
                }
            ),
        ],
        "the board, then its RTM, once each"
    );
    assert_eq!(d.resource_by_fru(0x84, 0), None);
    assert_eq!(d.resource_by_fru(0x84, 1), None);
    assert!(d.resource_by_fru(0x82, 0).is_some(), "the hub stays");

    // shelfd logged the RTM's own M0 after the board's; once hpi has read past it, still
    // nothing more about either.
    let after = sel_hot_swaps(&b);
    assert_eq!(
        after[records_before..],
        [(0x84, 0, MState::M0), (0x84, 1, MState::M0)],
        "the shelf manager's records of the pull"
    );
    let quiet_until = Instant::now() + Duration::from_millis(600);
    let mut late = Vec::new();
    while Instant::now() < quiet_until {
        d.poll(Instant::now());
        late.extend(std::iter::from_fn(|| d.event_get(sub).unwrap()));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(d.resource_by_fru(0x84, 1), None);

    // Inserted again (handle open: M1): the board, then the RTM, are new resources.
    b.ipmitool(&["raw", "0x30", "0x02", "2", "1"]);
    b.ipmitool(&["raw", "0x30", "0x02", "3", "1"]);
    let back = |s: &[(hpi::ResourceId, EventKind)]| {
        s.iter()
            .filter(|(_, k)| {
                matches!(
                    k,
                    EventKind::HotSwap {
                        previous: NotPresent,
                        state: Inactive,
                        ..
                    }
                )
            })
            .count()
            == 2
    };
    let seen = events_until(&mut d, sub, back);
    let board2 = d.resource_by_fru(0x84, 0).expect("the board is back");
    let rtm2 = d.resource_by_fru(0x84, 1).expect("the RTM is back");
    assert!(board2 != board && rtm2 != rtm && board2 != rtm2);
    let order: Vec<_> = seen
        .iter()
        .filter(|(_, k)| matches!(k, EventKind::ResourceAdded))
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(order, [board2, rtm2]);
    assert_eq!(d.hotswap_state(rtm2).unwrap(), Inactive);
    assert!(seen.iter().all(|(r, _)| *r != hub), "{seen:?}");
}

/// An AMC carrier in `shelfd` (`configs/shelf-sim-amc.toml`: carrier-2, FRU 0 of the IPMC at
/// 0x84, with the AMC modules amc-2a and amc-2b as its FRUs 1 and 2, entity 0xC1). hpi lists
/// each AMC as a resource of its own at `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{AMC,<FRU
/// id>}`, with its own hot-swap sensor (number = FRU id), the M-state that sensor reports
/// through the bridge, and its FRU inventory; `picmg deactivate 2` bridged to the carrier
/// moves amc-2b ACTIVE → EXTRACTION_PENDING → INACTIVE and hpi's insertion request brings it
/// back to ACTIVE, while amc-2a and the carrier have no event; the carrier pulled out takes
/// both AMCs out of the RPT at once, in FRU id order after the carrier.
#[test]
fn hpi_sees_the_amcs_of_a_carrier_in_shelfd() {
    let s = Shelfd::start_model("hpi-amc", "shelf-sim-amc.toml", &[]);
    let b = subsidiary_backend(&s, "carrier-2", &[1, 2]);
    let mut d = started_domain(&b);

    let boards = board_tags(&d);
    assert_eq!(boards, ["carrier-2", "hub-1"]);
    let carrier = d.resource_by_fru(0x84, 0).unwrap();
    let mut amcs = Vec::new();
    for (fru, tag) in [(1u8, "amc-2a"), (2, "amc-2b")] {
        let rid = d
            .resource_by_fru(0x84, fru)
            .unwrap_or_else(|| panic!("FRU {fru} of the carrier is a resource"));
        let e = d.rpt_entry(rid).unwrap().clone();
        assert_eq!(e.tag, tag);
        assert_eq!(
            e.kind,
            ResourceKind::Subsidiary {
                site: 2,
                entity_id: 0xC1
            }
        );
        assert_eq!(
            e.entity.to_string(),
            format!("{{ADVANCEDTCA_CHASSIS,1}}{{PHYSICAL_SLOT,2}}{{AMC,{fru}}}")
        );
        assert!(e.caps.managed_hotswap && e.caps.fru && e.caps.inventory);
        assert_eq!(e.m_state, Some(b.m_state_of(0x84, fru)));
        assert_eq!(d.hotswap_state(rid).unwrap(), HsState::Active);
        let sensors: Vec<u8> = d
            .rdrs(rid)
            .unwrap()
            .iter()
            .filter_map(|r| match r {
                hpi::Rdr::Sensor(s) if s.sensor_type == 0xF0 => Some(s.num),
                _ => None,
            })
            .collect();
        assert_eq!(sensors, [fru], "{tag}'s own hot-swap sensor");
        let product = d
            .inventory(rid)
            .unwrap()
            .iter()
            .find(|f| f.name == "PRODUCT_NAME")
            .map(|f| f.value.clone());
        assert_eq!(product.as_deref(), Some(tag), "FRU {fru}'s inventory");
        amcs.push(rid);
    }
    let carrier_sensors: Vec<u8> = d
        .rdrs(carrier)
        .unwrap()
        .iter()
        .filter_map(|r| match r {
            hpi::Rdr::Sensor(s) if s.sensor_type == 0xF0 => Some(s.num),
            _ => None,
        })
        .collect();
    assert_eq!(carrier_sensors, [0], "the carrier's, without its AMCs'");

    // amc-2b's own cycle: deactivation through the carrier's IPMC, insertion through hpi.
    let sub = d.subscribe();
    b.ipmitool(&["-b", "0", "-t", "0x84", "picmg", "deactivate", "2"]);
    let last = (amcs[1], HsState::ExtractionPending, HsState::Inactive);
    let mut seen = all_transitions_until(&mut d, sub, |s| s.contains(&last));
    assert_eq!(b.m_state_of(0x84, 2), MState::M1);
    d.action_request(Instant::now(), amcs[1], HsAction::Insertion)
        .unwrap();
    let last = (amcs[1], HsState::InsertionPending, HsState::Active);
    seen.extend(all_transitions_until(&mut d, sub, |s| s.contains(&last)));
    assert_eq!(b.m_state_of(0x84, 2), MState::M4);
    use HsState::*;
    assert_eq!(
        seen,
        [
            (amcs[1], Active, ExtractionPending),
            (amcs[1], ExtractionPending, Inactive),
            (amcs[1], Inactive, InsertionPending),
            (amcs[1], InsertionPending, Active)
        ],
        "amc-2b only"
    );
    assert_eq!(d.hotswap_state(amcs[0]).unwrap(), Active);
    assert_eq!(d.hotswap_state(carrier).unwrap(), Active);

    // The carrier pulled out (FRU device 2 of the shelf manager): both AMCs go with it.
    b.ipmitool(&["raw", "0x30", "0x02", "2", "0"]);
    let last = (amcs[1], Active, NotPresent);
    let seen = all_transitions_until(&mut d, sub, |s| s.contains(&last));
    assert_eq!(
        seen,
        [
            (carrier, Active, NotPresent),
            (amcs[0], Active, NotPresent),
            (amcs[1], Active, NotPresent)
        ]
    );
    assert!(d.rpt().all(|e| e.ipmb_addr != 0x84), "nothing of 0x84 left");
}
