//! The executive's runtime around the pure [`ExecCore`] (crate `ais-core`): one thread that
//! owns the core and is driven by a single input queue ([`Input`]): Totem events (from the
//! driver's [`EventSink`]), client requests and connection changes (from the IPC loop of
//! [`server`]), and the answers to its own submits. It carries out the core's [`Effect`]s:
//! packets to per-connection outboxes that the IPC loop drains, asynchronous submits to the
//! Totem thread ([`Submitter::try_submit_with`]), key installation, the key file, random
//! bytes. Nothing on this thread blocks on Totem or on a client.
//!
//! Every Totem message the executive submits starts with a 4-byte header: `version: u8`
//! ([`ais_proto::ring::EXEC_VERSION`]), `service: u8` ([`ais_proto::ipc::ServiceId`]),
//! `kind: u16` (the service's message type).

pub mod clc;
pub mod quorum_log;
pub mod server;

use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dataplane::unix::SeqpacketConn;
use totem_dpdk::crypto::{EpochKey, KeyError};
use totem_dpdk::driver::{CoreCall, EventSink, NetworkEvent, Submitter, TrySubmitError};
use totem_dpdk::srp::{Event, SubmitError, Totem};
use totem_dpdk::{DeliveryKind, MsgId, Priority};
use tracing::{debug, error, info, warn};

use ais_core::exec::flow::{OutboxDepth, OutboxLimits};
use ais_core::exec::{ConnId, Effect, ExecCore, Origin};
use ais_proto::ipc::{Counter, Encoded, Nothing, Reply, Status};
use dataplane::stats::{Collect, Visit, Visitor};

use crate::eventlog::{EventLogWriter, unix_nanos};
use server::ConnLink;

/// A packet for a client: head and payload tail.
pub type Outgoing = Encoded;

/// What the executive thread reacts to.
#[derive(Debug)]
pub enum Input {
    /// A Totem event, and when it happened (nanoseconds since the UNIX epoch, taken on the
    /// Totem thread, for the event log).
    Totem(Event, u64),
    /// The Totem driver thread ended.
    TotemClosed,
    /// Something happened to one of the networks (redundant rings), and when (nanoseconds
    /// since the UNIX epoch, taken on the Totem thread).
    Network(NetworkEvent, u64),
    /// The core answered a submit.
    Submitted {
        /// Who asked.
        origin: Origin,
        /// The payload, for the event log (empty when the executive keeps none).
        payload: Bytes,
        /// Its guarantee.
        kind: DeliveryKind,
        /// The answer.
        result: Result<MsgId, SubmitError>,
        /// When the core answered (nanoseconds since the UNIX epoch).
        at: u64,
    },
    /// The core took the first messages of a batch (see [`Effect::SubmitBatch`]).
    BatchSubmitted {
        /// Who asked.
        origin: Origin,
        /// The ids of the messages taken, in order.
        accepted: Vec<MsgId>,
        /// The messages taken, in order, for the event log: empty when the executive keeps
        /// none (the Totem thread then moves each message into the core, with no clone
        /// handed back to be dropped on this side).
        payloads: Vec<Bytes>,
        /// Why the next one was refused, if the batch was not taken whole.
        refused: Option<SubmitError>,
        /// Their guarantee.
        kind: DeliveryKind,
        /// When the core answered (nanoseconds since the UNIX epoch).
        at: u64,
    },
    /// A client connected (credentials already checked).
    Connected {
        /// Its number.
        conn: ConnId,
        /// Its process id.
        pid: u32,
        /// Its user id.
        uid: u32,
        /// The socket, to shut it down.
        socket: Arc<SeqpacketConn>,
        /// Requests in flight and the IPC loop's waker.
        link: Arc<ConnLink>,
    },
    /// A client request whose header was checked; the core decodes the body for the
    /// connection's service.
    Request {
        /// From whom.
        conn: ConnId,
        /// The client's request number.
        id: u64,
        /// The operation.
        op: u16,
        /// The body after the header.
        body: Bytes,
    },
    /// A connection closed (the client exited, closed it, or broke the protocol).
    Disconnected {
        /// Which.
        conn: ConnId,
    },
    /// Stop: leave the ring gracefully.
    Leave,
    /// The component life-cycle runner reported (see [`clc`]).
    Clc(crate::amf::clc::ClcEvent),
}

/// The [`EventSink`] that feeds Totem events into the executive's queue.
#[derive(Debug)]
pub struct TotemSink(pub Sender<Input>);

impl EventSink for TotemSink {
    fn event(&mut self, event: Event) {
        let _ = self.0.send(Input::Totem(event, unix_nanos()));
    }

    fn closed(&mut self) {
        let _ = self.0.send(Input::TotemClosed);
    }

    fn network(&mut self, event: NetworkEvent) {
        let _ = self.0.send(Input::Network(event, unix_nanos()));
    }
}

/// Most packets queued for one client before it is considered stuck and disconnected, by
/// default (`aisexec.ipc_outbox_packets`). The flow control ([`ais_core::exec::flow`])
/// answers multicasts TRY_AGAIN from 1/16 of it while the client reads.
pub const OUTBOX_PACKETS: usize = 65536;

/// Packets queued for one client before they are handed to the IPC loop even though the
/// batch of inputs has not ended ([`Exec::flush_outboxes`]), so the loop starts on a long
/// batch early.
const HANDOFF_BATCH: usize = 64;

/// Most bytes queued for one client before it is disconnected, whatever the packet count.
pub const OUTBOX_BYTES: u64 = 256 << 20;

/// The flow control's marks for a hard limit of `packets` per client: high water 1/16 of
/// it (or 8 MiB), low water 1/64 (and 2 MiB), stalled after 2 s without progress.
pub fn outbox_limits(packets: u64) -> OutboxLimits {
    OutboxLimits {
        high_packets: packets / 16,
        low_packets: packets / 64,
        ..OutboxLimits::default()
    }
}

struct Conn {
    pid: u32,
    /// Packets queued since the last hand-over to the IPC loop ([`Exec::flush_outboxes`]):
    /// the loop gets them a batch at a time. Bounded by the executive, which counts what it
    /// queued against what the loop took ([`ConnLink::taken`]).
    pending: Vec<Outgoing>,
    socket: Arc<SeqpacketConn>,
    link: Arc<ConnLink>,
    /// Packets and bytes queued since it connected (the loop counts what it took).
    queued_packets: u64,
    queued_bytes: u64,
}

/// Counters of the runtime (the core keeps its own), shown by `aisctl status`.
#[derive(Debug, Default, Clone)]
pub struct ExecCounters {
    /// Client connections accepted.
    pub ipc_connections: u64,
    /// Clients disconnected because they did not read their callbacks.
    pub ipc_overflow_disconnects: u64,
}

impl Visit for ExecCounters {
    fn visit(&self, v: &mut dyn Visitor) {
        v.counter("ipc_connections", self.ipc_connections);
        v.counter("ipc_overflow_disconnects", self.ipc_overflow_disconnects);
    }
}

/// Where the key service's effects land: the key file, rewritten at every rekey.
#[derive(Debug, Clone)]
pub struct KeyStore {
    /// The key file.
    pub path: std::path::PathBuf,
}

/// The executive: the core, the connections, the Totem driver's submitter.
pub struct Exec {
    core: ExecCore,
    submitter: Submitter,
    tx: Sender<Input>,
    conns: HashMap<ConnId, Conn>,
    keys: Option<KeyStore>,
    event_log: Option<EventLogWriter>,
    /// This node's quorum as the event log last said it.
    quorum_log: quorum_log::QuorumWatch,
    /// Shelf events the cluster accepted, for the event log.
    shelf_lines: Option<crossbeam_channel::Receiver<crate::shelfwatch::AcceptedLine>>,
    counters: ExecCounters,
    started: Instant,
    leaving: bool,
    /// Runs the AMF's component life-cycle commands, when the AMF service runs.
    clc: Option<clc::ClcDriver>,
    /// Most packets queued for one client ([`OUTBOX_PACKETS`] by default).
    outbox_packets: u64,
    /// The flow control's marks ([`outbox_limits`] of `outbox_packets`).
    limits: OutboxLimits,
    /// An outbox crossed the high-water mark since the last tick ([`Exec::tick_due`]).
    tick_due: bool,
    /// Reused for the outbox depths at each tick.
    depths: Vec<OutboxDepth>,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("core", &self.core)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// What [`Exec::handle`] tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// The Totem thread ended: stop.
    Stop,
}

impl Exec {
    /// An executive running `core`; `tx` is the sending side of its own input queue (submit
    /// answers come back through it); `keys` is where a rekey writes the key file.
    pub fn new(
        core: ExecCore,
        submitter: Submitter,
        tx: Sender<Input>,
        keys: Option<KeyStore>,
        event_log: Option<EventLogWriter>,
    ) -> Exec {
        let mut core = core;
        // Services read the time from the first input on.
        core.tick(wall_clock_ns());
        let mut exec = Exec {
            core,
            submitter,
            tx,
            conns: HashMap::new(),
            keys,
            event_log,
            quorum_log: quorum_log::QuorumWatch::default(),
            shelf_lines: None,
            counters: ExecCounters::default(),
            started: Instant::now(),
            leaving: false,
            clc: None,
            outbox_packets: OUTBOX_PACKETS as u64,
            limits: outbox_limits(OUTBOX_PACKETS as u64),
            tick_due: false,
            depths: Vec::new(),
        };
        exec.core.set_outbox_limits(exec.limits);
        // The state this node starts in (not quorate, when a quorum service runs), at the
        // time the log was opened: before any Totem event of this process.
        let opened = exec.event_log.as_ref().map(EventLogWriter::opened_at);
        exec.log_quorum(opened);
        exec
    }

    /// Handles one input.
    pub fn handle(&mut self, input: Input) -> Flow {
        // When the input happened, for a quorum line it causes.
        let at = match &input {
            Input::Totem(_, at)
            | Input::Submitted { at, .. }
            | Input::BatchSubmitted { at, .. } => Some(*at),
            _ => None,
        };
        match input {
            Input::Totem(event, at) => {
                if let Some(log) = &mut self.event_log
                    && let Err(e) = log.event_at(at, &event)
                {
                    warn!("event log: {e}");
                }
                self.core.totem_owned(event);
            }
            Input::TotemClosed => return Flow::Stop,
            Input::Network(event, at) => self.network_event(event, at),
            Input::Submitted {
                origin,
                payload,
                kind,
                result,
                at,
            } => {
                if let (Ok(msg), Some(log)) = (&result, &mut self.event_log)
                    && let Err(e) = log.send_at(at, *msg, kind, 0, &payload)
                {
                    warn!("event log: {e}");
                }
                self.core.submitted(origin, result);
            }
            Input::BatchSubmitted {
                origin,
                accepted,
                payloads,
                refused,
                kind,
                at,
            } => {
                if let Some(log) = &mut self.event_log {
                    for (msg, payload) in accepted.iter().zip(&payloads) {
                        if let Err(e) = log.send_at(at, *msg, kind, 0, payload) {
                            warn!("event log: {e}");
                        }
                    }
                }
                self.core.batch_submitted(origin, accepted.len(), refused);
            }
            Input::Connected {
                conn,
                pid,
                uid,
                socket,
                link,
            } => {
                self.counters.ipc_connections += 1;
                debug!("client pid {pid} uid {uid} connected (connection {conn})");
                self.conns.insert(
                    conn,
                    Conn {
                        pid,
                        pending: Vec::new(),
                        socket,
                        link,
                        queued_packets: 0,
                        queued_bytes: 0,
                    },
                );
                self.core.connected(conn, pid);
            }
            Input::Request { conn, id, op, body } => {
                self.core.request(conn, id, op, body);
                if let Some(c) = self.conns.get(&conn) {
                    c.link.done();
                }
            }
            Input::Disconnected { conn } => self.close(conn),
            Input::Leave => self.leaving = true,
            Input::Clc(event) => match &mut self.clc {
                Some(d) => d.event(&mut self.core, event),
                None => warn!("a CLC event without a runner: {event:?}"),
            },
        }
        self.run_effects();
        self.log_quorum(at);
        self.log_shelf(at);
        Flow::Continue
    }

    /// A network event: logged (the driver logged mismatches already), and written to the
    /// event log as an `rrp` service line (docs/event-log.md).
    fn network_event(&mut self, event: NetworkEvent, at: u64) {
        let mut data = serde_json::Map::new();
        let what = match event {
            NetworkEvent::Faulty { net, cause } => {
                warn!("{event}");
                data.insert("net".into(), net.into());
                data.insert(
                    "cause".into(),
                    match cause {
                        totem_dpdk::rrp::FaultCause::Lost => "lost",
                        totem_dpdk::rrp::FaultCause::OneWay => "one-way",
                        totem_dpdk::rrp::FaultCause::Lossy => "lossy",
                    }
                    .into(),
                );
                "faulty"
            }
            NetworkEvent::Restored { net } => {
                info!("{event}");
                data.insert("net".into(), net.into());
                "restored"
            }
            NetworkEvent::Disabled { net } => {
                warn!("{event}");
                data.insert("net".into(), net.into());
                "disabled"
            }
            NetworkEvent::Enabled { net } => {
                info!("{event}");
                data.insert("net".into(), net.into());
                "enabled"
            }
            NetworkEvent::Mismatch {
                net, from, addr, ..
            } => {
                data.insert("net".into(), net.into());
                data.insert("from".into(), from.0.into());
                data.insert("addr".into(), addr.to_string().into());
                data.insert("problem".into(), event.to_string().into());
                "mismatch"
            }
            _ => {
                info!("{event}");
                return;
            }
        };
        if let Some(log) = &mut self.event_log
            && let Err(e) = log.service_at(at, "rrp", what, None, data)
        {
            warn!("event log: {e}");
        }
    }

    /// Sets the most packets queued for one client (`aisexec.ipc_outbox_packets`) and the
    /// flow control's marks that follow from it ([`outbox_limits`]); before clients connect.
    pub fn set_outbox_packets(&mut self, packets: u64) {
        self.outbox_packets = packets;
        self.limits = outbox_limits(packets);
        self.core.set_outbox_limits(self.limits);
    }

    /// Carries out component life-cycle commands with `driver` (its runner reports as
    /// [`Input::Clc`] on this executive's queue).
    pub fn run_clc(&mut self, driver: clc::ClcDriver) {
        self.clc = Some(driver);
    }

    /// Writes a `shelf` service line to the event log for every shelf event the cluster
    /// accepts (what the shelf service's observer queues on `lines`).
    pub fn log_shelf_events(
        &mut self,
        lines: crossbeam_channel::Receiver<crate::shelfwatch::AcceptedLine>,
    ) {
        self.shelf_lines = Some(lines);
    }

    fn log_shelf(&mut self, at: Option<u64>) {
        let (Some(rx), Some(log)) = (&self.shelf_lines, &mut self.event_log) else {
            return;
        };
        while let Ok(line) = rx.try_recv() {
            let t = at.unwrap_or_else(|| log.last_t());
            let mut data = serde_json::Map::new();
            data.insert("from".into(), line.from.into());
            data.insert(
                "shelf".into(),
                String::from_utf8_lossy(&line.event.key.shelf)
                    .into_owned()
                    .into(),
            );
            data.insert("record".into(), line.event.key.record.into());
            data.insert("timestamp".into(), line.event.key.timestamp.into());
            data.insert(
                "event".into(),
                crate::shelfwatch::describe(&line.event).into(),
            );
            if let Err(e) = log.service_at(t, "shelf", "accepted", Some(line.ring), data) {
                warn!("event log: {e}");
            }
        }
    }

    /// Writes a `quorum` line to the event log if this node's quorum changed
    /// ([`quorum_log`]), at `at` (the time of the input that changed it; without one, the
    /// log's last time: the clock now could be later than Totem events still queued).
    fn log_quorum(&mut self, at: Option<u64>) {
        let Some(log) = &mut self.event_log else {
            return;
        };
        if let Some(line) = self.quorum_log.check(&self.core) {
            let t = at.unwrap_or_else(|| log.last_t());
            if let Err(e) = log.service_at(t, quorum_log::SERVICE, line.what, line.ring, line.data)
            {
                warn!("event log: {e}");
            }
        }
    }

    /// Work between batches of inputs: hand the packets queued for clients to the IPC loop,
    /// offer refused internal messages again, flush the event log.
    pub fn tick(&mut self) {
        self.tick_due = false;
        self.flush_outboxes();
        self.core.tick(wall_clock_ns());
        self.depths.clear();
        for (conn, c) in &self.conns {
            let (taken, taken_bytes) = c.link.taken();
            self.depths.push(OutboxDepth {
                conn: *conn,
                packets: c.queued_packets.saturating_sub(taken),
                bytes: c.queued_bytes.saturating_sub(taken_bytes),
                taken,
            });
        }
        self.core.outboxes(&self.depths);
        self.run_effects();
        self.flush_outboxes();
        if let Some(log) = &mut self.event_log
            && let Err(e) = log.flush()
        {
            warn!("event log: {e}");
        }
    }

    /// Whether the loop should end its batch of inputs and [`tick`](Self::tick) now: a
    /// client's outbox crossed the flow control's high-water mark. The flow control
    /// observes outboxes at ticks only; under load a batch (the inputs already queued) can
    /// be long enough to take an outbox from the high-water mark past the hard limit, which
    /// would disconnect a live, reading client instead of holding the senders.
    pub fn tick_due(&self) -> bool {
        self.tick_due
    }

    /// How long until a service's timer is due ([`ExecCore::next_timer`]); zero when it is
    /// overdue, `None` without one.
    pub fn next_timer(&self) -> Option<std::time::Duration> {
        let at = self.core.next_timer()?;
        Some(std::time::Duration::from_nanos(
            at.saturating_sub(wall_clock_ns()),
        ))
    }

    /// Whether a leave was asked for.
    pub fn leaving(&self) -> bool {
        self.leaving
    }

    /// The core (read-only).
    pub fn core(&self) -> &ExecCore {
        &self.core
    }

    /// Hands a key step to the Totem thread, in order with the submits before it; a refusal
    /// (or a stopped thread) is logged with `what` and the epoch.
    fn key_step(
        &self,
        what: &'static str,
        key: EpochKey,
        step: fn(&mut Totem, EpochKey) -> Result<(), KeyError>,
    ) {
        let epoch = key.epoch();
        let call: CoreCall = Box::new(move |core| {
            if let Err(e) = step(core, key) {
                error!("{what} key epoch {epoch}: {e}");
            }
        });
        if self.submitter.with_core(call).is_err() {
            error!("{what} key epoch {epoch}: the Totem thread has stopped");
        }
    }

    /// Carries out the core's effects until it has none left.
    fn run_effects(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Send { conn, packet } => self.send(conn, packet),
                Effect::Disconnect { conn } => self.close(conn),
                Effect::Status { conn, id } => {
                    let status = self.status();
                    self.send(conn, Encoded::reply(id, &Reply::<Nothing>::Status(status)));
                }
                Effect::Submit { origin, kind, msg } => {
                    let logged = self.event_log.is_some();
                    if submit(&self.submitter, &self.tx, origin, kind, msg, logged).is_err() {
                        // The driver's request queue is full (or the Totem thread stopped):
                        // nothing was queued; the same answer as a full send queue.
                        self.core.submitted(origin, Err(SubmitError::Backpressure));
                    }
                }
                Effect::SubmitBatch { origin, kind, msgs } => {
                    if !self.submit_batch(origin, kind, msgs) {
                        self.core
                            .batch_submitted(origin, 0, Some(SubmitError::Backpressure));
                    }
                }
                Effect::AcceptKey(key) => self.key_step("accepting", key, Totem::accept_key),
                Effect::InstallKey(key) => self.key_step("installing", key, Totem::install_key),
                Effect::RetirePreviousKey => {
                    let call: CoreCall = Box::new(|core| core.retire_previous_key());
                    if self.submitter.with_core(call).is_err() {
                        error!("retiring the previous key epoch: the Totem thread has stopped");
                    }
                }
                Effect::SetNetwork {
                    conn,
                    id,
                    net,
                    enabled,
                } => {
                    let reply = match self.submitter.set_network(net, enabled) {
                        Ok(()) => Reply::<Nothing>::Ok,
                        Err(e) => {
                            warn!(
                                "aisctl ring {} {net}: {e}",
                                if enabled { "enable" } else { "disable" }
                            );
                            Reply::Error(match e {
                                totem_dpdk::driver::NetworkControlError::Refused(_) => {
                                    ais_proto::ipc::AisError::InvalidParam
                                }
                                _ => ais_proto::ipc::AisError::TryAgain,
                            })
                        }
                    };
                    self.send(conn, Encoded::reply(id, &reply));
                }
                Effect::PersistKey(material) => {
                    let epoch = material.epoch;
                    match &self.keys {
                        Some(store) => {
                            if let Err(e) = crate::keyfile::write(&store.path, &material, true) {
                                error!(
                                    "could not write key epoch {epoch} to {}: {e}; this node runs with it, but after a restart it needs the key file copied from another node",
                                    store.path.display()
                                );
                            } else {
                                info!("key epoch {epoch} written to {}", store.path.display());
                            }
                        }
                        None => warn!("key epoch {epoch}: no key file to write it to"),
                    }
                }
                Effect::Clc { service, command } => match &mut self.clc {
                    Some(d) => d.start(&mut self.core, service, command),
                    None => {
                        // Refuse it visibly rather than drop it.
                        error!(
                            "no component life-cycle runner in this executive: {:?} of {:?} failed",
                            command.kind, command.comp
                        );
                        self.core.clc_result(
                            service,
                            command.id,
                            ais_core::exec::ClcOutcome::Failed,
                        );
                    }
                },
                Effect::NeedRandom {
                    service,
                    conn,
                    id,
                    len,
                } => {
                    let mut bytes = vec![0u8; len];
                    if let Err(e) = getrandom::fill(&mut bytes) {
                        // The service answers SA_AIS_ERR_LIBRARY when it gets no bytes.
                        error!("the operating system gave no random bytes: {e}");
                        bytes.clear();
                    }
                    self.core.random(service, conn, id, &bytes);
                }
            }
        }
    }

    /// Queues `packet` for `conn`; a client whose outbox is full (`outbox_packets` packets
    /// or [`OUTBOX_BYTES`]) is disconnected.
    fn send(&mut self, conn: ConnId, packet: Encoded) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (taken, taken_bytes) = c.link.taken();
        let packets = c.queued_packets.saturating_sub(taken);
        let bytes = c.queued_bytes.saturating_sub(taken_bytes);
        if packets >= self.outbox_packets || bytes >= OUTBOX_BYTES {
            warn!(
                "client pid {} (connection {conn}) is not reading its callbacks: {packets} \
                 packets ({bytes} bytes) queued; disconnecting it",
                c.pid
            );
            self.counters.ipc_overflow_disconnects += 1;
            let _ = c.socket.shutdown();
            self.close(conn);
            return;
        }
        c.queued_packets += 1;
        c.queued_bytes += packet.len() as u64;
        // Crossing the high-water mark: the flow control must see it at once, not at the
        // end of a batch of thousands of deliveries that would fill the outbox first.
        let l = &self.limits;
        if (packets <= l.high_packets && packets + 1 > l.high_packets)
            || (bytes <= l.high_bytes && bytes + packet.len() as u64 > l.high_bytes)
        {
            self.tick_due = true;
        }
        c.pending.push(packet);
        if c.pending.len() >= HANDOFF_BATCH {
            Self::hand_over(c);
        }
    }

    /// Hands every connection's queued packets to the IPC loop: at the end of each batch of
    /// inputs ([`tick`](Self::tick)), so that the loop gets one hand-over and one wake-up
    /// per connection and batch rather than one per packet.
    pub fn flush_outboxes(&mut self) {
        for c in self.conns.values_mut() {
            if !c.pending.is_empty() {
                Self::hand_over(c);
            }
        }
    }

    fn hand_over(c: &mut Conn) {
        let packets = c.pending.len() as u64;
        let bytes: u64 = c.pending.iter().map(|p| p.len() as u64).sum();
        if !c.link.hand_over(&mut c.pending) {
            // The IPC loop let the connection go (it reports the disconnect): not queued.
            c.queued_packets -= packets;
            c.queued_bytes -= bytes;
        }
    }

    /// Submits `msgs` in order in one step of the Totem thread; false when the driver's
    /// request queue is full.
    fn submit_batch(&mut self, origin: Origin, kind: DeliveryKind, msgs: Vec<Bytes>) -> bool {
        let tx = self.tx.clone();
        let logged = self.event_log.is_some();
        let call: CoreCall = Box::new(move |core| {
            let mut accepted = Vec::with_capacity(msgs.len());
            let mut payloads = Vec::new();
            let mut refused = None;
            for m in msgs {
                let copy = logged.then(|| m.clone());
                match core.submit(Priority::default(), kind, m) {
                    Ok(id) => {
                        accepted.push(id);
                        payloads.extend(copy);
                    }
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            let _ = tx.send(Input::BatchSubmitted {
                origin,
                accepted,
                payloads,
                refused,
                kind,
                at: unix_nanos(),
            });
        });
        self.submitter.try_with_core(call).is_ok()
    }

    fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        debug!("client pid {} disconnected (connection {conn})", c.pid);
        let _ = c.socket.shutdown();
        c.link.close();
        self.core.disconnected(conn);
    }

    /// The status for `aisctl status`: every layer's statistics, visited in order from the
    /// transport up (names in docs/services.md).
    pub fn status(&self) -> Status {
        let d = self.submitter.status();
        let mut stats = Collect::default();
        stats.gauge("uptime_ms", self.started.elapsed().as_millis() as u64);
        d.visit(&mut stats);
        self.counters.visit(&mut stats);
        // The whole process: Totem, the executive, one IPC loop, the persistence and
        // logging helpers; a client adds none.
        stats.gauge("process_threads", process_threads());
        self.core.visit(&mut stats);
        Status {
            node: self.core.node().0,
            state: Bytes::from(state_name(d.state)),
            ring: Bytes::from(d.ring.to_string()),
            members: self.core.members().iter().map(|n| n.0).collect(),
            counters: stats
                .0
                .into_iter()
                .map(|(name, _, value)| Counter {
                    name: Bytes::from_static(name.as_bytes()),
                    value,
                })
                .collect(),
        }
    }
}

fn state_name(s: totem_dpdk::srp::MembState) -> &'static str {
    use totem_dpdk::srp::MembState;
    match s {
        MembState::Operational => "operational",
        MembState::Gather => "gather",
        MembState::Commit => "commit",
        MembState::Recovery => "recovery",
        MembState::Left => "left",
    }
}

/// Queues `msg` on the driver; its answer comes back as [`Input::Submitted`] (with the
/// payload when `logged`: there is an event log to write it to).
fn submit(
    submitter: &Submitter,
    tx: &Sender<Input>,
    origin: Origin,
    kind: DeliveryKind,
    msg: Bytes,
    logged: bool,
) -> Result<(), TrySubmitError> {
    let tx = tx.clone();
    let payload = if logged { msg.clone() } else { Bytes::new() };
    submitter.try_submit_with(
        Priority::default(),
        kind,
        msg,
        Box::new(move |result| {
            let _ = tx.send(Input::Submitted {
                origin,
                payload,
                kind,
                result,
                at: unix_nanos(),
            });
        }),
    )
}

/// Threads of this process (`Threads:` in `/proc/self/status`; 0 where it cannot be read).
fn process_threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds since the UNIX epoch on this node's clock (0 if the clock is before 1970).
pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
