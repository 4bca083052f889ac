//! One measurement: load generators on a running [`Cluster`], the protocol of
//! [`crate::load`], and the analysis of what they report.
//!
//! [`run`] starts the generators (sender `i` on node `i % nodes + 1`, plus a receive-only one
//! on every node without a sender, so every node's delivery rate is seen), waits for all of
//! them to say `ready`, gives them one common start time, samples the daemons' CPU time at the
//! edges of the counted window, collects the reports and folds the latency files into
//! histograms. A generator that fails makes the measurement fail with its stderr, except in
//! [`Options::tolerate_failures`] mode (the failover benchmark kills nodes on purpose).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::{Cluster, DRAIN, LoadReport, Workload};

/// How long generators may take to connect, join and see every member.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Head start between the `start` line and the start time, so every generator gets it first.
pub const START_LEAD: Duration = Duration::from_millis(300);
/// Linux reports process CPU times in USER_HZ ticks, which is 100 on every architecture's ABI.
pub const TICKS_PER_SEC: f64 = 100.0;

/// p50/p99/p99.9/max of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// What one measurement found.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Messages delivered per second inside the window, per node (index 0 = node 1).
    pub per_node_msgs_per_sec: Vec<f64>,
    /// Mean of `per_node_msgs_per_sec`.
    pub msgs_per_sec: f64,
    /// Delivered payload MB/s (10^6 bytes), mean over the nodes.
    pub mb_per_sec: f64,
    /// Messages the senders submitted inside the window, per second (the offered load that
    /// got in).
    pub sent_per_sec: f64,
    /// Submit to the sender's own delivery, every own message sent in the window.
    pub lat_self: Histogram<u64>,
    /// Submit to delivery at the last node, sampled messages (every `SAMPLE`-th).
    pub lat_all: Histogram<u64>,
    /// CPU used by the daemons during the window, in cores (1.0 = one core busy).
    pub daemon_cpu_cores: f64,
    /// Submit calls refused for flow control, all senders.
    pub try_again: u64,
    /// Own messages sent in the window and never delivered back.
    pub missing_own: u64,
    /// The generators' reports (a killed node's generator has none).
    pub reports: Vec<LoadReport>,
    /// With [`Options::record_times`]: per generator, its node and the CLOCK_REALTIME times
    /// (ns) of the deliveries inside the window, in order.
    pub delivery_times: Vec<(u32, Vec<u64>)>,
    /// The counted window, CLOCK_REALTIME ns.
    pub window_ns: (u64, u64),
}

/// How [`run`] treats its generators.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Do not fail when a generator exits without a report (nodes killed on purpose).
    pub tolerate_failures: bool,
    /// Have every generator record its delivery times (`--times`, this stack's generator
    /// only), returned in [`Measurement::delivery_times`].
    pub record_times: bool,
}

/// One generator process and where its output goes.
struct Generator {
    node: usize,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr_file: PathBuf,
}

impl Drop for Generator {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// CLOCK_REALTIME now, in nanoseconds.
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Sleeps until CLOCK_REALTIME reaches `ns`.
pub fn sleep_until_realtime(ns: u64) {
    let now = realtime_ns();
    if ns > now {
        std::thread::sleep(Duration::from_nanos(ns - now));
    }
}

/// Runs `workload` on `cluster`, generator files in `out`. `on_running` is called with the
/// cluster and the start time (CLOCK_REALTIME ns) once the counted window has begun, so a
/// caller can act on the cluster mid-run (the failover benchmark kills a node there).
pub fn run(
    cluster: &mut dyn Cluster,
    workload: &Workload,
    out: &Path,
    mut on_running: impl FnMut(&mut dyn Cluster, u64) -> anyhow::Result<()>,
    options: &Options,
) -> anyhow::Result<Measurement> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let nodes = cluster.nodes();
    anyhow::ensure!(nodes >= 1, "a cluster has at least one node");
    anyhow::ensure!(
        workload.size >= crate::load::HEADER_LEN,
        "messages must have at least {} bytes (the benchmark header)",
        crate::load::HEADER_LEN
    );

    // Who runs where: senders round-robin, then a receiver on each node without a sender.
    let mut plan: Vec<(usize, Option<usize>)> = (0..workload.senders)
        .map(|i| (i % nodes + 1, Some(i)))
        .collect();
    for node in 1..=nodes {
        if !plan.iter().any(|(n, _)| *n == node) {
            plan.push((node, None));
        }
    }
    let members = plan.len();
    let per_sender_rate = workload.rate.map(|r| r / workload.senders.max(1) as f64);

    let (line_tx, line_rx) = mpsc::channel::<(usize, String)>();
    let mut generators = Vec::with_capacity(plan.len());
    for (k, (node, sender)) in plan.iter().enumerate() {
        let stderr_file = out.join(format!("generator-{k}.stderr"));
        let mut cmd = cluster.load_command(*node);
        cmd.arg("--group")
            .arg(&workload.group)
            .arg("--members")
            .arg(members.to_string())
            .arg("--size")
            .arg(workload.size.to_string())
            .arg("--batch")
            .arg(workload.batch.to_string())
            .arg("--warmup-ms")
            .arg(workload.warmup.as_millis().to_string())
            .arg("--seconds-ms")
            .arg(workload.window.as_millis().to_string())
            .arg("--out")
            .arg(out);
        if options.record_times {
            cmd.arg("--times");
        }
        if let Some(i) = sender {
            cmd.arg("--sender").arg(i.to_string());
            if let Some(r) = per_sender_rate {
                cmd.arg("--rate").arg(format!("{r:.3}"));
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_file)?);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting load generator {k} ({cmd:?})"))?;
        let stdout = child.stdout.take().context("generator stdout")?;
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
        generators.push(Generator {
            node: *node,
            child,
            stdin,
            stderr_file,
        });
    }
    drop(line_tx);

    let stderr_tail = |g: &Generator| -> String {
        let text = fs::read_to_string(&g.stderr_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    };

    // 1. Everyone ready.
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = vec![false; generators.len()];
    let mut reports: Vec<Option<LoadReport>> = vec![None; generators.len()];
    while ready.iter().any(|r| !r) {
        let left = deadline.saturating_duration_since(Instant::now());
        match line_rx.recv_timeout(left) {
            Ok((k, line)) if line.trim() == "ready" => ready[k] = true,
            Ok((k, line)) => bail!("load generator {k} said {line:?} before \"ready\""),
            Err(_) => {
                let k = ready.iter().position(|r| !r).unwrap_or(0);
                bail!(
                    "load generator {k} (node {}) not ready after {READY_TIMEOUT:?}; its stderr:\n{}",
                    generators[k].node,
                    stderr_tail(&generators[k])
                );
            }
        }
    }

    // 2. One start time for all.
    let start = realtime_ns() + START_LEAD.as_nanos() as u64;
    for g in &mut generators {
        if let Some(stdin) = g.stdin.as_mut() {
            writeln!(stdin, "start {start}").context("telling a generator to start")?;
            stdin.flush()?;
        }
    }

    // 3. CPU at the window's edges.
    let window_start = start + workload.warmup.as_nanos() as u64;
    let window_end = window_start + workload.window.as_nanos() as u64;
    sleep_until_realtime(window_start);
    let cpu0 = daemon_ticks(cluster);
    on_running(cluster, start)?;
    sleep_until_realtime(window_end);
    let cpu1 = daemon_ticks(cluster);
    let window_secs = workload.window.as_secs_f64();
    let daemon_cpu_cores = cpu0
        .iter()
        .zip(&cpu1)
        .filter_map(|(a, b)| Some(b.as_ref()?.saturating_sub(*a.as_ref()?)))
        .sum::<u64>() as f64
        / TICKS_PER_SEC
        / window_secs;

    // 4. Reports.
    let deadline = Instant::now() + DRAIN + Duration::from_secs(10);
    let mut open = generators.len();
    while open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match line_rx.recv_timeout(left) {
            Ok((k, line)) => {
                let report: LoadReport = serde_json::from_str(&line).with_context(|| {
                    format!("load generator {k} printed {line:?}, not a report")
                })?;
                reports[k] = Some(report);
                open -= 1;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    for (k, g) in generators.iter_mut().enumerate() {
        let status = match g.child.try_wait()? {
            Some(s) => Some(s),
            None if reports[k].is_some() => Some(g.child.wait()?),
            None => None,
        };
        if reports[k].is_none() && !options.tolerate_failures {
            bail!(
                "load generator {k} (node {}) gave no report ({}); its stderr:\n{}",
                g.node,
                status.map_or("still running".to_string(), |s| s.to_string()),
                stderr_tail(g)
            );
        }
    }
    drop(generators);
    let reports: Vec<LoadReport> = reports.into_iter().flatten().collect();
    let mut delivery_times = Vec::new();
    for r in &reports {
        if let Some(f) = &r.times_file {
            let bytes = fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let times = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            delivery_times.push((r.node, times));
        }
    }
    analyse(reports, nodes, workload).map(|m| Measurement {
        daemon_cpu_cores,
        delivery_times,
        window_ns: (window_start, window_end),
        ..m
    })
}

/// utime + stime of every daemon, in ticks (`None` for a killed or unreadable one).
pub fn daemon_ticks(cluster: &dyn Cluster) -> Vec<Option<u64>> {
    cluster
        .daemon_pids()
        .into_iter()
        .map(|pid| process_ticks(pid?))
        .collect()
}

/// utime + stime of process `pid`, in ticks (`None` when it is gone or unreadable).
pub fn process_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 of `rest`.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds")
}

fn read_u32s(path: &Path) -> anyhow::Result<Vec<u32>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() % 4 == 0,
        "{} is not a whole number of u32 values",
        path.display()
    );
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Folds the reports and their latency files into one [`Measurement`].
pub fn analyse(
    reports: Vec<LoadReport>,
    nodes: usize,
    workload: &Workload,
) -> anyhow::Result<Measurement> {
    let secs = workload.window.as_secs_f64();
    let mut per_node = vec![None::<(u64, u64)>; nodes];
    let mut lat_self = histogram();
    let mut everywhere: HashMap<(u32, u32), u32> = HashMap::new();
    let (mut sent, mut try_again, mut missing_own) = (0u64, 0u64, 0u64);
    for r in &reports {
        let slot = per_node
            .get_mut((r.node as usize).wrapping_sub(1))
            .with_context(|| format!("a report from node {} of {nodes}", r.node))?;
        // Every generator on a node sees the same stream; keep the largest count.
        if slot.is_none_or(|(d, _)| r.delivered > d) {
            *slot = Some((r.delivered, r.delivered_bytes));
        }
        sent += r.sent;
        try_again += r.try_again;
        missing_own += r.missing_own;
        if r.sender.is_some() {
            for us in read_u32s(&r.self_lat_file)? {
                lat_self.record(u64::from(us.max(1)))?;
            }
        }
        let all = read_u32s(&r.all_lat_file)?;
        anyhow::ensure!(
            all.len() % 3 == 0,
            "{} is not a whole number of records",
            r.all_lat_file.display()
        );
        for rec in all.chunks_exact(3) {
            let e = everywhere.entry((rec[0], rec[1])).or_insert(0);
            *e = (*e).max(rec[2]);
        }
    }
    let mut lat_all = histogram();
    for us in everywhere.values() {
        lat_all.record(u64::from((*us).max(1)))?;
    }
    let per_node_msgs_per_sec: Vec<f64> = per_node
        .iter()
        .map(|s| s.map_or(0.0, |(d, _)| d as f64 / secs))
        .collect();
    let seen: Vec<&(u64, u64)> = per_node.iter().flatten().collect();
    let n = seen.len().max(1) as f64;
    Ok(Measurement {
        msgs_per_sec: seen.iter().map(|(d, _)| *d as f64).sum::<f64>() / n / secs,
        mb_per_sec: seen.iter().map(|(_, b)| *b as f64).sum::<f64>() / n / secs / 1e6,
        per_node_msgs_per_sec,
        sent_per_sec: sent as f64 / secs,
        lat_self,
        lat_all,
        daemon_cpu_cores: 0.0,
        try_again,
        missing_own,
        reports,
        delivery_times: Vec::new(),
        window_ns: (0, 0),
    })
}
