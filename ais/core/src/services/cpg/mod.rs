//! CPG, closed process groups: processes join named groups, every member sees the same
//! membership changes and the same messages in the same order.
//!
//! A member is a process, named by its node and pid ([`CpgAddress`]). Every change of a
//! group's membership is a Totem message, so every node applies it at the same point in the
//! total order:
//! - `JOIN {group, pid}` and `LEAVE {group, pid, reason}` from the member's node (reason
//!   `leave` when asked, `procdown` when its connection closed);
//! - `MCAST {group, pid, data}` is delivered to this node's members of the group, only when
//!   its sender is a member of this node's view of the group (a message a process sent in an
//!   older view, delivered after a merge, reaches the members of that view and no one else);
//! - a regular configuration removes the members of nodes that are no longer in it (reason
//!   `nodedown`), then the executive synchronises CPG ([`crate::exec::core`]): every node
//!   sends a `JOINLIST {ring, entries}` of its own members once its own joins and leaves in
//!   flight are delivered, and when every member's barrier has passed, each node sets every
//!   group to exactly what the join lists said: processes learnt appear with reason
//!   `nodeup`, processes no member listed (a restarted node's old ones) leave with reason
//!   `nodedown`, at the same point of the total order everywhere. Client requests wait
//!   meanwhile; a leave delivered during the sync also strikes the process from the join
//!   lists already learnt.
//!
//! Each change is told to this node's members of the group as a configuration-change
//! callback with the full member list and who joined or left, and why; a leaving member gets
//! that callback too, as the last one for the group.

pub mod checker;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{Buf, Bytes};
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId};
use tracing::debug;

use super::delivery_kind;
use crate::exec::{ConnId, Context, Service, ServiceId, submit_reply};
use ais_proto::codec::DecodeError;
use ais_proto::cpg::{
    Callback, CpgAddress, CpgProtocol, McastRef, Reason, Request, Response, RingMessage,
};
use ais_proto::ipc::{AisError, MAX_GROUP_NAME, Protocol, Reply, check_group, decode_body};
use ais_proto::ring;
use dataplane::stats::{Visit, Visitor};

/// CPG's id, in executive messages and `Hello`.
const ID: ServiceId = CpgProtocol::ID;

/// Tags of client submits, for [`Service::submitted`].
const TAG_JOIN: u64 = 1;
const TAG_LEAVE: u64 = 2;
const TAG_MCAST: u64 = 3;

#[derive(Debug, Default)]
struct Group {
    members: BTreeSet<CpgAddress>,
    /// This node's members: pid → connection.
    local: BTreeMap<u32, ConnId>,
}

#[derive(Debug, Default)]
struct ConnState {
    /// Groups joined or being joined.
    joined: BTreeSet<Bytes>,
    /// Join and leave requests submitted and not yet answered by Totem: (request id, group).
    pending: HashMap<u64, Bytes>,
}

/// Deliberate defects, for the tests that prove the CPG checker catches a broken service.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Defects {
    /// Deliver a message whatever its sender's membership (the defect this service had).
    pub deliver_from_non_members: bool,
    /// No sync barrier: join lists are sent at the regular configuration and applied when
    /// delivered (the old design).
    pub no_sync: bool,
}

/// A synchronisation in progress.
#[derive(Debug, Default)]
struct SyncState {
    /// The ring being synchronised.
    ring: RingId,
    /// This node's join list was submitted.
    sent: bool,
    /// What the join lists delivered so far taught: group → processes.
    learnt: BTreeMap<Bytes, BTreeSet<CpgAddress>>,
}

/// The CPG service.
#[derive(Debug, Default)]
pub struct Cpg {
    groups: BTreeMap<Bytes, Group>,
    conns: HashMap<ConnId, ConnState>,
    /// Joins submitted by this node and not yet delivered: (group, pid) → connection.
    joining: HashMap<(Bytes, u32), ConnId>,
    /// This node's joins and leaves submitted and not yet delivered (or refused): its join
    /// list waits for them, so it says what every node will have delivered before it.
    own_in_flight: u32,
    sync: Option<SyncState>,
    defects: Defects,
    stats: CpgStats,
}

/// CPG's counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CpgStats {
    /// Messages delivered to local members (one per member).
    pub delivered: u64,
    /// Configuration-change callbacks sent to local members.
    pub confchg_callbacks: u64,
    /// Messages from processes that were not members of their group when delivered, dropped.
    pub dropped_from_non_members: u64,
    /// Multicast requests answered TRY_AGAIN because a client's outbox was backlogged at
    /// this node or another member (`crate::exec::flow`).
    pub refused_backlogged: u64,
}

impl Visit for CpgStats {
    fn visit(&self, v: &mut dyn Visitor) {
        v.counter("cpg_delivered", self.delivered);
        v.counter("cpg_confchg_callbacks", self.confchg_callbacks);
        v.counter(
            "cpg_dropped_from_non_members",
            self.dropped_from_non_members,
        );
        v.counter("cpg_mcast_refused_backlogged", self.refused_backlogged);
    }
}

/// A CPG message for Totem.
fn encode(m: &RingMessage) -> Bytes {
    ring::encode(ID, m)
}

impl Cpg {
    /// An empty CPG service.
    pub fn new() -> Cpg {
        Cpg::default()
    }

    /// A CPG service with deliberate defects (tests of the checker only).
    #[doc(hidden)]
    pub fn with_defects(defects: Defects) -> Cpg {
        Cpg {
            defects,
            ..Cpg::default()
        }
    }

    /// One of this node's own joins or leaves was delivered or refused.
    fn own_op_done(&mut self) {
        self.own_in_flight = self.own_in_flight.saturating_sub(1);
    }

    fn pid_conn(&self, group: &[u8], pid: u32) -> Option<ConnId> {
        self.groups
            .get(group)
            .and_then(|g| g.local.get(&pid).copied())
    }

    /// Tells this node's members of `group` about a change.
    fn notify(
        &mut self,
        cx: &mut Context<'_>,
        group: &Bytes,
        left: Vec<(CpgAddress, Reason)>,
        joined: Vec<(CpgAddress, Reason)>,
        extra: Option<ConnId>,
    ) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let members: Vec<CpgAddress> = g.members.iter().copied().collect();
        let mut targets: Vec<ConnId> = g.local.values().copied().collect();
        if let Some(c) = extra
            && !targets.contains(&c)
        {
            targets.push(c);
        }
        for conn in targets {
            self.stats.confchg_callbacks += 1;
            cx.callback(
                conn,
                &Callback::ConfChg {
                    group: group.clone(),
                    members: members.clone(),
                    left: left.clone(),
                    joined: joined.clone(),
                },
            );
        }
    }

    fn drop_empty(&mut self, group: &[u8]) {
        if self
            .groups
            .get(group)
            .is_some_and(|g| g.members.is_empty() && g.local.is_empty())
        {
            self.groups.remove(group);
        }
    }

    fn deliver_join(&mut self, cx: &mut Context<'_>, node: NodeId, group: Bytes, pid: u32) {
        let addr = CpgAddress { node: node.0, pid };
        let g = self.groups.entry(group.clone()).or_default();
        if node == cx.node()
            && let Some(conn) = self.joining.remove(&(group.clone(), pid))
            && cx.is_open(conn)
        {
            g.local.insert(pid, conn);
        }
        if g.members.insert(addr) {
            self.notify(cx, &group, Vec::new(), vec![(addr, Reason::Join)], None);
        }
    }

    fn deliver_leave(
        &mut self,
        cx: &mut Context<'_>,
        node: NodeId,
        group: Bytes,
        pid: u32,
        why: Reason,
    ) {
        let addr = CpgAddress { node: node.0, pid };
        if let Some(sync) = &mut self.sync
            && let Some(learnt) = sync.learnt.get_mut(&group)
        {
            learnt.remove(&addr);
        }
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if !g.members.remove(&addr) {
            return;
        }
        let leaver = if node == cx.node() {
            g.local.remove(&pid)
        } else {
            None
        };
        self.notify(cx, &group, vec![(addr, why)], Vec::new(), leaver);
        if let Some(conn) = leaver
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.joined.remove(&group);
        }
        self.drop_empty(&group);
    }

    fn deliver_mcast(
        &mut self,
        cx: &mut Context<'_>,
        node: NodeId,
        group: &[u8],
        pid: u32,
        data: Bytes,
    ) {
        let sender = CpgAddress { node: node.0, pid };
        let Some(g) = self.groups.get(group) else {
            self.stats.dropped_from_non_members += 1;
            return;
        };
        if !g.members.contains(&sender) && !self.defects.deliver_from_non_members {
            // Sent in a view this node's view of the group does not continue (a merge).
            self.stats.dropped_from_non_members += 1;
            debug!(
                "CPG message from {}/{} to {:?} dropped: not a member of this node's view",
                sender.node,
                sender.pid,
                String::from_utf8_lossy(group)
            );
            return;
        }
        // The data moves into the last connection's packet; the others share it.
        let mut data = Some(data);
        let mut conns = g.local.values().peekable();
        while let Some(&conn) = conns.next() {
            self.stats.delivered += 1;
            let data = if conns.peek().is_some() {
                data.clone()
            } else {
                data.take()
            };
            cx.send(
                conn,
                Callback::deliver_packet(group, sender, data.unwrap_or_default()),
            );
        }
    }

    fn deliver_joinlist(
        &mut self,
        cx: &mut Context<'_>,
        node: NodeId,
        ring: RingId,
        entries: Vec<(Bytes, u32)>,
    ) {
        if !cx.members().contains(&node) || ring != cx.ring() {
            // From an earlier ring (its sync was aborted), or from a node that left.
            return;
        }
        let addrs = entries
            .into_iter()
            .map(|(group, pid)| (group, CpgAddress { node: node.0, pid }));
        if self.defects.no_sync {
            let mut learnt: BTreeMap<Bytes, BTreeSet<CpgAddress>> = BTreeMap::new();
            for (group, addr) in addrs {
                learnt.entry(group).or_default().insert(addr);
            }
            self.apply_learnt(cx, learnt);
            return;
        }
        let Some(sync) = &mut self.sync else { return };
        if sync.ring != ring {
            return;
        }
        for (group, addr) in addrs {
            sync.learnt.entry(group).or_default().insert(addr);
        }
    }

    /// Adds the processes a join list taught (reason `nodeup`), one change per group: the old
    /// design without a barrier, kept as a defect for the checker's tests.
    fn apply_learnt(
        &mut self,
        cx: &mut Context<'_>,
        learnt: BTreeMap<Bytes, BTreeSet<CpgAddress>>,
    ) {
        for (group, addrs) in learnt {
            let g = self.groups.entry(group.clone()).or_default();
            let joined: Vec<(CpgAddress, Reason)> = addrs
                .into_iter()
                .filter(|a| g.members.insert(*a))
                .map(|a| (a, Reason::NodeUp))
                .collect();
            if joined.is_empty() {
                self.drop_empty(&group);
            } else {
                self.notify(cx, &group, Vec::new(), joined, None);
            }
        }
    }

    /// At the barrier: every member's join list has been delivered, so each group is exactly
    /// what they said (with the leaves delivered since). Processes learnt are added (reason
    /// `nodeup`); processes no member listed are removed (reason `nodedown`: a node that
    /// restarted before the ring noticed it was gone does not list its old processes).
    fn rebuild(&mut self, cx: &mut Context<'_>, learnt: BTreeMap<Bytes, BTreeSet<CpgAddress>>) {
        let mut names: BTreeSet<Bytes> = self.groups.keys().cloned().collect();
        names.extend(learnt.keys().cloned());
        let me = cx.node().0;
        for name in names {
            let want = learnt.get(&name).cloned().unwrap_or_default();
            let g = self.groups.entry(name.clone()).or_default();
            let joined: Vec<(CpgAddress, Reason)> = want
                .difference(&g.members)
                .map(|a| (*a, Reason::NodeUp))
                .collect();
            let left: Vec<(CpgAddress, Reason)> = g
                .members
                .difference(&want)
                .map(|a| (*a, Reason::NodeDown))
                .collect();
            if joined.is_empty() && left.is_empty() {
                self.drop_empty(&name);
                continue;
            }
            g.members = want;
            let mut leavers = Vec::new();
            for (a, _) in &left {
                if a.node == me
                    && let Some(conn) = g.local.remove(&a.pid)
                {
                    leavers.push(conn);
                }
            }
            self.notify(cx, &name, left, joined, None);
            for conn in leavers {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.joined.remove(&name);
                }
            }
            self.drop_empty(&name);
        }
    }

    /// This node's join list: its processes in every group.
    fn joinlist(&self, cx: &Context<'_>) -> Bytes {
        let me = cx.node().0;
        let entries: Vec<(&Bytes, u32)> = self
            .groups
            .iter()
            .flat_map(|(name, g)| {
                g.members
                    .iter()
                    .filter(|a| a.node == me)
                    .map(move |a| (name, a.pid))
            })
            .collect();
        let ring = cx.ring();
        encode(&RingMessage::JoinList {
            rep: ring.rep.0,
            seq: ring.seq,
            entries: entries
                .into_iter()
                .map(|(name, pid)| (name.clone(), pid))
                .collect(),
        })
    }

    fn join(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, group: Bytes) {
        if let Err(e) = check_group(&group) {
            return cx.error(conn, id, e);
        }
        let Some(pid) = cx.pid(conn) else { return };
        let state = self.conns.entry(conn).or_default();
        if state.joined.contains(&group)
            || self.pid_conn(&group, pid).is_some()
            || self.joining.contains_key(&(group.clone(), pid))
        {
            return cx.error(conn, id, AisError::Exist);
        }
        let msg = encode(&RingMessage::Join {
            group: group.clone(),
            pid,
        });
        cx.submit_for(conn, id, ID, TAG_JOIN, DeliveryKind::Agreed, msg);
        let state = self.conns.entry(conn).or_default();
        state.joined.insert(group.clone());
        state.pending.insert(id, group.clone());
        self.joining.insert((group, pid), conn);
        self.own_in_flight += 1;
    }

    fn leave(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, group: Bytes) {
        if let Err(e) = check_group(&group) {
            return cx.error(conn, id, e);
        }
        let Some(pid) = cx.pid(conn) else { return };
        if self.pid_conn(&group, pid) != Some(conn) {
            // Not a member yet (or any more): a join still in flight cannot be left.
            let err = if self.joining.contains_key(&(group.clone(), pid)) {
                AisError::TryAgain
            } else {
                AisError::NotExist
            };
            return cx.error(conn, id, err);
        }
        let msg = encode(&RingMessage::Leave {
            group,
            pid,
            reason: Reason::Leave,
        });
        cx.submit_for(conn, id, ID, TAG_LEAVE, DeliveryKind::Agreed, msg);
        self.own_in_flight += 1;
    }

    fn mcast(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        group: Bytes,
        kind: DeliveryKind,
        data: Bytes,
    ) {
        let Some(pid) = cx.pid(conn) else { return };
        if !self
            .conns
            .get(&conn)
            .is_some_and(|c| c.joined.contains(&group))
        {
            return cx.error(conn, id, AisError::NotExist);
        }
        if cx.backlogged() {
            self.stats.refused_backlogged += 1;
            return cx.error(conn, id, AisError::TryAgain);
        }
        let msg = RingMessage::mcast_message(&group, pid, &data);
        cx.submit_for(conn, id, ID, TAG_MCAST, kind, msg);
    }
}

impl Cpg {
    fn mcast_batch(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        group: Bytes,
        kind: DeliveryKind,
        messages: Vec<Bytes>,
    ) {
        let Some(pid) = cx.pid(conn) else { return };
        if !self
            .conns
            .get(&conn)
            .is_some_and(|c| c.joined.contains(&group))
        {
            return cx.error(conn, id, AisError::NotExist);
        }
        if messages.is_empty() {
            return cx.reply(conn, id, Reply::Service(Response::Accepted(0)));
        }
        if cx.backlogged() {
            self.stats.refused_backlogged += 1;
            return cx.error(conn, id, AisError::TryAgain);
        }
        let msgs = messages
            .iter()
            .map(|data| RingMessage::mcast_message(&group, pid, data))
            .collect();
        cx.submit_batch_for(conn, id, ID, TAG_MCAST, kind, msgs);
    }
}

impl Service for Cpg {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        CpgProtocol::NAME
    }

    fn hello(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.conns.entry(conn).or_default();
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
            Request::Join { group } => self.join(cx, conn, id, group),
            Request::Leave { group } => self.leave(cx, conn, id, group),
            Request::Mcast {
                group,
                guarantee,
                data,
            } => self.mcast(cx, conn, id, group, delivery_kind(guarantee), data),
            Request::McastBatch {
                group,
                guarantee,
                messages,
            } => self.mcast_batch(cx, conn, id, group, delivery_kind(guarantee), messages),
            Request::Membership { group } => {
                let members = self
                    .groups
                    .get(&group)
                    .map(|g| g.members.iter().copied().collect())
                    .unwrap_or_default();
                cx.reply(conn, id, Reply::Service(Response::Members(members)));
            }
            Request::LocalGet => {
                let node = cx.node().0;
                cx.reply(conn, id, Reply::Service(Response::LocalNode(node)));
            }
            Request::FlowControlGet => {
                let blocked = cx.flow_blocked() || cx.backlogged();
                cx.reply(conn, id, Reply::Service(Response::FlowControl(blocked)));
            }
            Request::Groups => {
                let groups = self
                    .groups
                    .iter()
                    .filter(|(_, g)| !g.members.is_empty())
                    .map(|(name, g)| (name.clone(), g.members.iter().copied().collect()))
                    .collect();
                cx.reply(conn, id, Reply::Service(Response::Groups(groups)));
            }
        }
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
        if (tag == TAG_JOIN || tag == TAG_LEAVE) && result.is_err() {
            self.own_op_done();
        }
        if tag == TAG_JOIN
            && let Some(state) = self.conns.get_mut(&conn)
            && let Some(group) = state.pending.remove(&id)
            && result.is_err()
        {
            // Refused: undo the bookkeeping, the client retries.
            state.joined.remove(&group);
            if let Some(pid) = cx.pid(conn) {
                self.joining.remove(&(group, pid));
            }
        }
        cx.reply(conn, id, submit_reply::<Response>(result));
    }

    /// Answers how many of a batch Totem took ([`Response::Accepted`]), or TRY_AGAIN when
    /// none.
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
            (0, Some(e)) => submit_reply(Err(e)),
            (n, _) => Reply::Service(Response::Accepted(u32::try_from(n).unwrap_or(u32::MAX))),
        };
        cx.reply(conn, id, resp);
    }

    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        // The per-message path: read in place; the group name is copied out (at most 128
        // bytes) and the body, advanced to the data, becomes the callback's payload: nothing
        // decoded into a value, no reference count touched.
        if let Some(mcast) = McastRef::parse(kind, &body) {
            let McastRef { group, pid, data } = mcast?;
            let mut name = [0u8; MAX_GROUP_NAME];
            name[..group.len()].copy_from_slice(group);
            let name = &name[..group.len()];
            let skip = body.len() - data.len();
            let mut data = body;
            data.advance(skip);
            self.deliver_mcast(cx, sender, name, pid, data);
            return Ok(());
        }
        match decode_body(kind, body)? {
            RingMessage::Join { group, pid } => {
                if sender == cx.node() {
                    self.own_op_done();
                }
                self.deliver_join(cx, sender, group, pid);
            }
            RingMessage::Leave { group, pid, reason } => {
                if sender == cx.node() {
                    self.own_op_done();
                }
                self.deliver_leave(cx, sender, group, pid, reason);
            }
            RingMessage::Mcast { group, pid, data } => {
                // Read in place above; kept so that every decoded message is handled.
                self.deliver_mcast(cx, sender, &group, pid, data);
            }
            RingMessage::JoinList { rep, seq, entries } => {
                let ring = RingId {
                    rep: NodeId(rep),
                    seq,
                };
                self.deliver_joinlist(cx, sender, ring, entries);
            }
        }
        Ok(())
    }

    /// Processes of nodes that are not in the new configuration leave their groups: at the
    /// transitional configuration already (the nodes this node goes on with from its old ring:
    /// in extended virtual synchrony the others failed for it, also when they are in the new
    /// ring, as after this node's own pause), and at the regular one.
    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange) {
        let names: Vec<Bytes> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(g) = self.groups.get_mut(&name) else {
                continue;
            };
            let gone: Vec<CpgAddress> = g
                .members
                .iter()
                .filter(|a| !change.members.contains(&NodeId(a.node)))
                .copied()
                .collect();
            if gone.is_empty() {
                continue;
            }
            for a in &gone {
                g.members.remove(a);
            }
            let left = gone.into_iter().map(|a| (a, Reason::NodeDown)).collect();
            self.notify(cx, &name, left, Vec::new(), None);
            self.drop_empty(&name);
        }
        if self.defects.no_sync && change.kind == ConfigKind::Regular {
            let msg = self.joinlist(cx);
            cx.submit_internal(DeliveryKind::Agreed, msg);
        }
    }

    fn syncs(&self) -> bool {
        !self.defects.no_sync
    }

    fn sync_init(&mut self, cx: &mut Context<'_>) {
        self.sync = Some(SyncState {
            ring: cx.ring(),
            ..SyncState::default()
        });
    }

    fn sync_process(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sync) = &self.sync else { return true };
        if sync.sent {
            return true;
        }
        if self.own_in_flight > 0 {
            // Its join list must come after them in the total order.
            return false;
        }
        let msg = self.joinlist(cx);
        cx.submit_internal(DeliveryKind::Agreed, msg);
        if let Some(sync) = &mut self.sync {
            sync.sent = true;
        }
        true
    }

    fn sync_activate(&mut self, cx: &mut Context<'_>) {
        if let Some(sync) = self.sync.take() {
            self.rebuild(cx, sync.learnt);
        }
    }

    fn sync_abort(&mut self, _cx: &mut Context<'_>) {
        self.sync = None;
    }

    fn conn_closed(&mut self, cx: &mut Context<'_>, conn: ConnId) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        let Some(pid) = cx.pid(conn) else { return };
        for group in state.joined {
            // Stop callbacks at once; the others learn it through the ordered leave.
            if let Some(g) = self.groups.get_mut(&group)
                && g.local.get(&pid) == Some(&conn)
            {
                g.local.remove(&pid);
            }
            self.joining.remove(&(group.clone(), pid));
            let msg = encode(&RingMessage::Leave {
                group: group.clone(),
                pid,
                reason: Reason::ProcDown,
            });
            cx.submit_internal(DeliveryKind::Agreed, msg);
            self.own_in_flight += 1;
        }
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("cpg_groups", self.groups.len() as u64);
        v.gauge(
            "cpg_local_members",
            self.groups.values().map(|g| g.local.len() as u64).sum(),
        );
        self.stats.visit(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::testkit::{TestNode, TestRing};
    use ais_proto::ipc::Guarantee;

    fn ring(n: u32) -> TestRing {
        let mut r = TestRing::new(n, || vec![Box::new(Cpg::new()) as Box<dyn Service + Send>]);
        r.flush(); // the first sync
        r
    }

    fn g() -> Bytes {
        Bytes::from_static(b"g")
    }

    fn p(node: u32, pid: u32) -> CpgAddress {
        CpgAddress { node, pid }
    }

    /// Members, joined, left.
    type ViewChange = (
        Vec<CpgAddress>,
        Vec<(CpgAddress, Reason)>,
        Vec<(CpgAddress, Reason)>,
    );

    /// (members, joined, left) of every configuration-change callback, and every delivery's
    /// (sender, data), for `conn`.
    #[derive(Debug, Default)]
    struct Told {
        views: Vec<ViewChange>,
        deliveries: Vec<(CpgAddress, Bytes)>,
        replies: Vec<(u64, Reply<Response>)>,
    }

    fn told(n: &mut TestNode, conn: ConnId) -> Told {
        let mut t = Told::default();
        for e in n.take() {
            match (e.callback(), e.reply()) {
                (
                    Some((
                        c,
                        Callback::ConfChg {
                            members,
                            joined,
                            left,
                            ..
                        },
                    )),
                    _,
                ) if c == conn => t.views.push((members, joined, left)),
                (Some((c, Callback::Deliver { sender, data, .. })), _) if c == conn => {
                    t.deliveries.push((sender, data));
                }
                (_, Some((c, id, resp))) if c == conn => t.replies.push((id, resp)),
                _ => {}
            }
        }
        t
    }

    fn join(r: &mut TestRing, node: u32, conn: ConnId, pid: u32) {
        let n = r.node(node);
        n.connect(conn, pid, ID);
        n.core.request_value(conn, 1, &Request::Join { group: g() });
        r.flush();
    }

    fn mcast(r: &mut TestRing, node: u32, conn: ConnId, data: &'static [u8]) {
        r.node(node).core.request_value(
            conn,
            9,
            &Request::Mcast {
                group: g(),
                guarantee: Guarantee::Agreed,
                data: Bytes::from_static(data),
            },
        );
        r.flush();
    }

    #[test]
    fn join_send_and_leave_between_two_nodes() {
        let mut r = ring(2);
        join(&mut r, 1, 1, 100);
        let t = told(r.node(1), 1);
        assert_eq!(t.replies, [(1, Reply::Ok)]);
        assert_eq!(
            t.views,
            [(vec![p(1, 100)], vec![(p(1, 100), Reason::Join)], vec![])]
        );
        join(&mut r, 2, 1, 200);
        let both = vec![p(1, 100), p(2, 200)];
        assert_eq!(told(r.node(1), 1).views[0].0, both);
        assert_eq!(told(r.node(2), 1).views[0].0, both);
        mcast(&mut r, 1, 1, b"hello");
        for id in [1, 2] {
            assert_eq!(
                told(r.node(id), 1).deliveries,
                [(p(1, 100), Bytes::from_static(b"hello"))]
            );
        }
        r.node(2)
            .core
            .request_value(1, 3, &Request::Leave { group: g() });
        r.flush();
        let gone = (vec![p(1, 100)], vec![], vec![(p(2, 200), Reason::Leave)]);
        assert_eq!(told(r.node(1), 1).views, std::slice::from_ref(&gone));
        // The leaver is told too, as its last callback for the group.
        assert_eq!(told(r.node(2), 1).views, [gone]);
        mcast(&mut r, 1, 1, b"after");
        assert!(told(r.node(2), 1).deliveries.is_empty());
    }

    /// A client's outbox above the high-water mark at node 1: node 1's clients are refused
    /// at once, node 2's once node 1's `Backlog` message is delivered; below the low-water
    /// mark both send again. A node that leaves the ring backlogged holds no one.
    #[test]
    fn a_backlogged_outbox_refuses_multicasts_at_every_member() {
        use crate::exec::flow::OutboxDepth;
        let mut r = ring(3);
        join(&mut r, 1, 1, 100);
        join(&mut r, 2, 1, 200);
        let _ = (told(r.node(1), 1), told(r.node(2), 1));
        let depth = |packets, taken| OutboxDepth {
            conn: 1,
            packets,
            bytes: packets * 1000,
            taken,
        };
        let n1 = r.node(1);
        n1.core.tick(1_000);
        n1.core.outboxes(&[depth(5000, 10)]);
        assert!(n1.core.backlogged());
        // Node 1 refuses before the ring knows; node 2 does not know yet.
        n1.core.request_value(
            1,
            20,
            &Request::Mcast {
                group: g(),
                guarantee: Guarantee::Agreed,
                data: Bytes::from_static(b"x"),
            },
        );
        assert_eq!(
            told(r.node(1), 1).replies,
            [(20, Reply::Error(AisError::TryAgain))]
        );
        assert!(!r.node(2).core.backlogged());
        r.flush();
        assert!(r.node(2).core.backlogged());
        let batch = Request::McastBatch {
            group: g(),
            guarantee: Guarantee::Agreed,
            messages: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        };
        r.node(2).core.request_value(1, 21, &batch);
        r.flush();
        let t = told(r.node(2), 1);
        assert_eq!(t.replies, [(21, Reply::Error(AisError::TryAgain))]);
        assert!(t.deliveries.is_empty());
        r.node(2)
            .core
            .request_value(1, 22, &Request::FlowControlGet);
        assert_eq!(
            told(r.node(2), 1).replies,
            [(22, Reply::Service(Response::FlowControl(true)))]
        );
        // Drained below the low-water mark: everyone sends again.
        let n1 = r.node(1);
        n1.core.tick(2_000);
        n1.core.outboxes(&[depth(3, 5007)]);
        r.flush();
        assert!(!r.node(1).core.backlogged());
        assert!(!r.node(2).core.backlogged());
        r.node(2).core.request_value(1, 23, &batch);
        r.flush();
        assert_eq!(
            told(r.node(2), 1).replies,
            [(23, Reply::Service(Response::Accepted(2)))]
        );
        assert_eq!(told(r.node(1), 1).deliveries.len(), 2);
        // Backlogged again, then node 1 leaves the ring: the others forget it.
        let n1 = r.node(1);
        n1.core.tick(3_000);
        n1.core.outboxes(&[depth(5000, 6000)]);
        r.flush();
        assert!(r.node(2).core.backlogged());
        r.config(&[2, 3], &[2, 3]);
        assert!(!r.node(2).core.backlogged());
        assert!(!r.node(3).core.backlogged());
        let mut stats = dataplane::stats::Collect::default();
        r.node(2).core.visit(&mut stats);
        let refused = stats
            .0
            .iter()
            .find(|(name, _, _)| *name == "cpg_mcast_refused_backlogged")
            .map(|(_, _, v)| *v);
        assert_eq!(refused, Some(1));
    }

    #[test]
    fn a_dead_client_leaves_with_procdown() {
        let mut r = ring(2);
        join(&mut r, 1, 1, 100);
        join(&mut r, 2, 1, 200);
        let _ = told(r.node(1), 1);
        r.node(2).core.disconnected(1);
        r.flush();
        assert_eq!(
            told(r.node(1), 1).views,
            [(vec![p(1, 100)], vec![], vec![(p(2, 200), Reason::ProcDown)])]
        );
    }

    #[test]
    fn a_message_from_outside_the_view_is_not_delivered() {
        let mut r = ring(2);
        join(&mut r, 1, 1, 100);
        let _ = told(r.node(1), 1);
        // Node 2's process 999 never joined (as after a merge, before the barrier).
        r.inject(
            2,
            encode(&RingMessage::Mcast {
                group: g(),
                pid: 999,
                data: Bytes::from_static(b"stray"),
            }),
        );
        assert!(told(r.node(1), 1).deliveries.is_empty());
        let mut stats = dataplane::stats::Collect::default();
        r.node(1).core.visit(&mut stats);
        assert_eq!(stats.get("cpg_dropped_from_non_members"), Some(1));
    }

    #[test]
    fn the_old_defect_delivers_it() {
        let mut r = TestRing::new(2, || {
            vec![Box::new(Cpg::with_defects(Defects {
                deliver_from_non_members: true,
                no_sync: false,
            })) as Box<dyn Service + Send>]
        });
        r.flush();
        join(&mut r, 1, 1, 100);
        let _ = told(r.node(1), 1);
        r.inject(
            2,
            encode(&RingMessage::Mcast {
                group: g(),
                pid: 999,
                data: Bytes::from_static(b"stray"),
            }),
        );
        assert_eq!(told(r.node(1), 1).deliveries.len(), 1);
    }

    #[test]
    fn nodedown_at_the_configuration_then_nodeup_at_the_barrier() {
        let mut r = ring(2);
        join(&mut r, 1, 1, 100);
        join(&mut r, 2, 1, 200);
        let _ = (told(r.node(1), 1), told(r.node(2), 1));
        // Node 2 alone, then back.
        r.config(&[1], &[1]);
        r.config(&[2], &[2]);
        assert_eq!(
            told(r.node(1), 1).views,
            [(vec![p(1, 100)], vec![], vec![(p(2, 200), Reason::NodeDown)])]
        );
        assert_eq!(
            told(r.node(2), 1).views,
            [(vec![p(2, 200)], vec![], vec![(p(1, 100), Reason::NodeDown)])]
        );
        r.config(&[1, 2], &[1, 2]);
        assert!(
            told(r.node(1), 1).views.is_empty(),
            "nothing before the barrier"
        );
        r.flush();
        assert_eq!(
            told(r.node(1), 1).views,
            [(
                vec![p(1, 100), p(2, 200)],
                vec![(p(2, 200), Reason::NodeUp)],
                vec![]
            )]
        );
        assert_eq!(
            told(r.node(2), 1).views,
            [(
                vec![p(1, 100), p(2, 200)],
                vec![(p(1, 100), Reason::NodeUp)],
                vec![]
            )]
        );
    }

    /// A node back from a pause: the others went on without it and took it back, so its next
    /// ring has the same members, but its transitional configuration is itself alone. Its
    /// clients see the others go (the others are removing its processes meanwhile) and come
    /// back at the barrier; before, they kept a view the others no longer shared, and its own
    /// messages, which the others dropped, were delivered to it in that view.
    #[test]
    fn a_transitional_configuration_alone_tells_the_others_gone() {
        let mut r = ring(2);
        join(&mut r, 1, 1, 100);
        join(&mut r, 2, 1, 200);
        let _ = (told(r.node(1), 1), told(r.node(2), 1));
        r.config(&[2], &[1, 2]);
        assert_eq!(
            told(r.node(2), 1).views,
            [(vec![p(2, 200)], vec![], vec![(p(1, 100), Reason::NodeDown)])]
        );
    }

    #[test]
    fn a_restarted_node_leaves_no_ghosts() {
        let mut r = ring(2);
        join(&mut r, 1, 1, 100);
        join(&mut r, 2, 1, 200);
        let _ = told(r.node(1), 1);
        // Node 2 restarts before the ring noticed: a new core, its process gone, and a new
        // ring that still has both nodes.
        r.nodes[1] = TestNode::new(2, vec![Box::new(Cpg::new())]);
        r.config(&[1, 2], &[1, 2]);
        r.flush();
        assert_eq!(
            told(r.node(1), 1).views,
            [(vec![p(1, 100)], vec![], vec![(p(2, 200), Reason::NodeDown)])]
        );
    }

    #[test]
    fn requests_wait_while_cpg_is_synchronised() {
        let mut r = ring(2);
        r.node(1).connect(1, 100, ID);
        r.config(&[1, 2], &[1, 2]);
        r.node(1)
            .core
            .request_value(1, 5, &Request::Join { group: g() });
        r.node(1).run();
        assert!(told(r.node(1), 1).replies.is_empty(), "held");
        r.flush();
        assert_eq!(told(r.node(1), 1).replies, [(5, Reply::Ok)]);
    }

    #[test]
    fn the_join_list_comes_after_this_nodes_joins_in_flight() {
        let mut r = ring(2);
        r.node(1).connect(1, 100, ID);
        r.node(1)
            .core
            .request_value(1, 5, &Request::Join { group: g() });
        r.node(1).run();
        // The join is submitted but not yet ordered when the ring changes.
        r.config(&[1, 2], &[1, 2]);
        r.flush();
        // Node 2 learnt node 1's process from the join itself, and the join list agreed.
        assert_eq!(r.node(2).core.core_counters().syncs_completed, 2);
        r.node(2).connect(1, 200, ID);
        r.node(2)
            .core
            .request_value(1, 6, &Request::Membership { group: g() });
        r.node(2).run();
        assert_eq!(
            told(r.node(2), 1).replies,
            [(6, Reply::Service(Response::Members(vec![p(1, 100)])))]
        );
    }

    #[test]
    fn a_leave_during_the_sync_strikes_the_join_list() {
        let mut r = ring(2);
        join(&mut r, 2, 1, 200);
        r.config(&[1], &[1]);
        r.config(&[2], &[2]);
        r.config(&[1, 2], &[1, 2]);
        // Node 2's process dies while the join lists are in flight.
        r.node(2).core.disconnected(1);
        r.flush();
        r.node(1).connect(1, 100, ID);
        r.node(1).core.request_value(1, 6, &Request::Groups);
        r.node(1).run();
        assert_eq!(
            told(r.node(1), 1).replies,
            [(6, Reply::Service(Response::Groups(vec![])))],
            "no ghost of the dead process"
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let mut cpg = Cpg::new();
        let mut effects = std::collections::VecDeque::new();
        let mut internal = std::collections::VecDeque::new();
        let conns = BTreeMap::new();
        let mut quorate = true;
        let mut votes = None;
        let mut cx = crate::exec::Context::for_tests(
            NodeId(1),
            &conns,
            &mut effects,
            &mut internal,
            &mut quorate,
            &mut votes,
        );
        for (kind, body) in [
            (1, &b"\x01g"[..]),                     // join, cut short
            (2, &b"\x01g\x00\x00\x00\x01\x09"[..]), // leave, reason 9
            (4, &b"\x00"[..]),                      // join list, cut short
            (77, &b""[..]),
        ] {
            assert!(
                cpg.exec_deliver(&mut cx, NodeId(2), kind, Bytes::copy_from_slice(body))
                    .is_err(),
                "kind {kind} with {body:?}"
            );
        }
    }
}
