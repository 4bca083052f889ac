//! Multicast data frames, frame type 2: a fixed part and either one or more message chunks or,
//! during recovery, one encapsulated mcast frame of an old ring.

use core::fmt;
use core::ops::Range;

use super::{CHUNK_HEADER_LEN, Error, FrameType, Header, HeaderRepr, MCAST_FIXED_LEN, Result};
use super::{get_ring_id, get_u16, get_u32, get_u64, put_ring_id, put_u16, put_u32, put_u64};
use crate::{DeliveryKind, NodeId, RingId, Seq};

mod field {
    use core::ops::Range;
    pub(super) const SEQ: Range<usize> = 20..28;
    pub(super) const FLAGS: usize = 28;
    pub(super) const RESERVED: usize = 29;
    pub(super) const CHUNK_COUNT: Range<usize> = 30..32;
    pub(super) const CHUNKS: usize = 32;
}

/// Byte ranges inside one chunk, from the chunk's start.
mod chunk_field {
    use core::ops::Range;

    pub(super) const MSG_NO: Range<usize> = 0..8;
    pub(super) const TOTAL_LEN: Range<usize> = 8..12;
    pub(super) const OFFSET: Range<usize> = 12..16;
    pub(super) const LEN: Range<usize> = 16..18;
    pub(super) const KIND: usize = 18;
    pub(super) const RESERVED: usize = 19;
}

const FLAG_SAFE: u8 = 0x01;
const FLAG_ENCAPSULATED: u8 = 0x02;
const KIND_AGREED: u8 = 0;
const KIND_SAFE: u8 = 1;

/// A view of an mcast frame.
///
/// Layout after the common header: `8..12` ring rep, `12..20` ring seq, `20..28` seq, `28`
/// flags (bit 0 SAFE: at least one chunk is of a safe message; bit 1 ENCAPSULATED, for
/// recovery), `29` reserved, `30..32` chunk_count, then the chunk area from byte
/// [`MCAST_FIXED_LEN`] to the end of the frame.
///
/// - Without ENCAPSULATED, chunk_count is at least 1 and the chunks fill the chunk area
///   exactly. Each chunk: `0..8` msg_no (the sender's message counter, from 1), `8..12`
///   total_len (the whole message), `12..16` offset (of this chunk inside the message),
///   `16..18` len, `18` kind (0 agreed, 1 safe), `19` reserved, then `len` payload bytes.
/// - With ENCAPSULATED (recovery: an old ring's message re-sent on the new ring), SAFE is 0,
///   chunk_count is 0 and the chunk area is exactly one whole, valid, non-encapsulated mcast
///   frame of the old ring, without a trailer ([`McastFrame::encapsulated`]). That inner frame
///   carries its own SAFE flag.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[doc(alias = "mcast")]
pub struct McastFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> McastFrame<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> McastFrame<T> {
        McastFrame { buffer }
    }

    /// Wraps `buffer` and checks the whole frame (see [`McastFrame::check`]).
    ///
    /// # Errors
    ///
    /// As [`McastFrame::check`].
    ///
    /// # Fuzzing
    ///
    /// Never panics, whatever `buffer` holds.
    pub fn new_checked(buffer: T) -> Result<McastFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the fixed part.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if shorter than [`MCAST_FIXED_LEN`].
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < MCAST_FIXED_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Checks the whole frame: the common header (magic, version, type [`FrameType::Mcast`]);
    /// flags with only SAFE and ENCAPSULATED; reserved byte 0. Then, without ENCAPSULATED: at
    /// least one chunk; every chunk valid ([`Chunk::check`]) and whole; SAFE set exactly when
    /// a chunk is of kind safe; no bytes after the last chunk. With ENCAPSULATED: SAFE clear,
    /// chunk_count 0, and the chunk area exactly one frame that passes this check and is not
    /// encapsulated itself.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if the buffer ends inside the fixed part, a chunk or the
    /// encapsulated frame; [`Error::BadMagic`], [`Error::UnsupportedVersion`];
    /// [`Error::Malformed`] for another frame type, a bad field, trailing bytes, or an
    /// encapsulated frame that is invalid for any other reason (bad magic and version
    /// included) or encapsulated itself.
    pub fn check(&self) -> Result<()> {
        self.check_fixed()?;
        if !self.is_encapsulated() {
            return self.check_chunks();
        }
        if self.is_safe() || self.chunk_count() != 0 {
            return Err(Error::Malformed);
        }
        let inner = McastFrame::new_unchecked(&self.buffer.as_ref()[field::CHUNKS..]);
        let inner_ok = inner.check_fixed().and_then(|()| {
            if inner.is_encapsulated() {
                Err(Error::Malformed)
            } else {
                inner.check_chunks()
            }
        });
        match inner_ok {
            Ok(()) | Err(Error::Truncated) => inner_ok,
            Err(_) => Err(Error::Malformed),
        }
    }

    /// Checks the common header, the fixed part's length, the flags and the reserved byte.
    fn check_fixed(&self) -> Result<()> {
        let header = self.header();
        header.check()?;
        if header.frame_type() != FrameType::Mcast {
            return Err(Error::Malformed);
        }
        self.check_len()?;
        if self.flags() & !(FLAG_SAFE | FLAG_ENCAPSULATED) != 0
            || self.buffer.as_ref()[field::RESERVED] != 0
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Checks the chunks of a frame whose fixed part has been checked.
    fn check_chunks(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let count = self.chunk_count();
        if count == 0 {
            return Err(Error::Malformed);
        }
        let mut at = field::CHUNKS;
        let mut any_safe = false;
        for _ in 0..count {
            let header = data
                .get(at..at + CHUNK_HEADER_LEN)
                .ok_or(Error::Truncated)?;
            let len = usize::from(get_u16(&header[chunk_field::LEN]));
            let end = at + CHUNK_HEADER_LEN + len;
            if end > data.len() {
                return Err(Error::Truncated);
            }
            let chunk = Chunk {
                header,
                payload: &data[at + CHUNK_HEADER_LEN..end],
                start: at + CHUNK_HEADER_LEN,
            };
            chunk.check()?;
            any_safe |= chunk.kind() == DeliveryKind::Safe;
            at = end;
        }
        if at != data.len() || any_safe != self.is_safe() {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The common header.
    pub fn header(&self) -> Header<&[u8]> {
        Header::new_unchecked(self.buffer.as_ref())
    }

    /// The sending node.
    ///
    /// # Panics
    ///
    /// On an unchecked buffer too short for the field (likewise for every getter but
    /// [`McastFrame::chunks`]).
    pub fn sender(&self) -> NodeId {
        self.header().sender()
    }

    /// The ring the frame was sent on.
    pub fn ring_id(&self) -> RingId {
        get_ring_id(self.buffer.as_ref())
    }

    /// The frame's sequence number on the ring.
    pub fn seq(&self) -> Seq {
        Seq(get_u64(&self.buffer.as_ref()[field::SEQ]))
    }

    /// The raw flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// At least one chunk belongs to a safe message.
    pub fn is_safe(&self) -> bool {
        self.flags() & FLAG_SAFE != 0
    }

    /// The frame encapsulates a frame of an old ring (recovery).
    pub fn is_encapsulated(&self) -> bool {
        self.flags() & FLAG_ENCAPSULATED != 0
    }

    /// The encapsulated old-ring frame, checked: `Some` when the ENCAPSULATED flag is set and
    /// the chunk area holds exactly one valid, non-encapsulated mcast frame (always so on a
    /// checked encapsulated frame), otherwise `None`. The inner frame starts at
    /// [`MCAST_FIXED_LEN`] in this one, so add that to its chunks' [`Chunk::payload_range`]
    /// to index this frame's buffer. Never panics.
    pub fn encapsulated(&self) -> Option<McastFrame<&[u8]>> {
        let data = self.buffer.as_ref();
        let flags = *data.get(field::FLAGS)?;
        if flags & FLAG_ENCAPSULATED == 0 {
            return None;
        }
        let inner = McastFrame::new_checked(data.get(field::CHUNKS..)?).ok()?;
        (!inner.is_encapsulated()).then_some(inner)
    }

    /// The number of chunks.
    pub fn chunk_count(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::CHUNK_COUNT])
    }

    /// The chunks, in frame order, borrowed from the buffer. None for an encapsulated frame
    /// (see [`McastFrame::encapsulated`]).
    ///
    /// On an unchecked buffer, yields chunks while they are whole and stops at the first that
    /// is not (or at once if the fixed part is incomplete); their fields are not validated.
    /// Never panics.
    pub fn chunks(&self) -> Chunks<'_> {
        let data = self.buffer.as_ref();
        let encapsulated = data
            .get(field::FLAGS)
            .is_some_and(|flags| flags & FLAG_ENCAPSULATED != 0);
        let remaining = match data.get(field::CHUNK_COUNT) {
            Some(raw) if !encapsulated => get_u16(raw),
            _ => 0,
        };
        Chunks {
            data,
            at: field::CHUNKS,
            remaining,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> McastFrame<T> {
    /// The common header, for writing.
    pub fn header_mut(&mut self) -> Header<&mut [u8]> {
        Header::new_unchecked(self.buffer.as_mut())
    }

    /// Sets the ring.
    ///
    /// # Panics
    ///
    /// If the buffer is too short for the field (likewise for every setter).
    pub fn set_ring_id(&mut self, value: RingId) {
        put_ring_id(self.buffer.as_mut(), value);
    }

    /// Sets the frame's sequence number.
    pub fn set_seq(&mut self, value: Seq) {
        put_u64(&mut self.buffer.as_mut()[field::SEQ], value.0);
    }

    /// Sets the flags byte from its two flags and clears the reserved byte.
    pub fn set_flags(&mut self, safe: bool, encapsulated: bool) {
        let data = self.buffer.as_mut();
        let mut flags = 0;
        if safe {
            flags |= FLAG_SAFE;
        }
        if encapsulated {
            flags |= FLAG_ENCAPSULATED;
        }
        data[field::FLAGS] = flags;
        data[field::RESERVED] = 0;
    }

    /// Sets the number of chunks.
    pub fn set_chunk_count(&mut self, value: u16) {
        put_u16(&mut self.buffer.as_mut()[field::CHUNK_COUNT], value);
    }

    /// The bytes after the fixed part, where the chunks go (see [`ChunkRepr::emit`] and
    /// [`crate::pg::pack`]), or, in an encapsulated frame, the whole old-ring frame.
    pub fn chunk_area_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::CHUNKS..]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for McastFrame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match McastRepr::parse(self) {
            Ok(repr) => repr.fmt(f)?,
            Err(err) => return write!(f, "Mcast ({err})"),
        }
        if let Some(inner) = self.encapsulated() {
            return write!(f, " [{inner}]");
        }
        f.write_str(" [")?;
        for (i, chunk) in self.chunks().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            chunk.fmt(f)?;
        }
        f.write_str("]")
    }
}

/// Iterator over the chunks of an [`McastFrame`].
#[derive(Clone, Debug)]
pub struct Chunks<'a> {
    data: &'a [u8],
    at: usize,
    remaining: u16,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let whole = self
            .data
            .get(self.at..self.at + CHUNK_HEADER_LEN)
            .and_then(|header| {
                let start = self.at + CHUNK_HEADER_LEN;
                let end = start + usize::from(get_u16(&header[chunk_field::LEN]));
                let payload = self.data.get(start..end)?;
                Some((
                    Chunk {
                        header,
                        payload,
                        start,
                    },
                    end,
                ))
            });
        match whole {
            Some((chunk, end)) => {
                self.remaining -= 1;
                self.at = end;
                Some(chunk)
            }
            None => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

/// One chunk of an mcast frame: a whole message, or a fragment of one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// The chunk's [`CHUNK_HEADER_LEN`] header bytes.
    header: &'a [u8],
    payload: &'a [u8],
    /// Where the payload starts in the frame buffer.
    start: usize,
}

impl<'a> Chunk<'a> {
    /// Checks the chunk's fields: msg_no at least 1; kind 0 or 1; reserved byte 0;
    /// `offset + len <= total_len`; `len > 0`, except for an empty message (`total_len`,
    /// `offset` and `len` all 0).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`].
    pub fn check(&self) -> Result<()> {
        let total = u64::from(self.total_len());
        let offset = u64::from(self.offset());
        let len = u64::from(self.len());
        let kind_ok = matches!(self.header[chunk_field::KIND], KIND_AGREED | KIND_SAFE);
        let range_ok = if total == 0 {
            offset == 0 && len == 0
        } else {
            len > 0 && offset + len <= total
        };
        if self.msg_no() == 0 || !kind_ok || self.header[chunk_field::RESERVED] != 0 || !range_ok {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The sender's message counter (from 1).
    pub fn msg_no(&self) -> u64 {
        get_u64(&self.header[chunk_field::MSG_NO])
    }

    /// The length of the whole message.
    pub fn total_len(&self) -> u32 {
        get_u32(&self.header[chunk_field::TOTAL_LEN])
    }

    /// Where this chunk's bytes start inside the message.
    pub fn offset(&self) -> u32 {
        get_u32(&self.header[chunk_field::OFFSET])
    }

    /// The number of payload bytes.
    pub fn len(&self) -> u16 {
        get_u16(&self.header[chunk_field::LEN])
    }

    /// True for the chunk of an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The delivery kind: [`DeliveryKind::Safe`] for kind byte 1, otherwise
    /// [`DeliveryKind::Agreed`] (a checked chunk has only 0 or 1).
    pub fn kind(&self) -> DeliveryKind {
        if self.header[chunk_field::KIND] == KIND_SAFE {
            DeliveryKind::Safe
        } else {
            DeliveryKind::Agreed
        }
    }

    /// True when this chunk is the whole message.
    pub fn is_whole_message(&self) -> bool {
        self.offset() == 0 && u32::from(self.len()) == self.total_len()
    }

    /// The payload bytes, borrowed from the frame buffer.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Where the payload lies in the frame buffer the chunk was read from, so a caller that
    /// owns that buffer as `bytes::Bytes` can slice it without copying.
    pub fn payload_range(&self) -> Range<usize> {
        self.start..self.start + self.payload.len()
    }
}

impl fmt::Display for Chunk<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "msg {} {}+{}/{} {}",
            self.msg_no(),
            self.offset(),
            self.len(),
            self.total_len(),
            self.kind().as_str()
        )
    }
}

/// One chunk as plain values; the payload stays borrowed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkRepr<'a> {
    /// The sender's message counter (from 1).
    pub msg_no: u64,
    /// The length of the whole message.
    pub total_len: u32,
    /// Where `payload` starts inside the message.
    pub offset: u32,
    /// The delivery kind of the message.
    pub kind: DeliveryKind,
    /// This chunk's bytes of the message, at most `u16::MAX` of them.
    pub payload: &'a [u8],
}

impl<'a> ChunkRepr<'a> {
    /// Checks `chunk` and reads it.
    ///
    /// # Errors
    ///
    /// As [`Chunk::check`].
    pub fn parse(chunk: &Chunk<'a>) -> Result<ChunkRepr<'a>> {
        chunk.check()?;
        Ok(ChunkRepr {
            msg_no: chunk.msg_no(),
            total_len: chunk.total_len(),
            offset: chunk.offset(),
            kind: chunk.kind(),
            payload: chunk.payload(),
        })
    }

    /// The number of bytes [`ChunkRepr::emit`] writes: header and payload.
    pub fn buffer_len(&self) -> usize {
        CHUNK_HEADER_LEN + self.payload.len()
    }

    /// Writes the chunk header and payload at the start of `buffer`.
    ///
    /// # Panics
    ///
    /// If `buffer` is shorter than [`ChunkRepr::buffer_len`] or the payload is longer than
    /// `u16::MAX`.
    pub fn emit(&self, buffer: &mut [u8]) {
        let len = u16::try_from(self.payload.len()).expect("chunk payload at most u16::MAX");
        let (header, rest) = buffer.split_at_mut(CHUNK_HEADER_LEN);
        put_u64(&mut header[chunk_field::MSG_NO], self.msg_no);
        put_u32(&mut header[chunk_field::TOTAL_LEN], self.total_len);
        put_u32(&mut header[chunk_field::OFFSET], self.offset);
        put_u16(&mut header[chunk_field::LEN], len);
        header[chunk_field::KIND] = match self.kind {
            DeliveryKind::Agreed => KIND_AGREED,
            DeliveryKind::Safe => KIND_SAFE,
        };
        header[chunk_field::RESERVED] = 0;
        rest[..self.payload.len()].copy_from_slice(self.payload);
    }
}

/// The fixed part of an mcast frame as plain values (the chunks are [`ChunkRepr`]s, or are
/// written by [`crate::pg::pack`]; an encapsulated frame holds an old-ring frame instead).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[doc(alias = "mcast")]
pub struct McastRepr {
    /// The sending node (common header).
    pub sender: NodeId,
    /// The ring the frame is sent on.
    pub ring_id: RingId,
    /// The frame's sequence number on the ring.
    pub seq: Seq,
    /// SAFE flag: at least one chunk is of a safe message; always false when `encapsulated`.
    pub safe: bool,
    /// ENCAPSULATED flag (recovery): the frame holds one old-ring mcast frame, no chunks.
    pub encapsulated: bool,
    /// The number of chunks that follow; 0 when `encapsulated`.
    pub chunk_count: u16,
}

impl McastRepr {
    /// Checks the whole frame, chunks or encapsulated frame included, and reads its fixed
    /// part.
    ///
    /// # Errors
    ///
    /// As [`McastFrame::check`].
    pub fn parse<T: AsRef<[u8]>>(frame: &McastFrame<T>) -> Result<McastRepr> {
        frame.check()?;
        Ok(McastRepr {
            sender: frame.sender(),
            ring_id: frame.ring_id(),
            seq: frame.seq(),
            safe: frame.is_safe(),
            encapsulated: frame.is_encapsulated(),
            chunk_count: frame.chunk_count(),
        })
    }

    /// The number of bytes [`McastRepr::emit`] writes: [`MCAST_FIXED_LEN`].
    pub const fn buffer_len(&self) -> usize {
        MCAST_FIXED_LEN
    }

    /// Writes the fixed part, common header included. The rest is written separately into
    /// [`McastFrame::chunk_area_mut`]: the chunks or, when `encapsulated`, the bytes of the
    /// whole old-ring mcast frame (without its trailer), which must fill the rest of the
    /// buffer exactly. The fields are written as they are: an encapsulated frame with `safe`
    /// set or a nonzero `chunk_count` does not check.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`MCAST_FIXED_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut McastFrame<T>) {
        HeaderRepr {
            frame_type: FrameType::Mcast,
            sender: self.sender,
        }
        .emit(&mut frame.header_mut());
        frame.set_ring_id(self.ring_id);
        frame.set_seq(self.seq);
        frame.set_flags(self.safe, self.encapsulated);
        frame.set_chunk_count(self.chunk_count);
    }
}

impl fmt::Display for McastRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Mcast from {} ring {} seq {} chunks {}",
            self.sender, self.ring_id, self.seq, self.chunk_count
        )?;
        if self.safe {
            f.write_str(" safe")?;
        }
        if self.encapsulated {
            f.write_str(" encapsulated")?;
        }
        Ok(())
    }
}
