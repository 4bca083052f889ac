//! Property 9: configuration events.

use super::fast::HashMap;

use totem_dpdk::{NodeId, RingId};

use super::index::{Ev, Index, Ring};
use super::{Property, Sink};
use crate::log::{ConfigEvent, ConfigKind, LogEvent};

fn strictly_ascending(list: &[NodeId]) -> bool {
    list.windows(2).all(|w| w[0] < w[1])
}

fn is_subset(small: &[NodeId], big: &[NodeId]) -> bool {
    small.iter().all(|n| big.binary_search(n).is_ok())
}

fn ids(list: &[NodeId]) -> String {
    let v: Vec<String> = list.iter().map(NodeId::to_string).collect();
    format!("[{}]", v.join(","))
}

/// Property 9: Configuration events (E3, E4, E5).
///
/// Each event: `members`, `left` and `joined` ascending without repeats; the node is in its own
/// members (E3); a regular configuration's `joined` are members and its `left` are not; a
/// transitional configuration's `left` are not members.
///
/// Agreement (E4): every node that installs a ring gives it the same member list; every node
/// going from ring r0 to ring r1 through a transitional configuration gives that
/// transitional configuration the same members.
///
/// Sequence at each node (E5): regular ring seqs strictly increase, across restarts too; a
/// transitional configuration ends the node's current regular ring, names a subset of its
/// members, and is followed (unless the node crashes) by a regular configuration, whose members
/// include the transitional ones.
pub(super) fn config_events(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::ConfigEvents;
    // Agreement on regular member lists.
    let mut regular: HashMap<Ring, Ev> = HashMap::default();
    // Agreement on transitional member lists, keyed by (old ring, new ring).
    let mut trans: HashMap<(RingId, RingId), Ev> = HashMap::default();

    for (&node, evs) in &ix.nodes {
        // Highest regular ring seq installed so far (kept across crashes).
        let mut last_seq: Option<RingId> = None;
        // The current regular configuration (cleared by a crash).
        let mut current: Option<&ConfigEvent> = None;
        // A transitional configuration not yet followed by a regular one.
        let mut pending: Option<(Ev, &ConfigEvent)> = None;
        for &i in evs {
            let c = match &ix.events[i as usize] {
                LogEvent::Config(c) => c,
                LogEvent::Crash { .. } | LogEvent::Restart { .. } => {
                    current = None;
                    pending = None;
                    continue;
                }
                _ => continue,
            };
            let kind = c.kind.as_str();
            let ring = c.ring;
            for (name, list) in [
                ("members", &c.members),
                ("left", &c.left),
                ("joined", &c.joined),
            ] {
                if !strictly_ascending(list) {
                    sink.report(p, Some(i), || {
                        format!("node {node}: {kind} configuration of ring {ring} has {name} {} not ascending/unique", ids(list))
                    });
                }
            }
            if !c.members.contains(&node) {
                sink.report(p, Some(i), || {
                    format!(
                        "node {node} is not in its own {kind} configuration of ring {ring} {}",
                        ids(&c.members)
                    )
                });
            }
            if let Some(n) = c.left.iter().find(|n| c.members.contains(n)) {
                sink.report(p, Some(i), || {
                    format!("node {node}: {kind} configuration of ring {ring} lists {n} as both member and left")
                });
            }
            match c.kind {
                ConfigKind::Regular => {
                    if let Some(n) = c.joined.iter().find(|n| !c.members.contains(n)) {
                        sink.report(p, Some(i), || {
                            format!("node {node}: regular configuration of ring {ring} lists {n} as joined but not member")
                        });
                    }
                    let r = ix.ring_of(ring);
                    match regular.get(&r) {
                        None => {
                            regular.insert(r, i);
                        }
                        Some(&first) => {
                            if let LogEvent::Config(f) = &ix.events[first as usize]
                                && f.members != c.members
                            {
                                sink.report(p, Some(i), || {
                                    format!(
                                        "node {node} installed ring {ring} with members {}, but node {} with {}",
                                        ids(&c.members),
                                        f.node,
                                        ids(&f.members)
                                    )
                                });
                            }
                        }
                    }
                    if let Some(last) = last_seq.filter(|l| ring.seq <= l.seq) {
                        sink.report(p, Some(i), || {
                            format!("node {node} installed ring {ring} after ring {last}: ring seq did not increase")
                        });
                    }
                    if let Some((tev, t)) = pending.take() {
                        if !is_subset(&t.members, &c.members) {
                            sink.report(p, Some(i), || {
                                format!(
                                    "node {node}: transitional members {} of ring {} are not all members of \
                                     the next ring {ring} {}",
                                    ids(&t.members),
                                    t.ring,
                                    ids(&c.members)
                                )
                            });
                        }
                        match trans.get(&(t.ring, ring)) {
                            None => {
                                trans.insert((t.ring, ring), tev);
                            }
                            Some(&first) => {
                                if let LogEvent::Config(f) = &ix.events[first as usize]
                                    && f.members != t.members
                                {
                                    sink.report(p, Some(tev), || {
                                        format!(
                                            "node {node} went from ring {} to {ring} with transitional \
                                             members {}, but node {} with {}",
                                            t.ring,
                                            ids(&t.members),
                                            f.node,
                                            ids(&f.members)
                                        )
                                    });
                                }
                            }
                        }
                    }
                    if last_seq.is_none_or(|l| ring.seq > l.seq) {
                        last_seq = Some(ring);
                    }
                    current = Some(c);
                }
                ConfigKind::Transitional => {
                    match (current, pending) {
                        (_, Some((_, prev))) => sink.report(p, Some(i), || {
                            format!(
                                "node {node}: second transitional configuration (ring {ring}) after the \
                                 transitional configuration of ring {} without a regular one between",
                                prev.ring
                            )
                        }),
                        (Some(reg), None) if reg.ring == ring => {
                            if !is_subset(&c.members, &reg.members) {
                                sink.report(p, Some(i), || {
                                    format!(
                                        "node {node}: transitional members {} of ring {ring} are not all \
                                         members of that ring {}",
                                        ids(&c.members),
                                        ids(&reg.members)
                                    )
                                });
                            }
                        }
                        (Some(reg), None) => sink.report(p, Some(i), || {
                            format!(
                                "node {node}: transitional configuration of ring {ring} while in the \
                                 regular configuration of ring {}",
                                reg.ring
                            )
                        }),
                        (None, None) => sink.report(p, Some(i), || {
                            format!("node {node}: transitional configuration of ring {ring} without a regular one")
                        }),
                    }
                    pending = Some((i, c));
                    current = None;
                }
            }
        }
    }
}
