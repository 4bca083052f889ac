//! The Totem side of `bench dpdk-ring` ([`super::measure_ring`]) and of the bare-ring arm of
//! `bench throughput` ([`super::measure_udp_ring`]): a `raw-peer --role ring` process is one
//! node of an N-node ring. Its driver thread generates the load itself
//! ([`EventSink::run`](totem_dpdk::driver::EventSink::run): submits straight into the core
//! until flow control refuses), so no client or feeder thread competes with it.
//!
//! Two ways to set a node up, one load and one report:
//! - DPDK (`bench dpdk-ring`, two nodes): the same port, pinning and EAL arguments as the raw
//!   peers; the driver thread busy-polls on its own core.
//! - Kernel UDP (`--config`, any number of nodes): the node reads an `aisexec` configuration
//!   file and runs exactly the Totem core, transport(s), members and frame protection the
//!   executive of that file runs (the same `totem_config`, `udp_config_on`, key file and
//!   redundant-ring settings), without its service loop, IPC and clients. Its nonce counter
//!   continues from the executive's persisted one, so a key never seals two frames with one
//!   nonce.
//!
//! The protocol on stdin/stdout is the raw peers': `up` once the port or socket is open
//! (node 2, the memif server, is started first and node 1 after its `up`), `ready` once the
//! ring of all nodes formed, then `start NS`; load from NS to NS + warm-up + window,
//! deliveries counted inside the window by the time they are delivered; then the peer waits
//! until no delivery came for [`RING_QUIET`] (the send queues have drained) and prints its
//! [`PeerReport`]: in-window deliveries and bytes, every delivery's count, an order digest
//! over all of them, and FIFO breaks per sender (a gap or repeat in a sender's message
//! numbers). The harness compares the nodes' reports and writes `again` while they differ
//! (one still delivering; the peer waits for quiet and reports again), then closes stdin: the
//! peer stops its driver and exits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use totem_dpdk::crypto::{EpochKey, Protection};
use totem_dpdk::driver::{self, DriverConfig, EventSink};
use totem_dpdk::srp::{ConfigKind, Event, Totem};
use totem_dpdk::{DeliveryKind, Priority};

use super::protocol::{HANDSHAKE, now_ns, parse_start};
use super::{PeerArgs, PeerReport};

/// Submits per [`EventSink::run`] call at most (the rest waits for the next loop iteration,
/// so received frames and the token are not held up by a long burst of submits).
const SUBMITS_PER_RUN: usize = 64;
/// After the load, a node reports once no message was delivered for this long ...
const RING_QUIET: Duration = Duration::from_millis(200);
/// ... or this long after it started waiting (the send queues drain after the load ends).
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// What the driver thread counts; read by the main thread.
#[derive(Debug, Default)]
struct Shared {
    /// Members of the last regular configuration.
    members: AtomicU64,
    /// The start time (`CLOCK_REALTIME` ns); 0 until `start`.
    start: AtomicU64,
    /// Deliveries inside the window, and their payload bytes.
    in_window: AtomicU64,
    bytes: AtomicU64,
    /// Every delivery, and the `CLOCK_REALTIME` of the last one.
    delivered: AtomicU64,
    last_delivery: AtomicU64,
    /// Submits the core accepted inside the window.
    submitted: AtomicU64,
    /// FNV-1a over every delivered message id, in delivery order.
    digest: AtomicU64,
    /// Deliveries whose sender's message number was not the previous one plus one.
    fifo_breaks: AtomicU64,
    /// Configuration changes after the ring formed (there should be none).
    changes: AtomicU64,
    /// With a fixed load: submit to own delivery, microseconds, of the messages submitted
    /// inside the window (created by [`ring_peer`]).
    latency: Mutex<Option<Histogram<u64>>>,
}

/// A fixed offered load (`raw-peer --rate`): message k is due k intervals after the start.
/// Each carries the `CLOCK_REALTIME` of its submit (ns, little-endian) in its first 8 bytes;
/// the node's own deliveries of those submitted inside the window give the self-latency.
#[derive(Debug, Clone, Copy)]
struct Fixed {
    /// Nanoseconds between two messages.
    interval_ns: f64,
    /// Messages the core accepted since the start.
    sent: u64,
    /// This node's id: whose deliveries are its own.
    own: u32,
}

/// The sink on the driver thread: counts deliveries and generates the load.
struct Sink {
    shared: Arc<Shared>,
    payload: Bytes,
    warmup_ns: u64,
    window_ns: u64,
    /// Members of the full ring: the ring has formed when a regular configuration has this
    /// many.
    nodes: usize,
    /// Last message number delivered per sender, indexed by node id (ids above its length
    /// are not members).
    last_no: Vec<u64>,
    digest: u64,
    formed: bool,
    /// `None`: as fast as flow control allows.
    fixed: Option<Fixed>,
}

impl Sink {
    /// (start, window start, end) once `start` was given.
    fn times(&self) -> Option<(u64, u64, u64)> {
        match self.shared.start.load(Ordering::Acquire) {
            0 => None,
            s => Some((s, s + self.warmup_ns, s + self.warmup_ns + self.window_ns)),
        }
    }
}

impl EventSink for Sink {
    fn event(&mut self, event: Event) {
        match event {
            Event::Deliver(d) => {
                let now = now_ns();
                let s = &self.shared;
                s.delivered.fetch_add(1, Ordering::Relaxed);
                s.last_delivery.store(now, Ordering::Relaxed);
                if let Some((_, from, to)) = self.times() {
                    if (from..to).contains(&now) {
                        s.in_window.fetch_add(1, Ordering::Relaxed);
                        s.bytes.fetch_add(d.payload.len() as u64, Ordering::Relaxed);
                    }
                    if let Some(f) = &self.fixed
                        && d.id.sender.0 == f.own
                        && let Some(stamp) = d.payload.get(..8)
                    {
                        let stamp = u64::from_le_bytes(stamp.try_into().expect("8 bytes"));
                        if (from..to).contains(&stamp) {
                            let us = (now.saturating_sub(stamp) / 1000).max(1);
                            if let Some(h) = s.latency.lock().expect("not poisoned").as_mut() {
                                h.saturating_record(us);
                            }
                        }
                    }
                }
                let sender = d.id.sender.0 as usize;
                if let Some(last) = self.last_no.get_mut(sender) {
                    if d.id.no != *last + 1 {
                        s.fifo_breaks.fetch_add(1, Ordering::Relaxed);
                    }
                    *last = d.id.no;
                } else {
                    s.fifo_breaks.fetch_add(1, Ordering::Relaxed);
                }
                for b in u64::from(d.id.sender.0)
                    .to_le_bytes()
                    .into_iter()
                    .chain(d.id.no.to_le_bytes())
                {
                    self.digest = (self.digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                s.digest.store(self.digest, Ordering::Relaxed);
            }
            Event::ConfigChange(c) if c.kind == ConfigKind::Regular => {
                if self.formed {
                    self.shared.changes.fetch_add(1, Ordering::Relaxed);
                }
                self.formed |= c.members.len() == self.nodes;
                self.shared
                    .members
                    .store(c.members.len() as u64, Ordering::Release);
            }
            _ => {}
        }
    }

    fn run(&mut self, core: &mut Totem) -> Option<Duration> {
        let (start, from, to) = self.times()?;
        let now = now_ns();
        if now < start {
            return Some(Duration::from_nanos(start - now));
        }
        if now >= to {
            return None;
        }
        if let Some(f) = self.fixed.as_mut() {
            return fixed_load(core, f, &self.payload, &self.shared, (start, from), now);
        }
        let mut accepted = 0;
        let mut refused = false;
        for _ in 0..SUBMITS_PER_RUN {
            if core
                .submit(Priority::NORMAL, DeliveryKind::Agreed, self.payload.clone())
                .is_err()
            {
                refused = true;
                break;
            }
            accepted += 1;
        }
        if now >= from {
            self.shared.submitted.fetch_add(accepted, Ordering::Relaxed);
        }
        if refused {
            // Flow control: the queue is full until the token takes some of it, and the
            // token's arrival wakes the thread (a busy-polling one never sleeps anyway).
            // Spinning here would take the core from the other nodes' processes on a
            // machine with fewer cores than nodes.
            None
        } else {
            // Room left: call again without sleeping.
            Some(Duration::ZERO)
        }
    }
}

/// One [`EventSink::run`] call of a fixed load `f` started at `start` (window from `from`):
/// submits every message due by `now` (at most [`SUBMITS_PER_RUN`]), each a copy of
/// `payload` stamped with `now`, and returns how long the thread may sleep: until the next
/// one is due, no time while some are overdue, no limit while flow control refuses (the
/// token's arrival wakes the thread; the refused message is stamped again when it goes).
fn fixed_load(
    core: &mut Totem,
    f: &mut Fixed,
    payload: &Bytes,
    shared: &Shared,
    (start, from): (u64, u64),
    now: u64,
) -> Option<Duration> {
    let due = ((now - start) as f64 / f.interval_ns) as u64 + 1;
    let mut accepted = 0;
    while f.sent < due && accepted < SUBMITS_PER_RUN as u64 {
        let mut m = BytesMut::from(&payload[..]);
        m[..8].copy_from_slice(&now.to_le_bytes());
        if core
            .submit(Priority::NORMAL, DeliveryKind::Agreed, m.freeze())
            .is_err()
        {
            if now >= from {
                shared.submitted.fetch_add(accepted, Ordering::Relaxed);
            }
            return None;
        }
        f.sent += 1;
        accepted += 1;
    }
    if now >= from {
        shared.submitted.fetch_add(accepted, Ordering::Relaxed);
    }
    if f.sent < due {
        return Some(Duration::ZERO);
    }
    let next = start + (f.sent as f64 * f.interval_ns) as u64;
    Some(Duration::from_nanos(next.saturating_sub(now)))
}

/// The driver configuration of a DPDK ring node (`bench dpdk-ring`): node 1 or 2 of a
/// two-node ring, Totem timers in `aisexec`'s ratios, a fixed key when `--crypto`.
#[cfg(feature = "dpdk")]
pub(super) fn dpdk_config(args: &PeerArgs) -> anyhow::Result<DriverConfig> {
    use super::protocol::{RECEIVER, SENDER};
    use dataplane::Member;
    use totem_dpdk::{NodeId, srp};
    let me = match args.node {
        1 => SENDER,
        2 => RECEIVER,
        n => bail!("--node must be 1 or 2, not {n}"),
    };
    let mut totem = srp::Config::new(NodeId(me.0), Vec::new());
    totem.max_frame_size = args.mtu;
    // aisexec's ratios: consensus 1.2 × token, pause detection at half of it.
    totem.token_timeout = totem_dpdk::Duration::from_millis(args.token_ms);
    totem.consensus_timeout = totem_dpdk::Duration::from_millis(args.token_ms * 6 / 5);
    totem.pause_threshold = totem_dpdk::Duration::from_millis(args.token_ms / 2);
    totem.window_size = args.window_size;
    totem.max_messages = args.max_messages;
    if args.crypto {
        totem.protection = Protection::Encrypt;
        totem.key = Some(EpochKey::new(0, vec![0x42; 32])?);
    } else {
        totem.protection = Protection::Integrity;
    }
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let members = vec![Member { id: SENDER, addr }, Member { id: RECEIVER, addr }];
    let mut cfg = DriverConfig::new(totem, members);
    cfg.cpu = args.cpu;
    Ok(cfg)
}

/// A kernel UDP ring node as the `aisexec` of the configuration file `path` would run it:
/// its Totem configuration, members, frame protection and key, redundant-ring settings, and
/// one UDP transport per network. The nonce counter continues from the executive's
/// persisted one in `aisexec.state_dir` (and the file is moved past what this node may use).
pub(super) fn udp_node(
    path: &std::path::Path,
) -> anyhow::Result<(DriverConfig, Vec<dataplane::udp::UdpTransport>)> {
    use ais::config::{Config, FrameProtection};
    let config = Config::from_file(path).with_context(|| format!("reading {}", path.display()))?;
    let mut totem = config.totem_config();
    let protection = config.protection();
    totem.protection = match protection {
        FrameProtection::Integrity => Protection::Integrity,
        FrameProtection::Authenticate => Protection::Authenticate,
        FrameProtection::Encrypt => Protection::Encrypt,
    };
    if protection.needs_key() {
        let m = ais::keyfile::read(&config.totem.keyfile)?;
        totem.key = Some(EpochKey::new(m.epoch, m.secret)?);
        let mut nonce = ais::ringseq::RingSeqFile::open_named(&config.aisexec.state_dir, "nonce")
            .context("the executive's nonce file")?;
        totem.nonce_start = nonce.load();
        // Far more than a benchmark run seals.
        nonce.store(totem.nonce_start + (1 << 40))?;
    }
    let networks = config.networks();
    let cfg = config.driver_config(totem);
    let transports = (0..networks)
        .map(|k| {
            let c = config.udp_config_on(k);
            let bind = c.bind;
            dataplane::udp::UdpTransport::new(c)
                .with_context(|| format!("opening the Totem socket {bind}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((cfg, transports))
}

/// Runs one node of the ring described by `cfg` over `transports` (one per network, already
/// open) and speaks the protocol of the module documentation.
pub(super) fn ring_peer<T: dataplane::Transport + Send + 'static>(
    transports: Vec<T>,
    cfg: DriverConfig,
    args: &PeerArgs,
    stdin: &Receiver<String>,
) -> anyhow::Result<()> {
    // As aisexec does, so that the bare ring and the stack run on the same allocator settings.
    dataplane::heap::keep_freed_memory(dataplane::heap::HeapSettings::default());
    let nodes = cfg.members.len();
    let max_id = cfg.members.iter().map(|m| m.id.0).max().unwrap_or(0) as usize;
    let shared = Arc::new(Shared::default());
    let fixed = match args.rate {
        None => None,
        Some(r) if r.is_finite() && r > 0.0 && args.size >= 8 => {
            *shared.latency.lock().expect("not poisoned") = Some(latency_histogram());
            Some(Fixed {
                interval_ns: 1e9 / r,
                sent: 0,
                own: cfg.totem.node_id.0,
            })
        }
        Some(r) => bail!(
            "--rate needs a positive number of messages a second and --size of at least 8 \
             (the submit time is stamped into each message), not {r} and {}",
            args.size
        ),
    };
    let sink = Sink {
        shared: Arc::clone(&shared),
        payload: Bytes::from(vec![0x5a; args.size]),
        warmup_ns: args.warmup_ms * 1_000_000,
        window_ns: args.window_ms * 1_000_000,
        nodes,
        last_no: vec![0; max_id + 1],
        digest: 0xcbf2_9ce4_8422_2325,
        formed: false,
        fixed,
    };
    // The port is open (a memif server listens): the harness starts the other node now.
    println!("up");
    std::io::Write::flush(&mut std::io::stdout())?;
    let drv = driver::spawn_networks(transports, cfg, sink).context("starting the Totem driver")?;

    // The ring of all nodes (a memif link can take seconds to come up).
    let deadline = Instant::now() + HANDSHAKE;
    while shared.members.load(Ordering::Acquire) != nodes as u64 {
        if Instant::now() > deadline {
            bail!("the ring of all {nodes} nodes did not form within {HANDSHAKE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("ready");
    std::io::Write::flush(&mut std::io::stdout())?;
    let line = stdin
        .recv_timeout(Duration::from_secs(120))
        .context("no `start` on stdin")?;
    let start = parse_start(&line)?;
    shared.start.store(start, Ordering::Release);
    // Nothing is submitted after `end`: report once the deliveries stopped, and again each
    // time the harness asks (the two nodes' reports differ while one still delivers).
    let end = start + (args.warmup_ms + args.window_ms) * 1_000_000;
    super::protocol::wait_until(end);
    loop {
        let give_up = now_ns() + DRAIN_MAX.as_nanos() as u64;
        loop {
            let now = now_ns();
            let last = shared.last_delivery.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= RING_QUIET.as_nanos() as u64 || now >= give_up {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // The core's own counters, read on the driver thread.
        let (tx, rx) = std::sync::mpsc::channel();
        let core = drv
            .submitter()
            .with_core(Box::new(move |core| {
                let _ = tx.send(core.stats().clone());
            }))
            .ok()
            .and_then(|()| rx.recv_timeout(Duration::from_secs(5)).ok())
            .context("the Totem driver did not answer")?;
        let report = PeerReport {
            role: "ring".into(),
            frames_retransmitted: core.frames_retransmitted,
            token_retransmits: core.token_retransmits,
            pauses_detected: core.pauses_detected,
            rings_installed: core.rings_installed,
            sent: shared.submitted.load(Ordering::Relaxed),
            received: shared.in_window.load(Ordering::Relaxed),
            bytes: shared.bytes.load(Ordering::Relaxed),
            delivered: shared.delivered.load(Ordering::Relaxed),
            digest: shared.digest.load(Ordering::Relaxed),
            fifo_breaks: shared.fifo_breaks.load(Ordering::Relaxed),
            config_changes: shared.changes.load(Ordering::Relaxed),
            lat_self_us: shared
                .latency
                .lock()
                .expect("not poisoned")
                .as_ref()
                .map(|h| {
                    h.iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value()))
                        .collect()
                })
                .unwrap_or_default(),
            ..PeerReport::default()
        };
        println!("{}", serde_json::to_string(&report)?);
        std::io::Write::flush(&mut std::io::stdout())?;
        match stdin.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l.trim() == "again" => {}
            Ok(l) => bail!("expected `again` or the end of stdin, got {l:?}"),
            Err(_) => break,
        }
    }
    let stats = drv.stop().context("stopping the Totem driver")?;
    // For the harness's error messages (it quotes the log's tail).
    eprintln!(
        "node {}: {} delivered, the last {} ms after the end of the load; core {:?}",
        args.node,
        shared.delivered.load(Ordering::Relaxed),
        shared
            .last_delivery
            .load(Ordering::Relaxed)
            .saturating_sub(end)
            / 1_000_000,
        stats.core
    );
    Ok(())
}

/// Microseconds from 1 to 120 s, 3 significant digits (as the load generators' analysis).
pub(super) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds")
}

#[cfg(test)]
mod tests {
    use totem_dpdk::srp::Delivery;
    use totem_dpdk::{MsgId, NodeId, RingId, Seq};

    use super::*;

    fn sink() -> Sink {
        Sink {
            shared: Arc::new(Shared::default()),
            payload: Bytes::new(),
            warmup_ns: 0,
            window_ns: 0,
            nodes: 2,
            last_no: vec![0; 3],
            digest: 0xcbf2_9ce4_8422_2325,
            formed: false,
            fixed: None,
        }
    }

    fn deliver(s: &mut Sink, sender: u32, no: u64) {
        deliver_payload(s, sender, no, Bytes::from_static(b"m"));
    }

    fn deliver_payload(s: &mut Sink, sender: u32, no: u64, payload: Bytes) {
        s.event(Event::Deliver(Delivery {
            id: MsgId {
                sender: NodeId(sender),
                no,
            },
            ring: RingId {
                seq: 4,
                rep: NodeId(1),
            },
            seq: Seq(no),
            kind: DeliveryKind::Agreed,
            payload,
        }));
    }

    #[test]
    fn the_load_waits_for_the_start_and_sleeps_while_flow_control_refuses() {
        let mut cfg = totem_dpdk::srp::Config::new(NodeId(1), vec![NodeId(1)]);
        cfg.max_queued_messages = 100;
        let mut core = Totem::new(cfg, totem_dpdk::Instant(0)).unwrap();
        let mut s = sink();
        s.payload = Bytes::from_static(b"load");
        s.window_ns = 60_000_000_000;
        // No start yet: nothing to do, no limit on the sleep.
        assert_eq!(s.run(&mut core), None);
        // A start ahead: sleep until then at most, nothing submitted.
        s.shared
            .start
            .store(now_ns() + 30_000_000_000, Ordering::Release);
        let wait = s.run(&mut core).expect("a wake-up at the start");
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(core.queued_messages(), 0);
        // Started: 64 per call, again at once while the core takes them all ...
        s.shared.start.store(now_ns() - 1, Ordering::Release);
        assert_eq!(s.run(&mut core), Some(Duration::ZERO));
        assert_eq!(core.queued_messages(), 64);
        // ... then, refused at 100, sleep until the transport wakes the thread.
        assert_eq!(s.run(&mut core), None);
        assert_eq!(core.queued_messages(), 100);
        assert_eq!(s.shared.submitted.load(Ordering::Relaxed), 100);
        // After the window: no more load.
        s.shared.start.store(1, Ordering::Release);
        assert_eq!(s.run(&mut core), None);
        assert_eq!(core.queued_messages(), 100);
    }

    /// A one-node core that queues up to `max` messages, and a sink with a fixed load of one
    /// message every `interval_ns`, started `ago_ns` ago, window from the start on for a
    /// minute.
    fn fixed_sink(max: usize, interval_ns: f64, ago_ns: u64) -> (Totem, Sink) {
        let mut cfg = totem_dpdk::srp::Config::new(NodeId(1), vec![NodeId(1)]);
        cfg.max_queued_messages = max;
        let core = Totem::new(cfg, totem_dpdk::Instant(0)).unwrap();
        let mut s = sink();
        s.payload = Bytes::from(vec![0x5a; 16]);
        s.window_ns = 60_000_000_000;
        s.fixed = Some(Fixed {
            interval_ns,
            sent: 0,
            own: 1,
        });
        *s.shared.latency.lock().unwrap() = Some(latency_histogram());
        s.shared.start.store(now_ns() - ago_ns, Ordering::Release);
        (core, s)
    }

    #[test]
    fn a_fixed_load_submits_what_is_due_then_sleeps_until_the_next_one() {
        // One every 20 ms, 210 ms in: messages 0..=10 are due, the next at 220 ms (the 10 ms
        // to it leave room for a slow test machine).
        let (mut core, mut s) = fixed_sink(1000, 2e7, 210_000_000);
        let wait = s.run(&mut core).expect("a wake-up for the next message");
        assert_eq!(core.queued_messages(), 11);
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        // Called again at once: nothing more is due.
        let wait = s.run(&mut core).expect("a wake-up for the next message");
        assert_eq!(core.queued_messages(), 11);
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(10),
            "{wait:?}"
        );
        assert_eq!(s.shared.submitted.load(Ordering::Relaxed), 11);
    }

    #[test]
    fn an_overdue_fixed_load_catches_up_in_bursts_and_waits_for_flow_control() {
        // 200 ms in: 201 due; 64 per call, no sleep while behind.
        let (mut core, mut s) = fixed_sink(150, 1e6, 200_000_000);
        assert_eq!(s.run(&mut core), Some(Duration::ZERO));
        assert_eq!(core.queued_messages(), 64);
        assert_eq!(s.run(&mut core), Some(Duration::ZERO));
        // Refused at 150: sleep until the token comes (the transport wakes the thread).
        assert_eq!(s.run(&mut core), None);
        assert_eq!(core.queued_messages(), 150);
        assert_eq!(s.fixed.unwrap().sent, 150);
        assert_eq!(s.shared.submitted.load(Ordering::Relaxed), 150);
    }

    fn deliver_stamped(s: &mut Sink, sender: u32, stamp: Option<u64>) {
        let payload = match stamp {
            Some(t) => Bytes::from([t.to_le_bytes(), [0; 8]].concat()),
            None => Bytes::from_static(b"short"),
        };
        let no = s.last_no.get(sender as usize).map_or(1, |n| n + 1);
        deliver_payload(s, sender, no, payload);
    }

    #[test]
    fn only_own_messages_submitted_inside_the_window_are_timed() {
        let (_, mut s) = fixed_sink(10, 1e6, 5_000_000_000);
        s.warmup_ns = 1_000_000_000;
        let start = s.shared.start.load(Ordering::Relaxed);
        let now = now_ns();
        deliver_stamped(&mut s, 1, Some(now - 2_000_000)); // own, 2 ms ago: timed
        deliver_stamped(&mut s, 2, Some(now - 3_000_000)); // another node's
        deliver_stamped(&mut s, 1, Some(start + 500_000_000)); // own, in the warm-up
        deliver_stamped(&mut s, 1, None); // too short to carry a stamp
        let h = s.shared.latency.lock().unwrap().clone().unwrap();
        assert_eq!(h.len(), 1);
        let us = h.max();
        assert!((2_000..1_000_000).contains(&us), "{us} µs");
        // Every delivery still counts for the rate.
        assert_eq!(s.shared.in_window.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_gap_a_repeat_or_an_unknown_sender_breaks_fifo() {
        let mut s = sink();
        for (sender, no) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            deliver(&mut s, sender, no);
        }
        assert_eq!(s.shared.fifo_breaks.load(Ordering::Relaxed), 0);
        deliver(&mut s, 1, 4); // 3 missing
        deliver(&mut s, 2, 2); // a repeat
        deliver(&mut s, 7, 1); // not a member
        assert_eq!(s.shared.fifo_breaks.load(Ordering::Relaxed), 3);
        assert_eq!(s.shared.delivered.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn the_digest_follows_the_delivery_order() {
        let (mut a, mut b) = (sink(), sink());
        deliver(&mut a, 1, 1);
        deliver(&mut a, 2, 1);
        deliver(&mut b, 2, 1);
        deliver(&mut b, 1, 1);
        let digest = |s: &Sink| s.shared.digest.load(Ordering::Relaxed);
        assert_ne!(digest(&a), digest(&b));
        let mut c = sink();
        deliver(&mut c, 1, 1);
        deliver(&mut c, 2, 1);
        assert_eq!(digest(&a), digest(&c));
    }

    #[test]
    fn a_configuration_change_after_the_ring_formed_is_counted() {
        let mut s = sink();
        let regular = |members: &[u32]| {
            Event::ConfigChange(totem_dpdk::srp::ConfigChange {
                kind: ConfigKind::Regular,
                ring: RingId {
                    seq: 8,
                    rep: NodeId(1),
                },
                members: members.iter().map(|&n| NodeId(n)).collect(),
                left: Vec::new(),
                joined: Vec::new(),
                failed: Vec::new(),
            })
        };
        s.event(regular(&[1]));
        s.event(regular(&[1, 2]));
        assert_eq!(s.shared.changes.load(Ordering::Relaxed), 0);
        assert_eq!(s.shared.members.load(Ordering::Relaxed), 2);
        s.event(regular(&[1]));
        assert_eq!(s.shared.changes.load(Ordering::Relaxed), 1);
    }
}
