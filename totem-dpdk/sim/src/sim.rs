//! One deterministic simulation: N Totem nodes on a faulty simulated network, a random
//! workload, virtual time. The same [`Schedule`] always produces the same run, bit for bit.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use totem_dpdk::srp::{Config, Dest, Event, FlowControl, Observation, Totem};
use totem_dpdk::{DeliveryKind, Duration, Instant, NodeId, Priority};

use crate::log::LogEvent;
use crate::net::{Faults, Link};
use crate::record;

/// Everything that determines one run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed of every random decision of the run.
    pub seed: u64,
    /// Ring size (2 to 16).
    pub nodes: u32,
    /// Link faults, the same on every link.
    pub faults: Faults,
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
    /// The run fails (liveness) if it has not delivered everything by then.
    pub deadline: Duration,
}

impl Schedule {
    /// A schedule drawn from `seed`: the fault probabilities are drawn up to the maxima in
    /// `max_faults` (0 disables a fault), the frame size is 1472 or 8972, the ring size is
    /// drawn from `nodes`.
    pub fn random(seed: u64, nodes: std::ops::RangeInclusive<u32>, max_faults: Faults) -> Schedule {
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
        };
        Schedule {
            seed,
            nodes: rng.random_range(nodes),
            faults,
            max_frame_size: if rng.random_bool(0.5) { 1472 } else { 8972 },
            messages_per_node: rng.random_range(10..=40),
            max_queued_messages: if rng.random_bool(0.2) {
                rng.random_range(1..=8)
            } else {
                16384
            },
            submit_window: Duration::from_millis(rng.random_range(1..=20)),
            deadline: Duration::from_millis(60_000),
        }
    }
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
    /// Virtual time at the end.
    pub end: Instant,
    /// Everything submitted was delivered everywhere before the deadline.
    pub drained: bool,
}

#[derive(Debug)]
enum Action {
    Frame { to: usize, frame: Bytes },
    Timer { node: usize },
    Submit { node: usize },
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

/// A running simulation.
pub struct Sim {
    schedule: Schedule,
    rng: ChaCha8Rng,
    now: Instant,
    order: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Totem>,
    timer_at: Vec<Option<Instant>>,
    link: Link,
    remaining_submits: u32,
    out: Outcome,
    delivered_per_node: Vec<u64>,
    /// Submits refused with backpressure, per node, waiting for `FlowControl::Clear`.
    waiting: Vec<u32>,
}

impl Sim {
    /// Builds the ring and the workload of `schedule`.
    pub fn new(schedule: Schedule) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(schedule.seed);
        let members: Vec<NodeId> = (1..=schedule.nodes).map(NodeId).collect();
        let mut sim = Sim {
            link: Link {
                faults: schedule.faults,
                ..Link::default()
            },
            now: Instant(0),
            order: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            timer_at: vec![None; members.len()],
            remaining_submits: schedule.nodes * schedule.messages_per_node,
            out: Outcome::default(),
            delivered_per_node: vec![0; members.len()],
            waiting: vec![0; members.len()],
            rng: ChaCha8Rng::seed_from_u64(0),
            schedule,
        };
        for id in &members {
            let mut cfg = Config::new(*id, members.clone());
            cfg.max_frame_size = sim.schedule.max_frame_size;
            cfg.max_queued_messages = sim.schedule.max_queued_messages;
            cfg.observe = true;
            if sim.out.log.is_empty() {
                sim.out.log.push(record::meta(&sim.schedule, &cfg));
            }
            sim.nodes
                .push(Totem::new(cfg, sim.now).expect("valid simulated config"));
        }
        for node in 0..members.len() {
            for _ in 0..sim.schedule.messages_per_node {
                let at = Instant(rng.random_range(0..=sim.schedule.submit_window.0));
                sim.push(at, Action::Submit { node });
            }
        }
        sim.rng = rng;
        for node in 0..members.len() {
            sim.drain(node);
        }
        sim
    }

    fn push(&mut self, at: Instant, action: Action) {
        self.order += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            order: self.order,
            action,
        }));
    }

    /// Runs to the end: everything delivered everywhere, or the deadline.
    pub fn run(mut self) -> Outcome {
        let deadline = Instant(0) + self.schedule.deadline;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > deadline {
                break;
            }
            self.now = next.at;
            match next.action {
                Action::Frame { to, frame } => self.on_frame(to, &frame),
                Action::Timer { node } => {
                    if self.timer_at[node] == Some(self.now) {
                        self.timer_at[node] = None;
                        self.nodes[node].handle_timeout(self.now);
                        self.drain(node);
                    }
                }
                Action::Submit { node } => self.on_submit(node),
            }
            if self.is_drained() {
                self.out.drained = true;
                break;
            }
        }
        self.out.end = self.now;
        if let Some(LogEvent::Meta(meta)) = self.out.log.first_mut() {
            meta.drained = Some(self.out.drained);
        }
        if !self.out.drained {
            let behind: Vec<String> = self
                .delivered_per_node
                .iter()
                .enumerate()
                .map(|(i, d)| format!("node {}: {d}/{}", i + 1, self.out.sent))
                .collect();
            self.out.violations.push(format!(
                "liveness: not everything was delivered by {} ms of virtual time ({}; {} submits \
                 pending)",
                self.now.as_nanos() / 1_000_000,
                behind.join(", "),
                self.remaining_submits
            ));
        }
        self.out
    }

    fn is_drained(&self) -> bool {
        self.remaining_submits == 0
            && self.nodes.iter().all(|n| n.queued_messages() == 0)
            && self.delivered_per_node.iter().all(|d| *d == self.out.sent)
    }

    fn on_frame(&mut self, to: usize, frame: &Bytes) {
        let node = &mut self.nodes[to];
        let dup_before = node.stats().duplicate_tokens;
        node.handle_frame(self.now, frame);
        if node.stats().duplicate_tokens > dup_before {
            // A discarded token must change nothing: no frame out, only its observation.
            let sent = node.poll_transmit().is_some();
            let mut others = 0;
            while let Some(event) = node.poll_event() {
                if let Event::Observe(Observation::Token(t)) = &event {
                    let id = node.node_id();
                    self.out.log.push(record::token(self.now, id, t));
                } else {
                    others += 1;
                }
            }
            if sent || others > 0 {
                self.out.violations.push(format!(
                    "token: node {} acted on a discarded token at t={}",
                    to + 1,
                    self.now.as_nanos()
                ));
            }
            return;
        }
        self.drain(to);
    }

    fn on_submit(&mut self, node: usize) {
        let mtu = self.schedule.max_frame_size;
        let size = match self.rng.random_range(0..100) {
            0..50 => self.rng.random_range(1..=64),
            50..80 => self.rng.random_range(65..=mtu),
            80..97 => self.rng.random_range(mtu..=4 * mtu),
            _ => self.rng.random_range(4 * mtu..=70_000),
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
        match self.nodes[node].submit(prio, kind, payload.clone()) {
            Ok(id) => {
                self.remaining_submits -= 1;
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
                self.waiting[node] += 1;
                self.drain(node);
            }
        }
    }

    /// Takes every output of `node`: frames onto links, the timer, events into the log.
    fn drain(&mut self, node: usize) {
        let id = self.nodes[node].node_id();
        while let Some(t) = self.nodes[node].poll_transmit() {
            match t.dest {
                Dest::Ring => {
                    for to in 0..self.nodes.len() {
                        if to != node {
                            self.carry(to, &t.frame);
                        }
                    }
                }
                Dest::Node(dest) => {
                    let to = dest.0 as usize - 1;
                    self.carry(to, &t.frame);
                }
            }
        }
        if let Some(at) = self.nodes[node].poll_timeout()
            && self.timer_at[node] != Some(at)
        {
            self.timer_at[node] = Some(at);
            self.push(at.max(self.now), Action::Timer { node });
        }
        while let Some(event) = self.nodes[node].poll_event() {
            match event {
                Event::Deliver(d) => {
                    self.delivered_per_node[node] += 1;
                    self.out.delivered += 1;
                    self.out.log.push(record::deliver(self.now, id, &d));
                }
                Event::ConfigChange(c) => self.out.log.push(record::config(self.now, id, &c)),
                Event::Observe(Observation::Token(t)) => {
                    self.out.log.push(record::token(self.now, id, &t));
                }
                Event::Observe(Observation::Stored { ring, seq }) => {
                    self.out.log.push(record::stored(self.now, id, ring, seq));
                }
                Event::FlowControl(FlowControl::Clear) => {
                    for _ in 0..std::mem::take(&mut self.waiting[node]) {
                        self.push(self.now, Action::Submit { node });
                    }
                }
                Event::FlowControl(FlowControl::Blocked) => {}
            }
        }
    }

    fn carry(&mut self, to: usize, frame: &Bytes) {
        let verdict = self.link.carry(&mut self.rng, frame);
        for (delay, copy) in verdict.copies {
            self.out.frames += 1;
            let at = self.now + delay;
            self.push(at, Action::Frame { to, frame: copy });
        }
    }
}
