//! Ordering on the current ring: token visits, data frames, delivery.

use bytes::Bytes;

use super::codec::{self, McastHeader, Token};
use super::recv_buffer::{Insert, Stored};
use super::{
    Delivery, Dest, Event, FlowControl, MembState, Observation, TokenObservation, Totem, Transmit,
};
use crate::crypto::Protection;
use crate::time::Instant;
use crate::timer::Timer;
use crate::types::{NodeId, Priority, RingId, Seq};
use crate::wire::McastFrame;

impl Totem {
    pub(super) fn on_token(&mut self, now: Instant, token: Token) {
        if token.ring_id != self.ring.id
            || !matches!(self.state, MembState::Operational | MembState::Recovery)
        {
            self.stats.foreign_ring += 1;
            return;
        }
        if token.token_seq <= self.ring.my_token_seq {
            self.stats.duplicate_tokens += 1;
            if self.cfg.observe {
                self.observe_token(&token, false, 0, 0);
            }
            return;
        }
        self.visit(now, token);
    }

    /// One token visit: install if recovery is complete, retransmit, request, stamp, account,
    /// forward, deliver, free.
    pub(super) fn visit(&mut self, now: Instant, mut token: Token) {
        let me = self.me;
        let first_visit = token.token_seq == 0;
        // Only a token of an operational ring is paced, never the one that installs it.
        let was_operational = self.state == MembState::Operational;
        self.stats.tokens_accepted += 1;
        self.ring.my_token_seq = token.token_seq;
        self.timers.stop(Timer::TokenRetransmit);
        self.ring.last_token = None;
        self.timers
            .set(Timer::TokenLoss, now + self.cfg.token_timeout);
        self.ring.safe = self.ring.safe.max(token.safe);

        if self.state == MembState::Operational && self.failed_to_receive(&token) {
            let culprit = token.aru_addr;
            tracing::warn!(node = %me, %culprit, aru = %token.aru, seq = %token.seq, "FAILED TO RECEIVE: member misses frames for fail_recv_const rotations");
            self.stats.failed_to_receive += 1;
            self.proc_set.insert(culprit);
            self.fail_set.insert(culprit);
            self.enter_gather(now);
            return;
        }

        if self.state == MembState::Recovery {
            // The representative declares recovery complete once a whole rotation passed with
            // nothing left to re-send and every member holding every frame of the new ring.
            let queue_empty = self.recovering.as_ref().is_none_or(|r| r.queue.is_empty());
            if self.ring.is_rep
                && !first_visit
                && !token.retrans_flg
                && token.rot_min == token.seq
                && queue_empty
            {
                token.install = true;
            }
            if token.install {
                self.install(now);
            }
        }

        // Retransmit what others asked for and this node holds, within the visit's budget.
        let fcc_others = token.fcc.saturating_sub(self.ring.my_last_sent);
        let budget = self
            .cfg
            .max_messages
            .min(self.cfg.window_size.saturating_sub(fcc_others));
        let mut sent_retrans = 0u32;
        let recv = &self.ring.recv;
        let transmits = &mut self.transmits;
        let mut resent = Vec::new();
        token.rtr.retain(|seq| {
            if sent_retrans >= budget {
                return true;
            }
            match recv.get(*seq) {
                Some(stored) => {
                    resent.push(stored.bytes.clone());
                    sent_retrans += 1;
                    false
                }
                None => true,
            }
        });
        for body in resent {
            transmits.push_back(Transmit {
                dest: Dest::Ring,
                frame: codec::with_trailer(&body),
            });
        }
        self.stats.frames_retransmitted += u64::from(sent_retrans);

        // Ask for frames missing since before the previous visit: anything newer may still be
        // in flight behind the token.
        let room = self.cfg.max_rtr.saturating_sub(token.rtr.len());
        let wanted: Vec<Seq> = self
            .ring
            .recv
            .missing(self.ring.last_visit_seq.min(token.seq), self.cfg.max_rtr)
            .filter(|s| !token.rtr.contains(s))
            .take(room)
            .collect();
        self.stats.retransmit_requests += wanted.len() as u64;
        token.rtr.extend(wanted);

        // Stamp new frames: application messages, or in recovery the old ring's frames.
        let mut allowed = budget - sent_retrans;
        let my_backlog = self.backlog();
        let total_backlog = token.backlog.saturating_sub(self.ring.my_last_backlog) + my_backlog;
        if total_backlog > self.cfg.window_size && my_backlog > 0 {
            let share =
                u64::from(self.cfg.window_size) * u64::from(my_backlog) / u64::from(total_backlog);
            allowed = allowed.min(u32::try_from(share).unwrap_or(u32::MAX).max(1));
        }
        // Never run further ahead of what every member holds than receivers will buffer.
        let horizon = (self.ring.safe.0 + self.cfg.receive_window / 2).saturating_sub(token.seq.0);
        allowed = allowed.min(u32::try_from(horizon).unwrap_or(u32::MAX));
        if std::mem::take(&mut self.quiet_visit) && self.state == MembState::Operational {
            allowed = 0; // the first visit after a pause (see `detect_pause`)
        }
        let mut sent_new = 0u32;
        while sent_new < allowed {
            let seq = token.seq.next();
            let Some((frame, stored)) = self.build_frame(seq) else {
                break;
            };
            token.seq = seq;
            self.transmits.push_back(Transmit {
                dest: Dest::Ring,
                frame,
            });
            if stored.safe && self.cfg.observe {
                let ring = self.ring.id;
                self.events
                    .push_back(Event::Observe(Observation::Stored { ring, seq }));
            }
            let inserted = self.ring.recv.insert(seq, stored);
            debug_assert_eq!(inserted, Insert::New, "a freshly stamped frame is new");
            sent_new += 1;
        }
        self.stats.frames_sent += u64::from(sent_new);

        // Flow-control accounting: replace this node's previous contribution with this one.
        let sent = sent_new + sent_retrans;
        token.fcc = fcc_others + sent;
        self.ring.my_last_sent = sent;
        let backlog_now = self.backlog();
        token.backlog = token.backlog.saturating_sub(self.ring.my_last_backlog) + backlog_now;
        self.ring.my_last_backlog = backlog_now;

        // All-received-up-to, as in Totem SRP.
        let my_aru = self.ring.recv.aru();
        if my_aru < token.aru || token.aru_addr == me || !token.aru_addr.is_some() {
            token.aru = my_aru;
            token.aru_addr = if my_aru == token.seq {
                NodeId::NONE
            } else {
                me
            };
        }

        // Safe point: the representative closes one rotation's minimum and opens the next.
        if self.ring.is_rep {
            token.safe = token.safe.max(token.rot_min);
            token.rot_min = my_aru;
        } else {
            token.rot_min = token.rot_min.min(my_aru);
        }
        self.ring.safe = self.ring.safe.max(token.safe);

        // Recovery: is anyone still re-sending old frames? The representative opens the
        // rotation's answer, every member adds its own.
        let pending = self
            .recovering
            .as_ref()
            .is_some_and(|r| !r.queue.is_empty());
        token.retrans_flg = pending || (!self.ring.is_rep && token.retrans_flg);

        // Token hold: an idle ring's representative keeps the token a while. Every member
        // counts idle visits too: on an idle ring, a member that gets a message to send asks
        // the representative for the token (`submit`, token hold cancel) instead of waiting
        // for the hold to end.
        let idle = token.seq == self.ring.last_visit_seq && token.rtr.is_empty() && sent == 0;
        self.ring.idle_rotations = if idle {
            self.ring.idle_rotations + 1
        } else {
            0
        };
        self.ring.cancel_sent = false;
        let hold = self.ring.is_rep
            && self.state == MembState::Operational
            && self.ring.idle_rotations >= self.cfg.seqno_unchanged_const
            && self.queued_messages == 0
            && !std::mem::take(&mut self.ring.hold_cancelled);

        // Token pacing (`Config::token_pace`): on a lightly loaded ring (every member sent
        // all it had at its last visit, and the rotation stamped less than half the window)
        // the representative keeps the token until `token_pace` after it last passed it on.
        // A member with messages left over (a saturated ring, even of one node) is never
        // held back.
        let stamped = token.seq.0.saturating_sub(self.ring.last_visit_seq.0);
        let pace_until = self.ring.last_pass + self.cfg.token_pace;
        let pace = !hold
            && self.cfg.token_pace.0 > 0
            && self.ring.is_rep
            && was_operational
            && self.state == MembState::Operational
            && self.recovering.is_none()
            && token.rtr.is_empty()
            && stamped < u64::from(self.cfg.window_size / 2)
            && token.backlog == 0
            && now < pace_until;

        token.token_seq += 1;
        self.ring.last_visit_seq = token.seq;
        if self.cfg.observe {
            self.observe_token(&token, true, sent_new, sent_retrans);
        }
        token.sender = me;
        let frame = codec::encode_token(&token);
        let next = self.ring.next;
        if hold {
            self.ring.held = Some((next, frame));
            self.ring.paced = false;
            self.timers
                .set(Timer::TokenHold, now + self.cfg.token_hold());
        } else if pace {
            self.stats.tokens_paced += 1;
            self.ring.held = Some((next, frame));
            self.ring.paced = true;
            self.timers.set(Timer::TokenHold, pace_until);
        } else {
            self.pass_token(now, next, frame);
        }

        self.deliver();
        self.ring
            .recv
            .free_through(self.ring.safe.min(self.ring.delivered));
        if self.blocked
            && self.queued_messages <= self.cfg.max_queued_messages / 2
            && self.queued_bytes <= self.cfg.max_queued_bytes / 2
        {
            self.blocked = false;
            self.events
                .push_back(Event::FlowControl(FlowControl::Clear));
        }
    }

    /// Counts visits at which the ring's all-received-up-to point stays stuck on another
    /// member while frames are missing; true once that lasted `fail_recv_const` visits.
    fn failed_to_receive(&mut self, token: &Token) -> bool {
        let (aru, addr, count) = self.ring.stuck_aru;
        let stuck = token.aru < token.seq
            && token.aru_addr.is_some()
            && token.aru_addr != self.me
            && token.aru == aru
            && token.aru_addr == addr;
        let count = if stuck { count + 1 } else { 0 };
        self.ring.stuck_aru = (token.aru, token.aru_addr, count);
        count >= self.cfg.fail_recv_const
    }

    /// Sends the token on and keeps it for retransmission.
    pub(super) fn pass_token(&mut self, now: Instant, next: NodeId, frame: Bytes) {
        self.transmits.push_back(Transmit {
            dest: Dest::Node(next),
            frame: frame.clone(),
        });
        self.ring.last_token = Some((next, frame));
        self.ring.last_pass = now;
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit());
    }

    /// A member asks for the token (token hold cancel): release it if held, otherwise do not
    /// hold it on its next visit (the request may have crossed the token on its way here).
    pub(super) fn on_hold_cancel(&mut self, now: Instant, sender: NodeId, ring: RingId) {
        if ring != self.ring.id || !self.ring.is_rep || !self.ring.members.contains(&sender) {
            return;
        }
        self.stats.hold_cancels_received += 1;
        if self.ring.paced {
            // A paced token goes on at its time; the sender's messages travel then.
        } else if self.ring.held.is_some() {
            self.release_token(now);
        } else {
            self.ring.hold_cancelled = true;
        }
    }

    /// Member side of the token hold: called when a message is queued. If the ring was idle
    /// at this node's last token visit (so the representative may be holding the token) and
    /// no request went out since, ask the representative for the token.
    pub(super) fn request_held_token(&mut self) {
        if self.state != MembState::Operational
            || self.ring.is_rep
            || self.ring.cancel_sent
            || self.ring.idle_rotations == 0
        {
            return;
        }
        self.ring.cancel_sent = true;
        self.stats.hold_cancels_sent += 1;
        let cancel = crate::wire::TokenHoldCancelRepr {
            sender: self.me,
            ring_id: self.ring.id,
        };
        self.transmits.push_back(Transmit {
            dest: Dest::Node(self.ring.id.rep),
            frame: codec::encode_hold_cancel(&cancel),
        });
    }

    /// Ends a token hold: the token goes on now.
    pub(super) fn release_token(&mut self, now: Instant) {
        self.timers.stop(Timer::TokenHold);
        self.ring.paced = false;
        if let Some((next, frame)) = self.ring.held.take() {
            self.ring.idle_rotations = 0;
            self.pass_token(now, next, frame);
        }
    }

    /// Frames this node wants to send: old frames in recovery, queued messages otherwise.
    fn backlog(&self) -> u32 {
        let n = match &self.recovering {
            Some(r) => r.queue.len(),
            None => self.queued_messages,
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub(super) fn on_mcast(&mut self, now: Instant, header: McastHeader, body: Bytes) {
        if header.ring == self.ring.id {
            let encapsulated = header.encapsulated.then(|| body.clone());
            let stored = Stored {
                bytes: body,
                safe: header.safe,
                encapsulated: header.encapsulated,
            };
            match self.ring.recv.insert(header.seq, stored) {
                Insert::New => {
                    if header.safe && self.cfg.observe {
                        let ring = self.ring.id;
                        let seq = header.seq;
                        self.events
                            .push_back(Event::Observe(Observation::Stored { ring, seq }));
                    }
                    if let Some(bytes) = encapsulated {
                        self.recover_inner(&bytes);
                    }
                }
                Insert::Duplicate => self.stats.duplicate_frames += 1,
                Insert::OutOfWindow => self.stats.out_of_window += 1,
            }
            // A frame stamped after this node's last visit proves the next node got the token.
            if self.ring.last_token.is_some() && header.seq > self.ring.last_visit_seq {
                self.ring.last_token = None;
                self.timers.stop(Timer::TokenRetransmit);
            }
            self.deliver();
            return;
        }
        if let Some(rec) = &self.recovering
            && header.ring == rec.old.id
        {
            // A late frame of the ring being replaced. It is not kept: what each member holds
            // of the old ring was fixed when it entered recovery, and only frames every
            // transitional member can get through the recovery exchange may be delivered, so
            // that they all deliver the same old-ring messages (failure atomicity).
            self.stats.late_old_ring_frames += 1;
            return;
        }
        self.stats.foreign_ring += 1;
        self.on_foreign(now, header.sender, header.ring);
    }

    /// Packs queued messages (or, in recovery, the next old frame) into the frame with
    /// sequence number `seq`: the frame to send and what to store; `None` when nothing waits.
    fn build_frame(&mut self, seq: Seq) -> Option<(Bytes, Stored)> {
        if let Some(rec) = &mut self.recovering {
            let inner = rec.queue.pop_front()?;
            let (frame, body) = codec::build_encapsulated(self.me, self.ring.id, seq, &inner);
            self.stats.recovery_frames_sent += 1;
            return Some((
                frame,
                Stored {
                    bytes: body,
                    safe: false,
                    encapsulated: true,
                },
            ));
        }
        if self.queued_messages == 0 {
            return None;
        }
        let (frame, body, packed) = codec::build_mcast(
            codec::McastTarget {
                sender: self.me,
                ring: self.ring.id,
                seq,
                max_frame: self.frame_budget,
                crc: self.crypto.protection() == Protection::Integrity,
            },
            &mut self.packer,
            &mut self.frame_pool,
        )?;
        self.queued_bytes -= packed.payload_bytes;
        self.recount_queued();
        Some((
            frame,
            Stored {
                bytes: body,
                safe: packed.safe,
                encapsulated: false,
            },
        ))
    }

    pub(super) fn recount_queued(&mut self) {
        self.queued_messages = (0..Priority::LEVELS as u8)
            .filter_map(Priority::new)
            .map(|p| self.packer.queued(p))
            .sum::<usize>()
            + usize::from(self.packer.in_progress().is_some());
    }

    /// Delivers the installed ring's frames in sequence order while they are received and, for
    /// frames carrying a safe message, held by every member. Nothing is delivered while the
    /// next ring is being recovered: its frames wait for its regular configuration.
    pub(super) fn deliver(&mut self) {
        if self.recovering.is_some() {
            return;
        }
        loop {
            let seq = self.ring.delivered.next();
            if seq > self.ring.recv.aru() {
                return;
            }
            let stored = self
                .ring
                .recv
                .get(seq)
                .expect("frames above `delivered` are never freed");
            if stored.safe && seq > self.ring.safe {
                return;
            }
            let bytes = stored.bytes.clone();
            let encapsulated = stored.encapsulated;
            self.ring.delivered = seq;
            if !encapsulated {
                self.deliver_frame(self.ring.id, seq, &bytes);
            }
        }
    }

    /// Unpacks one frame body of `ring` and emits a delivery for each message it completes.
    pub(super) fn deliver_frame(&mut self, ring: RingId, seq: Seq, bytes: &Bytes) {
        let events = &mut self.events;
        let stats = &mut self.stats;
        let result = codec::for_each_message(bytes, &mut self.reassembler, |m| {
            events.push_back(Event::Deliver(Delivery {
                id: m.id,
                ring,
                seq,
                kind: m.kind,
                payload: m.payload,
            }));
            stats.messages_delivered += 1;
        });
        self.stats.reassembly_errors += result.errors;
    }

    /// The sender of a stored frame body.
    pub(super) fn frame_sender(bytes: &Bytes) -> NodeId {
        McastFrame::new_unchecked(&bytes[..]).sender()
    }

    pub(super) fn observe_token(
        &mut self,
        token: &Token,
        accepted: bool,
        sent_new: u32,
        sent_retrans: u32,
    ) {
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
                my_backlog: if accepted {
                    self.ring.my_last_backlog
                } else {
                    0
                },
                safe: token.safe,
            })));
    }
}
