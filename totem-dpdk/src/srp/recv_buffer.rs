//! Frames received on the current ring, indexed by sequence number, kept until every member
//! holds them and this node has delivered them.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::types::Seq;

/// One stored frame.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The frame without its integrity trailer, as received (or as this node built it).
    pub(crate) bytes: Bytes,
    /// The frame carries at least one safe message.
    pub(crate) safe: bool,
    /// The frame carries an old ring's frame (recovery), not messages.
    pub(crate) encapsulated: bool,
}

/// Outcome of [`RecvBuffer::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// Stored for the first time.
    New,
    /// Already held, or already delivered and freed.
    Duplicate,
    /// Too far ahead of the all-received-up-to point; dropped.
    OutOfWindow,
}

/// Frames of one ring from `base` upward; slot `i` holds sequence number `base + i`.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    base: u64,
    slots: VecDeque<Option<Stored>>,
    /// Every frame with a sequence number up to here has been received.
    aru: Seq,
    /// Highest sequence number received.
    high: Seq,
    window: u64,
}

impl RecvBuffer {
    /// An empty buffer for a new ring, accepting frames up to `window` ahead of its aru.
    pub(crate) fn new(window: u64) -> RecvBuffer {
        RecvBuffer {
            base: 1,
            slots: VecDeque::new(),
            aru: Seq::ZERO,
            high: Seq::ZERO,
            window,
        }
    }

    /// All received up to.
    pub(crate) fn aru(&self) -> Seq {
        self.aru
    }

    /// Highest sequence number received.
    pub(crate) fn high(&self) -> Seq {
        self.high
    }

    /// Stores `frame` as sequence number `seq` (which must be >= 1).
    pub(crate) fn insert(&mut self, seq: Seq, frame: Stored) -> Insert {
        if seq.0 < self.base || seq <= self.aru {
            return Insert::Duplicate;
        }
        if seq.0 - self.aru.0 > self.window {
            return Insert::OutOfWindow;
        }
        let index = usize::try_from(seq.0 - self.base).expect("bounded by the receive window");
        if index >= self.slots.len() {
            self.slots.resize(index + 1, None);
        }
        if self.slots[index].is_some() {
            return Insert::Duplicate;
        }
        self.slots[index] = Some(frame);
        self.high = self.high.max(seq);
        while self.get(self.aru.next()).is_some() {
            self.aru = self.aru.next();
        }
        Insert::New
    }

    /// The frame with sequence number `seq`, if held.
    pub(crate) fn get(&self, seq: Seq) -> Option<&Stored> {
        let index = usize::try_from(seq.0.checked_sub(self.base)?).ok()?;
        self.slots.get(index)?.as_ref()
    }

    /// Frees every frame up to and including `upto` (which must be <= aru).
    pub(crate) fn free_through(&mut self, upto: Seq) {
        debug_assert!(upto <= self.aru, "freeing a frame not yet received");
        while self.base <= upto.0 {
            self.slots.pop_front();
            self.base += 1;
        }
    }

    /// Sequence numbers in `(aru, upto]` that are missing, lowest first, at most `limit`.
    pub(crate) fn missing(&self, upto: Seq, limit: usize) -> impl Iterator<Item = Seq> + '_ {
        (self.aru.0 + 1..=upto.0)
            .map(Seq)
            .filter(|s| self.get(*s).is_none())
            .take(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Stored {
        Stored {
            bytes: Bytes::from_static(b"x"),
            safe: false,
            encapsulated: false,
        }
    }

    #[test]
    fn aru_advances_over_contiguous_frames_only() {
        let mut b = RecvBuffer::new(100);
        assert_eq!(b.insert(Seq(2), frame()), Insert::New);
        assert_eq!(b.aru(), Seq(0));
        assert_eq!(
            b.missing(Seq(3), 10).collect::<Vec<_>>(),
            vec![Seq(1), Seq(3)]
        );
        assert_eq!(b.insert(Seq(1), frame()), Insert::New);
        assert_eq!(b.aru(), Seq(2));
        assert_eq!(b.high(), Seq(2));
        assert_eq!(b.insert(Seq(2), frame()), Insert::Duplicate);
    }

    #[test]
    fn freed_frames_stay_duplicates_and_window_is_enforced() {
        let mut b = RecvBuffer::new(4);
        for s in 1..=3 {
            b.insert(Seq(s), frame());
        }
        b.free_through(Seq(2));
        assert!(b.get(Seq(2)).is_none());
        assert_eq!(b.insert(Seq(1), frame()), Insert::Duplicate);
        assert_eq!(b.insert(Seq(8), frame()), Insert::OutOfWindow);
        assert_eq!(b.insert(Seq(7), frame()), Insert::New);
        assert!(b.get(Seq(3)).is_some() && b.get(Seq(7)).is_some());
    }
}
