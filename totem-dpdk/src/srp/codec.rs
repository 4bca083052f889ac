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

/// Where [`build_mcast`] builds a data frame.
pub(crate) struct McastTarget {
    pub(crate) sender: NodeId,
    pub(crate) ring: RingId,
    pub(crate) seq: Seq,
    /// The largest frame, trailer included.
    pub(crate) max_frame: usize,
    /// Compute the integrity trailer; without it (the frame will be sealed, which replaces
    /// the trailer) the trailer's bytes are left zero.
    pub(crate) crc: bool,
}

/// Builds a data frame from the send queues in a buffer of `pool`; `None` when nothing is
/// queued. The frame leaves room for the header and trailer of the frame that may carry it
/// again, encapsulated, during a later recovery, so that one never exceeds `max_frame` either.
pub(crate) fn build_mcast(
    to: McastTarget,
    packer: &mut Packer,
    pool: &mut BufPool,
) -> Option<(Bytes, Bytes, Packed)> {
    let area = to.max_frame - TRAILER_LEN - wire::MCAST_FIXED_LEN;
    let mut buf = pool.take(area + TRAILER_LEN);
    buf.resize(area, 0);
    let packed = packer.pack(&mut buf[wire::MCAST_FIXED_LEN..]);
    if packed.chunk_count == 0 {
        return None;
    }
    let repr = McastRepr {
        sender: to.sender,
        ring_id: to.ring,
        seq: to.seq,
        safe: packed.safe,
        encapsulated: false,
        chunk_count: packed.chunk_count,
    };
    repr.emit(&mut McastFrame::new_unchecked(&mut buf[..]));
    let body_len = wire::MCAST_FIXED_LEN + packed.bytes_written;
    buf.truncate(body_len);
    if to.crc {
        append_trailer(&mut buf);
    } else {
        buf.extend_from_slice(&[0; TRAILER_LEN]);
    }
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

/// Frame buffers carved out of shared chunks: one allocation per chunk instead of one per
/// frame, and frames kept as `Bytes` share the chunk's reference count. A chunk is reused
/// once every frame cut from it was dropped, and freed with the last one otherwise.
///
/// A frame kept alive keeps its whole chunk alive: the application may hold a delivered
/// message (a slice of its frame) for as long as it likes (a checkpoint section, a retained
/// event), so pools whose frames are stored or delivered use chunks of a few frames
/// ([`BufPool::for_frames`]), not large ones.
#[derive(Debug)]
pub(crate) struct BufPool {
    chunk: BytesMut,
    chunk_size: usize,
}

impl BufPool {
    /// Frames of at most `max_frame` bytes per chunk, at most in a stored or delivered pool.
    pub(crate) const FRAMES_PER_CHUNK: usize = 4;

    /// Chunks of `chunk_size` bytes (a buffer larger than that gets one of its own size).
    pub(crate) fn new(chunk_size: usize) -> BufPool {
        BufPool {
            chunk: BytesMut::new(),
            chunk_size,
        }
    }

    /// Chunks of [`BufPool::FRAMES_PER_CHUNK`] frames of `max_frame` bytes.
    pub(crate) fn for_frames(max_frame: usize) -> BufPool {
        BufPool::new(max_frame * BufPool::FRAMES_PER_CHUNK)
    }

    /// An empty buffer with room for `len` bytes (more only by reallocating).
    pub(crate) fn take(&mut self, len: usize) -> BytesMut {
        if self.chunk.capacity() < len {
            // Reclaims the chunk if every frame cut from it is gone, else allocates one.
            self.chunk.reserve(len.max(self.chunk_size));
        }
        let rest = self.chunk.split_off(len);
        std::mem::replace(&mut self.chunk, rest)
    }

    /// `bytes` copied into a buffer of the pool.
    pub(crate) fn copy(&mut self, bytes: &[u8]) -> Bytes {
        let mut buf = self.take(bytes.len());
        buf.extend_from_slice(bytes);
        buf.freeze()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_cuts_frames_from_one_chunk_and_reuses_it_once_they_are_dropped() {
        let mut pool = BufPool::new(64 * 1024);
        let a = pool.copy(&[1; 1500]);
        let b = pool.copy(&[2; 1500]);
        // Consecutive frames lie one after the other in one allocation.
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(1500));
        assert_eq!((&a[..], &b[..]), (&[1; 1500][..], &[2; 1500][..]));
        let start = a.as_ptr();
        // Use the chunk up while the first frames live: the next one needs a new chunk.
        let rest = pool.chunk.capacity();
        let c = pool.copy(&vec![3; rest]);
        let d = pool.copy(&[4; 100]);
        let d_ptr = d.as_ptr();
        assert!(d_ptr < start || d_ptr >= start.wrapping_add(64 * 1024));
        assert_eq!(&c[..], &vec![3; rest][..]);
        // Once every frame of the second chunk is dropped, it is reused from its start.
        let e_want = d_ptr;
        drop(d);
        let rest = pool.chunk.capacity();
        let f = pool.copy(&vec![5; rest]);
        drop(f);
        let g = pool.copy(&[6; 10]);
        assert_eq!(g.as_ptr(), e_want, "the unshared chunk was not reused");
        assert_eq!(&g[..], &[6; 10]);
        // The first chunk's frames are still intact.
        assert_eq!((&a[..], &b[..]), (&[1; 1500][..], &[2; 1500][..]));
    }

    #[test]
    fn a_sealed_data_frame_skips_the_crc_it_would_lose() {
        use crate::pg::OutgoingMessage;
        use crate::types::{DeliveryKind, Priority};
        for crc in [true, false] {
            let mut packer = Packer::new();
            let msg = OutgoingMessage::new(1, DeliveryKind::Agreed, Bytes::from(vec![7; 100]));
            packer.push(Priority::NORMAL, msg);
            let mut pool = BufPool::for_frames(1472);
            let to = McastTarget {
                sender: NodeId(1),
                ring: RingId {
                    rep: NodeId(1),
                    seq: 4,
                },
                seq: Seq(1),
                max_frame: 1472,
                crc,
            };
            let (frame, body, packed) = build_mcast(to, &mut packer, &mut pool).unwrap();
            assert_eq!(packed.payload_bytes, 100);
            assert_eq!(&frame[..body.len()], &body[..]);
            assert_eq!(decode(&frame).is_ok(), crc, "crc {crc}");
            assert!(decode_body(&body).is_ok());
        }
    }
}
