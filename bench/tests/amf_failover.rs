//! `bench amf-failover` end to end, tiny: one kill of each kind with the example counter
//! service (token 50 ms and a 100 ms fence delay so the node kill is quick), and one component
//! kill with each of the service's deliberate defects, which the bench must catch (updates
//! lost, updates counted twice). Three executives on 127.0.0.1, no root needed. Asserts what
//! a broken bench or AMF would get wrong, never a speed: the figures come from release runs
//! recorded in docs/performance.md.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> (bool, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("amf-failover")
        .args(args)
        .arg("--json")
        .output()
        .expect("run bench amf-failover");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}\n{stderr}")))
        .collect();
    (out.status.success(), lines, stdout + &stderr)
}

fn ms(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"))
}

#[test]
fn the_counter_fails_over_without_losing_an_acknowledged_update() {
    let (ok, lines, out) = bench(&[
        "--kills",
        "1",
        "--token",
        "50",
        "--fence-ms",
        "100",
        "--clients",
        "2",
        "--seed",
        "1",
    ]);
    assert!(ok, "{out}");
    let kills: Vec<&Value> = lines.iter().filter(|v| v.get("kill").is_some()).collect();
    let sums: Vec<&Value> = lines
        .iter()
        .filter(|v| v["bench"] == "amf-failover")
        .collect();
    assert_eq!((kills.len(), sums.len()), (2, 2), "{out}");
    for k in &kills {
        assert_ne!(k["old_active"], k["new_active"], "{k}");
        assert!(
            k["killed_at_unix_ns"].as_u64().is_some_and(|t| t > 0),
            "{k}"
        );
        let acked = k["acked"].as_u64().expect("acked");
        assert!(acked > 0, "load ran: {k}");
        assert_eq!(k["total"].as_u64(), Some(acked), "{k}");
        assert_eq!(
            (k["lost"].as_u64(), k["duplicated"].as_u64()),
            (Some(0), Some(0))
        );
        for key in ["listening_ms", "confirmed_ms", "served_ms"] {
            assert!(ms(k, key) > 0.0, "{key}: {k}");
        }
        // A request is served on a connection the new active accepted.
        assert!(ms(k, "served_ms") >= ms(k, "listening_ms"), "{k}");
    }
    let comp = kills
        .iter()
        .find(|k| k["kind"] == "component")
        .expect("component kill");
    assert!(ms(comp, "exit_peer_ms") > 0.0, "{comp}");
    assert!(comp["membership_ms"].is_null(), "{comp}");
    let node = kills
        .iter()
        .find(|k| k["kind"] == "node")
        .expect("node kill");
    assert!(node["exit_peer_ms"].is_null(), "{node}");
    // The survivors see the node go (token 50 ms: not before the token is missed), and the
    // standby is made active only after that and the fence delay (100 ms from the new
    // membership, so at least token + fence after the kill).
    let gone = ms(node, "membership_ms");
    assert!(gone >= 50.0, "{node}");
    assert!(ms(node, "confirmed_ms") > gone, "{node}");
    assert!(ms(node, "confirmed_ms") >= 50.0 + 100.0, "{node}");
    for s in &sums {
        assert_eq!(s["lost"], 0, "{s}");
        assert_eq!(
            (s["kills"].as_u64(), s["failed"].as_u64()),
            (Some(1), Some(0)),
            "{s}"
        );
        assert_eq!(s["token_ms"], 50, "{s}");
        assert_eq!(s["fence_ms"], 100, "{s}");
        let c = &s["confirmed"];
        assert!(ms(c, "max") >= ms(c, "p50"), "{s}");
    }
}

/// One component kill with a deliberate defect of the service.
fn with_defect(defect: &str) -> Value {
    let (ok, lines, out) = bench(&[
        "--kills",
        "1",
        "--kind",
        "component",
        "--defect",
        defect,
        "--clients",
        "2",
        "--seed",
        "1",
    ]);
    assert!(!ok, "the bench must fail: {out}");
    assert!(out.contains("(must be 0)"), "{out}");
    lines
        .into_iter()
        .find(|v| v.get("kill").is_some())
        .expect("the kill is reported")
}

#[test]
fn a_counter_that_forgets_its_checkpoint_is_caught_losing_updates() {
    let k = with_defect("fresh-state");
    let acked = k["acked"].as_u64().expect("acked");
    let total = k["total"].as_u64().expect("total");
    // The new active started from 0: it holds only what it served itself.
    assert!(total < acked, "{k}");
    assert_eq!(k["lost"].as_u64(), Some(acked - total), "{k}");
}

#[test]
fn a_counter_without_duplicate_detection_is_caught_counting_twice() {
    let k = with_defect("no-dedup");
    let acked = k["acked"].as_u64().expect("acked");
    let total = k["total"].as_u64().expect("total");
    // Every client sent its last acknowledged ADD again after the failover.
    assert!(total >= acked + 2, "{k}");
    assert_eq!(k["duplicated"].as_u64(), Some(total - acked), "{k}");
    assert_eq!(k["lost"].as_u64(), Some(0), "{k}");
}
