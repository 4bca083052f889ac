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
//! - **Once**: no message is handed to a get twice by nodes that could know of the first
//!   take: the members of the configuration the take was delivered in, then every node that
//!   activated a later sync with one of them (a crash ends a node's knowing). Across
//!   partitions that never exchanged state a message may be handed out once in each: when the
//!   queue was reopened on the side without its opener, when every node that saw the first
//!   take crashed before it met another, or when the two sides placed a group send in
//!   different queues (docs/services.md, MSG);
//! - **Policy**: a send to a queue group went where the group's policy says: round robin, the
//!   member after the previous send's at that node (while the members stay the same); local
//!   round robin, a member opened at the sender's node, the one after the previous send's from
//!   that node; local best queue, a member opened at the sender's node with the most room in
//!   the message's priority area;
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

use super::queues::{GroupChoice, Queues};
use ais_proto::msg::{MsgKey, QueueId};
use ais_proto::msg::{POLICY_LOCAL_BEST_QUEUE, POLICY_LOCAL_ROUND_ROBIN, POLICY_ROUND_ROBIN};

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
    /// Its closes so far (its retention timer's epoch).
    pub close_epoch: u64,
}

/// Every queue a node held.
pub type QueuesState = BTreeMap<QueueId, QueueState>;

/// One queue group as a node held it: policy, members, round-robin positions.
pub type GroupState = (u8, Vec<bytes::Bytes>, u32, Vec<(u32, u32)>);

/// Every queue and group a node held.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// The queues.
    pub queues: QueuesState,
    /// The groups, by name.
    pub groups: BTreeMap<bytes::Bytes, GroupState>,
}

/// What a node's queues look like to the checker.
pub fn state(q: &Queues) -> State {
    State {
        queues: queues_state(q),
        groups: q
            .groups
            .iter()
            .map(|(n, g)| {
                (
                    n.clone(),
                    (
                        g.policy,
                        g.members.clone(),
                        g.cursor,
                        g.local.iter().map(|(a, b)| (*a, *b)).collect(),
                    ),
                )
            })
            .collect(),
    }
}

fn queues_state(q: &Queues) -> QueuesState {
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
                    close_epoch: q.close_epoch,
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
    /// A node applied a send to a queue group.
    GroupSend {
        /// The node.
        node: u32,
        /// How the queue was chosen.
        choice: GroupChoice,
    },
    /// A get handed a message to a client.
    Got {
        /// The client's node.
        node: u32,
        /// The message.
        key: MsgKey,
        /// The configuration its take was delivered in (transitional, if there).
        holders: Vec<u32>,
        /// The sequence number of the ring the take was sent in.
        ring_seq: u64,
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
    /// A send to a group went elsewhere than its policy says.
    Policy,
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
    // Each message handed out: who could know of it `(node, incarnation)`, and its take's
    // ring.
    let mut got: BTreeMap<MsgKey, (BTreeSet<(u32, u32)>, u64)> = BTreeMap::new();
    // The previous group send's choice at each (node, group, sender): the candidates then
    // and the one chosen.
    let mut last: BTreeMap<(u32, QueueId, u32), (Vec<bytes::Bytes>, usize)> = BTreeMap::new();
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
                for (knowing, _) in got.values_mut() {
                    knowing.retain(|(n, _)| n != node);
                }
            }
            Observation::GroupSend { node, choice } => {
                if let Some(why) = policy_broken(&mut last, *node, choice) {
                    out.push(Violation {
                        property: Property::Policy,
                        detail: format!("node {node}: {why}"),
                    });
                }
            }
            Observation::Got {
                node,
                key,
                holders,
                ring_seq,
            } => {
                let me = inc(&incarnation, *node);
                let mut h: BTreeSet<(u32, u32)> =
                    holders.iter().map(|n| inc(&incarnation, *n)).collect();
                h.insert(me);
                match got.get_mut(key) {
                    Some((knowing, _)) if knowing.contains(&me) => out.push(Violation {
                        property: Property::Once,
                        detail: format!(
                            "message {key} handed out again at node {node}, which knew of its \
                             first take (known to {knowing:?})"
                        ),
                    }),
                    Some((knowing, seq)) => {
                        knowing.extend(h);
                        *seq = (*seq).max(*ring_seq);
                    }
                    None => {
                        got.insert(*key, (h, *ring_seq));
                    }
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
                // Round-robin positions are merged at a sync: sequences start again.
                last.retain(|(n, _, _), _| n != node);
                for (id, q) in &state.queues {
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
                for (knowing, seq) in got.values_mut() {
                    if ring.1 > *seq && !knowing.is_disjoint(&now) {
                        knowing.insert(inc(&incarnation, *node));
                    }
                }
                for s in &mut sends {
                    if ring.1 <= s.ring_seq || s.holders.is_disjoint(&now) {
                        continue;
                    }
                    if !state.queues.contains_key(&s.queue) {
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

/// Why a group send broke its policy, if it did.
fn policy_broken(
    last: &mut BTreeMap<(u32, QueueId, u32), (Vec<bytes::Bytes>, usize)>,
    node: u32,
    c: &GroupChoice,
) -> Option<String> {
    let names: Vec<bytes::Bytes> = c.members.iter().map(|m| m.0.clone()).collect();
    let local: Vec<usize> = (0..c.members.len())
        .filter(|i| c.members[*i].1 == Some(c.sender))
        .collect();
    let chosen = c.chosen;
    if chosen >= c.members.len() {
        return Some(format!(
            "group {} chose member {chosen} of {}",
            c.group,
            names.len()
        ));
    }
    let (candidates, key_sender) = match c.policy {
        POLICY_ROUND_ROBIN => ((0..names.len()).collect::<Vec<_>>(), 0),
        POLICY_LOCAL_ROUND_ROBIN | POLICY_LOCAL_BEST_QUEUE => (local.clone(), c.sender),
        p => return Some(format!("group {} has unknown policy {p}", c.group)),
    };
    let Some(pos) = candidates.iter().position(|i| *i == chosen) else {
        return Some(format!(
            "group {} (policy {}) sent from node {} to {:?}, not a candidate",
            c.group, c.policy, c.sender, names[chosen]
        ));
    };
    if c.policy == POLICY_LOCAL_BEST_QUEUE {
        let most = candidates
            .iter()
            .map(|i| c.members[*i].2)
            .max()
            .unwrap_or(0);
        if c.members[chosen].2 < most {
            return Some(format!(
                "group {} (local best queue) chose {:?} with {} bytes free; another local member \
                 had {most}",
                c.group, names[chosen], c.members[chosen].2
            ));
        }
        return None;
    }
    let cands: Vec<bytes::Bytes> = candidates.iter().map(|i| names[*i].clone()).collect();
    let k = (node, c.group, key_sender);
    let broken = match last.get(&k) {
        Some((prev, prev_pos)) if *prev == cands && pos != (prev_pos + 1) % cands.len() => {
            Some(format!(
                "group {} (policy {}) chose {:?} after {:?}: not the next in turn",
                c.group, c.policy, cands[pos], cands[*prev_pos]
            ))
        }
        _ => None,
    };
    last.insert(k, (cands, pos));
    broken
}

fn describe(s: &State) -> String {
    s.queues
        .iter()
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
        let mut s = State::default();
        s.queues.insert(
            QueueId::default(),
            QueueState {
                name: bytes::Bytes::from_static(b"q"),
                unlinked: false,
                opener: None,
                messages: messages.iter().map(|t| (0, key(*t))).collect(),
                taken: taken.iter().map(|t| key(*t)).collect(),
                close_epoch: 0,
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
        let got = |node, holders: &[u32]| Observation::Got {
            node,
            key: key(1),
            holders: holders.to_vec(),
            ring_seq: 4,
        };
        // Twice at one node, or at two nodes of one configuration.
        assert_eq!(props(&[got(1, &[1]), got(1, &[1])]), [Property::Once]);
        assert_eq!(props(&[got(1, &[1, 2]), got(2, &[1, 2])]), [Property::Once]);
        // A node that synced with a node that knew.
        let spread = [
            got(1, &[1]),
            act(2, 8, &[1, 2], q(&[], &[1])),
            got(2, &[1, 2]),
        ];
        assert_eq!(props(&spread), [Property::Once]);
        // Apart, never met: each side may hand it out once.
        assert!(check(&[got(1, &[1]), got(2, &[2])]).is_empty());
        // Every node that knew crashed before meeting another: again allowed.
        let lost = [
            got(1, &[1]),
            Observation::Started {
                node: 1,
                incarnation: 1,
            },
            got(1, &[1, 2]),
        ];
        assert!(check(&lost).is_empty());
        let other = Observation::Got {
            node: 1,
            key: key(2),
            holders: vec![1],
            ring_seq: 4,
        };
        assert!(check(&[got(1, &[1]), other]).is_empty());
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
        assert!(check(&[ack(1, &[1, 2], 7), act(2, 8, &[2], State::default())]).is_empty());
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

#[cfg(test)]
mod policy_tests {
    use super::*;
    use bytes::Bytes;

    fn send(
        policy: u8,
        members: &[(&'static str, Option<u32>, u64)],
        chosen: usize,
    ) -> Observation {
        Observation::GroupSend {
            node: 1,
            choice: GroupChoice {
                group: QueueId::default(),
                policy,
                members: members
                    .iter()
                    .map(|(n, o, f)| (Bytes::from_static(n.as_bytes()), *o, *f))
                    .collect(),
                chosen,
                sender: 2,
            },
        }
    }

    fn props(obs: &[Observation]) -> Vec<Property> {
        check(obs).into_iter().map(|v| v.property).collect()
    }

    #[test]
    fn round_robin_goes_to_the_next_member_in_turn() {
        let m = [("a", None, 9), ("b", Some(1), 9), ("c", Some(2), 9)];
        let rr = POLICY_ROUND_ROBIN;
        assert!(check(&[send(rr, &m, 1), send(rr, &m, 2), send(rr, &m, 0)]).is_empty());
        assert_eq!(
            props(&[send(rr, &m, 1), send(rr, &m, 1)]),
            [Property::Policy]
        );
        // Other members: the turn starts again.
        let fewer = [("a", None, 9), ("c", Some(2), 9)];
        assert!(check(&[send(rr, &m, 1), send(rr, &fewer, 1)]).is_empty());
    }

    #[test]
    fn local_policies_choose_among_the_senders_queues() {
        let m = [("a", Some(2), 5), ("b", Some(1), 9), ("c", Some(2), 7)];
        let lrr = POLICY_LOCAL_ROUND_ROBIN;
        assert!(check(&[send(lrr, &m, 0), send(lrr, &m, 2), send(lrr, &m, 0)]).is_empty());
        assert_eq!(props(&[send(lrr, &m, 1)]), [Property::Policy]);
        assert_eq!(
            props(&[send(lrr, &m, 0), send(lrr, &m, 0)]),
            [Property::Policy]
        );
        let best = POLICY_LOCAL_BEST_QUEUE;
        assert!(check(&[send(best, &m, 2)]).is_empty());
        assert_eq!(props(&[send(best, &m, 0)]), [Property::Policy]);
        assert_eq!(props(&[send(best, &m, 1)]), [Property::Policy]);
    }
}
