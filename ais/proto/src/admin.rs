//! Administration on the IPC socket (`aisctl`): `Status` (which every connection has, see
//! [`crate::ipc::Request::Status`]) and online rekeying. The executive's half is
//! `ais_core::services::keys`.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ipc::{Message, Nothing, Protocol, ServiceId};

/// The administration protocol.
#[derive(Debug, Clone, Copy)]
pub struct AdminProtocol;

impl Protocol for AdminProtocol {
    const ID: ServiceId = ServiceId(3);
    const NAME: &'static str = "admin";
    type Request = Request;
    type Response = Nothing;
    type Callback = Nothing;
}

/// An administration request.
///
/// Not `non_exhaustive`: the executive's handler must answer every request, so a new one
/// fails its build until it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Replace the cluster's frame key with a new epoch (`aisctl rekey`); answered once the
    /// new epoch is in use on this node.
    Rekey,
    /// Take this node's network `net` out of use (`enabled` false) or put it back (redundant
    /// rings: `aisctl ring disable|enable N`); answered `Ok`, or `InvalidParam` for a network
    /// this node does not have or the last one in use.
    SetNetwork {
        /// The network, 0 to 3.
        net: u8,
        /// In use or not.
        enabled: bool,
    },
}

const OP_REKEY: u16 = 3;
const OP_SET_NETWORK: u16 = 4;

impl Message for Request {
    fn op(&self) -> u16 {
        match self {
            Request::Rekey => OP_REKEY,
            Request::SetNetwork { .. } => OP_SET_NETWORK,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Request::Rekey => "Rekey",
            Request::SetNetwork { .. } => "SetNetwork",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        if let Request::SetNetwork { net, enabled } = self {
            w.u8(*net).u8(u8::from(*enabled));
        }
        Bytes::new()
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            OP_REKEY => Ok(Request::Rekey),
            OP_SET_NETWORK => Ok(Request::SetNetwork {
                net: r.u8("net")?,
                enabled: r.bool("enabled")?,
            }),
            op => Err(DecodeError::UnknownOp {
                service: "admin",
                op,
            }),
        }
    }
}

/// A key-service message on the Totem ring (the executive's half:
/// `ais_core::services::keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingMessage {
    /// A new key epoch, wrapped under the current key (`totem_dpdk::crypto::rekey_wrap`).
    Rekey {
        /// The wrapped key.
        wrapped: Bytes,
    },
    /// The sender seals with `epoch` (and opens it).
    KeyDone {
        /// The epoch.
        epoch: u32,
    },
    /// The sender opens frames sealed under `epoch` (and still seals with the one before).
    KeyReady {
        /// The epoch.
        epoch: u32,
    },
}

const RING_REKEY: u16 = 1;
const RING_KEY_DONE: u16 = 2;
const RING_KEY_READY: u16 = 3;

impl Message for RingMessage {
    fn op(&self) -> u16 {
        match self {
            RingMessage::Rekey { .. } => RING_REKEY,
            RingMessage::KeyDone { .. } => RING_KEY_DONE,
            RingMessage::KeyReady { .. } => RING_KEY_READY,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RingMessage::Rekey { .. } => "Rekey",
            RingMessage::KeyDone { .. } => "KeyDone",
            RingMessage::KeyReady { .. } => "KeyReady",
        }
    }

    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            RingMessage::Rekey { wrapped } => wrapped.clone(),
            RingMessage::KeyDone { epoch } | RingMessage::KeyReady { epoch } => {
                w.u32(*epoch);
                Bytes::new()
            }
        }
    }

    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            RING_REKEY => Ok(RingMessage::Rekey { wrapped: r.rest() }),
            RING_KEY_DONE => Ok(RingMessage::KeyDone {
                epoch: r.u32("epoch")?,
            }),
            RING_KEY_READY => Ok(RingMessage::KeyReady {
                epoch: r.u32("epoch")?,
            }),
            op => Err(DecodeError::UnknownOp {
                service: "keys",
                op,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FIRST_REQUEST_OP, Kind, assert_round_trips};

    #[test]
    fn rekey_round_trips() {
        assert!(Request::Rekey.op() >= FIRST_REQUEST_OP);
        assert_round_trips(
            Kind::Request,
            &[
                Request::Rekey,
                Request::SetNetwork {
                    net: 1,
                    enabled: false,
                },
                Request::SetNetwork {
                    net: 0,
                    enabled: true,
                },
            ],
        );
        assert_round_trips(
            Kind::Request,
            &[
                RingMessage::Rekey {
                    wrapped: Bytes::from_static(b"wrapped key"),
                },
                RingMessage::KeyDone { epoch: 4 },
                RingMessage::KeyReady { epoch: 5 },
            ],
        );
    }
}
