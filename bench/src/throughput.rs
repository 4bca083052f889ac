//! `bench throughput`: this stack vs the raw link vs corosync, same topology, same run.
//!
//! For every MTU asked for, one network-namespace lab (when the transport or the peer needs
//! one) carries, in this order: the raw link (one stream, then with more than two nodes over
//! kernel UDP the ring's fan-out: host 1 sends every datagram to each other host, as `udpu`
//! sends a Totem frame), this stack (N `aisexec`), over kernel UDP the bare ring (the same
//! Totem drivers, configuration files and addresses, without executives and clients; see
//! [`Args::no_ring`]), and with `--peer corosync` N corosync daemons. Each system is started once
//! per MTU and crypto setting and measured at every message size, as fast as flow control
//! allows; with `--latency-at P` it is measured again at a fixed offered load of P% of the
//! maximum (see [`Args::latency_at`]). Results go to the terminal (or JSON lines with
//! `--json`) and to a results folder: `results.json`, `results.csv`, `throughput.svg`,
//! `latency-cdf.svg`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::load::{Cluster, Workload};
use crate::measure::{self, Percentiles};
use crate::raw::{self, RawTransport};
use crate::report::{self, Row};
use crate::stack::{AisCluster, StackOptions, StackTransport};

/// Arguments of `bench throughput`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  bench throughput                                  3 executives in namespaces, 1 KiB and 8 KiB
  bench throughput --peer corosync --mtu 1500,9000 --latency-at 50
                                                    the full comparison (docs/performance.md)
  bench throughput --mtu 1500,9000 --size 1024      also the bare ring (same Totem drivers, no
                                                    executives) and the raw fan-out: issue 22's
                                                    executive path cost (docs/performance.md)
  bench throughput --transport dpdk-af-packet       over DPDK (build with --features dpdk)
  bench throughput --no-raw --mtu 1500,9000 --size 1024 --ipc seqpacket,shm
                                                    client IPC over the socket, then over
                                                    shared-memory rings, in one run
  bench throughput --networks 1,2 --rrp passive --rate-cap-mbit 200 --size 1024
                                                    redundant rings against one network, each
                                                    veth capped by tbf (docs/rings.md)

Needs root for the namespace transports and for --peer corosync (iproute2; corosync and
libcpg-dev for the peer). Everything created (namespaces, daemons, work files) is removed at
the end; the results folder stays.")]
pub struct Args {
    /// Nodes in the cluster (executives, and corosync daemons with --peer).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub nodes: u32,
    /// Message sizes in bytes, comma-separated (at least 24: the benchmark header).
    #[arg(long, default_value = "1024,8192", value_delimiter = ',')]
    pub size: Vec<usize>,
    /// Sender processes, spread round-robin over the nodes (default: one per node).
    #[arg(long)]
    pub senders: Option<usize>,
    /// Length of each measurement window in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Seconds of load before each window starts counting.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// How the executives talk: udp (127.0.0.1, no namespaces), udp-netns (one network
    /// namespace per node on a bridge), dpdk-af-packet (DPDK net_af_packet on each
    /// namespace's veth), dpdk-memif (2 nodes, DPDK shared-memory interfaces).
    #[arg(long, default_value = "udp-netns")]
    pub transport: String,
    /// Frame crypto for every system (AES-256-GCM for this stack, aes256/sha256 for
    /// corosync): on, off or both.
    #[arg(long, default_value = "on", value_parser = ["on", "off", "both"])]
    pub crypto: String,
    /// Link MTU(s), comma-separated: 1500 and/or 9000.
    #[arg(long, default_value = "1500", value_delimiter = ',')]
    pub mtu: Vec<u32>,
    /// Also measure corosync 3 (knet) on the same namespaces with the same workload, and print
    /// this stack's ratio to it.
    #[arg(long, value_parser = ["corosync"])]
    pub peer: Option<String>,
    /// Skip the raw-link measurements. With more than two nodes over kernel UDP the raw link
    /// is measured twice: one stream host 1 → host 2 ("one stream"), then with the ring's
    /// fan-out (host 1 sends every datagram to each of the other N-1 hosts, as udpu sends a
    /// Totem frame; the row counts distinct datagrams every receiver got, at most, and lists
    /// each receiver's rate). The stack's "% of raw" ratios are against the fan-out then.
    #[arg(long)]
    pub no_raw: bool,
    /// Skip the bare-ring arm. By default (kernel UDP transports), right after this stack's
    /// executives stop, the same lab runs the bare ring: one `bench raw-peer --role ring`
    /// process per node reading that node's `aisexec` configuration (same Totem settings,
    /// udpu addresses, frame size and key), its load generated on the Totem thread itself
    /// (no clients, no IPC, no executive), every node sending messages of the same size.
    /// Rows of system "ring"; each stack row gets vs_ring = its msgs/s per node over the
    /// ring's, and the "executive path cost" 1 - vs_ring is printed. The run fails if the
    /// ring's nodes delivered different sequences, out of FIFO order, or saw a configuration
    /// change.
    #[arg(long)]
    pub no_ring: bool,
    /// How this stack's load generators talk to their executive, comma-separated: shm
    /// (shared-memory rings, the default) and/or seqpacket (the socket: the executives run
    /// with aisexec.ipc_transport = "seqpacket"). Each is measured with executives of its
    /// own, in this order, in the same run; with two, rows name it in their transport.
    #[arg(long, default_value = "shm", value_delimiter = ',', value_parser = ["shm", "seqpacket"])]
    pub ipc: Vec<String>,
    /// Also measure latency at a fixed offered load of PERCENT of the measured maximum (50:
    /// half load, latency without queueing). With --peer, both systems are also measured at
    /// the same offered load: PERCENT of the smaller of the two maxima.
    #[arg(long, value_name = "PERCENT")]
    pub latency_at: Option<f64>,
    /// Messages per submit call of this stack's senders (CpgMcastBatch); corosync's libcpg
    /// sends one per call.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// DPDK transports: poll without sleeping, each executive's Totem thread pinned to a
    /// core of its own (needs a free core per executive).
    #[arg(long)]
    pub busy_poll: bool,
    /// Set an executive configuration key for this run, TABLE.KEY=VALUE with the value in
    /// TOML (tables totem, dpdk, aisexec), e.g. --set totem.seqno_unchanged_const=5
    /// --set dpdk.max_backoff_us=100. Repeatable; see docs/configuration.md.
    #[arg(long = "set", value_name = "TABLE.KEY=VALUE", value_parser = crate::stack::parse_setting)]
    pub settings: Vec<(String, String, String)>,
    /// Results folder (default: bench-results/throughput-<UTC date and time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object per measurement on stdout (at the end of the run) instead of
    /// text lines.
    #[arg(long)]
    pub json: bool,
    /// Networks per node (redundant rings, 1 to 4), comma-separated: each count is measured
    /// in a lab of its own, in this order, in the same run (`1,2`: one network, then two).
    /// More than one needs --transport udp-netns.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    pub networks: Vec<usize>,
    /// The redundant-ring mode with more than one network: active or passive.
    #[arg(long, default_value = "active", value_parser = ["active", "passive"])]
    pub rrp: String,
    /// Cap every host's interface (each network's) at this rate with `tc qdisc ... tbf`, in
    /// Mbit/s, so that the link is the limit (the raw link is measured capped too).
    #[arg(long, value_name = "MBIT")]
    pub rate_cap_mbit: Option<u32>,
    /// With more than one network: after the maximum, measure twice at half of the share of
    /// it the other networks carry (a quarter of it with two), then twice as fast as flow
    /// control allows, each time without and with network 0 cut 1 s into the window (every
    /// host's port on its bridge down, healed after the window). The cut runs record every
    /// delivery's time: delivered msgs/s in 10 ms bins around the cut, the longest stall of
    /// delivery, and the time until throughput is back to 90% of full (the pre-cut rate; for
    /// passive mode unpaced, the steady rate after the cut), printed and written to
    /// `cut-timeline-*.csv` in the results folder (see `bench::timeline`).
    #[arg(long)]
    pub cut_network: bool,
}

/// Caps every host interface of `lab` (`eth0` .. `eth<networks-1>`) at `mbit` Mbit/s with a
/// token bucket filter (egress; the kernel here has `tbf` but no `netem`).
fn cap_lab(lab: &netlab::Lab, mbit: u32) -> anyhow::Result<()> {
    for h in 1..=lab.hosts() {
        for n in 0..lab.networks() {
            let dev = format!("eth{n}");
            let rate = format!("{mbit}mbit");
            let out = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    lab.netns(h),
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    &dev,
                ])
                .args([
                    "root", "tbf", "rate", &rate, "burst", "256kb", "latency", "50ms",
                ])
                .output()
                .context("running tc")?;
            anyhow::ensure!(
                out.status.success(),
                "tc tbf on host {h} {dev}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Runs `bench throughput`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let transport: StackTransport = args.transport.parse()?;
    let crypto_modes: &[bool] = match args.crypto.as_str() {
        "both" => &[false, true],
        "on" => &[true],
        _ => &[false],
    };
    anyhow::ensure!(
        args.seconds > 0.0 && args.warmup >= 0.0,
        "--seconds must be positive and --warmup not negative"
    );
    for &mtu in &args.mtu {
        anyhow::ensure!(mtu == 1500 || mtu == 9000, "--mtu {mtu}: use 1500 or 9000");
    }
    for &s in &args.size {
        anyhow::ensure!(
            s >= crate::load::HEADER_LEN,
            "--size {s}: messages need at least {} bytes (the benchmark header)",
            crate::load::HEADER_LEN
        );
    }
    if let Some(p) = args.latency_at {
        anyhow::ensure!(
            p > 0.0 && p <= 100.0,
            "--latency-at takes a percentage in (0, 100]"
        );
    }
    for &n in &args.networks {
        anyhow::ensure!((1..=4).contains(&n), "--networks {n}: 1 to 4");
        anyhow::ensure!(
            n == 1 || transport == StackTransport::UdpNetns,
            "--networks {n}: redundant rings are measured with --transport udp-netns"
        );
    }
    let nodes = args.nodes as usize;
    let senders = args.senders.unwrap_or(nodes);
    anyhow::ensure!(senders >= 1, "--senders must be at least 1");
    let out = args.out.clone().unwrap_or_else(default_out);
    let work = std::env::temp_dir().join(format!("oais-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let program = std::env::current_exe().context("locating the bench executable")?;

    let peer = args.peer.is_some();
    // Measurements per MTU and crypto mode: this stack at max (+ at P% with --latency-at);
    // the peer likewise, plus the system with the larger maximum at the common offered load;
    // the bare ring.
    let l = usize::from(args.latency_at.is_some());
    let ring = ring_arm(args, transport);
    // The bare ring: its maximum, and (with --latency-at) each fixed load this stack was
    // measured at: P% of each IPC's maximum and, with the peer, the common load.
    let ring_runs = usize::from(ring) * (1 + l * (args.ipc.len() + usize::from(peer)));
    let per_mode =
        args.size.len() * ((1 + l) * args.ipc.len() + ring_runs + usize::from(peer) * (1 + 2 * l));
    let raws = if args.no_raw {
        0
    } else {
        1 + usize::from(fanout(transport, nodes))
    };
    let total =
        (args.mtu.len() * args.networks.len() * (crypto_modes.len() * per_mode + raws)) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let cpgload = if peer {
        bar.set_message("building the corosync load generator");
        Some(crate::corosync::build_cpgload(&work)?)
    } else {
        None
    };
    let mut session = Session {
        args,
        bar,
        rows: Vec::new(),
        work: work.clone(),
        senders,
        groups: 0,
        label: None,
        record_times: false,
        last_times: None,
        timelines: Vec::new(),
    };

    for (&mtu, &networks) in args
        .mtu
        .iter()
        .flat_map(|m| args.networks.iter().map(move |n| (m, n)))
    {
        let needs_lab = transport.needs_lab() || peer;
        let lab = if needs_lab {
            let lab = netlab::Lab::with_networks(nodes.max(2), networks, mtu)
                .context("creating the network namespaces")?;
            if let Some(mbit) = args.rate_cap_mbit {
                cap_lab(&lab, mbit)?;
            }
            Some(lab)
        } else {
            None
        };
        // Rows of this lab name its networks and cap in their transport.
        session.label = (networks > 1 || args.rate_cap_mbit.is_some()).then(|| {
            let mut l = String::new();
            if networks > 1 {
                l += &format!(" x{networks} {}", args.rrp);
            }
            if let Some(mbit) = args.rate_cap_mbit {
                l += &format!(" tbf {mbit}M");
            }
            l
        });
        let mut settings = args.settings.clone();
        if networks > 1 {
            settings.push((
                "totem".to_owned(),
                "rrp_mode".to_owned(),
                format!("\"{}\"", args.rrp),
            ));
        }
        for &crypto in crypto_modes {
            let crypto_name = if crypto { "on" } else { "off" };
            // The raw link has no crypto: measured once per MTU, compared with both modes.
            if !args.no_raw && crypto == crypto_modes[0] {
                session.raw(raw_transport(&transport), lab.as_ref(), mtu)?;
                if fanout(transport, nodes) {
                    session.raw_fanout(raw_transport(&transport), lab.as_ref(), mtu, nodes)?;
                }
            }
            // The last raw row of this MTU: the fan-out when it was measured.
            let raw_row = session
                .rows
                .iter()
                .rev()
                .find(|r| r.bench == "raw" && r.mtu == mtu)
                .cloned();
            let at = Point {
                crypto,
                mtu,
                raw: raw_row.as_ref(),
            };
            let stack_options = |dir: String| StackOptions {
                nodes,
                transport,
                crypto,
                mtu,
                dir: work.join(dir),
                busy_poll: args.busy_poll,
                program: program.clone(),
                settings: settings.clone(),
            };

            // This stack, every size (the cluster stops before the peer starts).
            // With several IPC transports, the peer is compared with the last one.
            let mut ours: Vec<(usize, f64)> = Vec::new();
            // (size, offered msgs/s) of this stack's latency rows, for the bare ring.
            let mut fixed: Vec<(usize, f64)> = Vec::new();
            let mut last_dir = None;
            for ipc in &args.ipc {
                let base_label = session.label.clone();
                if args.ipc.len() > 1 {
                    session.label = Some(base_label.clone().unwrap_or_default() + " ipc=" + ipc);
                }
                let mut options =
                    stack_options(format!("ais-{mtu}-{crypto_name}-n{networks}-{ipc}"));
                options.settings.push((
                    "aisexec".to_owned(),
                    "ipc_transport".to_owned(),
                    format!("\"{ipc}\""),
                ));
                ours.clear();
                session.bar.set_message(format!(
                    "starting {nodes} executives ({})",
                    transport.name()
                ));
                last_dir = Some(options.dir.clone());
                let mut cluster = AisCluster::start(lab.as_ref(), &options)?;
                for &size in &args.size {
                    ours.push((size, session.measure(&mut cluster, size, None, &at)?));
                }
                if let (true, true, Some(lab)) = (args.cut_network, networks > 1, lab.as_ref()) {
                    for &(size, max) in &ours {
                        // Half of what the networks left after the cut can carry, so that
                        // the cut's stall is not hidden by queueing behind a saturated link;
                        // then as fast as flow control allows.
                        let half = max / 2.0 * (networks - 1) as f64 / networks as f64;
                        session.cut_runs(lab, &mut cluster, size, Some(half), &at, networks)?;
                        session.cut_runs(lab, &mut cluster, size, None, &at, networks)?;
                    }
                }
                if let Some(p) = args.latency_at {
                    for &(size, max) in &ours {
                        let rate = max * p / 100.0;
                        session.measure(&mut cluster, size, Some(rate), &at)?;
                        fixed.push((size, rate));
                    }
                }
                drop(cluster);
                session.label = base_label;
            }
            // The bare ring, on the last executives' configurations (they have stopped): its
            // maximum now, the fixed loads this stack was measured at once they are known.
            let ring_configs = match (ring, last_dir) {
                (true, Some(dir)) => Some(
                    (1..=nodes)
                        .map(|id| dir.join(format!("node{id}")).join("aisexec.toml"))
                        .collect::<Vec<PathBuf>>(),
                ),
                _ => None,
            };
            if let Some(configs) = &ring_configs {
                for &size in &args.size {
                    session.ring(lab.as_ref(), configs, size, &at)?;
                }
            }
            // With --peer: corosync on the same lab, and both systems at the same load.
            'peer: {
                let (Some(lab), Some(cpgload)) = (lab.as_ref(), cpgload.as_ref()) else {
                    break 'peer;
                };
                session
                    .bar
                    .set_message(format!("starting {nodes} corosync daemons"));
                let opts = crate::corosync::CorosyncOptions {
                    nodes,
                    crypto,
                    dir: work.join(format!("corosync-{mtu}-{crypto_name}")),
                    cpgload: cpgload.clone(),
                    priority: crate::stack::totem_nice(&args.settings)?,
                };
                let mut cluster = crate::corosync::CorosyncCluster::start(lab, &opts)?;
                let mut theirs: Vec<(usize, f64)> = Vec::new();
                for &size in &args.size {
                    let rate = session.measure(&mut cluster, size, None, &at)?;
                    theirs.push((size, rate));
                    session.ratio_to_corosync(size, &at, rate);
                }
                let Some(p) = args.latency_at else {
                    break 'peer;
                };
                for &(size, max) in &theirs {
                    session.measure(&mut cluster, size, Some(max * p / 100.0), &at)?;
                }
                // The same offered load for both: P% of the smaller maximum. The system with
                // the smaller maximum was just measured there; measure the other.
                let common: Vec<(usize, f64, bool)> = ours
                    .iter()
                    .zip(&theirs)
                    .map(|((s, a), (_, b))| (*s, a.min(*b) * p / 100.0, a > b))
                    .collect();
                for &(size, rate, _) in common.iter().filter(|c| !c.2) {
                    session.measure(&mut cluster, size, Some(rate), &at)?;
                }
                drop(cluster);
                if common.iter().any(|c| c.2) {
                    let mut options = stack_options(format!("ais-{mtu}-{crypto_name}-common"));
                    if let Some(ipc) = args.ipc.last() {
                        options.settings.push((
                            "aisexec".to_owned(),
                            "ipc_transport".to_owned(),
                            format!("\"{ipc}\""),
                        ));
                    }
                    let mut cluster = AisCluster::start(Some(lab), &options)?;
                    for &(size, rate, _) in common.iter().filter(|c| c.2) {
                        session.measure(&mut cluster, size, Some(rate), &at)?;
                        fixed.push((size, rate));
                    }
                }
            }
            // The bare ring at every fixed load this stack was measured at: what the ring
            // alone costs there, beside the stack's latency and CPU.
            if let Some(configs) = &ring_configs {
                for &(size, rate) in &fixed {
                    session.ring_at(lab.as_ref(), configs, size, rate, &at)?;
                }
            }
        }
    }
    session.bar.finish_and_clear();
    let rows = std::mem::take(&mut session.rows);
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    }
    report::write_all(&out, &rows)?;
    for (name, csv) in &session.timelines {
        std::fs::write(out.join(name), csv).with_context(|| format!("writing {name}"))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    if !args.json {
        println!("results: {}", out.display());
    } else {
        eprintln!("results: {}", out.display());
    }
    Ok(())
}

/// The bare ring's row from `r`: its maximum (a "throughput" row compared with the raw link
/// of the point) or, with `rate`, a "latency" row at that offered load. `emit` appends the
/// lab's label to the transport.
fn ring_row(
    in_lab: bool,
    nodes: usize,
    size: usize,
    at: &Point<'_>,
    r: &raw::RingResult,
    rate: Option<f64>,
    secs: f64,
) -> Row {
    let per_node: Vec<f64> = r.in_window.iter().map(|&n| n as f64 / secs).collect();
    let mean = per_node.iter().sum::<f64>() / per_node.len().max(1) as f64;
    let mb = mean * size as f64 / 1e6;
    let raw = at.raw.filter(|_| rate.is_none());
    Row {
        bench: if rate.is_some() {
            "latency"
        } else {
            "throughput"
        },
        system: "ring".into(),
        transport: if in_lab { "udp-netns" } else { "udp" }.to_owned(),
        nodes,
        size,
        senders: nodes,
        crypto: if at.crypto { "on" } else { "off" },
        mtu: at.mtu,
        offered_msgs_per_sec: rate,
        msgs_per_sec: mean,
        mb_per_sec: mb,
        per_node_msgs_per_sec: per_node,
        lat_self_us: r.lat_self_us,
        lat_all_us: Percentiles::default(),
        cpu_cores: r.cpu_cores,
        try_again: 0,
        missing_own: 0,
        seconds: secs,
        raw_frame_ratio: raw.map(|w| mean / w.msgs_per_sec.max(1e-9)),
        raw_byte_ratio: raw.map(|w| mb / w.mb_per_sec.max(1e-9)),
        vs_corosync: None,
        vs_ring: None,
        cdf: r.lat_self_cdf.clone(),
    }
}

/// Whether `o` is one of this stack's `bench` rows at the point of `at` with `size`-byte
/// messages, in the lab labelled `label`.
fn ours_at(o: &Row, bench: &str, size: usize, at: &Point<'_>, label: &str) -> bool {
    o.bench == bench
        && o.system == "openais-rs"
        && o.size == size
        && o.mtu == at.mtu
        && o.crypto == if at.crypto { "on" } else { "off" }
        && o.transport.contains(label)
}

/// Where in the sweep a measurement is: crypto mode, MTU, and the raw row of that MTU.
struct Point<'r> {
    crypto: bool,
    mtu: u32,
    raw: Option<&'r Row>,
}

/// Every generator's delivery times (CLOCK_REALTIME ns) and the counted window.
type DeliveryTimes = (Vec<Vec<u64>>, (u64, u64));

/// What the measurements of one run share, and their rows so far.
struct Session<'a> {
    args: &'a Args,
    bar: ProgressBar,
    rows: Vec<Row>,
    /// Scratch directory of the run (generator files, cluster directories).
    work: PathBuf,
    senders: usize,
    /// Groups used so far: every measurement gets a fresh CPG group.
    groups: u32,
    /// Appended to the transport of the rows (networks, rate cap), if any.
    label: Option<String>,
    /// Have the generators record their delivery times ([`measure::Options::record_times`]).
    record_times: bool,
    /// The delivery times and window of the last measurement, when recorded.
    last_times: Option<DeliveryTimes>,
    /// Time-resolved cuts measured: (file name, CSV) for the results folder.
    timelines: Vec<(String, String)>,
}

impl Session<'_> {
    /// Records a row: a text line now (unless --json), JSON at the end.
    fn emit(&mut self, mut row: Row) {
        if let Some(l) = &self.label {
            row.transport += l;
        }
        if !self.args.json {
            let line = row.text();
            self.bar.suspend(|| println!("{line}"));
        }
        self.rows.push(row);
        self.bar.inc(1);
    }

    /// Measures the raw link of `mtu` with frames of the size Totem sends (MTU - 28 on every
    /// transport, so the ratio compares equal frames) and records its row.
    fn raw(&mut self, rt: RawTransport, lab: Option<&netlab::Lab>, mtu: u32) -> anyhow::Result<()> {
        let size = mtu as usize - 28;
        self.bar.set_message(format!("raw {} mtu {mtu}", rt.name()));
        let dir = self.work.join(format!("raw-{mtu}"));
        let r = raw::measure(rt, lab, size, mtu, self.args.seconds, &dir)?;
        self.emit(Row {
            bench: "raw",
            system: "raw".into(),
            transport: rt.name().into(),
            nodes: 2,
            size,
            senders: 1,
            crypto: "off",
            mtu,
            offered_msgs_per_sec: None,
            msgs_per_sec: r.frames_per_sec,
            mb_per_sec: r.mb_per_sec,
            per_node_msgs_per_sec: vec![r.frames_per_sec],
            lat_self_us: Percentiles::default(),
            lat_all_us: Percentiles::default(),
            cpu_cores: 0.0,
            try_again: 0,
            missing_own: 0,
            seconds: self.args.seconds,
            raw_frame_ratio: None,
            raw_byte_ratio: None,
            vs_corosync: None,
            vs_ring: None,
            cdf: Vec::new(),
        });
        Ok(())
    }

    /// Measures the raw link of `mtu` with the fan-out of an `nodes`-node udpu ring (host 1 to
    /// each other host, [`raw::measure_fanout`]) and records its row: `msgs_per_sec` the
    /// distinct datagrams every receiver got at most, `per_node_msgs_per_sec` each receiver's.
    fn raw_fanout(
        &mut self,
        rt: RawTransport,
        lab: Option<&netlab::Lab>,
        mtu: u32,
        nodes: usize,
    ) -> anyhow::Result<()> {
        let size = mtu as usize - 28;
        self.bar.set_message(format!(
            "raw {} mtu {mtu} fan-out to {}",
            rt.name(),
            nodes - 1
        ));
        let dir = self.work.join(format!("raw-fanout-{mtu}"));
        let r = raw::measure_fanout(rt, lab, nodes, size, mtu, self.args.seconds, &dir)?;
        self.emit(Row {
            bench: "raw",
            system: "raw".into(),
            transport: rt.name().to_owned() + " fan-out",
            nodes,
            size,
            senders: 1,
            crypto: "off",
            mtu,
            offered_msgs_per_sec: None,
            msgs_per_sec: r.frames_per_sec,
            mb_per_sec: r.mb_per_sec,
            per_node_msgs_per_sec: r.per_receiver_frames_per_sec,
            lat_self_us: Percentiles::default(),
            lat_all_us: Percentiles::default(),
            cpu_cores: 0.0,
            try_again: 0,
            missing_own: 0,
            seconds: self.args.seconds,
            raw_frame_ratio: None,
            raw_byte_ratio: None,
            vs_corosync: None,
            vs_ring: None,
            cdf: Vec::new(),
        });
        Ok(())
    }

    /// Measures the bare ring ([`raw::measure_udp_ring`]) on the executives' `configs` with
    /// `size`-byte messages, records its row (system "ring"), gives this stack's throughput
    /// rows of the same point their `vs_ring`, and prints the executive path's cost.
    fn ring(
        &mut self,
        lab: Option<&netlab::Lab>,
        configs: &[PathBuf],
        size: usize,
        at: &Point<'_>,
    ) -> anyhow::Result<()> {
        let crypto = if at.crypto { "on" } else { "off" };
        self.bar
            .set_message(format!("bare ring {size} B mtu {} crypto {crypto}", at.mtu));
        let dir = self.work.join(format!("ring-{}-{crypto}-{size}", at.mtu));
        let r = raw::measure_udp_ring(lab, configs, size, self.args.seconds, None, &dir)
            .with_context(|| format!("measuring the bare ring with {size} B messages"))?;
        let _ = std::fs::remove_dir_all(&dir);
        let row = ring_row(
            lab.is_some(),
            configs.len(),
            size,
            at,
            &r,
            None,
            self.args.seconds,
        );
        let mean = row.msgs_per_sec;
        let label = self.label.clone().unwrap_or_default();
        self.emit(row);
        let mut lines = Vec::new();
        for o in self
            .rows
            .iter_mut()
            .filter(|o| ours_at(o, "throughput", size, at, &label) && o.vs_ring.is_none())
        {
            let ratio = o.msgs_per_sec / mean.max(1e-9);
            o.vs_ring = Some(ratio);
            lines.push(format!(
                "  executive path at {size} B, mtu {}, crypto {crypto} ({}): openais-rs {:.0} \
                 msgs/s/node, bare ring {mean:.0}: stack/ring {ratio:.2}, cost 1 - stack/ring \
                 = {:.0}% (issue 22 target: ≤ 25%); the ring's {} nodes delivered one sequence \
                 ({} messages), FIFO per sender, no configuration change; its cores \
                 retransmitted {} frames and {} tokens, noticed {} pauses of their own",
                at.mtu,
                o.transport,
                o.msgs_per_sec,
                (1.0 - ratio) * 100.0,
                configs.len(),
                r.delivered,
                r.frames_retransmitted,
                r.token_retransmits,
                r.pauses_detected
            ));
        }
        if !self.args.json {
            for line in lines {
                self.bar.suspend(|| println!("{line}"));
            }
        }
        Ok(())
    }

    /// Measures the bare ring on the executives' `configs` at `rate` msgs/s offered in all
    /// (each node submits its share, evenly spaced, as this stack's senders do), records its
    /// "latency" row (self-latency at every node, the ring processes' CPU) and prints it beside
    /// this stack's latency row at the same load: what the executive path adds there.
    fn ring_at(
        &mut self,
        lab: Option<&netlab::Lab>,
        configs: &[PathBuf],
        size: usize,
        rate: f64,
        at: &Point<'_>,
    ) -> anyhow::Result<()> {
        let crypto = if at.crypto { "on" } else { "off" };
        self.bar
            .set_message(format!("bare ring {size} B at {rate:.0} msgs/s"));
        let dir = self
            .work
            .join(format!("ring-{}-{crypto}-{size}-{rate:.0}", at.mtu));
        let nodes = configs.len();
        let per_node = rate / nodes as f64;
        let r = raw::measure_udp_ring(lab, configs, size, self.args.seconds, Some(per_node), &dir)
            .with_context(|| {
                format!("measuring the bare ring with {size} B messages at {rate:.0} msgs/s")
            })?;
        let _ = std::fs::remove_dir_all(&dir);
        let row = ring_row(
            lab.is_some(),
            nodes,
            size,
            at,
            &r,
            Some(rate),
            self.args.seconds,
        );
        let label = self.label.clone().unwrap_or_default();
        let lines: Vec<String> = self
            .rows
            .iter()
            .filter(|o| {
                ours_at(o, "latency", size, at, &label) && o.offered_msgs_per_sec == Some(rate)
            })
            .map(|o| {
                let (t, lat, cpu) = (&o.transport, o.lat_self_us, o.cpu_cores);
                format!(
                    "  at {rate:.0} msgs/s offered ({size} B, mtu {}, crypto {crypto}): \
                     openais-rs ({t}) self p50/p99 {}/{} µs, daemons {cpu:.2} cores; bare ring \
                     {}/{} µs, {:.2} cores: the executive path adds {:+} µs at p99 and {:.2} \
                     cores",
                    at.mtu,
                    lat.p50,
                    lat.p99,
                    r.lat_self_us.p50,
                    r.lat_self_us.p99,
                    r.cpu_cores,
                    lat.p99 as i64 - r.lat_self_us.p99 as i64,
                    cpu - r.cpu_cores,
                )
            })
            .collect();
        self.emit(row);
        if !self.args.json {
            for line in lines {
                self.bar.suspend(|| println!("{line}"));
            }
        }
        Ok(())
    }

    /// Measures `cluster` with `size`-byte messages, as fast as flow control allows (`rate`
    /// `None`, a "throughput" row compared with the raw link) or at `rate` msgs/s offered (a
    /// "latency" row); records the row and returns the messages/s delivered.
    fn measure(
        &mut self,
        cluster: &mut dyn Cluster,
        size: usize,
        rate: Option<f64>,
        at: &Point<'_>,
    ) -> anyhow::Result<f64> {
        self.measure_with(cluster, size, rate, at, |_, _| Ok(()))
    }

    /// [`Session::measure`] with `on_running` called once the counted window has begun.
    fn measure_with(
        &mut self,
        cluster: &mut dyn Cluster,
        size: usize,
        rate: Option<f64>,
        at: &Point<'_>,
        on_running: impl FnMut(&mut dyn Cluster, u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<f64> {
        let crypto = if at.crypto { "on" } else { "off" };
        self.bar.set_message(match rate {
            Some(r) => format!("{} {size} B at {r:.0} msgs/s", cluster.system()),
            None => format!(
                "{} {size} B mtu {} crypto {crypto}",
                cluster.system(),
                at.mtu
            ),
        });
        self.groups += 1;
        let workload = Workload {
            group: format!("bench{}", self.groups),
            size,
            senders: self.senders,
            rate,
            batch: self.args.batch,
            warmup: Duration::from_secs_f64(self.args.warmup),
            window: Duration::from_secs_f64(self.args.seconds),
        };
        let dir = self
            .work
            .join(format!("{}-{}", cluster.system(), workload.group));
        let m = measure::run(
            cluster,
            &workload,
            &dir,
            on_running,
            &measure::Options {
                record_times: self.record_times,
                ..Default::default()
            },
        )
        .with_context(|| format!("measuring {} with {size} B messages", cluster.system()))?;
        let _ = std::fs::remove_dir_all(&dir);
        self.last_times = self.record_times.then(|| {
            (
                m.delivery_times.iter().map(|(_, t)| t.clone()).collect(),
                m.window_ns,
            )
        });
        let raw = at.raw.filter(|_| rate.is_none());
        let row = Row {
            bench: if rate.is_some() {
                "latency"
            } else {
                "throughput"
            },
            system: cluster.system().into(),
            transport: cluster.transport(),
            nodes: cluster.nodes(),
            size,
            senders: self.senders,
            crypto,
            mtu: at.mtu,
            offered_msgs_per_sec: rate,
            msgs_per_sec: m.msgs_per_sec,
            mb_per_sec: m.mb_per_sec,
            per_node_msgs_per_sec: m.per_node_msgs_per_sec.clone(),
            lat_self_us: Percentiles::of(&m.lat_self),
            lat_all_us: Percentiles::of(&m.lat_all),
            cpu_cores: m.daemon_cpu_cores,
            try_again: m.try_again,
            missing_own: m.missing_own,
            seconds: self.args.seconds,
            raw_frame_ratio: raw.map(|r| m.msgs_per_sec / r.msgs_per_sec.max(1e-9)),
            raw_byte_ratio: raw.map(|r| m.mb_per_sec / r.mb_per_sec.max(1e-9)),
            vs_corosync: None,
            vs_ring: None,
            cdf: report::cdf_points(&m.lat_self),
        };
        let delivered = row.msgs_per_sec;
        self.emit(row);
        Ok(delivered)
    }

    /// Measures `cluster` at `rate` (`None`: as fast as flow control allows) twice, without
    /// and with network 0 of `lab` cut 1 s into the window (healed after it), the second with
    /// delivery times recorded; prints the stall the cut cost and the time-resolved delivery
    /// around it ([`crate::timeline`]), and keeps the timeline for the results folder.
    fn cut_runs(
        &mut self,
        lab: &netlab::Lab,
        cluster: &mut AisCluster<'_>,
        size: usize,
        rate: Option<f64>,
        at: &Point<'_>,
        networks: usize,
    ) -> anyhow::Result<()> {
        use crate::timeline::{self, Full};
        self.measure(cluster, size, rate, at)?;
        self.label = self.label.take().map(|l| l + " cut0");
        self.record_times = true;
        let mut cut = (0u64, 0u64);
        let r = self.measure_with(cluster, size, rate, at, |_, _| {
            std::thread::sleep(Duration::from_secs(1));
            let before = measure::realtime_ns();
            lab.cut_network(0).context("cutting network 0")?;
            cut = (before, measure::realtime_ns());
            Ok(())
        });
        self.record_times = false;
        lab.heal_network(0).context("healing network 0")?;
        self.label = self
            .label
            .take()
            .map(|l| l.trim_end_matches(" cut0").to_owned());
        r?;
        let n = self.rows.len();
        let (calm, cutrow) = (&self.rows[n - 2], &self.rows[n - 1]);
        let load = match rate {
            Some(r) => format!("{r:.0} msgs/s offered"),
            None => "unpaced".to_owned(),
        };
        let mut line = format!(
            "  network 0 cut at {size} B, {load}: largest self-delivery latency {:.1} ms \
             (without the cut {:.1} ms), p99.9 {:.1} ms ({:.1} ms), {:.0} msgs/s delivered ({:.0})",
            cutrow.lat_self_us.max as f64 / 1000.0,
            calm.lat_self_us.max as f64 / 1000.0,
            cutrow.lat_self_us.p999 as f64 / 1000.0,
            calm.lat_self_us.p999 as f64 / 1000.0,
            cutrow.msgs_per_sec,
            calm.msgs_per_sec
        );
        if let Some((times, window)) = self.last_times.take() {
            // Passive mode at maximum load: after the cut the steady rate is one network's
            // fewer, and that is full throughput then.
            let which = if rate.is_none() && self.args.rrp == "passive" {
                Full::PostCut
            } else {
                Full::PreCut
            };
            let bin = Duration::from_millis(10);
            let tl = timeline::analyse(&times, window, cut.1, bin, Duration::from_secs(1), which);
            line += &format!(
                "\n    time-resolved (10 ms bins, cut took {:.1} ms): before {:.0} msgs/s, after {:.0} msgs/s, \
                 full = {} ({:.0}); longest stall {:.1} ms (before the cut {:.1} ms); back to ≥ 90% of full (100 ms spans) \
                 {}\n    k msgs/s from 50 ms before the cut to 200 ms after: {}",
                (cut.1 - cut.0) as f64 / 1e6,
                tl.pre_rate,
                tl.post_rate,
                if which == Full::PostCut {
                    "after"
                } else {
                    "before"
                },
                tl.full,
                tl.longest_stall_ms,
                tl.baseline_stall_ms,
                tl.back_to_full_ms
                    .map_or("not within 1 s".to_owned(), |ms| format!(
                        "{ms:.0} ms after the cut"
                    )),
                tl.around(-50.0, 200.0)
            );
            let name = format!(
                "cut-timeline-x{networks}-{}-{size}B-{}.csv",
                self.args.rrp,
                rate.map_or("max".to_owned(), |r| format!("{r:.0}"))
            );
            let summary = serde_json::json!({
                "networks": networks, "rrp": self.args.rrp, "size": size, "offered": rate,
                "cut_took_ms": (cut.1 - cut.0) as f64 / 1e6, "pre_rate": tl.pre_rate,
                "post_rate": tl.post_rate, "full": tl.full, "longest_stall_ms": tl.longest_stall_ms,
                "baseline_stall_ms": tl.baseline_stall_ms, "back_to_full_ms": tl.back_to_full_ms,
            });
            if self.args.json {
                println!("{summary}");
            }
            self.timelines.push((name, tl.csv(200.0, 1000.0)));
        }
        if !self.args.json {
            self.bar.suspend(|| println!("{line}"));
        }
        // Let the healed network come back before the next measurement.
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    }

    /// Gives this stack's throughput row of the same configuration its ratio to corosync's
    /// `theirs` msgs/s, and prints it.
    fn ratio_to_corosync(&mut self, size: usize, at: &Point<'_>, theirs: f64) {
        let crypto = if at.crypto { "on" } else { "off" };
        let Some(o) = self.rows.iter_mut().rev().find(|r| {
            r.bench == "throughput"
                && r.system == "openais-rs"
                && r.size == size
                && r.mtu == at.mtu
                && r.crypto == crypto
        }) else {
            return;
        };
        let ratio = o.msgs_per_sec / theirs.max(1e-9);
        o.vs_corosync = Some(ratio);
        if !self.args.json {
            let line = format!(
                "  openais-rs / corosync at {size} B, mtu {}, crypto {crypto}: {ratio:.2}×",
                at.mtu
            );
            self.bar.suspend(|| println!("{line}"));
        }
    }
}

/// Whether the bare-ring arm runs: kernel UDP transports, unless --no-ring.
fn ring_arm(args: &Args, t: StackTransport) -> bool {
    !args.no_ring && matches!(t, StackTransport::Udp | StackTransport::UdpNetns)
}

/// Whether the raw link is also measured with the ring's fan-out: more than two nodes over
/// kernel UDP.
fn fanout(t: StackTransport, nodes: usize) -> bool {
    nodes > 2 && matches!(t, StackTransport::Udp | StackTransport::UdpNetns)
}

/// The raw link that matches a stack transport.
fn raw_transport(t: &StackTransport) -> RawTransport {
    match t {
        StackTransport::Udp => RawTransport::Udp,
        StackTransport::UdpNetns => RawTransport::UdpNetns,
        StackTransport::DpdkAfPacket => RawTransport::DpdkAfPacket,
        StackTransport::DpdkMemif => RawTransport::DpdkMemif,
    }
}

/// `bench-results/throughput-YYYYMMDD-HHMMSS` (UTC).
fn default_out() -> PathBuf {
    let secs = measure::realtime_ns() / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    PathBuf::from(format!(
        "bench-results/throughput-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's civil-from-days method).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
    }
}
