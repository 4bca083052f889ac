//! The replicated AMF state and the assignment rules every node applies to it.
//!
//! Every member holds the same [`Cluster`]: each SU's presence, operational and
//! administrative state, and each SI's assignments. It changes only at points of the ring's
//! total order (a ring message applied, a sync completed), and after each change every member
//! runs the same deterministic [`Cluster::plan`], so every member decides the same
//! assignments without a director being elected.
//!
//! An assignment has a *target* (the HA state the cluster wants the SU's components to take,
//! or none: remove it) and a *held* state (what the SU's node confirmed its components took).
//! The node hosting the SU carries targets out and confirms them on the ring. The one safety
//! rule is in [`Asg::serving`]: an assignment counts as serving while either its target or its
//! held state serves, so no SI gets a new active before the old one has confirmed that it
//! stopped (quiesced or removed), or was cleaned up by its node, or its node left the
//! membership and the fence delay passed.

use std::collections::{BTreeMap, BTreeSet};

use ais_proto::amf::{AdminState, Ha, Presence, Readiness};

use super::model::{AmfModel, CsiTarget, Escalation, Redundancy};

/// Index of an SU in [`Flat::sus`].
pub type SuIx = usize;
/// Index of an SI in [`Flat::sis`].
pub type SiIx = usize;

/// A component of a flattened SU.
#[derive(Debug, Clone)]
pub struct FlatComp {
    /// Its name in the SU.
    pub name: String,
    /// Its SA Forum distinguished name.
    pub dn: String,
    /// Index of its type in [`AmfModel::comp_types`].
    pub ctype: usize,
}

/// An SU with what the state machine needs of it.
#[derive(Debug, Clone)]
pub struct FlatSu {
    /// Its name.
    pub name: String,
    /// Its SG's index in [`Flat::sgs`].
    pub sg: usize,
    /// Its node's id.
    pub nodeid: u32,
    /// Its rank.
    pub rank: u32,
    /// Its components, by instantiation level then name.
    pub comps: Vec<FlatComp>,
}

/// A CSI: its name, the component it goes to, its attributes.
pub type FlatCsi = (String, CsiTarget, Vec<(String, String)>);

/// An SI with what the state machine needs of it.
#[derive(Debug, Clone)]
pub struct FlatSi {
    /// Its name.
    pub name: String,
    /// Its SG's index.
    pub sg: usize,
    /// Most active assignments.
    pub max_active: u32,
    /// Most standby assignments.
    pub max_standby: u32,
    /// Its CSIs: (name, target, attributes).
    pub csis: Vec<FlatCsi>,
}

/// An SG with what the state machine needs of it.
#[derive(Debug, Clone)]
pub struct FlatSg {
    /// Its name.
    pub name: String,
    /// Its redundancy model.
    pub redundancy: Redundancy,
    /// Its SUs, by (rank, name).
    pub sus: Vec<SuIx>,
    /// Its SIs, by (rank, name).
    pub sis: Vec<SiIx>,
    /// Its escalation counters.
    pub escalation: Escalation,
}

/// The information model flattened into index-addressed tables.
#[derive(Debug, Clone)]
pub struct Flat {
    /// The model itself.
    pub model: AmfModel,
    /// Every SU.
    pub sus: Vec<FlatSu>,
    /// Every SI.
    pub sis: Vec<FlatSi>,
    /// Every SG.
    pub sgs: Vec<FlatSg>,
    /// A digest of the model (members with another model are refused at sync).
    pub digest: u64,
}

impl Flat {
    /// Flattens a validated model.
    pub fn new(model: AmfModel) -> Flat {
        let mut sus = Vec::new();
        let mut sis = Vec::new();
        let mut sgs = Vec::new();
        for app in &model.apps {
            for sg in &app.sgs {
                let g = sgs.len();
                let mut su_ix = Vec::new();
                for su in &sg.sus {
                    let nodeid = model.node(&su.node).map_or(0, |n| n.nodeid);
                    let mut comps: Vec<FlatComp> = su
                        .components
                        .iter()
                        .map(|c| FlatComp {
                            name: c.name.clone(),
                            dn: AmfModel::dn_of_component(&app.name, &sg.name, &su.name, &c.name),
                            ctype: model
                                .comp_types
                                .iter()
                                .position(|t| t.name == c.comp_type)
                                .unwrap_or(0),
                        })
                        .collect();
                    comps.sort_by_key(|c| {
                        (
                            model
                                .comp_types
                                .get(c.ctype)
                                .map_or(0, |t| t.instantiation_level),
                            c.name.clone(),
                        )
                    });
                    su_ix.push(sus.len());
                    sus.push(FlatSu {
                        name: su.name.clone(),
                        sg: g,
                        nodeid,
                        rank: su.rank,
                        comps,
                    });
                }
                su_ix.sort_by_key(|&i| (sus[i].rank, sus[i].name.clone()));
                let mut si_ix = Vec::new();
                for si in app.sis.iter().filter(|si| si.sg == sg.name) {
                    si_ix.push(sis.len());
                    sis.push(FlatSi {
                        name: si.name.clone(),
                        sg: g,
                        max_active: sg.redundancy.max_actives_per_si(si.active_assignments),
                        max_standby: sg.redundancy.max_standbys_per_si(),
                        csis: si
                            .csis
                            .iter()
                            .map(|c| (c.name.clone(), c.target.clone(), c.attributes.clone()))
                            .collect(),
                    });
                }
                let ranks: BTreeMap<usize, u32> = app
                    .sis
                    .iter()
                    .filter(|si| si.sg == sg.name)
                    .zip(si_ix.iter())
                    .map(|(si, &i)| (i, si.rank))
                    .collect();
                si_ix.sort_by_key(|&i| (ranks[&i], sis[i].name.clone()));
                sgs.push(FlatSg {
                    name: sg.name.clone(),
                    redundancy: sg.redundancy,
                    sus: su_ix,
                    sis: si_ix,
                    escalation: sg.escalation,
                });
            }
        }
        // FNV-1a over the model's debug form: the same file gives the same digest everywhere.
        let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
        for b in format!("{model:?}").bytes() {
            digest ^= u64::from(b);
            digest = digest.wrapping_mul(0x0100_0000_01b3);
        }
        Flat {
            model,
            sus,
            sis,
            sgs,
            digest,
        }
    }

    /// The index of the component of SU `su` that takes CSI `csi` of SI `si`.
    pub fn comp_of(&self, su: SuIx, si: SiIx, csi: usize) -> Option<usize> {
        let (_, target, _) = self.sis[si].csis.get(csi)?;
        let comps = &self.sus[su].comps;
        match target {
            CsiTarget::Component(name) => comps.iter().position(|c| &c.name == name),
            CsiTarget::CompType(t) => comps.iter().position(|c| {
                self.model
                    .comp_types
                    .get(c.ctype)
                    .is_some_and(|ct| &ct.name == t)
            }),
        }
    }

    /// The SU named `name`.
    pub fn su_named(&self, name: &str) -> Option<SuIx> {
        self.sus.iter().position(|s| s.name == name)
    }

    /// The SI named `name`.
    pub fn si_named(&self, name: &str) -> Option<SiIx> {
        self.sis.iter().position(|s| s.name == name)
    }
}

/// An SU's administrative state (`SaAmfAdminStateT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admin {
    /// In service.
    Unlocked,
    /// Out of service: no assignments.
    Locked,
    /// Locked and its components terminated.
    LockedInstantiation,
    /// Being locked gracefully: its active assignments are quiesced first.
    ShuttingDown,
}

impl Admin {
    /// A code for the sync.
    pub fn code(self) -> u8 {
        match self {
            Admin::Unlocked => 1,
            Admin::Locked => 2,
            Admin::LockedInstantiation => 3,
            Admin::ShuttingDown => 4,
        }
    }

    /// The value with code `c` (unknown codes are read as locked: the safe side).
    pub fn from_code(c: u8) -> Admin {
        match c {
            1 => Admin::Unlocked,
            3 => Admin::LockedInstantiation,
            4 => Admin::ShuttingDown,
            _ => Admin::Locked,
        }
    }

    /// The protocol's value, for the status tree.
    pub fn state(self) -> AdminState {
        match self {
            Admin::Unlocked => AdminState::Unlocked,
            Admin::Locked => AdminState::Locked,
            Admin::LockedInstantiation => AdminState::LockedInstantiation,
            Admin::ShuttingDown => AdminState::ShuttingDown,
        }
    }

    /// Its name in status output.
    pub fn name(self) -> &'static str {
        match self {
            Admin::Unlocked => "unlocked",
            Admin::Locked => "locked",
            Admin::LockedInstantiation => "locked-instantiation",
            Admin::ShuttingDown => "shutting-down",
        }
    }
}

/// One assignment of an SI to an SU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asg {
    /// What the cluster wants the SU's components to hold (`None`: remove).
    pub target: Option<Ha>,
    /// What the SU's node confirmed they hold.
    pub held: Option<Ha>,
    /// The generation of the target, quoted by the confirmation.
    pub generation: u32,
    /// A serving target was given and no later target has been confirmed since: the node may
    /// have told its components to serve already.
    pub pending_serve: bool,
}

impl Asg {
    /// Whether the SU may be serving the SI (or is about to): the safety rule.
    pub fn serving(&self) -> bool {
        self.target.is_some_and(Ha::serves)
            || self.held.is_some_and(Ha::serves)
            || self.pending_serve
    }

    /// Whether target and held agree.
    pub fn settled(&self) -> bool {
        self.target == self.held
    }
}

/// The replicated state of an SU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuRt {
    /// Presence, as its node reported it.
    pub presence: Presence,
    /// Operational state, as its node reported it.
    pub enabled: bool,
    /// Administrative state.
    pub admin: Admin,
    /// Administrative changes applied (the newest wins at a merge).
    pub admin_version: u64,
}

/// The replicated state of an SI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiRt {
    /// Administratively locked: no assignments.
    pub locked: bool,
    /// Administrative changes applied.
    pub admin_version: u64,
    /// Its assignments, by SU.
    pub asg: BTreeMap<SuIx, Asg>,
    /// Nodes that left while they may have served it: no new active until the fence delay
    /// passed.
    pub fence: BTreeSet<u32>,
}

/// A component's readiness state: its SU's, unless the component itself is disabled or
/// neither instantiated nor restarting (then out of service).
pub fn comp_readiness(su: Readiness, presence: Presence, enabled: bool) -> Readiness {
    if enabled && matches!(presence, Presence::Instantiated | Presence::Restarting) {
        su
    } else {
        Readiness::OutOfService
    }
}

/// The settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// The cluster has two nodes and quorum's `two_node` makes each half of a split
    /// quorate: alone, only the node with the lower node id may serve.
    pub two_node: bool,
    /// Deliberate defect: assign without quorum and keep actives without it.
    pub ignore_quorum: bool,
    /// Deliberate defect: promote while the old active has not confirmed it stopped.
    pub promote_unconfirmed: bool,
}

/// The replicated state.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Per SU.
    pub sus: Vec<SuRt>,
    /// Per SI.
    pub sis: Vec<SiRt>,
    /// The current members (node ids).
    pub members: BTreeSet<u32>,
    /// Quorate.
    pub quorate: bool,
    /// The next assignment generation.
    pub next_generation: u32,
}

impl Cluster {
    /// The state of a cluster that knows nothing yet.
    pub fn new(flat: &Flat) -> Cluster {
        Cluster {
            sus: vec![
                SuRt {
                    presence: Presence::Uninstantiated,
                    enabled: true,
                    admin: Admin::Unlocked,
                    admin_version: 0,
                };
                flat.sus.len()
            ],
            sis: vec![SiRt::default(); flat.sis.len()],
            members: BTreeSet::new(),
            quorate: false,
            next_generation: 1,
        }
    }

    /// Sets the target of SU `su`'s assignment of SI `si` (creating it), with a new
    /// generation.
    pub fn set_target(&mut self, si: SiIx, su: SuIx, target: Option<Ha>) {
        if self.sis[si]
            .asg
            .get(&su)
            .is_some_and(|a| a.target == target)
        {
            return;
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let a = self.sis[si].asg.entry(su).or_insert(Asg {
            target: None,
            held: None,
            generation,
            pending_serve: false,
        });
        a.target = target;
        a.generation = generation;
        if target.is_some_and(Ha::serves) {
            a.pending_serve = true;
        }
        if a.target.is_none() && a.held.is_none() && !a.pending_serve {
            self.sis[si].asg.remove(&su);
        }
    }

    /// A node confirmed what SU `su` holds for SI `si`.
    pub fn confirm(&mut self, si: SiIx, su: SuIx, generation: u32, ha: Option<Ha>) -> bool {
        let Some(a) = self.sis.get_mut(si).and_then(|s| s.asg.get_mut(&su)) else {
            return false;
        };
        if a.generation != generation {
            return false;
        }
        a.held = ha;
        // The node carried out the latest target: nothing earlier is still on its way.
        a.pending_serve = false;
        if a.target.is_none() && a.held.is_none() {
            self.sis[si].asg.remove(&su);
        }
        true
    }

    /// Every assignment of SU `su` is gone (its node cleaned its components up, or left).
    pub fn drop_su(&mut self, su: SuIx) {
        for si in &mut self.sis {
            si.asg.remove(&su);
        }
    }

    /// Whether SU `su` may take assignments.
    pub fn eligible(&self, flat: &Flat, rules: &Rules, su: SuIx) -> bool {
        let s = &self.sus[su];
        let node = flat.sus[su].nodeid;
        s.presence == Presence::Instantiated
            && s.enabled
            && s.admin == Admin::Unlocked
            && self.members.contains(&node)
            && self.node_may_serve(flat, rules, node)
    }

    /// SU `su`'s readiness state, derived as the specification derives it from the SU's
    /// presence, operational and administrative states and its node's: in service when it is
    /// instantiated (or restarting), enabled, unlocked, and its node is a member that may
    /// serve (the two-node rule); stopping when all that holds but it is shutting down; out
    /// of service otherwise. In service is what [`Cluster::eligible`] asks of an SU that
    /// takes new assignments.
    pub fn su_readiness(&self, flat: &Flat, rules: &Rules, su: SuIx) -> Readiness {
        let s = &self.sus[su];
        let node = flat.sus[su].nodeid;
        let up = matches!(s.presence, Presence::Instantiated | Presence::Restarting)
            && s.enabled
            && self.members.contains(&node)
            && self.node_may_serve(flat, rules, node);
        match s.admin {
            Admin::Unlocked if up => Readiness::InService,
            Admin::ShuttingDown if up => Readiness::Stopping,
            _ => Readiness::OutOfService,
        }
    }

    /// The two-node rule: in a two-node cluster split in two, only the node with the lower
    /// node id serves.
    pub fn node_may_serve(&self, flat: &Flat, rules: &Rules, node: u32) -> bool {
        if !rules.two_node || self.members.len() != 1 {
            return true;
        }
        let lowest = flat
            .model
            .nodes
            .iter()
            .map(|n| n.nodeid)
            .min()
            .unwrap_or(node);
        node == lowest
    }

    /// How many SIs SU `su` serves (`ha` active-like) or stands by for.
    fn load(&self, su: SuIx, active: bool) -> u32 {
        self.sis
            .iter()
            .filter(|si| {
                si.asg.get(&su).is_some_and(|a| {
                    if active {
                        a.serving()
                    } else {
                        a.target == Some(Ha::Standby) || a.held == Some(Ha::Standby)
                    }
                })
            })
            .count() as u32
    }

    /// Applies the assignment rules until nothing changes; the same at every member.
    pub fn plan(&mut self, flat: &Flat, rules: &Rules) {
        for _ in 0..8 {
            let before = self.next_generation;
            self.plan_once(flat, rules);
            if self.next_generation == before {
                break;
            }
        }
    }

    fn plan_once(&mut self, flat: &Flat, rules: &Rules) {
        let quorate = self.quorate || rules.ignore_quorum;
        // 1. Assignments that must go: the SU cannot serve, the SI is locked, or no quorum.
        for si in 0..self.sis.len() {
            let locked = self.sis[si].locked;
            let entries: Vec<(SuIx, Asg)> =
                self.sis[si].asg.iter().map(|(s, a)| (*s, *a)).collect();
            for (su, a) in entries {
                let node_ok = self.members.contains(&flat.sus[su].nodeid);
                if !node_ok {
                    continue; // dropped at the sync
                }
                let keep = quorate
                    && !locked
                    && self.eligible(flat, rules, su)
                    && self.sus[su].admin == Admin::Unlocked;
                let may_serve = self.node_may_serve(flat, rules, flat.sus[su].nodeid);
                if !quorate || !may_serve {
                    // Without quorum, or the two-node rule: actives go at once.
                    if a.serving() && a.target.is_some() {
                        self.set_target(si, su, None);
                    }
                    continue;
                }
                if keep {
                    continue;
                }
                // Graceful: an active is quiesced first, then removed.
                match (a.target, a.held) {
                    (Some(Ha::Active | Ha::Quiescing), _) => {
                        self.set_target(si, su, Some(Ha::Quiesced));
                    }
                    (Some(Ha::Quiesced), Some(Ha::Quiesced)) | (Some(Ha::Standby), _) => {
                        self.set_target(si, su, None);
                    }
                    _ => {}
                }
            }
        }
        // Shutting-down SUs with nothing left are locked.
        for su in 0..self.sus.len() {
            if self.sus[su].admin == Admin::ShuttingDown
                && self.sis.iter().all(|si| !si.asg.contains_key(&su))
            {
                self.sus[su].admin = Admin::Locked;
            }
        }
        if !quorate {
            return;
        }
        for g in 0..flat.sgs.len() {
            self.plan_sg(flat, rules, g);
        }
    }

    fn plan_sg(&mut self, flat: &Flat, rules: &Rules, g: usize) {
        let sg = &flat.sgs[g];
        let eligible: Vec<SuIx> = sg
            .sus
            .iter()
            .copied()
            .filter(|&su| self.eligible(flat, rules, su))
            .collect();
        if sg.redundancy == Redundancy::TwoN {
            self.leave_together(flat, g, &eligible);
        }
        for &si in &sg.sis {
            if self.sis[si].locked {
                continue;
            }
            self.resolve_quiesced(si, &eligible);
            self.plan_active(flat, rules, g, si, &eligible);
            self.plan_standby(flat, g, si, &eligible);
        }
    }

    /// Under 2N one SU serves every SI: an SU quiesced for one SI (a switchover) is quiesced
    /// for all of them, when another SU can take over.
    fn leave_together(&mut self, flat: &Flat, g: usize, eligible: &[SuIx]) {
        let sg = &flat.sgs[g];
        let leaving = |c: &Cluster, s: SuIx| {
            sg.sis.iter().any(|&o| {
                c.sis[o]
                    .asg
                    .get(&s)
                    .is_some_and(|a| a.target == Some(Ha::Quiesced))
            })
        };
        for &su in &sg.sus {
            if !leaving(self, su) || !eligible.iter().any(|&o| o != su && !leaving(self, o)) {
                continue;
            }
            for &si in &sg.sis {
                if self.sis[si]
                    .asg
                    .get(&su)
                    .is_some_and(|a| a.target.is_some_and(Ha::serves))
                {
                    self.set_target(si, su, Some(Ha::Quiesced));
                }
            }
        }
    }

    /// A confirmed quiesced assignment on an eligible SU whose SI has another serving
    /// assignment becomes the standby (a switchover's old active), or goes.
    fn resolve_quiesced(&mut self, si: SiIx, eligible: &[SuIx]) {
        let entries: Vec<(SuIx, Asg)> = self.sis[si].asg.iter().map(|(s, a)| (*s, *a)).collect();
        for (su, a) in &entries {
            if a.target != Some(Ha::Quiesced) || a.held != Some(Ha::Quiesced) {
                continue;
            }
            let other_serves = entries.iter().any(|(o, b)| {
                o != su && b.held == Some(Ha::Active) && b.target == Some(Ha::Active)
            });
            if other_serves {
                let standbys = entries
                    .iter()
                    .filter(|(o, b)| o != su && b.target == Some(Ha::Standby))
                    .count();
                if eligible.contains(su) && standbys == 0 {
                    self.set_target(si, *su, Some(Ha::Standby));
                } else {
                    self.set_target(si, *su, None);
                }
            }
        }
    }

    fn plan_active(&mut self, flat: &Flat, rules: &Rules, g: usize, si: SiIx, eligible: &[SuIx]) {
        let max = flat.sis[si].max_active as usize;
        let serving: Vec<SuIx> = self.sis[si]
            .asg
            .iter()
            .filter(|(_, a)| {
                if rules.promote_unconfirmed {
                    a.target.is_some_and(Ha::serves)
                } else {
                    a.serving()
                }
            })
            .map(|(s, _)| *s)
            .collect();
        if serving.len() > max {
            // A merge brought back more actives than allowed (two halves that both served,
            // or a node's claim that a callback it sent may have been taken). Keeping one
            // would have its node tell it to serve while the others still do: every one is
            // quiesced, and once none serves the usual rules pick again.
            for su in serving {
                if self.sis[si].asg[&su].target.is_some_and(Ha::serves) {
                    self.set_target(si, su, Some(Ha::Quiesced));
                }
            }
            return;
        }
        if !self.sis[si].fence.is_empty() {
            return;
        }
        let want = max.min(eligible.len());
        let mut have = serving.len();
        while have < want {
            let Some(su) = self.pick_active(flat, g, si, eligible) else {
                return;
            };
            self.set_target(si, su, Some(Ha::Active));
            have += 1;
        }
    }

    /// The SU to take SI `si` active, by the SG's model.
    fn pick_active(&self, flat: &Flat, g: usize, si: SiIx, eligible: &[SuIx]) -> Option<SuIx> {
        let sg = &flat.sgs[g];
        let asg = &self.sis[si].asg;
        let free: Vec<SuIx> = eligible
            .iter()
            .copied()
            .filter(|s| !asg.get(s).is_some_and(Asg::serving))
            .collect();
        let standby = free
            .iter()
            .copied()
            .find(|s| asg.get(s).is_some_and(|a| a.held == Some(Ha::Standby)));
        let sg_active = |s: SuIx| {
            sg.sis
                .iter()
                .any(|&o| self.sis[o].asg.get(&s).is_some_and(Asg::serving))
        };
        // An SU that only keeps a quiesced assignment is free to take another role.
        let sg_any = |s: SuIx| {
            sg.sis.iter().any(|&o| {
                self.sis[o]
                    .asg
                    .get(&s)
                    .is_some_and(|a| a.target.is_some_and(|t| t != Ha::Quiesced))
            })
        };
        match sg.redundancy {
            Redundancy::TwoN => {
                // One SU serves every SI of the SG. An SU being quiesced (a switchover, a
                // lock) is leaving: the SG waits until it stopped, then the standby SU takes
                // every SI.
                let leaving = |s: SuIx| {
                    sg.sis.iter().any(|&o| {
                        self.sis[o]
                            .asg
                            .get(&s)
                            .is_some_and(|a| a.target == Some(Ha::Quiesced))
                    })
                };
                // A leaving SU with nowhere to go stays (the switchover cannot complete).
                let stays =
                    |s: SuIx| !leaving(s) || !eligible.iter().any(|&o| o != s && !leaving(o));
                if let Some(a) = sg.sus.iter().copied().find(|&s| sg_active(s) && stays(s)) {
                    return free.contains(&a).then_some(a);
                }
                if sg.sus.iter().any(|&s| sg_active(s)) {
                    return None;
                }
                standby
                    .or_else(|| {
                        free.iter().copied().find(|&s| {
                            sg.sis.iter().any(|&o| {
                                self.sis[o]
                                    .asg
                                    .get(&s)
                                    .is_some_and(|a| a.held == Some(Ha::Standby))
                            })
                        })
                    })
                    .or_else(|| free.iter().copied().find(|&s| !leaving(s)))
                    .or_else(|| free.first().copied())
            }
            Redundancy::NPlusM {
                active_sus,
                max_active_sis_per_su,
                ..
            } => {
                let cap = max_active_sis_per_su.unwrap_or(u32::MAX);
                if let Some(s) = standby.filter(|&s| self.load(s, true) < cap) {
                    return Some(s);
                }
                let actives = sg.sus.iter().filter(|&&s| sg_active(s)).count() as u32;
                free.iter()
                    .copied()
                    .filter(|&s| self.load(s, true) < cap)
                    .find(|&s| sg_active(s))
                    .or_else(|| {
                        (actives < active_sus)
                            .then(|| free.iter().copied().find(|&s| !sg_any(s)))
                            .flatten()
                    })
                    .or_else(|| {
                        // Nothing else can take it: a standby SU with room serves rather than
                        // leave the SI unserved (availability before the pure N+M split).
                        free.iter().copied().find(|&s| self.load(s, true) < cap)
                    })
            }
            Redundancy::NWayActive {
                max_active_sis_per_su,
                ..
            } => {
                let cap = max_active_sis_per_su.unwrap_or(u32::MAX);
                free.iter().copied().find(|&s| self.load(s, true) < cap)
            }
            Redundancy::NoRedundancy => free.iter().copied().find(|&s| {
                // One SI per SU: free when it holds no other SI (a quiesced one excepted).
                !self.sis.iter().enumerate().any(|(o, x)| {
                    o != si
                        && x.asg
                            .get(&s)
                            .is_some_and(|a| a.target.is_some_and(|t| t != Ha::Quiesced))
                })
            }),
        }
    }

    fn plan_standby(&mut self, flat: &Flat, g: usize, si: SiIx, eligible: &[SuIx]) {
        let max = flat.sis[si].max_standby as usize;
        if max == 0 {
            return;
        }
        let asg = &self.sis[si].asg;
        let standbys = asg
            .values()
            .filter(|a| a.target == Some(Ha::Standby) || (a.target == Some(Ha::Quiesced)))
            .count();
        let has_active = asg.values().any(|a| a.target == Some(Ha::Active));
        let mut pure: Vec<SuIx> = asg
            .iter()
            .filter(|(_, a)| a.target == Some(Ha::Standby))
            .map(|(s, _)| *s)
            .collect();
        if pure.len() > max {
            // A merge brought back more standbys than the model wants: the worst-ranked go.
            let order = &flat.sgs[g].sus;
            pure.sort_by_key(|s| order.iter().position(|o| o == s));
            for su in pure.into_iter().skip(max) {
                self.set_target(si, su, None);
            }
            return;
        }
        if standbys >= max || !has_active {
            return;
        }
        let sg = &flat.sgs[g];
        let free: Vec<SuIx> = eligible
            .iter()
            .copied()
            .filter(|s| !asg.contains_key(s))
            .collect();
        let sg_active = |s: SuIx| {
            sg.sis
                .iter()
                .any(|&o| self.sis[o].asg.get(&s).is_some_and(Asg::serving))
        };
        let sg_standby = |s: SuIx| {
            sg.sis.iter().any(|&o| {
                self.sis[o]
                    .asg
                    .get(&s)
                    .is_some_and(|a| a.target == Some(Ha::Standby))
            })
        };
        let pick = match sg.redundancy {
            Redundancy::TwoN => free
                .iter()
                .copied()
                .filter(|&s| !sg_active(s))
                .find(|&s| sg_standby(s))
                .or_else(|| {
                    // A second standby SU only when no SU of the SG stands by yet.
                    (!sg.sus.iter().any(|&s| sg_standby(s)))
                        .then(|| free.iter().copied().find(|&s| !sg_active(s)))
                        .flatten()
                }),
            Redundancy::NPlusM {
                standby_sus,
                max_standby_sis_per_su,
                ..
            } => {
                let cap = max_standby_sis_per_su.unwrap_or(u32::MAX);
                // Spares: SUs that stand by and serve nothing. An SU that stands by for one SI
                // but had to take another active is not one, so a free SU still becomes the
                // standby of an SI that has none.
                let standby_count = sg
                    .sus
                    .iter()
                    .filter(|&&s| sg_standby(s) && !sg_active(s))
                    .count() as u32;
                free.iter()
                    .copied()
                    .filter(|&s| !sg_active(s) && self.load(s, false) < cap)
                    .find(|&s| sg_standby(s))
                    .or_else(|| {
                        (standby_count < standby_sus)
                            .then(|| {
                                free.iter().copied().find(|&s| {
                                    !sg.sis.iter().any(|&o| self.sis[o].asg.contains_key(&s))
                                })
                            })
                            .flatten()
                    })
            }
            _ => None,
        };
        if let Some(su) = pick {
            self.set_target(si, su, Some(Ha::Standby));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::amf::model::{
        Application, CompType, Component, Csi, Node, ServiceGroup, ServiceInstance, ServiceUnit,
    };

    /// A 2N SG with one SU on each of nodes 1 and 2 and one SI.
    fn two_n() -> Flat {
        let mut sg = ServiceGroup::new("g", Redundancy::TwoN);
        for n in 1..=2 {
            sg.sus.push(ServiceUnit {
                name: format!("u{n}"),
                node: format!("n{n}"),
                rank: n,
                components: vec![Component {
                    name: "c".into(),
                    comp_type: "c".into(),
                }],
            });
        }
        Flat::new(AmfModel {
            nodes: vec![Node::new("n1", 1), Node::new("n2", 2)],
            comp_types: vec![CompType::new("c", "run-c")],
            apps: vec![Application {
                name: "a".into(),
                sgs: vec![sg],
                sis: vec![ServiceInstance {
                    name: "s".into(),
                    sg: "g".into(),
                    rank: 0,
                    active_assignments: None,
                    csis: vec![Csi {
                        name: "x".into(),
                        target: CsiTarget::CompType("c".into()),
                        attributes: Vec::new(),
                    }],
                }],
            }],
        })
    }

    fn running(flat: &Flat, members: &[u32]) -> Cluster {
        let mut c = Cluster::new(flat);
        c.members = members.iter().copied().collect();
        c.quorate = true;
        for s in &mut c.sus {
            s.presence = Presence::Instantiated;
        }
        c
    }

    fn confirm_all(c: &mut Cluster) {
        for si in 0..c.sis.len() {
            let entries: Vec<(SuIx, Asg)> = c.sis[si].asg.iter().map(|(s, a)| (*s, *a)).collect();
            for (su, a) in entries {
                c.confirm(si, su, a.generation, a.target);
            }
        }
    }

    fn target(c: &Cluster, su: SuIx) -> Option<Ha> {
        c.sis[0].asg.get(&su).and_then(|a| a.target)
    }

    #[test]
    fn two_n_gives_the_best_ranked_su_the_active_and_the_other_the_standby() {
        let flat = two_n();
        let mut c = running(&flat, &[1, 2]);
        c.plan(&flat, &Rules::default());
        assert_eq!(target(&c, 0), Some(Ha::Active));
        // The standby waits until there is an active to stand by for (it is targeted).
        confirm_all(&mut c);
        c.plan(&flat, &Rules::default());
        assert_eq!(target(&c, 1), Some(Ha::Standby));
    }

    #[test]
    fn a_new_active_waits_until_the_old_one_confirmed_it_stopped() {
        let flat = two_n();
        let mut c = running(&flat, &[1, 2]);
        c.plan(&flat, &Rules::default());
        confirm_all(&mut c);
        c.plan(&flat, &Rules::default());
        confirm_all(&mut c);
        // The active SU is locked: it is quiesced, and the standby is not promoted yet.
        c.sus[0].admin = Admin::Locked;
        c.plan(&flat, &Rules::default());
        assert_eq!(target(&c, 0), Some(Ha::Quiesced));
        assert_eq!(target(&c, 1), Some(Ha::Standby));
        // Confirmed quiesced: now the standby is promoted, and the locked SU is emptied.
        confirm_all(&mut c);
        c.plan(&flat, &Rules::default());
        assert_eq!(target(&c, 1), Some(Ha::Active));
        assert_eq!(target(&c, 0), None);
    }

    #[test]
    fn an_unconfirmed_active_that_is_superseded_still_counts_as_serving() {
        let flat = two_n();
        let mut c = running(&flat, &[1, 2]);
        c.plan(&flat, &Rules::default());
        // Told to go active, then locked before it confirmed anything.
        c.sus[0].admin = Admin::Locked;
        c.plan(&flat, &Rules::default());
        assert!(c.sis[0].asg[&0].serving());
        assert_ne!(target(&c, 1), Some(Ha::Active));
    }

    #[test]
    fn without_quorum_actives_go_and_none_is_given() {
        let flat = two_n();
        let mut c = running(&flat, &[1, 2]);
        c.plan(&flat, &Rules::default());
        confirm_all(&mut c);
        c.quorate = false;
        c.plan(&flat, &Rules::default());
        assert_eq!(target(&c, 0), None);
        let mut fresh = running(&flat, &[1, 2]);
        fresh.quorate = false;
        fresh.plan(&flat, &Rules::default());
        assert!(fresh.sis[0].asg.is_empty());
    }

    #[test]
    fn alone_in_a_two_node_cluster_only_the_lower_node_serves() {
        let flat = two_n();
        let rules = Rules {
            two_node: true,
            ..Rules::default()
        };
        let mut high = running(&flat, &[2]);
        high.plan(&flat, &rules);
        assert!(high.sis[0].asg.is_empty(), "{:?}", high.sis[0].asg);
        let mut low = running(&flat, &[1]);
        low.plan(&flat, &rules);
        assert_eq!(target(&low, 0), Some(Ha::Active));
    }

    /// A 2+1 N+M SG over nodes 1 to 3 (SU i on node i + 1), two SIs, one active SI per SU.
    fn n_plus_m() -> Flat {
        let mut sg = ServiceGroup::new(
            "g",
            Redundancy::NPlusM {
                active_sus: 2,
                standby_sus: 1,
                max_active_sis_per_su: Some(1),
                max_standby_sis_per_su: None,
            },
        );
        for n in 1..=3 {
            sg.sus.push(ServiceUnit {
                name: format!("u{n}"),
                node: format!("n{n}"),
                rank: 0,
                components: vec![Component {
                    name: "c".into(),
                    comp_type: "c".into(),
                }],
            });
        }
        let si = |name: &str, rank| ServiceInstance {
            name: name.into(),
            sg: "g".into(),
            rank,
            active_assignments: None,
            csis: vec![Csi {
                name: "x".into(),
                target: CsiTarget::CompType("c".into()),
                attributes: Vec::new(),
            }],
        };
        Flat::new(AmfModel {
            nodes: (1..=3).map(|n| Node::new(&format!("n{n}"), n)).collect(),
            comp_types: vec![CompType::new("c", "run-c")],
            apps: vec![Application {
                name: "a".into(),
                sgs: vec![sg],
                sis: vec![si("s1", 0), si("s2", 1)],
            }],
        })
    }

    /// Plans and confirms every target until nothing changes (every node answers at once).
    fn settle(flat: &Flat, c: &mut Cluster) {
        for _ in 0..10 {
            c.plan(flat, &Rules::default());
            confirm_all(c);
        }
    }

    /// The SUs come up one by one (the last first): the first to come takes s1; the second
    /// stands by for s1 and, as nothing else can, takes s2 active too. When the third
    /// comes, s2 must get its standby: it had none, though an SU was free.
    #[test]
    fn n_plus_m_gives_every_si_a_standby_when_an_su_is_free() {
        let flat = n_plus_m();
        let mut c = running(&flat, &[1, 2, 3]);
        for s in &mut c.sus {
            s.presence = Presence::Uninstantiated;
        }
        for su in [2, 0, 1] {
            c.sus[su].presence = Presence::Instantiated;
            settle(&flat, &mut c);
        }
        for si in 0..2 {
            let count = |ha| {
                c.sis[si]
                    .asg
                    .values()
                    .filter(|a| a.held == Some(ha) && a.target == Some(ha))
                    .count()
            };
            assert_eq!(count(Ha::Active), 1, "SI {si}: {:?}", c.sis[si].asg);
            assert_eq!(count(Ha::Standby), 1, "SI {si}: {:?}", c.sis[si].asg);
        }
    }

    #[test]
    fn readiness_is_derived_from_the_other_states_and_the_node() {
        let flat = two_n();
        let rules = Rules::default();
        let mut c = running(&flat, &[1, 2]);
        let r = |c: &Cluster, su| c.su_readiness(&flat, &rules, su);
        assert_eq!(r(&c, 0), Readiness::InService);
        assert!(c.eligible(&flat, &rules, 0));
        c.sus[0].admin = Admin::ShuttingDown;
        assert_eq!(r(&c, 0), Readiness::Stopping);
        for admin in [Admin::Locked, Admin::LockedInstantiation] {
            c.sus[0].admin = admin;
            assert_eq!(r(&c, 0), Readiness::OutOfService, "{admin:?}");
        }
        c.sus[0].admin = Admin::Unlocked;
        c.sus[0].enabled = false;
        assert_eq!(r(&c, 0), Readiness::OutOfService, "disabled");
        c.sus[0].enabled = true;
        for p in [
            Presence::Uninstantiated,
            Presence::Instantiating,
            Presence::Terminating,
            Presence::InstantiationFailed,
            Presence::TerminationFailed,
        ] {
            c.sus[0].presence = p;
            assert_eq!(r(&c, 0), Readiness::OutOfService, "{p:?}");
            assert!(!c.eligible(&flat, &rules, 0));
        }
        c.sus[0].presence = Presence::Instantiated;
        // Its node left the membership: out of service, and the shutting-down SU too.
        c.members.remove(&1);
        assert_eq!(r(&c, 0), Readiness::OutOfService, "node gone");
        c.sus[0].admin = Admin::ShuttingDown;
        assert_eq!(r(&c, 0), Readiness::OutOfService, "node gone");
        // Alone in a two-node cluster, the higher node's SU may not serve.
        let two = Rules {
            two_node: true,
            ..Rules::default()
        };
        let alone = running(&flat, &[2]);
        assert_eq!(alone.su_readiness(&flat, &two, 1), Readiness::OutOfService);
        assert_eq!(alone.su_readiness(&flat, &rules, 1), Readiness::InService);
        // A component: its SU's readiness unless it is itself down or disabled.
        let s = Readiness::Stopping;
        assert_eq!(comp_readiness(s, Presence::Instantiated, true), s);
        assert_eq!(comp_readiness(s, Presence::Restarting, true), s);
        assert_eq!(
            comp_readiness(s, Presence::Instantiated, false),
            Readiness::OutOfService
        );
        assert_eq!(
            comp_readiness(Readiness::InService, Presence::Terminating, true),
            Readiness::OutOfService
        );
    }

    #[test]
    fn a_fenced_si_gets_no_new_active() {
        let flat = two_n();
        let mut c = running(&flat, &[1, 2]);
        c.sis[0].fence.insert(3);
        c.plan(&flat, &Rules::default());
        assert!(c.sis[0].asg.values().all(|a| !a.serving()));
        c.sis[0].fence.clear();
        c.plan(&flat, &Rules::default());
        assert_eq!(target(&c, 0), Some(Ha::Active));
    }
}
