//! Quorum, with corosync votequorum's semantics: whether this node's partition may act.
//!
//! Every node has `votes` (usually 1) and is configured with the cluster's `expected_votes`.
//! After every regular configuration, in the service sync, each member sends its votes and
//! settings (`ais_proto::quorum::RingMessage::Votes`, tagged with the ring); when every
//! member's barrier has passed, every member computes the quorum of the configuration from the
//! same delivered records, so all members of one configuration agree:
//!
//! - `total_votes`: the members' votes;
//! - `expected_votes`: the largest of the members' configured `expected_votes` and
//!   `total_votes` (more votes present than expected raise it, as in votequorum);
//! - `quorum`: `expected_votes / 2 + 1`; with `two_node` (every member says so) and two
//!   expected votes, 1;
//! - `wait_for_all` (any member says so): not quorate until every expected vote has been
//!   present at once; a node learns it from any member that has seen it, so a restarted node
//!   joining a quorate partition is not held back;
//! - `quorate`: `total_votes >= quorum`, unless waiting for all.
//!
//! Until the first configuration's quorum is computed, and from every transitional
//! configuration until the next is, the node is not quorate. Other services ask one place
//! before acting: [`Context::quorate`] (CKPT writes, lock grants
//! and AMF assignments will). Clients read it with `Get`, or `Track` it: a `Changed` callback
//! after every regular configuration. Changes of `quorate` are logged.

pub mod checker;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::{ConfigChange, ConfigKind};
use totem_dpdk::{DeliveryKind, NodeId, RingId};
use tracing::{info, warn};

use crate::exec::{ConnId, Context, Service, ServiceId};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{Protocol, Reply, decode_body};
use ais_proto::quorum::{Callback, QuorumProtocol, QuorumState, Request, Response, RingMessage};
use ais_proto::ring;

const ID: ServiceId = QuorumProtocol::ID;

/// This node's quorum settings (`[quorum]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumConfig {
    /// This node's votes.
    pub votes: u32,
    /// Votes expected in the whole cluster.
    pub expected_votes: u32,
    /// A two-node cluster: one vote of two is quorate (implies `wait_for_all`).
    pub two_node: bool,
    /// Not quorate until every expected vote has been present at once.
    pub wait_for_all: bool,
}

/// Deliberate defects, for the tests that prove the quorum checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuorumDefects {
    /// Compute with this node's own `expected_votes` instead of the largest of the members'
    /// (members configured differently then disagree).
    pub local_expected_votes: bool,
}

/// A member's record, as delivered in the current sync.
#[derive(Debug, Clone, Copy)]
struct Votes {
    votes: u32,
    expected_votes: u32,
    two_node: bool,
    wait_for_all: bool,
    seen_all: bool,
}

/// The quorum service.
#[derive(Debug)]
pub struct Quorum {
    cfg: QuorumConfig,
    defects: QuorumDefects,
    /// The ring being synchronised and the records delivered for it.
    syncing: Option<(RingId, BTreeMap<NodeId, Votes>)>,
    /// This node has seen every expected vote at once (or learnt it from a member that has).
    seen_all: bool,
    state: QuorumState,
    trackers: BTreeSet<ConnId>,
    changes: u64,
}

impl Quorum {
    /// The service with this node's settings.
    pub fn new(cfg: QuorumConfig) -> Quorum {
        Quorum::with_defects(cfg, QuorumDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(cfg: QuorumConfig, defects: QuorumDefects) -> Quorum {
        Quorum {
            cfg,
            defects,
            syncing: None,
            seen_all: false,
            state: QuorumState {
                ring: Bytes::from_static(b"0.0"),
                expected_votes: cfg.expected_votes,
                quorum: needed(cfg.expected_votes, cfg.two_node),
                waiting_for_all: cfg.wait_for_all || cfg.two_node,
                ..QuorumState::default()
            },
            trackers: BTreeSet::new(),
            changes: 0,
        }
    }

    /// The quorum of the last configuration.
    pub fn state(&self) -> &QuorumState {
        &self.state
    }

    /// Computes the configuration's quorum from the members' records.
    fn compute(
        &self,
        ring: RingId,
        members: &[NodeId],
        got: &BTreeMap<NodeId, Votes>,
    ) -> (QuorumState, bool) {
        let records: Vec<Votes> = members
            .iter()
            .map(|m| {
                got.get(m).copied().unwrap_or_else(|| {
                    // Cannot happen: a member's record precedes its barrier in the total order.
                    warn!("quorum: no votes from member {m} in ring {ring}; counting none");
                    Votes {
                        votes: 0,
                        expected_votes: 0,
                        two_node: false,
                        wait_for_all: false,
                        seen_all: false,
                    }
                })
            })
            .collect();
        // Votes come from other nodes: a sum that would overflow saturates (a node claiming
        // u32::MAX votes cannot wrap the total around to a minority).
        let total = records
            .iter()
            .fold(0u32, |sum, v| sum.saturating_add(v.votes));
        let configured = if self.defects.local_expected_votes {
            self.cfg.expected_votes
        } else {
            records.iter().map(|v| v.expected_votes).max().unwrap_or(0)
        };
        let expected = configured.max(total);
        let two_node = !records.is_empty() && records.iter().all(|v| v.two_node);
        let wait_for_all = records.iter().any(|v| v.wait_for_all || v.two_node);
        let seen_all = records.iter().any(|v| v.seen_all) || total >= expected;
        let quorum = needed(expected, two_node);
        let waiting = wait_for_all && !seen_all;
        let state = QuorumState {
            quorate: total >= quorum && !waiting,
            ring: Bytes::from(ring.to_string()),
            members: members.iter().map(|n| n.0).collect(),
            total_votes: total,
            expected_votes: expected,
            quorum,
            waiting_for_all: waiting,
        };
        (state, seen_all)
    }
}

/// Votes needed out of `expected`.
fn needed(expected: u32, two_node: bool) -> u32 {
    if two_node && expected == 2 {
        1
    } else {
        expected / 2 + 1
    }
}

impl Service for Quorum {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        QuorumProtocol::NAME
    }

    /// Not quorate until the first configuration's quorum is computed.
    fn exec_init(&mut self, cx: &mut Context<'_>) {
        cx.set_quorate(false);
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
            Request::Get => {
                cx.reply(
                    conn,
                    id,
                    Reply::Service(Response::State(self.state.clone())),
                );
            }
            Request::Track(on) => {
                if on {
                    self.trackers.insert(conn);
                    cx.ok(conn, id);
                } else if self.trackers.remove(&conn) {
                    cx.ok(conn, id);
                } else {
                    cx.error(conn, id, ais_proto::ipc::AisError::NotExist);
                }
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
        let RingMessage::Votes {
            rep,
            seq,
            votes,
            expected_votes,
            two_node,
            wait_for_all,
            seen_all,
        } = decode_body(kind, body)?;
        if let Some((ring, got)) = &mut self.syncing
            && *ring
                == (RingId {
                    rep: NodeId(rep),
                    seq,
                })
        {
            got.insert(
                sender,
                Votes {
                    votes,
                    expected_votes,
                    two_node,
                    wait_for_all,
                    seen_all,
                },
            );
        }
        // Records of an aborted sync (another ring) are stale: ignored.
        Ok(())
    }

    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange) {
        if change.kind == ConfigKind::Transitional {
            // Until the new configuration's quorum is known, this node acts as if it had
            // none: the members it goes on with may be a minority.
            if cx.quorate() {
                info!("quorum: not quorate while the configuration changes");
            }
            cx.set_quorate(false);
        }
    }

    fn syncs(&self) -> bool {
        true
    }

    fn sync_init(&mut self, cx: &mut Context<'_>) {
        self.syncing = Some((cx.ring(), BTreeMap::new()));
        let ring = cx.ring();
        let votes = RingMessage::Votes {
            rep: ring.rep.0,
            seq: ring.seq,
            votes: self.cfg.votes,
            expected_votes: self.cfg.expected_votes,
            two_node: self.cfg.two_node,
            wait_for_all: self.cfg.wait_for_all,
            seen_all: self.seen_all,
        };
        cx.submit_internal(DeliveryKind::Agreed, ring::encode(ID, &votes));
    }

    fn sync_activate(&mut self, cx: &mut Context<'_>) {
        let Some((ring, got)) = self.syncing.take() else {
            return;
        };
        let (state, seen_all) = self.compute(ring, cx.members(), &got);
        self.seen_all = seen_all;
        cx.set_votes(crate::exec::Votes {
            votes: cx
                .members()
                .iter()
                .map(|m| (*m, got.get(m).map_or(0, |v| v.votes)))
                .collect(),
            needed: if state.waiting_for_all {
                u32::MAX
            } else {
                state.quorum
            },
        });
        let was = std::mem::replace(&mut self.state, state);
        let s = &self.state;
        if s.quorate != was.quorate {
            self.changes += 1;
        }
        // Quorate: said after every change (the transitional configuration said it was
        // suspended). Not quorate: said when it was lost or its numbers changed.
        if s.quorate || was.quorate || s.total_votes != was.total_votes {
            if s.quorate {
                info!(
                    "quorum: quorate in ring {ring}: {} of {} expected votes, quorum {}",
                    s.total_votes, s.expected_votes, s.quorum
                );
            } else if s.waiting_for_all {
                info!(
                    "quorum: not quorate in ring {ring}: waiting for all {} expected votes \
                     (wait_for_all), {} present",
                    s.expected_votes, s.total_votes
                );
            } else {
                info!(
                    "quorum: not quorate in ring {ring}: {} of {} expected votes, quorum {}",
                    s.total_votes, s.expected_votes, s.quorum
                );
            }
        }
        cx.set_quorate(s.quorate);
        let cb = Callback::Changed(s.clone());
        for &conn in &self.trackers {
            cx.callback(conn, &cb);
        }
    }

    fn sync_abort(&mut self, _cx: &mut Context<'_>) {
        self.syncing = None;
    }

    fn conn_closed(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.trackers.remove(&conn);
    }

    fn stats(&self, v: &mut dyn Visitor) {
        v.gauge("quorum_quorate", u64::from(self.state.quorate));
        v.gauge("quorum_total_votes", u64::from(self.state.total_votes));
        v.gauge(
            "quorum_expected_votes",
            u64::from(self.state.expected_votes),
        );
        v.gauge("quorum_needed", u64::from(self.state.quorum));
        v.gauge(
            "quorum_waiting_for_all",
            u64::from(self.state.waiting_for_all),
        );
        v.counter("quorum_changes", self.changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::testkit::TestRing;

    fn cfg(expected_votes: u32) -> QuorumConfig {
        QuorumConfig {
            votes: 1,
            expected_votes,
            two_node: false,
            wait_for_all: false,
        }
    }

    fn ring_of(n: u32, make: impl Fn(u32) -> QuorumConfig + 'static) -> TestRing {
        let next = std::cell::Cell::new(0);
        let mut r = TestRing::new(n, move || {
            next.set(next.get() + 1);
            vec![Box::new(Quorum::new(make(next.get()))) as Box<dyn Service + Send>]
        });
        r.flush();
        r
    }

    /// Two partitions, one after the other (the test ring runs one ring at a time).
    fn partition(r: &mut TestRing, a: &[u32], b: &[u32]) {
        r.config(a, a);
        r.flush();
        r.config(b, b);
        r.flush();
    }

    fn state(r: &mut TestRing, node: u32) -> QuorumState {
        let mut stats = dataplane::stats::Collect::default();
        dataplane::stats::Visit::visit(&r.node(node).core, &mut stats);
        let quorate = stats.get("quorum_quorate") == Some(1);
        assert_eq!(quorate, r.node(node).core.quorate(), "one place to ask");
        QuorumState {
            quorate,
            total_votes: stats.get("quorum_total_votes").unwrap() as u32,
            expected_votes: stats.get("quorum_expected_votes").unwrap() as u32,
            quorum: stats.get("quorum_needed").unwrap() as u32,
            waiting_for_all: stats.get("quorum_waiting_for_all") == Some(1),
            ..QuorumState::default()
        }
    }

    #[test]
    fn a_node_is_not_quorate_before_its_first_configuration() {
        let core = crate::exec::ExecCore::new(
            NodeId(1),
            vec![Box::new(Quorum::new(cfg(1))) as Box<dyn Service + Send>],
        );
        assert!(!core.quorate());
        let none = crate::exec::ExecCore::new(NodeId(1), Vec::new());
        assert!(
            none.quorate(),
            "without a quorum service every partition may act"
        );
    }

    #[test]
    fn a_majority_is_quorate_and_a_minority_is_not() {
        let mut r = ring_of(3, |_| cfg(3));
        for n in 1..=3 {
            let s = state(&mut r, n);
            assert!(s.quorate, "node {n}");
            assert_eq!((s.total_votes, s.expected_votes, s.quorum), (3, 3, 2));
        }
        partition(&mut r, &[1, 2], &[3]);
        assert!(state(&mut r, 1).quorate && state(&mut r, 2).quorate);
        let s = state(&mut r, 3);
        assert!(!s.quorate);
        assert_eq!((s.total_votes, s.expected_votes, s.quorum), (1, 3, 2));
    }

    #[test]
    fn expected_votes_are_the_largest_configured_or_present() {
        // Node 3 expects 5: the whole ring uses 5, so 3 votes are still a majority (3 of 5).
        let mut r = ring_of(3, |n| cfg(if n == 3 { 5 } else { 3 }));
        for n in 1..=3 {
            let s = state(&mut r, n);
            assert_eq!(
                (s.expected_votes, s.quorum, s.quorate),
                (5, 3, true),
                "node {n}"
            );
        }
        // More votes present than any node expects raise the expectation.
        let mut r = ring_of(3, |_| cfg(1));
        assert_eq!(state(&mut r, 2).expected_votes, 3);
    }

    #[test]
    fn two_node_is_quorate_with_one_vote_once_both_were_seen() {
        let two = |_| QuorumConfig {
            two_node: true,
            ..cfg(2)
        };
        // Started alone: waiting for all (two_node implies it).
        let mut r = ring_of(1, two);
        assert!(!state(&mut r, 1).quorate);
        let mut r = ring_of(2, two);
        assert!(state(&mut r, 1).quorate);
        partition(&mut r, &[1], &[2]);
        let s = state(&mut r, 1);
        assert!(s.quorate, "one of two, having seen both");
        assert_eq!(s.quorum, 1);
    }

    fn wfa(_: u32) -> QuorumConfig {
        QuorumConfig {
            wait_for_all: true,
            ..cfg(3)
        }
    }

    #[test]
    fn wait_for_all_holds_until_every_vote_was_present_at_once() {
        // Two of three expected votes: a majority, but all three were never seen.
        let mut r = ring_of(2, wfa);
        let s = state(&mut r, 1);
        assert!(!s.quorate && s.waiting_for_all, "{s:?}");
        // Once all three were seen, a majority is enough.
        let mut r = ring_of(3, wfa);
        partition(&mut r, &[1, 2], &[3]);
        assert!(state(&mut r, 1).quorate);
        assert!(!state(&mut r, 3).quorate, "a minority");
    }

    #[test]
    fn a_restarted_node_learns_wait_for_all_from_the_members() {
        let mut r = ring_of(3, wfa);
        partition(&mut r, &[1, 2], &[3]);
        // Node 3 restarts (a new service, which has seen nothing) and joins node 2 alone:
        // two of three votes, and node 2 has seen all three.
        r.nodes[2] = crate::exec::testkit::TestNode::new(
            3,
            vec![Box::new(Quorum::new(wfa(3))) as Box<dyn Service + Send>],
        );
        r.config(&[2, 3], &[2, 3]);
        r.flush();
        assert!(state(&mut r, 3).quorate, "learnt from node 2");
        assert!(state(&mut r, 2).quorate);
    }

    #[test]
    fn votes_that_would_overflow_saturate() {
        let mut r = ring_of(2, |n| QuorumConfig {
            votes: if n == 2 { u32::MAX } else { 1 },
            ..cfg(2)
        });
        let s = state(&mut r, 1);
        assert_eq!(s.total_votes, u32::MAX);
        assert!(s.quorate);
    }

    #[test]
    fn records_of_an_aborted_sync_do_not_count() {
        let mut r = ring_of(2, |_| cfg(2));
        let stale = ring::encode(
            ID,
            &RingMessage::Votes {
                rep: 1,
                seq: 999,
                votes: 50,
                expected_votes: 2,
                two_node: false,
                wait_for_all: false,
                seen_all: false,
            },
        );
        r.config(&[1, 2], &[1, 2]);
        r.inject(2, stale);
        r.flush();
        assert_eq!(state(&mut r, 1).total_votes, 2);
    }
}
