//! `aisctl demo`, the README's first command, run as a process: it exits 0 and prints one line
//! per step in order, the CKPT steps included (the checkpoint written before the kill, read
//! whole at both survivors after it and at the restarted node after the merge), and removes
//! its directory after a successful run. How the demo's checkpoint check fails on a missing or
//! different section is a unit test in `ais/src/bin/aisctl/demo.rs`. The AMF step: the example
//! counter service runs 2N over nodes 1 and 2 (either may be active first), its active process
//! is killed, the other takes over, and the total equals the acknowledged additions.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (fewer messages than the default keep it to a few seconds in a debug build; no duration is
//! asserted).

use std::process::Command;

#[test]
fn the_demo_runs_every_step_and_checks_its_checkpoint() {
    let dir = std::env::temp_dir().join(format!("ais-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .args(["demo", "--messages", "200", "--size", "512", "--dir"])
        .arg(&dir)
        .output()
        .expect("run aisctl demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "aisctl demo failed ({}):\n{text}{err}",
        out.status
    );
    let steps = [
        "openais-rs demo: 3 aisexec processes on 127.0.0.1",
        "[ring]     ring ",
        "[cpg]      one client per node joined group \"demo\" (3 members)",
        "[traffic]  600 messages of 512 bytes from 3 senders delivered in the same order at all 3 nodes",
        "[ckpt]     checkpoint \"demo-state\" written at node 1: 3 sections, 262703 bytes",
        "[failover] killed node 3 (SIGKILL)",
        "[ckpt]     after the kill: nodes 1 and 2 read all 3 sections of \"demo-state\" (262703 bytes) intact",
        "[merge]    restarted node 3",
        "[ckpt]     restarted node 3 got \"demo-state\" in the merge: all 3 sections (262703 bytes) intact",
        "[rekey]    new cluster key epoch",
        "[amf]      counter service 2N: counter-",
        "[amf]      killed the active counter process (SIGKILL): counter-",
        "[stop]     all 3 executives left the ring (SIGTERM) and exited 0",
        "[checker]  event logs of all 3 nodes:",
        "done in ",
    ];
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), steps.len(), "one line per step:\n{text}");
    for (line, step) in lines.iter().zip(steps) {
        assert!(
            line.starts_with(step),
            "{step:?} expected, got {line:?}:\n{text}"
        );
    }
    assert!(
        lines[10].contains("; 200 additions acknowledged in "),
        "the AMF step's load:\n{text}"
    );
    let (active, standby) =
        if lines[10].contains("counter-1 active at node 1, counter-2 standby at node 2") {
            ("counter-1", "counter-2 at node 2")
        } else {
            ("counter-2", "counter-1 at node 1")
        };
    assert!(
        lines[10].contains(&format!("{active} active"))
            && lines[11].contains(&format!("(SIGKILL): {standby} active")),
        "the standby takes over:\n{text}"
    );
    assert!(
        lines[11]
            .ends_with("total 300 = every acknowledged addition (none lost, none counted twice)"),
        "the AMF step's check:\n{text}"
    );
    assert!(
        lines[13].ends_with(": 0 violations"),
        "the checker found nothing:\n{text}"
    );
    assert!(
        !dir.exists(),
        "a successful run removes its directory {}",
        dir.display()
    );
}
