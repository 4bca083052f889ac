//! `shelfd`: the shelf manager daemon. Runs a shelf model with simulated boards and answers
//! system managers over RMCP+ (IPMI 2.0 LAN) on UDP.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use tracing::{info, warn};

use shelf_manager::commands::ShelfHandler;
use shelf_manager::ipmc::SimIpmc;
use shelf_manager::model::Config;
use shelf_manager::rmcp::server::{Server, ServerConfig};
use shelf_manager::rmcp::users::Users;
use shelf_manager::shelf::Shelf;

/// How the simulated boards start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Start {
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
/// Boards are FRU device ids 1, 2, … in model order (0 is the shelf manager itself), so
/// `picmg activate 2` acts on the second `[[board]]`. Logs go to stderr (RUST_LOG sets the
/// level, default info); every refused packet or command is logged at warn with its reason.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
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
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("shelfd: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
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
    let mut sim = SimIpmc::new(&config);
    for b in &config.board {
        if args.start != Start::Empty {
            sim.insert(&b.name);
        }
    }
    let mut shelf = Shelf::new(&config);
    shelf.set_manual_activation(args.manual_activation);
    let mut handler = ShelfHandler::new(config.clone(), shelf, sim, now_ms());
    if args.start == Start::Closed {
        for b in &config.board {
            handler.ipmc_mut().close_handle(&b.name);
            handler.settle();
        }
    }
    for b in &config.board {
        let state = handler.shelf().state_of(&b.name);
        info!(board = %b.name, state = ?state, "board");
    }
    let mut server = Server::new(server_config.clone(), users);
    let socket = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    socket.set_read_timeout(Some(Duration::from_millis(500)))?;
    info!(
        %listen,
        users = %users_path.display(),
        max_sessions = server_config.max_sessions,
        idle_timeout_ms = server_config.idle_timeout,
        "shelfd listening"
    );
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let outcome = server.handle_datagram(now_ms(), from, &buf[..n], &mut handler);
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
}

fn relative_to(model: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    model.parent().unwrap_or(Path::new(".")).join(p)
}
