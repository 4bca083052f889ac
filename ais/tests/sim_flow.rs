//! The flow control from the clients' outboxes (`ais_core::exec::flow`) under the seeded
//! simulator: every simulated node runs an [`ExecCore`] with CPG, one client process per node
//! joins a group and multicasts, and its outbox is modelled (each callback queued, the
//! process reading fast, slowly or not at all, switching at random), so nodes become
//! backlogged and recover while the schedule's faults partition, merge, pause and restart
//! them. The checker (`ais_core::exec::flow::checker`) judges what every member counted as
//! backlogged; two deliberately broken cores show it catches a lost announcement and a stale
//! one.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_flow` replays one
//! schedule, `AIS_SIM_SEEDS=N` runs N schedules.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use ais_core::exec::flow::checker::{self, Final, Property, Record};
use ais_core::exec::flow::{OutboxDepth, OutboxLimits};
use ais_core::exec::{ConnId, Effect, ExecCore, FlowDefects};
use ais_core::services::cpg::Cpg;
use ais_proto::cpg::{Callback, CpgProtocol, Request, Response};
use ais_proto::ipc::{AisError, Guarantee, Protocol, Reply, Request as IpcRequest};
use bytes::Bytes;
use rand::{Rng, RngCore};
use totem_dpdk::srp::{ConfigKind, Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId};
use totem_sim::sim::{App, AppSubmit, Schedule, Sim};

/// Small marks so that a few dozen callbacks make a node backlogged.
const LIMITS: OutboxLimits = OutboxLimits {
    high_packets: 12,
    high_bytes: u64::MAX,
    low_packets: 4,
    low_bytes: u64::MAX,
    stall_ns: 400_000_000,
};

/// How the node's client process reads its callbacks at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Everything waiting, at every wake-up.
    Fast,
    /// At most one packet per wake-up.
    Slow,
    /// Nothing (after `stall_ns` it no longer holds the senders).
    Stopped,
}

/// What the nodes held, for the checker.
#[derive(Default)]
struct Shared {
    records: Vec<Record>,
    /// Per node, its latest incarnation's final state.
    finals: BTreeMap<u32, Final>,
    /// Times any node's gate was on at an observation, and multicasts refused TRY_AGAIN.
    gate_on: u64,
    refused: u64,
}

struct SimExec {
    node: NodeId,
    core: ExecCore,
    shared: Rc<RefCell<Shared>>,
    stop_at: Instant,
    stopped: bool,
    conn: ConnId,
    /// A request is waiting for its answer.
    outstanding: bool,
    joined: bool,
    join_sent: bool,
    sent: u64,
    /// Callbacks waiting in the modelled outbox, and how many the process took so far.
    outbox: u64,
    taken: u64,
    reader: Reader,
    submits: common::sim::Submits,
    /// The regular configuration this node is in (None while transitional).
    regular: Option<(totem_dpdk::RingId, BTreeSet<u32>)>,
    wake_at: Instant,
}

const CONN: ConnId = 1;

impl SimExec {
    fn new(
        node: NodeId,
        defects: FlowDefects,
        shared: Rc<RefCell<Shared>>,
        stop_at: Instant,
    ) -> SimExec {
        let mut core = ExecCore::new(node, vec![Box::new(Cpg::new())]);
        core.set_outbox_limits(LIMITS);
        core.set_flow_defects(defects);
        let mut s = SimExec {
            node,
            core,
            shared,
            stop_at,
            stopped: false,
            conn: CONN,
            outstanding: false,
            joined: false,
            join_sent: false,
            sent: 0,
            outbox: 0,
            taken: 0,
            reader: Reader::Fast,
            submits: common::sim::Submits::default(),
            regular: None,
            wake_at: Instant(0),
        };
        s.core.connected(s.conn, 1000 + node.0);
        s.request(IpcRequest::Hello {
            version: ais_proto::ipc::VERSION,
            service: CpgProtocol::ID,
        });
        s
    }

    fn request(&mut self, req: IpcRequest<Request>) {
        self.outstanding = true;
        self.sent += 1;
        self.core.request_value(self.conn, self.sent, &req);
        self.effects();
    }

    /// Carries out the core's effects; every answer and callback goes through the outbox.
    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let Some((_, id, resp)) = e.reply::<Response>() {
                if id == self.sent {
                    self.outstanding = false;
                }
                match resp {
                    Reply::Error(AisError::TryAgain) => self.shared.borrow_mut().refused += 1,
                    Reply::Ok | Reply::Service(_) => {}
                    other => panic!("node {}: unexpected answer {other:?}", self.node),
                }
                self.outbox += 1;
                continue;
            }
            if let Some((_, cb)) = e.callback::<Callback>() {
                if let Callback::ConfChg { members, .. } = &cb
                    && members.iter().any(|a| a.node == self.node.0)
                {
                    self.joined = true;
                }
                self.outbox += 1;
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => self.submits.push(origin, kind, msg),
                other => panic!("this workload makes no {other:?}"),
            }
        }
        self.record_final();
    }

    fn record_final(&mut self) {
        let Some((ring, _)) = &self.regular else {
            return;
        };
        let (gate_on, backlogged) = self.core.backlog_state();
        let fin = Final {
            node: self.node.0,
            ring: *ring,
            gate_on,
            backlogged: backlogged.iter().map(|n| n.0).collect(),
        };
        self.shared.borrow_mut().finals.insert(self.node.0, fin);
    }

    /// The process reads, then the runtime reports the outbox to the core.
    fn observe(&mut self, rng: &mut dyn RngCore) {
        if !self.stopped && rng.random_bool(0.05) {
            self.reader = match rng.random_range(0..3) {
                0 => Reader::Fast,
                1 => Reader::Slow,
                _ => Reader::Stopped,
            };
        }
        let read = match self.reader {
            Reader::Fast => self.outbox,
            Reader::Slow => self.outbox.min(1),
            Reader::Stopped => 0,
        };
        self.outbox -= read;
        self.taken += read;
        self.core.outboxes(&[OutboxDepth {
            conn: self.conn,
            packets: self.outbox,
            bytes: self.outbox * 100,
            taken: self.taken,
        }]);
        if self.core.backlog_state().0 {
            self.shared.borrow_mut().gate_on += 1;
        }
        self.effects();
    }
}

impl App for SimExec {
    fn event(&mut self, _now: Instant, event: &Event) {
        if let Event::ConfigChange(c) = event {
            self.regular = (c.kind == ConfigKind::Regular)
                .then(|| (c.ring, c.members.iter().map(|n| n.0).collect()));
        }
        self.core.totem(event);
        self.effects();
        if let (Event::Deliver(d), Some((ring, members))) = (event, &self.regular)
            && d.ring == *ring
        {
            let (_, backlogged) = self.core.backlog_state();
            let record = Record {
                node: self.node.0,
                ring: *ring,
                members: members.clone(),
                msg: d.id,
                backlogged: backlogged.iter().map(|n| n.0).collect(),
            };
            self.shared.borrow_mut().records.push(record);
        }
    }

    fn wake(&mut self, now: Instant, rng: &mut dyn RngCore) {
        self.core.tick(now.as_nanos());
        self.effects();
        if now >= self.stop_at && !self.stopped {
            // The last observation: the process ends reading fast, slowly or not at all,
            // so some nodes end backlogged and some do not.
            self.stopped = true;
        }
        self.observe(rng);
        if !self.stopped && !self.outstanding {
            if !self.join_sent && !self.joined {
                self.join_sent = true;
                self.request(IpcRequest::Service(Request::Join {
                    group: Bytes::from_static(b"g"),
                }));
            } else if self.joined && rng.random_bool(0.8) {
                let data = format!("{}/{}", self.node.0, self.sent);
                self.request(IpcRequest::Service(Request::Mcast {
                    group: Bytes::from_static(b"g"),
                    guarantee: Guarantee::Agreed,
                    data: Bytes::from(data),
                }));
            }
        }
        self.wake_at = now + Duration::from_millis(rng.random_range(1..=15));
    }

    fn poll_submit(&mut self) -> Option<AppSubmit> {
        self.submits.pop()
    }

    fn submitted(&mut self, _now: Instant, tag: u64, result: Result<MsgId, SubmitError>) {
        self.submits.submitted(&mut self.core, tag, result);
        self.effects();
    }

    fn next_wake(&self) -> Option<Instant> {
        (!self.stopped).then_some(self.wake_at)
    }

    fn is_idle(&self) -> bool {
        self.stopped && self.core.is_idle() && self.submits.is_empty()
    }
}

/// One checked run.
struct Run {
    totem: Vec<String>,
    flow: Vec<checker::Violation>,
    gate_on: u64,
    refused: u64,
    /// Surviving nodes that ended backlogged in a run that settled (the final check then
    /// judges a backlog, not only its absence).
    ended_on: usize,
}

fn run(schedule: &Schedule, defects: FlowDefects) -> Run {
    let shared = Rc::new(RefCell::new(Shared::default()));
    let stop_at = schedule.faults_end();
    let factory_shared = Rc::clone(&shared);
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, _incarnation| {
            // A restarted node starts afresh: its old incarnation's final state is gone.
            factory_shared.borrow_mut().finals.remove(&node.0);
            Box::new(SimExec::new(
                node,
                defects,
                Rc::clone(&factory_shared),
                stop_at,
            ))
        }),
    );
    let outcome = sim.run();
    let totem = common::sim::totem_violations(&outcome, schedule);
    let shared = shared.borrow();
    let down = common::sim::down_at_end(schedule);
    let finals: Vec<Final> = shared
        .finals
        .values()
        .filter(|f| !down.contains(&f.node))
        .cloned()
        .collect();
    let flow = checker::check(&shared.records, outcome.drained.then_some(&finals[..]));
    let ended_on = if outcome.drained {
        finals.iter().filter(|f| f.gate_on).count()
    } else {
        0
    };
    if std::env::var_os("AIS_SIM_DUMP").is_some() {
        for (t, f) in &schedule.node_faults {
            eprintln!("fault {t:?} {f:?}");
        }
        for r in &shared.records {
            eprintln!("{r:?}");
        }
    }
    Run {
        totem,
        flow,
        gate_on: shared.gate_on,
        refused: shared.refused,
        ended_on,
    }
}

#[test]
fn members_agree_on_who_is_backlogged_under_seeded_faults() {
    let mut totals = (0u64, 0u64, 0usize);
    common::sim::assert_every_seed_passes(common::sim::seeds(1000), |seed| {
        let r = run(&common::sim::random_schedule(seed), FlowDefects::default());
        totals.0 += r.gate_on;
        totals.1 += r.refused;
        totals.2 += r.ended_on;
        r.totem
            .into_iter()
            .chain(r.flow.iter().map(ToString::to_string))
            .collect()
    });
    // The workload did make nodes backlogged, senders were held, and some runs ended with
    // backlogged nodes.
    eprintln!("observations with the gate on, TRY_AGAIN answers, nodes ending on: {totals:?}");
    assert!(
        totals.0 > 100 && totals.1 > 100 && totals.2 > 10,
        "too little backlog: {totals:?}"
    );
}

/// Runs the first 100 schedules with `defects` and returns the properties the checker
/// reported.
fn caught(defects: FlowDefects) -> BTreeSet<Property> {
    let mut caught = BTreeSet::new();
    for seed in 0..100 {
        let r = run(&common::sim::random_schedule(seed), defects);
        caught.extend(r.flow.iter().map(|v| v.property));
    }
    caught
}

/// A backlogged node that does not say so again in a new ring: members that merge in never
/// learn of its backlog.
#[test]
fn the_checker_catches_a_backlog_not_announced_again() {
    let found = caught(FlowDefects {
        no_reannounce: true,
        ..FlowDefects::default()
    });
    eprintln!("no re-announcement: {found:?}");
    assert!(found.contains(&Property::Settled), "{found:?}");
}

/// The set kept across configuration changes: a backlog that ended while its node was
/// partitioned away stays counted.
#[test]
fn the_checker_catches_a_backlog_kept_across_rings() {
    let found = caught(FlowDefects {
        kept_across_rings: true,
        ..FlowDefects::default()
    });
    eprintln!("kept across rings: {found:?}");
    assert!(!found.is_empty(), "100 schedules and nothing caught");
}
