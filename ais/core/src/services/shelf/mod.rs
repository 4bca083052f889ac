//! Shelf events into the cluster: **deduplication by SEL key on the ring**.
//!
//! Every node that watches the ATCA shelf (the executive's HPI thread) hands each hot-swap
//! transition and critical sensor event it sees to this service ([`Request::Observe`]). The
//! service submits it as an agreed ring message, so every watcher's copy of one event reaches
//! every node in one total order. At delivery each node keeps the event only when its
//! [`ShelfKey`] (shelf identity, SEL record id, SEL timestamp) is not in its *seen-set*; the
//! first copy in the agreed order is accepted, every later one dropped. All members of a
//! configuration hold the same seen-set and deliver the same messages in the same order, so
//! they take the same decision: each shelf event reaches the cluster once, however many nodes
//! watch, and a watcher failing does not lose it as long as one watcher that saw it stays.
//!
//! The seen-set is replicated and bounded:
//! - it holds the last [`ShelfConfig::capacity`] keys in delivery order (the oldest is
//!   evicted first; every member evicts the same key at the same point);
//! - after every regular configuration, in the service sync, each member sends its seen-set
//!   (tagged with the ring, in chunks); when every member's barrier has passed, every member
//!   replaces its set with the union of the records delivered, ordered by (timestamp, record
//!   id, shelf) and cut to the newest `capacity` keys. A restarted node and the two sides of a
//!   healed partition thus know everything any member accepted before, and do not accept it
//!   again. Copies delivered from the regular configuration until the sync completes are
//!   held and judged after the union is in place, in their delivery order; copies held when
//!   another regular configuration aborts the sync are dropped (their watchers submit them
//!   again).
//! - A watcher's own events not yet delivered (pending) are submitted again after each sync
//!   unless the union knows them, so an event seen by a node that stays is not lost in a
//!   configuration change.
//!
//! Effects out: each accepted event goes to the [`Observer`] (the executive's event log, the
//! simulator's checker) and as [`Callback::Accepted`] to every connection that follows
//! ([`Request::Follow`]: `aisctl`, later AMF).
//!
//! What it does not do: a node restarted alone (no member to learn from) starts with an empty
//! seen-set and may accept again an event it accepted before it crashed; the set is not
//! persisted (docs/hpi.md).

pub mod checker;

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::{ConfigChange, ConfigKind};
use totem_dpdk::{DeliveryKind, NodeId, RingId};
use tracing::debug;

use crate::exec::{ConnId, Context, Service, ServiceId};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{AisError, Protocol, Reply, decode_body};
use ais_proto::ring;
use ais_proto::shelf::{Callback, Request, Response, RingMessage, ShelfProtocol};
pub use ais_proto::shelf::{ShelfEvent, ShelfEventKind, ShelfKey};

const ID: ServiceId = ShelfProtocol::ID;

/// Keys per seen-set chunk in the sync (a chunk stays well inside one Totem message).
pub const SYNC_CHUNK: usize = 256;

/// The service's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShelfConfig {
    /// Keys kept in the seen-set: an event re-reported after this many newer ones were
    /// accepted is accepted again.
    pub capacity: usize,
}

impl Default for ShelfConfig {
    fn default() -> Self {
        ShelfConfig { capacity: 4096 }
    }
}

/// Deliberate defects, for the tests that prove the shelf checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShelfDefects {
    /// Accept every copy delivered (no deduplication).
    pub no_dedup: bool,
    /// Keep only this node's own seen-set at a sync (joiners learn nothing).
    pub no_sync: bool,
}

/// Told what the service decides (the executive's event log; the simulator's checker).
pub trait Observer: Send {
    /// `event`, submitted by `from`, was accepted at `node` in `ring`.
    fn accepted(&mut self, node: NodeId, ring: RingId, from: NodeId, event: &ShelfEvent);

    /// The sync of `ring` completed at `node`: its seen-set is now `seen`.
    fn activated(&mut self, _node: NodeId, _ring: RingId, _members: &[NodeId], _seen: &[ShelfKey]) {
    }
}

/// The seen-set: keys in delivery order, bounded.
#[derive(Debug, Default)]
struct Seen {
    order: VecDeque<ShelfKey>,
    set: BTreeSet<ShelfKey>,
}

impl Seen {
    fn contains(&self, k: &ShelfKey) -> bool {
        self.set.contains(k)
    }

    /// Adds `k`; returns how many keys were evicted.
    fn insert(&mut self, k: ShelfKey, cap: usize) -> u64 {
        if !self.set.insert(k.clone()) {
            return 0;
        }
        self.order.push_back(k);
        let mut evicted = 0;
        while self.order.len() > cap.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
                evicted += 1;
            }
        }
        evicted
    }

    /// Replaces the set with `keys`, newest `cap` by (timestamp, record id, shelf).
    fn replace(&mut self, keys: BTreeSet<ShelfKey>, cap: usize) {
        let mut v: Vec<ShelfKey> = keys.into_iter().collect();
        v.sort_by(|a, b| (a.timestamp, a.record, &a.shelf).cmp(&(b.timestamp, b.record, &b.shelf)));
        let cut = v.len().saturating_sub(cap.max(1));
        let v = v.split_off(cut);
        self.set = v.iter().cloned().collect();
        self.order = v.into();
    }
}

/// Counters for `aisctl status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShelfStats {
    /// Events handed in by this node's watcher.
    pub observed: u64,
    /// Of those, already known (not submitted).
    pub observed_known: u64,
    /// Copies submitted to the ring.
    pub submitted: u64,
    /// Events accepted.
    pub accepted: u64,
    /// Copies dropped as duplicates.
    pub duplicates: u64,
    /// Keys evicted from the seen-set.
    pub evicted: u64,
    /// Copies dropped because they were delivered in a ring whose sync did not complete.
    pub dropped_unsynced: u64,
}

/// The shelf event service.
pub struct Shelf {
    cfg: ShelfConfig,
    defects: ShelfDefects,
    seen: Seen,
    /// Observed here and not delivered yet, in observation order.
    pending: Vec<ShelfEvent>,
    /// The sync in progress: its ring and the keys delivered for it.
    syncing: Option<(RingId, BTreeSet<ShelfKey>)>,
    /// From a regular configuration until this service's sync completes: copies delivered
    /// meanwhile are held (a joiner's seen-set is not complete yet).
    holding: bool,
    /// Copies delivered while holding, judged at activation: (sender, event).
    held: Vec<(NodeId, ShelfEvent)>,
    followers: BTreeSet<ConnId>,
    observer: Option<Box<dyn Observer>>,
    stats: ShelfStats,
}

impl std::fmt::Debug for Shelf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shelf")
            .field("seen", &self.seen.order.len())
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Shelf {
    /// The service.
    pub fn new(cfg: ShelfConfig) -> Shelf {
        Shelf::with_defects(cfg, ShelfDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(cfg: ShelfConfig, defects: ShelfDefects) -> Shelf {
        Shelf {
            cfg,
            defects,
            seen: Seen::default(),
            pending: Vec::new(),
            syncing: None,
            holding: false,
            held: Vec::new(),
            followers: BTreeSet::new(),
            observer: None,
            stats: ShelfStats::default(),
        }
    }

    /// Reports decisions to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Shelf {
        self.observer = Some(observer);
        self
    }

    /// Its counters.
    pub fn counters(&self) -> ShelfStats {
        self.stats
    }

    fn submit(&mut self, cx: &mut Context<'_>, e: &ShelfEvent) {
        self.stats.submitted += 1;
        cx.submit_internal(
            DeliveryKind::Agreed,
            ring::encode(ID, &RingMessage::Event(e.clone())),
        );
    }

    /// Judges one delivered copy.
    fn judge(&mut self, cx: &mut Context<'_>, from: NodeId, e: ShelfEvent) {
        self.pending.retain(|p| p.key != e.key);
        if self.seen.contains(&e.key) && !self.defects.no_dedup {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.evicted += self.seen.insert(e.key.clone(), self.cfg.capacity);
        self.stats.accepted += 1;
        debug!(from = from.0, key = ?e.key, "shelf: event accepted");
        if let Some(o) = &mut self.observer {
            o.accepted(cx.node(), cx.ring(), from, &e);
        }
        let cb = Callback::Accepted {
            from: from.0,
            event: e,
        };
        for &conn in &self.followers {
            cx.callback(conn, &cb);
        }
    }
}

impl Service for Shelf {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        ShelfProtocol::NAME
    }

    fn lib_request(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        op: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match decode_body(op, body)? {
            Request::Observe(e) => {
                self.stats.observed += 1;
                let known = self.seen.contains(&e.key) && !self.defects.no_dedup;
                if known {
                    self.stats.observed_known += 1;
                } else if !self.pending.iter().any(|p| p.key == e.key) {
                    self.submit(cx, &e);
                    self.pending.push(e);
                }
                cx.reply(conn, id, Reply::Service(Response::Observed { known }));
            }
            Request::Follow(on) => {
                if on {
                    self.followers.insert(conn);
                    cx.ok(conn, id);
                } else if self.followers.remove(&conn) {
                    cx.ok(conn, id);
                } else {
                    cx.error(conn, id, AisError::NotExist);
                }
            }
        }
        Ok(())
    }

    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match decode_body(kind, body)? {
            RingMessage::Event(e) => {
                if self.holding {
                    self.held.push((sender, e));
                } else {
                    self.judge(cx, sender, e);
                }
            }
            RingMessage::Seen { rep, seq, keys } => {
                if let Some((ring, got)) = &mut self.syncing
                    && *ring
                        == (RingId {
                            rep: NodeId(rep),
                            seq,
                        })
                    && (!self.defects.no_sync || sender == cx.node())
                {
                    got.extend(keys);
                }
                // Records of an aborted sync (another ring) are stale: ignored.
            }
        }
        Ok(())
    }

    fn confchg(&mut self, _cx: &mut Context<'_>, change: &ConfigChange) {
        // The new ring's copies wait for the union of the members' seen-sets (services
        // synchronised before this one let the ring's messages through meanwhile).
        // Copies still held come from a ring whose sync never completed: members judged
        // nothing of them, and judging them now could order them differently from members
        // that never got them. They are dropped; their watchers still have them pending and
        // submit them again after the next sync.
        if change.kind == ConfigKind::Regular {
            self.stats.dropped_unsynced += self.held.len() as u64;
            self.held.clear();
            self.holding = true;
        }
    }

    fn syncs(&self) -> bool {
        true
    }

    fn sync_init(&mut self, cx: &mut Context<'_>) {
        let ring = cx.ring();
        self.syncing = Some((ring, BTreeSet::new()));
        let keys: Vec<ShelfKey> = self.seen.order.iter().cloned().collect();
        // An empty set sends nothing (a cluster that never saw a shelf event adds only the
        // barrier to each sync).
        for chunk in keys.chunks(SYNC_CHUNK) {
            let m = RingMessage::Seen {
                rep: ring.rep.0,
                seq: ring.seq,
                keys: chunk.to_vec(),
            };
            cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &m));
        }
    }

    fn sync_activate(&mut self, cx: &mut Context<'_>) {
        let Some((ring, got)) = self.syncing.take() else {
            return;
        };
        self.holding = false;
        self.seen.replace(got, self.cfg.capacity);
        if let Some(o) = &mut self.observer {
            let seen: Vec<ShelfKey> = self.seen.order.iter().cloned().collect();
            o.activated(cx.node(), ring, cx.members(), &seen);
        }
        for (from, e) in std::mem::take(&mut self.held) {
            self.judge(cx, from, e);
        }
        // What this node saw and the cluster does not know yet goes again (a copy still in
        // the internal queue is harmless: the second is a duplicate).
        let seen = &self.seen;
        self.pending.retain(|p| !seen.contains(&p.key));
        for e in self.pending.clone() {
            self.submit(cx, &e);
        }
    }

    fn sync_abort(&mut self, _cx: &mut Context<'_>) {
        // The held copies are dropped at the regular configuration that aborted the sync.
        self.syncing = None;
    }

    fn conn_closed(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.followers.remove(&conn);
    }

    fn stats(&self, v: &mut dyn Visitor) {
        let s = &self.stats;
        v.counter("shelf_observed", s.observed);
        v.counter("shelf_observed_known", s.observed_known);
        v.counter("shelf_submitted", s.submitted);
        v.counter("shelf_accepted", s.accepted);
        v.counter("shelf_duplicates", s.duplicates);
        v.counter("shelf_evicted", s.evicted);
        v.counter("shelf_dropped_unsynced", s.dropped_unsynced);
        v.gauge("shelf_seen", self.seen.order.len() as u64);
        v.gauge("shelf_pending", self.pending.len() as u64);
        v.gauge("shelf_followers", self.followers.len() as u64);
    }
}

#[cfg(test)]
mod tests;
