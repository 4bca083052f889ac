//! CLM, SA Forum cluster membership (B.01.01 semantics), on Totem configurations.
//!
//! A view is a regular configuration: its number is the ring's sequence number / 4 (the same
//! at every member, as in openais), its nodes the members. What Totem does not know (a node's
//! name, address and boot time) each node says itself: in the service sync after every
//! regular configuration each member sends its record (`ais_proto::clm::RingMessage`, tagged
//! with the ring), and at the barrier every member builds the view from the records
//! delivered, so every member of a configuration shows the same view. A node's
//! `initial_view_number` is the first view it was a member of, as it says itself.
//!
//! Against the previous view, a node is `Joined` (new), `Left` (gone, `member` false) or
//! `Reconfigured` (its record changed: it restarted in between). Tracking connections get a
//! callback when anything changed: with `CHANGES` every member and every change, with
//! `CHANGES_ONLY` the changes only; `CURRENT` answers the view at once. Requests wait while
//! the service synchronises (the framework holds them), so a client never sees a half-built
//! view.

pub mod checker;

use std::collections::BTreeMap;

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::ConfigChange;
use totem_dpdk::{DeliveryKind, NodeId, RingId};
use tracing::{info, warn};

use crate::exec::{ConnId, Context, Service, ServiceId};
use ais_proto::clm::{
    Callback, Change, ClmProtocol, ClusterNode, LOCAL_NODE_ID, NodeAddress, Request, Response,
    RingMessage, TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT, View,
};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{AisError, Protocol, Reply, decode_body};
use ais_proto::ring;

const ID: ServiceId = ClmProtocol::ID;

/// What this node says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClmConfig {
    /// Its name (the host name unless configured).
    pub name: Bytes,
    /// The address its Totem frames come from.
    pub address: NodeAddress,
    /// When it booted, nanoseconds since the UNIX epoch.
    pub boot_timestamp: u64,
}

/// Deliberate defects, for the tests that prove the CLM checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClmDefects {
    /// Show another node's `initial_view_number` as the view in which this node first saw it,
    /// instead of what the node says (members then disagree after a merge).
    pub local_initial_view: bool,
}

/// The CLM service.
#[derive(Debug)]
pub struct Clm {
    me: ClmConfig,
    defects: ClmDefects,
    /// The first view this node was a member of.
    initial_view: Option<u64>,
    /// The ring being synchronised and the records delivered for it.
    syncing: Option<(RingId, BTreeMap<u32, ClusterNode>)>,
    view_number: u64,
    /// The current view's members.
    nodes: BTreeMap<u32, ClusterNode>,
    /// With the defect: when this node first saw each node.
    first_seen: BTreeMap<u32, u64>,
    /// Tracking connections and their flags (`CHANGES` or `CHANGES_ONLY`).
    trackers: BTreeMap<ConnId, u8>,
    views: u64,
}

impl Clm {
    /// The service, with what this node says of itself.
    pub fn new(me: ClmConfig) -> Clm {
        Clm::with_defects(me, ClmDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(me: ClmConfig, defects: ClmDefects) -> Clm {
        Clm {
            me,
            defects,
            initial_view: None,
            syncing: None,
            view_number: 0,
            nodes: BTreeMap::new(),
            first_seen: BTreeMap::new(),
            trackers: BTreeMap::new(),
            views: 0,
        }
    }

    /// This node's record (`member`: whether it is in the current view).
    fn own(&self, node: NodeId, view_number: u64) -> ClusterNode {
        ClusterNode {
            node_id: node.0,
            address: self.me.address.clone(),
            name: self.me.name.clone(),
            member: self.nodes.contains_key(&node.0),
            boot_timestamp: self.me.boot_timestamp,
            initial_view_number: self.initial_view.unwrap_or(view_number),
        }
    }

    fn current(&self) -> View {
        View {
            view_number: self.view_number,
            items: self
                .nodes
                .values()
                .map(|n| (n.clone(), Change::NoChange))
                .collect(),
            members: self.nodes.len() as u32,
        }
    }

    fn node_get(&self, cx: &Context<'_>, node_id: u32) -> Result<ClusterNode, AisError> {
        let id = if node_id == LOCAL_NODE_ID {
            cx.node().0
        } else {
            node_id
        };
        match self.nodes.get(&id) {
            Some(n) => Ok(n.clone()),
            None if id == cx.node().0 => Ok(self.own(cx.node(), self.view_number)),
            None => Err(AisError::NotExist),
        }
    }
}

impl Service for Clm {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        ClmProtocol::NAME
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
            Request::Track { flags } => {
                let changes = flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY);
                if flags == 0
                    || flags & !(TRACK_CURRENT | TRACK_CHANGES | TRACK_CHANGES_ONLY) != 0
                    || changes == TRACK_CHANGES | TRACK_CHANGES_ONLY
                {
                    cx.error(conn, id, AisError::BadFlags);
                    return Ok(());
                }
                if changes != 0 {
                    self.trackers.insert(conn, changes);
                }
                if flags & TRACK_CURRENT != 0 {
                    cx.reply(conn, id, Reply::Service(Response::View(self.current())));
                } else {
                    cx.ok(conn, id);
                }
            }
            Request::TrackStop => {
                if self.trackers.remove(&conn).is_some() {
                    cx.ok(conn, id);
                } else {
                    cx.error(conn, id, AisError::NotExist);
                }
            }
            Request::NodeGet { node_id } => match self.node_get(cx, node_id) {
                Ok(n) => cx.reply(conn, id, Reply::Service(Response::Node(n))),
                Err(e) => cx.error(conn, id, e),
            },
            Request::NodeGetAsync {
                node_id,
                invocation,
            } => {
                let result = self.node_get(cx, node_id);
                cx.ok(conn, id);
                cx.callback(conn, &Callback::NodeGet { invocation, result });
            }
        }
        Ok(())
    }

    fn exec_deliver(
        &mut self,
        _cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        let RingMessage::NodeJoin { rep, seq, node } = decode_body(kind, body)?;
        if node.node_id != sender.0 {
            return Err(DecodeError::Invalid {
                field: "node id",
                why: "a record of another node than its sender",
            });
        }
        let this_ring = RingId {
            rep: NodeId(rep),
            seq,
        };
        if let Some((ring, got)) = &mut self.syncing
            && *ring == this_ring
        {
            got.insert(sender.0, node);
        }
        // A record of an aborted sync (another ring) is stale: ignored.
        Ok(())
    }

    fn confchg(&mut self, _cx: &mut Context<'_>, _change: &ConfigChange) {}

    fn syncs(&self) -> bool {
        true
    }

    fn sync_init(&mut self, cx: &mut Context<'_>) {
        let ring = cx.ring();
        self.syncing = Some((ring, BTreeMap::new()));
        let mut node = self.own(cx.node(), ring.seq / 4);
        node.member = true;
        let msg = RingMessage::NodeJoin {
            rep: ring.rep.0,
            seq: ring.seq,
            node,
        };
        cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &msg));
    }

    fn sync_activate(&mut self, cx: &mut Context<'_>) {
        let Some((ring, got)) = self.syncing.take() else {
            return;
        };
        let view_number = ring.seq / 4;
        let mut nodes = BTreeMap::new();
        for m in cx.members() {
            match got.get(&m.0) {
                Some(n) => {
                    let mut n = n.clone();
                    if self.defects.local_initial_view {
                        n.initial_view_number = *self.first_seen.entry(m.0).or_insert(view_number);
                    }
                    nodes.insert(m.0, n);
                }
                // Cannot happen: a member's record precedes its barrier in the total order.
                None => warn!("clm: no record from member {m} in ring {ring}"),
            }
        }
        self.initial_view.get_or_insert(view_number);
        let old = std::mem::replace(&mut self.nodes, nodes);
        self.view_number = view_number;
        self.views += 1;
        // Every node, with how it changed; ascending by id.
        let mut all: BTreeMap<u32, (ClusterNode, Change)> = BTreeMap::new();
        for (id, n) in &self.nodes {
            let change = match old.get(id) {
                None => Change::Joined,
                Some(before) if before != n => Change::Reconfigured,
                Some(_) => Change::NoChange,
            };
            all.insert(*id, (n.clone(), change));
        }
        for (id, n) in &old {
            if !self.nodes.contains_key(id) {
                let mut gone = n.clone();
                gone.member = false;
                all.insert(*id, (gone, Change::Left));
            }
        }
        let changed: Vec<(ClusterNode, Change)> = all
            .values()
            .filter(|(_, c)| *c != Change::NoChange)
            .cloned()
            .collect();
        if changed.is_empty() {
            return;
        }
        info!(
            "clm: view {view_number}: {} member(s); {}",
            self.nodes.len(),
            changed
                .iter()
                .map(|(n, c)| format!("node {} {c:?}", n.node_id))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let members = self.nodes.len() as u32;
        for (&conn, &flags) in &self.trackers {
            let items = if flags & TRACK_CHANGES != 0 {
                all.values().cloned().collect()
            } else {
                changed.clone()
            };
            cx.callback(
                conn,
                &Callback::Track(View {
                    view_number,
                    items,
                    members,
                }),
            );
        }
    }

    fn sync_abort(&mut self, _cx: &mut Context<'_>) {
        self.syncing = None;
    }

    fn conn_closed(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.trackers.remove(&conn);
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("clm_members", self.nodes.len() as u64);
        v.gauge("clm_view_number", self.view_number);
        v.gauge("clm_trackers", self.trackers.len() as u64);
        v.counter("clm_views", self.views);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::testkit::TestRing;
    use ais_proto::ipc::Message;

    fn me(n: u32) -> ClmConfig {
        ClmConfig {
            name: Bytes::from(format!("blade-{n}")),
            address: NodeAddress::V4([10, 0, 0, n as u8]),
            boot_timestamp: 1000 + u64::from(n),
        }
    }

    fn ring_of(n: u32) -> TestRing {
        let next = std::cell::Cell::new(0);
        let mut r = TestRing::new(n, move || {
            next.set(next.get() + 1);
            vec![Box::new(Clm::new(me(next.get()))) as Box<dyn Service + Send>]
        });
        r.flush();
        r
    }

    fn ask<M: Message>(r: &mut TestRing, node: u32, conn: u64, req: &M) -> Reply<Response> {
        let n = r.node(node);
        n.core.request_value(conn, 7, req);
        let replies = n.replies::<Response>();
        replies.into_iter().next().expect("an answer").1
    }

    fn callbacks(r: &mut TestRing, node: u32) -> Vec<Callback> {
        r.node(node)
            .take()
            .iter()
            .filter_map(|e| e.callback::<Callback>().map(|(_, c)| c))
            .collect()
    }

    #[test]
    fn track_current_shows_every_member_with_its_own_record() {
        let mut r = ring_of(3);
        r.node(2).connect(1, 100, ID);
        let Reply::Service(Response::View(v)) = ask(
            &mut r,
            2,
            1,
            &Request::Track {
                flags: TRACK_CURRENT,
            },
        ) else {
            panic!("no view")
        };
        assert_eq!(v.members, 3);
        assert_eq!(v.view_number, 1, "ring sequence 4 / 4");
        let names: Vec<&[u8]> = v.items.iter().map(|(n, _)| &n.name[..]).collect();
        assert_eq!(names, [&b"blade-1"[..], b"blade-2", b"blade-3"]);
        assert!(
            v.items
                .iter()
                .all(|(n, c)| n.member && *c == Change::NoChange)
        );
        assert_eq!(v.items[2].0.address, NodeAddress::V4([10, 0, 0, 3]));
        assert_eq!(v.items[2].0.boot_timestamp, 1003);
    }

    #[test]
    fn changes_and_changes_only_after_a_node_leaves_and_comes_back() {
        let mut r = ring_of(3);
        r.node(1).connect(1, 100, ID);
        r.node(1).connect(2, 101, ID);
        assert_eq!(
            ask(
                &mut r,
                1,
                1,
                &Request::Track {
                    flags: TRACK_CHANGES
                }
            ),
            Reply::Ok
        );
        assert_eq!(
            ask(
                &mut r,
                1,
                2,
                &Request::Track {
                    flags: TRACK_CHANGES_ONLY
                }
            ),
            Reply::Ok
        );
        r.config(&[1, 2], &[1, 2]);
        r.flush();
        let cbs = callbacks(&mut r, 1);
        let [Callback::Track(all), Callback::Track(only)] = &cbs[..] else {
            panic!("{cbs:?}")
        };
        assert_eq!(all.members, 2);
        let kinds: Vec<(u32, Change, bool)> = all
            .items
            .iter()
            .map(|(n, c)| (n.node_id, *c, n.member))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, Change::NoChange, true),
                (2, Change::NoChange, true),
                (3, Change::Left, false)
            ]
        );
        assert_eq!(only.items.len(), 1);
        assert_eq!(only.items[0].1, Change::Left);
        assert_eq!(only.members, 2, "the member count, not the item count");
        // Node 3 comes back: joined, with the first view it says it was a member of.
        r.config(&[1, 2, 3], &[1, 2, 3]);
        r.flush();
        let cbs = callbacks(&mut r, 1);
        let Callback::Track(only) = &cbs[1] else {
            panic!("{cbs:?}")
        };
        assert_eq!(only.items.len(), 1);
        assert_eq!(
            (only.items[0].0.node_id, only.items[0].1),
            (3, Change::Joined)
        );
        assert_eq!(only.items[0].0.initial_view_number, 1, "its own first view");
        // Nothing changes: no callback.
        r.config(&[1, 2, 3], &[1, 2, 3]);
        r.flush();
        assert!(callbacks(&mut r, 1).is_empty());
        // Node 3 restarts (another boot time) within one view change: reconfigured.
        r.nodes[2] = crate::exec::testkit::TestNode::new(
            3,
            vec![Box::new(Clm::new(ClmConfig {
                boot_timestamp: 5000,
                ..me(3)
            })) as Box<dyn Service + Send>],
        );
        r.config(&[1, 2, 3], &[1, 2, 3]);
        r.flush();
        let cbs = callbacks(&mut r, 1);
        let Callback::Track(only) = &cbs[1] else {
            panic!("{cbs:?}")
        };
        assert_eq!(
            (only.items[0].0.boot_timestamp, only.items[0].1),
            (5000, Change::Reconfigured)
        );
    }

    #[test]
    fn track_flags_stop_and_node_get_errors() {
        let mut r = ring_of(2);
        r.node(1).connect(1, 100, ID);
        for flags in [0, TRACK_CHANGES | TRACK_CHANGES_ONLY, 0x40] {
            assert_eq!(
                ask(&mut r, 1, 1, &Request::Track { flags }),
                Reply::Error(AisError::BadFlags),
                "flags {flags:#x}"
            );
        }
        assert_eq!(
            ask(&mut r, 1, 1, &Request::TrackStop),
            Reply::Error(AisError::NotExist)
        );
        assert_eq!(
            ask(&mut r, 1, 1, &Request::NodeGet { node_id: 9 }),
            Reply::Error(AisError::NotExist)
        );
        let Reply::Service(Response::Node(n)) = ask(
            &mut r,
            1,
            1,
            &Request::NodeGet {
                node_id: LOCAL_NODE_ID,
            },
        ) else {
            panic!()
        };
        assert_eq!((n.node_id, n.member), (1, true));
        let n2 = r.node(1);
        n2.core.request_value(
            1,
            8,
            &Request::NodeGetAsync {
                node_id: 2,
                invocation: 55,
            },
        );
        let effects = n2.take();
        assert!(
            effects
                .iter()
                .any(|e| e.reply::<Response>() == Some((1, 8, Reply::Ok)))
        );
        let cb = effects
            .iter()
            .find_map(|e| e.callback::<Callback>())
            .expect("callback");
        assert!(
            matches!(&cb.1, Callback::NodeGet { invocation: 55, result: Ok(n) } if n.node_id == 2),
            "{cb:?}"
        );
    }
}
