//! The RMCP+ session to a shelf manager, on ipmi-rs.
//!
//! ipmi-rs 0.6 opens the session (ASF ping, Get Channel Authentication Capabilities, Open
//! Session, RAKP 1-4 with cipher suite 3) and frames, signs and encrypts every message. On
//! top of it this module adds what ipmi-rs lacks:
//! - typed [`ConnectError`]s (no answer, refused, authentication, cipher suite, malformed);
//! - Set Session Privilege Level after activation (ipmi-rs leaves the session at USER, where
//!   PICMG commands answer 0xD4);
//! - raw requests for any netfn, PICMG 0x2C included (the typed `Ipmi::send_recv` rejects
//!   0x2C/0x2D), with retries on timeout and response matching by netfn and command;
//! - bridged requests to IPMB-0 addresses with Send Message (App 0x34, track request), the
//!   answer taken embedded or as the separate message that follows;
//! - a guard around every ipmi-rs call: ipmi-rs 0.6 panics on some inputs (a malformed RAKP
//!   message 4, a ciphertext whose length is not a multiple of 16, an algorithm it does not
//!   implement chosen by the peer, a failed `send` such as ECONNREFUSED after the peer
//!   died). The guard turns such a panic into [`RequestError::SessionBroken`] /
//!   [`ConnectError::Malformed`] and the session is opened anew; the process never dies of
//!   what a shelf manager sends.

use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use ipmi_rs::connection::{
    IpmiConnection, LogicalUnit, Message, Request, RequestTargetAddress, Response,
};
use ipmi_rs::rmcp::{
    ActivationError, Rmcp, RmcpIpmiError, RmcpIpmiReceiveError, RmcpIpmiSendError,
    V2_0ActivationError, V2_0WriteError,
};

use super::credentials::Credentials;
use super::msg::{self, EmbeddedResponse, netfn};

/// The cipher suites this client can open sessions with (ipmi-rs 0.6 implements only 3:
/// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128).
pub const SUPPORTED_CIPHER_SUITES: &[u8] = &[3];

/// IPMB address of the shelf manager (logical ShMC / BMC).
pub const SHMC_ADDR: u8 = 0x20;

/// Where and how to open the session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The shelf manager's RMCP+ address (UDP port 623 on real shelves).
    pub addr: SocketAddr,
    /// Cipher suite to use; see [`SUPPORTED_CIPHER_SUITES`].
    pub cipher_suite: u8,
    /// How long to wait for one answer.
    pub timeout: Duration,
    /// How often to resend a request that got no answer.
    pub retries: u32,
}

impl SessionConfig {
    /// Defaults: cipher suite 3, 500 ms per answer, 2 retries.
    pub fn new(addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "address resolves to nothing")
        })?;
        Ok(Self {
            addr,
            cipher_suite: 3,
            timeout: Duration::from_millis(500),
            retries: 2,
        })
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// This client does not implement the requested cipher suite.
    #[error(
        "cipher suite {requested} is not supported by this client (supported: {SUPPORTED_CIPHER_SUITES:?})"
    )]
    UnsupportedCipherSuite {
        /// What was asked for.
        requested: u8,
    },
    /// The shelf manager refused the cipher suite's algorithms.
    #[error("{addr} refused cipher suite {suite}: {detail}")]
    CipherSuiteRefused {
        /// Peer.
        addr: SocketAddr,
        /// Suite.
        suite: u8,
        /// RMCP+ status the peer returned.
        detail: String,
    },
    /// Nothing answered within the timeout.
    #[error("{addr} did not answer within {timeout:?} (RMCP presence ping or session setup)")]
    NoAnswer {
        /// Peer.
        addr: SocketAddr,
        /// Timeout per answer.
        timeout: Duration,
    },
    /// The host answered with ICMP port unreachable: nothing listens there.
    #[error("{addr} refused the connection: nothing listens on that UDP port")]
    Refused {
        /// Peer.
        addr: SocketAddr,
    },
    /// User name or password wrong (RAKP).
    #[error("authentication as user {user:?} at {addr} failed: {detail}")]
    Authentication {
        /// Peer.
        addr: SocketAddr,
        /// User name (never the password).
        user: String,
        /// What the RAKP exchange said.
        detail: String,
    },
    /// The peer's answer could not be decoded.
    #[error("malformed answer from {addr} while opening the session: {detail}")]
    Malformed {
        /// Peer.
        addr: SocketAddr,
        /// What was wrong.
        detail: String,
    },
    /// The session opened but the privilege level could not be raised to Administrator.
    #[error(
        "{addr}: session opened but Set Session Privilege Level (administrator) failed: {detail}"
    )]
    Privilege {
        /// Peer.
        addr: SocketAddr,
        /// Completion code or error.
        detail: String,
    },
    /// Local socket error.
    #[error("socket towards {addr}: {source}")]
    Io {
        /// Peer.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why one request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No answer after all retries.
    #[error(
        "no answer to netfn 0x{netfn:02x} cmd 0x{cmd:02x} for 0x{target:02x} after {tries} tries"
    )]
    Timeout {
        /// IPMB target.
        target: u8,
        /// Netfn.
        netfn: u8,
        /// Command.
        cmd: u8,
        /// Attempts made.
        tries: u32,
    },
    /// The target IPMC did not take the bridged request (Send Message completion code).
    #[error("IPMC 0x{target:02x} does not answer (Send Message cc 0x{cc:02x})")]
    TargetAbsent {
        /// IPMB target.
        target: u8,
        /// Completion code.
        cc: u8,
    },
    /// The shelf manager took the bridged request, but the IPMC never answered it.
    #[error(
        "IPMC 0x{target:02x} took no answer back for netfn 0x{netfn:02x} cmd 0x{cmd:02x} after {tries} tries"
    )]
    TargetNoAnswer {
        /// IPMB target.
        target: u8,
        /// Netfn.
        netfn: u8,
        /// Command.
        cmd: u8,
        /// Attempts made.
        tries: u32,
    },
    /// The command failed with a completion code.
    #[error("netfn 0x{netfn:02x} cmd 0x{cmd:02x} at 0x{target:02x}: completion code 0x{cc:02x}")]
    Completion {
        /// IPMB target.
        target: u8,
        /// Netfn.
        netfn: u8,
        /// Command.
        cmd: u8,
        /// Completion code.
        cc: u8,
    },
    /// The answer could not be decoded.
    #[error(transparent)]
    Malformed(#[from] msg::MsgError),
    /// The session is unusable (socket error, peer gone, ipmi-rs failure): reconnect.
    #[error("session broken: {0}")]
    SessionBroken(String),
}

impl RequestError {
    /// The session must be opened anew.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::SessionBroken(_))
    }
}

/// Runs an ipmi-rs call; a panic inside it becomes `Err(message)`.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let s = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("ipmi-rs panicked: {s}")
    })
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// An open RMCP+ session to a shelf manager.
pub struct Session {
    rmcp: Rmcp,
    cfg: SessionConfig,
    seq: u8,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("addr", &self.cfg.addr)
            .finish_non_exhaustive()
    }
}

enum Recv {
    Message(Response),
    Timeout,
    Dropped,
}

/// A raw answer: completion code and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Completion code.
    pub cc: u8,
    /// Data after the completion code.
    pub data: Vec<u8>,
}

impl Session {
    /// Opens a session with `creds`, then raises it to Administrator.
    ///
    /// # Errors
    /// A [`ConnectError`] saying why: cipher suite, no answer, refused, authentication,
    /// malformed answers, privilege.
    pub fn connect(cfg: &SessionConfig, creds: &Credentials) -> Result<Self, ConnectError> {
        let addr = cfg.addr;
        if !SUPPORTED_CIPHER_SUITES.contains(&cfg.cipher_suite) {
            return Err(ConnectError::UnsupportedCipherSuite {
                requested: cfg.cipher_suite,
            });
        }
        let mut rmcp =
            Rmcp::new(addr, cfg.timeout).map_err(|source| ConnectError::Io { addr, source })?;
        let user = creds.user().to_string();
        let res = guarded(|| rmcp.activate(true, Some(creds.user()), Some(creds.password())));
        match res {
            Err(p) => {
                return Err(ConnectError::Malformed { addr, detail: p });
            }
            Ok(Err(e)) => return Err(classify_activation(addr, cfg, &user, e)),
            Ok(Ok(())) => {}
        }
        let mut s = Self {
            rmcp,
            cfg: cfg.clone(),
            seq: 1,
        };
        // Set Session Privilege Level: Administrator
        match s.request(netfn::APP, 0x3B, &[0x04]) {
            Ok(a) if a.cc == 0 => Ok(s),
            Ok(a) => Err(ConnectError::Privilege {
                addr,
                detail: format!("completion code 0x{:02x}", a.cc),
            }),
            Err(e) => Err(ConnectError::Privilege {
                addr,
                detail: e.to_string(),
            }),
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.cfg.addr
    }

    fn send(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<(), RequestError> {
        let mut req = Request::new(
            Message::new_raw(netfn, cmd, data.to_vec()),
            RequestTargetAddress::Bmc(LogicalUnit::Zero),
        );
        match guarded(|| self.rmcp.send(&mut req)) {
            Err(p) => Err(RequestError::SessionBroken(p)),
            Ok(Err(e)) => Err(RequestError::SessionBroken(format!("send: {e:?}"))),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Receives one message.
    fn recv(&mut self) -> Result<Recv, RequestError> {
        match guarded(|| self.rmcp.recv()) {
            Err(p) => Err(RequestError::SessionBroken(p)),
            Ok(Ok(r)) => Ok(Recv::Message(r)),
            Ok(Err(RmcpIpmiError::Receive(RmcpIpmiReceiveError::Io(e)))) if is_timeout(&e) => {
                Ok(Recv::Timeout)
            }
            Ok(Err(RmcpIpmiError::Receive(RmcpIpmiReceiveError::Io(e)))) => {
                Err(RequestError::SessionBroken(format!("receive: {e}")))
            }
            // A datagram that does not decode (bad integrity, wrong session, not IPMI,
            // empty): dropped, as a lost datagram would be.
            Ok(Err(e)) => {
                tracing::debug!(error = ?e, "dropped an undecodable datagram");
                Ok(Recv::Dropped)
            }
        }
    }

    /// Waits for the response `netfn|1`/`cmd`, skipping others; `None` on timeout.
    fn wait_for(&mut self, netfn: u8, cmd: u8) -> Result<Option<Answer>, RequestError> {
        // a bounded number of unrelated datagrams (stale answers of earlier retries)
        for _ in 0..8 {
            let r = match self.recv()? {
                Recv::Timeout => return Ok(None),
                Recv::Dropped => continue,
                Recv::Message(r) => r,
            };
            if r.netfn_raw() == (netfn | 1) && r.cmd() == cmd {
                return Ok(Some(Answer {
                    cc: r.cc(),
                    data: r.data().to_vec(),
                }));
            }
            tracing::trace!(
                netfn = r.netfn_raw(),
                cmd = r.cmd(),
                "skipped an unrelated message"
            );
        }
        Ok(None)
    }

    /// One request to the shelf manager itself, with retries.
    ///
    /// # Errors
    /// [`RequestError::Timeout`] after all retries, [`RequestError::SessionBroken`].
    pub fn request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<Answer, RequestError> {
        let tries = self.cfg.retries + 1;
        for _ in 0..tries {
            self.send(netfn, cmd, data)?;
            if let Some(a) = self.wait_for(netfn, cmd)? {
                return Ok(a);
            }
        }
        Err(RequestError::Timeout {
            target: SHMC_ADDR,
            netfn,
            cmd,
            tries,
        })
    }

    /// A request to IPMB address `target`: direct for the shelf manager, bridged with Send
    /// Message otherwise.
    ///
    /// # Errors
    /// As [`Session::request`], plus [`RequestError::TargetAbsent`] when the IPMC does not
    /// take the message.
    pub fn request_to(
        &mut self,
        target: u8,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<Answer, RequestError> {
        if target == SHMC_ADDR {
            return self.request(netfn, cmd, data);
        }
        let tries = self.cfg.retries + 1;
        let mut acked = false;
        for _ in 0..tries {
            let seq = self.seq;
            self.seq = (self.seq + 1) & 0x3F;
            let body = msg::send_message_body(target, netfn, cmd, data, SHMC_ADDR, seq);
            self.send(netfn::APP, 0x34, &body)?;
            let Some(first) = self.wait_for(netfn::APP, 0x34)? else {
                continue;
            };
            if msg::send_message_target_absent(first.cc) {
                return Err(RequestError::TargetAbsent {
                    target,
                    cc: first.cc,
                });
            }
            if first.cc != 0 {
                return Err(RequestError::Completion {
                    target,
                    netfn: netfn::APP,
                    cmd: 0x34,
                    cc: first.cc,
                });
            }
            acked = true;
            if first.data.len() >= 7 {
                let e = EmbeddedResponse::parse(&first.data)?;
                if e.netfn == netfn | 1 && e.cmd == cmd {
                    return Ok(Answer {
                        cc: e.cc,
                        data: e.data,
                    });
                }
            }
            if let Some(a) = self.wait_for(netfn, cmd)? {
                return Ok(a);
            }
        }
        // the shelf manager answered: the session is fine, the IPMC is not
        if acked {
            return Err(RequestError::TargetNoAnswer {
                target,
                netfn,
                cmd,
                tries,
            });
        }
        Err(RequestError::Timeout {
            target,
            netfn,
            cmd,
            tries,
        })
    }

    /// Like [`Session::request_to`], but a non-zero completion code is an error.
    ///
    /// # Errors
    /// As [`Session::request_to`], plus [`RequestError::Completion`].
    pub fn ok_to(
        &mut self,
        target: u8,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<Vec<u8>, RequestError> {
        let a = self.request_to(target, netfn, cmd, data)?;
        if a.cc != 0 {
            return Err(RequestError::Completion {
                target,
                netfn,
                cmd,
                cc: a.cc,
            });
        }
        Ok(a.data)
    }
}

fn classify_activation(
    addr: SocketAddr,
    cfg: &SessionConfig,
    user: &str,
    e: ActivationError,
) -> ConnectError {
    use V2_0ActivationError as V2;
    let io = |e: &std::io::Error| {
        if is_timeout(e) {
            ConnectError::NoAnswer {
                addr,
                timeout: cfg.timeout,
            }
        } else if e.kind() == std::io::ErrorKind::ConnectionRefused {
            ConnectError::Refused { addr }
        } else {
            ConnectError::Malformed {
                addr,
                detail: format!("socket: {e}"),
            }
        }
    };
    let recv = |e: &RmcpIpmiReceiveError, step: &str| match e {
        RmcpIpmiReceiveError::Io(e) => io(e),
        other => ConnectError::Malformed {
            addr,
            detail: format!("{step}: {other:?}"),
        },
    };
    let auth = |detail: String| ConnectError::Authentication {
        addr,
        user: user.to_string(),
        detail,
    };
    match e {
        ActivationError::BindSocket(e) => ConnectError::Io { addr, source: e },
        ActivationError::PingSend(e) | ActivationError::PongReceive(e) => io(&e),
        ActivationError::GetChannelAuthenticationCapabilities(ipmi_rs::IpmiError::Connection(
            RmcpIpmiError::Receive(r),
        )) => recv(&r, "Get Channel Authentication Capabilities"),
        ActivationError::GetChannelAuthenticationCapabilities(ipmi_rs::IpmiError::Connection(
            RmcpIpmiError::Send(RmcpIpmiSendError::V1_5(ipmi_rs::rmcp::V1_5WriteError::Io(e))),
        )) => io(&e),
        ActivationError::V2_0(v2) => match v2 {
            V2::Io(e)
            | V2::OpenSessionRequestSend(V2_0WriteError::Io(e))
            | V2::SendRakpMessage1(V2_0WriteError::Io(e))
            | V2::RakpMessage3Send(V2_0WriteError::Io(e)) => io(&e),
            V2::OpenSessionResponseReceive(r) => recv(&r, "Open Session response"),
            V2::RakpMessage2Receive(r) => recv(&r, "RAKP message 2"),
            V2::RakpMessage4Receive(r) => recv(&r, "RAKP message 4"),
            V2::OpenSessionResponseParse(
                ipmi_rs::rmcp::ParseSessionResponseError::HaveErrorCode(code),
            ) => {
                let raw = match code {
                    Ok(c) => format!("{c:?}"),
                    Err(b) => format!("status 0x{b:02x}"),
                };
                // status codes 0x04..0x07, 0x10, 0x11: algorithms / cipher suite refused
                // status codes 0x04..0x07, 0x10, 0x11: the algorithms / cipher suite were
                // refused (ipmi-rs does not export the status enum; its variant names say it)
                let refused = code.as_ref().is_ok_and(|c| {
                    let n = format!("{c:?}");
                    n.contains("Algorithm") || n.starts_with("NoMatching")
                }) || matches!(code, Err(0x04..=0x07 | 0x10 | 0x11));
                if refused {
                    ConnectError::CipherSuiteRefused {
                        addr,
                        suite: cfg.cipher_suite,
                        detail: raw,
                    }
                } else {
                    ConnectError::Malformed {
                        addr,
                        detail: format!("Open Session refused: {raw}"),
                    }
                }
            }
            V2::RakpMessage2Parse(p) => auth(format!("RAKP message 2: {p:?}")),
            V2::ServerAuthenticationFailed => {
                auth("the shelf manager's RAKP message 2 does not match this password".into())
            }
            V2::RakpMessage4InvalidIntegrityCheckValue => {
                auth("RAKP message 4 integrity check value does not match".into())
            }
            V2::RakpMessage4Parse(p) => auth(format!("RAKP message 4: {p:?}")),
            other => ConnectError::Malformed {
                addr,
                detail: format!("{other:?}"),
            },
        },
        other => ConnectError::Malformed {
            addr,
            detail: format!("{other:?}"),
        },
    }
}
