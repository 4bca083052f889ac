//! The acceptance sweeps: thousands of seeded schedules with link faults (loss, duplication,
//! reordering with jitter, corruption) and node faults (crash and restart, pause, partition,
//! one-way links), each run checked for the virtual-synchrony properties. A failure names the
//! seed and the command that replays it.
//!
//! Assumes: 2 CPU cores (two worker threads); the simulator is single-threaded per schedule
//! and uses virtual time, so the result does not depend on machine speed or load.

use totem_sim::net::Faults;
use totem_sim::runner;
use totem_sim::sim::{NodeFaultKinds, Schedule};

const LINKS: Faults = Faults {
    loss: 0.2,
    dup: 0.1,
    reorder: 0.2,
    corrupt: 0.05,
    forge: 0.0,
    replay: 0.0,
};

/// Runs `seeds` and fails with every failing seed's replay command. `cli_faults` is the
/// `--faults` value that reproduces the same schedules on the command line.
fn sweep(
    seeds: std::ops::Range<u64>,
    nodes: std::ops::RangeInclusive<u32>,
    faults: Faults,
    node_faults: NodeFaultKinds,
    cli_faults: &str,
) -> runner::Summary {
    let schedules: Vec<Schedule> = seeds
        .clone()
        .map(|s| Schedule::random(s, nodes.clone(), faults, node_faults))
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let summary = runner::run_many(schedules, 2, |c| {
        if !c.violations.is_empty() {
            failures.lock().unwrap().push(format!(
                "seed {} ({} nodes): {}\n  replay: TOTEM_SIM_SEED={} cargo run --release -p \
                 totem-sim -- --nodes {}..{} --faults {cli_faults} --log seed.jsonl",
                c.schedule.seed,
                c.schedule.nodes,
                c.violations
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
                c.schedule.seed,
                nodes.start(),
                nodes.end(),
            ));
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failing schedules:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(summary.schedules, seeds.end - seeds.start);
    summary
}

#[test]
fn two_thousand_schedules_with_every_link_fault() {
    let s = sweep(0..2000, 2..=8, LINKS, NodeFaultKinds::default(), "links");
    assert!(s.delivered >= s.sent * 2);
    assert!(s.backpressure > 0, "the sweep must exercise backpressure");
}

#[test]
fn fault_free_schedules_up_to_sixteen_nodes() {
    let s = sweep(
        10_000..10_100,
        2..=16,
        Faults::default(),
        NodeFaultKinds::default(),
        "none",
    );
    assert!(s.delivered >= s.sent * 2);
}

/// 4000 since the stable-members sweeps below joined the suite (issue 14), to keep the
/// simulator's share of CI about where it was; docs/simulator.md has the 5000-schedule run.
#[test]
fn four_thousand_schedules_with_node_and_link_faults_up_to_sixteen_nodes() {
    let s = sweep(20_000..24_000, 2..=16, LINKS, NodeFaultKinds::ALL, "all");
    assert!(
        s.configs > 4_000 * 4,
        "membership changes happened: {} configurations",
        s.configs
    );
}

/// The same link and node faults with the token paced at 1 ms, as `aisexec` runs by default:
/// the representative keeping the token on a lightly loaded ring must not cost a property.
#[test]
fn a_thousand_paced_schedules_with_node_and_link_faults() {
    let schedules: Vec<Schedule> = (0..1000)
        .map(|s| {
            let mut s = Schedule::random(s, 2..=8, LINKS, NodeFaultKinds::ALL);
            s.token_pace = totem_dpdk::Duration::from_millis(1);
            s
        })
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let paced = std::sync::atomic::AtomicU64::new(0);
    let summary = runner::run_many(schedules, 2, |c| {
        paced.fetch_add(c.outcome.tokens_paced, std::sync::atomic::Ordering::Relaxed);
        if !c.violations.is_empty() {
            failures.lock().unwrap().push(format!(
                "seed {} ({} nodes, paced): {}",
                c.schedule.seed,
                c.schedule.nodes,
                c.violations.first().cloned().unwrap_or_default()
            ));
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(summary.schedules, 1000);
    let paced = paced.into_inner();
    assert!(paced > 10_000, "the sweep must pace tokens: {paced}");
    eprintln!("tokens paced over the sweep: {paced}");
}

#[test]
fn the_same_seed_replays_bit_for_bit() {
    let a = runner::run_one(Schedule::random(77, 2..=8, LINKS, NodeFaultKinds::ALL));
    let b = runner::run_one(Schedule::random(77, 2..=8, LINKS, NodeFaultKinds::ALL));
    assert_eq!(a.outcome.log, b.outcome.log);
    assert!(a.outcome.log.len() > 100);
}

/// Node faults only (crash and restart, pause, partition, one-way link, late start), no link
/// fault: besides every other property, each pair of nodes no fault touched must install the
/// same regular configurations and never one without the other (checker property 17).
fn stable_members_sweep(
    seeds: impl IntoIterator<Item = u64>,
    nodes: std::ops::RangeInclusive<u32>,
) {
    let schedules: Vec<Schedule> = seeds
        .into_iter()
        .map(|s| {
            let mut s = Schedule::random(s, nodes.clone(), Faults::default(), NodeFaultKinds::ALL);
            s.check_stable_members = true;
            s
        })
        .collect();
    let count = schedules.len();
    let pairs: usize = schedules
        .iter()
        .map(|s| s.stable_pairs().map_or(0, |p| p.len()))
        .sum();
    assert!(pairs > count, "the sweep must check stable pairs: {pairs}");
    let failures = std::sync::Mutex::new(Vec::new());
    let summary = runner::run_many(schedules, 2, |c| {
        if !c.violations.is_empty() {
            failures.lock().unwrap().push(format!(
                "seed {} ({} nodes): {}\n  replay: TOTEM_SIM_SEED={} cargo run --release -p \
                 totem-sim -- --nodes {}..{} --faults nodes --log seed.jsonl",
                c.schedule.seed,
                c.schedule.nodes,
                c.violations.first().cloned().unwrap_or_default(),
                c.schedule.seed,
                nodes.start(),
                nodes.end(),
            ));
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failing schedules:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(summary.schedules, count as u64);
}

/// Before issue 14's fixes 65 of these failed (a node back from a pause or a restart got
/// healthy members failed by the others; an agreed round whose commit token was lost failed
/// its representative).
#[test]
fn node_faults_only_never_split_the_members_no_fault_touched() {
    stable_members_sweep(30_000..32_500, 2..=8);
}

/// Larger rings: seeds 104100 (a member crashed while the install token went round, so some
/// members installed the new ring and the others abandoned its recovery) and 104470 among
/// them, which failed before the late install of an abandoned ring.
#[test]
fn node_faults_only_up_to_sixteen_nodes_never_split_stable_members() {
    stable_members_sweep(104_000..104_500, 2..=16);
}

/// The schedules of the 25 000-schedule sweep (docs/simulator.md) that split stable members
/// after the rules above: a representative that committed a ring whose token died with a
/// crashed member fell silent while it waited for the token, and the members still gathering
/// failed it (117491); a join taken over whole did not count as its sender's agreement, so the
/// round waited for the sender's next join and a crash meanwhile left a stuck round that broke
/// up when partitioned nodes came back (108156); a node that had failed the other side of a
/// healed partition got itself failed back by that side, and the verdict reached the member
/// that had stayed with it through a node of the other side, still counted as a member of its
/// ring (124289, 111135).
#[test]
fn the_schedules_that_split_stable_members_in_the_large_sweep_no_longer_do() {
    stable_members_sweep(
        [
            105278, 105965, 108119, 108156, 108695, 110474, 111135, 112972, 113340, 113864, 115244,
            117491, 117830, 117831, 118122, 124289, 126590, 126631, 128682,
        ],
        2..=16,
    );
}
