//! The RMCP+ session layer: ASF ping, pre-session commands, Open Session and RAKP 1–4,
//! sealed (authenticated and encrypted) IPMI messages, privilege levels, sequence windows,
//! the session table. It knows nothing of the commands past the session ones: everything
//! else goes to a [`Handler`] after the privilege check.
//!
//! **Contract:** [`Server::handle_datagram`] takes the time (milliseconds from any fixed
//! origin, never going back), the sender and the datagram, and returns an [`Outcome`]: the
//! reply to send (if any) and, when the packet was refused, why. Every refusal is also
//! logged at `warn` with its reason; passwords and keys never are. [`Server::tick`] expires
//! idle sessions; call it about once a second. The server opens no socket and reads no
//! clock; its randomness (session ids, the RAKP random number, IVs) comes from a ChaCha
//! generator seeded by the caller.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tracing::{info, warn};

use super::crypto::{SessionKeys, Suite, codes_equal, md5_code};
use super::users::{Privilege, Users};
use super::wire::{self, Packet, PayloadType, Reader, Request, V20Packet, cc, netfn};

/// Milliseconds from a fixed origin chosen by the caller.
pub type Millis = u64;

/// RMCP+ status codes (Open Session Response, RAKP 2 and 4).
pub mod status {
    /// No errors.
    pub const OK: u8 = 0x00;
    /// Insufficient resources to create a session.
    pub const NO_RESOURCES: u8 = 0x01;
    /// Invalid session id.
    pub const INVALID_SESSION_ID: u8 = 0x02;
    /// Invalid role.
    pub const INVALID_ROLE: u8 = 0x09;
    /// Unauthorized role or privilege level requested.
    pub const UNAUTHORIZED_ROLE: u8 = 0x0A;
    /// Invalid name length.
    pub const INVALID_NAME_LENGTH: u8 = 0x0C;
    /// Unauthorized name.
    pub const UNAUTHORIZED_NAME: u8 = 0x0D;
    /// Invalid integrity check value.
    pub const INVALID_ICV: u8 = 0x0F;
    /// No cipher suite match with proposed security algorithms.
    pub const NO_CIPHER_SUITE: u8 = 0x11;
    /// Illegal or unrecognized parameter.
    pub const ILLEGAL_PARAMETER: u8 = 0x12;
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most sessions at once, those still in RAKP included.
    pub max_sessions: usize,
    /// An active session with no valid packet for this long is closed.
    pub idle_timeout: Millis,
    /// A session still in Open Session / RAKP after this long is dropped.
    pub handshake_timeout: Millis,
    /// The managed system GUID (RAKP 2 and 4 carry it).
    pub guid: [u8; 16],
    /// Seed of the random numbers (session ids, RAKP Rc, IVs).
    pub seed: u64,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_sessions: 16,
            idle_timeout: 60_000,
            handshake_timeout: 10_000,
            guid: *b"openais-rs-shelf",
            seed: 0,
        }
    }
}

/// IPMI 1.5 authentication type MD5.
const AUTH_MD5: u8 = 2;

/// The IPMI 1.5 session header fields of a packet.
#[derive(Debug, Clone, Copy)]
struct V15Header {
    auth_type: u8,
    seq: u32,
    session_id: u32,
    auth_code: Option<[u8; 16]>,
}

/// A password as the 16-byte IPMI 1.5 key (zero padded).
fn md5_key(password: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    let b = password.as_bytes();
    key[..b.len().min(16)].copy_from_slice(&b[..b.len().min(16)]);
    key
}

/// Sequence numbers accepted behind and ahead of the highest one seen.
pub const SEQ_WINDOW: u32 = 16;

/// Answers the commands past the session layer.
pub trait Handler {
    /// The privilege the command needs, or `None` when it is not a command the handler
    /// knows (answered with Invalid Command).
    fn privilege(&self, netfn: u8, cmd: u8, data: &[u8]) -> Option<Privilege>;

    /// Answers an authorised request: (completion code, response data).
    fn handle(&mut self, now: Millis, request: &Request<'_>) -> (u8, Vec<u8>);

    /// The privilege a request bridged (Send Message) to the controller at IPMB-0 address
    /// `to` needs, or `None` for a command the handler does not know there (the controller
    /// answers it with Invalid Command, so it needs no more than User). The default bridges
    /// nothing, so it only matters with [`Handler::bridge`].
    fn bridged_privilege(&self, to: u8, netfn: u8, cmd: u8, data: &[u8]) -> Option<Privilege> {
        let _ = (to, netfn, cmd, data);
        None
    }

    /// Delivers an authorised request to the controller at IPMB-0 address `to` (the
    /// request's `rs_addr`) and returns its answer: (completion code, response data).
    ///
    /// # Errors
    /// The Send Message completion code when the request cannot be delivered: 0x83 (NAK on
    /// write) when no controller answers there, which is the default.
    fn bridge(&mut self, now: Millis, request: &Request<'_>) -> Result<(u8, Vec<u8>), u8> {
        let _ = (now, request);
        Err(SEND_MESSAGE_NAK)
    }
}

/// App Send Message.
pub const SEND_MESSAGE: u8 = 0x34;
/// Send Message completion code: NAK on write (no controller acknowledged the request).
pub const SEND_MESSAGE_NAK: u8 = 0x83;

/// Why a packet was refused. Each is logged with its reason; nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Could not be parsed.
    Malformed(wire::WireError),
    /// An IPMI 1.5 session asked with an authentication type other than MD5.
    V15AuthType(u8),
    /// An IPMI 1.5 session asked by a user not allowed them (`ipmi15` off).
    V15NotAllowed(String),
    /// Activate Session with a challenge string other than the one sent.
    BadChallenge(u32),
    /// A payload type the server does not take.
    UnsupportedPayload(u8),
    /// A session id that is not in the table.
    UnknownSession(u32),
    /// A session's packet from another address than the one that opened it.
    WrongPeer(u32),
    /// A packet of the wrong handshake step for the session.
    UnexpectedStep(u32),
    /// Open Session proposed algorithms that make no offered suite.
    NoCipherSuite,
    /// The session table is full.
    SessionTableFull,
    /// RAKP 1 named a user that does not exist.
    UnknownUser(String),
    /// RAKP 1 named an invalid role (0, OEM, reserved).
    InvalidRole(u8),
    /// RAKP 1 asked for more than the user may hold.
    RoleNotAllowed {
        /// The user.
        user: String,
        /// What was asked (code).
        requested: u8,
        /// What the user may hold.
        max: Privilege,
    },
    /// RAKP 3 (or an IPMI 1.5 Activate Session) carried a wrong code: the console does not
    /// know the password.
    WrongPassword(String),
    /// RAKP 3 said the console refused our RAKP 2 (a wrong password on its side).
    ConsoleRefusedRakp2 {
        /// The user.
        user: String,
        /// The status it sent.
        status: u8,
    },
    /// A handshake that stopped after RAKP 2: the console did not accept our RAKP 2 code
    /// (a wrong password on its side, which consoles such as ipmitool do not report) or
    /// gave up. Found when the handshake times out.
    AbandonedAfterRakp2(String),
    /// An active session's packet without integrity or encryption.
    NotSealed(u32),
    /// An active session's packet whose AuthCode is wrong.
    BadAuthCode(u32),
    /// A sequence number already used (a replayed packet).
    Replayed {
        /// The session.
        session: u32,
        /// The number.
        seq: u32,
    },
    /// A sequence number outside the window around the highest one seen.
    OutOfWindow {
        /// The session.
        session: u32,
        /// The number.
        seq: u32,
        /// The highest seen.
        highest: u32,
    },
    /// The payload did not decrypt.
    BadEncryption(u32),
    /// A command that needs a session sent outside one.
    Unauthenticated {
        /// Network function.
        netfn: u8,
        /// Command.
        cmd: u8,
    },
    /// A command above the session's current privilege.
    InsufficientPrivilege {
        /// Network function.
        netfn: u8,
        /// Command.
        cmd: u8,
        /// What it needs.
        needed: Privilege,
        /// What the session holds.
        held: Privilege,
    },
    /// Set Session Privilege Level above the session's maximum.
    PrivilegeAboveMaximum {
        /// What was asked (code).
        requested: u8,
        /// The session's maximum.
        max: Privilege,
    },
    /// Close Session of another user's session without administrator privilege.
    CloseNotAllowed(u32),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(e) => write!(f, "{e}"),
            Refusal::V15AuthType(t) => {
                write!(
                    f,
                    "IPMI 1.5 authentication type {t} not offered (only MD5, 2)"
                )
            }
            Refusal::V15NotAllowed(u) => {
                write!(
                    f,
                    "user {u:?} may not open IPMI 1.5 sessions (ipmi15 is off)"
                )
            }
            Refusal::BadChallenge(s) => {
                write!(
                    f,
                    "session {s:#010x}: Activate Session with a wrong challenge"
                )
            }
            Refusal::UnsupportedPayload(t) => write!(f, "payload type {t:#04x} not supported"),
            Refusal::UnknownSession(s) => write!(f, "no session {s:#010x}"),
            Refusal::WrongPeer(s) => write!(f, "session {s:#010x} belongs to another address"),
            Refusal::UnexpectedStep(s) => write!(f, "session {s:#010x}: out-of-order message"),
            Refusal::NoCipherSuite => f.write_str("no offered cipher suite (3, 17) matches"),
            Refusal::SessionTableFull => f.write_str("session table full"),
            Refusal::UnknownUser(u) => write!(f, "unknown user {u:?}"),
            Refusal::InvalidRole(r) => write!(f, "invalid role {r:#04x}"),
            Refusal::RoleNotAllowed {
                user,
                requested,
                max,
            } => write!(
                f,
                "user {user:?} asked for privilege {requested} above its maximum {max}"
            ),
            Refusal::WrongPassword(u) => {
                write!(
                    f,
                    "user {u:?}: wrong password (RAKP 3 code or MD5 AuthCode mismatch)"
                )
            }
            Refusal::ConsoleRefusedRakp2 { user, status } => write!(
                f,
                "user {user:?}: console refused RAKP 2 with status {status:#04x} (wrong password?)"
            ),
            Refusal::AbandonedAfterRakp2(u) => write!(
                f,
                "user {u:?}: handshake abandoned after RAKP 2 (wrong password at the console?)"
            ),
            Refusal::NotSealed(s) => {
                write!(
                    f,
                    "session {s:#010x}: packet not authenticated and encrypted"
                )
            }
            Refusal::BadAuthCode(s) => write!(f, "session {s:#010x}: bad AuthCode"),
            Refusal::Replayed { session, seq } => {
                write!(f, "session {session:#010x}: sequence {seq} replayed")
            }
            Refusal::OutOfWindow {
                session,
                seq,
                highest,
            } => write!(
                f,
                "session {session:#010x}: sequence {seq} outside the window around {highest}"
            ),
            Refusal::BadEncryption(s) => write!(f, "session {s:#010x}: payload does not decrypt"),
            Refusal::Unauthenticated { netfn, cmd } => {
                write!(f, "netfn {netfn:#04x} cmd {cmd:#04x} needs a session")
            }
            Refusal::InsufficientPrivilege {
                netfn,
                cmd,
                needed,
                held,
            } => write!(
                f,
                "netfn {netfn:#04x} cmd {cmd:#04x} needs {needed}, the session holds {held}"
            ),
            Refusal::PrivilegeAboveMaximum { requested, max } => write!(
                f,
                "Set Session Privilege {requested} above the session's maximum {max}"
            ),
            Refusal::CloseNotAllowed(s) => write!(
                f,
                "closing session {s:#010x} of another user needs administrator"
            ),
        }
    }
}

/// What [`Server::handle_datagram`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Outcome {
    /// The datagram to send back to the sender.
    pub reply: Option<Vec<u8>>,
    /// A second datagram to send after `reply`: the answer of a controller to a request
    /// bridged with Send Message, delivered as its own message in the session (Send Message with
    /// tracking on a LAN channel; OpenIPMI's `ipmi_sim` answers the same way).
    pub bridged: Option<Vec<u8>>,
    /// Why the packet (or the command in it) was refused.
    pub refused: Option<Refusal>,
}

impl Outcome {
    fn reply(bytes: Vec<u8>) -> Outcome {
        Outcome {
            reply: Some(bytes),
            bridged: None,
            refused: None,
        }
    }
    fn refused(r: Refusal) -> Outcome {
        Outcome {
            reply: None,
            bridged: None,
            refused: Some(r),
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sessions that completed RAKP.
    pub sessions_opened: u64,
    /// Sessions closed by Close Session.
    pub sessions_closed: u64,
    /// Sessions expired (idle or stuck in RAKP).
    pub sessions_expired: u64,
    /// Packets or commands refused.
    pub refused: u64,
    /// IPMI requests answered inside sessions.
    pub requests: u64,
}

#[derive(Debug, Clone)]
struct Handshake {
    rm: [u8; 16],
    rc: [u8; 16],
    role: u8,
    user: String,
}

/// A request answered: its sequence number and AuthCode, the reply, the bridged answer.
type Answered = (u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, Clone)]
struct Active {
    protection: Protection,
    user: String,
    max: Privilege,
    privilege: Privilege,
    highest_rx: u32,
    /// Bit i set: `highest_rx - i` was received (i < 32).
    seen: u32,
    tx_seq: u32,
    /// The last request answered (its sequence number and AuthCode) and the answer (with
    /// its bridged answer, if any): an exact retransmission gets the same answers again,
    /// without running the command twice.
    last: Option<Answered>,
}

/// How an active session's packets are protected.
#[derive(Debug, Clone)]
enum Protection {
    /// RMCP+: integrity and confidentiality with the session keys.
    Sealed(SessionKeys),
    /// IPMI 1.5: an MD5 AuthCode keyed with the user's password (16 bytes, zero padded),
    /// taken from the users file for each packet.
    Md5,
}

#[derive(Debug, Clone)]
enum Phase {
    /// IPMI 1.5: Get Session Challenge answered; Activate Session awaited.
    V15Challenge {
        /// The user named in the challenge request.
        user: String,
        /// The challenge string sent.
        challenge: [u8; 16],
    },
    /// Open Session answered; RAKP 1 awaited.
    Opened,
    /// RAKP 2 sent; RAKP 3 awaited.
    Rakp2Sent(Handshake),
    /// RAKP 4 sent; sealed messages flow.
    Active(Box<Active>),
}

#[derive(Debug, Clone)]
struct Session {
    peer: SocketAddr,
    console_id: u32,
    suite: Suite,
    requested_max: u8,
    last_seen: Millis,
    phase: Phase,
}

/// The RMCP+ server. See the module doc for the calling contract.
pub struct Server {
    config: ServerConfig,
    users: Users,
    rng: ChaCha20Rng,
    sessions: BTreeMap<u32, Session>,
    stats: Stats,
    /// The bridged answer produced by the command being handled (taken before returning).
    bridged: Option<Vec<u8>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A session as listed by [`Server::sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The server's id of the session.
    pub id: u32,
    /// The user, once RAKP 1 named one.
    pub user: Option<String>,
    /// Current privilege, once active.
    pub privilege: Option<Privilege>,
}

impl Server {
    /// A server for `users`.
    pub fn new(config: ServerConfig, users: Users) -> Server {
        let rng = ChaCha20Rng::seed_from_u64(config.seed);
        Server {
            config,
            users,
            rng,
            sessions: BTreeMap::new(),
            stats: Stats::default(),
            bridged: None,
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The session table.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(&id, s)| SessionInfo {
                id,
                user: match &s.phase {
                    Phase::Opened => None,
                    Phase::V15Challenge { user, .. } => Some(user.clone()),
                    Phase::Rakp2Sent(h) => Some(h.user.clone()),
                    Phase::Active(a) => Some(a.user.clone()),
                },
                privilege: match &s.phase {
                    Phase::Active(a) => Some(a.privilege),
                    _ => None,
                },
            })
            .collect()
    }

    /// Drops sessions idle past their timeout; returns the handshakes that stopped after
    /// RAKP 2 (each also logged as a refusal).
    pub fn tick(&mut self, now: Millis) -> Vec<Refusal> {
        let mut abandoned = Vec::new();
        let (idle, handshake) = (self.config.idle_timeout, self.config.handshake_timeout);
        let expired: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                let limit = match s.phase {
                    Phase::Active(_) => idle,
                    _ => handshake,
                };
                now.saturating_sub(s.last_seen) >= limit
            })
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some(s) = self.sessions.remove(&id) {
                self.stats.sessions_expired += 1;
                let active = matches!(s.phase, Phase::Active(_));
                info!(session = format_args!("{id:#010x}"), peer = %s.peer, active, "session expired");
                if let Phase::Rakp2Sent(h) = s.phase {
                    self.stats.refused += 1;
                    let reason = Refusal::AbandonedAfterRakp2(h.user);
                    warn!(peer = %s.peer, reason = %reason, "refused");
                    abandoned.push(reason);
                }
            }
        }
        abandoned
    }

    /// Handles one datagram from `from`. See the module doc.
    pub fn handle_datagram(
        &mut self,
        now: Millis,
        from: SocketAddr,
        datagram: &[u8],
        handler: &mut impl Handler,
    ) -> Outcome {
        let _abandoned = self.tick(now);
        let outcome = match wire::parse(datagram) {
            Err(e) => Outcome::refused(Refusal::Malformed(e)),
            Ok(Packet::AsfPing { tag }) => Outcome::reply(wire::asf_pong(tag)),
            Ok(Packet::V15 {
                auth_type,
                seq,
                session_id,
                auth_code,
                message,
            }) => {
                if auth_type == 0 && session_id == 0 {
                    self.pre_session_v15(now, from, message)
                } else {
                    let header = V15Header {
                        auth_type,
                        seq,
                        session_id,
                        auth_code,
                    };
                    self.v15_session(now, from, header, message, handler)
                }
            }
            Ok(Packet::V20(p)) => self.v20(now, from, &p, handler),
        };
        if let Some(r) = &outcome.refused {
            self.stats.refused += 1;
            warn!(peer = %from, reason = %r, "refused");
        }
        outcome
    }

    /// A command outside any session: only the two that set one up.
    fn pre_session(&mut self, message: &[u8], wrap: impl FnOnce(&[u8]) -> Vec<u8>) -> Outcome {
        let req = match Request::parse(message) {
            Ok(r) => r,
            Err(e) => return Outcome::refused(Refusal::Malformed(e)),
        };
        match self.session_free_command(&req) {
            Some((code, data)) => Outcome::reply(wrap(&req.response(code, &data))),
            None => Outcome {
                bridged: None,
                reply: Some(wrap(&req.response(cc::INSUFFICIENT_PRIVILEGE, &[]))),
                refused: Some(Refusal::Unauthenticated {
                    netfn: req.netfn,
                    cmd: req.cmd,
                }),
            },
        }
    }

    /// Get Channel Authentication Capabilities and Get Channel Cipher Suites, which need no
    /// session.
    fn session_free_command(&self, req: &Request<'_>) -> Option<(u8, Vec<u8>)> {
        if req.netfn != netfn::APP {
            return None;
        }
        match req.cmd {
            0x38 => Some(channel_auth_caps(
                req.data,
                self.users.user.iter().any(|u| u.ipmi15),
            )),
            0x54 => Some(channel_cipher_suites(req.data)),
            _ => None,
        }
    }

    fn v20(
        &mut self,
        now: Millis,
        from: SocketAddr,
        p: &V20Packet<'_>,
        handler: &mut impl Handler,
    ) -> Outcome {
        match p.payload_type {
            PayloadType::OpenSessionRequest if p.session_id == 0 => {
                self.open_session(now, from, p.payload)
            }
            PayloadType::Rakp1 if p.session_id == 0 => self.rakp1(now, from, p.payload),
            PayloadType::Rakp3 if p.session_id == 0 => self.rakp3(now, from, p.payload),
            PayloadType::Ipmi if p.session_id == 0 => {
                if p.authenticated || p.encrypted {
                    return Outcome::refused(Refusal::UnknownSession(0));
                }
                self.pre_session(p.payload, |m| wire::v20_plain(PayloadType::Ipmi, 0, m))
            }
            PayloadType::Ipmi => self.sealed(now, from, p, handler),
            other => Outcome::refused(Refusal::UnsupportedPayload(other.code())),
        }
    }

    fn open_session(&mut self, now: Millis, from: SocketAddr, payload: &[u8]) -> Outcome {
        let parsed = (|| {
            let mut r = Reader::new(payload);
            let tag = r.u8("open session tag")?;
            let privilege = r.u8("open session privilege")? & 0x0F;
            r.bytes(2, "open session reserved")?;
            let console_id = r.u32_le("console session id")?;
            let mut algs = [0u8; 3];
            for (i, alg) in algs.iter_mut().enumerate() {
                let head = r.bytes(4, "algorithm payload")?;
                let body = r.bytes(4, "algorithm payload")?;
                if usize::from(head[0]) != i || head[3] != 8 {
                    return Err(wire::WireError("algorithm payload type"));
                }
                *alg = body[0] & 0x3F;
            }
            Ok((tag, privilege, console_id, algs))
        })();
        let (tag, privilege, console_id, algs) = match parsed {
            Ok(v) => v,
            Err(e) => return Outcome::refused(Refusal::Malformed(e)),
        };
        let fail = |code: u8| {
            let mut out = vec![tag, code, 0, 0];
            out.extend_from_slice(&console_id.to_le_bytes());
            wire::v20_plain(PayloadType::OpenSessionResponse, 0, &out)
        };
        let Some(suite) = Suite::from_algorithms(algs[0], algs[1], algs[2]) else {
            return Outcome {
                bridged: None,
                reply: Some(fail(status::NO_CIPHER_SUITE)),
                refused: Some(Refusal::NoCipherSuite),
            };
        };
        if privilege > 4 {
            return Outcome {
                bridged: None,
                reply: Some(fail(status::INVALID_ROLE)),
                refused: Some(Refusal::InvalidRole(privilege)),
            };
        }
        if self.sessions.len() >= self.config.max_sessions {
            return Outcome {
                bridged: None,
                reply: Some(fail(status::NO_RESOURCES)),
                refused: Some(Refusal::SessionTableFull),
            };
        }
        let id = self.new_session_id();
        let granted = if privilege == 0 { 4 } else { privilege };
        self.sessions.insert(
            id,
            Session {
                peer: from,
                console_id,
                suite,
                requested_max: granted,
                last_seen: now,
                phase: Phase::Opened,
            },
        );
        let (a, i, c) = suite.algorithms();
        let mut out = vec![tag, status::OK, granted, 0];
        out.extend_from_slice(&console_id.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        for (kind, alg) in [(0u8, a), (1, i), (2, c)] {
            out.extend_from_slice(&[kind, 0, 0, 8, alg, 0, 0, 0]);
        }
        Outcome::reply(wire::v20_plain(PayloadType::OpenSessionResponse, 0, &out))
    }

    fn new_session_id(&mut self) -> u32 {
        loop {
            let id: u32 = self.rng.random();
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Looks a handshake session up by the id RAKP carries, checking its peer.
    fn handshake_session(&mut self, id: u32, from: SocketAddr) -> Result<&mut Session, Refusal> {
        let s = self
            .sessions
            .get_mut(&id)
            .ok_or(Refusal::UnknownSession(id))?;
        if s.peer != from {
            return Err(Refusal::WrongPeer(id));
        }
        Ok(s)
    }

    fn rakp1(&mut self, now: Millis, from: SocketAddr, payload: &[u8]) -> Outcome {
        let parsed = (|| {
            let mut r = Reader::new(payload);
            let tag = r.u8("rakp1 tag")?;
            r.bytes(3, "rakp1 reserved")?;
            let id = r.u32_le("rakp1 session id")?;
            let rm = r.array::<16>("rakp1 random")?;
            let role = r.u8("rakp1 role")?;
            r.bytes(2, "rakp1 reserved")?;
            let len = r.u8("rakp1 name length")?;
            if len > 16 {
                return Err(wire::WireError("rakp1 name length"));
            }
            let name = r.bytes(usize::from(len), "rakp1 name")?.to_vec();
            Ok((tag, id, rm, role, name))
        })();
        let (tag, id, rm, role, name) = match parsed {
            Ok(v) => v,
            Err(e) => return Outcome::refused(Refusal::Malformed(e)),
        };
        let guid = self.config.guid;
        let rc: [u8; 16] = self.rng.random();
        let session = match self.handshake_session(id, from) {
            Ok(s) => s,
            Err(r) => return Outcome::refused(r),
        };
        if !matches!(session.phase, Phase::Opened) {
            return Outcome::refused(Refusal::UnexpectedStep(id));
        }
        let console_id = session.console_id;
        let suite = session.suite;
        let fail = |code: u8| {
            let mut out = vec![tag, code, 0, 0];
            out.extend_from_slice(&console_id.to_le_bytes());
            wire::v20_plain(PayloadType::Rakp2, 0, &out)
        };
        let shown = String::from_utf8_lossy(&name).into_owned();
        let verdict = (|| {
            let Some(user) = self.users.find(&name) else {
                return Err((
                    status::UNAUTHORIZED_NAME,
                    Refusal::UnknownUser(shown.clone()),
                ));
            };
            let Some(requested) = Privilege::from_code(role & 0x0F) else {
                return Err((status::INVALID_ROLE, Refusal::InvalidRole(role)));
            };
            if requested > user.privilege {
                return Err((
                    status::UNAUTHORIZED_ROLE,
                    Refusal::RoleNotAllowed {
                        user: shown.clone(),
                        requested: requested.code(),
                        max: user.privilege,
                    },
                ));
            }
            Ok(user.password.clone())
        })();
        let password = match verdict {
            Ok(p) => p,
            Err((code, refusal)) => {
                self.sessions.remove(&id);
                return Outcome {
                    bridged: None,
                    reply: Some(fail(code)),
                    refused: Some(refusal),
                };
            }
        };
        let code = suite.hmac(
            password.as_bytes(),
            &[
                &console_id.to_le_bytes(),
                &id.to_le_bytes(),
                &rm,
                &rc,
                &guid,
                &[role, name.len() as u8],
                &name,
            ],
        );
        if let Some(s) = self.sessions.get_mut(&id) {
            s.last_seen = now;
            s.phase = Phase::Rakp2Sent(Handshake {
                rm,
                rc,
                role,
                user: shown,
            });
        }
        let mut out = vec![tag, status::OK, 0, 0];
        out.extend_from_slice(&console_id.to_le_bytes());
        out.extend_from_slice(&rc);
        out.extend_from_slice(&guid);
        out.extend_from_slice(&code);
        Outcome::reply(wire::v20_plain(PayloadType::Rakp2, 0, &out))
    }

    fn rakp3(&mut self, now: Millis, from: SocketAddr, payload: &[u8]) -> Outcome {
        let parsed = (|| {
            let mut r = Reader::new(payload);
            let tag = r.u8("rakp3 tag")?;
            let status = r.u8("rakp3 status")?;
            r.bytes(2, "rakp3 reserved")?;
            let id = r.u32_le("rakp3 session id")?;
            Ok((tag, status, id, r.rest()))
        })();
        let (tag, rakp3_status, id, code) = match parsed {
            Ok(v) => v,
            Err(e) => return Outcome::refused(Refusal::Malformed(e)),
        };
        let guid = self.config.guid;
        let session = match self.handshake_session(id, from) {
            Ok(s) => s,
            Err(r) => return Outcome::refused(r),
        };
        let Phase::Rakp2Sent(h) = &session.phase else {
            return Outcome::refused(Refusal::UnexpectedStep(id));
        };
        let h = h.clone();
        let (console_id, suite, requested_max) =
            (session.console_id, session.suite, session.requested_max);
        if rakp3_status != status::OK {
            self.sessions.remove(&id);
            return Outcome::refused(Refusal::ConsoleRefusedRakp2 {
                user: h.user,
                status: rakp3_status,
            });
        }
        let Some(user) = self.users.find(h.user.as_bytes()).cloned() else {
            self.sessions.remove(&id);
            return Outcome::refused(Refusal::UnknownUser(h.user));
        };
        let name = user.name.as_bytes();
        let head = [h.role, name.len() as u8];
        let expected = suite.hmac(
            user.password.as_bytes(),
            &[&h.rc, &console_id.to_le_bytes(), &head, name],
        );
        let reply_head = |code: u8| {
            let mut out = vec![tag, code, 0, 0];
            out.extend_from_slice(&console_id.to_le_bytes());
            out
        };
        if !codes_equal(code, &expected) {
            self.sessions.remove(&id);
            return Outcome {
                bridged: None,
                reply: Some(wire::v20_plain(
                    PayloadType::Rakp4,
                    0,
                    &reply_head(status::INVALID_ICV),
                )),
                refused: Some(Refusal::WrongPassword(h.user)),
            };
        }
        let sik = suite.hmac(user.password.as_bytes(), &[&h.rm, &h.rc, &head, name]);
        let icv = suite.icv(&sik, &[&h.rm, &id.to_le_bytes(), &guid]);
        let max = Privilege::from_code(h.role & 0x0F)
            .unwrap_or(Privilege::User)
            .min(user.privilege)
            .min(Privilege::from_code(requested_max).unwrap_or(Privilege::Administrator));
        let active = Active {
            protection: Protection::Sealed(SessionKeys::from_sik(suite, &sik)),
            user: h.user.clone(),
            max,
            privilege: max.min(Privilege::User),
            highest_rx: 0,
            seen: 0,
            tx_seq: 0,
            last: None,
        };
        if let Some(s) = self.sessions.get_mut(&id) {
            s.last_seen = now;
            s.phase = Phase::Active(Box::new(active));
        }
        self.stats.sessions_opened += 1;
        info!(session = format_args!("{id:#010x}"), peer = %from, user = %h.user, suite = suite.id(), max = %max, "session open");
        let mut out = reply_head(status::OK);
        out.extend_from_slice(&icv);
        Outcome::reply(wire::v20_plain(PayloadType::Rakp4, 0, &out))
    }

    fn sealed(
        &mut self,
        now: Millis,
        from: SocketAddr,
        p: &V20Packet<'_>,
        handler: &mut impl Handler,
    ) -> Outcome {
        let id = p.session_id;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Outcome::refused(Refusal::UnknownSession(id));
        };
        if session.peer != from {
            return Outcome::refused(Refusal::WrongPeer(id));
        }
        let console_id = session.console_id;
        let Phase::Active(active) = &mut session.phase else {
            return Outcome::refused(Refusal::UnexpectedStep(id));
        };
        let Protection::Sealed(keys) = &active.protection else {
            return Outcome::refused(Refusal::NotSealed(id));
        };
        let keys = keys.clone();
        if !(p.authenticated && p.encrypted) {
            return Outcome::refused(Refusal::NotSealed(id));
        }
        let Some((covered, code)) = p.authenticated_parts(keys.suite.icv_len()) else {
            return Outcome::refused(Refusal::BadAuthCode(id));
        };
        if !codes_equal(code, &keys.auth_code(covered)) {
            return Outcome::refused(Refusal::BadAuthCode(id));
        }
        if let Err(r) = accept_seq(active, id, p.seq) {
            let (reply, bridged) = retransmission(active, p.seq, code).unzip();
            return Outcome {
                bridged: bridged.flatten(),
                reply,
                refused: Some(r),
            };
        }
        let request_code = code.to_vec();
        let Some(plain) = keys.decrypt(p.payload) else {
            return Outcome::refused(Refusal::BadEncryption(id));
        };
        session.last_seen = now;
        let req = match Request::parse(&plain) {
            Ok(r) => r,
            Err(e) => return Outcome::refused(Refusal::Malformed(e)),
        };
        self.stats.requests += 1;
        let (code, data, refused, close) = self.session_command(id, &req, handler, now);
        let iv: [u8; 16] = self.rng.random();
        let Some(Session {
            phase: Phase::Active(active),
            ..
        }) = self.sessions.get_mut(&id)
        else {
            return Outcome::refused(Refusal::UnknownSession(id));
        };
        active.tx_seq = active.tx_seq.wrapping_add(1).max(1);
        let enc = keys.encrypt(iv, &req.response(code, &data));
        let reply = wire::v20_sealed(PayloadType::Ipmi, console_id, active.tx_seq, &enc, |c| {
            keys.auth_code(c)
        });
        let bridged = self.bridged.take().map(|message| {
            active.tx_seq = active.tx_seq.wrapping_add(1).max(1);
            let iv: [u8; 16] = self.rng.random();
            let enc = keys.encrypt(iv, &message);
            wire::v20_sealed(PayloadType::Ipmi, console_id, active.tx_seq, &enc, |c| {
                keys.auth_code(c)
            })
        });
        active.last = Some((p.seq, request_code, reply.clone(), bridged.clone()));
        if let Some(target) = close
            && self.sessions.remove(&target).is_some()
        {
            self.stats.sessions_closed += 1;
            info!(session = format_args!("{target:#010x}"), "session closed");
        }
        Outcome {
            bridged,
            reply: Some(reply),
            refused,
        }
    }

    /// An IPMI 1.5 packet without a session: Get Session Challenge here, the rest as for
    /// RMCP+.
    fn pre_session_v15(&mut self, now: Millis, from: SocketAddr, message: &[u8]) -> Outcome {
        let req = match Request::parse(message) {
            Ok(r) => r,
            Err(e) => return Outcome::refused(Refusal::Malformed(e)),
        };
        if !(req.netfn == netfn::APP && req.cmd == 0x39) {
            return self.pre_session(message, |m| wire::v15_packet(0, 0, m));
        }
        let wrap = |code: u8, data: &[u8]| Some(wire::v15_packet(0, 0, &req.response(code, data)));
        let (Some(&auth_type), Some(name)) = (req.data.first(), req.data.get(1..17)) else {
            return Outcome {
                bridged: None,
                reply: wrap(cc::BAD_LENGTH, &[]),
                refused: Some(Refusal::Malformed(wire::WireError("session challenge"))),
            };
        };
        let name: Vec<u8> = name.iter().copied().take_while(|&b| b != 0).collect();
        let shown = String::from_utf8_lossy(&name).into_owned();
        let refusal = if auth_type != AUTH_MD5 {
            Some((cc::INVALID_DATA, Refusal::V15AuthType(auth_type)))
        } else {
            match self.users.find(&name) {
                None => Some((0x81, Refusal::UnknownUser(shown.clone()))),
                Some(u) if !u.ipmi15 => Some((0x81, Refusal::V15NotAllowed(shown.clone()))),
                Some(_) if self.sessions.len() >= self.config.max_sessions => {
                    Some((cc::BUSY, Refusal::SessionTableFull))
                }
                Some(_) => None,
            }
        };
        if let Some((code, refused)) = refusal {
            return Outcome {
                bridged: None,
                reply: wrap(code, &[]),
                refused: Some(refused),
            };
        }
        let id = self.new_session_id();
        let challenge: [u8; 16] = self.rng.random();
        self.sessions.insert(
            id,
            Session {
                peer: from,
                console_id: 0,
                suite: Suite::Sha1,
                requested_max: 4,
                last_seen: now,
                phase: Phase::V15Challenge {
                    user: shown,
                    challenge,
                },
            },
        );
        let mut data = id.to_le_bytes().to_vec();
        data.extend_from_slice(&challenge);
        Outcome {
            bridged: None,
            reply: wrap(cc::OK, &data),
            refused: None,
        }
    }

    /// An IPMI 1.5 packet of a session: Activate Session after the challenge, then commands,
    /// every packet with its MD5 AuthCode checked.
    fn v15_session(
        &mut self,
        now: Millis,
        from: SocketAddr,
        header: V15Header,
        message: &[u8],
        handler: &mut impl Handler,
    ) -> Outcome {
        let id = header.session_id;
        let Some(session) = self.sessions.get(&id) else {
            return Outcome::refused(Refusal::UnknownSession(id));
        };
        if session.peer != from {
            return Outcome::refused(Refusal::WrongPeer(id));
        }
        let user = match &session.phase {
            Phase::V15Challenge { user, .. } => user.clone(),
            Phase::Active(a) if matches!(a.protection, Protection::Md5) => a.user.clone(),
            _ => return Outcome::refused(Refusal::NotSealed(id)),
        };
        let (AUTH_MD5, Some(code)) = (header.auth_type, header.auth_code) else {
            return Outcome::refused(Refusal::NotSealed(id));
        };
        let Some(account) = self.users.find(user.as_bytes()).cloned() else {
            self.sessions.remove(&id);
            return Outcome::refused(Refusal::UnknownUser(user));
        };
        let password = md5_key(&account.password);
        if !codes_equal(&code, &md5_code(&password, id, message, header.seq)) {
            if let Some(Phase::V15Challenge { .. }) = self.sessions.get(&id).map(|s| &s.phase) {
                self.sessions.remove(&id);
                return Outcome::refused(Refusal::WrongPassword(user));
            }
            return Outcome::refused(Refusal::BadAuthCode(id));
        }
        let req = match Request::parse(message) {
            Ok(r) => r,
            Err(e) => return Outcome::refused(Refusal::Malformed(e)),
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return Outcome::refused(Refusal::UnknownSession(id));
        };
        if let Phase::V15Challenge { challenge, .. } = &session.phase {
            let challenge = *challenge;
            return self.activate_v15(now, id, challenge, &account, password, &req);
        }
        let Phase::Active(active) = &mut session.phase else {
            return Outcome::refused(Refusal::UnexpectedStep(id));
        };
        if let Err(r) = accept_seq(active, id, header.seq) {
            let (reply, bridged) = retransmission(active, header.seq, &code).unzip();
            return Outcome {
                bridged: bridged.flatten(),
                reply,
                refused: Some(r),
            };
        }
        session.last_seen = now;
        self.stats.requests += 1;
        let (code, data, refused, close) = self.session_command(id, &req, handler, now);
        let Some(Session {
            phase: Phase::Active(active),
            ..
        }) = self.sessions.get_mut(&id)
        else {
            return Outcome::refused(Refusal::UnknownSession(id));
        };
        active.tx_seq = active.tx_seq.wrapping_add(1).max(1);
        let response = req.response(code, &data);
        let seq = active.tx_seq;
        let reply =
            wire::v15_packet_md5(seq, id, &response, md5_code(&password, id, &response, seq));
        let bridged = self.bridged.take().map(|message| {
            active.tx_seq = active.tx_seq.wrapping_add(1).max(1);
            let seq = active.tx_seq;
            wire::v15_packet_md5(seq, id, &message, md5_code(&password, id, &message, seq))
        });
        active.last = Some((
            header.seq,
            header.auth_code.map(|c| c.to_vec()).unwrap_or_default(),
            reply.clone(),
            bridged.clone(),
        ));
        if let Some(target) = close
            && self.sessions.remove(&target).is_some()
        {
            self.stats.sessions_closed += 1;
            info!(session = format_args!("{target:#010x}"), "session closed");
        }
        Outcome {
            bridged,
            reply: Some(reply),
            refused,
        }
    }

    /// Activate Session (App 0x3A) for an IPMI 1.5 challenge.
    fn activate_v15(
        &mut self,
        now: Millis,
        id: u32,
        challenge: [u8; 16],
        account: &super::users::User,
        password: [u8; 16],
        req: &Request<'_>,
    ) -> Outcome {
        // The answer carries the console's initial outbound sequence number (clients such
        // as ipmidirect drop it otherwise); 0 when the request is too short to say it.
        let seq = req
            .data
            .get(18..22)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let answer = |code: u8, data: &[u8]| {
            let response = req.response(code, data);
            Some(wire::v15_packet_md5(
                seq,
                id,
                &response,
                md5_code(&password, id, &response, seq),
            ))
        };
        if !(req.netfn == netfn::APP && req.cmd == 0x3A) {
            return Outcome::refused(Refusal::UnexpectedStep(id));
        }
        let d = req.data;
        if d.len() < 22 {
            self.sessions.remove(&id);
            return Outcome {
                bridged: None,
                reply: answer(cc::BAD_LENGTH, &[]),
                refused: Some(Refusal::Malformed(wire::WireError("activate session"))),
            };
        }
        if !codes_equal(&d[2..18], &challenge) {
            self.sessions.remove(&id);
            return Outcome {
                bridged: None,
                reply: answer(0x85, &[]),
                refused: Some(Refusal::BadChallenge(id)),
            };
        }
        let asked = d[1] & 0x0F;
        let Some(max) = Privilege::from_code(asked).filter(|&p| p <= account.privilege) else {
            self.sessions.remove(&id);
            return Outcome {
                bridged: None,
                reply: answer(0x86, &[]),
                refused: Some(Refusal::RoleNotAllowed {
                    user: account.name.clone(),
                    requested: asked,
                    max: account.privilege,
                }),
            };
        };
        let outbound = seq;
        let inbound = self.rng.random_range(2..0x7FFF_FFFF_u32);
        if let Some(s) = self.sessions.get_mut(&id) {
            s.last_seen = now;
            s.phase = Phase::Active(Box::new(Active {
                protection: Protection::Md5,
                user: account.name.clone(),
                max,
                privilege: max.min(Privilege::User),
                highest_rx: inbound - 1,
                seen: 1,
                tx_seq: outbound,
                last: None,
            }));
        }
        self.stats.sessions_opened += 1;
        let peer = self
            .sessions
            .get(&id)
            .map(|s| s.peer.to_string())
            .unwrap_or_default();
        info!(session = format_args!("{id:#010x}"), %peer, user = %account.name, max = %max, "IPMI 1.5 session open (MD5)");
        let mut data = vec![AUTH_MD5];
        data.extend_from_slice(&id.to_le_bytes());
        data.extend_from_slice(&inbound.to_le_bytes());
        data.push(max.code());
        Outcome {
            bridged: None,
            reply: answer(cc::OK, &data),
            refused: None,
        }
    }

    /// A command inside session `id`: (completion, data, refusal, session to close after
    /// answering).
    fn session_command(
        &mut self,
        id: u32,
        req: &Request<'_>,
        handler: &mut impl Handler,
        now: Millis,
    ) -> (u8, Vec<u8>, Option<Refusal>, Option<u32>) {
        let (privilege, max, user) = match self.sessions.get(&id).map(|s| &s.phase) {
            Some(Phase::Active(a)) => (a.privilege, a.max, a.user.clone()),
            _ => return (cc::UNSPECIFIED, vec![], None, None),
        };
        if let Some((code, data)) = self.session_free_command(req) {
            return (code, data, None, None);
        }
        if req.netfn == netfn::APP && req.cmd == 0x3B {
            // Set Session Privilege Level.
            let Some(&asked) = req.data.first() else {
                return (cc::BAD_LENGTH, vec![], None, None);
            };
            let asked = asked & 0x0F;
            if asked == 0 {
                return (cc::OK, vec![privilege.code()], None, None);
            }
            let Some(level) = Privilege::from_code(asked) else {
                return (cc::INVALID_DATA, vec![], None, None);
            };
            if level > max {
                return (
                    0x81,
                    vec![],
                    Some(Refusal::PrivilegeAboveMaximum {
                        requested: asked,
                        max,
                    }),
                    None,
                );
            }
            if let Some(Session {
                phase: Phase::Active(a),
                ..
            }) = self.sessions.get_mut(&id)
            {
                a.privilege = level;
            }
            return (cc::OK, vec![level.code()], None, None);
        }
        if req.netfn == netfn::APP && req.cmd == 0x3D {
            return match self.session_info(id, req.data) {
                Some(data) => (cc::OK, data, None, None),
                None => (cc::INVALID_DATA, vec![], None, None),
            };
        }
        if req.netfn == netfn::APP && req.cmd == 0x3C {
            // Close Session.
            let Some(target) = req.data.get(..4) else {
                return (cc::BAD_LENGTH, vec![], None, None);
            };
            let target = u32::from_le_bytes([target[0], target[1], target[2], target[3]]);
            let Some(other) = self.sessions.get(&target) else {
                return (0x87, vec![], None, None);
            };
            let other_user = match &other.phase {
                Phase::Active(a) => Some(a.user.as_str()),
                Phase::Rakp2Sent(h) => Some(h.user.as_str()),
                Phase::V15Challenge { user, .. } => Some(user.as_str()),
                Phase::Opened => None,
            };
            if target != id && other_user != Some(&user) && privilege < Privilege::Administrator {
                return (
                    cc::INSUFFICIENT_PRIVILEGE,
                    vec![],
                    Some(Refusal::CloseNotAllowed(target)),
                    None,
                );
            }
            return (cc::OK, vec![], None, Some(target));
        }
        if req.netfn == netfn::APP && req.cmd == SEND_MESSAGE {
            let (code, refused) = self.send_message(req, privilege, handler, now);
            return (code, vec![], refused, None);
        }
        match handler.privilege(req.netfn, req.cmd, req.data) {
            None => (cc::INVALID_COMMAND, vec![], None, None),
            Some(needed) if needed > privilege => (
                cc::INSUFFICIENT_PRIVILEGE,
                vec![],
                Some(Refusal::InsufficientPrivilege {
                    netfn: req.netfn,
                    cmd: req.cmd,
                    needed,
                    held: privilege,
                }),
                None,
            ),
            Some(_) => {
                let (code, data) = handler.handle(now, req);
                (code, data, None, None)
            }
        }
    }
}

impl Server {
    /// Send Message (App 0x34) on channel 0 (IPMB-0) with tracking: the embedded request goes
    /// to the controller at its responder address after the same privilege check as a
    /// direct command, and the controller's answer is kept in `self.bridged`, formatted for
    /// the console (its requester address, sequence number and LUN), to be sent after the
    /// Send Message response. Returns the Send Message completion code.
    fn send_message(
        &mut self,
        req: &Request<'_>,
        privilege: Privilege,
        handler: &mut impl Handler,
        now: Millis,
    ) -> (u8, Option<Refusal>) {
        let Some((&channel, message)) = req.data.split_first() else {
            return (cc::BAD_LENGTH, None);
        };
        // Only IPMB-0 with "track request": a LAN console can get the answer no other way.
        if channel & 0x0F != 0 || channel >> 6 != 1 {
            return (cc::INVALID_DATA, None);
        }
        let inner = match Request::parse(message) {
            Ok(r) => r,
            Err(e) => return (cc::INVALID_DATA, Some(Refusal::Malformed(e))),
        };
        let needed = handler
            .bridged_privilege(inner.rs_addr, inner.netfn, inner.cmd, inner.data)
            .unwrap_or(Privilege::User)
            .max(Privilege::User);
        if needed > privilege {
            return (
                cc::INSUFFICIENT_PRIVILEGE,
                Some(Refusal::InsufficientPrivilege {
                    netfn: inner.netfn,
                    cmd: inner.cmd,
                    needed,
                    held: privilege,
                }),
            );
        }
        match handler.bridge(now, &inner) {
            Err(code) => (code, None),
            Ok((code, data)) => {
                let to_console = Request {
                    rs_addr: inner.rs_addr,
                    netfn: inner.netfn,
                    rs_lun: inner.rs_lun,
                    rq_addr: req.rq_addr,
                    rq_seq: req.rq_seq,
                    rq_lun: req.rq_lun,
                    cmd: inner.cmd,
                    data: &[],
                };
                self.bridged = Some(to_console.response(code, &data));
                (cc::OK, None)
            }
        }
    }

    /// Get Session Info (App 0x3D) about the current session (index 0), the `n`-th active
    /// one (1…), by handle (0xFE, handle) or by session id (0xFF, id). Handles are 1-based
    /// positions among the active sessions; user ids 1-based positions in the users file.
    fn session_info(&self, current: u32, data: &[u8]) -> Option<Vec<u8>> {
        let active: Vec<(u32, &Session, &Active)> = self
            .sessions
            .iter()
            .filter_map(|(&id, s)| match &s.phase {
                Phase::Active(a) => Some((id, s, a.as_ref())),
                _ => None,
            })
            .collect();
        let index = match *data {
            [0, ..] => active.iter().position(|(id, ..)| *id == current)?,
            [0xFE, handle, ..] => usize::from(handle).checked_sub(1)?,
            [0xFF, a, b, c, d, ..] => {
                let want = u32::from_le_bytes([a, b, c, d]);
                active.iter().position(|(id, ..)| *id == want)?
            }
            [n, ..] if n <= 0x3F => usize::from(n).checked_sub(1)?,
            _ => return None,
        };
        let (_, session, a) = active.get(index)?;
        let user_id = self
            .users
            .user
            .iter()
            .position(|u| u.name == a.user)
            .map_or(0, |i| i + 1);
        let protocol = match a.protection {
            Protection::Sealed(_) => 0x10,
            Protection::Md5 => 0x00,
        };
        let mut out = vec![
            (index + 1) as u8,
            (self.config.max_sessions.min(63)) as u8,
            active.len().min(63) as u8,
            user_id.min(63) as u8,
            a.privilege.code(),
            protocol | 0x01,
        ];
        match session.peer {
            SocketAddr::V4(v4) => out.extend_from_slice(&v4.ip().octets()),
            SocketAddr::V6(_) => out.extend_from_slice(&[0; 4]),
        }
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&session.peer.port().to_le_bytes());
        Some(out)
    }
}

/// The answer to resend when a refused packet is an exact copy (same sequence number and
/// AuthCode, so same content) of the last request answered: the console lost our answer and
/// sent its request again. The command is not run again; the copy is still logged as replayed.
fn retransmission(a: &Active, seq: u32, code: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    match &a.last {
        Some((last_seq, last_code, reply, bridged)) if *last_seq == seq && last_code == code => {
            Some((reply.clone(), bridged.clone()))
        }
        _ => None,
    }
}

/// Accepts `seq` into the session's window or says why not. A number is accepted once, if
/// it is not 0 and lies within [`SEQ_WINDOW`] of the highest number seen (behind it only if
/// not seen yet).
fn accept_seq(a: &mut Active, id: u32, seq: u32) -> Result<(), Refusal> {
    let highest = a.highest_rx;
    if seq == 0 {
        return Err(Refusal::OutOfWindow {
            session: id,
            seq,
            highest,
        });
    }
    if seq > highest {
        if highest != 0 && seq - highest > SEQ_WINDOW {
            return Err(Refusal::OutOfWindow {
                session: id,
                seq,
                highest,
            });
        }
        let shift = seq - highest;
        a.seen = if shift >= 32 { 0 } else { a.seen << shift } | 1;
        a.highest_rx = seq;
        return Ok(());
    }
    let behind = highest - seq;
    if behind >= SEQ_WINDOW {
        return Err(Refusal::OutOfWindow {
            session: id,
            seq,
            highest,
        });
    }
    if a.seen & (1 << behind) != 0 {
        return Err(Refusal::Replayed { session: id, seq });
    }
    a.seen |= 1 << behind;
    Ok(())
}

/// Get Channel Authentication Capabilities (App 0x38): IPMI 2.0 extended data, MD5 as the
/// only IPMI 1.5 authentication type when some user may use it, named users only.
fn channel_auth_caps(data: &[u8], md5: bool) -> (u8, Vec<u8>) {
    let Some(&channel) = data.first() else {
        return (cc::BAD_LENGTH, vec![]);
    };
    if data.len() < 2 {
        return (cc::BAD_LENGTH, vec![]);
    }
    let ch = channel & 0x0F;
    if ch != 0x0E && ch != 1 {
        return (cc::INVALID_DATA, vec![]);
    }
    let extended = channel & 0x80 != 0;
    (
        cc::OK,
        vec![
            1,
            (if extended { 0x80 } else { 0x00 }) | (if md5 { 0x04 } else { 0x00 }),
            // Non-null user names only; per-message and user-level authentication on.
            0x04,
            // Extended capabilities: IPMI 2.0 connections, and 1.5 ones when offered.
            (if extended { 0x02 } else { 0x00 }) | (if extended && md5 { 0x01 } else { 0x00 }),
            0,
            0,
            0,
            0,
        ],
    )
}

/// Get Channel Cipher Suites (App 0x54): the records of suites 3 and 17, 16 bytes per call.
fn channel_cipher_suites(data: &[u8]) -> (u8, Vec<u8>) {
    if data.len() < 3 {
        return (cc::BAD_LENGTH, vec![]);
    }
    let ch = data[0] & 0x0F;
    if ch != 0x0E && ch != 1 {
        return (cc::INVALID_DATA, vec![]);
    }
    let mut records = Vec::new();
    for s in Suite::ALL {
        let (a, i, c) = s.algorithms();
        records.extend_from_slice(&[0xC0, s.id(), a, 0x40 | i, 0x80 | c]);
    }
    let index = usize::from(data[2] & 0x3F);
    let start = (index * 16).min(records.len());
    let end = (start + 16).min(records.len());
    let mut out = vec![1];
    out.extend_from_slice(&records[start..end]);
    (cc::OK, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> Active {
        Active {
            protection: Protection::Sealed(SessionKeys::from_sik(Suite::Sha1, &[1; 20])),
            user: "u".into(),
            max: Privilege::User,
            privilege: Privilege::User,
            highest_rx: 0,
            seen: 0,
            tx_seq: 0,
            last: None,
        }
    }

    #[test]
    fn the_window_accepts_each_number_once_and_nothing_far_away() {
        let mut a = active();
        assert!(matches!(
            accept_seq(&mut a, 1, 0),
            Err(Refusal::OutOfWindow { .. })
        ));
        for s in [1, 2, 3, 5] {
            accept_seq(&mut a, 1, s).unwrap();
        }
        assert_eq!(
            accept_seq(&mut a, 1, 3),
            Err(Refusal::Replayed { session: 1, seq: 3 })
        );
        // 4 arrived late: still accepted once.
        accept_seq(&mut a, 1, 4).unwrap();
        assert!(accept_seq(&mut a, 1, 4).is_err());
        assert!(matches!(
            accept_seq(&mut a, 1, 5 + SEQ_WINDOW + 1),
            Err(Refusal::OutOfWindow { .. })
        ));
        accept_seq(&mut a, 1, 5 + SEQ_WINDOW).unwrap();
        // Now 5 is SEQ_WINDOW behind: out of the window, not a replay.
        assert!(matches!(
            accept_seq(&mut a, 1, 5),
            Err(Refusal::OutOfWindow { .. })
        ));
    }

    #[test]
    fn cipher_suite_records_list_3_and_17() {
        let (code, data) = channel_cipher_suites(&[0x0E, 0x00, 0x80]);
        assert_eq!(code, 0);
        assert_eq!(data, [1, 0xC0, 3, 1, 0x41, 0x81, 0xC0, 17, 3, 0x44, 0x81]);
        let (_, more) = channel_cipher_suites(&[0x0E, 0x00, 0x81]);
        assert_eq!(more, [1]);
    }
}
