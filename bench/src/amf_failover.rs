//! `bench amf-failover`: how long the AMF takes to move a stateful service to its standby,
//! and whether an acknowledged update is ever lost.
//!
//! Each kill runs on a fresh cluster: three `aisexec` executives on 127.0.0.1 (kernel UDP,
//! secauth on, `[quorum]` expecting three votes, so two survivors stay quorate and neither
//! quorum nor the two-node tie-breaker decides) with an `[amf]` model of one 2N service group
//! of three SUs, one per node (ranks shuffled per kill, so the active lands on a random
//! node): one active, one standby, one spare. The component is the example counter service
//! (`examples/amf-counter`, run as the bench's hidden `amf-counter` subcommand, so the bench
//! needs only its own binary), with `--defect` one of its deliberate defects, which the check
//! must catch. The SI's CSI has `listen = "127.0.0.1:PORT"` and `checkpoint`.
//!
//! Load: `--clients` threads of this process, each sending `ADD <client> <seq> 1` and waiting
//! for `OK <total>` before the next. On a broken connection a client reconnects, sends its
//! last acknowledged `ADD` again (the duplicate detection is exercised at every failover: it
//! must not count) and then the unacknowledged one with the same sequence number (ADD is
//! idempotent per client and sequence number). After a random 0.3–0.8 s of load the active is
//! killed:
//!
//! - `component`: SIGKILL of the active component's process (the component type's recovery is
//!   `su-failover`; the executive sees the process exit through passive monitoring);
//! - `node`: SIGKILL of the active node's executive and, right after, of its components (a
//!   node crash; the survivors see the node leave through Totem's token loss, then wait the
//!   fence delay before the standby takes the SI active).
//!
//! Measured from the instant before the first SIGKILL, on this process's monotonic clock:
//!
//! - `membership` (node kills): a survivor's `aisctl amf status` (the AMF's own cluster view,
//!   polled every 0.5 ms over IPC) no longer lists the node;
//! - `listening`: a client's connection to `listen` opened after the kill (when it was
//!   opened), of those a live server answered: the new active has taken the CSI set active
//!   and listens;
//! - `confirmed`: the standby node's `aisctl amf status` shows another SU holding the SI
//!   active, confirmed (no `->`): the component answered the CSI set and its answer went round
//!   the ring;
//! - `served`: the first `OK` on a connection opened after the kill: the first request served
//!   by the new active;
//! - `exit-peer` (component kills): just before the kill, the same SIGKILL of a `sleep` child
//!   of this process until `waitpid` returns: the raw process-exit detection the AMF's
//!   component failover is built on, measured in the same run under the same load.
//!
//! After the kill the load goes on for 0.2 s once a request has been served; then every client
//! finishes its request in flight and a `GET` reads the total. Lost acknowledged updates are
//! the acknowledged `ADD`s the total does not hold (each adds 1); more than the
//! acknowledgements would be an `ADD` applied twice. Both must be 0 (the bench fails
//! otherwise).

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ais::harness::{self, ProcessCluster};
use ais_client::amf::Amf;
use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::measure::realtime_ns;

/// Nodes of the cluster (three: quorum survives one crash, no two-node tie-breaker).
const NODES: usize = 3;
/// The SI and the SG.
const SI: &str = "counter";
/// Bound on every wait (cluster start, assignment, failover, last requests).
const WAIT: Duration = Duration::from_secs(20);
/// Pause between two status polls.
const POLL: Duration = Duration::from_micros(500);
/// Load after the first request served by the new active.
const AFTER: Duration = Duration::from_millis(200);
/// The environment variable that marks this run's component processes (value: the node's
/// directory), so they can be found and killed.
pub(crate) const MARK: &str = "OAIS_AMF_BENCH_NODE";

/// Arguments of `bench amf-failover`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  bench amf-failover                           20 kills of each kind, default timers
  bench amf-failover --token 20 --kind node    node crashes with the tuned timers
  bench amf-failover --fence-ms 150            with [amf] fence_ms = 150

Runs on 127.0.0.1; needs no root.")]
pub struct Args {
    /// Kills of each kind (each on a fresh cluster, about 1.2 s each).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub kills: u32,
    /// Kinds of failure, comma-separated: component, node.
    #[arg(long, default_value = "component,node", value_delimiter = ',',
          value_parser = ["component", "node"])]
    pub kind: Vec<String>,
    /// Totem token timeout in ms; given, the other timers follow docs/membership.md's tuned
    /// set (consensus token / 2 with `short_consensus`, join token / 5, merge token: token 20
    /// gives 20/10/4/20). Default: the executive's defaults (token 100 ms, consensus 120 ms).
    #[arg(long, value_parser = clap::value_parser!(u64).range(5..=10000))]
    pub token: Option<u64>,
    /// Totem consensus timeout in ms, instead of the one `--token` implies (token / 2);
    /// below the token timeout it sets `totem.short_consensus` (docs/membership.md).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=12000))]
    pub consensus: Option<u64>,
    /// `[amf] fence_ms` of the executives; default: the executive's default.
    #[arg(long)]
    pub fence_ms: Option<u64>,
    /// Client connections sending ADDs, one request in flight each.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub clients: u32,
    /// A deliberate defect of the example service (its hidden `--defect`), to show the
    /// check catches it: `fresh-state` (a new active starts from zero: updates lost) or
    /// `no-dedup` (an ADD sent again is counted again: updates applied twice).
    #[arg(long, default_value = "none", value_parser = ["none", "fresh-state", "no-dedup"])]
    pub defect: String,
    /// Seed of the kill times and SU ranks (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep each cluster's directory (configurations, model, logs) under the temp dir.
    #[arg(long)]
    pub keep: bool,
    /// One JSON object per kill and one per kind instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What one kill measured; times in ms from the kill.
#[derive(Debug, Clone, Serialize)]
pub struct KillResult {
    /// `component` or `node`.
    pub kind: String,
    /// Kill number within its kind, from 1.
    pub kill: u32,
    /// The node whose component (or executive) was killed.
    pub victim_node: u32,
    /// When the kill was sent, ns since the Unix epoch (CLOCK_REALTIME, the clock of the
    /// executives' log lines), to find it in the logs `--keep` keeps.
    pub killed_at_unix_ns: u64,
    /// The SU that was active.
    pub old_active: String,
    /// The SU that became active.
    pub new_active: String,
    /// Node kills: a survivor's AMF view without the node.
    pub membership_ms: Option<f64>,
    /// A connection to the new active accepted.
    pub listening_ms: f64,
    /// The standby node's status shows the new active confirmed.
    pub confirmed_ms: f64,
    /// The first request served by the new active.
    pub served_ms: f64,
    /// Component kills: SIGKILL of a child of this process to `waitpid` (the raw process-exit
    /// detection), measured just before.
    pub exit_peer_ms: Option<f64>,
    /// ADDs acknowledged.
    pub acked: u64,
    /// The total read at the end.
    pub total: u64,
    /// Acknowledged ADDs the total lacks.
    pub lost: u64,
    /// ADDs counted more than once.
    pub duplicated: u64,
}

/// p50 / p90 / max of one figure over the kills of one kind, ms.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Spread {
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Spread {
            p50: rank(0.5),
            p90: rank(0.9),
            max: v[v.len() - 1],
        }
    }
}

/// The summary of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `"amf-failover"`.
    pub bench: &'static str,
    /// `component` or `node`.
    pub kind: String,
    /// The example service's deliberate defect (`none`: the service as documented).
    pub defect: String,
    /// Kills measured.
    pub kills: usize,
    /// Kills that failed (no failover within the bounds, a client without an answer, ...):
    /// reported above them, not in the figures.
    pub failed: usize,
    /// Token timeout, ms (100: the default).
    pub token_ms: u64,
    /// `[amf] fence_ms` when given.
    pub fence_ms: Option<u64>,
    /// Client connections.
    pub clients: u32,
    /// Node kills: a survivor's AMF view without the node.
    pub membership: Option<Spread>,
    /// A connection to the new active accepted.
    pub listening: Spread,
    /// The new active confirmed in the status.
    pub confirmed: Spread,
    /// The first request served by the new active.
    pub served: Spread,
    /// Component kills: the raw process-exit detection.
    pub exit_peer: Option<Spread>,
    /// ADDs acknowledged, all kills.
    pub acked: u64,
    /// Lost acknowledged updates, all kills.
    pub lost: u64,
    /// ADDs applied twice, all kills.
    pub duplicated: u64,
    /// The target for this kind and these timers, if it has one.
    pub target: Option<String>,
    /// Whether it is met.
    pub target_met: Option<bool>,
    /// Seed of the run.
    pub seed: u64,
}

/// Runs `bench amf-failover`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if let (Some(f), t) = (args.fence_ms, args.token.unwrap_or(100)) {
        anyhow::ensure!(
            f > t,
            "--fence-ms {f} must exceed the token timeout ({t} ms)"
        );
    }
    let seed = args.seed.unwrap_or_else(|| realtime_ns() % 1_000_000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let program = std::env::current_exe().context("locating the bench executable")?;
    let work = std::env::temp_dir().join(format!("oais-amf-failover-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let token = args.token.unwrap_or(100);
    if !args.json {
        println!(
            "amf-failover: 3 nodes on 127.0.0.1, 2N with 3 SUs, example counter service (defect {}), {} clients; token {token} ms{}{}{}; seed {seed}",
            args.defect,
            args.clients,
            if args.token.is_some() {
                " (tuned timers)"
            } else {
                " (default timers)"
            },
            args.consensus
                .map_or_else(String::new, |c| format!(", consensus {c} ms")),
            args.fence_ms
                .map_or_else(String::new, |f| format!(", fence_ms {f}"))
        );
    }
    let mut failed = Vec::new();
    for kind in &args.kind {
        let mut results = Vec::new();
        let failed_before = failed.len();
        for k in 1..=args.kills {
            let dir = work.join(format!("{kind}-{k}"));
            let r = match one_kill(args, kind, k, &mut rng, &program, &dir) {
                Ok(r) => r,
                Err(e) => {
                    // Reported and counted; the files stay; the other kills go on.
                    let e = format!("{e:#} (files in {})", dir.display());
                    if args.json {
                        let v = serde_json::json!({"kind": kind, "kill": k, "error": e});
                        println!("{v}");
                    } else {
                        println!("  #{k} {kind} kill FAILED: {e}");
                    }
                    failed.push(format!(
                        "{kind} kill {k}: {}",
                        e.lines().next().unwrap_or("")
                    ));
                    continue;
                }
            };
            if !args.keep {
                let _ = fs::remove_dir_all(&dir);
            }
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("  {}", line(&r));
            }
            results.push(r);
        }
        if results.is_empty() {
            continue;
        }
        let mut s = summarize(args, kind, &results, token, seed);
        s.failed = failed.len() - failed_before;
        if args.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            print!("{}", summary_text(&s));
        }
        if s.lost > 0 || s.duplicated > 0 {
            failed.push(format!(
                "{kind}: {} lost acknowledged updates, {} applied twice (must be 0)",
                s.lost, s.duplicated
            ));
        }
    }
    if !args.keep {
        // Empty unless a kill failed (its files stay for inspection).
        let _ = fs::remove_dir(&work);
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

fn line(r: &KillResult) -> String {
    let mut s = format!(
        "#{} {} kill on node {} ({} -> {}):",
        r.kill, r.kind, r.victim_node, r.old_active, r.new_active
    );
    if let Some(m) = r.membership_ms {
        let _ = write!(s, " membership {m:.1} ms,");
    }
    let _ = write!(
        s,
        " listening {:.1} ms, confirmed {:.1} ms, served {:.1} ms",
        r.listening_ms, r.confirmed_ms, r.served_ms
    );
    if let Some(p) = r.exit_peer_ms {
        let _ = write!(s, " (raw exit detection {p:.2} ms)");
    }
    let _ = write!(
        s,
        "; {} acknowledged, total {}, lost {}",
        r.acked, r.total, r.lost
    );
    if r.duplicated > 0 {
        let _ = write!(s, ", applied twice {}", r.duplicated);
    }
    s
}

fn summarize(args: &Args, kind: &str, r: &[KillResult], token: u64, seed: u64) -> Summary {
    let col = |f: fn(&KillResult) -> f64| r.iter().map(f).collect::<Vec<f64>>();
    let opt = |f: fn(&KillResult) -> Option<f64>| {
        let v: Vec<f64> = r.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| Spread::of(&v))
    };
    let confirmed = Spread::of(&col(|k| k.confirmed_ms));
    let (target, met) = match (kind, args.token) {
        ("component", None) => (
            Some("component failure -> standby active p50 <= 20 ms (default timers)".to_owned()),
            Some(confirmed.p50 <= 20.0),
        ),
        ("node", None) => (
            Some(
                "node crash -> standby active p50 <= 300 ms and max <= 400 ms (default timers)"
                    .to_owned(),
            ),
            Some(confirmed.p50 <= 300.0 && confirmed.max <= 400.0),
        ),
        ("node", Some(20)) => (
            Some("node crash -> standby active p50 <= 50 ms (token 20 ms)".to_owned()),
            Some(confirmed.p50 <= 50.0),
        ),
        _ => (None, None),
    };
    Summary {
        bench: "amf-failover",
        kind: kind.to_owned(),
        defect: args.defect.clone(),
        kills: r.len(),
        failed: 0,
        token_ms: token,
        fence_ms: args.fence_ms,
        clients: args.clients,
        membership: opt(|k| k.membership_ms),
        listening: Spread::of(&col(|k| k.listening_ms)),
        confirmed,
        served: Spread::of(&col(|k| k.served_ms)),
        exit_peer: opt(|k| k.exit_peer_ms),
        acked: r.iter().map(|k| k.acked).sum(),
        lost: r.iter().map(|k| k.lost).sum(),
        duplicated: r.iter().map(|k| k.duplicated).sum(),
        target,
        target_met: met,
        seed,
    }
}

fn summary_text(s: &Summary) -> String {
    let mut t = format!(
        "amf-failover {} ({} kills, token {} ms{}), ms from the kill:    p50      p90      max\n",
        s.kind,
        s.kills,
        s.token_ms,
        s.fence_ms
            .map_or_else(String::new, |f| format!(", fence_ms {f}"))
    );
    let mut row = |name: &str, sp: &Spread| {
        let _ = writeln!(
            t,
            "  {name:<58} {:>8.1} {:>8.1} {:>8.1}",
            sp.p50, sp.p90, sp.max
        );
    };
    if let Some(m) = &s.membership {
        row("membership: a survivor's AMF view without the node", m);
    }
    row(
        "listening: the new active accepts a connection",
        &s.listening,
    );
    row(
        "confirmed: status shows the standby active (confirmed)",
        &s.confirmed,
    );
    row("served: first request served by the new active", &s.served);
    if let Some(p) = &s.exit_peer {
        row("peer: raw process-exit detection (kill -9 to waitpid)", p);
    }
    let _ = writeln!(
        t,
        "  updates: {} acknowledged, {} lost, {} applied twice",
        s.acked, s.lost, s.duplicated
    );
    if s.failed > 0 {
        let _ = writeln!(
            t,
            "  kills that failed (above, not in the figures): {}",
            s.failed
        );
    }
    if let (Some(target), Some(met)) = (&s.target, s.target_met) {
        let _ = writeln!(
            t,
            "  target (issue 18): {target}: {}",
            if met { "met" } else { "NOT met" }
        );
    }
    t
}

/// The `[totem]` timer lines for `--token` and `--consensus`.
fn timer_lines(token: Option<u64>, consensus: Option<u64>) -> String {
    let consensus = consensus.or(token.map(|t| (t / 2).max(2)));
    let mut lines = String::new();
    if let Some(t) = token {
        let _ = writeln!(lines, "token = {t}");
    }
    if let Some(c) = consensus {
        let _ = writeln!(lines, "consensus = {c}");
    }
    if let Some(t) = token {
        let _ = write!(lines, "join = {}\nmerge = {t}\n", (t / 5).max(1));
    }
    if consensus.is_some_and(|c| c < token.unwrap_or(100)) {
        lines += "short_consensus = true\n";
    }
    lines
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The AMF model: three nodes, one 2N SG with an SU per node ranked by `ranks`.
fn model(
    program: &Path,
    defect: &str,
    sockets: &[PathBuf],
    dirs: &[PathBuf],
    ranks: &[u32],
    listen: SocketAddr,
) -> String {
    // One instantiate command for every node: the SU in the component's name picks the
    // executive's socket (and this run's mark).
    let mut sh = String::from("case \"$SA_AMF_COMPONENT_NAME\" in ");
    for (i, (s, d)) in sockets.iter().zip(dirs).enumerate() {
        let _ = write!(
            sh,
            "*safSu=counter-{},*) OPENAIS_IPC_SOCKET='{}'; {MARK}='{}';; ",
            i + 1,
            s.display(),
            d.display()
        );
    }
    let _ = write!(
        sh,
        "esac; export OPENAIS_IPC_SOCKET {MARK}; exec '{}' amf-counter --defect {defect}",
        program.display()
    );
    let mut m = String::from("[node]\n");
    for i in 1..=NODES {
        let _ = writeln!(m, "n{i} = {{ nodeid = {i} }}");
    }
    let _ = write!(
        m,
        "\n[comp_type.counter]\ninstantiate = {sh:?}\nrecovery = \"su-failover\"\n\n\
         [sg.{SI}]\nredundancy = \"2n\"\ncomponents = [\"counter\"]\n"
    );
    for (i, r) in ranks.iter().enumerate() {
        let _ = writeln!(
            m,
            "su.counter-{} = {{ node = \"n{}\", rank = {r} }}",
            i + 1,
            i + 1
        );
    }
    let _ = write!(
        m,
        "\n[si.{SI}]\nsg = \"{SI}\"\ncsi.state = {{ comp_type = \"counter\", attributes = {{ listen = \"{listen}\", checkpoint = \"amf-bench\" }} }}\n"
    );
    m
}

/// Pids of the processes whose environment has `MARK=dir` (this run's components on the
/// node of `dir`), or with `dir` `None` any node of `root`.
pub(crate) fn marked(root: &Path, dir: Option<&Path>) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = fs::read(e.path().join("environ")) else {
            continue;
        };
        for var in env.split(|&b| b == 0) {
            let Some(value) = var
                .strip_prefix(MARK.as_bytes())
                .and_then(|v| v.strip_prefix(b"="))
            else {
                continue;
            };
            let value = Path::new(std::str::from_utf8(value).unwrap_or(""));
            let hit = match dir {
                Some(d) => value == d,
                None => value.starts_with(root),
            };
            if hit {
                out.push(pid);
            }
        }
    }
    out
}

pub(crate) fn sigkill(pids: &[i32]) {
    for &p in pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// The cluster, and on drop every executive and component of it killed.
struct Run {
    cluster: ProcessCluster,
    root: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        for i in 0..self.cluster.len() {
            let _ = self.cluster.kill(i);
        }
        // The components are the executives' children, in their own process groups: found
        // by their mark.
        sigkill(&marked(&self.root, None));
    }
}

/// One SI line of a status: the assignments (SU, state, whether it is changing).
fn assignments(status: &[String]) -> Option<Vec<(String, String, bool)>> {
    si_assignments(status, SI)
}

/// The line of SI `si` of a status: the assignments (SU, state, whether it is changing).
pub(crate) fn si_assignments(status: &[String], si: &str) -> Option<Vec<(String, String, bool)>> {
    let prefix = format!("SI {si}: ");
    let l = status
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(&prefix))?;
    let l = l.split(", waiting").next().unwrap_or(l);
    Some(
        l.split(", ")
            .filter_map(|a| {
                let mut w = a.split_whitespace();
                let su = w.next()?.to_owned();
                let held = w.next()?.to_owned();
                Some((su, held, w.next().is_some()))
            })
            .collect(),
    )
}

/// The members in a status's `cluster: members [..]` line.
fn members(status: &[String]) -> Option<Vec<u32>> {
    let l = status
        .iter()
        .find(|l| l.starts_with("cluster: members ["))?;
    let inner = l.split('[').nth(1)?.split(']').next()?;
    Some(
        inner
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
    )
}

/// What the clients share.
#[derive(Default)]
struct Shared {
    /// Set just before the kill.
    killed: OnceLock<Instant>,
    stop: AtomicBool,
    acked: AtomicU64,
    /// First connection opened after the kill that a live server answered (when opened).
    listening: Mutex<Option<Instant>>,
    /// First OK on a connection opened after the kill.
    served: Mutex<Option<Instant>>,
    /// A client that gave up (could not finish its request in flight).
    failure: Mutex<Option<String>>,
}

fn earliest(slot: &Mutex<Option<Instant>>, t: Instant) {
    let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if s.is_none_or(|old| t < old) {
        *s = Some(t);
    }
}

/// One client: ADD after ADD, one in flight; retries a request on a new connection until
/// it is acknowledged; after `stop`, finishes its request in flight.
fn client(id: u32, addr: SocketAddr, sh: &Shared) {
    struct Conn {
        r: BufReader<TcpStream>,
        w: TcpStream,
        /// When the connection was opened, if after the kill.
        after: Option<Instant>,
        answered: bool,
    }
    let mut seq = 1u64;
    // Whether ADD `seq` was sent (it may have been applied) and not acknowledged yet.
    let mut pending = false;
    // After a reconnection: the last acknowledged ADD, to send again first.
    let mut resend: Option<u64> = None;
    let mut conn: Option<Conn> = None;
    let mut since_ack = Instant::now();
    loop {
        if !pending && sh.stop.load(Ordering::Relaxed) {
            return;
        }
        if since_ack.elapsed() > WAIT {
            *sh.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
                "client {id}: no answer to ADD seq {seq} within {WAIT:?}"
            ));
            return;
        }
        if conn.is_none() {
            let opened = Instant::now();
            match TcpStream::connect(addr) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let Ok(w) = s.try_clone() else { continue };
                    resend = (seq > 1).then(|| seq - 1);
                    conn = Some(Conn {
                        r: BufReader::new(s),
                        w,
                        after: sh
                            .killed
                            .get()
                            .is_some_and(|k| opened >= *k)
                            .then_some(opened),
                        answered: false,
                    });
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let mut answer = String::new();
        let sending = resend.unwrap_or(seq);
        pending |= resend.is_none();
        let ok =
            c.w.write_all(format!("ADD c{id} {sending} 1\n").as_bytes())
                .is_ok()
                && c.r.read_line(&mut answer).is_ok_and(|n| n > 0);
        if !ok {
            conn = None;
            continue;
        }
        let t = Instant::now();
        if let Some(opened) = c.after
            && !c.answered
        {
            // A live process accepted it (a connection the dying one's backlog took gets
            // no answer).
            earliest(&sh.listening, opened);
        }
        c.answered = true;
        if answer.starts_with("OK ") {
            if c.after.is_some() {
                earliest(&sh.served, t);
            }
            if resend.take().is_none() {
                sh.acked.fetch_add(1, Ordering::Relaxed);
                seq += 1;
                pending = false;
            }
            since_ack = t;
        } else {
            // Not served (e.g. not active yet): the same ADD again shortly.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Sets `stop` when dropped, so the clients end on every path out of a kill.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// `GET` on a new connection: the total.
fn get_total(addr: SocketAddr) -> anyhow::Result<u64> {
    let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr} for GET"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut w = s.try_clone()?;
    w.write_all(b"GET\n")?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    answer
        .trim()
        .strip_prefix("VALUE ")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("GET answered {answer:?}"))
}

/// SIGKILL of a `sleep` child to `waitpid`: the raw process-exit detection, ms.
fn exit_peer() -> anyhow::Result<f64> {
    let mut c = Command::new("sleep").arg("600").spawn()?;
    // Let it start (exec'd) so the kill hits a running process, as the AMF's does.
    std::thread::sleep(Duration::from_millis(5));
    let t = Instant::now();
    kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL)?;
    c.wait()?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

fn status_of(socket: &Path) -> anyhow::Result<Vec<String>> {
    Ok(Amf::initialize(socket)?.status()?)
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

#[allow(clippy::too_many_lines)]
fn one_kill(
    args: &Args,
    kind: &str,
    k: u32,
    rng: &mut rand_chacha::ChaCha8Rng,
    program: &Path,
    dir: &Path,
) -> anyhow::Result<KillResult> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let mut ranks: Vec<u32> = (0..NODES as u32).collect();
    ranks.shuffle(rng);
    let warm = Duration::from_millis(rng.random_range(300..800));
    let listen: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()?).parse()?;
    let ports = harness::free_ports(NODES)?;
    let builder = ProcessCluster::builder(dir, NODES, program)
        .arg("aisexec")
        .key();
    let key = builder.key_path();
    let model_path = dir.join("amf.toml");
    let mut totem = harness::key_lines(&key);
    totem += &timer_lines(args.token, args.consensus);
    let mut amf = format!(
        "\n[quorum]\nexpected_votes = {NODES}\n\n[amf]\nmodel = {:?}\n",
        model_path.display().to_string()
    );
    if let Some(f) = args.fence_ms {
        let _ = writeln!(amf, "fence_ms = {f}");
    }
    let cluster = builder.create(|node| harness::loopback_config(node, &ports, &totem) + &amf)?;
    let sockets: Vec<PathBuf> = cluster.nodes().iter().map(|n| n.socket.clone()).collect();
    let dirs: Vec<PathBuf> = cluster.nodes().iter().map(|n| n.dir.clone()).collect();
    fs::write(
        &model_path,
        model(program, &args.defect, &sockets, &dirs, &ranks, listen),
    )?;
    let mut run = Run {
        cluster,
        root: dir.to_owned(),
    };
    run.cluster.keep(true);
    run.cluster.spawn_all()?;
    let deadline = Instant::now() + WAIT;
    let all: Vec<u32> = (1..=NODES as u32).collect();
    for i in 0..NODES {
        run.cluster.wait_ring(i, &all, deadline)?;
    }
    // One active and one standby, confirmed.
    let (active, standby) = loop {
        if let Ok(st) = status_of(&sockets[0])
            && let Some(a) = assignments(&st)
        {
            let confirmed = |h: &str| {
                a.iter()
                    .find(|(_, held, changing)| held == h && !changing)
                    .map(|(su, _, _)| su.clone())
            };
            if a.len() == 2
                && let (Some(x), Some(y)) = (confirmed("active"), confirmed("standby"))
            {
                break (x, y);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no confirmed active and standby within {WAIT:?}; status:\n{}\nnode 1 log:\n{}",
                status_of(&sockets[0]).map_or_else(|e| e.to_string(), |s| s.join("\n")),
                run.cluster.log_tail(0, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let su_node = |su: &str| -> anyhow::Result<usize> {
        su.strip_prefix("counter-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=NODES).contains(n))
            .with_context(|| format!("unexpected SU name {su:?}"))
    };
    let victim = su_node(&active)?;
    let watcher = su_node(&standby)?;

    // Load.
    let shared = Arc::new(Shared::default());
    let _stop = StopOnDrop(Arc::clone(&shared));
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let sh = Arc::clone(&shared);
            std::thread::spawn(move || client(id, listen, &sh))
        })
        .collect();
    std::thread::sleep(warm);
    anyhow::ensure!(
        shared.acked.load(Ordering::Relaxed) > 0,
        "no request served in {warm:?} of load before the kill; node {victim} log:\n{}",
        run.cluster.log_tail(victim - 1, 40)
    );

    // Status poller on the standby's node, started before the kill.
    let poll_done = Arc::new(AtomicBool::new(false));
    let poller = {
        let socket = sockets[watcher - 1].clone();
        let done = Arc::clone(&poll_done);
        let old = active.clone();
        let node = victim as u32;
        let node_kill = kind == "node";
        std::thread::spawn(
            move || -> anyhow::Result<(Option<Instant>, Instant, String)> {
                let mut amf = Amf::initialize(&socket)?;
                let (mut gone, mut confirmed) = (None, None);
                let started = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let st = amf.status()?;
                    let t = Instant::now();
                    if node_kill
                        && gone.is_none()
                        && members(&st).is_some_and(|m| !m.contains(&node))
                    {
                        gone = Some(t);
                    }
                    if confirmed.is_none()
                        && let Some(new) = assignments(&st).and_then(|a| {
                            a.into_iter()
                                .find(|(su, held, changing)| {
                                    *su != old && held == "active" && !changing
                                })
                                .map(|(su, _, _)| su)
                        })
                    {
                        confirmed = Some((t, new));
                    }
                    if let Some((t, new)) = &confirmed
                        && (!node_kill || gone.is_some())
                    {
                        return Ok((gone, *t, new.clone()));
                    }
                    if started.elapsed() > WAIT {
                        bail!(
                            "no new active confirmed within {WAIT:?}; status:\n{}",
                            st.join("\n")
                        );
                    }
                    std::thread::sleep(POLL);
                }
                bail!("stopped")
            },
        )
    };

    let peer = if kind == "component" {
        Some(exit_peer()?)
    } else {
        None
    };
    let comps = marked(dir, Some(&dirs[victim - 1]));
    anyhow::ensure!(
        !comps.is_empty(),
        "no component process found on node {victim}"
    );
    let exec_pid = run
        .cluster
        .node(victim - 1)
        .pid()
        .context("victim running")?;
    // The kill.
    let killed = Instant::now();
    let killed_at_unix_ns = realtime_ns();
    let _ = shared.killed.set(killed);
    if kind == "node" {
        kill(Pid::from_raw(exec_pid as i32), Signal::SIGKILL)?;
    }
    sigkill(&comps);
    if kind == "node" {
        run.cluster.kill(victim - 1)?;
    }

    let polled = poller
        .join()
        .map_err(|_| anyhow::anyhow!("the status poller panicked"))?;
    let (gone, confirmed, new_active) = match polled {
        Ok(v) => v,
        Err(e) => {
            poll_done.store(true, Ordering::Relaxed);
            shared.stop.store(true, Ordering::Relaxed);
            bail!(
                "{e:#}\nnode {watcher} log:\n{}",
                run.cluster.log_tail(watcher - 1, 40)
            );
        }
    };
    // Until the new active has served a request, then AFTER more.
    let served_by = Instant::now() + WAIT;
    let served = loop {
        if let Some(t) = *shared.served.lock().unwrap_or_else(PoisonError::into_inner) {
            break t;
        }
        if let Some(f) = shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            shared.stop.store(true, Ordering::Relaxed);
            bail!("{f}");
        }
        if Instant::now() > served_by {
            shared.stop.store(true, Ordering::Relaxed);
            bail!("no request served after the kill within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    std::thread::sleep(AFTER);
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    if let Some(f) = shared
        .failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    {
        bail!("{f}");
    }
    let listening = shared
        .listening
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .context("served without a connection after the kill")?;
    let acked = shared.acked.load(Ordering::Relaxed);
    let total = get_total(listen)?;
    drop(run);
    Ok(KillResult {
        kind: kind.to_owned(),
        kill: k,
        victim_node: victim as u32,
        killed_at_unix_ns,
        old_active: active,
        new_active,
        membership_ms: gone.map(|t| ms(killed, t)),
        listening_ms: ms(killed, listening),
        confirmed_ms: ms(killed, confirmed),
        served_ms: ms(killed, served),
        exit_peer_ms: peer,
        acked,
        total,
        lost: acked.saturating_sub(total),
        duplicated: total.saturating_sub(acked),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Spread::of(&v);
        assert_eq!((s.p50, s.p90, s.max), (5.0, 9.0, 10.0));
        let s = Spread::of(&[3.0]);
        assert_eq!((s.p50, s.p90, s.max), (3.0, 3.0, 3.0));
        let s = Spread::of(&[]);
        assert_eq!(s.max, 0.0);
    }

    #[test]
    fn status_lines_parse() {
        let st: Vec<String> = [
            "cluster: members [1, 3], quorate",
            "SG counter (2n)",
            "  SU counter-1 on node 1: unlocked, enabled, instantiated",
            "  SI counter: counter-1 active -> none, counter-2 active, waiting for the fence delay",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(members(&st), Some(vec![1, 3]));
        assert_eq!(
            assignments(&st),
            Some(vec![
                ("counter-1".into(), "active".into(), true),
                ("counter-2".into(), "active".into(), false),
            ])
        );
        let none = vec!["  SI counter: unassigned".to_owned()];
        assert_eq!(assignments(&none).map(|a| a.len()), Some(0));
    }

    #[test]
    fn tuned_timers_follow_the_membership_doc() {
        assert_eq!(
            timer_lines(Some(20), None),
            "token = 20\nconsensus = 10\njoin = 4\nmerge = 20\nshort_consensus = true\n"
        );
        assert_eq!(timer_lines(None, None), "");
        assert_eq!(
            timer_lines(Some(20), Some(24)),
            "token = 20\nconsensus = 24\njoin = 4\nmerge = 20\n"
        );
        assert_eq!(timer_lines(None, Some(150)), "consensus = 150\n");
    }
}
