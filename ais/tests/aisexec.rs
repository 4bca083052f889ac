//! `aisexec` as real processes: three executives on loopback (kernel UDP, unicast member list)
//! form one ring; `kill -9` of one makes the others report it failed; SIGTERM of another makes
//! it leave gracefully (reported as left) and exit 0; the ring sequence number is persisted.
//!
//! Assumes: loopback only, no root, free UDP ports on 127.0.0.1 (taken from the kernel by
//! binding port 0 just before the start), 2 cores; waits are generous (seconds) because the
//! machine may be loaded. The processes are killed when the test ends, whatever happens.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    state_dir: PathBuf,
}

struct Cluster {
    nodes: Vec<Node>,
    lines: Receiver<(u32, String)>,
    seen: Vec<(u32, String)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

fn config(id: u32, ports: &[u16], dir: &Path) -> String {
    let mut text = format!(
        "[totem]\nnodeid = {id}\ntransport = \"udpu\"\nsecauth = false\n\n[totem.interface]\nmcastport = {}\n\n",
        ports[0]
    );
    for (i, port) in ports.iter().enumerate() {
        text += &format!(
            "[[nodelist.node]]\nnodeid = {}\nring0_addr = \"127.0.0.1\"\nport = {port}\n\n",
            i + 1
        );
    }
    text += &format!(
        "[aisexec]\nipc_socket = \"{}/aisexec.sock\"\nstate_dir = \"{}\"\n",
        dir.display(),
        dir.display()
    );
    text
}

impl Cluster {
    fn start(n: u32, name: &str) -> Cluster {
        let base = std::env::temp_dir().join(format!("aisexec-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let ports = free_ports(n as usize);
        let (tx, lines) = channel();
        let mut nodes = Vec::new();
        for id in 1..=n {
            let dir = base.join(format!("node{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("aisexec.toml");
            std::fs::write(&file, config(id, &ports, &dir)).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_aisexec"))
                .arg("--config")
                .arg(&file)
                .env("RUST_LOG", "info")
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("start aisexec");
            let stderr = child.stderr.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if tx.send((id, line)).is_err() {
                        break;
                    }
                }
            });
            nodes.push(Node {
                child,
                state_dir: dir,
            });
        }
        Cluster {
            nodes,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until `node` logged a line containing every one of `parts`.
    fn wait_for(&mut self, node: u32, parts: &[&str], within: Duration) {
        let matches = |(n, l): &(u32, String)| *n == node && parts.iter().all(|p| l.contains(p));
        let deadline = Instant::now() + within;
        if self.seen.iter().any(matches) {
            return;
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok(line) = self.lines.recv_timeout(left) {
                let hit = matches(&line);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        let log: Vec<String> = self
            .seen
            .iter()
            .map(|(n, l)| format!("node {n}: {l}"))
            .collect();
        panic!(
            "node {node} never logged {parts:?} within {within:?}; log:\n{}",
            log.join("\n")
        );
    }
}

#[test]
fn three_processes_form_a_ring_detect_a_crash_and_a_graceful_leave() {
    let mut c = Cluster::start(3, "ring");
    for node in 1..=3 {
        c.wait_for(
            node,
            &["regular configuration", "members=[1,2,3]"],
            Duration::from_secs(20),
        );
    }
    c.nodes[2].child.kill().unwrap(); // SIGKILL: a crash
    for node in 1..=2 {
        c.wait_for(
            node,
            &["regular configuration", "members=[1,2]", "failed=[3]"],
            Duration::from_secs(10),
        );
    }
    let pid = c.nodes[1].child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    c.wait_for(
        1,
        &["regular configuration", "members=[1]", "left=[2]"],
        Duration::from_secs(10),
    );
    let status = c.nodes[1].child.wait().unwrap();
    assert!(
        status.success(),
        "a node told to stop leaves and exits 0, got {status}"
    );
    let persisted: u64 = std::fs::read_to_string(c.nodes[0].state_dir.join("ringseq"))
        .expect("ring sequence file written")
        .trim()
        .parse()
        .unwrap();
    assert!(persisted >= 4, "persisted ring seq {persisted}");
}

#[test]
fn a_broken_configuration_is_refused_with_its_location() {
    let dir = std::env::temp_dir().join(format!("aisexec-test-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[totem]\nnodeid = 1\ntoken = \"fast\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aisexec"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:") && stderr.contains("totem.token"),
        "{stderr}"
    );
}
