//! Checkpoints, with SA Forum CKPT B.01.01 semantics (`saCkpt*`).
//!
//! A checkpoint is a named, cluster-wide set of sections (byte strings with an id and an
//! expiration time) that every node replicates. [`Ckpt::open`] returns a
//! [`CheckpointHandle`] (with [`OPEN_CREATE`] and [`Attributes`] it creates the checkpoint
//! when missing); [`Ckpt::write`], [`Ckpt::section_overwrite`] and [`Ckpt::read`] move data;
//! [`Ckpt::section_iteration_initialize`] lists sections; [`Ckpt::close`] ends the open and
//! [`Ckpt::unlink`] frees the name (the data lives until the last close, then for the
//! retention duration). The calls are [`Connection`] calls, so the [model](super) applies:
//! one request at a time, callbacks ([`CkptEvent`]) queued while waiting and handed out by
//! [`Ckpt::dispatch`].
//!
//! # Data larger than one packet
//!
//! One request travels in one IPC packet, and this library keeps each request within
//! [`REQUEST_BUDGET`] bytes (header, handle and section ids included). Larger data is cut
//! into several requests, in order, each element at increasing offsets:
//!
//! - [`Ckpt::write`]: the elements, whole while they fit, the one that does not fit cut at
//!   the end of a request and continued in the next. A write that fits one request is atomic
//!   (all elements or none, as the specification says); **a write cut into several requests is
//!   not**: when a later request fails, what the earlier ones wrote stays written. The error
//!   still names the caller's element ([`VectorError::Element`], `erroneousVectorIndex`).
//!   Writing the same data again is harmless, so the whole call can simply be repeated.
//! - [`Ckpt::section_overwrite`]: an overwrite with the first piece, then writes of the rest
//!   at their offsets (a reader in between sees the new data cut short).
//! - [`Ckpt::section_create`]: the section created with the first piece, then writes (and
//!   deleted again when they fail).
//! - [`Ckpt::read`]: reads at increasing offsets, concatenated; an element's reading stops at
//!   the first piece that comes back shorter than asked (the end of the section), so a size
//!   of `u64::MAX` reads to the end of the section.
//!
//! Once the first request of a cut operation has been accepted, the following ones are sent
//! again after `SA_AIS_ERR_TRY_AGAIN` (a full send window, or a membership change) for up to
//! [`CONTINUATION_RETRY`], so that the operation is not left half done by a transient refusal.
//!
//! # Example
//!
//! ```no_run
//! use ais_client::{self as client, ckpt::{self, Attributes, Ckpt, WriteElement, ReadElement}};
//! use bytes::Bytes;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut ckpt = Ckpt::connect(&client::default_socket())?;
//! let attributes = Attributes {
//!     creation_flags: ckpt::WR_ALL_REPLICAS,
//!     checkpoint_size: 1 << 20,
//!     retention_duration: ckpt::TIME_END,
//!     max_sections: 1,
//!     max_section_size: 1 << 20,
//!     max_section_id_size: 0,
//! };
//! let flags = ckpt::OPEN_CREATE | ckpt::OPEN_WRITE | ckpt::OPEN_READ;
//! let h = ckpt.open(b"my-state", flags, Some(attributes))?;
//! ckpt.write(h, &[WriteElement {
//!     section: Bytes::new(), // the default section
//!     offset: 0,
//!     data: Bytes::from_static(b"hello"),
//! }])?;
//! let data = ckpt.read(h, &[ReadElement { section: Bytes::new(), offset: 0, size: u64::MAX }])?;
//! assert_eq!(&data[0][..], b"hello");
//! ckpt.close(h)?;
//! # Ok(())
//! # }
//! ```

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{AisError, Connection, Error, unexpected};
use ais_proto::ckpt::{Callback, CkptProtocol, Request, Response};
use ais_proto::ipc::{HEADER_LEN, Message, Reply};

pub use ais_proto::ckpt::{
    Attributes, CHECKPOINT_COLLOCATED, CREATION_FLAGS, CheckpointInfo, Chosen, MAX_NAME,
    MAX_SECTION_ID, OPEN_CREATE, OPEN_READ, OPEN_WRITE, ReadElement, SECTION_CORRUPTED,
    SECTION_VALID, SectionDescriptor, Status, TIME_END, WR_ACTIVE_REPLICA, WR_ACTIVE_REPLICA_WEAK,
    WR_ALL_REPLICAS, WriteElement,
};

/// Most bytes of one request (and of its answer) this library sends, header, handle and
/// section ids included: `ais_proto::ipc::MAX_PAYLOAD` less 4 KiB, which is also the most
/// data the executive answers to one read ([`ais_proto::ckpt::MAX_READ`]). Data beyond it is cut over several requests (see the
/// [module documentation](self)).
pub const REQUEST_BUDGET: usize = ais_proto::ckpt::MAX_READ;

/// How long the second and later requests of a cut operation are sent again while the
/// executive answers `SA_AIS_ERR_TRY_AGAIN`.
pub const CONTINUATION_RETRY: Duration = Duration::from_secs(10);

/// First pause after a `TRY_AGAIN` of a continuation.
const RETRY_FIRST: Duration = Duration::from_micros(100);
/// Longest pause.
const RETRY_MAX: Duration = Duration::from_millis(10);

/// Bytes of a `Write` request besides its elements: header, handle, element count.
const WRITE_FIXED: usize = HEADER_LEN + 8 + 4;
/// Bytes of a write element besides its section id and data: id length, offset, data length.
const WRITE_ELEMENT: usize = 2 + 8 + 4;
/// Bytes of a `Read` request and of its `Data` answer besides their elements: both headers,
/// the handle and both counts.
const READ_FIXED: usize = 2 * HEADER_LEN + 8 + 4 + 4;
/// Bytes of a read element besides its section id and data, request and answer together: id
/// length, offset, size; data length.
const READ_ELEMENT: usize = 2 + 8 + 8 + 4;
/// Bytes of a `SectionCreate` request besides its section id and data: header, handle, id
/// flag, id length, expiration time, data length.
const CREATE_FIXED: usize = HEADER_LEN + 8 + 1 + 2 + 8 + 4;
/// Bytes of an `Overwrite` request besides its section id and data: header, handle, id
/// length, data length.
const OVERWRITE_FIXED: usize = HEADER_LEN + 8 + 2 + 4;

/// The executive's number for one open of one checkpoint by one connection
/// (`SaCkptCheckpointHandleT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckpointHandle(pub u64);

/// The executive's number for one section iteration (`SaCkptSectionIterationHandleT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionIterator(pub u64);

/// A callback of a CKPT connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CkptEvent {
    /// The outcome of [`Ckpt::open_async`] (`saCkptCheckpointOpenCallback`).
    Open {
        /// The caller's number.
        invocation: u64,
        /// The handle, or why not.
        result: Result<CheckpointHandle, AisError>,
    },
    /// The outcome of [`Ckpt::synchronize_async`] (`saCkptCheckpointSynchronizeCallback`).
    Synchronize {
        /// The caller's number.
        invocation: u64,
        /// Done, or why not.
        result: Result<(), AisError>,
    },
}

/// Why [`Ckpt::write`] or [`Ckpt::read`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorError {
    /// Element `index` of the caller's vector (`erroneousVectorIndex`) cannot be written or
    /// read. For a write cut into several requests, what earlier requests wrote stays.
    #[error("element {index}: {error}")]
    Element {
        /// The caller's element.
        index: usize,
        /// Why.
        error: AisError,
    },
    /// The call failed as a whole (a bad handle, no access, the connection).
    #[error(transparent)]
    Call(#[from] Error),
}

impl VectorError {
    /// The SA Forum error code, if this is one.
    pub fn ais_error(&self) -> Option<AisError> {
        match self {
            VectorError::Element { error, .. } => Some(*error),
            VectorError::Call(e) => e.ais_error(),
        }
    }

    /// The caller's element that failed (`erroneousVectorIndex`), if one did.
    pub fn index(&self) -> Option<usize> {
        match self {
            VectorError::Element { index, .. } => Some(*index),
            VectorError::Call(_) => None,
        }
    }

    /// Whether this is [`AisError::TryAgain`].
    pub fn is_try_again(&self) -> bool {
        self.ais_error() == Some(AisError::TryAgain)
    }
}

impl From<VectorError> for Error {
    /// The error without its element index.
    fn from(e: VectorError) -> Error {
        match e {
            VectorError::Element { error, .. } => Error::Ais(error),
            VectorError::Call(e) => e,
        }
    }
}

/// A checkpoint name: 1 to [`MAX_NAME`] bytes.
fn check_name(name: &[u8]) -> Result<(), AisError> {
    if name.is_empty() {
        Err(AisError::InvalidParam)
    } else if name.len() > MAX_NAME {
        Err(AisError::NameTooLong)
    } else {
        Ok(())
    }
}

/// A section id: at most [`MAX_SECTION_ID`] bytes.
fn check_section(id: &[u8]) -> Result<(), AisError> {
    if id.len() > MAX_SECTION_ID {
        Err(AisError::InvalidParam)
    } else {
        Ok(())
    }
}

/// The open flags and attributes go together: `READ`, `WRITE`, `CREATE` and nothing else
/// (none: an open for status and iteration only); attributes exactly with `CREATE`.
fn check_open(name: &[u8], flags: u8, attributes: &Option<Attributes>) -> Result<(), AisError> {
    check_name(name)?;
    if flags & !(OPEN_READ | OPEN_WRITE | OPEN_CREATE) != 0 {
        return Err(AisError::BadFlags);
    }
    if (flags & OPEN_CREATE != 0) != attributes.is_some() {
        return Err(AisError::InvalidParam);
    }
    Ok(())
}

/// One request's part of one of the caller's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The caller's element.
    pub(crate) index: usize,
    /// Where the piece starts, from the start of the element's data.
    pub(crate) start: u64,
    /// Its data bytes.
    pub(crate) len: u64,
}

/// Cuts a vector of elements into requests of at most a budget of bytes, in order: whole
/// elements while they fit; the element that does not fit is cut at the end of the request
/// and its rest starts the next one. So only a request's last piece may continue, and every
/// request holds at least one piece (an element whose fixed bytes alone pass the budget goes
/// alone, with one byte of data at least, and the connection refuses it as too big).
#[derive(Debug)]
pub(crate) struct Splitter {
    /// Per element: bytes in a request besides its data, and its data bytes.
    elements: Vec<(usize, u64)>,
    /// Bytes of a request left for its elements.
    room: usize,
    /// The next element, and where in its data the next piece starts.
    at: (usize, u64),
}

impl Splitter {
    /// A splitter for requests of `budget` bytes of which `fixed` are not elements.
    pub(crate) fn new(
        budget: usize,
        fixed: usize,
        elements: impl IntoIterator<Item = (usize, u64)>,
    ) -> Splitter {
        Splitter {
            elements: elements.into_iter().collect(),
            room: budget.saturating_sub(fixed),
            at: (0, 0),
        }
    }

    /// The pieces of the next request, `None` when every element was handed out.
    pub(crate) fn next_request(&mut self) -> Option<Vec<Piece>> {
        let mut room = self.room;
        let mut pieces = Vec::new();
        while let Some(&(overhead, len)) = self.elements.get(self.at.0) {
            let (index, start) = self.at;
            let left = len - start;
            let want = overhead + usize::from(left > 0);
            if room < want && !pieces.is_empty() {
                break;
            }
            let fits = u64::try_from(room.saturating_sub(overhead)).unwrap_or(u64::MAX);
            let take = left.min(fits.max(1));
            pieces.push(Piece {
                index,
                start,
                len: take,
            });
            room = room.saturating_sub(overhead + usize::try_from(take).unwrap_or(usize::MAX));
            if take == left {
                self.at = (index + 1, 0);
            } else {
                self.at = (index, start + take);
                break;
            }
        }
        (!pieces.is_empty()).then_some(pieces)
    }

    /// Element `index` needs no more pieces (a read reached the end of its section).
    pub(crate) fn skip_rest(&mut self, index: usize) {
        if self.at.0 == index && self.at.1 > 0 {
            self.at = (index + 1, 0);
        }
    }
}

/// `data[start..start + len]` of a piece (pieces lie inside their element's data).
fn slice(data: &Bytes, p: &Piece) -> Bytes {
    let start = usize::try_from(p.start).expect("a piece lies inside its data");
    let end = usize::try_from(p.start + p.len).expect("a piece lies inside its data");
    data.slice(start..end)
}

/// The bytes of a request, besides `fixed`, left for data, from `budget`.
fn first_piece(budget: usize, fixed: usize, len: usize) -> usize {
    len.min(budget.saturating_sub(fixed).max(1))
}

/// A connection to the executive's CKPT service.
#[derive(Debug)]
pub struct Ckpt {
    conn: Connection<CkptProtocol>,
}

impl Ckpt {
    /// Connects to the executive at `path` (usually [`super::default_socket`]).
    ///
    /// # Errors
    /// As [`Connection::connect`]; `SA_AIS_ERR_NOT_SUPPORTED` when the executive runs no
    /// CKPT service.
    pub fn connect(path: &Path) -> Result<Ckpt, Error> {
        Connection::connect(path).map(|conn| Ckpt { conn })
    }

    /// Wraps a CKPT connection.
    pub fn from_connection(conn: Connection<CkptProtocol>) -> Ckpt {
        Ckpt { conn }
    }

    /// `saCkptCheckpointOpen`: opens checkpoint `name` with `flags` ([`OPEN_READ`],
    /// [`OPEN_WRITE`], [`OPEN_CREATE`]). With `OPEN_CREATE` (and only then) `attributes`
    /// are given: the checkpoint is created when missing, and an existing one must have the
    /// same attributes but for the retention duration.
    ///
    /// # Errors
    /// Checked here without asking the executive: `SA_AIS_ERR_INVALID_PARAM` for an empty
    /// name or attributes without `OPEN_CREATE` (or `OPEN_CREATE` without them),
    /// `SA_AIS_ERR_NAME_TOO_LONG` for a name over [`MAX_NAME`] bytes, `SA_AIS_ERR_BAD_FLAGS`
    /// for an unknown flag. From the executive: `SA_AIS_ERR_NOT_EXIST` (no such checkpoint
    /// and no `OPEN_CREATE`), `SA_AIS_ERR_EXIST` (created with other attributes),
    /// `SA_AIS_ERR_BAD_FLAGS` (unknown creation flags, or not exactly one `WR_*`),
    /// `SA_AIS_ERR_INVALID_PARAM` (inconsistent attributes), `SA_AIS_ERR_NO_RESOURCES`;
    /// otherwise as [`Connection::call`].
    pub fn open(
        &mut self,
        name: &[u8],
        flags: u8,
        attributes: Option<Attributes>,
    ) -> Result<CheckpointHandle, Error> {
        check_open(name, flags, &attributes)?;
        match self.conn.call(Request::Open {
            name: Bytes::copy_from_slice(name),
            flags,
            attributes,
        })? {
            Reply::Service(Response::Opened { handle }) => Ok(CheckpointHandle(handle)),
            other => Err(unexpected("CkptOpen", &other)),
        }
    }

    /// `saCkptCheckpointOpenAsync`: as [`open`](Self::open), the outcome coming as
    /// [`CkptEvent::Open`] with `invocation`.
    ///
    /// # Errors
    /// The checks of [`open`](Self::open), made here; otherwise as [`Connection::call`].
    pub fn open_async(
        &mut self,
        name: &[u8],
        flags: u8,
        attributes: Option<Attributes>,
        invocation: u64,
    ) -> Result<(), Error> {
        check_open(name, flags, &attributes)?;
        self.conn.ok(Request::OpenAsync {
            name: Bytes::copy_from_slice(name),
            flags,
            attributes,
            invocation,
        })
    }

    /// `saCkptCheckpointClose`: the handle is gone (its iterations too). After the last
    /// close of an unlinked checkpoint it is deleted; after the last close of a linked one
    /// its retention duration starts.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE` for a handle that is not open; otherwise as
    /// [`Connection::call`].
    pub fn close(&mut self, handle: CheckpointHandle) -> Result<(), Error> {
        self.conn.ok(Request::Close { handle: handle.0 })
    }

    /// `saCkptCheckpointUnlink`: frees `name` at once (a new checkpoint may take it); the
    /// data lives until its last close.
    ///
    /// # Errors
    /// The name checks of [`open`](Self::open), made here; `SA_AIS_ERR_NOT_EXIST`; otherwise
    /// as [`Connection::call`].
    pub fn unlink(&mut self, name: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        self.conn.ok(Request::Unlink {
            name: Bytes::copy_from_slice(name),
        })
    }

    /// `saCkptCheckpointRetentionDurationSet`: how long the checkpoint outlives its last
    /// close, nanoseconds ([`TIME_END`]: forever).
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; `SA_AIS_ERR_BAD_OPERATION` for an unlinked checkpoint;
    /// otherwise as [`Connection::call`].
    pub fn retention_duration_set(
        &mut self,
        handle: CheckpointHandle,
        duration: u64,
    ) -> Result<(), Error> {
        self.conn.ok(Request::RetentionDurationSet {
            handle: handle.0,
            duration,
        })
    }

    /// `saCkptActiveReplicaSet`: this node's replica becomes the active one of a collocated
    /// checkpoint.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; `SA_AIS_ERR_BAD_OPERATION` for a checkpoint that is not
    /// [`CHECKPOINT_COLLOCATED`] with an active-replica write mode; `SA_AIS_ERR_ACCESS`
    /// without [`OPEN_WRITE`]; otherwise as [`Connection::call`].
    pub fn active_replica_set(&mut self, handle: CheckpointHandle) -> Result<(), Error> {
        self.conn.ok(Request::ActiveReplicaSet { handle: handle.0 })
    }

    /// `saCkptCheckpointStatusGet`: the attributes, section count and bytes used.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn status_get(&mut self, handle: CheckpointHandle) -> Result<Status, Error> {
        match self.conn.call(Request::StatusGet { handle: handle.0 })? {
            Reply::Service(Response::Status(s)) => Ok(s),
            other => Err(unexpected("CkptStatusGet", &other)),
        }
    }

    /// `saCkptSectionCreate`: a new section with id `section` (`None`: the executive makes
    /// one up, `SA_CKPT_GENERATED_SECTION_ID`), expiring at `expiration_time` (nanoseconds
    /// since the UNIX epoch, [`TIME_END`]: never), holding `data`. Returns its id. Data over
    /// one request is written after the creation (see the [module documentation](self)).
    ///
    /// # Errors
    /// `SA_AIS_ERR_INVALID_PARAM` for an id over [`MAX_SECTION_ID`] bytes (checked here) or
    /// over the checkpoint's maximum; `SA_AIS_ERR_EXIST`; `SA_AIS_ERR_NO_SPACE` (all
    /// sections used); `SA_AIS_ERR_ACCESS` without [`OPEN_WRITE`]; `SA_AIS_ERR_BAD_HANDLE`;
    /// otherwise as [`Connection::call`]. When writing the rest of large data fails (past
    /// the maximum section size, for one), the section is deleted again, best effort.
    pub fn section_create(
        &mut self,
        handle: CheckpointHandle,
        section: Option<&[u8]>,
        expiration_time: u64,
        data: &[u8],
    ) -> Result<Bytes, Error> {
        let id_len = section.map_or(0, <[u8]>::len);
        if let Some(id) = section {
            check_section(id)?;
        }
        let first = first_piece(REQUEST_BUDGET, CREATE_FIXED + id_len, data.len());
        let created = match self.conn.call(Request::SectionCreate {
            handle: handle.0,
            section: section.map(Bytes::copy_from_slice),
            expiration_time,
            data: Bytes::copy_from_slice(&data[..first]),
        })? {
            Reply::Service(Response::SectionCreated { section }) => section,
            other => return Err(unexpected("CkptSectionCreate", &other)),
        };
        if first < data.len() {
            let rest = WriteElement {
                section: created.clone(),
                offset: first as u64,
                data: Bytes::copy_from_slice(&data[first..]),
            };
            if let Err(e) = self.write_split(handle, &[rest], true) {
                // Not left cut short: the section goes again (best effort; the error is the
                // write's).
                let _ = self.call_retrying(Request::SectionDelete {
                    handle: handle.0,
                    section: created,
                });
                return Err(e.into());
            }
        }
        Ok(created)
    }

    /// `saCkptSectionDelete`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST`; `SA_AIS_ERR_INVALID_PARAM` for the default section or an id
    /// over [`MAX_SECTION_ID`] bytes (checked here); `SA_AIS_ERR_ACCESS`;
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn section_delete(
        &mut self,
        handle: CheckpointHandle,
        section: &[u8],
    ) -> Result<(), Error> {
        check_section(section)?;
        self.conn.ok(Request::SectionDelete {
            handle: handle.0,
            section: Bytes::copy_from_slice(section),
        })
    }

    /// `saCkptSectionExpirationTimeSet`: nanoseconds since the UNIX epoch ([`TIME_END`]:
    /// never).
    ///
    /// # Errors
    /// As [`section_delete`](Self::section_delete).
    pub fn section_expiration_time_set(
        &mut self,
        handle: CheckpointHandle,
        section: &[u8],
        expiration_time: u64,
    ) -> Result<(), Error> {
        check_section(section)?;
        self.conn.ok(Request::SectionExpirationTimeSet {
            handle: handle.0,
            section: Bytes::copy_from_slice(section),
            expiration_time,
        })
    }

    /// `saCkptSectionIterationInitialize`: an iteration over the sections `chosen` selects
    /// (`expiration_time` is the bound of [`Chosen::LeqExpiration`] and
    /// [`Chosen::GeqExpiration`]).
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn section_iteration_initialize(
        &mut self,
        handle: CheckpointHandle,
        chosen: Chosen,
        expiration_time: u64,
    ) -> Result<SectionIterator, Error> {
        match self.conn.call(Request::IterationInitialize {
            handle: handle.0,
            chosen: chosen.code(),
            expiration_time,
        })? {
            Reply::Service(Response::Iterator { iterator }) => Ok(SectionIterator(iterator)),
            other => Err(unexpected("CkptSectionIterationInitialize", &other)),
        }
    }

    /// `saCkptSectionIterationNext`: the next section, `None` past the last
    /// (`SA_AIS_ERR_NO_SECTIONS`).
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE` for an iterator that is not open; otherwise as
    /// [`Connection::call`].
    pub fn section_iteration_next(
        &mut self,
        iterator: SectionIterator,
    ) -> Result<Option<SectionDescriptor>, Error> {
        match self.conn.call(Request::IterationNext {
            iterator: iterator.0,
        }) {
            Ok(Reply::Service(Response::Section(d))) => Ok(Some(d)),
            Err(Error::Ais(AisError::NoSections)) => Ok(None),
            Ok(other) => Err(unexpected("CkptSectionIterationNext", &other)),
            Err(e) => Err(e),
        }
    }

    /// `saCkptSectionIterationFinalize`.
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn section_iteration_finalize(&mut self, iterator: SectionIterator) -> Result<(), Error> {
        self.conn.ok(Request::IterationFinalize {
            iterator: iterator.0,
        })
    }

    /// `saCkptCheckpointWrite`: each element's data into its section (empty id: the default
    /// section) at its offset. Atomic when it fits one request; cut into several otherwise,
    /// and then not atomic across them (see the [module documentation](self)).
    ///
    /// # Errors
    /// [`VectorError::Element`] names the caller's element that cannot be written:
    /// `SA_AIS_ERR_NOT_EXIST` (no such section), `SA_AIS_ERR_INVALID_PARAM` (past the
    /// maximum section size, or an id over [`MAX_SECTION_ID`] bytes, checked here),
    /// `SA_AIS_ERR_NO_SPACE` (past the checkpoint size), `SA_AIS_ERR_NO_RESOURCES`;
    /// `SA_AIS_ERR_INVALID_PARAM` also for an element without data. [`VectorError::Call`] for
    /// the call as a whole: `SA_AIS_ERR_BAD_HANDLE`, `SA_AIS_ERR_ACCESS` (not opened for
    /// writing), `SA_AIS_ERR_INVALID_PARAM` (no element), otherwise as [`Connection::call`].
    pub fn write(
        &mut self,
        handle: CheckpointHandle,
        elements: &[WriteElement],
    ) -> Result<(), VectorError> {
        if let Some(index) = elements
            .iter()
            .position(|e| check_section(&e.section).is_err())
        {
            return Err(VectorError::Element {
                index,
                error: AisError::InvalidParam,
            });
        }
        if elements.is_empty() {
            // Nothing to cut, but the executive still checks the handle.
            return match self.conn.call(Request::Write {
                handle: handle.0,
                elements: Vec::new(),
            })? {
                Reply::Ok => Ok(()),
                other => Err(unexpected("CkptWrite", &other).into()),
            };
        }
        self.write_split(handle, elements, false)
    }

    /// Writes `elements` in as many requests as they need; `continued`: the operation
    /// already changed the checkpoint, so `TRY_AGAIN` is retried from the first request.
    fn write_split(
        &mut self,
        handle: CheckpointHandle,
        elements: &[WriteElement],
        continued: bool,
    ) -> Result<(), VectorError> {
        let mut split = Splitter::new(
            REQUEST_BUDGET,
            WRITE_FIXED,
            elements
                .iter()
                .map(|e| (WRITE_ELEMENT + e.section.len(), e.data.len() as u64)),
        );
        let mut continued = continued;
        while let Some(pieces) = split.next_request() {
            let mut part = Vec::with_capacity(pieces.len());
            for p in &pieces {
                let e = &elements[p.index];
                let offset = e.offset.checked_add(p.start).ok_or(VectorError::Element {
                    index: p.index,
                    error: AisError::InvalidParam,
                })?;
                part.push(WriteElement {
                    section: e.section.clone(),
                    offset,
                    data: slice(&e.data, p),
                });
            }
            let req = Request::Write {
                handle: handle.0,
                elements: part,
            };
            let reply = if continued {
                self.call_retrying(req)?
            } else {
                self.conn.call(req)?
            };
            match reply {
                Reply::Ok => {}
                Reply::Service(Response::WriteFailed { index, error }) => {
                    let piece = pieces.get(index as usize).ok_or_else(|| {
                        Error::Protocol(format!(
                            "write failure names element {index} of a request of {}",
                            pieces.len()
                        ))
                    })?;
                    return Err(VectorError::Element {
                        index: piece.index,
                        error,
                    });
                }
                other => return Err(unexpected("CkptWrite", &other).into()),
            }
            continued = true;
        }
        Ok(())
    }

    /// Sends a request of an operation already under way, again after each `TRY_AGAIN`
    /// for up to [`CONTINUATION_RETRY`].
    fn call_retrying(&mut self, req: Request) -> Result<Reply<Response>, Error> {
        let deadline = Instant::now() + CONTINUATION_RETRY;
        let mut pause = RETRY_FIRST;
        loop {
            match self.conn.call(req.clone()) {
                Err(e) if e.is_try_again() && Instant::now() < deadline => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
                other => return other,
            }
        }
    }

    /// `saCkptSectionOverwrite`: the section's data becomes `data`. Data over one request is
    /// an overwrite with its first piece and writes of the rest (see the
    /// [module documentation](self)).
    ///
    /// # Errors
    /// `SA_AIS_ERR_NOT_EXIST`; `SA_AIS_ERR_INVALID_PARAM` (over the maximum section size, or
    /// an id over [`MAX_SECTION_ID`] bytes, checked here); `SA_AIS_ERR_ACCESS`;
    /// `SA_AIS_ERR_BAD_HANDLE`; otherwise as [`Connection::call`].
    pub fn section_overwrite(
        &mut self,
        handle: CheckpointHandle,
        section: &[u8],
        data: &[u8],
    ) -> Result<(), Error> {
        check_section(section)?;
        let first = first_piece(REQUEST_BUDGET, OVERWRITE_FIXED + section.len(), data.len());
        let section = Bytes::copy_from_slice(section);
        match self.conn.call(Request::Overwrite {
            handle: handle.0,
            section: section.clone(),
            data: Bytes::copy_from_slice(&data[..first]),
        })? {
            Reply::Ok => {}
            other => return Err(unexpected("CkptSectionOverwrite", &other)),
        }
        if first < data.len() {
            let rest = WriteElement {
                section,
                offset: first as u64,
                data: Bytes::copy_from_slice(&data[first..]),
            };
            self.write_split(handle, &[rest], true)?;
        }
        Ok(())
    }

    /// `saCkptCheckpointRead`: each element's bytes, at most its `size` from its `offset`
    /// (fewer at the end of the section; `u64::MAX` reads to the end). Large ranges are read
    /// in several requests and concatenated (see the [module documentation](self)).
    ///
    /// # Errors
    /// [`VectorError::Element`] names the caller's element that cannot be read:
    /// `SA_AIS_ERR_NOT_EXIST` (no such section), `SA_AIS_ERR_INVALID_PARAM` (offset past the
    /// section's end, or an id over [`MAX_SECTION_ID`] bytes, checked here).
    /// [`VectorError::Call`]: `SA_AIS_ERR_BAD_HANDLE`, `SA_AIS_ERR_ACCESS` (not opened for
    /// reading), otherwise as [`Connection::call`].
    pub fn read(
        &mut self,
        handle: CheckpointHandle,
        elements: &[ReadElement],
    ) -> Result<Vec<Bytes>, VectorError> {
        if let Some(index) = elements
            .iter()
            .position(|e| check_section(&e.section).is_err())
        {
            return Err(VectorError::Element {
                index,
                error: AisError::InvalidParam,
            });
        }
        let mut parts: Vec<Vec<Bytes>> = vec![Vec::new(); elements.len()];
        let mut split = Splitter::new(
            REQUEST_BUDGET,
            READ_FIXED,
            elements
                .iter()
                .map(|e| (READ_ELEMENT + e.section.len(), e.size)),
        );
        let mut asked = false;
        loop {
            let pieces = match split.next_request() {
                Some(p) => p,
                // An empty vector is still asked, for the executive's checks.
                None if !asked => Vec::new(),
                None => break,
            };
            asked = true;
            let mut part = Vec::with_capacity(pieces.len());
            for p in &pieces {
                let e = &elements[p.index];
                let offset = e.offset.checked_add(p.start).ok_or(VectorError::Element {
                    index: p.index,
                    error: AisError::InvalidParam,
                })?;
                part.push(ReadElement {
                    section: e.section.clone(),
                    offset,
                    size: p.len,
                });
            }
            match self.conn.call(Request::Read {
                handle: handle.0,
                elements: part,
            })? {
                Reply::Service(Response::Data(data)) if data.len() == pieces.len() => {
                    for (p, d) in pieces.iter().zip(data) {
                        let got = d.len() as u64;
                        if got > p.len {
                            return Err(Error::Protocol(format!(
                                "read answered {got} bytes for a piece of {}",
                                p.len
                            ))
                            .into());
                        }
                        if got < p.len {
                            split.skip_rest(p.index);
                        }
                        parts[p.index].push(d);
                    }
                }
                Reply::Service(Response::Data(data)) => {
                    return Err(Error::Protocol(format!(
                        "read answered {} parts for {} elements",
                        data.len(),
                        pieces.len()
                    ))
                    .into());
                }
                Reply::Service(Response::ReadFailed { index, error }) => {
                    let piece = pieces.get(index as usize).ok_or_else(|| {
                        Error::Protocol(format!(
                            "read failure names element {index} of a request of {}",
                            pieces.len()
                        ))
                    })?;
                    return Err(VectorError::Element {
                        index: piece.index,
                        error,
                    });
                }
                other => return Err(unexpected("CkptRead", &other).into()),
            }
        }
        Ok(parts.into_iter().map(concat).collect())
    }

    /// `saCkptCheckpointSynchronize`: returns when every update this node sent to the
    /// checkpoint before it has reached every replica (for the active-replica write modes;
    /// with [`WR_ALL_REPLICAS`] every write returns only then anyway).
    ///
    /// # Errors
    /// `SA_AIS_ERR_BAD_HANDLE`; `SA_AIS_ERR_ACCESS` without [`OPEN_WRITE`];
    /// `SA_AIS_ERR_BAD_OPERATION` for a [`WR_ALL_REPLICAS`] checkpoint; otherwise as
    /// [`Connection::call`].
    pub fn synchronize(&mut self, handle: CheckpointHandle) -> Result<(), Error> {
        self.conn.ok(Request::Synchronize { handle: handle.0 })
    }

    /// `saCkptCheckpointSynchronizeAsync`: as [`synchronize`](Self::synchronize), the
    /// outcome coming as [`CkptEvent::Synchronize`] with `invocation`.
    ///
    /// # Errors
    /// As [`synchronize`](Self::synchronize).
    pub fn synchronize_async(
        &mut self,
        handle: CheckpointHandle,
        invocation: u64,
    ) -> Result<(), Error> {
        self.conn.ok(Request::SynchronizeAsync {
            handle: handle.0,
            invocation,
        })
    }

    /// Every checkpoint of the cluster, unlinked ones included (`aisctl ckpt ls`).
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn list(&mut self) -> Result<Vec<CheckpointInfo>, Error> {
        // Page by page: a checkpoint created or deleted meanwhile may be missed or listed
        // twice, as with `ls` of a directory that changes.
        let mut all = Vec::new();
        let mut start = 0;
        loop {
            match self.conn.call(Request::List { start })? {
                Reply::Service(Response::List { items, next }) => {
                    all.extend(items);
                    match next {
                        Some(n) if n > start => start = n,
                        Some(_) => {
                            return Err(Error::Protocol(
                                "a list page that does not advance".into(),
                            ));
                        }
                        None => return Ok(all),
                    }
                }
                other => return Err(unexpected("CkptList", &other)),
            }
        }
    }

    /// The checkpoint now named `name` and all its sections, without opening it: an open and
    /// a close would restart the retention clock of a checkpoint nobody has open (`aisctl ckpt
    /// show`).
    ///
    /// # Errors
    /// `NAME_TOO_LONG` or `INVALID_PARAM` (empty) for a name no checkpoint can have, asking
    /// nothing; `NOT_EXIST` when no checkpoint has that name (also when it is unlinked while
    /// its pages are read); as [`Connection::call`].
    pub fn describe(
        &mut self,
        name: &[u8],
    ) -> Result<(CheckpointInfo, Vec<SectionDescriptor>), Error> {
        check_name(name)?;
        let name = Bytes::copy_from_slice(name);
        let mut sections = Vec::new();
        let mut start = 0;
        loop {
            let req = Request::Describe {
                name: name.clone(),
                start,
            };
            match self.conn.call(req)? {
                Reply::Service(Response::Described {
                    info,
                    sections: page,
                    next,
                }) => {
                    sections.extend(page);
                    match next {
                        Some(n) if n > start => start = n,
                        Some(_) => {
                            return Err(Error::Protocol(
                                "a description page that does not advance".into(),
                            ));
                        }
                        None => return Ok((info, sections)),
                    }
                }
                other => return Err(unexpected("CkptDescribe", &other)),
            }
        }
    }

    /// Up to `size` bytes of section `section` of the checkpoint now named `name`, from
    /// `offset`, without opening it (`aisctl ckpt read`); shorter at the section's end.
    ///
    /// # Errors
    /// As [`describe`](Self::describe) for the name, `INVALID_PARAM` for a section id too
    /// long, asking nothing; `NOT_EXIST` for an unknown name or section, `INVALID_PARAM` for
    /// an offset beyond the section's end; as [`Connection::call`].
    pub fn peek(
        &mut self,
        name: &[u8],
        section: &[u8],
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, Error> {
        check_name(name)?;
        check_section(section)?;
        let name = Bytes::copy_from_slice(name);
        let section = Bytes::copy_from_slice(section);
        let mut out = Vec::new();
        let mut at = offset;
        loop {
            let want = size - out.len() as u64;
            let req = Request::Peek {
                name: name.clone(),
                section: section.clone(),
                offset: at,
                size: want,
            };
            let reply = match self.conn.call(req) {
                // Overwritten shorter between two pieces: what was read is what there is.
                Err(Error::Ais(AisError::InvalidParam)) if !out.is_empty() => return Ok(out),
                r => r?,
            };
            match reply {
                Reply::Service(Response::Data(parts)) if parts.len() == 1 => {
                    let got = &parts[0];
                    if got.len() as u64 > want {
                        return Err(Error::Protocol(format!(
                            "a peek answered {} bytes for {want}",
                            got.len()
                        )));
                    }
                    out.extend_from_slice(got);
                    at += got.len() as u64;
                    // An empty piece: the section's end (or nothing asked).
                    if got.is_empty() || out.len() as u64 == size {
                        return Ok(out);
                    }
                }
                other => return Err(unexpected("CkptPeek", &other)),
            }
        }
    }

    /// The next callback: a queued one first, else waits up to `timeout` (`None`: forever;
    /// `Some(Duration::ZERO)`: only looks). `Ok(None)` when the time passes first.
    ///
    /// # Errors
    /// As [`Connection::next_callback`].
    pub fn dispatch(&mut self, timeout: Option<Duration>) -> Result<Option<CkptEvent>, Error> {
        Ok(match self.conn.next_callback(timeout)? {
            None => None,
            Some(Callback::Open { invocation, result }) => Some(CkptEvent::Open {
                invocation,
                result: result.map(CheckpointHandle),
            }),
            Some(Callback::Synchronize { invocation, result }) => {
                Some(CkptEvent::Synchronize { invocation, result })
            }
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "callback {} is not handled by this library",
                    other.name()
                )));
            }
        })
    }

    /// The underlying connection.
    pub fn connection(&mut self) -> &mut Connection<CkptProtocol> {
        &mut self.conn
    }
}

/// One element's pieces as one byte string (without a copy when there is one piece).
fn concat(mut parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().expect("one part"),
        _ => {
            let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in parts {
                all.extend_from_slice(&p);
            }
            all.freeze()
        }
    }
}

impl AsRawFd for Ckpt {
    /// See [`Connection`]'s: queued callbacks do not show on the descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl AsFd for Ckpt {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ais_proto::ipc::{self, Encoded, MAX_PAYLOAD};

    use super::super::fake::{Exec, start_service};
    use super::*;

    /// Checks a splitter's requests: within the budget, every byte of every element handed
    /// out once and in order. Returns them.
    fn requests(budget: usize, fixed: usize, elements: &[(usize, u64)]) -> Vec<Vec<Piece>> {
        let mut split = Splitter::new(budget, fixed, elements.iter().copied());
        let mut all = Vec::new();
        let mut next = (0, 0);
        while let Some(pieces) = split.next_request() {
            let bytes: u64 = pieces
                .iter()
                .map(|p| elements[p.index].0 as u64 + p.len)
                .sum();
            assert!(
                fixed as u64 + bytes <= budget as u64 || pieces.len() == 1,
                "{pieces:?} over the budget"
            );
            for p in &pieces {
                if next.1 == elements[next.0].1 && p.index == next.0 + 1 {
                    next = (next.0 + 1, 0);
                }
                assert_eq!((p.index, p.start), next, "pieces in order, none lost");
                next.1 += p.len;
            }
            all.push(pieces);
            assert!(all.len() < 10_000);
        }
        assert_eq!(next, (elements.len() - 1, elements.last().unwrap().1));
        all
    }

    fn piece(index: usize, start: u64, len: u64) -> Piece {
        Piece { index, start, len }
    }

    #[test]
    fn elements_that_fit_go_in_one_request() {
        assert_eq!(
            requests(1000, 24, &[(16, 10), (14, 20), (14, 0)]),
            [vec![piece(0, 0, 10), piece(1, 0, 20), piece(2, 0, 0)]]
        );
    }

    #[test]
    fn the_element_that_does_not_fit_is_cut_and_continues_the_next_request() {
        assert_eq!(
            requests(100, 10, &[(10, 30), (10, 100), (10, 5)]),
            [
                vec![piece(0, 0, 30), piece(1, 0, 40)],
                vec![piece(1, 40, 60), piece(2, 0, 5)],
            ]
        );
        // A large element alone: as many full requests as it needs.
        assert_eq!(
            requests(100, 10, &[(10, 250)]),
            [
                vec![piece(0, 0, 80)],
                vec![piece(0, 80, 80)],
                vec![piece(0, 160, 80)],
                vec![piece(0, 240, 10)],
            ]
        );
        // No room for even one data byte after an element: the next starts a new request.
        assert_eq!(
            requests(100, 10, &[(10, 70), (10, 5)]),
            [vec![piece(0, 0, 70)], vec![piece(1, 0, 5)]]
        );
        // ... but an empty element still fits there.
        assert_eq!(
            requests(100, 10, &[(10, 70), (10, 0)]),
            [vec![piece(0, 0, 70), piece(1, 0, 0)]]
        );
    }

    #[test]
    fn every_shape_is_handed_out_whole_within_the_budget() {
        for budget in [40, 64, 100, 1000] {
            for lens in [
                vec![0, 0, 0],
                vec![1, 2, 3, 500, 7],
                vec![999, 1, 999],
                vec![37; 40],
            ] {
                let elements: Vec<_> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (14 + i % 3, l))
                    .collect();
                requests(budget, 20, &elements);
            }
        }
    }

    #[test]
    fn an_element_over_the_budget_goes_alone_and_progresses() {
        assert_eq!(
            requests(100, 10, &[(5, 3), (200, 2), (5, 1)]),
            [
                vec![piece(0, 0, 3)],
                vec![piece(1, 0, 1)],
                vec![piece(1, 1, 1)],
                vec![piece(2, 0, 1)],
            ]
        );
    }

    #[test]
    fn skipping_the_rest_of_a_cut_element_moves_to_the_next() {
        let mut split = Splitter::new(100, 10, [(10, u64::MAX), (10, 5)]);
        assert_eq!(split.next_request(), Some(vec![piece(0, 0, 80)]));
        split.skip_rest(1); // not the current element: nothing
        assert_eq!(split.next_request(), Some(vec![piece(0, 80, 80)]));
        split.skip_rest(0);
        assert_eq!(split.next_request(), Some(vec![piece(1, 0, 5)]));
        split.skip_rest(1); // finished already: nothing
        assert_eq!(split.next_request(), None);
    }

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    /// A fake executive holding one checkpoint's sections in memory: writes, overwrites,
    /// creations, reads. `fail(n, req)` may answer the `n`th request (from 0) instead.
    #[allow(clippy::type_complexity)]
    fn store(
        sections: BTreeMap<Bytes, Vec<u8>>,
        mut fail: impl FnMut(usize, &Request) -> Option<Reply<Response>> + Send + 'static,
    ) -> (Ckpt, thread::JoinHandle<Vec<Request>>) {
        let mut sections = sections;
        let mut n = 0;
        let (conn, server) =
            start_service::<CkptProtocol, _>(move |exec: &Exec<CkptProtocol>, id, req| {
                let packet = Encoded::request(id, &ipc::Request::Service(req.clone()));
                assert!(
                    packet.len() <= REQUEST_BUDGET,
                    "request of {}",
                    packet.len()
                );
                let answer = fail(n, &req).unwrap_or_else(|| match req {
                    Request::Write { elements, .. } => {
                        for (i, e) in elements.iter().enumerate() {
                            let Some(s) = sections.get_mut(&e.section) else {
                                return Reply::Service(Response::WriteFailed {
                                    index: i as u32,
                                    error: AisError::NotExist,
                                });
                            };
                            let end = e.offset as usize + e.data.len();
                            if s.len() < end {
                                s.resize(end, 0);
                            }
                            s[e.offset as usize..end].copy_from_slice(&e.data);
                        }
                        Reply::Ok
                    }
                    Request::Overwrite { section, data, .. } => {
                        sections.insert(section, data.to_vec());
                        Reply::Ok
                    }
                    Request::SectionDelete { section, .. } => {
                        sections.remove(&section);
                        Reply::Ok
                    }
                    Request::SectionCreate { section, data, .. } => {
                        let id = section.unwrap_or_else(|| b(b"generated"));
                        sections.insert(id.clone(), data.to_vec());
                        Reply::Service(Response::SectionCreated { section: id })
                    }
                    Request::Read { elements, .. } => {
                        let mut parts = Vec::new();
                        for (i, e) in elements.iter().enumerate() {
                            let Some(s) = sections.get(&e.section) else {
                                return Reply::Service(Response::ReadFailed {
                                    index: i as u32,
                                    error: AisError::NotExist,
                                });
                            };
                            let start = (e.offset as usize).min(s.len());
                            let end = start.saturating_add(e.size as usize).min(s.len());
                            parts.push(b(&s[start..end]));
                        }
                        let answer = Reply::Service(Response::Data(parts));
                        assert!(Encoded::reply(id, &answer).len() <= REQUEST_BUDGET);
                        answer
                    }
                    other => panic!("{other:?}"),
                });
                n += 1;
                exec.reply(id, answer);
                true
            });
        (Ckpt::from_connection(conn), server)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    const H: CheckpointHandle = CheckpointHandle(7);

    #[test]
    fn a_large_write_is_cut_into_requests_and_read_back_whole() {
        let big = pattern(2 * MAX_PAYLOAD + MAX_PAYLOAD / 2, 1);
        let sections = BTreeMap::from([(b(b"a"), Vec::new()), (b(b"b"), Vec::new())]);
        let (mut ckpt, server) = store(sections, |_, _| None);
        ckpt.write(
            H,
            &[
                WriteElement {
                    section: b(b"a"),
                    offset: 0,
                    data: b(b"small"),
                },
                WriteElement {
                    section: b(b"b"),
                    offset: 0,
                    data: Bytes::from(big.clone()),
                },
            ],
        )
        .unwrap();
        let got = ckpt
            .read(
                H,
                &[
                    ReadElement {
                        section: b(b"b"),
                        offset: 0,
                        size: u64::MAX,
                    },
                    ReadElement {
                        section: b(b"a"),
                        offset: 1,
                        size: 3,
                    },
                    ReadElement {
                        section: b(b"b"),
                        offset: 10,
                        size: 5,
                    },
                ],
            )
            .unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[0] == big, "the whole large section");
        assert_eq!(&got[1][..], b"mal");
        assert_eq!(&got[2][..], &big[10..15]);
        drop(ckpt);
        let seen = server.join().unwrap();
        let (writes, reads): (Vec<_>, Vec<_>) = seen
            .iter()
            .partition(|r| matches!(r, Request::Write { .. }));
        assert_eq!(writes.len(), 3, "2.5 packets of data: 3 writes");
        // A read to the end fills its requests: three for the large element (the third
        // comes back short, which ends it), a fourth for the small ones.
        assert_eq!(reads.len(), 4);
        let Request::Read { elements, .. } = reads[3] else {
            panic!()
        };
        assert_eq!(elements.len(), 2);
    }

    #[test]
    fn a_read_of_a_section_ending_at_a_piece_boundary_stops_at_the_empty_piece() {
        let (mut ckpt, server) = store(BTreeMap::new(), |_, _| None);
        let id = ckpt.section_create(H, Some(b"s"), TIME_END, &[]).unwrap();
        assert_eq!(&id[..], b"s");
        // Exactly one read piece of data.
        let piece = REQUEST_BUDGET - READ_FIXED - READ_ELEMENT - 1;
        ckpt.section_overwrite(H, b"s", &pattern(piece, 2)).unwrap();
        let got = ckpt
            .read(
                H,
                &[ReadElement {
                    section: b(b"s"),
                    offset: 0,
                    size: u64::MAX,
                }],
            )
            .unwrap();
        assert!(got[0] == pattern(piece, 2));
        drop(ckpt);
        let seen = server.join().unwrap();
        assert_eq!(
            seen.len(),
            4,
            "create, overwrite, a full read and an empty one"
        );
    }

    #[test]
    fn a_failing_piece_names_the_callers_element() {
        let big = pattern(MAX_PAYLOAD + 100, 3);
        let sections = BTreeMap::from([(b(b"a"), Vec::new())]);
        let (mut ckpt, server) = store(sections, |n, _| {
            (n == 1).then_some(Reply::Service(Response::WriteFailed {
                index: 1,
                error: AisError::InvalidParam,
            }))
        });
        let err = ckpt
            .write(
                H,
                &[
                    WriteElement {
                        section: b(b"a"),
                        offset: 0,
                        data: Bytes::from(big),
                    },
                    WriteElement {
                        section: b(b"a"),
                        offset: 0,
                        data: b(b"x"),
                    },
                    WriteElement {
                        section: b(b"a"),
                        offset: 0,
                        data: b(b"y"),
                    },
                ],
            )
            .unwrap_err();
        // The second request holds the rest of element 0, then elements 1 and 2.
        assert_eq!(err.index(), Some(1));
        assert_eq!(err.ais_error(), Some(AisError::InvalidParam));
        assert_eq!(err.to_string(), "element 1: SA_AIS_ERR_INVALID_PARAM");
        // A missing section in the first request, reported by the fake.
        let err = ckpt
            .write(
                H,
                &[WriteElement {
                    section: b(b"nope"),
                    offset: 0,
                    data: b(b"x"),
                }],
            )
            .unwrap_err();
        assert_eq!(err.index(), Some(0));
        assert_eq!(Error::from(err).ais_error(), Some(AisError::NotExist));
        let err = ckpt
            .read(
                H,
                &[
                    ReadElement {
                        section: b(b"a"),
                        offset: 0,
                        size: 1,
                    },
                    ReadElement {
                        section: b(b"nope"),
                        offset: 0,
                        size: 1,
                    },
                ],
            )
            .unwrap_err();
        assert_eq!(
            (err.index(), err.ais_error()),
            (Some(1), Some(AisError::NotExist))
        );
        drop(ckpt);
        assert_eq!(server.join().unwrap().len(), 4);
    }

    #[test]
    fn large_creations_and_overwrites_continue_with_writes_retrying_try_again() {
        let big = pattern(MAX_PAYLOAD * 2, 4);
        let (mut ckpt, server) = store(BTreeMap::new(), |n, _| {
            (n == 1).then_some(Reply::Error(AisError::TryAgain))
        });
        let id = ckpt.section_create(H, None, TIME_END, &big).unwrap();
        assert_eq!(&id[..], b"generated");
        let back = ckpt
            .read(
                H,
                &[ReadElement {
                    section: id.clone(),
                    offset: 0,
                    size: u64::MAX,
                }],
            )
            .unwrap();
        assert!(back[0] == big);
        let other = pattern(MAX_PAYLOAD + 5, 5);
        ckpt.section_overwrite(H, &id, &other).unwrap();
        let back = ckpt
            .read(
                H,
                &[ReadElement {
                    section: id,
                    offset: 0,
                    size: u64::MAX,
                }],
            )
            .unwrap();
        assert!(back[0] == other, "the overwrite replaced everything");
        drop(ckpt);
        let seen = server.join().unwrap();
        let kinds: Vec<&str> = seen.iter().map(|r| r.name()).collect();
        assert_eq!(
            kinds[..5],
            [
                "CkptSectionCreate",
                "CkptWrite", // TRY_AGAIN
                "CkptWrite", // again
                "CkptWrite",
                "CkptRead",
            ]
        );
        assert!(kinds.contains(&"CkptSectionOverwrite"));
    }

    #[test]
    fn a_large_creation_whose_rest_fails_deletes_the_section_again() {
        let (mut ckpt, server) = store(BTreeMap::new(), |n, _| {
            (n == 1).then_some(Reply::Service(Response::WriteFailed {
                index: 0,
                error: AisError::InvalidParam,
            }))
        });
        let err = ckpt
            .section_create(H, Some(b"s"), TIME_END, &pattern(MAX_PAYLOAD, 7))
            .unwrap_err();
        assert_eq!(err.ais_error(), Some(AisError::InvalidParam));
        drop(ckpt);
        let kinds: Vec<&str> = server.join().unwrap().iter().map(|r| r.name()).collect();
        assert_eq!(
            kinds,
            ["CkptSectionCreate", "CkptWrite", "CkptSectionDelete"]
        );
    }

    #[test]
    fn the_first_request_of_a_cut_write_is_not_retried() {
        let sections = BTreeMap::from([(b(b"a"), Vec::new())]);
        let (mut ckpt, server) = store(sections, |n, _| {
            (n == 0).then_some(Reply::Error(AisError::TryAgain))
        });
        let err = ckpt
            .write(
                H,
                &[WriteElement {
                    section: b(b"a"),
                    offset: 0,
                    data: Bytes::from(pattern(MAX_PAYLOAD * 2, 6)),
                }],
            )
            .unwrap_err();
        assert!(err.is_try_again(), "{err}");
        assert_eq!(err.index(), None);
        drop(ckpt);
        assert_eq!(server.join().unwrap().len(), 1, "nothing after the refusal");
    }

    #[test]
    fn names_flags_and_ids_are_checked_without_a_round_trip() {
        let (conn, server) = start_service::<CkptProtocol, _>(|_, _, req| panic!("{req:?}"));
        let mut ckpt = Ckpt::from_connection(conn);
        let attrs = Attributes {
            creation_flags: WR_ALL_REPLICAS,
            checkpoint_size: 100,
            retention_duration: 0,
            max_sections: 1,
            max_section_size: 100,
            max_section_id_size: 0,
        };
        let ais = |r: Result<CheckpointHandle, Error>| r.unwrap_err().ais_error();
        let long = [b'n'; MAX_NAME + 1];
        assert_eq!(
            ais(ckpt.open(&long, OPEN_READ, None)),
            Some(AisError::NameTooLong)
        );
        assert_eq!(
            ckpt.unlink(&long).unwrap_err().ais_error(),
            Some(AisError::NameTooLong)
        );
        assert_eq!(
            ais(ckpt.open(b"", OPEN_READ, None)),
            Some(AisError::InvalidParam)
        );
        assert_eq!(ais(ckpt.open(b"c", 0x8, None)), Some(AisError::BadFlags));
        assert_eq!(
            ais(ckpt.open(b"c", OPEN_CREATE | OPEN_WRITE, None)),
            Some(AisError::InvalidParam)
        );
        assert_eq!(
            ais(ckpt.open(b"c", OPEN_WRITE, Some(attrs))),
            Some(AisError::InvalidParam)
        );
        assert_eq!(
            ckpt.open_async(b"c", OPEN_WRITE, Some(attrs), 1)
                .unwrap_err()
                .ais_error(),
            Some(AisError::InvalidParam)
        );
        let long_id = Bytes::from(vec![b's'; MAX_SECTION_ID + 1]);
        let err = ckpt
            .write(
                H,
                &[
                    WriteElement {
                        section: b(b"ok"),
                        offset: 0,
                        data: Bytes::new(),
                    },
                    WriteElement {
                        section: long_id.clone(),
                        offset: 0,
                        data: Bytes::new(),
                    },
                ],
            )
            .unwrap_err();
        assert_eq!(
            (err.index(), err.ais_error()),
            (Some(1), Some(AisError::InvalidParam))
        );
        let err = ckpt
            .read(
                H,
                &[ReadElement {
                    section: long_id.clone(),
                    offset: 0,
                    size: 1,
                }],
            )
            .unwrap_err();
        assert_eq!(err.index(), Some(0));
        assert_eq!(
            ckpt.section_create(H, Some(&long_id), TIME_END, b"")
                .unwrap_err()
                .ais_error(),
            Some(AisError::InvalidParam)
        );
        assert_eq!(
            ckpt.section_overwrite(H, &long_id, b"")
                .unwrap_err()
                .ais_error(),
            Some(AisError::InvalidParam)
        );
        drop(ckpt);
        assert!(server.join().unwrap().is_empty());
    }

    #[test]
    fn answers_iterations_and_callbacks_are_mapped() {
        let status = Status {
            attributes: Attributes {
                creation_flags: WR_ALL_REPLICAS,
                checkpoint_size: 100,
                retention_duration: TIME_END,
                max_sections: 4,
                max_section_size: 25,
                max_section_id_size: 8,
            },
            sections: 1,
            memory_used: 3,
        };
        let descriptor = SectionDescriptor {
            id: b(b"s"),
            expiration_time: TIME_END,
            size: 3,
            state: SECTION_VALID,
            last_update: 9,
        };
        let (s, d) = (status.clone(), descriptor.clone());
        let mut nexts = 0;
        let (conn, server) = start_service::<CkptProtocol, _>(move |exec, id, req| {
            let answer = match req {
                Request::Open { .. } => Reply::Service(Response::Opened { handle: 3 }),
                Request::OpenAsync { invocation, .. } => {
                    exec.reply(id, Reply::Ok);
                    exec.callback(Callback::Open {
                        invocation,
                        result: Ok(4),
                    });
                    return true;
                }
                Request::SynchronizeAsync { invocation, .. } => {
                    exec.reply(id, Reply::Ok);
                    exec.callback(Callback::Synchronize {
                        invocation,
                        result: Err(AisError::TryAgain),
                    });
                    return true;
                }
                Request::StatusGet { .. } => Reply::Service(Response::Status(s.clone())),
                Request::IterationInitialize { chosen, .. } => {
                    assert_eq!(chosen, Chosen::Any.code());
                    Reply::Service(Response::Iterator { iterator: 5 })
                }
                Request::IterationNext { iterator: 5 } => {
                    nexts += 1;
                    if nexts == 1 {
                        Reply::Service(Response::Section(d.clone()))
                    } else {
                        Reply::Error(AisError::NoSections)
                    }
                }
                Request::IterationNext { .. } => Reply::Error(AisError::BadHandle),
                Request::List { .. } => Reply::Service(Response::List {
                    items: Vec::new(),
                    next: None,
                }),
                // A wrong kind of answer.
                Request::Synchronize { .. } => Reply::Service(Response::Iterator { iterator: 1 }),
                Request::Close { handle: 3 } => Reply::Ok,
                Request::Close { .. } => Reply::Error(AisError::BadHandle),
                other => panic!("{other:?}"),
            };
            exec.reply(id, answer);
            true
        });
        let mut ckpt = Ckpt::from_connection(conn);
        let h = ckpt.open(b"c", OPEN_READ, None).unwrap();
        assert_eq!(h, CheckpointHandle(3));
        assert_eq!(ckpt.status_get(h).unwrap(), status);
        let it = ckpt
            .section_iteration_initialize(h, Chosen::Any, 0)
            .unwrap();
        assert_eq!(ckpt.section_iteration_next(it).unwrap(), Some(descriptor));
        assert_eq!(ckpt.section_iteration_next(it).unwrap(), None);
        assert_eq!(
            ckpt.section_iteration_next(SectionIterator(6))
                .unwrap_err()
                .ais_error(),
            Some(AisError::BadHandle)
        );
        assert_eq!(ckpt.list().unwrap(), Vec::new());
        ckpt.open_async(b"c", OPEN_READ, None, 11).unwrap();
        ckpt.synchronize_async(h, 12).unwrap();
        assert_eq!(
            ckpt.dispatch(Some(Duration::from_secs(5))).unwrap(),
            Some(CkptEvent::Open {
                invocation: 11,
                result: Ok(CheckpointHandle(4))
            })
        );
        assert_eq!(
            ckpt.dispatch(Some(Duration::from_secs(5))).unwrap(),
            Some(CkptEvent::Synchronize {
                invocation: 12,
                result: Err(AisError::TryAgain)
            })
        );
        assert_eq!(ckpt.dispatch(Some(Duration::ZERO)).unwrap(), None);
        let err = ckpt.synchronize(h).unwrap_err();
        assert!(
            err.to_string().contains("unexpected answer CkptIterator"),
            "{err}"
        );
        ckpt.close(h).unwrap();
        assert_eq!(
            ckpt.close(CheckpointHandle(99)).unwrap_err().ais_error(),
            Some(AisError::BadHandle)
        );
        drop(ckpt);
        assert_eq!(server.join().unwrap().len(), 12);
    }
}
