//! [`validate`]: every problem of an [`AmfModel`], each naming its entity and field.
//!
//! Errors make a model unusable; warnings describe a model that works but does not give the
//! protection its redundancy model promises (an SG of one SU, fewer SUs than preferred). The
//! rules, by entity:
//!
//! - names: not empty, only letters, digits, `-`, `_`, `.`; unique among the nodes, the
//!   component types, the applications, the SGs, the SUs and the SIs of the model, among the
//!   components of an SU and the CSIs of an SI; node ids not 0 and unique;
//! - timers: every timeout and period 1..=[`MAX_TIMEOUT_MS`], every probation
//!   1..=[`MAX_PROBATION_MS`]; counts at most [`MAX_COUNT`]; commands not blank;
//! - component types: a type that is not SA-aware needs a terminate command and cannot have
//!   AMF-invoked health checks; health check keys 1..=[`MAX_HEALTH_CHECK_KEY_LEN`] bytes and
//!   unique; a health check's max duration at most its period (warning);
//! - built-in types (`builtin = "ip-address"`): no command, no user, not SA-aware, no health
//!   checks; each CSI going to one has `address` (`a.b.c.d/prefix`) and `interface` (a Linux
//!   interface name), optionally `announcements` (1..=10), and no other attribute; a `user` is
//!   a plain name (whether it exists on the node is checked where the file is read);
//! - references: an SU's node, a component's type, an SI's SG (in the same application) and a
//!   CSI's target must exist; every SU of the SI's SG must have exactly one component for each
//!   CSI; a node-failfast recovery needs a failfast command on every node that could run it;
//! - redundancy models: an SG needs at least one SU and every SU a component; 2N and N+M need
//!   two SUs to protect anything (warning); N+M's N and M and N-way active's N are at least 1,
//!   and fewer SUs than N+M or N is a warning; `active_assignments` is for N-way active only and
//!   at most the SG's SUs; no redundancy with more SIs than SUs leaves SIs unassigned (warning);
//!   `in_service_sus` is 1..=the number of SUs, and below what the model needs is a warning;
//!   an SG without SI is a warning, an SI without CSI an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::model::{
    AmfModel, Builtin, CompType, CsiTarget, HealthCheckInvoker, IP_ADDRESS_ATTR,
    IP_ANNOUNCEMENTS_ATTR, IP_INTERFACE_ATTR, MAX_COUNT, MAX_HEALTH_CHECK_KEY_LEN,
    MAX_PROBATION_MS, MAX_TIMEOUT_MS, Recovery, Redundancy, ServiceGroup, is_interface_name,
    parse_cidr,
};

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The model works but protects less than its redundancy model promises.
    Warning,
    /// The model cannot be used.
    Error,
}

/// The entity a [`Problem`] is about, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    /// A node.
    Node(String),
    /// A component type.
    CompType(String),
    /// A health check of a component type, by key.
    HealthCheck {
        /// The component type.
        comp_type: String,
        /// The check's key.
        key: String,
    },
    /// An application.
    App(String),
    /// A service group.
    Sg(String),
    /// A service unit of an SG.
    Su {
        /// The SG.
        sg: String,
        /// The SU.
        su: String,
    },
    /// A component of an SU.
    Component {
        /// The SG.
        sg: String,
        /// The SU.
        su: String,
        /// The component.
        comp: String,
    },
    /// A service instance.
    Si(String),
    /// A CSI of an SI.
    Csi {
        /// The SI.
        si: String,
        /// The CSI.
        csi: String,
    },
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entity::Node(n) => write!(f, "node {n}"),
            Entity::CompType(t) => write!(f, "component type {t}"),
            Entity::HealthCheck { comp_type, key } => {
                write!(f, "health check {key} of component type {comp_type}")
            }
            Entity::App(a) => write!(f, "application {a}"),
            Entity::Sg(g) => write!(f, "SG {g}"),
            Entity::Su { sg, su } => write!(f, "SU {su} of SG {sg}"),
            Entity::Component { sg, su, comp } => {
                write!(f, "component {comp} of SU {su} of SG {sg}")
            }
            Entity::Si(s) => write!(f, "SI {s}"),
            Entity::Csi { si, csi } => write!(f, "CSI {csi} of SI {si}"),
        }
    }
}

/// One problem of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The entity.
    pub entity: Entity,
    /// The field of the entity, as the configuration names it (`node`, `period_ms`, …);
    /// `None` for the entity as a whole.
    pub field: Option<&'static str>,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}: {}", self.entity)?;
        if let Some(field) = self.field {
            write!(f, ", {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Collects problems.
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn error(&mut self, entity: &Entity, field: Option<&'static str>, message: String) {
        self.push(Severity::Error, entity, field, message);
    }

    fn warn(&mut self, entity: &Entity, field: Option<&'static str>, message: String) {
        self.push(Severity::Warning, entity, field, message);
    }

    fn push(
        &mut self,
        severity: Severity,
        entity: &Entity,
        field: Option<&'static str>,
        message: String,
    ) {
        self.problems.push(Problem {
            severity,
            entity: entity.clone(),
            field,
            message,
        });
    }

    fn name(&mut self, entity: &Entity, name: &str) {
        if name.is_empty() {
            self.error(entity, Some("name"), "a name must not be empty".into());
        } else if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            self.error(
                entity,
                Some("name"),
                format!(
                    "{name:?}: {c:?} is not allowed in a name (letters, digits, '-', '_', '.')"
                ),
            );
        }
    }

    /// Reports the second and later entities of each name.
    fn unique<'a>(&mut self, what: &str, items: impl IntoIterator<Item = (&'a str, Entity)>) {
        let mut seen = BTreeSet::new();
        for (name, entity) in items {
            if !seen.insert(name) {
                self.error(
                    &entity,
                    Some("name"),
                    format!("{what} {name:?} is declared more than once"),
                );
            }
        }
    }

    fn timeout(&mut self, entity: &Entity, field: &'static str, ms: u64) {
        self.range(entity, field, ms, MAX_TIMEOUT_MS);
    }

    fn probation(&mut self, entity: &Entity, field: &'static str, ms: u64) {
        self.range(entity, field, ms, MAX_PROBATION_MS);
    }

    fn range(&mut self, entity: &Entity, field: &'static str, ms: u64, max: u64) {
        if ms == 0 || ms > max {
            self.error(
                entity,
                Some(field),
                format!("{ms} ms is out of range 1..={max} ms"),
            );
        }
    }

    fn count(&mut self, entity: &Entity, field: &'static str, n: u32) {
        if n > MAX_COUNT {
            self.error(
                entity,
                Some(field),
                format!("{n} is more than the largest accepted count, {MAX_COUNT}"),
            );
        }
    }

    fn command(&mut self, entity: &Entity, field: &'static str, command: &str) {
        if command.trim().is_empty() {
            self.error(entity, Some(field), "a command must not be blank".into());
        }
    }
}

/// Every problem of `model`, errors and warnings, in the order of the model. The model is
/// usable when none is a [`Severity::Error`].
pub fn validate(model: &AmfModel) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    nodes(&mut c, model);
    c.unique(
        "component type",
        model
            .comp_types
            .iter()
            .map(|t| (t.name.as_str(), Entity::CompType(t.name.clone()))),
    );
    for t in &model.comp_types {
        comp_type(&mut c, t);
    }
    c.unique(
        "application",
        model
            .apps
            .iter()
            .map(|a| (a.name.as_str(), Entity::App(a.name.clone()))),
    );
    let sgs = model.apps.iter().flat_map(|a| &a.sgs);
    c.unique(
        "SG",
        sgs.clone()
            .map(|g| (g.name.as_str(), Entity::Sg(g.name.clone()))),
    );
    c.unique(
        "SU",
        sgs.clone().flat_map(|g| {
            g.sus.iter().map(|u| {
                (
                    u.name.as_str(),
                    Entity::Su {
                        sg: g.name.clone(),
                        su: u.name.clone(),
                    },
                )
            })
        }),
    );
    c.unique(
        "SI",
        model
            .apps
            .iter()
            .flat_map(|a| &a.sis)
            .map(|s| (s.name.as_str(), Entity::Si(s.name.clone()))),
    );
    for app in &model.apps {
        c.name(&Entity::App(app.name.clone()), &app.name);
        for sg in &app.sgs {
            service_group(&mut c, model, sg);
        }
        for si in &app.sis {
            service_instance(&mut c, model, app, si);
        }
        for sg in &app.sgs {
            if !app.sis.iter().any(|si| si.sg == sg.name) {
                c.warn(
                    &Entity::Sg(sg.name.clone()),
                    None,
                    "no SI names this SG: its SUs will be instantiated but given no work".into(),
                );
            }
        }
    }
    c.problems
}

fn nodes(c: &mut Checker, model: &AmfModel) {
    c.unique(
        "node",
        model
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), Entity::Node(n.name.clone()))),
    );
    let mut ids = BTreeMap::new();
    for n in &model.nodes {
        let e = Entity::Node(n.name.clone());
        c.name(&e, &n.name);
        if n.nodeid == 0 {
            c.error(
                &e,
                Some("nodeid"),
                "node id 0 is reserved; use 1..=4294967295".into(),
            );
        } else if let Some(other) = ids.insert(n.nodeid, &n.name) {
            c.error(
                &e,
                Some("nodeid"),
                format!("node id {} is already node {other}'s", n.nodeid),
            );
        }
        if let Some(cmd) = &n.failfast {
            c.command(&e, "failfast", cmd);
        }
        c.count(&e, "su_failover_max", n.su_failover_max);
        c.probation(&e, "su_failover_probation_ms", n.su_failover_probation_ms);
    }
}

fn comp_type(c: &mut Checker, t: &CompType) {
    let e = Entity::CompType(t.name.clone());
    c.name(&e, &t.name);
    for (field, value) in [("user", &t.user), ("group", &t.group)] {
        if let Some(name) = value
            && (name.is_empty()
                || name.len() > 32
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        {
            c.error(
                &e,
                Some(field),
                format!("{name:?} is not a {field} name (1..=32 letters, digits, `-`, `_`, `.`)"),
            );
        }
    }
    if let Some(b) = t.builtin {
        builtin_comp_type(c, t, &e, b);
        return;
    }
    c.command(&e, "instantiate", &t.instantiate);
    if let Some(cmd) = &t.terminate {
        c.command(&e, "terminate", cmd);
    } else if !t.sa_aware {
        c.error(
            &e,
            Some("terminate"),
            "a component that is not SA-aware needs a terminate command (there is no \
             terminate callback to call)"
                .into(),
        );
    }
    if let Some(cmd) = &t.cleanup {
        c.command(&e, "cleanup", cmd);
    }
    c.timeout(&e, "instantiate_timeout_ms", t.instantiate_timeout_ms);
    c.timeout(&e, "terminate_timeout_ms", t.terminate_timeout_ms);
    c.timeout(&e, "cleanup_timeout_ms", t.cleanup_timeout_ms);
    c.timeout(&e, "callback_timeout_ms", t.callback_timeout_ms);
    c.count(&e, "instantiation_retries", t.instantiation_retries);
    c.count(&e, "instantiation_level", t.instantiation_level);
    let mut keys = BTreeSet::new();
    for h in &t.health_checks {
        let he = Entity::HealthCheck {
            comp_type: t.name.clone(),
            key: h.key.clone(),
        };
        if h.key.is_empty() || h.key.len() > MAX_HEALTH_CHECK_KEY_LEN {
            c.error(
                &he,
                Some("key"),
                format!(
                    "a health check key has 1..={MAX_HEALTH_CHECK_KEY_LEN} bytes, not {}",
                    h.key.len()
                ),
            );
        }
        if !keys.insert(h.key.as_str()) {
            c.error(
                &he,
                Some("key"),
                "this key is declared more than once".into(),
            );
        }
        c.timeout(&he, "period_ms", h.period_ms);
        c.timeout(&he, "max_duration_ms", h.max_duration_ms);
        if h.max_duration_ms > h.period_ms {
            c.warn(
                &he,
                Some("max_duration_ms"),
                format!(
                    "{} ms is longer than the period ({} ms): a hung component is seen only \
                     after the next check is due",
                    h.max_duration_ms, h.period_ms
                ),
            );
        }
        if h.invoker == HealthCheckInvoker::Amf && !t.sa_aware {
            c.error(
                &he,
                Some("invoker"),
                "an AMF-invoked health check needs an SA-aware component (the AMF calls its \
                 health check callback)"
                    .into(),
            );
        }
    }
}

/// A built-in type runs no command and takes its CSIs from the executive itself.
fn builtin_comp_type(c: &mut Checker, t: &CompType, e: &Entity, b: Builtin) {
    let no = |what: &str| {
        format!(
            "a built-in type ({}) has no {what}: the executive does its work",
            b.name()
        )
    };
    if !t.instantiate.is_empty() {
        c.error(e, Some("instantiate"), no("instantiate command"));
    }
    if t.terminate.is_some() {
        c.error(e, Some("terminate"), no("terminate command"));
    }
    if t.cleanup.is_some() {
        c.error(e, Some("cleanup"), no("cleanup command"));
    }
    if t.user.is_some() {
        c.error(e, Some("user"), no("command to run as a user"));
    }
    if t.group.is_some() {
        c.error(e, Some("group"), no("command to run with a group"));
    }
    if t.sa_aware {
        c.error(
            e,
            Some("sa_aware"),
            format!("a built-in type ({}) is not SA-aware", b.name()),
        );
    }
    for h in &t.health_checks {
        let he = Entity::HealthCheck {
            comp_type: t.name.clone(),
            key: h.key.clone(),
        };
        c.error(&he, None, no("health checks"));
    }
    c.timeout(e, "callback_timeout_ms", t.callback_timeout_ms);
    c.count(e, "instantiation_retries", t.instantiation_retries);
    c.count(e, "instantiation_level", t.instantiation_level);
}

/// The CSI attributes of a built-in type: for `ip-address`, `address` (CIDR) and `interface`
/// required, `announcements` (1..=10) optional, nothing else.
fn builtin_csi(c: &mut Checker, ce: &Entity, b: Builtin, attrs: &[(String, String)]) {
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match b {
        Builtin::IpAddress => {
            match get(IP_ADDRESS_ATTR) {
                None => c.error(
                    ce,
                    Some("attributes"),
                    "an ip-address CSI needs attributes.address (\"a.b.c.d/prefix\")".into(),
                ),
                Some(v) if parse_cidr(v).is_none() => c.error(
                    ce,
                    Some("attributes.address"),
                    format!("{v:?} is not an IPv4 address with a prefix 1..=32 (a.b.c.d/prefix)"),
                ),
                Some(_) => {}
            }
            match get(IP_INTERFACE_ATTR) {
                None => c.error(
                    ce,
                    Some("attributes"),
                    "an ip-address CSI needs attributes.interface (the node's interface, e.g. \"eth0\")"
                        .into(),
                ),
                Some(v) if !is_interface_name(v) => c.error(
                    ce,
                    Some("attributes.interface"),
                    format!(
                        "{v:?} is not an interface name (1..=15 letters, digits, `-`, `_`, `.`, `@`)"
                    ),
                ),
                Some(_) => {}
            }
            if let Some(v) = get(IP_ANNOUNCEMENTS_ATTR)
                && !v.parse::<u32>().is_ok_and(|n| (1..=10).contains(&n))
            {
                c.error(
                    ce,
                    Some("attributes.announcements"),
                    format!("{v:?}: the gratuitous ARP announcements are 1..=10"),
                );
            }
            for (n, _) in attrs {
                if ![IP_ADDRESS_ATTR, IP_INTERFACE_ATTR, IP_ANNOUNCEMENTS_ATTR]
                    .contains(&n.as_str())
                {
                    c.error(
                        ce,
                        Some("attributes"),
                        format!(
                            "{n:?} is not an attribute of an ip-address CSI (address, interface, \
                             announcements)"
                        ),
                    );
                }
            }
        }
    }
}

/// Whether any failure of a component of type `t` can recover by node failfast.
fn may_failfast(t: &CompType) -> bool {
    t.recovery == Recovery::NodeFailfast
        || t.health_checks
            .iter()
            .any(|h| h.recovery == Some(Recovery::NodeFailfast))
}

fn service_group(c: &mut Checker, model: &AmfModel, sg: &ServiceGroup) {
    let e = Entity::Sg(sg.name.clone());
    c.name(&e, &sg.name);
    let sus = u32::try_from(sg.sus.len()).unwrap_or(u32::MAX);
    if sus == 0 {
        c.error(&e, Some("su"), "an SG needs at least one SU".into());
    }
    let esc = &sg.escalation;
    c.count(&e, "comp_restart_max", esc.comp_restart_max);
    c.probation(
        &e,
        "comp_restart_probation_ms",
        esc.comp_restart_probation_ms,
    );
    c.count(&e, "su_restart_max", esc.su_restart_max);
    c.probation(&e, "su_restart_probation_ms", esc.su_restart_probation_ms);
    c.probation(&e, "auto_adjust_probation_ms", sg.auto_adjust_probation_ms);
    // The SUs the model wants in service to give every SI its preferred assignments.
    let needed = match sg.redundancy {
        Redundancy::TwoN => {
            if sus == 1 {
                c.warn(
                    &e,
                    Some("su"),
                    "2N with one SU has no standby: a failure stops the service until the SU \
                     is repaired"
                        .into(),
                );
            }
            2
        }
        Redundancy::NPlusM {
            active_sus,
            standby_sus,
            max_active_sis_per_su,
            max_standby_sis_per_su,
        } => {
            if active_sus == 0 {
                c.error(
                    &e,
                    Some("active_sus"),
                    "N+M needs N (active_sus) of 1 or more".into(),
                );
            }
            if standby_sus == 0 {
                c.error(
                    &e,
                    Some("standby_sus"),
                    "N+M needs M (standby_sus) of 1 or more; without standbys use \
                     no-redundancy or n-way-active"
                        .into(),
                );
            }
            for (field, v) in [
                ("max_active_sis_per_su", max_active_sis_per_su),
                ("max_standby_sis_per_su", max_standby_sis_per_su),
            ] {
                if v == Some(0) {
                    c.error(
                        &e,
                        Some(field),
                        "must be 1 or more (or left out: no limit)".into(),
                    );
                }
            }
            let wanted = active_sus.saturating_add(standby_sus);
            if sus > 0 && sus < wanted {
                c.warn(
                    &e,
                    Some("su"),
                    format!(
                        "{sus} SUs are fewer than N+M = {active_sus}+{standby_sus}: the \
                         preferred assignments cannot all be made"
                    ),
                );
            }
            wanted
        }
        Redundancy::NWayActive {
            active_sus,
            max_active_sis_per_su,
        } => {
            if active_sus == 0 {
                c.error(
                    &e,
                    Some("active_sus"),
                    "N-way active needs active_sus of 1 or more".into(),
                );
            }
            if max_active_sis_per_su == Some(0) {
                c.error(
                    &e,
                    Some("max_active_sis_per_su"),
                    "must be 1 or more (or left out: no limit)".into(),
                );
            }
            if sus > 0 && sus < active_sus {
                c.warn(
                    &e,
                    Some("su"),
                    format!("{sus} SUs are fewer than active_sus = {active_sus}"),
                );
            }
            active_sus
        }
        Redundancy::NoRedundancy => 1,
    };
    if let Some(n) = sg.in_service_sus {
        if n == 0 || n > sus {
            c.error(
                &e,
                Some("in_service_sus"),
                format!("{n} is out of range 1..={sus} (the number of SUs)"),
            );
        } else if n < needed {
            c.warn(
                &e,
                Some("in_service_sus"),
                format!(
                    "{n} SUs in service are fewer than the {needed} that {} needs",
                    sg.redundancy.name()
                ),
            );
        }
    }
    for su in &sg.sus {
        let ue = Entity::Su {
            sg: sg.name.clone(),
            su: su.name.clone(),
        };
        c.name(&ue, &su.name);
        let node = model.node(&su.node);
        if node.is_none() {
            c.error(
                &ue,
                Some("node"),
                format!("node {:?} is not declared", su.node),
            );
        }
        if su.components.is_empty() {
            c.error(
                &ue,
                Some("components"),
                "an SU needs at least one component".into(),
            );
        }
        c.unique(
            "component",
            su.components.iter().map(|comp| {
                (
                    comp.name.as_str(),
                    Entity::Component {
                        sg: sg.name.clone(),
                        su: su.name.clone(),
                        comp: comp.name.clone(),
                    },
                )
            }),
        );
        for comp in &su.components {
            let ce = Entity::Component {
                sg: sg.name.clone(),
                su: su.name.clone(),
                comp: comp.name.clone(),
            };
            c.name(&ce, &comp.name);
            match model.comp_type(&comp.comp_type) {
                None => c.error(
                    &ce,
                    Some("type"),
                    format!("component type {:?} is not declared", comp.comp_type),
                ),
                Some(t) if may_failfast(t) => {
                    if let Some(n) = node.filter(|n| n.failfast.is_none()) {
                        c.error(
                            &ce,
                            Some("type"),
                            format!(
                                "type {} may recover by node-failfast but node {} has no \
                                 failfast command",
                                t.name, n.name
                            ),
                        );
                    }
                }
                Some(_) => {}
            }
        }
    }
}

fn service_instance(
    c: &mut Checker,
    model: &AmfModel,
    app: &super::model::Application,
    si: &super::model::ServiceInstance,
) {
    let e = Entity::Si(si.name.clone());
    c.name(&e, &si.name);
    let Some(sg) = app.sgs.iter().find(|g| g.name == si.sg) else {
        let elsewhere = model
            .apps
            .iter()
            .find(|a| a.sgs.iter().any(|g| g.name == si.sg));
        let message = match elsewhere {
            Some(other) => format!(
                "SG {:?} belongs to application {}, not to this SI's application {}",
                si.sg, other.name, app.name
            ),
            None => format!("SG {:?} is not declared", si.sg),
        };
        c.error(&e, Some("sg"), message);
        return;
    };
    let sus = u32::try_from(sg.sus.len()).unwrap_or(u32::MAX);
    match (sg.redundancy, si.active_assignments) {
        (Redundancy::NWayActive { .. }, Some(n)) if n == 0 || n > sus.max(1) => c.error(
            &e,
            Some("active_assignments"),
            format!(
                "{n} is out of range 1..={} (the SUs of SG {})",
                sus.max(1),
                sg.name
            ),
        ),
        (Redundancy::NWayActive { .. }, _) | (_, None) => {}
        (model_kind, Some(_)) => c.error(
            &e,
            Some("active_assignments"),
            format!(
                "active_assignments is for n-way-active; SG {} is {} (one active per SI)",
                sg.name,
                model_kind.name()
            ),
        ),
    }
    if sg.redundancy == Redundancy::NoRedundancy {
        let sis = app.sis.iter().filter(|s| s.sg == sg.name).count();
        let first = app.sis.iter().find(|s| s.sg == sg.name);
        if sis > sg.sus.len() && first.is_some_and(|f| f.name == si.name) {
            c.warn(
                &Entity::Sg(sg.name.clone()),
                Some("su"),
                format!(
                    "no-redundancy gives each SU one SI: {sis} SIs for {} SUs leave some \
                     unassigned",
                    sg.sus.len()
                ),
            );
        }
    }
    if si.csis.is_empty() {
        c.error(&e, Some("csi"), "an SI needs at least one CSI".into());
    }
    c.unique(
        "CSI",
        si.csis.iter().map(|csi| {
            (
                csi.name.as_str(),
                Entity::Csi {
                    si: si.name.clone(),
                    csi: csi.name.clone(),
                },
            )
        }),
    );
    for csi in &si.csis {
        let ce = Entity::Csi {
            si: si.name.clone(),
            csi: csi.name.clone(),
        };
        c.name(&ce, &csi.name);
        for (name, _) in &csi.attributes {
            if name.is_empty() {
                c.error(
                    &ce,
                    Some("attributes"),
                    "an attribute name must not be empty".into(),
                );
            }
        }
        // The type the CSI goes to; a built-in one checks its attributes.
        let ctype = match &csi.target {
            CsiTarget::CompType(t) => model.comp_type(t),
            CsiTarget::Component(n) => sg
                .sus
                .iter()
                .flat_map(|u| &u.components)
                .find(|comp| &comp.name == n)
                .and_then(|comp| model.comp_type(&comp.comp_type)),
        };
        if let Some(b) = ctype.and_then(|t| t.builtin) {
            builtin_csi(c, &ce, b, &csi.attributes);
        }
        let (field, wanted) = match &csi.target {
            CsiTarget::CompType(t) => {
                if model.comp_type(t).is_none() {
                    c.error(
                        &ce,
                        Some("comp_type"),
                        format!("component type {t:?} is not declared"),
                    );
                    continue;
                }
                ("comp_type", t)
            }
            CsiTarget::Component(n) => ("component", n),
        };
        for su in &sg.sus {
            let matching = su
                .components
                .iter()
                .filter(|comp| match &csi.target {
                    CsiTarget::CompType(t) => &comp.comp_type == t,
                    CsiTarget::Component(n) => &comp.name == n,
                })
                .count();
            if matching != 1 {
                let what = if field == "comp_type" {
                    "component of type"
                } else {
                    "component named"
                };
                c.error(
                    &ce,
                    Some(field),
                    format!(
                        "SU {} of SG {} has {matching} {what} {wanted:?}; it needs exactly one to \
                         take this CSI",
                        su.name, sg.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
