//! The bytes on the LAN: the RMCP header, ASF presence ping/pong, the IPMI 1.5 and IPMI 2.0
//! (RMCP+) session headers, and IPMI messages (facts: `../shared/research/atca-notes.md` §6).
//!
//! Every parser takes remote input: it checks lengths before reading, answers a malformed
//! packet with [`WireError`] and never panics (the fuzz targets in `shelf-manager/fuzz` hold
//! it to that). Multi-byte session fields are little-endian; the ASF IANA number is
//! big-endian.

use std::fmt;

/// A malformed packet: which field was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed packet: {0}")]
pub struct WireError(pub &'static str);

/// RMCP version 1.0.
pub const RMCP_VERSION: u8 = 0x06;
/// RMCP sequence number meaning "no RMCP ACK".
pub const RMCP_NO_ACK: u8 = 0xFF;
/// RMCP class: ASF.
pub const CLASS_ASF: u8 = 0x06;
/// RMCP class: IPMI.
pub const CLASS_IPMI: u8 = 0x07;
/// The ASF IANA enterprise number (4542).
pub const ASF_IANA: u32 = 4542;
/// Session auth type of an RMCP+ (IPMI 2.0) packet.
pub const AUTH_RMCP_PLUS: u8 = 0x06;

/// RMCP+ payload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    /// An IPMI message (0x00).
    Ipmi,
    /// RMCP+ Open Session Request (0x10).
    OpenSessionRequest,
    /// RMCP+ Open Session Response (0x11).
    OpenSessionResponse,
    /// RAKP Message 1 (0x12).
    Rakp1,
    /// RAKP Message 2 (0x13).
    Rakp2,
    /// RAKP Message 3 (0x14).
    Rakp3,
    /// RAKP Message 4 (0x15).
    Rakp4,
    /// Anything else (SOL, OEM, …): refused.
    Unknown(u8),
}

impl PayloadType {
    /// From the low six bits of the payload type byte.
    pub fn from_code(code: u8) -> PayloadType {
        match code & 0x3F {
            0x00 => PayloadType::Ipmi,
            0x10 => PayloadType::OpenSessionRequest,
            0x11 => PayloadType::OpenSessionResponse,
            0x12 => PayloadType::Rakp1,
            0x13 => PayloadType::Rakp2,
            0x14 => PayloadType::Rakp3,
            0x15 => PayloadType::Rakp4,
            other => PayloadType::Unknown(other),
        }
    }

    /// The code.
    pub fn code(self) -> u8 {
        match self {
            PayloadType::Ipmi => 0x00,
            PayloadType::OpenSessionRequest => 0x10,
            PayloadType::OpenSessionResponse => 0x11,
            PayloadType::Rakp1 => 0x12,
            PayloadType::Rakp2 => 0x13,
            PayloadType::Rakp3 => 0x14,
            PayloadType::Rakp4 => 0x15,
            PayloadType::Unknown(c) => c,
        }
    }
}

/// A bounds-checked reader over remote bytes; every read names the field it wanted.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the first byte.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, at: 0 }
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// When fewer than `n` bytes are left.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError(field))?;
        let out = self.data.get(self.at..end).ok_or(WireError(field))?;
        self.at = end;
        Ok(out)
    }

    /// One byte.
    ///
    /// # Errors
    /// At the end of the data.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.bytes(1, field)?[0])
    }

    /// A little-endian u16.
    ///
    /// # Errors
    /// When fewer than 2 bytes are left.
    pub fn u16_le(&mut self, field: &'static str) -> Result<u16, WireError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian u32.
    ///
    /// # Errors
    /// When fewer than 4 bytes are left.
    pub fn u32_le(&mut self, field: &'static str) -> Result<u32, WireError> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A fixed-size array.
    ///
    /// # Errors
    /// When fewer than `N` bytes are left.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.data.get(self.at..).unwrap_or(&[]);
        self.at = self.data.len();
        out
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.at
    }
}

/// A datagram as received, split by its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// ASF Presence Ping (class 6, type 0x80).
    AsfPing {
        /// The message tag to echo.
        tag: u8,
    },
    /// An IPMI 1.5 session packet.
    V15 {
        /// Auth type (0 none, 1 MD2, 2 MD5, 4 password, 5 OEM).
        auth_type: u8,
        /// Session sequence number.
        seq: u32,
        /// Session id.
        session_id: u32,
        /// The 16-byte auth code, when the auth type is not none.
        auth_code: Option<[u8; 16]>,
        /// The IPMI message.
        message: &'a [u8],
    },
    /// An IPMI 2.0 (RMCP+) session packet.
    V20(V20Packet<'a>),
}

/// An RMCP+ packet, its trailer not yet checked (that needs the session's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V20Packet<'a> {
    /// Payload encrypted (bit 7 of the payload type byte).
    pub encrypted: bool,
    /// Payload authenticated (bit 6).
    pub authenticated: bool,
    /// The payload type.
    pub payload_type: PayloadType,
    /// The session id (the server's, for a packet to the server).
    pub session_id: u32,
    /// The session sequence number.
    pub seq: u32,
    /// The payload as sent (still encrypted when `encrypted`).
    pub payload: &'a [u8],
    /// What follows the payload: integrity pad, pad length, next header, AuthCode.
    pub trailer: &'a [u8],
    /// The bytes from the auth type to the end of the datagram (the AuthCode covers all of
    /// this but its last `icv_len` bytes).
    pub session_part: &'a [u8],
}

impl V20Packet<'_> {
    /// Splits the trailer for an AuthCode of `icv_len` bytes: returns (covered bytes, code)
    /// when the pad, pad length and next header are well formed.
    pub fn authenticated_parts(&self, icv_len: usize) -> Option<(&[u8], &[u8])> {
        let t = self.trailer;
        if t.len() < icv_len + 2 {
            return None;
        }
        let (head, code) = t.split_at(t.len() - icv_len);
        let (&next_header, head) = head.split_last()?;
        let (&pad_len, pad) = head.split_last()?;
        if next_header != CLASS_IPMI || usize::from(pad_len) != pad.len() || pad.len() > 3 {
            return None;
        }
        if pad.iter().any(|&b| b != 0xFF) {
            return None;
        }
        let covered = &self.session_part[..self.session_part.len() - icv_len];
        if !covered.len().is_multiple_of(4) {
            return None;
        }
        Some((covered, code))
    }
}

/// Splits a datagram.
///
/// # Errors
/// A short or inconsistent header, an RMCP version other than 1.0, a class other than ASF or
/// IPMI, an ASF message other than Presence Ping, a payload length past the end.
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, WireError> {
    let mut r = Reader::new(datagram);
    if r.u8("rmcp version")? != RMCP_VERSION {
        return Err(WireError("rmcp version"));
    }
    r.u8("rmcp reserved")?;
    r.u8("rmcp sequence")?;
    let class = r.u8("rmcp class")?;
    match class & 0x1F {
        CLASS_ASF => {
            let iana = r.array::<4>("asf iana")?;
            if u32::from_be_bytes(iana) != ASF_IANA {
                return Err(WireError("asf iana"));
            }
            if r.u8("asf message type")? != 0x80 {
                return Err(WireError("asf message type"));
            }
            let tag = r.u8("asf tag")?;
            Ok(Packet::AsfPing { tag })
        }
        CLASS_IPMI => {
            let session_start = r.position();
            let auth_type = r.u8("auth type")?;
            if auth_type == AUTH_RMCP_PLUS {
                let type_byte = r.u8("payload type")?;
                let payload_type = PayloadType::from_code(type_byte);
                if type_byte & 0x3F == 0x02 {
                    // OEM explicit: IANA and payload id follow; we take no OEM payloads.
                    return Err(WireError("oem payload type"));
                }
                let session_id = r.u32_le("session id")?;
                let seq = r.u32_le("session sequence")?;
                let len = r.u16_le("payload length")?;
                let payload = r.bytes(usize::from(len), "payload")?;
                let trailer = r.rest();
                Ok(Packet::V20(V20Packet {
                    encrypted: type_byte & 0x80 != 0,
                    authenticated: type_byte & 0x40 != 0,
                    payload_type,
                    session_id,
                    seq,
                    payload,
                    trailer,
                    session_part: &datagram[session_start..],
                }))
            } else {
                let seq = r.u32_le("session sequence")?;
                let session_id = r.u32_le("session id")?;
                let auth_code = if auth_type == 0 {
                    None
                } else {
                    Some(r.array::<16>("auth code")?)
                };
                let len = r.u8("message length")?;
                let message = r.bytes(usize::from(len), "message")?;
                Ok(Packet::V15 {
                    auth_type,
                    seq,
                    session_id,
                    auth_code,
                    message,
                })
            }
        }
        _ => Err(WireError("rmcp class")),
    }
}

/// The RMCP header of everything the server sends.
pub fn rmcp_header(class: u8) -> [u8; 4] {
    [RMCP_VERSION, 0, RMCP_NO_ACK, class]
}

/// The ASF Presence Pong answering a ping with `tag`: IPMI supported, no ASF interactions.
pub fn asf_pong(tag: u8) -> Vec<u8> {
    let mut out = rmcp_header(CLASS_ASF).to_vec();
    out.extend_from_slice(&ASF_IANA.to_be_bytes());
    out.extend_from_slice(&[0x40, tag, 0x00, 0x10]);
    out.extend_from_slice(&ASF_IANA.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // OEM defined
    out.push(0x81); // supported entities: IPMI, ASF 1.0
    out.push(0x00); // supported interactions
    out.extend_from_slice(&[0; 6]);
    out
}

/// An IPMI 1.5 packet without authentication (what pre-session replies use).
pub fn v15_packet(seq: u32, session_id: u32, message: &[u8]) -> Vec<u8> {
    let mut out = rmcp_header(CLASS_IPMI).to_vec();
    out.push(0);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.push(u8::try_from(message.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&message[..message.len().min(255)]);
    out
}

/// An IPMI 1.5 packet with an MD5 AuthCode.
pub fn v15_packet_md5(seq: u32, session_id: u32, message: &[u8], code: [u8; 16]) -> Vec<u8> {
    let mut out = rmcp_header(CLASS_IPMI).to_vec();
    out.push(2);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&code);
    out.push(u8::try_from(message.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&message[..message.len().min(255)]);
    out
}

/// An RMCP+ packet with neither integrity nor confidentiality (session setup).
pub fn v20_plain(payload_type: PayloadType, session_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = rmcp_header(CLASS_IPMI).to_vec();
    out.push(AUTH_RMCP_PLUS);
    out.push(payload_type.code());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// An RMCP+ packet whose (already encrypted) payload is authenticated: adds the integrity
/// pad, pad length, next header and the AuthCode made by `auth_code` over the covered part.
pub fn v20_sealed(
    payload_type: PayloadType,
    session_id: u32,
    seq: u32,
    encrypted_payload: &[u8],
    auth_code: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let mut out = rmcp_header(CLASS_IPMI).to_vec();
    out.push(AUTH_RMCP_PLUS);
    out.push(0xC0 | payload_type.code());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(encrypted_payload.len() as u16).to_le_bytes());
    out.extend_from_slice(encrypted_payload);
    // Everything from the auth type through next header is a multiple of 4.
    let covered_so_far = out.len() - 4 + 2;
    let pad = (4 - covered_so_far % 4) % 4;
    out.extend(std::iter::repeat_n(0xFF, pad));
    out.push(pad as u8);
    out.push(CLASS_IPMI);
    let code = auth_code(&out[4..]);
    out.extend_from_slice(&code);
    out
}

/// Network functions (request codes; the response is the code + 1).
pub mod netfn {
    /// Chassis.
    pub const CHASSIS: u8 = 0x00;
    /// Sensor/Event.
    pub const SENSOR: u8 = 0x04;
    /// Application.
    pub const APP: u8 = 0x06;
    /// Storage (FRU, SDR, SEL).
    pub const STORAGE: u8 = 0x0A;
    /// Transport.
    pub const TRANSPORT: u8 = 0x0C;
    /// Group extension (PICMG when the first data byte is 0x00).
    pub const GROUP: u8 = 0x2C;
}

/// IPMI completion codes the server answers with.
pub mod cc {
    /// Success.
    pub const OK: u8 = 0x00;
    /// Node busy.
    pub const BUSY: u8 = 0xC0;
    /// Invalid command.
    pub const INVALID_COMMAND: u8 = 0xC1;
    /// Request data length invalid.
    pub const BAD_LENGTH: u8 = 0xC7;
    /// Parameter out of range.
    pub const OUT_OF_RANGE: u8 = 0xC9;
    /// Requested sensor, data or record not present.
    pub const NOT_PRESENT: u8 = 0xCB;
    /// Invalid data field in request.
    pub const INVALID_DATA: u8 = 0xCC;
    /// Command illegal for the sensor or record type.
    pub const ILLEGAL: u8 = 0xCD;
    /// Cannot respond now (for example the power budget refuses).
    pub const CANNOT_RESPOND: u8 = 0xCE;
    /// Reservation cancelled or invalid.
    pub const BAD_RESERVATION: u8 = 0xC5;
    /// Command not supported in present state.
    pub const WRONG_STATE: u8 = 0xD5;
    /// Insufficient privilege level.
    pub const INSUFFICIENT_PRIVILEGE: u8 = 0xD4;
    /// Unspecified error.
    pub const UNSPECIFIED: u8 = 0xFF;
}

/// An IPMI request message (LAN format: responder and requester addresses, checksums).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// Responder slave address (0x20, the shelf manager's BMC address).
    pub rs_addr: u8,
    /// Network function (even: a request).
    pub netfn: u8,
    /// Responder LUN.
    pub rs_lun: u8,
    /// Requester address (0x81 for a remote console software id).
    pub rq_addr: u8,
    /// Requester sequence number (6 bits).
    pub rq_seq: u8,
    /// Requester LUN.
    pub rq_lun: u8,
    /// Command.
    pub cmd: u8,
    /// Request data.
    pub data: &'a [u8],
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, &b| acc.wrapping_add(b))
        .wrapping_neg()
}

impl<'a> Request<'a> {
    /// Parses a request message and checks both checksums.
    ///
    /// # Errors
    /// Shorter than 7 bytes, a bad checksum, or an odd (response) network function.
    pub fn parse(msg: &'a [u8]) -> Result<Request<'a>, WireError> {
        if msg.len() < 7 {
            return Err(WireError("ipmi message length"));
        }
        if checksum(&msg[..2]) != msg[2] {
            return Err(WireError("ipmi header checksum"));
        }
        let (body, last) = msg[3..].split_at(msg.len() - 4);
        if checksum(body) != last[0] {
            return Err(WireError("ipmi data checksum"));
        }
        let netfn = msg[1] >> 2;
        if netfn & 1 != 0 {
            return Err(WireError("ipmi netfn is a response"));
        }
        Ok(Request {
            rs_addr: msg[0],
            netfn,
            rs_lun: msg[1] & 3,
            rq_addr: msg[3],
            rq_seq: msg[4] >> 2,
            rq_lun: msg[4] & 3,
            cmd: msg[5],
            data: &msg[6..msg.len() - 1],
        })
    }

    /// Builds the response message to this request: completion code then `data`.
    pub fn response(&self, completion: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + data.len());
        out.push(self.rq_addr);
        out.push(((self.netfn | 1) << 2) | self.rq_lun);
        out.push(checksum(&out[..2]));
        out.push(self.rs_addr);
        out.push((self.rq_seq << 2) | self.rs_lun);
        out.push(self.cmd);
        out.push(completion);
        out.extend_from_slice(data);
        let sum = checksum(&out[3..]);
        out.push(sum);
        out
    }
}

/// Builds a request message (for clients and tests).
pub fn request_message(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x20, netfn << 2];
    out.push(checksum(&out));
    out.extend_from_slice(&[0x81, rq_seq << 2, cmd]);
    out.extend_from_slice(data);
    let sum = checksum(&out[3..]);
    out.push(sum);
    out
}

/// A parsed response message (for clients and tests): (netfn, cmd, completion, data).
///
/// # Errors
/// Shorter than 8 bytes or a bad checksum.
pub fn parse_response(msg: &[u8]) -> Result<(u8, u8, u8, &[u8]), WireError> {
    if msg.len() < 8 {
        return Err(WireError("ipmi response length"));
    }
    if checksum(&msg[..2]) != msg[2] || checksum(&msg[3..msg.len() - 1]) != msg[msg.len() - 1] {
        return Err(WireError("ipmi response checksum"));
    }
    Ok((msg[1] >> 2, msg[5], msg[6], &msg[7..msg.len() - 1]))
}

impl fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "netfn {:#04x} cmd {:#04x} ({} data bytes)",
            self.netfn,
            self.cmd,
            self.data.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Get Channel Authentication Capabilities as ipmitool sends it before a session.
    const AUTH_CAPS: [u8; 23] = [
        0x06, 0x00, 0xff, 0x07, // RMCP
        0x00, 0, 0, 0, 0, 0, 0, 0, 0,    // auth none, seq 0, session 0
        0x09, // length
        0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5,
    ];

    #[test]
    fn parses_a_pre_session_request() {
        let Packet::V15 {
            auth_type,
            seq,
            session_id,
            auth_code,
            message,
        } = parse(&AUTH_CAPS).unwrap()
        else {
            panic!("not a 1.5 packet");
        };
        assert_eq!((auth_type, seq, session_id, auth_code), (0, 0, 0, None));
        let req = Request::parse(message).unwrap();
        assert_eq!(
            (req.netfn, req.cmd, req.data),
            (0x06, 0x38, &[0x8e, 0x04][..])
        );
        assert_eq!(req.rq_addr, 0x81);
        let resp = req.response(0, &[1, 2]);
        assert_eq!(parse_response(&resp).unwrap(), (0x07, 0x38, 0, &[1, 2][..]));
    }

    #[test]
    fn request_builder_and_parser_agree() {
        let msg = request_message(0x2C, 0x00, 5, &[0x00]);
        let req = Request::parse(&msg).unwrap();
        assert_eq!(
            (req.netfn, req.cmd, req.rq_seq, req.data),
            (0x2C, 0, 5, &[0][..])
        );
    }

    #[test]
    fn bad_checksums_and_short_packets_are_errors() {
        let mut bad = AUTH_CAPS;
        bad[22] ^= 1;
        let Packet::V15 { message, .. } = parse(&bad).unwrap() else {
            panic!()
        };
        assert!(Request::parse(message).is_err());
        for n in 0..AUTH_CAPS.len() {
            assert!(parse(&AUTH_CAPS[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn ping_gets_a_pong_with_its_tag() {
        let ping = [
            0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x2a, 0x00, 0x00,
        ];
        assert_eq!(parse(&ping).unwrap(), Packet::AsfPing { tag: 0x2a });
        let pong = asf_pong(0x2a);
        assert_eq!(pong[8], 0x40);
        assert_eq!(pong[9], 0x2a);
        assert_eq!(pong.len(), 4 + 8 + 16);
    }

    #[test]
    fn sealed_packets_parse_back_with_their_trailer() {
        for len in 0..12 {
            let payload = vec![0xAB; len];
            let pkt = v20_sealed(PayloadType::Ipmi, 7, 9, &payload, |c| {
                assert_eq!(c.len() % 4, 0);
                vec![0x55; 12]
            });
            let Packet::V20(v) = parse(&pkt).unwrap() else {
                panic!()
            };
            assert!(v.encrypted && v.authenticated);
            assert_eq!((v.session_id, v.seq, v.payload), (7, 9, &payload[..]));
            let (covered, code) = v.authenticated_parts(12).unwrap();
            assert_eq!(code, [0x55; 12]);
            assert_eq!(covered.len() + 12 + 4, pkt.len());
        }
    }
}
