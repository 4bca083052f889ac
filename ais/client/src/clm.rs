//! Cluster membership, with SA Forum CLM B.01.01 semantics (`saClm*`).
//!
//! [`Clm::track`] with [`TRACK_CURRENT`] answers the current view; with [`TRACK_CHANGES`]
//! (every member and every change) or [`TRACK_CHANGES_ONLY`] (the changes only) a
//! [`ClmEvent::Track`] follows every membership change; [`Clm::node_get`] reads one node. A
//! view's number is the Totem ring's sequence number / 4: the same at every member of a
//! configuration (and repeated by concurrent partitions). The calls are [`Connection`] calls,
//! so the [model](super) applies; while the executive re-synchronises after a membership
//! change they wait until the new view is built.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::{AisError, Connection, Error, unexpected};
use ais_proto::clm::{Callback, ClmProtocol, Request, Response};
use ais_proto::ipc::{Message, Reply};

pub use ais_proto::clm::{
    Change, ClusterNode, LOCAL_NODE_ID, NodeAddress, TRACK_CHANGES, TRACK_CHANGES_ONLY,
    TRACK_CURRENT, View,
};

/// A callback of a CLM connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClmEvent {
    /// The membership changed (`saClmClusterTrackCallback`).
    Track(View),
    /// The answer to [`Clm::node_get_async`] (`saClmClusterNodeGetCallback`).
    NodeGet {
        /// The caller's number.
        invocation: u64,
        /// The node, or why not.
        result: Result<ClusterNode, AisError>,
    },
}

/// A connection to the executive's CLM service.
#[derive(Debug)]
pub struct Clm {
    conn: Connection<ClmProtocol>,
}

impl Clm {
    /// Connects to the executive at `path` (usually [`super::default_socket`]).
    ///
    /// # Errors
    /// As [`Connection::connect`].
    pub fn connect(path: &Path) -> Result<Clm, Error> {
        Connection::connect(path).map(|conn| Clm { conn })
    }

    /// Wraps a CLM connection.
    pub fn from_connection(conn: Connection<ClmProtocol>) -> Clm {
        Clm { conn }
    }

    /// `saClmClusterTrack`: `flags` of [`TRACK_CURRENT`], [`TRACK_CHANGES`],
    /// [`TRACK_CHANGES_ONLY`]. Returns the current view when `TRACK_CURRENT` is given. A new
    /// call replaces the tracking flags.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_FLAGS` for no flag, an unknown bit, or `CHANGES` with `CHANGES_ONLY`
    /// (checked here); otherwise as [`Connection::call`].
    pub fn track(&mut self, flags: u8) -> Result<Option<View>, Error> {
        let changes = flags & (TRACK_CHANGES | TRACK_CHANGES_ONLY);
        if flags == 0
            || flags & !(TRACK_CURRENT | TRACK_CHANGES | TRACK_CHANGES_ONLY) != 0
            || changes == TRACK_CHANGES | TRACK_CHANGES_ONLY
        {
            return Err(Error::Ais(AisError::BadFlags));
        }
        match self.conn.call(Request::Track { flags })? {
            Reply::Service(Response::View(v)) if flags & TRACK_CURRENT != 0 => Ok(Some(v)),
            Reply::Ok if flags & TRACK_CURRENT == 0 => Ok(None),
            other => Err(unexpected("ClmTrack", &other)),
        }
    }

    /// `saClmClusterTrackStop`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` when not tracking; otherwise as [`Connection::call`].
    pub fn track_stop(&mut self) -> Result<(), Error> {
        self.conn.ok(Request::TrackStop)
    }

    /// `saClmClusterNodeGet`: node `node_id` ([`LOCAL_NODE_ID`]: this one). `timeout` is the
    /// caller's bound; zero is refused as the specification says (the answer comes from the
    /// local executive without waiting for the ring, except while it re-synchronises).
    ///
    /// # Errors
    /// `SA_AIS_ERR_TIMEOUT` for a zero timeout (checked here); `SA_AIS_ERR_NOT_EXIST` for a
    /// node that is not a member; otherwise as [`Connection::call`].
    pub fn node_get(&mut self, node_id: u32, timeout: Duration) -> Result<ClusterNode, Error> {
        if timeout.is_zero() {
            return Err(Error::Ais(AisError::Timeout));
        }
        match self.conn.call(Request::NodeGet { node_id })? {
            Reply::Service(Response::Node(n)) => Ok(n),
            other => Err(unexpected("ClmNodeGet", &other)),
        }
    }

    /// `saClmClusterNodeGetAsync`: the answer comes as [`ClmEvent::NodeGet`] with
    /// `invocation`.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn node_get_async(&mut self, node_id: u32, invocation: u64) -> Result<(), Error> {
        self.conn.ok(Request::NodeGetAsync {
            node_id,
            invocation,
        })
    }

    /// The next callback: a queued one first, else waits up to `timeout` (`None`: forever;
    /// `Some(Duration::ZERO)`: only looks). `Ok(None)` when the time passes first.
    ///
    /// # Errors
    /// As [`Connection::next_callback`].
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<ClmEvent>, Error> {
        Ok(match self.conn.next_callback(timeout)? {
            None => None,
            Some(Callback::Track(v)) => Some(ClmEvent::Track(v)),
            Some(Callback::NodeGet { invocation, result }) => {
                Some(ClmEvent::NodeGet { invocation, result })
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
    pub fn connection(&mut self) -> &mut Connection<ClmProtocol> {
        &mut self.conn
    }
}

impl AsRawFd for Clm {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Clm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::fake::start_service;
    use super::*;

    fn node(id: u32) -> ClusterNode {
        ClusterNode {
            node_id: id,
            address: NodeAddress::V4([10, 0, 0, id as u8]),
            name: Bytes::from_static(b"b"),
            member: true,
            boot_timestamp: 1,
            initial_view_number: 1,
        }
    }

    #[test]
    fn calls_checks_and_callbacks() {
        let view = View {
            view_number: 2,
            items: vec![(node(1), Change::NoChange)],
            members: 1,
        };
        let v = view.clone();
        let (conn, server) = start_service::<ClmProtocol, _>(move |exec, id, req| {
            match req {
                Request::Track { flags } if flags & TRACK_CURRENT != 0 => {
                    exec.reply(id, Reply::Service(Response::View(v.clone())));
                }
                Request::Track { .. } | Request::NodeGetAsync { .. } => {
                    exec.reply(id, Reply::Ok);
                    exec.callback(Callback::NodeGet {
                        invocation: 3,
                        result: Err(AisError::NotExist),
                    });
                }
                Request::NodeGet { node_id } => {
                    exec.reply(id, Reply::Service(Response::Node(node(node_id))));
                }
                Request::TrackStop => exec.reply(id, Reply::Error(AisError::NotExist)),
            }
            true
        });
        let mut clm = Clm::from_connection(conn);
        assert_eq!(clm.track(TRACK_CURRENT).unwrap(), Some(view));
        for bad in [0, TRACK_CHANGES | TRACK_CHANGES_ONLY, 0x80] {
            assert_eq!(
                clm.track(bad).unwrap_err().ais_error(),
                Some(AisError::BadFlags)
            );
        }
        assert_eq!(
            clm.node_get(2, Duration::ZERO).unwrap_err().ais_error(),
            Some(AisError::Timeout)
        );
        assert_eq!(clm.node_get(2, Duration::from_secs(1)).unwrap().node_id, 2);
        clm.node_get_async(9, 3).unwrap();
        assert_eq!(
            clm.dispatch(Some(Duration::from_secs(5))).unwrap(),
            Some(ClmEvent::NodeGet {
                invocation: 3,
                result: Err(AisError::NotExist)
            })
        );
        assert_eq!(
            clm.track_stop().unwrap_err().ais_error(),
            Some(AisError::NotExist)
        );
        drop(clm);
        assert_eq!(
            server.join().unwrap().len(),
            4,
            "only valid requests were sent"
        );
    }
}
