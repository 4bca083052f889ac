//! The shelf core: the model, one hot-swap machine per FRU, the power budget and the SEL,
//! driven by inputs, with effects out as values.
//!
//! **Inputs:** [`Shelf::handle_report`] (what an IPMC said), [`Shelf::handle_no_answer`] (an
//! IPMC did not answer), [`Shelf::activate`], [`Shelf::deactivate`] and [`Shelf::set_policy`]
//! (requests from a system manager or operator), [`Shelf::check_health`] (ask every present
//! IPMC whether it is there, for the caller's timer).
//!
//! **Outputs:** after any input, drain [`Shelf::poll_effect`]: messages to send to IPMCs and
//! events for event receivers. Every event is also logged in the [`Sel`] (see there for what
//! happens when it is full). [`drive`] does the draining against an [`Ipmc`] until nothing
//! moves; the shelf itself does no I/O, starts no thread and reads no clock.
//!
//! **Policy:** the shelf manager activates a FRU as soon as it reaches M2 and deactivates it
//! as soon as it reaches M5 (the activation policy bits hold a FRU in M1 or M4 before that).
//! In M3 it asks the FRU for its desired power level and hands the answer to the
//! [`PowerBudget`]; a FRU the budget cannot power now waits in M3 and a `PowerDenied` record
//! goes into the SEL. Power comes back when a FRU reaches M1 or M0 (and a waiting FRU's place
//! in the queue is dropped when it leaves M3); the budget then grants the next FRUs in its
//! order. A FRU whose IPMC stops answering goes to M7 and keeps the power it was granted,
//! since the shelf cannot know that its payload is off; a waiting FRU loses its place and asks
//! again when it is back in M3.

use std::collections::VecDeque;

use crate::hotswap::{Fru, FruAddr, Input, MState, Policy, Refused, Step};
use crate::ipmc::{Ipmc, Report, ToIpmc};
use crate::model::Config;
use crate::power::{Grant, PowerBudget, PowerOrder, Request};
use crate::sel::{Sel, SelBody};

/// Something the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Send `message` to the IPMC of `to`; report a missing answer with
    /// [`Shelf::handle_no_answer`].
    Send {
        /// The FRU.
        to: FruAddr,
        /// The message.
        message: ToIpmc,
    },
    /// An event for the event receivers (also in the SEL unless it was full).
    Event {
        /// The FRU.
        fru: FruAddr,
        /// What happened.
        body: SelBody,
    },
}

/// An input the shelf refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShelfError {
    /// No FRU at that address in the model.
    #[error("no FRU {0} in the shelf")]
    UnknownFru(FruAddr),
    /// The FRU's hot-swap state does not accept the input.
    #[error("FRU {fru}: {refused}")]
    Refused {
        /// The FRU.
        fru: FruAddr,
        /// What its state machine said.
        refused: Refused,
    },
    /// A report the FRU's state does not expect.
    #[error("FRU {fru}: {report:?} is not expected in {state}")]
    Unexpected {
        /// The FRU.
        fru: FruAddr,
        /// The report.
        report: Report,
        /// The FRU's state.
        state: MState,
    },
}

/// One FRU of the shelf.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    name: String,
    addr: FruAddr,
    order: PowerOrder,
    feeds: Vec<usize>,
    fru: Fru,
}

/// The shelf manager's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shelf {
    slots: Vec<Slot>,
    budget: PowerBudget,
    sel: Sel,
    effects: VecDeque<Effect>,
    manual_activation: bool,
}

impl Shelf {
    /// The shelf of `config`, every FRU in M0.
    pub fn new(config: &Config) -> Shelf {
        let slots = config
            .board
            .iter()
            .map(|b| {
                let addr = FruAddr {
                    ipmb: b.ipmb_address,
                    fru_id: b.fru_id,
                };
                Slot {
                    name: b.name.clone(),
                    addr,
                    order: PowerOrder {
                        priority: b.priority,
                        site_number: b.site_number,
                        fru: addr,
                    },
                    feeds: b
                        .feeds
                        .iter()
                        .filter_map(|f| config.feed_index(f))
                        .collect(),
                    fru: Fru::new(),
                }
            })
            .collect();
        Shelf {
            slots,
            budget: PowerBudget::new(config.feed.iter().map(|f| f.max_watts)),
            sel: Sel::new(config.shelf.sel_capacity),
            effects: VecDeque::new(),
            manual_activation: false,
        }
    }

    /// With `true`, the shelf no longer activates FRUs reaching M2 nor deactivates FRUs
    /// reaching M5 by itself: they wait there for a system manager's Set FRU Activation
    /// ([`Shelf::activate`], [`Shelf::deactivate`]). The default (`false`) is automatic.
    pub fn set_manual_activation(&mut self, manual: bool) {
        self.manual_activation = manual;
    }

    /// The FRU of the board called `name`.
    pub fn fru(&self, name: &str) -> Option<FruAddr> {
        self.slots.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    /// The hot-swap state of `fru`.
    pub fn state(&self, fru: FruAddr) -> Option<MState> {
        self.slot(fru).ok().map(|i| self.slots[i].fru.state())
    }

    /// The hot-swap state of the board called `name`.
    pub fn state_of(&self, name: &str) -> Option<MState> {
        self.fru(name).and_then(|f| self.state(f))
    }

    /// The activation policy of `fru`.
    pub fn policy(&self, fru: FruAddr) -> Option<Policy> {
        self.slot(fru).ok().map(|i| self.slots[i].fru.policy())
    }

    /// Every FRU's address and hot-swap machine, in model order.
    pub fn frus(&self) -> impl Iterator<Item = (FruAddr, &Fru)> + '_ {
        self.slots.iter().map(|s| (s.addr, &s.fru))
    }

    /// The shelf of `config` with these FRU machines (model order), budget and SEL, for
    /// [`crate::replica`], which checks them first. `None` when `frus` does not have one
    /// machine per board.
    pub(crate) fn from_parts(
        config: &Config,
        frus: Vec<Fru>,
        budget: PowerBudget,
        sel: Sel,
    ) -> Option<Shelf> {
        let mut shelf = Shelf::new(config);
        if frus.len() != shelf.slots.len() {
            return None;
        }
        for (slot, fru) in shelf.slots.iter_mut().zip(frus) {
            slot.fru = fru;
        }
        shelf.budget = budget;
        shelf.sel = sel;
        Some(shelf)
    }

    /// The power request `fru` makes for `level` drawing `watts` (its place in the order and
    /// its feeds from the model).
    pub(crate) fn power_request(&self, fru: FruAddr, level: u8, watts: u32) -> Option<Request> {
        let slot = &self.slots[self.slot(fru).ok()?];
        Some(Request {
            order: slot.order,
            level,
            watts,
            feeds: slot.feeds.clone(),
        })
    }

    /// Whether the shelf activates and deactivates FRUs itself (see
    /// [`Shelf::set_manual_activation`]).
    pub fn manual_activation(&self) -> bool {
        self.manual_activation
    }

    /// The power budget.
    pub fn budget(&self) -> &PowerBudget {
        &self.budget
    }

    /// The system event log.
    pub fn sel(&self) -> &Sel {
        &self.sel
    }

    /// Empties the SEL (Clear SEL).
    pub fn clear_sel(&mut self) {
        self.sel.clear();
    }

    /// The next thing to do; drain it after every input.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// What the IPMC of `from` reported.
    ///
    /// # Errors
    /// [`ShelfError`] when `from` is unknown or its state does not accept the report; nothing
    /// changed then.
    pub fn handle_report(&mut self, from: FruAddr, report: Report) -> Result<(), ShelfError> {
        let i = self.slot(from)?;
        let state = self.slots[i].fru.state();
        let input = match report {
            Report::Inserted => Input::Inserted,
            Report::HandleClosed => Input::HandleClosed,
            Report::HandleOpened => Input::HandleOpened,
            Report::Extracted => Input::SurpriseExtraction,
            Report::ActivationDone => Input::ActivationDone,
            Report::DeactivationDone => Input::DeactivationDone,
            Report::PayloadFailed => Input::PayloadFailed,
            Report::Alive if state == MState::M7 => Input::CommunicationRestored,
            Report::Alive => return Ok(()),
            Report::DesiredPower { level, watts } => {
                let asking = state == MState::M3
                    && self.slots[i].fru.granted_level().is_none()
                    && !self.budget.is_waiting(from);
                if !asking {
                    return Err(ShelfError::Unexpected {
                        fru: from,
                        report,
                        state,
                    });
                }
                self.ask_power(i, level, watts);
                return Ok(());
            }
        };
        self.apply(i, input)
    }

    /// The IPMC of `fru` did not answer: a present FRU goes to M7.
    ///
    /// # Errors
    /// [`ShelfError::UnknownFru`] for an address not in the model.
    pub fn handle_no_answer(&mut self, fru: FruAddr) -> Result<(), ShelfError> {
        let i = self.slot(fru)?;
        match self.slots[i].fru.state() {
            MState::M0 | MState::M7 => Ok(()),
            _ => self.apply(i, Input::CommunicationLost),
        }
    }

    /// Set FRU Activation (activate) from a system manager: M2 → M3, or M5 → M4 (the
    /// deactivation refused).
    ///
    /// # Errors
    /// [`ShelfError`] when the FRU is unknown or its state does not accept it.
    pub fn activate(&mut self, fru: FruAddr) -> Result<(), ShelfError> {
        let i = self.slot(fru)?;
        self.apply(i, Input::Activate)
    }

    /// Set FRU Activation (deactivate) from a system manager: M2 → M1, M3/M4/M5 → M6.
    ///
    /// # Errors
    /// [`ShelfError`] when the FRU is unknown or its state does not accept it.
    pub fn deactivate(&mut self, fru: FruAddr) -> Result<(), ShelfError> {
        let i = self.slot(fru)?;
        self.apply(i, Input::Deactivate)
    }

    /// Set FRU Activation Policy.
    ///
    /// # Errors
    /// [`ShelfError`] when the FRU is unknown or absent or unreachable (M0, M7).
    pub fn set_policy(&mut self, fru: FruAddr, policy: Policy) -> Result<(), ShelfError> {
        let i = self.slot(fru)?;
        self.apply(i, Input::SetPolicy(policy))
    }

    /// Asks every present IPMC for its device id; the caller calls this on its own timer.
    pub fn check_health(&mut self) {
        for slot in &self.slots {
            if slot.fru.state() != MState::M0 {
                self.effects.push_back(Effect::Send {
                    to: slot.addr,
                    message: ToIpmc::GetDeviceId,
                });
            }
        }
    }

    fn slot(&self, fru: FruAddr) -> Result<usize, ShelfError> {
        self.slots
            .iter()
            .position(|s| s.addr == fru)
            .ok_or(ShelfError::UnknownFru(fru))
    }

    /// Applies `input` to slot `i`, then everything the shelf does in reaction, in order.
    fn apply(&mut self, i: usize, input: Input) -> Result<(), ShelfError> {
        let mut work = VecDeque::from([(i, input)]);
        let mut first = true;
        while let Some((i, input)) = work.pop_front() {
            let fru = self.slots[i].addr;
            let step = match self.slots[i].fru.handle(input) {
                Ok(step) => step,
                Err(refused) if first => return Err(ShelfError::Refused { fru, refused }),
                // The reactions below only feed inputs their state accepts.
                Err(refused) => {
                    debug_assert!(false, "the shelf fed {fru} {refused}");
                    continue;
                }
            };
            first = false;
            self.react(i, step, &mut work);
        }
        Ok(())
    }

    fn react(&mut self, i: usize, step: Step, work: &mut VecDeque<(usize, Input)>) {
        let fru = self.slots[i].addr;
        if let Some(change) = step.change {
            self.event(fru, SelBody::HotSwap(change));
        }
        if let Some(command) = step.command {
            self.send(fru, ToIpmc::Command(command));
        }
        if step.release_power {
            let grants = self.budget.release(fru);
            self.grant(&grants, work);
        }
        let Some(change) = step.change else {
            return;
        };
        match change.new {
            MState::M2 if !self.manual_activation => work.push_back((i, Input::Activate)),
            MState::M5 if !self.manual_activation => work.push_back((i, Input::Deactivate)),
            MState::M3 if self.slots[i].fru.granted_level().is_none() => {
                self.send(fru, ToIpmc::GetDesiredPower);
            }
            MState::M7 if change.previous == MState::M3 && self.budget.is_waiting(fru) => {
                let grants = self.budget.release(fru);
                self.grant(&grants, work);
            }
            _ => {}
        }
    }

    /// Queues the power grants as inputs of their FRUs.
    fn grant(&mut self, grants: &[Grant], work: &mut VecDeque<(usize, Input)>) {
        for g in grants {
            if let Ok(i) = self.slot(g.fru) {
                work.push_back((i, Input::PowerGranted { level: g.level }));
            }
        }
    }

    fn ask_power(&mut self, i: usize, level: u8, watts: u32) {
        let slot = &self.slots[i];
        let fru = slot.addr;
        let request = Request {
            order: slot.order,
            level,
            watts,
            feeds: slot.feeds.clone(),
        };
        // Feeds come from the validated model and the FRU is not asking yet (checked above).
        let grants = self.budget.request(request).unwrap_or_default();
        let mut work = VecDeque::new();
        self.grant(&grants, &mut work);
        if !grants.iter().any(|g| g.fru == fru) {
            self.event(fru, SelBody::PowerDenied { level, watts });
            work.push_back((i, Input::PowerDenied));
        }
        while let Some((i, input)) = work.pop_front() {
            if let Ok(step) = self.slots[i].fru.handle(input) {
                self.react(i, step, &mut work);
            }
        }
    }

    fn send(&mut self, to: FruAddr, message: ToIpmc) {
        self.effects.push_back(Effect::Send { to, message });
    }

    fn event(&mut self, fru: FruAddr, body: SelBody) {
        let _stored = self.sel.add(fru, body);
        self.effects.push_back(Effect::Event { fru, body });
    }
}

/// What [`drive`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Driven {
    /// The events, in order.
    pub events: Vec<(FruAddr, SelBody)>,
    /// Reports the shelf refused.
    pub refused: Vec<ShelfError>,
    /// Messages sent to IPMCs.
    pub sent: Vec<(FruAddr, ToIpmc)>,
}

impl Driven {
    /// The hot-swap changes of `fru`, as (previous, new) pairs.
    pub fn transitions(&self, fru: FruAddr) -> Vec<(MState, MState)> {
        self.events
            .iter()
            .filter(|(f, _)| *f == fru)
            .filter_map(|(_, b)| match b {
                SelBody::HotSwap(c) => Some((c.previous, c.new)),
                SelBody::PowerDenied { .. } => None,
            })
            .collect()
    }
}

/// Runs `shelf` against `ipmc` until neither has anything left to do: drains the shelf's
/// effects (sending messages, reporting missing answers) and feeds the IPMCs' reports back.
/// Stops after `max_steps` reports so a misbehaving IPMC cannot loop forever.
pub fn drive(shelf: &mut Shelf, ipmc: &mut impl Ipmc, max_steps: usize) -> Driven {
    let mut driven = Driven::default();
    for _ in 0..max_steps {
        while let Some(effect) = shelf.poll_effect() {
            match effect {
                Effect::Send { to, message } => {
                    driven.sent.push((to, message));
                    if ipmc.send(to, message).is_err()
                        && let Err(e) = shelf.handle_no_answer(to)
                    {
                        driven.refused.push(e);
                    }
                }
                Effect::Event { fru, body } => driven.events.push((fru, body)),
            }
        }
        let Some((from, report)) = ipmc.poll_report() else {
            break;
        };
        if let Err(e) = shelf.handle_report(from, report) {
            driven.refused.push(e);
        }
    }
    driven
}
