//! Whole-shelf scenarios on `configs/shelf-sim.toml` with simulated IPMCs: the shelf core and
//! the boards talk only through `drive`.

use std::path::Path;

use shelf_manager::hotswap::{Cause, Change, MState, Policy};
use shelf_manager::ipmc::SimIpmc;
use shelf_manager::model::Config;
use shelf_manager::sel::SelBody;
use shelf_manager::shelf::{Driven, Shelf, ShelfError, drive};

use MState::*;

const STEPS: usize = 1000;

fn sim_shelf() -> (Shelf, SimIpmc) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/shelf-sim.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = Config::from_str(&text, "shelf-sim.toml").unwrap();
    (Shelf::new(&config), SimIpmc::new(&config))
}

/// Runs until quiet and checks that nothing was refused.
fn run(shelf: &mut Shelf, sim: &mut SimIpmc) -> Driven {
    let driven = drive(shelf, sim, STEPS);
    assert!(driven.refused.is_empty(), "{:?}", driven.refused);
    driven
}

fn states(shelf: &Shelf, names: &[&str]) -> Vec<MState> {
    names.iter().map(|n| shelf.state_of(n).unwrap()).collect()
}

fn power_denials(shelf: &Shelf, name: &str) -> usize {
    let fru = shelf.fru(name).unwrap();
    shelf
        .sel()
        .records()
        .iter()
        .filter(|r| r.fru == fru && matches!(r.body, SelBody::PowerDenied { .. }))
        .count()
}

#[test]
fn feeds_for_two_boards_hold_the_third_in_m3_until_one_deactivates() {
    let (mut shelf, mut sim) = sim_shelf();
    let boards = ["hub-1", "node-2", "node-3"];
    for b in boards {
        assert!(sim.insert(b));
    }
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &boards), [M1, M1, M1]);

    // Handles close in slot order: the first two activate, the third waits for power.
    for b in boards {
        assert!(sim.close_handle(b));
    }
    let driven = run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &boards), [M4, M4, M3]);
    let hub = shelf.fru("hub-1").unwrap();
    assert_eq!(driven.transitions(hub), [(M1, M2), (M2, M3), (M3, M4)]);
    assert_eq!(sim.payload_level("hub-1"), Some(3));
    assert_eq!(sim.payload_level("node-3"), Some(0));
    let node3 = shelf.fru("node-3").unwrap();
    assert!(shelf.budget().is_waiting(node3));
    assert_eq!(power_denials(&shelf, "node-3"), 1);
    assert_eq!(shelf.budget().feeds()[0].used_watts, 400);

    // The operator opens node-2's handle: M5, deactivated at once, its power goes to node-3.
    assert!(sim.open_handle("node-2"));
    let driven = run(&mut shelf, &mut sim);
    let node2 = shelf.fru("node-2").unwrap();
    assert_eq!(driven.transitions(node2), [(M4, M5), (M5, M6), (M6, M1)]);
    assert_eq!(states(&shelf, &boards), [M4, M1, M4]);
    assert_eq!(sim.payload_level("node-2"), Some(0));
    assert_eq!(sim.payload_level("node-3"), Some(2));
    assert!(shelf.budget().is_powered(node3) && !shelf.budget().is_powered(node2));

    // Every hot-swap event is in the SEL with its cause.
    let causes: Vec<(MState, MState, Cause)> = shelf
        .sel()
        .records()
        .iter()
        .filter(|r| r.fru == node2)
        .filter_map(|r| match r.body {
            SelBody::HotSwap(Change {
                previous,
                new,
                cause,
            }) => Some((previous, new, cause)),
            SelBody::PowerDenied { .. } => None,
        })
        .collect();
    assert_eq!(
        causes,
        [
            (M0, M1, Cause::Normal),
            (M1, M2, Cause::HandleSwitch),
            (M2, M3, Cause::ShelfManagerCommand),
            (M3, M4, Cause::Normal),
            (M4, M5, Cause::HandleSwitch),
            (M5, M6, Cause::ShelfManagerCommand),
            (M6, M1, Cause::Normal),
        ]
    );
}

#[test]
fn a_board_that_vanishes_goes_to_m7_and_comes_back() {
    let (mut shelf, mut sim) = sim_shelf();
    sim.insert("node-3");
    sim.close_handle("node-3");
    run(&mut shelf, &mut sim);
    // Its IPMC answered the activation, then fell silent: nothing noticed yet.
    assert_eq!(shelf.state_of("node-3"), Some(M4));
    shelf.check_health();
    let driven = run(&mut shelf, &mut sim);
    let node3 = shelf.fru("node-3").unwrap();
    assert_eq!(driven.transitions(node3), [(M4, M7)]);
    // It keeps its power: the shelf cannot know its payload is off.
    assert!(shelf.budget().is_powered(node3));
    // Silent boards stay in M7 on the next checks.
    shelf.check_health();
    assert!(run(&mut shelf, &mut sim).events.is_empty());

    assert!(sim.reconnect("node-3"));
    shelf.check_health();
    let driven = run(&mut shelf, &mut sim);
    assert_eq!(driven.transitions(node3), [(M7, M4)]);
    let last = shelf.sel().records().last().unwrap().body;
    assert_eq!(
        last,
        SelBody::HotSwap(Change {
            previous: M7,
            new: M4,
            cause: Cause::Communication
        })
    );
}

#[test]
fn a_board_whose_payload_fails_returns_to_m1_and_frees_its_power() {
    let (mut shelf, mut sim) = sim_shelf();
    for b in ["hub-1", "node-2", "node-4"] {
        sim.insert(b);
        sim.close_handle(b);
    }
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &["hub-1", "node-2", "node-4"]), [M4, M4, M3]);
    // hub-1 leaves: node-4 gets the power, fails at power-up, gives the power back.
    sim.open_handle("hub-1");
    let driven = run(&mut shelf, &mut sim);
    let node4 = shelf.fru("node-4").unwrap();
    assert_eq!(driven.transitions(node4), [(M3, M6), (M6, M1)]);
    let failure = driven.events.iter().find_map(|(f, b)| match b {
        SelBody::HotSwap(c) if *f == node4 && c.new == M6 => Some(c.cause),
        _ => None,
    });
    assert_eq!(failure, Some(Cause::UnexpectedDeactivation));
    assert!(!shelf.budget().is_powered(node4));
    assert_eq!(shelf.budget().feeds()[0].used_watts, 200);
}

#[test]
fn a_higher_priority_board_is_powered_first_whatever_the_arrival() {
    let (mut shelf, mut sim) = sim_shelf();
    for b in ["node-2", "node-3"] {
        sim.insert(b);
        sim.close_handle(b);
    }
    run(&mut shelf, &mut sim);
    // Both node boards hold the power; the hub (priority 10) arrives and waits, then so
    // does node-4 (priority 100, site 4).
    for b in ["node-4", "hub-1"] {
        sim.insert(b);
        sim.close_handle(b);
    }
    run(&mut shelf, &mut sim);
    let waiting: Vec<_> = shelf.budget().waiting().collect();
    assert_eq!(
        waiting,
        [shelf.fru("hub-1").unwrap(), shelf.fru("node-4").unwrap()]
    );
    sim.open_handle("node-2");
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &["hub-1", "node-4"]), [M4, M3]);
}

#[test]
fn the_locked_bit_holds_a_board_until_a_system_manager_clears_it() {
    let (mut shelf, mut sim) = sim_shelf();
    sim.insert("hub-1");
    run(&mut shelf, &mut sim);
    let hub = shelf.fru("hub-1").unwrap();
    let locked = Policy {
        locked: true,
        deactivation_locked: false,
    };
    shelf.set_policy(hub, locked).unwrap();
    sim.close_handle("hub-1");
    run(&mut shelf, &mut sim);
    assert_eq!(shelf.state(hub), Some(M1));
    shelf.set_policy(hub, Policy::default()).unwrap();
    let driven = run(&mut shelf, &mut sim);
    assert_eq!(driven.transitions(hub), [(M1, M2), (M2, M3), (M3, M4)]);
}

#[test]
fn surprise_extraction_frees_the_power_for_the_waiting_board() {
    let (mut shelf, mut sim) = sim_shelf();
    for b in ["hub-1", "node-2", "node-3"] {
        sim.insert(b);
        sim.close_handle(b);
    }
    run(&mut shelf, &mut sim);
    sim.extract("hub-1");
    let driven = run(&mut shelf, &mut sim);
    let hub = shelf.fru("hub-1").unwrap();
    assert_eq!(driven.transitions(hub), [(M4, M0)]);
    assert_eq!(shelf.state_of("node-3"), Some(M4));
}

#[test]
fn requests_the_state_refuses_change_nothing() {
    let (mut shelf, mut sim) = sim_shelf();
    let hub = shelf.fru("hub-1").unwrap();
    let e = shelf.activate(hub).unwrap_err();
    assert!(matches!(e, ShelfError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("M0"), "{e}");
    assert!(shelf.poll_effect().is_none());
    sim.insert("hub-1");
    run(&mut shelf, &mut sim);
    assert!(shelf.deactivate(hub).is_err());
    assert_eq!(shelf.state(hub), Some(M1));
    let nowhere = shelf_manager::hotswap::FruAddr {
        ipmb: 0xF0,
        fru_id: 0,
    };
    assert_eq!(
        shelf.activate(nowhere),
        Err(ShelfError::UnknownFru(nowhere))
    );
}

#[test]
fn a_full_sel_keeps_its_first_records_and_counts_the_rest() {
    let text = "[shelf]\nname = \"tiny\"\nsel_capacity = 3\n\n[[feed]]\nname = \"A\"\nmax_watts = 100\n\n[[board]]\nname = \"b\"\nsite_number = 1\nipmb_address = 0x82\npower_levels = [50]\nfeeds = [\"A\"]\n";
    let config = Config::from_str(text, "tiny.toml").unwrap();
    let (mut shelf, mut sim) = (Shelf::new(&config), SimIpmc::new(&config));
    sim.insert("b");
    sim.close_handle("b");
    let driven = run(&mut shelf, &mut sim);
    // M0->M1, M1->M2, M2->M3 stored; M3->M4 dropped from the SEL but still sent out.
    assert_eq!(driven.events.len(), 4);
    assert_eq!(shelf.sel().records().len(), 3);
    assert!(shelf.sel().overflowed());
    assert_eq!(shelf.sel().dropped(), 1);
    assert_eq!(shelf.state_of("b"), Some(M4));
    shelf.clear_sel();
    assert!(!shelf.sel().overflowed());
}

#[test]
fn with_manual_activation_frus_wait_in_m2_and_m5_for_the_system_manager() {
    let (mut shelf, mut sim) = sim_shelf();
    shelf.set_manual_activation(true);
    assert!(sim.insert("hub-1"));
    run(&mut shelf, &mut sim);
    assert!(sim.close_handle("hub-1"));
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &["hub-1"]), [M2]);
    let hub = shelf.fru("hub-1").unwrap();
    shelf.activate(hub).unwrap();
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &["hub-1"]), [M4]);
    assert!(sim.open_handle("hub-1"));
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &["hub-1"]), [M5]);
    // Refusing the deactivation (activate in M5) keeps it running.
    shelf.activate(hub).unwrap();
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &["hub-1"]), [M4]);
    shelf.deactivate(hub).unwrap();
    run(&mut shelf, &mut sim);
    assert_eq!(states(&shelf, &["hub-1"]), [M1]);
}
