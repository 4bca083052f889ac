//! Closed process groups, with corosync `libcpg`'s semantics.
//!
//! A process joins named groups; every message sent to a group is delivered to all its
//! members in the same total order ([`Guarantee::Agreed`]), or once every member holds it
//! ([`Guarantee::Safe`]), and membership changes ([`CpgEvent::ConfChg`]) are delivered in
//! that same order. A member is a [`CpgAddress`], node id and process id.
//!
//! The calls are [`Connection`] calls, so the [model](super) applies: one request at a time,
//! callbacks queued while waiting and handed out by [`Cpg::dispatch`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Connection, Error, unexpected};
use ais_proto::cpg::{
    Callback, CpgAddress, CpgProtocol, McastBatchParts, Reason, Request, Response,
};
use ais_proto::ipc::{AisError, Guarantee, MAX_PAYLOAD, Message, Reply, check_group};

/// First pause of [`Cpg::mcast_retry`] after a `TRY_AGAIN`.
const RETRY_FIRST: Duration = Duration::from_micros(100);
/// Longest pause of [`Cpg::mcast_retry`].
const RETRY_MAX: Duration = Duration::from_millis(10);

/// A callback of a CPG connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpgEvent {
    /// A message sent to a group this connection joined (its own messages included).
    Deliver {
        /// The group.
        group: Bytes,
        /// The sending process.
        sender: CpgAddress,
        /// The message. Over shared memory it shares the buffer it was read into with the
        /// packets around it (16 KiB): copy it (`Bytes::copy_from_slice`) to keep it long.
        data: Bytes,
    },
    /// A group's membership changed.
    ConfChg {
        /// The group.
        group: Bytes,
        /// The members after the change, ascending.
        members: Vec<CpgAddress>,
        /// Who left, and why.
        left: Vec<(CpgAddress, Reason)>,
        /// Who joined, and why.
        joined: Vec<(CpgAddress, Reason)>,
    },
}

/// A connection to the executive's CPG service.
#[derive(Debug)]
pub struct Cpg {
    conn: Connection<CpgProtocol>,
}

impl Cpg {
    /// Connects to the executive at `path` (usually [`super::default_socket`]) for CPG.
    ///
    /// # Errors
    /// As [`Connection::connect`].
    pub fn connect(path: &Path) -> Result<Cpg, Error> {
        Connection::connect(path).map(|conn| Cpg { conn })
    }

    /// Wraps a CPG connection.
    pub fn from_connection(conn: Connection<CpgProtocol>) -> Cpg {
        Cpg { conn }
    }

    /// Joins `group` (`cpg_join`). Every member, this one included, then gets a
    /// [`CpgEvent::ConfChg`] with this process among the joined.
    ///
    /// # Errors
    /// [`AisError::InvalidParam`] (empty) or [`AisError::NameTooLong`] (over
    /// [`MAX_GROUP_NAME`](ais_proto::ipc::MAX_GROUP_NAME) bytes) for a bad name, checked
    /// here without asking the executive; [`AisError::Exist`] when already joined;
    /// [`AisError::TryAgain`]; otherwise as [`Connection::call`].
    pub fn join(&mut self, group: &[u8]) -> Result<(), Error> {
        check_group(group)?;
        self.conn.ok(Request::Join {
            group: Bytes::copy_from_slice(group),
        })
    }

    /// Leaves `group` (`cpg_leave`).
    ///
    /// # Errors
    /// As [`join`](Self::join); [`AisError::NotExist`] when not a member.
    pub fn leave(&mut self, group: &[u8]) -> Result<(), Error> {
        check_group(group)?;
        self.conn.ok(Request::Leave {
            group: Bytes::copy_from_slice(group),
        })
    }

    /// Sends `data` to `group`, which this connection joined (`cpg_mcast_joined`). `data` is
    /// written to the socket as it is, without a copy.
    ///
    /// # Errors
    /// [`AisError::TryAgain`] when Totem's send window is full: nothing was queued; send again
    /// after a while or after [`dispatch`](Self::dispatch) (or use
    /// [`mcast_retry`](Self::mcast_retry)). [`AisError::TooBig`] for more than
    /// [`MAX_PAYLOAD`] bytes, checked here without asking the executive; a bad group name as
    /// for [`join`](Self::join); otherwise as [`Connection::call`].
    pub fn mcast(&mut self, group: &[u8], guarantee: Guarantee, data: &[u8]) -> Result<(), Error> {
        check_group(group)?;
        if data.len() > MAX_PAYLOAD {
            return Err(Error::Ais(AisError::TooBig));
        }
        let req = Request::Mcast {
            group: Bytes::copy_from_slice(group),
            guarantee,
            data: Bytes::new(),
        };
        match self.conn.call_with_payload(req, data)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected("CpgMcast", &other)),
        }
    }

    /// [`mcast`](Self::mcast), sending again after each `TRY_AGAIN` with a pause that starts
    /// at 100 µs and doubles up to 10 ms, until `timeout` has passed. Returns how many
    /// `TRY_AGAIN` answers it met. Callbacks that arrive meanwhile are queued for
    /// [`dispatch`](Self::dispatch).
    ///
    /// # Errors
    /// [`AisError::TryAgain`] when the window stayed full for `timeout`; any other error of
    /// [`mcast`](Self::mcast) at once.
    pub fn mcast_retry(
        &mut self,
        group: &[u8],
        guarantee: Guarantee,
        data: &[u8],
        timeout: Duration,
    ) -> Result<u64, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut pause = RETRY_FIRST;
        let mut tries = 0;
        loop {
            match self.mcast(group, guarantee, data) {
                Ok(()) => return Ok(tries),
                Err(e) if e.is_try_again() => tries += 1,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            let pause_now = match deadline {
                None => pause,
                Some(d) if now >= d => return Err(Error::Ais(AisError::TryAgain)),
                Some(d) => pause.min(d - now),
            };
            thread::sleep(pause_now);
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Sends `messages` to `group` in order, in one round trip. Totem takes them in order until
    /// its send queue is full: returns how many it took, from the first (at least one). Send
    /// the rest again (after a pause or a [`dispatch`](Self::dispatch)): the order of this
    /// connection's messages is kept.
    ///
    /// # Errors
    /// [`AisError::TryAgain`] when Totem took none; [`AisError::TooBig`] (without a round trip)
    /// when the messages do not fit one IPC packet ([`ais_proto::ipc::MAX_PAYLOAD`] bytes
    /// with 4 bytes per message); otherwise as [`mcast`](Self::mcast).
    pub fn mcast_batch(
        &mut self,
        group: &[u8],
        guarantee: Guarantee,
        messages: &[&[u8]],
    ) -> Result<usize, Error> {
        check_group(group)?;
        let bytes: usize = messages.iter().map(|m| m.len() + 4).sum();
        if bytes > MAX_PAYLOAD {
            return Err(Error::Ais(AisError::TooBig));
        }
        if messages.is_empty() {
            return Ok(0);
        }
        // The caller's slices go into the packet as they are: no request value, no copy.
        let parts = McastBatchParts::new(group, guarantee, messages);
        match self.conn.call_parts(|id| parts.head(id), &parts.rest())? {
            Reply::Service(Response::Accepted(n)) => Ok((n as usize).min(messages.len())),
            other => Err(unexpected("CpgMcastBatch", &other)),
        }
    }

    /// Sends all of `messages` with [`mcast_batch`](Self::mcast_batch), sending the rest again
    /// with a short back-off while Totem's queue is full, for up to `timeout`. Returns the
    /// number of round trips that took fewer than all remaining messages.
    ///
    /// # Errors
    /// [`AisError::TryAgain`] when `timeout` passed first (some messages may have been sent, in
    /// order); any other error of [`mcast_batch`](Self::mcast_batch) at once.
    pub fn mcast_batch_retry(
        &mut self,
        group: &[u8],
        guarantee: Guarantee,
        messages: &[&[u8]],
        timeout: Duration,
    ) -> Result<u64, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut pause = RETRY_FIRST;
        let mut short = 0;
        let mut rest = messages;
        while !rest.is_empty() {
            match self.mcast_batch(group, guarantee, rest) {
                Ok(n) if n == rest.len() => return Ok(short),
                Ok(n) => {
                    rest = &rest[n..];
                    short += 1;
                    pause = RETRY_FIRST;
                }
                Err(e) if e.is_try_again() => short += 1,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            let pause_now = match deadline {
                None => pause,
                Some(d) if now >= d => return Err(Error::Ais(AisError::TryAgain)),
                Some(d) => pause.min(d - now),
            };
            thread::sleep(pause_now);
            pause = (pause * 2).min(RETRY_MAX);
        }
        Ok(short)
    }

    /// The members of `group` (`cpg_membership_get`), ascending.
    ///
    /// # Errors
    /// A bad group name as for [`join`](Self::join); otherwise as [`Connection::call`].
    pub fn membership(&mut self, group: &[u8]) -> Result<Vec<CpgAddress>, Error> {
        check_group(group)?;
        match self.conn.call(Request::Membership {
            group: Bytes::copy_from_slice(group),
        })? {
            Reply::Service(Response::Members(m)) => Ok(m),
            other => Err(unexpected("CpgMembership", &other)),
        }
    }

    /// This node's id (`cpg_local_get`).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn local_get(&mut self) -> Result<u32, Error> {
        match self.conn.call(Request::LocalGet)? {
            Reply::Service(Response::LocalNode(n)) => Ok(n),
            other => Err(unexpected("CpgLocalGet", &other)),
        }
    }

    /// Whether flow control is on (`cpg_flow_control_state_get`): Totem's send window is
    /// full and sends would get `TRY_AGAIN`.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn flow_control_enabled(&mut self) -> Result<bool, Error> {
        match self.conn.call(Request::FlowControlGet)? {
            Reply::Service(Response::FlowControl(on)) => Ok(on),
            other => Err(unexpected("CpgFlowControlGet", &other)),
        }
    }

    /// Every group this node knows, with its members (`corosync-cpgtool`).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn groups(&mut self) -> Result<Vec<(Bytes, Vec<CpgAddress>)>, Error> {
        match self.conn.call(Request::Groups)? {
            Reply::Service(Response::Groups(g)) => Ok(g),
            other => Err(unexpected("CpgGroups", &other)),
        }
    }

    /// The next event (`cpg_dispatch` with `CS_DISPATCH_ONE`): a queued one first, else waits
    /// up to `timeout` (`None`: forever; `Some(Duration::ZERO)`: only looks). `Ok(None)` when
    /// the time passes first.
    ///
    /// # Errors
    /// As [`Connection::next_callback`] (a callback of another service does not decode: an
    /// [`Error::Protocol`]).
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<CpgEvent>, Error> {
        Ok(match self.conn.next_callback(timeout)? {
            None => None,
            Some(Callback::Deliver {
                group,
                sender,
                data,
            }) => Some(CpgEvent::Deliver {
                group,
                sender,
                data,
            }),
            Some(Callback::ConfChg {
                group,
                members,
                left,
                joined,
            }) => Some(CpgEvent::ConfChg {
                group,
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
    pub fn connection(&mut self) -> &mut Connection<CpgProtocol> {
        &mut self.conn
    }
}

impl AsRawFd for Cpg {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Cpg {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::start_service;
    use super::*;
    use ais_proto::ipc::MAX_GROUP_NAME;

    type Exec = super::super::fake::Exec<CpgProtocol>;

    /// A CPG connection to a fake executive; `handle` sees CPG's own requests.
    fn cpg_with<F>(handle: F) -> (Cpg, thread::JoinHandle<Vec<Request>>)
    where
        F: FnMut(&Exec, u64, Request) -> bool + Send + 'static,
    {
        let (conn, server) = start_service::<CpgProtocol, _>(handle);
        (Cpg::from_connection(conn), server)
    }

    const A: CpgAddress = CpgAddress { node: 1, pid: 10 };

    #[test]
    fn callbacks_met_during_a_call_come_out_of_dispatch_in_order() {
        let (mut cpg, server) = cpg_with(|exec, id, req| {
            let Request::Join { group } = req else {
                panic!("{req:?}")
            };
            exec.callback(Callback::ConfChg {
                group: group.clone(),
                members: vec![A],
                left: vec![],
                joined: vec![(A, Reason::Join)],
            });
            exec.callback(Callback::Deliver {
                group: group.clone(),
                sender: A,
                data: Bytes::from_static(b"first"),
            });
            exec.reply(id, Reply::Ok);
            true
        });
        cpg.join(b"g").unwrap();
        assert!(cpg.connection().has_queued());
        assert_eq!(
            cpg.dispatch(None).unwrap(),
            Some(CpgEvent::ConfChg {
                group: Bytes::from_static(b"g"),
                members: vec![A],
                left: vec![],
                joined: vec![(A, Reason::Join)],
            })
        );
        assert_eq!(
            cpg.dispatch(None).unwrap(),
            Some(CpgEvent::Deliver {
                group: Bytes::from_static(b"g"),
                sender: A,
                data: Bytes::from_static(b"first"),
            })
        );
        assert_eq!(cpg.dispatch(Some(Duration::ZERO)).unwrap(), None);
        drop(cpg);
        assert_eq!(server.join().unwrap().len(), 1);
    }

    #[test]
    fn names_and_sizes_are_checked_without_a_round_trip() {
        let (mut cpg, server) = cpg_with(|exec, id, _| {
            exec.reply(id, Reply::Ok);
            true
        });
        let long = [b'a'; MAX_GROUP_NAME + 1];
        let ais = |r: Result<(), Error>| r.unwrap_err().ais_error();
        assert_eq!(ais(cpg.join(b"")), Some(AisError::InvalidParam));
        assert_eq!(ais(cpg.join(&long)), Some(AisError::NameTooLong));
        assert_eq!(ais(cpg.leave(b"")), Some(AisError::InvalidParam));
        assert_eq!(
            cpg.membership(&long).unwrap_err().ais_error(),
            Some(AisError::NameTooLong)
        );
        assert_eq!(
            ais(cpg.mcast(&long, Guarantee::Agreed, b"x")),
            Some(AisError::NameTooLong)
        );
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            ais(cpg.mcast(b"g", Guarantee::Agreed, &big)),
            Some(AisError::TooBig)
        );
        // The longest name and the largest payload do go out.
        cpg.join(&long[..MAX_GROUP_NAME]).unwrap();
        cpg.mcast(b"g", Guarantee::Safe, &big[..MAX_PAYLOAD])
            .unwrap();
        drop(cpg);
        let seen = server.join().unwrap();
        assert_eq!(
            seen.len(),
            2,
            "only the valid requests reached the executive"
        );
    }

    #[test]
    fn mcast_sends_the_data_as_the_packet_tail() {
        let (mut cpg, server) = cpg_with(|exec, id, _| {
            exec.reply(id, Reply::Ok);
            true
        });
        let data: Vec<u8> = (0..=255).cycle().take(5000).collect();
        cpg.mcast(b"grp", Guarantee::Safe, &data).unwrap();
        cpg.mcast(b"grp", Guarantee::Agreed, b"").unwrap();
        drop(cpg);
        assert_eq!(
            server.join().unwrap(),
            vec![
                Request::Mcast {
                    group: Bytes::from_static(b"grp"),
                    guarantee: Guarantee::Safe,
                    data: Bytes::from(data),
                },
                Request::Mcast {
                    group: Bytes::from_static(b"grp"),
                    guarantee: Guarantee::Agreed,
                    data: Bytes::new(),
                },
            ]
        );
    }

    #[test]
    fn mcast_retry_counts_try_again_answers() {
        let mut refusals = 2;
        let (mut cpg, server) = cpg_with(move |exec, id, _| {
            if refusals > 0 {
                refusals -= 1;
                exec.reply(id, Reply::Error(AisError::TryAgain));
            } else {
                exec.reply(id, Reply::Ok);
            }
            true
        });
        let tries = cpg
            .mcast_retry(b"g", Guarantee::Agreed, b"m", Duration::from_secs(5))
            .unwrap();
        assert_eq!(tries, 2);
        drop(cpg);
        assert_eq!(server.join().unwrap().len(), 3);
    }

    #[test]
    fn mcast_retry_gives_up_at_the_timeout() {
        let (mut cpg, _server) = cpg_with(|exec, id, _| {
            exec.reply(id, Reply::Error(AisError::TryAgain));
            true
        });
        let start = Instant::now();
        let err = cpg
            .mcast_retry(b"g", Guarantee::Agreed, b"m", Duration::from_millis(30))
            .unwrap_err();
        assert!(err.is_try_again());
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Other errors end it at once.
        let (mut cpg, _server) = cpg_with(|exec, id, _| {
            exec.reply(id, Reply::Error(AisError::NotExist));
            true
        });
        let err = cpg
            .mcast_retry(b"g", Guarantee::Agreed, b"m", Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(err.ais_error(), Some(AisError::NotExist));
    }

    #[test]
    fn queries_decode_their_answers() {
        let (mut cpg, _server) = cpg_with(|exec, id, req| {
            let resp = match req {
                Request::Membership { .. } => Reply::Service(Response::Members(vec![A])),
                Request::LocalGet => Reply::Service(Response::LocalNode(3)),
                Request::FlowControlGet => Reply::Service(Response::FlowControl(true)),
                Request::Groups => {
                    Reply::Service(Response::Groups(vec![(Bytes::from_static(b"g"), vec![A])]))
                }
                // A wrong kind of answer.
                _ => Reply::Service(Response::LocalNode(0)),
            };
            exec.reply(id, resp);
            true
        });
        assert_eq!(cpg.membership(b"g").unwrap(), vec![A]);
        assert_eq!(cpg.local_get().unwrap(), 3);
        assert!(cpg.flow_control_enabled().unwrap());
        assert_eq!(
            cpg.groups().unwrap(),
            vec![(Bytes::from_static(b"g"), vec![A])]
        );
        let err = cpg.leave(b"g").unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
    }

    #[test]
    fn a_callback_of_another_service_is_a_protocol_error() {
        let (mut cpg, _server) = cpg_with(|exec, id, _| {
            // EVS's delivery is callback op 3, which CPG does not have.
            exec.send(&ais_proto::ipc::Encoded::callback(
                &ais_proto::evs::Callback::Deliver {
                    sender: 1,
                    data: Bytes::from_static(b"x"),
                },
            ));
            exec.reply(id, Reply::Service(Response::LocalNode(1)));
            true
        });
        cpg.local_get().unwrap_err();
        let err = cpg.local_get().unwrap_err();
        assert!(err.to_string().contains("reconnect"), "{err}");
    }
}
