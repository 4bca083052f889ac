//! `totem-sim`: runs seeded Totem schedules on a simulated faulty network and checks every run
//! against the virtual-synchrony properties. Exits 1 if any run violates one.

use std::io::Write as _;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant as WallClock;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use totem_sim::log::EventLog;
use totem_sim::net::Faults;
use totem_sim::runner::{self, Checked};
use totem_sim::sim::{NodeFaultKinds, Schedule};

/// Deterministic simulation of Totem rings with a virtual-synchrony checker.
///
/// Each seed fixes one schedule: ring size, fault probabilities, frame size and workload
/// (messages of 1 byte to several frames, all four priorities, agreed and safe). Every run is
/// checked; a failing run prints its seed and the command that replays it exactly.
///
/// Examples:
///   totem-sim --nodes 5 --seeds 0..1000 --faults loss,dup,reorder,corrupt --json
///   TOTEM_SIM_SEED=42 totem-sim --nodes 3 --faults all --log run.jsonl
///   totem-sim check run.jsonl
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Ring size: N, or A..B for a size drawn per seed from A to B (both included), 2 to 16.
    #[arg(long, default_value = "3", value_name = "N|A..B")]
    nodes: String,

    /// Seeds to run: A..B (B excluded: 0..1000 runs 1000 schedules) or one seed N.
    /// The environment variable TOTEM_SIM_SEED, when set, replaces this with that one seed.
    #[arg(long, default_value = "0..100", value_name = "A..B|N")]
    seeds: String,

    /// Faults to inject, comma-separated. Link faults: loss, dup, reorder, corrupt (each
    /// schedule draws its probabilities up to loss 20%, dup 10%, reorder 20%, corrupt 5%).
    /// Node and topology faults: crash (and restart), pause, partition (and heal), oneway (one
    /// direction of one link lost, then healed); 1 to 4 per schedule at random times.
    /// Attacks (turn frame encryption on): forge (forged and truncated frames), replay (frames
    /// recorded earlier on any link, sent again), attacks (both), up to 5% of carried frames.
    /// Or: links (all link faults), nodes (all node faults), all (links and nodes), none.
    #[arg(long, default_value = "none", value_name = "LIST")]
    faults: String,

    /// Seal every frame with AES-256-GCM (secauth), also without attacks.
    #[arg(long)]
    crypto: bool,

    /// Write the event log (JSON Lines, docs/event-log.md). With one seed, PATH is the file;
    /// with several, PATH is a directory that receives seed-N.jsonl per schedule.
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,

    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    json: bool,

    /// Totem timers of every node instead of the defaults (token 100, consensus 120, join 25,
    /// merge 200 ms), as `token=20,consensus=10,join=4,merge=20` (ms; keys left out keep their
    /// default). A consensus below the token timeout is accepted without more ado here
    /// (`aisexec` asks for `totem.short_consensus = true`).
    #[arg(long, value_name = "KEY=MS,...")]
    timers: Option<String>,

    /// Worker threads (default: the number of CPUs). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check an event log written by the simulator, or the logs of one real run written by
    /// `aisexec --event-log` (one file per node, checked together).
    Check {
        /// The JSON Lines file(s).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Protocol traces (membership steps and more) with RUST_LOG=totem_dpdk=debug.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("totem-sim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Some(Command::Check { files }) = &cli.command {
        let report = if let [file] = &files[..] {
            totem_sim::checker::check_file(file)
                .with_context(|| format!("checking {}", file.display()))?
        } else {
            totem_sim::checker::check_files(files).context("checking the logs")?
        };
        for v in &report.violations {
            println!("{v}");
        }
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        println!(
            "{}: {} events, {} deliveries, {} configurations, {} violations",
            names.join(" "),
            report.events,
            report.delivered,
            report.configs,
            report.violations.len()
        );
        return Ok(report.violations.is_empty());
    }
    let nodes = parse_nodes(&cli.nodes)?;
    let seeds = match std::env::var("TOTEM_SIM_SEED") {
        Ok(s) => {
            let seed: u64 = s
                .trim()
                .parse()
                .context("TOTEM_SIM_SEED must be an integer")?;
            seed..seed + 1
        }
        Err(_) => parse_seeds(&cli.seeds)?,
    };
    let (faults, node_faults) = parse_faults(&cli.faults)?;
    let timers = cli.timers.as_deref().map(parse_timers).transpose()?;
    let schedules: Vec<Schedule> = seeds
        .clone()
        .map(|seed| {
            let mut s = Schedule::random(seed, nodes.clone(), faults, node_faults);
            s.crypto |= cli.crypto;
            s.timers = timers;
            // Node faults only: also check that the nodes no fault touched stay together.
            s.check_stable_members = node_faults.any() && faults == Faults::default();
            s
        })
        .collect();
    let single = schedules.len() == 1;
    if let Some(dir) = cli.log.as_ref().filter(|_| !single) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let threads = cli.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    });
    let started = WallClock::now();
    let replay = |c: &Checked| {
        format!(
            "TOTEM_SIM_SEED={} cargo run --release -p totem-sim -- --nodes {} --faults {} --log seed-{}.jsonl",
            c.schedule.seed, cli.nodes, cli.faults, c.schedule.seed
        )
    };
    let log_error = std::sync::Mutex::new(None);
    let summary = runner::run_many(schedules, threads, |c| {
        if let Some(path) = &cli.log {
            let file = if single {
                path.clone()
            } else {
                path.join(format!("seed-{}.jsonl", c.schedule.seed))
            };
            if let Err(e) = write_log(&file, c) {
                *log_error.lock().expect("lock") = Some(e);
            }
        }
        if !c.violations.is_empty() {
            eprintln!(
                "FAIL seed={} nodes={} faults={:?} frame={}: {} violations",
                c.schedule.seed,
                c.schedule.nodes,
                c.schedule.faults,
                c.schedule.max_frame_size,
                c.violations.len()
            );
            for v in c.violations.iter().take(5) {
                eprintln!("  {v}");
            }
            for (t, fault) in &c.schedule.node_faults {
                eprintln!("  fault at t={}: {fault:?}", t.as_nanos());
            }
            eprintln!("  replay: {}", replay(c));
        }
    });
    if let Some(e) = log_error.into_inner().expect("lock") {
        return Err(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if cli.json {
        let mut value = serde_json::to_value(&summary)?;
        value["nodes"] = cli.nodes.clone().into();
        value["faults"] = cli.faults.clone().into();
        value["seeds"] = format!("{}..{}", seeds.start, seeds.end).into();
        value["elapsed_s"] = elapsed.into();
        println!("{value}");
    } else {
        println!(
            "totem-sim: {} schedules (nodes {}, faults {}): {} messages sent, {} deliveries, {} \
             frames, {:.1} s virtual, {} violations ({elapsed:.1} s)",
            summary.schedules,
            cli.nodes,
            cli.faults,
            summary.sent,
            summary.delivered,
            summary.frames,
            summary.virtual_ns as f64 / 1e9,
            summary.violations,
        );
        if summary.attack_frames > 0 {
            println!(
                "attacks: {} forged, truncated, tampered or replayed frames delivered; {} refused \
                 by the protection layer; {} replays were the first copy their receiver saw \
                 (handled as late deliveries, {} of them then ignored by the protocol as stale, \
                 duplicate or foreign); {} accepted otherwise (each is a violation)",
                summary.attack_frames,
                summary.attack_rejected,
                summary.replay_first_copies,
                summary.replay_ignored_by_protocol,
                summary.attack_frames - summary.attack_rejected - summary.replay_first_copies
            );
        }
    }
    Ok(summary.violations == 0)
}

fn write_log(path: &Path, c: &Checked) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut log = EventLog::new(std::io::BufWriter::new(file));
    for event in &c.outcome.log {
        log.write(event)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    log.into_inner().flush()?;
    Ok(())
}

fn parse_nodes(s: &str) -> anyhow::Result<RangeInclusive<u32>> {
    let range = match s.split_once("..") {
        Some((a, b)) => {
            let a: u32 = a.trim().parse().with_context(|| format!("--nodes {s:?}"))?;
            let b: u32 = b
                .trim_start_matches('=')
                .trim()
                .parse()
                .with_context(|| format!("--nodes {s:?}"))?;
            a..=b
        }
        None => {
            let n: u32 = s
                .trim()
                .parse()
                .with_context(|| format!("--nodes {s:?}: expected N or A..B"))?;
            n..=n
        }
    };
    if *range.start() < 2 || *range.end() > 16 || range.is_empty() {
        bail!("--nodes {s:?}: ring sizes must be within 2..16");
    }
    Ok(range)
}

fn parse_seeds(s: &str) -> anyhow::Result<Range<u64>> {
    match s.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.trim().parse().with_context(|| format!("--seeds {s:?}"))?;
            let b: u64 = b.trim().parse().with_context(|| format!("--seeds {s:?}"))?;
            if b <= a {
                bail!("--seeds {s:?}: empty range (the end is excluded)");
            }
            Ok(a..b)
        }
        None => {
            let n: u64 = s
                .trim()
                .parse()
                .with_context(|| format!("--seeds {s:?}: expected A..B or N"))?;
            Ok(n..n + 1)
        }
    }
}

fn parse_faults(s: &str) -> anyhow::Result<(Faults, NodeFaultKinds)> {
    let max = Faults {
        loss: 0.2,
        dup: 0.1,
        reorder: 0.2,
        corrupt: 0.05,
        forge: 0.0,
        replay: 0.0,
    };
    let attacks = Faults {
        forge: 0.05,
        replay: 0.05,
        ..Faults::default()
    };
    let mut faults = Faults::default();
    let mut nodes = NodeFaultKinds::default();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "all" => (faults, nodes) = (max, NodeFaultKinds::ALL),
            "links" => faults = max,
            "nodes" => nodes = NodeFaultKinds::ALL,
            "none" => {}
            "loss" => faults.loss = max.loss,
            "dup" => faults.dup = max.dup,
            "reorder" => faults.reorder = max.reorder,
            "corrupt" => faults.corrupt = max.corrupt,
            "forge" => faults.forge = attacks.forge,
            "replay" => faults.replay = attacks.replay,
            "attacks" => (faults.forge, faults.replay) = (attacks.forge, attacks.replay),
            "crash" => nodes.crash = true,
            "pause" => nodes.pause = true,
            "partition" => nodes.partition = true,
            "oneway" => nodes.oneway = true,
            other => bail!(
                "--faults: unknown fault {other:?} (known: loss, dup, reorder, corrupt, forge, \
                 replay, attacks, crash, pause, partition, oneway, links, nodes, all, none)"
            ),
        }
    }
    Ok((faults, nodes))
}

/// `token=20,consensus=24,join=5,merge=20` (ms), each key optional.
fn parse_timers(text: &str) -> anyhow::Result<totem_sim::sim::Timers> {
    use totem_dpdk::Duration;
    let mut t = totem_sim::sim::Timers {
        token: Duration::from_millis(100),
        consensus: Duration::from_millis(120),
        join: Duration::from_millis(25),
        merge: Duration::from_millis(200),
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .with_context(|| format!("--timers: expected KEY=MS, got {part:?}"))?;
        let ms: u64 = value
            .trim()
            .parse()
            .ok()
            .filter(|&ms| (1..=60_000).contains(&ms))
            .with_context(|| format!("--timers: {key} must be 1..=60000 ms, got {value:?}"))?;
        let slot = match key.trim() {
            "token" => &mut t.token,
            "consensus" => &mut t.consensus,
            "join" => &mut t.join,
            "merge" => &mut t.merge,
            other => {
                anyhow::bail!("--timers: unknown timer {other:?} (token, consensus, join, merge)")
            }
        };
        *slot = Duration::from_millis(ms);
    }
    anyhow::ensure!(
        t.join < t.consensus,
        "--timers: join ({} ms) must be below consensus ({} ms)",
        t.join.as_millis(),
        t.consensus.as_millis()
    );
    Ok(t)
}
