//! Quorum, with corosync `libquorum`/`libvotequorum`'s model: whether this node's partition
//! has quorum, and a callback at every configuration change.
//!
//! The calls are [`Connection`] calls, so the [model](super) applies. An executive without a
//! `[quorum]` table runs no quorum service: [`Quorum::connect`] then fails with
//! [`AisError::NotSupported`](crate::AisError::NotSupported).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::{Connection, Error, unexpected};
use ais_proto::ipc::{Message, Reply};
use ais_proto::quorum::{Callback, QuorumProtocol, Request, Response};

pub use ais_proto::quorum::QuorumState;

/// A connection to the executive's quorum service.
#[derive(Debug)]
pub struct Quorum {
    conn: Connection<QuorumProtocol>,
}

impl Quorum {
    /// Connects to the executive at `path` (usually [`super::default_socket`]).
    ///
    /// # Errors
    /// As [`Connection::connect`]; `SA_AIS_ERR_NOT_SUPPORTED` when the executive runs no
    /// quorum service.
    pub fn connect(path: &Path) -> Result<Quorum, Error> {
        Connection::connect(path).map(|conn| Quorum { conn })
    }

    /// Wraps a quorum connection.
    pub fn from_connection(conn: Connection<QuorumProtocol>) -> Quorum {
        Quorum { conn }
    }

    /// The quorum of the current configuration (`quorum_getquorate`, `votequorum_getinfo`).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn get(&mut self) -> Result<QuorumState, Error> {
        match self.conn.call(Request::Get)? {
            Reply::Service(Response::State(s)) => Ok(s),
            other => Err(unexpected("QuorumGet", &other)),
        }
    }

    /// Starts (`true`) or stops sending a callback after every configuration change
    /// (`quorum_trackstart` / `quorum_trackstop`).
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` when stopping without tracking; otherwise as
    /// [`Connection::call`].
    pub fn track(&mut self, on: bool) -> Result<(), Error> {
        self.conn.ok(Request::Track(on))
    }

    /// The next quorum change of a tracking connection: a queued one first, else waits up to
    /// `timeout` (`None`: forever). `Ok(None)` when the time passes first.
    ///
    /// # Errors
    /// As [`Connection::next_callback`].
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<QuorumState>, Error> {
        match self.conn.next_callback(timeout)? {
            None => Ok(None),
            Some(Callback::Changed(s)) => Ok(Some(s)),
            Some(other) => Err(Error::Protocol(format!(
                "callback {} is not handled by this library",
                other.name()
            ))),
        }
    }

    /// The underlying connection.
    pub fn connection(&mut self) -> &mut Connection<QuorumProtocol> {
        &mut self.conn
    }
}

impl AsRawFd for Quorum {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Quorum {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::fake::start_service;
    use super::*;
    use crate::AisError;

    #[test]
    fn get_track_and_changes() {
        let state = QuorumState {
            quorate: true,
            ring: Bytes::from_static(b"1.8"),
            members: vec![1, 2],
            total_votes: 2,
            expected_votes: 3,
            quorum: 2,
            waiting_for_all: false,
        };
        let answer = state.clone();
        let (conn, server) = start_service::<QuorumProtocol, _>(move |exec, id, req| {
            match req {
                Request::Get => exec.reply(id, Reply::Service(Response::State(answer.clone()))),
                Request::Track(true) => {
                    exec.reply(id, Reply::Ok);
                    exec.callback(Callback::Changed(answer.clone()));
                }
                Request::Track(false) => exec.reply(id, Reply::Error(AisError::NotExist)),
            }
            true
        });
        let mut q = Quorum::from_connection(conn);
        assert_eq!(q.get().unwrap(), state);
        q.track(true).unwrap();
        assert_eq!(
            q.dispatch(Some(Duration::from_secs(5))).unwrap(),
            Some(state)
        );
        assert_eq!(
            q.track(false).unwrap_err().ais_error(),
            Some(AisError::NotExist)
        );
        drop(q);
        assert_eq!(
            server.join().unwrap(),
            [Request::Get, Request::Track(true), Request::Track(false)]
        );
    }
}
