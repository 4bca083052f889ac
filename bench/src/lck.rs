//! `bench lck`: lock round trips beside CPG, on one cluster, in one run.
//!
//! One cluster of N `aisexec` (started as `bench throughput` starts them) is measured three
//! ways, in this order:
//!
//! 1. **Uncontended**: one client on node 1, a resource of its own, one synchronous EX
//!    `saLckResourceLock` then `saLckResourceUnlock` after another: pairs per second, and the
//!    latency of each pair (from the lock call to the unlock's answer: two safe-order ring
//!    messages).
//! 2. **Contended handover**: one client on node 1 and one on node 2 (or node 1 again in a
//!    one-node cluster), both locking EX one resource and unlocking at once, again and
//!    again: grants per second (with FIFO granting, each unlock hands the lock to the other).
//! 3. **CPG at the same load**: one sender on node 1 offered the pair rate of step 1 (paced as
//!    `bench throughput --latency-at` paces), 64-byte messages: latency from the call to the
//!    sender's own delivery (agreed).
//!
//! The LCK issue's target: uncontended lock+unlock p99 ≤ 2 × CPG self-delivery p99 at the
//! same load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ais_client::lck::{self, Lck, LockStatus, Mode};
use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::Workload;
use crate::measure::{self, Percentiles};
use crate::stack::{AisCluster, StackOptions, StackTransport};

/// Target: uncontended lock+unlock p99 at most this multiple of CPG's self-delivery p99.
pub const TARGET_LATENCY: f64 = 2.0;

/// Arguments of `bench lck`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
What runs, on one cluster started once (the executives `bench throughput` starts):
  1. one client on node 1: synchronous EX lock then unlock of a resource of its own, again
     and again: pairs/s and the latency of each pair
  2. a client on node 1 and one on node 2 locking EX one resource and unlocking: grants/s
  3. CPG, one sender on node 1 offered the pair rate of step 1 (64-byte messages):
     self-delivery latency at the same load
and prints them with the ratio the LCK issue targets: lock+unlock p99 <= 2 x CPG p99.

Examples:
  bench lck                                   namespaces (needs root), 3 nodes
  bench lck --transport udp --json lck.json   127.0.0.1, no namespaces; JSON file")]
pub struct Args {
    /// Executives in the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub nodes: u32,
    /// Seconds measured per step (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Seconds of warm-up per step.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// `udp-netns` (namespaces on a bridge, needs root) or `udp` (127.0.0.1).
    #[arg(long, default_value = "udp-netns")]
    pub transport: String,
    /// Frame encryption and authentication.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub crypto: String,
    /// Write the report as JSON here too.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `lck`.
    pub bench: &'static str,
    /// The command line.
    pub command: String,
    /// Transport.
    pub transport: String,
    /// Executives.
    pub nodes: usize,
    /// Uncontended lock+unlock pairs per second.
    pub pairs_per_sec: f64,
    /// Their latency, µs.
    pub pair_lat_us: Percentiles,
    /// Contended grants per second.
    pub handovers_per_sec: f64,
    /// CPG self-delivery latency at the pair rate, µs.
    pub cpg_lat_self_us: Percentiles,
    /// CPG messages per second delivered in that step.
    pub cpg_msgs_per_sec: f64,
    /// Pair p99 / CPG p99.
    pub p99_ratio: f64,
    /// Whether the ratio meets [`TARGET_LATENCY`].
    pub target_met: bool,
}

fn again<T>(mut op: impl FnMut() -> Result<T, ais_client::Error>) -> Result<T, ais_client::Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match op() {
            Err(e) if e.is_try_again() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Step 1: (pairs/s, latency histogram in µs).
fn uncontended(
    socket: &Path,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let mut l = Lck::connect(socket).context("connecting to node 1")?;
    let h = again(|| l.resource_open(b"bench-lck-uncontended", lck::RESOURCE_CREATE))?;
    let mut hist = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    let counted_from = start + warmup;
    let end = counted_from + window;
    let mut pairs = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        let (id, status) = again(|| l.lock(h, Mode::Ex, 0, 0, lck::TIME_END))?;
        anyhow::ensure!(
            status == LockStatus::Granted,
            "uncontended lock: {status:?}"
        );
        again(|| l.unlock(id))?;
        if t >= counted_from {
            pairs += 1;
            hist.record(t.elapsed().as_micros() as u64)?;
        }
    }
    let _ = l.resource_close(h);
    Ok((pairs as f64 / window.as_secs_f64(), hist))
}

/// Step 2: grants per second between two clients.
fn contended(sockets: [PathBuf; 2], warmup: Duration, window: Duration) -> anyhow::Result<f64> {
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let grants = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            let (counting, stop, grants) = (
                Arc::clone(&counting),
                Arc::clone(&stop),
                Arc::clone(&grants),
            );
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut l = Lck::connect(&socket)?;
                let h = again(|| l.resource_open(b"bench-lck-contended", lck::RESOURCE_CREATE))?;
                while !stop.load(Ordering::Relaxed) {
                    let (id, status) = again(|| l.lock(h, Mode::Ex, 0, 0, lck::TIME_END))?;
                    anyhow::ensure!(status == LockStatus::Granted, "contended lock: {status:?}");
                    if counting.load(Ordering::Relaxed) {
                        grants.fetch_add(1, Ordering::Relaxed);
                    }
                    again(|| l.unlock(id))?;
                }
                let _ = l.resource_close(h);
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(warmup);
    counting.store(true, Ordering::Relaxed);
    std::thread::sleep(window);
    counting.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a contending client panicked"))??;
    }
    Ok(grants.load(Ordering::Relaxed) as f64 / window.as_secs_f64())
}

/// Runs `bench lck`.
///
/// # Errors
/// The cluster does not start, a client fails, or the CPG measurement fails.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let transport: StackTransport = args.transport.parse()?;
    anyhow::ensure!(
        args.seconds > 0.0 && args.warmup >= 0.0,
        "--seconds must be positive and --warmup not negative"
    );
    let nodes = args.nodes as usize;
    let work = std::env::temp_dir().join(format!("oais-bench-lck-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let program = std::env::current_exe().context("locating the bench executable")?;
    let warmup = Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.seconds);
    let lab =
        if transport.needs_lab() {
            Some(netlab::Lab::new(nodes.max(2), 1500).context(
                "creating the network namespaces (needs root; --transport udp does not)",
            )?)
        } else {
            None
        };
    eprintln!(
        "bench lck: starting {nodes} executives ({}, crypto {})",
        transport.name(),
        args.crypto
    );
    let mut cluster = AisCluster::start(
        lab.as_ref(),
        &StackOptions {
            nodes,
            transport,
            crypto: args.crypto == "on",
            mtu: 1500,
            dir: work.join("cluster"),
            busy_poll: false,
            program,
            settings: Vec::new(),
        },
    )?;
    eprintln!("  LCK uncontended lock+unlock, one client on node 1");
    let (pairs_per_sec, hist) = uncontended(cluster.socket(1), warmup, window)?;
    anyhow::ensure!(pairs_per_sec > 0.0, "no lock+unlock pair inside the window");
    eprintln!("  LCK contended EX handover, clients on nodes 1 and 2");
    let handovers_per_sec = contended(
        [
            cluster.socket(1).to_path_buf(),
            cluster.socket(2.min(nodes)).to_path_buf(),
        ],
        warmup,
        window,
    )?;
    eprintln!("  CPG 64 B, 1 sender offered {pairs_per_sec:.0} msgs/s");
    let workload = Workload {
        group: "lckbench".to_owned(),
        size: 64,
        senders: 1,
        rate: Some(pairs_per_sec),
        batch: 64,
        warmup,
        window,
    };
    let m = measure::run(
        &mut cluster,
        &workload,
        &work.join("cpg"),
        |_, _| Ok(()),
        &measure::Options::default(),
    )
    .context("measuring CPG")?;
    drop(cluster);
    drop(lab);
    let _ = std::fs::remove_dir_all(&work);
    let pair_lat_us = Percentiles::of(&hist);
    let cpg_lat_self_us = Percentiles::of(&m.lat_self);
    let p99_ratio = pair_lat_us.p99 as f64 / cpg_lat_self_us.p99.max(1) as f64;
    let report = Report {
        bench: "lck",
        command: std::env::args().collect::<Vec<_>>().join(" "),
        transport: transport.name().to_owned(),
        nodes,
        pairs_per_sec,
        pair_lat_us,
        handovers_per_sec,
        cpg_lat_self_us,
        cpg_msgs_per_sec: m.msgs_per_sec,
        p99_ratio,
        target_met: p99_ratio <= TARGET_LATENCY,
    };
    let p = &report.pair_lat_us;
    let c = &report.cpg_lat_self_us;
    println!(
        "LCK uncontended lock+unlock: {:.0} pairs/s; latency µs p50 {} p99 {} p99.9 {} max {}",
        report.pairs_per_sec, p.p50, p.p99, p.p999, p.max
    );
    println!(
        "LCK contended EX handover (2 clients): {:.0} grants/s",
        report.handovers_per_sec
    );
    println!(
        "CPG 64 B at {:.0} msgs/s: self-delivery µs p50 {} p99 {} p99.9 {} max {}",
        report.cpg_msgs_per_sec, c.p50, c.p99, c.p999, c.max
    );
    println!(
        "target: lock+unlock p99 <= {TARGET_LATENCY} x CPG p99: {:.2} x, {}",
        report.p99_ratio,
        if report.target_met { "met" } else { "not met" }
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}
