//! CLM (SA Forum cluster membership, B.01.01 semantics) on the IPC socket and on the ring.
//! The executive's half is `ais_core::services::clm`, the client's `ais_client::clm`.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{AisError, Message, Protocol, ServiceId};

/// The CLM protocol.
#[derive(Debug, Clone, Copy)]
pub struct ClmProtocol;

impl Protocol for ClmProtocol {
    const ID: ServiceId = ServiceId(5);
    const NAME: &'static str = "clm";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// `SA_CLM_LOCAL_NODE_ID`: this node, in [`Request::NodeGet`].
pub const LOCAL_NODE_ID: u32 = 0xffff_ffff;
/// `SA_TRACK_CURRENT`: answer the current membership.
pub const TRACK_CURRENT: u8 = 0x01;
/// `SA_TRACK_CHANGES`: a callback at every change, listing every member and every change.
pub const TRACK_CHANGES: u8 = 0x02;
/// `SA_TRACK_CHANGES_ONLY`: a callback at every change, listing the changed nodes only.
pub const TRACK_CHANGES_ONLY: u8 = 0x04;
/// Longest node name (`SA_MAX_NAME_LENGTH`).
pub const MAX_NAME: usize = 256;

/// A node's address (`SaClmNodeAddressT`): the address its Totem frames come from, in
/// binary (4 bytes for IPv4, 16 for IPv6; SAFtest reads it that way), or no address (a DPDK
/// ring, which has only MAC addresses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeAddress {
    /// No IP address.
    None,
    /// `SA_CLM_AF_INET`.
    V4([u8; 4]),
    /// `SA_CLM_AF_INET6`.
    V6([u8; 16]),
}

impl std::fmt::Display for NodeAddress {
    /// `10.0.0.1`, `fd00::1`, or `-` for none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeAddress::None => f.write_str("-"),
            NodeAddress::V4(a) => std::net::Ipv4Addr::from(*a).fmt(f),
            NodeAddress::V6(a) => std::net::Ipv6Addr::from(*a).fmt(f),
        }
    }
}

/// One node as CLM shows it (`SaClmClusterNodeT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterNode {
    /// The Totem node id.
    pub node_id: u32,
    /// Its address.
    pub address: NodeAddress,
    /// Its name (the host name unless configured).
    pub name: Bytes,
    /// Whether it is a member of the current view (false in a `Left` change).
    pub member: bool,
    /// When it booted, nanoseconds since the UNIX epoch (`SaTimeT`).
    pub boot_timestamp: u64,
    /// The view in which it first became a member, as it says itself.
    pub initial_view_number: u64,
}

/// How a node changed in a track callback (`SaClmClusterChangesT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// `SA_CLM_NODE_NO_CHANGE`.
    NoChange,
    /// `SA_CLM_NODE_JOINED`.
    Joined,
    /// `SA_CLM_NODE_LEFT`.
    Left,
    /// `SA_CLM_NODE_RECONFIGURED` (its record changed, e.g. after a restart).
    Reconfigured,
}

impl Change {
    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            Change::NoChange => 1,
            Change::Joined => 2,
            Change::Left => 3,
            Change::Reconfigured => 4,
        }
    }

    fn from_code(c: u8) -> Result<Change, DecodeError> {
        Ok(match c {
            1 => Change::NoChange,
            2 => Change::Joined,
            3 => Change::Left,
            4 => Change::Reconfigured,
            v => {
                return Err(DecodeError::Unknown {
                    what: "cluster change",
                    value: u64::from(v),
                });
            }
        })
    }
}

/// A view: its number and its nodes (with their changes, in track callbacks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// The view number (the ring's sequence number / 4: the same at every member).
    pub view_number: u64,
    /// The nodes, ascending by id, and how each changed.
    pub items: Vec<(ClusterNode, Change)>,
    /// The number of members in the view (`numberOfMembers`: not the number of items).
    pub members: u32,
}

fn put_node(w: &mut Writer, n: &ClusterNode) {
    w.u32(n.node_id);
    match &n.address {
        NodeAddress::None => {
            w.u8(0);
        }
        NodeAddress::V4(a) => {
            w.u8(1).raw(a);
        }
        NodeAddress::V6(a) => {
            w.u8(2).raw(a);
        }
    }
    w.short_bytes(&n.name)
        .u8(u8::from(n.member))
        .u64(n.boot_timestamp)
        .u64(n.initial_view_number);
}

fn get_node(r: &mut Reader) -> Result<ClusterNode, DecodeError> {
    let node_id = r.u32("node id")?;
    let address = match r.u8("address family")? {
        0 => NodeAddress::None,
        1 => {
            let b = r.bytes(4);
            NodeAddress::V4(b[..].try_into().map_err(|_| DecodeError::Truncated {
                field: "address",
                need: 4,
                have: b.len(),
            })?)
        }
        2 => {
            let b = r.bytes(16);
            NodeAddress::V6(b[..].try_into().map_err(|_| DecodeError::Truncated {
                field: "address",
                need: 16,
                have: b.len(),
            })?)
        }
        v => {
            return Err(DecodeError::Unknown {
                what: "address family",
                value: u64::from(v),
            });
        }
    };
    let name = r.short_bytes("name")?;
    if name.len() > MAX_NAME {
        return Err(DecodeError::Invalid {
            field: "name",
            why: "longer than 256 bytes",
        });
    }
    Ok(ClusterNode {
        node_id,
        address,
        name,
        member: r.bool("member")?,
        boot_timestamp: r.u64("boot timestamp")?,
        initial_view_number: r.u64("initial view number")?,
    })
}

fn put_view(w: &mut Writer, v: &View) {
    w.u64(v.view_number).u32(v.members).count(v.items.len());
    for (n, c) in &v.items {
        put_node(w, n);
        w.u8(c.code());
    }
}

fn get_view(r: &mut Reader) -> Result<View, DecodeError> {
    let view_number = r.u64("view number")?;
    let members = r.u32("members")?;
    // The smallest item: id 4, family 1, name length 2, member 1, two times 8, change 1.
    let n = r.count("items", 25)?;
    let items = (0..n)
        .map(|_| Ok((get_node(r)?, Change::from_code(r.u8("change")?)?)))
        .collect::<Result<_, DecodeError>>()?;
    Ok(View {
        view_number,
        items,
        members,
    })
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp { service: "clm", op }
}

/// A CLM request.
///
/// Not `non_exhaustive`: the executive's handler must answer every request, so a new one
/// fails its build until it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `saClmClusterTrack`: with [`TRACK_CURRENT`] the answer carries the current view; with
    /// [`TRACK_CHANGES`] or [`TRACK_CHANGES_ONLY`] a callback follows every change.
    Track {
        /// The track flags.
        flags: u8,
    },
    /// `saClmClusterTrackStop`.
    TrackStop,
    /// `saClmClusterNodeGet`: one node ([`LOCAL_NODE_ID`]: this one).
    NodeGet {
        /// The node.
        node_id: u32,
    },
    /// `saClmClusterNodeGetAsync`: answered `Ok`, then [`Callback::NodeGet`].
    NodeGetAsync {
        /// The node.
        node_id: u32,
        /// The caller's number for it.
        invocation: u64,
    },
}

const OP_TRACK: u16 = 50;
const OP_TRACK_STOP: u16 = 51;
const OP_NODE_GET: u16 = 52;
const OP_NODE_GET_ASYNC: u16 = 53;
const R_VIEW: u16 = 50;
const R_NODE: u16 = 51;
const C_TRACK: u16 = 50;
const C_NODE_GET: u16 = 51;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Track { .. } => OP_TRACK,
            Request::TrackStop => OP_TRACK_STOP,
            Request::NodeGet { .. } => OP_NODE_GET,
            Request::NodeGetAsync { .. } => OP_NODE_GET_ASYNC,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Track { .. } => "ClmTrack",
            Request::TrackStop => "ClmTrackStop",
            Request::NodeGet { .. } => "ClmNodeGet",
            Request::NodeGetAsync { .. } => "ClmNodeGetAsync",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Track { flags } => {
                w.u8(*flags);
            }
            Request::TrackStop => {}
            Request::NodeGet { node_id } => {
                w.u32(*node_id);
            }
            Request::NodeGetAsync {
                node_id,
                invocation,
            } => {
                w.u32(*node_id).u64(*invocation);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            OP_TRACK => Request::Track {
                flags: r.u8("flags")?,
            },
            OP_TRACK_STOP => Request::TrackStop,
            OP_NODE_GET => Request::NodeGet {
                node_id: r.u32("node id")?,
            },
            OP_NODE_GET_ASYNC => Request::NodeGetAsync {
                node_id: r.u32("node id")?,
                invocation: r.u64("invocation")?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// A CLM answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Track`] with [`TRACK_CURRENT`]: every member, `NoChange`.
    View(View),
    /// Answer to [`Request::NodeGet`].
    Node(ClusterNode),
}

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::View(_) => R_VIEW,
            Response::Node(_) => R_NODE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::View(_) => "ClmView",
            Response::Node(_) => "ClmNode",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::View(v) => put_view(w, v),
            Response::Node(n) => put_node(w, n),
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            R_VIEW => Ok(Response::View(get_view(r)?)),
            R_NODE => Ok(Response::Node(get_node(r)?)),
            other => Err(unknown(other)),
        }
    }
}

/// A CLM callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The membership changed (`saClmClusterTrackCallback`).
    Track(View),
    /// The answer to [`Request::NodeGetAsync`] (`saClmClusterNodeGetCallback`).
    NodeGet {
        /// The caller's number.
        invocation: u64,
        /// The node, or why not.
        result: Result<ClusterNode, AisError>,
    },
}

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::Track(_) => C_TRACK,
            Callback::NodeGet { .. } => C_NODE_GET,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::Track(_) => "ClmTrackCallback",
            Callback::NodeGet { .. } => "ClmNodeGetCallback",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Callback::Track(v) => put_view(w, v),
            Callback::NodeGet { invocation, result } => {
                w.u64(*invocation);
                match result {
                    Ok(n) => {
                        w.u32(1);
                        put_node(w, n);
                    }
                    Err(e) => {
                        w.u32(e.code());
                    }
                }
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            C_TRACK => Ok(Callback::Track(get_view(r)?)),
            C_NODE_GET => {
                let invocation = r.u64("invocation")?;
                let result = match r.u32("error")? {
                    1 => Ok(get_node(r)?),
                    code => Err(AisError::from_code(code)),
                };
                Ok(Callback::NodeGet { invocation, result })
            }
            other => Err(unknown(other)),
        }
    }
}

/// A node's own record, sent by every member in the sync after each regular configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// The sender's record, for the sync of ring `(rep, seq)`.
    NodeJoin {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The record (`member` true).
        node: ClusterNode,
    },
}

const RING_NODE_JOIN: u16 = 1;

impl Message for RingMessage {
    fn op(&self) -> u16 {
        RING_NODE_JOIN
    }

    fn name(&self) -> &'static str {
        "NodeJoin"
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        let RingMessage::NodeJoin { rep, seq, node } = self;
        w.u32(*rep).u64(*seq);
        put_node(w, node);
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            RING_NODE_JOIN => Ok(RingMessage::NodeJoin {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                node: get_node(r)?,
            }),
            other => Err(unknown(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    fn node(id: u32, address: NodeAddress) -> ClusterNode {
        ClusterNode {
            node_id: id,
            address,
            name: Bytes::from_static(b"blade-3"),
            member: true,
            boot_timestamp: 1_700_000_000_000_000_000,
            initial_view_number: 2,
        }
    }

    /// Items of the smallest size (no address, an empty name) decode in any number.
    #[test]
    fn a_view_of_the_smallest_items_decodes() {
        let tiny = ClusterNode {
            name: Bytes::new(),
            ..node(1, NodeAddress::None)
        };
        let view = View {
            view_number: 1,
            items: vec![(tiny.clone(), Change::NoChange), (tiny, Change::Joined)],
            members: 2,
        };
        assert_round_trips(Kind::Response, &[Response::View(view)]);
    }

    #[test]
    fn addresses_display_as_ip_text() {
        assert_eq!(NodeAddress::V4([10, 0, 0, 1]).to_string(), "10.0.0.1");
        let mut v6 = [0; 16];
        v6[15] = 1;
        assert_eq!(NodeAddress::V6(v6).to_string(), "::1");
        assert_eq!(NodeAddress::None.to_string(), "-");
    }

    #[test]
    fn every_clm_message_round_trips() {
        let a = node(1, NodeAddress::V4([10, 0, 0, 1]));
        let b = node(2, NodeAddress::V6([1; 16]));
        let c = node(3, NodeAddress::None);
        let view = View {
            view_number: 7,
            items: vec![(a.clone(), Change::NoChange), (b.clone(), Change::Joined)],
            members: 2,
        };
        let reqs = [
            Request::Track { flags: 3 },
            Request::TrackStop,
            Request::NodeGet {
                node_id: LOCAL_NODE_ID,
            },
            Request::NodeGetAsync {
                node_id: 2,
                invocation: 99,
            },
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let resps = [Response::View(view.clone()), Response::Node(c.clone())];
        assert!(resps.iter().all(|r| r.op() >= FIRST_RESPONSE_OP));
        assert_round_trips(Kind::Response, &resps);
        assert_round_trips(
            Kind::Callback,
            &[
                Callback::Track(View {
                    items: vec![(
                        ClusterNode {
                            member: false,
                            ..c.clone()
                        },
                        Change::Left,
                    )],
                    ..view
                }),
                Callback::NodeGet {
                    invocation: 4,
                    result: Ok(b),
                },
                Callback::NodeGet {
                    invocation: 5,
                    result: Err(AisError::NotExist),
                },
            ],
        );
        assert_round_trips(
            Kind::Request,
            &[RingMessage::NodeJoin {
                rep: 1,
                seq: 8,
                node: a,
            }],
        );
    }
}
