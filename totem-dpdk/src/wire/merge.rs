//! Frames that carry one ring id and nothing else:
//! - merge detection, frame type 5: an idle representative announces its ring so that
//!   partitions discover each other ([`MergeDetectFrame`]);
//! - token hold cancel, frame type 6: a member with messages to send asks the representative,
//!   which may be holding an idle ring's token, to pass it on now ([`TokenHoldCancelFrame`]).
//!
//! Both are [`RingFrame`]s, told apart by the frame type in the common header.

use core::fmt;

use super::{Error, FrameType, Header, HeaderRepr, MERGE_DETECT_LEN, Result};
use super::{get_ring_id, put_ring_id};
use crate::{NodeId, RingId};

/// Frame type number of merge detection.
const MERGE_DETECT: u8 = 5;
/// Frame type number of token hold cancel.
const TOKEN_HOLD_CANCEL: u8 = 6;

/// A view of a frame of type `KIND` that names a ring: [`MergeDetectFrame`] or
/// [`TokenHoldCancelFrame`].
///
/// Layout after the common header: `8..12` ring rep, `12..20` ring seq (the sender's ring).
/// The frame is exactly [`MERGE_DETECT_LEN`] bytes long.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RingFrame<T: AsRef<[u8]>, const KIND: u8> {
    buffer: T,
}

/// A view of a merge detection frame (type 5).
#[doc(alias = "memb_merge_detect")]
pub type MergeDetectFrame<T> = RingFrame<T, MERGE_DETECT>;

/// A view of a token hold cancel frame (type 6).
#[doc(alias = "token_hold_cancel")]
pub type TokenHoldCancelFrame<T> = RingFrame<T, TOKEN_HOLD_CANCEL>;

/// The frame type's name, for `Display`.
const fn kind_name(kind: u8) -> &'static str {
    if kind == MERGE_DETECT {
        "MergeDetect"
    } else {
        "TokenHoldCancel"
    }
}

impl<T: AsRef<[u8]>, const KIND: u8> RingFrame<T, KIND> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> RingFrame<T, KIND> {
        RingFrame { buffer }
    }

    /// Wraps `buffer` and checks the whole frame (see [`RingFrame::check`]).
    ///
    /// # Errors
    ///
    /// As [`RingFrame::check`].
    ///
    /// # Fuzzing
    ///
    /// Never panics, whatever `buffer` holds.
    pub fn new_checked(buffer: T) -> Result<RingFrame<T, KIND>> {
        let frame = Self::new_unchecked(buffer);
        frame.check()?;
        Ok(frame)
    }

    /// Checks that the buffer is exactly [`MERGE_DETECT_LEN`] bytes long.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if it is shorter, [`Error::Malformed`] if it is longer.
    pub fn check_len(&self) -> Result<()> {
        match self.buffer.as_ref().len().cmp(&MERGE_DETECT_LEN) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Equal => Ok(()),
            core::cmp::Ordering::Greater => Err(Error::Malformed),
        }
    }

    /// Checks the whole frame: the common header (magic, version, frame type `KIND`) and the
    /// length.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`];
    /// [`Error::Malformed`] for another frame type or trailing bytes.
    pub fn check(&self) -> Result<()> {
        let header = self.header();
        header.check()?;
        if header.frame_type() != FrameType::from(KIND) {
            return Err(Error::Malformed);
        }
        self.check_len()
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The common header.
    pub fn header(&self) -> Header<&[u8]> {
        Header::new_unchecked(self.buffer.as_ref())
    }

    /// The node that sent the frame.
    ///
    /// # Panics
    ///
    /// On an unchecked buffer too short for the field (likewise for every getter).
    pub fn sender(&self) -> NodeId {
        self.header().sender()
    }

    /// The sender's ring.
    pub fn ring_id(&self) -> RingId {
        get_ring_id(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>, const KIND: u8> RingFrame<T, KIND> {
    /// The common header, for writing.
    pub fn header_mut(&mut self) -> Header<&mut [u8]> {
        Header::new_unchecked(self.buffer.as_mut())
    }

    /// Sets the sender's ring.
    ///
    /// # Panics
    ///
    /// If the buffer is too short for the field.
    pub fn set_ring_id(&mut self, value: RingId) {
        put_ring_id(self.buffer.as_mut(), value);
    }
}

impl<T: AsRef<[u8]>, const KIND: u8> fmt::Display for RingFrame<T, KIND> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RingRepr::<KIND>::parse(self) {
            Ok(repr) => repr.fmt(f),
            Err(err) => write!(f, "{} ({err})", kind_name(KIND)),
        }
    }
}

/// A [`RingFrame`] of type `KIND` as plain values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RingRepr<const KIND: u8> {
    /// The sending node (common header).
    pub sender: NodeId,
    /// The sender's ring.
    pub ring_id: RingId,
}

/// A merge detection frame as plain values.
#[doc(alias = "memb_merge_detect")]
pub type MergeDetectRepr = RingRepr<MERGE_DETECT>;

/// A token hold cancel frame as plain values.
#[doc(alias = "token_hold_cancel")]
pub type TokenHoldCancelRepr = RingRepr<TOKEN_HOLD_CANCEL>;

impl<const KIND: u8> RingRepr<KIND> {
    /// Checks `frame` and reads it.
    ///
    /// # Errors
    ///
    /// As [`RingFrame::check`].
    pub fn parse<T: AsRef<[u8]>>(frame: &RingFrame<T, KIND>) -> Result<RingRepr<KIND>> {
        frame.check()?;
        Ok(RingRepr {
            sender: frame.sender(),
            ring_id: frame.ring_id(),
        })
    }

    /// The number of bytes [`RingRepr::emit`] writes: [`MERGE_DETECT_LEN`].
    pub const fn buffer_len(&self) -> usize {
        MERGE_DETECT_LEN
    }

    /// Writes the whole frame, common header included.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`MERGE_DETECT_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut RingFrame<T, KIND>) {
        HeaderRepr {
            frame_type: FrameType::from(KIND),
            sender: self.sender,
        }
        .emit(&mut frame.header_mut());
        frame.set_ring_id(self.ring_id);
    }
}

impl<const KIND: u8> fmt::Display for RingRepr<KIND> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} from {} ring {}",
            kind_name(KIND),
            self.sender,
            self.ring_id
        )
    }
}
