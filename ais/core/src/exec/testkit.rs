//! Unit-test support: executive cores on a perfect in-memory ring. Every message a core
//! submits is accepted, given the next message id, and delivered to every member in one total
//! order; configurations are installed by hand. Enough to drive the service state machines
//! directly, one step at a time (faults are the simulator's business: `ais/tests/sim_cpg.rs`).

use std::collections::VecDeque;

use bytes::Bytes;
use totem_dpdk::srp::{ConfigChange, ConfigKind, Delivery, Event};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId, Seq};

use super::{ConnId, Effect, ExecCore, Origin, Service, ServiceId};
use ais_proto::ipc::{Message, Nothing, Reply, Request};

/// One node: its core and what it asked for.
pub(crate) struct TestNode {
    pub(crate) core: ExecCore,
    /// Effects other than submits, in order.
    pub(crate) out: Vec<Effect>,
    /// Submits waiting for the ring: (origin to answer, or none for a batch member; kind;
    /// message).
    pending: VecDeque<(Option<Origin>, DeliveryKind, Bytes)>,
    next_no: u64,
    /// Refuse submits (backpressure) while true.
    pub(crate) refuse: bool,
}

impl TestNode {
    pub(crate) fn new(id: u32, services: Vec<Box<dyn Service + Send>>) -> TestNode {
        TestNode {
            core: ExecCore::new(NodeId(id), services),
            out: Vec::new(),
            pending: VecDeque::new(),
            next_no: 1,
            refuse: false,
        }
    }

    /// Collects the core's effects.
    pub(crate) fn run(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            match e {
                Effect::Submit { origin, kind, msg } => {
                    self.pending.push_back((Some(origin), kind, msg));
                }
                Effect::SubmitBatch { origin, kind, msgs } => {
                    let n = msgs.len();
                    for m in msgs {
                        self.pending.push_back((None, kind, m));
                    }
                    // Batches are all taken here; their messages are ordered like the rest.
                    self.core.batch_submitted(origin, n, None);
                }
                other => self.out.push(other),
            }
        }
    }

    /// Takes the effects collected so far.
    pub(crate) fn take(&mut self) -> Vec<Effect> {
        self.run();
        std::mem::take(&mut self.out)
    }

    /// Takes the effects collected so far and keeps the answers, decoded with `R` as the
    /// service's answers: (request id, answer).
    pub(crate) fn replies<R: Message>(&mut self) -> Vec<(u64, Reply<R>)> {
        self.take()
            .iter()
            .filter_map(|e| e.reply::<R>().map(|(_, id, r)| (id, r)))
            .collect()
    }

    /// A client connects and says hello for `service`.
    pub(crate) fn connect(&mut self, conn: ConnId, pid: u32, service: ServiceId) {
        self.core.connected(conn, pid);
        self.core.request_value(
            conn,
            0,
            &Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service,
            },
        );
        self.run();
        self.out.clear();
    }

    /// Submits waiting for the ring.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Nodes on one ring.
pub(crate) struct TestRing {
    pub(crate) nodes: Vec<TestNode>,
    ring: RingId,
    members: Vec<NodeId>,
    seq: u64,
}

impl TestRing {
    /// `n` nodes (ids 1..=n), each with the services `make` builds, in one ring.
    pub(crate) fn new(n: u32, make: impl Fn() -> Vec<Box<dyn Service + Send>>) -> TestRing {
        let mut r = TestRing {
            nodes: (1..=n).map(|id| TestNode::new(id, make())).collect(),
            ring: RingId {
                rep: NodeId(1),
                seq: 0,
            },
            members: Vec::new(),
            seq: 0,
        };
        let all: Vec<u32> = (1..=n).collect();
        r.config(&all, &all);
        r
    }

    pub(crate) fn node(&mut self, id: u32) -> &mut TestNode {
        &mut self.nodes[id as usize - 1]
    }

    /// A transitional then a regular configuration at each node of `at`: the new ring has
    /// `members`.
    pub(crate) fn config(&mut self, at: &[u32], members: &[u32]) {
        let old = self.ring;
        self.ring = RingId {
            rep: NodeId(members[0]),
            seq: old.seq + 4,
        };
        self.members = members.iter().map(|&m| NodeId(m)).collect();
        for &id in at {
            let trans = ConfigChange {
                kind: ConfigKind::Transitional,
                ring: old,
                members: self
                    .members
                    .iter()
                    .copied()
                    .filter(|m| at.contains(&m.0))
                    .collect(),
                left: Vec::new(),
                joined: Vec::new(),
                failed: Vec::new(),
            };
            let regular = ConfigChange {
                kind: ConfigKind::Regular,
                ring: self.ring,
                members: self.members.clone(),
                left: Vec::new(),
                joined: Vec::new(),
                failed: Vec::new(),
            };
            let n = self.node(id);
            n.core.totem(&Event::ConfigChange(trans));
            n.core.totem(&Event::ConfigChange(regular));
            n.run();
        }
    }

    /// Takes every member's submits into the order and delivers them, until nothing moves.
    pub(crate) fn flush(&mut self) {
        loop {
            let mut order = Vec::new();
            for i in 0..self.nodes.len() {
                let id = NodeId(i as u32 + 1);
                if !self.members.contains(&id) {
                    continue;
                }
                let n = &mut self.nodes[i];
                n.run();
                if n.refuse {
                    while let Some((origin, _, _)) = n.pending.pop_front() {
                        if let Some(origin) = origin {
                            n.core
                                .submitted(origin, Err(totem_dpdk::srp::SubmitError::Backpressure));
                        }
                    }
                    n.run();
                    continue;
                }
                while let Some((origin, kind, msg)) = n.pending.pop_front() {
                    let msg_id = MsgId {
                        sender: id,
                        no: n.next_no,
                    };
                    n.next_no += 1;
                    if let Some(origin) = origin {
                        n.core.submitted(origin, Ok(msg_id));
                    }
                    n.run();
                    order.push((msg_id, kind, msg));
                }
            }
            if order.is_empty() {
                return;
            }
            for (id, kind, payload) in order {
                self.seq += 1;
                let d = Delivery {
                    id,
                    ring: self.ring,
                    seq: Seq(self.seq),
                    kind,
                    payload,
                };
                for m in self.members.clone() {
                    let n = self.node(m.0);
                    n.core.totem_owned(Event::Deliver(d.clone()));
                    n.run();
                }
            }
        }
    }

    /// Delivers one message from `sender` with `payload` (not submitted by any core).
    pub(crate) fn inject(&mut self, sender: u32, payload: Bytes) {
        self.seq += 1;
        let d = Delivery {
            id: MsgId {
                sender: NodeId(sender),
                no: 1_000_000 + self.seq,
            },
            ring: self.ring,
            seq: Seq(self.seq),
            kind: DeliveryKind::Agreed,
            payload,
        };
        for m in self.members.clone() {
            let n = self.node(m.0);
            n.core.totem_owned(Event::Deliver(d.clone()));
            n.run();
        }
    }
}
