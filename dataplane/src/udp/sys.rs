//! The Linux system calls under the UDP backend: socket setup, `recvmmsg`/`sendmmsg` batches
//! and `poll`. All of the UDP backend's `unsafe` lives here, behind a safe crate-private API;
//! every block says why it is sound.
//!
//! The batch structs keep their `mmsghdr`/`iovec` arrays from construction on and rewrite the
//! pointers in them right before each system call, so no pointer outlives the borrow it was
//! taken from.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_uint};
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::Duration;

/// The most datagrams one `sendmmsg`/`recvmmsg` call takes (the kernel's `UIO_MAXIOV`).
pub(crate) const MAX_BATCH: usize = libc::UIO_MAXIOV as usize;

/// Room for an IPv4 or IPv6 socket address in the kernel's layout.
#[derive(Clone, Copy)]
#[repr(C)]
union SockAddrBuf {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

const ZERO_V6: libc::sockaddr_in6 = libc::sockaddr_in6 {
    sin6_family: 0,
    sin6_port: 0,
    sin6_flowinfo: 0,
    sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
    sin6_scope_id: 0,
};

/// The largest socket address length the kernel may write into a [`SockAddrBuf`].
const NAME_LEN: libc::socklen_t = mem::size_of::<SockAddrBuf>() as libc::socklen_t;

impl SockAddrBuf {
    /// All bytes initialised to zero (`v6` is the larger variant and covers the whole union).
    const EMPTY: Self = Self { v6: ZERO_V6 };

    fn to_std(self, len: libc::socklen_t) -> Option<SocketAddr> {
        // SAFETY: every SockAddrBuf starts as EMPTY (all bytes initialised) and is only
        // overwritten whole or by the kernel, so every byte is initialised; both variants are
        // plain integers, valid for any bit pattern.
        let family = c_int::from(unsafe { self.v4.sin_family });
        let len = len as usize;
        if family == libc::AF_INET && len >= mem::size_of::<libc::sockaddr_in>() {
            // SAFETY: as above.
            let a = unsafe { self.v4 };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        } else if family == libc::AF_INET6 && len >= mem::size_of::<libc::sockaddr_in6>() {
            // SAFETY: as above.
            let a = unsafe { self.v6 };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(
                SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )
                .into(),
            )
        } else {
            None
        }
    }
}

/// A socket address converted once to the kernel's layout, ready to hand to `sendmmsg`.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    buf: SockAddrBuf,
    len: libc::socklen_t,
}

impl RawAddr {
    /// The address as the kernel reads it (`len` bytes).
    fn bytes(&self) -> &[u8] {
        let len = (self.len as usize).min(mem::size_of::<SockAddrBuf>());
        // SAFETY: every SockAddrBuf starts as EMPTY (all bytes initialised) and is only
        // overwritten whole or by the kernel, so its first `len` bytes (at most its size) are
        // initialised `u8`s, borrowed with `self`.
        unsafe { std::slice::from_raw_parts(ptr::from_ref(&self.buf).cast::<u8>(), len) }
    }

    /// The same kernel address (family, port, address, scope).
    pub(crate) fn same(&self, other: &RawAddr) -> bool {
        self.bytes() == other.bytes()
    }

    pub(crate) fn new(addr: SocketAddr) -> Self {
        let mut buf = SockAddrBuf::EMPTY;
        let len = match addr {
            SocketAddr::V4(a) => {
                buf.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                buf.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            buf,
            len: len as libc::socklen_t,
        }
    }

    pub(crate) fn to_std(self) -> Option<SocketAddr> {
        self.buf.to_std(self.len)
    }
}

fn cvt(rc: c_int) -> io::Result<c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A new non-blocking, close-on-exec UDP socket of the given family, not yet bound. IPv6
/// sockets are IPv6-only (no IPv4-mapped peers).
pub(crate) fn udp_socket(ipv6: bool) -> io::Result<UdpSocket> {
    let domain = if ipv6 { libc::AF_INET6 } else { libc::AF_INET };
    let ty = libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes only integers and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::socket(domain, ty, libc::IPPROTO_UDP) })?;
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
    let sock = UdpSocket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if ipv6 {
        set_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    Ok(sock)
}

fn set_opt<T: Copy>(sock: &UdpSocket, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to size_of::<T>() readable bytes for the duration of the call
    // (callers pass only C integers and C structs without padding); the kernel copies them and
    // checks the length against the option.
    cvt(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            ptr::from_ref(value).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn set_int(sock: &UdpSocket, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    set_opt(sock, level, name, &value)
}

fn get_int(sock: &UdpSocket, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes for the duration of the call and `len`
    // holds the size of `value`, which the kernel does not exceed.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// `SO_REUSEADDR`: lets every node on one host bind the same multicast group and port.
pub(crate) fn set_reuse_addr(sock: &UdpSocket) -> io::Result<()> {
    set_int(sock, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
}

fn clamp_int(bytes: usize) -> c_int {
    c_int::try_from(bytes).unwrap_or(c_int::MAX)
}

/// Requests a receive buffer of `bytes` and returns what the kernel granted (it doubles the
/// request for bookkeeping and caps it at `net.core.rmem_max`).
pub(crate) fn set_recv_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    set_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, clamp_int(bytes))?;
    Ok(get_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUF)?.max(0) as usize)
}

/// Requests a send buffer of `bytes` and returns what the kernel granted (see
/// [`set_recv_buffer`]; the cap is `net.core.wmem_max`).
pub(crate) fn set_send_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    set_int(sock, libc::SOL_SOCKET, libc::SO_SNDBUF, clamp_int(bytes))?;
    Ok(get_int(sock, libc::SOL_SOCKET, libc::SO_SNDBUF)?.max(0) as usize)
}

/// `IP_MULTICAST_IF`: the interface (by one of its addresses) IPv4 multicast leaves through.
pub(crate) fn set_multicast_if_v4(sock: &UdpSocket, interface: Ipv4Addr) -> io::Result<()> {
    let addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(interface.octets()),
    };
    set_opt(sock, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &addr)
}

/// `IPV6_MULTICAST_IF`: the interface (by index) IPv6 multicast leaves through.
pub(crate) fn set_multicast_if_v6(sock: &UdpSocket, ifindex: u32) -> io::Result<()> {
    set_int(
        sock,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        clamp_int(ifindex as usize),
    )
}

/// `IPV6_MULTICAST_HOPS`, the IPv6 multicast TTL.
pub(crate) fn set_multicast_hops_v6(sock: &UdpSocket, hops: u32) -> io::Result<()> {
    set_int(
        sock,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        clamp_int(hops as usize),
    )
}

/// bind(2).
pub(crate) fn bind(sock: &UdpSocket, addr: SocketAddr) -> io::Result<()> {
    let raw = RawAddr::new(addr);
    // SAFETY: `raw.buf` holds a socket address of `raw.len` initialised bytes, valid for the
    // duration of the call.
    cvt(unsafe { libc::bind(sock.as_raw_fd(), ptr::from_ref(&raw.buf).cast(), raw.len) })?;
    Ok(())
}

/// The index of the network interface that has address `ip`, or `None` if no interface has
/// it.
pub(crate) fn interface_index(ip: IpAddr) -> io::Result<Option<u32>> {
    let mut head: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: getifaddrs(3) writes a list head into `head`, which is valid for writes.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned, which stays valid
        // until freeifaddrs below.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: a non-null ifa_addr points to a socket address that starts with its family.
        let family = c_int::from(unsafe { (*ifa.ifa_addr).sa_family });
        let addr = if family == libc::AF_INET {
            // SAFETY: the family says ifa_addr is a sockaddr_in.
            let sin = unsafe { ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in>()) };
            IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes())
        } else if family == libc::AF_INET6 {
            // SAFETY: the family says ifa_addr is a sockaddr_in6.
            let sin6 = unsafe { ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in6>()) };
            IpAddr::from(sin6.sin6_addr.s6_addr)
        } else {
            continue;
        };
        if addr == ip {
            // SAFETY: ifa_name is a NUL-terminated interface name owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if index != 0 {
                found = Some(index);
                break;
            }
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once; no reference into the
    // list outlives this point.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

/// Blocks until `first` or `second` is readable or `timeout` passes (rounded up to the next
/// millisecond; `None` waits for ever). A signal ends the wait early without an error.
pub(crate) fn wait_readable(
    first: &UdpSocket,
    second: Option<&UdpSocket>,
    waker: &crate::wake::Waker,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let pfd = |fd: c_int| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [
        pfd(waker.as_raw_fd()),
        pfd(first.as_raw_fd()),
        pfd(second.unwrap_or(first).as_raw_fd()),
    ];
    let nfds: libc::nfds_t = if second.is_some() { 3 } else { 2 };
    // ppoll takes nanoseconds: a driver waiting for a 50 µs timer does not sleep a whole
    // millisecond.
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(ptr::null(), std::ptr::from_ref);
    // SAFETY: `fds` is an array of `nfds` (at most 3) pollfd structs valid for reads and
    // writes for the duration of the call; `ts_ptr` is null or points to a timespec that
    // outlives the call; a null signal mask leaves the mask unchanged.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), nfds, ts_ptr, ptr::null()) };
    if fds[0].revents & libc::POLLIN != 0 {
        waker.drain();
    }
    match cvt(rc) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is a C struct of integers and raw pointers; all-zero bytes are a valid
    // value of it (null pointers, zero lengths and flags).
    unsafe { mem::zeroed() }
}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }
}

/// What `recvmmsg` reported for one received datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RxMeta {
    /// The sender, `None` if the kernel reported an address of another family.
    pub(crate) src: Option<SocketAddr>,
    /// The datagram was larger than the slot (`MSG_TRUNC`): the slot holds only its start.
    pub(crate) truncated: bool,
    /// With GRO: the kernel coalesced datagrams of this size (the last one may be shorter)
    /// into the slot; 0 when the slot holds one datagram.
    pub(crate) segment: usize,
}

/// Receive side: `burst` slots of `mtu` bytes in one arena, with their `mmsghdr`, `iovec` and
/// address arrays, allocated once. With GRO ([`RxBatch::with_gro`]) each slot holds
/// [`GRO_SLOT`] bytes (a run of coalesced datagrams) and has room for the `UDP_GRO` control
/// message that gives their size.
pub(crate) struct RxBatch {
    /// Bytes per slot: the MTU, or [`GRO_SLOT`] with GRO.
    slot: usize,
    /// The transport's MTU: larger datagrams are not its frames.
    mtu: usize,
    arena: Box<[u8]>,
    names: Box<[SockAddrBuf]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// One control-message buffer per slot, with GRO; empty without.
    cmsgs: Box<[SegmentCmsg]>,
    received: usize,
}

// SAFETY: the raw pointers inside `iovs` and `hdrs` point only into this struct's own heap
// buffers (or are stale), are rewritten right before every system call and are never
// dereferenced by Rust code, so moving the batch to another thread is as safe as moving the
// buffers it owns.
unsafe impl Send for RxBatch {}

impl RxBatch {
    pub(crate) fn new(burst: usize, mtu: usize) -> Self {
        Self::with_slots(burst.clamp(1, MAX_BATCH), mtu, mtu, false)
    }

    /// For sockets with `UDP_GRO` on ([`enable_gro`]): `burst` slots (at most
    /// [`GRO_MAX_SLOTS`]) of [`GRO_SLOT`] bytes, each with its control-message buffer.
    pub(crate) fn with_gro(burst: usize, mtu: usize) -> Self {
        Self::with_slots(burst.clamp(1, GRO_MAX_SLOTS), GRO_SLOT, mtu, true)
    }

    fn with_slots(slots: usize, slot: usize, mtu: usize, gro: bool) -> Self {
        Self {
            slot,
            mtu,
            arena: vec![0; slots * slot].into_boxed_slice(),
            names: vec![SockAddrBuf::EMPTY; slots].into_boxed_slice(),
            iovs: (0..slots).map(|_| empty_iovec()).collect(),
            hdrs: (0..slots).map(|_| zeroed_mmsghdr()).collect(),
            cmsgs: vec![SegmentCmsg([0; 32]); if gro { slots } else { 0 }].into_boxed_slice(),
            received: 0,
        }
    }

    /// The transport's MTU: a datagram of a GRO run larger than this is not one of its
    /// frames (without GRO the kernel reports it truncated).
    pub(crate) fn mtu(&self) -> usize {
        self.mtu
    }

    /// Receives up to `max` waiting datagrams with one non-blocking `recvmmsg` and returns
    /// how many; read them with [`frame`](Self::frame). `WouldBlock` when none is waiting.
    pub(crate) fn recv(&mut self, sock: &UdpSocket, max: usize) -> io::Result<usize> {
        self.received = 0;
        let n = max.min(self.hdrs.len());
        if n == 0 {
            return Ok(0);
        }
        let slot = self.slot;
        let arena = self.arena.as_mut_ptr();
        for (i, iov) in self.iovs[..n].iter_mut().enumerate() {
            iov.iov_base = arena.wrapping_add(i * slot).cast();
            iov.iov_len = slot;
        }
        self.names[..n].fill(SockAddrBuf::EMPTY);
        let names = self.names.as_mut_ptr();
        let iovs = self.iovs.as_mut_ptr();
        let cmsgs = self.cmsgs.as_mut_ptr();
        let gro = !self.cmsgs.is_empty();
        for (i, h) in self.hdrs[..n].iter_mut().enumerate() {
            h.msg_hdr.msg_name = names.wrapping_add(i).cast();
            h.msg_hdr.msg_namelen = NAME_LEN;
            h.msg_hdr.msg_iov = iovs.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            if gro {
                h.msg_hdr.msg_control = cmsgs.wrapping_add(i).cast();
                h.msg_hdr.msg_controllen = mem::size_of::<SegmentCmsg>() as _;
            } else {
                h.msg_hdr.msg_control = ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: each of hdrs[..n] points at one iovec describing its own disjoint `slot`-byte
        // slot of `arena`, at a name buffer of NAME_LEN bytes in `names` and, with GRO, at its
        // own 32-byte control buffer in `cmsgs`; all are owned by `self`, which is mutably
        // borrowed for the whole call, and no Rust reference to them is used until it
        // returns. The kernel writes at most those lengths.
        let rc = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        let got = cvt(rc)? as usize;
        self.received = got.min(n);
        Ok(self.received)
    }

    /// How many buffers the last [`recv`](Self::recv) filled.
    pub(crate) fn received(&self) -> usize {
        self.received
    }

    /// The `i`th datagram of the last [`recv`](Self::recv): what the kernel reported and the
    /// payload bytes in its slot.
    ///
    /// # Panics
    /// If `i` is not below the count the last `recv` returned.
    pub(crate) fn frame(&self, i: usize) -> (RxMeta, &[u8]) {
        assert!(i < self.received, "rx slot {i} was not filled");
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.slot);
        let meta = RxMeta {
            src: self.names[i].to_std(h.msg_hdr.msg_namelen),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            segment: if self.cmsgs.is_empty() {
                0
            } else {
                gro_segment(&h.msg_hdr)
            },
        };
        let start = i * self.slot;
        (meta, &self.arena[start..start + len])
    }
}

/// The segment size in a received `UDP_GRO` control message, 0 when there is none (the
/// kernel did not coalesce this datagram).
fn gro_segment(hdr: &libc::msghdr) -> usize {
    let data_len = mem::size_of::<c_int>();
    // SAFETY: after `recvmmsg`, `hdr.msg_control` points at this slot's own control buffer
    // (owned by the batch, which `hdr` borrows) and `msg_controllen` is what the kernel
    // wrote there (at most the buffer's size). CMSG_FIRSTHDR and CMSG_NXTHDR return headers
    // inside [msg_control, msg_control + msg_controllen) or null; a header's data is read
    // only when its `cmsg_len` says it holds the int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP
                && (*c).cmsg_type == UDP_GRO
                && (*c).cmsg_len as usize >= libc::CMSG_LEN(data_len as u32) as usize
            {
                let v = ptr::read_unaligned(libc::CMSG_DATA(c).cast::<c_int>());
                return usize::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    0
}

/// `UDP_GRO` (linux/udp.h): as a socket option, have the kernel hand this socket runs of
/// same-sized datagrams from one sender as one buffer; as a control message, their size.
const UDP_GRO: c_int = 104;
/// Bytes of one GRO receive slot: the largest UDP payload, rounded up.
pub(crate) const GRO_SLOT: usize = 65_536;
/// Most GRO receive slots per `recvmmsg` (each is [`GRO_SLOT`] bytes).
pub(crate) const GRO_MAX_SLOTS: usize = 64;

/// Turns `UDP_GRO` on for `sock` (Linux 5.0): false where the kernel does not know it.
pub(crate) fn enable_gro(sock: &UdpSocket) -> bool {
    set_int(sock, libc::SOL_UDP, UDP_GRO, 1).is_ok()
}

#[cfg(test)]
impl RxBatch {
    /// Whether the slots are GRO slots.
    pub(crate) fn gro(&self) -> bool {
        !self.cmsgs.is_empty()
    }
}

/// One queued datagram: `len` bytes at `offset` of the TX arena, to `dest`.
#[derive(Clone, Copy)]
pub(crate) struct TxEntry {
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) dest: RawAddr,
}

/// Send side: the `mmsghdr` and `iovec` arrays for one `sendmmsg`, allocated once.
pub(crate) struct TxBatch {
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

// SAFETY: the raw pointers inside `iovs` and `hdrs` are stale between calls: they are rewritten
// from borrowed arguments right before each system call and never dereferenced by Rust code.
unsafe impl Send for TxBatch {}

impl TxBatch {
    /// Room for `max` datagrams per `sendmmsg` (clamped to 1..=[`MAX_BATCH`]).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.clamp(1, MAX_BATCH);
        Self {
            iovs: (0..max).map(|_| empty_iovec()).collect(),
            hdrs: (0..max).map(|_| zeroed_mmsghdr()).collect(),
        }
    }

    /// How many datagrams one [`send`](Self::send) takes at most.
    pub(crate) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Sends the first entries (up to [`capacity`](Self::capacity)) with one non-blocking
    /// `sendmmsg` and returns how many the kernel took. Errors are those of the first entry
    /// not taken.
    ///
    /// # Panics
    /// If an entry's bytes are not inside `arena`.
    pub(crate) fn send(
        &mut self,
        sock: &UdpSocket,
        arena: &[u8],
        entries: &[TxEntry],
    ) -> io::Result<usize> {
        let n = entries.len().min(self.hdrs.len());
        if n == 0 {
            return Ok(0);
        }
        for (iov, e) in self.iovs.iter_mut().zip(&entries[..n]) {
            let frame = &arena[e.offset..e.offset + e.len];
            iov.iov_base = frame.as_ptr().cast_mut().cast();
            iov.iov_len = frame.len();
        }
        let iovs = self.iovs.as_mut_ptr();
        for (i, (h, e)) in self.hdrs.iter_mut().zip(&entries[..n]).enumerate() {
            h.msg_hdr.msg_name = ptr::from_ref(&e.dest.buf).cast_mut().cast();
            h.msg_hdr.msg_namelen = e.dest.len;
            h.msg_hdr.msg_iov = iovs.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: each of hdrs[..n] points at one iovec in `self.iovs` describing bytes inside
        // `arena`, and at the destination address inside `entries`; both are borrowed for the
        // whole call (sendmmsg only reads them: the `*mut` casts never lead to writes).
        unsafe { send_mmsg(sock, &mut self.hdrs[..n]) }
    }
}

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send, as a socket option or a
/// control message at level `SOL_UDP`.
const UDP_SEGMENT: c_int = 103;
/// The most segments one GSO send may carry (the kernel's `UDP_MAX_SEGMENTS` is 64 before
/// Linux 6.2 and 128 since).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;
/// The most bytes one GSO send may carry (a UDP datagram's payload limit, with headroom).
pub(crate) const GSO_MAX_BYTES: usize = 60_000;

/// Whether the kernel knows UDP GSO (`UDP_SEGMENT`, Linux 4.18): setting the socket's default
/// segment size to 0 (no segmentation unless a send asks for it) succeeds.
pub(crate) fn gso_supported(sock: &UdpSocket) -> bool {
    set_int(sock, libc::SOL_UDP, UDP_SEGMENT, 0).is_ok()
}

/// One datagram of a GSO send: `count` entries of the pending list, taken in the order given
/// by `order[first..first + count]`, all `seg` bytes long but the last (at most `seg`), to one
/// address. A run of one is sent as a plain datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GsoRun {
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) seg: usize,
}

/// Control-message room for one `UDP_SEGMENT` (a `cmsghdr` and a `u16`), 8-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct SegmentCmsg([u8; 32]);

/// Send side with UDP GSO: one `sendmmsg` whose messages each carry a run of frames to one
/// address, split by the kernel into `seg`-byte datagrams. Allocated once.
pub(crate) struct GsoBatch {
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    cmsgs: Box<[SegmentCmsg]>,
}

// SAFETY: as for `TxBatch`: the raw pointers are rewritten from borrowed arguments right before
// each system call and never dereferenced by Rust code.
unsafe impl Send for GsoBatch {}

impl GsoBatch {
    /// Room for `entries` frames in up to [`MAX_BATCH`] runs per call.
    pub(crate) fn new(entries: usize) -> Self {
        let runs = entries.clamp(1, MAX_BATCH);
        Self {
            iovs: (0..entries.max(1)).map(|_| empty_iovec()).collect(),
            hdrs: (0..runs).map(|_| zeroed_mmsghdr()).collect(),
            cmsgs: vec![SegmentCmsg([0; 32]); runs].into_boxed_slice(),
        }
    }

    /// How many frames one call may carry.
    pub(crate) fn capacity(&self) -> usize {
        self.iovs.len()
    }

    /// Sends `runs` (those that fit: at most [`MAX_BATCH`] runs and [`capacity`] frames) with
    /// one non-blocking `sendmmsg`; returns how many runs the kernel took. Errors are those of
    /// the first run not taken.
    ///
    /// # Panics
    /// If an entry's bytes are not inside `arena`, or a run names entries outside `order` or
    /// `entries`.
    ///
    /// [`capacity`]: Self::capacity
    pub(crate) fn send(
        &mut self,
        sock: &UdpSocket,
        arena: &[u8],
        entries: &[TxEntry],
        order: &[usize],
        runs: &[GsoRun],
    ) -> io::Result<usize> {
        let mut n = 0;
        let mut iov_used = 0;
        let cmsg_space = cmsg_space_u16();
        for run in runs.iter().take(self.hdrs.len()) {
            if iov_used + run.count > self.iovs.len() {
                break;
            }
            let first_iov = iov_used;
            for &i in &order[run.first..run.first + run.count] {
                let e = &entries[i];
                let frame = &arena[e.offset..e.offset + e.len];
                self.iovs[iov_used] = libc::iovec {
                    iov_base: frame.as_ptr().cast_mut().cast(),
                    iov_len: frame.len(),
                };
                iov_used += 1;
            }
            let dest = &entries[order[run.first]].dest;
            let h = &mut self.hdrs[n];
            h.msg_hdr.msg_name = ptr::from_ref(&dest.buf).cast_mut().cast();
            h.msg_hdr.msg_namelen = dest.len;
            h.msg_hdr.msg_iov = self.iovs.as_mut_ptr().wrapping_add(first_iov);
            h.msg_hdr.msg_iovlen = run.count as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
            if run.count > 1 {
                let c = &mut self.cmsgs[n];
                c.0 = [0; 32];
                h.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = cmsg_space as _;
                // SAFETY: `msg_control` points at 32 writable, 8-aligned bytes that `self`
                // owns and `msg_controllen` (CMSG_SPACE of a u16, 24 on Linux) fits them, so
                // CMSG_FIRSTHDR returns a pointer to the start of that buffer (not null) and
                // CMSG_DATA points inside it with room for the u16.
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(&raw const h.msg_hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
                    ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), run.seg as u16);
                }
            } else {
                h.msg_hdr.msg_control = ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: each of hdrs[..n] points at iovecs in `self.iovs` describing bytes inside
        // `arena`, at a destination address inside `entries` and, for runs of more than one,
        // at its control message in `self.cmsgs`; all are borrowed or owned for the whole call.
        unsafe { send_mmsg(sock, &mut self.hdrs[..n]) }
    }
}

/// One non-blocking `sendmmsg` of `hdrs`; returns how many messages the kernel took.
///
/// # Safety
/// Every pointer in `hdrs` (name, iovecs and the bytes they describe, control messages) must
/// be valid for reads for the whole call. The kernel writes only the headers' `msg_len`.
unsafe fn send_mmsg(sock: &UdpSocket, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let n = hdrs.len();
    // SAFETY: `hdrs` is a live, writable array of `n` headers whose pointers the caller
    // guarantees valid for the call.
    let rc = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    Ok((cvt(rc)? as usize).min(n))
}

fn cmsg_space_u16() -> usize {
    // SAFETY: CMSG_SPACE only computes a length.
    unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_addresses_round_trip() {
        for s in [
            "127.0.0.1:5405",
            "10.1.2.3:1",
            "[::1]:5405",
            "[fe80::1%3]:9",
            "[ff12::4242]:65535",
        ] {
            let addr: SocketAddr = s.parse().unwrap();
            assert_eq!(RawAddr::new(addr).to_std(), Some(addr), "{s}");
        }
    }

    #[test]
    fn loopback_has_an_interface_index() {
        let lo = interface_index(Ipv4Addr::LOCALHOST.into()).unwrap();
        assert!(lo.is_some_and(|i| i > 0));
        assert_eq!(
            interface_index("203.0.113.254".parse().unwrap()).unwrap(),
            None
        );
    }
}
