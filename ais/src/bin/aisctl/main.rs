//! `aisctl`: the operator's tool for a running `aisexec` (status, CPG groups, membership,
//! quorum, checkpoints) and the three-node loopback demo.

/// `println!` that ends the program quietly when standard output is closed (`aisctl status |
/// head`), like the classic tools, instead of panicking on a broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            panic!("writing to standard output: {e}");
        }
    }};
}

mod amf;
mod ckpt;
mod demo;
mod evt;
mod lck;
mod msg;
mod ring;
mod shelf;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ais_client::cpg::{Cpg, CpgEvent};
use ais_client::{self as client, Admin, CpgAddress, Guarantee, Reason};
use amf::{AmfCommand, amf_command};
use anyhow::{Context, bail};
use ckpt::{CkptCommand, ckpt_command};
use clap::{Parser, Subcommand};
use evt::{EvtCommand, evt_command};
use lck::{LckCommand, lck_command};
use msg::{MsgCommand, msg_command};
use ring::{RingCommand, ring_command};
use shelf::{ShelfCommand, shelf_command};

/// Inspect and drive a running aisexec, or run the demo.
///
/// The executive's socket is, in this order: --socket, the aisexec.ipc_socket of --config,
/// the environment variable OPENAIS_IPC_SOCKET, /run/openais/aisexec.sock.
///
/// Examples:
///   aisctl demo                          # 3 executives on loopback: traffic, kill, merge
///   aisctl status                        # ring id, state, members, counters
///   aisctl --config node1.toml status --json
///   aisctl cpg list                      # groups and their members (like corosync-cpgtool)
///   aisctl cpg watch orders              # join "orders", print deliveries and changes
///   aisctl cpg send orders "hello"       # join, send, wait until delivered, leave
///   aisctl cpg send orders --count 10000 --size 1024 --batch 64
///   aisctl clm status                    # the view: nodes, names, addresses, boot times
///   aisctl clm track                     # print every membership change
///   aisctl quorum status                 # quorate?, votes, expected votes, quorum
///   aisctl ckpt ls                       # checkpoints: sections, bytes, opens, retention
///   aisctl ckpt write app-state --create --data "v=1"   # create it (one section), write
///   aisctl ckpt read app-state           # its bytes to standard output
///   aisctl ckpt show app-state           # attributes and every section
///   aisctl evt subscribe alarms          # print the events published on "alarms"
///   aisctl evt publish alarms --pattern disk --data full
///   aisctl evt ls                        # channels: opens, retained events
///   aisctl msg ls                        # message queues: opener, messages per priority
///   aisctl msg send jobs "hello"         # one message to a queue (or a queue group)
///   aisctl msg get jobs                  # open it, get one message, close it
///   aisctl lck ls                        # lock resources, granted and queued locks
///   aisctl lck lock config --mode ex --hold 10   # take an EX lock, hold it 10 s
///   aisctl rekey                         # new cluster key epoch, online
///   aisctl ring status                   # each network's state (exit 2: one is faulty)
///   aisctl ring disable 1                # stop using network 1 on this node (enable 1)
///   aisctl amf check amf.toml            # validate an AMF model, print its tree
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// The executive's IPC socket.
    #[arg(long, short = 's', value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    /// Take the socket path from this aisexec configuration file.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        global = true,
        conflicts_with = "socket"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ring id, membership state, members and counters of the local executive.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Closed process groups.
    #[command(subcommand)]
    Cpg(CpgCommand),
    /// Cluster membership (SA Forum CLM): the current view and its changes.
    #[command(subcommand)]
    Clm(ClmCommand),
    /// Quorum: whether this node's partition may act (needs [quorum] in the configuration).
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// Checkpoints (SA Forum CKPT): named data replicated on every node. List, show, read,
    /// write, unlink.
    #[command(subcommand)]
    Ckpt(CkptCommand),
    /// Events (SA Forum EVT): channels, publish, subscribe.
    #[command(subcommand)]
    Evt(EvtCommand),
    /// Message queues (SA Forum MSG): every queue on every node. List, send, get.
    #[command(subcommand)]
    Msg(MsgCommand),
    /// Locks (SA Forum LCK): list the cluster's lock resources, take and hold a lock, purge
    /// orphan locks.
    #[command(subcommand)]
    Lck(LckCommand),
    /// ATCA shelf events accepted by the cluster (hot-swap and critical sensor events, each
    /// once; nodes with [hpi] watch the shelf).
    #[command(subcommand)]
    Shelf(ShelfCommand),
    /// Replace the cluster's frame key online: a new key epoch goes through the ring
    /// (encrypted under the current key), every member switches at the same point and
    /// rewrites its key file. No membership change, no message lost.
    Rekey,
    /// Redundant rings: each network's state and counters; take a network out of use or put
    /// it back.
    #[command(subcommand)]
    Ring(RingCommand),
    /// Start three executives on loopback, send CPG traffic, kill one and measure the
    /// failover, restart it and show the merge, then stop everything (no root needed).
    Demo(demo::DemoArgs),
    /// Availability management (SA Forum AMF): check a model file.
    #[command(subcommand)]
    Amf(AmfCommand),
    /// Run the executive itself (what `aisctl demo` starts; same as the aisexec program).
    #[command(hide = true, name = "aisexec")]
    Exec(ais::aisexec::Cli),
}

#[derive(Subcommand, Debug)]
enum ClmCommand {
    /// The current view: its number and every member's id, name, address, boot time and
    /// first view.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print every membership change (every member and every change) until interrupted.
    Track {
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<u64>,
        /// List only the nodes that changed (CHANGES_ONLY).
        #[arg(long)]
        changes_only: bool,
    },
}

#[derive(Subcommand, Debug)]
enum QuorumCommand {
    /// Quorate or not, the votes present, expected and needed, and the members; exits with
    /// status 2 when not quorate (like a check for scripts).
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum CpgCommand {
    /// Every group this node knows and its members (node/pid).
    List {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Join GROUP and print every delivery and membership change until interrupted.
    Watch {
        /// The group.
        group: String,
        /// Stop after this many deliveries.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        /// Print only a summary line per membership change and a count at the end.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Join GROUP, send messages (retrying TRY_AGAIN), wait until they are delivered back,
    /// then leave.
    Send {
        /// The group.
        group: String,
        /// The message text (default: generated, --size bytes).
        text: Option<String>,
        /// How many messages.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Size of generated messages, bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Safe delivery (every member holds the message before anyone delivers it).
        #[arg(long)]
        safe: bool,
        /// Send up to this many messages per round trip (CpgMcastBatch; 1: one at a time;
        /// fewer when they would not fit one IPC packet of 192 KiB).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        batch: u32,
        /// Offer at most this many messages per second (default: as fast as flow control
        /// allows). For latency that is not queueing, offer less than the measured maximum.
        #[arg(long, value_name = "MSGS_PER_SEC")]
        rate: Option<f64>,
    },
}

fn main() -> ExitCode {
    // The example 2N service (crate amf-counter) as an AMF component: what the demo's AMF
    // step and the tests start (hidden, with its own arguments).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "amf-counter")
    {
        amf_counter::init_logging();
        let args = amf_counter::Args::parse_from(std::env::args_os().skip(1));
        return match amf_counter::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("amf-counter: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    if let Command::Exec(exec_cli) = cli.command {
        return ais::aisexec::run_cli(exec_cli);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aisctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn socket_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    if let Some(c) = &cli.config {
        let config = ais::config::Config::from_file(c)?;
        return Ok(config.aisexec.ipc_socket);
    }
    Ok(client::default_socket())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Status { json } => status(&socket_path(&cli)?, *json),
        Command::Rekey => rekey(&socket_path(&cli)?),
        Command::Ring(c) => ring_command(&socket_path(&cli)?, c),
        Command::Clm(ClmCommand::Status { json }) => clm_status(&socket_path(&cli)?, *json),
        Command::Clm(ClmCommand::Track {
            count,
            changes_only,
        }) => clm_track(&socket_path(&cli)?, *count, *changes_only),
        Command::Quorum(QuorumCommand::Status { json }) => {
            quorum_status(&socket_path(&cli)?, *json)
        }
        Command::Ckpt(c) => ckpt_command(&socket_path(&cli)?, c),
        Command::Evt(c) => evt_command(&socket_path(&cli)?, c),
        Command::Msg(c) => msg_command(&socket_path(&cli)?, c),
        Command::Lck(c) => lck_command(&socket_path(&cli)?, c),
        Command::Shelf(c) => shelf_command(&socket_path(&cli)?, c),
        Command::Cpg(CpgCommand::List { json }) => cpg_list(&socket_path(&cli)?, *json),
        Command::Cpg(CpgCommand::Watch {
            group,
            count,
            seconds,
            quiet,
        }) => cpg_watch(
            &socket_path(&cli)?,
            group,
            *count,
            seconds.map(Duration::from_secs_f64),
            *quiet,
        ),
        Command::Cpg(CpgCommand::Send {
            group,
            text,
            count,
            size,
            safe,
            batch,
            rate,
        }) => cpg_send(
            &socket_path(&cli)?,
            group,
            text.as_deref(),
            SendPlan {
                count: *count,
                size: *size,
                safe: *safe,
                batch: *batch as usize,
                rate: *rate,
            },
        ),
        Command::Amf(c) => amf_command(c, cli.config.as_deref(), &|| socket_path(&cli)),
        Command::Exec(_) => unreachable!("handled in main"),
    }
}

fn status(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let mut conn = Admin::connect(path)?;
    let s = conn.status()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if json {
        let counters: serde_json::Map<String, serde_json::Value> = s
            .counters
            .iter()
            .map(|c| (text(&c.name), serde_json::Value::from(c.value)))
            .collect();
        let v = serde_json::json!({
            "node": s.node,
            "state": text(&s.state),
            "ring": text(&s.ring),
            "members": s.members,
            "counters": counters,
        });
        say!("{v}");
        return Ok(());
    }
    say!("node     {}", s.node);
    say!("state    {}", text(&s.state));
    say!("ring     {}", text(&s.ring));
    say!("members  {}", join_ids(&s.members));
    if let Some(nets) = ring::summary(&s) {
        say!("networks {nets}");
    }
    say!("counters");
    for c in &s.counters {
        say!("  {:<28} {}", text(&c.name), c.value);
    }
    Ok(())
}

fn clm_node_text(n: &client::clm::ClusterNode) -> String {
    let address = n.address.to_string();
    let boot = humantime_utc(n.boot_timestamp);
    format!(
        "{:<6} {:<20} {:<16} booted {boot}  first view {}",
        n.node_id,
        String::from_utf8_lossy(&n.name),
        address,
        n.initial_view_number
    )
}

/// A `SaTimeT` (ns since the epoch) as `YYYY-MM-DD HH:MM:SS UTC`.
fn humantime_utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn clm_status(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let mut clm = client::clm::Clm::connect(path)?;
    let view = clm
        .track(client::clm::TRACK_CURRENT)?
        .context("no view in the answer")?;
    // Whether this view may act, when a quorum service runs (None: no [quorum] table, every
    // partition acts).
    let quorate = match client::quorum::Quorum::connect(path) {
        Ok(mut q) => Some(q.get()?.quorate),
        Err(e) if e.ais_error() == Some(client::AisError::NotSupported) => None,
        Err(e) => return Err(e.into()),
    };
    if json {
        let nodes: Vec<serde_json::Value> = view
            .items
            .iter()
            .map(|(n, _)| {
                serde_json::json!({
                    "node_id": n.node_id,
                    "name": String::from_utf8_lossy(&n.name),
                    "address": n.address.to_string(),
                    "boot_timestamp_ns": n.boot_timestamp,
                    "initial_view_number": n.initial_view_number,
                })
            })
            .collect();
        say!(
            "{}",
            serde_json::json!({"view_number": view.view_number, "members": nodes, "quorate": quorate})
        );
        return Ok(());
    }
    let quorum = match quorate {
        Some(true) => "; quorate",
        Some(false) => "; NOT quorate",
        None => "",
    };
    say!(
        "view {}: {} member(s){quorum}",
        view.view_number,
        view.members
    );
    for (n, _) in &view.items {
        say!("  {}", clm_node_text(n));
    }
    Ok(())
}

fn clm_track(path: &std::path::Path, count: Option<u64>, changes_only: bool) -> anyhow::Result<()> {
    let mut clm = client::clm::Clm::connect(path)?;
    let flags = if changes_only {
        client::clm::TRACK_CHANGES_ONLY
    } else {
        client::clm::TRACK_CHANGES
    };
    clm.track(flags)?;
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        if let Some(client::clm::ClmEvent::Track(view)) = clm.dispatch(None)? {
            seen += 1;
            say!("view {}: {} member(s)", view.view_number, view.members);
            for (n, change) in &view.items {
                say!("  {:<12} {}", format!("{change:?}"), clm_node_text(n));
            }
        }
    }
    Ok(())
}

fn quorum_status(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let mut q = match client::quorum::Quorum::connect(path) {
        Err(e) if e.ais_error() == Some(client::AisError::NotSupported) => {
            anyhow::bail!(
                "this aisexec runs no quorum service: add a [quorum] table to its configuration \
                 (see docs/services.md)"
            )
        }
        other => other?,
    };
    let s = q.get()?;
    let ring = String::from_utf8_lossy(&s.ring).into_owned();
    if json {
        let v = serde_json::json!({
            "quorate": s.quorate,
            "ring": ring,
            "members": s.members,
            "total_votes": s.total_votes,
            "expected_votes": s.expected_votes,
            "quorum": s.quorum,
            "waiting_for_all": s.waiting_for_all,
        });
        say!("{v}");
    } else {
        say!("quorate         {}", if s.quorate { "yes" } else { "no" });
        say!("ring            {ring}");
        say!("members         {}", join_ids(&s.members));
        say!(
            "votes           {} present, {} expected, {} needed",
            s.total_votes,
            s.expected_votes,
            s.quorum
        );
        if s.waiting_for_all {
            say!("wait_for_all    waiting: every expected vote has not been present at once");
        }
    }
    if !s.quorate {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::exit(2);
    }
    Ok(())
}

/// Runs `op` until it does not answer TRY_AGAIN (Totem's send window is full), for up to 10 s.
pub(crate) fn retry<T>(
    mut op: impl FnMut() -> Result<T, client::Error>,
) -> Result<T, client::Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_micros(100);
    loop {
        match op() {
            Err(e) if e.is_try_again() && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// A counter of the status, 0 when the executive does not report it.
pub(crate) fn counter(s: &ais_client::Status, name: &str) -> u64 {
    ais::harness::counter(s, name).unwrap_or(0)
}

fn rekey(path: &std::path::Path) -> anyhow::Result<()> {
    let mut conn = Admin::connect(path)?;
    let before = counter(&conn.status()?, "key_epoch");
    let start = Instant::now();
    retry(|| conn.rekey()).context("rekey")?;
    let after = counter(&conn.status()?, "key_epoch");
    say!(
        "cluster key replaced: epoch {before} -> {after} in {:.0} ms; every member switched at the same point and rewrote its key file",
        start.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

fn addr(a: &CpgAddress) -> String {
    format!("{}/{}", a.node, a.pid)
}

fn addrs(list: &[CpgAddress]) -> String {
    list.iter().map(addr).collect::<Vec<_>>().join(" ")
}

fn reasons(list: &[(CpgAddress, Reason)]) -> String {
    list.iter()
        .map(|(a, r)| format!("{} ({})", addr(a), r.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpg_list(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let mut cpg = Cpg::connect(path)?;
    let groups = cpg.groups()?;
    if json {
        let v: Vec<serde_json::Value> = groups
            .iter()
            .map(|(g, m)| {
                serde_json::json!({
                    "group": String::from_utf8_lossy(g),
                    "members": m.iter().map(|a| serde_json::json!({"node": a.node, "pid": a.pid})).collect::<Vec<_>>(),
                })
            })
            .collect();
        say!("{}", serde_json::Value::from(v));
        return Ok(());
    }
    if groups.is_empty() {
        say!("no groups");
    }
    for (g, m) in &groups {
        say!("{}: {}", String::from_utf8_lossy(g), addrs(m));
    }
    Ok(())
}

fn cpg_watch(
    path: &std::path::Path,
    group: &str,
    count: Option<u64>,
    limit: Option<Duration>,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut cpg = Cpg::connect(path)?;
    let me = cpg.local_get()?;
    retry(|| cpg.join(group.as_bytes())).with_context(|| format!("joining group {group:?}"))?;
    eprintln!(
        "joined {group:?} as {me}/{}; watching (Ctrl-C to stop)",
        std::process::id()
    );
    let start = Instant::now();
    let mut delivered = 0u64;
    loop {
        if count.is_some_and(|c| delivered >= c) {
            break;
        }
        let wait = match limit {
            Some(l) => match l.checked_sub(start.elapsed()) {
                Some(left) => left,
                None => break,
            },
            None => Duration::from_secs(1),
        };
        match cpg.dispatch(Some(wait))? {
            Some(CpgEvent::Deliver { sender, data, .. }) => {
                delivered += 1;
                if !quiet {
                    say!(
                        "deliver from {} len {}: {}",
                        addr(&sender),
                        data.len(),
                        preview(&data)
                    );
                }
            }
            Some(CpgEvent::ConfChg {
                members,
                left,
                joined,
                ..
            }) => {
                say!(
                    "confchg members [{}] joined [{}] left [{}]",
                    addrs(&members),
                    reasons(&joined),
                    reasons(&left)
                );
            }
            None => {}
        }
    }
    say!(
        "{delivered} messages delivered in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn preview(data: &[u8]) -> String {
    let shown = &data[..data.len().min(60)];
    let text = String::from_utf8_lossy(shown);
    if text.chars().all(|c| !c.is_control()) {
        let more = if data.len() > shown.len() { "…" } else { "" };
        format!("{text:?}{more}")
    } else {
        format!("{} binary bytes", data.len())
    }
}

/// What `aisctl cpg send` sends.
struct SendPlan {
    count: u64,
    size: usize,
    safe: bool,
    batch: usize,
    rate: Option<f64>,
}

fn cpg_send(
    path: &std::path::Path,
    group: &str,
    text: Option<&str>,
    plan: SendPlan,
) -> anyhow::Result<()> {
    let SendPlan {
        count,
        size,
        safe,
        batch,
        rate,
    } = plan;
    if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be a positive number of messages per second");
    }
    let mut cpg = Cpg::connect(path)?;
    let me = CpgAddress {
        node: cpg.local_get()?,
        pid: std::process::id(),
    };
    retry(|| cpg.join(group.as_bytes())).with_context(|| format!("joining group {group:?}"))?;
    let guarantee = if safe {
        Guarantee::Safe
    } else {
        Guarantee::Agreed
    };
    let start = Instant::now();
    let mut try_again = 0;
    let mut mine_back = 0u64;
    let mine = |ev: &Option<CpgEvent>| matches!(ev, Some(CpgEvent::Deliver { sender, .. }) if *sender == me);
    // Own messages come back in the order they were sent (per-sender FIFO of the total
    // order): the latency of each is the time since its send began.
    let mut in_flight: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .context("latency histogram")?;
    let mut back = |ev: &Option<CpgEvent>, in_flight: &mut std::collections::VecDeque<Instant>| {
        if mine(ev) {
            if let Some(t) = in_flight.pop_front() {
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = latency.record(us.max(1));
            }
            1
        } else {
            0
        }
    };
    let message = |i: u64| match text {
        Some(t) => t.as_bytes().to_vec(),
        None => {
            let mut v = format!("{}/{} #{i} ", me.node, me.pid).into_bytes();
            v.resize(size.max(v.len()), b'.');
            v
        }
    };
    // A batch must fit one IPC packet.
    let per_packet = ais_client::MAX_PAYLOAD / (size.max(text.map_or(0, str::len)) + 4);
    let batch = batch.min(per_packet).max(1);
    let mut i = 0;
    while i < count {
        let n = (count - i).min(batch as u64);
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / r);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let now = Instant::now();
        in_flight.extend((0..n).map(|_| now));
        if n == 1 {
            try_again += cpg
                .mcast_retry(
                    group.as_bytes(),
                    guarantee,
                    &message(i),
                    Duration::from_secs(10),
                )
                .with_context(|| format!("sending message {i}"))?;
        } else {
            let msgs: Vec<Vec<u8>> = (i..i + n).map(&message).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            try_again += cpg
                .mcast_batch_retry(group.as_bytes(), guarantee, &refs, Duration::from_secs(10))
                .with_context(|| format!("sending messages {i}..{}", i + n))?;
        }
        i += n;
        // Keep the callbacks flowing so the executive never has to queue many for us.
        loop {
            let ev = cpg.dispatch(Some(Duration::ZERO))?;
            if ev.is_none() {
                break;
            }
            mine_back += back(&ev, &mut in_flight);
        }
    }
    let sent_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mine_back < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("only {mine_back} of {count} messages came back within 30 s");
        }
        let ev = cpg.dispatch(Some(left))?;
        mine_back += back(&ev, &mut in_flight);
    }
    let total = start.elapsed();
    retry(|| cpg.leave(group.as_bytes())).with_context(|| format!("leaving group {group:?}"))?;
    say!(
        "sent {count} messages to {group:?} in {:.3} s ({:.0} msgs/s, {try_again} TRY_AGAIN answers); all delivered back after {:.3} s",
        sent_in.as_secs_f64(),
        count as f64 / sent_in.as_secs_f64().max(1e-9),
        total.as_secs_f64()
    );
    say!(
        "latency from send to own delivery: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.value_at_quantile(0.999),
        latency.max()
    );
    Ok(())
}
