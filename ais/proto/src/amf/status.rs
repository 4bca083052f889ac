//! The AMF's tree with every state, as one executive answers [`super::Request::Tree`]: the
//! cluster, each SG with its SUs (administrative, operational, readiness and presence
//! states), each SU's components (presence, operational and readiness states, and the CSIs
//! they hold with their HA state), and each SI with its assignments.
//!
//! [`Tree::lines`] is the text `aisctl amf status` prints (and what [`super::Request::Status`]
//! answers); `aisctl amf status --json` prints the same fields as JSON.

use crate::codec::{DecodeError, Reader, Writer};

use super::{Ha, Presence, get_opt_ha, get_str, put_opt_ha, put_str};

/// A readiness state (`SaAmfReadinessStateT`): whether an SU or component may take
/// assignments. Derived, never set: see `docs/amf.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Readiness {
    /// `SA_AMF_READINESS_OUT_OF_SERVICE` (1): takes no assignment.
    OutOfService,
    /// `SA_AMF_READINESS_IN_SERVICE` (2): may take assignments.
    InService,
    /// `SA_AMF_READINESS_STOPPING` (3): being shut down, keeps what it has, takes nothing new.
    Stopping,
}

impl Readiness {
    /// Every value.
    pub const ALL: [Readiness; 3] = [
        Readiness::OutOfService,
        Readiness::InService,
        Readiness::Stopping,
    ];

    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            Readiness::OutOfService => 1,
            Readiness::InService => 2,
            Readiness::Stopping => 3,
        }
    }

    /// The value with code `c`.
    pub fn from_code(c: u8) -> Option<Readiness> {
        Readiness::ALL.into_iter().find(|r| r.code() == c)
    }

    /// Its name in status output.
    pub fn name(self) -> &'static str {
        match self {
            Readiness::OutOfService => "out-of-service",
            Readiness::InService => "in-service",
            Readiness::Stopping => "stopping",
        }
    }
}

/// An SU's administrative state (`SaAmfAdminStateT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminState {
    /// `SA_AMF_ADMIN_UNLOCKED` (1).
    Unlocked,
    /// `SA_AMF_ADMIN_LOCKED` (2).
    Locked,
    /// `SA_AMF_ADMIN_LOCKED_INSTANTIATION` (3).
    LockedInstantiation,
    /// `SA_AMF_ADMIN_SHUTTING_DOWN` (4).
    ShuttingDown,
}

impl AdminState {
    /// Every value.
    pub const ALL: [AdminState; 4] = [
        AdminState::Unlocked,
        AdminState::Locked,
        AdminState::LockedInstantiation,
        AdminState::ShuttingDown,
    ];

    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            AdminState::Unlocked => 1,
            AdminState::Locked => 2,
            AdminState::LockedInstantiation => 3,
            AdminState::ShuttingDown => 4,
        }
    }

    /// The value with code `c`.
    pub fn from_code(c: u8) -> Option<AdminState> {
        AdminState::ALL.into_iter().find(|a| a.code() == c)
    }

    /// Its name in status output.
    pub fn name(self) -> &'static str {
        match self {
            AdminState::Unlocked => "unlocked",
            AdminState::Locked => "locked",
            AdminState::LockedInstantiation => "locked-instantiation",
            AdminState::ShuttingDown => "shutting-down",
        }
    }
}

/// The whole tree, as one executive sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The answering executive's node id.
    pub node: u32,
    /// The members of its configuration.
    pub members: Vec<u32>,
    /// Whether its configuration is quorate.
    pub quorate: bool,
    /// The SGs, in model order.
    pub sgs: Vec<SgStatus>,
}

/// An SG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgStatus {
    /// Its name.
    pub name: String,
    /// Its application's name.
    pub app: String,
    /// Its redundancy model's name (`2n`, `n+m`, `n-way-active`, `no-redundancy`).
    pub redundancy: String,
    /// Its SUs, by (rank, name).
    pub sus: Vec<SuStatus>,
    /// Its SIs, by (rank, name).
    pub sis: Vec<SiStatus>,
}

/// An SU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuStatus {
    /// Its name.
    pub name: String,
    /// Its node's id.
    pub node: u32,
    /// Administrative state.
    pub admin: AdminState,
    /// Operational state: enabled (true) or disabled.
    pub enabled: bool,
    /// Presence.
    pub presence: Presence,
    /// Readiness, derived from the others and its node.
    pub readiness: Readiness,
    /// Its components, by instantiation level then name.
    pub comps: Vec<CompStatus>,
}

/// A component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompStatus {
    /// Its name in the SU.
    pub name: String,
    /// Presence.
    pub presence: Presence,
    /// Operational state: enabled (true) or disabled.
    pub enabled: bool,
    /// Readiness, derived from the others and its SU's.
    pub readiness: Readiness,
    /// The CSIs assigned to it.
    pub csis: Vec<CsiAssignment>,
}

/// A CSI assigned to a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiAssignment {
    /// The SI's name.
    pub si: String,
    /// The CSI's name.
    pub csi: String,
    /// The HA state its node confirmed (`None`: none yet).
    pub held: Option<Ha>,
    /// The HA state the cluster wants (`None`: being removed).
    pub target: Option<Ha>,
}

/// An SI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiStatus {
    /// Its name.
    pub name: String,
    /// Administratively locked.
    pub locked: bool,
    /// Waiting for the fence delay before it gets a new active.
    pub fenced: bool,
    /// Its assignments, by SU in model order.
    pub assignments: Vec<SuAssignment>,
}

/// An SI's assignment to an SU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuAssignment {
    /// The SU's name.
    pub su: String,
    /// The HA state its node confirmed (`None`: none yet).
    pub held: Option<Ha>,
    /// The HA state the cluster wants (`None`: being removed).
    pub target: Option<Ha>,
}

/// `held` alone when it is the target, else `held -> target`.
fn change(held: Option<Ha>, target: Option<Ha>) -> String {
    let h = held.map_or("none", Ha::name);
    if held == target {
        h.to_owned()
    } else {
        format!("{h} -> {}", target.map_or("none", Ha::name))
    }
}

fn enabled(e: bool) -> &'static str {
    if e { "enabled" } else { "disabled" }
}

impl Tree {
    /// The text of `aisctl amf status`: one line per entity, indented by depth.
    ///
    /// ```text
    /// cluster: members [1, 2], quorate
    /// SG counter (2n), application counter
    ///   SU counter-1 on node 1: in-service, unlocked, enabled, instantiated
    ///     component counter: in-service, enabled, instantiated; CSI state of SI counter active
    ///   SU counter-2 on node 2: in-service, unlocked, enabled, instantiated
    ///     component counter: in-service, enabled, instantiated; CSI state of SI counter standby
    ///   SI counter: counter-1 active, counter-2 standby
    /// ```
    pub fn lines(&self) -> Vec<String> {
        let members: Vec<String> = self.members.iter().map(u32::to_string).collect();
        let mut out = vec![format!(
            "cluster: members [{}], {}",
            members.join(", "),
            if self.quorate {
                "quorate"
            } else {
                "not quorate"
            }
        )];
        for sg in &self.sgs {
            out.push(format!(
                "SG {} ({}), application {}",
                sg.name, sg.redundancy, sg.app
            ));
            for su in &sg.sus {
                out.push(format!(
                    "  SU {} on node {}: {}, {}, {}, {}",
                    su.name,
                    su.node,
                    su.readiness.name(),
                    su.admin.name(),
                    enabled(su.enabled),
                    su.presence.name()
                ));
                for c in &su.comps {
                    let csis: Vec<String> = c
                        .csis
                        .iter()
                        .map(|a| {
                            format!("CSI {} of SI {} {}", a.csi, a.si, change(a.held, a.target))
                        })
                        .collect();
                    out.push(format!(
                        "    component {}: {}, {}, {}{}",
                        c.name,
                        c.readiness.name(),
                        enabled(c.enabled),
                        c.presence.name(),
                        if csis.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", csis.join(", "))
                        }
                    ));
                }
            }
            for si in &sg.sis {
                let asg: Vec<String> = si
                    .assignments
                    .iter()
                    .map(|a| format!("{} {}", a.su, change(a.held, a.target)))
                    .collect();
                out.push(format!(
                    "  SI {}: {}{}{}",
                    si.name,
                    if si.locked { "locked, " } else { "" },
                    if asg.is_empty() {
                        "unassigned".to_owned()
                    } else {
                        asg.join(", ")
                    },
                    if si.fenced {
                        ", waiting for the fence delay"
                    } else {
                        ""
                    }
                ));
            }
        }
        out
    }

    pub(super) fn encode(&self, w: &mut Writer) {
        w.u32(self.node).count(self.members.len());
        for m in &self.members {
            w.u32(*m);
        }
        w.u8(u8::from(self.quorate)).count(self.sgs.len());
        for sg in &self.sgs {
            put_str(w, &sg.name);
            put_str(w, &sg.app);
            put_str(w, &sg.redundancy);
            w.count(sg.sus.len());
            for su in &sg.sus {
                put_str(w, &su.name);
                w.u32(su.node)
                    .u8(su.admin.code())
                    .u8(u8::from(su.enabled))
                    .u8(su.presence.code())
                    .u8(su.readiness.code())
                    .count(su.comps.len());
                for c in &su.comps {
                    put_str(w, &c.name);
                    w.u8(c.presence.code())
                        .u8(u8::from(c.enabled))
                        .u8(c.readiness.code())
                        .count(c.csis.len());
                    for a in &c.csis {
                        put_str(w, &a.si);
                        put_str(w, &a.csi);
                        put_opt_ha(w, a.held);
                        put_opt_ha(w, a.target);
                    }
                }
            }
            w.count(sg.sis.len());
            for si in &sg.sis {
                put_str(w, &si.name);
                w.u8(u8::from(si.locked))
                    .u8(u8::from(si.fenced))
                    .count(si.assignments.len());
                for a in &si.assignments {
                    put_str(w, &a.su);
                    put_opt_ha(w, a.held);
                    put_opt_ha(w, a.target);
                }
            }
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<Tree, DecodeError> {
        let node = r.u32("node")?;
        let n = r.count("members", 4)?;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            members.push(r.u32("member")?);
        }
        let quorate = r.bool("quorate")?;
        let n = r.count("SGs", 2 + 2 + 2 + 4 + 4)?;
        let mut sgs = Vec::with_capacity(n);
        for _ in 0..n {
            let name = get_str(r, "SG name")?;
            let app = get_str(r, "application name")?;
            let redundancy = get_str(r, "redundancy")?;
            let n = r.count("SUs", 2 + 4 + 4 + 4)?;
            let mut sus = Vec::with_capacity(n);
            for _ in 0..n {
                let name = get_str(r, "SU name")?;
                let node = r.u32("SU node")?;
                let admin = AdminState::from_code(r.u8("administrative state")?).ok_or(
                    DecodeError::Invalid {
                        field: "administrative state",
                        why: "unknown",
                    },
                )?;
                let enabled = r.bool("operational state")?;
                let presence = get_presence(r)?;
                let readiness = get_readiness(r)?;
                let n = r.count("components", 2 + 3 + 4)?;
                let mut comps = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = get_str(r, "component name")?;
                    let presence = get_presence(r)?;
                    let enabled = r.bool("operational state")?;
                    let readiness = get_readiness(r)?;
                    let n = r.count("CSIs", 2 + 2 + 2)?;
                    let mut csis = Vec::with_capacity(n);
                    for _ in 0..n {
                        csis.push(CsiAssignment {
                            si: get_str(r, "SI name")?,
                            csi: get_str(r, "CSI name")?,
                            held: get_opt_ha(r)?,
                            target: get_opt_ha(r)?,
                        });
                    }
                    comps.push(CompStatus {
                        name,
                        presence,
                        enabled,
                        readiness,
                        csis,
                    });
                }
                sus.push(SuStatus {
                    name,
                    node,
                    admin,
                    enabled,
                    presence,
                    readiness,
                    comps,
                });
            }
            let n = r.count("SIs", 2 + 2 + 4)?;
            let mut sis = Vec::with_capacity(n);
            for _ in 0..n {
                let name = get_str(r, "SI name")?;
                let locked = r.bool("locked")?;
                let fenced = r.bool("fenced")?;
                let n = r.count("assignments", 2 + 2)?;
                let mut assignments = Vec::with_capacity(n);
                for _ in 0..n {
                    assignments.push(SuAssignment {
                        su: get_str(r, "SU name")?,
                        held: get_opt_ha(r)?,
                        target: get_opt_ha(r)?,
                    });
                }
                sis.push(SiStatus {
                    name,
                    locked,
                    fenced,
                    assignments,
                });
            }
            sgs.push(SgStatus {
                name,
                app,
                redundancy,
                sus,
                sis,
            });
        }
        Ok(Tree {
            node,
            members,
            quorate,
            sgs,
        })
    }
}

fn get_presence(r: &mut Reader) -> Result<Presence, DecodeError> {
    Presence::from_code(r.u8("presence state")?).ok_or(DecodeError::Invalid {
        field: "presence state",
        why: "unknown",
    })
}

fn get_readiness(r: &mut Reader) -> Result<Readiness, DecodeError> {
    Readiness::from_code(r.u8("readiness state")?).ok_or(DecodeError::Invalid {
        field: "readiness state",
        why: "unknown",
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A two-SU 2N tree: one SU active, the other being made standby.
    pub(crate) fn sample() -> Tree {
        let comp = |ha: Option<Ha>, target: Option<Ha>| CompStatus {
            name: "counter".into(),
            presence: Presence::Instantiated,
            enabled: true,
            readiness: Readiness::InService,
            csis: vec![CsiAssignment {
                si: "counter".into(),
                csi: "state".into(),
                held: ha,
                target,
            }],
        };
        Tree {
            node: 2,
            members: vec![1, 2],
            quorate: true,
            sgs: vec![SgStatus {
                name: "counter".into(),
                app: "shop".into(),
                redundancy: "2n".into(),
                sus: vec![
                    SuStatus {
                        name: "counter-1".into(),
                        node: 1,
                        admin: AdminState::Unlocked,
                        enabled: true,
                        presence: Presence::Instantiated,
                        readiness: Readiness::InService,
                        comps: vec![comp(Some(Ha::Active), Some(Ha::Active))],
                    },
                    SuStatus {
                        name: "counter-2".into(),
                        node: 2,
                        admin: AdminState::ShuttingDown,
                        enabled: false,
                        presence: Presence::Restarting,
                        readiness: Readiness::Stopping,
                        comps: vec![comp(None, Some(Ha::Standby))],
                    },
                ],
                sis: vec![SiStatus {
                    name: "counter".into(),
                    locked: false,
                    fenced: true,
                    assignments: vec![
                        SuAssignment {
                            su: "counter-1".into(),
                            held: Some(Ha::Active),
                            target: Some(Ha::Active),
                        },
                        SuAssignment {
                            su: "counter-2".into(),
                            held: None,
                            target: Some(Ha::Standby),
                        },
                    ],
                }],
            }],
        }
    }

    #[test]
    fn the_tree_renders_every_state() {
        let lines = sample().lines();
        assert_eq!(
            lines,
            [
                "cluster: members [1, 2], quorate",
                "SG counter (2n), application shop",
                "  SU counter-1 on node 1: in-service, unlocked, enabled, instantiated",
                "    component counter: in-service, enabled, instantiated; CSI state of SI counter active",
                "  SU counter-2 on node 2: stopping, shutting-down, disabled, restarting",
                "    component counter: in-service, enabled, instantiated; CSI state of SI counter none -> standby",
                "  SI counter: counter-1 active, counter-2 none -> standby, waiting for the fence delay",
            ]
        );
    }

    /// An unknown state code is refused naming the field; a valid one decodes.
    #[test]
    fn an_unknown_state_is_refused() {
        let tree = Tree {
            node: 1,
            members: Vec::new(),
            quorate: true,
            sgs: vec![SgStatus {
                name: "g".into(),
                app: "a".into(),
                redundancy: "2n".into(),
                sus: vec![SuStatus {
                    name: "u".into(),
                    node: 1,
                    admin: AdminState::Locked,
                    enabled: true,
                    presence: Presence::Uninstantiated,
                    readiness: Readiness::OutOfService,
                    comps: Vec::new(),
                }],
                sis: Vec::new(),
            }],
        };
        let mut w = Writer::with_capacity(64);
        tree.encode(&mut w);
        let good = w.finish();
        let decode = |b: &[u8]| Tree::decode(&mut Reader::new(bytes::Bytes::from(b.to_vec())));
        assert_eq!(decode(&good).expect("decodes"), tree);
        // node 4, members 4, quorate 1, SGs 4, "g" 3, "a" 3, "2n" 4, SUs 4, "u" 3, node 4:
        // then the administrative, operational, presence and readiness bytes.
        for (at, field) in [
            (34, "administrative state"),
            (36, "presence state"),
            (37, "readiness state"),
        ] {
            let mut bad = good.clone();
            bad[at] = 9;
            match decode(&bad) {
                Err(DecodeError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("byte {at} = 9 decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn state_codes_are_the_specification_s() {
        assert_eq!(
            Readiness::ALL.map(Readiness::code),
            [1, 2, 3],
            "SaAmfReadinessStateT"
        );
        assert_eq!(
            AdminState::ALL.map(AdminState::code),
            [1, 2, 3, 4],
            "SaAmfAdminStateT"
        );
        for r in Readiness::ALL {
            assert_eq!(Readiness::from_code(r.code()), Some(r));
        }
        for a in AdminState::ALL {
            assert_eq!(AdminState::from_code(a.code()), Some(a));
        }
        assert_eq!(Readiness::from_code(0), None);
        assert_eq!(AdminState::from_code(5), None);
    }
}
