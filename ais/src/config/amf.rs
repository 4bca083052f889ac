//! The AMF model file: TOML read into [`ais_core::services::amf::AmfModel`] and validated, every
//! problem located as `file:line:column: key: message`.
//!
//! The executive's configuration names the file (`[amf] model = "/etc/openais/amf.toml"`).
//! Its tables, by entity, with the model's field names (`docs/amf.md` lists every key, its
//! default and its unit):
//!
//! ```toml
//! [node]                                  # the nodes: name = { nodeid, failfast, ... }
//! blade1 = { nodeid = 1 }
//! [comp_type.counter]                     # what a component runs
//! instantiate = "/usr/libexec/counter"
//! [comp_type.counter.health_check.ping]   # a health check, by key
//! [sg.counter]                            # an SG; app = its application (default: its name)
//! redundancy = "2n"
//! components = ["counter"]                # the component types of each of its SUs
//! su.counter-1 = { node = "blade1" }      # its SUs
//! [si.counter]                            # an SI, its SG and its CSIs
//! sg = "counter"
//! csi.state = { comp_type = "counter" }
//! ```
//!
//! A component is named after its type. Reading has three steps: the TOML syntax and types
//! (the first mistake, like the executive's configuration), then this file's own rules (a
//! redundancy parameter that does not belong to the SG's model, a CSI with both or neither
//! target), then [`ais_core::services::amf::validate`]; the last two report every problem.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use ais_core::services::amf::model::{
    self as m, AmfModel, Application, CompType, Component, Csi, CsiTarget, Escalation, HealthCheck,
    Node, ServiceGroup, ServiceInstance, ServiceUnit,
};
use ais_core::services::amf::{Entity, Severity, validate};
use serde::Deserialize;

use super::Located;
use super::locate_toml_error;
use super::positions::Positions;

/// An AMF model read from a file, valid (no error), with its warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmfConfig {
    /// The model.
    pub model: AmfModel,
    /// What validation warned about, located.
    pub warnings: Vec<Located>,
}

/// Why an AMF model file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AmfError {
    /// The file could not be read.
    #[error("{}: cannot read the AMF model file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The text is not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("{0}")]
    Syntax(Located),
    /// The model has errors (one or more), and maybe warnings.
    #[error("{}", Lines(errors))]
    Invalid {
        /// Every error, in the order of the model.
        errors: Vec<Located>,
        /// Every warning.
        warnings: Vec<Located>,
    },
}

impl AmfError {
    /// Every error, located (one for [`AmfError::Syntax`], none for [`AmfError::Read`]).
    pub fn errors(&self) -> Vec<&Located> {
        match self {
            AmfError::Read { .. } => Vec::new(),
            AmfError::Syntax(l) => vec![l],
            AmfError::Invalid { errors, .. } => errors.iter().collect(),
        }
    }
}

/// Displays one problem a line.
struct Lines<'a>(&'a [Located]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}

impl AmfConfig {
    /// Reads, parses and validates the model file at `path`; errors name it as given.
    ///
    /// # Errors
    /// [`AmfError::Read`] if the file cannot be read, otherwise as [`AmfConfig::from_str`].
    pub fn from_file(path: &Path) -> Result<AmfConfig, AmfError> {
        let text = std::fs::read_to_string(path).map_err(|source| AmfError::Read {
            path: path.to_owned(),
            source,
        })?;
        AmfConfig::from_str(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors (usually the file name).
    ///
    /// # Errors
    /// [`AmfError::Syntax`] for the first syntax or type mistake; otherwise
    /// [`AmfError::Invalid`] with every error of the model when there is one.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, origin: &str) -> Result<AmfConfig, AmfError> {
        let file: File = toml::from_str(text)
            .map_err(|e| AmfError::Syntax(locate_toml_error(text, origin, &e)))?;
        let at = At {
            origin,
            positions: Positions::scan(text),
        };
        let mut errors = Vec::new();
        let model = file.lower(&at, &mut errors);
        let own = errors.len();
        let mut warnings = Vec::new();
        for p in validate(&model) {
            let located = at.locate(&at.key_of(&file, &p.entity, p.field), p.message);
            // Said already: by this file's own check about the same key or one that holds it
            // (a CSI without target, then its type not declared), or word for word (an
            // application named after its SG).
            let said = errors[..own]
                .iter()
                .filter_map(|e| e.key.as_deref())
                .any(|k| {
                    located
                        .key
                        .as_deref()
                        .is_some_and(|l| l == k || l.starts_with(&format!("{k}.")))
                })
                || errors.contains(&located);
            match p.severity {
                Severity::Error if said => {}
                Severity::Error => errors.push(located),
                Severity::Warning => warnings.push(located),
            }
        }
        if errors.is_empty() {
            Ok(AmfConfig { model, warnings })
        } else {
            Err(AmfError::Invalid { errors, warnings })
        }
    }
}

/// The text's name and key positions.
struct At<'a> {
    origin: &'a str,
    positions: Positions,
}

impl At<'_> {
    fn locate(&self, key: &str, message: String) -> Located {
        let p = self.positions.find(key);
        Located {
            origin: self.origin.to_owned(),
            line: p.map(|p| p.line),
            column: p.map(|p| p.column),
            key: Some(key.to_owned()),
            message,
        }
    }

    /// The key path of an entity's field in the file.
    fn key_of(&self, file: &File, entity: &Entity, field: Option<&str>) -> String {
        let base = match entity {
            Entity::Node(n) => format!("node.{n}"),
            Entity::CompType(t) => format!("comp_type.{t}"),
            Entity::HealthCheck { comp_type, key } => {
                format!("comp_type.{comp_type}.health_check.{key}")
            }
            Entity::App(a) => {
                // An application is named by the `app` key of its SGs, or is an SG's name.
                return match file
                    .sg
                    .iter()
                    .find(|(name, g)| g.app.as_deref().unwrap_or(name) == a)
                {
                    Some((name, g)) if g.app.is_some() => format!("sg.{name}.app"),
                    Some((name, _)) => format!("sg.{name}"),
                    None => format!("sg.{a}"),
                };
            }
            Entity::Sg(g) => format!("sg.{g}"),
            Entity::Su { sg, su } => format!("sg.{sg}.su.{su}"),
            Entity::Component { sg, su, .. } => {
                // Components come from the SU's `components`, else the SG's.
                let own = file
                    .sg
                    .get(sg)
                    .and_then(|g| g.su.get(su))
                    .is_some_and(|u| u.components.is_some());
                return if own {
                    format!("sg.{sg}.su.{su}.components")
                } else {
                    format!("sg.{sg}.components")
                };
            }
            Entity::Si(s) => format!("si.{s}"),
            Entity::Csi { si, csi } => format!("si.{si}.csi.{csi}"),
        };
        match field {
            None | Some("name") => base,
            Some(f) => format!("{base}.{f}"),
        }
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    node: BTreeMap<String, NodeToml>,
    #[serde(default)]
    comp_type: BTreeMap<String, CompTypeToml>,
    #[serde(default)]
    sg: BTreeMap<String, SgToml>,
    #[serde(default)]
    si: BTreeMap<String, SiToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeToml {
    nodeid: u32,
    failfast: Option<String>,
    su_failover_max: Option<u32>,
    su_failover_probation_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompTypeToml {
    instantiate: Option<String>,
    builtin: Option<BuiltinToml>,
    user: Option<String>,
    group: Option<String>,
    sa_aware: Option<bool>,
    terminate: Option<String>,
    cleanup: Option<String>,
    instantiate_timeout_ms: Option<u64>,
    terminate_timeout_ms: Option<u64>,
    cleanup_timeout_ms: Option<u64>,
    callback_timeout_ms: Option<u64>,
    instantiation_retries: Option<u32>,
    instantiation_level: Option<u32>,
    recovery: Option<RecoveryToml>,
    passive_monitoring: Option<PassiveMonitoringToml>,
    #[serde(default)]
    health_check: BTreeMap<String, HealthCheckToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckToml {
    period_ms: Option<u64>,
    max_duration_ms: Option<u64>,
    invoker: Option<InvokerToml>,
    recovery: Option<RecoveryToml>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RecoveryToml {
    ComponentRestart,
    SuRestart,
    SuFailover,
    NodeFailover,
    NodeFailfast,
}

impl From<RecoveryToml> for m::Recovery {
    fn from(r: RecoveryToml) -> m::Recovery {
        match r {
            RecoveryToml::ComponentRestart => m::Recovery::ComponentRestart,
            RecoveryToml::SuRestart => m::Recovery::SuRestart,
            RecoveryToml::SuFailover => m::Recovery::SuFailover,
            RecoveryToml::NodeFailover => m::Recovery::NodeFailover,
            RecoveryToml::NodeFailfast => m::Recovery::NodeFailfast,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum BuiltinToml {
    IpAddress,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum InvokerToml {
    Amf,
    Component,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PassiveMonitoringToml {
    Off,
    Process,
    ProcessAndDescendants,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum RedundancyToml {
    #[serde(rename = "2n")]
    TwoN,
    #[serde(rename = "n+m")]
    NPlusM,
    #[serde(rename = "n-way-active")]
    NWayActive,
    #[serde(rename = "no-redundancy")]
    NoRedundancy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SgToml {
    app: Option<String>,
    redundancy: RedundancyToml,
    active_sus: Option<u32>,
    standby_sus: Option<u32>,
    max_active_sis_per_su: Option<u32>,
    max_standby_sis_per_su: Option<u32>,
    in_service_sus: Option<u32>,
    auto_adjust: Option<bool>,
    auto_adjust_probation_ms: Option<u64>,
    comp_restart_max: Option<u32>,
    comp_restart_probation_ms: Option<u64>,
    su_restart_max: Option<u32>,
    su_restart_probation_ms: Option<u64>,
    components: Option<Vec<String>>,
    #[serde(default)]
    su: BTreeMap<String, SuToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuToml {
    node: String,
    rank: Option<u32>,
    components: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiToml {
    sg: String,
    rank: Option<u32>,
    active_assignments: Option<u32>,
    #[serde(default)]
    csi: BTreeMap<String, CsiToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsiToml {
    comp_type: Option<String>,
    component: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl File {
    /// The model, with this file's own rules checked on the way (into `errors`).
    fn lower(&self, at: &At<'_>, errors: &mut Vec<Located>) -> AmfModel {
        let nodes = self
            .node
            .iter()
            .map(|(name, n)| Node {
                failfast: n.failfast.clone(),
                su_failover_max: n.su_failover_max.unwrap_or(m::DEFAULT_SU_FAILOVER_MAX),
                su_failover_probation_ms: n
                    .su_failover_probation_ms
                    .unwrap_or(m::DEFAULT_SU_FAILOVER_PROBATION_MS),
                ..Node::new(name, n.nodeid)
            })
            .collect();
        let comp_types = self
            .comp_type
            .iter()
            .map(|(name, t)| {
                if t.instantiate.is_none() && t.builtin.is_none() {
                    let mut e = at.locate(
                        &format!("comp_type.{name}"),
                        "missing field `instantiate` (the CLC-CLI instantiate command; or \
                         `builtin = \"ip-address\"` for a type the executive implements)"
                            .into(),
                    );
                    // A type declared only by its health check's table is located there.
                    if e.line.is_none()
                        && let Some(key) = t.health_check.keys().next()
                    {
                        let h = at.locate(
                            &format!("comp_type.{name}.health_check.{key}"),
                            String::new(),
                        );
                        (e.line, e.column) = (h.line, h.column);
                    }
                    errors.push(e);
                }
                // The user must exist on the node that reads the file (every executive
                // reads it at start, so every node checks its own users).
                if let Some(user) = &t.user
                    && !user.is_empty()
                    && let Err(e) = crate::amf::clc::check_user_name(user)
                {
                    errors.push(at.locate(
                        &format!("comp_type.{name}.user"),
                        format!("{e} (the CLC-CLI commands of this type run as that user)"),
                    ));
                }
                if let Some(group) = &t.group
                    && !group.is_empty()
                    && let Err(e) = crate::amf::clc::check_group_name(group)
                {
                    errors.push(at.locate(
                        &format!("comp_type.{name}.group"),
                        format!("{e} (the CLC-CLI commands of this type run with that group)"),
                    ));
                }
                lower_comp_type(name, t)
            })
            .collect();
        // Applications in the order of their first SG.
        let mut apps: Vec<Application> = Vec::new();
        for (name, g) in &self.sg {
            let app_name = g.app.clone().unwrap_or_else(|| name.clone());
            let sg = lower_sg(name, g, at, errors);
            match apps.iter_mut().find(|a| a.name == app_name) {
                Some(app) => app.sgs.push(sg),
                None => apps.push(Application {
                    name: app_name,
                    sgs: vec![sg],
                    sis: Vec::new(),
                }),
            }
        }
        for (name, s) in &self.si {
            let si = lower_si(name, s, at, errors);
            let app = self
                .sg
                .get(&s.sg)
                .map(|g| g.app.clone().unwrap_or_else(|| s.sg.clone()));
            match app.and_then(|a| apps.iter_mut().find(|x| x.name == a)) {
                Some(app) => app.sis.push(si),
                // An SI of an undeclared SG: kept in an application of its own name so that
                // validation reports the SG as not declared.
                None => apps.push(Application {
                    name: format!("{name}.app"),
                    sgs: Vec::new(),
                    sis: vec![si],
                }),
            }
        }
        AmfModel {
            nodes,
            comp_types,
            apps,
        }
    }
}

fn lower_comp_type(name: &str, t: &CompTypeToml) -> CompType {
    let mut d = match t.builtin {
        Some(BuiltinToml::IpAddress) => CompType::builtin(name, m::Builtin::IpAddress),
        None => CompType::new(name, ""),
    };
    d.instantiate = t.instantiate.clone().unwrap_or_default();
    d.user = t.user.clone();
    d.group = t.group.clone();
    CompType {
        sa_aware: t.sa_aware.unwrap_or(d.sa_aware),
        terminate: t.terminate.clone(),
        cleanup: t.cleanup.clone(),
        instantiate_timeout_ms: t.instantiate_timeout_ms.unwrap_or(d.instantiate_timeout_ms),
        terminate_timeout_ms: t.terminate_timeout_ms.unwrap_or(d.terminate_timeout_ms),
        cleanup_timeout_ms: t.cleanup_timeout_ms.unwrap_or(d.cleanup_timeout_ms),
        callback_timeout_ms: t.callback_timeout_ms.unwrap_or(d.callback_timeout_ms),
        instantiation_retries: t.instantiation_retries.unwrap_or(d.instantiation_retries),
        instantiation_level: t.instantiation_level.unwrap_or(d.instantiation_level),
        health_checks: t
            .health_check
            .iter()
            .map(|(key, h)| {
                let d = HealthCheck::new(key);
                HealthCheck {
                    period_ms: h.period_ms.unwrap_or(d.period_ms),
                    max_duration_ms: h.max_duration_ms.unwrap_or(d.max_duration_ms),
                    invoker: match h.invoker {
                        Some(InvokerToml::Component) => m::HealthCheckInvoker::Component,
                        Some(InvokerToml::Amf) | None => m::HealthCheckInvoker::Amf,
                    },
                    recovery: h.recovery.map(Into::into),
                    ..d
                }
            })
            .collect(),
        recovery: t.recovery.map_or(d.recovery, Into::into),
        passive_monitoring: match t.passive_monitoring {
            None => d.passive_monitoring,
            Some(PassiveMonitoringToml::Off) => m::PassiveMonitoring::Off,
            Some(PassiveMonitoringToml::Process) => m::PassiveMonitoring::Process,
            Some(PassiveMonitoringToml::ProcessAndDescendants) => {
                m::PassiveMonitoring::ProcessAndDescendants
            }
        },
        ..d
    }
}

fn lower_sg(name: &str, g: &SgToml, at: &At<'_>, errors: &mut Vec<Located>) -> ServiceGroup {
    let key = |f: &str| format!("sg.{name}.{f}");
    // The parameters each model takes; any other one given is an error.
    let allowed: &[&str] = match g.redundancy {
        RedundancyToml::TwoN | RedundancyToml::NoRedundancy => &[],
        RedundancyToml::NPlusM => &[
            "active_sus",
            "standby_sus",
            "max_active_sis_per_su",
            "max_standby_sis_per_su",
        ],
        RedundancyToml::NWayActive => &["active_sus", "max_active_sis_per_su"],
    };
    let model_name = match g.redundancy {
        RedundancyToml::TwoN => "2n",
        RedundancyToml::NPlusM => "n+m",
        RedundancyToml::NWayActive => "n-way-active",
        RedundancyToml::NoRedundancy => "no-redundancy",
    };
    for (field, given) in [
        ("active_sus", g.active_sus.is_some()),
        ("standby_sus", g.standby_sus.is_some()),
        ("max_active_sis_per_su", g.max_active_sis_per_su.is_some()),
        ("max_standby_sis_per_su", g.max_standby_sis_per_su.is_some()),
    ] {
        if given && !allowed.contains(&field) {
            errors.push(at.locate(
                &key(field),
                format!("{field} does not apply to redundancy = \"{model_name}\""),
            ));
        }
    }
    let sus_count = u32::try_from(g.su.len()).unwrap_or(u32::MAX);
    let redundancy = match g.redundancy {
        RedundancyToml::TwoN => m::Redundancy::TwoN,
        RedundancyToml::NoRedundancy => m::Redundancy::NoRedundancy,
        RedundancyToml::NWayActive => m::Redundancy::NWayActive {
            active_sus: g.active_sus.unwrap_or(sus_count.max(1)),
            max_active_sis_per_su: g.max_active_sis_per_su,
        },
        RedundancyToml::NPlusM => {
            for (field, value) in [("active_sus", g.active_sus), ("standby_sus", g.standby_sus)] {
                if value.is_none() {
                    errors.push(at.locate(
                        &key(field),
                        format!(
                            "redundancy = \"n+m\" needs {field} (N = active_sus, M = standby_sus)"
                        ),
                    ));
                }
            }
            m::Redundancy::NPlusM {
                active_sus: g.active_sus.unwrap_or(1),
                standby_sus: g.standby_sus.unwrap_or(1),
                max_active_sis_per_su: g.max_active_sis_per_su,
                max_standby_sis_per_su: g.max_standby_sis_per_su,
            }
        }
    };
    let d = ServiceGroup::new(name, redundancy);
    let de = Escalation::default();
    if g.su.values().any(|u| u.components.is_none()) && g.components.is_none() {
        let su = g.su.iter().find(|(_, u)| u.components.is_none());
        let su_name = su.map_or("", |(n, _)| n.as_str());
        errors.push(at.locate(
            &format!("sg.{name}.su.{su_name}.components"),
            format!(
                "SU {su_name} has no components: give the SG `components = [\"type\", ...]` \
                 (for all its SUs) or the SU its own"
            ),
        ));
    }
    ServiceGroup {
        in_service_sus: g.in_service_sus,
        auto_adjust: g.auto_adjust.unwrap_or(d.auto_adjust),
        auto_adjust_probation_ms: g
            .auto_adjust_probation_ms
            .unwrap_or(d.auto_adjust_probation_ms),
        escalation: Escalation {
            comp_restart_max: g.comp_restart_max.unwrap_or(de.comp_restart_max),
            comp_restart_probation_ms: g
                .comp_restart_probation_ms
                .unwrap_or(de.comp_restart_probation_ms),
            su_restart_max: g.su_restart_max.unwrap_or(de.su_restart_max),
            su_restart_probation_ms: g
                .su_restart_probation_ms
                .unwrap_or(de.su_restart_probation_ms),
        },
        sus: g
            .su
            .iter()
            .map(|(su_name, u)| ServiceUnit {
                name: su_name.clone(),
                node: u.node.clone(),
                rank: u.rank.unwrap_or(0),
                components: u
                    .components
                    .as_ref()
                    .or(g.components.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|t| Component {
                        name: t.clone(),
                        comp_type: t.clone(),
                    })
                    .collect(),
            })
            .collect(),
        ..d
    }
}

fn lower_si(name: &str, s: &SiToml, at: &At<'_>, errors: &mut Vec<Located>) -> ServiceInstance {
    ServiceInstance {
        name: name.to_owned(),
        sg: s.sg.clone(),
        rank: s.rank.unwrap_or(0),
        active_assignments: s.active_assignments,
        csis: s
            .csi
            .iter()
            .map(|(csi_name, c)| {
                let target = match (&c.comp_type, &c.component) {
                    (Some(t), None) => CsiTarget::CompType(t.clone()),
                    (None, Some(n)) => CsiTarget::Component(n.clone()),
                    (both, _) => {
                        let what = if both.is_some() { "both" } else { "neither" };
                        errors.push(at.locate(
                            &format!("si.{name}.csi.{csi_name}"),
                            format!(
                                "a CSI names exactly one of comp_type (the type of the \
                                 component it goes to) and component (its name), not {what}"
                            ),
                        ));
                        CsiTarget::CompType(both.clone().unwrap_or_default())
                    }
                };
                Csi {
                    name: csi_name.clone(),
                    target,
                    attributes: c
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }
            })
            .collect(),
    }
}
