//! The CPG checker: the virtual-synchrony properties of closed process groups, checked on
//! what every process was told (its configuration-change and delivery callbacks), from a
//! simulated run or any other source that records them.
//!
//! A **view** is one configuration-change callback that includes the process: the group's
//! member list after the change. Two processes are in the same view when they installed a
//! change of the same group, caused by the same Totem event (the delivery of one message, or
//! one regular configuration), with the same member list. The properties:
//!
//! 1. [`Property::SenderInView`]: a message is delivered to a process only while it is in a
//!    view, and its sender is a member of that view.
//! 2. [`Property::ViewAgreement`]: a change's story (who joined and who left, and why: join,
//!    leave, nodedown, nodeup, procdown) is the difference between the process's previous
//!    view and the new one, and every process that moved from the same view to the same view
//!    was told the same story (after a merge, each side is told that the other side joined).
//! 3. [`Property::SameDeliveries`]: two processes in the same view deliver the messages they
//!    both deliver in the same order; when both then install the same next view and went
//!    through the same Totem configurations on the way (those of their deliveries and of the
//!    next view), they delivered the same messages in between. (A node that went through a
//!    transitional configuration, or through a ring the other node never installed, may have
//!    missed messages of members that failed: extended virtual synchrony allows that, and
//!    says so with the configurations.)
//! 4. [`Property::SelfInView`]: a process is in every view it is told about, except the one
//!    that tells it it left.
//! 5. [`Property::Converged`]: at the end of a run that settled, every process still in the
//!    group has the same view, and it lists exactly those processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use totem_dpdk::{MsgId, RingId};

use ais_proto::cpg::{CpgAddress, Reason};

/// The Totem event a node was handling when it told its processes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The delivery of a message.
    Message(MsgId),
    /// A configuration change installing this ring.
    Config(RingId),
    /// Something local to one node (its number there): never the same at two nodes.
    Local(u32, u64),
}

/// What a process was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    /// A configuration change of the group.
    View {
        /// The members after the change.
        members: Vec<CpgAddress>,
        /// Who joined, and why.
        joined: Vec<(CpgAddress, Reason)>,
        /// Who left, and why.
        left: Vec<(CpgAddress, Reason)>,
    },
    /// A message.
    Deliver {
        /// Its sender.
        sender: CpgAddress,
        /// The message (its identity).
        data: Bytes,
    },
}

/// The Totem configuration a node was in: a regular one (its ring), or the transitional one
/// that ends a ring (the ring and the members that move on together).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Conf {
    /// The ring.
    pub ring: RingId,
    /// `Some(members)` in the ring's transitional configuration.
    pub transitional: Option<Vec<u32>>,
}

/// One callback to one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The process told.
    pub process: CpgAddress,
    /// The Totem configuration its node was in.
    pub conf: Conf,
    /// The group.
    pub group: Bytes,
    /// What its node was handling.
    pub cause: Cause,
    /// What it was told.
    pub told: Told,
}

/// A property of [the module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// Property 1.
    SenderInView,
    /// Property 2.
    ViewAgreement,
    /// Property 3.
    SameDeliveries,
    /// Property 4.
    SelfInView,
    /// Property 5.
    Converged,
}

/// One violated property, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub property: Property,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.property, self.detail)
    }
}

fn addr(a: &CpgAddress) -> String {
    format!("{}/{}", a.node, a.pid)
}

fn group_name(g: &[u8]) -> String {
    String::from_utf8_lossy(g).into_owned()
}

/// A view's identity.
type ViewKey = (Bytes, Cause, Vec<CpgAddress>);

/// One process's time in one view: what it delivered, and which view came next.
struct Stay {
    process: CpgAddress,
    delivered: Vec<Bytes>,
    /// The Totem configurations of its deliveries and of the next view.
    confs: BTreeSet<Conf>,
    next: Option<ViewKey>,
}

/// Checks `records` (each process's callbacks in the order it got them; processes may be
/// interleaved). `settled`: for a run that settled, the processes still in each group at the
/// end (property 5 is checked only then).
pub fn check(
    records: &[Record],
    settled: Option<&BTreeMap<Bytes, BTreeSet<CpgAddress>>>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    // The story of each move from a view to a view, as first told.
    type Story = (Vec<(CpgAddress, Reason)>, Vec<(CpgAddress, Reason)>);
    let mut stories: BTreeMap<(Option<ViewKey>, ViewKey), Story> = BTreeMap::new();
    // Each process's current view and its stay there.
    let mut current: BTreeMap<(CpgAddress, Bytes), (ViewKey, usize)> = BTreeMap::new();
    let mut stays: BTreeMap<ViewKey, Vec<Stay>> = BTreeMap::new();
    let mut last_view: BTreeMap<(CpgAddress, Bytes), Option<Vec<CpgAddress>>> = BTreeMap::new();

    for r in records {
        let who = (r.process, r.group.clone());
        match &r.told {
            Told::View {
                members,
                joined,
                left,
            } => {
                let mut sorted = members.clone();
                sorted.sort_unstable();
                let key: ViewKey = (r.group.clone(), r.cause, sorted.clone());
                let story = (sorted_pairs(joined), sorted_pairs(left));
                let prev = current.get(&who).map(|(k, _)| k.clone());
                if let Some(prev) = &prev {
                    let was: BTreeSet<&CpgAddress> = prev.2.iter().collect();
                    let is: BTreeSet<&CpgAddress> = sorted.iter().collect();
                    let came: Vec<&CpgAddress> = is.difference(&was).copied().collect();
                    let went: Vec<&CpgAddress> = was.difference(&is).copied().collect();
                    let told_came: Vec<&CpgAddress> = story.0.iter().map(|(a, _)| a).collect();
                    let told_went: Vec<&CpgAddress> = story.1.iter().map(|(a, _)| a).collect();
                    if came != told_came || went != told_went {
                        out.push(Violation {
                            property: Property::ViewAgreement,
                            detail: format!(
                                "group {}: {} went from {:?} to {:?} at {:?} but was told joined {:?} left {:?}",
                                group_name(&r.group),
                                addr(&r.process),
                                prev.2.iter().map(addr).collect::<Vec<_>>(),
                                sorted.iter().map(addr).collect::<Vec<_>>(),
                                r.cause,
                                story.0,
                                story.1
                            ),
                        });
                    }
                }
                match stories.get(&(prev.clone(), key.clone())) {
                    Some(first) if *first != story => out.push(Violation {
                        property: Property::ViewAgreement,
                        detail: format!(
                            "group {}: {} was told joined {:?} left {:?} for view {:?} at {:?}; another member coming from the same view was told joined {:?} left {:?}",
                            group_name(&r.group),
                            addr(&r.process),
                            story.0,
                            story.1,
                            sorted.iter().map(addr).collect::<Vec<_>>(),
                            r.cause,
                            first.0,
                            first.1
                        ),
                    }),
                    Some(_) => {}
                    None => {
                        stories.insert((prev, key.clone()), story);
                    }
                }
                // The previous stay ends here.
                if let Some((prev, i)) = current.remove(&who)
                    && let Some(s) = stays.get_mut(&prev).and_then(|v| v.get_mut(i))
                {
                    s.next = Some(key.clone());
                    s.confs.insert(r.conf.clone());
                }
                let inside = sorted.contains(&r.process);
                let told_left = left.iter().any(|(a, _)| *a == r.process);
                if inside {
                    let list = stays.entry(key.clone()).or_default();
                    list.push(Stay {
                        process: r.process,
                        delivered: Vec::new(),
                        confs: BTreeSet::new(),
                        next: None,
                    });
                    current.insert(who.clone(), (key, list.len() - 1));
                    last_view.insert(who, Some(sorted));
                } else {
                    if !told_left {
                        out.push(Violation {
                            property: Property::SelfInView,
                            detail: format!(
                                "group {}: {} was told of a view {:?} ({:?}) that does not include it and does not say it left",
                                group_name(&r.group),
                                addr(&r.process),
                                sorted.iter().map(addr).collect::<Vec<_>>(),
                                r.cause
                            ),
                        });
                    }
                    last_view.insert(who, None);
                }
            }
            Told::Deliver { sender, data } => {
                let Some((key, i)) = current.get(&who) else {
                    out.push(Violation {
                        property: Property::SenderInView,
                        detail: format!(
                            "group {}: {} delivered a message from {} at {:?} while in no view",
                            group_name(&r.group),
                            addr(&r.process),
                            addr(sender),
                            r.cause
                        ),
                    });
                    continue;
                };
                if !key.2.contains(sender) {
                    out.push(Violation {
                        property: Property::SenderInView,
                        detail: format!(
                            "group {}: {} delivered a message from {} at {:?}, not a member of its view {:?}",
                            group_name(&r.group),
                            addr(&r.process),
                            addr(sender),
                            r.cause,
                            key.2.iter().map(addr).collect::<Vec<_>>()
                        ),
                    });
                    continue;
                }
                if let Some(s) = stays.get_mut(key).and_then(|v| v.get_mut(*i)) {
                    s.delivered.push(data.clone());
                    s.confs.insert(r.conf.clone());
                }
            }
        }
    }

    for (key, list) in &stays {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if let Some(detail) = compare(a, b) {
                    out.push(Violation {
                        property: Property::SameDeliveries,
                        detail: format!(
                            "group {} view {:?} ({:?}): {}",
                            group_name(&key.0),
                            key.2.iter().map(addr).collect::<Vec<_>>(),
                            key.1,
                            detail
                        ),
                    });
                }
            }
        }
    }

    if let Some(settled) = settled {
        converged(&last_view, settled, &mut out);
    }
    out
}

fn sorted_pairs(v: &[(CpgAddress, Reason)]) -> Vec<(CpgAddress, Reason)> {
    let mut v = v.to_vec();
    v.sort_unstable_by_key(|(a, r)| (*a, r.code()));
    v
}

/// Property 3 for two stays in one view.
fn compare(a: &Stay, b: &Stay) -> Option<String> {
    let in_a: BTreeSet<&Bytes> = a.delivered.iter().collect();
    let in_b: BTreeSet<&Bytes> = b.delivered.iter().collect();
    let common_a: Vec<&Bytes> = a.delivered.iter().filter(|m| in_b.contains(m)).collect();
    let common_b: Vec<&Bytes> = b.delivered.iter().filter(|m| in_a.contains(m)).collect();
    if common_a != common_b {
        return Some(format!(
            "{} and {} delivered their common messages in different orders",
            addr(&a.process),
            addr(&b.process)
        ));
    }
    if a.next.is_some() && a.next == b.next && a.confs == b.confs && in_a != in_b {
        return Some(format!(
            "{} delivered {} messages and {} delivered {} before the same next view; {} differ",
            addr(&a.process),
            a.delivered.len(),
            addr(&b.process),
            b.delivered.len(),
            in_a.symmetric_difference(&in_b).count()
        ));
    }
    None
}

/// Property 5.
fn converged(
    last_view: &BTreeMap<(CpgAddress, Bytes), Option<Vec<CpgAddress>>>,
    settled: &BTreeMap<Bytes, BTreeSet<CpgAddress>>,
    out: &mut Vec<Violation>,
) {
    for (group, expected) in settled {
        let expected: Vec<CpgAddress> = expected.iter().copied().collect();
        for p in &expected {
            let seen = last_view.get(&(*p, group.clone())).cloned().flatten();
            if seen.as_ref() != Some(&expected) {
                out.push(Violation {
                    property: Property::Converged,
                    detail: format!(
                        "group {}: at the end {} sees {:?}; the group is {:?}",
                        group_name(group),
                        addr(p),
                        seen.map(|v| v.iter().map(addr).collect::<Vec<_>>()),
                        expected.iter().map(addr).collect::<Vec<_>>()
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every property can fail: each test feeds a history that breaks exactly one.
    use super::*;
    use totem_dpdk::NodeId;

    fn a(node: u32, pid: u32) -> CpgAddress {
        CpgAddress { node, pid }
    }

    fn msg(sender: u32, no: u64) -> Cause {
        Cause::Message(MsgId {
            sender: NodeId(sender),
            no,
        })
    }

    fn view(p: CpgAddress, cause: Cause, members: &[CpgAddress], joined: &[CpgAddress]) -> Record {
        Record {
            process: p,
            conf: Conf::default(),
            group: Bytes::from_static(b"g"),
            cause,
            told: Told::View {
                members: members.to_vec(),
                joined: joined.iter().map(|a| (*a, Reason::Join)).collect(),
                left: Vec::new(),
            },
        }
    }

    fn deliver(p: CpgAddress, cause: Cause, sender: CpgAddress, data: &'static [u8]) -> Record {
        Record {
            process: p,
            conf: Conf::default(),
            group: Bytes::from_static(b"g"),
            cause,
            told: Told::Deliver {
                sender,
                data: Bytes::from_static(data),
            },
        }
    }

    /// Two processes join, both deliver m1 then m2.
    fn good() -> Vec<Record> {
        let (p, q) = (a(1, 10), a(2, 20));
        vec![
            view(p, msg(1, 1), &[p], &[p]),
            view(p, msg(2, 1), &[p, q], &[q]),
            view(q, msg(2, 1), &[p, q], &[q]),
            deliver(p, msg(1, 2), p, b"m1"),
            deliver(q, msg(1, 2), p, b"m1"),
            deliver(q, msg(2, 2), q, b"m2"),
            deliver(p, msg(2, 2), q, b"m2"),
        ]
    }

    fn properties(v: &[Violation]) -> BTreeSet<Property> {
        v.iter().map(|v| v.property).collect()
    }

    #[test]
    fn a_good_history_passes() {
        let settled = BTreeMap::from([(
            Bytes::from_static(b"g"),
            BTreeSet::from([a(1, 10), a(2, 20)]),
        )]);
        assert_eq!(check(&good(), Some(&settled)), Vec::new());
    }

    #[test]
    fn catches_a_sender_outside_the_view() {
        let mut h = good();
        h.push(deliver(a(1, 10), msg(3, 1), a(3, 30), b"m3"));
        assert_eq!(
            properties(&check(&h, None)),
            BTreeSet::from([Property::SenderInView])
        );
    }

    #[test]
    fn catches_a_delivery_outside_any_view() {
        let h = vec![deliver(a(1, 10), msg(1, 1), a(1, 10), b"m")];
        assert_eq!(
            properties(&check(&h, None)),
            BTreeSet::from([Property::SenderInView])
        );
    }

    #[test]
    fn catches_two_stories_of_one_change() {
        let (p, q, r) = (a(1, 10), a(2, 20), a(3, 30));
        let mut h = good();
        // p and q both see r arrive; q is told another reason.
        h.push(view(p, msg(3, 1), &[p, q, r], &[r]));
        let mut told = view(q, msg(3, 1), &[p, q, r], &[r]);
        if let Told::View { joined, .. } = &mut told.told {
            joined[0].1 = Reason::NodeUp;
        }
        h.push(told);
        assert_eq!(
            properties(&check(&h, None)),
            BTreeSet::from([Property::ViewAgreement])
        );
    }

    #[test]
    fn catches_a_story_that_is_not_the_difference() {
        let (p, q) = (a(1, 10), a(2, 20));
        let mut h = good();
        // q left, but p is told nobody left.
        h.push(view(p, msg(2, 3), &[p], &[]));
        assert_eq!(
            properties(&check(&h, None)),
            BTreeSet::from([Property::ViewAgreement])
        );
        let _ = q;
    }

    #[test]
    fn catches_two_orders() {
        let (p, q) = (a(1, 10), a(2, 20));
        let mut h = good();
        // q delivers m2 before m1.
        h.retain(|r| r.process != q || matches!(r.told, Told::View { .. }));
        h.push(deliver(q, msg(2, 2), q, b"m2"));
        h.push(deliver(q, msg(1, 2), p, b"m1"));
        assert_eq!(
            properties(&check(&h, None)),
            BTreeSet::from([Property::SameDeliveries])
        );
    }

    #[test]
    fn catches_a_message_missing_before_the_same_next_view() {
        let (p, q) = (a(1, 10), a(2, 20));
        let mut h = good();
        h.retain(|r| !(r.process == q && r.told == deliver(q, msg(2, 2), q, b"m2").told));
        let next = [p, q, a(3, 30)];
        h.push(view(p, msg(3, 1), &next, &[a(3, 30)]));
        h.push(view(q, msg(3, 1), &next, &[a(3, 30)]));
        assert_eq!(
            properties(&check(&h, None)),
            BTreeSet::from([Property::SameDeliveries])
        );
    }

    #[test]
    fn a_transitional_configuration_may_miss_messages() {
        let (p, q) = (a(1, 10), a(2, 20));
        let mut h = good();
        h.retain(|r| !(r.process == q && r.told == deliver(q, msg(2, 2), q, b"m2").told));
        let next = [p, q, a(3, 30)];
        h.push(view(p, msg(3, 1), &next, &[a(3, 30)]));
        let mut late = view(q, msg(3, 1), &next, &[a(3, 30)]);
        late.conf.transitional = Some(vec![2]);
        h.push(late);
        assert_eq!(check(&h, None), Vec::new());
    }

    #[test]
    fn a_ring_the_other_never_installed_may_hold_messages() {
        let (p, q) = (a(1, 10), a(2, 20));
        let mut h = good();
        // p delivers one more message in a ring q never installed, then both meet again.
        let mut extra = deliver(p, msg(1, 3), p, b"m3");
        extra.conf.ring = RingId {
            rep: NodeId(1),
            seq: 8,
        };
        h.push(extra);
        let next = [p, q, a(3, 30)];
        h.push(view(p, msg(3, 1), &next, &[a(3, 30)]));
        h.push(view(q, msg(3, 1), &next, &[a(3, 30)]));
        assert_eq!(check(&h, None), Vec::new());
    }

    #[test]
    fn a_crashed_member_may_deliver_a_prefix() {
        let q = a(2, 20);
        let mut h = good();
        h.retain(|r| !(r.process == q && r.told == deliver(q, msg(2, 2), q, b"m2").told));
        assert_eq!(check(&h, None), Vec::new());
    }

    #[test]
    fn catches_a_view_without_its_process() {
        let (p, q) = (a(1, 10), a(2, 20));
        let mut h = good();
        // A new process is told of the group without being in it.
        h.push(view(a(1, 11), msg(3, 3), &[p, q], &[]));
        assert_eq!(
            properties(&check(&h, None)),
            BTreeSet::from([Property::SelfInView])
        );
    }

    #[test]
    fn catches_views_that_did_not_converge() {
        let (p, q) = (a(1, 10), a(2, 20));
        let settled =
            BTreeMap::from([(Bytes::from_static(b"g"), BTreeSet::from([p, q, a(3, 30)]))]);
        let v = check(&good(), Some(&settled));
        assert_eq!(properties(&v), BTreeSet::from([Property::Converged]));
        // Every member that does not see the settled group is named, 3/30 included.
        assert_eq!(v.len(), 3);
    }
}
