//! `aisctl amf check`: the binary on a good model prints its tree and "ok" and exits 0; on a
//! broken one it prints every error with file, line and key and exits non-zero.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aisctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .args(args)
        .output()
        .expect("aisctl runs")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/amf")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_good_model_prints_its_tree_and_ok() {
    let file = example("minimal-2n.toml");
    let out = aisctl(&["amf", "check", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for line in [
        "node blade1 (nodeid 1)",
        "application counter",
        "  SG counter (2n)",
        "    SU counter-1 on blade1 (rank 0)",
        "      component counter (type counter)",
        "    SU counter-2 on blade2 (rank 0)",
        "  SI counter (SG counter, rank 0)",
        "    CSI state -> type counter",
        "ok: 2 nodes, 1 component types, 1 applications, 1 SGs, 2 SUs, 2 components, 1 SIs, 1 CSIs",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing in\n{stdout}"
        );
    }
    let out = aisctl(&["amf", "check", "--quiet", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_broken_model_prints_every_error_and_fails() {
    let dir = std::env::temp_dir().join(format!("amf-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    let good = std::fs::read_to_string(example("minimal-2n.toml")).unwrap();
    let broken = good
        .replace("node = \"blade2\"", "node = \"blade3\"")
        .replace("comp_type = \"counter\"", "comp_type = \"counterd\"");
    assert_ne!(broken, good);
    std::fs::write(&file, &broken).unwrap();
    let path = file.to_str().unwrap();
    let out = aisctl(&["amf", "check", path]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!text(&out.stdout).contains("ok"), "{}", text(&out.stdout));
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for expected in [
        format!(
            "{path}:{}:1: sg.counter.su.counter-2.node: node \"blade3\" is not declared",
            line_of("blade3")
        ),
        format!(
            "{path}:{}:1: si.counter.csi.state.comp_type: component type \"counterd\" is not declared",
            line_of("counterd")
        ),
        format!("aisctl: {path}: 2 errors"),
    ] {
        assert!(
            stderr.lines().any(|l| l == expected),
            "{expected:?} missing in\n{stderr}"
        );
    }
    // A syntax mistake, and a missing file.
    std::fs::write(&file, good.replace("[sg.counter]", "[sg.counter")).unwrap();
    let out = aisctl(&["amf", "check", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("{path}:")),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let out = aisctl(&["amf", "check", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read the AMF model file"));
}

#[test]
fn warnings_are_printed_and_do_not_fail() {
    let dir = std::env::temp_dir().join(format!("amf-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("one-su.toml");
    let good = std::fs::read_to_string(example("minimal-2n.toml")).unwrap();
    std::fs::write(
        &file,
        good.replace("su.counter-2 = { node = \"blade2\" }\n", ""),
    )
    .unwrap();
    let out = aisctl(&["amf", "check", "--quiet", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("warning: ") && stdout.contains("sg.counter.su: 2N with one SU"),
        "{stdout}"
    );
    assert!(
        stdout.lines().last().unwrap().starts_with("ok: "),
        "{stdout}"
    );
}

#[test]
fn help_teaches_the_file_and_its_examples() {
    let out = aisctl(&["amf", "check", "--help"]);
    let help = text(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "[amf]",
        "model = ",
        "docs/amf.md",
        "configs/amf/",
        "FILE:LINE:COLUMN",
    ] {
        assert!(help.contains(needle), "{needle:?} missing in\n{help}");
    }
}

/// An executive configuration naming `model` in `[amf]`.
fn exec_config(dir: &Path, model: &Path) -> PathBuf {
    let file = dir.join("aisexec.toml");
    let text = format!(
        "[totem]\nnodeid = 1\ntransport = \"udpu\"\n\n[[nodelist.node]]\nnodeid = 1\n\
         ring0_addr = \"127.0.0.1\"\n\n[amf]\nmodel = {:?}\n",
        model.display().to_string()
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn without_a_file_the_model_of_the_executive_configuration_is_checked() {
    let dir = std::env::temp_dir().join(format!("amf-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = exec_config(&dir, &example("n-plus-m.toml"));
    let out = aisctl(&[
        "--config",
        config.to_str().unwrap(),
        "amf",
        "check",
        "--quiet",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("ok: 4 nodes"), "{stdout}");
    // A configuration without [amf] says so.
    let bare = dir.join("bare.toml");
    std::fs::write(
        &bare,
        "[totem]\nnodeid = 1\ntransport = \"udpu\"\n\n[[nodelist.node]]\nnodeid = 1\nring0_addr = \"127.0.0.1\"\n",
    )
    .unwrap();
    let out = aisctl(&["--config", bare.to_str().unwrap(), "amf", "check"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no [amf] table"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn aisexec_refuses_to_start_on_a_broken_model() {
    let dir = std::env::temp_dir().join(format!("amf-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("amf.toml");
    let good = std::fs::read_to_string(example("minimal-2n.toml")).unwrap();
    std::fs::write(&model, good.replace("nodeid = 2", "nodeid = 0")).unwrap();
    let config = exec_config(&dir, &model);
    let out = Command::new(env!("CARGO_BIN_EXE_aisexec"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("aisexec runs");
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected = format!(
        "aisexec: {}:4:1: node.blade2.nodeid: node id 0 is reserved",
        model.display()
    );
    assert!(
        stderr.contains(&expected),
        "{expected:?} missing in\n{stderr}"
    );
}

/// The keys of IP takeover and of the commands' user: `full.toml` shows the built-in type and
/// the user; an unknown user and a malformed address are refused, located.
#[test]
fn builtin_types_and_users_are_checked() {
    let file = example("full.toml");
    let out = aisctl(&["amf", "check", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for line in [
        "component type vip (built in: ip-address, level 1, recovery su-failover)",
        "  commands run (as user nobody, group nogroup)",
        "    CSI addr -> type vip [address=192.0.2.10/24, announcements=2, interface=eth0]",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing in\n{stdout}"
        );
    }
    let dir = std::env::temp_dir().join(format!("amf-check-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken_file = dir.join("broken.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    let broken = good
        .replace("user = \"nobody\"", "user = \"no-such-user-ais\"")
        .replace("192.0.2.10/24", "192.0.2.10/33");
    std::fs::write(&broken_file, &broken).unwrap();
    let path = broken_file.to_str().unwrap();
    let out = aisctl(&["amf", "check", path]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for expected in [
        format!(
            "{path}:{}:1: comp_type.db-backup.user: user \"no-such-user-ais\" does not exist on \
             this node (the CLC-CLI commands of this type run as that user)",
            line_of("no-such-user-ais")
        ),
        format!(
            "{path}:{}:1: si.db-ip.csi.addr.attributes.address: \"192.0.2.10/33\" is not an IPv4 \
             address with a prefix 1..=32 (a.b.c.d/prefix)",
            line_of("192.0.2.10/33")
        ),
        format!("aisctl: {path}: 2 errors"),
    ] {
        assert!(
            stderr.lines().any(|l| l == expected),
            "{expected:?} missing in\n{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
