//! MSG, SA Forum message queues (B.01.01 semantics): every node holds every queue and its
//! messages.
//!
//! **Changes** (open, close, unlink, send, the take of a message for a get, a retention
//! expiry) travel the ring as `ais_proto::msg::RingMessage::Update` in **safe** order and are
//! applied by every node at delivery ([`queues::Queues::apply`]), with the same outcome
//! everywhere (`QUEUE_FULL`, `BUSY`, `NO_RESOURCES` are decided there, with the sender's
//! limits); the node of the requesting client answers then. A send acknowledged to its client
//! is held by every member of the configuration, so it survives any crash while one of them
//! lives. An update sent in one configuration and delivered in another is refused everywhere
//! (TRY_AGAIN), so none lands half before a sync and half after.
//!
//! **Gets**: a get waits at the opener's node. While the local copy of the queue holds a
//! message, that node sends a *take* for the oldest waiting get (one take in flight per
//! queue); every node removes the head of the highest non-empty priority when the take is
//! delivered, and the opener's node hands that message to the get. A message is *delivered*
//! when its take is delivered: it leaves every copy of the queue at that point of the total
//! order, so no message is handed out twice. If the getter's process (or node) is gone by
//! then, the message is gone with it (counted as `msg_taken_orphaned`): delivery is at most
//! once, never twice.
//!
//! **Queue life**: a queue is open by one connection at a time (`BUSY` otherwise). When the
//! opener closes, finalizes or its process or node goes away the queue is closed, not lost:
//! its messages stay for the next opener, and senders may still send to it. A closed
//! non-persistent queue dies `retentionTime` after its last close (the first node whose
//! timer runs out sends the expiry; it is applied only if the queue is still closed since
//! the same close); a persistent one lives until unlinked. Unlink frees the name at once;
//! the queue goes at once if closed, else at its close.
//!
//! **Sync** after every regular configuration, as CKPT's: every member sends a summary (each
//! queue with the digest of its history, its own connections' opens, the queues it knows
//! were deleted); each distinct copy not every member holds is sent once, by the lowest member
//! holding it; at the barrier every member merges the copies of each queue with one rule
//! ([`queues::merge`]): the messages of every copy once, minus any message a copy took. The
//! opener of a queue is what the members report (the lowest node's claim if two partitions
//! each opened it; the other opener's handle becomes invalid); a queue whose opener's node
//! is gone is closed. Two queues created under one name in two partitions: the older keeps
//! the name and receives the newer's messages.

pub mod checker;
pub mod queues;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId};
use tracing::{debug, info, warn};

use crate::exec::{ConnId, Context, Service, ServiceId, submit_reply};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply, decode_body};
use ais_proto::msg::{
    Attributes, Callback, CopyHeader, Limits, MAX_MESSAGE, MAX_NAME, MsgKey, MsgProtocol,
    OPEN_CREATE, OPEN_FLAGS, OPEN_RECEIVE_CALLBACK, Opener, PRIORITIES, QUEUE_PERSISTENT, QueueId,
    QueueInfo, Request, Response, RingMessage, Stored, TIME_END, Update,
};
use ais_proto::msg::{
    CHANGE_ADDED, CHANGE_NONE, CHANGE_REMOVED, GroupCopy, GroupItem, POLICY_LOCAL_BEST_QUEUE,
    POLICY_ROUND_ROBIN, TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT,
};
use ais_proto::ring;
use queues::{Applied, Group, MergeDefects, Queue, Queues};

const ID: ServiceId = MsgProtocol::ID;

/// Queues in one list answer.
pub const LIST_PAGE: usize = 200;

/// The MSG settings of a node (`[msg]` in aisexec's configuration). The sender's limits
/// decide at every node alike: give every node the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgConfig {
    /// Most queues in the cluster (`SA_AIS_ERR_NO_RESOURCES` past it).
    pub max_queues: u32,
    /// Most bytes of one queue's four priority areas together, at creation
    /// (`SA_AIS_ERR_NO_RESOURCES` past it).
    pub max_queue_size: u64,
    /// Most data bytes of one message (`SA_AIS_ERR_TOO_BIG` past it; at most
    /// [`MAX_MESSAGE`]).
    pub max_message_size: u64,
    /// Most message bytes held by all queues together (`SA_AIS_ERR_NO_RESOURCES` past it).
    pub max_memory: u64,
    /// Most queue groups in the cluster (`SA_AIS_ERR_NO_RESOURCES` past it).
    pub max_groups: u32,
}

impl Default for MsgConfig {
    fn default() -> MsgConfig {
        MsgConfig {
            max_queues: 1024,
            max_queue_size: 4 << 20,
            max_message_size: 64 * 1024,
            max_memory: 256 << 20,
            max_groups: 128,
        }
    }
}

impl MsgConfig {
    fn limits(&self) -> Limits {
        Limits {
            max_queues: self.max_queues,
            max_queue_size: self.max_queue_size,
            max_memory: self.max_memory,
            max_groups: self.max_groups,
        }
    }
}

/// Deliberate defects, for the tests that prove the MSG checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgDefects {
    /// Defects of the merge rule.
    pub merge: MergeDefects,
    /// The opener's node answers a get with the head message without taking it on the ring
    /// (so it is handed out again).
    pub local_get: bool,
    /// A send to a group goes to its first candidate queue, whatever the policy.
    pub group_first: bool,
    /// A send-receive's caller is answered `TIMEOUT` by its node as soon as its deadline
    /// passes (not at its [`Update::ReplyEnd`]'s delivery), and a reply delivered before that
    /// end is still handed to it: the caller gets two answers.
    pub reply_after_timeout: bool,
    /// A sync activation keeps the replies awaited before it (callers of nodes that left
    /// stay awaited).
    pub keep_awaited: bool,
}

/// Told of the queues at every sync activation and of applied updates (the simulator's
/// checker reads them).
pub trait Observer: Send {
    /// Node `node` activated the sync of `ring` (of `members`) with these queues.
    fn activated(&mut self, node: u32, ring: RingId, members: &[NodeId], queues: &Queues);

    /// Node `node` applied `update` (identified by `key`) from `sender` with this outcome.
    fn applied(&mut self, _node: u32, _key: MsgKey, _update: &Update, _applied: &Applied) {}

    /// Node `node` awaits these replies (message key → most reply data bytes) after
    /// delivering update `after` in `ring` (every update delivered in its own ring, applied
    /// or refused).
    fn awaiting(
        &mut self,
        _node: u32,
        _ring: RingId,
        _after: MsgKey,
        _awaited: &BTreeMap<MsgKey, u64>,
    ) {
    }
}

/// An open queue of a connection.
#[derive(Debug, Clone, Copy)]
struct Handle {
    conn: ConnId,
    queue: QueueId,
    flags: u8,
    /// A close of it is on the ring.
    closing: bool,
}

/// What a pending update answers when it is delivered.
#[derive(Debug, Clone, Copy)]
enum Pend {
    /// An open; with `invocation`, an async one (answered by the open callback).
    Open {
        flags: u8,
        invocation: Option<u64>,
    },
    Close {
        handle: u64,
        queue: QueueId,
    },
    Plain,
    Send {
        async_ack: Option<(u64, bool)>,
    },
    /// A send-receive: on success its caller waits for the reply until `deadline`.
    SendReceive {
        deadline: u64,
    },
}

/// A send-receive of this node's caller, waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Call {
    conn: ConnId,
    id: u64,
    deadline: u64,
    reply_size: u64,
    /// Its [`Update::ReplyEnd`] is on the ring.
    ending: bool,
    /// Answered already (only with [`MsgDefects::reply_after_timeout`]).
    answered: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnId,
    id: u64,
    pend: Pend,
}

/// A get waiting at this node.
#[derive(Debug, Clone, Copy)]
struct Wait {
    conn: ConnId,
    id: u64,
    handle: u64,
    queue: QueueId,
    deadline: u64,
    /// The tag of its take on the ring.
    taking: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    deadline: u64,
    epoch: u64,
    sent: bool,
}

#[derive(Debug)]
struct Incoming {
    holder: u32,
    header: CopyHeader,
    messages: Vec<Stored>,
}

#[derive(Debug, Default)]
struct Summary {
    held: Vec<(QueueId, u64)>,
    opens: Vec<(QueueId, u64, u8)>,
    deleted: Vec<QueueId>,
}

#[derive(Debug)]
struct SyncState {
    ring: RingId,
    summaries: BTreeMap<u32, Summary>,
    groups: BTreeMap<u32, (Vec<GroupCopy>, Vec<QueueId>)>,
    data_sent: bool,
    incoming: BTreeMap<(QueueId, u64), Incoming>,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    updates: u64,
    refused: u64,
    stale: u64,
    sent: u64,
    taken: u64,
    taken_orphaned: u64,
    merges: u64,
    absorbed: u64,
    openers_dropped: u64,
    retention_expired: u64,
    sync_messages: u64,
    replies: u64,
    replies_refused: u64,
}

/// The MSG service.
pub struct Msg {
    cfg: MsgConfig,
    defects: MsgDefects,
    queues: Queues,
    synced: bool,
    sync: Option<SyncState>,
    summary_sent: bool,
    handles: BTreeMap<u64, Handle>,
    next_handle: u64,
    pending: BTreeMap<u64, Pending>,
    next_tag: u64,
    waits: Vec<Wait>,
    /// Takes on the ring, by tag: the queue.
    takes: BTreeMap<u64, QueueId>,
    /// Closes to send when the sync activates.
    deferred: Vec<(QueueId, ConnId)>,
    timers: BTreeMap<QueueId, Timer>,
    observer: Option<Box<dyn Observer>>,
    counters: Counters,
    /// Group trackers of this node's connections: `(connection, group)` → what it was told.
    trackers: BTreeMap<(ConnId, Bytes), Tracker>,
    /// Replies every node awaits (the same at every node): the message's key → most data
    /// bytes of the reply.
    awaiting: BTreeMap<MsgKey, u64>,
    /// The send-receives of this node's callers, by their message's key.
    calls: BTreeMap<MsgKey, Call>,
}

/// A connection tracking a group.
#[derive(Debug, Clone)]
struct Tracker {
    flags: u8,
    /// The members it was last told of.
    told: Vec<Bytes>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msg")
            .field("queues", &self.queues.by_id.len())
            .field("synced", &self.synced)
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

fn check_name(name: &[u8]) -> Result<(), AisError> {
    if name.len() > MAX_NAME {
        return Err(AisError::NameTooLong);
    }
    if name.is_empty() {
        return Err(AisError::InvalidParam);
    }
    Ok(())
}

fn check_open(name: &[u8], flags: u8, attributes: &Option<Attributes>) -> Result<(), AisError> {
    check_name(name)?;
    if flags & !OPEN_FLAGS != 0 {
        return Err(AisError::BadFlags);
    }
    match (flags & OPEN_CREATE != 0, attributes) {
        (true, Some(a)) => {
            if a.creation_flags & !QUEUE_PERSISTENT != 0 {
                return Err(AisError::BadFlags);
            }
            Ok(())
        }
        (false, None) => Ok(()),
        _ => Err(AisError::InvalidParam),
    }
}

impl Msg {
    /// The service with these settings.
    pub fn new(cfg: MsgConfig) -> Msg {
        Msg::with_defects(cfg, MsgDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(cfg: MsgConfig, defects: MsgDefects) -> Msg {
        Msg {
            cfg,
            defects,
            queues: Queues::default(),
            synced: false,
            sync: None,
            summary_sent: false,
            handles: BTreeMap::new(),
            next_handle: 1,
            pending: BTreeMap::new(),
            next_tag: 1,
            waits: Vec::new(),
            takes: BTreeMap::new(),
            deferred: Vec::new(),
            timers: BTreeMap::new(),
            observer: None,
            counters: Counters::default(),
            trackers: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            calls: BTreeMap::new(),
        }
        .with_queue_defects()
    }

    fn with_queue_defects(mut self) -> Msg {
        self.queues.group_first_defect = self.defects.group_first;
        self
    }

    /// Tells `observer` of the queues at every sync activation and of applied updates.
    #[must_use]
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Msg {
        self.observer = Some(observer);
        self
    }

    /// The queues this node holds.
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    fn handle(&self, conn: ConnId, handle: u64) -> Result<Handle, AisError> {
        match self.handles.get(&handle) {
            Some(h) if h.conn == conn && !h.closing => Ok(*h),
            _ => Err(AisError::BadHandle),
        }
    }

    fn update_message(&self, cx: &Context<'_>, tag: u64, update: Update) -> Bytes {
        let ring = cx.ring();
        ring::encode(
            ID,
            &RingMessage::Update {
                rep: ring.rep.0,
                seq: ring.seq,
                tag,
                limits: self.cfg.limits(),
                time: cx.now(),
                update,
            },
        )
    }

    /// Sends `update` for request `id` of `conn`; answered at delivery.
    fn send(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, pend: Pend, update: Update) {
        if !self.synced {
            return cx.error(conn, id, AisError::TryAgain);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending.insert(tag, Pending { conn, id, pend });
        let msg = self.update_message(cx, tag, update);
        cx.submit_for(conn, id, ID, tag, DeliveryKind::Safe, msg);
    }

    /// Sends an update of the executive itself; its tag.
    fn send_internal(&mut self, cx: &mut Context<'_>, update: Update) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        let msg = self.update_message(cx, tag, update);
        cx.submit_internal(DeliveryKind::Safe, msg);
        tag
    }

    fn answer(&mut self, cx: &mut Context<'_>, p: Pending, result: Result<Applied, AisError>) {
        let Pending { conn, id, pend } = p;
        match (pend, result) {
            (Pend::Open { flags, invocation }, Ok(Applied::Opened(queue))) => {
                if !cx.is_open(conn) {
                    self.send_internal(cx, Update::Close { id: queue, conn });
                    return;
                }
                let handle = self.next_handle;
                self.next_handle += 1;
                self.handles.insert(
                    handle,
                    Handle {
                        conn,
                        queue,
                        flags,
                        closing: false,
                    },
                );
                match invocation {
                    None => cx.reply(conn, id, Reply::Service(Response::Opened { handle })),
                    Some(invocation) => cx.callback(
                        conn,
                        &Callback::Opened {
                            invocation,
                            result: Ok(handle),
                        },
                    ),
                }
            }
            (
                Pend::Open {
                    invocation: Some(invocation),
                    ..
                },
                result,
            ) => {
                let result = match result {
                    Err(e) => Err(e),
                    Ok(_) => Err(AisError::Library),
                };
                cx.callback(conn, &Callback::Opened { invocation, result });
            }
            (Pend::Close { handle, .. }, result) => {
                if result.is_ok() {
                    self.handles.remove(&handle);
                    self.drop_waits(cx, |w| w.handle == handle, AisError::BadHandle);
                } else if let Some(h) = self.handles.get_mut(&handle) {
                    h.closing = false;
                }
                match result {
                    Ok(_) => cx.ok(conn, id),
                    Err(e) => cx.error(conn, id, e),
                }
            }
            (
                Pend::Send {
                    async_ack: Some((invocation, ack)),
                },
                result,
            ) => {
                if ack {
                    cx.callback(
                        conn,
                        &Callback::Delivered {
                            invocation,
                            result: result.map(|_| ()),
                        },
                    );
                }
            }
            (_, Ok(_)) => cx.ok(conn, id),
            (_, Err(e)) => cx.error(conn, id, e),
        }
    }

    /// Answers and forgets the waiting gets `which` picks, with `error`.
    fn drop_waits(&mut self, cx: &mut Context<'_>, which: impl Fn(&Wait) -> bool, e: AisError) {
        let (gone, keep): (Vec<Wait>, Vec<Wait>) = self.waits.drain(..).partition(&which);
        self.waits = keep;
        for w in gone {
            if cx.is_open(w.conn) {
                cx.error(w.conn, w.id, e);
            }
        }
    }

    /// Sends a take for the oldest waiting get of each queue that holds a message and has
    /// no take in flight.
    fn pump(&mut self, cx: &mut Context<'_>) {
        if !self.synced {
            return;
        }
        let busy: BTreeSet<QueueId> = self.takes.values().copied().collect();
        let mut started = BTreeSet::new();
        for i in 0..self.waits.len() {
            let w = self.waits[i];
            if w.taking.is_some() || busy.contains(&w.queue) || started.contains(&w.queue) {
                continue;
            }
            let Some(q) = self.queues.by_id.get(&w.queue) else {
                continue;
            };
            if q.is_empty() {
                continue;
            }
            started.insert(w.queue);
            if self.defects.local_get {
                // The defect: hand out the head without taking it everywhere.
                let m = q.areas.iter().find_map(|a| a.front()).cloned();
                if let Some(m) = m {
                    self.waits.remove(i);
                    cx.reply(w.conn, w.id, Reply::Service(message_response(m)));
                    return self.pump(cx);
                }
                continue;
            }
            let tag = self.send_internal(
                cx,
                Update::Take {
                    id: w.queue,
                    conn: w.conn,
                },
            );
            self.waits[i].taking = Some(tag);
            self.takes.insert(tag, w.queue);
        }
    }

    /// A take of this node was delivered (or refused).
    fn took(&mut self, cx: &mut Context<'_>, tag: u64, result: Result<Applied, AisError>) {
        self.takes.remove(&tag);
        let Some(i) = self.waits.iter().position(|w| w.taking == Some(tag)) else {
            if let Ok(Applied::Taken(m)) = result {
                // Its get went with its connection: the message went too.
                self.counters.taken_orphaned += 1;
                debug!("msg: message {} taken for a getter that is gone", m.key);
            }
            return;
        };
        match result {
            Ok(Applied::Taken(m)) => {
                let w = self.waits.remove(i);
                self.counters.taken += 1;
                cx.reply(w.conn, w.id, Reply::Service(message_response(m)));
            }
            Ok(_) | Err(AisError::TryAgain) => {
                // Empty at delivery, or refused at a configuration change: wait on.
                self.waits[i].taking = None;
            }
            Err(e) => {
                let w = self.waits.remove(i);
                cx.error(w.conn, w.id, e);
            }
        }
    }

    fn deliver_update(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        (rep, seq, tag, limits, time): (u32, u64, u64, Limits, u64),
        update: Update,
    ) {
        let mine = sender == cx.node();
        let pending = if mine {
            self.pending.remove(&tag)
        } else {
            None
        };
        let is_take = mine && self.takes.contains_key(&tag);
        let sent_in = RingId {
            rep: NodeId(rep),
            seq,
        };
        if sent_in != cx.ring() || !self.synced {
            self.counters.stale += 1;
            if let Some(p) = pending {
                self.answer(cx, p, Err(AisError::TryAgain));
            }
            if is_take {
                self.took(cx, tag, Err(AisError::TryAgain));
            }
            if let Update::RetentionExpired { id, .. } = update
                && mine
                && let Some(t) = self.timers.get_mut(&id)
            {
                t.sent = false;
            }
            if let Update::ReplyEnd { to } = update
                && mine
                && let Some(c) = self.calls.get_mut(&to)
            {
                c.ending = false;
            }
            return;
        }
        let key = MsgKey {
            seq,
            rep,
            node: sender.0,
            tag,
        };
        let result = match &update {
            Update::Reply { to, message } => self.deliver_reply(cx, *to, message, time),
            Update::ReplyEnd { to } => {
                if to.node == sender.0 {
                    self.awaiting.remove(to);
                }
                if mine
                    && let Some(c) = self.calls.remove(to)
                    && cx.is_open(c.conn)
                    && !c.answered
                {
                    cx.error(c.conn, c.id, AisError::Timeout);
                }
                Ok(Applied::Done)
            }
            Update::ReplyAwait { to, reply_size } => {
                if to.node == sender.0 {
                    self.awaiting.insert(*to, *reply_size);
                }
                Ok(Applied::Done)
            }
            _ => self
                .queues
                .apply(cx.ring(), sender.0, limits, time, key, &update),
        };
        if let (Update::SendReceive { reply_size, .. }, Ok(Applied::Sent { .. })) =
            (&update, &result)
        {
            self.awaiting.insert(key, *reply_size);
        }
        self.counters.updates += 1;
        if let (Some(o), Ok(a)) = (&mut self.observer, &result) {
            o.applied(cx.node().0, key, &update, a);
        }
        match &result {
            Err(_) => self.counters.refused += 1,
            Ok(Applied::Sent { queue, opener, .. }) => {
                self.counters.sent += 1;
                if let Some(o) = opener
                    && o.node == cx.node().0
                    && o.flags & OPEN_RECEIVE_CALLBACK != 0
                {
                    let handles: Vec<u64> = self
                        .handles
                        .iter()
                        .filter(|(_, h)| h.queue == *queue && h.conn == o.conn)
                        .map(|(k, _)| *k)
                        .collect();
                    for handle in handles {
                        cx.callback(o.conn, &Callback::Received { handle });
                    }
                }
            }
            Ok(Applied::Deleted(id)) => {
                if matches!(update, Update::RetentionExpired { .. }) {
                    self.counters.retention_expired += 1;
                    info!("msg: queue {id} deleted: its retention time passed");
                }
                let id = *id;
                self.timers.remove(&id);
                self.handles.retain(|_, h| h.queue != id);
                self.drop_waits(cx, |w| w.queue == id, AisError::BadHandle);
            }
            _ => {}
        }
        let touched = match &update {
            Update::Close { id, .. } | Update::Take { id, .. } => Some(*id),
            Update::Open { .. } => match &result {
                Ok(Applied::Opened(id)) => Some(*id),
                _ => None,
            },
            Update::Unlink { name } => self.queues.names.get(name).copied(),
            _ => None,
        };
        if let Some(id) = touched {
            self.refresh_timer(cx.now(), id);
        }
        if let (
            Some(Pending {
                conn,
                id,
                pend: Pend::SendReceive { deadline },
            }),
            Ok(_),
            Update::SendReceive { reply_size, .. },
        ) = (pending, &result, &update)
        {
            // Sent: the caller now waits for the reply.
            self.calls.insert(
                key,
                Call {
                    conn,
                    id,
                    deadline,
                    reply_size: *reply_size,
                    ending: false,
                    answered: false,
                },
            );
            if !cx.is_open(conn) {
                self.end_call(cx, key);
            }
        } else if let Some(p) = pending {
            self.answer(cx, p, result.clone());
        }
        if is_take {
            self.took(cx, tag, result);
        }
        if let Some(o) = &mut self.observer {
            o.awaiting(cx.node().0, cx.ring(), key, &self.awaiting);
        }
        self.notify_trackers(cx);
        self.pump(cx);
    }

    /// A reply to `to` was delivered: refused unless its sender still awaits it and it fits;
    /// else handed to the caller if it is of this node.
    fn deliver_reply(
        &mut self,
        cx: &mut Context<'_>,
        to: MsgKey,
        message: &ais_proto::msg::MessageBody,
        time: u64,
    ) -> Result<Applied, AisError> {
        let Some(size) = self.awaiting.get(&to) else {
            self.counters.replies_refused += 1;
            return Err(AisError::NotExist);
        };
        if message.data.len() as u64 > *size {
            self.counters.replies_refused += 1;
            return Err(AisError::NoSpace);
        }
        self.awaiting.remove(&to);
        self.counters.replies += 1;
        if to.node == cx.node().0
            && let Some(c) = self.calls.remove(&to)
            && cx.is_open(c.conn)
        {
            let resp = Response::Reply {
                message: message.clone(),
                send_time: time,
            };
            cx.reply(c.conn, c.id, Reply::Service(resp));
        }
        Ok(Applied::Done)
    }

    /// The caller of send-receive `key` stops waiting: tell every node (its answer, TIMEOUT,
    /// comes when that is delivered, unless a reply comes first).
    fn end_call(&mut self, cx: &mut Context<'_>, key: MsgKey) {
        if !self.synced {
            return;
        }
        if let Some(c) = self.calls.get_mut(&key)
            && !c.ending
        {
            c.ending = true;
            if self.defects.reply_after_timeout && !c.answered && cx.is_open(c.conn) {
                c.answered = true;
                cx.error(c.conn, c.id, AisError::Timeout);
            }
            self.send_internal(cx, Update::ReplyEnd { to: key });
        }
    }

    /// Tells each tracker whose group's members changed.
    fn notify_trackers(&mut self, cx: &mut Context<'_>) {
        if self.trackers.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for ((conn, name), t) in &mut self.trackers {
            let (policy, now) = match self.queues.groups.get(name) {
                Some(g) => (g.policy, g.members.clone()),
                None => (0, Vec::new()),
            };
            if now == t.told {
                continue;
            }
            let removed = t.told.iter().filter(|m| !now.contains(m));
            let mut items: Vec<GroupItem> = removed
                .map(|m| GroupItem {
                    queue: m.clone(),
                    change: CHANGE_REMOVED,
                })
                .collect();
            for m in &now {
                let added = !t.told.contains(m);
                if added || t.flags & TRACK_CHANGES != 0 {
                    items.push(GroupItem {
                        queue: m.clone(),
                        change: if added { CHANGE_ADDED } else { CHANGE_NONE },
                    });
                }
            }
            t.told.clone_from(&now);
            cx.callback(
                *conn,
                &Callback::GroupTrack {
                    group: name.clone(),
                    policy,
                    members: now.len() as u32,
                    items,
                },
            );
            if !self.queues.groups.contains_key(name) {
                gone.push((*conn, name.clone()));
            }
        }
        for k in gone {
            self.trackers.remove(&k);
        }
    }

    /// Arms, keeps or drops the retention timer of `id`.
    fn refresh_timer(&mut self, now: u64, id: QueueId) {
        let due = self.queues.by_id.get(&id).filter(|q| {
            q.opener.is_none() && !q.persistent() && q.attrs.retention_time != TIME_END
        });
        match due {
            None => {
                self.timers.remove(&id);
            }
            Some(q) => {
                let epoch = q.close_epoch;
                let retention = q.attrs.retention_time;
                if self.timers.get(&id).is_none_or(|t| t.epoch != epoch) {
                    self.timers.insert(
                        id,
                        Timer {
                            deadline: now.saturating_add(retention),
                            epoch,
                            sent: false,
                        },
                    );
                }
            }
        }
    }

    fn lib(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, req: Request) {
        if let Err(e) = self.lib_checked(cx, conn, id, req) {
            cx.error(conn, id, e);
        }
    }

    fn check_message(
        &self,
        destination: &[u8],
        m: &ais_proto::msg::MessageBody,
    ) -> Result<(), AisError> {
        check_name(destination)?;
        if usize::from(m.priority) >= PRIORITIES || m.sender_name.len() > MAX_NAME {
            return Err(AisError::InvalidParam);
        }
        if m.data.len() as u64 > self.cfg.max_message_size.min(MAX_MESSAGE as u64) {
            return Err(AisError::TooBig);
        }
        Ok(())
    }

    fn check_reply(&self, m: &ais_proto::msg::MessageBody) -> Result<(), AisError> {
        if usize::from(m.priority) >= PRIORITIES || m.sender_name.len() > MAX_NAME {
            return Err(AisError::InvalidParam);
        }
        if m.data.len() as u64 > self.cfg.max_message_size.min(MAX_MESSAGE as u64) {
            return Err(AisError::TooBig);
        }
        Ok(())
    }

    fn lib_checked(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        req: Request,
    ) -> Result<(), AisError> {
        match req {
            Request::Open {
                name,
                flags,
                attributes,
            } => {
                check_open(&name, flags, &attributes)?;
                let update = Update::Open {
                    name,
                    attributes,
                    flags,
                    conn,
                };
                let pend = Pend::Open {
                    flags,
                    invocation: None,
                };
                self.send(cx, conn, id, pend, update);
            }
            Request::OpenAsync {
                name,
                flags,
                attributes,
                invocation,
            } => {
                check_open(&name, flags, &attributes)?;
                let update = Update::Open {
                    name,
                    attributes,
                    flags,
                    conn,
                };
                let pend = Pend::Open {
                    flags,
                    invocation: Some(invocation),
                };
                self.send(cx, conn, id, pend, update);
            }
            Request::Close { handle } => {
                let h = self.handle(conn, handle)?;
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.closing = true;
                }
                let update = Update::Close { id: h.queue, conn };
                let pend = Pend::Close {
                    handle,
                    queue: h.queue,
                };
                self.send(cx, conn, id, pend, update);
            }
            Request::StatusGet { name } => {
                check_name(&name)?;
                let q = self.queues.named(&name).ok_or(AisError::NotExist)?;
                cx.reply(conn, id, Reply::Service(Response::Status(q.status())));
            }
            Request::Unlink { name } => {
                check_name(&name)?;
                if !self.queues.names.contains_key(&name) {
                    return Err(AisError::NotExist);
                }
                self.send(cx, conn, id, Pend::Plain, Update::Unlink { name });
            }
            Request::Send {
                destination,
                message,
            } => {
                self.check_message(&destination, &message)?;
                let update = Update::Send {
                    destination,
                    message,
                };
                self.send(cx, conn, id, Pend::Send { async_ack: None }, update);
            }
            Request::SendAsync {
                destination,
                message,
                invocation,
                ack,
            } => {
                self.check_message(&destination, &message)?;
                let update = Update::Send {
                    destination,
                    message,
                };
                let pend = Pend::Send {
                    async_ack: Some((invocation, ack)),
                };
                self.send(cx, conn, id, pend, update);
            }
            Request::SendReceive {
                destination,
                message,
                reply_size,
                timeout,
            } => {
                self.check_message(&destination, &message)?;
                let update = Update::SendReceive {
                    destination,
                    message,
                    reply_size,
                };
                let deadline = cx.now().saturating_add(timeout);
                self.send(cx, conn, id, Pend::SendReceive { deadline }, update);
            }
            Request::Reply { to, message } => {
                self.check_reply(&message)?;
                self.send(cx, conn, id, Pend::Plain, Update::Reply { to, message });
            }
            Request::ReplyAsync {
                to,
                message,
                invocation,
                ack,
            } => {
                self.check_reply(&message)?;
                let pend = Pend::Send {
                    async_ack: Some((invocation, ack)),
                };
                self.send(cx, conn, id, pend, Update::Reply { to, message });
            }
            Request::Cancel { handle } => {
                // Any connection of the opener's process may cancel: its get blocks its own.
                let h = match self.handles.get(&handle) {
                    Some(h) if !h.closing && cx.pid(h.conn).is_some() => *h,
                    _ => return Err(AisError::BadHandle),
                };
                if h.conn != conn && cx.pid(h.conn) != cx.pid(conn) {
                    return Err(AisError::BadHandle);
                }
                // A get whose take is on the ring gets its message (cancelling it would lose
                // the message); the others end now.
                let waiting = |w: &Wait| w.handle == handle && w.taking.is_none();
                if !self.waits.iter().any(waiting) {
                    return Err(AisError::NotExist);
                }
                self.drop_waits(cx, waiting, AisError::Interrupt);
                cx.ok(conn, id);
            }
            Request::Get { handle, timeout } => {
                let h = self.handle(conn, handle)?;
                let empty = self.queues.by_id.get(&h.queue).is_none_or(Queue::is_empty);
                if timeout == 0 && empty {
                    return Err(AisError::Timeout);
                }
                if !self.synced {
                    return Err(AisError::TryAgain);
                }
                self.waits.push(Wait {
                    conn,
                    id,
                    handle,
                    queue: h.queue,
                    deadline: cx.now().saturating_add(timeout),
                    taking: None,
                });
                self.pump(cx);
            }
            Request::GroupCreate { name, policy } => {
                check_name(&name)?;
                if !(POLICY_ROUND_ROBIN..=POLICY_LOCAL_BEST_QUEUE).contains(&policy) {
                    return Err(AisError::InvalidParam);
                }
                self.send(
                    cx,
                    conn,
                    id,
                    Pend::Plain,
                    Update::GroupCreate { name, policy },
                );
            }
            Request::GroupInsert { group, queue } => {
                check_name(&group)?;
                check_name(&queue)?;
                self.send(
                    cx,
                    conn,
                    id,
                    Pend::Plain,
                    Update::GroupInsert { group, queue },
                );
            }
            Request::GroupRemove { group, queue } => {
                check_name(&group)?;
                check_name(&queue)?;
                self.send(
                    cx,
                    conn,
                    id,
                    Pend::Plain,
                    Update::GroupRemove { group, queue },
                );
            }
            Request::GroupDelete { group } => {
                check_name(&group)?;
                self.send(cx, conn, id, Pend::Plain, Update::GroupDelete { group });
            }
            Request::GroupTrack { group, flags } => {
                check_name(&group)?;
                let known = TRACK_CURRENT | TRACK_CHANGES | TRACK_CHANGES_ONLY;
                if flags == 0
                    || flags & !known != 0
                    || flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY)
                        == TRACK_CHANGES | TRACK_CHANGES_ONLY
                {
                    return Err(AisError::BadFlags);
                }
                let g = self.queues.groups.get(&group).ok_or(AisError::NotExist)?;
                let members = g.members.clone();
                let policy = g.policy;
                if flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY) != 0 {
                    self.trackers.insert(
                        (conn, group),
                        Tracker {
                            flags,
                            told: members.clone(),
                        },
                    );
                }
                if flags & TRACK_CURRENT != 0 {
                    let items = members
                        .into_iter()
                        .map(|queue| GroupItem {
                            queue,
                            change: CHANGE_NONE,
                        })
                        .collect();
                    cx.reply(conn, id, Reply::Service(Response::Group { policy, items }));
                } else {
                    cx.ok(conn, id);
                }
            }
            Request::GroupTrackStop { group } => {
                check_name(&group)?;
                self.trackers
                    .remove(&(conn, group))
                    .ok_or(AisError::NotExist)?;
                cx.ok(conn, id);
            }
            Request::List { start } => {
                let all: Vec<&Queue> = self.queues.by_id.values().collect();
                let mut all = all;
                all.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
                let start = start as usize;
                let items: Vec<QueueInfo> = all
                    .iter()
                    .skip(start)
                    .take(LIST_PAGE)
                    .map(|q| QueueInfo {
                        name: q.name.clone(),
                        status: q.status(),
                        unlinked: q.unlinked,
                        opener_node: q.opener.map_or(0, |o| o.node),
                    })
                    .collect();
                let end = start + items.len();
                let next = (end < all.len()).then_some(end as u32);
                cx.reply(conn, id, Reply::Service(Response::List { items, next }));
            }
        }
        Ok(())
    }

    fn send_copies(&mut self, cx: &mut Context<'_>) {
        let Some(sync) = &self.sync else { return };
        let members: BTreeSet<u32> = cx.members().iter().map(|m| m.0).collect();
        let mut holders: BTreeMap<(QueueId, u64), BTreeSet<u32>> = BTreeMap::new();
        for (node, s) in &sync.summaries {
            for (id, history) in &s.held {
                holders.entry((*id, *history)).or_default().insert(*node);
            }
        }
        let me = cx.node().0;
        let (rep, seq) = (sync.ring.rep.0, sync.ring.seq);
        let mut sent = 0;
        for ((id, history), who) in holders {
            if who == members || who.first() != Some(&me) {
                continue;
            }
            let Some(q) = self.queues.by_id.get(&id).filter(|q| q.history == history) else {
                continue;
            };
            let copy = CopyHeader {
                id,
                name: q.name.clone(),
                attributes: q.attrs,
                unlinked: q.unlinked,
                history,
                close_epoch: q.close_epoch,
                close_time: q.close_time,
                messages: q.len() as u32,
                taken: q.taken.iter().copied().collect(),
            };
            cx.submit_internal(
                DeliveryKind::Agreed,
                ring::encode(ID, &RingMessage::SyncQueue { rep, seq, copy }),
            );
            for m in q.areas.iter().flatten() {
                sent += 1;
                let msg = RingMessage::SyncMessage {
                    rep,
                    seq,
                    id,
                    history,
                    message: m.clone(),
                };
                cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
            }
        }
        self.counters.sync_messages += sent;
    }

    fn deliver_sync(&mut self, cx: &Context<'_>, sender: NodeId, msg: RingMessage) {
        let Some(sync) = &mut self.sync else { return };
        let (rep, seq) = match &msg {
            RingMessage::Summary { rep, seq, .. }
            | RingMessage::SyncQueue { rep, seq, .. }
            | RingMessage::SyncGroups { rep, seq, .. }
            | RingMessage::SyncMessage { rep, seq, .. } => (*rep, *seq),
            RingMessage::Update { .. } => return,
        };
        if sync.ring
            != (RingId {
                rep: NodeId(rep),
                seq,
            })
            || !cx.members().contains(&sender)
        {
            return;
        }
        match msg {
            RingMessage::Summary {
                held,
                opens,
                deleted,
                ..
            } => {
                sync.summaries.insert(
                    sender.0,
                    Summary {
                        held,
                        opens,
                        deleted,
                    },
                );
            }
            RingMessage::SyncQueue { copy, .. } => {
                let have = self
                    .queues
                    .by_id
                    .get(&copy.id)
                    .is_some_and(|q| q.history == copy.history);
                if !have {
                    sync.incoming.insert(
                        (copy.id, copy.history),
                        Incoming {
                            holder: sender.0,
                            header: copy,
                            messages: Vec::new(),
                        },
                    );
                }
            }
            RingMessage::SyncGroups {
                groups, deleted, ..
            } => {
                sync.groups.insert(sender.0, (groups, deleted));
            }
            RingMessage::SyncMessage {
                id,
                history,
                message,
                ..
            } => {
                if let Some(inc) = sync.incoming.get_mut(&(id, history)) {
                    inc.messages.push(message);
                }
            }
            RingMessage::Update { .. } => {}
        }
    }

    fn activate(&mut self, cx: &mut Context<'_>, sync: SyncState) {
        let me = cx.node().0;
        let members: BTreeSet<u32> = cx.members().iter().map(|m| m.0).collect();
        let mut holders: BTreeMap<QueueId, BTreeMap<u64, u32>> = BTreeMap::new();
        let mut claims: BTreeMap<QueueId, Vec<Opener>> = BTreeMap::new();
        let mut deleted: BTreeSet<QueueId> = self.queues.deleted.iter().copied().collect();
        for (node, s) in &sync.summaries {
            if !members.contains(node) {
                continue;
            }
            for (id, history) in &s.held {
                let h = holders
                    .entry(*id)
                    .or_default()
                    .entry(*history)
                    .or_insert(*node);
                *h = (*h).min(*node);
            }
            for (id, conn, flags) in &s.opens {
                claims.entry(*id).or_default().push(Opener {
                    node: *node,
                    conn: *conn,
                    flags: *flags,
                });
            }
            deleted.extend(s.deleted.iter().copied());
        }
        let mut old = std::mem::take(&mut self.queues);
        let mut incoming = sync.incoming;
        let mut merged: BTreeMap<QueueId, Queue> = BTreeMap::new();
        for (id, copies) in holders {
            if deleted.contains(&id) {
                continue;
            }
            let mut list: Vec<(u32, Queue)> = Vec::new();
            for (history, holder) in &copies {
                if let Some(q) = old.by_id.get(&id).filter(|q| q.history == *history) {
                    list.push((*holder, q.clone()));
                } else if let Some(inc) = incoming.remove(&(id, *history)) {
                    list.push((inc.holder, from_incoming(inc)));
                } else {
                    warn!("msg: copy {history:x} of queue {id} missing in the sync");
                }
            }
            if list.is_empty() {
                continue;
            }
            list.sort_by_key(|(h, _)| *h);
            if list.len() > 1 {
                self.counters.merges += 1;
                info!(
                    "msg: queue {id} ({}) changed in {} partitions; merged",
                    String::from_utf8_lossy(&list[0].1.name),
                    list.len()
                );
            }
            let mut q = queues::merge(list, self.defects.merge);
            let mut c = claims.remove(&id).unwrap_or_default();
            c.sort();
            q.opener = c.first().copied();
            if c.len() > 1 {
                self.counters.openers_dropped += c.len() as u64 - 1;
                warn!(
                    "msg: queue {id} was opened in two partitions; node {}'s opener keeps it",
                    c[0].node
                );
            }
            if q.opener.is_none() {
                // Closed after the sync: a new retention period (at every node alike).
                q.close_epoch += 1;
            }
            merged.insert(id, q);
        }
        // One name, one linked queue: the oldest, which receives the newer's messages.
        let mut names: BTreeMap<Bytes, QueueId> = BTreeMap::new();
        let ids: Vec<QueueId> = merged.keys().copied().collect();
        for id in ids {
            let (name, unlinked) = {
                let q = &merged[&id];
                (q.name.clone(), q.unlinked)
            };
            if unlinked {
                continue;
            }
            match names.get(&name) {
                None => {
                    names.insert(name, id);
                }
                Some(&older) => {
                    self.counters.absorbed += 1;
                    warn!(
                        "msg: queue '{}' was created in two partitions; the older ({older}) \
                         takes the newer's ({id}) messages",
                        String::from_utf8_lossy(&name)
                    );
                    let mut newer = merged.remove(&id).expect("merged");
                    if let Some(into) = merged.get_mut(&older) {
                        queues::absorb(into, &mut newer);
                    }
                    newer.unlinked = true;
                    merged.insert(id, newer);
                }
            }
        }
        let mut next = Queues {
            by_id: BTreeMap::new(),
            names,
            deleted: std::mem::take(&mut old.deleted),
            created: 0,
            created_in: (0, 0),
            groups: BTreeMap::new(),
            groups_deleted: std::mem::take(&mut old.groups_deleted),
            group_first_defect: self.defects.group_first,
        };
        for id in &deleted {
            if !next.deleted.contains(id) {
                next.deleted.push_back(*id);
            }
        }
        while next.deleted.len() > queues::MAX_DELETED {
            next.deleted.pop_front();
        }
        dedupe_across_queues(&mut merged);
        for (id, mut q) in merged {
            // What the sync decided (opener, closes) is part of the queue's history, so
            // copies that parted since differ in the next sync even if nothing was sent.
            let o = q.opener.unwrap_or_default();
            let fold = [
                u64::from(o.node),
                o.conn,
                q.close_epoch,
                u64::from(q.unlinked),
                q.len() as u64,
            ];
            for x in fold {
                q.history = queues::fnv(q.history, &x.to_le_bytes());
            }
            if q.unlinked && q.opener.is_none() {
                next.deleted.push_back(id);
                continue;
            }
            next.by_id.insert(id, q);
        }
        merge_groups(&mut next, &members, sync.groups);
        self.queues = next;
        // Handles whose open did not survive the merge.
        let lost: Vec<u64> = self
            .handles
            .iter()
            .filter(|(_, h)| {
                self.queues
                    .by_id
                    .get(&h.queue)
                    .and_then(|q| q.opener)
                    .is_none_or(|o| o.node != me || o.conn != h.conn)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in &lost {
            self.handles.remove(k);
        }
        let lost: BTreeSet<u64> = lost.into_iter().collect();
        self.drop_waits(cx, |w| lost.contains(&w.handle), AisError::BadHandle);
        for w in &mut self.waits {
            w.taking = None;
        }
        self.takes.clear();
        self.timers
            .retain(|id, _| self.queues.by_id.contains_key(id));
        let ids: Vec<QueueId> = self.queues.by_id.keys().copied().collect();
        for id in ids {
            self.refresh_timer(cx.now(), id);
        }
        self.synced = true;
        if let Some(o) = &mut self.observer {
            o.activated(me, sync.ring, cx.members(), &self.queues);
        }
        for (id, conn) in std::mem::take(&mut self.deferred) {
            self.send_internal(cx, Update::Close { id, conn });
        }
        // Awaited replies start afresh in every configuration (a merged partition does not
        // know the other side's): each node announces its callers that still wait; one whose
        // time ran out or whose process is gone is answered here.
        if !self.defects.keep_awaited {
            self.awaiting.clear();
        }
        let calls: Vec<(MsgKey, Call)> = self.calls.iter().map(|(k, c)| (*k, *c)).collect();
        let now = cx.now();
        for (key, c) in calls {
            if !cx.is_open(c.conn) || c.ending || c.deadline <= now {
                self.calls.remove(&key);
                if cx.is_open(c.conn) && !c.answered {
                    cx.error(c.conn, c.id, AisError::Timeout);
                }
                continue;
            }
            self.send_internal(
                cx,
                Update::ReplyAwait {
                    to: key,
                    reply_size: c.reply_size,
                },
            );
        }
        self.notify_trackers(cx);
        self.pump(cx);
    }
}

/// A message is in at most one queue, and in none once any queue took it. Two partitions can
/// place one message in two queues: a send to a group delivered in a configuration's last
/// moments, when extended virtual synchrony let each side skip some of the other side's last
/// messages, so the group's positions differed. The oldest queue keeps it.
fn dedupe_across_queues(merged: &mut BTreeMap<QueueId, Queue>) {
    let taken: BTreeSet<MsgKey> = merged
        .values()
        .flat_map(|q| q.taken.iter().copied())
        .collect();
    let mut seen: BTreeSet<MsgKey> = BTreeSet::new();
    for q in merged.values_mut() {
        for area in &mut q.areas {
            area.retain(|m| !taken.contains(&m.key) && seen.insert(m.key));
        }
    }
}

/// The groups after a sync, from every member's report: of each group (identity) the copy
/// with the most membership changes (ties: the lowest member's); a group deleted anywhere
/// stays deleted; one name, one group: the oldest; members that are no longer queues leave.
fn merge_groups(
    next: &mut Queues,
    members: &BTreeSet<u32>,
    reports: BTreeMap<u32, (Vec<GroupCopy>, Vec<QueueId>)>,
) {
    let mut best: BTreeMap<QueueId, (u64, GroupCopy)> = BTreeMap::new();
    let mut deleted: BTreeSet<QueueId> = next.groups_deleted.iter().copied().collect();
    for (node, (groups, gone)) in reports {
        if !members.contains(&node) {
            continue;
        }
        deleted.extend(gone);
        for g in groups {
            match best.get(&g.id) {
                Some((generation, _)) if *generation >= g.generation => {}
                _ => {
                    best.insert(g.id, (g.generation, g));
                }
            }
        }
    }
    for id in &deleted {
        if !next.groups_deleted.contains(id) {
            next.groups_deleted.push_back(*id);
        }
    }
    while next.groups_deleted.len() > queues::MAX_DELETED {
        next.groups_deleted.pop_front();
    }
    for (id, (_, copy)) in best {
        if deleted.contains(&id) || next.groups.contains_key(&copy.name) {
            continue;
        }
        if next.names.contains_key(&copy.name) {
            continue;
        }
        let mut g = Group::from_copy(copy);
        let before = g.members.len();
        g.members.retain(|m| next.names.contains_key(m));
        if g.members.len() != before {
            g.generation += 1;
        }
        next.groups.insert(g.name.clone(), g);
    }
}

fn message_response(m: Stored) -> Response {
    Response::Message {
        message: m.body,
        send_time: m.send_time,
        key: m.key,
    }
}

fn from_incoming(inc: Incoming) -> Queue {
    let h = inc.header;
    let mut areas: [queues::Area; PRIORITIES] = Default::default();
    for m in inc.messages {
        let p = usize::from(m.body.priority).min(PRIORITIES - 1);
        areas[p].push_back(m);
    }
    Queue {
        id: h.id,
        name: h.name,
        attrs: h.attributes,
        unlinked: h.unlinked,
        opener: None,
        areas,
        taken: h.taken.into_iter().collect(),
        close_epoch: h.close_epoch,
        close_time: h.close_time,
        history: h.history,
    }
}

impl Service for Msg {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        MsgProtocol::NAME
    }

    fn lib_request(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        op: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        let req: Request = decode_body(op, body)?;
        self.lib(cx, conn, id, req);
        Ok(())
    }

    fn submitted(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        tag: u64,
        result: Result<MsgId, SubmitError>,
    ) {
        if result.is_err() {
            if let Some(p) = self.pending.remove(&tag)
                && let Pend::Close { handle, queue } = p.pend
            {
                match self.handles.get_mut(&handle) {
                    Some(h) => h.closing = false,
                    // Its connection closed meanwhile, counting on this close: send it.
                    None => {
                        self.send_internal(cx, Update::Close { id: queue, conn });
                    }
                }
            }
            cx.reply(conn, id, submit_reply::<Nothing>(result));
            return;
        }
        if let Some(p) = self.pending.get(&tag)
            && matches!(
                p.pend,
                Pend::Send { async_ack: Some(_) }
                    | Pend::Open {
                        invocation: Some(_),
                        ..
                    }
            )
        {
            cx.ok(conn, id);
        }
    }

    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match decode_body(kind, body)? {
            RingMessage::Update {
                rep,
                seq,
                tag,
                limits,
                time,
                update,
            } => self.deliver_update(cx, sender, (rep, seq, tag, limits, time), update),
            other => self.deliver_sync(cx, sender, other),
        }
        Ok(())
    }

    fn confchg(&mut self, _cx: &mut Context<'_>, change: &ConfigChange) {
        if change.kind == ConfigKind::Regular {
            self.synced = false;
            self.summary_sent = false;
        }
    }

    fn syncs(&self) -> bool {
        true
    }

    fn sync_init(&mut self, cx: &mut Context<'_>) {
        let ring = cx.ring();
        let held = self
            .queues
            .by_id
            .values()
            .map(|q| (q.id, q.history))
            .collect();
        let opens = self
            .handles
            .values()
            .map(|h| (h.queue, h.conn, h.flags))
            .collect();
        let msg = RingMessage::Summary {
            rep: ring.rep.0,
            seq: ring.seq,
            held,
            opens,
            deleted: self.queues.deleted.iter().copied().collect(),
        };
        cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
        let groups = RingMessage::SyncGroups {
            rep: ring.rep.0,
            seq: ring.seq,
            groups: self.queues.groups.values().map(Group::copy).collect(),
            deleted: self.queues.groups_deleted.iter().copied().collect(),
        };
        cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &groups));
        self.sync = Some(SyncState {
            ring,
            summaries: BTreeMap::new(),
            groups: BTreeMap::new(),
            data_sent: false,
            incoming: BTreeMap::new(),
        });
        self.summary_sent = true;
        self.deferred.clear();
    }

    fn sync_process(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sync) = &self.sync else { return true };
        if sync.data_sent {
            return true;
        }
        if cx
            .members()
            .iter()
            .any(|m| !sync.summaries.contains_key(&m.0) || !sync.groups.contains_key(&m.0))
        {
            return false;
        }
        self.send_copies(cx);
        if let Some(sync) = &mut self.sync {
            sync.data_sent = true;
        }
        true
    }

    fn sync_activate(&mut self, cx: &mut Context<'_>) {
        if let Some(sync) = self.sync.take() {
            self.activate(cx, sync);
        }
    }

    fn sync_abort(&mut self, _cx: &mut Context<'_>) {
        self.sync = None;
    }

    fn conn_closed(&mut self, cx: &mut Context<'_>, conn: ConnId) {
        self.waits.retain(|w| w.conn != conn);
        let calls: Vec<MsgKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.conn == conn)
            .map(|(k, _)| *k)
            .collect();
        for key in calls {
            self.end_call(cx, key);
        }
        self.trackers.retain(|(c, _), _| *c != conn);
        let gone: Vec<(u64, Handle)> = self
            .handles
            .iter()
            .filter(|(_, h)| h.conn == conn)
            .map(|(k, h)| (*k, *h))
            .collect();
        for (k, h) in gone {
            self.handles.remove(&k);
            if self.synced {
                if !h.closing {
                    self.send_internal(cx, Update::Close { id: h.queue, conn });
                }
            } else if self.summary_sent {
                self.deferred.push((h.queue, conn));
            }
        }
    }

    fn tick(&mut self, cx: &mut Context<'_>) {
        let now = cx.now();
        // Gets whose time ran out, unless a take of theirs is on the ring.
        let (late, keep): (Vec<Wait>, Vec<Wait>) = self
            .waits
            .drain(..)
            .partition(|w| w.taking.is_none() && w.deadline <= now);
        self.waits = keep;
        for w in late {
            cx.error(w.conn, w.id, AisError::Timeout);
        }
        if !self.synced {
            return;
        }
        let late: Vec<MsgKey> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.ending && c.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in late {
            self.end_call(cx, key);
        }
        let due: Vec<(QueueId, u64)> = self
            .timers
            .iter_mut()
            .filter(|(_, t)| !t.sent && t.deadline <= now)
            .map(|(id, t)| {
                t.sent = true;
                (*id, t.epoch)
            })
            .collect();
        for (id, epoch) in due {
            self.send_internal(cx, Update::RetentionExpired { id, epoch });
        }
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("msg_queues", self.queues.by_id.len() as u64);
        v.gauge(
            "msg_messages",
            self.queues.by_id.values().map(|q| q.len() as u64).sum(),
        );
        v.gauge("msg_memory_bytes", self.queues.memory());
        v.gauge("msg_handles", self.handles.len() as u64);
        v.gauge("msg_gets_waiting", self.waits.len() as u64);
        v.gauge("msg_groups", self.queues.groups.len() as u64);
        v.gauge("msg_group_trackers", self.trackers.len() as u64);
        v.counter("msg_updates", self.counters.updates);
        v.counter("msg_updates_refused", self.counters.refused);
        v.counter("msg_updates_stale", self.counters.stale);
        v.counter("msg_sent", self.counters.sent);
        v.counter("msg_taken", self.counters.taken);
        v.counter("msg_taken_orphaned", self.counters.taken_orphaned);
        v.counter("msg_merges", self.counters.merges);
        v.counter("msg_merge_absorbed", self.counters.absorbed);
        v.counter("msg_merge_openers_dropped", self.counters.openers_dropped);
        v.counter("msg_retention_expired", self.counters.retention_expired);
        v.counter("msg_sync_messages", self.counters.sync_messages);
        v.gauge("msg_replies_awaited", self.awaiting.len() as u64);
        v.counter("msg_replies", self.counters.replies);
        v.counter("msg_replies_refused", self.counters.replies_refused);
    }
}

#[cfg(test)]
mod tests;
