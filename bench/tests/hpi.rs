//! `bench hpi` end to end, tiny: two executives and openhpid on the simulated shelf, six
//! transitions of the blade. Asserts what a broken bench or watcher would get wrong (a
//! transition not delivered at every node, openhpid's events not matched, no SEL request
//! count), never a speed: the figures come from release runs recorded in
//! docs/performance.md. Needs what `.ci/run` installs (openipmi, gcc, libopenipmi-dev,
//! openhpid, openhpi-plugin-ipmidirect, openhpi-clients); about 30 s.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("hpi")
        .args(args)
        .output()
        .expect("run bench hpi");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{} missing: {v}", path.join(".")))
}

#[test]
fn every_transition_reaches_every_executive_and_openhpid_is_measured_beside() {
    let (ok, stdout, stderr) = bench(&[
        "--nodes",
        "2",
        "--transitions",
        "6",
        "--seed",
        "1",
        "--json",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}\n{stderr}")))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let s = &lines[0];
    assert_eq!(s["bench"], "hpi");
    assert_eq!(s["missed"], 0, "{s}");
    // Every transition timed at both nodes, and at every node.
    assert_eq!(f(s, &["per_node", "count"]), 12.0, "{s}");
    assert_eq!(f(s, &["every_node", "count"]), 6.0, "{s}");
    assert_eq!(f(s, &["console", "count"]), 6.0, "{s}");
    for k in ["every_node", "first_node", "per_node"] {
        let (p50, max) = (f(s, &[k, "p50"]), f(s, &[k, "max"]));
        assert!(p50 > 0.0 && p50 <= max, "{k}: {s}");
    }
    assert!(
        f(s, &["first_node", "max"]) <= f(s, &["every_node", "max"]),
        "{s}"
    );
    // Each executive's HPI thread counted its SEL requests.
    let rates = s["sel_requests_per_sec"].as_array().expect("rates");
    assert_eq!(rates.len(), 2, "{s}");
    assert!(
        rates.iter().all(|r| r.as_f64().is_some_and(|r| r > 0.0)),
        "{s}"
    );
    // openhpid reported the same six transitions, and polled its SEL in the window.
    assert_eq!(s["openhpid"]["missed"], 0, "{s}");
    assert_eq!(f(s, &["openhpid", "event", "count"]), 6.0, "{s}");
    assert!(f(s, &["openhpid", "event", "p50"]) > 0.0, "{s}");
    assert!(f(s, &["openhpid", "requests_per_sec"]) > 0.0, "{s}");
    assert!(f(s, &["openhpid", "sel_period_s"]) > 0.0, "{s}");
}

#[test]
fn a_missing_simulator_is_a_clear_error() {
    let (ok, stdout, stderr) = bench(&["--sim", "/nonexistent/sim-shelf.sh", "--no-openhpid"]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("/nonexistent/sim-shelf.sh is missing"),
        "{stderr}"
    );
}
