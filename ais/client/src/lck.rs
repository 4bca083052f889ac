//! Distributed locks, with SA Forum LCK B.01.01 semantics (`saLck*`).
//!
//! [`Lck::resource_open`] returns a [`ResourceHandle`] (with [`RESOURCE_CREATE`] it creates
//! the resource when missing); [`Lck::lock`] takes a PR or EX lock and returns its
//! [`LockId`] and [`LockStatus`] once it is decided (granted, refused with a status, or
//! `SA_AIS_ERR_TIMEOUT`); [`Lck::lock_async`] returns the id at once and the outcome comes
//! as [`LckEvent::Grant`]; [`Lck::unlock`] releases a granted lock; [`Lck::purge`] removes a
//! resource's orphan locks; [`Lck::resource_close`] releases the handle's locks (orphaning
//! those taken with [`LOCK_ORPHAN`]). The calls are [`Connection`] calls, so the
//! [model](super) applies: one request at a time, callbacks ([`LckEvent`]) queued while
//! waiting and handed out by [`Lck::dispatch`].
//!
//! A synchronous lock waits for the executive's answer and never times out on its own: the
//! executive measures the timeout and answers `SA_AIS_ERR_TIMEOUT` when it withdrew the
//! request, or GRANTED when the grant came first.
//!
//! # Example
//!
//! ```no_run
//! use ais_client::{self as client, lck::{self, Lck, LockStatus, Mode}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut lck = Lck::connect(&client::default_socket())?;
//! let r = lck.resource_open(b"config-file", lck::RESOURCE_CREATE)?;
//! let (id, status) = lck.lock(r, Mode::Ex, 0, 0, lck::TIME_END)?;
//! assert_eq!(status, LockStatus::Granted);
//! // ... the critical section ...
//! lck.unlock(id)?;
//! lck.resource_close(r)?;
//! # Ok(())
//! # }
//! ```

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::{AisError, Connection, Error, unexpected};
use ais_proto::ipc::{Message, Reply};
use ais_proto::lck::{Callback, LckProtocol, Request, Response};

/// A lock's cluster-wide identity (`aisctl lck ls` shows it as NODE.EPOCH.N), as
/// [`Lck::release`] names it.
pub use ais_proto::lck::LockId as ClusterLockId;
pub use ais_proto::lck::{
    LOCK_FLAGS, LOCK_NO_QUEUE, LOCK_ORPHAN, LockInfo, LockStatus, MAX_NAME, Mode,
    OPT_DEADLOCK_DETECTION, OPT_ORPHAN_LOCKS, RESOURCE_CREATE, ResourceInfo, TIME_END,
};

/// The executive's number for one open of one resource by one connection
/// (`SaLckResourceHandleT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceHandle(pub u64);

/// A lock's id (`SaLckLockIdT`), valid on the connection that took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockId(pub u64);

/// A callback of an LCK connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LckEvent {
    /// The outcome of [`Lck::resource_open_async`] (`saLckResourceOpenCallback`).
    Open {
        /// The caller's number.
        invocation: u64,
        /// The handle, or why not.
        result: Result<ResourceHandle, AisError>,
    },
    /// The outcome of [`Lck::lock_async`] (`saLckLockGrantCallback`).
    Grant {
        /// The caller's number.
        invocation: u64,
        /// The lock.
        lock: LockId,
        /// Its status, or why the request was not decided (`SA_AIS_ERR_TRY_AGAIN`: lost in a
        /// membership change; `SA_AIS_ERR_BAD_HANDLE`: its handle was closed).
        result: Result<LockStatus, AisError>,
    },
    /// Another request waits for a lock of this connection (`saLckLockWaiterCallback`).
    Waiter {
        /// The waiter's signal.
        waiter_signal: u64,
        /// The held lock.
        lock: LockId,
        /// Its mode.
        mode_held: Mode,
        /// The mode asked for.
        mode_requested: Mode,
    },
    /// The outcome of [`Lck::unlock_async`] (`saLckResourceUnlockCallback`).
    Unlock {
        /// The caller's number.
        invocation: u64,
        /// Done, or why not.
        result: Result<(), AisError>,
    },
}

/// A connection to the executive's lock service.
#[derive(Debug)]
pub struct Lck {
    conn: Connection<LckProtocol>,
}

impl Lck {
    /// Connects to the executive at `path` (usually [`super::default_socket`]).
    ///
    /// # Errors
    /// As [`Connection::connect`].
    pub fn connect(path: &Path) -> Result<Lck, Error> {
        Connection::connect(path).map(|conn| Lck { conn })
    }

    /// Wraps an LCK connection.
    pub fn from_connection(conn: Connection<LckProtocol>) -> Lck {
        Lck { conn }
    }

    /// `saLckResourceOpen`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_INVALID_PARAM` an empty name or one over [`MAX_NAME`] bytes;
    /// `SA_AIS_ERR_BAD_FLAGS`; `SA_AIS_ERR_NOT_EXIST` no such resource without
    /// [`RESOURCE_CREATE`]; `SA_AIS_ERR_NO_RESOURCES` the cluster's resource limit;
    /// otherwise as [`Connection::call`].
    pub fn resource_open(&mut self, name: &[u8], flags: u8) -> Result<ResourceHandle, Error> {
        let req = Request::Open {
            name: bytes::Bytes::copy_from_slice(name),
            flags,
        };
        match self.conn.call(req)? {
            Reply::Service(Response::Opened { handle }) => Ok(ResourceHandle(handle)),
            other => Err(unexpected("LckResourceOpen", &other)),
        }
    }

    /// `saLckResourceOpenAsync`: the handle comes as [`LckEvent::Open`].
    ///
    /// # Errors
    /// As [`Lck::resource_open`] for what is checked at once.
    pub fn resource_open_async(
        &mut self,
        name: &[u8],
        flags: u8,
        invocation: u64,
    ) -> Result<(), Error> {
        self.conn.ok(Request::OpenAsync {
            name: bytes::Bytes::copy_from_slice(name),
            flags,
            invocation,
        })
    }

    /// `saLckResourceClose`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn resource_close(&mut self, handle: ResourceHandle) -> Result<(), Error> {
        self.conn.ok(Request::Close { handle: handle.0 })
    }

    /// `saLckResourceLock`: waits until the request is decided. `timeout` in nanoseconds
    /// ([`TIME_END`]: forever).
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; `SA_AIS_ERR_INVALID_PARAM` an unknown flag;
    /// `SA_AIS_ERR_TIMEOUT` not granted in time; otherwise as [`Connection::call`].
    pub fn lock(
        &mut self,
        handle: ResourceHandle,
        mode: Mode,
        flags: u32,
        waiter_signal: u64,
        timeout: u64,
    ) -> Result<(LockId, LockStatus), Error> {
        let req = Request::Lock {
            handle: handle.0,
            mode: mode.code(),
            flags,
            waiter_signal,
            timeout,
        };
        match self.conn.call(req)? {
            Reply::Service(Response::Locked { lock_id, status }) => Ok((LockId(lock_id), status)),
            other => Err(unexpected("LckResourceLock", &other)),
        }
    }

    /// `saLckResourceLockAsync`: the lock's id now, its outcome as [`LckEvent::Grant`].
    ///
    /// # Errors
    /// As [`Lck::lock`] for what is checked at once.
    pub fn lock_async(
        &mut self,
        handle: ResourceHandle,
        mode: Mode,
        flags: u32,
        waiter_signal: u64,
        invocation: u64,
    ) -> Result<LockId, Error> {
        let req = Request::LockAsync {
            handle: handle.0,
            mode: mode.code(),
            flags,
            waiter_signal,
            invocation,
        };
        match self.conn.call(req)? {
            Reply::Service(Response::LockId { lock_id }) => Ok(LockId(lock_id)),
            other => Err(unexpected("LckResourceLockAsync", &other)),
        }
    }

    /// `saLckResourceUnlock`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` an unknown lock, another connection's, one not granted, or one
    /// lost when this node's partition lost a merge; otherwise as [`Connection::call`].
    pub fn unlock(&mut self, lock: LockId) -> Result<(), Error> {
        self.conn.ok(Request::Unlock { lock_id: lock.0 })
    }

    /// `saLckResourceUnlockAsync`: the outcome as [`LckEvent::Unlock`].
    ///
    /// # Errors
    /// As [`Lck::unlock`] for what is checked at once.
    pub fn unlock_async(&mut self, lock: LockId, invocation: u64) -> Result<(), Error> {
        self.conn.ok(Request::UnlockAsync {
            lock_id: lock.0,
            invocation,
        })
    }

    /// `saLckLockPurge`: the resource's orphan locks go.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn purge(&mut self, handle: ResourceHandle) -> Result<(), Error> {
        self.conn.ok(Request::Purge { handle: handle.0 })
    }

    /// `saLckOptionCheck`: the `OPT_*` bits.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn option_check(&mut self) -> Result<u64, Error> {
        match self.conn.call(Request::OptionCheck)? {
            Reply::Service(Response::Options(bits)) => Ok(bits),
            other => Err(unexpected("LckOptionCheck", &other)),
        }
    }

    /// An operator's forced release of the granted lock `lock` of resource `name`, whoever
    /// holds it, a live holder or none (an orphan): `aisctl lck unlock`. Not a B.01.01 call.
    /// A live holder is not told; its own unlock later gets `SA_AIS_ERR_NOT_EXIST`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` (no such granted lock of `name`), `SA_AIS_ERR_BAD_OPERATION`
    /// (the lock is queued, not granted), `SA_AIS_ERR_TRY_AGAIN` (no quorum, or a
    /// configuration change); otherwise as [`Connection::call`].
    pub fn release(&mut self, name: &[u8], lock: ClusterLockId) -> Result<(), Error> {
        self.conn.ok(Request::Release {
            name: bytes::Bytes::copy_from_slice(name),
            lock,
        })
    }

    /// The lock table (`aisctl lck ls`): resources by name, and how many were left out.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn list(&mut self) -> Result<(Vec<ResourceInfo>, u32), Error> {
        match self.conn.call(Request::List)? {
            Reply::Service(Response::List { resources, more }) => Ok((resources, more)),
            other => Err(unexpected("LckList", &other)),
        }
    }

    /// The next callback: a queued one first, else waits up to `timeout` (`None`: forever).
    /// `Ok(None)` when the time passes first.
    ///
    /// # Errors
    /// As [`Connection::next_callback`].
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<LckEvent>, Error> {
        Ok(match self.conn.next_callback(timeout)? {
            None => None,
            Some(Callback::Open { invocation, result }) => Some(LckEvent::Open {
                invocation,
                result: result.map(ResourceHandle),
            }),
            Some(Callback::Grant {
                invocation,
                lock_id,
                status,
                error,
            }) => Some(LckEvent::Grant {
                invocation,
                lock: LockId(lock_id),
                result: error.map(|()| status),
            }),
            Some(Callback::Waiter {
                waiter_signal,
                lock_id,
                mode_held,
                mode_requested,
            }) => Some(LckEvent::Waiter {
                waiter_signal,
                lock: LockId(lock_id),
                mode_held,
                mode_requested,
            }),
            Some(Callback::Unlock { invocation, result }) => {
                Some(LckEvent::Unlock { invocation, result })
            }
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "callback {} is not handled by this library",
                    other.name()
                )));
            }
        })
    }

    /// The underlying connection.
    pub fn connection(&mut self) -> &mut Connection<LckProtocol> {
        &mut self.conn
    }
}

impl AsRawFd for Lck {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Lck {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::start_service;
    use super::*;

    #[test]
    fn calls_map_to_requests_and_answers() {
        let (conn, server) = start_service::<LckProtocol, _>(move |exec, id, req| {
            match &req {
                Request::Open { .. } => {
                    exec.reply(id, Reply::Service(Response::Opened { handle: 3 }))
                }
                Request::Lock { .. } => exec.reply(
                    id,
                    Reply::Service(Response::Locked {
                        lock_id: 5,
                        status: LockStatus::Granted,
                    }),
                ),
                Request::LockAsync { invocation, .. } => {
                    exec.reply(id, Reply::Service(Response::LockId { lock_id: 6 }));
                    exec.callback(Callback::Grant {
                        invocation: *invocation,
                        lock_id: 6,
                        status: LockStatus::NotQueued,
                        error: Ok(()),
                    });
                }
                Request::Unlock { .. } => exec.reply(id, Reply::Error(AisError::NotExist)),
                _ => exec.reply(id, Reply::Ok),
            }
            true
        });
        let mut l = Lck::from_connection(conn);
        let h = l.resource_open(b"r", RESOURCE_CREATE).unwrap();
        assert_eq!(h, ResourceHandle(3));
        assert_eq!(
            l.lock(h, Mode::Ex, 0, 1, TIME_END).unwrap(),
            (LockId(5), LockStatus::Granted)
        );
        assert_eq!(
            l.lock_async(h, Mode::Pr, LOCK_NO_QUEUE, 1, 9).unwrap(),
            LockId(6)
        );
        assert_eq!(
            l.dispatch(Some(Duration::from_secs(5))).unwrap(),
            Some(LckEvent::Grant {
                invocation: 9,
                lock: LockId(6),
                result: Ok(LockStatus::NotQueued)
            })
        );
        assert_eq!(
            l.unlock(LockId(5)).unwrap_err().ais_error(),
            Some(AisError::NotExist)
        );
        l.resource_close(h).unwrap();
        drop(l);
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[4], Request::Close { handle: 3 });
    }
}
