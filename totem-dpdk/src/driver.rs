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

use crossbeam_channel::{self as channel, Receiver, Sender, TryRecvError, TrySendError};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration as StdDuration;

use bytes::Bytes;
use dataplane::{Member, MembersError, SendError, Transport};

use crate::srp::{self, Event, SubmitError, Totem};
use crate::time::Instant;
use crate::types::{DeliveryKind, MsgId, NodeId, Priority, RingId};
use crate::wire;

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
/// Attempts to push out the frames left in the transport when the driver stops or leaves.
const FINAL_FLUSH_TRIES: usize = 10;

/// Configuration of a [`Driver`].
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The core's configuration (node id, timers, flow control).
    pub totem: srp::Config,
    /// Pin the driver thread to this CPU (`None`: let the scheduler place it).
    pub cpu: Option<usize>,
    /// The address of each node id, given to [`Transport::set_members`] (this node
    /// included).
    pub members: Vec<Member>,
    /// The longest [`Transport::wait`] when idle, for transports without a waker (default
    /// 1 ms): a submit from another thread waits at most this long before the driver thread
    /// takes it. Transports with a waker (kernel UDP) wake the thread at once instead.
    pub idle_wait: StdDuration,
}

impl DriverConfig {
    /// The default idle wait: 1 ms.
    pub const DEFAULT_IDLE_WAIT: StdDuration = StdDuration::from_millis(1);

    /// A configuration for `totem` over `members`, unpinned, with the default idle wait.
    pub fn new(totem: srp::Config, members: Vec<Member>) -> DriverConfig {
        DriverConfig {
            totem,
            cpu: None,
            members,
            idle_wait: Self::DEFAULT_IDLE_WAIT,
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
    /// The operating system could not start the thread.
    #[error("cannot start the Totem driver thread")]
    Spawn(#[source] io::Error),
    /// The driver thread panicked.
    #[error("the Totem driver thread panicked")]
    Panicked,
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

/// Counters of a driver run, returned by [`Driver::stop`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Loop iterations.
    pub iterations: u64,
    /// Frames received and given to the core.
    pub frames_in: u64,
    /// Frames queued on the transport (one per core transmit).
    pub frames_out: u64,
    /// Frames the transport refused (full after a flush and one retry, too large, unknown
    /// destination); they are dropped and Totem's retransmission repairs the loss.
    pub send_errors: u64,
    /// Other transport errors (receive, flush, wait), counted and otherwise ignored.
    pub io_errors: u64,
    /// Submit requests answered.
    pub submits: u64,
    /// Frames the core addressed to this node itself, handed straight back to it.
    pub frames_looped: u64,
    /// Member addresses learned from frames of nodes the transport did not know
    /// ([`Transport::learn_member`]; UDP multicast discovers its members this way).
    pub members_learned: u64,
    /// Events forwarded to the events channel.
    pub events: u64,
    /// The core's counters when the thread ended.
    pub core: srp::Stats,
    /// The transport's counters when the thread ended.
    pub transport: dataplane::Stats,
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
    /// The driver thread is ending: no more events will come.
    fn closed(&mut self) {}
}

impl EventSink for Sender<Event> {
    fn event(&mut self, event: Event) {
        // The receiver lives in the `Driver`; once it is gone nobody wants the events.
        let _ = self.send(event);
    }
}

/// A snapshot of the driver thread's state, refreshed at least every [`STATUS_INTERVAL`] and
/// whenever the membership state or ring changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStatus {
    /// Where the node is in the membership protocol.
    pub state: srp::MembState,
    /// The current ring.
    pub ring: RingId,
    /// The current ring's members.
    pub members: Vec<NodeId>,
    /// Messages waiting in the core's send queues.
    pub queued_messages: usize,
    /// The driver's counters (their `core` and `transport` fields are filled in too).
    pub stats: DriverStats,
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
}

impl WakeState {
    /// A stop or leave flag was set: wake the thread if it sleeps.
    fn queued_control(&self) {
        if let Some(w) = &self.waker {
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
    spawn_inner(transport, cfg, events_tx, events_rx)
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
    spawn_inner(transport, cfg, sink, events_rx)
}

fn spawn_inner<T: Transport + Send + 'static, S: EventSink>(
    mut transport: T,
    cfg: DriverConfig,
    sink: S,
    events_rx: Receiver<Event>,
) -> Result<Driver, DriverError> {
    cfg.totem.validate()?;
    transport.set_members(&cfg.members)?;
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

/// Logs frames the protection layer refused, at most once per [`DIAG_INTERVAL`] per kind
/// (a node with the wrong key sends many), with the number suppressed in between.
#[derive(Default)]
struct Diagnostics {
    /// Per kind: when it was last logged and how many were suppressed since.
    last: [Option<(std::time::Instant, u64)>; 3],
}

/// Shortest interval between two log lines of one kind of refused frame.
pub const DIAG_INTERVAL: StdDuration = StdDuration::from_secs(10);

impl Diagnostics {
    fn refused(
        &mut self,
        from: std::net::SocketAddr,
        e: crate::crypto::OpenError,
        mine: Option<u32>,
    ) {
        use crate::crypto::OpenError;
        let kind = match e {
            OpenError::BadTag | OpenError::BadCrc | OpenError::Malformed => 0,
            OpenError::UnknownEpoch { .. } => 1,
            OpenError::Replayed { .. }
            | OpenError::TooOld { .. }
            | OpenError::Misdirected { .. } => 2,
        };
        let now = std::time::Instant::now();
        let suppressed = match &mut self.last[kind] {
            Some((at, n)) if now.duration_since(*at) < DIAG_INTERVAL => {
                *n += 1;
                return;
            }
            slot => {
                let n = slot.map_or(0, |(_, n)| n);
                *slot = Some((now, 0));
                n
            }
        };
        let more = if suppressed > 0 {
            format!(" ({suppressed} more since the last report)")
        } else {
            String::new()
        };
        match e {
            OpenError::UnknownEpoch { epoch, .. } if mine.is_some_and(|m| epoch > m) => {
                tracing::error!(
                    "frame from {from} uses key epoch {epoch}, but this node only has epoch {}: the cluster was rekeyed while this node was away; copy the current key file from a running node and restart aisexec{more}",
                    mine.unwrap_or(0)
                );
            }
            OpenError::UnknownEpoch { epoch, .. } => {
                tracing::warn!(
                    "frame from {from} uses key epoch {epoch}, older than this node's {}: that node missed a rekey and needs the current key file{more}",
                    mine.unwrap_or(0)
                );
            }
            OpenError::Replayed { .. }
            | OpenError::TooOld { .. }
            | OpenError::Misdirected { .. } => {
                tracing::warn!("replayed frame from {from} refused ({e}){more}");
            }
            _ => tracing::warn!("invalid digest from {from} ({e}){more}"),
        }
    }
}

/// The real clock, as the core's [`Instant`]: nanoseconds since the driver started.
#[derive(Clone, Copy)]
struct Clock(std::time::Instant);

impl Clock {
    fn now(self) -> Instant {
        Instant(u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

struct Loop<T, S> {
    core: Totem,
    transport: T,
    clock: Clock,
    requests: Receiver<Request>,
    events: S,
    /// Rate limit of the protection layer's diagnostics.
    diag: Diagnostics,
    /// The core's `pauses_detected` when last logged.
    pauses_logged: u64,
    control: Arc<Control>,
    idle_wait: StdDuration,
    stats: DriverStats,
    status: Arc<Mutex<DriverStatus>>,
    status_at: std::time::Instant,
    /// State and ring of the last published status.
    status_key: Option<(srp::MembState, RingId)>,
    wake: Arc<WakeState>,
}

impl<T: Transport, S: EventSink> Loop<T, S> {
    /// Publishes a fresh [`DriverStatus`] when the state or ring changed or
    /// [`STATUS_INTERVAL`] passed.
    fn maybe_publish_status(&mut self) {
        let key = (self.core.state(), self.core.ring_id());
        if self.status_key != Some(key) || self.status_at.elapsed() >= STATUS_INTERVAL {
            self.publish_status();
        }
    }

    fn publish_status(&mut self) {
        self.status_key = Some((self.core.state(), self.core.ring_id()));
        self.status_at = std::time::Instant::now();
        let mut stats = self.stats.clone();
        stats.core = self.core.stats().clone();
        stats.transport = self.transport.stats();
        let snapshot = DriverStatus {
            state: self.core.state(),
            ring: self.core.ring_id(),
            members: self.core.members().to_vec(),
            queued_messages: self.core.queued_messages(),
            stats,
        };
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    fn run(mut self) -> DriverStats {
        loop {
            self.stats.iterations += 1;
            if self.control.stop.load(Ordering::Acquire) {
                break;
            }
            if self.control.leave.load(Ordering::Acquire) {
                self.core.leave();
                self.transmit();
                self.forward_events();
                break;
            }
            self.take_submits();
            let received = self.receive();
            self.fire_timers();
            self.log_pauses();
            self.flush();
            self.forward_events();
            self.maybe_publish_status();
            if received == 0 {
                self.wait();
            }
        }
        self.final_flush();
        self.publish_status();
        self.events.closed();
        self.stats.core = self.core.stats().clone();
        self.stats.transport = self.transport.stats();
        self.stats
    }

    fn take_submits(&mut self) {
        for _ in 0..SUBMIT_BATCH {
            let taken = self.requests.try_recv();
            if taken.is_ok() {
                self.wake.pending.fetch_sub(1, Ordering::SeqCst);
            }
            match taken {
                Ok(Request::Core(call)) => {
                    call(&mut self.core);
                    self.transmit();
                }
                Ok(Request::Submit(req)) => {
                    let result = self.core.submit(req.prio, req.kind, req.payload);
                    self.stats.submits += 1;
                    match req.reply {
                        // The submitter may have given up; its answer is then moot.
                        Reply::Wait(tx) => {
                            let _ = tx.send(result);
                        }
                        Reply::Call(done) => done(result),
                    }
                    self.transmit();
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }

    fn receive(&mut self) -> usize {
        let mut total = 0;
        for _ in 0..RX_BURSTS {
            let now = self.clock.now();
            let core = &mut self.core;
            // Senders the transport does not know, whose frames the core accepted: at most a
            // few per burst, kept without allocating.
            let mut strangers = [None; 4];
            let diag = &mut self.diag;
            let result = self.transport.recv_burst(|src, frame| {
                let malformed = core.stats().malformed;
                core.handle_frame(now, frame);
                if let Some(e) = core.last_open_error() {
                    diag.refused(src.addr, e, core.key_epoch());
                    return;
                }
                if src.node.is_none()
                    && core.stats().malformed == malformed
                    && let Ok(h) = wire::Header::new_checked(frame)
                    && let Some(slot) = strangers.iter_mut().find(|s| s.is_none())
                {
                    *slot = Some((h.sender(), src.addr));
                }
            });
            for (node, addr) in strangers.into_iter().flatten() {
                if self.transport.learn_member(dataplane::NodeId(node.0), addr) {
                    self.stats.members_learned += 1;
                }
            }
            // The core queues its transmits; send them after the burst, in order.
            self.transmit();
            match result {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    self.stats.frames_in += n as u64;
                }
                Err(_) => {
                    self.stats.io_errors += 1;
                    break;
                }
            }
        }
        total
    }

    /// One warning per pause the core detected (its own process did not run).
    fn log_pauses(&mut self) {
        let stats = self.core.stats();
        if stats.pauses_detected > self.pauses_logged {
            self.pauses_logged = stats.pauses_detected;
            tracing::warn!(
                paused_ms = stats.last_pause.as_millis(),
                threshold_ms = self.core.config().pause_threshold.as_millis(),
                "process paused {} ms (past the pause threshold of {} ms; token timeout {} ms); \
                 its expired timers were restarted and the membership messages queued meanwhile \
                 ignored, so no member is declared failed for it. Look for CPU starvation, \
                 swapping, a VM pause or a stalled write; consider a larger totem.token",
                stats.last_pause.as_millis(),
                self.core.config().pause_threshold.as_millis(),
                self.core.config().token_timeout.as_millis()
            );
        }
    }

    fn fire_timers(&mut self) {
        // A timer handler may set a deadline already past (a prompt call): a few rounds.
        for _ in 0..8 {
            let now = self.clock.now();
            match self.core.poll_timeout() {
                Some(deadline) if deadline <= now => {
                    self.core.handle_timeout(now);
                    self.transmit();
                }
                _ => break,
            }
        }
    }

    /// Queues every pending transmit of the core on the transport. The core's events are
    /// forwarded first: what the core did before sending (a frame stored, a message
    /// delivered) reaches the caller before anyone can react to the frames.
    fn transmit(&mut self) {
        self.forward_events();
        while let Some(t) = self.core.poll_transmit() {
            // A frame for this node itself (the token of a ring of one) never needs the
            // network, whose member table may not even know this node's own address.
            if t.dest == srp::Dest::Node(self.core.node_id()) {
                let now = self.clock.now();
                self.core.handle_frame(now, &t.frame);
                self.stats.frames_looped += 1;
                continue;
            }
            let dest = match t.dest {
                srp::Dest::Ring => dataplane::Dest::Ring,
                srp::Dest::Node(n) => dataplane::Dest::Node(dataplane::NodeId(n.0)),
            };
            let frame = &t.frame;
            let mut result = self
                .transport
                .send(dest, frame.len(), |buf| buf.copy_from_slice(frame));
            if matches!(result, Err(SendError::TxFull)) {
                self.flush();
                result = self
                    .transport
                    .send(dest, frame.len(), |buf| buf.copy_from_slice(frame));
            }
            match result {
                Ok(()) => self.stats.frames_out += 1,
                Err(_) => self.stats.send_errors += 1,
            }
        }
    }

    /// Flushes; returns false when the kernel's buffer was full and frames stay queued.
    fn flush(&mut self) -> bool {
        match self.transport.flush() {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => {
                self.stats.io_errors += 1;
                true
            }
        }
    }

    fn final_flush(&mut self) {
        for _ in 0..FINAL_FLUSH_TRIES {
            if self.flush() {
                return;
            }
            thread::sleep(StdDuration::from_micros(100));
        }
    }

    fn forward_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            self.stats.events += 1;
            self.events.event(event);
        }
    }

    fn wait(&mut self) {
        let now = self.clock.now();
        // With a waker, submits, leave and stop wake the thread: it may sleep until its next
        // timer (at most WOKEN_IDLE_WAIT). Without one, `idle_wait` bounds a submit's delay.
        let cap = if self.wake.waker.is_some() {
            WOKEN_IDLE_WAIT
        } else {
            self.idle_wait
        };
        let timeout = match self.core.poll_timeout() {
            Some(deadline) => {
                StdDuration::from_nanos(deadline.saturating_since(now).as_nanos()).min(cap)
            }
            None => cap,
        };
        if timeout.is_zero() {
            return;
        }
        // Announce the sleep, then sleep only if no request is waiting (see `WakeState`).
        self.wake.sleeping.store(true, Ordering::SeqCst);
        if self.wake.pending.load(Ordering::SeqCst) > 0 {
            self.wake.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        let result = self.transport.wait(Some(timeout));
        self.wake.sleeping.store(false, Ordering::SeqCst);
        if result.is_err() {
            self.stats.io_errors += 1;
            // Do not spin on a broken transport.
            thread::sleep(timeout);
        }
    }
}
