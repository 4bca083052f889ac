//! The CLM checker: judges the views every node's tracking client was told in a simulated run
//! (`ais/tests/sim_clm.rs`), each client tracking with `CHANGES`.
//!
//! Properties:
//! - **Agreement**: every node told the view of one configuration (one ring: view numbers,
//!   the ring's sequence / 4, repeat in concurrent partitions) was told the same members, with
//!   the same records (id, name, address, boot time, initial view);
//! - **Changes**: each callback lists every member of the new view once (`NoChange`, `Joined`
//!   or `Reconfigured`, `member` true) and exactly the previous view's members that are gone
//!   (`Left`, `member` false); `Joined` exactly for the nodes new since the client's previous
//!   view; the member count is the number of members;
//! - **Order**: the view numbers one client is told rise.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ais_proto::clm::{Change, ClusterNode, View};

/// What one tracking client was told: its node, the node's incarnation (a restart starts a
/// new client), the configuration's ring, and the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The node.
    pub node: u32,
    /// Its incarnation.
    pub incarnation: u32,
    /// The ring of the configuration, `(representative, sequence)`.
    pub ring: (u32, u64),
    /// The callback's view.
    pub view: View,
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// Nodes disagree about one view.
    Agreement,
    /// A callback's changes do not follow from the client's previous view.
    Changes,
    /// View numbers did not rise.
    Order,
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

/// A view's members by id.
type Members<'a> = BTreeMap<u32, &'a ClusterNode>;

fn members(v: &View) -> Members<'_> {
    v.items
        .iter()
        .filter(|(n, _)| n.member)
        .map(|(n, _)| (n.node_id, n))
        .collect()
}

/// Checks every observation of a run.
pub fn check(observations: &[Observation]) -> Vec<Violation> {
    let mut out = Vec::new();
    // Per ring: the first node told its view, and the members it was told.
    let mut by_ring: BTreeMap<(u32, u64), (u32, Members<'_>)> = BTreeMap::new();
    let mut last: BTreeMap<(u32, u32), &View> = BTreeMap::new();
    for o in observations {
        let v = &o.view;
        let now = members(v);
        match by_ring.get(&o.ring) {
            Some((first, seen)) if *seen != now => out.push(Violation {
                property: Property::Agreement,
                detail: format!(
                    "view {} (ring {}.{}): node {first} was told {:?}, node {} {:?}",
                    v.view_number,
                    o.ring.0,
                    o.ring.1,
                    seen.values().collect::<Vec<_>>(),
                    o.node,
                    now.values().collect::<Vec<_>>()
                ),
            }),
            Some(_) => {}
            None => {
                by_ring.insert(o.ring, (o.node, now.clone()));
            }
        }
        let prev = last.insert((o.node, o.incarnation), v);
        if let Some(why) = changes(prev, v) {
            out.push(Violation {
                property: Property::Changes,
                detail: format!("node {} view {}: {why}", o.node, v.view_number),
            });
        }
        if let Some(p) = prev
            && p.view_number >= v.view_number
        {
            out.push(Violation {
                property: Property::Order,
                detail: format!(
                    "node {} was told view {} after view {}",
                    o.node, v.view_number, p.view_number
                ),
            });
        }
    }
    out
}

fn changes(prev: Option<&View>, v: &View) -> Option<String> {
    let before: BTreeMap<u32, &ClusterNode> = prev.map(members).unwrap_or_default();
    let now = members(v);
    if v.members as usize != now.len() {
        return Some(format!(
            "{} members counted, {} listed",
            v.members,
            now.len()
        ));
    }
    let ids: Vec<u32> = v.items.iter().map(|(n, _)| n.node_id).collect();
    if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
        return Some(format!("a node listed twice: {ids:?}"));
    }
    for (n, c) in &v.items {
        let expected = match (before.get(&n.node_id), n.member) {
            (None, true) => Change::Joined,
            (Some(b), true) if *b != n => Change::Reconfigured,
            (Some(_), true) => Change::NoChange,
            (Some(_), false) => Change::Left,
            // The client's first callback may follow a view it never saw (its track request
            // waited for the node's first sync): a node that left that view is not news to
            // check against anything.
            (None, false) if prev.is_none() => Change::Left,
            (None, false) => {
                return Some(format!("node {} left without being a member", n.node_id));
            }
        };
        // Without a previous view (the client's first callback) every member is new to it,
        // but the service compares with its own previous view: only the kinds are checked.
        if prev.is_some() && *c != expected {
            return Some(format!(
                "node {} is {c:?}, expected {expected:?}",
                n.node_id
            ));
        }
        if n.member == (*c == Change::Left) {
            return Some(format!(
                "node {} is {c:?} with member {}",
                n.node_id, n.member
            ));
        }
    }
    let gone: Vec<&u32> = before.keys().filter(|id| !now.contains_key(id)).collect();
    let left: Vec<&u32> = v
        .items
        .iter()
        .filter(|(_, c)| *c == Change::Left)
        .map(|(n, _)| &n.node_id)
        .collect();
    if prev.is_some() && gone != left {
        return Some(format!("gone {gone:?}, told left {left:?}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use ais_proto::clm::NodeAddress;
    use bytes::Bytes;

    use super::*;

    fn node(id: u32, initial: u64) -> ClusterNode {
        ClusterNode {
            node_id: id,
            address: NodeAddress::V4([10, 0, 0, id as u8]),
            name: Bytes::from(format!("n{id}")),
            member: true,
            boot_timestamp: 7,
            initial_view_number: initial,
        }
    }

    fn view(number: u64, items: Vec<(ClusterNode, Change)>) -> View {
        let members = items.iter().filter(|(n, _)| n.member).count() as u32;
        View {
            view_number: number,
            items,
            members,
        }
    }

    fn obs(node: u32, v: View) -> Observation {
        Observation {
            node,
            incarnation: 0,
            ring: (1, v.view_number * 4),
            view: v,
        }
    }

    fn left(mut n: ClusterNode) -> (ClusterNode, Change) {
        n.member = false;
        (n, Change::Left)
    }

    #[test]
    fn a_correct_history_passes() {
        let o = [
            obs(
                1,
                view(
                    1,
                    vec![(node(1, 1), Change::Joined), (node(2, 1), Change::Joined)],
                ),
            ),
            obs(
                2,
                view(
                    1,
                    vec![(node(1, 1), Change::Joined), (node(2, 1), Change::Joined)],
                ),
            ),
            obs(
                1,
                view(2, vec![(node(1, 1), Change::NoChange), left(node(2, 1))]),
            ),
        ];
        assert_eq!(check(&o), []);
    }

    #[test]
    fn disagreement_is_caught() {
        let o = [
            obs(
                1,
                view(
                    3,
                    vec![(node(1, 1), Change::Joined), (node(2, 1), Change::Joined)],
                ),
            ),
            obs(
                2,
                view(
                    3,
                    vec![(node(1, 3), Change::Joined), (node(2, 1), Change::Joined)],
                ),
            ),
        ];
        assert!(check(&o).iter().any(|v| v.property == Property::Agreement));
    }

    #[test]
    fn wrong_changes_and_order_are_caught() {
        let first = view(
            1,
            vec![(node(1, 1), Change::Joined), (node(2, 1), Change::Joined)],
        );
        for bad in [
            // Node 2 gone but not told left.
            view(2, vec![(node(1, 1), Change::NoChange)]),
            // Told joined though it was there.
            view(
                2,
                vec![(node(1, 1), Change::Joined), (node(2, 1), Change::NoChange)],
            ),
            // A wrong member count.
            View {
                members: 5,
                ..view(
                    2,
                    vec![
                        (node(1, 1), Change::NoChange),
                        (node(2, 1), Change::NoChange),
                    ],
                )
            },
        ] {
            let v = check(&[obs(1, first.clone()), obs(1, bad.clone())]);
            assert!(
                v.iter().any(|v| v.property == Property::Changes),
                "{bad:?}: {v:?}"
            );
        }
        let v = check(&[obs(1, first.clone()), obs(1, first)]);
        assert!(v.iter().any(|v| v.property == Property::Order), "{v:?}");
    }
}
