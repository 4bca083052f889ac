//! Quorum (corosync's votequorum semantics) on the IPC socket and on the ring: whether this
//! node's partition may act. The executive's half is `ais_core::services::quorum`, the
//! client's `ais_client::quorum`.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{Message, Protocol, ServiceId, get_ids, put_ids};

/// The quorum protocol.
#[derive(Debug, Clone, Copy)]
pub struct QuorumProtocol;

impl Protocol for QuorumProtocol {
    const ID: ServiceId = ServiceId(4);
    const NAME: &'static str = "quorum";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// The quorum of one regular configuration, as every member of it computes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumState {
    /// Whether this partition has quorum.
    pub quorate: bool,
    /// The ring, `REP.SEQ`.
    pub ring: Bytes,
    /// The members of the configuration.
    pub members: Vec<u32>,
    /// Votes of the members.
    pub total_votes: u32,
    /// Votes expected in the whole cluster (the largest of the members' `expected_votes` and
    /// the votes present).
    pub expected_votes: u32,
    /// Votes needed: `expected_votes / 2 + 1`, or 1 with `two_node`.
    pub quorum: u32,
    /// `wait_for_all` is on and every expected vote has not yet been seen at once since this
    /// node started: not quorate whatever the votes.
    pub waiting_for_all: bool,
}

fn put_state(w: &mut Writer, s: &QuorumState) {
    w.u8(u8::from(s.quorate) | (u8::from(s.waiting_for_all) << 1))
        .short_bytes(&s.ring);
    put_ids(w, &s.members);
    w.u32(s.total_votes).u32(s.expected_votes).u32(s.quorum);
}

fn get_state(r: &mut Reader) -> Result<QuorumState, DecodeError> {
    let flags = r.u8("flags")?;
    if flags > 3 {
        return Err(DecodeError::Invalid {
            field: "flags",
            why: "unknown bits",
        });
    }
    Ok(QuorumState {
        quorate: flags & 1 != 0,
        waiting_for_all: flags & 2 != 0,
        ring: r.short_bytes("ring")?,
        members: get_ids(r)?,
        total_votes: r.u32("total votes")?,
        expected_votes: r.u32("expected votes")?,
        quorum: r.u32("quorum")?,
    })
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp {
        service: "quorum",
        op,
    }
}

/// A quorum request.
///
/// Not `non_exhaustive`: the executive's handler must answer every request, so a new one
/// fails its build until it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The current state (`quorum_getquorate`, `votequorum_getinfo`).
    Get,
    /// Start (`true`) or stop sending [`Callback::Changed`] at every change
    /// (`quorum_trackstart` / `quorum_trackstop`).
    Track(bool),
}

const OP_GET: u16 = 40;
const OP_TRACK: u16 = 41;
const R_STATE: u16 = 40;
const C_CHANGED: u16 = 40;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Get => OP_GET,
            Request::Track(_) => OP_TRACK,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Get => "QuorumGet",
            Request::Track(_) => "QuorumTrack",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        if let Request::Track(on) = self {
            w.u8(u8::from(*on));
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            OP_GET => Ok(Request::Get),
            OP_TRACK => Ok(Request::Track(r.u8("track")? != 0)),
            other => Err(unknown(other)),
        }
    }
}

/// A quorum answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Get`].
    State(QuorumState),
}

impl Message for Response {
    fn op(&self) -> u16 {
        R_STATE
    }

    fn name(&self) -> &'static str {
        "QuorumState"
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        let Response::State(s) = self;
        put_state(w, s);
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            R_STATE => Ok(Response::State(get_state(r)?)),
            other => Err(unknown(other)),
        }
    }
}

/// A quorum callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The quorum was computed for a new configuration (sent to tracking connections at every
    /// regular configuration, whether or not `quorate` changed).
    Changed(QuorumState),
}

impl Message for Callback {
    fn op(&self) -> u16 {
        C_CHANGED
    }

    fn name(&self) -> &'static str {
        "QuorumChanged"
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        let Callback::Changed(s) = self;
        put_state(w, s);
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            C_CHANGED => Ok(Callback::Changed(get_state(r)?)),
            other => Err(unknown(other)),
        }
    }
}

/// A node's quorum settings, sent by every member during the sync after each regular
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMessage {
    /// The sender's votes and settings, for the sync of ring `(rep, seq)`.
    Votes {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// Its votes.
        votes: u32,
        /// Its configured `expected_votes`.
        expected_votes: u32,
        /// Its `two_node` setting.
        two_node: bool,
        /// Its `wait_for_all` setting.
        wait_for_all: bool,
        /// It has seen every expected vote at once (or a quorate configuration) since it
        /// started: `wait_for_all` is satisfied for it.
        seen_all: bool,
    },
}

const RING_VOTES: u16 = 1;

impl Message for RingMessage {
    fn op(&self) -> u16 {
        RING_VOTES
    }

    fn name(&self) -> &'static str {
        "Votes"
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        let RingMessage::Votes {
            rep,
            seq,
            votes,
            expected_votes,
            two_node,
            wait_for_all,
            seen_all,
        } = self;
        w.u32(*rep)
            .u64(*seq)
            .u32(*votes)
            .u32(*expected_votes)
            .u8(u8::from(*two_node) | (u8::from(*wait_for_all) << 1) | (u8::from(*seen_all) << 2));
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            RING_VOTES => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let votes = r.u32("votes")?;
                let expected_votes = r.u32("expected votes")?;
                let flags = r.u8("flags")?;
                if flags > 7 {
                    return Err(DecodeError::Invalid {
                        field: "flags",
                        why: "unknown bits",
                    });
                }
                Ok(RingMessage::Votes {
                    rep,
                    seq,
                    votes,
                    expected_votes,
                    two_node: flags & 1 != 0,
                    wait_for_all: flags & 2 != 0,
                    seen_all: flags & 4 != 0,
                })
            }
            other => Err(unknown(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    #[test]
    fn every_quorum_message_round_trips() {
        let state = QuorumState {
            quorate: true,
            ring: Bytes::from_static(b"1.8"),
            members: vec![1, 2],
            total_votes: 2,
            expected_votes: 3,
            quorum: 2,
            waiting_for_all: false,
        };
        let reqs = [Request::Get, Request::Track(true), Request::Track(false)];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        assert!(Response::State(state.clone()).op() >= FIRST_RESPONSE_OP);
        assert_round_trips(Kind::Response, &[Response::State(state.clone())]);
        assert_round_trips(
            Kind::Callback,
            &[Callback::Changed(QuorumState {
                waiting_for_all: true,
                quorate: false,
                ..state
            })],
        );
        assert_round_trips(
            Kind::Request,
            &[RingMessage::Votes {
                rep: 1,
                seq: 8,
                votes: 1,
                expected_votes: 3,
                two_node: false,
                wait_for_all: true,
                seen_all: true,
            }],
        );
    }
}
