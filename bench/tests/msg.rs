//! `bench msg` end to end, tiny: three executives on 127.0.0.1 (no namespaces, no root
//! needed), one sender/receiver pair per node, windows of 0.4 s. Asserts what a broken
//! harness or service would get wrong (every figure present, every message sent got once,
//! round trips counted and checked, latencies recorded), never a speed.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{what}: {v}"))
}

#[test]
fn bench_msg_writes_its_json() {
    let json = std::env::temp_dir().join(format!("bench-msg-test-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let out = Command::new(PathBuf::from(env!("CARGO_BIN_EXE_bench")))
        .args(["msg", "--transport", "udp", "--crypto", "off"])
        .args(["--size", "512", "--rtt-size", "48", "--senders", "1"])
        .args(["--seconds", "0.4", "--warmup", "0.1"])
        .args(["--set", "totem.token=200"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run bench msg");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench msg failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("MSG/CPG msgs/s"), "{stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON file is written");
    let _ = std::fs::remove_file(&json);
    let v: Value = serde_json::from_str(&text).expect("the JSON parses");

    assert_eq!(v["bench"], "msg");
    assert_eq!(v["nodes"], 3);
    assert!(v["membership_changes"].is_u64(), "{text}");
    let t = &v["throughput"];
    assert_eq!(t["size"], 512);
    assert_eq!(t["connections"], 3);
    let sent = num(&t["msg_sent"], "sent");
    assert!(sent > 0.0, "{text}");
    assert_eq!(
        t["msg_sent"], t["msg_got"],
        "every message got once: {text}"
    );
    for key in ["cpg_msgs_per_sec", "msg_msgs_per_sec", "ratio"] {
        assert!(num(&t[key], key) > 0.0, "{key}: {text}");
    }
    // Got inside a 0.4 s window: no more than were sent in the whole run.
    assert!(
        num(&t["msg_msgs_per_sec"], "msgs/s") * 0.4 <= sent,
        "{text}"
    );
    for lat in ["cpg_lat_self_us", "msg_lat_us"] {
        assert!(num(&t[lat]["count"], lat) > 0.0, "{text}");
        assert!(
            num(&t[lat]["p99"], lat) >= num(&t[lat]["p50"], lat),
            "{text}"
        );
    }
    let rt = &v["round_trip"];
    assert_eq!(rt["size"], 48);
    for kind in ["msg", "cpg_agreed", "cpg_safe"] {
        let k = &rt[kind];
        assert!(num(&k["per_sec"], kind) > 0.0, "{kind}: {text}");
        assert!(num(&k["total"], kind) >= num(&k["lat_us"]["count"], kind));
        assert!(num(&k["lat_us"]["p50"], kind) > 0.0, "{kind}: {text}");
        assert!(num(&k["lat_us"]["max"], kind) >= num(&k["lat_us"]["p99"], kind));
    }
    let expect = num(&rt["msg"]["per_sec"], "msg") / num(&rt["cpg_safe"]["per_sec"], "safe");
    assert!((num(&rt["ratio"], "ratio") - expect).abs() < 1e-9 * expect.max(1.0));
}
