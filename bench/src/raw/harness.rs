//! The harness side, `bench raw` ([`run`], [`measure`]): starts the two `raw-peer` processes
//! (in the lab's namespaces when the transport needs them), gives them the start time, reads
//! their reports, and kills them and removes their files on every path.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use netlab::Lab;

use super::protocol::{DRAIN_MAX, HANDSHAKE, now_ns};
use serde::Serialize;

use super::{Args, PeerReport, RawResult, RawTransport, WARMUP};

/// How far ahead of "now" the harness sets the start time.
const START_LEAD: Duration = Duration::from_millis(200);

/// Counts `measure` calls in this process, for unique DPDK file prefixes and memif sockets.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Measures one stream of `size`-byte frames over `transport` for `seconds` (after
/// [`WARMUP`]): sender on host 1 and receiver on host 2 of `lab` for the transports that need
/// one ([`RawTransport::needs_lab`]; the lab must have been created with this `mtu`), or two
/// processes in the current namespace for `udp` and `dpdk-memif` (`lab` is ignored). Each end
/// is a `bench raw-peer` process of the current executable; their stderr goes to log files in
/// `dir` (created if missing), whose tails are quoted in errors. Both processes are killed and
/// reaped on every path, and DPDK's runtime directories and the memif socket are removed.
///
/// # Errors
/// A size the MTU cannot carry ([`RawTransport::max_payload`]), a missing lab, a DPDK transport
/// in a build without the `dpdk` feature, or a peer that fails, hangs or reports nonsense (the
/// error quotes its log).
pub fn measure(
    transport: RawTransport,
    lab: Option<&Lab>,
    size: usize,
    mtu: u32,
    seconds: f64,
    dir: &Path,
) -> anyhow::Result<RawResult> {
    let max = transport.max_payload(mtu);
    if size == 0 || size > max {
        bail!(
            "{transport}: a payload of {size} bytes does not fit MTU {mtu}: at most {max} bytes \
             (MTU - {}){}",
            if transport.is_dpdk() {
                "12 for the DPDK shim header"
            } else {
                "28 for the IPv4 and UDP headers"
            },
            if mtu < 9000 {
                "; use --mtu 9000 for jumbo frames"
            } else {
                ""
            }
        );
    }
    if transport.is_dpdk() && !cfg!(feature = "dpdk") {
        bail!(
            "this bench was built without DPDK: cargo run --release -p bench --features dpdk -- \
             raw --transport {transport} ..."
        );
    }
    let (lab, window) = setup(transport, lab, seconds, dir)?;
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = format!("oaisraw{}x{k}", std::process::id());
    let plan = Plan::new(transport, lab, size, mtu, window, &tag, None)?;

    // Declared first, dropped last: after both peers are dead.
    let _cleanup = Cleanup(plan.leftovers.clone());
    let exe = std::env::current_exe().context("finding the bench executable")?;
    let timeout = HANDSHAKE + Duration::from_secs(10);

    let mut recv = Peer::spawn(
        "raw receiver",
        plan.command(&exe, 2),
        &plan.recv_args,
        &dir.join(format!("{tag}-recv.log")),
    )?;
    let ready = recv.line(timeout, "ready")?;
    let recv_addr = ready
        .strip_prefix("ready")
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| recv.fail(&format!("expected `ready ADDR`, got {ready:?}")))?
        .to_owned();
    let mut send_args = plan.send_args.clone();
    if !transport.is_dpdk() {
        send_args.push(format!("--peer={recv_addr}"));
    }
    let mut send = Peer::spawn(
        "raw sender",
        plan.command(&exe, 1),
        &send_args,
        &dir.join(format!("{tag}-send.log")),
    )?;
    let ready = send.line(timeout, "ready")?;
    if ready.trim() != "ready" {
        return Err(send.fail(&format!("expected `ready`, got {ready:?}")));
    }

    let start = now_ns() + START_LEAD.as_nanos() as u64;
    send.write_line(&format!("start {start}"))?;
    recv.write_line(&format!("start {start}"))?;
    let budget = START_LEAD + WARMUP + window + DRAIN_MAX + Duration::from_secs(10);
    let s: PeerReport = send.report(budget)?;
    let r: PeerReport = recv.report(budget)?;
    // The memif server (the receiver) goes first: it is idle, and so is the client, so
    // neither is in its receive path when the other one disappears.
    recv.finish()?;
    send.finish()?;

    if r.received > s.sent {
        bail!(
            "{transport}: the receiver counted {} in-window frames but the sender sent only {}",
            r.received,
            s.sent
        );
    }
    let secs = window.as_secs_f64();
    Ok(RawResult {
        frames_per_sec: r.received as f64 / secs,
        mb_per_sec: r.bytes as f64 / secs / 1e6,
        sent: s.sent,
        received: r.received,
        size,
    })
}

/// What one [`measure_fanout`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FanoutResult {
    /// Distinct datagrams every receiver got, at most, per second of the window: the
    /// smallest receiver's in-window count (a datagram the ring could use must reach every
    /// other node).
    pub frames_per_sec: f64,
    /// Their payload, in MB (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// Each receiver's in-window datagrams per second (hosts 2, 3, ...).
    pub per_receiver_frames_per_sec: Vec<f64>,
    /// Distinct datagrams the sender's transport accepted inside the window (each sent once
    /// to every receiver).
    pub sent: u64,
    /// In-window datagrams each receiver got.
    pub received: Vec<u64>,
    /// Payload bytes per datagram.
    pub size: usize,
}

/// Measures the raw link with the fan-out of a `udpu` ring of `nodes` nodes: one sender on
/// host 1 sends every `size`-byte datagram to each of the other `nodes - 1` hosts (through
/// the UDP transport's `Dest::Ring`, the path a Totem frame takes), one receiver per host
/// counts. Kernel UDP only (`udp-netns` in `lab`, `udp` on loopback without one). Otherwise as
/// [`measure`].
///
/// # Errors
/// As [`measure`]; fewer than 3 nodes (use [`measure`]) or a DPDK transport.
pub fn measure_fanout(
    transport: RawTransport,
    lab: Option<&Lab>,
    nodes: usize,
    size: usize,
    mtu: u32,
    seconds: f64,
    dir: &Path,
) -> anyhow::Result<FanoutResult> {
    if transport.is_dpdk() {
        bail!("{transport}: the fan-out is measured over kernel UDP only");
    }
    if nodes < 3 {
        bail!("a fan-out needs at least 3 nodes (2 is one stream: `measure`), not {nodes}");
    }
    let max = transport.max_payload(mtu);
    if size == 0 || size > max {
        bail!("{transport}: a payload of {size} bytes does not fit MTU {mtu}: at most {max}");
    }
    let (lab, window) = setup(transport, lab, seconds, dir)?;
    if let Some(l) = lab
        && l.hosts() < nodes
    {
        bail!(
            "the lab has {} hosts for a fan-out to {nodes} nodes",
            l.hosts()
        );
    }
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = format!("oaisfan{}x{k}", std::process::id());
    let exe = std::env::current_exe().context("finding the bench executable")?;
    let timeout = HANDSHAKE + Duration::from_secs(10);
    let command = |host: usize, role: &str| {
        let mut c = match lab {
            Some(l) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", l.netns(host)]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let bind = lab.map_or_else(|| "127.0.0.1".to_owned(), |l| l.addr(host).to_string());
        c.args([
            "raw-peer".to_owned(),
            format!("--role={role}"),
            format!("--transport={}", transport.name()),
            format!("--size={size}"),
            format!("--mtu={max}"),
            format!("--warmup-ms={}", WARMUP.as_millis()),
            format!("--window-ms={}", window.as_millis()),
            format!("--bind={bind}:0"),
        ]);
        c
    };
    let mut receivers = Vec::new();
    let mut addrs = Vec::new();
    for host in 2..=nodes {
        let mut r = Peer::spawn(
            "raw receiver",
            command(host, "recv"),
            &[],
            &dir.join(format!("{tag}-recv{host}.log")),
        )?;
        let ready = r.line(timeout, "ready")?;
        let addr = ready
            .strip_prefix("ready")
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| r.fail(&format!("expected `ready ADDR`, got {ready:?}")))?
            .to_owned();
        addrs.push(format!("--peer={addr}"));
        receivers.push(r);
    }
    let mut send = Peer::spawn(
        "raw sender",
        command(1, "send"),
        &addrs,
        &dir.join(format!("{tag}-send.log")),
    )?;
    let ready = send.line(timeout, "ready")?;
    if ready.trim() != "ready" {
        return Err(send.fail(&format!("expected `ready`, got {ready:?}")));
    }
    let start = now_ns() + START_LEAD.as_nanos() as u64;
    send.write_line(&format!("start {start}"))?;
    for r in &mut receivers {
        r.write_line(&format!("start {start}"))?;
    }
    let budget = START_LEAD + WARMUP + window + DRAIN_MAX + Duration::from_secs(10);
    let s: PeerReport = send.report(budget)?;
    let mut got = Vec::new();
    for r in &mut receivers {
        got.push(r.report(budget)?);
    }
    for r in &mut receivers {
        r.finish()?;
    }
    send.finish()?;
    if let Some(r) = got.iter().find(|r| r.received > s.sent) {
        bail!(
            "{transport}: a receiver counted {} in-window datagrams but the sender sent only {}",
            r.received,
            s.sent
        );
    }
    let secs = window.as_secs_f64();
    let least = got.iter().map(|r| r.received).min().unwrap_or(0);
    Ok(FanoutResult {
        frames_per_sec: least as f64 / secs,
        mb_per_sec: (least * size as u64) as f64 / secs / 1e6,
        per_receiver_frames_per_sec: got.iter().map(|r| r.received as f64 / secs).collect(),
        sent: s.sent,
        received: got.iter().map(|r| r.received).collect(),
        size,
    })
}

/// How [`measure_ring`]'s nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSettings {
    /// Frames sealed with AES-256-GCM (`aisexec`'s default), or a CRC trailer only.
    pub crypto: bool,
    /// The token timeout in ms (`aisexec`'s default is 100). A node that does not run for
    /// longer (a loaded machine) changes the membership, which fails the measurement.
    pub token_ms: u64,
    /// Most frames the ring sends per token rotation (`totem.window_size`, default 50).
    pub window_size: u32,
    /// Most frames a node sends per token visit (`totem.max_messages`, default 17).
    pub max_messages: u32,
}

/// What one [`measure_ring`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingResult {
    /// Messages node 1 delivered inside the window, per second of the window (the ring's
    /// ordered rate: every node delivers every message).
    pub msgs_per_sec: f64,
    /// Their payload, in MB (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// In-window deliveries at node 1, 2, ...
    pub in_window: Vec<u64>,
    /// Messages the cores accepted inside the window.
    pub submitted: u64,
    /// Every message delivered (the same at every node, checked).
    pub delivered: u64,
    /// The cores' frames retransmitted on request, summed.
    pub frames_retransmitted: u64,
    /// The cores' tokens retransmitted, summed.
    pub token_retransmits: u64,
    /// The cores' process pauses detected, summed (the driver thread did not run for half a token
    /// timeout: the core was not its own).
    pub pauses_detected: u64,
    /// Message size.
    pub size: usize,
    /// CPU the nodes' processes used during the window, in cores (user + system time from
    /// `/proc/PID/stat`).
    pub cpu_cores: f64,
    /// With a fixed load: submit to own delivery at every node, microseconds, of the messages
    /// submitted inside the window (all zero without one) ...
    pub lat_self_us: crate::measure::Percentiles,
    /// ... and its CDF points for the plot.
    pub lat_self_cdf: Vec<(f64, f64)>,
}

/// Measures Totem over a DPDK `transport`, like for like with [`measure`]: the same two
/// processes' pinning (node 1 on CPU 0, node 2 on CPU 1), EAL arguments and port, each a
/// `raw-peer --role ring` whose driver thread busy-polls and generates its own load of
/// `size`-byte messages (see [`super::ring`]'s documentation). Frames are at most the
/// transport's payload budget at `mtu` (a message per frame at 1 KiB and MTU 1500; packed at
/// 9000).
///
/// # Errors
/// A UDP transport (use `bench udp`), a missing lab, a build without `dpdk`, a peer that fails
/// or hangs, or a ring that broke its guarantees: the two nodes delivered different
/// sequences, a sender's messages out of order or missing, or a configuration change.
pub fn measure_ring(
    transport: RawTransport,
    lab: Option<&Lab>,
    size: usize,
    mtu: u32,
    seconds: f64,
    dir: &Path,
    settings: RingSettings,
) -> anyhow::Result<RingResult> {
    if !transport.is_dpdk() {
        bail!(
            "{transport}: the like-for-like ring runs over the DPDK transports only (kernel UDP: `bench udp`)"
        );
    }
    if !cfg!(feature = "dpdk") {
        bail!(
            "this bench was built without DPDK: cargo run --release -p bench --features dpdk -- \
             dpdk-ring ..."
        );
    }
    if !(1..=1 << 20).contains(&size) {
        bail!("the message size must be 1..=1048576 bytes, not {size}");
    }
    let (lab, window) = setup(transport, lab, seconds, dir)?;
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = format!("oaisring{}x{k}", std::process::id());
    let plan = Plan::new(transport, lab, size, mtu, window, &tag, Some(settings))?;
    let _cleanup = Cleanup(plan.leftovers.clone());
    let exe = std::env::current_exe().context("finding the bench executable")?;
    let timeout = HANDSHAKE + Duration::from_secs(10);
    // Node 2 first: it is the memif server.
    let mut n2 = Peer::spawn(
        "ring node 2",
        plan.command(&exe, 2),
        &plan.recv_args,
        &dir.join(format!("{tag}-2.log")),
    )?;
    let up = n2.line(timeout, "up")?;
    if up.trim() != "up" {
        return Err(n2.fail(&format!("expected `up`, got {up:?}")));
    }
    let mut n1 = Peer::spawn(
        "ring node 1",
        plan.command(&exe, 1),
        &plan.send_args,
        &dir.join(format!("{tag}-1.log")),
    )?;
    let up = n1.line(timeout, "up")?;
    if up.trim() != "up" {
        return Err(n1.fail(&format!("expected `up`, got {up:?}")));
    }
    run_ring(vec![n1, n2], &transport.to_string(), window, size)
}

/// Measures the bare ring over kernel UDP for `bench throughput`: node `i` is a `raw-peer
/// --role ring --config configs[i]` (in host `i + 1` of `lab`, or in the current namespace
/// without a lab), so it runs the Totem core, transport, members and frame protection of
/// that `aisexec` configuration, without the executive's service loop, IPC and clients,
/// generating `size`-byte messages on its driver thread (see [`super::ring`]). Every node
/// sends: as fast as flow control allows, or with `rate` that many messages a second
/// (evenly spaced; the result then has the self-latency). The checks are [`measure_ring`]'s.
/// The executives of those files must be stopped (the nodes bind their addresses).
///
/// # Errors
/// Fewer than two nodes, a lab with fewer hosts, a peer that fails or hangs, or a ring that
/// broke its guarantees (different sequences, a FIFO break, a configuration change).
pub fn measure_udp_ring(
    lab: Option<&Lab>,
    configs: &[PathBuf],
    size: usize,
    seconds: f64,
    rate: Option<f64>,
    dir: &Path,
) -> anyhow::Result<RingResult> {
    if configs.len() < 2 {
        bail!("a ring needs at least 2 nodes, not {}", configs.len());
    }
    if let Some(l) = lab
        && l.hosts() < configs.len()
    {
        bail!(
            "the lab has {} hosts for {} nodes",
            l.hosts(),
            configs.len()
        );
    }
    if !(1..=1 << 20).contains(&size) {
        bail!("the message size must be 1..=1048576 bytes, not {size}");
    }
    let transport = if lab.is_some() {
        RawTransport::UdpNetns
    } else {
        RawTransport::Udp
    };
    let (_, window) = setup(RawTransport::Udp, None, seconds, dir)?;
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = format!("oaisudpring{}x{k}", std::process::id());
    let exe = std::env::current_exe().context("finding the bench executable")?;
    let mut peers = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let mut cmd = match lab {
            Some(l) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", l.netns(i + 1)]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args([
            "raw-peer".to_owned(),
            "--role=ring".to_owned(),
            format!("--transport={}", transport.name()),
            format!("--size={size}"),
            "--mtu=65535".to_owned(),
            format!("--warmup-ms={}", WARMUP.as_millis()),
            format!("--window-ms={}", window.as_millis()),
            format!("--node={}", i + 1),
        ]);
        cmd.arg("--config").arg(config);
        if let Some(r) = rate {
            cmd.arg(format!("--rate={r}"));
        }
        let mut p = Peer::spawn(
            "ring node",
            cmd,
            &[],
            &dir.join(format!("{tag}-{}.log", i + 1)),
        )?;
        let up = p.line(HANDSHAKE, "up")?;
        if up.trim() != "up" {
            return Err(p.fail(&format!("expected `up`, got {up:?}")));
        }
        peers.push(p);
    }
    run_ring(peers, transport.name(), window, size)
}

/// The common part of the ring measurements once every node printed `up`: waits for `ready`
/// everywhere, starts the load, collects the reports (asking `again` while the nodes' counts
/// differ), stops the nodes, and checks one sequence everywhere, FIFO per sender and no
/// configuration change.
fn run_ring(
    mut nodes: Vec<Peer>,
    transport: &str,
    window: Duration,
    size: usize,
) -> anyhow::Result<RingResult> {
    let timeout = HANDSHAKE + Duration::from_secs(10);
    for n in &mut nodes {
        let ready = n.line(timeout, "ready")?;
        if ready.trim() != "ready" {
            return Err(n.fail(&format!("expected `ready`, got {ready:?}")));
        }
    }
    let start = now_ns() + START_LEAD.as_nanos() as u64;
    for n in &mut nodes {
        n.write_line(&format!("start {start}"))?;
    }
    // The nodes' CPU at the window's edges (their reports come after the drain).
    let window_start = start + WARMUP.as_nanos() as u64;
    crate::measure::sleep_until_realtime(window_start);
    let cpu0: Vec<Option<u64>> = nodes.iter().map(Peer::cpu_ticks).collect();
    crate::measure::sleep_until_realtime(window_start + window.as_nanos() as u64);
    let cpu1: Vec<Option<u64>> = nodes.iter().map(Peer::cpu_ticks).collect();
    let cpu_cores = cpu0
        .iter()
        .zip(&cpu1)
        .filter_map(|(a, b)| Some(b.as_ref()?.saturating_sub(*a.as_ref()?)))
        .sum::<u64>() as f64
        / crate::measure::TICKS_PER_SEC
        / window.as_secs_f64();
    let budget = START_LEAD + WARMUP + window + DRAIN_MAX + Duration::from_secs(10);
    let drain = Duration::from_secs(15);
    let mut reports = Vec::new();
    for n in &mut nodes {
        reports.push(n.report(budget + drain)?);
    }
    // A node that reported while another still delivered (or while the machine stopped them
    // for a moment): all wait for quiet again, for up to `drain` in all.
    let give_up = Instant::now() + drain;
    let differ = |r: &[PeerReport]| r.iter().any(|x| x.delivered != r[0].delivered);
    while differ(&reports) && Instant::now() < give_up {
        for n in &mut nodes {
            n.write_line("again")?;
        }
        for (n, r) in nodes.iter_mut().zip(reports.iter_mut()) {
            *r = n.report(drain)?;
        }
    }
    // In reverse: node 2 (the memif server of a DPDK ring) first, as the raw peers do.
    for n in nodes.iter_mut().rev() {
        n.finish()?;
    }
    if let Err(e) = check_ring(&reports) {
        let logs: String = nodes
            .iter()
            .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
            .collect();
        bail!("{transport}: {e}; the nodes' logs:\n{logs}");
    }
    let latency = merged_latency(&reports)?;
    let r1 = &reports[0];
    let secs = window.as_secs_f64();
    let sum = |f: fn(&PeerReport) -> u64| reports.iter().map(f).sum::<u64>();
    Ok(RingResult {
        msgs_per_sec: r1.received as f64 / secs,
        mb_per_sec: r1.bytes as f64 / secs / 1e6,
        in_window: reports.iter().map(|r| r.received).collect(),
        submitted: sum(|r| r.sent),
        delivered: r1.delivered,
        frames_retransmitted: sum(|r| r.frames_retransmitted),
        token_retransmits: sum(|r| r.token_retransmits),
        pauses_detected: sum(|r| r.pauses_detected),
        size,
        cpu_cores,
        lat_self_us: crate::measure::Percentiles::of(&latency),
        lat_self_cdf: crate::report::cdf_points(&latency),
    })
}

/// The nodes' self-latency histograms (`PeerReport::lat_self_us`) as one.
fn merged_latency(reports: &[PeerReport]) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut h = super::ring::latency_histogram();
    for r in reports {
        for &(us, n) in &r.lat_self_us {
            h.record_n(us, n)
                .with_context(|| format!("a latency of {us} µs in a node's report"))?;
        }
    }
    Ok(h)
}

/// The ring's guarantees over the nodes' final reports (node 1 first): every node delivered
/// the same number of messages with the same order digest, none out of its sender's order,
/// and no configuration change after the ring formed. The error names the first node that
/// differs or broke one.
fn check_ring(reports: &[PeerReport]) -> anyhow::Result<()> {
    let Some(r1) = reports.first() else {
        bail!("no node reported");
    };
    for (i, r) in reports.iter().enumerate() {
        if r.delivered != r1.delivered || r.digest != r1.digest {
            bail!(
                "the nodes delivered different sequences: node 1 {} messages (digest {:016x}), \
                 node {} {} (digest {:016x})",
                r1.delivered,
                r1.digest,
                i + 1,
                r.delivered,
                r.digest,
            );
        }
        if r.fifo_breaks > 0 || r.config_changes > 0 {
            bail!(
                "node {} saw {} deliveries out of their sender's order and {} configuration \
                 changes during the run",
                i + 1,
                r.fifo_breaks,
                r.config_changes
            );
        }
    }
    if r1.delivered == 0 {
        bail!("no node delivered anything");
    }
    Ok(())
}

/// What [`measure`] and [`measure_ring`] check and prepare alike: the window (1 ms to an
/// hour, in whole milliseconds: what the peers are told and what the rates are divided by),
/// the lab when the transport runs between two of its hosts, and the log directory.
fn setup<'a>(
    transport: RawTransport,
    lab: Option<&'a Lab>,
    seconds: f64,
    dir: &Path,
) -> anyhow::Result<(Option<&'a Lab>, Duration)> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        bail!("the window must be between 0 and 3600 seconds, not {seconds}");
    }
    let lab = match (transport.needs_lab(), lab) {
        (true, None) => bail!("{transport} runs between two lab hosts: pass a netlab::Lab"),
        (true, Some(l)) if l.hosts() < 2 => bail!("{transport} needs a lab with 2 hosts"),
        (true, l) => l,
        (false, _) => None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let window = Duration::from_millis(((seconds * 1000.0).round() as u64).max(1));
    Ok((lab, window))
}

/// Everything that differs between transports: where the peers run and their arguments.
struct Plan {
    /// Host of each end (sender 1, receiver 2) when in a lab.
    lab: Option<Vec<String>>,
    send_args: Vec<String>,
    recv_args: Vec<String>,
    /// Files and directories to remove at the end.
    leftovers: Vec<PathBuf>,
}

impl Plan {
    fn new(
        transport: RawTransport,
        lab: Option<&Lab>,
        size: usize,
        mtu: u32,
        window: Duration,
        tag: &str,
        ring: Option<RingSettings>,
    ) -> anyhow::Result<Plan> {
        let budget = transport.max_payload(mtu);
        let common = |role: &str, node: u32| {
            let mut a = vec![
                "raw-peer".to_owned(),
                format!("--role={}", if ring.is_some() { "ring" } else { role }),
                format!("--transport={}", transport.name()),
                format!("--size={size}"),
                format!("--mtu={budget}"),
                format!("--warmup-ms={}", WARMUP.as_millis()),
                format!("--window-ms={}", window.as_millis()),
            ];
            if let Some(r) = ring {
                a.push(format!("--node={node}"));
                a.push(format!("--token-ms={}", r.token_ms));
                a.push(format!("--window-size={}", r.window_size));
                a.push(format!("--max-messages={}", r.max_messages));
                if r.crypto {
                    a.push("--crypto".into());
                }
            }
            a
        };
        let (mut send_args, mut recv_args) = (common("send", 1), common("recv", 2));
        let mut leftovers = Vec::new();
        match transport {
            RawTransport::Udp => {
                send_args.push("--bind=127.0.0.1:0".into());
                recv_args.push("--bind=127.0.0.1:0".into());
            }
            RawTransport::UdpNetns => {
                let lab = lab.context("udp-netns needs a lab")?;
                send_args.push(format!("--bind={}:0", lab.addr(1)));
                recv_args.push(format!("--bind={}:0", lab.addr(2)));
            }
            RawTransport::DpdkAfPacket | RawTransport::DpdkMemif => {
                let two_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
                let socket = format!("/{tag}.memif");
                for (args, role, lcore) in [
                    (&mut send_args, "s", 0),
                    (&mut recv_args, "r", usize::from(two_cpus)),
                ] {
                    let prefix = format!("{tag}{role}");
                    for base in dpdk_runtime_dirs() {
                        leftovers.push(base.join(&prefix));
                    }
                    let mut eal: Vec<String> = [
                        "--no-huge",
                        "-m",
                        "256",
                        "--no-pci",
                        "--no-telemetry",
                        "--log-level=lib.eal:warning",
                    ]
                    .map(str::to_owned)
                    .to_vec();
                    eal.extend(["-l".into(), lcore.to_string()]);
                    if ring.is_some() {
                        // The Totem thread polls on the core EAL's main lcore names.
                        args.push(format!("--cpu={lcore}"));
                    }
                    eal.extend(["--file-prefix".into(), prefix]);
                    if transport == RawTransport::DpdkAfPacket {
                        // framesz holds the largest frame; values from bench/scripts/dpdk-vs-udp.sh.
                        let (framesz, blocksz) = if mtu > 1500 {
                            (10240, 20480)
                        } else {
                            (2048, 4096)
                        };
                        eal.push("--no-shconf".into());
                        eal.push(format!(
                            "--vdev=net_af_packet0,iface=eth0,framesz={framesz},blocksz={blocksz}"
                        ));
                        args.push("--dpdk-port=net_af_packet0".into());
                        args.push(format!("--min-data-room={}", framesz + 128));
                    } else {
                        // memif needs EAL's shared configuration (no --no-shconf); the server
                        // (receiver) starts first. bsize holds a whole frame.
                        let memif_role = if role == "r" { "server" } else { "client" };
                        let bsize = if mtu > 1500 { 10240 } else { 2048 };
                        eal.push(format!(
                            "--vdev=net_memif0,role={memif_role},socket={socket},id=0,bsize={bsize}"
                        ));
                        args.push("--dpdk-port=net_memif0".into());
                    }
                    let mbufs = if mtu > 1500 { 4095 } else { 8191 };
                    args.push(format!("--mbufs={mbufs}"));
                    args.extend(eal.into_iter().map(|a| format!("--eal={a}")));
                }
                // An abstract socket by default (nothing on disk); removed in case it is not.
                leftovers.push(PathBuf::from(socket));
            }
        }
        let lab = lab
            .filter(|_| transport.needs_lab())
            .map(|l| vec![l.netns(1).to_owned(), l.netns(2).to_owned()]);
        Ok(Plan {
            lab,
            send_args,
            recv_args,
            leftovers,
        })
    }

    /// The command that runs `exe` on `host` (1 or 2): in the host's namespace in a lab.
    fn command(&self, exe: &Path, host: usize) -> Command {
        match &self.lab {
            Some(hosts) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &hosts[host - 1]]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }
}

/// Where EAL puts the runtime directory `<dir>/<file-prefix>`: `/var/run/dpdk` as root,
/// `$XDG_RUNTIME_DIR/dpdk` or `/tmp/dpdk` otherwise.
fn dpdk_runtime_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/var/run/dpdk"), PathBuf::from("/tmp/dpdk")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(Path::new(&x).join("dpdk"));
    }
    dirs
}

/// Removes files and directories on drop (errors ignored).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else if p.exists() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// A running `raw-peer`: killed and reaped on drop unless [`Peer::finish`]ed.
struct Peer {
    name: &'static str,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
}

impl Peer {
    fn spawn(
        name: &'static str,
        mut cmd: Command,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Peer> {
        let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting the {name}: {cmd:?}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("the peer's stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Peer {
            name,
            child: Some(child),
            stdin,
            lines,
            log: log.to_owned(),
        })
    }

    /// Its utime + stime in ticks (`None` once it exited or when unreadable).
    fn cpu_ticks(&self) -> Option<u64> {
        crate::measure::process_ticks(self.child.as_ref()?.id())
    }

    /// An error about this peer, with the tail of its log.
    fn fail(&self, what: &str) -> anyhow::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        anyhow::anyhow!(
            "{}: {what}; its log {}:\n{tail}",
            self.name,
            self.log.display()
        )
    }

    /// The next line the peer prints.
    fn line(&mut self, timeout: Duration, what: &str) -> anyhow::Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => {
                Err(self.fail(&format!("no `{what}` within {timeout:?}")))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.wait().ok())
                    .map_or_else(|| "?".to_owned(), |s| s.to_string());
                Err(self.fail(&format!("exited ({status}) before `{what}`")))
            }
        }
    }

    fn report(&mut self, timeout: Duration) -> anyhow::Result<PeerReport> {
        let line = self.line(timeout, "its report")?;
        serde_json::from_str(&line).map_err(|e| self.fail(&format!("bad report {line:?}: {e}")))
    }

    fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        let r = match self.stdin.as_mut() {
            Some(w) => writeln!(w, "{line}").and_then(|()| w.flush()),
            None => Ok(()),
        };
        r.map_err(|e| self.fail(&format!("cannot write to it: {e}")))
    }

    /// Closes its stdin (it exits) and reaps it; kills it after 5 s. A non-zero exit is an
    /// error.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.stdin = None;
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => return Err(self.fail(&format!("exited with {s}"))),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.fail("did not exit within 5 s of its stdin closing"));
                }
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `bench raw`.
///
/// # Errors
/// A bad argument, a lab that cannot be created (not root), or a failed measurement.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let t = args.transport;
    if t.is_dpdk() && !cfg!(feature = "dpdk") {
        bail!(
            "this bench was built without DPDK: cargo run --release -p bench --features dpdk -- \
             raw --transport {t} ..."
        );
    }
    let max = t.max_payload(args.mtu);
    let (sizes, skipped): (Vec<usize>, Vec<usize>) =
        args.size.iter().partition(|&&s| (1..=max).contains(&s));
    for s in &skipped {
        eprintln!(
            "bench raw: skipping size {s}: {t} at MTU {} carries 1..={max} bytes{}",
            args.mtu,
            if args.mtu < 9000 {
                " (--mtu 9000 for jumbo frames)"
            } else {
                ""
            }
        );
    }
    if sizes.is_empty() {
        bail!(
            "no size fits MTU {}: {t} carries at most {max} bytes",
            args.mtu
        );
    }
    let lab = if t.needs_lab() {
        Some(Lab::new(2, args.mtu).context("creating the two-host network-namespace lab")?)
    } else {
        None
    };
    let dir = std::env::temp_dir().join(format!("oais-raw-{}", std::process::id()));
    let result = (|| {
        for size in sizes {
            let r = measure(t, lab.as_ref(), size, args.mtu, args.seconds, &dir)?;
            if args.json {
                let v = serde_json::json!({
                    "bench": "raw",
                    "transport": t.name(),
                    "size": r.size,
                    "mtu": args.mtu,
                    "seconds": args.seconds,
                    "frames_per_sec": r.frames_per_sec,
                    "mb_per_sec": r.mb_per_sec,
                    "sent": r.sent,
                    "received": r.received,
                });
                println!("{v}");
            } else {
                let pct = if r.sent == 0 {
                    0.0
                } else {
                    100.0 * r.received as f64 / r.sent as f64
                };
                println!(
                    "raw {t} mtu {} size {:>5}: {:>10.0} frames/s {:>9.1} MB/s  \
                     (sent {}, received {}, {pct:.1}% delivered, {} s)",
                    args.mtu,
                    r.size,
                    r.frames_per_sec,
                    r.mb_per_sec,
                    r.sent,
                    r.received,
                    args.seconds
                );
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(delivered: u64, digest: u64) -> PeerReport {
        PeerReport {
            role: "ring".into(),
            delivered,
            digest,
            ..PeerReport::default()
        }
    }

    #[test]
    fn the_ring_check_passes_one_sequence_everywhere() {
        let r = [node(10, 7), node(10, 7), node(10, 7)];
        check_ring(&r).unwrap();
    }

    #[test]
    fn the_ring_check_names_the_node_that_differs_or_breaks_a_guarantee() {
        let e = check_ring(&[node(10, 7), node(10, 7), node(10, 8)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("node 3 10 (digest 0000000000000008)"),
            "{e}"
        );
        let e = check_ring(&[node(10, 7), node(9, 7)]).unwrap_err();
        assert!(e.to_string().contains("node 2 9"), "{e}");
        let mut fifo = node(10, 7);
        fifo.fifo_breaks = 1;
        let e = check_ring(&[node(10, 7), fifo]).unwrap_err();
        assert!(e.to_string().contains("node 2 saw 1 deliveries out"), "{e}");
        let mut change = node(10, 7);
        change.config_changes = 2;
        let e = check_ring(&[change, node(10, 7)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("node 1 saw 0 deliveries out of their sender's order and 2"),
            "{e}"
        );
        assert!(check_ring(&[node(0, 1), node(0, 1)]).is_err());
        assert!(check_ring(&[]).is_err());
    }
}
