//! Membership join frames, frame type 3: a processor's view of who is in and who has failed.

use core::fmt;
use core::slice::ChunksExact;

use super::{Error, FrameType, Header, HeaderRepr, JOIN_FIXED_LEN, Result};
use super::{
    check_ascending, get_ring_id, get_u16, get_u32, get_u64, put_ring_id, put_u16, put_u32,
    put_u64, write_ids,
};
use crate::{NodeId, RingId};

mod field {
    use core::ops::Range;
    pub(super) const MAX_RING_SEQ: Range<usize> = 20..28;
    pub(super) const FLAGS: usize = 28;
    pub(super) const RESERVED: usize = 29;
    pub(super) const PROC_COUNT: Range<usize> = 30..32;
    pub(super) const FAIL_COUNT: Range<usize> = 32..34;
    pub(super) const RESERVED_2: Range<usize> = 34..36;
    pub(super) const LISTS: usize = 36;
}

/// Length of one node id in the lists.
const ID_LEN: usize = 4;
/// Flag bit: the sender leaves the ring gracefully.
const FLAG_LEAVING: u8 = 0x01;

/// A view of a membership join frame.
///
/// Layout after the common header: `8..12` ring rep and `12..20` ring seq (the sender's
/// current ring), `20..28` max_ring_seq (the highest ring seq the sender has seen or
/// persisted), `28` flags (bit 0 LEAVING: the sender leaves gracefully), `29` reserved,
/// `30..32` proc_count (at least 1), `32..34` fail_count, `34..36` reserved, then proc_count
/// node ids of 4 bytes (the proc set) and fail_count node ids (the fail set). Each set is
/// strictly ascending and has no [`NodeId::NONE`]. The frame is exactly
/// `JOIN_FIXED_LEN + 4 * (proc_count + fail_count)` bytes long.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[doc(alias = "memb_join")]
pub struct MembJoinFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MembJoinFrame<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> MembJoinFrame<T> {
        MembJoinFrame { buffer }
    }

    /// Wraps `buffer` and checks the whole frame (see [`MembJoinFrame::check`]).
    ///
    /// # Errors
    ///
    /// As [`MembJoinFrame::check`].
    ///
    /// # Fuzzing
    ///
    /// Never panics, whatever `buffer` holds.
    pub fn new_checked(buffer: T) -> Result<MembJoinFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check()?;
        Ok(frame)
    }

    /// Checks that the buffer is exactly as long as the frame it holds claims.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if the buffer is shorter than the fixed part or than the two
    /// lists; [`Error::Malformed`] if it is longer than the frame.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < JOIN_FIXED_LEN {
            return Err(Error::Truncated);
        }
        let ids = usize::from(self.proc_count()) + usize::from(self.fail_count());
        match len.cmp(&(JOIN_FIXED_LEN + ID_LEN * ids)) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Equal => Ok(()),
            core::cmp::Ordering::Greater => Err(Error::Malformed),
        }
    }

    /// Checks the whole frame: the common header (magic, version, type
    /// [`FrameType::MembJoin`]); flags with no bit other than LEAVING; both reserved fields 0;
    /// proc_count at least 1; the length; each set strictly ascending (sorted, no duplicates)
    /// and without [`NodeId::NONE`].
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`];
    /// [`Error::Malformed`] for another frame type, a bad field, an empty proc set, an
    /// unsorted set or trailing bytes.
    pub fn check(&self) -> Result<()> {
        let header = self.header();
        header.check()?;
        if header.frame_type() != FrameType::MembJoin {
            return Err(Error::Malformed);
        }
        let data = self.buffer.as_ref();
        if data.len() < JOIN_FIXED_LEN {
            return Err(Error::Truncated);
        }
        if self.flags() & !FLAG_LEAVING != 0
            || data[field::RESERVED] != 0
            || get_u16(&data[field::RESERVED_2]) != 0
            || self.proc_count() == 0
        {
            return Err(Error::Malformed);
        }
        self.check_len()?;
        check_ascending(self.proc_set())?;
        check_ascending(self.fail_set())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The common header.
    pub fn header(&self) -> Header<&[u8]> {
        Header::new_unchecked(self.buffer.as_ref())
    }

    /// The node that sent the join.
    ///
    /// # Panics
    ///
    /// On an unchecked buffer too short for the field (likewise for every getter but
    /// [`MembJoinFrame::proc_set`] and [`MembJoinFrame::fail_set`]).
    pub fn sender(&self) -> NodeId {
        self.header().sender()
    }

    /// The sender's current ring.
    pub fn ring_id(&self) -> RingId {
        get_ring_id(self.buffer.as_ref())
    }

    /// The highest ring seq the sender has seen or persisted; a new ring's seq must exceed
    /// it.
    pub fn max_ring_seq(&self) -> u64 {
        get_u64(&self.buffer.as_ref()[field::MAX_RING_SEQ])
    }

    /// The raw flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The sender leaves the ring gracefully.
    pub fn is_leaving(&self) -> bool {
        self.flags() & FLAG_LEAVING != 0
    }

    /// The number of nodes in the proc set.
    pub fn proc_count(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::PROC_COUNT])
    }

    /// The number of nodes in the fail set.
    pub fn fail_count(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::FAIL_COUNT])
    }

    /// The proc set (the processors the sender wants in the new ring), in frame order,
    /// borrowed from the buffer.
    ///
    /// On an unchecked buffer, yields only the ids the buffer holds whole (none if it is
    /// shorter than the fixed part); never panics.
    #[doc(alias = "proc_list")]
    pub fn proc_set(&self) -> NodeList<'_> {
        let count = self.count_at(field::PROC_COUNT);
        self.list(field::LISTS, count)
    }

    /// The fail set (the processors the sender considers failed), in frame order, borrowed
    /// from the buffer.
    ///
    /// On an unchecked buffer, yields only the ids the buffer holds whole; never panics.
    #[doc(alias = "failed_list")]
    pub fn fail_set(&self) -> NodeList<'_> {
        let start = field::LISTS + ID_LEN * self.count_at(field::PROC_COUNT);
        let count = self.count_at(field::FAIL_COUNT);
        self.list(start, count)
    }

    /// A count field, or 0 if the buffer is too short for it.
    fn count_at(&self, range: core::ops::Range<usize>) -> usize {
        match self.buffer.as_ref().get(range) {
            Some(raw) => usize::from(get_u16(raw)),
            None => 0,
        }
    }

    /// The whole ids among `count` ids from `start`.
    fn list(&self, start: usize, count: usize) -> NodeList<'_> {
        let list = self.buffer.as_ref().get(start..).unwrap_or(&[]);
        let list = &list[..list.len().min(count * ID_LEN)];
        NodeList {
            ids: list.chunks_exact(ID_LEN),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MembJoinFrame<T> {
    /// The common header, for writing.
    pub fn header_mut(&mut self) -> Header<&mut [u8]> {
        Header::new_unchecked(self.buffer.as_mut())
    }

    /// Sets the sender's current ring.
    ///
    /// # Panics
    ///
    /// If the buffer is too short for the field (likewise for every setter).
    pub fn set_ring_id(&mut self, value: RingId) {
        put_ring_id(self.buffer.as_mut(), value);
    }

    /// Sets max_ring_seq.
    pub fn set_max_ring_seq(&mut self, value: u64) {
        put_u64(&mut self.buffer.as_mut()[field::MAX_RING_SEQ], value);
    }

    /// Sets the flags byte to just the LEAVING flag (or 0) and clears both reserved fields.
    pub fn set_leaving(&mut self, value: bool) {
        let data = self.buffer.as_mut();
        data[field::FLAGS] = if value { FLAG_LEAVING } else { 0 };
        data[field::RESERVED] = 0;
        put_u16(&mut data[field::RESERVED_2], 0);
    }

    /// Sets the number of nodes in the proc set.
    pub fn set_proc_count(&mut self, value: u16) {
        put_u16(&mut self.buffer.as_mut()[field::PROC_COUNT], value);
    }

    /// Sets the number of nodes in the fail set.
    pub fn set_fail_count(&mut self, value: u16) {
        put_u16(&mut self.buffer.as_mut()[field::FAIL_COUNT], value);
    }

    /// Sets proc set entry number `index` (from 0).
    pub fn set_proc(&mut self, index: usize, value: NodeId) {
        let at = field::LISTS + index * ID_LEN;
        put_u32(&mut self.buffer.as_mut()[at..at + ID_LEN], value.0);
    }

    /// Sets fail set entry number `index` (from 0). The fail set starts after the proc set,
    /// so set the proc count first.
    pub fn set_fail(&mut self, index: usize, value: NodeId) {
        let at = field::LISTS + (usize::from(self.proc_count()) + index) * ID_LEN;
        put_u32(&mut self.buffer.as_mut()[at..at + ID_LEN], value.0);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for MembJoinFrame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(err) = self.check() {
            return write!(f, "MembJoin ({err})");
        }
        write!(
            f,
            "MembJoin from {} ring {} max_ring_seq {}",
            self.sender(),
            self.ring_id(),
            self.max_ring_seq()
        )?;
        if self.is_leaving() {
            f.write_str(" leaving")?;
        }
        write_ids(f, " proc", self.proc_set())?;
        write_ids(f, " fail", self.fail_set())
    }
}

/// Iterator over a node list of a [`MembJoinFrame`], borrowed from its buffer.
#[derive(Clone, Debug)]
pub struct NodeList<'a> {
    ids: ChunksExact<'a, u8>,
}

impl Iterator for NodeList<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        self.ids.next().map(|raw| NodeId(get_u32(raw)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ids.size_hint()
    }
}

impl ExactSizeIterator for NodeList<'_> {}

/// A membership join as plain values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[doc(alias = "memb_join")]
pub struct MembJoinRepr {
    /// The sending node (common header).
    pub sender: NodeId,
    /// The sender's current ring.
    pub ring_id: RingId,
    /// The highest ring seq the sender has seen or persisted.
    pub max_ring_seq: u64,
    /// The sender leaves the ring gracefully.
    pub leaving: bool,
    /// The processors the sender wants in the new ring: strictly ascending, no
    /// [`NodeId::NONE`], at least one and at most `u16::MAX`.
    pub proc_set: Vec<NodeId>,
    /// The processors the sender considers failed: strictly ascending, no [`NodeId::NONE`],
    /// at most `u16::MAX`.
    pub fail_set: Vec<NodeId>,
}

impl MembJoinRepr {
    /// Checks `frame` and reads it.
    ///
    /// # Errors
    ///
    /// As [`MembJoinFrame::check`].
    pub fn parse<T: AsRef<[u8]>>(frame: &MembJoinFrame<T>) -> Result<MembJoinRepr> {
        frame.check()?;
        Ok(MembJoinRepr {
            sender: frame.sender(),
            ring_id: frame.ring_id(),
            max_ring_seq: frame.max_ring_seq(),
            leaving: frame.is_leaving(),
            proc_set: frame.proc_set().collect(),
            fail_set: frame.fail_set().collect(),
        })
    }

    /// The length of the frame [`MembJoinRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        JOIN_FIXED_LEN + ID_LEN * (self.proc_set.len() + self.fail_set.len())
    }

    /// Writes the whole frame, common header included, into the first
    /// [`MembJoinRepr::buffer_len`] bytes of `frame`'s buffer. The sets are written as they
    /// are: a frame with an empty or unsorted set does not check.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`MembJoinRepr::buffer_len`] or a set has more than
    /// `u16::MAX` nodes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut MembJoinFrame<T>) {
        let procs = u16::try_from(self.proc_set.len()).expect("at most u16::MAX in proc_set");
        let fails = u16::try_from(self.fail_set.len()).expect("at most u16::MAX in fail_set");
        HeaderRepr {
            frame_type: FrameType::MembJoin,
            sender: self.sender,
        }
        .emit(&mut frame.header_mut());
        frame.set_ring_id(self.ring_id);
        frame.set_max_ring_seq(self.max_ring_seq);
        frame.set_leaving(self.leaving);
        frame.set_proc_count(procs);
        frame.set_fail_count(fails);
        for (i, node) in self.proc_set.iter().enumerate() {
            frame.set_proc(i, *node);
        }
        for (i, node) in self.fail_set.iter().enumerate() {
            frame.set_fail(i, *node);
        }
    }
}

impl fmt::Display for MembJoinRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MembJoin from {} ring {} max_ring_seq {}",
            self.sender, self.ring_id, self.max_ring_seq
        )?;
        if self.leaving {
            f.write_str(" leaving")?;
        }
        write_ids(f, " proc", self.proc_set.iter().copied())?;
        write_ids(f, " fail", self.fail_set.iter().copied())
    }
}
