//! The properties of the replicated backlog state ([`super`]), judged over what every node's
//! executive core held during a run (the simulator's `ais/tests/sim_flow.rs` records it).
//!
//! Each member keeps the set of members it counts as backlogged, built from the `Backlog`
//! messages of the current regular configuration, in the ring's total order. That set decides
//! whether its clients' multicasts are answered TRY_AGAIN, so the members must agree on it:
//!
//! - [`Property::Agreement`]: two members of one regular configuration that delivered the
//!   same message in it hold the same set right after it.
//! - [`Property::MembersOnly`]: a member counts only members of its current regular
//!   configuration.
//! - [`Property::Settled`]: once the run is over and the network quiet, in every regular
//!   configuration the surviving members ended in, each member's set is exactly the members
//!   whose own clients' outboxes hold the senders (no node holds the others back for a
//!   backlog that is over, and no backlog goes unnoticed by a member that joined later).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use totem_dpdk::{MsgId, RingId};

/// What one node held right after delivering a message in a regular configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The node.
    pub node: u32,
    /// Its regular configuration (the ring the message was delivered in).
    pub ring: RingId,
    /// The configuration's members.
    pub members: BTreeSet<u32>,
    /// The message.
    pub msg: MsgId,
    /// The members it counts as backlogged.
    pub backlogged: BTreeSet<u32>,
}

/// What one surviving node held at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    /// The node.
    pub node: u32,
    /// Its last regular configuration.
    pub ring: RingId,
    /// Whether its own clients' outboxes hold the senders (its gate is on).
    pub gate_on: bool,
    /// The members it counts as backlogged.
    pub backlogged: BTreeSet<u32>,
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Property {
    /// Members disagree after the same message.
    Agreement,
    /// A non-member is counted.
    MembersOnly,
    /// The final state does not match the members' gates.
    Settled,
}

/// One broken property, with what shows it.
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

/// Checks `records` (in any order) and, if the run ended quiet, the surviving nodes' final
/// states (`None`: the run did not settle, the final states are not judged).
pub fn check(records: &[Record], finals: Option<&[Final]>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut first: BTreeMap<(RingId, MsgId), &Record> = BTreeMap::new();
    for r in records {
        if let Some(n) = r.backlogged.iter().find(|n| !r.members.contains(n)) {
            out.push(Violation {
                property: Property::MembersOnly,
                detail: format!(
                    "node {} counts node {n} as backlogged after message {} in ring {:?}, \
                     whose members are {:?}",
                    r.node, r.msg, r.ring, r.members
                ),
            });
        }
        match first.get(&(r.ring, r.msg)) {
            None => {
                first.insert((r.ring, r.msg), r);
            }
            Some(f) if f.backlogged != r.backlogged => out.push(Violation {
                property: Property::Agreement,
                detail: format!(
                    "after message {} in ring {:?}: node {} counts {:?} backlogged, node {} \
                     {:?}",
                    r.msg, r.ring, f.node, f.backlogged, r.node, r.backlogged
                ),
            }),
            Some(_) => {}
        }
    }
    let Some(finals) = finals else {
        return out;
    };
    let mut rings: BTreeMap<RingId, Vec<&Final>> = BTreeMap::new();
    for f in finals {
        rings.entry(f.ring).or_default().push(f);
    }
    for (ring, nodes) in rings {
        let on: BTreeSet<u32> = nodes.iter().filter(|f| f.gate_on).map(|f| f.node).collect();
        for f in nodes.iter().filter(|f| f.backlogged != on) {
            out.push(Violation {
                property: Property::Settled,
                detail: format!(
                    "at the end, in ring {ring:?}, node {} counts {:?} backlogged; the nodes \
                     whose gate is on are {on:?}",
                    f.node, f.backlogged
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use totem_dpdk::NodeId;

    use super::*;

    fn ring(seq: u64) -> RingId {
        RingId {
            seq,
            rep: NodeId(1),
        }
    }

    fn set(nodes: &[u32]) -> BTreeSet<u32> {
        nodes.iter().copied().collect()
    }

    fn rec(node: u32, no: u64, backlogged: &[u32]) -> Record {
        Record {
            node,
            ring: ring(4),
            members: set(&[1, 2, 3]),
            msg: MsgId {
                sender: NodeId(2),
                no,
            },
            backlogged: set(backlogged),
        }
    }

    fn fin(node: u32, gate_on: bool, backlogged: &[u32]) -> Final {
        Final {
            node,
            ring: ring(4),
            gate_on,
            backlogged: set(backlogged),
        }
    }

    fn properties(v: &[Violation]) -> BTreeSet<Property> {
        v.iter().map(|v| v.property).collect()
    }

    #[test]
    fn agreeing_members_pass() {
        let records = [rec(1, 7, &[2]), rec(2, 7, &[2]), rec(3, 8, &[])];
        let finals = [fin(1, false, &[2]), fin(2, true, &[2]), fin(3, false, &[2])];
        assert!(check(&records, Some(&finals)).is_empty());
    }

    #[test]
    fn disagreement_after_one_message_is_caught() {
        let v = check(&[rec(1, 7, &[2]), rec(3, 7, &[])], None);
        assert_eq!(properties(&v), BTreeSet::from([Property::Agreement]));
    }

    #[test]
    fn a_non_member_counted_is_caught() {
        let v = check(&[rec(1, 7, &[5])], None);
        assert_eq!(properties(&v), BTreeSet::from([Property::MembersOnly]));
    }

    #[test]
    fn a_forgotten_or_stale_backlog_at_the_end_is_caught() {
        // Node 2's gate is on, node 3 never learned it; node 1 still counts node 3, whose
        // gate is off.
        let finals = [
            fin(1, false, &[2, 3]),
            fin(2, true, &[2]),
            fin(3, false, &[]),
        ];
        let v = check(&[], Some(&finals));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(properties(&v), BTreeSet::from([Property::Settled]));
        // Not judged when the run did not settle.
        assert!(check(&[], None).is_empty());
    }

    #[test]
    fn nodes_of_different_final_rings_are_judged_apart() {
        let mut other = fin(3, false, &[]);
        other.ring = ring(8);
        let finals = [fin(1, false, &[2]), fin(2, true, &[2]), other];
        assert!(check(&[], Some(&finals)).is_empty());
    }
}
