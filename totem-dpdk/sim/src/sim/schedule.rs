//! What determines a run: the [`Schedule`] (seed, ring size, link and node faults, workload
//! parameters), and drawing a random one from a seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use totem_dpdk::rrp::{Defect, RrpMode};
use totem_dpdk::{Duration, Instant, NodeId};

use crate::net::Faults;

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

/// A fault of one network of a redundant ring ([`Schedule::networks`] > 1); the other networks
/// are not affected. Networks are numbered from 0, nodes from 1. The vocabulary is
/// `dataplane::fault::Fault`'s ([`NetFault::split`]), whose `FaultInjector` applies the same
/// faults to a real transport.
#[derive(Debug, Clone, PartialEq)]
pub enum NetFault {
    /// The network carries nothing (a switch or hub board lost).
    Down(u8),
    /// The network loses this share of the frames on every link (up to 0.5 in the sweeps).
    Lossy(u8, f64),
    /// On this network, frames from the first node to the second are lost (one direction).
    OneWay(u8, u32, u32),
    /// This node's interface on the network is dead: it neither sends nor receives on it.
    NicDown(u8, u32),
    /// Frames towards this node on the network arrive this much later (a slow path).
    Slow(u8, u32, Duration),
    /// The network carries nothing, but each node keeps up to this many of the frames sent
    /// to it meanwhile and gets them in one burst at the network's `Up`: a cut whose frames
    /// a queue held and released at the heal (a `tbf` qdisc on a link whose carrier went
    /// down does).
    Hold(u8, usize),
    /// Every fault of this network ends: it works again (held frames are released).
    Up(u8),
}

impl NetFault {
    /// The network and the fault in the transport wrapper's terms.
    pub fn split(&self) -> (u8, dataplane::fault::Fault) {
        use dataplane::NodeId as N;
        use dataplane::fault::Fault;
        match *self {
            NetFault::Down(net) => (net, Fault::Down),
            NetFault::Lossy(net, share) => (net, Fault::Lossy(share)),
            NetFault::OneWay(net, from, to) => (
                net,
                Fault::OneWay {
                    from: N(from),
                    to: N(to),
                },
            ),
            NetFault::NicDown(net, node) => (net, Fault::NicDown(N(node))),
            NetFault::Slow(net, node, by) => (
                net,
                Fault::Delay {
                    to: N(node),
                    by: std::time::Duration::from_nanos(by.as_nanos()),
                },
            ),
            NetFault::Hold(net, limit) => (net, Fault::Hold(limit)),
            NetFault::Up(net) => (net, Fault::Up),
        }
    }
}

/// Message sizes of a schedule's workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sizes {
    /// 1 byte to 70 000 bytes, mostly small (see docs/simulator.md).
    #[default]
    Mixed,
    /// 4 frames to 70 000 bytes: every message is fragmented.
    Large,
    /// Every message this many bytes (a benchmark's load).
    Fixed(usize),
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
    /// Networks of the redundant ring (1 to 4; 1: the single network, no redundant-ring layer).
    pub networks: usize,
    /// How the redundant ring uses its networks.
    pub rrp_mode: RrpMode,
    /// Faults of single networks, at their times (ascending).
    pub net_faults: Vec<(Instant, NetFault)>,
    /// A deliberate defect in every node's redundant-ring layer (checker tests only).
    pub rrp_defect: Defect,
    /// Every node's Totem timers, when not the defaults (`totem-sim --timers`).
    pub timers: Option<Timers>,
    /// Every node's interface on every network sends at most this rate, through a queue that
    /// holds what waits up to a delay and drops the rest (a `tbf` qdisc, as
    /// `bench throughput --rate-cap-mbit` puts on each veth). `None`: no rate limit.
    pub egress: Option<Egress>,
    /// Every node's token pacing (`srp::Config::token_pace`; zero: off, the core's
    /// default; `aisexec` paces at 1 ms).
    pub token_pace: Duration,
}

/// A rate-capped egress queue per node and network ([`Schedule::egress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// Bits per second.
    pub rate_bps: u64,
    /// The longest a frame may wait in the queue; a frame that would wait longer is dropped
    /// (tbf's `latency`).
    pub latency: Duration,
}

/// Totem timers of a schedule (see `srp::Config`); the pause threshold is half the token
/// timeout, as in `aisexec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// `token_timeout`.
    pub token: Duration,
    /// `consensus_timeout`.
    pub consensus: Duration,
    /// `join_timeout`.
    pub join: Duration,
    /// `merge_timeout`.
    pub merge: Duration,
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
            networks: 1,
            rrp_mode: RrpMode::Active,
            net_faults: Vec::new(),
            rrp_defect: Defect::None,
            timers: None,
            egress: None,
            token_pace: Duration(0),
        }
    }

    /// A redundant-ring schedule drawn from `seed`: 2 to 4 networks in `mode`; 1 to 4 episodes
    /// of network faults (a network down, lossy up to 50%, one-way between two nodes, a node's
    /// interface down, slow towards a node, or flapping down and up) on any network but the last, each ending with
    /// the network back up; with `node_faults`, crashes and restarts and process pauses
    /// besides (no partition or one-way node link: those change the membership by design); a network slow
    /// towards one node (1 to 15 ms) is a fault episode too. Light link faults
    /// (duplication, reordering, up to 1% loss) on every network, and a workload spread over
    /// the fault period. With `all_fail`, every network goes down together once as well (the
    /// membership protocol takes over, then the ring merges again).
    pub fn random_rings(
        seed: u64,
        nodes: std::ops::RangeInclusive<u32>,
        mode: RrpMode,
        node_faults: bool,
        all_fail: bool,
    ) -> Schedule {
        let links = Faults {
            loss: 0.01,
            dup: 0.05,
            reorder: 0.1,
            ..Faults::default()
        };
        let kinds = NodeFaultKinds {
            crash: node_faults,
            pause: node_faults,
            ..NodeFaultKinds::default()
        };
        let mut s = Schedule::random(seed, nodes, links, kinds);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0e70_4a11_0000_0021);
        let networks = rng.random_range(2..=4usize);
        let n = s.nodes;
        let mut faults = Vec::new();
        let mut t = Instant(0) + Duration::from_millis(rng.random_range(1..=400));
        for _ in 0..rng.random_range(1..=4) {
            let net = rng.random_range(0..networks - 1) as u8;
            let last = Duration::from_millis(rng.random_range(50..=1_500));
            match rng.random_range(0..6) {
                0 => faults.push((t, NetFault::Down(net))),
                1 => faults.push((t, NetFault::Lossy(net, rng.random_range(0.05..=0.5)))),
                2 => {
                    let a = rng.random_range(1..=n);
                    let b = rng.random_range(1..=n);
                    if a != b {
                        faults.push((t, NetFault::OneWay(net, a, b)));
                    }
                }
                3 => faults.push((t, NetFault::NicDown(net, rng.random_range(1..=n)))),
                4 => {
                    // Slower than `copy_timeout`, within the layer's memory.
                    let by = Duration::from_micros(rng.random_range(1_000..=15_000));
                    faults.push((t, NetFault::Slow(net, rng.random_range(1..=n), by)));
                }
                _ => {
                    // Flapping: down and up every 10 to 200 ms.
                    let mut at = t;
                    while at < t + last {
                        faults.push((at, NetFault::Down(net)));
                        at = at + Duration::from_millis(rng.random_range(10..=200));
                        faults.push((at, NetFault::Up(net)));
                        at = at + Duration::from_millis(rng.random_range(10..=200));
                    }
                }
            }
            t = t + last;
            faults.push((t, NetFault::Up(net)));
            t = t + Duration::from_millis(rng.random_range(0..=300));
        }
        if all_fail {
            let at = Instant(0) + Duration::from_millis(rng.random_range(200..=2_000));
            let back = at + Duration::from_millis(rng.random_range(100..=1_000));
            for net in 0..networks as u8 {
                faults.push((at, NetFault::Down(net)));
                faults.push((back, NetFault::Up(net)));
            }
        }
        faults.sort_by_key(|(at, _)| *at);
        let end = faults.last().map_or(Instant(0), |(at, _)| *at);
        s.networks = networks;
        s.rrp_mode = mode;
        s.net_faults = faults;
        // Traffic while the networks fail: submits spread over the fault period.
        s.submit_window = Duration::from_millis(end.as_nanos() / 1_000_000 + 100);
        s.messages_per_node = rng.random_range(40..=120);
        s.crypto = rng.random_bool(0.5);
        s
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
            .chain(self.net_faults.iter().map(|(t, _)| *t))
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

#[cfg(test)]
mod tests {
    use dataplane::fault::Fault;

    use super::*;

    #[test]
    fn network_faults_speak_the_transport_wrappers_vocabulary() {
        let n = dataplane::NodeId;
        let cases = [
            (NetFault::Down(1), (1, Fault::Down)),
            (NetFault::Lossy(0, 0.25), (0, Fault::Lossy(0.25))),
            (
                NetFault::OneWay(2, 3, 4),
                (
                    2,
                    Fault::OneWay {
                        from: n(3),
                        to: n(4),
                    },
                ),
            ),
            (NetFault::NicDown(0, 5), (0, Fault::NicDown(n(5)))),
            (
                NetFault::Slow(1, 2, Duration::from_millis(7)),
                (
                    1,
                    Fault::Delay {
                        to: n(2),
                        by: std::time::Duration::from_millis(7),
                    },
                ),
            ),
            (NetFault::Hold(1, 900), (1, Fault::Hold(900))),
            (NetFault::Up(3), (3, Fault::Up)),
        ];
        for (fault, split) in cases {
            assert_eq!(fault.split(), split);
        }
    }
}
