//! CKPT (SA Forum checkpoints, B.01.01 semantics) on the IPC socket and on the ring. The
//! executive's half is `ais_core::services::ckpt`, the client's `ais_client::ckpt`.
//!
//! Every node holds a replica of every checkpoint. What changes a checkpoint travels the ring
//! as a [`RingMessage::Update`] in safe order and is applied by every node at delivery; what
//! only reads (read, status, iteration) is answered from the local replica.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{AisError, Message, Protocol, ServiceId};

/// The CKPT protocol.
#[derive(Debug, Clone, Copy)]
pub struct CkptProtocol;

impl Protocol for CkptProtocol {
    const ID: ServiceId = ServiceId(6);
    const NAME: &'static str = "ckpt";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// `SA_CKPT_WR_ALL_REPLICAS`: a write returns when every replica has it.
pub const WR_ALL_REPLICAS: u32 = 0x1;
/// `SA_CKPT_WR_ACTIVE_REPLICA`: a write returns when the active replica has it.
pub const WR_ACTIVE_REPLICA: u32 = 0x2;
/// `SA_CKPT_WR_ACTIVE_REPLICA_WEAK`.
pub const WR_ACTIVE_REPLICA_WEAK: u32 = 0x4;
/// `SA_CKPT_CHECKPOINT_COLLOCATED`: the application chooses the active replica.
pub const CHECKPOINT_COLLOCATED: u32 = 0x8;
/// Every creation flag this build knows.
pub const CREATION_FLAGS: u32 =
    WR_ALL_REPLICAS | WR_ACTIVE_REPLICA | WR_ACTIVE_REPLICA_WEAK | CHECKPOINT_COLLOCATED;

/// `SA_CKPT_CHECKPOINT_READ`.
pub const OPEN_READ: u8 = 0x1;
/// `SA_CKPT_CHECKPOINT_WRITE`.
pub const OPEN_WRITE: u8 = 0x2;
/// `SA_CKPT_CHECKPOINT_CREATE`.
pub const OPEN_CREATE: u8 = 0x4;

/// `SA_TIME_END`: never (a retention duration or an expiration time).
pub const TIME_END: u64 = i64::MAX as u64;
/// Longest checkpoint name (`SaNameT`).
pub const MAX_NAME: usize = 256;
/// Longest section id this build accepts (`maxSectionIdSize` is checked against it).
pub const MAX_SECTION_ID: usize = 4096;
/// Most data bytes one read answers, and the budget of one request (the rest of an IPC
/// packet carries the header and ids). A read that would answer more is refused with
/// `SA_AIS_ERR_TOO_BIG`: the client library reads larger ranges in pieces. A read element's
/// `size` is the most it reads: `u64::MAX` reads to the end of the section, and a read at
/// the end answers no bytes.
pub const MAX_READ: usize = crate::ipc::MAX_PAYLOAD - 4096;
/// Section state `SA_CKPT_SECTION_VALID`.
pub const SECTION_VALID: u8 = 1;
/// Section state `SA_CKPT_SECTION_CORRUPTED` (never set by this build).
pub const SECTION_CORRUPTED: u8 = 2;

/// Which sections an iteration returns (`SaCkptSectionsChosenT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// `SA_CKPT_SECTIONS_FOREVER`: those that never expire.
    Forever,
    /// `SA_CKPT_SECTIONS_LEQ_EXPIRATION_TIME`: expiring at or before the time given.
    LeqExpiration,
    /// `SA_CKPT_SECTIONS_GEQ_EXPIRATION_TIME`: expiring at or after the time given.
    GeqExpiration,
    /// `SA_CKPT_SECTIONS_CORRUPTED`.
    Corrupted,
    /// `SA_CKPT_SECTIONS_ANY`.
    Any,
}

impl Chosen {
    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            Chosen::Forever => 1,
            Chosen::LeqExpiration => 2,
            Chosen::GeqExpiration => 3,
            Chosen::Corrupted => 4,
            Chosen::Any => 5,
        }
    }

    /// The value for a code, `None` for an unknown one (`SA_AIS_ERR_INVALID_PARAM`).
    pub fn from_code(c: u8) -> Option<Chosen> {
        Some(match c {
            1 => Chosen::Forever,
            2 => Chosen::LeqExpiration,
            3 => Chosen::GeqExpiration,
            4 => Chosen::Corrupted,
            5 => Chosen::Any,
            _ => return None,
        })
    }
}

/// A checkpoint's creation attributes (`SaCkptCheckpointCreationAttributesT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// `WR_*` and `CHECKPOINT_COLLOCATED` flags.
    pub creation_flags: u32,
    /// Most data bytes in all sections together.
    pub checkpoint_size: u64,
    /// How long the checkpoint outlives its last close, nanoseconds ([`TIME_END`]: forever).
    pub retention_duration: u64,
    /// Most sections.
    pub max_sections: u32,
    /// Most data bytes in one section.
    pub max_section_size: u64,
    /// Longest section id.
    pub max_section_id_size: u64,
}

impl Attributes {
    /// Equal but for the retention duration (an open with `CREATE` of an existing checkpoint
    /// must give these, `SA_AIS_ERR_EXIST` otherwise).
    pub fn same_shape(&self, other: &Attributes) -> bool {
        Attributes {
            retention_duration: 0,
            ..*self
        } == Attributes {
            retention_duration: 0,
            ..*other
        }
    }
}

fn put_attrs(w: &mut Writer, a: &Attributes) {
    w.u32(a.creation_flags)
        .u64(a.checkpoint_size)
        .u64(a.retention_duration)
        .u32(a.max_sections)
        .u64(a.max_section_size)
        .u64(a.max_section_id_size);
}

fn get_attrs(r: &mut Reader) -> Result<Attributes, DecodeError> {
    Ok(Attributes {
        creation_flags: r.u32("creation flags")?,
        checkpoint_size: r.u64("checkpoint size")?,
        retention_duration: r.u64("retention duration")?,
        max_sections: r.u32("max sections")?,
        max_section_size: r.u64("max section size")?,
        max_section_id_size: r.u64("max section id size")?,
    })
}

const ATTRS_LEN: usize = 4 + 8 + 8 + 4 + 8 + 8;

/// A section's descriptor (`SaCkptSectionDescriptorT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionDescriptor {
    /// Its id (empty: the default section).
    pub id: Bytes,
    /// When it expires, nanoseconds since the UNIX epoch ([`TIME_END`]: never).
    pub expiration_time: u64,
    /// Its data bytes.
    pub size: u64,
    /// [`SECTION_VALID`] or [`SECTION_CORRUPTED`].
    pub state: u8,
    /// When it last changed, nanoseconds since the UNIX epoch (the applying node's clock).
    pub last_update: u64,
}

fn put_descriptor(w: &mut Writer, d: &SectionDescriptor) {
    w.short_bytes(&d.id)
        .u64(d.expiration_time)
        .u64(d.size)
        .u8(d.state)
        .u64(d.last_update);
}

/// The encoded size of a [`SectionDescriptor`] without its id.
const DESCRIPTOR_FIXED: usize = 2 + 8 + 8 + 1 + 8;

fn get_descriptor(r: &mut Reader) -> Result<SectionDescriptor, DecodeError> {
    Ok(SectionDescriptor {
        id: r.short_bytes("section id")?,
        expiration_time: r.u64("expiration time")?,
        size: r.u64("section size")?,
        state: r.u8("section state")?,
        last_update: r.u64("last update")?,
    })
}

/// A checkpoint's status (`SaCkptCheckpointDescriptorT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Its creation attributes (with the current retention duration).
    pub attributes: Attributes,
    /// How many sections it has.
    pub sections: u32,
    /// Data bytes in its sections.
    pub memory_used: u64,
}

/// One checkpoint in a [`Response::List`] (for `aisctl ckpt ls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its name.
    pub name: Bytes,
    /// Its status.
    pub status: Status,
    /// Opens of it, all nodes together.
    pub opens: u32,
    /// Unlinked (its name is free; it lives until its last close).
    pub unlinked: bool,
    /// Its cluster-wide identity, `REP.SEQ.N` (the ring it was created in and its number
    /// there).
    pub id: String,
}

/// One element of a [`Request::Write`] (`SaCkptIOVectorElementT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteElement {
    /// The section (empty: the default section).
    pub section: Bytes,
    /// Where in the section.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

/// One element of a [`Request::Read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadElement {
    /// The section (empty: the default section).
    pub section: Bytes,
    /// Where in the section.
    pub offset: u64,
    /// Most bytes to read.
    pub size: u64,
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp {
        service: "ckpt",
        op,
    }
}

fn put_opt_attrs(w: &mut Writer, a: &Option<Attributes>) {
    match a {
        None => {
            w.u8(0);
        }
        Some(a) => {
            w.u8(1);
            put_attrs(w, a);
        }
    }
}

fn get_opt_attrs(r: &mut Reader) -> Result<Option<Attributes>, DecodeError> {
    Ok(if r.bool("attributes given")? {
        Some(get_attrs(r)?)
    } else {
        None
    })
}

fn put_opt_id(w: &mut Writer, id: &Option<Bytes>) {
    match id {
        None => {
            w.u8(0);
        }
        Some(id) => {
            w.u8(1).short_bytes(id);
        }
    }
}

fn get_opt_id(r: &mut Reader) -> Result<Option<Bytes>, DecodeError> {
    Ok(if r.bool("section id given")? {
        Some(r.short_bytes("section id")?)
    } else {
        None
    })
}

fn put_writes(w: &mut Writer, elements: &[WriteElement]) {
    w.count(elements.len());
    for e in elements {
        w.short_bytes(&e.section).u64(e.offset).long_bytes(&e.data);
    }
}

fn get_writes(r: &mut Reader) -> Result<Vec<WriteElement>, DecodeError> {
    let n = r.count("write elements", 2 + 8 + 4)?;
    (0..n)
        .map(|_| {
            Ok(WriteElement {
                section: r.short_bytes("section id")?,
                offset: r.u64("offset")?,
                data: r.long_bytes("data")?,
            })
        })
        .collect()
}

/// A CKPT request. Handles are the executive's numbers for one open of one checkpoint by one
/// connection.
///
/// Not `non_exhaustive`: the executive's handler must answer every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `saCkptCheckpointOpen`: answered [`Response::Opened`].
    Open {
        /// The checkpoint's name.
        name: Bytes,
        /// `OPEN_*` flags.
        flags: u8,
        /// With [`OPEN_CREATE`] (and only then): its creation attributes.
        attributes: Option<Attributes>,
    },
    /// `saCkptCheckpointOpenAsync`: answered `Ok`, then [`Callback::Open`].
    OpenAsync {
        /// The checkpoint's name.
        name: Bytes,
        /// `OPEN_*` flags.
        flags: u8,
        /// With [`OPEN_CREATE`]: its creation attributes.
        attributes: Option<Attributes>,
        /// The caller's number for it.
        invocation: u64,
    },
    /// `saCkptCheckpointClose`.
    Close {
        /// The handle.
        handle: u64,
    },
    /// `saCkptCheckpointUnlink`: the name is freed at once; the data lives until its last
    /// close.
    Unlink {
        /// The checkpoint's name.
        name: Bytes,
    },
    /// `saCkptCheckpointRetentionDurationSet`.
    RetentionDurationSet {
        /// The handle.
        handle: u64,
        /// Nanoseconds ([`TIME_END`]: forever).
        duration: u64,
    },
    /// `saCkptActiveReplicaSet`.
    ActiveReplicaSet {
        /// The handle.
        handle: u64,
    },
    /// `saCkptCheckpointStatusGet`: answered [`Response::Status`].
    StatusGet {
        /// The handle.
        handle: u64,
    },
    /// `saCkptSectionCreate`: answered [`Response::SectionCreated`].
    SectionCreate {
        /// The handle.
        handle: u64,
        /// Its id; `None`: the executive generates one (`SA_CKPT_GENERATED_SECTION_ID`).
        section: Option<Bytes>,
        /// When it expires, nanoseconds since the UNIX epoch ([`TIME_END`]: never).
        expiration_time: u64,
        /// Its initial data.
        data: Bytes,
    },
    /// `saCkptSectionDelete`.
    SectionDelete {
        /// The handle.
        handle: u64,
        /// The section.
        section: Bytes,
    },
    /// `saCkptSectionExpirationTimeSet`.
    SectionExpirationTimeSet {
        /// The handle.
        handle: u64,
        /// The section.
        section: Bytes,
        /// When it expires ([`TIME_END`]: never).
        expiration_time: u64,
    },
    /// `saCkptSectionIterationInitialize`: answered [`Response::Iterator`].
    IterationInitialize {
        /// The handle.
        handle: u64,
        /// Which sections ([`Chosen::code`]).
        chosen: u8,
        /// The time [`Chosen::LeqExpiration`] and [`Chosen::GeqExpiration`] compare with.
        expiration_time: u64,
    },
    /// `saCkptSectionIterationNext`: answered [`Response::Section`], or
    /// `SA_AIS_ERR_NO_SECTIONS` past the last.
    IterationNext {
        /// The iterator.
        iterator: u64,
    },
    /// `saCkptSectionIterationFinalize`.
    IterationFinalize {
        /// The iterator.
        iterator: u64,
    },
    /// `saCkptCheckpointWrite`: every element or none ([`Response::WriteFailed`] names the
    /// first that cannot be written).
    Write {
        /// The handle.
        handle: u64,
        /// What to write.
        elements: Vec<WriteElement>,
    },
    /// `saCkptSectionOverwrite`: the section's data becomes `data`.
    Overwrite {
        /// The handle.
        handle: u64,
        /// The section.
        section: Bytes,
        /// Its new data.
        data: Bytes,
    },
    /// `saCkptCheckpointRead`: answered [`Response::Data`] or [`Response::ReadFailed`].
    Read {
        /// The handle.
        handle: u64,
        /// What to read.
        elements: Vec<ReadElement>,
    },
    /// `saCkptCheckpointSynchronize`: answered when every update sent before it has reached
    /// every replica.
    Synchronize {
        /// The handle.
        handle: u64,
    },
    /// `saCkptCheckpointSynchronizeAsync`: answered `Ok`, then [`Callback::Synchronize`].
    SynchronizeAsync {
        /// The handle.
        handle: u64,
        /// The caller's number for it.
        invocation: u64,
    },
    /// The checkpoints of the cluster (`aisctl ckpt ls`), ordered by name then id, from the
    /// `start`-th: answered [`Response::List`], as many as fit one answer, with where the
    /// next page starts.
    List {
        /// The first one's position in the order (0 for the first page).
        start: u32,
    },
    /// The checkpoint now named `name` and its sections, without opening it (an open and
    /// close would restart its retention clock; `aisctl ckpt show`): answered
    /// [`Response::Described`] with its sections in id order from the `start`-th, as many as
    /// fit one answer; `NOT_EXIST` when no checkpoint has that name.
    Describe {
        /// The checkpoint's name.
        name: Bytes,
        /// The first section's position in id order (0 for the first page).
        start: u32,
    },
    /// Bytes of one section of the checkpoint now named `name`, without opening it (`aisctl
    /// ckpt read`): answered [`Response::Data`] with one part of at most [`MAX_READ`] bytes
    /// (shorter than asked at the section's end, or when more than one answer carries: ask
    /// again from where it ended); `NOT_EXIST` for an unknown name or section,
    /// `INVALID_PARAM` for an offset beyond the section's end.
    Peek {
        /// The checkpoint's name.
        name: Bytes,
        /// The section's id.
        section: Bytes,
        /// The first byte.
        offset: u64,
        /// How many bytes at most.
        size: u64,
    },
}

const OP_OPEN: u16 = 60;
const OP_OPEN_ASYNC: u16 = 61;
const OP_CLOSE: u16 = 62;
const OP_UNLINK: u16 = 63;
const OP_RETENTION: u16 = 64;
const OP_ACTIVE_REPLICA: u16 = 65;
const OP_STATUS: u16 = 66;
const OP_SECTION_CREATE: u16 = 67;
const OP_SECTION_DELETE: u16 = 68;
const OP_SECTION_EXPIRATION: u16 = 69;
const OP_ITER_INIT: u16 = 70;
const OP_ITER_NEXT: u16 = 71;
const OP_ITER_FINALIZE: u16 = 72;
const OP_WRITE: u16 = 73;
const OP_OVERWRITE: u16 = 74;
const OP_READ: u16 = 75;
const OP_SYNCHRONIZE: u16 = 76;
const OP_SYNCHRONIZE_ASYNC: u16 = 77;
const OP_LIST: u16 = 78;
const OP_DESCRIBE: u16 = 79;
const OP_PEEK: u16 = 80;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Open { .. } => OP_OPEN,
            Request::OpenAsync { .. } => OP_OPEN_ASYNC,
            Request::Close { .. } => OP_CLOSE,
            Request::Unlink { .. } => OP_UNLINK,
            Request::RetentionDurationSet { .. } => OP_RETENTION,
            Request::ActiveReplicaSet { .. } => OP_ACTIVE_REPLICA,
            Request::StatusGet { .. } => OP_STATUS,
            Request::SectionCreate { .. } => OP_SECTION_CREATE,
            Request::SectionDelete { .. } => OP_SECTION_DELETE,
            Request::SectionExpirationTimeSet { .. } => OP_SECTION_EXPIRATION,
            Request::IterationInitialize { .. } => OP_ITER_INIT,
            Request::IterationNext { .. } => OP_ITER_NEXT,
            Request::IterationFinalize { .. } => OP_ITER_FINALIZE,
            Request::Write { .. } => OP_WRITE,
            Request::Overwrite { .. } => OP_OVERWRITE,
            Request::Read { .. } => OP_READ,
            Request::Synchronize { .. } => OP_SYNCHRONIZE,
            Request::SynchronizeAsync { .. } => OP_SYNCHRONIZE_ASYNC,
            Request::List { .. } => OP_LIST,
            Request::Describe { .. } => OP_DESCRIBE,
            Request::Peek { .. } => OP_PEEK,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Open { .. } => "CkptOpen",
            Request::OpenAsync { .. } => "CkptOpenAsync",
            Request::Close { .. } => "CkptClose",
            Request::Unlink { .. } => "CkptUnlink",
            Request::RetentionDurationSet { .. } => "CkptRetentionDurationSet",
            Request::ActiveReplicaSet { .. } => "CkptActiveReplicaSet",
            Request::StatusGet { .. } => "CkptStatusGet",
            Request::SectionCreate { .. } => "CkptSectionCreate",
            Request::SectionDelete { .. } => "CkptSectionDelete",
            Request::SectionExpirationTimeSet { .. } => "CkptSectionExpirationTimeSet",
            Request::IterationInitialize { .. } => "CkptSectionIterationInitialize",
            Request::IterationNext { .. } => "CkptSectionIterationNext",
            Request::IterationFinalize { .. } => "CkptSectionIterationFinalize",
            Request::Write { .. } => "CkptWrite",
            Request::Overwrite { .. } => "CkptSectionOverwrite",
            Request::Read { .. } => "CkptRead",
            Request::Synchronize { .. } => "CkptSynchronize",
            Request::SynchronizeAsync { .. } => "CkptSynchronizeAsync",
            Request::List { .. } => "CkptList",
            Request::Describe { .. } => "CkptDescribe",
            Request::Peek { .. } => "CkptPeek",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Open {
                name,
                flags,
                attributes,
            } => {
                w.short_bytes(name).u8(*flags);
                put_opt_attrs(w, attributes);
            }
            Request::OpenAsync {
                name,
                flags,
                attributes,
                invocation,
            } => {
                w.short_bytes(name).u8(*flags);
                put_opt_attrs(w, attributes);
                w.u64(*invocation);
            }
            Request::Close { handle }
            | Request::ActiveReplicaSet { handle }
            | Request::StatusGet { handle }
            | Request::Synchronize { handle } => {
                w.u64(*handle);
            }
            Request::Unlink { name } => {
                w.short_bytes(name);
            }
            Request::RetentionDurationSet { handle, duration } => {
                w.u64(*handle).u64(*duration);
            }
            Request::SectionCreate {
                handle,
                section,
                expiration_time,
                data,
            } => {
                w.u64(*handle);
                put_opt_id(w, section);
                w.u64(*expiration_time).long_bytes(data);
            }
            Request::SectionDelete { handle, section } => {
                w.u64(*handle).short_bytes(section);
            }
            Request::SectionExpirationTimeSet {
                handle,
                section,
                expiration_time,
            } => {
                w.u64(*handle).short_bytes(section).u64(*expiration_time);
            }
            Request::IterationInitialize {
                handle,
                chosen,
                expiration_time,
            } => {
                w.u64(*handle).u8(*chosen).u64(*expiration_time);
            }
            Request::IterationNext { iterator } | Request::IterationFinalize { iterator } => {
                w.u64(*iterator);
            }
            Request::Write { handle, elements } => {
                w.u64(*handle);
                put_writes(w, elements);
            }
            Request::Overwrite {
                handle,
                section,
                data,
            } => {
                w.u64(*handle).short_bytes(section).long_bytes(data);
            }
            Request::Read { handle, elements } => {
                w.u64(*handle).count(elements.len());
                for e in elements {
                    w.short_bytes(&e.section).u64(e.offset).u64(e.size);
                }
            }
            Request::SynchronizeAsync { handle, invocation } => {
                w.u64(*handle).u64(*invocation);
            }
            Request::List { start } => {
                w.u32(*start);
            }
            Request::Describe { name, start } => {
                w.short_bytes(name).u32(*start);
            }
            Request::Peek {
                name,
                section,
                offset,
                size,
            } => {
                w.short_bytes(name)
                    .short_bytes(section)
                    .u64(*offset)
                    .u64(*size);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            OP_OPEN => Request::Open {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
                attributes: get_opt_attrs(r)?,
            },
            OP_OPEN_ASYNC => Request::OpenAsync {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
                attributes: get_opt_attrs(r)?,
                invocation: r.u64("invocation")?,
            },
            OP_CLOSE => Request::Close {
                handle: r.u64("handle")?,
            },
            OP_UNLINK => Request::Unlink {
                name: r.short_bytes("name")?,
            },
            OP_RETENTION => Request::RetentionDurationSet {
                handle: r.u64("handle")?,
                duration: r.u64("retention duration")?,
            },
            OP_ACTIVE_REPLICA => Request::ActiveReplicaSet {
                handle: r.u64("handle")?,
            },
            OP_STATUS => Request::StatusGet {
                handle: r.u64("handle")?,
            },
            OP_SECTION_CREATE => Request::SectionCreate {
                handle: r.u64("handle")?,
                section: get_opt_id(r)?,
                expiration_time: r.u64("expiration time")?,
                data: r.long_bytes("data")?,
            },
            OP_SECTION_DELETE => Request::SectionDelete {
                handle: r.u64("handle")?,
                section: r.short_bytes("section id")?,
            },
            OP_SECTION_EXPIRATION => Request::SectionExpirationTimeSet {
                handle: r.u64("handle")?,
                section: r.short_bytes("section id")?,
                expiration_time: r.u64("expiration time")?,
            },
            OP_ITER_INIT => Request::IterationInitialize {
                handle: r.u64("handle")?,
                chosen: r.u8("sections chosen")?,
                expiration_time: r.u64("expiration time")?,
            },
            OP_ITER_NEXT => Request::IterationNext {
                iterator: r.u64("iterator")?,
            },
            OP_ITER_FINALIZE => Request::IterationFinalize {
                iterator: r.u64("iterator")?,
            },
            OP_WRITE => Request::Write {
                handle: r.u64("handle")?,
                elements: get_writes(r)?,
            },
            OP_OVERWRITE => Request::Overwrite {
                handle: r.u64("handle")?,
                section: r.short_bytes("section id")?,
                data: r.long_bytes("data")?,
            },
            OP_READ => {
                let handle = r.u64("handle")?;
                let n = r.count("read elements", 2 + 8 + 8)?;
                let elements = (0..n)
                    .map(|_| {
                        Ok(ReadElement {
                            section: r.short_bytes("section id")?,
                            offset: r.u64("offset")?,
                            size: r.u64("size")?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                Request::Read { handle, elements }
            }
            OP_SYNCHRONIZE => Request::Synchronize {
                handle: r.u64("handle")?,
            },
            OP_SYNCHRONIZE_ASYNC => Request::SynchronizeAsync {
                handle: r.u64("handle")?,
                invocation: r.u64("invocation")?,
            },
            OP_LIST => Request::List {
                start: r.u32("start")?,
            },
            OP_DESCRIBE => Request::Describe {
                name: r.short_bytes("name")?,
                start: r.u32("start")?,
            },
            OP_PEEK => Request::Peek {
                name: r.short_bytes("name")?,
                section: r.short_bytes("section id")?,
                offset: r.u64("offset")?,
                size: r.u64("size")?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// A CKPT answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Open`].
    Opened {
        /// The new handle.
        handle: u64,
    },
    /// Answer to [`Request::StatusGet`].
    Status(Status),
    /// Answer to [`Request::SectionCreate`]: the section's id (the generated one when none
    /// was given).
    SectionCreated {
        /// The id.
        section: Bytes,
    },
    /// Answer to [`Request::IterationInitialize`].
    Iterator {
        /// The iterator.
        iterator: u64,
    },
    /// Answer to [`Request::IterationNext`].
    Section(SectionDescriptor),
    /// Answer to [`Request::Write`] when an element cannot be written (none was).
    WriteFailed {
        /// The first element that cannot be written (`erroneousVectorIndex`).
        index: u32,
        /// Why.
        error: AisError,
    },
    /// Answer to [`Request::Read`]: each element's bytes.
    Data(Vec<Bytes>),
    /// Answer to [`Request::Read`] when an element cannot be read.
    ReadFailed {
        /// The first element that cannot be read.
        index: u32,
        /// Why.
        error: AisError,
    },
    /// Answer to [`Request::List`]: a page.
    List {
        /// The checkpoints.
        items: Vec<CheckpointInfo>,
        /// Where the next page starts; `None` after the last.
        next: Option<u32>,
    },
    /// Answer to [`Request::Describe`]: the checkpoint and a page of its sections.
    Described {
        /// The checkpoint.
        info: CheckpointInfo,
        /// Its sections, in id order.
        sections: Vec<SectionDescriptor>,
        /// Where the next page of sections starts; `None` after the last.
        next: Option<u32>,
    },
}

const R_OPENED: u16 = 60;
const R_STATUS: u16 = 61;
const R_SECTION_CREATED: u16 = 62;
const R_ITERATOR: u16 = 63;
const R_SECTION: u16 = 64;
const R_WRITE_FAILED: u16 = 65;
const R_DATA: u16 = 66;
const R_READ_FAILED: u16 = 67;
const R_LIST: u16 = 68;
const R_DESCRIBED: u16 = 69;

fn put_info(w: &mut Writer, c: &CheckpointInfo) {
    w.short_bytes(&c.name);
    put_status(w, &c.status);
    w.u32(c.opens)
        .u8(u8::from(c.unlinked))
        .short_bytes(c.id.as_bytes());
}

/// The encoded size of a [`CheckpointInfo`] without its name and id.
const INFO_FIXED: usize = 2 + ATTRS_LEN + 12 + 5 + 2;

fn get_info(r: &mut Reader) -> Result<CheckpointInfo, DecodeError> {
    Ok(CheckpointInfo {
        name: r.short_bytes("name")?,
        status: get_status(r)?,
        opens: r.u32("opens")?,
        unlinked: r.bool("unlinked")?,
        id: String::from_utf8_lossy(&r.short_bytes("id")?).into_owned(),
    })
}

fn put_next(w: &mut Writer, next: Option<u32>) {
    match next {
        None => {
            w.u8(0);
        }
        Some(n) => {
            w.u8(1).u32(n);
        }
    }
}

fn get_next(r: &mut Reader) -> Result<Option<u32>, DecodeError> {
    Ok(if r.bool("more")? {
        Some(r.u32("next")?)
    } else {
        None
    })
}

fn put_status(w: &mut Writer, s: &Status) {
    put_attrs(w, &s.attributes);
    w.u32(s.sections).u64(s.memory_used);
}

fn get_status(r: &mut Reader) -> Result<Status, DecodeError> {
    Ok(Status {
        attributes: get_attrs(r)?,
        sections: r.u32("sections")?,
        memory_used: r.u64("memory used")?,
    })
}

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::Opened { .. } => R_OPENED,
            Response::Status(_) => R_STATUS,
            Response::SectionCreated { .. } => R_SECTION_CREATED,
            Response::Iterator { .. } => R_ITERATOR,
            Response::Section(_) => R_SECTION,
            Response::WriteFailed { .. } => R_WRITE_FAILED,
            Response::Data(_) => R_DATA,
            Response::ReadFailed { .. } => R_READ_FAILED,
            Response::List { .. } => R_LIST,
            Response::Described { .. } => R_DESCRIBED,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::Opened { .. } => "CkptOpened",
            Response::Status(_) => "CkptStatus",
            Response::SectionCreated { .. } => "CkptSectionCreated",
            Response::Iterator { .. } => "CkptIterator",
            Response::Section(_) => "CkptSection",
            Response::WriteFailed { .. } => "CkptWriteFailed",
            Response::Data(_) => "CkptData",
            Response::ReadFailed { .. } => "CkptReadFailed",
            Response::List { .. } => "CkptList",
            Response::Described { .. } => "CkptDescribed",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::Opened { handle } => {
                w.u64(*handle);
            }
            Response::Status(s) => put_status(w, s),
            Response::SectionCreated { section } => {
                w.short_bytes(section);
            }
            Response::Iterator { iterator } => {
                w.u64(*iterator);
            }
            Response::Section(d) => put_descriptor(w, d),
            Response::WriteFailed { index, error } | Response::ReadFailed { index, error } => {
                w.u32(*index).u32(error.code());
            }
            Response::Data(parts) => {
                w.count(parts.len());
                for p in parts {
                    w.long_bytes(p);
                }
            }
            Response::List { items, next } => {
                w.count(items.len());
                for c in items {
                    put_info(w, c);
                }
                put_next(w, *next);
            }
            Response::Described {
                info,
                sections,
                next,
            } => {
                put_info(w, info);
                w.count(sections.len());
                for d in sections {
                    put_descriptor(w, d);
                }
                put_next(w, *next);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            R_OPENED => Response::Opened {
                handle: r.u64("handle")?,
            },
            R_STATUS => Response::Status(get_status(r)?),
            R_SECTION_CREATED => Response::SectionCreated {
                section: r.short_bytes("section id")?,
            },
            R_ITERATOR => Response::Iterator {
                iterator: r.u64("iterator")?,
            },
            R_SECTION => Response::Section(get_descriptor(r)?),
            R_WRITE_FAILED => Response::WriteFailed {
                index: r.u32("index")?,
                error: AisError::from_code(r.u32("error")?),
            },
            R_READ_FAILED => Response::ReadFailed {
                index: r.u32("index")?,
                error: AisError::from_code(r.u32("error")?),
            },
            R_DATA => {
                let n = r.count("read parts", 4)?;
                Response::Data(
                    (0..n)
                        .map(|_| r.long_bytes("data"))
                        .collect::<Result<_, _>>()?,
                )
            }
            R_LIST => {
                let n = r.count("checkpoints", INFO_FIXED)?;
                let items = (0..n)
                    .map(|_| get_info(r))
                    .collect::<Result<_, DecodeError>>()?;
                Response::List {
                    items,
                    next: get_next(r)?,
                }
            }
            R_DESCRIBED => {
                let info = get_info(r)?;
                let n = r.count("sections", DESCRIPTOR_FIXED)?;
                let sections = (0..n)
                    .map(|_| get_descriptor(r))
                    .collect::<Result<_, DecodeError>>()?;
                Response::Described {
                    info,
                    sections,
                    next: get_next(r)?,
                }
            }
            other => return Err(unknown(other)),
        })
    }
}

/// A CKPT callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The outcome of [`Request::OpenAsync`] (`saCkptCheckpointOpenCallback`).
    Open {
        /// The caller's number.
        invocation: u64,
        /// The handle, or why not.
        result: Result<u64, AisError>,
    },
    /// The outcome of [`Request::SynchronizeAsync`] (`saCkptCheckpointSynchronizeCallback`).
    Synchronize {
        /// The caller's number.
        invocation: u64,
        /// Done, or why not.
        result: Result<(), AisError>,
    },
}

const C_OPEN: u16 = 60;
const C_SYNCHRONIZE: u16 = 61;

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::Open { .. } => C_OPEN,
            Callback::Synchronize { .. } => C_SYNCHRONIZE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::Open { .. } => "CkptOpenCallback",
            Callback::Synchronize { .. } => "CkptSynchronizeCallback",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Callback::Open { invocation, result } => {
                w.u64(*invocation);
                match result {
                    Ok(h) => {
                        w.u32(1).u64(*h);
                    }
                    Err(e) => {
                        w.u32(e.code());
                    }
                }
            }
            Callback::Synchronize { invocation, result } => {
                w.u64(*invocation).u32(match result {
                    Ok(()) => 1,
                    Err(e) => e.code(),
                });
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            C_OPEN => {
                let invocation = r.u64("invocation")?;
                let result = match r.u32("error")? {
                    1 => Ok(r.u64("handle")?),
                    code => Err(AisError::from_code(code)),
                };
                Callback::Open { invocation, result }
            }
            C_SYNCHRONIZE => {
                let invocation = r.u64("invocation")?;
                let result = match r.u32("error")? {
                    1 => Ok(()),
                    code => Err(AisError::from_code(code)),
                };
                Callback::Synchronize { invocation, result }
            }
            other => return Err(unknown(other)),
        })
    }
}

/// A checkpoint's cluster-wide identity: the ring it was created in and its number among the
/// checkpoints created in that ring. Unique without coordination (one ring id names one
/// configuration), and ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CkptId {
    /// The ring's sequence number.
    pub seq: u64,
    /// The ring's representative.
    pub rep: u32,
    /// Its number in that ring.
    pub n: u32,
}

impl std::fmt::Display for CkptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.rep, self.seq, self.n)
    }
}

fn put_id(w: &mut Writer, id: &CkptId) {
    w.u64(id.seq).u32(id.rep).u32(id.n);
}

fn get_id(r: &mut Reader) -> Result<CkptId, DecodeError> {
    Ok(CkptId {
        seq: r.u64("checkpoint id")?,
        rep: r.u32("checkpoint id")?,
        n: r.u32("checkpoint id")?,
    })
}

/// What an [`RingMessage::Update`] changes. Each is applied by every node at delivery, in
/// the ring's order, with the same outcome everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Open (and with `attributes`, create when missing) the checkpoint named `name`.
    Open {
        /// Its name.
        name: Bytes,
        /// Creation attributes (`OPEN_CREATE`).
        attributes: Option<Attributes>,
    },
    /// One open by the sender ends.
    Close {
        /// The checkpoint.
        id: CkptId,
    },
    /// Free the name.
    Unlink {
        /// The name.
        name: Bytes,
    },
    /// A new retention duration.
    Retention {
        /// The checkpoint.
        id: CkptId,
        /// Nanoseconds.
        duration: u64,
    },
    /// A new section.
    SectionCreate {
        /// The checkpoint.
        id: CkptId,
        /// Its id (`None`: generated at delivery).
        section: Option<Bytes>,
        /// When it expires.
        expiration_time: u64,
        /// Its data.
        data: Bytes,
    },
    /// A section goes.
    SectionDelete {
        /// The checkpoint.
        id: CkptId,
        /// The section.
        section: Bytes,
    },
    /// A section's new expiration time.
    SectionExpiration {
        /// The checkpoint.
        id: CkptId,
        /// The section.
        section: Bytes,
        /// The time.
        expiration_time: u64,
    },
    /// Data into sections, all elements or none.
    Write {
        /// The checkpoint.
        id: CkptId,
        /// The elements.
        elements: Vec<WriteElement>,
    },
    /// A section's data replaced.
    Overwrite {
        /// The checkpoint.
        id: CkptId,
        /// The section.
        section: Bytes,
        /// The data.
        data: Bytes,
    },
    /// Nothing: delivered after every update sent before it (synchronize).
    Barrier,
    /// A retention timer ran out at the sender: delete the checkpoint if it is still closed
    /// since the same last close.
    RetentionExpired {
        /// The checkpoint.
        id: CkptId,
        /// Its count of last closes when the timer was armed.
        epoch: u64,
    },
    /// A section's expiration time passed at the sender: delete it if that is still its
    /// expiration time.
    SectionExpired {
        /// The checkpoint.
        id: CkptId,
        /// The section.
        section: Bytes,
        /// The expiration time that passed.
        expiration_time: u64,
    },
}

/// A CKPT message on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A change, sent in ring `(rep, seq)` (refused at delivery in any other ring, so a
    /// change never lands half in one configuration and half in the next; its client is told
    /// TRY_AGAIN).
    Update {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The sender's number for it (its answer goes to the request with this tag).
        tag: u64,
        /// The sender's memory limit for all checkpoints, bytes: a change that would pass it
        /// is refused everywhere alike (`SA_AIS_ERR_NO_RESOURCES`).
        limit: u64,
        /// The sender's clock when it sent it (nanoseconds since the UNIX epoch): the
        /// `lastUpdate` of what it changes, the same at every replica.
        time: u64,
        /// What changes.
        update: Update,
    },
    /// Sync, first step, sent by every member: what it holds (each checkpoint's identity
    /// and the digest of its history), how often it has each open, and which checkpoints it
    /// knows were deleted.
    Summary {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// `(checkpoint, history digest, opens by the sender)`.
        held: Vec<(CkptId, u64, u32)>,
        /// Checkpoints deleted (most recent last).
        deleted: Vec<CkptId>,
    },
    /// Sync, second step: one copy of a checkpoint, sent by the lowest member holding that
    /// copy (its sections follow as [`RingMessage::SyncSection`]).
    SyncCheckpoint {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The copy's header.
        copy: CopyHeader,
    },
    /// One piece of a section of a copy sent with [`RingMessage::SyncCheckpoint`].
    SyncSection {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The checkpoint.
        id: CkptId,
        /// The copy's history digest.
        history: u64,
        /// The section.
        section: SectionHeader,
        /// Where this piece starts in the section's data.
        offset: u64,
        /// The piece.
        data: Bytes,
    },
}

/// A checkpoint copy's header, in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyHeader {
    /// Its identity.
    pub id: CkptId,
    /// Its name.
    pub name: Bytes,
    /// Its attributes (with its retention duration).
    pub attributes: Attributes,
    /// Unlinked.
    pub unlinked: bool,
    /// Changes applied to it since creation.
    pub generation: u64,
    /// The digest of its history.
    pub history: u64,
    /// Count of last closes (retention timers).
    pub retention_epoch: u64,
    /// Sections it has.
    pub sections: u32,
    /// Sections deleted, with their change count at the deletion (most recent last).
    pub tombstones: Vec<(Bytes, u64)>,
}

/// A section's header, in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    /// Its id.
    pub id: Bytes,
    /// Its expiration time.
    pub expiration_time: u64,
    /// Changes to it since it was first created.
    pub changes: u64,
    /// When it last changed.
    pub last_update: u64,
    /// Its data bytes.
    pub size: u64,
}

const RING_UPDATE: u16 = 1;
const RING_SUMMARY: u16 = 2;
const RING_SYNC_CHECKPOINT: u16 = 3;
const RING_SYNC_SECTION: u16 = 4;

fn put_update(w: &mut Writer, u: &Update) {
    match u {
        Update::Open { name, attributes } => {
            w.u8(1).short_bytes(name);
            put_opt_attrs(w, attributes);
        }
        Update::Close { id } => {
            w.u8(2);
            put_id(w, id);
        }
        Update::Unlink { name } => {
            w.u8(3).short_bytes(name);
        }
        Update::Retention { id, duration } => {
            w.u8(4);
            put_id(w, id);
            w.u64(*duration);
        }
        Update::SectionCreate {
            id,
            section,
            expiration_time,
            data,
        } => {
            w.u8(5);
            put_id(w, id);
            put_opt_id(w, section);
            w.u64(*expiration_time).long_bytes(data);
        }
        Update::SectionDelete { id, section } => {
            w.u8(6);
            put_id(w, id);
            w.short_bytes(section);
        }
        Update::SectionExpiration {
            id,
            section,
            expiration_time,
        } => {
            w.u8(7);
            put_id(w, id);
            w.short_bytes(section).u64(*expiration_time);
        }
        Update::Write { id, elements } => {
            w.u8(8);
            put_id(w, id);
            put_writes(w, elements);
        }
        Update::Overwrite { id, section, data } => {
            w.u8(9);
            put_id(w, id);
            w.short_bytes(section).long_bytes(data);
        }
        Update::Barrier => {
            w.u8(10);
        }
        Update::RetentionExpired { id, epoch } => {
            w.u8(11);
            put_id(w, id);
            w.u64(*epoch);
        }
        Update::SectionExpired {
            id,
            section,
            expiration_time,
        } => {
            w.u8(12);
            put_id(w, id);
            w.short_bytes(section).u64(*expiration_time);
        }
    }
}

fn get_update(r: &mut Reader) -> Result<Update, DecodeError> {
    Ok(match r.u8("update")? {
        1 => Update::Open {
            name: r.short_bytes("name")?,
            attributes: get_opt_attrs(r)?,
        },
        2 => Update::Close { id: get_id(r)? },
        3 => Update::Unlink {
            name: r.short_bytes("name")?,
        },
        4 => Update::Retention {
            id: get_id(r)?,
            duration: r.u64("retention duration")?,
        },
        5 => Update::SectionCreate {
            id: get_id(r)?,
            section: get_opt_id(r)?,
            expiration_time: r.u64("expiration time")?,
            data: r.long_bytes("data")?,
        },
        6 => Update::SectionDelete {
            id: get_id(r)?,
            section: r.short_bytes("section id")?,
        },
        7 => Update::SectionExpiration {
            id: get_id(r)?,
            section: r.short_bytes("section id")?,
            expiration_time: r.u64("expiration time")?,
        },
        8 => Update::Write {
            id: get_id(r)?,
            elements: get_writes(r)?,
        },
        9 => Update::Overwrite {
            id: get_id(r)?,
            section: r.short_bytes("section id")?,
            data: r.long_bytes("data")?,
        },
        10 => Update::Barrier,
        11 => Update::RetentionExpired {
            id: get_id(r)?,
            epoch: r.u64("retention epoch")?,
        },
        12 => Update::SectionExpired {
            id: get_id(r)?,
            section: r.short_bytes("section id")?,
            expiration_time: r.u64("expiration time")?,
        },
        v => {
            return Err(DecodeError::Unknown {
                what: "checkpoint update",
                value: u64::from(v),
            });
        }
    })
}

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Update { .. } => RING_UPDATE,
            RingMessage::Summary { .. } => RING_SUMMARY,
            RingMessage::SyncCheckpoint { .. } => RING_SYNC_CHECKPOINT,
            RingMessage::SyncSection { .. } => RING_SYNC_SECTION,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Update { .. } => "CkptUpdate",
            RingMessage::Summary { .. } => "CkptSummary",
            RingMessage::SyncCheckpoint { .. } => "CkptSyncCheckpoint",
            RingMessage::SyncSection { .. } => "CkptSyncSection",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Update {
                rep,
                seq,
                tag,
                limit,
                time,
                update,
            } => {
                w.u32(*rep).u64(*seq).u64(*tag).u64(*limit).u64(*time);
                put_update(w, update);
            }
            RingMessage::Summary {
                rep,
                seq,
                held,
                deleted,
            } => {
                w.u32(*rep).u64(*seq).count(held.len());
                for (id, history, opens) in held {
                    put_id(w, id);
                    w.u64(*history).u32(*opens);
                }
                w.count(deleted.len());
                for id in deleted {
                    put_id(w, id);
                }
            }
            RingMessage::SyncCheckpoint { rep, seq, copy } => {
                w.u32(*rep).u64(*seq);
                put_id(w, &copy.id);
                w.short_bytes(&copy.name);
                put_attrs(w, &copy.attributes);
                w.u8(u8::from(copy.unlinked))
                    .u64(copy.generation)
                    .u64(copy.history)
                    .u64(copy.retention_epoch)
                    .u32(copy.sections)
                    .count(copy.tombstones.len());
                for (s, g) in &copy.tombstones {
                    w.short_bytes(s).u64(*g);
                }
            }
            RingMessage::SyncSection {
                rep,
                seq,
                id,
                history,
                section,
                offset,
                data,
            } => {
                w.u32(*rep).u64(*seq);
                put_id(w, id);
                w.u64(*history)
                    .short_bytes(&section.id)
                    .u64(section.expiration_time)
                    .u64(section.changes)
                    .u64(section.last_update)
                    .u64(section.size)
                    .u64(*offset)
                    .long_bytes(data);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            RING_UPDATE => RingMessage::Update {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                tag: r.u64("tag")?,
                limit: r.u64("memory limit")?,
                time: r.u64("time")?,
                update: get_update(r)?,
            },
            RING_SUMMARY => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let n = r.count("checkpoints held", 16 + 8 + 4)?;
                let held = (0..n)
                    .map(|_| Ok((get_id(r)?, r.u64("history")?, r.u32("opens")?)))
                    .collect::<Result<_, DecodeError>>()?;
                let n = r.count("checkpoints deleted", 16)?;
                let deleted = (0..n).map(|_| get_id(r)).collect::<Result<_, _>>()?;
                RingMessage::Summary {
                    rep,
                    seq,
                    held,
                    deleted,
                }
            }
            RING_SYNC_CHECKPOINT => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let id = get_id(r)?;
                let name = r.short_bytes("name")?;
                let attributes = get_attrs(r)?;
                let unlinked = r.bool("unlinked")?;
                let generation = r.u64("generation")?;
                let history = r.u64("history")?;
                let retention_epoch = r.u64("retention epoch")?;
                let sections = r.u32("sections")?;
                let n = r.count("tombstones", 2 + 8)?;
                let tombstones = (0..n)
                    .map(|_| Ok((r.short_bytes("section id")?, r.u64("generation")?)))
                    .collect::<Result<_, DecodeError>>()?;
                RingMessage::SyncCheckpoint {
                    rep,
                    seq,
                    copy: CopyHeader {
                        id,
                        name,
                        attributes,
                        unlinked,
                        generation,
                        history,
                        retention_epoch,
                        sections,
                        tombstones,
                    },
                }
            }
            RING_SYNC_SECTION => RingMessage::SyncSection {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                id: get_id(r)?,
                history: r.u64("history")?,
                section: SectionHeader {
                    id: r.short_bytes("section id")?,
                    expiration_time: r.u64("expiration time")?,
                    changes: r.u64("changes")?,
                    last_update: r.u64("last update")?,
                    size: r.u64("section size")?,
                },
                offset: r.u64("offset")?,
                data: r.long_bytes("data")?,
            },
            other => return Err(unknown(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    fn attrs() -> Attributes {
        Attributes {
            creation_flags: WR_ALL_REPLICAS,
            checkpoint_size: 1 << 20,
            retention_duration: TIME_END,
            max_sections: 16,
            max_section_size: 1 << 16,
            max_section_id_size: 32,
        }
    }

    fn id() -> CkptId {
        CkptId {
            seq: 8,
            rep: 1,
            n: 3,
        }
    }

    #[test]
    fn every_ckpt_message_round_trips() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let w = WriteElement {
            section: b("s1"),
            offset: 4,
            data: b("data"),
        };
        let reqs = [
            Request::Open {
                name: b("ck"),
                flags: OPEN_CREATE | OPEN_WRITE,
                attributes: Some(attrs()),
            },
            Request::OpenAsync {
                name: b("ck"),
                flags: OPEN_READ,
                attributes: None,
                invocation: 7,
            },
            Request::Close { handle: 1 },
            Request::Unlink { name: b("ck") },
            Request::RetentionDurationSet {
                handle: 1,
                duration: 5,
            },
            Request::ActiveReplicaSet { handle: 1 },
            Request::StatusGet { handle: 1 },
            Request::SectionCreate {
                handle: 1,
                section: Some(b("s1")),
                expiration_time: TIME_END,
                data: b("x"),
            },
            Request::SectionCreate {
                handle: 1,
                section: None,
                expiration_time: 9,
                data: Bytes::new(),
            },
            Request::SectionDelete {
                handle: 1,
                section: b("s1"),
            },
            Request::SectionExpirationTimeSet {
                handle: 1,
                section: b("s1"),
                expiration_time: 3,
            },
            Request::IterationInitialize {
                handle: 1,
                chosen: Chosen::Any.code(),
                expiration_time: 0,
            },
            Request::IterationNext { iterator: 2 },
            Request::IterationFinalize { iterator: 2 },
            Request::Write {
                handle: 1,
                elements: vec![w.clone(), w.clone()],
            },
            Request::Overwrite {
                handle: 1,
                section: b(""),
                data: b("abc"),
            },
            Request::Read {
                handle: 1,
                elements: vec![ReadElement {
                    section: b("s1"),
                    offset: 0,
                    size: 10,
                }],
            },
            Request::Synchronize { handle: 1 },
            Request::SynchronizeAsync {
                handle: 1,
                invocation: 4,
            },
            Request::List { start: 0 },
            Request::List { start: 700 },
            Request::Describe {
                name: b("ck"),
                start: 3,
            },
            Request::Peek {
                name: b("ck"),
                section: b(""),
                offset: 5,
                size: u64::MAX,
            },
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let status = Status {
            attributes: attrs(),
            sections: 2,
            memory_used: 10,
        };
        let resps = [
            Response::Opened { handle: 3 },
            Response::Status(status.clone()),
            Response::SectionCreated { section: b("g") },
            Response::Iterator { iterator: 5 },
            Response::Section(SectionDescriptor {
                id: b("s1"),
                expiration_time: TIME_END,
                size: 4,
                state: SECTION_VALID,
                last_update: 11,
            }),
            Response::WriteFailed {
                index: 1,
                error: AisError::NotExist,
            },
            Response::Data(vec![b("abc"), Bytes::new()]),
            Response::ReadFailed {
                index: 0,
                error: AisError::InvalidParam,
            },
            Response::List {
                items: vec![],
                next: None,
            },
            Response::List {
                next: Some(3),
                items: vec![CheckpointInfo {
                    name: b("ck"),
                    status: status.clone(),
                    opens: 2,
                    unlinked: false,
                    id: id().to_string(),
                }],
            },
            Response::Described {
                info: CheckpointInfo {
                    name: b("ck"),
                    status,
                    opens: 0,
                    unlinked: false,
                    id: id().to_string(),
                },
                sections: vec![SectionDescriptor {
                    id: b("s1"),
                    expiration_time: 7,
                    size: 0,
                    state: SECTION_VALID,
                    last_update: 1,
                }],
                next: Some(1),
            },
        ];
        assert!(resps.iter().all(|r| r.op() >= FIRST_RESPONSE_OP));
        assert_round_trips(Kind::Response, &resps);
        assert_round_trips(
            Kind::Callback,
            &[
                Callback::Open {
                    invocation: 1,
                    result: Ok(4),
                },
                Callback::Open {
                    invocation: 2,
                    result: Err(AisError::NotExist),
                },
                Callback::Synchronize {
                    invocation: 3,
                    result: Ok(()),
                },
                Callback::Synchronize {
                    invocation: 3,
                    result: Err(AisError::TryAgain),
                },
            ],
        );
        let update = |u| RingMessage::Update {
            rep: 1,
            seq: 8,
            tag: 2,
            limit: 1 << 30,
            time: 12,
            update: u,
        };
        assert_round_trips(
            Kind::Request,
            &[
                update(Update::Open {
                    name: b("ck"),
                    attributes: Some(attrs()),
                }),
                update(Update::Close { id: id() }),
                update(Update::Unlink { name: b("ck") }),
                update(Update::Retention {
                    id: id(),
                    duration: 1,
                }),
                update(Update::SectionCreate {
                    id: id(),
                    section: None,
                    expiration_time: TIME_END,
                    data: b("d"),
                }),
                update(Update::SectionDelete {
                    id: id(),
                    section: b("s"),
                }),
                update(Update::SectionExpiration {
                    id: id(),
                    section: b("s"),
                    expiration_time: 5,
                }),
                update(Update::Write {
                    id: id(),
                    elements: vec![w],
                }),
                update(Update::Overwrite {
                    id: id(),
                    section: b("s"),
                    data: b("d"),
                }),
                update(Update::Barrier),
                update(Update::RetentionExpired { id: id(), epoch: 2 }),
                update(Update::SectionExpired {
                    id: id(),
                    section: b("s"),
                    expiration_time: 5,
                }),
                RingMessage::Summary {
                    rep: 1,
                    seq: 8,
                    held: vec![(id(), 99, 2)],
                    deleted: vec![id()],
                },
                RingMessage::SyncCheckpoint {
                    rep: 1,
                    seq: 8,
                    copy: CopyHeader {
                        id: id(),
                        name: b("ck"),
                        attributes: attrs(),
                        unlinked: true,
                        generation: 4,
                        history: 77,
                        retention_epoch: 1,
                        sections: 1,
                        tombstones: vec![(b("old"), 2)],
                    },
                },
                RingMessage::SyncSection {
                    rep: 1,
                    seq: 8,
                    id: id(),
                    history: 77,
                    section: SectionHeader {
                        id: b("s"),
                        expiration_time: TIME_END,
                        changes: 3,
                        last_update: 5,
                        size: 10,
                    },
                    offset: 4,
                    data: b("abcdef"),
                },
            ],
        );
    }

    #[test]
    fn only_the_retention_duration_may_differ_between_creations() {
        let a = attrs();
        let mut b = a;
        b.retention_duration = 1;
        assert!(a.same_shape(&b));
        b.max_sections = 2;
        assert!(!a.same_shape(&b));
    }

    #[test]
    fn checkpoint_ids_order_oldest_ring_first() {
        let old = CkptId {
            seq: 4,
            rep: 9,
            n: 7,
        };
        assert!(old < id());
        assert_eq!(id().to_string(), "1.8.3");
        for c in [
            Chosen::Forever,
            Chosen::LeqExpiration,
            Chosen::GeqExpiration,
            Chosen::Corrupted,
            Chosen::Any,
        ] {
            assert_eq!(Chosen::from_code(c.code()), Some(c));
        }
        assert_eq!(Chosen::from_code(0), None);
        assert_eq!(Chosen::from_code(6), None);
    }
}
