//! A service added the way every new one is: its protocol (a `Protocol` with its request,
//! answer and callback types, and its ring-message type), its executive half (a `Service`), its client half (a
//! `Connection` typed by the protocol) and one registration line (the service list given to
//! `ExecCore::new`). Everything is in this file: nothing else in the workspace names it, and
//! no routing table or shared `match` was edited for it.
//!
//! The executive runs in a thread of this test: it reads the client's packets from one end of
//! a socket pair, hands them to the core, writes the answers and callbacks back, and plays a
//! one-node Totem ring that takes every message and delivers it back in order.

use std::thread;
use std::time::Duration;

use ais_client::{Connection, Error};
use ais_core::exec::{ConnId, Context, Effect, ExecCore, Service};
use ais_proto::codec::{DecodeError, Reader, Writer};
use ais_proto::ipc::{
    AisError, Encoded, Frame, Kind, Message, Nothing, Protocol, Reply, ServiceId, Status,
    decode_body, get_group,
};
use ais_proto::ring;
use bytes::Bytes;
use dataplane::unix::{Recv, SeqpacketConn};
use totem_dpdk::srp::{Delivery, Event};
use totem_dpdk::{MsgId, NodeId, RingId, Seq};

// ---- The protocol module (would be `ais/proto/src/tally.rs`). ----

/// A replicated tally per name: clients add to it; every client of the service hears of
/// every change.
struct TallyProtocol;

impl Protocol for TallyProtocol {
    const ID: ServiceId = ServiceId(42);
    const NAME: &'static str = "tally";
    type Request = TallyRequest;
    type Response = TallyResponse;
    type Callback = TallyCallback;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TallyRequest {
    Add { name: Bytes, by: u32 },
    Get { name: Bytes },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TallyResponse {
    Total(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TallyCallback {
    Changed { name: Bytes, total: u64 },
}

fn unknown(op: u16) -> DecodeError {
    DecodeError::UnknownOp {
        service: "tally",
        op,
    }
}

impl Message for TallyRequest {
    fn op(&self) -> u16 {
        match self {
            TallyRequest::Add { .. } => 100,
            TallyRequest::Get { .. } => 101,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            TallyRequest::Add { .. } => "TallyAdd",
            TallyRequest::Get { .. } => "TallyGet",
        }
    }
    fn encode(&self, w: &mut Writer) -> Bytes {
        match self {
            TallyRequest::Add { name, by } => {
                w.short_bytes(name).u32(*by);
            }
            TallyRequest::Get { name } => {
                w.short_bytes(name);
            }
        }
        Bytes::new()
    }
    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            100 => Ok(TallyRequest::Add {
                name: get_group(r)?,
                by: r.u32("by")?,
            }),
            101 => Ok(TallyRequest::Get {
                name: get_group(r)?,
            }),
            other => Err(unknown(other)),
        }
    }
}

impl Message for TallyResponse {
    fn op(&self) -> u16 {
        100
    }
    fn name(&self) -> &'static str {
        "TallyTotal"
    }
    fn encode(&self, w: &mut Writer) -> Bytes {
        let TallyResponse::Total(t) = self;
        w.u64(*t);
        Bytes::new()
    }
    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            100 => Ok(TallyResponse::Total(r.u64("total")?)),
            other => Err(unknown(other)),
        }
    }
}

impl Message for TallyCallback {
    fn op(&self) -> u16 {
        100
    }
    fn name(&self) -> &'static str {
        "TallyChanged"
    }
    fn encode(&self, w: &mut Writer) -> Bytes {
        let TallyCallback::Changed { name, total } = self;
        w.short_bytes(name).u64(*total);
        Bytes::new()
    }
    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            100 => Ok(TallyCallback::Changed {
                name: get_group(r)?,
                total: r.u64("total")?,
            }),
            other => Err(unknown(other)),
        }
    }
}

/// The tally's message on the Totem ring: an addition, ordered before anyone applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TallyRing {
    Add { name: Bytes, by: u32 },
}

impl Message for TallyRing {
    fn op(&self) -> u16 {
        1
    }
    fn name(&self) -> &'static str {
        "Add"
    }
    fn encode(&self, w: &mut Writer) -> Bytes {
        let TallyRing::Add { name, by } = self;
        w.short_bytes(name).u32(*by);
        Bytes::new()
    }
    fn decode(op: u16, r: &mut Reader) -> Result<Self, DecodeError> {
        match op {
            1 => Ok(TallyRing::Add {
                name: get_group(r)?,
                by: r.u32("by")?,
            }),
            other => Err(unknown(other)),
        }
    }
}

// ---- The executive half (would be `ais/core/src/services/tally.rs`). ----

#[derive(Default)]
struct Tally {
    totals: std::collections::BTreeMap<Bytes, u64>,
    conns: Vec<ConnId>,
}

impl Service for Tally {
    fn id(&self) -> ServiceId {
        TallyProtocol::ID
    }
    fn name(&self) -> &'static str {
        TallyProtocol::NAME
    }
    fn hello(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.conns.push(conn);
    }
    fn lib_request(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        op: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match decode_body(op, body)? {
            TallyRequest::Add { by: 0, .. } => cx.error(conn, id, AisError::InvalidParam),
            TallyRequest::Add { name, by } => {
                let msg = ring::encode(TallyProtocol::ID, &TallyRing::Add { name, by });
                // Answered from `submitted` (the default: OK, or TRY_AGAIN).
                cx.submit_for(conn, id, TallyProtocol::ID, 0, Default::default(), msg);
            }
            TallyRequest::Get { name } => {
                let total = self.totals.get(&name).copied().unwrap_or(0);
                cx.reply(conn, id, Reply::Service(TallyResponse::Total(total)));
            }
        }
        Ok(())
    }
    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        _sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        let TallyRing::Add { name, by } = decode_body(kind, body)?;
        let total = self.totals.entry(name.clone()).or_default();
        *total += u64::from(by);
        let cb = TallyCallback::Changed {
            name,
            total: *total,
        };
        for &conn in &self.conns {
            cx.callback(conn, &cb);
        }
        Ok(())
    }
    fn confchg(&mut self, _cx: &mut Context<'_>, _change: &totem_dpdk::srp::ConfigChange) {}
    fn conn_closed(&mut self, _cx: &mut Context<'_>, conn: ConnId) {
        self.conns.retain(|&c| c != conn);
    }
}

// ---- The executive: the registration line, and a stand-in for the runtime. ----

/// Runs a core with the tally service on the executive's end of the socket until the client
/// closes it.
fn executive(sock: SeqpacketConn) {
    // The one registration line.
    let mut core = ExecCore::new(NodeId(1), vec![Box::new(Tally::default())]);
    core.connected(1, std::process::id());
    let ring = RingId {
        rep: NodeId(1),
        seq: 4,
    };
    let mut seq = 0;
    let mut buf = vec![0; ais_proto::ipc::MAX_PACKET];
    loop {
        let n = match sock.recv(&mut buf).expect("recv") {
            Recv::Packet(n) => n,
            Recv::Closed => return,
            Recv::Truncated(n) => panic!("{n} bytes"),
        };
        let frame = Frame::decode(Bytes::copy_from_slice(&buf[..n])).expect("header");
        assert_eq!(frame.kind, Kind::Request);
        core.request(1, frame.id, frame.op, frame.body);
        while let Some(effect) = core.poll_effect() {
            match effect {
                Effect::Send { packet, .. } => {
                    sock.send(&[&packet.head, &packet.tail]).expect("send");
                }
                Effect::Submit { origin, kind, msg } => {
                    seq += 1;
                    let id = MsgId {
                        sender: NodeId(1),
                        no: seq,
                    };
                    core.submitted(origin, Ok(id));
                    core.totem(&Event::Deliver(Delivery {
                        id,
                        ring,
                        seq: Seq(seq),
                        kind,
                        payload: msg,
                    }));
                }
                Effect::Status { id, .. } => {
                    let status = Status {
                        node: 1,
                        ..Status::default()
                    };
                    let packet = Encoded::reply(id, &Reply::<Nothing>::Status(status));
                    sock.send(&[&packet.head, &packet.tail]).expect("send");
                }
                other => panic!("the tally service asks for no {other:?}"),
            }
        }
    }
}

// ---- The client half (would be `ais/client/src/tally.rs`). ----

#[test]
fn a_toy_service_works_end_to_end_through_its_own_modules() {
    let (client, server) = SeqpacketConn::pair().expect("pair");
    let exec = thread::spawn(move || executive(server));
    let mut tally = Connection::<TallyProtocol>::from_socket(client).expect("hello");
    let name = Bytes::from_static(b"calls");
    for by in [3, 4] {
        let answer = tally
            .call(TallyRequest::Add {
                name: name.clone(),
                by,
            })
            .expect("add");
        assert_eq!(answer, Reply::Ok);
    }
    assert_eq!(
        tally
            .call(TallyRequest::Get { name: name.clone() })
            .unwrap(),
        Reply::Service(TallyResponse::Total(7))
    );
    // The callbacks came while the calls waited, in the ring's order.
    let mut totals = Vec::new();
    while let Some(TallyCallback::Changed { total, .. }) =
        tally.next_callback(Some(Duration::ZERO)).unwrap()
    {
        totals.push(total);
    }
    assert_eq!(totals, [3, 7]);
    // The service's own checks reach the client as SA Forum errors; the shared operations
    // work as on any service.
    let err = tally.call(TallyRequest::Add { name, by: 0 }).unwrap_err();
    assert!(matches!(err, Error::Ais(AisError::InvalidParam)), "{err}");
    assert_eq!(tally.status().expect("status").node, 1);
    drop(tally);
    exec.join().expect("executive");
}
