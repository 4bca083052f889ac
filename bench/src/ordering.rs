//! CPU cost of the Totem ordering core alone: N nodes in one thread, connected by a lossless
//! in-memory queue, every node's send queue kept full. No sockets, no copies beyond what the
//! core itself makes; frames are sealed and opened as configured (CRC-32 only, or AES-256-GCM). The figure answers "can the protocol keep up with the link?".
//!
//! With more than one network, every node runs the redundant-ring layer (`totem_dpdk::rrp`)
//! between its core and the queue: each frame goes out on the networks the layer picks, every
//! copy goes through the layer, and only first copies reach the core. The figure is then the
//! layer's CPU cost on top of the core's.

use std::collections::VecDeque;
use std::time::Instant as WallClock;

use bytes::Bytes;
use totem_dpdk::crypto::{EpochKey, Protection};
use totem_dpdk::rrp::{NetId, NetSet, Rrp, RrpConfig, RrpMode, Verdict};
use totem_dpdk::srp::{Config, Dest, Event, Totem};
use totem_dpdk::{DeliveryKind, Instant, NodeId, Priority};

/// Parameters of one run.
#[derive(Debug, Clone)]
pub struct CoreBench {
    /// Ring size.
    pub nodes: u32,
    /// Message size in bytes.
    pub size: usize,
    /// Totem frame size (1472 or 8972).
    pub frame: usize,
    /// Wall-clock seconds to run.
    pub seconds: f64,
    /// Delivery guarantee of every message.
    pub kind: DeliveryKind,
    /// Frame protection (`Integrity`: CRC-32 only; `Encrypt`: AES-256-GCM, what `secauth`
    /// gives).
    pub protection: Protection,
    /// Networks of the redundant ring (1: no redundant-ring layer).
    pub networks: usize,
    /// How the redundant ring uses them.
    pub rrp_mode: RrpMode,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct CoreResult {
    /// Messages put in total order (delivered at node 1) per second.
    pub ordered_per_sec: f64,
    /// Deliveries at all nodes per second (each message counts once per node).
    pub deliveries_per_sec: f64,
    /// Payload megabytes per second ordered.
    pub mb_per_sec: f64,
    /// Wall time measured.
    pub elapsed: f64,
}

/// Runs the benchmark on the calling thread (one core).
pub fn run(p: &CoreBench) -> CoreResult {
    let members: Vec<NodeId> = (1..=p.nodes).map(NodeId).collect();
    let mut nodes: Vec<Totem> = members
        .iter()
        .map(|id| {
            let mut cfg = Config::new(*id, members.clone());
            cfg.max_frame_size = p.frame;
            cfg.protection = p.protection;
            if p.protection != Protection::Integrity {
                cfg.key = Some(EpochKey::new(0, vec![0x42; 32]).expect("valid key"));
            }
            Totem::new(cfg, Instant(0)).expect("valid config")
        })
        .collect();
    let mut rrps: Vec<Option<Rrp>> = members
        .iter()
        .map(|id| {
            (p.networks > 1).then(|| {
                Rrp::new(RrpConfig::new(p.networks, p.rrp_mode), *id).expect("valid rrp config")
            })
        })
        .collect();
    let payload = Bytes::from(vec![0xa5u8; p.size]);
    let mut wire: VecDeque<(usize, u8, Bytes)> = VecDeque::new();
    let fan_out = |wire: &mut VecDeque<(usize, u8, Bytes)>,
                   rrp: &mut Option<Rrp>,
                   from: usize,
                   n: usize,
                   t: totem_dpdk::srp::Transmit| {
        let nets = rrp.as_mut().map_or(NetSet(1), |r| r.networks_for(&t.frame));
        for net in nets.iter() {
            match t.dest {
                Dest::Ring => {
                    for to in (0..n).filter(|to| *to != from) {
                        wire.push_back((to, net.0, t.frame.clone()));
                    }
                }
                Dest::Node(id) => wire.push_back((id.0 as usize - 1, net.0, t.frame.clone())),
            }
        }
    };
    let mut delivered = vec![0u64; nodes.len()];
    let keep_queued = 256;
    let started = WallClock::now();
    let mut now = Instant(0);
    let mut i = 0usize;
    loop {
        // Keep every send queue topped up.
        for node in nodes.iter_mut() {
            while node.queued_messages() < keep_queued {
                if node
                    .submit(Priority::NORMAL, p.kind, payload.clone())
                    .is_err()
                {
                    break;
                }
            }
        }
        for n in 0..nodes.len() {
            while let Some(t) = nodes[n].poll_transmit() {
                fan_out(&mut wire, &mut rrps[n], n, nodes.len(), t);
            }
            while let Some(e) = nodes[n].poll_event() {
                if let Event::Deliver(_) = e {
                    delivered[n] += 1;
                }
            }
        }
        // Carry everything in flight.
        while let Some((to, net, frame)) = wire.pop_front() {
            now = Instant(now.0 + 1_000);
            if let Some(r) = rrps[to].as_mut() {
                if r.poll_timeout().is_some_and(|at| at <= now) {
                    r.handle_timeout(now);
                }
                if r.handle_frame(now, NetId(net), &frame) == Verdict::Duplicate {
                    continue;
                }
            }
            nodes[to].handle_frame(now, &frame);
            while let Some(t) = nodes[to].poll_transmit() {
                fan_out(&mut wire, &mut rrps[to], to, nodes.len(), t);
            }
            while let Some(e) = nodes[to].poll_event() {
                if let Event::Deliver(_) = e {
                    delivered[to] += 1;
                }
            }
            if nodes[to].queued_messages() < keep_queued / 2 {
                break;
            }
        }
        i += 1;
        if i.is_multiple_of(64) && started.elapsed().as_secs_f64() >= p.seconds {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ordered = delivered[0] as f64;
    CoreResult {
        ordered_per_sec: ordered / elapsed,
        deliveries_per_sec: delivered.iter().sum::<u64>() as f64 / elapsed,
        mb_per_sec: ordered * p.size as f64 / elapsed / 1e6,
        elapsed,
    }
}
