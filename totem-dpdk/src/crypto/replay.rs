//! Per-transmitter sliding replay windows over nonce counters.
//!
//! Each transmitter has the highest counter accepted from it and a ring bitmap of the
//! [`REPLAY_WINDOW`] counters ending at that highest one (bit `counter % REPLAY_WINDOW`).
//! Only frames whose tag verified reach this module, so only key holders can create or move
//! windows.

use std::collections::HashMap;

use super::{MAX_TRANSMITTERS, REPLAY_WINDOW};
use crate::NodeId;

/// Words in a window's bitmap.
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reject {
    /// Seen before, inside the window.
    Replayed,
    /// Below the window: cannot tell, so refused.
    TooOld,
}

/// One transmitter's window.
#[derive(Debug, Clone)]
struct Window {
    /// The highest counter accepted.
    highest: u64,
    /// Bit `c % REPLAY_WINDOW` is set when counter `c` (within the window) was accepted.
    seen: [u64; WORDS],
    /// [`ReplayWindows::tick`] at the last accepted counter: eviction order.
    touched: u64,
}

impl Window {
    fn new(counter: u64, tick: u64) -> Window {
        let mut window = Window {
            highest: counter,
            seen: [0; WORDS],
            touched: tick,
        };
        window.set(counter);
        window
    }

    fn slot(counter: u64) -> (usize, u64) {
        // Both casts are lossless: the index is below `REPLAY_WINDOW`.
        let pos = (counter % REPLAY_WINDOW) as usize;
        (pos / 64, 1u64 << (pos % 64))
    }

    fn set(&mut self, counter: u64) {
        let (word, bit) = Self::slot(counter);
        self.seen[word] |= bit;
    }

    fn clear(&mut self, counter: u64) {
        let (word, bit) = Self::slot(counter);
        self.seen[word] &= !bit;
    }

    fn is_set(&self, counter: u64) -> bool {
        let (word, bit) = Self::slot(counter);
        self.seen[word] & bit != 0
    }

    /// Accepts and marks `counter`, or says why not. O(1) except when the window slides by
    /// many counters at once (at most `REPLAY_WINDOW` bit clears).
    fn accept(&mut self, counter: u64) -> Result<(), Reject> {
        if counter > self.highest {
            let shift = counter - self.highest;
            if shift >= REPLAY_WINDOW {
                self.seen = [0; WORDS];
            } else {
                // The slots of the counters entering the window held counters now below it.
                for entering in self.highest + 1..counter {
                    self.clear(entering);
                }
            }
            self.highest = counter;
            self.set(counter);
            return Ok(());
        }
        if self.highest - counter >= REPLAY_WINDOW {
            return Err(Reject::TooOld);
        }
        if self.is_set(counter) {
            return Err(Reject::Replayed);
        }
        self.set(counter);
        Ok(())
    }
}

/// The windows of all transmitters heard from, at most [`MAX_TRANSMITTERS`] of them.
#[derive(Debug, Clone, Default)]
pub(super) struct ReplayWindows {
    windows: HashMap<NodeId, Window>,
    /// Counts accepted counters; orders windows for eviction.
    tick: u64,
}

impl ReplayWindows {
    /// Accepts and records `counter` from `transmitter`, or says why not (nothing changes
    /// then). A transmitter not tracked yet gets a new window, evicting the least recently
    /// updated one when [`MAX_TRANSMITTERS`] are tracked (an O(n) scan, only then).
    pub(super) fn accept(&mut self, transmitter: NodeId, counter: u64) -> Result<(), Reject> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(window) = self.windows.get_mut(&transmitter) {
            window.accept(counter)?;
            window.touched = tick;
            return Ok(());
        }
        if self.windows.len() >= MAX_TRANSMITTERS {
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, window)| window.touched)
                .map(|(node, _)| *node);
            if let Some(node) = oldest {
                self.windows.remove(&node);
            }
        }
        self.windows.insert(transmitter, Window::new(counter, tick));
        Ok(())
    }

    /// How many transmitters have a window.
    pub(super) fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether `transmitter` has a window.
    #[cfg(test)]
    pub(super) fn tracks(&self, transmitter: NodeId) -> bool {
        self.windows.contains_key(&transmitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slides_and_rejects() {
        let mut w = ReplayWindows::default();
        let n = NodeId(1);
        assert_eq!(w.accept(n, 5), Ok(()));
        assert_eq!(w.accept(n, 5), Err(Reject::Replayed));
        assert_eq!(w.accept(n, 3), Ok(()));
        assert_eq!(w.accept(n, 3), Err(Reject::Replayed));
        assert_eq!(w.accept(n, 5 + REPLAY_WINDOW - 1), Ok(()));
        // 5 is still the lowest counter inside the window: remembered.
        assert_eq!(w.accept(n, 5), Err(Reject::Replayed));
        assert_eq!(w.accept(n, 4), Err(Reject::TooOld));
        assert_eq!(w.accept(n, 6), Ok(()));
        // A slot reused after a slide is fresh.
        assert_eq!(w.accept(n, 5 + REPLAY_WINDOW), Ok(()));
        assert_eq!(w.accept(n, 5), Err(Reject::TooOld));
        assert_eq!(w.accept(n, 7), Ok(()));
        // A jump past the whole window forgets everything below it.
        assert_eq!(w.accept(n, 10 * REPLAY_WINDOW), Ok(()));
        assert_eq!(w.accept(n, 10 * REPLAY_WINDOW - 1), Ok(()));
        assert_eq!(w.accept(n, 9 * REPLAY_WINDOW), Err(Reject::TooOld));
        assert_eq!(w.accept(n, 9 * REPLAY_WINDOW + 1), Ok(()));
    }

    #[test]
    fn evicts_least_recently_updated() {
        let mut w = ReplayWindows::default();
        for node in 1..=MAX_TRANSMITTERS as u32 {
            w.accept(NodeId(node), 1).unwrap();
        }
        // Node 1 is refreshed, so node 2 is now the least recently updated.
        w.accept(NodeId(1), 2).unwrap();
        w.accept(NodeId(100_000), 1).unwrap();
        assert_eq!(w.len(), MAX_TRANSMITTERS);
        assert!(w.tracks(NodeId(1)));
        assert!(!w.tracks(NodeId(2)));
        assert!(w.tracks(NodeId(100_000)));
    }
}
