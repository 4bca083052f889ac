//! The corosync peer end to end: three corosync daemons (knet, crypto on) in a network-
//! namespace lab, one C load generator (`bench/peer/cpgload.c`) per node speaking the
//! `bench::load` contract, then a daemon killed.
//!
//! Assumes: root (network namespaces and mounts; CI runs as root, and without root this test
//! fails rather than skips), corosync 3 and libcpg-dev installed (`apt-get install corosync
//! libcpg-dev`), `cc`, `pkg-config`, `nsenter`/`unshare` (util-linux). The load is low (3
//! senders × 2000 messages/s of 1 KiB for 1 s) so that it holds on a shared 2-core machine:
//! what is asserted is that the contract is kept (reports, files, no lost own messages), not
//! a performance figure.

#![forbid(unsafe_code)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench::corosync::{CorosyncCluster, CorosyncOptions, build_cpgload};
use bench::load::{Cluster, LoadReport};

const RATE: u64 = 2000;
const WARMUP_MS: u64 = 300;
const WINDOW_MS: u64 = 1000;
const SIZE: usize = 1024;

/// Generators, killed and reaped if the test fails half-way.
struct Generators(Vec<Child>);

impl Drop for Generators {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The lines of a child's stdout, read by a thread so that reads can time out.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `/proc/<pid>/stat` exists and the process is not a zombie.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

#[test]
fn corosync_peer_keeps_the_load_contract() {
    let work: PathBuf = std::env::temp_dir().join(format!("corosync-peer-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let out = work.join("lat");
    fs::create_dir_all(&out).unwrap();

    // Declared before the cluster and the generators: dropped last.
    let lab = netlab::Lab::new(3, 1500).expect("lab (needs root)");
    let cpgload = build_cpgload(&work.join("bin")).expect("building cpgload");
    let started = Instant::now();
    let mut cluster = CorosyncCluster::start(
        &lab,
        &CorosyncOptions {
            nodes: 3,
            crypto: true,
            dir: work.join("corosync"),
            cpgload,
            priority: -7,
        },
    )
    .expect("starting corosync");
    eprintln!("ring of 3 formed after {:?}", started.elapsed());
    // Every daemon runs at the nice value given (`system.priority`), for its whole process.
    let conf_dir = fs::canonicalize(work.join("corosync"))
        .unwrap()
        .display()
        .to_string();
    let mut daemons = 0;
    for entry in fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.starts_with("corosync ") || !cmdline.contains(&conf_dir) {
            continue;
        }
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap();
        let nice: i32 = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(16)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(nice, -7, "{cmdline}");
        daemons += 1;
    }
    assert_eq!(daemons, 3, "three corosync daemons under {conf_dir}");
    assert_eq!(cluster.system(), "corosync");
    assert_eq!(cluster.transport(), "knet");
    assert_eq!(cluster.nodes(), 3);
    let pids = cluster.daemon_pids();
    assert!(
        pids.iter().all(|p| p.is_some_and(alive)),
        "daemons: {pids:?}"
    );

    // One sender per node.
    let mut gens = Generators(Vec::new());
    let mut stdins: Vec<ChildStdin> = Vec::new();
    let mut outs = Vec::new();
    for node in 1..=3 {
        let mut cmd = cluster.load_command(node);
        cmd.args(["--group", "bench-peer", "--members", "3", "--sender"])
            .arg((node - 1).to_string())
            .args(["--size", &SIZE.to_string(), "--rate", &RATE.to_string()])
            .args(["--batch", "8"])
            .args(["--warmup-ms", &WARMUP_MS.to_string()])
            .args(["--seconds-ms", &WINDOW_MS.to_string()])
            // Relative on purpose: the generator runs in the daemon's mount namespace, and
            // the path must still resolve against this working directory.
            .args(["--out", "lat"])
            .current_dir(&work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawning cpgload");
        stdins.push(child.stdin.take().unwrap());
        outs.push(lines_of(&mut child));
        gens.0.push(child);
    }
    for (i, rx) in outs.iter().enumerate() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("generator on node {}: no \"ready\": {e}", i + 1));
        assert_eq!(line, "ready", "generator on node {}", i + 1);
    }
    let start = realtime_ns() + 200_000_000;
    for stdin in &mut stdins {
        writeln!(stdin, "start {start}").unwrap();
        stdin.flush().unwrap();
    }
    let mut reports = Vec::new();
    for (i, rx) in outs.iter().enumerate() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("generator on node {}: no report: {e}", i + 1));
        let report: LoadReport = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("node {}: bad report {line:?}: {e}", i + 1));
        reports.push(report);
    }
    for (i, child) in gens.0.iter_mut().enumerate() {
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "generator on node {} exited {status}",
            i + 1
        );
    }

    let offered = 3 * RATE * WINDOW_MS / 1000;
    for (i, r) in reports.iter().enumerate() {
        let node = i + 1;
        eprintln!("{r:?}");
        assert_eq!(r.node as usize, node, "node id");
        assert_eq!(
            r.pid,
            gens.0[i].id(),
            "pid is the generator's (nsenter execs in place)"
        );
        assert_eq!(r.sender, Some(i as u32));
        // Paced, open loop: message k is due at start + k/RATE, and a stall is caught up
        // back to back. So the window holds about RATE x window messages, more when the
        // sender stalled in the warm-up (its backlog is sent in the window: seen once on a
        // loaded CI machine, 2246 of 2000), but never more than were due from the start to
        // the window's end (pacing works: an unpaced sender would send many times that).
        let own = RATE * WINDOW_MS / 1000;
        let due = RATE * (WARMUP_MS + WINDOW_MS) / 1000 + 1;
        assert!(
            r.sent + own / 20 >= own && r.sent <= due,
            "node {node}: sent {} in the window, paced for {own} (at most {due} due)",
            r.sent
        );
        assert!(
            r.delivered * 10 >= offered * 8,
            "node {node}: delivered {} of {offered} offered",
            r.delivered
        );
        assert_eq!(
            r.delivered_bytes,
            r.delivered * SIZE as u64,
            "node {node}: bytes"
        );
        assert_eq!(r.missing_own, 0, "node {node}: own messages lost");

        // One u32 per own window message delivered back: exactly `sent` when none is missing.
        let out = fs::canonicalize(&out).unwrap();
        assert!(r.self_lat_file.starts_with(&out) && r.all_lat_file.starts_with(&out));
        assert_eq!(
            r.self_lat_file.file_name().unwrap().to_string_lossy(),
            format!("self-{node}-{}.lat", r.pid)
        );
        let self_lat = fs::read(&r.self_lat_file).unwrap();
        assert_eq!(self_lat.len() % 4, 0);
        assert_eq!(
            (self_lat.len() / 4) as u64,
            r.sent,
            "node {node}: self latencies"
        );
        let lat: Vec<u32> = self_lat
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert!(
            lat.iter().all(|&us| us < 2_000_000),
            "node {node}: latency over 2 s"
        );

        // Every sender's sampled window messages, as (sender, seq, latency) triples.
        let all = fs::read(&r.all_lat_file).unwrap();
        assert_eq!(all.len() % 12, 0);
        let triples: Vec<[u32; 3]> = all
            .chunks_exact(12)
            .map(|c| {
                let w = |k: usize| u32::from_le_bytes(c[4 * k..4 * k + 4].try_into().unwrap());
                [w(0), w(1), w(2)]
            })
            .collect();
        for s in 0..3 {
            let n = triples.iter().filter(|t| t[0] == s).count() as u64;
            assert!(
                n * 10 >= (own / 16) * 8,
                "node {node}: {n} samples of sender {s}"
            );
        }
        assert!(
            triples.iter().all(|t| t[1] % 16 == 0),
            "node {node}: unsampled seq"
        );

        // The group had its 3 members before the start (later changes are generators leaving
        // while others still drain).
        assert!(
            !r.confchg.is_empty(),
            "node {node}: no configuration change"
        );
        let before: Vec<_> = r.confchg.iter().filter(|c| c.0 < start).collect();
        assert_eq!(
            before.last().map(|c| c.1),
            Some(3),
            "node {node}: {:?}",
            r.confchg
        );
        assert!(r.confchg.iter().all(|c| (1..=3).contains(&c.1)));
    }

    // Kill node 3: the survivors stay up and form a ring of two.
    cluster.kill(3).expect("killing node 3");
    assert_eq!(cluster.daemon_pids()[2], None);
    assert!(cluster.kill(3).is_err(), "a second kill is an error");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pids = cluster.daemon_pids();
        for (i, pid) in pids.iter().take(2).enumerate() {
            assert!(pid.is_some_and(alive), "daemon of node {} died", i + 1);
        }
        let m: Vec<_> = (1..=2).map(|n| cluster.members(n).ok()).collect();
        if m.iter().all(|&m| m == Some(2)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "survivors did not form a ring of 2: {m:?}\n{}\n{}",
            cluster.log_tail(1),
            cluster.log_tail(2)
        );
        thread::sleep(Duration::from_millis(200));
    }
    let killed_node = cluster.load_command(3).output().unwrap();
    assert!(!killed_node.status.success());

    let pids: Vec<u32> = cluster.daemon_pids().into_iter().flatten().collect();
    drop(gens);
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "corosync {pid} survived the drop");
    }
    drop(lab);
    let _ = fs::remove_dir_all(&work);
}
