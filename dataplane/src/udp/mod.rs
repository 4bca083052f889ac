//! The kernel UDP backend (Linux): [`UdpTransport`].
//!
//! Two ways to reach the ring, as in corosync's `totemudp` and `totemudpu`:
//!
//! - [`Mode::Multicast`]: two sockets. The *unicast socket* is bound to [`UdpConfig::bind`];
//!   it sends every frame (ring frames to the group, node frames to the member) and receives
//!   node frames. The *group socket* is bound to the group address and port (with
//!   `SO_REUSEADDR`, so several nodes can share a host) and receives ring frames. Ring frames
//!   therefore arrive from the sender's unicast address, which is how [`Source::node`] is
//!   resolved; a node's own ring frames, looped back when `loopback` is on,
//!   are recognised by that address and skipped.
//! - [`Mode::Unicast`] (`udpu`): one socket bound to `bind`; [`Dest::Ring`] queues one
//!   datagram per member except this node (the member whose address equals the bound address),
//!   all pointing at the same TX slot.
//!
//! Frames move in batches: one `recvmmsg` fills up to `burst` slots of an RX arena of
//! `burst × mtu` bytes, one `sendmmsg` sends everything queued in a TX arena of the same size.
//! The arenas, `mmsghdr` and `iovec` arrays are allocated when the transport is created (the
//! TX queue grows on [`Transport::set_members`] when the ring grows), never per frame or burst.
//! A datagram larger than `mtu` is detected with `MSG_TRUNC`, dropped and counted in
//! [`Stats::rx_truncated`]. Sockets are non-blocking; [`Transport::wait`] is `poll(2)`.
//!
//! **UDP GSO** ([`UdpConfig::gso`], on by default where the kernel has `UDP_SEGMENT`): a flush
//! groups the queued datagrams by destination, each destination's in their order, and hands a
//! run of equal-sized frames (the last may be shorter; at most 64 frames and 60 000 bytes) to
//! the kernel as one message of the `sendmmsg`, which the kernel cuts into the same datagrams
//! after one walk through its stack instead of one per frame. What goes on the wire, and what
//! a receiver sees, are the same datagrams (receivers need nothing). Destinations are sent in
//! the order of their last frame, so the frame queued last (the token, which follows the
//! frames of its visit) still leaves after every frame of the flush. A GSO send the kernel or
//! the route refuses turns GSO off for the transport (logged once) and the flush goes on frame
//! by frame.
//!
//! **UDP GRO** ([`UdpConfig::gro`], on by default where the kernel has `UDP_GRO`): the
//! receiving sockets take a sender's run of equal-sized datagrams (a GSO send that crossed a
//! veth or loopback whole, or datagrams the NIC's GRO merged) as one buffer with its segment
//! size, instead of the kernel cutting it back into datagrams first; the RX slots are then
//! 64 KiB each (at most 64 of them), and each datagram of a run is checked against `mtu`
//! and delivered on its own, exactly as without GRO.
//!
//! All `unsafe` code of this backend is in the private `sys` module.

mod sys;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use crate::members::{MemberTable, addr_key};
use crate::{Caps, Dest, Member, MembersError, NodeId, SendError, Source, Stats, Transport};
use sys::{GsoBatch, GsoRun, RawAddr, RxBatch, TxBatch, TxEntry};

/// How ring frames ([`Dest::Ring`]) travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One datagram to a multicast group (corosync `totemudp`).
    Multicast {
        /// The group address (IPv4 `224.0.0.0/4` or IPv6 `ff00::/8`), of the same family as
        /// [`UdpConfig::bind`].
        group: IpAddr,
        /// The group port. 0 lets the kernel pick a free one; read it back with
        /// [`UdpTransport::group_addr`] and give it to the other nodes.
        port: u16,
        /// Multicast TTL (IPv6 hop limit); 1 keeps frames on the local link.
        ttl: u32,
        /// Deliver multicast to sockets on this host too (`IP_MULTICAST_LOOP`). Needed when
        /// several nodes share a host (tests, the loopback demo); this node's own ring frames
        /// are skipped either way.
        loopback: bool,
        /// A local address of the interface that joins the group and sends to it; `None`
        /// means the interface of [`UdpConfig::bind`] (for IPv6 with a scope id, that scope).
        interface: Option<IpAddr>,
    },
    /// One unicast datagram per other member (corosync `totemudpu`).
    Unicast,
}

/// Configuration of a [`UdpTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// The address and port this node receives unicast frames on and sends from. Must be a
    /// specific local address, not `0.0.0.0` or `::` (peers and the ring's self-filter know a
    /// node by it). Port 0 picks a free port; read it back with [`UdpTransport::local_addr`].
    pub bind: SocketAddr,
    /// Multicast or unicast ring.
    pub mode: Mode,
    /// The datagram payload budget, in bytes: 1472 for IPv4 on a 1500-byte link, 1452 for
    /// IPv6, 8972 for IPv4 on a 9000-byte jumbo link. At most 65507 (IPv4) or 65527 (IPv6).
    pub mtu: usize,
    /// Frames per `recvmmsg`/`sendmmsg` batch and TX slots between flushes (1..=1024).
    pub burst: usize,
    /// Requested `SO_RCVBUF` of each socket (the kernel caps it at `net.core.rmem_max`).
    pub recv_buffer_bytes: usize,
    /// Requested `SO_SNDBUF` of the sending socket (capped at `net.core.wmem_max`).
    pub send_buffer_bytes: usize,
    /// Send a flush's frames to one destination as UDP GSO datagrams (`UDP_SEGMENT`, Linux
    /// 4.18): the kernel walks its stack once per run of frames instead of once per frame,
    /// and splits them into the same datagrams on the wire. Used only where the kernel takes
    /// it; a refused GSO send turns it off for the transport's life.
    pub gso: bool,
    /// Receive runs of same-sized datagrams as one buffer (`UDP_GRO`, Linux 5.0), split here
    /// into the same datagrams: one walk through the kernel per run. Used only where the
    /// kernel takes it.
    pub gro: bool,
}

impl UdpConfig {
    /// Default [`burst`](Self::burst).
    pub const DEFAULT_BURST: usize = 32;
    /// Default socket buffer request (the kernel doubles it for bookkeeping).
    pub const DEFAULT_BUFFER_BYTES: usize = 1 << 20;
    /// The largest UDP payload over IPv4.
    pub const MAX_MTU_V4: usize = 65_507;
    /// The largest UDP payload over IPv6 (without jumbograms).
    pub const MAX_MTU_V6: usize = 65_527;

    /// The payload budget of a UDP datagram on a 1500-byte link: 1472 over IPv4, 1452 over
    /// IPv6.
    pub const fn default_mtu(ipv6: bool) -> usize {
        if ipv6 { 1452 } else { 1472 }
    }

    /// Unicast ring (`udpu`) on `bind`, with default MTU, burst and buffers.
    pub fn unicast(bind: SocketAddr) -> Self {
        Self {
            bind,
            mode: Mode::Unicast,
            mtu: Self::default_mtu(bind.is_ipv6()),
            burst: Self::DEFAULT_BURST,
            recv_buffer_bytes: Self::DEFAULT_BUFFER_BYTES,
            send_buffer_bytes: Self::DEFAULT_BUFFER_BYTES,
            gso: true,
            gro: true,
        }
    }

    /// Multicast ring on `group:port`, TTL 1, loopback off, the interface of `bind`; default
    /// MTU, burst and buffers.
    pub fn multicast(bind: SocketAddr, group: IpAddr, port: u16) -> Self {
        Self {
            mode: Mode::Multicast {
                group,
                port,
                ttl: 1,
                loopback: false,
                interface: None,
            },
            ..Self::unicast(bind)
        }
    }

    fn validate(&self) -> Result<(), UdpError> {
        let bad = |reason: String| Err(UdpError::Config { reason });
        let v6 = self.bind.is_ipv6();
        if self.bind.ip().is_unspecified() {
            return bad(format!(
                "bind address {} is unspecified; give the address peers reach this node on",
                self.bind
            ));
        }
        let max_mtu = if v6 {
            Self::MAX_MTU_V6
        } else {
            Self::MAX_MTU_V4
        };
        if self.mtu == 0 || self.mtu > max_mtu {
            return bad(format!("mtu {} is not in 1..={max_mtu}", self.mtu));
        }
        if self.burst == 0 || self.burst > sys::MAX_BATCH {
            return bad(format!(
                "burst {} is not in 1..={}",
                self.burst,
                sys::MAX_BATCH
            ));
        }
        if let Mode::Multicast {
            group, interface, ..
        } = self.mode
        {
            if !group.is_multicast() {
                return bad(format!("group {group} is not a multicast address"));
            }
            if group.is_ipv6() != v6 {
                return bad(format!(
                    "group {group} and bind address {} are of different families",
                    self.bind
                ));
            }
            if let Some(i) = interface
                && i.is_ipv6() != v6
            {
                return bad(format!(
                    "interface {i} and bind address {} are of different families",
                    self.bind
                ));
            }
        }
        Ok(())
    }
}

/// Why a [`UdpTransport`] could not be created. Each variant names the address involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The configuration is inconsistent.
    #[error("invalid UDP transport configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// socket(2) failed.
    #[error("cannot create a UDP socket for {addr}")]
    Socket {
        /// The address the socket was for.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// bind(2) failed (address in use, not a local address, ...).
    #[error("cannot bind a UDP socket to {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// Joining the multicast group failed (or no interface has the given address).
    #[error("cannot join multicast group {group} on the interface of {interface}")]
    Join {
        /// The group.
        group: IpAddr,
        /// The local address naming the interface.
        interface: IpAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// Setting a socket option failed.
    #[error("cannot set {option} on the UDP socket for {addr}")]
    SocketOption {
        /// The option, e.g. `"SO_RCVBUF"`.
        option: &'static str,
        /// The address of the socket.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
}

fn opt_err(option: &'static str, addr: SocketAddr) -> impl FnOnce(io::Error) -> UdpError {
    move |source| UdpError::SocketOption {
        option,
        addr,
        source,
    }
}

/// Requests the buffer sizes and warns when the kernel granted less (it reports double the
/// usable size).
fn size_buffers(
    sock: &UdpSocket,
    addr: SocketAddr,
    recv: usize,
    send: Option<usize>,
) -> Result<(), UdpError> {
    let granted = sys::set_recv_buffer(sock, recv).map_err(opt_err("SO_RCVBUF", addr))?;
    if granted / 2 < recv {
        tracing::warn!(%addr, requested = recv, granted = granted / 2,
            "UDP receive buffer capped by net.core.rmem_max");
    }
    if let Some(send) = send {
        let granted = sys::set_send_buffer(sock, send).map_err(opt_err("SO_SNDBUF", addr))?;
        if granted / 2 < send {
            tracing::warn!(%addr, requested = send, granted = granted / 2,
                "UDP send buffer capped by net.core.wmem_max");
        }
    }
    Ok(())
}

/// The multicast part of a transport.
struct Group {
    sock: UdpSocket,
    /// Group address with the actual port.
    addr: SocketAddr,
    raw: RawAddr,
}

/// The kernel UDP backend. See the [module documentation](self).
pub struct UdpTransport {
    config: UdpConfig,
    /// The unicast socket: sends everything, receives [`Dest::Node`] frames (and ring frames in
    /// unicast mode).
    sock: UdpSocket,
    local: SocketAddr,
    group: Option<Group>,
    members: MemberTable,
    /// Kernel-layout addresses of `members.members()`, same order.
    member_raw: Vec<RawAddr>,
    /// Unicast mode: every member except this node, the targets of a ring send.
    peers: Vec<RawAddr>,
    local_node: Option<NodeId>,
    rx: RxBatch,
    /// Where delivery of the last batch stopped, frames left ([`RxCursor`]).
    rx_cursor: Option<RxCursor>,
    /// Deliver from the group socket first on the next `recv_burst` (alternates, so neither
    /// socket starves the other).
    group_first: bool,
    tx_arena: Box<[u8]>,
    /// TX slots taken since the last complete flush.
    tx_slots: usize,
    /// Queued datagrams; `tx_queue[tx_head..]` are not sent yet. Its capacity is kept at
    /// `burst × max(1, peers)` so `send` never reallocates.
    tx_queue: Vec<TxEntry>,
    tx_head: usize,
    tx: TxBatch,
    /// UDP GSO: each flush sends a destination's frames as few datagrams as the kernel
    /// segments (off when the kernel refused it).
    gso: Option<Gso>,
    stats: Stats,
    /// Polled by `wait` next to the sockets; other threads wake it (see [`Transport::waker`]).
    waker: crate::wake::Waker,
}

/// The GSO send side and its scratch space, allocated once (see [`plan_gso`]).
struct Gso {
    batch: GsoBatch,
    /// Distinct destinations of the pending frames: (first entry, last entry).
    dests: Vec<(usize, usize)>,
    /// Pending entries in sending order: grouped by destination.
    order: Vec<usize>,
    runs: Vec<GsoRun>,
    /// Which pending entries a partial send took.
    sent: Vec<bool>,
}

impl Gso {
    fn new(entries: usize) -> Gso {
        Gso {
            batch: GsoBatch::new(entries),
            dests: Vec::new(),
            order: Vec::with_capacity(entries),
            runs: Vec::with_capacity(entries),
            sent: Vec::with_capacity(entries),
        }
    }
}

/// Plans a GSO flush of `pending`: the frames to each destination in their order, cut into
/// runs of equal-sized frames (the last of a run may be shorter) of at most
/// [`sys::GSO_MAX_SEGMENTS`] frames and [`sys::GSO_MAX_BYTES`] bytes. Destinations go in the
/// order of their last frame, so the one the token goes to (queued last) is sent last and the
/// token stays behind every frame of this flush.
fn plan_gso(
    pending: &[TxEntry],
    dests: &mut Vec<(usize, usize)>,
    order: &mut Vec<usize>,
    runs: &mut Vec<GsoRun>,
) {
    dests.clear();
    order.clear();
    runs.clear();
    for (i, e) in pending.iter().enumerate() {
        match dests
            .iter_mut()
            .find(|(f, _)| pending[*f].dest.same(&e.dest))
        {
            Some(d) => d.1 = i,
            None => dests.push((i, i)),
        }
    }
    dests.sort_by_key(|&(_, last)| last);
    for &(first, _) in dests.iter() {
        let dest = pending[first].dest;
        // The open run, and whether it ended with a shorter frame (nothing may follow it).
        let mut open: Option<(GsoRun, bool)> = None;
        for (i, e) in pending.iter().enumerate().skip(first) {
            if !e.dest.same(&dest) {
                continue;
            }
            order.push(i);
            let pos = order.len() - 1;
            match &mut open {
                Some((r, false))
                    if r.count < sys::GSO_MAX_SEGMENTS
                        && e.len <= r.seg
                        && (r.count + 1) * r.seg <= sys::GSO_MAX_BYTES =>
                {
                    r.count += 1;
                    if e.len < r.seg {
                        open.as_mut().expect("open").1 = true;
                    }
                }
                _ => {
                    if let Some((r, _)) = open.take() {
                        runs.push(r);
                    }
                    open = Some((
                        GsoRun {
                            first: pos,
                            count: 1,
                            seg: e.len,
                        },
                        false,
                    ));
                }
            }
        }
        if let Some((r, _)) = open {
            runs.push(r);
        }
    }
}

impl fmt::Debug for UdpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpTransport")
            .field("local", &self.local)
            .field("group", &self.group.as_ref().map(|g| g.addr))
            .field("mtu", &self.config.mtu)
            .field("burst", &self.config.burst)
            .field("members", &self.members.members().len())
            .field("queued", &(self.tx_queue.len() - self.tx_head))
            .finish_non_exhaustive()
    }
}

impl UdpTransport {
    /// Opens and binds the sockets, joins the group in multicast mode, and allocates the RX
    /// and TX batches. The member list starts empty.
    ///
    /// # Errors
    /// An inconsistent configuration, or a socket that cannot be created, configured, bound
    /// or joined to the group; the error names the address.
    pub fn new(config: UdpConfig) -> Result<Self, UdpError> {
        config.validate()?;
        let bind = config.bind;
        let v6 = bind.is_ipv6();
        let sock = sys::udp_socket(v6).map_err(|source| UdpError::Socket { addr: bind, source })?;
        size_buffers(
            &sock,
            bind,
            config.recv_buffer_bytes,
            Some(config.send_buffer_bytes),
        )?;
        sys::bind(&sock, bind).map_err(|source| UdpError::Bind { addr: bind, source })?;
        let local = sock
            .local_addr()
            .map_err(|source| UdpError::Bind { addr: bind, source })?;

        let group = match config.mode {
            Mode::Unicast => None,
            Mode::Multicast {
                group,
                port,
                ttl,
                loopback,
                interface,
            } => Some(Self::open_group(
                &config, &sock, local, group, port, ttl, loopback, interface,
            )?),
        };
        let gso = (config.gso && sys::gso_supported(&sock)).then(|| Gso::new(config.burst));
        // GRO on every receiving socket, or on none: one kind of RX slot serves both.
        let gro = config.gro
            && sys::enable_gro(&sock)
            && group.as_ref().is_none_or(|g| sys::enable_gro(&g.sock));
        tracing::debug!(%local, group = ?group.as_ref().map(|g| g.addr), mtu = config.mtu,
            burst = config.burst, gso = gso.is_some(), gro, "UDP transport open");

        Ok(Self {
            config,
            sock,
            local,
            group,
            members: MemberTable::default(),
            member_raw: Vec::new(),
            peers: Vec::new(),
            local_node: None,
            rx_cursor: None,
            rx: if gro {
                RxBatch::with_gro(config.burst, config.mtu)
            } else {
                RxBatch::new(config.burst, config.mtu)
            },
            waker: crate::wake::Waker::new().map_err(|source| UdpError::Socket {
                addr: config.bind,
                source,
            })?,
            group_first: false,
            tx_arena: vec![0; config.burst * config.mtu].into_boxed_slice(),
            tx_slots: 0,
            tx_queue: Vec::with_capacity(config.burst),
            tx_head: 0,
            tx: TxBatch::new(config.burst),
            gso,
            stats: Stats::default(),
        })
    }

    /// [`Transport::flush`] with GSO: the pending frames grouped by destination
    /// ([`plan_gso`]), each run of frames one `sendmmsg` message.
    fn flush_gso(&mut self) -> io::Result<()> {
        let mut first_err = None;
        while self.tx_head < self.tx_queue.len() {
            let Some(g) = &mut self.gso else {
                return self.flush();
            };
            let pending = &self.tx_queue[self.tx_head..];
            plan_gso(pending, &mut g.dests, &mut g.order, &mut g.runs);
            let result = g
                .batch
                .send(&self.sock, &self.tx_arena, pending, &g.order, &g.runs);
            match result {
                Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
                Ok(k) => {
                    g.sent.clear();
                    g.sent.resize(pending.len(), false);
                    for r in &g.runs[..k] {
                        for &i in &g.order[r.first..r.first + r.count] {
                            g.sent[i] = true;
                            self.stats.frames_out += 1;
                            self.stats.bytes_out += pending[i].len as u64;
                        }
                    }
                    if k == g.runs.len() {
                        self.tx_head = self.tx_queue.len();
                    } else {
                        // Keep what is left in its order; the arena slots stay where they are.
                        let head = self.tx_head;
                        let sent = &g.sent;
                        let mut i = 0;
                        self.tx_queue.retain(|_| {
                            let keep = i < head || !sent[i - head];
                            i += 1;
                            keep
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) if g.runs.first().is_some_and(|r| r.count > 1) => {
                    // The kernel or the route refused a GSO send (no checksum offload on the
                    // way, say): frame by frame from now on.
                    tracing::warn!(error = %e, "UDP GSO send refused; sending frame by frame from now on");
                    self.gso = None;
                    return self.flush();
                }
                Err(e) => {
                    // One plain datagram refused: dropped, as without GSO.
                    let i = g.order[g.runs[0].first];
                    self.stats.tx_errors += 1;
                    let dest = pending[i].dest.to_std();
                    tracing::debug!(?dest, error = %e, "UDP datagram refused, dropped");
                    first_err.get_or_insert(e);
                    let at = self.tx_head + i;
                    self.tx_queue.remove(at);
                }
            }
        }
        self.tx_queue.clear();
        self.tx_head = 0;
        self.tx_slots = 0;
        first_err.map_or(Ok(()), Err)
    }

    #[allow(clippy::too_many_arguments)]
    fn open_group(
        config: &UdpConfig,
        sock: &UdpSocket,
        local: SocketAddr,
        group: IpAddr,
        port: u16,
        ttl: u32,
        loopback: bool,
        interface: Option<IpAddr>,
    ) -> Result<Group, UdpError> {
        let iface = interface.unwrap_or(local.ip());
        let join_err = |source| UdpError::Join {
            group,
            interface: iface,
            source,
        };
        let mut bind_addr = SocketAddr::new(group, port);
        let mcast = sys::udp_socket(group.is_ipv6()).map_err(|source| UdpError::Socket {
            addr: bind_addr,
            source,
        })?;
        match (group, iface) {
            (IpAddr::V4(g), IpAddr::V4(i)) => {
                sys::set_multicast_if_v4(sock, i).map_err(opt_err("IP_MULTICAST_IF", local))?;
                sock.set_multicast_ttl_v4(ttl)
                    .map_err(opt_err("IP_MULTICAST_TTL", local))?;
                sock.set_multicast_loop_v4(loopback)
                    .map_err(opt_err("IP_MULTICAST_LOOP", local))?;
                Self::bind_group(config, &mcast, bind_addr)?;
                mcast.join_multicast_v4(&g, &i).map_err(join_err)?;
            }
            (IpAddr::V6(g), _) => {
                let scope = match local {
                    SocketAddr::V6(a) if interface.is_none() && a.scope_id() != 0 => {
                        Some(a.scope_id())
                    }
                    _ => sys::interface_index(iface).map_err(join_err)?,
                };
                let ifindex = scope.ok_or_else(|| {
                    join_err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no network interface has address {iface}"),
                    ))
                })?;
                sys::set_multicast_if_v6(sock, ifindex)
                    .map_err(opt_err("IPV6_MULTICAST_IF", local))?;
                sys::set_multicast_hops_v6(sock, ttl)
                    .map_err(opt_err("IPV6_MULTICAST_HOPS", local))?;
                sock.set_multicast_loop_v6(loopback)
                    .map_err(opt_err("IPV6_MULTICAST_LOOP", local))?;
                bind_addr = SocketAddrV6::new(g, port, 0, ifindex).into();
                Self::bind_group(config, &mcast, bind_addr)?;
                mcast.join_multicast_v6(&g, ifindex).map_err(join_err)?;
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => unreachable!("families checked by validate"),
        }
        let port = mcast
            .local_addr()
            .map_err(|source| UdpError::Bind {
                addr: bind_addr,
                source,
            })?
            .port();
        let addr = SocketAddr::new(group, port);
        Ok(Group {
            sock: mcast,
            addr,
            raw: RawAddr::new(addr),
        })
    }

    fn bind_group(config: &UdpConfig, mcast: &UdpSocket, addr: SocketAddr) -> Result<(), UdpError> {
        sys::set_reuse_addr(mcast).map_err(opt_err("SO_REUSEADDR", addr))?;
        size_buffers(mcast, addr, config.recv_buffer_bytes, None)?;
        sys::bind(mcast, addr).map_err(|source| UdpError::Bind { addr, source })
    }

    /// The address this node receives unicast frames on and sends from (with the actual port
    /// when [`UdpConfig::bind`] had port 0). Use it as this node's [`Member::addr`].
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Multicast mode: the group address and the actual group port.
    pub fn group_addr(&self) -> Option<SocketAddr> {
        self.group.as_ref().map(|g| g.addr)
    }

    /// The member whose address is [`local_addr`](Self::local_addr), if any.
    pub fn local_node(&self) -> Option<NodeId> {
        self.local_node
    }

    /// The current member list, sorted by node id.
    pub fn members(&self) -> &[Member] {
        self.members.members()
    }

    /// The configuration this transport was created with.
    pub fn config(&self) -> &UdpConfig {
        &self.config
    }
}

/// Where delivery of the last `recvmmsg` batch stopped when the burst budget ran out in the
/// middle of it (a GRO buffer holds up to 64 frames): the next [`Transport::recv_burst`]
/// starts there, before it reads a socket again (which would overwrite the batch).
#[derive(Debug, Clone, Copy)]
struct RxCursor {
    /// The buffer of the batch, and the byte offset of its next frame.
    buf: usize,
    off: usize,
    /// The address whose frames this socket skips (our own, looped back on multicast).
    skip_from: Option<SocketAddr>,
}

/// Reads one batch of at most `max` buffers from `sock`; returns how many (0 when none was
/// waiting).
fn read_batch(sock: &UdpSocket, rx: &mut RxBatch, max: usize) -> io::Result<usize> {
    match rx.recv(sock, max) {
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// Delivers the frames of `rx`'s last batch from `at` on, at most `budget` of them; returns
/// how many, and where it stopped when frames are left.
fn deliver(
    rx: &RxBatch,
    at: RxCursor,
    budget: usize,
    members: &MemberTable,
    stats: &mut Stats,
    f: &mut impl FnMut(Source, &[u8]),
) -> (usize, Option<RxCursor>) {
    let mut delivered = 0;
    let mtu = rx.mtu();
    let (mut i, mut off) = (at.buf, at.off);
    while i < rx.received() {
        let (meta, payload) = rx.frame(i);
        // A GRO run: datagrams of `segment` bytes, the last one maybe shorter.
        let step = if meta.segment > 0 {
            meta.segment
        } else {
            payload.len().max(1)
        };
        let datagrams = payload.len().div_ceil(step).max(1);
        let addr = match meta.src {
            _ if off > 0 => meta.src,
            _ if meta.truncated => {
                stats.rx_truncated += datagrams as u64;
                None
            }
            None => {
                // Not an address of our family: cannot be named, so cannot be a member.
                stats.unknown_sources += datagrams as u64;
                None
            }
            // Our own ring frame, looped back.
            Some(a) if at.skip_from.is_some_and(|own| addr_key(own) == addr_key(a)) => None,
            Some(a) => Some(a),
        };
        let Some(addr) = addr else {
            (i, off) = (i + 1, 0);
            continue;
        };
        let node = members.node_of(addr);
        loop {
            if delivered == budget {
                return (
                    delivered,
                    Some(RxCursor {
                        buf: i,
                        off,
                        skip_from: at.skip_from,
                    }),
                );
            }
            let end = (off + step).min(payload.len());
            let frame = &payload[off..end];
            off = end;
            if frame.len() > mtu {
                // Larger than this transport's frames: what MSG_TRUNC reports without GRO.
                stats.rx_truncated += 1;
            } else {
                if node.is_none() {
                    stats.unknown_sources += 1;
                }
                stats.frames_in += 1;
                stats.bytes_in += frame.len() as u64;
                delivered += 1;
                f(Source { node, addr }, frame);
            }
            if off >= payload.len() {
                break;
            }
        }
        (i, off) = (i + 1, 0);
    }
    (delivered, None)
}

impl Transport for UdpTransport {
    fn caps(&self) -> Caps {
        Caps {
            mtu: self.config.mtu,
            max_burst: self.config.burst,
        }
    }

    fn recv_burst(&mut self, mut f: impl FnMut(Source, &[u8])) -> io::Result<usize> {
        let mut budget = self.config.burst;
        let mut delivered = 0;
        // First what is left of the last batch (GRO buffers hold more frames than a burst).
        if let Some(at) = self.rx_cursor.take() {
            let (got, rest) = deliver(&self.rx, at, budget, &self.members, &mut self.stats, &mut f);
            delivered += got;
            budget -= got;
            if rest.is_some() {
                self.rx_cursor = rest;
                return Ok(delivered);
            }
        }
        let group_first = self.group_first;
        self.group_first = !group_first;
        for from_group in [group_first, !group_first] {
            if budget == 0 {
                break;
            }
            let (sock, skip) = if from_group {
                match &self.group {
                    Some(g) => (&g.sock, Some(self.local)),
                    None => continue,
                }
            } else {
                (&self.sock, None)
            };
            if read_batch(sock, &mut self.rx, budget)? == 0 {
                continue;
            }
            let at = RxCursor {
                buf: 0,
                off: 0,
                skip_from: skip,
            };
            let (got, rest) = deliver(&self.rx, at, budget, &self.members, &mut self.stats, &mut f);
            delivered += got;
            budget -= got;
            if rest.is_some() {
                // The batch is not done: no other socket is read until it is.
                self.rx_cursor = rest;
                break;
            }
        }
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
        if self.tx_slots == self.config.burst {
            return Err(SendError::TxFull);
        }
        let member = match dest {
            Dest::Node(id) => Some(self.members.index_of(id).ok_or(SendError::Unknown(id))?),
            Dest::Ring => None,
        };
        let offset = self.tx_slots * mtu;
        fill(&mut self.tx_arena[offset..offset + len]);
        self.tx_slots += 1;
        let entry = |dest| TxEntry { offset, len, dest };
        let before = self.tx_queue.capacity();
        match (member, &self.group) {
            (Some(i), _) => self.tx_queue.push(entry(self.member_raw[i])),
            (None, Some(g)) => self.tx_queue.push(entry(g.raw)),
            (None, None) => self.tx_queue.extend(self.peers.iter().map(|&p| entry(p))),
        }
        debug_assert_eq!(before, self.tx_queue.capacity(), "TX queue reallocated");
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.gso.is_some() && self.tx_queue.len() - self.tx_head > 1 {
            return self.flush_gso();
        }
        let mut first_err = None;
        while self.tx_head < self.tx_queue.len() {
            let pending = &self.tx_queue[self.tx_head..];
            match self.tx.send(&self.sock, &self.tx_arena, pending) {
                Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
                Ok(n) => {
                    for e in &pending[..n] {
                        self.stats.frames_out += 1;
                        self.stats.bytes_out += e.len as u64;
                    }
                    self.tx_head += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) => {
                    self.stats.tx_errors += 1;
                    let dest = pending[0].dest.to_std();
                    tracing::debug!(?dest, error = %e, "UDP datagram refused, dropped");
                    first_err.get_or_insert(e);
                    self.tx_head += 1;
                }
            }
        }
        self.tx_queue.clear();
        self.tx_head = 0;
        self.tx_slots = 0;
        first_err.map_or(Ok(()), Err)
    }

    fn set_members(&mut self, members: &[Member]) -> Result<(), MembersError> {
        let table = MemberTable::new(members, Some(self.local.is_ipv6()))?;
        self.member_raw = table
            .members()
            .iter()
            .map(|m| RawAddr::new(m.addr))
            .collect();
        self.peers = match self.config.mode {
            Mode::Multicast { .. } => Vec::new(),
            Mode::Unicast => table
                .members()
                .iter()
                .filter(|m| addr_key(m.addr) != addr_key(self.local))
                .map(|m| RawAddr::new(m.addr))
                .collect(),
        };
        self.local_node = table.node_of(self.local);
        self.members = table;
        let need = self.config.burst * self.peers.len().max(1);
        if self.tx_queue.capacity() < need {
            self.tx_queue.reserve_exact(need - self.tx_queue.len());
        }
        if self.tx.capacity() < need.min(sys::MAX_BATCH) {
            self.tx = TxBatch::new(need);
        }
        if let Some(g) = &mut self.gso
            && g.batch.capacity() < need
        {
            *g = Gso::new(need);
        }
        Ok(())
    }

    fn waker(&self) -> Option<crate::wake::Waker> {
        Some(self.waker.clone())
    }

    fn learn_member(&mut self, node: NodeId, addr: SocketAddr) -> bool {
        if !matches!(self.config.mode, Mode::Multicast { .. }) {
            return false;
        }
        let key = addr_key(addr);
        let known = self.members.members();
        if known
            .iter()
            .any(|m| m.id == node && addr_key(m.addr) == key)
        {
            return false;
        }
        let mut next: Vec<Member> = known
            .iter()
            .filter(|m| m.id != node && addr_key(m.addr) != key)
            .copied()
            .collect();
        next.push(Member { id: node, addr });
        self.set_members(&next).is_ok()
    }

    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) -> bool {
        use std::os::fd::AsRawFd;
        out.push(self.sock.as_raw_fd());
        if let Some(g) = &self.group {
            out.push(g.sock.as_raw_fd());
        }
        true
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        sys::wait_readable(
            &self.sock,
            self.group.as_ref().map(|g| &g.sock),
            &self.waker,
            timeout,
        )
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn planned(pending: &[TxEntry]) -> (Vec<usize>, Vec<(usize, usize, usize)>) {
        let (mut dests, mut order, mut runs) = (Vec::new(), Vec::new(), Vec::new());
        plan_gso(pending, &mut dests, &mut order, &mut runs);
        let runs = runs.iter().map(|r| (r.first, r.count, r.seg)).collect();
        (order, runs)
    }

    /// GSO runs: per destination in order, equal frames with a shorter last one, the token's
    /// destination last, at most 64 frames per run.
    #[test]
    fn gso_runs_group_each_destination_and_keep_the_token_last() {
        let (a, b) = (RawAddr::new(lo(1)), RawAddr::new(lo(2)));
        let e = |dest, len| TxEntry {
            offset: 0,
            len,
            dest,
        };
        let pending = [
            e(a, 1000),
            e(b, 1000),
            e(a, 1000),
            e(b, 1000),
            e(a, 600),
            e(b, 600),
            e(a, 100), // the token, to the next node
        ];
        let (order, runs) = planned(&pending);
        assert_eq!(order, vec![1, 3, 5, 0, 2, 4, 6]);
        assert_eq!(
            runs,
            vec![(0, 3, 1000), (3, 3, 1000), (6, 1, 100)],
            "a shorter frame ends its run"
        );
        let many: Vec<TxEntry> = (0..70).map(|_| e(a, 1472)).collect();
        let (_, runs) = planned(&many);
        assert_eq!(
            runs,
            vec![(0, 40, 1472), (40, 30, 1472)],
            "at most 60 000 bytes"
        );
        let small: Vec<TxEntry> = (0..70).map(|_| e(a, 100)).collect();
        let (_, runs) = planned(&small);
        assert_eq!(runs, vec![(0, 64, 100), (64, 6, 100)], "at most 64 frames");
        let growing = [e(a, 100), e(a, 200), e(a, 200)];
        assert_eq!(planned(&growing).1, vec![(0, 1, 100), (1, 2, 200)]);
    }

    fn lo(port: u16) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
    }

    #[test]
    fn rejects_inconsistent_configurations() {
        let cases = [
            UdpConfig::unicast("0.0.0.0:0".parse().unwrap()),
            UdpConfig {
                mtu: 0,
                ..UdpConfig::unicast(lo(0))
            },
            UdpConfig {
                mtu: 65_508,
                ..UdpConfig::unicast(lo(0))
            },
            UdpConfig {
                burst: 0,
                ..UdpConfig::unicast(lo(0))
            },
            UdpConfig::multicast(lo(0), "10.0.0.1".parse().unwrap(), 0),
            UdpConfig::multicast(lo(0), "ff12::1".parse().unwrap(), 0),
        ];
        for c in cases {
            let err = UdpTransport::new(c).unwrap_err();
            assert!(matches!(err, UdpError::Config { .. }), "{c:?}: {err}");
        }
    }

    #[test]
    fn bind_error_names_the_address() {
        let first = UdpTransport::new(UdpConfig::unicast(lo(0))).unwrap();
        let taken = first.local_addr();
        let err = UdpTransport::new(UdpConfig::unicast(taken)).unwrap_err();
        assert!(matches!(err, UdpError::Bind { addr, .. } if addr == taken));
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
        // Not a local address at all (TEST-NET-3).
        let err =
            UdpTransport::new(UdpConfig::unicast("203.0.113.7:5405".parse().unwrap())).unwrap_err();
        assert!(err.to_string().contains("203.0.113.7:5405"), "{err}");
    }

    #[test]
    fn wait_times_out_when_nothing_arrives() {
        let mut t = UdpTransport::new(UdpConfig::unicast(lo(0))).unwrap();
        let start = std::time::Instant::now();
        t.wait(Some(Duration::from_millis(20))).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(t.recv_burst(|_, _| panic!("nothing was sent")).unwrap(), 0);
    }

    #[test]
    fn a_refused_datagram_is_dropped_and_the_rest_still_go() {
        let mut a = UdpTransport::new(UdpConfig::unicast(lo(0))).unwrap();
        let mut b = UdpTransport::new(UdpConfig::unicast(lo(0))).unwrap();
        // A socket bound to 127.0.0.1 cannot send to a non-loopback address (EINVAL).
        let members = [
            Member {
                id: NodeId(1),
                addr: a.local_addr(),
            },
            Member {
                id: NodeId(2),
                addr: "203.0.113.1:5405".parse().unwrap(),
            },
            Member {
                id: NodeId(3),
                addr: b.local_addr(),
            },
        ];
        a.set_members(&members).unwrap();
        b.set_members(&members).unwrap();
        a.send(Dest::Ring, 3, |buf| buf.copy_from_slice(b"one"))
            .unwrap();
        a.send(Dest::Node(NodeId(3)), 3, |buf| buf.copy_from_slice(b"two"))
            .unwrap();
        assert!(a.flush().is_err(), "the refused datagram is reported");
        let stats = a.stats();
        assert_eq!((stats.tx_errors, stats.frames_out), (1, 2));
        a.flush().unwrap(); // the queue is empty again

        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && std::time::Instant::now() < deadline {
            b.wait(Some(Duration::from_millis(100))).unwrap();
            b.recv_burst(|src, f| got.push((src.node, f.to_vec())))
                .unwrap();
        }
        assert_eq!(
            got,
            [
                (Some(NodeId(1)), b"one".to_vec()),
                (Some(NodeId(1)), b"two".to_vec())
            ]
        );
    }

    /// A burst of equal frames to the ring goes out as GSO runs and arrives as the same
    /// datagrams, in order, at every member.
    #[test]
    fn gso_runs_arrive_as_the_frames_sent() {
        let mut a = UdpTransport::new(UdpConfig {
            burst: 64,
            ..UdpConfig::unicast(lo(0))
        })
        .unwrap();
        assert!(
            a.gso.is_some(),
            "the kernel takes UDP_SEGMENT (Linux 4.18 and later)"
        );
        // One receiver with GRO (the default), one without: the same frames either way.
        let mut peers: Vec<UdpTransport> = [true, false]
            .into_iter()
            .map(|gro| {
                UdpTransport::new(UdpConfig {
                    burst: 64,
                    gro,
                    ..UdpConfig::unicast(lo(0))
                })
                .unwrap()
            })
            .collect();
        assert!(
            peers[0].rx.gro(),
            "the kernel takes UDP_GRO (Linux 5.0 and later)"
        );
        assert!(!peers[1].rx.gro());
        let members: Vec<Member> = std::iter::once(a.local_addr())
            .chain(peers.iter().map(UdpTransport::local_addr))
            .enumerate()
            .map(|(i, addr)| Member {
                id: NodeId(i as u32 + 1),
                addr,
            })
            .collect();
        a.set_members(&members).unwrap();
        for p in &mut peers {
            p.set_members(&members).unwrap();
        }
        let frame = |i: usize| -> Vec<u8> {
            let len = if i == 49 { 300 } else { 1400 };
            (0..len).map(|j| (i * 7 + j) as u8).collect()
        };
        let mut sent = 0;
        for i in 0..50 {
            let f = frame(i);
            if matches!(
                a.send(Dest::Ring, f.len(), |buf| buf.copy_from_slice(&f)),
                Err(SendError::TxFull)
            ) {
                a.flush().unwrap();
                a.send(Dest::Ring, f.len(), |buf| buf.copy_from_slice(&f))
                    .unwrap();
            }
            sent += 1;
        }
        a.flush().unwrap();
        assert_eq!(a.stats().frames_out, 2 * sent);
        for p in &mut peers {
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while got.len() < 50 && std::time::Instant::now() < deadline {
                p.wait(Some(Duration::from_millis(100))).unwrap();
                p.recv_burst(|src, f| {
                    assert_eq!(src.node, Some(NodeId(1)));
                    got.push(f.to_vec());
                })
                .unwrap();
            }
            let want: Vec<Vec<u8>> = (0..50).map(frame).collect();
            assert_eq!(got, want);
        }
    }

    /// Sends `frames` (a run of equal frames and a shorter last one, as GSO runs) from a new
    /// transport, node 1, to `to`, node 2 (both get that member list).
    fn send_run(to: &mut UdpTransport, frames: &[Vec<u8>]) {
        let mut a = UdpTransport::new(UdpConfig {
            burst: 64,
            ..UdpConfig::unicast(lo(0))
        })
        .unwrap();
        let members = [
            Member {
                id: NodeId(1),
                addr: a.local_addr(),
            },
            Member {
                id: NodeId(2),
                addr: to.local_addr(),
            },
        ];
        a.set_members(&members).unwrap();
        to.set_members(&members).unwrap();
        for f in frames {
            a.send(Dest::Node(NodeId(2)), f.len(), |buf| buf.copy_from_slice(f))
                .unwrap();
        }
        a.flush().unwrap();
        assert_eq!(a.stats().frames_out, frames.len() as u64);
    }

    /// Reads `to` batch by batch until `want` frames were delivered or counted truncated;
    /// returns (buffers read, frames delivered).
    fn drain_all(to: &mut UdpTransport, want: u64) -> (usize, Vec<Vec<u8>>) {
        let (mut buffers, mut got) = (0, Vec::new());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while (got.len() as u64) + to.stats.rx_truncated < want
            && std::time::Instant::now() < deadline
        {
            to.wait(Some(Duration::from_millis(100))).unwrap();
            let n = read_batch(&to.sock, &mut to.rx, 64).unwrap();
            let at = RxCursor {
                buf: 0,
                off: 0,
                skip_from: None,
            };
            let (_, rest) = deliver(
                &to.rx,
                at,
                usize::MAX,
                &to.members,
                &mut to.stats,
                &mut |_, f: &[u8]| got.push(f.to_vec()),
            );
            assert!(rest.is_none());
            buffers += n;
        }
        (buffers, got)
    }

    /// With GRO a GSO run is read as one buffer and split back into its datagrams.
    #[test]
    fn gro_reads_a_run_as_one_buffer_and_splits_it() {
        let frames: Vec<Vec<u8>> = (0..40)
            .map(|i| vec![i as u8; if i == 39 { 100 } else { 1200 }])
            .collect();
        let mut b = UdpTransport::new(UdpConfig {
            burst: 64,
            ..UdpConfig::unicast(lo(0))
        })
        .unwrap();
        send_run(&mut b, &frames);
        let (buffers, got) = drain_all(&mut b, 40);
        assert_eq!(got, frames);
        assert!(
            buffers < 40,
            "40 frames of one GSO run came in {buffers} buffers: GRO did not coalesce"
        );
        assert_eq!(b.stats().frames_in, 40);
    }

    /// A GRO buffer holds more frames than a burst: `recv_burst` delivers at most `burst`
    /// per call and the next call goes on where it stopped, in order, before reading again.
    #[test]
    fn a_gro_run_longer_than_a_burst_is_delivered_over_several_calls() {
        let frames: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; 1000]).collect();
        let mut b = UdpTransport::new(UdpConfig {
            burst: 4,
            ..UdpConfig::unicast(lo(0))
        })
        .unwrap();
        send_run(&mut b, &frames);
        let mut got = Vec::new();
        let mut calls = Vec::new();
        let mut carried = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 10 && std::time::Instant::now() < deadline {
            b.wait(Some(Duration::from_millis(100))).unwrap();
            let n = b.recv_burst(|_, f| got.push(f.to_vec())).unwrap();
            if n > 0 {
                calls.push(n);
            }
            carried |= b.rx_cursor.is_some();
        }
        assert_eq!(got, frames);
        assert!(calls.iter().all(|&n| n <= 4), "bursts {calls:?}");
        assert!(
            carried,
            "the run came in buffers of at most a burst: {calls:?}"
        );
        assert!(b.rx_cursor.is_none());
    }

    /// A datagram larger than the receiver's MTU is counted truncated and dropped, with GRO
    /// (checked per datagram of a run) as without (MSG_TRUNC); the short one gets through.
    #[test]
    fn frames_above_the_mtu_are_dropped_with_and_without_gro() {
        let frames: Vec<Vec<u8>> = (0..10)
            .map(|i| vec![i as u8; if i == 9 { 300 } else { 1200 }])
            .collect();
        for gro in [true, false] {
            let mut b = UdpTransport::new(UdpConfig {
                burst: 64,
                mtu: 1000,
                gro,
                ..UdpConfig::unicast(lo(0))
            })
            .unwrap();
            send_run(&mut b, &frames);
            let (_, got) = drain_all(&mut b, 10);
            assert_eq!(got, vec![frames[9].clone()], "gro {gro}");
            assert_eq!(b.stats().rx_truncated, 9, "gro {gro}");
        }
    }

    #[test]
    fn local_node_is_the_member_with_our_address() {
        let mut t = UdpTransport::new(UdpConfig::unicast(lo(0))).unwrap();
        let me = t.local_addr();
        t.set_members(&[
            Member {
                id: NodeId(7),
                addr: me,
            },
            Member {
                id: NodeId(8),
                addr: lo(1),
            },
        ])
        .unwrap();
        assert_eq!(t.local_node(), Some(NodeId(7)));
        assert_eq!(
            t.set_members(&[Member {
                id: NodeId(1),
                addr: "[::1]:1".parse().unwrap()
            }]),
            Err(MembersError::AddressFamily {
                id: NodeId(1),
                addr: "[::1]:1".parse().unwrap()
            })
        );
        assert_eq!(t.local_node(), Some(NodeId(7)), "old list stays on error");
    }
}

#[cfg(test)]
mod learn_tests {
    use std::net::{Ipv4Addr, UdpSocket};

    use super::*;

    fn multicast_on_lo() -> UdpTransport {
        UdpTransport::new(UdpConfig {
            mode: Mode::Multicast {
                group: IpAddr::V4(Ipv4Addr::new(239, 255, 43, 1)),
                port: 0,
                ttl: 1,
                loopback: true,
                interface: Some(Ipv4Addr::LOCALHOST.into()),
            },
            ..UdpConfig::unicast("127.0.0.1:0".parse().unwrap())
        })
        .unwrap()
    }

    /// Multicast mode discovers members: an unknown node cannot be sent to until its address
    /// is learned; learning again changes nothing; a new address replaces the old one.
    #[test]
    fn multicast_learns_member_addresses() {
        let mut t = multicast_on_lo();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let id = NodeId(9);
        assert!(matches!(
            t.send(Dest::Node(id), 3, |b| b.copy_from_slice(b"abc")),
            Err(SendError::Unknown(n)) if n == id
        ));
        assert!(t.learn_member(id, peer.local_addr().unwrap()));
        assert!(
            !t.learn_member(id, peer.local_addr().unwrap()),
            "already known"
        );
        t.send(Dest::Node(id), 3, |b| b.copy_from_slice(b"abc"))
            .unwrap();
        t.flush().unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc");

        let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
        moved
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert!(t.learn_member(id, moved.local_addr().unwrap()));
        t.send(Dest::Node(id), 2, |b| b.copy_from_slice(b"hi"))
            .unwrap();
        t.flush().unwrap();
        let (n, _) = moved.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
    }

    /// Unicast mode's members are configured: nothing is learned.
    #[test]
    fn unicast_learns_nothing() {
        let mut t = UdpTransport::new(UdpConfig::unicast("127.0.0.1:0".parse().unwrap())).unwrap();
        assert!(!t.learn_member(NodeId(4), "127.0.0.1:9".parse().unwrap()));
    }
}

#[cfg(test)]
mod wake_tests {
    use super::*;

    /// A waker makes a long `wait` return (the driver relies on it to take a submit at once).
    #[test]
    fn waker_ends_a_long_wait() {
        let mut t = UdpTransport::new(UdpConfig::unicast("127.0.0.1:0".parse().unwrap())).unwrap();
        let waker = t.waker().expect("the UDP transport has a waker");
        let start = std::time::Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.wake();
        });
        t.wait(Some(Duration::from_secs(30))).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "wait returned only after {:?}",
            start.elapsed()
        );
        thread.join().unwrap();
        // The wake was consumed: the next short wait times out normally.
        let start = std::time::Instant::now();
        t.wait(Some(Duration::from_millis(20))).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
