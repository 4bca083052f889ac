//! The shelf checker: judges what every node's shelf service accepted in a simulated run
//! (`ais/tests/sim_shelf.rs`), against what the nodes' watchers saw.
//!
//! Properties:
//! - **NoDuplicate**: no incarnation of a node accepts a key it knows (accepted before, or
//!   learnt in a sync) — each event reaches a node once;
//! - **SyncedSeen**: after the sync of a ring, every member's seen-set holds every key that
//!   any member of the ring knew before the ring (so a restarted node or the other side of a
//!   healed partition does not accept it again); skipped for a set at its capacity;
//! - **Order**: the events two incarnations both accepted in one ring were accepted in the
//!   same order;
//! - **Delivered**: at the end of a run that converged, every event seen by the watcher of
//!   a surviving incarnation was accepted somewhere and is known at every survivor.
//!
//! A ring is `(representative, sequence)`; a node's rings after a ring have larger sequence
//! numbers (Totem forms a ring above every member's previous one), which is how "knew before
//! the ring" is told from what it learnt in the ring or later.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ais_proto::shelf::ShelfKey;

/// One thing that happened in a run, in the run's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// An incarnation of a node started (empty state).
    Started {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
    },
    /// The node's watcher handed in an event.
    Observed {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
        /// The event's key.
        key: ShelfKey,
    },
    /// The node's service accepted an event.
    Accepted {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
        /// The ring it was accepted in.
        ring: (u32, u64),
        /// The event's key.
        key: ShelfKey,
    },
    /// The sync of a ring completed at the node.
    Activated {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
        /// The ring.
        ring: (u32, u64),
        /// Its members.
        members: Vec<u32>,
        /// The node's seen-set after it.
        seen: Vec<ShelfKey>,
    },
    /// The run converged: the incarnations alive at its end (node → incarnation).
    Survivors {
        /// Node → incarnation.
        alive: BTreeMap<u32, u32>,
    },
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// An incarnation accepted a key it knew.
    NoDuplicate,
    /// A sync left out a key a member knew.
    SyncedSeen,
    /// Two incarnations accepted common events of a ring in different orders.
    Order,
    /// An event seen by a survivor's watcher is not known everywhere at the end.
    Delivered,
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

fn show(k: &ShelfKey) -> String {
    format!("{}@{}", k.record, k.timestamp)
}

/// Keys accepted per (node, incarnation), in order.
type ByIncarnation = BTreeMap<(u32, u32), Vec<ShelfKey>>;

/// Checks a run's observations; `capacity` is the services' seen-set capacity.
pub fn check(observations: &[Observation], capacity: usize) -> Vec<Violation> {
    let mut out = Vec::new();
    // (node, inc) → key → ring sequence it was learnt in.
    let mut known: BTreeMap<(u32, u32), BTreeMap<ShelfKey, u64>> = BTreeMap::new();
    let mut current: BTreeMap<u32, u32> = BTreeMap::new();
    // ring → (node, inc) → keys accepted, in order.
    let mut accepted: BTreeMap<(u32, u64), ByIncarnation> = BTreeMap::new();
    let mut observed: BTreeMap<(u32, u32), Vec<ShelfKey>> = BTreeMap::new();
    let mut accepted_anywhere: BTreeSet<ShelfKey> = BTreeSet::new();
    let mut survivors = None;
    for o in observations {
        match o {
            Observation::Started { node, inc } => {
                current.insert(*node, *inc);
                known.insert((*node, *inc), BTreeMap::new());
            }
            Observation::Observed { node, inc, key } => {
                observed.entry((*node, *inc)).or_default().push(key.clone());
            }
            Observation::Accepted {
                node,
                inc,
                ring,
                key,
            } => {
                let k = known.entry((*node, *inc)).or_default();
                if let Some(seq) = k.get(key) {
                    out.push(Violation {
                        property: Property::NoDuplicate,
                        detail: format!(
                            "node {node} incarnation {inc} accepted {} in ring {}.{} and knew it \
                             since ring sequence {seq}",
                            show(key),
                            ring.0,
                            ring.1
                        ),
                    });
                }
                k.insert(key.clone(), ring.1);
                accepted_anywhere.insert(key.clone());
                accepted
                    .entry(*ring)
                    .or_default()
                    .entry((*node, *inc))
                    .or_default()
                    .push(key.clone());
            }
            Observation::Activated {
                node,
                inc,
                ring,
                members,
                seen,
            } => {
                let have: BTreeSet<&ShelfKey> = seen.iter().collect();
                if seen.len() < capacity {
                    let mut missing = BTreeSet::new();
                    for m in members {
                        let Some(mi) = current.get(m) else { continue };
                        if let Some(k) = known.get(&(*m, *mi)) {
                            missing.extend(
                                k.iter()
                                    .filter(|(key, seq)| **seq < ring.1 && !have.contains(key))
                                    .map(|(key, _)| (*m, key.clone())),
                            );
                        }
                    }
                    if let Some((m, key)) = missing.iter().next() {
                        out.push(Violation {
                            property: Property::SyncedSeen,
                            detail: format!(
                                "node {node} incarnation {inc} after the sync of ring {}.{}: \
                                 {} keys members knew are missing, e.g. {} known at node {m}",
                                ring.0,
                                ring.1,
                                missing.len(),
                                show(key)
                            ),
                        });
                    }
                }
                let k = known.entry((*node, *inc)).or_default();
                for key in seen {
                    k.entry(key.clone()).or_insert(ring.1);
                }
            }
            Observation::Survivors { alive } => survivors = Some(alive.clone()),
        }
    }
    for (ring, by_node) in &accepted {
        let seqs: Vec<(&(u32, u32), &Vec<ShelfKey>)> = by_node.iter().collect();
        for (i, (a, va)) in seqs.iter().enumerate() {
            for (b, vb) in &seqs[i + 1..] {
                let sa: BTreeSet<&ShelfKey> = va.iter().collect();
                let sb: BTreeSet<&ShelfKey> = vb.iter().collect();
                let ca: Vec<&ShelfKey> = va.iter().filter(|k| sb.contains(k)).collect();
                let cb: Vec<&ShelfKey> = vb.iter().filter(|k| sa.contains(k)).collect();
                if ca != cb {
                    out.push(Violation {
                        property: Property::Order,
                        detail: format!(
                            "ring {}.{}: node {} incarnation {} and node {} incarnation {} \
                             accepted {} common events in different orders",
                            ring.0,
                            ring.1,
                            a.0,
                            a.1,
                            b.0,
                            b.1,
                            ca.len()
                        ),
                    });
                }
            }
        }
    }
    if let Some(alive) = survivors {
        for (&node, &inc) in &alive {
            for key in observed.get(&(node, inc)).into_iter().flatten() {
                if !accepted_anywhere.contains(key) {
                    out.push(Violation {
                        property: Property::Delivered,
                        detail: format!(
                            "{} seen by node {node}'s watcher was never accepted",
                            show(key)
                        ),
                    });
                    continue;
                }
                for (&other, &oinc) in &alive {
                    let knows = known
                        .get(&(other, oinc))
                        .is_some_and(|k| k.contains_key(key));
                    if !knows {
                        out.push(Violation {
                            property: Property::Delivered,
                            detail: format!(
                                "{} seen by node {node}'s watcher is unknown at surviving node \
                                 {other} incarnation {oinc}",
                                show(key)
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn k(r: u16) -> ShelfKey {
        ShelfKey {
            shelf: Bytes::from_static(b"s"),
            record: r,
            timestamp: 100,
        }
    }

    fn acc(node: u32, inc: u32, seq: u64, r: u16) -> Observation {
        Observation::Accepted {
            node,
            inc,
            ring: (1, seq),
            key: k(r),
        }
    }

    fn props(v: &[Violation]) -> Vec<Property> {
        v.iter().map(|v| v.property).collect()
    }

    #[test]
    fn a_clean_run_passes() {
        let obs = vec![
            Observation::Started { node: 1, inc: 0 },
            Observation::Started { node: 2, inc: 0 },
            Observation::Observed {
                node: 1,
                inc: 0,
                key: k(1),
            },
            acc(1, 0, 4, 1),
            acc(2, 0, 4, 1),
            acc(1, 0, 4, 2),
            acc(2, 0, 4, 2),
            Observation::Started { node: 2, inc: 1 },
            Observation::Activated {
                node: 2,
                inc: 1,
                ring: (1, 8),
                members: vec![1, 2],
                seen: vec![k(1), k(2)],
            },
            Observation::Survivors {
                alive: BTreeMap::from([(1, 0), (2, 1)]),
            },
        ];
        assert_eq!(check(&obs, 100), vec![]);
    }

    #[test]
    fn each_property_is_caught() {
        let dup = vec![
            Observation::Started { node: 1, inc: 0 },
            acc(1, 0, 4, 1),
            acc(1, 0, 8, 1),
        ];
        assert_eq!(props(&check(&dup, 100)), vec![Property::NoDuplicate]);
        let unsynced = vec![
            Observation::Started { node: 1, inc: 0 },
            Observation::Started { node: 2, inc: 0 },
            acc(1, 0, 4, 1),
            Observation::Activated {
                node: 2,
                inc: 0,
                ring: (1, 8),
                members: vec![1, 2],
                seen: vec![],
            },
        ];
        assert_eq!(props(&check(&unsynced, 100)), vec![Property::SyncedSeen]);
        // At capacity, a missing key is an eviction, not a defect.
        assert_eq!(check(&unsynced, 0), vec![]);
        let order = vec![
            acc(1, 0, 4, 1),
            acc(1, 0, 4, 2),
            acc(2, 0, 4, 2),
            acc(2, 0, 4, 1),
        ];
        assert_eq!(props(&check(&order, 100)), vec![Property::Order]);
        let lost = vec![
            Observation::Started { node: 1, inc: 0 },
            Observation::Observed {
                node: 1,
                inc: 0,
                key: k(1),
            },
            Observation::Survivors {
                alive: BTreeMap::from([(1, 0)]),
            },
        ];
        assert_eq!(props(&check(&lost, 100)), vec![Property::Delivered]);
    }
}
