//! CPG (closed process groups) on the IPC socket: requests, answers and callbacks, with their
//! codecs. The executive's half is `ais_core::services::cpg`, the client's `ais_client::cpg`.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, SliceReader, Writer};
use crate::ipc::{
    Encoded, Guarantee, HEADER_LEN, Kind, Message, Protocol, ServiceId, get_group, get_group_ref,
};

/// The fields of [`Request::McastBatch`] before its messages.
fn batch_fields(w: &mut Writer, group: &[u8], guarantee: Guarantee, count: usize) {
    w.short_bytes(group).u8(guarantee.code()).count(count);
}

/// The length that goes before each message of [`Request::McastBatch`].
fn batch_length(message: &[u8]) -> [u8; 4] {
    u32::try_from(message.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes()
}

/// A [`Request::McastBatch`] of borrowed messages as gather parts, for a client that sends
/// its caller's slices without copying them into a request first: the packet's header and
/// fields ([`McastBatchParts::head`]), then each message's length and bytes
/// ([`McastBatchParts::rest`]). The bytes are those of the encoded request.
#[derive(Debug)]
pub struct McastBatchParts<'a> {
    group: &'a [u8],
    guarantee: Guarantee,
    messages: &'a [&'a [u8]],
    lengths: Vec<[u8; 4]>,
}

impl<'a> McastBatchParts<'a> {
    /// The parts of a batch of `messages` to `group`.
    pub fn new(group: &'a [u8], guarantee: Guarantee, messages: &'a [&'a [u8]]) -> Self {
        McastBatchParts {
            group,
            guarantee,
            messages,
            lengths: messages.iter().map(|m| batch_length(m)).collect(),
        }
    }

    /// The packet's header, as request number `id`, and the fields before the messages.
    pub fn head(&self, id: u64) -> Vec<u8> {
        Encoded::build(
            Kind::Request,
            id,
            op::MCAST_BATCH,
            HEADER_LEN + 2 + self.group.len() + 1 + 4,
            |w| batch_fields(w, self.group, self.guarantee, self.messages.len()),
            Bytes::new(),
        )
        .head
    }

    /// What follows the head: each message's length, then the message.
    pub fn rest(&self) -> Vec<&[u8]> {
        self.lengths
            .iter()
            .zip(self.messages)
            .flat_map(|(len, m)| [len.as_slice(), m])
            .collect()
    }
}

/// The CPG protocol.
#[derive(Debug, Clone, Copy)]
pub struct CpgProtocol;

impl Protocol for CpgProtocol {
    const ID: ServiceId = ServiceId(1);
    const NAME: &'static str = "cpg";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
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

/// A CPG request.
///
/// Not `non_exhaustive`: the executive's handler must answer every request, so a new one
/// fails its build until it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Join a group.
    Join {
        /// The group.
        group: Bytes,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: Bytes,
    },
    /// Send a message to a group this connection joined.
    Mcast {
        /// The group.
        group: Bytes,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The message.
        data: Bytes,
    },
    /// Send several messages to a group this connection joined, in order, in one round trip.
    /// Totem takes them in order until its send queue is full; the answer
    /// ([`Response::Accepted`]) says how many it took (the first ones): send the rest again.
    McastBatch {
        /// The group.
        group: Bytes,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The messages.
        messages: Vec<Bytes>,
    },
    /// The members of a group.
    Membership {
        /// The group.
        group: Bytes,
    },
    /// This node's id.
    LocalGet,
    /// Whether Totem's send window is full (`CPG_FLOW_CONTROL_ENABLED`).
    FlowControlGet,
    /// Every group this node knows, with its members (`corosync-cpgtool`).
    Groups,
}

mod op {
    pub(super) const JOIN: u16 = 10;
    pub(super) const LEAVE: u16 = 11;
    pub(super) const MCAST: u16 = 12;
    pub(super) const MEMBERSHIP: u16 = 13;
    pub(super) const LOCAL_GET: u16 = 14;
    pub(super) const FLOW_CONTROL_GET: u16 = 15;
    pub(super) const GROUPS: u16 = 16;
    pub(super) const MCAST_BATCH: u16 = 17;

    pub(super) const R_MEMBERS: u16 = 4;
    pub(super) const R_LOCAL_NODE: u16 = 5;
    pub(super) const R_FLOW_CONTROL: u16 = 6;
    pub(super) const R_GROUPS: u16 = 7;
    pub(super) const R_ACCEPTED: u16 = 9;

    pub(super) const C_DELIVER: u16 = 1;
    pub(super) const C_CONFCHG: u16 = 2;
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp { service: "cpg", op }
}

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Join { .. } => op::JOIN,
            Request::Leave { .. } => op::LEAVE,
            Request::Mcast { .. } => op::MCAST,
            Request::McastBatch { .. } => op::MCAST_BATCH,
            Request::Membership { .. } => op::MEMBERSHIP,
            Request::LocalGet => op::LOCAL_GET,
            Request::FlowControlGet => op::FLOW_CONTROL_GET,
            Request::Groups => op::GROUPS,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Join { .. } => "CpgJoin",
            Request::Leave { .. } => "CpgLeave",
            Request::Mcast { .. } => "CpgMcast",
            Request::McastBatch { .. } => "CpgMcastBatch",
            Request::Membership { .. } => "CpgMembership",
            Request::LocalGet => "CpgLocalGet",
            Request::FlowControlGet => "CpgFlowControlGet",
            Request::Groups => "CpgGroups",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Join { group } | Request::Leave { group } | Request::Membership { group } => {
                w.short_bytes(group);
            }
            Request::Mcast {
                group,
                guarantee,
                data,
            } => {
                w.short_bytes(group).u8(guarantee.code());
                return data.clone();
            }
            Request::McastBatch {
                group,
                guarantee,
                messages,
            } => {
                batch_fields(w, group, *guarantee, messages.len());
                for m in messages {
                    w.raw(&batch_length(m)).raw(m);
                }
            }
            Request::LocalGet | Request::FlowControlGet | Request::Groups => {}
        }
        Bytes::new()
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match code {
            op::JOIN => Request::Join {
                group: get_group(r)?,
            },
            op::LEAVE => Request::Leave {
                group: get_group(r)?,
            },
            op::MCAST => Request::Mcast {
                group: get_group(r)?,
                guarantee: Guarantee::from_code(r.u8("guarantee")?)?,
                data: r.rest(),
            },
            op::MCAST_BATCH => {
                let group = get_group(r)?;
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
                Request::McastBatch {
                    group,
                    guarantee,
                    messages,
                }
            }
            op::MEMBERSHIP => Request::Membership {
                group: get_group(r)?,
            },
            op::LOCAL_GET => Request::LocalGet,
            op::FLOW_CONTROL_GET => Request::FlowControlGet,
            op::GROUPS => Request::Groups,
            other => return Err(unknown(other)),
        })
    }
}

/// A CPG answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::McastBatch`]: how many of the messages, from the first, Totem
    /// took (at least one; none is `Error(TryAgain)`).
    Accepted(u32),
    /// Answer to [`Request::Membership`].
    Members(Vec<CpgAddress>),
    /// Answer to [`Request::LocalGet`].
    LocalNode(u32),
    /// Answer to [`Request::FlowControlGet`]: true when enabled (sends would be refused).
    FlowControl(bool),
    /// Answer to [`Request::Groups`].
    Groups(Vec<(Bytes, Vec<CpgAddress>)>),
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

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::Accepted(_) => op::R_ACCEPTED,
            Response::Members(_) => op::R_MEMBERS,
            Response::LocalNode(_) => op::R_LOCAL_NODE,
            Response::FlowControl(_) => op::R_FLOW_CONTROL,
            Response::Groups(_) => op::R_GROUPS,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::Accepted(_) => "Accepted",
            Response::Members(_) => "CpgMembers",
            Response::LocalNode(_) => "LocalNode",
            Response::FlowControl(_) => "FlowControl",
            Response::Groups(_) => "CpgGroups",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::Accepted(n) | Response::LocalNode(n) => {
                w.u32(*n);
            }
            Response::Members(m) => put_addrs(w, m),
            Response::FlowControl(on) => {
                w.u8(u8::from(*on));
            }
            Response::Groups(groups) => {
                w.count(groups.len());
                for (g, m) in groups {
                    w.short_bytes(g);
                    put_addrs(w, m);
                }
            }
        }
        Bytes::new()
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match code {
            op::R_ACCEPTED => Response::Accepted(r.u32("accepted")?),
            op::R_MEMBERS => Response::Members(get_addrs(r)?),
            op::R_LOCAL_NODE => Response::LocalNode(r.u32("node")?),
            op::R_FLOW_CONTROL => Response::FlowControl(r.u8("flow control")? != 0),
            op::R_GROUPS => {
                let n = r.count("groups", 6)?;
                let groups = (0..n)
                    .map(|_| Ok((get_group(r)?, get_addrs(r)?)))
                    .collect::<Result<_, DecodeError>>()?;
                Response::Groups(groups)
            }
            other => return Err(unknown(other)),
        })
    }
}

/// A CPG callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// A message delivered to a group this connection joined.
    Deliver {
        /// The group.
        group: Bytes,
        /// The sender.
        sender: CpgAddress,
        /// The message.
        data: Bytes,
    },
    /// A group's membership changed.
    ConfChg {
        /// The group.
        group: Bytes,
        /// Members after the change, ascending.
        members: Vec<CpgAddress>,
        /// Who left, and why.
        left: Vec<(CpgAddress, Reason)>,
        /// Who joined, and why.
        joined: Vec<(CpgAddress, Reason)>,
    },
}

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::Deliver { .. } => op::C_DELIVER,
            Callback::ConfChg { .. } => op::C_CONFCHG,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::Deliver { .. } => "CpgDeliver",
            Callback::ConfChg { .. } => "CpgConfChg",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Callback::Deliver {
                group,
                sender,
                data,
            } => {
                w.short_bytes(group).u32(sender.node).u32(sender.pid);
                data.clone()
            }
            Callback::ConfChg {
                group,
                members,
                left,
                joined,
            } => {
                w.short_bytes(group);
                put_addrs(w, members);
                put_reasons(w, left);
                put_reasons(w, joined);
                Bytes::new()
            }
        }
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match code {
            op::C_DELIVER => Callback::Deliver {
                group: get_group(r)?,
                sender: CpgAddress {
                    node: r.u32("node")?,
                    pid: r.u32("pid")?,
                },
                data: r.rest(),
            },
            op::C_CONFCHG => Callback::ConfChg {
                group: get_group(r)?,
                members: get_addrs(r)?,
                left: get_reasons(r)?,
                joined: get_reasons(r)?,
            },
            other => return Err(unknown(other)),
        })
    }
}

impl Callback {
    /// The packet of a [`Callback::Deliver`] of `data` to `group` from `sender`: the bytes
    /// of `Encoded::callback(&Callback::Deliver { .. })`, built from a borrowed group name
    /// with `data` moved in as the tail (the executive's per-delivery path).
    pub fn deliver_packet(group: &[u8], sender: CpgAddress, data: Bytes) -> Encoded {
        let head_len = HEADER_LEN + 2 + group.len() + 8;
        Encoded::build(
            Kind::Callback,
            0,
            op::C_DELIVER,
            head_len,
            |w| {
                w.short_bytes(group).u32(sender.node).u32(sender.pid);
            },
            data,
        )
    }
}

impl RingMessage {
    /// The ring message (executive header included) of a [`RingMessage::Mcast`] of `data`
    /// to `group` from process `pid`, built from borrowed bytes: the bytes
    /// `ring::encode(CpgProtocol::ID, &RingMessage::Mcast { .. })` gives, with one copy of
    /// the data and no slice of the client's request kept (the executive's per-message
    /// path).
    pub fn mcast_message(group: &[u8], pid: u32, data: &[u8]) -> Bytes {
        let len = crate::ring::EXEC_HEADER + 2 + group.len() + 4 + data.len();
        crate::ring::encode_with(CpgProtocol::ID, kind::MCAST, len, |w| {
            w.short_bytes(group).u32(pid).raw(data);
        })
    }
}

/// A delivered [`RingMessage::Mcast`] read in place: its group and data borrowed from the
/// delivered payload (no copy, no reference count touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McastRef<'a> {
    /// The group.
    pub group: &'a [u8],
    /// The sending process, on the sending node.
    pub pid: u32,
    /// The message.
    pub data: &'a [u8],
}

impl<'a> McastRef<'a> {
    /// Reads the body of a ring message of kind `kind` as a [`RingMessage::Mcast`]: `None`
    /// when `kind` is another message's; otherwise what `decode_body::<RingMessage>(kind,
    /// body)` gives, with the same checks and errors.
    pub fn parse(kind: u16, body: &'a [u8]) -> Option<Result<McastRef<'a>, DecodeError>> {
        if kind != kind::MCAST {
            return None;
        }
        let mut r = SliceReader::new(body);
        let parsed = get_group_ref(&mut r).and_then(|group| {
            Ok(McastRef {
                group,
                pid: r.u32("pid")?,
                data: r.rest(),
            })
        });
        Some(parsed)
    }
}

/// A CPG message on the Totem ring (the executive's half: `ais_core::services::cpg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A process joins a group.
    Join {
        /// The group.
        group: Bytes,
        /// The process, on the sending node.
        pid: u32,
    },
    /// A process leaves a group.
    Leave {
        /// The group.
        group: Bytes,
        /// The process, on the sending node.
        pid: u32,
        /// Why ([`Reason::Leave`] or [`Reason::ProcDown`]).
        reason: Reason,
    },
    /// A message to a group.
    Mcast {
        /// The group.
        group: Bytes,
        /// The sending process, on the sending node.
        pid: u32,
        /// The message.
        data: Bytes,
    },
    /// After a membership change: the sending node's processes in every group, as they were
    /// in the ring `(rep, seq)`.
    JoinList {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// (group, pid) of every local member.
        entries: Vec<(Bytes, u32)>,
    },
}

mod kind {
    pub(super) const JOIN: u16 = 1;
    pub(super) const LEAVE: u16 = 2;
    pub(super) const MCAST: u16 = 3;
    pub(super) const JOINLIST: u16 = 4;
}

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Join { .. } => kind::JOIN,
            RingMessage::Leave { .. } => kind::LEAVE,
            RingMessage::Mcast { .. } => kind::MCAST,
            RingMessage::JoinList { .. } => kind::JOINLIST,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Join { .. } => "Join",
            RingMessage::Leave { .. } => "Leave",
            RingMessage::Mcast { .. } => "Mcast",
            RingMessage::JoinList { .. } => "JoinList",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Join { group, pid } => {
                w.short_bytes(group).u32(*pid);
            }
            RingMessage::Leave { group, pid, reason } => {
                w.short_bytes(group).u32(*pid).u8(reason.code());
            }
            RingMessage::Mcast { group, pid, data } => {
                w.short_bytes(group).u32(*pid);
                return data.clone();
            }
            RingMessage::JoinList { rep, seq, entries } => {
                w.u32(*rep).u64(*seq).count(entries.len());
                for (group, pid) in entries {
                    w.short_bytes(group).u32(*pid);
                }
            }
        }
        Bytes::new()
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match code {
            kind::JOIN => RingMessage::Join {
                group: get_group(r)?,
                pid: r.u32("pid")?,
            },
            kind::LEAVE => RingMessage::Leave {
                group: get_group(r)?,
                pid: r.u32("pid")?,
                reason: Reason::from_code(r.u8("reason")?)?,
            },
            kind::MCAST => RingMessage::Mcast {
                group: get_group(r)?,
                pid: r.u32("pid")?,
                data: r.rest(),
            },
            kind::JOINLIST => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let n = r.count("entries", 6)?;
                let entries = (0..n)
                    .map(|_| Ok((get_group(r)?, r.u32("pid")?)))
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                RingMessage::JoinList { rep, seq, entries }
            }
            other => return Err(unknown(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    #[test]
    fn batch_parts_are_the_encoded_request() {
        let group = b"group-b";
        let big = vec![7u8; 70_000];
        let cases: [&[&[u8]]; 4] = [&[b"a", b"", b"ccc"], &[big.as_slice(), b"x"], &[b""], &[]];
        for messages in cases {
            for guarantee in [Guarantee::Agreed, Guarantee::Safe] {
                let parts = McastBatchParts::new(group, guarantee, messages);
                let mut gathered = parts.head(0x0102_0304_0506_0708);
                for p in parts.rest() {
                    gathered.extend_from_slice(p);
                }
                let req = crate::ipc::Request::Service(Request::McastBatch {
                    group: Bytes::from_static(group),
                    guarantee,
                    messages: messages.iter().map(|m| Bytes::copy_from_slice(m)).collect(),
                });
                assert_eq!(
                    gathered,
                    Encoded::request(0x0102_0304_0506_0708, &req).to_vec()
                );
            }
        }
    }

    #[test]
    fn every_cpg_packet_round_trips_and_every_truncation_fails() {
        let g = Bytes::from_static(b"group-a");
        let a = CpgAddress { node: 2, pid: 77 };
        let reqs = [
            Request::Join { group: g.clone() },
            Request::Leave { group: g.clone() },
            Request::Mcast {
                group: g.clone(),
                guarantee: Guarantee::Safe,
                data: Bytes::from_static(b"payload"),
            },
            Request::Mcast {
                group: g.clone(),
                guarantee: Guarantee::Agreed,
                data: Bytes::new(),
            },
            Request::McastBatch {
                group: g.clone(),
                guarantee: Guarantee::Agreed,
                messages: vec![
                    Bytes::from_static(b"a"),
                    Bytes::new(),
                    Bytes::from_static(b"ccc"),
                ],
            },
            Request::Membership { group: g.clone() },
            Request::LocalGet,
            Request::FlowControlGet,
            Request::Groups,
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let resps = [
            Response::Accepted(3),
            Response::Members(vec![a]),
            Response::LocalNode(3),
            Response::FlowControl(true),
            Response::Groups(vec![(g.clone(), vec![a, a])]),
        ];
        assert!(resps.iter().all(|r| r.op() >= FIRST_RESPONSE_OP));
        assert_round_trips(Kind::Response, &resps);
        assert_round_trips(
            Kind::Callback,
            &[
                Callback::Deliver {
                    group: g.clone(),
                    sender: a,
                    data: Bytes::from_static(b"hello"),
                },
                Callback::ConfChg {
                    group: g,
                    members: vec![a],
                    left: vec![(a, Reason::NodeDown)],
                    joined: vec![(a, Reason::Join)],
                },
            ],
        );
    }

    #[test]
    fn every_cpg_ring_message_round_trips() {
        let g = Bytes::from_static(b"g");
        assert_round_trips(
            Kind::Request,
            &[
                RingMessage::Join {
                    group: g.clone(),
                    pid: 7,
                },
                RingMessage::Leave {
                    group: g.clone(),
                    pid: 7,
                    reason: Reason::ProcDown,
                },
                RingMessage::Mcast {
                    group: g.clone(),
                    pid: 7,
                    data: Bytes::from_static(b"hi"),
                },
                RingMessage::JoinList {
                    rep: 1,
                    seq: 8,
                    entries: vec![(g, 7)],
                },
            ],
        );
    }

    #[test]
    fn an_over_long_group_name_does_not_decode() {
        let mut w = Writer::default();
        Request::Join {
            group: Bytes::from(vec![b'a'; 200]),
        }
        .encode(&mut w);
        let mut r = Reader::new(Bytes::from(w.finish()));
        assert!(Request::decode(op::JOIN, &mut r).is_err());
    }

    #[test]
    fn a_deliver_packet_is_the_encoded_callback() {
        let sender = CpgAddress { node: 3, pid: 41 };
        for (group, data) in [
            (&b"g"[..], &b""[..]),
            (b"group-a", b"payload"),
            (&[b'x'; 128][..], &[7u8; 1024][..]),
        ] {
            let packet = Callback::deliver_packet(group, sender, Bytes::copy_from_slice(data));
            assert_eq!(&packet.tail[..], data);
            let shared = Encoded::callback(&Callback::Deliver {
                group: Bytes::copy_from_slice(group),
                sender,
                data: Bytes::copy_from_slice(data),
            });
            assert_eq!(packet.to_vec(), shared.to_vec());
            assert_eq!(packet.head.len(), packet.head.capacity());
        }
    }

    #[test]
    fn an_mcast_message_built_from_slices_is_the_encoded_one() {
        for (group, data) in [(&b"g"[..], &b""[..]), (b"group-a", &[3u8; 1024][..])] {
            let built = RingMessage::mcast_message(group, 17, data);
            let encoded = crate::ring::encode(
                CpgProtocol::ID,
                &RingMessage::Mcast {
                    group: Bytes::copy_from_slice(group),
                    pid: 17,
                    data: Bytes::copy_from_slice(data),
                },
            );
            assert_eq!(built, encoded);
        }
    }

    #[test]
    fn an_mcast_read_in_place_is_the_decoded_one() {
        use crate::ipc::decode_body;
        let mcast = |group: &[u8], data: &[u8]| {
            let m = RingMessage::Mcast {
                group: Bytes::copy_from_slice(group),
                pid: 9,
                data: Bytes::copy_from_slice(data),
            };
            let mut w = Writer::default();
            let tail = m.encode(&mut w);
            let mut v = w.finish();
            v.extend_from_slice(&tail);
            v
        };
        let long = mcast(&[b'a'; 129], b"x");
        let samples = [mcast(b"g", b"data"), mcast(b"", b""), long];
        for body in &samples {
            for cut in 0..=body.len() {
                let part = &body[..cut];
                let owned = decode_body::<RingMessage>(kind::MCAST, Bytes::copy_from_slice(part));
                let borrowed = McastRef::parse(kind::MCAST, part).expect("an mcast kind");
                match (owned, borrowed) {
                    (Ok(RingMessage::Mcast { group, pid, data }), Ok(r)) => {
                        assert_eq!((&group[..], pid, &data[..]), (r.group, r.pid, r.data));
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "cut at {cut}"),
                    (a, b) => panic!("cut at {cut}: {a:?} against {b:?}"),
                }
            }
        }
        assert!(matches!(
            McastRef::parse(kind::MCAST, &samples[2]),
            Some(Err(DecodeError::Invalid { field: "group", .. }))
        ));
        for other in [kind::JOIN, kind::LEAVE, kind::JOINLIST, 0, 99] {
            assert!(McastRef::parse(other, &samples[0]).is_none());
        }
    }
}
