//! Frame security under attack, in the simulator: every frame sealed with AES-256-GCM; an
//! attacker injects forged frames (random bytes behind a valid header), truncated and
//! corrupted copies, and replays of frames recorded earlier on any link (older rings and
//! earlier incarnations of restarted nodes included), on top of every link and node fault.
//!
//! Asserted per injected frame (see `totem_sim::sim::AttackStats`): forged, truncated and
//! tampered frames are all refused and counted by the protection layer; a replay is refused
//! whenever its receiver had already processed that transmission (same nonce) in its current
//! incarnation; and the checker finds no violation in any run.

use totem_sim::net::Faults;
use totem_sim::runner;
use totem_sim::sim::{NodeFaultKinds, Schedule};

#[test]
fn forged_tampered_truncated_and_replayed_frames_change_nothing() {
    let faults = Faults {
        loss: 0.1,
        dup: 0.05,
        reorder: 0.1,
        corrupt: 0.05,
        forge: 0.05,
        replay: 0.05,
    };
    let schedules: Vec<Schedule> = (0..300)
        .map(|seed| Schedule::random(seed, 2..=8, faults, NodeFaultKinds::ALL))
        .collect();
    assert!(schedules.iter().all(|s| s.crypto), "attacks turn crypto on");
    let summary = runner::run_many(schedules, 2, |c| {
        assert!(
            c.violations.is_empty(),
            "seed {}: {:?}",
            c.schedule.seed,
            &c.violations[..c.violations.len().min(5)]
        );
    });
    assert_eq!(summary.violations, 0);
    assert!(summary.attack_frames > 10_000, "{summary:?}");
    assert!(
        summary.attack_rejected > summary.attack_frames / 2,
        "{summary:?}"
    );
    assert_eq!(
        summary.attack_frames,
        summary.attack_rejected + summary.replay_first_copies,
        "every injected frame was refused or was a first copy"
    );
}

/// Crypto without attacks changes no outcome the checker can see: the fault-free and
/// link-fault schedules still deliver everything in one order.
#[test]
fn sealed_rings_behave_like_clear_ones() {
    let faults = Faults {
        loss: 0.1,
        dup: 0.05,
        reorder: 0.1,
        corrupt: 0.02,
        ..Faults::default()
    };
    let schedules: Vec<Schedule> = (0..200)
        .map(|seed| {
            let mut s = Schedule::random(seed, 2..=8, faults, NodeFaultKinds::ALL);
            s.crypto = true;
            s
        })
        .collect();
    let summary = runner::run_many(schedules, 2, |c| {
        assert!(
            c.violations.is_empty(),
            "seed {}: {:?}",
            c.schedule.seed,
            c.violations
        );
    });
    assert_eq!(summary.violations, 0);
    assert!(summary.delivered > 0);
}
