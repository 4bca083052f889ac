//! MSG (SA Forum message queues, B.01.01 semantics) on the IPC socket and on the ring. The
//! executive's half is `ais_core::services::msg`.
//!
//! Every node holds every queue and its messages. What changes a queue (open, close, unlink,
//! a send, a take of the head message for a get, a retention expiry) travels the ring as a
//! [`RingMessage::Update`] in safe order and is applied by every node at delivery; what only
//! reads (status, list) is answered from the local copy.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{AisError, Message, Protocol, ServiceId};

/// The MSG protocol.
#[derive(Debug, Clone, Copy)]
pub struct MsgProtocol;

impl Protocol for MsgProtocol {
    const ID: ServiceId = ServiceId(9);
    const NAME: &'static str = "msg";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// `SA_MSG_QUEUE_PERSISTENT`: the queue lives until unlinked.
pub const QUEUE_PERSISTENT: u32 = 0x1;
/// `SA_MSG_QUEUE_CREATE`.
pub const OPEN_CREATE: u8 = 0x1;
/// `SA_MSG_QUEUE_RECEIVE_CALLBACK`: the opener is told of each message that arrives.
pub const OPEN_RECEIVE_CALLBACK: u8 = 0x2;
/// `SA_MSG_QUEUE_EMPTY`: the messages the queue holds are dropped at the open.
pub const OPEN_EMPTY: u8 = 0x4;
/// Every open flag this build knows.
pub const OPEN_FLAGS: u8 = OPEN_CREATE | OPEN_RECEIVE_CALLBACK | OPEN_EMPTY;
/// `SA_MSG_QUEUE_GROUP_ROUND_ROBIN`: each member queue in turn.
pub const POLICY_ROUND_ROBIN: u8 = 1;
/// `SA_MSG_QUEUE_GROUP_LOCAL_ROUND_ROBIN`: each member queue opened at the sender's node in
/// turn.
pub const POLICY_LOCAL_ROUND_ROBIN: u8 = 2;
/// `SA_MSG_QUEUE_GROUP_LOCAL_BEST_QUEUE`: the member queue opened at the sender's node with
/// the most room in the message's priority area.
pub const POLICY_LOCAL_BEST_QUEUE: u8 = 3;
/// `SA_TRACK_CURRENT`.
pub const TRACK_CURRENT: u8 = 0x1;
/// `SA_TRACK_CHANGES`.
pub const TRACK_CHANGES: u8 = 0x2;
/// `SA_TRACK_CHANGES_ONLY`.
pub const TRACK_CHANGES_ONLY: u8 = 0x4;
/// `SA_MSG_QUEUE_GROUP_NO_CHANGE`.
pub const CHANGE_NONE: u8 = 1;
/// `SA_MSG_QUEUE_GROUP_ADDED`.
pub const CHANGE_ADDED: u8 = 2;
/// `SA_MSG_QUEUE_GROUP_REMOVED`.
pub const CHANGE_REMOVED: u8 = 3;
/// Priorities: 0 (`SA_MSG_MESSAGE_HIGHEST_PRIORITY`) to 3 (`..._LOWEST_PRIORITY`).
pub const PRIORITIES: usize = 4;
/// `SA_TIME_END`: never (a retention time) or wait for ever (a timeout).
pub const TIME_END: u64 = i64::MAX as u64;
/// Longest queue name (`SaNameT`) and sender name.
pub const MAX_NAME: usize = 256;
/// Most data bytes one message carries (what one IPC answer carries with its header).
pub const MAX_MESSAGE: usize = 128 * 1024;

/// A queue's creation attributes (`SaMsgQueueCreationAttributesT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attributes {
    /// [`QUEUE_PERSISTENT`] or 0.
    pub creation_flags: u32,
    /// Bytes each priority area holds at most.
    pub size: [u64; PRIORITIES],
    /// Nanoseconds a closed non-persistent queue lives on.
    pub retention_time: u64,
}

fn put_attrs(w: &mut Writer, a: &Attributes) {
    w.u32(a.creation_flags);
    for s in a.size {
        w.u64(s);
    }
    w.u64(a.retention_time);
}

fn get_attrs(r: &mut Reader) -> Result<Attributes, DecodeError> {
    let creation_flags = r.u32("creation flags")?;
    let mut size = [0; PRIORITIES];
    for s in &mut size {
        *s = r.u64("priority area size")?;
    }
    Ok(Attributes {
        creation_flags,
        size,
        retention_time: r.u64("retention time")?,
    })
}

fn put_opt_attrs(w: &mut Writer, a: &Option<Attributes>) {
    match a {
        None => {
            w.u8(0);
        }
        Some(a) => {
            w.u8(1);
            put_attrs(w, a);
        }
    }
}

fn get_opt_attrs(r: &mut Reader) -> Result<Option<Attributes>, DecodeError> {
    Ok(match r.bool("attributes present")? {
        false => None,
        true => Some(get_attrs(r)?),
    })
}

/// A message (`SaMsgMessageT`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageBody {
    /// Its type.
    pub msg_type: u32,
    /// Its version.
    pub version: u32,
    /// Its priority, 0 (highest) to 3.
    pub priority: u8,
    /// The sender's name (may be empty).
    pub sender_name: Bytes,
    /// Its data.
    pub data: Bytes,
}

fn put_body(w: &mut Writer, m: &MessageBody) {
    w.u32(m.msg_type)
        .u32(m.version)
        .u8(m.priority)
        .short_bytes(&m.sender_name)
        .long_bytes(&m.data);
}

fn get_body(r: &mut Reader) -> Result<MessageBody, DecodeError> {
    Ok(MessageBody {
        msg_type: r.u32("message type")?,
        version: r.u32("message version")?,
        priority: r.u8("priority")?,
        sender_name: r.short_bytes("sender name")?,
        data: r.long_bytes("data")?,
    })
}

/// A message's cluster-wide identity: its sender node, the ring it was sent in and the
/// sender's number for it. Unique without coordination (a restarted node is in a newer ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MsgKey {
    /// The ring's sequence number.
    pub seq: u64,
    /// The ring's representative.
    pub rep: u32,
    /// The sending node.
    pub node: u32,
    /// The sender's number.
    pub tag: u64,
}

impl std::fmt::Display for MsgKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}.{}#{}", self.node, self.rep, self.seq, self.tag)
    }
}

fn put_key(w: &mut Writer, k: &MsgKey) {
    w.u64(k.seq).u32(k.rep).u32(k.node).u64(k.tag);
}

fn get_key(r: &mut Reader) -> Result<MsgKey, DecodeError> {
    Ok(MsgKey {
        seq: r.u64("message key")?,
        rep: r.u32("message key")?,
        node: r.u32("message key")?,
        tag: r.u64("message key")?,
    })
}

/// A message as a queue holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    /// Its identity.
    pub key: MsgKey,
    /// The sender's clock when it was sent (nanoseconds since the UNIX epoch).
    pub send_time: u64,
    /// The message.
    pub body: MessageBody,
}

fn put_stored(w: &mut Writer, s: &Stored) {
    put_key(w, &s.key);
    w.u64(s.send_time);
    put_body(w, &s.body);
}

fn get_stored(r: &mut Reader) -> Result<Stored, DecodeError> {
    Ok(Stored {
        key: get_key(r)?,
        send_time: r.u64("send time")?,
        body: get_body(r)?,
    })
}

/// One priority area's use (`SaMsgQueueUsageT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Its size.
    pub size: u64,
    /// Bytes held.
    pub used: u64,
    /// Messages held.
    pub messages: u32,
}

/// A queue's status (`SaMsgQueueStatusT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Its creation flags.
    pub creation_flags: u32,
    /// Its retention time.
    pub retention_time: u64,
    /// When it was last closed (0 while open or never opened).
    pub close_time: u64,
    /// Open now.
    pub open: bool,
    /// Each priority area.
    pub usage: [Usage; PRIORITIES],
}

fn put_status(w: &mut Writer, s: &Status) {
    w.u32(s.creation_flags)
        .u64(s.retention_time)
        .u64(s.close_time)
        .u8(u8::from(s.open));
    for u in s.usage {
        w.u64(u.size).u64(u.used).u32(u.messages);
    }
}

fn get_status(r: &mut Reader) -> Result<Status, DecodeError> {
    let creation_flags = r.u32("creation flags")?;
    let retention_time = r.u64("retention time")?;
    let close_time = r.u64("close time")?;
    let open = r.bool("open")?;
    let mut usage = [Usage::default(); PRIORITIES];
    for u in &mut usage {
        *u = Usage {
            size: r.u64("size")?,
            used: r.u64("used")?,
            messages: r.u32("messages")?,
        };
    }
    Ok(Status {
        creation_flags,
        retention_time,
        close_time,
        open,
        usage,
    })
}

/// One queue in a group track answer or callback (`SaMsgQueueGroupNotificationT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupItem {
    /// The member queue's name.
    pub queue: Bytes,
    /// `CHANGE_*`.
    pub change: u8,
}

fn put_items(w: &mut Writer, items: &[GroupItem]) {
    w.count(items.len());
    for i in items {
        w.short_bytes(&i.queue).u8(i.change);
    }
}

fn get_items(r: &mut Reader) -> Result<Vec<GroupItem>, DecodeError> {
    let n = r.count("group items", 3)?;
    (0..n)
        .map(|_| {
            Ok(GroupItem {
                queue: r.short_bytes("queue name")?,
                change: r.u8("change")?,
            })
        })
        .collect()
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp { service: "msg", op }
}

/// A MSG request. Handles are the executive's numbers for one open of one queue by one
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `saMsgQueueOpen`: answered [`Response::Opened`].
    Open {
        /// The queue's name.
        name: Bytes,
        /// `OPEN_*` flags.
        flags: u8,
        /// With [`OPEN_CREATE`] (and only then): its creation attributes.
        attributes: Option<Attributes>,
    },
    /// `saMsgQueueOpenAsync`: answered `Ok` when Totem takes it, then [`Callback::Opened`].
    OpenAsync {
        /// The queue's name.
        name: Bytes,
        /// `OPEN_*` flags.
        flags: u8,
        /// With [`OPEN_CREATE`] (and only then): its creation attributes.
        attributes: Option<Attributes>,
        /// The caller's number for it.
        invocation: u64,
    },
    /// `saMsgQueueClose`: the queue stays, closed; a non-persistent one dies its retention
    /// time later.
    Close {
        /// The handle.
        handle: u64,
    },
    /// `saMsgQueueStatusGet`: answered [`Response::Status`].
    StatusGet {
        /// The queue's name.
        name: Bytes,
    },
    /// `saMsgQueueUnlink`: the queue goes now if closed, else at its close.
    Unlink {
        /// The queue's name.
        name: Bytes,
    },
    /// `saMsgMessageSend`: answered `Ok` once every node holds the message.
    Send {
        /// The destination queue's name.
        destination: Bytes,
        /// The message.
        message: MessageBody,
    },
    /// `saMsgMessageSendAsync`: answered `Ok`, then (with `ack`) [`Callback::Delivered`].
    SendAsync {
        /// The destination queue's name.
        destination: Bytes,
        /// The message.
        message: MessageBody,
        /// The caller's number for it.
        invocation: u64,
        /// `SA_MSG_MESSAGE_DELIVERED_ACK`: tell the outcome.
        ack: bool,
    },
    /// `saMsgMessageGet`: answered [`Response::Message`] with the head of the highest
    /// priority that holds one, waiting up to `timeout` nanoseconds for one.
    Get {
        /// The handle.
        handle: u64,
        /// Nanoseconds to wait ([`TIME_END`]: for ever).
        timeout: u64,
    },
    /// `saMsgQueueGroupCreate`.
    GroupCreate {
        /// The group's name.
        name: Bytes,
        /// `POLICY_*`.
        policy: u8,
    },
    /// `saMsgQueueGroupInsert`.
    GroupInsert {
        /// The group.
        group: Bytes,
        /// The queue.
        queue: Bytes,
    },
    /// `saMsgQueueGroupRemove`.
    GroupRemove {
        /// The group.
        group: Bytes,
        /// The queue.
        queue: Bytes,
    },
    /// `saMsgQueueGroupDelete`.
    GroupDelete {
        /// The group.
        group: Bytes,
    },
    /// `saMsgQueueGroupTrack`: with [`TRACK_CURRENT`] answered [`Response::Group`], else
    /// `Ok`; with [`TRACK_CHANGES`] or [`TRACK_CHANGES_ONLY`], [`Callback::GroupTrack`] at
    /// every change.
    GroupTrack {
        /// The group.
        group: Bytes,
        /// `TRACK_*` flags.
        flags: u8,
    },
    /// `saMsgQueueGroupTrackStop`.
    GroupTrackStop {
        /// The group.
        group: Bytes,
    },
    /// `saMsgMessageSendReceive`: a send whose caller waits up to `timeout` nanoseconds for
    /// the reply, answered [`Response::Reply`]. The got message's key is the sender id a
    /// replier names.
    SendReceive {
        /// The destination queue's name.
        destination: Bytes,
        /// The message.
        message: MessageBody,
        /// Most data bytes the caller takes in a reply (its buffer).
        reply_size: u64,
        /// Nanoseconds to wait for the reply ([`TIME_END`]: for ever).
        timeout: u64,
    },
    /// `saMsgMessageReply`: answered `Ok` once the reply is bound for its waiting sender.
    Reply {
        /// The key of the message replied to (its sender id).
        to: MsgKey,
        /// The reply.
        message: MessageBody,
    },
    /// `saMsgMessageReplyAsync`: answered `Ok`, then (with `ack`) [`Callback::Delivered`].
    ReplyAsync {
        /// The key of the message replied to.
        to: MsgKey,
        /// The reply.
        message: MessageBody,
        /// The caller's number for it.
        invocation: u64,
        /// `SA_MSG_MESSAGE_DELIVERED_ACK`: tell the outcome.
        ack: bool,
    },
    /// `saMsgMessageCancel`: the gets waiting on `handle` end with `INTERRUPT`. Sent on any
    /// connection of the handle's process (a waiting get blocks its own connection).
    Cancel {
        /// The handle.
        handle: u64,
    },
    /// The queues of the cluster (`aisctl msg ls`), by name, from the `start`-th.
    List {
        /// The first one's position (0 for the first page).
        start: u32,
    },
}

const OP_OPEN: u16 = 60;
const OP_CLOSE: u16 = 61;
const OP_STATUS: u16 = 62;
const OP_UNLINK: u16 = 63;
const OP_SEND: u16 = 64;
const OP_SEND_ASYNC: u16 = 65;
const OP_GET: u16 = 66;
const OP_LIST: u16 = 67;
const OP_GROUP_CREATE: u16 = 68;
const OP_GROUP_INSERT: u16 = 69;
const OP_GROUP_REMOVE: u16 = 70;
const OP_GROUP_DELETE: u16 = 71;
const OP_GROUP_TRACK: u16 = 72;
const OP_GROUP_TRACK_STOP: u16 = 73;
const OP_SEND_RECEIVE: u16 = 74;
const OP_REPLY: u16 = 75;
const OP_REPLY_ASYNC: u16 = 76;
const OP_CANCEL: u16 = 77;
const OP_OPEN_ASYNC: u16 = 78;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Open { .. } => OP_OPEN,
            Request::Close { .. } => OP_CLOSE,
            Request::StatusGet { .. } => OP_STATUS,
            Request::Unlink { .. } => OP_UNLINK,
            Request::Send { .. } => OP_SEND,
            Request::SendAsync { .. } => OP_SEND_ASYNC,
            Request::Get { .. } => OP_GET,
            Request::List { .. } => OP_LIST,
            Request::GroupCreate { .. } => OP_GROUP_CREATE,
            Request::GroupInsert { .. } => OP_GROUP_INSERT,
            Request::GroupRemove { .. } => OP_GROUP_REMOVE,
            Request::GroupDelete { .. } => OP_GROUP_DELETE,
            Request::GroupTrack { .. } => OP_GROUP_TRACK,
            Request::GroupTrackStop { .. } => OP_GROUP_TRACK_STOP,
            Request::SendReceive { .. } => OP_SEND_RECEIVE,
            Request::Reply { .. } => OP_REPLY,
            Request::ReplyAsync { .. } => OP_REPLY_ASYNC,
            Request::Cancel { .. } => OP_CANCEL,
            Request::OpenAsync { .. } => OP_OPEN_ASYNC,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Open { .. } => "MsgQueueOpen",
            Request::Close { .. } => "MsgQueueClose",
            Request::StatusGet { .. } => "MsgQueueStatusGet",
            Request::Unlink { .. } => "MsgQueueUnlink",
            Request::Send { .. } => "MsgMessageSend",
            Request::SendAsync { .. } => "MsgMessageSendAsync",
            Request::Get { .. } => "MsgMessageGet",
            Request::List { .. } => "MsgList",
            Request::GroupCreate { .. } => "MsgQueueGroupCreate",
            Request::GroupInsert { .. } => "MsgQueueGroupInsert",
            Request::GroupRemove { .. } => "MsgQueueGroupRemove",
            Request::GroupDelete { .. } => "MsgQueueGroupDelete",
            Request::GroupTrack { .. } => "MsgQueueGroupTrack",
            Request::GroupTrackStop { .. } => "MsgQueueGroupTrackStop",
            Request::SendReceive { .. } => "MsgMessageSendReceive",
            Request::Reply { .. } => "MsgMessageReply",
            Request::ReplyAsync { .. } => "MsgMessageReplyAsync",
            Request::Cancel { .. } => "MsgMessageCancel",
            Request::OpenAsync { .. } => "MsgQueueOpenAsync",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Open {
                name,
                flags,
                attributes,
            } => {
                w.short_bytes(name).u8(*flags);
                put_opt_attrs(w, attributes);
            }
            Request::OpenAsync {
                name,
                flags,
                attributes,
                invocation,
            } => {
                w.short_bytes(name).u8(*flags);
                put_opt_attrs(w, attributes);
                w.u64(*invocation);
            }
            Request::Close { handle } | Request::Cancel { handle } => {
                w.u64(*handle);
            }
            Request::StatusGet { name } | Request::Unlink { name } => {
                w.short_bytes(name);
            }
            Request::Send {
                destination,
                message,
            } => {
                w.short_bytes(destination);
                put_body(w, message);
            }
            Request::SendAsync {
                destination,
                message,
                invocation,
                ack,
            } => {
                w.short_bytes(destination);
                put_body(w, message);
                w.u64(*invocation).u8(u8::from(*ack));
            }
            Request::Get { handle, timeout } => {
                w.u64(*handle).u64(*timeout);
            }
            Request::List { start } => {
                w.u32(*start);
            }
            Request::GroupCreate { name, policy } => {
                w.short_bytes(name).u8(*policy);
            }
            Request::GroupInsert { group, queue } | Request::GroupRemove { group, queue } => {
                w.short_bytes(group).short_bytes(queue);
            }
            Request::GroupDelete { group } | Request::GroupTrackStop { group } => {
                w.short_bytes(group);
            }
            Request::GroupTrack { group, flags } => {
                w.short_bytes(group).u8(*flags);
            }
            Request::SendReceive {
                destination,
                message,
                reply_size,
                timeout,
            } => {
                w.short_bytes(destination);
                put_body(w, message);
                w.u64(*reply_size).u64(*timeout);
            }
            Request::Reply { to, message } => {
                put_key(w, to);
                put_body(w, message);
            }
            Request::ReplyAsync {
                to,
                message,
                invocation,
                ack,
            } => {
                put_key(w, to);
                put_body(w, message);
                w.u64(*invocation).u8(u8::from(*ack));
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            OP_OPEN => Request::Open {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
                attributes: get_opt_attrs(r)?,
            },
            OP_CLOSE => Request::Close {
                handle: r.u64("handle")?,
            },
            OP_STATUS => Request::StatusGet {
                name: r.short_bytes("name")?,
            },
            OP_UNLINK => Request::Unlink {
                name: r.short_bytes("name")?,
            },
            OP_SEND => Request::Send {
                destination: r.short_bytes("destination")?,
                message: get_body(r)?,
            },
            OP_SEND_ASYNC => Request::SendAsync {
                destination: r.short_bytes("destination")?,
                message: get_body(r)?,
                invocation: r.u64("invocation")?,
                ack: r.bool("ack")?,
            },
            OP_GET => Request::Get {
                handle: r.u64("handle")?,
                timeout: r.u64("timeout")?,
            },
            OP_LIST => Request::List {
                start: r.u32("start")?,
            },
            OP_GROUP_CREATE => Request::GroupCreate {
                name: r.short_bytes("group name")?,
                policy: r.u8("policy")?,
            },
            OP_GROUP_INSERT => Request::GroupInsert {
                group: r.short_bytes("group name")?,
                queue: r.short_bytes("queue name")?,
            },
            OP_GROUP_REMOVE => Request::GroupRemove {
                group: r.short_bytes("group name")?,
                queue: r.short_bytes("queue name")?,
            },
            OP_GROUP_DELETE => Request::GroupDelete {
                group: r.short_bytes("group name")?,
            },
            OP_GROUP_TRACK => Request::GroupTrack {
                group: r.short_bytes("group name")?,
                flags: r.u8("track flags")?,
            },
            OP_GROUP_TRACK_STOP => Request::GroupTrackStop {
                group: r.short_bytes("group name")?,
            },
            OP_SEND_RECEIVE => Request::SendReceive {
                destination: r.short_bytes("destination")?,
                message: get_body(r)?,
                reply_size: r.u64("reply size")?,
                timeout: r.u64("timeout")?,
            },
            OP_OPEN_ASYNC => Request::OpenAsync {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
                attributes: get_opt_attrs(r)?,
                invocation: r.u64("invocation")?,
            },
            OP_CANCEL => Request::Cancel {
                handle: r.u64("handle")?,
            },
            OP_REPLY => Request::Reply {
                to: get_key(r)?,
                message: get_body(r)?,
            },
            OP_REPLY_ASYNC => Request::ReplyAsync {
                to: get_key(r)?,
                message: get_body(r)?,
                invocation: r.u64("invocation")?,
                ack: r.bool("ack")?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// One queue in a [`Response::List`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Its name.
    pub name: Bytes,
    /// Its status.
    pub status: Status,
    /// Unlinked (goes at its close).
    pub unlinked: bool,
    /// The node of its opener (0 when closed).
    pub opener_node: u32,
}

/// A MSG answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Open`].
    Opened {
        /// The new handle.
        handle: u64,
    },
    /// Answer to [`Request::StatusGet`].
    Status(Status),
    /// Answer to [`Request::Get`].
    Message {
        /// The message.
        message: MessageBody,
        /// When it was sent (the sender's clock).
        send_time: u64,
        /// Its identity (the sender's node is `key.node`).
        key: MsgKey,
    },
    /// Answer to [`Request::GroupTrack`] with [`TRACK_CURRENT`]: the members.
    Group {
        /// The group's policy.
        policy: u8,
        /// Its member queues (change [`CHANGE_NONE`]).
        items: Vec<GroupItem>,
    },
    /// Answer to [`Request::SendReceive`]: the reply.
    Reply {
        /// The reply.
        message: MessageBody,
        /// When it was sent (the replier's clock).
        send_time: u64,
    },
    /// Answer to [`Request::List`].
    List {
        /// The queues.
        items: Vec<QueueInfo>,
        /// Where the next page starts; `None` after the last.
        next: Option<u32>,
    },
}

const R_OPENED: u16 = 60;
const R_STATUS: u16 = 61;
const R_MESSAGE: u16 = 62;
const R_LIST: u16 = 63;
const R_GROUP: u16 = 64;
const R_REPLY: u16 = 65;

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::Opened { .. } => R_OPENED,
            Response::Status(_) => R_STATUS,
            Response::Message { .. } => R_MESSAGE,
            Response::List { .. } => R_LIST,
            Response::Group { .. } => R_GROUP,
            Response::Reply { .. } => R_REPLY,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::Opened { .. } => "MsgOpened",
            Response::Status(_) => "MsgStatus",
            Response::Message { .. } => "MsgMessage",
            Response::List { .. } => "MsgList",
            Response::Group { .. } => "MsgGroup",
            Response::Reply { .. } => "MsgReply",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::Opened { handle } => {
                w.u64(*handle);
            }
            Response::Status(s) => put_status(w, s),
            Response::Message {
                message,
                send_time,
                key,
            } => {
                put_body(w, message);
                w.u64(*send_time);
                put_key(w, key);
            }
            Response::Group { policy, items } => {
                w.u8(*policy);
                put_items(w, items);
            }
            Response::Reply { message, send_time } => {
                put_body(w, message);
                w.u64(*send_time);
            }
            Response::List { items, next } => {
                w.count(items.len());
                for i in items {
                    w.short_bytes(&i.name);
                    put_status(w, &i.status);
                    w.u8(u8::from(i.unlinked)).u32(i.opener_node);
                }
                match next {
                    None => {
                        w.u8(0);
                    }
                    Some(n) => {
                        w.u8(1).u32(*n);
                    }
                }
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            R_OPENED => Response::Opened {
                handle: r.u64("handle")?,
            },
            R_STATUS => Response::Status(get_status(r)?),
            R_MESSAGE => Response::Message {
                message: get_body(r)?,
                send_time: r.u64("send time")?,
                key: get_key(r)?,
            },
            R_GROUP => Response::Group {
                policy: r.u8("policy")?,
                items: get_items(r)?,
            },
            R_REPLY => Response::Reply {
                message: get_body(r)?,
                send_time: r.u64("send time")?,
            },
            R_LIST => {
                let n = r.count("queues", 2 + 4 + 8 + 8 + 1 + 4 * 20 + 1 + 4)?;
                let items = (0..n)
                    .map(|_| {
                        Ok(QueueInfo {
                            name: r.short_bytes("name")?,
                            status: get_status(r)?,
                            unlinked: r.bool("unlinked")?,
                            opener_node: r.u32("opener node")?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                let next = match r.bool("next present")? {
                    false => None,
                    true => Some(r.u32("next")?),
                };
                Response::List { items, next }
            }
            other => return Err(unknown(other)),
        })
    }
}

/// A MSG callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The outcome of a [`Request::SendAsync`] with `ack` (`saMsgMessageDeliveredCallback`).
    Delivered {
        /// The caller's number.
        invocation: u64,
        /// Queued, or why not.
        result: Result<(), AisError>,
    },
    /// A message arrived in a queue opened with [`OPEN_RECEIVE_CALLBACK`]
    /// (`saMsgMessageReceivedCallback`).
    Received {
        /// The handle of the queue.
        handle: u64,
    },
    /// The outcome of a [`Request::OpenAsync`] (`saMsgQueueOpenCallback`): the handle, or
    /// why not.
    Opened {
        /// The caller's number.
        invocation: u64,
        /// The new handle, or the open's error.
        result: Result<u64, AisError>,
    },
    /// A tracked group changed (`saMsgQueueGroupTrackCallback`).
    GroupTrack {
        /// The group.
        group: Bytes,
        /// Its policy.
        policy: u8,
        /// Its members now.
        members: u32,
        /// With [`TRACK_CHANGES`]: every member and the removed ones; with
        /// [`TRACK_CHANGES_ONLY`]: the changed ones.
        items: Vec<GroupItem>,
    },
}

const C_DELIVERED: u16 = 60;
const C_RECEIVED: u16 = 61;
const C_GROUP_TRACK: u16 = 62;
const C_OPENED: u16 = 63;

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::Delivered { .. } => C_DELIVERED,
            Callback::Received { .. } => C_RECEIVED,
            Callback::GroupTrack { .. } => C_GROUP_TRACK,
            Callback::Opened { .. } => C_OPENED,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::Delivered { .. } => "MsgDeliveredCallback",
            Callback::Received { .. } => "MsgReceivedCallback",
            Callback::GroupTrack { .. } => "MsgQueueGroupTrackCallback",
            Callback::Opened { .. } => "MsgQueueOpenCallback",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Callback::Delivered { invocation, result } => {
                w.u64(*invocation).u32(match result {
                    Ok(()) => 1,
                    Err(e) => e.code(),
                });
            }
            Callback::Received { handle } => {
                w.u64(*handle);
            }
            Callback::Opened { invocation, result } => {
                w.u64(*invocation);
                match result {
                    Ok(handle) => w.u32(1).u64(*handle),
                    Err(e) => w.u32(e.code()).u64(0),
                };
            }
            Callback::GroupTrack {
                group,
                policy,
                members,
                items,
            } => {
                w.short_bytes(group).u8(*policy).u32(*members);
                put_items(w, items);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            C_DELIVERED => {
                let invocation = r.u64("invocation")?;
                let result = match r.u32("error")? {
                    1 => Ok(()),
                    code => Err(AisError::from_code(code)),
                };
                Callback::Delivered { invocation, result }
            }
            C_OPENED => {
                let invocation = r.u64("invocation")?;
                let code = r.u32("error")?;
                let handle = r.u64("handle")?;
                let result = match code {
                    1 => Ok(handle),
                    code => Err(AisError::from_code(code)),
                };
                Callback::Opened { invocation, result }
            }
            C_RECEIVED => Callback::Received {
                handle: r.u64("handle")?,
            },
            C_GROUP_TRACK => Callback::GroupTrack {
                group: r.short_bytes("group name")?,
                policy: r.u8("policy")?,
                members: r.u32("members")?,
                items: get_items(r)?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// A queue's cluster-wide identity: the ring it was created in and its number among the
/// queues created there. Ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct QueueId {
    /// The ring's sequence number.
    pub seq: u64,
    /// The ring's representative.
    pub rep: u32,
    /// Its number in that ring.
    pub n: u32,
}

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.rep, self.seq, self.n)
    }
}

fn put_id(w: &mut Writer, id: &QueueId) {
    w.u64(id.seq).u32(id.rep).u32(id.n);
}

fn get_id(r: &mut Reader) -> Result<QueueId, DecodeError> {
    Ok(QueueId {
        seq: r.u64("queue id")?,
        rep: r.u32("queue id")?,
        n: r.u32("queue id")?,
    })
}

/// The opener of a queue: a connection of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Opener {
    /// The node.
    pub node: u32,
    /// The connection (the node's number for it).
    pub conn: u64,
    /// Its open flags.
    pub flags: u8,
}

/// What an [`RingMessage::Update`] changes, applied by every node at delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Open (with `attributes`, create when missing) the queue named `name` for the sender's
    /// connection `conn`.
    Open {
        /// Its name.
        name: Bytes,
        /// Creation attributes (`OPEN_CREATE`).
        attributes: Option<Attributes>,
        /// Open flags.
        flags: u8,
        /// The opening connection.
        conn: u64,
    },
    /// The open of `conn` (of the sender) ends.
    Close {
        /// The queue.
        id: QueueId,
        /// The connection.
        conn: u64,
    },
    /// Free the name.
    Unlink {
        /// The name.
        name: Bytes,
    },
    /// A message into the queue named `destination` (its key is the update's sender, ring
    /// and tag).
    Send {
        /// The queue's name.
        destination: Bytes,
        /// The message.
        message: MessageBody,
    },
    /// The opener `conn` (of the sender) takes the head message for a get.
    Take {
        /// The queue.
        id: QueueId,
        /// The connection.
        conn: u64,
    },
    /// A new queue group.
    GroupCreate {
        /// Its name.
        name: Bytes,
        /// `POLICY_*`.
        policy: u8,
    },
    /// A queue joins a group.
    GroupInsert {
        /// The group.
        group: Bytes,
        /// The queue.
        queue: Bytes,
    },
    /// A queue leaves a group.
    GroupRemove {
        /// The group.
        group: Bytes,
        /// The queue.
        queue: Bytes,
    },
    /// A group goes.
    GroupDelete {
        /// The group.
        group: Bytes,
    },
    /// A send whose caller waits for a reply: a [`Update::Send`] after which every node
    /// awaits a reply to the message (its key) of at most `reply_size` data bytes.
    SendReceive {
        /// The queue's name.
        destination: Bytes,
        /// The message.
        message: MessageBody,
        /// Most data bytes of the reply.
        reply_size: u64,
    },
    /// A reply to the message `to`, handed to its waiting sender at `to.node`.
    Reply {
        /// The key of the message replied to.
        to: MsgKey,
        /// The reply.
        message: MessageBody,
    },
    /// The sender of `to` (this update's sender) stops waiting: its time ran out or its
    /// process is gone. A later reply is refused.
    ReplyEnd {
        /// The key of the message it sent.
        to: MsgKey,
    },
    /// After a sync: the sender of `to` (this update's sender) still waits for a reply.
    ReplyAwait {
        /// The key of the message it sent.
        to: MsgKey,
        /// Most data bytes of the reply.
        reply_size: u64,
    },
    /// A retention timer ran out at the sender: delete the queue if it is still closed since
    /// the same close.
    RetentionExpired {
        /// The queue.
        id: QueueId,
        /// Its count of closes when the timer was armed.
        epoch: u64,
    },
}

/// The sender's limits, carried by every update so that every node decides alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most queues.
    pub max_queues: u32,
    /// Most bytes of one queue's priority areas together.
    pub max_queue_size: u64,
    /// Most message bytes held by all queues together.
    pub max_memory: u64,
    /// Most queue groups.
    pub max_groups: u32,
}

/// A MSG message on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A change, sent in ring `(rep, seq)` (refused at delivery in any other ring).
    Update {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The sender's number for it.
        tag: u64,
        /// The sender's limits.
        limits: Limits,
        /// The sender's clock (nanoseconds since the UNIX epoch).
        time: u64,
        /// What changes.
        update: Update,
    },
    /// Sync, first step, sent by every member: each queue it holds with the digest of its
    /// history, the opens of its connections, and the queues it knows were deleted.
    Summary {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// `(queue, history digest)`.
        held: Vec<(QueueId, u64)>,
        /// `(queue, connection, open flags)` of the sender's live opens.
        opens: Vec<(QueueId, u64, u8)>,
        /// Queues deleted (most recent last).
        deleted: Vec<QueueId>,
    },
    /// Sync, second step: one copy of a queue, sent by the lowest member holding it; its
    /// messages follow as [`RingMessage::SyncMessage`].
    SyncQueue {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The copy's header.
        copy: CopyHeader,
    },
    /// Sync, first step too, sent by every member: the queue groups it holds and the groups
    /// it knows were deleted.
    SyncGroups {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The groups.
        groups: Vec<GroupCopy>,
        /// Groups deleted (most recent last).
        deleted: Vec<QueueId>,
    },
    /// One message of a copy sent with [`RingMessage::SyncQueue`].
    SyncMessage {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The queue.
        id: QueueId,
        /// The copy's history digest.
        history: u64,
        /// The message.
        message: Stored,
    },
}

/// A queue group, in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCopy {
    /// Its identity (as a queue's: ring and number).
    pub id: QueueId,
    /// Its name.
    pub name: Bytes,
    /// `POLICY_*`.
    pub policy: u8,
    /// Member queue names, in insertion order.
    pub members: Vec<Bytes>,
    /// Changes to its membership since its creation.
    pub generation: u64,
    /// The round-robin position.
    pub cursor: u32,
    /// The local round-robin position of each node.
    pub local: Vec<(u32, u32)>,
}

fn put_group(w: &mut Writer, g: &GroupCopy) {
    put_id(w, &g.id);
    w.short_bytes(&g.name).u8(g.policy).count(g.members.len());
    for m in &g.members {
        w.short_bytes(m);
    }
    w.u64(g.generation).u32(g.cursor).count(g.local.len());
    for (n, c) in &g.local {
        w.u32(*n).u32(*c);
    }
}

fn get_group(r: &mut Reader) -> Result<GroupCopy, DecodeError> {
    let id = get_id(r)?;
    let name = r.short_bytes("group name")?;
    let policy = r.u8("policy")?;
    let n = r.count("group members", 2)?;
    let members = (0..n)
        .map(|_| r.short_bytes("queue name"))
        .collect::<Result<_, _>>()?;
    let generation = r.u64("generation")?;
    let cursor = r.u32("cursor")?;
    let n = r.count("local cursors", 8)?;
    let local = (0..n)
        .map(|_| Ok((r.u32("node")?, r.u32("cursor")?)))
        .collect::<Result<_, DecodeError>>()?;
    Ok(GroupCopy {
        id,
        name,
        policy,
        members,
        generation,
        cursor,
        local,
    })
}

/// A queue copy's header, in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyHeader {
    /// Its identity.
    pub id: QueueId,
    /// Its name.
    pub name: Bytes,
    /// Its attributes.
    pub attributes: Attributes,
    /// Unlinked.
    pub unlinked: bool,
    /// The digest of its history.
    pub history: u64,
    /// Count of closes (retention timers).
    pub close_epoch: u64,
    /// When it was last closed.
    pub close_time: u64,
    /// Messages that follow.
    pub messages: u32,
    /// Keys of messages taken (most recent last).
    pub taken: Vec<MsgKey>,
}

const RING_UPDATE: u16 = 1;
const RING_SUMMARY: u16 = 2;
const RING_SYNC_QUEUE: u16 = 3;
const RING_SYNC_MESSAGE: u16 = 4;
const RING_SYNC_GROUPS: u16 = 5;

fn put_update(w: &mut Writer, u: &Update) {
    match u {
        Update::Open {
            name,
            attributes,
            flags,
            conn,
        } => {
            w.u8(1).short_bytes(name);
            put_opt_attrs(w, attributes);
            w.u8(*flags).u64(*conn);
        }
        Update::Close { id, conn } => {
            w.u8(2);
            put_id(w, id);
            w.u64(*conn);
        }
        Update::Unlink { name } => {
            w.u8(3).short_bytes(name);
        }
        Update::Send {
            destination,
            message,
        } => {
            w.u8(4).short_bytes(destination);
            put_body(w, message);
        }
        Update::Take { id, conn } => {
            w.u8(5);
            put_id(w, id);
            w.u64(*conn);
        }
        Update::RetentionExpired { id, epoch } => {
            w.u8(6);
            put_id(w, id);
            w.u64(*epoch);
        }
        Update::GroupCreate { name, policy } => {
            w.u8(7).short_bytes(name).u8(*policy);
        }
        Update::GroupInsert { group, queue } => {
            w.u8(8).short_bytes(group).short_bytes(queue);
        }
        Update::GroupRemove { group, queue } => {
            w.u8(9).short_bytes(group).short_bytes(queue);
        }
        Update::GroupDelete { group } => {
            w.u8(10).short_bytes(group);
        }
        Update::SendReceive {
            destination,
            message,
            reply_size,
        } => {
            w.u8(11).short_bytes(destination);
            put_body(w, message);
            w.u64(*reply_size);
        }
        Update::Reply { to, message } => {
            w.u8(12);
            put_key(w, to);
            put_body(w, message);
        }
        Update::ReplyEnd { to } => {
            w.u8(13);
            put_key(w, to);
        }
        Update::ReplyAwait { to, reply_size } => {
            w.u8(14);
            put_key(w, to);
            w.u64(*reply_size);
        }
    }
}

fn get_update(r: &mut Reader) -> Result<Update, DecodeError> {
    Ok(match r.u8("update")? {
        1 => Update::Open {
            name: r.short_bytes("name")?,
            attributes: get_opt_attrs(r)?,
            flags: r.u8("open flags")?,
            conn: r.u64("connection")?,
        },
        2 => Update::Close {
            id: get_id(r)?,
            conn: r.u64("connection")?,
        },
        3 => Update::Unlink {
            name: r.short_bytes("name")?,
        },
        4 => Update::Send {
            destination: r.short_bytes("destination")?,
            message: get_body(r)?,
        },
        5 => Update::Take {
            id: get_id(r)?,
            conn: r.u64("connection")?,
        },
        6 => Update::RetentionExpired {
            id: get_id(r)?,
            epoch: r.u64("close epoch")?,
        },
        7 => Update::GroupCreate {
            name: r.short_bytes("group name")?,
            policy: r.u8("policy")?,
        },
        8 => Update::GroupInsert {
            group: r.short_bytes("group name")?,
            queue: r.short_bytes("queue name")?,
        },
        9 => Update::GroupRemove {
            group: r.short_bytes("group name")?,
            queue: r.short_bytes("queue name")?,
        },
        10 => Update::GroupDelete {
            group: r.short_bytes("group name")?,
        },
        11 => Update::SendReceive {
            destination: r.short_bytes("destination")?,
            message: get_body(r)?,
            reply_size: r.u64("reply size")?,
        },
        12 => Update::Reply {
            to: get_key(r)?,
            message: get_body(r)?,
        },
        13 => Update::ReplyEnd { to: get_key(r)? },
        14 => Update::ReplyAwait {
            to: get_key(r)?,
            reply_size: r.u64("reply size")?,
        },
        v => {
            return Err(DecodeError::Unknown {
                what: "queue update",
                value: u64::from(v),
            });
        }
    })
}

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Update { .. } => RING_UPDATE,
            RingMessage::Summary { .. } => RING_SUMMARY,
            RingMessage::SyncQueue { .. } => RING_SYNC_QUEUE,
            RingMessage::SyncMessage { .. } => RING_SYNC_MESSAGE,
            RingMessage::SyncGroups { .. } => RING_SYNC_GROUPS,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Update { .. } => "MsgUpdate",
            RingMessage::Summary { .. } => "MsgSummary",
            RingMessage::SyncQueue { .. } => "MsgSyncQueue",
            RingMessage::SyncMessage { .. } => "MsgSyncMessage",
            RingMessage::SyncGroups { .. } => "MsgSyncGroups",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Update {
                rep,
                seq,
                tag,
                limits,
                time,
                update,
            } => {
                w.u32(*rep)
                    .u64(*seq)
                    .u64(*tag)
                    .u32(limits.max_queues)
                    .u64(limits.max_queue_size)
                    .u64(limits.max_memory)
                    .u32(limits.max_groups)
                    .u64(*time);
                put_update(w, update);
            }
            RingMessage::Summary {
                rep,
                seq,
                held,
                opens,
                deleted,
            } => {
                w.u32(*rep).u64(*seq).count(held.len());
                for (id, history) in held {
                    put_id(w, id);
                    w.u64(*history);
                }
                w.count(opens.len());
                for (id, conn, flags) in opens {
                    put_id(w, id);
                    w.u64(*conn).u8(*flags);
                }
                w.count(deleted.len());
                for id in deleted {
                    put_id(w, id);
                }
            }
            RingMessage::SyncQueue { rep, seq, copy } => {
                w.u32(*rep).u64(*seq);
                put_id(w, &copy.id);
                w.short_bytes(&copy.name);
                put_attrs(w, &copy.attributes);
                w.u8(u8::from(copy.unlinked))
                    .u64(copy.history)
                    .u64(copy.close_epoch)
                    .u64(copy.close_time)
                    .u32(copy.messages)
                    .count(copy.taken.len());
                for k in &copy.taken {
                    put_key(w, k);
                }
            }
            RingMessage::SyncGroups {
                rep,
                seq,
                groups,
                deleted,
            } => {
                w.u32(*rep).u64(*seq).count(groups.len());
                for g in groups {
                    put_group(w, g);
                }
                w.count(deleted.len());
                for id in deleted {
                    put_id(w, id);
                }
            }
            RingMessage::SyncMessage {
                rep,
                seq,
                id,
                history,
                message,
            } => {
                w.u32(*rep).u64(*seq);
                put_id(w, id);
                w.u64(*history);
                put_stored(w, message);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            RING_UPDATE => RingMessage::Update {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                tag: r.u64("tag")?,
                limits: Limits {
                    max_queues: r.u32("max queues")?,
                    max_queue_size: r.u64("max queue size")?,
                    max_memory: r.u64("max memory")?,
                    max_groups: r.u32("max groups")?,
                },
                time: r.u64("time")?,
                update: get_update(r)?,
            },
            RING_SUMMARY => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let n = r.count("queues held", 16 + 8)?;
                let held = (0..n)
                    .map(|_| Ok((get_id(r)?, r.u64("history")?)))
                    .collect::<Result<_, DecodeError>>()?;
                let n = r.count("opens", 16 + 8 + 1)?;
                let opens = (0..n)
                    .map(|_| Ok((get_id(r)?, r.u64("connection")?, r.u8("open flags")?)))
                    .collect::<Result<_, DecodeError>>()?;
                let n = r.count("queues deleted", 16)?;
                let deleted = (0..n).map(|_| get_id(r)).collect::<Result<_, _>>()?;
                RingMessage::Summary {
                    rep,
                    seq,
                    held,
                    opens,
                    deleted,
                }
            }
            RING_SYNC_QUEUE => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let id = get_id(r)?;
                let name = r.short_bytes("name")?;
                let attributes = get_attrs(r)?;
                let unlinked = r.bool("unlinked")?;
                let history = r.u64("history")?;
                let close_epoch = r.u64("close epoch")?;
                let close_time = r.u64("close time")?;
                let messages = r.u32("messages")?;
                let n = r.count("taken", 24)?;
                let taken = (0..n).map(|_| get_key(r)).collect::<Result<_, _>>()?;
                RingMessage::SyncQueue {
                    rep,
                    seq,
                    copy: CopyHeader {
                        id,
                        name,
                        attributes,
                        unlinked,
                        history,
                        close_epoch,
                        close_time,
                        messages,
                        taken,
                    },
                }
            }
            RING_SYNC_GROUPS => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let n = r.count("groups", 16 + 2 + 1 + 4 + 8 + 4 + 4)?;
                let groups = (0..n).map(|_| get_group(r)).collect::<Result<_, _>>()?;
                let n = r.count("groups deleted", 16)?;
                let deleted = (0..n).map(|_| get_id(r)).collect::<Result<_, _>>()?;
                RingMessage::SyncGroups {
                    rep,
                    seq,
                    groups,
                    deleted,
                }
            }
            RING_SYNC_MESSAGE => RingMessage::SyncMessage {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                id: get_id(r)?,
                history: r.u64("history")?,
                message: get_stored(r)?,
            },
            other => return Err(unknown(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn attrs() -> Attributes {
        Attributes {
            creation_flags: QUEUE_PERSISTENT,
            size: [10, 20, 30, 40],
            retention_time: TIME_END,
        }
    }

    fn body() -> MessageBody {
        MessageBody {
            msg_type: 3,
            version: 1,
            priority: 2,
            sender_name: b("me"),
            data: b("hello"),
        }
    }

    fn id() -> QueueId {
        QueueId {
            seq: 8,
            rep: 1,
            n: 2,
        }
    }

    fn key() -> MsgKey {
        MsgKey {
            seq: 8,
            rep: 1,
            node: 3,
            tag: 9,
        }
    }

    #[test]
    fn every_msg_message_round_trips() {
        let reqs = [
            Request::Open {
                name: b("q"),
                flags: OPEN_CREATE | OPEN_RECEIVE_CALLBACK,
                attributes: Some(attrs()),
            },
            Request::Open {
                name: b("q"),
                flags: OPEN_EMPTY,
                attributes: None,
            },
            Request::Close { handle: 4 },
            Request::StatusGet { name: b("q") },
            Request::Unlink { name: b("q") },
            Request::Send {
                destination: b("q"),
                message: body(),
            },
            Request::SendAsync {
                destination: b("q"),
                message: body(),
                invocation: 5,
                ack: true,
            },
            Request::Get {
                handle: 4,
                timeout: TIME_END,
            },
            Request::List { start: 3 },
            Request::GroupCreate {
                name: b("g"),
                policy: POLICY_LOCAL_BEST_QUEUE,
            },
            Request::GroupInsert {
                group: b("g"),
                queue: b("q"),
            },
            Request::GroupRemove {
                group: b("g"),
                queue: b("q"),
            },
            Request::GroupDelete { group: b("g") },
            Request::GroupTrack {
                group: b("g"),
                flags: TRACK_CURRENT | TRACK_CHANGES,
            },
            Request::GroupTrackStop { group: b("g") },
            Request::SendReceive {
                destination: b("q"),
                message: body(),
                reply_size: 64,
                timeout: TIME_END,
            },
            Request::Reply {
                to: key(),
                message: body(),
            },
            Request::ReplyAsync {
                to: key(),
                message: body(),
                invocation: 3,
                ack: true,
            },
            Request::Cancel { handle: 5 },
            Request::OpenAsync {
                name: b("q"),
                flags: OPEN_CREATE,
                attributes: Some(attrs()),
                invocation: 6,
            },
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let status = Status {
            creation_flags: 1,
            retention_time: 5,
            close_time: 6,
            open: true,
            usage: [Usage {
                size: 10,
                used: 4,
                messages: 1,
            }; PRIORITIES],
        };
        let resps = [
            Response::Opened { handle: 4 },
            Response::Status(status),
            Response::Message {
                message: body(),
                send_time: 77,
                key: key(),
            },
            Response::List {
                items: vec![QueueInfo {
                    name: b("q"),
                    status,
                    unlinked: true,
                    opener_node: 2,
                }],
                next: Some(1),
            },
            Response::List {
                items: vec![],
                next: None,
            },
            Response::Group {
                policy: POLICY_ROUND_ROBIN,
                items: vec![GroupItem {
                    queue: b("q"),
                    change: CHANGE_NONE,
                }],
            },
            Response::Reply {
                message: body(),
                send_time: 78,
            },
        ];
        assert!(resps.iter().all(|r| r.op() >= FIRST_RESPONSE_OP));
        assert_round_trips(Kind::Response, &resps);
        assert_round_trips(
            Kind::Callback,
            &[
                Callback::Delivered {
                    invocation: 1,
                    result: Ok(()),
                },
                Callback::Delivered {
                    invocation: 1,
                    result: Err(AisError::QueueFull),
                },
                Callback::Received { handle: 3 },
                Callback::Opened {
                    invocation: 4,
                    result: Ok(9),
                },
                Callback::Opened {
                    invocation: 5,
                    result: Err(AisError::Busy),
                },
                Callback::GroupTrack {
                    group: b("g"),
                    policy: POLICY_LOCAL_ROUND_ROBIN,
                    members: 1,
                    items: vec![GroupItem {
                        queue: b("q"),
                        change: CHANGE_ADDED,
                    }],
                },
            ],
        );
        let update = |u| RingMessage::Update {
            rep: 1,
            seq: 8,
            tag: 2,
            limits: Limits {
                max_queues: 3,
                max_queue_size: 4,
                max_memory: 5,
                max_groups: 6,
            },
            time: 12,
            update: u,
        };
        assert_round_trips(
            Kind::Request,
            &[
                update(Update::Open {
                    name: b("q"),
                    attributes: Some(attrs()),
                    flags: OPEN_CREATE,
                    conn: 7,
                }),
                update(Update::Open {
                    name: b("q"),
                    attributes: None,
                    flags: 0,
                    conn: 7,
                }),
                update(Update::Close { id: id(), conn: 7 }),
                update(Update::Unlink { name: b("q") }),
                update(Update::Send {
                    destination: b("q"),
                    message: body(),
                }),
                update(Update::Take { id: id(), conn: 7 }),
                update(Update::RetentionExpired { id: id(), epoch: 3 }),
                update(Update::GroupCreate {
                    name: b("g"),
                    policy: POLICY_ROUND_ROBIN,
                }),
                update(Update::GroupInsert {
                    group: b("g"),
                    queue: b("q"),
                }),
                update(Update::GroupRemove {
                    group: b("g"),
                    queue: b("q"),
                }),
                update(Update::GroupDelete { group: b("g") }),
                update(Update::SendReceive {
                    destination: b("q"),
                    message: body(),
                    reply_size: 9,
                }),
                update(Update::Reply {
                    to: MsgKey {
                        seq: 1,
                        rep: 2,
                        node: 3,
                        tag: 4,
                    },
                    message: body(),
                }),
                update(Update::ReplyEnd {
                    to: MsgKey::default(),
                }),
                update(Update::ReplyAwait {
                    to: MsgKey::default(),
                    reply_size: 5,
                }),
                RingMessage::SyncGroups {
                    rep: 1,
                    seq: 8,
                    groups: vec![GroupCopy {
                        id: id(),
                        name: b("g"),
                        policy: POLICY_LOCAL_ROUND_ROBIN,
                        members: vec![b("q"), b("r")],
                        generation: 3,
                        cursor: 1,
                        local: vec![(2, 1)],
                    }],
                    deleted: vec![id()],
                },
                RingMessage::Summary {
                    rep: 1,
                    seq: 8,
                    held: vec![(id(), 99)],
                    opens: vec![(id(), 7, OPEN_RECEIVE_CALLBACK)],
                    deleted: vec![id()],
                },
                RingMessage::SyncQueue {
                    rep: 1,
                    seq: 8,
                    copy: CopyHeader {
                        id: id(),
                        name: b("q"),
                        attributes: attrs(),
                        unlinked: false,
                        history: 5,
                        close_epoch: 2,
                        close_time: 9,
                        messages: 1,
                        taken: vec![key()],
                    },
                },
                RingMessage::SyncMessage {
                    rep: 1,
                    seq: 8,
                    id: id(),
                    history: 5,
                    message: Stored {
                        key: key(),
                        send_time: 3,
                        body: body(),
                    },
                },
            ],
        );
    }

    #[test]
    fn unknown_updates_and_ops_are_refused() {
        let mut w = Writer::with_capacity(8);
        w.u32(1)
            .u64(8)
            .u64(2)
            .u32(1)
            .u64(1)
            .u64(1)
            .u32(1)
            .u64(0)
            .u8(99);
        let mut r = Reader::new(Bytes::from(w.finish()));
        assert!(RingMessage::decode(RING_UPDATE, &mut r).is_err());
        let mut r = Reader::new(Bytes::new());
        assert!(Request::decode(99, &mut r).is_err());
    }
}
