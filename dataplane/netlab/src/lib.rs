//! A network-namespace lab for multi-host integration tests and benchmarks: [`Lab`].
//!
//! # What it is
//!
//! A lab is `N` Linux network namespaces acting as hosts `h1..hN`, each with one interface
//! `eth0`, all plugged into one Linux bridge `br0` that lives in a namespace of its own. A test
//! starts real processes (for example `aisexec`) inside the hosts with [`Lab::command`], which
//! then talk over real kernel UDP, unicast and multicast, as if they ran on separate machines.
//! [`Lab::cut`] and [`Lab::heal`] unplug and replug a host to provoke partitions and merges.
//!
//! ```text
//!   h1: lo, eth0 10.X.Y.1/24 ─veth─ vh1 ┐
//!   h2: lo, eth0 10.X.Y.2/24 ─veth─ vh2 ├─ br0   (in the bridge namespace)
//!   hN: lo, eth0 10.X.Y.N/24 ─veth─ vhN ┘
//! ```
//!
//! Nothing is created in the namespace the test runs in: both ends of every veth are created
//! directly inside the lab's namespaces, so the lab cannot disturb the machine's own network.
//!
//! # Naming and addressing
//!
//! * Lab `k` of process `pid` (`k` counts labs within the process, from 0) has namespaces
//!   `oais<pid>x<k>h<i>` for host `i` (1-based) and `oais<pid>x<k>br` for the bridge. Process
//!   ids are unique among running processes and `k` within one, so names never collide between
//!   tests or parallel test binaries. Leftovers with the same names (from a crashed run of a
//!   process that had the same pid) are deleted before the lab is created.
//! * Interface names are local to a namespace, so they are fixed and short (≤ 15 characters):
//!   `lo` and `eth0` in each host; `br0` and the bridge-side veth ends `vh<i>` in the bridge
//!   namespace.
//! * Host `i` has address `10.X.Y.i/24` with `X = pid mod 256` and `Y = k mod 256`
//!   ([`Lab::addr`]; the network address `10.X.Y.0`, for `bindnetaddr`, is [`Lab::network`]).
//!   Labs of one process get distinct subnets (up to 256 at a time), and so do labs of
//!   processes whose pids differ modulo 256. An overlap beyond that would be harmless anyway:
//!   every lab is its own isolated layer-2 segment, so equal addresses in two labs never meet.
//! * Every interface (`eth0`, the `vh<i>` ends, `br0`) has the MTU given to [`Lab::new`]; `lo`
//!   is up everywhere.
//! * The bridge has STP off and forward delay 0 (a port forwards as soon as it is up, which
//!   [`Lab::heal`] relies on) and multicast snooping off, so multicast floods to every port
//!   with no IGMP querier needed. Each host has the route `224.0.0.0/4 dev eth0`, so multicast
//!   leaves through `eth0` without the sender naming an interface.
//!
//! # More than one network
//!
//! [`Lab::with_networks`] gives every host one interface per network: `eth0` on `br0` as above,
//! and `eth<n>` on bridge `br<n>` (bridge-side ends `vh<i>n<n>`) with address
//! [`Lab::addr_on`]`(n, i)` = `10.X.(Y + 64·n mod 256).i` (a /24 of its own for each network,
//! [`Lab::network_on`]), for tests of redundant rings. [`Lab::cut_network`] and
//! [`Lab::heal_network`] take a whole network down and up (every host's port on its bridge),
//! [`Lab::cut_on`] and [`Lab::heal_on`] one host's port on one network.
//!
//! # Requirements
//!
//! The lab needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`) and `ip` from iproute2; CI runs the
//! tests as root and installs iproute2 (`.ci/run`). Without root [`Lab::new`] fails with
//! "network-namespace tests need root: run as root (CI does)": the tests fail, they are never
//! skipped silently. Every `ip` command is run with [`std::process::Command`]; a failure
//! becomes an [`io::Error`] whose message has the command line and its stderr.
//!
//! # Lifetime
//!
//! Dropping the lab deletes every namespace it created, which deletes the veths and the bridge
//! with them; this also happens when the test panics (drop runs during unwinding). Errors are
//! ignored on drop. Processes started in a host are the caller's: kill and wait for them
//! *before* the lab is dropped. `ip netns delete` only removes the namespace's name; a
//! namespace that still holds a process lives on, unnamed, until that process exits. Declaring
//! the lab before the guard that owns the children makes Rust drop them in the right order.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counts labs created by this process; the `k` of the naming scheme.
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Where `ip netns add` mounts named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A set of network namespaces ("hosts") joined by a Linux bridge, created by a test and
/// deleted on drop. See the module documentation for the topology and the naming scheme.
pub struct Lab {
    /// Namespace names of the hosts; index 0 is host 1.
    hosts: Vec<String>,
    /// Namespace name of the bridge.
    bridge: String,
    /// First three octets of the lab's /24 (network 0).
    net: [u8; 3],
    /// Networks (bridges) of the lab.
    networks: usize,
    /// Namespaces created so far, deleted on drop (also on a failure half-way through `new`).
    created: Vec<String>,
}

impl Lab {
    /// Creates `hosts` namespaces h1..hN plus one namespace holding the bridge `br0`; host `i`
    /// gets a veth whose host end is `eth0` with address `10.X.Y.i/24`, MTU `mtu` on every
    /// interface, `lo` up everywhere, the bridge with STP, forward delay and multicast snooping
    /// off, and the route `224.0.0.0/4 dev eth0` in each host. Leftover namespaces with the
    /// same names are deleted first.
    ///
    /// Fails if not run as root, if `hosts` is not in `1..=254`, or if an `ip` command fails
    /// (the error names the command and has its stderr); whatever was created by then is
    /// deleted again.
    pub fn new(hosts: usize, mtu: u32) -> io::Result<Lab> {
        Lab::with_networks(hosts, 1, mtu)
    }

    /// As [`Lab::new`], with `networks` (1 to 4) bridges: host `i` has `eth<n>` on `br<n>`
    /// with address [`Lab::addr_on`]`(n, i)` for every network `n` (see the module
    /// documentation). The multicast route stays on `eth0`.
    pub fn with_networks(hosts: usize, networks: usize, mtu: u32) -> io::Result<Lab> {
        require_root()?;
        if !(1..=4).contains(&networks) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a lab has 1..=4 networks, not {networks}"),
            ));
        }
        if !(1..=254).contains(&hosts) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a lab has 1..=254 hosts, not {hosts}"),
            ));
        }
        let pid = std::process::id();
        let k = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("oais{pid}x{k}");
        let mut lab = Lab {
            hosts: (1..=hosts).map(|i| format!("{prefix}h{i}")).collect(),
            bridge: format!("{prefix}br"),
            net: [10, (pid % 256) as u8, (k % 256) as u8],
            networks,
            created: Vec::new(),
        };
        for name in lab.hosts.iter().chain([&lab.bridge]) {
            if Path::new(NETNS_DIR).join(name).exists() {
                ip(["netns", "delete", name])?;
            }
        }

        let mtu = mtu.to_string();
        let br = lab.bridge.clone();
        lab.add_netns(&br)?;
        for n in 0..networks {
            let bridge = format!("br{n}");
            ip(["-n", &br, "link", "add", &bridge, "type", "bridge"])?;
            ip([
                "-n",
                &br,
                "link",
                "set",
                &bridge,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                "mcast_snooping",
                "0",
            ])?;
        }

        for i in 1..=hosts {
            let h = lab.hosts[i - 1].clone();
            lab.add_netns(&h)?;
            for n in 0..networks {
                let port = Lab::port_name(n, i);
                let eth = format!("eth{n}");
                let bridge = format!("br{n}");
                let cidr = format!("{}/24", lab.addr_on(n, i));
                // Both ends are created inside the lab: `eth<n>` in the host, the peer in the
                // bridge namespace.
                ip([
                    "-n", &h, "link", "add", &eth, "type", "veth", "peer", "name", &port, "netns",
                    &br,
                ])?;
                ip(["-n", &h, "link", "set", &eth, "mtu", &mtu])?;
                ip(["-n", &h, "addr", "add", &cidr, "dev", &eth])?;
                ip(["-n", &h, "link", "set", &eth, "up"])?;
                if n == 0 {
                    ip(["-n", &h, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
                }
                ip(["-n", &br, "link", "set", &port, "mtu", &mtu])?;
                ip(["-n", &br, "link", "set", &port, "master", &bridge])?;
                ip(["-n", &br, "link", "set", &port, "up"])?;
            }
        }
        for n in 0..networks {
            let bridge = format!("br{n}");
            // After the ports: a bridge otherwise follows the smallest MTU of its ports.
            ip(["-n", &br, "link", "set", &bridge, "mtu", &mtu])?;
            ip(["-n", &br, "link", "set", &bridge, "up"])?;
        }
        Ok(lab)
    }

    /// The bridge-side veth end of host `i` on network `n`: `vh<i>` on network 0 (as
    /// [`Lab::new`] names it), `vh<i>n<n>` on the others.
    fn port_name(n: usize, i: usize) -> String {
        if n == 0 {
            format!("vh{i}")
        } else {
            format!("vh{i}n{n}")
        }
    }

    /// The number of networks.
    pub fn networks(&self) -> usize {
        self.networks
    }

    /// The /24 of network `n`: network 0's is [`Lab::network`] (`10.X.Y.0`), network `n`'s
    /// has third octet `Y + 64·n mod 256`, so the networks of one host never share a subnet.
    pub fn network_on(&self, n: usize) -> Ipv4Addr {
        let [a, b, c] = self.net;
        Ipv4Addr::new(a, b, c.wrapping_add((64 * n) as u8), 0)
    }

    /// The address of host `i` on network `n` (`eth<n>`). Panics if there is no host `i`.
    pub fn addr_on(&self, n: usize, i: usize) -> Ipv4Addr {
        let [a, b, c, _] = self.network_on(n).octets();
        Ipv4Addr::new(a, b, c, (self.index(i) + 1) as u8)
    }

    /// Takes network `n` down: every host's port on its bridge goes down, so nothing crosses
    /// it (the hosts' `eth<n>` lose carrier but keep their addresses).
    pub fn cut_network(&self, n: usize) -> io::Result<()> {
        for i in 1..=self.hosts() {
            self.cut_on(n, i)?;
        }
        Ok(())
    }

    /// Brings network `n` back after [`Lab::cut_network`].
    pub fn heal_network(&self, n: usize) -> io::Result<()> {
        for i in 1..=self.hosts() {
            self.heal_on(n, i)?;
        }
        Ok(())
    }

    /// Cuts host `i`'s port on network `n` only.
    pub fn cut_on(&self, n: usize, i: usize) -> io::Result<()> {
        let port = Lab::port_name(n, self.index(i) + 1);
        ip(["-n", &self.bridge, "link", "set", &port, "down"])
    }

    /// Reconnects host `i`'s port on network `n`.
    pub fn heal_on(&self, n: usize, i: usize) -> io::Result<()> {
        let port = Lab::port_name(n, self.index(i) + 1);
        ip(["-n", &self.bridge, "link", "set", &port, "up"])
    }

    /// The number of hosts.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The namespace name of host `i` (1-based). Panics if there is no host `i`.
    pub fn netns(&self, i: usize) -> &str {
        &self.hosts[self.index(i)]
    }

    /// The namespace name of the bridge (holds `br0` and the ports `vh<i>`).
    pub fn bridge_netns(&self) -> &str {
        &self.bridge
    }

    /// The IPv4 address of host `i` (1-based) on `eth0`: `10.X.Y.i`. Panics if there is no
    /// host `i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.net;
        Ipv4Addr::new(a, b, c, (self.index(i) + 1) as u8)
    }

    /// The network address of the lab's /24 (`10.X.Y.0`), e.g. for `bindnetaddr`.
    pub fn network(&self) -> Ipv4Addr {
        let [a, b, c] = self.net;
        Ipv4Addr::new(a, b, c, 0)
    }

    /// A [`Command`] running `program` inside host `i`'s namespace
    /// (`ip netns exec NAME program`); add arguments, environment and stdio as usual. `ip`
    /// execs the program in place, so the child's pid is the program's and killing the child
    /// kills the program. Panics if there is no host `i`.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.netns(i)]).arg(program);
        cmd
    }

    /// Cuts host `i` off the bridge: its bridge-side veth goes down, so nothing reaches it or
    /// leaves it (its `eth0` loses carrier but keeps address and routes). Panics if there is
    /// no host `i`.
    pub fn cut(&self, i: usize) -> io::Result<()> {
        self.set_port(i, "down")
    }

    /// Reconnects host `i` after [`Lab::cut`]. The port forwards again at once (STP off,
    /// forward delay 0), but give traffic a moment: carrier and the bridge port state follow
    /// asynchronously.
    pub fn heal(&self, i: usize) -> io::Result<()> {
        self.set_port(i, "up")
    }

    fn set_port(&self, i: usize, state: &str) -> io::Result<()> {
        let port = format!("vh{}", self.index(i) + 1);
        ip(["-n", &self.bridge, "link", "set", &port, state])
    }

    /// Creates namespace `name` with `lo` up and records it for deletion.
    fn add_netns(&mut self, name: &str) -> io::Result<()> {
        ip(["netns", "add", name])?;
        self.created.push(name.to_owned());
        ip(["-n", name, "link", "set", "lo", "up"])
    }

    fn index(&self, i: usize) -> usize {
        assert!(
            (1..=self.hosts.len()).contains(&i),
            "host {i} does not exist: the lab has hosts 1..={}",
            self.hosts.len()
        );
        i - 1
    }
}

impl Drop for Lab {
    /// Deletes every namespace the lab created (which deletes the veths and the bridge);
    /// errors are ignored. Processes still running in a host keep its namespace alive,
    /// unnamed, until they exit: kill them first.
    fn drop(&mut self) {
        for name in self.created.iter().rev() {
            let _ = ip(["netns", "delete", name]);
        }
    }
}

/// Fails with a clear message unless the effective user is root. Reads `/proc/self/status`
/// (the tests forbid `unsafe`, so no `geteuid`).
fn require_root() -> io::Result<()> {
    let status = fs::read_to_string("/proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse::<u32>().ok());
    match euid {
        Some(0) => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "network-namespace tests need root: run as root (CI does)",
        )),
    }
}

/// Runs `ip ARGS`; a spawn failure or a non-zero exit becomes an error with the command line
/// and `ip`'s stderr.
fn ip<const N: usize>(args: [&str; N]) -> io::Result<()> {
    let line = format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("`{line}` could not be started (is iproute2 installed?): {e}"),
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )))
    }
}
