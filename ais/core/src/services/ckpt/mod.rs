//! CKPT, SA Forum checkpoints (B.01.01 semantics): every node holds a replica of every
//! checkpoint.
//!
//! **Changes** (open, close, unlink, retention, section create/delete/expiration, write,
//! overwrite, synchronize) travel the ring as `ais_proto::ckpt::RingMessage::Update` in
//! **safe** order and are applied by every node at delivery ([`replica::Replicas::apply`]),
//! with the same outcome everywhere; the node of the requesting client answers it then. Safe
//! delivery means every member of the configuration has received the update before any node
//! applies it, so a write acknowledged to a client survives the crash of any node, its own
//! included, while one member of that configuration lives (agreed delivery would let the
//! writer acknowledge an update only it had received). An update sent in one configuration
//! and delivered in another is refused everywhere (its client is told TRY_AGAIN), so no
//! change lands half before a sync and half after.
//!
//! **Reads** (read, status, iteration, list) are answered from the local replica: they see
//! every update this node has applied, so a client reads its own acknowledged writes.
//!
//! **Sync** after every regular configuration, two steps. Every member sends a summary of
//! what it holds: each checkpoint's identity with a digest of its history, how often this
//! node has it open, and the checkpoints it knows were deleted. When every member's summary
//! is in, each distinct copy (identity and history) that not every member holds is sent
//! once, by the lowest member holding it. At the barrier every member merges the copies of
//! each checkpoint with the same rule ([`replica::merge`]): sections from the side that
//! changed them last, deletions that stick, unlink that sticks; opens are what each member
//! reported. Two checkpoints created under one name in two partitions: the older keeps the
//! name, the newer is unlinked (its openers keep it until they close it).
//!
//! **Time**: retention timers and section expiration run on each node's clock
//! ([`crate::exec::Context::now`]); the node whose timer runs out first sends the deletion,
//! and every node applies it only if it is still due (the checkpoint still closed since the
//! same last close, the section still with the same expiration time).

pub mod checker;
pub mod replica;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId};
use tracing::{debug, info, warn};

use crate::exec::{ConnId, Context, Service, ServiceId, submit_reply};
use ais_proto::ckpt::{
    CHECKPOINT_COLLOCATED, CREATION_FLAGS, Callback, Chosen, CkptId, CkptProtocol, CopyHeader,
    MAX_NAME, MAX_READ, MAX_SECTION_ID, OPEN_CREATE, OPEN_READ, OPEN_WRITE, ReadElement, Request,
    Response, RingMessage, SectionHeader, TIME_END, Update, WR_ACTIVE_REPLICA,
    WR_ACTIVE_REPLICA_WEAK, WR_ALL_REPLICAS,
};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply, decode_body};
use ais_proto::ring;
use replica::{Applied, Checkpoint, Copy, MergeDefects, Refused, Replicas, Section};

const ID: ServiceId = CkptProtocol::ID;

/// Sections are sent in pieces of at most this many bytes in a sync.
pub const SYNC_PIECE: usize = 1 << 20;
/// Bytes of one checkpoint in a list answer, besides its name and id.
const LIST_ENTRY: usize = 2 + 52 + 4 + 1 + 2;
/// A section descriptor's bytes in an answer, without its id.
const DESCRIPTOR_ENTRY: usize = 2 + 8 + 8 + 1 + 8;
/// Most iterations one connection may have open.
pub const MAX_ITERATORS: usize = 256;

/// The CKPT settings of a node (`[ckpt]` in aisexec's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CkptConfig {
    /// Most data bytes of all checkpoints together; a change that would pass it is refused
    /// with `SA_AIS_ERR_NO_RESOURCES` (the sender's limit decides, at every node alike: give
    /// every node the same).
    pub max_memory: u64,
    /// Refuse changes (TRY_AGAIN) while this node's partition is not quorate.
    pub writes_need_quorum: bool,
}

impl Default for CkptConfig {
    fn default() -> CkptConfig {
        CkptConfig {
            max_memory: 512 << 20,
            writes_need_quorum: false,
        }
    }
}

/// Deliberate defects, for the tests that prove the CKPT checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CkptDefects {
    /// Defects of the merge rule.
    pub merge: MergeDefects,
}

/// Told of the replicas at every sync activation (the simulator's checker reads them).
pub trait Observer: Send {
    /// Node `node` activated the sync of `ring` (of `members`) with these replicas.
    fn activated(&mut self, node: u32, ring: RingId, members: &[NodeId], replicas: &Replicas);

    /// Node `node` applied `update` from `sender`.
    fn applied(&mut self, _node: u32, _sender: u32, _update: &Update) {}
}

/// An open checkpoint of a connection.
#[derive(Debug, Clone, Copy)]
struct Handle {
    conn: ConnId,
    id: CkptId,
    flags: u8,
    /// A close of it is on the ring.
    closing: bool,
}

#[derive(Debug)]
struct Iter {
    conn: ConnId,
    handle: u64,
    sections: std::collections::VecDeque<Bytes>,
}

/// What a pending update answers when it is delivered.
#[derive(Debug, Clone, Copy)]
enum Pend {
    Open { flags: u8, invocation: Option<u64> },
    Close { handle: u64, id: CkptId },
    Plain,
    SectionCreate,
    Write,
    Synchronize { invocation: Option<u64> },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnId,
    id: u64,
    pend: Pend,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    deadline: u64,
    epoch: u64,
    duration: u64,
    sent: bool,
}

/// A copy being received in a sync.
#[derive(Debug)]
struct Incoming {
    holder: u32,
    header: CopyHeader,
    sections: BTreeMap<Bytes, (SectionHeader, Vec<u8>)>,
}

#[derive(Debug, Default)]
struct Summary {
    held: Vec<(CkptId, u64, u32)>,
    deleted: Vec<CkptId>,
}

#[derive(Debug)]
struct SyncState {
    ring: RingId,
    summaries: BTreeMap<u32, Summary>,
    data_sent: bool,
    incoming: BTreeMap<(CkptId, u64), Incoming>,
}

/// Counters for `aisctl status`.
#[derive(Debug, Default, Clone)]
struct Counters {
    updates: u64,
    refused: u64,
    stale: u64,
    merges: u64,
    renamed: u64,
    sync_bytes: u64,
    retention_expired: u64,
    sections_expired: u64,
}

/// The CKPT service.
pub struct Ckpt {
    cfg: CkptConfig,
    defects: CkptDefects,
    replicas: Replicas,
    /// False from a regular configuration until this service's sync activates: updates are
    /// refused, closes wait.
    synced: bool,
    sync: Option<SyncState>,
    /// This sync's summary went out (a connection closing after it must send its close).
    summary_sent: bool,
    handles: BTreeMap<u64, Handle>,
    next_handle: u64,
    iterators: BTreeMap<u64, Iter>,
    next_iterator: u64,
    pending: BTreeMap<u64, Pending>,
    next_tag: u64,
    /// Closes to send when the sync activates.
    deferred: Vec<CkptId>,
    timers: BTreeMap<CkptId, Timer>,
    expiry_sent: BTreeSet<(CkptId, Bytes, u64)>,
    next_expiry: u64,
    observer: Option<Box<dyn Observer>>,
    counters: Counters,
}

impl std::fmt::Debug for Ckpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ckpt")
            .field("checkpoints", &self.replicas.by_id.len())
            .field("synced", &self.synced)
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

fn wr_mode(flags: u32) -> u32 {
    flags & (WR_ALL_REPLICAS | WR_ACTIVE_REPLICA | WR_ACTIVE_REPLICA_WEAK)
}

/// Checks an open's name, flags and attributes (what does not depend on the replicas).
fn check_open(
    name: &Bytes,
    flags: u8,
    attributes: &Option<ais_proto::ckpt::Attributes>,
) -> Result<(), AisError> {
    if name.len() > MAX_NAME {
        return Err(AisError::NameTooLong);
    }
    if name.is_empty() {
        return Err(AisError::InvalidParam);
    }
    if flags & !(OPEN_READ | OPEN_WRITE | OPEN_CREATE) != 0 {
        return Err(AisError::BadFlags);
    }
    match (flags & OPEN_CREATE != 0, attributes) {
        (true, Some(a)) => {
            if a.creation_flags & !CREATION_FLAGS != 0
                || wr_mode(a.creation_flags).count_ones() != 1
            {
                return Err(AisError::BadFlags);
            }
            if a.max_sections == 0
                || (a.max_sections > 1
                    && (a.max_section_id_size == 0
                        || a.max_section_id_size > MAX_SECTION_ID as u64))
                || a.checkpoint_size > u64::from(a.max_sections).saturating_mul(a.max_section_size)
            {
                return Err(AisError::InvalidParam);
            }
            Ok(())
        }
        (false, None) => Ok(()),
        _ => Err(AisError::InvalidParam),
    }
}

impl Ckpt {
    /// The service with these settings.
    pub fn new(cfg: CkptConfig) -> Ckpt {
        Ckpt::with_defects(cfg, CkptDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(cfg: CkptConfig, defects: CkptDefects) -> Ckpt {
        Ckpt {
            cfg,
            defects,
            replicas: Replicas::default(),
            synced: false,
            sync: None,
            summary_sent: false,
            handles: BTreeMap::new(),
            next_handle: 1,
            iterators: BTreeMap::new(),
            next_iterator: 1,
            pending: BTreeMap::new(),
            next_tag: 1,
            deferred: Vec::new(),
            timers: BTreeMap::new(),
            expiry_sent: BTreeSet::new(),
            next_expiry: 0,
            observer: None,
            counters: Counters::default(),
        }
    }

    /// Tells `observer` of the replicas at every sync activation.
    #[must_use]
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Ckpt {
        self.observer = Some(observer);
        self
    }

    /// The replicas this node holds.
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// This connection's open handle, with the access it needs (`OPEN_READ`, `OPEN_WRITE`,
    /// or 0 for none).
    fn handle(&self, conn: ConnId, handle: u64, needs: u8) -> Result<Handle, AisError> {
        match self.handles.get(&handle) {
            Some(h) if h.conn == conn => {
                if h.flags & needs != needs {
                    Err(AisError::Access)
                } else {
                    Ok(*h)
                }
            }
            _ => Err(AisError::BadHandle),
        }
    }

    fn ckpt(&self, id: &CkptId) -> Result<&Checkpoint, AisError> {
        self.replicas.by_id.get(id).ok_or(AisError::NotExist)
    }

    /// Sends `update` for request `id` of `conn`; answered at delivery.
    fn send(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, pend: Pend, update: Update) {
        if !self.synced {
            return cx.error(conn, id, AisError::TryAgain);
        }
        let needs_quorum = !matches!(
            update,
            Update::Close { .. }
                | Update::Barrier
                | Update::Open {
                    attributes: None,
                    ..
                }
        );
        if needs_quorum && self.cfg.writes_need_quorum && !cx.quorate() {
            return cx.error(conn, id, AisError::TryAgain);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending.insert(tag, Pending { conn, id, pend });
        let msg = self.update_message(cx, tag, update);
        cx.submit_for(conn, id, ID, tag, DeliveryKind::Safe, msg);
    }

    fn update_message(&self, cx: &Context<'_>, tag: u64, update: Update) -> Bytes {
        let ring = cx.ring();
        ring::encode(
            ID,
            &RingMessage::Update {
                rep: ring.rep.0,
                seq: ring.seq,
                tag,
                limit: self.cfg.max_memory,
                time: cx.now(),
                update,
            },
        )
    }

    /// Sends an update of the executive itself (a close of a departed client, an expiry).
    fn send_internal(&mut self, cx: &mut Context<'_>, update: Update) {
        // Its own tag too (no client waits for it): the digest of an update is its sender,
        // ring and tag, unique.
        let tag = self.next_tag;
        self.next_tag += 1;
        let msg = self.update_message(cx, tag, update);
        cx.submit_internal(DeliveryKind::Safe, msg);
    }

    /// Answers a delivered (or refused) update.
    fn answer(&mut self, cx: &mut Context<'_>, p: Pending, result: Result<Applied, Refused>) {
        let Pending { conn, id, pend } = p;
        match (pend, result) {
            (Pend::Open { flags, invocation }, Ok(Applied::Opened(cid))) => {
                if !cx.is_open(conn) {
                    // Its client is gone: the open is undone.
                    self.send_internal(cx, Update::Close { id: cid });
                    return;
                }
                let handle = self.next_handle;
                self.next_handle += 1;
                self.handles.insert(
                    handle,
                    Handle {
                        conn,
                        id: cid,
                        flags,
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
            (Pend::Open { invocation, .. }, Err(r)) => match invocation {
                None => cx.error(conn, id, r.error),
                Some(invocation) => cx.callback(
                    conn,
                    &Callback::Open {
                        invocation,
                        result: Err(r.error),
                    },
                ),
            },
            (Pend::Close { handle, .. }, result) => {
                if result.is_ok() {
                    self.handles.remove(&handle);
                    self.iterators.retain(|_, it| it.handle != handle);
                } else if let Some(h) = self.handles.get_mut(&handle) {
                    h.closing = false;
                }
                match result {
                    Ok(_) => cx.ok(conn, id),
                    Err(r) => cx.error(conn, id, r.error),
                }
            }
            (Pend::SectionCreate, Ok(Applied::Section(section))) => {
                cx.reply(
                    conn,
                    id,
                    Reply::Service(Response::SectionCreated { section }),
                );
            }
            (
                Pend::Write,
                Err(Refused {
                    index: Some(index),
                    error,
                }),
            ) => {
                cx.reply(
                    conn,
                    id,
                    Reply::Service(Response::WriteFailed { index, error }),
                );
            }
            (
                Pend::Synchronize {
                    invocation: Some(invocation),
                },
                result,
            ) => cx.callback(
                conn,
                &Callback::Synchronize {
                    invocation,
                    result: result.map(|_| ()).map_err(|r| r.error),
                },
            ),
            (_, Ok(_)) => cx.ok(conn, id),
            (_, Err(r)) => cx.error(conn, id, r.error),
        }
    }

    /// Arms, moves or drops the retention timer of `id` after a change.
    fn refresh_timer(&mut self, now: u64, id: CkptId) {
        let due = self.replicas.by_id.get(&id).filter(|c| {
            !c.unlinked && c.total_opens() == 0 && c.attrs.retention_duration != TIME_END
        });
        match due {
            None => {
                self.timers.remove(&id);
            }
            Some(c) => {
                let (epoch, duration) = (c.retention_epoch, c.attrs.retention_duration);
                match self.timers.get_mut(&id) {
                    Some(t) if t.epoch == epoch && t.duration == duration => {}
                    _ => {
                        self.timers.insert(
                            id,
                            Timer {
                                deadline: now.saturating_add(duration),
                                epoch,
                                duration,
                                sent: false,
                            },
                        );
                    }
                }
            }
        }
    }

    fn deliver_update(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        (rep, seq, tag, limit, time): (u32, u64, u64, u64, u64),
        update: Update,
    ) {
        let mine = sender == cx.node() && tag != 0;
        let pending = if mine {
            self.pending.remove(&tag)
        } else {
            None
        };
        let sent_in = RingId {
            rep: NodeId(rep),
            seq,
        };
        if sent_in != cx.ring() || !self.synced {
            // Sent before a configuration change: refused everywhere alike.
            self.counters.stale += 1;
            debug!(
                "ckpt: node {} refused a stale update from {sender} (sent in {sent_in}, ring {}, synced {})",
                cx.node(),
                cx.ring(),
                self.synced
            );
            if let Some(p) = pending {
                self.answer(
                    cx,
                    p,
                    Err(Refused {
                        index: None,
                        error: AisError::TryAgain,
                    }),
                );
            }
            return;
        }
        let touched = match &update {
            Update::Unlink { name } => self.replicas.names.get(name).copied(),
            Update::Open { .. } | Update::Barrier => None,
            Update::Close { id }
            | Update::Retention { id, .. }
            | Update::SectionCreate { id, .. }
            | Update::SectionDelete { id, .. }
            | Update::SectionExpiration { id, .. }
            | Update::Write { id, .. }
            | Update::Overwrite { id, .. }
            | Update::RetentionExpired { id, .. }
            | Update::SectionExpired { id, .. } => Some(*id),
        };
        let expiration = match &update {
            Update::SectionCreate {
                expiration_time, ..
            }
            | Update::SectionExpiration {
                expiration_time, ..
            } => Some(*expiration_time),
            _ => None,
        };
        // What identifies this update everywhere (sender, ring, sender's number): cheaper than
        // its bytes, and as unique (a restarted sender is in a newer ring).
        let mut id = [0u8; 24];
        id[..4].copy_from_slice(&sender.0.to_le_bytes());
        id[4..8].copy_from_slice(&rep.to_le_bytes());
        id[8..16].copy_from_slice(&seq.to_le_bytes());
        id[16..].copy_from_slice(&tag.to_le_bytes());
        let digest = replica::fnv(0xcbf2_9ce4_8422_2325, &id);
        let result = self
            .replicas
            .apply(cx.ring(), sender.0, limit, time, digest, &update);
        self.counters.updates += 1;
        if let Some(o) = &mut self.observer
            && result.is_ok()
        {
            o.applied(cx.node().0, sender.0, &update);
        }
        match &result {
            Err(_) => self.counters.refused += 1,
            Ok(Applied::Done) if matches!(update, Update::RetentionExpired { .. }) => {
                self.counters.retention_expired += 1;
                if let Update::RetentionExpired { id, .. } = &update {
                    info!("ckpt: checkpoint {id} deleted: its retention duration passed");
                }
            }
            Ok(Applied::Done) if matches!(update, Update::SectionExpired { .. }) => {
                self.counters.sections_expired += 1;
            }
            _ => {}
        }
        if let Some(e) = expiration
            && result.is_ok()
        {
            self.next_expiry = self.next_expiry.min(e);
        }
        if let Some(id) = touched {
            self.refresh_timer(cx.now(), id);
        }
        if let Ok(Applied::Opened(id)) = &result {
            self.refresh_timer(cx.now(), *id);
        }
        if let Some(p) = pending {
            self.answer(cx, p, result);
        }
    }

    fn lib(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, req: Request) {
        let result = self.lib_checked(cx, conn, id, req);
        if let Err(e) = result {
            cx.error(conn, id, e);
        }
    }

    /// Handles a request; an error is the answer.
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
                let pend = Pend::Open {
                    flags,
                    invocation: None,
                };
                self.send(cx, conn, id, pend, Update::Open { name, attributes });
            }
            Request::OpenAsync {
                name,
                flags,
                attributes,
                invocation,
            } => {
                check_open(&name, flags, &attributes)?;
                let pend = Pend::Open {
                    flags,
                    invocation: Some(invocation),
                };
                self.send(cx, conn, id, pend, Update::Open { name, attributes });
            }
            Request::Close { handle } => {
                let h = self.handle(conn, handle, 0)?;
                if h.closing {
                    return Err(AisError::BadHandle);
                }
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.closing = true;
                }
                self.send(
                    cx,
                    conn,
                    id,
                    Pend::Close { handle, id: h.id },
                    Update::Close { id: h.id },
                );
            }
            Request::Unlink { name } => {
                if name.len() > MAX_NAME {
                    return Err(AisError::NameTooLong);
                }
                if name.is_empty() {
                    // As open answers it: no checkpoint can have it.
                    return Err(AisError::InvalidParam);
                }
                if !self.replicas.names.contains_key(&name) {
                    return Err(AisError::NotExist);
                }
                self.send(cx, conn, id, Pend::Plain, Update::Unlink { name });
            }
            Request::RetentionDurationSet { handle, duration } => {
                let h = self.handle(conn, handle, 0)?;
                if self.ckpt(&h.id)?.unlinked {
                    return Err(AisError::BadOperation);
                }
                let update = Update::Retention { id: h.id, duration };
                self.send(cx, conn, id, Pend::Plain, update);
            }
            Request::ActiveReplicaSet { handle } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                let flags = self.ckpt(&h.id)?.attrs.creation_flags;
                if flags & CHECKPOINT_COLLOCATED == 0
                    || flags & (WR_ACTIVE_REPLICA | WR_ACTIVE_REPLICA_WEAK) == 0
                {
                    return Err(AisError::BadOperation);
                }
                // Every node holds a replica kept current by every write: the local one is
                // active already.
                cx.ok(conn, id);
            }
            Request::StatusGet { handle } => {
                let h = self.handle(conn, handle, 0)?;
                let status = self.ckpt(&h.id)?.status();
                cx.reply(conn, id, Reply::Service(Response::Status(status)));
            }
            Request::SectionCreate {
                handle,
                section,
                expiration_time,
                data,
            } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                if section.as_ref().is_some_and(|s| s.len() > MAX_SECTION_ID) {
                    return Err(AisError::InvalidParam);
                }
                let update = Update::SectionCreate {
                    id: h.id,
                    section,
                    expiration_time,
                    data,
                };
                self.send(cx, conn, id, Pend::SectionCreate, update);
            }
            Request::SectionDelete { handle, section } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                let update = Update::SectionDelete { id: h.id, section };
                self.send(cx, conn, id, Pend::Plain, update);
            }
            Request::SectionExpirationTimeSet {
                handle,
                section,
                expiration_time,
            } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                let update = Update::SectionExpiration {
                    id: h.id,
                    section,
                    expiration_time,
                };
                self.send(cx, conn, id, Pend::Plain, update);
            }
            Request::IterationInitialize {
                handle,
                chosen,
                expiration_time,
            } => {
                let h = self.handle(conn, handle, 0)?;
                let chosen = Chosen::from_code(chosen).ok_or(AisError::InvalidParam)?;
                if self.iterators.values().filter(|i| i.conn == conn).count() >= MAX_ITERATORS {
                    return Err(AisError::NoResources);
                }
                let c = self.ckpt(&h.id)?;
                let sections = c
                    .sections
                    .iter()
                    .filter(|(_, s)| match chosen {
                        Chosen::Forever => s.expiration == TIME_END,
                        Chosen::LeqExpiration => s.expiration <= expiration_time,
                        Chosen::GeqExpiration => s.expiration >= expiration_time,
                        Chosen::Corrupted => false,
                        Chosen::Any => true,
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                let iterator = self.next_iterator;
                self.next_iterator += 1;
                self.iterators.insert(
                    iterator,
                    Iter {
                        conn,
                        handle,
                        sections,
                    },
                );
                cx.reply(conn, id, Reply::Service(Response::Iterator { iterator }));
            }
            Request::IterationNext { iterator } => {
                let Some(it) = self.iterators.get_mut(&iterator).filter(|i| i.conn == conn) else {
                    return Err(AisError::BadHandle);
                };
                let Some(h) = self.handles.get(&it.handle) else {
                    return Err(AisError::BadHandle);
                };
                let c = self.replicas.by_id.get(&h.id).ok_or(AisError::NotExist)?;
                // Sections deleted since the iteration started are skipped.
                while let Some(sid) = it.sections.pop_front() {
                    if let Some(s) = c.sections.get(&sid) {
                        let d = c.descriptor(&sid, s);
                        cx.reply(conn, id, Reply::Service(Response::Section(d)));
                        return Ok(());
                    }
                }
                return Err(AisError::NoSections);
            }
            Request::IterationFinalize { iterator } => {
                match self.iterators.get(&iterator) {
                    Some(i) if i.conn == conn => {
                        self.iterators.remove(&iterator);
                    }
                    _ => return Err(AisError::BadHandle),
                }
                cx.ok(conn, id);
            }
            Request::Write { handle, elements } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                if elements.is_empty() {
                    return Err(AisError::InvalidParam);
                }
                let update = Update::Write { id: h.id, elements };
                self.send(cx, conn, id, Pend::Write, update);
            }
            Request::Overwrite {
                handle,
                section,
                data,
            } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                let update = Update::Overwrite {
                    id: h.id,
                    section,
                    data,
                };
                self.send(cx, conn, id, Pend::Plain, update);
            }
            Request::Read { handle, elements } => {
                let h = self.handle(conn, handle, OPEN_READ)?;
                let c = self.ckpt(&h.id)?;
                match read(c, &elements) {
                    Ok(parts) => cx.reply(conn, id, Reply::Service(Response::Data(parts))),
                    Err((index, error)) => cx.reply(
                        conn,
                        id,
                        Reply::Service(Response::ReadFailed { index, error }),
                    ),
                }
            }
            Request::Synchronize { handle } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                self.check_synchronize(&h)?;
                let pend = Pend::Synchronize { invocation: None };
                self.send(cx, conn, id, pend, Update::Barrier);
            }
            Request::SynchronizeAsync { handle, invocation } => {
                let h = self.handle(conn, handle, OPEN_WRITE)?;
                self.check_synchronize(&h)?;
                let pend = Pend::Synchronize {
                    invocation: Some(invocation),
                };
                self.send(cx, conn, id, pend, Update::Barrier);
            }
            Request::List { start } => {
                let mut all: Vec<_> = self.replicas.by_id.values().map(Checkpoint::info).collect();
                all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                // As many as fit one answer (a cluster may have thousands).
                let mut size = 0;
                let mut items = Vec::new();
                let mut next = None;
                for (i, c) in all.into_iter().enumerate().skip(start as usize) {
                    size += LIST_ENTRY + c.name.len() + c.id.len();
                    if size > MAX_READ {
                        next = Some(i as u32);
                        break;
                    }
                    items.push(c);
                }
                cx.reply(conn, id, Reply::Service(Response::List { items, next }));
            }
            Request::Describe { name, start } => {
                let c = self.named(&name)?;
                let mut size = LIST_ENTRY + c.name.len() + c.id.to_string().len();
                let mut sections = Vec::new();
                let mut next = None;
                for (i, (sid, s)) in c.sections.iter().enumerate().skip(start as usize) {
                    size += DESCRIPTOR_ENTRY + sid.len();
                    if size > MAX_READ {
                        next = Some(i as u32);
                        break;
                    }
                    sections.push(c.descriptor(sid, s));
                }
                let info = c.info();
                let answer = Response::Described {
                    info,
                    sections,
                    next,
                };
                cx.reply(conn, id, Reply::Service(answer));
            }
            Request::Peek {
                name,
                section,
                offset,
                size,
            } => {
                let c = self.named(&name)?;
                let element = ReadElement {
                    section,
                    offset,
                    size: size.min(MAX_READ as u64),
                };
                match read(c, std::slice::from_ref(&element)) {
                    Ok(parts) => cx.reply(conn, id, Reply::Service(Response::Data(parts))),
                    Err((_, e)) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The checkpoint now named `name`.
    fn named(&self, name: &Bytes) -> Result<&Checkpoint, AisError> {
        let id = self.replicas.names.get(name).ok_or(AisError::NotExist)?;
        self.ckpt(id)
    }

    fn check_synchronize(&self, h: &Handle) -> Result<(), AisError> {
        let flags = self.ckpt(&h.id)?.attrs.creation_flags;
        if flags & (WR_ACTIVE_REPLICA | WR_ACTIVE_REPLICA_WEAK) == 0 {
            return Err(AisError::BadOperation);
        }
        Ok(())
    }

    /// This node's opens of each checkpoint, as its handles say.
    fn live_opens(&self) -> BTreeMap<CkptId, u32> {
        let mut opens = BTreeMap::new();
        for h in self.handles.values() {
            *opens.entry(h.id).or_insert(0u32) += 1;
        }
        opens
    }

    /// Sends the copies this node is the lowest holder of, when not every member holds them.
    fn send_copies(&mut self, cx: &mut Context<'_>) {
        let Some(sync) = &self.sync else { return };
        let members: BTreeSet<u32> = cx.members().iter().map(|m| m.0).collect();
        let mut holders: BTreeMap<(CkptId, u64), BTreeSet<u32>> = BTreeMap::new();
        for (node, s) in &sync.summaries {
            for (id, history, _) in &s.held {
                holders.entry((*id, *history)).or_default().insert(*node);
            }
        }
        let me = cx.node().0;
        let (rep, seq) = (sync.ring.rep.0, sync.ring.seq);
        let mut bytes = 0u64;
        for ((id, history), who) in holders {
            if who == members || who.first() != Some(&me) {
                continue;
            }
            let Some(c) = self
                .replicas
                .by_id
                .get(&id)
                .filter(|c| c.history == history)
            else {
                continue;
            };
            let copy = CopyHeader {
                id,
                name: c.name.clone(),
                attributes: c.attrs,
                unlinked: c.unlinked,
                generation: c.generation,
                history,
                retention_epoch: c.retention_epoch,
                sections: c.sections.len() as u32,
                tombstones: c.tombstones.iter().cloned().collect(),
            };
            cx.submit_internal(
                DeliveryKind::Agreed,
                ring::encode(ID, &RingMessage::SyncCheckpoint { rep, seq, copy }),
            );
            for (sid, s) in &c.sections {
                let section = SectionHeader {
                    id: sid.clone(),
                    expiration_time: s.expiration,
                    changes: s.changes,
                    last_update: s.last_update,
                    size: s.data.len() as u64,
                };
                let mut offset = 0;
                loop {
                    let end = (offset + SYNC_PIECE).min(s.data.len());
                    let data = Bytes::copy_from_slice(&s.data[offset..end]);
                    bytes += data.len() as u64;
                    let msg = RingMessage::SyncSection {
                        rep,
                        seq,
                        id,
                        history,
                        section: section.clone(),
                        offset: offset as u64,
                        data,
                    };
                    cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
                    offset = end;
                    if offset >= s.data.len() {
                        break;
                    }
                }
            }
        }
        self.counters.sync_bytes += bytes;
    }

    fn deliver_sync(&mut self, cx: &Context<'_>, sender: NodeId, msg: RingMessage) {
        let Some(sync) = &mut self.sync else { return };
        let (rep, seq) = match &msg {
            RingMessage::Summary { rep, seq, .. }
            | RingMessage::SyncCheckpoint { rep, seq, .. }
            | RingMessage::SyncSection { rep, seq, .. } => (*rep, *seq),
            RingMessage::Update { .. } => return,
        };
        if sync.ring
            != (RingId {
                rep: NodeId(rep),
                seq,
            })
            || !cx.members().contains(&sender)
        {
            // Of an aborted sync, or of a node outside it.
            return;
        }
        match msg {
            RingMessage::Summary { held, deleted, .. } => {
                sync.summaries.insert(sender.0, Summary { held, deleted });
            }
            RingMessage::SyncCheckpoint { copy, .. } => {
                let key = (copy.id, copy.history);
                let have = self
                    .replicas
                    .by_id
                    .get(&copy.id)
                    .is_some_and(|c| c.history == copy.history);
                if !have {
                    sync.incoming.insert(
                        key,
                        Incoming {
                            holder: sender.0,
                            header: copy,
                            sections: BTreeMap::new(),
                        },
                    );
                }
            }
            RingMessage::SyncSection {
                id,
                history,
                section,
                offset,
                data,
                ..
            } => {
                if let Some(inc) = sync.incoming.get_mut(&(id, history)) {
                    let (_, buf) = inc
                        .sections
                        .entry(section.id.clone())
                        .or_insert_with(|| (section.clone(), Vec::new()));
                    let start = offset as usize;
                    if buf.len() < start + data.len() {
                        buf.resize(start + data.len(), 0);
                    }
                    buf[start..start + data.len()].copy_from_slice(&data);
                }
            }
            RingMessage::Update { .. } => {}
        }
    }

    /// Builds the merged replicas from the summaries and copies of the sync.
    fn activate(&mut self, cx: &mut Context<'_>, sync: SyncState) {
        let me = cx.node().0;
        let members: BTreeSet<u32> = cx.members().iter().map(|m| m.0).collect();
        let mut holders: BTreeMap<CkptId, BTreeMap<u64, u32>> = BTreeMap::new();
        let mut opens: BTreeMap<CkptId, BTreeMap<u32, u32>> = BTreeMap::new();
        let mut deleted: BTreeSet<CkptId> = self.replicas.deleted.iter().copied().collect();
        for (node, s) in &sync.summaries {
            if !members.contains(node) {
                continue;
            }
            for (id, history, n) in &s.held {
                let h = holders
                    .entry(*id)
                    .or_default()
                    .entry(*history)
                    .or_insert(*node);
                *h = (*h).min(*node);
                if *n > 0 {
                    opens.entry(*id).or_default().insert(*node, *n);
                }
            }
            deleted.extend(s.deleted.iter().copied());
        }
        let mut old = std::mem::take(&mut self.replicas);
        let mut merged: BTreeMap<CkptId, Checkpoint> = BTreeMap::new();
        let mut incoming = sync.incoming;
        for (id, copies) in holders {
            let mut list = Vec::new();
            for (history, holder) in &copies {
                let local = old.by_id.get(&id).filter(|c| c.history == *history);
                if let Some(c) = local {
                    list.push(Copy {
                        holder: *holder,
                        ckpt: c.clone(),
                    });
                } else if let Some(inc) = incoming.remove(&(id, *history)) {
                    list.push(Copy {
                        holder: inc.holder,
                        ckpt: from_incoming(inc),
                    });
                } else {
                    // Cannot happen: a copy's data precedes its holder's barrier.
                    warn!("ckpt: copy {history:x} of checkpoint {id} missing in the sync");
                }
            }
            if list.is_empty() {
                continue;
            }
            for c in &list {
                debug!(
                    "ckpt: sync of ring {}: copy of {id} from node {}: generation {}, history \
                     {:x}, {} section(s)",
                    sync.ring,
                    c.holder,
                    c.ckpt.generation,
                    c.ckpt.history,
                    c.ckpt.sections.len()
                );
            }
            if list.len() > 1 {
                self.counters.merges += 1;
                info!(
                    "ckpt: checkpoint {id} ({}) changed in {} partitions; merged (each section \
                     from the side that changed it last)",
                    String::from_utf8_lossy(&list[0].ckpt.name),
                    list.len()
                );
            }
            let mut c = replica::merge(list, me, self.defects.merge);
            c.opens = opens.remove(&id).unwrap_or_default();
            if deleted.contains(&id) {
                c.unlinked = true;
            }
            merged.insert(id, c);
        }
        // One name, one linked checkpoint: the oldest.
        let mut names: BTreeMap<Bytes, CkptId> = BTreeMap::new();
        for (id, c) in &mut merged {
            if c.unlinked {
                continue;
            }
            if names.contains_key(&c.name) {
                self.counters.renamed += 1;
                warn!(
                    "ckpt: checkpoint '{}' was created in two partitions; the newer ({id}) is \
                     unlinked: its openers keep it until they close it",
                    String::from_utf8_lossy(&c.name)
                );
                c.unlinked = true;
            } else {
                names.insert(c.name.clone(), *id);
            }
        }
        let mut replicas = Replicas {
            by_id: BTreeMap::new(),
            names,
            deleted: std::mem::take(&mut old.deleted),
            created: 0,
        };
        for id in &deleted {
            if !replicas.deleted.contains(id) {
                replicas.deleted.push_back(*id);
            }
        }
        while replicas.deleted.len() > replica::MAX_DELETED {
            replicas.deleted.pop_front();
        }
        for (id, mut c) in merged {
            if c.total_opens() == 0 {
                if c.unlinked {
                    replicas.deleted.push_back(id);
                    continue;
                }
                // Closed everywhere now: a new retention period.
                c.retention_epoch += 1;
            }
            replicas.by_id.insert(id, c);
        }
        self.replicas = replicas;
        let ids: Vec<CkptId> = self.replicas.by_id.keys().copied().collect();
        self.timers
            .retain(|id, _| self.replicas.by_id.contains_key(id));
        for id in ids {
            // A timer this node had keeps its deadline with the new epoch.
            if let (Some(t), Some(c)) = (self.timers.get_mut(&id), self.replicas.by_id.get(&id)) {
                t.epoch = c.retention_epoch;
                t.sent = false;
            }
            self.refresh_timer(cx.now(), id);
        }
        self.expiry_sent.clear();
        self.next_expiry = 0;
        self.synced = true;
        if let Some(o) = &mut self.observer {
            o.activated(me, sync.ring, cx.members(), &self.replicas);
        }
        for id in std::mem::take(&mut self.deferred) {
            self.send_internal(cx, Update::Close { id });
        }
    }
}

fn from_incoming(inc: Incoming) -> Checkpoint {
    let h = inc.header;
    let mut c = Checkpoint {
        id: h.id,
        name: h.name,
        attrs: h.attributes,
        unlinked: h.unlinked,
        generation: h.generation,
        history: h.history,
        retention_epoch: h.retention_epoch,
        sections: inc
            .sections
            .into_iter()
            .map(|(sid, (s, data))| {
                (
                    sid,
                    Section {
                        data,
                        expiration: s.expiration_time,
                        changes: s.changes,
                        last_update: s.last_update,
                    },
                )
            })
            .collect(),
        tombstones: h.tombstones.into_iter().collect(),
        opens: BTreeMap::new(),
        used: 0,
    };
    c.recount();
    c
}

/// Reads `elements` from `c`: each element's bytes, or the first that cannot be read.
fn read(c: &Checkpoint, elements: &[ReadElement]) -> Result<Vec<Bytes>, (u32, AisError)> {
    let mut total = 0usize;
    let mut parts = Vec::with_capacity(elements.len());
    for (i, e) in elements.iter().enumerate() {
        let i = i as u32;
        let s = c.sections.get(&e.section).ok_or((i, AisError::NotExist))?;
        let len = s.data.len() as u64;
        if e.offset > len {
            return Err((i, AisError::InvalidParam));
        }
        let n = e.size.min(len - e.offset) as usize;
        total += n;
        if total > MAX_READ {
            // More than one answer carries: the client library reads in pieces.
            return Err((i, AisError::TooBig));
        }
        let start = e.offset as usize;
        parts.push(Bytes::copy_from_slice(&s.data[start..start + n]));
    }
    Ok(parts)
}

impl Service for Ckpt {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        CkptProtocol::NAME
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
                && let Pend::Close { handle, id: ckpt } = p.pend
            {
                match self.handles.get_mut(&handle) {
                    Some(h) => h.closing = false,
                    // Its connection closed meanwhile, counting on this close: send it.
                    None => self.send_internal(cx, Update::Close { id: ckpt }),
                }
            }
            cx.reply(conn, id, submit_reply::<Nothing>(result));
            return;
        }
        // The asynchronous calls are answered now; their callback follows at delivery.
        if let Some(p) = self.pending.get(&tag)
            && matches!(
                p.pend,
                Pend::Open {
                    invocation: Some(_),
                    ..
                } | Pend::Synchronize {
                    invocation: Some(_)
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
                limit,
                time,
                update,
            } => self.deliver_update(cx, sender, (rep, seq, tag, limit, time), update),
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
        let opens = self.live_opens();
        let held = self
            .replicas
            .by_id
            .values()
            .map(|c| (c.id, c.history, opens.get(&c.id).copied().unwrap_or(0)))
            .collect();
        let msg = RingMessage::Summary {
            rep: ring.rep.0,
            seq: ring.seq,
            held,
            deleted: self.replicas.deleted.iter().copied().collect(),
        };
        cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
        self.sync = Some(SyncState {
            ring,
            summaries: BTreeMap::new(),
            data_sent: false,
            incoming: BTreeMap::new(),
        });
        // The summary counts this node's handles now: closes before it are in it.
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
            .any(|m| !sync.summaries.contains_key(&m.0))
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
        self.iterators.retain(|_, it| it.conn != conn);
        let gone: Vec<(u64, Handle)> = self
            .handles
            .iter()
            .filter(|(_, h)| h.conn == conn)
            .map(|(k, h)| (*k, *h))
            .collect();
        for (k, h) in gone {
            self.handles.remove(&k);
            if self.synced {
                // A close already on the ring closes it (or, refused after a configuration
                // change, the sync's recount does).
                if !h.closing {
                    self.send_internal(cx, Update::Close { id: h.id });
                }
            } else if self.summary_sent {
                // The summary counted it: close it once the sync is done.
                self.deferred.push(h.id);
            }
        }
    }

    fn tick(&mut self, cx: &mut Context<'_>) {
        if !self.synced {
            return;
        }
        let now = cx.now();
        let due: Vec<(CkptId, u64)> = self
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
        if now < self.next_expiry {
            return;
        }
        // Expiries sent and applied (or gone stale) are forgotten.
        let replicas = &self.replicas;
        self.expiry_sent.retain(|(id, sid, exp)| {
            replicas
                .by_id
                .get(id)
                .and_then(|c| c.sections.get(sid))
                .is_some_and(|s| s.expiration == *exp)
        });
        let mut next = u64::MAX;
        let mut expired = Vec::new();
        for (id, c) in &self.replicas.by_id {
            for (sid, s) in &c.sections {
                if s.expiration == TIME_END || sid.is_empty() {
                    continue;
                }
                if s.expiration <= now {
                    let key = (*id, sid.clone(), s.expiration);
                    if !self.expiry_sent.contains(&key) {
                        expired.push(key);
                    }
                } else {
                    next = next.min(s.expiration);
                }
            }
        }
        self.next_expiry = next;
        for key in expired {
            self.expiry_sent.insert(key.clone());
            let (id, section, expiration_time) = key;
            self.send_internal(
                cx,
                Update::SectionExpired {
                    id,
                    section,
                    expiration_time,
                },
            );
        }
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("ckpt_checkpoints", self.replicas.by_id.len() as u64);
        v.gauge(
            "ckpt_sections",
            self.replicas
                .by_id
                .values()
                .map(|c| c.sections.len() as u64)
                .sum(),
        );
        v.gauge("ckpt_memory_bytes", self.replicas.memory());
        v.gauge("ckpt_handles", self.handles.len() as u64);
        v.counter("ckpt_updates", self.counters.updates);
        v.counter("ckpt_updates_refused", self.counters.refused);
        v.counter("ckpt_updates_stale", self.counters.stale);
        v.counter("ckpt_merges", self.counters.merges);
        v.counter("ckpt_merge_unlinked", self.counters.renamed);
        v.counter("ckpt_sync_bytes", self.counters.sync_bytes);
        v.counter("ckpt_retention_expired", self.counters.retention_expired);
        v.counter("ckpt_sections_expired", self.counters.sections_expired);
    }
}

#[cfg(test)]
mod tests;
