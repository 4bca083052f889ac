//! The AMF information model: what an operator configures, as plain data.
//!
//! The tree is the SA Forum one. A cluster has [`Node`]s. An [`Application`] holds
//! [`ServiceGroup`]s (SG), each with its [`Redundancy`] model and its [`ServiceUnit`]s (SU); an SU
//! runs on one node and holds [`Component`]s. The application's workload is a set of
//! [`ServiceInstance`]s (SI), each protected by one SG and made of [`Csi`]s (component service
//! instances), each assigned to one component of the SU that takes the SI. What a component
//! runs (its CLC-CLI commands, health checks, recovery) is its [`CompType`], shared by every
//! component of that type.
//!
//! Names are simple strings (letters, digits, `-`, `_`, `.`); the SA Forum distinguished name
//! of an entity follows from its place in the tree (see [`AmfModel::dn_of_component`]).
//! Every timer is in milliseconds. Every default is a constant of this module, used by the
//! constructors ([`CompType::new`], [`ServiceGroup::new`], …) and by the TOML reader.
//!
//! The types are plain data (`Clone`, `Eq`): the replicated AMF state machine holds them.

/// Default timeout of each CLC-CLI command (instantiate, terminate, cleanup), ms.
pub const DEFAULT_CLC_TIMEOUT_MS: u64 = 10_000;
/// Default timeout for a component's answer to a callback (CSI set, CSI remove, terminate), ms.
pub const DEFAULT_CALLBACK_TIMEOUT_MS: u64 = 10_000;
/// Default number of times a failed instantiation is retried before the component is
/// INSTANTIATION_FAILED.
pub const DEFAULT_INSTANTIATION_RETRIES: u32 = 2;
/// Default instantiation level (components of an SU start by ascending level).
pub const DEFAULT_INSTANTIATION_LEVEL: u32 = 1;
/// Default period of a health check, ms.
pub const DEFAULT_HEALTH_CHECK_PERIOD_MS: u64 = 1_000;
/// Default longest time a health check may take to be answered, ms.
pub const DEFAULT_HEALTH_CHECK_MAX_DURATION_MS: u64 = 500;
/// Default component restarts allowed within [`DEFAULT_COMP_RESTART_PROBATION_MS`] before the
/// AMF escalates to an SU restart.
pub const DEFAULT_COMP_RESTART_MAX: u32 = 3;
/// Default component restart probation period, ms.
pub const DEFAULT_COMP_RESTART_PROBATION_MS: u64 = 60_000;
/// Default SU restarts allowed within [`DEFAULT_SU_RESTART_PROBATION_MS`] before the AMF
/// escalates to an SU failover.
pub const DEFAULT_SU_RESTART_MAX: u32 = 2;
/// Default SU restart probation period, ms.
pub const DEFAULT_SU_RESTART_PROBATION_MS: u64 = 120_000;
/// Default SU failovers of one node allowed within [`DEFAULT_SU_FAILOVER_PROBATION_MS`]
/// before the AMF escalates to a node failover.
pub const DEFAULT_SU_FAILOVER_MAX: u32 = 3;
/// Default node SU failover probation period, ms.
pub const DEFAULT_SU_FAILOVER_PROBATION_MS: u64 = 300_000;
/// Default probation period before auto-adjust (failback) moves assignments back, ms.
pub const DEFAULT_AUTO_ADJUST_PROBATION_MS: u64 = 10_000;
/// Longest accepted timeout or period (CLC-CLI, callback, health check), ms: 10 minutes.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// Longest accepted probation period, ms: one day.
pub const MAX_PROBATION_MS: u64 = 86_400_000;
/// Largest accepted retry or restart count.
pub const MAX_COUNT: u32 = 1_000;
/// Longest health check key, bytes (the SA Forum `SaAmfHealthcheckKeyT` holds 32).
pub const MAX_HEALTH_CHECK_KEY_LEN: usize = 32;

/// The whole model: the cluster's nodes, the component types and the applications.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AmfModel {
    /// The nodes that may host service units.
    pub nodes: Vec<Node>,
    /// The component types that components name.
    pub comp_types: Vec<CompType>,
    /// The applications.
    pub apps: Vec<Application>,
}

/// A cluster node that may host service units (`SaAmfNode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node's AMF name.
    pub name: String,
    /// The CLM node id of the executive on this node (`totem.nodeid`), 1 or more.
    pub nodeid: u32,
    /// The node failfast action: a shell command the executive runs (`/bin/sh -c`) when a
    /// recovery escalates to node failfast, e.g. `"systemctl reboot --force --force"`. `None`:
    /// the node cannot fail fast, and validation refuses a node-failfast recovery on it.
    pub failfast: Option<String>,
    /// SU failovers on this node allowed within `su_failover_probation_ms` before the AMF
    /// escalates to a node failover (`saAmfNodeSuFailoverMax`); default
    /// [`DEFAULT_SU_FAILOVER_MAX`].
    pub su_failover_max: u32,
    /// The window of `su_failover_max`, ms (`saAmfNodeSuFailOverProb`); default
    /// [`DEFAULT_SU_FAILOVER_PROBATION_MS`].
    pub su_failover_probation_ms: u64,
}

impl Node {
    /// A node with the defaults: no failfast command, default escalation.
    pub fn new(name: &str, nodeid: u32) -> Node {
        Node {
            name: name.to_owned(),
            nodeid,
            failfast: None,
            su_failover_max: DEFAULT_SU_FAILOVER_MAX,
            su_failover_probation_ms: DEFAULT_SU_FAILOVER_PROBATION_MS,
        }
    }
}

/// What the AMF does when a component fails (`SaAmfRecommendedRecoveryT`, the part this
/// model configures). The AMF escalates beyond it when the restart counters run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recovery {
    /// Restart the component in place (its assignments stay with it); the default.
    ComponentRestart,
    /// Restart the whole SU (every component of it).
    SuRestart,
    /// Fail the SU's assignments over to another SU (`COMPONENT_FAILOVER`).
    SuFailover,
    /// Fail every SU of the node over to other nodes.
    NodeFailover,
    /// Run the node's failfast command at once ([`Node::failfast`]).
    NodeFailfast,
}

impl Recovery {
    /// Every value, in escalation order.
    pub const ALL: [Recovery; 5] = [
        Recovery::ComponentRestart,
        Recovery::SuRestart,
        Recovery::SuFailover,
        Recovery::NodeFailover,
        Recovery::NodeFailfast,
    ];

    /// The configuration name (`component-restart`, `su-restart`, `su-failover`,
    /// `node-failover`, `node-failfast`).
    pub fn name(self) -> &'static str {
        match self {
            Recovery::ComponentRestart => "component-restart",
            Recovery::SuRestart => "su-restart",
            Recovery::SuFailover => "su-failover",
            Recovery::NodeFailover => "node-failover",
            Recovery::NodeFailfast => "node-failfast",
        }
    }

    /// The value with configuration name `name`.
    pub fn from_name(name: &str) -> Option<Recovery> {
        Recovery::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Who starts a health check cycle (`SaAmfHealthcheckInvocationT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthCheckInvoker {
    /// The AMF calls the component's health check callback every period and wants the answer
    /// within the max duration (the default).
    Amf,
    /// The component confirms its health at least once per period.
    Component,
}

/// One health check of a component type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The key the component starts it with (1 to [`MAX_HEALTH_CHECK_KEY_LEN`] bytes, unique
    /// within the component type).
    pub key: String,
    /// Period, ms; default [`DEFAULT_HEALTH_CHECK_PERIOD_MS`].
    pub period_ms: u64,
    /// Longest time an AMF-invoked check may take to be answered, ms; default
    /// [`DEFAULT_HEALTH_CHECK_MAX_DURATION_MS`].
    pub max_duration_ms: u64,
    /// Who invokes it; default [`HealthCheckInvoker::Amf`].
    pub invoker: HealthCheckInvoker,
    /// The recovery when the check fails or is missed; `None`: the component type's
    /// [`CompType::recovery`].
    pub recovery: Option<Recovery>,
}

impl HealthCheck {
    /// An AMF-invoked check with the default period and max duration.
    pub fn new(key: &str) -> HealthCheck {
        HealthCheck {
            key: key.to_owned(),
            period_ms: DEFAULT_HEALTH_CHECK_PERIOD_MS,
            max_duration_ms: DEFAULT_HEALTH_CHECK_MAX_DURATION_MS,
            invoker: HealthCheckInvoker::Amf,
            recovery: None,
        }
    }
}

/// Which processes of a component the executive watches for exit (passive monitoring,
/// `SaAmfPmTgtT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassiveMonitoring {
    /// None: a crash is seen only through health checks or an error report.
    Off,
    /// The process the instantiate command started (the default).
    Process,
    /// That process and every process it starts.
    ProcessAndDescendants,
}

/// What a kind of component runs and how it is watched (the SA Forum `SaAmfCompType` with the
/// attributes this model configures). Commands run through `/bin/sh -c` on the SU's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompType {
    /// The type's name.
    pub name: String,
    /// Whether the component registers with the AMF through the component API and takes its
    /// CSI assignments through callbacks (default `true`). A component that is not SA-aware
    /// is driven only by its CLC-CLI commands: it needs `terminate`, and AMF-invoked health
    /// checks cannot reach it.
    pub sa_aware: bool,
    /// The CLC-CLI instantiate command (required).
    pub instantiate: String,
    /// The CLC-CLI terminate command; `None`: the AMF's terminate callback (SA-aware only).
    pub terminate: Option<String>,
    /// The CLC-CLI cleanup command; `None`: the executive kills the component's processes
    /// (SIGKILL).
    pub cleanup: Option<String>,
    /// Timeout of `instantiate` (for an SA-aware component, until it has registered), ms;
    /// default [`DEFAULT_CLC_TIMEOUT_MS`].
    pub instantiate_timeout_ms: u64,
    /// Timeout of `terminate`, ms; default [`DEFAULT_CLC_TIMEOUT_MS`].
    pub terminate_timeout_ms: u64,
    /// Timeout of `cleanup`, ms; default [`DEFAULT_CLC_TIMEOUT_MS`].
    pub cleanup_timeout_ms: u64,
    /// Timeout of the component's answer to a callback, ms; default
    /// [`DEFAULT_CALLBACK_TIMEOUT_MS`].
    pub callback_timeout_ms: u64,
    /// Retries of a failed instantiation; default [`DEFAULT_INSTANTIATION_RETRIES`].
    pub instantiation_retries: u32,
    /// Start-up order inside an SU: lower levels are instantiated first (and terminated
    /// last); default [`DEFAULT_INSTANTIATION_LEVEL`].
    pub instantiation_level: u32,
    /// The health checks (none by default).
    pub health_checks: Vec<HealthCheck>,
    /// The recovery on an error (process exit, failed health check, error report without a
    /// recommendation); default [`Recovery::ComponentRestart`].
    pub recovery: Recovery,
    /// The processes watched for exit; default [`PassiveMonitoring::Process`].
    pub passive_monitoring: PassiveMonitoring,
    /// A component type the executive implements itself ([`Builtin`]); `None` (the default):
    /// the type runs its commands. A built-in type has no commands (`instantiate` is empty),
    /// is not SA-aware and has no health checks; its CSIs' attributes say what it serves.
    pub builtin: Option<Builtin>,
    /// Run the CLC-CLI commands as this user (looked up by name on the node); `None` (the
    /// default): as the executive's user.
    pub user: Option<String>,
    /// Run the CLC-CLI commands with this group (looked up by name on the node) instead of
    /// the user's primary group; `None` (the default): the user's (or the executive's).
    pub group: Option<String>,
}

/// A component type built into the executive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// IP takeover (CGL CAF.2.2): each CSI is a virtual IPv4 address (attributes
    /// [`IP_ADDRESS_ATTR`], CIDR, and [`IP_INTERFACE_ATTR`]), added to the interface while the
    /// CSI is held active, removed otherwise.
    IpAddress,
}

impl Builtin {
    /// The configuration name (`ip-address`).
    pub fn name(self) -> &'static str {
        match self {
            Builtin::IpAddress => "ip-address",
        }
    }
}

/// The CSI attribute of an [`Builtin::IpAddress`] component naming the address,
/// `a.b.c.d/prefix`.
pub const IP_ADDRESS_ATTR: &str = "address";
/// The CSI attribute of an [`Builtin::IpAddress`] component naming the interface.
pub const IP_INTERFACE_ATTR: &str = "interface";

/// The optional CSI attribute of an [`Builtin::IpAddress`] component: how many gratuitous
/// ARP requests announce the address (1..=10, default 2).
pub const IP_ANNOUNCEMENTS_ATTR: &str = "announcements";

/// Parses `a.b.c.d/prefix` (prefix 1..=32) as an IP address CSI holds it.
pub fn parse_cidr(s: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let prefix: u8 = p.parse().ok()?;
    if !(1..=32).contains(&prefix) || p.starts_with('+') {
        return None;
    }
    Some((a.parse().ok()?, prefix))
}

/// Whether `s` is a Linux interface name (1..=15 bytes of letters, digits, `-`, `_`, `.`,
/// `@`).
pub fn is_interface_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

impl CompType {
    /// An SA-aware type with the defaults and the given instantiate command.
    pub fn new(name: &str, instantiate: &str) -> CompType {
        CompType {
            name: name.to_owned(),
            sa_aware: true,
            instantiate: instantiate.to_owned(),
            terminate: None,
            cleanup: None,
            instantiate_timeout_ms: DEFAULT_CLC_TIMEOUT_MS,
            terminate_timeout_ms: DEFAULT_CLC_TIMEOUT_MS,
            cleanup_timeout_ms: DEFAULT_CLC_TIMEOUT_MS,
            callback_timeout_ms: DEFAULT_CALLBACK_TIMEOUT_MS,
            instantiation_retries: DEFAULT_INSTANTIATION_RETRIES,
            instantiation_level: DEFAULT_INSTANTIATION_LEVEL,
            health_checks: Vec::new(),
            recovery: Recovery::ComponentRestart,
            passive_monitoring: PassiveMonitoring::Process,
            builtin: None,
            user: None,
            group: None,
        }
    }

    /// A built-in type with the defaults (no commands, not SA-aware).
    pub fn builtin(name: &str, builtin: Builtin) -> CompType {
        CompType {
            sa_aware: false,
            builtin: Some(builtin),
            ..CompType::new(name, "")
        }
    }
}

/// An application: service groups and the service instances they protect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// The application's name.
    pub name: String,
    /// Its service groups.
    pub sgs: Vec<ServiceGroup>,
    /// Its service instances.
    pub sis: Vec<ServiceInstance>,
}

/// A redundancy model with its own parameters (`saAmfSGRedundancyModel` and the preferred
/// numbers that apply to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Redundancy {
    /// One active SU for every SI of the SG and one standby SU for every SI.
    TwoN,
    /// N active SUs and M standby SUs; every SI has one active and one standby assignment.
    NPlusM {
        /// N, the preferred number of active SUs (1 or more).
        active_sus: u32,
        /// M, the preferred number of standby SUs (1 or more).
        standby_sus: u32,
        /// Most SIs an SU takes active (`saAmfSGMaxActiveSIsperSU`); `None`: no limit.
        max_active_sis_per_su: Option<u32>,
        /// Most SIs an SU takes standby (`saAmfSGMaxStandbySIsperSU`); `None`: no limit.
        max_standby_sis_per_su: Option<u32>,
    },
    /// Every SI active in several SUs at once, no standby.
    NWayActive {
        /// The preferred number of SUs with active assignments (1 or more).
        active_sus: u32,
        /// Most SIs an SU takes active; `None`: no limit.
        max_active_sis_per_su: Option<u32>,
    },
    /// At most one SU per SI and one SI per SU; recovery by restart or by moving the SI to a
    /// spare SU.
    NoRedundancy,
}

impl Redundancy {
    /// The configuration name (`2n`, `n+m`, `n-way-active`, `no-redundancy`).
    pub fn name(&self) -> &'static str {
        match self {
            Redundancy::TwoN => "2n",
            Redundancy::NPlusM { .. } => "n+m",
            Redundancy::NWayActive { .. } => "n-way-active",
            Redundancy::NoRedundancy => "no-redundancy",
        }
    }

    /// The most active assignments one SI may have at any moment under this model, given the
    /// SI's preferred number (`active_assignments`, N-way active only).
    pub fn max_actives_per_si(&self, active_assignments: Option<u32>) -> u32 {
        match self {
            Redundancy::NWayActive { active_sus, .. } => active_assignments.unwrap_or(*active_sus),
            _ => 1,
        }
    }

    /// The most standby assignments one SI may have (0 for N-way active and no redundancy).
    pub fn max_standbys_per_si(&self) -> u32 {
        match self {
            Redundancy::TwoN | Redundancy::NPlusM { .. } => 1,
            Redundancy::NWayActive { .. } | Redundancy::NoRedundancy => 0,
        }
    }
}

/// The escalation counters of an SG: how many restarts, within which window, before the AMF
/// does more (`saAmfSGCompRestartProb/Max`, `saAmfSGSuRestartProb/Max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Escalation {
    /// Component restarts allowed within `comp_restart_probation_ms`, then an SU restart;
    /// default [`DEFAULT_COMP_RESTART_MAX`]. 0: the first failure restarts the SU.
    pub comp_restart_max: u32,
    /// The component restart window, ms; default [`DEFAULT_COMP_RESTART_PROBATION_MS`].
    pub comp_restart_probation_ms: u64,
    /// SU restarts allowed within `su_restart_probation_ms`, then an SU failover; default
    /// [`DEFAULT_SU_RESTART_MAX`]. 0: the first SU restart fails over instead.
    pub su_restart_max: u32,
    /// The SU restart window, ms; default [`DEFAULT_SU_RESTART_PROBATION_MS`].
    pub su_restart_probation_ms: u64,
}

impl Default for Escalation {
    fn default() -> Escalation {
        Escalation {
            comp_restart_max: DEFAULT_COMP_RESTART_MAX,
            comp_restart_probation_ms: DEFAULT_COMP_RESTART_PROBATION_MS,
            su_restart_max: DEFAULT_SU_RESTART_MAX,
            su_restart_probation_ms: DEFAULT_SU_RESTART_PROBATION_MS,
        }
    }
}

/// A service group: SUs that protect the same SIs under one redundancy model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceGroup {
    /// The SG's name.
    pub name: String,
    /// The redundancy model and its parameters.
    pub redundancy: Redundancy,
    /// How many SUs are kept instantiated (in service), taking assignments or spare
    /// (`saAmfSGNumPrefInserviceSUs`); `None`: all of them (the default).
    pub in_service_sus: Option<u32>,
    /// Auto-adjust (failback): when a better-ranked SU comes back, move the assignments back
    /// to it after `auto_adjust_probation_ms`. Default `false`: assignments stay where they are.
    pub auto_adjust: bool,
    /// The auto-adjust probation, ms; default [`DEFAULT_AUTO_ADJUST_PROBATION_MS`].
    pub auto_adjust_probation_ms: u64,
    /// The escalation counters.
    pub escalation: Escalation,
    /// The SUs.
    pub sus: Vec<ServiceUnit>,
}

impl ServiceGroup {
    /// An SG with the defaults and no SU.
    pub fn new(name: &str, redundancy: Redundancy) -> ServiceGroup {
        ServiceGroup {
            name: name.to_owned(),
            redundancy,
            in_service_sus: None,
            auto_adjust: false,
            auto_adjust_probation_ms: DEFAULT_AUTO_ADJUST_PROBATION_MS,
            escalation: Escalation::default(),
            sus: Vec::new(),
        }
    }
}

/// A service unit: components on one node, the unit of redundancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUnit {
    /// The SU's name (unique in the model).
    pub name: String,
    /// The node that hosts it.
    pub node: String,
    /// Preference for assignments: lower ranks are given active assignments first, then
    /// standby ones; equal ranks go by name. Default 0.
    pub rank: u32,
    /// Its components.
    pub components: Vec<Component>,
}

/// A component of an SU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The component's name (unique in its SU).
    pub name: String,
    /// Its type ([`CompType::name`]).
    pub comp_type: String,
}

/// A service instance: a unit of workload, assigned to SUs of its SG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// The SI's name (unique in the model).
    pub name: String,
    /// The SG that protects it (of the same application).
    pub sg: String,
    /// Assignment order: lower ranks are assigned first (and kept when SUs run short); equal
    /// ranks go by name. Default 0.
    pub rank: u32,
    /// N-way active only: the preferred number of active assignments
    /// (`saAmfSIPrefActiveAssignments`); `None`: the SG's `active_sus`.
    pub active_assignments: Option<u32>,
    /// Its component service instances (one or more).
    pub csis: Vec<Csi>,
}

/// Where a CSI goes inside the SU that takes its SI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsiTarget {
    /// To the SU's component of this type (each SU of the SG must have exactly one).
    CompType(String),
    /// To the SU's component of this name (each SU of the SG must have one).
    Component(String),
}

/// A component service instance: the part of an SI one component serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csi {
    /// The CSI's name (unique in its SI).
    pub name: String,
    /// The component it goes to.
    pub target: CsiTarget,
    /// Name/value attributes passed to the component with the assignment, sorted by name.
    pub attributes: Vec<(String, String)>,
}

impl AmfModel {
    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The component type named `name`.
    pub fn comp_type(&self, name: &str) -> Option<&CompType> {
        self.comp_types.iter().find(|t| t.name == name)
    }

    /// The SA Forum distinguished name of a component:
    /// `safComp=C,safSu=U,safSg=G,safApp=A`.
    pub fn dn_of_component(app: &str, sg: &str, su: &str, comp: &str) -> String {
        format!("safComp={comp},safSu={su},safSg={sg},safApp={app}")
    }

    /// The SA Forum distinguished name of a CSI: `safCsi=C,safSi=S,safApp=A`.
    pub fn dn_of_csi(app: &str, si: &str, csi: &str) -> String {
        format!("safCsi={csi},safSi={si},safApp={app}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_names_round_trip() {
        for r in Recovery::ALL {
            assert_eq!(Recovery::from_name(r.name()), Some(r));
        }
        assert_eq!(Recovery::from_name("reboot"), None);
    }

    #[test]
    fn actives_and_standbys_per_si_follow_the_model() {
        assert_eq!(Redundancy::TwoN.max_actives_per_si(None), 1);
        assert_eq!(Redundancy::TwoN.max_standbys_per_si(), 1);
        let nway = Redundancy::NWayActive {
            active_sus: 3,
            max_active_sis_per_su: None,
        };
        assert_eq!(nway.max_actives_per_si(None), 3);
        assert_eq!(nway.max_actives_per_si(Some(2)), 2);
        assert_eq!(nway.max_standbys_per_si(), 0);
        assert_eq!(Redundancy::NoRedundancy.max_standbys_per_si(), 0);
    }

    #[test]
    fn cidr_and_interface_names() {
        assert_eq!(
            parse_cidr("10.1.2.3/24"),
            Some((std::net::Ipv4Addr::new(10, 1, 2, 3), 24))
        );
        for bad in [
            "10.1.2.3",
            "10.1.2.3/0",
            "10.1.2.3/33",
            "10.1.2/24",
            "x/24",
            "1.2.3.4/+8",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
        assert!(is_interface_name("eth0"));
        assert!(!is_interface_name(""));
        assert!(!is_interface_name("eth0; reboot"));
        assert!(!is_interface_name("sixteen-bytes-xx"));
    }

    #[test]
    fn distinguished_names_follow_the_tree() {
        assert_eq!(
            AmfModel::dn_of_component("app", "sg", "su1", "c"),
            "safComp=c,safSu=su1,safSg=sg,safApp=app"
        );
        assert_eq!(
            AmfModel::dn_of_csi("app", "si", "state"),
            "safCsi=state,safSi=si,safApp=app"
        );
    }
}
