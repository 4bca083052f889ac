//! Unix-domain `SOCK_SEQPACKET` sockets, the transport between the AIS executive and its
//! clients on the same host. Linux only.
//!
//! The executive binds a [`SeqpacketListener`] at a well-known path and accepts connections
//! from library clients, each a [`SeqpacketConn`]; tests use [`SeqpacketConn::pair`].
//!
//! # Why `SOCK_SEQPACKET`
//!
//! - **Message boundaries.** Every [`SeqpacketConn::send`] arrives as exactly one packet at
//!   the other end, whole or not at all, in order: no length prefixes or reassembly. A packet
//!   larger than the receiver's buffer is reported as [`Recv::Truncated`] with its full
//!   length instead of being cut silently.
//! - **Peer credentials.** The kernel records the pid, uid and gid of the connecting process
//!   at `connect` time ([`PeerCred`], `SO_PEERCRED`) and its supplementary groups
//!   (`SO_PEERGROUPS`), so the executive can authorise clients without trusting anything
//!   they send.
//! - **Connection close detection.** Unlike `SOCK_DGRAM`, the socket is connected: when a
//!   client exits, however it dies, the executive's next receive reports [`Recv::Closed`] and
//!   it can release everything the client held.
//!
//! # Threading model
//!
//! Both types are `Send + Sync`; every operation is a system call on a file descriptor,
//! which the kernel serialises. One thread may block in [`SeqpacketConn::recv`] while others
//! [`send`](SeqpacketConn::send) on the same connection, and any thread may call
//! [`SeqpacketConn::shutdown`] to wake the receiver, which then gets [`Recv::Closed`]. Calls
//! block unless their documentation says otherwise ([`SeqpacketConn::try_send`], the
//! `_timeout` variants). Writing to a closed connection returns
//! [`io::ErrorKind::BrokenPipe`] and never raises `SIGPIPE` (Linux raises it only for
//! `SOCK_STREAM`; sends pass `MSG_NOSIGNAL` all the same).
//!
//! A packet may carry one descriptor (`SCM_RIGHTS`, [`SeqpacketConn::send_with_fd`]): the
//! shared-memory segment of [`crate::shm`] travels that way.
//!
//! All descriptors are created close-on-exec. Paths are filesystem paths; Linux's abstract
//! namespace (a leading NUL byte) is not supported.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::fs;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

/// The `listen(2)` backlog of a [`SeqpacketListener`].
const BACKLOG: c_int = 128;

/// Packets of up to this many parts are sent without allocating.
const INLINE_PARTS: usize = 8;

/// `u64` words of control buffer for one `SCM_RIGHTS` descriptor (`CMSG_SPACE(4)` is 24 on
/// 64-bit Linux).
const CMSG_WORDS: usize = 3;

/// `u64` words of control buffer when receiving: room for a few descriptors, so that a peer
/// sending more than one does not get them silently truncated into a leak (they are closed).
const CMSG_WORDS_RECV: usize = 8;

/// The most parts one packet may have (the kernel's `UIO_MAXIOV`).
const MAX_PARTS: usize = libc::UIO_MAXIOV as usize;

/// Credentials of the peer process, from `SO_PEERCRED`: the kernel takes them when the
/// connection is made (`connect` or `socketpair`), so they stay those of the process that
/// connected even if it later changes its ids or passes the descriptor on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id, as seen from this process's pid namespace (0 if the peer's is not
    /// visible from here).
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// What one [`SeqpacketConn::recv`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// A whole packet of this many bytes is at the start of the buffer.
    Packet(usize),
    /// A packet larger than the buffer arrived (`MSG_TRUNC`). It was discarded; this is its
    /// full length. The next `recv` gets the next packet.
    Truncated(usize),
    /// The peer closed or shut down the connection, or this end was shut down. Nothing more
    /// will arrive. The kernel reports this as a receive of 0 bytes, which is also what an
    /// empty packet looks like; our protocol never sends empty packets, and
    /// [`SeqpacketConn::send`] refuses them, so 0 always means closed.
    Closed,
}

/// A listening `SOCK_SEQPACKET` socket bound at a filesystem path. The socket file is
/// removed when the listener is dropped.
#[derive(Debug)]
pub struct SeqpacketListener {
    /// Non-blocking, so that [`accept_timeout`](Self::accept_timeout) never blocks past its
    /// `poll` when another thread took the connection first.
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file we created, so that `Drop` only removes our own
    /// file.
    file_id: Option<(u64, u64)>,
}

impl SeqpacketListener {
    /// Binds a socket at `path`, sets the socket file's permission bits to `mode` (for example
    /// `0o660`: only the owner and group may connect) and listens with a backlog of 128. The
    /// mode is set before `listen`, so no client can connect while the file still has the
    /// umask's permissions.
    ///
    /// If a file exists at `path`: a socket that nobody accepts on (a connection attempt is
    /// refused) is left over from a server that died, and is removed. Between that check and
    /// the removal another server could start there; the check is meant for restarts, not for
    /// two servers racing.
    ///
    /// # Errors
    /// - [`io::ErrorKind::AddrInUse`], "PATH: another server is listening there", when a
    ///   server answers at `path` (the probe connection it sees closes at once);
    /// - [`io::ErrorKind::AlreadyExists`] when `path` exists and is not a socket;
    /// - [`io::ErrorKind::InvalidInput`] when `path` is empty, contains a NUL byte or does not
    ///   fit in `sockaddr_un` (107 bytes);
    /// - any other error from the system, with `path` in its message.
    pub fn bind(path: &Path, mode: u32) -> io::Result<SeqpacketListener> {
        let (addr, addr_len) = unix_addr(path)?;
        let fd = new_socket(libc::SOCK_NONBLOCK).map_err(|e| with_path(path, &e))?;
        let mut removed_stale = false;
        loop {
            // SAFETY: `fd` is an open socket; `addr` is a valid `sockaddr_un` that outlives
            // the call and `addr_len` is no larger than it.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const addr).cast::<libc::sockaddr>(),
                    addr_len,
                )
            };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EADDRINUSE) || removed_stale {
                return Err(with_path(path, &err));
            }
            remove_if_stale(path, &addr, addr_len)?;
            removed_stale = true;
        }
        // From here on the file is ours: dropping `listener` on an error removes it.
        let listener = SeqpacketListener {
            fd,
            path: path.to_owned(),
            file_id: fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino())),
        };
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| with_path(path, &e))?;
        // SAFETY: `listener.fd` is an open, bound socket.
        if unsafe { libc::listen(listener.fd.as_raw_fd(), BACKLOG) } != 0 {
            return Err(with_path(path, &io::Error::last_os_error()));
        }
        Ok(listener)
    }

    /// Waits up to `timeout` for a client to connect (`poll(2)`, then `accept4` with
    /// `SOCK_CLOEXEC`), and returns the connection (blocking) with its peer's credentials.
    /// A `timeout` too large to add to the current time waits forever.
    ///
    /// Returns `Ok(None)` when the timeout passes with no connection, and also when a signal
    /// interrupts the wait, so that the caller's loop can look at its shutdown flag.
    ///
    /// # Errors
    /// An error from the system, for example `EMFILE` when the process is out of descriptors.
    pub fn accept_timeout(
        &self,
        timeout: Duration,
    ) -> io::Result<Option<(SeqpacketConn, PeerCred)>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match poll_readable(self.fd.as_fd(), deadline)? {
                Wait::Ready => {}
                Wait::TimedOut | Wait::Interrupted => return Ok(None),
            }
            // SAFETY: `self.fd` is an open listening socket; null address pointers ask for
            // no peer address.
            let rc = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if rc >= 0 {
                // SAFETY: `accept4` returned a new descriptor that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(rc) };
                let conn = SeqpacketConn { fd };
                let cred = conn.peer_cred()?;
                return Ok(Some((conn, cred)));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // Another thread accepted it, or the client gave up: wait for the next.
                Some(libc::EAGAIN | libc::ECONNABORTED) => {}
                Some(libc::EINTR) => return Ok(None),
                _ => return Err(err),
            }
        }
    }

    /// The path the listener is bound at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SeqpacketListener {
    /// Removes the socket file if it is still the one this listener created, then closes the
    /// socket. Errors are ignored.
    fn drop(&mut self) {
        let ours = match (fs::symlink_metadata(&self.path), self.file_id) {
            (Ok(m), Some(id)) => (m.dev(), m.ino()) == id,
            _ => false,
        };
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SeqpacketListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One connected `SOCK_SEQPACKET` socket (blocking). See the [module documentation](self)
/// for the threading model.
#[derive(Debug)]
pub struct SeqpacketConn {
    fd: OwnedFd,
}

impl SeqpacketConn {
    /// Connects to the listener at `path`. Blocks while the listener's backlog is full.
    ///
    /// # Errors
    /// Every error names `path`:
    /// - [`io::ErrorKind::NotFound`], "PATH: no server socket (is aisexec running?)";
    /// - [`io::ErrorKind::ConnectionRefused`], "PATH: nobody is listening" (a stale socket
    ///   file);
    /// - [`io::ErrorKind::PermissionDenied`], "PATH: permission denied";
    /// - [`io::ErrorKind::InvalidInput`] for a path that does not fit in `sockaddr_un`;
    /// - any other error from the system, with the path in front of its message.
    pub fn connect(path: &Path) -> io::Result<SeqpacketConn> {
        let (addr, addr_len) = unix_addr(path)?;
        let fd = new_socket(0).map_err(|e| with_path(path, &e))?;
        if let Err(err) = connect_fd(fd.as_fd(), &addr, addr_len) {
            let msg = |m: &str| format!("{}: {m}", path.display());
            return Err(match err.raw_os_error() {
                Some(libc::ENOENT) => io::Error::new(
                    io::ErrorKind::NotFound,
                    msg("no server socket (is aisexec running?)"),
                ),
                Some(libc::ECONNREFUSED) => {
                    io::Error::new(io::ErrorKind::ConnectionRefused, msg("nobody is listening"))
                }
                Some(libc::EACCES) => {
                    io::Error::new(io::ErrorKind::PermissionDenied, msg("permission denied"))
                }
                _ => with_path(path, &err),
            });
        }
        Ok(SeqpacketConn { fd })
    }

    /// A pair of connected sockets (`socketpair(2)`), for tests.
    ///
    /// # Errors
    /// An error from the system, for example `EMFILE`.
    pub fn pair() -> io::Result<(SeqpacketConn, SeqpacketConn)> {
        let mut fds: [c_int; 2] = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors `socketpair` writes.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `socketpair` succeeded, so both are new descriptors that nothing else owns.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((SeqpacketConn { fd: a }, SeqpacketConn { fd: b }))
    }

    /// The credentials of the process at the other end, as the kernel recorded them when the
    /// connection was made (`SO_PEERCRED`).
    ///
    /// # Errors
    /// An error from the system.
    pub fn peer_cred(&self) -> io::Result<PeerCred> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = socklen_of::<libc::ucred>();
        // SAFETY: `self.fd` is an open socket; the pointer and `len` describe `cred`, a plain
        // struct the kernel fills.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast::<c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PeerCred {
            pid: u32::try_from(cred.pid).unwrap_or(0),
            uid: cred.uid,
            gid: cred.gid,
        })
    }

    /// The supplementary groups of the process at the other end, as recorded when the
    /// connection was made (`SO_PEERGROUPS`, Linux 4.13 or later).
    ///
    /// # Errors
    /// An error from the system; `ENOPROTOOPT` on kernels older than 4.13.
    pub fn peer_groups(&self) -> io::Result<Vec<u32>> {
        const GID_SIZE: usize = mem::size_of::<libc::gid_t>();
        let mut groups: Vec<libc::gid_t> = vec![0; 16];
        loop {
            let mut len = libc::socklen_t::try_from(groups.len() * GID_SIZE)
                .map_err(|_| io::Error::other("too many supplementary groups"))?;
            // SAFETY: `self.fd` is an open socket; the pointer and `len` describe the
            // initialised buffer of `groups`, which the kernel fills with plain integers.
            let rc = unsafe {
                libc::getsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_PEERGROUPS,
                    groups.as_mut_ptr().cast::<c_void>(),
                    &mut len,
                )
            };
            let needed = len as usize / GID_SIZE;
            if rc == 0 {
                groups.truncate(needed);
                return Ok(groups);
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ERANGE) {
                return Err(err);
            }
            // The kernel wrote the size it needs into `len`.
            let grow = needed.max(groups.len() * 2);
            groups.resize(grow, 0);
        }
    }

    /// Sends one packet made of the concatenation of `parts` (`sendmsg` with one `iovec` per
    /// part, `MSG_NOSIGNAL`), blocking until the socket has room for it. A packet is sent
    /// whole or not at all. Retries when a signal interrupts the call.
    ///
    /// # Errors
    /// - [`io::ErrorKind::InvalidInput`] for an empty packet (the receiver would take it for
    ///   [`Recv::Closed`]), for more than 1024 parts, and, with "packet of N bytes is larger
    ///   than the socket allows", for a packet larger than the send buffer (see
    ///   [`send_buffer_size`](Self::send_buffer_size));
    /// - [`io::ErrorKind::BrokenPipe`] when the peer has closed the connection;
    /// - any other error from the system.
    pub fn send(&self, parts: &[&[u8]]) -> io::Result<()> {
        self.send_flags(parts, 0).map(|_| ())
    }

    /// As [`send`](Self::send), but never blocks (`MSG_DONTWAIT`): returns `Ok(false)`, with
    /// nothing sent, when the socket buffer has no room for the packet now.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn try_send(&self, parts: &[&[u8]]) -> io::Result<bool> {
        self.send_flags(parts, libc::MSG_DONTWAIT)
    }

    fn send_flags(&self, parts: &[&[u8]], flags: c_int) -> io::Result<bool> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty packet: the receiver would take it for a closed connection",
            ));
        }
        if parts.len() > MAX_PARTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "packet of {} parts: at most {MAX_PARTS} are allowed",
                    parts.len()
                ),
            ));
        }
        const EMPTY: libc::iovec = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        let mut inline = [EMPTY; INLINE_PARTS];
        let mut heap = Vec::new();
        let iov: &mut [libc::iovec] = if parts.len() <= INLINE_PARTS {
            &mut inline[..parts.len()]
        } else {
            heap.resize(parts.len(), EMPTY);
            &mut heap
        };
        for (v, p) in iov.iter_mut().zip(parts) {
            // The kernel only reads through `iov_base` for a send.
            v.iov_base = p.as_ptr().cast_mut().cast::<c_void>();
            v.iov_len = p.len();
        }
        // SAFETY: `msghdr` is integers and raw pointers, for which all-zero bytes are valid
        // (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        loop {
            // SAFETY: `self.fd` is an open socket; `msg` points at `iov.len()` iovecs, each
            // describing a live `&[u8]` from `parts`, all borrowed for the whole call; there is
            // no address and no control data.
            let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, flags | libc::MSG_NOSIGNAL) };
            if n >= 0 {
                debug_assert_eq!(
                    n.unsigned_abs(),
                    total,
                    "SEQPACKET sends are all or nothing"
                );
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) if flags & libc::MSG_DONTWAIT != 0 => return Ok(false),
                Some(libc::EMSGSIZE) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("packet of {total} bytes is larger than the socket allows"),
                    ));
                }
                Some(libc::EPIPE | libc::ECONNRESET) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the peer closed the connection",
                    ));
                }
                _ => return Err(err),
            }
        }
    }

    /// Receives one packet into `buf`, blocking until one arrives or the connection closes
    /// (`recv` with `MSG_TRUNC`, so the full length of a packet too large for `buf` is
    /// known). Retries when a signal interrupts the call.
    ///
    /// A connection reset by the peer (it closed with packets we sent still unread) is
    /// reported as [`Recv::Closed`], like an orderly close.
    ///
    /// # Errors
    /// An unexpected error from the system.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        loop {
            if let Some(r) = self.recv_flags(buf, 0)? {
                return Ok(r);
            }
        }
    }

    /// Waits up to `timeout` (`None`: forever) for a packet with `poll(2)`, then receives it
    /// as [`recv`](Self::recv) does. Returns `Ok(None)` when the timeout passes first. A
    /// signal does not end the wait early; a `timeout` too large to add to the current time
    /// waits forever.
    ///
    /// # Errors
    /// An unexpected error from the system.
    pub fn recv_timeout(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<Recv>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            match poll_readable(self.fd.as_fd(), deadline)? {
                Wait::Ready => {}
                Wait::Interrupted => continue,
                Wait::TimedOut => return Ok(None),
            }
            // Non-blocking: another thread may have taken the packet since `poll`.
            if let Some(r) = self.recv_flags(buf, libc::MSG_DONTWAIT)? {
                return Ok(Some(r));
            }
        }
    }

    /// Receives one packet if one is waiting, without blocking (`MSG_DONTWAIT`): `Ok(None)`
    /// when none is (or a signal interrupted the call), otherwise as [`recv`](Self::recv).
    ///
    /// # Errors
    /// An unexpected error from the system.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Recv>> {
        self.recv_flags(buf, libc::MSG_DONTWAIT)
    }

    /// One `recv`; `Ok(None)` when it was interrupted or, with `MSG_DONTWAIT`, would block.
    fn recv_flags(&self, buf: &mut [u8], flags: c_int) -> io::Result<Option<Recv>> {
        // SAFETY: `self.fd` is an open socket; the pointer and length describe `buf`, which
        // is exclusively borrowed for the call.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                flags | libc::MSG_TRUNC,
            )
        };
        if n > 0 {
            let n = n.unsigned_abs();
            return Ok(Some(if n > buf.len() {
                Recv::Truncated(n)
            } else {
                Recv::Packet(n)
            }));
        }
        if n == 0 {
            return Ok(Some(Recv::Closed));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => Ok(None),
            Some(libc::EAGAIN) if flags & libc::MSG_DONTWAIT != 0 => Ok(None),
            Some(libc::ECONNRESET) => Ok(Some(Recv::Closed)),
            _ => Err(err),
        }
    }

    /// Sends one packet made of `parts` with the descriptor `fd` attached (`SCM_RIGHTS`):
    /// the peer receives its own descriptor of the same open file
    /// ([`try_recv_with_fd`](Self::try_recv_with_fd)). Blocks until the socket has room.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_with_fd(&self, parts: &[&[u8]], fd: BorrowedFd<'_>) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 || parts.len() > INLINE_PARTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a packet with a descriptor needs 1 to 8 non-empty parts",
            ));
        }
        const EMPTY: libc::iovec = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        let mut iov = [EMPTY; INLINE_PARTS];
        for (v, p) in iov.iter_mut().zip(parts) {
            v.iov_base = p.as_ptr().cast_mut().cast::<c_void>();
            v.iov_len = p.len();
        }
        let raw: c_int = fd.as_raw_fd();
        // Room for one `cmsghdr` carrying one descriptor, aligned for `cmsghdr`.
        let mut control = [0u64; CMSG_WORDS];
        // SAFETY: `msghdr` is integers and raw pointers, for which all-zero bytes are valid.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = parts.len() as _;
        msg.msg_control = control.as_mut_ptr().cast::<c_void>();
        // SAFETY: `CMSG_SPACE` is arithmetic on its argument.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<c_int>() as u32) } as _;
        // SAFETY: `msg` has a control buffer of `msg_controllen` bytes (checked against
        // `control`'s size by `CMSG_WORDS`), so the first header is inside it; its data has
        // room for one `c_int`, written unaligned.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<c_int>() as u32) as _;
            ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), raw);
        }
        loop {
            // SAFETY: `self.fd` is an open socket; `msg` points at `parts.len()` iovecs over
            // live slices and at a control buffer with one `SCM_RIGHTS` header naming `fd`,
            // which is open for the whole call.
            let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EPIPE | libc::ECONNRESET) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the peer closed the connection",
                    ));
                }
                _ => return Err(err),
            }
        }
    }

    /// As [`try_recv`](Self::try_recv), also taking a descriptor the peer attached
    /// ([`send_with_fd`](Self::send_with_fd)): received close-on-exec; any further
    /// descriptors in the same packet are closed, so a peer cannot leave descriptors in this
    /// process by sending them unasked.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_with_fd(&self, buf: &mut [u8]) -> io::Result<Option<(Recv, Option<OwnedFd>)>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<c_void>(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; CMSG_WORDS_RECV];
        // SAFETY: `msghdr` is integers and raw pointers, for which all-zero bytes are valid.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast::<c_void>();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: `self.fd` is an open socket; `msg` describes `buf` (exclusively borrowed)
        // and `control`, both live for the call.
        let n = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &raw mut msg,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC,
            )
        };
        let mut first: Option<OwnedFd> = None;
        if n >= 0 && msg.msg_controllen > 0 {
            // SAFETY: the kernel filled `msg_controllen` bytes of `control` with well-formed
            // control messages; the macros walk them within that length.
            let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
            while !cmsg.is_null() {
                // SAFETY: `cmsg` is a header inside the control data (checked by the macros).
                let (level, kind, len) =
                    unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
                if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                    // SAFETY: `CMSG_LEN(0)` is arithmetic.
                    let data_len = len - unsafe { libc::CMSG_LEN(0) } as usize;
                    let count = data_len / mem::size_of::<c_int>();
                    for i in 0..count {
                        // SAFETY: the data of an `SCM_RIGHTS` header is `count` descriptors,
                        // read unaligned; each is a new descriptor this process now owns.
                        let fd = unsafe {
                            let p = libc::CMSG_DATA(cmsg).cast::<c_int>().add(i);
                            OwnedFd::from_raw_fd(ptr::read_unaligned(p))
                        };
                        if first.is_none() {
                            first = Some(fd);
                        }
                        // Others are dropped: closed.
                    }
                }
                // SAFETY: as above; returns null after the last header.
                cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
            }
        }
        if n > 0 {
            let n = n.unsigned_abs();
            let r = if n > buf.len() {
                Recv::Truncated(n)
            } else {
                Recv::Packet(n)
            };
            return Ok(Some((r, first)));
        }
        if n == 0 {
            return Ok(Some((Recv::Closed, None)));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR | libc::EAGAIN) => Ok(None),
            Some(libc::ECONNRESET) => Ok(Some((Recv::Closed, None))),
            _ => Err(err),
        }
    }

    /// Sets the socket's send and receive buffer sizes (`SO_SNDBUF`, `SO_RCVBUF`). The kernel
    /// doubles the values for its bookkeeping and caps them at `net.core.wmem_max` and
    /// `net.core.rmem_max` (values above `i32::MAX` are capped here); a cap is not an error.
    /// The send buffer bounds the largest packet ([`send_buffer_size`](Self::send_buffer_size)).
    ///
    /// # Errors
    /// An error from the system.
    pub fn set_buffer_sizes(&self, send: usize, recv: usize) -> io::Result<()> {
        let clamp = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
        setsockopt_int(self.fd.as_fd(), libc::SO_SNDBUF, clamp(send))?;
        setsockopt_int(self.fd.as_fd(), libc::SO_RCVBUF, clamp(recv))
    }

    /// The socket's send buffer size (`SO_SNDBUF` as read back). The kernel refuses one
    /// `AF_UNIX` packet larger than about this value (Linux keeps a few dozen bytes for its
    /// own bookkeeping), so treat it, minus a small margin, as the largest packet
    /// [`send`](Self::send) can take.
    ///
    /// # Errors
    /// An error from the system.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        let v = getsockopt_int(self.fd.as_fd(), libc::SO_SNDBUF)?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// Shuts the connection down in both directions (`shutdown(SHUT_RDWR)`). A thread
    /// blocked in [`recv`](Self::recv) on this connection wakes with [`Recv::Closed`], later
    /// sends fail with [`io::ErrorKind::BrokenPipe`], and the peer sees the connection
    /// closed. The descriptor stays open until the value is dropped.
    ///
    /// # Errors
    /// An error from the system.
    pub fn shutdown(&self) -> io::Result<()> {
        // SAFETY: `self.fd` is an open socket.
        if unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsFd for SeqpacketConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SeqpacketConn {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `io::Error` of the same kind with `path` in front of the message.
fn with_path(path: &Path, err: &io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

fn socklen_of<T>() -> libc::socklen_t {
    // Socket address and option structs are a few hundred bytes at most.
    mem::size_of::<T>() as libc::socklen_t
}

/// The `sockaddr_un` for `path` and its length (up to and including the terminating NUL).
fn unix_addr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    let bytes = path.as_os_str().as_bytes();
    let mut addr = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if bytes.is_empty() {
        return invalid("empty socket path".to_owned());
    }
    if bytes.contains(&0) {
        return invalid(format!(
            "{}: socket path contains a NUL byte",
            path.display()
        ));
    }
    // Keep room for the terminating NUL.
    let max = addr.sun_path.len() - 1;
    if bytes.len() > max {
        return invalid(format!(
            "{}: socket path is {} bytes long, more than the {max} a Unix socket address holds",
            path.display(),
            bytes.len()
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as c_char;
    }
    let len = mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// A new `AF_UNIX` `SOCK_SEQPACKET` socket, close-on-exec, with `extra` type flags.
fn new_socket(extra: c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | extra,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `socket` returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `connect(2)`, retried when a signal interrupts it.
fn connect_fd(
    fd: BorrowedFd<'_>,
    addr: &libc::sockaddr_un,
    len: libc::socklen_t,
) -> io::Result<()> {
    loop {
        // SAFETY: `fd` is an open socket; `addr` is a valid `sockaddr_un`, borrowed for the
        // call, and `len` is no larger than it.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                ptr::from_ref(addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Called when `bind` found something at `path`: removes it if it is a socket nobody listens
/// on, fails if it is a live socket or not a socket. Returns `Ok` when the path is free to
/// bind again.
fn remove_if_stale(path: &Path, addr: &libc::sockaddr_un, len: libc::socklen_t) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        // Gone since `bind` looked: try again.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(path, &e)),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{}: the path exists and is not a socket", path.display()),
        ));
    }
    // Non-blocking, so that a live server with a full backlog answers EAGAIN instead of
    // making us wait.
    let probe = new_socket(libc::SOCK_NONBLOCK).map_err(|e| with_path(path, &e))?;
    let in_use = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{}: {what}", path.display()),
        ))
    };
    match connect_fd(probe.as_fd(), addr, len) {
        Ok(()) => in_use("another server is listening there"),
        Err(e) => match e.raw_os_error() {
            Some(libc::EAGAIN) => in_use("another server is listening there"),
            // A live socket of another type (stream or datagram).
            Some(libc::EPROTOTYPE) => in_use("a socket of another type is in use there"),
            Some(libc::ECONNREFUSED) => match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(with_path(path, &e)),
            },
            _ => Err(with_path(path, &e)),
        },
    }
}

fn setsockopt_int(fd: BorrowedFd<'_>, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the pointer and length describe `value`.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const value).cast::<c_void>(),
            socklen_of::<c_int>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt_int(fd: BorrowedFd<'_>, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = socklen_of::<c_int>();
    // SAFETY: `fd` is an open socket; the pointer and `len` describe `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw mut value).cast::<c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// How a [`poll_readable`] ended.
enum Wait {
    /// The descriptor is readable (or has hung up, or has an error pending).
    Ready,
    /// `deadline` passed.
    TimedOut,
    /// A signal interrupted `poll`.
    Interrupted,
}

/// Waits with `ppoll(2)` until `fd` is readable or `deadline` (`None`: never) passes. The
/// timeout is in nanoseconds, not `poll`'s milliseconds: a caller waiting 200 µs for its next
/// send must not sleep a whole millisecond (a load generator doing that sends in step with
/// the deliveries that wake it, not when its messages are due).
fn poll_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Wait> {
    loop {
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
            }
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid, exclusively borrowed `pollfd`; `ts_ptr` is null or
        // points to `ts`, which outlives the call; no signal mask is passed.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) };
        if rc > 0 {
            return Ok(Wait::Ready);
        }
        if rc == 0 {
            if deadline.is_some_and(|d| Instant::now() < d) {
                continue;
            }
            return Ok(Wait::TimedOut);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINTR) {
            return Ok(Wait::Interrupted);
        }
        return Err(err);
    }
}
