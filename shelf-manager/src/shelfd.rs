//! `shelfd`, the shelf manager daemon: runs a shelf model with simulated boards and answers
//! system managers over RMCP+ (IPMI 2.0 LAN) on UDP. Alone (the default), or as one of a
//! redundant pair under the AMF (`--amf`, see [`crate::replica::component`]).
//!
//! This is the program's code (the `shelfd` binary is [`main_with`] on its command line), in
//! the library so that `bench` runs the same daemon as a hidden subcommand.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use tracing::{info, warn};

use crate::commands::ShelfHandler;
use crate::ipmc::SimIpmc;
use crate::model::Config;
use crate::rmcp::server::{Server, ServerConfig};
use crate::rmcp::users::Users;
use crate::shelf::Shelf;

/// How the simulated boards start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Start {
    /// No board inserted: every FRU in M0.
    Empty,
    /// Every board inserted with its handle open: M1.
    Inserted,
    /// Every board inserted and its handle closed: the shelf activates them in model order
    /// as far as the power feeds allow (the rest wait in M3).
    Closed,
}

/// The ATCA shelf manager: runs the shelf described by a model file with simulated boards
/// and answers `ipmitool -I lanplus` (cipher suites 3 and 17) on UDP.
///
/// The model file (see configs/shelf-sim.toml and docs/shelf-manager.md) may hold an
/// `[rmcp]` table with `listen`, `users`, `max_sessions` and `idle_timeout_secs`; the flags
/// below override it. The users file holds plaintext passwords (RAKP needs them) and must be
/// readable by its owner only (`chmod 600`); shelfd refuses to start otherwise.
///
/// Example:
///   shelfd configs/shelf-sim.toml --users users.toml --listen 127.0.0.1:6230
///   ipmitool -I lanplus -H 127.0.0.1 -p 6230 -U admin -P secret -C 17 picmg addrinfo
///
/// Redundant pair: with --amf shelfd is an SA-aware AMF component (the model's instantiate
/// command, 2N). The active keeps the shelf's state in the checkpoint named by the CSI
/// attribute `checkpoint` and answers a request only once its change is in the checkpoint;
/// the standby reads it, and takes over from the last state written when it is made active.
/// The CSI attribute `listen` (optional) overrides --listen. See docs/shelf-manager.md.
///
/// Boards are FRU device ids 1, 2, … in model order (0 is the shelf manager itself), so
/// `picmg activate 2` acts on the second `[[board]]`. Logs go to stderr (RUST_LOG sets the
/// level, default info); every refused packet or command is logged at warn with its reason.
#[derive(Debug, Clone, Parser)]
#[command(name = "shelfd", version, verbatim_doc_comment)]
pub struct Args {
    /// The shelf model file (TOML).
    model: PathBuf,
    /// The users file (TOML, mode 600); default: `[rmcp] users` of the model.
    #[arg(long)]
    users: Option<PathBuf>,
    /// UDP address to listen on; default: `[rmcp] listen`, else 127.0.0.1:623.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Most sessions at once, handshakes included; default: `[rmcp] max_sessions`, else 16.
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Seconds a session may stay idle; default: `[rmcp] idle_timeout_secs`, else 60.
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Seconds a session may take from Open Session to RAKP 3 before it is dropped (and,
    /// when it stopped after RAKP 2, logged as a likely wrong password).
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// How the simulated boards start.
    #[arg(long, value_enum, default_value_t = Start::Closed)]
    start: Start,
    /// FRUs wait in M2 for `picmg activate` (and in M5 for `picmg deactivate`) instead of
    /// the shelf manager activating (deactivating) them at once.
    #[arg(long)]
    manual_activation: bool,
    /// Seed for session ids and RAKP random numbers (default: from the OS). Only for tests.
    #[arg(long)]
    seed: Option<u64>,
    /// Run as an AMF component (one of a redundant pair): serve only while the AMF gives
    /// this process the SI active, keeping the shelf's state in a CKPT checkpoint.
    #[arg(long)]
    amf: bool,
    /// With --amf: the executive's IPC socket (default: $OPENAIS_IPC_SOCKET, else
    /// /run/openais/aisexec.sock).
    #[arg(long, value_name = "PATH", requires = "amf")]
    ais_socket: Option<PathBuf>,
    /// With --amf: the component name to register (default: $SA_AMF_COMPONENT_NAME, which
    /// the executive sets).
    #[arg(long, requires = "amf")]
    component: Option<String>,
    /// A deliberate defect, for the test that proves the bench's check catches a broken
    /// pair (hidden; `none` in every real use).
    #[arg(long, hide = true, value_enum, default_value_t = Defect::None)]
    defect: Defect,
}

/// A deliberate defect of `shelfd --amf` (see `--defect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Defect {
    /// None: the daemon as documented.
    #[default]
    None,
    /// A new active starts a fresh shelf instead of reading the checkpoint.
    FreshState,
    /// The active answers a request before its change is in the checkpoint (the write
    /// waits for the next request).
    LaggingWrite,
}

/// Everything `shelfd` reads and decides before it serves.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The shelf model.
    pub config: Config,
    /// The users.
    pub users: Users,
    /// The RMCP+ server's settings.
    pub server_config: ServerConfig,
    /// Where to listen (a CSI attribute may override it under the AMF).
    pub listen: SocketAddr,
    /// How the simulated boards start on a fresh shelf.
    pub start: Start,
    /// FRUs wait for Set FRU Activation.
    pub manual_activation: bool,
    /// A deliberate defect (tests only).
    pub defect: Defect,
}

impl Prepared {
    /// A fresh shelf with its simulated boards, started as `--start` says.
    pub fn fresh_handler(&self) -> ShelfHandler<SimIpmc> {
        let config = &self.config;
        let mut sim = SimIpmc::new(config);
        for b in &config.board {
            if self.start != Start::Empty {
                sim.insert(&b.name);
            }
        }
        let mut shelf = Shelf::new(config);
        shelf.set_manual_activation(self.manual_activation);
        let mut handler = ShelfHandler::new(config.clone(), shelf, sim, now_ms());
        if self.start == Start::Closed {
            for b in &config.board {
                handler.ipmc_mut().close_handle(&b.name);
                handler.settle();
            }
        }
        handler
    }
}

/// Runs `shelfd` with `args`; errors go to standard error as `shelfd: …` with exit status 1.
pub fn main_with(args: Args) -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init()
        .ok();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shelfd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The wall clock in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn prepare(args: &Args) -> anyhow::Result<Prepared> {
    let text = std::fs::read_to_string(&args.model)
        .with_context(|| format!("{}", args.model.display()))?;
    let config = Config::from_str(&text, &args.model.display().to_string())?;
    let rmcp = config.rmcp.clone();
    let users_path = match (&args.users, &rmcp) {
        (Some(p), _) => p.clone(),
        (None, Some(r)) => relative_to(&args.model, &r.users),
        (None, None) => bail!(
            "no users file: give --users or an [rmcp] users key in {}",
            args.model.display()
        ),
    };
    let users = Users::load(&users_path)?;
    if users.user.is_empty() {
        bail!("{}: no [[user]]: nobody could log in", users_path.display());
    }
    let listen = match (args.listen, &rmcp) {
        (Some(a), _) => a,
        (None, Some(r)) => r.listen.parse()?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 623)),
    };
    let seed = match args.seed {
        Some(s) => s,
        None => {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
            u64::from_le_bytes(b)
        }
    };
    let server_config = ServerConfig {
        max_sessions: args
            .max_sessions
            .or(rmcp.as_ref().map(|r| r.max_sessions))
            .unwrap_or(16)
            .max(1),
        idle_timeout: 1000
            * args
                .idle_timeout
                .or(rmcp.as_ref().map(|r| r.idle_timeout_secs))
                .unwrap_or(60)
                .max(1),
        handshake_timeout: 1000 * args.handshake_timeout.max(1),
        seed,
        ..ServerConfig::default()
    };
    info!(users = %users_path.display(), "users read");
    Ok(Prepared {
        config,
        users,
        server_config,
        listen,
        start: args.start,
        manual_activation: args.manual_activation,
        defect: args.defect,
    })
}

fn run(args: Args) -> anyhow::Result<()> {
    let prepared = prepare(&args)?;
    if args.amf {
        let socket = args
            .ais_socket
            .clone()
            .unwrap_or_else(ais_client::default_socket);
        return crate::replica::component::run(&prepared, &socket, args.component.as_deref());
    }
    let mut handler = prepared.fresh_handler();
    for b in &prepared.config.board {
        let state = handler.shelf().state_of(&b.name);
        info!(board = %b.name, state = ?state, "board");
    }
    let socket =
        UdpSocket::bind(prepared.listen).with_context(|| format!("bind {}", prepared.listen))?;
    let mut server = Server::new(prepared.server_config.clone(), prepared.users.clone());
    info!(
        listen = %prepared.listen,
        max_sessions = prepared.server_config.max_sessions,
        idle_timeout_ms = prepared.server_config.idle_timeout,
        "shelfd listening"
    );
    let never = AtomicBool::new(false);
    serve(&socket, &mut server, &mut handler, &never, |_| Ok(()))
}

/// How long a receive waits before the loop expires sessions and looks at its stop flag.
const RECEIVE_TICK: Duration = Duration::from_millis(50);

/// Answers datagrams on `socket` until `stop` is set (then `Ok`). After every datagram and
/// before its answer goes out, `commit` sees the shelf: an error from it withholds the
/// answer and ends the loop with that error (the redundant pair stores the state there).
///
/// # Errors
/// The socket cannot be set up, or `commit` failed.
pub fn serve(
    socket: &UdpSocket,
    server: &mut Server,
    handler: &mut ShelfHandler<SimIpmc>,
    stop: &AtomicBool,
    mut commit: impl FnMut(&ShelfHandler<SimIpmc>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    socket.set_read_timeout(Some(RECEIVE_TICK))?;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let outcome = server.handle_datagram(now_ms(), from, &buf[..n], handler);
                commit(handler)?;
                // A bridged request's answer from the IPMC follows the reply as a second message.
                for reply in outcome.reply.into_iter().chain(outcome.bridged) {
                    if let Err(e) = socket.send_to(&reply, from) {
                        warn!(peer = %from, error = %e, "send failed");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let _abandoned = server.tick(now_ms());
            }
            Err(e) => warn!(error = %e, "receive failed"),
        }
    }
    Ok(())
}

fn relative_to(model: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    model.parent().unwrap_or(Path::new(".")).join(p)
}
