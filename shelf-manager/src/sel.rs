//! The system event log: a bounded in-memory list of records.
//!
//! **When full** the log keeps what it has: a new record is not stored, it is counted in
//! [`Sel::dropped`], and [`Sel::overflowed`] stays true until [`Sel::clear`]. This is what
//! IPMI 2.0 does (Get SEL Info reports an overflow flag, "events have been dropped due to lack
//! of space"; Clear SEL makes room), and it keeps the oldest records, which explain how the
//! shelf got where it is. Event receivers still get every event (see [`crate::shelf::Effect`]).

use crate::hotswap::{Change, FruAddr};

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelBody {
    /// A hot-swap state change of the FRU.
    HotSwap(Change),
    /// The FRU asked for power the feeds cannot give now; it waits in M3.
    PowerDenied {
        /// The level it asked for.
        level: u8,
        /// The watts of that level.
        watts: u32,
    },
}

/// One stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelRecord {
    /// The record id, counting from 1 in the order stored; ids restart after [`Sel::clear`].
    pub id: u16,
    /// The FRU it is about.
    pub fru: FruAddr,
    /// What happened.
    pub body: SelBody,
}

/// The log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sel {
    records: Vec<SelRecord>,
    capacity: usize,
    dropped: u64,
}

impl Sel {
    /// An empty log holding at most `capacity` records (at least one).
    pub fn new(capacity: usize) -> Sel {
        Sel {
            records: Vec::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Stores a record; `None` (and the record counted as dropped) when the log is full.
    pub fn add(&mut self, fru: FruAddr, body: SelBody) -> Option<SelRecord> {
        if self.is_full() {
            self.dropped += 1;
            return None;
        }
        let id = u16::try_from(self.records.len() + 1).unwrap_or(u16::MAX);
        let record = SelRecord { id, fru, body };
        self.records.push(record);
        Some(record)
    }

    /// The records, oldest first.
    pub fn records(&self) -> &[SelRecord] {
        &self.records
    }

    /// How many records the log holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the next record would be dropped.
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.capacity
    }

    /// Records dropped because the log was full, since the last clear.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether a record has been dropped since the last clear.
    pub fn overflowed(&self) -> bool {
        self.dropped > 0
    }

    /// A log of `capacity` holding `bodies` (ids from 1 in order) after `dropped` records
    /// were dropped, for [`crate::replica`]; `None` when they do not fit.
    pub(crate) fn from_parts(
        capacity: usize,
        bodies: impl IntoIterator<Item = (FruAddr, SelBody)>,
        dropped: u64,
    ) -> Option<Sel> {
        let mut sel = Sel::new(capacity);
        for (fru, body) in bodies {
            sel.add(fru, body)?;
        }
        sel.dropped = dropped;
        Some(sel)
    }

    /// Empties the log and resets the overflow flag.
    pub fn clear(&mut self) {
        self.records.clear();
        self.dropped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hotswap::{Cause, MState};

    fn body(new: MState) -> SelBody {
        SelBody::HotSwap(Change {
            previous: MState::M0,
            new,
            cause: Cause::Normal,
        })
    }

    #[test]
    fn a_full_log_keeps_its_records_and_counts_the_dropped_ones() {
        let fru = FruAddr {
            ipmb: 0x82,
            fru_id: 0,
        };
        let mut sel = Sel::new(2);
        assert_eq!(sel.add(fru, body(MState::M1)).unwrap().id, 1);
        assert_eq!(sel.add(fru, body(MState::M2)).unwrap().id, 2);
        assert!(sel.is_full() && !sel.overflowed());
        assert_eq!(sel.add(fru, body(MState::M3)), None);
        assert_eq!(sel.add(fru, body(MState::M4)), None);
        assert_eq!(sel.dropped(), 2);
        assert!(sel.overflowed());
        let kept: Vec<SelBody> = sel.records().iter().map(|r| r.body).collect();
        assert_eq!(kept, [body(MState::M1), body(MState::M2)]);
        sel.clear();
        assert!(!sel.overflowed() && sel.records().is_empty());
        assert_eq!(sel.add(fru, body(MState::M5)).unwrap().id, 1);
        assert_eq!(Sel::new(0).capacity(), 1);
    }
}
