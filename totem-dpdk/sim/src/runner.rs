//! Runs many schedules (in parallel when asked), checks each run, and sums up.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checker;
use crate::sim::{Outcome, Schedule, Sim};

/// The checked result of one schedule.
#[derive(Debug)]
pub struct Checked {
    /// The schedule that ran.
    pub schedule: Schedule,
    /// What it produced.
    pub outcome: Outcome,
    /// Violations found by the simulator and by the checker, as text.
    pub violations: Vec<String>,
}

/// Runs one schedule and checks its log.
pub fn run_one(schedule: Schedule) -> Checked {
    let outcome = Sim::new(schedule.clone()).run();
    let mut violations = outcome.violations.clone();
    let mut params = checker::CheckParams::from_log(&outcome.log);
    params.last_fault_ns = Some(schedule.faults_end().as_nanos());
    params.converge_bound_ns = Some(schedule.converge_bound.as_nanos());
    if schedule.check_stable_members {
        params.stable_pairs = schedule.stable_pairs();
    }
    let report = checker::check(&outcome.log, &params);
    violations.extend(report.violations.iter().map(ToString::to_string));
    Checked {
        schedule,
        outcome,
        violations,
    }
}

/// Totals over many schedules.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    /// Schedules run.
    pub schedules: u64,
    /// Messages submitted and accepted.
    pub sent: u64,
    /// Deliveries, summed over nodes.
    pub delivered: u64,
    /// Frames carried by the simulated network.
    pub frames: u64,
    /// Submits refused with backpressure and retried by the workload.
    pub backpressure: u64,
    /// Total violations.
    pub violations: u64,
    /// Virtual time simulated, nanoseconds.
    pub virtual_ns: u64,
    /// Regular configurations installed, summed over nodes and schedules.
    pub configs: u64,
    /// Longest time from a schedule's last node fault until its nodes converged, nanoseconds.
    pub worst_convergence_ns: u64,
    /// Seeds of the schedules with violations (at most 100).
    pub failed_seeds: Vec<u64>,
    /// Attack frames (forged, truncated, tampered, replayed) delivered to nodes.
    pub attack_frames: u64,
    /// Of those, refused by the protection layer.
    pub attack_rejected: u64,
    /// Replays that were the first copy of their transmission for the receiver (treated as a
    /// late delivery; see `sim::AttackStats`).
    pub replay_first_copies: u64,
    /// Of those, frames the protocol then counted as stale, duplicate or foreign.
    pub replay_ignored_by_protocol: u64,
    /// Redundant rings: networks marked faulty, summed over nodes and schedules.
    pub nets_marked_faulty: u64,
    /// Redundant rings: networks re-enabled by themselves.
    pub nets_restored: u64,
    /// Redundant rings: copies dropped as duplicates.
    pub rrp_duplicates: u64,
    /// Redundant rings: networks marked faulty as lost, one-way, lossy.
    pub faulty_causes: [u64; 3],
    /// Redundant rings: longest time from a network fault to a node marking it, nanoseconds.
    pub worst_detection_ns: u64,
    /// Redundant rings: longest time from a network working again to a node re-enabling it,
    /// nanoseconds.
    pub worst_reenable_ns: u64,
}

/// Runs `schedules` on `threads` threads, calling `on_result` for each as it finishes (in
/// completion order) and returning the totals. Each schedule's run is deterministic whatever
/// the thread count.
pub fn run_many(
    schedules: Vec<Schedule>,
    threads: usize,
    on_result: impl Fn(&Checked) + Sync,
) -> Summary {
    let next = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    let schedules = &schedules;
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(schedule) = schedules.get(i) else {
                        break;
                    };
                    let checked = run_one(schedule.clone());
                    on_result(&checked);
                    let mut s = summary.lock().expect("no panics while holding the lock");
                    s.schedules += 1;
                    s.sent += checked.outcome.sent;
                    s.delivered += checked.outcome.delivered;
                    s.frames += checked.outcome.frames;
                    s.backpressure += checked.outcome.backpressure;
                    s.virtual_ns += checked.outcome.end.as_nanos();
                    s.configs += checked.outcome.configs;
                    let a = &checked.outcome.attacks;
                    s.attack_frames += a.forged + a.truncated + a.tampered + a.replayed;
                    s.attack_rejected += a.rejected;
                    s.replay_first_copies += a.replay_first_copies;
                    s.replay_ignored_by_protocol += a.replay_ignored_by_protocol;
                    s.nets_marked_faulty += checked.outcome.nets_marked_faulty;
                    s.nets_restored += checked.outcome.nets_restored;
                    s.rrp_duplicates += checked.outcome.rrp_duplicates;
                    for (sum, n) in s
                        .faulty_causes
                        .iter_mut()
                        .zip(checked.outcome.faulty_causes)
                    {
                        *sum += n;
                    }
                    s.worst_detection_ns = s
                        .worst_detection_ns
                        .max(checked.outcome.worst_detection.as_nanos());
                    s.worst_reenable_ns = s
                        .worst_reenable_ns
                        .max(checked.outcome.worst_reenable.as_nanos());
                    if checked.outcome.drained {
                        s.worst_convergence_ns = s
                            .worst_convergence_ns
                            .max(checked.outcome.convergence.as_nanos());
                    }
                    s.violations += checked.violations.len() as u64;
                    if !checked.violations.is_empty() && s.failed_seeds.len() < 100 {
                        s.failed_seeds.push(checked.schedule.seed);
                    }
                }
            });
        }
    });
    let mut summary = summary.into_inner().expect("threads joined");
    summary.failed_seeds.sort_unstable();
    summary
}
