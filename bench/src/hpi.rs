//! `bench hpi`: how long a hot-swap event of an ATCA shelf takes to reach every node's
//! executive, beside OpenHPI's `openhpid` watching the same shelf in the same run.
//!
//! The shelf is the simulated one (`hpi/tests/atca-sim/sim-shelf.sh`: OpenIPMI's `ipmi_sim`
//! in ATCA mode with its `atca_ext` module, on free ports of 127.0.0.1). Watching it:
//!
//! - `--nodes` `aisexec` executives on 127.0.0.1 (kernel UDP, secauth on), each with `[hpi]`
//!   (the same shelf, `sel_poll_ms` from `--sel-poll-ms`): each node's HPI thread polls the
//!   shelf manager's SEL and hands what it reads to its executive, the shelf service puts it
//!   on the ring and every node accepts each event once (docs/hpi.md);
//! - `openhpid` with the ipmidirect plugin (IPMI 1.5 LAN, auto-insert blocked so it never
//!   commands the blade), followed by `hpievents -t BLOCK` (line-buffered with `stdbuf`).
//!
//! The bench follows each executive as an application would (`Request::Follow` on the shelf
//! service: one callback per accepted event) and drives Blade3 (IPMB 0x86) M1 → M2 → M1 →
//! ... over the simulator's console (`atca_hs 0x86 M`, the command `sim-shelf.sh hs` sends):
//! every transition is one HPI event (INACTIVE ↔ INSERTION_PENDING). Before each transition
//! it waits a random 0..`sel_poll_ms` (seeded), so transitions fall at every phase of the
//! poll. ipmidirect sends Set FRU Activation for every M2 event it reads (even with
//! `OPENHPI_AUTOINSERT_TIMEOUT = "-1"`), so when its batch comes while the blade is in M2 the
//! blade goes on to M4: the bench reads the blade's state (`atca_show`) before each
//! transition, drives it to M1 from wherever it is unless it is in M1, and counts those
//! transitions (`commanded_by_others`). A transition's event is the first one to its new
//! state in a later SEL record.
//!
//! Time zero of a transition is the instant before the console command is written; the
//! simulator writes the SEL entry while it handles the command, before its prompt comes back
//! (the console round trip is reported too: the SEL entry was written within it). Measured
//! on this process's monotonic clock: the callback of the accepted event read at each
//! executive's follower (`every node`: the slowest node of the transition; `first node`: the
//! fastest), and the `hpievents` line of the same HPI transition. Transitions are driven one
//! after another: the next starts when every executive has delivered the last one (or after
//! 10 s, counted as missed); openhpid is not waited for (it reads the SEL in batches), its
//! events are matched in order after the last transition.
//!
//! The shelf manager's cost: each executive's HPI thread logs, when it stops, its Get SEL
//! Info and Get SEL Entry requests over its life (the executives are stopped with SIGTERM at
//! the end); openhpid's is counted from ipmidirect's protocol log (`>cmd` lines) over the
//! measured window, with its Get SEL Info period.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use ais::harness::{self, ProcessCluster};
use ais_client::Connection;
use ais_proto::ipc::Reply;
use ais_proto::shelf::{Callback, Request, ShelfEventKind, ShelfProtocol};
use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::measure::realtime_ns;

/// The simulated shelf's script in this checkout.
const SIM_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../hpi/tests/atca-sim/sim-shelf.sh"
);
/// The blade driven: Blade3, site 3, M1 at the simulator's start.
const BLADE: u8 = 0x86;
/// Bound on each wait (start, discovery, one transition at every node).
const WAIT: Duration = Duration::from_secs(60);
/// How long a transition may take to reach every executive before it counts as missed.
const MISSED: Duration = Duration::from_secs(10);
/// How long openhpid is waited for after the last transition (two of its SEL periods).
const OPENHPID_TAIL: Duration = Duration::from_secs(12);
/// HPI hot-swap state codes (`ais_proto::shelf`): INACTIVE, INSERTION_PENDING.
const INACTIVE: u8 = 0;
const INSERTION_PENDING: u8 = 1;

/// Arguments of `bench hpi`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  bench hpi                                  3 executives (SEL poll 50 ms) and openhpid, 100 transitions
  bench hpi --sel-poll-ms 50,100,200         one run per SEL poll interval
  bench hpi --transitions 10 --no-openhpid   quick, executives only

Runs on 127.0.0.1; needs ipmi_sim (openipmi), gcc and libopenipmi-dev (the simulator's
module), and for the comparison openhpid, openhpi-plugin-ipmidirect and openhpi-clients.")]
pub struct Args {
    /// Executives watching the shelf.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub nodes: u32,
    /// Hot-swap transitions of the blade (M1 -> M2 -> M1 ...), each one HPI event.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub transitions: u32,
    /// `[hpi] sel_poll_ms` of the executives; several (comma-separated) give one run each.
    #[arg(long, default_value = "50", value_delimiter = ',',
          value_parser = clap::value_parser!(u64).range(10..=10000))]
    pub sel_poll_ms: Vec<u64>,
    /// Leave openhpid out.
    #[arg(long)]
    pub no_openhpid: bool,
    /// The simulated shelf's script (default: this checkout's).
    #[arg(long, default_value = SIM_SCRIPT)]
    pub sim: PathBuf,
    /// Seed of the pauses before transitions (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the run's directory (configurations, logs, openhpid's protocol log).
    #[arg(long)]
    pub keep: bool,
    /// One JSON object per run instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Nearest-rank percentiles of a set of times, ms.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Spread {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
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
            count: v.len(),
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// openhpid's side of a run.
#[derive(Debug, Clone, Serialize)]
pub struct OpenhpidResult {
    /// Time to the `hpievents` line of each transition it reported.
    pub event: Spread,
    /// Transitions it did not report within the run.
    pub missed: u32,
    /// IPMI requests per second to the shelf manager over the measured window (ipmidirect's
    /// protocol log).
    pub requests_per_sec: f64,
    /// Median time between two of its Get SEL Info requests in the window, s (from its
    /// log's time stamps); over its whole log when the window holds fewer than two (a
    /// window shorter than its poll period).
    pub sel_period_s: Option<f64>,
}

/// One run (one SEL poll interval).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `"hpi"`.
    pub bench: &'static str,
    /// Executives.
    pub nodes: u32,
    /// `[hpi] sel_poll_ms`.
    pub sel_poll_ms: u64,
    /// Transitions driven.
    pub transitions: u32,
    /// Time to the slowest executive of each transition.
    pub every_node: Spread,
    /// Time to the fastest executive of each transition.
    pub first_node: Spread,
    /// Every executive's time of every transition.
    pub per_node: Spread,
    /// The console command's round trip (the SEL entry is written within it).
    pub console: Spread,
    /// (transition, node) pairs not delivered within 10 s.
    pub missed: u32,
    /// Transitions before which the blade was not in the state the bench left it in:
    /// someone else commanded it (openhpid's ipmidirect activates a FRU it sees in M2).
    pub commanded_by_others: u32,
    /// Per executive: Get SEL Info + Get SEL Entry requests per second over its life.
    pub sel_requests_per_sec: Vec<f64>,
    /// The same summed over the executives: the shelf manager's load from the cluster.
    pub sel_requests_per_sec_total: f64,
    /// openhpid, unless left out.
    pub openhpid: Option<OpenhpidResult>,
    /// The issue's target.
    pub target: &'static str,
    /// Whether it is met (p99 at every node, nothing missed).
    pub target_met: bool,
    /// Seed of the pauses.
    pub seed: u64,
}

/// Runs `bench hpi`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.sim.is_file(),
        "the simulated shelf's script {} is missing (--sim)",
        args.sim.display()
    );
    let seed = args.seed.unwrap_or_else(|| realtime_ns() % 1_000_000);
    let program = std::env::current_exe().context("locating the bench executable")?;
    let work = std::env::temp_dir().join(format!("oais-hpi-bench-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let mut failed = Vec::new();
    for &poll in &args.sel_poll_ms {
        let dir = work.join(format!("poll-{poll}"));
        match one_run(args, poll, seed, &program, &dir) {
            Ok(s) => {
                if args.json {
                    println!("{}", serde_json::to_string(&s)?);
                } else {
                    print!("{}", summary_text(&s));
                }
                if s.missed > 0 {
                    failed.push(format!(
                        "sel_poll_ms {poll}: {} deliveries missed",
                        s.missed
                    ));
                }
                if !args.keep {
                    let _ = fs::remove_dir_all(&dir);
                }
            }
            Err(e) => failed.push(format!(
                "sel_poll_ms {poll}: {e:#} (files in {})",
                dir.display()
            )),
        }
    }
    if !args.keep && failed.is_empty() {
        let _ = fs::remove_dir_all(&work);
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

fn summary_text(s: &Summary) -> String {
    let mut t = format!(
        "hpi: {} executives ([hpi] sel_poll_ms = {}){} on one simulated shelf (ipmi_sim, 127.0.0.1), \
         {} transitions of Blade3 (M1 <-> M2); seed {}\n  ms from the SEL entry written (console command sent)      n      p50      p90      p99      max\n",
        s.nodes,
        s.sel_poll_ms,
        if s.openhpid.is_some() {
            " and openhpid (ipmidirect)"
        } else {
            ""
        },
        s.transitions,
        s.seed
    );
    let mut row = |name: &str, sp: &Spread| {
        let _ = writeln!(
            t,
            "  {name:<54} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            sp.count, sp.p50, sp.p90, sp.p99, sp.max
        );
    };
    row(
        "executives: accepted at every node (slowest)",
        &s.every_node,
    );
    row("executives: accepted at the first node", &s.first_node);
    row("executives: each node, each transition", &s.per_node);
    if let Some(o) = &s.openhpid {
        row("openhpid (ipmidirect): hpievents line", &o.event);
    }
    row(
        "(console round trip: the SEL entry is written within)",
        &s.console,
    );
    if s.commanded_by_others > 0 {
        let _ = writeln!(
            t,
            "  the blade was commanded by someone else (openhpid activates a FRU in M2) before {} transitions: driven back to M1 from there",
            s.commanded_by_others
        );
    }
    let _ = writeln!(
        t,
        "  missed (not delivered within 10 s): executives {}{}",
        s.missed,
        s.openhpid
            .as_ref()
            .map_or_else(String::new, |o| format!(", openhpid {}", o.missed))
    );
    let per: Vec<String> = s
        .sel_requests_per_sec
        .iter()
        .map(|r| format!("{r:.1}"))
        .collect();
    let _ = writeln!(
        t,
        "  shelf manager load: executives {:.1} SEL requests/s in all ({} per node){}",
        s.sel_requests_per_sec_total,
        per.join(", "),
        s.openhpid.as_ref().map_or_else(String::new, |o| format!(
            "; openhpid {:.1} IPMI requests/s (Get SEL Info every {}, median)",
            o.requests_per_sec,
            o.sel_period_s
                .map_or_else(|| "?".to_owned(), |p| format!("{p:.1} s"))
        ))
    );
    let _ = writeln!(
        t,
        "  target (issue 19): {}: {}",
        s.target,
        if s.target_met { "met" } else { "NOT met" }
    );
    t
}

/// A UDP port whose successor is a free TCP port (the simulator's console).
fn sim_port() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let u = UdpSocket::bind("127.0.0.1:0")?;
        let p = u.local_addr()?.port();
        if p < 65000 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free port pair on 127.0.0.1")
}

/// The simulated shelf, stopped on drop.
struct Sim {
    script: PathBuf,
    port: u16,
    dir: PathBuf,
    build: PathBuf,
}

impl Sim {
    fn start(script: &Path, dir: &Path) -> anyhow::Result<Sim> {
        let sim = Sim {
            script: script.to_owned(),
            port: sim_port()?,
            dir: dir.join("sim"),
            build: std::env::temp_dir().join("atca-sim-build"),
        };
        sim.sh("start")?;
        Ok(sim)
    }

    fn sh(&self, what: &str) -> anyhow::Result<String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(what)
            .env("SIM_PORT", self.port.to_string())
            .env("SIM_DIR", &self.dir)
            .env("SIM_EXT", "1")
            .env("SIM_BUILD_DIR", &self.build)
            .env("SIM_LIFETIME", "3600")
            .output()
            .with_context(|| format!("running {}", self.script.display()))?;
        if !out.status.success() {
            bail!(
                "sim-shelf.sh {what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The openhpid configuration template beside the script.
    fn openhpi_template(&self) -> PathBuf {
        self.script
            .parent()
            .unwrap_or(Path::new("."))
            .join("hpi/openhpi.conf.in")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.sh("stop");
    }
}

/// The simulator's TCP console (telnet-like: a `> ` prompt after each command). Always read
/// to the prompt before closing: the simulator dies of SIGPIPE otherwise.
struct Console {
    s: TcpStream,
}

impl Console {
    fn connect(port: u16) -> anyhow::Result<Console> {
        let s = TcpStream::connect(("127.0.0.1", port + 1)).context("the simulator's console")?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        let mut c = Console { s };
        c.prompt()?;
        Ok(c)
    }

    fn prompt(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"> ") {
            let n = self.s.read(&mut buf).context("reading the console")?;
            if n == 0 {
                bail!("the console closed: {}", String::from_utf8_lossy(&got));
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(got)
    }

    /// The M-state of the IPMC at `addr` (`atca_show`: "0x86 M1 policy=...").
    fn m_state(&mut self, addr: u8) -> anyhow::Result<u8> {
        let answer = self.cmd(&format!("atca_show 0x{addr:02x}"))?;
        answer
            .lines()
            .find_map(|l| {
                let mut w = l
                    .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                    .split(' ');
                w.next()?.starts_with("0x").then_some(())?;
                w.next()?.strip_prefix('M')?.parse().ok()
            })
            .with_context(|| format!("atca_show 0x{addr:02x} answered {answer:?}"))
    }

    /// Sends `cmd`; returns when the prompt is back, with the simulator's answer.
    fn cmd(&mut self, cmd: &str) -> anyhow::Result<String> {
        self.s.write_all(format!("{cmd}\n").as_bytes())?;
        let got = self.prompt()?;
        Ok(String::from_utf8_lossy(&got).into_owned())
    }
}

/// openhpid on the shelf with `hpievents` following it, both killed on drop.
struct Openhpid {
    daemon: Child,
    events: Option<Child>,
    log: PathBuf,
    /// (previous, new) HPI state and when the line was read, for Blade3's slot.
    seen: Arc<Mutex<Vec<(u8, u8, Instant)>>>,
}

fn hs_code(name: &str) -> Option<u8> {
    Some(match name {
        "INACTIVE" => 0,
        "INSERTION_PENDING" => 1,
        "ACTIVE" => 2,
        "EXTRACTION_PENDING" => 3,
        "NOT_PRESENT" => 4,
        _ => return None,
    })
}

impl Openhpid {
    fn start(sim: &Sim, dir: &Path) -> anyhow::Result<Openhpid> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let hdir = dir.join("openhpid");
        fs::create_dir_all(hdir.join("var"))?;
        let tmpl = fs::read_to_string(sim.openhpi_template())
            .with_context(|| format!("reading {}", sim.openhpi_template().display()))?;
        // Auto-insert blocked (a negative value, quoted: openhpi.conf(5)): openhpid must not
        // activate the blade the bench drives.
        let conf = "OPENHPI_AUTOINSERT_TIMEOUT = \"-1\"\n".to_owned()
            + &tmpl
                .replace("@HPI_DIR@", &hdir.display().to_string())
                .replace("@SIM_PORT@", &sim.port.to_string())
                .replace("@SIM_USER@", "admin")
                .replace("@SIM_PASS@", "admin");
        let conf_path = hdir.join("openhpi.conf");
        fs::write(&conf_path, conf)?;
        fs::set_permissions(&conf_path, fs::Permissions::from_mode(0o600))?;
        let daemon = Command::new("openhpid")
            .arg("-n")
            .arg("-c")
            .arg(&conf_path)
            .args(["-p", &port.to_string()])
            .arg("-f")
            .arg(hdir.join("openhpid.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting openhpid (Debian: openhpid openhpi-plugin-ipmidirect)")?;
        let mut o = Openhpid {
            daemon,
            events: None,
            log: hdir.join("ipmidirect00.log"),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        // Discovered: hpitree lists Blade3 with managed hot-swap (ipmidirect cleared the SEL
        // at its start, before the executives read it).
        let end = Instant::now() + WAIT;
        loop {
            let out = Command::new("hpitree")
                .arg("-r")
                .env("OPENHPI_DAEMON_HOST", "127.0.0.1")
                .env("OPENHPI_DAEMON_PORT", port.to_string())
                .output()
                .context("hpitree (Debian: openhpi-clients)")?;
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains("Data: Blade3") && text.matches("MANAGED_HOTSWAP").count() >= 3 {
                break;
            }
            if Instant::now() > end {
                bail!("openhpid did not discover the shelf within {WAIT:?}: {text}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut events = Command::new("stdbuf")
            .args(["-oL", "hpievents", "-t", "BLOCK"])
            .env("OPENHPI_DAEMON_HOST", "127.0.0.1")
            .env("OPENHPI_DAEMON_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting hpievents (Debian: openhpi-clients)")?;
        let out = events.stdout.take().context("hpievents' output")?;
        o.events = Some(events);
        let seen = Arc::clone(&o.seen);
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut hotswap, mut ours, mut state) = (false, false, None);
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let l = line.trim();
                if l.starts_with("rptentry[") && l.contains("Blade3") {
                    // hpievents has listed the RPT: it is subscribed.
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                } else if let Some(t) = l.strip_prefix("Event Type: ") {
                    (hotswap, ours, state) = (t == "HOTSWAP", false, None);
                } else if let Some(r) = l.strip_prefix("From Resource: ") {
                    ours = r.contains("{PHYSICAL_SLOT,3}");
                } else if let Some(s) = l.strip_prefix("HotSwapState: ") {
                    state = hs_code(s);
                } else if let Some(p) = l.strip_prefix("PreviousHotSwapState: ")
                    && hotswap
                    && ours
                    && let (Some(new), Some(prev)) = (state, hs_code(p))
                {
                    seen.lock().unwrap_or_else(PoisonError::into_inner).push((
                        prev,
                        new,
                        Instant::now(),
                    ));
                }
            }
        });
        ready
            .recv_timeout(WAIT)
            .context("hpievents did not list Blade3")?;
        Ok(o)
    }

    /// `>cmd` lines in ipmidirect's log so far, and the times of its Get SEL Info requests
    /// (seconds of the day, from the log's time stamps).
    fn requests(&self) -> (u64, Vec<f64>) {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let mut cmds = 0;
        let mut sel = Vec::new();
        for l in text.lines().filter(|l| l.contains(">cmd")) {
            cmds += 1;
            if l.contains("GetSelInfo") {
                // "2026.12.04 06:52:56.780 >cmd ..."
                let t = l.split(' ').nth(1).and_then(|hms| {
                    let mut p = hms.split(':').map(|x| x.parse::<f64>().ok());
                    Some(p.next()?? * 3600.0 + p.next()?? * 60.0 + p.next()??)
                });
                sel.extend(t);
            }
        }
        (cmds, sel)
    }
}

/// The median time between consecutive instants (`None` with fewer than two).
fn median_period(times: &[f64]) -> Option<f64> {
    // (A gap across midnight is negative: left out.)
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g >= 0.0)
        .collect();
    (!gaps.is_empty()).then(|| Spread::of(&gaps).p50)
}

impl Drop for Openhpid {
    fn drop(&mut self) {
        if let Some(e) = &mut self.events {
            let _ = e.kill();
            let _ = e.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// One accepted hot-swap event read by a follower.
struct Seen {
    node: usize,
    record: u16,
    previous: u8,
    state: u8,
    at: Instant,
}

/// Follows node `node`'s shelf service; reports hot-swap events on `tx` until `stop`.
fn follow(
    node: usize,
    socket: &Path,
    tx: &mpsc::Sender<Seen>,
    ready: &mpsc::Sender<anyhow::Result<()>>,
    stop: &AtomicBool,
) {
    let conn = Connection::<ShelfProtocol>::connect(socket)
        .map_err(anyhow::Error::from)
        .and_then(|mut c| match c.call(Request::Follow(true))? {
            Reply::Ok => Ok(c),
            other => bail!("node {}: Follow answered {other:?}", node + 1),
        });
    let mut conn = match conn {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match conn.next_callback(Some(Duration::from_millis(100))) {
            Ok(Some(Callback::Accepted { event, .. })) => {
                let at = Instant::now();
                if let ShelfEventKind::HotSwap {
                    previous, state, ..
                } = event.kind
                {
                    let _ = tx.send(Seen {
                        node,
                        record: event.key.record,
                        previous,
                        state,
                        at,
                    });
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The cluster, every executive killed on drop (after the orderly stop of the run).
struct Run {
    cluster: ProcessCluster,
    stop: Arc<AtomicBool>,
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for i in 0..self.cluster.len() {
            let _ = self.cluster.kill(i);
        }
    }
}

/// What an executive's HPI thread logged when it stopped: SEL requests per second.
fn sel_rate(log: &str) -> Option<f64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("hpi: stopped after"))?;
    let rest = line.split("hpi: stopped after ").nth(1)?;
    let secs: f64 = rest.split(' ').next()?.parse().ok()?;
    let num = |key: &str| -> Option<f64> {
        rest.split(key)
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((num("sel_info=")? + num("sel_entry=")?) / secs.max(1e-3))
}

fn one_run(
    args: &Args,
    poll: u64,
    seed: u64,
    program: &Path,
    dir: &Path,
) -> anyhow::Result<Summary> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let nodes = args.nodes as usize;
    let sim = Sim::start(&args.sim, dir)?;
    let openhpid = if args.no_openhpid {
        None
    } else {
        Some(Openhpid::start(&sim, dir)?)
    };

    let ports = harness::free_ports(nodes)?;
    let builder = ProcessCluster::builder(dir.join("cluster"), nodes, program)
        .arg("aisexec")
        .key();
    let totem = harness::key_lines(&builder.key_path());
    let cred = dir.join("shelf.cred");
    fs::write(&cred, "user = admin\npassword = admin\n")?;
    fs::set_permissions(&cred, fs::Permissions::from_mode(0o600))?;
    let hpi = format!(
        "\n[hpi]\naddress = \"127.0.0.1\"\nport = {}\ncredentials = {:?}\nsel_poll_ms = {poll}\n",
        sim.port,
        cred.display().to_string()
    );
    let cluster = builder.create(|node| harness::loopback_config(node, &ports, &totem) + &hpi)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut run = Run {
        cluster,
        stop: Arc::clone(&stop),
    };
    run.cluster.keep(true);
    run.cluster.spawn_all()?;
    let deadline = Instant::now() + WAIT;
    let all: Vec<u32> = (1..=args.nodes).collect();
    for i in 0..nodes {
        run.cluster.wait_ring(i, &all, deadline)?;
    }
    // Every watcher has discovered the shelf (at its start, or on a retry).
    for i in 0..nodes {
        loop {
            let log = run.cluster.log(i);
            if log.contains("hpi: connected to the shelf manager")
                || log.contains("shelf rediscovered")
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "node {}: its HPI thread did not discover the shelf; log:\n{}",
                    i + 1,
                    run.cluster.log_tail(i, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    let mut followers = Vec::new();
    for i in 0..nodes {
        let socket = run.cluster.node(i).socket.clone();
        let (tx, ready_tx, stop) = (tx.clone(), ready_tx.clone(), Arc::clone(&stop));
        followers.push(std::thread::spawn(move || {
            follow(i, &socket, &tx, &ready_tx, &stop);
        }));
    }
    for _ in 0..nodes {
        ready
            .recv_timeout(WAIT)
            .context("a follower did not start")??;
    }

    let mut console = Console::connect(sim.port)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ poll);
    let requests_before = openhpid.as_ref().map(Openhpid::requests);
    let window = Instant::now();
    let mut last_record = vec![0u16; nodes];
    let mut commanded = 0u32;
    let mut sent = Vec::new();
    let (mut every, mut first, mut each, mut rtt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut missed = 0u32;
    for k in 0..args.transitions {
        // M1 -> M2, else back to M1. Expected: the last transition's target, unless someone
        // else commanded the blade (openhpid activates a blade it sees in M2).
        let expected = if k % 2 == 0 { 1 } else { 2 };
        let now_in = console.m_state(BLADE)?;
        if now_in != expected {
            commanded += 1;
        }
        let (m, state) = if now_in == 1 {
            (2, INSERTION_PENDING)
        } else {
            (1, INACTIVE)
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(0..poll)));
        let t0 = Instant::now();
        let answer = console.cmd(&format!("atca_hs 0x{BLADE:02x} {m} 0"))?;
        rtt.push(ms(t0.elapsed()));
        if answer.contains("**") {
            bail!("atca_hs 0x{BLADE:02x} {m}: {answer}");
        }
        sent.push((state, t0));
        let mut got: Vec<Option<f64>> = vec![None; nodes];
        let end = t0 + MISSED;
        while got.iter().any(Option::is_none) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let s = match rx.recv_timeout(left) {
                Ok(s) => s,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("every follower stopped"),
            };
            if std::env::var_os("BENCH_HPI_DEBUG").is_some() {
                eprintln!(
                    "node {} record {} {} -> {} at {:.1} ms",
                    s.node + 1,
                    s.record,
                    s.previous,
                    s.state,
                    ms(s.at.saturating_duration_since(t0))
                );
            }
            // The event of this transition: the first to its state in a later SEL record
            // (those of someone else's commands go to other states).
            if got[s.node].is_none() && s.state == state && s.record > last_record[s.node] {
                last_record[s.node] = s.record;
                got[s.node] = Some(ms(s.at.saturating_duration_since(t0)));
            }
        }
        let times: Vec<f64> = got.iter().flatten().copied().collect();
        if times.len() < nodes {
            let who: Vec<String> = (0..nodes)
                .filter(|&i| got[i].is_none())
                .map(|i| (i + 1).to_string())
                .collect();
            eprintln!(
                "bench hpi: transition {} (M{m}) not delivered within {MISSED:?} at node(s) {}",
                k + 1,
                who.join(", ")
            );
        }
        missed += (nodes - times.len()) as u32;
        each.extend_from_slice(&times);
        if let Some(f) = times.iter().copied().min_by(f64::total_cmp) {
            first.push(f);
        }
        if times.len() == nodes
            && let Some(s) = times.iter().copied().max_by(f64::total_cmp)
        {
            every.push(s);
        }
    }

    let openhpid = match &openhpid {
        None => None,
        Some(o) => {
            let end = Instant::now() + OPENHPID_TAIL;
            loop {
                let n = o.seen.lock().unwrap_or_else(PoisonError::into_inner).len();
                if n >= sent.len() || Instant::now() > end {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let elapsed = window.elapsed().as_secs_f64();
            let (c1, sel) = o.requests();
            let (c0, s0) = requests_before.unwrap_or_default();
            let seen = o.seen.lock().unwrap_or_else(PoisonError::into_inner);
            // In order: the i-th matching line after a transition's start is its event.
            let mut times = Vec::new();
            let mut j = 0;
            for &(_, new, at) in seen.iter() {
                if j < sent.len() && new == sent[j].0 && at >= sent[j].1 {
                    times.push(ms(at - sent[j].1));
                    j += 1;
                }
            }
            Some(OpenhpidResult {
                event: Spread::of(&times),
                missed: (sent.len() - times.len()) as u32,
                requests_per_sec: (c1 - c0) as f64 / elapsed,
                // From the last Get SEL Info before the window on; a window shorter than
                // openhpid's poll period may hold only one: then its whole log.
                sel_period_s: median_period(
                    sel.get(s0.len().saturating_sub(1)..).unwrap_or_default(),
                )
                .or_else(|| median_period(&sel)),
            })
        }
    };

    // Orderly stop: each HPI thread logs its SEL requests.
    stop.store(true, Ordering::Relaxed);
    for f in followers {
        let _ = f.join();
    }
    let mut rates = Vec::new();
    for i in (0..nodes).rev() {
        run.cluster
            .terminate(i, Duration::from_secs(20))
            .with_context(|| format!("stopping node {}", i + 1))?;
    }
    for i in 0..nodes {
        rates.push(sel_rate(&run.cluster.log(i)).with_context(|| {
            format!(
                "node {}: no 'hpi: stopped' line; log:\n{}",
                i + 1,
                run.cluster.log_tail(i, 20)
            )
        })?);
    }
    drop(console);
    let every_node = Spread::of(&every);
    Ok(Summary {
        bench: "hpi",
        nodes: args.nodes,
        sel_poll_ms: poll,
        transitions: args.transitions,
        every_node,
        first_node: Spread::of(&first),
        per_node: Spread::of(&each),
        console: Spread::of(&rtt),
        missed,
        commanded_by_others: commanded,
        sel_requests_per_sec_total: rates.iter().sum(),
        sel_requests_per_sec: rates,
        openhpid,
        target: "SEL entry -> accepted at every node p99 <= 100 ms",
        target_met: missed == 0 && every_node.p99 <= 100.0,
        seed,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_line_gives_the_sel_request_rate() {
        let log = "2026 INFO hpi: stopped after 20.0 s: sel_info=200 sel_entry=40 (12.0 SEL requests/s), discoveries=1 connection_losses=0 handover_dropped=0\n";
        assert_eq!(sel_rate(log), Some(12.0));
        assert_eq!(sel_rate("nothing\n"), None);
    }

    #[test]
    fn spread_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Spread::of(&v);
        assert_eq!(
            (s.count, s.p50, s.p90, s.p99, s.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Spread::of(&[]), Spread::default());
    }
}
