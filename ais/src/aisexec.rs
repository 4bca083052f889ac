//! The `aisexec` program: command line, configuration, logging, and the main loop that ties
//! the Totem driver, the IPC server and the services ([`crate::exec`]) together. The `aisexec`
//! binary is [`main`]; `aisctl demo` runs the same code in its child processes.

use crossbeam_channel::RecvTimeoutError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::amf::clc::ClcRunner;
use crate::config::Config;
use crate::config::amf::AmfConfig;
use crate::config::{FrameProtection, TransportKind};
use crate::eventlog::EventLogWriter;
use crate::ringseq::RingSeqFile;
use crate::runtime::clc::ClcDriver;
use crate::runtime::server::{Access, IpcServer, group_id};
use crate::runtime::{Exec, Flow, Input, KeyStore, TotemSink};
use ais_core::exec::ExecCore;
use ais_core::exec::Service;
use ais_core::services::amf::{Amf, Flat};
use ais_core::services::ckpt::Ckpt;
use ais_core::services::clm::{Clm, ClmConfig};
use ais_core::services::evt::Evt;
use ais_core::services::lck::Lck;
use ais_core::services::msg::Msg;
use ais_core::services::shelf::Shelf;
use ais_core::services::{cpg::Cpg, evs::Evs, keys::Keys, quorum::Quorum};
use anyhow::Context;
use clap::Parser;
use dataplane::fault::FaultInjector;
use dataplane::udp::UdpTransport;
use totem_dpdk::crypto::{EpochKey, Protection};
use totem_dpdk::driver::{self, DriverConfig};
use totem_dpdk::srp::Event;
use tracing::{debug, error, info, warn};

/// The openais-rs executive: joins this blade to the cluster's Totem ring and serves the AIS
/// services (CPG, EVS) to local clients.
///
/// The configuration file is found in this order: --config, the environment variable
/// OPENAIS_MAIN_CONFIG_FILE, /etc/openais/aisexec.toml (see docs/configuration.md).
/// Clients connect to the Unix socket aisexec.ipc_socket (root, the user aisexec runs as,
/// and members of aisexec.ipc_group). SIGTERM or SIGINT makes the node leave the ring
/// gracefully (the others report it as left, not failed) and exit.
///
/// Examples:
///   aisexec --config /etc/openais/aisexec.toml
///   aisexec -c node1.toml --event-log /var/log/openais/events.jsonl
///   aisctl status            # from another shell: ring, members, counters
#[derive(Parser, Debug)]
#[command(name = "aisexec", version, verbatim_doc_comment)]
pub struct Cli {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Append every Totem send, delivery and configuration change to FILE in the JSON Lines
    /// event-log format the checker reads (`totem-sim check FILE...`); overrides
    /// aisexec.event_log.
    #[arg(long, value_name = "FILE")]
    pub event_log: Option<PathBuf>,

    /// Tests only: wrap every network's kernel UDP transport in the fault-injecting wrapper and
    /// apply the faults FILE lists (`NETWORK FAULT` lines, read again when it changes; see
    /// `ais::faultfile`). Hidden: it is not a configuration key and copies every received frame.
    #[arg(long, value_name = "FILE", hide = true)]
    pub test_fault_file: Option<PathBuf>,
}

/// Runs the executive with the process's command line.
pub fn main() -> ExitCode {
    run_cli(Cli::parse())
}

/// Runs the executive with a parsed command line; returns the process's exit code.
pub fn run_cli(cli: Cli) -> ExitCode {
    let path = Config::locate(cli.config.as_deref());
    let config = match Config::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aisexec: {e}");
            return ExitCode::from(2);
        }
    };
    // The AMF model, when the configuration names one, must be valid before anything starts.
    let amf = match config.amf.as_ref().map(|a| AmfConfig::from_file(&a.model)) {
        Some(Err(e)) => {
            eprintln!("aisexec: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(amf)) => Some(amf),
        None => None,
    };
    init_logging(&config);
    if let Some(amf) = &amf {
        for w in &amf.warnings {
            warn!("AMF model: {w}");
        }
        info!(
            "AMF model: {} applications, {} nodes",
            amf.model.apps.len(),
            amf.model.nodes.len()
        );
    }
    match run(
        &config,
        &path,
        cli.event_log.as_deref(),
        cli.test_fault_file,
        amf,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("aisexec: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The longest the executive's loop waits for input before it ticks the services anyway, ms.
pub const TICK_MS: u64 = 10;

/// The shortest wait of the executive's loop for a service's timer.
const TIMER_FLOOR: Duration = Duration::from_micros(200);

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

/// Message numbers are leased from `<state_dir>/msgno` in blocks, so a restarted node
/// continues above every number it may have used (message ids stay unique, restarts included).
const MSGNO_LEASE: u64 = 1 << 32;
/// Nonce counters are leased the same way from `<state_dir>/nonce`: a nonce never repeats under
/// one key, restarts included. The lease is extended when half of it is used, from the Totem
/// thread's status (at most `STATUS_INTERVAL` old), long before the rest runs out.
const NONCE_LEASE: u64 = 1 << 32;

fn run(
    config: &Config,
    path: &Path,
    event_log: Option<&Path>,
    fault_file: Option<PathBuf>,
    amf: Option<AmfConfig>,
) -> anyhow::Result<()> {
    let nodeid = config.totem.nodeid;
    info!(
        "aisexec {} starting as node {nodeid} with {}",
        env!("CARGO_PKG_VERSION"),
        path.display()
    );
    // Freed buffers stay with the process for the next burst instead of being unmapped and
    // faulted in again (dataplane::heap).
    if !dataplane::heap::keep_freed_memory(dataplane::heap::HeapSettings::default()) {
        debug!("the C library's allocator keeps its own thresholds (not glibc)");
    }
    if config.unpinned_busy_poll() {
        warn!(
            "dpdk.busy_poll is on but aisexec.cpu is not set: the Totem thread will take a whole \
             core wherever the scheduler puts it, competing with this executive's other threads \
             and the applications; give it a core of its own with aisexec.cpu (docs/dpdk.md)"
        );
    }
    let state_dir = &config.aisexec.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state_dir {}", state_dir.display()))?;
    let mut ring_seq = RingSeqFile::open(state_dir)?;
    let mut msgno = RingSeqFile::open_named(state_dir, "msgno")?;
    let first_msg_no = msgno.load().max(1);
    let mut leased = first_msg_no + MSGNO_LEASE;
    msgno.store(leased)?;

    let protection = config.protection();
    let key = if protection.needs_key() {
        let path = &config.totem.keyfile;
        let material = crate::keyfile::read(path)?;
        let key = EpochKey::new(material.epoch, material.secret)
            .with_context(|| format!("key file {}", path.display()))?;
        info!(
            "frames are {} with key epoch {} (fingerprint {}) from {}",
            if protection == FrameProtection::Encrypt {
                "encrypted (AES-256-GCM)"
            } else {
                "authenticated (AES-256-GCM, crypto_cipher = \"none\": payload in clear)"
            },
            key.epoch(),
            key.fingerprint(),
            path.display()
        );
        Some(key)
    } else {
        warn!(
            "secauth = false: frames are neither authenticated nor encrypted; anyone on the network can inject them"
        );
        None
    };
    let mut nonce = RingSeqFile::open_named(state_dir, "nonce")?;
    let nonce_start = nonce.load();
    let mut nonce_leased = nonce_start + NONCE_LEASE;
    nonce.store(nonce_leased)?;

    let event_log_path = event_log.or(config.aisexec.event_log.as_deref());
    let event_log = match event_log_path {
        Some(p) => {
            let w = EventLogWriter::open(p, totem_dpdk::NodeId(nodeid))
                .with_context(|| format!("opening the event log {}", p.display()))?;
            info!("writing the event log to {}", p.display());
            Some(w)
        }
        None => None,
    };

    // The shelf's credentials are checked before this node joins the ring.
    let watch = match &config.hpi {
        Some(h) => Some(crate::shelfwatch::Watch::new(
            h,
            config.aisexec.ipc_socket.clone(),
        )?),
        None => None,
    };

    let access = Access {
        own_uid: own_uid(state_dir)?,
        group: match &config.aisexec.ipc_group {
            Some(name) => Some((
                name.clone(),
                group_id(name).with_context(|| format!("aisexec.ipc_group = {name:?}"))?,
            )),
            None => None,
        },
    };

    let mut totem = config.totem_config();
    totem.ring_seq = ring_seq.load();
    totem.first_msg_no = first_msg_no;
    totem.observe = event_log.is_some();
    totem.protection = match protection {
        FrameProtection::Integrity => Protection::Integrity,
        FrameProtection::Authenticate => Protection::Authenticate,
        FrameProtection::Encrypt => Protection::Encrypt,
    };
    totem.key = key.clone();
    totem.nonce_start = nonce_start;
    let driver_config = config.driver_config(totem);
    let networks = config.networks();

    let (tx, rx) = crossbeam_channel::unbounded::<Input>();
    let sink = TotemSink(tx.clone());
    let kinds: Vec<TransportKind> = (0..networks).map(|k| config.transport_on(k)).collect();
    if networks > 1 {
        let names: Vec<String> = kinds
            .iter()
            .enumerate()
            .map(|(k, t)| format!("{k} {t}"))
            .collect();
        info!(
            "redundant rings: {networks} networks ({}), rrp_mode = \"{}\"",
            names.join(", "),
            config.totem.rrp_mode
        );
    }
    let dpdk_networks = kinds.contains(&TransportKind::Dpdk);
    if dpdk_networks && fault_file.is_some() {
        anyhow::bail!("--test-fault-file works with the kernel UDP transports only");
    }
    let driver = if networks == 1 && dpdk_networks {
        spawn_dpdk(config, driver_config, sink)?
    } else if dpdk_networks {
        // A node mixing DPDK and kernel UDP networks, or DPDK on several: one type over both.
        let transports = mixed_transports(config, &driver_config)?;
        driver::spawn_networks(transports, driver_config, sink)
            .context("starting the Totem thread")?
    } else {
        let mut transports = Vec::with_capacity(networks);
        for k in 0..networks {
            transports.push(udp_transport(config, k)?);
        }
        match fault_file {
            Some(file) => {
                let me = dataplane::NodeId(nodeid);
                let wrapped: Vec<_> = transports
                    .into_iter()
                    .zip(0u64..)
                    .map(|(t, k)| FaultInjector::new(t, me, u64::from(nodeid) << 8 | k))
                    .collect();
                crate::faultfile::watch(file, wrapped.iter().map(FaultInjector::control).collect())
                    .context("starting the fault-file thread")?;
                driver::spawn_networks(wrapped, driver_config, sink)
            }
            None => driver::spawn_networks(transports, driver_config, sink),
        }
        .context("starting the Totem thread")?
    };
    let server = IpcServer::start(
        &config.aisexec.ipc_socket,
        access,
        config.aisexec.ipc_transport == crate::config::IpcTransport::Shm,
        tx.clone(),
    )
    .with_context(|| {
        format!(
            "opening the IPC socket {}",
            config.aisexec.ipc_socket.display()
        )
    })?;
    // The services, synchronised in this order after every membership change.
    let clm = clm_identity(config);
    info!(
        "clm: this node is {:?} at {}",
        String::from_utf8_lossy(&clm.name),
        clm.address
    );
    let mut services: Vec<Box<dyn Service + Send>> = vec![
        Box::new(Cpg::new()),
        Box::new(Evs::new()),
        Box::new(Clm::new(clm)),
        Box::new(Keys::new(key)),
    ];
    if let Some(q) = config.quorum_config() {
        info!(
            "quorum: {} vote(s) of {} expected{}{}",
            q.votes,
            q.expected_votes,
            if q.two_node { ", two_node" } else { "" },
            if q.wait_for_all { ", wait_for_all" } else { "" }
        );
        services.push(Box::new(Quorum::new(q)));
    }
    // AMF after quorum: it assigns only while this node's partition is quorate.
    let mut clc = None;
    if let (Some(amf), Some(cfg)) = (amf, config.amf_core_config()) {
        let flat = Flat::new(amf.model);
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let runner = ClcRunner::new(ev_tx).context("starting the AMF's CLC runner")?;
        // The runner reports on its own channel: forward it into the executive's queue,
        // which wakes its loop.
        let queue = tx.clone();
        std::thread::Builder::new()
            .name("clc-events".into())
            .spawn(move || {
                while let Ok(ev) = ev_rx.recv() {
                    if queue.send(Input::Clc(ev)).is_err() {
                        break;
                    }
                }
            })
            .context("starting the CLC event thread")?;
        info!(
            "amf: {} SUs, {} SIs; fence delay {} ms{}",
            flat.sus.len(),
            flat.sis.len(),
            cfg.fence_ms,
            if cfg.two_node {
                ", two_node (the lower node id serves when the two are apart)"
            } else {
                ""
            }
        );
        let node_name = flat
            .model
            .nodes
            .iter()
            .find(|n| n.nodeid == nodeid)
            .map_or_else(|| format!("node{nodeid}"), |n| n.name.clone());
        clc = Some(ClcDriver::new(runner, &flat, node_name));
        services.push(Box::new(Amf::new(flat, totem_dpdk::NodeId(nodeid), cfg)));
    }
    let ckpt = config.ckpt_config();
    info!(
        "ckpt: up to {} MiB of checkpoint data{}",
        ckpt.max_memory >> 20,
        if ckpt.writes_need_quorum {
            "; changes only while quorate"
        } else {
            ""
        }
    );
    services.push(Box::new(Ckpt::new(ckpt)));
    let evt = config.evt_config();
    info!(
        "evt: up to {} channels and {} retained events; {} deliveries in flight and {} queued per client",
        evt.max_channels, evt.max_retained, evt.delivery_window, evt.delivery_queue
    );
    services.push(Box::new(Evt::new(evt)));
    let msg = config.msg_config();
    info!(
        "msg: up to {} queues, {} MiB of messages",
        msg.max_queues,
        msg.max_memory >> 20
    );
    services.push(Box::new(Msg::new(msg)));
    let lck = config.lck_config();
    info!(
        "lck: up to {} resources and {} locks in the cluster",
        lck.max_resources, lck.max_locks
    );
    services.push(Box::new(Lck::new(lck)));
    // Shelf events: every node runs the service (it accepts what the watchers submit);
    // with [hpi] this node watches the shelf too.
    let (shelf_tx, shelf_rx) = crossbeam_channel::unbounded();
    let shelf_observer = crate::shelfwatch::LogAccepted {
        slot: config.hpi.as_ref().and_then(|h| h.slot),
        lines: event_log.is_some().then_some(shelf_tx),
    };
    services.push(Box::new(
        Shelf::new(config.shelf_config()).with_observer(Box::new(shelf_observer)),
    ));
    let core = ExecCore::new(totem_dpdk::NodeId(nodeid), services);
    let keys = KeyStore {
        path: config.totem.keyfile.clone(),
    };
    let mut exec = Exec::new(core, driver.submitter(), tx, Some(keys), event_log);
    exec.set_outbox_packets(config.aisexec.ipc_outbox_packets);
    exec.log_shelf_events(shelf_rx);
    if let Some(d) = clc {
        exec.run_clc(d);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let watcher = match watch {
        Some(w) => Some(
            w.spawn(Arc::clone(&stop))
                .context("starting the HPI thread")?,
        ),
        None => None,
    };

    let mut leaving = false;
    let mut ended = false;
    let mut lease_checked = std::time::Instant::now();
    while !ended {
        if stop.load(Ordering::Relaxed) && !leaving {
            info!("leaving the ring");
            driver.leave();
            leaving = true;
        }
        // Ticks at least every TICK_MS, and when a service's timer is due (the AMF's
        // self-fence and fence delay; ais/src/config/lower.rs): no sooner than TIMER_FLOOR
        // after the last tick, so a timer a tick did not clear cannot spin the loop.
        let wait = exec
            .next_timer()
            .map_or(Duration::from_millis(TICK_MS), |t| {
                t.clamp(TIMER_FLOOR, Duration::from_millis(TICK_MS))
            });
        let first = match rx.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // A batch: the first input and whatever else is already queued.
        let mut next = first;
        let mut n = 0;
        while let Some(input) = next {
            match &input {
                Input::Totem(Event::RingSeq(seq), _) => {
                    if let Err(e) = ring_seq.store(*seq) {
                        // Not fatal now, but a restart could then reuse a ring id: say so.
                        error!("could not persist ring sequence number {seq}: {e}");
                    }
                }
                Input::Submitted { result: Ok(id), .. } if id.no + MSGNO_LEASE / 2 >= leased => {
                    leased = id.no + MSGNO_LEASE;
                    if let Err(e) = msgno.store(leased) {
                        error!("could not extend the message number lease: {e}");
                    }
                }
                Input::BatchSubmitted { accepted, .. }
                    if accepted
                        .last()
                        .is_some_and(|id| id.no + MSGNO_LEASE / 2 >= leased) =>
                {
                    let last = accepted.last().map_or(0, |id| id.no);
                    leased = last + MSGNO_LEASE;
                    if let Err(e) = msgno.store(leased) {
                        error!("could not extend the message number lease: {e}");
                    }
                }
                _ => {}
            }
            if exec.handle(input) == Flow::Stop {
                ended = true;
                break;
            }
            n += 1;
            // A batch ends early when an outbox crossed the high-water mark, so that the
            // flow control holds the senders before the outbox fills (Exec::tick_due).
            next = if n < 4096 && !exec.tick_due() {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        exec.tick();
        // The driver's snapshot changes at most every STATUS_INTERVAL: read it no more often.
        if lease_checked.elapsed() < driver::STATUS_INTERVAL {
            continue;
        }
        lease_checked = std::time::Instant::now();
        let next_nonce = driver.status().stats.core.next_nonce;
        if next_nonce + NONCE_LEASE / 2 >= nonce_leased {
            nonce_leased = next_nonce + NONCE_LEASE;
            if let Err(e) = nonce.store(nonce_leased) {
                error!("could not extend the nonce lease: {e}");
            }
        }
    }
    drop(server);
    if let Some(w) = watcher {
        stop.store(true, Ordering::Relaxed);
        let _ = w.join();
    }
    exec.tick();
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

/// Starts the Totem thread on the DPDK port of `[dpdk]`.
#[cfg(feature = "dpdk")]
fn spawn_dpdk(
    config: &Config,
    driver_config: DriverConfig,
    sink: TotemSink,
) -> anyhow::Result<driver::Driver> {
    let transport = dpdk_transport(config, 0, &driver_config)?;
    driver::spawn_with(transport, driver_config, sink).context("starting the Totem thread")
}

/// The kernel UDP transport of network `k` (multicast or unicast, as configured).
fn udp_transport(config: &Config, k: usize) -> anyhow::Result<UdpTransport> {
    let c = config.udp_config_on(k);
    let bind = c.bind;
    UdpTransport::new(c).with_context(|| {
        if config.networks() > 1 {
            format!("opening the Totem socket of network {k} ({bind})")
        } else {
            "opening the Totem socket".to_owned()
        }
    })
}

/// The DPDK transport on network `k`'s port (`[dpdk] port` or its `dpdk_port`), after EAL's
/// initialisation from `[dpdk] eal_args` (once per process: every network's `--vdev` is in
/// those arguments).
#[cfg(feature = "dpdk")]
fn dpdk_transport(
    config: &Config,
    k: usize,
    driver_config: &DriverConfig,
) -> anyhow::Result<dataplane::dpdk::DpdkTransport> {
    use dataplane::dpdk::{self, DpdkConfig, DpdkTransport};
    let d = &config.dpdk;
    dpdk::init_eal(&d.eal_args).context("initialising DPDK's EAL from [dpdk] eal_args")?;
    let name = config.dpdk_port_on(k);
    let key = if k == 0 {
        "[dpdk] port".to_owned()
    } else {
        format!("network {k}'s dpdk_port")
    };
    let port = dpdk::port_by_name(name).with_context(|| {
        format!("{key} {name:?}: no such DPDK port (is its --vdev in eal_args?)")
    })?;
    let mut c = DpdkConfig::new(
        d.eal_args.clone(),
        port,
        dataplane::NodeId(config.totem.nodeid),
    );
    c.mtu = driver_config.totem.max_frame_size;
    c.busy_poll = d.busy_poll;
    c.max_backoff = std::time::Duration::from_micros(d.max_backoff_us);
    c.mbufs = d.mbufs;
    c.min_data_room = d.min_data_room;
    let transport =
        DpdkTransport::new(c).with_context(|| format!("opening the DPDK port {name}"))?;
    info!(
        "Totem runs on DPDK port {name} ({}), {}{}",
        dpdk::runtime_version(),
        if d.busy_poll {
            "busy polling"
        } else {
            "adaptive polling"
        },
        if config.networks() > 1 {
            format!(" (network {k})")
        } else {
            String::new()
        }
    );
    Ok(transport)
}

/// One transport per network for a node with a DPDK network among several: each network's
/// own backend behind [`dataplane::any::AnyTransport`].
#[cfg(feature = "dpdk")]
fn mixed_transports(
    config: &Config,
    driver_config: &DriverConfig,
) -> anyhow::Result<Vec<dataplane::any::AnyTransport>> {
    (0..config.networks())
        .map(|k| {
            Ok(if config.transport_on(k) == TransportKind::Dpdk {
                dpdk_transport(config, k, driver_config)?.into()
            } else {
                udp_transport(config, k)?.into()
            })
        })
        .collect()
}

/// Without the `dpdk` feature there is no DPDK transport.
#[cfg(not(feature = "dpdk"))]
fn mixed_transports(
    _config: &Config,
    _driver_config: &DriverConfig,
) -> anyhow::Result<Vec<dataplane::any::AnyTransport>> {
    anyhow::bail!(
        "a network has transport \"dpdk\", but this aisexec was built without DPDK support; rebuild with `cargo build --release --features ais/dpdk` (needs the Debian packages dpdk-dev and libdpdk-dev)"
    )
}

/// Without the `dpdk` feature there is no DPDK transport.
#[cfg(not(feature = "dpdk"))]
fn spawn_dpdk(
    _config: &Config,
    _driver_config: DriverConfig,
    _sink: TotemSink,
) -> anyhow::Result<driver::Driver> {
    anyhow::bail!(
        "totem.transport = \"dpdk\", but this aisexec was built without DPDK support; rebuild with `cargo build --release --features ais/dpdk` (needs the Debian packages dpdk-dev and libdpdk-dev)"
    )
}

/// The user id this process runs as: the owner of a file it just created.
fn own_uid(state_dir: &Path) -> anyhow::Result<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let probe = state_dir.join(".uid-probe");
    std::fs::write(&probe, b"")
        .with_context(|| format!("writing in state_dir {}", state_dir.display()))?;
    let uid = std::fs::metadata(&probe)?.uid();
    let _ = std::fs::remove_file(&probe);
    Ok(uid)
}

/// What CLM says of this node: the host name (`/proc/sys/kernel/hostname`), the address of
/// its `[[nodelist.node]]` entry or `totem.interface.bindnetaddr` (none for a DPDK ring), and
/// its boot time (now minus `/proc/uptime`, as openais did).
fn clm_identity(config: &Config) -> ClmConfig {
    use ais_proto::clm::NodeAddress;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let name = if name.is_empty() {
        format!("node{}", config.totem.nodeid)
    } else {
        name
    };
    let address = if config.totem.transport == TransportKind::Dpdk {
        NodeAddress::None
    } else {
        match config
            .this_node()
            .map(|n| n.ring0_addr)
            .or(config.totem.interface.bindnetaddr)
        {
            Some(std::net::IpAddr::V4(a)) => NodeAddress::V4(a.octets()),
            Some(std::net::IpAddr::V6(a)) => NodeAddress::V6(a.octets()),
            None => NodeAddress::None,
        }
    };
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let boot = now.saturating_sub(std::time::Duration::from_secs_f64(uptime.max(0.0)));
    ClmConfig {
        name: bytes::Bytes::from(name),
        address,
        boot_timestamp: u64::try_from(boot.as_nanos()).unwrap_or(u64::MAX),
    }
}
