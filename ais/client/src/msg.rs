//! Message queues, with SA Forum MSG B.01.01 semantics (`saMsg*`).
//!
//! A queue is named and cluster-wide, opened by one process at a time ([`Msg::queue_open`];
//! with [`OPEN_CREATE`] and [`Attributes`] it is created when missing), and holds messages in
//! four priority areas. Any process sends to it by name ([`Msg::message_send`]), or to a
//! queue group, which chooses a member queue by its policy; the opener gets them, highest
//! priority first ([`Msg::message_get`]). The calls are [`Connection`] calls, so the
//! [model](super) applies: one request at a time (a waiting get blocks the connection),
//! callbacks ([`MsgEvent`]) queued while waiting and handed out by [`Msg::dispatch`].
//!
//! # Example
//!
//! ```no_run
//! use ais_client::{self as client, msg::{self, Attributes, MessageBody, Msg}};
//! use bytes::Bytes;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut msg = Msg::connect(&client::default_socket())?;
//! let attributes = Attributes {
//!     creation_flags: msg::QUEUE_PERSISTENT,
//!     size: [1 << 16; msg::PRIORITIES],
//!     retention_time: 0,
//! };
//! let q = msg.queue_open(b"jobs", msg::OPEN_CREATE, Some(attributes))?;
//! msg.message_send(b"jobs", &MessageBody { data: Bytes::from_static(b"hello"), ..Default::default() })?;
//! let got = msg.message_get(q, 1_000_000_000)?;
//! assert_eq!(&got.message.data[..], b"hello");
//! msg.queue_close(q)?;
//! # Ok(())
//! # }
//! ```

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::{AisError, Connection, Error, unexpected};
use ais_proto::ipc::{Message, Reply};
use ais_proto::msg::{Callback, MsgProtocol, Request, Response};

pub use ais_proto::msg::{
    Attributes, CHANGE_ADDED, CHANGE_NONE, CHANGE_REMOVED, GroupItem, MAX_MESSAGE, MAX_NAME,
    MessageBody, MsgKey, OPEN_CREATE, OPEN_EMPTY, OPEN_FLAGS, OPEN_RECEIVE_CALLBACK,
    POLICY_LOCAL_BEST_QUEUE, POLICY_LOCAL_ROUND_ROBIN, POLICY_ROUND_ROBIN, PRIORITIES,
    QUEUE_PERSISTENT, QueueInfo, Status, TIME_END, TRACK_CHANGES, TRACK_CHANGES_ONLY,
    TRACK_CURRENT, Usage,
};

/// The executive's number for one open of one queue (`SaMsgQueueHandleT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueHandle(pub u64);

/// A message a get returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message.
    pub message: MessageBody,
    /// When it was sent (the sender node's clock, nanoseconds since the UNIX epoch).
    pub send_time: u64,
    /// Its cluster-wide identity (`key.node` is the sender's node).
    pub key: MsgKey,
}

/// The reply a [`Msg::message_send_receive`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replied {
    /// The reply.
    pub message: MessageBody,
    /// When it was sent (the replier node's clock, nanoseconds since the UNIX epoch).
    pub send_time: u64,
}

/// A callback of an MSG connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgEvent {
    /// The outcome of [`Msg::message_send_async`] with `ack` (`saMsgMessageDeliveredCallback`).
    Delivered {
        /// The caller's number.
        invocation: u64,
        /// Queued, or why not.
        result: Result<(), AisError>,
    },
    /// A message arrived in a queue opened with [`OPEN_RECEIVE_CALLBACK`]
    /// (`saMsgMessageReceivedCallback`).
    Received {
        /// The queue.
        handle: QueueHandle,
    },
    /// The outcome of [`Msg::queue_open_async`] (`saMsgQueueOpenCallback`).
    Opened {
        /// The caller's number.
        invocation: u64,
        /// The handle, or why not.
        result: Result<QueueHandle, AisError>,
    },
    /// A tracked group changed (`saMsgQueueGroupTrackCallback`).
    GroupTrack {
        /// The group.
        group: Bytes,
        /// Its policy.
        policy: u8,
        /// Its members now.
        members: u32,
        /// The changes (see [`TRACK_CHANGES`], [`TRACK_CHANGES_ONLY`]).
        items: Vec<GroupItem>,
    },
}

fn check_name(name: &[u8]) -> Result<(), Error> {
    if name.len() > MAX_NAME {
        return Err(Error::Ais(AisError::NameTooLong));
    }
    if name.is_empty() {
        return Err(Error::Ais(AisError::InvalidParam));
    }
    Ok(())
}

fn check_message(destination: &[u8], m: &MessageBody) -> Result<(), Error> {
    check_name(destination)?;
    if usize::from(m.priority) >= PRIORITIES || m.sender_name.len() > MAX_NAME {
        return Err(Error::Ais(AisError::InvalidParam));
    }
    if m.data.len() > MAX_MESSAGE {
        return Err(Error::Ais(AisError::TooBig));
    }
    Ok(())
}

/// An MSG connection.
#[derive(Debug)]
pub struct Msg {
    conn: Connection<MsgProtocol>,
}

impl Msg {
    /// Connects to the executive at `path` (usually [`super::default_socket`]).
    ///
    /// # Errors
    /// As [`Connection::connect`]; `SA_AIS_ERR_NOT_SUPPORTED` when the executive runs no MSG
    /// service.
    pub fn connect(path: &Path) -> Result<Msg, Error> {
        Connection::connect(path).map(|conn| Msg { conn })
    }

    /// Wraps an MSG connection.
    pub fn from_connection(conn: Connection<MsgProtocol>) -> Msg {
        Msg { conn }
    }

    /// `saMsgQueueOpen`: opens queue `name` with `flags` ([`OPEN_CREATE`],
    /// [`OPEN_RECEIVE_CALLBACK`], [`OPEN_EMPTY`]); with `OPEN_CREATE` (and only then)
    /// `attributes` are given and the queue is created when missing.
    ///
    /// # Errors
    /// Checked here: `SA_AIS_ERR_INVALID_PARAM` (empty name, attributes without
    /// `OPEN_CREATE` or the reverse), `SA_AIS_ERR_NAME_TOO_LONG`, `SA_AIS_ERR_BAD_FLAGS`.
    /// From the executive: `SA_AIS_ERR_NOT_EXIST`, `SA_AIS_ERR_EXIST` (other attributes, or a
    /// group's name), `SA_AIS_ERR_BUSY` (open elsewhere), `SA_AIS_ERR_NO_RESOURCES`;
    /// otherwise as [`Connection::call`].
    pub fn queue_open(
        &mut self,
        name: &[u8],
        flags: u8,
        attributes: Option<Attributes>,
    ) -> Result<QueueHandle, Error> {
        check_name(name)?;
        if flags & !OPEN_FLAGS != 0 {
            return Err(Error::Ais(AisError::BadFlags));
        }
        if (flags & OPEN_CREATE != 0) != attributes.is_some() {
            return Err(Error::Ais(AisError::InvalidParam));
        }
        match self.conn.call(Request::Open {
            name: Bytes::copy_from_slice(name),
            flags,
            attributes,
        })? {
            Reply::Service(Response::Opened { handle }) => Ok(QueueHandle(handle)),
            other => Err(unexpected("MsgQueueOpen", &other)),
        }
    }

    /// `saMsgQueueOpenAsync`: returns when the executive took it; the handle (or the open's
    /// error) comes as [`MsgEvent::Opened`] with `invocation`.
    ///
    /// # Errors
    /// The checks of [`queue_open`](Self::queue_open) made here; otherwise as
    /// [`Connection::call`].
    pub fn queue_open_async(
        &mut self,
        name: &[u8],
        flags: u8,
        attributes: Option<Attributes>,
        invocation: u64,
    ) -> Result<(), Error> {
        check_name(name)?;
        if flags & !OPEN_FLAGS != 0 {
            return Err(Error::Ais(AisError::BadFlags));
        }
        if (flags & OPEN_CREATE != 0) != attributes.is_some() {
            return Err(Error::Ais(AisError::InvalidParam));
        }
        self.conn.ok(Request::OpenAsync {
            name: Bytes::copy_from_slice(name),
            flags,
            attributes,
            invocation,
        })
    }

    /// `saMsgQueueClose`: the queue stays, closed, with its messages.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn queue_close(&mut self, handle: QueueHandle) -> Result<(), Error> {
        self.conn.ok(Request::Close { handle: handle.0 })
    }

    /// `saMsgQueueStatusGet`.
    ///
    /// # Errors
    /// The name checks of [`queue_open`](Self::queue_open); `SA_AIS_ERR_NOT_EXIST`;
    /// otherwise as [`Connection::call`].
    pub fn queue_status_get(&mut self, name: &[u8]) -> Result<Status, Error> {
        check_name(name)?;
        match self.conn.call(Request::StatusGet {
            name: Bytes::copy_from_slice(name),
        })? {
            Reply::Service(Response::Status(s)) => Ok(s),
            other => Err(unexpected("MsgQueueStatusGet", &other)),
        }
    }

    /// `saMsgQueueUnlink`: the name is freed now; the queue goes now if closed, else at its
    /// close.
    ///
    /// # Errors
    /// The name checks; `SA_AIS_ERR_NOT_EXIST`; otherwise as [`Connection::call`].
    pub fn queue_unlink(&mut self, name: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        self.conn.ok(Request::Unlink {
            name: Bytes::copy_from_slice(name),
        })
    }

    /// `saMsgMessageSend`: returns once every node holds the message.
    ///
    /// # Errors
    /// Checked here: `SA_AIS_ERR_INVALID_PARAM` (priority over 3, empty destination),
    /// `SA_AIS_ERR_TOO_BIG` (over [`MAX_MESSAGE`]). From the executive: `SA_AIS_ERR_NOT_EXIST`,
    /// `SA_AIS_ERR_QUEUE_FULL`, `SA_AIS_ERR_QUEUE_NOT_AVAILABLE` (a group without a queue to
    /// take it), `SA_AIS_ERR_TOO_BIG`, `SA_AIS_ERR_NO_RESOURCES`; otherwise as
    /// [`Connection::call`].
    pub fn message_send(&mut self, destination: &[u8], message: &MessageBody) -> Result<(), Error> {
        check_message(destination, message)?;
        self.conn.ok(Request::Send {
            destination: Bytes::copy_from_slice(destination),
            message: message.clone(),
        })
    }

    /// `saMsgMessageSendAsync`: returns when the executive took it; with `ack`, the outcome
    /// comes as [`MsgEvent::Delivered`] with `invocation`.
    ///
    /// # Errors
    /// The checks of [`message_send`](Self::message_send) made here; otherwise as
    /// [`Connection::call`].
    pub fn message_send_async(
        &mut self,
        destination: &[u8],
        message: &MessageBody,
        invocation: u64,
        ack: bool,
    ) -> Result<(), Error> {
        check_message(destination, message)?;
        self.conn.ok(Request::SendAsync {
            destination: Bytes::copy_from_slice(destination),
            message: message.clone(),
            invocation,
            ack,
        })
    }

    /// `saMsgMessageGet`: the head of the highest priority that holds a message, waiting up
    /// to `timeout` nanoseconds ([`TIME_END`]: for ever) for one.
    ///
    /// # Errors
    /// `SA_AIS_ERR_TIMEOUT`; `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn message_get(&mut self, handle: QueueHandle, timeout: u64) -> Result<Received, Error> {
        match self.conn.call(Request::Get {
            handle: handle.0,
            timeout,
        })? {
            Reply::Service(Response::Message {
                message,
                send_time,
                key,
            }) => Ok(Received {
                message,
                send_time,
                key,
            }),
            other => Err(unexpected("MsgMessageGet", &other)),
        }
    }

    /// `saMsgMessageSendReceive`: sends `message` and waits up to `timeout` nanoseconds
    /// ([`TIME_END`]: for ever) for its reply, of at most `reply_size` data bytes. The getter
    /// replies to the got message's `key` ([`message_reply`](Self::message_reply)).
    ///
    /// # Errors
    /// As [`message_send`](Self::message_send); `SA_AIS_ERR_TIMEOUT` when no reply came in
    /// time; otherwise as [`Connection::call`].
    pub fn message_send_receive(
        &mut self,
        destination: &[u8],
        message: &MessageBody,
        reply_size: u64,
        timeout: u64,
    ) -> Result<Replied, Error> {
        check_message(destination, message)?;
        match self.conn.call(Request::SendReceive {
            destination: Bytes::copy_from_slice(destination),
            message: message.clone(),
            reply_size,
            timeout,
        })? {
            Reply::Service(Response::Reply { message, send_time }) => {
                Ok(Replied { message, send_time })
            }
            other => Err(unexpected("MsgMessageSendReceive", &other)),
        }
    }

    /// `saMsgMessageReply`: replies to the message `to` (a got message's key); returns once
    /// the reply is bound for its waiting sender.
    ///
    /// # Errors
    /// Checked here: `SA_AIS_ERR_INVALID_PARAM`, `SA_AIS_ERR_TOO_BIG` (as a send). From the
    /// executive: `SA_AIS_ERR_NOT_EXIST` (not sent with send-receive, already replied to, or
    /// its sender stopped waiting), `SA_AIS_ERR_NO_SPACE` (over the sender's reply size);
    /// otherwise as [`Connection::call`].
    pub fn message_reply(&mut self, to: MsgKey, message: &MessageBody) -> Result<(), Error> {
        check_message(b"reply", message)?;
        self.conn.ok(Request::Reply {
            to,
            message: message.clone(),
        })
    }

    /// `saMsgMessageReplyAsync`: returns when the executive took it; with `ack`, the outcome
    /// comes as [`MsgEvent::Delivered`] with `invocation`.
    ///
    /// # Errors
    /// The checks of [`message_reply`](Self::message_reply) made here; otherwise as
    /// [`Connection::call`].
    pub fn message_reply_async(
        &mut self,
        to: MsgKey,
        message: &MessageBody,
        invocation: u64,
        ack: bool,
    ) -> Result<(), Error> {
        check_message(b"reply", message)?;
        self.conn.ok(Request::ReplyAsync {
            to,
            message: message.clone(),
            invocation,
            ack,
        })
    }

    /// `saMsgMessageCancel`: the gets waiting on `handle` (on another connection of this
    /// process: a waiting get blocks its own) end with `SA_AIS_ERR_INTERRUPT`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE` (unknown, or another process's); `SA_AIS_ERR_NOT_EXIST` (no
    /// get waits); otherwise as [`Connection::call`].
    pub fn message_cancel(&mut self, handle: QueueHandle) -> Result<(), Error> {
        self.conn.ok(Request::Cancel { handle: handle.0 })
    }

    /// `saMsgQueueGroupCreate` with `policy` (`POLICY_*`).
    ///
    /// # Errors
    /// The name checks; `SA_AIS_ERR_INVALID_PARAM` for an unknown policy (checked here);
    /// `SA_AIS_ERR_EXIST`; `SA_AIS_ERR_NO_RESOURCES`; otherwise as [`Connection::call`].
    pub fn group_create(&mut self, name: &[u8], policy: u8) -> Result<(), Error> {
        check_name(name)?;
        if !(POLICY_ROUND_ROBIN..=POLICY_LOCAL_BEST_QUEUE).contains(&policy) {
            return Err(Error::Ais(AisError::InvalidParam));
        }
        self.conn.ok(Request::GroupCreate {
            name: Bytes::copy_from_slice(name),
            policy,
        })
    }

    /// `saMsgQueueGroupInsert`.
    ///
    /// # Errors
    /// The name checks; `SA_AIS_ERR_NOT_EXIST`; `SA_AIS_ERR_EXIST`; otherwise as
    /// [`Connection::call`].
    pub fn group_insert(&mut self, group: &[u8], queue: &[u8]) -> Result<(), Error> {
        check_name(group)?;
        check_name(queue)?;
        self.conn.ok(Request::GroupInsert {
            group: Bytes::copy_from_slice(group),
            queue: Bytes::copy_from_slice(queue),
        })
    }

    /// `saMsgQueueGroupRemove`.
    ///
    /// # Errors
    /// The name checks; `SA_AIS_ERR_NOT_EXIST`; otherwise as [`Connection::call`].
    pub fn group_remove(&mut self, group: &[u8], queue: &[u8]) -> Result<(), Error> {
        check_name(group)?;
        check_name(queue)?;
        self.conn.ok(Request::GroupRemove {
            group: Bytes::copy_from_slice(group),
            queue: Bytes::copy_from_slice(queue),
        })
    }

    /// `saMsgQueueGroupDelete`.
    ///
    /// # Errors
    /// The name checks; `SA_AIS_ERR_NOT_EXIST`; otherwise as [`Connection::call`].
    pub fn group_delete(&mut self, group: &[u8]) -> Result<(), Error> {
        check_name(group)?;
        self.conn.ok(Request::GroupDelete {
            group: Bytes::copy_from_slice(group),
        })
    }

    /// `saMsgQueueGroupTrack`: with [`TRACK_CURRENT`], the policy and members now; with
    /// [`TRACK_CHANGES`] or [`TRACK_CHANGES_ONLY`], [`MsgEvent::GroupTrack`] at each change.
    ///
    /// # Errors
    /// The name checks; `SA_AIS_ERR_BAD_FLAGS`; `SA_AIS_ERR_NOT_EXIST`; otherwise as
    /// [`Connection::call`].
    pub fn group_track(
        &mut self,
        group: &[u8],
        flags: u8,
    ) -> Result<Option<(u8, Vec<GroupItem>)>, Error> {
        check_name(group)?;
        match self.conn.call(Request::GroupTrack {
            group: Bytes::copy_from_slice(group),
            flags,
        })? {
            Reply::Ok => Ok(None),
            Reply::Service(Response::Group { policy, items }) => Ok(Some((policy, items))),
            other => Err(unexpected("MsgQueueGroupTrack", &other)),
        }
    }

    /// `saMsgQueueGroupTrackStop`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST` when not tracking it; otherwise as [`Connection::call`].
    pub fn group_track_stop(&mut self, group: &[u8]) -> Result<(), Error> {
        check_name(group)?;
        self.conn.ok(Request::GroupTrackStop {
            group: Bytes::copy_from_slice(group),
        })
    }

    /// Every queue of the cluster (`aisctl msg ls`).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn list(&mut self) -> Result<Vec<QueueInfo>, Error> {
        let mut all = Vec::new();
        let mut start = 0;
        loop {
            match self.conn.call(Request::List { start })? {
                Reply::Service(Response::List { items, next }) => {
                    all.extend(items);
                    match next {
                        Some(n) if n > start => start = n,
                        Some(_) => {
                            return Err(Error::Protocol(
                                "a list page that does not advance".into(),
                            ));
                        }
                        None => return Ok(all),
                    }
                }
                other => return Err(unexpected("MsgList", &other)),
            }
        }
    }

    /// The next callback: a queued one first, else waits up to `timeout` (`None`: forever;
    /// `Some(Duration::ZERO)`: only looks). `Ok(None)` when the time passes first.
    ///
    /// # Errors
    /// As [`Connection::next_callback`].
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<MsgEvent>, Error> {
        Ok(match self.conn.next_callback(timeout)? {
            None => None,
            Some(Callback::Delivered { invocation, result }) => {
                Some(MsgEvent::Delivered { invocation, result })
            }
            Some(Callback::Opened { invocation, result }) => Some(MsgEvent::Opened {
                invocation,
                result: result.map(QueueHandle),
            }),
            Some(Callback::Received { handle }) => Some(MsgEvent::Received {
                handle: QueueHandle(handle),
            }),
            Some(Callback::GroupTrack {
                group,
                policy,
                members,
                items,
            }) => Some(MsgEvent::GroupTrack {
                group,
                policy,
                members,
                items,
            }),
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "callback {} is not handled by this library",
                    other.name()
                )));
            }
        })
    }

    /// The underlying connection.
    pub fn connection(&mut self) -> &mut Connection<MsgProtocol> {
        &mut self.conn
    }
}

impl AsRawFd for Msg {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Msg {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Exec, start_service};
    use super::*;

    #[test]
    fn names_flags_and_sizes_are_checked_without_a_round_trip() {
        let (conn, server) = start_service::<MsgProtocol, _>(|_, _, req| panic!("{req:?}"));
        let mut msg = Msg::from_connection(conn);
        let ais = |r: Result<(), Error>| r.unwrap_err().ais_error();
        let long = [b'n'; MAX_NAME + 1];
        assert_eq!(
            msg.queue_open(&long, 0, None).unwrap_err().ais_error(),
            Some(AisError::NameTooLong)
        );
        assert_eq!(
            msg.queue_open(b"q", 0x80, None).unwrap_err().ais_error(),
            Some(AisError::BadFlags)
        );
        assert_eq!(
            msg.queue_open(b"q", OPEN_CREATE, None)
                .unwrap_err()
                .ais_error(),
            Some(AisError::InvalidParam)
        );
        let big = MessageBody {
            data: Bytes::from(vec![0; MAX_MESSAGE + 1]),
            ..MessageBody::default()
        };
        assert_eq!(ais(msg.message_send(b"q", &big)), Some(AisError::TooBig));
        let high = MessageBody {
            priority: 4,
            ..MessageBody::default()
        };
        assert_eq!(
            ais(msg.message_send(b"q", &high)),
            Some(AisError::InvalidParam)
        );
        assert_eq!(
            ais(msg.message_send(b"", &high)),
            Some(AisError::InvalidParam)
        );
        assert_eq!(ais(msg.group_create(b"g", 9)), Some(AisError::InvalidParam));
        assert_eq!(ais(msg.queue_unlink(b"")), Some(AisError::InvalidParam));
        drop(msg);
        assert!(server.join().unwrap().is_empty(), "nothing was sent");
    }

    #[test]
    fn calls_map_to_requests_and_answers_back() {
        let (conn, server) =
            start_service::<MsgProtocol, _>(|exec: &Exec<MsgProtocol>, id, req| {
                match req {
                    Request::Open { .. } => {
                        exec.reply(id, Reply::Service(Response::Opened { handle: 7 }));
                    }
                    Request::Get { handle: 7, .. } => {
                        exec.callback(Callback::Received { handle: 7 });
                        exec.reply(
                            id,
                            Reply::Service(Response::Message {
                                message: MessageBody {
                                    data: Bytes::from_static(b"hi"),
                                    ..MessageBody::default()
                                },
                                send_time: 5,
                                key: MsgKey::default(),
                            }),
                        );
                    }
                    Request::Send { .. } => exec.reply(id, Reply::Error(AisError::QueueFull)),
                    Request::SendReceive { reply_size: 8, .. } => exec.reply(
                        id,
                        Reply::Service(Response::Reply {
                            message: MessageBody {
                                data: Bytes::from_static(b"yes"),
                                ..MessageBody::default()
                            },
                            send_time: 6,
                        }),
                    ),
                    Request::Reply { to, .. } if to.tag == 3 => {
                        exec.reply(id, Reply::Error(AisError::NoSpace));
                    }
                    other => panic!("{other:?}"),
                }
                true
            });
        let mut msg = Msg::from_connection(conn);
        let h = msg.queue_open(b"q", 0, None).unwrap();
        assert_eq!(h, QueueHandle(7));
        let got = msg.message_get(h, TIME_END).unwrap();
        assert_eq!((&got.message.data[..], got.send_time), (&b"hi"[..], 5));
        assert_eq!(
            msg.message_send(b"q", &MessageBody::default())
                .unwrap_err()
                .ais_error(),
            Some(AisError::QueueFull)
        );
        assert_eq!(
            msg.dispatch(Some(Duration::ZERO)).unwrap(),
            Some(MsgEvent::Received { handle: h })
        );
        let replied = msg
            .message_send_receive(b"q", &MessageBody::default(), 8, TIME_END)
            .unwrap();
        assert_eq!(
            (&replied.message.data[..], replied.send_time),
            (&b"yes"[..], 6)
        );
        let to = MsgKey {
            tag: 3,
            ..MsgKey::default()
        };
        assert_eq!(
            msg.message_reply(to, &MessageBody::default())
                .unwrap_err()
                .ais_error(),
            Some(AisError::NoSpace)
        );
        drop(msg);
        assert_eq!(server.join().unwrap().len(), 5);
    }
}
