//! The quorum checker: judges what every node's quorum service told its tracking clients
//! after each configuration, in a simulated run (`ais/tests/sim_quorum.rs`).
//!
//! Properties:
//! - **Agreement**: every node that reported a state for a ring reported the same one
//!   (quorate, members, votes present, expected and needed);
//! - **Arithmetic**: the votes present are the members' votes; `expected_votes` is at least
//!   the largest any member is configured with and at least the votes present; `quorum` is
//!   `expected_votes / 2 + 1`, or 1 for a two-node cluster of two expected votes; quorate
//!   only with `quorum` votes present and not while waiting for all;
//! - **No two majorities**: two quorate configurations without a common member do not both
//!   hold a majority of the same expected votes (their votes together exceed what is
//!   expected) — the split-brain quorum exists to prevent.

use std::collections::BTreeMap;
use std::fmt;

use ais_proto::quorum::QuorumState;
use bytes::Bytes;

/// What one node's tracking client was told for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The node.
    pub node: u32,
    /// The state.
    pub state: QuorumState,
}

/// Each node's settings in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSettings {
    /// Its votes.
    pub votes: u32,
    /// Its configured `expected_votes`.
    pub expected_votes: u32,
    /// Its `two_node`.
    pub two_node: bool,
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// Members of one configuration disagree.
    Agreement,
    /// A state does not follow from its members' settings.
    Arithmetic,
    /// Two disjoint configurations were both quorate with more votes than expected.
    TwoMajorities,
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

/// Checks every observation of a run against `settings` (node id → settings).
pub fn check(
    observations: &[Observation],
    settings: &BTreeMap<u32, NodeSettings>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut by_ring: BTreeMap<&Bytes, &Observation> = BTreeMap::new();
    for o in observations {
        match by_ring.get(&o.state.ring) {
            Some(first) if first.state != o.state => out.push(Violation {
                property: Property::Agreement,
                detail: format!(
                    "ring {}: node {} was told {:?}, node {} {:?}",
                    String::from_utf8_lossy(&o.state.ring),
                    first.node,
                    first.state,
                    o.node,
                    o.state
                ),
            }),
            Some(_) => {}
            None => {
                by_ring.insert(&o.state.ring, o);
            }
        }
        if let Some(why) = arithmetic(&o.state, settings) {
            out.push(Violation {
                property: Property::Arithmetic,
                detail: format!("node {} was told {:?}: {why}", o.node, o.state),
            });
        }
    }
    let quorate: Vec<&QuorumState> = by_ring
        .values()
        .map(|o| &o.state)
        .filter(|s| s.quorate)
        .collect();
    for (i, a) in quorate.iter().enumerate() {
        for b in &quorate[i + 1..] {
            let disjoint = !a.members.iter().any(|m| b.members.contains(m));
            if disjoint
                && a.expected_votes == b.expected_votes
                && a.total_votes.saturating_add(b.total_votes) > a.expected_votes
            {
                out.push(Violation {
                    property: Property::TwoMajorities,
                    detail: format!(
                        "rings {} and {} were both quorate without a common member: {:?} and {:?}",
                        String::from_utf8_lossy(&a.ring),
                        String::from_utf8_lossy(&b.ring),
                        a,
                        b
                    ),
                });
            }
        }
    }
    out
}

fn arithmetic(s: &QuorumState, settings: &BTreeMap<u32, NodeSettings>) -> Option<String> {
    let members: Vec<NodeSettings> = s
        .members
        .iter()
        .map(|m| settings.get(m).copied())
        .collect::<Option<_>>()?;
    let total = members
        .iter()
        .fold(0u32, |sum, m| sum.saturating_add(m.votes));
    if s.total_votes != total {
        return Some(format!("the members have {total} votes"));
    }
    let configured = members.iter().map(|m| m.expected_votes).max().unwrap_or(0);
    if s.expected_votes < configured.max(total) {
        return Some(format!(
            "expected votes below the members' {configured} or the {total} present"
        ));
    }
    let two_node = members.iter().all(|m| m.two_node);
    let needed = if two_node && s.expected_votes == 2 {
        1
    } else {
        s.expected_votes / 2 + 1
    };
    if s.quorum != needed {
        return Some(format!("{needed} votes are needed"));
    }
    if s.quorate && (s.total_votes < s.quorum || s.waiting_for_all) {
        return Some("quorate without the votes needed, or while waiting for all".to_owned());
    }
    if !s.quorate && !s.waiting_for_all && s.total_votes >= s.quorum {
        return Some("not quorate with the votes needed".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(expected: &[u32]) -> BTreeMap<u32, NodeSettings> {
        expected
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                (
                    i as u32 + 1,
                    NodeSettings {
                        votes: 1,
                        expected_votes: e,
                        two_node: false,
                    },
                )
            })
            .collect()
    }

    fn state(ring: &'static [u8], members: &[u32], expected: u32, quorate: bool) -> QuorumState {
        QuorumState {
            quorate,
            ring: Bytes::from_static(ring),
            members: members.to_vec(),
            total_votes: members.len() as u32,
            expected_votes: expected,
            quorum: expected / 2 + 1,
            waiting_for_all: false,
        }
    }

    fn obs(node: u32, state: QuorumState) -> Observation {
        Observation { node, state }
    }

    #[test]
    fn a_correct_run_passes() {
        let s = settings(&[3, 3, 3]);
        let o = [
            obs(1, state(b"1.4", &[1, 2, 3], 3, true)),
            obs(2, state(b"1.4", &[1, 2, 3], 3, true)),
            obs(1, state(b"1.8", &[1, 2], 3, true)),
            obs(3, state(b"3.8", &[3], 3, false)),
        ];
        assert_eq!(check(&o, &s), []);
    }

    #[test]
    fn members_that_disagree_are_caught() {
        // Node 3 expects 4: node 1 used only its own 3 (the defect), node 3 the largest.
        let s = settings(&[3, 3, 4]);
        let o = [
            obs(1, state(b"1.8", &[1, 3], 3, true)),
            obs(3, state(b"1.8", &[1, 3], 4, false)),
        ];
        let v = check(&o, &s);
        assert!(v.iter().any(|v| v.property == Property::Agreement), "{v:?}");
        assert!(
            v.iter().any(|v| v.property == Property::Arithmetic),
            "{v:?}"
        );
    }

    #[test]
    fn wrong_arithmetic_is_caught() {
        let s = settings(&[3, 3, 3]);
        for bad in [
            QuorumState {
                total_votes: 3,
                ..state(b"1.8", &[1, 2], 3, true)
            },
            QuorumState {
                quorum: 1,
                ..state(b"1.8", &[1], 3, true)
            },
            state(b"1.8", &[1], 3, true),
            state(b"1.8", &[1, 2], 3, false),
        ] {
            let v = check(&[obs(1, bad.clone())], &s);
            assert!(
                v.iter().any(|v| v.property == Property::Arithmetic),
                "{bad:?}: {v:?}"
            );
        }
    }

    #[test]
    fn two_disjoint_majorities_are_caught() {
        let s = settings(&[1, 1, 1, 1]);
        // Each pair believes it is quorate with expected 3 (a broken expectation).
        let mut a = state(b"1.8", &[1, 2], 3, true);
        let mut b = state(b"3.8", &[3, 4], 3, true);
        a.total_votes = 2;
        b.total_votes = 2;
        let v = check(&[obs(1, a), obs(3, b)], &s);
        assert!(
            v.iter().any(|v| v.property == Property::TwoMajorities),
            "{v:?}"
        );
    }
}
