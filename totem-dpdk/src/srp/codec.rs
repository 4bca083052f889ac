//! Between the protocol state machine and the bytes on the wire: frame integrity, and the
//! conversion of tokens and data frames to and from their wire views.
//!
//! Every frame ends with a 4-byte CRC-32 of everything before it (big-endian). It catches
//! frames damaged on a path without a link-layer checksum (DPDK virtual devices, buggy NICs,
//! memory errors) before any field is trusted. It is not protection against an attacker:
//! authenticated encryption replaces it when `secauth` is on.

use bytes::{Bytes, BytesMut};

use crate::pg::{Packer, Reassembled, Reassembler};
use crate::types::{NodeId, RingId, Seq};
use crate::wire::{self, McastFrame, McastRepr, OrfTokenFrame, OrfTokenRepr};

/// Bytes the integrity trailer adds to every frame.
pub(crate) const TRAILER_LEN: usize = 4;

/// The token as the state machine handles it.
pub(crate) type Token = OrfTokenRepr;

impl OrfTokenRepr {
    /// The token the representative of a new ring creates.
    pub(crate) fn initial(ring: RingId) -> Token {
        OrfTokenRepr {
            sender: ring.rep,
            ring_id: ring,
            token_seq: 0,
            seq: Seq::ZERO,
            aru: Seq::ZERO,
            aru_addr: NodeId::NONE,
            fcc: 0,
            backlog: 0,
            rot_min: Seq::ZERO,
            safe: Seq::ZERO,
            retrans_flg: false,
            rtr: Vec::new(),
        }
    }
}

/// The parts of a data frame's header the state machine needs; the rest is read at delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct McastHeader {
    pub(crate) ring: RingId,
    pub(crate) seq: Seq,
    pub(crate) safe: bool,
}

pub(crate) enum Decoded {
    Token(Token),
    Mcast(McastHeader),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// A well-formed header of a protocol version this node does not speak.
    Version,
    /// Anything else: damaged, truncated, inconsistent or of an unknown type.
    Malformed,
}

/// Checks the trailer and parses a received frame. Never panics.
pub(crate) fn decode(frame: &[u8]) -> Result<Decoded, DecodeError> {
    let body = verify_trailer(frame).ok_or(DecodeError::Malformed)?;
    match wire::parse_frame(body) {
        Ok(wire::Frame::Token(view)) => OrfTokenRepr::parse(&view)
            .map(Decoded::Token)
            .map_err(|_| DecodeError::Malformed),
        Ok(wire::Frame::Mcast(view)) => {
            let seq = view.seq();
            if seq == Seq::ZERO {
                return Err(DecodeError::Malformed);
            }
            Ok(Decoded::Mcast(McastHeader {
                ring: view.ring_id(),
                seq,
                safe: view.is_safe(),
            }))
        }
        Err(wire::Error::UnsupportedVersion(_)) => Err(DecodeError::Version),
        Err(_) => Err(DecodeError::Malformed),
    }
}

/// The frame without its trailer, if the trailer matches.
fn verify_trailer(frame: &[u8]) -> Option<&[u8]> {
    let split = frame.len().checked_sub(TRAILER_LEN)?;
    let (body, trailer) = frame.split_at(split);
    let want = u32::from_be_bytes(trailer.try_into().ok()?);
    (crc32fast::hash(body) == want).then_some(body)
}

/// Appends the integrity trailer to a frame body.
pub(crate) fn append_trailer(buf: &mut BytesMut) {
    let crc = crc32fast::hash(buf);
    buf.extend_from_slice(&crc.to_be_bytes());
}

/// Encodes a token sent by `sender`.
pub(crate) fn encode_token(sender: NodeId, token: &Token) -> Bytes {
    let mut repr = token.clone();
    repr.sender = sender;
    let mut buf = BytesMut::zeroed(repr.buffer_len());
    repr.emit(&mut OrfTokenFrame::new_unchecked(&mut buf[..]));
    append_trailer(&mut buf);
    buf.freeze()
}

/// What [`build_mcast`] packed.
pub(crate) struct Packed {
    /// Message bytes (not chunk headers) taken from the queues.
    pub(crate) payload_bytes: usize,
    /// At least one chunk belongs to a safe message.
    pub(crate) safe: bool,
}

/// Builds the data frame `seq` from the send queues, at most `max_frame` bytes including the
/// trailer; `None` when nothing is queued.
pub(crate) fn build_mcast(
    sender: NodeId,
    ring: RingId,
    seq: Seq,
    max_frame: usize,
    packer: &mut Packer,
) -> Option<(Bytes, Packed)> {
    let mut buf = BytesMut::zeroed(max_frame - TRAILER_LEN);
    let packed = packer.pack(&mut buf[wire::MCAST_FIXED_LEN..]);
    if packed.chunk_count == 0 {
        return None;
    }
    let repr = McastRepr {
        sender,
        ring_id: ring,
        seq,
        safe: packed.safe,
        encapsulated: false,
        chunk_count: packed.chunk_count,
    };
    repr.emit(&mut McastFrame::new_unchecked(&mut buf[..]));
    buf.truncate(wire::MCAST_FIXED_LEN + packed.bytes_written);
    append_trailer(&mut buf);
    let payload_bytes =
        packed.bytes_written - usize::from(packed.chunk_count) * wire::CHUNK_HEADER_LEN;
    Some((
        buf.freeze(),
        Packed {
            payload_bytes,
            safe: packed.safe,
        },
    ))
}

/// What [`for_each_message`] found.
pub(crate) struct Unpacked {
    /// Chunks that could not be reassembled.
    pub(crate) errors: u64,
}

/// Feeds every chunk of a stored data frame (trailer included) to the reassembler and calls
/// `deliver` for each message it completes.
pub(crate) fn for_each_message(
    frame: &Bytes,
    reassembler: &mut Reassembler,
    mut deliver: impl FnMut(Reassembled),
) -> Unpacked {
    let mut errors = 0;
    let body = frame.slice(..frame.len() - TRAILER_LEN);
    let view = McastFrame::new_unchecked(&body[..]);
    let sender = view.sender();
    for chunk in view.chunks() {
        match reassembler.on_chunk(sender, &chunk, &body) {
            Ok(Some(message)) => deliver(message),
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    Unpacked { errors }
}
