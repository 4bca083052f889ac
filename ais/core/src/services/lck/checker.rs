//! The LCK checker: judges the lock tables every node held (after every change it applied and
//! at every sync activation), the grants clients were told and the deadlocks reported, in a
//! simulated run (`ais/tests/sim_lck.rs`). It recomputes the waits-for graph from each table
//! itself (it does not call the service's graph code).
//!
//! Properties:
//! - **Exclusive**: no table ever has two granted locks of one resource that conflict (an EX
//!   beside any other lock);
//! - **Quorum**: no lock becomes granted in a change applied in a ring that was not quorate,
//!   and no grant is told by a node whose last activated ring was not quorate;
//! - **Identical**: every node that activated the sync of one ring holds the same table;
//! - **DeadHolder**: at an activation, no lock (granted or queued, orphans aside) belongs to
//!   a holder whose node is not a member, to an earlier incarnation of a member, or to a
//!   holder closed before its node's sync of that ring started;
//! - **Carry** (the "never two holders" promise, stated for told grants): a grant told to a
//!   client stays granted to its holder at every later activation of its node, as long as
//!   that node was quorate at every activation in between, no quorate ring was activated
//!   without it since it activated the ring the grant was told in, nor any with a higher
//!   sequence than that ring (a node cut off from the quorate partition may tell grants
//!   before it notices; they do not stand), the client neither unlocked it nor closed the
//!   holder (a holder whose node is left out of a quorate configuration loses its locks:
//!   that configuration released them), and no operator released it (`aisctl lck unlock`
//!   ends a holder's claim without telling it: that is what the operator asked for). With Exclusive, and at most one
//!   quorate partition at a time, no two clients are told conflicting grants that both
//!   stand;
//! - **DeadlockSound**: every DEADLOCK answer was for a request whose edges close a cycle
//!   in the table it was applied to;
//! - **DeadlockComplete**: no table ever holds a cycle (every cycle that would form was
//!   refused).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;

use super::table::Table;
use ais_proto::lck::{Holder, LockId, Mode};

/// One resource as a node held it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResState {
    /// Granted locks: id, holder (`None`: orphan), mode.
    pub granted: Vec<(LockId, Option<Holder>, Mode)>,
    /// Queued requests, first first.
    pub queued: Vec<(LockId, Holder, Mode)>,
}

/// A node's lock table as the checker sees it (resources with locks).
pub type State = BTreeMap<Bytes, ResState>;

/// What a table looks like to the checker.
pub fn state(t: &Table) -> State {
    t.resources
        .iter()
        .filter(|(_, r)| !r.granted.is_empty() || !r.queued.is_empty())
        .map(|(n, r)| {
            (
                n.clone(),
                ResState {
                    granted: r.granted.iter().map(|l| (l.id, l.holder, l.mode)).collect(),
                    queued: r
                        .queued
                        .iter()
                        .filter_map(|l| Some((l.id, l.holder?, l.mode)))
                        .collect(),
                },
            )
        })
        .collect()
}

/// Something seen in a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A node (re)started: its earlier incarnation's holders are gone.
    Started {
        /// The node.
        node: u32,
    },
    /// A node started the sync of a ring (sent its summary).
    SyncStarted {
        /// The node.
        node: u32,
        /// The ring, `(representative, sequence)`.
        ring: (u32, u64),
    },
    /// A node activated the sync of a ring.
    Activated {
        /// The node.
        node: u32,
        /// The ring.
        ring: (u32, u64),
        /// Its members.
        members: Vec<u32>,
        /// Whether the ring is quorate.
        quorate: bool,
        /// The node's epoch (its holders' and locks' epoch).
        epoch: u64,
        /// Its table.
        state: State,
    },
    /// A node applied a change that altered its table.
    Applied {
        /// The node.
        node: u32,
        /// Whether the ring the change was sent in is quorate.
        quorate: bool,
        /// The table after it.
        state: State,
    },
    /// A node told a client its lock was granted.
    Told {
        /// The node.
        node: u32,
        /// The lock.
        lock: LockId,
        /// Its holder.
        holder: Holder,
        /// Its resource.
        resource: Bytes,
        /// Its mode.
        mode: Mode,
    },
    /// A node answered DEADLOCK to a request, applied to this table (unchanged by it).
    Deadlock {
        /// The node.
        node: u32,
        /// Who asked.
        holder: Holder,
        /// The resource.
        resource: Bytes,
        /// The mode asked.
        mode: Mode,
        /// The table.
        state: State,
    },
    /// A holder was closed at its node (by its client or its connection's end).
    Closed {
        /// The holder.
        holder: Holder,
    },
    /// A client asked to unlock a lock (it no longer claims it).
    Unlocking {
        /// The lock.
        lock: LockId,
    },
    /// A node applied an operator's release of a lock (`aisctl lck unlock`): its holder's
    /// claim ends there, told or not.
    Released {
        /// The lock.
        lock: LockId,
    },
}

/// A property of LCK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Property {
    /// Two conflicting granted locks on one resource.
    Exclusive,
    /// A grant without quorum.
    Quorum,
    /// Members of one ring hold different tables.
    Identical,
    /// A lock of a departed or closed holder survived a sync.
    DeadHolder,
    /// A told grant vanished while its holder's node stayed quorate.
    Carry,
    /// A DEADLOCK answer without a cycle.
    DeadlockSound,
    /// A cycle in a table.
    DeadlockComplete,
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

/// The waits-for edges of a table, recomputed: a queued request of `h` waits for the holders
/// of every conflicting granted lock and every conflicting request queued before it.
pub fn edges(state: &State) -> BTreeMap<Holder, BTreeSet<Holder>> {
    let mut e: BTreeMap<Holder, BTreeSet<Holder>> = BTreeMap::new();
    for r in state.values() {
        for (i, (_, h, m)) in r.queued.iter().enumerate() {
            let granted = r
                .granted
                .iter()
                .filter_map(|(_, g, gm)| Some((g.as_ref()?, gm)));
            let before = r.queued[..i].iter().map(|(_, q, qm)| (q, qm));
            for (other, om) in granted.chain(before) {
                if m.conflicts(*om) {
                    e.entry(*h).or_default().insert(*other);
                }
            }
        }
    }
    e
}

/// Whether `to` is reachable from `from` (in one step or more).
fn reaches(e: &BTreeMap<Holder, BTreeSet<Holder>>, from: &Holder, to: &Holder) -> bool {
    let mut stack: Vec<Holder> = e.get(from).into_iter().flatten().copied().collect();
    let mut seen = BTreeSet::new();
    while let Some(h) = stack.pop() {
        if h == *to {
            return true;
        }
        if seen.insert(h) {
            stack.extend(e.get(&h).into_iter().flatten().copied());
        }
    }
    false
}

/// A holder on a cycle of the table's waits-for graph, if any.
pub fn cycle(state: &State) -> Option<Holder> {
    let e = edges(state);
    e.keys().copied().find(|h| reaches(&e, h, h))
}

fn conflict(state: &State) -> Option<String> {
    for (name, r) in state {
        for (i, (a, _, am)) in r.granted.iter().enumerate() {
            for (b, _, bm) in &r.granted[i + 1..] {
                if am.conflicts(*bm) {
                    return Some(format!(
                        "resource {:?}: {a} ({am}) and {b} ({bm}) both granted",
                        String::from_utf8_lossy(name)
                    ));
                }
            }
        }
    }
    None
}

fn granted_ids(state: &State) -> BTreeSet<LockId> {
    state
        .values()
        .flat_map(|r| r.granted.iter().map(|(id, _, _)| *id))
        .collect()
}

struct ToldGrant {
    step: u64,
    /// The sequence of the ring its node last activated when it told it.
    ring_seq: u64,
    node: u32,
    lock: LockId,
    holder: Holder,
    resource: Bytes,
}

/// The checker, fed observations in the order they happened.
#[derive(Default)]
pub struct Checker {
    violations: Vec<Violation>,
    step: u64,
    /// Each node's last table.
    last: BTreeMap<u32, State>,
    /// Each node's last activation: (quorate, epoch, step, ring sequence).
    node: BTreeMap<u32, (bool, u64, u64, u64)>,
    /// Each ring's first activated table.
    rings: BTreeMap<(u32, u64), (u32, State)>,
    /// When each (node, ring) sync started.
    sync_started: BTreeMap<(u32, (u32, u64)), u64>,
    /// When each holder was closed.
    closed: BTreeMap<Holder, u64>,
    told: Vec<ToldGrant>,
    /// Quorate activations: (step, ring sequence, members).
    quorate_rings: Vec<(u64, u64, BTreeSet<u32>)>,
    /// Checks done (for the tests' "it did check" assertions).
    pub checks: u64,
}

impl Checker {
    fn violate(&mut self, property: Property, detail: String) {
        if self.violations.len() < 100 {
            self.violations.push(Violation { property, detail });
        }
    }

    fn table(&mut self, node: u32, state: &State) {
        self.checks += 1;
        if let Some(c) = conflict(state) {
            self.violate(Property::Exclusive, format!("node {node}: {c}"));
        }
        if let Some(h) = cycle(state) {
            self.violate(
                Property::DeadlockComplete,
                format!("node {node}: holder {h} is on a waits-for cycle"),
            );
        }
    }

    /// One observation.
    pub fn observe(&mut self, o: Observation) {
        self.step += 1;
        let step = self.step;
        match o {
            Observation::Started { node } => {
                self.node.remove(&node);
                self.last.remove(&node);
                self.told.retain(|t| t.node != node);
            }
            Observation::SyncStarted { node, ring } => {
                self.sync_started.insert((node, ring), step);
            }
            Observation::Activated {
                node,
                ring,
                members,
                quorate,
                epoch,
                state,
            } => {
                self.table(node, &state);
                match self.rings.get(&ring) {
                    None => {
                        self.rings.insert(ring, (node, state.clone()));
                    }
                    Some((first, s)) if *s != state => {
                        let first = *first;
                        self.violate(
                            Property::Identical,
                            format!(
                                "ring {}.{}: node {node}'s table differs from node {first}'s",
                                ring.0, ring.1
                            ),
                        );
                    }
                    Some(_) => {}
                }
                self.node.insert(node, (quorate, epoch, step, ring.1));
                for (name, r) in &state {
                    let holders = r
                        .granted
                        .iter()
                        .filter_map(|(id, h, _)| Some((*id, (*h)?)))
                        .chain(r.queued.iter().map(|(id, h, _)| (*id, *h)));
                    for (id, h) in holders {
                        let why = if !members.contains(&h.node) {
                            Some("its node is not a member".to_string())
                        } else if self
                            .node
                            .get(&h.node)
                            .is_some_and(|(_, e, _, _)| *e != 0 && h.epoch < *e)
                        {
                            Some("it is of an earlier incarnation of its node".to_string())
                        } else {
                            match (self.closed.get(&h), self.sync_started.get(&(h.node, ring))) {
                                (Some(c), Some(s)) if c < s => {
                                    Some("it was closed before its node's sync".to_string())
                                }
                                _ => None,
                            }
                        };
                        if let Some(why) = why {
                            self.violate(
                                Property::DeadHolder,
                                format!(
                                    "node {node}, ring {}.{}: lock {id} on {:?} of holder {h}: {why}",
                                    ring.0,
                                    ring.1,
                                    String::from_utf8_lossy(name)
                                ),
                            );
                        }
                    }
                }
                // Told grants of this node: kept while it stays quorate and no quorate ring
                // formed without it since (then it was cut off, and that ring released
                // its holders).
                let cut_off: Vec<usize> = self
                    .told
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| {
                        self.quorate_rings.iter().any(|(s, seq, m)| {
                            (*s > t.step || *seq > t.ring_seq) && !m.contains(&t.node)
                        })
                    })
                    .map(|(i, _)| i)
                    .collect();
                for i in cut_off.into_iter().rev() {
                    self.told.remove(i);
                }
                if quorate {
                    self.quorate_rings
                        .push((step, ring.1, members.iter().copied().collect()));
                }
                if quorate {
                    let granted: BTreeSet<(LockId, Option<Holder>)> = state
                        .values()
                        .flat_map(|r| r.granted.iter().map(|(id, h, _)| (*id, *h)))
                        .collect();
                    let lost: Vec<String> = self
                        .told
                        .iter()
                        .filter(|t| t.node == node && !granted.contains(&(t.lock, Some(t.holder))))
                        .map(|t| {
                            format!(
                                "node {node}, ring {}.{}: lock {} on {:?} told granted to {} is \
                                 no longer granted to it",
                                ring.0,
                                ring.1,
                                t.lock,
                                String::from_utf8_lossy(&t.resource),
                                t.holder
                            )
                        })
                        .collect();
                    for l in lost {
                        self.violate(Property::Carry, l);
                    }
                } else {
                    self.told.retain(|t| t.node != node);
                }
                self.last.insert(node, state);
            }
            Observation::Applied {
                node,
                quorate,
                state,
            } => {
                self.table(node, &state);
                if !quorate {
                    let before = self.last.get(&node).map(granted_ids).unwrap_or_default();
                    if let Some(id) = granted_ids(&state).difference(&before).next() {
                        self.violate(
                            Property::Quorum,
                            format!("node {node} granted {id} in a ring without quorum"),
                        );
                    }
                }
                self.last.insert(node, state);
            }
            Observation::Told {
                node,
                lock,
                holder,
                resource,
                mode,
            } => {
                self.checks += 1;
                if !self.node.get(&node).is_some_and(|(q, _, _, _)| *q) {
                    self.violate(
                        Property::Quorum,
                        format!("node {node} told grant {lock} outside a quorate ring"),
                    );
                }
                let held = self
                    .last
                    .get(&node)
                    .and_then(|s| s.get(&resource))
                    .is_some_and(|r| {
                        r.granted
                            .iter()
                            .any(|(id, h, m)| *id == lock && *h == Some(holder) && *m == mode)
                    });
                if !held {
                    self.violate(
                        Property::Exclusive,
                        format!("node {node} told grant {lock} that its table does not hold"),
                    );
                }
                // From the activation of the ring it was told in: a quorate ring formed
                // without the node after that cut it off, even before it noticed.
                let (since, ring_seq) = self
                    .node
                    .get(&node)
                    .map_or((step, 0), |(_, _, s, r)| (*s, *r));
                self.told.push(ToldGrant {
                    step: since,
                    ring_seq,
                    node,
                    lock,
                    holder,
                    resource,
                });
            }
            Observation::Deadlock {
                node,
                holder,
                resource,
                mode,
                state,
            } => {
                self.checks += 1;
                let mut with = state.clone();
                with.entry(resource.clone()).or_default().queued.push((
                    LockId::default(),
                    holder,
                    mode,
                ));
                let e = edges(&with);
                if !reaches(&e, &holder, &holder) {
                    self.violate(
                        Property::DeadlockSound,
                        format!(
                            "node {node} answered DEADLOCK to {holder}'s {mode} request on {:?}, \
                             which closes no cycle",
                            String::from_utf8_lossy(&resource)
                        ),
                    );
                }
            }
            Observation::Closed { holder } => {
                self.closed.insert(holder, step);
                self.told.retain(|t| t.holder != holder);
            }
            Observation::Unlocking { lock } | Observation::Released { lock } => {
                self.told.retain(|t| t.lock != lock);
            }
        }
    }

    /// The violations found.
    pub fn finish(self) -> Vec<Violation> {
        self.violations
    }
}

/// Judges a whole run.
pub fn check(observations: &[Observation]) -> Vec<Violation> {
    let mut c = Checker::default();
    for o in observations {
        c.observe(o.clone());
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(node: u32, handle: u64) -> Holder {
        Holder {
            node,
            epoch: 4,
            handle,
        }
    }

    fn id(node: u32, n: u64) -> LockId {
        LockId { node, epoch: 4, n }
    }

    fn res(
        granted: Vec<(LockId, Option<Holder>, Mode)>,
        queued: Vec<(LockId, Holder, Mode)>,
    ) -> State {
        BTreeMap::from([(Bytes::from_static(b"r"), ResState { granted, queued })])
    }

    fn activated(node: u32, members: Vec<u32>, quorate: bool, state: State) -> Observation {
        Observation::Activated {
            node,
            ring: (1, 8),
            members,
            quorate,
            epoch: 4,
            state,
        }
    }

    fn props(obs: &[Observation]) -> Vec<Property> {
        check(obs).into_iter().map(|v| v.property).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let s = res(
            vec![
                (id(1, 1), Some(h(1, 1)), Mode::Pr),
                (id(2, 1), Some(h(2, 1)), Mode::Pr),
            ],
            vec![(id(1, 2), h(1, 2), Mode::Ex)],
        );
        let obs = [
            activated(1, vec![1, 2], true, s.clone()),
            activated(2, vec![1, 2], true, s.clone()),
            Observation::Told {
                node: 1,
                lock: id(1, 1),
                holder: h(1, 1),
                resource: Bytes::from_static(b"r"),
                mode: Mode::Pr,
            },
            Observation::Applied {
                node: 1,
                quorate: true,
                state: s,
            },
        ];
        assert_eq!(props(&obs), vec![]);
    }

    #[test]
    fn two_conflicting_grants_are_caught() {
        let s = res(
            vec![
                (id(1, 1), Some(h(1, 1)), Mode::Pr),
                (id(2, 1), Some(h(2, 1)), Mode::Ex),
            ],
            vec![],
        );
        let obs = [Observation::Applied {
            node: 1,
            quorate: true,
            state: s,
        }];
        assert_eq!(props(&obs), vec![Property::Exclusive]);
    }

    #[test]
    fn a_grant_without_quorum_is_caught() {
        let before = res(vec![], vec![(id(1, 1), h(1, 1), Mode::Ex)]);
        let after = res(vec![(id(1, 1), Some(h(1, 1)), Mode::Ex)], vec![]);
        let obs = [
            activated(1, vec![1], false, before),
            Observation::Applied {
                node: 1,
                quorate: false,
                state: after.clone(),
            },
        ];
        assert_eq!(props(&obs), vec![Property::Quorum]);
        // Telling a grant while the last ring was not quorate.
        let obs = [
            activated(1, vec![1], false, after),
            Observation::Told {
                node: 1,
                lock: id(1, 1),
                holder: h(1, 1),
                resource: Bytes::from_static(b"r"),
                mode: Mode::Ex,
            },
        ];
        assert_eq!(props(&obs), vec![Property::Quorum]);
    }

    #[test]
    fn different_tables_in_one_ring_are_caught() {
        let a = res(vec![(id(1, 1), Some(h(1, 1)), Mode::Ex)], vec![]);
        let obs = [
            activated(1, vec![1, 2], true, a),
            activated(2, vec![1, 2], true, State::new()),
        ];
        assert_eq!(props(&obs), vec![Property::Identical]);
    }

    #[test]
    fn locks_of_departed_closed_or_restarted_holders_are_caught() {
        let s = res(vec![(id(3, 1), Some(h(3, 1)), Mode::Ex)], vec![]);
        assert_eq!(
            props(&[activated(1, vec![1, 2], true, s.clone())]),
            vec![Property::DeadHolder]
        );
        let obs = [
            Observation::Closed { holder: h(3, 1) },
            Observation::SyncStarted {
                node: 3,
                ring: (1, 8),
            },
            activated(1, vec![1, 3], true, s.clone()),
        ];
        assert_eq!(props(&obs), vec![Property::DeadHolder]);
        // Closed after its node's summary: may still be there.
        let obs = [
            Observation::SyncStarted {
                node: 3,
                ring: (1, 8),
            },
            Observation::Closed { holder: h(3, 1) },
            activated(1, vec![1, 3], true, s.clone()),
        ];
        assert_eq!(props(&obs), vec![]);
        // Node 3 restarted with epoch 12: epoch-4 holders are of its earlier life.
        let obs = [Observation::Activated {
            node: 3,
            ring: (1, 12),
            members: vec![1, 3],
            quorate: true,
            epoch: 12,
            state: s.clone(),
        }];
        assert_eq!(props(&obs), vec![Property::DeadHolder]);
        // An orphan (no holder) is fine.
        let orphan = res(vec![(id(3, 1), None, Mode::Ex)], vec![]);
        assert_eq!(props(&[activated(1, vec![1], true, orphan)]), vec![]);
    }

    #[test]
    fn a_told_grant_lost_while_quorate_is_caught() {
        let held = res(vec![(id(1, 1), Some(h(1, 1)), Mode::Ex)], vec![]);
        let told = Observation::Told {
            node: 1,
            lock: id(1, 1),
            holder: h(1, 1),
            resource: Bytes::from_static(b"r"),
            mode: Mode::Ex,
        };
        let later = |quorate| Observation::Activated {
            node: 1,
            ring: (1, 12),
            members: vec![1, 2],
            quorate,
            epoch: 4,
            state: State::new(),
        };
        let obs = [
            activated(1, vec![1, 2], true, held.clone()),
            told.clone(),
            later(true),
        ];
        assert_eq!(props(&obs), vec![Property::Carry]);
        // Unlocked by its client, or its node lost quorum: not promised.
        let obs = [
            activated(1, vec![1, 2], true, held.clone()),
            told.clone(),
            Observation::Unlocking { lock: id(1, 1) },
            later(true),
        ];
        assert_eq!(props(&obs), vec![]);
        // Released by an operator (applied at some node): not promised either, but only that
        // lock's claim ends.
        let obs = [
            activated(1, vec![1, 2], true, held.clone()),
            told.clone(),
            Observation::Released { lock: id(1, 1) },
            later(true),
        ];
        assert_eq!(props(&obs), vec![]);
        let obs = [
            activated(1, vec![1, 2], true, held.clone()),
            told.clone(),
            Observation::Released { lock: id(1, 2) },
            later(true),
        ];
        assert_eq!(props(&obs), vec![Property::Carry]);
        let obs = [
            activated(1, vec![1, 2], true, held.clone()),
            told.clone(),
            later(false),
            later(true),
        ];
        assert_eq!(props(&obs), vec![]);
        // A quorate ring formed without node 1 since: it was cut off; not promised.
        let obs = [
            activated(1, vec![1, 2], true, held.clone()),
            told.clone(),
            Observation::Activated {
                node: 2,
                ring: (2, 10),
                members: vec![2, 3],
                quorate: true,
                epoch: 4,
                state: State::new(),
            },
            later(true),
        ];
        assert_eq!(props(&obs), vec![]);
        // Told but not in the node's table.
        let obs = [activated(1, vec![1, 2], true, State::new()), told];
        assert_eq!(props(&obs), vec![Property::Exclusive]);
    }

    #[test]
    fn deadlock_answers_are_checked_both_ways() {
        // h1 and h2 hold PR; h2 waits for EX (behind h1's PR): h1 asking EX closes a cycle.
        let s = res(
            vec![
                (id(1, 1), Some(h(1, 1)), Mode::Pr),
                (id(2, 1), Some(h(2, 1)), Mode::Pr),
            ],
            vec![(id(2, 2), h(2, 1), Mode::Ex)],
        );
        let dl = |holder, mode, state: &State| Observation::Deadlock {
            node: 1,
            holder,
            resource: Bytes::from_static(b"r"),
            mode,
            state: state.clone(),
        };
        assert_eq!(props(&[dl(h(1, 1), Mode::Ex, &s)]), vec![]);
        // A third holder asking EX only waits: no cycle.
        assert_eq!(
            props(&[dl(h(3, 1), Mode::Ex, &s)]),
            vec![Property::DeadlockSound]
        );
        // A table with the cycle in it.
        let mut cyc = s.clone();
        cyc.get_mut(&Bytes::from_static(b"r"))
            .unwrap()
            .queued
            .push((id(1, 2), h(1, 1), Mode::Ex));
        let obs = [Observation::Applied {
            node: 1,
            quorate: true,
            state: cyc,
        }];
        assert_eq!(props(&obs), vec![Property::DeadlockComplete]);
        // A self-conversion (PR held, EX asked by the same holder) is a cycle of one.
        let one = res(vec![(id(1, 1), Some(h(1, 1)), Mode::Pr)], vec![]);
        assert_eq!(props(&[dl(h(1, 1), Mode::Ex, &one)]), vec![]);
        // Waiting on an orphan is no cycle.
        let orphan = res(vec![(id(1, 1), None, Mode::Ex)], vec![]);
        assert_eq!(
            props(&[dl(h(1, 1), Mode::Ex, &orphan)]),
            vec![Property::DeadlockSound]
        );
    }
}
