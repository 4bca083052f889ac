//! A checker of the AMF's promises over a run, from what the components saw.
//!
//! The observations come from the components themselves (each CSI set or remove callback as it
//! reached the component, each component process that died), from the AMF service of every
//! node (each sync with its quorum, each recovery action, each SU presence report) and from
//! the run's schedule (each node crash). They are judged in time order:
//!
//! - **OneActive**: at no moment do more SUs serve an SI (some component of theirs holds one
//!   of its CSIs active or quiescing) than its redundancy model allows (one for 2N, N+M and
//!   no redundancy; the SI's active assignments for N-way active). Components of a crashed
//!   node hold nothing; a frozen node's components serve nothing while it is frozen (the
//!   simulator freezes the whole node), and hold again what they held when it resumes.
//! - **Quorum**: a component is never told to go active while its node's last synchronised
//!   configuration had no quorum.
//! - **Escalation**: within any window of the SG's probation, a component is not restarted
//!   more often than `comp_restart_max`, nor an SU more often than `su_restart_max`, by one
//!   life of a node (the counters are the node's own; a restarted node starts them again),
//!   counting from the SU's last escalation (an SU restart starts its components' counts
//!   again, an SU failover every count of the SU).
//! - **Assigned**: at the end of the run, every SI whose SG has an SU that can serve (its node
//!   alive and in a quorate configuration, the SU reported instantiated and enabled, and
//!   serving fewer SIs active than its SG allows one SU) is served by at least one SU.

use std::collections::{BTreeMap, BTreeSet};

use ais_proto::amf::{Ha, Presence};

use super::model::Recovery;

/// One observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A node's life `inc` started at `t`.
    Started {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
        /// Its life.
        inc: u32,
    },
    /// A node was frozen at `t` (its components cannot serve until it resumes).
    Paused {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
    },
    /// A frozen node resumed.
    Resumed {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
    },
    /// A node crashed at `t` (everything on it stopped).
    Down {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
    },
    /// The AMF sync of a configuration completed at a node.
    Ring {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
        /// Its members.
        members: Vec<u32>,
        /// Whether it was quorate.
        quorate: bool,
    },
    /// A component took an HA state for a CSI (`None`: gave it up), as it received the
    /// callback.
    Ha {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
        /// The component's name.
        comp: String,
        /// Its SU.
        su: String,
        /// The SI.
        si: String,
        /// The CSI.
        csi: String,
        /// What it holds now.
        ha: Option<Ha>,
    },
    /// A component process died (crashed, killed by a cleanup): it holds nothing.
    Dead {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
        /// The component's name.
        comp: String,
    },
    /// A node's AMF took a recovery action.
    Recovery {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
        /// The SU.
        su: String,
        /// The failed component.
        comp: Option<String>,
        /// The action.
        action: Recovery,
    },
    /// A node reported an SU's presence.
    Presence {
        /// Time, ns.
        t: u64,
        /// Node id.
        node: u32,
        /// The SU.
        su: String,
        /// Presence.
        presence: Presence,
        /// Enabled.
        enabled: bool,
    },
    /// The end of the run: the nodes alive.
    End {
        /// Time, ns.
        t: u64,
        /// Nodes alive at the end.
        alive: BTreeSet<u32>,
    },
}

impl Observation {
    /// Its time, ns.
    pub fn time(&self) -> u64 {
        match self {
            Observation::Started { t, .. }
            | Observation::Paused { t, .. }
            | Observation::Resumed { t, .. }
            | Observation::Down { t, .. }
            | Observation::Ring { t, .. }
            | Observation::Ha { t, .. }
            | Observation::Dead { t, .. }
            | Observation::Recovery { t, .. }
            | Observation::Presence { t, .. }
            | Observation::End { t, .. } => *t,
        }
    }
}

/// An SG's escalation counters as the checker reads them: (comp_restart_max, component
/// probation ns, su_restart_max, SU probation ns).
pub type Counters = (u32, u64, u32, u64);

/// What a component holds: (SU, SI, CSI) → HA state.
type Holds = BTreeMap<(String, String, String), Ha>;

/// What the checker must know of the model.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Per SI: most SUs serving it at once.
    pub max_active: BTreeMap<String, u32>,
    /// Per SI: its SG's SUs.
    pub sus_of_si: BTreeMap<String, Vec<String>>,
    /// Per SU: its node, and its SG's (comp_restart_max, comp probation ns, su_restart_max,
    /// su probation ns).
    pub su: BTreeMap<String, (u32, Counters)>,
    /// Per SU: most SIs it may serve active at once (no-redundancy: 1; the SG's
    /// `max_active_sis_per_su`); an SU not listed has no limit.
    pub su_active_cap: BTreeMap<String, u32>,
}

/// A checked property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Property {
    /// Never more serving SUs for an SI than its model allows.
    OneActive,
    /// No active assignment without quorum.
    Quorum,
    /// Restarts bounded by the escalation counters.
    Escalation,
    /// Every SI with an SU that can serve is served at the end.
    Assigned,
}

/// A broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub property: Property,
    /// When, ns.
    pub t: u64,
    /// What happened.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} at {} ms: {}",
            self.property,
            self.t / 1_000_000,
            self.detail
        )
    }
}

/// Judges `observations` (any order: sorted by time here, stably).
pub fn check(observations: &[Observation], limits: &Limits) -> Vec<Violation> {
    let mut obs: Vec<&Observation> = observations.iter().collect();
    obs.sort_by_key(|o| o.time());
    let mut out = Vec::new();
    // (node, comp) -> (su, si, csi) -> ha
    let mut held: BTreeMap<(u32, String), Holds> = BTreeMap::new();
    let mut quorate: BTreeMap<u32, bool> = BTreeMap::new();
    let mut last_ring: BTreeMap<u32, bool> = BTreeMap::new();
    let mut presence: BTreeMap<String, (Presence, bool)> = BTreeMap::new();
    // (node, (SU, component or "")) -> restart times.
    let mut comp_restarts: BTreeMap<(u32, (String, String)), Vec<u64>> = BTreeMap::new();
    let mut su_restarts: BTreeMap<(u32, (String, String)), Vec<u64>> = BTreeMap::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut paused: BTreeSet<u32> = BTreeSet::new();
    for o in obs {
        match o {
            Observation::Paused { node, .. } => {
                paused.insert(*node);
            }
            Observation::Resumed { node, .. } => {
                paused.remove(node);
            }
            Observation::Started { node, .. } | Observation::Down { node, .. } => {
                held.retain(|(n, _), _| n != node);
                quorate.remove(node);
                last_ring.remove(node);
                comp_restarts.retain(|(n, _), _| n != node);
                su_restarts.retain(|(n, _), _| n != node);
                let mine: Vec<String> = limits
                    .su
                    .iter()
                    .filter(|(_, (n, _))| n == node)
                    .map(|(s, _)| s.clone())
                    .collect();
                for s in mine {
                    presence.remove(&s);
                }
            }
            Observation::Ring {
                node, quorate: q, ..
            } => {
                quorate.insert(*node, *q);
                last_ring.insert(*node, *q);
            }
            Observation::Ha {
                t,
                node,
                comp,
                su,
                si,
                csi,
                ha,
            } => {
                if *ha == Some(Ha::Active) && quorate.get(node) != Some(&true) {
                    out.push(Violation {
                        property: Property::Quorum,
                        t: *t,
                        detail: format!(
                            "{comp} at node {node} told to go active for {si} without quorum"
                        ),
                    });
                }
                let m = held.entry((*node, comp.clone())).or_default();
                let key = (su.clone(), si.clone(), csi.clone());
                match ha {
                    Some(h) => {
                        m.insert(key, *h);
                    }
                    None => {
                        m.remove(&key);
                    }
                }
                if ha.is_some_and(Ha::serves) {
                    let serving: BTreeSet<(u32, String)> = held
                        .iter()
                        .filter(|((n, _), _)| !paused.contains(n))
                        .flat_map(|((n, _), m)| {
                            m.iter()
                                .filter(|((_, s, _), h)| s == si && h.serves())
                                .map(move |((u, _, _), _)| (*n, u.clone()))
                        })
                        .collect();
                    let max = limits.max_active.get(si).copied().unwrap_or(1);
                    if serving.len() as u32 > max {
                        out.push(Violation {
                            property: Property::OneActive,
                            t: *t,
                            detail: format!(
                                "{si} served by {} SUs at once (at most {max}): {serving:?}",
                                serving.len()
                            ),
                        });
                    }
                }
            }
            Observation::Dead { node, comp, .. } => {
                held.remove(&(*node, comp.clone()));
            }
            Observation::Recovery {
                t,
                node,
                su,
                comp,
                action,
            } => {
                let Some(&(_, (cmax, cprob, smax, sprob))) = limits.su.get(su) else {
                    continue;
                };
                let (key, max, prob, what) = match action {
                    Recovery::ComponentRestart => (
                        comp.clone().unwrap_or_default(),
                        cmax,
                        cprob,
                        "component restarts",
                    ),
                    Recovery::SuRestart => (su.clone(), smax, sprob, "SU restarts"),
                    _ => {
                        comp_restarts.retain(|(n, k), _| !(n == node && k.0 == *su));
                        su_restarts.retain(|(n, k), _| !(n == node && k.0 == *su));
                        continue;
                    }
                };
                // An escalation starts the lower counters again.
                if *action != Recovery::ComponentRestart {
                    comp_restarts.retain(|(n, k), _| !(n == node && k.0 == *su));
                }
                let v = if *action == Recovery::ComponentRestart {
                    comp_restarts
                        .entry((*node, (su.clone(), key.clone())))
                        .or_default()
                } else {
                    su_restarts
                        .entry((*node, (su.clone(), String::new())))
                        .or_default()
                };
                v.retain(|&x| x + prob > *t);
                v.push(*t);
                if v.len() as u32 > max {
                    out.push(Violation {
                        property: Property::Escalation,
                        t: *t,
                        detail: format!(
                            "{} {what} of {key} at node {node} within {} ms (at most {max})",
                            v.len(),
                            prob / 1_000_000
                        ),
                    });
                }
            }
            Observation::Presence {
                su,
                presence: p,
                enabled,
                ..
            } => {
                presence.insert(su.clone(), (*p, *enabled));
                reported.insert(su.clone());
            }
            Observation::End { t, alive } => {
                for (si, sus) in &limits.sus_of_si {
                    // An SU that can serve one more SI: alive, in a quorate ring, instantiated
                    // and enabled, and below its limit of active SIs.
                    let can = sus.iter().any(|s| {
                        let Some((node, _)) = limits.su.get(s) else {
                            return false;
                        };
                        let actives: BTreeSet<&String> = held
                            .values()
                            .flat_map(|m| m.iter())
                            .filter(|((su, _, _), h)| su == s && **h == Ha::Active)
                            .map(|((_, si, _), _)| si)
                            .collect();
                        let room = limits
                            .su_active_cap
                            .get(s)
                            .is_none_or(|&cap| (actives.len() as u64) < u64::from(cap));
                        alive.contains(node)
                            && last_ring.get(node) == Some(&true)
                            && presence.get(s) == Some(&(Presence::Instantiated, true))
                            && room
                    });
                    let served = held
                        .iter()
                        .any(|(_, m)| m.iter().any(|((_, s, _), h)| s == si && *h == Ha::Active));
                    if can && !served {
                        out.push(Violation {
                            property: Property::Assigned,
                            t: *t,
                            detail: format!(
                                "{si} is not served at the end, though an SU of its SG can serve"
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn limits() -> Limits {
        let mut l = Limits::default();
        l.max_active.insert("si".into(), 1);
        l.sus_of_si
            .insert("si".into(), vec!["su1".into(), "su2".into()]);
        l.su.insert("su1".into(), (1, (2, 1_000 * MS, 1, 1_000 * MS)));
        l.su.insert("su2".into(), (2, (2, 1_000 * MS, 1, 1_000 * MS)));
        l
    }

    fn ring(t: u64, node: u32, quorate: bool) -> Observation {
        Observation::Ring {
            t,
            node,
            members: vec![1, 2],
            quorate,
        }
    }

    fn ha(t: u64, node: u32, su: &str, ha: Option<Ha>) -> Observation {
        Observation::Ha {
            t,
            node,
            comp: format!("c-{su}"),
            su: su.into(),
            si: "si".into(),
            csi: "x".into(),
            ha,
        }
    }

    fn props(v: &[Violation]) -> Vec<Property> {
        v.iter().map(|v| v.property).collect()
    }

    #[test]
    fn a_handover_through_quiesced_passes_and_two_actives_do_not() {
        let good = [
            ring(0, 1, true),
            ring(0, 2, true),
            ha(1, 1, "su1", Some(Ha::Active)),
            ha(2, 2, "su2", Some(Ha::Standby)),
            ha(3, 1, "su1", Some(Ha::Quiesced)),
            ha(4, 2, "su2", Some(Ha::Active)),
        ];
        assert!(check(&good, &limits()).is_empty());
        let bad = [
            ring(0, 1, true),
            ring(0, 2, true),
            ha(1, 1, "su1", Some(Ha::Active)),
            ha(4, 2, "su2", Some(Ha::Active)),
        ];
        assert_eq!(props(&check(&bad, &limits())), [Property::OneActive]);
        // A crash of the old active's node ends its hold.
        let crash = [
            ring(0, 1, true),
            ring(0, 2, true),
            ha(1, 1, "su1", Some(Ha::Active)),
            Observation::Down { t: 2, node: 1 },
            ha(4, 2, "su2", Some(Ha::Active)),
        ];
        assert!(check(&crash, &limits()).is_empty());
    }

    #[test]
    fn an_active_without_quorum_is_caught() {
        let v = check(
            &[ring(0, 1, false), ha(1, 1, "su1", Some(Ha::Active))],
            &limits(),
        );
        assert_eq!(props(&v), [Property::Quorum]);
    }

    #[test]
    fn restarts_beyond_the_counters_are_caught() {
        let r = |t: u64| Observation::Recovery {
            t,
            node: 1,
            su: "su1".into(),
            comp: Some("c".into()),
            action: Recovery::ComponentRestart,
        };
        assert!(check(&[r(0), r(10 * MS)], &limits()).is_empty());
        assert_eq!(
            props(&check(&[r(0), r(10 * MS), r(20 * MS)], &limits())),
            [Property::Escalation]
        );
        // Outside the window they are fine again.
        assert!(check(&[r(0), r(10 * MS), r(2_000 * MS)], &limits()).is_empty());
    }

    #[test]
    fn an_unserved_si_at_the_end_is_caught_when_an_su_could_serve() {
        let presence = Observation::Presence {
            t: 0,
            node: 1,
            su: "su1".into(),
            presence: Presence::Instantiated,
            enabled: true,
        };
        let end = Observation::End {
            t: 10,
            alive: [1].into(),
        };
        let v = check(
            &[ring(0, 1, true), presence.clone(), end.clone()],
            &limits(),
        );
        assert_eq!(props(&v), [Property::Assigned]);
        let served = check(
            &[
                ring(0, 1, true),
                presence,
                ha(5, 1, "su1", Some(Ha::Active)),
                end.clone(),
            ],
            &limits(),
        );
        assert!(served.is_empty());
        // No SU could serve: nothing is owed.
        assert!(check(&[ring(0, 1, true), end], &limits()).is_empty());
    }
}
