//! The MSG checker: judges the queues every node held at each sync activation, the sends
//! clients were told were done and the messages gets handed out, in a simulated run
//! (`ais/tests/sim_msg.rs`).
//!
//! Properties:
//! - **Identical**: every node that activated the sync of one configuration (one ring) holds
//!   the same queues (identity, name, unlinked, opener) with the same messages in the same
//!   order and the same taken keys;
//! - **Unique**: in one node's queues a message is held at most once, and never both held
//!   and marked taken;
//! - **Once**: no message is handed to a get twice in the whole run;
//! - **Durable**: a send acknowledged to a client is, in every later activation of a node
//!   that synchronised with a node holding it, either held by a queue or marked taken there,
//!   while its queue exists and one node holding it lived. The nodes holding a send are the
//!   members of the configuration it was acknowledged in, then every node that activated a
//!   sync with one of them; a crash ends a node's holding.
//!
//! A queue that no longer exists (retention expired, or unlinked and closed) is not judged:
//! its messages went with it, as the specification says.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::queues::Queues;
use ais_proto::msg::{MsgKey, QueueId};

/// One queue as a node held it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueState {
    /// Its name.
    pub name: bytes::Bytes,
    /// Unlinked.
    pub unlinked: bool,
    /// Its opener `(node, connection)`.
    pub opener: Option<(u32, u64)>,
    /// Its messages `(priority, key)` in the order a get takes them.
    pub messages: Vec<(u8, MsgKey)>,
    /// Keys taken.
    pub taken: BTreeSet<MsgKey>,
}

/// Every queue a node held.
pub type State = BTreeMap<QueueId, QueueState>;

/// What a node's queues look like to the checker.
pub fn state(q: &Queues) -> State {
    q.by_id
        .iter()
        .map(|(id, q)| {
            (
                *id,
                QueueState {
                    name: q.name.clone(),
                    unlinked: q.unlinked,
                    opener: q.opener.map(|o| (o.node, o.conn)),
                    messages: q
                        .areas
                        .iter()
                        .enumerate()
                        .flat_map(|(p, a)| a.iter().map(move |m| (p as u8, m.key)))
                        .collect(),
                    taken: q.taken.iter().copied().collect(),
                },
            )
        })
        .collect()
}

/// Something seen in a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A node (re)started: its earlier incarnation's queues are gone.
    Started {
        /// The node.
        node: u32,
        /// Its incarnation.
        incarnation: u32,
    },
    /// A node activated the sync of a configuration.
    Activated {
        /// The node.
        node: u32,
        /// The ring, `(representative, sequence)`.
        ring: (u32, u64),
        /// The configuration's members.
        members: Vec<u32>,
        /// Its queues.
        state: State,
    },
    /// A client was told a send was done.
    Acked {
        /// The client's node.
        node: u32,
        /// The message.
        key: MsgKey,
        /// The queue it went into.
        queue: QueueId,
        /// The configuration it was acknowledged in.
        holders: Vec<u32>,
        /// The sequence number of the ring it was sent in.
        ring_seq: u64,
    },
    /// A get handed a message to a client.
    Got {
        /// The client's node.
        node: u32,
        /// The message.
        key: MsgKey,
    },
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// Members of one configuration hold different queues.
    Identical,
    /// A message is held twice, or held and taken.
    Unique,
    /// A message was handed out twice.
    Once,
    /// An acknowledged send is gone while its queue lives and a node holding it lived.
    Durable,
}

/// A broken property, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property.
    pub property: Property,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.property, self.detail)
    }
}

struct Send {
    key: MsgKey,
    queue: QueueId,
    holders: BTreeSet<(u32, u32)>,
    ring_seq: u64,
    reported: bool,
}

/// Checks every observation of a run.
pub fn check(observations: &[Observation]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut incarnation: BTreeMap<u32, u32> = BTreeMap::new();
    let mut by_ring: BTreeMap<(u32, u64), (u32, &State)> = BTreeMap::new();
    let mut sends: Vec<Send> = Vec::new();
    let mut got: BTreeMap<MsgKey, u32> = BTreeMap::new();
    let inc =
        |incarnation: &BTreeMap<u32, u32>, n: u32| (n, incarnation.get(&n).copied().unwrap_or(0));
    for o in observations {
        match o {
            Observation::Started {
                node,
                incarnation: i,
            } => {
                incarnation.insert(*node, *i);
                for s in &mut sends {
                    s.holders.retain(|(n, _)| n != node);
                }
            }
            Observation::Got { node, key } => {
                if let Some(first) = got.insert(*key, *node) {
                    out.push(Violation {
                        property: Property::Once,
                        detail: format!(
                            "message {key} handed out at node {first} and again at node {node}"
                        ),
                    });
                }
            }
            Observation::Acked {
                node,
                key,
                queue,
                holders,
                ring_seq,
            } => {
                let mut h: BTreeSet<(u32, u32)> =
                    holders.iter().map(|n| inc(&incarnation, *n)).collect();
                h.insert(inc(&incarnation, *node));
                sends.push(Send {
                    key: *key,
                    queue: *queue,
                    holders: h,
                    ring_seq: *ring_seq,
                    reported: false,
                });
            }
            Observation::Activated {
                node,
                ring,
                members,
                state,
            } => {
                match by_ring.get(ring) {
                    Some((first, seen)) if *seen != state => out.push(Violation {
                        property: Property::Identical,
                        detail: format!(
                            "ring {}.{}: node {first} holds {}, node {node} holds {}",
                            ring.0,
                            ring.1,
                            describe(seen),
                            describe(state)
                        ),
                    }),
                    Some(_) => {}
                    None => {
                        by_ring.insert(*ring, (*node, state));
                    }
                }
                let mut held: BTreeSet<MsgKey> = BTreeSet::new();
                let mut taken: BTreeSet<MsgKey> = BTreeSet::new();
                for (id, q) in state {
                    for (_, k) in &q.messages {
                        if !held.insert(*k) || q.taken.contains(k) {
                            out.push(Violation {
                                property: Property::Unique,
                                detail: format!(
                                    "node {node} in ring {}.{}: message {k} held twice or held \
                                     and taken (queue {id})",
                                    ring.0, ring.1
                                ),
                            });
                        }
                    }
                    taken.extend(q.taken.iter().copied());
                }
                let now: BTreeSet<(u32, u32)> =
                    members.iter().map(|n| inc(&incarnation, *n)).collect();
                for s in &mut sends {
                    if ring.1 <= s.ring_seq || s.holders.is_disjoint(&now) {
                        continue;
                    }
                    if !state.contains_key(&s.queue) {
                        continue;
                    }
                    if held.contains(&s.key) || taken.contains(&s.key) {
                        s.holders.insert(inc(&incarnation, *node));
                    } else if !s.reported {
                        s.reported = true;
                        out.push(Violation {
                            property: Property::Durable,
                            detail: format!(
                                "node {node} in ring {}.{} lacks message {} of queue {} (held by \
                                 {:?})",
                                ring.0, ring.1, s.key, s.queue, s.holders
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}

fn describe(s: &State) -> String {
    s.iter()
        .map(|(id, q)| {
            format!(
                "{id}{}[opener {:?}; {} message(s), {} taken]",
                if q.unlinked { " (unlinked)" } else { "" },
                q.opener,
                q.messages.len(),
                q.taken.len()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: u64) -> MsgKey {
        MsgKey {
            seq: 4,
            rep: 1,
            node: 1,
            tag,
        }
    }

    fn q(messages: &[u64], taken: &[u64]) -> State {
        let mut s = State::new();
        s.insert(
            QueueId::default(),
            QueueState {
                name: bytes::Bytes::from_static(b"q"),
                unlinked: false,
                opener: None,
                messages: messages.iter().map(|t| (0, key(*t))).collect(),
                taken: taken.iter().map(|t| key(*t)).collect(),
            },
        );
        s
    }

    fn act(node: u32, seq: u64, members: &[u32], state: State) -> Observation {
        Observation::Activated {
            node,
            ring: (1, seq),
            members: members.to_vec(),
            state,
        }
    }

    fn ack(node: u32, holders: &[u32], tag: u64) -> Observation {
        Observation::Acked {
            node,
            key: key(tag),
            queue: QueueId::default(),
            holders: holders.to_vec(),
            ring_seq: 4,
        }
    }

    fn props(obs: &[Observation]) -> Vec<Property> {
        check(obs).into_iter().map(|v| v.property).collect()
    }

    #[test]
    fn members_of_one_ring_must_hold_the_same() {
        let obs = [
            act(1, 4, &[1, 2], q(&[1], &[])),
            act(2, 4, &[1, 2], q(&[], &[1])),
        ];
        assert_eq!(props(&obs), [Property::Identical]);
        assert!(check(&obs[..1]).is_empty());
    }

    #[test]
    fn a_message_is_held_once_and_handed_out_once() {
        assert_eq!(
            props(&[act(1, 4, &[1], q(&[1, 1], &[]))]),
            [Property::Unique]
        );
        assert_eq!(props(&[act(1, 4, &[1], q(&[1], &[1]))]), [Property::Unique]);
        let got = |node| Observation::Got { node, key: key(1) };
        assert_eq!(props(&[got(1), got(2)]), [Property::Once]);
        assert!(
            check(&[
                got(1),
                Observation::Got {
                    node: 1,
                    key: key(2)
                }
            ])
            .is_empty()
        );
    }

    #[test]
    fn an_acknowledged_send_must_survive_while_a_holder_lives() {
        let start = |node, incarnation| Observation::Started { node, incarnation };
        // Lost: 2 held it and lacks it after syncing with 3.
        let lost = [
            ack(1, &[1, 2], 7),
            start(1, 1),
            act(2, 8, &[2, 3], q(&[], &[])),
        ];
        assert_eq!(props(&lost), [Property::Durable]);
        // Held, or taken: fine.
        assert!(check(&[ack(1, &[1, 2], 7), act(2, 8, &[2, 3], q(&[7], &[]))]).is_empty());
        assert!(check(&[ack(1, &[1, 2], 7), act(2, 8, &[2, 3], q(&[], &[7]))]).is_empty());
        // Every holder restarted: gone with them.
        let gone = [
            ack(1, &[1], 7),
            start(1, 1),
            act(1, 8, &[1, 3], q(&[], &[])),
        ];
        assert!(check(&gone).is_empty());
        // The queue is gone: not judged.
        assert!(check(&[ack(1, &[1, 2], 7), act(2, 8, &[2], State::new())]).is_empty());
        // A sync of the send's own ring comes before it.
        assert!(check(&[ack(1, &[1, 2], 7), act(2, 4, &[1, 2], q(&[], &[]))]).is_empty());
        // A node that synced with a holder holds it from then on.
        let spread = [
            ack(1, &[1], 7),
            act(3, 8, &[1, 3], q(&[7], &[])),
            start(1, 1),
            act(3, 12, &[3, 4], q(&[], &[])),
        ];
        assert_eq!(props(&spread), [Property::Durable]);
    }
}
