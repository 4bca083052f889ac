//! The configuration file of `aisexec`: TOML whose `[totem]` table uses corosync's key names.
//!
//! Reading a file has two steps. [`Config::parse`] checks the syntax and the types (a
//! misspelt key is an error: every table denies unknown fields); [`Config::validate`] checks
//! the meaning (timers consistent, addresses of the right kind, the member list complete).
//! [`Config::from_str`] and [`Config::from_file`] do both. Every error names the file, the line
//! and column, and the key (see [`ConfigError`]). The conversions
//! [`Config::totem_config`], [`Config::udp_config`] and [`Config::members`] produce the
//! settings of the Totem core and of the kernel UDP transport; [`Config::protection`] says how
//! frames are protected (`secauth`, `crypto_cipher`) and `totem.keyfile` where the cluster key
//! is (read with [`crate::keyfile::read`]).
//!
//! `docs/configuration.md` describes every key; `configs/` holds examples, all parsed by a test.

mod positions;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use totem_dpdk::srp;

use positions::{Positions, key_at, position_of};

/// The environment variable naming the configuration file when no path is given explicitly
/// (the name the original openais executive reads).
pub const CONFIG_FILE_ENV: &str = "OPENAIS_MAIN_CONFIG_FILE";

/// The configuration file used when neither an explicit path nor [`CONFIG_FILE_ENV`] is given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/openais/aisexec.toml";

/// Smallest accepted `totem.netmtu` (the IPv4 minimum reassembly size).
pub const MIN_NETMTU: u32 = 576;
/// Largest accepted `totem.netmtu` (jumbo frames).
pub const MAX_NETMTU: u32 = 9216;
/// Largest accepted timer value, in milliseconds (10 minutes).
pub const MAX_TIMER_MS: u64 = 600_000;
/// Largest accepted `totem.max_message_size` (1 GiB).
pub const MAX_MESSAGE_SIZE_LIMIT: u64 = 1 << 30;

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
    /// Name and positions of the text this was parsed from, for error messages.
    #[serde(skip)]
    source: Source,
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
    /// Interval between join messages in ms (default 50).
    #[serde(default = "defaults::join")]
    pub join: u64,
    /// Consensus timeout in ms (default 1.2 × `token`); see [`Totem::consensus_ms`].
    #[serde(default)]
    pub consensus: Option<u64>,
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
    /// The network interface (`[totem.interface]`).
    #[serde(default)]
    pub interface: Interface,
}

impl Totem {
    /// The consensus timeout in ms: `consensus`, or 1.2 × `token` when it is not set.
    pub fn consensus_ms(&self) -> u64 {
        self.consensus
            .unwrap_or_else(|| self.token.saturating_mul(12) / 10)
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
    /// Where persistent state lives, such as the ring sequence number (default
    /// `/var/lib/openais`).
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    /// The CPU to pin the Totem thread to (default none: not pinned).
    #[serde(default)]
    pub cpu: Option<usize>,
    /// Write the JSON Lines event log here (default none).
    #[serde(default)]
    pub event_log: Option<PathBuf>,
}

impl Default for Aisexec {
    fn default() -> Self {
        Aisexec {
            ipc_socket: defaults::ipc_socket(),
            ipc_group: None,
            state_dir: defaults::state_dir(),
            cpu: None,
            event_log: None,
        }
    }
}

mod defaults {
    use std::path::PathBuf;

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
    pub(super) fn token_retransmits_before_loss_const() -> u32 {
        4
    }
    pub(super) fn join() -> u64 {
        50
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

/// The text a [`Config`] came from: its name and where each key is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Source {
    origin: String,
    positions: Positions,
}

/// What is wrong with a configuration, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The text is not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("{0}")]
    Syntax(Located),
    /// The values are inconsistent or unsupported.
    #[error("{0}")]
    Invalid(Located),
}

impl ConfigError {
    /// Where the problem is, for [`ConfigError::Syntax`] and [`ConfigError::Invalid`].
    pub fn location(&self) -> Option<&Located> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax(l) | ConfigError::Invalid(l) => Some(l),
        }
    }
}

/// A problem at a place in a configuration text. Displayed as
/// `origin:line:column: key: message`, leaving out what is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file name (or other origin) given to the parser.
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column (in characters), when known.
    pub column: Option<u32>,
    /// The key path, such as `totem.consensus` or `nodelist.node[1].nodeid`, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`; errors name it as given.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the file cannot be read, otherwise as [`Config::from_str`].
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_str(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors (usually the file name).
    ///
    /// # Errors
    /// The first problem found: [`ConfigError::Syntax`] from [`Config::parse`], then
    /// [`ConfigError::Invalid`] from [`Config::validate`].
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text, origin)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses `text` without checking the values' meaning (see [`Config::validate`]).
    ///
    /// # Errors
    /// [`ConfigError::Syntax`]: invalid TOML, an unknown key, a missing required key or a value
    /// of the wrong type, with its line, column and key path.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax(locate_toml_error(text, origin, &e)))?;
        config.source = Source {
            origin: origin.to_owned(),
            positions: Positions::scan(text),
        };
        Ok(config)
    }

    /// The file to read: `explicit` if given, else the file named by the environment variable
    /// [`CONFIG_FILE_ENV`] (`OPENAIS_MAIN_CONFIG_FILE`) if set and not empty, else
    /// [`DEFAULT_CONFIG_FILE`].
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        Config::locate_with(explicit, |name| std::env::var(name).ok())
    }

    /// [`Config::locate`] with the environment given as a function (for tests and callers that
    /// carry their own environment).
    pub fn locate_with(explicit: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(path) = explicit {
            return path.to_owned();
        }
        match env(CONFIG_FILE_ENV) {
            Some(value) if !value.is_empty() => PathBuf::from(value),
            _ => PathBuf::from(DEFAULT_CONFIG_FILE),
        }
    }

    /// The name given to the parser (empty for a configuration built in code).
    pub fn origin(&self) -> &str {
        &self.source.origin
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.invalid_near(key, key, message)
    }

    /// An error about `key`, located at `near` (for a key that is absent from the text).
    fn invalid_near(&self, key: &str, near: &str, message: impl Into<String>) -> ConfigError {
        let at = self.source.positions.find(near);
        ConfigError::Invalid(Located {
            origin: self.source.origin.clone(),
            line: at.map(|p| p.line),
            column: at.map(|p| p.column),
            key: Some(key.to_owned()),
            message: message.into(),
        })
    }

    /// Checks that the values make sense together and are supported by this version.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for the first problem found, naming the key (and its line when
    /// the configuration was parsed from text).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        if t.nodeid == 0 {
            return Err(self.invalid("totem.nodeid", "node id 0 is reserved; use 1..=4294967295"));
        }
        if t.transport == TransportKind::Dpdk && self.dpdk.port.is_empty() {
            return Err(self.invalid_near(
                "dpdk",
                "totem.transport",
                "transport \"dpdk\" needs [dpdk] port (the device name, e.g. \"net_af_packet0\") and the EAL arguments that create it",
            ));
        }
        if !(10..=100_000).contains(&self.dpdk.max_backoff_us) {
            return Err(self.invalid(
                "dpdk.max_backoff_us",
                format!(
                    "{} µs is out of range: the idle back-off sleeps 10..=100000 µs at most",
                    self.dpdk.max_backoff_us
                ),
            ));
        }
        self.validate_crypto()?;
        self.validate_timers()?;
        self.validate_flow_control()?;
        match t.transport {
            TransportKind::Udp => self.validate_udp()?,
            TransportKind::Udpu | TransportKind::Dpdk => self.validate_udpu()?,
        }
        if !self.nodelist.node.is_empty() && t.transport == TransportKind::Udp {
            self.validate_nodelist()?;
        }
        self.validate_aisexec()?;
        // Anything the Totem core would still refuse.
        self.totem_config()
            .validate()
            .map_err(|e| self.invalid("totem", e.to_string()))
    }

    fn validate_crypto(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        if !t.secauth && t.crypto_cipher == Some(CryptoCipher::Aes256) {
            // The file asks for encryption and switches it off: refuse rather than run in clear.
            return Err(self.invalid(
                "totem.crypto_cipher",
                "\"aes256\" needs secauth = true (with secauth = false frames are neither \
                 authenticated nor encrypted); set secauth = true or remove crypto_cipher",
            ));
        }
        if t.keyfile.as_os_str().is_empty() {
            return Err(self.invalid(
                "totem.keyfile",
                format!(
                    "must not be empty; leave it out for the default {}",
                    crate::keyfile::DEFAULT_KEYFILE
                ),
            ));
        }
        Ok(())
    }

    fn validate_timers(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        for (key, ms) in [
            ("totem.token", Some(t.token)),
            ("totem.join", Some(t.join)),
            ("totem.consensus", t.consensus),
            ("totem.merge", Some(t.merge)),
            // 0 is allowed here: it turns pause detection off.
            ("totem.pause_threshold", t.pause_threshold.map(|v| v.max(1))),
        ] {
            if let Some(ms) = ms
                && !(1..=MAX_TIMER_MS).contains(&ms)
            {
                return Err(
                    self.invalid(key, format!("must be 1..={MAX_TIMER_MS} ms, got {ms} ms"))
                );
            }
        }
        let consensus = t.consensus_ms();
        if consensus < t.token {
            return Err(self.invalid(
                "totem.consensus",
                format!(
                    "must be at least totem.token ({} ms), got {consensus} ms",
                    t.token
                ),
            ));
        }
        if t.join >= consensus {
            return Err(self.invalid(
                "totem.join",
                format!(
                    "must be less than totem.consensus ({consensus} ms), got {} ms",
                    t.join
                ),
            ));
        }
        for (key, value) in [
            (
                "totem.token_retransmits_before_loss_const",
                t.token_retransmits_before_loss_const,
            ),
            ("totem.seqno_unchanged_const", t.seqno_unchanged_const),
            ("totem.fail_recv_const", t.fail_recv_const),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1, got 0"));
            }
        }
        Ok(())
    }

    fn validate_flow_control(&self) -> Result<(), ConfigError> {
        let t = &self.totem;
        if !(MIN_NETMTU..=MAX_NETMTU).contains(&t.netmtu) {
            return Err(self.invalid(
                "totem.netmtu",
                format!(
                    "must be {MIN_NETMTU}..={MAX_NETMTU} bytes, got {}",
                    t.netmtu
                ),
            ));
        }
        if t.max_messages == 0 {
            return Err(self.invalid("totem.max_messages", "must be at least 1, got 0"));
        }
        if t.max_queued_bytes == 0 {
            return Err(self.invalid(
                "totem.max_queued_bytes",
                "must be at least 1 byte, got 0 (a message is always taken when the queue is empty)",
            ));
        }
        if t.window_size < t.max_messages {
            return Err(self.invalid(
                "totem.window_size",
                format!(
                    "must be at least totem.max_messages ({}), got {}",
                    t.max_messages, t.window_size
                ),
            ));
        }
        if !(1..=MAX_MESSAGE_SIZE_LIMIT).contains(&t.max_message_size) {
            return Err(self.invalid(
                "totem.max_message_size",
                format!(
                    "must be 1..={MAX_MESSAGE_SIZE_LIMIT} bytes, got {}",
                    t.max_message_size
                ),
            ));
        }
        Ok(())
    }

    fn validate_udp(&self) -> Result<(), ConfigError> {
        let i = &self.totem.interface;
        let Some(bind) = i.bindnetaddr else {
            return Err(self.invalid(
                "totem.interface.bindnetaddr",
                "required for transport \"udp\": the local address to bind",
            ));
        };
        if bind.is_unspecified() || bind.is_multicast() {
            return Err(self.invalid(
                "totem.interface.bindnetaddr",
                format!("must be a specific local unicast address, got {bind}"),
            ));
        }
        let Some(group) = i.mcastaddr else {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                "required for transport \"udp\": the multicast group",
            ));
        };
        if !group.is_multicast() {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                format!("{group} is not a multicast address (224.0.0.0/4 or ff00::/8)"),
            ));
        }
        if group.is_ipv6() != bind.is_ipv6() {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                format!("{group} is not of the same address family as bindnetaddr {bind}"),
            ));
        }
        if i.mcastport < 2 {
            return Err(self.invalid(
                "totem.interface.mcastport",
                format!(
                    "must be 2..=65535 (the node's own socket uses mcastport - 1), got {}",
                    i.mcastport
                ),
            ));
        }
        if i.ttl == 0 || i.ttl > 255 {
            return Err(self.invalid(
                "totem.interface.ttl",
                format!("must be 1..=255, got {}", i.ttl),
            ));
        }
        Ok(())
    }

    fn validate_udpu(&self) -> Result<(), ConfigError> {
        if self.nodelist.node.is_empty() {
            return Err(self.invalid_near(
                "nodelist",
                "totem.transport",
                "transport \"udpu\" needs a [[nodelist.node]] entry (nodeid, ring0_addr) for every node",
            ));
        }
        if let Some(group) = self.totem.interface.mcastaddr {
            return Err(self.invalid(
                "totem.interface.mcastaddr",
                format!("not used by transport \"udpu\"; remove it (got {group})"),
            ));
        }
        self.validate_nodelist()?;
        let me = self.this_node().ok_or_else(|| {
            self.invalid(
                "totem.nodeid",
                format!(
                    "node {} is not in the nodelist ([[nodelist.node]] entries)",
                    self.totem.nodeid
                ),
            )
        })?;
        if let Some(bind) = self.totem.interface.bindnetaddr
            && bind != me.ring0_addr
        {
            return Err(self.invalid(
                "totem.interface.bindnetaddr",
                format!(
                    "must equal this node's ring0_addr {} for transport \"udpu\", got {bind}",
                    me.ring0_addr
                ),
            ));
        }
        Ok(())
    }

    fn validate_nodelist(&self) -> Result<(), ConfigError> {
        let nodes = &self.nodelist.node;
        let default_port = self.totem.interface.mcastport;
        for (n, node) in nodes.iter().enumerate() {
            if node.nodeid == 0 {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].nodeid"),
                    "node id 0 is reserved; use 1..=4294967295",
                ));
            }
            let addr = node.ring0_addr;
            if addr.is_unspecified() || addr.is_multicast() {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].ring0_addr"),
                    format!("must be a specific unicast address, got {addr}"),
                ));
            }
            if addr.is_ipv6() != nodes[0].ring0_addr.is_ipv6() {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].ring0_addr"),
                    format!(
                        "{addr} is not of the same address family as the first node's {}",
                        nodes[0].ring0_addr
                    ),
                ));
            }
            let port = node.port.unwrap_or(default_port);
            if port == 0 {
                return Err(self.invalid(
                    &format!("nodelist.node[{n}].port"),
                    "port 0 is not allowed: peers must know the port",
                ));
            }
            for (m, earlier) in nodes[..n].iter().enumerate() {
                if earlier.nodeid == node.nodeid {
                    return Err(self.invalid(
                        &format!("nodelist.node[{n}].nodeid"),
                        format!(
                            "node id {} is already used by nodelist.node[{m}]",
                            node.nodeid
                        ),
                    ));
                }
                let earlier_addr =
                    SocketAddr::new(earlier.ring0_addr, earlier.port.unwrap_or(default_port));
                if earlier_addr == SocketAddr::new(addr, port) {
                    return Err(self.invalid(
                        &format!("nodelist.node[{n}].ring0_addr"),
                        format!("address {earlier_addr} is already used by nodelist.node[{m}]"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_aisexec(&self) -> Result<(), ConfigError> {
        let a = &self.aisexec;
        if a.ipc_socket.as_os_str().is_empty() {
            return Err(self.invalid("aisexec.ipc_socket", "must not be empty"));
        }
        if a.state_dir.as_os_str().is_empty() {
            return Err(self.invalid("aisexec.state_dir", "must not be empty"));
        }
        if a.ipc_group.as_deref() == Some("") {
            return Err(self.invalid(
                "aisexec.ipc_group",
                "must not be empty; leave it out instead",
            ));
        }
        Ok(())
    }

    /// How Totem frames are protected (`totem.secauth` and `totem.crypto_cipher`); when it
    /// [needs a key](FrameProtection::needs_key), the executive reads `totem.keyfile` with
    /// [`crate::keyfile::read`].
    pub fn protection(&self) -> FrameProtection {
        self.totem.protection()
    }

    /// This node's `[[nodelist.node]]` entry, if any.
    pub fn this_node(&self) -> Option<&Node> {
        self.nodelist
            .node
            .iter()
            .find(|n| n.nodeid == self.totem.nodeid)
    }

    /// Whether the ring runs over IPv6 (from `bindnetaddr`, else this node's `ring0_addr`).
    fn ipv6(&self) -> bool {
        self.totem
            .interface
            .bindnetaddr
            .or_else(|| self.this_node().map(|n| n.ring0_addr))
            .is_some_and(|a| a.is_ipv6())
    }

    /// The Totem core's configuration: every timer and flow-control value of `[totem]`, the
    /// frame size from `netmtu`, no initial members (the node starts alone and discovers the
    /// others) and `ring_seq` 0 (the caller loads the persisted value).
    pub fn totem_config(&self) -> srp::Config {
        let t = &self.totem;
        let mut c = srp::Config::new(totem_dpdk::NodeId(t.nodeid), Vec::new());
        c.ring_seq = 0;
        c.max_frame_size = t.frame_size(self.ipv6()) as usize;
        c.window_size = t.window_size;
        c.max_messages = t.max_messages;
        c.max_queued_messages = t.max_queued_messages.max(1) as usize;
        c.max_message_size = usize::try_from(t.max_message_size).unwrap_or(usize::MAX);
        c.max_queued_bytes = usize::try_from(t.max_queued_bytes).unwrap_or(usize::MAX);
        c.token_timeout = ms(t.token);
        c.token_retransmits_before_loss = t.token_retransmits_before_loss_const;
        c.seqno_unchanged_const = t.seqno_unchanged_const;
        c.fail_recv_const = t.fail_recv_const;
        c.join_timeout = ms(t.join);
        c.consensus_timeout = ms(t.consensus_ms());
        c.merge_timeout = ms(t.merge);
        c.pause_threshold = ms(t.pause_threshold_ms());
        c
    }

    /// The kernel UDP transport's configuration. `udp`: bound to `bindnetaddr:(mcastport − 1)`,
    /// ring frames to `mcastaddr:mcastport` (multicast loopback on when `bindnetaddr` is a
    /// loopback address); `udpu`: bound to this node's `ring0_addr` and port. The MTU is the
    /// Totem frame size. Call on a validated configuration: missing addresses fall back to
    /// unspecified ones, which the transport refuses.
    pub fn udp_config(&self) -> dataplane::udp::UdpConfig {
        let t = &self.totem;
        let i = &t.interface;
        let mut c = match t.transport {
            TransportKind::Udp => {
                let bind = i.bindnetaddr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
                let group = i.mcastaddr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
                let mut c = dataplane::udp::UdpConfig::multicast(
                    SocketAddr::new(bind, i.mcastport.saturating_sub(1)),
                    group,
                    i.mcastport,
                );
                if let dataplane::udp::Mode::Multicast { ttl, loopback, .. } = &mut c.mode {
                    *ttl = i.ttl;
                    *loopback = bind.is_loopback();
                }
                c
            }
            TransportKind::Udpu | TransportKind::Dpdk => {
                let bind = self.this_node().map_or_else(
                    || {
                        SocketAddr::new(
                            i.bindnetaddr.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                            i.mcastport,
                        )
                    },
                    |n| SocketAddr::new(n.ring0_addr, n.port.unwrap_or(i.mcastport)),
                );
                dataplane::udp::UdpConfig::unicast(bind)
            }
        };
        c.mtu = t.frame_size(self.ipv6()) as usize;
        c
    }

    /// The ring's members with their addresses (`ring0_addr` and `port`, else `mcastport`),
    /// for `udpu`; empty for `udp`, whose members are discovered: the driver teaches the
    /// transport each sender's address from its first valid frame
    /// (`dataplane::Transport::learn_member`), since the token is unicast.
    pub fn members(&self) -> Vec<dataplane::Member> {
        if self.totem.transport == TransportKind::Udp {
            return Vec::new();
        }
        let port = self.totem.interface.mcastport;
        self.nodelist
            .node
            .iter()
            .map(|n| dataplane::Member {
                id: dataplane::NodeId(n.nodeid),
                addr: SocketAddr::new(n.ring0_addr, n.port.unwrap_or(port)),
            })
            .collect()
    }
}

fn ms(value: u64) -> totem_dpdk::Duration {
    totem_dpdk::Duration::from_millis(value.min(MAX_TIMER_MS))
}

/// Turns the parser's error (a message and a byte span) into a [`Located`] problem.
fn locate_toml_error(text: &str, origin: &str, error: &toml::de::Error) -> Located {
    let message = error.message().trim().to_owned();
    let (position, table, key) = match error.span() {
        Some(span) => {
            let (table, key) = key_at(text, span.start);
            (Some(position_of(text, span.start)), table, key)
        }
        None => (None, String::new(), None),
    };
    // "missing field `x`": the span is the table that lacks it.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let key = match missing {
        Some(field) if table.is_empty() => Some(field.to_owned()),
        Some(field) => Some(format!("{table}.{field}")),
        None => key.or((!table.is_empty()).then_some(table)),
    };
    Located {
        origin: origin.to_owned(),
        line: position.map(|p| p.line),
        column: position.map(|p| p.column),
        key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[totem]\nnodeid = 1\ntransport = \"udpu\"\n{crypto}\n\n[[nodelist.node]]\nnodeid = 1\nring0_addr = \"10.0.0.1\"\n";

    fn with(crypto: &str) -> Result<Config, ConfigError> {
        Config::from_str(&BASE.replace("{crypto}", crypto), "crypto.toml")
    }

    #[test]
    fn protection_follows_secauth_and_the_cipher() {
        for (crypto, expected) in [
            ("", FrameProtection::Encrypt),
            ("secauth = true", FrameProtection::Encrypt),
            ("crypto_cipher = \"aes256\"", FrameProtection::Encrypt),
            ("crypto_cipher = \"none\"", FrameProtection::Authenticate),
            (
                "secauth = true\ncrypto_cipher = \"none\"",
                FrameProtection::Authenticate,
            ),
            ("secauth = false", FrameProtection::Integrity),
            (
                "secauth = false\ncrypto_cipher = \"none\"",
                FrameProtection::Integrity,
            ),
        ] {
            let config = with(crypto).unwrap_or_else(|e| panic!("{crypto:?}: {e}"));
            assert_eq!(config.protection(), expected, "{crypto:?}");
            assert_eq!(expected.needs_key(), expected != FrameProtection::Integrity);
        }
    }

    #[test]
    fn the_key_file_defaults_and_can_be_moved() {
        let config = with("").unwrap();
        assert_eq!(
            config.totem.keyfile,
            Path::new(crate::keyfile::DEFAULT_KEYFILE)
        );
        assert_eq!(config.totem.crypto_cipher, None);
        assert_eq!(config.totem.cipher(), CryptoCipher::Aes256);
        let config = with("keyfile = \"/srv/key\"").unwrap();
        assert_eq!(config.totem.keyfile, Path::new("/srv/key"));
    }

    #[test]
    fn crypto_mistakes_are_located() {
        let e = with("crypto_cipher = \"aes128\"").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax(_)));
        assert_eq!(
            e.to_string(),
            "crypto.toml:4:17: totem.crypto_cipher: unsupported cipher \"aes128\"; allowed values: \
             \"aes256\" (authenticate and encrypt, the default) or \"none\" (authenticate only)"
        );
        let e = with("secauth = false\ncrypto_cipher = \"aes256\"").unwrap_err();
        assert!(matches!(e, ConfigError::Invalid(_)));
        assert!(
            e.to_string().starts_with(
                "crypto.toml:5:1: totem.crypto_cipher: \"aes256\" needs secauth = true"
            ),
            "{e}"
        );
        let e = with("keyfile = \"\"").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("crypto.toml:4:1: totem.keyfile: must not be empty"),
            "{e}"
        );
    }

    #[test]
    fn cipher_names_round_trip() {
        for cipher in [CryptoCipher::Aes256, CryptoCipher::None] {
            assert_eq!(CryptoCipher::try_from(cipher.to_string()), Ok(cipher));
        }
    }
}
