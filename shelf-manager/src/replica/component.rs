//! `shelfd --amf`: one shelf manager of a redundant pair, an SA-aware AMF component whose
//! state lives in a CKPT checkpoint.
//!
//! The AMF runs two `shelfd` processes 2N (one SU each, on two nodes) and gives one the SI
//! active and the other standby. The CSI carries the attribute `checkpoint` (the checkpoint's
//! name, required) and optionally `listen` (the shelf address, `HOST:PORT`; default
//! `--listen`).
//!
//! | Callback | What `shelfd` does before answering |
//! |---|---|
//! | CSI set, active | reads the checkpoint; rebuilds the shelf from its snapshot ([`super::Snapshot::restore`]) and the simulated boards in the states it holds ([`super::simulated_boards`]), or, when the checkpoint holds none yet, starts a fresh shelf (`--start`) and writes its first snapshot; binds the shelf address and serves |
//! | CSI set, standby | opens the checkpoint; then, every [`STANDBY_REFRESH`], reads it and checks that its snapshot restores, keeping the last one it read (logged when the generation changes) |
//! | CSI set, quiesced or quiescing; CSI remove | stops serving (the address is free when it answers); a remove also closes the checkpoint |
//! | health check | failed once the serving thread stopped on its own (a checkpoint write that failed) |
//! | terminate | as a remove, then exits |
//!
//! **Nothing acknowledged is lost.** The serving thread handles a datagram, then, if the shelf
//! changed, writes the new snapshot (generation + 1) to the checkpoint, and only then sends
//! the answer. The checkpoint is created with `WR_ALL_REPLICAS`: a write returns once it is
//! applied at every node's replica, in safe order, so the standby's node holds every state an
//! IPMI client was told about. A write that fails (after retrying TRY_AGAIN for
//! [`WRITE_RETRY`]) withholds the answer and stops serving; the health check then fails and
//! the AMF recovers (the standby takes over).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ais_client::AisError;
use ais_client::amf::{Amf, Callback, Ha, Invocation};
use ais_client::ckpt::{self, Attributes, CheckpointHandle, Ckpt, ReadElement};
use anyhow::{Context, bail};
use tracing::{debug, info, warn};

use super::{Snapshot, simulated_boards};
use crate::commands::ShelfHandler;
use crate::ipmc::SimIpmc;
use crate::rmcp::server::Server;
use crate::shelfd::{Defect, Prepared, now_ms, serve};

/// The CSI attribute naming the checkpoint that holds the shelf's state.
pub const ATTR_CHECKPOINT: &str = "checkpoint";

/// The CSI attribute naming the shelf address (`HOST:PORT`, UDP).
pub const ATTR_LISTEN: &str = "listen";

/// How often a standby reads the checkpoint.
pub const STANDBY_REFRESH: Duration = Duration::from_millis(100);

/// How long a checkpoint write is tried again while the executive answers TRY_AGAIN (a
/// membership change).
pub const WRITE_RETRY: Duration = Duration::from_secs(5);

/// How long the shelf address is tried while it is still taken or not there yet.
const BIND_RETRY: Duration = Duration::from_secs(2);

/// An open checkpoint.
struct Opened {
    ckpt: Ckpt,
    handle: CheckpointHandle,
}

impl Opened {
    fn open(socket: &Path, name: &str, size: u64) -> anyhow::Result<Opened> {
        let mut ckpt = Ckpt::connect(socket).context("connecting to CKPT")?;
        let attributes = Attributes {
            creation_flags: ckpt::WR_ALL_REPLICAS,
            checkpoint_size: size,
            retention_duration: ckpt::TIME_END,
            max_sections: 1,
            max_section_size: size,
            max_section_id_size: 0,
        };
        let flags = ckpt::OPEN_CREATE | ckpt::OPEN_READ | ckpt::OPEN_WRITE;
        let handle = ckpt
            .open(name.as_bytes(), flags, Some(attributes))
            .with_context(|| format!("opening checkpoint {name:?}"))?;
        Ok(Opened { ckpt, handle })
    }

    /// The snapshot the checkpoint holds, `None` when nothing was written yet.
    fn load(&mut self) -> anyhow::Result<Option<Snapshot>> {
        let read = self.ckpt.read(
            self.handle,
            &[ReadElement {
                section: bytes::Bytes::new(),
                offset: 0,
                size: u64::MAX,
            }],
        );
        let bytes = match read {
            Ok(mut parts) => parts.pop().unwrap_or_default(),
            // The default section never written: offset 0 is past its (empty) end.
            Err(e) if e.ais_error() == Some(AisError::InvalidParam) => return Ok(None),
            Err(e) => bail!("reading the checkpoint: {e}"),
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(Snapshot::decode(&bytes)?))
    }

    /// Writes `snapshot` whole into the default section, retrying TRY_AGAIN.
    fn store(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let data = snapshot.encode();
        let deadline = Instant::now() + WRITE_RETRY;
        let mut pause = Duration::from_micros(200);
        loop {
            match self.ckpt.section_overwrite(self.handle, b"", &data) {
                Err(e)
                    if e.ais_error() == Some(AisError::TryAgain) && Instant::now() < deadline =>
                {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                other => {
                    return other.with_context(|| {
                        format!(
                            "writing generation {} to the checkpoint",
                            snapshot.generation
                        )
                    });
                }
            }
        }
    }
}

/// The active side: a thread serving the shelf address.
struct Serving {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Opened, anyhow::Result<()>)>,
}

impl Serving {
    fn healthy(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops serving; the socket is closed when this returns. Gives the checkpoint back.
    fn stop(self) -> Opened {
        self.stop.store(true, Ordering::Relaxed);
        let (opened, result) = self
            .thread
            .join()
            .expect("the serving thread does not panic");
        if let Err(e) = result {
            warn!(error = format!("{e:#}"), "serving had stopped");
        }
        info!("stopped serving, shelf address closed");
        opened
    }
}

/// What the component holds.
struct Component<'a> {
    prepared: &'a Prepared,
    socket: &'a Path,
    checkpoint: Option<String>,
    listen: SocketAddr,
    /// The checkpoint, open, while not serving (standby, quiesced).
    opened: Option<Opened>,
    serving: Option<Serving>,
    /// The last snapshot a standby read.
    view: Option<Snapshot>,
    /// Times this process became active.
    activations: u64,
}

/// Runs `shelfd --amf` until the executive terminates the component (`Ok`) or goes away.
///
/// # Errors
/// The executive cannot be reached, refuses the registration, or its connection fails.
pub fn run(prepared: &Prepared, socket: &Path, name: Option<&str>) -> anyhow::Result<()> {
    let mut amf = Amf::initialize(socket)
        .with_context(|| format!("connecting to the executive at {}", socket.display()))?;
    amf.register(name).context("registering with the AMF")?;
    let name = amf.name_get().context("component name")?;
    info!(component = %name, socket = %socket.display(), "registered with the AMF");
    let mut comp = Component {
        prepared,
        socket,
        checkpoint: None,
        listen: prepared.listen,
        opened: None,
        serving: None,
        view: None,
        activations: 0,
    };
    loop {
        let cb = amf
            .dispatch(Some(STANDBY_REFRESH))
            .context("the executive's connection")?;
        match cb {
            None => comp.refresh(),
            Some(Callback::CsiSet {
                invocation,
                si,
                csi,
                ha,
                attributes,
            }) => {
                let ok = match comp.set(ha, &attributes) {
                    Ok(()) => {
                        info!(%si, %csi, ha = ha.name(), "CSI set");
                        true
                    }
                    Err(e) => {
                        warn!(%si, %csi, ha = ha.name(), error = format!("{e:#}"), "CSI set failed");
                        false
                    }
                };
                answer(&mut amf, invocation, ok)?;
            }
            Some(Callback::CsiRemove {
                invocation,
                si,
                csi,
            }) => {
                comp.remove();
                info!(%si, %csi, "CSI removed");
                answer(&mut amf, invocation, true)?;
            }
            Some(Callback::Healthcheck { invocation, .. }) => {
                let ok = comp.serving.as_ref().is_none_or(Serving::healthy);
                answer(&mut amf, invocation, ok)?;
            }
            Some(Callback::Terminate { invocation }) => {
                comp.remove();
                info!("terminated");
                answer(&mut amf, invocation, true)?;
                return Ok(());
            }
            Some(other) if other.invocation() != 0 => {
                answer(&mut amf, other.invocation(), true)?;
            }
            Some(_) => {}
        }
    }
}

/// Answers callback `invocation`; a refusal (the invocation timed out) is only logged.
fn answer(amf: &mut Amf, invocation: u64, ok: bool) -> anyhow::Result<()> {
    match amf.response(invocation, ok) {
        Err(e) if e.ais_error().is_some() => {
            warn!(invocation, error = %e, "answer refused");
            Ok(())
        }
        other => Ok(other.context("answering the executive")?),
    }
}

impl Component<'_> {
    fn set(&mut self, ha: Ha, attributes: &[(String, String)]) -> anyhow::Result<()> {
        let attr = |k: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(c) = attr(ATTR_CHECKPOINT) {
            if self.checkpoint.as_ref().is_some_and(|old| *old != c) {
                self.remove();
            }
            self.checkpoint = Some(c);
        }
        if let Some(l) = attr(ATTR_LISTEN) {
            let l: SocketAddr = l
                .parse()
                .with_context(|| format!("CSI attribute {ATTR_LISTEN} = {l:?}"))?;
            if l != self.listen {
                self.stop_serving();
            }
            self.listen = l;
        }
        match ha {
            Ha::Active => {
                if self.serving.is_none() {
                    self.serve()?;
                }
            }
            Ha::Standby => {
                self.stop_serving();
                let opened = self.open()?;
                self.opened = Some(opened);
                self.refresh();
            }
            Ha::Quiesced | Ha::Quiescing => self.stop_serving(),
        }
        Ok(())
    }

    fn open(&mut self) -> anyhow::Result<Opened> {
        if let Some(o) = self.opened.take() {
            return Ok(o);
        }
        let name = self
            .checkpoint
            .clone()
            .with_context(|| format!("the CSI has no {ATTR_CHECKPOINT:?} attribute"))?;
        let size = Snapshot::max_encoded_len(&self.prepared.config) as u64;
        Opened::open(self.socket, &name, size)
    }

    /// Takes the active role: the state from the checkpoint (or a fresh shelf, written
    /// first), the address bound, the serving thread started.
    fn serve(&mut self) -> anyhow::Result<()> {
        let taking_over = Instant::now();
        let mut opened = self.open()?;
        let loaded = match opened.load() {
            Ok(_) if self.prepared.defect == Defect::FreshState => {
                warn!("deliberate defect: the checkpoint's state is ignored");
                None
            }
            Ok(l) => l,
            Err(e) => {
                self.opened = Some(opened);
                return Err(e.context(
                    "the checkpoint's snapshot (remove the checkpoint to start the shelf afresh)",
                ));
            }
        };
        let config = &self.prepared.config;
        let (handler, snapshot) = match loaded {
            Some(snap) => {
                let mut shelf = match snap.restore(config) {
                    Ok(s) => s,
                    Err(e) => {
                        self.opened = Some(opened);
                        return Err(
                            anyhow::Error::new(e).context("restoring the checkpoint's snapshot")
                        );
                    }
                };
                shelf.set_manual_activation(self.prepared.manual_activation);
                let sim = simulated_boards(config, &shelf);
                info!(%snap, "shelf restored from the checkpoint");
                (
                    ShelfHandler::new(config.clone(), shelf, sim, now_ms()),
                    snap,
                )
            }
            None => {
                let handler = self.prepared.fresh_handler();
                let snap = Snapshot::of(handler.shelf(), 1);
                if let Err(e) = opened.store(&snap) {
                    self.opened = Some(opened);
                    return Err(e);
                }
                info!(%snap, "fresh shelf, first snapshot written");
                (handler, snap)
            }
        };
        let socket = match bind(self.listen) {
            Ok(s) => s,
            Err(e) => {
                self.opened = Some(opened);
                return Err(e);
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        // Each time this process becomes active its server draws other session ids and RAKP
        // random numbers than the last time (a new server, not the same sequence again).
        let mut server_config = self.prepared.server_config.clone();
        server_config.seed = server_config
            .seed
            .wrapping_add(self.activations.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.activations += 1;
        let server = Server::new(server_config, self.prepared.users.clone());
        let defect = self.prepared.defect;
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("shelfd-serve".into())
                .spawn(move || serving(socket, server, handler, opened, snapshot, &stop, defect))
                .context("starting the serving thread")?
        };
        info!(
            listen = %self.listen,
            took_us = taking_over.elapsed().as_micros() as u64,
            "active: shelfd listening"
        );
        self.view = None;
        self.serving = Some(Serving { stop, thread });
        Ok(())
    }

    fn stop_serving(&mut self) {
        if let Some(s) = self.serving.take() {
            self.opened = Some(s.stop());
        }
    }

    fn remove(&mut self) {
        self.stop_serving();
        self.view = None;
        if let Some(mut o) = self.opened.take() {
            let _ = o.ckpt.close(o.handle);
        }
    }

    /// A standby's periodic read of the checkpoint.
    fn refresh(&mut self) {
        if self.serving.is_some() {
            return;
        }
        let Some(opened) = self.opened.as_mut() else {
            return;
        };
        match opened.load() {
            Ok(Some(snap)) => {
                if self.view.as_ref().is_some_and(|v| *v == snap) {
                    return;
                }
                match snap.restore(&self.prepared.config) {
                    Ok(_) => {
                        info!(%snap, "standby: shelf state read from the checkpoint");
                        self.view = Some(snap);
                    }
                    Err(e) => {
                        warn!(error = %e, "standby: the checkpoint's snapshot does not restore")
                    }
                }
            }
            Ok(None) => debug!("standby: the checkpoint holds no snapshot yet"),
            Err(e) => warn!(error = format!("{e:#}"), "standby: reading the checkpoint"),
        }
    }
}

/// Binds the shelf address, retrying while it is still taken (the previous active on the
/// same host closing it) or not there yet (a virtual address the AMF's `ip-address`
/// component of the same SU is adding).
fn bind(listen: SocketAddr) -> anyhow::Result<UdpSocket> {
    use std::io::ErrorKind::{AddrInUse, AddrNotAvailable};
    let deadline = Instant::now() + BIND_RETRY;
    loop {
        match UdpSocket::bind(listen) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(e.kind(), AddrInUse | AddrNotAvailable)
                    && Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("binding {listen}"))),
        }
    }
}

/// The serving thread: answers on `socket`, storing every change before its answer.
fn serving(
    socket: UdpSocket,
    mut server: Server,
    mut handler: ShelfHandler<SimIpmc>,
    mut opened: Opened,
    mut last: Snapshot,
    stop: &AtomicBool,
    defect: Defect,
) -> (Opened, anyhow::Result<()>) {
    // With the `lagging-write` defect: the change of one request is written only when the
    // next request comes (after its answer went out).
    let mut unwritten: Option<Snapshot> = None;
    let result = serve(&socket, &mut server, &mut handler, stop, |h| {
        if let Some(u) = unwritten.take() {
            opened.store(&u)?;
        }
        if last.matches(h.shelf()) {
            return Ok(());
        }
        let next = Snapshot::of(h.shelf(), last.generation + 1);
        if defect == Defect::LaggingWrite {
            unwritten = Some(next.clone());
        } else {
            opened.store(&next)?;
            debug!(generation = next.generation, "snapshot written");
        }
        last = next;
        Ok(())
    });
    if let Err(e) = &result {
        warn!(
            error = format!("{e:#}"),
            "serving stops: the answer was withheld"
        );
    }
    (opened, result)
}
