//! The core's timers: one deadline per [`Timer`], kept in a fixed table (no allocation, no
//! heap). The driver or simulator asks [`TimerTable::next`] for the earliest deadline and calls
//! the core's `handle_timeout` when it passes; a call before any deadline is a no-op.

use crate::time::Instant;

/// The timers of the Totem core, named after corosync's `totemsrp.c` timers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Re-send the last token (ORF or commit) this node forwarded if the ring shows no
    /// progress: a lost token is recovered without a membership change.
    TokenRetransmit,
    /// No token for `token_timeout`: the ring is broken; start a membership round.
    TokenLoss,
    /// Re-send this node's join message while gathering.
    Join,
    /// Gathering took `consensus_timeout`: members that have not agreed are declared failed.
    Consensus,
    /// The representative announces its ring so that other partitions find it.
    MergeDetect,
    /// The representative holds the token of an idle ring for a while before passing it on,
    /// so an idle ring does not spin (corosync's token hold).
    TokenHold,
}

impl Timer {
    const ALL: [Timer; 6] = [
        Timer::TokenRetransmit,
        Timer::TokenLoss,
        Timer::Join,
        Timer::Consensus,
        Timer::MergeDetect,
        Timer::TokenHold,
    ];

    fn index(self) -> usize {
        match self {
            Timer::TokenRetransmit => 0,
            Timer::TokenLoss => 1,
            Timer::Join => 2,
            Timer::Consensus => 3,
            Timer::MergeDetect => 4,
            Timer::TokenHold => 5,
        }
    }
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Debug, Default)]
pub struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms (or re-arms) `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Moves every armed deadline `by` later (a span this node did not run does not count).
    pub fn postpone(&mut self, by: crate::time::Duration) {
        for d in self.deadlines.iter_mut().flatten() {
            *d = *d + by;
        }
    }

    /// Disarms every timer.
    pub fn clear(&mut self) {
        self.deadlines = Default::default();
    }

    /// Disarms and returns the first timer whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .find(|t| self.get(*t).is_some_and(|d| d <= now))?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_only_due_timers_once() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::TokenRetransmit, Instant(100));
        assert_eq!(t.next(), Some(Instant(100)));
        assert_eq!(t.expire(Instant(99)), None);
        assert_eq!(t.expire(Instant(100)), Some(Timer::TokenRetransmit));
        assert_eq!(t.expire(Instant(1000)), None, "a fired timer is disarmed");
    }

    #[test]
    fn postpone_moves_only_armed_timers() {
        let mut t = TimerTable::default();
        t.set(Timer::TokenLoss, Instant(100));
        t.postpone(crate::time::Duration(50));
        assert_eq!(t.get(Timer::TokenLoss), Some(Instant(150)));
        assert_eq!(t.get(Timer::Join), None);
    }
}
