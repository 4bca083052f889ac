//! The executive's service framework: one thread that owns every service's state and is driven
//! by a single input queue ([`Input`]): Totem events (from the driver's [`EventSink`]), client
//! requests and connection changes (from the IPC threads of [`server`]), and the answers to
//! its own submits. Nothing on this thread blocks on Totem or on a client: submits are
//! asynchronous ([`Submitter::try_submit_with`]) and replies go to per-connection outboxes
//! that a writer thread drains.
//!
//! Each service implements [`Service`]: library request handlers, a handler for its messages
//! delivered by Totem, a configuration-change hook and a sync hook run after every regular
//! configuration (where a service broadcasts what new members must learn, as CPG does with its
//! join lists).
//!
//! Every Totem message the executive submits starts with a 4-byte header: `version: u8`
//! ([`EXEC_VERSION`]), `service: u8` ([`ServiceId`]), `kind: u16` (the service's message type).

pub mod server;

use crossbeam_channel::Sender;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dataplane::unix::SeqpacketConn;
use totem_dpdk::driver::{CoreCall, EventSink, Submitter, TrySubmitError};
use totem_dpdk::srp::{ConfigChange, ConfigKind, Event, FlowControl, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, Priority, RingId};
use tracing::{debug, info, warn};

use crate::eventlog::{EventLogWriter, unix_nanos};
use crate::ipc::codec::DecodeError;
use crate::ipc::proto::{
    AisError, Callback, Counter, Packet, Request, Response, Service as Svc, Status,
};
use server::Inflight;

/// Version byte of the executive's Totem messages.
pub const EXEC_VERSION: u8 = 1;
/// Length of the executive's Totem message header.
pub const EXEC_HEADER: usize = 4;

/// A connection's number, unique for the life of the executive.
pub type ConnId = u64;

/// The services that exchange Totem messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceId {
    /// Closed process groups.
    Cpg = 1,
    /// Extended virtual synchrony groups.
    Evs = 2,
    /// Frame keys: online rekeying.
    Keys = 3,
}

/// Builds an executive message: header, then `body`.
pub fn exec_message(service: ServiceId, kind: u16, body: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(EXEC_HEADER + body.len());
    v.push(EXEC_VERSION);
    v.push(service as u8);
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(body);
    Bytes::from(v)
}

/// A packet for a client: head and payload tail.
pub type Outgoing = (Vec<u8>, Bytes);

/// What the executive thread reacts to.
#[derive(Debug)]
pub enum Input {
    /// A Totem event, and when it happened (nanoseconds since the UNIX epoch, taken on the
    /// Totem thread, for the event log).
    Totem(Event, u64),
    /// The Totem driver thread ended.
    TotemClosed,
    /// The core answered a submit.
    Submitted {
        /// Who asked.
        origin: Origin,
        /// The payload (for the event log, and to retry a refused internal message).
        payload: Bytes,
        /// Its guarantee.
        kind: DeliveryKind,
        /// The answer.
        result: Result<MsgId, SubmitError>,
        /// When the core answered (nanoseconds since the UNIX epoch).
        at: u64,
    },
    /// The core took the first messages of a batch (see [`Context::submit_batch_for`]).
    BatchSubmitted {
        /// Who asked.
        origin: Origin,
        /// The messages taken, with their ids, in order.
        accepted: Vec<(MsgId, Bytes)>,
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
        /// Where its packets go (a writer thread sends them).
        outbox: std::sync::mpsc::SyncSender<Outgoing>,
        /// The socket, to shut it down.
        socket: Arc<SeqpacketConn>,
        /// Requests read but not yet handled.
        inflight: Arc<Inflight>,
    },
    /// A decoded client request.
    Request {
        /// From whom.
        conn: ConnId,
        /// The client's request number.
        id: u64,
        /// The request.
        req: Request,
    },
    /// A connection closed (the client exited, closed it, or broke the protocol).
    Disconnected {
        /// Which.
        conn: ConnId,
    },
    /// Stop: leave the ring gracefully.
    Leave,
}

/// Who a submit was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client request, answered with OK or TRY_AGAIN.
    Client {
        /// The connection.
        conn: ConnId,
        /// The request number.
        id: u64,
        /// The service, told the outcome through [`Service::submitted`].
        service: ServiceId,
        /// A service-chosen tag.
        tag: u64,
    },
    /// A message of the executive itself (retried until accepted).
    Internal,
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
}

/// Most packets queued for one client before it is considered stuck and disconnected.
pub const OUTBOX_PACKETS: usize = 8192;

struct Conn {
    pid: u32,
    service: Option<Svc>,
    outbox: std::sync::mpsc::SyncSender<Outgoing>,
    socket: Arc<SeqpacketConn>,
    inflight: Arc<Inflight>,
}

/// Executive counters shown by `aisctl status`.
#[derive(Debug, Default, Clone)]
pub struct ExecCounters {
    /// Client connections accepted.
    pub ipc_connections: u64,
    /// Client requests handled.
    pub ipc_requests: u64,
    /// Requests answered TRY_AGAIN because Totem's send window or request queue was full.
    pub ipc_try_again: u64,
    /// Clients disconnected because they did not read their callbacks.
    pub ipc_overflow_disconnects: u64,
    /// Totem messages the executive could not decode (dropped, counted).
    pub exec_malformed: u64,
    /// Totem messages delivered.
    pub delivered: u64,
    /// Internal messages waiting for room in the send window.
    pub internal_pending: u64,
}

/// What services may do: answer clients, send callbacks, submit Totem messages, read the
/// membership.
pub struct Context<'a> {
    node: NodeId,
    ring: RingId,
    members: &'a [NodeId],
    flow_blocked: bool,
    conns: &'a HashMap<ConnId, Conn>,
    doomed: &'a mut Vec<ConnId>,
    submitter: &'a Submitter,
    tx: &'a Sender<Input>,
    retry: &'a mut VecDeque<(Bytes, DeliveryKind)>,
    counters: &'a mut ExecCounters,
}

impl Context<'_> {
    /// This node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The current regular configuration's ring.
    pub fn ring(&self) -> RingId {
        self.ring
    }

    /// The current regular configuration's members.
    pub fn members(&self) -> &[NodeId] {
        self.members
    }

    /// Whether Totem refused a submit and has not cleared since.
    pub fn flow_blocked(&self) -> bool {
        self.flow_blocked
    }

    /// The process id of a connection's client.
    pub fn pid(&self, conn: ConnId) -> Option<u32> {
        self.conns.get(&conn).map(|c| c.pid)
    }

    /// Whether the connection is still open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Answers request `id` of `conn`.
    pub fn reply(&mut self, conn: ConnId, id: u64, resp: Response) {
        self.send(conn, &Packet::Response { id, resp });
    }

    /// Sends a callback to `conn`.
    pub fn callback(&mut self, conn: ConnId, cb: Callback) {
        self.send(conn, &Packet::Callback(cb));
    }

    fn send(&mut self, conn: ConnId, packet: &Packet) {
        send_packet(self.conns, self.doomed, self.counters, conn, packet);
    }

    /// Submits a message for a client request: the service's [`Service::submitted`] gets the
    /// outcome with `tag`, and must answer the client. Returns false (nothing queued, nothing
    /// will be called back) when the request queue is full: answer TRY_AGAIN.
    pub fn submit_for(
        &mut self,
        conn: ConnId,
        id: u64,
        service: ServiceId,
        tag: u64,
        kind: DeliveryKind,
        msg: Bytes,
    ) -> bool {
        let origin = Origin::Client {
            conn,
            id,
            service,
            tag,
        };
        match self.try_submit(origin, kind, msg) {
            Ok(()) => true,
            Err(TrySubmitError::QueueFull | TrySubmitError::Stopped) => false,
            Err(_) => false,
        }
    }

    /// Submits `msgs` in order in one step of the Totem thread: the core takes them until its
    /// send queue is full; the service's [`Service::batch_submitted`] gets how many it took.
    /// Returns false (nothing queued, no call back) when the request queue is full.
    pub fn submit_batch_for(
        &mut self,
        conn: ConnId,
        id: u64,
        service: ServiceId,
        tag: u64,
        kind: DeliveryKind,
        msgs: Vec<Bytes>,
    ) -> bool {
        let origin = Origin::Client {
            conn,
            id,
            service,
            tag,
        };
        let tx = self.tx.clone();
        let call: CoreCall = Box::new(move |core| {
            let mut accepted = Vec::with_capacity(msgs.len());
            let mut refused = None;
            for m in msgs {
                match core.submit(Priority::default(), kind, m.clone()) {
                    Ok(id) => accepted.push((id, m)),
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            let _ = tx.send(Input::BatchSubmitted {
                origin,
                accepted,
                refused,
                kind,
                at: unix_nanos(),
            });
        });
        self.submitter.try_with_core(call).is_ok()
    }

    /// Runs `call` on the Totem thread with the core, in order with the submits made before
    /// (key installation). False when the Totem thread has stopped.
    pub fn with_core(&mut self, call: CoreCall) -> bool {
        self.submitter.with_core(call).is_ok()
    }

    /// Submits a message of the executive itself; retried until Totem accepts it.
    pub fn submit_internal(&mut self, kind: DeliveryKind, msg: Bytes) {
        if !self.retry.is_empty()
            || self
                .try_submit(Origin::Internal, kind, msg.clone())
                .is_err()
        {
            // Keep FIFO order behind earlier internal messages still waiting.
            self.retry.push_back((msg, kind));
        }
    }

    fn try_submit(
        &mut self,
        origin: Origin,
        kind: DeliveryKind,
        msg: Bytes,
    ) -> Result<(), TrySubmitError> {
        submit(self.submitter, self.tx, origin, kind, msg)
    }
}

/// Queues `packet` for `conn`; a client whose outbox is full is put on `doomed` (disconnected
/// by the caller).
fn send_packet(
    conns: &HashMap<ConnId, Conn>,
    doomed: &mut Vec<ConnId>,
    counters: &mut ExecCounters,
    conn: ConnId,
    packet: &Packet,
) {
    let Some(c) = conns.get(&conn) else {
        return;
    };
    match c.outbox.try_send(packet.encode()) {
        Ok(()) => {}
        Err(std::sync::mpsc::TrySendError::Full(_)) => {
            if !doomed.contains(&conn) {
                warn!(
                    "client pid {} (connection {conn}) is not reading its callbacks: {OUTBOX_PACKETS} \
                     packets queued; disconnecting it",
                    c.pid
                );
                counters.ipc_overflow_disconnects += 1;
                doomed.push(conn);
            }
        }
        // The writer ended (socket error); the reader reports the disconnect.
        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {}
    }
}

/// Queues `msg` on the driver; its answer comes back as [`Input::Submitted`].
fn submit(
    submitter: &Submitter,
    tx: &Sender<Input>,
    origin: Origin,
    kind: DeliveryKind,
    msg: Bytes,
) -> Result<(), TrySubmitError> {
    let tx = tx.clone();
    let payload = msg.clone();
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

/// An AIS service run by the executive.
pub trait Service {
    /// The service's id in executive messages.
    fn id(&self) -> ServiceId;

    /// A client announced it uses this service.
    fn hello(&mut self, _cx: &mut Context<'_>, _conn: ConnId) {}

    /// A client request for this service. The handler must answer it (now, or from
    /// [`Service::submitted`] when it submitted a message).
    fn lib_request(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, req: Request);

    /// The outcome of a [`Context::submit_for`]. The default answers OK, or TRY_AGAIN on
    /// backpressure.
    fn submitted(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        _tag: u64,
        result: Result<MsgId, SubmitError>,
    ) {
        cx.reply(conn, id, submit_response(result));
    }

    /// The outcome of a [`Context::submit_batch_for`]: `accepted` messages were taken, from
    /// the first. The default answers [`Response::Accepted`], or TRY_AGAIN when none was.
    fn batch_submitted(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        _tag: u64,
        accepted: usize,
        refused: Option<SubmitError>,
    ) {
        let resp = match (accepted, refused) {
            (0, Some(e)) => submit_response(Err(e)),
            (n, _) => Response::Accepted(u32::try_from(n).unwrap_or(u32::MAX)),
        };
        cx.reply(conn, id, resp);
    }

    /// A message of this service delivered by Totem (`body` after the executive header).
    ///
    /// # Errors
    /// An undecodable message: it is dropped and counted, nothing else changes.
    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError>;

    /// A configuration change (transitional or regular).
    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange);

    /// After each regular configuration: broadcast what the other members must learn.
    fn sync(&mut self, _cx: &mut Context<'_>) {}

    /// A connection closed.
    fn conn_closed(&mut self, cx: &mut Context<'_>, conn: ConnId);

    /// Counters for `aisctl status`.
    fn counters(&self, _out: &mut Vec<(&'static str, u64)>) {}
}

/// The client answer for a submit outcome.
pub fn submit_response(result: Result<MsgId, SubmitError>) -> Response {
    match result {
        Ok(_) => Response::Ok,
        Err(SubmitError::Backpressure) => Response::Error(AisError::TryAgain),
        Err(SubmitError::TooLarge { .. }) => Response::Error(AisError::TooBig),
    }
}

/// The executive: services, connections, membership.
pub struct Exec {
    node: NodeId,
    submitter: Submitter,
    tx: Sender<Input>,
    services: Vec<Box<dyn Service + Send>>,
    conns: HashMap<ConnId, Conn>,
    ring: RingId,
    members: Vec<NodeId>,
    flow_blocked: bool,
    retry: VecDeque<(Bytes, DeliveryKind)>,
    event_log: Option<EventLogWriter>,
    counters: ExecCounters,
    started: Instant,
    leaving: bool,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("node", &self.node)
            .field("ring", &self.ring)
            .field("members", &self.members)
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
    /// An executive for `node` with the given services; `tx` is the sending side of its own
    /// input queue (submit answers come back through it).
    pub fn new(
        node: NodeId,
        submitter: Submitter,
        tx: Sender<Input>,
        services: Vec<Box<dyn Service + Send>>,
        event_log: Option<EventLogWriter>,
    ) -> Exec {
        Exec {
            node,
            submitter,
            tx,
            services,
            conns: HashMap::new(),
            ring: RingId::default(),
            members: Vec::new(),
            flow_blocked: false,
            retry: VecDeque::new(),
            event_log,
            counters: ExecCounters::default(),
            started: Instant::now(),
            leaving: false,
        }
    }

    /// Handles one input.
    pub fn handle(&mut self, input: Input) -> Flow {
        match input {
            Input::Totem(event, at) => self.totem(event, at),
            Input::TotemClosed => return Flow::Stop,
            Input::Submitted {
                origin,
                payload,
                kind,
                result,
                at,
            } => self.submitted(origin, payload, kind, result, at),
            Input::BatchSubmitted {
                origin,
                accepted,
                refused,
                kind,
                at,
            } => self.batch_submitted(origin, &accepted, refused, kind, at),
            Input::Connected {
                conn,
                pid,
                uid,
                outbox,
                socket,
                inflight,
            } => {
                self.counters.ipc_connections += 1;
                debug!("client pid {pid} uid {uid} connected (connection {conn})");
                self.conns.insert(
                    conn,
                    Conn {
                        pid,
                        service: None,
                        outbox,
                        socket,
                        inflight,
                    },
                );
            }
            Input::Request { conn, id, req } => {
                self.request(conn, id, req);
                if let Some(c) = self.conns.get(&conn) {
                    c.inflight.done();
                }
            }
            Input::Disconnected { conn } => self.close(conn),
            Input::Leave => self.leaving = true,
        }
        Flow::Continue
    }

    /// Work between batches of inputs: retry internal submits, disconnect stuck clients, flush
    /// the event log.
    pub fn tick(&mut self) {
        self.retry_internal();
        if let Some(log) = &mut self.event_log
            && let Err(e) = log.flush()
        {
            warn!("event log: {e}");
        }
    }

    /// Whether a leave was asked for.
    pub fn leaving(&self) -> bool {
        self.leaving
    }

    fn with_services(&mut self, mut f: impl FnMut(&mut dyn Service, &mut Context<'_>)) {
        let mut doomed = Vec::new();
        {
            let mut cx = Context {
                node: self.node,
                ring: self.ring,
                members: &self.members,
                flow_blocked: self.flow_blocked,
                conns: &self.conns,
                doomed: &mut doomed,
                submitter: &self.submitter,
                tx: &self.tx,
                retry: &mut self.retry,
                counters: &mut self.counters,
            };
            for s in &mut self.services {
                f(s.as_mut(), &mut cx);
            }
        }
        self.close_doomed(doomed);
    }

    fn with_service(
        &mut self,
        id: ServiceId,
        mut f: impl FnMut(&mut dyn Service, &mut Context<'_>),
    ) {
        self.with_services(|s, cx| {
            if s.id() == id {
                f(s, cx);
            }
        });
    }

    fn reply(&mut self, conn: ConnId, id: u64, resp: Response) {
        let mut doomed = Vec::new();
        send_packet(
            &self.conns,
            &mut doomed,
            &mut self.counters,
            conn,
            &Packet::Response { id, resp },
        );
        self.close_doomed(doomed);
    }

    fn close_doomed(&mut self, doomed: Vec<ConnId>) {
        for conn in doomed {
            if let Some(c) = self.conns.get(&conn) {
                let _ = c.socket.shutdown();
            }
            self.close(conn);
        }
    }

    fn request(&mut self, conn: ConnId, id: u64, req: Request) {
        self.counters.ipc_requests += 1;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let service = match (&req, c.service) {
            (Request::Hello { version, service }, None) => {
                if *version != crate::ipc::proto::VERSION {
                    self.reply(conn, id, Response::Error(AisError::Version));
                    return;
                }
                c.service = Some(*service);
                let service = *service;
                self.reply(conn, id, Response::Ok);
                let target = match service {
                    Svc::Cpg => Some(ServiceId::Cpg),
                    Svc::Evs => Some(ServiceId::Evs),
                    Svc::Admin => None,
                };
                if let Some(t) = target {
                    self.with_service(t, |s, cx| s.hello(cx, conn));
                }
                return;
            }
            (Request::Hello { .. }, Some(_)) | (_, None) => {
                self.reply(conn, id, Response::Error(AisError::BadOperation));
                return;
            }
            (Request::Status, Some(_)) => {
                let status = self.status();
                self.reply(conn, id, Response::Status(status));
                return;
            }
            (Request::Rekey, Some(Svc::Admin)) => {
                self.with_service(ServiceId::Keys, |s, cx| {
                    s.lib_request(cx, conn, id, Request::Rekey)
                });
                return;
            }
            (_, Some(s)) => s,
        };
        let target = match (service, &req) {
            (
                Svc::Cpg,
                Request::CpgJoin { .. }
                | Request::CpgLeave { .. }
                | Request::CpgMcast { .. }
                | Request::CpgMcastBatch { .. }
                | Request::CpgMembership { .. }
                | Request::CpgLocalGet
                | Request::CpgFlowControlGet
                | Request::CpgGroups,
            ) => ServiceId::Cpg,
            (
                Svc::Evs,
                Request::EvsJoin { .. }
                | Request::EvsLeave { .. }
                | Request::EvsMcast { .. }
                | Request::EvsMembershipGet,
            ) => ServiceId::Evs,
            _ => {
                self.reply(conn, id, Response::Error(AisError::BadOperation));
                return;
            }
        };
        let mut req = Some(req);
        self.with_service(target, |s, cx| {
            if let Some(r) = req.take() {
                s.lib_request(cx, conn, id, r);
            }
        });
    }

    fn submitted(
        &mut self,
        origin: Origin,
        payload: Bytes,
        kind: DeliveryKind,
        result: Result<MsgId, SubmitError>,
        at: u64,
    ) {
        if let (Ok(msg), Some(log)) = (&result, &mut self.event_log)
            && let Err(e) = log.send_at(at, *msg, kind, 0, &payload)
        {
            warn!("event log: {e}");
        }
        match origin {
            Origin::Client {
                conn,
                id,
                service,
                tag,
            } => {
                if result.is_err() {
                    self.counters.ipc_try_again += 1;
                }
                self.with_service(service, |s, cx| s.submitted(cx, conn, id, tag, result));
            }
            Origin::Internal => {
                if let Err(e) = result {
                    // Refused by the core (backpressure): back to the front of the retry queue.
                    debug!("internal message refused by Totem ({e}); it will be retried");
                    self.retry.push_front((payload, kind));
                }
            }
        }
    }

    fn batch_submitted(
        &mut self,
        origin: Origin,
        accepted: &[(MsgId, Bytes)],
        refused: Option<SubmitError>,
        kind: DeliveryKind,
        at: u64,
    ) {
        if let Some(log) = &mut self.event_log {
            for (msg, payload) in accepted {
                if let Err(e) = log.send_at(at, *msg, kind, 0, payload) {
                    warn!("event log: {e}");
                }
            }
        }
        if accepted.is_empty() {
            self.counters.ipc_try_again += 1;
        }
        if let Origin::Client {
            conn,
            id,
            service,
            tag,
        } = origin
        {
            let n = accepted.len();
            self.with_service(service, |s, cx| {
                s.batch_submitted(cx, conn, id, tag, n, refused)
            });
        }
    }

    fn retry_internal(&mut self) {
        while let Some((msg, kind)) = self.retry.pop_front() {
            if submit(
                &self.submitter,
                &self.tx,
                Origin::Internal,
                kind,
                msg.clone(),
            )
            .is_err()
            {
                self.retry.push_front((msg, kind));
                break;
            }
        }
        self.counters.internal_pending = self.retry.len() as u64;
    }

    fn totem(&mut self, event: Event, at: u64) {
        if let Some(log) = &mut self.event_log
            && let Err(e) = log.event_at(at, &event)
        {
            warn!("event log: {e}");
        }
        match event {
            Event::Deliver(d) => {
                self.counters.delivered += 1;
                let payload = d.payload;
                if payload.len() < EXEC_HEADER || payload[0] != EXEC_VERSION {
                    self.counters.exec_malformed += 1;
                    warn!(
                        "dropped a Totem message from node {} without an executive header",
                        d.id.sender
                    );
                    return;
                }
                let kind = u16::from_le_bytes([payload[2], payload[3]]);
                let target = match payload[1] {
                    1 => ServiceId::Cpg,
                    2 => ServiceId::Evs,
                    3 => ServiceId::Keys,
                    other => {
                        self.counters.exec_malformed += 1;
                        warn!(
                            "dropped a Totem message from node {} for unknown service {other}",
                            d.id.sender
                        );
                        return;
                    }
                };
                let body = payload.slice(EXEC_HEADER..);
                let sender = d.id.sender;
                let mut failed = None;
                self.with_service(target, |s, cx| {
                    if let Err(e) = s.exec_deliver(cx, sender, kind, body.clone()) {
                        failed = Some(e);
                    }
                });
                if let Some(e) = failed {
                    self.counters.exec_malformed += 1;
                    warn!("dropped a malformed {target:?} message from node {sender}: {e}");
                }
            }
            Event::ConfigChange(c) => {
                if c.kind == ConfigKind::Regular {
                    self.ring = c.ring;
                    self.members = c.members.clone();
                }
                log_config(&c);
                self.with_services(|s, cx| s.confchg(cx, &c));
                if c.kind == ConfigKind::Regular {
                    self.with_services(|s, cx| s.sync(cx));
                }
            }
            Event::FlowControl(FlowControl::Blocked) => {
                if !self.flow_blocked {
                    info!("flow control: Totem's send window is full; clients get TRY_AGAIN");
                }
                self.flow_blocked = true;
            }
            Event::FlowControl(FlowControl::Clear) => {
                self.flow_blocked = false;
                self.retry_internal();
            }
            // Persisted by the caller's sink wrapper (see aisexec); nothing to do here.
            Event::RingSeq(_) | Event::Observe(_) => {}
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            debug!("client pid {} disconnected (connection {conn})", c.pid);
        } else {
            return;
        }
        self.with_services(|s, cx| s.conn_closed(cx, conn));
        if let Some(c) = self.conns.remove(&conn) {
            let _ = c.socket.shutdown();
            c.inflight.close();
        }
    }

    /// The status for `aisctl status`.
    pub fn status(&self) -> Status {
        let d = self.submitter.status();
        let core = &d.stats.core;
        let t = &d.stats.transport;
        let mut counters: Vec<(&'static str, u64)> = vec![
            ("uptime_ms", self.started.elapsed().as_millis() as u64),
            ("frames_in", t.frames_in),
            ("frames_out", t.frames_out),
            ("bytes_in", t.bytes_in),
            ("bytes_out", t.bytes_out),
            ("rx_truncated", t.rx_truncated),
            ("tx_errors", t.tx_errors),
            ("unknown_sources", t.unknown_sources),
            ("malformed_frames", core.malformed),
            ("foreign_ring_frames", core.foreign_ring),
            ("messages_delivered", core.messages_delivered),
            ("frames_sent", core.frames_sent),
            ("frames_retransmitted", core.frames_retransmitted),
            ("token_losses", core.token_losses),
            ("token_retransmits", core.token_retransmits),
            ("gathers", core.gathers),
            ("rings_installed", core.rings_installed),
            ("failed_to_receive", core.failed_to_receive),
            ("backpressure", core.backpressure),
            (
                "invalid_digest",
                core.crypto.bad_tag + core.crypto.bad_crc + core.crypto.malformed,
            ),
            ("unknown_key_epoch", core.crypto.unknown_epoch),
            (
                "replayed_frames",
                core.crypto.replayed + core.crypto.too_old + core.crypto.misdirected,
            ),
            ("frames_sealed", core.crypto.sealed),
            ("queued_messages", d.queued_messages as u64),
            ("ipc_clients", self.conns.len() as u64),
            ("ipc_connections", self.counters.ipc_connections),
            ("ipc_requests", self.counters.ipc_requests),
            ("ipc_try_again", self.counters.ipc_try_again),
            (
                "ipc_overflow_disconnects",
                self.counters.ipc_overflow_disconnects,
            ),
            ("exec_malformed", self.counters.exec_malformed),
            ("internal_pending", self.retry.len() as u64),
        ];
        for s in &self.services {
            s.counters(&mut counters);
        }
        Status {
            node: self.node.0,
            state: Bytes::from(state_name(d.state)),
            ring: Bytes::from(d.ring.to_string()),
            members: self.members.iter().map(|n| n.0).collect(),
            counters: counters
                .into_iter()
                .map(|(name, value)| Counter {
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

fn log_config(c: &ConfigChange) {
    let kind = match c.kind {
        ConfigKind::Regular => "regular",
        ConfigKind::Transitional => "transitional",
    };
    let ids = |v: &[NodeId]| {
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
