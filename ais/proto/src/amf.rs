//! AMF (availability management) on the IPC socket and on the ring. The executive's half is
//! `ais_core::services::amf`.
//!
//! A component talks to its node's executive: it registers under its name (the distinguished
//! name the executive gave it in `SA_AMF_COMPONENT_NAME`), answers the callbacks (CSI set,
//! CSI remove, health check, terminate) with [`Request::Response`], confirms
//! component-invoked health checks and reports errors. Operators ask for the status and run
//! administrative operations through the same socket (`aisctl amf`).
//!
//! On the ring, every node applies the same [`RingMessage`]s in the same order to the same
//! replicated state; service units and service instances are named by their index in the
//! information model, which every node reads from the same file (its digest is checked at
//! every sync).

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{Message, Protocol, ServiceId};

pub mod status;

pub use status::{AdminState, Readiness, Tree};

/// The AMF protocol.
#[derive(Debug, Clone, Copy)]
pub struct AmfProtocol;

impl Protocol for AmfProtocol {
    const ID: ServiceId = ServiceId(11);
    const NAME: &'static str = "amf";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// An HA state of a CSI assignment (`SaAmfHAStateT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ha {
    /// `SA_AMF_HA_ACTIVE` (1): serving.
    Active,
    /// `SA_AMF_HA_STANDBY` (2): ready to take over.
    Standby,
    /// `SA_AMF_HA_QUIESCED` (3): stopped serving, keeps its state for the new active.
    Quiesced,
    /// `SA_AMF_HA_QUIESCING` (4): finishing its current work, taking no new work.
    Quiescing,
}

impl Ha {
    /// Every value.
    pub const ALL: [Ha; 4] = [Ha::Active, Ha::Standby, Ha::Quiesced, Ha::Quiescing];

    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            Ha::Active => 1,
            Ha::Standby => 2,
            Ha::Quiesced => 3,
            Ha::Quiescing => 4,
        }
    }

    /// The value with code `c`.
    pub fn from_code(c: u8) -> Option<Ha> {
        Ha::ALL.into_iter().find(|h| h.code() == c)
    }

    /// Its name in status output and logs.
    pub fn name(self) -> &'static str {
        match self {
            Ha::Active => "active",
            Ha::Standby => "standby",
            Ha::Quiesced => "quiesced",
            Ha::Quiescing => "quiescing",
        }
    }

    /// Whether a component in this state may be serving the SI's work.
    pub fn serves(self) -> bool {
        matches!(self, Ha::Active | Ha::Quiescing)
    }
}

/// An administrative operation (`SaAmfAdminOperationIdT`, the ones this AMF runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminOp {
    /// Take the SU (or SI) out of service: its assignments are removed.
    Lock,
    /// Put it back in service.
    Unlock,
    /// Lock an SU and terminate its components.
    LockInstantiation,
    /// Instantiate a locked SU's components again.
    UnlockInstantiation,
    /// Like lock, but the SU's active assignments are quiesced gracefully first.
    Shutdown,
    /// Restart every component of an SU (its assignments stay).
    Restart,
    /// Move an SI's active assignment to its standby: quiesce the active, then promote.
    Switchover,
}

impl AdminOp {
    /// Every value.
    pub const ALL: [AdminOp; 7] = [
        AdminOp::Lock,
        AdminOp::Unlock,
        AdminOp::LockInstantiation,
        AdminOp::UnlockInstantiation,
        AdminOp::Shutdown,
        AdminOp::Restart,
        AdminOp::Switchover,
    ];

    fn code(self) -> u8 {
        match self {
            AdminOp::Unlock => 1,
            AdminOp::Lock => 2,
            AdminOp::LockInstantiation => 3,
            AdminOp::UnlockInstantiation => 4,
            AdminOp::Shutdown => 5,
            AdminOp::Restart => 6,
            AdminOp::Switchover => 7,
        }
    }

    fn from_code(c: u8) -> Option<AdminOp> {
        AdminOp::ALL.into_iter().find(|o| o.code() == c)
    }

    /// The name `aisctl amf` takes.
    pub fn name(self) -> &'static str {
        match self {
            AdminOp::Lock => "lock",
            AdminOp::Unlock => "unlock",
            AdminOp::LockInstantiation => "lock-instantiation",
            AdminOp::UnlockInstantiation => "unlock-instantiation",
            AdminOp::Shutdown => "shutdown",
            AdminOp::Restart => "restart",
            AdminOp::Switchover => "switchover",
        }
    }

    /// The value named `name`.
    pub fn from_name(name: &str) -> Option<AdminOp> {
        AdminOp::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// A recovery a component recommends with an error report (`SaAmfRecommendedRecoveryT`, the
/// values this AMF acts on; 1, no recommendation, is `None` in [`Request::ErrorReport`]).
pub mod recovery {
    /// `SA_AMF_NO_RECOMMENDATION`: the component type's configured recovery.
    pub const NO_RECOMMENDATION: u8 = 1;
    /// `SA_AMF_COMPONENT_RESTART`.
    pub const COMPONENT_RESTART: u8 = 2;
    /// `SA_AMF_COMPONENT_FAILOVER`: the SU fails over.
    pub const COMPONENT_FAILOVER: u8 = 3;
    /// `SA_AMF_NODE_SWITCHOVER`, handled as a node failover.
    pub const NODE_SWITCHOVER: u8 = 4;
    /// `SA_AMF_NODE_FAILOVER`.
    pub const NODE_FAILOVER: u8 = 5;
    /// `SA_AMF_NODE_FAILFAST`.
    pub const NODE_FAILFAST: u8 = 6;
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp { service: "amf", op }
}

fn put_str(w: &mut Writer, s: &str) {
    w.short_bytes(s.as_bytes());
}

fn get_str(r: &mut Reader, field: &'static str) -> Result<String, DecodeError> {
    let b = r.short_bytes(field)?;
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid {
        field,
        why: "not UTF-8",
    })
}

fn get_ha(r: &mut Reader) -> Result<Ha, DecodeError> {
    Ha::from_code(r.u8("HA state")?).ok_or(DecodeError::Invalid {
        field: "HA state",
        why: "unknown",
    })
}

fn put_opt_ha(w: &mut Writer, ha: Option<Ha>) {
    w.u8(ha.map_or(0, Ha::code));
}

fn get_opt_ha(r: &mut Reader) -> Result<Option<Ha>, DecodeError> {
    match r.u8("HA state")? {
        0 => Ok(None),
        c => Ha::from_code(c).map(Some).ok_or(DecodeError::Invalid {
            field: "HA state",
            why: "unknown",
        }),
    }
}

/// An AMF request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `saAmfComponentRegister`: this connection is the component named `comp`.
    Register {
        /// The component's name (`SA_AMF_COMPONENT_NAME`).
        comp: String,
    },
    /// `saAmfComponentUnregister`.
    Unregister,
    /// `saAmfResponse`: the answer to callback `invocation`.
    Response {
        /// The callback's invocation.
        invocation: u64,
        /// `SA_AIS_OK` (true) or a failure.
        ok: bool,
    },
    /// `saAmfHealthcheckConfirm` of a component-invoked health check.
    HealthcheckConfirm {
        /// The health check key.
        key: String,
        /// Healthy (true) or failed.
        ok: bool,
    },
    /// `saAmfComponentErrorReport` for this connection's component.
    ErrorReport {
        /// A [`recovery`] code.
        recovery: u8,
    },
    /// `saAmfComponentNameGet`: answered with [`Response::Name`] (NOT_EXIST when the
    /// connection did not register).
    NameGet,
    /// The tree of entities with their states, for `aisctl amf status`, as text.
    Status,
    /// The same tree as values: answered with [`Response::Tree`] (`aisctl amf status`,
    /// `--json`).
    Tree,
    /// An administrative operation on an SU or an SI, named alone (names are unique).
    Admin {
        /// The operation.
        op: AdminOp,
        /// The SU's or SI's name.
        entity: String,
    },
}

const OP_REGISTER: u16 = 10;
const OP_UNREGISTER: u16 = 11;
const OP_RESPONSE: u16 = 12;
const OP_HC_CONFIRM: u16 = 13;
const OP_ERROR_REPORT: u16 = 14;
const OP_NAME_GET: u16 = 15;
const OP_STATUS: u16 = 16;
const OP_ADMIN: u16 = 17;
const OP_TREE: u16 = 18;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Register { .. } => OP_REGISTER,
            Request::Unregister => OP_UNREGISTER,
            Request::Response { .. } => OP_RESPONSE,
            Request::HealthcheckConfirm { .. } => OP_HC_CONFIRM,
            Request::ErrorReport { .. } => OP_ERROR_REPORT,
            Request::NameGet => OP_NAME_GET,
            Request::Status => OP_STATUS,
            Request::Admin { .. } => OP_ADMIN,
            Request::Tree => OP_TREE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Register { .. } => "AmfRegister",
            Request::Unregister => "AmfUnregister",
            Request::Response { .. } => "AmfResponse",
            Request::HealthcheckConfirm { .. } => "AmfHealthcheckConfirm",
            Request::ErrorReport { .. } => "AmfErrorReport",
            Request::NameGet => "AmfNameGet",
            Request::Status => "AmfStatus",
            Request::Admin { .. } => "AmfAdmin",
            Request::Tree => "AmfTree",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Register { comp } => put_str(w, comp),
            Request::Unregister | Request::NameGet | Request::Status | Request::Tree => {}
            Request::Response { invocation, ok } => {
                w.u64(*invocation).u8(u8::from(*ok));
            }
            Request::HealthcheckConfirm { key, ok } => {
                put_str(w, key);
                w.u8(u8::from(*ok));
            }
            Request::ErrorReport { recovery } => {
                w.u8(*recovery);
            }
            Request::Admin { op, entity } => {
                w.u8(op.code());
                put_str(w, entity);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            OP_REGISTER => Request::Register {
                comp: get_str(r, "component name")?,
            },
            OP_UNREGISTER => Request::Unregister,
            OP_RESPONSE => Request::Response {
                invocation: r.u64("invocation")?,
                ok: r.bool("ok")?,
            },
            OP_HC_CONFIRM => Request::HealthcheckConfirm {
                key: get_str(r, "health check key")?,
                ok: r.bool("ok")?,
            },
            OP_ERROR_REPORT => Request::ErrorReport {
                recovery: r.u8("recovery")?,
            },
            OP_NAME_GET => Request::NameGet,
            OP_STATUS => Request::Status,
            OP_TREE => Request::Tree,
            OP_ADMIN => Request::Admin {
                op: AdminOp::from_code(r.u8("operation")?).ok_or(DecodeError::Invalid {
                    field: "operation",
                    why: "unknown",
                })?,
                entity: get_str(r, "entity")?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// An AMF answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::NameGet`].
    Name(String),
    /// Answer to [`Request::Status`]: one line per entity, indented by depth.
    Status(Vec<String>),
    /// Answer to [`Request::Tree`].
    Tree(Box<Tree>),
}

const R_NAME: u16 = 10;
const R_STATUS: u16 = 11;
const R_TREE: u16 = 12;

impl Message for Response {
    fn op(&self) -> u16 {
        match self {
            Response::Name(_) => R_NAME,
            Response::Status(_) => R_STATUS,
            Response::Tree(_) => R_TREE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Response::Name(_) => "AmfName",
            Response::Status(_) => "AmfStatus",
            Response::Tree(_) => "AmfTree",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Response::Name(n) => put_str(w, n),
            Response::Status(lines) => {
                w.count(lines.len());
                for l in lines {
                    w.long_bytes(l.as_bytes());
                }
            }
            Response::Tree(t) => t.encode(w),
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            R_NAME => Response::Name(get_str(r, "component name")?),
            R_STATUS => {
                let n = r.count("lines", 4)?;
                let mut lines = Vec::with_capacity(n);
                for _ in 0..n {
                    let b = r.long_bytes("line")?;
                    lines.push(String::from_utf8_lossy(&b).into_owned());
                }
                Response::Status(lines)
            }
            R_TREE => Response::Tree(Box::new(Tree::decode(r)?)),
            other => return Err(unknown(other)),
        })
    }
}

/// An AMF callback to a registered component.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// `SaAmfCSISetCallbackT`: take CSI `csi` of SI `si` in HA state `ha`; answer with
    /// [`Request::Response`].
    CsiSet {
        /// The invocation to answer.
        invocation: u64,
        /// The SI's name.
        si: String,
        /// The CSI's name.
        csi: String,
        /// The HA state to take.
        ha: Ha,
        /// The CSI's attributes (name, value).
        attributes: Vec<(String, String)>,
    },
    /// `SaAmfCSIRemoveCallbackT`: give up CSI `csi` of SI `si`; answer with
    /// [`Request::Response`].
    CsiRemove {
        /// The invocation to answer.
        invocation: u64,
        /// The SI's name.
        si: String,
        /// The CSI's name.
        csi: String,
    },
    /// `SaAmfHealthcheckCallbackT` of an AMF-invoked check; answer within its max duration.
    Healthcheck {
        /// The invocation to answer.
        invocation: u64,
        /// The health check key.
        key: String,
    },
    /// `SaAmfComponentTerminateCallbackT`: stop; answer, then exit.
    Terminate {
        /// The invocation to answer.
        invocation: u64,
    },
}

const C_CSI_SET: u16 = 10;
const C_CSI_REMOVE: u16 = 11;
const C_HEALTHCHECK: u16 = 12;
const C_TERMINATE: u16 = 13;

impl Message for Callback {
    fn op(&self) -> u16 {
        match self {
            Callback::CsiSet { .. } => C_CSI_SET,
            Callback::CsiRemove { .. } => C_CSI_REMOVE,
            Callback::Healthcheck { .. } => C_HEALTHCHECK,
            Callback::Terminate { .. } => C_TERMINATE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Callback::CsiSet { .. } => "AmfCsiSet",
            Callback::CsiRemove { .. } => "AmfCsiRemove",
            Callback::Healthcheck { .. } => "AmfHealthcheck",
            Callback::Terminate { .. } => "AmfTerminate",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Callback::CsiSet {
                invocation,
                si,
                csi,
                ha,
                attributes,
            } => {
                w.u64(*invocation);
                put_str(w, si);
                put_str(w, csi);
                w.u8(ha.code()).count(attributes.len());
                for (k, v) in attributes {
                    put_str(w, k);
                    put_str(w, v);
                }
            }
            Callback::CsiRemove {
                invocation,
                si,
                csi,
            } => {
                w.u64(*invocation);
                put_str(w, si);
                put_str(w, csi);
            }
            Callback::Healthcheck { invocation, key } => {
                w.u64(*invocation);
                put_str(w, key);
            }
            Callback::Terminate { invocation } => {
                w.u64(*invocation);
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            C_CSI_SET => {
                let invocation = r.u64("invocation")?;
                let si = get_str(r, "SI name")?;
                let csi = get_str(r, "CSI name")?;
                let ha = get_ha(r)?;
                let n = r.count("attributes", 2)?;
                let mut attributes = Vec::with_capacity(n);
                for _ in 0..n {
                    attributes.push((get_str(r, "attribute")?, get_str(r, "value")?));
                }
                Callback::CsiSet {
                    invocation,
                    si,
                    csi,
                    ha,
                    attributes,
                }
            }
            C_CSI_REMOVE => Callback::CsiRemove {
                invocation: r.u64("invocation")?,
                si: get_str(r, "SI name")?,
                csi: get_str(r, "CSI name")?,
            },
            C_HEALTHCHECK => Callback::Healthcheck {
                invocation: r.u64("invocation")?,
                key: get_str(r, "health check key")?,
            },
            C_TERMINATE => Callback::Terminate {
                invocation: r.u64("invocation")?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// The presence of an SU as its node reports it (`SaAmfPresenceStateT`, the values an SU
/// takes here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Presence {
    /// `UNINSTANTIATED` (1).
    Uninstantiated,
    /// `INSTANTIATING` (2).
    Instantiating,
    /// `INSTANTIATED` (3): every component registered.
    Instantiated,
    /// `TERMINATING` (4).
    Terminating,
    /// `RESTARTING` (5).
    Restarting,
    /// `INSTANTIATION_FAILED` (6): retries exhausted; the SU takes no assignment.
    InstantiationFailed,
    /// `TERMINATION_FAILED` (7): cleanup failed; the node must be failed fast.
    TerminationFailed,
}

impl Presence {
    /// Every value.
    pub const ALL: [Presence; 7] = [
        Presence::Uninstantiated,
        Presence::Instantiating,
        Presence::Instantiated,
        Presence::Terminating,
        Presence::Restarting,
        Presence::InstantiationFailed,
        Presence::TerminationFailed,
    ];

    /// The specification's value.
    pub fn code(self) -> u8 {
        match self {
            Presence::Uninstantiated => 1,
            Presence::Instantiating => 2,
            Presence::Instantiated => 3,
            Presence::Terminating => 4,
            Presence::Restarting => 5,
            Presence::InstantiationFailed => 6,
            Presence::TerminationFailed => 7,
        }
    }

    /// The value with code `c`.
    pub fn from_code(c: u8) -> Option<Presence> {
        Presence::ALL.into_iter().find(|p| p.code() == c)
    }

    /// Its name in status output.
    pub fn name(self) -> &'static str {
        match self {
            Presence::Uninstantiated => "uninstantiated",
            Presence::Instantiating => "instantiating",
            Presence::Instantiated => "instantiated",
            Presence::Terminating => "terminating",
            Presence::Restarting => "restarting",
            Presence::InstantiationFailed => "instantiation-failed",
            Presence::TerminationFailed => "termination-failed",
        }
    }
}

/// What a node knows for sure of one of its own SUs, sent at every sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuReport {
    /// The SU's index in the model.
    pub su: u16,
    /// Its presence.
    pub presence: Presence,
    /// Operationally enabled.
    pub enabled: bool,
    /// The HA state its components hold for each SI (by index); an SI in flight is reported
    /// with the state that serves the most (a pending removal of an active is active).
    pub held: Vec<(u16, Ha)>,
}

/// The AMF's messages on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A node reports the presence and operational state of one of its SUs.
    Presence {
        /// The SU.
        su: u16,
        /// Its presence.
        presence: Presence,
        /// Operationally enabled.
        enabled: bool,
    },
    /// A node confirms that every component of SU `su` took HA state `ha` (`None`: gave
    /// up) for SI `si`, as asked by assignment generation `generation`.
    Assigned {
        /// The SU.
        su: u16,
        /// The SI.
        si: u16,
        /// The assignment's generation it answers.
        generation: u32,
        /// The state now held.
        ha: Option<Ha>,
    },
    /// An operator's administrative operation.
    Admin {
        /// The operation.
        op: AdminOp,
        /// An SU (false) or an SI (true).
        si: bool,
        /// Its index.
        index: u16,
    },
    /// The fence delay after ring `(rep, seq)` removed members has passed: the SIs they
    /// served may be given to others.
    Fenced {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
    },
    /// A node that was not scheduled for a while checks that its view is current: it acts
    /// again when its own probe comes back in order.
    Probe {
        /// The sender's number for this probe.
        nonce: u64,
    },
    /// A member's part of the sync of ring `(rep, seq)`.
    Sync {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The digest of the sender's model (members with another model are refused).
        model: u64,
        /// The next assignment generation the sender would use (the members continue above
        /// the highest).
        generation: u32,
        /// Administrative states it knows: (SU false / SI true, index, version, state
        /// code).
        admin: Vec<(bool, u16, u64, u8)>,
        /// Its own SUs.
        sus: Vec<SuReport>,
        /// SIs (by index) it knew served on nodes that are not members now, with those
        /// nodes.
        suspects: Vec<(u16, u32)>,
    },
}

const RING_PRESENCE: u16 = 1;
const RING_ASSIGNED: u16 = 2;
const RING_ADMIN: u16 = 4;
const RING_FENCED: u16 = 5;
const RING_SYNC: u16 = 6;
const RING_PROBE: u16 = 7;

fn get_presence(r: &mut Reader) -> Result<Presence, DecodeError> {
    Presence::from_code(r.u8("presence")?).ok_or(DecodeError::Invalid {
        field: "presence",
        why: "unknown",
    })
}

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Presence { .. } => RING_PRESENCE,
            RingMessage::Assigned { .. } => RING_ASSIGNED,
            RingMessage::Admin { .. } => RING_ADMIN,
            RingMessage::Fenced { .. } => RING_FENCED,
            RingMessage::Sync { .. } => RING_SYNC,
            RingMessage::Probe { .. } => RING_PROBE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Presence { .. } => "AmfPresence",
            RingMessage::Assigned { .. } => "AmfAssigned",
            RingMessage::Admin { .. } => "AmfAdmin",
            RingMessage::Fenced { .. } => "AmfFenced",
            RingMessage::Sync { .. } => "AmfSync",
            RingMessage::Probe { .. } => "AmfProbe",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Presence {
                su,
                presence,
                enabled,
            } => {
                w.u16(*su).u8(presence.code()).u8(u8::from(*enabled));
            }
            RingMessage::Assigned {
                su,
                si,
                generation,
                ha,
            } => {
                w.u16(*su).u16(*si).u32(*generation);
                put_opt_ha(w, *ha);
            }
            RingMessage::Admin { op, si, index } => {
                w.u8(op.code()).u8(u8::from(*si)).u16(*index);
            }
            RingMessage::Fenced { rep, seq } => {
                w.u32(*rep).u64(*seq);
            }
            RingMessage::Probe { nonce } => {
                w.u64(*nonce);
            }
            RingMessage::Sync {
                rep,
                seq,
                model,
                generation,
                admin,
                sus,
                suspects,
            } => {
                w.u32(*rep)
                    .u64(*seq)
                    .u64(*model)
                    .u32(*generation)
                    .count(admin.len());
                for (si, index, version, state) in admin {
                    w.u8(u8::from(*si)).u16(*index).u64(*version).u8(*state);
                }
                w.count(sus.len());
                for s in sus {
                    w.u16(s.su)
                        .u8(s.presence.code())
                        .u8(u8::from(s.enabled))
                        .count(s.held.len());
                    for (si, ha) in &s.held {
                        w.u16(*si).u8(ha.code());
                    }
                }
                w.count(suspects.len());
                for (si, node) in suspects {
                    w.u16(*si).u32(*node);
                }
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(match op {
            RING_PRESENCE => RingMessage::Presence {
                su: r.u16("SU")?,
                presence: get_presence(r)?,
                enabled: r.bool("enabled")?,
            },
            RING_ASSIGNED => RingMessage::Assigned {
                su: r.u16("SU")?,
                si: r.u16("SI")?,
                generation: r.u32("generation")?,
                ha: get_opt_ha(r)?,
            },
            RING_ADMIN => RingMessage::Admin {
                op: AdminOp::from_code(r.u8("operation")?).ok_or(DecodeError::Invalid {
                    field: "operation",
                    why: "unknown",
                })?,
                si: r.bool("SI")?,
                index: r.u16("index")?,
            },
            RING_FENCED => RingMessage::Fenced {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
            },
            RING_PROBE => RingMessage::Probe {
                nonce: r.u64("nonce")?,
            },
            RING_SYNC => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                let model = r.u64("model digest")?;
                let generation = r.u32("generation")?;
                let n = r.count("admin states", 12)?;
                let mut admin = Vec::with_capacity(n);
                for _ in 0..n {
                    admin.push((
                        r.bool("SI")?,
                        r.u16("index")?,
                        r.u64("version")?,
                        r.u8("state")?,
                    ));
                }
                let n = r.count("SUs", 8)?;
                let mut sus = Vec::with_capacity(n);
                for _ in 0..n {
                    let su = r.u16("SU")?;
                    let presence = get_presence(r)?;
                    let enabled = r.bool("enabled")?;
                    let k = r.count("held", 3)?;
                    let mut held = Vec::with_capacity(k);
                    for _ in 0..k {
                        held.push((r.u16("SI")?, get_ha(r)?));
                    }
                    sus.push(SuReport {
                        su,
                        presence,
                        enabled,
                        held,
                    });
                }
                let n = r.count("suspects", 6)?;
                let mut suspects = Vec::with_capacity(n);
                for _ in 0..n {
                    suspects.push((r.u16("SI")?, r.u32("node")?));
                }
                RingMessage::Sync {
                    rep,
                    seq,
                    model,
                    generation,
                    admin,
                    sus,
                    suspects,
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

    #[test]
    fn every_amf_message_round_trips() {
        let reqs = [
            Request::Register {
                comp: "safComp=c,safSu=u,safSg=g,safApp=a".into(),
            },
            Request::Unregister,
            Request::Response {
                invocation: 7,
                ok: true,
            },
            Request::HealthcheckConfirm {
                key: "hc".into(),
                ok: false,
            },
            Request::ErrorReport {
                recovery: recovery::COMPONENT_FAILOVER,
            },
            Request::NameGet,
            Request::Status,
            Request::Tree,
            Request::Admin {
                op: AdminOp::Switchover,
                entity: "si-1".into(),
            },
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let resp = [
            Response::Name("safComp=c".into()),
            Response::Status(vec!["a".into(), "  b".into()]),
            Response::Tree(Box::new(status::tests::sample())),
            Response::Tree(Box::new(Tree {
                node: 1,
                members: Vec::new(),
                quorate: false,
                sgs: Vec::new(),
            })),
        ];
        assert!(resp.iter().all(|r| r.op() >= FIRST_RESPONSE_OP));
        assert_round_trips(Kind::Response, &resp);
        assert_round_trips(
            Kind::Callback,
            &[
                Callback::CsiSet {
                    invocation: 1,
                    si: "si".into(),
                    csi: "state".into(),
                    ha: Ha::Standby,
                    attributes: vec![("port".into(), "7000".into())],
                },
                Callback::CsiRemove {
                    invocation: 2,
                    si: "si".into(),
                    csi: "state".into(),
                },
                Callback::Healthcheck {
                    invocation: 3,
                    key: "hc".into(),
                },
                Callback::Terminate { invocation: 4 },
            ],
        );
        assert_round_trips(
            Kind::Request,
            &[
                RingMessage::Presence {
                    su: 1,
                    presence: Presence::Instantiated,
                    enabled: true,
                },
                RingMessage::Assigned {
                    su: 1,
                    si: 0,
                    generation: 9,
                    ha: Some(Ha::Quiesced),
                },
                RingMessage::Assigned {
                    su: 1,
                    si: 0,
                    generation: 10,
                    ha: None,
                },
                RingMessage::Admin {
                    op: AdminOp::Lock,
                    si: false,
                    index: 2,
                },
                RingMessage::Fenced { rep: 1, seq: 12 },
                RingMessage::Probe { nonce: 77 },
                RingMessage::Sync {
                    rep: 1,
                    seq: 12,
                    model: 0xfeed,
                    generation: 40,
                    admin: vec![(false, 1, 3, 2)],
                    sus: vec![SuReport {
                        su: 1,
                        presence: Presence::Instantiated,
                        enabled: true,
                        held: vec![(0, Ha::Active)],
                    }],
                    suspects: vec![(0, 3)],
                },
            ],
        );
    }

    #[test]
    fn codes_round_trip_and_unknown_ones_are_refused() {
        for h in Ha::ALL {
            assert_eq!(Ha::from_code(h.code()), Some(h));
        }
        for p in Presence::ALL {
            assert_eq!(Presence::from_code(p.code()), Some(p));
        }
        for o in AdminOp::ALL {
            assert_eq!(AdminOp::from_name(o.name()), Some(o));
        }
        let mut w = Writer::with_capacity(8);
        w.u16(1).u16(0).u32(1).u8(9);
        let mut r = Reader::new(Bytes::from(w.finish()));
        assert!(RingMessage::decode(RING_ASSIGNED, &mut r).is_err());
    }
}
