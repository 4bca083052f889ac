//! Shelf events through real executives (issue 19): the simulated ATCA shelf
//! (`hpi/tests/atca-sim/sim-shelf.sh`: ipmi_sim in ATCA mode, on its own free ports) and two
//! `aisexec` on loopback, both with `[hpi]` watching it. Blade 0x86 is driven
//! M1 → M2 → M3 → M4; each node's event log then holds each of the two HPI transitions
//! (INACTIVE → INSERTION_PENDING → ACTIVE) exactly once, about slot 3, and no SEL key twice;
//! node 1, configured as slot 3's blade, logs them as its own. The blade's temperature
//! crossing Upper Critical (and back) is accepted once per node, the Upper Non-critical
//! crossing not at all. Node 2 is
//! killed; the blade goes on M4 → M5 → M6 → M1, and node 1, now watching alone, logs the two
//! further transitions once each. Node 2 restarts and the blade is inserted again: both
//! nodes accept the new transition once, and `aisctl shelf events` on node 1 prints it.
//!
//! Assumes: ipmi_sim, ipmitool, gcc and libopenipmi-dev installed (as `.ci/run` does; without
//! ipmi_sim the test fails, saying so), free ports from the kernel, a loaded 2-core machine
//! (generous waits).

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, free_ports, key_lines};
use totem_evlog::log::{LogEvent, read_log};

const LONG: Duration = Duration::from_secs(30);

/// The simulated shelf, stopped on drop.
struct Shelf {
    port: u16,
    dir: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hpi/tests/atca-sim/sim-shelf.sh")
}

impl Shelf {
    fn start() -> Shelf {
        let port = (0..200)
            .find_map(|_| {
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                let p = u.local_addr().unwrap().port();
                (p < 65000 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()).then_some(p)
            })
            .expect("a free port pair");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("shelf-sim-{port}"));
        let s = Shelf { port, dir };
        s.sh(&["start"]);
        s
    }

    fn sh(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .env("SIM_PORT", self.port.to_string())
            .env("SIM_DIR", &self.dir)
            .env("SIM_EXT", "1")
            .env(
                "SIM_BUILD_DIR",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("atca-sim-build"),
            )
            .env("SIM_LIFETIME", "300")
            .output()
            .expect("run sim-shelf.sh");
        assert!(
            out.status.success(),
            "sim-shelf.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn hs(&self, addr: u8, m: u8, cause: u8) {
        self.sh(&[
            "hs",
            &format!("0x{addr:02x}"),
            &m.to_string(),
            &cause.to_string(),
        ]);
    }
}

impl Drop for Shelf {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .env("SIM_PORT", self.port.to_string())
            .env("SIM_DIR", &self.dir)
            .output();
    }
}

/// One accepted shelf event in a node's event log: (SEL record, timestamp, description).
type Accepted = (u64, u64, String);

fn accepted(events: &Path) -> Vec<Accepted> {
    let Ok(file) = std::fs::File::open(events) else {
        return Vec::new();
    };
    read_log(std::io::BufReader::new(file))
        .expect("read event log")
        .iter()
        .filter_map(|e| match e {
            LogEvent::Service(s) if s.service == "shelf" && s.what == "accepted" => {
                let n = |k: &str| s.data.get(k).and_then(serde_json::Value::as_u64).unwrap();
                let text = s.data.get("event").and_then(|v| v.as_str()).unwrap();
                Some((n("record"), n("timestamp"), text.to_owned()))
            }
            _ => None,
        })
        .collect()
}

/// Waits until node `i`'s log holds a hot-swap line for each of `transitions`; returns them.
fn wait_for(c: &Cluster, i: usize, transitions: &[&str]) -> Vec<Accepted> {
    let deadline = Instant::now() + LONG;
    loop {
        let got = accepted(&c.node(i).events);
        if transitions
            .iter()
            .all(|t| got.iter().any(|(_, _, text)| text.contains(t)))
        {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "node {}: accepted shelf events {got:#?}\nlog:\n{}",
            i + 1,
            c.log(i)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No SEL key twice, and each of `transitions` once.
fn once_each(node: usize, got: &[Accepted], transitions: &[&str]) {
    let mut keys: Vec<(u64, u64)> = got.iter().map(|(r, t, _)| (*r, *t)).collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(
        keys.len(),
        before,
        "node {node}: a key accepted twice: {got:#?}"
    );
    for t in transitions {
        let n = got.iter().filter(|(_, _, text)| text.contains(t)).count();
        assert_eq!(n, 1, "node {node}: {t} accepted {n} times: {got:#?}");
    }
}

/// Whether the last `aisexec` started in `log` has discovered the shelf (at its start, or
/// after a first failed attempt).
fn watching(log: &str) -> bool {
    let last = log.rfind("starting as node").map_or(log, |at| &log[at..]);
    last.contains("hpi: connected to the shelf manager") || last.contains("shelf rediscovered")
}

#[test]
fn a_blades_hot_swap_is_logged_once_per_node_also_after_a_node_is_killed() {
    assert!(
        Command::new("ipmi_sim").arg("--version").output().is_ok(),
        "ipmi_sim is not installed (Debian: openipmi; .ci/run installs it)"
    );
    let shelf = Shelf::start();
    let ports = free_ports(2);
    let shelf_port = shelf.port;
    let mut c = Cluster::new(
        "shelf-cluster",
        2,
        |node| {
            let cred = node.dir.join("shelf.cred");
            std::fs::create_dir_all(&node.dir).unwrap();
            std::fs::write(&cred, "user = admin\npassword = admin\n").unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
            ais::harness::loopback_config(node, &ports, &(key_lines(&node.dir) + "\n"))
                + &format!(
                    "\n[hpi]\naddress = \"127.0.0.1\"\nport = {shelf_port}\ncredentials = {:?}\n{}",
                    cred.display().to_string(),
                    // Node 1 is the blade in slot 3 (Blade3).
                    if node.id == 1 { "slot = 3\n" } else { "" }
                )
        },
        Vec::new(),
    );
    c.start_all();
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], LONG);
    }
    // The watchers discovered the shelf: what follows comes from new SEL entries.
    let deadline = Instant::now() + LONG;
    while !(0..2).all(|i| watching(&c.log(i))) {
        assert!(Instant::now() < deadline, "{}\n{}", c.log(0), c.log(1));
        std::thread::sleep(Duration::from_millis(50));
    }
    // M1 -> M2 (handle closed) -> M3 -> M4: two HPI transitions.
    for (m, cause) in [(2, 2), (3, 1), (4, 0)] {
        shelf.hs(0x86, m, cause);
    }
    let first = [
        "INACTIVE -> INSERTION_PENDING",
        "INSERTION_PENDING -> ACTIVE",
    ];
    for i in 0..2 {
        wait_for(&c, i, &first);
        // Give late copies (the other node's watcher) time to arrive and be dropped.
        std::thread::sleep(Duration::from_millis(500));
        let got = accepted(&c.node(i).events);
        eprintln!("node {}: {got:#?}", i + 1);
        once_each(i + 1, &got, &first);
        // Blade3 is the board in slot 3 (its entity path's PHYSICAL_SLOT).
        assert!(
            got.iter()
                .all(|(_, _, t)| t.contains("hot-swap of slot 3 FRU 0")),
            "node {}: {got:#?}",
            i + 1
        );
    }
    // Node 1, configured as slot 3's blade, logs them as its own; node 2 does not.
    assert!(c.log(0).contains("(this node's blade)"), "{}", c.log(0));
    assert!(!c.log(1).contains("(this node's blade)"), "{}", c.log(1));
    // Blade3's temperature to 80 C crosses Upper Non-critical (not for the cluster) and
    // Upper Critical (for the cluster); back to 40 C deasserts both.
    shelf.sh(&["temp", "0x86", "80"]);
    shelf.sh(&["temp", "0x86", "40"]);
    let sensor = [
        "critical sensor 1 of slot 3 asserted (event type 0x01 offset 0x09)",
        "critical sensor 1 of slot 3 deasserted (event type 0x01 offset 0x09)",
    ];
    for i in 0..2 {
        wait_for(&c, i, &sensor);
        std::thread::sleep(Duration::from_millis(500));
        let got = accepted(&c.node(i).events);
        once_each(i + 1, &got, &sensor);
        assert!(
            !got.iter().any(|(_, _, t)| t.contains("offset 0x07")),
            "node {}: a non-critical threshold went to the cluster: {got:#?}",
            i + 1
        );
    }
    // Both watchers reported each transition: for each, the later report was either
    // dropped at delivery or known before it was submitted.
    let skipped: u64 = (0..2)
        .map(|i| c.counter(i, "shelf_duplicates") + c.counter(i, "shelf_observed_known"))
        .sum();
    assert!(skipped >= 2, "{skipped} copies dropped or not submitted");
    c.kill(1);
    c.wait_ring(0, &[1], LONG);
    for (m, cause) in [(5, 2), (6, 1), (1, 0)] {
        shelf.hs(0x86, m, cause);
    }
    let all = [
        "INACTIVE -> INSERTION_PENDING",
        "INSERTION_PENDING -> ACTIVE",
        "ACTIVE -> EXTRACTION_PENDING",
        "EXTRACTION_PENDING -> INACTIVE",
    ];
    wait_for(&c, 0, &all);
    std::thread::sleep(Duration::from_millis(500));
    let got = accepted(&c.node(0).events);
    eprintln!("node 1 after node 2 was killed: {got:#?}");
    once_each(1, &got, &all);

    // Node 2 restarts and rejoins; the blade is inserted again (a new SEL key): both nodes
    // accept it once, and node 1 accepts nothing else again.
    c.start(1);
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    let deadline = Instant::now() + LONG;
    while !watching(&c.log(1)) {
        assert!(Instant::now() < deadline, "{}", c.log(1));
        std::thread::sleep(Duration::from_millis(50));
    }
    // `aisctl shelf events` on node 1 follows what the cluster accepts.
    let follower = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("-s")
        .arg(&c.node(0).socket)
        .args(["shelf", "events", "--count", "1", "--seconds", "30"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start aisctl");
    let deadline = Instant::now() + LONG;
    while c.counter(0, "shelf_followers") == 0 {
        assert!(
            Instant::now() < deadline,
            "aisctl shelf events never followed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    shelf.hs(0x86, 2, 2);
    let deadline = Instant::now() + LONG;
    let (one, two) = loop {
        let one = accepted(&c.node(0).events);
        let two = accepted(&c.node(1).events);
        if one.len() > got.len() && two.iter().any(|a| a == one.last().unwrap()) {
            break (one, two);
        }
        assert!(
            Instant::now() < deadline,
            "{one:#?}\n{two:#?}\n{}",
            c.log(1)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("after node 2's restart: node 1 {one:#?}, node 2 {two:#?}");
    assert_eq!(accepted(&c.node(0).events).len(), got.len() + 1, "{one:#?}");
    assert!(one[got.len()].2.contains("INACTIVE -> INSERTION_PENDING"));
    once_each(1, &accepted(&c.node(0).events), &[]);
    once_each(2, &accepted(&c.node(1).events), &[]);
    let out = follower
        .wait_with_output()
        .expect("aisctl ends after one event");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let (record, timestamp, _) = &one[got.len()];
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("INACTIVE -> INSERTION_PENDING")
            && text.contains(&format!("SEL record {record} at {timestamp}")),
        "{text}"
    );
}
