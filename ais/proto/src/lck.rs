//! LCK (SA Forum distributed locks, B.01.01 semantics) on the IPC socket and on the ring. The
//! executive's half is `ais_core::services::lck`, the client's `ais_client::lck`.
//!
//! Every node holds the whole lock table (resources, granted locks, queued requests in FIFO
//! order). What changes it travels the ring as a [`RingMessage::Update`] in safe order and
//! is applied by every node at delivery with the same outcome; the requester's node answers.
//!
//! Identities are chosen by the node that makes them, so they need no round trip: a holder
//! is one resource handle of one node ([`Holder`]), a lock is one request of a holder
//! ([`LockId`]); both carry the node's *epoch* (the ring in which its LCK service first
//! synchronised), so a restarted node never reuses the identities of its previous life.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{AisError, Message, Protocol, ServiceId};

/// The LCK protocol.
#[derive(Debug, Clone, Copy)]
pub struct LckProtocol;

impl Protocol for LckProtocol {
    const ID: ServiceId = ServiceId(8);
    const NAME: &'static str = "lck";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// `SA_LCK_RESOURCE_CREATE`: open creates the resource when it does not exist.
pub const RESOURCE_CREATE: u8 = 0x1;
/// `SA_LCK_LOCK_NO_QUEUE`: a lock that cannot be granted at once is not queued.
pub const LOCK_NO_QUEUE: u32 = 0x1;
/// `SA_LCK_LOCK_ORPHAN`: the lock outlives its holder (until purged).
pub const LOCK_ORPHAN: u32 = 0x2;
/// Every lock flag this build knows.
pub const LOCK_FLAGS: u32 = LOCK_NO_QUEUE | LOCK_ORPHAN;
/// `SA_LCK_OPT_ORPHAN_LOCKS`.
pub const OPT_ORPHAN_LOCKS: u64 = 0x1;
/// `SA_LCK_OPT_DEADLOCK_DETECTION`.
pub const OPT_DEADLOCK_DETECTION: u64 = 0x2;
/// Longest resource name (`SaNameT`).
pub const MAX_NAME: usize = 256;
/// `SA_TIME_END`: a lock request without a timeout.
pub const TIME_END: u64 = i64::MAX as u64;

/// A lock mode (`SaLckLockModeT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// `SA_LCK_PR_LOCK_MODE` (1): protected read, shared.
    Pr,
    /// `SA_LCK_EX_LOCK_MODE` (2): exclusive.
    Ex,
}

impl Mode {
    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            Mode::Pr => 1,
            Mode::Ex => 2,
        }
    }

    /// The mode for a code, `None` for another (`SA_AIS_ERR_INVALID_PARAM`).
    pub fn from_code(c: u8) -> Option<Mode> {
        match c {
            1 => Some(Mode::Pr),
            2 => Some(Mode::Ex),
            _ => None,
        }
    }

    /// Whether a lock of this mode and one of `other` cannot be held at once.
    pub fn conflicts(self, other: Mode) -> bool {
        self == Mode::Ex || other == Mode::Ex
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Pr => "PR",
            Mode::Ex => "EX",
        })
    }
}

fn get_mode(r: &mut Reader, field: &'static str) -> Result<Mode, DecodeError> {
    let c = r.u8(field)?;
    Mode::from_code(c).ok_or(DecodeError::Unknown {
        what: "lock mode",
        value: u64::from(c),
    })
}

/// A lock request's outcome (`SaLckLockStatusT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockStatus {
    /// `SA_LCK_LOCK_GRANTED` (1).
    Granted,
    /// `SA_LCK_LOCK_DEADLOCK` (2): queueing it would have closed a cycle of waiters.
    Deadlock,
    /// `SA_LCK_LOCK_NOT_QUEUED` (3): not grantable at once, and `LOCK_NO_QUEUE` was given.
    NotQueued,
    /// `SA_LCK_LOCK_ORPHANED` (4): an orphan lock stands in the way (purge it).
    Orphaned,
    /// `SA_LCK_LOCK_NO_MORE` (5): the cluster's lock limit is reached.
    NoMore,
    /// `SA_LCK_LOCK_DUPLICATE_EX` (6): the handle already holds an EX lock on the resource.
    DuplicateEx,
}

impl LockStatus {
    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            LockStatus::Granted => 1,
            LockStatus::Deadlock => 2,
            LockStatus::NotQueued => 3,
            LockStatus::Orphaned => 4,
            LockStatus::NoMore => 5,
            LockStatus::DuplicateEx => 6,
        }
    }

    /// The status for a code.
    pub fn from_code(c: u8) -> Option<LockStatus> {
        Some(match c {
            1 => LockStatus::Granted,
            2 => LockStatus::Deadlock,
            3 => LockStatus::NotQueued,
            4 => LockStatus::Orphaned,
            5 => LockStatus::NoMore,
            6 => LockStatus::DuplicateEx,
            _ => return None,
        })
    }
}

fn get_status(r: &mut Reader) -> Result<LockStatus, DecodeError> {
    let c = r.u8("lock status")?;
    LockStatus::from_code(c).ok_or(DecodeError::Unknown {
        what: "lock status",
        value: u64::from(c),
    })
}

/// One resource handle of one node: a vertex of the waits-for graph (a process, through one
/// handle; each handle belongs to one connection of its node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Holder {
    /// Its node.
    pub node: u32,
    /// The node's epoch (the ring sequence of its service's first sync).
    pub epoch: u64,
    /// The node's number for the handle.
    pub handle: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}/h{}", self.node, self.epoch, self.handle)
    }
}

fn put_holder(w: &mut Writer, h: &Holder) {
    w.u32(h.node).u64(h.epoch).u64(h.handle);
}

fn get_holder(r: &mut Reader) -> Result<Holder, DecodeError> {
    Ok(Holder {
        node: r.u32("holder node")?,
        epoch: r.u64("holder epoch")?,
        handle: r.u64("holder handle")?,
    })
}

/// A lock's cluster-wide identity: its requester's node and epoch, and the node's number
/// for it (the lock id its client sees).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LockId {
    /// The requester's node.
    pub node: u32,
    /// The node's epoch.
    pub epoch: u64,
    /// The node's number for it.
    pub n: u64,
}

impl std::fmt::Display for LockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.node, self.epoch, self.n)
    }
}

fn put_lock_id(w: &mut Writer, l: &LockId) {
    w.u32(l.node).u64(l.epoch).u64(l.n);
}

fn get_lock_id(r: &mut Reader) -> Result<LockId, DecodeError> {
    Ok(LockId {
        node: r.u32("lock node")?,
        epoch: r.u64("lock epoch")?,
        n: r.u64("lock number")?,
    })
}

fn put_result(w: &mut Writer, e: &Result<(), AisError>) {
    w.u32(match e {
        Ok(()) => 1,
        Err(e) => e.code(),
    });
}

fn get_result(r: &mut Reader) -> Result<Result<(), AisError>, DecodeError> {
    Ok(match r.u32("error")? {
        1 => Ok(()),
        code => Err(AisError::from_code(code)),
    })
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp { service: "lck", op }
}

/// An LCK request. Handles are the executive's numbers for one open of one resource by one
/// connection; lock ids its numbers for one lock request.
///
/// Not `non_exhaustive`: the executive's handler must answer every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `saLckResourceOpen`: answered [`Response::Opened`].
    Open {
        /// The resource's name.
        name: Bytes,
        /// [`RESOURCE_CREATE`] or 0.
        flags: u8,
    },
    /// `saLckResourceOpenAsync`: answered `Ok`, then [`Callback::Open`].
    OpenAsync {
        /// The resource's name.
        name: Bytes,
        /// [`RESOURCE_CREATE`] or 0.
        flags: u8,
        /// The caller's number for it.
        invocation: u64,
    },
    /// `saLckResourceClose`: the handle's locks are released (orphaned with
    /// [`LOCK_ORPHAN`]), its queued requests withdrawn.
    Close {
        /// The handle.
        handle: u64,
    },
    /// `saLckResourceLock`: answered [`Response::Locked`] when granted, refused, or timed
    /// out (`SA_AIS_ERR_TIMEOUT`).
    Lock {
        /// The handle.
        handle: u64,
        /// [`Mode::code`].
        mode: u8,
        /// `LOCK_*` flags.
        flags: u32,
        /// Given to the holders' waiter callbacks.
        waiter_signal: u64,
        /// Nanoseconds to wait for the grant ([`TIME_END`]: forever).
        timeout: u64,
    },
    /// `saLckResourceLockAsync`: answered [`Response::LockId`] at once, then
    /// [`Callback::Grant`].
    LockAsync {
        /// The handle.
        handle: u64,
        /// [`Mode::code`].
        mode: u8,
        /// `LOCK_*` flags.
        flags: u32,
        /// Given to the holders' waiter callbacks.
        waiter_signal: u64,
        /// The caller's number for it.
        invocation: u64,
    },
    /// `saLckResourceUnlock` of a granted lock.
    Unlock {
        /// The lock.
        lock_id: u64,
    },
    /// `saLckResourceUnlockAsync`: answered `Ok`, then [`Callback::Unlock`].
    UnlockAsync {
        /// The lock.
        lock_id: u64,
        /// The caller's number for it.
        invocation: u64,
    },
    /// `saLckLockPurge`: the resource's orphan locks go.
    Purge {
        /// A handle of the resource.
        handle: u64,
    },
    /// `saLckOptionCheck`: answered [`Response::Options`].
    OptionCheck,
    /// The lock table (`aisctl lck ls`): answered [`Response::List`].
    List,
    /// An operator's forced release of one granted lock of resource `name`, whoever holds
    /// it (a live holder or none: an orphan): `aisctl lck unlock`. Not a B.01.01 call. Applied
    /// at delivery by every node and answered `Ok` then; `SA_AIS_ERR_NOT_EXIST` when `name`
    /// has no such lock, `SA_AIS_ERR_BAD_OPERATION` when the lock is queued (not granted),
    /// `SA_AIS_ERR_TRY_AGAIN` without quorum. A live holder is not told (B.01.01 has no
    /// callback for it): its own unlock later gets `SA_AIS_ERR_NOT_EXIST`.
    Release {
        /// The resource's name.
        name: Bytes,
        /// The lock.
        lock: LockId,
    },
}

const OP_OPEN: u16 = 80;
const OP_OPEN_ASYNC: u16 = 81;
const OP_CLOSE: u16 = 82;
const OP_LOCK: u16 = 83;
const OP_LOCK_ASYNC: u16 = 84;
const OP_UNLOCK: u16 = 85;
const OP_UNLOCK_ASYNC: u16 = 86;
const OP_PURGE: u16 = 87;
const OP_OPTION_CHECK: u16 = 88;
const OP_LIST: u16 = 89;
const OP_RELEASE: u16 = 90;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Open { .. } => OP_OPEN,
            Request::OpenAsync { .. } => OP_OPEN_ASYNC,
            Request::Close { .. } => OP_CLOSE,
            Request::Lock { .. } => OP_LOCK,
            Request::LockAsync { .. } => OP_LOCK_ASYNC,
            Request::Unlock { .. } => OP_UNLOCK,
            Request::UnlockAsync { .. } => OP_UNLOCK_ASYNC,
            Request::Purge { .. } => OP_PURGE,
            Request::OptionCheck => OP_OPTION_CHECK,
            Request::List => OP_LIST,
            Request::Release { .. } => OP_RELEASE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Open { .. } => "LckResourceOpen",
            Request::OpenAsync { .. } => "LckResourceOpenAsync",
            Request::Close { .. } => "LckResourceClose",
            Request::Lock { .. } => "LckResourceLock",
            Request::LockAsync { .. } => "LckResourceLockAsync",
            Request::Unlock { .. } => "LckResourceUnlock",
            Request::UnlockAsync { .. } => "LckResourceUnlockAsync",
            Request::Purge { .. } => "LckLockPurge",
            Request::OptionCheck => "LckOptionCheck",
            Request::List => "LckList",
            Request::Release { .. } => "LckRelease",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Open { name, flags } => {
                w.short_bytes(name).u8(*flags);
            }
            Request::OpenAsync {
                name,
                flags,
                invocation,
            } => {
                w.short_bytes(name).u8(*flags).u64(*invocation);
            }
            Request::Close { handle } | Request::Purge { handle } => {
                w.u64(*handle);
            }
            Request::Lock {
                handle,
                mode,
                flags,
                waiter_signal,
                timeout,
            } => {
                w.u64(*handle)
                    .u8(*mode)
                    .u32(*flags)
                    .u64(*waiter_signal)
                    .u64(*timeout);
            }
            Request::LockAsync {
                handle,
                mode,
                flags,
                waiter_signal,
                invocation,
            } => {
                w.u64(*handle)
                    .u8(*mode)
                    .u32(*flags)
                    .u64(*waiter_signal)
                    .u64(*invocation);
            }
            Request::Unlock { lock_id } => {
                w.u64(*lock_id);
            }
            Request::UnlockAsync {
                lock_id,
                invocation,
            } => {
                w.u64(*lock_id).u64(*invocation);
            }
            Request::OptionCheck | Request::List => {}
            Request::Release { name, lock } => {
                w.short_bytes(name);
                put_lock_id(w, lock);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            OP_OPEN => Request::Open {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
            },
            OP_OPEN_ASYNC => Request::OpenAsync {
                name: r.short_bytes("name")?,
                flags: r.u8("open flags")?,
                invocation: r.u64("invocation")?,
            },
            OP_CLOSE => Request::Close {
                handle: r.u64("handle")?,
            },
            OP_LOCK => Request::Lock {
                handle: r.u64("handle")?,
                mode: r.u8("lock mode")?,
                flags: r.u32("lock flags")?,
                waiter_signal: r.u64("waiter signal")?,
                timeout: r.u64("timeout")?,
            },
            OP_LOCK_ASYNC => Request::LockAsync {
                handle: r.u64("handle")?,
                mode: r.u8("lock mode")?,
                flags: r.u32("lock flags")?,
                waiter_signal: r.u64("waiter signal")?,
                invocation: r.u64("invocation")?,
            },
            OP_UNLOCK => Request::Unlock {
                lock_id: r.u64("lock id")?,
            },
            OP_UNLOCK_ASYNC => Request::UnlockAsync {
                lock_id: r.u64("lock id")?,
                invocation: r.u64("invocation")?,
            },
            OP_PURGE => Request::Purge {
                handle: r.u64("handle")?,
            },
            OP_OPTION_CHECK => Request::OptionCheck,
            OP_LIST => Request::List,
            OP_RELEASE => Request::Release {
                name: r.short_bytes("name")?,
                lock: get_lock_id(r)?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// One lock in a [`Response::List`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// Its identity.
    pub id: LockId,
    /// Its holder (`None`: an orphan).
    pub holder: Option<Holder>,
    /// Its mode.
    pub mode: Mode,
    /// Granted (else queued).
    pub granted: bool,
    /// Requested with [`LOCK_ORPHAN`].
    pub orphan_flag: bool,
}

/// One resource in a [`Response::List`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// Its name.
    pub name: Bytes,
    /// Open handles, all nodes together.
    pub opens: u32,
    /// Granted locks, then queued requests in their order.
    pub locks: Vec<LockInfo>,
}

/// Most locks listed per resource in one [`Response::List`] (the rest are counted).
pub const LIST_LOCKS: usize = 64;

/// An LCK answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Open`].
    Opened {
        /// The new handle.
        handle: u64,
    },
    /// Answer to [`Request::Lock`]: the lock's id and its outcome (for statuses other than
    /// granted, the id names nothing).
    Locked {
        /// The lock id.
        lock_id: u64,
        /// The outcome.
        status: LockStatus,
    },
    /// Answer to [`Request::LockAsync`]: the id its grant callback will name.
    LockId {
        /// The lock id.
        lock_id: u64,
    },
    /// Answer to [`Request::OptionCheck`]: `OPT_*` bits.
    Options(u64),
    /// Answer to [`Request::List`]: resources by name (at most as many as fit one packet;
    /// `more` counts the rest).
    List {
        /// The resources.
        resources: Vec<ResourceInfo>,
        /// Resources left out.
        more: u32,
    },
}

const R_OPENED: u16 = 80;
const R_LOCKED: u16 = 81;
const R_LOCK_ID: u16 = 82;
const R_OPTIONS: u16 = 83;
const R_LIST: u16 = 84;

fn put_lock_info(w: &mut Writer, l: &LockInfo) {
    put_lock_id(w, &l.id);
    put_opt_holder(w, &l.holder);
    w.u8(l.mode.code())
        .u8(u8::from(l.granted))
        .u8(u8::from(l.orphan_flag));
}

fn get_lock_info(r: &mut Reader) -> Result<LockInfo, DecodeError> {
    Ok(LockInfo {
        id: get_lock_id(r)?,
        holder: get_opt_holder(r)?,
        mode: get_mode(r, "lock mode")?,
        granted: r.bool("granted")?,
        orphan_flag: r.bool("orphan flag")?,
    })
}

fn put_opt_holder(w: &mut Writer, h: &Option<Holder>) {
    match h {
        None => {
            w.u8(0);
        }
        Some(h) => {
            w.u8(1);
            put_holder(w, h);
        }
    }
}

fn get_opt_holder(r: &mut Reader) -> Result<Option<Holder>, DecodeError> {
    Ok(if r.bool("holder given")? {
        Some(get_holder(r)?)
    } else {
        None
    })
}

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::Opened { .. } => R_OPENED,
            Response::Locked { .. } => R_LOCKED,
            Response::LockId { .. } => R_LOCK_ID,
            Response::Options(_) => R_OPTIONS,
            Response::List { .. } => R_LIST,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::Opened { .. } => "LckOpened",
            Response::Locked { .. } => "LckLocked",
            Response::LockId { .. } => "LckLockId",
            Response::Options(_) => "LckOptions",
            Response::List { .. } => "LckList",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::Opened { handle } => {
                w.u64(*handle);
            }
            Response::Locked { lock_id, status } => {
                w.u64(*lock_id).u8(status.code());
            }
            Response::LockId { lock_id } => {
                w.u64(*lock_id);
            }
            Response::Options(bits) => {
                w.u64(*bits);
            }
            Response::List { resources, more } => {
                w.count(resources.len());
                for res in resources {
                    w.short_bytes(&res.name).u32(res.opens);
                    w.count(res.locks.len());
                    for l in &res.locks {
                        put_lock_info(w, l);
                    }
                }
                w.u32(*more);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            R_OPENED => Response::Opened {
                handle: r.u64("handle")?,
            },
            R_LOCKED => Response::Locked {
                lock_id: r.u64("lock id")?,
                status: get_status(r)?,
            },
            R_LOCK_ID => Response::LockId {
                lock_id: r.u64("lock id")?,
            },
            R_OPTIONS => Response::Options(r.u64("options")?),
            R_LIST => {
                let n = r.count("resources", 2 + 4 + 4)?;
                let resources = (0..n)
                    .map(|_| {
                        let name = r.short_bytes("name")?;
                        let opens = r.u32("opens")?;
                        let k = r.count("locks", 20 + 1 + 3)?;
                        let locks = (0..k)
                            .map(|_| get_lock_info(r))
                            .collect::<Result<_, DecodeError>>()?;
                        Ok(ResourceInfo { name, opens, locks })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                Response::List {
                    resources,
                    more: r.u32("more")?,
                }
            }
            other => return Err(unknown(other)),
        })
    }
}

/// An LCK callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The outcome of [`Request::OpenAsync`] (`saLckResourceOpenCallback`).
    Open {
        /// The caller's number.
        invocation: u64,
        /// The handle, or why not.
        result: Result<u64, AisError>,
    },
    /// The outcome of [`Request::LockAsync`] (`saLckLockGrantCallback`): a status when
    /// `error` is `Ok`.
    Grant {
        /// The caller's number.
        invocation: u64,
        /// The lock id.
        lock_id: u64,
        /// The outcome (meaningful when `error` is `Ok`).
        status: LockStatus,
        /// `Ok`, or why the request was not decided (`SA_AIS_ERR_TRY_AGAIN`: lost in a
        /// membership change).
        error: Result<(), AisError>,
    },
    /// Another request waits for a lock of this connection (`saLckLockWaiterCallback`).
    Waiter {
        /// The waiter's signal.
        waiter_signal: u64,
        /// The held lock.
        lock_id: u64,
        /// Its mode.
        mode_held: Mode,
        /// The mode the waiter asked for.
        mode_requested: Mode,
    },
    /// The outcome of [`Request::UnlockAsync`] (`saLckResourceUnlockCallback`).
    Unlock {
        /// The caller's number.
        invocation: u64,
        /// Done, or why not.
        result: Result<(), AisError>,
    },
}

const C_OPEN: u16 = 80;
const C_GRANT: u16 = 81;
const C_WAITER: u16 = 82;
const C_UNLOCK: u16 = 83;

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::Open { .. } => C_OPEN,
            Callback::Grant { .. } => C_GRANT,
            Callback::Waiter { .. } => C_WAITER,
            Callback::Unlock { .. } => C_UNLOCK,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::Open { .. } => "LckResourceOpenCallback",
            Callback::Grant { .. } => "LckLockGrantCallback",
            Callback::Waiter { .. } => "LckLockWaiterCallback",
            Callback::Unlock { .. } => "LckResourceUnlockCallback",
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
            Callback::Grant {
                invocation,
                lock_id,
                status,
                error,
            } => {
                w.u64(*invocation).u64(*lock_id).u8(status.code());
                put_result(w, error);
            }
            Callback::Waiter {
                waiter_signal,
                lock_id,
                mode_held,
                mode_requested,
            } => {
                w.u64(*waiter_signal)
                    .u64(*lock_id)
                    .u8(mode_held.code())
                    .u8(mode_requested.code());
            }
            Callback::Unlock { invocation, result } => {
                w.u64(*invocation);
                put_result(w, result);
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
            C_GRANT => Callback::Grant {
                invocation: r.u64("invocation")?,
                lock_id: r.u64("lock id")?,
                status: get_status(r)?,
                error: get_result(r)?,
            },
            C_WAITER => Callback::Waiter {
                waiter_signal: r.u64("waiter signal")?,
                lock_id: r.u64("lock id")?,
                mode_held: get_mode(r, "mode held")?,
                mode_requested: get_mode(r, "mode requested")?,
            },
            C_UNLOCK => Callback::Unlock {
                invocation: r.u64("invocation")?,
                result: get_result(r)?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// What an [`RingMessage::Update`] changes. Each is applied by every node at delivery, in
/// the ring's order, with the same outcome everywhere. The holder or lock named is always
/// the sender's (a message naming another node's is refused and counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// `holder` opens the resource `name` (creating it with `create`).
    Open {
        /// The new holder.
        holder: Holder,
        /// The resource.
        name: Bytes,
        /// [`RESOURCE_CREATE`] was given.
        create: bool,
    },
    /// `holder` closes: its granted locks are released (orphaned with [`LOCK_ORPHAN`]), its
    /// queued requests withdrawn.
    Close {
        /// The holder.
        holder: Holder,
    },
    /// A lock request.
    Lock {
        /// Its identity.
        lock: LockId,
        /// Who asks.
        holder: Holder,
        /// The mode.
        mode: Mode,
        /// `LOCK_*` flags.
        flags: u32,
        /// For the holders' waiter callbacks.
        waiter_signal: u64,
    },
    /// A granted lock is released.
    Unlock {
        /// The lock.
        lock: LockId,
    },
    /// A queued request's timeout ran out at its requester: withdraw it if still queued.
    Withdraw {
        /// The lock.
        lock: LockId,
    },
    /// The orphan locks of `holder`'s resource go.
    Purge {
        /// The holder asking.
        holder: Holder,
    },
    /// An operator releases the granted lock `lock` of resource `name`, whoever holds it
    /// ([`Request::Release`]). Refused without quorum.
    Release {
        /// The request's identity at its sender (its node, epoch and number).
        by: LockId,
        /// The resource.
        name: Bytes,
        /// The lock.
        lock: LockId,
    },
}

/// A lock in the table, as sync sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// Its identity.
    pub id: LockId,
    /// Its holder (`None`: an orphan).
    pub holder: Option<Holder>,
    /// Its mode.
    pub mode: Mode,
    /// `LOCK_*` flags it was requested with.
    pub flags: u32,
    /// Its requester's waiter signal.
    pub waiter_signal: u64,
}

fn put_entry(w: &mut Writer, e: &LockEntry) {
    put_lock_id(w, &e.id);
    put_opt_holder(w, &e.holder);
    w.u8(e.mode.code()).u32(e.flags).u64(e.waiter_signal);
}

fn get_entry(r: &mut Reader) -> Result<LockEntry, DecodeError> {
    Ok(LockEntry {
        id: get_lock_id(r)?,
        holder: get_opt_holder(r)?,
        mode: get_mode(r, "lock mode")?,
        flags: r.u32("lock flags")?,
        waiter_signal: r.u64("waiter signal")?,
    })
}

const ENTRY_MIN: usize = 20 + 1 + 1 + 4 + 8;

/// An LCK message on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A change, sent in ring `(rep, seq)` (refused at delivery in any other ring; its
    /// client is told TRY_AGAIN).
    Update {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The sender's limit of resources in the cluster (`SA_AIS_ERR_NO_RESOURCES`
        /// beyond).
        max_resources: u32,
        /// The sender's limit of locks, granted and queued (`SA_LCK_LOCK_NO_MORE` beyond).
        max_locks: u32,
        /// What changes.
        update: Update,
    },
    /// Sync, first step, sent by every member: which table it has and how recent, and its
    /// live holders.
    Summary {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The sequence of the last ring in which the sender's partition was quorate (0:
        /// never): the most recent quorate table wins the merge.
        quorate_seq: u64,
        /// The sender's last activated ring was quorate (it was not cut off since).
        last_quorate: bool,
        /// The digest of the sender's table.
        digest: u64,
        /// The sender's open handles and their resources.
        holders: Vec<(Holder, Bytes)>,
    },
    /// Sync, second step: one resource of the winning table, sent by the winner when some
    /// member's table differs.
    SyncResource {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The resource.
        name: Bytes,
        /// Granted locks.
        granted: Vec<LockEntry>,
        /// Queued requests, first first.
        queued: Vec<LockEntry>,
    },
}

const RING_UPDATE: u16 = 1;
const RING_SUMMARY: u16 = 2;
const RING_SYNC_RESOURCE: u16 = 3;

fn put_update(w: &mut Writer, u: &Update) {
    match u {
        Update::Open {
            holder,
            name,
            create,
        } => {
            w.u8(1);
            put_holder(w, holder);
            w.short_bytes(name).u8(u8::from(*create));
        }
        Update::Close { holder } => {
            w.u8(2);
            put_holder(w, holder);
        }
        Update::Lock {
            lock,
            holder,
            mode,
            flags,
            waiter_signal,
        } => {
            w.u8(3);
            put_lock_id(w, lock);
            put_holder(w, holder);
            w.u8(mode.code()).u32(*flags).u64(*waiter_signal);
        }
        Update::Unlock { lock } => {
            w.u8(4);
            put_lock_id(w, lock);
        }
        Update::Withdraw { lock } => {
            w.u8(5);
            put_lock_id(w, lock);
        }
        Update::Purge { holder } => {
            w.u8(6);
            put_holder(w, holder);
        }
        Update::Release { by, name, lock } => {
            w.u8(7);
            put_lock_id(w, by);
            w.short_bytes(name);
            put_lock_id(w, lock);
        }
    }
}

fn get_update(r: &mut Reader) -> Result<Update, DecodeError> {
    Ok(match r.u8("update")? {
        1 => Update::Open {
            holder: get_holder(r)?,
            name: r.short_bytes("name")?,
            create: r.bool("create")?,
        },
        2 => Update::Close {
            holder: get_holder(r)?,
        },
        3 => Update::Lock {
            lock: get_lock_id(r)?,
            holder: get_holder(r)?,
            mode: get_mode(r, "lock mode")?,
            flags: r.u32("lock flags")?,
            waiter_signal: r.u64("waiter signal")?,
        },
        4 => Update::Unlock {
            lock: get_lock_id(r)?,
        },
        5 => Update::Withdraw {
            lock: get_lock_id(r)?,
        },
        6 => Update::Purge {
            holder: get_holder(r)?,
        },
        7 => Update::Release {
            by: get_lock_id(r)?,
            name: r.short_bytes("name")?,
            lock: get_lock_id(r)?,
        },
        other => {
            return Err(DecodeError::Unknown {
                what: "lck update",
                value: u64::from(other),
            });
        }
    })
}

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Update { .. } => RING_UPDATE,
            RingMessage::Summary { .. } => RING_SUMMARY,
            RingMessage::SyncResource { .. } => RING_SYNC_RESOURCE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Update { .. } => "LckUpdate",
            RingMessage::Summary { .. } => "LckSummary",
            RingMessage::SyncResource { .. } => "LckSyncResource",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Update {
                rep,
                seq,
                max_resources,
                max_locks,
                update,
            } => {
                w.u32(*rep).u64(*seq).u32(*max_resources).u32(*max_locks);
                put_update(w, update);
            }
            RingMessage::Summary {
                rep,
                seq,
                quorate_seq,
                last_quorate,
                digest,
                holders,
            } => {
                w.u32(*rep)
                    .u64(*seq)
                    .u64(*quorate_seq)
                    .u8(u8::from(*last_quorate))
                    .u64(*digest);
                w.count(holders.len());
                for (h, name) in holders {
                    put_holder(w, h);
                    w.short_bytes(name);
                }
            }
            RingMessage::SyncResource {
                rep,
                seq,
                name,
                granted,
                queued,
            } => {
                w.u32(*rep).u64(*seq).short_bytes(name);
                for list in [granted, queued] {
                    w.count(list.len());
                    for e in list {
                        put_entry(w, e);
                    }
                }
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            RING_UPDATE => RingMessage::Update {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                max_resources: r.u32("max resources")?,
                max_locks: r.u32("max locks")?,
                update: get_update(r)?,
            },
            RING_SUMMARY => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let quorate_seq = r.u64("quorate sequence")?;
                let last_quorate = r.bool("last quorate")?;
                let digest = r.u64("digest")?;
                let n = r.count("holders", 20 + 2)?;
                let holders = (0..n)
                    .map(|_| Ok((get_holder(r)?, r.short_bytes("name")?)))
                    .collect::<Result<_, DecodeError>>()?;
                RingMessage::Summary {
                    rep,
                    seq,
                    quorate_seq,
                    last_quorate,
                    digest,
                    holders,
                }
            }
            RING_SYNC_RESOURCE => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let name = r.short_bytes("name")?;
                let n = r.count("granted locks", ENTRY_MIN)?;
                let granted = (0..n)
                    .map(|_| get_entry(r))
                    .collect::<Result<_, DecodeError>>()?;
                let n = r.count("queued locks", ENTRY_MIN)?;
                let queued = (0..n)
                    .map(|_| get_entry(r))
                    .collect::<Result<_, DecodeError>>()?;
                RingMessage::SyncResource {
                    rep,
                    seq,
                    name,
                    granted,
                    queued,
                }
            }
            other => return Err(unknown(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    fn holder() -> Holder {
        Holder {
            node: 2,
            epoch: 8,
            handle: 5,
        }
    }

    fn lock() -> LockId {
        LockId {
            node: 2,
            epoch: 8,
            n: 11,
        }
    }

    #[test]
    fn every_lck_message_round_trips() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let reqs = [
            Request::Open {
                name: b("r"),
                flags: RESOURCE_CREATE,
            },
            Request::OpenAsync {
                name: b("r"),
                flags: 0,
                invocation: 7,
            },
            Request::Close { handle: 3 },
            Request::Lock {
                handle: 3,
                mode: 2,
                flags: LOCK_NO_QUEUE,
                waiter_signal: 9,
                timeout: TIME_END,
            },
            Request::LockAsync {
                handle: 3,
                mode: 1,
                flags: LOCK_ORPHAN,
                waiter_signal: 9,
                invocation: 4,
            },
            Request::Unlock { lock_id: 6 },
            Request::UnlockAsync {
                lock_id: 6,
                invocation: 1,
            },
            Request::Purge { handle: 3 },
            Request::OptionCheck,
            Request::List,
            Request::Release {
                name: b("r"),
                lock: lock(),
            },
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let entry = LockInfo {
            id: lock(),
            holder: Some(holder()),
            mode: Mode::Ex,
            granted: true,
            orphan_flag: false,
        };
        let resps = [
            Response::Opened { handle: 3 },
            Response::Locked {
                lock_id: 4,
                status: LockStatus::Deadlock,
            },
            Response::LockId { lock_id: 4 },
            Response::Options(OPT_ORPHAN_LOCKS | OPT_DEADLOCK_DETECTION),
            Response::List {
                resources: vec![],
                more: 0,
            },
            Response::List {
                resources: vec![ResourceInfo {
                    name: b("r"),
                    opens: 2,
                    locks: vec![
                        entry.clone(),
                        LockInfo {
                            holder: None,
                            granted: false,
                            orphan_flag: true,
                            mode: Mode::Pr,
                            ..entry
                        },
                    ],
                }],
                more: 3,
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
                Callback::Grant {
                    invocation: 3,
                    lock_id: 5,
                    status: LockStatus::NotQueued,
                    error: Ok(()),
                },
                Callback::Grant {
                    invocation: 3,
                    lock_id: 5,
                    status: LockStatus::Granted,
                    error: Err(AisError::TryAgain),
                },
                Callback::Waiter {
                    waiter_signal: 8,
                    lock_id: 5,
                    mode_held: Mode::Pr,
                    mode_requested: Mode::Ex,
                },
                Callback::Unlock {
                    invocation: 3,
                    result: Err(AisError::NotExist),
                },
            ],
        );
        let update = |u| RingMessage::Update {
            rep: 1,
            seq: 8,
            max_resources: 10,
            max_locks: 20,
            update: u,
        };
        let entry = LockEntry {
            id: lock(),
            holder: Some(holder()),
            mode: Mode::Pr,
            flags: LOCK_ORPHAN,
            waiter_signal: 3,
        };
        assert_round_trips(
            Kind::Request,
            &[
                update(Update::Open {
                    holder: holder(),
                    name: b("r"),
                    create: true,
                }),
                update(Update::Close { holder: holder() }),
                update(Update::Lock {
                    lock: lock(),
                    holder: holder(),
                    mode: Mode::Ex,
                    flags: 0,
                    waiter_signal: 1,
                }),
                update(Update::Unlock { lock: lock() }),
                update(Update::Withdraw { lock: lock() }),
                update(Update::Purge { holder: holder() }),
                update(Update::Release {
                    by: LockId { n: 12, ..lock() },
                    name: b("r"),
                    lock: lock(),
                }),
                RingMessage::Summary {
                    rep: 1,
                    seq: 8,
                    quorate_seq: 4,
                    last_quorate: true,
                    digest: 99,
                    holders: vec![(holder(), b("r"))],
                },
                RingMessage::SyncResource {
                    rep: 1,
                    seq: 8,
                    name: b("r"),
                    granted: vec![LockEntry {
                        holder: None,
                        ..entry.clone()
                    }],
                    queued: vec![entry],
                },
            ],
        );
    }

    #[test]
    fn modes_and_statuses_have_the_specifications_values() {
        assert_eq!(Mode::from_code(1), Some(Mode::Pr));
        assert_eq!(Mode::from_code(2), Some(Mode::Ex));
        assert_eq!(Mode::from_code(0), None);
        assert_eq!(Mode::from_code(3), None);
        assert!(!Mode::Pr.conflicts(Mode::Pr));
        assert!(Mode::Pr.conflicts(Mode::Ex));
        assert!(Mode::Ex.conflicts(Mode::Pr));
        assert!(Mode::Ex.conflicts(Mode::Ex));
        for c in 1..=6 {
            assert_eq!(LockStatus::from_code(c).map(LockStatus::code), Some(c));
        }
        assert_eq!(LockStatus::from_code(0), None);
        assert_eq!(LockStatus::from_code(7), None);
    }

    #[test]
    fn an_unknown_update_kind_in_a_ring_message_is_refused() {
        let msg = RingMessage::Update {
            rep: 1,
            seq: 8,
            max_resources: 1,
            max_locks: 1,
            update: Update::Unlock { lock: lock() },
        };
        let mut e = crate::ipc::Encoded::new(Kind::Request, 1, &msg).to_vec();
        // The update's kind follows the header, the ring id and the two limits.
        let tag = crate::ipc::HEADER_LEN + 4 + 8 + 4 + 4;
        assert_eq!(e[tag], 4);
        e[tag] = 9;
        let f = crate::ipc::Frame::decode(Bytes::from(e)).expect("header");
        assert!(f.body::<RingMessage>().is_err());
    }
}
