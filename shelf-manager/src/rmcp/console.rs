//! A minimal RMCP+ remote console: the client side of Open Session, RAKP 1–4 and sealed IPMI
//! requests, as packets in and out. The tests use it to drive the server without a socket
//! and to forge what a hostile console would send (a wrong password, a replayed packet);
//! `shelfd`'s tests use it over UDP. It checks RAKP 2 and RAKP 4 like a real console.

use super::crypto::{SessionKeys, Suite, codes_equal};
use super::wire::{self, Packet, PayloadType, Reader, WireError};

/// Why the console gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    /// The answer did not parse.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The server answered with an RMCP+ status code.
    #[error("status {0:#04x}")]
    Status(u8),
    /// RAKP 2's code did not match (the server does not know our password).
    #[error("RAKP 2 code mismatch")]
    Rakp2Mismatch,
    /// RAKP 4's check value did not match.
    #[error("RAKP 4 check value mismatch")]
    Rakp4Mismatch,
    /// The packet was not what the step expects.
    #[error("unexpected packet")]
    Unexpected,
}

/// A console session in progress or established.
#[derive(Debug, Clone)]
pub struct Console {
    /// The suite asked for.
    pub suite: Suite,
    /// Our session id.
    pub console_id: u32,
    /// The server's session id, once known.
    pub server_id: u32,
    user: Vec<u8>,
    password: Vec<u8>,
    role: u8,
    rm: [u8; 16],
    rc: [u8; 16],
    guid: [u8; 16],
    keys: Option<SessionKeys>,
    /// The next outbound session sequence number.
    pub seq: u32,
    rq_seq: u8,
    iv_counter: u8,
}

impl Console {
    /// A console that will log in as `user` at privilege `role` (code 1–4).
    pub fn new(suite: Suite, console_id: u32, user: &str, password: &str, role: u8) -> Console {
        Console {
            suite,
            console_id,
            server_id: 0,
            user: user.as_bytes().to_vec(),
            password: password.as_bytes().to_vec(),
            role,
            rm: [0x5A; 16],
            rc: [0; 16],
            guid: [0; 16],
            keys: None,
            seq: 1,
            rq_seq: 0,
            iv_counter: 0,
        }
    }

    /// The Open Session Request.
    pub fn open_session(&self) -> Vec<u8> {
        let (a, i, c) = self.suite.algorithms();
        let mut p = vec![0x01, self.role, 0, 0];
        p.extend_from_slice(&self.console_id.to_le_bytes());
        for (kind, alg) in [(0u8, a), (1, i), (2, c)] {
            p.extend_from_slice(&[kind, 0, 0, 8, alg, 0, 0, 0]);
        }
        wire::v20_plain(PayloadType::OpenSessionRequest, 0, &p)
    }

    /// Reads the Open Session Response and returns RAKP 1.
    ///
    /// # Errors
    /// A bad packet or a non-zero status.
    pub fn rakp1(&mut self, open_response: &[u8]) -> Result<Vec<u8>, ConsoleError> {
        let payload = payload_of(open_response, PayloadType::OpenSessionResponse)?;
        let mut r = Reader::new(&payload);
        r.u8("tag")?;
        let status = r.u8("status")?;
        if status != 0 {
            return Err(ConsoleError::Status(status));
        }
        r.bytes(2, "privilege")?;
        r.u32_le("console id")?;
        self.server_id = r.u32_le("server id")?;
        let mut p = vec![0x02, 0, 0, 0];
        p.extend_from_slice(&self.server_id.to_le_bytes());
        p.extend_from_slice(&self.rm);
        p.extend_from_slice(&[self.role | 0x10, 0, 0, self.user.len() as u8]);
        p.extend_from_slice(&self.user);
        Ok(wire::v20_plain(PayloadType::Rakp1, 0, &p))
    }

    /// Reads RAKP 2, checks its code, and returns RAKP 3 (with status 0x0F when the code was
    /// wrong, as real consoles do).
    ///
    /// # Errors
    /// A bad packet or a non-zero status; [`ConsoleError::Rakp2Mismatch`] comes with the
    /// RAKP 3 that reports it, through [`Console::rakp3_report`].
    pub fn rakp3(&mut self, rakp2: &[u8]) -> Result<Vec<u8>, ConsoleError> {
        let payload = payload_of(rakp2, PayloadType::Rakp2)?;
        let mut r = Reader::new(&payload);
        r.u8("tag")?;
        let status = r.u8("status")?;
        if status != 0 {
            return Err(ConsoleError::Status(status));
        }
        r.bytes(2, "reserved")?;
        r.u32_le("console id")?;
        self.rc = r.array("rc")?;
        self.guid = r.array("guid")?;
        let code = r.rest();
        let role = [self.role | 0x10, self.user.len() as u8];
        let expected = self.suite.hmac(
            &self.password,
            &[
                &self.console_id.to_le_bytes(),
                &self.server_id.to_le_bytes(),
                &self.rm,
                &self.rc,
                &self.guid,
                &role,
                &self.user,
            ],
        );
        if !codes_equal(code, &expected) {
            return Err(ConsoleError::Rakp2Mismatch);
        }
        let mut p = vec![0x03, 0, 0, 0];
        p.extend_from_slice(&self.server_id.to_le_bytes());
        p.extend_from_slice(&self.suite.hmac(
            &self.password,
            &[&self.rc, &self.console_id.to_le_bytes(), &role, &self.user],
        ));
        Ok(wire::v20_plain(PayloadType::Rakp3, 0, &p))
    }

    /// The RAKP 3 a console sends to report that RAKP 2 failed its check.
    pub fn rakp3_report(&self, status: u8) -> Vec<u8> {
        let mut p = vec![0x03, status, 0, 0];
        p.extend_from_slice(&self.server_id.to_le_bytes());
        wire::v20_plain(PayloadType::Rakp3, 0, &p)
    }

    /// Reads RAKP 4 and derives the session keys.
    ///
    /// # Errors
    /// A bad packet, a non-zero status or a wrong check value.
    pub fn finish(&mut self, rakp4: &[u8]) -> Result<(), ConsoleError> {
        let payload = payload_of(rakp4, PayloadType::Rakp4)?;
        let mut r = Reader::new(&payload);
        r.u8("tag")?;
        let status = r.u8("status")?;
        if status != 0 {
            return Err(ConsoleError::Status(status));
        }
        r.bytes(2, "reserved")?;
        r.u32_le("console id")?;
        let icv = r.rest();
        let role = [self.role | 0x10, self.user.len() as u8];
        let sik = self
            .suite
            .hmac(&self.password, &[&self.rm, &self.rc, &role, &self.user]);
        let expected = self
            .suite
            .icv(&sik, &[&self.rm, &self.server_id.to_le_bytes(), &self.guid]);
        if !codes_equal(icv, &expected) {
            return Err(ConsoleError::Rakp4Mismatch);
        }
        self.keys = Some(SessionKeys::from_sik(self.suite, &sik));
        Ok(())
    }

    /// A sealed request with the next sequence number.
    pub fn request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.request_with_seq(seq, netfn, cmd, data)
    }

    /// A sealed request with sequence number `seq` (for window tests).
    pub fn request_with_seq(&mut self, seq: u32, netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        self.iv_counter = self.iv_counter.wrapping_add(1);
        let msg = wire::request_message(netfn, cmd, self.rq_seq, data);
        let Some(keys) = &self.keys else {
            return wire::v20_plain(PayloadType::Ipmi, self.server_id, &msg);
        };
        let enc = keys.encrypt([self.iv_counter; 16], &msg);
        wire::v20_sealed(PayloadType::Ipmi, self.server_id, seq, &enc, |c| {
            keys.auth_code(c)
        })
    }

    /// Opens a sealed response: (completion code, data).
    ///
    /// # Errors
    /// A bad packet, AuthCode or encryption.
    pub fn response(&self, packet: &[u8]) -> Result<(u8, Vec<u8>), ConsoleError> {
        let plain = self.open(packet)?;
        let (_, _, cc, data) = wire::parse_response(&plain)?;
        Ok((cc, data.to_vec()))
    }

    /// Opens a sealed packet: the IPMI message inside, headers and checksums included
    /// (to check who answered, for example a bridged answer).
    ///
    /// # Errors
    /// A bad packet, AuthCode or encryption.
    pub fn open(&self, packet: &[u8]) -> Result<Vec<u8>, ConsoleError> {
        let Packet::V20(p) = wire::parse(packet)? else {
            return Err(ConsoleError::Unexpected);
        };
        let keys = self.keys.as_ref().ok_or(ConsoleError::Unexpected)?;
        if p.session_id != self.console_id {
            return Err(ConsoleError::Unexpected);
        }
        let (covered, code) = p
            .authenticated_parts(keys.suite.icv_len())
            .ok_or(ConsoleError::Unexpected)?;
        if !codes_equal(code, &keys.auth_code(covered)) {
            return Err(ConsoleError::Unexpected);
        }
        keys.decrypt(p.payload).ok_or(ConsoleError::Unexpected)
    }
}

/// A pre-session request in IPMI 1.5 format (Get Channel Auth Capabilities and the like).
pub fn v15_request(netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
    wire::v15_packet(0, 0, &wire::request_message(netfn, cmd, 1, data))
}

fn payload_of(packet: &[u8], want: PayloadType) -> Result<Vec<u8>, ConsoleError> {
    match wire::parse(packet)? {
        Packet::V20(p) if p.payload_type == want => Ok(p.payload.to_vec()),
        _ => Err(ConsoleError::Unexpected),
    }
}
