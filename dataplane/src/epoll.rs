//! [`Epoll`]: one thread waits on many descriptors (`epoll(7)`, level-triggered). The AIS
//! executive's IPC loop serves every client connection, the listening socket and its
//! [`crate::wake::Waker`] from one thread with it.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// What a registered descriptor is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Readable (or the peer hung up).
    pub read: bool,
    /// Writable.
    pub write: bool,
}

impl Interest {
    /// Readable only.
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };

    fn bits(self) -> u32 {
        let mut bits = 0;
        if self.read {
            bits |= libc::EPOLLIN as u32;
        }
        if self.write {
            bits |= libc::EPOLLOUT as u32;
        }
        bits
    }
}

/// One readiness report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The token the descriptor was registered with.
    pub token: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// The peer hung up or the descriptor is in error: reported whatever the interest,
    /// even with none.
    pub hangup: bool,
}

/// An epoll instance. Descriptors are registered with a caller-chosen token that comes back
/// in each [`Ready`]; the caller keeps them open while registered (closing one removes it).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new instance (close-on-exec) that reports up to `batch` descriptors per wait.
    ///
    /// # Errors
    /// The operating system refused it (out of descriptors or memory).
    pub fn new(batch: usize) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes flags only and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor we just created and own exclusively.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)],
        })
    }

    /// Watches `fd` for `interest`, reporting it with `token`.
    ///
    /// # Errors
    /// `fd` is already registered, closed, or cannot be polled.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Changes what a registered `fd` is watched for (and its token).
    ///
    /// # Errors
    /// `fd` is not registered.
    pub fn modify(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Stops watching `fd`.
    ///
    /// # Errors
    /// `fd` is not registered.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, Interest::READ)
    }

    fn ctl(&self, op: i32, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: both descriptors are open (one owned, one borrowed for the call); `event` is
        // a valid epoll_event the kernel reads (and, for DEL, ignores).
        let rc =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &raw mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` (`None`: forever) for registered descriptors to be ready and
    /// appends what is ready to `out`. A signal ends the wait early with nothing ready.
    ///
    /// # Errors
    /// An unexpected error from the system.
    pub fn wait(&mut self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        let ms = timeout.map_or(-1, |t| {
            i32::try_from(t.as_millis() + u128::from(t.subsec_nanos() % 1_000_000 != 0))
                .unwrap_or(i32::MAX)
        });
        let max = i32::try_from(self.events.len()).unwrap_or(i32::MAX);
        // SAFETY: `self.events` is a valid, writable array of `max` epoll_events that the
        // kernel fills; the epoll descriptor is open.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), max, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINTR) => Ok(()),
                _ => Err(err),
            };
        }
        for e in &self.events[..n.unsigned_abs() as usize] {
            let bits = e.events;
            out.push(Ready {
                token: e.u64,
                read: bits & libc::EPOLLIN as u32 != 0,
                write: bits & libc::EPOLLOUT as u32 != 0,
                hangup: bits & (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32 != 0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::unix::SeqpacketConn;
    use crate::wake::Waker;

    #[test]
    fn reports_readable_writable_and_hangup_by_token() {
        let mut ep = Epoll::new(8).unwrap();
        let (a, b) = SeqpacketConn::pair().unwrap();
        let waker = Waker::new().unwrap();
        ep.add(a.as_fd(), 7, Interest::READ).unwrap();
        ep.add(waker.as_fd(), 1, Interest::READ).unwrap();
        let mut out = Vec::new();
        ep.wait(&mut out, Some(Duration::from_millis(10))).unwrap();
        assert!(out.is_empty(), "nothing ready yet: {out:?}");

        b.send(&[b"hi"]).unwrap();
        waker.wake();
        ep.wait(&mut out, Some(Duration::from_secs(1))).unwrap();
        out.sort_by_key(|r| r.token);
        let tokens: Vec<(u64, bool)> = out.iter().map(|r| (r.token, r.read)).collect();
        assert_eq!(tokens, [(1, true), (7, true)]);

        // Write interest on an empty send buffer is ready at once; no interest, nothing.
        out.clear();
        waker.drain();
        ep.modify(
            a.as_fd(),
            8,
            Interest {
                read: false,
                write: true,
            },
        )
        .unwrap();
        ep.wait(&mut out, Some(Duration::from_secs(1))).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].token, out[0].write, out[0].read), (8, true, false));

        // A hang-up is reported even with no interest.
        out.clear();
        ep.modify(
            a.as_fd(),
            9,
            Interest {
                read: false,
                write: false,
            },
        )
        .unwrap();
        drop(b);
        ep.wait(&mut out, Some(Duration::from_secs(1))).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].hangup && out[0].token == 9, "{out:?}");

        ep.delete(a.as_fd()).unwrap();
        out.clear();
        ep.wait(&mut out, Some(Duration::from_millis(10))).unwrap();
        assert!(out.is_empty());
        assert!(ep.delete(a.as_fd()).is_err(), "not registered any more");
    }
}
