//! `bench dpdk-ring`: Totem over DPDK measured like for like against the raw frame rate of the
//! same device, in one run.
//!
//! Each node is its own process (EAL once per process) with its Totem driver thread pinned to
//! its own core and busy-polling, and its load generated on that thread
//! ([`crate::raw::measure_ring`]): nothing else of the benchmark runs on the cores while it
//! measures (no executive, no IPC, no client or feeder thread). The raw figure
//! ([`crate::raw::measure`]) is one stream of frames of the largest Totem frame's size from
//! node 1's core to node 2's, through the same `DpdkTransport`, EAL arguments and pinning.
//! On a 2-core machine the two nodes take both cores, so run it alone.
//!
//! Per transport and MTU, `--runs` alternations of raw then ring; the summary line gives the
//! medians and the ratio messages/s ÷ raw frames/s (issue 22's like-for-like target: at least
//! 70% over `net_af_packet` with one 1 KiB message per frame at MTU 1500, and more messages
//! than raw frames at 9000, where Totem packs several per frame).

use std::path::Path;

use anyhow::Context;
use netlab::Lab;

use crate::raw::{self, RawTransport};

/// `bench dpdk-ring`: two DPDK Totem nodes, each a process busy-polling on its own pinned core
/// with its load generated on that core, against the raw frame rate of the same device and
/// pinning in the same run.
///
/// Prints a line per run and a median line per transport and MTU. Needs root (af_packet runs
/// in a two-host network-namespace lab it creates and removes) and a bench built with
/// `--features dpdk`. Both cores are busy for the whole run: run it on an idle machine.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// DPDK devices, comma-separated: dpdk-af-packet (veths between two namespaces) and/or
    /// dpdk-memif (shared memory between two processes).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "dpdk-af-packet,dpdk-memif"
    )]
    pub transport: Vec<RawTransport>,
    /// Link MTUs, comma-separated (1500 and/or 9000).
    #[arg(long, value_delimiter = ',', default_value = "1500,9000")]
    pub mtu: Vec<u32>,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Seconds of each counted window (after a 0.3 s warm-up).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Alternations of raw and ring per transport and MTU; the summary is their median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Frame crypto of the ring: on (AES-256-GCM, the default of aisexec) or off (CRC-32).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub crypto: String,
    /// The token timeout in ms (aisexec's default: 100). A node that does not run for longer
    /// (another program took its core) changes the membership, and the run fails saying so.
    #[arg(long, default_value_t = 100)]
    pub token: u64,
    /// Most frames the ring sends per token rotation (`totem.window_size`; aisexec's and
    /// corosync's default: 50). At least `--max-messages`.
    #[arg(long, default_value_t = 50)]
    pub window_size: u32,
    /// Most frames a node sends per token visit (`totem.max_messages`; aisexec's and
    /// corosync's default: 17).
    #[arg(long, default_value_t = 17)]
    pub max_messages: u32,
    /// One JSON object per run and per summary instead of text.
    #[arg(long)]
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `bench dpdk-ring`.
///
/// # Errors
/// A bad argument, a lab that cannot be created (not root), a build without DPDK, or a failed
/// measurement (including a ring that broke its ordering guarantees).
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    for t in &args.transport {
        anyhow::ensure!(
            t.is_dpdk(),
            "--transport {t}: dpdk-ring measures the DPDK devices only (kernel UDP: `bench udp`)"
        );
    }
    for &m in &args.mtu {
        anyhow::ensure!(m == 1500 || m == 9000, "--mtu {m}: use 1500 or 9000");
    }
    anyhow::ensure!(
        (10..=60_000).contains(&args.token),
        "--token must be 10..=60000 ms"
    );
    anyhow::ensure!(
        args.max_messages >= 1 && args.window_size >= args.max_messages,
        "--max-messages must be at least 1 and --window-size at least --max-messages"
    );
    anyhow::ensure!(
        u64::from(args.window_size) * 2 <= 16_384,
        "--window-size must be at most 8192 (the receive window is 16384 frames)"
    );
    let settings = raw::RingSettings {
        crypto: args.crypto == "on",
        token_ms: args.token,
        window_size: args.window_size,
        max_messages: args.max_messages,
    };
    let dir = std::env::temp_dir().join(format!("oais-dpdk-ring-{}", std::process::id()));
    let r = measure_all(args, settings, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn measure_all(args: &Args, settings: raw::RingSettings, dir: &Path) -> anyhow::Result<()> {
    for &mtu in &args.mtu {
        let lab = if args.transport.iter().any(|t| t.needs_lab()) {
            Some(Lab::new(2, mtu).context("creating the two-host network-namespace lab")?)
        } else {
            None
        };
        for &t in &args.transport {
            let frame = t.max_payload(mtu);
            let (mut raws, mut rings) = (Vec::new(), Vec::new());
            for run in 1..=args.runs {
                let raw = raw::measure(t, lab.as_ref(), frame, mtu, args.seconds, dir)?;
                let ring = raw::measure_ring(
                    t,
                    lab.as_ref(),
                    args.size,
                    mtu,
                    args.seconds,
                    dir,
                    settings,
                )?;
                let ratio = if raw.frames_per_sec > 0.0 {
                    ring.msgs_per_sec / raw.frames_per_sec
                } else {
                    0.0
                };
                if args.json {
                    let v = serde_json::json!({
                        "bench": "dpdk-ring", "transport": t.name(), "mtu": mtu,
                        "size": args.size, "crypto": args.crypto, "run": run,
                        "seconds": args.seconds,
                        "msgs_per_sec": ring.msgs_per_sec.round(),
                        "mb_per_sec": (ring.mb_per_sec * 10.0).round() / 10.0,
                        "raw_frame": frame,
                        "raw_frames_per_sec": raw.frames_per_sec.round(),
                        "raw_mb_per_sec": (raw.mb_per_sec * 10.0).round() / 10.0,
                        "raw_delivered": raw.received, "raw_sent": raw.sent,
                        "ratio": (ratio * 1000.0).round() / 1000.0,
                        "ring_in_window": ring.in_window, "ring_delivered": ring.delivered,
                        "frames_retransmitted": ring.frames_retransmitted,
                        "token_retransmits": ring.token_retransmits,
                        "pauses_detected": ring.pauses_detected,
                    });
                    println!("{v}");
                } else {
                    println!(
                        "dpdk-ring {t} mtu {mtu} run {run}: Totem {:.0} msgs/s of {} B ({:.1} \
                         MB/s, crypto {}), raw {:.0} frames/s of {frame} B ({:.1} MB/s): {:.0}% \
                         (retransmitted: {} frames, {} tokens; pauses {})",
                        ring.msgs_per_sec,
                        args.size,
                        ring.mb_per_sec,
                        args.crypto,
                        raw.frames_per_sec,
                        raw.mb_per_sec,
                        ratio * 100.0,
                        ring.frames_retransmitted,
                        ring.token_retransmits,
                        ring.pauses_detected
                    );
                }
                raws.push(raw.frames_per_sec);
                rings.push(ring.msgs_per_sec);
            }
            let (ring, raw) = (median(rings), median(raws));
            if args.json {
                let v = serde_json::json!({
                    "bench": "dpdk-ring", "transport": t.name(), "mtu": mtu,
                    "size": args.size, "crypto": args.crypto, "runs": args.runs,
                    "median_msgs_per_sec": ring.round(),
                    "median_raw_frames_per_sec": raw.round(),
                    "ratio_of_medians": if raw > 0.0 { (ring / raw * 1000.0).round() / 1000.0 } else { 0.0 },
                });
                println!("{v}");
            } else {
                println!(
                    "dpdk-ring {t} mtu {mtu} median of {}: Totem {ring:.0} msgs/s, raw {raw:.0} \
                     frames/s: {:.0}%",
                    args.runs,
                    ring / raw * 100.0
                );
            }
        }
    }
    Ok(())
}
