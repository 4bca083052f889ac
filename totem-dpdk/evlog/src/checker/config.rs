//! Properties 9, 12 and 13: configuration events, ring-id uniqueness and agreement, and each
//! node's configuration sequence.

use super::fast::HashMap;

use totem_dpdk::{NodeId, RingId};

use super::index::{Ev, Index};
use super::{Property, Sink};
use crate::log::{ConfigEvent, ConfigKind, LogEvent};

fn strictly_ascending(list: &[NodeId]) -> bool {
    list.windows(2).all(|w| w[0] < w[1])
}

/// Whether every node of `small` is in `big` (by search, so that lists property 9 finds
/// unsorted give no further reports; member lists are short).
fn is_subset(small: &[NodeId], big: &[NodeId]) -> bool {
    small.iter().all(|n| big.contains(n))
}

/// A node list as `[1,2,3]`.
pub(super) fn ids(list: &[NodeId]) -> String {
    let v: Vec<String> = list.iter().map(NodeId::to_string).collect();
    format!("[{}]", v.join(","))
}

/// Property 9: Configuration events are well formed (E3).
///
/// Each event: `members`, `left` and `joined` ascending without repeats; the node is in its own
/// members (E3); a regular configuration's `joined` are members and its `left` are not; a
/// transitional configuration's `left` are not members. (Agreement between nodes is property
/// 12, the order of configurations at a node property 13.)
pub(super) fn config_events(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::ConfigEvents;
    for (&node, evs) in &ix.cfg_evs {
        for &i in evs {
            let LogEvent::Config(c) = &ix.events[i as usize] else {
                continue;
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
            if c.kind == ConfigKind::Regular
                && let Some(n) = c.joined.iter().find(|n| !c.members.contains(n))
            {
                sink.report(p, Some(i), || {
                    format!("node {node}: regular configuration of ring {ring} lists {n} as joined but not member")
                });
            }
        }
    }
}

/// Property 12: Ring-id uniqueness and configuration agreement (E4, M1).
///
/// A ring id names one member list in the whole log: every regular configuration of a ring,
/// at any node and in any incarnation of it (restarts included), has the same members as the
/// first one logged. At each node, every regular ring's seq is greater than the seq of every
/// ring the node installed before, across its restarts too (the ring seq is persisted). Every
/// node going from ring r0 to ring r1 through a transitional configuration gives that
/// transitional configuration the same members.
pub(super) fn ring_id_unique(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::RingIdUnique;
    // Transitional member lists, keyed by (old ring, new ring).
    let mut trans: HashMap<(RingId, RingId), Ev> = HashMap::default();
    for (&node, evs) in &ix.cfg_evs {
        // Highest ring installed so far, and the time of a restart since then.
        let mut last: Option<RingId> = None;
        let mut restarted: Option<u64> = None;
        // A transitional configuration not yet followed by a regular one.
        let mut pending: Option<(Ev, &ConfigEvent)> = None;
        for &i in evs {
            let c = match &ix.events[i as usize] {
                LogEvent::Config(c) if c.kind == ConfigKind::Regular => c,
                LogEvent::Config(c) => {
                    pending = Some((i, c));
                    continue;
                }
                LogEvent::Restart { t, .. } => {
                    restarted = Some(*t);
                    pending = None;
                    continue;
                }
                _ => {
                    pending = None;
                    continue;
                }
            };
            let ring = c.ring;
            if let Some(first) = ix.ring_config[ix.ring_of(ring) as usize]
                && first != i
            {
                let f = ix.config(first);
                if f.members != c.members {
                    sink.report(p, Some(i), || {
                        format!(
                            "node {node} installed ring {ring} with members {} at t={}, but node {} \
                             installed it with members {} at t={}: one ring id names two memberships",
                            ids(&c.members),
                            c.t,
                            f.node,
                            ids(&f.members),
                            f.t
                        )
                    });
                }
            }
            if let Some(prev) = last.filter(|l| ring.seq <= l.seq) {
                sink.report(p, Some(i), || {
                    let across = restarted
                        .map(|t| format!(" (across its restart at t={t})"))
                        .unwrap_or_default();
                    format!(
                        "node {node} installed ring {ring} after ring {prev}{across}: ring seq did not increase"
                    )
                });
            }
            if last.is_none_or(|l| ring.seq > l.seq) {
                last = Some(ring);
                restarted = None;
            }
            if let Some((tev, t)) = pending.take() {
                match trans.get(&(t.ring, ring)) {
                    None => {
                        trans.insert((t.ring, ring), tev);
                    }
                    Some(&first) => {
                        let f = ix.config(first);
                        if f.members != t.members {
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
        }
    }
}

/// Property 13: Well-formed configuration sequence at each node (E5).
///
/// At each node, after its start and after every restart: a regular configuration comes
/// first; a transitional configuration names the node's current regular ring (the ring that
/// ends), and its members are a subset of that ring's members; a transitional configuration is
/// followed by a regular configuration (or by the node's crash, or the end of the log), not by
/// another transitional one, and its members are a subset of that next ring's members. (That
/// the node is in its own transitional configuration is E3, property 9.)
pub(super) fn config_sequence(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::ConfigSequence;
    for (&node, evs) in &ix.cfg_evs {
        // The current regular configuration (none before the first, after a crash or restart,
        // and after a transitional configuration).
        let mut current: Option<&ConfigEvent> = None;
        // A transitional configuration not yet followed by a regular one.
        let mut pending: Option<&ConfigEvent> = None;
        for &i in evs {
            let c = match &ix.events[i as usize] {
                LogEvent::Config(c) => c,
                _ => {
                    current = None;
                    pending = None;
                    continue;
                }
            };
            let ring = c.ring;
            match c.kind {
                ConfigKind::Regular => {
                    if let Some(t) = pending.take()
                        && !is_subset(&t.members, &c.members)
                    {
                        sink.report(p, Some(i), || {
                            format!(
                                "node {node}: transitional members {} (ring {} ending, t={}) are not \
                                 all members of the next ring {ring} {}",
                                ids(&t.members),
                                t.ring,
                                t.t,
                                ids(&c.members)
                            )
                        });
                    }
                    current = Some(c);
                }
                ConfigKind::Transitional => {
                    match (current, pending) {
                        (_, Some(prev)) => sink.report(p, Some(i), || {
                            format!(
                                "node {node}: second transitional configuration (ring {ring}) after the \
                                 transitional configuration of ring {} (t={}) without a regular one between",
                                prev.ring, prev.t
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
                                "node {node}: transitional configuration names ring {ring}, but the \
                                 node's current ring is {}",
                                reg.ring
                            )
                        }),
                        (None, None) => sink.report(p, Some(i), || {
                            format!(
                                "node {node}: transitional configuration of ring {ring} without a \
                                 regular configuration before it (since its start or restart)"
                            )
                        }),
                    }
                    pending = Some(c);
                    current = None;
                }
            }
        }
    }
}
