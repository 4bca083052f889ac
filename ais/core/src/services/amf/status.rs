//! The tree `aisctl amf status` shows ([`ais_proto::amf::Tree`]), built from the replicated
//! state and what this node knows of its own components.
//!
//! Every SU, SI and assignment comes from the replicated [`Cluster`], the same at every
//! member. A component's presence and operational state are known exactly only on its own
//! node (the node director runs it); for another node's components the tree gives their SU's
//! replicated presence and operational state. In a settled cluster both agree, so every
//! member answers the same tree. The CSIs of a component are its SU's assignments of the
//! CSIs that go to it ([`Flat::comp_of`]).

use ais_proto::amf::Presence;
use ais_proto::amf::status::{
    CompStatus, CsiAssignment, SgStatus, SiStatus, SuAssignment, SuStatus, Tree,
};

use super::state::{Cluster, Flat, Rules, SuIx, comp_readiness};

/// The tree as node `node` answers it; `local(su, comp)` is what this node knows of
/// component `comp` of SU `su` (presence, enabled), `None` for another node's.
pub fn tree(
    flat: &Flat,
    cluster: &Cluster,
    rules: &Rules,
    node: u32,
    local: impl Fn(SuIx, usize) -> Option<(Presence, bool)>,
) -> Tree {
    let sgs = flat
        .sgs
        .iter()
        .map(|sg| {
            let app = flat
                .model
                .apps
                .iter()
                .find(|a| a.sgs.iter().any(|g| g.name == sg.name))
                .map_or_else(String::new, |a| a.name.clone());
            let sus = sg
                .sus
                .iter()
                .map(|&su| {
                    let s = &cluster.sus[su];
                    let readiness = cluster.su_readiness(flat, rules, su);
                    let comps = flat.sus[su]
                        .comps
                        .iter()
                        .enumerate()
                        .map(|(c, comp)| {
                            let (presence, enabled) =
                                local(su, c).unwrap_or((s.presence, s.enabled));
                            let mut csis = Vec::new();
                            for &si in &sg.sis {
                                let Some(a) = cluster.sis[si].asg.get(&su) else {
                                    continue;
                                };
                                for (k, (csi, _, _)) in flat.sis[si].csis.iter().enumerate() {
                                    if flat.comp_of(su, si, k) == Some(c) {
                                        csis.push(CsiAssignment {
                                            si: flat.sis[si].name.clone(),
                                            csi: csi.clone(),
                                            held: a.held,
                                            target: a.target,
                                        });
                                    }
                                }
                            }
                            CompStatus {
                                name: comp.name.clone(),
                                presence,
                                enabled,
                                readiness: comp_readiness(readiness, presence, enabled),
                                csis,
                            }
                        })
                        .collect();
                    SuStatus {
                        name: flat.sus[su].name.clone(),
                        node: flat.sus[su].nodeid,
                        admin: s.admin.state(),
                        enabled: s.enabled,
                        presence: s.presence,
                        readiness,
                        comps,
                    }
                })
                .collect();
            let sis = sg
                .sis
                .iter()
                .map(|&si| {
                    let s = &cluster.sis[si];
                    SiStatus {
                        name: flat.sis[si].name.clone(),
                        locked: s.locked,
                        fenced: !s.fence.is_empty(),
                        assignments: s
                            .asg
                            .iter()
                            .map(|(&su, a)| SuAssignment {
                                su: flat.sus[su].name.clone(),
                                held: a.held,
                                target: a.target,
                            })
                            .collect(),
                    }
                })
                .collect();
            SgStatus {
                name: sg.name.clone(),
                app,
                redundancy: sg.redundancy.name().to_owned(),
                sus,
                sis,
            }
        })
        .collect();
    Tree {
        node,
        members: cluster.members.iter().copied().collect(),
        quorate: cluster.quorate,
        sgs,
    }
}
