//! A fault-injecting wrapper around any [`Transport`]: a network that is down, lossy, cut in
//! one direction between two nodes, a node's interface down, or slow towards one node.
//!
//! The vocabulary is the simulator's (`totem_sim::sim::NetFault` names the same faults per
//! network), so a schedule that passed in the simulator can be replayed on real sockets: give
//! every node of the test the same [`Fault`]s at the same times, and each node's wrapper applies
//! the part that concerns it. Faults act where a real network would show them to this node:
//! - [`Fault::Down`], and [`Fault::NicDown`] naming this node: nothing is sent or received;
//! - [`Fault::Lossy`]: each received frame is lost with the given probability (each receiver
//!   draws independently, so every link loses that share, multicast included);
//! - [`Fault::OneWay`]: the node `to` drops every frame from `from`;
//! - [`Fault::Delay`]: the node `to` receives every frame `by` late (a slow path towards it);
//! - [`Fault::Hold`]: the network is cut, but what reaches this node meanwhile is kept (up to a
//!   limit, the rest lost) and arrives in one burst when the network is up again: a link whose
//!   carrier went down while the sender's queue kept the frames (a `tbf` qdisc does);
//! - [`Fault::Up`]: every fault ends.
//!
//! Faults are applied with [`FaultInjector::apply`] by the thread that owns the wrapper, or from
//! any other thread through a [`FaultControl`] ([`FaultInjector::control`]): the wrapper takes
//! the faults sent that way at its next receive or send.
//!
//! This is a test tool: a delayed frame is copied into a queue (it allocates), and losses come
//! from a small seeded generator, so one seed gives one sequence of drops.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Caps, Dest, Member, MembersError, NodeId, SendError, Source, Stats, Transport};

/// A fault of one network, as one node's wrapper applies it (see the [module](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The network carries nothing.
    Down,
    /// Every link loses this share of its frames (0.0 to 1.0).
    Lossy(f64),
    /// Frames from `from` to `to` are lost (one direction).
    OneWay {
        /// The sender whose frames are lost.
        from: NodeId,
        /// The receiver that loses them.
        to: NodeId,
    },
    /// This node's interface on the network is dead: it neither sends nor receives.
    NicDown(NodeId),
    /// Frames towards `to` arrive `by` late.
    Delay {
        /// The receiver.
        to: NodeId,
        /// The extra delay.
        by: Duration,
    },
    /// The network carries nothing now, but each receiver keeps up to this many of the frames
    /// sent to it meanwhile (later ones are lost) and gets them in one burst, in order, at
    /// [`Fault::Up`]: a cut whose frames a queue held and released at the heal.
    Hold(usize),
    /// Every fault ends: the network works again (held frames are released).
    Up,
}

/// A fault's text form, the one [`Fault`]'s `Display` writes and its `FromStr` reads:
/// `down`, `up`, `lossy 0.5` (a share from 0 to 1), `oneway 1 2` (frames from node 1 to node 2
/// lost), `nicdown 3`, `delay 2 15` (frames towards node 2 arrive 15 ms late), `hold 1000`
/// (cut, up to 1000 frames per receiver kept and released at `up`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad fault {text:?}: {why} (expected down, up, lossy SHARE, oneway FROM TO, nicdown NODE, delay TO MS or hold FRAMES)"
)]
pub struct ParseFaultError {
    text: String,
    why: &'static str,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Down => write!(f, "down"),
            Fault::Up => write!(f, "up"),
            Fault::Lossy(share) => write!(f, "lossy {share}"),
            Fault::OneWay { from, to } => write!(f, "oneway {} {}", from.0, to.0),
            Fault::NicDown(node) => write!(f, "nicdown {}", node.0),
            Fault::Delay { to, by } => write!(f, "delay {} {}", to.0, by.as_millis()),
            Fault::Hold(limit) => write!(f, "hold {limit}"),
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(text: &str) -> Result<Fault, ParseFaultError> {
        let err = |why| ParseFaultError {
            text: text.chars().take(80).collect(),
            why,
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let node = |w: &str| {
            w.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .map(NodeId)
                .ok_or_else(|| err("a node id is a number from 1"))
        };
        match words.as_slice() {
            ["down"] => Ok(Fault::Down),
            ["up"] => Ok(Fault::Up),
            ["lossy", share] => match share.parse::<f64>() {
                Ok(s) if (0.0..=1.0).contains(&s) => Ok(Fault::Lossy(s)),
                _ => Err(err("the share is a number from 0 to 1")),
            },
            ["oneway", from, to] => Ok(Fault::OneWay {
                from: node(from)?,
                to: node(to)?,
            }),
            ["nicdown", n] => Ok(Fault::NicDown(node(n)?)),
            ["delay", to, ms] => Ok(Fault::Delay {
                to: node(to)?,
                by: Duration::from_millis(
                    ms.parse()
                        .map_err(|_| err("the delay is a whole number of milliseconds"))?,
                ),
            }),
            ["hold", limit] => {
                Ok(Fault::Hold(limit.parse().map_err(|_| {
                    err("the limit is a whole number of frames")
                })?))
            }
            [] => Err(err("empty")),
            [
                "down" | "up" | "lossy" | "oneway" | "nicdown" | "delay" | "hold",
                ..,
            ] => Err(err("wrong number of arguments")),
            _ => Err(err("unknown fault")),
        }
    }
}

/// What the wrapper did to frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Frames not sent because the network or this node's interface is down.
    pub send_dropped: u64,
    /// Frames received and dropped because the network or this node's interface is down.
    pub down_dropped: u64,
    /// Frames received and dropped by the loss probability.
    pub loss_dropped: u64,
    /// Frames received and dropped by a one-way cut.
    pub oneway_dropped: u64,
    /// Frames received and held back by a delay.
    pub delayed: u64,
    /// Frames received during a [`Fault::Hold`] and kept for the burst at [`Fault::Up`].
    pub held: u64,
}

/// Faults sent to a [`FaultInjector`] from another thread, taken at its next receive or send.
#[derive(Debug, Default)]
struct Pending {
    any: AtomicBool,
    faults: Mutex<Vec<Fault>>,
}

/// A handle that applies faults to a [`FaultInjector`] owned by another thread (a driver's
/// transport thread): [`FaultControl::apply`] queues the fault, and the wrapper applies it, in
/// the order sent, before its next receive or send. Cloning gives another handle to the same
/// wrapper.
#[derive(Debug, Clone)]
pub struct FaultControl {
    pending: Arc<Pending>,
}

impl FaultControl {
    /// Queues `fault` for the wrapper (see [`FaultInjector::apply`]).
    pub fn apply(&self, fault: Fault) {
        // A poisoned lock only means another sender panicked; the queue itself is intact.
        self.pending
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
        self.pending.any.store(true, Ordering::Release);
    }
}

/// The wrapper. See the [module documentation](self).
#[derive(Debug)]
pub struct FaultInjector<T: Transport> {
    inner: T,
    pending: Arc<Pending>,
    me: NodeId,
    down: bool,
    loss: f64,
    cut_from: Vec<NodeId>,
    delay: Option<Duration>,
    /// [`Fault::Hold`]'s limit while it lasts.
    hold: Option<usize>,
    /// Frames kept by a hold, released at [`Fault::Up`].
    on_hold: Vec<(Source, Vec<u8>)>,
    held: VecDeque<(Instant, Source, Vec<u8>)>,
    rng: u64,
    scratch: Vec<u8>,
    now: Option<Instant>,
    stats: FaultStats,
}

impl<T: Transport> FaultInjector<T> {
    /// Wraps `inner`, the transport of node `me`, with no fault; `seed` fixes the losses.
    pub fn new(inner: T, me: NodeId, seed: u64) -> FaultInjector<T> {
        FaultInjector {
            inner,
            pending: Arc::default(),
            me,
            down: false,
            loss: 0.0,
            cut_from: Vec::new(),
            delay: None,
            hold: None,
            on_hold: Vec::new(),
            held: VecDeque::new(),
            rng: seed,
            scratch: Vec::new(),
            now: None,
            stats: FaultStats::default(),
        }
    }

    /// Applies `fault` (the parts that concern this node); faults add up until [`Fault::Up`].
    pub fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::Down => self.down = true,
            Fault::NicDown(node) => self.down |= node == self.me,
            Fault::Lossy(share) => self.loss = share.clamp(0.0, 1.0),
            Fault::OneWay { from, to } => {
                if to == self.me && !self.cut_from.contains(&from) {
                    self.cut_from.push(from);
                }
            }
            Fault::Delay { to, by } => {
                if to == self.me {
                    self.delay = Some(by);
                }
            }
            Fault::Hold(limit) => self.hold = Some(limit),
            Fault::Up => {
                self.down = false;
                self.loss = 0.0;
                self.cut_from.clear();
                self.delay = None;
                self.hold = None;
                // The burst: due now, ahead of anything received later.
                let now = self.now();
                for (src, frame) in std::mem::take(&mut self.on_hold) {
                    self.held.push_back((now, src, frame));
                }
            }
        }
    }

    /// A handle that applies faults to this wrapper from another thread.
    pub fn control(&self) -> FaultControl {
        FaultControl {
            pending: Arc::clone(&self.pending),
        }
    }

    /// Applies the faults queued through [`FaultControl`]s (one atomic load when there is none).
    fn take_pending(&mut self) {
        if self.pending.any.swap(false, Ordering::AcqRel) {
            let faults = std::mem::take(
                &mut *self
                    .pending
                    .faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            for f in faults {
                self.apply(f);
            }
        }
    }

    /// What the wrapper did so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.stats
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Fixes the wrapper's clock (tests of delays); `None`: the real clock (the default).
    pub fn set_now(&mut self, now: Option<Instant>) {
        self.now = now;
    }

    fn now(&self) -> Instant {
        self.now.unwrap_or_else(Instant::now)
    }

    /// splitmix64: a uniform draw in [0, 1).
    fn draw(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl<T: Transport> Transport for FaultInjector<T> {
    fn caps(&self) -> Caps {
        self.inner.caps()
    }

    fn recv_burst(&mut self, mut f: impl FnMut(Source, &[u8])) -> io::Result<usize> {
        self.take_pending();
        let now = self.now();
        let mut n = 0;
        let burst = self.inner.caps().max_burst;
        while n < burst && self.held.front().is_some_and(|(at, _, _)| *at <= now) {
            let (_, src, frame) = self.held.pop_front().expect("checked");
            f(src, &frame);
            n += 1;
        }
        if n > 0 {
            // At most one burst per call: the new frames wait for the next one.
            return Ok(n);
        }
        let mut taken = Vec::new();
        self.inner
            .recv_burst(|src, frame| taken.push((src, frame.to_vec())))?;
        for (src, frame) in taken {
            if self.down {
                self.stats.down_dropped += 1;
                continue;
            }
            if let Some(limit) = self.hold {
                if self.on_hold.len() < limit {
                    self.stats.held += 1;
                    self.on_hold.push((src, frame));
                } else {
                    self.stats.down_dropped += 1;
                }
                continue;
            }
            if src.node.is_some_and(|from| self.cut_from.contains(&from)) {
                self.stats.oneway_dropped += 1;
                continue;
            }
            if self.loss > 0.0 && self.draw() < self.loss {
                self.stats.loss_dropped += 1;
                continue;
            }
            match self.delay {
                Some(by) => {
                    self.stats.delayed += 1;
                    self.held.push_back((now + by, src, frame));
                }
                None => {
                    f(src, &frame);
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn send(
        &mut self,
        dest: Dest,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        self.take_pending();
        if self.down {
            let mtu = self.inner.caps().mtu;
            if len > mtu {
                return Err(SendError::TooLarge { len, mtu });
            }
            self.scratch.resize(len, 0);
            fill(&mut self.scratch[..len]);
            self.stats.send_dropped += 1;
            return Ok(());
        }
        self.inner.send(dest, len, fill)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn set_members(&mut self, members: &[Member]) -> Result<(), MembersError> {
        self.inner.set_members(members)
    }

    fn learn_member(&mut self, node: NodeId, addr: SocketAddr) -> bool {
        self.inner.learn_member(node, addr)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // A held frame is due before the caller's timeout: wake then.
        let due = self
            .held
            .front()
            .map(|(at, _, _)| at.saturating_duration_since(self.now()));
        let timeout = match (timeout, due) {
            (Some(t), Some(d)) => Some(t.min(d)),
            (t, d) => t.or(d),
        };
        self.inner.wait(timeout)
    }

    #[cfg(target_os = "linux")]
    fn waker(&self) -> Option<crate::wake::Waker> {
        self.inner.waker()
    }

    /// The inner transport's, while no frame is held back by a delay (one is due at a time
    /// no descriptor signals).
    #[cfg(target_os = "linux")]
    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        self.held.is_empty() && self.inner.wait_fds(out)
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The inner transport's, then what the faults did.
    fn visit_backend(&self, v: &mut dyn crate::stats::Visitor) {
        self.inner.visit_backend(v);
        crate::stats::Visit::visit(&self.fault_stats(), v);
    }
}

impl crate::stats::Visit for FaultStats {
    fn visit(&self, v: &mut dyn crate::stats::Visitor) {
        v.counter("fault_send_dropped", self.send_dropped);
        v.counter("fault_down_dropped", self.down_dropped);
        v.counter("fault_loss_dropped", self.loss_dropped);
        v.counter("fault_oneway_dropped", self.oneway_dropped);
        v.counter("fault_delayed", self.delayed);
        v.counter("fault_held", self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{MemConfig, MemNetwork, MemTransport};

    fn three() -> Vec<FaultInjector<MemTransport>> {
        three_seeded(0)
    }

    /// Three nodes on one in-memory network, each behind a wrapper, members known.
    fn three_seeded(seed: u64) -> Vec<FaultInjector<MemTransport>> {
        let net = MemNetwork::new();
        let members: Vec<Member> = (1..=3)
            .map(|i| Member {
                id: NodeId(i),
                addr: MemNetwork::node_addr(NodeId(i)),
            })
            .collect();
        (1..=3)
            .map(|i| {
                let mut t = net
                    .attach_node(NodeId(i), MemConfig::default())
                    .expect("attach");
                t.set_members(&members).expect("members");
                FaultInjector::new(t, NodeId(i), seed + u64::from(i))
            })
            .collect()
    }

    fn send(t: &mut FaultInjector<MemTransport>, dest: Dest, byte: u8) {
        t.send(dest, 4, |b| b.fill(byte)).expect("send");
        t.flush().expect("flush");
    }

    fn recv(t: &mut FaultInjector<MemTransport>) -> Vec<(u32, u8)> {
        let mut got = Vec::new();
        t.recv_burst(|src, f| got.push((src.node.map_or(0, |n| n.0), f[0])))
            .expect("recv");
        got
    }

    #[test]
    fn a_control_applies_faults_from_another_thread_in_order() {
        let mut n = three();
        let controls: Vec<FaultControl> = n.iter().map(FaultInjector::control).collect();
        std::thread::scope(|s| {
            s.spawn(|| {
                for c in &controls {
                    c.apply(Fault::Down);
                }
            });
        });
        send(&mut n[0], Dest::Ring, 1);
        assert!(recv(&mut n[1]).is_empty());
        assert_eq!(n[0].fault_stats().send_dropped, 1);
        // Down then Up, sent together: applied in that order, so the network works.
        for c in &controls {
            c.apply(Fault::Down);
            c.apply(Fault::Up);
        }
        send(&mut n[0], Dest::Ring, 2);
        assert_eq!(recv(&mut n[1]), vec![(1, 2)]);
    }

    #[test]
    fn faults_read_back_what_they_print() {
        let faults = [
            Fault::Down,
            Fault::Up,
            Fault::Lossy(0.5),
            Fault::OneWay {
                from: NodeId(1),
                to: NodeId(2),
            },
            Fault::NicDown(NodeId(3)),
            Fault::Delay {
                to: NodeId(2),
                by: Duration::from_millis(15),
            },
            Fault::Hold(1000),
        ];
        for f in faults {
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f), "{f}");
        }
        for bad in [
            "",
            "lossy",
            "lossy 1.5",
            "lossy x",
            "oneway 1",
            "oneway 0 2",
            "nicdown -1",
            "delay 2 1.5",
            "cut",
            "down 1",
            "hold",
            "hold -3",
        ] {
            let e = bad.parse::<Fault>().expect_err(bad).to_string();
            assert!(
                e.contains("bad fault") && e.contains("expected down"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn without_faults_it_is_transparent() {
        let mut n = three();
        send(&mut n[0], Dest::Ring, 7);
        assert_eq!(recv(&mut n[1]), vec![(1, 7)]);
        assert_eq!(recv(&mut n[2]), vec![(1, 7)]);
        assert_eq!(n[1].fault_stats(), FaultStats::default());
    }

    #[test]
    fn down_sends_and_receives_nothing_until_up() {
        let mut n = three();
        for t in &mut n {
            t.apply(Fault::Down);
        }
        send(&mut n[0], Dest::Ring, 1);
        assert!(recv(&mut n[1]).is_empty());
        assert_eq!(n[0].fault_stats().send_dropped, 1);
        assert_eq!(n[0].inner().stats().frames_out, 0);
        for t in &mut n {
            t.apply(Fault::Up);
        }
        send(&mut n[0], Dest::Node(NodeId(2)), 2);
        assert_eq!(recv(&mut n[1]), vec![(1, 2)]);
    }

    #[test]
    fn an_interface_down_cuts_only_its_node() {
        let mut n = three();
        for t in &mut n {
            t.apply(Fault::NicDown(NodeId(3)));
        }
        send(&mut n[0], Dest::Ring, 1);
        send(&mut n[2], Dest::Ring, 3);
        assert_eq!(recv(&mut n[1]), vec![(1, 1)]);
        assert!(recv(&mut n[2]).is_empty());
        assert_eq!(n[2].fault_stats().down_dropped, 1);
        assert_eq!(n[2].fault_stats().send_dropped, 1);
    }

    #[test]
    fn one_way_loses_one_direction_only() {
        let mut n = three();
        for t in &mut n {
            t.apply(Fault::OneWay {
                from: NodeId(1),
                to: NodeId(2),
            });
        }
        send(&mut n[0], Dest::Ring, 1);
        send(&mut n[1], Dest::Ring, 2);
        assert!(recv(&mut n[1]).is_empty(), "1 -> 2 is cut");
        assert_eq!(recv(&mut n[2]), vec![(1, 1), (2, 2)]);
        assert_eq!(recv(&mut n[0]), vec![(2, 2)], "2 -> 1 works");
        assert_eq!(n[1].fault_stats().oneway_dropped, 1);
    }

    #[test]
    fn loss_follows_the_share_and_the_seed() {
        let run = |seed: u64| {
            let mut n = three_seeded(seed);
            n[1].apply(Fault::Lossy(0.5));
            let mut got = 0;
            for i in 0..2_000u32 {
                send(&mut n[0], Dest::Node(NodeId(2)), (i % 251) as u8);
                got += recv(&mut n[1]).len();
            }
            (got, n[1].fault_stats().loss_dropped)
        };
        let (got, lost) = run(9);
        assert_eq!(got as u64 + lost, 2_000);
        assert!((850..1_150).contains(&got), "{got}");
        assert_eq!(run(9), (got, lost), "one seed, one sequence of drops");
    }

    #[test]
    fn delay_holds_frames_towards_its_node() {
        let mut n = three();
        let t0 = Instant::now();
        for t in &mut n {
            t.set_now(Some(t0));
            t.apply(Fault::Delay {
                to: NodeId(2),
                by: Duration::from_millis(30),
            });
        }
        send(&mut n[0], Dest::Ring, 5);
        assert!(recv(&mut n[1]).is_empty(), "held back");
        assert_eq!(recv(&mut n[2]), vec![(1, 5)], "node 3 is not delayed");
        n[1].set_now(Some(t0 + Duration::from_millis(29)));
        assert!(recv(&mut n[1]).is_empty());
        n[1].set_now(Some(t0 + Duration::from_millis(30)));
        assert_eq!(recv(&mut n[1]), vec![(1, 5)]);
        assert_eq!(n[1].fault_stats().delayed, 1);
    }

    #[test]
    fn hold_keeps_frames_up_to_its_limit_and_releases_them_in_order_at_up() {
        let mut n = three();
        for t in &mut n {
            t.apply(Fault::Hold(2));
        }
        for byte in 1..=3 {
            send(&mut n[0], Dest::Ring, byte);
        }
        assert!(recv(&mut n[1]).is_empty(), "cut while held");
        assert!(recv(&mut n[2]).is_empty());
        assert_eq!(n[1].fault_stats().held, 2);
        assert_eq!(n[1].fault_stats().down_dropped, 1, "beyond the limit: lost");
        for t in &mut n {
            t.apply(Fault::Up);
        }
        send(&mut n[0], Dest::Ring, 4);
        assert_eq!(recv(&mut n[1]), vec![(1, 1), (1, 2)], "the burst first");
        assert_eq!(recv(&mut n[1]), vec![(1, 4)]);
        assert_eq!(recv(&mut n[2]), vec![(1, 1), (1, 2)]);
    }
}
