//! `bench raw`: the raw link alone, without Totem. One sender process pushes frames of one
//! size to one receiver process as fast as the transport takes them; the receiver counts what
//! arrives.
//!
//! # Why
//!
//! The throughput benchmark reports this stack's CPG rate as a fraction of what the same link
//! carries with nothing on top: that ceiling is what `raw` measures. A ratio "stack / raw" is
//! only meaningful when both go through the same code to the wire, so both ends here use the
//! dataplane's [`Transport`] implementations that the Totem driver runs on (the kernel UDP
//! backend [`UdpTransport`] with `sendmmsg`/`recvmmsg` batches, and `DpdkTransport` with
//! feature `dpdk`), with the same batch size, not hand-written sockets. What is *not* in the
//! figure: ordering, tokens, retransmission, crypto, client IPC, delivery.
//!
//! # Transports ([`RawTransport`])
//!
//! - `udp`: kernel UDP over loopback (`127.0.0.1`) in the current network namespace. No root.
//! - `udp-netns`: kernel UDP from host 1 to host 2 of a [`Lab`] (two network namespaces, veth
//!   pairs on a Linux bridge): the topology the cluster benchmarks run on. Root.
//! - `dpdk-af-packet`: `DpdkTransport` on `net_af_packet` bound to `eth0` of the same two lab
//!   hosts (EAL `--no-huge --no-pci --no-shconf`, one lcore each). Root, feature `dpdk`.
//! - `dpdk-memif`: `DpdkTransport` on `net_memif` (shared-memory rings between two processes of
//!   one host, no kernel on the path): the receiver is the memif server and starts first.
//!   Feature `dpdk`.
//!
//! # Sizes and the MTU
//!
//! `size` is the payload of one datagram or frame. It must fit the link MTU:
//! [`RawTransport::max_payload`] is `mtu - 28` for UDP over IPv4 (1472 at 1500, 8972 at 9000)
//! and `mtu - 12` for DPDK (the link carries our 12-byte shim header and the payload: 1488 at
//! 1500, 8988 at 9000); larger sizes are refused with an error by [`measure`]. The loopback
//! `udp` transport could carry more, but applies the same limit so `udp` and `udp-netns`
//! compare at equal sizes. `bench raw` skips (with a note on stderr) the sizes of its
//! `--size` list that `--mtu` cannot carry, so the default list `1400,8972` measures 1400 at
//! MTU 1500 and both at MTU 9000.
//!
//! # Method
//!
//! Each end is its own process, `bench raw-peer` ([`run_peer`]) started from
//! [`std::env::current_exe`], inside lab host 1 (sender) and host 2 (receiver) when the
//! transport uses a lab: DPDK's EAL can be initialised only once per process, and separate
//! processes are what a cluster runs anyway. The protocol on each peer's stdin/stdout follows
//! the load generators' ([`crate::load`]):
//!
//! 1. The receiver sets up its transport and prints `ready ADDR` (its UDP address, `-` for
//!    DPDK). Then the sender starts (with `--peer ADDR`), sends small probe frames every
//!    10 ms until the receiver answers one (this also waits for a memif connection and lets
//!    DPDK learn the receiver's MAC), and prints `ready`.
//! 2. The harness writes `start NS` to both, NS a `CLOCK_REALTIME` time in nanoseconds shortly
//!    ahead (all processes share the host's clock).
//! 3. From NS the sender fills a burst of frames (until `send` says `TxFull`), flushes it
//!    (retrying on `WouldBlock`), and repeats until NS + warm-up (0.3 s) + window. Every frame
//!    carries a tag saying whether it was sent inside the window; the sender counts the frames
//!    of in-window bursts that the transport accepted (`Stats::frames_out`). Frames the
//!    transport refused at flush (the DPDK TX queue was full twice) are neither sent nor
//!    counted.
//! 4. The receiver counts in-window frames and their bytes until the window has ended and the
//!    link has been quiet for 50 ms (at most 1 s). Each end prints one JSON line
//!    ([`PeerReport`]) and exits when its stdin closes.
//!
//! So `received <= sent` by construction, `received / sent` is the delivery ratio (UDP drops
//! in full socket buffers, af_packet drops in full rings), and the result is the delivered
//! rate: `frames_per_sec = received / window`, `mb_per_sec = received * size / window / 10^6`
//! (payload bytes, MB = 10^6 bytes).
//!
//! # Caveats
//!
//! Both ends busy-poll during the short window (UDP: non-blocking `recvmmsg` in a loop; DPDK:
//! `busy_poll`), so on a 2-core machine the two peers take both cores and anything else
//! running at the same time lowers the figure. That is fine for a benchmark of a few seconds;
//! compare figures taken on an otherwise idle machine. DPDK peers pin themselves with EAL's
//! `-l`: the sender to CPU 0, the receiver to CPU 1 (CPU 0 when there is only one).

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use dataplane::udp::{UdpConfig, UdpTransport};
use dataplane::{Dest, Member, NodeId, SendError, Source, Transport};
use netlab::Lab;
use serde::{Deserialize, Serialize};

/// Time before the counted window: both ends run, nothing is counted.
pub const WARMUP: Duration = Duration::from_millis(300);

/// IPv4 and UDP headers: the UDP payload budget is the MTU minus this.
const UDP_OVERHEAD: u32 = 28;
/// The DPDK backend's shim header, carried inside the Ethernet payload.
const DPDK_SHIM: u32 = 12;
/// Frame tags (first payload byte).
const PROBE: u8 = 0xA0;
const ACK: u8 = 0xA1;
const DATA_WARMUP: u8 = 0xD0;
const DATA_WINDOW: u8 = 0xD1;
/// Length of probe and ack frames.
const CONTROL_LEN: usize = 16;
/// Node ids of the two ends.
const SENDER: NodeId = NodeId(1);
const RECEIVER: NodeId = NodeId(2);
/// How long the sender probes before giving up (a memif connection can take seconds).
const HANDSHAKE: Duration = Duration::from_secs(30);
/// The receiver stops once the window is over and nothing arrived for this long ...
const QUIET: Duration = Duration::from_millis(50);
/// ... or this long after the window at the latest.
const DRAIN_MAX: Duration = Duration::from_secs(1);
/// How far ahead of "now" the harness sets the start time.
const START_LEAD: Duration = Duration::from_millis(200);

/// The link under test. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawTransport {
    /// Kernel UDP over loopback (127.0.0.1), no namespaces, no root needed.
    Udp,
    /// Kernel UDP between two network namespaces joined by veth pairs and a bridge (root).
    UdpNetns,
    /// DPDK net_af_packet on eth0 of two network namespaces (root, feature dpdk).
    DpdkAfPacket,
    /// DPDK net_memif, shared-memory rings between two processes (feature dpdk).
    DpdkMemif,
}

impl RawTransport {
    /// Every transport, in the order of the docs.
    pub const ALL: [RawTransport; 4] = [
        RawTransport::Udp,
        RawTransport::UdpNetns,
        RawTransport::DpdkAfPacket,
        RawTransport::DpdkMemif,
    ];

    /// The name used on the command line and in reports: `"udp"`, `"udp-netns"`,
    /// `"dpdk-af-packet"`, `"dpdk-memif"`.
    pub fn name(self) -> &'static str {
        match self {
            RawTransport::Udp => "udp",
            RawTransport::UdpNetns => "udp-netns",
            RawTransport::DpdkAfPacket => "dpdk-af-packet",
            RawTransport::DpdkMemif => "dpdk-memif",
        }
    }

    /// The transport named `s` (see [`RawTransport::name`]).
    ///
    /// # Errors
    /// An unknown name; the message lists the known ones.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
                anyhow::anyhow!(
                    "unknown raw transport {s:?}: use one of {}",
                    names.join(", ")
                )
            })
    }

    /// Whether it runs between two hosts of a [`Lab`] (network namespaces, root).
    pub fn needs_lab(self) -> bool {
        matches!(self, RawTransport::UdpNetns | RawTransport::DpdkAfPacket)
    }

    /// Whether it is a DPDK transport (needs the `dpdk` feature).
    pub fn is_dpdk(self) -> bool {
        matches!(self, RawTransport::DpdkAfPacket | RawTransport::DpdkMemif)
    }

    /// The largest payload per datagram or frame on a link of MTU `mtu`: `mtu - 28` for UDP
    /// over IPv4, `mtu - 12` for DPDK (its shim header). 0 when the MTU is too small.
    pub fn max_payload(self, mtu: u32) -> usize {
        let overhead = if self.is_dpdk() {
            DPDK_SHIM
        } else {
            UDP_OVERHEAD
        };
        mtu.saturating_sub(overhead) as usize
    }
}

impl fmt::Display for RawTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RawTransport {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Self::parse(s)
    }
}

/// What one [`measure`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawResult {
    /// Frames sent inside the window and received, per second of the window.
    pub frames_per_sec: f64,
    /// Their payload, in MB (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// Frames the sender's transport accepted inside the window.
    pub sent: u64,
    /// Of those, the frames the receiver got.
    pub received: u64,
    /// Payload bytes per frame.
    pub size: usize,
}

/// `bench raw`: the raw link, one sender and one receiver process, no Totem.
///
/// Prints, per size, the rate of frames that crossed the link (sent inside the window and
/// received), in frames/s and payload MB/s, with the counts. Both ends busy-poll during the
/// window, so on a small machine run it alone. Needs root for the transports that use network
/// namespaces (udp-netns, dpdk-af-packet); `bench raw` creates its own two-host lab and
/// removes it afterwards.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The link: udp (loopback), udp-netns (two namespaces on a bridge, the cluster
    /// benchmarks' topology), dpdk-af-packet (DPDK on those namespaces' eth0) or dpdk-memif
    /// (DPDK shared-memory rings between two processes). The namespace ones need root (a
    /// two-host lab is created and removed); the DPDK ones need a bench built with
    /// `--features dpdk`.
    #[arg(long, value_enum, default_value_t = RawTransport::UdpNetns)]
    pub transport: RawTransport,
    /// Payload bytes per datagram or frame, comma-separated. Sizes the MTU cannot carry
    /// (above MTU-28 for UDP, MTU-12 for DPDK) are skipped with a note, so the default measures
    /// 1400 at --mtu 1500 and both at --mtu 9000.
    #[arg(long, default_value = "1400,8972", value_delimiter = ',')]
    pub size: Vec<usize>,
    /// Link MTU in bytes, 576..=9000 (usually 1500, or 9000 for jumbo frames): the lab's
    /// interfaces get it, and it bounds the payload size.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(576..=9000))]
    pub mtu: u32,
    /// Length of the counted window per size, in seconds (after a 0.3 s warm-up). Both ends
    /// busy-poll meanwhile (two cores at 100%): run it on an otherwise idle machine.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// One JSON object per size and line instead of text: bench, transport, size, mtu,
    /// seconds, frames_per_sec, mb_per_sec, sent, received.
    #[arg(long)]
    pub json: bool,
}

/// Which end a `raw-peer` process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Sends as fast as the transport takes frames.
    Send,
    /// Counts what arrives.
    Recv,
}

/// `bench raw-peer`: one end of the raw link, started by `bench raw` ([`measure`]). Speaks
/// the protocol of the [module documentation](self) on stdin/stdout; errors go to stderr.
#[derive(clap::Args, Debug)]
pub struct PeerArgs {
    /// Sender or receiver.
    #[arg(long, value_enum)]
    pub role: Role,
    /// The transport.
    #[arg(long, value_enum)]
    pub transport: RawTransport,
    /// UDP: the local address to bind (port 0 picks one).
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// UDP sender: the receiver's address (from its `ready` line).
    #[arg(long)]
    pub peer: Option<SocketAddr>,
    /// DPDK: one EAL argument (repeat, in order), e.g. `--eal=--no-huge`.
    #[arg(long = "eal", allow_hyphen_values = true)]
    pub eal: Vec<String>,
    /// DPDK: the port's name, e.g. net_af_packet0.
    #[arg(long)]
    pub dpdk_port: Option<String>,
    /// DPDK: the smallest mbuf data room (net_af_packet: its framesz plus headroom).
    #[arg(long, default_value_t = 0)]
    pub min_data_room: usize,
    /// DPDK: mbufs in the pool.
    #[arg(long, default_value_t = 4095)]
    pub mbufs: u32,
    /// Payload bytes per data frame.
    #[arg(long)]
    pub size: usize,
    /// The transport's payload budget (UdpConfig::mtu or DpdkConfig::mtu).
    #[arg(long)]
    pub mtu: usize,
    /// Milliseconds from the start time before frames count.
    #[arg(long, default_value_t = 300)]
    pub warmup_ms: u64,
    /// Milliseconds of the counted window.
    #[arg(long)]
    pub window_ms: u64,
}

/// The JSON line a `raw-peer` prints at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerReport {
    /// `"send"` or `"recv"`.
    pub role: String,
    /// Sender: frames accepted by the transport inside the window.
    pub sent: u64,
    /// Receiver: in-window frames received.
    pub received: u64,
    /// Receiver: their payload bytes.
    pub bytes: u64,
    /// Sender: frames the transport refused at flush, over the whole run (dropped).
    pub tx_errors: u64,
}

/// Counts `measure` calls in this process, for unique DPDK file prefixes and memif sockets.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// `CLOCK_REALTIME` in nanoseconds.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Measures one stream of `size`-byte frames over `transport` for `seconds` (after
/// [`WARMUP`]): sender on host 1 and receiver on host 2 of `lab` for the transports that need
/// one ([`RawTransport::needs_lab`]; the lab must have been created with this `mtu`), or two
/// processes in the current namespace for `udp` and `dpdk-memif` (`lab` is ignored). Each end
/// is a `bench raw-peer` process of the current executable; their stderr goes to log files in
/// `dir` (created if missing), whose tails are quoted in errors. Both processes are killed and
/// reaped on every path, and DPDK's runtime directories and the memif socket are removed.
///
/// # Errors
/// A size the MTU cannot carry ([`RawTransport::max_payload`]), a missing lab, a DPDK transport
/// in a build without the `dpdk` feature, or a peer that fails, hangs or reports nonsense (the
/// error quotes its log).
pub fn measure(
    transport: RawTransport,
    lab: Option<&Lab>,
    size: usize,
    mtu: u32,
    seconds: f64,
    dir: &Path,
) -> anyhow::Result<RawResult> {
    let max = transport.max_payload(mtu);
    if size == 0 || size > max {
        bail!(
            "{transport}: a payload of {size} bytes does not fit MTU {mtu}: at most {max} bytes \
             (MTU - {}){}",
            if transport.is_dpdk() {
                "12 for the DPDK shim header"
            } else {
                "28 for the IPv4 and UDP headers"
            },
            if mtu < 9000 {
                "; use --mtu 9000 for jumbo frames"
            } else {
                ""
            }
        );
    }
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        bail!("the window must be between 0 and 3600 seconds, not {seconds}");
    }
    if transport.is_dpdk() && !cfg!(feature = "dpdk") {
        bail!(
            "this bench was built without DPDK: cargo run --release -p bench --features dpdk -- \
             raw --transport {transport} ..."
        );
    }
    let lab = match (transport.needs_lab(), lab) {
        (true, None) => bail!("{transport} runs between two lab hosts: pass a netlab::Lab"),
        (true, Some(l)) if l.hosts() < 2 => bail!("{transport} needs a lab with 2 hosts"),
        (true, l) => l,
        (false, _) => None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Whole milliseconds: what the peers are told, and what the rates are divided by.
    let window = Duration::from_millis(((seconds * 1000.0).round() as u64).max(1));
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = format!("oaisraw{}x{k}", std::process::id());
    let plan = Plan::new(transport, lab, size, mtu, window, &tag)?;

    // Declared first, dropped last: after both peers are dead.
    let _cleanup = Cleanup(plan.leftovers.clone());
    let exe = std::env::current_exe().context("finding the bench executable")?;
    let timeout = HANDSHAKE + Duration::from_secs(10);

    let mut recv = Peer::spawn(
        "receiver",
        plan.command(&exe, 2),
        &plan.recv_args,
        &dir.join(format!("{tag}-recv.log")),
    )?;
    let ready = recv.line(timeout, "ready")?;
    let recv_addr = ready
        .strip_prefix("ready")
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| recv.fail(&format!("expected `ready ADDR`, got {ready:?}")))?
        .to_owned();
    let mut send_args = plan.send_args.clone();
    if !transport.is_dpdk() {
        send_args.push(format!("--peer={recv_addr}"));
    }
    let mut send = Peer::spawn(
        "sender",
        plan.command(&exe, 1),
        &send_args,
        &dir.join(format!("{tag}-send.log")),
    )?;
    let ready = send.line(timeout, "ready")?;
    if ready.trim() != "ready" {
        return Err(send.fail(&format!("expected `ready`, got {ready:?}")));
    }

    let start = now_ns() + START_LEAD.as_nanos() as u64;
    send.write_line(&format!("start {start}"))?;
    recv.write_line(&format!("start {start}"))?;
    let budget = START_LEAD + WARMUP + window + DRAIN_MAX + Duration::from_secs(10);
    let s: PeerReport = send.report(budget)?;
    let r: PeerReport = recv.report(budget)?;
    // The memif server (the receiver) goes first: it is idle, and so is the client, so
    // neither is in its receive path when the other one disappears.
    recv.finish()?;
    send.finish()?;

    if r.received > s.sent {
        bail!(
            "{transport}: the receiver counted {} in-window frames but the sender sent only {}",
            r.received,
            s.sent
        );
    }
    let secs = window.as_secs_f64();
    Ok(RawResult {
        frames_per_sec: r.received as f64 / secs,
        mb_per_sec: r.bytes as f64 / secs / 1e6,
        sent: s.sent,
        received: r.received,
        size,
    })
}

/// Everything that differs between transports: where the peers run and their arguments.
struct Plan {
    /// Host of each end (sender 1, receiver 2) when in a lab.
    lab: Option<Vec<String>>,
    send_args: Vec<String>,
    recv_args: Vec<String>,
    /// Files and directories to remove at the end.
    leftovers: Vec<PathBuf>,
}

impl Plan {
    fn new(
        transport: RawTransport,
        lab: Option<&Lab>,
        size: usize,
        mtu: u32,
        window: Duration,
        tag: &str,
    ) -> anyhow::Result<Plan> {
        let budget = transport.max_payload(mtu);
        let common = |role: &str| {
            vec![
                "raw-peer".to_owned(),
                format!("--role={role}"),
                format!("--transport={}", transport.name()),
                format!("--size={size}"),
                format!("--mtu={budget}"),
                format!("--warmup-ms={}", WARMUP.as_millis()),
                format!("--window-ms={}", window.as_millis()),
            ]
        };
        let (mut send_args, mut recv_args) = (common("send"), common("recv"));
        let mut leftovers = Vec::new();
        match transport {
            RawTransport::Udp => {
                send_args.push("--bind=127.0.0.1:0".into());
                recv_args.push("--bind=127.0.0.1:0".into());
            }
            RawTransport::UdpNetns => {
                let lab = lab.context("udp-netns needs a lab")?;
                send_args.push(format!("--bind={}:0", lab.addr(1)));
                recv_args.push(format!("--bind={}:0", lab.addr(2)));
            }
            RawTransport::DpdkAfPacket | RawTransport::DpdkMemif => {
                let two_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
                let socket = format!("/{tag}.memif");
                for (args, role, lcore) in [
                    (&mut send_args, "s", 0),
                    (&mut recv_args, "r", usize::from(two_cpus)),
                ] {
                    let prefix = format!("{tag}{role}");
                    for base in dpdk_runtime_dirs() {
                        leftovers.push(base.join(&prefix));
                    }
                    let mut eal: Vec<String> = [
                        "--no-huge",
                        "-m",
                        "256",
                        "--no-pci",
                        "--no-telemetry",
                        "--log-level=lib.eal:warning",
                    ]
                    .map(str::to_owned)
                    .to_vec();
                    eal.extend(["-l".into(), lcore.to_string()]);
                    eal.extend(["--file-prefix".into(), prefix]);
                    if transport == RawTransport::DpdkAfPacket {
                        // framesz holds the largest frame; values from bench/scripts/dpdk-vs-udp.sh.
                        let (framesz, blocksz) = if mtu > 1500 {
                            (10240, 20480)
                        } else {
                            (2048, 4096)
                        };
                        eal.push("--no-shconf".into());
                        eal.push(format!(
                            "--vdev=net_af_packet0,iface=eth0,framesz={framesz},blocksz={blocksz}"
                        ));
                        args.push("--dpdk-port=net_af_packet0".into());
                        args.push(format!("--min-data-room={}", framesz + 128));
                    } else {
                        // memif needs EAL's shared configuration (no --no-shconf); the server
                        // (receiver) starts first. bsize holds a whole frame.
                        let memif_role = if role == "r" { "server" } else { "client" };
                        let bsize = if mtu > 1500 { 10240 } else { 2048 };
                        eal.push(format!(
                            "--vdev=net_memif0,role={memif_role},socket={socket},id=0,bsize={bsize}"
                        ));
                        args.push("--dpdk-port=net_memif0".into());
                    }
                    let mbufs = if mtu > 1500 { 4095 } else { 8191 };
                    args.push(format!("--mbufs={mbufs}"));
                    args.extend(eal.into_iter().map(|a| format!("--eal={a}")));
                }
                // An abstract socket by default (nothing on disk); removed in case it is not.
                leftovers.push(PathBuf::from(socket));
            }
        }
        let lab = lab
            .filter(|_| transport.needs_lab())
            .map(|l| vec![l.netns(1).to_owned(), l.netns(2).to_owned()]);
        Ok(Plan {
            lab,
            send_args,
            recv_args,
            leftovers,
        })
    }

    /// The command that runs `exe` on `host` (1 or 2): in the host's namespace in a lab.
    fn command(&self, exe: &Path, host: usize) -> Command {
        match &self.lab {
            Some(hosts) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &hosts[host - 1]]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }
}

/// Where EAL puts the runtime directory `<dir>/<file-prefix>`: `/var/run/dpdk` as root,
/// `$XDG_RUNTIME_DIR/dpdk` or `/tmp/dpdk` otherwise.
fn dpdk_runtime_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/var/run/dpdk"), PathBuf::from("/tmp/dpdk")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(Path::new(&x).join("dpdk"));
    }
    dirs
}

/// Removes files and directories on drop (errors ignored).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else if p.exists() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// A running `raw-peer`: killed and reaped on drop unless [`Peer::finish`]ed.
struct Peer {
    name: &'static str,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
}

impl Peer {
    fn spawn(
        name: &'static str,
        mut cmd: Command,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Peer> {
        let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting the {name}: {cmd:?}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("the peer's stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Peer {
            name,
            child: Some(child),
            stdin,
            lines,
            log: log.to_owned(),
        })
    }

    /// An error about this peer, with the tail of its log.
    fn fail(&self, what: &str) -> anyhow::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        anyhow::anyhow!(
            "raw {}: {what}; its log {}:\n{tail}",
            self.name,
            self.log.display()
        )
    }

    /// The next line the peer prints.
    fn line(&mut self, timeout: Duration, what: &str) -> anyhow::Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => {
                Err(self.fail(&format!("no `{what}` within {timeout:?}")))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.wait().ok())
                    .map_or_else(|| "?".to_owned(), |s| s.to_string());
                Err(self.fail(&format!("exited ({status}) before `{what}`")))
            }
        }
    }

    fn report(&mut self, timeout: Duration) -> anyhow::Result<PeerReport> {
        let line = self.line(timeout, "its report")?;
        serde_json::from_str(&line).map_err(|e| self.fail(&format!("bad report {line:?}: {e}")))
    }

    fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        let r = match self.stdin.as_mut() {
            Some(w) => writeln!(w, "{line}").and_then(|()| w.flush()),
            None => Ok(()),
        };
        r.map_err(|e| self.fail(&format!("cannot write to it: {e}")))
    }

    /// Closes its stdin (it exits) and reaps it; kills it after 5 s. A non-zero exit is an
    /// error.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.stdin = None;
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => return Err(self.fail(&format!("exited with {s}"))),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.fail("did not exit within 5 s of its stdin closing"));
                }
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `bench raw`.
///
/// # Errors
/// A bad argument, a lab that cannot be created (not root), or a failed measurement.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let t = args.transport;
    if t.is_dpdk() && !cfg!(feature = "dpdk") {
        bail!(
            "this bench was built without DPDK: cargo run --release -p bench --features dpdk -- \
             raw --transport {t} ..."
        );
    }
    let max = t.max_payload(args.mtu);
    let (sizes, skipped): (Vec<usize>, Vec<usize>) =
        args.size.iter().partition(|&&s| (1..=max).contains(&s));
    for s in &skipped {
        eprintln!(
            "bench raw: skipping size {s}: {t} at MTU {} carries 1..={max} bytes{}",
            args.mtu,
            if args.mtu < 9000 {
                " (--mtu 9000 for jumbo frames)"
            } else {
                ""
            }
        );
    }
    if sizes.is_empty() {
        bail!(
            "no size fits MTU {}: {t} carries at most {max} bytes",
            args.mtu
        );
    }
    let lab = if t.needs_lab() {
        Some(Lab::new(2, args.mtu).context("creating the two-host network-namespace lab")?)
    } else {
        None
    };
    let dir = std::env::temp_dir().join(format!("oais-raw-{}", std::process::id()));
    let result = (|| {
        for size in sizes {
            let r = measure(t, lab.as_ref(), size, args.mtu, args.seconds, &dir)?;
            if args.json {
                let v = serde_json::json!({
                    "bench": "raw",
                    "transport": t.name(),
                    "size": r.size,
                    "mtu": args.mtu,
                    "seconds": args.seconds,
                    "frames_per_sec": r.frames_per_sec,
                    "mb_per_sec": r.mb_per_sec,
                    "sent": r.sent,
                    "received": r.received,
                });
                println!("{v}");
            } else {
                let pct = if r.sent == 0 {
                    0.0
                } else {
                    100.0 * r.received as f64 / r.sent as f64
                };
                println!(
                    "raw {t} mtu {} size {:>5}: {:>10.0} frames/s {:>9.1} MB/s  \
                     (sent {}, received {}, {pct:.1}% delivered, {} s)",
                    args.mtu,
                    r.size,
                    r.frames_per_sec,
                    r.mb_per_sec,
                    r.sent,
                    r.received,
                    args.seconds
                );
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

// ---------------------------------------------------------------------------------------------
// The peer side.

/// Runs `bench raw-peer`: one end of the link (see the [module documentation](self)).
///
/// # Errors
/// Bad arguments, a transport that cannot be set up, no answer from the receiver, a broken
/// protocol on stdin.
pub fn run_peer(args: &PeerArgs) -> anyhow::Result<()> {
    if args.size == 0 || args.size > args.mtu {
        bail!("size {} is not in 1..={}", args.size, args.mtu);
    }
    let stdin = stdin_lines();
    match args.transport {
        RawTransport::Udp | RawTransport::UdpNetns => {
            let bind = args.bind.context("--bind is required for UDP")?;
            let mut c = UdpConfig::unicast(bind);
            c.mtu = args.mtu;
            let mut t = UdpTransport::new(c).context("creating the UDP transport")?;
            let me = Member {
                id: if args.role == Role::Send {
                    SENDER
                } else {
                    RECEIVER
                },
                addr: t.local_addr(),
            };
            match args.role {
                Role::Send => {
                    let peer = args.peer.context("--peer is required for the UDP sender")?;
                    t.set_members(&[
                        me,
                        Member {
                            id: RECEIVER,
                            addr: peer,
                        },
                    ])?;
                    sender(&mut t, args, &stdin)
                }
                Role::Recv => {
                    t.set_members(&[me])?;
                    println!("ready {}", t.local_addr());
                    receiver(&mut t, args, &stdin, Some(me))
                }
            }
        }
        RawTransport::DpdkAfPacket | RawTransport::DpdkMemif => dpdk_peer(args, &stdin),
    }
}

#[cfg(feature = "dpdk")]
fn dpdk_peer(args: &PeerArgs, stdin: &Receiver<String>) -> anyhow::Result<()> {
    use dataplane::dpdk::{self, DpdkConfig, DpdkTransport};
    let name = args
        .dpdk_port
        .as_deref()
        .context("--dpdk-port is required for DPDK")?;
    dpdk::init_eal(&args.eal).context("initialising DPDK's EAL")?;
    let port = dpdk::port_by_name(name)?;
    let node = if args.role == Role::Send {
        SENDER
    } else {
        RECEIVER
    };
    let mut c = DpdkConfig::new(args.eal.clone(), port, node);
    c.mtu = args.mtu;
    c.busy_poll = true;
    c.mbufs = args.mbufs;
    c.min_data_room = args.min_data_room;
    let mut t = DpdkTransport::new(c).with_context(|| format!("opening DPDK port {name}"))?;
    // Ethernet members are known by id; the address is not used.
    let addr = SocketAddr::from(([0, 0, 0, 0], 0));
    t.set_members(&[Member { id: SENDER, addr }, Member { id: RECEIVER, addr }])?;
    let r = match args.role {
        Role::Send => sender(&mut t, args, stdin),
        Role::Recv => {
            println!("ready -");
            receiver(&mut t, args, stdin, None)
        }
    };
    if t.stats().tx_errors > 0 || t.dpdk_stats().tx_no_mbuf > 0 {
        eprintln!("{:?} {:?}", t.stats(), t.dpdk_stats());
    }
    r
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_peer(_args: &PeerArgs, _stdin: &Receiver<String>) -> anyhow::Result<()> {
    bail!(
        "this bench was built without DPDK: cargo run --release -p bench --features dpdk -- raw ..."
    )
}

/// Lines of stdin, read by a thread; the channel closes at EOF.
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Parses `start NS`.
fn parse_start(line: &str) -> anyhow::Result<u64> {
    line.strip_prefix("start ")
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("expected `start NS` on stdin, got {line:?}"))
}

/// Sleeps, then spins, until `CLOCK_REALTIME` reaches `ns`.
fn wait_until(ns: u64) {
    loop {
        let now = now_ns();
        if now >= ns {
            return;
        }
        let left = ns - now;
        if left > 2_000_000 {
            std::thread::sleep(Duration::from_nanos(left - 1_000_000));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Prints the report, then waits for stdin to close (the harness says when to exit, so a
/// memif peer never vanishes while the other one polls).
fn report_and_linger(report: &PeerReport, stdin: &Receiver<String>) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    std::io::stdout().flush()?;
    while stdin.recv().is_ok() {}
    Ok(())
}

fn control<T: Transport>(t: &mut T, dest: NodeId, tag: u8) -> anyhow::Result<()> {
    match t.send(Dest::Node(dest), CONTROL_LEN, |b| {
        b.fill(0);
        b[0] = tag;
    }) {
        Ok(()) | Err(SendError::TxFull) => {}
        Err(e) => return Err(e.into()),
    }
    // Before a memif link is up the frame is refused: the next probe tries again.
    let _ = t.flush();
    Ok(())
}

fn sender<T: Transport>(
    t: &mut T,
    args: &PeerArgs,
    stdin: &Receiver<String>,
) -> anyhow::Result<()> {
    // Handshake: probe until the receiver answers.
    let deadline = Instant::now() + HANDSHAKE;
    let mut acked = false;
    while !acked {
        if Instant::now() > deadline {
            bail!("no answer from the receiver within {HANDSHAKE:?}");
        }
        control(t, RECEIVER, PROBE)?;
        let step = Instant::now();
        while !acked && step.elapsed() < Duration::from_millis(10) {
            let n = t.recv_burst(|_, d| acked |= d.first() == Some(&ACK))?;
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    println!("ready");
    std::io::stdout().flush()?;
    let line = stdin
        .recv_timeout(Duration::from_secs(120))
        .context("no `start` on stdin")?;
    let start = parse_start(&line)?;
    let window_start = start + args.warmup_ms * 1_000_000;
    let end = window_start + args.window_ms * 1_000_000;

    let mut template = vec![0u8; args.size];
    for (i, b) in template.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut sent = 0u64;
    wait_until(start);
    loop {
        let now = now_ns();
        if now >= end {
            break;
        }
        let in_window = now >= window_start;
        let tag = if in_window { DATA_WINDOW } else { DATA_WARMUP };
        let before = t.stats().frames_out;
        loop {
            match t.send(Dest::Node(RECEIVER), args.size, |b| {
                b.copy_from_slice(&template);
                b[0] = tag;
            }) {
                Ok(()) => {}
                Err(SendError::TxFull) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Flush the whole burst: retry while the kernel's send buffer is full.
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            match t.flush() {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > give_up {
                        bail!("the send buffer stayed full for 5 s");
                    }
                }
                // Refused frames are dropped and counted in tx_errors; not sent.
                Err(_) => break,
            }
        }
        if in_window {
            sent += t.stats().frames_out - before;
        }
    }
    let report = PeerReport {
        role: "send".into(),
        sent,
        tx_errors: t.stats().tx_errors,
        ..PeerReport::default()
    };
    report_and_linger(&report, stdin)
}

/// `me`: for UDP, this node's member entry; the sender is added on its first probe.
fn receiver<T: Transport>(
    t: &mut T,
    args: &PeerArgs,
    stdin: &Receiver<String>,
    me: Option<Member>,
) -> anyhow::Result<()> {
    std::io::stdout().flush()?;
    // Until `start`: answer probes.
    let start = loop {
        match stdin.try_recv() {
            Ok(line) => break parse_start(&line)?,
            Err(mpsc::TryRecvError::Disconnected) => bail!("stdin closed before `start`"),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let mut probe: Option<Source> = None;
        let n = t.recv_burst(|src, d| {
            if d.first() == Some(&PROBE) {
                probe = Some(src);
            }
        })?;
        if let Some(src) = probe {
            if let (None, Some(me)) = (src.node, me) {
                t.set_members(&[
                    Member {
                        id: SENDER,
                        addr: src.addr,
                    },
                    me,
                ])?;
            }
            control(t, SENDER, ACK)?;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let end = start + (args.warmup_ms + args.window_ms) * 1_000_000;
    let (mut received, mut bytes) = (0u64, 0u64);
    wait_until(start);
    let mut last_frame = now_ns();
    loop {
        let n = t.recv_burst(|_, d| {
            if d.first() == Some(&DATA_WINDOW) {
                received += 1;
                bytes += d.len() as u64;
            }
        })?;
        let now = now_ns();
        if n > 0 {
            last_frame = now;
        } else if now >= end
            && (now - last_frame >= QUIET.as_nanos() as u64
                || now - end >= DRAIN_MAX.as_nanos() as u64)
        {
            break;
        }
    }
    let report = PeerReport {
        role: "recv".into(),
        received,
        bytes,
        ..PeerReport::default()
    };
    report_and_linger(&report, stdin)
}
