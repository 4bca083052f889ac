//! One deterministic simulation: N Totem nodes on a faulty simulated network, a random
//! workload, node faults, virtual time. The same [`Schedule`] always produces the same run,
//! bit for bit.
//!
//! The workload is either the simulator's own (random messages, [`Sim::new`]) or an
//! application per node ([`App`], [`Sim::with_apps`]): code that runs above each node's Totem
//! core (the executive core and its services, in the `ais` tests), sees its events, submits
//! messages and has its own timers; a crash drops it and a restart builds a new one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use totem_dpdk::crypto::{EpochKey, Protection};
use totem_dpdk::srp::{
    Config, Dest, Event, FlowControl, MembState, Observation, SubmitError, Totem,
};
use totem_dpdk::{DeliveryKind, Duration, Instant, MsgId, NodeId, Priority, RingId};

use crate::log::LogEvent;
use crate::net::{Faults, Link};
use crate::record;

/// A fault that happens to nodes or to the network at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeFault {
    /// The node's process dies: its state is gone, frames to it are lost.
    Crash(u32),
    /// A crashed node starts again, with only its persisted ring sequence number.
    Restart(u32),
    /// A node that was not running at the start of the run starts for the first time (it
    /// must be listed in [`Schedule::late`]).
    Start(u32),
    /// The node's process is frozen for the given time (a VM pause, a stalled disk write):
    /// frames to it wait in its socket buffer (up to a limit) and its timers do not run; then
    /// it resumes with its stale state.
    Pause(u32, Duration),
    /// The network splits: nodes in different groups (group number per node, index 0 = node
    /// 1) cannot reach each other.
    Partition(Vec<u8>),
    /// Frames from the first node to the second are lost (one direction only).
    OneWay(u32, u32),
    /// Every link works again.
    Heal,
    /// Splits the network like `Partition` at the moment the first node enters recovery
    /// (after this fault's time), and heals it the given time later.
    PartitionDuringRecovery(Vec<u8>, Duration),
}

/// A message an [`App`] submits.
#[derive(Debug, Clone)]
pub struct AppSubmit {
    /// The application's tag, given back with the result.
    pub tag: u64,
    /// Totem priority.
    pub prio: Priority,
    /// Agreed or safe.
    pub kind: DeliveryKind,
    /// The payload.
    pub payload: Bytes,
}

/// An application on one simulated node, above its Totem core. The simulator calls it, in
/// virtual time, with every Totem event of the node ([`App::event`]) and at the times it
/// asks for ([`App::next_wake`], [`App::wake`]); after every call it takes the
/// application's submissions ([`App::poll_submit`]) into the node's core at once and reports
/// each result ([`App::submitted`]). A paused node's application is paused with it.
pub trait App {
    /// A Totem event of this node.
    fn event(&mut self, now: Instant, event: &Event);
    /// The wake-up asked for with [`App::next_wake`] came; `rng` is the run's random source.
    fn wake(&mut self, now: Instant, rng: &mut dyn RngCore);
    /// The next message to submit, if any.
    fn poll_submit(&mut self) -> Option<AppSubmit>;
    /// What the core said to a submission.
    fn submitted(&mut self, now: Instant, tag: u64, result: Result<MsgId, SubmitError>);
    /// When to call [`App::wake`] next.
    fn next_wake(&self) -> Option<Instant>;
    /// Nothing left to do: the run may end once every node's application is idle.
    fn is_idle(&self) -> bool;
}

/// Builds a node's application at its start and at every restart: node id and incarnation
/// (0 for the first start, then one more at every restart).
pub type AppFactory = Box<dyn FnMut(NodeId, u32) -> Box<dyn App>>;

/// Message sizes of a schedule's workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sizes {
    /// 1 byte to 70 000 bytes, mostly small (see docs/simulator.md).
    #[default]
    Mixed,
    /// 4 frames to 70 000 bytes: every message is fragmented.
    Large,
}

/// Which node and topology faults a schedule may draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeFaultKinds {
    /// Crash and restart.
    pub crash: bool,
    /// Process pause (freeze, then resume with stale state).
    pub pause: bool,
    /// Symmetric partition into two groups, then heal.
    pub partition: bool,
    /// One-way link loss, then heal.
    pub oneway: bool,
}

impl NodeFaultKinds {
    /// Every kind.
    pub const ALL: NodeFaultKinds = NodeFaultKinds {
        crash: true,
        pause: true,
        partition: true,
        oneway: true,
    };

    /// True if any kind is enabled.
    pub fn any(self) -> bool {
        self.crash || self.pause || self.partition || self.oneway
    }
}

/// Everything that determines one run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed of every random decision of the run.
    pub seed: u64,
    /// Ring size (2 to 16).
    pub nodes: u32,
    /// Link faults, the same on every link.
    pub faults: Faults,
    /// Node and topology faults, at their times (ascending).
    pub node_faults: Vec<(Instant, NodeFault)>,
    /// Totem frame size (1472 for a 1500-byte MTU, 8972 for 9000).
    pub max_frame_size: usize,
    /// Messages each node submits.
    pub messages_per_node: u32,
    /// Each node's send-queue limit in messages; small values exercise backpressure (the
    /// workload retries a refused submit when the node reports flow control clear again, as an
    /// AIS client does after TRY_AGAIN).
    pub max_queued_messages: usize,
    /// Submissions are spread uniformly over this much virtual time.
    pub submit_window: Duration,
    /// After the last fault, the nodes must converge and deliver everything within this time.
    pub converge_bound: Duration,
    /// The workload's message sizes.
    pub sizes: Sizes,
    /// Nodes that do not run at the start; each starts with its [`NodeFault::Start`].
    pub late: Vec<u32>,
    /// One node (id) that loses this share of the ring's multicast data frames while faults
    /// last (it still gets its tokens and membership messages): corosync's "FAILED TO
    /// RECEIVE" situation.
    pub lossy_receiver: Option<(u32, f64)>,
    /// Seal every frame with AES-256-GCM (secauth; one shared key, nonce counters continued
    /// across restarts). On whenever the attack faults are.
    pub crypto: bool,
    /// Check property 17 (stable members) for the pairs of [`Schedule::stable_pairs`]. Off by
    /// default (see docs/simulator.md for what it still finds).
    pub check_stable_members: bool,
}

impl Schedule {
    /// A schedule drawn from `seed`: the link-fault probabilities are drawn up to the maxima in
    /// `max_faults` (0 disables a fault); 1 to 4 node or topology faults of the enabled kinds
    /// (crash and restart, pause, partition and heal, one-way link) at random times; the frame
    /// size is 1472 or 8972; the ring size is drawn from `nodes`.
    pub fn random(
        seed: u64,
        nodes: std::ops::RangeInclusive<u32>,
        max_faults: Faults,
        node_faults: NodeFaultKinds,
    ) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5c4e_d01e);
        let mut draw = |max: f64| {
            if max > 0.0 {
                rng.random_range(0.0..=max)
            } else {
                0.0
            }
        };
        let faults = Faults {
            loss: draw(max_faults.loss),
            dup: draw(max_faults.dup),
            reorder: draw(max_faults.reorder),
            corrupt: draw(max_faults.corrupt),
            forge: draw(max_faults.forge),
            replay: draw(max_faults.replay),
        };
        let n = rng.random_range(nodes);
        let submit_window = Duration::from_millis(rng.random_range(1..=20));
        let mut node_faults = if node_faults.any() {
            random_node_faults(&mut rng, n, node_faults)
        } else {
            Vec::new()
        };
        // With node faults, a third of the schedules have one node that joins late.
        let mut late = Vec::new();
        if !node_faults.is_empty() && n > 2 && rng.random_bool(0.33) {
            let node = rng.random_range(1..=n);
            let first_fault = node_faults.first().map_or(Instant(0), |(t, _)| *t);
            let at = Instant(rng.random_range(1..=first_fault.as_nanos().max(2)));
            node_faults.retain(|(_, f)| !names(f, node));
            node_faults.insert(0, (at, NodeFault::Start(node)));
            late.push(node);
        }
        Schedule {
            seed,
            nodes: n,
            faults,
            node_faults,
            max_frame_size: if rng.random_bool(0.5) { 1472 } else { 8972 },
            messages_per_node: rng.random_range(10..=40),
            max_queued_messages: if rng.random_bool(0.2) {
                rng.random_range(1..=8)
            } else {
                16384
            },
            submit_window,
            converge_bound: Duration::from_millis(5_000),
            sizes: Sizes::Mixed,
            lossy_receiver: None,
            late,
            crypto: max_faults.forge > 0.0 || max_faults.replay > 0.0,
            check_stable_members: false,
        }
    }

    /// When faults stop: link faults last until the later of the last node or topology fault
    /// and the end of the submit window, plus 100 ms; after that the network is clean and the
    /// ring must converge within `converge_bound`.
    pub fn faults_end(&self) -> Instant {
        let last_node_fault = self
            .node_faults
            .iter()
            .map(|(t, f)| match f {
                NodeFault::Pause(_, d) => *t + *d,
                // Recovery starts within a consensus round or two of the fault's time.
                NodeFault::PartitionDuringRecovery(_, d) => *t + *d + Duration::from_millis(1_000),
                _ => *t,
            })
            .max()
            .unwrap_or(Instant(0));
        last_node_fault.max(Instant(0) + self.submit_window) + Duration::from_millis(100)
    }
}

impl Schedule {
    /// The pairs of nodes no fault touches, for checker property 17 (stable members): both
    /// nodes start on time and are never named by a node fault (crash, restart, pause, one-way
    /// link) nor by the lossy receiver, and no partition separates them. `None` when any link
    /// fault (loss, duplication, reordering, corruption, attacks) is on: then no pair is
    /// guaranteed to hear each other in time.
    pub fn stable_pairs(&self) -> Option<Vec<(NodeId, NodeId)>> {
        if self.faults != Faults::default() {
            return None;
        }
        let touched = |node: u32| {
            self.late.contains(&node)
                || self.lossy_receiver.is_some_and(|(n, _)| n == node)
                || self.node_faults.iter().any(|(_, f)| names(f, node))
        };
        let apart = |a: u32, b: u32| {
            self.node_faults.iter().any(|(_, f)| match f {
                NodeFault::Partition(groups) | NodeFault::PartitionDuringRecovery(groups, _) => {
                    groups.get(a as usize - 1) != groups.get(b as usize - 1)
                }
                _ => false,
            })
        };
        let stable: Vec<u32> = (1..=self.nodes).filter(|&n| !touched(n)).collect();
        let mut pairs = Vec::new();
        for (i, &a) in stable.iter().enumerate() {
            for &b in &stable[i + 1..] {
                if !apart(a, b) {
                    pairs.push((NodeId(a), NodeId(b)));
                }
            }
        }
        Some(pairs)
    }
}

/// True if `fault` is about `node` (a late node takes no other fault).
fn names(fault: &NodeFault, node: u32) -> bool {
    match fault {
        NodeFault::Crash(n)
        | NodeFault::Restart(n)
        | NodeFault::Start(n)
        | NodeFault::Pause(n, _) => *n == node,
        NodeFault::OneWay(a, b) => *a == node || *b == node,
        NodeFault::Partition(_) | NodeFault::Heal | NodeFault::PartitionDuringRecovery(..) => false,
    }
}

fn random_node_faults(
    rng: &mut ChaCha8Rng,
    n: u32,
    kinds: NodeFaultKinds,
) -> Vec<(Instant, NodeFault)> {
    let enabled: Vec<u8> = [kinds.crash, kinds.pause, kinds.partition, kinds.oneway]
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(i, _)| i as u8)
        .collect();
    let mut out = Vec::new();
    let mut t = Instant(0) + Duration::from_millis(rng.random_range(1..=300));
    for _ in 0..rng.random_range(1..=4) {
        let node = rng.random_range(1..=n);
        match enabled[rng.random_range(0..enabled.len())] {
            0 => {
                out.push((t, NodeFault::Crash(node)));
                t = t + Duration::from_millis(rng.random_range(0..=800));
                out.push((t, NodeFault::Restart(node)));
            }
            1 => {
                let pause = Duration::from_millis(rng.random_range(10..=2_000));
                out.push((t, NodeFault::Pause(node, pause)));
                t = t + pause;
            }
            2 => {
                let groups: Vec<u8> = (0..n).map(|_| rng.random_range(0..2)).collect();
                out.push((t, NodeFault::Partition(groups)));
                t = t + Duration::from_millis(rng.random_range(0..=800));
                out.push((t, NodeFault::Heal));
            }
            _ => {
                let other = rng.random_range(1..=n);
                if other != node {
                    out.push((t, NodeFault::OneWay(node, other)));
                    t = t + Duration::from_millis(rng.random_range(0..=800));
                    out.push((t, NodeFault::Heal));
                }
            }
        }
        t = t + Duration::from_millis(rng.random_range(0..=400));
    }
    out
}

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
}

/// Frames injected by the attack faults (and corrupted ones, with crypto on) and their fate.
/// Every forged, truncated or tampered frame must be refused by the protection layer; a
/// replayed frame must be refused when its receiver had already processed that transmission
/// (same nonce) in its current incarnation; otherwise it is the first copy that receiver sees
/// (the original was lost, went elsewhere, or came before a restart), indistinguishable from a
/// late delivery, and the protocol above must handle it (the checker verifies it did no harm).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttackStats {
    /// Forged frames (random bytes behind a valid header) delivered to a node.
    pub forged: u64,
    /// Truncated copies of real frames delivered.
    pub truncated: u64,
    /// Corrupted copies (link fault `corrupt`) delivered, with crypto on.
    pub tampered: u64,
    /// Replayed frames delivered.
    pub replayed: u64,
    /// Injected frames refused by the protection layer (counted in its statistics).
    pub rejected: u64,
    /// Replays that were the first copy of that transmission for their receiver.
    pub replay_first_copies: u64,
    /// Of those, frames the protocol then ignored (counted as stale, duplicate or foreign).
    pub replay_ignored_by_protocol: u64,
}

#[derive(Debug)]
enum Action {
    Frame {
        to: usize,
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

/// What an attacker (or the corrupting link) did to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    Forged,
    Truncated,
    Tampered,
    Replay,
}

/// Refusals counted by the protection layer.
fn crypto_refusals(s: &totem_dpdk::srp::Stats) -> u64 {
    let c = &s.crypto;
    c.malformed + c.bad_crc + c.unknown_epoch + c.bad_tag + c.replayed + c.too_old + c.misdirected
}

/// Frames the protocol counted as malformed, stale, duplicate or foreign.
fn protocol_refusals(s: &totem_dpdk::srp::Stats) -> u64 {
    s.malformed
        + s.unsupported_version
        + s.foreign_ring
        + s.duplicate_tokens
        + s.duplicate_frames
        + s.out_of_window
        + s.late_old_ring_frames
}

/// Frames recorded for replay.
const HISTORY: usize = 4096;

/// The shared key of simulated runs with crypto.
fn sim_key() -> EpochKey {
    EpochKey::new(0, vec![0x5a; 32]).expect("valid key")
}

/// The nonce of a sealed frame (after the 8-byte header and the 4-byte epoch).
fn nonce_of(frame: &[u8]) -> Option<[u8; 12]> {
    frame.get(12..24).and_then(|n| n.try_into().ok())
}

/// How long a run with applications goes on after the cores converged.
const APP_SETTLE: Duration = Duration::from_millis(500);

/// Frames a paused node's socket buffer holds; more are dropped.
const PAUSE_BUFFER: usize = 2_000;

/// One simulated node.
struct Node {
    totem: Option<Totem>,
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
    paused: Option<VecDeque<(Bytes, Option<Injected>)>>,
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
    out: Outcome,
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
        self.nodes[node].timer_at = None;
        let incarnation = self.nodes[node].incarnations;
        self.nodes[node].incarnations += 1;
        if let Some(factory) = &mut self.apps {
            self.nodes[node].app = Some(factory(id, incarnation));
            self.nodes[node].app_wake_at = None;
        }
        self.drain(node);
    }

    /// Takes the application's submissions into the node's core, then schedules its
    /// wake-up. Returns whether anything was submitted.
    fn app_io(&mut self, node: usize) -> bool {
        let now = self.now;
        let slot = &mut self.nodes[node];
        let (Some(app), Some(totem)) = (slot.app.as_mut(), slot.totem.as_mut()) else {
            return false;
        };
        let mut any = false;
        while let Some(sub) = app.poll_submit() {
            let result = totem.submit(sub.prio, sub.kind, sub.payload.clone());
            match &result {
                Ok(id) => {
                    slot.next_msg_no = id.no + 1;
                    self.out.sent += 1;
                    self.out
                        .log
                        .push(record::send(now, *id, &sub.payload, sub.kind, sub.prio));
                }
                Err(_) => self.out.backpressure += 1,
            }
            any = true;
            app.submitted(now, sub.tag, result);
        }
        let wake = app.next_wake().map(|at| at.max(now));
        if let Some(at) = wake
            && slot.app_wake_at != Some(at)
        {
            slot.app_wake_at = Some(at);
            self.push(at, Action::AppWake { node });
        }
        any
    }

    fn on_app_wake(&mut self, node: usize) {
        if self.nodes[node].app_wake_at != Some(self.now) {
            return; // superseded
        }
        if self.nodes[node].paused.is_some() {
            // Frozen: it wakes when the process resumes.
            self.nodes[node].app_wake_at = None;
            return;
        }
        self.nodes[node].app_wake_at = None;
        let now = self.now;
        let Some(app) = self.nodes[node].app.as_mut() else {
            return;
        };
        app.wake(now, &mut self.rng);
        if self.app_io(node) {
            self.drain(node);
        }
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
                    frame,
                    injected,
                } => self.on_frame(to, frame, injected),
                Action::Timer { node } => {
                    if self.nodes[node].timer_at == Some(self.now)
                        && self.nodes[node].paused.is_none()
                    {
                        self.nodes[node].timer_at = None;
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
                if self.apps.is_none() {
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
                if let Some(t) = self.nodes[node].totem.take() {
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
                if self.nodes[node].totem.is_some() && self.nodes[node].paused.is_none() {
                    self.nodes[node].paused = Some(VecDeque::new());
                    self.push(self.now + duration, Action::Resume { node });
                }
            }
            NodeFault::Partition(groups) => self.groups = groups,
            NodeFault::OneWay(from, to) => self.cut.push((from as usize - 1, to as usize - 1)),
            NodeFault::PartitionDuringRecovery(groups, heal_after) => {
                self.armed = Some((groups, heal_after));
            }
            NodeFault::Heal => {
                self.groups.iter_mut().for_each(|g| *g = 0);
                self.cut.clear();
            }
        }
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
        for (frame, injected) in backlog {
            self.on_frame(node, frame, injected);
        }
    }

    fn on_frame(&mut self, to: usize, frame: Bytes, injected: Option<Injected>) {
        if let Some(backlog) = &mut self.nodes[to].paused {
            if backlog.len() < PAUSE_BUFFER {
                backlog.push_back((frame, injected));
            }
            return;
        }
        let now = self.now;
        let slot = &mut self.nodes[to];
        let Some(node) = slot.totem.as_mut() else {
            return;
        };
        let nonce = nonce_of(&frame);
        let was_seen = nonce.is_some_and(|n| slot.seen.contains(&n));
        let before = node.stats().clone();
        let dup_before = before.duplicate_tokens;
        let accepted_before = before.tokens_accepted;
        node.handle_frame(now, &frame);
        let after = node.stats().clone();
        let opened = after.crypto.opened > before.crypto.opened;
        if opened && let Some(n) = nonce {
            slot.seen.insert(n);
        }
        let after = &after;
        if let Some(kind) = injected {
            let refused = crypto_refusals(after) > crypto_refusals(&before);
            let a = &mut self.out.attacks;
            match kind {
                Injected::Forged => a.forged += 1,
                Injected::Truncated => a.truncated += 1,
                Injected::Tampered => a.tampered += 1,
                Injected::Replay => a.replayed += 1,
            }
            if refused {
                a.rejected += 1;
            } else if kind == Injected::Replay && !was_seen {
                a.replay_first_copies += 1;
                if protocol_refusals(after) > protocol_refusals(&before) {
                    a.replay_ignored_by_protocol += 1;
                }
            } else {
                self.out.violations.push(format!(
                    "security: node {} accepted a {kind:?} frame at t={} (seen before: {was_seen})",
                    to + 1,
                    now.as_nanos()
                ));
            }
        }
        let node = self.nodes[to].totem.as_mut().expect("checked above");
        if node.stats().duplicate_tokens > dup_before
            && node.stats().tokens_accepted == accepted_before
        {
            // A discarded token must change nothing: no frame out, only its observation.
            let sent = node.poll_transmit().is_some();
            let mut others = 0;
            while let Some(event) = node.poll_event() {
                if let Event::Observe(Observation::Token(t)) = &event {
                    let id = node.node_id();
                    self.out.log.push(record::token(now, id, t));
                } else {
                    others += 1;
                }
            }
            if sent || others > 0 {
                self.out.violations.push(format!(
                    "token: node {} acted on a discarded token at t={}",
                    to + 1,
                    now.as_nanos()
                ));
            }
            return;
        }
        self.drain(to);
    }

    fn on_submit(&mut self, node: usize) {
        if self.nodes[node].remaining == 0 {
            return; // done, or crashed (a crash cancels the rest)
        }
        if self.nodes[node].totem.is_none() || self.nodes[node].paused.is_some() {
            // Not started yet, or frozen: the application submits once it runs.
            self.push(
                self.now + Duration::from_millis(10),
                Action::Submit { node },
            );
            return;
        }
        let mtu = self.schedule.max_frame_size;
        let size = match (self.schedule.sizes, self.rng.random_range(0..100)) {
            (Sizes::Large, _) => self.rng.random_range(4 * mtu..=70_000),
            (Sizes::Mixed, 0..50) => self.rng.random_range(1..=64),
            (Sizes::Mixed, 50..80) => self.rng.random_range(65..=mtu),
            (Sizes::Mixed, 80..97) => self.rng.random_range(mtu..=4 * mtu),
            (Sizes::Mixed, _) => self.rng.random_range(4 * mtu..=70_000),
        };
        let mut payload = vec![0u8; size];
        self.rng.fill_bytes(&mut payload);
        let prio = Priority::new(self.rng.random_range(0..4)).expect("0..4");
        let kind = if self.rng.random_bool(0.3) {
            DeliveryKind::Safe
        } else {
            DeliveryKind::Agreed
        };
        let payload = Bytes::from(payload);
        let totem = self.nodes[node].totem.as_mut().expect("checked above");
        match totem.submit(prio, kind, payload.clone()) {
            Ok(id) => {
                self.nodes[node].remaining -= 1;
                self.nodes[node].next_msg_no = id.no + 1;
                self.out.sent += 1;
                self.out
                    .log
                    .push(record::send(self.now, id, &payload, kind, prio));
                self.drain(node);
            }
            Err(_) => {
                // Backpressure: the application waits for flow control to clear. If the core
                // never reports it, the run stalls and fails its liveness check.
                self.out.backpressure += 1;
                self.nodes[node].waiting += 1;
                self.drain(node);
            }
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
            match t.dest {
                Dest::Ring => {
                    for to in 0..self.nodes.len() {
                        if to != node {
                            self.carry(node, to, &t.frame, true);
                        }
                    }
                }
                Dest::Node(dest) => self.carry(node, dest.0 as usize - 1, &t.frame, false),
            }
        }
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
                Event::FlowControl(FlowControl::Blocked) => {}
            }
            if let Some(app) = self.nodes[node].app.as_mut() {
                app.event(self.now, &event);
            }
        }
        if self.app_io(node) {
            self.drain(node);
        }
    }

    fn carry(&mut self, from: usize, to: usize, frame: &Bytes, multicast: bool) {
        if to == from {
            // A one-member ring passes the token to itself, through its own socket.
            let at = self.now + self.link.delay;
            self.push(
                at,
                Action::Frame {
                    to,
                    frame: frame.clone(),
                    injected: None,
                },
            );
            return;
        }
        if self.groups[from] != self.groups[to] || self.cut.contains(&(from, to)) {
            return;
        }
        let faulty = self.now < self.schedule.faults_end();
        if let Some((id, share)) = self.schedule.lossy_receiver
            && faulty
            && multicast
            && to + 1 == id as usize
            && frame.get(3) == Some(&2)
            && self.rng.random_bool(share)
        {
            return;
        }
        let link = if faulty { self.link } else { self.clean };
        let verdict = link.carry(&mut self.rng, frame);
        let crypto = self.schedule.crypto;
        for (delay, copy, corrupted) in verdict.copies {
            self.out.frames += 1;
            let at = self.now + delay;
            // Two flips of one byte can cancel out: only a changed frame counts as tampered.
            let injected = (crypto && corrupted && copy != *frame).then_some(Injected::Tampered);
            self.push(
                at,
                Action::Frame {
                    to,
                    frame: copy,
                    injected,
                },
            );
        }
        if crypto {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(frame.clone());
        }
        if faulty {
            self.attack(to);
        }
    }

    /// The attack faults: maybe a forged or truncated frame, maybe a replay, for node `to`.
    fn attack(&mut self, to: usize) {
        let f = self.schedule.faults;
        if f.forge > 0.0 && self.rng.random_bool(f.forge) {
            let (frame, kind) = if self.rng.random_bool(0.5) || self.history.is_empty() {
                // A valid header (magic, version, a frame type, a member as sender), then
                // random bytes where the crypto fields, body and tag would be.
                let len = self.rng.random_range(8..=300);
                let mut v = vec![0u8; len];
                self.rng.fill_bytes(&mut v);
                v[..3].copy_from_slice(&[0xA1, 0x5E, 1]);
                v[3] = self.rng.random_range(1..=6);
                let sender = self.rng.random_range(1..=self.schedule.nodes);
                v[4..8].copy_from_slice(&sender.to_be_bytes());
                if len >= 12 && self.rng.random_bool(0.5) {
                    v[8..12].copy_from_slice(&0u32.to_be_bytes()); // the real epoch
                }
                (Bytes::from(v), Injected::Forged)
            } else {
                let i = self.rng.random_range(0..self.history.len());
                let real = self.history[i].clone();
                let cut = self.rng.random_range(0..real.len());
                (real.slice(..cut), Injected::Truncated)
            };
            let at = self.now + self.link.delay;
            self.push(
                at,
                Action::Frame {
                    to,
                    frame,
                    injected: Some(kind),
                },
            );
        }
        if f.replay > 0.0 && !self.history.is_empty() && self.rng.random_bool(f.replay) {
            let i = self.rng.random_range(0..self.history.len());
            let frame = self.history[i].clone();
            let at = self.now + self.link.delay;
            self.push(
                at,
                Action::Frame {
                    to,
                    frame,
                    injected: Some(Injected::Replay),
                },
            );
        }
    }
}
