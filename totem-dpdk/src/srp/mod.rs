//! The Totem single-ring ordering protocol (Totem SRP) as a sans-IO state machine.
//!
//! [`Totem`] owns no socket, thread, clock or random source. The caller feeds it inputs and
//! drains its outputs; the same code runs under the real driver and under the seeded simulator.
//!
//! # Calling contract
//! Inputs:
//! - [`Totem::handle_frame`]: a frame received from the network, with the arrival time;
//! - [`Totem::handle_timeout`]: the time has reached (or passed) [`Totem::poll_timeout`];
//!   calling it early is harmless (a no-op);
//! - [`Totem::submit`]: a message from a local application.
//!
//! After **every** input, drain the outputs in this order:
//! 1. [`Totem::poll_transmit`] until `None`, sending each frame to its destination;
//! 2. [`Totem::poll_timeout`], and arrange to call `handle_timeout` then;
//! 3. [`Totem::poll_event`] until `None`: deliveries, configuration changes, flow control.
//!
//! # Ordering (what happens when the token visits)
//! The ORF token circulates in ascending node-id order. On each visit a node: re-sends frames
//! others asked for in the token's retransmit list; asks for frames it is missing that were
//! stamped at least one rotation ago; stamps new frames with `token.seq + 1, +2, …` within its
//! flow-control budget (`max_messages` per visit, `window_size` per rotation, and a share of
//! the window proportional to its backlog when the ring is congested); updates `aru`/`aru_addr`,
//! `fcc` and `backlog`; and forwards the token to the next member. Frames are delivered in
//! sequence order with no gaps (agreed delivery).
//!
//! # Safe delivery
//! The token also carries `rot_min`, a running minimum of the members' all-received-up-to
//! points over one rotation that starts and ends at the representative, and `safe`, the last
//! complete rotation's minimum. Every member held every frame up to `safe` when the token
//! passed it, so a frame carrying a safe message is delivered only once its sequence number is
//! at or below `safe`, and frames are freed only up to `min(safe, delivered)`: no member can
//! still need them. (corosync carries a `guarantee` field but never implemented safe delivery.)
//!
//! # Limits of this version
//! The membership is static (from [`Config::members`]): there is no token-loss detection,
//! gather, commit or recovery yet. A lost token is re-sent by the node that forwarded it.

mod codec;
mod config;
mod event;
mod recv_buffer;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use bytes::Bytes;

use self::codec::Token;
pub use self::config::{Config, ConfigError};
pub use self::event::{
    ConfigChange, ConfigKind, Delivery, Event, FlowControl, Observation, TokenObservation,
};
use self::recv_buffer::{Insert, RecvBuffer, Stored};
use crate::pg::{OutgoingMessage, Packer, Reassembler};
use crate::time::Instant;
use crate::timer::{Timer, TimerTable};
use crate::types::{DeliveryKind, MsgId, NodeId, Priority, RingId, Seq};

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// Every member of the ring (multicast, or one unicast per member).
    Ring,
    /// One node (the token's next hop).
    Node(NodeId),
}

/// A frame to send, from [`Totem::poll_transmit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dest: Dest,
    /// The whole frame.
    pub frame: Bytes,
}

/// Why a submit was refused. Nothing is queued when an error is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The send queues are full: try again after a [`FlowControl::Clear`] event (the AIS
    /// client sees `SA_AIS_ERR_TRY_AGAIN`).
    #[error("send queue full: try again later")]
    Backpressure,
    /// The message is larger than `max_message_size`.
    #[error("message of {size} bytes exceeds max_message_size ({max} bytes)")]
    TooLarge {
        /// Size of the refused message.
        size: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Counters of everything the core dropped, repaired or refused. Remote input never panics
/// and never propagates an error: it is counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Frames given to `handle_frame`.
    pub frames_received: u64,
    /// Frames that failed to parse (bad magic, version, type, truncated or inconsistent).
    pub malformed: u64,
    /// Frames of a protocol version this node does not speak.
    pub unsupported_version: u64,
    /// Frames of another ring.
    pub foreign_ring: u64,
    /// Tokens with an old or repeated `token_seq`, discarded.
    pub duplicate_tokens: u64,
    /// Data frames already held or delivered, discarded.
    pub duplicate_frames: u64,
    /// Data frames too far ahead of this node's receive window, discarded.
    pub out_of_window: u64,
    /// Tokens accepted.
    pub tokens_accepted: u64,
    /// Times this node re-sent a token it had forwarded.
    pub token_retransmits: u64,
    /// Frames re-sent on other members' request.
    pub frames_retransmitted: u64,
    /// Retransmit requests this node added to the token.
    pub retransmit_requests: u64,
    /// Frames this node stamped.
    pub frames_sent: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Message chunks that could not be reassembled (counted, the message is dropped).
    pub reassembly_errors: u64,
    /// Submits refused with backpressure.
    pub backpressure: u64,
}

/// One node of a Totem ring. See the [module documentation](self) for the calling contract.
#[derive(Debug)]
pub struct Totem {
    cfg: Config,
    ring: RingId,
    members: Vec<NodeId>,
    next: NodeId,
    is_rep: bool,

    /// `token_seq` of the last token accepted.
    my_token_seq: u64,
    /// The last token forwarded, kept for retransmission until the ring shows progress.
    last_token: Option<Bytes>,
    /// `token.seq` as forwarded at this node's last visit.
    last_visit_seq: Seq,
    /// Frames this node sent at its last visit (its share of `token.fcc`).
    my_last_sent: u32,
    /// Backlog this node reported at its last visit (its share of `token.backlog`).
    my_last_backlog: u32,

    recv: RecvBuffer,
    delivered: Seq,
    safe: Seq,
    reassembler: Reassembler,

    packer: Packer,
    queued_messages: usize,
    queued_bytes: usize,
    blocked: bool,
    next_msg_no: u64,

    timers: TimerTable,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Totem {
    /// A node of the static ring described by `cfg`, started at `now`. The first events are
    /// the ring's regular configuration; the representative (smallest id) also sends the first
    /// token.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(cfg: Config, now: Instant) -> Result<Totem, ConfigError> {
        cfg.validate()?;
        let mut members = cfg.members.clone();
        members.sort();
        let me = cfg.node_id;
        let index = members
            .iter()
            .position(|m| *m == me)
            .expect("validated: a member");
        let next = members[(index + 1) % members.len()];
        let ring = RingId {
            seq: cfg.ring_seq,
            rep: members[0],
        };
        let mut totem = Totem {
            ring,
            next,
            is_rep: index == 0,
            my_token_seq: 0,
            last_token: None,
            last_visit_seq: Seq::ZERO,
            my_last_sent: 0,
            my_last_backlog: 0,
            recv: RecvBuffer::new(cfg.receive_window),
            delivered: Seq::ZERO,
            safe: Seq::ZERO,
            reassembler: Reassembler::new(cfg.max_message_size),
            packer: Packer::new(),
            queued_messages: 0,
            queued_bytes: 0,
            blocked: false,
            next_msg_no: 1,
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            members: members.clone(),
            cfg,
        };
        totem.events.push_back(Event::ConfigChange(ConfigChange {
            kind: ConfigKind::Regular,
            ring,
            members: members.clone(),
            left: Vec::new(),
            joined: members,
        }));
        if totem.is_rep {
            let token = Token::initial(ring);
            totem.visit(now, token);
        }
        Ok(totem)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    /// The current ring.
    pub fn ring_id(&self) -> RingId {
        self.ring
    }

    /// The current ring's members, ascending.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Messages waiting in the send queues (all priorities, including one partly sent).
    pub fn queued_messages(&self) -> usize {
        self.queued_messages
    }

    /// Highest sequence number delivered.
    pub fn delivered(&self) -> Seq {
        self.delivered
    }

    /// True when nothing is queued, everything received was delivered, and every frame of the
    /// ring is known to be held by every member (the ring is quiescent for this node).
    pub fn is_idle(&self) -> bool {
        self.queued_messages == 0 && self.delivered == self.recv.high()
    }

    /// Queues a message for ordered delivery to every member, itself included.
    ///
    /// # Errors
    /// [`SubmitError::TooLarge`] above `max_message_size`; [`SubmitError::Backpressure`] when
    /// the send queues are full (a [`FlowControl::Blocked`] event is emitted once, and
    /// [`FlowControl::Clear`] when they have drained).
    pub fn submit(
        &mut self,
        prio: Priority,
        kind: DeliveryKind,
        payload: Bytes,
    ) -> Result<MsgId, SubmitError> {
        let size = payload.len();
        if size > self.cfg.max_message_size {
            return Err(SubmitError::TooLarge {
                size,
                max: self.cfg.max_message_size,
            });
        }
        if self.queued_messages >= self.cfg.max_queued_messages
            || self.queued_bytes + size > self.cfg.max_queued_bytes
        {
            self.stats.backpressure += 1;
            if !self.blocked {
                self.blocked = true;
                self.events
                    .push_back(Event::FlowControl(FlowControl::Blocked));
            }
            return Err(SubmitError::Backpressure);
        }
        let no = self.next_msg_no;
        self.next_msg_no += 1;
        self.packer
            .push(prio, OutgoingMessage::new(no, kind, payload));
        self.queued_messages += 1;
        self.queued_bytes += size;
        Ok(MsgId {
            sender: self.cfg.node_id,
            no,
        })
    }

    /// Processes one frame received at `now`. Malformed, foreign, duplicate and stale frames
    /// are counted in [`Stats`] and otherwise ignored; this never panics on any input.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.stats.frames_received += 1;
        match codec::decode(frame) {
            Ok(codec::Decoded::Token(token)) => self.on_token(now, token),
            Ok(codec::Decoded::Mcast(mcast)) => self.on_mcast(mcast, frame),
            Err(codec::DecodeError::Version) => self.stats.unsupported_version += 1,
            Err(codec::DecodeError::Malformed) => self.stats.malformed += 1,
        }
    }

    /// Fires the timers due at `now`. Harmless when none is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.expire(now) {
            match timer {
                Timer::TokenRetransmit => {
                    if let Some(frame) = self.last_token.clone() {
                        self.stats.token_retransmits += 1;
                        self.transmits.push_back(Transmit {
                            dest: Dest::Node(self.next),
                            frame,
                        });
                        self.timers
                            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit());
                    }
                }
            }
        }
    }

    /// The next frame to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When to call [`Totem::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn on_token(&mut self, now: Instant, token: Token) {
        if token.ring_id != self.ring {
            self.stats.foreign_ring += 1;
            return;
        }
        if token.token_seq <= self.my_token_seq {
            self.stats.duplicate_tokens += 1;
            if self.cfg.observe {
                self.observe_token(&token, false, 0, 0);
            }
            return;
        }
        self.visit(now, token);
    }

    /// One token visit: retransmit, request, stamp, account, forward, deliver, free.
    fn visit(&mut self, now: Instant, mut token: Token) {
        let me = self.cfg.node_id;
        self.stats.tokens_accepted += 1;
        self.my_token_seq = token.token_seq;
        self.timers.stop(Timer::TokenRetransmit);
        self.last_token = None;
        self.safe = self.safe.max(token.safe);

        // Retransmit what others asked for and this node holds, within the visit's budget.
        let fcc_others = token.fcc.saturating_sub(self.my_last_sent);
        let budget = self
            .cfg
            .max_messages
            .min(self.cfg.window_size.saturating_sub(fcc_others));
        let mut sent_retrans = 0u32;
        let recv = &self.recv;
        let transmits = &mut self.transmits;
        token.rtr.retain(|seq| {
            if sent_retrans >= budget {
                return true;
            }
            match recv.get(*seq) {
                Some(stored) => {
                    transmits.push_back(Transmit {
                        dest: Dest::Ring,
                        frame: stored.bytes.clone(),
                    });
                    sent_retrans += 1;
                    false
                }
                None => true,
            }
        });
        self.stats.frames_retransmitted += u64::from(sent_retrans);

        // Ask for frames missing since before the previous visit: anything newer may still be
        // in flight behind the token.
        let room = self.cfg.max_rtr.saturating_sub(token.rtr.len());
        let wanted: Vec<Seq> = self
            .recv
            .missing(self.last_visit_seq.min(token.seq), self.cfg.max_rtr)
            .filter(|s| !token.rtr.contains(s))
            .take(room)
            .collect();
        self.stats.retransmit_requests += wanted.len() as u64;
        token.rtr.extend(wanted);

        // Stamp new frames.
        let mut allowed = budget - sent_retrans;
        let my_backlog = u32::try_from(self.queued_messages).unwrap_or(u32::MAX);
        let total_backlog = token.backlog.saturating_sub(self.my_last_backlog) + my_backlog;
        if total_backlog > self.cfg.window_size && my_backlog > 0 {
            let share =
                u64::from(self.cfg.window_size) * u64::from(my_backlog) / u64::from(total_backlog);
            allowed = allowed.min(u32::try_from(share).unwrap_or(u32::MAX).max(1));
        }
        // Never run further ahead of what every member holds than receivers will buffer.
        let horizon = (self.safe.0 + self.cfg.receive_window / 2).saturating_sub(token.seq.0);
        allowed = allowed.min(u32::try_from(horizon).unwrap_or(u32::MAX));
        let mut sent_new = 0u32;
        while sent_new < allowed {
            let seq = token.seq.next();
            let Some(stored) = self.build_frame(seq) else {
                break;
            };
            token.seq = seq;
            self.transmits.push_back(Transmit {
                dest: Dest::Ring,
                frame: stored.bytes.clone(),
            });
            if stored.safe && self.cfg.observe {
                self.events.push_back(Event::Observe(Observation::Stored {
                    ring: self.ring,
                    seq,
                }));
            }
            let inserted = self.recv.insert(seq, stored);
            debug_assert_eq!(inserted, Insert::New, "a freshly stamped frame is new");
            sent_new += 1;
        }
        self.stats.frames_sent += u64::from(sent_new);

        // Flow-control accounting: replace this node's previous contribution with this one.
        let sent = sent_new + sent_retrans;
        token.fcc = fcc_others + sent;
        self.my_last_sent = sent;
        let backlog_now = u32::try_from(self.queued_messages).unwrap_or(u32::MAX);
        token.backlog = token.backlog.saturating_sub(self.my_last_backlog) + backlog_now;
        self.my_last_backlog = backlog_now;

        // All-received-up-to, as in Totem SRP.
        let my_aru = self.recv.aru();
        if my_aru < token.aru || token.aru_addr == me || !token.aru_addr.is_some() {
            token.aru = my_aru;
            token.aru_addr = if my_aru == token.seq {
                NodeId::NONE
            } else {
                me
            };
        }

        // Safe point: the representative closes one rotation's minimum and opens the next.
        if self.is_rep {
            token.safe = token.safe.max(token.rot_min);
            token.rot_min = my_aru;
        } else {
            token.rot_min = token.rot_min.min(my_aru);
        }
        self.safe = self.safe.max(token.safe);

        token.token_seq += 1;
        self.last_visit_seq = token.seq;
        if self.cfg.observe {
            self.observe_token(&token, true, sent_new, sent_retrans);
        }
        let frame = codec::encode_token(me, &token);
        self.transmits.push_back(Transmit {
            dest: Dest::Node(self.next),
            frame: frame.clone(),
        });
        self.last_token = Some(frame);
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit());

        self.deliver();
        self.recv.free_through(self.safe.min(self.delivered));
        if self.blocked
            && self.queued_messages <= self.cfg.max_queued_messages / 2
            && self.queued_bytes <= self.cfg.max_queued_bytes / 2
        {
            self.blocked = false;
            self.events
                .push_back(Event::FlowControl(FlowControl::Clear));
        }
    }

    fn on_mcast(&mut self, mcast: codec::McastHeader, frame: &[u8]) {
        if mcast.ring != self.ring {
            self.stats.foreign_ring += 1;
            return;
        }
        let stored = Stored {
            bytes: Bytes::copy_from_slice(frame),
            safe: mcast.safe,
        };
        match self.recv.insert(mcast.seq, stored) {
            Insert::New => {
                if mcast.safe && self.cfg.observe {
                    let ring = self.ring;
                    self.events.push_back(Event::Observe(Observation::Stored {
                        ring,
                        seq: mcast.seq,
                    }));
                }
            }
            Insert::Duplicate => self.stats.duplicate_frames += 1,
            Insert::OutOfWindow => self.stats.out_of_window += 1,
        }
        // A frame stamped after this node's last visit proves the next node got the token.
        if self.last_token.is_some() && mcast.seq > self.last_visit_seq {
            self.last_token = None;
            self.timers.stop(Timer::TokenRetransmit);
        }
        self.deliver();
    }

    /// Packs queued messages into the frame with sequence number `seq`; `None` when nothing
    /// is queued.
    fn build_frame(&mut self, seq: Seq) -> Option<Stored> {
        if self.queued_messages == 0 {
            return None;
        }
        let (bytes, packed) = codec::build_mcast(
            self.cfg.node_id,
            self.ring,
            seq,
            self.cfg.max_frame_size,
            &mut self.packer,
        )?;
        self.queued_bytes -= packed.payload_bytes;
        self.queued_messages = (0..Priority::LEVELS as u8)
            .filter_map(Priority::new)
            .map(|p| self.packer.queued(p))
            .sum::<usize>()
            + usize::from(self.packer.in_progress().is_some());
        Some(Stored {
            bytes,
            safe: packed.safe,
        })
    }

    /// Delivers frames in sequence order while they are received and, for frames carrying a
    /// safe message, held by every member.
    fn deliver(&mut self) {
        loop {
            let seq = self.delivered.next();
            if seq > self.recv.aru() {
                return;
            }
            let stored = self
                .recv
                .get(seq)
                .expect("frames above `delivered` are never freed");
            if stored.safe && seq > self.safe {
                return;
            }
            let bytes = stored.bytes.clone();
            self.delivered = seq;
            let ring = self.ring;
            let result = codec::for_each_message(&bytes, &mut self.reassembler, |m| {
                self.events.push_back(Event::Deliver(Delivery {
                    id: m.id,
                    ring,
                    seq,
                    kind: m.kind,
                    payload: m.payload,
                }));
                self.stats.messages_delivered += 1;
            });
            self.stats.reassembly_errors += result.errors;
        }
    }

    /// The `srp_handle_frame` fuzz target: `data` is a series of frame bodies, each preceded
    /// by its length as a big-endian u16. Each body gets a valid integrity trailer (so the
    /// parsers and the state machine, not the checksum, see the bytes) and is fed to node 2 of
    /// a 3-node ring, with time advancing and timers firing in between.
    ///
    /// # Panics
    /// If the core panics, or breaks one of its own invariants: nothing delivered that was not
    /// received, nothing freed that was not delivered, every input counted.
    pub fn fuzz_handle_frames(data: &[u8]) {
        let members = vec![NodeId(1), NodeId(2), NodeId(3)];
        let mut cfg = Config::new(NodeId(2), members);
        cfg.observe = true;
        cfg.max_frame_size = 9000;
        let mut node = Totem::new(cfg, Instant(0)).expect("valid config");
        let mut rest = data;
        let mut fed = 0u64;
        let mut now = Instant(0);
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            let mut frame = bytes::BytesMut::from(&rest[2..2 + len]);
            rest = &rest[2 + len..];
            codec::append_trailer(&mut frame);
            now = now + crate::time::Duration::from_micros(50);
            node.handle_frame(now, &frame);
            fed += 1;
            if let Some(at) = node.poll_timeout().filter(|at| *at <= now) {
                node.handle_timeout(at);
            }
            while node.poll_transmit().is_some() {}
            while node.poll_event().is_some() {}
            assert!(
                node.delivered <= node.recv.aru(),
                "delivered past the received prefix"
            );
            assert!(node.recv.aru() <= node.recv.high());
        }
        assert_eq!(node.stats().frames_received, fed, "every frame is counted");
    }

    fn observe_token(&mut self, token: &Token, accepted: bool, sent_new: u32, sent_retrans: u32) {
        self.events
            .push_back(Event::Observe(Observation::Token(TokenObservation {
                ring: token.ring_id,
                token_seq: token.token_seq,
                accepted,
                seq: token.seq,
                aru: token.aru,
                aru_addr: token.aru_addr,
                fcc: token.fcc,
                backlog: token.backlog,
                rtr: token.rtr.clone(),
                sent_new,
                sent_retrans,
                my_backlog: if accepted { self.my_last_backlog } else { 0 },
                safe: token.safe,
            })));
    }
}
