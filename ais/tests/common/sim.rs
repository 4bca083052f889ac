//! What the executive-core simulator tests share: the schedules they draw, the seeds they run
//! (`AIS_SIM_SEED`, `AIS_SIM_SEEDS`) and the simulator's own checks of a run.

use totem_dpdk::Duration;
use totem_sim::net::Faults;
use totem_sim::sim::{NodeFaultKinds, Outcome, Schedule};

/// A random schedule of 2–5 nodes with every link and node fault (5% loss, 2% duplication,
/// 5% reordering), allowed 10 s to converge after its last fault.
pub fn random_schedule(seed: u64) -> Schedule {
    let faults = Faults {
        loss: 0.05,
        dup: 0.02,
        reorder: 0.05,
        ..Faults::default()
    };
    let mut s = Schedule::random(seed, 2..=5, faults, NodeFaultKinds::ALL);
    s.converge_bound = Duration::from_millis(10_000);
    s
}

/// The seeds to run: `AIS_SIM_SEED=N` replays one, `AIS_SIM_SEEDS=N` runs `0..N`, else
/// `0..default`.
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    if let Some(seed) = std::env::var("AIS_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed..seed + 1;
    }
    let n = std::env::var("AIS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    0..n
}

/// The nodes a schedule leaves crashed at its end (crashed and not restarted or started
/// since).
pub fn down_at_end(schedule: &Schedule) -> std::collections::BTreeSet<u32> {
    let mut down = std::collections::BTreeSet::new();
    for (_, f) in &schedule.node_faults {
        match f {
            totem_sim::sim::NodeFault::Crash(n) => {
                down.insert(*n);
            }
            totem_sim::sim::NodeFault::Restart(n) | totem_sim::sim::NodeFault::Start(n) => {
                down.remove(n);
            }
            _ => {}
        }
    }
    down
}

/// The simulator's violations of a run and its EVS checker's on the run's Totem log.
pub fn totem_violations(outcome: &Outcome, schedule: &Schedule) -> Vec<String> {
    let mut violations = outcome.violations.clone();
    let mut params = totem_sim::checker::CheckParams::from_log(&outcome.log);
    params.last_fault_ns = Some(schedule.faults_end().as_nanos());
    params.converge_bound_ns = Some(schedule.converge_bound.as_nanos());
    let report = totem_sim::checker::check(&outcome.log, &params);
    violations.extend(report.violations.iter().map(ToString::to_string));
    violations
}

/// Runs `check` on every seed of `seeds`; `check` returns the problems of its run (the
/// simulator's and its checkers'). Panics listing every failing seed with its replay command
/// and its first five problems.
pub fn assert_every_seed_passes(
    seeds: std::ops::Range<u64>,
    mut check: impl FnMut(u64) -> Vec<String>,
) {
    let mut bad = Vec::new();
    for seed in seeds {
        let problems = check(seed);
        if !problems.is_empty() {
            bad.push(format!(
                "seed {seed} (replay: AIS_SIM_SEED={seed}): {}",
                problems
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} schedules failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The messages an `ExecCore` asked the simulated Totem core to submit, waiting for the
/// simulator to take them, and the origin of each one taken, until its result comes back: the
/// bookkeeping every executive-core simulator app shares.
#[derive(Default)]
pub struct Submits {
    queue: std::collections::VecDeque<totem_sim::sim::AppSubmit>,
    origins: std::collections::BTreeMap<u64, ais_core::exec::Origin>,
    next_tag: u64,
}

impl Submits {
    /// Queues `msg` (an `Effect::Submit` of the core), tagged for its result.
    pub fn push(
        &mut self,
        origin: ais_core::exec::Origin,
        kind: totem_dpdk::DeliveryKind,
        msg: bytes::Bytes,
    ) {
        self.next_tag += 1;
        let tag = self.next_tag;
        self.origins.insert(tag, origin);
        self.queue.push_back(totem_sim::sim::AppSubmit {
            tag,
            prio: totem_dpdk::Priority::default(),
            kind,
            payload: msg,
        });
    }

    /// The next message for the simulator (`App::poll_submit`).
    pub fn pop(&mut self) -> Option<totem_sim::sim::AppSubmit> {
        self.queue.pop_front()
    }

    /// Hands the result of the message tagged `tag` back to `core` (`App::submitted`).
    pub fn submitted(
        &mut self,
        core: &mut ais_core::exec::ExecCore,
        tag: u64,
        result: Result<totem_dpdk::MsgId, totem_dpdk::srp::SubmitError>,
    ) {
        let origin = self.origins.remove(&tag).expect("a known tag");
        core.submitted(origin, result);
    }

    /// No message waits for the simulator.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
