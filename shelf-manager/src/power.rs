//! The shelf power budget: which FRUs in M3 may power up.
//!
//! Each feed has a maximum in watts. A FRU asks for the watts of its desired power level and
//! names the feeds that power it; its draw counts against **each** of them, because redundant
//! feeds must each be able to carry the shelf alone. A request is granted only if every one of
//! its feeds covers it together with everything already granted.
//!
//! **Order.** Requests that cannot be granted wait. Waiting FRUs are considered in
//! [`PowerOrder`]: lower `priority` value first, then lower site number, then lower IPMB address
//! and FRU id, a total order that does not depend on when the requests arrived. The head of the
//! queue blocks the rest: when the first waiting FRU does not fit, nothing behind it is granted,
//! so a high-priority board is never starved by smaller ones slipping past it. Whenever power
//! comes back ([`PowerBudget::release`]) or a request arrives, the queue is considered again from
//! its head, and every grant made is returned.

use std::collections::BTreeMap;

use crate::hotswap::FruAddr;

/// A FRU's place in the power order (the derived order is the documented one: priority, site
/// number, then address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PowerOrder {
    /// Lower values are powered first.
    pub priority: u8,
    /// The site number.
    pub site_number: u8,
    /// The FRU.
    pub fru: FruAddr,
}

/// A FRU asking for power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its place in the order.
    pub order: PowerOrder,
    /// The power level it asks for.
    pub level: u8,
    /// The watts drawn at that level.
    pub watts: u32,
    /// The indices of the feeds that power it.
    pub feeds: Vec<usize>,
}

/// Power granted to a FRU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The FRU.
    pub fru: FruAddr,
    /// The level granted.
    pub level: u8,
    /// The watts it may draw.
    pub watts: u32,
}

/// A request the budget cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowerError {
    /// The FRU already waits or holds power.
    #[error("FRU {0} already asked for power")]
    AlreadyAsked(FruAddr),
    /// A feed index outside the shelf's feeds.
    #[error("FRU {fru} names feed {feed}, the shelf has {feeds}")]
    UnknownFeed {
        /// The FRU.
        fru: FruAddr,
        /// The index given.
        feed: usize,
        /// How many feeds there are.
        feeds: usize,
    },
}

/// One feed's capacity and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedUse {
    /// The most it delivers, in watts.
    pub max_watts: u32,
    /// The watts granted on it.
    pub used_watts: u32,
}

/// The budget: feeds, the FRUs holding power and the ones waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerBudget {
    feeds: Vec<FeedUse>,
    powered: BTreeMap<FruAddr, Request>,
    waiting: BTreeMap<PowerOrder, Request>,
}

impl PowerBudget {
    /// A budget over feeds with these maxima (index = feed index).
    pub fn new(max_watts: impl IntoIterator<Item = u32>) -> PowerBudget {
        PowerBudget {
            feeds: max_watts
                .into_iter()
                .map(|max_watts| FeedUse {
                    max_watts,
                    used_watts: 0,
                })
                .collect(),
            ..PowerBudget::default()
        }
    }

    /// The feeds and their use.
    pub fn feeds(&self) -> &[FeedUse] {
        &self.feeds
    }

    /// Whether `fru` holds power.
    pub fn is_powered(&self, fru: FruAddr) -> bool {
        self.powered.contains_key(&fru)
    }

    /// Whether `fru` waits for power.
    pub fn is_waiting(&self, fru: FruAddr) -> bool {
        self.waiting.values().any(|r| r.order.fru == fru)
    }

    /// The waiting FRUs, in the order they will be considered.
    pub fn waiting(&self) -> impl Iterator<Item = FruAddr> + '_ {
        self.waiting.keys().map(|o| o.fru)
    }

    /// The FRUs holding power, by address, with what they asked for.
    pub fn powered(&self) -> impl Iterator<Item = &Request> + '_ {
        self.powered.values()
    }

    /// The waiting requests, in the order they will be considered.
    pub fn waiting_requests(&self) -> impl Iterator<Item = &Request> + '_ {
        self.waiting.values()
    }

    /// A budget over feeds with these maxima in which `powered` hold power and `waiting`
    /// wait, for [`crate::replica`]. `None` when a request names a feed that does not exist,
    /// a FRU appears twice, or the powered ones overdraw a feed.
    pub(crate) fn from_parts(
        max_watts: impl IntoIterator<Item = u32>,
        powered: impl IntoIterator<Item = Request>,
        waiting: impl IntoIterator<Item = Request>,
    ) -> Option<PowerBudget> {
        let mut b = PowerBudget::new(max_watts);
        for r in powered {
            let fru = r.order.fru;
            if b.is_powered(fru) || r.feeds.iter().any(|&f| f >= b.feeds.len()) {
                return None;
            }
            for &f in &r.feeds {
                let feed = &mut b.feeds[f];
                let max = feed.max_watts;
                feed.used_watts = feed.used_watts.checked_add(r.watts).filter(|&u| u <= max)?;
            }
            b.powered.insert(fru, r);
        }
        for r in waiting {
            let fru = r.order.fru;
            if b.is_powered(fru) || b.is_waiting(fru) || r.feeds.iter().any(|&f| f >= b.feeds.len())
            {
                return None;
            }
            b.waiting.insert(r.order, r);
        }
        Some(b)
    }

    /// Queues `request` and grants what the order allows now (possibly other FRUs, never one
    /// behind a waiting FRU that does not fit).
    ///
    /// # Errors
    /// [`PowerError`] if the FRU already asked or names a feed that does not exist; nothing
    /// changes then.
    pub fn request(&mut self, request: Request) -> Result<Vec<Grant>, PowerError> {
        let fru = request.order.fru;
        if self.is_powered(fru) || self.is_waiting(fru) {
            return Err(PowerError::AlreadyAsked(fru));
        }
        if let Some(&feed) = request.feeds.iter().find(|&&f| f >= self.feeds.len()) {
            return Err(PowerError::UnknownFeed {
                fru,
                feed,
                feeds: self.feeds.len(),
            });
        }
        self.waiting.insert(request.order, request);
        Ok(self.grant_in_order())
    }

    /// Takes back `fru`'s power, or its place in the queue, and grants what the order allows
    /// now. A FRU the budget does not know is ignored (releasing twice is harmless).
    pub fn release(&mut self, fru: FruAddr) -> Vec<Grant> {
        if let Some(r) = self.powered.remove(&fru) {
            for &f in &r.feeds {
                self.feeds[f].used_watts -= r.watts;
            }
        } else {
            self.waiting.retain(|o, _| o.fru != fru);
        }
        self.grant_in_order()
    }

    fn fits(&self, request: &Request) -> bool {
        request.feeds.iter().all(|&f| {
            let feed = self.feeds[f];
            feed.used_watts
                .checked_add(request.watts)
                .is_some_and(|total| total <= feed.max_watts)
        })
    }

    fn grant_in_order(&mut self) -> Vec<Grant> {
        let mut grants = Vec::new();
        while let Some((_, head)) = self.waiting.first_key_value() {
            if !self.fits(head) {
                break;
            }
            let Some((_, request)) = self.waiting.pop_first() else {
                break;
            };
            for &f in &request.feeds {
                self.feeds[f].used_watts += request.watts;
            }
            grants.push(Grant {
                fru: request.order.fru,
                level: request.level,
                watts: request.watts,
            });
            self.powered.insert(request.order.fru, request);
        }
        grants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fru(site: u8) -> FruAddr {
        FruAddr {
            ipmb: 0x80 + 2 * site,
            fru_id: 0,
        }
    }

    fn ask(site: u8, priority: u8, watts: u32) -> Request {
        Request {
            order: PowerOrder {
                priority,
                site_number: site,
                fru: fru(site),
            },
            level: 2,
            watts,
            feeds: vec![0, 1],
        }
    }

    fn granted(grants: &[Grant]) -> Vec<FruAddr> {
        grants.iter().map(|g| g.fru).collect()
    }

    #[test]
    fn feeds_that_cover_two_boards_refuse_the_third_until_one_deactivates() {
        let mut budget = PowerBudget::new([500, 500]);
        assert_eq!(
            granted(&budget.request(ask(1, 100, 200)).unwrap()),
            [fru(1)]
        );
        assert_eq!(
            granted(&budget.request(ask(2, 100, 200)).unwrap()),
            [fru(2)]
        );
        assert!(budget.request(ask(3, 100, 200)).unwrap().is_empty());
        assert!(budget.is_waiting(fru(3)));
        assert_eq!(budget.feeds()[0].used_watts, 400);
        assert_eq!(budget.feeds()[1].used_watts, 400);
        let grants = budget.release(fru(1));
        assert_eq!(
            grants,
            [Grant {
                fru: fru(3),
                level: 2,
                watts: 200
            }]
        );
        assert!(budget.is_powered(fru(3)) && !budget.is_powered(fru(1)));
        assert_eq!(budget.feeds()[0].used_watts, 400);
    }

    #[test]
    fn every_feed_named_must_cover_the_board() {
        let mut budget = PowerBudget::new([1000, 300]);
        let mut wide = ask(1, 100, 200);
        wide.feeds = vec![0];
        assert_eq!(budget.request(wide).unwrap().len(), 1);
        assert_eq!(budget.request(ask(2, 100, 200)).unwrap().len(), 1);
        // Feed 0 has room (400 of 1000) but feed 1 does not (200 + 200 > 300).
        assert!(budget.request(ask(3, 100, 200)).unwrap().is_empty());
    }

    #[test]
    fn waiting_frus_are_granted_by_priority_then_site_whatever_the_arrival() {
        let mut budget = PowerBudget::new([400, 400]);
        budget.request(ask(1, 100, 400)).unwrap();
        for (site, priority) in [(5, 100), (4, 100), (6, 10)] {
            assert!(budget.request(ask(site, priority, 150)).unwrap().is_empty());
        }
        assert_eq!(
            budget.waiting().collect::<Vec<_>>(),
            [fru(6), fru(4), fru(5)]
        );
        let grants = budget.release(fru(1));
        assert_eq!(granted(&grants), [fru(6), fru(4)]);
        assert_eq!(budget.waiting().collect::<Vec<_>>(), [fru(5)]);
    }

    #[test]
    fn the_head_of_the_queue_blocks_smaller_requests_behind_it() {
        let mut budget = PowerBudget::new([500, 500]);
        budget.request(ask(1, 100, 300)).unwrap();
        assert!(budget.request(ask(2, 10, 300)).unwrap().is_empty());
        // 100 W would fit, but site 2 (priority 10) is first in line.
        assert!(budget.request(ask(3, 100, 100)).unwrap().is_empty());
        assert_eq!(granted(&budget.release(fru(1))), [fru(2), fru(3)]);
    }

    #[test]
    fn withdrawing_a_waiting_fru_lets_the_next_one_through() {
        let mut budget = PowerBudget::new([500, 500]);
        budget.request(ask(1, 100, 300)).unwrap();
        budget.request(ask(2, 10, 300)).unwrap();
        budget.request(ask(3, 100, 100)).unwrap();
        assert_eq!(granted(&budget.release(fru(2))), [fru(3)]);
        assert!(!budget.is_waiting(fru(2)));
        // Releasing an unknown FRU changes nothing.
        let before = budget.clone();
        assert!(budget.release(fru(9)).is_empty());
        assert_eq!(budget, before);
    }

    #[test]
    fn bad_requests_are_refused_and_change_nothing() {
        let mut budget = PowerBudget::new([500]);
        let mut one_feed = ask(1, 100, 100);
        one_feed.feeds = vec![0];
        budget.request(one_feed.clone()).unwrap();
        let before = budget.clone();
        assert_eq!(
            budget.request(one_feed),
            Err(PowerError::AlreadyAsked(fru(1)))
        );
        assert_eq!(
            budget.request(ask(2, 100, 100)),
            Err(PowerError::UnknownFeed {
                fru: fru(2),
                feed: 1,
                feeds: 1
            })
        );
        assert_eq!(budget, before);
    }
}
