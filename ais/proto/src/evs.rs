//! EVS (extended virtual synchrony groups) on the IPC socket: requests, answers and callbacks,
//! with their codecs. The executive's half is `ais_core::services::evs`, the client's
//! `ais_client::evs`.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{
    Guarantee, Message, Protocol, ServiceId, get_groups, get_ids, put_groups, put_ids,
};

/// The EVS protocol.
#[derive(Debug, Clone, Copy)]
pub struct EvsProtocol;

impl Protocol for EvsProtocol {
    const ID: ServiceId = ServiceId(2);
    const NAME: &'static str = "evs";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// Regular or transitional, for configuration callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfKind {
    /// A new ring.
    Regular,
    /// The members moving on together from the ending ring.
    Transitional,
}

/// An EVS request.
///
/// Not `non_exhaustive`: the executive's handler must answer every request, so a new one
/// fails its build until it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Add groups to this connection's filter.
    Join {
        /// The groups.
        groups: Vec<Bytes>,
    },
    /// Remove groups from this connection's filter.
    Leave {
        /// The groups.
        groups: Vec<Bytes>,
    },
    /// Send to the groups this connection joined (`evs_mcast_joined`) or to the given groups
    /// (`evs_mcast_groups`).
    Mcast {
        /// The groups; empty means this connection's joined groups.
        groups: Vec<Bytes>,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The message.
        data: Bytes,
    },
    /// The node membership (`evs_membership_get`).
    MembershipGet,
}

mod op {
    pub(super) const JOIN: u16 = 20;
    pub(super) const LEAVE: u16 = 21;
    pub(super) const MCAST: u16 = 22;
    pub(super) const MEMBERSHIP_GET: u16 = 23;

    pub(super) const R_MEMBERS: u16 = 8;

    pub(super) const C_DELIVER: u16 = 3;
    pub(super) const C_CONFCHG: u16 = 4;
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp { service: "evs", op }
}

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Join { .. } => op::JOIN,
            Request::Leave { .. } => op::LEAVE,
            Request::Mcast { .. } => op::MCAST,
            Request::MembershipGet => op::MEMBERSHIP_GET,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Join { .. } => "EvsJoin",
            Request::Leave { .. } => "EvsLeave",
            Request::Mcast { .. } => "EvsMcast",
            Request::MembershipGet => "EvsMembershipGet",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Join { groups } | Request::Leave { groups } => put_groups(w, groups),
            Request::Mcast {
                groups,
                guarantee,
                data,
            } => {
                put_groups(w, groups);
                w.u8(guarantee.code());
                return data.clone();
            }
            Request::MembershipGet => {}
        }
        Bytes::new()
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match code {
            op::JOIN => Request::Join {
                groups: get_groups(r)?,
            },
            op::LEAVE => Request::Leave {
                groups: get_groups(r)?,
            },
            op::MCAST => Request::Mcast {
                groups: get_groups(r)?,
                guarantee: Guarantee::from_code(r.u8("guarantee")?)?,
                data: r.rest(),
            },
            op::MEMBERSHIP_GET => Request::MembershipGet,
            other => return Err(unknown(other)),
        })
    }
}

/// An EVS answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::MembershipGet`].
    Members {
        /// This node.
        local: u32,
        /// The members.
        members: Vec<u32>,
    },
}

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::Members { .. } => op::R_MEMBERS,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::Members { .. } => "EvsMembers",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::Members { local, members } => {
                w.u32(*local);
                put_ids(w, members);
            }
        }
        Bytes::new()
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match code {
            op::R_MEMBERS => Ok(Response::Members {
                local: r.u32("node")?,
                members: get_ids(r)?,
            }),
            other => Err(unknown(other)),
        }
    }
}

/// An EVS callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// A message for one of this connection's groups.
    Deliver {
        /// The sending node.
        sender: u32,
        /// The message.
        data: Bytes,
    },
    /// A node membership change.
    ConfChg {
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

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::Deliver { .. } => op::C_DELIVER,
            Callback::ConfChg { .. } => op::C_CONFCHG,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::Deliver { .. } => "EvsDeliver",
            Callback::ConfChg { .. } => "EvsConfChg",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Callback::Deliver { sender, data } => {
                w.u32(*sender);
                data.clone()
            }
            Callback::ConfChg {
                kind,
                ring,
                members,
                left,
                joined,
            } => {
                w.u8(match kind {
                    ConfKind::Regular => 1,
                    ConfKind::Transitional => 2,
                });
                w.short_bytes(ring);
                put_ids(w, members);
                put_ids(w, left);
                put_ids(w, joined);
                Bytes::new()
            }
        }
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match code {
            op::C_DELIVER => Callback::Deliver {
                sender: r.u32("node")?,
                data: r.rest(),
            },
            op::C_CONFCHG => Callback::ConfChg {
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
                members: get_ids(r)?,
                left: get_ids(r)?,
                joined: get_ids(r)?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// An EVS message on the Totem ring (the executive's half: `ais_core::services::evs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A message for the connections subscribed to any of `groups`.
    Mcast {
        /// The groups.
        groups: Vec<Bytes>,
        /// The message.
        data: Bytes,
    },
}

const RING_MCAST: u16 = 1;

impl Message for RingMessage {
    fn op(&self) -> u16 {
        RING_MCAST
    }

    fn name(&self) -> &'static str {
        "Mcast"
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        let RingMessage::Mcast { groups, data } = self;
        put_groups(w, groups);
        data.clone()
    }

    fn decode(code: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match code {
            RING_MCAST => Ok(RingMessage::Mcast {
                groups: get_groups(r)?,
                data: r.rest(),
            }),
            other => Err(unknown(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    #[test]
    fn every_evs_packet_round_trips_and_every_truncation_fails() {
        let g = Bytes::from_static(b"group-a");
        let reqs = [
            Request::Join {
                groups: vec![g.clone(), Bytes::from_static(b"b")],
            },
            Request::Leave { groups: vec![] },
            Request::Mcast {
                groups: vec![g],
                guarantee: Guarantee::Agreed,
                data: Bytes::from_static(b"x"),
            },
            Request::MembershipGet,
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let resps = [Response::Members {
            local: 1,
            members: vec![1, 2],
        }];
        assert!(resps.iter().all(|r| r.op() >= FIRST_RESPONSE_OP));
        assert_round_trips(Kind::Response, &resps);
        assert_round_trips(
            Kind::Callback,
            &[
                Callback::Deliver {
                    sender: 4,
                    data: Bytes::from_static(b"e"),
                },
                Callback::ConfChg {
                    kind: ConfKind::Transitional,
                    ring: Bytes::from_static(b"2.9"),
                    members: vec![1],
                    left: vec![2],
                    joined: vec![],
                },
            ],
        );
        assert_round_trips(
            Kind::Request,
            &[RingMessage::Mcast {
                groups: vec![Bytes::from_static(b"a")],
                data: Bytes::from_static(b"m"),
            }],
        );
    }
}
