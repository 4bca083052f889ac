//! Turns the core's outputs into event-log lines (docs/event-log.md).

use totem_dpdk::srp::{self, Delivery, TokenObservation};
use totem_dpdk::{DeliveryKind, Instant, MsgId, NodeId, Priority, RingId, Seq};

use crate::log::{
    ConfigEvent, ConfigKind, DeliverEvent, LogEvent, Meta, SendEvent, StoredEvent, TokenEvent,
};
use crate::sim::Schedule;

/// The first line of a simulated run; `drained` is filled in at the end.
pub fn meta(schedule: &Schedule, cfg: &srp::Config) -> LogEvent {
    LogEvent::Meta(Meta {
        nodes: Some(schedule.nodes),
        window_size: Some(cfg.window_size),
        max_messages: Some(cfg.max_messages),
        max_rtr: u32::try_from(cfg.max_rtr).ok(),
        drained: None,
    })
}

/// A submit accepted by Totem.
pub fn send(
    now: Instant,
    id: MsgId,
    payload: &[u8],
    kind: DeliveryKind,
    prio: Priority,
) -> LogEvent {
    LogEvent::Send(SendEvent::new(
        now.as_nanos(),
        id.sender,
        id,
        kind,
        prio.level(),
        payload,
    ))
}

/// A delivery at `node`.
pub fn deliver(now: Instant, node: NodeId, d: &Delivery) -> LogEvent {
    LogEvent::Deliver(DeliverEvent::new(
        now.as_nanos(),
        node,
        d.id,
        d.ring,
        d.seq,
        d.kind,
        &d.payload,
    ))
}

/// A configuration change at `node`.
pub fn config(now: Instant, node: NodeId, c: &srp::ConfigChange) -> LogEvent {
    LogEvent::Config(ConfigEvent {
        t: now.as_nanos(),
        node,
        kind: match c.kind {
            srp::ConfigKind::Regular => ConfigKind::Regular,
            srp::ConfigKind::Transitional => ConfigKind::Transitional,
        },
        ring: c.ring,
        members: c.members.clone(),
        left: c.left.clone(),
        joined: c.joined.clone(),
        failed: c.failed.clone(),
    })
}

/// A frame with a safe message stored for the first time at `node`.
pub fn stored(now: Instant, node: NodeId, ring: RingId, seq: Seq) -> LogEvent {
    LogEvent::Stored(StoredEvent {
        t: now.as_nanos(),
        node,
        ring,
        seq,
    })
}

/// A token received by `node`.
pub fn token(now: Instant, node: NodeId, t: &TokenObservation) -> LogEvent {
    LogEvent::Token(TokenEvent {
        t: now.as_nanos(),
        node,
        ring: t.ring,
        token_seq: t.token_seq,
        accepted: t.accepted,
        seq: t.seq,
        aru: t.aru,
        aru_addr: t.aru_addr,
        fcc: t.fcc,
        backlog: t.backlog,
        rtr: t.rtr.clone(),
        sent_new: t.sent_new,
        sent_retrans: t.sent_retrans,
        my_backlog: t.my_backlog,
        safe: t.safe,
    })
}
