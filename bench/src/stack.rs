//! This stack as a system under test: N `aisexec` executives started by the harness, as a
//! [`Cluster`] the load generators (`bench cpg-load`, [`crate::cpgload`]) connect to.
//!
//! * [`StackTransport`]: how the executives talk — kernel UDP unicast on 127.0.0.1 (distinct
//!   ports, no namespaces), kernel UDP unicast between the hosts of a [`netlab::Lab`], DPDK
//!   `net_af_packet` on each lab host's `eth0`, or DPDK `net_memif` between two processes on
//!   this host (server node 1, client node 2).
//! * [`StackOptions`]: node count, transport, crypto (secauth with AES-256-GCM and a fresh key
//!   file, or `secauth = false`), link MTU (`netmtu`), the directory for the files, DPDK busy
//!   polling, and the program to start (the `bench` binary: its hidden `aisexec` subcommand is
//!   the executive, its hidden `cpg-load` subcommand the load generator).
//! * [`AisCluster::start`] writes one configuration per node under `DIR/node<id>/` (IPC
//!   socket, ring sequence state and `aisexec.log` there too), starts the executives (in the
//!   lab hosts for the lab transports) and waits, bounded, until every one reports an
//!   operational ring of all N nodes; on failure the error has the tail of that node's log.
//!   The files and processes are an [`ais::harness::ProcessCluster`]; this module adds the
//!   transports' configurations, the options and the [`Cluster`] view.
//! * Dropping the cluster stops the executives (SIGTERM, at most 2 s, then SIGKILL), reaps them
//!   and removes DPDK's runtime directories; the files under `DIR` stay for inspection. Drop
//!   the cluster before the lab it runs in.

use std::fmt;
use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ais::harness::{self, ProcessCluster};
use anyhow::{Context, bail};

use crate::load::Cluster;

/// How long [`AisCluster::start`] waits for every executive to see all N members.
pub const RING_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time for the DPDK transports (EAL start-up of N processes on a small machine).
const DPDK_EXTRA: Duration = Duration::from_secs(10);
/// How long [`Drop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Counts clusters of this process, for unique DPDK file prefixes and memif socket names.
static NEXT_CLUSTER: AtomicU32 = AtomicU32::new(0);

/// How the executives of an [`AisCluster`] carry Totem frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackTransport {
    /// Kernel UDP unicast (`udpu`) on 127.0.0.1, one port per node, no namespaces.
    Udp,
    /// Kernel UDP unicast (`udpu`) between the hosts of a [`netlab::Lab`] (one executive in
    /// each host's namespace).
    UdpNetns,
    /// DPDK `net_af_packet` on each lab host's `eth0` (raw Ethernet frames).
    DpdkAfPacket,
    /// DPDK `net_memif` shared-memory rings between two executives on this host (2 nodes only:
    /// node 1 the memif server, node 2 the client).
    DpdkMemif,
}

impl StackTransport {
    /// Every transport, in the order of the reports.
    pub const ALL: [StackTransport; 4] = [
        StackTransport::Udp,
        StackTransport::UdpNetns,
        StackTransport::DpdkAfPacket,
        StackTransport::DpdkMemif,
    ];

    /// The name on the command line and in reports: `udp`, `udp-netns`, `dpdk-af-packet`,
    /// `dpdk-memif`.
    pub fn name(self) -> &'static str {
        match self {
            StackTransport::Udp => "udp",
            StackTransport::UdpNetns => "udp-netns",
            StackTransport::DpdkAfPacket => "dpdk-af-packet",
            StackTransport::DpdkMemif => "dpdk-memif",
        }
    }

    /// Whether the executives run in the hosts of a [`netlab::Lab`] (which needs root).
    pub fn needs_lab(self) -> bool {
        matches!(
            self,
            StackTransport::UdpNetns | StackTransport::DpdkAfPacket
        )
    }

    /// Whether the transport is DPDK (needs the bench's `dpdk` feature).
    pub fn is_dpdk(self) -> bool {
        matches!(
            self,
            StackTransport::DpdkAfPacket | StackTransport::DpdkMemif
        )
    }
}

impl fmt::Display for StackTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StackTransport {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<StackTransport> {
        StackTransport::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .with_context(|| {
                let names: Vec<&str> = StackTransport::ALL.iter().map(|t| t.name()).collect();
                format!("unknown transport {s:?}: use one of {}", names.join(", "))
            })
    }
}

/// What [`AisCluster::start`] starts.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Number of executives (node ids `1..=nodes`).
    pub nodes: usize,
    /// How they talk.
    pub transport: StackTransport,
    /// Frames authenticated and encrypted with AES-256-GCM under a fresh cluster key
    /// (`secauth = true`); `false`: CRC-32 only (`secauth = false`).
    pub crypto: bool,
    /// Link MTU, the executives' `netmtu` (576..=9216; the lab's interfaces must match).
    pub mtu: u32,
    /// Directory for the key file and the node directories (`node<id>/`: configuration, IPC
    /// socket, state, `aisexec.log`); created if missing, left in place afterwards.
    pub dir: PathBuf,
    /// DPDK transports: busy-poll the port on a core of its own instead of adaptive polling
    /// (node `i`'s Totem thread pinned to CPU [`poll_core`]`(i)`, `aisexec.cpu`, which is
    /// also its EAL main lcore).
    pub busy_poll: bool,
    /// The `bench` binary, started as `PROGRAM aisexec -c CONFIG` for each executive and as
    /// `PROGRAM cpg-load ...` by [`Cluster::load_command`]: `std::env::current_exe()` in the
    /// harness, `env!("CARGO_BIN_EXE_bench")` in tests.
    pub program: PathBuf,
    /// Extra configuration keys for every executive: `(table, key, value)` with the value in
    /// TOML syntax, e.g. `("totem", "seqno_unchanged_const", "5")`. Tables: `totem`, `dpdk`,
    /// `aisexec` (see [`parse_setting`]).
    pub settings: Vec<(String, String, String)>,
}

/// Parses `TABLE.KEY=VALUE` (a `bench throughput --set` argument) into `(table, key,
/// value)`: the table is `totem`, `dpdk` or `aisexec`, the value raw TOML (`5`, `true`,
/// `"text"`).
///
/// # Errors
/// No `=`, no table, an unknown table, or an empty key or value.
pub fn parse_setting(text: &str) -> anyhow::Result<(String, String, String)> {
    let (name, value) = text.split_once('=').with_context(|| {
        format!("--set {text:?}: expected TABLE.KEY=VALUE, e.g. totem.token=200")
    })?;
    let (table, key) = name
        .trim()
        .split_once('.')
        .with_context(|| format!("--set {text:?}: name the table, e.g. totem.{}", name.trim()))?;
    anyhow::ensure!(
        ["totem", "dpdk", "aisexec"].contains(&table),
        "--set {text:?}: the table is totem, dpdk or aisexec, not {table:?}"
    );
    let (key, value) = (key.trim(), value.trim());
    anyhow::ensure!(
        !key.is_empty() && !value.is_empty() && !key.contains('.'),
        "--set {text:?}: expected TABLE.KEY=VALUE with one key and a value"
    );
    Ok((table.to_owned(), key.to_owned(), value.to_owned()))
}

/// The nice value the executives' Totem threads run at under `settings`: the one `--set
/// aisexec.totem_nice=N` gives, else `aisexec`'s default.
///
/// # Errors
/// When the value given is not an integer.
pub fn totem_nice(settings: &[(String, String, String)]) -> anyhow::Result<i32> {
    match settings
        .iter()
        .find(|(table, key, _)| table == "aisexec" && key == "totem_nice")
    {
        Some((_, _, value)) => value
            .parse()
            .with_context(|| format!("--set aisexec.totem_nice={value}: expected an integer")),
        None => Ok(ais::config::DEFAULT_TOTEM_NICE),
    }
}

/// The CPU a busy-polling node `id` (from 1) polls on: one per node, round-robin over the
/// machine's CPUs.
pub fn poll_core(id: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (id as usize - 1) % cores
}

/// The `--set` lines for one table.
fn settings_for(opts: &StackOptions, table: &str) -> String {
    opts.settings
        .iter()
        .filter(|(t, _, _)| t == table)
        .map(|(_, k, v)| format!("{k} = {v}\n"))
        .collect()
}

/// A running cluster of this stack's executives; see the module documentation.
pub struct AisCluster<'a> {
    /// The lab the executives run in, for the lab transports: it must outlive them.
    lab: PhantomData<&'a netlab::Lab>,
    transport: StackTransport,
    program: PathBuf,
    /// The executives' files and processes.
    harness: ProcessCluster,
    /// EAL file prefixes (runtime directories under `/var/run/dpdk`) to remove on drop.
    dpdk_prefixes: Vec<String>,
    /// The memif control socket name, removed on drop if it exists as a file.
    memif_socket: Option<PathBuf>,
}

impl<'a> AisCluster<'a> {
    /// Writes the configurations (and the key file when `opts.crypto`), starts the executives
    /// and waits until each reports an operational ring of all `opts.nodes` members
    /// ([`RING_TIMEOUT`], longer for DPDK). `lab` is required for the transports that
    /// [`need one`](StackTransport::needs_lab) and must have at least `opts.nodes` hosts.
    ///
    /// # Errors
    /// A bad option (node count, missing lab, DPDK without the `dpdk` feature, memif with
    /// other than 2 nodes), a file that cannot be written, an executive that cannot be
    /// started, exits, or does not reach the full ring in time (the error quotes the tail of
    /// its log). Whatever was started is stopped again.
    pub fn start(lab: Option<&'a netlab::Lab>, opts: &StackOptions) -> anyhow::Result<Self> {
        let t = opts.transport;
        if !(1..=64).contains(&opts.nodes) {
            bail!("a cluster has 1..=64 nodes, not {}", opts.nodes);
        }
        if !(ais::config::MIN_NETMTU..=ais::config::MAX_NETMTU).contains(&opts.mtu) {
            bail!(
                "MTU {} is outside {}..={}",
                opts.mtu,
                ais::config::MIN_NETMTU,
                ais::config::MAX_NETMTU
            );
        }
        if t.is_dpdk() && !cfg!(feature = "dpdk") {
            bail!(
                "transport {t}: this bench was built without DPDK: cargo run --release -p bench --features dpdk -- ..."
            );
        }
        if t == StackTransport::DpdkMemif && opts.nodes != 2 {
            bail!(
                "transport {t} joins exactly 2 executives (memif server and client), not {}",
                opts.nodes
            );
        }
        let lab = if t.needs_lab() {
            let lab = lab.with_context(|| {
                format!("transport {t} runs the executives in a network-namespace lab: none given")
            })?;
            if lab.hosts() < opts.nodes {
                bail!(
                    "the lab has {} hosts, the cluster {} nodes",
                    lab.hosts(),
                    opts.nodes
                );
            }
            Some(lab)
        } else {
            None
        };
        let k = NEXT_CLUSTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("oaisb{}c{k}", std::process::id());
        let ports = if t == StackTransport::Udp {
            harness::free_ports(opts.nodes)?
        } else {
            Vec::new()
        };
        // An abstract Unix socket by default in DPDK 22.11; removed on drop should a build
        // create it as a file.
        let memif_socket =
            (t == StackTransport::DpdkMemif).then(|| PathBuf::from(format!("/{tag}-memif")));
        let netns = match lab {
            Some(lab) => (1..=opts.nodes).map(|h| lab.netns(h).to_owned()).collect(),
            None => Vec::new(),
        };
        let mut builder = ProcessCluster::builder(&opts.dir, opts.nodes, &opts.program)
            .arg("aisexec")
            .netns(netns);
        if opts.crypto {
            builder = builder.key();
        }
        let key = builder.key_path();
        // EAL file prefixes, one per node.
        let dpdk_prefixes: Vec<String> = if t.is_dpdk() {
            (1..=opts.nodes).map(|id| format!("{tag}n{id}")).collect()
        } else {
            Vec::new()
        };
        let mut harness = builder.create(|node| {
            let id = node.id;
            let mut text = totem_section(id, opts, &key);
            text += &settings_for(opts, "totem");
            text += "\n";
            match t {
                StackTransport::Udp => text += &harness::loopback_nodelist(&ports),
                StackTransport::UdpNetns => {
                    text += "[totem.interface]\nmcastport = 5405\n\n";
                    text += &lab_nodes(lab.expect("checked"), opts.nodes);
                }
                #[cfg(not(feature = "dpdk"))]
                StackTransport::DpdkAfPacket | StackTransport::DpdkMemif => {
                    unreachable!("DPDK transports are refused above without the feature")
                }
                #[cfg(feature = "dpdk")]
                StackTransport::DpdkAfPacket | StackTransport::DpdkMemif => {
                    let prefix = &dpdk_prefixes[id as usize - 1];
                    text += &dpdk_section(t, id, opts, prefix, memif_socket.as_deref());
                }
            }
            text += &harness::aisexec_section(node);
            if opts.busy_poll && t.is_dpdk() {
                // The Totem thread polls; pin it, one core per node.
                text += &format!("cpu = {}\n", poll_core(id));
            }
            text + &settings_for(opts, "aisexec")
        })?;
        // The files stay for inspection.
        harness.keep(true);
        let mut cluster = AisCluster {
            lab: PhantomData,
            transport: t,
            program: opts.program.clone(),
            harness,
            dpdk_prefixes,
            memif_socket,
        };
        let within = if t.is_dpdk() {
            RING_TIMEOUT + DPDK_EXTRA
        } else {
            RING_TIMEOUT
        };
        let all: Vec<u32> = (1..=opts.nodes as u32).collect();
        if t == StackTransport::DpdkMemif {
            // The memif server must be up before its client starts: a client that starts
            // first never connects in DPDK 22.11 (ais/tests/dpdk_memif.rs).
            cluster.harness.spawn(0)?;
            cluster
                .harness
                .wait_ring(0, &[1], Instant::now() + within)?;
            cluster.harness.spawn(1)?;
        } else {
            cluster.harness.spawn_all()?;
        }
        let deadline = Instant::now() + within;
        for i in 0..opts.nodes {
            cluster.harness.wait_ring(i, &all, deadline)?;
        }
        Ok(cluster)
    }

    /// The directory of `node` (1-based).
    pub fn node_dir(&self, node: usize) -> &Path {
        &self.harness.node(node - 1).dir
    }

    /// The IPC socket of `node` (1-based).
    pub fn socket(&self, node: usize) -> &Path {
        &self.harness.node(node - 1).socket
    }

    /// The log (standard output and error) of `node` (1-based).
    pub fn log(&self, node: usize) -> &Path {
        &self.harness.node(node - 1).log
    }
}

impl Cluster for AisCluster<'_> {
    fn system(&self) -> &'static str {
        "openais-rs"
    }

    fn transport(&self) -> String {
        self.transport.name().to_owned()
    }

    fn nodes(&self) -> usize {
        self.harness.len()
    }

    /// `PROGRAM cpg-load --socket SOCKET`: the IPC socket is a file, reachable from any
    /// network namespace, so the generator runs in the harness's own.
    fn load_command(&self, node: usize) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("cpg-load")
            .arg("--socket")
            .arg(&self.harness.node(node - 1).socket);
        cmd
    }

    fn daemon_pids(&self) -> Vec<Option<u32>> {
        self.harness
            .nodes()
            .iter()
            .map(harness::Node::pid)
            .collect()
    }

    fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=self.harness.len()).contains(&node),
            "node {node} does not exist: the cluster has nodes 1..={}",
            self.harness.len()
        );
        if !self.harness.kill(node - 1)? {
            bail!("node {node} is not running");
        }
        Ok(())
    }
}

impl Drop for AisCluster<'_> {
    /// SIGTERM to every executive (the memif client before its server, waiting for it), at
    /// most [`STOP_TIMEOUT`] in all, then SIGKILL to the rest; all reaped; DPDK runtime
    /// directories removed.
    fn drop(&mut self) {
        let memif = self.transport == StackTransport::DpdkMemif;
        self.harness.stop_all(STOP_TIMEOUT, memif);
        for prefix in &self.dpdk_prefixes {
            let _ = fs::remove_dir_all(Path::new("/var/run/dpdk").join(prefix));
        }
        if let Some(s) = &self.memif_socket {
            let _ = fs::remove_file(s);
        }
    }
}

/// The `[totem]` table (key lines included) for node `id`.
fn totem_section(id: u32, opts: &StackOptions, key: &Path) -> String {
    let transport = if opts.transport.is_dpdk() {
        "dpdk"
    } else {
        "udpu"
    };
    let crypto = if opts.crypto {
        format!("{}crypto_cipher = \"aes256\"\n", harness::key_lines(key))
    } else {
        "secauth = false\n".to_owned()
    };
    format!(
        "[totem]\nnodeid = {id}\ntransport = \"{transport}\"\nnetmtu = {}\n{crypto}\n",
        opts.mtu
    )
}

/// The node list of a lab cluster: host `i`'s address for node `i`.
fn lab_nodes(lab: &netlab::Lab, nodes: usize) -> String {
    let mut t = String::new();
    for h in 1..=nodes {
        t += &format!(
            "[[nodelist.node]]\nnodeid = {h}\nring0_addr = \"{}\"\n",
            lab.addr(h)
        );
        // A lab with more networks (redundant rings): the node's address on each; the
        // executives then need `totem.rrp_mode` (`bench throughput --networks`).
        for n in 1..lab.networks() {
            t += &format!("ring{n}_addr = \"{}\"\n", lab.addr_on(n, h));
        }
        t += "\n";
    }
    t
}

/// The node list (ids only matter to DPDK) and the `[dpdk]` table of node `id`, with the EAL
/// arguments the ais DPDK tests use: no hugepages, no PCI, no telemetry, one lcore.
#[cfg(feature = "dpdk")]
fn dpdk_section(
    t: StackTransport,
    id: u32,
    opts: &StackOptions,
    prefix: &str,
    memif_socket: Option<&Path>,
) -> String {
    let mut s = String::new();
    for h in 1..=opts.nodes {
        s += &format!("[[nodelist.node]]\nnodeid = {h}\nring0_addr = \"10.0.0.{h}\"\n\n");
    }
    let lcore = if opts.busy_poll { poll_core(id) } else { 0 };
    let (port, extra) = match t {
        StackTransport::DpdkMemif => {
            let role = if id == 1 { "server" } else { "client" };
            let socket = memif_socket.expect("memif socket name").display();
            // memif needs EAL's shared configuration (no --no-shconf), and buffers that hold
            // a whole frame (with bsize=2048 on a 9000-byte link two executives lost their
            // ring under full load, again and again).
            let bsize = if opts.mtu > 1500 { 16384 } else { 2048 };
            (
                "net_memif0",
                format!("\"--vdev=net_memif0,role={role},socket={socket},id=0,bsize={bsize}\"]\n"),
            )
        }
        _ => {
            // af_packet frames and blocks as the research notes measured they must be, and
            // mbufs to match.
            let (framesz, blocksz, room) = if opts.mtu > 1500 {
                (10240, 20480, 10240 + 128)
            } else {
                (2048, 4096, 2048 + 128)
            };
            (
                "net_af_packet0",
                format!(
                    "\"--no-shconf\", \"--vdev=net_af_packet0,iface=eth0,framesz={framesz},blocksz={blocksz}\"]\nmin_data_room = {room}\nmbufs = 4095\n"
                ),
            )
        }
    };
    s += &format!(
        "[dpdk]\nport = \"{port}\"\nbusy_poll = {}\neal_args = [\"--no-huge\", \"-m\", \"256\", \"--no-pci\", \"--no-telemetry\", \"-l\", \"{lcore}\", \"--file-prefix\", \"{prefix}\", {extra}\n",
        opts.busy_poll
    );
    s += &settings_for(opts, "dpdk");
    s + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names_round_trip() {
        for t in StackTransport::ALL {
            assert_eq!(t.name().parse::<StackTransport>().unwrap(), t);
        }
        assert!("knet".parse::<StackTransport>().is_err());
        assert!(StackTransport::UdpNetns.needs_lab());
        assert!(!StackTransport::DpdkMemif.needs_lab());
    }

    #[test]
    fn settings_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_setting("totem.seqno_unchanged_const=5").unwrap(),
            ("totem".into(), "seqno_unchanged_const".into(), "5".into())
        );
        assert_eq!(
            parse_setting(" dpdk.eal_args = [\"-l\", \"1\"] ")
                .unwrap()
                .2,
            "[\"-l\", \"1\"]"
        );
        for (bad, says) in [
            ("totem.token", "TABLE.KEY=VALUE"),
            ("token=200", "name the table"),
            ("nodelist.node=1", "totem, dpdk or aisexec"),
            ("totem.interface.mcastport=5405", "one key"),
            ("totem.token=", "one key and a value"),
        ] {
            let e = parse_setting(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_totem_nice_value_follows_the_settings() {
        let set = |v: &[&str]| -> Vec<(String, String, String)> {
            v.iter().map(|s| parse_setting(s).unwrap()).collect()
        };
        assert_eq!(totem_nice(&[]).unwrap(), ais::config::DEFAULT_TOTEM_NICE);
        assert_eq!(
            totem_nice(&set(&["totem.token=200", "aisexec.totem_nice=0"])).unwrap(),
            0
        );
        let e = totem_nice(&set(&["aisexec.totem_nice=\"high\""])).unwrap_err();
        assert!(e.to_string().contains("expected an integer"), "{e}");
    }
}
