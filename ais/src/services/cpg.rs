//! CPG, closed process groups: processes join named groups, every member sees the same
//! membership changes and the same messages in the same order.
//!
//! A member is a process, named by its node and pid ([`CpgAddress`]). Every change of a
//! group's membership is a Totem message, so every node applies it at the same point in the
//! total order:
//! - `JOIN {group, pid}` and `LEAVE {group, pid, reason}` from the member's node (reason
//!   `leave` when asked, `procdown` when its connection closed);
//! - `MCAST {group, pid, data}` is delivered to this node's members of the group;
//! - a regular configuration removes the members of nodes that are no longer in it (reason
//!   `nodedown`), then every node sends a `JOINLIST` of its own members (the sync step), which
//!   teaches the nodes that just joined (and the other side of a healed partition) who is
//!   where (reason `nodeup`).
//!
//! Each change is told to this node's members of the group as a configuration-change
//! callback with the full member list and who joined or left, and why; a leaving member gets
//! that callback too, as the last one for the group.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use totem_dpdk::srp::{ConfigChange, ConfigKind, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId};

use super::delivery_kind;
use crate::exec::{ConnId, Context, Service, ServiceId, exec_message, submit_response};
use crate::ipc::codec::{DecodeError, Reader, Writer};
use crate::ipc::proto::{AisError, Callback, CpgAddress, Reason, Request, Response, check_group};

const JOIN: u16 = 1;
const LEAVE: u16 = 2;
const MCAST: u16 = 3;
const JOINLIST: u16 = 4;

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

/// The CPG service.
#[derive(Debug, Default)]
pub struct Cpg {
    groups: BTreeMap<Bytes, Group>,
    conns: HashMap<ConnId, ConnState>,
    /// Joins submitted by this node and not yet delivered: (group, pid) → connection.
    joining: HashMap<(Bytes, u32), ConnId>,
    delivered: u64,
    confchgs: u64,
}

fn encode(kind: u16, group: &[u8], pid: u32, extra: impl FnOnce(&mut Writer)) -> Bytes {
    let mut w = Writer::with_capacity(group.len() + 16);
    w.short_bytes(group).u32(pid);
    extra(&mut w);
    exec_message(ServiceId::Cpg, kind, &w.finish())
}

impl Cpg {
    /// An empty CPG service.
    pub fn new() -> Cpg {
        Cpg::default()
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
            self.confchgs += 1;
            cx.callback(
                conn,
                Callback::CpgConfChg {
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
        group: Bytes,
        pid: u32,
        data: Bytes,
    ) {
        let Some(g) = self.groups.get(&group) else {
            return;
        };
        let sender = CpgAddress { node: node.0, pid };
        for &conn in g.local.values() {
            self.delivered += 1;
            cx.callback(
                conn,
                Callback::CpgDeliver {
                    group: group.clone(),
                    sender,
                    data: data.clone(),
                },
            );
        }
    }

    fn deliver_joinlist(&mut self, cx: &mut Context<'_>, node: NodeId, entries: Vec<(Bytes, u32)>) {
        if !cx.members().contains(&node) {
            return;
        }
        let mut changed: BTreeMap<Bytes, Vec<(CpgAddress, Reason)>> = BTreeMap::new();
        for (group, pid) in entries {
            let addr = CpgAddress { node: node.0, pid };
            if self
                .groups
                .entry(group.clone())
                .or_default()
                .members
                .insert(addr)
            {
                changed
                    .entry(group)
                    .or_default()
                    .push((addr, Reason::NodeUp));
            }
        }
        for (group, joined) in changed {
            self.notify(cx, &group, Vec::new(), joined, None);
        }
    }

    fn join(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, group: Bytes) {
        if let Err(e) = check_group(&group) {
            return cx.reply(conn, id, Response::Error(e));
        }
        let Some(pid) = cx.pid(conn) else { return };
        let state = self.conns.entry(conn).or_default();
        if state.joined.contains(&group)
            || self.pid_conn(&group, pid).is_some()
            || self.joining.contains_key(&(group.clone(), pid))
        {
            return cx.reply(conn, id, Response::Error(AisError::Exist));
        }
        let msg = encode(JOIN, &group, pid, |_| {});
        if cx.submit_for(
            conn,
            id,
            ServiceId::Cpg,
            TAG_JOIN,
            DeliveryKind::Agreed,
            msg,
        ) {
            let state = self.conns.entry(conn).or_default();
            state.joined.insert(group.clone());
            state.pending.insert(id, group.clone());
            self.joining.insert((group, pid), conn);
        } else {
            cx.reply(conn, id, Response::Error(AisError::TryAgain));
        }
    }

    fn leave(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, group: Bytes) {
        if let Err(e) = check_group(&group) {
            return cx.reply(conn, id, Response::Error(e));
        }
        let Some(pid) = cx.pid(conn) else { return };
        if self.pid_conn(&group, pid) != Some(conn) {
            // Not a member yet (or any more): a join still in flight cannot be left.
            let err = if self.joining.contains_key(&(group.clone(), pid)) {
                AisError::TryAgain
            } else {
                AisError::NotExist
            };
            return cx.reply(conn, id, Response::Error(err));
        }
        let msg = encode(LEAVE, &group, pid, |w| {
            w.u8(Reason::Leave.code());
        });
        if !cx.submit_for(
            conn,
            id,
            ServiceId::Cpg,
            TAG_LEAVE,
            DeliveryKind::Agreed,
            msg,
        ) {
            cx.reply(conn, id, Response::Error(AisError::TryAgain));
        }
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
            return cx.reply(conn, id, Response::Error(AisError::NotExist));
        }
        let mut w = Writer::with_capacity(group.len() + 8 + data.len());
        w.short_bytes(&group).u32(pid).raw(&data);
        let msg = exec_message(ServiceId::Cpg, MCAST, &w.finish());
        if !cx.submit_for(conn, id, ServiceId::Cpg, TAG_MCAST, kind, msg) {
            cx.reply(conn, id, Response::Error(AisError::TryAgain));
        }
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
            return cx.reply(conn, id, Response::Error(AisError::NotExist));
        }
        if messages.is_empty() {
            return cx.reply(conn, id, Response::Accepted(0));
        }
        let msgs = messages
            .iter()
            .map(|data| {
                let mut w = Writer::with_capacity(group.len() + 8 + data.len());
                w.short_bytes(&group).u32(pid).raw(data);
                exec_message(ServiceId::Cpg, MCAST, &w.finish())
            })
            .collect();
        if !cx.submit_batch_for(conn, id, ServiceId::Cpg, TAG_MCAST, kind, msgs) {
            cx.reply(conn, id, Response::Error(AisError::TryAgain));
        }
    }
}

impl Service for Cpg {
    fn id(&self) -> ServiceId {
        ServiceId::Cpg
    }

    fn hello(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.conns.entry(conn).or_default();
    }

    fn lib_request(&mut self, cx: &mut Context<'_>, conn: ConnId, id: u64, req: Request) {
        match req {
            Request::CpgJoin { group } => self.join(cx, conn, id, group),
            Request::CpgLeave { group } => self.leave(cx, conn, id, group),
            Request::CpgMcast {
                group,
                guarantee,
                data,
            } => self.mcast(cx, conn, id, group, delivery_kind(guarantee), data),
            Request::CpgMcastBatch {
                group,
                guarantee,
                messages,
            } => self.mcast_batch(cx, conn, id, group, delivery_kind(guarantee), messages),
            Request::CpgMembership { group } => {
                let members = self
                    .groups
                    .get(&group)
                    .map(|g| g.members.iter().copied().collect())
                    .unwrap_or_default();
                cx.reply(conn, id, Response::CpgMembers(members));
            }
            Request::CpgLocalGet => {
                let node = cx.node().0;
                cx.reply(conn, id, Response::LocalNode(node));
            }
            Request::CpgFlowControlGet => {
                let blocked = cx.flow_blocked();
                cx.reply(conn, id, Response::FlowControl(blocked));
            }
            Request::CpgGroups => {
                let groups = self
                    .groups
                    .iter()
                    .filter(|(_, g)| !g.members.is_empty())
                    .map(|(name, g)| (name.clone(), g.members.iter().copied().collect()))
                    .collect();
                cx.reply(conn, id, Response::CpgGroups(groups));
            }
            _ => cx.reply(conn, id, Response::Error(AisError::BadOperation)),
        }
    }

    fn submitted(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        tag: u64,
        result: Result<MsgId, SubmitError>,
    ) {
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
        cx.reply(conn, id, submit_response(result));
    }

    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(body);
        match kind {
            JOIN => {
                let group = r.short_bytes("group")?;
                let pid = r.u32("pid")?;
                r.end()?;
                self.deliver_join(cx, sender, group, pid);
            }
            LEAVE => {
                let group = r.short_bytes("group")?;
                let pid = r.u32("pid")?;
                let why = Reason::from_code(r.u8("reason")?)?;
                r.end()?;
                self.deliver_leave(cx, sender, group, pid, why);
            }
            MCAST => {
                let group = r.short_bytes("group")?;
                let pid = r.u32("pid")?;
                let data = r.rest();
                self.deliver_mcast(cx, sender, group, pid, data);
            }
            JOINLIST => {
                let n = r.count("entries", 6)?;
                let entries = (0..n)
                    .map(|_| Ok((r.short_bytes("group")?, r.u32("pid")?)))
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                r.end()?;
                self.deliver_joinlist(cx, sender, entries);
            }
            other => {
                return Err(DecodeError::Unknown {
                    what: "CPG message",
                    value: u64::from(other),
                });
            }
        }
        Ok(())
    }

    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange) {
        if change.kind != ConfigKind::Regular {
            return;
        }
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
    }

    fn sync(&mut self, cx: &mut Context<'_>) {
        let me = cx.node().0;
        let mut w = Writer::with_capacity(64);
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
        w.count(entries.len());
        for (name, pid) in entries {
            w.short_bytes(name).u32(pid);
        }
        cx.submit_internal(
            DeliveryKind::Agreed,
            exec_message(ServiceId::Cpg, JOINLIST, &w.finish()),
        );
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
            let msg = encode(LEAVE, &group, pid, |w| {
                w.u8(Reason::ProcDown.code());
            });
            cx.submit_internal(DeliveryKind::Agreed, msg);
        }
    }

    fn counters(&self, out: &mut Vec<(&'static str, u64)>) {
        out.push(("cpg_groups", self.groups.len() as u64));
        out.push((
            "cpg_local_members",
            self.groups.values().map(|g| g.local.len() as u64).sum(),
        ));
        out.push(("cpg_delivered", self.delivered));
        out.push(("cpg_confchg_callbacks", self.confchgs));
    }
}
