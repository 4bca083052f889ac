//! Merge detection frames, frame type 5: an idle representative announces its ring so that
//! partitions discover each other.

use core::fmt;

use super::{Error, FrameType, Header, HeaderRepr, MERGE_DETECT_LEN, Result};
use super::{get_ring_id, put_ring_id};
use crate::{NodeId, RingId};

/// A view of a merge detection frame.
///
/// Layout after the common header: `8..12` ring rep, `12..20` ring seq (the sender's ring).
/// The frame is exactly [`MERGE_DETECT_LEN`] bytes long.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[doc(alias = "memb_merge_detect")]
pub struct MergeDetectFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MergeDetectFrame<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> MergeDetectFrame<T> {
        MergeDetectFrame { buffer }
    }

    /// Wraps `buffer` and checks the whole frame (see [`MergeDetectFrame::check`]).
    ///
    /// # Errors
    ///
    /// As [`MergeDetectFrame::check`].
    ///
    /// # Fuzzing
    ///
    /// Never panics, whatever `buffer` holds.
    pub fn new_checked(buffer: T) -> Result<MergeDetectFrame<T>> {
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

    /// Checks the whole frame: the common header (magic, version, type
    /// [`FrameType::MergeDetect`]) and the length.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`];
    /// [`Error::Malformed`] for another frame type or trailing bytes.
    pub fn check(&self) -> Result<()> {
        let header = self.header();
        header.check()?;
        if header.frame_type() != FrameType::MergeDetect {
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

impl<T: AsRef<[u8]> + AsMut<[u8]>> MergeDetectFrame<T> {
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

impl<T: AsRef<[u8]>> fmt::Display for MergeDetectFrame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match MergeDetectRepr::parse(self) {
            Ok(repr) => repr.fmt(f),
            Err(err) => write!(f, "MergeDetect ({err})"),
        }
    }
}

/// A merge detection frame as plain values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[doc(alias = "memb_merge_detect")]
pub struct MergeDetectRepr {
    /// The sending node (common header).
    pub sender: NodeId,
    /// The sender's ring.
    pub ring_id: RingId,
}

impl MergeDetectRepr {
    /// Checks `frame` and reads it.
    ///
    /// # Errors
    ///
    /// As [`MergeDetectFrame::check`].
    pub fn parse<T: AsRef<[u8]>>(frame: &MergeDetectFrame<T>) -> Result<MergeDetectRepr> {
        frame.check()?;
        Ok(MergeDetectRepr {
            sender: frame.sender(),
            ring_id: frame.ring_id(),
        })
    }

    /// The number of bytes [`MergeDetectRepr::emit`] writes: [`MERGE_DETECT_LEN`].
    pub const fn buffer_len(&self) -> usize {
        MERGE_DETECT_LEN
    }

    /// Writes the whole frame, common header included.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`MERGE_DETECT_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut MergeDetectFrame<T>) {
        HeaderRepr {
            frame_type: FrameType::MergeDetect,
            sender: self.sender,
        }
        .emit(&mut frame.header_mut());
        frame.set_ring_id(self.ring_id);
    }
}

impl fmt::Display for MergeDetectRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MergeDetect from {} ring {}", self.sender, self.ring_id)
    }
}
