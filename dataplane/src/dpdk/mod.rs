//! The DPDK backend (feature `dpdk`): [`DpdkTransport`], safe wrappers over `dpdk-sys`.
//!
//! **Setup.** EAL is initialised once per process, by the first [`DpdkTransport::new`] (or
//! [`init_eal`]); later transports reuse that initialisation and their own
//! [`DpdkConfig::eal_args`] are ignored (EAL cannot be initialised twice). The port
//! ([`DpdkConfig::port`], or [`port_by_name`] for a vdev such as `net_ring0`) gets one RX and
//! one TX queue, a private mbuf pool whose data room holds a whole frame of
//! [`DpdkConfig::mtu`] (jumbo frames travel in one segment), promiscuous and all-multicast mode.
//!
//! **Framing** (see the private `frame` module): raw Ethernet, ethertype 0x88B5 (IEEE local
//! experimental), then a 12-byte shim header `version u8 = 1 | flags u8 | len u16 | sender
//! node id u32 | dest node id u32` (big endian), then the payload. Ring frames go to the
//! locally administered multicast MAC `03:4f:41:49:53:00` ("OAIS"), except with exactly one
//! other member whose MAC is learned: then to that MAC (a two-node ring; a software bridge
//! forwards a unicast frame to one port, where it floods a multicast one to every port and to
//! the host's own stack, all on the sender's core). A frame for
//! [`Dest::Node`]`(n)` carries the "unicast" flag and `n` as its destination id; it goes to
//! `n`'s MAC once that is learned, before that to the multicast MAC, where every node other
//! than `n` drops it on the destination id. MACs are learned from the source MAC of a member's
//! frames; the [`Member::addr`] of the trait does not apply to Ethernet and is ignored, members
//! are known by id only.
//!
//! **Receive.** Dropped and counted in [`DpdkStats`]: frames of another ethertype or shim
//! version, this node's own frames (multicast loopback; see [`DpdkConfig::accept_own`]),
//! node frames for another node, multi-segment frames. Frames longer than the MTU or shorter
//! than their header says count in [`Stats::rx_truncated`]. [`Source::node`] is the sender id
//! when the sender is a member, otherwise `None` (counted in [`Stats::unknown_sources`]).
//! [`Source::addr`] is for diagnostics only: the sender's MAC as an IPv6 link-local
//! EUI-64 address (`fe80::…`), port 0.
//!
//! **Waiting.** The virtual devices have no RX interrupts, so [`Transport::wait`] polls: with
//! [`DpdkConfig::busy_poll`] it returns at once (lowest latency, one core at 100%); otherwise,
//! after a [`Transport::recv_burst`] that found nothing, it sleeps `min(timeout, backoff)`,
//! where the back-off doubles from 10 µs to [`DpdkConfig::max_backoff`] (default 1 ms) and
//! drops back to 10 µs when a frame arrives. The sleep is on the transport's
//! [`Transport::waker`] (an eventfd), so a message submitted by another thread ends it at
//! once; only frames arriving while the poller sleeps wait, up to the back-off, which matters
//! after an idle period. That leaves the core to others, which matters on a 2-core machine.
//!
//! **Not done yet:** RX interrupts, several queues, offloads, multi-segment (scattered) frames,
//! closing the port and freeing the mbuf pool (see `Drop`).

#![allow(unsafe_code)]

mod eal;
mod frame;
mod mbuf;

use std::ffi::{CStr, CString, c_int};
use std::fmt;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dpdk_sys::{rte_eth_conf, rte_eth_dev_info, rte_ether_addr, rte_mbuf, rte_mempool};

use crate::{Caps, Dest, Member, MembersError, NodeId, SendError, Source, Stats, Transport};
pub use eal::init as init_eal;
use frame::{HEADER_LEN, Header, RING_MAC, Reject};
use mbuf::Mbuf;

/// The most frames one burst can hold ([`DpdkConfig::burst`] is at most this).
pub const MAX_BURST: usize = 32;
/// The largest [`DpdkConfig::mtu`].
pub const MAX_MTU: usize = 9000;

const BACKOFF_MIN: Duration = Duration::from_micros(10);

/// The DPDK version string of the library this process is linked against at run time, for
/// example `"DPDK 22.11.11"`. It can differ from [`BUILT_AGAINST`] when the shared library was
/// upgraded after the build.
pub fn runtime_version() -> &'static str {
    // SAFETY: rte_version() takes no arguments, needs no EAL initialisation and returns a
    // pointer to a NUL-terminated string with static storage inside librte_eal.
    let ptr = unsafe { dpdk_sys::rte_version() };
    // SAFETY: the pointer is non-null, NUL-terminated and valid for the life of the process
    // (see above); DPDK never writes to it.
    let version = unsafe { CStr::from_ptr(ptr) };
    version
        .to_str()
        .unwrap_or("DPDK (version string is not UTF-8)")
}

/// The DPDK version the bindings were generated against (pkg-config's `libdpdk` version).
pub const BUILT_AGAINST: &str = dpdk_sys::PKG_VERSION;

/// Configuration of a [`DpdkTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// EAL arguments without the program name, e.g. `["--no-huge", "--no-pci",
    /// "--no-shconf", "-l", "0", "--vdev=net_ring0"]`. Used by the first transport of the
    /// process only (see the [module documentation](self)).
    pub eal_args: Vec<String>,
    /// The ethdev port id (after EAL init; see [`port_by_name`]).
    pub port: u16,
    /// The largest payload [`Transport::send`] accepts, in bytes (1..=9000).
    pub mtu: usize,
    /// RX descriptors (adjusted to the device's limits).
    pub rx_ring: u16,
    /// TX descriptors (adjusted to the device's limits).
    pub tx_ring: u16,
    /// Mbufs in the pool; `2^n - 1` is the most memory-efficient.
    pub mbufs: u32,
    /// Frames per burst and TX slots between flushes (1..=[`MAX_BURST`]).
    pub burst: usize,
    /// This node's id: written into every frame, and how own frames are recognised.
    pub node: NodeId,
    /// `wait` returns at once instead of backing off.
    pub busy_poll: bool,
    /// The longest idle sleep of the back-off (at least 10 µs; default 1 ms). Shorter: less
    /// latency for frames that arrive after an idle period, more wake-ups when idle.
    pub max_backoff: Duration,
    /// The smallest mbuf data room (headroom included) to create the pool with; 0 for "just
    /// enough for the MTU". `net_af_packet` needs at least its `framesz` plus headroom.
    pub min_data_room: usize,
    /// Deliver this node's own frames instead of dropping them. Only for loopback devices in
    /// tests (`net_ring` sends every frame back to its sender).
    pub accept_own: bool,
}

impl DpdkConfig {
    /// Default of [`DpdkConfig::max_backoff`]: 1 ms.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_millis(1);

    /// `eal_args`, `port` and `node` with defaults: MTU 1472, 1024 RX and TX descriptors, 8191
    /// mbufs, bursts of 32, back-off waiting, own frames dropped.
    pub fn new(eal_args: Vec<String>, port: u16, node: NodeId) -> Self {
        Self {
            eal_args,
            port,
            mtu: 1472,
            rx_ring: 1024,
            tx_ring: 1024,
            mbufs: 8191,
            burst: MAX_BURST,
            node,
            busy_poll: false,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            min_data_room: 0,
            accept_own: false,
        }
    }

    fn data_room(&self) -> usize {
        (dpdk_sys::RTE_PKTMBUF_HEADROOM as usize + HEADER_LEN + self.mtu).max(self.min_data_room)
    }
}

/// Why a [`DpdkTransport`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpdkError {
    /// `rte_eal_init` failed.
    #[error(
        "EAL initialisation failed with arguments [{args}]: {reason}; are the arguments valid? \
         without hugepages use --no-huge (and -m for the memory size)"
    )]
    Eal {
        /// The arguments given.
        args: String,
        /// `rte_strerror(rte_errno)` or why the call was not made.
        reason: String,
    },
    /// The eventfd the idle back-off sleeps on could not be created.
    #[error("cannot create the eventfd the idle poller sleeps on")]
    Waker(#[source] io::Error),
    /// EAL is not initialised (a lookup before any transport or [`init_eal`]).
    #[error("EAL is not initialised; call dpdk::init_eal or create a DpdkTransport first")]
    EalNotReady,
    /// The configuration is inconsistent.
    #[error("invalid DPDK transport configuration: {0}")]
    Config(String),
    /// No such port.
    #[error(
        "DPDK port {port} not found ({available} ports available; vdev arguments: [{vdevs}]); \
         is the device given to EAL, e.g. --vdev=net_ring0?"
    )]
    PortNotFound {
        /// The port id asked for.
        port: u16,
        /// How many ports EAL found.
        available: u16,
        /// The `--vdev` arguments of the configuration.
        vdevs: String,
    },
    /// No port with this name.
    #[error("no DPDK port named {name:?}: {reason}; is it given to EAL, e.g. --vdev={name}?")]
    PortName {
        /// The name asked for.
        name: String,
        /// `rte_strerror` of the lookup.
        reason: String,
    },
    /// `rte_pktmbuf_pool_create` failed.
    #[error(
        "cannot create a pool of {mbufs} mbufs of {data_room} bytes: {reason}; \
         is EAL's memory (-m) large enough?"
    )]
    Mempool {
        /// Mbufs asked for.
        mbufs: u32,
        /// Data room per mbuf.
        data_room: usize,
        /// `rte_strerror(rte_errno)`.
        reason: String,
    },
    /// An ethdev call failed.
    #[error("{call} on port {port} failed with {rc}: {reason}")]
    Port {
        /// The function, e.g. `"rte_eth_dev_configure"`.
        call: &'static str,
        /// The port.
        port: u16,
        /// Its return code.
        rc: c_int,
        /// `rte_strerror(-rc)`.
        reason: String,
    },
}

fn port_err(call: &'static str, port: u16, rc: c_int) -> DpdkError {
    DpdkError::Port {
        call,
        port,
        rc,
        reason: eal::strerror(rc.saturating_abs()),
    }
}

/// The port id of the ethdev named `name` (a vdev name such as `net_ring0`, or a PCI
/// address). EAL must be initialised.
///
/// # Errors
/// [`DpdkError::EalNotReady`] before EAL init; [`DpdkError::PortName`] when no such port exists.
pub fn port_by_name(name: &str) -> Result<u16, DpdkError> {
    if !eal::ready() {
        return Err(DpdkError::EalNotReady);
    }
    let c = CString::new(name).map_err(|_| DpdkError::PortName {
        name: name.into(),
        reason: "the name contains a NUL byte".into(),
    })?;
    let mut port = 0u16;
    // SAFETY: EAL is initialised; `c` is NUL-terminated and `port` is a valid out-pointer.
    let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut port) };
    if rc != 0 {
        return Err(DpdkError::PortName {
            name: name.into(),
            reason: eal::strerror(rc.saturating_abs()),
        });
    }
    Ok(port)
}

/// Counters specific to this backend, next to the trait's [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DpdkStats {
    /// Frames of another ethertype, dropped.
    pub rx_foreign: u64,
    /// Frames of our ethertype with another shim version, dropped.
    pub rx_bad_version: u64,
    /// This node's own frames, dropped (unless [`DpdkConfig::accept_own`]).
    pub rx_own: u64,
    /// Node frames addressed to another node, dropped.
    pub rx_not_for_us: u64,
    /// Frames in more than one segment, dropped.
    pub rx_multi_segment: u64,
    /// `send` found the mbuf pool empty (reported as [`SendError::TxFull`]).
    pub tx_no_mbuf: u64,
    /// Ring frames queued for the one other member's MAC instead of the ring's multicast MAC
    /// ([`DpdkTransport::ring_destination`]).
    pub tx_ring_unicast: u64,
}

/// A member and its MAC once learned.
#[derive(Debug, Clone, Copy)]
struct Peer {
    id: NodeId,
    mac: Option<[u8; 6]>,
}

/// Unique mempool names within the process.
static POOL_SEQ: AtomicU32 = AtomicU32::new(0);

/// The DPDK backend. See the [module documentation](self).
pub struct DpdkTransport {
    config: DpdkConfig,
    port: u16,
    mac: [u8; 6],
    pool: NonNull<rte_mempool>,
    /// Members sorted by id.
    peers: Vec<Peer>,
    /// The member [`Dest::Ring`] frames go to, and its MAC, when there is exactly one other
    /// member and its MAC is learned ([`DpdkTransport::ring_destination`]); otherwise they go
    /// to [`RING_MAC`].
    ring_peer: Option<(NodeId, [u8; 6])>,
    /// Queued frames, `tx[..tx_len]` owned by us until `flush`.
    tx: [*mut rte_mbuf; MAX_BURST],
    /// Payload bytes of each queued frame, for [`Stats::bytes_out`].
    tx_bytes: [u64; MAX_BURST],
    tx_len: usize,
    stats: Stats,
    dpdk_stats: DpdkStats,
    /// The last `recv_burst` found nothing.
    idle: bool,
    backoff: Duration,
    /// The idle back-off sleeps on it; other threads wake it ([`Transport::waker`]).
    waker: crate::wake::Waker,
}

impl fmt::Debug for DpdkTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkTransport")
            .field("port", &self.port)
            .field("node", &self.config.node)
            .field("mac", &self.mac)
            .field("mtu", &self.config.mtu)
            .field("members", &self.peers.len())
            .field("queued", &self.tx_len)
            .finish_non_exhaustive()
    }
}

// SAFETY: the transport exclusively owns its queued mbufs and its port's queues; the raw
// pointers are not shared with other threads, and DPDK's ethdev and mempool calls may be made
// from any thread as long as one thread at a time uses a queue, which `&mut self` ensures.
unsafe impl Send for DpdkTransport {}

impl DpdkTransport {
    /// Initialises EAL (first call in the process), sets up the port with one RX and one TX
    /// queue and a private mbuf pool, and starts it. The member list starts empty.
    ///
    /// # Errors
    /// A bad configuration, EAL init failure, a missing port, pool creation or an ethdev call
    /// failing; the error carries DPDK's reason.
    pub fn new(config: DpdkConfig) -> Result<Self, DpdkError> {
        if config.mtu == 0 || config.mtu > MAX_MTU {
            return Err(DpdkError::Config(format!(
                "mtu {} is not in 1..={MAX_MTU}",
                config.mtu
            )));
        }
        if config.burst == 0 || config.burst > MAX_BURST {
            return Err(DpdkError::Config(format!(
                "burst {} is not in 1..={MAX_BURST}",
                config.burst
            )));
        }
        let data_room = u16::try_from(config.data_room()).map_err(|_| {
            DpdkError::Config(format!(
                "mbuf data room {} exceeds 65535",
                config.data_room()
            ))
        })?;
        eal::init(&config.eal_args)?;
        let port = config.port;
        // SAFETY: EAL is initialised; these calls only read the device table.
        let (valid, available) = unsafe {
            (
                dpdk_sys::rte_eth_dev_is_valid_port(port),
                dpdk_sys::rte_eth_dev_count_avail(),
            )
        };
        if valid == 0 {
            let vdevs: Vec<&str> = config
                .eal_args
                .iter()
                .filter(|a| a.starts_with("--vdev"))
                .map(String::as_str)
                .collect();
            return Err(DpdkError::PortNotFound {
                port,
                available,
                vdevs: vdevs.join(" "),
            });
        }
        // SAFETY: the port is valid.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port) }.max(0);

        let name = format!("oais_p{port}_{}", POOL_SEQ.fetch_add(1, Ordering::Relaxed));
        let cname = CString::new(name).expect("no NUL in a formatted name");
        let cache = if config.mbufs >= 1024 { 128 } else { 0 };
        // SAFETY: EAL is initialised; the name is NUL-terminated and unique; sizes are in range
        // (data room checked to fit u16).
        let pool = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                config.mbufs,
                cache,
                0,
                data_room,
                socket,
            )
        };
        let pool = NonNull::new(pool).ok_or_else(|| DpdkError::Mempool {
            mbufs: config.mbufs,
            data_room: usize::from(data_room),
            reason: eal::errno_text(),
        })?;

        let waker = crate::wake::Waker::new().map_err(DpdkError::Waker)?;
        let mac = Self::setup_port(&config, pool, socket)?;
        tracing::debug!(port, node = %config.node, ?mac, mtu = config.mtu, data_room,
            "DPDK transport started");
        Ok(Self {
            port,
            mac,
            pool,
            peers: Vec::new(),
            ring_peer: None,
            tx: [ptr::null_mut(); MAX_BURST],
            tx_bytes: [0; MAX_BURST],
            tx_len: 0,
            stats: Stats::default(),
            dpdk_stats: DpdkStats::default(),
            idle: false,
            backoff: BACKOFF_MIN,
            waker,
            config,
        })
    }

    /// Configures and starts the port; returns its MAC.
    fn setup_port(
        config: &DpdkConfig,
        pool: NonNull<rte_mempool>,
        socket: c_int,
    ) -> Result<[u8; 6], DpdkError> {
        let port = config.port;
        let socket = u32::try_from(socket).unwrap_or(0);
        let mut info = rte_eth_dev_info::default();
        // SAFETY: the port is valid; `info` is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(port, &mut info) };
        if rc != 0 {
            return Err(port_err("rte_eth_dev_info_get", port, rc));
        }
        let conf = rte_eth_conf::default();
        let (mut nb_rx, mut nb_tx) = (config.rx_ring, config.tx_ring);
        // SAFETY: the port is valid and stopped (never started, or stopped by a dropped
        // transport); conf and pool are valid for the calls, and queue setup follows configure
        // and precedes start as ethdev requires.
        unsafe {
            let rc = dpdk_sys::rte_eth_dev_configure(port, 1, 1, &conf);
            if rc != 0 {
                return Err(port_err("rte_eth_dev_configure", port, rc));
            }
            let rc = dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut nb_rx, &mut nb_tx);
            if rc != 0 {
                return Err(port_err("rte_eth_dev_adjust_nb_rx_tx_desc", port, rc));
            }
            let rc = dpdk_sys::rte_eth_rx_queue_setup(
                port,
                0,
                nb_rx,
                socket,
                ptr::null(),
                pool.as_ptr(),
            );
            if rc != 0 {
                return Err(port_err("rte_eth_rx_queue_setup", port, rc));
            }
            let rc = dpdk_sys::rte_eth_tx_queue_setup(port, 0, nb_tx, socket, ptr::null());
            if rc != 0 {
                return Err(port_err("rte_eth_tx_queue_setup", port, rc));
            }
        }
        // The L2 MTU: our shim header plus the payload. Some vdevs do not support setting it
        // (net_ring: ENOTSUP) or refuse more than 1500 (net_af_packet: set the kernel
        // interface's MTU instead); frames still pass, so only log.
        let l2_mtu = u16::try_from(frame::SHIM_LEN + config.mtu).unwrap_or(u16::MAX);
        // SAFETY: the port is valid and configured.
        let rc = unsafe { dpdk_sys::rte_eth_dev_set_mtu(port, l2_mtu) };
        if rc == -libc::ENOTSUP {
            tracing::debug!(port, l2_mtu, "port does not support setting the MTU");
        } else if rc != 0 {
            tracing::warn!(port, l2_mtu, rc, reason = %eal::strerror(-rc),
                "cannot set the port MTU; make sure the link carries frames of this size");
        }
        // SAFETY: the port is valid, configured and its queues are set up.
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(port) };
        if rc != 0 {
            return Err(port_err("rte_eth_dev_start", port, rc));
        }
        // SAFETY: the port is valid and started.
        let (promisc, allmulti) = unsafe {
            (
                dpdk_sys::rte_eth_promiscuous_enable(port),
                dpdk_sys::rte_eth_allmulticast_enable(port),
            )
        };
        if promisc != 0 || allmulti != 0 {
            tracing::debug!(
                port,
                promisc,
                allmulti,
                "promiscuous/all-multicast not enabled"
            );
        }
        let mut mac = rte_ether_addr::default();
        // SAFETY: the port is valid; `mac` is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_macaddr_get(port, &mut mac) };
        if rc != 0 {
            return Err(port_err("rte_eth_macaddr_get", port, rc));
        }
        Ok(mac.addr_bytes)
    }

    /// The port's MAC address (the source MAC of every frame sent).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The backend-specific counters.
    pub fn dpdk_stats(&self) -> DpdkStats {
        self.dpdk_stats
    }

    /// Free mbufs in this transport's pool (per-lcore caches included). Not for the hot
    /// path: it walks the caches. Useful to check for leaks.
    pub fn mbufs_available(&self) -> u32 {
        // SAFETY: the pool is live for the life of the transport (never freed).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.pool.as_ptr()) }
    }

    /// The learned MAC of a member, if any frame of it has arrived.
    pub fn member_mac(&self, node: NodeId) -> Option<[u8; 6]> {
        self.peer(node).and_then(|i| self.peers[i].mac)
    }

    fn peer(&self, node: NodeId) -> Option<usize> {
        self.peers.binary_search_by_key(&node, |p| p.id).ok()
    }

    /// The member whose MAC ring frames ([`Dest::Ring`]) are sent to: the one other member
    /// when there is exactly one and a frame of it has arrived (a two-node ring). `None`: they
    /// go to the ring's multicast MAC, which reaches every member, and a member whose MAC is
    /// not learned yet.
    pub fn ring_destination(&self) -> Option<NodeId> {
        self.ring_peer.map(|(node, _)| node)
    }

    fn choose_ring_peer(&mut self) {
        let me = self.config.node;
        let mut others = self.peers.iter().filter(|p| p.id != me);
        self.ring_peer = match (others.next(), others.next()) {
            (Some(&Peer { id, mac: Some(mac) }), None) => Some((id, mac)),
            _ => None,
        };
    }

    /// Handles one received mbuf.
    fn deliver(&mut self, m: &Mbuf, f: &mut impl FnMut(Source, &[u8])) -> bool {
        if m.segments() != 1 {
            self.dpdk_stats.rx_multi_segment += 1;
            return false;
        }
        let p = match frame::parse(m.data()) {
            Ok(p) => p,
            Err(Reject::Foreign) => {
                self.dpdk_stats.rx_foreign += 1;
                return false;
            }
            Err(Reject::Version) => {
                self.dpdk_stats.rx_bad_version += 1;
                return false;
            }
            Err(Reject::Short) => {
                self.stats.rx_truncated += 1;
                return false;
            }
        };
        let me = self.config.node.0;
        if p.sender == me && !self.config.accept_own {
            self.dpdk_stats.rx_own += 1;
            return false;
        }
        if p.dest.is_some_and(|d| d != me) {
            self.dpdk_stats.rx_not_for_us += 1;
            return false;
        }
        if p.payload.len() > self.config.mtu {
            self.stats.rx_truncated += 1;
            return false;
        }
        let sender = NodeId(p.sender);
        let node = match self.peer(sender) {
            Some(i) => {
                if !frame::is_group(p.src_mac) && self.peers[i].mac != Some(p.src_mac) {
                    self.peers[i].mac = Some(p.src_mac);
                    self.choose_ring_peer();
                }
                Some(sender)
            }
            None => {
                self.stats.unknown_sources += 1;
                None
            }
        };
        self.stats.frames_in += 1;
        self.stats.bytes_in += p.payload.len() as u64;
        f(
            Source {
                node,
                addr: mac_addr(p.src_mac),
            },
            p.payload,
        );
        true
    }
}

/// A MAC as the IPv6 link-local EUI-64 address of that interface, port 0 (diagnostics only).
fn mac_addr(mac: [u8; 6]) -> SocketAddr {
    let [a, b, c, d, e, g] = mac;
    let ip = Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([a ^ 2, b]),
        u16::from_be_bytes([c, 0xff]),
        u16::from_be_bytes([0xfe, d]),
        u16::from_be_bytes([e, g]),
    );
    SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0))
}

impl Transport for DpdkTransport {
    fn caps(&self) -> Caps {
        Caps {
            mtu: self.config.mtu,
            max_burst: self.config.burst,
        }
    }

    fn recv_burst(&mut self, mut f: impl FnMut(Source, &[u8])) -> io::Result<usize> {
        let mut raw = [ptr::null_mut::<rte_mbuf>(); MAX_BURST];
        // burst <= MAX_BURST = 32 (checked in new), so it fits u16.
        let want = self.config.burst as u16;
        // SAFETY: the port is started with RX queue 0; `raw` has room for `want` pointers.
        let n = unsafe { dpdk_sys::shim_rte_eth_rx_burst(self.port, 0, raw.as_mut_ptr(), want) };
        let n = usize::from(n);
        if n == 0 {
            // The common case of a busy poller: nothing to own or free.
            self.idle = true;
            return Ok(0);
        }
        // Own every received mbuf at once, so a panicking callback frees the rest on unwind.
        let mut bufs: [Option<Mbuf>; MAX_BURST] = [const { None }; MAX_BURST];
        for (slot, &r) in bufs.iter_mut().zip(&raw[..n]) {
            // SAFETY: rx_burst handed us `n` valid mbufs, now owned by us alone.
            *slot = unsafe { Mbuf::from_raw(r) };
        }
        let mut delivered = 0;
        for m in bufs.iter_mut().take(n) {
            if let Some(m) = m.take() {
                delivered += usize::from(self.deliver(&m, &mut f));
                // `m` drops here: the mbuf goes back to the pool after the callback.
            }
        }
        self.idle = false;
        self.backoff = BACKOFF_MIN;
        Ok(delivered)
    }

    fn send(
        &mut self,
        dest: Dest,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        let mtu = self.config.mtu;
        if len > mtu {
            return Err(SendError::TooLarge { len, mtu });
        }
        if self.tx_len >= self.config.burst {
            return Err(SendError::TxFull);
        }
        let (dst_mac, dest_id) = match dest {
            Dest::Ring => (self.ring_peer.map_or(RING_MAC, |(_, mac)| mac), None),
            Dest::Node(n) => {
                let i = self.peer(n).ok_or(SendError::Unknown(n))?;
                (self.peers[i].mac.unwrap_or(RING_MAC), Some(n.0))
            }
        };
        // SAFETY: the pool is live for the life of the transport.
        let Some(mut m) = (unsafe { Mbuf::alloc(self.pool) }) else {
            self.dpdk_stats.tx_no_mbuf += 1;
            return Err(SendError::TxFull);
        };
        // len <= mtu <= 9000, so both fit u16; the data room holds HEADER_LEN + mtu.
        let len16 = len as u16;
        let Some(buf) = m.append((HEADER_LEN + len) as u16) else {
            return Err(SendError::TooLarge { len, mtu });
        };
        Header {
            dst_mac,
            src_mac: self.mac,
            sender: self.config.node.0,
            dest: dest_id,
            len: len16,
        }
        .emit(buf);
        fill(&mut buf[HEADER_LEN..]);
        self.tx[self.tx_len] = m.into_raw();
        self.tx_bytes[self.tx_len] = len as u64;
        self.tx_len += 1;
        if dest == Dest::Ring && self.ring_peer.is_some() {
            self.dpdk_stats.tx_ring_unicast += 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut dropped = 0;
        for attempt in 0..2 {
            if self.tx_len == 0 {
                break;
            }
            // tx_len <= MAX_BURST = 32.
            // SAFETY: the port is started with TX queue 0; tx[..tx_len] are mbufs we own;
            // tx_burst takes ownership of the first `sent` of them.
            let sent = usize::from(unsafe {
                dpdk_sys::shim_rte_eth_tx_burst(
                    self.port,
                    0,
                    self.tx.as_mut_ptr(),
                    self.tx_len as u16,
                )
            });
            self.stats.frames_out += sent as u64;
            self.stats.bytes_out += self.tx_bytes[..sent].iter().sum::<u64>();
            self.tx.copy_within(sent..self.tx_len, 0);
            self.tx_bytes.copy_within(sent..self.tx_len, 0);
            self.tx_len -= sent;
            if attempt == 1 {
                for &m in &self.tx[..self.tx_len] {
                    // SAFETY: the PMD refused these twice; we still own them and free each once.
                    drop(unsafe { Mbuf::from_raw(m) });
                }
                dropped = self.tx_len;
                self.tx_len = 0;
            }
        }
        if dropped > 0 {
            self.stats.tx_errors += dropped as u64;
            return Err(io::Error::other(
                "the DPDK TX queue refused frames twice; they were dropped",
            ));
        }
        Ok(())
    }

    fn set_members(&mut self, members: &[Member]) -> Result<(), MembersError> {
        let mut next: Vec<Peer> = members
            .iter()
            .map(|m| Peer {
                id: m.id,
                mac: None,
            })
            .collect();
        next.sort_unstable_by_key(|p| p.id);
        if let Some(w) = next.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(MembersError::DuplicateNode(w[0].id));
        }
        for p in &mut next {
            p.mac = self.member_mac(p.id);
        }
        self.peers = next;
        self.choose_ring_peer();
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.config.busy_poll || !self.idle {
            return Ok(());
        }
        let nap = timeout.map_or(self.backoff, |t| t.min(self.backoff));
        self.backoff = (self.backoff * 2).min(self.config.max_backoff.max(BACKOFF_MIN));
        if !nap.is_zero() && self.waker.sleep(nap)? {
            // Woken for work: poll eagerly again.
            self.backoff = BACKOFF_MIN;
        }
        Ok(())
    }

    fn waker(&self) -> Option<crate::wake::Waker> {
        Some(self.waker.clone())
    }

    fn stats(&self) -> Stats {
        self.stats
    }

    fn visit_backend(&self, v: &mut dyn crate::stats::Visitor) {
        crate::stats::Visit::visit(&self.dpdk_stats, v);
    }
}

impl crate::stats::Visit for DpdkStats {
    fn visit(&self, v: &mut dyn crate::stats::Visitor) {
        v.counter("dpdk_rx_foreign", self.rx_foreign);
        v.counter("dpdk_rx_bad_version", self.rx_bad_version);
        v.counter("dpdk_rx_own", self.rx_own);
        v.counter("dpdk_rx_not_for_us", self.rx_not_for_us);
        v.counter("dpdk_rx_multi_segment", self.rx_multi_segment);
        v.counter("dpdk_tx_no_mbuf", self.tx_no_mbuf);
        v.counter("dpdk_tx_ring_unicast", self.tx_ring_unicast);
    }
}

impl Drop for DpdkTransport {
    /// Frees the queued frames, drains the RX queue and stops the port. The port is not
    /// closed (a later transport may configure it again) and the mbuf pool is not freed: a
    /// stopped port's queues still point at it, and EAL itself lives until the process exits.
    fn drop(&mut self) {
        for &m in &self.tx[..self.tx_len] {
            // SAFETY: queued mbufs are ours until flush; each is freed once.
            drop(unsafe { Mbuf::from_raw(m) });
        }
        self.tx_len = 0;
        let mut raw = [ptr::null_mut::<rte_mbuf>(); MAX_BURST];
        for _ in 0..1024 {
            // SAFETY: the port is started with RX queue 0; `raw` holds MAX_BURST pointers.
            let n = unsafe {
                dpdk_sys::shim_rte_eth_rx_burst(self.port, 0, raw.as_mut_ptr(), MAX_BURST as u16)
            };
            if n == 0 {
                break;
            }
            for &m in &raw[..usize::from(n)] {
                // SAFETY: rx_burst handed these to us; each is freed once.
                drop(unsafe { Mbuf::from_raw(m) });
            }
        }
        // SAFETY: the port was started by this transport; no queued mbuf remains.
        let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.port) };
        if rc != 0 {
            tracing::warn!(port = self.port, rc, "rte_eth_dev_stop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_library_matches_the_headers_we_built_against() {
        let runtime = runtime_version();
        assert!(
            runtime.starts_with("DPDK "),
            "unexpected version string {runtime:?}"
        );
        // Same major.minor: an ABI break between headers and library would show here.
        let major_minor: Vec<&str> = BUILT_AGAINST.split('.').take(2).collect();
        let want = format!("DPDK {}", major_minor.join("."));
        assert!(
            runtime.starts_with(&want),
            "built against {BUILT_AGAINST}, running {runtime}"
        );
    }

    #[test]
    fn a_mac_becomes_an_eui64_link_local_address() {
        let a = mac_addr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(a.to_string(), "[fe80::11:22ff:fe33:4455]:0");
    }

    #[test]
    fn the_data_room_holds_a_jumbo_frame_in_one_segment() {
        let mut c = DpdkConfig::new(Vec::new(), 0, NodeId(1));
        c.mtu = MAX_MTU;
        assert!(c.data_room() >= dpdk_sys::RTE_PKTMBUF_HEADROOM as usize + 14 + 12 + 9000);
        c.min_data_room = 20_000;
        assert_eq!(c.data_room(), 20_000);
    }
}
