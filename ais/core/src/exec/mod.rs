//! The executive core: every service's state, the request routing and the service
//! synchronisation after each regular configuration, with no threads, sockets, clocks, files
//! or randomness inside.
//!
//! Inputs are method calls ([`ExecCore::connected`], [`ExecCore::request`],
//! [`ExecCore::disconnected`], [`ExecCore::totem`], [`ExecCore::submitted`],
//! [`ExecCore::batch_submitted`], [`ExecCore::random`], [`ExecCore::tick`] with the time);
//! what the core wants done comes out as [`Effect`] values from [`ExecCore::poll_effect`]. The runtime
//! (`aisexec`'s loop, `ais::runtime::Exec`, or the simulator's application hook in the tests)
//! carries them out and reports back: every [`Effect::Submit`] and [`Effect::SubmitBatch`]
//! gets exactly one [`ExecCore::submitted`] / [`ExecCore::batch_submitted`] (a full request
//! queue is reported as [`SubmitError::Backpressure`]), every [`Effect::NeedRandom`] one
//! [`ExecCore::random`].
//!
//! Calling contract: after any input, drain [`ExecCore::poll_effect`] until it returns `None`
//! (carrying out an effect may feed an input back, which queues more effects).
//!
//! # Internal messages
//! The executive's own Totem messages (sync barriers, CPG join lists and process-down
//! leaves, key confirmations) go out one at a time in the order they were made: the next one
//! is handed to the runtime only when Totem took the previous one. A refused one is offered
//! again when flow control clears or at the next [`ExecCore::tick`].
//!
//! # Service synchronisation
//! After every regular configuration each service that [`Service::syncs`] is brought to one
//! state at every member, one service after the other in registration order (corosync's
//! `exec/sync.c` design): [`Service::sync_init`], then [`Service::sync_process`] until it
//! says it is done (it submits what the others must learn), then this node sends a barrier
//! for that service as a **safe** message; when every member's barrier for the service has
//! been delivered, [`Service::sync_activate`] runs (at the same point of the total order at
//! every member) and the next service starts. A regular configuration during a sync calls
//! [`Service::sync_abort`] on the service being synchronised and starts over. Client requests
//! for a service that is not synchronised yet (also before its first sync, when a restarted
//! node knows nothing of the cluster) wait in the core and are handled, in order, when it
//! activates.

pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
pub(crate) mod testkit;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Buf, Bytes};
use dataplane::stats::{Visit, Visitor};
use totem_dpdk::crypto::EpochKey;
use totem_dpdk::srp::{ConfigChange, ConfigKind, Event, FlowControl, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId};
use tracing::{debug, info, warn};

use crate::key::KeyMaterial;
use ais_proto::codec::{DecodeError, Writer};
use ais_proto::ipc::{AisError, Encoded, Kind, Message, Nothing, Reply, Request, decode_body};
use ais_proto::ring::{self, SyncMessage};
use flow::{OutboxDepth, OutboxGate, OutboxLimits};

pub use ais_proto::ipc::ServiceId;

pub use ais_proto::ring::{EXEC_HEADER, EXEC_VERSION, SYNC};

/// A connection's number, unique for the life of the executive.
pub type ConnId = u64;

/// Who a submit was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client request, answered by the service from [`Service::submitted`].
    Client {
        /// The connection.
        conn: ConnId,
        /// The request number.
        id: u64,
        /// The service, told the outcome.
        service: ServiceId,
        /// A service-chosen tag.
        tag: u64,
    },
    /// A message of the executive itself (offered again until accepted).
    Internal,
}

/// What a component life-cycle command does (SA Forum CLC-CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClcKind {
    /// Start the component: the process the command starts is the component, watched for
    /// exit (passive monitoring) until it is cleaned up.
    Instantiate,
    /// Stop the component gracefully.
    Terminate,
    /// Stop the component at once: the command, or without one (`command: None`) SIGKILL to
    /// the component's processes.
    Cleanup,
    /// The node failfast action.
    Failfast,
    /// A component of a built-in type (the executive implements it, no command) is to hold
    /// CSI `csi` of SI `si` (indices of the AMF's `Flat` model) active (`active`), or not at
    /// all (standby, quiesced and removal alike). For an IP address: added and announced, or
    /// removed. `command` is `None`; `Succeeded` answers the assignment, anything else refuses
    /// it (a component failure).
    Csi {
        /// The SI, an index of `Flat::sis`.
        si: u32,
        /// The CSI, an index of that SI's CSIs.
        csi: u32,
        /// Held active, or not held.
        active: bool,
    },
}

/// A component life-cycle command for the runtime to run (`/bin/sh -c` on this node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClcCommand {
    /// Its number, quoted back in [`ExecCore::clc_result`].
    pub id: u64,
    /// What it does.
    pub kind: ClcKind,
    /// The component's name (its SA Forum DN; empty for failfast), passed to the command as
    /// `SA_AMF_COMPONENT_NAME`.
    pub comp: String,
    /// The shell command; `None` for a cleanup by SIGKILL and for [`ClcKind::Csi`] (and a
    /// built-in component's commands are not run: the runtime does its work).
    pub command: Option<String>,
    /// Its timeout, ms.
    pub timeout_ms: u64,
}

/// What became of a [`ClcCommand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClcOutcome {
    /// It succeeded (an instantiation: the process started).
    Succeeded,
    /// It failed (exit status not 0, or could not start).
    Failed,
    /// It did not finish in time (its processes were killed).
    TimedOut,
    /// The process an instantiation started exited (passive monitoring).
    Exited,
}

/// What the core asks the runtime to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send an answer or a callback, encoded, to `conn`.
    Send {
        /// The connection.
        conn: ConnId,
        /// The packet.
        packet: Encoded,
    },
    /// Close `conn`: it sent a request that does not decode (logged and counted as
    /// `ipc_malformed`). The runtime reports the close back with
    /// [`ExecCore::disconnected`].
    Disconnect {
        /// The connection.
        conn: ConnId,
    },
    /// Answer `aisctl status` for `conn` (the runtime adds the Totem counters to
    /// [`ExecCore::counters`]).
    Status {
        /// The connection.
        conn: ConnId,
        /// The request number.
        id: u64,
    },
    /// Submit one message to Totem; answer with [`ExecCore::submitted`].
    Submit {
        /// For whom.
        origin: Origin,
        /// Its guarantee.
        kind: DeliveryKind,
        /// The message (executive header included).
        msg: Bytes,
    },
    /// Submit messages in order in one step of the Totem thread, until one is refused;
    /// answer with [`ExecCore::batch_submitted`].
    SubmitBatch {
        /// For whom.
        origin: Origin,
        /// Their guarantee.
        kind: DeliveryKind,
        /// The messages.
        msgs: Vec<Bytes>,
    },
    /// Open frames of a new key epoch in the Totem core, still sealing with the current one
    /// (a rekey's first step), in order with the submits before.
    AcceptKey(EpochKey),
    /// Seal with a new frame key epoch in the Totem core, in order with the submits before.
    InstallKey(EpochKey),
    /// Retire the previous key epoch in the Totem core.
    RetirePreviousKey,
    /// Write the key file (durably) with this key.
    PersistKey(KeyMaterial),
    /// Take network `net` out of use (`enabled` false) or put it back (redundant rings, the
    /// operator's `aisctl ring disable|enable`); answer `conn`'s request `id` with `Ok` or an
    /// error.
    SetNetwork {
        /// The connection.
        conn: ConnId,
        /// The request number.
        id: u64,
        /// The network (0 to 3).
        net: u8,
        /// In use or not.
        enabled: bool,
    },
    /// Run a component life-cycle command on this node for `service` (the AMF); answer
    /// with [`ExecCore::clc_result`], once for the command and, for an instantiation, once
    /// more when the process it started exits ([`ClcOutcome::Exited`]).
    Clc {
        /// The service that asked.
        service: ServiceId,
        /// The command.
        command: ClcCommand,
    },
    /// Draw `len` random bytes from the operating system for `service`; answer with
    /// [`ExecCore::random`].
    NeedRandom {
        /// The service that asked.
        service: ServiceId,
        /// The request this is for.
        conn: ConnId,
        /// Its number.
        id: u64,
        /// How many bytes.
        len: usize,
    },
}

impl Effect {
    /// The answer this effect sends, decoded with `R` as the service's answers: (connection,
    /// request id, answer). `None` for any other effect. For tests and the simulator, which
    /// look at what clients would read.
    ///
    /// # Panics
    /// The answer does not decode as a `Reply<R>`: a service answered with another
    /// service's type.
    pub fn reply<R: Message>(&self) -> Option<(ConnId, u64, Reply<R>)> {
        let Effect::Send { conn, packet } = self else {
            return None;
        };
        let frame = packet.frame().expect("the core encodes valid headers");
        (frame.kind == Kind::Response).then(|| {
            let reply = frame
                .body()
                .unwrap_or_else(|e| panic!("answer op {} does not decode: {e}", frame.op));
            (*conn, frame.id, reply)
        })
    }

    /// The callback this effect sends, decoded as a `C`: (connection, callback). `None` for
    /// any other effect.
    ///
    /// # Panics
    /// The callback does not decode as a `C`.
    pub fn callback<C: Message>(&self) -> Option<(ConnId, C)> {
        let Effect::Send { conn, packet } = self else {
            return None;
        };
        let frame = packet.frame().expect("the core encodes valid headers");
        (frame.kind == Kind::Callback).then(|| {
            let cb = frame
                .body()
                .unwrap_or_else(|e| panic!("callback op {} does not decode: {e}", frame.op));
            (*conn, cb)
        })
    }
}

/// A client connection, as the core knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    pid: u32,
    /// Index in the service list of the service its `Hello` named.
    service: Option<usize>,
}

/// The votes of the nodes the quorum service last learnt, and how many make quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Votes {
    /// Each node's votes.
    pub votes: BTreeMap<NodeId, u32>,
    /// Votes needed for quorum.
    pub needed: u32,
}

/// What services may do: read the membership and connections, and queue effects.
pub struct Context<'a> {
    node: NodeId,
    ring: RingId,
    members: &'a [NodeId],
    flow_blocked: bool,
    backlogged: bool,
    now: u64,
    quorate: &'a mut bool,
    votes: &'a mut Option<Votes>,
    conns: &'a BTreeMap<ConnId, ConnInfo>,
    effects: &'a mut VecDeque<Effect>,
    internal: &'a mut VecDeque<(Bytes, DeliveryKind)>,
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

    /// Whether a client's outbox is backlogged at this node or at another member
    /// ([`flow`]): services answer their clients' multicasts TRY_AGAIN meanwhile.
    pub fn backlogged(&self) -> bool {
        self.backlogged
    }

    /// The time of the last [`ExecCore::tick`]: nanoseconds since the UNIX epoch on this
    /// node's clock (the SA Forum's absolute times; 0 before the first tick).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Whether this node's partition has quorum: the one place services ask before acting
    /// (true when no quorum service runs).
    pub fn quorate(&self) -> bool {
        *self.quorate
    }

    /// Sets what [`Context::quorate`] answers (the quorum service, at each configuration).
    pub fn set_quorate(&mut self, quorate: bool) {
        *self.quorate = quorate;
    }

    /// Sets the votes [`Context::quorate_with`] counts (the quorum service, at each
    /// configuration).
    pub fn set_votes(&mut self, votes: Votes) {
        *self.votes = Some(votes);
    }

    /// Whether `nodes` together would hold quorum, by the votes the quorum service last
    /// learnt (a node it has not seen counts no votes). True when no quorum service runs:
    /// then every partition serves.
    pub fn quorate_with(&self, nodes: &BTreeSet<NodeId>) -> bool {
        match self.votes.as_ref() {
            None => true,
            Some(v) => {
                // Votes come from other nodes: the sum saturates (as the quorum service's).
                let total = nodes.iter().fold(0u32, |sum, n| {
                    sum.saturating_add(v.votes.get(n).copied().unwrap_or(0))
                });
                total >= v.needed
            }
        }
    }

    /// The process id of a connection's client.
    pub fn pid(&self, conn: ConnId) -> Option<u32> {
        self.conns.get(&conn).map(|c| c.pid)
    }

    /// Whether the connection is still open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Answers request `id` of `conn` with one of the service's answers or a shared one
    /// ([`Reply::Ok`], [`Reply::Error`]).
    pub fn reply<R: Message>(&mut self, conn: ConnId, id: u64, resp: Reply<R>) {
        let packet = Encoded::reply(id, &resp);
        self.effects.push_back(Effect::Send { conn, packet });
    }

    /// Answers request `id` of `conn`: done.
    pub fn ok(&mut self, conn: ConnId, id: u64) {
        self.reply(conn, id, Reply::<Nothing>::Ok);
    }

    /// Answers request `id` of `conn`: refused with `e`.
    pub fn error(&mut self, conn: ConnId, id: u64, e: AisError) {
        self.reply(conn, id, Reply::<Nothing>::Error(e));
    }

    /// Sends one of the service's callbacks to `conn`.
    pub fn callback<C: Message>(&mut self, conn: ConnId, cb: &C) {
        let packet = Encoded::callback(cb);
        self.effects.push_back(Effect::Send { conn, packet });
    }

    /// Sends a packet the service encoded itself (a callback built in place, such as
    /// `ais_proto::cpg::Callback::deliver_packet`) to `conn`.
    pub fn send(&mut self, conn: ConnId, packet: Encoded) {
        self.effects.push_back(Effect::Send { conn, packet });
    }

    /// Submits a message for a client request: the service's [`Service::submitted`] gets the
    /// outcome with `tag` (a full queue comes back as [`SubmitError::Backpressure`]) and must
    /// answer the client.
    pub fn submit_for(
        &mut self,
        conn: ConnId,
        id: u64,
        service: ServiceId,
        tag: u64,
        kind: DeliveryKind,
        msg: Bytes,
    ) {
        let origin = Origin::Client {
            conn,
            id,
            service,
            tag,
        };
        self.effects.push_back(Effect::Submit { origin, kind, msg });
    }

    /// Submits `msgs` in order in one step of the Totem thread: the core takes them until its
    /// send queue is full; the service's [`Service::batch_submitted`] gets how many it took.
    pub fn submit_batch_for(
        &mut self,
        conn: ConnId,
        id: u64,
        service: ServiceId,
        tag: u64,
        kind: DeliveryKind,
        msgs: Vec<Bytes>,
    ) {
        let origin = Origin::Client {
            conn,
            id,
            service,
            tag,
        };
        self.effects
            .push_back(Effect::SubmitBatch { origin, kind, msgs });
    }

    /// Submits a message of the executive itself: sent after every internal message made
    /// before it, offered again until Totem takes it.
    pub fn submit_internal(&mut self, kind: DeliveryKind, msg: Bytes) {
        self.internal.push_back((msg, kind));
    }

    /// Asks the runtime to run a component life-cycle command; the outcome comes to
    /// [`Service::clc_result`].
    pub fn clc(&mut self, service: ServiceId, command: ClcCommand) {
        self.effects.push_back(Effect::Clc { service, command });
    }

    /// Asks the runtime for `len` random bytes, delivered to [`Service::random`].
    pub fn need_random(&mut self, service: ServiceId, conn: ConnId, id: u64, len: usize) {
        self.effects.push_back(Effect::NeedRandom {
            service,
            conn,
            id,
            len,
        });
    }

    /// Has the Totem core open frames of a new key epoch, still sealing with the current one
    /// (after the submits made before).
    pub fn accept_key(&mut self, key: EpochKey) {
        self.effects.push_back(Effect::AcceptKey(key));
    }

    /// Has the Totem core seal with a new key epoch (after the submits made before).
    pub fn install_key(&mut self, key: EpochKey) {
        self.effects.push_back(Effect::InstallKey(key));
    }

    /// Retires the previous key epoch in the Totem core.
    pub fn retire_previous_key(&mut self) {
        self.effects.push_back(Effect::RetirePreviousKey);
    }

    /// Writes the key file.
    pub fn persist_key(&mut self, key: KeyMaterial) {
        self.effects.push_back(Effect::PersistKey(key));
    }

    /// Takes a network out of use or puts it back, answering `conn`'s request `id`
    /// ([`Effect::SetNetwork`]).
    pub fn set_network(&mut self, conn: ConnId, id: u64, net: u8, enabled: bool) {
        self.effects.push_back(Effect::SetNetwork {
            conn,
            id,
            net,
            enabled,
        });
    }
}

#[cfg(test)]
impl<'a> Context<'a> {
    /// A context outside any core, for a service's own unit tests.
    pub(crate) fn for_tests(
        node: NodeId,
        conns: &'a BTreeMap<ConnId, ConnInfo>,
        effects: &'a mut VecDeque<Effect>,
        internal: &'a mut VecDeque<(Bytes, DeliveryKind)>,
        quorate: &'a mut bool,
        votes: &'a mut Option<Votes>,
    ) -> Context<'a> {
        Context {
            node,
            ring: RingId::default(),
            members: &[],
            flow_blocked: false,
            backlogged: false,
            now: 0,
            quorate,
            votes,
            conns,
            effects,
            internal,
        }
    }
}

/// The client answer for a submit outcome.
pub fn submit_reply<R>(result: Result<MsgId, SubmitError>) -> Reply<R> {
    match result {
        Ok(_) => Reply::Ok,
        Err(SubmitError::Backpressure) => Reply::Error(AisError::TryAgain),
        Err(SubmitError::TooLarge { .. }) => Reply::Error(AisError::TooBig),
    }
}

/// An AIS service run by the executive: a pure state machine; everything it does goes through
/// its [`Context`].
///
/// A service is registered by adding it to the list given to [`ExecCore::new`]: its
/// [`Service::id`] routes both the connections whose `Hello` names it and the executive
/// messages whose header carries it; it decodes its own requests and messages.
pub trait Service {
    /// The service's id: its protocol's `ais_proto::ipc::Protocol::ID`.
    fn id(&self) -> ServiceId;

    /// Its name in logs (the protocol's `NAME`).
    fn name(&self) -> &'static str;

    /// The core was built with this service (corosync's `exec_init_fn`): before any input.
    fn exec_init(&mut self, _cx: &mut Context<'_>) {}

    /// A client announced it uses this service.
    fn hello(&mut self, _cx: &mut Context<'_>, _conn: ConnId) {}

    /// A client request for this service: operation `op` with its undecoded `body`. The
    /// handler decodes it (`ais_proto::ipc::decode_body` with its protocol's request type)
    /// and must answer it (now, or from [`Service::submitted`] when it submitted a message).
    ///
    /// # Errors
    /// The body does not decode: nothing was done. [`DecodeError::UnknownOp`] is answered
    /// `SA_AIS_ERR_BAD_OPERATION`; any other error closes the connection (counted as
    /// `ipc_malformed`).
    fn lib_request(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        op: u16,
        body: Bytes,
    ) -> Result<(), DecodeError>;

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
        cx.reply(conn, id, submit_reply::<Nothing>(result));
    }

    /// The outcome of a [`Context::submit_batch_for`]: `accepted` messages were taken, from
    /// the first. The default answers OK when all or some were, TRY_AGAIN when none was (a
    /// service that batches says how many with an answer of its own).
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
            (0, Some(e)) => submit_reply::<Nothing>(Err(e)),
            _ => Reply::Ok,
        };
        cx.reply(conn, id, resp);
    }

    /// The outcome of a command asked for with [`Context::clc`].
    fn clc_result(&mut self, _cx: &mut Context<'_>, _id: u64, _outcome: ClcOutcome) {}

    /// Random bytes asked for with [`Context::need_random`].
    fn random(&mut self, _cx: &mut Context<'_>, _conn: ConnId, _id: u64, _bytes: &[u8]) {}

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

    /// Whether the service has replicated state to synchronise after each regular
    /// configuration (then its requests wait while it is being synchronised).
    fn syncs(&self) -> bool {
        false
    }

    /// Its synchronisation starts, in the ring of [`Context::ring`].
    fn sync_init(&mut self, _cx: &mut Context<'_>) {}

    /// Called until it returns true: submit what the other members must learn.
    fn sync_process(&mut self, _cx: &mut Context<'_>) -> bool {
        true
    }

    /// Every member passed the barrier: apply what was learnt.
    fn sync_activate(&mut self, _cx: &mut Context<'_>) {}

    /// A regular configuration came before the barrier: forget what was learnt.
    fn sync_abort(&mut self, _cx: &mut Context<'_>) {}

    /// A connection closed.
    fn conn_closed(&mut self, cx: &mut Context<'_>, conn: ConnId);

    /// Time passed ([`Context::now`]): act on timers.
    fn tick(&mut self, _cx: &mut Context<'_>) {}

    /// When the service next wants [`Service::tick`] called (nanoseconds, the clock of
    /// [`Context::now`]) sooner than the executive's regular tick, for a timer that must fire
    /// on time (the AMF's self-fence and fence delay). `None`: the regular tick will do.
    fn next_timer(&self) -> Option<u64> {
        None
    }

    /// This node left its ring's operational state to form a new membership
    /// ([`Event::Gather`]): until the next regular configuration it hears of the others only
    /// through [`Service::heard`].
    fn gather(&mut self, _cx: &mut Context<'_>) {}

    /// While a membership forms, `node` showed that it is alive and counts this node in
    /// ([`Event::Heard`]).
    fn heard(&mut self, _cx: &mut Context<'_>, _node: NodeId) {}

    /// `node` counts this node failed and forms a ring without it ([`Event::Excluded`]).
    fn excluded(&mut self, _cx: &mut Context<'_>, _node: NodeId) {}

    /// Its statistics for `aisctl status` (names prefixed with the service's name).
    fn stats(&self, _v: &mut dyn Visitor) {}
}

/// Most client requests held while their service is being synchronised; more are answered
/// TRY_AGAIN (a sync lasts a few token rotations; this bounds what a client pipelining
/// requests meanwhile can pile up).
pub const MAX_HELD: usize = 4096;

/// A synchronisation in progress.
#[derive(Debug)]
struct SyncRun {
    ring: RingId,
    members: Vec<NodeId>,
    /// Indices (into the service list) of the services to synchronise, in order.
    order: Vec<usize>,
    /// Position in `order` of the service being synchronised.
    step: usize,
    /// This node sent its barrier for the current step.
    barrier_sent: bool,
    /// Members whose barrier for the current step was delivered.
    barriers: BTreeSet<NodeId>,
}

/// Counters of the core, for `aisctl status`.
#[derive(Debug, Default, Clone)]
pub struct CoreCounters {
    /// Client requests handled.
    pub ipc_requests: u64,
    /// Client requests that did not decode (their connection was closed).
    pub ipc_malformed: u64,
    /// Submits answered with backpressure (clients told TRY_AGAIN).
    pub ipc_try_again: u64,
    /// Totem messages the executive could not decode (dropped, counted).
    pub exec_malformed: u64,
    /// Totem messages of another executive protocol version (dropped, counted; logged once
    /// per node and version).
    pub exec_version_refused: u64,
    /// Totem messages delivered.
    pub delivered: u64,
    /// Service synchronisations started, completed, and aborted by a configuration change.
    pub syncs_started: u64,
    /// See `syncs_started`.
    pub syncs_completed: u64,
    /// See `syncs_started`.
    pub syncs_aborted: u64,
    /// Client requests held while their service was being synchronised.
    pub requests_held: u64,
    /// Times this node became backlogged (a progressing client's outbox above the
    /// high-water mark, [`flow`]).
    pub outbox_backlogs: u64,
    /// Clients found stalled with their outbox above the high-water mark (they stop holding
    /// the senders).
    pub outbox_stalls: u64,
}

/// A client request not decoded yet (held while its service is being synchronised).
#[derive(Debug)]
struct Held {
    conn: ConnId,
    id: u64,
    op: u16,
    body: Bytes,
}

impl Visit for CoreCounters {
    fn visit(&self, v: &mut dyn Visitor) {
        v.counter("ipc_requests", self.ipc_requests);
        v.counter("ipc_malformed", self.ipc_malformed);
        v.counter("ipc_try_again", self.ipc_try_again);
        v.counter("exec_malformed", self.exec_malformed);
        v.counter("exec_version_refused", self.exec_version_refused);
        v.counter("exec_delivered", self.delivered);
        v.counter("syncs_started", self.syncs_started);
        v.counter("syncs_completed", self.syncs_completed);
        v.counter("syncs_aborted", self.syncs_aborted);
        v.counter("requests_held_for_sync", self.requests_held);
        v.counter("outbox_backlogs", self.outbox_backlogs);
        v.counter("outbox_stalls", self.outbox_stalls);
    }
}

/// The core's counters, its queues, and every service's statistics, for `aisctl status`.
impl Visit for ExecCore {
    fn visit(&self, v: &mut dyn Visitor) {
        v.gauge("ipc_clients", self.conns.len() as u64);
        self.counters.visit(v);
        v.gauge("internal_pending", self.internal.len() as u64);
        v.gauge("requests_held", self.held.len() as u64);
        v.gauge("outbox_backlogged", u64::from(self.gate.is_on()));
        v.gauge("outbox_backlogged_nodes", self.backlogged.len() as u64);
        for s in &self.services {
            s.stats(v);
        }
    }
}

/// The executive core.
pub struct ExecCore {
    node: NodeId,
    services: Vec<Box<dyn Service + Send>>,
    conns: BTreeMap<ConnId, ConnInfo>,
    ring: RingId,
    members: Vec<NodeId>,
    flow_blocked: bool,
    /// The time of the last tick ([`Context::now`]).
    now: u64,
    /// What [`Context::quorate`] answers.
    quorate: bool,
    /// What [`Context::quorate_with`] counts.
    votes: Option<Votes>,
    effects: VecDeque<Effect>,
    internal: VecDeque<(Bytes, DeliveryKind)>,
    /// The head of `internal` was handed to the runtime and not answered yet.
    internal_inflight: bool,
    /// (node, executive protocol version) pairs already reported as refused.
    versions_refused: BTreeSet<(NodeId, u8)>,
    /// Totem refused the head of `internal`: offer it again only at a flow-control clear or
    /// a tick, not in a loop.
    internal_refused: bool,
    sync: Option<SyncRun>,
    /// Per service (by index): synchronised at least once. Before its first sync a service
    /// holds nothing of the cluster (a restarted node's replicas are empty), so its requests
    /// wait for it too.
    synced_once: Vec<bool>,
    /// Requests waiting for their service's synchronisation, in arrival order.
    held: VecDeque<Held>,
    /// This node's clients' outboxes ([`flow`]).
    gate: OutboxGate,
    /// Members whose last `Backlog` message said they are backlogged (this node too, once
    /// its own is delivered).
    backlogged: BTreeSet<NodeId>,
    flow_defects: FlowDefects,
    counters: CoreCounters,
}

/// Deliberate defects of the backlog bookkeeping ([`ExecCore::set_flow_defects`]): each
/// one is a plausible bug the simulator's checker must catch. All off by default.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowDefects {
    /// A backlogged node does not say so again in a new ring (members that join later never
    /// learn of it).
    pub no_reannounce: bool,
    /// The set of backlogged members survives configuration changes (neither trimmed to the
    /// transitional members nor cleared in a new ring): a backlog that ended out of sight is
    /// never cleared.
    pub kept_across_rings: bool,
}

impl std::fmt::Debug for ExecCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecCore")
            .field("node", &self.node)
            .field("ring", &self.ring)
            .field("members", &self.members)
            .field("connections", &self.conns.len())
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl ExecCore {
    /// A core for `node` with `services` (synchronised in this order).
    ///
    /// # Panics
    /// Two services with one id, or a service with the executive's own id ([`SYNC`]): a
    /// programming error, caught by every test that builds a core.
    pub fn new(node: NodeId, services: Vec<Box<dyn Service + Send>>) -> ExecCore {
        let mut ids = BTreeSet::from([SYNC]);
        for s in &services {
            assert!(
                ids.insert(s.id()),
                "service {} registered with {}, which is taken",
                s.name(),
                s.id()
            );
        }
        let services_len = services.len();
        let mut core = ExecCore {
            node,
            services,
            conns: BTreeMap::new(),
            ring: RingId::default(),
            members: Vec::new(),
            flow_blocked: false,
            now: 0,
            quorate: true,
            votes: None,
            effects: VecDeque::new(),
            internal: VecDeque::new(),
            internal_inflight: false,
            versions_refused: BTreeSet::new(),
            internal_refused: false,
            sync: None,
            synced_once: vec![false; services_len],
            held: VecDeque::new(),
            gate: OutboxGate::new(OutboxLimits::default()),
            backlogged: BTreeSet::new(),
            flow_defects: FlowDefects::default(),
            counters: CoreCounters::default(),
        };
        core.with_services(|s, cx| s.exec_init(cx));
        core
    }

    /// Sets the outbox marks of the flow control ([`flow`]; before any client connects).
    pub fn set_outbox_limits(&mut self, limits: OutboxLimits) {
        self.gate = OutboxGate::new(limits);
    }

    /// Every open connection's outbox, as the runtime sees it at a tick (after
    /// [`ExecCore::tick`], whose time it uses): when this node becomes backlogged or stops
    /// being so, it tells the ring (an internal message), and its own clients' multicasts
    /// are answered TRY_AGAIN from now on ([`flow`]).
    pub fn outboxes(&mut self, depths: &[OutboxDepth]) {
        let change = self.gate.observe(self.now, depths);
        for conn in &change.stalled {
            self.counters.outbox_stalls += 1;
            let pid = self.conns.get(conn).map_or(0, |c| c.pid);
            warn!(
                "client pid {pid} (connection {conn}) has read nothing for {} ms with its \
                 outbox above the high-water mark: it no longer holds the senders",
                self.gate.limits().stall_ns / 1_000_000
            );
        }
        if let Some(on) = change.backlogged {
            if on {
                self.counters.outbox_backlogs += 1;
                debug!("a client's outbox is above the high-water mark: multicasts get TRY_AGAIN");
            } else {
                debug!("clients' outboxes below the low-water mark");
            }
            self.announce_backlog(on);
        }
        self.after_input();
    }

    /// Queues this node's backlog state for the ring.
    fn announce_backlog(&mut self, on: bool) {
        self.internal.push_back((
            ring::encode(SYNC, &SyncMessage::Backlog { on }),
            DeliveryKind::Agreed,
        ));
    }

    /// Whether this node or another member is backlogged ([`Context::backlogged`]).
    pub fn backlogged(&self) -> bool {
        self.gate.is_on() || !self.backlogged.is_empty()
    }

    /// Whether this node's own clients' outboxes hold the senders, and the members this node
    /// counts as backlogged (from their `Backlog` messages in the current configuration):
    /// what [`flow::checker`] judges.
    pub fn backlog_state(&self) -> (bool, &BTreeSet<NodeId>) {
        (self.gate.is_on(), &self.backlogged)
    }

    /// Breaks the backlog bookkeeping on purpose, for the tests that show
    /// [`flow::checker`] catches it.
    #[doc(hidden)]
    pub fn set_flow_defects(&mut self, defects: FlowDefects) {
        self.flow_defects = defects;
    }

    /// The next thing to do, if any.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

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
        &self.members
    }

    /// Whether this node's partition has quorum ([`Context::quorate`]).
    pub fn quorate(&self) -> bool {
        self.quorate
    }

    /// Whether a service synchronisation is in progress.
    pub fn syncing(&self) -> bool {
        self.sync.is_some()
    }

    /// Nothing is waiting in the core: no synchronisation, no held request, no internal
    /// message to send.
    pub fn is_idle(&self) -> bool {
        self.sync.is_none()
            && self.held.is_empty()
            && self.internal.is_empty()
            && self.effects.is_empty()
    }

    /// The earliest time (nanoseconds, the clock of [`ExecCore::tick`]) a service asked to
    /// be ticked at ([`Service::next_timer`]).
    pub fn next_timer(&self) -> Option<u64> {
        self.services.iter().filter_map(|s| s.next_timer()).min()
    }

    /// Internal messages waiting to be taken by Totem.
    pub fn internal_pending(&self) -> usize {
        self.internal.len()
    }

    /// The core's counters.
    pub fn core_counters(&self) -> &CoreCounters {
        &self.counters
    }

    /// A client connected (credentials already checked).
    pub fn connected(&mut self, conn: ConnId, pid: u32) {
        self.conns.insert(conn, ConnInfo { pid, service: None });
    }

    /// A connection closed: services release what it held.
    pub fn disconnected(&mut self, conn: ConnId) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        self.held.retain(|h| h.conn != conn);
        self.with_services(|s, cx| s.conn_closed(cx, conn));
        self.conns.remove(&conn);
        self.after_input();
    }

    /// A client request: number `id`, operation `op`, its body not decoded yet (the
    /// connection's service decodes it).
    pub fn request(&mut self, conn: ConnId, id: u64, op: u16, body: Bytes) {
        self.counters.ipc_requests += 1;
        self.route(Held { conn, id, op, body });
        self.after_input();
    }

    /// A client request given as a value: encoded, then as [`ExecCore::request`] (tests and
    /// the simulator's clients; `req` is a service's request or a shared one such as
    /// `ais_proto::ipc::Request::Hello`).
    pub fn request_value<M: Message>(&mut self, conn: ConnId, id: u64, req: &M) {
        let mut w = Writer::with_capacity(64);
        let tail = req.encode(&mut w);
        let mut body = w.finish();
        body.extend_from_slice(&tail);
        self.request(conn, id, req.op(), Bytes::from(body));
    }

    /// The outcome of an [`Effect::Clc`].
    pub fn clc_result(&mut self, service: ServiceId, id: u64, outcome: ClcOutcome) {
        self.with_service(service, |s, cx| s.clc_result(cx, id, outcome));
        self.after_input();
    }

    /// Random bytes for an [`Effect::NeedRandom`].
    pub fn random(&mut self, service: ServiceId, conn: ConnId, id: u64, bytes: &[u8]) {
        self.with_service(service, |s, cx| s.random(cx, conn, id, bytes));
        self.after_input();
    }

    /// The answer to an [`Effect::Submit`].
    pub fn submitted(&mut self, origin: Origin, result: Result<MsgId, SubmitError>) {
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
                self.internal_inflight = false;
                match result {
                    Ok(_) => {
                        self.internal.pop_front();
                    }
                    Err(SubmitError::TooLarge { .. }) => {
                        // Cannot happen for the executive's small messages; never retry it.
                        warn!("an internal message was refused as too large; dropped");
                        self.internal.pop_front();
                    }
                    Err(SubmitError::Backpressure) => {
                        debug!("internal message refused by Totem; it will be offered again");
                        self.internal_refused = true;
                        self.after_input();
                        return;
                    }
                }
            }
        }
        self.after_input();
    }

    /// The answer to an [`Effect::SubmitBatch`]: how many were taken, and why the next one
    /// was not.
    pub fn batch_submitted(
        &mut self,
        origin: Origin,
        accepted: usize,
        refused: Option<SubmitError>,
    ) {
        if accepted == 0 {
            self.counters.ipc_try_again += 1;
        }
        if let Origin::Client {
            conn,
            id,
            service,
            tag,
        } = origin
        {
            self.with_service(service, |s, cx| {
                s.batch_submitted(cx, conn, id, tag, accepted, refused)
            });
        }
        self.after_input();
    }

    /// Between batches of inputs, and at least every few milliseconds: the time now
    /// (nanoseconds since the UNIX epoch; services with timers act on it) and a refused
    /// internal message offered again.
    pub fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.with_services(|s, cx| s.tick(cx));
        self.pump_internal(true);
        self.advance_sync();
        self.pump_internal(false);
    }

    /// A Totem event, taken by value: a delivered payload moves into its service without a
    /// clone (the runtime's path; [`ExecCore::totem`] does the same for a borrowed event).
    pub fn totem_owned(&mut self, event: Event) {
        match event {
            Event::Deliver(d) => {
                self.deliver(d.id.sender, d.payload);
                self.after_input();
            }
            other => self.totem(&other),
        }
    }

    /// A Totem event.
    pub fn totem(&mut self, event: &Event) {
        match event {
            Event::Deliver(d) => self.deliver(d.id.sender, d.payload.clone()),
            Event::ConfigChange(c) => self.config_change(c),
            Event::FlowControl(FlowControl::Blocked) => {
                if !self.flow_blocked {
                    info!("flow control: Totem's send window is full; clients get TRY_AGAIN");
                }
                self.flow_blocked = true;
            }
            Event::FlowControl(FlowControl::Clear) => {
                self.flow_blocked = false;
                self.pump_internal(true);
            }
            Event::Gather => self.with_services(|s, cx| s.gather(cx)),
            Event::Heard(node) => self.with_services(|s, cx| s.heard(cx, *node)),
            Event::Excluded(node) => self.with_services(|s, cx| s.excluded(cx, *node)),
            Event::RingSeq(_) | Event::Observe(_) => {}
        }
        self.after_input();
    }

    fn deliver(&mut self, sender: NodeId, mut payload: Bytes) {
        self.counters.delivered += 1;
        // The header is read in place and skipped: the body is the payload itself, moved on
        // to the service (no reference count touched on the way).
        let (target, kind) = match ring::header(&payload) {
            Ok(header) => header,
            Err(DecodeError::Version { got, .. }) => {
                // A peer running a build of another executive protocol: said once per node
                // and version (it would say it for every message), counted every time.
                self.counters.exec_version_refused += 1;
                if self.versions_refused.insert((sender, got)) {
                    warn!(
                        "node {sender} speaks executive protocol version {got}; this build \
                         speaks version {EXEC_VERSION}: its messages are dropped \
                         (exec_version_refused)"
                    );
                }
                return;
            }
            Err(e) => {
                self.counters.exec_malformed += 1;
                warn!(
                    "dropped a Totem message from node {sender} without an executive header: {e}"
                );
                return;
            }
        };
        payload.advance(EXEC_HEADER);
        let body = payload;
        if target == SYNC {
            if let Err(e) = self.deliver_sync(sender, kind, body) {
                self.counters.exec_malformed += 1;
                warn!("dropped a malformed sync message from node {sender}: {e}");
            }
            return;
        }
        let Some(index) = self.index_of(target) else {
            self.counters.exec_malformed += 1;
            warn!(
                "dropped a Totem message from node {sender} for {target}, which this executive \
                 does not run"
            );
            return;
        };
        let mut failed = None;
        self.with_index(index, |s, cx| {
            if let Err(e) = s.exec_deliver(cx, sender, kind, body) {
                failed = Some((s.name(), e));
            }
        });
        if let Some((name, e)) = failed {
            self.counters.exec_malformed += 1;
            warn!("dropped a malformed {name} message from node {sender}: {e}");
        }
    }

    fn config_change(&mut self, c: &ConfigChange) {
        if c.kind == ConfigKind::Regular {
            self.ring = c.ring;
            self.members = c.members.clone();
            // Members new to this node do not know its state: every backlogged node says it
            // again in the new ring.
            if !self.flow_defects.kept_across_rings {
                self.backlogged.clear();
            }
            if self.gate.is_on() && !self.flow_defects.no_reannounce {
                self.announce_backlog(true);
            }
        } else if !self.flow_defects.kept_across_rings {
            self.backlogged.retain(|n| c.members.contains(n));
        }
        log_config(c);
        self.with_services(|s, cx| s.confchg(cx, c));
        if c.kind != ConfigKind::Regular {
            return;
        }
        if let Some(run) = self.sync.take() {
            let i = run.order[run.step];
            self.counters.syncs_aborted += 1;
            info!(
                "service sync of ring {} aborted by ring {}",
                run.ring, c.ring
            );
            self.with_index(i, |s, cx| s.sync_abort(cx));
        }
        let order: Vec<usize> = (0..self.services.len())
            .filter(|&i| self.services[i].syncs())
            .collect();
        if order.is_empty() {
            return;
        }
        self.counters.syncs_started += 1;
        self.sync = Some(SyncRun {
            ring: c.ring,
            members: c.members.clone(),
            order,
            step: 0,
            barrier_sent: false,
            barriers: BTreeSet::new(),
        });
        self.start_step();
    }

    /// Starts the current step's service.
    fn start_step(&mut self) {
        let Some(run) = &self.sync else { return };
        let i = run.order[run.step];
        self.with_index(i, |s, cx| s.sync_init(cx));
    }

    /// Calls the current service's `sync_process` until it is done, then sends the barrier.
    fn advance_sync(&mut self) {
        let Some(run) = &self.sync else { return };
        if run.barrier_sent {
            return;
        }
        let i = run.order[run.step];
        let ring = run.ring;
        let sid = self.services[i].id();
        let mut done = false;
        self.with_index(i, |s, cx| done = s.sync_process(cx));
        if !done {
            return;
        }
        let barrier = SyncMessage::Barrier {
            rep: ring.rep.0,
            seq: ring.seq,
            service: sid,
        };
        self.internal
            .push_back((ring::encode(SYNC, &barrier), DeliveryKind::Safe));
        if let Some(run) = &mut self.sync {
            run.barrier_sent = true;
        }
    }

    fn deliver_sync(&mut self, sender: NodeId, kind: u16, body: Bytes) -> Result<(), DecodeError> {
        let (rep, seq, service) = match decode_body(kind, body)? {
            SyncMessage::Barrier { rep, seq, service } => (rep, seq, service),
            SyncMessage::Backlog { on } => {
                if !self.members.contains(&sender) {
                    // Sent in a ring this node has left behind.
                } else if on {
                    self.backlogged.insert(sender);
                } else {
                    self.backlogged.remove(&sender);
                }
                return Ok(());
            }
        };
        let ring = RingId {
            rep: NodeId(rep),
            seq,
        };
        let Some(run) = &mut self.sync else {
            return Ok(());
        };
        let i = run.order[run.step];
        if run.ring != ring || self.services[i].id() != service || !run.members.contains(&sender) {
            // A barrier of an aborted sync (its ring ended), or of a node outside it.
            return Ok(());
        }
        run.barriers.insert(sender);
        if run.members.iter().any(|m| !run.barriers.contains(m)) {
            return Ok(());
        }
        // Every member passed: activate, then on to the next service.
        self.with_index(i, |s, cx| s.sync_activate(cx));
        self.synced_once[i] = true;
        let Some(run) = &mut self.sync else {
            return Ok(());
        };
        run.step += 1;
        run.barrier_sent = false;
        run.barriers.clear();
        if run.step == run.order.len() {
            let ring = run.ring;
            self.sync = None;
            self.counters.syncs_completed += 1;
            info!("services synchronised in ring {ring}");
        } else {
            self.start_step();
        }
        self.release_held();
        Ok(())
    }

    /// Whether the service at `index` is being synchronised, or has never been (its
    /// requests wait).
    fn unsynced(&self, index: usize) -> bool {
        if self.services[index].syncs() && !self.synced_once[index] {
            return true;
        }
        let Some(run) = &self.sync else { return false };
        run.order[run.step..].contains(&index)
    }

    /// Handles the held requests whose service is synchronised now, in arrival order.
    fn release_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for h in held {
            self.route(h);
        }
    }

    /// The position in the service list of the service with `id`.
    fn index_of(&self, id: ServiceId) -> Option<usize> {
        self.services.iter().position(|s| s.id() == id)
    }

    /// A request: `Hello` and `Status` here, everything else to the connection's service.
    fn route(&mut self, h: Held) {
        let Some(c) = self.conns.get(&h.conn) else {
            return;
        };
        let (conn, id) = (h.conn, h.id);
        let service = c.service;
        // The shared operations decode as themselves; the service's own are unknown ops to
        // a `Request<Nothing>`.
        match (
            decode_body::<Request<Nothing>>(h.op, h.body.clone()),
            service,
        ) {
            (Ok(Request::Hello { version, service }), None) => {
                self.hello(conn, id, version, service)
            }
            (Ok(Request::Status), Some(_)) => self.effects.push_back(Effect::Status { conn, id }),
            (Ok(Request::Service(never)), _) => match never {},
            (Ok(_) | Err(DecodeError::UnknownOp { .. }), None)
            | (Ok(Request::Hello { .. }), Some(_)) => {
                // Nothing but `Hello` before `Hello`, and `Hello` only once.
                self.reply_error(conn, id, AisError::BadOperation);
            }
            (Err(DecodeError::UnknownOp { .. }), Some(index)) => self.service_request(index, h),
            (Err(e), _) => self.malformed(conn, &e),
        }
    }

    fn hello(&mut self, conn: ConnId, id: u64, version: u8, service: ServiceId) {
        if version != ais_proto::ipc::VERSION {
            return self.reply_error(conn, id, AisError::Version);
        }
        let Some(index) = self.index_of(service) else {
            warn!("a client asked for {service}, which this executive does not run");
            return self.reply_error(conn, id, AisError::NotSupported);
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.service = Some(index);
        }
        let packet = Encoded::reply(id, &Reply::<Nothing>::Ok);
        self.effects.push_back(Effect::Send { conn, packet });
        self.with_index(index, |s, cx| s.hello(cx, conn));
    }

    fn service_request(&mut self, index: usize, h: Held) {
        let (conn, id) = (h.conn, h.id);
        if self.unsynced(index) {
            if self.held.len() >= MAX_HELD {
                self.counters.ipc_try_again += 1;
                return self.reply_error(conn, id, AisError::TryAgain);
            }
            self.counters.requests_held += 1;
            self.held.push_back(h);
            return;
        }
        let mut result = Ok(());
        self.with_index(index, |s, cx| {
            result = s.lib_request(cx, conn, id, h.op, h.body);
        });
        match result {
            Ok(()) => {}
            Err(DecodeError::UnknownOp { .. }) => {
                self.reply_error(conn, id, AisError::BadOperation)
            }
            Err(e) => self.malformed(conn, &e),
        }
    }

    fn reply_error(&mut self, conn: ConnId, id: u64, e: AisError) {
        let packet = Encoded::reply(id, &Reply::<Nothing>::Error(e));
        self.effects.push_back(Effect::Send { conn, packet });
    }

    /// A request that does not decode: the connection is closed.
    fn malformed(&mut self, conn: ConnId, e: &DecodeError) {
        self.counters.ipc_malformed += 1;
        let pid = self.conns.get(&conn).map_or(0, |c| c.pid);
        warn!("client pid {pid} sent a malformed request ({e}); disconnecting it");
        self.effects.push_back(Effect::Disconnect { conn });
    }

    /// Work after every input: the sync step, then the next internal message.
    fn after_input(&mut self) {
        self.advance_sync();
        self.pump_internal(false);
    }

    /// Hands the next internal message to the runtime, one at a time; `retry`: also when the
    /// last one was refused.
    fn pump_internal(&mut self, retry: bool) {
        if retry {
            self.internal_refused = false;
        }
        if self.internal_inflight || self.internal_refused {
            return;
        }
        if let Some((msg, kind)) = self.internal.front() {
            self.internal_inflight = true;
            self.effects.push_back(Effect::Submit {
                origin: Origin::Internal,
                kind: *kind,
                msg: msg.clone(),
            });
        }
    }

    fn with_services(&mut self, mut f: impl FnMut(&mut dyn Service, &mut Context<'_>)) {
        let mut cx = Context {
            node: self.node,
            ring: self.ring,
            members: &self.members,
            flow_blocked: self.flow_blocked,
            backlogged: self.gate.is_on() || !self.backlogged.is_empty(),
            now: self.now,
            quorate: &mut self.quorate,
            votes: &mut self.votes,
            conns: &self.conns,
            effects: &mut self.effects,
            internal: &mut self.internal,
        };
        for s in &mut self.services {
            f(s.as_mut(), &mut cx);
        }
    }

    fn with_index(&mut self, index: usize, f: impl FnOnce(&mut dyn Service, &mut Context<'_>)) {
        let mut cx = Context {
            node: self.node,
            ring: self.ring,
            members: &self.members,
            flow_blocked: self.flow_blocked,
            backlogged: self.gate.is_on() || !self.backlogged.is_empty(),
            now: self.now,
            quorate: &mut self.quorate,
            votes: &mut self.votes,
            conns: &self.conns,
            effects: &mut self.effects,
            internal: &mut self.internal,
        };
        if let Some(s) = self.services.get_mut(index) {
            f(s.as_mut(), &mut cx);
        }
    }

    fn with_service(&mut self, id: ServiceId, f: impl FnOnce(&mut dyn Service, &mut Context<'_>)) {
        if let Some(i) = self.index_of(id) {
            self.with_index(i, f);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::exec::testkit::{TestNode, TestRing};

    const PROBE: ServiceId = ServiceId(1);

    /// A service that syncs and says what was called.
    struct Probe {
        log: Arc<Mutex<Vec<String>>>,
        /// `sync_process` is done only when this is set.
        ready: Arc<Mutex<bool>>,
    }

    impl Service for Probe {
        fn id(&self) -> ServiceId {
            PROBE
        }
        fn name(&self) -> &'static str {
            "probe"
        }
        fn lib_request(
            &mut self,
            cx: &mut Context<'_>,
            conn: ConnId,
            id: u64,
            _op: u16,
            _body: Bytes,
        ) -> Result<(), DecodeError> {
            self.log.lock().unwrap().push(format!("request {id}"));
            cx.ok(conn, id);
            Ok(())
        }
        fn exec_deliver(
            &mut self,
            _cx: &mut Context<'_>,
            _sender: NodeId,
            _kind: u16,
            _body: Bytes,
        ) -> Result<(), DecodeError> {
            Ok(())
        }
        fn confchg(&mut self, _cx: &mut Context<'_>, _change: &ConfigChange) {}
        fn syncs(&self) -> bool {
            true
        }
        fn sync_init(&mut self, cx: &mut Context<'_>) {
            self.log.lock().unwrap().push(format!("init {}", cx.ring()));
        }
        fn sync_process(&mut self, _cx: &mut Context<'_>) -> bool {
            *self.ready.lock().unwrap()
        }
        fn sync_activate(&mut self, cx: &mut Context<'_>) {
            self.log
                .lock()
                .unwrap()
                .push(format!("activate {}", cx.ring()));
        }
        fn sync_abort(&mut self, cx: &mut Context<'_>) {
            self.log
                .lock()
                .unwrap()
                .push(format!("abort {}", cx.ring()));
        }
        fn conn_closed(&mut self, _cx: &mut Context<'_>, _conn: ConnId) {}
    }

    type Logs = Vec<Arc<Mutex<Vec<String>>>>;

    fn probes(n: u32, ready: bool) -> (TestRing, Logs, Arc<Mutex<bool>>) {
        let ready = Arc::new(Mutex::new(ready));
        let logs: Arc<Mutex<Logs>> = Arc::new(Mutex::new(Vec::new()));
        let r = {
            let ready = Arc::clone(&ready);
            let logs = Arc::clone(&logs);
            TestRing::new(n, move || {
                let log = Arc::new(Mutex::new(Vec::new()));
                logs.lock().unwrap().push(Arc::clone(&log));
                vec![Box::new(Probe {
                    log,
                    ready: Arc::clone(&ready),
                }) as Box<dyn Service + Send>]
            })
        };
        let logs = logs.lock().unwrap().clone();
        (r, logs, ready)
    }

    fn request(n: &mut TestNode, id: u64) {
        n.core.request(1, id, 40, Bytes::new());
        n.run();
    }

    fn replies(n: &mut TestNode) -> Vec<u64> {
        n.replies::<Nothing>()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn quorate_with_counts_the_published_votes_and_saturates() {
        let conns = BTreeMap::new();
        let (mut effects, mut internal) = (VecDeque::new(), VecDeque::new());
        let (mut quorate, mut votes) = (true, None);
        let mut cx = Context::for_tests(
            NodeId(1),
            &conns,
            &mut effects,
            &mut internal,
            &mut quorate,
            &mut votes,
        );
        let set = |ns: &[u32]| ns.iter().map(|n| NodeId(*n)).collect::<BTreeSet<_>>();
        // No quorum service: every set is quorate.
        assert!(cx.quorate_with(&set(&[1])));
        cx.set_votes(Votes {
            votes: [(NodeId(1), 1), (NodeId(2), 1), (NodeId(3), u32::MAX)]
                .into_iter()
                .collect(),
            needed: 2,
        });
        assert!(!cx.quorate_with(&set(&[1])));
        assert!(cx.quorate_with(&set(&[1, 2])));
        // A node it never learnt counts nothing.
        assert!(!cx.quorate_with(&set(&[1, 9])));
        // A remote claim of u32::MAX votes does not overflow the sum.
        assert!(cx.quorate_with(&set(&[1, 2, 3])));
    }

    #[test]
    fn requests_wait_for_the_barrier_of_every_member() {
        let (mut r, logs, _) = probes(2, true);
        r.node(1).connect(1, 100, PROBE);
        assert!(r.node(1).core.syncing());
        request(r.node(1), 7);
        assert_eq!(
            replies(r.node(1)),
            Vec::<u64>::new(),
            "held during the sync"
        );
        assert_eq!(r.node(1).core.core_counters().requests_held, 1);
        r.flush();
        assert!(!r.node(1).core.syncing() && !r.node(2).core.syncing());
        assert_eq!(replies(r.node(1)), vec![7], "answered once synchronised");
        for log in &logs {
            assert_eq!(
                log.lock().unwrap()[..2],
                ["init 1.4", "activate 1.4"],
                "every node activates"
            );
        }
        assert_eq!(
            logs[0].lock().unwrap()[2],
            "request 7",
            "after the activation"
        );
        request(r.node(1), 8);
        assert_eq!(replies(r.node(1)), vec![8], "not held once synchronised");
        assert_eq!(r.node(2).core.core_counters().syncs_completed, 1);
    }

    #[test]
    fn requests_past_the_hold_limit_are_try_again() {
        let (mut r, _, _) = probes(1, false);
        r.node(1).connect(1, 100, PROBE);
        for id in 0..=MAX_HELD as u64 {
            r.node(1).core.request(1, id, 40, Bytes::new());
        }
        let answers = r.node(1).replies::<Nothing>();
        assert_eq!(
            answers,
            [(MAX_HELD as u64, Reply::Error(AisError::TryAgain))]
        );
    }

    #[test]
    fn the_barrier_waits_for_sync_process() {
        let (mut r, logs, ready) = probes(2, false);
        r.flush();
        for id in [1, 2] {
            assert!(r.node(id).core.syncing());
            assert_eq!(
                r.node(id).pending(),
                0,
                "no barrier before sync_process is done"
            );
        }
        *ready.lock().unwrap() = true;
        // sync_process runs again at the next input or tick; node 1's barrier is node 2's
        // next input.
        r.node(1).core.tick(0);
        r.flush();
        assert!(!r.node(1).core.syncing() && !r.node(2).core.syncing());
        assert!(
            logs[1]
                .lock()
                .unwrap()
                .contains(&"activate 1.4".to_string())
        );
    }

    #[test]
    fn a_configuration_during_the_sync_aborts_and_restarts_it() {
        let (mut r, logs, ready) = probes(2, false);
        r.flush();
        r.config(&[1, 2], &[1, 2]);
        *ready.lock().unwrap() = true;
        r.node(1).core.tick(0);
        r.node(2).core.tick(0);
        r.flush();
        assert_eq!(
            *logs[0].lock().unwrap(),
            ["init 1.4", "abort 1.8", "init 1.8", "activate 1.8"]
        );
        let c = r.node(1).core.core_counters();
        assert_eq!(
            (c.syncs_started, c.syncs_aborted, c.syncs_completed),
            (2, 1, 1)
        );
    }

    #[test]
    fn a_barrier_of_an_ended_ring_is_ignored() {
        let (mut r, _, _) = probes(2, true);
        // Node 2's barrier for ring 1.4 is delivered after ring 1.8 started: it must not
        // count for 1.8.
        let stale = ring::encode(
            SYNC,
            &SyncMessage::Barrier {
                rep: 1,
                seq: 4,
                service: PROBE,
            },
        );
        r.config(&[1, 2], &[1, 2]);
        r.inject(2, stale);
        // Node 1's own barrier alone does not complete the sync either.
        r.node(1).run();
        assert!(r.node(1).core.syncing());
        r.flush();
        assert!(!r.node(1).core.syncing());
    }

    #[test]
    fn internal_messages_go_one_at_a_time_and_again_after_a_refusal() {
        let mut n = TestNode::new(1, Vec::new());
        n.core
            .internal
            .push_back((Bytes::from_static(b"a"), DeliveryKind::Agreed));
        n.core
            .internal
            .push_back((Bytes::from_static(b"b"), DeliveryKind::Agreed));
        n.core.tick(0);
        let first: Vec<Effect> = std::iter::from_fn(|| n.core.poll_effect()).collect();
        assert_eq!(first.len(), 1, "one internal message in flight: {first:?}");
        n.core
            .submitted(Origin::Internal, Err(SubmitError::Backpressure));
        assert!(n.core.poll_effect().is_none(), "not offered again at once");
        n.core.tick(0);
        match n.core.poll_effect() {
            Some(Effect::Submit { msg, .. }) => assert_eq!(&msg[..], b"a", "the same one again"),
            other => panic!("expected a submit, got {other:?}"),
        }
        let id = MsgId {
            sender: NodeId(1),
            no: 1,
        };
        n.core.submitted(Origin::Internal, Ok(id));
        match n.core.poll_effect() {
            Some(Effect::Submit { msg, .. }) => assert_eq!(&msg[..], b"b", "then the next"),
            other => panic!("expected a submit, got {other:?}"),
        }
        assert_eq!(n.core.internal_pending(), 1);
    }

    #[test]
    fn undecodable_messages_are_counted_and_dropped() {
        let (mut r, _, _) = probes(1, true);
        r.flush();
        r.inject(1, Bytes::from_static(&[EXEC_VERSION])); // too short
        r.inject(1, Bytes::from_static(&[EXEC_VERSION, 200, 0, 0])); // a service not run
        r.inject(1, Bytes::from_static(&[EXEC_VERSION, 0, 9, 0])); // unknown sync kind
        assert_eq!(r.node(1).core.core_counters().exec_malformed, 3);
    }

    /// A peer of another executive protocol version: its messages are dropped and counted,
    /// and the log names both versions, once per node and version.
    #[test]
    fn messages_of_another_executive_version_are_refused_naming_both() {
        let log = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish();
        let (mut r, _, _) = probes(1, true);
        r.flush();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                r.inject(1, Bytes::from_static(&[EXEC_VERSION + 1, 1, 0, 0, 7]));
            }
        });
        let counters = r.node(1).core.core_counters();
        assert_eq!(
            (counters.exec_version_refused, counters.exec_malformed),
            (3, 0)
        );
        let text = log.text();
        let line = format!(
            "node 1 speaks executive protocol version {}; this build speaks version {EXEC_VERSION}",
            EXEC_VERSION + 1
        );
        assert_eq!(text.matches(&line).count(), 1, "{text}");
    }

    /// A `tracing` writer into memory.
    #[derive(Clone, Default)]
    struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl LogCapture {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for LogCapture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
        type Writer = LogCapture;
        fn make_writer(&'a self) -> LogCapture {
            self.clone()
        }
    }

    #[test]
    fn a_client_must_say_hello_first() {
        let mut n = TestNode::new(1, Vec::new());
        n.core.connected(5, 500);
        n.core.request(5, 1, 40, Bytes::new());
        n.core.request_value(
            5,
            2,
            &Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION + 1,
                service: ServiceId(1),
            },
        );
        n.core.request_value(5, 3, &Request::<Nothing>::Status);
        n.core.request_value(
            5,
            4,
            &Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service: ServiceId(9),
            },
        );
        assert_eq!(
            n.replies::<Nothing>(),
            [
                (1, Reply::Error(AisError::BadOperation)),
                (2, Reply::Error(AisError::Version)),
                (3, Reply::Error(AisError::BadOperation)),
                (4, Reply::Error(AisError::NotSupported)),
            ]
        );
    }

    /// A service's unknown operation is answered BAD_OPERATION and the connection stays; a
    /// body that does not decode closes the connection and is counted.
    #[test]
    fn unknown_operations_are_refused_and_malformed_requests_disconnect() {
        let (mut r, logs, _) = probes(1, true);
        r.flush();
        let n = r.node(1);
        n.connect(1, 100, PROBE);
        n.core.request(1, 7, 99, Bytes::new());
        assert_eq!(replies(n), [7], "the probe answers every op it is given");
        // The shared operations are decoded by the core: a Hello with a cut body.
        n.core.request(1, 8, 1, Bytes::from_static(&[1]));
        assert!(matches!(n.take()[..], [Effect::Disconnect { conn: 1 }]));
        assert_eq!(n.core.core_counters().ipc_malformed, 1);
        assert_eq!(logs[0].lock().unwrap().last().unwrap(), "request 7");
    }

    #[test]
    #[should_panic(expected = "which is taken")]
    fn two_services_with_one_id_are_refused() {
        let (_r, _, _) = probes(1, true);
        let make = || {
            Box::new(Probe {
                log: Arc::default(),
                ready: Arc::default(),
            }) as Box<dyn Service + Send>
        };
        let _ = ExecCore::new(NodeId(1), vec![make(), make()]);
    }
}
