//! Extended virtual synchrony groups, with openais `libevs`'s semantics.
//!
//! EVS groups are a filter on the node-wide message stream: a connection joins group names,
//! and receives every message sent to any of them, in Totem's total order, tagged with the
//! sending *node*. Membership is that of the nodes ([`EvsEvent::ConfChg`], regular and
//! transitional configurations), not of processes.
//!
//! The calls are [`Connection`] calls, so the [model](super) applies: one request at a time,
//! callbacks queued while waiting and handed out by [`Evs::dispatch`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::{Connection, Error, unexpected};
use ais_proto::evs::{Callback, ConfKind, EvsProtocol, Request, Response};
use ais_proto::ipc::{AisError, Guarantee, MAX_PAYLOAD, Message, Reply, check_group};

/// A callback of an EVS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvsEvent {
    /// A message sent to one of this connection's groups.
    Deliver {
        /// The sending node.
        sender: u32,
        /// The message.
        data: Bytes,
    },
    /// The node membership changed.
    ConfChg {
        /// Regular (a new ring) or transitional (the members moving on together).
        kind: ConfKind,
        /// The ring, `REP.SEQ`.
        ring: Bytes,
        /// Members.
        members: Vec<u32>,
        /// Members that left or failed.
        left: Vec<u32>,
        /// Members that joined.
        joined: Vec<u32>,
    },
}

/// A connection to the executive's EVS service.
#[derive(Debug)]
pub struct Evs {
    conn: Connection<EvsProtocol>,
}

impl Evs {
    /// Connects to the executive at `path` (usually [`super::default_socket`]) for EVS.
    ///
    /// # Errors
    /// As [`Connection::connect`].
    pub fn connect(path: &Path) -> Result<Evs, Error> {
        Connection::connect(path).map(|conn| Evs { conn })
    }

    /// Wraps an EVS connection.
    pub fn from_connection(conn: Connection<EvsProtocol>) -> Evs {
        Evs { conn }
    }

    /// Adds `groups` to this connection's filter (`evs_join`).
    ///
    /// # Errors
    /// [`AisError::InvalidParam`] for an empty list or an empty name,
    /// [`AisError::NameTooLong`] for a name over
    /// [`MAX_GROUP_NAME`](ais_proto::ipc::MAX_GROUP_NAME) bytes, [`AisError::TooBig`]
    /// when the list does not fit in a packet, all checked here without asking the executive;
    /// otherwise as [`Connection::call`].
    pub fn join(&mut self, groups: &[&[u8]]) -> Result<(), Error> {
        let groups = group_list(groups)?;
        self.conn.ok(Request::Join { groups })
    }

    /// Removes `groups` from this connection's filter (`evs_leave`).
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn leave(&mut self, groups: &[&[u8]]) -> Result<(), Error> {
        let groups = group_list(groups)?;
        self.conn.ok(Request::Leave { groups })
    }

    /// Sends `data` to the groups this connection joined (`evs_mcast_joined`), without
    /// copying it.
    ///
    /// # Errors
    /// [`AisError::TryAgain`] when Totem's send window is full: nothing was queued, send
    /// again later. [`AisError::TooBig`] for more than [`MAX_PAYLOAD`] bytes, checked here;
    /// otherwise as [`Connection::call`].
    pub fn mcast_joined(&mut self, guarantee: Guarantee, data: &[u8]) -> Result<(), Error> {
        self.mcast(Vec::new(), guarantee, data)
    }

    /// Sends `data` to `groups`, joined or not (`evs_mcast_groups`), without copying it.
    ///
    /// # Errors
    /// The group checks of [`join`](Self::join), then as [`mcast_joined`](Self::mcast_joined).
    pub fn mcast_groups(
        &mut self,
        groups: &[&[u8]],
        guarantee: Guarantee,
        data: &[u8],
    ) -> Result<(), Error> {
        let groups = group_list(groups)?;
        self.mcast(groups, guarantee, data)
    }

    fn mcast(
        &mut self,
        groups: Vec<Bytes>,
        guarantee: Guarantee,
        data: &[u8],
    ) -> Result<(), Error> {
        if data.len() > MAX_PAYLOAD {
            return Err(Error::Ais(AisError::TooBig));
        }
        let req = Request::Mcast {
            groups,
            guarantee,
            data: Bytes::new(),
        };
        match self.conn.call_with_payload(req, data)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected("EvsMcast", &other)),
        }
    }

    /// This node's id and the node membership (`evs_membership_get`).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn membership_get(&mut self) -> Result<(u32, Vec<u32>), Error> {
        match self.conn.call(Request::MembershipGet)? {
            Reply::Service(Response::Members { local, members }) => Ok((local, members)),
            other => Err(unexpected("EvsMembershipGet", &other)),
        }
    }

    /// The next event (`evs_dispatch` of one callback): a queued one first, else waits up to
    /// `timeout` (`None`: forever; `Some(Duration::ZERO)`: only looks). `Ok(None)` when the
    /// time passes first.
    ///
    /// # Errors
    /// As [`Connection::next_callback`] (a callback of another service does not decode: an
    /// [`Error::Protocol`]).
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<EvsEvent>, Error> {
        Ok(match self.conn.next_callback(timeout)? {
            None => None,
            Some(Callback::Deliver { sender, data }) => Some(EvsEvent::Deliver { sender, data }),
            Some(Callback::ConfChg {
                kind,
                ring,
                members,
                left,
                joined,
            }) => Some(EvsEvent::ConfChg {
                kind,
                ring,
                members,
                left,
                joined,
            }),
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "callback {} is not handled by this library",
                    other.name()
                )));
            }
        })
    }

    /// The underlying connection (its descriptor, [`Connection::has_queued`],
    /// [`Connection::status`]).
    pub fn connection(&mut self) -> &mut Connection<EvsProtocol> {
        &mut self.conn
    }
}

/// Checks and copies a non-empty list of group names.
fn group_list(groups: &[&[u8]]) -> Result<Vec<Bytes>, Error> {
    if groups.is_empty() {
        return Err(Error::Ais(AisError::InvalidParam));
    }
    groups
        .iter()
        .map(|g| {
            check_group(g)?;
            Ok(Bytes::copy_from_slice(g))
        })
        .collect()
}

impl AsRawFd for Evs {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Evs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::thread::JoinHandle;

    use super::super::fake::start_service;
    use super::*;

    type Exec = super::super::fake::Exec<EvsProtocol>;

    fn evs_with<F>(handle: F) -> (Evs, JoinHandle<Vec<Request>>)
    where
        F: FnMut(&Exec, u64, Request) -> bool + Send + 'static,
    {
        let (conn, server) = start_service::<EvsProtocol, _>(handle);
        (Evs::from_connection(conn), server)
    }

    #[test]
    fn requests_answers_and_callbacks() {
        let (mut evs, server) = evs_with(|exec, id, req| {
            if let Request::MembershipGet = req {
                exec.callback(Callback::ConfChg {
                    kind: ConfKind::Regular,
                    ring: Bytes::from_static(b"1.4"),
                    members: vec![1, 2],
                    left: vec![],
                    joined: vec![2],
                });
                exec.reply(
                    id,
                    Reply::Service(Response::Members {
                        local: 1,
                        members: vec![1, 2],
                    }),
                );
            } else {
                exec.reply(id, Reply::Ok);
            }
            exec.callback(Callback::Deliver {
                sender: 2,
                data: Bytes::from_static(b"m"),
            });
            true
        });
        evs.join(&[b"a", b"b"]).unwrap();
        assert_eq!(evs.membership_get().unwrap(), (1, vec![1, 2]));
        evs.mcast_joined(Guarantee::Agreed, b"payload").unwrap();
        evs.mcast_groups(&[b"c"], Guarantee::Safe, b"").unwrap();
        evs.leave(&[b"a"]).unwrap();
        // One deliver after each answer, and a configuration change before the membership's.
        let mut events = Vec::new();
        while let Some(e) = evs.dispatch(Some(Duration::from_millis(200))).unwrap() {
            events.push(e);
        }
        let deliver = EvsEvent::Deliver {
            sender: 2,
            data: Bytes::from_static(b"m"),
        };
        assert_eq!(events.len(), 6);
        assert_eq!(events[0], deliver);
        assert!(matches!(
            &events[1],
            EvsEvent::ConfChg { kind: ConfKind::Regular, joined, .. } if *joined == [2]
        ));
        assert!(events[2..].iter().all(|e| *e == deliver));
        drop(evs);
        let g = |s: &'static [u8]| Bytes::from_static(s);
        assert_eq!(
            server.join().unwrap(),
            vec![
                Request::Join {
                    groups: vec![g(b"a"), g(b"b")]
                },
                Request::MembershipGet,
                Request::Mcast {
                    groups: vec![],
                    guarantee: Guarantee::Agreed,
                    data: g(b"payload"),
                },
                Request::Mcast {
                    groups: vec![g(b"c")],
                    guarantee: Guarantee::Safe,
                    data: Bytes::new(),
                },
                Request::Leave {
                    groups: vec![g(b"a")]
                },
            ]
        );
    }

    #[test]
    fn bad_arguments_are_refused_locally() {
        let (mut evs, server) = evs_with(|exec, id, _| {
            exec.reply(id, Reply::Ok);
            true
        });
        let ais = |r: Result<(), Error>| r.unwrap_err().ais_error();
        assert_eq!(ais(evs.join(&[])), Some(AisError::InvalidParam));
        assert_eq!(ais(evs.join(&[b"ok", b""])), Some(AisError::InvalidParam));
        assert_eq!(ais(evs.leave(&[&[b'x'; 129]])), Some(AisError::NameTooLong));
        assert_eq!(
            ais(evs.mcast_groups(&[], Guarantee::Agreed, b"x")),
            Some(AisError::InvalidParam)
        );
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            ais(evs.mcast_joined(Guarantee::Agreed, &big)),
            Some(AisError::TooBig)
        );
        // A list of groups that cannot fit in one packet.
        let name = [b'n'; 128];
        let many: Vec<&[u8]> = vec![&name[..]; 2000];
        assert_eq!(ais(evs.join(&many)), Some(AisError::TooBig));
        drop(evs);
        assert!(server.join().unwrap().is_empty());
    }

    #[test]
    fn try_again_and_foreign_callbacks() {
        let (mut evs, _server) = evs_with(|exec, id, req| {
            if let Request::MembershipGet = req {
                // CPG's delivery is callback op 1, which EVS does not have.
                exec.send(&ais_proto::ipc::Encoded::callback(
                    &ais_proto::cpg::Callback::Deliver {
                        group: Bytes::from_static(b"g"),
                        sender: ais_proto::cpg::CpgAddress { node: 1, pid: 1 },
                        data: Bytes::new(),
                    },
                ));
            }
            exec.reply(id, Reply::Error(AisError::TryAgain));
            true
        });
        assert!(
            evs.mcast_joined(Guarantee::Agreed, b"x")
                .unwrap_err()
                .is_try_again()
        );
        let err = evs.membership_get().unwrap_err();
        assert!(err.to_string().contains("unknown evs operation 1"), "{err}");
    }
}
