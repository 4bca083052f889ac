//! The benchmark's view of this stack, end to end: `bench::stack::AisCluster` starts three
//! executives (crypto on), three `bench cpg-load` generators (senders 0, 1, 2, one per node)
//! run the load contract of `bench::load` through `Cluster::load_command`, and their reports
//! and latency files are checked: over kernel UDP on loopback, over UDP between the hosts of a
//! network-namespace lab, and (with the `dpdk` feature) over DPDK `net_af_packet` in a lab.
//!
//! Assumes: root (the lab's namespaces; CI runs as root: without root these tests fail, they
//! are not skipped), `ip` from iproute2, a shared 2-core machine. The load is low on purpose
//! (2000 msgs/s per sender, 1 KiB, one second counted after 300 ms of warm-up) so nothing
//! here depends on speed: only what a broken harness or stack would get wrong is asserted
//! (most of the offered messages delivered everywhere, no own message lost, file formats,
//! the final membership).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench::load::{Cluster, LoadReport, SAMPLE};
use bench::stack::{AisCluster, StackOptions, StackTransport};

const NODES: usize = 3;
const RATE: u64 = 2000;
const WARMUP_MS: u64 = 300;
const WINDOW_MS: u64 = 1000;

/// A scratch directory removed on drop (kept, with its path printed, when the test fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("bench-stack-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    Scratch(d)
}

/// Kills and reaps generators still running when the test fails.
struct Generators(Vec<Child>);

impl Drop for Generators {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read_line(out: &mut BufReader<ChildStdout>, what: &str) -> String {
    let mut line = String::new();
    let n = out.read_line(&mut line).expect("read generator stdout");
    assert!(n > 0, "generator closed stdout before {what}");
    line.trim_end().to_owned()
}

/// Runs the load through `cluster` and checks the reports and files.
fn run_load(cluster: &mut AisCluster<'_>, out: &Path) {
    let mut gens = Generators(Vec::new());
    let mut stdouts = Vec::new();
    for i in 0..NODES {
        let mut cmd = cluster.load_command(i % NODES + 1);
        cmd.args(["--group", "stacktest", "--members", &NODES.to_string()])
            .args(["--sender", &i.to_string(), "--size", "1024"])
            .args(["--rate", &RATE.to_string()])
            .args(["--warmup-ms", &WARMUP_MS.to_string()])
            .args(["--seconds-ms", &WINDOW_MS.to_string()])
            .arg("--out")
            .arg(out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("start cpg-load");
        stdouts.push(BufReader::new(child.stdout.take().expect("stdout")));
        gens.0.push(child);
    }
    for s in &mut stdouts {
        assert_eq!(read_line(s, "ready"), "ready");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let start = (now + Duration::from_millis(200)).as_nanos();
    for c in &mut gens.0 {
        let stdin = c.stdin.as_mut().expect("stdin");
        writeln!(stdin, "start {start}").expect("write start");
        stdin.flush().expect("flush start");
    }
    let mut reports = Vec::new();
    for (s, c) in stdouts.iter_mut().zip(&mut gens.0) {
        let line = read_line(s, "the report");
        let report: LoadReport = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("report {line:?} does not parse: {e}"));
        let status = c.wait().expect("wait for cpg-load");
        assert!(status.success(), "cpg-load exited with {status}");
        reports.push(report);
    }

    let offered = NODES as u64 * RATE * WINDOW_MS / 1000;
    for r in &reports {
        eprintln!(
            "node {} sender {:?}: sent {} delivered {} try_again {} missing_own {} confchg {:?}",
            r.node, r.sender, r.sent, r.delivered, r.try_again, r.missing_own, r.confchg
        );
    }
    for r in &reports {
        assert!(
            r.delivered * 10 >= offered * 8,
            "node {}: {} of {offered} offered messages delivered in the window",
            r.node,
            r.delivered
        );
        assert!(r.sent > 0, "{r:?}");
        assert_eq!(r.missing_own, 0, "{r:?}");
        let self_len = std::fs::metadata(&r.self_lat_file)
            .expect("self latency file")
            .len();
        assert_eq!(
            self_len,
            4 * r.sent,
            "one u32 per own message in the window"
        );
        let all = std::fs::read(&r.all_lat_file).expect("all latency file");
        assert!(!all.is_empty(), "sampled latencies recorded");
        assert_eq!(all.len() % 12, 0, "12-byte records");
        for rec in all.chunks_exact(12) {
            let sender = u32::from_le_bytes(rec[0..4].try_into().unwrap());
            let seq = u32::from_le_bytes(rec[4..8].try_into().unwrap());
            assert!((sender as usize) < NODES, "sender {sender}");
            assert_eq!(u64::from(seq) % SAMPLE, 0, "sampled sequence numbers only");
        }
        let last = r.confchg.last().expect("configuration changes listed");
        assert_eq!(last.1, NODES as u32, "{:?}", r.confchg);
    }
    let pids = cluster.daemon_pids();
    assert!(pids.iter().all(Option::is_some), "{pids:?}");
}

fn options(transport: StackTransport, dir: &Path) -> StackOptions {
    StackOptions {
        nodes: NODES,
        transport,
        crypto: true,
        mtu: 1500,
        dir: dir.join("cluster"),
        busy_poll: false,
        settings: vec![("totem".into(), "token".into(), "200".into())],
        program: PathBuf::from(env!("CARGO_BIN_EXE_bench")),
    }
}

#[test]
fn udp_loopback_load() {
    let dir = scratch("udp");
    let mut cluster =
        AisCluster::start(None, &options(StackTransport::Udp, &dir.0)).expect("start cluster");
    assert_eq!(cluster.system(), "openais-rs");
    assert_eq!(cluster.transport(), "udp");
    // The `--set` key reached the executives' configuration, in its table.
    let config = ais::config::Config::from_file(&cluster.node_dir(1).join("aisexec.toml"))
        .expect("node 1's configuration parses");
    assert_eq!(config.totem.token, 200);
    run_load(&mut cluster, &dir.0.join("out"));
    // kill: the executive goes, its pid with it.
    cluster.kill(3).expect("kill node 3");
    assert_eq!(cluster.daemon_pids()[2], None);
}

#[test]
fn udp_netns_load() {
    let lab = netlab::Lab::new(NODES, 1500).expect("network-namespace lab (needs root)");
    let dir = scratch("udp-netns");
    let mut cluster = AisCluster::start(Some(&lab), &options(StackTransport::UdpNetns, &dir.0))
        .expect("start cluster");
    run_load(&mut cluster, &dir.0.join("out"));
    drop(cluster);
    drop(lab);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_af_packet_load() {
    let lab = netlab::Lab::new(NODES, 1500).expect("network-namespace lab (needs root)");
    let dir = scratch("dpdk-afp");
    let mut cluster = AisCluster::start(Some(&lab), &options(StackTransport::DpdkAfPacket, &dir.0))
        .expect("start cluster");
    run_load(&mut cluster, &dir.0.join("out"));
    drop(cluster);
    drop(lab);
}

#[test]
fn a_lab_transport_without_a_lab_is_refused() {
    let dir = scratch("nolab");
    let err = AisCluster::start(None, &options(StackTransport::UdpNetns, &dir.0))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("lab"), "{err}");
}
