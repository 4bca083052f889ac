//! The ORF (ordering, reliability, flow control) token, frame type 1.

use core::fmt;
use core::slice::ChunksExact;

use super::{Error, FrameType, Header, HeaderRepr, Result, TOKEN_FIXED_LEN};
use super::{get_ring_id, get_u16, get_u32, get_u64, put_ring_id, put_u16, put_u32, put_u64};
use crate::{NodeId, RingId, Seq};

mod field {
    use core::ops::Range;
    pub(super) const TOKEN_SEQ: Range<usize> = 20..28;
    pub(super) const SEQ: Range<usize> = 28..36;
    pub(super) const ARU: Range<usize> = 36..44;
    pub(super) const ARU_ADDR: Range<usize> = 44..48;
    pub(super) const FCC: Range<usize> = 48..52;
    pub(super) const BACKLOG: Range<usize> = 52..56;
    pub(super) const ROT_MIN: Range<usize> = 56..64;
    pub(super) const SAFE: Range<usize> = 64..72;
    pub(super) const FLAGS: usize = 72;
    pub(super) const RESERVED: usize = 73;
    pub(super) const RTR_COUNT: Range<usize> = 74..76;
    pub(super) const RTR_LIST: usize = 76;
}

/// Length of one retransmit-request entry.
const RTR_ENTRY_LEN: usize = 8;
/// Flag bit: during recovery, some member still had old-ring frames to re-send in this
/// rotation.
const FLAG_RETRANS: u8 = 0x01;
/// Flag bit: recovery is complete; each member installs the new ring at its visit.
const FLAG_INSTALL: u8 = 0x02;

/// A view of an ORF token frame.
///
/// Layout after the common header: `8..12` ring rep, `12..20` ring seq, `20..28` token_seq,
/// `28..36` seq, `36..44` aru, `44..48` aru_addr, `48..52` fcc, `52..56` backlog, `56..64`
/// rot_min, `64..72` safe, `72` flags (bit 0 retrans_flg, bit 1 install), `73` reserved, `74..76` rtr_count,
/// then `rtr_count` sequence numbers of 8 bytes. The frame is exactly
/// `TOKEN_FIXED_LEN + 8 * rtr_count` bytes long.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[doc(alias = "orf_token")]
pub struct OrfTokenFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> OrfTokenFrame<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> OrfTokenFrame<T> {
        OrfTokenFrame { buffer }
    }

    /// Wraps `buffer` and checks the whole frame (see [`OrfTokenFrame::check`]).
    ///
    /// # Errors
    ///
    /// As [`OrfTokenFrame::check`].
    ///
    /// # Fuzzing
    ///
    /// Never panics, whatever `buffer` holds.
    pub fn new_checked(buffer: T) -> Result<OrfTokenFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check()?;
        Ok(frame)
    }

    /// Checks that the buffer is exactly as long as the frame it holds claims.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if the buffer is shorter than the fixed part or than the
    /// retransmit list; [`Error::Malformed`] if it is longer than the frame.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < TOKEN_FIXED_LEN {
            return Err(Error::Truncated);
        }
        let want = TOKEN_FIXED_LEN + RTR_ENTRY_LEN * usize::from(self.rtr_count());
        match len.cmp(&want) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Equal => Ok(()),
            core::cmp::Ordering::Greater => Err(Error::Malformed),
        }
    }

    /// Checks the whole frame: the common header (magic, version, type [`FrameType::OrfToken`]),
    /// the length, and that the flags have no bit other than retrans_flg and install, and the
    /// reserved byte is 0.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`];
    /// [`Error::Malformed`] for another frame type, bad flags or reserved byte, or trailing
    /// bytes.
    pub fn check(&self) -> Result<()> {
        let header = self.header();
        header.check()?;
        if header.frame_type() != FrameType::OrfToken {
            return Err(Error::Malformed);
        }
        if self.buffer.as_ref().len() < TOKEN_FIXED_LEN {
            return Err(Error::Truncated);
        }
        if self.flags() & !(FLAG_RETRANS | FLAG_INSTALL) != 0
            || self.buffer.as_ref()[field::RESERVED] != 0
        {
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

    /// The node that sent the token.
    ///
    /// # Panics
    ///
    /// On an unchecked buffer too short for the field (likewise for every getter but
    /// [`OrfTokenFrame::rtr_list`]).
    pub fn sender(&self) -> NodeId {
        self.header().sender()
    }

    /// The ring the token circulates on.
    pub fn ring_id(&self) -> RingId {
        get_ring_id(self.buffer.as_ref())
    }

    /// The rotation counter, incremented at every hop; a token not newer than the last one
    /// seen is a duplicate.
    pub fn token_seq(&self) -> u64 {
        get_u64(&self.buffer.as_ref()[field::TOKEN_SEQ])
    }

    /// The highest sequence number assigned on the ring.
    pub fn seq(&self) -> Seq {
        Seq(get_u64(&self.buffer.as_ref()[field::SEQ]))
    }

    /// The all-received-up-to sequence number.
    pub fn aru(&self) -> Seq {
        Seq(get_u64(&self.buffer.as_ref()[field::ARU]))
    }

    /// The node that last lowered `aru`, or [`NodeId::NONE`].
    pub fn aru_addr(&self) -> NodeId {
        NodeId(get_u32(&self.buffer.as_ref()[field::ARU_ADDR]))
    }

    /// The flow-control count: messages sent during the last rotation.
    pub fn fcc(&self) -> u32 {
        get_u32(&self.buffer.as_ref()[field::FCC])
    }

    /// The members' total send-queue backlog.
    pub fn backlog(&self) -> u32 {
        get_u32(&self.buffer.as_ref()[field::BACKLOG])
    }

    /// The running minimum of the members' aru during the current rotation.
    pub fn rot_min(&self) -> Seq {
        Seq(get_u64(&self.buffer.as_ref()[field::ROT_MIN]))
    }

    /// Every member is known to hold every sequence number up to this one.
    pub fn safe(&self) -> Seq {
        Seq(get_u64(&self.buffer.as_ref()[field::SAFE]))
    }

    /// The raw flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The retransmit flag.
    pub fn retrans_flg(&self) -> bool {
        self.flags() & FLAG_RETRANS != 0
    }

    /// The install flag.
    pub fn install(&self) -> bool {
        self.flags() & FLAG_INSTALL != 0
    }

    /// The number of retransmit requests.
    pub fn rtr_count(&self) -> u16 {
        get_u16(&self.buffer.as_ref()[field::RTR_COUNT])
    }

    /// The retransmit requests, in frame order, borrowed from the buffer.
    ///
    /// On an unchecked buffer, yields only the entries the buffer holds whole (none if it is
    /// shorter than the fixed part); never panics.
    pub fn rtr_list(&self) -> RtrList<'_> {
        let data = self.buffer.as_ref();
        let count = match data.get(field::RTR_COUNT) {
            Some(raw) => usize::from(get_u16(raw)),
            None => 0,
        };
        let list = data.get(field::RTR_LIST..).unwrap_or(&[]);
        let list = &list[..list.len().min(count * RTR_ENTRY_LEN)];
        RtrList {
            entries: list.chunks_exact(RTR_ENTRY_LEN),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> OrfTokenFrame<T> {
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

    /// Sets the rotation counter.
    pub fn set_token_seq(&mut self, value: u64) {
        put_u64(&mut self.buffer.as_mut()[field::TOKEN_SEQ], value);
    }

    /// Sets the highest assigned sequence number.
    pub fn set_seq(&mut self, value: Seq) {
        put_u64(&mut self.buffer.as_mut()[field::SEQ], value.0);
    }

    /// Sets aru.
    pub fn set_aru(&mut self, value: Seq) {
        put_u64(&mut self.buffer.as_mut()[field::ARU], value.0);
    }

    /// Sets aru_addr.
    pub fn set_aru_addr(&mut self, value: NodeId) {
        put_u32(&mut self.buffer.as_mut()[field::ARU_ADDR], value.0);
    }

    /// Sets the flow-control count.
    pub fn set_fcc(&mut self, value: u32) {
        put_u32(&mut self.buffer.as_mut()[field::FCC], value);
    }

    /// Sets the backlog.
    pub fn set_backlog(&mut self, value: u32) {
        put_u32(&mut self.buffer.as_mut()[field::BACKLOG], value);
    }

    /// Sets rot_min.
    pub fn set_rot_min(&mut self, value: Seq) {
        put_u64(&mut self.buffer.as_mut()[field::ROT_MIN], value.0);
    }

    /// Sets safe.
    pub fn set_safe(&mut self, value: Seq) {
        put_u64(&mut self.buffer.as_mut()[field::SAFE], value.0);
    }

    /// Sets the flags byte (retransmit and install flags; no other bit) and clears the
    /// reserved byte.
    pub fn set_flags(&mut self, retrans_flg: bool, install: bool) {
        let data = self.buffer.as_mut();
        data[field::FLAGS] =
            if retrans_flg { FLAG_RETRANS } else { 0 } | if install { FLAG_INSTALL } else { 0 };
        data[field::RESERVED] = 0;
    }

    /// Sets the number of retransmit requests (the entries are set with
    /// [`OrfTokenFrame::set_rtr`]).
    pub fn set_rtr_count(&mut self, value: u16) {
        put_u16(&mut self.buffer.as_mut()[field::RTR_COUNT], value);
    }

    /// Sets retransmit request number `index` (from 0).
    pub fn set_rtr(&mut self, index: usize, value: Seq) {
        let at = field::RTR_LIST + index * RTR_ENTRY_LEN;
        put_u64(&mut self.buffer.as_mut()[at..at + RTR_ENTRY_LEN], value.0);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for OrfTokenFrame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(err) = self.check() {
            return write!(f, "OrfToken ({err})");
        }
        write!(
            f,
            "OrfToken from {} ring {} token_seq {} seq {} aru {} aru_addr {} fcc {} backlog {} \
             rot_min {} safe {}",
            self.sender(),
            self.ring_id(),
            self.token_seq(),
            self.seq(),
            self.aru(),
            self.aru_addr(),
            self.fcc(),
            self.backlog(),
            self.rot_min(),
            self.safe(),
        )?;
        if self.retrans_flg() {
            f.write_str(" retrans")?;
        }
        if self.install() {
            f.write_str(" install")?;
        }
        write_rtr(f, self.rtr_list())
    }
}

fn write_rtr(f: &mut fmt::Formatter<'_>, list: impl ExactSizeIterator<Item = Seq>) -> fmt::Result {
    if list.len() == 0 {
        return Ok(());
    }
    f.write_str(" rtr [")?;
    for (i, seq) in list.enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{seq}")?;
    }
    f.write_str("]")
}

/// Iterator over the retransmit requests of an [`OrfTokenFrame`], borrowed from its buffer.
#[derive(Clone, Debug)]
pub struct RtrList<'a> {
    entries: ChunksExact<'a, u8>,
}

impl Iterator for RtrList<'_> {
    type Item = Seq;

    fn next(&mut self) -> Option<Seq> {
        self.entries.next().map(|raw| Seq(get_u64(raw)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for RtrList<'_> {}

/// An ORF token as plain values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[doc(alias = "orf_token")]
pub struct OrfTokenRepr {
    /// The sending node (common header).
    pub sender: NodeId,
    /// The ring the token circulates on.
    pub ring_id: RingId,
    /// The rotation counter.
    pub token_seq: u64,
    /// The highest sequence number assigned on the ring.
    pub seq: Seq,
    /// All received up to.
    pub aru: Seq,
    /// The node that last lowered `aru`, or [`NodeId::NONE`].
    pub aru_addr: NodeId,
    /// Flow-control count.
    pub fcc: u32,
    /// Total send-queue backlog.
    pub backlog: u32,
    /// Running minimum of the members' aru during this rotation.
    pub rot_min: Seq,
    /// Every member holds every sequence number up to this one.
    pub safe: Seq,
    /// The retransmit flag.
    pub retrans_flg: bool,
    /// The install flag.
    pub install: bool,
    /// Retransmit requests, at most `u16::MAX` of them.
    pub rtr: Vec<Seq>,
}

impl OrfTokenRepr {
    /// Checks `frame` and reads it.
    ///
    /// # Errors
    ///
    /// As [`OrfTokenFrame::check`].
    pub fn parse<T: AsRef<[u8]>>(frame: &OrfTokenFrame<T>) -> Result<OrfTokenRepr> {
        frame.check()?;
        Ok(OrfTokenRepr {
            sender: frame.sender(),
            ring_id: frame.ring_id(),
            token_seq: frame.token_seq(),
            seq: frame.seq(),
            aru: frame.aru(),
            aru_addr: frame.aru_addr(),
            fcc: frame.fcc(),
            backlog: frame.backlog(),
            rot_min: frame.rot_min(),
            safe: frame.safe(),
            retrans_flg: frame.retrans_flg(),
            install: frame.install(),
            rtr: frame.rtr_list().collect(),
        })
    }

    /// The length of the frame [`OrfTokenRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        TOKEN_FIXED_LEN + RTR_ENTRY_LEN * self.rtr.len()
    }

    /// Writes the whole frame, common header included, into the first
    /// [`OrfTokenRepr::buffer_len`] bytes of `frame`'s buffer.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`OrfTokenRepr::buffer_len`] or `rtr` has more than
    /// `u16::MAX` entries.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut OrfTokenFrame<T>) {
        let count = u16::try_from(self.rtr.len()).expect("at most u16::MAX retransmit requests");
        HeaderRepr {
            frame_type: FrameType::OrfToken,
            sender: self.sender,
        }
        .emit(&mut frame.header_mut());
        frame.set_ring_id(self.ring_id);
        frame.set_token_seq(self.token_seq);
        frame.set_seq(self.seq);
        frame.set_aru(self.aru);
        frame.set_aru_addr(self.aru_addr);
        frame.set_fcc(self.fcc);
        frame.set_backlog(self.backlog);
        frame.set_rot_min(self.rot_min);
        frame.set_safe(self.safe);
        frame.set_flags(self.retrans_flg, self.install);
        frame.set_rtr_count(count);
        for (i, seq) in self.rtr.iter().enumerate() {
            frame.set_rtr(i, *seq);
        }
    }
}

impl fmt::Display for OrfTokenRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OrfToken from {} ring {} token_seq {} seq {} aru {} aru_addr {} fcc {} backlog {} \
             rot_min {} safe {}",
            self.sender,
            self.ring_id,
            self.token_seq,
            self.seq,
            self.aru,
            self.aru_addr,
            self.fcc,
            self.backlog,
            self.rot_min,
            self.safe,
        )?;
        if self.retrans_flg {
            f.write_str(" retrans")?;
        }
        if self.install {
            f.write_str(" install")?;
        }
        write_rtr(f, self.rtr.iter().copied())
    }
}
