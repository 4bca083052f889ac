//! Shared-memory rings between the AIS executive and one client on the same host: a segment
//! (an anonymous `memfd`, passed over the connection's `SOCK_SEQPACKET` socket) holding two
//! single-producer single-consumer byte rings, one per direction. Linux only.
//!
//! # Layout
//!
//! ```text
//! 0      control page (4096 bytes): per ring, on cache lines of their own,
//!          head (u64, written by the writer), tail (u64, written by the reader),
//!          reader_sleeping (u32), writer_waiting (u32)
//! 4096   ring 0 data (client → executive: requests), `ring_bytes`
//! 4096 + ring_bytes   ring 1 data (executive → client: answers and callbacks), `ring_bytes`
//! ```
//!
//! `head` and `tail` count bytes since the start and only grow (wrapping at 2⁶⁴). A record
//! is a `u32` length (native byte order: both ends are on one host) and that many bytes,
//! padded to 8; a record never straddles the end of the data area: when it does not fit,
//! the writer puts a wrap marker (`u32::MAX`) where it would start and begins again at
//! offset 0. The writer copies a record in, then publishes it by storing `head` (release); a
//! writer that dies before that store leaves nothing the reader can see.
//!
//! # Hostile peers
//!
//! Each side keeps its own copy of the index it owns and never reads it back from the
//! segment; the peer's index is read once per look and checked ([`RingError`]): `head` must
//! be 8-aligned and at most `ring_bytes` ahead of the reader's tail, a record's length must
//! fit the bytes published and the data area, and a wrap marker must come where the writer
//! could not have fitted the record. Record bytes are copied out of the segment before
//! anything parses them, so a peer rewriting them meanwhile changes only what it sent. The
//! executive opens a client's segment only if it is a `memfd` sealed against shrinking and
//! growing ([`Segment::open`]): a client cannot truncate it under the executive's mapping
//! (which would raise `SIGBUS` there).
//!
//! # Wake-ups
//!
//! Nobody spins. A reader that finds its ring empty sets `reader_sleeping`, looks again,
//! and then sleeps on the connection's socket; a writer that published a batch swaps the
//! flag to 0 and, if it was set, sends the peer a wake-up (a 1-byte packet on the socket). A
//! writer that finds the ring full sets `writer_waiting` and sleeps the same way; the reader
//! wakes it once it has made room. The flags and indices use sequentially consistent
//! operations on both sides, so one of the two always sees the other (no lost wake-up). So
//! a busy pair exchanges many records per system call, and an idle one costs one small
//! packet per sleep. Because the socket stays the wake-up channel, a peer's death shows as
//! a closed connection, as without shared memory.
//!
//! # Leftovers
//!
//! A `memfd` has no name in any filesystem: when the last process holding it (descriptor
//! or mapping) exits, the kernel frees it. A crashed client or executive leaves nothing in
//! `/dev/shm` or elsewhere to clean up.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use bytes::{Bytes, BytesMut};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes before the first ring's data: the control page.
pub const CONTROL_BYTES: usize = 4096;
/// The smallest ring (one direction's data area).
pub const MIN_RING_BYTES: usize = 1 << 16;
/// The largest ring.
pub const MAX_RING_BYTES: usize = 1 << 26;
/// The ring size clients ask for unless told otherwise: room for several of the largest
/// IPC packets (192 KiB payloads).
pub const DEFAULT_RING_BYTES: usize = 1 << 20;

/// A record's length prefix.
const LEN_BYTES: usize = 4;
/// Records start on multiples of this.
const ALIGN: u64 = 8;
/// The length that marks "continue at offset 0".
const WRAP: u32 = u32::MAX;

/// Offsets in the control page of ring `r`'s fields (each on its own cache line).
const fn head_at(r: usize) -> usize {
    r * 512
}
const fn tail_at(r: usize) -> usize {
    r * 512 + 128
}
const fn sleeping_at(r: usize) -> usize {
    r * 512 + 256
}
const fn waiting_at(r: usize) -> usize {
    r * 512 + 384
}

/// Why a segment could not be made or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// A ring size that is not a power of two between [`MIN_RING_BYTES`] and
    /// [`MAX_RING_BYTES`].
    #[error("ring size {0} is not a power of two between {MIN_RING_BYTES} and {MAX_RING_BYTES}")]
    RingSize(usize),
    /// The segment's size is not the one its ring size implies.
    #[error("shared-memory segment of {got} bytes, expected {expected} for rings of {ring_bytes}")]
    WrongSize {
        /// Its size.
        got: u64,
        /// The size two rings of `ring_bytes` need.
        expected: usize,
        /// The ring size announced.
        ring_bytes: usize,
    },
    /// The descriptor is not a `memfd` sealed against shrinking and growing.
    #[error("the segment is not a memfd sealed against resizing (seals {0:#x})")]
    NotSealed(i32),
    /// The system refused.
    #[error("{what}: {err}")]
    Io {
        /// The call.
        what: &'static str,
        /// Its error.
        err: io::Error,
    },
}

/// A peer broke the ring's rules: the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The peer's index is impossible.
    #[error("ring index corrupt: {what} (head {head}, tail {tail}, ring {ring_bytes} bytes)")]
    Index {
        /// What is wrong.
        what: &'static str,
        /// The writer's index as read.
        head: u64,
        /// The reader's index as read.
        tail: u64,
        /// The data area's size.
        ring_bytes: usize,
    },
    /// A record's length does not fit.
    #[error("record of {len} bytes at offset {offset} does not fit ({why})")]
    Record {
        /// Its length.
        len: u32,
        /// Where it starts in the data area.
        offset: usize,
        /// Which limit it breaks.
        why: &'static str,
    },
    /// A record larger than the ring allows was offered to [`Writer::try_write`].
    #[error("a record of {len} bytes is larger than the {max} this ring takes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The most a record may have.
        max: usize,
    },
}

/// The bytes needed for a segment with two rings of `ring_bytes`.
pub const fn segment_bytes(ring_bytes: usize) -> usize {
    CONTROL_BYTES + 2 * ring_bytes
}

/// The largest record a ring of `ring_bytes` takes: half of it, so that a record always fits
/// once the reader caught up, whatever the wrap.
pub const fn max_record(ring_bytes: usize) -> usize {
    ring_bytes / 2 - LEN_BYTES
}

fn check_ring_bytes(ring_bytes: usize) -> Result<(), ShmError> {
    if ring_bytes.is_power_of_two() && (MIN_RING_BYTES..=MAX_RING_BYTES).contains(&ring_bytes) {
        Ok(())
    } else {
        Err(ShmError::RingSize(ring_bytes))
    }
}

fn sys(what: &'static str) -> ShmError {
    ShmError::Io {
        what,
        err: io::Error::last_os_error(),
    }
}

/// One mapped segment. Unmapped when the last [`Writer`]/[`Reader`] holding it is dropped.
#[derive(Debug)]
pub struct Segment {
    base: NonNull<u8>,
    len: usize,
    ring_bytes: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory; every access through `base` is either an
// atomic operation on an aligned word or a byte copy, which any thread may do. The pointer
// stays valid until `Drop`, which needs exclusive ownership.
unsafe impl Send for Segment {}
// SAFETY: as above; `&Segment` only gives atomic or byte-copy access.
unsafe impl Sync for Segment {}

impl Segment {
    /// Makes a new segment with two rings of `ring_bytes` (the client's side): an anonymous
    /// `memfd` (close-on-exec), sized and sealed against shrinking, growing and further
    /// seals, then mapped. Its pages are zero: both rings empty.
    ///
    /// # Errors
    /// [`ShmError::RingSize`], or the system's refusal.
    pub fn create(ring_bytes: usize) -> Result<Segment, ShmError> {
        check_ring_bytes(ring_bytes)?;
        let fd = Segment::memfd()?;
        Segment::size_and_seal(&fd, segment_bytes(ring_bytes))?;
        Segment::map(fd, ring_bytes)
    }

    /// A new, empty anonymous memfd (close-on-exec, sealing allowed).
    fn memfd() -> Result<OwnedFd, ShmError> {
        // SAFETY: the name is a NUL-terminated literal; the flags are valid.
        let raw = unsafe {
            libc::memfd_create(
                c"openais-ipc".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(sys("memfd_create"));
        }
        // SAFETY: `memfd_create` returned a new descriptor nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// A memfd of `bytes`, sealed or not, unmapped (tests of the executive's checks: a
    /// segment of the wrong size, or one the client could still resize).
    ///
    /// # Errors
    /// The system's refusal.
    #[doc(hidden)]
    pub fn create_sized_fd(bytes: usize, seal: bool) -> Result<OwnedFd, ShmError> {
        let fd = Segment::memfd()?;
        if seal {
            Segment::size_and_seal(&fd, bytes)?;
        } else {
            // SAFETY: `fd` is an open memfd.
            if unsafe { libc::ftruncate(fd.as_raw_fd(), bytes as libc::off_t) } != 0 {
                return Err(sys("ftruncate"));
            }
        }
        Ok(fd)
    }

    fn size_and_seal(fd: &OwnedFd, bytes: usize) -> Result<(), ShmError> {
        // SAFETY: `fd` is an open memfd; a size is an integer.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), bytes as libc::off_t) } != 0 {
            return Err(sys("ftruncate"));
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: `fd` is an open memfd created with `MFD_ALLOW_SEALING`.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(sys("fcntl(F_ADD_SEALS)"));
        }
        Ok(())
    }

    /// Maps a segment a peer made (the executive's side), after checking that it is a
    /// `memfd` sealed against shrinking and growing and exactly
    /// [`segment_bytes`]`(ring_bytes)` long.
    ///
    /// # Errors
    /// [`ShmError::RingSize`], [`ShmError::NotSealed`], [`ShmError::WrongSize`], or the
    /// system's refusal.
    pub fn open(fd: OwnedFd, ring_bytes: usize) -> Result<Segment, ShmError> {
        check_ring_bytes(ring_bytes)?;
        // SAFETY: `fd` is an open descriptor; `F_GET_SEALS` takes no argument. Files other
        // than memfds answer EINVAL.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        if seals < 0 || seals & needed != needed {
            return Err(ShmError::NotSealed(seals));
        }
        // SAFETY: `stat` is plain integers, for which zero bytes are valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open and `st` is a writable `stat`.
        if unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) } != 0 {
            return Err(sys("fstat"));
        }
        let expected = segment_bytes(ring_bytes);
        if u64::try_from(st.st_size).ok() != Some(expected as u64) {
            return Err(ShmError::WrongSize {
                got: st.st_size as u64,
                expected,
                ring_bytes,
            });
        }
        Segment::map(fd, ring_bytes)
    }

    fn map(fd: OwnedFd, ring_bytes: usize) -> Result<Segment, ShmError> {
        let len = segment_bytes(ring_bytes);
        // SAFETY: a new shared mapping of `len` bytes of `fd`, which is at least that long
        // (sized and sealed by its maker, or checked by `open`); the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sys("mmap"));
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| sys("mmap"))?;
        Ok(Segment {
            base,
            len,
            ring_bytes,
            fd,
        })
    }

    /// The data area's size of each ring.
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// The segment's descriptor (to pass to the peer).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The client's ends: it writes ring 0 and reads ring 1.
    pub fn client_ends(self: &Arc<Self>) -> (Writer, Reader) {
        (
            Writer::new(Arc::clone(self), 0),
            Reader::new(Arc::clone(self), 1),
        )
    }

    /// The executive's ends: it writes ring 1 and reads ring 0.
    pub fn exec_ends(self: &Arc<Self>) -> (Writer, Reader) {
        (
            Writer::new(Arc::clone(self), 1),
            Reader::new(Arc::clone(self), 0),
        )
    }

    fn word64(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at + 8 <= CONTROL_BYTES && at.is_multiple_of(8));
        // SAFETY: `at` is a fixed, 8-aligned offset inside the control page (the mapping is
        // page-aligned), valid for the life of `self`; the memory is only ever accessed
        // atomically at this offset by either process.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(at).cast::<u64>()) }
    }

    fn word32(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at + 4 <= CONTROL_BYTES && at.is_multiple_of(4));
        // SAFETY: as in `word64`, for a 4-aligned `u32`.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(at).cast::<u32>()) }
    }

    /// Start of ring `r`'s data area.
    fn data(&self, r: usize) -> *mut u8 {
        // SAFETY: `CONTROL_BYTES + r * ring_bytes` (r ≤ 1) is inside the mapping.
        unsafe { self.base.as_ptr().add(CONTROL_BYTES + r * self.ring_bytes) }
    }

    /// Copies `src` into ring `r` at `offset`.
    fn put(&self, r: usize, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= self.ring_bytes, "write past the ring");
        // SAFETY: the range is inside ring `r`'s data area (asserted); `src` is private
        // memory, so the two do not overlap. The peer may touch these bytes only by breaking
        // the protocol, and then reads or writes plain bytes, which any value is.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.data(r).add(offset), src.len()) }
    }

    /// Copies ring `r`'s bytes at `offset` into `dst`.
    /// As [`get`](Self::get), into memory not yet initialised (all of `dst` is written).
    fn get_uninit(&self, r: usize, offset: usize, dst: &mut [std::mem::MaybeUninit<u8>]) {
        assert!(offset + dst.len() <= self.ring_bytes, "read past the ring");
        // SAFETY: as in `get`; `dst` is private memory, valid for `dst.len()` bytes of
        // writes, and `MaybeUninit<u8>` has the layout of `u8`.
        unsafe {
            ptr::copy_nonoverlapping(
                self.data(r).add(offset),
                dst.as_mut_ptr().cast::<u8>(),
                dst.len(),
            );
        }
    }

    fn get(&self, r: usize, offset: usize, dst: &mut [u8]) {
        assert!(offset + dst.len() <= self.ring_bytes, "read past the ring");
        // SAFETY: as in `put`; `dst` is private memory. A peer writing these bytes meanwhile
        // changes only what was copied, which the caller parses as untrusted input.
        unsafe { ptr::copy_nonoverlapping(self.data(r).add(offset), dst.as_mut_ptr(), dst.len()) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping `map` made; no reference into it outlives
        // `self` (accessors borrow `self`).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// The writing end of one ring.
#[derive(Debug)]
pub struct Writer {
    seg: Arc<Segment>,
    ring: usize,
    /// Our own index: never read back from the segment.
    head: u64,
    /// The head as last stored in the segment (records up to `head` beyond it are written
    /// but not yet visible to the reader: see [`write`](Self::write)).
    published: u64,
    /// The reader's tail as last read (and checked): it only grows, so room counted against
    /// it is room there is; read again only when it shows too little.
    tail_seen: u64,
}

impl Writer {
    fn new(seg: Arc<Segment>, ring: usize) -> Writer {
        // Both ends start at 0 (the client writes only after the setup), whatever the
        // segment says: our index is never read from it.
        Writer {
            seg,
            ring,
            head: 0,
            published: 0,
            tail_seen: 0,
        }
    }

    /// The largest record this ring takes.
    pub fn max_record(&self) -> usize {
        max_record(self.seg.ring_bytes)
    }

    /// The reader's tail, checked against our head.
    fn tail(&mut self) -> Result<u64, RingError> {
        let tail = self.seg.word64(tail_at(self.ring)).load(Ordering::SeqCst);
        let used = self.head.wrapping_sub(tail);
        if used > self.seg.ring_bytes as u64 || !tail.is_multiple_of(ALIGN) {
            return Err(RingError::Index {
                what: "the reader's tail is not within one ring behind the writer's head",
                head: self.head,
                tail,
                ring_bytes: self.seg.ring_bytes,
            });
        }
        self.tail_seen = tail;
        Ok(tail)
    }

    /// Appends one record made of `parts` and publishes it. `Ok(false)` when the ring has no
    /// room for it now (nothing written; see [`wait_for_space`](Self::wait_for_space)).
    ///
    /// # Errors
    /// [`RingError::TooLarge`] for a record over [`max_record`](Self::max_record);
    /// [`RingError::Index`] when the reader's tail is impossible.
    pub fn try_write(&mut self, parts: &[&[u8]]) -> Result<bool, RingError> {
        if !self.write(parts)? {
            return Ok(false);
        }
        self.publish();
        Ok(true)
    }

    /// Appends one record made of `parts` without publishing it: a burst of records is
    /// published by one [`publish`](Self::publish) (one store of the head the reader polls
    /// instead of one per record). Publish before [`wake_needed`](Self::wake_needed) and
    /// [`wait_for_space`](Self::wait_for_space): the reader sees nothing unpublished.
    /// `Ok(false)` when the ring has no room for it now (nothing written).
    ///
    /// # Errors
    /// As [`try_write`](Self::try_write).
    pub fn write(&mut self, parts: &[&[u8]]) -> Result<bool, RingError> {
        self.write_unpublished(parts)
    }

    /// Makes every record written so far visible to the reader (a no-op when none is new).
    pub fn publish(&mut self) {
        if self.published != self.head {
            self.seg
                .word64(head_at(self.ring))
                .store(self.head, Ordering::SeqCst);
            self.published = self.head;
        }
    }

    /// Records written but not yet published.
    pub fn unpublished(&self) -> bool {
        self.published != self.head
    }

    /// Writes a record (and a wrap marker if needed) without publishing it; `head` advances
    /// privately. Returns false when there is no room.
    fn write_unpublished(&mut self, parts: &[&[u8]]) -> Result<bool, RingError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.max_record() {
            return Err(RingError::TooLarge {
                len,
                max: self.max_record(),
            });
        }
        let cap = self.seg.ring_bytes as u64;
        let need = padded(len);
        let offset = self.head % cap;
        let to_end = cap - offset;
        let wrap = need > to_end;
        let total = if wrap { to_end + need } else { need };
        // Room against the tail last seen first (a read of the reader's cache line saved),
        // then against the tail as it is now.
        if total > cap - self.head.wrapping_sub(self.tail_seen) {
            let tail = self.tail()?;
            if total > cap - self.head.wrapping_sub(tail) {
                return Ok(false);
            }
        }
        let r = self.ring;
        let mut at = offset as usize;
        if wrap {
            self.seg.put(r, at, &WRAP.to_ne_bytes());
            at = 0;
        }
        self.seg.put(r, at, &(len as u32).to_ne_bytes());
        let mut p = at + LEN_BYTES;
        for part in parts {
            self.seg.put(r, p, part);
            p += part.len();
        }
        self.head = self.head.wrapping_add(total);
        Ok(true)
    }

    /// Writes the first `keep` bytes of a record and never publishes it: what a writer that
    /// dies in the middle of a record leaves behind (fault tests).
    ///
    /// # Errors
    /// As [`try_write`](Self::try_write).
    #[doc(hidden)]
    pub fn write_torn(&mut self, record: &[u8], keep: usize) -> Result<bool, RingError> {
        let saved = self.head;
        let ok = self.write_unpublished(&[&record[..keep.min(record.len())]])?;
        // The length prefix claims the whole record; the head stays unpublished.
        if ok {
            let offset = (saved % self.seg.ring_bytes as u64) as usize;
            self.seg
                .put(self.ring, offset, &(record.len() as u32).to_ne_bytes());
        }
        self.head = saved;
        Ok(ok)
    }

    /// Stores `head` as given (fault tests: a client scribbling on its indices).
    #[doc(hidden)]
    pub fn scribble_head(&self, head: u64) {
        self.seg
            .word64(head_at(self.ring))
            .store(head, Ordering::SeqCst);
    }

    /// After a batch of writes: whether the reader was asleep and must be woken (clears its
    /// flag, so one wake-up per sleep).
    pub fn wake_needed(&mut self) -> bool {
        // The reader may sleep only on what it could see.
        self.publish();
        self.seg
            .word32(sleeping_at(self.ring))
            .swap(0, Ordering::SeqCst)
            != 0
    }

    /// The ring was full: asks the reader for a wake-up once it makes room. Returns true when
    /// it is still full (sleep until woken), false when room appeared meanwhile (write again).
    ///
    /// # Errors
    /// [`RingError::Index`] when the reader's tail is impossible.
    pub fn wait_for_space(&mut self, len: usize) -> Result<bool, RingError> {
        // A reader that sees nothing new would never make room.
        self.publish();
        self.seg
            .word32(waiting_at(self.ring))
            .store(1, Ordering::SeqCst);
        let cap = self.seg.ring_bytes as u64;
        let free = cap - self.head.wrapping_sub(self.tail()?);
        let offset = self.head % cap;
        let need = padded(len);
        let total = if need > cap - offset {
            cap - offset + need
        } else {
            need
        };
        Ok(total > free)
    }
}

/// Bytes of one shared read buffer of [`Reader::try_read_shared`]: 16 records of 1 KiB
/// share an allocation, and a record kept alive pins at most this much.
pub const READ_BUFFER: usize = 16 * 1024;

/// Most bytes of earlier read buffers that [`ReadBuffers`] keeps for use again.
pub const RETIRED_BYTES: usize = 1 << 20;

/// The buffers [`Reader::try_read_shared`] reads records into. Records are cut one after
/// the other from the current buffer of at least [`READ_BUFFER`] bytes (or of the record's
/// size if larger). When it is full, the buffer is retired and the oldest retired buffer
/// whose records have all been dropped is used again from its start; only when there is
/// none is a new one allocated. Retired buffers are kept up to [`RETIRED_BYTES`] in all
/// (the oldest is let go beyond that).
///
/// Why: a client reads callbacks while it waits for an answer and dispatches them later, so
/// the records of several buffers are alive at once and are dropped oldest first. With one
/// buffer each full buffer meant a new allocation, and the allocator, freeing a run of them
/// together, handed the pages back to the kernel and faulted them in again (zeroed) for the
/// next ones: about 50 000 page faults a second for three load generators at the maximum
/// at MTU 9000 (docs/performance.md).
#[derive(Debug, Default)]
pub struct ReadBuffers {
    current: BytesMut,
    /// Allocation size of `current`.
    current_size: usize,
    /// Retired buffers, oldest first, and their allocation sizes.
    retired: std::collections::VecDeque<(BytesMut, usize)>,
    retired_bytes: usize,
}

impl ReadBuffers {
    /// No buffer yet: the first read allocates.
    pub fn new() -> ReadBuffers {
        ReadBuffers::default()
    }

    /// A buffer with at least `len` bytes of free room, empty.
    fn room_for(&mut self, len: usize) -> &mut BytesMut {
        // `current` is always empty here (every read splits off all it wrote).
        if self.current.capacity() >= len || self.current.try_reclaim(len) {
            return &mut self.current;
        }
        // Only a whole allocation counts (all its records dropped), not the few bytes left
        // at its end when it was retired.
        let reusable = self
            .retired
            .front_mut()
            .is_some_and(|(b, size)| *size >= len && b.try_reclaim(*size));
        let (next, size) = if reusable {
            let (b, size) = self.retired.pop_front().expect("checked above");
            self.retired_bytes -= size;
            (b, size)
        } else {
            let size = READ_BUFFER.max(len);
            (BytesMut::with_capacity(size), size)
        };
        let old = std::mem::replace(&mut self.current, next);
        let old_size = std::mem::replace(&mut self.current_size, size);
        if old_size > 0 && old_size <= RETIRED_BYTES {
            self.retired.push_back((old, old_size));
            self.retired_bytes += old_size;
            while self.retired_bytes > RETIRED_BYTES {
                let (_, size) = self.retired.pop_front().expect("bytes are counted");
                self.retired_bytes -= size;
            }
        }
        &mut self.current
    }
}

/// The reading end of one ring.
#[derive(Debug)]
pub struct Reader {
    seg: Arc<Segment>,
    ring: usize,
    /// Our own index: never read back from the segment.
    tail: u64,
}

impl Reader {
    fn new(seg: Arc<Segment>, ring: usize) -> Reader {
        Reader { seg, ring, tail: 0 }
    }

    /// The writer's head, checked against our tail.
    fn head(&self) -> Result<u64, RingError> {
        let head = self.seg.word64(head_at(self.ring)).load(Ordering::SeqCst);
        check_head(head, self.tail, self.seg.ring_bytes)?;
        Ok(head)
    }

    /// Takes the next record, if one is published, into `out` (cleared first): one copy out
    /// of the segment. `Ok(false)` when the ring is empty.
    ///
    /// # Errors
    /// [`RingError`] when the writer broke the ring's rules; the ring cannot be read further.
    pub fn try_read(&mut self, out: &mut Vec<u8>) -> Result<bool, RingError> {
        let Some((at, len, step)) = self.next_record()? else {
            return Ok(false);
        };
        out.clear();
        out.resize(len, 0);
        self.seg.get(self.ring, at, out);
        self.consume(step);
        Ok(true)
    }

    /// Takes the next record, if one is published, as [`Bytes`] that share an allocation of
    /// `buffers` with the records read before it: one copy out of the segment and, in a
    /// steady state, no allocation per record. `Ok(None)` when the ring is empty.
    /// [`ReadBuffers`] says how allocations are used again; a record kept alive keeps its
    /// whole buffer allocated: copy it to keep it long.
    ///
    /// # Errors
    /// As [`try_read`](Self::try_read).
    pub fn try_read_shared(
        &mut self,
        buffers: &mut ReadBuffers,
    ) -> Result<Option<Bytes>, RingError> {
        let Some((at, len, step)) = self.next_record()? else {
            return Ok(None);
        };
        let buffer = buffers.room_for(len);
        self.seg
            .get_uninit(self.ring, at, &mut buffer.spare_capacity_mut()[..len]);
        // SAFETY: `get_uninit` wrote the first `len` bytes of the spare capacity, which holds
        // at least `len` (made so by `room_for`).
        unsafe { buffer.set_len(len) };
        let record = buffer.split_to(len).freeze();
        self.consume(step);
        Ok(Some(record))
    }

    /// The next published record, wrap markers skipped: where its bytes start in the data
    /// area, its length, and how far the tail moves past it ([`consume`](Self::consume)).
    fn next_record(&mut self) -> Result<Option<(usize, usize, u64)>, RingError> {
        let cap = self.seg.ring_bytes;
        loop {
            let head = self.head()?;
            let avail = head.wrapping_sub(self.tail);
            if avail == 0 {
                return Ok(None);
            }
            let offset = (self.tail % cap as u64) as usize;
            let mut len = [0u8; LEN_BYTES];
            self.seg.get(self.ring, offset, &mut len);
            let len = u32::from_ne_bytes(len);
            match check_record(len, offset, avail, cap)? {
                Step::Wrap(skip) => self.consume(skip),
                Step::Record(step) => return Ok(Some((offset + LEN_BYTES, len as usize, step))),
            }
        }
    }

    /// Moves the tail past what was read, and publishes it.
    fn consume(&mut self, step: u64) {
        self.tail = self.tail.wrapping_add(step);
        self.publish_tail();
    }

    fn publish_tail(&self) {
        self.seg
            .word64(tail_at(self.ring))
            .store(self.tail, Ordering::SeqCst);
    }

    /// After reading: whether the writer waits for room and must be woken (clears its flag).
    pub fn space_wake_needed(&self) -> bool {
        self.seg
            .word32(waiting_at(self.ring))
            .swap(0, Ordering::SeqCst)
            != 0
    }

    /// The ring looked empty: asks the writer for a wake-up, then looks again. Returns true
    /// when it is still empty (sleep until woken), false when a record arrived meanwhile.
    ///
    /// # Errors
    /// [`RingError::Index`] when the writer's head is impossible.
    pub fn prepare_sleep(&self) -> Result<bool, RingError> {
        self.seg
            .word32(sleeping_at(self.ring))
            .store(1, Ordering::SeqCst);
        Ok(self.head()? == self.tail)
    }
}

/// What the record at the reader's tail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A wrap marker: skip this many bytes to offset 0.
    Wrap(u64),
    /// A record: its bytes follow the length; advance this many.
    Record(u64),
}

fn padded(len: usize) -> u64 {
    (LEN_BYTES as u64 + len as u64).next_multiple_of(ALIGN)
}

/// The checks on a writer's head (see the module documentation).
fn check_head(head: u64, tail: u64, cap: usize) -> Result<(), RingError> {
    let bad = |what| {
        Err(RingError::Index {
            what,
            head,
            tail,
            ring_bytes: cap,
        })
    };
    if !head.is_multiple_of(ALIGN) {
        return bad("the writer's head is not 8-aligned");
    }
    if head.wrapping_sub(tail) > cap as u64 {
        return bad("the writer's head is not within one ring ahead of the reader's tail");
    }
    Ok(())
}

/// The checks on a record's length `len` at `offset` with `avail` bytes published.
fn check_record(len: u32, offset: usize, avail: u64, cap: usize) -> Result<Step, RingError> {
    let to_end = (cap - offset) as u64;
    let bad = |why| Err(RingError::Record { len, offset, why });
    if len == WRAP {
        if to_end > avail {
            return bad("a wrap marker past the bytes published");
        }
        if offset == 0 {
            return bad("a wrap marker at offset 0");
        }
        return Ok(Step::Wrap(to_end));
    }
    if len as usize > max_record(cap) {
        return bad("longer than the largest record");
    }
    let step = padded(len as usize);
    if step > to_end {
        return bad("past the end of the ring");
    }
    if step > avail {
        return bad("past the bytes published");
    }
    Ok(Step::Record(step))
}

/// Fuzzing entry points (`ais/fuzz` target `shm_ring`).
pub mod fuzzing {
    use super::*;

    /// A hostile client's segment as the executive reads it: the first 8 bytes of `data`
    /// are the request ring's head index, the next 8 its reader-sleeping and writer-waiting
    /// flags, the rest its data area (from offset 0). Reads everything the reader accepts
    /// until the ring is empty or it reports an error, once with [`Reader::try_read`] (as
    /// the executive reads) and once with [`Reader::try_read_shared`] (as the client library
    /// reads). Every record returned lies within the bytes the writer published and the
    /// reader never panics or reads outside the segment.
    ///
    /// # Panics
    /// When the reader accepts a record it should not have (a fuzzing failure).
    pub fn fuzz_ring_read(data: &[u8]) {
        let seg = Arc::new(Segment::create(MIN_RING_BYTES).expect("memfd"));
        let word = |at: usize| {
            let mut w = [0u8; 8];
            if let Some(src) = data.get(at..) {
                let n = src.len().min(8);
                w[..n].copy_from_slice(&src[..n]);
            }
            u64::from_ne_bytes(w)
        };
        seg.word64(head_at(0)).store(word(0), Ordering::Relaxed);
        let flags = word(8);
        seg.word32(sleeping_at(0))
            .store(flags as u32, Ordering::Relaxed);
        seg.word32(waiting_at(0))
            .store((flags >> 32) as u32, Ordering::Relaxed);
        let rest = data.get(16..).unwrap_or_default();
        let take = rest.len().min(MIN_RING_BYTES);
        seg.put(0, 0, &rest[..take]);
        // As the executive reads it (a record of its own each), then again from the start
        // into shared buffers (as the client library reads its ring).
        let mut out = Vec::new();
        read_all(&seg, |r| Ok(r.try_read(&mut out)?.then_some(out.len())));
        let mut buffers = ReadBuffers::new();
        read_all(&seg, |r| {
            Ok(r.try_read_shared(&mut buffers)?.map(|b| b.len()))
        });
    }

    /// Reads `seg`'s request ring from the start with `read` (the length of the record it
    /// took, `None` when empty) until it is empty or reports an error, checking that every
    /// record fits and that no more is consumed than the ring holds.
    fn read_all(
        seg: &Arc<Segment>,
        mut read: impl FnMut(&mut Reader) -> Result<Option<usize>, RingError>,
    ) {
        let (_w, mut r) = seg.exec_ends();
        let mut consumed = 0u64;
        for _ in 0..MIN_RING_BYTES {
            let before = r.tail;
            match read(&mut r) {
                Ok(Some(len)) => {
                    assert!(len <= max_record(MIN_RING_BYTES));
                    consumed += r.tail.wrapping_sub(before);
                    assert!(consumed <= MIN_RING_BYTES as u64);
                }
                Ok(None) | Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Writer, Reader, Writer, Reader) {
        pair_of(MIN_RING_BYTES)
    }

    /// Both ends of both rings of a segment whose rings hold `ring_bytes` each.
    fn pair_of(ring_bytes: usize) -> (Writer, Reader, Writer, Reader) {
        let seg = Arc::new(Segment::create(ring_bytes).unwrap());
        let (cw, cr) = seg.client_ends();
        let (ew, er) = seg.exec_ends();
        (cw, cr, ew, er)
    }

    #[test]
    fn records_go_through_in_order_both_ways_and_across_the_wrap() {
        let (mut cw, mut cr, mut ew, mut er) = pair();
        let mut out = Vec::new();
        // Many more bytes than the ring holds, in odd sizes, so the wrap is crossed often.
        for i in 0..5000u32 {
            let len = (i as usize * 37) % 3000;
            let rec: Vec<u8> = (0..len).map(|b| (b as u32 ^ i) as u8).collect();
            assert!(cw.try_write(&[&i.to_le_bytes(), &rec]).unwrap());
            assert!(er.try_read(&mut out).unwrap());
            assert_eq!(&out[..4], &i.to_le_bytes());
            assert_eq!(&out[4..], &rec[..]);
            assert!(ew.try_write(&[&out]).unwrap());
            assert!(cr.try_read(&mut out).unwrap());
            assert_eq!(&out[4..], &rec[..]);
        }
        assert!(!er.try_read(&mut out).unwrap());
        assert!(!cr.try_read(&mut out).unwrap());
    }

    /// Shared reads return the records written, small ones sharing one buffer, a record
    /// larger than the buffer in one of its own, across the wrap.
    #[test]
    fn shared_reads_return_the_records_and_share_buffers() {
        let (mut cw, _cr, _ew, mut er) = pair();
        let mut buffer = ReadBuffers::new();
        let mut kept = std::collections::VecDeque::new();
        for i in 0..3000u32 {
            let len = if i % 500 == 7 {
                READ_BUFFER + 100
            } else {
                (i as usize * 37) % 2000
            };
            let rec: Vec<u8> = (0..len).map(|b| (b as u32 ^ i) as u8).collect();
            assert!(cw.try_write(&[&rec]).unwrap());
            let got = er.try_read_shared(&mut buffer).unwrap().unwrap();
            assert_eq!(got[..], rec[..]);
            if len > READ_BUFFER {
                assert!(
                    buffer.current.capacity() == 0,
                    "a large record has a buffer of its own"
                );
            }
            // Records kept alive stay intact while later ones are read.
            kept.push_back((got, rec));
            if kept.len() > 20 {
                kept.pop_front();
            }
            assert!(kept.iter().all(|(got, rec)| got == rec));
        }
        assert!(er.try_read_shared(&mut buffer).unwrap().is_none());
        // Buffers are really shared: 100 records of 100 bytes come from few allocations.
        let mut starts = std::collections::BTreeSet::new();
        let mut prev_end = None;
        for _ in 0..100 {
            assert!(cw.try_write(&[&[5u8; 100]]).unwrap());
            let got = er.try_read_shared(&mut buffer).unwrap().unwrap();
            if prev_end != Some(got.as_ptr()) {
                starts.insert(got.as_ptr() as usize);
            }
            prev_end = Some(got.as_ptr().wrapping_add(got.len()));
        }
        assert!(
            starts.len() <= 2,
            "{} buffers for 10 000 bytes",
            starts.len()
        );
    }

    /// Counts this thread's heap allocations (for the test below; other threads' are not
    /// counted, so tests running in parallel do not disturb it).
    struct CountingAlloc;

    thread_local! {
        static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    // SAFETY: every call is passed on to `System` unchanged; the counter is a thread-local
    // `Cell` of a `Copy` type with a const initialiser (no allocation, no destructor).
    unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            // SAFETY: the caller's contract is `System`'s.
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            // SAFETY: as above.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(
            &self,
            ptr: *mut u8,
            layout: std::alloc::Layout,
            new_size: usize,
        ) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            // SAFETY: as above.
            unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: CountingAlloc = CountingAlloc;

    fn allocations() -> u64 {
        ALLOCATIONS.with(std::cell::Cell::get)
    }

    /// A reader that drops its records reads into the same allocation again, large records
    /// included; one that keeps a record gets a new allocation and the kept record stays
    /// intact.
    #[test]
    fn shared_reads_use_the_buffer_again_once_records_are_dropped() {
        let (mut cw, _cr, _ew, mut er) = pair_of(1 << 20);
        let mut buffer = ReadBuffers::new();
        for len in [100, READ_BUFFER * 3, 70_000] {
            let rec = vec![len as u8; len];
            // Two reads to settle the buffer's size.
            for _ in 0..2 {
                assert!(cw.try_write(&[&rec]).unwrap());
                drop(er.try_read_shared(&mut buffer).unwrap().unwrap());
            }
            let before = allocations();
            for _ in 0..20 {
                assert!(cw.try_write(&[&rec]).unwrap());
                let got = er.try_read_shared(&mut buffer).unwrap().unwrap();
                assert_eq!(got[..], rec[..]);
            }
            assert_eq!(
                allocations() - before,
                0,
                "{len}-byte records read and dropped took new allocations"
            );
            // Kept: the next record that does not fit cannot use that allocation.
            assert!(cw.try_write(&[&rec]).unwrap());
            let kept = er.try_read_shared(&mut buffer).unwrap().unwrap();
            let other = vec![0xeeu8; len.max(READ_BUFFER + 1)];
            let before = allocations();
            assert!(cw.try_write(&[&other]).unwrap());
            let got = er.try_read_shared(&mut buffer).unwrap().unwrap();
            assert_eq!(got[..], other[..]);
            assert_eq!(kept[..], rec[..], "a kept record was overwritten");
            assert!(
                allocations() > before,
                "no new allocation beside a kept record"
            );
        }
    }

    /// A reader that keeps many records and drops them oldest first (a client's queue of
    /// callbacks, read while it waits for an answer) uses its earlier buffers again: no
    /// allocation in the steady state, and every kept record stays intact.
    #[test]
    fn shared_reads_kept_in_a_queue_use_retired_buffers_again() {
        let (mut cw, _cr, _ew, mut er) = pair_of(1 << 20);
        let mut buffers = ReadBuffers::new();
        // 100 records of 1 000 bytes alive at once: six or seven buffers' worth.
        let mut queue = std::collections::VecDeque::new();
        let mut read = |i: u32, queue: &mut std::collections::VecDeque<(Bytes, u32)>, keep| {
            assert!(cw.try_write(&[&[i as u8; 1000]]).unwrap());
            let got = er.try_read_shared(&mut buffers).unwrap().unwrap();
            queue.push_back((got, i));
            if queue.len() > keep {
                queue.pop_front();
            }
        };
        for i in 0..1000 {
            read(i, &mut queue, 100);
        }
        let before = allocations();
        for i in 1000..5000 {
            read(i, &mut queue, 100);
        }
        assert_eq!(
            allocations() - before,
            0,
            "records dropped oldest first still took new allocations"
        );
        assert!(
            queue
                .iter()
                .all(|(got, i)| got.len() == 1000 && got.iter().all(|&b| b == *i as u8)),
            "a kept record was overwritten"
        );
        // 3 000 records kept at once (3 MB): the retired buffers stay within RETIRED_BYTES.
        let mut all = std::collections::VecDeque::new();
        for i in 0..3000 {
            read(i, &mut all, usize::MAX);
        }
        assert!(all.len() == 3000 && buffers.retired_bytes <= RETIRED_BYTES);
        assert!(
            all.iter()
                .all(|(got, i)| got.iter().all(|&b| b == *i as u8)),
            "a kept record was overwritten"
        );
    }

    #[test]
    fn a_full_ring_refuses_until_read_and_asks_for_a_wake_up() {
        let (mut cw, _cr, _ew, mut er) = pair();
        let rec = vec![7u8; 1000];
        let mut n = 0;
        while cw.try_write(&[&rec]).unwrap() {
            n += 1;
        }
        assert_eq!(n, MIN_RING_BYTES / 1008);
        assert!(cw.wait_for_space(rec.len()).unwrap(), "still full");
        let mut out = Vec::new();
        assert!(er.try_read(&mut out).unwrap());
        assert!(er.space_wake_needed(), "the writer asked to be woken");
        assert!(!er.space_wake_needed(), "once");
        assert!(!cw.wait_for_space(rec.len()).unwrap(), "room now");
        assert!(cw.try_write(&[&rec]).unwrap());
    }

    #[test]
    fn a_sleeping_reader_is_woken_once_per_sleep() {
        let (mut cw, _cr, _ew, mut er) = pair();
        assert!(!cw.wake_needed(), "nobody sleeps yet");
        assert!(er.prepare_sleep().unwrap(), "empty");
        assert!(cw.try_write(&[b"a"]).unwrap());
        assert!(cw.try_write(&[b"b"]).unwrap());
        assert!(cw.wake_needed());
        assert!(!cw.wake_needed(), "one wake-up for the batch");
        assert!(!er.prepare_sleep().unwrap(), "records wait: do not sleep");
        let mut out = Vec::new();
        assert!(er.try_read(&mut out).unwrap());
        assert_eq!(out, b"a");
    }

    #[test]
    fn a_burst_is_invisible_until_published_and_a_wake_up_publishes_it() {
        let (mut cw, _cr, _ew, mut er) = pair();
        let mut out = Vec::new();
        assert!(er.prepare_sleep().unwrap(), "empty");
        assert!(cw.write(&[b"a"]).unwrap());
        assert!(cw.write(&[b"b", b"c"]).unwrap());
        assert!(cw.unpublished());
        assert!(!er.try_read(&mut out).unwrap(), "nothing published yet");
        assert!(cw.wake_needed(), "the reader sleeps");
        assert!(!cw.unpublished(), "the wake-up published the burst first");
        assert!(er.try_read(&mut out).unwrap());
        assert_eq!(out, b"a");
        assert!(er.try_read(&mut out).unwrap());
        assert_eq!(out, b"bc");
        assert!(!er.try_read(&mut out).unwrap());
        // A full ring: the writer waiting for room publishes what it wrote, or the reader
        // would never make any.
        let rec = vec![7u8; 1000];
        let mut n = 0;
        while cw.write(&[&rec]).unwrap() {
            n += 1;
        }
        assert!(n > 0 && cw.unpublished());
        assert!(cw.wait_for_space(rec.len()).unwrap(), "still full");
        assert!(!cw.unpublished());
        for _ in 0..n {
            assert!(er.try_read(&mut out).unwrap());
            assert_eq!(out, rec);
        }
        assert!(er.space_wake_needed());
        assert!(
            cw.write(&[&rec]).unwrap(),
            "room against the tail read again"
        );
    }

    #[test]
    fn a_corrupt_tail_is_reported_when_room_is_counted_again() {
        let (mut cw, ..) = pair();
        let rec = vec![1u8; 1000];
        assert!(cw.try_write(&[&rec]).unwrap());
        // A reader scribbling on its tail (not on a record boundary).
        cw.seg.word64(tail_at(cw.ring)).store(3, Ordering::SeqCst);
        let mut result = Ok(true);
        for _ in 0..MIN_RING_BYTES / 1008 + 1 {
            result = cw.try_write(&[&rec]);
            if result.is_err() {
                break;
            }
        }
        let e = result.unwrap_err();
        assert!(matches!(e, RingError::Index { .. }), "{e}");
    }

    #[test]
    fn too_large_records_are_refused_before_writing() {
        let (mut cw, ..) = pair();
        let big = vec![0u8; max_record(MIN_RING_BYTES) + 1];
        assert!(matches!(
            cw.try_write(&[&big]),
            Err(RingError::TooLarge { .. })
        ));
        assert!(cw.try_write(&[&big[1..]]).unwrap());
    }

    #[test]
    fn a_torn_record_is_never_seen() {
        let (mut cw, _cr, _ew, mut er) = pair();
        assert!(cw.try_write(&[b"whole"]).unwrap());
        assert!(cw.write_torn(&[9u8; 500], 100).unwrap());
        let mut out = Vec::new();
        assert!(er.try_read(&mut out).unwrap());
        assert_eq!(out, b"whole");
        assert!(
            !er.try_read(&mut out).unwrap(),
            "the torn record is invisible"
        );
    }

    #[test]
    fn corrupt_heads_are_reported() {
        let (cw, _cr, _ew, mut er) = pair();
        let mut out = Vec::new();
        for head in [3, MIN_RING_BYTES as u64 + 8, u64::MAX - 7] {
            cw.scribble_head(head);
            let e = er.try_read(&mut out).unwrap_err();
            assert!(matches!(e, RingError::Index { .. }), "{e}");
            assert!(e.to_string().contains("ring index corrupt"), "{e}");
        }
    }

    #[test]
    fn corrupt_lengths_are_reported() {
        let cap = 1024;
        assert_eq!(check_record(8, 0, 16, cap), Ok(Step::Record(16)));
        assert!(
            check_record(13, 0, 16, cap).is_err(),
            "past the bytes published"
        );
        assert!(
            check_record(600, 0, 1024, cap).is_err(),
            "over the largest record"
        );
        assert!(check_record(100, 960, 1024, cap).is_err(), "past the end");
        assert_eq!(check_record(WRAP, 960, 64, cap), Ok(Step::Wrap(64)));
        assert!(
            check_record(WRAP, 960, 56, cap).is_err(),
            "wrap past the published bytes"
        );
        assert!(check_record(WRAP, 0, 64, cap).is_err(), "wrap at 0");
        assert!(check_head(12, 0, cap).is_err());
        assert!(check_head(1032, 0, cap).is_err());
        assert!(check_head(8, 16, cap).is_err(), "head behind tail");
        assert!(check_head(1024, 0, cap).is_ok());
    }

    #[test]
    fn a_segment_passed_over_a_socket_is_shared() {
        use crate::unix::{Recv, SeqpacketConn};
        let (a, b) = SeqpacketConn::pair().unwrap();
        let seg = Arc::new(Segment::create(MIN_RING_BYTES).unwrap());
        a.send_with_fd(&[b"setup"], seg.fd()).unwrap();
        let mut buf = [0u8; 16];
        let (r, fd) = b.try_recv_with_fd(&mut buf).unwrap().unwrap();
        assert_eq!(r, Recv::Packet(5));
        let theirs = Arc::new(Segment::open(fd.unwrap(), MIN_RING_BYTES).unwrap());
        let (mut cw, _) = seg.client_ends();
        let (_, mut er) = theirs.exec_ends();
        assert!(cw.try_write(&[b"through the memfd"]).unwrap());
        let mut out = Vec::new();
        assert!(er.try_read(&mut out).unwrap());
        assert_eq!(out, b"through the memfd");
        // A packet without a descriptor has none.
        a.send(&[b"x"]).unwrap();
        let (r, fd) = b.try_recv_with_fd(&mut buf).unwrap().unwrap();
        assert_eq!((r, fd.is_none()), (Recv::Packet(1), true));
        assert!(b.try_recv_with_fd(&mut buf).unwrap().is_none());
    }

    #[test]
    fn open_checks_seals_and_size() {
        let ok = Segment::create_sized_fd(segment_bytes(MIN_RING_BYTES), true).unwrap();
        Segment::open(ok, MIN_RING_BYTES).unwrap();
        let small = Segment::create_sized_fd(segment_bytes(MIN_RING_BYTES) - 4096, true).unwrap();
        let e = Segment::open(small, MIN_RING_BYTES).unwrap_err();
        assert!(matches!(e, ShmError::WrongSize { .. }), "{e}");
        assert!(e.to_string().contains("expected"), "{e}");
        let unsealed = Segment::create_sized_fd(segment_bytes(MIN_RING_BYTES), false).unwrap();
        let e = Segment::open(unsealed, MIN_RING_BYTES).unwrap_err();
        assert!(matches!(e, ShmError::NotSealed(_)), "{e}");
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let e = Segment::open(file.into(), MIN_RING_BYTES).unwrap_err();
        assert!(matches!(e, ShmError::NotSealed(_)), "{e}");
        assert!(matches!(
            Segment::create(1000),
            Err(ShmError::RingSize(1000))
        ));
    }

    #[test]
    fn the_fuzz_body_survives_random_input() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let len = (round * 97) % 9000;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly small values, so that some heads and lengths are plausible.
                    if x.is_multiple_of(3) {
                        (x >> 8) as u8
                    } else {
                        (x % 16) as u8
                    }
                })
                .collect();
            fuzzing::fuzz_ring_read(&data);
        }
    }

    #[test]
    fn two_threads_exchange_many_records_in_order() {
        let seg = Arc::new(Segment::create(MIN_RING_BYTES).unwrap());
        let (mut w, _) = seg.client_ends();
        let (_, mut r) = seg.exec_ends();
        const N: u32 = 200_000;
        let t = std::thread::spawn(move || {
            for i in 0..N {
                while !w.try_write(&[&i.to_le_bytes(), &[0u8; 60]]).unwrap() {
                    std::thread::yield_now();
                }
            }
        });
        let mut out = Vec::new();
        let mut next = 0u32;
        while next < N {
            if r.try_read(&mut out).unwrap() {
                assert_eq!(u32::from_le_bytes(out[..4].try_into().unwrap()), next);
                next += 1;
            } else {
                std::thread::yield_now();
            }
        }
        t.join().unwrap();
    }
}
