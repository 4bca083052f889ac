//! OpenHPI's `openhpid` (ipmidirect plugin, IPMI 1.5 LAN with MD5) against `shelfd`: it
//! discovers the shelf's resources and follows a board's hot-swap transitions.
//!
//! Compared, for every board of `configs/shelf-sim.toml`: that openhpid lists a resource
//! tagged with the board's name, with managed hot-swap, at entity path
//! `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,<site>}{PICMG_FRONT_BLADE,0}` (as for `ipmi_sim`'s
//! blades: the IPMC's FRU 0 in its slot), in the HPI hot-swap state that matches the
//! M-state shelfd reports for it over RMCP+ (M1 INACTIVE, M2/M3 INSERTION_PENDING, M4
//! ACTIVE, M5/M6 EXTRACTION_PENDING); that the shelf manager is a resource without managed
//! hot-swap; and, after `ipmitool picmg deactivate 2`, the HOTSWAP events openhpid emits
//! (node-2 ACTIVE → EXTRACTION_PENDING → INACTIVE, and node-3, which waited for node-2's
//! power, INSERTION_PENDING → ACTIVE) and node-2's state it then reports; then HPI action
//! requests through openhpid (insertion for node-2, extraction for hub-1): node-2
//! INACTIVE → INSERTION_PENDING → ACTIVE, hub-1 ACTIVE → EXTRACTION_PENDING → INACTIVE, and
//! both states agree with shelfd's M1 and M4. Not compared:
//! resource ids (openhpid's own numbering) and the causes (ipmidirect reports
//! CAUSE_AUTO_POLICY for every change).
//!
//! A subsidiary FRU (`openhpid_and_hpi_see_a_subsidiary_fru_alike`, on
//! `configs/shelf-sim-rtm.toml`: the RTM `rtm-2`, FRU 1 of the node board's IPMC at 0x84):
//! our `hpi` crate and openhpid watch the same shelfd. Compared, for every managed hot-swap
//! resource hpi reports (hub-1, node-2, rtm-2): openhpid has a resource with the same tag and
//! entity path (for the RTM `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{BACK_PANEL_BOARD,1}`),
//! with managed hot-swap, in the same hot-swap state; then, after `ipmitool -b 0 -t 0x84
//! picmg deactivate 1`, both report the RTM's HOTSWAP events ACTIVE → EXTRACTION_PENDING →
//! INACTIVE in that order and none for node-2, and the same final states. Not compared:
//! resource ids, causes, and a second resource openhpid makes of the RTM at
//! `{ADVANCEDTCA_CHASSIS,1}{SHELF_MANAGER,0}{BACK_PANEL_BOARD,1}` (from the shelf manager's
//! repository copy of the IPMC's FRU Device Locator; it gets no events; see docs/hpi.md).
//!
//! AMCs (`openhpid_and_hpi_see_amcs_alike`, on `configs/shelf-sim-amc.toml`: amc-2a and
//! amc-2b, FRUs 1 and 2 of the carrier's IPMC at 0x84): the same comparison; openhpid lists
//! them at `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{AMC,<FRU id>}` as hpi does (and a second
//! time under `{SHELF_MANAGER,0}`, not compared).
//!
//! The same board pulled out with its RTM (`openhpid_and_hpi_lose_an_rtm_with_its_pulled_board`):
//! both report the board's ACTIVE → NOT_PRESENT and drop both resources; hpi also reports the
//! RTM's ACTIVE → NOT_PRESENT, openhpid removes it without an event (see that test).

mod common;
#[path = "../../hpi/tests/support/openhpid.rs"]
mod openhpid;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::Shelfd;
use openhpid::{Openhpid, hot_swap_events};

const BOARDS: [(&str, u8); 4] = [("hub-1", 1), ("node-2", 2), ("node-3", 3), ("node-4", 4)];

/// openhpid on `shelfd` as its `ipmi15` operator `legacy` (ipmidirect speaks IPMI 1.5 only).
fn legacy_openhpid(s: &Shelfd) -> Openhpid {
    Openhpid::start(s.addr.port(), "legacy", "legacy-secret", "operator")
}

/// Waits (up to 30 s) until `shelfd`'s sensor `device`, which reads FRU device `device`'s
/// M-state, says M4.
fn wait_for_m4(s: &Shelfd, device: u8, what: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    while s
        .ok(17, &["raw", "0x04", "0x2d", &device.to_string()])
        .split_whitespace()
        .nth(2)
        != Some("10")
    {
        assert!(Instant::now() < end, "{what} never reached M4");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The HPI state of an M-state, as ipmidirect maps it.
fn hpi_of(m: u8) -> &'static str {
    match m {
        0 | 7 => "NOT_PRESENT",
        1 => "INACTIVE",
        2 | 3 => "INSERTION_PENDING",
        4 => "ACTIVE",
        _ => "EXTRACTION_PENDING",
    }
}

/// Each board's M-state as shelfd keeps it (Get Sensor Reading of its FRU n on 0x20).
fn m_states(s: &Shelfd) -> BTreeMap<String, u8> {
    BOARDS
        .iter()
        .zip(1u8..)
        .map(|((b, _), n)| {
            let raw = s.ok(17, &["raw", "0x04", "0x2d", &n.to_string()]);
            let bits = u8::from_str_radix(raw.split_whitespace().nth(2).unwrap(), 16).unwrap();
            (b.to_string(), bits.trailing_zeros() as u8)
        })
        .collect()
}

fn blade(site: u8) -> String {
    format!("{{ADVANCEDTCA_CHASSIS,1}}{{PHYSICAL_SLOT,{site}}}{{PICMG_FRONT_BLADE,0}}")
}

#[test]
fn openhpid_sees_the_shelf_resources_and_a_board_hot_swap_transitions() {
    let s = Shelfd::start("openhpid", &[]);
    let o = legacy_openhpid(&s);
    let res = o.wait_for_hs_resources(BOARDS.len());
    let ours = m_states(&s);
    for (board, site) in BOARDS {
        let r = res
            .iter()
            .find(|r| r.tag == board)
            .unwrap_or_else(|| panic!("no resource {board} in {res:?}"));
        assert_eq!(
            (r.entity.as_str(), r.managed_hotswap),
            (blade(site).as_str(), true),
            "{r:?}"
        );
        assert_eq!(o.hs_state(board), hpi_of(ours[board]), "{board}");
    }
    assert!(
        res.iter()
            .any(|r| r.tag == "Shelf manager" && !r.managed_hotswap),
        "the shelf manager, without managed hot-swap: {res:?}"
    );
    // hub-1 and node-2 powered, node-3 and node-4 waiting for power.
    assert_eq!(ours.values().copied().collect::<Vec<_>>(), vec![4, 4, 3, 3]);

    // Follow the events while node-2 is deactivated from the LAN.
    let events_path = o.dir.join("events.txt");
    // Line-buffered: hpievents writes into a file.
    let mut events = follow_events(&o, &events_path, "node-4");
    s.ok(17, &["picmg", "deactivate", "2"]);
    wait_events(
        &events_path,
        &[
            (blade(2), "ACTIVE", "EXTRACTION_PENDING"),
            (blade(2), "EXTRACTION_PENDING", "INACTIVE"),
            (blade(3), "INSERTION_PENDING", "ACTIVE"),
        ],
    );
    let ours = m_states(&s);
    assert_eq!((ours["node-2"], ours["node-3"]), (1, 4));
    // (node-3's simulated IPMC stops answering once active, so openhpid's later view of it
    // depends on its polling; node-2's is settled.)
    assert_eq!(o.hs_state("node-2"), hpi_of(ours["node-2"]));

    // HPI action requests through openhpid: insertion for node-2 (INACTIVE), extraction for
    // hub-1 (ACTIVE), whose power then goes to node-2.
    let rid = |tag: &str| o.rid(tag).unwrap_or_else(|| panic!("no {tag}"));
    let (node2, hub1) = (rid("node-2"), rid("hub-1"));
    o.shell(&[&format!("hs {node2}"), "action insert"]);
    o.shell(&[&format!("hs {hub1}"), "action extract"]);
    wait_events(
        &events_path,
        &[
            (blade(2), "INACTIVE", "INSERTION_PENDING"),
            (blade(2), "INSERTION_PENDING", "ACTIVE"),
            (blade(1), "ACTIVE", "EXTRACTION_PENDING"),
            (blade(1), "EXTRACTION_PENDING", "INACTIVE"),
        ],
    );
    let _ = events.kill();
    let _ = events.wait();
    let ours = m_states(&s);
    assert_eq!((ours["hub-1"], ours["node-2"]), (1, 4));
    for board in ["hub-1", "node-2"] {
        assert_eq!(o.hs_state(board), hpi_of(ours[board]), "{board}");
    }
}

/// Waits (up to 40 s: ipmidirect polls the SEL about every 5 s) until hpievents' output
/// holds every `want`ed transition (entity, previous, new); panics with what it saw.
/// Starts `hpievents` writing into `path` (line-buffered) and waits until it has listed the
/// resource tagged `last_tag` (it subscribes, then lists the resources, then waits for events).
fn follow_events(o: &Openhpid, path: &std::path::Path, last_tag: &str) -> std::process::Child {
    let child = o
        .client("stdbuf")
        .args(["-oL", "hpievents", "-t", "120"])
        .stdout(std::fs::File::create(path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(&format!("tag: {last_tag}"))
    {
        assert!(Instant::now() < end, "hpievents did not start");
        thread::sleep(Duration::from_millis(200));
    }
    child
}

fn wait_events(path: &std::path::Path, want: &[(String, &str, &str)]) {
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let seen = hot_swap_events(&std::fs::read_to_string(path).unwrap());
        let missing: Vec<_> = want
            .iter()
            .filter(|(e, p, n)| {
                !seen
                    .iter()
                    .any(|x| (&x.0, x.1.as_str(), x.2.as_str()) == (e, *p, *n))
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < end,
            "missing {missing:?} in the HOTSWAP events {seen:?}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn openhpid_and_hpi_see_a_subsidiary_fru_alike() {
    subsidiary_frus_alike(&Subsidiaries {
        run: "openhpid-rtm",
        model: "shelf-sim-rtm.toml",
        tags: &["hub-1", "node-2", "rtm-2"],
        frus: &[(
            1,
            3,
            "rtm-2",
            "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{BACK_PANEL_BOARD,1}",
        )],
        moved: 1,
    });
}

/// The AMC carrier of `configs/shelf-sim-amc.toml` (carrier-2, IPMC 0x84, with amc-2a and
/// amc-2b as FRUs 1 and 2): the same comparison as for the RTM. openhpid too lists each AMC at
/// `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{AMC,<FRU id>}` with managed hot-swap, in the
/// same state as hpi; after `picmg deactivate 2` bridged to the carrier both report amc-2b's
/// ACTIVE → EXTRACTION_PENDING → INACTIVE and nothing for carrier-2 or amc-2a. Like the RTM,
/// openhpid lists each AMC a second time at `{...}{SHELF_MANAGER,0}{AMC,<FRU id>}` (not
/// compared).
#[test]
fn openhpid_and_hpi_see_amcs_alike() {
    subsidiary_frus_alike(&Subsidiaries {
        run: "openhpid-amc",
        model: "shelf-sim-amc.toml",
        tags: &["amc-2a", "amc-2b", "carrier-2", "hub-1"],
        frus: &[
            (
                1,
                3,
                "amc-2a",
                "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{AMC,1}",
            ),
            (
                2,
                4,
                "amc-2b",
                "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{AMC,2}",
            ),
        ],
        moved: 2,
    });
}

/// A shelf model whose node board (IPMC 0x84, slot 2) manages subsidiary FRUs.
struct Subsidiaries {
    run: &'static str,
    model: &'static str,
    /// The tags of every managed hot-swap resource hpi reports, sorted.
    tags: &'static [&'static str],
    /// Each subsidiary FRU: (FRU id at 0x84, FRU device id at the shelf manager, tag,
    /// entity path).
    frus: &'static [(u8, u8, &'static str, &'static str)],
    /// The FRU id deactivated through the IPMC.
    moved: u8,
}

/// hpi and openhpid on the same `shelfd`: for every managed hot-swap resource hpi reports,
/// openhpid has one with the same tag and entity path, managed hot-swap and the same
/// hot-swap state; after `ipmitool -b 0 -t 0x84 picmg deactivate <moved>` both report that
/// FRU's ACTIVE → EXTRACTION_PENDING → INACTIVE in order and nothing for the other FRUs of
/// 0x84, and both then agree on their states.
fn subsidiary_frus_alike(c: &Subsidiaries) {
    use hpi::{EventKind, HsState};

    let s = Shelfd::start_model(c.run, c.model, &[]);
    // shelfd's sensor n reads FRU device n's M-state: wait until each subsidiary is in M4.
    for &(_, device, tag, _) in c.frus {
        wait_for_m4(&s, device, tag);
    }
    let o = legacy_openhpid(&s);
    let theirs = o.wait_for("the subsidiary FRUs and the boards", |r| {
        c.frus.iter().all(|f| r.iter().any(|x| x.entity == f.3))
            && r.iter().filter(|x| x.managed_hotswap).count() >= c.tags.len()
    });

    let mut d = common::started_domain(s.addr.port(), "admin", "admin-secret");
    let ours: Vec<(hpi::ResourceId, String, String, HsState)> = d
        .rpt()
        .filter(|e| e.caps.managed_hotswap)
        .map(|e| {
            (
                e.id,
                e.tag.clone(),
                e.entity.to_string(),
                e.hs_state.unwrap(),
            )
        })
        .collect();
    let mut tags: Vec<&str> = ours.iter().map(|x| x.1.as_str()).collect();
    tags.sort_unstable();
    assert_eq!(tags, c.tags);
    let their_rid = |entity: &str| {
        theirs
            .iter()
            .find(|x| x.entity == entity)
            .map(|x| x.rid)
            .unwrap_or_else(|| panic!("openhpid has no resource at {entity}: {theirs:?}"))
    };
    for (_, tag, entity, state) in &ours {
        let t = theirs.iter().find(|x| &x.entity == entity).unwrap();
        assert_eq!((&t.tag, t.managed_hotswap), (tag, true), "{entity}");
        assert_eq!(o.hs_state_of(t.rid), state.name(), "{tag}");
    }
    // hpi's resources of the IPMC at 0x84, with their entity paths.
    let mut at_84: Vec<(hpi::ResourceId, String)> =
        vec![(d.resource_by_fru(0x84, 0).unwrap(), blade(2))];
    for &(fru, _, tag, entity) in c.frus {
        let rid = d.resource_by_fru(0x84, fru).unwrap();
        assert_eq!(d.rpt_entry(rid).unwrap().tag, tag);
        at_84.push((rid, entity.to_string()));
    }
    let moved = at_84
        .iter()
        .find(|x| Some(x.0) == d.resource_by_fru(0x84, c.moved))
        .unwrap()
        .clone();

    let events_path = o.dir.join(format!("events-{}.txt", c.run));
    let last_tag = c.frus.last().unwrap().2;
    let mut events = follow_events(&o, &events_path, last_tag);
    let sub = d.subscribe();
    let moved_fru = c.moved.to_string();
    s.ok(
        17,
        &["-b", "0", "-t", "0x84", "picmg", "deactivate", &moved_fru],
    );
    let want = [
        ("ACTIVE", "EXTRACTION_PENDING"),
        ("EXTRACTION_PENDING", "INACTIVE"),
    ];
    // hpi and openhpid each until both saw the last transition (openhpid polls its SEL
    // every 5 s).
    let mut mine: Vec<(hpi::ResourceId, &str, &str)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    let theirs_seen = loop {
        d.poll(Instant::now());
        while let Some(e) = d.event_get(sub).unwrap() {
            if let (
                Some(r),
                EventKind::HotSwap {
                    previous, state, ..
                },
            ) = (e.resource, e.kind)
            {
                mine.push((r, previous.name(), state.name()));
            }
        }
        let seen = hot_swap_events(&std::fs::read_to_string(&events_path).unwrap());
        let ours_done = mine.contains(&(moved.0, want[1].0, want[1].1));
        let theirs_done = seen
            .iter()
            .any(|x| x.0 == moved.1 && (x.1.as_str(), x.2.as_str()) == want[1]);
        if ours_done && theirs_done {
            break seen;
        }
        assert!(Instant::now() < end, "hpi saw {mine:?}, openhpid {seen:?}");
        thread::sleep(Duration::from_millis(50));
    };
    let _ = events.kill();
    let _ = events.wait();
    for (rid, entity) in &at_84 {
        let mine_of: Vec<(&str, &str)> = mine
            .iter()
            .filter(|x| x.0 == *rid)
            .map(|x| (x.1, x.2))
            .collect();
        let theirs_of: Vec<(&str, &str)> = theirs_seen
            .iter()
            .filter(|x| &x.0 == entity)
            .map(|x| (x.1.as_str(), x.2.as_str()))
            .collect();
        let expected: &[(&str, &str)] = if *rid == moved.0 { &want } else { &[] };
        assert_eq!(mine_of, expected, "hpi: {entity}");
        assert_eq!(theirs_of, expected, "openhpid: {entity}");
        let state = d.hotswap_state(*rid).unwrap();
        assert_eq!(o.hs_state_of(their_rid(entity)), state.name(), "{entity}");
        let want_state = if *rid == moved.0 {
            HsState::Inactive
        } else {
            HsState::Active
        };
        assert_eq!(state, want_state, "{entity}");
    }
}

/// A board pulled out of `shelfd` with its RTM behind it (OEM Simulated Presence on
/// node-2): hpi and openhpid watch the same shelf. Compared: both report node-2's HOTSWAP
/// event ACTIVE → NOT_PRESENT, and afterwards neither lists node-2 or the RTM at
/// `{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{BACK_PANEL_BOARD,1}`, and both keep hub-1. The
/// difference, asserted so that a change in either shows: hpi reports the RTM's
/// ACTIVE → NOT_PRESENT right after the board's, openhpid removes the RTM's resource
/// without any HOTSWAP event (neither gives one for the RTM's own M0 record, read in the
/// same SEL batch as the board's). openhpid's second copy of the RTM (at
/// `{...}{SHELF_MANAGER,0}{BACK_PANEL_BOARD,1}`) is not compared.
#[test]
fn openhpid_and_hpi_lose_an_rtm_with_its_pulled_board() {
    use hpi::{EventKind, HsState};

    let s = Shelfd::start_model("openhpid-rtm-pull", "shelf-sim-rtm.toml", &[]);
    wait_for_m4(&s, 3, "the RTM");
    let o = legacy_openhpid(&s);
    let slot_rtm = "{ADVANCEDTCA_CHASSIS,1}{PHYSICAL_SLOT,2}{BACK_PANEL_BOARD,1}";
    o.wait_for("the RTM and the boards", |r| {
        r.iter().any(|x| x.entity == slot_rtm)
            && r.iter().filter(|x| x.managed_hotswap).count() >= 3
    });
    let mut d = common::started_domain(s.addr.port(), "admin", "admin-secret");
    let rtm = d.resource_by_fru(0x84, 1).unwrap();
    let node2 = d.resource_by_fru(0x84, 0).unwrap();
    let entity_of = |rid| d.rpt_entry(rid).unwrap().entity.to_string();
    let ours_by_rid = [(node2, entity_of(node2)), (rtm, entity_of(rtm))];
    assert_eq!(ours_by_rid[1].1, slot_rtm);

    let events_path = o.dir.join("events-pull.txt");
    let mut events = follow_events(&o, &events_path, "rtm-2");
    let sub = d.subscribe();
    s.ok(17, &["raw", "0x30", "0x02", "2", "0"]);
    let mut mine: Vec<(String, &str, &str)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        d.poll(Instant::now());
        while let Some(e) = d.event_get(sub).unwrap() {
            if let (
                Some(r),
                EventKind::HotSwap {
                    previous, state, ..
                },
            ) = (e.resource, e.kind)
            {
                let entity = ours_by_rid.iter().find(|x| x.0 == r).map(|x| x.1.clone());
                mine.push((
                    entity.unwrap_or_else(|| format!("{r}")),
                    previous.name(),
                    state.name(),
                ));
            }
        }
        let theirs_gone = !o
            .resources()
            .iter()
            .any(|x| x.entity == slot_rtm || x.entity == blade(2));
        let ours_gone =
            d.resource_by_fru(0x84, 0).is_none() && d.resource_by_fru(0x84, 1).is_none();
        if theirs_gone && ours_gone {
            break;
        }
        assert!(
            Instant::now() < end,
            "hpi saw {mine:?}; openhpid lists {:?}",
            o.resources()
        );
        thread::sleep(Duration::from_millis(200));
    }
    // hpievents prints what openhpid queued with the removal.
    thread::sleep(Duration::from_secs(1));
    let _ = events.kill();
    let _ = events.wait();
    let theirs = hot_swap_events(&std::fs::read_to_string(&events_path).unwrap());
    let theirs: Vec<(&str, &str, &str)> = theirs
        .iter()
        .map(|x| (x.0.as_str(), x.1.as_str(), x.2.as_str()))
        .collect();
    let mine: Vec<(&str, &str, &str)> = mine.iter().map(|x| (x.0.as_str(), x.1, x.2)).collect();
    let b2 = blade(2);
    assert_eq!(
        mine,
        [
            (b2.as_str(), "ACTIVE", "NOT_PRESENT"),
            (slot_rtm, "ACTIVE", "NOT_PRESENT")
        ],
        "hpi: the board, then its RTM"
    );
    assert_eq!(
        theirs,
        [(b2.as_str(), "ACTIVE", "NOT_PRESENT")],
        "openhpid: the board only (its RTM leaves the RPT without an event)"
    );
    assert!(o.resources().iter().any(|x| x.tag == "hub-1"));
    assert_eq!(
        d.hotswap_state(d.resource_by_fru(0x82, 0).unwrap())
            .unwrap(),
        HsState::Active
    );
}
