//! EVT, the SA Forum event service (B.01.01 semantics): publish/subscribe on named channels.
//!
//! **What is replicated**: the channel table (which channels exist, linked or unlinked, and
//! how often each node has each open) and every retained event. Channel opens, closes,
//! unlinks and retention clears travel the ring as `ais_proto::evt::RingMessage::Change` in
//! agreed order and are applied by every node at delivery with the same outcome; the node of
//! the requesting client answers then. A change sent in one ring and delivered in another is
//! refused everywhere (TRY_AGAIN), so none lands half before a sync and half after.
//!
//! **Publish** is one `RingMessage::Publish` in agreed order, answered when Totem took it
//! (with the event id the publisher's node assigned). Every node delivers it to its own
//! matching subscriptions at delivery, so events of one priority reach every subscription of
//! a ring in the ring's total order. Agreed is enough: an event is not state a client was
//! promised durable (a retained one is kept while any node that delivered it lives), and
//! safe order would add a token rotation to every publish.
//!
//! **Subscriptions are local**: they live at the subscriber's node and are matched there;
//! the ring never sees them. An event is delivered once per matching subscription.
//!
//! **Delivery flow control and lost events**: each connection has at most
//! [`EvtConfig::delivery_window`] deliveries in flight (sent, not yet acknowledged with
//! `Request::Consumed`) and queues at most [`EvtConfig::delivery_queue`] more, by priority
//! (the higher priority is sent first; one priority keeps its order). When the queue is full,
//! a new event evicts the newest queued event of a strictly lower priority, or is dropped;
//! either way the subscription that lost one is sent a lost-event notification (id
//! `EVENT_ID_LOST`, pattern `SA_EVT_LOST_EVENT_PATTERN`) ahead of its queued events. Nothing
//! is ever dropped silently.
//!
//! **Event ids** are `node << 32 | counter`. Every node records the highest counter it has
//! seen of every node (from publishes and sync summaries); a node continues above the highest
//! value any member reports for it, and requests of a restarted node wait for its first sync,
//! so a restarted node does not reuse the ids the cluster knows.
//!
//! **Retention**: a retained event is held by every node with its publish time (the
//! publisher's clock) and retention; each node drops it at `publish_time + retention` on its
//! own clock ([`crate::exec::Context::now`]). A clear is a ring message; cleared ids are
//! remembered until they would have expired, so a merge does not bring them back.
//!
//! **Sync** after every regular configuration: every member sends a summary (its channels
//! with its own opens, its retained ids, its cleared ids, the counters it has seen). When
//! every summary is in, each retained event that not every member holds is sent once, by the
//! lowest member holding it. At the barrier every member builds the same table: the channels
//! of the union with the members' opens (departed nodes' opens are gone; an unlinked channel
//! nobody has open disappears), the union of the retained events minus the cleared and the
//! expired. Events a node learnt in the sync are delivered to its matching subscriptions that
//! have not had them ("had": delivered or queued to that subscription, or lost to it, while
//! the event was retained at this node).

pub mod checker;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId};
use tracing::debug;

use crate::exec::{ConnId, Context, Service, ServiceId, submit_reply};
use ais_proto::codec::DecodeError;
use ais_proto::evt::{
    Callback, Change, ChannelInfo, ChannelKey, EVENT_ID_LOST, EventHeader, EvtProtocol, Filter,
    FilterType, HIGHEST_PRIORITY, LOST_EVENT_PATTERN, LOST_EVENT_PUBLISHER, LOWEST_PRIORITY,
    MAX_DATA, MAX_NAME, MAX_PATTERN, MAX_PATTERNS, OPEN_CREATE, OPEN_FLAGS, OPEN_PUBLISHER,
    OPEN_SUBSCRIBER, PRIORITIES, Request, Response, RingMessage, TIME_END, matches,
};
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply, decode_body};
use ais_proto::ring;

const ID: ServiceId = EvtProtocol::ID;

/// Channels in one [`Response::List`] page.
pub const LIST_PAGE: usize = 500;

/// The EVT settings of a node (`[evt]` in aisexec's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvtConfig {
    /// Most channels (linked and unlinked) in the cluster; a create past it is
    /// `SA_AIS_ERR_NO_RESOURCES` (the sender's limit decides: give every node the same).
    pub max_channels: u32,
    /// Most retained events in the cluster; a publish with a retention time past it is
    /// `SA_AIS_ERR_NO_RESOURCES`.
    pub max_retained: u32,
    /// Most subscriptions of one connection (`SA_AIS_ERR_NO_RESOURCES` past it).
    pub max_subscriptions: u32,
    /// Deliveries sent to a connection and not yet acknowledged, at most.
    pub delivery_window: u32,
    /// Deliveries queued for a connection beyond its window, at most; past it the
    /// subscription is told of lost events.
    pub delivery_queue: u32,
}

impl Default for EvtConfig {
    fn default() -> EvtConfig {
        EvtConfig {
            max_channels: 1024,
            max_retained: 4096,
            max_subscriptions: 1024,
            delivery_window: 256,
            delivery_queue: 1000,
        }
    }
}

/// Deliberate defects, for the tests that prove the EVT checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvtDefects {
    /// A full queue drops the event without a lost-event notification.
    pub silent_drop: bool,
    /// The sync ignores the retained events other members send.
    pub forget_merged: bool,
    /// One priority's queue is sent newest first.
    pub lifo: bool,
}

/// A retained event as the observer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedInfo {
    /// Its id.
    pub id: u64,
    /// When it was published (with the id, its identity).
    pub publish_time: u64,
    /// When it expires at the latest (`u64::MAX`: never).
    pub expires: u64,
}

/// Told of what a node applies (the simulator's checker reads it).
pub trait Observer: Send {
    /// Node `node` applied a publish in `ring` (not for one it had already).
    fn published(&mut self, node: u32, ring: RingId, key: &ChannelKey, header: &EventHeader);

    /// Node `node` activated the sync of `ring` (of `members`) at `now` with these retained
    /// events.
    fn activated(
        &mut self,
        node: u32,
        ring: RingId,
        members: &[NodeId],
        now: u64,
        retained: Vec<RetainedInfo>,
    );

    /// Node `node` applied a clear of event `(id, publish time)`.
    fn cleared(&mut self, _node: u32, _event: (u64, u64)) {}
}

/// An event as held and delivered.
#[derive(Debug)]
struct Event {
    key: ChannelKey,
    header: EventHeader,
    data: Bytes,
}

/// An event's identity: (id, publish time). Ids are unique but for a restarted node that
/// rejoins a partition which never saw its last ids (see the module doc); the publish time
/// tells such events apart.
type Ek = (u64, u64);

impl Event {
    fn ek(&self) -> Ek {
        (self.header.id, self.header.publish_time)
    }

    fn expires(&self) -> u64 {
        if self.header.retention >= TIME_END {
            u64::MAX
        } else {
            self.header
                .publish_time
                .saturating_add(self.header.retention)
        }
    }
}

/// A channel of the replicated table.
#[derive(Debug, Default)]
struct Channel {
    /// Opens per node.
    opens: BTreeMap<u32, u32>,
    retained: BTreeMap<Ek, Arc<Event>>,
}

impl Channel {
    fn open_count(&self) -> u32 {
        self.opens.values().sum()
    }
}

#[derive(Debug)]
struct Sub {
    filters: Vec<Filter>,
    /// Retained events delivered, queued or lost to it (see the module doc, "had").
    had: BTreeSet<Ek>,
}

/// An open channel of a connection.
#[derive(Debug)]
struct Open {
    conn: ConnId,
    key: ChannelKey,
    flags: u8,
    subs: BTreeMap<u32, Sub>,
}

#[derive(Debug, Clone)]
struct Item {
    channel: u64,
    sub: u32,
    event: Arc<Event>,
}

/// A connection's deliveries.
#[derive(Debug, Default)]
struct Outq {
    queues: [VecDeque<Item>; PRIORITIES],
    /// Subscriptions owed a lost-event notification.
    lost: BTreeSet<(u64, u32)>,
    inflight: u32,
}

impl Outq {
    fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn forget(&mut self, channel: u64, sub: Option<u32>) {
        let hit = |c: u64, s: u32| c == channel && sub.is_none_or(|x| x == s);
        for q in &mut self.queues {
            q.retain(|i| !hit(i.channel, i.sub));
        }
        self.lost.retain(|&(c, s)| !hit(c, s));
    }
}

/// What a pending change answers when it is delivered.
#[derive(Debug, Clone, Copy)]
enum Pend {
    Open { flags: u8, invocation: Option<u64> },
    Plain,
    Publish { event: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnId,
    id: u64,
    pend: Pend,
}

#[derive(Debug, Default)]
struct Summary {
    channels: Vec<(ChannelKey, u32)>,
    retained: BTreeSet<Ek>,
    cleared: Vec<(Ek, u64)>,
    counters: Vec<(u32, u32)>,
}

#[derive(Debug)]
struct SyncState {
    ring: RingId,
    summaries: BTreeMap<u32, Summary>,
    events_sent: bool,
    incoming: BTreeMap<Ek, Arc<Event>>,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    published: u64,
    deliveries: u64,
    lost: u64,
    lost_notifications: u64,
    stale: u64,
    no_channel: u64,
    expired: u64,
    sync_events: u64,
    merged: u64,
}

/// The EVT service.
pub struct Evt {
    cfg: EvtConfig,
    defects: EvtDefects,
    channels: BTreeMap<ChannelKey, Channel>,
    /// Cleared event ids with when they would have expired.
    cleared: BTreeMap<Ek, u64>,
    /// The highest event counter seen of each node.
    seen: BTreeMap<u32, u32>,
    next_counter: u32,
    synced: bool,
    summary_sent: bool,
    sync: Option<SyncState>,
    handles: BTreeMap<u64, Open>,
    next_handle: u64,
    outqs: BTreeMap<ConnId, Outq>,
    pending: BTreeMap<u64, Pending>,
    next_tag: u64,
    /// Closes to send when the sync activates.
    deferred: Vec<ChannelKey>,
    /// Publishes delivered during a sync for a channel this node did not know yet.
    early: Vec<Arc<Event>>,
    next_expiry: u64,
    observer: Option<Box<dyn Observer>>,
    counters: Counters,
}

impl std::fmt::Debug for Evt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evt")
            .field("channels", &self.channels.len())
            .field("synced", &self.synced)
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

fn lost_header(now: u64) -> EventHeader {
    EventHeader {
        id: EVENT_ID_LOST,
        priority: HIGHEST_PRIORITY,
        retention: 0,
        publish_time: now,
        publisher: Bytes::from_static(LOST_EVENT_PUBLISHER),
        patterns: vec![Bytes::from_static(LOST_EVENT_PATTERN)],
    }
}

fn check_name(name: &[u8]) -> Result<(), AisError> {
    if name.is_empty() {
        Err(AisError::InvalidParam)
    } else if name.len() > MAX_NAME {
        Err(AisError::NameTooLong)
    } else {
        Ok(())
    }
}

/// Checks a published event's header and data (what does not depend on the state).
fn check_event(header: &EventHeader, data: &Bytes) -> Result<(), AisError> {
    if header.priority > LOWEST_PRIORITY || header.publisher.len() > MAX_NAME {
        return Err(AisError::InvalidParam);
    }
    if data.len() > MAX_DATA
        || header.patterns.len() > MAX_PATTERNS
        || header.patterns.iter().any(|p| p.len() > MAX_PATTERN)
    {
        return Err(AisError::TooBig);
    }
    Ok(())
}

impl Evt {
    /// The service with these settings.
    pub fn new(cfg: EvtConfig) -> Evt {
        Evt::with_defects(cfg, EvtDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(cfg: EvtConfig, defects: EvtDefects) -> Evt {
        Evt {
            cfg,
            defects,
            channels: BTreeMap::new(),
            cleared: BTreeMap::new(),
            seen: BTreeMap::new(),
            next_counter: 2,
            synced: false,
            summary_sent: false,
            sync: None,
            handles: BTreeMap::new(),
            next_handle: 1,
            outqs: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_tag: 1,
            deferred: Vec::new(),
            early: Vec::new(),
            next_expiry: 0,
            observer: None,
            counters: Counters::default(),
        }
    }

    /// Tells `observer` what this node applies.
    #[must_use]
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Evt {
        self.observer = Some(observer);
        self
    }

    /// The events retained at this node, (id, publish time), in order.
    pub fn retained(&self) -> Vec<(u64, u64)> {
        let mut ids: Vec<Ek> = self
            .channels
            .values()
            .flat_map(|c| c.retained.keys().copied())
            .collect();
        ids.sort_unstable();
        ids
    }

    fn retained_count(&self) -> usize {
        self.channels.values().map(|c| c.retained.len()).sum()
    }

    fn handle(&self, conn: ConnId, channel: u64, needs: u8) -> Result<&Open, AisError> {
        match self.handles.get(&channel) {
            Some(o) if o.conn == conn => {
                if o.flags & needs == needs {
                    Ok(o)
                } else {
                    Err(AisError::Access)
                }
            }
            _ => Err(AisError::BadHandle),
        }
    }

    /// A new unique number of this node (event ids, unlink ids); `None` when the counter is
    /// spent.
    fn unique(&mut self, cx: &Context<'_>) -> Option<u64> {
        let c = self.next_counter;
        self.next_counter = c.checked_add(1)?;
        let node = cx.node().0;
        let seen = self.seen.entry(node).or_default();
        *seen = (*seen).max(c);
        Some((u64::from(node) << 32) | u64::from(c))
    }

    fn see(&mut self, id: u64) {
        let node = (id >> 32) as u32;
        let seen = self.seen.entry(node).or_default();
        *seen = (*seen).max(id as u32);
    }

    fn change_message(&self, cx: &Context<'_>, tag: u64, change: Change) -> Bytes {
        let ring = cx.ring();
        ring::encode(
            ID,
            &RingMessage::Change {
                rep: ring.rep.0,
                seq: ring.seq,
                tag,
                max_channels: self.cfg.max_channels,
                change,
            },
        )
    }

    /// Sends `change` for request `id` of `conn`; answered at delivery.
    fn send(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, pend: Pend, change: Change) {
        if !self.synced {
            return cx.error(conn, id, AisError::TryAgain);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending.insert(tag, Pending { conn, id, pend });
        let msg = self.change_message(cx, tag, change);
        cx.submit_for(conn, id, ID, tag, DeliveryKind::Agreed, msg);
    }

    /// Sends a change of the executive itself (a close).
    fn send_internal(&mut self, cx: &mut Context<'_>, change: Change) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let msg = self.change_message(cx, tag, change);
        cx.submit_internal(DeliveryKind::Agreed, msg);
    }

    /// Removes open `channel` (its client closed it or is gone) and tells the cluster.
    fn close(&mut self, cx: &mut Context<'_>, channel: u64) {
        let Some(open) = self.handles.remove(&channel) else {
            return;
        };
        if let Some(q) = self.outqs.get_mut(&open.conn) {
            q.forget(channel, None);
        }
        if self.synced {
            self.send_internal(cx, Change::Close { key: open.key });
        } else if self.summary_sent {
            // The summary counted it: close it once the sync is done.
            self.deferred.push(open.key);
        }
    }

    /// Queues `event` for subscription `sub` of open `channel` of `conn`.
    fn enqueue(&mut self, cx: &mut Context<'_>, conn: ConnId, item: Item) {
        let cap = self.cfg.delivery_queue as usize;
        let q = self.outqs.entry(conn).or_default();
        let prio = usize::from(item.event.header.priority.min(LOWEST_PRIORITY));
        if q.queued() < cap {
            q.queues[prio].push_back(item);
        } else {
            self.counters.lost += 1;
            // Evict the newest queued event of the lowest priority below this one's.
            let victim = (prio + 1..PRIORITIES)
                .rev()
                .find(|&p| !q.queues[p].is_empty());
            let lost = match victim {
                Some(p) => {
                    let v = q.queues[p].pop_back().expect("not empty");
                    let lost = (v.channel, v.sub);
                    q.queues[prio].push_back(item);
                    lost
                }
                None => (item.channel, item.sub),
            };
            if !self.defects.silent_drop {
                q.lost.insert(lost);
            }
        }
        self.pump(cx, conn);
    }

    /// Sends what the connection's window allows.
    fn pump(&mut self, cx: &mut Context<'_>, conn: ConnId) {
        let window = self.cfg.delivery_window.max(1);
        let lifo = self.defects.lifo;
        let Some(q) = self.outqs.get_mut(&conn) else {
            return;
        };
        while q.inflight < window {
            let cb = if let Some((channel, subscription)) = q.lost.pop_first() {
                self.counters.lost_notifications += 1;
                Callback::Deliver {
                    channel,
                    subscription,
                    header: lost_header(cx.now()),
                    data: Bytes::new(),
                }
            } else {
                let Some(item) = q
                    .queues
                    .iter_mut()
                    .find(|q| !q.is_empty())
                    .and_then(|q| if lifo { q.pop_back() } else { q.pop_front() })
                else {
                    break;
                };
                self.counters.deliveries += 1;
                Callback::Deliver {
                    channel: item.channel,
                    subscription: item.sub,
                    header: item.event.header.clone(),
                    data: item.event.data.clone(),
                }
            };
            q.inflight += 1;
            cx.callback(conn, &cb);
        }
    }

    /// Delivers `event` to this node's matching subscriptions (those that had it excepted).
    fn deliver_local(&mut self, cx: &mut Context<'_>, event: &Arc<Event>, redelivery: bool) {
        let retained = event.header.retention > 0;
        let mut items = Vec::new();
        for (&channel, open) in &mut self.handles {
            if open.key != event.key || open.flags & OPEN_SUBSCRIBER == 0 {
                continue;
            }
            for (&sub, s) in &mut open.subs {
                if !matches(&s.filters, &event.header.patterns) {
                    continue;
                }
                if (retained || redelivery) && !s.had.insert(event.ek()) {
                    continue;
                }
                items.push((
                    open.conn,
                    Item {
                        channel,
                        sub,
                        event: Arc::clone(event),
                    },
                ));
            }
        }
        for (conn, item) in items {
            self.enqueue(cx, conn, item);
        }
    }

    /// Forgets, in the subscriptions, events no longer retained.
    fn forget_had(&mut self, gone: &BTreeSet<Ek>) {
        if gone.is_empty() {
            return;
        }
        for open in self.handles.values_mut() {
            for s in open.subs.values_mut() {
                s.had.retain(|id| !gone.contains(id));
            }
        }
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
        match req {
            Request::Open { name, flags } => {
                self.open(cx, conn, id, name, flags, None)?;
            }
            Request::OpenAsync {
                name,
                flags,
                invocation,
            } => {
                self.open(cx, conn, id, name, flags, Some(invocation))?;
            }
            Request::Close { channel } => {
                self.handle(conn, channel, 0)?;
                self.close(cx, channel);
                cx.ok(conn, id);
            }
            Request::Unlink { name } => {
                check_name(&name)?;
                let uid = self.unique(cx).ok_or(AisError::NoResources)?;
                self.send(cx, conn, id, Pend::Plain, Change::Unlink { name, id: uid });
            }
            Request::Publish {
                channel,
                mut header,
                data,
            } => {
                let key = self.handle(conn, channel, OPEN_PUBLISHER)?.key.clone();
                check_event(&header, &data)?;
                if !self.synced {
                    return Err(AisError::TryAgain);
                }
                if header.retention > 0 && self.retained_count() >= self.cfg.max_retained as usize {
                    return Err(AisError::NoResources);
                }
                let event = self.unique(cx).ok_or(AisError::NoResources)?;
                header.id = event;
                header.publish_time = cx.now();
                let msg = ring::encode(
                    ID,
                    &RingMessage::Publish {
                        key,
                        max_retained: self.cfg.max_retained,
                        header,
                        data,
                    },
                );
                let tag = self.next_tag;
                self.next_tag += 1;
                self.pending.insert(
                    tag,
                    Pending {
                        conn,
                        id,
                        pend: Pend::Publish { event },
                    },
                );
                cx.submit_for(conn, id, ID, tag, DeliveryKind::Agreed, msg);
            }
            Request::Subscribe {
                channel,
                subscription,
                filters,
            } => {
                let open = self.handle(conn, channel, OPEN_SUBSCRIBER)?;
                if filters.len() > MAX_PATTERNS
                    || filters.iter().any(|f| f.pattern.len() > MAX_PATTERN)
                {
                    return Err(AisError::TooBig);
                }
                if filters
                    .iter()
                    .any(|f| FilterType::from_code(f.kind).is_none())
                {
                    return Err(AisError::InvalidParam);
                }
                if open.subs.contains_key(&subscription) {
                    return Err(AisError::Exist);
                }
                let subs: usize = self
                    .handles
                    .values()
                    .filter(|o| o.conn == conn)
                    .map(|o| o.subs.len())
                    .sum();
                if subs >= self.cfg.max_subscriptions as usize {
                    return Err(AisError::NoResources);
                }
                let key = open.key.clone();
                let mut had = BTreeSet::new();
                let mut items = Vec::new();
                if let Some(c) = self.channels.get(&key) {
                    for e in c.retained.values() {
                        if matches(&filters, &e.header.patterns) {
                            had.insert(e.ek());
                            items.push(Item {
                                channel,
                                sub: subscription,
                                event: Arc::clone(e),
                            });
                        }
                    }
                }
                if let Some(open) = self.handles.get_mut(&channel) {
                    open.subs.insert(subscription, Sub { filters, had });
                }
                cx.ok(conn, id);
                for item in items {
                    self.enqueue(cx, conn, item);
                }
            }
            Request::Unsubscribe {
                channel,
                subscription,
            } => {
                self.handle(conn, channel, 0)?;
                let open = self.handles.get_mut(&channel).expect("checked");
                open.subs.remove(&subscription).ok_or(AisError::NotExist)?;
                if let Some(q) = self.outqs.get_mut(&conn) {
                    q.forget(channel, Some(subscription));
                }
                cx.ok(conn, id);
            }
            Request::RetentionTimeClear { channel, event } => {
                let key = self.handle(conn, channel, 0)?.key.clone();
                if event <= EVENT_ID_LOST {
                    return Err(AisError::InvalidParam);
                }
                if !self
                    .channels
                    .get(&key)
                    .is_some_and(|c| c.retained.keys().any(|k| k.0 == event))
                {
                    return Err(AisError::NotExist);
                }
                self.send(cx, conn, id, Pend::Plain, Change::Clear { key, event });
            }
            Request::Consumed { count } => {
                // Unanswered: the client sends it without waiting, so reading never stalls
                // on a round trip through this thread.
                if let Some(q) = self.outqs.get_mut(&conn) {
                    q.inflight = q.inflight.saturating_sub(count);
                }
                self.pump(cx, conn);
            }
            Request::List { start } => {
                let all: Vec<ChannelInfo> = self
                    .channels
                    .iter()
                    .skip(start as usize)
                    .take(LIST_PAGE + 1)
                    .map(|(k, c)| ChannelInfo {
                        name: k.name.clone(),
                        unlinked: k.unlinked != 0,
                        opens: c.open_count(),
                        retained: c.retained.len() as u32,
                    })
                    .collect();
                let next = (all.len() > LIST_PAGE).then(|| start + LIST_PAGE as u32);
                let items = all.into_iter().take(LIST_PAGE).collect();
                cx.reply(conn, id, Reply::Service(Response::List { items, next }));
            }
        }
        Ok(())
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
        check_name(&name)?;
        if flags & !OPEN_FLAGS != 0 {
            return Err(AisError::BadFlags);
        }
        let create = flags & OPEN_CREATE != 0;
        self.send(
            cx,
            conn,
            id,
            Pend::Open { flags, invocation },
            Change::Open { name, create },
        );
        Ok(())
    }

    /// Answers a delivered (or refused) change.
    fn answer(&mut self, cx: &mut Context<'_>, p: Pending, result: Result<ChannelKey, AisError>) {
        let Pending { conn, id, pend } = p;
        match (pend, result) {
            (Pend::Open { flags, invocation }, Ok(key)) => {
                if !cx.is_open(conn) {
                    // Its client is gone: the open is undone.
                    self.send_internal(cx, Change::Close { key });
                    return;
                }
                let channel = self.next_handle;
                self.next_handle += 1;
                self.handles.insert(
                    channel,
                    Open {
                        conn,
                        key,
                        flags,
                        subs: BTreeMap::new(),
                    },
                );
                match invocation {
                    None => cx.reply(conn, id, Reply::Service(Response::Opened { channel })),
                    Some(invocation) => cx.callback(
                        conn,
                        &Callback::Open {
                            invocation,
                            result: Ok(channel),
                        },
                    ),
                }
            }
            (
                Pend::Open {
                    invocation: Some(invocation),
                    ..
                },
                Err(e),
            ) => cx.callback(
                conn,
                &Callback::Open {
                    invocation,
                    result: Err(e),
                },
            ),
            (_, Err(e)) => cx.error(conn, id, e),
            (_, Ok(_)) => cx.ok(conn, id),
        }
    }

    fn deliver_change(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        ring: (u32, u64),
        tag: u64,
        max_channels: u32,
        change: Change,
    ) {
        let mine = if sender == cx.node() {
            self.pending.remove(&tag)
        } else {
            None
        };
        let now_ring = cx.ring();
        if ring != (now_ring.rep.0, now_ring.seq) {
            // Sent in another configuration: refused everywhere alike.
            self.counters.stale += 1;
            if let Some(p) = mine {
                self.answer(cx, p, Err(AisError::TryAgain));
            }
            return;
        }
        let result = self.apply_change(cx, sender.0, max_channels, change);
        if let Some(p) = mine {
            self.answer(cx, p, result);
        }
    }

    fn apply_change(
        &mut self,
        cx: &mut Context<'_>,
        sender: u32,
        max_channels: u32,
        change: Change,
    ) -> Result<ChannelKey, AisError> {
        match change {
            Change::Open { name, create } => {
                let key = ChannelKey { name, unlinked: 0 };
                if !self.channels.contains_key(&key) {
                    if !create {
                        return Err(AisError::NotExist);
                    }
                    if self.channels.len() >= max_channels as usize {
                        return Err(AisError::NoResources);
                    }
                    self.channels.insert(key.clone(), Channel::default());
                }
                let c = self.channels.get_mut(&key).expect("present");
                *c.opens.entry(sender).or_default() += 1;
                Ok(key)
            }
            Change::Close { key } => {
                let Some(c) = self.channels.get_mut(&key) else {
                    return Err(AisError::NotExist);
                };
                if let Some(n) = c.opens.get_mut(&sender) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        c.opens.remove(&sender);
                    }
                }
                if key.unlinked != 0 && c.open_count() == 0 {
                    self.remove_channel(&key);
                }
                Ok(key)
            }
            Change::Unlink { name, id } => {
                self.see(id);
                let key = ChannelKey { name, unlinked: 0 };
                let Some(c) = self.channels.remove(&key) else {
                    return Err(AisError::NotExist);
                };
                let detached = ChannelKey {
                    name: key.name.clone(),
                    unlinked: id,
                };
                if c.open_count() == 0 {
                    let gone = c.retained.keys().copied().collect();
                    self.forget_had(&gone);
                } else {
                    self.channels.insert(detached.clone(), c);
                    for open in self.handles.values_mut() {
                        if open.key == key {
                            open.key = detached.clone();
                        }
                    }
                }
                Ok(key)
            }
            Change::Clear { key, event } => {
                let Some(c) = self.channels.get_mut(&key) else {
                    return Err(AisError::NotExist);
                };
                let gone: BTreeSet<Ek> = c
                    .retained
                    .keys()
                    .filter(|k| k.0 == event)
                    .copied()
                    .collect();
                if gone.is_empty() {
                    return Err(AisError::NotExist);
                }
                for k in &gone {
                    if let Some(e) = c.retained.remove(k) {
                        self.cleared.insert(*k, e.expires());
                    }
                    if let Some(o) = &mut self.observer {
                        o.cleared(cx.node().0, *k);
                    }
                }
                self.forget_had(&gone);
                Ok(key)
            }
        }
    }

    fn remove_channel(&mut self, key: &ChannelKey) {
        if let Some(c) = self.channels.remove(key) {
            let gone = c.retained.keys().copied().collect();
            self.forget_had(&gone);
        }
    }

    fn deliver_publish(
        &mut self,
        cx: &mut Context<'_>,
        key: ChannelKey,
        max_retained: u32,
        header: EventHeader,
        data: Bytes,
    ) -> Result<(), DecodeError> {
        if header.priority > LOWEST_PRIORITY || header.id <= EVENT_ID_LOST {
            return Err(DecodeError::Invalid {
                field: "event",
                why: "priority above 3 or a reserved id",
            });
        }
        self.see(header.id);
        let retained_count = self.retained_count();
        if !self.synced && !self.channels.contains_key(&key) {
            // This node learns the channel in the sync under way (it joined, or restarted):
            // the event is kept until the sync activates, as the other members keep it.
            if self.early.iter().all(|e| e.header.id != header.id) {
                let event = Arc::new(Event { key, header, data });
                if let Some(o) = &mut self.observer {
                    o.published(cx.node().0, cx.ring(), &event.key, &event.header);
                }
                self.early.push(event);
            }
            return Ok(());
        }
        let Some(c) = self.channels.get_mut(&key) else {
            // Unlinked and closed everywhere while the event travelled.
            self.counters.no_channel += 1;
            return Ok(());
        };
        if c.retained.contains_key(&(header.id, header.publish_time)) {
            // Learnt already in a sync.
            return Ok(());
        }
        self.counters.published += 1;
        let event = Arc::new(Event { key, header, data });
        let now = cx.now();
        if event.header.retention > 0
            && !self.cleared.contains_key(&event.ek())
            && event.expires() > now
            && retained_count < max_retained as usize
        {
            c.retained.insert(event.ek(), Arc::clone(&event));
            self.next_expiry = self.next_expiry.min(event.expires());
        }
        if let Some(o) = &mut self.observer {
            o.published(cx.node().0, cx.ring(), &event.key, &event.header);
        }
        self.deliver_local(cx, &event, false);
        Ok(())
    }

    fn deliver_sync(&mut self, cx: &Context<'_>, sender: NodeId, msg: RingMessage) {
        let Some(sync) = &mut self.sync else { return };
        let (rep, seq) = match &msg {
            RingMessage::Summary { rep, seq, .. } | RingMessage::SyncEvent { rep, seq, .. } => {
                (*rep, *seq)
            }
            _ => return,
        };
        if (rep, seq) != (sync.ring.rep.0, sync.ring.seq) || !cx.members().contains(&sender) {
            return;
        }
        match msg {
            RingMessage::Summary {
                channels,
                retained,
                cleared,
                counters,
                ..
            } => {
                sync.summaries.insert(
                    sender.0,
                    Summary {
                        channels,
                        retained: retained.into_iter().collect(),
                        cleared,
                        counters,
                    },
                );
            }
            RingMessage::SyncEvent {
                key, header, data, ..
            } => {
                self.counters.sync_events += 1;
                sync.incoming
                    .entry((header.id, header.publish_time))
                    .or_insert_with(|| Arc::new(Event { key, header, data }));
            }
            _ => {}
        }
    }

    fn send_events(&mut self, cx: &mut Context<'_>) {
        let Some(sync) = &self.sync else { return };
        let me = cx.node().0;
        let members: Vec<u32> = cx.members().iter().map(|m| m.0).collect();
        let mut out = Vec::new();
        let early = self.early.iter().filter(|e| e.header.retention > 0);
        let held = self.channels.values().flat_map(|c| c.retained.values());
        {
            for e in held.chain(early) {
                let id = &e.ek();
                let holders: Vec<u32> = members
                    .iter()
                    .copied()
                    .filter(|m| {
                        sync.summaries
                            .get(m)
                            .is_some_and(|s| s.retained.contains(id))
                    })
                    .collect();
                if holders.len() == members.len() || holders.first() != Some(&me) {
                    continue;
                }
                out.push(ring::encode(
                    ID,
                    &RingMessage::SyncEvent {
                        rep: sync.ring.rep.0,
                        seq: sync.ring.seq,
                        key: e.key.clone(),
                        header: e.header.clone(),
                        data: e.data.clone(),
                    },
                ));
            }
        }
        for msg in out {
            cx.submit_internal(DeliveryKind::Agreed, msg);
        }
    }

    fn activate(&mut self, cx: &mut Context<'_>, sync: SyncState) {
        let now = cx.now();
        let SyncState {
            summaries,
            incoming,
            ..
        } = sync;
        // Cleared ids: the union, until they would have expired.
        for s in summaries.values() {
            for &(id, until) in &s.cleared {
                let e = self.cleared.entry(id).or_default();
                *e = (*e).max(until);
            }
            for &(node, c) in &s.counters {
                let e = self.seen.entry(node).or_default();
                *e = (*e).max(c);
            }
        }
        self.cleared.retain(|_, until| *until > now);
        let me = cx.node().0;
        if let Some(&c) = self.seen.get(&me) {
            self.next_counter = self.next_counter.max(c.saturating_add(1));
        }
        // The channel table: the union, with each member's opens.
        let mut table: BTreeMap<ChannelKey, Channel> = BTreeMap::new();
        for (&node, s) in &summaries {
            for (key, opens) in &s.channels {
                let c = table.entry(key.clone()).or_default();
                if *opens > 0 {
                    c.opens.insert(node, *opens);
                }
            }
        }
        table.retain(|k, c| k.unlinked == 0 || c.open_count() > 0);
        let before: BTreeSet<Ek> = self.retained().into_iter().collect();
        let old = std::mem::take(&mut self.channels);
        let mut events: Vec<Arc<Event>> = old
            .into_values()
            .flat_map(|c| c.retained.into_values())
            .collect();
        if !self.defects.forget_merged {
            events.extend(incoming.into_values());
        }
        let early = std::mem::take(&mut self.early);
        let early_ids: BTreeSet<Ek> = early.iter().map(|e| e.ek()).collect();
        events.extend(early.iter().filter(|e| e.header.retention > 0).cloned());
        let cleared = &self.cleared;
        let mut learnt = Vec::new();
        for e in events {
            let id = e.ek();
            if cleared.contains_key(&id) || e.expires() <= now {
                continue;
            }
            let Some(c) = table.get_mut(&e.key) else {
                continue;
            };
            if c.retained.contains_key(&id) {
                continue;
            }
            if !before.contains(&id) && !early_ids.contains(&id) {
                learnt.push(Arc::clone(&e));
            }
            c.retained.insert(id, e);
        }
        self.counters.merged += learnt.len() as u64;
        self.channels = table;
        self.next_expiry = 0;
        let after: BTreeSet<Ek> = self.retained().into_iter().collect();
        let gone: BTreeSet<Ek> = before.difference(&after).copied().collect();
        self.forget_had(&gone);
        // Handles of channels that disappeared stay open on an empty channel; so does the
        // table (the opens this node reported keep it).
        learnt.sort_by_key(|e| e.header.id);
        for e in &learnt {
            self.deliver_local(cx, e, true);
        }
        for e in &early {
            self.deliver_local(cx, e, false);
        }
        self.synced = true;
        for key in std::mem::take(&mut self.deferred) {
            self.send_internal(cx, Change::Close { key });
        }
        if let Some(o) = &mut self.observer {
            let retained = self
                .channels
                .values()
                .flat_map(|c| c.retained.values())
                .map(|e| RetainedInfo {
                    id: e.header.id,
                    publish_time: e.header.publish_time,
                    expires: e.expires(),
                })
                .collect();
            o.activated(me, cx.ring(), cx.members(), now, retained);
        }
        debug!(
            ring = %cx.ring(),
            channels = self.channels.len(),
            learnt = learnt.len(),
            "evt sync activated"
        );
    }

    /// This node's opens per channel, for its summary.
    fn my_opens(&self) -> BTreeMap<ChannelKey, u32> {
        let mut opens: BTreeMap<ChannelKey, u32> = BTreeMap::new();
        for open in self.handles.values() {
            *opens.entry(open.key.clone()).or_default() += 1;
        }
        opens
    }
}

impl Service for Evt {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        EvtProtocol::NAME
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
            self.pending.remove(&tag);
            cx.reply(conn, id, submit_reply::<Nothing>(result));
            return;
        }
        match self.pending.get(&tag).map(|p| p.pend) {
            Some(Pend::Publish { event }) => {
                self.pending.remove(&tag);
                cx.reply(conn, id, Reply::Service(Response::Published { event }));
            }
            // The asynchronous open is answered now; its callback follows at delivery.
            Some(Pend::Open {
                invocation: Some(_),
                ..
            }) => cx.ok(conn, id),
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
            RingMessage::Publish {
                key,
                max_retained,
                header,
                data,
            } => self.deliver_publish(cx, key, max_retained, header, data)?,
            RingMessage::Change {
                rep,
                seq,
                tag,
                max_channels,
                change,
            } => self.deliver_change(cx, sender, (rep, seq), tag, max_channels, change),
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
        let mine = self.my_opens();
        let mut channels: Vec<(ChannelKey, u32)> = self
            .channels
            .keys()
            .map(|k| (k.clone(), mine.get(k).copied().unwrap_or(0)))
            .collect();
        // Opens of channels this node's table lost (it cannot, but say them anyway).
        for (k, n) in &mine {
            if !self.channels.contains_key(k) {
                channels.push((k.clone(), *n));
            }
        }
        let msg = RingMessage::Summary {
            rep: ring.rep.0,
            seq: ring.seq,
            channels,
            retained: self
                .retained()
                .into_iter()
                .chain(
                    self.early
                        .iter()
                        .filter(|e| e.header.retention > 0)
                        .map(|e| e.ek()),
                )
                .collect(),
            cleared: self.cleared.iter().map(|(k, v)| (*k, *v)).collect(),
            counters: self.seen.iter().map(|(k, v)| (*k, *v)).collect(),
        };
        cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
        self.sync = Some(SyncState {
            ring,
            summaries: BTreeMap::new(),
            events_sent: false,
            incoming: BTreeMap::new(),
        });
        self.summary_sent = true;
        self.deferred.clear();
    }

    fn sync_process(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sync) = &self.sync else { return true };
        if sync.events_sent {
            return true;
        }
        if cx
            .members()
            .iter()
            .any(|m| !sync.summaries.contains_key(&m.0))
        {
            return false;
        }
        self.send_events(cx);
        if let Some(sync) = &mut self.sync {
            sync.events_sent = true;
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
        let gone: Vec<u64> = self
            .handles
            .iter()
            .filter(|(_, o)| o.conn == conn)
            .map(|(k, _)| *k)
            .collect();
        for channel in gone {
            self.close(cx, channel);
        }
        self.outqs.remove(&conn);
    }

    fn tick(&mut self, cx: &mut Context<'_>) {
        let now = cx.now();
        if now < self.next_expiry {
            return;
        }
        let mut next = u64::MAX;
        let mut gone = BTreeSet::new();
        for c in self.channels.values_mut() {
            c.retained.retain(|id, e| {
                let exp = e.expires();
                if exp <= now {
                    gone.insert(*id);
                    false
                } else {
                    next = next.min(exp);
                    true
                }
            });
        }
        self.counters.expired += gone.len() as u64;
        self.forget_had(&gone);
        self.cleared.retain(|_, until| *until > now);
        self.next_expiry = next;
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("evt_channels", self.channels.len() as u64);
        v.gauge("evt_retained", self.retained_count() as u64);
        v.gauge("evt_handles", self.handles.len() as u64);
        v.gauge(
            "evt_subscriptions",
            self.handles.values().map(|o| o.subs.len() as u64).sum(),
        );
        v.gauge(
            "evt_queued",
            self.outqs.values().map(|q| q.queued() as u64).sum(),
        );
        v.counter("evt_published", self.counters.published);
        v.counter("evt_deliveries", self.counters.deliveries);
        v.counter("evt_lost", self.counters.lost);
        v.counter("evt_lost_notifications", self.counters.lost_notifications);
        v.counter("evt_changes_stale", self.counters.stale);
        v.counter("evt_publish_no_channel", self.counters.no_channel);
        v.counter("evt_expired", self.counters.expired);
        v.counter("evt_sync_events", self.counters.sync_events);
        v.counter("evt_merged", self.counters.merged);
    }
}
