//! CKPT under the seeded simulator: every simulated node runs an [`ExecCore`] with the
//! checkpoint service, and a client on each node opens one shared checkpoint, creates a
//! section of its own and appends numbered records to it (one write in flight, a new one
//! every 10 ms), and now and then overwrites a section every client writes. Crashes,
//! restarts, partitions, heals and message loss come from the simulator's random schedules.
//! The CKPT checker (`ais_core::services::ckpt::checker`) judges the replicas every node held
//! at each sync and the writes clients were told were done: replicas identical at every
//! member of a configuration, no acknowledged write lost while a node holding it lived.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_ckpt` replays
//! one schedule, `AIS_SIM_SEEDS=N` runs N (the default is sized for CI; docs/simulator.md
//! has the longer sweep).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ais_core::exec::{Effect, ExecCore};
use ais_core::services::ckpt::checker::{self, Observation, Property};
use ais_core::services::ckpt::replica::{MergeDefects, Replicas};
use ais_core::services::ckpt::{Ckpt, CkptConfig, CkptDefects, Observer};
use ais_proto::ckpt::{
    Attributes, CkptId, CkptProtocol, OPEN_CREATE, OPEN_READ, OPEN_WRITE, Request, Response,
    TIME_END, Update, WR_ALL_REPLICAS, WriteElement,
};
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply};
use bytes::Bytes;
use rand::RngCore;
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId, RingId};
use totem_sim::sim::{App, AppSubmit, Sim};

const CONN: u64 = 1;
/// Records per client section at most (8 bytes each).
const MAX_RECORDS: u64 = 400;

#[derive(Default)]
struct Shared {
    observations: Vec<Observation>,
    /// Answers a client did not expect.
    unexpected: Vec<String>,
    acked: usize,
    /// The checkpoint each client section was created in.
    homes: BTreeMap<Bytes, CkptId>,
}

type Log = Arc<Mutex<Shared>>;

struct Watch(Log);

impl Observer for Watch {
    fn activated(&mut self, node: u32, ring: RingId, members: &[NodeId], replicas: &Replicas) {
        self.0
            .lock()
            .unwrap()
            .observations
            .push(Observation::Activated {
                node,
                ring: (ring.rep.0, ring.seq),
                members: members.iter().map(|m| m.0).collect(),
                state: checker::state(replicas),
            });
    }

    fn applied(&mut self, _node: u32, _sender: u32, update: &Update) {
        if let Update::SectionCreate {
            id,
            section: Some(s),
            ..
        } = update
        {
            self.0.lock().unwrap().homes.insert(s.clone(), *id);
        }
    }
}

/// What the client does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Open,
    CreateOwn,
    CreateShared,
    Append(u64),
    Overwrite,
}

struct CkptApp {
    core: ExecCore,
    log: Log,
    node: u32,
    incarnation: u32,
    submits: common::sim::Submits,
    stop_at: Instant,
    now: Instant,
    /// Members of the last configuration Totem announced (transitional or regular).
    config: Vec<u32>,
    handle: u64,
    next: Op,
    inflight: Option<(u64, Op)>,
    next_id: u64,
    /// Operations done, records appended.
    ops: u64,
    appended: u64,
}

fn attrs() -> Attributes {
    Attributes {
        creation_flags: WR_ALL_REPLICAS,
        checkpoint_size: 64 * 4096,
        retention_duration: TIME_END,
        max_sections: 64,
        max_section_size: 4096,
        max_section_id_size: 32,
    }
}

impl CkptApp {
    fn new(
        node: NodeId,
        incarnation: u32,
        log: Log,
        defects: CkptDefects,
        stop_at: Instant,
    ) -> CkptApp {
        log.lock().unwrap().observations.push(Observation::Started {
            node: node.0,
            incarnation,
        });
        let service = Ckpt::with_defects(CkptConfig::default(), defects)
            .with_observer(Box::new(Watch(Arc::clone(&log))));
        let mut app = CkptApp {
            core: ExecCore::new(node, vec![Box::new(service)]),
            log,
            node: node.0,
            incarnation,
            submits: common::sim::Submits::default(),
            stop_at,
            now: Instant(0),
            config: Vec::new(),
            handle: 0,
            next: Op::Open,
            inflight: None,
            next_id: 2,
            ops: 0,
            appended: 0,
        };
        app.core.connected(CONN, 100);
        app.core.request_value(
            CONN,
            1,
            &ais_proto::ipc::Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service: CkptProtocol::ID,
            },
        );
        app.effects();
        app
    }

    fn own_section(&self) -> Bytes {
        Bytes::from(format!("n{}.{}", self.node, self.incarnation))
    }

    fn record(&self, k: u64) -> Bytes {
        let mut r = vec![self.node as u8, self.incarnation as u8];
        r.extend_from_slice(&(k as u16).to_le_bytes());
        r.extend_from_slice(b"rec!");
        Bytes::from(r)
    }

    fn request(&mut self) {
        if self.inflight.is_some() || self.now >= self.stop_at {
            return;
        }
        let op = self.next;
        let handle = self.handle;
        let req = match op {
            Op::Open => Request::Open {
                name: Bytes::from_static(b"sim"),
                flags: OPEN_CREATE | OPEN_READ | OPEN_WRITE,
                attributes: Some(attrs()),
            },
            Op::CreateOwn | Op::CreateShared => Request::SectionCreate {
                handle,
                section: Some(if op == Op::CreateOwn {
                    self.own_section()
                } else {
                    Bytes::from_static(b"shared")
                }),
                expiration_time: TIME_END,
                data: Bytes::new(),
            },
            Op::Append(k) => Request::Write {
                handle,
                elements: vec![WriteElement {
                    section: self.own_section(),
                    offset: 8 * k,
                    data: self.record(k),
                }],
            },
            Op::Overwrite => Request::Overwrite {
                handle,
                section: Bytes::from_static(b"shared"),
                data: self.record(self.ops),
            },
        };
        let id = self.next_id;
        self.next_id += 1;
        self.inflight = Some((id, op));
        self.core.request_value(CONN, id, &req);
    }

    /// The next operation after a successful one.
    fn done(&mut self, op: Op) {
        self.ops += 1;
        self.next = match op {
            Op::Open => Op::CreateOwn,
            Op::CreateOwn => Op::CreateShared,
            _ if self.ops.is_multiple_of(5) => Op::Overwrite,
            _ => Op::Append(self.appended.min(MAX_RECORDS)),
        };
    }

    fn answer(&mut self, id: u64, reply: Reply<Response>) {
        let Some((want, op)) = self.inflight else {
            return;
        };
        if want != id {
            return;
        }
        self.inflight = None;
        match (op, reply) {
            (Op::Open, Reply::Service(Response::Opened { handle })) => {
                self.handle = handle;
                self.done(op);
            }
            (Op::CreateOwn | Op::CreateShared, Reply::Service(Response::SectionCreated { .. }))
            | (Op::CreateShared, Reply::Error(AisError::Exist)) => self.done(op),
            (Op::Append(k), Reply::Ok) => {
                let section = self.own_section();
                let mut log = self.log.lock().unwrap();
                let ckpt = log.homes.get(&section).copied().unwrap_or_default();
                log.acked += 1;
                log.observations.push(Observation::Acked {
                    node: self.node,
                    ckpt,
                    section,
                    offset: 8 * k,
                    data: self.record(k),
                    holders: self.config.clone(),
                    ring_seq: self.core.ring().seq,
                });
                drop(log);
                self.appended = k + 1;
                self.done(op);
            }
            (Op::Overwrite, Reply::Ok) => self.done(op),
            // Refused at a configuration change or a full queue: again at the next wake.
            (_, Reply::Error(AisError::TryAgain)) => {}
            (op, other) => self.log.lock().unwrap().unexpected.push(format!(
                "node {} incarnation {}: {op:?} answered {other:?}",
                self.node, self.incarnation
            )),
        }
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let Some((CONN, id, reply)) = e.reply::<Response>() {
                self.answer(id, reply);
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => self.submits.push(origin, kind, msg),
                Effect::Send { .. } => {}
                other => panic!("CKPT makes no {other:?}"),
            }
        }
    }
}

impl App for CkptApp {
    fn event(&mut self, _now: Instant, event: &Event) {
        if let Event::ConfigChange(c) = event {
            // Safe delivery promises the members of the configuration it happens in.
            self.config = c.members.iter().map(|m| m.0).collect();
            if std::env::var_os("AIS_SIM_TRACE").is_some() {
                eprintln!(
                    "node {} {:?} {} {:?}",
                    self.node, c.kind, c.ring, self.config
                );
            }
        }
        self.core.totem(event);
        self.effects();
    }

    fn wake(&mut self, now: Instant, _rng: &mut dyn RngCore) {
        self.now = now;
        self.core.tick(now.as_nanos());
        self.effects();
        self.request();
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
        self.now >= self.stop_at
            && self.core.is_idle()
            && self.submits.is_empty()
            && self.inflight.is_none()
    }
}

struct Run {
    violations: Vec<String>,
    ckpt: Vec<checker::Violation>,
    unexpected: Vec<String>,
    acked: usize,
}

fn run(seed: u64, defects: CkptDefects) -> Run {
    if std::env::var_os("AIS_SIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ais_core=debug")
            .with_writer(std::io::stderr)
            .try_init();
    }
    let schedule = common::sim::random_schedule(seed);
    let log: Log = Arc::default();
    let stop_at = schedule.faults_end();
    let factory_log = Arc::clone(&log);
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, incarnation| {
            Box::new(CkptApp::new(
                node,
                incarnation,
                Arc::clone(&factory_log),
                defects,
                stop_at,
            ))
        }),
    );
    let outcome = sim.run();
    let violations = common::sim::totem_violations(&outcome, &schedule);
    let shared = log.lock().unwrap();
    if std::env::var_os("AIS_SIM_TRACE").is_some() {
        for o in &shared.observations {
            eprintln!("{o:?}");
        }
        eprintln!("end");
    }
    Run {
        violations,
        ckpt: checker::check(&shared.observations),
        unexpected: shared.unexpected.clone(),
        acked: shared.acked,
    }
}

#[test]
fn checkpoints_agree_and_keep_acknowledged_writes_under_seeded_faults() {
    let mut acked = 0;
    let seeds = common::sim::seeds(2000);
    let runs = seeds.end - seeds.start;
    common::sim::assert_every_seed_passes(seeds, |seed| {
        let r = run(seed, CkptDefects::default());
        acked += r.acked;
        r.violations
            .into_iter()
            .chain(r.ckpt.iter().map(ToString::to_string))
            .chain(r.unexpected)
            .collect()
    });
    // The clients did write: dozens of acknowledged writes per run on average.
    assert!(
        acked as u64 >= 20 * runs,
        "too few writes acknowledged: {acked} in {runs} runs"
    );
}

/// A merge that keeps each node's own copy: members disagree after a heal.
#[test]
fn the_checker_catches_a_merge_that_keeps_the_local_copy() {
    let defects = CkptDefects {
        merge: MergeDefects {
            keep_local: true,
            ..MergeDefects::default()
        },
    };
    let caught = (0..100)
        .filter(|&seed| {
            run(seed, defects)
                .ckpt
                .iter()
                .any(|v| v.property == Property::Identical)
        })
        .count();
    assert!(caught > 0, "no schedule showed the defect");
}

/// A merge that keeps the whole copy with the most changes: the other side's acknowledged
/// writes are lost.
#[test]
fn the_checker_catches_a_merge_that_drops_the_other_sides_writes() {
    let defects = CkptDefects {
        merge: MergeDefects {
            whole_copy: true,
            ..MergeDefects::default()
        },
    };
    let caught = (0..100)
        .filter(|&seed| {
            run(seed, defects)
                .ckpt
                .iter()
                .any(|v| v.property == Property::Durable)
        })
        .count();
    assert!(caught > 0, "no schedule showed the defect");
}
