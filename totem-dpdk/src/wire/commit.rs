//! Membership commit tokens, frame type 4: the new ring's members, each with what it brings
//! from its old ring.

use core::fmt;
use core::slice::ChunksExact;

use super::{COMMIT_ENTRY_LEN, COMMIT_FIXED_LEN, Error, FrameType, Header, HeaderRepr, Result};
use super::{
    check_ascending, get_ring_id, get_u16, get_u32, get_u64, put_ring_id, put_u16, put_u32, put_u64,
};
use crate::{NodeId, RingId, Seq};

mod field {
    use core::ops::Range;
    pub(super) const TOKEN_SEQ: Range<usize> = 20..28;
    pub(super) const MEMB_INDEX: Range<usize> = 28..30;
    pub(super) const ENTRY_COUNT: Range<usize> = 30..32;
    pub(super) const ENTRIES: usize = 32;
}

/// Byte ranges inside one entry, from the entry's start.
mod entry_field {
    use core::ops::Range;

    pub(super) const NODE: Range<usize> = 0..4;
    pub(super) const OLD_RING_REP: Range<usize> = 4..8;
    pub(super) const OLD_RING_SEQ: Range<usize> = 8..16;
    pub(super) const OLD_ARU: Range<usize> = 16..24;
    pub(super) const HIGH_DELIVERED: Range<usize> = 24..32;
    pub(super) const FLAGS: usize = 32;
    pub(super) const RESERVED: Range<usize> = 33..36;
}

/// Entry flag bit: the member received every message of its old ring that its old-ring peers
/// on the new ring received.
const FLAG_RECEIVED: u8 = 0x01;
/// Entry flag bit: the member has filled in its entry.
const FLAG_FILLED: u8 = 0x02;

/// A view of a membership commit token.
///
/// Layout after the common header: `8..12` rep and `12..20` seq of the new ring, `20..28`
/// token_seq, `28..30` memb_index (how many entries are filled, at most entry_count),
/// `30..32` entry_count (at least 1), then entry_count entries of [`COMMIT_ENTRY_LEN`] bytes,
/// one per member of the new ring, strictly ascending by node id (the ring order), the first
/// being the new ring's rep. Each entry: `0..4` node, `4..8` old ring rep, `8..16` old ring
/// seq, `16..24` old_aru, `24..32` high_delivered, `32` flags (bit 0 received_flg, bit 1
/// filled), `33..36` reserved. The frame is exactly
/// `COMMIT_FIXED_LEN + COMMIT_ENTRY_LEN * entry_count` bytes long.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[doc(alias = "memb_commit_token")]
pub struct CommitTokenFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CommitTokenFrame<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> CommitTokenFrame<T> {
        CommitTokenFrame { buffer }
    }

    /// Wraps `buffer` and checks the whole frame (see [`CommitTokenFrame::check`]).
    ///
    /// # Errors
    ///
    /// As [`CommitTokenFrame::check`].
    ///
    /// # Fuzzing
    ///
    /// Never panics, whatever `buffer` holds.
    pub fn new_checked(buffer: T) -> Result<CommitTokenFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check()?;
        Ok(frame)
    }

    /// Checks that the buffer is exactly as long as the frame it holds claims.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if the buffer is shorter than the fixed part or than the
    /// entries; [`Error::Malformed`] if it is longer than the frame.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < COMMIT_FIXED_LEN {
            return Err(Error::Truncated);
        }
        let want = COMMIT_FIXED_LEN + COMMIT_ENTRY_LEN * usize::from(self.entry_count());
        match len.cmp(&want) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Equal => Ok(()),
            core::cmp::Ordering::Greater => Err(Error::Malformed),
        }
    }

    /// Checks the whole frame: the common header (magic, version, type
    /// [`FrameType::MembCommitToken`]); entry_count at least 1 and memb_index at most
    /// entry_count; the length; every entry valid ([`CommitEntryView::check`]); nodes
    /// strictly ascending and not [`NodeId::NONE`]; the new ring's rep equal to the first
    /// entry's node. The entries' values are not checked against each other otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`];
    /// [`Error::Malformed`] for another frame type, a bad count, entry or rep, or trailing
    /// bytes.
    pub fn check(&self) -> Result<()> {
        let header = self.header();
        header.check()?;
        if header.frame_type() != FrameType::MembCommitToken {
            return Err(Error::Malformed);
        }
        if self.buffer.as_ref().len() < COMMIT_FIXED_LEN {
            return Err(Error::Truncated);
        }
        let count = self.entry_count();
        if count == 0 || self.memb_index() > count {
            return Err(Error::Malformed);
        }
        self.check_len()?;
        for entry in self.entries() {
            entry.check()?;
        }
        check_ascending(self.entries().map(|e| e.node()))?;
        match self.entries().next() {
            Some(first) if first.node() == self.ring_id().rep => Ok(()),
            _ => Err(Error::Malformed),
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The common header.
    pub fn header(&self) -> Header<&[u8]> {
        Header::new_unchecked(self.buffer.as_ref())
    }

    /// The node that sent the token.
    ///
    /// # Panics
    ///
    /// On an unchecked buffer too short for the field (likewise for every getter but
    /// [`CommitTokenFrame::entries`]).
    pub fn sender(&self) -> NodeId {
        self.header().sender()
    }

    /// The new ring.
    pub fn ring_id(&self) -> RingId {
        get_ring_id(self.buffer.as_ref())
    }

    /// The rotation counter, incremented at every hop.
    pub fn token_seq(&self) -> u64 {
        get_u64(&self.buffer.as_ref()[field::TOKEN_SEQ])
    }

    /// How many entries are filled in.
    pub fn memb_index(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::MEMB_INDEX])
    }

    /// The number of entries (members of the new ring).
    pub fn entry_count(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::ENTRY_COUNT])
    }

    /// The entries, in frame order (the ring order), borrowed from the buffer.
    ///
    /// On an unchecked buffer, yields only the entries the buffer holds whole (none if it is
    /// shorter than the fixed part), without validating them; never panics.
    #[doc(alias = "addr")]
    pub fn entries(&self) -> CommitEntries<'_> {
        let data = self.buffer.as_ref();
        let count = match data.get(field::ENTRY_COUNT) {
            Some(raw) => usize::from(get_u16(raw)),
            None => 0,
        };
        let list = data.get(field::ENTRIES..).unwrap_or(&[]);
        let list = &list[..list.len().min(count * COMMIT_ENTRY_LEN)];
        CommitEntries {
            entries: list.chunks_exact(COMMIT_ENTRY_LEN),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CommitTokenFrame<T> {
    /// The common header, for writing.
    pub fn header_mut(&mut self) -> Header<&mut [u8]> {
        Header::new_unchecked(self.buffer.as_mut())
    }

    /// Sets the new ring.
    ///
    /// # Panics
    ///
    /// If the buffer is too short for the field (likewise for every setter).
    pub fn set_ring_id(&mut self, value: RingId) {
        put_ring_id(self.buffer.as_mut(), value);
    }

    /// Sets the rotation counter.
    pub fn set_token_seq(&mut self, value: u64) {
        put_u64(&mut self.buffer.as_mut()[field::TOKEN_SEQ], value);
    }

    /// Sets how many entries are filled in.
    pub fn set_memb_index(&mut self, value: u16) {
        put_u16(&mut self.buffer.as_mut()[field::MEMB_INDEX], value);
    }

    /// Sets the number of entries.
    pub fn set_entry_count(&mut self, value: u16) {
        put_u16(&mut self.buffer.as_mut()[field::ENTRY_COUNT], value);
    }

    /// Writes entry number `index` (from 0), reserved bytes included; a member fills in its
    /// own entry this way before forwarding the token.
    pub fn set_entry(&mut self, index: usize, value: &CommitEntry) {
        let at = field::ENTRIES + index * COMMIT_ENTRY_LEN;
        value.emit(&mut self.buffer.as_mut()[at..at + COMMIT_ENTRY_LEN]);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for CommitTokenFrame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(err) = self.check() {
            return write!(f, "MembCommitToken ({err})");
        }
        write!(
            f,
            "MembCommitToken from {} ring {} token_seq {} memb_index {}/{}",
            self.sender(),
            self.ring_id(),
            self.token_seq(),
            self.memb_index(),
            self.entry_count(),
        )?;
        write_entries(f, self.entries())
    }
}

fn write_entries<E: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    entries: impl Iterator<Item = E>,
) -> fmt::Result {
    f.write_str(" [")?;
    for (i, entry) in entries.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        entry.fmt(f)?;
    }
    f.write_str("]")
}

/// Iterator over the entries of a [`CommitTokenFrame`], borrowed from its buffer.
#[derive(Clone, Debug)]
pub struct CommitEntries<'a> {
    entries: ChunksExact<'a, u8>,
}

impl<'a> Iterator for CommitEntries<'a> {
    type Item = CommitEntryView<'a>;

    fn next(&mut self) -> Option<CommitEntryView<'a>> {
        self.entries.next().map(|bytes| CommitEntryView { bytes })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for CommitEntries<'_> {}

/// One entry of a commit token, borrowed from the frame: a member of the new ring and its
/// state on its old ring.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CommitEntryView<'a> {
    /// Exactly [`COMMIT_ENTRY_LEN`] bytes.
    bytes: &'a [u8],
}

impl CommitEntryView<'_> {
    /// Checks the entry's own fields: no flag bit other than received_flg and filled, reserved
    /// bytes 0.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`].
    pub fn check(&self) -> Result<()> {
        let reserved = &self.bytes[entry_field::RESERVED];
        if self.flags() & !(FLAG_RECEIVED | FLAG_FILLED) != 0 || reserved.iter().any(|&b| b != 0) {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The member.
    pub fn node(&self) -> NodeId {
        NodeId(get_u32(&self.bytes[entry_field::NODE]))
    }

    /// The member's old ring.
    pub fn old_ring_id(&self) -> RingId {
        RingId {
            seq: get_u64(&self.bytes[entry_field::OLD_RING_SEQ]),
            rep: NodeId(get_u32(&self.bytes[entry_field::OLD_RING_REP])),
        }
    }

    /// The member's all-received-up-to on its old ring.
    #[doc(alias = "aru")]
    pub fn old_aru(&self) -> Seq {
        Seq(get_u64(&self.bytes[entry_field::OLD_ARU]))
    }

    /// The highest old-ring sequence number the member has delivered.
    pub fn high_delivered(&self) -> Seq {
        Seq(get_u64(&self.bytes[entry_field::HIGH_DELIVERED]))
    }

    /// The raw flags byte.
    pub fn flags(&self) -> u8 {
        self.bytes[entry_field::FLAGS]
    }

    /// The received flag: the member holds every old-ring message its old-ring peers hold.
    pub fn received_flg(&self) -> bool {
        self.flags() & FLAG_RECEIVED != 0
    }

    /// The member has filled in this entry.
    pub fn is_filled(&self) -> bool {
        self.flags() & FLAG_FILLED != 0
    }
}

impl fmt::Display for CommitEntryView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match CommitEntry::parse(self) {
            Ok(entry) => entry.fmt(f),
            Err(err) => write!(f, "{} ({err})", self.node()),
        }
    }
}

/// One commit-token entry as plain values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[doc(alias = "memb_commit_token_memb_entry")]
pub struct CommitEntry {
    /// The member.
    pub node: NodeId,
    /// The member's old ring.
    pub old_ring: RingId,
    /// The member's all-received-up-to on its old ring.
    pub old_aru: Seq,
    /// The highest old-ring sequence number the member has delivered.
    pub high_delivered: Seq,
    /// The member holds every old-ring message its old-ring peers hold.
    pub received_flg: bool,
    /// The member has filled in this entry.
    pub filled: bool,
}

impl CommitEntry {
    /// Checks `entry` and reads it.
    ///
    /// # Errors
    ///
    /// As [`CommitEntryView::check`].
    pub fn parse(entry: &CommitEntryView<'_>) -> Result<CommitEntry> {
        entry.check()?;
        Ok(CommitEntry {
            node: entry.node(),
            old_ring: entry.old_ring_id(),
            old_aru: entry.old_aru(),
            high_delivered: entry.high_delivered(),
            received_flg: entry.received_flg(),
            filled: entry.is_filled(),
        })
    }

    /// The number of bytes [`CommitEntry::emit`] writes: [`COMMIT_ENTRY_LEN`].
    pub const fn buffer_len(&self) -> usize {
        COMMIT_ENTRY_LEN
    }

    /// Writes the entry, reserved bytes included, at the start of `buffer`.
    ///
    /// # Panics
    ///
    /// If `buffer` is shorter than [`COMMIT_ENTRY_LEN`].
    pub fn emit(&self, buffer: &mut [u8]) {
        let bytes = &mut buffer[..COMMIT_ENTRY_LEN];
        put_u32(&mut bytes[entry_field::NODE], self.node.0);
        put_u32(&mut bytes[entry_field::OLD_RING_REP], self.old_ring.rep.0);
        put_u64(&mut bytes[entry_field::OLD_RING_SEQ], self.old_ring.seq);
        put_u64(&mut bytes[entry_field::OLD_ARU], self.old_aru.0);
        put_u64(
            &mut bytes[entry_field::HIGH_DELIVERED],
            self.high_delivered.0,
        );
        let mut flags = 0;
        if self.received_flg {
            flags |= FLAG_RECEIVED;
        }
        if self.filled {
            flags |= FLAG_FILLED;
        }
        bytes[entry_field::FLAGS] = flags;
        bytes[entry_field::RESERVED].fill(0);
    }
}

impl fmt::Display for CommitEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} old {} aru {} high_delivered {}",
            self.node, self.old_ring, self.old_aru, self.high_delivered
        )?;
        if self.received_flg {
            f.write_str(" received")?;
        }
        if self.filled {
            f.write_str(" filled")?;
        }
        Ok(())
    }
}

/// A membership commit token as plain values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[doc(alias = "memb_commit_token")]
pub struct CommitTokenRepr {
    /// The sending node (common header).
    pub sender: NodeId,
    /// The new ring; its rep is the first entry's node.
    pub ring_id: RingId,
    /// The rotation counter.
    pub token_seq: u64,
    /// How many entries are filled in, at most `entries.len()`.
    pub memb_index: u16,
    /// One entry per member of the new ring, strictly ascending by node, at least one and at
    /// most `u16::MAX`.
    pub entries: Vec<CommitEntry>,
}

impl CommitTokenRepr {
    /// Checks `frame` and reads it.
    ///
    /// # Errors
    ///
    /// As [`CommitTokenFrame::check`].
    pub fn parse<T: AsRef<[u8]>>(frame: &CommitTokenFrame<T>) -> Result<CommitTokenRepr> {
        frame.check()?;
        Ok(CommitTokenRepr {
            sender: frame.sender(),
            ring_id: frame.ring_id(),
            token_seq: frame.token_seq(),
            memb_index: frame.memb_index(),
            entries: frame
                .entries()
                .map(|entry| CommitEntry::parse(&entry))
                .collect::<Result<_>>()?,
        })
    }

    /// The length of the frame [`CommitTokenRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        COMMIT_FIXED_LEN + COMMIT_ENTRY_LEN * self.entries.len()
    }

    /// Writes the whole frame, common header included, into the first
    /// [`CommitTokenRepr::buffer_len`] bytes of `frame`'s buffer. The values are written as
    /// they are: a token with no entries, unsorted entries, a rep other than the first node
    /// or `memb_index` above the entry count does not check.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`CommitTokenRepr::buffer_len`] or there are more than
    /// `u16::MAX` entries.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut CommitTokenFrame<T>) {
        let count = u16::try_from(self.entries.len()).expect("at most u16::MAX entries");
        HeaderRepr {
            frame_type: FrameType::MembCommitToken,
            sender: self.sender,
        }
        .emit(&mut frame.header_mut());
        frame.set_ring_id(self.ring_id);
        frame.set_token_seq(self.token_seq);
        frame.set_memb_index(self.memb_index);
        frame.set_entry_count(count);
        for (i, entry) in self.entries.iter().enumerate() {
            frame.set_entry(i, entry);
        }
    }
}

impl fmt::Display for CommitTokenRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MembCommitToken from {} ring {} token_seq {} memb_index {}/{}",
            self.sender,
            self.ring_id,
            self.token_seq,
            self.memb_index,
            self.entries.len(),
        )?;
        write_entries(f, self.entries.iter())
    }
}
