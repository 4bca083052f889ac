//! Zero-copy views of Totem frames.
//!
//! Every frame starts with the same 8-byte [`Header`] (magic, protocol version, frame type,
//! sender); the frame type selects the rest. All integers are big-endian, at fixed offsets:
//! there is one byte order on the wire, read and written through explicit accessors (no packed
//! structs, no byte swapping on receipt).
//!
//! The module follows one contract for each frame type `Foo`:
//!
//! - `FooFrame<T: AsRef<[u8]>>` wraps a buffer without copying it. `new_unchecked` only wraps;
//!   `new_checked` also validates the whole frame (lengths, reserved bits, variable lists), so
//!   that every getter on a checked frame succeeds. Getters need `AsRef<[u8]>`, setters
//!   `AsMut<[u8]>`. Getters on an unchecked frame may panic if the buffer is too short.
//! - `FooRepr` is a plain-value representation: `parse` validates a view and reads it,
//!   `buffer_len` says how many bytes `emit` writes, `emit` writes it into a view.
//! - Nothing in this module panics on remote input: `new_checked` and [`parse_frame`] accept any
//!   byte slice and return an [`Error`] for anything that is not a well-formed frame.
//!
//! Implemented frame types: [`OrfTokenFrame`] (type 1), [`McastFrame`] (type 2, including the
//! encapsulated form that carries an old ring's mcast frame during recovery),
//! [`MembJoinFrame`] (type 3), [`CommitTokenFrame`] (type 4) and [`MergeDetectFrame`] (type 5).
//! Token hold cancel (type 6) is named in [`FrameType`] but has no view yet; [`parse_frame`]
//! reports it as [`Error::UnknownType`].
//!
//! [`fuzz_parse_roundtrip`] is the body of the `wire_parse` fuzz target, public so that the
//! unit tests run it too.

use core::fmt;

mod commit;
mod header;
mod join;
mod mcast;
mod merge;
mod token;

#[cfg(test)]
mod tests;

pub use commit::{CommitEntries, CommitEntry, CommitEntryView, CommitTokenFrame, CommitTokenRepr};
pub use header::{Header, HeaderRepr};
pub use join::{MembJoinFrame, MembJoinRepr, NodeList};
pub use mcast::{Chunk, ChunkRepr, Chunks, McastFrame, McastRepr};
pub use merge::{
    MergeDetectFrame, MergeDetectRepr, RingFrame, RingRepr, TokenHoldCancelFrame,
    TokenHoldCancelRepr,
};
pub use token::{OrfTokenFrame, OrfTokenRepr, RtrList};

/// The first two bytes of every Totem frame.
pub const MAGIC: u16 = 0xA15E;
/// The protocol version this crate reads and writes.
pub const PROTOCOL_VERSION: u8 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 8;
/// Length of an ORF token without its retransmit-request list.
pub const TOKEN_FIXED_LEN: usize = 76;
/// Length of the fixed part of an mcast frame, before its chunks.
pub const MCAST_FIXED_LEN: usize = 32;
/// Length of the header of one chunk of an mcast frame, before its payload.
pub const CHUNK_HEADER_LEN: usize = 20;
/// Length of a membership join without its proc and fail sets.
pub const JOIN_FIXED_LEN: usize = 36;
/// Length of a commit token without its entries.
pub const COMMIT_FIXED_LEN: usize = 32;
/// Length of one entry of a commit token.
pub const COMMIT_ENTRY_LEN: usize = 36;
/// Length of a merge detection frame, and of a token hold cancel frame.
pub const MERGE_DETECT_LEN: usize = 20;

/// Why a buffer is not a valid frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the frame does.
    Truncated,
    /// The first two bytes are not [`MAGIC`].
    BadMagic,
    /// The version byte is not [`PROTOCOL_VERSION`].
    UnsupportedVersion(u8),
    /// The frame type is unknown, or known but without a view in this crate.
    UnknownType(u8),
    /// A field has an invalid value, or the buffer has bytes after the frame's end.
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated frame"),
            Error::BadMagic => f.write_str("bad magic"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            Error::UnknownType(t) => write!(f, "unknown frame type {t}"),
            Error::Malformed => f.write_str("malformed frame"),
        }
    }
}

impl std::error::Error for Error {}

/// The result of parsing or checking a frame.
pub type Result<T> = core::result::Result<T, Error>;

/// The frame type byte of the common header.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// The ordering token, passed from member to member (1).
    #[doc(alias = "orf_token")]
    OrfToken,
    /// Multicast data: chunks of one or more messages (2).
    #[doc(alias = "mcast")]
    Mcast,
    /// Membership join: a processor's proc and fail sets (3).
    #[doc(alias = "memb_join")]
    MembJoin,
    /// Membership commit token, which forms a new ring (4).
    #[doc(alias = "memb_commit_token")]
    MembCommitToken,
    /// Merge detection: a representative announces its ring (5).
    #[doc(alias = "memb_merge_detect")]
    MergeDetect,
    /// Token hold cancel: a member asks the representative to pass a held token on (6).
    #[doc(alias = "token_hold_cancel")]
    TokenHoldCancel,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for FrameType {
    fn from(value: u8) -> Self {
        match value {
            1 => FrameType::OrfToken,
            2 => FrameType::Mcast,
            3 => FrameType::MembJoin,
            4 => FrameType::MembCommitToken,
            5 => FrameType::MergeDetect,
            6 => FrameType::TokenHoldCancel,
            other => FrameType::Unknown(other),
        }
    }
}

impl From<FrameType> for u8 {
    fn from(value: FrameType) -> Self {
        match value {
            FrameType::OrfToken => 1,
            FrameType::Mcast => 2,
            FrameType::MembJoin => 3,
            FrameType::MembCommitToken => 4,
            FrameType::MergeDetect => 5,
            FrameType::TokenHoldCancel => 6,
            FrameType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameType::OrfToken => f.write_str("OrfToken"),
            FrameType::Mcast => f.write_str("Mcast"),
            FrameType::MembJoin => f.write_str("MembJoin"),
            FrameType::MembCommitToken => f.write_str("MembCommitToken"),
            FrameType::MergeDetect => f.write_str("MergeDetect"),
            FrameType::TokenHoldCancel => f.write_str("TokenHoldCancel"),
            FrameType::Unknown(t) => write!(f, "Unknown({t})"),
        }
    }
}

/// A checked frame of one of the types this crate implements, borrowed from a receive buffer.
#[derive(Copy, Clone, Debug)]
pub enum Frame<'a> {
    /// An ORF token.
    Token(OrfTokenFrame<&'a [u8]>),
    /// An mcast frame.
    Mcast(McastFrame<&'a [u8]>),
    /// A membership join.
    MembJoin(MembJoinFrame<&'a [u8]>),
    /// A membership commit token.
    CommitToken(CommitTokenFrame<&'a [u8]>),
    /// A merge detection frame.
    MergeDetect(MergeDetectFrame<&'a [u8]>),
    /// A token hold cancel frame.
    TokenHoldCancel(TokenHoldCancelFrame<&'a [u8]>),
}

impl Frame<'_> {
    /// The sender from the common header.
    pub fn sender(&self) -> crate::NodeId {
        match self {
            Frame::Token(t) => t.sender(),
            Frame::Mcast(m) => m.sender(),
            Frame::MembJoin(j) => j.sender(),
            Frame::CommitToken(c) => c.sender(),
            Frame::MergeDetect(m) => m.sender(),
            Frame::TokenHoldCancel(c) => c.sender(),
        }
    }
}

impl fmt::Display for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Token(t) => t.fmt(f),
            Frame::Mcast(m) => m.fmt(f),
            Frame::MembJoin(j) => j.fmt(f),
            Frame::CommitToken(c) => c.fmt(f),
            Frame::MergeDetect(m) => m.fmt(f),
            Frame::TokenHoldCancel(c) => c.fmt(f),
        }
    }
}

/// Checks `buffer` as a whole frame and returns the view for its type.
///
/// # Errors
///
/// [`Error::Truncated`], [`Error::BadMagic`] or [`Error::UnsupportedVersion`] for a bad common
/// header; [`Error::UnknownType`] for an unknown frame type; any error of the type's
/// `new_checked` ([`OrfTokenFrame::new_checked`], [`McastFrame::new_checked`],
/// [`MembJoinFrame::new_checked`], [`CommitTokenFrame::new_checked`],
/// [`RingFrame::new_checked`]) for the rest.
///
/// # Fuzzing
///
/// Never panics, whatever `buffer` holds (fuzz target `wire_parse`).
pub fn parse_frame(buffer: &[u8]) -> Result<Frame<'_>> {
    let header = Header::new_checked(buffer)?;
    match header.frame_type() {
        FrameType::OrfToken => OrfTokenFrame::new_checked(buffer).map(Frame::Token),
        FrameType::Mcast => McastFrame::new_checked(buffer).map(Frame::Mcast),
        FrameType::MembJoin => MembJoinFrame::new_checked(buffer).map(Frame::MembJoin),
        FrameType::MembCommitToken => CommitTokenFrame::new_checked(buffer).map(Frame::CommitToken),
        FrameType::MergeDetect => MergeDetectFrame::new_checked(buffer).map(Frame::MergeDetect),
        FrameType::TokenHoldCancel => {
            TokenHoldCancelFrame::new_checked(buffer).map(Frame::TokenHoldCancel)
        }
        other @ FrameType::Unknown(_) => Err(Error::UnknownType(other.into())),
    }
}

/// The `wire_parse` fuzz target: parses `data` with [`parse_frame`]; when that succeeds,
/// re-emits the frame through its representations and checks that the bytes and the re-parsed
/// representations are identical, and that `Display` works (and, for the membership frames,
/// prints the view and its representation alike).
///
/// # Panics
///
/// When one of those checks fails, which is a bug in this module.
pub fn fuzz_parse_roundtrip(data: &[u8]) {
    use std::fmt::Write as _;

    let Ok(frame) = parse_frame(data) else {
        return;
    };
    let mut text = String::new();
    write!(text, "{frame}").expect("Display of a checked frame");
    let out = match frame {
        Frame::Token(token) => {
            let repr = OrfTokenRepr::parse(&token).expect("a checked token parses");
            assert_eq!(repr.buffer_len(), data.len());
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut OrfTokenFrame::new_unchecked(&mut out[..]));
            let again = OrfTokenFrame::new_checked(&out[..]).expect("re-emitted token checks");
            assert_eq!(OrfTokenRepr::parse(&again), Ok(repr));
            out
        }
        Frame::Mcast(mcast) => fuzz_mcast_roundtrip(&mcast),
        Frame::MembJoin(join) => {
            let repr = MembJoinRepr::parse(&join).expect("a checked join parses");
            assert_eq!(repr.to_string(), text);
            assert_eq!(repr.buffer_len(), data.len());
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut MembJoinFrame::new_unchecked(&mut out[..]));
            let again = MembJoinFrame::new_checked(&out[..]).expect("re-emitted join checks");
            assert_eq!(MembJoinRepr::parse(&again), Ok(repr));
            out
        }
        Frame::CommitToken(commit) => {
            let repr = CommitTokenRepr::parse(&commit).expect("a checked commit token parses");
            assert_eq!(repr.to_string(), text);
            assert_eq!(repr.buffer_len(), data.len());
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut CommitTokenFrame::new_unchecked(&mut out[..]));
            let again =
                CommitTokenFrame::new_checked(&out[..]).expect("re-emitted commit token checks");
            assert_eq!(CommitTokenRepr::parse(&again), Ok(repr));
            out
        }
        Frame::MergeDetect(merge) => {
            let repr = MergeDetectRepr::parse(&merge).expect("a checked merge detect parses");
            assert_eq!(repr.to_string(), text);
            assert_eq!(repr.buffer_len(), data.len());
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut MergeDetectFrame::new_unchecked(&mut out[..]));
            let again =
                MergeDetectFrame::new_checked(&out[..]).expect("re-emitted merge detect checks");
            assert_eq!(MergeDetectRepr::parse(&again), Ok(repr));
            out
        }
        Frame::TokenHoldCancel(cancel) => {
            let repr = TokenHoldCancelRepr::parse(&cancel).expect("a checked hold cancel parses");
            assert_eq!(repr.to_string(), text);
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut TokenHoldCancelFrame::new_unchecked(&mut out[..]));
            let again =
                TokenHoldCancelFrame::new_checked(&out[..]).expect("re-emitted hold cancel checks");
            assert_eq!(TokenHoldCancelRepr::parse(&again), Ok(repr));
            out
        }
    };
    assert_eq!(out, data, "re-emitted frame differs");
}

/// Re-emits a checked mcast frame (encapsulated or not) through its representations, checks
/// that the result parses to the same representations, and returns it.
fn fuzz_mcast_roundtrip(mcast: &McastFrame<&[u8]>) -> Vec<u8> {
    let repr = McastRepr::parse(mcast).expect("a checked mcast parses");
    if repr.encapsulated {
        assert_eq!(mcast.chunks().count(), 0);
        let inner = mcast
            .encapsulated()
            .expect("a checked encapsulated mcast has a frame");
        assert!(!inner.is_encapsulated());
        let inner_bytes = fuzz_mcast_roundtrip(&inner);
        let mut out = vec![0u8; repr.buffer_len() + inner_bytes.len()];
        let mut view = McastFrame::new_unchecked(&mut out[..]);
        repr.emit(&mut view);
        view.chunk_area_mut().copy_from_slice(&inner_bytes);
        let again = McastFrame::new_checked(&out[..]).expect("re-emitted mcast checks");
        assert_eq!(McastRepr::parse(&again), Ok(repr));
        assert_eq!(
            again.encapsulated(),
            Some(McastFrame::new_unchecked(&inner_bytes[..]))
        );
        return out;
    }
    assert!(mcast.encapsulated().is_none());
    let chunks: Vec<ChunkRepr<'_>> = mcast
        .chunks()
        .map(|c| ChunkRepr::parse(&c).expect("a checked chunk parses"))
        .collect();
    assert_eq!(chunks.len(), usize::from(repr.chunk_count));
    let len = repr.buffer_len() + chunks.iter().map(ChunkRepr::buffer_len).sum::<usize>();
    let mut out = vec![0u8; len];
    let mut view = McastFrame::new_unchecked(&mut out[..]);
    repr.emit(&mut view);
    let mut at = 0;
    for chunk in &chunks {
        chunk.emit(&mut view.chunk_area_mut()[at..]);
        at += chunk.buffer_len();
    }
    let again = McastFrame::new_checked(&out[..]).expect("re-emitted mcast checks");
    assert_eq!(McastRepr::parse(&again), Ok(repr));
    assert!(
        again
            .chunks()
            .map(|c| ChunkRepr::parse(&c))
            .eq(chunks.into_iter().map(Ok::<_, Error>))
    );
    out
}

/// Checks that `ids` is strictly ascending (sorted, no duplicates) and holds no
/// [`crate::NodeId::NONE`].
fn check_ascending(ids: impl Iterator<Item = crate::NodeId>) -> Result<()> {
    let mut last = crate::NodeId::NONE;
    for id in ids {
        if id <= last {
            return Err(Error::Malformed);
        }
        last = id;
    }
    Ok(())
}

/// Writes `label [a b c]`.
fn write_ids(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    ids: impl Iterator<Item = crate::NodeId>,
) -> fmt::Result {
    write!(f, "{label} [")?;
    for (i, id) in ids.enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{id}")?;
    }
    f.write_str("]")
}

// Big-endian field access. The callers index with fixed ranges after a length check, or
// document the panic for unchecked views.

/// Every frame type carries a ring id right after the common header: `8..12` the
/// representative, `12..20` the ring sequence number.
const RING_REP: core::ops::Range<usize> = 8..12;
const RING_SEQ: core::ops::Range<usize> = 12..20;

fn get_ring_id(frame: &[u8]) -> crate::RingId {
    crate::RingId {
        seq: get_u64(&frame[RING_SEQ]),
        rep: crate::NodeId(get_u32(&frame[RING_REP])),
    }
}

/// Writes a ring id at its place after the common header (see [`get_ring_id`]).
fn put_ring_id(frame: &mut [u8], id: crate::RingId) {
    put_u32(&mut frame[RING_REP], id.rep.0);
    put_u64(&mut frame[RING_SEQ], id.seq);
}

fn get_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn get_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn get_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(raw)
}

fn put_u16(bytes: &mut [u8], value: u16) {
    bytes[..2].copy_from_slice(&value.to_be_bytes());
}

fn put_u32(bytes: &mut [u8], value: u32) {
    bytes[..4].copy_from_slice(&value.to_be_bytes());
}

fn put_u64(bytes: &mut [u8], value: u64) {
    bytes[..8].copy_from_slice(&value.to_be_bytes());
}
