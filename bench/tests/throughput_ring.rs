//! `bench throughput`'s bare-ring arm and the raw link with the ring's fan-out, end to end
//! through the built binary: 3 nodes in network namespaces, 1 KiB messages, crypto on, short
//! windows.
//!
//! The ring arm fails the run when its nodes delivered different sequences (count and order
//! digest), a sender's messages out of order, or saw a configuration change (those checks
//! are unit-tested in `bench::raw::harness`), so a successful run is those checks passed;
//! this test also asserts that every node delivered, that the stack row carries its ratio to
//! the ring, and that the fan-out row is the smallest receiver's count. With `--latency-at`
//! the ring is also measured at the stack's fixed load: its row must offer the same load,
//! time its own messages (no more than were due in the window) and report its processes'
//! CPU. No speed is asserted.
//!
//! Assumes: root (network namespaces), iproute2. Never skipped.

use std::process::Command;

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn num(r: &serde_json::Value, key: &str) -> f64 {
    r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {r}"))
}

#[test]
fn bare_ring_and_raw_fan_out_beside_the_stack() {
    let out = std::env::temp_dir().join(format!("bench-ring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "throughput",
            "--nodes",
            "3",
            "--size",
            "1024",
            "--seconds",
            "0.5",
            "--warmup",
            "0.3",
            "--mtu",
            "1500",
            "--crypto",
            "on",
            "--latency-at",
            "50",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run bench");
    assert!(
        run.status.success(),
        "bench throughput failed (needs root for namespaces): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = json_lines(&run.stdout);
    let find = |bench: &str, system: &str| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| r["bench"] == bench && r["system"] == system)
            .collect()
    };

    // The raw link: one stream, then the fan-out to the 2 other hosts.
    let raws = find("raw", "raw");
    assert_eq!(raws.len(), 2, "{rows:#?}");
    assert_eq!(raws[0]["transport"], "udp-netns");
    assert_eq!(raws[0]["nodes"], 2);
    let fan = raws[1];
    assert_eq!(fan["transport"], "udp-netns fan-out", "{fan}");
    assert_eq!(fan["nodes"], 3);
    let each: Vec<f64> = fan["per_node_msgs_per_sec"]
        .as_array()
        .expect("per receiver")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(each.len(), 2, "one figure per receiver: {fan}");
    assert!(
        each.iter().all(|&f| f > 0.0),
        "a receiver got nothing: {fan}"
    );
    let least = each.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((num(fan, "msgs_per_sec") - least).abs() < 1e-6, "{fan}");
    let expect_mb = least * 1472.0 / 1e6;
    assert!((num(fan, "mb_per_sec") - expect_mb).abs() <= expect_mb * 1e-6 + 1e-9);

    // The bare ring: every node delivered, all at the same count within the window's edges.
    let ring = find("throughput", "ring");
    assert_eq!(ring.len(), 1, "{rows:#?}");
    let ring = ring[0];
    assert_eq!(ring["nodes"], 3);
    assert_eq!(ring["size"], 1024);
    assert_eq!(ring["crypto"], "on");
    let per_node: Vec<f64> = ring["per_node_msgs_per_sec"]
        .as_array()
        .expect("per node")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(per_node.len(), 3, "{ring}");
    assert!(per_node.iter().all(|&f| f > 0.0), "{ring}");
    let mean = per_node.iter().sum::<f64>() / 3.0;
    assert!(
        (num(ring, "msgs_per_sec") - mean).abs() < 1e-6 * mean,
        "{ring}"
    );
    assert!(
        num(ring, "cpu_cores") > 0.0,
        "the ring's processes used no CPU: {ring}"
    );
    // Compared with the fan-out, the raw row the stack's ratios use.
    let expect = mean / num(fan, "msgs_per_sec");
    assert!(
        (num(ring, "raw_frame_ratio") - expect).abs() < 1e-6 * expect,
        "{ring}"
    );

    // This stack's row carries its ratio to the ring.
    let ours = find("throughput", "openais-rs");
    assert_eq!(ours.len(), 1, "{rows:#?}");
    let ratio = num(ours[0], "vs_ring");
    let expect = num(ours[0], "msgs_per_sec") / mean;
    assert!(
        (ratio - expect).abs() < 1e-6 * expect,
        "{ratio} vs {expect}"
    );

    // The bare ring at the stack's fixed load: the same offered load, its own messages timed.
    let ours_fixed = find("latency", "openais-rs");
    assert_eq!(ours_fixed.len(), 1, "{rows:#?}");
    let offered = num(ours_fixed[0], "offered_msgs_per_sec");
    let ring_fixed = find("latency", "ring");
    assert_eq!(ring_fixed.len(), 1, "{rows:#?}");
    let rf = ring_fixed[0];
    assert_eq!(num(rf, "offered_msgs_per_sec"), offered, "{rf}");
    let lat = &rf["lat_self_us"];
    let timed = num(lat, "count");
    // Each node's share is due evenly over the 0.5 s window: about that many were submitted
    // inside it (more only by what a node was behind at the window's start), and a ring at
    // half its load delivers most of them. Timing other nodes' messages would triple it.
    let due = offered * 0.5;
    assert!(
        timed <= due * 1.2 + 3.0 && timed >= due * 0.25,
        "{timed} own messages timed, {due} due: {rf}"
    );
    assert!(
        num(lat, "p50") >= 1.0 && num(lat, "p99") >= num(lat, "p50"),
        "{rf}"
    );
    assert!(
        num(rf, "cpu_cores") > 0.0,
        "the ring's processes used no CPU: {rf}"
    );
    let delivered = num(rf, "msgs_per_sec");
    assert!(
        delivered <= offered * 1.1 && delivered >= offered * 0.25,
        "{delivered} msgs/s/node delivered at {offered} offered: {rf}"
    );

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",vs_ring"));
    assert_eq!(csv.lines().count(), rows.len() + 1);
    std::fs::remove_dir_all(&out).unwrap();
}
