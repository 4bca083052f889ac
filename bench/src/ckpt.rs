//! `bench ckpt`: replicated checkpoint writes beside CPG, on one cluster, in one run.
//!
//! One cluster of N `aisexec` (started as `bench throughput` starts them: same transports,
//! same namespace lab, same configuration) is measured four ways, in this order:
//!
//! 1. For every `--size`: **CPG as fast as flow control allows**, K sender processes
//!    (`bench cpg-load`, batches of `--batch` per call: the code path of `bench throughput`),
//!    then **pipelined checkpoint writes**: K writer processes (`bench ckpt-load`, see
//!    [`crate::ckptload`]), each with `--in-flight` W connections, each connection one
//!    synchronous `saCkptCheckpointWrite` of SIZE bytes after another into a section of its
//!    own. The client library answers one request per connection at a time, so K × W is the
//!    number of writes in flight. Writes/s counts every acknowledged write of every writer
//!    (each one is applied at every node); CPG msgs/s is the messages every node delivered,
//!    mean over the nodes: both are "operations ordered by the ring per second".
//! 2. **Synchronous writes**: one writer, one connection (one write in flight), on node 1,
//!    `--latency-size` bytes: writes/s and latency from the call to its acknowledgement.
//! 3. **CPG at the same load**: one sender on node 1, offered at the rate the synchronous
//!    writer reached (paced as `bench throughput --latency-at` paces: one message per call,
//!    the messages already due in one call of up to `--batch` when it fell behind): latency
//!    from the call to the sender's own delivery.
//!
//! A write is sent through Totem in safe order and acknowledged when it is delivered (every
//! member has it); a CPG message here is agreed. The ratios the CKPT issue targets are
//! printed and written to the JSON: pipelined writes/s ≥ 50% of CPG msgs/s at each size,
//! synchronous write p99 ≤ 1.5 × CPG self-delivery p99.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ais_client::ckpt::{self, Ckpt};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ckptload::WriterReport;
use crate::load::{Cluster, Workload};
use crate::measure::{self, Percentiles};
use crate::stack::{AisCluster, StackOptions, StackTransport};

/// Target: pipelined writes/s (and so MB/s) at least this fraction of CPG's at the same size.
pub const TARGET_THROUGHPUT: f64 = 0.5;
/// Target: synchronous write p99 at most this multiple of CPG's self-delivery p99.
pub const TARGET_LATENCY: f64 = 1.5;

/// Arguments of `bench ckpt`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
What runs, on one cluster started once (the executives `bench throughput` starts):
  1. for each --size: CPG, --writers senders as fast as flow control allows (batches of
     --batch), then checkpoint writes, --writers processes × --in-flight connections, each
     connection one synchronous write after another into a section of its own
  2. one writer, one connection: synchronous write latency (--latency-size bytes)
  3. CPG, one sender on the same node, offered at the rate step 2 reached (one message per
     call, the ones already due in one call when it fell behind, as `bench throughput
     --latency-at`): self-delivery latency at the same load
and prints writes/s and MB/s beside CPG's, with the ratios the CKPT issue targets:
pipelined writes ≥ 50% of CPG at each size, synchronous write p99 ≤ 1.5 × CPG p99.

Counting: a write counts when it is acknowledged inside the window (all writers summed:
each is applied at every node); CPG msgs/s is what every node delivered, mean over the
nodes. Write latency runs from the call to its acknowledgement (safe delivery), TRY_AGAIN
retries included; CPG latency from the call to the sender's own delivery (agreed).

Examples:
  bench ckpt                                        the defaults: ~30 s on 2 cores
  bench ckpt --in-flight 1,4,16,64 --size 1024     how writes/s grows with writes in flight
  bench ckpt --transport udp --json ckpt.json       127.0.0.1, no namespaces; JSON file

Needs root for the namespace transports (iproute2). Everything created is removed at the end.")]
pub struct Args {
    /// Executives in the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub nodes: u32,
    /// Write (and CPG message) sizes in bytes, comma-separated (at least 24: the CPG
    /// benchmark header).
    #[arg(long, default_value = "1024,65536", value_delimiter = ',')]
    pub size: Vec<usize>,
    /// Writer processes, and CPG sender processes, spread round-robin over the nodes
    /// (default: one per node).
    #[arg(long)]
    pub writers: Option<usize>,
    /// Connections per writer process, each with one write in flight (the client library
    /// is synchronous per connection). Several values, comma-separated, measure each.
    #[arg(long, default_value = "32", value_delimiter = ',')]
    pub in_flight: Vec<u32>,
    /// Size of the synchronous writes and of the CPG messages they are compared with.
    #[arg(long, default_value_t = 1024)]
    pub latency_size: usize,
    /// Length of each measurement window in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Seconds of load before each window starts counting.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// How the executives talk (as `bench throughput --transport`): udp (127.0.0.1, no
    /// namespaces), udp-netns (one network namespace per node on a bridge),
    /// dpdk-af-packet, dpdk-memif.
    #[arg(long, default_value = "udp-netns")]
    pub transport: String,
    /// Frame crypto (AES-256-GCM): on or off.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub crypto: String,
    /// Link MTU: 1500 or 9000.
    #[arg(long, default_value_t = 1500)]
    pub mtu: u32,
    /// Most CPG messages per submit call (as `bench throughput --batch`).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Set an executive configuration key, TABLE.KEY=VALUE (as `bench throughput --set`).
    #[arg(long = "set", value_name = "TABLE.KEY=VALUE", value_parser = crate::stack::parse_setting)]
    pub settings: Vec<(String, String, String)>,
    /// Also write the results as one JSON document to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// CPG's figures in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct CpgFigures {
    /// Sender processes.
    pub senders: usize,
    /// Messages per submit call.
    pub batch: u32,
    /// Offered messages/s (all senders); `None`: as fast as flow control allows.
    pub offered_msgs_per_sec: Option<f64>,
    /// Messages delivered per second, mean over the nodes.
    pub msgs_per_sec: f64,
    /// Delivered payload, MB/s (10^6 bytes), mean over the nodes.
    pub mb_per_sec: f64,
    /// Call to the sender's own delivery, µs.
    pub lat_self_us: Percentiles,
    /// CPU of the executives over the window, in cores.
    pub cpu_cores: f64,
    /// Own messages not back when the drain ended (saturated).
    pub missing_own: u64,
}

/// One checkpoint write measurement.
#[derive(Debug, Clone, Serialize)]
pub struct WriteFigures {
    /// Writer processes.
    pub writers: usize,
    /// Connections (writes in flight) per writer.
    pub in_flight: u32,
    /// Bytes per write.
    pub size: usize,
    /// Writes acknowledged in the window, all writers.
    pub writes: u64,
    /// `writes` per second.
    pub writes_per_sec: f64,
    /// Written data, MB/s (10^6 bytes).
    pub mb_per_sec: f64,
    /// Call to acknowledgement, µs, every write called in the window.
    pub lat_us: Percentiles,
    /// Writes refused with TRY_AGAIN and sent again.
    pub try_again: u64,
    /// CPU of the executives over the window, in cores.
    pub cpu_cores: f64,
}

/// Pipelined writes at one size and in-flight count, beside CPG at that size.
#[derive(Debug, Clone, Serialize)]
pub struct PipelinedRow {
    /// The writes.
    pub ckpt: WriteFigures,
    /// CPG, same size, same number of senders, as fast as flow control allows.
    pub cpg: CpgFigures,
    /// `ckpt.writes_per_sec / cpg.msgs_per_sec` (equal to the MB/s ratio: same size).
    pub ratio: f64,
}

/// Synchronous writes beside CPG at the same load.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRow {
    /// One writer, one connection.
    pub ckpt: WriteFigures,
    /// One sender on the same node, offered at `ckpt.writes_per_sec`.
    pub cpg: CpgFigures,
    /// `ckpt.lat_us.p99 / cpg.lat_self_us.p99`.
    pub p99_ratio: f64,
}

/// One target of the CKPT issue and whether this run meets it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The measured ratio.
    pub ratio: f64,
    /// `">= 0.5"` or `"<= 1.5"`.
    pub target: String,
    /// Whether the ratio meets it.
    pub met: bool,
}

/// Everything one `bench ckpt` run measured (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `"ckpt"`.
    pub bench: &'static str,
    /// The command line.
    pub command: String,
    /// Start of the run, UTC.
    pub date_utc: String,
    /// `"openais-rs"`.
    pub system: &'static str,
    /// Transport name.
    pub transport: String,
    /// Executives.
    pub nodes: usize,
    /// Link MTU.
    pub mtu: u32,
    /// Frame crypto.
    pub crypto: String,
    /// Warm-up before each window, s.
    pub warmup: f64,
    /// Each counted window, s.
    pub seconds: f64,
    /// Pipelined writes beside CPG, by size and in-flight count.
    pub pipelined: Vec<PipelinedRow>,
    /// Synchronous writes beside CPG at the same load.
    pub sync: SyncRow,
    /// The targets.
    pub targets: Vec<Target>,
}

/// Runs `bench ckpt`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let transport: StackTransport = args.transport.parse()?;
    anyhow::ensure!(
        args.seconds > 0.0 && args.warmup >= 0.0,
        "--seconds must be positive and --warmup not negative"
    );
    anyhow::ensure!(
        args.mtu == 1500 || args.mtu == 9000,
        "--mtu {}: use 1500 or 9000",
        args.mtu
    );
    let most = ckpt::REQUEST_BUDGET - 64;
    for &s in args.size.iter().chain([&args.latency_size]) {
        anyhow::ensure!(
            (crate::load::HEADER_LEN..=most).contains(&s),
            "--size/--latency-size {s}: use {}..={most} bytes (the CPG header; one request)",
            crate::load::HEADER_LEN
        );
    }
    anyhow::ensure!(
        !args.in_flight.is_empty() && args.in_flight.iter().all(|&w| (1..=256).contains(&w)),
        "--in-flight takes counts within 1..=256"
    );
    let nodes = args.nodes as usize;
    let writers = args.writers.unwrap_or(nodes);
    anyhow::ensure!(writers >= 1, "--writers must be at least 1");
    let crypto = args.crypto == "on";
    let date_utc = utc_now();
    let work = std::env::temp_dir().join(format!("oais-bench-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let program = std::env::current_exe().context("locating the bench executable")?;
    let warmup = Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.seconds);

    let lab =
        if transport.needs_lab() {
            Some(netlab::Lab::new(nodes.max(2), args.mtu).context(
                "creating the network namespaces (needs root; --transport udp does not)",
            )?)
        } else {
            None
        };
    eprintln!(
        "bench ckpt: starting {nodes} executives ({}, MTU {}, crypto {})",
        transport.name(),
        args.mtu,
        args.crypto
    );
    let mut cluster = AisCluster::start(
        lab.as_ref(),
        &StackOptions {
            nodes,
            transport,
            crypto,
            mtu: args.mtu,
            dir: work.join("cluster"),
            busy_poll: false,
            program: program.clone(),
            settings: args.settings.clone(),
        },
    )?;
    let mut run = Run {
        cluster: &mut cluster,
        program: &program,
        work: &work,
        warmup,
        window,
        serial: 0,
    };

    // 1. CPG then pipelined writes, per size.
    let mut pipelined = Vec::new();
    for &size in &args.size {
        eprintln!(
            "  CPG {size} B, {writers} senders, batches of {}",
            args.batch
        );
        let cpg = run.cpg(size, writers, None, args.batch)?;
        for &w in &args.in_flight {
            eprintln!("  CKPT {size} B writes, {writers} writers × {w} in flight");
            let ckpt = run.writes(size, writers, w)?;
            let ratio = ckpt.writes_per_sec / cpg.msgs_per_sec.max(1e-9);
            pipelined.push(PipelinedRow {
                ckpt,
                cpg: cpg.clone(),
                ratio,
            });
        }
    }
    // 2. and 3. Synchronous writes, then CPG at their rate.
    eprintln!(
        "  CKPT {} B writes, 1 writer, 1 in flight",
        args.latency_size
    );
    let sync = run.writes(args.latency_size, 1, 1)?;
    anyhow::ensure!(
        sync.writes > 0,
        "no synchronous write was acknowledged inside the window"
    );
    eprintln!(
        "  CPG {} B, 1 sender offered {:.0} msgs/s",
        args.latency_size, sync.writes_per_sec
    );
    let cpg = run.cpg(args.latency_size, 1, Some(sync.writes_per_sec), args.batch)?;
    let p99_ratio = sync.lat_us.p99 as f64 / (cpg.lat_self_us.p99.max(1)) as f64;
    let sync = SyncRow {
        ckpt: sync,
        cpg,
        p99_ratio,
    };
    drop(cluster);
    drop(lab);
    let _ = std::fs::remove_dir_all(&work);

    let targets = targets(&pipelined, &sync);
    let report = Report {
        bench: "ckpt",
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date_utc,
        system: "openais-rs",
        transport: transport.name().to_owned(),
        nodes,
        mtu: args.mtu,
        crypto: args.crypto.clone(),
        warmup: args.warmup,
        seconds: args.seconds,
        pipelined,
        sync,
        targets,
    };
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

/// The targets: every pipelined row against CPG at its size, and the synchronous
/// write p99.
pub fn targets(pipelined: &[PipelinedRow], sync: &SyncRow) -> Vec<Target> {
    let mut out: Vec<Target> = pipelined
        .iter()
        .map(|r| Target {
            name: format!(
                "{} B writes/s ({} × {} in flight) / CPG {} B msgs/s",
                r.ckpt.size, r.ckpt.writers, r.ckpt.in_flight, r.ckpt.size
            ),
            ratio: r.ratio,
            target: format!(">= {TARGET_THROUGHPUT}"),
            met: r.ratio >= TARGET_THROUGHPUT,
        })
        .collect();
    out.push(Target {
        name: format!(
            "synchronous {} B write p99 / CPG self-delivery p99 at the same load",
            sync.ckpt.size
        ),
        ratio: sync.p99_ratio,
        target: format!("<= {TARGET_LATENCY}"),
        met: sync.p99_ratio <= TARGET_LATENCY,
    });
    out
}

/// The report as a text table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nbench ckpt: {} executives, {}, MTU {}, crypto {}; {:.1} s warm-up + {:.1} s counted per row ({})",
        r.nodes, r.transport, r.mtu, r.crypto, r.warmup, r.seconds, r.date_utc
    );
    let _ = writeln!(
        s,
        "\nPipelined (CKPT: writers × connections, one write in flight each; CPG: same number of senders, batched)"
    );
    let _ = writeln!(
        s,
        "{:>7} {:>9} {:>11} {:>9} {:>17} {:>11} {:>9} {:>10} {:>7} {:>6}",
        "size",
        "in flight",
        "writes/s",
        "MB/s",
        "write p50/p99 µs",
        "CPG msgs/s",
        "CPG MB/s",
        "cpu ck/cpg",
        "ratio",
        "≥ 50%"
    );
    for p in &r.pipelined {
        let _ = writeln!(
            s,
            "{:>7} {:>9} {:>11.0} {:>9.1} {:>17} {:>11.0} {:>9.1} {:>10} {:>6.0}% {:>6}",
            p.ckpt.size,
            format!("{}×{}", p.ckpt.writers, p.ckpt.in_flight),
            p.ckpt.writes_per_sec,
            p.ckpt.mb_per_sec,
            format!("{}/{}", p.ckpt.lat_us.p50, p.ckpt.lat_us.p99),
            p.cpg.msgs_per_sec,
            p.cpg.mb_per_sec,
            format!("{:.2}/{:.2}", p.ckpt.cpu_cores, p.cpg.cpu_cores),
            p.ratio * 100.0,
            if p.ratio >= TARGET_THROUGHPUT {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    let y = &r.sync;
    let _ = writeln!(
        s,
        "\nOne in flight, {} B: CKPT synchronous write vs CPG self-delivery at the same rate",
        y.ckpt.size
    );
    let _ = writeln!(
        s,
        "{:>24} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "", "per s", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let _ = writeln!(
        s,
        "{:>24} {:>9.0} {:>8} {:>8} {:>8} {:>8}",
        "CKPT write (1 writer)",
        y.ckpt.writes_per_sec,
        y.ckpt.lat_us.p50,
        y.ckpt.lat_us.p99,
        y.ckpt.lat_us.p999,
        y.ckpt.lat_us.max
    );
    let _ = writeln!(
        s,
        "{:>24} {:>9.0} {:>8} {:>8} {:>8} {:>8}",
        "CPG mcast (1 sender)",
        y.cpg.msgs_per_sec,
        y.cpg.lat_self_us.p50,
        y.cpg.lat_self_us.p99,
        y.cpg.lat_self_us.p999,
        y.cpg.lat_self_us.max
    );
    let _ = writeln!(
        s,
        "write p99 / CPG p99 = {:.2} (target ≤ {TARGET_LATENCY}: {})",
        y.p99_ratio,
        if y.p99_ratio <= TARGET_LATENCY {
            "met"
        } else {
            "MISSED"
        }
    );
    let _ = writeln!(s, "\nTargets:");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "  {:<72} {:>6.2} {:<7} {}",
            t.name,
            t.ratio,
            t.target,
            if t.met { "met" } else { "MISSED" }
        );
    }
    s
}

/// The cluster and what every measurement of the run shares.
struct Run<'c, 'l> {
    cluster: &'c mut AisCluster<'l>,
    program: &'c Path,
    work: &'c Path,
    warmup: Duration,
    window: Duration,
    /// Measurements so far: each gets a fresh CPG group or checkpoint.
    serial: u32,
}

impl Run<'_, '_> {
    /// CPG through `bench cpg-load`, as `bench throughput` measures it.
    fn cpg(
        &mut self,
        size: usize,
        senders: usize,
        rate: Option<f64>,
        batch: u32,
    ) -> anyhow::Result<CpgFigures> {
        self.serial += 1;
        let workload = Workload {
            group: format!("ckptbench{}", self.serial),
            size,
            senders,
            rate,
            batch,
            warmup: self.warmup,
            window: self.window,
        };
        let dir = self.work.join(format!("cpg-{}", self.serial));
        let m = measure::run(
            &mut *self.cluster,
            &workload,
            &dir,
            |_, _| Ok(()),
            &measure::Options::default(),
        )
        .with_context(|| format!("measuring CPG with {size} B messages"))?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(CpgFigures {
            senders,
            batch,
            offered_msgs_per_sec: rate,
            msgs_per_sec: m.msgs_per_sec,
            mb_per_sec: m.mb_per_sec,
            lat_self_us: Percentiles::of(&m.lat_self),
            cpu_cores: m.daemon_cpu_cores,
            missing_own: m.missing_own,
        })
    }

    /// `writers` `bench ckpt-load` processes with `in_flight` connections each, writing
    /// `size` bytes into one fresh checkpoint.
    fn writes(
        &mut self,
        size: usize,
        writers: usize,
        in_flight: u32,
    ) -> anyhow::Result<WriteFigures> {
        self.serial += 1;
        let dir = self.work.join(format!("ckpt-{}", self.serial));
        std::fs::create_dir_all(&dir)?;
        let name = format!("bench-ckpt-{}", self.serial);
        // One more than the writers' sections: a checkpoint of one section has only the
        // default section, and ours have ids.
        let sections = writers as u64 * u64::from(in_flight);
        let attributes = ckpt::Attributes {
            creation_flags: ckpt::WR_ALL_REPLICAS,
            checkpoint_size: sections * size as u64,
            retention_duration: 0,
            max_sections: u32::try_from(sections + 1).context("too many sections")?,
            max_section_size: size as u64,
            max_section_id_size: 32,
        };
        // Created (and in the end unlinked) through node 1; the writers open it.
        let mut admin = Ckpt::connect(self.cluster.socket(1)).context("connecting to node 1")?;
        let flags = ckpt::OPEN_CREATE | ckpt::OPEN_WRITE | ckpt::OPEN_READ;
        // TRY_AGAIN while the service syncs after the ring formed: wait it out.
        let deadline = Instant::now() + Duration::from_secs(10);
        let handle = loop {
            match admin.open(name.as_bytes(), flags, Some(attributes)) {
                Err(e) if e.is_try_again() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.with_context(|| format!("creating checkpoint {name}"))?,
            }
        };
        let result = self.run_writers(&name, size, writers, in_flight, &dir);
        let _ = admin.unlink(name.as_bytes());
        let _ = admin.close(handle);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn run_writers(
        &mut self,
        name: &str,
        size: usize,
        writers: usize,
        in_flight: u32,
        dir: &Path,
    ) -> anyhow::Result<WriteFigures> {
        let nodes = self.cluster.nodes();
        let (line_tx, line_rx) = mpsc::channel::<(usize, String)>();
        let mut procs = Procs(Vec::new());
        for k in 0..writers {
            let node = k % nodes + 1;
            let stderr_file = dir.join(format!("writer-{k}.stderr"));
            let mut cmd = Command::new(self.program);
            cmd.arg("ckpt-load")
                .arg("--socket")
                .arg(self.cluster.socket(node))
                .args(["--name", name, "--writer", &k.to_string()])
                .args(["--connections", &in_flight.to_string()])
                .args(["--size", &size.to_string()])
                .args(["--warmup-ms", &self.warmup.as_millis().to_string()])
                .args(["--seconds-ms", &self.window.as_millis().to_string()])
                .arg("--out")
                .arg(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&stderr_file)?);
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting writer {k} ({cmd:?})"))?;
            let stdout = child.stdout.take().context("writer stdout")?;
            let stdin = child.stdin.take();
            let tx = line_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((k, line)).is_err() {
                        break;
                    }
                }
            });
            procs.0.push(Proc {
                child,
                stdin,
                stderr_file,
            });
        }
        drop(line_tx);
        let tail = |p: &Proc| -> String {
            let text = std::fs::read_to_string(&p.stderr_file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        };

        // Ready, one start time, CPU at the window's edges, reports.
        let deadline = Instant::now() + measure::READY_TIMEOUT + Duration::from_secs(10);
        let mut ready = vec![false; writers];
        while ready.iter().any(|r| !r) {
            match line_rx.recv_timeout(Duration::from_millis(100)) {
                Ok((k, line)) if line.trim() == "ready" => ready[k] = true,
                Ok((k, line)) => bail!("writer {k} said {line:?} before \"ready\""),
                Err(_) => {
                    // Fail fast when a writer died; give up at the deadline.
                    for (k, p) in procs.0.iter_mut().enumerate() {
                        if !ready[k]
                            && let Some(status) = p.child.try_wait()?
                        {
                            bail!(
                                "writer {k} exited ({status}) before it was ready; its stderr:\n{}",
                                tail(p)
                            );
                        }
                    }
                    if Instant::now() >= deadline {
                        let k = ready.iter().position(|r| !r).unwrap_or(0);
                        bail!(
                            "writer {k} is not ready in time; its stderr:\n{}",
                            tail(&procs.0[k])
                        );
                    }
                }
            }
        }
        let start = measure::realtime_ns() + measure::START_LEAD.as_nanos() as u64;
        for p in &mut procs.0 {
            if let Some(stdin) = p.stdin.as_mut() {
                writeln!(stdin, "start {start}").context("telling a writer to start")?;
                stdin.flush()?;
            }
        }
        let window_start = start + self.warmup.as_nanos() as u64;
        let window_end = window_start + self.window.as_nanos() as u64;
        measure::sleep_until_realtime(window_start);
        let cpu0 = measure::daemon_ticks(&*self.cluster);
        measure::sleep_until_realtime(window_end);
        let cpu1 = measure::daemon_ticks(&*self.cluster);
        let secs = self.window.as_secs_f64();
        let cpu_cores = cpu0
            .iter()
            .zip(&cpu1)
            .filter_map(|(a, b)| Some(b.as_ref()?.saturating_sub(*a.as_ref()?)))
            .sum::<u64>() as f64
            / measure::TICKS_PER_SEC
            / secs;

        let deadline = Instant::now() + Duration::from_secs(20);
        let mut reports: Vec<Option<WriterReport>> = vec![None; writers];
        while reports.iter().any(Option::is_none) {
            match line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((k, line)) => {
                    reports[k] =
                        Some(serde_json::from_str(&line).with_context(|| {
                            format!("writer {k} printed {line:?}, not a report")
                        })?);
                }
                Err(_) => {
                    let k = reports.iter().position(Option::is_none).unwrap_or(0);
                    bail!(
                        "writer {k} gave no report; its stderr:\n{}",
                        tail(&procs.0[k])
                    );
                }
            }
        }
        for p in &mut procs.0 {
            let status = p.child.wait()?;
            anyhow::ensure!(status.success(), "a writer exited with {status}");
        }

        let mut lat =
            Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds");
        let (mut writes, mut bytes, mut try_again) = (0u64, 0u64, 0u64);
        for r in reports.into_iter().flatten() {
            writes += r.writes;
            bytes += r.bytes;
            try_again += r.try_again;
            let raw = std::fs::read(&r.lat_file)
                .with_context(|| format!("reading {}", r.lat_file.display()))?;
            for c in raw.chunks_exact(4) {
                let us = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                lat.record(u64::from(us.max(1)))?;
            }
        }
        Ok(WriteFigures {
            writers,
            in_flight,
            size,
            writes,
            writes_per_sec: writes as f64 / secs,
            mb_per_sec: bytes as f64 / secs / 1e6,
            lat_us: Percentiles::of(&lat),
            try_again,
            cpu_cores,
        })
    }
}

/// A writer process.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr_file: PathBuf,
}

/// Kills and reaps writers still running when a measurement fails.
struct Procs(Vec<Proc>);

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.0 {
            if matches!(p.child.try_wait(), Ok(None)) {
                let _ = p.child.kill();
            }
            let _ = p.child.wait();
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` now.
fn utc_now() -> String {
    let secs = measure::realtime_ns() / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::throughput::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(size: usize, per_sec: f64, p99: u64) -> WriteFigures {
        WriteFigures {
            writers: 3,
            in_flight: 32,
            size,
            writes: per_sec as u64 * 3,
            writes_per_sec: per_sec,
            mb_per_sec: per_sec * size as f64 / 1e6,
            lat_us: Percentiles {
                count: 10,
                p50: p99 / 2,
                p99,
                p999: p99,
                max: p99,
            },
            try_again: 0,
            cpu_cores: 1.0,
        }
    }

    fn cpg(per_sec: f64, p99: u64) -> CpgFigures {
        CpgFigures {
            senders: 3,
            batch: 64,
            offered_msgs_per_sec: None,
            msgs_per_sec: per_sec,
            mb_per_sec: per_sec / 1e3,
            lat_self_us: Percentiles {
                p99,
                ..Percentiles::default()
            },
            cpu_cores: 1.0,
            missing_own: 0,
        }
    }

    #[test]
    fn targets_are_judged_at_their_thresholds_and_printed() {
        let pipelined = vec![
            PipelinedRow {
                ckpt: figures(1024, 20_000.0, 5000),
                cpg: cpg(50_000.0, 0),
                ratio: 0.4,
            },
            PipelinedRow {
                ckpt: figures(65536, 500.0, 5000),
                cpg: cpg(1000.0, 0),
                ratio: 0.5,
            },
        ];
        let sync = SyncRow {
            ckpt: figures(1024, 2000.0, 1500),
            cpg: cpg(2000.0, 1000),
            p99_ratio: 1.5,
        };
        let t = targets(&pipelined, &sync);
        assert_eq!(
            t.iter().map(|t| t.met).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert!(t[2].target.starts_with("<="), "{t:?}");
        let report = Report {
            bench: "ckpt",
            command: "bench ckpt".into(),
            date_utc: utc_now(),
            system: "openais-rs",
            transport: "udp".into(),
            nodes: 3,
            mtu: 1500,
            crypto: "on".into(),
            warmup: 1.0,
            seconds: 3.0,
            pipelined,
            sync,
            targets: t,
        };
        let text = table(&report);
        assert_eq!(text.matches("MISSED").count(), 2, "{text}");
        assert!(text.contains("20000"), "{text}");
    }
}
