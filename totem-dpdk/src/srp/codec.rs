//! Between the protocol state machine and the bytes on the wire: frame integrity, and the
//! conversion of tokens and data frames to and from their wire views.
//!
//! Every frame the state machine builds ends with a 4-byte CRC-32 of everything before it
//! (big-endian). With [`crate::crypto::Protection::Integrity`] (secauth off) that is what goes
//! on the wire: it catches frames damaged on a path without a link-layer checksum (DPDK
//! virtual devices, buggy NICs, memory errors) before any field is trusted, but it is no
//! protection against an attacker. With secauth on, `Totem::poll_transmit` replaces the
//! trailer with the AES-256-GCM seal, and received frames are opened before
//! [`decode_body`] sees them.

use bytes::{Bytes, BytesMut};

use crate::pg::{Packer, Reassembled, Reassembler};
use crate::types::{NodeId, RingId, Seq};
use crate::wire::{
    self, CommitTokenFrame, CommitTokenRepr, McastFrame, McastRepr, MembJoinFrame, MembJoinRepr,
    MergeDetectFrame, MergeDetectRepr, OrfTokenFrame, OrfTokenRepr, TokenHoldCancelFrame,
    TokenHoldCancelRepr,
};

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
            install: false,
            rtr: Vec::new(),
        }
    }
}

/// The parts of a data frame's header the state machine needs; the rest is read at delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct McastHeader {
    pub(crate) sender: NodeId,
    pub(crate) ring: RingId,
    pub(crate) seq: Seq,
    pub(crate) safe: bool,
    /// The frame carries an old ring's frame being recovered, not messages.
    pub(crate) encapsulated: bool,
}

pub(crate) enum Decoded {
    Token(Token),
    /// A data frame; `body` is its length without the trailer.
    Mcast(McastHeader, usize),
    Join(MembJoinRepr),
    Commit(CommitTokenRepr),
    Merge(MergeDetectRepr),
    HoldCancel(TokenHoldCancelRepr),
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
    decode_body(body)
}

/// Parses a frame without its trailer (one the protection layer already authenticated).
/// Never panics.
pub(crate) fn decode_body(body: &[u8]) -> Result<Decoded, DecodeError> {
    match wire::parse_frame(body) {
        Ok(wire::Frame::Token(view)) => OrfTokenRepr::parse(&view)
            .map(Decoded::Token)
            .map_err(|_| DecodeError::Malformed),
        Ok(wire::Frame::Mcast(view)) => mcast_header(&view)
            .map(|h| Decoded::Mcast(h, body.len()))
            .ok_or(DecodeError::Malformed),
        Ok(wire::Frame::MembJoin(view)) => MembJoinRepr::parse(&view)
            .map(Decoded::Join)
            .map_err(|_| DecodeError::Malformed),
        Ok(wire::Frame::CommitToken(view)) => CommitTokenRepr::parse(&view)
            .map(Decoded::Commit)
            .map_err(|_| DecodeError::Malformed),
        Ok(wire::Frame::MergeDetect(view)) => MergeDetectRepr::parse(&view)
            .map(Decoded::Merge)
            .map_err(|_| DecodeError::Malformed),
        Ok(wire::Frame::TokenHoldCancel(view)) => TokenHoldCancelRepr::parse(&view)
            .map(Decoded::HoldCancel)
            .map_err(|_| DecodeError::Malformed),
        Err(wire::Error::UnsupportedVersion(_)) => Err(DecodeError::Version),
        Err(_) => Err(DecodeError::Malformed),
    }
}

/// The header of a checked data frame; `None` for sequence number 0.
pub(crate) fn mcast_header(view: &McastFrame<&[u8]>) -> Option<McastHeader> {
    let seq = view.seq();
    (seq != Seq::ZERO).then(|| McastHeader {
        sender: view.sender(),
        ring: view.ring_id(),
        seq,
        safe: view.is_safe(),
        encapsulated: view.is_encapsulated(),
    })
}

/// The frame without its trailer, if the trailer matches.
fn verify_trailer(frame: &[u8]) -> Option<&[u8]> {
    let split = frame.len().checked_sub(TRAILER_LEN)?;
    let (body, trailer) = frame.split_at(split);
    let want = u32::from_be_bytes(trailer.try_into().ok()?);
    (crc32fast::hash(body) == want).then_some(body)
}

/// A frame to send for a stored body (retransmission): the body and a fresh trailer.
pub(crate) fn with_trailer(body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.len() + TRAILER_LEN);
    buf.extend_from_slice(body);
    append_trailer(&mut buf);
    buf.freeze()
}

/// Appends the integrity trailer to a frame body.
pub(crate) fn append_trailer(buf: &mut BytesMut) {
    let crc = crc32fast::hash(buf);
    buf.extend_from_slice(&crc.to_be_bytes());
}

/// A frame of `len` bytes written by `emit`, with its integrity trailer.
fn framed(len: usize, emit: impl FnOnce(&mut [u8])) -> Bytes {
    let mut buf = BytesMut::zeroed(len);
    emit(&mut buf[..]);
    append_trailer(&mut buf);
    buf.freeze()
}

/// Encodes a token (its `sender` must be this node).
pub(crate) fn encode_token(token: &Token) -> Bytes {
    framed(token.buffer_len(), |b| {
        token.emit(&mut OrfTokenFrame::new_unchecked(b))
    })
}

/// Encodes a join message.
pub(crate) fn encode_join(join: &MembJoinRepr) -> Bytes {
    framed(join.buffer_len(), |b| {
        join.emit(&mut MembJoinFrame::new_unchecked(b))
    })
}

/// Encodes a commit token (its `sender` must be this node).
pub(crate) fn encode_commit(token: &CommitTokenRepr) -> Bytes {
    framed(token.buffer_len(), |b| {
        token.emit(&mut CommitTokenFrame::new_unchecked(b))
    })
}

/// Encodes a merge-detect announcement.
pub(crate) fn encode_merge(merge: &MergeDetectRepr) -> Bytes {
    framed(merge.buffer_len(), |b| {
        merge.emit(&mut MergeDetectFrame::new_unchecked(b))
    })
}

/// Encodes a token hold cancel.
pub(crate) fn encode_hold_cancel(cancel: &TokenHoldCancelRepr) -> Bytes {
    framed(cancel.buffer_len(), |b| {
        cancel.emit(&mut TokenHoldCancelFrame::new_unchecked(b))
    })
}

/// A frame of the new ring carrying `inner`, a stored frame body of the old ring. Returns the
/// frame to send (with trailer) and the body to store.
pub(crate) fn build_encapsulated(
    sender: NodeId,
    ring: RingId,
    seq: Seq,
    inner: &[u8],
) -> (Bytes, Bytes) {
    let repr = McastRepr {
        sender,
        ring_id: ring,
        seq,
        safe: false,
        encapsulated: true,
        chunk_count: 0,
    };
    let mut buf = BytesMut::zeroed(wire::MCAST_FIXED_LEN + inner.len());
    let mut view = McastFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut view);
    view.chunk_area_mut()[..inner.len()].copy_from_slice(inner);
    let body_len = buf.len();
    append_trailer(&mut buf);
    let frame = buf.freeze();
    let body = frame.slice(..body_len);
    (frame, body)
}

/// The old-ring frame inside an encapsulated body, with its header.
pub(crate) fn encapsulated_inner(body: &Bytes) -> Option<(McastHeader, Bytes)> {
    let view = McastFrame::new_unchecked(&body[..]);
    let inner = view.encapsulated()?;
    let header = mcast_header(&inner)?;
    let start = wire::MCAST_FIXED_LEN;
    Some((header, body.slice(start..start + inner.into_inner().len())))
}

/// What [`build_mcast`] packed.
pub(crate) struct Packed {
    /// Message bytes (not chunk headers) taken from the queues.
    pub(crate) payload_bytes: usize,
    /// At least one chunk belongs to a safe message.
    pub(crate) safe: bool,
}

/// Builds the data frame `seq` from the send queues; `None` when nothing is queued. The frame
/// leaves room for the header and trailer of the frame that may carry it again, encapsulated,
/// during a later recovery, so that one never exceeds `max_frame` either.
pub(crate) fn build_mcast(
    sender: NodeId,
    ring: RingId,
    seq: Seq,
    max_frame: usize,
    packer: &mut Packer,
) -> Option<(Bytes, Bytes, Packed)> {
    let mut buf = BytesMut::zeroed(max_frame - TRAILER_LEN - wire::MCAST_FIXED_LEN);
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
    let body_len = wire::MCAST_FIXED_LEN + packed.bytes_written;
    buf.truncate(body_len);
    append_trailer(&mut buf);
    let payload_bytes =
        packed.bytes_written - usize::from(packed.chunk_count) * wire::CHUNK_HEADER_LEN;
    let frame = buf.freeze();
    let body = frame.slice(..body_len);
    Some((
        frame,
        body,
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

/// Feeds every chunk of a stored data frame body to the reassembler and calls `deliver` for
/// each message it completes.
pub(crate) fn for_each_message(
    frame: &Bytes,
    reassembler: &mut Reassembler,
    mut deliver: impl FnMut(Reassembled),
) -> Unpacked {
    let mut errors = 0;
    let view = McastFrame::new_unchecked(&frame[..]);
    let sender = view.sender();
    for chunk in view.chunks() {
        match reassembler.on_chunk(sender, &chunk, frame) {
            Ok(Some(message)) => deliver(message),
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    Unpacked { errors }
}
