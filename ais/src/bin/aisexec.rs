//! `aisexec`: the per-blade executive. This version runs the Totem ring (membership and
//! ordering) over kernel UDP and logs every configuration change; the client IPC and the AIS
//! services (CPG, EVS, …) come next.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ais::config::Config;
use ais::ringseq::RingSeqFile;
use anyhow::Context;
use clap::Parser;
use dataplane::udp::UdpTransport;
use totem_dpdk::driver::{self, DriverConfig};
use totem_dpdk::srp::{ConfigKind, Event, FlowControl};
use tracing::{debug, error, info, warn};

/// The openais-rs executive: joins this blade to the cluster's Totem ring.
///
/// The configuration file is found in this order: --config, the environment variable
/// OPENAIS_MAIN_CONFIG_FILE, /etc/openais/aisexec.toml (see docs/configuration.md).
/// SIGTERM or SIGINT makes the node leave the ring gracefully (the others report it as left,
/// not failed) and exit.
///
/// This version runs membership and ordering only: there is no client IPC yet.
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = Config::locate(cli.config.as_deref());
    let config = match Config::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aisexec: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match run(&config, &path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("aisexec: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let default = if config.logging.debug {
        "debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let file = config.logging.logfile.as_ref().and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    match file {
        Some(file) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}

fn run(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let nodeid = config.totem.nodeid;
    info!(
        "aisexec {} starting as node {nodeid} with {}",
        env!("CARGO_PKG_VERSION"),
        path.display()
    );
    if config.aisexec.event_log.is_some() {
        warn!("aisexec.event_log is not supported by this version yet; ignored");
    }
    let state_dir = &config.aisexec.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state_dir {}", state_dir.display()))?;
    let mut ring_seq = RingSeqFile::open(state_dir)?;

    let mut totem = config.totem_config();
    totem.ring_seq = ring_seq.load();
    let transport = UdpTransport::new(config.udp_config()).context("opening the Totem socket")?;
    let mut driver_config = DriverConfig::new(totem, config.members());
    driver_config.cpu = config.aisexec.cpu;
    let driver = driver::spawn(transport, driver_config).context("starting the Totem thread")?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let mut leaving = false;
    loop {
        if stop.load(Ordering::Relaxed) && !leaving {
            info!("leaving the ring");
            driver.leave();
            leaving = true;
        }
        match driver.events().recv_timeout(Duration::from_millis(100)) {
            Ok(event) => handle(event, &mut ring_seq),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // The Totem thread ended: after a leave, or because it failed.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let stats = driver.stop()?;
    info!(
        frames_in = stats.frames_in,
        frames_out = stats.frames_out,
        rings = stats.core.rings_installed,
        "stopped"
    );
    if !leaving {
        anyhow::bail!("the Totem thread stopped unexpectedly");
    }
    Ok(())
}

fn handle(event: Event, ring_seq: &mut RingSeqFile) {
    match event {
        Event::ConfigChange(c) => {
            let kind = match c.kind {
                ConfigKind::Regular => "regular",
                ConfigKind::Transitional => "transitional",
            };
            let ids = |v: &[totem_dpdk::NodeId]| {
                v.iter()
                    .map(|n| n.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            info!(
                "{kind} configuration ring={} members=[{}] joined=[{}] left=[{}] failed=[{}]",
                c.ring,
                ids(&c.members),
                ids(&c.joined),
                ids(&c.left),
                ids(&c.failed)
            );
        }
        Event::RingSeq(seq) => {
            if let Err(e) = ring_seq.store(seq) {
                // Not fatal now, but a restart could then reuse a ring id: say so loudly.
                error!("could not persist ring sequence number {seq}: {e}");
            }
        }
        Event::FlowControl(FlowControl::Blocked) => info!("flow control: send queue full"),
        Event::FlowControl(FlowControl::Clear) => info!("flow control: send queue clear"),
        Event::Deliver(d) => {
            debug!(msg = %d.id, ring = %d.ring, len = d.payload.len(), "delivered")
        }
        Event::Observe(_) => {}
    }
}
