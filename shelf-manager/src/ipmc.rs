//! The IPMC side: what the shelf manager sends to a board's IPM controller, what comes back,
//! the [`Ipmc`] trait the shelf manager talks through, and [`SimIpmc`], simulated boards that
//! answer like real ones.
//!
//! A real shelf reaches its IPMCs over IPMB-0; that implementation of [`Ipmc`] is not in this
//! crate. [`SimIpmc`] plays every board of a [`Config`]: the test (or demo) inserts boards,
//! moves their handles and pulls them out, and each board honours the failure knobs of its
//! `[board.sim]` table.

use std::collections::VecDeque;

use crate::hotswap::{Command, FruAddr};
use crate::model::{Config, SimKnobs};

/// A message from the shelf manager to an IPMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToIpmc {
    /// A hot-swap command (Set FRU Activation, Set Power Level).
    Command(Command),
    /// Get Power Level, desired steady state: the level and watts the FRU asks for.
    GetDesiredPower,
    /// Get Device ID, used as a health check.
    GetDeviceId,
}

/// What an IPMC tells the shelf manager: answers and the board's own events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Report {
    /// The board was inserted and has management power.
    Inserted,
    /// The handle closed.
    HandleClosed,
    /// The handle opened.
    HandleOpened,
    /// The board was pulled out.
    Extracted,
    /// Answer to [`ToIpmc::GetDesiredPower`].
    DesiredPower {
        /// The level asked for.
        level: u8,
        /// The watts at that level.
        watts: u32,
    },
    /// The payload is powered and running.
    ActivationDone,
    /// The payload is off after a deactivation.
    DeactivationDone,
    /// The payload failed and is shutting down.
    PayloadFailed,
    /// Answer to [`ToIpmc::GetDeviceId`].
    Alive,
}

/// The IPMC did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("IPMC {0} does not answer")]
pub struct NoAnswer(pub FruAddr);

/// The shelf manager's view of the IPMCs.
pub trait Ipmc {
    /// Delivers `message` to the IPMC of `to`; its answers come from [`Ipmc::poll_report`].
    ///
    /// # Errors
    /// [`NoAnswer`] when the IPMC cannot be reached.
    fn send(&mut self, to: FruAddr, message: ToIpmc) -> Result<(), NoAnswer>;

    /// The next report from any IPMC, in the order they happened.
    fn poll_report(&mut self) -> Option<(FruAddr, Report)>;

    /// Moves the injector handle of `fru`'s board (`closed` or open), for an operator at a
    /// simulated shelf. `None` when the IPMCs are real boards whose handles only people
    /// move (the default); `Some(false)` when the board is not in.
    fn simulate_handle(&mut self, fru: FruAddr, closed: bool) -> Option<bool> {
        let _ = (fru, closed);
        None
    }
}

/// One simulated board.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SimBoard {
    name: String,
    addr: FruAddr,
    desired_level: u8,
    desired_watts: u32,
    knobs: SimKnobs,
    present: bool,
    answering: bool,
    /// Between Set FRU Activation (activate) and the end of the deactivation.
    activating: bool,
    payload_level: u8,
}

/// Simulated IPMCs for every board of a shelf model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIpmc {
    boards: Vec<SimBoard>,
    reports: VecDeque<(FruAddr, Report)>,
}

impl SimIpmc {
    /// One simulated board per `[[board]]`, none inserted yet.
    pub fn new(config: &Config) -> SimIpmc {
        let boards = config
            .board
            .iter()
            .map(|b| SimBoard {
                name: b.name.clone(),
                addr: FruAddr {
                    ipmb: b.ipmb_address,
                    fru_id: b.fru_id,
                },
                desired_level: b.desired_level(),
                desired_watts: b.watts_at(b.desired_level()),
                knobs: b.sim,
                present: false,
                answering: true,
                activating: false,
                payload_level: 0,
            })
            .collect();
        SimIpmc {
            boards,
            reports: VecDeque::new(),
        }
    }

    /// Inserts the board called `name` (handle open). Returns `false` for an unknown name or a
    /// board already in.
    pub fn insert(&mut self, name: &str) -> bool {
        self.physical(
            name,
            |b| !b.present,
            Report::Inserted,
            |b| {
                b.present = true;
                b.answering = true;
            },
        )
    }

    /// Closes the handle of the board called `name`; `false` if it is not in.
    pub fn close_handle(&mut self, name: &str) -> bool {
        self.physical(name, |b| b.present, Report::HandleClosed, |_| {})
    }

    /// Opens the handle of the board called `name`; `false` if it is not in.
    pub fn open_handle(&mut self, name: &str) -> bool {
        self.physical(name, |b| b.present, Report::HandleOpened, |_| {})
    }

    /// Pulls the board called `name` out; `false` if it is not in.
    pub fn extract(&mut self, name: &str) -> bool {
        self.physical(
            name,
            |b| b.present,
            Report::Extracted,
            |b| {
                b.present = false;
                b.activating = false;
                b.payload_level = 0;
            },
        )
    }

    /// Lets the board called `name` answer again after it vanished; `false` for an unknown
    /// name.
    pub fn reconnect(&mut self, name: &str) -> bool {
        match self.boards.iter_mut().find(|b| b.name == name) {
            Some(b) => {
                b.answering = true;
                true
            }
            None => false,
        }
    }

    /// The payload power level of the board called `name` (0: off).
    pub fn payload_level(&self, name: &str) -> Option<u8> {
        self.boards
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.payload_level)
    }

    fn physical(
        &mut self,
        name: &str,
        allowed: impl Fn(&SimBoard) -> bool,
        report: Report,
        change: impl FnOnce(&mut SimBoard),
    ) -> bool {
        let Some(board) = self.boards.iter_mut().find(|b| b.name == name) else {
            return false;
        };
        if !allowed(board) {
            return false;
        }
        change(board);
        // A board whose IPMC does not answer reports nothing, not even its extraction.
        if board.answering {
            self.reports.push_back((board.addr, report));
        }
        true
    }
}

impl Ipmc for SimIpmc {
    fn simulate_handle(&mut self, fru: FruAddr, closed: bool) -> Option<bool> {
        let name = self.boards.iter().find(|b| b.addr == fru)?.name.clone();
        Some(if closed {
            self.close_handle(&name)
        } else {
            self.open_handle(&name)
        })
    }

    fn send(&mut self, to: FruAddr, message: ToIpmc) -> Result<(), NoAnswer> {
        let Some(board) = self.boards.iter_mut().find(|b| b.addr == to) else {
            return Err(NoAnswer(to));
        };
        if !board.present || !board.answering {
            return Err(NoAnswer(to));
        }
        let mut report = |r| self.reports.push_back((to, r));
        match message {
            ToIpmc::GetDeviceId => report(Report::Alive),
            ToIpmc::GetDesiredPower => report(Report::DesiredPower {
                level: board.desired_level,
                watts: board.desired_watts,
            }),
            ToIpmc::Command(Command::SetFruActivation(true)) => board.activating = true,
            ToIpmc::Command(Command::SetFruActivation(false)) => {
                // Deactivating an FRU that started activating ends in M1 with its payload off;
                // one still in M2 goes straight back to M1 and reports nothing.
                if board.activating {
                    board.activating = false;
                    board.payload_level = 0;
                    report(Report::DeactivationDone);
                }
            }
            ToIpmc::Command(Command::SetPowerLevel(0)) => board.payload_level = 0,
            ToIpmc::Command(Command::SetPowerLevel(level)) => {
                if board.knobs.fails_to_activate {
                    // The payload dies at power-up; the IPMC shuts it down on its own.
                    board.activating = false;
                    report(Report::PayloadFailed);
                    report(Report::DeactivationDone);
                } else {
                    board.payload_level = level;
                    report(Report::ActivationDone);
                    if board.knobs.vanishes {
                        board.answering = false;
                    }
                }
            }
        }
        Ok(())
    }

    fn poll_report(&mut self) -> Option<(FruAddr, Report)> {
        self.reports.pop_front()
    }
}
