//! Frames between the simulated nodes: partitions, cut links, the lossy receiver and the link
//! faults on the way out; a paused node's socket buffer and the checks of what a node accepted
//! on the way in.

use bytes::Bytes;
use rand::Rng;
use totem_dpdk::Duration;
use totem_dpdk::rrp::{NetId, Verdict};
use totem_dpdk::srp::{Event, Observation};

use super::attack::{HISTORY, Injected, crypto_refusals, nonce_of, protocol_refusals};
use super::{Action, Sim};
use crate::record;

/// Frames a paused node's socket buffer holds; more are dropped.
const PAUSE_BUFFER: usize = 2_000;

impl Sim {
    pub(super) fn on_frame(
        &mut self,
        to: usize,
        net: u8,
        frame: Bytes,
        injected: Option<Injected>,
    ) {
        if let Some(backlog) = &mut self.nodes[to].paused {
            if backlog.len() < PAUSE_BUFFER {
                backlog.push_back((net, frame, injected));
            }
            return;
        }
        let now = self.now;
        let slot = &mut self.nodes[to];
        if let Some(rrp) = slot.rrp.as_mut()
            && rrp.handle_frame(now, NetId(net), &frame) == Verdict::Duplicate
        {
            self.out.rrp_duplicates += 1;
            if let Some(kind) = injected {
                // Refused before the core: a copy of a frame this node already took.
                let a = &mut self.out.attacks;
                match kind {
                    Injected::Forged => a.forged += 1,
                    Injected::Truncated => a.truncated += 1,
                    Injected::Tampered => a.tampered += 1,
                    Injected::Replay => a.replayed += 1,
                }
                a.rejected += 1;
            }
            // The layer's timer may have moved (a new frame to judge).
            self.drain(to);
            return;
        }
        let Some(node) = slot.totem.as_mut() else {
            return;
        };
        let nonce = nonce_of(&frame);
        let was_seen = nonce.is_some_and(|n| slot.seen.contains(&n));
        let before = node.stats().clone();
        let dup_before = before.duplicate_tokens;
        let accepted_before = before.tokens_accepted;
        node.handle_frame(now, &frame);
        let after = node.stats().clone();
        self.out.tokens_paced += after.tokens_paced - before.tokens_paced;
        let opened = after.crypto.opened > before.crypto.opened;
        if opened && let Some(n) = nonce {
            slot.seen.insert(n);
        }
        let after = &after;
        if injected.is_none()
            && self.nodes[to].rrp.is_some()
            && !self.paused_ever[to]
            && now > self.released_until[to]
            && after.crypto.replayed > before.crypto.replayed
        {
            self.out.violations.push(format!(
                "rings: node {} opened a copy (network {net}) of a frame it had already taken at \
                 t={}: copies must stop at the redundant-ring layer",
                to + 1,
                now.as_nanos()
            ));
        }
        if let Some(kind) = injected {
            let refused = crypto_refusals(after) > crypto_refusals(&before);
            let a = &mut self.out.attacks;
            match kind {
                Injected::Forged => a.forged += 1,
                Injected::Truncated => a.truncated += 1,
                Injected::Tampered => a.tampered += 1,
                Injected::Replay => a.replayed += 1,
            }
            if refused {
                a.rejected += 1;
            } else if kind == Injected::Replay && !was_seen {
                a.replay_first_copies += 1;
                if protocol_refusals(after) > protocol_refusals(&before) {
                    a.replay_ignored_by_protocol += 1;
                }
            } else {
                self.out.violations.push(format!(
                    "security: node {} accepted a {kind:?} frame at t={} (seen before: {was_seen})",
                    to + 1,
                    now.as_nanos()
                ));
            }
        }
        let node = self.nodes[to].totem.as_mut().expect("checked above");
        if node.stats().duplicate_tokens > dup_before
            && node.stats().tokens_accepted == accepted_before
        {
            // A discarded token must change nothing: no frame out, only its observation.
            let sent = node.poll_transmit().is_some();
            let mut others = 0;
            while let Some(event) = node.poll_event() {
                if let Event::Observe(Observation::Token(t)) = &event {
                    let id = node.node_id();
                    self.out.log.push(record::token(now, id, t));
                } else {
                    others += 1;
                }
            }
            if sent || others > 0 {
                self.out.violations.push(format!(
                    "token: node {} acted on a discarded token at t={}",
                    to + 1,
                    now.as_nanos()
                ));
            }
            return;
        }
        self.drain(to);
    }

    /// With [`crate::sim::Schedule::egress`]: when a frame of `len` bytes that `from` sends
    /// now on `net` leaves its queue, or `None` if the queue drops it (`admitted`: it is in the
    /// queue already, never dropped). Without a cap: `None`.
    pub(super) fn egress_departure(
        &mut self,
        from: usize,
        net: u8,
        len: usize,
        admitted: bool,
    ) -> Option<totem_dpdk::Instant> {
        let egress = self.schedule.egress?;
        let slot = from * self.schedule.networks.max(1) + usize::from(net);
        let free = self.egress_free.get_mut(slot)?;
        let start = (*free).max(self.now);
        if !admitted && start.saturating_since(self.now) > egress.latency {
            self.out.egress_dropped += 1;
            return None;
        }
        // Ethernet, IP and UDP headers and the preamble: about 66 bytes per frame.
        let bits = (len as u64 + 66) * 8;
        let done = start + Duration(bits * 1_000_000_000 / egress.rate_bps.max(1));
        *free = done;
        Some(done)
    }

    pub(super) fn carry(
        &mut self,
        from: usize,
        to: usize,
        net: u8,
        frame: &Bytes,
        multicast: bool,
    ) {
        if to == from {
            // A one-member ring passes the token to itself, through its own socket.
            let at = self.now + self.link.delay;
            self.push(
                at,
                Action::Frame {
                    to,
                    net,
                    frame: frame.clone(),
                    injected: None,
                },
            );
            return;
        }
        if self.groups[from] != self.groups[to] || self.cut.contains(&(from, to)) {
            return;
        }
        let mut slow = Duration::ZERO;
        if let Some(f) = self.nets.get(usize::from(net))
            && !f.is_clean()
        {
            if let Some((_, by)) = f.slow.iter().find(|(n, _)| *n == to) {
                slow = *by;
            }
            if f.down
                || f.cut.contains(&(from, to))
                || f.nic_down.contains(&from)
                || f.nic_down.contains(&to)
            {
                return;
            }
            if f.loss > 0.0 && self.rng.random_bool(f.loss) {
                return;
            }
            if let Some(limit) = f.hold {
                let f = &mut self.nets[usize::from(net)];
                if f.on_hold_per.len() <= to {
                    f.on_hold_per.resize(to + 1, 0);
                }
                if f.on_hold_per[to] < limit {
                    f.on_hold_per[to] += 1;
                    f.on_hold.push((from, to, frame.clone()));
                }
                return;
            }
        }
        // A capped interface: the frame waits its turn in the sender's queue, or is dropped
        // when the wait would exceed the queue's latency.
        if self.schedule.egress.is_some() {
            match self.egress_departure(from, net, frame.len(), false) {
                Some(departure) => slow = Duration(slow.0 + departure.saturating_since(self.now).0),
                None => return,
            }
        }
        let faulty = self.now < self.schedule.faults_end();
        if let Some((id, share)) = self.schedule.lossy_receiver
            && faulty
            && multicast
            && to + 1 == id as usize
            && frame.get(3) == Some(&2)
            && self.rng.random_bool(share)
        {
            return;
        }
        let link = if faulty { self.link } else { self.clean };
        let verdict = link.carry(&mut self.rng, frame);
        let crypto = self.schedule.crypto;
        for (delay, copy, corrupted) in verdict.copies {
            self.out.frames += 1;
            let at = self.now + delay + slow;
            // Two flips of one byte can cancel out: only a changed frame counts as tampered.
            let injected = (crypto && corrupted && copy != *frame).then_some(Injected::Tampered);
            self.push(
                at,
                Action::Frame {
                    to,
                    net,
                    frame: copy,
                    injected,
                },
            );
        }
        if crypto {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(frame.clone());
        }
        if faulty {
            self.attack(to);
        }
    }
}
