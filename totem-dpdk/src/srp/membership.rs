//! The membership protocol: gather, commit, recovery and installation (Totem SRP section 4),
//! with extended-virtual-synchrony delivery of configuration changes.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use super::codec::{self, Token};
use super::recv_buffer::Insert;
use super::ring::Ring;
use super::{ConfigChange, ConfigKind, Dest, Event, MembState, Observation, Totem, Transmit};
use crate::time::Instant;
use crate::timer::Timer;
use crate::types::{NodeId, RingId, Seq};
use crate::wire::{CommitEntry, CommitTokenRepr, MembJoinRepr};

/// A new ring in recovery: the installed ring it replaces, and what this node re-sends.
#[derive(Debug)]
pub(crate) struct Recovering {
    /// The ring being replaced, kept whole in case this recovery fails.
    pub(crate) old: Ring,
    /// New members that come from the same old ring (the transitional configuration).
    pub(crate) trans: Vec<NodeId>,
    /// Old-ring frame bodies this node still has to re-send, encapsulated.
    pub(crate) queue: VecDeque<Bytes>,
}

impl Totem {
    /// Starts (or restarts) a membership round. A recovery in progress is abandoned: the
    /// installed ring, with everything recovered so far, stays the one to leave from.
    pub(super) fn enter_gather(&mut self, now: Instant) {
        if self.state == MembState::Left {
            return;
        }
        if let Some(rec) = self.recovering.take() {
            let new_ring = std::mem::replace(&mut self.ring, rec.old);
            self.abandoned = Some((new_ring, rec.trans));
        }
        self.proc_set.insert(self.me);
        if self.ring.is_real() {
            self.proc_set.extend(self.ring.members.iter().copied());
        }
        self.fail_set.remove(&self.me);
        if !self.gather_said {
            self.gather_said = true;
            self.events.push_back(Event::Gather);
        }
        self.state = MembState::Gather;
        self.consensus.clear();
        self.heard.clear();
        self.disagreed_timeouts = 0;
        self.commit_ring = None;
        self.ring.last_token = None;
        self.ring.held = None;
        self.ring.paced = false;
        self.timers.stop(Timer::TokenRetransmit);
        self.timers.stop(Timer::TokenLoss);
        self.timers.stop(Timer::MergeDetect);
        self.timers.stop(Timer::TokenHold);
        self.send_join();
        self.timers.set(Timer::Join, now + self.cfg.join_timeout);
        self.timers
            .set(Timer::Consensus, now + self.cfg.consensus_timeout);
        self.stats.gathers += 1;
        tracing::debug!(node = %self.me, t = now.as_nanos(), proc = ?self.proc_set, fail = ?self.fail_set, "gather");
    }

    pub(super) fn send_join(&mut self) {
        let join = MembJoinRepr {
            sender: self.me,
            ring_id: self.ring_id(),
            max_ring_seq: self.max_ring_seq,
            leaving: false,
            proc_set: self.proc_set.iter().copied().collect(),
            fail_set: self.fail_set.iter().copied().collect(),
        };
        let frame = codec::encode_join(&join);
        self.transmits.push_back(Transmit {
            dest: Dest::Ring,
            frame,
        });
    }

    /// A frame of another ring arrived: in the operational state it means a partition can be
    /// merged (or this node was left out of a newer ring), so a membership round starts.
    pub(super) fn on_foreign(&mut self, now: Instant, sender: NodeId, ring: RingId) {
        if self.state != MembState::Operational || sender == self.me {
            return;
        }
        let stranger = !self.ring.members.contains(&sender);
        if stranger || ring.seq > self.ring.id.seq {
            self.proc_set.insert(sender);
            self.enter_gather(now);
        }
    }

    pub(super) fn on_merge_detect(&mut self, now: Instant, sender: NodeId, ring: RingId) {
        if ring != self.ring.id {
            self.on_foreign(now, sender, ring);
        }
    }

    pub(super) fn on_join(&mut self, now: Instant, join: MembJoinRepr) {
        let sender = join.sender;
        if sender == self.me || self.state == MembState::Left {
            return;
        }
        tracing::trace!(node = %self.me, t = now.as_nanos(), %sender, state = ?self.state, proc = ?join.proc_set, fail = ?join.fail_set, "join");
        self.max_ring_seq = self
            .max_ring_seq
            .max(join.max_ring_seq)
            .max(join.ring_id.seq);
        if join.leaving {
            self.on_leave(now, sender);
            return;
        }
        if self.stale_joins_until.is_some_and(|until| now < until) {
            // Queued while this node did not run: a round the others may have finished.
            self.stats.stale_joins_ignored += 1;
            return;
        }
        if self.state == MembState::Gather
            && self
                .abandoned
                .as_ref()
                .is_some_and(|(ring, _)| ring.id == join.ring_id)
        {
            self.late_install(now);
        }
        if self.fail_set.contains(&sender) {
            // This round already gave up on the sender; it will form its own ring, and the two
            // merge once this round has installed (merge detection), instead of restarting
            // this round every time one of its joins arrives.
            return;
        }
        let proc: BTreeSet<NodeId> = join.proc_set.iter().copied().collect();
        let fail: BTreeSet<NodeId> = join.fail_set.iter().copied().collect();
        let counts_me = !fail.contains(&self.me);
        if !counts_me && self.ring.members.contains(&sender) && join.ring_id == self.ring.id {
            // A member of this node's ring, from that ring still, gave up on this node.
            self.events.push_back(Event::Excluded(sender));
        }
        match self.state {
            MembState::Operational => {
                if fail.contains(&self.me) {
                    // They count this node failed and will form a ring without it; the token
                    // loss that follows brings it back through a merge.
                    return;
                }
                if self.ring.members.contains(&sender) && join.ring_id.seq < self.ring.id.seq {
                    return; // a late join from a round this ring already settled
                }
                self.enter_gather(now);
            }
            MembState::Recovery if !self.ring.members.contains(&sender) => {
                // A node outside the ring being recovered (starting, restarting, back from a
                // pause or a partition): abandoning the recovery now would leave the members
                // that already installed it and those that had not with different histories.
                // It re-sends its join every join interval; the installed ring takes it up.
                return;
            }
            MembState::Commit | MembState::Recovery => {
                if proc.is_subset(&self.proc_set) && fail.is_subset(&self.fail_set) {
                    return; // a late copy of a join this round already agreed on
                }
                self.enter_gather(now);
            }
            MembState::Gather | MembState::Left => {}
        }
        self.heard.insert(sender);
        if counts_me {
            self.events.push_back(Event::Heard(sender));
        }
        if proc == self.proc_set && fail == self.fail_set {
            self.consensus.insert(sender);
        } else if proc.is_subset(&self.proc_set) && fail.is_subset(&self.fail_set) {
            return; // the sender knows less; it will catch up from this node's joins
        } else {
            // A member of this node's ring that comes from it still (not from a ring formed
            // since without this node, in a partition say) shares its history: its verdicts
            // are taken over whole.
            let member = self.ring.members.contains(&sender) && join.ring_id == self.ring.id;
            let before = (self.proc_set.len(), self.fail_set.len());
            self.proc_set.extend(proc.iter().copied());
            if fail.contains(&self.me) {
                self.fail_set.insert(sender);
            } else if member {
                self.fail_set.extend(fail.iter().copied());
            } else {
                // A node from outside this node's ring (back from a pause, a restart or a
                // partition), or a member that has installed another ring since, judged with
                // a view this node does not share: its verdict on members of this ring is not
                // taken over; they answer for themselves.
                let ring = &self.ring.members;
                self.fail_set
                    .extend(fail.iter().copied().filter(|n| !ring.contains(n)));
            }
            self.fail_set.remove(&self.me);
            if (self.proc_set.len(), self.fail_set.len()) == before {
                // Nothing taken over (a verdict on this ring's members from outside it): the
                // round goes on, without restarting its consensus timer on every such join.
                return;
            }
            self.consensus.clear();
            if proc == self.proc_set && fail == self.fail_set {
                // Taken over whole: the sender already holds the sets this node now sends.
                self.consensus.insert(sender);
            }
            self.send_join();
            self.timers
                .set(Timer::Consensus, now + self.cfg.consensus_timeout);
        }
        self.check_consensus(now);
    }

    /// A member of the ring whose recovery this node abandoned has installed that ring (its
    /// join names it): the representative set the install flag only once every member held
    /// every frame, so this node holds all it needs and installs the ring now, delivering what
    /// the others delivered (the old ring's messages, the same transitional configuration,
    /// the regular configuration). Without it the two would go on with different histories:
    /// the others one configuration longer, and safe messages they delivered in the
    /// transitional configuration missing here. The round in progress goes on, from the
    /// installed ring.
    fn late_install(&mut self, now: Instant) {
        let Some((ring, trans)) = self.abandoned.take() else {
            return;
        };
        tracing::debug!(node = %self.me, t = now.as_nanos(), ring = %ring.id, "late install");
        let (proc, fail) = (self.proc_set.clone(), self.fail_set.clone());
        let old = std::mem::replace(&mut self.ring, ring);
        self.recovering = Some(Recovering {
            old,
            trans,
            queue: VecDeque::new(),
        });
        self.install(now);
        self.stats.late_installs += 1;
        self.proc_set.extend(proc);
        self.fail_set = fail;
        self.enter_gather(now);
    }

    /// A member announced a graceful leave: count it failed at once, no timeout.
    fn on_leave(&mut self, now: Instant, sender: NodeId) {
        let known = self.members().contains(&sender) || self.proc_set.contains(&sender);
        if !known || self.fail_set.contains(&sender) {
            return;
        }
        if self.state != MembState::Gather {
            self.enter_gather(now);
        }
        self.proc_set.insert(sender);
        self.fail_set.insert(sender);
        self.departed.insert(sender);
        self.consensus.clear();
        self.send_join();
        self.timers
            .set(Timer::Consensus, now + self.cfg.consensus_timeout);
        self.check_consensus(now);
    }

    /// The live members this round is trying to agree on.
    fn active(&self) -> Vec<NodeId> {
        self.proc_set.difference(&self.fail_set).copied().collect()
    }

    fn check_consensus(&mut self, now: Instant) {
        if self.state != MembState::Gather {
            return;
        }
        let active = self.active();
        let agreed = active
            .iter()
            .all(|n| *n == self.me || self.consensus.contains(n));
        if agreed && active.first() == Some(&self.me) {
            self.create_commit(now, active);
        }
    }

    pub(super) fn on_consensus_timeout(&mut self, now: Instant) {
        if self.state != MembState::Gather {
            return;
        }
        tracing::debug!(node = %self.me, t = now.as_nanos(), consensus = ?self.consensus, proc = ?self.proc_set, fail = ?self.fail_set, "consensus timeout");
        let active = self.active();
        let missing: Vec<NodeId> = active
            .iter()
            .copied()
            .filter(|n| *n != self.me && !self.consensus.contains(n))
            .collect();
        let (alive, silent): (Vec<NodeId>, Vec<NodeId>) =
            missing.iter().partition(|n| self.heard.contains(n));
        if !silent.is_empty() {
            // Nothing heard from them for a whole consensus period: failed.
            self.fail_set.extend(silent);
            self.disagreed_timeouts = 0;
        } else if !alive.is_empty() {
            // Alive but with other sets: usually one side has not yet seen a failure the other
            // saw and will catch up within a period (a node back from a pause or a partition
            // knows of a crash the others are still timing out). Only disagreement that lasts
            // a second period splits them, so that the round always ends.
            self.disagreed_timeouts += 1;
            if self.disagreed_timeouts >= 2 {
                self.fail_set.extend(alive);
                self.disagreed_timeouts = 0;
            }
        }
        // Everyone agreed but no commit token came: the representative's token was lost, or a
        // member crashed after agreeing. Start the agreement again; a crashed member falls
        // silent and is failed at the next timeout, a live representative creates a new token.
        self.consensus.clear();
        self.heard.clear();
        self.send_join();
        self.timers.set(Timer::Join, now + self.cfg.join_timeout);
        self.timers
            .set(Timer::Consensus, now + self.cfg.consensus_timeout);
        self.check_consensus(now);
    }

    /// The representative of an agreed membership creates the commit token.
    fn create_commit(&mut self, now: Instant, active: Vec<NodeId>) {
        tracing::debug!(node = %self.me, t = now.as_nanos(), ?active, "create commit token");
        let seq = self.max_ring_seq.max(self.ring_id().seq) + 4;
        self.use_ring_seq(seq);
        let ring_id = RingId { seq, rep: self.me };
        let entries = active
            .iter()
            .map(|node| CommitEntry {
                node: *node,
                old_ring: RingId::default(),
                old_aru: Seq::ZERO,
                high_delivered: Seq::ZERO,
                received_flg: false,
                filled: false,
            })
            .collect();
        let mut token = CommitTokenRepr {
            sender: self.me,
            ring_id,
            token_seq: 1,
            memb_index: 0,
            entries,
        };
        self.fill_commit_entry(&mut token);
        self.enter_commit(now, &token);
        if active.len() == 1 {
            self.enter_recovery(now, &token);
            self.visit(now, Token::initial(self.ring.id));
        } else {
            self.forward_commit(now, token);
        }
    }

    /// The join timer keeps running in the commit state: a node waiting for its commit token
    /// goes on announcing the sets it agreed on, so that if the token died with a crashed
    /// member the nodes still gathering do not take it for silent and fail it. To the round's
    /// other members those joins are agreement they already counted, nothing new.
    fn enter_commit(&mut self, now: Instant, token: &CommitTokenRepr) {
        self.state = MembState::Commit;
        self.commit_ring = Some(token.ring_id);
        self.last_commit = Some((token.ring_id, token.token_seq));
        self.timers.stop(Timer::Consensus);
        self.timers
            .set(Timer::TokenLoss, now + self.cfg.token_timeout);
    }

    fn fill_commit_entry(&self, token: &mut CommitTokenRepr) {
        let me = self.me;
        if let Some(entry) = token.entries.iter_mut().find(|e| e.node == me) {
            entry.old_ring = self.ring.id;
            entry.old_aru = self.ring.recv.aru();
            entry.high_delivered = self.ring.delivered;
            entry.received_flg = self.ring.recv.aru() == self.ring.recv.high();
            entry.filled = true;
            token.memb_index += 1;
        }
    }

    fn forward_commit(&mut self, now: Instant, mut token: CommitTokenRepr) {
        token.token_seq += 1;
        self.last_commit = Some((token.ring_id, token.token_seq));
        let nodes: Vec<NodeId> = token.entries.iter().map(|e| e.node).collect();
        let index = nodes.iter().position(|n| *n == self.me).unwrap_or(0);
        let next = nodes[(index + 1) % nodes.len()];
        token.sender = self.me;
        let frame = codec::encode_commit(&token);
        self.transmits.push_back(Transmit {
            dest: Dest::Node(next),
            frame: frame.clone(),
        });
        self.ring.last_token = Some((next, frame));
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit());
    }

    pub(super) fn on_commit_token(&mut self, now: Instant, token: CommitTokenRepr) {
        tracing::debug!(node = %self.me, t = now.as_nanos(), state = ?self.state, ring = %token.ring_id, memb_index = token.memb_index, token_seq = token.token_seq, "commit token");
        if let Some((ring, seq)) = self.last_commit
            && ring == token.ring_id
            && token.token_seq <= seq
        {
            self.stats.duplicate_tokens += 1;
            return;
        }
        let n = token.entries.len();
        let Some(index) = token.entries.iter().position(|e| e.node == self.me) else {
            return;
        };
        let full = usize::from(token.memb_index) == n;
        if matches!(self.state, MembState::Gather | MembState::Commit) {
            // The round's members agreed on a ring with this node in it.
            for e in &token.entries {
                if e.node != self.me {
                    self.events.push_back(Event::Heard(e.node));
                }
            }
        }
        match self.state {
            MembState::Gather => self.take_commit_token(now, token, index),
            // A node in the commit state of an older round takes the token of a newer round
            // as if it were gathering: the representative went back to gather and agreed again
            // (with the joins this node keeps sending from the commit state) while this node
            // waited; waiting out its own timeout first would only leave the two a round apart
            // again, and again (seed 23210 of `ais/tests/sim_services.rs`).
            MembState::Commit if self.commit_ring.is_some_and(|r| r.seq < token.ring_id.seq) => {
                self.take_commit_token(now, token, index);
            }
            MembState::Commit if full && Some(token.ring_id) == self.commit_ring => {
                self.ring.last_token = None;
                self.enter_recovery(now, &token);
                self.forward_commit(now, token);
            }
            MembState::Recovery
                if full
                    && token.ring_id == self.ring.id
                    && self.ring.is_rep
                    && self.ring.my_token_seq == 0 =>
            {
                // The second rotation is complete: the new ring's first token.
                self.last_commit = Some((token.ring_id, token.token_seq));
                self.visit(now, Token::initial(self.ring.id));
            }
            _ => {}
        }
    }

    /// A commit token's first rotation reaches this node: if it is this node's turn and the
    /// token's members are the ones it agreed on, it fills its entry, enters the commit state
    /// and passes the token on.
    fn take_commit_token(&mut self, now: Instant, mut token: CommitTokenRepr, index: usize) {
        let nodes: Vec<NodeId> = token.entries.iter().map(|e| e.node).collect();
        if usize::from(token.memb_index) != index
            || token.entries[index].filled
            || nodes != self.active()
            || token.ring_id.seq <= self.ring_id().seq
        {
            return;
        }
        self.max_ring_seq = self.max_ring_seq.max(token.ring_id.seq);
        self.fill_commit_entry(&mut token);
        self.enter_commit(now, &token);
        self.forward_commit(now, token);
    }

    /// Both commit rotations have passed this node: switch to the new ring and queue the old
    /// frames that some member of this node's old ring may miss.
    fn enter_recovery(&mut self, now: Instant, token: &CommitTokenRepr) {
        tracing::debug!(node = %self.me, t = now.as_nanos(), ring = %token.ring_id, "recovery");
        let nodes: Vec<NodeId> = token.entries.iter().map(|e| e.node).collect();
        let new_ring = Ring::new(token.ring_id, nodes, self.me, self.cfg.receive_window);
        let old = std::mem::replace(&mut self.ring, new_ring);
        let same_old: Vec<&CommitEntry> = token
            .entries
            .iter()
            .filter(|e| e.old_ring == old.id)
            .collect();
        let trans: Vec<NodeId> = same_old.iter().map(|e| e.node).collect();
        let mut queue = VecDeque::new();
        if old.is_real() {
            let low = same_old
                .iter()
                .map(|e| e.old_aru)
                .min()
                .unwrap_or(Seq::ZERO);
            let high = old.recv.high();
            if same_old.iter().any(|e| e.old_aru < high) {
                for seq in (low.0 + 1..=high.0).map(Seq) {
                    // Frames that were themselves recovery frames were held by every member
                    // that installed the old ring, and cannot be encapsulated twice.
                    if let Some(stored) = old.recv.get(seq).filter(|s| !s.encapsulated) {
                        queue.push_back(stored.bytes.clone());
                    }
                }
            }
        }
        self.use_ring_seq(token.ring_id.seq);
        self.abandoned = None;
        self.recovering = Some(Recovering { old, trans, queue });
        self.state = MembState::Recovery;
        self.commit_ring = None;
        self.timers
            .set(Timer::TokenLoss, now + self.cfg.token_timeout);
    }

    /// An old-ring frame arrived encapsulated in the new ring.
    pub(super) fn recover_inner(&mut self, body: &Bytes) {
        let Some((header, inner)) = codec::encapsulated_inner(body) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(rec) = &mut self.recovering else {
            return;
        };
        if header.ring != rec.old.id {
            return; // another old ring's frame: its own members recover it
        }
        let stored = super::recv_buffer::Stored {
            bytes: inner,
            safe: header.safe,
            encapsulated: false,
        };
        if rec.old.recv.insert(header.seq, stored) == Insert::New {
            self.stats.recovery_frames_received += 1;
            if header.safe && self.cfg.observe {
                let ring = rec.old.id;
                self.events.push_back(Event::Observe(Observation::Stored {
                    ring,
                    seq: header.seq,
                }));
            }
        }
    }

    /// Installs the recovered ring: the old ring's remaining messages and the transitional
    /// configuration, then the new regular configuration (extended virtual synchrony).
    pub(super) fn install(&mut self, now: Instant) {
        tracing::debug!(node = %self.me, t = now.as_nanos(), ring = %self.ring.id, "install");
        let Some(Recovering { mut old, trans, .. }) = self.recovering.take() else {
            return;
        };
        if old.is_real() {
            // 1. The old ring's messages every member can deliver in the regular configuration.
            loop {
                let seq = old.delivered.next();
                let Some(stored) = old.recv.get(seq) else {
                    break;
                };
                if seq > old.recv.aru() || (stored.safe && seq > old.safe) {
                    break;
                }
                let bytes = stored.bytes.clone();
                old.delivered = seq;
                self.deliver_frame(old.id, seq, &bytes);
            }
            // 2. The transitional configuration.
            let (left, failed) = self.departures(&old.members, &trans);
            self.events.push_back(Event::ConfigChange(ConfigChange {
                kind: ConfigKind::Transitional,
                ring: old.id,
                members: trans.clone(),
                left,
                joined: Vec::new(),
                failed,
            }));
            // 3. The rest: past the first gap, only messages from transitional members.
            let first_gap = old.recv.aru().next();
            for seq in (old.delivered.0 + 1..=old.recv.high().0).map(Seq) {
                let Some(stored) = old.recv.get(seq) else {
                    continue;
                };
                let bytes = stored.bytes.clone();
                if seq < first_gap || trans.contains(&Self::frame_sender(&bytes)) {
                    self.deliver_frame(old.id, seq, &bytes);
                }
            }
        }
        // Partial messages of the old ring are gone; this node's own in-progress message
        // starts again from its first byte on the new ring.
        self.reassembler.clear();
        let resent = self.packer.in_progress().map_or(0, |m| m.sent);
        self.packer.restart_in_progress();
        self.queued_bytes += resent;
        // 4. The new regular configuration.
        let members = self.ring.members.clone();
        let previous: Vec<NodeId> = if old.is_real() {
            old.members.clone()
        } else {
            Vec::new()
        };
        let (left, failed) = self.departures(&previous, &members);
        self.events.push_back(Event::ConfigChange(ConfigChange {
            kind: ConfigKind::Regular,
            ring: self.ring.id,
            joined: members
                .iter()
                .copied()
                .filter(|m| !previous.contains(m))
                .collect(),
            members: members.clone(),
            left,
            failed,
        }));
        self.departed.clear();
        self.stats.rings_installed += 1;
        self.gather_said = false;
        self.state = MembState::Operational;
        self.proc_set = members.into_iter().collect();
        self.fail_set.clear();
        self.consensus.clear();
        if self.ring.is_rep {
            self.timers
                .set(Timer::MergeDetect, now + self.cfg.merge_timeout);
        }
    }

    /// Members of `before` missing from `after`: (left gracefully, failed).
    fn departures(&self, before: &[NodeId], after: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>) {
        before
            .iter()
            .copied()
            .filter(|m| !after.contains(m))
            .partition(|m| self.departed.contains(m))
    }

    /// Records that this node uses ring sequence number `seq`, for the caller to persist.
    fn use_ring_seq(&mut self, seq: u64) {
        if seq > self.max_ring_seq || seq > self.cfg.ring_seq {
            self.max_ring_seq = self.max_ring_seq.max(seq);
            self.events.push_back(Event::RingSeq(seq));
        }
    }
}
