//! Shelf events (HPI hot-swap transitions and critical sensor events of an ATCA shelf) on the
//! IPC socket and on the ring. The executive's half is `ais_core::services::shelf`: every
//! node that watches the shelf submits what it sees, and each event is accepted once in the
//! cluster by deduplication on its [`ShelfKey`] (docs/hpi.md, "Shelf events in the cluster").

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{Message, Protocol, ServiceId};

/// The shelf event protocol.
#[derive(Debug, Clone, Copy)]
pub struct ShelfProtocol;

impl Protocol for ShelfProtocol {
    const ID: ServiceId = ServiceId(10);
    const NAME: &'static str = "shelf";
    type Request = Request;
    type Response = Response;
    type Callback = Callback;
}

/// What identifies one shelf event wherever it is seen: the shelf, the SEL record id and the
/// SEL timestamp. A cleared SEL starts its record ids again, but with later timestamps, so a
/// reused id is a new key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShelfKey {
    /// The shelf's identity (its configured address or its GUID).
    pub shelf: Bytes,
    /// The SEL record id.
    pub record: u16,
    /// The SEL record's timestamp (seconds, the shelf manager's clock).
    pub timestamp: u32,
}

/// What happened on the shelf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShelfEventKind {
    /// A FRU changed hot-swap state (HPI states as `hpi::HsState` codes: 0 inactive,
    /// 1 insertion pending, 2 active, 3 extraction pending, 4 not present).
    HotSwap {
        /// The FRU's slot (physical slot number; 0 for shelf-level FRUs).
        slot: u8,
        /// The FRU id on its controller.
        fru: u8,
        /// Previous HPI state.
        previous: u8,
        /// New HPI state.
        state: u8,
        /// The PICMG cause code.
        cause: u8,
    },
    /// A critical sensor event.
    Sensor {
        /// The slot of the FRU that owns the sensor.
        slot: u8,
        /// Sensor number.
        sensor: u8,
        /// IPMI sensor type.
        sensor_type: u8,
        /// Assertion (true) or deassertion.
        assertion: bool,
        /// The IPMI event/reading type: 0x01 threshold, 0x07 generic severity, ...
        event_type: u8,
        /// The event offset (threshold or discrete state, as `event_type` says).
        offset: u8,
    },
}

/// One shelf event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShelfEvent {
    /// Its identity.
    pub key: ShelfKey,
    /// What happened.
    pub kind: ShelfEventKind,
}

const K_HOTSWAP: u8 = 1;
const K_SENSOR: u8 = 2;

/// Writes a key.
fn put_key(w: &mut Writer, k: &ShelfKey) {
    w.short_bytes(&k.shelf).u16(k.record).u32(k.timestamp);
}

fn get_key(r: &mut Reader) -> Result<ShelfKey, DecodeError> {
    Ok(ShelfKey {
        shelf: r.short_bytes("shelf")?,
        record: r.u16("record id")?,
        timestamp: r.u32("timestamp")?,
    })
}

fn put_event(w: &mut Writer, e: &ShelfEvent) {
    put_key(w, &e.key);
    match e.kind {
        ShelfEventKind::HotSwap {
            slot,
            fru,
            previous,
            state,
            cause,
        } => {
            w.u8(K_HOTSWAP)
                .u8(slot)
                .u8(fru)
                .u8(previous)
                .u8(state)
                .u8(cause);
        }
        ShelfEventKind::Sensor {
            slot,
            sensor,
            sensor_type,
            assertion,
            event_type,
            offset,
        } => {
            w.u8(K_SENSOR)
                .u8(slot)
                .u8(sensor)
                .u8(sensor_type)
                .u8(u8::from(assertion))
                .u8(event_type)
                .u8(offset);
        }
    }
}

fn get_event(r: &mut Reader) -> Result<ShelfEvent, DecodeError> {
    let key = get_key(r)?;
    let kind = match r.u8("event kind")? {
        K_HOTSWAP => ShelfEventKind::HotSwap {
            slot: r.u8("slot")?,
            fru: r.u8("fru")?,
            previous: r.u8("previous state")?,
            state: r.u8("state")?,
            cause: r.u8("cause")?,
        },
        K_SENSOR => ShelfEventKind::Sensor {
            slot: r.u8("slot")?,
            sensor: r.u8("sensor")?,
            sensor_type: r.u8("sensor type")?,
            assertion: r.bool("assertion")?,
            event_type: r.u8("event type")?,
            offset: r.u8("offset")?,
        },
        _ => {
            return Err(DecodeError::Invalid {
                field: "event kind",
                why: "unknown",
            });
        }
    };
    Ok(ShelfEvent { key, kind })
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp {
        service: "shelf",
        op,
    }
}

/// A shelf request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// This node's shelf watcher saw an event (the executive's HPI thread; answered
    /// [`Response::Observed`]).
    Observe(ShelfEvent),
    /// Start (`true`) or stop sending [`Callback::Accepted`] for every event the cluster
    /// accepts.
    Follow(bool),
}

const OP_OBSERVE: u16 = 10;
const OP_FOLLOW: u16 = 11;
const R_OBSERVED: u16 = 10;
const C_ACCEPTED: u16 = 10;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Observe(_) => OP_OBSERVE,
            Request::Follow(_) => OP_FOLLOW,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Observe(_) => "ShelfObserve",
            Request::Follow(_) => "ShelfFollow",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            Request::Observe(e) => put_event(w, e),
            Request::Follow(on) => {
                w.u8(u8::from(*on));
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            OP_OBSERVE => Ok(Request::Observe(get_event(r)?)),
            OP_FOLLOW => Ok(Request::Follow(r.u8("follow")? != 0)),
            other => Err(unknown(other)),
        }
    }
}

/// A shelf answer (besides `Ok` and `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Observe`]: `known` when the cluster had already accepted it (not
    /// submitted again).
    Observed {
        /// Already accepted.
        known: bool,
    },
}

impl Message for Response {
    fn op(&self) -> u16 {
        R_OBSERVED
    }

    fn name(&self) -> &'static str {
        "ShelfObserved"
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        let Response::Observed { known } = self;
        w.u8(u8::from(*known));
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            R_OBSERVED => Ok(Response::Observed {
                known: r.u8("known")? != 0,
            }),
            other => Err(unknown(other)),
        }
    }
}

/// A shelf callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The cluster accepted a shelf event (sent to following connections).
    Accepted {
        /// Who submitted the copy that was accepted.
        from: u32,
        /// The event.
        event: ShelfEvent,
    },
}

impl Message for Callback {
    fn op(&self) -> u16 {
        C_ACCEPTED
    }

    fn name(&self) -> &'static str {
        "ShelfAccepted"
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        let Callback::Accepted { from, event } = self;
        w.u32(*from);
        put_event(w, event);
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            C_ACCEPTED => Ok(Callback::Accepted {
                from: r.u32("from")?,
                event: get_event(r)?,
            }),
            other => Err(unknown(other)),
        }
    }
}

/// The shelf service's messages on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A watcher's copy of a shelf event: the first copy of a key in the agreed order is
    /// accepted, every later one dropped.
    Event(ShelfEvent),
    /// Part of the sender's seen-set, for the sync of ring `(rep, seq)`.
    Seen {
        /// The ring's representative.
        rep: u32,
        /// The ring's sequence number.
        seq: u64,
        /// Keys it knows as accepted.
        keys: Vec<ShelfKey>,
    },
}

const RING_EVENT: u16 = 1;
const RING_SEEN: u16 = 2;

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Event(_) => RING_EVENT,
            RingMessage::Seen { .. } => RING_SEEN,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Event(_) => "ShelfEvent",
            RingMessage::Seen { .. } => "ShelfSeen",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Event(e) => put_event(w, e),
            RingMessage::Seen { rep, seq, keys } => {
                w.u32(*rep).u64(*seq).count(keys.len());
                for k in keys {
                    put_key(w, k);
                }
            }
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            RING_EVENT => Ok(RingMessage::Event(get_event(r)?)),
            RING_SEEN => {
                let rep = r.u32("ring representative")?;
                let seq = r.u64("ring sequence")?;
                // A key is at least a length byte, a record id and a timestamp.
                let n = r.count("keys", 7)?;
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(get_key(r)?);
                }
                Ok(RingMessage::Seen { rep, seq, keys })
            }
            other => Err(unknown(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, FIRST_RESPONSE_OP, Kind, assert_round_trips};

    fn key(record: u16) -> ShelfKey {
        ShelfKey {
            shelf: Bytes::from_static(b"10.0.0.1:623"),
            record,
            timestamp: 1_700_000_000,
        }
    }

    #[test]
    fn every_shelf_message_round_trips() {
        let hs = ShelfEvent {
            key: key(7),
            kind: ShelfEventKind::HotSwap {
                slot: 5,
                fru: 0,
                previous: 2,
                state: 3,
                cause: 2,
            },
        };
        let sensor = ShelfEvent {
            key: key(8),
            kind: ShelfEventKind::Sensor {
                slot: 3,
                sensor: 0x21,
                sensor_type: 1,
                assertion: true,
                event_type: 0x01,
                offset: 9,
            },
        };
        let reqs = [
            Request::Observe(hs.clone()),
            Request::Observe(sensor.clone()),
            Request::Follow(true),
        ];
        assert!(reqs.iter().all(|r| r.op() >= FIRST_REQUEST_OP));
        assert_round_trips(Kind::Request, &reqs);
        let resp = [Response::Observed { known: true }];
        assert!(resp[0].op() >= FIRST_RESPONSE_OP);
        assert_round_trips(Kind::Response, &resp);
        assert_round_trips(
            Kind::Callback,
            &[Callback::Accepted {
                from: 2,
                event: hs.clone(),
            }],
        );
        assert_round_trips(
            Kind::Request,
            &[
                RingMessage::Event(sensor),
                RingMessage::Seen {
                    rep: 1,
                    seq: 8,
                    keys: vec![key(1), key(2)],
                },
            ],
        );
    }

    #[test]
    fn a_forged_key_count_is_refused() {
        let mut w = Writer::with_capacity(32);
        w.u32(1).u64(2).u32(u32::MAX);
        let mut r = Reader::new(Bytes::from(w.finish()));
        assert!(RingMessage::decode(RING_SEEN, &mut r).is_err());
    }
}
