//! Polling packet I/O: the bottom layer of the openais-rs runtime.
//!
//! **Layer:** `dataplane` sits under Totem (`totem-dpdk`) and above the operating system. It
//! may depend on `dpdk-sys` (behind the `dpdk` feature) and on nothing else in the workspace;
//! nothing in it knows about Totem, AIS services or configuration files.
//!
//! **What it holds:**
//! - [`Transport`], the one trait the Totem driver runs on, used with static dispatch
//!   (`Driver<T: Transport>`), with its vocabulary: [`NodeId`], [`Dest`], [`Member`],
//!   [`Source`], [`Caps`], [`Stats`], [`SendError`], [`MembersError`].
//! - [`udp::UdpTransport`], the kernel UDP backend (Linux): multicast or unicast (corosync's
//!   `udpu`), IPv4 and IPv6, batched with `recvmmsg`/`sendmmsg` into buffers allocated once,
//!   each destination's frames sent as UDP GSO runs where the kernel has it, non-blocking
//!   sockets and `wait` on `ppoll(2)`.
//! - [`mem::MemNetwork`] and [`mem::MemTransport`], an in-process network with bounded
//!   per-endpoint queues, for tests of the layers above.
//! - [`fault::FaultInjector`], a wrapper around any transport that injects a network's faults
//!   (down, lossy, one-way, an interface down, a delay towards one node), in the simulator's
//!   vocabulary, for tests of redundant rings on real sockets.
//! - [`any::AnyTransport`]: one type over the backends, for a node whose networks mix them
//!   (the driver is generic over one transport type).
//! - [`affinity`]: pinning the calling thread to one CPU (Linux `sched_setaffinity`).
//! - [`wake::Waker`]: wakes a thread blocked in [`Transport::wait`] (an eventfd polled next to
//!   the sockets).
//! - [`unix`]: Unix-domain `SOCK_SEQPACKET` sockets for the AIS executive's client IPC (Linux),
//!   and [`epoll::Epoll`], with which one thread serves all of them; [`shm`]: the
//!   shared-memory rings a client and the executive may exchange their packets through
//!   instead (a sealed `memfd` passed over the socket, which stays for wake-ups).
//! - `dpdk` (feature `dpdk`): `dpdk::DpdkTransport`, the poll-mode backend (EAL once per
//!   process, one port, owned mbufs, raw Ethernet with ethertype 0x88B5, adaptive back-off or
//!   busy polling), tested on `net_ring` and on `net_af_packet` over a veth pair; and the check
//!   that the DPDK library found at run time matches the headers the bindings were built from.
//!
//! `dataplane/tests/conformance.rs` runs one suite of properties against every backend.
//!
//! # The transport contract
//!
//! A transport owns its receive and transmit buffers. [`Transport::recv_burst`] never blocks:
//! it lends each received frame to a callback, in place, and returns how many it lent.
//! [`Transport::send`] reserves one TX slot, lets the caller write the frame straight into it
//! and queues it; nothing leaves until [`Transport::flush`], which pushes the whole queue out
//! in as few system calls as the backend allows (one `sendmmsg` for UDP). There is no
//! auto-flush: once `Caps::max_burst` frames are queued, `send` returns
//! [`SendError::TxFull`] until the next `flush`. [`Transport::wait`] blocks until a frame may
//! be readable or a timeout passes. Nothing on this path allocates.
//!
//! [`Dest::Ring`] reaches every other member and never the sender itself: the layer above
//! handles its own frames locally. Frames from addresses outside the member list are still
//! delivered, with [`Source::node`] set to `None`, and counted in [`Stats::unknown_sources`].
//!
//! **Unsafe code** is denied crate-wide and allowed only in the modules that talk to the
//! operating system or to DPDK (`dpdk`, `udp::sys`, `affinity`, `epoll`, `unix`, `shm`, `wake`, `garp`); every `unsafe` block
//! carries a `// SAFETY:` comment (enforced by `clippy::undocumented_unsafe_blocks`).
//!
//! # Features
//! - `dpdk`: the DPDK backend, built against the system DPDK through `dpdk-sys`. Without DPDK
//!   installed the build stops with a message naming the packages to install.

#![deny(unsafe_code)]

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(target_os = "linux")]
pub mod affinity;
pub mod any;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod epoll;
pub mod fault;
#[cfg(target_os = "linux")]
pub mod garp;
pub mod heap;
pub mod mem;
mod members;
#[cfg(target_os = "linux")]
pub mod shm;
pub mod stats;
pub mod udp;
#[cfg(target_os = "linux")]
pub mod unix;
#[cfg(target_os = "linux")]
pub mod wake;

/// A node's identity at the dataplane: a plain number. The Totem layer maps its own node id
/// to this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// Every member except the sender (corosync `mcast_*_send`): one multicast datagram, or
    /// one unicast datagram per other member.
    Ring,
    /// One member (corosync `token_send`).
    Node(NodeId),
}

/// One entry of the member list: a node and the address it receives unicast frames on (for
/// UDP, the `bind` address of that node's transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    /// The node.
    pub id: NodeId,
    /// Its unicast address.
    pub addr: SocketAddr,
}

/// Who sent a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    /// The member whose address matches the sender's, or `None` for a stranger.
    pub node: Option<NodeId>,
    /// The sender's address as the backend saw it.
    pub addr: SocketAddr,
}

/// What a transport can do. Fields are added over time (offloads, for example), so it can be
/// read but not built outside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Caps {
    /// The largest frame payload [`Transport::send`] accepts and [`Transport::recv_burst`]
    /// delivers, in bytes. Larger incoming frames are dropped and counted.
    pub mtu: usize,
    /// How many frames can be queued between two flushes, and the most one
    /// [`Transport::recv_burst`] call delivers.
    pub max_burst: usize,
}

/// Counters kept by a transport since it was created. Frames that are dropped are counted
/// here, never reported as errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Frames delivered to [`Transport::recv_burst`]'s callback.
    pub frames_in: u64,
    /// Payload bytes of those frames.
    pub bytes_in: u64,
    /// Frames handed to the network, one per destination (a unicast ring send to three peers
    /// counts three).
    pub frames_out: u64,
    /// Payload bytes of those frames.
    pub bytes_out: u64,
    /// Incoming frames larger than the MTU, dropped whole (never delivered cut short).
    pub rx_truncated: u64,
    /// Incoming frames dropped because a receive queue was full (memory backend; the UDP
    /// backend cannot see the kernel's socket-buffer drops and leaves this at 0).
    pub rx_dropped: u64,
    /// Outgoing frames the network refused (a failed `sendmmsg` entry), dropped.
    pub tx_errors: u64,
    /// Frames delivered with [`Source::node`] `None`: the sender is not in the member list.
    pub unknown_sources: u64,
}

/// Why [`Transport::send`] refused a frame. Nothing was queued and `fill` was not called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Every TX slot holds a queued frame: call [`Transport::flush`] and try again.
    #[error("all TX slots are queued; flush before sending more")]
    TxFull,
    /// The frame is larger than [`Caps::mtu`].
    #[error("frame of {len} bytes exceeds the MTU of {mtu} bytes")]
    TooLarge {
        /// The requested length.
        len: usize,
        /// The transport's MTU.
        mtu: usize,
    },
    /// [`Dest::Node`] names a node that is not in the member list.
    #[error("node {0} is not in the member list")]
    Unknown(NodeId),
    /// A backend that writes on `send` failed to. The UDP and memory backends only queue on
    /// `send` and report I/O errors from [`Transport::flush`].
    #[error("send failed")]
    Io(#[source] io::Error),
}

/// Why [`Transport::set_members`] refused a member list. The previous list stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembersError {
    /// Two entries have the same node id.
    #[error("node {0} appears twice in the member list")]
    DuplicateNode(NodeId),
    /// Two entries have the same address.
    #[error("address {0} appears twice in the member list")]
    DuplicateAddr(SocketAddr),
    /// A member's address is not of the transport's address family (IPv4 or IPv6).
    #[error("member {id} has address {addr}, not of this transport's address family")]
    AddressFamily {
        /// The member.
        id: NodeId,
        /// Its address.
        addr: SocketAddr,
    },
}

/// Packet I/O for one node, polled from one thread.
///
/// Call order in a driver loop: [`recv_burst`](Self::recv_burst) until it returns 0, any
/// number of [`send`](Self::send)s, [`flush`](Self::flush), then [`wait`](Self::wait) until
/// the next timer deadline. See the crate documentation for the contract.
pub trait Transport {
    /// What this transport can do.
    fn caps(&self) -> Caps;

    /// Delivers the frames waiting now, up to [`Caps::max_burst`], without blocking: calls `f`
    /// once per frame with its source and the payload borrowed in place from the receive
    /// buffers, and returns how many frames it delivered (0 when none were waiting).
    ///
    /// # Errors
    /// An unexpected error from the operating system. Frames already passed to `f` in this
    /// call stay delivered.
    fn recv_burst(&mut self, f: impl FnMut(Source, &[u8])) -> io::Result<usize>;

    /// Queues one frame of `len` bytes for `dest`: reserves a TX slot and calls `fill` once
    /// with exactly `len` bytes of it to write the frame into. The slot holds stale bytes, so
    /// `fill` must write all of them. The frame leaves on the next [`flush`](Self::flush).
    ///
    /// # Errors
    /// [`SendError::TooLarge`] when `len` exceeds [`Caps::mtu`], [`SendError::TxFull`] when
    /// [`Caps::max_burst`] frames are already queued, [`SendError::Unknown`] when
    /// [`Dest::Node`] is not a member. On any error `fill` is not called.
    fn send(
        &mut self,
        dest: Dest,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError>;

    /// Pushes every queued frame out (one `sendmmsg` for the UDP backend) and frees the TX
    /// slots.
    ///
    /// # Errors
    /// An error kind of [`io::ErrorKind::WouldBlock`] means the kernel's send buffer is full:
    /// the frames not yet sent stay queued (and their slots taken) for the next `flush`. Any
    /// other error is the first of the datagrams the network refused; those are dropped and
    /// counted in [`Stats::tx_errors`], the rest are sent, and the queue is empty afterwards.
    fn flush(&mut self) -> io::Result<()>;

    /// Replaces the member list: the addresses [`Dest::Node`] and (for unicast backends)
    /// [`Dest::Ring`] send to, and the table that resolves [`Source::node`]. Frames already
    /// queued keep the destinations they were queued with. Allocates; call it on membership
    /// changes, not per packet.
    ///
    /// # Errors
    /// A duplicate node id or address, or an address of the wrong family; the previous list
    /// stays in force.
    fn set_members(&mut self, members: &[Member]) -> Result<(), MembersError>;

    /// Learns the address of `node` from a frame it sent (`addr` as [`Source::addr`] gave
    /// it), for backends whose members are discovered rather than configured (UDP multicast
    /// without a member list: the token is unicast, so its next holder's address must be
    /// known). Replaces an older address of `node`, and drops another node's entry for the same
    /// address (a restarted host under a new id). Returns whether the table changed. The
    /// default learns nothing. Called rarely (a new or moved node), so it may allocate.
    fn learn_member(&mut self, node: NodeId, addr: SocketAddr) -> bool {
        let _ = (node, addr);
        false
    }

    /// Blocks until a frame may be readable or `timeout` has passed (`None`: no timeout).
    /// Busy-polling backends return at once. It may return early (a signal, a frame that
    /// turns out to be dropped); callers loop on their own deadline.
    ///
    /// # Errors
    /// An unexpected error from the operating system.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle other threads use to make [`Transport::wait`] return early (the driver wakes
    /// itself when a message is submitted). `None` (the default): `wait` only returns on a
    /// frame or its timeout, so the caller must keep timeouts short.
    #[cfg(target_os = "linux")]
    fn waker(&self) -> Option<wake::Waker> {
        None
    }

    /// For a caller that waits on several transports at once (the Totem driver over
    /// redundant networks): appends the descriptors whose readability is everything
    /// [`Transport::wait`] waits for (besides its waker) and returns `true`; returns `false`
    /// (the default) when `wait` waits for something else too (a condition variable, a poll
    /// loop, a frame held back until a deadline), and the caller must fall back to short
    /// waits. The descriptors stay valid while the transport lives. Called once per idle
    /// wait: it must not allocate beyond `out`'s capacity.
    #[cfg(target_os = "linux")]
    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        let _ = out;
        false
    }

    /// The counters since the transport was created.
    fn stats(&self) -> Stats;

    /// This backend's own counters beyond [`Stats`] (DPDK's frames dropped by reason, a
    /// fault injector's drops), each under a name of its own (see [`stats`]). The default
    /// has none.
    fn visit_backend(&self, v: &mut dyn stats::Visitor) {
        let _ = v;
    }
}
