//! The packets between a client library and `aisexec`, one per SEQPACKET datagram, and what
//! every service's protocol has in common.
//!
//! Every packet starts with a 12-byte header: `version: u8` ([`VERSION`]), `kind: u8`
//! ([`Kind`]: 1 request, 2 response, 3 callback), `op: u16` (what the body is), `id: u64` (a
//! request's number, chosen by the client and echoed in its response; 0 in callbacks). The body
//! follows, little-endian; byte strings carry a u16 length, lists a u32 count, and a message
//! payload is always the last field and runs to the end of the packet (so it is sent and
//! received without an extra copy).
//!
//! A connection speaks to one service, named in its first request ([`Request::Hello`]). Each
//! service defines its own operations in its own module ([`crate::cpg`], [`crate::evs`],
//! [`crate::admin`]) as three [`Message`] types bound together by a [`Protocol`]; this module
//! frames them and adds the operations every connection has: `Hello` and `Status` requests
//! (ops 1 and 2), and the `Ok`, `Error` and `Status` answers (ops 1 to 3). A service's own
//! request ops start at [`FIRST_REQUEST_OP`] and its answer ops at [`FIRST_RESPONSE_OP`].
//!
//! The header's layout is the same in every version, so that a side that meets a version it
//! does not speak can still say so: the executive answers a request of another version with
//! [`AisError::Version`] under the request's id ([`request_id`]) and closes the connection, and
//! both sides name the two versions in their error ([`DecodeError::Version`]).

use std::fmt;

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, SliceReader, Writer};

/// Protocol version in every header.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 12;
/// Longest group name (SA Forum's `SA_MAX_NAME_LENGTH`, CPG's limit).
pub const MAX_GROUP_NAME: usize = 128;
/// Largest message payload a client may send. A SEQPACKET datagram must fit the socket's send
/// buffer; both ends raise theirs to [`SOCKET_BUFFER`] (the kernel may cap it at
/// `net.core.wmem_max`, 208 KiB by default, which this limit fits under).
pub const MAX_PAYLOAD: usize = 192 * 1024;
/// Largest packet either side sends or accepts.
pub const MAX_PACKET: usize = MAX_PAYLOAD + 1024;
/// Send and receive buffer sizes both ends ask for.
pub const SOCKET_BUFFER: usize = 1 << 20;
/// The lowest op a service's own request may use (1 and 2 are [`Request::Hello`] and
/// [`Request::Status`]).
pub const FIRST_REQUEST_OP: u16 = 3;
/// The lowest op a service's own answer may use (1 to 3 are [`Reply::Ok`], [`Reply::Error`]
/// and [`Reply::Status`]).
pub const FIRST_RESPONSE_OP: u16 = 4;

/// The id in a request's header, whatever its version (the header's layout never changes):
/// what an answer to a packet that does not decode carries. `None` if the header is cut short
/// or the packet is not a request.
pub fn request_id(packet: &[u8]) -> Option<u64> {
    let header: &[u8; HEADER_LEN] = packet.get(..HEADER_LEN)?.try_into().ok()?;
    (header[1] == Kind::Request as u8)
        .then(|| u64::from_le_bytes(header[4..12].try_into().expect("8 bytes")))
}

/// SA Forum error codes (`SaAisErrorT`), with the specification's numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AisError {
    /// `SA_AIS_ERR_LIBRARY`: an unexpected problem in the library or the executive.
    Library,
    /// `SA_AIS_ERR_VERSION`: incompatible protocol version.
    Version,
    /// `SA_AIS_ERR_INIT`: a callback the call needs was not registered.
    Init,
    /// `SA_AIS_ERR_TIMEOUT`: the time given ran out (or was zero).
    Timeout,
    /// `SA_AIS_ERR_TRY_AGAIN`: the service cannot take the request now (Totem's send window is
    /// full); retry later, nothing was queued.
    TryAgain,
    /// `SA_AIS_ERR_INVALID_PARAM`: a parameter is invalid.
    InvalidParam,
    /// `SA_AIS_ERR_NO_MEMORY`: the executive is out of memory for this.
    NoMemory,
    /// `SA_AIS_ERR_BAD_HANDLE`: the handle is not open (never was, or closed).
    BadHandle,
    /// `SA_AIS_ERR_ACCESS`: not allowed.
    Access,
    /// `SA_AIS_ERR_NOT_EXIST`: the entity (group membership, …) does not exist.
    NotExist,
    /// `SA_AIS_ERR_NAME_TOO_LONG`.
    NameTooLong,
    /// `SA_AIS_ERR_EXIST`: already exists (already joined).
    Exist,
    /// `SA_AIS_ERR_NO_SPACE`: the buffer given is too small.
    NoSpace,
    /// `SA_AIS_ERR_NO_RESOURCES`: a limit of the executive was reached (a memory limit).
    NoResources,
    /// `SA_AIS_ERR_NOT_SUPPORTED`.
    NotSupported,
    /// `SA_AIS_ERR_BAD_OPERATION`: not allowed in the current state.
    BadOperation,
    /// `SA_AIS_ERR_BAD_FLAGS`: unknown or contradictory flags.
    BadFlags,
    /// `SA_AIS_ERR_TOO_BIG`: the message is larger than allowed.
    TooBig,
    /// `SA_AIS_ERR_NO_SECTIONS`: an iteration is past its last section.
    NoSections,
    /// `SA_AIS_ERR_BUSY`: in use (a message queue open by another process).
    Busy,
    /// `SA_AIS_ERR_QUEUE_FULL`: the message queue's priority area has no room.
    QueueFull,
    /// `SA_AIS_ERR_QUEUE_NOT_AVAILABLE`: no queue can take the message.
    QueueNotAvailable,
    /// `SA_AIS_ERR_INTERRUPT`: the call was cancelled (a message get, by
    /// `saMsgMessageCancel`).
    Interrupt,
    /// A code this build does not know (a newer executive): kept as received.
    Unknown(u32),
}

impl AisError {
    /// The `SaAisErrorT` value.
    pub fn code(self) -> u32 {
        match self {
            AisError::Library => 2,
            AisError::Version => 3,
            AisError::Init => 4,
            AisError::Timeout => 5,
            AisError::TryAgain => 6,
            AisError::InvalidParam => 7,
            AisError::NoMemory => 8,
            AisError::BadHandle => 9,
            AisError::Access => 11,
            AisError::NotExist => 12,
            AisError::NameTooLong => 13,
            AisError::Exist => 14,
            AisError::NoSpace => 15,
            AisError::NoResources => 18,
            AisError::NotSupported => 19,
            AisError::BadOperation => 20,
            AisError::BadFlags => 25,
            AisError::TooBig => 26,
            AisError::NoSections => 27,
            AisError::Busy => 10,
            AisError::QueueFull => 23,
            AisError::QueueNotAvailable => 24,
            AisError::Interrupt => 16,
            AisError::Unknown(code) => code,
        }
    }

    /// The error for an `SaAisErrorT` value ([`AisError::Unknown`] for values this build does
    /// not name).
    pub fn from_code(code: u32) -> AisError {
        match code {
            2 => AisError::Library,
            3 => AisError::Version,
            4 => AisError::Init,
            5 => AisError::Timeout,
            6 => AisError::TryAgain,
            7 => AisError::InvalidParam,
            8 => AisError::NoMemory,
            9 => AisError::BadHandle,
            11 => AisError::Access,
            12 => AisError::NotExist,
            13 => AisError::NameTooLong,
            14 => AisError::Exist,
            15 => AisError::NoSpace,
            18 => AisError::NoResources,
            19 => AisError::NotSupported,
            20 => AisError::BadOperation,
            25 => AisError::BadFlags,
            26 => AisError::TooBig,
            27 => AisError::NoSections,
            10 => AisError::Busy,
            23 => AisError::QueueFull,
            24 => AisError::QueueNotAvailable,
            16 => AisError::Interrupt,
            other => AisError::Unknown(other),
        }
    }

    /// The specification's name, e.g. `SA_AIS_ERR_TRY_AGAIN` (`SA_AIS_ERR_UNKNOWN` for
    /// [`AisError::Unknown`]; [`Display`](fmt::Display) adds its code).
    pub fn name(self) -> &'static str {
        match self {
            AisError::Library => "SA_AIS_ERR_LIBRARY",
            AisError::Version => "SA_AIS_ERR_VERSION",
            AisError::Init => "SA_AIS_ERR_INIT",
            AisError::Timeout => "SA_AIS_ERR_TIMEOUT",
            AisError::TryAgain => "SA_AIS_ERR_TRY_AGAIN",
            AisError::InvalidParam => "SA_AIS_ERR_INVALID_PARAM",
            AisError::NoMemory => "SA_AIS_ERR_NO_MEMORY",
            AisError::BadHandle => "SA_AIS_ERR_BAD_HANDLE",
            AisError::Access => "SA_AIS_ERR_ACCESS",
            AisError::NotExist => "SA_AIS_ERR_NOT_EXIST",
            AisError::NameTooLong => "SA_AIS_ERR_NAME_TOO_LONG",
            AisError::Exist => "SA_AIS_ERR_EXIST",
            AisError::NoSpace => "SA_AIS_ERR_NO_SPACE",
            AisError::NoResources => "SA_AIS_ERR_NO_RESOURCES",
            AisError::NotSupported => "SA_AIS_ERR_NOT_SUPPORTED",
            AisError::BadOperation => "SA_AIS_ERR_BAD_OPERATION",
            AisError::BadFlags => "SA_AIS_ERR_BAD_FLAGS",
            AisError::TooBig => "SA_AIS_ERR_TOO_BIG",
            AisError::NoSections => "SA_AIS_ERR_NO_SECTIONS",
            AisError::Busy => "SA_AIS_ERR_BUSY",
            AisError::QueueFull => "SA_AIS_ERR_QUEUE_FULL",
            AisError::QueueNotAvailable => "SA_AIS_ERR_QUEUE_NOT_AVAILABLE",
            AisError::Interrupt => "SA_AIS_ERR_INTERRUPT",
            AisError::Unknown(_) => "SA_AIS_ERR_UNKNOWN",
        }
    }
}

impl fmt::Display for AisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AisError::Unknown(code) => write!(f, "SaAisErrorT {code} (unknown to this build)"),
            e => f.write_str(e.name()),
        }
    }
}

impl std::error::Error for AisError {}

/// A service's number: in [`Request::Hello`] and in the header of the executive's Totem
/// messages. Each service's protocol module defines its own ([`Protocol::ID`]); 0 is the
/// executive's own synchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u8);

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service {}", self.0)
    }
}

/// The delivery guarantee a message asks for (CPG's `CPG_TYPE_AGREED` / `CPG_TYPE_SAFE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Guarantee {
    /// Total order.
    #[default]
    Agreed,
    /// Total order, delivered once every member holds the message.
    Safe,
}

impl Guarantee {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            Guarantee::Agreed => 1,
            Guarantee::Safe => 2,
        }
    }

    /// From the wire value.
    ///
    /// # Errors
    /// An unknown value.
    pub fn from_code(c: u8) -> Result<Guarantee, DecodeError> {
        match c {
            1 => Ok(Guarantee::Agreed),
            2 => Ok(Guarantee::Safe),
            v => Err(DecodeError::Unknown {
                what: "guarantee",
                value: u64::from(v),
            }),
        }
    }
}

/// Checks a group name: 1 to [`MAX_GROUP_NAME`] bytes.
///
/// # Errors
/// [`AisError::InvalidParam`] when empty, [`AisError::NameTooLong`] when too long.
pub fn check_group(name: &[u8]) -> Result<(), AisError> {
    if name.is_empty() {
        Err(AisError::InvalidParam)
    } else if name.len() > MAX_GROUP_NAME {
        Err(AisError::NameTooLong)
    } else {
        Ok(())
    }
}

/// Reads a group name (at most [`MAX_GROUP_NAME`] bytes).
///
/// # Errors
/// Truncated, or too long.
pub fn get_group(r: &mut Reader) -> Result<Bytes, DecodeError> {
    let g = r.short_bytes("group")?;
    group_len(&g)?;
    Ok(g)
}

/// Reads a group name in place, as [`get_group`].
///
/// # Errors
/// As [`get_group`].
pub fn get_group_ref<'a>(r: &mut SliceReader<'a>) -> Result<&'a [u8], DecodeError> {
    let g = r.short_bytes("group")?;
    group_len(g)?;
    Ok(g)
}

fn group_len(g: &[u8]) -> Result<(), DecodeError> {
    if g.len() > MAX_GROUP_NAME {
        return Err(DecodeError::Invalid {
            field: "group",
            why: "longer than 128 bytes",
        });
    }
    Ok(())
}

/// Writes a list of group names.
pub fn put_groups(w: &mut Writer, groups: &[Bytes]) {
    w.count(groups.len());
    for g in groups {
        w.short_bytes(g);
    }
}

/// Reads a list of group names.
///
/// # Errors
/// Truncated, a forged count, or a name too long.
pub fn get_groups(r: &mut Reader) -> Result<Vec<Bytes>, DecodeError> {
    let n = r.count("groups", 2)?;
    (0..n).map(|_| get_group(r)).collect()
}

/// Writes a list of node ids.
pub fn put_ids(w: &mut Writer, ids: &[u32]) {
    w.count(ids.len());
    for &i in ids {
        w.u32(i);
    }
}

/// Reads a list of node ids.
///
/// # Errors
/// Truncated or a forged count.
pub fn get_ids(r: &mut Reader) -> Result<Vec<u32>, DecodeError> {
    let n = r.count("nodes", 4)?;
    (0..n).map(|_| r.u32("node")).collect()
}

/// One kind of packet body: a service's requests, its answers or its callbacks. Each value
/// knows its op; decoding picks the variant from the op.
pub trait Message: Sized + fmt::Debug {
    /// The op this value is sent under.
    fn op(&self) -> u16;

    /// The variant's name, for logs and error messages.
    fn name(&self) -> &'static str;

    /// Writes the body after the header; returns the payload that follows it in the same
    /// datagram, sent without a copy (empty when there is none).
    fn encode(&self, w: &mut Writer) -> Bytes;

    /// Reads the body of a packet of `op` (the caller checks that nothing is left after).
    ///
    /// # Errors
    /// [`DecodeError::UnknownOp`] for an op this type does not have; any other error for a
    /// malformed body.
    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError>;
}

/// One service's IPC protocol: its number and its three kinds of packet body.
pub trait Protocol {
    /// The service's number.
    const ID: ServiceId;
    /// Its name in logs (`cpg`, `evs`, …).
    const NAME: &'static str;
    /// What a client asks.
    type Request: Message;
    /// What the executive answers besides [`Reply::Ok`], [`Reply::Error`] and
    /// [`Reply::Status`].
    type Response: Message;
    /// What the executive sends unasked.
    type Callback: Message;
}

/// A body type with no values, for a service without answers or callbacks of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nothing {}

impl Message for Nothing {
    fn op(&self) -> u16 {
        match *self {}
    }

    fn name(&self) -> &'static str {
        match *self {}
    }

    fn encode(&self, _w: &mut Writer) -> Bytes {
        match *self {}
    }

    fn decode(op: u16, _r: &mut Reader) -> Result<Self, DecodeError> {
        Err(DecodeError::UnknownOp { service: "", op })
    }
}

/// A request: the operations every connection has, or one of its service's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<R> {
    /// First request on a connection: the protocol version and the service it will use.
    Hello {
        /// [`VERSION`].
        version: u8,
        /// The service.
        service: ServiceId,
    },
    /// Ring, membership and counters of the executive.
    Status,
    /// One of the service's own requests.
    Service(R),
}

const OP_HELLO: u16 = 1;
const OP_STATUS: u16 = 2;

impl<R: Message> Message for Request<R> {
    fn op(&self) -> u16 {
        match self {
            Request::Hello { .. } => OP_HELLO,
            Request::Status => OP_STATUS,
            Request::Service(r) => r.op(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "Hello",
            Request::Status => "Status",
            Request::Service(r) => r.name(),
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Hello { version, service } => {
                w.u8(*version).u16(u16::from(service.0));
                Bytes::new()
            }
            Request::Status => Bytes::new(),
            Request::Service(r) => r.encode(w),
        }
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            OP_HELLO => {
                let version = r.u8("version")?;
                let service = r.u16("service")?;
                let service = u8::try_from(service).map_err(|_| DecodeError::Unknown {
                    what: "service",
                    value: u64::from(service),
                })?;
                Ok(Request::Hello {
                    version,
                    service: ServiceId(service),
                })
            }
            OP_STATUS => Ok(Request::Status),
            _ => R::decode(op, r).map(Request::Service),
        }
    }
}

/// A counter shown by `aisctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Name, `snake_case`.
    pub name: Bytes,
    /// Value.
    pub value: u64,
}

/// The executive's status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// This node's id.
    pub node: u32,
    /// Membership state (`operational`, `gather`, `commit`, `recovery`, `left`).
    pub state: Bytes,
    /// Current ring id as `REP.SEQ`.
    pub ring: Bytes,
    /// Members of the last regular configuration.
    pub members: Vec<u32>,
    /// Counters.
    pub counters: Vec<Counter>,
}

/// An answer to one request: the answers every service shares, or one of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<R> {
    /// Done.
    Ok,
    /// Refused.
    Error(AisError),
    /// Answer to [`Request::Status`].
    Status(Status),
    /// One of the service's own answers.
    Service(R),
}

const OP_OK: u16 = 1;
const OP_ERROR: u16 = 2;
const OP_STATUS_ANSWER: u16 = 3;

impl<R: Message> Message for Reply<R> {
    fn op(&self) -> u16 {
        match self {
            Reply::Ok => OP_OK,
            Reply::Error(_) => OP_ERROR,
            Reply::Status(_) => OP_STATUS_ANSWER,
            Reply::Service(r) => r.op(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Reply::Ok => "Ok",
            Reply::Error(_) => "Error",
            Reply::Status(_) => "Status",
            Reply::Service(r) => r.name(),
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Reply::Ok => {}
            Reply::Error(e) => {
                w.u32(e.code());
            }
            Reply::Status(s) => {
                w.u32(s.node).short_bytes(&s.state).short_bytes(&s.ring);
                put_ids(w, &s.members);
                w.count(s.counters.len());
                for c in &s.counters {
                    w.short_bytes(&c.name).u64(c.value);
                }
            }
            Reply::Service(r) => return r.encode(w),
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            OP_OK => Reply::Ok,
            OP_ERROR => Reply::Error(AisError::from_code(r.u32("error")?)),
            OP_STATUS_ANSWER => {
                let node = r.u32("node")?;
                let state = r.short_bytes("state")?;
                let ring = r.short_bytes("ring")?;
                let members = get_ids(r)?;
                let n = r.count("counters", 10)?;
                let counters = (0..n)
                    .map(|_| {
                        Ok(Counter {
                            name: r.short_bytes("counter")?,
                            value: r.u64("value")?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                Reply::Status(Status {
                    node,
                    state,
                    ring,
                    members,
                    counters,
                })
            }
            _ => Reply::Service(R::decode(op, r)?),
        })
    }
}

/// The op of the shared-memory setup request: a transport matter between the library and
/// the executive's IPC loop, never handed to a service (services' ops are small numbers).
/// A [`Kind::Request`] packet with this op carries the ring size (`u32`) as its body and the
/// segment's descriptor as `SCM_RIGHTS`; the loop answers [`Reply::Ok`] (from then on every
/// packet both ways goes through the rings, the socket carries [`WAKE`] packets only) or
/// [`Reply::Error`] (nothing changes: the connection goes on over the socket).
pub const OP_SHM_SETUP: u16 = 0xffff;

/// A wake-up on the socket of a connection that moved to shared-memory rings: one byte,
/// shorter than any packet header.
pub const WAKE: [u8; 1] = [0];

/// The shared-memory setup request for rings of `ring_bytes` (see [`OP_SHM_SETUP`]).
pub fn shm_setup_request(id: u64, ring_bytes: u32) -> Vec<u8> {
    let mut w = Writer::with_capacity(HEADER_LEN + 4);
    w.u8(VERSION)
        .u8(Kind::Request as u8)
        .u16(OP_SHM_SETUP)
        .u64(id)
        .u32(ring_bytes);
    w.finish()
}

/// The ring size of a setup request's body.
///
/// # Errors
/// A body that is not exactly one `u32`.
pub fn decode_shm_setup(body: Bytes) -> Result<u32, DecodeError> {
    let mut r = Reader::new(body);
    let ring_bytes = r.u32("ring_bytes")?;
    r.end()?;
    Ok(ring_bytes)
}

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Client → executive.
    Request = 1,
    /// Executive → client, answering a request.
    Response = 2,
    /// Executive → client, unasked.
    Callback = 3,
}

/// An encoded packet: a head, and a payload tail to send after it in the same datagram
/// without copying it (empty for packets without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Header and the fields before the payload.
    pub head: Vec<u8>,
    /// The payload.
    pub tail: Bytes,
}

impl Encoded {
    /// Encodes `body` as a packet of `kind` with number `id` (0 for callbacks).
    pub fn new<M: Message>(kind: Kind, id: u64, body: &M) -> Encoded {
        let mut w = Writer::with_capacity(64);
        w.u8(VERSION).u8(kind as u8).u16(body.op()).u64(id);
        let tail = body.encode(&mut w);
        Encoded {
            head: w.finish(),
            tail,
        }
    }

    /// A packet of `kind`, number `id` and op `op` whose fields before the payload `head`
    /// writes (into a buffer reserved for `head_len` bytes, header included), followed by
    /// `tail`: the bytes [`Encoded::new`] gives for a message that encodes the same way, for
    /// a caller that holds the fields borrowed and the payload owned (the executive's
    /// per-delivery path: nothing decoded into a value, nothing cloned).
    pub fn build(
        kind: Kind,
        id: u64,
        op: u16,
        head_len: usize,
        head: impl FnOnce(&mut Writer),
        tail: Bytes,
    ) -> Encoded {
        let mut w = Writer::with_capacity(head_len);
        w.u8(VERSION).u8(kind as u8).u16(op).u64(id);
        head(&mut w);
        Encoded {
            head: w.finish(),
            tail,
        }
    }

    /// A request.
    pub fn request<R: Message>(id: u64, req: &Request<R>) -> Encoded {
        Encoded::new(Kind::Request, id, req)
    }

    /// An answer to request `id`.
    pub fn reply<R: Message>(id: u64, reply: &Reply<R>) -> Encoded {
        Encoded::new(Kind::Response, id, reply)
    }

    /// A callback.
    pub fn callback<C: Message>(cb: &C) -> Encoded {
        Encoded::new(Kind::Callback, 0, cb)
    }

    /// The packet as one contiguous buffer (tests and small packets).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.head.len() + self.tail.len());
        v.extend_from_slice(&self.head);
        v.extend_from_slice(&self.tail);
        v
    }

    /// Length of the datagram.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Never true: a packet has at least its header.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes the packet again (tests: what a client would read).
    ///
    /// # Errors
    /// As [`Frame::decode`].
    pub fn frame(&self) -> Result<Frame, DecodeError> {
        Frame::decode(Bytes::from(self.to_vec()))
    }
}

/// A received packet whose header is checked and whose body is not decoded yet: the side
/// that knows the connection's service decodes it ([`Frame::body`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it is.
    pub kind: Kind,
    /// What its body is.
    pub op: u16,
    /// The request's number (0 in callbacks).
    pub id: u64,
    /// The bytes after the header.
    pub body: Bytes,
}

impl Frame {
    /// Checks one received datagram's size and header. The body shares `buf`'s memory.
    ///
    /// # Errors
    /// A wrong version, an unknown kind, a header cut short, a packet over [`MAX_PACKET`].
    pub fn decode(buf: Bytes) -> Result<Frame, DecodeError> {
        if buf.len() > MAX_PACKET {
            return Err(DecodeError::Invalid {
                field: "packet",
                why: "larger than MAX_PACKET",
            });
        }
        let mut r = Reader::new(buf);
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(DecodeError::Version {
                what: "IPC protocol",
                got: version,
                supported: VERSION,
            });
        }
        let kind = match r.u8("kind")? {
            1 => Kind::Request,
            2 => Kind::Response,
            3 => Kind::Callback,
            v => {
                return Err(DecodeError::Unknown {
                    what: "packet kind",
                    value: u64::from(v),
                });
            }
        };
        let op = r.u16("op")?;
        let id = r.u64("id")?;
        Ok(Frame {
            kind,
            op,
            id,
            body: r.rest(),
        })
    }

    /// Decodes the body as an `M` (byte strings and payloads share the packet's memory).
    ///
    /// # Errors
    /// An op `M` does not have ([`DecodeError::UnknownOp`]), a malformed body, or bytes left
    /// after it.
    pub fn body<M: Message>(&self) -> Result<M, DecodeError> {
        decode_body(self.op, self.body.clone())
    }
}

/// Decodes `body` as an `M` of op `op`, refusing bytes left after it.
///
/// # Errors
/// As [`Frame::body`].
pub fn decode_body<M: Message>(op: u16, body: Bytes) -> Result<M, DecodeError> {
    let mut r = Reader::new(body);
    let m = M::decode(op, &mut r)?;
    r.end()?;
    Ok(m)
}

/// Test helper for service modules: every sample encodes under its own op, decodes back to
/// itself, fails to decode when cut anywhere inside its head, and a byte more changes it.
#[cfg(test)]
pub(crate) fn assert_round_trips<M: Message + PartialEq + Clone>(kind: Kind, samples: &[M]) {
    for m in samples {
        let e = Encoded::new(kind, 9, m);
        let frame = e.frame().expect("header");
        assert_eq!(frame.op, m.op());
        assert_eq!(&frame.body::<M>().expect("body"), m);
        for cut in HEADER_LEN..e.head.len() {
            let f = Frame::decode(Bytes::from(e.to_vec()).slice(..cut)).expect("header");
            assert!(f.body::<M>().is_err(), "{m:?} cut at {cut} decoded");
        }
        // A byte more is refused, or is part of a payload (which then differs).
        let mut long = e.to_vec();
        long.push(0);
        let f = Frame::decode(Bytes::from(long)).expect("header");
        assert!(
            f.body::<M>().ok().as_ref() != Some(m),
            "{m:?} with a trailing byte decoded as itself"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type AnyRequest = Request<Nothing>;
    type AnyReply = Reply<Nothing>;

    #[test]
    fn the_shared_operations_round_trip() {
        assert_round_trips(
            Kind::Request,
            &[
                AnyRequest::Hello {
                    version: VERSION,
                    service: ServiceId(1),
                },
                AnyRequest::Status,
            ],
        );
        assert_round_trips(
            Kind::Response,
            &[
                AnyReply::Ok,
                AnyReply::Error(AisError::TryAgain),
                AnyReply::Error(AisError::Unknown(77)),
                AnyReply::Status(Status {
                    node: 1,
                    state: Bytes::from_static(b"operational"),
                    ring: Bytes::from_static(b"1.8"),
                    members: vec![1, 2, 3],
                    counters: vec![Counter {
                        name: Bytes::from_static(b"frames_in"),
                        value: 42,
                    }],
                }),
            ],
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = Encoded::request(1, &AnyRequest::Status).to_vec();
        let mut v = good.clone();
        v[0] = 9;
        assert!(matches!(
            Frame::decode(Bytes::from(v)),
            Err(DecodeError::Version {
                what: "IPC protocol",
                got: 9,
                supported: VERSION
            })
        ));
        let mut v = good.clone();
        v[1] = 7;
        assert!(Frame::decode(Bytes::from(v)).is_err());
        let mut v = good.clone();
        v[2] = 0xff;
        let f = Frame::decode(Bytes::from(v)).expect("header");
        assert_eq!(
            f.body::<AnyRequest>(),
            Err(DecodeError::UnknownOp {
                service: "",
                op: 0xff
            })
        );
        let mut v = good;
        v.push(0);
        assert_eq!(
            Frame::decode(Bytes::from(v)).unwrap().body::<AnyRequest>(),
            Err(DecodeError::Trailing(1))
        );
        for cut in 0..HEADER_LEN {
            assert!(Frame::decode(Bytes::from(vec![VERSION; cut])).is_err());
        }
        assert!(Frame::decode(Bytes::from(vec![0; MAX_PACKET + 1])).is_err());
    }

    #[test]
    fn group_names_are_limited() {
        assert_eq!(check_group(b""), Err(AisError::InvalidParam));
        assert_eq!(check_group(&[b'a'; 129]), Err(AisError::NameTooLong));
        assert_eq!(check_group(&[b'a'; 128]), Ok(()));
        let mut w = Writer::default();
        w.short_bytes(&[b'a'; 200]);
        assert!(get_group(&mut Reader::new(Bytes::from(w.finish()))).is_err());
    }

    #[test]
    fn error_codes_round_trip_and_unknown_ones_are_kept() {
        for e in [
            AisError::Library,
            AisError::Version,
            AisError::Init,
            AisError::Timeout,
            AisError::TryAgain,
            AisError::InvalidParam,
            AisError::Access,
            AisError::NotExist,
            AisError::NameTooLong,
            AisError::Exist,
            AisError::NoSpace,
            AisError::NotSupported,
            AisError::BadOperation,
            AisError::BadFlags,
            AisError::TooBig,
            AisError::NoMemory,
            AisError::BadHandle,
            AisError::NoResources,
            AisError::NoSections,
            AisError::Busy,
            AisError::QueueFull,
            AisError::QueueNotAvailable,
            AisError::Interrupt,
            AisError::Unknown(999),
        ] {
            assert_eq!(AisError::from_code(e.code()), e);
        }
        assert_eq!(AisError::TryAgain.code(), 6);
        assert_eq!(AisError::BadHandle.code(), 9);
        assert_eq!(AisError::NoSections.code(), 27);
        assert_eq!(AisError::from_code(31), AisError::Unknown(31));
        assert!(AisError::Unknown(31).to_string().contains("31"));
    }

    /// A packet of another version is refused naming both versions, and its request id can
    /// still be read to answer it.
    #[test]
    fn another_version_is_refused_naming_both() {
        let mut bytes = Encoded::request(41, &AnyRequest::Status).to_vec();
        assert_eq!(request_id(&bytes), Some(41));
        bytes[0] = VERSION + 1;
        let err = Frame::decode(Bytes::from(bytes.clone())).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Version {
                what: "IPC protocol",
                got: VERSION + 1,
                supported: VERSION
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("version {}", VERSION + 1))
                && text.contains(&format!("speaks version {VERSION}")),
            "{text}"
        );
        assert_eq!(
            request_id(&bytes),
            Some(41),
            "the header layout does not change"
        );
        assert_eq!(request_id(&bytes[..11]), None);
        let reply = Encoded::reply(41, &AnyReply::Ok).to_vec();
        assert_eq!(request_id(&reply), None);
    }
}
