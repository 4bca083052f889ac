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

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
