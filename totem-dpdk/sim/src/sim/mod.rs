//! One deterministic simulation: N Totem nodes on a faulty simulated network, a random
//! workload, node faults, virtual time. The same [`Schedule`] always produces the same run,
//! bit for bit.
//!
//! The workload is either the simulator's own (random messages, [`Sim::new`]) or an
//! application per node ([`App`], [`Sim::with_apps`]): code that runs above each node's Totem
//! core (the executive core and its services, in the `ais` tests), sees its events, submits
//! messages and has its own timers; a crash drops it and a restart builds a new one.
//!
//! The parts: `schedule` (what determines a run, and drawing a random one), `workload` (the
//! simulator's random messages, or the applications), `network` (frames between the nodes),
//! `attack` (injected frames and their fate); the event loop is here.

mod attack;
mod network;
mod schedule;
mod workload;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use totem_dpdk::crypto::Protection;
use totem_dpdk::rrp::{FaultCause, NetSet, Rrp, RrpConfig, RrpEvent};
use totem_dpdk::srp::{Config, Dest, Event, FlowControl, MembState, Observation, Totem};
use totem_dpdk::{Duration, Instant, NodeId, RingId};

use self::attack::Injected;
pub use self::attack::{AttackStats, sim_key};
pub use self::schedule::{Egress, NetFault, NodeFault, NodeFaultKinds, Schedule, Sizes, Timers};
pub use self::workload::{App, AppFactory, AppSubmit, CoreCall};
use crate::log::LogEvent;
use crate::net::Link;
use crate::record;

/// What a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The event log, in the order events happened.
    pub log: Vec<LogEvent>,
    /// Problems the simulator itself saw (liveness, a duplicate token that had an effect).
    pub violations: Vec<String>,
    /// Messages accepted by Totem.
    pub sent: u64,
    /// Deliveries, summed over nodes.
    pub delivered: u64,
    /// Frames put on links (copies counted once per receiver).
    pub frames: u64,
    /// Submits refused with backpressure (and retried).
    pub backpressure: u64,
    /// Regular configurations installed, summed over nodes.
    pub configs: u64,
    /// Time from the end of all faults until every live node was in one ring with everything
    /// delivered.
    pub convergence: Duration,
    /// Virtual time at the end.
    pub end: Instant,
    /// The run converged: all live nodes in one ring, everything queued delivered.
    pub drained: bool,
    /// What the attacker injected and what became of it.
    pub attacks: AttackStats,
    /// Redundant rings: networks marked faulty, summed over nodes.
    pub nets_marked_faulty: u64,
    /// Redundant rings: networks re-enabled by themselves, summed over nodes.
    pub nets_restored: u64,
    /// Redundant rings: copies dropped as duplicates, summed over nodes.
    pub rrp_duplicates: u64,
    /// Tokens a representative kept until the pace (`Schedule::token_pace`), summed over
    /// nodes.
    pub tokens_paced: u64,
    /// Redundant rings: networks marked faulty by cause (lost, one-way, lossy), summed over
    /// nodes.
    pub faulty_causes: [u64; 3],
    /// Redundant rings: longest time from a network's fault to a node marking it faulty while
    /// the fault lasted.
    pub worst_detection: Duration,
    /// Redundant rings: longest time from a network working again to a node re-enabling it.
    pub worst_reenable: Duration,
    /// Frames dropped by a full egress queue ([`Schedule::egress`]).
    pub egress_dropped: u64,
}

#[derive(Debug)]
enum Action {
    Frame {
        to: usize,
        net: u8,
        frame: Bytes,
        injected: Option<Injected>,
    },
    Timer {
        node: usize,
    },
    Submit {
        node: usize,
    },
    Fault(NodeFault),
    Resume {
        node: usize,
    },
    AppWake {
        node: usize,
    },
    NetFault(NetFault),
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    order: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// How long a run with applications goes on after the cores converged.
const APP_SETTLE: Duration = Duration::from_millis(500);

/// One simulated node.
struct Node {
    totem: Option<Totem>,
    /// The redundant-ring layer (with more than one network).
    rrp: Option<Rrp>,
    timer_at: Option<Instant>,
    /// Highest ring sequence number the node persisted (survives crashes).
    persisted_ring_seq: u64,
    /// Next message counter (survives crashes, so ids never repeat).
    next_msg_no: u64,
    /// Submits refused with backpressure, waiting for `FlowControl::Clear`.
    waiting: u32,
    /// Submits this node still has to make.
    remaining: u32,
    /// Paused until the resume action; frames received meanwhile.
    paused: Option<VecDeque<(u8, Bytes, Option<Injected>)>>,
    /// Next nonce counter (persisted: survives crashes, so nonces never repeat).
    nonce_next: u64,
    /// Nonces of the frames this incarnation opened (to judge replays).
    seen: std::collections::HashSet<[u8; 12]>,
    /// The application above the core, with [`Sim::with_apps`].
    app: Option<Box<dyn App>>,
    /// Its pending wake-up.
    app_wake_at: Option<Instant>,
    /// Starts so far (the next incarnation number).
    incarnations: u32,
}

/// A running simulation.
pub struct Sim {
    schedule: Schedule,
    rng: ChaCha8Rng,
    now: Instant,
    order: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    link: Link,
    /// The same link once faults have stopped.
    clean: Link,
    /// Partition group of each node.
    groups: Vec<u8>,
    /// Directed links that lose everything.
    cut: Vec<(usize, usize)>,
    /// A partition waiting for the first node to enter recovery.
    armed: Option<(Vec<u8>, Duration)>,
    /// Frames seen on links, for the replay attack.
    history: VecDeque<Bytes>,
    /// Builds each node's application; `None`: the simulator's own random workload.
    apps: Option<AppFactory>,
    /// The faults of each network of a redundant ring.
    nets: Vec<NetFaults>,
    /// Nodes a node fault named so far (crashed, restarted, paused, started late).
    touched: Vec<bool>,
    /// A partition or a one-way node link happened (membership changes are then expected).
    topology_faulted: bool,
    /// Until when frames a held cut released are still arriving at each node: like a paused
    /// node's socket buffer, they are copies older than the redundant-ring layer's memory.
    released_until: Vec<Instant>,
    /// With [`Schedule::egress`]: when each node's queue on each network is empty again
    /// (index `node * networks + net`).
    egress_free: Vec<Instant>,
    /// Nodes paused so far: back from a pause, a node reads copies older than its
    /// redundant-ring layer's memory from its socket buffer (the core drops them).
    paused_ever: Vec<bool>,
    out: Outcome,
}

/// What is wrong with one network now.
#[derive(Debug, Clone, Default)]
struct NetFaults {
    down: bool,
    loss: f64,
    cut: Vec<(usize, usize)>,
    nic_down: Vec<usize>,
    /// Receivers whose frames on this network arrive late, and by how much.
    slow: Vec<(usize, Duration)>,
    /// A held cut: the most frames kept per receiver.
    hold: Option<usize>,
    /// Frames kept by the held cut, with their sender and receiver, released at `Up`.
    on_hold: Vec<(usize, usize, Bytes)>,
    /// How many of them each receiver has.
    on_hold_per: Vec<usize>,
    /// It had a fault at some time (the property "no membership change while a network works"
    /// holds while some network never had one).
    ever: bool,
    /// Since when it has a fault (`None`: clean).
    faulty_since: Option<Instant>,
    /// When it was last clean again.
    clean_since: Instant,
}

impl NetFaults {
    fn is_clean(&self) -> bool {
        !self.down
            && self.loss == 0.0
            && self.cut.is_empty()
            && self.nic_down.is_empty()
            && self.slow.is_empty()
            && self.hold.is_none()
    }
}

impl Sim {
    /// Builds the nodes (all start alone and form their ring through the membership
    /// protocol), the workload and the faults of `schedule`.
    pub fn new(schedule: Schedule) -> Sim {
        Sim::build(schedule, None)
    }

    /// Like [`Sim::new`], but the workload is an application per node built by `apps` (the
    /// schedule's `messages_per_node` is not used).
    pub fn with_apps(schedule: Schedule, apps: AppFactory) -> Sim {
        Sim::build(schedule, Some(apps))
    }

    fn build(schedule: Schedule, apps: Option<AppFactory>) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(schedule.seed);
        let workload = if apps.is_some() {
            0
        } else {
            schedule.messages_per_node
        };
        let n = schedule.nodes as usize;
        let mut sim = Sim {
            link: Link {
                faults: schedule.faults,
                ..Link::default()
            },
            clean: Link::default(),
            now: Instant(0),
            order: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            groups: vec![0; n],
            cut: Vec::new(),
            armed: None,
            history: VecDeque::new(),
            apps,
            nets: vec![NetFaults::default(); schedule.networks.max(1)],
            touched: vec![false; n],
            paused_ever: vec![false; n],
            released_until: vec![Instant(0); n],
            egress_free: vec![Instant(0); n * schedule.networks.max(1)],
            topology_faulted: false,
            out: Outcome::default(),
            rng: ChaCha8Rng::seed_from_u64(0),
            schedule,
        };
        sim.out
            .log
            .push(record::meta(&sim.schedule, &sim.config(NodeId(1), 0, 1, 0)));
        for _ in 0..n {
            sim.nodes.push(Node {
                totem: None,
                rrp: None,
                timer_at: None,
                persisted_ring_seq: 0,
                next_msg_no: 1,
                waiting: 0,
                remaining: workload,
                paused: None,
                nonce_next: 0,
                seen: std::collections::HashSet::new(),
                app: None,
                app_wake_at: None,
                incarnations: 0,
            });
        }
        for node in 0..n {
            for _ in 0..workload {
                let at = Instant(rng.random_range(0..=sim.schedule.submit_window.0));
                sim.push(at, Action::Submit { node });
            }
        }
        for (at, fault) in sim.schedule.node_faults.clone() {
            sim.push(at, Action::Fault(fault));
        }
        for (at, fault) in sim.schedule.net_faults.clone() {
            sim.push(at, Action::NetFault(fault));
        }
        for late in &sim.schedule.late {
            sim.touched[*late as usize - 1] = true;
        }
        sim.rng = rng;
        for node in 0..n {
            if !sim.schedule.late.contains(&(node as u32 + 1)) {
                sim.start(node);
            }
        }
        sim
    }

    fn config(&self, id: NodeId, ring_seq: u64, first_msg_no: u64, nonce: u64) -> Config {
        let mut cfg = Config::new(id, Vec::new());
        if self.schedule.crypto {
            cfg.protection = Protection::Encrypt;
            cfg.key = Some(sim_key());
            cfg.nonce_start = nonce;
        }
        cfg.max_frame_size = self.schedule.max_frame_size;
        cfg.max_queued_messages = self.schedule.max_queued_messages;
        cfg.ring_seq = ring_seq;
        cfg.first_msg_no = first_msg_no;
        cfg.observe = true;
        cfg.token_pace = self.schedule.token_pace;
        if let Some(t) = self.schedule.timers {
            cfg.token_timeout = t.token;
            cfg.consensus_timeout = t.consensus;
            cfg.join_timeout = t.join;
            cfg.merge_timeout = t.merge;
            cfg.pause_threshold = Duration(t.token.as_nanos() / 2);
        }
        cfg
    }

    fn start(&mut self, node: usize) {
        let id = NodeId(node as u32 + 1);
        let cfg = self.config(
            id,
            self.nodes[node].persisted_ring_seq,
            self.nodes[node].next_msg_no,
            self.nodes[node].nonce_next,
        );
        self.nodes[node].seen.clear();
        self.nodes[node].totem = Some(Totem::new(cfg, self.now).expect("valid simulated config"));
        self.nodes[node].rrp = (self.schedule.networks > 1).then(|| {
            let cfg = RrpConfig::new(self.schedule.networks, self.schedule.rrp_mode);
            let mut rrp = Rrp::new(cfg, id).expect("valid simulated rrp config");
            rrp.set_defect(self.schedule.rrp_defect);
            rrp
        });
        self.nodes[node].timer_at = None;
        let incarnation = self.nodes[node].incarnations;
        self.nodes[node].incarnations += 1;
        if let Some(factory) = &mut self.apps {
            self.nodes[node].app = Some(factory(id, incarnation));
            self.nodes[node].app_wake_at = None;
        }
        self.drain(node);
    }

    fn push(&mut self, at: Instant, action: Action) {
        self.order += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            order: self.order,
            action,
        }));
    }

    /// Runs to the end: every live node in one ring with everything delivered after the last
    /// fault, or the convergence bound.
    pub fn run(mut self) -> Outcome {
        let last_fault = self.schedule.faults_end();
        let deadline = last_fault + self.schedule.converge_bound;
        let mut settle_until: Option<Instant> = None;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > deadline {
                break;
            }
            self.now = next.at;
            match next.action {
                Action::Frame {
                    to,
                    net,
                    frame,
                    injected,
                } => self.on_frame(to, net, frame, injected),
                Action::Timer { node } => {
                    if self.nodes[node].timer_at == Some(self.now)
                        && self.nodes[node].paused.is_none()
                    {
                        self.nodes[node].timer_at = None;
                        if let Some(r) = self.nodes[node].rrp.as_mut() {
                            r.handle_timeout(self.now);
                        }
                        if let Some(t) = self.nodes[node].totem.as_mut() {
                            t.handle_timeout(self.now);
                            self.drain(node);
                        }
                    }
                }
                Action::Submit { node } => self.on_submit(node),
                Action::Fault(fault) => self.on_fault(fault),
                Action::Resume { node } => self.on_resume(node),
                Action::AppWake { node } => self.on_app_wake(node),
                Action::NetFault(fault) => self.on_net_fault(fault),
            }
            if self.armed.is_some()
                && self.nodes.iter().any(|n| {
                    n.totem
                        .as_ref()
                        .is_some_and(|t| t.state() == MembState::Recovery)
                })
            {
                let (groups, heal_after) = self.armed.take().expect("checked");
                self.groups = groups;
                self.push(self.now + heal_after, Action::Fault(NodeFault::Heal));
            }
            if let Some(until) = settle_until {
                if self.now >= until {
                    break;
                }
            } else if self.now >= last_fault && self.is_converged() {
                self.out.drained = true;
                self.out.convergence = self.now.saturating_since(last_fault);
                // A core is idle once it delivered what it received; with capped queues the
                // last frames may still wait in one, so such runs settle like applications.
                if self.apps.is_none() && self.schedule.egress.is_none() {
                    break;
                }
                // Applications: let the frames still on the links arrive (what an application
                // was told settles a little after the cores are idle).
                settle_until = Some(self.now + APP_SETTLE);
            }
        }
        self.out.end = self.now;
        if let Some(LogEvent::Meta(meta)) = self.out.log.first_mut() {
            meta.drained = Some(self.out.drained);
        }
        if !self.out.drained {
            let states: Vec<String> = self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| match &n.totem {
                    Some(t) => format!(
                        "node {}: {:?} ring {} members {:?} queued {}",
                        i + 1,
                        t.state(),
                        t.ring_id(),
                        t.members().iter().map(|m| m.0).collect::<Vec<_>>(),
                        t.queued_messages()
                    ),
                    None => format!("node {}: crashed", i + 1),
                })
                .collect();
            self.out.violations.push(format!(
                "liveness: not converged {} ms after faults stopped ({})",
                self.schedule.converge_bound.as_millis(),
                states.join("; ")
            ));
        }
        self.out
    }

    /// Every live node is operational in the same ring whose members are exactly the live
    /// nodes, has nothing queued or undelivered, and no submits are pending.
    fn is_converged(&self) -> bool {
        let live: Vec<NodeId> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.totem.is_some())
            .map(|(i, _)| NodeId(i as u32 + 1))
            .collect();
        let mut ring: Option<RingId> = None;
        for n in &self.nodes {
            let Some(t) = &n.totem else { continue };
            if n.paused.is_some() || n.remaining > 0 || n.waiting > 0 || !t.is_idle() {
                return false;
            }
            if n.app.as_ref().is_some_and(|a| !a.is_idle()) {
                return false;
            }
            if t.state() != MembState::Operational || t.members() != live.as_slice() {
                return false;
            }
            match ring {
                None => ring = Some(t.ring_id()),
                Some(r) if r != t.ring_id() => return false,
                Some(_) => {}
            }
        }
        true
    }

    fn on_fault(&mut self, fault: NodeFault) {
        match fault {
            NodeFault::Crash(id) => {
                let node = id as usize - 1;
                self.touched[node] = true;
                if let Some(t) = self.nodes[node].totem.take() {
                    self.nodes[node].rrp = None;
                    // The nonce lease survives the crash (the executive persists it).
                    self.nodes[node].nonce_next = t.stats().next_nonce;
                    self.nodes[node].paused = None;
                    self.nodes[node].remaining = 0;
                    self.nodes[node].waiting = 0;
                    self.nodes[node].app = None;
                    self.nodes[node].app_wake_at = None;
                    self.out.log.push(LogEvent::Crash {
                        t: self.now.as_nanos(),
                        node: NodeId(id),
                    });
                }
            }
            NodeFault::Start(id) => {
                let node = id as usize - 1;
                if self.nodes[node].totem.is_none() {
                    self.start(node);
                }
            }
            NodeFault::Restart(id) => {
                let node = id as usize - 1;
                self.touched[node] = true;
                if self.nodes[node].totem.is_none() {
                    self.out.log.push(LogEvent::Restart {
                        t: self.now.as_nanos(),
                        node: NodeId(id),
                    });
                    self.start(node);
                }
            }
            NodeFault::Pause(id, duration) => {
                let node = id as usize - 1;
                self.touched[node] = true;
                self.paused_ever[node] = true;
                if self.nodes[node].totem.is_some() && self.nodes[node].paused.is_none() {
                    self.nodes[node].paused = Some(VecDeque::new());
                    self.push(self.now + duration, Action::Resume { node });
                }
            }
            NodeFault::Partition(groups) => {
                self.topology_faulted = true;
                self.groups = groups;
            }
            NodeFault::OneWay(from, to) => {
                self.topology_faulted = true;
                self.cut.push((from as usize - 1, to as usize - 1));
            }
            NodeFault::PartitionDuringRecovery(groups, heal_after) => {
                self.topology_faulted = true;
                self.armed = Some((groups, heal_after));
            }
            NodeFault::Heal => {
                self.groups.iter_mut().for_each(|g| *g = 0);
                self.cut.clear();
            }
        }
    }

    fn on_net_fault(&mut self, fault: NetFault) {
        use dataplane::fault::Fault;
        let (net, fault) = fault.split();
        let Some(f) = self.nets.get_mut(usize::from(net)) else {
            return;
        };
        let node = |n: dataplane::NodeId| n.0 as usize - 1;
        let mut released = Vec::new();
        match fault {
            Fault::Down => f.down = true,
            Fault::Lossy(share) => f.loss = share,
            Fault::OneWay { from, to } => f.cut.push((node(from), node(to))),
            Fault::NicDown(n) => f.nic_down.push(node(n)),
            Fault::Delay { to, by } => {
                f.slow.push((node(to), Duration(by.as_nanos() as u64)));
            }
            Fault::Hold(limit) => f.hold = Some(limit),
            Fault::Up => {
                released = std::mem::take(&mut f.on_hold);
                *f = NetFaults {
                    ever: f.ever,
                    ..NetFaults::default()
                };
                f.clean_since = self.now;
            }
        }
        f.ever |= !f.is_clean();
        if f.is_clean() {
            f.faulty_since = None;
        } else if f.faulty_since.is_none() {
            f.faulty_since = Some(self.now);
        }
        // A held cut's queue lets its frames go in one burst, in order, at the link's pace
        // (its egress rate, if capped), ahead of what is sent after.
        let mut at = self.now + self.link.delay;
        for (from, to, frame) in released {
            at = match self.egress_departure(from, net, frame.len(), true) {
                Some(departure) => departure + self.link.delay,
                None => at + Duration::from_micros(5),
            };
            self.released_until[to] = self.released_until[to].max(at);
            self.push(
                at,
                Action::Frame {
                    to,
                    net,
                    frame,
                    injected: None,
                },
            );
        }
    }

    /// The redundant-ring property applies: more than one network, some network never had a
    /// fault, and no partition or one-way node link (which change the membership by design).
    fn rings_property_applies(&self) -> bool {
        self.schedule.networks > 1 && !self.topology_faulted && self.nets.iter().any(|n| !n.ever)
    }

    fn on_resume(&mut self, node: usize) {
        let Some(backlog) = self.nodes[node].paused.take() else {
            return;
        };
        let Some(t) = self.nodes[node].totem.as_mut() else {
            return;
        };
        // The process wakes up: its overdue timers fire, then it reads its socket buffer.
        t.handle_timeout(self.now);
        self.drain(node);
        if let Some(app) = self.nodes[node].app.as_mut() {
            let now = self.now;
            app.wake(now, &mut self.rng);
            if self.app_io(node) {
                self.drain(node);
            }
        }
        for (net, frame, injected) in backlog {
            self.on_frame(node, net, frame, injected);
        }
    }

    /// Takes every output of `node`: frames onto links, the timer, events into the log.
    fn drain(&mut self, node: usize) {
        let Some(totem) = self.nodes[node].totem.as_mut() else {
            return;
        };
        let id = totem.node_id();
        let mut frames = Vec::new();
        while let Some(t) = totem.poll_transmit() {
            frames.push(t);
        }
        let timeout = totem.poll_timeout();
        let mut events = Vec::new();
        while let Some(event) = totem.poll_event() {
            events.push(event);
        }
        for t in frames {
            let nets = match self.nodes[node].rrp.as_mut() {
                Some(r) => r.networks_for(&t.frame),
                None => NetSet(1),
            };
            for net in nets.iter() {
                match t.dest {
                    Dest::Ring => {
                        for to in 0..self.nodes.len() {
                            if to != node {
                                self.carry(node, to, net.0, &t.frame, true);
                            }
                        }
                    }
                    Dest::Node(dest) => {
                        self.carry(node, dest.0 as usize - 1, net.0, &t.frame, false);
                    }
                }
            }
        }
        let mut rrp_events = Vec::new();
        let rrp_timeout = self.nodes[node].rrp.as_mut().and_then(|r| {
            rrp_events.extend(std::iter::from_fn(|| r.poll_event()));
            r.poll_timeout()
        });
        for e in rrp_events {
            self.on_rrp_event(e);
        }
        let timeout = match (timeout, rrp_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A deadline already past (the core uses one to ask for an immediate call) fires now.
        if let Some(at) = timeout.map(|at| at.max(self.now))
            && self.nodes[node].timer_at != Some(at)
        {
            self.nodes[node].timer_at = Some(at);
            self.push(at, Action::Timer { node });
        }
        for event in events {
            match &event {
                Event::Deliver(d) => {
                    self.out.delivered += 1;
                    self.out.log.push(record::deliver(self.now, id, d));
                }
                Event::ConfigChange(c) => {
                    if c.kind == totem_dpdk::srp::ConfigKind::Regular {
                        self.out.configs += 1;
                        self.check_rings_property(node, c);
                    }
                    self.out.log.push(record::config(self.now, id, c));
                }
                Event::Observe(Observation::Token(t)) => {
                    self.out.log.push(record::token(self.now, id, t));
                }
                Event::Observe(Observation::Stored { ring, seq }) => {
                    self.out.log.push(record::stored(self.now, id, *ring, *seq));
                }
                Event::RingSeq(seq) => {
                    let n = &mut self.nodes[node];
                    n.persisted_ring_seq = n.persisted_ring_seq.max(*seq);
                }
                Event::FlowControl(FlowControl::Clear) => {
                    for _ in 0..std::mem::take(&mut self.nodes[node].waiting) {
                        self.push(self.now, Action::Submit { node });
                    }
                }
                Event::FlowControl(FlowControl::Blocked)
                | Event::Gather
                | Event::Heard(_)
                | Event::Excluded(_) => {}
            }
            if let Some(app) = self.nodes[node].app.as_mut() {
                app.event(self.now, &event);
            }
        }
        if self.app_io(node) {
            self.drain(node);
        }
    }
}

impl Sim {
    fn on_rrp_event(&mut self, e: RrpEvent) {
        match e {
            RrpEvent::Faulty { net, cause } => {
                self.out.nets_marked_faulty += 1;
                self.out.faulty_causes[match cause {
                    FaultCause::Lost => 0,
                    FaultCause::OneWay => 1,
                    FaultCause::Lossy => 2,
                }] += 1;
                if let Some(since) = self.nets[usize::from(net.0)].faulty_since {
                    let d = self.now.saturating_since(since);
                    self.out.worst_detection = self.out.worst_detection.max(d);
                }
            }
            RrpEvent::Restored { net } => {
                self.out.nets_restored += 1;
                let f = &self.nets[usize::from(net.0)];
                if f.is_clean() {
                    let d = self.now.saturating_since(f.clean_since);
                    self.out.worst_reenable = self.out.worst_reenable.max(d);
                }
            }
        }
    }

    /// Redundant rings: no configuration change caused by a network fault while a network
    /// works. A regular configuration delivered at a node no node fault touched may remove
    /// (fail or see leave) only nodes a node fault touched.
    fn check_rings_property(&mut self, node: usize, c: &totem_dpdk::srp::ConfigChange) {
        if !self.rings_property_applies() || self.touched[node] {
            return;
        }
        for gone in c.failed.iter().chain(&c.left) {
            let i = gone.0 as usize - 1;
            if !self.touched.get(i).copied().unwrap_or(true) {
                let working: Vec<usize> = (0..self.nets.len())
                    .filter(|n| self.nets[*n].is_clean())
                    .collect();
                self.out.violations.push(format!(
                    "rings: node {} removed node {} from ring {} at t={} though no node fault \
                     touched either and networks {working:?} work",
                    node + 1,
                    gone,
                    c.ring,
                    self.now.as_nanos()
                ));
            }
        }
    }
}
