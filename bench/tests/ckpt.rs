//! `bench ckpt` end to end, tiny: three executives on 127.0.0.1 (no namespaces, no root
//! needed), 1 KiB only, 2 writers × 2 connections, windows of 0.4 s. Asserts what a broken
//! harness, generator or service would get wrong (every figure present, writes and
//! deliveries counted, latencies recorded, the targets listed), never a speed.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn bench_ckpt_writes_its_json() {
    let json = std::env::temp_dir().join(format!("bench-ckpt-test-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let out = Command::new(PathBuf::from(env!("CARGO_BIN_EXE_bench")))
        .args(["ckpt", "--transport", "udp", "--crypto", "off"])
        .args(["--size", "1024", "--latency-size", "1024"])
        .args(["--writers", "2", "--in-flight", "2"])
        .args(["--seconds", "0.4", "--warmup", "0.1"])
        .args(["--set", "totem.token=200"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run bench ckpt");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench ckpt failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("Targets:"),
        "the table is printed:\n{stdout}"
    );
    let text = std::fs::read_to_string(&json).expect("the JSON file is written");
    let _ = std::fs::remove_file(&json);
    let v: Value = serde_json::from_str(&text).expect("the JSON parses");

    assert_eq!(v["bench"], "ckpt");
    assert_eq!(v["transport"], "udp");
    assert_eq!(v["nodes"], 3);
    let num = |x: &Value, what: &str| -> f64 {
        x.as_f64()
            .unwrap_or_else(|| panic!("{what} is not a number: {x}"))
    };

    let pipelined = v["pipelined"].as_array().expect("pipelined rows");
    assert_eq!(pipelined.len(), 1, "{text}");
    let p = &pipelined[0];
    assert_eq!(p["ckpt"]["size"], 1024);
    assert_eq!(p["ckpt"]["writers"], 2);
    assert_eq!(p["ckpt"]["in_flight"], 2);
    assert!(num(&p["ckpt"]["writes"], "writes") > 0.0, "{text}");
    assert!(num(&p["ckpt"]["writes_per_sec"], "writes/s") > 0.0);
    assert!(num(&p["ckpt"]["mb_per_sec"], "MB/s") > 0.0);
    assert!(num(&p["ckpt"]["lat_us"]["count"], "latency count") > 0.0);
    assert!(num(&p["ckpt"]["lat_us"]["p99"], "p99") >= num(&p["ckpt"]["lat_us"]["p50"], "p50"));
    assert_eq!(p["cpg"]["senders"], 2);
    assert!(num(&p["cpg"]["msgs_per_sec"], "CPG msgs/s") > 0.0, "{text}");
    assert!(num(&p["cpg"]["mb_per_sec"], "CPG MB/s") > 0.0);
    assert!(num(&p["ratio"], "ratio") > 0.0);

    let s = &v["sync"];
    assert_eq!(s["ckpt"]["writers"], 1);
    assert_eq!(s["ckpt"]["in_flight"], 1);
    assert!(num(&s["ckpt"]["writes"], "sync writes") > 0.0, "{text}");
    assert!(num(&s["ckpt"]["lat_us"]["p999"], "sync p99.9") > 0.0);
    assert!(num(&s["cpg"]["offered_msgs_per_sec"], "CPG offered") > 0.0);
    assert!(
        num(&s["cpg"]["lat_self_us"]["count"], "CPG latency count") > 0.0,
        "{text}"
    );
    assert!(num(&s["cpg"]["lat_self_us"]["p99"], "CPG p99") > 0.0);
    assert!(num(&s["p99_ratio"], "p99 ratio") > 0.0);

    let targets = v["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 2, "{text}");
    for t in targets {
        assert!(t["met"].is_boolean(), "{t}");
        assert!(num(&t["ratio"], "target ratio") > 0.0);
    }
}
