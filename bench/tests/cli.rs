//! `bench throughput` and `bench failover` end to end, through the built binary: the JSON
//! objects carry the documented fields with values that hang together, the results folder has
//! its four files, and a killed node's survivors report a new membership.
//!
//! Assumes: root (network namespaces for `udp-netns` and corosync), iproute2, corosync and
//! libcpg-dev (CI installs them), 2 cores. Windows are short and nothing is compared with a
//! speed: the figures come from `bench` runs recorded in docs/performance.md, not from here.

use std::path::PathBuf;
use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bench"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bench-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// This stack vs corosync vs the raw link in namespaces, with a latency run at half load.
#[test]
fn throughput_against_corosync_and_the_raw_link() {
    let out = temp_dir("throughput");
    let run = bench()
        .args([
            "throughput",
            "--transport",
            "udp-netns",
            "--size",
            "256",
            "--seconds",
            "0.5",
            "--warmup",
            "0.3",
            "--peer",
            "corosync",
            "--latency-at",
            "50",
            "--no-ring",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run bench");
    assert!(
        run.status.success(),
        "bench throughput failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = json_lines(&run.stdout);
    let find = |bench: &str, system: &str| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| r["bench"] == bench && r["system"] == system)
            .collect()
    };
    // Two raw rows (one stream, the fan-out), a max and a half-load row per system, and one
    // more at the common load; no bare ring (tests/throughput_ring.rs).
    assert_eq!(find("raw", "raw").len(), 2, "{rows:#?}");
    assert!(find("throughput", "ring").is_empty());
    assert_eq!(find("throughput", "openais-rs").len(), 1);
    assert_eq!(find("throughput", "corosync").len(), 1);
    assert_eq!(
        find("latency", "openais-rs").len() + find("latency", "corosync").len(),
        3
    );
    for r in &rows {
        for key in [
            "system",
            "transport",
            "nodes",
            "size",
            "senders",
            "crypto",
            "msgs_per_sec",
            "mb_per_sec",
            "lat_self_us",
        ] {
            assert!(!r[key].is_null(), "{key} missing in {r}");
        }
        for p in ["p50", "p99", "p999"] {
            assert!(r["lat_self_us"][p].is_u64(), "{r}");
        }
        assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        if r["bench"] != "raw" {
            assert_eq!(r["nodes"], 3);
            assert_eq!(r["size"], 256);
            assert_eq!(r["crypto"], "on");
            assert_eq!(r["missing_own"], 0, "own messages lost: {r}");
            let p50 = r["lat_self_us"]["p50"].as_u64().unwrap();
            let p99 = r["lat_self_us"]["p99"].as_u64().unwrap();
            assert!(p50 > 0 && p50 <= p99, "{r}");
            // MB/s is msgs/s times the size.
            let mb = r["mb_per_sec"].as_f64().unwrap();
            let expect = r["msgs_per_sec"].as_f64().unwrap() * 256.0 / 1e6;
            assert!((mb - expect).abs() <= expect * 0.01 + 0.01, "{r}");
        }
    }
    let ours = find("throughput", "openais-rs")[0];
    let ratio = ours["vs_corosync"].as_f64().expect("ratio to corosync");
    let theirs = find("throughput", "corosync")[0]["msgs_per_sec"]
        .as_f64()
        .unwrap();
    let expect = ours["msgs_per_sec"].as_f64().unwrap() / theirs;
    assert!(
        (ratio - expect).abs() < 1e-6 * expect.max(1.0),
        "{ratio} vs {expect}"
    );
    assert!(ours["raw_frame_ratio"].as_f64().unwrap() > 0.0);
    // A latency row gets about what it offers (far below the maximum: not saturated).
    for r in find("latency", "openais-rs") {
        let offered = r["offered_msgs_per_sec"].as_f64().unwrap();
        let got = r["msgs_per_sec"].as_f64().unwrap();
        assert!(got > offered * 0.5 && got < offered * 1.2, "{r}");
    }
    for f in [
        "results.json",
        "results.csv",
        "throughput.svg",
        "latency-cdf.svg",
    ] {
        let meta = std::fs::metadata(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 100, "{f} is nearly empty");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), rows.len() + 1);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Two kills on three executives over loopback: every survivor sees the new membership.
#[test]
fn failover_reports_every_survivor() {
    let run = bench()
        .args([
            "failover",
            "--transport",
            "udp",
            "--repeat",
            "2",
            "--seed",
            "7",
            "--json",
        ])
        .output()
        .expect("run bench");
    assert!(
        run.status.success(),
        "bench failover failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 3, "two kills and a summary: {lines:#?}");
    for k in &lines[..2] {
        let victim = k["victim"].as_u64().unwrap();
        let survivors = k["survivors_ms"].as_array().unwrap();
        assert_eq!(survivors.len(), 2, "{k}");
        for s in survivors {
            assert_ne!(s[0].as_u64().unwrap(), victim, "{k}");
            let ms = s[1].as_f64().unwrap();
            // Failure detection alone takes the token timeout (100 ms by default).
            assert!(ms > 50.0 && ms < 10_000.0, "{k}");
        }
    }
    let summary = &lines[2];
    assert_eq!(summary["bench"], "failover");
    assert_eq!(summary["samples"], 4);
    let (min, med, max) = (
        summary["min_ms"].as_f64().unwrap(),
        summary["median_ms"].as_f64().unwrap(),
        summary["max_ms"].as_f64().unwrap(),
    );
    assert!(min <= med && med <= max, "{summary}");
    assert_eq!(summary["seed"], 7);
}
