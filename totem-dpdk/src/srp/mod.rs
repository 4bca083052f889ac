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
//! 2. [`Totem::poll_timeout`], and arrange to call `handle_timeout` then (a deadline already
//!    in the past, which the core uses to ask for a prompt call, means: call it now);
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
//! # Membership
//! A node starts alone ([`MembState::Gather`]) and multicasts join messages with the set of
//! nodes it has heard of (`proc_set`) and the set it believes failed (`fail_set`); sets are
//! merged until every live node sends identical sets (consensus) or the consensus timer
//! declares the silent ones failed. The smallest live node then creates the commit token,
//! whose first rotation collects each member's old ring, all-received-up-to point and highest
//! delivered frame, and whose second moves every member to recovery. In recovery the members
//! of each old ring re-send, encapsulated in the new ring, the old frames some of them miss;
//! once the representative sees every member holding everything, the token carries the install
//! flag and each member installs at its visit: it delivers the old ring's frames up to the
//! first gap, the transitional configuration (old-ring members that move together), the rest
//! of the old frames from transitional members only, then the new regular configuration.
//! A lost token ([`Config::token_timeout`]), a join from a new node, a frame of a foreign
//! ring or a merge-detect announcement starts a new round. A graceful [`Totem::leave`] is
//! announced in a join, so the others do not wait for a timeout.
//! A lost token is first re-sent by the node that forwarded it (`token_retransmit`).

mod codec;
mod config;
mod event;
mod membership;
mod ordering;
mod recv_buffer;
mod ring;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use self::codec::Token;
pub use self::config::{Config, ConfigError};
pub use self::event::{
    ConfigChange, ConfigKind, Delivery, Event, FlowControl, Observation, TokenObservation,
};
use self::membership::Recovering;
use self::ring::Ring;
use crate::crypto::{
    CryptoStats, EpochKey, FrameCrypto, KeyError, OpenError, Protection, SEAL_HEADROOM,
    SEAL_TAILROOM,
};
use crate::pg::{OutgoingMessage, Packer, Reassembler};
use crate::time::Instant;
use crate::timer::{Timer, TimerTable};
use crate::types::{DeliveryKind, MsgId, NodeId, Priority, RingId, Seq};

/// Bytes per chunk of the pool of sealed outgoing frames, which nothing keeps once sent.
const TX_POOL_CHUNK: usize = 64 * 1024;

/// Where a node is in the membership protocol (Totem SRP's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias = "memb_state")]
pub enum MembState {
    /// A ring is installed and ordering messages.
    Operational,
    /// Collecting join messages until the live nodes agree on a membership.
    Gather,
    /// The commit token of a new ring is circulating.
    Commit,
    /// The new ring exchanges the old rings' missing frames before installing.
    Recovery,
    /// This node left the ring gracefully and ignores all input.
    Left,
}

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
    /// Token hold cancels sent to the representative (a message queued on an idle ring).
    pub hold_cancels_sent: u64,
    /// Token hold cancels received as representative.
    pub hold_cancels_received: u64,
    /// Tokens the representative kept until the pace (`Config::token_pace`) on a lightly
    /// loaded ring.
    pub tokens_paced: u64,
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
    /// Membership rounds started (entries into the gather state).
    pub gathers: u64,
    /// Members this node declared failed because they missed frames for `fail_recv_const`
    /// rotations (corosync's "FAILED TO RECEIVE").
    pub failed_to_receive: u64,
    /// Times the token was declared lost.
    pub token_losses: u64,
    /// Rings installed (regular configurations delivered).
    pub rings_installed: u64,
    /// Times this node found it had not run for longer than [`Config::pause_threshold`] past
    /// a deadline (its process was paused). Each time, its timers were postponed by the
    /// pause instead of firing, and membership messages were ignored for one join interval.
    /// The driver logs "process paused N ms" when this rises.
    #[doc(alias = "pause_flush")]
    pub pauses_detected: u64,
    /// How long the last detected pause was: the time between the last input before it
    /// and the first input after it.
    pub last_pause: crate::time::Duration,
    /// Join messages ignored because they arrived within one join interval of a detected pause
    /// (they were queued while the process did not run, and describe a round that is over).
    pub stale_joins_ignored: u64,
    /// Rings installed after this node had abandoned their recovery, because a join showed
    /// that another member installed them (so that both deliver the same history).
    pub late_installs: u64,
    /// Old-ring frames this node re-sent during recovery.
    pub recovery_frames_sent: u64,
    /// Old-ring frames recovered from other members' re-sends.
    pub recovery_frames_received: u64,
    /// Frames of the old ring that arrived directly during recovery, ignored.
    pub late_old_ring_frames: u64,
    /// The frame-protection layer's counters: frames sealed and opened, and the rejected
    /// ones by cause (bad CRC, bad tag = "invalid digest", unknown key epoch, replayed, too old).
    pub crypto: CryptoStats,
    /// The next nonce counter this node will use (persist a lease above it; see
    /// [`Config::nonce_start`]).
    pub next_nonce: u64,
    /// Frames that could not be sealed (nonce counter exhausted), dropped.
    pub seal_errors: u64,
}

impl dataplane::stats::Visit for Stats {
    fn visit(&self, v: &mut dyn dataplane::stats::Visitor) {
        v.counter("frames_received", self.frames_received);
        v.counter("malformed_frames", self.malformed);
        v.counter("unsupported_version_frames", self.unsupported_version);
        v.counter("foreign_ring_frames", self.foreign_ring);
        v.counter("duplicate_tokens", self.duplicate_tokens);
        v.counter("duplicate_frames", self.duplicate_frames);
        v.counter("out_of_window_frames", self.out_of_window);
        v.counter("tokens_accepted", self.tokens_accepted);
        v.counter("hold_cancels_sent", self.hold_cancels_sent);
        v.counter("hold_cancels_received", self.hold_cancels_received);
        v.counter("tokens_paced", self.tokens_paced);
        v.counter("token_retransmits", self.token_retransmits);
        v.counter("frames_retransmitted", self.frames_retransmitted);
        v.counter("retransmit_requests", self.retransmit_requests);
        v.counter("frames_sent", self.frames_sent);
        v.counter("messages_delivered", self.messages_delivered);
        v.counter("reassembly_errors", self.reassembly_errors);
        v.counter("backpressure", self.backpressure);
        v.counter("gathers", self.gathers);
        v.counter("failed_to_receive", self.failed_to_receive);
        v.counter("token_losses", self.token_losses);
        v.counter("rings_installed", self.rings_installed);
        v.counter("pauses_detected", self.pauses_detected);
        v.gauge("last_pause_ms", self.last_pause.as_millis());
        v.counter("stale_joins_ignored", self.stale_joins_ignored);
        v.counter("late_installs", self.late_installs);
        v.counter("recovery_frames_sent", self.recovery_frames_sent);
        v.counter("recovery_frames_received", self.recovery_frames_received);
        v.counter("late_old_ring_frames", self.late_old_ring_frames);
        self.crypto.visit(v);
        v.gauge("next_nonce", self.next_nonce);
        v.counter("seal_errors", self.seal_errors);
    }
}

/// One node of a Totem ring. See the [module documentation](self) for the calling contract.
#[derive(Debug)]
pub struct Totem {
    cfg: Config,
    me: NodeId,
    state: MembState,
    /// The installed ring; during recovery, the ring being formed (the installed one is in
    /// `recovering`).
    ring: Ring,
    recovering: Option<Recovering>,
    /// The last recovery this node abandoned (the new ring and its transitional members),
    /// kept until another recovery starts: if a member of that ring turns out to have
    /// installed it, this node installs it too (see `late_install`).
    abandoned: Option<(Ring, Vec<NodeId>)>,

    /// Highest ring sequence number seen or used.
    max_ring_seq: u64,
    proc_set: BTreeSet<NodeId>,
    fail_set: BTreeSet<NodeId>,
    /// Nodes whose join carried exactly this node's current sets.
    consensus: BTreeSet<NodeId>,
    /// Nodes whose joins arrived in this consensus period, agreeing or not: alive.
    heard: BTreeSet<NodeId>,
    /// Consecutive consensus timeouts at which every missing node was alive but disagreeing.
    disagreed_timeouts: u8,
    /// Nodes that announced a graceful leave since the last installation.
    departed: BTreeSet<NodeId>,
    /// The ring this node committed to in the commit state.
    commit_ring: Option<RingId>,
    /// `token_seq` of the last commit token accepted, with its ring.
    last_commit: Option<(RingId, u64)>,

    reassembler: Reassembler,
    packer: Packer,
    queued_messages: usize,
    queued_bytes: usize,
    blocked: bool,
    next_msg_no: u64,

    timers: TimerTable,
    /// Time of the last input (`handle_frame`, `handle_timeout`, construction).
    last_input: Instant,
    /// Joins arriving before this time are ignored: they were queued during a pause.
    stale_joins_until: Option<Instant>,
    /// [`Event::Gather`] was said since the last installed ring.
    gather_said: bool,
    /// A pause was detected: the next token visit stamps no new message (the token may be one
    /// queued during the pause, of a ring the others have left).
    quiet_visit: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,

    /// Seals outgoing frames and opens incoming ones.
    crypto: FrameCrypto,
    /// Largest plaintext frame (with its integrity trailer): `max_frame_size` less what the
    /// protection adds beyond the trailer.
    frame_budget: usize,
    /// Buffers of received frames: each is opened where it lies and its data frame kept as
    /// slices of it (chunks of a few frames: a delivered message keeps its chunk alive).
    rx_pool: codec::BufPool,
    /// Buffers of sealed outgoing frames (dropped once sent: large chunks).
    tx_pool: codec::BufPool,
    /// Buffers of data frames being built (stored and delivered here too: small chunks).
    frame_pool: codec::BufPool,
    /// Why the last frame given to `handle_frame` was refused by the protection layer.
    last_open_error: Option<OpenError>,
}

impl Totem {
    /// A node described by `cfg`, started at `now`. With an empty [`Config::members`] it starts
    /// alone and gathers (the normal start); with a member list it starts in that ring, whose
    /// regular configuration is the first event and whose representative sends the first token.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(cfg: Config, now: Instant) -> Result<Totem, ConfigError> {
        cfg.validate()?;
        let me = cfg.node_id;
        let window = cfg.receive_window;
        let crypto = FrameCrypto::new(cfg.protection, me, cfg.key.clone(), cfg.nonce_start)
            .map_err(ConfigError::Key)?;
        let frame_budget = cfg.max_frame_size - (crypto.overhead() - codec::TRAILER_LEN);
        let mut totem = Totem {
            me,
            state: MembState::Gather,
            ring: Ring::none(me, window),
            recovering: None,
            abandoned: None,
            max_ring_seq: cfg.ring_seq,
            proc_set: BTreeSet::new(),
            fail_set: BTreeSet::new(),
            consensus: BTreeSet::new(),
            heard: BTreeSet::new(),
            disagreed_timeouts: 0,
            departed: BTreeSet::new(),
            commit_ring: None,
            last_commit: None,
            reassembler: Reassembler::new(cfg.max_message_size),
            packer: Packer::new(),
            queued_messages: 0,
            queued_bytes: 0,
            blocked: false,
            next_msg_no: cfg.first_msg_no.max(1),
            timers: TimerTable::default(),
            last_input: now,
            stale_joins_until: None,
            gather_said: false,
            quiet_visit: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats {
                next_nonce: crypto.next_counter(),
                ..Stats::default()
            },
            crypto,
            frame_budget,
            rx_pool: codec::BufPool::for_frames(cfg.max_frame_size),
            tx_pool: codec::BufPool::new(TX_POOL_CHUNK),
            frame_pool: codec::BufPool::for_frames(frame_budget),
            last_open_error: None,
            cfg,
        };
        if totem.cfg.members.is_empty() {
            totem.enter_gather(now);
        } else {
            let seq = totem.cfg.ring_seq.max(4);
            let members = totem.cfg.members.clone();
            let rep = *members.iter().min().expect("validated: not empty");
            totem.max_ring_seq = seq;
            totem.ring = Ring::new(RingId { seq, rep }, members.clone(), me, window);
            totem.state = MembState::Operational;
            totem.proc_set = members.iter().copied().collect();
            totem.stats.rings_installed += 1;
            totem.events.push_back(Event::ConfigChange(ConfigChange {
                kind: ConfigKind::Regular,
                ring: totem.ring.id,
                members: totem.ring.members.clone(),
                left: Vec::new(),
                joined: totem.ring.members.clone(),
                failed: Vec::new(),
            }));
            totem
                .timers
                .set(Timer::TokenLoss, now + totem.cfg.token_timeout);
            if totem.ring.is_rep {
                totem
                    .timers
                    .set(Timer::MergeDetect, now + totem.cfg.merge_timeout);
                totem.visit(now, Token::initial(totem.ring.id));
            }
        }
        Ok(totem)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// Where this node is in the membership protocol.
    pub fn state(&self) -> MembState {
        self.state
    }

    /// The installed ring (during recovery, still the old one).
    pub fn ring_id(&self) -> RingId {
        self.recovering.as_ref().map_or(self.ring.id, |r| r.old.id)
    }

    /// The installed ring's members, ascending.
    pub fn members(&self) -> &[NodeId] {
        self.recovering
            .as_ref()
            .map_or(&self.ring.members, |r| &r.old.members)
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

    /// Highest sequence number delivered on the current ring.
    pub fn delivered(&self) -> Seq {
        self.ring.delivered
    }

    /// True when the ring is installed, nothing is queued, and everything received was
    /// delivered.
    pub fn is_idle(&self) -> bool {
        self.state == MembState::Operational
            && self.queued_messages == 0
            && self.ring.delivered == self.ring.recv.high()
    }

    /// Queues a message for ordered delivery to every member, itself included. Messages
    /// submitted during a membership change wait and go out on the new ring.
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
        // The byte bound keeps the queueing delay bounded under saturation; a message larger
        // than the whole bound is still taken when nothing else is queued.
        if self.queued_messages >= self.cfg.max_queued_messages
            || (self.queued_bytes > 0 && self.queued_bytes + size > self.cfg.max_queued_bytes)
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
        if self.ring.held.is_some() && !self.ring.paced {
            // The ring has work again: end the hold at the caller's next timeout check.
            self.timers.set(Timer::TokenHold, self.last_input);
        }
        self.request_held_token();
        Ok(MsgId {
            sender: self.me,
            no,
        })
    }

    /// Leaves the ring gracefully: tells the other members in a join message, so that they
    /// form the next ring without waiting for a timeout, and ignores all input from then on.
    /// Messages still queued are not sent.
    pub fn leave(&mut self) {
        if self.state == MembState::Left {
            return;
        }
        let mut proc: BTreeSet<NodeId> = self.members().iter().copied().collect();
        proc.insert(self.me);
        let join = crate::wire::MembJoinRepr {
            sender: self.me,
            ring_id: self.ring_id(),
            max_ring_seq: self.max_ring_seq,
            leaving: true,
            proc_set: proc.into_iter().collect(),
            fail_set: Vec::new(),
        };
        let frame = codec::encode_join(&join);
        // Twice, so one lost datagram does not turn the leave into a timeout.
        self.transmits.push_back(Transmit {
            dest: Dest::Ring,
            frame: frame.clone(),
        });
        self.transmits.push_back(Transmit {
            dest: Dest::Ring,
            frame,
        });
        self.state = MembState::Left;
        self.timers.clear();
    }

    /// Processes one frame received at `now`. Malformed, foreign, duplicate, stale, forged,
    /// tampered and replayed frames are counted in [`Stats`] (the last three in
    /// [`Stats::crypto`]) and otherwise ignored; this never panics on any input.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.stats.frames_received += 1;
        self.last_open_error = None;
        if self.state == MembState::Left {
            return;
        }
        self.detect_pause(now);
        if self.crypto.protection() == Protection::Integrity {
            // The CRC is checked where the frame lies; a data frame's body is copied once,
            // into a pooled buffer, to be stored.
            let decoded = codec::decode(frame);
            self.dispatch(now, decoded, |pool, len| pool.copy(&frame[..len]));
            return;
        }
        // One copy into a pooled buffer, opened there; a data frame is stored as a slice of it.
        let mut buf = self.rx_pool.take(frame.len());
        buf.extend_from_slice(frame);
        let opened = self.crypto.open_in_place(&mut buf);
        self.stats.crypto = self.crypto.stats().clone();
        match opened {
            Ok((_, range)) => {
                let plain = buf.freeze().slice(range);
                let decoded = codec::decode_body(&plain);
                self.dispatch(now, decoded, move |_, len| plain.slice(..len));
            }
            Err(e) => self.last_open_error = Some(e),
        }
    }

    /// Acts on a decoded frame; `body` gives a data frame's body (its first `len` bytes)
    /// to store.
    fn dispatch(
        &mut self,
        now: Instant,
        decoded: Result<codec::Decoded, codec::DecodeError>,
        body: impl FnOnce(&mut codec::BufPool, usize) -> Bytes,
    ) {
        match decoded {
            Ok(codec::Decoded::Token(token)) => self.on_token(now, token),
            Ok(codec::Decoded::Mcast(header, len)) => {
                let body = body(&mut self.rx_pool, len);
                self.on_mcast(now, header, body)
            }
            Ok(codec::Decoded::Join(join)) => self.on_join(now, join),
            Ok(codec::Decoded::Commit(token)) => self.on_commit_token(now, token),
            Ok(codec::Decoded::Merge(merge)) => {
                self.on_merge_detect(now, merge.sender, merge.ring_id)
            }
            Ok(codec::Decoded::HoldCancel(cancel)) => {
                self.on_hold_cancel(now, cancel.sender, cancel.ring_id)
            }
            Err(codec::DecodeError::Version) => self.stats.unsupported_version += 1,
            Err(codec::DecodeError::Malformed) => self.stats.malformed += 1,
        }
    }

    /// Why the protection layer refused the last frame given to [`Totem::handle_frame`]
    /// (`None` if it was not refused there). The driver logs "invalid digest from ADDR" with it.
    pub fn last_open_error(&self) -> Option<OpenError> {
        self.last_open_error
    }

    /// Opens frames sealed under `key` from now on, while this node still seals with its
    /// current epoch: a rekey's first step, taken by every member before any member seals
    /// with the new epoch ([`Totem::install_key`]), so that no member refuses a frame (or the
    /// token) of a member that switched before it.
    ///
    /// # Errors
    /// No crypto (secauth off), or an epoch not newer than the current one.
    pub fn accept_key(&mut self, key: EpochKey) -> Result<(), KeyError> {
        self.crypto.accept(key)
    }

    /// Makes `key` the epoch this node seals with; frames of the previous epoch are still
    /// opened until [`Totem::retire_previous_key`]. The executive calls it once every member
    /// said it accepts the epoch ([`Totem::accept_key`]).
    ///
    /// # Errors
    /// No crypto (secauth off), or an epoch not newer than the current one.
    pub fn install_key(&mut self, key: EpochKey) -> Result<(), KeyError> {
        self.crypto.install(key)
    }

    /// Stops accepting frames of the previous key epoch.
    pub fn retire_previous_key(&mut self) {
        self.crypto.retire_previous();
    }

    /// The key epoch this node seals with (`None` with secauth off).
    pub fn key_epoch(&self) -> Option<u32> {
        self.crypto.epoch()
    }

    /// The key epochs this node opens besides the one it seals with: the previous one (until
    /// retired) and the next one (accepted, not installed yet).
    pub fn other_key_epochs(&self) -> (Option<u32>, Option<u32>) {
        (self.crypto.previous_epoch(), self.crypto.next_epoch())
    }

    /// The current key (`None` with secauth off).
    pub fn current_key(&self) -> Option<&EpochKey> {
        self.crypto.current_key()
    }

    /// Fires the timers due at `now`. Harmless when none is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.detect_pause(now);
        while let Some(timer) = self.timers.expire(now) {
            match timer {
                Timer::TokenRetransmit => {
                    if let Some((to, frame)) = self.ring.last_token.clone() {
                        self.stats.token_retransmits += 1;
                        let dest = Dest::Node(to);
                        self.transmits.push_back(Transmit { dest, frame });
                        self.timers
                            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit());
                    }
                }
                Timer::TokenLoss => {
                    self.stats.token_losses += 1;
                    self.enter_gather(now);
                }
                Timer::Join => {
                    if matches!(self.state, MembState::Gather | MembState::Commit) {
                        self.send_join();
                        self.timers.set(Timer::Join, now + self.cfg.join_timeout);
                    }
                }
                Timer::Consensus => self.on_consensus_timeout(now),
                Timer::TokenHold => self.release_token(now),
                Timer::MergeDetect => {
                    if self.state == MembState::Operational && self.ring.is_rep {
                        let merge = crate::wire::MergeDetectRepr {
                            sender: self.me,
                            ring_id: self.ring.id,
                        };
                        let frame = codec::encode_merge(&merge);
                        self.transmits.push_back(Transmit {
                            dest: Dest::Ring,
                            frame,
                        });
                        self.timers
                            .set(Timer::MergeDetect, now + self.cfg.merge_timeout);
                    }
                }
            }
        }
    }

    /// Notices that this node's process did not run: an input comes more than
    /// [`Config::pause_threshold`] after the earliest deadline the core asked to be called at.
    /// The timers that expired meanwhile measured a span in which this node could observe
    /// nothing, so they are postponed by the whole gap instead of firing (no token loss,
    /// consensus timeout or failure declared from a stale view); a gather in progress starts
    /// its agreement again; and the join messages queued while it did not run, which describe
    /// a round the others may have finished, are ignored for one join interval (the live ones
    /// are re-sent every join interval). The next token visit stamps no new message: the token
    /// may have waited in the socket while the others formed a ring without this node, and a
    /// message stamped on it would be delivered here in a configuration the others left
    /// (legal in extended virtual synchrony, but a message lost to them). If the ring is
    /// still alive, the next rotation carries it.
    fn detect_pause(&mut self, now: Instant) {
        let gap = now.saturating_since(self.last_input);
        self.last_input = self.last_input.max(now);
        let threshold = self.cfg.pause_threshold;
        if threshold == crate::time::Duration::ZERO {
            return;
        }
        let Some(due) = self.timers.next() else {
            return;
        };
        if now.saturating_since(due) <= threshold {
            return;
        }
        self.stats.pauses_detected += 1;
        self.stats.last_pause = gap;
        self.timers.postpone(gap);
        self.stale_joins_until = Some(now + self.cfg.join_timeout);
        self.quiet_visit = true;
        if self.state == MembState::Gather {
            self.consensus.clear();
            self.send_join();
        }
    }

    /// The next frame to send, sealed by the protection layer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        loop {
            let t = self.transmits.pop_front()?;
            if self.crypto.protection() == Protection::Integrity {
                return Some(t);
            }
            // Internal frames end with the integrity trailer; the seal replaces it. The frame
            // is copied once, into a pooled buffer with room for the crypto fields and tag,
            // and sealed there (the plaintext stays stored for retransmission and delivery).
            let plain = &t.frame[..t.frame.len() - codec::TRAILER_LEN];
            if t.dest == Dest::Node(self.me) {
                // The token of a ring of one comes back to this node itself.
                self.crypto.expect_own(self.crypto.next_counter());
            }
            let mut buf = self
                .tx_pool
                .take(SEAL_HEADROOM + plain.len() + SEAL_TAILROOM);
            buf.extend_from_slice(&[0; SEAL_HEADROOM]);
            buf.extend_from_slice(plain);
            buf.extend_from_slice(&[0; SEAL_TAILROOM]);
            let dest = match t.dest {
                Dest::Ring => None,
                Dest::Node(n) => Some(n),
            };
            let sealed = self.crypto.seal_in_place(&mut buf, plain.len(), dest);
            self.stats.next_nonce = self.crypto.next_counter();
            self.stats.crypto = self.crypto.stats().clone();
            match sealed {
                Ok(wire) => {
                    return Some(Transmit {
                        dest: t.dest,
                        frame: buf.freeze().slice(wire),
                    });
                }
                Err(_) => self.stats.seal_errors += 1,
            }
        }
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
        cfg.ring_seq = 4;
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
                node.ring.delivered <= node.ring.recv.aru(),
                "delivered past the received prefix"
            );
            assert!(node.ring.recv.aru() <= node.ring.recv.high());
        }
        assert_eq!(node.stats().frames_received, fed, "every frame is counted");
    }
}
