//! The EVT checker: judges what every subscription was delivered, and the retained events
//! every node held at each sync activation, in a simulated run (`ais/tests/sim_evt.rs`).
//!
//! Properties:
//! - **Once**: no subscription is delivered one event twice.
//! - **Genuine**: every event delivered was published (applied by some node before) and
//!   matches the subscription's filters.
//! - **Order**: the nodes of one ring applied the events they have in common in one order;
//!   a subscription's live deliveries of one priority follow its node's apply order (higher
//!   priorities may overtake lower ones).
//! - **NoSilentLoss**: a subscription of a node that lived to the end of the run (with the
//!   run drained) was delivered every matching event its node applied after it subscribed,
//!   or was sent a lost-event notification after the point the event was applied at.
//! - **RetainedAgree**: the members that activated the sync of one ring hold the same
//!   retained events (those expiring within a second of the activations excepted: each node
//!   expires on its own clock).
//! - **RetainedDurable**: a node that lived to the end still holds, at its last activation,
//!   every retained event it held or applied before, unless it was cleared or has expired.
//!   With RetainedAgree, a retained event survives while a node holding it lives.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;

use ais_proto::evt::{EVENT_ID_LOST, Filter, matches};

use super::RetainedInfo;

/// Events expiring this close to an activation are not compared (nanoseconds).
pub const SLACK: u64 = 1_000_000_000;

/// Something seen in a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A node (re)started.
    Started {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
    },
    /// A subscription took effect (its answer came back).
    Subscribed {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
        /// The subscription id (one channel handle per node in the simulator).
        sub: u32,
        /// Its filters.
        filters: Vec<Filter>,
    },
    /// A node applied a publish.
    Applied {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
        /// The ring, `(representative, sequence)`.
        ring: (u32, u64),
        /// The event id.
        id: u64,
        /// When it was published.
        publish_time: u64,
        /// Its priority.
        priority: u8,
        /// Its patterns.
        patterns: Vec<Bytes>,
        /// When it expires (`None`: not retained).
        expires: Option<u64>,
    },
    /// A subscription was sent an event (or a lost-event notification: `EVENT_ID_LOST`).
    Delivered {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
        /// The subscription.
        sub: u32,
        /// The event id.
        id: u64,
        /// When it was published.
        publish_time: u64,
        /// Its priority.
        priority: u8,
    },
    /// A node activated the sync of a ring.
    Activated {
        /// The node.
        node: u32,
        /// Its incarnation.
        inc: u32,
        /// The ring.
        ring: (u32, u64),
        /// The node's clock then.
        now: u64,
        /// The events it retained then.
        retained: Vec<RetainedInfo>,
    },
    /// A node applied a retention clear.
    Cleared {
        /// The event.
        id: u64,
        /// When it was published.
        publish_time: u64,
    },
    /// The run ended drained with these incarnations alive: the end-of-run properties
    /// apply to them.
    Survivors {
        /// `(node, incarnation)` pairs.
        alive: Vec<(u32, u32)>,
    },
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// See the module doc.
    Once,
    /// See the module doc.
    Genuine,
    /// See the module doc.
    Order,
    /// See the module doc.
    NoSilentLoss,
    /// See the module doc.
    RetainedAgree,
    /// See the module doc.
    RetainedDurable,
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
        write!(f, "evt {:?}: {}", self.property, self.detail)
    }
}

type Inc = (u32, u32);
/// An event's identity: (id, publish time).
type Ek = (u64, u64);
/// One activation: who, its clock, its retained events with their expiry.
type Act = (Inc, u64, BTreeMap<Ek, u64>);

#[derive(Debug)]
struct SubState {
    filters: Vec<Filter>,
    /// Applies at its node before it subscribed.
    since: usize,
    delivered: BTreeSet<Ek>,
    last_live: [Option<usize>; 4],
    lost_at: Vec<usize>,
}

#[derive(Debug)]
struct AppliedAt {
    id: Ek,
    stream: usize,
    patterns: Vec<Bytes>,
    expires: Option<u64>,
}

#[derive(Debug, Default)]
struct IncState {
    stream: usize,
    applied: Vec<AppliedAt>,
    index: BTreeMap<Ek, usize>,
    subs: BTreeMap<u32, SubState>,
    /// (applies before it, now, retained ids with expiry)
    activations: Vec<(usize, u64, BTreeMap<Ek, u64>)>,
}

/// Checks a run's observations.
pub fn check(obs: &[Observation]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |property, detail: String| out.push(Violation { property, detail });
    let mut incs: BTreeMap<Inc, IncState> = BTreeMap::new();
    let mut published: BTreeMap<Ek, Vec<Bytes>> = BTreeMap::new();
    let mut ring_order: BTreeMap<(u32, u64), BTreeMap<Inc, Vec<Ek>>> = BTreeMap::new();
    let mut ring_retained: BTreeMap<(u32, u64), Vec<Act>> = BTreeMap::new();
    let mut cleared = BTreeSet::new();
    let mut survivors: Option<Vec<Inc>> = None;
    for o in obs {
        match o {
            Observation::Started { node, inc } => {
                incs.insert((*node, *inc), IncState::default());
            }
            Observation::Subscribed {
                node,
                inc,
                sub,
                filters,
            } => {
                let s = incs.entry((*node, *inc)).or_default();
                let since = s.applied.len();
                s.subs.insert(
                    *sub,
                    SubState {
                        filters: filters.clone(),
                        since,
                        delivered: BTreeSet::new(),
                        last_live: [None; 4],
                        lost_at: Vec::new(),
                    },
                );
            }
            Observation::Applied {
                node,
                inc,
                ring,
                id,
                publish_time,
                patterns,
                expires,
                ..
            } => {
                let id = &(*id, *publish_time);
                let s = incs.entry((*node, *inc)).or_default();
                if s.index.insert(*id, s.applied.len()).is_some() {
                    v(
                        Property::Once,
                        format!("node {node}.{inc} applied event {:#x} twice", id.0),
                    );
                }
                s.applied.push(AppliedAt {
                    id: *id,
                    stream: s.stream,
                    patterns: patterns.clone(),
                    expires: *expires,
                });
                published.insert(*id, patterns.clone());
                ring_order
                    .entry(*ring)
                    .or_default()
                    .entry((*node, *inc))
                    .or_default()
                    .push(*id);
            }
            Observation::Delivered {
                node,
                inc,
                sub,
                id: raw_id,
                publish_time,
                priority,
            } => {
                let id = &(*raw_id, *publish_time);
                let s = incs.entry((*node, *inc)).or_default();
                let at = s.stream;
                s.stream += 1;
                let Some(st) = s.subs.get_mut(sub) else {
                    v(
                        Property::Genuine,
                        format!("node {node}.{inc}: delivery to unknown subscription {sub}"),
                    );
                    continue;
                };
                if *raw_id == EVENT_ID_LOST {
                    st.lost_at.push(at);
                    continue;
                }
                if !st.delivered.insert(*id) {
                    v(
                        Property::Once,
                        format!("node {node}.{inc} subscription {sub}: event {raw_id:#x} twice"),
                    );
                }
                match published.get(id) {
                    None => v(
                        Property::Genuine,
                        format!(
                            "node {node}.{inc} subscription {sub}: event {raw_id:#x} never published"
                        ),
                    ),
                    Some(p) if !matches(&st.filters, p) => v(
                        Property::Genuine,
                        format!(
                            "node {node}.{inc} subscription {sub}: event {raw_id:#x} does not match"
                        ),
                    ),
                    Some(_) => {}
                }
                if let Some(&ix) = s.index.get(id)
                    && ix >= st.since
                {
                    let p = usize::from((*priority).min(3));
                    if let Some(last) = st.last_live[p]
                        && ix < last
                    {
                        v(
                            Property::Order,
                            format!(
                                "node {node}.{inc} subscription {sub}: event {raw_id:#x} (applied \
                                 {ix}) after one applied {last}, priority {priority}"
                            ),
                        );
                    }
                    st.last_live[p] = Some(ix.max(st.last_live[p].unwrap_or(0)));
                }
            }
            Observation::Activated {
                node,
                inc,
                ring,
                now,
                retained,
            } => {
                let set: BTreeMap<Ek, u64> = retained
                    .iter()
                    .map(|r| ((r.id, r.publish_time), r.expires))
                    .collect();
                let s = incs.entry((*node, *inc)).or_default();
                s.activations.push((s.applied.len(), *now, set.clone()));
                ring_retained
                    .entry(*ring)
                    .or_default()
                    .push(((*node, *inc), *now, set));
            }
            Observation::Cleared { id, publish_time } => {
                cleared.insert((*id, *publish_time));
            }
            Observation::Survivors { alive } => survivors = Some(alive.clone()),
        }
    }
    // Order: common events in one order at every node of a ring.
    for (ring, nodes) in &ring_order {
        let lists: Vec<(&Inc, &Vec<Ek>)> = nodes.iter().collect();
        for i in 0..lists.len() {
            for j in i + 1..lists.len() {
                let (a, la) = lists[i];
                let (b, lb) = lists[j];
                let sa: BTreeSet<Ek> = la.iter().copied().collect();
                let sb: BTreeSet<Ek> = lb.iter().copied().collect();
                let ca: Vec<Ek> = la.iter().copied().filter(|x| sb.contains(x)).collect();
                let cb: Vec<Ek> = lb.iter().copied().filter(|x| sa.contains(x)).collect();
                if ca != cb {
                    v(
                        Property::Order,
                        format!(
                            "ring {}.{}: nodes {}.{} and {}.{} applied common events in \
                             different orders",
                            ring.0, ring.1, a.0, a.1, b.0, b.1
                        ),
                    );
                }
            }
        }
    }
    // RetainedAgree.
    for (ring, acts) in &ring_retained {
        let Some(max_now) = acts.iter().map(|a| a.1).max() else {
            continue;
        };
        let min_now = acts.iter().map(|a| a.1).min().unwrap_or(max_now);
        let stable = |set: &BTreeMap<Ek, u64>| -> BTreeSet<Ek> {
            set.iter()
                .filter(|(_, e)| **e > max_now.saturating_add(SLACK) || **e < min_now)
                .map(|(id, _)| *id)
                .collect()
        };
        let first = stable(&acts[0].2);
        for a in &acts[1..] {
            let other = stable(&a.2);
            if other != first {
                let diff: Vec<String> = first
                    .symmetric_difference(&other)
                    .take(3)
                    .map(|id| format!("{:#x}", id.0))
                    .collect();
                v(
                    Property::RetainedAgree,
                    format!(
                        "ring {}.{}: nodes {}.{} and {}.{} retain different events ({})",
                        ring.0,
                        ring.1,
                        acts[0].0.0,
                        acts[0].0.1,
                        a.0.0,
                        a.0.1,
                        diff.join(", ")
                    ),
                );
            }
        }
    }
    let Some(alive) = survivors else {
        return out;
    };
    for inc in &alive {
        let Some(s) = incs.get(inc) else { continue };
        // NoSilentLoss.
        for (sub, st) in &s.subs {
            for a in &s.applied[st.since.min(s.applied.len())..] {
                if st.delivered.contains(&a.id) || !matches(&st.filters, &a.patterns) {
                    continue;
                }
                if !st.lost_at.iter().any(|&l| l >= a.stream) {
                    v(
                        Property::NoSilentLoss,
                        format!(
                            "node {}.{} subscription {sub}: event {:#x} neither delivered nor \
                             reported lost",
                            inc.0, inc.1, a.id.0
                        ),
                    );
                }
            }
        }
        // RetainedDurable.
        let Some((applied_before, now, last)) = s.activations.last() else {
            continue;
        };
        let keep = |id: &Ek, e: u64| e > now.saturating_add(SLACK) && !cleared.contains(id);
        let mut want: BTreeMap<Ek, u64> = BTreeMap::new();
        for (_, _, set) in &s.activations {
            want.extend(set.iter().map(|(k, v)| (*k, *v)));
        }
        for a in &s.applied[..*applied_before] {
            if let Some(e) = a.expires {
                want.insert(a.id, e);
            }
        }
        for (id, e) in want {
            if keep(&id, e) && !last.contains_key(&id) {
                v(
                    Property::RetainedDurable,
                    format!(
                        "node {}.{} lost retained event {:#x} (expires {e}, now {now})",
                        inc.0, inc.1, id.0
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ais_proto::evt::FilterType;

    fn pass_all() -> Vec<Filter> {
        vec![Filter {
            kind: FilterType::PassAll.code(),
            pattern: Bytes::new(),
        }]
    }

    fn prefix(p: &'static str) -> Vec<Filter> {
        vec![Filter {
            kind: FilterType::Prefix.code(),
            pattern: Bytes::from_static(p.as_bytes()),
        }]
    }

    fn applied(node: u32, id: u64, priority: u8, pattern: &'static str) -> Observation {
        Observation::Applied {
            node,
            inc: 0,
            ring: (1, 4),
            id,
            publish_time: 0,
            priority,
            patterns: vec![Bytes::from_static(pattern.as_bytes())],
            expires: None,
        }
    }

    fn delivered(node: u32, sub: u32, id: u64, priority: u8) -> Observation {
        Observation::Delivered {
            node,
            inc: 0,
            sub,
            id,
            publish_time: 0,
            priority,
        }
    }

    fn subscribed(node: u32, sub: u32, filters: Vec<Filter>) -> Observation {
        Observation::Subscribed {
            node,
            inc: 0,
            sub,
            filters,
        }
    }

    fn activated(node: u32, ring: (u32, u64), now: u64, ids: &[(u64, u64)]) -> Observation {
        Observation::Activated {
            node,
            inc: 0,
            ring,
            now,
            retained: ids
                .iter()
                .map(|&(id, expires)| RetainedInfo {
                    id,
                    publish_time: 0,
                    expires,
                })
                .collect(),
        }
    }

    fn survivors(nodes: &[u32]) -> Observation {
        Observation::Survivors {
            alive: nodes.iter().map(|&n| (n, 0)).collect(),
        }
    }

    fn props(obs: &[Observation]) -> Vec<Property> {
        check(obs).into_iter().map(|v| v.property).collect()
    }

    /// Two nodes, one subscription each (one filtering), events of two priorities, one
    /// retained: nothing to say.
    fn good() -> Vec<Observation> {
        vec![
            Observation::Started { node: 1, inc: 0 },
            Observation::Started { node: 2, inc: 0 },
            activated(1, (1, 4), 0, &[]),
            activated(2, (1, 4), 0, &[]),
            subscribed(1, 1, pass_all()),
            subscribed(2, 1, prefix("a")),
            applied(1, 10, 3, "a1"),
            applied(2, 10, 3, "a1"),
            delivered(1, 1, 10, 3),
            delivered(2, 1, 10, 3),
            applied(1, 11, 0, "b"),
            applied(2, 11, 0, "b"),
            applied(1, 12, 3, "a2"),
            applied(2, 12, 3, "a2"),
            delivered(1, 1, 11, 0),
            delivered(1, 1, 12, 3),
            delivered(2, 1, 12, 3),
            survivors(&[1, 2]),
        ]
    }

    #[test]
    fn a_good_history_passes() {
        assert_eq!(check(&good()), vec![]);
    }

    #[test]
    fn a_duplicate_delivery_is_caught() {
        let mut h = good();
        h.insert(h.len() - 1, delivered(2, 1, 12, 3));
        assert_eq!(props(&h), [Property::Once]);
    }

    #[test]
    fn an_invented_or_unmatched_event_is_caught() {
        let mut h = good();
        h.insert(h.len() - 1, delivered(2, 1, 99, 3));
        h.insert(h.len() - 1, delivered(2, 1, 11, 0));
        assert_eq!(props(&h), [Property::Genuine, Property::Genuine]);
    }

    #[test]
    fn a_reordered_priority_is_caught_and_overtaking_is_not() {
        let mut h = good();
        // Node 1 delivers 12 before 10 (both priority 3).
        let i = h.iter().position(|o| *o == delivered(1, 1, 10, 3)).unwrap();
        h.remove(i);
        h.insert(h.len() - 1, delivered(1, 1, 10, 3));
        assert_eq!(props(&h), [Property::Order]);
        // A later priority-0 event may overtake an earlier priority-3 one.
        let mut h = good();
        let i = h.iter().position(|o| *o == delivered(1, 1, 10, 3)).unwrap();
        let d = h.remove(i);
        let j = h.iter().position(|o| *o == delivered(1, 1, 11, 0)).unwrap();
        h.insert(j + 1, d);
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn nodes_applying_in_different_orders_are_caught() {
        let mut h = good();
        let i = h.iter().position(|o| *o == applied(2, 11, 0, "b")).unwrap();
        let a = h.remove(i);
        let j = h
            .iter()
            .position(|o| *o == applied(2, 10, 3, "a1"))
            .unwrap();
        h.insert(j, a);
        assert!(props(&h).contains(&Property::Order));
    }

    #[test]
    fn a_silent_gap_is_caught_and_a_lost_notification_covers_it() {
        let mut h = good();
        let i = h.iter().position(|o| *o == delivered(2, 1, 12, 3)).unwrap();
        h.remove(i);
        assert_eq!(props(&h), [Property::NoSilentLoss]);
        // A lost notification after the gap covers it.
        h.insert(h.len() - 1, delivered(2, 1, EVENT_ID_LOST, 0));
        assert_eq!(check(&h), vec![]);
        // One sent before the event was applied does not.
        let mut h = good();
        let i = h.iter().position(|o| *o == delivered(2, 1, 12, 3)).unwrap();
        h.remove(i);
        h.insert(6, delivered(2, 1, EVENT_ID_LOST, 0));
        assert_eq!(props(&h), [Property::NoSilentLoss]);
        // A node that did not live to the end is not judged.
        let mut h = good();
        let i = h.iter().position(|o| *o == delivered(2, 1, 12, 3)).unwrap();
        h.remove(i);
        *h.last_mut().unwrap() = survivors(&[1]);
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn retained_sets_must_agree_and_last() {
        let far = 100 * SLACK;
        let h = vec![
            activated(1, (1, 8), 0, &[(5, far), (6, far)]),
            activated(2, (1, 8), 0, &[(5, far)]),
        ];
        assert_eq!(props(&h), [Property::RetainedAgree]);
        // One expiring around the activations is not compared.
        let h = vec![
            activated(1, (1, 8), 0, &[(5, far), (6, SLACK / 2)]),
            activated(2, (1, 8), 10, &[(5, far)]),
        ];
        assert_eq!(check(&h), vec![]);
        // Durable: node 1 held 5, then lost it; a clear or its expiry excuses it.
        let lost = vec![
            activated(1, (1, 8), 0, &[(5, far)]),
            activated(1, (1, 12), 10, &[]),
            survivors(&[1]),
        ];
        assert_eq!(props(&lost), [Property::RetainedDurable]);
        let mut cleared = lost.clone();
        cleared.insert(
            1,
            Observation::Cleared {
                id: 5,
                publish_time: 0,
            },
        );
        assert_eq!(check(&cleared), vec![]);
        let expired = vec![
            activated(1, (1, 8), 0, &[(5, 2 * SLACK)]),
            activated(1, (1, 12), 3 * SLACK, &[]),
            survivors(&[1]),
        ];
        assert_eq!(check(&expired), vec![]);
        // An event applied with a retention counts as held.
        let applied_lost = vec![
            activated(1, (1, 8), 0, &[]),
            Observation::Applied {
                node: 1,
                inc: 0,
                ring: (1, 8),
                id: 7,
                publish_time: 0,
                priority: 1,
                patterns: vec![],
                expires: Some(far),
            },
            activated(1, (1, 12), 10, &[]),
            survivors(&[1]),
        ];
        assert_eq!(props(&applied_lost), [Property::RetainedDurable]);
    }
}
