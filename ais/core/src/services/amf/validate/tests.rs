//! One test per rule: a valid model, then the model broken in one way, and the problem that
//! must name it.

use super::*;
use crate::services::amf::model::{
    Application, Component, Csi, HealthCheck, Node, ServiceInstance, ServiceUnit,
};

/// A valid 2N model: two nodes, one type, two SUs, one SI with one CSI.
fn two_n() -> AmfModel {
    let su = |name: &str, node: &str| ServiceUnit {
        name: name.into(),
        node: node.into(),
        rank: 0,
        components: vec![Component {
            name: "counter".into(),
            comp_type: "counter".into(),
        }],
    };
    let mut sg = ServiceGroup::new("counter", Redundancy::TwoN);
    sg.sus = vec![su("su1", "a"), su("su2", "b")];
    AmfModel {
        nodes: vec![Node::new("a", 1), Node::new("b", 2)],
        comp_types: vec![CompType::new("counter", "/usr/bin/counter")],
        apps: vec![Application {
            name: "counter".into(),
            sgs: vec![sg],
            sis: vec![ServiceInstance {
                name: "counter".into(),
                sg: "counter".into(),
                rank: 0,
                active_assignments: None,
                csis: vec![Csi {
                    name: "state".into(),
                    target: CsiTarget::CompType("counter".into()),
                    attributes: vec![],
                }],
            }],
        }],
    }
}

fn sg(m: &mut AmfModel) -> &mut ServiceGroup {
    &mut m.apps[0].sgs[0]
}

fn t(m: &mut AmfModel) -> &mut CompType {
    &mut m.comp_types[0]
}

fn si(m: &mut AmfModel) -> &mut ServiceInstance {
    &mut m.apps[0].sis[0]
}

/// The only problem of `m`, which must have `severity`, be about `entity` and `field`, and
/// contain `words`.
#[track_caller]
fn only(m: &AmfModel, severity: Severity, entity: Entity, field: &str, words: &str) {
    let problems = validate(m);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert_eq!(p.severity, severity, "{p}");
    assert_eq!(p.entity, entity, "{p}");
    assert_eq!(p.field, Some(field).filter(|f| !f.is_empty()), "{p}");
    assert!(p.message.contains(words), "{p}");
}

fn errors(m: &AmfModel) -> Vec<Problem> {
    validate(m)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect()
}

fn su_entity(su: &str) -> Entity {
    Entity::Su {
        sg: "counter".into(),
        su: su.into(),
    }
}

fn csi_entity() -> Entity {
    Entity::Csi {
        si: "counter".into(),
        csi: "state".into(),
    }
}

#[test]
fn the_base_model_is_valid() {
    assert_eq!(validate(&two_n()), vec![]);
}

#[test]
fn names_must_be_simple_and_not_empty() {
    let mut m = two_n();
    m.nodes[0].name = "blade 1".into();
    sg(&mut m).sus[0].node = "blade 1".into();
    only(
        &m,
        Severity::Error,
        Entity::Node("blade 1".into()),
        "name",
        "' '",
    );
    let mut m = two_n();
    si(&mut m).csis[0].name = String::new();
    let e = Entity::Csi {
        si: "counter".into(),
        csi: String::new(),
    };
    only(&m, Severity::Error, e, "name", "must not be empty");
}

#[test]
fn duplicate_names_are_errors() {
    let mut m = two_n();
    m.nodes.push(Node::new("a", 3));
    only(
        &m,
        Severity::Error,
        Entity::Node("a".into()),
        "name",
        "more than once",
    );
    let mut m = two_n();
    sg(&mut m).sus[1].name = "su1".into();
    only(&m, Severity::Error, su_entity("su1"), "name", "SU \"su1\"");
    let mut m = two_n();
    let t = m.comp_types[0].clone();
    m.comp_types.push(t);
    only(
        &m,
        Severity::Error,
        Entity::CompType("counter".into()),
        "name",
        "more than once",
    );
    let mut m = two_n();
    let again = m.apps[0].clone();
    m.apps.push(again);
    let problems = errors(&m);
    for entity in [
        Entity::App("counter".into()),
        Entity::Sg("counter".into()),
        su_entity("su1"),
        su_entity("su2"),
        Entity::Si("counter".into()),
    ] {
        assert!(
            problems.iter().any(|p| p.entity == entity),
            "{entity}: {problems:#?}"
        );
    }
    let mut m = two_n();
    let c = sg(&mut m).sus[0].components[0].clone();
    sg(&mut m).sus[0].components.push(c);
    // The second component also gives the CSI two candidates in su1.
    let problems = errors(&m);
    assert!(problems.iter().any(|p| p.entity
        == Entity::Component {
            sg: "counter".into(),
            su: "su1".into(),
            comp: "counter".into()
        }
        && p.message.contains("more than once")));
    let mut m = two_n();
    let csi = si(&mut m).csis[0].clone();
    si(&mut m).csis.push(csi);
    only(&m, Severity::Error, csi_entity(), "name", "more than once");
}

#[test]
fn node_ids_are_not_zero_and_unique() {
    let mut m = two_n();
    m.nodes[1].nodeid = 1;
    only(
        &m,
        Severity::Error,
        Entity::Node("b".into()),
        "nodeid",
        "already node a's",
    );
    let mut m = two_n();
    m.nodes[0].nodeid = 0;
    only(
        &m,
        Severity::Error,
        Entity::Node("a".into()),
        "nodeid",
        "reserved",
    );
}

#[test]
fn zero_and_absurd_timers_are_errors() {
    let ct = Entity::CompType("counter".into());
    let mut m = two_n();
    t(&mut m).instantiate_timeout_ms = 0;
    only(
        &m,
        Severity::Error,
        ct.clone(),
        "instantiate_timeout_ms",
        "out of range",
    );
    let mut m = two_n();
    t(&mut m).terminate_timeout_ms = MAX_TIMEOUT_MS + 1;
    only(
        &m,
        Severity::Error,
        ct.clone(),
        "terminate_timeout_ms",
        "out of range",
    );
    let mut m = two_n();
    t(&mut m).cleanup_timeout_ms = 0;
    only(
        &m,
        Severity::Error,
        ct.clone(),
        "cleanup_timeout_ms",
        "out of range",
    );
    let mut m = two_n();
    t(&mut m).callback_timeout_ms = 0;
    only(
        &m,
        Severity::Error,
        ct.clone(),
        "callback_timeout_ms",
        "out of range",
    );
    let mut m = two_n();
    t(&mut m).instantiation_retries = MAX_COUNT + 1;
    only(&m, Severity::Error, ct, "instantiation_retries", "largest");
    let sge = Entity::Sg("counter".into());
    let mut m = two_n();
    sg(&mut m).escalation.comp_restart_probation_ms = 0;
    only(
        &m,
        Severity::Error,
        sge.clone(),
        "comp_restart_probation_ms",
        "out of range",
    );
    let mut m = two_n();
    sg(&mut m).escalation.su_restart_probation_ms = MAX_PROBATION_MS + 1;
    only(
        &m,
        Severity::Error,
        sge.clone(),
        "su_restart_probation_ms",
        "out of range",
    );
    let mut m = two_n();
    sg(&mut m).escalation.comp_restart_max = MAX_COUNT + 1;
    only(
        &m,
        Severity::Error,
        sge.clone(),
        "comp_restart_max",
        "largest",
    );
    let mut m = two_n();
    sg(&mut m).auto_adjust_probation_ms = 0;
    only(
        &m,
        Severity::Error,
        sge,
        "auto_adjust_probation_ms",
        "out of range",
    );
    let mut m = two_n();
    m.nodes[0].su_failover_probation_ms = 0;
    only(
        &m,
        Severity::Error,
        Entity::Node("a".into()),
        "su_failover_probation_ms",
        "out of range",
    );
    // The largest accepted values are accepted.
    let mut m = two_n();
    t(&mut m).instantiate_timeout_ms = MAX_TIMEOUT_MS;
    sg(&mut m).escalation.su_restart_probation_ms = MAX_PROBATION_MS;
    t(&mut m).instantiation_retries = MAX_COUNT;
    assert_eq!(validate(&m), vec![]);
}

#[test]
fn commands_must_not_be_blank() {
    let mut m = two_n();
    m.comp_types[0].instantiate = "  ".into();
    only(
        &m,
        Severity::Error,
        Entity::CompType("counter".into()),
        "instantiate",
        "blank",
    );
    let mut m = two_n();
    m.nodes[0].failfast = Some(String::new());
    only(
        &m,
        Severity::Error,
        Entity::Node("a".into()),
        "failfast",
        "blank",
    );
}

#[test]
fn health_checks_are_checked() {
    let he = |key: &str| Entity::HealthCheck {
        comp_type: "counter".into(),
        key: key.into(),
    };
    let mut m = two_n();
    let mut h = HealthCheck::new("k");
    h.period_ms = 0;
    m.comp_types[0].health_checks = vec![h];
    // Zero period: out of range, and the max duration is longer than it.
    let problems = validate(&m);
    assert!(problems.iter().any(|p| p.field == Some("period_ms")
        && p.severity == Severity::Error
        && p.entity == he("k")));
    let mut m = two_n();
    let mut h = HealthCheck::new("k");
    h.max_duration_ms = 2_000;
    m.comp_types[0].health_checks = vec![h];
    only(
        &m,
        Severity::Warning,
        he("k"),
        "max_duration_ms",
        "longer than the period",
    );
    let mut m = two_n();
    m.comp_types[0].health_checks = vec![HealthCheck::new(&"x".repeat(33))];
    only(
        &m,
        Severity::Error,
        he(&"x".repeat(33)),
        "key",
        "1..=32 bytes",
    );
    let mut m = two_n();
    m.comp_types[0].health_checks = vec![HealthCheck::new("k"), HealthCheck::new("k")];
    only(&m, Severity::Error, he("k"), "key", "more than once");
}

#[test]
fn a_component_that_is_not_sa_aware_needs_terminate_and_no_amf_invoked_check() {
    let mut m = two_n();
    m.comp_types[0].sa_aware = false;
    only(
        &m,
        Severity::Error,
        Entity::CompType("counter".into()),
        "terminate",
        "not SA-aware",
    );
    m.comp_types[0].terminate = Some("kill $(cat /run/counter.pid)".into());
    assert_eq!(validate(&m), vec![]);
    m.comp_types[0].health_checks = vec![HealthCheck::new("k")];
    let he = Entity::HealthCheck {
        comp_type: "counter".into(),
        key: "k".into(),
    };
    only(&m, Severity::Error, he, "invoker", "SA-aware");
    m.comp_types[0].health_checks[0].invoker = HealthCheckInvoker::Component;
    assert_eq!(validate(&m), vec![]);
}

#[test]
fn an_su_on_an_undeclared_node_is_an_error() {
    let mut m = two_n();
    sg(&mut m).sus[1].node = "c".into();
    only(
        &m,
        Severity::Error,
        su_entity("su2"),
        "node",
        "\"c\" is not declared",
    );
}

#[test]
fn a_component_of_an_undeclared_type_is_an_error() {
    let mut m = two_n();
    sg(&mut m).sus[1].components[0].comp_type = "other".into();
    let problems = errors(&m);
    assert!(problems.iter().any(|p| p.entity
        == Entity::Component {
            sg: "counter".into(),
            su: "su2".into(),
            comp: "counter".into()
        }
        && p.field == Some("type")
        && p.message.contains("\"other\" is not declared")));
    // And su2 can no longer take the CSI.
    assert!(
        problems
            .iter()
            .any(|p| p.entity == csi_entity() && p.message.contains("SU su2"))
    );
}

#[test]
fn node_failfast_needs_a_failfast_command() {
    let mut m = two_n();
    m.comp_types[0].recovery = Recovery::NodeFailfast;
    m.nodes[0].failfast = Some("echo b > /proc/sysrq-trigger".into());
    let comp = Entity::Component {
        sg: "counter".into(),
        su: "su2".into(),
        comp: "counter".into(),
    };
    only(
        &m,
        Severity::Error,
        comp.clone(),
        "type",
        "node b has no failfast command",
    );
    // Through a health check's recovery too.
    let mut m = two_n();
    let mut h = HealthCheck::new("k");
    h.recovery = Some(Recovery::NodeFailfast);
    m.comp_types[0].health_checks = vec![h];
    m.nodes[0].failfast = Some("true".into());
    only(&m, Severity::Error, comp, "type", "node b");
    m.nodes[1].failfast = Some("true".into());
    assert_eq!(validate(&m), vec![]);
}

#[test]
fn an_sg_needs_sus_and_an_su_needs_components() {
    let mut m = two_n();
    sg(&mut m).sus.clear();
    only(
        &m,
        Severity::Error,
        Entity::Sg("counter".into()),
        "su",
        "at least one SU",
    );
    let mut m = two_n();
    sg(&mut m).sus[0].components.clear();
    let problems = errors(&m);
    assert!(
        problems
            .iter()
            .any(|p| p.entity == su_entity("su1") && p.field == Some("components"))
    );
}

#[test]
fn two_n_with_one_su_is_a_warning() {
    let mut m = two_n();
    sg(&mut m).sus.pop();
    only(
        &m,
        Severity::Warning,
        Entity::Sg("counter".into()),
        "su",
        "no standby",
    );
}

#[test]
fn n_plus_m_parameters_are_checked() {
    let npm = |n, m_, sus: usize| {
        let mut m = two_n();
        sg(&mut m).redundancy = Redundancy::NPlusM {
            active_sus: n,
            standby_sus: m_,
            max_active_sis_per_su: None,
            max_standby_sis_per_su: None,
        };
        let proto = sg(&mut m).sus[0].clone();
        let nodes: Vec<String> = m.nodes.iter().map(|n| n.name.clone()).collect();
        sg(&mut m).sus = (0..sus)
            .map(|i| ServiceUnit {
                name: format!("su{i}"),
                node: nodes[i % nodes.len()].clone(),
                ..proto.clone()
            })
            .collect();
        m
    };
    assert_eq!(validate(&npm(2, 1, 3)), vec![]);
    let sge = Entity::Sg("counter".into());
    only(
        &npm(0, 1, 3),
        Severity::Error,
        sge.clone(),
        "active_sus",
        "N (active_sus)",
    );
    only(
        &npm(2, 0, 3),
        Severity::Error,
        sge.clone(),
        "standby_sus",
        "M (standby_sus)",
    );
    only(
        &npm(3, 1, 3),
        Severity::Warning,
        sge.clone(),
        "su",
        "fewer than N+M",
    );
    let mut m = npm(2, 1, 3);
    sg(&mut m).redundancy = Redundancy::NPlusM {
        active_sus: 2,
        standby_sus: 1,
        max_active_sis_per_su: Some(0),
        max_standby_sis_per_su: None,
    };
    only(
        &m,
        Severity::Error,
        sge,
        "max_active_sis_per_su",
        "1 or more",
    );
}

#[test]
fn n_way_active_parameters_are_checked() {
    let mut m = two_n();
    let nway = |n| Redundancy::NWayActive {
        active_sus: n,
        max_active_sis_per_su: None,
    };
    sg(&mut m).redundancy = nway(2);
    si(&mut m).active_assignments = Some(2);
    assert_eq!(validate(&m), vec![]);
    si(&mut m).active_assignments = Some(3);
    only(
        &m,
        Severity::Error,
        Entity::Si("counter".into()),
        "active_assignments",
        "out of range 1..=2",
    );
    si(&mut m).active_assignments = None;
    sg(&mut m).redundancy = nway(0);
    only(
        &m,
        Severity::Error,
        Entity::Sg("counter".into()),
        "active_sus",
        "1 or more",
    );
    sg(&mut m).redundancy = nway(3);
    only(
        &m,
        Severity::Warning,
        Entity::Sg("counter".into()),
        "su",
        "fewer than active_sus",
    );
}

#[test]
fn active_assignments_are_for_n_way_active_only() {
    let mut m = two_n();
    si(&mut m).active_assignments = Some(1);
    only(
        &m,
        Severity::Error,
        Entity::Si("counter".into()),
        "active_assignments",
        "is 2n",
    );
}

#[test]
fn no_redundancy_with_more_sis_than_sus_is_a_warning() {
    let mut m = two_n();
    sg(&mut m).redundancy = Redundancy::NoRedundancy;
    let base = si(&mut m).clone();
    assert_eq!(validate(&m), vec![]);
    for name in ["b", "c"] {
        m.apps[0].sis.push(ServiceInstance {
            name: name.into(),
            ..base.clone()
        });
    }
    only(
        &m,
        Severity::Warning,
        Entity::Sg("counter".into()),
        "su",
        "3 SIs for 2 SUs",
    );
}

#[test]
fn in_service_sus_is_checked() {
    let mut m = two_n();
    sg(&mut m).in_service_sus = Some(3);
    only(
        &m,
        Severity::Error,
        Entity::Sg("counter".into()),
        "in_service_sus",
        "1..=2",
    );
    sg(&mut m).in_service_sus = Some(0);
    only(
        &m,
        Severity::Error,
        Entity::Sg("counter".into()),
        "in_service_sus",
        "1..=2",
    );
    sg(&mut m).in_service_sus = Some(1);
    only(
        &m,
        Severity::Warning,
        Entity::Sg("counter".into()),
        "in_service_sus",
        "fewer than the 2 that 2n needs",
    );
    sg(&mut m).in_service_sus = Some(2);
    assert_eq!(validate(&m), vec![]);
}

#[test]
fn an_si_names_a_declared_sg_of_its_application() {
    let mut m = two_n();
    si(&mut m).sg = "nope".into();
    let problems = validate(&m);
    assert!(
        problems
            .iter()
            .any(|p| p.entity == Entity::Si("counter".into())
                && p.field == Some("sg")
                && p.message.contains("\"nope\" is not declared"))
    );
    // Another application's SG.
    let mut m = two_n();
    let mut other = m.apps[0].clone();
    other.name = "other".into();
    other.sis.clear();
    other.sgs[0].name = "other-sg".into();
    for su in &mut other.sgs[0].sus {
        su.name = format!("other-{}", su.name);
    }
    m.apps.push(other);
    si(&mut m).sg = "other-sg".into();
    let problems = errors(&m);
    assert!(
        problems
            .iter()
            .any(|p| p.entity == Entity::Si("counter".into())
                && p.message.contains("belongs to application other"))
    );
}

#[test]
fn an_sg_without_si_is_a_warning_and_an_si_without_csi_an_error() {
    let mut m = two_n();
    m.apps[0].sis.clear();
    only(
        &m,
        Severity::Warning,
        Entity::Sg("counter".into()),
        "",
        "no SI",
    );
    let mut m = two_n();
    si(&mut m).csis.clear();
    only(
        &m,
        Severity::Error,
        Entity::Si("counter".into()),
        "csi",
        "at least one CSI",
    );
}

#[test]
fn a_csi_names_a_declared_type_that_every_su_has_once() {
    let mut m = two_n();
    si(&mut m).csis[0].target = CsiTarget::CompType("missing".into());
    only(
        &m,
        Severity::Error,
        csi_entity(),
        "comp_type",
        "\"missing\" is not declared",
    );
    let mut m = two_n();
    m.comp_types.push(CompType::new("other", "/bin/other"));
    sg(&mut m).sus[1].components[0].comp_type = "other".into();
    only(
        &m,
        Severity::Error,
        csi_entity(),
        "comp_type",
        "SU su2 of SG counter has 0",
    );
    let mut m = two_n();
    sg(&mut m).sus[0].components.push(Component {
        name: "second".into(),
        comp_type: "counter".into(),
    });
    only(
        &m,
        Severity::Error,
        csi_entity(),
        "comp_type",
        "SU su1 of SG counter has 2",
    );
}

#[test]
fn a_csi_named_for_a_component_needs_it_in_every_su() {
    let mut m = two_n();
    si(&mut m).csis[0].target = CsiTarget::Component("counter".into());
    assert_eq!(validate(&m), vec![]);
    sg(&mut m).sus[0].components[0].name = "renamed".into();
    only(
        &m,
        Severity::Error,
        csi_entity(),
        "component",
        "SU su1 of SG counter has 0",
    );
}

#[test]
fn an_empty_attribute_name_is_an_error() {
    let mut m = two_n();
    si(&mut m).csis[0].attributes = vec![(String::new(), "x".into())];
    only(
        &m,
        Severity::Error,
        csi_entity(),
        "attributes",
        "must not be empty",
    );
}

#[test]
fn every_problem_is_displayed_with_its_entity() {
    let mut m = two_n();
    sg(&mut m).sus[1].node = "c".into();
    let p = &validate(&m)[0];
    assert_eq!(
        p.to_string(),
        "error: SU su2 of SG counter, node: node \"c\" is not declared"
    );
}

#[test]
fn every_entity_names_itself_and_its_parents() {
    let s = |x: &str| x.to_owned();
    for (entity, text) in [
        (Entity::Node(s("a")), "node a"),
        (Entity::CompType(s("c")), "component type c"),
        (
            Entity::HealthCheck {
                comp_type: s("c"),
                key: s("k"),
            },
            "health check k of component type c",
        ),
        (Entity::App(s("p")), "application p"),
        (Entity::Sg(s("g")), "SG g"),
        (
            Entity::Su {
                sg: s("g"),
                su: s("u"),
            },
            "SU u of SG g",
        ),
        (
            Entity::Component {
                sg: s("g"),
                su: s("u"),
                comp: s("c"),
            },
            "component c of SU u of SG g",
        ),
        (Entity::Si(s("i")), "SI i"),
        (
            Entity::Csi {
                si: s("i"),
                csi: s("x"),
            },
            "CSI x of SI i",
        ),
    ] {
        assert_eq!(entity.to_string(), text);
    }
    let mut m = two_n();
    sg(&mut m).sus.pop();
    assert_eq!(
        validate(&m)[0].to_string(),
        "warning: SG counter, su: 2N with one SU has no standby: a failure stops the service \
         until the SU is repaired"
    );
}

/// The base model with its type made a built-in `ip-address` and its CSI an address.
fn with_vip() -> AmfModel {
    let mut m = two_n();
    m.comp_types[0] = CompType::builtin("counter", Builtin::IpAddress);
    si(&mut m).csis[0].attributes = vec![
        ("address".into(), "10.0.0.100/24".into()),
        ("interface".into(), "eth0".into()),
    ];
    m
}

#[test]
fn a_builtin_ip_address_type_is_valid_without_commands() {
    let m = with_vip();
    assert_eq!(validate(&m), vec![]);
    let mut m = with_vip();
    si(&mut m).csis[0]
        .attributes
        .push(("announcements".into(), "3".into()));
    assert_eq!(validate(&m), vec![]);
}

#[test]
fn a_builtin_type_runs_no_command_and_is_not_sa_aware() {
    let ct = || Entity::CompType("counter".into());
    for (field, words, f) in [
        (
            "instantiate",
            "no instantiate command",
            (|t: &mut CompType| t.instantiate = "/bin/x".into()) as fn(&mut CompType),
        ),
        ("terminate", "no terminate command", |t| {
            t.terminate = Some("x".into())
        }),
        ("cleanup", "no cleanup command", |t| {
            t.cleanup = Some("x".into())
        }),
        ("user", "run as a user", |t| t.user = Some("nobody".into())),
        ("sa_aware", "not SA-aware", |t| t.sa_aware = true),
    ] {
        let mut m = with_vip();
        f(t(&mut m));
        only(&m, Severity::Error, ct(), field, words);
    }
    let mut m = with_vip();
    t(&mut m).health_checks.push(HealthCheck::new("k"));
    let problems = errors(&m);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].message.contains("no health checks"),
        "{problems:#?}"
    );
}

#[test]
fn an_ip_address_csi_needs_an_address_and_an_interface() {
    let set = |attrs: &[(&str, &str)]| {
        let mut m = with_vip();
        si(&mut m).csis[0].attributes = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m
    };
    only(
        &set(&[("interface", "eth0")]),
        Severity::Error,
        csi_entity(),
        "attributes",
        "needs attributes.address",
    );
    only(
        &set(&[("address", "10.0.0.1/24")]),
        Severity::Error,
        csi_entity(),
        "attributes",
        "needs attributes.interface",
    );
    only(
        &set(&[("address", "10.0.0.1"), ("interface", "eth0")]),
        Severity::Error,
        csi_entity(),
        "attributes.address",
        "prefix 1..=32",
    );
    only(
        &set(&[("address", "10.0.0.1/24"), ("interface", "eth0; reboot")]),
        Severity::Error,
        csi_entity(),
        "attributes.interface",
        "not an interface name",
    );
    only(
        &set(&[
            ("address", "10.0.0.1/24"),
            ("interface", "eth0"),
            ("announcements", "0"),
        ]),
        Severity::Error,
        csi_entity(),
        "attributes.announcements",
        "1..=10",
    );
    only(
        &set(&[
            ("address", "10.0.0.1/24"),
            ("interface", "eth0"),
            ("port", "80"),
        ]),
        Severity::Error,
        csi_entity(),
        "attributes",
        "\"port\" is not an attribute",
    );
    // The same CSI for a type that is not built in takes any attribute.
    let mut m = two_n();
    si(&mut m).csis[0].attributes = vec![("port".into(), "80".into())];
    assert_eq!(validate(&m), vec![]);
}

#[test]
fn a_user_is_a_plain_name() {
    let mut m = two_n();
    t(&mut m).user = Some("nobody".into());
    assert_eq!(validate(&m), vec![]);
    t(&mut m).group = Some("a:b".into());
    only(
        &m,
        Severity::Error,
        Entity::CompType("counter".into()),
        "group",
        "not a group name",
    );
    t(&mut m).group = Some("nogroup".into());
    assert_eq!(validate(&m), vec![]);
    t(&mut m).user = Some("a b".into());
    only(
        &m,
        Severity::Error,
        Entity::CompType("counter".into()),
        "user",
        "not a user name",
    );
}
