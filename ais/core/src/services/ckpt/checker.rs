//! The CKPT checker: judges the replicas every node held at each sync activation, and the
//! writes clients were told were done, in a simulated run (`ais/tests/sim_ckpt.rs`).
//!
//! Properties:
//! - **Identical**: every node that activated the sync of one configuration (one ring) holds
//!   the same checkpoints (identity, name, unlinked, opens) with the same sections and bytes;
//! - **Durable**: a write acknowledged to a client is readable (its bytes at its offset) in
//!   every later replica of its checkpoint held by a node that synchronised with a node
//!   holding it, as long as one node holding it lived. The nodes holding a write are the
//!   members of the configuration it was acknowledged in (its transitional configuration if
//!   it was acknowledged there: safe delivery promises no more), and then every node that
//!   activated a sync with one of them (each from its own activation: a member cut off before
//!   the sync's end never merged it); a crash ends a node's holding.
//!
//! A checkpoint that no longer exists (unlinked and closed) is not judged: its writes went
//! with it, as the specification says.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;

use super::replica::Replicas;
use ais_proto::ckpt::CkptId;

/// One checkpoint as a node held it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CkptState {
    /// Its name.
    pub name: Bytes,
    /// Unlinked.
    pub unlinked: bool,
    /// Opens, all nodes together.
    pub opens: u32,
    /// Its sections' data.
    pub sections: BTreeMap<Bytes, Bytes>,
}

/// Every checkpoint a node held.
pub type State = BTreeMap<CkptId, CkptState>;

/// What a node's replicas look like to the checker.
pub fn state(r: &Replicas) -> State {
    r.by_id
        .iter()
        .map(|(id, c)| {
            (
                *id,
                CkptState {
                    name: c.name.clone(),
                    unlinked: c.unlinked,
                    opens: c.total_opens(),
                    sections: c
                        .sections
                        .iter()
                        .map(|(s, d)| (s.clone(), Bytes::from(d.data.clone())))
                        .collect(),
                },
            )
        })
        .collect()
}

/// Something seen in a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A node (re)started: its earlier incarnation's replicas are gone.
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
        /// Its replicas.
        state: State,
    },
    /// A client was told a write was done.
    Acked {
        /// The client's node.
        node: u32,
        /// The checkpoint.
        ckpt: CkptId,
        /// The section.
        section: Bytes,
        /// Where.
        offset: u64,
        /// What.
        data: Bytes,
        /// The configuration it was acknowledged in (transitional, if there).
        holders: Vec<u32>,
        /// The sequence number of the ring it was sent in: syncs of that ring and earlier
        /// ones come before it in every node's order (a node may activate one after the
        /// write's acknowledgement in time, but never after it in the ring's order).
        ring_seq: u64,
    },
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// Members of one configuration hold different replicas.
    Identical,
    /// An acknowledged write is gone while a node holding it lived.
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

struct Write {
    ckpt: CkptId,
    section: Bytes,
    offset: u64,
    data: Bytes,
    /// `(node, incarnation)` holding it.
    holders: BTreeSet<(u32, u32)>,
    ring_seq: u64,
    reported: bool,
}

/// Checks every observation of a run.
pub fn check(observations: &[Observation]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut incarnation: BTreeMap<u32, u32> = BTreeMap::new();
    let mut by_ring: BTreeMap<(u32, u64), (u32, &State)> = BTreeMap::new();
    let mut writes: Vec<Write> = Vec::new();
    for o in observations {
        match o {
            Observation::Started {
                node,
                incarnation: i,
            } => {
                incarnation.insert(*node, *i);
                for w in &mut writes {
                    w.holders.retain(|(n, _)| n != node);
                }
            }
            Observation::Acked {
                node,
                ckpt,
                section,
                offset,
                data,
                holders,
                ring_seq,
            } => {
                let mut h: BTreeSet<(u32, u32)> = holders
                    .iter()
                    .map(|n| (*n, incarnation.get(n).copied().unwrap_or(0)))
                    .collect();
                h.insert((*node, incarnation.get(node).copied().unwrap_or(0)));
                writes.push(Write {
                    ckpt: *ckpt,
                    section: section.clone(),
                    offset: *offset,
                    data: data.clone(),
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
                let now: BTreeSet<(u32, u32)> = members
                    .iter()
                    .map(|n| (*n, incarnation.get(n).copied().unwrap_or(0)))
                    .collect();
                for w in &mut writes {
                    if ring.1 <= w.ring_seq || w.holders.is_disjoint(&now) {
                        continue;
                    }
                    let Some(c) = state.get(&w.ckpt) else {
                        continue;
                    };
                    let held = c.sections.get(&w.section).is_some_and(|d| {
                        let start = w.offset as usize;
                        d.get(start..start + w.data.len()) == Some(&w.data[..])
                    });
                    if held {
                        // This node holds it now (the other members only once they too have
                        // activated this sync: one may be cut off before it).
                        w.holders
                            .insert((*node, incarnation.get(node).copied().unwrap_or(0)));
                    } else if !w.reported {
                        w.reported = true;
                        out.push(Violation {
                            property: Property::Durable,
                            detail: format!(
                                "node {node} in ring {}.{} lacks the write of {:?} at {} of \
                                 section {:?} of checkpoint {} (held by {:?})",
                                ring.0, ring.1, w.data, w.offset, w.section, w.ckpt, w.holders
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
        .map(|(id, c)| {
            format!(
                "{id}{}[opens {}; {}]",
                if c.unlinked { " (unlinked)" } else { "" },
                c.opens,
                c.sections
                    .iter()
                    .map(|(s, d)| format!("{}={}B", String::from_utf8_lossy(s), d.len()))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(sections: &[(&'static str, &'static str)]) -> State {
        let mut s = State::new();
        s.insert(
            CkptId::default(),
            CkptState {
                name: Bytes::from_static(b"ck"),
                unlinked: false,
                opens: 1,
                sections: sections
                    .iter()
                    .map(|(k, v)| {
                        (
                            Bytes::from_static(k.as_bytes()),
                            Bytes::from_static(v.as_bytes()),
                        )
                    })
                    .collect(),
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

    fn ack(node: u32, holders: &[u32], data: &'static str) -> Observation {
        Observation::Acked {
            node,
            ckpt: CkptId::default(),
            section: Bytes::from_static(b"s"),
            offset: 0,
            data: Bytes::from_static(data.as_bytes()),
            holders: holders.to_vec(),
            ring_seq: 4,
        }
    }

    #[test]
    fn members_of_one_ring_must_hold_the_same() {
        let obs = [
            act(1, 4, &[1, 2], ck(&[("s", "a")])),
            act(2, 4, &[1, 2], ck(&[("s", "b")])),
        ];
        let v = check(&obs);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].property, Property::Identical);
        assert!(check(&obs[..1]).is_empty());
    }

    #[test]
    fn a_write_must_survive_while_a_holder_lives() {
        // Acknowledged at 1 with 2 in the configuration; 1 restarts; 2 syncs with 3 and
        // the write is gone: lost.
        let lost = [
            ack(1, &[1, 2], "w"),
            Observation::Started {
                node: 1,
                incarnation: 1,
            },
            act(2, 8, &[2, 3], ck(&[("s", "")])),
        ];
        let v = check(&lost);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].property, Property::Durable);
        // Kept: fine.
        let kept = [ack(1, &[1, 2], "w"), act(2, 8, &[2, 3], ck(&[("s", "w")]))];
        assert!(check(&kept).is_empty());
        // Every holder restarted before the next sync: the write went with them.
        let gone = [
            ack(1, &[1], "w"),
            Observation::Started {
                node: 1,
                incarnation: 1,
            },
            act(1, 8, &[1, 3], ck(&[("s", "")])),
        ];
        assert!(check(&gone).is_empty());
        // A node that never met a holder is not judged.
        let apart = [ack(1, &[1], "w"), act(3, 8, &[3], ck(&[("s", "")]))];
        assert!(check(&apart).is_empty());
        // A sync of the write's own ring comes before it.
        let before = [ack(1, &[1, 2], "w"), act(2, 4, &[1, 2], ck(&[("s", "")]))];
        assert!(check(&before).is_empty());
        // A member cut off before the sync ends never merged it: only nodes that activated it
        // hold it.
        let cut = [
            ack(1, &[1], "w"),
            act(3, 8, &[1, 2, 3], ck(&[("s", "w")])),
            Observation::Started {
                node: 1,
                incarnation: 1,
            },
            act(2, 12, &[2, 4], ck(&[("s", "")])),
        ];
        assert!(check(&cut).is_empty());
        // A node that synced with a holder holds it from then on.
        let spread = [
            ack(1, &[1], "w"),
            act(3, 8, &[1, 3], ck(&[("s", "w")])),
            Observation::Started {
                node: 1,
                incarnation: 1,
            },
            act(3, 12, &[3, 4], ck(&[("s", "")])),
        ];
        assert_eq!(check(&spread).len(), 1);
    }
}
