//! One pass over the log that every property function reads: events per node, sends by id,
//! deliveries with the node's configuration at the time, and each ring's global order.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::fast::{HashMap, HashSet};

use totem_dpdk::{MsgId, NodeId, RingId};

use super::{EffectiveParams, Property, Sink};
use crate::log::{ConfigEvent, ConfigKind, LogEvent, Meta};

/// Index of an event in the checked slice.
pub(super) type Ev = u32;
/// Interned ring id (index into [`Index::rings`]).
pub(super) type Ring = u32;

/// A node's configuration when it delivered something.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Cur {
    /// No configuration: before the first regular configuration, or after a crash.
    None,
    /// In the regular configuration of this ring.
    Regular(Ring),
    /// After the transitional configuration (event) ending this ring.
    Trans(Ring, Ev),
}

/// One delivery, with what the properties need about it.
#[derive(Clone, Debug)]
pub(super) struct Dlv {
    pub ev: Ev,
    pub node: NodeId,
    pub msg: MsgId,
    pub ring: Ring,
    pub seq: u64,
    pub t: u64,
    pub safe: bool,
    /// The node had delivered this message before.
    pub dup: bool,
    /// The node's configuration at the time.
    pub cur: Cur,
    /// The node had already logged the transitional configuration ending `ring`.
    pub after_trans: bool,
}

/// Where a message sits in its ring's global order (from its first non-duplicate delivery).
#[derive(Copy, Clone, Debug)]
pub(super) struct Place {
    pub ring: Ring,
    pub seq: u64,
    /// Position in [`Index::order`] of the ring.
    pub pos: u32,
    /// The delivery that fixed this place (index into [`Index::dlv`]).
    pub first: u32,
}

/// Messages sharing one `(ring, seq)` that nodes delivered in contradicting orders.
pub(super) struct OrderCycle {
    pub ring: Ring,
    pub seq: u64,
    pub msgs: Vec<MsgId>,
}

pub(super) struct Index<'a> {
    pub events: &'a [LogEvent],
    pub meta: Option<&'a Meta>,
    /// Per node, its events in log order.
    pub nodes: BTreeMap<NodeId, Vec<Ev>>,
    /// Per node, its `config`, `crash` and `restart` events in log order (every node of
    /// `nodes` has an entry, possibly empty).
    pub cfg_evs: BTreeMap<NodeId, Vec<Ev>>,
    /// First `send` event of each message id.
    pub sends: HashMap<MsgId, Ev>,
    /// Later `send` events reusing an id.
    pub dup_sends: Vec<Ev>,
    pub rings: Vec<RingId>,
    pub ring_ix: HashMap<RingId, Ring>,
    /// Per ring, the first regular `config` event installing it.
    pub ring_config: Vec<Option<Ev>>,
    /// Every delivery; one node's deliveries are contiguous and in log order.
    pub dlv: Vec<Dlv>,
    /// First delivery (index into `dlv`) of each message at each node.
    pub delivered: HashMap<(NodeId, MsgId), u32>,
    pub place: HashMap<MsgId, Place>,
    /// Per ring, its messages in the global order.
    pub order: Vec<Vec<MsgId>>,
    pub cycles: Vec<OrderCycle>,
    /// Per node, crash times, ascending.
    pub crashes: HashMap<NodeId, Vec<u64>>,
    /// Time a node installed (regular configuration) a ring.
    pub reg_time: HashMap<(NodeId, Ring), u64>,
    /// The (first) regular configuration event by which a node installed a ring.
    pub reg_ev: HashMap<(NodeId, Ring), Ev>,
    /// Earliest `stored` time per (ring, seq, node).
    pub stored: HashMap<(Ring, u64, NodeId), u64>,
}

impl<'a> Index<'a> {
    pub(super) fn build(events: &'a [LogEvent]) -> Index<'a> {
        assert!(u32::try_from(events.len()).is_ok(), "more than 2^32 events");
        let mut ix = Index {
            events,
            meta: None,
            nodes: BTreeMap::new(),
            cfg_evs: BTreeMap::new(),
            sends: HashMap::default(),
            dup_sends: Vec::new(),
            rings: Vec::new(),
            ring_ix: HashMap::default(),
            ring_config: Vec::new(),
            dlv: Vec::new(),
            delivered: HashMap::default(),
            place: HashMap::default(),
            order: Vec::new(),
            cycles: Vec::new(),
            crashes: HashMap::default(),
            reg_time: HashMap::default(),
            reg_ev: HashMap::default(),
            stored: HashMap::default(),
        };
        for (i, ev) in events.iter().enumerate() {
            let i = i as Ev;
            // Service-level reports are not Totem events: no property looks at them (not even
            // a node's log order, property 11).
            if matches!(ev, LogEvent::Service(_)) {
                continue;
            }
            if let Some(node) = ev.node() {
                ix.nodes.entry(node).or_default().push(i);
                let cfgs = ix.cfg_evs.entry(node).or_default();
                if matches!(
                    ev,
                    LogEvent::Config(_) | LogEvent::Crash { .. } | LogEvent::Restart { .. }
                ) {
                    cfgs.push(i);
                }
            }
            match ev {
                LogEvent::Meta(m) => {
                    ix.meta.get_or_insert(m);
                }
                LogEvent::Send(s) => match ix.sends.entry(s.msg) {
                    Entry::Occupied(_) => ix.dup_sends.push(i),
                    Entry::Vacant(v) => {
                        v.insert(i);
                    }
                },
                LogEvent::Deliver(d) => {
                    ix.intern(d.ring);
                }
                LogEvent::Config(c) => {
                    let r = ix.intern(c.ring);
                    if c.kind == ConfigKind::Regular {
                        ix.ring_config[r as usize].get_or_insert(i);
                        ix.reg_time.entry((c.node, r)).or_insert(c.t);
                        ix.reg_ev.entry((c.node, r)).or_insert(i);
                    }
                }
                LogEvent::Crash { t, node } => ix.crashes.entry(*node).or_default().push(*t),
                LogEvent::Restart { .. } => {}
                LogEvent::Stored(s) => {
                    let r = ix.intern(s.ring);
                    let e = ix.stored.entry((r, s.seq.0, s.node)).or_insert(s.t);
                    *e = (*e).min(s.t);
                }
                LogEvent::Token(tok) => {
                    ix.intern(tok.ring);
                }
                LogEvent::Service(_) => {}
            }
        }
        for times in ix.crashes.values_mut() {
            times.sort_unstable();
        }
        ix.scan_deliveries();
        ix.build_order();
        ix
    }

    fn intern(&mut self, ring: RingId) -> Ring {
        if let Some(&r) = self.ring_ix.get(&ring) {
            return r;
        }
        let r = self.rings.len() as Ring;
        self.rings.push(ring);
        self.ring_ix.insert(ring, r);
        self.ring_config.push(None);
        r
    }

    pub(super) fn ring_of(&self, ring: RingId) -> Ring {
        self.ring_ix[&ring]
    }

    /// The `config` event at `ev`.
    ///
    /// # Panics
    /// If `ev` is not a `config` event (callers pass indices of `cfg_evs` or `ring_config`).
    pub(super) fn config(&self, ev: Ev) -> &'a ConfigEvent {
        match &self.events[ev as usize] {
            LogEvent::Config(c) => c,
            other => unreachable!("event #{ev} is a `{}`, not a config", other.name()),
        }
    }

    /// Members of a ring's regular configuration (as first logged), if any node installed it.
    pub(super) fn ring_members(&self, ring: Ring) -> Option<&'a [NodeId]> {
        let ev = self.ring_config[ring as usize]?;
        match &self.events[ev as usize] {
            LogEvent::Config(c) => Some(&c.members),
            _ => None,
        }
    }

    /// Whether `node` crashed at a time in `[from, to]`.
    pub(super) fn crashed_between(&self, node: NodeId, from: u64, to: u64) -> bool {
        self.crashes.get(&node).is_some_and(|times| {
            let i = times.partition_point(|&c| c < from);
            times.get(i).is_some_and(|&c| c <= to)
        })
    }

    /// Walks every node's events in order, tracking its configuration, and records each
    /// delivery.
    fn scan_deliveries(&mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        for (&node, evs) in &nodes {
            let mut cur = Cur::None;
            let mut trans_seen: HashSet<Ring> = HashSet::default();
            for &i in evs {
                match &self.events[i as usize] {
                    LogEvent::Config(c) => {
                        let r = self.ring_of(c.ring);
                        cur = match c.kind {
                            ConfigKind::Regular => Cur::Regular(r),
                            ConfigKind::Transitional => {
                                trans_seen.insert(r);
                                Cur::Trans(r, i)
                            }
                        };
                    }
                    LogEvent::Crash { .. } | LogEvent::Restart { .. } => cur = Cur::None,
                    LogEvent::Deliver(d) => {
                        let ring = self.ring_of(d.ring);
                        let n = self.dlv.len() as u32;
                        let dup = match self.delivered.entry((node, d.msg)) {
                            Entry::Occupied(_) => true,
                            Entry::Vacant(v) => {
                                v.insert(n);
                                false
                            }
                        };
                        self.dlv.push(Dlv {
                            ev: i,
                            node,
                            msg: d.msg,
                            ring,
                            seq: d.seq.0,
                            t: d.t,
                            safe: d.kind == totem_dpdk::DeliveryKind::Safe,
                            dup,
                            cur,
                            after_trans: trans_seen.contains(&ring),
                        });
                    }
                    _ => {}
                }
            }
        }
        self.nodes = nodes;
    }

    /// Fixes each message's (ring, seq) from its first delivery and orders each ring's
    /// messages: by seq, and within one seq by the order the nodes delivered them in.
    fn build_order(&mut self) {
        let mut per_ring: Vec<Vec<(u64, u32, MsgId)>> = vec![Vec::new(); self.rings.len()];
        // Consecutive deliveries at one node in the same (ring, seq): "a before b".
        let mut edges: HashMap<(Ring, u64), Vec<(MsgId, MsgId)>> = HashMap::default();
        let mut prev: Option<&Dlv> = None;
        for (n, d) in self.dlv.iter().enumerate() {
            if d.dup {
                continue;
            }
            if prev.is_some_and(|p| p.node != d.node) {
                prev = None;
            }
            let mut consistent = true;
            let count = self.place.len() as u32;
            let place = self.place.entry(d.msg).or_insert_with(|| {
                per_ring[d.ring as usize].push((d.seq, count, d.msg));
                Place {
                    ring: d.ring,
                    seq: d.seq,
                    pos: 0,
                    first: n as u32,
                }
            });
            if place.ring != d.ring || place.seq != d.seq {
                consistent = false;
            }
            if consistent {
                if let Some(p) = prev.filter(|p| p.ring == d.ring && p.seq == d.seq) {
                    edges
                        .entry((d.ring, d.seq))
                        .or_default()
                        .push((p.msg, d.msg));
                }
                prev = Some(d);
            }
        }
        let mut order = Vec::with_capacity(per_ring.len());
        for (r, mut list) in per_ring.into_iter().enumerate() {
            list.sort_unstable_by_key(|&(seq, first, _)| (seq, first));
            let mut msgs: Vec<MsgId> = Vec::with_capacity(list.len());
            let mut i = 0;
            while i < list.len() {
                let seq = list[i].0;
                let mut j = i + 1;
                while j < list.len() && list[j].0 == seq {
                    j += 1;
                }
                let group: Vec<MsgId> = list[i..j].iter().map(|e| e.2).collect();
                match edges.get(&(r as Ring, seq)) {
                    Some(es) if group.len() > 1 => {
                        let (sorted, stuck) = topo_sort(&group, es);
                        if !stuck.is_empty() {
                            self.cycles.push(OrderCycle {
                                ring: r as Ring,
                                seq,
                                msgs: stuck,
                            });
                        }
                        msgs.extend(sorted);
                    }
                    _ => msgs.extend(group),
                }
                i = j;
            }
            for (pos, m) in msgs.iter().enumerate() {
                if let Some(p) = self.place.get_mut(m) {
                    p.pos = pos as u32;
                }
            }
            order.push(msgs);
        }
        self.order = order;
    }
}

/// Orders `group` (given in first-seen order) so that every edge `(a, b)` has `a` first; ties
/// keep first-seen order. Returns the order and the messages left on a cycle (appended at the
/// end of the order, in first-seen order).
fn topo_sort(group: &[MsgId], edges: &[(MsgId, MsgId)]) -> (Vec<MsgId>, Vec<MsgId>) {
    let at: HashMap<MsgId, usize> = group.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut indeg = vec![0usize; group.len()];
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); group.len()];
    for (a, b) in edges {
        let (a, b) = (at[a], at[b]);
        next[a].push(b);
        indeg[b] += 1;
    }
    let mut ready: BTreeSet<usize> = (0..group.len()).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::with_capacity(group.len());
    let mut done = vec![false; group.len()];
    while let Some(i) = ready.pop_first() {
        out.push(group[i]);
        done[i] = true;
        for &j in &next[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.insert(j);
            }
        }
    }
    let stuck: Vec<MsgId> = (0..group.len())
        .filter(|&i| !done[i])
        .map(|i| group[i])
        .collect();
    out.extend(&stuck);
    (out, stuck)
}

/// Property 11: The log is well formed: per node `t` never decreases; a crashed node logs nothing until
/// it restarts, and only a crashed node restarts; message ids are not reused; no more nodes
/// than the `meta` line announces.
pub(super) fn well_formed(ix: &Index<'_>, params: &EffectiveParams, sink: &mut Sink) {
    let p = Property::WellFormedLog;
    for (&node, evs) in &ix.nodes {
        let mut last_t = 0u64;
        let mut down = false;
        for &i in evs {
            let ev = &ix.events[i as usize];
            let t = ev.t().unwrap_or(0);
            if t < last_t {
                sink.report(p, Some(i), || {
                    format!(
                        "node {node}: `{}` at t={t} after an event at t={last_t}",
                        ev.name()
                    )
                });
            }
            last_t = last_t.max(t);
            match ev {
                LogEvent::Crash { .. } if down => {
                    sink.report(p, Some(i), || {
                        format!("node {node} crashed at t={t} while already down")
                    });
                }
                LogEvent::Crash { .. } => down = true,
                LogEvent::Restart { .. } if !down => {
                    sink.report(p, Some(i), || {
                        format!("node {node} restarted at t={t} without a crash")
                    });
                }
                LogEvent::Restart { .. } => down = false,
                _ if down => sink.report(p, Some(i), || {
                    format!("node {node} logged `{}` at t={t} while crashed", ev.name())
                }),
                _ => {}
            }
        }
        if node == NodeId::NONE {
            sink.report(p, evs.first().copied(), || {
                "node id 0 is reserved".to_owned()
            });
        }
    }
    for &i in &ix.dup_sends {
        if let LogEvent::Send(s) = &ix.events[i as usize] {
            let first = ix.sends[&s.msg];
            let first_node = ix.events[first as usize].node().unwrap_or_default();
            sink.report(p, Some(i), || {
                format!(
                    "message id {} sent again by node {} at t={} (first sent by node {first_node})",
                    s.msg, s.node, s.t
                )
            });
        }
    }
    if let Some(n) = params.nodes
        && ix.nodes.len() as u64 > u64::from(n)
    {
        sink.report(p, None, || {
            format!(
                "{} nodes logged events, but the meta line says {n}",
                ix.nodes.len()
            )
        });
    }
}
