//! The executive's messages on the Totem ring: their header, and the executive's own sync
//! barrier. Each service's messages are a [`Message`] type in its own module
//! ([`crate::cpg::RingMessage`], [`crate::evs::RingMessage`], [`crate::admin::RingMessage`]),
//! whose op is the message's kind.
//!
//! Header (4 bytes): `version: u8` ([`EXEC_VERSION`]), `service: u8` ([`ServiceId`]; 0 is the
//! executive's own, [`SYNC`]), `kind: u16` little endian; the body follows. The layout of the
//! first byte never changes, so a node can tell a peer of another version from a malformed
//! message, and say so.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, SliceReader, Writer};
use crate::ipc::{Message, ServiceId};

/// Version byte of the executive's Totem messages (2: CPG join lists name their ring; 3: shelf
/// sensor events carry the IPMI event type).
pub const EXEC_VERSION: u8 = 3;
/// Length of the header.
pub const EXEC_HEADER: usize = 4;
/// The executive's own messages (sync barriers).
pub const SYNC: ServiceId = ServiceId(0);

/// Encodes `m` as a ring message of `service`: header, body and payload in one buffer (the
/// one copy of the payload a Totem submit needs).
pub fn encode<M: Message>(service: ServiceId, m: &M) -> Bytes {
    let mut w = Writer::with_capacity(64);
    w.u8(EXEC_VERSION).u8(service.0).u16(m.op());
    let tail = m.encode(&mut w);
    let mut v = w.finish();
    v.extend_from_slice(&tail);
    Bytes::from(v)
}

/// A ring message of `service` and `kind` whose body `body` writes, into one buffer reserved
/// for `len` bytes in all (header included): the bytes [`encode`] gives for a message that
/// encodes the same way, for a caller holding the fields borrowed (no value built, no
/// payload slice counted, no buffer grown).
pub fn encode_with(
    service: ServiceId,
    kind: u16,
    len: usize,
    body: impl FnOnce(&mut Writer),
) -> Bytes {
    let mut w = Writer::with_capacity(len);
    w.u8(EXEC_VERSION).u8(service.0).u16(kind);
    body(&mut w);
    Bytes::from(w.finish())
}

/// A ring message of `service` and `kind` with a body given as bytes (tests, and messages
/// made by hand).
pub fn raw(service: ServiceId, kind: u16, body: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(EXEC_HEADER + body.len());
    v.push(EXEC_VERSION);
    v.push(service.0);
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(body);
    Bytes::from(v)
}

/// A delivered ring message whose header is read and whose body is not decoded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingFrame {
    /// The service it is for.
    pub service: ServiceId,
    /// Its kind (the op of the service's ring-message type).
    pub kind: u16,
    /// The bytes after the header.
    pub body: Bytes,
}

impl RingFrame {
    /// Reads the header of a delivered payload.
    ///
    /// # Errors
    /// [`DecodeError::Version`] for another version (checked first: a peer of another build),
    /// [`DecodeError::Truncated`] when the header is cut short.
    pub fn decode(payload: &Bytes) -> Result<RingFrame, DecodeError> {
        let (service, kind) = header(payload)?;
        Ok(RingFrame {
            service,
            kind,
            body: payload.slice(EXEC_HEADER..),
        })
    }
}

/// Reads the header of a delivered payload in place: its service and kind (the body is
/// `payload[EXEC_HEADER..]`). What [`RingFrame::decode`] checks, without touching the
/// payload's reference count.
///
/// # Errors
/// As [`RingFrame::decode`].
pub fn header(payload: &[u8]) -> Result<(ServiceId, u16), DecodeError> {
    let mut r = SliceReader::new(payload);
    let version = r.u8("version")?;
    if version != EXEC_VERSION {
        return Err(DecodeError::Version {
            what: "executive protocol",
            got: version,
            supported: EXEC_VERSION,
        });
    }
    let service = ServiceId(r.u8("service")?);
    let kind = r.u16("kind")?;
    Ok((service, kind))
}

/// The executive's own ring message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// This node has sent everything `service` must share in the ring `(rep, seq)`.
    Barrier {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// The service synchronised.
        service: ServiceId,
    },
    /// The sending node's clients' outboxes are above the high-water mark (`on`) or back
    /// below the low-water mark: while any member is backlogged, every node answers its
    /// clients' multicasts TRY_AGAIN (`ais_core::exec::flow`).
    Backlog {
        /// Backlogged, or not any more.
        on: bool,
    },
}

const BARRIER: u16 = 1;
const BACKLOG: u16 = 2;

impl Message for SyncMessage {
    fn op(&self) -> u16 {
        match self {
            SyncMessage::Barrier { .. } => BARRIER,
            SyncMessage::Backlog { .. } => BACKLOG,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            SyncMessage::Barrier { .. } => "Barrier",
            SyncMessage::Backlog { .. } => "Backlog",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            SyncMessage::Barrier { rep, seq, service } => {
                w.u32(*rep).u64(*seq).u8(service.0);
            }
            SyncMessage::Backlog { on } => {
                w.u8(u8::from(*on));
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            BARRIER => Ok(SyncMessage::Barrier {
                rep: r.u32("ring representative")?,
                seq: r.u64("ring sequence")?,
                service: ServiceId(r.u8("service")?),
            }),
            BACKLOG => Ok(SyncMessage::Backlog {
                on: r.bool("backlogged")?,
            }),
            op => Err(DecodeError::UnknownOp {
                service: "sync",
                op,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::decode_body;

    #[test]
    fn a_barrier_round_trips_and_its_header_is_read() {
        let m = SyncMessage::Barrier {
            rep: 3,
            seq: 8,
            service: ServiceId(1),
        };
        let bytes = encode(SYNC, &m);
        assert_eq!(bytes.len(), EXEC_HEADER + 13);
        let f = RingFrame::decode(&bytes).unwrap();
        assert_eq!((f.service, f.kind), (SYNC, 1));
        assert_eq!(decode_body::<SyncMessage>(f.kind, f.body.clone()), Ok(m));
        assert_eq!(raw(SYNC, 1, &f.body), bytes);
        for cut in 0..bytes.len() {
            let short = bytes.slice(..cut);
            let ok =
                RingFrame::decode(&short).and_then(|f| decode_body::<SyncMessage>(f.kind, f.body));
            assert!(ok.is_err(), "cut at {cut}");
        }
        for on in [false, true] {
            let m = SyncMessage::Backlog { on };
            let bytes = encode(SYNC, &m);
            assert_eq!(bytes.len(), EXEC_HEADER + 1);
            let f = RingFrame::decode(&bytes).unwrap();
            assert_eq!(decode_body::<SyncMessage>(f.kind, f.body.clone()), Ok(m));
            assert!(decode_body::<SyncMessage>(f.kind, Bytes::new()).is_err());
            assert!(decode_body::<SyncMessage>(f.kind, Bytes::from_static(&[2])).is_err());
        }
        let mut other = bytes.to_vec();
        other[0] = EXEC_VERSION + 1;
        assert!(matches!(
            RingFrame::decode(&Bytes::from(other)),
            Err(DecodeError::Version { got, .. }) if got == EXEC_VERSION + 1
        ));
    }
}
