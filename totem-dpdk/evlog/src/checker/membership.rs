//! Properties 14–16: delivery across membership changes (transitional semantics, failure
//! atomicity) and convergence after the last fault.

use std::collections::BTreeMap;

use super::fast::{HashMap, HashSet};

use totem_dpdk::{MsgId, NodeId};

use super::config::ids;
use super::delivery::Prefix;
use super::index::{Cur, Ev, Index, Ring};
use super::{EffectiveParams, Property, Sink};
use crate::log::{ConfigKind, LogEvent};

/// Property 14: Transitional-set semantics (E8).
///
/// In the transitional part of ring r0 at a node (its deliveries of r0 after its transitional
/// configuration ending r0), seq never goes back, also relative to the regular part. After the
/// node's first gap (a message of r0's global order, i.e. delivered in r0 by some node, that
/// this node skipped), every message it delivers was sent by a member of its transitional
/// configuration: corosync's originator filter. Gaps the log cannot show (a frame nobody
/// delivered) are not seen.
pub(super) fn transitional_delivery(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::TransitionalDelivery;
    let mut prefix: HashMap<Ring, Prefix> = HashMap::default();
    // Per ring, the node's delivery with the highest seq so far.
    let mut high: HashMap<Ring, (u64, MsgId)> = HashMap::default();
    let mut node = None;
    for d in ix.dlv.iter().filter(|d| !d.dup) {
        if node != Some(d.node) {
            node = Some(d.node);
            prefix.clear();
            high.clear();
        }
        let place = ix.place[&d.msg];
        let ring = ix.rings[d.ring as usize];
        if let Cur::Trans(r, cfg) = d.cur
            && r == d.ring
        {
            if let Some(&(seq, prev)) = high.get(&d.ring)
                && d.seq < seq
            {
                sink.report(p, Some(d.ev), || {
                    format!(
                        "node {} delivered {} (ring {ring} seq {}) in its transitional configuration \
                         after {prev} (seq {seq}): seq went back",
                        d.node, d.msg, d.seq
                    )
                });
            }
            let members = &ix.config(cfg).members;
            // Positions 0..next of the ring's order are delivered here; `next` is not.
            let next = prefix.get(&d.ring).map_or(0, |pre| pre.next);
            if place.ring == d.ring && place.pos > next && !members.contains(&d.msg.sender) {
                let missing = ix.order[d.ring as usize][next as usize];
                let missing_seq = ix.place[&missing].seq;
                sink.report(p, Some(d.ev), || {
                    format!(
                        "node {} delivered {} (ring {ring} seq {}) after a gap (it skipped {missing}, \
                         seq {missing_seq}), but its sender {} is not in its transitional \
                         configuration {}",
                        d.node,
                        d.msg,
                        d.seq,
                        d.msg.sender,
                        ids(members)
                    )
                });
            }
        }
        if high.get(&d.ring).is_none_or(|&(seq, _)| d.seq >= seq) {
            high.insert(d.ring, (d.seq, d.msg));
        }
        if place.ring == d.ring {
            prefix.entry(d.ring).or_default().add(place.pos, d.msg);
        }
    }
}

/// One node's passage through a transitional configuration that ended the regular ring it
/// had installed, completed by its next regular configuration.
struct Passage {
    node: NodeId,
    /// The node's next regular configuration event.
    next: Ev,
}

/// Property 15: Failure atomicity (E9).
///
/// Two nodes that both installed ring r0 and then delivered the same transitional
/// configuration (ring r0, same member list), and both went on to their next regular
/// configuration, delivered exactly the same set of messages of r0 (regular and transitional
/// parts together). A node that crashed, restarted or whose log ended before that next regular
/// configuration is not compared.
///
/// That they delivered them in the same order is not reported here: for equal sets any
/// difference in order is a seq going back (property 3, or 14 in the transitional part), a
/// different (ring, seq) (property 3) or a contradicting order within one frame (property 3),
/// and is reported there once.
///
/// Within each group the node with the most messages of r0 (lowest id on ties) is the
/// reference; every other node is reported at its first difference from it.
pub(super) fn failure_atomicity(ix: &Index<'_>, sink: &mut Sink) {
    let p = Property::FailureAtomicity;
    let mut groups: BTreeMap<(Ring, &[NodeId]), Vec<Passage>> = BTreeMap::new();
    for (&node, evs) in &ix.cfg_evs {
        let mut current: Option<Ring> = None;
        let mut pending: Option<(Ring, Ev)> = None;
        for &i in evs {
            let LogEvent::Config(c) = &ix.events[i as usize] else {
                current = None;
                pending = None;
                continue;
            };
            let r = ix.ring_of(c.ring);
            match c.kind {
                ConfigKind::Regular => {
                    if let Some((r0, trans)) = pending.take() {
                        let members = &ix.config(trans).members[..];
                        groups
                            .entry((r0, members))
                            .or_default()
                            .push(Passage { node, next: i });
                    }
                    current = Some(r);
                }
                ConfigKind::Transitional => {
                    pending = (current == Some(r)).then_some((r, i));
                    current = None;
                }
            }
        }
    }
    groups.retain(|_, g| g.len() > 1);
    if groups.is_empty() {
        return;
    }
    // Each compared node's deliveries (indices into `ix.dlv`) of the ending ring.
    let mut seqs: HashMap<(NodeId, Ring), Vec<u32>> = HashMap::default();
    for (&(r0, _), g) in &groups {
        for pass in g {
            seqs.insert((pass.node, r0), Vec::new());
        }
    }
    for (n, d) in ix.dlv.iter().enumerate() {
        if !d.dup
            && let Some(list) = seqs.get_mut(&(d.node, d.ring))
        {
            list.push(n as u32);
        }
    }
    for (&(r0, members), g) in &groups {
        let ring = ix.rings[r0 as usize];
        let list = |node: NodeId| &seqs[&(node, r0)];
        let Some(refp) = g.iter().max_by(|a, b| {
            list(a.node)
                .len()
                .cmp(&list(b.node).len())
                .then(b.node.cmp(&a.node))
        }) else {
            continue;
        };
        let a = refp.node;
        let ref_list = list(a);
        let ref_set: HashSet<MsgId> = ref_list.iter().map(|&k| ix.dlv[k as usize].msg).collect();
        let same = format!(
            "both went from ring {ring} through transitional configuration {}",
            ids(members)
        );
        for pass in g.iter().filter(|q| q.node != a) {
            let b = pass.node;
            let other = list(b);
            if let Some(&k) = other
                .iter()
                .find(|&&k| !ref_set.contains(&ix.dlv[k as usize].msg))
            {
                let d = &ix.dlv[k as usize];
                sink.report(p, Some(d.ev), || {
                    format!(
                        "node {b} delivered {} (ring {ring} seq {}), which node {a} did not; {same}",
                        d.msg, d.seq
                    )
                });
                continue;
            }
            if other.len() < ref_list.len() {
                let have: HashSet<MsgId> = other.iter().map(|&k| ix.dlv[k as usize].msg).collect();
                if let Some(&k) = ref_list
                    .iter()
                    .find(|&&k| !have.contains(&ix.dlv[k as usize].msg))
                {
                    let d = &ix.dlv[k as usize];
                    sink.report(p, Some(pass.next), || {
                        format!(
                            "node {b} installed its next ring without delivering {} (ring {ring} \
                             seq {}), which node {a} delivered; {same}",
                            d.msg, d.seq
                        )
                    });
                }
            }
        }
    }
}

/// Property 16: Convergence after the last fault (L1; drained runs with
/// [`EffectiveParams::checks_convergence`]).
///
/// Every node alive at the end of the log (never crashed, or restarted after its last crash)
/// installed its last regular configuration by `last_fault_ns + converge_bound_ns` and
/// delivered no transitional configuration after it; all of them end in the same ring, whose
/// members are exactly the alive nodes. Nodes that never logged an event are not known to the
/// checker.
pub(super) fn convergence(ix: &Index<'_>, params: &EffectiveParams, sink: &mut Sink) {
    let p = Property::Convergence;
    let (Some(last_fault), Some(bound)) = (params.last_fault_ns, params.converge_bound_ns) else {
        return;
    };
    let deadline = last_fault.saturating_add(bound);
    let mut alive: Vec<NodeId> = Vec::new();
    // Each alive node's last regular configuration.
    let mut finals: Vec<(NodeId, Ev)> = Vec::new();
    for (&node, evs) in &ix.cfg_evs {
        let mut down = false;
        let mut last_reg: Option<Ev> = None;
        let mut trans_after: Option<Ev> = None;
        for &i in evs {
            match &ix.events[i as usize] {
                LogEvent::Crash { .. } => down = true,
                LogEvent::Restart { .. } => {
                    down = false;
                    last_reg = None;
                    trans_after = None;
                }
                LogEvent::Config(c) if c.kind == ConfigKind::Regular => {
                    last_reg = Some(i);
                    trans_after = None;
                }
                LogEvent::Config(_) => trans_after = Some(i),
                _ => {}
            }
        }
        if down {
            continue;
        }
        alive.push(node);
        let Some(reg) = last_reg else {
            let last = ix.nodes[&node].last().copied();
            sink.report(p, last, || {
                format!("node {node} is alive at the end but never installed a regular configuration since its start or restart")
            });
            continue;
        };
        let c = ix.config(reg);
        if let Some(tev) = trans_after {
            let t = ix.config(tev);
            sink.report(p, Some(tev), || {
                format!(
                    "node {node} is alive at the end, but its last configuration is the transitional \
                     one of ring {} at t={}: it never installed the next ring",
                    t.ring, t.t
                )
            });
        }
        if c.t > deadline {
            sink.report(p, Some(reg), || {
                format!(
                    "node {node} installed its last ring {} at t={}, after the bound t={deadline} \
                     (last fault t={last_fault} + {bound} ns)",
                    c.ring, c.t
                )
            });
        }
        finals.push((node, reg));
    }
    if finals.is_empty() {
        return;
    }
    // The final ring most alive nodes are in (the lowest node's on ties) is the reference.
    let mut count: BTreeMap<Ring, (usize, NodeId, Ev)> = BTreeMap::new();
    for &(node, reg) in &finals {
        let r = ix.ring_of(ix.config(reg).ring);
        let e = count.entry(r).or_insert((0, node, reg));
        e.0 += 1;
    }
    let Some(&(_, ref_node, ref_ev)) = count
        .values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
    else {
        return;
    };
    let rc = ix.config(ref_ev);
    for &(node, reg) in &finals {
        let c = ix.config(reg);
        if c.ring != rc.ring {
            sink.report(p, Some(reg), || {
                format!(
                    "node {node} ended in ring {} {}, but node {ref_node} ended in ring {} {}: \
                     the alive nodes did not converge to one ring",
                    c.ring,
                    ids(&c.members),
                    rc.ring,
                    ids(&rc.members)
                )
            });
        }
    }
    if rc.members != alive {
        sink.report(p, Some(ref_ev), || {
            format!(
                "the final ring {} has members {}, but the nodes alive at the end are {}",
                rc.ring,
                ids(&rc.members),
                ids(&alive)
            )
        });
    }
}

/// Property 17: Members that were never faulted stay together (only with
/// [`super::CheckParams::stable_pairs`]).
///
/// For each given pair of nodes (the caller knows from its fault schedule that neither node
/// was crashed, restarted, paused, started late or cut off, and that the link between them
/// always worked, with no frame loss anywhere): neither node installs a regular configuration
/// without the other, and both install the same sequence of regular configurations (ring
/// ids). In a run that did not drain, one sequence may be a prefix of the other (the run
/// stopped during a change).
pub(super) fn stable_members(
    ix: &Index<'_>,
    pairs: &[(NodeId, NodeId)],
    drained: bool,
    sink: &mut Sink,
) {
    let p = Property::StableMembers;
    let regulars = |node: NodeId| -> Vec<Ev> {
        ix.cfg_evs.get(&node).map_or_else(Vec::new, |evs| {
            evs.iter()
                .copied()
                .filter(|&i| {
                    matches!(&ix.events[i as usize],
                        LogEvent::Config(c) if c.kind == ConfigKind::Regular)
                })
                .collect()
        })
    };
    for &(a, b) in pairs {
        let (ra, rb) = (regulars(a), regulars(b));
        for (node, other, regs) in [(a, b, &ra), (b, a, &rb)] {
            for &i in regs {
                let c = ix.config(i);
                if !c.members.contains(&other) {
                    sink.report(p, Some(i), || {
                        format!(
                            "node {node} installed ring {} {} at t={} without node {other}, \
                             although neither was faulted and their link always worked",
                            c.ring,
                            ids(&c.members),
                            c.t
                        )
                    });
                }
            }
        }
        let common = ra.len().min(rb.len());
        if let Some(k) = (0..common).find(|&k| ix.config(ra[k]).ring != ix.config(rb[k]).ring) {
            let (ca, cb) = (ix.config(ra[k]), ix.config(rb[k]));
            sink.report(p, Some(ra[k].max(rb[k])), || {
                format!(
                    "nodes {a} and {b} (never faulted) diverge at their regular configuration \
                     #{}: node {a} installed ring {} {} at t={}, node {b} ring {} {} at t={}",
                    k + 1,
                    ca.ring,
                    ids(&ca.members),
                    ca.t,
                    cb.ring,
                    ids(&cb.members),
                    cb.t
                )
            });
        } else if drained && ra.len() != rb.len() {
            let (longer, shorter, extra) = if ra.len() > rb.len() {
                (a, b, ra[common])
            } else {
                (b, a, rb[common])
            };
            let c = ix.config(extra);
            sink.report(p, Some(extra), || {
                format!(
                    "node {longer} installed ring {} {} at t={}, which node {shorter} (never \
                     faulted, in the same ring before) never installed",
                    c.ring,
                    ids(&c.members),
                    c.t
                )
            });
        }
    }
}
