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
}
