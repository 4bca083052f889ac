//! Properties 1–8: message delivery.

use super::fast::{HashMap, HashSet};

use totem_dpdk::{MsgId, NodeId};

use super::index::{Cur, Dlv, Index, Ring};
use super::{Property, Sink};
use crate::log::{ConfigKind, LogEvent};

/// Whether the send of `msg` may be in the unwritten tail of its sender's log: the sender's
/// log has a `crash` event such that every send it logged before it has a smaller number than
/// `msg` and every send it logged after it a larger one.
fn lost_at_crash(ix: &Index<'_>, msg: MsgId) -> bool {
    let Some(evs) = ix.nodes.get(&msg.sender) else {
        return false;
    };
    // The sender's sends (their numbers) and crashes, in its log order.
    let seq: Vec<Option<u64>> = evs
        .iter()
        .filter_map(|&i| match &ix.events[i as usize] {
            LogEvent::Send(s) if s.msg.sender == msg.sender => Some(Some(s.msg.no)),
            LogEvent::Crash { .. } => Some(None),
            _ => None,
        })
        .collect();
    seq.iter().enumerate().any(|(c, e)| {
        e.is_none()
            && seq[..c].iter().flatten().all(|&no| no < msg.no)
            && seq[c + 1..].iter().flatten().all(|&no| no > msg.no)
    })
}

/// Property 1: No creation (E1): every `deliver` matches a `send` of the same message id with the same
/// hash, length and kind; the sender named in the id logged the send; a node does not deliver
/// its own message before sending it.
///
/// One exception, for logs of real processes (`lost_tails`): a message whose send is missing from a sender
/// that crashed, numbered after every send it logged before that crash and before every send
/// it logged after it ([`lost_at_crash`]). A process writes its log in batches, so a kill
/// loses the lines it had not written, while the frames it sent may already be on the wire
/// (the simulator logs every event at once: its runs never need this).
pub(super) fn no_creation(ix: &Index<'_>, lost_tails: bool, sink: &mut Sink) {
    let p = Property::NoCreation;
    for (i, ev) in ix.events.iter().enumerate() {
        if let LogEvent::Send(s) = ev
            && s.msg.sender != s.node
        {
            sink.report(p, Some(i as u32), || {
                format!(
                    "node {} logged the send of {}, whose id names node {}",
                    s.node, s.msg, s.msg.sender
                )
            });
        }
    }
    for d in &ix.dlv {
        let LogEvent::Deliver(e) = &ix.events[d.ev as usize] else {
            continue;
        };
        let Some(&si) = ix.sends.get(&e.msg) else {
            if lost_tails && lost_at_crash(ix, e.msg) {
                continue;
            }
            sink.report(p, Some(d.ev), || {
                format!(
                    "node {} delivered {} (ring {} seq {}) but no node logged its send",
                    e.node, e.msg, e.ring, e.seq
                )
            });
            continue;
        };
        let LogEvent::Send(s) = &ix.events[si as usize] else {
            continue;
        };
        if s.hash != e.hash || s.len != e.len || s.kind != e.kind {
            sink.report(p, Some(d.ev), || {
                format!(
                    "node {} delivered {} (ring {} seq {}) as {} len {} hash {}, but it was sent as \
                     {} len {} hash {}",
                    e.node,
                    e.msg,
                    e.ring,
                    e.seq,
                    e.kind.as_str(),
                    e.len,
                    e.hash,
                    s.kind.as_str(),
                    s.len,
                    s.hash
                )
            });
        }
        if s.node == e.node && d.ev < si {
            sink.report(p, Some(d.ev), || {
                format!(
                    "node {} delivered {} (ring {} seq {}) before sending it",
                    e.node, e.msg, e.ring, e.seq
                )
            });
        }
    }
}

/// Property 2: No duplication (E2): each node delivers each message at most once.
pub(super) fn no_duplication(ix: &Index<'_>, sink: &mut Sink) {
    for d in ix.dlv.iter().filter(|d| d.dup) {
        let first = &ix.dlv[ix.delivered[&(d.node, d.msg)] as usize];
        sink.report(Property::NoDuplication, Some(d.ev), || {
            format!(
                "node {} delivered {} again at t={} (ring {} seq {}); first at t={} (ring {} seq {})",
                d.node,
                d.msg,
                d.t,
                ix.rings[d.ring as usize],
                d.seq,
                first.t,
                ix.rings[first.ring as usize],
                first.seq
            )
        });
    }
}

/// Property 3: Total order (E7, P1): every node delivers a message at the same (ring, seq); per ring, a
/// node's deliveries in the regular part never go back in seq (the transitional part is
/// property 14's); messages sharing a (ring, seq) are delivered in the same relative order
/// everywhere. Nodes that delivered different subsets of a ring (crashes, partitions,
/// transitional gaps) are compared on the messages they both delivered.
pub(super) fn total_order(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::TotalOrder;
    let mut last: HashMap<Ring, &Dlv> = HashMap::default();
    let mut node = None;
    for (n, d) in ix.dlv.iter().enumerate() {
        if d.dup {
            continue;
        }
        if node != Some(d.node) {
            node = Some(d.node);
            last.clear();
        }
        let place = ix.place[&d.msg];
        if place.first as usize != n && (place.ring != d.ring || place.seq != d.seq) {
            let first = &ix.dlv[place.first as usize];
            sink.report(p, Some(d.ev), || {
                format!(
                    "node {} delivered {} at ring {} seq {}, but node {} delivered it at ring {} seq {}",
                    d.node,
                    d.msg,
                    ix.rings[d.ring as usize],
                    d.seq,
                    first.node,
                    ix.rings[first.ring as usize],
                    first.seq
                )
            });
        }
        // In the transitional part, going back in seq is property 14's to report.
        if let Some(prev) = last.insert(d.ring, d)
            && d.seq < prev.seq
            && !d.after_trans
        {
            sink.report(p, Some(d.ev), || {
                format!(
                    "node {} delivered {} (ring {} seq {}) after {} (seq {})",
                    d.node, d.msg, ix.rings[d.ring as usize], d.seq, prev.msg, prev.seq
                )
            });
        }
    }
    for c in &ix.cycles {
        let first = ix
            .place
            .get(&c.msgs[0])
            .map(|pl| ix.dlv[pl.first as usize].ev);
        sink.report(p, first, || {
            let list: Vec<String> = c.msgs.iter().map(MsgId::to_string).collect();
            format!(
                "messages {} of ring {} seq {} are delivered in different orders at different nodes",
                list.join(", "),
                ix.rings[c.ring as usize],
                c.seq
            )
        });
    }
}

/// Property 4: No gaps within a regular configuration (E7): per ring, the messages a node delivered
/// before its transitional configuration for that ring are a prefix of the ring's global order
/// (the union of every node's deliveries in that ring, in total order). Delivery order itself
/// is property 3's business: this compares sets.
pub(super) fn no_gaps(ix: &Index<'_>, sink: &mut Sink) {
    let mut per_ring: HashMap<Ring, Vec<(u32, u32)>> = HashMap::default();
    let flush = |per_ring: &mut HashMap<Ring, Vec<(u32, u32)>>, sink: &mut Sink| {
        let mut rings: Vec<_> = per_ring.drain().collect();
        rings.sort_unstable_by_key(|(r, _)| *r);
        for (ring, mut got) in rings {
            got.sort_unstable();
            got.dedup_by_key(|e| e.0);
            let Some(k) = got.iter().enumerate().position(|(i, e)| e.0 != i as u32) else {
                continue;
            };
            let d = &ix.dlv[got[k].1 as usize];
            let missing = ix.order[ring as usize][k];
            let missing_seq = ix.place[&missing].seq;
            sink.report(Property::NoGaps, Some(d.ev), || {
                format!(
                    "node {} delivered {} (ring {} seq {}) in the regular configuration without {} \
                     (seq {}), which precedes it",
                    d.node, d.msg, ix.rings[ring as usize], d.seq, missing, missing_seq
                )
            });
        }
    };
    let mut node = None;
    for (n, d) in ix.dlv.iter().enumerate() {
        if d.dup || d.after_trans {
            continue;
        }
        if node != Some(d.node) {
            flush(&mut per_ring, sink);
            node = Some(d.node);
        }
        let place = ix.place[&d.msg];
        if place.ring == d.ring {
            per_ring
                .entry(d.ring)
                .or_default()
                .push((place.pos, n as u32));
        }
    }
    flush(&mut per_ring, sink);
}

/// Property 5: Self-delivery (E10, liveness form; drained runs only): every send by a node that does not
/// crash afterwards is delivered at that node.
pub(super) fn self_delivery(ix: &Index<'_>, sink: &mut Sink) {
    for (&node, evs) in &ix.nodes {
        let last_crash = evs
            .iter()
            .rposition(|&i| matches!(ix.events[i as usize], LogEvent::Crash { .. }));
        let from = last_crash.map_or(0, |k| k + 1);
        for &i in &evs[from..] {
            if let LogEvent::Send(s) = &ix.events[i as usize]
                && !ix.delivered.contains_key(&(node, s.msg))
            {
                sink.report(Property::SelfDelivery, Some(i), || {
                    format!(
                        "node {node} sent {} at t={} and did not crash afterwards, but never delivered it",
                        s.msg, s.t
                    )
                });
            }
        }
    }
}

/// The contiguous prefix of a ring's global order that a node has delivered so far.
#[derive(Default)]
pub(super) struct Prefix {
    /// Positions 0..next are all delivered.
    pub next: u32,
    /// Delivered positions beyond `next`.
    beyond: HashSet<u32>,
    /// Highest position delivered, and its message.
    pub max: Option<(u32, MsgId)>,
}

impl Prefix {
    pub(super) fn add(&mut self, pos: u32, msg: MsgId) {
        if self.max.is_none_or(|(m, _)| pos > m) {
            self.max = Some((pos, msg));
        }
        if pos == self.next {
            self.next += 1;
            while self.beyond.remove(&self.next) {
                self.next += 1;
            }
        } else if pos > self.next {
            self.beyond.insert(pos);
        }
    }
}

/// What every deliverer of a message must have delivered before it.
struct CausalReq {
    sender: NodeId,
    send_ev: u32,
    /// The first `prefix` messages of the ring's order.
    prefix: u32,
    /// A message beyond that prefix (when the sender itself had a gap).
    extra: Option<MsgId>,
}

/// Property 6: Causal order within a ring (E11): if node p delivered m before sending m', and both are
/// ordered in the same ring, then m' is ordered after m and every node that delivers m'
/// delivered m first.
///
/// Near-linear: p's deliveries in a ring before a send are (by property 4) a prefix of the
/// ring's order, so each send is summarised by a prefix length, compared with the deliverer's
/// own contiguous prefix when it delivers m'.
pub(super) fn causal_order(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::CausalOrder;
    let mut reqs: HashMap<MsgId, CausalReq> = HashMap::default();
    for (&node, evs) in &ix.nodes {
        let mut seen: HashMap<Ring, Prefix> = HashMap::default();
        for &i in evs {
            match &ix.events[i as usize] {
                LogEvent::Deliver(e) => {
                    let d = &ix.dlv[ix.delivered[&(node, e.msg)] as usize];
                    if d.ev != i {
                        continue;
                    }
                    let place = ix.place[&e.msg];
                    if place.ring == d.ring {
                        seen.entry(d.ring).or_default().add(place.pos, e.msg);
                    }
                }
                LogEvent::Send(s) => {
                    let Some(place) = ix.place.get(&s.msg) else {
                        continue;
                    };
                    let Some(pre) = seen.get(&place.ring) else {
                        continue;
                    };
                    let Some((max_pos, max_msg)) = pre.max else {
                        continue;
                    };
                    if place.pos <= max_pos {
                        let max_seq = ix.place[&max_msg].seq;
                        sink.report(p, Some(i), || {
                            format!(
                                "node {node} delivered {max_msg} (ring {} seq {max_seq}) before sending {}, \
                                 but {} is ordered before it (seq {})",
                                ix.rings[place.ring as usize], s.msg, s.msg, place.seq
                            )
                        });
                        continue;
                    }
                    let contiguous = max_pos + 1 == pre.next;
                    reqs.insert(
                        s.msg,
                        CausalReq {
                            sender: node,
                            send_ev: i,
                            prefix: pre.next,
                            extra: (!contiguous).then_some(max_msg),
                        },
                    );
                }
                _ => {}
            }
        }
    }
    if reqs.is_empty() {
        return;
    }
    let mut seen: HashMap<Ring, Prefix> = HashMap::default();
    let mut node = None;
    for (n, d) in ix.dlv.iter().enumerate() {
        if d.dup {
            continue;
        }
        if node != Some(d.node) {
            node = Some(d.node);
            seen.clear();
        }
        let place = ix.place[&d.msg];
        if place.ring != d.ring {
            continue;
        }
        let pre = seen.entry(d.ring).or_default();
        if let Some(req) = reqs.get(&d.msg).filter(|r| r.sender != d.node) {
            if pre.next < req.prefix {
                let missing = ix.order[d.ring as usize][pre.next as usize];
                sink.report(p, Some(d.ev), || {
                    format!(
                        "node {} delivered {} (ring {} seq {}) without first delivering {} (seq {}), \
                         which node {} delivered before sending {} (event #{})",
                        d.node,
                        d.msg,
                        ix.rings[d.ring as usize],
                        d.seq,
                        missing,
                        ix.place[&missing].seq,
                        req.sender,
                        d.msg,
                        req.send_ev
                    )
                });
            } else if let Some(extra) = req.extra {
                let before = ix
                    .delivered
                    .get(&(d.node, extra))
                    .is_some_and(|&k| (k as usize) < n);
                if !before {
                    sink.report(p, Some(d.ev), || {
                        format!(
                            "node {} delivered {} (ring {} seq {}) without first delivering {}, which \
                             node {} delivered before sending it",
                            d.node,
                            d.msg,
                            ix.rings[d.ring as usize],
                            d.seq,
                            extra,
                            req.sender
                        )
                    });
                }
            }
        }
        pre.add(place.pos, d.msg);
    }
}

/// Property 7: Safe delivery (E12): a safe delivery at (ring, seq) at time t requires a `stored` event for
/// (ring, seq) at time <= t at every member of the configuration it is delivered in (the ring's
/// regular configuration, or the node's transitional one), except members that crashed between
/// installing the ring and t. When drained, every member that never crashed after installing
/// the ring delivers the message.
pub(super) fn safe_delivery(ix: &Index<'_>, drained: bool, sink: &mut Sink) {
    let p = Property::SafeDelivery;
    // Each node's transitional configurations in log order: (event index, members).
    let mut transitions: HashMap<NodeId, Vec<(usize, &[NodeId])>> = HashMap::default();
    for (i, e) in ix.events.iter().enumerate() {
        if let LogEvent::Config(c) = e
            && c.kind == ConfigKind::Transitional
        {
            transitions
                .entry(c.node)
                .or_default()
                .push((i, &c.members[..]));
        }
    }
    // A member that the delivering node saw leave (absent from the delivering node's next
    // transitional configuration) is, in extended virtual synchrony, a failed process for this
    // configuration: it need not deliver the message.
    let seen_leaving = |node: NodeId, after: usize, member: NodeId| {
        transitions.get(&node).is_some_and(|list| {
            list.iter()
                .find(|(i, _)| *i > after)
                .is_some_and(|(_, m)| !m.contains(&member))
        })
    };
    for d in ix.dlv.iter().filter(|d| d.safe && !d.dup) {
        // In a transitional configuration, every member of it owes the message, also one
        // that abandoned the recovery before installing the new ring: the protocol has it
        // install that ring late once it learns that another member did.
        let members = match d.cur {
            Cur::Trans(r, cfg) if r == d.ring => match &ix.events[cfg as usize] {
                LogEvent::Config(c) => Some(&c.members[..]),
                _ => None,
            },
            _ => ix.ring_members(d.ring),
        };
        let Some(members) = members else { continue };
        let ring = ix.rings[d.ring as usize];
        for &m in members {
            let installed = ix.reg_time.get(&(m, d.ring)).copied().unwrap_or(0);
            if ix.crashed_between(m, installed, d.t) {
                continue;
            }
            match ix.stored.get(&(d.ring, d.seq, m)) {
                Some(&ts) if ts <= d.t => {}
                stored => sink.report(p, Some(d.ev), || {
                    let when = stored.map_or_else(|| "never".to_owned(), |ts| format!("only at t={ts}"));
                    format!(
                        "node {} delivered {} safe (ring {ring} seq {}) at t={}, but member {m} stored \
                         the frame {when}",
                        d.node, d.msg, d.seq, d.t
                    )
                }),
            }
            if drained
                && !ix.crashed_between(m, installed, u64::MAX)
                && !ix.delivered.contains_key(&(m, d.msg))
                && !seen_leaving(d.node, d.ev as usize, m)
            {
                sink.report(p, Some(d.ev), || {
                    format!(
                        "node {} delivered {} safe (ring {ring} seq {}), but member {m}, which did not \
                         crash and was not seen leaving, never delivered it",
                        d.node, d.msg, d.seq
                    )
                });
            }
        }
    }
}

/// Property 8: Messages belong to their configuration (E6): a node delivers a message of ring r only
/// after its regular configuration for r and before its next regular configuration: in the
/// regular configuration of r, or after the transitional configuration ending r. In
/// particular no message of a new ring r1 is delivered before the node's regular configuration
/// of r1 (also not between the transitional configuration ending r0 and that regular one), and
/// none after a crash or restart before the node's next regular configuration.
pub(super) fn message_in_config(ix: &Index<'_>, sink: &mut Sink) {
    for d in ix.dlv.iter().filter(|d| !d.dup) {
        let mut why = match d.cur {
            Cur::Regular(r) | Cur::Trans(r, _) if r == d.ring => continue,
            Cur::None => "outside any configuration (before its first or after a crash)".to_owned(),
            Cur::Regular(r) => format!(
                "in the regular configuration of ring {}",
                ix.rings[r as usize]
            ),
            Cur::Trans(r, _) => format!(
                "after the transitional configuration of ring {} (the ending ring)",
                ix.rings[r as usize]
            ),
        };
        if let Some(&later) = ix.reg_ev.get(&(d.node, d.ring))
            && later > d.ev
        {
            let t = ix.events[later as usize].t().unwrap_or(0);
            why.push_str(&format!(
                ", before its regular configuration of that ring (t={t})"
            ));
        }
        sink.report(Property::MessageInConfig, Some(d.ev), || {
            format!(
                "node {} delivered {} of ring {} (seq {}) at t={} {why}",
                d.node, d.msg, ix.rings[d.ring as usize], d.seq, d.t
            )
        });
    }
}
