//! Fuzz target bodies (the `ais/fuzz` crate calls them; the unit tests below run them on
//! seeded random inputs too). Remote input reaches the executive two ways: client packets
//! ([`ais_proto::ipc::Frame::decode`], then the connection's service decodes the body in
//! [`super::ExecCore::request`]) and messages delivered by Totem from other nodes
//! ([`super::ExecCore::totem`]); neither may panic, whatever the bytes.

use bytes::Bytes;
use totem_dpdk::crypto::EpochKey;
use totem_dpdk::srp::{ConfigChange, ConfigKind, Delivery, Event};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId, Seq};

use super::{Effect, ExecCore};
use crate::services::amf::{Amf, AmfConfig, AmfModel, Flat};
use crate::services::ckpt::{Ckpt, CkptConfig};
use crate::services::clm::{Clm, ClmConfig};
use crate::services::evt::{Evt, EvtConfig};
use crate::services::lck::{Lck, LckConfig};
use crate::services::msg::{Msg, MsgConfig};
use crate::services::quorum::{Quorum, QuorumConfig};
use crate::services::shelf::{Shelf, ShelfConfig};
use crate::services::{cpg::Cpg, evs::Evs, keys::Keys};
use ais_proto::evt;
use ais_proto::ipc::{Encoded, Frame, Message, Nothing, Protocol, Reply, Request};
use ais_proto::{admin, amf, ckpt, clm, cpg, evs, lck, msg, quorum, shelf};

/// Decodes `data` as a client packet, and its body as every service's requests, answers,
/// callbacks and ring messages: a body that decodes must encode and decode to the same value. Then hands the
/// packet, as a request, to a core on a CPG, an EVS and an administration connection.
///
/// # Panics
/// When a round trip changes a value (a codec bug), or the core panics.
pub fn fuzz_ipc_decode(data: &[u8]) {
    let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    round_trip::<Request<cpg::Request>>(&frame);
    round_trip::<Request<evs::Request>>(&frame);
    round_trip::<Request<admin::Request>>(&frame);
    round_trip::<Request<clm::Request>>(&frame);
    round_trip::<Request<quorum::Request>>(&frame);
    round_trip::<Request<ckpt::Request>>(&frame);
    round_trip::<Request<evt::Request>>(&frame);
    round_trip::<Request<msg::Request>>(&frame);
    round_trip::<Request<lck::Request>>(&frame);
    round_trip::<Request<shelf::Request>>(&frame);
    round_trip::<Request<amf::Request>>(&frame);
    round_trip::<Reply<cpg::Response>>(&frame);
    round_trip::<Reply<evs::Response>>(&frame);
    round_trip::<Reply<clm::Response>>(&frame);
    round_trip::<Reply<quorum::Response>>(&frame);
    round_trip::<Reply<ckpt::Response>>(&frame);
    round_trip::<Reply<evt::Response>>(&frame);
    round_trip::<Reply<msg::Response>>(&frame);
    round_trip::<Reply<lck::Response>>(&frame);
    round_trip::<Reply<shelf::Response>>(&frame);
    round_trip::<Reply<amf::Response>>(&frame);
    round_trip::<cpg::Callback>(&frame);
    round_trip::<evs::Callback>(&frame);
    round_trip::<clm::Callback>(&frame);
    round_trip::<quorum::Callback>(&frame);
    round_trip::<ckpt::Callback>(&frame);
    round_trip::<evt::Callback>(&frame);
    round_trip::<msg::Callback>(&frame);
    round_trip::<lck::Callback>(&frame);
    round_trip::<shelf::Callback>(&frame);
    round_trip::<amf::Callback>(&frame);
    // The ring messages' codecs, on the same bytes.
    round_trip::<cpg::RingMessage>(&frame);
    round_trip::<evs::RingMessage>(&frame);
    round_trip::<admin::RingMessage>(&frame);
    round_trip::<clm::RingMessage>(&frame);
    round_trip::<quorum::RingMessage>(&frame);
    round_trip::<ckpt::RingMessage>(&frame);
    round_trip::<evt::RingMessage>(&frame);
    round_trip::<msg::RingMessage>(&frame);
    round_trip::<lck::RingMessage>(&frame);
    round_trip::<shelf::RingMessage>(&frame);
    round_trip::<amf::RingMessage>(&frame);
    round_trip::<ais_proto::ring::SyncMessage>(&frame);
    mcast_in_place(&frame);
    let mut core = ExecCore::new(
        NodeId(1),
        vec![
            Box::new(Cpg::new()),
            Box::new(Evs::new()),
            Box::new(Clm::new(clm_identity())),
            Box::new(Keys::new(None)),
            Box::new(Quorum::new(QUORUM)),
            Box::new(Ckpt::new(CkptConfig::default())),
            Box::new(Evt::new(EvtConfig::default())),
            Box::new(Msg::new(MsgConfig::default())),
            Box::new(Lck::new(LckConfig::default())),
            Box::new(Shelf::new(ShelfConfig::default())),
            Box::new(amf_service()),
        ],
    );
    for (conn, service) in [
        (1, cpg::CpgProtocol::ID),
        (2, evs::EvsProtocol::ID),
        (3, admin::AdminProtocol::ID),
        (4, clm::ClmProtocol::ID),
        (5, quorum::QuorumProtocol::ID),
        (6, ckpt::CkptProtocol::ID),
        (7, evt::EvtProtocol::ID),
        (8, msg::MsgProtocol::ID),
        (9, lck::LckProtocol::ID),
        (10, shelf::ShelfProtocol::ID),
        (11, amf::AmfProtocol::ID),
    ] {
        core.connected(conn, 100);
        hello(&mut core, conn, service);
        core.request(conn, frame.id, frame.op, frame.body.clone());
    }
    while let Some(e) = core.poll_effect() {
        if let Effect::Submit { origin, .. } = e {
            core.submitted(origin, Err(totem_dpdk::srp::SubmitError::Backpressure));
        }
    }
}

/// The AMF of the fuzzed cores: a 2N SG with an SU on node 1 and one on node 2, one SI.
fn amf_service() -> Amf {
    use crate::services::amf::model::{
        Application, CompType, Component, Csi, CsiTarget, Node, Redundancy, ServiceGroup,
        ServiceInstance, ServiceUnit,
    };
    let mut sg = ServiceGroup::new("g", Redundancy::TwoN);
    for n in 1..=2 {
        sg.sus.push(ServiceUnit {
            name: format!("u{n}"),
            node: format!("n{n}"),
            rank: 0,
            components: vec![Component {
                name: "c".into(),
                comp_type: "c".into(),
            }],
        });
    }
    let model = AmfModel {
        nodes: vec![Node::new("n1", 1), Node::new("n2", 2)],
        comp_types: vec![CompType::new("c", "run-c")],
        apps: vec![Application {
            name: "a".into(),
            sgs: vec![sg],
            sis: vec![ServiceInstance {
                name: "s".into(),
                sg: "g".into(),
                rank: 0,
                active_assignments: None,
                csis: vec![Csi {
                    name: "x".into(),
                    target: CsiTarget::CompType("c".into()),
                    attributes: Vec::new(),
                }],
            }],
        }],
    };
    Amf::new(Flat::new(model), NodeId(1), AmfConfig::default())
}

/// The quorum settings of the fuzzed cores.
const QUORUM: QuorumConfig = QuorumConfig {
    votes: 1,
    expected_votes: 3,
    two_node: false,
    wait_for_all: false,
};

/// What CLM says of the fuzzed node.
fn clm_identity() -> ClmConfig {
    ClmConfig {
        name: Bytes::from_static(b"fuzz"),
        address: clm::NodeAddress::V4([127, 0, 0, 1]),
        boot_timestamp: 1,
    }
}

/// The executive's in-place reading of a CPG multicast agrees with the decoder's.
fn mcast_in_place(frame: &Frame) {
    let Some(borrowed) = cpg::McastRef::parse(frame.op, &frame.body) else {
        return;
    };
    match (borrowed, frame.body::<cpg::RingMessage>()) {
        (Ok(r), Ok(cpg::RingMessage::Mcast { group, pid, data })) => {
            assert_eq!((r.group, r.pid, r.data), (&group[..], pid, &data[..]));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("read in place: {a:?}; decoded: {b:?}"),
    }
}

fn round_trip<M: Message + PartialEq>(frame: &Frame) {
    if let Ok(m) = frame.body::<M>() {
        let again = Encoded::new(frame.kind, frame.id, &m)
            .frame()
            .expect("an encoded header decodes")
            .body::<M>()
            .expect("an encoded body decodes");
        assert_eq!(m, again, "round trip");
    }
}

fn hello(core: &mut ExecCore, conn: u64, service: ais_proto::ipc::ServiceId) {
    core.request_value(
        conn,
        0,
        &Request::<Nothing>::Hello {
            version: ais_proto::ipc::VERSION,
            service,
        },
    );
}

/// Node 1 with CPG, EVS, CLM, the key service, quorum, CKPT, EVT, MSG, LCK, shelf and AMF (a
/// 2N model over nodes 1 and 2, its life-cycle commands all succeeding), a CPG client in
/// group `g`, an EVS client in group `g`, a CKPT client with checkpoint `f` open, an EVT
/// client subscribed on channel `f`, an MSG client with queue `q` open and an LCK client with
/// resource `r` open; then `data` as a sequence of deliveries: `sender: u8` (node 1–3 after
/// reduction), `len: u8`, `len` bytes of message (service byte and kind included; the version
/// byte in front is added unless the sender byte's top bit is set), with a regular
/// configuration (of nodes 1–3, or 1 and 3) when `sender` is 0. Every submit is accepted and
/// delivered back.
///
/// # Panics
/// Never, for any input (that is what the fuzzer checks).
pub fn fuzz_exec_deliver(data: &[u8]) {
    let _ = run_deliveries(data);
}

/// [`fuzz_exec_deliver`]; returns the CPG deliveries to the client.
fn run_deliveries(data: &[u8]) -> usize {
    let mut delivered = 0;
    let key = EpochKey::new(0, vec![7; 32]).expect("key");
    let mut core = ExecCore::new(
        NodeId(1),
        vec![
            Box::new(Cpg::new()),
            Box::new(Evs::new()),
            Box::new(Clm::new(clm_identity())),
            Box::new(Keys::new(Some(key))),
            Box::new(Quorum::new(QUORUM)),
            Box::new(Ckpt::new(CkptConfig::default())),
            Box::new(Evt::new(EvtConfig::default())),
            Box::new(Msg::new(MsgConfig::default())),
            Box::new(Lck::new(LckConfig::default())),
            Box::new(Shelf::new(ShelfConfig::default())),
            Box::new(amf_service()),
        ],
    );
    let mut no = 0u64;
    let mut seq = 0u64;
    let mut ring = RingId {
        rep: NodeId(1),
        seq: 4,
    };
    let config = |core: &mut ExecCore, ring: RingId, members: Vec<NodeId>| {
        core.totem(&Event::ConfigChange(ConfigChange {
            kind: ConfigKind::Regular,
            ring,
            members,
            left: Vec::new(),
            joined: Vec::new(),
            failed: Vec::new(),
        }));
    };
    // A ring of this node alone first, so its sync completes (with its own barrier, delivered
    // below) and the clients' joins go through.
    config(&mut core, ring, vec![NodeId(1)]);
    core.connected(1, 100);
    hello(&mut core, 1, cpg::CpgProtocol::ID);
    core.request_value(
        1,
        2,
        &cpg::Request::Join {
            group: Bytes::from_static(b"g"),
        },
    );
    core.connected(2, 200);
    hello(&mut core, 2, evs::EvsProtocol::ID);
    core.request_value(
        2,
        2,
        &evs::Request::Join {
            groups: vec![Bytes::from_static(b"g")],
        },
    );
    // A CKPT client with a checkpoint open, so updates from other nodes find one.
    core.connected(3, 300);
    hello(&mut core, 3, ckpt::CkptProtocol::ID);
    core.request_value(
        3,
        2,
        &ckpt::Request::Open {
            name: Bytes::from_static(b"f"),
            flags: ckpt::OPEN_CREATE | ckpt::OPEN_READ | ckpt::OPEN_WRITE,
            attributes: Some(ckpt::Attributes {
                creation_flags: ckpt::WR_ALL_REPLICAS,
                checkpoint_size: 4096,
                retention_duration: ckpt::TIME_END,
                max_sections: 4,
                max_section_size: 1024,
                max_section_id_size: 8,
            }),
        },
    );
    // An EVT client with channel "f" open and subscribed to everything, so publishes from
    // other nodes find a subscriber.
    core.connected(4, 400);
    hello(&mut core, 4, evt::EvtProtocol::ID);
    core.request_value(
        4,
        2,
        &evt::Request::Open {
            name: Bytes::from_static(b"f"),
            flags: evt::OPEN_CREATE | evt::OPEN_PUBLISHER | evt::OPEN_SUBSCRIBER,
        },
    );
    // An MSG client with a queue open, so sends and takes from other nodes find one.
    core.connected(5, 500);
    hello(&mut core, 5, msg::MsgProtocol::ID);
    core.request_value(
        5,
        2,
        &msg::Request::Open {
            name: Bytes::from_static(b"q"),
            flags: msg::OPEN_CREATE | msg::OPEN_RECEIVE_CALLBACK,
            attributes: Some(msg::Attributes {
                creation_flags: msg::QUEUE_PERSISTENT,
                size: [1024; msg::PRIORITIES],
                retention_time: 0,
            }),
        },
    );
    let mut subscribed = false;
    // An LCK client with a resource open, so lock messages from other nodes find one.
    core.connected(6, 600);
    hello(&mut core, 6, lck::LckProtocol::ID);
    core.request_value(
        6,
        2,
        &lck::Request::Open {
            name: Bytes::from_static(b"r"),
            flags: lck::RESOURCE_CREATE,
        },
    );
    let mut rest = data;
    loop {
        // Take every effect; accept every submit and deliver it back (our own messages).
        let mut own = Vec::new();
        while let Some(e) = core.poll_effect() {
            if let Effect::Submit { origin, msg, .. } = e {
                no += 1;
                core.submitted(
                    origin,
                    Ok(MsgId {
                        sender: NodeId(1),
                        no,
                    }),
                );
                own.push(msg);
            } else if let Effect::SubmitBatch { origin, msgs, .. } = e {
                core.batch_submitted(origin, msgs.len(), None);
                own.extend(msgs);
            } else if matches!(e, Effect::Send { conn: 1, .. })
                && let Some((_, cpg::Callback::Deliver { .. })) = e.callback()
            {
                delivered += 1;
            } else if let Effect::NeedRandom {
                service,
                conn,
                id,
                len,
            } = e
            {
                core.random(service, conn, id, &vec![5; len]);
            } else if let Effect::Clc { service, command } = e {
                core.clc_result(service, command.id, super::ClcOutcome::Succeeded);
            }
        }
        for msg in own {
            seq += 1;
            core.totem(&Event::Deliver(Delivery {
                id: MsgId {
                    sender: NodeId(1),
                    no: seq,
                },
                ring,
                seq: Seq(seq),
                kind: DeliveryKind::Agreed,
                payload: msg,
            }));
        }
        if !subscribed && core.is_idle() {
            // The open was answered with handle 1 once the first sync ran.
            subscribed = true;
            core.request_value(
                4,
                3,
                &evt::Request::Subscribe {
                    channel: 1,
                    subscription: 1,
                    filters: Vec::new(),
                },
            );
            continue;
        }
        let [sender, len, tail @ ..] = rest else {
            return delivered;
        };
        let (sender, len) = (*sender, usize::from(*len));
        if sender == 0 {
            ring.seq += 4;
            let members = if len % 2 == 0 {
                vec![NodeId(1), NodeId(2), NodeId(3)]
            } else {
                vec![NodeId(1), NodeId(3)]
            };
            config(&mut core, ring, members);
            rest = tail;
            continue;
        }
        let take = len.min(tail.len());
        let mut payload = Vec::with_capacity(take + 1);
        if sender & 0x80 == 0 {
            payload.push(super::EXEC_VERSION);
        }
        payload.extend_from_slice(&tail[..take]);
        rest = &tail[take..];
        seq += 1;
        core.totem(&Event::Deliver(Delivery {
            id: MsgId {
                sender: NodeId(u32::from(sender % 3) + 1),
                no: 1_000_000 + seq,
            },
            ring,
            seq: Seq(seq),
            kind: DeliveryKind::Agreed,
            payload: Bytes::from(payload),
        }));
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore, SeedableRng};

    #[test]
    fn random_inputs_do_not_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..3000 {
            let mut data = vec![0u8; rng.random_range(0..400)];
            rng.fill_bytes(&mut data);
            super::fuzz_ipc_decode(&data);
            super::fuzz_exec_deliver(&data);
        }
    }

    #[test]
    fn valid_messages_from_other_nodes_are_handled() {
        // A CPG join of node 2's process 7 to "g" (service 1, kind 1 little endian, group as
        // u16 length and bytes, pid as u32), then a message from it (kind 3).
        let mut data = Vec::new();
        for body in [
            &b"\x01\x01\x00\x01\x00g\x07\x00\x00\x00"[..],
            &b"\x01\x03\x00\x01\x00g\x07\x00\x00\x00hi"[..],
        ] {
            data.push(1); // sender 2
            data.push(body.len() as u8);
            data.extend_from_slice(body);
        }
        // A fourth record, empty, makes the loop take the effects of the third.
        data.extend_from_slice(&[1, 0]);
        assert_eq!(
            super::run_deliveries(&data),
            1,
            "node 2's message reached the client"
        );
    }
}
