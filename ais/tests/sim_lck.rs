//! LCK under the seeded simulator: every simulated node runs an [`ExecCore`] with the quorum
//! service (one vote each, `expected_votes` the node count) and the lock service, and a client
//! on each node opens two handles on resource `r` and one on `s`, then keeps a few requests
//! in flight: asynchronous and timed synchronous locks of both modes (some with
//! `LOCK_NO_QUEUE` or `LOCK_ORPHAN`), unlocks of what it was granted, purges, and now and
//! then its process dies and a new one connects. Crashes, restarts, partitions, heals and
//! message loss come from the simulator's random schedules. The LCK checker
//! (`ais_core::services::lck::checker`) judges every table each node held, the grants
//! clients were told and the deadlocks reported.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_lck` replays one
//! schedule, `AIS_SIM_SEEDS=N` runs N (the default is sized for CI; docs/simulator.md has
//! the longer sweep).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ais_core::exec::{Effect, ExecCore};
use ais_core::services::lck::checker::{self, Checker, Observation, Property};
use ais_core::services::lck::table::{Table, TableDefects};
use ais_core::services::lck::{Lck, LckConfig, LckDefects, Observer};
use ais_core::services::quorum::{Quorum, QuorumConfig};
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply};
use ais_proto::lck::{
    Callback, Holder, LOCK_NO_QUEUE, LOCK_ORPHAN, LckProtocol, LockId, LockStatus, Mode,
    RESOURCE_CREATE, Request, Response,
};
use ais_proto::quorum::QuorumProtocol;
use bytes::Bytes;
use rand::{Rng, RngCore};
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId, RingId};
use totem_sim::sim::{App, AppSubmit, Sim};

/// Requests a client keeps in flight at most.
const IN_FLIGHT: usize = 4;

#[derive(Default)]
struct Shared {
    checker: Checker,
    /// Answers a client did not expect.
    unexpected: Vec<String>,
    told: usize,
    deadlocks: usize,
    timeouts: usize,
    /// Operator releases answered Ok (counted once, by the operator that asked).
    released: usize,
    /// Lock requests sent again after reaching the ring only in the next configuration.
    resent: usize,
}

type Log = Arc<Mutex<Shared>>;

struct Watch(Log);

impl Watch {
    fn see(&self, o: Observation) {
        if std::env::var_os("AIS_SIM_TRACE").is_some() {
            eprintln!("{o:?}");
        }
        self.0.lock().unwrap().checker.observe(o);
    }
}

impl Observer for Watch {
    fn sync_started(&mut self, node: u32, ring: RingId) {
        self.see(Observation::SyncStarted {
            node,
            ring: (ring.rep.0, ring.seq),
        });
    }

    fn activated(
        &mut self,
        node: u32,
        ring: RingId,
        members: &[NodeId],
        quorate: bool,
        epoch: u64,
        table: &Table,
    ) {
        self.see(Observation::Activated {
            node,
            ring: (ring.rep.0, ring.seq),
            members: members.iter().map(|m| m.0).collect(),
            quorate,
            epoch,
            state: checker::state(table),
        });
    }

    fn applied(&mut self, node: u32, quorate: bool, table: &Table) {
        self.see(Observation::Applied {
            node,
            quorate,
            state: checker::state(table),
        });
    }

    fn told(&mut self, node: u32, lock: LockId, holder: Holder, resource: &Bytes, mode: Mode) {
        self.0.lock().unwrap().told += 1;
        self.see(Observation::Told {
            node,
            lock,
            holder,
            resource: resource.clone(),
            mode,
        });
    }

    fn deadlock(&mut self, node: u32, holder: Holder, resource: &Bytes, mode: Mode, t: &Table) {
        self.0.lock().unwrap().deadlocks += 1;
        self.see(Observation::Deadlock {
            node,
            holder,
            resource: resource.clone(),
            mode,
            state: checker::state(t),
        });
    }

    fn closed(&mut self, holder: Holder) {
        self.see(Observation::Closed { holder });
    }

    fn unlocking(&mut self, lock: LockId) {
        self.see(Observation::Unlocking { lock });
    }

    fn released(&mut self, _node: u32, lock: LockId) {
        self.see(Observation::Released { lock });
    }

    fn resent(&mut self, _node: u32, _lock: LockId) {
        self.0.lock().unwrap().resent += 1;
    }
}

/// What a request in flight was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Open,
    Lock(u64),
    LockAsync(u64),
    Unlock(u64),
    Purge,
    /// The operator's listing (`aisctl lck ls`).
    List,
    /// The operator's forced release (`aisctl lck unlock`).
    Release,
}

struct LckApp {
    core: ExecCore,
    log: Log,
    node: u32,
    submits: common::sim::Submits,
    stop_at: Instant,
    now: Instant,
    conn: u64,
    /// Open handles (two on `r`, one on `s` once opened).
    handles: Vec<u64>,
    /// Requests in flight by id.
    inflight: BTreeMap<u64, Op>,
    /// Granted locks.
    granted: BTreeSet<u64>,
    /// Granted locks of the cluster the operator saw in its last listing.
    listed: Vec<(Bytes, LockId)>,
    next_id: u64,
}

const NAMES: [&str; 3] = ["r", "r", "s"];

impl LckApp {
    fn new(node: NodeId, log: Log, defects: LckDefects, stop_at: Instant, nodes: u32) -> LckApp {
        log.lock()
            .unwrap()
            .checker
            .observe(Observation::Started { node: node.0 });
        let service = Lck::with_defects(LckConfig::default(), defects)
            .with_observer(Box::new(Watch(Arc::clone(&log))));
        let quorum = Quorum::new(QuorumConfig {
            votes: 1,
            expected_votes: nodes,
            two_node: false,
            wait_for_all: false,
        });
        let mut app = LckApp {
            core: ExecCore::new(node, vec![Box::new(quorum), Box::new(service)]),
            log,
            node: node.0,
            submits: common::sim::Submits::default(),
            stop_at,
            now: Instant(0),
            conn: 1,
            handles: Vec::new(),
            inflight: BTreeMap::new(),
            granted: BTreeSet::new(),
            listed: Vec::new(),
            next_id: 2,
        };
        app.connect();
        app.effects();
        app
    }

    fn connect(&mut self) {
        self.core.connected(self.conn, 100);
        self.core.request_value(
            self.conn,
            1,
            &ais_proto::ipc::Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service: LckProtocol::ID,
            },
        );
        // Quorum is not asked by this client; its hello keeps `QuorumProtocol` linked.
        let _ = QuorumProtocol::ID;
    }

    fn send(&mut self, op: Op, req: Request) {
        let id = self.next_id;
        self.next_id += 1;
        self.inflight.insert(id, op);
        self.core.request_value(self.conn, id, &req);
    }

    fn request(&mut self, rng: &mut dyn RngCore) {
        if self.now >= self.stop_at || self.inflight.len() >= IN_FLIGHT {
            return;
        }
        if self.handles.len() < NAMES.len() {
            if !self.inflight.values().any(|o| *o == Op::Open) {
                self.send(
                    Op::Open,
                    Request::Open {
                        name: Bytes::from_static(NAMES[self.handles.len()].as_bytes()),
                        flags: RESOURCE_CREATE,
                    },
                );
            }
            return;
        }
        let handle = self.handles[rng.random_range(0..self.handles.len())];
        let mode = if rng.random_bool(0.5) {
            Mode::Pr
        } else {
            Mode::Ex
        };
        let flags = match rng.random_range(0..10) {
            0 => LOCK_NO_QUEUE,
            1 => LOCK_ORPHAN,
            _ => 0,
        };
        match rng.random_range(0..100) {
            0..40 => self.send(
                Op::LockAsync(handle),
                Request::LockAsync {
                    handle,
                    mode: mode.code(),
                    flags,
                    waiter_signal: u64::from(self.node),
                    invocation: self.next_id,
                },
            ),
            40..55 => self.send(
                Op::Lock(handle),
                Request::Lock {
                    handle,
                    mode: mode.code(),
                    flags,
                    waiter_signal: u64::from(self.node),
                    timeout: rng.random_range(20..200) * 1_000_000,
                },
            ),
            55..90 => {
                if let Some(lock_id) = self.granted.pop_first() {
                    self.send(Op::Unlock(lock_id), Request::Unlock { lock_id });
                }
            }
            90..95 => self.send(Op::Purge, Request::Purge { handle }),
            95..97 => {
                // The process dies; a new one starts.
                self.core.disconnected(self.conn);
                self.conn += 1;
                self.handles.clear();
                self.inflight.clear();
                self.granted.clear();
                self.connect();
            }
            97..99 => {
                // The operator at this node: list, then release a lock seen in the list
                // (any node's, held or orphan; it may be gone by now).
                if self.listed.is_empty() {
                    self.send(Op::List, Request::List);
                } else {
                    let i = rng.random_range(0..self.listed.len());
                    let (name, lock) = self.listed.swap_remove(i);
                    self.listed.clear();
                    self.send(Op::Release, Request::Release { name, lock });
                }
            }
            _ => {}
        }
    }

    fn unexpected(&self, what: String) {
        self.log
            .lock()
            .unwrap()
            .unexpected
            .push(format!("node {}: {what}", self.node));
    }

    fn answer(&mut self, id: u64, reply: Reply<Response>) {
        let Some(op) = self.inflight.remove(&id) else {
            return;
        };
        match (op, reply) {
            (Op::Open, Reply::Service(Response::Opened { handle })) => self.handles.push(handle),
            (Op::Lock(_), Reply::Service(Response::Locked { lock_id, status })) => {
                if status == LockStatus::Granted {
                    self.granted.insert(lock_id);
                }
            }
            (Op::LockAsync(_), Reply::Service(Response::LockId { .. })) => {}
            (Op::List, Reply::Service(Response::List { resources, .. })) => {
                self.listed = resources
                    .iter()
                    .flat_map(|r| {
                        r.locks
                            .iter()
                            .filter(|l| l.granted)
                            .map(|l| (r.name.clone(), l.id))
                    })
                    .collect();
            }
            (Op::Release, Reply::Ok) => self.log.lock().unwrap().released += 1,
            // Gone meanwhile (unlocked, released, lost to a merge), or queued again.
            (Op::Release, Reply::Error(AisError::NotExist | AisError::BadOperation)) => {}
            (Op::Lock(_), Reply::Error(AisError::Timeout)) => {
                self.log.lock().unwrap().timeouts += 1;
            }
            // Refused at a configuration change, without quorum, or a full queue.
            (_, Reply::Error(AisError::TryAgain)) => {}
            // A lock of a handle closed meanwhile; an unlock of a lock lost to a merge.
            (Op::Lock(_) | Op::LockAsync(_) | Op::Purge, Reply::Error(AisError::BadHandle))
            | (Op::Unlock(_), Reply::Error(AisError::NotExist))
            | (Op::Unlock(_) | Op::Purge, Reply::Ok) => {}
            (op, other) => self.unexpected(format!("{op:?} answered {other:?}")),
        }
    }

    fn callback(&mut self, cb: Callback) {
        match cb {
            Callback::Grant {
                lock_id,
                status: LockStatus::Granted,
                error: Ok(()),
                ..
            } => {
                self.granted.insert(lock_id);
            }
            Callback::Grant { .. } | Callback::Waiter { .. } => {}
            other => self.unexpected(format!("callback {other:?}")),
        }
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let Some((conn, id, reply)) = e.reply::<Response>() {
                if conn == self.conn && id > 1 {
                    self.answer(id, reply);
                }
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => self.submits.push(origin, kind, msg),
                Effect::Send { conn, .. } if conn == self.conn => {
                    if let Some((_, cb)) = e.callback::<Callback>() {
                        self.callback(cb);
                    }
                }
                Effect::Send { .. } => {}
                other => panic!("LCK makes no {other:?}"),
            }
        }
    }
}

impl App for LckApp {
    fn event(&mut self, _now: Instant, event: &Event) {
        self.core.totem(event);
        self.effects();
    }

    fn wake(&mut self, now: Instant, rng: &mut dyn RngCore) {
        self.now = now;
        self.core.tick(now.as_nanos());
        self.effects();
        self.request(rng);
        self.effects();
    }

    fn poll_submit(&mut self) -> Option<AppSubmit> {
        self.submits.pop()
    }

    fn submitted(&mut self, _now: Instant, tag: u64, result: Result<MsgId, SubmitError>) {
        self.submits.submitted(&mut self.core, tag, result);
        self.effects();
    }

    fn next_wake(&self) -> Option<Instant> {
        (!self.is_idle()).then_some(self.now + Duration::from_millis(10))
    }

    fn is_idle(&self) -> bool {
        self.now >= self.stop_at && self.core.is_idle() && self.submits.is_empty()
    }
}

struct Run {
    violations: Vec<String>,
    lck: Vec<checker::Violation>,
    unexpected: Vec<String>,
    told: usize,
    deadlocks: usize,
    released: usize,
    resent: usize,
    checks: u64,
}

fn run(seed: u64, defects: LckDefects) -> Run {
    if std::env::var_os("AIS_SIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ais_core=debug")
            .with_writer(std::io::stderr)
            .try_init();
    }
    let schedule = common::sim::random_schedule(seed);
    let log: Log = Arc::default();
    let stop_at = schedule.faults_end();
    let nodes = schedule.nodes;
    let factory_log = Arc::clone(&log);
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, _incarnation| {
            Box::new(LckApp::new(
                node,
                Arc::clone(&factory_log),
                defects,
                stop_at,
                nodes,
            ))
        }),
    );
    let outcome = sim.run();
    let violations = common::sim::totem_violations(&outcome, &schedule);
    let shared = std::mem::take(&mut *log.lock().unwrap());
    let checks = shared.checker.checks;
    Run {
        violations,
        lck: shared.checker.finish(),
        unexpected: shared.unexpected,
        told: shared.told,
        deadlocks: shared.deadlocks,
        released: shared.released,
        resent: shared.resent,
        checks,
    }
}

#[test]
fn locks_stay_exclusive_quorate_and_deadlock_free_under_seeded_faults() {
    let (mut told, mut deadlocks, mut released, mut resent, mut checks) = (0, 0, 0, 0, 0);
    let seeds = common::sim::seeds(1000);
    let runs = seeds.end - seeds.start;
    common::sim::assert_every_seed_passes(seeds, |seed| {
        let r = run(seed, LckDefects::default());
        told += r.told;
        deadlocks += r.deadlocks;
        released += r.released;
        resent += r.resent;
        checks += r.checks;
        r.violations
            .into_iter()
            .chain(r.lck.iter().map(ToString::to_string))
            .chain(r.unexpected)
            .collect()
    });
    // The clients did lock, and met deadlocks: the checker had things to judge.
    assert!(
        told as u64 >= 10 * runs,
        "too few grants told: {told} in {runs} runs"
    );
    assert!(deadlocks > 0, "no deadlock in {runs} runs");
    assert!(
        released as u64 >= runs / 10,
        "too few operator releases: {released} in {runs} runs"
    );
    // Lock requests overtaken by a configuration change were sent again (and judged).
    assert!(
        runs < 100 || resent > 0,
        "no lock request sent again in {runs} runs"
    );
    eprintln!("{resent} lock requests sent again in {runs} runs");
    assert!(
        checks >= 100 * runs,
        "too few checks: {checks} in {runs} runs"
    );
}

fn caught(defects: LckDefects, property: Property) -> usize {
    (0..60)
        .filter(|&seed| {
            run(seed, defects)
                .lck
                .iter()
                .any(|v| v.property == property)
        })
        .count()
}

#[test]
fn the_checker_catches_a_service_without_deadlock_detection() {
    let defects = LckDefects {
        table: TableDefects {
            no_deadlock_detection: true,
            ..TableDefects::default()
        },
        ..LckDefects::default()
    };
    assert!(caught(defects, Property::DeadlockComplete) > 0);
}

#[test]
fn the_checker_catches_false_deadlocks() {
    let defects = LckDefects {
        table: TableDefects {
            false_deadlock: true,
            ..TableDefects::default()
        },
        ..LckDefects::default()
    };
    assert!(caught(defects, Property::DeadlockSound) > 0);
}

#[test]
fn the_checker_catches_an_ex_granted_beside_a_pr() {
    let defects = LckDefects {
        table: TableDefects {
            ex_beside_pr: true,
            ..TableDefects::default()
        },
        ..LckDefects::default()
    };
    assert!(caught(defects, Property::Exclusive) > 0);
}

#[test]
fn the_checker_catches_grants_without_quorum() {
    let defects = LckDefects {
        ignore_quorum: true,
        ..LckDefects::default()
    };
    assert!(caught(defects, Property::Quorum) > 0);
}

#[test]
fn the_checker_catches_locks_kept_for_departed_holders() {
    let defects = LckDefects {
        keep_departed: true,
        ..LckDefects::default()
    };
    assert!(caught(defects, Property::DeadHolder) > 0);
}

#[test]
fn the_checker_catches_a_merge_that_keeps_the_local_table() {
    let defects = LckDefects {
        keep_local: true,
        ..LckDefects::default()
    };
    assert!(caught(defects, Property::Identical) > 0);
}
