//! [`Waker`]: wakes a thread blocked in [`crate::Transport::wait`] from another thread (an
//! `eventfd(2)` the transport polls next to its sockets). The Totem driver gives it to its
//! submitters, so a message submitted while the driver thread sleeps is taken at once instead
//! of after the driver's idle timeout.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// A cloneable handle that makes the owning transport's `wait` return. Cheap to clone; waking
/// is one 8-byte `write(2)`, and repeated wakes before the transport drains them coalesce.
#[derive(Debug, Clone)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// A new waker (a non-blocking, close-on-exec eventfd).
    ///
    /// # Errors
    /// The operating system refused the eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1;
        // no pointers are involved.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor we just created and own exclusively.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd: Arc::new(fd) })
    }

    /// Makes the transport's current or next `wait` return. Never blocks; errors (a counter
    /// at its maximum, which means a wake is already pending) are ignored.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, a valid readable buffer of that length, to our
        // own open eventfd.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&raw const one).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Clears pending wakes (the transport calls it after its poll saw the eventfd readable).
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into `value`, a valid writable buffer of that length,
        // from our own non-blocking eventfd (EAGAIN when nothing is pending, ignored).
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&raw mut value).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

impl Waker {
    /// Sleeps until woken or until `timeout` passes (nanosecond resolution, plus the kernel's
    /// timer slack), then clears pending wakes. Returns whether a wake ended the sleep. For
    /// transports without descriptors of their own (DPDK's virtual devices), whose idle
    /// back-off sleeps here instead of in `nanosleep` so a submit ends it at once.
    ///
    /// # Errors
    /// `ppoll` failed for another reason than a signal (which ends the sleep early, `Ok`).
    pub fn sleep(&self, timeout: std::time::Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `pfd` is one valid pollfd for reads and writes during the call; `ts` outlives
        // the call; a null signal mask leaves the mask unchanged.
        let rc = unsafe { libc::ppoll(&raw mut pfd, 1, &raw const ts, std::ptr::null()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        let woken = pfd.revents & libc::POLLIN != 0;
        if woken {
            self.drain();
        }
        Ok(woken)
    }
}

/// Most descriptors [`wait_any`] polls (four networks of two sockets each, and a waker).
pub const WAIT_ANY_MAX: usize = 9;

/// Blocks until one of `fds` is readable, `waker` is woken, or `timeout` passes (nanosecond
/// resolution; `None` waits for ever); clears the waker's pending wakes if it ended the wait.
/// For a thread that waits on several transports at once (see
/// [`crate::Transport::wait_fds`]). A signal ends the wait early without an error.
///
/// # Errors
/// More than [`WAIT_ANY_MAX`] descriptors in all (`InvalidInput`), or `ppoll` failed for
/// another reason than a signal. The caller guarantees that `fds` are open descriptors (a
/// closed one is reported by `ppoll` as `POLLNVAL`, which ends the wait, never as undefined
/// behaviour).
pub fn wait_any(
    fds: &[RawFd],
    waker: Option<&Waker>,
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    let empty = libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    };
    let mut pfds = [empty; WAIT_ANY_MAX];
    let mut n = 0;
    for fd in waker
        .map(AsRawFd::as_raw_fd)
        .into_iter()
        .chain(fds.iter().copied())
    {
        let Some(slot) = pfds.get_mut(n) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many descriptors to wait on",
            ));
        };
        *slot = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        n += 1;
    }
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `pfds` is an array of at least `n` pollfd structs valid for reads and writes
    // during the call (ppoll reports a closed descriptor as POLLNVAL, it does not touch
    // memory through it); `ts_ptr` is null or points to a timespec that outlives the call;
    // a null signal mask leaves the mask unchanged.
    let rc = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            n as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if let Some(w) = waker
        && pfds[0].revents & libc::POLLIN != 0
    {
        w.drain();
    }
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

impl std::os::fd::AsFd for Waker {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_ends_on_wake_or_timeout() {
        let w = Waker::new().unwrap();
        let t = std::time::Instant::now();
        assert!(!w.sleep(std::time::Duration::from_millis(20)).unwrap());
        assert!(t.elapsed() >= std::time::Duration::from_millis(20));
        let other = w.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            other.wake();
        });
        // Woken long before the 60 s timeout; the wake is consumed.
        assert!(w.sleep(std::time::Duration::from_secs(60)).unwrap());
        h.join().unwrap();
        assert!(!w.sleep(std::time::Duration::ZERO).unwrap());
    }

    #[test]
    fn wake_makes_the_fd_readable_and_drain_clears_it() {
        let w = Waker::new().unwrap();
        let readable = |w: &Waker| {
            let mut pfd = libc::pollfd {
                fd: w.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout.
            unsafe { libc::poll(&raw mut pfd, 1, 0) == 1 }
        };
        assert!(!readable(&w));
        w.clone().wake();
        w.wake();
        assert!(readable(&w));
        w.drain();
        assert!(!readable(&w));
    }

    #[test]
    fn wait_any_ends_on_the_readable_one_a_wake_or_the_timeout() {
        use std::net::UdpSocket;
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fds = [a.as_raw_fd(), b.as_raw_fd()];
        let w = Waker::new().unwrap();
        let t = std::time::Instant::now();
        wait_any(&fds, Some(&w), Some(std::time::Duration::from_millis(20))).unwrap();
        assert!(t.elapsed() >= std::time::Duration::from_millis(20));
        // A datagram on the second socket ends a 60 s wait.
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", b.local_addr().unwrap()).unwrap();
        let t = std::time::Instant::now();
        wait_any(&fds, Some(&w), Some(std::time::Duration::from_secs(60))).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(30));
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(&mut buf).unwrap(), 1);
        // A wake too, and it is consumed.
        w.wake();
        wait_any(&fds, Some(&w), Some(std::time::Duration::from_secs(60))).unwrap();
        assert!(!w.sleep(std::time::Duration::ZERO).unwrap());
        let many = [a.as_raw_fd(); WAIT_ANY_MAX];
        assert_eq!(
            wait_any(&many, Some(&w), None).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
