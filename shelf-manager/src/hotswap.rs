//! The PICMG 3.0 hot-swap state machine of one FRU, M0 (not installed) … M7 (communication
//! lost), as the shelf manager keeps it.
//!
//! [`Fru::handle`] takes one [`Input`] and returns a [`Step`]: the state change with its PICMG
//! cause (the shelf manager logs it as a hot-swap event), the command to send to the FRU's IPMC,
//! and whether the FRU's power goes back to the budget. An input the current state does not
//! accept is refused with [`Refused`] and changes nothing. The machine does no I/O and reads no
//! clock.
//!
//! The transitions (cause in brackets):
//!
//! | from | input | to |
//! |---|---|---|
//! | M0 | [`Input::Inserted`] (management power up) | M1 \[0\] |
//! | M1 | [`Input::HandleClosed`], policy not Locked | M2 \[2\] (stays in M1 when Locked) |
//! | M1 | [`Input::SetPolicy`] clearing Locked | M2 \[3\] |
//! | M2 | [`Input::HandleOpened`] | M1 \[2\] |
//! | M2 | [`Input::Activate`] | M3 \[1\], command Set FRU Activation (activate) |
//! | M2 | [`Input::Deactivate`] | M1 \[1\], command Set FRU Activation (deactivate) |
//! | M3 | [`Input::PowerGranted`] | M3, command Set Power Level |
//! | M3 | [`Input::PowerDenied`] | M3 (waits for power) |
//! | M3 | [`Input::ActivationDone`], power granted | M4 \[0\] |
//! | M3, M4, M5 | [`Input::Deactivate`] | M6 \[1\], command Set FRU Activation (deactivate) |
//! | M3 (powered), M4, M5 | [`Input::PayloadFailed`] | M6 \[9\] |
//! | M4 | [`Input::HandleOpened`], not Deactivation-Locked | M5 \[2\] (stays in M4 when locked) |
//! | M4 | [`Input::SetPolicy`] clearing Deactivation-Locked | M5 \[3\] |
//! | M5 | [`Input::HandleClosed`] | M4 \[2\] |
//! | M5 | [`Input::Activate`] (deactivation refused) | M4 \[1\], command Set FRU Activation (activate) |
//! | M6 | [`Input::DeactivationDone`] | M1 \[0\], power returned |
//! | M1…M6 | [`Input::SurpriseExtraction`] | M0 \[6\], power returned |
//! | M1…M6 | [`Input::CommunicationLost`] | M7 \[4\] |
//! | M7 | [`Input::CommunicationRestored`] | the state before M7 \[4\] |
//!
//! [`Input::SetPolicy`] is accepted in M1…M6; when it causes no transition it only stores the
//! bits. Everything else is refused.

use std::fmt;

/// Where a FRU is: its IPMC's IPMB-0 address and its FRU device id inside that IPMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FruAddr {
    /// The IPMC's IPMB-0 address.
    pub ipmb: u8,
    /// The FRU device id (0: the IPMC itself).
    pub fru_id: u8,
}

impl fmt::Display for FruAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}/{}", self.ipmb, self.fru_id)
    }
}

/// A hot-swap state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MState {
    /// Not installed (or no management power).
    M0 = 0,
    /// Inactive: management power only, payload off.
    M1 = 1,
    /// Activation request.
    M2 = 2,
    /// Activation in progress: power negotiation happens here.
    M3 = 3,
    /// Active: payload powered.
    M4 = 4,
    /// Deactivation request.
    M5 = 5,
    /// Deactivation in progress.
    M6 = 6,
    /// Communication lost.
    M7 = 7,
}

impl MState {
    /// Every state, in order.
    pub const ALL: [MState; 8] = [
        MState::M0,
        MState::M1,
        MState::M2,
        MState::M3,
        MState::M4,
        MState::M5,
        MState::M6,
        MState::M7,
    ];

    /// The state number (0..=7), as in event data and the hot-swap sensor's bit mask.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for MState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "M{}", self.code())
    }
}

/// Why a state changed: the PICMG 3.0 cause code carried in the hot-swap event's ED2 high
/// nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cause {
    /// 0: normal state change.
    Normal = 0,
    /// 1: change commanded by the shelf manager (Set FRU Activation).
    ShelfManagerCommand = 1,
    /// 2: operator handle switch.
    HandleSwitch = 2,
    /// 3: FRU programmatic action (activation policy bits).
    Programmatic = 3,
    /// 4: communication lost or regained.
    Communication = 4,
    /// 5: communication lost or regained, detected locally.
    CommunicationLocal = 5,
    /// 6: surprise extraction.
    SurpriseExtraction = 6,
    /// 7: change due to provided information.
    ProvidedInformation = 7,
    /// 8: invalid hardware address.
    InvalidHardwareAddress = 8,
    /// 9: unexpected deactivation.
    UnexpectedDeactivation = 9,
    /// 0xF: unknown.
    Unknown = 0xF,
}

impl Cause {
    /// The 4-bit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The FRU activation policy bits (Set/Get FRU Activation Policy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Bit 0: stay in M1 even when the handle closes.
    pub locked: bool,
    /// Bit 1: stay in M4 even when the handle opens.
    pub deactivation_locked: bool,
}

/// What happens to a FRU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// The FRU is inserted and has management power.
    Inserted,
    /// The operator closes the injector handle.
    HandleClosed,
    /// The operator opens the injector handle.
    HandleOpened,
    /// The shelf manager activates the FRU (Set FRU Activation, activate).
    Activate,
    /// The shelf manager deactivates the FRU (Set FRU Activation, deactivate).
    Deactivate,
    /// The power budget grants the FRU this power level (1..=20).
    PowerGranted {
        /// The level granted.
        level: u8,
    },
    /// The power budget cannot power the FRU now; it waits in M3.
    PowerDenied,
    /// The IPMC reports its payload on.
    ActivationDone,
    /// The IPMC reports its payload failed (it shuts down on its own).
    PayloadFailed,
    /// The IPMC reports its payload off.
    DeactivationDone,
    /// The shelf manager cannot reach the IPMC any more.
    CommunicationLost,
    /// The IPMC answers again.
    CommunicationRestored,
    /// The FRU was pulled out without deactivation.
    SurpriseExtraction,
    /// New activation policy bits.
    SetPolicy(Policy),
}

/// A state change, as logged in a hot-swap event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Change {
    /// The state before.
    pub previous: MState,
    /// The state after.
    pub new: MState,
    /// Why.
    pub cause: Cause,
}

impl Change {
    /// The hot-swap event's three event data bytes for FRU `fru_id`: ED1 `0xA0 | new`,
    /// ED2 `cause << 4 | previous`, ED3 the FRU device id (PICMG 3.0 FRU Hot Swap sensor,
    /// sensor type 0xF0, event type 0x6F).
    pub fn event_data(&self, fru_id: u8) -> [u8; 3] {
        [
            0xA0 | self.new.code(),
            self.cause.code() << 4 | self.previous.code(),
            fru_id,
        ]
    }
}

/// A command for the FRU's IPMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Set FRU Activation: `true` activate, `false` deactivate.
    SetFruActivation(bool),
    /// Set Power Level: 0 is payload off, 1..=20 a level the FRU described.
    SetPowerLevel(u8),
}

/// What one accepted input does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Step {
    /// The state change, if the state changed.
    pub change: Option<Change>,
    /// The command to send to the IPMC.
    pub command: Option<Command>,
    /// The FRU neither draws nor waits for power any more: the budget takes it back.
    pub release_power: bool,
}

/// An input the FRU's state does not accept; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not accepted in {state}")]
pub struct Refused {
    /// The state that refused it.
    pub state: MState,
    /// The input.
    pub input: Input,
}

/// One FRU's hot-swap state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fru {
    state: MState,
    /// The state to return to when communication comes back (meaningful in M7).
    before_lost: MState,
    policy: Policy,
    /// The power level granted, from the grant to the power's return.
    granted: Option<u8>,
}

impl Default for Fru {
    fn default() -> Self {
        Fru::new()
    }
}

impl Fru {
    /// A FRU in M0 with a clear policy.
    pub fn new() -> Fru {
        Fru {
            state: MState::M0,
            before_lost: MState::M0,
            policy: Policy::default(),
            granted: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> MState {
        self.state
    }

    /// The activation policy bits.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The power level granted, if any.
    pub fn granted_level(&self) -> Option<u8> {
        self.granted
    }

    /// The state to return to when communication comes back (meaningful in M7).
    pub fn state_before_lost(&self) -> MState {
        self.before_lost
    }

    /// A FRU with exactly these parts, for [`crate::replica`] (which checks them against the
    /// rest of the shelf before building one).
    pub(crate) fn from_parts(
        state: MState,
        before_lost: MState,
        policy: Policy,
        granted: Option<u8>,
    ) -> Fru {
        Fru {
            state,
            before_lost,
            policy,
            granted,
        }
    }

    /// Applies `input`.
    ///
    /// # Errors
    /// [`Refused`] when the state does not accept the input; the FRU is unchanged.
    pub fn handle(&mut self, input: Input) -> Result<Step, Refused> {
        use Cause as C;
        use Input as I;
        use MState::*;
        let refused = Refused {
            state: self.state,
            input,
        };
        let step = match (self.state, input) {
            (M0, I::Inserted) => self.enter(M1, C::Normal),
            (M1, I::HandleClosed) if self.policy.locked => Step::default(),
            (M1, I::HandleClosed) => self.enter(M2, C::HandleSwitch),
            (M2, I::HandleOpened) => self.enter(M1, C::HandleSwitch),
            (M2, I::Activate) => self
                .enter(M3, C::ShelfManagerCommand)
                .with(Command::SetFruActivation(true)),
            (M2, I::Deactivate) => self
                .enter(M1, C::ShelfManagerCommand)
                .with(Command::SetFruActivation(false)),
            (M3, I::PowerGranted { level }) if self.granted.is_none() && level > 0 => {
                self.granted = Some(level);
                Step::default().with(Command::SetPowerLevel(level))
            }
            (M3, I::PowerDenied) if self.granted.is_none() => Step::default(),
            (M3, I::ActivationDone) if self.granted.is_some() => self.enter(M4, C::Normal),
            (M3 | M4 | M5, I::Deactivate) => self
                .enter(M6, C::ShelfManagerCommand)
                .with(Command::SetFruActivation(false)),
            (M3, I::PayloadFailed) if self.granted.is_some() => {
                self.enter(M6, C::UnexpectedDeactivation)
            }
            (M4 | M5, I::PayloadFailed) => self.enter(M6, C::UnexpectedDeactivation),
            (M4, I::HandleOpened) if self.policy.deactivation_locked => Step::default(),
            (M4, I::HandleOpened) => self.enter(M5, C::HandleSwitch),
            (M5, I::HandleClosed) => self.enter(M4, C::HandleSwitch),
            (M5, I::Activate) => self
                .enter(M4, C::ShelfManagerCommand)
                .with(Command::SetFruActivation(true)),
            (M6, I::DeactivationDone) => self.enter(M1, C::Normal),
            (M1 | M2 | M3 | M4 | M5 | M6, I::SurpriseExtraction) => {
                self.enter(M0, C::SurpriseExtraction)
            }
            (M1 | M2 | M3 | M4 | M5 | M6, I::CommunicationLost) => {
                self.before_lost = self.state;
                self.enter(M7, C::Communication)
            }
            (M7, I::CommunicationRestored) => self.enter(self.before_lost, C::Communication),
            (M1 | M2 | M3 | M4 | M5 | M6, I::SetPolicy(new)) => {
                let old = std::mem::replace(&mut self.policy, new);
                match self.state {
                    M1 if old.locked && !new.locked => self.enter(M2, C::Programmatic),
                    M4 if old.deactivation_locked && !new.deactivation_locked => {
                        self.enter(M5, C::Programmatic)
                    }
                    _ => Step::default(),
                }
            }
            _ => return Err(refused),
        };
        Ok(step)
    }

    /// Moves to `new` and says whether the power goes back.
    fn enter(&mut self, new: MState, cause: Cause) -> Step {
        let previous = self.state;
        self.state = new;
        // Back in M0/M1 the payload is off; in M6 without a grant it never drew anything.
        let release_power = match new {
            MState::M0 | MState::M1 => true,
            MState::M6 => self.granted.is_none(),
            _ => false,
        };
        if matches!(new, MState::M0 | MState::M1) {
            self.granted = None;
        }
        Step {
            change: Some(Change {
                previous,
                new,
                cause,
            }),
            command: None,
            release_power,
        }
    }
}

impl Step {
    fn with(mut self, command: Command) -> Step {
        self.command = Some(command);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Input as I;
    use MState::*;

    /// Drives a fresh FRU to `state` along legal inputs; M3 without a grant, M7 from M4.
    fn reach(state: MState) -> Fru {
        let path: &[Input] = match state {
            M0 => &[],
            M1 => &[I::Inserted],
            M2 => &[I::Inserted, I::HandleClosed],
            M3 => &[I::Inserted, I::HandleClosed, I::Activate],
            M4 => &[
                I::Inserted,
                I::HandleClosed,
                I::Activate,
                I::PowerGranted { level: 2 },
                I::ActivationDone,
            ],
            M5 => &[
                I::Inserted,
                I::HandleClosed,
                I::Activate,
                I::PowerGranted { level: 2 },
                I::ActivationDone,
                I::HandleOpened,
            ],
            M6 => &[
                I::Inserted,
                I::HandleClosed,
                I::Activate,
                I::PowerGranted { level: 2 },
                I::ActivationDone,
                I::Deactivate,
            ],
            M7 => &[
                I::Inserted,
                I::HandleClosed,
                I::Activate,
                I::PowerGranted { level: 2 },
                I::ActivationDone,
                I::CommunicationLost,
            ],
        };
        let mut fru = Fru::new();
        for input in path {
            let _ = fru.handle(*input).unwrap();
        }
        assert_eq!(fru.state(), state);
        fru
    }

    /// Applies `input` in `from` and checks the change, the command and the power release.
    fn check(
        mut fru: Fru,
        input: Input,
        to: MState,
        cause: Option<Cause>,
        command: Option<Command>,
        release: bool,
    ) -> Fru {
        let from = fru.state();
        let step = fru.handle(input).unwrap();
        assert_eq!(fru.state(), to, "{from} {input:?}");
        let expected = cause.map(|cause| Change {
            previous: from,
            new: to,
            cause,
        });
        assert_eq!(step.change, expected, "{from} {input:?}");
        assert_eq!(step.command, command, "{from} {input:?}");
        assert_eq!(step.release_power, release, "{from} {input:?}");
        fru
    }

    #[test]
    fn insertion_and_activation() {
        let fru = check(reach(M0), I::Inserted, M1, Some(Cause::Normal), None, true);
        let fru = check(
            fru,
            I::HandleClosed,
            M2,
            Some(Cause::HandleSwitch),
            None,
            false,
        );
        let on = Some(Command::SetFruActivation(true));
        let fru = check(
            fru,
            I::Activate,
            M3,
            Some(Cause::ShelfManagerCommand),
            on,
            false,
        );
        let fru = check(fru, I::PowerDenied, M3, None, None, false);
        let level = Some(Command::SetPowerLevel(3));
        let fru = check(fru, I::PowerGranted { level: 3 }, M3, None, level, false);
        assert_eq!(fru.granted_level(), Some(3));
        let fru = check(fru, I::ActivationDone, M4, Some(Cause::Normal), None, false);
        assert_eq!(fru.granted_level(), Some(3));
    }

    #[test]
    fn handle_opened_in_m2_and_deactivate_in_m2_return_to_m1() {
        check(
            reach(M2),
            I::HandleOpened,
            M1,
            Some(Cause::HandleSwitch),
            None,
            true,
        );
        let off = Some(Command::SetFruActivation(false));
        check(
            reach(M2),
            I::Deactivate,
            M1,
            Some(Cause::ShelfManagerCommand),
            off,
            true,
        );
    }

    #[test]
    fn deactivation_from_m3_m4_m5() {
        let off = Some(Command::SetFruActivation(false));
        // M3 before a grant: the FRU's waiting request is withdrawn at once.
        check(
            reach(M3),
            I::Deactivate,
            M6,
            Some(Cause::ShelfManagerCommand),
            off,
            true,
        );
        let mut powered = reach(M3);
        let _ = powered.handle(I::PowerGranted { level: 1 }).unwrap();
        check(
            powered,
            I::Deactivate,
            M6,
            Some(Cause::ShelfManagerCommand),
            off,
            false,
        );
        check(
            reach(M4),
            I::Deactivate,
            M6,
            Some(Cause::ShelfManagerCommand),
            off,
            false,
        );
        check(
            reach(M5),
            I::Deactivate,
            M6,
            Some(Cause::ShelfManagerCommand),
            off,
            false,
        );
        let fru = check(
            reach(M6),
            I::DeactivationDone,
            M1,
            Some(Cause::Normal),
            None,
            true,
        );
        assert_eq!(fru.granted_level(), None);
    }

    #[test]
    fn handle_switch_in_m4_and_m5() {
        let fru = check(
            reach(M4),
            I::HandleOpened,
            M5,
            Some(Cause::HandleSwitch),
            None,
            false,
        );
        check(
            fru,
            I::HandleClosed,
            M4,
            Some(Cause::HandleSwitch),
            None,
            false,
        );
        let on = Some(Command::SetFruActivation(true));
        check(
            reach(M5),
            I::Activate,
            M4,
            Some(Cause::ShelfManagerCommand),
            on,
            false,
        );
    }

    #[test]
    fn payload_failure_is_an_unexpected_deactivation() {
        let mut m3 = reach(M3);
        let _ = m3.handle(I::PowerGranted { level: 1 }).unwrap();
        for fru in [m3, reach(M4), reach(M5)] {
            let c = Some(Cause::UnexpectedDeactivation);
            let fru = check(fru, I::PayloadFailed, M6, c, None, false);
            check(
                fru,
                I::DeactivationDone,
                M1,
                Some(Cause::Normal),
                None,
                true,
            );
        }
    }

    #[test]
    fn surprise_extraction_from_every_present_state() {
        for state in [M1, M2, M3, M4, M5, M6] {
            let c = Some(Cause::SurpriseExtraction);
            let fru = check(reach(state), I::SurpriseExtraction, M0, c, None, true);
            assert_eq!(fru.granted_level(), None);
        }
    }

    #[test]
    fn communication_lost_and_restored_return_to_the_state_before() {
        for state in [M1, M2, M3, M4, M5, M6] {
            let c = Some(Cause::Communication);
            let fru = check(reach(state), I::CommunicationLost, M7, c, None, false);
            check(fru, I::CommunicationRestored, state, c, None, state == M1);
        }
    }

    #[test]
    fn the_locked_bit_holds_a_fru_in_m1_until_cleared() {
        let locked = Policy {
            locked: true,
            deactivation_locked: false,
        };
        let fru = check(reach(M1), I::SetPolicy(locked), M1, None, None, false);
        let fru = check(fru, I::HandleClosed, M1, None, None, false);
        assert_eq!(fru.policy(), locked);
        let c = Some(Cause::Programmatic);
        check(fru, I::SetPolicy(Policy::default()), M2, c, None, false);
    }

    #[test]
    fn the_deactivation_locked_bit_holds_a_fru_in_m4_until_cleared() {
        let locked = Policy {
            locked: false,
            deactivation_locked: true,
        };
        let fru = check(reach(M4), I::SetPolicy(locked), M4, None, None, false);
        let fru = check(fru, I::HandleOpened, M4, None, None, false);
        let c = Some(Cause::Programmatic);
        check(fru, I::SetPolicy(Policy::default()), M5, c, None, false);
        // Storing bits elsewhere changes no state.
        for state in [M2, M3, M5, M6] {
            let fru = check(reach(state), I::SetPolicy(locked), state, None, None, false);
            assert_eq!(fru.policy(), locked);
        }
    }

    #[test]
    fn event_causes_carry_the_picmg_codes() {
        let codes = [
            (Cause::Normal, 0),
            (Cause::ShelfManagerCommand, 1),
            (Cause::HandleSwitch, 2),
            (Cause::Programmatic, 3),
            (Cause::Communication, 4),
            (Cause::CommunicationLocal, 5),
            (Cause::SurpriseExtraction, 6),
            (Cause::ProvidedInformation, 7),
            (Cause::InvalidHardwareAddress, 8),
            (Cause::UnexpectedDeactivation, 9),
            (Cause::Unknown, 0xF),
        ];
        for (cause, code) in codes {
            assert_eq!(cause.code(), code);
        }
        assert_eq!(MState::M7.to_string(), "M7");
        assert_eq!(MState::M7.code(), 7);
    }

    #[test]
    fn event_data_follows_the_picmg_layout() {
        // Blade M1 -> M2, cause 0, FRU 0: `a2 01 00`, as ipmi_sim logs it.
        let m1_m2 = Change {
            previous: M1,
            new: M2,
            cause: Cause::Normal,
        };
        assert_eq!(m1_m2.event_data(0), [0xA2, 0x01, 0x00]);
        let lost = Change {
            previous: M4,
            new: M7,
            cause: Cause::Communication,
        };
        assert_eq!(lost.event_data(3), [0xA7, 0x44, 0x03]);
    }

    /// Every input kind, with the parameters the table uses.
    const INPUTS: [Input; 14] = [
        I::Inserted,
        I::HandleClosed,
        I::HandleOpened,
        I::Activate,
        I::Deactivate,
        I::PowerGranted { level: 1 },
        I::PowerDenied,
        I::ActivationDone,
        I::PayloadFailed,
        I::DeactivationDone,
        I::CommunicationLost,
        I::CommunicationRestored,
        I::SurpriseExtraction,
        I::SetPolicy(Policy {
            locked: false,
            deactivation_locked: false,
        }),
    ];

    /// The inputs each state accepts (M3 as [`reach`] leaves it: activation asked, no power
    /// granted yet); everything else must be refused.
    fn accepted(state: MState) -> Vec<Input> {
        let policy = INPUTS[13];
        let present = [I::SurpriseExtraction, I::CommunicationLost, policy];
        let own: Vec<Input> = match state {
            M0 => return vec![I::Inserted],
            M1 => vec![I::HandleClosed],
            M2 => vec![I::HandleOpened, I::Activate, I::Deactivate],
            M3 => vec![I::PowerGranted { level: 1 }, I::PowerDenied, I::Deactivate],
            M4 => vec![I::HandleOpened, I::Deactivate, I::PayloadFailed],
            M5 => vec![
                I::HandleClosed,
                I::Activate,
                I::Deactivate,
                I::PayloadFailed,
            ],
            M6 => vec![I::DeactivationDone],
            M7 => return vec![I::CommunicationRestored],
        };
        own.into_iter().chain(present).collect()
    }

    #[test]
    fn every_other_input_is_refused_and_changes_nothing() {
        let mut refused = 0;
        for state in MState::ALL {
            let ok = accepted(state);
            for input in INPUTS {
                let mut fru = reach(state);
                let before = fru.clone();
                let result = fru.handle(input);
                if ok.contains(&input) {
                    assert!(result.is_ok(), "{state} must accept {input:?}");
                } else {
                    assert_eq!(result, Err(Refused { state, input }), "{state} {input:?}");
                    assert_eq!(fru, before, "{state} {input:?} changed the FRU");
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 8 * 14 - (1 + 4 + 6 + 6 + 6 + 7 + 4 + 1));
    }

    #[test]
    fn m3_refuses_by_its_power_state() {
        // Without power: no activation done, no payload failure, a level-0 grant refused.
        let mut fru = reach(M3);
        for input in [
            I::ActivationDone,
            I::PayloadFailed,
            I::PowerGranted { level: 0 },
        ] {
            assert!(fru.handle(input).is_err(), "{input:?}");
        }
        // With power: no second grant, no denial.
        let _ = fru.handle(I::PowerGranted { level: 1 }).unwrap();
        let before = fru.clone();
        for input in [I::PowerGranted { level: 2 }, I::PowerDenied] {
            assert_eq!(fru.handle(input), Err(Refused { state: M3, input }));
        }
        assert_eq!(fru, before);
    }
}
