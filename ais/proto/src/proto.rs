//! The packets between a client library and `aisexec`, one per SEQPACKET datagram.
//!
//! Every packet starts with a 12-byte header: `version: u8` ([`VERSION`]), `kind: u8`
//! (1 request, 2 response, 3 callback), `op: u16` (what the body is), `id: u64` (a request's
//! number, chosen by the client and echoed in its response; 0 in callbacks). The body follows,
//! little-endian; byte strings carry a u16 length, lists a u32 count, and a message payload is
//! always the last field and runs to the end of the packet (so it is sent and received without
//! an extra copy).
//!
//! The header's layout is the same in every version, so that a side that meets a version it
//! does not speak can still say so: the executive answers a request of another version with
//! [`AisError::Version`] under the request's id ([`request_id`]) and closes the connection, and
//! both sides name the two versions in their error ([`DecodeError::Version`]).

use bytes::Bytes;

use super::codec::{DecodeError, Reader, Writer};

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

/// The id in a request's header, whatever its version (the header's layout never changes):
/// what an answer to a packet that does not decode carries. `None` if the header is cut short
/// or the packet is not a request.
pub fn request_id(packet: &[u8]) -> Option<u64> {
    let header: &[u8; HEADER_LEN] = packet.get(..HEADER_LEN)?.try_into().ok()?;
    (header[1] == KIND_REQUEST)
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
    /// `SA_AIS_ERR_TRY_AGAIN`: the service cannot take the request now (Totem's send window is
    /// full); retry later, nothing was queued.
    TryAgain,
    /// `SA_AIS_ERR_INVALID_PARAM`: a parameter is invalid.
    InvalidParam,
    /// `SA_AIS_ERR_ACCESS`: not allowed.
    Access,
    /// `SA_AIS_ERR_NOT_EXIST`: the entity (group membership, …) does not exist.
    NotExist,
    /// `SA_AIS_ERR_NAME_TOO_LONG`.
    NameTooLong,
    /// `SA_AIS_ERR_EXIST`: already exists (already joined).
    Exist,
    /// `SA_AIS_ERR_NOT_SUPPORTED`.
    NotSupported,
    /// `SA_AIS_ERR_BAD_OPERATION`: not allowed in the current state.
    BadOperation,
    /// `SA_AIS_ERR_TOO_BIG`: the message is larger than allowed.
    TooBig,
}

impl AisError {
    /// The `SaAisErrorT` value.
    pub fn code(self) -> u32 {
        match self {
            AisError::Library => 2,
            AisError::Version => 3,
            AisError::TryAgain => 6,
            AisError::InvalidParam => 7,
            AisError::Access => 11,
            AisError::NotExist => 12,
            AisError::NameTooLong => 13,
            AisError::Exist => 14,
            AisError::NotSupported => 19,
            AisError::BadOperation => 20,
            AisError::TooBig => 26,
        }
    }

    /// The error for an `SaAisErrorT` value (unknown values become `Library`).
    pub fn from_code(code: u32) -> AisError {
        match code {
            3 => AisError::Version,
            6 => AisError::TryAgain,
            7 => AisError::InvalidParam,
            11 => AisError::Access,
            12 => AisError::NotExist,
            13 => AisError::NameTooLong,
            14 => AisError::Exist,
            19 => AisError::NotSupported,
            20 => AisError::BadOperation,
            26 => AisError::TooBig,
            _ => AisError::Library,
        }
    }

    /// The specification's name, e.g. `SA_AIS_ERR_TRY_AGAIN`.
    pub fn name(self) -> &'static str {
        match self {
            AisError::Library => "SA_AIS_ERR_LIBRARY",
            AisError::Version => "SA_AIS_ERR_VERSION",
            AisError::TryAgain => "SA_AIS_ERR_TRY_AGAIN",
            AisError::InvalidParam => "SA_AIS_ERR_INVALID_PARAM",
            AisError::Access => "SA_AIS_ERR_ACCESS",
            AisError::NotExist => "SA_AIS_ERR_NOT_EXIST",
            AisError::NameTooLong => "SA_AIS_ERR_NAME_TOO_LONG",
            AisError::Exist => "SA_AIS_ERR_EXIST",
            AisError::NotSupported => "SA_AIS_ERR_NOT_SUPPORTED",
            AisError::BadOperation => "SA_AIS_ERR_BAD_OPERATION",
            AisError::TooBig => "SA_AIS_ERR_TOO_BIG",
        }
    }
}

impl std::fmt::Display for AisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for AisError {}

/// A service a connection uses, announced with [`Request::Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Closed process groups.
    Cpg,
    /// Extended virtual synchrony groups.
    Evs,
    /// Administration (`aisctl status`).
    Admin,
}

impl Service {
    fn code(self) -> u16 {
        match self {
            Service::Cpg => 1,
            Service::Evs => 2,
            Service::Admin => 3,
        }
    }

    fn from_code(c: u16) -> Result<Service, DecodeError> {
        Ok(match c {
            1 => Service::Cpg,
            2 => Service::Evs,
            3 => Service::Admin,
            v => {
                return Err(DecodeError::Unknown {
                    what: "service",
                    value: u64::from(v),
                });
            }
        })
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
    fn code(self) -> u8 {
        match self {
            Guarantee::Agreed => 1,
            Guarantee::Safe => 2,
        }
    }

    fn from_code(c: u8) -> Result<Guarantee, DecodeError> {
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

/// A process in a CPG group: its node and its process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpgAddress {
    /// Node id.
    pub node: u32,
    /// Process id on that node.
    pub pid: u32,
}

/// Why a process joined or left a CPG group (corosync's `cpg_reason_t` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The process joined.
    Join,
    /// The process left.
    Leave,
    /// Its node left the membership.
    NodeDown,
    /// Its node joined the membership (the process was already a member there).
    NodeUp,
    /// The process ended or closed its connection without leaving.
    ProcDown,
}

impl Reason {
    /// corosync's numeric value.
    pub fn code(self) -> u8 {
        match self {
            Reason::Join => 1,
            Reason::Leave => 2,
            Reason::NodeDown => 3,
            Reason::NodeUp => 4,
            Reason::ProcDown => 5,
        }
    }

    /// From corosync's numeric value.
    ///
    /// # Errors
    /// An unknown value.
    pub fn from_code(c: u8) -> Result<Reason, DecodeError> {
        Ok(match c {
            1 => Reason::Join,
            2 => Reason::Leave,
            3 => Reason::NodeDown,
            4 => Reason::NodeUp,
            5 => Reason::ProcDown,
            v => {
                return Err(DecodeError::Unknown {
                    what: "reason",
                    value: u64::from(v),
                });
            }
        })
    }

    /// Lower-case name (`join`, `leave`, `nodedown`, `nodeup`, `procdown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Join => "join",
            Reason::Leave => "leave",
            Reason::NodeDown => "nodedown",
            Reason::NodeUp => "nodeup",
            Reason::ProcDown => "procdown",
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

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// First request on a connection: the protocol version and the service it will use.
    Hello {
        /// [`VERSION`].
        version: u8,
        /// The service.
        service: Service,
    },
    /// Ring, membership and counters of the executive.
    Status,
    /// Replace the cluster's frame key with a new epoch (`aisctl rekey`); answered once the
    /// new epoch is in use on this node.
    Rekey,
    /// Join a CPG group.
    CpgJoin {
        /// The group.
        group: Bytes,
    },
    /// Leave a CPG group.
    CpgLeave {
        /// The group.
        group: Bytes,
    },
    /// Send a message to a CPG group this connection joined.
    CpgMcast {
        /// The group.
        group: Bytes,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The message.
        data: Bytes,
    },
    /// Send several messages to a CPG group this connection joined, in order, in one round
    /// trip. Totem takes them in order until its send queue is full; the answer
    /// ([`Response::Accepted`]) says how many it took (the first ones): send the rest again.
    CpgMcastBatch {
        /// The group.
        group: Bytes,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The messages.
        messages: Vec<Bytes>,
    },
    /// The members of a group.
    CpgMembership {
        /// The group.
        group: Bytes,
    },
    /// This node's id.
    CpgLocalGet,
    /// Whether Totem's send window is full (`CPG_FLOW_CONTROL_ENABLED`).
    CpgFlowControlGet,
    /// Every group this node knows, with its members (`corosync-cpgtool`).
    CpgGroups,
    /// Add EVS groups to this connection's filter.
    EvsJoin {
        /// The groups.
        groups: Vec<Bytes>,
    },
    /// Remove EVS groups from this connection's filter.
    EvsLeave {
        /// The groups.
        groups: Vec<Bytes>,
    },
    /// Send to the groups this connection joined (`evs_mcast_joined`) or to the given groups
    /// (`evs_mcast_groups`).
    EvsMcast {
        /// The groups; empty means this connection's joined groups.
        groups: Vec<Bytes>,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The message.
        data: Bytes,
    },
    /// The node membership (`evs_membership_get`).
    EvsMembershipGet,
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

/// An answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Done.
    Ok,
    /// Refused.
    Error(AisError),
    /// Answer to [`Request::Status`].
    Status(Status),
    /// Answer to [`Request::CpgMcastBatch`]: how many of the messages, from the first, Totem
    /// took (at least one; none is `Error(TryAgain)`).
    Accepted(u32),
    /// Answer to [`Request::CpgMembership`].
    CpgMembers(Vec<CpgAddress>),
    /// Answer to [`Request::CpgLocalGet`].
    LocalNode(u32),
    /// Answer to [`Request::CpgFlowControlGet`]: true when enabled (sends would be refused).
    FlowControl(bool),
    /// Answer to [`Request::CpgGroups`].
    CpgGroups(Vec<(Bytes, Vec<CpgAddress>)>),
    /// Answer to [`Request::EvsMembershipGet`].
    EvsMembers {
        /// This node.
        local: u32,
        /// The members.
        members: Vec<u32>,
    },
}

impl Response {
    /// The variant's name, for error messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Ok => "Ok",
            Response::Error(_) => "Error",
            Response::Status(_) => "Status",
            Response::Accepted(_) => "Accepted",
            Response::CpgMembers(_) => "CpgMembers",
            Response::LocalNode(_) => "LocalNode",
            Response::FlowControl(_) => "FlowControl",
            Response::CpgGroups(_) => "CpgGroups",
            Response::EvsMembers { .. } => "EvsMembers",
        }
    }
}

/// Regular or transitional, for EVS configuration callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfKind {
    /// A new ring.
    Regular,
    /// The members moving on together from the ending ring.
    Transitional,
}

/// Something the executive tells a client without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// A message delivered to a CPG group this connection joined.
    CpgDeliver {
        /// The group.
        group: Bytes,
        /// The sender.
        sender: CpgAddress,
        /// The message.
        data: Bytes,
    },
    /// A CPG group's membership changed.
    CpgConfChg {
        /// The group.
        group: Bytes,
        /// Members after the change, ascending.
        members: Vec<CpgAddress>,
        /// Who left, and why.
        left: Vec<(CpgAddress, Reason)>,
        /// Who joined, and why.
        joined: Vec<(CpgAddress, Reason)>,
    },
    /// An EVS message for one of this connection's groups.
    EvsDeliver {
        /// The sending node.
        sender: u32,
        /// The message.
        data: Bytes,
    },
    /// A node membership change.
    EvsConfChg {
        /// Regular or transitional.
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

impl Callback {
    /// The variant's name, for error messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Callback::CpgDeliver { .. } => "CpgDeliver",
            Callback::CpgConfChg { .. } => "CpgConfChg",
            Callback::EvsDeliver { .. } => "EvsDeliver",
            Callback::EvsConfChg { .. } => "EvsConfChg",
        }
    }
}

/// One packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client → executive.
    Request {
        /// The client's number for it.
        id: u64,
        /// The request.
        req: Request,
    },
    /// Executive → client, answering request `id`.
    Response {
        /// The request's number.
        id: u64,
        /// The answer.
        resp: Response,
    },
    /// Executive → client, unasked.
    Callback(Callback),
}

const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
const KIND_CALLBACK: u8 = 3;

mod op {
    pub(super) const HELLO: u16 = 1;
    pub(super) const STATUS: u16 = 2;
    pub(super) const REKEY: u16 = 3;
    pub(super) const CPG_JOIN: u16 = 10;
    pub(super) const CPG_LEAVE: u16 = 11;
    pub(super) const CPG_MCAST: u16 = 12;
    pub(super) const CPG_MEMBERSHIP: u16 = 13;
    pub(super) const CPG_LOCAL_GET: u16 = 14;
    pub(super) const CPG_FLOW_CONTROL_GET: u16 = 15;
    pub(super) const CPG_GROUPS: u16 = 16;
    pub(super) const CPG_MCAST_BATCH: u16 = 17;
    pub(super) const EVS_JOIN: u16 = 20;
    pub(super) const EVS_LEAVE: u16 = 21;
    pub(super) const EVS_MCAST: u16 = 22;
    pub(super) const EVS_MEMBERSHIP_GET: u16 = 23;

    pub(super) const R_OK: u16 = 1;
    pub(super) const R_ERROR: u16 = 2;
    pub(super) const R_STATUS: u16 = 3;
    pub(super) const R_CPG_MEMBERS: u16 = 4;
    pub(super) const R_LOCAL_NODE: u16 = 5;
    pub(super) const R_FLOW_CONTROL: u16 = 6;
    pub(super) const R_CPG_GROUPS: u16 = 7;
    pub(super) const R_EVS_MEMBERS: u16 = 8;
    pub(super) const R_ACCEPTED: u16 = 9;

    pub(super) const C_CPG_DELIVER: u16 = 1;
    pub(super) const C_CPG_CONFCHG: u16 = 2;
    pub(super) const C_EVS_DELIVER: u16 = 3;
    pub(super) const C_EVS_CONFCHG: u16 = 4;
}

fn header(w: &mut Writer, kind: u8, op: u16, id: u64) {
    w.u8(VERSION).u8(kind).u16(op).u64(id);
}

fn put_groups(w: &mut Writer, groups: &[Bytes]) {
    w.count(groups.len());
    for g in groups {
        w.short_bytes(g);
    }
}

fn get_groups(r: &mut Reader) -> Result<Vec<Bytes>, DecodeError> {
    let n = r.count("groups", 2)?;
    (0..n).map(|_| get_group(r)).collect()
}

fn get_group(r: &mut Reader) -> Result<Bytes, DecodeError> {
    let g = r.short_bytes("group")?;
    if g.len() > MAX_GROUP_NAME {
        return Err(DecodeError::Invalid {
            field: "group",
            why: "longer than 128 bytes",
        });
    }
    Ok(g)
}

fn put_addrs(w: &mut Writer, addrs: &[CpgAddress]) {
    w.count(addrs.len());
    for a in addrs {
        w.u32(a.node).u32(a.pid);
    }
}

fn get_addrs(r: &mut Reader) -> Result<Vec<CpgAddress>, DecodeError> {
    let n = r.count("members", 8)?;
    (0..n)
        .map(|_| {
            Ok(CpgAddress {
                node: r.u32("node")?,
                pid: r.u32("pid")?,
            })
        })
        .collect()
}

fn put_reasons(w: &mut Writer, list: &[(CpgAddress, Reason)]) {
    w.count(list.len());
    for (a, why) in list {
        w.u32(a.node).u32(a.pid).u8(why.code());
    }
}

fn get_reasons(r: &mut Reader) -> Result<Vec<(CpgAddress, Reason)>, DecodeError> {
    let n = r.count("changes", 9)?;
    (0..n)
        .map(|_| {
            let node = r.u32("node")?;
            let pid = r.u32("pid")?;
            Ok((
                CpgAddress { node, pid },
                Reason::from_code(r.u8("reason")?)?,
            ))
        })
        .collect()
}

fn put_ids(w: &mut Writer, ids: &[u32]) {
    w.count(ids.len());
    for &i in ids {
        w.u32(i);
    }
}

fn get_ids(r: &mut Reader) -> Result<Vec<u32>, DecodeError> {
    let n = r.count("nodes", 4)?;
    (0..n).map(|_| r.u32("node")).collect()
}

impl Packet {
    /// Encodes the packet as a head and a payload tail (empty for packets without one), to be
    /// sent as one datagram of `head ++ tail` without copying the payload.
    pub fn encode(&self) -> (Vec<u8>, Bytes) {
        let mut w = Writer::with_capacity(64);
        let mut tail = Bytes::new();
        match self {
            Packet::Request { id, req } => {
                let id = *id;
                match req {
                    Request::Hello { version, service } => {
                        header(&mut w, KIND_REQUEST, op::HELLO, id);
                        w.u8(*version).u16(service.code());
                    }
                    Request::Status => header(&mut w, KIND_REQUEST, op::STATUS, id),
                    Request::Rekey => header(&mut w, KIND_REQUEST, op::REKEY, id),
                    Request::CpgJoin { group } => {
                        header(&mut w, KIND_REQUEST, op::CPG_JOIN, id);
                        w.short_bytes(group);
                    }
                    Request::CpgLeave { group } => {
                        header(&mut w, KIND_REQUEST, op::CPG_LEAVE, id);
                        w.short_bytes(group);
                    }
                    Request::CpgMcast {
                        group,
                        guarantee,
                        data,
                    } => {
                        header(&mut w, KIND_REQUEST, op::CPG_MCAST, id);
                        w.short_bytes(group).u8(guarantee.code());
                        tail = data.clone();
                    }
                    Request::CpgMcastBatch {
                        group,
                        guarantee,
                        messages,
                    } => {
                        header(&mut w, KIND_REQUEST, op::CPG_MCAST_BATCH, id);
                        w.short_bytes(group)
                            .u8(guarantee.code())
                            .count(messages.len());
                        for m in messages {
                            w.u32(u32::try_from(m.len()).unwrap_or(u32::MAX)).raw(m);
                        }
                    }
                    Request::CpgMembership { group } => {
                        header(&mut w, KIND_REQUEST, op::CPG_MEMBERSHIP, id);
                        w.short_bytes(group);
                    }
                    Request::CpgLocalGet => header(&mut w, KIND_REQUEST, op::CPG_LOCAL_GET, id),
                    Request::CpgFlowControlGet => {
                        header(&mut w, KIND_REQUEST, op::CPG_FLOW_CONTROL_GET, id);
                    }
                    Request::CpgGroups => header(&mut w, KIND_REQUEST, op::CPG_GROUPS, id),
                    Request::EvsJoin { groups } => {
                        header(&mut w, KIND_REQUEST, op::EVS_JOIN, id);
                        put_groups(&mut w, groups);
                    }
                    Request::EvsLeave { groups } => {
                        header(&mut w, KIND_REQUEST, op::EVS_LEAVE, id);
                        put_groups(&mut w, groups);
                    }
                    Request::EvsMcast {
                        groups,
                        guarantee,
                        data,
                    } => {
                        header(&mut w, KIND_REQUEST, op::EVS_MCAST, id);
                        put_groups(&mut w, groups);
                        w.u8(guarantee.code());
                        tail = data.clone();
                    }
                    Request::EvsMembershipGet => {
                        header(&mut w, KIND_REQUEST, op::EVS_MEMBERSHIP_GET, id);
                    }
                }
            }
            Packet::Response { id, resp } => {
                let id = *id;
                match resp {
                    Response::Ok => header(&mut w, KIND_RESPONSE, op::R_OK, id),
                    Response::Error(e) => {
                        header(&mut w, KIND_RESPONSE, op::R_ERROR, id);
                        w.u32(e.code());
                    }
                    Response::Status(s) => {
                        header(&mut w, KIND_RESPONSE, op::R_STATUS, id);
                        w.u32(s.node).short_bytes(&s.state).short_bytes(&s.ring);
                        put_ids(&mut w, &s.members);
                        w.count(s.counters.len());
                        for c in &s.counters {
                            w.short_bytes(&c.name).u64(c.value);
                        }
                    }
                    Response::Accepted(n) => {
                        header(&mut w, KIND_RESPONSE, op::R_ACCEPTED, id);
                        w.u32(*n);
                    }
                    Response::CpgMembers(m) => {
                        header(&mut w, KIND_RESPONSE, op::R_CPG_MEMBERS, id);
                        put_addrs(&mut w, m);
                    }
                    Response::LocalNode(n) => {
                        header(&mut w, KIND_RESPONSE, op::R_LOCAL_NODE, id);
                        w.u32(*n);
                    }
                    Response::FlowControl(on) => {
                        header(&mut w, KIND_RESPONSE, op::R_FLOW_CONTROL, id);
                        w.u8(u8::from(*on));
                    }
                    Response::CpgGroups(groups) => {
                        header(&mut w, KIND_RESPONSE, op::R_CPG_GROUPS, id);
                        w.count(groups.len());
                        for (g, m) in groups {
                            w.short_bytes(g);
                            put_addrs(&mut w, m);
                        }
                    }
                    Response::EvsMembers { local, members } => {
                        header(&mut w, KIND_RESPONSE, op::R_EVS_MEMBERS, id);
                        w.u32(*local);
                        put_ids(&mut w, members);
                    }
                }
            }
            Packet::Callback(cb) => match cb {
                Callback::CpgDeliver {
                    group,
                    sender,
                    data,
                } => {
                    header(&mut w, KIND_CALLBACK, op::C_CPG_DELIVER, 0);
                    w.short_bytes(group).u32(sender.node).u32(sender.pid);
                    tail = data.clone();
                }
                Callback::CpgConfChg {
                    group,
                    members,
                    left,
                    joined,
                } => {
                    header(&mut w, KIND_CALLBACK, op::C_CPG_CONFCHG, 0);
                    w.short_bytes(group);
                    put_addrs(&mut w, members);
                    put_reasons(&mut w, left);
                    put_reasons(&mut w, joined);
                }
                Callback::EvsDeliver { sender, data } => {
                    header(&mut w, KIND_CALLBACK, op::C_EVS_DELIVER, 0);
                    w.u32(*sender);
                    tail = data.clone();
                }
                Callback::EvsConfChg {
                    kind,
                    ring,
                    members,
                    left,
                    joined,
                } => {
                    header(&mut w, KIND_CALLBACK, op::C_EVS_CONFCHG, 0);
                    w.u8(match kind {
                        ConfKind::Regular => 1,
                        ConfKind::Transitional => 2,
                    });
                    w.short_bytes(ring);
                    put_ids(&mut w, members);
                    put_ids(&mut w, left);
                    put_ids(&mut w, joined);
                }
            },
        }
        (w.finish(), tail)
    }

    /// The packet as one contiguous buffer (tests and small packets).
    pub fn to_vec(&self) -> Vec<u8> {
        let (mut head, tail) = self.encode();
        head.extend_from_slice(&tail);
        head
    }

    /// Decodes one received datagram. Byte strings and payloads share `buf`'s memory.
    ///
    /// # Errors
    /// A wrong version, unknown kind or op, a truncated or over-long packet.
    pub fn decode(buf: Bytes) -> Result<Packet, DecodeError> {
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
        let kind = r.u8("kind")?;
        let code = r.u16("op")?;
        let id = r.u64("id")?;
        let unknown = |what| DecodeError::Unknown {
            what,
            value: u64::from(code),
        };
        let packet = match kind {
            KIND_REQUEST => {
                let req = match code {
                    op::HELLO => Request::Hello {
                        version: r.u8("version")?,
                        service: Service::from_code(r.u16("service")?)?,
                    },
                    op::STATUS => Request::Status,
                    op::REKEY => Request::Rekey,
                    op::CPG_JOIN => Request::CpgJoin {
                        group: get_group(&mut r)?,
                    },
                    op::CPG_LEAVE => Request::CpgLeave {
                        group: get_group(&mut r)?,
                    },
                    op::CPG_MCAST => Request::CpgMcast {
                        group: get_group(&mut r)?,
                        guarantee: Guarantee::from_code(r.u8("guarantee")?)?,
                        data: r.rest(),
                    },
                    op::CPG_MCAST_BATCH => {
                        let group = get_group(&mut r)?;
                        let guarantee = Guarantee::from_code(r.u8("guarantee")?)?;
                        let n = r.count("messages", 4)?;
                        let mut messages = Vec::with_capacity(n);
                        for _ in 0..n {
                            let len = r.u32("message length")? as usize;
                            if len > r.remaining() {
                                return Err(DecodeError::Truncated {
                                    field: "message",
                                    need: len,
                                    have: r.remaining(),
                                });
                            }
                            messages.push(r.bytes(len));
                        }
                        Request::CpgMcastBatch {
                            group,
                            guarantee,
                            messages,
                        }
                    }
                    op::CPG_MEMBERSHIP => Request::CpgMembership {
                        group: get_group(&mut r)?,
                    },
                    op::CPG_LOCAL_GET => Request::CpgLocalGet,
                    op::CPG_FLOW_CONTROL_GET => Request::CpgFlowControlGet,
                    op::CPG_GROUPS => Request::CpgGroups,
                    op::EVS_JOIN => Request::EvsJoin {
                        groups: get_groups(&mut r)?,
                    },
                    op::EVS_LEAVE => Request::EvsLeave {
                        groups: get_groups(&mut r)?,
                    },
                    op::EVS_MCAST => Request::EvsMcast {
                        groups: get_groups(&mut r)?,
                        guarantee: Guarantee::from_code(r.u8("guarantee")?)?,
                        data: r.rest(),
                    },
                    op::EVS_MEMBERSHIP_GET => Request::EvsMembershipGet,
                    _ => return Err(unknown("request op")),
                };
                Packet::Request { id, req }
            }
            KIND_RESPONSE => {
                let resp = match code {
                    op::R_OK => Response::Ok,
                    op::R_ERROR => Response::Error(AisError::from_code(r.u32("error")?)),
                    op::R_STATUS => {
                        let node = r.u32("node")?;
                        let state = r.short_bytes("state")?;
                        let ring = r.short_bytes("ring")?;
                        let members = get_ids(&mut r)?;
                        let n = r.count("counters", 10)?;
                        let counters = (0..n)
                            .map(|_| {
                                Ok(Counter {
                                    name: r.short_bytes("counter")?,
                                    value: r.u64("value")?,
                                })
                            })
                            .collect::<Result<_, DecodeError>>()?;
                        Response::Status(Status {
                            node,
                            state,
                            ring,
                            members,
                            counters,
                        })
                    }
                    op::R_ACCEPTED => Response::Accepted(r.u32("accepted")?),
                    op::R_CPG_MEMBERS => Response::CpgMembers(get_addrs(&mut r)?),
                    op::R_LOCAL_NODE => Response::LocalNode(r.u32("node")?),
                    op::R_FLOW_CONTROL => Response::FlowControl(r.u8("flow control")? != 0),
                    op::R_CPG_GROUPS => {
                        let n = r.count("groups", 6)?;
                        let groups = (0..n)
                            .map(|_| Ok((get_group(&mut r)?, get_addrs(&mut r)?)))
                            .collect::<Result<_, DecodeError>>()?;
                        Response::CpgGroups(groups)
                    }
                    op::R_EVS_MEMBERS => Response::EvsMembers {
                        local: r.u32("node")?,
                        members: get_ids(&mut r)?,
                    },
                    _ => return Err(unknown("response op")),
                };
                Packet::Response { id, resp }
            }
            KIND_CALLBACK => Packet::Callback(match code {
                op::C_CPG_DELIVER => Callback::CpgDeliver {
                    group: get_group(&mut r)?,
                    sender: CpgAddress {
                        node: r.u32("node")?,
                        pid: r.u32("pid")?,
                    },
                    data: r.rest(),
                },
                op::C_CPG_CONFCHG => Callback::CpgConfChg {
                    group: get_group(&mut r)?,
                    members: get_addrs(&mut r)?,
                    left: get_reasons(&mut r)?,
                    joined: get_reasons(&mut r)?,
                },
                op::C_EVS_DELIVER => Callback::EvsDeliver {
                    sender: r.u32("node")?,
                    data: r.rest(),
                },
                op::C_EVS_CONFCHG => Callback::EvsConfChg {
                    kind: match r.u8("kind")? {
                        1 => ConfKind::Regular,
                        2 => ConfKind::Transitional,
                        v => {
                            return Err(DecodeError::Unknown {
                                what: "configuration kind",
                                value: u64::from(v),
                            });
                        }
                    },
                    ring: r.short_bytes("ring")?,
                    members: get_ids(&mut r)?,
                    left: get_ids(&mut r)?,
                    joined: get_ids(&mut r)?,
                },
                _ => return Err(unknown("callback op")),
            }),
            v => {
                return Err(DecodeError::Unknown {
                    what: "packet kind",
                    value: u64::from(v),
                });
            }
        };
        r.end()?;
        Ok(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Packet> {
        let g = Bytes::from_static(b"group-a");
        let a = CpgAddress { node: 2, pid: 77 };
        let reqs = vec![
            Request::Hello {
                version: VERSION,
                service: Service::Cpg,
            },
            Request::Status,
            Request::Rekey,
            Request::CpgJoin { group: g.clone() },
            Request::CpgLeave { group: g.clone() },
            Request::CpgMcast {
                group: g.clone(),
                guarantee: Guarantee::Safe,
                data: Bytes::from_static(b"payload"),
            },
            Request::CpgMcast {
                group: g.clone(),
                guarantee: Guarantee::Agreed,
                data: Bytes::new(),
            },
            Request::CpgMcastBatch {
                group: g.clone(),
                guarantee: Guarantee::Agreed,
                messages: vec![
                    Bytes::from_static(b"a"),
                    Bytes::new(),
                    Bytes::from_static(b"ccc"),
                ],
            },
            Request::CpgMembership { group: g.clone() },
            Request::CpgLocalGet,
            Request::CpgFlowControlGet,
            Request::CpgGroups,
            Request::EvsJoin {
                groups: vec![g.clone(), Bytes::from_static(b"b")],
            },
            Request::EvsLeave { groups: vec![] },
            Request::EvsMcast {
                groups: vec![g.clone()],
                guarantee: Guarantee::Agreed,
                data: Bytes::from_static(b"x"),
            },
            Request::EvsMembershipGet,
        ];
        let resps = vec![
            Response::Ok,
            Response::Error(AisError::TryAgain),
            Response::Status(Status {
                node: 1,
                state: Bytes::from_static(b"operational"),
                ring: Bytes::from_static(b"1.8"),
                members: vec![1, 2, 3],
                counters: vec![Counter {
                    name: Bytes::from_static(b"frames_in"),
                    value: 42,
                }],
            }),
            Response::Accepted(3),
            Response::CpgMembers(vec![a]),
            Response::LocalNode(3),
            Response::FlowControl(true),
            Response::CpgGroups(vec![(g.clone(), vec![a, a])]),
            Response::EvsMembers {
                local: 1,
                members: vec![1, 2],
            },
        ];
        let cbs = vec![
            Callback::CpgDeliver {
                group: g.clone(),
                sender: a,
                data: Bytes::from_static(b"hello"),
            },
            Callback::CpgConfChg {
                group: g.clone(),
                members: vec![a],
                left: vec![(a, Reason::NodeDown)],
                joined: vec![(a, Reason::Join)],
            },
            Callback::EvsDeliver {
                sender: 4,
                data: Bytes::from_static(b"e"),
            },
            Callback::EvsConfChg {
                kind: ConfKind::Transitional,
                ring: Bytes::from_static(b"2.9"),
                members: vec![1],
                left: vec![2],
                joined: vec![],
            },
        ];
        let mut out: Vec<Packet> = reqs
            .into_iter()
            .enumerate()
            .map(|(i, req)| Packet::Request { id: i as u64, req })
            .collect();
        out.extend(
            resps
                .into_iter()
                .map(|resp| Packet::Response { id: 9, resp }),
        );
        out.extend(cbs.into_iter().map(Packet::Callback));
        out
    }

    #[test]
    fn every_packet_round_trips_and_every_truncation_fails() {
        for p in samples() {
            let bytes = Bytes::from(p.to_vec());
            assert_eq!(Packet::decode(bytes.clone()).unwrap(), p);
            let (head, _) = p.encode();
            // Cuts inside the head always fail (a payload tail may legitimately be shorter).
            for cut in 0..head.len() {
                assert!(
                    Packet::decode(bytes.slice(..cut)).is_err(),
                    "{p:?} cut at {cut} decoded"
                );
            }
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = Packet::Request {
            id: 1,
            req: Request::Status,
        }
        .to_vec();
        let mut v = good.clone();
        v[0] = 9;
        assert!(matches!(
            Packet::decode(Bytes::from(v)),
            Err(DecodeError::Version {
                what: "IPC protocol",
                got: 9,
                supported: VERSION
            })
        ));
        let mut v = good.clone();
        v[1] = 7;
        assert!(Packet::decode(Bytes::from(v)).is_err());
        let mut v = good.clone();
        v[2] = 0xff;
        assert!(Packet::decode(Bytes::from(v)).is_err());
        let mut v = good;
        v.push(0);
        assert_eq!(
            Packet::decode(Bytes::from(v)),
            Err(DecodeError::Trailing(1))
        );
    }

    #[test]
    fn group_names_are_limited() {
        assert_eq!(check_group(b""), Err(AisError::InvalidParam));
        assert_eq!(check_group(&[b'a'; 129]), Err(AisError::NameTooLong));
        assert_eq!(check_group(&[b'a'; 128]), Ok(()));
        let p = Packet::Request {
            id: 1,
            req: Request::CpgJoin {
                group: Bytes::from(vec![b'a'; 200]),
            },
        };
        assert!(Packet::decode(Bytes::from(p.to_vec())).is_err());
    }

    #[test]
    fn error_codes_round_trip() {
        for e in [
            AisError::Library,
            AisError::Version,
            AisError::TryAgain,
            AisError::InvalidParam,
            AisError::Access,
            AisError::NotExist,
            AisError::NameTooLong,
            AisError::Exist,
            AisError::NotSupported,
            AisError::BadOperation,
            AisError::TooBig,
        ] {
            assert_eq!(AisError::from_code(e.code()), e);
        }
        assert_eq!(AisError::TryAgain.code(), 6);
    }

    /// A packet of another version is refused naming both versions, and its request id can
    /// still be read to answer it.
    #[test]
    fn another_version_is_refused_naming_both() {
        let mut bytes = Packet::Request {
            id: 41,
            req: Request::Status,
        }
        .to_vec();
        assert_eq!(request_id(&bytes), Some(41));
        bytes[0] = VERSION + 1;
        let err = Packet::decode(Bytes::from(bytes.clone())).unwrap_err();
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
        let callback = Packet::Callback(Callback::CpgConfChg {
            group: Bytes::from_static(b"g"),
            members: vec![],
            left: vec![],
            joined: vec![],
        })
        .to_vec();
        assert_eq!(request_id(&callback), None);
    }
}
