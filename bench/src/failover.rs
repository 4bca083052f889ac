//! `bench failover`: how long a node's death takes to reach the survivors.
//!
//! Each repetition starts a fresh cluster, puts CPG load on it (one sender per node at a
//! modest fixed rate), SIGKILLs one node chosen at random at a random moment of the window,
//! and reads from every survivor's load generator the time of the first configuration change
//! after the kill that no longer lists the dead node's member: kill → new membership
//! delivered to a CPG client, which includes failure detection (the token loss timeout), the
//! membership protocol and the CPG configuration change. Both clocks are CLOCK_REALTIME on
//! one host.

use std::time::Duration;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::load::{Cluster, Workload};
use crate::measure::{self, realtime_ns};
use crate::stack::{AisCluster, StackOptions, StackTransport};

/// Arguments of `bench failover`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Example:
  bench failover --repeat 10                 this stack, 3 nodes in namespaces, default timeouts
  bench failover --system corosync           the same on corosync 3 (knet)

Needs root for the namespace transports and corosync.")]
pub struct Args {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub nodes: u32,
    /// How many kills (each on a fresh cluster).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// The system: openais-rs or corosync.
    #[arg(long, default_value = "openais-rs", value_parser = ["openais-rs", "corosync"])]
    pub system: String,
    /// Transport of this stack (see `bench throughput --help`); corosync always uses knet in
    /// namespaces.
    #[arg(long, default_value = "udp-netns")]
    pub transport: String,
    /// Message size of the background load.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Background load in messages/s, all senders together.
    #[arg(long, default_value_t = 3000.0)]
    pub rate: f64,
    /// Frame crypto: on or off.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub crypto: String,
    /// Link MTU.
    #[arg(long, default_value_t = 1500)]
    pub mtu: u32,
    /// Seconds of load per repetition; the kill falls in its first second and the new
    /// membership must arrive before it ends (default 3 for openais-rs; 12 for corosync,
    /// whose default token timeout is 3 s and consensus 3.6 s).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Seed of the random kill times and victims (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// One JSON object per repetition and one summary object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One kill and what the survivors saw.
#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    /// Repetition number, from 1.
    pub repetition: u32,
    /// The node killed.
    pub victim: usize,
    /// Milliseconds from the kill to the new membership, per survivor (node id, ms).
    pub survivors_ms: Vec<(u32, f64)>,
}

/// Runs `bench failover`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let nodes = args.nodes as usize;
    let seed = args.seed.unwrap_or_else(|| realtime_ns() % 1_000_000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let crypto = args.crypto == "on";
    let transport: StackTransport = args.transport.parse()?;
    let corosync = args.system == "corosync";
    let work = std::env::temp_dir().join(format!("oais-failover-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let program = std::env::current_exe().context("locating the bench executable")?;
    let cpgload = if corosync {
        Some(crate::corosync::build_cpgload(&work)?)
    } else {
        None
    };
    if !args.json {
        println!(
            "failover: {} on {nodes} nodes, {} B messages at {:.0} msgs/s, SIGKILL of a random node at a random time; seed {seed}",
            args.system, args.size, args.rate
        );
    }
    let window = Duration::from_secs_f64(args.seconds.unwrap_or(if corosync { 12.0 } else { 3.0 }));
    anyhow::ensure!(
        window > Duration::from_secs(1),
        "--seconds must be more than 1: the kill falls in the first second"
    );
    let mut kills = Vec::new();
    for rep in 1..=args.repeat {
        let dir = work.join(format!("rep{rep}"));
        let needs_lab = corosync || transport.needs_lab();
        let lab = if needs_lab {
            Some(netlab::Lab::new(nodes, args.mtu).context("creating the network namespaces")?)
        } else {
            None
        };
        let mut cluster: Box<dyn Cluster + '_> = match (&cpgload, lab.as_ref()) {
            (Some(cpgload), Some(lab)) => Box::new(crate::corosync::CorosyncCluster::start(
                lab,
                &crate::corosync::CorosyncOptions {
                    nodes,
                    crypto,
                    dir: dir.clone(),
                    cpgload: cpgload.clone(),
                    priority: ais::config::DEFAULT_TOTEM_NICE,
                },
            )?),
            _ => Box::new(AisCluster::start(
                lab.as_ref(),
                &StackOptions {
                    nodes,
                    transport,
                    crypto,
                    mtu: args.mtu,
                    dir: dir.clone(),
                    busy_poll: false,
                    program: program.clone(),
                    settings: Vec::new(),
                },
            )?),
        };
        let victim = rng.random_range(1..=nodes);
        let delay = Duration::from_millis(rng.random_range(0..1000));
        let workload = Workload {
            group: "failover".into(),
            size: args.size,
            senders: nodes,
            rate: Some(args.rate),
            batch: 1,
            warmup: Duration::from_millis(500),
            window,
        };
        let mut killed_at = 0u64;
        let m = measure::run(
            cluster.as_mut(),
            &workload,
            &dir.join("load"),
            |c, _start| {
                std::thread::sleep(delay);
                killed_at = realtime_ns();
                c.kill(victim)
            },
            &measure::Options {
                tolerate_failures: true,
                ..Default::default()
            },
        )?;
        drop(cluster);
        drop(lab);
        let mut survivors_ms = Vec::new();
        for r in m.reports.iter().filter(|r| r.node as usize != victim) {
            // The first change after the kill with fewer members than before it.
            let before = r
                .confchg
                .iter()
                .filter(|(ns, _)| *ns <= killed_at)
                .map(|(_, m)| *m)
                .next_back()
                .unwrap_or(nodes as u32);
            let after = r
                .confchg
                .iter()
                .find(|(ns, members)| *ns > killed_at && *members < before);
            match after {
                Some((ns, _)) => survivors_ms.push((r.node, (ns - killed_at) as f64 / 1e6)),
                None => anyhow::bail!(
                    "repetition {rep}: node {} saw no new membership within the window after node {victim} was killed",
                    r.node
                ),
            }
        }
        anyhow::ensure!(
            !survivors_ms.is_empty(),
            "repetition {rep}: no survivor reported"
        );
        let kill = Kill {
            repetition: rep,
            victim,
            survivors_ms,
        };
        if args.json {
            println!("{}", serde_json::to_string(&kill)?);
        } else {
            let list: Vec<String> = kill
                .survivors_ms
                .iter()
                .map(|(n, ms)| format!("node {n} {ms:.0} ms"))
                .collect();
            println!("  #{rep}: killed node {victim}: {}", list.join(", "));
        }
        kills.push(kill);
    }
    let _ = std::fs::remove_dir_all(&work);
    let mut all: Vec<f64> = kills
        .iter()
        .flat_map(|k| k.survivors_ms.iter().map(|(_, ms)| *ms))
        .collect();
    all.sort_by(f64::total_cmp);
    let summary = Summary {
        bench: "failover",
        system: args.system.clone(),
        transport: if corosync {
            "knet".into()
        } else {
            transport.name().into()
        },
        nodes,
        repeat: args.repeat,
        samples: all.len(),
        min_ms: all.first().copied().unwrap_or(0.0),
        median_ms: median(&all),
        max_ms: all.last().copied().unwrap_or(0.0),
        seed,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "failover ({} survivor observations): min {:.0} ms, median {:.0} ms, max {:.0} ms",
            summary.samples, summary.min_ms, summary.median_ms, summary.max_ms
        );
    }
    Ok(())
}

/// The summary line of `bench failover`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `"failover"`.
    pub bench: &'static str,
    /// `"openais-rs"` or `"corosync"`.
    pub system: String,
    /// Transport name.
    pub transport: String,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Repetitions.
    pub repeat: u32,
    /// Survivor observations (repetitions × survivors).
    pub samples: usize,
    /// Fastest observation, ms.
    pub min_ms: f64,
    /// Median observation, ms.
    pub median_ms: f64,
    /// Slowest observation, ms.
    pub max_ms: f64,
    /// Seed of the kill schedule.
    pub seed: u64,
}

/// Median of sorted values (0 when empty).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
