//! LCK, SA Forum distributed locks (B.01.01 semantics): every node holds the whole lock
//! table ([`table::Table`]: resources, granted locks, queued requests in FIFO order).
//!
//! **Changes** (open, close, lock request, unlock, purge, timeout withdrawal, the close of a
//! departed connection) travel the ring as `ais_proto::lck::RingMessage::Update` in **safe**
//! order and are applied by every node at delivery with the same outcome
//! ([`table::Table::apply`]); the requester's node answers its client then, and the nodes
//! of the holders send the waiter callbacks. Safe delivery means a grant told to a client is
//! in the table of every member of its configuration, so a surviving member never forgets a
//! lock a surviving holder was told it has. A change sent in one configuration and
//! delivered in another is refused everywhere alike (TRY_AGAIN).
//!
//! **Quorum**: a lock request applied in a ring that was not quorate at its sync
//! ([`crate::exec::Context::quorate`]) is refused with TRY_AGAIN and not queued, and nothing
//! queued is granted there; locks already granted stay (frozen: unlock works, nothing new
//! is granted). A grant decided while the configuration changes (delivered in a
//! transitional configuration) is told only after the next sync, if it still stands.
//!
//! **Sync** after every regular configuration, two steps. Every member sends a summary: the
//! sequence of the last ring in which it was quorate and whether its last ring was, the
//! digest of its table, and its own open handles. The winning table is that of the member
//! with the most recent quorate ring (ties: one whose last ring was quorate, then the lowest
//! node id); when some member's table differs, the winner sends it, one
//! resource per message. At the barrier every member takes the winning table, keeps only
//! the holders their own nodes reported (the locks of departed nodes, of earlier
//! incarnations and of closed handles are released, those taken with `LOCK_ORPHAN`
//! orphaned), in resource-name order, and, when the new ring is quorate, serves every queue
//! in resource-name order. A holder whose node was on a losing side (cut off from the
//! quorate partition) loses its locks and queued requests: its unlock answers NOT_EXIST,
//! its waiting lock call TRY_AGAIN.
//!
//! **Timeouts**: a synchronous lock's timeout runs on its requester's clock
//! ([`crate::exec::Context::now`]); when it passes with the request still queued, the node
//! sends a withdrawal; if the grant is delivered first, the grant wins and the client is
//! told GRANTED (the client library waits for the executive's answer and never times out
//! on its own).

pub mod checker;
pub mod table;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId};
use tracing::{debug, info, warn};

use crate::exec::{ConnId, Context, Service, ServiceId, submit_reply};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply, decode_body};
use ais_proto::lck::{
    Callback, Holder, LIST_LOCKS, LOCK_FLAGS, LckProtocol, LockEntry, LockId, LockInfo, LockStatus,
    MAX_NAME, Mode, OPT_DEADLOCK_DETECTION, OPT_ORPHAN_LOCKS, RESOURCE_CREATE, Request,
    ResourceInfo, Response, RingMessage, TIME_END, Update,
};
use ais_proto::ring;
use table::{Applied, Limits, Lock, Outcome, Table, TableDefects};

const ID: ServiceId = LckProtocol::ID;

/// Most resources in one list answer.
const LIST_RESOURCES: usize = 256;

/// The LCK settings of a node (`[lck]` in aisexec's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LckConfig {
    /// Most resources in the cluster; an open that would create one more is refused with
    /// `SA_AIS_ERR_NO_RESOURCES` (the sender's limit decides, at every node alike).
    pub max_resources: u32,
    /// Most locks, granted and queued, in the cluster; a request beyond is answered
    /// `SA_LCK_LOCK_NO_MORE`.
    pub max_locks: u32,
}

impl Default for LckConfig {
    fn default() -> LckConfig {
        LckConfig {
            max_resources: 1024,
            max_locks: 4096,
        }
    }
}

/// Deliberate defects, for the tests that prove the LCK checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LckDefects {
    /// Defects of the table's rules.
    pub table: TableDefects,
    /// Grant in rings without quorum.
    pub ignore_quorum: bool,
    /// Keep the locks of departed holders at a sync.
    pub keep_departed: bool,
    /// Merge by keeping each node's own table.
    pub keep_local: bool,
}

/// Told what the service does (the simulator's checker reads it).
pub trait Observer: Send {
    /// Node `node` sent its summary for `ring`.
    fn sync_started(&mut self, _node: u32, _ring: RingId) {}
    /// Node `node` activated the sync of `ring`.
    fn activated(
        &mut self,
        node: u32,
        ring: RingId,
        members: &[NodeId],
        quorate: bool,
        epoch: u64,
        table: &Table,
    );
    /// Node `node` applied a change that altered its table, in a ring `quorate` or not.
    fn applied(&mut self, _node: u32, _quorate: bool, _table: &Table) {}
    /// Node `node` told a client lock `lock` (of `holder`, on `resource`) was granted.
    fn told(&mut self, _node: u32, _lock: LockId, _holder: Holder, _resource: &Bytes, _mode: Mode) {
    }
    /// Node `node` answered DEADLOCK to `holder`'s request for `mode` on `resource`.
    fn deadlock(
        &mut self,
        _node: u32,
        _holder: Holder,
        _resource: &Bytes,
        _mode: Mode,
        _t: &Table,
    ) {
    }
    /// A holder was closed at its node.
    fn closed(&mut self, _holder: Holder) {}
    /// A client asked to unlock `lock`.
    fn unlocking(&mut self, _lock: LockId) {}
    /// Node `node` applied an operator's release of `lock`.
    fn released(&mut self, _node: u32, _lock: LockId) {}
    /// Node `node` sends its lock request `lock` again: it reached the ring only after a
    /// configuration change.
    fn resent(&mut self, _node: u32, _lock: LockId) {}
}

/// A resource handle of a connection.
#[derive(Debug, Clone)]
struct Handle {
    conn: ConnId,
    name: Bytes,
    /// A close of it is on the ring.
    closing: bool,
}

/// A lock request of this node waiting for its outcome.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    conn: ConnId,
    /// The request (synchronous: answered; asynchronous: answered at submit).
    id: u64,
    invocation: Option<u64>,
    /// When to withdraw it (synchronous locks with a timeout).
    deadline: Option<u64>,
    withdraw_sent: bool,
    /// Its request was delivered (queued or granted; absent from the table after a sync
    /// means lost in the merge).
    delivered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pend {
    Open {
        handle: u64,
        invocation: Option<u64>,
    },
    Close {
        handle: u64,
    },
    Lock {
        n: u64,
    },
    Unlock {
        n: u64,
        invocation: Option<u64>,
    },
    Purge {
        handle: u64,
    },
    Release {
        n: u64,
    },
}

impl Pend {
    /// What it waits for at delivery: (kind, handle or lock number).
    fn key(self) -> (u8, u64) {
        match self {
            Pend::Open { handle, .. } => (1, handle),
            Pend::Close { handle } => (2, handle),
            Pend::Lock { n } => (3, n),
            Pend::Unlock { n, .. } => (4, n),
            Pend::Purge { handle } => (6, handle),
            Pend::Release { n } => (7, n),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnId,
    id: u64,
    tag: u64,
    pend: Pend,
}

#[derive(Debug)]
struct Summary {
    quorate_seq: u64,
    last_quorate: bool,
    digest: u64,
    holders: Vec<(Holder, Bytes)>,
}

#[derive(Debug)]
struct SyncState {
    ring: RingId,
    /// Whether the ring is quorate, as the quorum service decided at its own activation
    /// just before this sync started (the same at every member; read at activation, the
    /// flag may already be cleared by the next transitional configuration at some members).
    quorate: bool,
    summaries: BTreeMap<u32, Summary>,
    sent: bool,
    incoming: BTreeMap<Bytes, (Vec<LockEntry>, Vec<LockEntry>)>,
}

impl SyncState {
    /// The member whose table wins: the most recent quorate ring, then one still in a
    /// quorate ring (not cut off since), then the lowest id.
    fn winner(&self) -> Option<u32> {
        self.summaries
            .iter()
            .max_by_key(|(node, s)| (s.quorate_seq, s.last_quorate, std::cmp::Reverse(**node)))
            .map(|(n, _)| *n)
    }
}

/// Counters for `aisctl status`.
#[derive(Debug, Default, Clone)]
struct Counters {
    updates: u64,
    refused: u64,
    stale: u64,
    resent: u64,
    foreign: u64,
    grants: u64,
    deadlocks: u64,
    timeouts: u64,
    released_at_sync: u64,
    merges: u64,
    released_by_operator: u64,
}

/// The LCK service.
pub struct Lck {
    cfg: LckConfig,
    defects: LckDefects,
    table: Table,
    /// False from a regular configuration until this service's sync activates.
    synced: bool,
    /// A transitional configuration was delivered and the next regular one was not.
    in_transition: bool,
    /// The ring of the last activation was quorate.
    ring_quorate: bool,
    /// The sequence of the last quorate ring this node activated (0: none).
    quorate_seq: u64,
    /// This incarnation's epoch (the sequence of its first activated ring; 0 before).
    epoch: u64,
    sync: Option<SyncState>,
    summary_sent: bool,
    /// Holders closed during a sync after the summary: their closes go out at activation.
    deferred: Vec<Holder>,
    /// Lock requests of this node that reached the ring only after a configuration change
    /// (refused everywhere as stale before this node's sync): sent again at activation.
    resend: Vec<Update>,
    handles: BTreeMap<u64, Handle>,
    next_handle: u64,
    waiting: BTreeMap<u64, Waiting>,
    next_lock: u64,
    pending: BTreeMap<(u8, u64), VecDeque<Pending>>,
    next_tag: u64,
    observer: Option<Box<dyn Observer>>,
    counters: Counters,
}

impl std::fmt::Debug for Lck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lck")
            .field("cfg", &self.cfg)
            .field("synced", &self.synced)
            .field("epoch", &self.epoch)
            .field("resources", &self.table.resources.len())
            .finish_non_exhaustive()
    }
}

impl Lck {
    /// The service with these settings.
    pub fn new(cfg: LckConfig) -> Lck {
        Lck::with_defects(cfg, LckDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(cfg: LckConfig, defects: LckDefects) -> Lck {
        Lck {
            cfg,
            defects,
            table: Table {
                defects: defects.table,
                ..Table::default()
            },
            synced: false,
            in_transition: false,
            ring_quorate: false,
            quorate_seq: 0,
            epoch: 0,
            sync: None,
            summary_sent: false,
            deferred: Vec::new(),
            resend: Vec::new(),
            handles: BTreeMap::new(),
            next_handle: 1,
            waiting: BTreeMap::new(),
            next_lock: 1,
            pending: BTreeMap::new(),
            next_tag: 1,
            observer: None,
            counters: Counters::default(),
        }
    }

    /// Tells `observer` what the service does.
    #[must_use]
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Lck {
        self.observer = Some(observer);
        self
    }

    /// The lock table this node holds.
    pub fn table(&self) -> &Table {
        &self.table
    }

    fn holder(&self, handle: u64) -> Holder {
        Holder {
            node: 0,
            epoch: self.epoch,
            handle,
        }
    }

    fn holder_at(&self, cx: &Context<'_>, handle: u64) -> Holder {
        Holder {
            node: cx.node().0,
            ..self.holder(handle)
        }
    }

    fn lock_id(&self, cx: &Context<'_>, n: u64) -> LockId {
        LockId {
            node: cx.node().0,
            epoch: self.epoch,
            n,
        }
    }

    /// This connection's open handle.
    fn handle(&self, conn: ConnId, handle: u64) -> Result<&Handle, AisError> {
        match self.handles.get(&handle) {
            Some(h) if h.conn == conn && !h.closing => Ok(h),
            _ => Err(AisError::BadHandle),
        }
    }

    fn update_message(&self, cx: &Context<'_>, update: Update) -> Bytes {
        let ring = cx.ring();
        ring::encode(
            ID,
            &RingMessage::Update {
                rep: ring.rep.0,
                seq: ring.seq,
                max_resources: self.cfg.max_resources,
                max_locks: self.cfg.max_locks,
                update,
            },
        )
    }

    /// Sends `update` for request `id` of `conn`, answered at delivery.
    fn send(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, pend: Pend, update: Update) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending
            .entry(pend.key())
            .or_default()
            .push_back(Pending {
                conn,
                id,
                tag,
                pend,
            });
        let msg = self.update_message(cx, update);
        cx.submit_for(conn, id, ID, tag, DeliveryKind::Safe, msg);
    }

    /// Sends an update of the executive itself (a departed connection's close, a timeout).
    fn send_internal(&mut self, cx: &mut Context<'_>, update: Update) {
        let msg = self.update_message(cx, update);
        cx.submit_internal(DeliveryKind::Safe, msg);
    }

    fn take_pending(&mut self, key: (u8, u64)) -> Option<Pending> {
        let q = self.pending.get_mut(&key)?;
        let p = q.pop_front();
        if q.is_empty() {
            self.pending.remove(&key);
        }
        p
    }

    fn lib(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, req: Request) {
        if let Err(e) = self.lib_checked(cx, conn, id, req) {
            cx.error(conn, id, e);
        }
    }

    fn lib_checked(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        req: Request,
    ) -> Result<(), AisError> {
        let changes = !matches!(req, Request::OptionCheck | Request::List);
        if changes && !self.synced {
            return Err(AisError::TryAgain);
        }
        match req {
            Request::Open { name, flags } => self.open(cx, conn, id, name, flags, None),
            Request::OpenAsync {
                name,
                flags,
                invocation,
            } => self.open(cx, conn, id, name, flags, Some(invocation)),
            Request::Close { handle } => {
                self.handle(conn, handle)?;
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.closing = true;
                }
                let holder = self.holder_at(cx, handle);
                self.send(
                    cx,
                    conn,
                    id,
                    Pend::Close { handle },
                    Update::Close { holder },
                );
                Ok(())
            }
            Request::Lock {
                handle,
                mode,
                flags,
                waiter_signal,
                timeout,
            } => {
                let deadline = (timeout != TIME_END).then(|| cx.now().saturating_add(timeout));
                self.lock(
                    cx,
                    conn,
                    id,
                    handle,
                    mode,
                    flags,
                    waiter_signal,
                    None,
                    deadline,
                )
            }
            Request::LockAsync {
                handle,
                mode,
                flags,
                waiter_signal,
                invocation,
            } => self.lock(
                cx,
                conn,
                id,
                handle,
                mode,
                flags,
                waiter_signal,
                Some(invocation),
                None,
            ),
            Request::Unlock { lock_id } => self.unlock(cx, conn, id, lock_id, None),
            Request::UnlockAsync {
                lock_id,
                invocation,
            } => self.unlock(cx, conn, id, lock_id, Some(invocation)),
            Request::Purge { handle } => {
                self.handle(conn, handle)?;
                let holder = self.holder_at(cx, handle);
                self.send(
                    cx,
                    conn,
                    id,
                    Pend::Purge { handle },
                    Update::Purge { holder },
                );
                Ok(())
            }
            Request::OptionCheck => {
                cx.reply(
                    conn,
                    id,
                    Reply::Service(Response::Options(OPT_ORPHAN_LOCKS | OPT_DEADLOCK_DETECTION)),
                );
                Ok(())
            }
            Request::Release { name, lock } => {
                let n = self.next_lock;
                self.next_lock += 1;
                let by = self.lock_id(cx, n);
                self.send(
                    cx,
                    conn,
                    id,
                    Pend::Release { n },
                    Update::Release { by, name, lock },
                );
                Ok(())
            }
            Request::List => {
                let resources = self.list();
                let more = self.table.resources.len().saturating_sub(resources.len()) as u32;
                cx.reply(conn, id, Reply::Service(Response::List { resources, more }));
                Ok(())
            }
        }
    }

    fn open(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        name: Bytes,
        flags: u8,
        invocation: Option<u64>,
    ) -> Result<(), AisError> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(AisError::InvalidParam);
        }
        if flags & !RESOURCE_CREATE != 0 {
            return Err(AisError::BadFlags);
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        let holder = self.holder_at(cx, handle);
        let update = Update::Open {
            holder,
            name,
            create: flags & RESOURCE_CREATE != 0,
        };
        self.send(cx, conn, id, Pend::Open { handle, invocation }, update);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn lock(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        handle: u64,
        mode: u8,
        flags: u32,
        waiter_signal: u64,
        invocation: Option<u64>,
        deadline: Option<u64>,
    ) -> Result<(), AisError> {
        self.handle(conn, handle)?;
        let mode = Mode::from_code(mode).ok_or(AisError::InvalidParam)?;
        if flags & !LOCK_FLAGS != 0 {
            // SAFtest's lockInvalidFlag expects INVALID_PARAM here (not BAD_FLAGS).
            return Err(AisError::InvalidParam);
        }
        let n = self.next_lock;
        self.next_lock += 1;
        self.waiting.insert(
            n,
            Waiting {
                conn,
                id,
                invocation,
                deadline,
                withdraw_sent: false,
                delivered: false,
            },
        );
        let update = Update::Lock {
            lock: self.lock_id(cx, n),
            holder: self.holder_at(cx, handle),
            mode,
            flags,
            waiter_signal,
        };
        self.send(cx, conn, id, Pend::Lock { n }, update);
        Ok(())
    }

    fn unlock(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        n: u64,
        invocation: Option<u64>,
    ) -> Result<(), AisError> {
        let lock = self.lock_id(cx, n);
        let mine = match self.table.find(&lock) {
            Some((_, l, true)) => l
                .holder
                .and_then(|h| self.handles.get(&h.handle))
                .is_some_and(|h| h.conn == conn),
            _ => false,
        };
        if !mine {
            return Err(AisError::NotExist);
        }
        if let Some(o) = &mut self.observer {
            o.unlocking(lock);
        }
        self.send(
            cx,
            conn,
            id,
            Pend::Unlock { n, invocation },
            Update::Unlock { lock },
        );
        Ok(())
    }

    fn list(&self) -> Vec<ResourceInfo> {
        self.table
            .resources
            .iter()
            .take(LIST_RESOURCES)
            .map(|(name, r)| ResourceInfo {
                name: name.clone(),
                opens: r.opens.len() as u32,
                locks: r
                    .granted
                    .iter()
                    .map(|l| (l, true))
                    .chain(r.queued.iter().map(|l| (l, false)))
                    .take(LIST_LOCKS)
                    .map(|(l, granted)| LockInfo {
                        id: l.id,
                        holder: l.holder,
                        mode: l.mode,
                        granted,
                        orphan_flag: l.flags & ais_proto::lck::LOCK_ORPHAN != 0,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Answers a lock request of this node with `result` (a status, or an error).
    fn answer_lock(&mut self, cx: &mut Context<'_>, n: u64, result: Result<LockStatus, AisError>) {
        let Some(w) = self.waiting.remove(&n) else {
            return;
        };
        if !cx.is_open(w.conn) {
            return;
        }
        match (w.invocation, result) {
            (None, Ok(status)) => cx.reply(
                w.conn,
                w.id,
                Reply::Service(Response::Locked { lock_id: n, status }),
            ),
            (None, Err(e)) => cx.error(w.conn, w.id, e),
            (Some(invocation), result) => cx.callback(
                w.conn,
                &Callback::Grant {
                    invocation,
                    lock_id: n,
                    status: result.unwrap_or(LockStatus::Granted),
                    error: result.map(|_| ()),
                },
            ),
        }
    }

    /// Tells the requesters on this node of `granted` locks, if grants may be told now.
    fn tell_grants(&mut self, cx: &mut Context<'_>, granted: &[LockId]) {
        for id in granted {
            if id.node != cx.node().0 || id.epoch != self.epoch {
                continue;
            }
            if let Some(w) = self.waiting.get_mut(&id.n) {
                w.delivered = true;
            }
            self.tell_if_possible(cx, id.n);
        }
    }

    fn tell_if_possible(&mut self, cx: &mut Context<'_>, n: u64) {
        if !self.synced || self.in_transition || !self.ring_quorate {
            return;
        }
        let id = self.lock_id(cx, n);
        let Some((name, l, true)) = self.table.find(&id) else {
            return;
        };
        let (name, holder, mode) = (name.clone(), l.holder, l.mode);
        if !self.waiting.contains_key(&n) {
            return;
        }
        self.counters.grants += 1;
        if let (Some(o), Some(h)) = (&mut self.observer, holder) {
            o.told(cx.node().0, id, h, &name, mode);
        }
        self.answer_lock(cx, n, Ok(LockStatus::Granted));
    }

    fn send_waiters(&mut self, cx: &mut Context<'_>, applied: &Applied) {
        for w in &applied.waiters {
            if w.holder.node != cx.node().0 || w.holder.epoch != self.epoch {
                continue;
            }
            let Some(h) = self.handles.get(&w.holder.handle) else {
                continue;
            };
            cx.callback(
                h.conn,
                &Callback::Waiter {
                    waiter_signal: w.waiter_signal,
                    lock_id: w.lock.n,
                    mode_held: w.mode_held,
                    mode_requested: w.mode_requested,
                },
            );
        }
    }

    fn deliver_update(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        (rep, seq, limits): (u32, u64, Limits),
        update: Update,
    ) {
        let me = cx.node();
        let pend_key = if sender == me {
            match &update {
                Update::Open { holder, .. } if holder.epoch == self.epoch => {
                    Some((1, holder.handle))
                }
                Update::Close { holder } if holder.epoch == self.epoch => Some((2, holder.handle)),
                Update::Lock { lock, .. } if lock.epoch == self.epoch => Some((3, lock.n)),
                Update::Unlock { lock } if lock.epoch == self.epoch => Some((4, lock.n)),
                Update::Purge { holder } if holder.epoch == self.epoch => Some((6, holder.handle)),
                Update::Release { by, .. } if by.epoch == self.epoch => Some((7, by.n)),
                _ => None,
            }
        } else {
            None
        };
        let pending = pend_key.and_then(|k| self.take_pending(k));
        let sent_in = RingId {
            rep: NodeId(rep),
            seq,
        };
        if sent_in != cx.ring() || !self.synced {
            self.counters.stale += 1;
            debug!(
                "lck: node {me} refused a stale update from {sender} (sent in {sent_in}, ring {})",
                cx.ring()
            );
            if let (Some(p), Update::Lock { .. }) = (pending, &update)
                && let Pend::Lock { n } = p.pend
                && self.waiting.contains_key(&n)
            {
                // A lock request submitted just before a configuration change and sent by
                // Totem in the new ring: it changed nothing anywhere, so it goes again
                // (stamped with the ring it is sent in) rather than failing the client with
                // TRY_AGAIN for the timing of a membership change.
                self.counters.resent += 1;
                if let (Some(o), Update::Lock { lock, .. }) = (&mut self.observer, &update) {
                    o.resent(me.0, *lock);
                }
                debug!(
                    "lck: node {me} sends its lock request {n} again in ring {}",
                    cx.ring()
                );
                self.pending.entry(p.pend.key()).or_default().push_front(p);
                if self.synced {
                    self.send_internal(cx, update);
                } else {
                    self.resend.push(update);
                }
                return;
            }
            if let Some(p) = pending {
                self.answer(
                    cx,
                    p,
                    Applied {
                        outcome: Outcome::Refused(AisError::TryAgain),
                        granted: Vec::new(),
                        dropped: Vec::new(),
                        waiters: Vec::new(),
                    },
                );
            } else if let (true, Update::Withdraw { lock }) = (sender == me, &update)
                && let Some(w) = self.waiting.get_mut(&lock.n)
            {
                w.withdraw_sent = false;
            }
            return;
        }
        let quorate = self.ring_quorate || self.defects.ignore_quorum;
        // Who holds a lock an operator releases (for the log).
        let released_holder = match &update {
            Update::Release { lock, .. } => self.table.find(lock).and_then(|(_, l, _)| l.holder),
            _ => None,
        };
        let applied = self.table.apply(sender.0, quorate, limits, &update);
        self.counters.updates += 1;
        match applied.outcome {
            Outcome::Refused(AisError::InvalidParam) => {
                self.counters.foreign += 1;
                info!(
                    "lck: refused an update of node {sender} naming another node's holder or lock"
                );
            }
            Outcome::Refused(_) => self.counters.refused += 1,
            Outcome::Status(LockStatus::Deadlock) => {
                self.counters.deadlocks += 1;
                if let (Some(o), Update::Lock { holder, mode, .. }) = (&mut self.observer, &update)
                    && let Some(name) = self.table.holders.get(holder)
                {
                    o.deadlock(me.0, *holder, name, *mode, &self.table);
                }
            }
            _ => {}
        }
        if let (Outcome::Released, Update::Release { name, lock, .. }) = (applied.outcome, &update)
        {
            self.counters.released_by_operator += 1;
            warn!(
                "lck: lock {lock} of {:?} released by an operator at node {sender}",
                String::from_utf8_lossy(name)
            );
            match released_holder {
                Some(h) if h.node == me.0 && h.epoch == self.epoch => warn!(
                    "lck: lock {lock} was held by {h} at this node: its holder is not told \
                     (LCK has no callback for it); its own unlock will get NOT_EXIST"
                ),
                Some(_) => {}
                None => info!("lck: lock {lock} was an orphan"),
            }
            if let Some(o) = &mut self.observer {
                o.released(me.0, *lock);
            }
        }
        let changed = !matches!(applied.outcome, Outcome::Refused(_) | Outcome::Status(_));
        if changed && let Some(o) = &mut self.observer {
            o.applied(me.0, self.ring_quorate, &self.table);
        }
        // Queued requests of this node that went with their holder.
        for id in &applied.dropped {
            if id.node == me.0 && id.epoch == self.epoch {
                self.answer_lock(cx, id.n, Err(AisError::BadHandle));
            }
        }
        if let (true, Update::Withdraw { lock }, Outcome::Withdrawn) =
            (sender == me, &update, applied.outcome)
        {
            self.counters.timeouts += 1;
            self.answer_lock(cx, lock.n, Err(AisError::Timeout));
        }
        self.send_waiters(cx, &applied);
        if let Some(p) = pending {
            self.answer(cx, p, applied.clone());
        }
        self.tell_grants(cx, &applied.granted);
    }

    /// Answers a delivered (or refused) request of this node.
    fn answer(&mut self, cx: &mut Context<'_>, p: Pending, applied: Applied) {
        let Pending { conn, id, pend, .. } = p;
        let outcome = applied.outcome;
        match (pend, outcome) {
            (Pend::Open { handle, invocation }, Outcome::Opened) => {
                let Some(name) = self.table.holders.get(&self.holder_at(cx, handle)).cloned()
                else {
                    return;
                };
                if !cx.is_open(conn) {
                    // Its client is gone: the open is undone.
                    let holder = self.holder_at(cx, handle);
                    self.send_internal(cx, Update::Close { holder });
                    return;
                }
                self.handles.insert(
                    handle,
                    Handle {
                        conn,
                        name,
                        closing: false,
                    },
                );
                match invocation {
                    None => cx.reply(conn, id, Reply::Service(Response::Opened { handle })),
                    Some(invocation) => cx.callback(
                        conn,
                        &Callback::Open {
                            invocation,
                            result: Ok(handle),
                        },
                    ),
                }
            }
            (Pend::Open { invocation, .. }, Outcome::Refused(e)) => match invocation {
                None => cx.error(conn, id, e),
                Some(invocation) => cx.callback(
                    conn,
                    &Callback::Open {
                        invocation,
                        result: Err(e),
                    },
                ),
            },
            (Pend::Close { handle }, outcome) => {
                if let Outcome::Refused(e) = outcome {
                    if let Some(h) = self.handles.get_mut(&handle) {
                        h.closing = false;
                    }
                    return cx.error(conn, id, e);
                }
                self.handles.remove(&handle);
                let holder = self.holder_at(cx, handle);
                if let Some(o) = &mut self.observer {
                    o.closed(holder);
                }
                cx.ok(conn, id);
            }
            (Pend::Lock { n }, Outcome::Refused(e)) => self.answer_lock(cx, n, Err(e)),
            (Pend::Lock { n }, Outcome::Status(s)) => self.answer_lock(cx, n, Ok(s)),
            (Pend::Lock { n }, _) => {
                // Queued, or granted (told by the grant list).
                if let Some(w) = self.waiting.get_mut(&n) {
                    w.delivered = true;
                }
            }
            (Pend::Unlock { invocation, .. }, outcome) => {
                let result = match outcome {
                    Outcome::Refused(e) => Err(e),
                    _ => Ok(()),
                };
                match invocation {
                    None => match result {
                        Ok(()) => cx.ok(conn, id),
                        Err(e) => cx.error(conn, id, e),
                    },
                    Some(invocation) => cx.callback(conn, &Callback::Unlock { invocation, result }),
                }
            }
            (_, Outcome::Refused(e)) => cx.error(conn, id, e),
            (_, _) => cx.ok(conn, id),
        }
    }

    fn deliver_sync(&mut self, cx: &mut Context<'_>, sender: NodeId, msg: RingMessage) {
        let Some(sync) = &mut self.sync else { return };
        let (rep, seq) = match &msg {
            RingMessage::Summary { rep, seq, .. } | RingMessage::SyncResource { rep, seq, .. } => {
                (*rep, *seq)
            }
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
                quorate_seq,
                last_quorate,
                digest,
                holders,
                ..
            } => {
                // A node reports only its own holders.
                let holders = holders
                    .into_iter()
                    .filter(|(h, _)| h.node == sender.0)
                    .collect();
                sync.summaries.insert(
                    sender.0,
                    Summary {
                        quorate_seq,
                        last_quorate,
                        digest,
                        holders,
                    },
                );
            }
            RingMessage::SyncResource {
                name,
                granted,
                queued,
                ..
            } => {
                if sync.winner() == Some(sender.0) {
                    sync.incoming.insert(name, (granted, queued));
                }
            }
            RingMessage::Update { .. } => {}
        }
    }

    fn activate(&mut self, cx: &mut Context<'_>, sync: SyncState) {
        let me = cx.node().0;
        let ring = sync.ring;
        let quorate = sync.quorate;
        let winner = sync.winner();
        let my_digest = self.table.digest();
        let use_own = self.defects.keep_local
            || winner.is_none()
            || winner
                .and_then(|w| sync.summaries.get(&w))
                .map(|s| s.digest)
                == Some(my_digest);
        let mut base = std::mem::take(&mut self.table);
        if !use_own {
            self.counters.merges += 1;
            base.resources.clear();
            for (name, (granted, queued)) in sync.incoming {
                let r = base.resources.entry(name).or_default();
                r.granted = granted.iter().map(Lock::from_entry).collect();
                r.queued = queued.iter().map(Lock::from_entry).collect();
            }
        }
        // The live holders, as their own nodes reported them.
        let live: BTreeMap<Holder, Bytes> = sync
            .summaries
            .values()
            .flat_map(|s| s.holders.iter().cloned())
            .collect();
        let mut table = Table {
            defects: self.defects.table,
            ..Table::default()
        };
        let mut released = 0u64;
        for (name, mut r) in std::mem::take(&mut base.resources) {
            r.opens.clear();
            if !self.defects.keep_departed {
                let gone: BTreeSet<Holder> = r
                    .granted
                    .iter()
                    .chain(r.queued.iter())
                    .filter_map(|l| l.holder)
                    .filter(|h| !live.contains_key(h))
                    .collect();
                if !gone.is_empty() {
                    released += gone.len() as u64;
                    table.resources.insert(name.clone(), r);
                    let mut dummy = Applied {
                        outcome: Outcome::Closed,
                        granted: Vec::new(),
                        dropped: Vec::new(),
                        waiters: Vec::new(),
                    };
                    table.release(&name, &gone, &mut dummy);
                    continue;
                }
            }
            table.resources.insert(name, r);
        }
        for (h, name) in &live {
            table
                .resources
                .entry(name.clone())
                .or_default()
                .opens
                .insert(*h);
            table.holders.insert(*h, name.clone());
        }
        table.forget_unused();
        let mut applied = Applied {
            outcome: Outcome::Closed,
            granted: Vec::new(),
            dropped: Vec::new(),
            waiters: Vec::new(),
        };
        let names: Vec<Bytes> = table.resources.keys().cloned().collect();
        for name in &names {
            table.grant(name, quorate || self.defects.ignore_quorum, &mut applied);
        }
        if released > 0 {
            self.counters.released_at_sync += released;
            info!(
                "lck: ring {ring}: released the locks and requests of {released} departed or \
                 closed holder(s)"
            );
        }
        self.table = table;
        self.ring_quorate = quorate;
        if quorate {
            self.quorate_seq = ring.seq;
        }
        if self.epoch == 0 {
            self.epoch = ring.seq.max(1);
        }
        // Not `in_transition = false`: a barrier may be delivered in the transitional
        // configuration of the next change, and grants are not told there.
        self.synced = true;
        if let Some(o) = &mut self.observer {
            o.activated(me, ring, cx.members(), quorate, self.epoch, &self.table);
        }
        // This node's waiting requests: granted ones are told, lost ones answered.
        let ns: Vec<u64> = self.waiting.keys().copied().collect();
        for n in ns {
            let id = self.lock_id(cx, n);
            match self.table.find(&id) {
                Some((_, _, true)) => self.tell_if_possible(cx, n),
                Some((_, _, false)) => {
                    if let Some(w) = self.waiting.get_mut(&n) {
                        w.withdraw_sent = false;
                    }
                }
                None => {
                    if self.waiting.get(&n).is_some_and(|w| w.delivered) {
                        // Dropped in the merge: its side lost.
                        self.answer_lock(cx, n, Err(AisError::TryAgain));
                    }
                }
            }
        }
        for holder in std::mem::take(&mut self.deferred) {
            self.send_internal(cx, Update::Close { holder });
        }
        for update in std::mem::take(&mut self.resend) {
            // Unless its client went away meanwhile.
            if let Update::Lock { lock, .. } = &update
                && self.waiting.contains_key(&lock.n)
            {
                self.send_internal(cx, update);
            }
        }
    }
}

impl Service for Lck {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        LckProtocol::NAME
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
        let found = self
            .pending
            .iter()
            .find_map(|(k, q)| q.iter().find(|p| p.tag == tag).map(|p| (*k, *p)));
        let Some((key, p)) = found else {
            return cx.reply(conn, id, submit_reply::<Nothing>(result));
        };
        if result.is_err() {
            if let Some(q) = self.pending.get_mut(&key) {
                q.retain(|x| x.tag != tag);
                if q.is_empty() {
                    self.pending.remove(&key);
                }
            }
            match p.pend {
                Pend::Lock { n } => {
                    self.waiting.remove(&n);
                }
                Pend::Close { handle } => match self.handles.get_mut(&handle) {
                    Some(h) => h.closing = false,
                    // Its connection closed meanwhile, counting on this close: send it.
                    None => {
                        let holder = self.holder_at(cx, handle);
                        self.send_internal(cx, Update::Close { holder });
                    }
                },
                _ => {}
            }
            return cx.reply(conn, id, submit_reply::<Nothing>(result));
        }
        // The asynchronous calls are answered now; their callback follows at delivery.
        match p.pend {
            Pend::Lock { n } if self.waiting.get(&n).is_some_and(|w| w.invocation.is_some()) => {
                cx.reply(conn, id, Reply::Service(Response::LockId { lock_id: n }));
            }
            Pend::Open {
                invocation: Some(_),
                ..
            }
            | Pend::Unlock {
                invocation: Some(_),
                ..
            } => cx.ok(conn, id),
            _ => {}
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
                max_resources,
                max_locks,
                update,
            } => self.deliver_update(
                cx,
                sender,
                (
                    rep,
                    seq,
                    Limits {
                        max_resources,
                        max_locks,
                    },
                ),
                update,
            ),
            other => self.deliver_sync(cx, sender, other),
        }
        Ok(())
    }

    fn confchg(&mut self, _cx: &mut Context<'_>, change: &ConfigChange) {
        match change.kind {
            ConfigKind::Transitional => self.in_transition = true,
            ConfigKind::Regular => {
                self.synced = false;
                self.summary_sent = false;
                self.in_transition = false;
            }
        }
    }

    fn syncs(&self) -> bool {
        true
    }

    fn sync_init(&mut self, cx: &mut Context<'_>) {
        let ring = cx.ring();
        let me = cx.node().0;
        let holders = self
            .handles
            .iter()
            .filter(|(_, h)| !h.closing)
            .map(|(k, h)| {
                (
                    Holder {
                        node: me,
                        ..self.holder(*k)
                    },
                    h.name.clone(),
                )
            })
            .collect();
        let msg = RingMessage::Summary {
            rep: ring.rep.0,
            seq: ring.seq,
            quorate_seq: self.quorate_seq,
            last_quorate: self.ring_quorate,
            digest: self.table.digest(),
            holders,
        };
        cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
        self.sync = Some(SyncState {
            ring,
            quorate: cx.quorate(),
            summaries: BTreeMap::new(),
            sent: false,
            incoming: BTreeMap::new(),
        });
        self.summary_sent = true;
        self.deferred.clear();
        if let Some(o) = &mut self.observer {
            o.sync_started(me, ring);
        }
    }

    fn sync_process(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sync) = &self.sync else { return true };
        if sync.sent {
            return true;
        }
        if cx
            .members()
            .iter()
            .any(|m| !sync.summaries.contains_key(&m.0))
        {
            return false;
        }
        let me = cx.node().0;
        let digest = self.table.digest();
        let differs = sync.summaries.values().any(|s| s.digest != digest);
        if sync.winner() == Some(me) && differs && !self.defects.keep_local {
            let (rep, seq) = (sync.ring.rep.0, sync.ring.seq);
            for (name, granted, queued) in self.table.entries() {
                let msg = RingMessage::SyncResource {
                    rep,
                    seq,
                    name,
                    granted,
                    queued,
                };
                cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
            }
        }
        if let Some(sync) = &mut self.sync {
            sync.sent = true;
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
        self.waiting.retain(|_, w| w.conn != conn);
        let gone: Vec<(u64, Handle)> = self
            .handles
            .iter()
            .filter(|(_, h)| h.conn == conn)
            .map(|(k, h)| (*k, h.clone()))
            .collect();
        for (k, h) in gone {
            self.handles.remove(&k);
            let holder = self.holder_at(cx, k);
            if let Some(o) = &mut self.observer {
                o.closed(holder);
            }
            if self.synced {
                if !h.closing {
                    self.send_internal(cx, Update::Close { holder });
                }
            } else if self.summary_sent {
                // The summary counted it: close it once the sync is done.
                self.deferred.push(holder);
            }
        }
    }

    fn tick(&mut self, cx: &mut Context<'_>) {
        if !self.synced {
            return;
        }
        let now = cx.now();
        let due: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| !w.withdraw_sent && w.deadline.is_some_and(|d| d <= now))
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            let lock = self.lock_id(cx, n);
            // Only a queued request is withdrawn; one still travelling is withdrawn after
            // its delivery (at the next tick).
            if matches!(self.table.find(&lock), Some((_, _, false))) {
                if let Some(w) = self.waiting.get_mut(&n) {
                    w.withdraw_sent = true;
                }
                self.send_internal(cx, Update::Withdraw { lock });
            }
        }
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("lck_resources", self.table.resources.len() as u64);
        v.gauge("lck_locks", self.table.lock_count() as u64);
        v.gauge("lck_handles", self.handles.len() as u64);
        v.counter("lck_updates", self.counters.updates);
        v.counter("lck_updates_refused", self.counters.refused);
        v.counter("lck_updates_stale", self.counters.stale);
        v.counter("lck_locks_resent", self.counters.resent);
        v.counter("lck_updates_foreign", self.counters.foreign);
        v.counter("lck_grants_told", self.counters.grants);
        v.counter("lck_deadlocks", self.counters.deadlocks);
        v.counter("lck_timeouts", self.counters.timeouts);
        v.counter("lck_released_at_sync", self.counters.released_at_sync);
        v.counter("lck_merges", self.counters.merges);
        v.counter(
            "lck_released_by_operator",
            self.counters.released_by_operator,
        );
    }
}

#[cfg(test)]
mod tests;
