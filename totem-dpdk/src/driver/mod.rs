//! The Totem driver: runs the sans-IO core ([`srp::Totem`]) on a [`dataplane::Transport`]
//! with the real clock, on a thread of its own (`totem-<node id>`, optionally pinned to a CPU).
//!
//! The thread owns the core and the transport. Other threads talk to it only through channels:
//! - **submits** go through a bounded request queue ([`REQUEST_QUEUE`] entries) and each
//!   waits for the core's answer on a reply channel of its own, so [`Driver::submit`] is
//!   synchronous and returns exactly what [`srp::Totem::submit`] returned:
//!   [`srp::SubmitError::Backpressure`] reaches the caller (the AIS client's TRY_AGAIN), a
//!   message is never dropped silently; [`Submitter::try_submit_with`] queues without
//!   waiting and has the answer delivered to a callback on the driver thread (the AIS
//!   executive's path: its thread never blocks on Totem);
//! - **events** (deliveries, configuration changes, flow control, ring sequence numbers) go
//!   out through an unbounded channel, [`Driver::events`]: the driver thread never blocks on
//!   a slow consumer, so the consumer must keep reading or memory grows;
//!   [`spawn_with`] sends them to an [`EventSink`] of the caller's instead;
//! - **status**: a [`DriverStatus`] snapshot (membership state, ring, counters) refreshed
//!   every [`STATUS_INTERVAL`] and on every state change, read with [`Driver::status`];
//! - **stop and leave** are flags the thread checks on every loop iteration.
//!
//! The queues are `crossbeam-channel`'s: the request queue is its bounded array ring (a
//! submit is a lock-free push; the driver thread pops without locks or system calls while it
//! polls), the events channel its unbounded linked list of blocks. (Since Rust 1.67 the
//! standard library's `mpsc` runs the same algorithms; naming the crate keeps the choice
//! explicit and gives `select!` to the consumers.)
//!
//! [`srp::Event::RingSeq`] must be persisted, but never on the driver thread (a disk write
//! there stalls the token): it is forwarded in the events channel like every other event, and
//! **the caller persists it** (on its persistence thread) and passes the highest persisted
//! value as [`srp::Config::ring_seq`] after a restart.
//!
//! # The loop
//! One iteration: take up to [`SUBMIT_BATCH`] submit requests into the core; receive bursts
//! of frames (up to [`RX_BURSTS`] bursts) into [`srp::Totem::handle_frame`]; call
//! [`srp::Totem::handle_timeout`] when its deadline has passed (a deadline in the past means
//! "now"); after each of these inputs, queue the core's transmits on the transport; flush;
//! forward the events; then, when nothing was received, [`Transport::wait`] until the core's
//! next deadline but at most [`DriverConfig::idle_wait`], so submits from other threads are
//! picked up promptly. The core's clock is the time elapsed since the thread started, in
//! nanoseconds.
//!
//! Transport errors never stop the loop or panic: a refused frame is counted in
//! [`DriverStats::send_errors`] (Totem retransmits what is lost), other I/O errors in
//! [`DriverStats::io_errors`].
//!
//! # Redundant networks
//! [`spawn_networks`] runs the core over one transport per network (1 to
//! [`crate::rrp::MAX_NETWORKS`]), with the redundant-ring layer ([`crate::rrp::Rrp`]) between
//! them and the core as its calling contract says: every transmit goes out on the networks
//! [`crate::rrp::Rrp::networks_for`] names, every received frame goes through
//! [`crate::rrp::Rrp::handle_frame`] with the index of the transport it came from and reaches
//! the core only as a first copy, the layer's timers run with the core's, and its events (a
//! network marked faulty or restored) go to [`EventSink::network`] and the status. The loop
//! waits on every network at once (`Transport::wait_fds`, or short waits when a transport
//! cannot say what it waits for). Frames carry a network tag so that nodes listing other
//! networks, or the same in another order, are told apart and refused (see `networks`). With
//! one network ([`spawn`], [`spawn_with`]) none of this runs: the loop takes the same path as
//! before redundant rings existed.
//!
//! The loop itself is in `run`; the status snapshots, counters and rate-limited logs of
//! refused frames and process pauses are in `diagnostics`; the network tag, the network events
//! and the per-network status in `networks`.

mod diagnostics;
mod networks;
mod run;

use crossbeam_channel::{self as channel, Receiver, Sender, TrySendError};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration as StdDuration;

use bytes::Bytes;
use dataplane::{Member, MembersError, Transport};

use self::diagnostics::Diagnostics;
pub use self::diagnostics::{DIAG_INTERVAL, DriverStats, DriverStatus};
pub use self::networks::{
    Mismatch, NET_NAMES, NetworkEvent, NetworkStatus, TAG_LEN, TAG_MAGIC, fuzz_receive,
};
use self::run::{Clock, Loop, Networks};
use crate::rrp::{Rrp, RrpAdminError, RrpConfig, RrpConfigError, RrpMode};
use crate::srp::{self, Event, SubmitError, Totem};
use crate::types::{DeliveryKind, MsgId, Priority, RingId};

/// Capacity of the submit request queue. A submit beyond it blocks until the driver thread
/// takes requests (within one loop iteration).
pub const REQUEST_QUEUE: usize = 1024;
/// Most submit requests taken per loop iteration, so a flood of submits cannot delay the
/// token.
pub const SUBMIT_BATCH: usize = 256;
/// Most receive bursts per loop iteration before timers are checked again.
pub const RX_BURSTS: usize = 8;
/// How often the driver thread refreshes [`Driver::status`] when nothing changes.
pub const STATUS_INTERVAL: StdDuration = StdDuration::from_millis(100);
/// The longest sleep of a driver whose transport has a waker (see [`Transport::waker`]).
pub const WOKEN_IDLE_WAIT: StdDuration = StdDuration::from_millis(50);

/// Configuration of a [`Driver`].
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The core's configuration (node id, timers, flow control).
    pub totem: srp::Config,
    /// Pin the driver thread to this CPU (`None`: let the scheduler place it).
    pub cpu: Option<usize>,
    /// Give the driver thread this nice value (-20..=19; `None`: it keeps the one it was
    /// started with). A lower value than the executive's other threads lets the token go on
    /// when the machine's cores are busy. When the kernel refuses (no `CAP_SYS_NICE`), the
    /// driver logs a warning and runs at the value it has.
    pub nice: Option<i32>,
    /// The address of each node id, given to [`Transport::set_members`] (this node
    /// included).
    pub members: Vec<Member>,
    /// The longest [`Transport::wait`] when idle, for transports without a waker (default
    /// 1 ms): a submit from another thread waits at most this long before the driver thread
    /// takes it. Transports with a waker (kernel UDP) wake the thread at once instead.
    pub idle_wait: StdDuration,
    /// The redundant-ring layer: how many networks (one transport each, given to
    /// [`spawn_networks`]), the mode and the fault detection. Default: one network (the layer
    /// does not run). With more than one, the core's largest frame is made [`TAG_LEN`] bytes
    /// smaller than `totem.max_frame_size` for the network tag.
    pub rrp: RrpConfig,
    /// The member addresses on networks 1, 2, 3 (`members` are network 0's), one list per
    /// network; empty: every network uses `members` (transports whose addresses are node ids,
    /// such as the in-memory network).
    pub more_members: Vec<Vec<Member>>,
}

impl DriverConfig {
    /// The default idle wait: 1 ms.
    pub const DEFAULT_IDLE_WAIT: StdDuration = StdDuration::from_millis(1);

    /// A configuration for `totem` over `members`, unpinned, with the default idle wait.
    pub fn new(totem: srp::Config, members: Vec<Member>) -> DriverConfig {
        DriverConfig {
            totem,
            cpu: None,
            nice: None,
            members,
            idle_wait: Self::DEFAULT_IDLE_WAIT,
            rrp: RrpConfig::new(1, RrpMode::Active),
            more_members: Vec::new(),
        }
    }
}

/// Why the driver could not start, or ended abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The core's configuration is invalid.
    #[error("invalid Totem configuration")]
    Config(#[from] srp::ConfigError),
    /// The transport refused the member list.
    #[error("the transport refused the member list")]
    Members(#[from] MembersError),
    /// The driver thread could not be pinned to the configured CPU.
    #[error("cannot pin the Totem driver thread")]
    Affinity(#[from] dataplane::affinity::AffinityError),
    /// The configured nice value is outside -20..=19.
    #[error("invalid nice value for the Totem driver thread")]
    Nice(#[source] dataplane::affinity::NiceError),
    /// The operating system could not start the thread.
    #[error("cannot start the Totem driver thread")]
    Spawn(#[source] io::Error),
    /// The driver thread panicked.
    #[error("the Totem driver thread panicked")]
    Panicked,
    /// The redundant-ring configuration is invalid.
    #[error("invalid redundant-ring configuration")]
    Rrp(#[from] RrpConfigError),
    /// The number of transports or of member lists is not the number of networks.
    #[error(
        "{networks} networks configured, but {transports} transports and {lists} member lists given"
    )]
    Networks {
        /// `rrp.networks`.
        networks: usize,
        /// Transports given.
        transports: usize,
        /// Member lists (`members` and `more_members`, or `members` for every network).
        lists: usize,
    },
}

/// Why [`Submitter::set_network`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkControlError {
    /// The redundant-ring layer refused (no such network, or the last one in use).
    #[error(transparent)]
    Refused(#[from] RrpAdminError),
    /// The driver thread has stopped, or did not answer within a second.
    #[error("the Totem driver did not answer")]
    Stopped,
}

/// Why [`Driver::submit`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverSubmitError {
    /// The core refused the message (backpressure: try again later; or too large).
    #[error(transparent)]
    Core(#[from] SubmitError),
    /// The driver thread has stopped (stopped, left, or panicked): nothing was queued.
    #[error("the Totem driver has stopped")]
    Stopped,
}

/// Called on the driver thread with the core's answer to an asynchronous submit.
pub type SubmitCallback = Box<dyn FnOnce(Result<MsgId, SubmitError>) + Send>;

enum Reply {
    Wait(Sender<Result<MsgId, SubmitError>>),
    Call(SubmitCallback),
}

/// A closure run on the driver thread with the core (key installation and other rare
/// control operations), in order with the submits.
pub type CoreCall = Box<dyn FnOnce(&mut Totem) + Send>;

enum Request {
    Submit(SubmitRequest),
    Core(CoreCall),
    Network {
        net: u8,
        enabled: bool,
        reply: Sender<Result<(), RrpAdminError>>,
    },
}

struct SubmitRequest {
    prio: Priority,
    kind: DeliveryKind,
    payload: Bytes,
    reply: Reply,
}

/// Why [`Submitter::try_submit_with`] did not queue a message. Nothing was queued and the
/// callback will not be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySubmitError {
    /// The request queue ([`REQUEST_QUEUE`] entries) is full: the driver thread is behind.
    #[error("the Totem request queue is full")]
    QueueFull,
    /// The driver thread has stopped.
    #[error("the Totem driver has stopped")]
    Stopped,
}

/// Where the driver thread sends the core's events, in order. A [`Sender<Event>`] is one
/// (that is what [`spawn`] uses); the AIS executive uses its own to merge Totem events into
/// its input queue.
pub trait EventSink: Send + 'static {
    /// One event. Called on the driver thread: must not block.
    fn event(&mut self, event: Event);
    /// Something happened to one of the networks (more than one network only, and the
    /// operator's commands). Called on the driver thread: must not block. The default
    /// ignores it (the status shows every network's state).
    fn network(&mut self, event: NetworkEvent) {
        let _ = event;
    }
    /// The driver thread is ending: no more events will come.
    fn closed(&mut self) {}
    /// The caller's own work, run on the driver thread with the core once per loop
    /// iteration, after that iteration's events were forwarded (run to completion: a
    /// consumer that reacts to deliveries by submitting does it here, without a hand-over to
    /// another thread). Events the core emits meanwhile are forwarded, and `run` is called
    /// again, before the thread sleeps; so is it after [`Submitter::notify`]. Returns the
    /// longest the thread may then sleep before calling it again (`None`: no limit of the
    /// caller's). Called on the driver thread: must not block. The default does nothing.
    fn run(&mut self, core: &mut Totem) -> Option<StdDuration> {
        let _ = core;
        None
    }
}

impl EventSink for Sender<Event> {
    fn event(&mut self, event: Event) {
        // The receiver lives in the `Driver`; once it is gone nobody wants the events.
        let _ = self.send(event);
    }
}

#[derive(Default)]
struct Control {
    stop: AtomicBool,
    leave: AtomicBool,
}

/// A cloneable handle that submits to a running [`Driver`] from any thread ([`Driver`]
/// itself is not `Sync`, because it holds the events receiver).
#[derive(Debug, Clone)]
pub struct Submitter {
    requests: Sender<Request>,
    status: Arc<Mutex<DriverStatus>>,
    wake: Arc<WakeState>,
}

/// How a submitter wakes a sleeping driver thread: the transport's [`dataplane::wake::Waker`]
/// (if it has one), a count of requests not yet taken, and whether the thread is (about to
/// be) blocked in `Transport::wait`. A submitter counts its request, then wakes the thread if
/// it sleeps; the thread announces its sleep, then sleeps only if nothing is counted. Either
/// the thread sees the request or the submitter sees the sleep, so no submit waits for the
/// idle timeout, and a busy thread costs submitters no system call.
#[derive(Debug, Default)]
struct WakeState {
    waker: Option<dataplane::wake::Waker>,
    pending: std::sync::atomic::AtomicUsize,
    sleeping: AtomicBool,
    /// Input for [`EventSink::run`] arrived ([`Submitter::notify`]).
    poked: AtomicBool,
}

impl WakeState {
    /// A stop or leave flag was set: wake the thread if it sleeps.
    fn queued_control(&self) {
        if let Some(w) = &self.waker {
            w.wake();
        }
    }

    /// Input for the sink's `run` was queued.
    fn poked(&self) {
        self.poked.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst)
            && let Some(w) = &self.waker
        {
            w.wake();
        }
    }

    /// A request was queued.
    fn queued(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst)
            && let Some(w) = &self.waker
        {
            w.wake();
        }
    }
}

impl std::fmt::Debug for SubmitRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitRequest")
            .field("prio", &self.prio)
            .field("kind", &self.kind)
            .field("len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl Submitter {
    /// Submits a message and waits for the core's answer (see [`Driver::submit`]).
    ///
    /// # Errors
    /// As [`Driver::submit`].
    pub fn submit(
        &self,
        prio: Priority,
        kind: DeliveryKind,
        payload: Bytes,
    ) -> Result<MsgId, DriverSubmitError> {
        let (reply, answer) = channel::bounded(1);
        self.requests
            .send(Request::Submit(SubmitRequest {
                prio,
                kind,
                payload,
                reply: Reply::Wait(reply),
            }))
            .map_err(|_| DriverSubmitError::Stopped)?;
        self.wake.queued();
        match answer.recv() {
            Ok(result) => result.map_err(DriverSubmitError::Core),
            Err(_) => Err(DriverSubmitError::Stopped),
        }
    }

    /// Queues a message without waiting: `done` is called on the driver thread with the
    /// core's answer (the message id, or [`SubmitError::Backpressure`] / `TooLarge`), exactly
    /// once, unless this returns an error. Never blocks. Requests from one thread reach the
    /// core in the order they were made.
    ///
    /// # Errors
    /// [`TrySubmitError::QueueFull`] when the request queue is full (treat as backpressure);
    /// [`TrySubmitError::Stopped`] when the driver thread has ended.
    pub fn try_submit_with(
        &self,
        prio: Priority,
        kind: DeliveryKind,
        payload: Bytes,
        done: SubmitCallback,
    ) -> Result<(), TrySubmitError> {
        let request = Request::Submit(SubmitRequest {
            prio,
            kind,
            payload,
            reply: Reply::Call(done),
        });
        match self.requests.try_send(request) {
            Ok(()) => {
                self.wake.queued();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(TrySubmitError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(TrySubmitError::Stopped),
        }
    }

    /// Runs `call` on the driver thread with the core, after the requests already queued
    /// (blocks while the request queue is full). For rare control operations such as
    /// [`Totem::install_key`]; report results from inside the closure.
    ///
    /// # Errors
    /// [`TrySubmitError::Stopped`] when the driver thread has ended (`call` is dropped).
    pub fn with_core(&self, call: CoreCall) -> Result<(), TrySubmitError> {
        self.requests
            .send(Request::Core(call))
            .map_err(|_| TrySubmitError::Stopped)?;
        self.wake.queued();
        Ok(())
    }

    /// As [`Submitter::with_core`] but never blocks.
    ///
    /// # Errors
    /// [`TrySubmitError::QueueFull`] when the request queue is full, [`TrySubmitError::Stopped`]
    /// when the driver thread has ended (`call` is dropped either way).
    pub fn try_with_core(&self, call: CoreCall) -> Result<(), TrySubmitError> {
        match self.requests.try_send(Request::Core(call)) {
            Ok(()) => {
                self.wake.queued();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(TrySubmitError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(TrySubmitError::Stopped),
        }
    }

    /// Takes network `net` out of use (`enabled` false) or puts it back (the operator's
    /// `aisctl ring disable|enable`; see [`Rrp::set_enabled`]) and waits for the driver
    /// thread's answer (within one loop iteration; at most a second). With one network,
    /// enabling network 0 is accepted and disabling it refused.
    ///
    /// # Errors
    /// [`NetworkControlError::Refused`]: no such network, or the last one in use;
    /// [`NetworkControlError::Stopped`]: the driver thread did not answer.
    pub fn set_network(&self, net: u8, enabled: bool) -> Result<(), NetworkControlError> {
        let (reply, answer) = channel::bounded(1);
        self.requests
            .send(Request::Network {
                net,
                enabled,
                reply,
            })
            .map_err(|_| NetworkControlError::Stopped)?;
        self.wake.queued();
        match answer.recv_timeout(StdDuration::from_secs(1)) {
            Ok(result) => result.map_err(NetworkControlError::Refused),
            Err(_) => Err(NetworkControlError::Stopped),
        }
    }

    /// Says that input for the sink's [`EventSink::run`] was queued (on a queue of the
    /// caller's): the driver thread calls `run` before it sleeps again, and is woken if it
    /// sleeps. Costs no system call while the thread is busy.
    pub fn notify(&self) {
        self.wake.poked();
    }

    /// The latest [`DriverStatus`] (at most [`STATUS_INTERVAL`] old).
    pub fn status(&self) -> DriverStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running Totem node: the handle of the driver thread. Dropping it stops the thread
/// (without a graceful leave) and joins it.
#[derive(Debug)]
pub struct Driver {
    submitter: Submitter,
    /// Disconnected at once when spawned with [`spawn_with`].
    events: Receiver<Event>,
    control: Arc<Control>,
    thread: Option<JoinHandle<DriverStats>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("stop", &self.stop.load(Ordering::Relaxed))
            .field("leave", &self.leave.load(Ordering::Relaxed))
            .finish()
    }
}

/// Starts a driver thread named `totem-<node id>` that owns `transport` and a core built
/// from `cfg.totem`, after giving the transport `cfg.members` and pinning the thread to
/// `cfg.cpu`. Returns once the core is running. Events go to [`Driver::events`].
///
/// # Errors
/// The member list refused by the transport, an invalid core configuration, a failure to pin
/// the thread or to start it.
pub fn spawn<T: Transport + Send + 'static>(
    transport: T,
    cfg: DriverConfig,
) -> Result<Driver, DriverError> {
    let (events_tx, events_rx) = channel::unbounded();
    spawn_inner(vec![transport], cfg, events_tx, events_rx)
}

/// As [`spawn`], but the core's events go to `sink` (on the driver thread, in order) instead
/// of [`Driver::events`], which then stays empty.
///
/// # Errors
/// As [`spawn`].
pub fn spawn_with<T: Transport + Send + 'static, S: EventSink>(
    transport: T,
    cfg: DriverConfig,
    sink: S,
) -> Result<Driver, DriverError> {
    let (_, events_rx) = channel::unbounded();
    spawn_inner(vec![transport], cfg, sink, events_rx)
}

/// As [`spawn_with`], over one transport per network: `transports[i]` is network `i`, and
/// `cfg.rrp` says how many there are and how they are used (see the [module
/// documentation](self)). With one transport and one network this is [`spawn_with`].
///
/// # Errors
/// As [`spawn`], and [`DriverError::Rrp`] or [`DriverError::Networks`] when the networks,
/// transports and member lists do not match.
pub fn spawn_networks<T: Transport + Send + 'static, S: EventSink>(
    transports: Vec<T>,
    cfg: DriverConfig,
    sink: S,
) -> Result<Driver, DriverError> {
    let (_, events_rx) = channel::unbounded();
    spawn_inner(transports, cfg, sink, events_rx)
}

fn spawn_inner<T: Transport + Send + 'static, S: EventSink>(
    transports: Vec<T>,
    mut cfg: DriverConfig,
    sink: S,
    events_rx: Receiver<Event>,
) -> Result<Driver, DriverError> {
    cfg.totem.validate()?;
    cfg.rrp.validate()?;
    let networks = cfg.rrp.networks;
    let lists = if cfg.more_members.is_empty() {
        networks
    } else {
        1 + cfg.more_members.len()
    };
    if transports.len() != networks || lists != networks {
        return Err(DriverError::Networks {
            networks,
            transports: transports.len(),
            lists,
        });
    }
    let mut transports = transports.into_iter();
    let Some(mut transport) = transports.next() else {
        return Err(DriverError::Networks {
            networks,
            transports: 0,
            lists,
        });
    };
    transport.set_members(&cfg.members)?;
    let mut others: Vec<T> = transports.collect();
    for (i, t) in others.iter_mut().enumerate() {
        t.set_members(cfg.more_members.get(i).unwrap_or(&cfg.members))?;
    }
    let rrp = if networks > 1 {
        cfg.totem.max_frame_size = cfg.totem.max_frame_size.saturating_sub(TAG_LEN);
        cfg.totem.validate()?;
        Some(Networks::new(
            Rrp::new(cfg.rrp.clone(), cfg.totem.node_id)?,
            networks,
        ))
    } else {
        None
    };
    let wake = Arc::new(WakeState {
        waker: transport.waker(),
        ..WakeState::default()
    });
    let thread_wake = Arc::clone(&wake);
    let (requests_tx, requests_rx) = channel::bounded(REQUEST_QUEUE);
    let (ready_tx, ready_rx) = channel::bounded::<Result<(), DriverError>>(1);
    let control = Arc::new(Control::default());
    let thread_control = Arc::clone(&control);
    let status = Arc::new(Mutex::new(DriverStatus {
        state: srp::MembState::Gather,
        ring: RingId::default(),
        members: Vec::new(),
        queued_messages: 0,
        stats: DriverStats::default(),
        rrp_mode: (networks > 1).then_some(cfg.rrp.mode),
        networks: vec![NetworkStatus::default(); networks],
        backend: dataplane::stats::Collect::default(),
    }));
    let thread_status = Arc::clone(&status);
    let name = format!("totem-{}", cfg.totem.node_id.0);
    let thread = thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut sink = sink;
            if let Some(cpu) = cfg.cpu
                && let Err(e) = dataplane::affinity::pin_current_thread(cpu)
            {
                let _ = ready_tx.send(Err(e.into()));
                sink.closed();
                return DriverStats::default();
            }
            if let Some(nice) = cfg.nice {
                match dataplane::affinity::set_current_thread_nice(nice) {
                    Ok(()) => tracing::info!("Totem thread runs at nice {nice}"),
                    Err(dataplane::affinity::NiceError::Os { source, .. }) => tracing::warn!(
                        "cannot give the Totem thread nice {nice} ({source}): it runs at the \
                         value it was started with (lowering it needs CAP_SYS_NICE)"
                    ),
                    Err(e) => {
                        let _ = ready_tx.send(Err(DriverError::Nice(e)));
                        sink.closed();
                        return DriverStats::default();
                    }
                }
            }
            let clock = Clock(std::time::Instant::now());
            let core = match Totem::new(cfg.totem, clock.now()) {
                Ok(core) => core,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    sink.closed();
                    return DriverStats::default();
                }
            };
            let mut lp = Loop {
                core,
                transport,
                others,
                rrp,
                clock,
                requests: requests_rx,
                events: sink,
                diag: Diagnostics::default(),
                pauses_logged: 0,
                control: thread_control,
                idle_wait: cfg.idle_wait,
                stats: DriverStats::default(),
                status: thread_status,
                status_at: std::time::Instant::now(),
                status_key: None,
                wake: thread_wake,
                sink_wait: None,
            };
            lp.publish_status();
            let _ = ready_tx.send(Ok(()));
            lp.run()
        })
        .map_err(DriverError::Spawn)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Driver {
            submitter: Submitter {
                requests: requests_tx,
                status,
                wake,
            },
            events: events_rx,
            control,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(DriverError::Panicked)
        }
    }
}

impl Driver {
    /// Submits a message for ordered delivery to every member (this node included) and waits
    /// for the core's answer, at most one loop iteration plus the queue ahead of it.
    ///
    /// # Errors
    /// [`DriverSubmitError::Core`] with the core's refusal ([`SubmitError::Backpressure`]:
    /// try again after a [`srp::FlowControl::Clear`] event; [`SubmitError::TooLarge`]);
    /// [`DriverSubmitError::Stopped`] when the driver thread has ended. Nothing is queued on
    /// error.
    pub fn submit(
        &self,
        prio: Priority,
        kind: DeliveryKind,
        payload: Bytes,
    ) -> Result<MsgId, DriverSubmitError> {
        self.submitter.submit(prio, kind, payload)
    }

    /// A handle that can submit from other threads.
    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// The latest [`DriverStatus`] (at most [`STATUS_INTERVAL`] old).
    pub fn status(&self) -> DriverStatus {
        self.submitter.status()
    }

    /// The core's events in order: deliveries, configuration changes, flow control, and
    /// [`Event::RingSeq`], which the caller must persist (off the driver thread). The
    /// channel is unbounded: keep reading it. It disconnects when the driver thread ends.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Leaves the ring gracefully: the core announces the leave (so the others form the next
    /// ring without waiting for a timeout), the frames are flushed, and the thread ends.
    /// Returns at once; [`Driver::stop`] joins the thread.
    pub fn leave(&self) {
        self.control.leave.store(true, Ordering::Release);
        self.submitter.wake.queued_control();
    }

    /// Stops the thread (without a graceful leave, as a crash would) and joins it.
    ///
    /// # Errors
    /// [`DriverError::Panicked`] when the thread panicked.
    pub fn stop(mut self) -> Result<DriverStats, DriverError> {
        self.control.stop.store(true, Ordering::Release);
        self.submitter.wake.queued_control();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| DriverError::Panicked),
            None => Ok(DriverStats::default()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Release);
        self.submitter.wake.queued_control();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
