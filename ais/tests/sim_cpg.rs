//! The executive core under the seeded simulator: every simulated node runs an [`ExecCore`]
//! with CPG and EVS above its Totem core, simulated client processes connect, join, send,
//! leave and die, and the CPG checker (`ais_core::services::cpg::checker`) judges what every
//! process was told, beside the simulator's own EVS checker on the Totem log.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_cpg` replays one
//! schedule, `AIS_SIM_SEEDS=N` runs N schedules (the default is sized for CI; docs/simulator.md
//! has the longer sweep).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use ais_core::exec::{ConnId, Effect, ExecCore, Origin};
use ais_core::services::cpg::checker::{self, Cause, Conf, Property, Record, Told};
use ais_core::services::cpg::{Cpg, Defects};
use ais_core::services::evs::Evs;
use ais_proto::cpg::{Callback, CpgAddress, CpgProtocol, Request, Response};
use ais_proto::ipc::{Guarantee, Protocol, Reply, Request as IpcRequest};
use bytes::Bytes;
use rand::{Rng, RngCore};
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId, Priority};
use totem_sim::net::Faults;
use totem_sim::sim::{App, AppSubmit, NodeFault, Schedule, Sim};

/// What the simulated processes do.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// Random: processes connect, join and leave two groups, send, and die, until the
    /// schedule's faults end.
    Random,
    /// One process per node joins group "g" at once; the process of `sender` sends every
    /// `every` until the faults end; nobody leaves.
    Sender { sender: u32, every: Duration },
}

/// What all nodes' processes were told, and who is in which group now.
#[derive(Default)]
struct Shared {
    records: Vec<Record>,
    /// Per node: its processes in their groups now (from their own views).
    joined: BTreeMap<u32, BTreeSet<(Bytes, CpgAddress)>>,
}

#[derive(Debug, Clone)]
enum Op {
    Hello,
    Join,
    Leave,
    Mcast,
}

struct Client {
    conn: ConnId,
    pid: u32,
    alive: bool,
    outstanding: Option<(u64, Op)>,
    /// Its current view of each group it is in.
    views: BTreeMap<Bytes, Vec<CpgAddress>>,
    sent: u32,
}

struct SimExec {
    node: NodeId,
    incarnation: u32,
    core: ExecCore,
    shared: Rc<RefCell<Shared>>,
    workload: Workload,
    stop_at: Instant,
    stopped: bool,
    clients: Vec<Client>,
    next_conn: ConnId,
    next_req: u64,
    submits: VecDeque<AppSubmit>,
    origins: BTreeMap<u64, Origin>,
    next_tag: u64,
    cause: Cause,
    conf: Conf,
    local: u64,
    wake_at: Instant,
}

const GROUPS: [&[u8]; 2] = [b"g", b"h"];
const MAX_CLIENTS: usize = 3;

impl SimExec {
    fn new(
        node: NodeId,
        incarnation: u32,
        defects: Defects,
        shared: Rc<RefCell<Shared>>,
        workload: Workload,
        stop_at: Instant,
    ) -> SimExec {
        shared.borrow_mut().joined.insert(node.0, BTreeSet::new());
        SimExec {
            node,
            incarnation,
            core: ExecCore::new(
                node,
                vec![Box::new(Cpg::with_defects(defects)), Box::new(Evs::new())],
            ),
            shared,
            workload,
            stop_at,
            stopped: false,
            clients: Vec::new(),
            next_conn: 1,
            next_req: 1,
            submits: VecDeque::new(),
            origins: BTreeMap::new(),
            next_tag: 1,
            cause: Cause::Local(node.0, 0),
            conf: Conf::default(),
            local: 0,
            wake_at: Instant(0),
        }
    }

    fn local_cause(&mut self) -> Cause {
        self.local += 1;
        Cause::Local(self.node.0, self.local)
    }

    fn request(&mut self, i: usize, op: Op, req: IpcRequest<Request>) {
        let id = self.next_req;
        self.next_req += 1;
        self.clients[i].outstanding = Some((id, op));
        let conn = self.clients[i].conn;
        self.cause = self.local_cause();
        self.core.request_value(conn, id, &req);
        self.effects();
    }

    fn connect(&mut self) -> usize {
        let conn = self.next_conn;
        self.next_conn += 1;
        let pid = 1000 * (self.incarnation + 1) + conn as u32;
        self.core.connected(conn, pid);
        self.clients.push(Client {
            conn,
            pid,
            alive: true,
            outstanding: None,
            views: BTreeMap::new(),
            sent: 0,
        });
        let i = self.clients.len() - 1;
        self.request(
            i,
            Op::Hello,
            IpcRequest::Hello {
                version: ais_proto::ipc::VERSION,
                service: CpgProtocol::ID,
            },
        );
        i
    }

    fn mcast(&mut self, i: usize, group: &'static [u8]) {
        let c = &mut self.clients[i];
        c.sent += 1;
        let data = format!("{}/{}/{}", self.node.0, c.pid, c.sent);
        self.request(
            i,
            Op::Mcast,
            IpcRequest::Service(Request::Mcast {
                group: Bytes::from_static(group),
                guarantee: Guarantee::Agreed,
                data: Bytes::from(data),
            }),
        );
    }

    fn act_randomly(&mut self, rng: &mut dyn RngCore) {
        let alive = self.clients.iter().filter(|c| c.alive).count();
        if alive < MAX_CLIENTS && rng.random_bool(0.2) {
            self.connect();
            return;
        }
        let idle: Vec<usize> = (0..self.clients.len())
            .filter(|&i| self.clients[i].alive && self.clients[i].outstanding.is_none())
            .collect();
        if idle.is_empty() {
            return;
        }
        let i = idle[rng.random_range(0..idle.len())];
        if rng.random_bool(0.04) {
            // The process dies.
            self.clients[i].alive = false;
            self.clients[i].views.clear();
            let conn = self.clients[i].conn;
            self.cause = self.local_cause();
            self.core.disconnected(conn);
            self.effects();
            return;
        }
        let group = GROUPS[rng.random_range(0..GROUPS.len())];
        let g = Bytes::from_static(group);
        if !self.clients[i].views.contains_key(&g) {
            self.request(i, Op::Join, IpcRequest::Service(Request::Join { group: g }));
        } else if rng.random_bool(0.85) {
            self.mcast(i, group);
        } else {
            self.request(
                i,
                Op::Leave,
                IpcRequest::Service(Request::Leave { group: g }),
            );
        }
    }

    /// Carries out the core's effects.
    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let Some((conn, id, resp)) = e.reply::<Response>() {
                if let Some(c) = self.clients.iter_mut().find(|c| c.conn == conn)
                    && c.outstanding.as_ref().is_some_and(|(i, _)| *i == id)
                {
                    let (_, op) = c.outstanding.take().expect("checked");
                    if matches!(op, Op::Hello) {
                        assert_eq!(resp, Reply::Ok, "hello refused");
                    }
                }
                continue;
            }
            if let Some((conn, cb)) = e.callback::<Callback>() {
                self.callback(conn, cb);
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    self.origins.insert(tag, origin);
                    self.submits.push_back(AppSubmit {
                        tag,
                        prio: Priority::default(),
                        kind,
                        payload: msg,
                    });
                }
                other => panic!("this workload makes no {other:?}"),
            }
        }
        let mut now: BTreeSet<(Bytes, CpgAddress)> = BTreeSet::new();
        for c in self.clients.iter().filter(|c| c.alive) {
            for g in c.views.keys() {
                now.insert((
                    g.clone(),
                    CpgAddress {
                        node: self.node.0,
                        pid: c.pid,
                    },
                ));
            }
        }
        self.shared.borrow_mut().joined.insert(self.node.0, now);
    }

    fn callback(&mut self, conn: ConnId, cb: Callback) {
        let Some(c) = self.clients.iter_mut().find(|c| c.conn == conn) else {
            panic!("callback for unknown connection {conn}");
        };
        let me = CpgAddress {
            node: self.node.0,
            pid: c.pid,
        };
        let (group, told) = match cb {
            Callback::ConfChg {
                group,
                members,
                left,
                joined,
            } => {
                if members.contains(&me) {
                    c.views.insert(group.clone(), members.clone());
                } else {
                    c.views.remove(&group);
                }
                (
                    group,
                    Told::View {
                        members,
                        joined,
                        left,
                    },
                )
            }
            Callback::Deliver {
                group,
                sender,
                data,
            } => (group, Told::Deliver { sender, data }),
            other => panic!("unexpected callback {other:?}"),
        };
        assert!(c.alive, "callback to a closed connection");
        self.shared.borrow_mut().records.push(Record {
            process: me,
            conf: self.conf.clone(),
            group,
            cause: self.cause,
            told,
        });
    }
}

impl App for SimExec {
    fn event(&mut self, _now: Instant, event: &Event) {
        self.cause = match event {
            Event::Deliver(d) => Cause::Message(d.id),
            Event::ConfigChange(c) => {
                self.conf = Conf {
                    ring: c.ring,
                    transitional: (c.kind == totem_dpdk::srp::ConfigKind::Transitional)
                        .then(|| c.members.iter().map(|n| n.0).collect()),
                };
                Cause::Config(c.ring)
            }
            _ => self.local_cause(),
        };
        self.core.totem(event);
        self.effects();
    }

    fn wake(&mut self, now: Instant, rng: &mut dyn RngCore) {
        self.core.tick(now.as_nanos());
        self.effects();
        if now >= self.stop_at {
            self.stopped = true;
        }
        if !self.stopped {
            match self.workload {
                Workload::Random => self.act_randomly(rng),
                Workload::Sender { sender, .. } => {
                    if self.clients.is_empty() {
                        self.connect();
                    } else if self.clients[0].outstanding.is_none() {
                        let g = Bytes::from_static(b"g");
                        if !self.clients[0].views.contains_key(&g) {
                            if self.clients[0].sent == 0 {
                                self.request(
                                    0,
                                    Op::Join,
                                    IpcRequest::Service(Request::Join { group: g }),
                                );
                                self.clients[0].sent = 1;
                            }
                        } else if self.node.0 == sender {
                            self.mcast(0, b"g");
                        }
                    }
                }
            }
        }
        let gap = match self.workload {
            Workload::Random => Duration::from_millis(rng.random_range(1..=40)),
            Workload::Sender { every, .. } => every,
        };
        self.wake_at = now + gap;
    }

    fn poll_submit(&mut self) -> Option<AppSubmit> {
        self.submits.pop_front()
    }

    fn submitted(&mut self, _now: Instant, tag: u64, result: Result<MsgId, SubmitError>) {
        let origin = self.origins.remove(&tag).expect("a known tag");
        self.cause = self.local_cause();
        self.core.submitted(origin, result);
        self.effects();
    }

    fn next_wake(&self) -> Option<Instant> {
        (!self.is_idle()).then_some(self.wake_at)
    }

    fn is_idle(&self) -> bool {
        self.stopped
            && self.core.is_idle()
            && self.submits.is_empty()
            && self
                .clients
                .iter()
                .all(|c| !c.alive || c.outstanding.is_none())
    }
}

/// One checked run.
struct Run {
    violations: Vec<String>,
    cpg: Vec<checker::Violation>,
    deliveries: usize,
    views: usize,
}

fn run(schedule: Schedule, workload: Workload, defects: Defects) -> Run {
    let shared = Rc::new(RefCell::new(Shared::default()));
    let stop_at = schedule.faults_end();
    let factory_shared = Rc::clone(&shared);
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, incarnation| {
            Box::new(SimExec::new(
                node,
                incarnation,
                defects,
                Rc::clone(&factory_shared),
                workload,
                stop_at,
            ))
        }),
    );
    let outcome = sim.run();
    let violations = common::sim::totem_violations(&outcome, &schedule);

    let shared = shared.borrow();
    // Nodes down at the end: their processes are gone.
    let down = common::sim::down_at_end(&schedule);
    let settled = outcome.drained.then(|| {
        let mut groups: BTreeMap<Bytes, BTreeSet<CpgAddress>> = BTreeMap::new();
        for (node, set) in &shared.joined {
            if down.contains(node) {
                continue;
            }
            for (g, a) in set {
                groups.entry(g.clone()).or_default().insert(*a);
            }
        }
        groups
    });
    let cpg = checker::check(&shared.records, settled.as_ref());
    if std::env::var_os("AIS_SIM_DUMP").is_some() {
        for r in &shared.records {
            eprintln!("{r:?}");
        }
        for e in &outcome.log {
            eprintln!("{e:?}");
        }
    }
    Run {
        violations,
        cpg,
        deliveries: shared
            .records
            .iter()
            .filter(|r| matches!(r.told, Told::Deliver { .. }))
            .count(),
        views: shared
            .records
            .iter()
            .filter(|r| matches!(r.told, Told::View { .. }))
            .count(),
    }
}

#[test]
fn cpg_keeps_virtual_synchrony_under_seeded_faults() {
    let mut totals = (0usize, 0usize);
    common::sim::assert_every_seed_passes(common::sim::seeds(3000), |seed| {
        let r = run(
            common::sim::random_schedule(seed),
            Workload::Random,
            Defects::default(),
        );
        totals.0 += r.deliveries;
        totals.1 += r.views;
        r.violations
            .into_iter()
            .chain(r.cpg.iter().map(|v| v.detail.clone()))
            .collect()
    });
    // The workload did something worth checking.
    assert!(
        totals.0 > 1000 && totals.1 > 1000,
        "too little traffic: {totals:?}"
    );
}

/// The same with the token paced at 1 ms, as `aisexec` runs by default.
#[test]
fn cpg_keeps_virtual_synchrony_with_a_paced_token() {
    let mut deliveries = 0;
    common::sim::assert_every_seed_passes(common::sim::seeds(300), |seed| {
        let mut schedule = common::sim::random_schedule(seed);
        schedule.token_pace = Duration::from_millis(1);
        let r = run(schedule, Workload::Random, Defects::default());
        deliveries += r.deliveries;
        r.violations
            .into_iter()
            .chain(r.cpg.iter().map(|v| v.detail.clone()))
            .collect()
    });
    assert!(deliveries > 1000, "too little traffic: {deliveries}");
}

/// Three nodes, a process on each in group "g", the one on node 3 sending every 20 ms; node
/// 3's process is paused past the token timeout, then resumes and merges back, four times.
fn pause_schedule(seed: u64) -> Schedule {
    let mut s = common::sim::random_schedule(seed);
    s.nodes = 3;
    s.late.clear();
    s.faults = Faults::default();
    s.lossy_receiver = None;
    s.node_faults = (0..4)
        .map(|i| {
            (
                Instant(0) + Duration::from_millis(300 + 1200 * i),
                NodeFault::Pause(3, Duration::from_millis(600)),
            )
        })
        .collect();
    s
}

const PAUSE_SENDER: Workload = Workload::Sender {
    sender: 3,
    every: Duration::from_millis(20),
};

#[test]
fn a_merge_delivers_nothing_from_outside_the_view() {
    for seed in 0..8 {
        let r = run(pause_schedule(seed), PAUSE_SENDER, Defects::default());
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.cpg.is_empty(), "seed {seed}: {:?}", r.cpg);
        assert!(
            r.deliveries > 100,
            "seed {seed}: {} deliveries",
            r.deliveries
        );
    }
}

/// The same schedules with the old CPG (no sync barrier, no membership check on delivery):
/// the merge-time delivery from a non-member shows, and the checker names it.
#[test]
fn the_old_cpg_delivers_from_outside_the_view_after_a_merge() {
    let old = Defects {
        deliver_from_non_members: true,
        no_sync: true,
    };
    let caught = (0..8)
        .filter(|&seed| {
            let r = run(pause_schedule(seed), PAUSE_SENDER, old);
            r.cpg.iter().any(|v| v.property == Property::SenderInView)
        })
        .count();
    assert!(caught > 0, "no schedule showed the defect");
}

/// A CPG that checks membership but has no sync barrier (join lists applied one by one as
/// they arrive, never rebuilt): a restarted node's old processes stay in the views forever,
/// and views diverge. The checker must catch that too (it reports views that never converge,
/// and deliveries outside the views the processes were told of).
#[test]
fn the_checker_catches_a_cpg_without_the_barrier() {
    let defects = Defects {
        deliver_from_non_members: false,
        no_sync: true,
    };
    let mut caught = BTreeSet::new();
    for seed in 0..200 {
        let r = run(
            common::sim::random_schedule(seed),
            Workload::Random,
            defects,
        );
        caught.extend(r.cpg.iter().map(|v| v.property));
    }
    eprintln!("a CPG without the barrier: {caught:?}");
    assert!(!caught.is_empty(), "200 schedules and nothing caught");
}
