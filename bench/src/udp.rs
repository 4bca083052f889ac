//! Throughput of Totem drivers over kernel UDP on the loopback interface: N drivers (one
//! thread each, the real clock, the real socket path with `sendmmsg`/`recvmmsg`) in this
//! process, every node submitting as fast as flow control allows, frames sealed as configured.
//! It is the transport path of `aisexec` without the client IPC, so it shows what the ring
//! itself carries and what crypto costs on that path.
//!
//! On a 2-core machine the N driver threads and their feeders share the cores: the figure is
//! CPU-bound, which is exactly where a crypto cost shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dataplane::Member;
use dataplane::udp::{UdpConfig, UdpTransport};
use totem_dpdk::crypto::{EpochKey, Protection};
use totem_dpdk::driver::{self, DriverConfig};
use totem_dpdk::srp::{self, ConfigKind, Event};
use totem_dpdk::{DeliveryKind, NodeId, Priority};

/// Parameters of one run.
#[derive(Debug, Clone)]
pub struct UdpBench {
    /// Ring size.
    pub nodes: u32,
    /// Message size in bytes.
    pub size: usize,
    /// Totem frame size (1472 or 8972).
    pub frame: usize,
    /// Seconds measured (after the ring formed and a warm-up of 0.5 s).
    pub seconds: f64,
    /// Frame protection.
    pub protection: Protection,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct UdpResult {
    /// Messages delivered at node 1 per second (the ring's ordered rate).
    pub msgs_per_sec: f64,
    /// Payload megabytes per second delivered at node 1.
    pub mb_per_sec: f64,
    /// Submits refused with backpressure (and retried).
    pub backpressure: u64,
}

/// Event counts of one node, kept by its driver thread (the [`driver::EventSink`]).
#[derive(Debug, Default)]
struct Counts {
    delivered: AtomicU64,
    /// Members of the last regular configuration.
    members: AtomicU64,
    /// Flow control: the core refused a submit and has not reported `Clear` since.
    blocked: AtomicBool,
}

/// The sink: a handle on the shared counts.
struct Sink(Arc<Counts>);

impl driver::EventSink for Sink {
    fn event(&mut self, event: Event) {
        match event {
            Event::Deliver(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Event::ConfigChange(c) if c.kind == ConfigKind::Regular => {
                self.0
                    .members
                    .store(c.members.len() as u64, Ordering::Relaxed);
            }
            Event::FlowControl(f) => {
                let blocked = f == totem_dpdk::srp::FlowControl::Blocked;
                self.0.blocked.store(blocked, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Runs the benchmark.
///
/// # Errors
/// A socket or driver that cannot be created, or a ring that does not form within 10 s.
pub fn run(p: &UdpBench) -> anyhow::Result<UdpResult> {
    let transports = (0..p.nodes)
        .map(|_| {
            let mut c = UdpConfig::unicast("127.0.0.1:0".parse().expect("address"));
            c.mtu = p.frame;
            UdpTransport::new(c)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let members: Vec<Member> = transports
        .iter()
        .enumerate()
        .map(|(i, t)| Member {
            id: dataplane::NodeId(i as u32 + 1),
            addr: t.local_addr(),
        })
        .collect();
    let key = EpochKey::new(0, vec![0x42; 32])?;
    let mut drivers = Vec::new();
    let mut counters = Vec::new();
    for (i, t) in transports.into_iter().enumerate() {
        let mut totem = srp::Config::new(NodeId(i as u32 + 1), Vec::new());
        totem.max_frame_size = p.frame;
        totem.protection = p.protection;
        if p.protection != Protection::Integrity {
            totem.key = Some(key.clone());
        }
        let c = Arc::new(Counts::default());
        counters.push(Arc::clone(&c));
        drivers.push(driver::spawn_with(
            t,
            DriverConfig::new(totem, members.clone()),
            Sink(c),
        )?);
    }
    // Wait for the ring of all nodes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters
        .iter()
        .any(|c| c.members.load(Ordering::Relaxed) != u64::from(p.nodes))
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the ring did not form within 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let backpressure = Arc::new(AtomicU64::new(0));
    let payload = Bytes::from(vec![0x5au8; p.size]);
    let feeders: Vec<_> = drivers
        .iter()
        .zip(&counters)
        .map(|(d, counts)| {
            let counts = Arc::clone(counts);
            let s = d.submitter();
            let stop = Arc::clone(&stop);
            let bp = Arc::clone(&backpressure);
            let payload = payload.clone();
            std::thread::spawn(move || {
                let inflight = Arc::new(AtomicU64::new(0));
                while !stop.load(Ordering::Relaxed) {
                    // As an AIS client after TRY_AGAIN: wait until the queues drained.
                    if counts.blocked.load(Ordering::Relaxed)
                        || inflight.load(Ordering::Relaxed) >= 256
                    {
                        std::thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    inflight.fetch_add(1, Ordering::Relaxed);
                    let done = Arc::clone(&inflight);
                    let bp2 = Arc::clone(&bp);
                    let queued = s.try_submit_with(
                        Priority::NORMAL,
                        DeliveryKind::Agreed,
                        payload.clone(),
                        Box::new(move |r| {
                            if r.is_err() {
                                bp2.fetch_add(1, Ordering::Relaxed);
                            }
                            done.fetch_sub(1, Ordering::Relaxed);
                        }),
                    );
                    if queued.is_err() {
                        inflight.fetch_sub(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            })
        })
        .collect();
    // Count deliveries at node 1 after a warm-up.
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let before = counters[0].delivered.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(p.seconds));
    let delivered = counters[0].delivered.load(Ordering::Relaxed) - before;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in feeders {
        let _ = f.join();
    }
    for d in drivers {
        let _ = d.stop();
    }
    Ok(UdpResult {
        msgs_per_sec: delivered as f64 / elapsed,
        mb_per_sec: delivered as f64 * p.size as f64 / elapsed / 1e6,
        backpressure: backpressure.load(Ordering::Relaxed),
    })
}
