//! `bench shelf-failover`: two redundant shelf managers (`shelfd --amf`) on the project's own
//! cluster; how long after the active dies the standby answers `ipmitool`, and whether every
//! FRU's M-state, activation policy and SEL record survived.
//!
//! Each kill runs on a fresh cluster: three `aisexec` executives on 127.0.0.1 (kernel UDP,
//! secauth on, `[quorum]` expecting three votes, so the two survivors of a node crash stay
//! quorate and the two-node tie-breaker does not decide) with an `[amf]` model of one 2N SG of
//! two SUs, `shelf-1` on node 1 and `shelf-2` on node 2 (ranks drawn per kill, so the active
//! lands on either); node 3 holds no SU, only a vote and a replica of the checkpoint. The
//! component is `shelfd --amf` (this bench's hidden `shelfd` subcommand) on the example
//! shelf `configs/shelf-sim.toml`, component type recovery `su-failover`; the SI's CSI has
//! `listen = "127.0.0.1:PORT"` (the shelf address; both SUs are on this host, so the standby
//! binds the same address once the active is gone, no IP takeover) and `checkpoint`.
//!
//! Before the kill the bench changes the shelf through the active, over RMCP+ as an operator:
//! it deactivates board 1 or 2 (drawn), which gives its power to node-3 (M3 → M4, then M7
//! when its simulated IPMC vanishes), and sets a drawn activation policy on a drawn board.
//! Then it reads the shelf with `ipmitool -I lanplus -C 17`: every board's M-state (`ipmitool
//! raw 0x04 0x2d N`: the shelf manager's hot-swap sensor of board N), the SEL (`sel list`, without the time stamps) and each board's policy (`picmg
//! policy get`). Last, on the same operator session, it sets both policy bits of a drawn
//! board whose bits are clear, and sends the SIGKILL as soon as that change is acknowledged:
//! an acknowledged change must survive even a kill right after its answer. The kill:
//!
//! - `component`: SIGKILL of the active `shelfd` (its executive sees the process exit; the SU
//!   fails over);
//! - `node`: SIGKILL of the active node's executive and, right after, of its `shelfd` (the
//!   survivors see the node leave through Totem's token loss and wait the fence delay).
//!
//! Measured from the instant before the first SIGKILL:
//!
//! - `answering`: a new RMCP+ session (suite 17) and a Get Device ID answered at the shelf
//!   address; the bench tries one every millisecond, each with a 20 ms receive timeout;
//! - `ipmitool`: an `ipmitool -I lanplus mc info` started once `answering` succeeded, until it
//!   exits with success (so `answering` plus one ipmitool run: its process start, its own
//!   session and its commands).
//!
//! A run in which the AMF moved the active on its own before the kill (a node excluded for
//! a moment on a loaded machine) measures nothing: it is reported as disturbed and done again
//! on a fresh cluster (at most three tries per kill).
//!
//! Then `ipmitool` reads the shelf again, and the policy bits are read over RMCP+ (they must
//! hold the last change); any other difference fails the kill (and the bench).
//!
//! With `--netns` (root) the executives run in three network namespaces on a bridge (the
//! `netlab` lab, h1–h3), each SU also has an `ip-address` component (the AMF's IP takeover:
//! a virtual address on `eth0`, added and announced with gratuitous ARP by the active SU's
//! node), `shelfd` listens on that address (port 623), and the bench's console and ipmitool
//! run in h3. A node kill also cuts the node off the bridge (a dead node's address goes with
//! it). After the takeover the bench checks that the new active's node holds the address
//! (and, after a component kill, that the old one no longer does).
//!
//! In the same run, after the kills: RMCP+ sessions per second (Open Session, RAKP 1–4,
//! Close Session) and sealed Get Device ID latency, suite 3, sequentially from one console,
//! against the last `shelfd` active and against OpenIPMI's `ipmi_sim` (the simulated shelf of
//! `hpi/tests/atca-sim`, plain mode) on the same machine.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ais::harness::{self, ProcessCluster};
use ais_client::amf::Amf;
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use shelf_manager::rmcp::console::Console;
use shelf_manager::rmcp::crypto::Suite;

use crate::amf_failover::{Spread, marked, sigkill};
use crate::measure::realtime_ns;

/// Nodes of the cluster.
const NODES: usize = 3;
/// SUs (a pair of shelf managers), on nodes 1 and 2.
const SUS: usize = 2;
/// The SI and the SG.
const SI: &str = "shelf";
/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);
/// The example shelf.
const MODEL: &str = include_str!("../../configs/shelf-sim.toml");
/// The boards of the example shelf, FRU device ids 1..=4.
const BOARDS: [&str; 4] = ["hub-1", "node-2", "node-3", "node-4"];
/// How long the bench waits for an answer of the active (a change waits for its checkpoint
/// write, which waits out a membership change on a loaded machine).
const ANSWER: Duration = Duration::from_secs(10);
/// The operator account of the users file.
const USER: &str = "admin";
const PASSWORD: &str = "bench-secret";

/// Arguments of `bench shelf-failover`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  bench shelf-failover                        10 kills of each kind, then the RMCP+ figures
  bench shelf-failover --kind component --kills 3 --peer-requests 0

Runs on 127.0.0.1 (with --netns in network namespaces: root); needs ipmitool and, for the
peer figures, ipmi_sim (Debian openipmi).")]
pub struct Args {
    /// Kills of each kind (each on a fresh cluster, a few seconds each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub kills: u32,
    /// Kinds of failure, comma-separated: component, node.
    #[arg(long, default_value = "component,node", value_delimiter = ',',
          value_parser = ["component", "node"])]
    pub kind: Vec<String>,
    /// Sessions and requests for the RMCP+ figures against shelfd and ipmi_sim (0: skip).
    #[arg(long, default_value_t = 1000)]
    pub peer_requests: u32,
    /// Seed of the changes, the ranks (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A deliberate defect of shelfd (its hidden `--defect`), to show the check catches
    /// it: `fresh-state` (a new active starts a fresh shelf instead of reading the
    /// checkpoint) or `lagging-write` (a change is answered before it is in the checkpoint).
    #[arg(long, default_value = "none", value_parser = ["none", "fresh-state", "lagging-write"])]
    pub shelfd_defect: String,
    /// Executives: 3 (a third holds a vote and a replica of the checkpoint, no shelfd) or 2
    /// (`[quorum] two_node`). With two, a node kill always kills node 2: alone, only the
    /// lower node id may serve (the AMF's two-node tie-breaker), so losing node 1 leaves no
    /// shelf manager. Not with --netns.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=3))]
    pub nodes: u32,
    /// Run the executives in network namespaces on a bridge (h1, h2, h3; needs root) and
    /// move the shelf address with the AMF's IP takeover: each SU also has an `ip-address`
    /// component holding a virtual address on `eth0`, which `shelfd` listens on. The bench's
    /// console and ipmitool run in h3. (The RMCP+ figures are then taken against ipmi_sim
    /// only.)
    #[arg(long)]
    pub netns: bool,
    /// Keep each cluster's directory (configurations, model, logs) under the temp dir.
    #[arg(long)]
    pub keep: bool,
    /// One JSON object per kill and per summary instead of text.
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
    /// The node whose shelfd (or executive) was killed.
    pub victim_node: u32,
    /// When the kill was sent, ns since the Unix epoch (the clock of the logs).
    pub killed_at_unix_ns: u64,
    /// The M-states before the kill, by board (what `ipmitool raw 0x04 0x2d N` showed).
    pub states_before: Vec<u8>,
    /// The M-states the new active showed.
    pub states_after: Vec<u8>,
    /// SEL records before the kill.
    pub sel_records: usize,
    /// Whether the M-states, the policies and the SEL (without time stamps) are the same.
    pub intact: bool,
    /// A new session and Get Device ID answered at the shelf address.
    pub answering_ms: f64,
    /// `ipmitool mc info` started once answering, until it succeeded.
    pub ipmitool_ms: f64,
    /// With `--netns`: the virtual address is on the new active's node (and, after a
    /// component kill, no longer on the old one's).
    pub address_moved: Option<bool>,
}

/// RMCP+ figures of one server.
#[derive(Debug, Clone, Serialize)]
pub struct RmcpFigures {
    /// `shelfd` or `ipmi_sim`.
    pub server: String,
    /// Sessions opened and closed per second.
    pub sessions_per_sec: f64,
    /// Session setup latency, µs: p50, p99, max.
    pub session_us: [u64; 3],
    /// Sealed Get Device ID per second.
    pub requests_per_sec: f64,
    /// Its latency, µs: p50, p99, max.
    pub request_us: [u64; 3],
}

/// The summary of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `"shelf-failover"`.
    pub bench: &'static str,
    /// `component` or `node`.
    pub kind: String,
    /// Kills measured.
    pub kills: usize,
    /// Kills whose shelf was not intact.
    pub not_intact: usize,
    /// Kill to the new active answering.
    pub answering: Spread,
    /// Kill to the first ipmitool success.
    pub ipmitool: Spread,
    /// The target (ipmitool answered within 1 s) met at the maximum.
    pub target_met: bool,
    /// Seed of the run.
    pub seed: u64,
}

/// Runs `bench shelf-failover`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        !(args.netns && args.nodes != 3),
        "--netns runs three executives (--nodes 3)"
    );
    let seed = args.seed.unwrap_or_else(|| realtime_ns() % 1_000_000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let program = std::env::current_exe().context("locating the bench executable")?;
    let work = std::env::temp_dir().join(format!("oais-shelf-failover-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    if !args.json {
        println!(
            "shelf-failover: {} executives {}, 2 shelfd (2N, on nodes 1 and 2), configs/shelf-sim.toml; seed {seed}",
            args.nodes,
            if args.netns {
                "in network namespaces h1-h3, the shelf address moved by the AMF's ip-address component"
            } else {
                "on 127.0.0.1"
            }
        );
    }
    let mut failed = Vec::new();
    let mut last_shelf: Option<(Run, SocketAddr)> = None;
    for kind in &args.kind {
        let mut results = Vec::new();
        for k in 1..=args.kills {
            let dir = work.join(format!("{kind}-{k}"));
            last_shelf = None;
            let mut attempt = 1;
            let kill = loop {
                // Each kill on a thread of its own: with --netns it enters a lab host.
                let kill = std::thread::scope(|scope| {
                    scope
                        .spawn(|| one_kill(args, kind, k, &mut rng, &program, &dir))
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("the kill's thread panicked")))
                });
                match kill {
                    Err(e) if e.downcast_ref::<Disturbed>().is_some() && attempt < 3 => {
                        if args.json {
                            let v = serde_json::json!({"kind": kind, "retried_kill": k, "disturbed": e.to_string()});
                            println!("{v}");
                        } else {
                            println!("  #{k} {kind} kill: {e}; done again on a fresh cluster");
                        }
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            match kill {
                Ok((r, run, addr)) => {
                    if args.json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else {
                        println!("  {}", line(&r));
                    }
                    if !r.intact {
                        failed.push(format!("{kind} kill {k}: the shelf was not intact"));
                    }
                    if r.address_moved == Some(false) {
                        failed.push(format!("{kind} kill {k}: the address did not move"));
                    }
                    last_shelf = Some((run, addr));
                    results.push(r);
                }
                Err(e) => {
                    let e = format!("{e:#} (files in {})", dir.display());
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({"kind": kind, "kill": k, "error": e})
                        );
                    } else {
                        println!("  #{k} {kind} kill FAILED: {e}");
                    }
                    failed.push(format!(
                        "{kind} kill {k}: {}",
                        e.lines().next().unwrap_or("")
                    ));
                }
            }
        }
        if results.is_empty() {
            continue;
        }
        let col = |f: fn(&KillResult) -> f64| results.iter().map(f).collect::<Vec<f64>>();
        let ipmitool = Spread::of(&col(|r| r.ipmitool_ms));
        let s = Summary {
            bench: "shelf-failover",
            kind: kind.clone(),
            kills: results.len(),
            not_intact: results.iter().filter(|r| !r.intact).count(),
            answering: Spread::of(&col(|r| r.answering_ms)),
            ipmitool,
            target_met: ipmitool.max <= 1000.0,
            seed,
        };
        if args.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            print!("{}", summary_text(&s));
        }
    }
    if args.peer_requests > 0 {
        if let Some((_, addr)) = &last_shelf
            && !args.netns
        {
            let ours = rmcp_figures("shelfd", *addr, USER, PASSWORD, args.peer_requests)?;
            print_figures(&ours, args.json)?;
        }
        last_shelf = None;
        let sim = IpmiSim::start(&work)?;
        let theirs = rmcp_figures("ipmi_sim", sim.addr, "admin", "admin", args.peer_requests);
        drop(sim);
        print_figures(&theirs?, args.json)?;
    }
    drop(last_shelf);
    // The files stay when a kill failed (its error names them) or with --keep.
    if !args.keep && failed.is_empty() {
        let _ = fs::remove_dir_all(&work);
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

fn print_figures(f: &RmcpFigures, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(f)?);
    } else {
        println!(
            "rmcp+ {:<8} suite 3: {:>6.0} sessions/s (setup p50 {} p99 {} max {} us), {:>6.0} Get Device ID/s (p50 {} p99 {} max {} us)",
            f.server,
            f.sessions_per_sec,
            f.session_us[0],
            f.session_us[1],
            f.session_us[2],
            f.requests_per_sec,
            f.request_us[0],
            f.request_us[1],
            f.request_us[2]
        );
    }
    Ok(())
}

fn line(r: &KillResult) -> String {
    format!(
        "#{} {} kill on node {}: answering {:.1} ms, ipmitool {:.1} ms; M-states {:?} -> {:?}, {} SEL records, {}{}",
        r.kill,
        r.kind,
        r.victim_node,
        r.answering_ms,
        r.ipmitool_ms,
        r.states_before,
        r.states_after,
        r.sel_records,
        if r.intact { "intact" } else { "NOT INTACT" },
        match r.address_moved {
            None => "",
            Some(true) => "; address moved",
            Some(false) => "; address NOT moved",
        }
    )
}

fn summary_text(s: &Summary) -> String {
    let mut t = format!(
        "shelf-failover {} ({} kills), ms from the kill:                p50      p90      max\n",
        s.kind, s.kills
    );
    for (name, sp) in [
        ("answering: new session + Get Device ID", &s.answering),
        ("ipmitool: mc info succeeded", &s.ipmitool),
    ] {
        let _ = writeln!(
            t,
            "  {name:<54} {:>8.1} {:>8.1} {:>8.1}",
            sp.p50, sp.p90, sp.max
        );
    }
    let _ = writeln!(
        t,
        "  shelf intact after the takeover: {} of {}",
        s.kills - s.not_intact,
        s.kills
    );
    let _ = writeln!(
        t,
        "  target (issue 20): ipmitool answered within 1 s of the kill: {}",
        if s.target_met { "met" } else { "NOT met" }
    );
    t
}

/// The AMF model: three nodes, one 2N SG with an SU on nodes 1 and 2 whose component runs
/// `PROGRAM shelfd SHELFD_ARGS`.
fn model(
    program: &Path,
    shelfd_args: &str,
    sockets: &[PathBuf],
    dirs: &[PathBuf],
    ranks: &[u32],
    listen: SocketAddr,
    vip: Option<&str>,
) -> String {
    let mut sh = String::from("case \"$SA_AMF_COMPONENT_NAME\" in ");
    for (i, (s, d)) in sockets.iter().zip(dirs).enumerate().take(SUS) {
        let _ = write!(
            sh,
            "*safSu=shelf-{},*) OPENAIS_IPC_SOCKET='{}'; {}='{}';; ",
            i + 1,
            s.display(),
            crate::amf_failover::MARK,
            d.display()
        );
    }
    let _ = write!(
        sh,
        "esac; export OPENAIS_IPC_SOCKET {}; exec '{}' shelfd {shelfd_args}",
        crate::amf_failover::MARK,
        program.display(),
    );
    let mut m = String::from("[node]\n");
    for i in 1..=sockets.len() {
        let _ = writeln!(m, "n{i} = {{ nodeid = {i} }}");
    }
    let _ = write!(
        m,
        "\n[comp_type.shelfd]\ninstantiate = {sh:?}\nrecovery = \"su-failover\"\n\n"
    );
    if vip.is_some() {
        m += "[comp_type.vip]\nbuiltin = \"ip-address\"\n\n";
    }
    let _ = write!(
        m,
        "[sg.{SI}]\nredundancy = \"2n\"\ncomponents = [\"shelfd\"{}]\n",
        if vip.is_some() { ", \"vip\"" } else { "" }
    );
    for (i, r) in ranks.iter().enumerate() {
        let _ = writeln!(
            m,
            "su.shelf-{} = {{ node = \"n{}\", rank = {r} }}",
            i + 1,
            i + 1
        );
    }
    let _ = write!(
        m,
        "\n[si.{SI}]\nsg = \"{SI}\"\ncsi.state = {{ comp_type = \"shelfd\", attributes = {{ listen = \"{listen}\", checkpoint = \"shelf-state\" }} }}\n"
    );
    if let Some(vip) = vip {
        let _ = writeln!(
            m,
            "csi.address = {{ comp_type = \"vip\", attributes = {{ address = \"{vip}\", interface = \"eth0\" }} }}"
        );
    }
    m
}

/// A run the cluster disturbed before the bench's kill (the active moved on its own).
#[derive(Debug)]
struct Disturbed(String);

impl std::fmt::Display for Disturbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "disturbed: {}", self.0)
    }
}

impl std::error::Error for Disturbed {}

/// The cluster, and on drop every executive and shelfd of it killed.
pub struct Run {
    cluster: ProcessCluster,
    root: PathBuf,
    /// With `--netns`: the lab, deleted after the processes (fields drop after `drop`).
    lab: Option<netlab::Lab>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for i in 0..self.cluster.len() {
            let _ = self.cluster.kill(i);
        }
        sigkill(&marked(&self.root, None));
    }
}

/// An RMCP+ console on its own UDP socket.
struct Udp {
    sock: UdpSocket,
    c: Console,
}

impl Udp {
    fn exchange(&self, pkt: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.sock.send(pkt)?;
        let mut buf = [0u8; 2048];
        let n = self.sock.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    }

    /// Logs in as `user` at privilege `role` with `suite`.
    fn login(
        addr: SocketAddr,
        suite: Suite,
        user: &str,
        password: &str,
        role: u8,
        timeout: Duration,
    ) -> anyhow::Result<Udp> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_read_timeout(Some(timeout))?;
        sock.connect(addr)?;
        let mut c = Console::new(suite, 0x5151, user, password, role);
        let u = Udp { sock, c: c.clone() };
        let open = u.exchange(&c.open_session())?;
        let r2 = u.exchange(&c.rakp1(&open).map_err(|e| anyhow::anyhow!("{e}"))?)?;
        let r4 = u.exchange(&c.rakp3(&r2).map_err(|e| anyhow::anyhow!("{e}"))?)?;
        c.finish(&r4).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Udp { c, ..u })
    }

    fn cmd(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> anyhow::Result<(u8, Vec<u8>)> {
        let pkt = self.c.request(netfn, cmd, data);
        let reply = self.exchange(&pkt)?;
        self.c.response(&reply).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Close Session (App 0x3C) of its own session.
    fn close(mut self) -> anyhow::Result<()> {
        let id = self.c.server_id;
        let (cc, _) = self.cmd(0x06, 0x3C, &id.to_le_bytes())?;
        anyhow::ensure!(cc == 0, "Close Session: completion code {cc:#04x}");
        Ok(())
    }
}

/// `ipmitool -I lanplus -C 17` as the bench's operator against `addr`: its output, or why not.
fn ipmitool(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ipmitool")
        .args(["-I", "lanplus", "-H"])
        .arg(addr.ip().to_string())
        .arg("-p")
        .arg(addr.port().to_string())
        .args(["-U", USER, "-P", PASSWORD, "-C", "17", "-R", "1", "-N", "1"])
        .args(args)
        .output()
        .context("running ipmitool (Debian package ipmitool)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "ipmitool {args:?}: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// What ipmitool shows of the shelf: M-state per board (`raw 0x04 0x2d N`), the SEL lines
/// without their time stamps, each board's `picmg policy get`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    states: Vec<u8>,
    sel: Vec<String>,
    policies: Vec<String>,
}

fn seen(addr: SocketAddr) -> anyhow::Result<Seen> {
    // A read is tried again (three times in all): on a loaded machine one ipmitool run may
    // miss its 1 s timeout twice. The shelf does not change between the tries.
    let ipmitool = |addr: SocketAddr, args: &[&str]| {
        let mut tries = 0;
        loop {
            tries += 1;
            match ipmitool(addr, args) {
                Err(_) if tries < 3 => std::thread::sleep(Duration::from_millis(100)),
                other => return other,
            }
        }
    };
    // Each board's hot-swap state, as the shelf manager reports it (Get Sensor Reading of
    // sensor N for board N: `sensor list` reads the boards' own sensors through their IPMCs,
    // which a board whose IPMC stopped answering does not show).
    let mut states = Vec::new();
    for (i, b) in BOARDS.iter().enumerate() {
        let n = (i + 1).to_string();
        let out = ipmitool(addr, &["raw", "0x04", "0x2d", &n])?;
        let bytes: Vec<u8> = out
            .split_whitespace()
            .map(|t| u8::from_str_radix(t, 16))
            .collect::<Result<_, _>>()
            .with_context(|| format!("hot-swap sensor of {b}: {out:?}"))?;
        let bits = bytes.get(2).copied().unwrap_or(0);
        anyhow::ensure!(bits.count_ones() == 1, "hot-swap sensor of {b}: {out:?}");
        states.push(bits.trailing_zeros() as u8);
    }
    let sel = ipmitool(addr, &["sel", "list"])?
        .lines()
        .map(|l| {
            // "   1 | 12/04/2026 | 07:01:02 | FRU Hot Swap #0x01 | Transition to M1 | Asserted"
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            if f.len() > 3 {
                format!("{} | {}", f[0], f[3..].join(" | "))
            } else {
                l.to_owned()
            }
        })
        .collect();
    let mut policies = Vec::new();
    for id in 1..=BOARDS.len() {
        let p = ipmitool(addr, &["picmg", "policy", "get", &id.to_string()])?;
        policies.push(p.trim().to_owned());
    }
    Ok(Seen {
        states,
        sel,
        policies,
    })
}

/// Each board's activation policy bits (Get FRU Activation Policy).
fn policy_bits(u: &mut Udp) -> anyhow::Result<Vec<u8>> {
    let mut bits = Vec::new();
    for id in 1..=BOARDS.len() {
        let (cc, data) = u.cmd(0x2C, 0x0B, &[0x00, u8::try_from(id)?])?;
        anyhow::ensure!(
            cc == 0 && data.len() >= 2,
            "Get FRU Activation Policy {id}: {cc:#04x} {data:02x?}"
        );
        bits.push(data[1] & 0x03);
    }
    Ok(bits)
}

/// Waits until a new session at `addr` gets Get Device ID answered.
fn wait_answering(addr: SocketAddr, deadline: Instant) -> anyhow::Result<Instant> {
    loop {
        let tried = Udp::login(
            addr,
            Suite::Sha256,
            USER,
            PASSWORD,
            2,
            Duration::from_millis(20),
        )
        .and_then(|mut u| u.cmd(0x06, 0x01, &[]));
        if let Ok((0, _)) = tried {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("nothing answered at {addr} within {WAIT:?} ({tried:?})");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
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
) -> anyhow::Result<(KillResult, Run, SocketAddr)> {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let shelf_model = dir.join("shelf.toml");
    fs::write(&shelf_model, MODEL)?;
    let users = dir.join("users.toml");
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\nprivilege = \"administrator\"\n"
        ),
    )?;
    fs::set_permissions(&users, fs::Permissions::from_mode(0o600))?;
    let nodes = args.nodes as usize;
    let ranks: Vec<u32> = if (nodes == 2 && kind == "node") || rng.random() {
        vec![1, 0]
    } else {
        vec![0, 1]
    };
    let lab = if args.netns {
        Some(netlab::Lab::new(NODES, 1500).context("the network-namespace lab")?)
    } else {
        None
    };
    let (listen, vip) = match &lab {
        Some(lab) => {
            let [a, b, c, _] = lab.network().octets();
            let vip = std::net::Ipv4Addr::new(a, b, c, 101);
            (SocketAddr::from((vip, 623)), Some(vip))
        }
        None => (
            SocketAddr::from((
                [127, 0, 0, 1],
                UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port(),
            )),
            None,
        ),
    };
    let ports = harness::free_ports(nodes)?;
    let mut builder = ProcessCluster::builder(dir, nodes, program)
        .arg("aisexec")
        .key();
    if let Some(lab) = &lab {
        builder = builder.netns((1..=NODES).map(|i| lab.netns(i).to_owned()).collect());
    }
    let key = builder.key_path();
    let model_path = dir.join("amf.toml");
    let totem = harness::key_lines(&key);
    let amf = format!(
        "\n[quorum]\nexpected_votes = {nodes}\n{}\n[amf]\nmodel = {:?}\n",
        if nodes == 2 { "two_node = true\n" } else { "" },
        model_path.display().to_string()
    );
    let cluster = builder.create(|node| {
        let config = match &lab {
            Some(lab) => lab_config(node, lab, &totem),
            None => harness::loopback_config(node, &ports, &totem),
        };
        config + &amf
    })?;
    let sockets: Vec<PathBuf> = cluster.nodes().iter().map(|n| n.socket.clone()).collect();
    let dirs: Vec<PathBuf> = cluster.nodes().iter().map(|n| n.dir.clone()).collect();
    fs::write(
        &model_path,
        model(
            program,
            &format!(
                "'{}' --users '{}' --amf --defect {}",
                shelf_model.display(),
                users.display(),
                args.shelfd_defect
            ),
            &sockets,
            &dirs,
            &ranks,
            listen,
            vip.map(|v| format!("{v}/24")).as_deref(),
        ),
    )?;
    let mut run = Run {
        cluster,
        root: dir.to_owned(),
        lab,
    };
    if let Some(lab) = &run.lab {
        // This thread (the kill's own) becomes a process of h3: the console's sockets and
        // the ipmitool processes reach the shelf address from there.
        enter(lab.netns(3))?;
    }
    run.cluster.keep(true);
    run.cluster.spawn_all()?;
    let deadline = Instant::now() + WAIT;
    let all: Vec<u32> = (1..=nodes as u32).collect();
    for i in 0..nodes {
        run.cluster.wait_ring(i, &all, deadline)?;
    }
    // One active and one standby, confirmed (`want`: that SU active).
    let pair = |want: Option<&str>| -> anyhow::Result<(String, String)> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(st) = status_of(&sockets[nodes - 1])
                && let Some(a) = crate::amf_failover::si_assignments(&st, SI)
            {
                let confirmed = |h: &str| {
                    a.iter()
                        .find(|(_, held, changing)| held == h && !changing)
                        .map(|(su, _, _)| su.clone())
                };
                if a.len() == 2
                    && let (Some(x), Some(y)) = (confirmed("active"), confirmed("standby"))
                    && want.is_none_or(|w| w == x)
                {
                    return Ok((x, y));
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "no confirmed active{} and standby within {WAIT:?}; status:\n{}\nnode 1 log:\n{}",
                    want.map_or_else(String::new, |w| format!(" {w}")),
                    status_of(&sockets[nodes - 1]).map_or_else(|e| e.to_string(), |s| s.join("\n")),
                    run.cluster.log_tail(0, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // A cluster that does not get its pair going measures nothing either (seen once in
    // about twenty two-node starts under load: an executive found itself frozen during the
    // first sync and its AMF never instantiated its SU): done again on a fresh cluster.
    let (mut active, _) = pair(None).map_err(|e| {
        let first = format!("{e:#}");
        anyhow::Error::new(Disturbed(format!(
            "at start: {}",
            first.lines().next().unwrap_or("")
        )))
    })?;
    if nodes == 2 && kind == "node" && active != "shelf-2" {
        // Two nodes: only node 1 may serve alone, so the node to crash is node 2.
        Amf::initialize(&sockets[1])?
            .admin(ais_client::amf::AdminOp::Switchover, SI)
            .context("switching the SI over to node 2")?;
        active = pair(Some("shelf-2"))?.0;
    }
    // Still the same active? On a loaded machine a node may miss its token and be excluded
    // for a moment, and the AMF then fails its SUs over before the bench's kill: that run
    // measures nothing and is done again on a fresh cluster.
    let still_active = || -> anyhow::Result<()> {
        let now = status_of(&sockets[nodes - 1])
            .ok()
            .and_then(|st| crate::amf_failover::si_assignments(&st, SI))
            .and_then(|a| {
                a.into_iter()
                    .find(|(_, held, changing)| held == "active" && !changing)
                    .map(|(su, _, _)| su)
            });
        if now.as_deref() == Some(active.as_str()) {
            Ok(())
        } else {
            Err(anyhow::Error::new(Disturbed(format!(
                "{active} was active, now {now:?}, before the kill"
            ))))
        }
    };
    let victim = active
        .strip_prefix("shelf-")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=SUS).contains(n))
        .with_context(|| format!("unexpected SU name {active:?}"))?;
    // Before the kill: any failure while the active moved on its own is a disturbance.
    let prekill = (|| -> anyhow::Result<(Seen, Udp, Vec<u8>, usize, u8)> {
        wait_answering(listen, Instant::now() + WAIT).with_context(|| {
            format!(
                "the active shelfd; node {victim} log:\n{}",
                run.cluster.log_tail(victim - 1, 40)
            )
        })?;

        // Change the shelf through the active, as an operator.
        let mut op = Udp::login(listen, Suite::Sha256, USER, PASSWORD, 3, ANSWER)
            .context("the operator's session with the active")?;
        let (cc, _) = op
            .cmd(0x06, 0x3B, &[3])
            .context("Set Session Privilege Level")?;
        anyhow::ensure!(cc == 0, "Set Session Privilege Level: {cc:#04x}");
        let board: u8 = rng.random_range(1..=2);
        let (cc, _) = op
            .cmd(0x2C, 0x0C, &[0x00, board, 0x00])
            .context("Set FRU Activation")?;
        anyhow::ensure!(cc == 0, "deactivate board {board}: {cc:#04x}");
        let pboard: u8 = rng.random_range(1..=4);
        let bits: u8 = rng.random_range(1..=3);
        let (cc, _) = op
            .cmd(0x2C, 0x0A, &[0x00, pboard, 0x03, bits])
            .context("Set FRU Activation Policy")?;
        // A FRU in M0/M7 refuses a policy: fine, the shelf still changed above.
        anyhow::ensure!(cc == 0 || cc == 0xD5, "set policy of {pboard}: {cc:#04x}");
        let before = seen(listen)?;
        still_active()?;
        anyhow::ensure!(
            before.states[usize::from(board) - 1] == 1,
            "board {board} not in M1 after its deactivation: {:?}",
            before.states
        );
        // The last change, acknowledged just before the kill: both policy bits set on a board
        // whose bits are clear, in M1…M6 (no state change follows: setting bits only holds a
        // FRU where it is). It must be in the checkpoint when its answer comes.
        let bits_before = policy_bits(&mut op).context("the policies before the kill")?;
        let candidates: Vec<usize> = (1..=BOARDS.len())
            .filter(|&i| bits_before[i - 1] == 0 && (1..=6).contains(&before.states[i - 1]))
            .collect();
        anyhow::ensure!(!candidates.is_empty(), "no board for the last change");
        let last = candidates[rng.random_range(0..candidates.len())];
        let last_id = u8::try_from(last)?;
        Ok((before, op, bits_before, last, last_id))
    })();
    let (before, mut op, mut bits_before, last, last_id) = match prekill {
        Ok(v) => v,
        Err(e) => return Err(still_active().err().unwrap_or(e)),
    };
    still_active()?;
    let comps = marked(dir, Some(&dirs[victim - 1]));
    anyhow::ensure!(
        !comps.is_empty(),
        "no shelfd process found on node {victim}"
    );
    let exec_pid = run
        .cluster
        .node(victim - 1)
        .pid()
        .context("victim running")?;
    let last_change = op.cmd(0x2C, 0x0A, &[0x00, last_id, 0x03, 0x03]);
    let killed = Instant::now();
    let killed_at_unix_ns = realtime_ns();
    if kind == "node" {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(exec_pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    }
    sigkill(&comps);
    if kind == "node" {
        run.cluster.kill(victim - 1)?;
        if let Some(lab) = &run.lab {
            // A dead node is off the network: its address goes with it.
            lab.cut(victim)?;
        }
    }
    let (cc, _) = last_change.context("the last change (Set FRU Activation Policy)")?;
    anyhow::ensure!(cc == 0, "set policy of {last}: {cc:#04x}");
    drop(op);
    bits_before[last - 1] = 0x03;
    let answering = wait_answering(listen, killed + WAIT).with_context(|| {
        let other = if victim == 1 { 2 } else { 1 };
        format!(
            "after the kill; node {other} log:\n{}",
            run.cluster.log_tail(other - 1, 40)
        )
    })?;
    let ipmitool_done = loop {
        match ipmitool(listen, &["mc", "info"]) {
            Ok(_) => break Instant::now(),
            Err(e) if Instant::now() > killed + WAIT => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let after = seen(listen)?;
    let mut reader = Udp::login(listen, Suite::Sha256, USER, PASSWORD, 2, ANSWER)
        .context("a session with the new active")?;
    let bits_after = policy_bits(&mut reader).context("the policies after the kill")?;
    // ipmitool's policy text of the board changed last is not the one read before.
    let unchanged = |s: &Seen| {
        let mut s = s.clone();
        s.policies.remove(last - 1);
        s
    };
    let intact = unchanged(&before) == unchanged(&after) && bits_after == bits_before;
    let address_moved = match (&run.lab, vip) {
        (Some(lab), Some(vip)) => {
            let new = 3 - victim;
            let holds = |host: usize| {
                Command::new("ip")
                    .args([
                        "-n",
                        lab.netns(host),
                        "-o",
                        "address",
                        "show",
                        "dev",
                        "eth0",
                    ])
                    .output()
                    .is_ok_and(|o| {
                        String::from_utf8_lossy(&o.stdout).contains(&format!("inet {vip}/"))
                    })
            };
            // A crashed node keeps the address on its cut-off interface; a node whose
            // component failed has its SU cleaned up, the address removed.
            Some(holds(new) && (kind == "node" || !holds(victim)))
        }
        _ => None,
    };
    if bits_after != bits_before {
        eprintln!("policy bits: expected {bits_before:?}, the new active has {bits_after:?}");
    }
    let result = KillResult {
        kind: kind.to_owned(),
        kill: k,
        victim_node: victim as u32,
        killed_at_unix_ns,
        states_before: before.states.clone(),
        states_after: after.states.clone(),
        sel_records: before.sel.len(),
        intact,
        answering_ms: ms(killed, answering),
        ipmitool_ms: ms(killed, ipmitool_done),
        address_moved,
    };
    if !result.intact {
        eprintln!("before the kill: {before:#?}\nafter: {after:#?}");
    }
    Ok((result, run, listen))
}

/// The configuration of `node` in lab host `node.id`: kernel UDP unicast between the hosts'
/// `eth0` addresses.
fn lab_config(node: &harness::Node, lab: &netlab::Lab, totem: &str) -> String {
    let mut t = format!(
        "[totem]\nnodeid = {}\ntransport = \"udpu\"\n{totem}\n[totem.interface]\nmcastport = 5405\n\n",
        node.id
    );
    for i in 1..=NODES {
        let _ = write!(
            t,
            "[[nodelist.node]]\nnodeid = {i}\nring0_addr = \"{}\"\nport = 5405\n\n",
            lab.addr(i)
        );
    }
    t + &harness::aisexec_section(node)
}

/// Moves the calling thread into the network namespace `name` (`ip netns` names).
fn enter(name: &str) -> anyhow::Result<()> {
    let ns = fs::File::open(Path::new("/run/netns").join(name))
        .with_context(|| format!("opening network namespace {name}"))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering network namespace {name}"))?;
    Ok(())
}

/// Sessions per second and Get Device ID latency against `addr`, suite 3, one console.
fn rmcp_figures(
    server: &str,
    addr: SocketAddr,
    user: &str,
    password: &str,
    n: u32,
) -> anyhow::Result<RmcpFigures> {
    let timeout = Duration::from_secs(2);
    let mut sessions = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let u = Udp::login(addr, Suite::Sha1, user, password, 2, timeout)
            .with_context(|| format!("a session with {server}"))?;
        sessions.record(t.elapsed().as_micros() as u64)?;
        u.close()
            .with_context(|| format!("closing a session with {server}"))?;
    }
    let sessions_per_sec = f64::from(n) / start.elapsed().as_secs_f64();
    let mut u = Udp::login(addr, Suite::Sha1, user, password, 2, timeout)?;
    let mut requests = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let (cc, _) = u.cmd(0x06, 0x01, &[])?;
        anyhow::ensure!(cc == 0, "{server}: Get Device ID {cc:#04x}");
        requests.record(t.elapsed().as_micros() as u64)?;
    }
    let requests_per_sec = f64::from(n) / start.elapsed().as_secs_f64();
    let _ = u.close();
    let p = |h: &Histogram<u64>| [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()];
    Ok(RmcpFigures {
        server: server.to_owned(),
        sessions_per_sec,
        session_us: p(&sessions),
        requests_per_sec,
        request_us: p(&requests),
    })
}

/// OpenIPMI's `ipmi_sim` playing the simulated shelf (`hpi/tests/atca-sim/sim-shelf.sh`,
/// plain mode), stopped on drop.
struct IpmiSim {
    addr: SocketAddr,
    script: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl IpmiSim {
    fn start(work: &Path) -> anyhow::Result<IpmiSim> {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hpi/tests/atca-sim/sim-shelf.sh");
        anyhow::ensure!(script.exists(), "{} is missing", script.display());
        // SIM_PORT and SIM_PORT + 1 (its console) must both be free.
        let port = loop {
            let p = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
            if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let sim = IpmiSim {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            script,
            dir: work.join(format!("ipmi-sim-{port}")),
            port,
        };
        let out = sim
            .command("start")
            .output()
            .context("running sim-shelf.sh")?;
        anyhow::ensure!(
            out.status.success(),
            "sim-shelf.sh start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(sim)
    }

    fn command(&self, what: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(&self.script)
            .arg(what)
            .env("SIM_PORT", self.port.to_string())
            .env("SIM_DIR", &self.dir)
            .env("SIM_EXT", "0")
            .env("SIM_LIFETIME", "600");
        c
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
    }
}
