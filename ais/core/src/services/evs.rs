//! EVS, extended virtual synchrony groups (openais's `evs` service): a connection subscribes
//! to group names; a message is sent to a list of groups and delivered, in the ring's total
//! order, to every connection on every node that subscribed to at least one of them.
//! Membership is the node membership: every EVS connection gets every transitional and
//! regular configuration, with node ids.
//!
//! Totem message: `Mcast {groups, data}` (`ais_proto::evs::RingMessage`). Subscriptions are local: they are not
//! broadcast, so a message reaches the connections subscribed when it is delivered.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use totem_dpdk::NodeId;
use totem_dpdk::srp::{ConfigChange, ConfigKind};

use super::delivery_kind;
use crate::exec::{ConnId, Context, Service, ServiceId};
use ais_proto::codec::DecodeError;
use ais_proto::evs::{Callback, ConfKind, EvsProtocol, Request, Response, RingMessage};
use ais_proto::ipc::{AisError, Protocol, Reply, check_group, decode_body};
use ais_proto::ring;
use dataplane::stats::Visitor;

/// EVS's id, in executive messages and `Hello`.
const ID: ServiceId = EvsProtocol::ID;

/// The EVS service.
#[derive(Debug, Default)]
pub struct Evs {
    /// EVS connections and their groups.
    conns: HashMap<ConnId, BTreeSet<Bytes>>,
    delivered: u64,
}

impl Evs {
    /// An empty EVS service.
    pub fn new() -> Evs {
        Evs::default()
    }
}

fn ids(v: &[NodeId]) -> Vec<u32> {
    v.iter().map(|n| n.0).collect()
}

impl Service for Evs {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        EvsProtocol::NAME
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
            Request::Join { groups } | Request::Leave { groups }
                if groups.iter().any(|g| check_group(g).is_err()) =>
            {
                let e = groups
                    .iter()
                    .find_map(|g| check_group(g).err())
                    .unwrap_or(AisError::InvalidParam);
                cx.error(conn, id, e);
            }
            Request::Join { groups } => {
                self.conns.entry(conn).or_default().extend(groups);
                cx.ok(conn, id);
            }
            Request::Leave { groups } => {
                let set = self.conns.entry(conn).or_default();
                let missing = groups.iter().any(|g| !set.contains(g));
                if missing {
                    cx.error(conn, id, AisError::NotExist);
                } else {
                    for g in &groups {
                        set.remove(g);
                    }
                    cx.ok(conn, id);
                }
            }
            Request::Mcast {
                groups,
                guarantee,
                data,
            } => {
                let groups: Vec<Bytes> = if groups.is_empty() {
                    self.conns
                        .get(&conn)
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default()
                } else {
                    groups
                };
                if groups.is_empty() || groups.iter().any(|g| check_group(g).is_err()) {
                    cx.error(conn, id, AisError::InvalidParam);
                    return Ok(());
                }
                if cx.backlogged() {
                    // A client's outbox is backlogged here or at another member.
                    cx.error(conn, id, AisError::TryAgain);
                    return Ok(());
                }
                let msg = ring::encode(ID, &RingMessage::Mcast { groups, data });
                cx.submit_for(conn, id, ID, 0, delivery_kind(guarantee), msg);
            }
            Request::MembershipGet => {
                let local = cx.node().0;
                let members = ids(cx.members());
                cx.reply(
                    conn,
                    id,
                    Reply::Service(Response::Members { local, members }),
                );
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
        let RingMessage::Mcast { groups, data } = decode_body(kind, body)?;
        for (&conn, subscribed) in &self.conns {
            if groups.iter().any(|g| subscribed.contains(g)) {
                self.delivered += 1;
                cx.callback(
                    conn,
                    &Callback::Deliver {
                        sender: sender.0,
                        data: data.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange) {
        let kind = match change.kind {
            ConfigKind::Regular => ConfKind::Regular,
            ConfigKind::Transitional => ConfKind::Transitional,
        };
        let mut left = ids(&change.left);
        left.extend(ids(&change.failed));
        left.sort_unstable();
        let ring = Bytes::from(change.ring.to_string());
        for &conn in self.conns.keys() {
            cx.callback(
                conn,
                &Callback::ConfChg {
                    kind,
                    ring: ring.clone(),
                    members: ids(&change.members),
                    left: left.clone(),
                    joined: ids(&change.joined),
                },
            );
        }
    }

    fn conn_closed(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.conns.remove(&conn);
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("evs_connections", self.conns.len() as u64);
        v.counter("evs_delivered", self.delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::testkit::{TestNode, TestRing};
    use ais_proto::ipc::Guarantee;

    fn ring() -> TestRing {
        TestRing::new(2, || vec![Box::new(Evs::new()) as Box<dyn Service + Send>])
    }

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    fn deliveries(n: &mut TestNode, conn: ConnId) -> Vec<(u32, Bytes)> {
        n.take()
            .into_iter()
            .filter_map(|e| match e.callback() {
                Some((c, Callback::Deliver { sender, data })) if c == conn => Some((sender, data)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_message_reaches_the_subscribers_of_its_groups_only() {
        let mut r = ring();
        for (node, conn, groups) in [
            (1, 1, vec![b(b"a")]),
            (2, 1, vec![b(b"b")]),
            (2, 2, vec![b(b"a"), b(b"c")]),
        ] {
            let n = r.node(node);
            n.connect(conn, 100 + conn as u32, ID);
            n.core.request_value(conn, 1, &Request::Join { groups });
            n.run();
        }
        let _ = (r.node(1).take(), r.node(2).take());
        r.node(2).core.request_value(
            1,
            2,
            &Request::Mcast {
                groups: vec![b(b"a")],
                guarantee: Guarantee::Agreed,
                data: b(b"to a"),
            },
        );
        r.flush();
        assert_eq!(deliveries(r.node(1), 1), [(2, b(b"to a"))]);
        let at2 = r.node(2).take();
        let to = |conn| {
            at2.iter()
                .filter(
                    |e| matches!(e.callback(), Some((c, Callback::Deliver { .. })) if c == conn),
                )
                .count()
        };
        assert_eq!(
            (to(1), to(2)),
            (0, 1),
            "the sender's own connection is not subscribed to a"
        );
    }

    #[test]
    fn an_empty_group_list_sends_to_the_connections_own_groups() {
        let mut r = ring();
        let n = r.node(1);
        n.connect(1, 100, ID);
        n.core.request_value(
            1,
            1,
            &Request::Join {
                groups: vec![b(b"x")],
            },
        );
        n.core.request_value(
            1,
            2,
            &Request::Mcast {
                groups: Vec::new(),
                guarantee: Guarantee::Safe,
                data: b(b"mine"),
            },
        );
        r.flush();
        assert_eq!(deliveries(r.node(1), 1), [(1, b(b"mine"))]);
    }

    #[test]
    fn leave_of_a_group_not_joined_is_not_exist() {
        let mut r = ring();
        let n = r.node(1);
        n.connect(1, 100, ID);
        n.core.request_value(
            1,
            1,
            &Request::Leave {
                groups: vec![b(b"x")],
            },
        );
        n.core.request_value(
            1,
            2,
            &Request::Join {
                groups: vec![Bytes::new()],
            },
        );
        let replies: Vec<Reply<Response>> = n.replies().into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            replies,
            [
                Reply::Error(AisError::NotExist),
                Reply::Error(AisError::InvalidParam)
            ]
        );
    }

    #[test]
    fn every_connection_gets_both_configurations() {
        let mut r = ring();
        r.node(1).connect(1, 100, ID);
        r.config(&[1], &[1]);
        let kinds: Vec<(ConfKind, Vec<u32>)> = r
            .node(1)
            .take()
            .into_iter()
            .filter_map(|e| match e.callback() {
                Some((_, Callback::ConfChg { kind, members, .. })) => Some((kind, members)),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (ConfKind::Transitional, vec![1]),
                (ConfKind::Regular, vec![1])
            ]
        );
    }

    #[test]
    fn an_unknown_message_kind_is_an_error() {
        let mut r = ring();
        r.inject(2, ring::raw(ID, 9, b""));
        r.inject(2, ring::raw(ID, 1, b"\x05\x00"));
        assert_eq!(r.node(1).core.core_counters().exec_malformed, 2);
    }
}
