use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::shelf::drive;

const STEPS: usize = 1000;

fn config() -> Config {
    Config::from_str(
        include_str!("../../../configs/shelf-sim.toml"),
        "shelf-sim.toml",
    )
    .unwrap()
}

const BOARDS: [&str; 4] = ["hub-1", "node-2", "node-3", "node-4"];

/// The example shelf with every board inserted and its handle closed: hub-1 and node-2 in
/// M4, node-3 waiting for power in M3, node-4 behind it.
fn running(config: &Config) -> (Shelf, SimIpmc) {
    let mut shelf = Shelf::new(config);
    let mut sim = SimIpmc::new(config);
    for b in BOARDS {
        sim.insert(b);
        sim.close_handle(b);
        let _ = drive(&mut shelf, &mut sim, STEPS);
    }
    (shelf, sim)
}

fn through_bytes(s: &Snapshot) -> Snapshot {
    Snapshot::decode(&s.encode()).expect("an encoded snapshot decodes")
}

#[test]
fn a_snapshot_goes_through_its_bytes_and_restores_the_same_shelf() {
    let config = config();
    let (mut shelf, mut sim) = running(&config);
    let fru = |n: &str| shelf.fru(n).unwrap();
    let (hub, node2, node3) = (fru("hub-1"), fru("node-2"), fru("node-3"));
    shelf
        .set_policy(
            hub,
            Policy {
                locked: true,
                deactivation_locked: true,
            },
        )
        .unwrap();
    shelf.deactivate(node2).unwrap();
    let _ = drive(&mut shelf, &mut sim, STEPS);
    // node-2's power went to node-3, which vanishes once powered: M7 at the health check.
    shelf.check_health();
    let _ = drive(&mut shelf, &mut sim, STEPS);
    assert_eq!(shelf.state(node3), Some(MState::M7));
    assert!(shelf.sel().records().len() > 10);

    let snap = Snapshot::of(&shelf, 42);
    assert_eq!(snap.generation, 42);
    assert!(snap.matches(&shelf));
    let back = through_bytes(&snap);
    assert_eq!(back, snap);
    let restored = back.restore(&config).unwrap();
    assert_eq!(restored, shelf);
    assert_eq!(restored.state(node3), Some(MState::M7));
    assert_eq!(restored.policy(hub), shelf.policy(hub));
    assert_eq!(restored.sel().records(), shelf.sel().records());
    assert_eq!(restored.budget(), shelf.budget());
    assert_eq!(
        snap.to_string(),
        "generation 42: 0x82/0 M4, 0x84/0 M1, 0x86/0 M7, 0x88/0 M3; 20 SEL records"
    );
}

#[test]
fn a_change_makes_the_snapshot_stale() {
    let config = config();
    let (mut shelf, mut sim) = running(&config);
    let snap = Snapshot::of(&shelf, 1);
    assert!(snap.matches(&shelf));
    shelf.deactivate(shelf.fru("hub-1").unwrap()).unwrap();
    let _ = drive(&mut shelf, &mut sim, STEPS);
    assert!(!snap.matches(&shelf));
}

/// One random thing happening to the shelf: an operator at a board, a system manager's
/// request, or a health check round.
fn random_op(rng: &mut ChaCha8Rng, shelf: &mut Shelf, sim: &mut SimIpmc) {
    let b = BOARDS[rng.random_range(0..BOARDS.len())];
    let fru = shelf.fru(b).unwrap();
    match rng.random_range(0..9) {
        0 => {
            sim.insert(b);
        }
        1 => {
            sim.close_handle(b);
        }
        2 => {
            sim.open_handle(b);
        }
        // Not a board in M7: its silent IPMC would not tell the shelf (a takeover cannot
        // know such a board is gone; see `simulated_boards`).
        3 if rng.random_ratio(1, 3) && shelf.state(fru) != Some(MState::M7) => {
            sim.extract(b);
        }
        4 => {
            sim.reconnect(b);
        }
        5 => {
            let _ = shelf.activate(fru);
        }
        6 => {
            let _ = shelf.deactivate(fru);
        }
        7 => {
            let _ = shelf.set_policy(
                fru,
                Policy {
                    locked: rng.random(),
                    deactivation_locked: rng.random(),
                },
            );
        }
        _ => {}
    }
    let _ = drive(shelf, sim, STEPS);
    // The health check after every step, so the shelf knows which boards answer (what a
    // takeover can rebuild of the simulated boards).
    shelf.check_health();
    let _ = drive(shelf, sim, STEPS);
}

#[test]
fn a_restored_shelf_goes_on_exactly_like_the_original() {
    let config = config();
    for seed in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut shelf = Shelf::new(&config);
        let mut sim = SimIpmc::new(&config);
        shelf.set_manual_activation(seed % 2 == 1);
        let takeover = rng.random_range(0..40);
        for _ in 0..takeover {
            random_op(&mut rng, &mut shelf, &mut sim);
        }
        let snap = through_bytes(&Snapshot::of(&shelf, seed));
        let mut standby = snap.restore(&config).unwrap_or_else(|e| {
            panic!("seed {seed}: {e}\n{snap:?}");
        });
        standby.set_manual_activation(shelf.manual_activation());
        assert_eq!(standby, shelf, "seed {seed}");
        let mut standby_sim = simulated_boards(&config, &standby);
        // The same things happen to both from here on.
        let mut rng_a = ChaCha8Rng::seed_from_u64(seed ^ 0xABCD);
        let mut rng_b = rng_a.clone();
        for step in 0..40 {
            random_op(&mut rng_a, &mut shelf, &mut sim);
            random_op(&mut rng_b, &mut standby, &mut standby_sim);
            assert_eq!(
                Snapshot::of(&standby, 0),
                Snapshot::of(&shelf, 0),
                "seed {seed}: diverged {step} steps after the takeover at step {takeover}"
            );
        }
    }
}

#[test]
fn the_rebuilt_boards_are_the_boards_in_quiet_states() {
    let config = config();
    let (mut shelf, mut sim) = running(&config);
    assert_eq!(simulated_boards(&config, &shelf), sim);
    shelf.deactivate(shelf.fru("node-2").unwrap()).unwrap();
    let _ = drive(&mut shelf, &mut sim, STEPS);
    shelf.check_health();
    let _ = drive(&mut shelf, &mut sim, STEPS);
    let rebuilt = simulated_boards(&config, &shelf);
    assert_eq!(rebuilt.payload_level("hub-1"), Some(3));
    assert_eq!(rebuilt.payload_level("node-2"), Some(0));
    assert_eq!(rebuilt.payload_level("node-3"), Some(2));
    assert_eq!(rebuilt, sim);
}

#[test]
fn malformed_bytes_name_the_field() {
    let config = config();
    let (shelf, _) = running(&config);
    let bytes = Snapshot::of(&shelf, 3).encode();
    // Every cut is refused, never a panic.
    for n in 0..bytes.len() {
        let e = Snapshot::decode(&bytes[..n]).unwrap_err();
        assert!(
            matches!(e, DecodeError::Truncated(_) | DecodeError::Magic(_)),
            "{n}: {e}"
        );
    }
    assert_eq!(
        Snapshot::decode(&bytes[..13]).unwrap_err().to_string(),
        "snapshot truncated in FRU count"
    );
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(Snapshot::decode(&long), Err(DecodeError::Trailing(1)));
    let mut v2 = bytes.clone();
    v2[4] = 2;
    assert_eq!(
        Snapshot::decode(&v2).unwrap_err().to_string(),
        "snapshot version 2, this shelf manager reads version 1"
    );
    assert!(matches!(
        Snapshot::decode(b"SHLF\x01"),
        Err(DecodeError::Magic(_))
    ));
    // The first FRU's state byte.
    let mut bad = bytes.clone();
    bad[17] = 8;
    assert_eq!(
        Snapshot::decode(&bad).unwrap_err().to_string(),
        "snapshot field FRU state: invalid value 8"
    );
    assert!(bytes.len() <= Snapshot::max_encoded_len(&config));
}

#[test]
fn a_snapshot_that_does_not_fit_the_model_is_refused() {
    let config = config();
    let (shelf, _) = running(&config);
    let good = Snapshot::of(&shelf, 1);

    let mut other = good.clone();
    other.frus[1].addr.ipmb = 0x90;
    assert!(matches!(
        other.restore(&config),
        Err(RestoreError::Model { .. })
    ));
    let mut fewer = good.clone();
    fewer.frus.pop();
    assert!(matches!(
        fewer.restore(&config),
        Err(RestoreError::Model { .. })
    ));

    let inconsistent = |f: &dyn Fn(&mut Snapshot)| {
        let mut s = good.clone();
        f(&mut s);
        match s.restore(&config) {
            Err(RestoreError::Inconsistent(m)) => m,
            other => panic!("{other:?}"),
        }
    };
    // A grant in M1.
    let m = inconsistent(&|s| s.frus[0].state = MState::M1);
    assert!(m.contains("in M1"), "{m}");
    // The budget without the hub's grant.
    let m = inconsistent(&|s| {
        s.powered.retain(|p| p.fru.ipmb != 0x82);
    });
    assert!(m.contains("but the budget None"), "{m}");
    // Grants that overdraw the 500 W feeds.
    let m = inconsistent(&|s| {
        for p in &mut s.powered {
            p.watts = 300;
        }
    });
    assert!(m.contains("overdraw"), "{m}");
    // A FRU in M4 waiting for power.
    let m = inconsistent(&|s| {
        let hub = s.frus[0].addr;
        s.waiting.push(PowerEntry {
            fru: hub,
            level: 1,
            watts: 10,
        });
    });
    assert!(m.contains("waits for power in M4"), "{m}");
    // More SEL records than the model's SEL holds.
    let m = inconsistent(&|s| {
        let r = s.sel[0];
        s.sel = vec![r; config.shelf.sel_capacity + 1];
    });
    assert!(m.contains("SEL records"), "{m}");
    // A SEL record about a FRU the model does not have.
    let m = inconsistent(&|s| s.sel[0].0.ipmb = 0x40);
    assert!(m.contains("not in the model"), "{m}");
}

#[test]
fn the_fuzz_body_survives_random_and_mutated_snapshots() {
    let config = config();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut seeds = vec![Snapshot::of(&running(&config).0, 9).encode()];
    let mut shelf = Shelf::new(&config);
    let mut sim = SimIpmc::new(&config);
    for _ in 0..30 {
        random_op(&mut rng, &mut shelf, &mut sim);
        seeds.push(Snapshot::of(&shelf, 1).encode());
    }
    for s in &seeds {
        fuzzing::fuzz_decode(s);
    }
    for i in 0..3000 {
        let mut data = seeds[i % seeds.len()].clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..data.len());
            data[at] = rng.random();
        }
        fuzzing::fuzz_decode(&data);
        let junk: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
        fuzzing::fuzz_decode(&junk);
    }
}
