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
//!   sync with one of them; a crash ends a node's holding. A send handed out to a get is
//!   not judged any more (the queue it was taken from, and its taken keys, may be gone).
//!
//! Send-receive and reply (the replies every node awaits, `docs/services.md`, MSG):
//! - **Routed**: a reply handed to a send-receive's caller is a reply taken on the ring for
//!   that caller's message (its key), never one to another caller's;
//! - **ReplyOnce**: a reply is handed to a caller at most once;
//! - **OneAnswer**: a send-receive's caller gets at most one answer (the reply, `TIMEOUT` or
//!   an error): nothing after its timeout or error, nothing twice;
//! - **Answered**: a send-receive whose caller's node lived to the end of the run (the same
//!   incarnation) got its answer;
//! - **AwaitedIdentical**: nodes that delivered the same updates in one ring await the same
//!   replies (the same keys, the same sizes) after the last (a partition's two sides may each
//!   deliver some of a ring's last updates the other skips: extended virtual synchrony);
//! - **AwaitedMember**: in a ring, only replies to callers of that ring's members are awaited
//!   (a sync drops the others' entries).
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
    /// A client asked a send-receive of a message whose data is `call` (unique in a run).
    Called {
        /// The caller's node.
        node: u32,
        /// The message's data.
        call: bytes::Bytes,
    },
    /// The caller's node applied send-receive `call`: its message's key.
    CallSent {
        /// The message's key.
        key: MsgKey,
        /// The message's data.
        call: bytes::Bytes,
    },
    /// A node applied a reply to `to` (taken for its caller); its data is `reply` (unique
    /// in a run). Seen at every node: the first counts.
    Replied {
        /// The key of the message replied to.
        to: MsgKey,
        /// The reply's data.
        reply: bytes::Bytes,
    },
    /// The caller of send-receive `call` got an answer.
    Answered {
        /// The caller's node.
        node: u32,
        /// The send-receive's message data.
        call: bytes::Bytes,
        /// The answer.
        answer: Answer,
    },
    /// The replies a node awaited after delivering update `after` in `ring`.
    Awaiting {
        /// The node.
        node: u32,
        /// The ring, `(representative, sequence)`.
        ring: (u32, u64),
        /// The update's key.
        after: MsgKey,
        /// A digest of the updates the node delivered in `ring` up to `after`, in order.
        delivered: u64,
        /// The awaited replies: message key, most reply data bytes.
        awaited: Vec<(MsgKey, u64)>,
    },
    /// The run ended (converged) with these nodes alive.
    End {
        /// The live nodes.
        live: Vec<u32>,
    },
}

/// What a send-receive's caller got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A reply, by its data.
    Reply(bytes::Bytes),
    /// `TIMEOUT`.
    Timeout,
    /// Another error.
    Error(ais_proto::ipc::AisError),
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
    /// A caller was handed a reply not taken for its send-receive.
    Routed,
    /// A reply was handed out twice.
    ReplyOnce,
    /// A send-receive was answered twice (or an answer came for no send-receive).
    OneAnswer,
    /// A send-receive of a node that lived to the end got no answer.
    Answered,
    /// Nodes that delivered one update in one ring await different replies after it.
    AwaitedIdentical,
    /// A reply is awaited for a caller of a node outside the ring.
    AwaitedMember,
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
    let mut replies = Replies::default();
    for o in observations {
        if replies.observe(o, &incarnation, &mut out) {
            continue;
        }
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
            Observation::Called { .. }
            | Observation::CallSent { .. }
            | Observation::Replied { .. }
            | Observation::Answered { .. }
            | Observation::Awaiting { .. }
            | Observation::End { .. } => {}
            Observation::Activated {
                node,
                ring,
                members,
                state,
            } => {
                replies.members.insert(*ring, members.clone());
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
                    // Handed out: the queue it was taken from may be gone since (a send to a
                    // group that the two sides of a split placed in two queues is dropped from
                    // the queue that did not hand it out).
                    if held.contains(&s.key) || taken.contains(&s.key) || got.contains_key(&s.key) {
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

/// Awaited replies: message key, most reply data bytes.
type Awaited = Vec<(MsgKey, u64)>;

/// A point in a ring's deliveries: the ring, the update delivered last, a digest of the
/// updates delivered.
type AfterUpdate = ((u32, u64), MsgKey, u64);

/// A send-receive as the checker follows it.
struct Call {
    node: (u32, u32),
    key: Option<MsgKey>,
    answer: Option<Answer>,
}

/// What the reply properties follow.
#[derive(Default)]
struct Replies {
    /// Send-receives by their message data.
    calls: BTreeMap<bytes::Bytes, Call>,
    /// Replies taken on the ring, by their data: the key replied to, and the call it was
    /// handed to.
    replies: BTreeMap<bytes::Bytes, (MsgKey, Option<bytes::Bytes>)>,
    /// Each ring's members.
    members: BTreeMap<(u32, u64), Vec<u32>>,
    /// What the first node to deliver each update in a ring after the same updates awaited
    /// after it.
    awaited: BTreeMap<AfterUpdate, (u32, Awaited)>,
    /// Awaited entries already reported as of non-members.
    reported: BTreeSet<((u32, u64), MsgKey)>,
}

impl Replies {
    /// Judges `o` if it is about send-receives; false if it is not.
    fn observe(
        &mut self,
        o: &Observation,
        incarnation: &BTreeMap<u32, u32>,
        out: &mut Vec<Violation>,
    ) -> bool {
        let inc = |n: u32| (n, incarnation.get(&n).copied().unwrap_or(0));
        let mut bad = |property, detail| out.push(Violation { property, detail });
        match o {
            Observation::Called { node, call } => {
                self.calls.insert(
                    call.clone(),
                    Call {
                        node: inc(*node),
                        key: None,
                        answer: None,
                    },
                );
            }
            Observation::CallSent { key, call } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.key = Some(*key);
                }
            }
            Observation::Replied { to, reply } => {
                self.replies.entry(reply.clone()).or_insert((*to, None));
            }
            Observation::Answered { node, call, answer } => {
                let Some(c) = self.calls.get_mut(call) else {
                    bad(
                        Property::OneAnswer,
                        format!("node {node}: answer {answer:?} to no send-receive ({call:?})"),
                    );
                    return true;
                };
                if let Some(first) = &c.answer {
                    bad(
                        Property::OneAnswer,
                        format!(
                            "node {node}: send-receive {call:?} answered {first:?}, then                              {answer:?}"
                        ),
                    );
                } else {
                    c.answer = Some(answer.clone());
                }
                if let Answer::Reply(r) = answer {
                    match self.replies.get_mut(r) {
                        None => bad(
                            Property::Routed,
                            format!(
                                "node {node}: send-receive {call:?} handed reply {r:?}, which no                                  node took on the ring"
                            ),
                        ),
                        Some((_, Some(before))) => bad(
                            Property::ReplyOnce,
                            format!(
                                "node {node}: reply {r:?} handed to {call:?}, and before to                                  {before:?}"
                            ),
                        ),
                        Some((to, handed)) => {
                            if c.key != Some(*to) {
                                bad(
                                    Property::Routed,
                                    format!(
                                        "node {node}: send-receive {call:?} (key {:?}) handed                                          reply {r:?}, a reply to {to}",
                                        c.key
                                    ),
                                );
                            }
                            *handed = Some(call.clone());
                        }
                    }
                }
            }
            Observation::Awaiting {
                node,
                ring,
                after,
                delivered,
                awaited,
            } => {
                match self.awaited.get(&(*ring, *after, *delivered)) {
                    Some((first, seen)) if seen != awaited => bad(
                        Property::AwaitedIdentical,
                        format!(
                            "ring {}.{} after update {after}: node {first} awaits {seen:?}, node                              {node} awaits {awaited:?}",
                            ring.0, ring.1
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        self.awaited
                            .insert((*ring, *after, *delivered), (*node, awaited.clone()));
                    }
                }
                if let Some(members) = self.members.get(ring) {
                    for (k, _) in awaited {
                        if !members.contains(&k.node) && self.reported.insert((*ring, *k)) {
                            bad(
                                Property::AwaitedMember,
                                format!(
                                    "node {node} in ring {}.{} (members {members:?}) awaits a                                      reply to {k}, of node {}",
                                    ring.0, ring.1, k.node
                                ),
                            );
                        }
                    }
                }
            }
            Observation::End { live } => {
                for (call, c) in &self.calls {
                    if c.answer.is_none() && live.contains(&c.node.0) && inc(c.node.0) == c.node {
                        bad(
                            Property::Answered,
                            format!(
                                "node {}: send-receive {call:?} (key {:?}) never answered",
                                c.node.0, c.key
                            ),
                        );
                    }
                }
            }
            _ => return false,
        }
        true
    }
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
        // Handed out (from another queue, since deleted with its taken keys): fine.
        let handed = [
            ack(1, &[1, 2], 7),
            Observation::Got {
                node: 2,
                key: key(7),
                holders: vec![2],
                ring_seq: 4,
            },
            act(2, 8, &[1, 2], q(&[], &[])),
        ];
        assert!(check(&handed).is_empty());
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

#[cfg(test)]
mod reply_tests {
    use super::*;
    use ais_proto::ipc::AisError;
    use bytes::Bytes;

    fn key(node: u32, tag: u64) -> MsgKey {
        MsgKey {
            seq: 4,
            rep: 1,
            node,
            tag,
        }
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn called(node: u32, call: &'static str, tag: u64) -> [Observation; 2] {
        [
            Observation::Called {
                node,
                call: b(call),
            },
            Observation::CallSent {
                key: key(node, tag),
                call: b(call),
            },
        ]
    }

    fn replied(to: MsgKey, reply: &'static str) -> Observation {
        Observation::Replied {
            to,
            reply: b(reply),
        }
    }

    fn answered(node: u32, call: &'static str, answer: Answer) -> Observation {
        Observation::Answered {
            node,
            call: b(call),
            answer,
        }
    }

    fn props(obs: &[Observation]) -> Vec<Property> {
        check(obs).into_iter().map(|v| v.property).collect()
    }

    fn history(tail: &[Observation]) -> Vec<Observation> {
        let mut h: Vec<Observation> = called(1, "a", 1).into();
        h.extend(called(2, "b", 1));
        h.extend(tail.iter().cloned());
        h
    }

    #[test]
    fn a_reply_goes_once_and_only_to_its_caller() {
        let good = history(&[
            replied(key(1, 1), "ra"),
            replied(key(1, 1), "ra"),
            answered(1, "a", Answer::Reply(b("ra"))),
            answered(2, "b", Answer::Timeout),
            Observation::End { live: vec![1, 2] },
        ]);
        assert!(check(&good).is_empty(), "{:?}", check(&good));
        // Handed to the other caller.
        let misrouted = history(&[
            replied(key(1, 1), "ra"),
            answered(2, "b", Answer::Reply(b("ra"))),
        ]);
        assert_eq!(props(&misrouted), [Property::Routed]);
        // Never taken on the ring.
        let invented = history(&[answered(1, "a", Answer::Reply(b("rx")))]);
        assert_eq!(props(&invented), [Property::Routed]);
        // Handed twice (to two callers: the second is also misrouted).
        let twice = history(&[
            replied(key(1, 1), "ra"),
            answered(1, "a", Answer::Reply(b("ra"))),
            answered(2, "b", Answer::Reply(b("ra"))),
        ]);
        assert_eq!(props(&twice), [Property::ReplyOnce]);
    }

    #[test]
    fn a_send_receive_gets_exactly_one_answer() {
        // The reply after its timeout.
        let late = history(&[
            replied(key(1, 1), "ra"),
            answered(1, "a", Answer::Timeout),
            answered(1, "a", Answer::Reply(b("ra"))),
        ]);
        assert_eq!(props(&late), [Property::OneAnswer]);
        let after_error = history(&[
            answered(2, "b", Answer::Error(AisError::TryAgain)),
            answered(2, "b", Answer::Timeout),
        ]);
        assert_eq!(props(&after_error), [Property::OneAnswer]);
        assert_eq!(
            props(&[answered(1, "z", Answer::Timeout)]),
            [Property::OneAnswer]
        );
        // No answer while the caller's node lived to the end.
        let unanswered = history(&[
            answered(2, "b", Answer::Timeout),
            Observation::End { live: vec![1, 2] },
        ]);
        assert_eq!(props(&unanswered), [Property::Answered]);
        // Its node crashed (and restarted, or not): no answer owed.
        let crashed = history(&[
            answered(2, "b", Answer::Timeout),
            Observation::Started {
                node: 1,
                incarnation: 1,
            },
            Observation::End { live: vec![1, 2] },
        ]);
        assert!(check(&crashed).is_empty());
        let gone = history(&[
            answered(2, "b", Answer::Timeout),
            Observation::End { live: vec![2] },
        ]);
        assert!(check(&gone).is_empty());
    }

    #[test]
    fn awaited_replies_agree_and_belong_to_members() {
        let ring = (1, 8);
        let act = |node| Observation::Activated {
            node,
            ring,
            members: vec![1, 2],
            state: State::default(),
        };
        let awaiting = |node, after, awaited: &[(MsgKey, u64)]| Observation::Awaiting {
            node,
            ring,
            after: key(1, after),
            delivered: after,
            awaited: awaited.to_vec(),
        };
        let k = key(2, 5);
        let good = [
            act(1),
            act(2),
            awaiting(1, 9, &[(k, 64)]),
            awaiting(2, 9, &[(k, 64)]),
            awaiting(2, 10, &[]),
            awaiting(1, 10, &[]),
        ];
        assert!(check(&good).is_empty());
        let differ = [
            act(1),
            act(2),
            awaiting(1, 9, &[(k, 64)]),
            awaiting(2, 9, &[(k, 32)]),
        ];
        assert_eq!(props(&differ), [Property::AwaitedIdentical]);
        let missing = [act(1), awaiting(1, 9, &[(k, 64)]), awaiting(2, 9, &[])];
        assert_eq!(props(&missing), [Property::AwaitedIdentical]);
        // After other deliveries (a side skipped an update): not compared.
        let skipped = [
            act(1),
            awaiting(1, 9, &[(k, 64)]),
            Observation::Awaiting {
                node: 2,
                ring,
                after: key(1, 9),
                delivered: 99,
                awaited: vec![],
            },
        ];
        assert!(check(&skipped).is_empty());
        // A caller of node 3, not in the ring: reported once.
        let stale = [
            act(1),
            awaiting(1, 9, &[(key(3, 1), 64)]),
            awaiting(1, 10, &[(key(3, 1), 64)]),
        ];
        assert_eq!(props(&stale), [Property::AwaitedMember]);
    }
}
