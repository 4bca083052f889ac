//! `aisexec` as real processes: three executives on loopback (kernel UDP, unicast member list)
//! form one ring; `kill -9` of one makes the others report it failed; SIGTERM of another makes
//! it leave gracefully (reported as left) and exit 0; the ring sequence number is persisted.
//! The Totem thread's nice value is applied, or refused with a warning and the executive runs.
//!
//! Assumes: loopback only, root or not (as root, `setpriv` from util-linux takes
//! `CAP_SYS_NICE` away for the refusal case), free UDP ports on 127.0.0.1 (taken from the kernel by
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
        Cluster::start_with(n, name, "", &[])
    }

    /// As `start`, with `extra` appended to each node's `[aisexec]` table and each executive
    /// started through `wrapper` (a command and its arguments that runs the rest, such as
    /// `setpriv ...`; empty: started directly).
    fn start_with(n: u32, name: &str, extra: &str, wrapper: &[&str]) -> Cluster {
        let base = std::env::temp_dir().join(format!("aisexec-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let ports = free_ports(n as usize);
        let (tx, lines) = channel();
        let mut nodes = Vec::new();
        for id in 1..=n {
            let dir = base.join(format!("node{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("aisexec.toml");
            std::fs::write(&file, config(id, &ports, &dir) + extra).unwrap();
            let exe = env!("CARGO_BIN_EXE_aisexec");
            let mut command = match wrapper.split_first() {
                Some((program, args)) => {
                    let mut c = Command::new(program);
                    c.args(args).arg(exe);
                    c
                }
                None => Command::new(exe),
            };
            let mut child = command
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

/// The nice value of `pid`'s thread named `name` (field 19 of its `stat`), if it has one.
fn thread_nice(pid: u32, name: &str) -> Option<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.map_while(Result::ok) {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // The fields after the name, which ends at the last ')': state is field 3, nice 19.
        let rest = &stat[stat.rfind(')')? + 2..];
        return rest.split(' ').nth(16)?.parse().ok();
    }
    None
}

#[test]
fn the_totem_thread_runs_at_its_nice_value_or_says_why_not() {
    // A higher value needs no privilege: the Totem thread gets it, the others keep theirs.
    let mut c = Cluster::start_with(1, "nice", "totem_nice = 7\n", &[]);
    c.wait_for(1, &["Totem thread runs at nice 7"], Duration::from_secs(20));
    let pid = c.nodes[0].child.id();
    assert_eq!(thread_nice(pid, "totem-1"), Some(7));
    assert_eq!(
        thread_nice(pid, "aisexec"),
        Some(0),
        "the main thread keeps 0"
    );
    drop(c);

    // A lower value needs CAP_SYS_NICE. Without it the executive still runs, at the value it
    // has, and says so. As root the capability is taken away with setpriv (util-linux);
    // otherwise the test's user lacks it already.
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let wrapper: &[&str] = if root {
        &[
            "setpriv",
            "--inh-caps=-sys_nice",
            "--bounding-set=-sys_nice",
        ]
    } else {
        &[]
    };
    let mut c = Cluster::start_with(1, "nice-refused", "totem_nice = -5\n", wrapper);
    c.wait_for(
        1,
        &["cannot give the Totem thread nice -5", "CAP_SYS_NICE"],
        Duration::from_secs(20),
    );
    c.wait_for(
        1,
        &["regular configuration", "members=[1]"],
        Duration::from_secs(20),
    );
    let pid = c.nodes[0].child.id();
    assert_eq!(thread_nice(pid, "totem-1"), Some(0));
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
