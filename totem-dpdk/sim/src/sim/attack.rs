//! The attacker: forged, truncated and replayed frames injected while faults last, with the
//! simulated key and the counters ([`AttackStats`]) that judge what became of them.

use bytes::Bytes;
use rand::{Rng, RngCore};
use totem_dpdk::crypto::EpochKey;

use super::{Action, Sim};

/// Frames injected by the attack faults (and corrupted ones, with crypto on) and their fate.
/// Every forged, truncated or tampered frame must be refused by the protection layer; a
/// replayed frame must be refused when its receiver had already processed that transmission
/// (same nonce) in its current incarnation; otherwise it is the first copy that receiver sees
/// (the original was lost, went elsewhere, or came before a restart), indistinguishable from a
/// late delivery, and the protocol above must handle it (the checker verifies it did no harm).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttackStats {
    /// Forged frames (random bytes behind a valid header) delivered to a node.
    pub forged: u64,
    /// Truncated copies of real frames delivered.
    pub truncated: u64,
    /// Corrupted copies (link fault `corrupt`) delivered, with crypto on.
    pub tampered: u64,
    /// Replayed frames delivered.
    pub replayed: u64,
    /// Injected frames refused by the protection layer (counted in its statistics).
    pub rejected: u64,
    /// Replays that were the first copy of that transmission for their receiver.
    pub replay_first_copies: u64,
    /// Of those, frames the protocol then ignored (counted as stale, duplicate or foreign).
    pub replay_ignored_by_protocol: u64,
}

/// What an attacker (or the corrupting link) did to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Injected {
    Forged,
    Truncated,
    Tampered,
    Replay,
}

/// Refusals counted by the protection layer.
pub(super) fn crypto_refusals(s: &totem_dpdk::srp::Stats) -> u64 {
    let c = &s.crypto;
    c.malformed + c.bad_crc + c.unknown_epoch + c.bad_tag + c.replayed + c.too_old + c.misdirected
}

/// Frames the protocol counted as malformed, stale, duplicate or foreign.
pub(super) fn protocol_refusals(s: &totem_dpdk::srp::Stats) -> u64 {
    s.malformed
        + s.unsupported_version
        + s.foreign_ring
        + s.duplicate_tokens
        + s.duplicate_frames
        + s.out_of_window
        + s.late_old_ring_frames
}

/// Frames recorded for replay.
pub(super) const HISTORY: usize = 4096;

/// The shared key of simulated runs with crypto.
pub fn sim_key() -> EpochKey {
    EpochKey::new(0, vec![0x5a; 32]).expect("valid key")
}

/// The nonce of a sealed frame (after the 8-byte header and the 4-byte epoch).
pub(super) fn nonce_of(frame: &[u8]) -> Option<[u8; 12]> {
    frame.get(12..24).and_then(|n| n.try_into().ok())
}

impl Sim {
    /// The attack faults: maybe a forged or truncated frame, maybe a replay, for node `to`.
    pub(super) fn attack(&mut self, to: usize) {
        let f = self.schedule.faults;
        if f.forge > 0.0 && self.rng.random_bool(f.forge) {
            let (frame, kind) = if self.rng.random_bool(0.5) || self.history.is_empty() {
                // A valid header (magic, version, a frame type, a member as sender), then
                // random bytes where the crypto fields, body and tag would be.
                let len = self.rng.random_range(8..=300);
                let mut v = vec![0u8; len];
                self.rng.fill_bytes(&mut v);
                v[..3].copy_from_slice(&[0xA1, 0x5E, 1]);
                v[3] = self.rng.random_range(1..=6);
                let sender = self.rng.random_range(1..=self.schedule.nodes);
                v[4..8].copy_from_slice(&sender.to_be_bytes());
                if len >= 12 && self.rng.random_bool(0.5) {
                    v[8..12].copy_from_slice(&0u32.to_be_bytes()); // the real epoch
                }
                (Bytes::from(v), Injected::Forged)
            } else {
                let i = self.rng.random_range(0..self.history.len());
                let real = self.history[i].clone();
                let cut = self.rng.random_range(0..real.len());
                (real.slice(..cut), Injected::Truncated)
            };
            let at = self.now + self.link.delay;
            self.push(
                at,
                Action::Frame {
                    to,
                    net: 0,
                    frame,
                    injected: Some(kind),
                },
            );
        }
        if f.replay > 0.0 && !self.history.is_empty() && self.rng.random_bool(f.replay) {
            let i = self.rng.random_range(0..self.history.len());
            let frame = self.history[i].clone();
            let at = self.now + self.link.delay;
            self.push(
                at,
                Action::Frame {
                    to,
                    net: 0,
                    frame,
                    injected: Some(Injected::Replay),
                },
            );
        }
    }
}
