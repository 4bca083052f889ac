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
//!
//! # The fan-out and the bare ring (`bench throughput`)
//!
//! [`measure_fanout`] runs one sender and N-1 receivers over kernel UDP: the sender sends
//! every datagram to each receiver through the transport's `Dest::Ring`, the copy per member
//! a `udpu` Totem frame gets; the result is the distinct datagrams every receiver got (the
//! smallest receiver's count) and each receiver's rate. [`measure_udp_ring`] runs one
//! `raw-peer --role ring --config FILE` per node: the Totem driver of an `aisexec`
//! configuration file with its load made on the driver thread (module `ring`), the
//! reference for the executive path's cost. [`measure_ring`] is the same role over DPDK
//! (`bench dpdk-ring`).
//!
//! # Code
//!
//! `harness` runs `bench raw` ([`run`], [`measure`]): the two peer processes and their
//! clean-up; `peer` is `bench raw-peer` ([`run_peer`]): the sender and the receiver;
//! `protocol` holds what both sides agree on (frame tags, node ids, timeouts, the clock).
//!
//! [`Transport`]: dataplane::Transport
//! [`UdpTransport`]: dataplane::udp::UdpTransport
//! [`Lab`]: netlab::Lab

#![forbid(unsafe_code)]

mod harness;
mod peer;
mod protocol;
mod ring;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::harness::{
    FanoutResult, RingResult, RingSettings, measure, measure_fanout, measure_ring,
    measure_udp_ring, run,
};
pub use self::peer::run_peer;

/// Time before the counted window: both ends run, nothing is counted.
pub const WARMUP: Duration = Duration::from_millis(300);

/// IPv4 and UDP headers: the UDP payload budget is the MTU minus this.
const UDP_OVERHEAD: u32 = 28;
/// The DPDK backend's shim header, carried inside the Ethernet payload.
const DPDK_SHIM: u32 = 12;

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

    /// Whether it runs between two hosts of a [`Lab`](netlab::Lab) (network namespaces, root).
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
    /// One node of a Totem ring that generates its own load (`bench dpdk-ring`, and the
    /// bare-ring arm of `bench throughput` with --config).
    Ring,
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
    /// UDP sender: the receiver's address (from its `ready` line). Repeat for a fan-out:
    /// every datagram goes to each receiver, as a udpu ring frame goes to every other node.
    #[arg(long)]
    pub peer: Vec<SocketAddr>,
    /// Ring over UDP: the `aisexec` configuration file whose Totem settings, addresses and
    /// key the node runs with.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
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
    /// Ring: this node's id (1 or 2).
    #[arg(long, default_value_t = 1)]
    pub node: u32,
    /// Ring: pin the Totem driver thread to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Ring: seal frames with AES-256-GCM (otherwise a CRC trailer only).
    #[arg(long)]
    pub crypto: bool,
    /// Ring: the token timeout in ms.
    #[arg(long, default_value_t = 100)]
    pub token_ms: u64,
    /// Ring: most frames the ring sends per token rotation (`totem.window_size`).
    #[arg(long, default_value_t = 50)]
    pub window_size: u32,
    /// Ring: most frames a node sends per token visit (`totem.max_messages`).
    #[arg(long, default_value_t = 17)]
    pub max_messages: u32,
    /// Ring: submit this many messages a second, evenly spaced, each stamped with its submit
    /// time, and report the self-latency (a fixed offered load; needs --size of at least 8).
    /// Without it the node submits as fast as flow control allows.
    #[arg(long)]
    pub rate: Option<f64>,
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
    /// Ring: every message delivered, inside the window or not.
    #[serde(default)]
    pub delivered: u64,
    /// Ring: FNV-1a digest of the delivered message ids, in delivery order.
    #[serde(default)]
    pub digest: u64,
    /// Ring: deliveries whose sender's message number was not its previous one plus one.
    #[serde(default)]
    pub fifo_breaks: u64,
    /// Ring: configuration changes after the ring of both nodes formed.
    #[serde(default)]
    pub config_changes: u64,
    /// Ring: the core's counters: frames sent again on request, ...
    #[serde(default)]
    pub frames_retransmitted: u64,
    /// ... tokens sent again (the next node's copy went missing), ...
    #[serde(default)]
    pub token_retransmits: u64,
    /// ... its own process pauses it noticed, ...
    #[serde(default)]
    pub pauses_detected: u64,
    /// ... and rings it installed (1: the ring formed once).
    #[serde(default)]
    pub rings_installed: u64,
    /// Ring with `--rate`: submit to own delivery of the messages submitted inside the
    /// window, as (microseconds, count) per recorded value.
    #[serde(default)]
    pub lat_self_us: Vec<(u64, u64)>,
}
