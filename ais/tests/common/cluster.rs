//! Real `aisexec` processes for integration tests: [`ais::harness::ProcessCluster`] with
//! panicking helpers, the loopback and network-namespace configurations, CPG clients, and the
//! checker on the event logs.
//!
//! Each node gets a directory under the system temporary directory (configuration, IPC
//! socket, ring sequence file, `aisexec.log`, `events.jsonl`). Processes are killed and the
//! directory removed when the [`Cluster`] is dropped; when the test is panicking the directory
//! is kept and its path printed, so the logs can be read.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ais::harness::{self, ProcessCluster};
use ais_client::cpg::{Cpg, CpgEvent};
use ais_proto::ipc::Status;

pub use ais::harness::Node;

/// A set of aisexec processes.
pub struct Cluster {
    harness: ProcessCluster,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster files kept in {}", self.harness.dir().display());
            self.harness.keep(true);
        }
    }
}

/// Free UDP ports on 127.0.0.1, from the kernel.
pub fn free_ports(n: usize) -> Vec<u16> {
    harness::free_ports(n).expect("free UDP ports")
}

/// The `[totem]` key lines for the cluster's key file (`authkey` next to the node
/// directories, written by [`Cluster::new`]): secauth on, as by default.
pub fn key_lines(dir: &Path) -> String {
    let key = dir
        .parent()
        .expect("node dirs have a parent")
        .join(harness::KEY_FILE);
    harness::key_lines(&key)
}

/// The `[aisexec]` table for a node.
pub fn aisexec_section(node: &Node) -> String {
    harness::aisexec_section(node)
}

/// How the nodes of a network-namespace lab find each other.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `transport = "udp"`: IP multicast, members discovered.
    Multicast,
    /// `transport = "udpu"`: unicast to every node of the member list.
    Unicast,
}

/// The configuration of host `node.id` of `lab` (secauth on with the cluster's key).
pub fn netns_config(mode: Mode, mtu: u32, node: &Node, lab: &netlab::Lab) -> String {
    let id = node.id;
    let addr = lab.addr(id as usize);
    let mut t = match mode {
        Mode::Multicast => format!(
            "[totem]\nnodeid = {id}\ntransport = \"udp\"\n{}netmtu = {mtu}\n\n\
             [totem.interface]\nbindnetaddr = \"{addr}\"\nmcastaddr = \"239.192.77.1\"\nmcastport = 5405\nttl = 1\n\n",
            key_lines(&node.dir)
        ),
        Mode::Unicast => {
            let mut t = format!(
                "[totem]\nnodeid = {id}\ntransport = \"udpu\"\n{}netmtu = {mtu}\n\n\
                 [totem.interface]\nmcastport = 5405\n\n",
                key_lines(&node.dir)
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
    t += &aisexec_section(node);
    t
}

/// The namespaces of `lab`'s hosts, for [`Cluster::new`].
pub fn lab_netns(lab: &netlab::Lab) -> Vec<String> {
    (1..=lab.hosts()).map(|i| lab.netns(i).to_owned()).collect()
}

impl Cluster {
    /// One node per host of `lab`, each run inside its namespace (`ip netns exec`).
    pub fn netns(name: &str, lab: &netlab::Lab, mode: Mode, mtu: u32) -> Cluster {
        Cluster::new(
            name,
            lab.hosts(),
            |node| netns_config(mode, mtu, node, lab),
            lab_netns(lab),
        )
    }

    /// `n` nodes whose configurations `config(node)` returns, node index `i` run in namespace
    /// `netns[i]` (none: directly), all with their event logs.
    pub fn new(
        name: &str,
        n: usize,
        config: impl Fn(&Node) -> String,
        netns: Vec<String>,
    ) -> Cluster {
        Cluster::new_with_args(name, n, config, netns, |_| Vec::new())
    }

    /// As [`Cluster::new`], every `aisexec` started with the extra arguments `args(dir)`
    /// (`dir`: the cluster's directory, which holds the node directories).
    pub fn new_with_args(
        name: &str,
        n: usize,
        config: impl Fn(&Node) -> String,
        netns: Vec<String>,
        args: impl FnOnce(&Path) -> Vec<std::ffi::OsString>,
    ) -> Cluster {
        let base = std::env::temp_dir().join(format!("ais-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let args = args(&base);
        let mut builder = ProcessCluster::builder(base, n, env!("CARGO_BIN_EXE_aisexec"));
        for a in args {
            builder = builder.arg(a);
        }
        let harness = builder
            .key()
            .event_log()
            .netns(netns)
            .create(config)
            .expect("cluster files");
        Cluster { harness }
    }

    /// `n` nodes on loopback with `extra_totem` settings, run directly.
    pub fn loopback(name: &str, n: usize, extra_totem: &str) -> Cluster {
        let ports = free_ports(n);
        Cluster::new(
            name,
            n,
            |node| {
                let totem = key_lines(&node.dir) + extra_totem + "\n";
                harness::loopback_config(node, &ports, &totem)
            },
            Vec::new(),
        )
    }

    /// As [`Cluster::loopback`], with `extra_aisexec` lines in every `[aisexec]` table.
    pub fn loopback_aisexec(
        name: &str,
        n: usize,
        extra_totem: &str,
        extra_aisexec: &str,
    ) -> Cluster {
        let ports = free_ports(n);
        Cluster::new(
            name,
            n,
            |node| {
                let totem = key_lines(&node.dir) + extra_totem + "\n";
                harness::loopback_config(node, &ports, &totem)
                    .replace("[aisexec]\n", &format!("[aisexec]\n{extra_aisexec}\n"))
            },
            Vec::new(),
        )
    }

    /// The underlying harness.
    pub fn harness(&mut self) -> &mut ProcessCluster {
        &mut self.harness
    }

    /// Node `i` (0-based): its id and files.
    pub fn node(&self, i: usize) -> &Node {
        self.harness.node(i)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.harness.len()
    }

    /// Starts node `i` (0-based) with its event log.
    pub fn start(&mut self, i: usize) {
        self.harness.spawn(i).expect("start aisexec");
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        self.harness.spawn_all().expect("start aisexec");
    }

    /// Sends `signal` to node `i`'s process (SIGSTOP and SIGCONT pause and resume it).
    pub fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        self.harness.signal(i, signal).expect("signal");
    }

    /// SIGKILL of node `i`.
    pub fn kill(&mut self, i: usize) {
        self.harness.kill(i).expect("kill");
    }

    /// SIGTERM of node `i`; asserts it exits 0 within 20 s (a generous bound: on a loaded
    /// 2-core machine an executive once took longer than 5 s to exit after logging `stopped`).
    pub fn terminate(&mut self, i: usize) {
        if let Err(e) = self.harness.terminate(i, Duration::from_secs(20)) {
            panic!("{e}");
        }
    }

    /// Node `i`'s status, if it answers.
    pub fn status(&self, i: usize) -> Option<Status> {
        self.harness.status(i).ok()
    }

    /// A counter of node `i`'s status.
    pub fn counter(&self, i: usize, name: &str) -> u64 {
        self.harness
            .counter(i, name)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until node `i` is operational with exactly `members`.
    pub fn wait_ring(&mut self, i: usize, members: &[u32], within: Duration) {
        if let Err(e) = self.harness.wait_ring(i, members, Instant::now() + within) {
            panic!("{e}");
        }
    }

    /// What node `i`'s executive has logged so far.
    pub fn log(&self, i: usize) -> String {
        self.harness.log(i)
    }

    /// A CPG client of node `i` (retrying the connect for up to 5 s).
    pub fn cpg(&self, i: usize) -> Cpg {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Cpg::connect(&self.node(i).socket) {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("connect to node {}: {e}", i + 1),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The checker's report on every node's event log.
    pub fn check_logs(&self) -> totem_evlog::checker::Report {
        let paths: Vec<PathBuf> = self
            .harness
            .nodes()
            .iter()
            .map(|n| n.events.clone())
            .collect();
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
