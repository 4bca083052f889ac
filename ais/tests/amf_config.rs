//! The AMF model files: every example in `configs/amf/` parses and validates, the minimal 2N
//! one stays a dozen lines, and broken models give every error with its file, line and key.

use std::path::{Path, PathBuf};

use ais::config::Config;
use ais::config::amf::{AmfConfig, AmfError};
use ais_core::services::amf::model::{
    self as m, CsiTarget, HealthCheckInvoker, PassiveMonitoring, Recovery, Redundancy,
};

fn amf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/amf")
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(amf_dir())
        .expect("configs/amf/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(name: &str) -> AmfConfig {
    AmfConfig::from_file(&amf_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_example_parses_and_validates_without_warning() {
    let files = examples();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "full.toml",
        "minimal-2n.toml",
        "n-plus-m.toml",
        "n-way-active.toml",
        "no-redundancy.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    for file in &files {
        let config = AmfConfig::from_file(file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            config.warnings.is_empty(),
            "{}: {:?}",
            file.display(),
            config.warnings
        );
        assert!(!config.model.apps.is_empty(), "{}", file.display());
    }
}

#[test]
fn the_minimal_2n_example_is_a_dozen_lines_and_gets_the_defaults() {
    let text = std::fs::read_to_string(amf_dir().join("minimal-2n.toml")).unwrap();
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    assert!(lines <= 13, "{lines} lines");
    let model = load("minimal-2n.toml").model;
    assert_eq!(model.nodes.len(), 2);
    assert_eq!(model.nodes[1].nodeid, 2);
    assert_eq!(model.nodes[0].failfast, None);
    assert_eq!(model.nodes[0].su_failover_max, m::DEFAULT_SU_FAILOVER_MAX);
    let t = &model.comp_types[0];
    assert_eq!(t.instantiate, "/usr/libexec/counter-server");
    assert!(t.sa_aware);
    assert_eq!(t.instantiate_timeout_ms, m::DEFAULT_CLC_TIMEOUT_MS);
    assert_eq!(t.instantiation_retries, m::DEFAULT_INSTANTIATION_RETRIES);
    assert_eq!(t.recovery, Recovery::ComponentRestart);
    assert_eq!(t.passive_monitoring, PassiveMonitoring::Process);
    assert!(t.health_checks.is_empty());
    let app = &model.apps[0];
    assert_eq!(app.name, "counter");
    let sg = &app.sgs[0];
    assert_eq!(sg.redundancy, Redundancy::TwoN);
    assert_eq!(sg.escalation, m::Escalation::default());
    assert_eq!(sg.in_service_sus, None);
    assert!(!sg.auto_adjust);
    let sus: Vec<(&str, &str, usize)> = sg
        .sus
        .iter()
        .map(|u| (u.name.as_str(), u.node.as_str(), u.components.len()))
        .collect();
    assert_eq!(
        sus,
        [("counter-1", "blade1", 1), ("counter-2", "blade2", 1)]
    );
    assert_eq!(sg.sus[0].components[0].comp_type, "counter");
    assert_eq!(
        app.sis[0].csis[0].target,
        CsiTarget::CompType("counter".into())
    );
}

#[test]
fn the_examples_carry_their_redundancy_parameters() {
    let npm = load("n-plus-m.toml").model;
    let sg = &npm.apps[0].sgs[0];
    assert_eq!(
        sg.redundancy,
        Redundancy::NPlusM {
            active_sus: 3,
            standby_sus: 1,
            max_active_sis_per_su: Some(2),
            max_standby_sis_per_su: None,
        }
    );
    assert_eq!(npm.apps[0].sis.len(), 6);
    assert_eq!(sg.sus.iter().find(|u| u.name == "s4").unwrap().rank, 1);
    assert_eq!(
        npm.apps[0].sis[2].csis[0].attributes,
        [("shard".to_owned(), "2".to_owned())]
    );
    let hc = &npm.comp_types[0].health_checks[0];
    assert_eq!(
        (hc.key.as_str(), hc.period_ms, hc.max_duration_ms),
        ("alive", 500, 200)
    );

    let nway = load("n-way-active.toml").model;
    assert_eq!(
        nway.apps[0].sgs[0].redundancy,
        Redundancy::NWayActive {
            active_sus: 3,
            max_active_sis_per_su: None
        }
    );
    assert_eq!(nway.apps[0].sis[0].active_assignments, Some(3));
    assert_eq!(
        nway.comp_types[0].health_checks[0].invoker,
        HealthCheckInvoker::Component
    );

    let nored = load("no-redundancy.toml").model;
    assert_eq!(nored.apps[0].sgs[0].redundancy, Redundancy::NoRedundancy);
    assert!(!nored.comp_types[0].sa_aware);
}

#[test]
fn the_full_example_sets_every_field() {
    let model = load("full.toml").model;
    let n = model.node("blade1").unwrap();
    assert_eq!(n.failfast.as_deref(), Some("echo b > /proc/sysrq-trigger"));
    let db = model.comp_type("db").unwrap();
    assert_eq!(db.cleanup.as_deref(), Some("pkill -KILL -x db-server"));
    assert_eq!(db.health_checks[0].recovery, Some(Recovery::SuFailover));
    assert_eq!(model.comp_type("db-backup").unwrap().instantiation_level, 2);
    assert_eq!(
        model.comp_type("db-backup").unwrap().user.as_deref(),
        Some("nobody")
    );
    assert_eq!(
        model.comp_type("vip").unwrap().builtin,
        Some(m::Builtin::IpAddress)
    );
    assert_eq!(model.apps.len(), 1);
    assert_eq!(model.apps[0].name, "billing");
    let sg = &model.apps[0].sgs[0];
    assert_eq!(sg.in_service_sus, Some(2));
    assert_eq!(sg.sus[1].rank, 1);
    assert_eq!(sg.sus[0].components.len(), 2);
    let csis = &model.apps[0].sis[0].csis;
    assert_eq!(csis[0].name, "backup");
    assert_eq!(csis[0].target, CsiTarget::Component("db-backup".into()));
    assert_eq!(
        csis[1].attributes,
        [
            ("mode".to_owned(), "rw".to_owned()),
            ("path".to_owned(), "/var/lib/db/accounts".to_owned())
        ]
    );
}

const GOOD: &str = r#"[node]
a = { nodeid = 1 }
b = { nodeid = 2 }

[comp_type.c]
instantiate = "/bin/c"

[sg.g]
redundancy = "2n"
components = ["c"]
su.u1 = { node = "a" }
su.u2 = { node = "b" }

[si.s]
sg = "g"
csi.x = { comp_type = "c" }
"#;

/// The errors of `text` (which must be refused as invalid), displayed.
fn invalid(text: &str) -> Vec<String> {
    match AmfConfig::from_str(text, "amf.toml") {
        Err(AmfError::Invalid { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
        other => panic!("not refused as invalid: {other:?}"),
    }
}

#[test]
fn the_test_model_is_good() {
    let config = AmfConfig::from_str(GOOD, "amf.toml").unwrap();
    assert!(config.warnings.is_empty());
}

#[test]
fn every_error_is_reported_with_its_line_and_key() {
    let text = GOOD
        .replace("su.u2 = { node = \"b\" }", "su.u2 = { node = \"z\" }")
        .replace(
            "csi.x = { comp_type = \"c\" }",
            "csi.x = { comp_type = \"d\" }",
        )
        .replace("b = { nodeid = 2 }", "b = { nodeid = 1 }");
    assert_eq!(
        invalid(&text),
        [
            "amf.toml:3:1: node.b.nodeid: node id 1 is already node a's",
            "amf.toml:12:1: sg.g.su.u2.node: node \"z\" is not declared",
            "amf.toml:16:1: si.s.csi.x.comp_type: component type \"d\" is not declared",
        ]
    );
}

#[test]
fn timers_counts_and_names_are_located() {
    let text = GOOD.replace(
        "instantiate = \"/bin/c\"",
        "instantiate = \"/bin/c\"\ncleanup_timeout_ms = 0\n[comp_type.c.health_check.k]\nperiod_ms = 700000",
    );
    assert_eq!(
        invalid(&text),
        [
            "amf.toml:7:1: comp_type.c.cleanup_timeout_ms: 0 ms is out of range 1..=600000 ms",
            "amf.toml:9:1: comp_type.c.health_check.k.period_ms: 700000 ms is out of range \
             1..=600000 ms",
        ]
    );
    let text = GOOD
        .replace("[sg.g]", "[sg.\"g g\"]")
        .replace("sg = \"g\"", "sg = \"g g\"");
    assert_eq!(
        invalid(&text)[0],
        "amf.toml:8:1: sg.g g: \"g g\": ' ' is not allowed in a name (letters, digits, '-', '_', '.')"
    );
}

#[test]
fn redundancy_mistakes_are_located() {
    let text = GOOD.replace(
        "redundancy = \"2n\"",
        "redundancy = \"2n\"\nstandby_sus = 1",
    );
    assert_eq!(
        invalid(&text),
        ["amf.toml:10:1: sg.g.standby_sus: standby_sus does not apply to redundancy = \"2n\""]
    );
    let text = GOOD.replace(
        "redundancy = \"2n\"",
        "redundancy = \"n+m\"\nactive_sus = 1",
    );
    assert_eq!(
        invalid(&text),
        [
            "amf.toml:8:1: sg.g.standby_sus: redundancy = \"n+m\" needs standby_sus (N = active_sus, M = standby_sus)"
        ]
    );
    let text = GOOD.replace(
        "csi.x = { comp_type = \"c\" }",
        "active_assignments = 2\ncsi.x = { comp_type = \"c\" }",
    );
    assert_eq!(
        invalid(&text),
        [
            "amf.toml:16:1: si.s.active_assignments: active_assignments is for n-way-active; SG g is 2n (one active per SI)"
        ]
    );
}

#[test]
fn csi_and_component_mistakes_are_located() {
    let text = GOOD.replace("csi.x = { comp_type = \"c\" }", "csi.x = { }");
    assert_eq!(
        invalid(&text),
        [
            "amf.toml:16:1: si.s.csi.x: a CSI names exactly one of comp_type (the type of the \
          component it goes to) and component (its name), not neither"
        ]
    );
    let text = GOOD.replace("components = [\"c\"]\n", "");
    let errors = invalid(&text);
    assert!(
        errors[0].starts_with("amf.toml:10:1: sg.g.su.u1.components: SU u1 has no components"),
        "{errors:?}"
    );
    let text = GOOD.replace("components = [\"c\"]", "components = [\"nope\"]");
    let errors = invalid(&text);
    assert!(
        errors.contains(
            &"amf.toml:10:1: sg.g.components: component type \"nope\" is not declared".to_owned()
        ),
        "{errors:?}"
    );
}

#[test]
fn warnings_do_not_refuse_a_model() {
    let text = GOOD.replace("su.u2 = { node = \"b\" }\n", "");
    let config = AmfConfig::from_str(&text, "amf.toml").unwrap();
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("amf.toml:8:1: sg.g.su: 2N with one SU has no standby"),
        "{warnings:?}"
    );
}

#[test]
fn syntax_mistakes_are_located() {
    for (text, expected) in [
        (
            GOOD.replace("redundancy = \"2n\"", "redundancy = \"3n\""),
            "amf.toml:9:14: sg.g.redundancy: unknown variant `3n`",
        ),
        (
            GOOD.replace(
                "instantiate = \"/bin/c\"",
                "instantiate = \"/bin/c\"\nrestarts = 1",
            ),
            "amf.toml:7:1: comp_type.c.restarts: unknown field `restarts`",
        ),
    ] {
        match AmfConfig::from_str(&text, "amf.toml") {
            Err(e @ AmfError::Syntax(_)) => {
                assert!(e.to_string().starts_with(expected), "{e}")
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
    // `instantiate` is required unless the type is built in: the file's own rule, located at
    // the type's table, and the only error.
    let text = GOOD.replace("instantiate = \"/bin/c\"", "cleanup = \"x\"");
    match AmfConfig::from_str(&text, "amf.toml") {
        Err(e @ AmfError::Invalid { .. }) => {
            let errors = e.errors();
            assert_eq!(errors.len(), 1, "{e}");
            assert!(
                e.to_string()
                    .starts_with("amf.toml:5:1: comp_type.c: missing field `instantiate`"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_executive_configuration_names_the_model_file() {
    let base = "[totem]\nnodeid = 1\ntransport = \"udpu\"\n\n[[nodelist.node]]\nnodeid = 1\nring0_addr = \"10.0.0.1\"\n";
    let config = Config::from_str(base, "aisexec.toml").unwrap();
    assert_eq!(config.amf, None);
    let model = amf_dir().join("minimal-2n.toml");
    let text = format!("{base}\n[amf]\nmodel = {:?}\n", model.display().to_string());
    let config = Config::from_str(&text, "aisexec.toml").unwrap();
    let amf = config.amf.expect("[amf] is read");
    assert_eq!(amf.model, model);
    assert_eq!(
        AmfConfig::from_file(&amf.model).unwrap(),
        load("minimal-2n.toml")
    );
    let e =
        Config::from_str(&format!("{base}\n[amf]\nmodel = \"\"\n"), "aisexec.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "aisexec.toml:10:1: amf.model: must not be empty (the AMF model file)"
    );
}

#[test]
fn every_line_of_the_full_example_removed_gives_located_problems_or_a_valid_model() {
    let text = std::fs::read_to_string(amf_dir().join("full.toml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut refused = 0;
    for skip in 0..lines.len() {
        let cut: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        match AmfConfig::from_str(&cut.join("\n"), "cut.toml") {
            Ok(config) => {
                for w in &config.warnings {
                    assert!(
                        w.line.is_some() && w.key.is_some(),
                        "line {}: {w}",
                        skip + 1
                    );
                }
            }
            Err(e) => {
                refused += 1;
                let errors = e.errors();
                assert!(!errors.is_empty(), "line {}: {e}", skip + 1);
                for l in errors {
                    assert!(
                        l.line.is_some() && l.key.is_some(),
                        "line {}: {l}",
                        skip + 1
                    );
                }
            }
        }
    }
    // Required keys and the tables that others refer to cannot go.
    assert!(refused >= 5, "only {refused} cuts refused");
}

#[test]
fn seeded_random_edits_of_the_full_example_never_panic_and_model_errors_are_located() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let text = std::fs::read_to_string(amf_dir().join("full.toml")).unwrap();
    let mut rng = StdRng::seed_from_u64(18);
    let alphabet: Vec<char> = "abz019 ._-=\"[]{},#\n".chars().collect();
    let mut invalid = 0;
    for _ in 0..1000 {
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..chars.len());
            match rng.random_range(0..3) {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                _ => chars[at] = alphabet[rng.random_range(0..alphabet.len())],
            }
        }
        let edited: String = chars.into_iter().collect();
        if let Err(AmfError::Invalid { errors, .. }) = AmfConfig::from_str(&edited, "edit.toml") {
            invalid += 1;
            for e in &errors {
                assert!(e.line.is_some() && e.key.is_some(), "{e}\n{edited}");
            }
        }
    }
    // Some edits must reach validation (e.g. a changed node name or a zeroed timer).
    assert!(invalid > 0);
}

#[test]
fn the_fence_delay_defaults_above_the_contact_lease_and_a_shorter_one_is_refused() {
    let base = "[totem]\nnodeid = 1\ntransport = \"udpu\"\ntoken = 300\njoin = 60\n\n[[nodelist.node]]\nnodeid = 1\nring0_addr = \"10.0.0.1\"\n\n[[nodelist.node]]\nnodeid = 2\nring0_addr = \"10.0.0.2\"\n\n[quorum]\ntwo_node = true\n";
    let model = amf_dir().join("minimal-2n.toml");
    let amf = format!("\n[amf]\nmodel = {:?}\n", model.display().to_string());
    // Default: the lease (1.5 × join = 90 ms) + token / 8 (37 ms).
    let config = Config::from_str(&format!("{base}{amf}"), "aisexec.toml").unwrap();
    let cfg = config.amf_core_config().expect("[amf] is set");
    assert_eq!(cfg.lease_ms, 90);
    assert_eq!(cfg.fence_ms, 127);
    assert!(cfg.two_node, "quorum's two_node is carried over");
    // An explicit value above the lease is kept.
    let config = Config::from_str(&format!("{base}{amf}fence_ms = 91\n"), "aisexec.toml").unwrap();
    assert_eq!(config.amf_core_config().unwrap().fence_ms, 91);
    // One at or below it is refused, located at its line.
    let e = Config::from_str(&format!("{base}{amf}fence_ms = 90\n"), "aisexec.toml").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("aisexec.toml:20:1: amf.fence_ms: 90 ms is too short"),
        "{msg}"
    );
    // The tuned timers (token 20, join 5): the lease (7 ms) + the least margin (2 ms), since
    // token / 8 is less.
    let tuned = base.replace("token = 300\njoin = 60", "token = 20\njoin = 5");
    let config = Config::from_str(&format!("{tuned}{amf}"), "aisexec.toml").unwrap();
    let cfg = config.amf_core_config().unwrap();
    assert_eq!((cfg.lease_ms, cfg.fence_ms), (7, 9));
    // Without [amf] there is no AMF service.
    assert_eq!(
        Config::from_str(base, "aisexec.toml")
            .unwrap()
            .amf_core_config(),
        None
    );
}

/// The example service's model: 2N over two blades, a failure hands the SI over, and the CSI
/// carries the two attributes the service reads.
#[test]
fn the_example_service_model_gives_its_csi_listen_and_checkpoint() {
    let model = load("counter-2n.toml").model;
    let ct = model.comp_type("counter").expect("comp type counter");
    assert!(ct.sa_aware, "the counter registers with the AMF");
    assert!(
        ct.instantiate.contains("amf-counter --socket "),
        "{}",
        ct.instantiate
    );
    assert_eq!(
        ct.recovery,
        ais_core::services::amf::model::Recovery::SuFailover
    );
    let csi = &model.apps[0].sis[0].csis[0];
    assert_eq!(
        csi.attributes,
        [
            ("checkpoint".to_string(), "counter-state".to_string()),
            ("listen".to_string(), "0.0.0.0:7400".to_string()),
        ]
    );
    assert_eq!(
        (amf_counter::ATTR_CHECKPOINT, amf_counter::ATTR_LISTEN),
        ("checkpoint", "listen"),
        "the names the service reads"
    );
}

#[test]
fn a_user_must_exist_on_the_node_that_reads_the_model() {
    let with_user = |u: &str| {
        GOOD.replace(
            "instantiate = \"/bin/c\"",
            &format!("instantiate = \"/bin/c\"\nuser = \"{u}\""),
        )
    };
    let m = AmfConfig::from_str(&with_user("nobody"), "amf.toml").expect("nobody exists");
    assert_eq!(m.model.comp_types[0].user.as_deref(), Some("nobody"));
    let m = AmfConfig::from_str(
        &GOOD.replace(
            "instantiate = \"/bin/c\"",
            "instantiate = \"/bin/c\"\ngroup = \"nogroup\"",
        ),
        "amf.toml",
    )
    .expect("nogroup exists");
    assert_eq!(m.model.comp_types[0].group.as_deref(), Some("nogroup"));
    assert_eq!(
        invalid(&GOOD.replace(
            "instantiate = \"/bin/c\"",
            "instantiate = \"/bin/c\"\ngroup = \"no-such-group-ais\"",
        )),
        [
            "amf.toml:7:1: comp_type.c.group: group \"no-such-group-ais\" does not exist on this \
          node (the CLC-CLI commands of this type run with that group)"
        ]
    );
    assert_eq!(
        invalid(&with_user("no-such-user-ais")),
        [
            "amf.toml:7:1: comp_type.c.user: user \"no-such-user-ais\" does not exist on this \
          node (the CLC-CLI commands of this type run as that user)"
        ]
    );
}

const VIP: &str = r#"[node]
a = { nodeid = 1 }
b = { nodeid = 2 }

[comp_type.vip]
builtin = "ip-address"

[sg.g]
redundancy = "2n"
components = ["vip"]
su.u1 = { node = "a" }
su.u2 = { node = "b" }

[si.s]
sg = "g"
csi.addr = { comp_type = "vip", attributes = { address = "10.0.0.100/24", interface = "eth0" } }
"#;

#[test]
fn a_builtin_ip_address_type_and_its_csi_attributes_are_located() {
    let m = AmfConfig::from_str(VIP, "amf.toml").expect("valid");
    let t = &m.model.comp_types[0];
    assert_eq!(t.builtin, Some(m::Builtin::IpAddress));
    assert!(!t.sa_aware);
    assert_eq!(t.instantiate, "");
    assert_eq!(
        invalid(&VIP.replace("10.0.0.100/24", "10.0.0.100")),
        [
            "amf.toml:16:1: si.s.csi.addr.attributes.address: \"10.0.0.100\" is not an IPv4 \
          address with a prefix 1..=32 (a.b.c.d/prefix)"
        ]
    );
    let e = invalid(&VIP.replace(", interface = \"eth0\"", ""));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("amf.toml:16:") && e[0].contains("needs attributes.interface"),
        "{e:?}"
    );
    let e = invalid(&VIP.replace(
        "builtin = \"ip-address\"",
        "builtin = \"ip-address\"\ninstantiate = \"/bin/x\"\nsa_aware = true",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("amf.toml:7:1: comp_type.vip.instantiate: a built-in type"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("amf.toml:8:1: comp_type.vip.sa_aware: a built-in type"),
        "{e:?}"
    );
    match AmfConfig::from_str(&VIP.replace("ip-address", "mac-address"), "amf.toml") {
        Err(e @ AmfError::Syntax(_)) => assert!(
            e.to_string()
                .starts_with("amf.toml:6:11: comp_type.vip.builtin: unknown variant `mac-address`"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
}
