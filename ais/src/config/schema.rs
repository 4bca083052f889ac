//! The file's structure: one serde struct per table (every table denies unknown fields),
//! corosync's key names, the defaults, and the values derived from a few keys.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::Source;

/// IPv4 and UDP headers: Totem frame size = `netmtu` − this on IPv4.
const IPV4_UDP_OVERHEAD: u32 = 28;
/// IPv6 and UDP headers: Totem frame size = `netmtu` − this on IPv6.
const IPV6_UDP_OVERHEAD: u32 = 48;

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Totem protocol and its network (`[totem]`).
    pub totem: Totem,
    /// The ring's members, for the `udpu` transport (`[[nodelist.node]]`).
    #[serde(default)]
    pub nodelist: Nodelist,
    /// Where the executive logs (`[logging]`).
    #[serde(default)]
    pub logging: Logging,
    /// The executive itself: IPC socket, state directory, CPU (`[aisexec]`).
    #[serde(default)]
    pub aisexec: Aisexec,
    /// The DPDK port, for `transport = "dpdk"` (`[dpdk]`).
    #[serde(default)]
    pub dpdk: Dpdk,
    /// Quorum (`[quorum]`): without the table no quorum service runs and every partition
    /// acts as if quorate.
    #[serde(default)]
    pub quorum: Option<Quorum>,
    /// Checkpoints (`[ckpt]`).
    #[serde(default)]
    pub ckpt: Ckpt,
    /// Events (`[evt]`).
    #[serde(default)]
    pub evt: Evt,
    /// Message queues (`[msg]`).
    #[serde(default)]
    pub msg: Msg,
    /// Distributed locks (`[lck]`).
    #[serde(default)]
    pub lck: Lck,
    /// The availability management framework (`[amf]`): where its model file is. Without
    /// the table no AMF model is read.
    #[serde(default)]
    pub amf: Option<Amf>,
    /// The ATCA shelf this node watches (`[hpi]`): without the table it watches none (it
    /// still receives the shelf events other nodes' watchers submit).
    #[serde(default)]
    pub hpi: Option<Hpi>,
    /// Name and positions of the text this was parsed from, for error messages.
    #[serde(skip)]
    pub(super) source: Source,
}

/// The `[totem]` table. Timers are in milliseconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totem {
    /// This node's id, 1..=4294967295 (required).
    pub nodeid: u32,
    /// Token timeout in ms (default 100).
    #[serde(default = "defaults::token")]
    pub token: u64,
    /// Token retransmissions within `token` before the token is declared lost (default 4).
    #[serde(default = "defaults::token_retransmits_before_loss_const")]
    pub token_retransmits_before_loss_const: u32,
    /// Interval between join messages in ms (default 25).
    #[serde(default = "defaults::join")]
    pub join: u64,
    /// Consensus timeout in ms (default 1.2 × `token`); see [`Totem::consensus_ms`].
    #[serde(default)]
    pub consensus: Option<u64>,
    /// Accept a `consensus` below `token` (default false; not a corosync key: corosync
    /// refuses it). A crash is then detected sooner, but a member that does not answer a
    /// join for longer than `consensus` is excluded (docs/membership.md).
    #[serde(default)]
    pub short_consensus: bool,
    /// Interval of merge-detect announcements in ms (default 200).
    #[serde(default = "defaults::merge")]
    pub merge: u64,
    /// How late, in ms, the executive may run a Totem deadline before the node counts its
    /// own process as paused (default `token` / 2; 0 turns detection off; not a corosync
    /// key: corosync uses token / 2 fixed); see [`Totem::pause_threshold_ms`].
    #[serde(default)]
    pub pause_threshold: Option<u64>,
    /// Idle rotations before the representative holds the token (default 5).
    #[serde(default = "defaults::seqno_unchanged_const")]
    pub seqno_unchanged_const: u32,
    /// Token pacing on a lightly loaded ring, in µs: the representative passes the token on
    /// no sooner than this after it last did while a rotation stamps less than half the
    /// window, so messages travel many per rotation (0 turns it off; not a corosync key;
    /// must stay below the token hold, half the token retransmit interval). Not set: 1000,
    /// or off where the hold is not longer (a `token` under 9 ms).
    #[serde(default)]
    pub token_pace_us: Option<u64>,
    /// Token visits without progress before a member is declared failed to receive (default 50).
    #[serde(default = "defaults::fail_recv_const")]
    pub fail_recv_const: u32,
    /// Most frames the whole ring sends per token rotation (default 50).
    #[serde(default = "defaults::window_size")]
    pub window_size: u32,
    /// Most frames one node sends per token visit (default 17).
    #[serde(default = "defaults::max_messages")]
    pub max_messages: u32,
    /// Most messages waiting in this node's send queues; beyond it clients get TRY_AGAIN
    /// (default 16384; not a corosync key).
    #[serde(default = "defaults::max_queued_messages")]
    pub max_queued_messages: u32,
    /// Most payload bytes waiting in this node's send queues; beyond it clients get
    /// TRY_AGAIN (default 8 MiB; a larger message is still taken when nothing is queued; not
    /// a corosync key). Bounds the queueing delay of a saturated node whatever the size.
    #[serde(default = "defaults::max_queued_bytes")]
    pub max_queued_bytes: u64,
    /// The link MTU in bytes, 576..=9216 (default 1500).
    #[serde(default = "defaults::netmtu")]
    pub netmtu: u32,
    /// Largest application message in bytes (default 64 MiB).
    #[serde(default = "defaults::max_message_size")]
    pub max_message_size: u64,
    /// How ring frames travel (default `udp`).
    #[serde(default)]
    pub transport: TransportKind,
    /// Protect frames with the cluster key (default true): every frame is authenticated, and
    /// encrypted too unless `crypto_cipher = "none"`. `false` leaves frames with a CRC-32 only
    /// (for labs); see [`Config::protection`].
    #[serde(default = "defaults::secauth")]
    pub secauth: bool,
    /// The cipher when `secauth` is on (`"aes256"`, the default when left out: AES-256-GCM,
    /// frames authenticated and encrypted; `"none"`: authenticated only). `None` when the key
    /// is absent from the file; see [`Totem::cipher`].
    #[serde(default)]
    pub crypto_cipher: Option<CryptoCipher>,
    /// The cluster key file (default [`crate::keyfile::DEFAULT_KEYFILE`],
    /// `/etc/openais/authkey`); read by the executive when `secauth` is on.
    #[serde(default = "defaults::keyfile")]
    pub keyfile: PathBuf,
    /// The network interface (`[totem.interface]`): network 0 (corosync's ring 0).
    #[serde(default)]
    pub interface: Interface,
    /// Redundant rings: how the networks are used (`"none"`, the default: one network;
    /// `"active"`; `"passive"`; docs/rings.md). The networks are the `ringN_addr` of the node
    /// entries (`udpu`, `dpdk`) or the `[[totem.rrp_interface]]` entries (`udp`).
    #[serde(default)]
    pub rrp_mode: RrpModeKey,
    /// The other networks' settings (`[[totem.rrp_interface]]`, corosync's `interface {
    /// ringnumber }` for rings 1 to 3): their group or port, and their transport.
    #[serde(default)]
    pub rrp_interface: Vec<RrpInterface>,
    /// How often each network's copies are judged, in ms (default 50; the redundant-ring
    /// layer's `check_interval`).
    #[serde(default = "defaults::rrp_problem_count_timeout")]
    pub rrp_problem_count_timeout: u64,
    /// Bad windows (not compensated by good ones) that mark a network faulty (default 3).
    #[serde(default = "defaults::rrp_problem_count_threshold")]
    pub rrp_problem_count_threshold: u32,
    /// How long after a frame's first copy its other copies may arrive before they count as
    /// missed, in ms (default 5).
    #[serde(default = "defaults::rrp_token_expired_timeout")]
    pub rrp_token_expired_timeout: u64,
    /// How long a faulty network must work (clean windows with traffic) before it is
    /// re-enabled by itself, in ms (default 200: four windows of 50 ms); rounded up to whole
    /// windows.
    #[serde(default = "defaults::rrp_autorecovery_check_timeout")]
    pub rrp_autorecovery_check_timeout: u64,
    /// The share of missed copies, per mille, that makes a window bad (default 200; not a
    /// corosync key).
    #[serde(default = "defaults::rrp_bad_window_permille")]
    pub rrp_bad_window_permille: u32,
}

/// The `totem.rrp_mode` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RrpModeKey {
    /// One network (`"none"`).
    #[default]
    None,
    /// Every frame on every network (`"active"`).
    Active,
    /// Data frames spread over the working networks (`"passive"`).
    Passive,
}

impl fmt::Display for RrpModeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RrpModeKey::None => "none",
            RrpModeKey::Active => "active",
            RrpModeKey::Passive => "passive",
        })
    }
}

/// One `[[totem.rrp_interface]]` entry: the settings of network `ringnumber` (1 to 3).
///
/// With `transport = "udp"` every network is multicast and is one such entry (with
/// `bindnetaddr` and `mcastaddr`, as corosync's `interface { ringnumber mcastaddr }`); with
/// `"udpu"` or `"dpdk"` the networks are the node entries' `ringN_addr`, and an entry sets a
/// network's port, or makes it a DPDK port (`transport = "dpdk"`, `dpdk_port`) or a kernel UDP
/// one (`transport = "udpu"`): one node may mix them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrpInterface {
    /// The network (1 to 3; network 0 is `[totem.interface]`).
    pub ringnumber: u8,
    /// `udp`: the group's port (default network 0's `mcastport`; this node's own socket uses
    /// `mcastport − 1`); `udpu`: every node's port on this network (default: network 0's,
    /// `port` of the node entry or `totem.interface.mcastport`).
    #[serde(default)]
    pub mcastport: Option<u16>,
    /// `udp`: this node's address on this network (required there).
    #[serde(default)]
    pub bindnetaddr: Option<IpAddr>,
    /// `udp`: this network's multicast group (required there; each network needs its own
    /// group or port).
    #[serde(default)]
    pub mcastaddr: Option<IpAddr>,
    /// This network's transport, `"udpu"` or `"dpdk"` (default: `totem.transport`; `"udp"`
    /// cannot be mixed with the others).
    #[serde(default)]
    pub transport: Option<TransportKind>,
    /// `dpdk`: this network's DPDK port (device name, e.g. `"net_af_packet1"`; required
    /// there), created by `[dpdk] eal_args` together with the other networks' ports.
    #[serde(default)]
    pub dpdk_port: Option<String>,
}

impl Totem {
    /// The consensus timeout in ms: `consensus`, or 1.2 × `token` when it is not set.
    pub fn consensus_ms(&self) -> u64 {
        self.consensus
            .unwrap_or_else(|| self.token.saturating_mul(12) / 10)
    }

    /// The representative's hold of an idle token in µs: half the token retransmit interval,
    /// `token / (token_retransmits_before_loss_const + 0.2) / 2` (`srp::Config::token_hold`).
    pub fn token_hold_us(&self) -> u64 {
        self.token.saturating_mul(1000 * 10)
            / (u64::from(self.token_retransmits_before_loss_const) * 10 + 2)
            / 2
    }

    /// The token pace in µs: `token_pace_us`, or 1000 when it is not set and the hold is
    /// longer (else 0, off: a default must not make a short `token` invalid).
    pub fn token_pace_us(&self) -> u64 {
        const DEFAULT_PACE_US: u64 = 1000;
        self.token_pace_us
            .unwrap_or(if self.token_hold_us() > DEFAULT_PACE_US {
                DEFAULT_PACE_US
            } else {
                0
            })
    }

    /// The pause threshold in ms: `pause_threshold`, or `token` / 2 when it is not set.
    pub fn pause_threshold_ms(&self) -> u64 {
        self.pause_threshold.unwrap_or(self.token / 2)
    }

    /// The Totem frame size: `netmtu` minus the IP and UDP headers (28 bytes for IPv4, 48 for
    /// IPv6).
    pub fn frame_size(&self, ipv6: bool) -> u32 {
        let overhead = if ipv6 {
            IPV6_UDP_OVERHEAD
        } else {
            IPV4_UDP_OVERHEAD
        };
        self.netmtu.saturating_sub(overhead)
    }

    /// The cipher: `crypto_cipher`, or [`CryptoCipher::Aes256`] when it is not set.
    pub fn cipher(&self) -> CryptoCipher {
        self.crypto_cipher.unwrap_or_default()
    }

    /// How frames are protected, from `secauth` and `crypto_cipher`.
    pub fn protection(&self) -> FrameProtection {
        match (self.secauth, self.cipher()) {
            (false, _) => FrameProtection::Integrity,
            (true, CryptoCipher::None) => FrameProtection::Authenticate,
            (true, CryptoCipher::Aes256) => FrameProtection::Encrypt,
        }
    }
}

/// The `totem.crypto_cipher` key (corosync's name; only the values below are supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum CryptoCipher {
    /// `"aes256"`: AES-256-GCM; frames are authenticated and their payload encrypted.
    #[default]
    Aes256,
    /// `"none"`: frames are authenticated (AES-256-GCM tag over header and payload) but the
    /// payload travels in clear.
    None,
}

impl CryptoCipher {
    /// The accepted spellings, for error messages.
    const ALLOWED: &'static str =
        "\"aes256\" (authenticate and encrypt, the default) or \"none\" (authenticate only)";
}

impl TryFrom<String> for CryptoCipher {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "aes256" => Ok(CryptoCipher::Aes256),
            "none" => Ok(CryptoCipher::None),
            _ => Err(format!(
                "unsupported cipher {value:?}; allowed values: {}",
                CryptoCipher::ALLOWED
            )),
        }
    }
}

impl fmt::Display for CryptoCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CryptoCipher::Aes256 => "aes256",
            CryptoCipher::None => "none",
        })
    }
}

/// How Totem frames are protected on the wire, as configured by `totem.secauth` and
/// `totem.crypto_cipher` (the Totem core has its own equivalent; the executive maps this one
/// to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameProtection {
    /// `secauth = false`: a CRC-32 against corruption only; anyone on the network can inject
    /// frames. For labs.
    Integrity,
    /// `secauth = true`, `crypto_cipher = "none"`: frames authenticated with the cluster key,
    /// payload in clear.
    Authenticate,
    /// `secauth = true`, `crypto_cipher = "aes256"` (the default): frames authenticated and
    /// their payload encrypted with AES-256-GCM.
    Encrypt,
}

impl FrameProtection {
    /// Whether frames are authenticated with the cluster key (so the key file is needed).
    pub fn needs_key(self) -> bool {
        self != FrameProtection::Integrity
    }
}

/// The `totem.transport` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Kernel UDP, ring frames to a multicast group (`"udp"`).
    #[default]
    Udp,
    /// Kernel UDP, ring frames unicast to each member of `[[nodelist.node]]` (`"udpu"`).
    Udpu,
    /// DPDK (`"dpdk"`): accepted by the parser, rejected by [`Config::validate`] because this
    /// version is built without DPDK support in the executive.
    Dpdk,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Udp => "udp",
            TransportKind::Udpu => "udpu",
            TransportKind::Dpdk => "dpdk",
        })
    }
}

/// The `[totem.interface]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// The local address to bind. Required for `udp`; for `udpu` it defaults to this node's
    /// `ring0_addr` and, if given, must equal it.
    #[serde(default)]
    pub bindnetaddr: Option<IpAddr>,
    /// The multicast group (`udp` only, required there).
    #[serde(default)]
    pub mcastaddr: Option<IpAddr>,
    /// The UDP port (default 5405). `udp`: the group's port, and the node's own socket uses
    /// `mcastport − 1` as corosync does; `udpu`: every node's port unless its entry sets `port`.
    #[serde(default = "defaults::mcastport")]
    pub mcastport: u16,
    /// Multicast TTL (default 1: the local link).
    #[serde(default = "defaults::ttl")]
    pub ttl: u32,
}

impl Default for Interface {
    fn default() -> Self {
        Interface {
            bindnetaddr: None,
            mcastaddr: None,
            mcastport: defaults::mcastport(),
            ttl: defaults::ttl(),
        }
    }
}

/// The `[nodelist]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nodelist {
    /// The `[[nodelist.node]]` entries.
    #[serde(default)]
    pub node: Vec<Node>,
}

/// One `[[nodelist.node]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The node's id, 1..=4294967295.
    pub nodeid: u32,
    /// The address the node receives Totem frames on.
    pub ring0_addr: IpAddr,
    /// The node's port, overriding `totem.interface.mcastport` (lets several nodes share one
    /// address, as in the loopback demo).
    #[serde(default)]
    pub port: Option<u16>,
    /// Its address on network 1 (redundant rings; every node lists the same networks).
    #[serde(default)]
    pub ring1_addr: Option<IpAddr>,
    /// Its address on network 2.
    #[serde(default)]
    pub ring2_addr: Option<IpAddr>,
    /// Its address on network 3.
    #[serde(default)]
    pub ring3_addr: Option<IpAddr>,
}

impl Node {
    /// Its address on network `net` (0 to 3), if listed.
    pub fn ring_addr(&self, net: usize) -> Option<IpAddr> {
        match net {
            0 => Some(self.ring0_addr),
            1 => self.ring1_addr,
            2 => self.ring2_addr,
            3 => self.ring3_addr,
            _ => None,
        }
    }
}

/// The `[logging]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Log to standard error (default true).
    #[serde(default = "defaults::yes")]
    pub to_stderr: bool,
    /// Also log to this file (default none).
    #[serde(default)]
    pub logfile: Option<PathBuf>,
    /// Log debug messages (default false).
    #[serde(default)]
    pub debug: bool,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            to_stderr: true,
            logfile: None,
            debug: false,
        }
    }
}

/// The `[dpdk]` table: the poll-mode port Totem runs on with `transport = "dpdk"`. Frames are
/// raw Ethernet (ethertype 0x88B5) on the port; members are known by node id (the nodelist's
/// `ring0_addr` is not used) and their MAC addresses are learned from their frames.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dpdk {
    /// EAL arguments, without the program name (default: no hugepages, 256 MB, no PCI, no
    /// shared config, no telemetry, lcore 0). Add the port, e.g.
    /// `"--vdev=net_af_packet0,iface=eth0,framesz=2048,blocksz=4096"`.
    #[serde(default = "defaults::eal_args")]
    pub eal_args: Vec<String>,
    /// The port's device name (required), e.g. `"net_af_packet0"` or `"net_memif0"`.
    #[serde(default)]
    pub port: String,
    /// Busy-poll the port (a dedicated core); default false: adaptive back-off when idle.
    #[serde(default)]
    pub busy_poll: bool,
    /// Longest sleep of the adaptive back-off in microseconds (10..=100000, default 1000).
    #[serde(default = "defaults::max_backoff_us")]
    pub max_backoff_us: u64,
    /// Packet buffers in the pool (default 8191).
    #[serde(default = "defaults::mbufs")]
    pub mbufs: u32,
    /// Smallest data room of a packet buffer in bytes (default 0: just enough for a frame);
    /// `net_af_packet` needs at least its `framesz`.
    #[serde(default)]
    pub min_data_room: usize,
}

impl Default for Dpdk {
    fn default() -> Self {
        Dpdk {
            eal_args: defaults::eal_args(),
            port: String::new(),
            busy_poll: false,
            max_backoff_us: defaults::max_backoff_us(),
            mbufs: defaults::mbufs(),
            min_data_room: 0,
        }
    }
}

/// The `[quorum]` table (corosync votequorum's options).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    /// Votes expected in the whole cluster (default: the number of `[[nodelist.node]]`
    /// entries; required without a node list).
    #[serde(default)]
    pub expected_votes: Option<u32>,
    /// This node's votes (default 1).
    #[serde(default = "defaults::votes")]
    pub votes: u32,
    /// A two-node cluster: one vote of the two is quorate (needs `expected_votes = 2`;
    /// implies `wait_for_all`).
    #[serde(default)]
    pub two_node: bool,
    /// Not quorate until every expected vote has been present at once (default: `two_node`).
    #[serde(default)]
    pub wait_for_all: Option<bool>,
}

/// The `[amf]` table: the AMF model file (`docs/amf.md`), read with
/// [`crate::config::amf::AmfConfig::from_file`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amf {
    /// The model file (required), e.g. `/etc/openais/amf.toml`; a relative path is relative
    /// to the executive's working directory.
    pub model: PathBuf,
    /// The fence delay in ms: how long after a membership change that removed a node which
    /// may have served an SI the SI waits before another SU takes it active (the removed
    /// node's contact lease runs out within it and it fences itself); default the lease
    /// (1.5 × `totem.join`, at least [`Amf::MIN_LEASE_MS`]) plus `totem.token` / 8
    /// ([`crate::config::Config::amf_core_config`]). Shorter than the lease is refused.
    #[serde(default)]
    pub fence_ms: Option<u64>,
}

impl Amf {
    /// The shortest contact lease, ms.
    pub const MIN_LEASE_MS: u64 = 5;
}

/// The `[ckpt]` table: the checkpoint service's limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ckpt {
    /// Most mebibytes of section data in all checkpoints together (default 512). Every node
    /// holds every checkpoint: give every node the same value (the writer's limit decides).
    #[serde(default = "defaults::ckpt_max_memory_mb")]
    pub max_memory_mb: u64,
    /// Refuse checkpoint changes (TRY_AGAIN) while this node's partition is not quorate
    /// (default false; needs a `[quorum]` table).
    #[serde(default)]
    pub writes_need_quorum: bool,
}

impl Default for Ckpt {
    fn default() -> Ckpt {
        Ckpt {
            max_memory_mb: defaults::ckpt_max_memory_mb(),
            writes_need_quorum: false,
        }
    }
}

/// The `[evt]` table: the event service's limits (every node should have the same; the
/// sender's channel and retention limits decide for the cluster).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evt {
    /// Most channels in the cluster, linked and unlinked (default 1024): a create past it is
    /// `SA_AIS_ERR_NO_RESOURCES`.
    #[serde(default = "defaults::evt_max_channels")]
    pub max_channels: u32,
    /// Most retained events in the cluster (default 4096): a publish with a retention time
    /// past it is `SA_AIS_ERR_NO_RESOURCES`.
    #[serde(default = "defaults::evt_max_retained")]
    pub max_retained: u32,
    /// Most subscriptions of one client connection (default 1024; `SA_AIS_ERR_NO_RESOURCES`
    /// past it).
    #[serde(default = "defaults::evt_max_subscriptions")]
    pub max_subscriptions: u32,
    /// Deliveries sent to a client and not yet read, at most (default 256).
    #[serde(default = "defaults::evt_delivery_window")]
    pub delivery_window: u32,
    /// Deliveries queued for a client beyond its window (default 1000); past it the client's
    /// subscriptions are sent lost-event notifications instead.
    #[serde(default = "defaults::evt_delivery_queue")]
    pub delivery_queue: u32,
}

impl Default for Evt {
    fn default() -> Evt {
        Evt {
            max_channels: defaults::evt_max_channels(),
            max_retained: defaults::evt_max_retained(),
            max_subscriptions: defaults::evt_max_subscriptions(),
            delivery_window: defaults::evt_delivery_window(),
            delivery_queue: defaults::evt_delivery_queue(),
        }
    }
}

/// The `[msg]` table: the message queue service's limits. Every node holds every queue, and
/// the sender's limits travel with each change: give every node the same values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Msg {
    /// Most queues in the cluster (default 1024).
    #[serde(default = "defaults::msg_max_queues")]
    pub max_queues: u32,
    /// Most bytes of one queue's four priority areas together, at creation (default
    /// 4194304).
    #[serde(default = "defaults::msg_max_queue_bytes")]
    pub max_queue_bytes: u64,
    /// Most data bytes of one message (default 65536, at most 131072).
    #[serde(default = "defaults::msg_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Most mebibytes of messages in all queues together (default 256).
    #[serde(default = "defaults::msg_max_memory_mb")]
    pub max_memory_mb: u64,
    /// Most queue groups in the cluster (default 128).
    #[serde(default = "defaults::msg_max_groups")]
    pub max_groups: u32,
}

impl Default for Msg {
    fn default() -> Msg {
        Msg {
            max_queues: defaults::msg_max_queues(),
            max_queue_bytes: defaults::msg_max_queue_bytes(),
            max_message_bytes: defaults::msg_max_message_bytes(),
            max_memory_mb: defaults::msg_max_memory_mb(),
            max_groups: defaults::msg_max_groups(),
        }
    }
}

/// The `[lck]` table: the lock service's limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lck {
    /// Most resources in the cluster (default 1024): an open that would create one more is
    /// refused with `SA_AIS_ERR_NO_RESOURCES`. Give every node the same value (the opener's
    /// limit decides).
    #[serde(default = "defaults::lck_max_resources")]
    pub max_resources: u32,
    /// Most locks, granted and queued, in the cluster (default 4096, openais's figure): a
    /// request beyond is answered `SA_LCK_LOCK_NO_MORE`. Give every node the same value.
    #[serde(default = "defaults::lck_max_locks")]
    pub max_locks: u32,
}

impl Default for Lck {
    fn default() -> Lck {
        Lck {
            max_resources: defaults::lck_max_resources(),
            max_locks: defaults::lck_max_locks(),
        }
    }
}

/// The `[hpi]` table: the shelf manager this node's HPI domain watches (docs/hpi.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hpi {
    /// The shelf manager's address: a host name or an IP address (required). It is also the
    /// shelf's identity in the events: give every node the same string for one shelf.
    pub address: String,
    /// Its RMCP+ port (default 623).
    #[serde(default = "defaults::hpi_port")]
    pub port: u16,
    /// The RMCP+ user; when set it must be the credentials file's `user` (default: the
    /// file's).
    #[serde(default)]
    pub user: Option<String>,
    /// The file with the user name and password (`user = ...`, `password = ...`), readable
    /// by its owner only: a file group or others may read is refused (required).
    pub credentials: PathBuf,
    /// This node's blade: its physical slot in the shelf (default none: this node is not
    /// a blade of the shelf, or does not say which).
    #[serde(default)]
    pub slot: Option<u8>,
    /// How often the SEL is polled, in ms (default 50, so one watcher alone hands an event
    /// to the cluster within 100 ms, `bench hpi`; 10..=10000).
    #[serde(default = "defaults::hpi_sel_poll_ms")]
    pub sel_poll_ms: u64,
}

/// `aisexec.ipc_transport`: how clients' packets travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpcTransport {
    /// Shared-memory rings for the clients that ask (the library does unless told not to);
    /// the socket stays for the setup and wake-ups.
    #[default]
    Shm,
    /// Every packet on the client's `SOCK_SEQPACKET` socket.
    Seqpacket,
}

/// The `[aisexec]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aisexec {
    /// The Unix socket clients connect to (default `/run/openais/aisexec.sock`).
    #[serde(default = "defaults::ipc_socket")]
    pub ipc_socket: PathBuf,
    /// A group whose members may connect besides root (default none).
    #[serde(default)]
    pub ipc_group: Option<String>,
    /// How clients' packets travel once connected (default `shm`: shared-memory rings when
    /// the client asks; `seqpacket`: every client stays on its socket).
    #[serde(default)]
    pub ipc_transport: IpcTransport,
    /// Most packets queued for one client before it is disconnected as not reading its
    /// callbacks (default 65536; 256..=16777216). Clients' multicasts are answered TRY_AGAIN
    /// while a reading client holds more than 1/16 of it, until it holds less than 1/64
    /// (docs/services.md "Flow control").
    #[serde(default = "defaults::ipc_outbox_packets")]
    pub ipc_outbox_packets: u64,
    /// Where persistent state lives, such as the ring sequence number (default
    /// `/var/lib/openais`).
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    /// The CPU to pin the Totem thread to (default none: not pinned).
    #[serde(default)]
    pub cpu: Option<usize>,
    /// The Totem thread's nice value, -20..=19 (default [`crate::config::DEFAULT_TOTEM_NICE`],
    /// -10). Like corosync's `system.priority`, for the Totem thread alone.
    #[serde(default = "defaults::totem_nice")]
    pub totem_nice: i32,
    /// Write the JSON Lines event log here (default none).
    #[serde(default)]
    pub event_log: Option<PathBuf>,
}

impl Default for Aisexec {
    fn default() -> Self {
        Aisexec {
            ipc_socket: defaults::ipc_socket(),
            ipc_group: None,
            ipc_transport: IpcTransport::default(),
            ipc_outbox_packets: defaults::ipc_outbox_packets(),
            state_dir: defaults::state_dir(),
            cpu: None,
            totem_nice: defaults::totem_nice(),
            event_log: None,
        }
    }
}

mod defaults {
    use std::path::PathBuf;

    pub(super) fn votes() -> u32 {
        1
    }

    pub(super) fn ipc_outbox_packets() -> u64 {
        65536
    }

    pub(super) fn totem_nice() -> i32 {
        crate::config::DEFAULT_TOTEM_NICE
    }

    pub(super) fn ckpt_max_memory_mb() -> u64 {
        512
    }

    pub(super) fn evt_max_channels() -> u32 {
        1024
    }

    pub(super) fn evt_max_retained() -> u32 {
        4096
    }

    pub(super) fn evt_max_subscriptions() -> u32 {
        1024
    }

    pub(super) fn evt_delivery_window() -> u32 {
        256
    }

    pub(super) fn evt_delivery_queue() -> u32 {
        1000
    }

    pub(super) fn msg_max_queues() -> u32 {
        1024
    }

    pub(super) fn msg_max_queue_bytes() -> u64 {
        4 << 20
    }

    pub(super) fn msg_max_message_bytes() -> u64 {
        64 * 1024
    }

    pub(super) fn msg_max_memory_mb() -> u64 {
        256
    }

    pub(super) fn msg_max_groups() -> u32 {
        128
    }

    pub(super) fn lck_max_resources() -> u32 {
        1024
    }

    pub(super) fn lck_max_locks() -> u32 {
        4096
    }

    pub(super) fn hpi_port() -> u16 {
        623
    }

    pub(super) fn hpi_sel_poll_ms() -> u64 {
        50
    }

    pub(super) fn eal_args() -> Vec<String> {
        [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "-l",
            "0",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }
    pub(super) fn mbufs() -> u32 {
        8191
    }
    pub(super) fn max_backoff_us() -> u64 {
        1000
    }

    pub(super) fn token() -> u64 {
        100
    }
    pub(super) fn rrp_problem_count_timeout() -> u64 {
        50
    }
    pub(super) fn rrp_problem_count_threshold() -> u32 {
        3
    }
    pub(super) fn rrp_token_expired_timeout() -> u64 {
        5
    }
    pub(super) fn rrp_autorecovery_check_timeout() -> u64 {
        200
    }
    pub(super) fn rrp_bad_window_permille() -> u32 {
        200
    }
    pub(super) fn token_retransmits_before_loss_const() -> u32 {
        4
    }
    pub(super) fn join() -> u64 {
        25
    }
    pub(super) fn merge() -> u64 {
        200
    }
    pub(super) fn seqno_unchanged_const() -> u32 {
        5
    }
    pub(super) fn fail_recv_const() -> u32 {
        50
    }
    pub(super) fn window_size() -> u32 {
        50
    }
    pub(super) fn max_messages() -> u32 {
        17
    }
    pub(super) fn max_queued_messages() -> u32 {
        16384
    }
    pub(super) fn max_queued_bytes() -> u64 {
        8 << 20
    }
    pub(super) fn netmtu() -> u32 {
        1500
    }
    pub(super) fn max_message_size() -> u64 {
        64 << 20
    }
    pub(super) fn secauth() -> bool {
        true
    }
    pub(super) fn keyfile() -> PathBuf {
        PathBuf::from(crate::keyfile::DEFAULT_KEYFILE)
    }
    pub(super) fn yes() -> bool {
        true
    }
    pub(super) fn mcastport() -> u16 {
        5405
    }
    pub(super) fn ttl() -> u32 {
        1
    }
    pub(super) fn ipc_socket() -> PathBuf {
        PathBuf::from("/run/openais/aisexec.sock")
    }
    pub(super) fn state_dir() -> PathBuf {
        PathBuf::from("/var/lib/openais")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_round_trip() {
        for cipher in [CryptoCipher::Aes256, CryptoCipher::None] {
            assert_eq!(CryptoCipher::try_from(cipher.to_string()), Ok(cipher));
        }
    }
}
