//! Real `aisexec` processes for integration tests: generated configurations, start, SIGKILL,
//! SIGTERM, status over IPC, CPG clients, and the checker on the event logs.
//!
//! Each node gets a directory under the system temporary directory (configuration, IPC
//! socket, ring sequence file, `aisexec.log`, `events.jsonl`). Processes are killed and the
//! directory removed when the [`Cluster`] is dropped; when the test is panicking the directory
//! is kept and its path printed, so the logs can be read.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ais_client::Admin;
use ais_client::cpg::{Cpg, CpgEvent};
use ais_proto::ipc::Status;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How to start node `i` (0-based): a command that runs the given program inside the node's
/// environment (plain, or `ip netns exec NS`).
pub type Launcher = Box<dyn Fn(usize, &Path) -> Command>;

/// One node's files and process.
pub struct Node {
    /// Node id (1-based).
    pub id: u32,
    /// Its directory.
    pub dir: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its IPC socket.
    pub socket: PathBuf,
    /// Its event log.
    pub events: PathBuf,
    child: Option<Child>,
}

/// A set of aisexec processes.
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<Node>,
    base: PathBuf,
    launcher: Launcher,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("cluster files kept in {}", self.base.display());
        } else {
            let _ = fs::remove_dir_all(&self.base);
        }
    }
}

/// Free UDP ports on 127.0.0.1, from the kernel.
pub fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().expect("addr").port())
        .collect()
}

/// The `[totem]` key lines for the cluster's key file (`authkey` next to the node
/// directories, written by [`Cluster::new`]): secauth on, as by default.
pub fn key_lines(dir: &Path) -> String {
    let key = dir
        .parent()
        .expect("node dirs have a parent")
        .join("authkey");
    format!("secauth = true\nkeyfile = \"{}\"\n", key.display())
}

/// The configuration of node `id` of a loopback cluster (`udpu`, one port per node, secauth
/// on with the cluster's key), with `extra_totem` lines appended to `[totem]`.
pub fn loopback_config(id: u32, ports: &[u16], dir: &Path, extra_totem: &str) -> String {
    let mut t = format!(
        "[totem]\nnodeid = {id}\ntransport = \"udpu\"\n{}{extra_totem}\n\n\
         [totem.interface]\nmcastport = {}\n\n",
        key_lines(dir),
        ports[0]
    );
    for (i, port) in ports.iter().enumerate() {
        t += &format!(
            "[[nodelist.node]]\nnodeid = {}\nring0_addr = \"127.0.0.1\"\nport = {port}\n\n",
            i + 1
        );
    }
    t + &aisexec_section(dir)
}

/// The `[aisexec]` table for a node directory.
pub fn aisexec_section(dir: &Path) -> String {
    format!(
        "[aisexec]\nipc_socket = \"{d}/aisexec.sock\"\nstate_dir = \"{d}\"\n",
        d = dir.display()
    )
}

/// How the nodes of a network-namespace lab find each other.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `transport = "udp"`: IP multicast, members discovered.
    Multicast,
    /// `transport = "udpu"`: unicast to every node of the member list.
    Unicast,
}

/// The configuration of host `id` of `lab` (secauth on with the cluster's key).
pub fn netns_config(mode: Mode, mtu: u32, id: u32, lab: &netlab::Lab, dir: &Path) -> String {
    let addr = lab.addr(id as usize);
    let mut t = match mode {
        Mode::Multicast => format!(
            "[totem]\nnodeid = {id}\ntransport = \"udp\"\n{}netmtu = {mtu}\n\n\
             [totem.interface]\nbindnetaddr = \"{addr}\"\nmcastaddr = \"239.192.77.1\"\nmcastport = 5405\nttl = 1\n\n",
            key_lines(dir)
        ),
        Mode::Unicast => {
            let mut t = format!(
                "[totem]\nnodeid = {id}\ntransport = \"udpu\"\n{}netmtu = {mtu}\n\n\
                 [totem.interface]\nmcastport = 5405\n\n",
                key_lines(dir)
            );
            for h in 1..=lab.hosts() {
                t += &format!(
                    "[[nodelist.node]]\nnodeid = {h}\nring0_addr = \"{}\"\n\n",
                    lab.addr(h)
                );
            }
            t
        }
    };
    t += &aisexec_section(dir);
    t
}

impl Cluster {
    /// One node per host of `lab`, each run inside its namespace (`ip netns exec`).
    pub fn netns(name: &str, lab: &netlab::Lab, mode: Mode, mtu: u32) -> Cluster {
        let hosts: Vec<String> = (1..=lab.hosts()).map(|i| lab.netns(i).to_owned()).collect();
        Cluster::new(
            name,
            hosts.len(),
            |id, dir| netns_config(mode, mtu, id, lab, dir),
            Box::new(move |i, program| {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &hosts[i]]).arg(program);
                cmd
            }),
        )
    }

    /// `n` nodes whose configurations `config(id, dir)` returns, started by `launcher`.
    pub fn new(
        name: &str,
        n: usize,
        config: impl Fn(u32, &Path) -> String,
        launcher: Launcher,
    ) -> Cluster {
        let base = std::env::temp_dir().join(format!("ais-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).expect("cluster dir");
        let key = ais::keyfile::KeyMaterial {
            epoch: 0,
            secret: ais::keyfile::generate().expect("random key"),
        };
        ais::keyfile::write(&base.join("authkey"), &key, false).expect("key file");
        let nodes = (0..n)
            .map(|i| {
                let id = i as u32 + 1;
                let dir = base.join(format!("node{id}"));
                fs::create_dir_all(&dir).expect("node dir");
                let cfg = dir.join("aisexec.toml");
                fs::write(&cfg, config(id, &dir)).expect("config");
                Node {
                    id,
                    socket: dir.join("aisexec.sock"),
                    events: dir.join("events.jsonl"),
                    config: cfg,
                    dir,
                    child: None,
                }
            })
            .collect();
        Cluster {
            nodes,
            base,
            launcher,
        }
    }

    /// `n` nodes on loopback with `extra_totem` settings, run directly.
    pub fn loopback(name: &str, n: usize, extra_totem: &str) -> Cluster {
        let ports = free_ports(n);
        Cluster::new(
            name,
            n,
            |id, dir| loopback_config(id, &ports, dir, extra_totem),
            Box::new(|_, program| Command::new(program)),
        )
    }

    /// Starts node `i` (0-based) with its event log.
    pub fn start(&mut self, i: usize) {
        let n = &self.nodes[i];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("aisexec.log"))
            .expect("log file");
        let mut cmd = (self.launcher)(i, Path::new(env!("CARGO_BIN_EXE_aisexec")));
        cmd.arg("--config")
            .arg(&n.config)
            .arg("--event-log")
            .arg(&n.events)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().expect("start aisexec");
        self.nodes[i].child = Some(child);
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Sends `signal` to node `i`'s process (SIGSTOP and SIGCONT pause and resume it).
    pub fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        let child = self.nodes[i].child.as_ref().expect("node running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal");
    }

    /// SIGKILL of node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().expect("kill");
            c.wait().expect("wait");
        }
    }

    /// SIGTERM of node `i`; asserts it exits 0 within 5 s.
    pub fn terminate(&mut self, i: usize) {
        let Some(mut c) = self.nodes[i].child.take() else {
            return;
        };
        kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                assert!(status.success(), "node {} exited with {status}", i + 1);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not stop within 5 s",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Node `i`'s status, if it answers.
    pub fn status(&self, i: usize) -> Option<Status> {
        Admin::connect(&self.nodes[i].socket).ok()?.status().ok()
    }

    /// A counter of node `i`'s status.
    pub fn counter(&self, i: usize, name: &str) -> u64 {
        let s = self.status(i).expect("status");
        s.counters
            .iter()
            .find(|c| &c.name[..] == name.as_bytes())
            .unwrap_or_else(|| panic!("no counter {name}"))
            .value
    }

    /// Waits until node `i` is operational with exactly `members`.
    pub fn wait_ring(&self, i: usize, members: &[u32], within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(s) = self.status(i) {
                if &s.state[..] == b"operational" && s.members == members {
                    return;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "node {} has no operational ring of {members:?} within {within:?}; last status {last:?}; log:\n{}",
            i + 1,
            fs::read_to_string(self.nodes[i].dir.join("aisexec.log")).unwrap_or_default()
        );
    }

    /// What node `i`'s executive has logged so far.
    pub fn log(&self, i: usize) -> String {
        fs::read_to_string(self.nodes[i].dir.join("aisexec.log")).unwrap_or_default()
    }

    /// A CPG client of node `i` (retrying the connect for up to 5 s).
    pub fn cpg(&self, i: usize) -> Cpg {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Cpg::connect(&self.nodes[i].socket) {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("connect to node {}: {e}", i + 1),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The checker's report on every node's event log.
    pub fn check_logs(&self) -> totem_evlog::checker::Report {
        let paths: Vec<PathBuf> = self.nodes.iter().map(|n| n.events.clone()).collect();
        ais::eventlog::check_files(&paths).expect("read event logs")
    }
}

/// Dispatches until a membership change satisfying `want` arrives (panics after `within`).
/// Deliveries met on the way are returned.
pub fn wait_confchg(
    cpg: &mut Cpg,
    within: Duration,
    want: impl Fn(&CpgEvent) -> bool,
) -> (CpgEvent, Vec<CpgEvent>) {
    let deadline = Instant::now() + within;
    let mut other = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no matching membership change within {within:?}; saw {other:?}"
        );
        match cpg.dispatch(Some(left)).expect("dispatch") {
            Some(ev @ CpgEvent::ConfChg { .. }) if want(&ev) => return (ev, other),
            Some(ev) => other.push(ev),
            None => {}
        }
    }
}

/// Every client sends `count` messages of `size` bytes to `group` (at least 4: the first 4 are the
/// message index; every third message safe, the others agreed), dispatching as it goes, then
/// collects until it has every client's messages. Returns each client's delivery order as
/// (sender node, index).
pub fn cpg_traffic(
    clients: &mut [&mut Cpg],
    group: &[u8],
    count: u32,
    size: usize,
) -> Vec<Vec<(u32, u32)>> {
    use ais_proto::ipc::Guarantee;
    let expect = count as usize * clients.len();
    std::thread::scope(|s| {
        let hs: Vec<_> = clients
            .iter_mut()
            .map(|cpg| {
                s.spawn(move || {
                    let mut order = Vec::with_capacity(expect);
                    let note = |ev: Option<CpgEvent>, order: &mut Vec<(u32, u32)>| {
                        if let Some(CpgEvent::Deliver { sender, data, .. }) = ev {
                            let i = u32::from_le_bytes(data[..4].try_into().expect("index"));
                            order.push((sender.node, i));
                        }
                    };
                    let long = Duration::from_secs(20);
                    for i in 0..count {
                        let mut m = i.to_le_bytes().to_vec();
                        m.resize(size.max(4), 0x5a);
                        let g = if i % 3 == 0 {
                            Guarantee::Safe
                        } else {
                            Guarantee::Agreed
                        };
                        cpg.mcast_retry(group, g, &m, long).expect("mcast");
                        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
                            note(Some(ev), &mut order);
                        }
                    }
                    let deadline = Instant::now() + long;
                    while order.len() < expect {
                        assert!(
                            Instant::now() < deadline,
                            "{} of {expect} delivered",
                            order.len()
                        );
                        note(
                            cpg.dispatch(Some(Duration::from_secs(1)))
                                .expect("dispatch"),
                            &mut order,
                        );
                    }
                    order
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    })
}

/// Asserts that every order has `expect` deliveries, no duplicate, and is the same.
pub fn assert_one_order(orders: &[Vec<(u32, u32)>], expect: usize) {
    for o in orders {
        assert_eq!(o.len(), expect);
        let unique: std::collections::HashSet<_> = o.iter().collect();
        assert_eq!(unique.len(), expect, "no duplicates");
        assert_eq!(o, &orders[0], "one order at every node");
    }
}
