//! Cross-check with the anchor: for the same simulated shelf, the resources and hot-swap
//! states `hpi` reports match what OpenHPI's `openhpid` (ipmidirect plugin, IPMI 1.5 LAN)
//! reports, at discovery and again after a blade was extracted.
//!
//! Compared, for every managed hot-swap resource: the tag, the entity path and the hot-swap
//! state; and that both see the shelf manager (tag "ShMC") as a resource without managed
//! hot-swap. Not compared (documented in docs/hpi.md): resource ids (assigned in discovery
//! order by each), the shelf manager's entity path (openhpid
//! `{ADVANCEDTCA_CHASSIS,1}{SHELF_MANAGER,0}{SHELF_MANAGER,0}`, hpi
//! `{ADVANCEDTCA_CHASSIS,1}{SHELF_MANAGER,1}` from its site number), and the Shelf resource
//! hpi adds for the Shelf FRU information (openhpid has none).

mod common;
#[path = "support/openhpid.rs"]
mod openhpid;

use std::collections::BTreeSet;
use std::time::Instant;

use common::Sim;
use hpi::ipmi::IpmiShelf;
use hpi::{Domain, DomainConfig, HsState, Timeout};
use openhpid::Openhpid;

/// hpi's view: (tag, entity, state) of managed hot-swap resources, and the other tags.
fn ours(sim: &Sim) -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let mut d = Domain::new(
        IpmiShelf::new(sim.config(), Sim::creds()),
        DomainConfig {
            auto_insert_timeout: Timeout::Block,
            auto_extract_timeout: Timeout::Block,
            ..DomainConfig::default()
        },
    );
    d.start(Instant::now()).unwrap();
    let mut hs = BTreeSet::new();
    let mut other = BTreeSet::new();
    for e in d.rpt() {
        match e.hs_state {
            Some(s) if e.caps.managed_hotswap => {
                hs.insert((e.tag.clone(), e.entity.to_string(), s.name().to_string()));
            }
            _ => {
                other.insert(e.tag.clone());
            }
        }
    }
    (hs, other)
}

fn theirs(o: &Openhpid, n: usize) -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let res = o.wait_for_hs_resources(n);
    let mut hs = BTreeSet::new();
    let mut other = BTreeSet::new();
    for r in res {
        if r.managed_hotswap {
            let s = o.hs_state_of(r.rid);
            hs.insert((r.tag, r.entity, s));
        } else {
            other.insert(r.tag);
        }
    }
    (hs, other)
}

#[test]
fn resources_and_hot_swap_states_match_openhpid() {
    let sim = Sim::start();
    // hpi first: openhpid clears the SEL and activates blades that request it
    let (our_hs, our_other) = ours(&sim);
    let o = Openhpid::start(sim.port, "admin", "admin", "admin");
    let (their_hs, their_other) = theirs(&o, 3);
    eprintln!("hpi: {our_hs:?}\nopenhpid: {their_hs:?}");
    assert_eq!(
        our_hs, their_hs,
        "managed hot-swap resources (tag, entity path, state)"
    );
    assert!(our_other.contains("ShMC") && their_other.contains("ShMC"));
    assert!(our_hs.iter().any(|(_, _, s)| s == HsState::Active.name()));
    assert!(our_hs.iter().any(|(_, _, s)| s == HsState::Inactive.name()));

    // Blade2 pulled (M4 -> M5 -> M6 -> M1 -> M0, IPMC gone): both drop it
    sim.sh_checked(&["extract", "0x84"]);
    let (their_hs, _) = theirs(&o, 2);
    drop(o);
    let (our_hs, _) = ours(&sim);
    assert_eq!(our_hs, their_hs, "after the extraction of Blade2");
    assert!(!our_hs.iter().any(|(t, _, _)| t == "Blade2"));
}
