//! Replication of the shelf's state between two shelf managers, active and standby.
//!
//! The active shelf manager writes a [`Snapshot`] of its [`Shelf`] into a CKPT checkpoint
//! after every state change, before it answers the request that caused it; the standby reads
//! the checkpoint and, when it takes over, rebuilds the shelf from the last snapshot
//! ([`Snapshot::restore`]). This module is the pure part: what a snapshot holds, its byte
//! encoding, and the checks a snapshot must pass against the shelf model before it becomes a
//! shelf. The cluster side (the AMF component, the checkpoint) is [`component`].
//!
//! **What a snapshot holds:** every FRU's hot-swap state (with the state to return to from
//! M7), activation policy bits and granted power level, in model order with its address; the
//! power budget's grants and waiting requests; the SEL's records and its count of dropped
//! records; and a generation number the active raises with every write. What it does not
//! hold: RMCP+ sessions (a console logs in again after a takeover), SEL and SDR reservations,
//! and the SEL records' timestamps (the new active stamps the records it restores with the
//! time it took over).
//!
//! **Encoding** (big-endian, [`Snapshot::encode`]):
//!
//! | Bytes | Field |
//! |---|---|
//! | 4 | magic `OSHR` |
//! | 1 | version (1) |
//! | 8 | generation |
//! | 2 + 6 × n | FRUs: IPMB address, FRU id, state, state before M7, policy bits (bit 0 locked, bit 1 deactivation locked), granted level (0: none) |
//! | 2 + 7 × n | power grants: IPMB address, FRU id, level, watts (u32) |
//! | 2 + 7 × n | waiting requests, the same |
//! | 8 | SEL records dropped |
//! | 4 + … | SEL records: IPMB address, FRU id, kind; kind 0 (hot swap): previous, new, cause; kind 1 (power denied): level, watts (u32) |
//!
//! [`Snapshot::decode`] reads it through a bounds-checked reader whose errors name the field
//! (a checkpoint is written by another process, possibly another version: remote input; the
//! fuzz target `replica_decode` feeds it arbitrary bytes).

pub mod component;

use std::fmt;

use crate::hotswap::{Cause, Change, Fru, FruAddr, MState, Policy};
use crate::ipmc::{Ipmc, SimIpmc, ToIpmc};
use crate::model::Config;
use crate::power::PowerBudget;
use crate::sel::{Sel, SelBody};
use crate::shelf::Shelf;

/// The first bytes of an encoded snapshot.
pub const MAGIC: [u8; 4] = *b"OSHR";

/// The encoding's version.
pub const VERSION: u8 = 1;

/// One FRU's replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FruState {
    /// The FRU.
    pub addr: FruAddr,
    /// Its hot-swap state.
    pub state: MState,
    /// The state it returns to when communication comes back (meaningful in M7).
    pub before_lost: MState,
    /// Its activation policy.
    pub policy: Policy,
    /// The power level granted.
    pub granted: Option<u8>,
}

/// Power held or asked for by a FRU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerEntry {
    /// The FRU.
    pub fru: FruAddr,
    /// The level.
    pub level: u8,
    /// The watts at that level.
    pub watts: u32,
}

/// The state of a shelf as the active shelf manager replicates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Raised by the active with every write; a standby sees a new state by a new number.
    pub generation: u64,
    /// Every FRU, in model order.
    pub frus: Vec<FruState>,
    /// The power grants, by FRU address.
    pub powered: Vec<PowerEntry>,
    /// The requests waiting for power, in the order they will be considered.
    pub waiting: Vec<PowerEntry>,
    /// The SEL's records, oldest first.
    pub sel: Vec<(FruAddr, SelBody)>,
    /// Records the SEL dropped because it was full.
    pub sel_dropped: u64,
}

/// A malformed encoded snapshot: the field that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end inside this field.
    #[error("snapshot truncated in {0}")]
    Truncated(&'static str),
    /// Not a snapshot.
    #[error("not a shelf snapshot (magic {0:02x?})")]
    Magic([u8; 4]),
    /// A version this program does not read.
    #[error("snapshot version {0}, this shelf manager reads version {VERSION}")]
    Version(u8),
    /// A field holds a value it cannot have.
    #[error("snapshot field {field}: invalid value {value}")]
    Value {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// Bytes after the last field.
    #[error("{0} bytes after the end of the snapshot")]
    Trailing(usize),
}

/// A snapshot that does not fit the shelf model or contradicts itself; nothing was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot's FRUs are not the model's boards (another model file?).
    #[error("the snapshot has FRUs {snapshot:?}, the model {model:?}")]
    Model {
        /// The FRUs of the snapshot, in order.
        snapshot: Vec<FruAddr>,
        /// The boards of the model, in order.
        model: Vec<FruAddr>,
    },
    /// The parts do not agree.
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(String),
}

impl Snapshot {
    /// The state of `shelf`, numbered `generation`.
    pub fn of(shelf: &Shelf, generation: u64) -> Snapshot {
        let entry = |r: &crate::power::Request| PowerEntry {
            fru: r.order.fru,
            level: r.level,
            watts: r.watts,
        };
        Snapshot {
            generation,
            frus: shelf
                .frus()
                .map(|(addr, f)| FruState {
                    addr,
                    state: f.state(),
                    before_lost: f.state_before_lost(),
                    policy: f.policy(),
                    granted: f.granted_level(),
                })
                .collect(),
            powered: shelf.budget().powered().map(entry).collect(),
            waiting: shelf.budget().waiting_requests().map(entry).collect(),
            sel: shelf
                .sel()
                .records()
                .iter()
                .map(|r| (r.fru, r.body))
                .collect(),
            sel_dropped: shelf.sel().dropped(),
        }
    }

    /// Whether `shelf` is in the state this snapshot holds (whatever the generation).
    pub fn matches(&self, shelf: &Shelf) -> bool {
        *self == Snapshot::of(shelf, self.generation)
    }

    /// The bytes of the snapshot (the encoding in the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 8 * self.sel.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&len16(self.frus.len()));
        for f in &self.frus {
            out.extend_from_slice(&[
                f.addr.ipmb,
                f.addr.fru_id,
                f.state.code(),
                f.before_lost.code(),
                u8::from(f.policy.locked) | u8::from(f.policy.deactivation_locked) << 1,
                f.granted.unwrap_or(0),
            ]);
        }
        for list in [&self.powered, &self.waiting] {
            out.extend_from_slice(&len16(list.len()));
            for p in list {
                out.extend_from_slice(&[p.fru.ipmb, p.fru.fru_id, p.level]);
                out.extend_from_slice(&p.watts.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.sel_dropped.to_be_bytes());
        let n = u32::try_from(self.sel.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        for (fru, body) in self.sel.iter().take(n as usize) {
            out.extend_from_slice(&[fru.ipmb, fru.fru_id]);
            match body {
                SelBody::HotSwap(c) => {
                    out.extend_from_slice(&[0, c.previous.code(), c.new.code(), c.cause.code()]);
                }
                SelBody::PowerDenied { level, watts } => {
                    out.extend_from_slice(&[1, *level]);
                    out.extend_from_slice(&watts.to_be_bytes());
                }
            }
        }
        out
    }

    /// The most bytes a snapshot of a shelf of `config` takes (for the checkpoint's size).
    pub fn max_encoded_len(config: &Config) -> usize {
        let n = config.board.len();
        4 + 1 + 8 + (2 + 6 * n) + 2 * (2 + 7 * n) + 8 + 4 + 8 * config.shelf.sel_capacity.max(1)
    }

    /// Reads a snapshot.
    ///
    /// # Errors
    /// [`DecodeError`] naming the field that is missing or wrong; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let magic: [u8; 4] = r.take(4, "magic")?.try_into().unwrap_or([0; 4]);
        if magic != MAGIC {
            return Err(DecodeError::Magic(magic));
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let generation = r.u64("generation")?;
        let n = r.u16("FRU count")?;
        let mut frus = Vec::with_capacity(usize::from(n).min(r.left() / 6));
        for _ in 0..n {
            let addr = r.addr("FRU address")?;
            let state = r.state("FRU state")?;
            let before_lost = r.state("FRU state before M7")?;
            let bits = r.u8("FRU policy")?;
            if bits > 3 {
                return Err(DecodeError::Value {
                    field: "FRU policy",
                    value: bits.into(),
                });
            }
            let granted = r.u8("FRU granted level")?;
            frus.push(FruState {
                addr,
                state,
                before_lost,
                policy: Policy {
                    locked: bits & 1 != 0,
                    deactivation_locked: bits & 2 != 0,
                },
                granted: (granted != 0).then_some(granted),
            });
        }
        let powered = r.power_list("power grant")?;
        let waiting = r.power_list("waiting request")?;
        let sel_dropped = r.u64("SEL dropped count")?;
        let n = r.u32("SEL record count")?;
        let mut sel = Vec::with_capacity((n as usize).min(r.left() / 6));
        for _ in 0..n {
            let fru = r.addr("SEL record FRU")?;
            let body = match r.u8("SEL record kind")? {
                0 => SelBody::HotSwap(Change {
                    previous: r.state("SEL record previous state")?,
                    new: r.state("SEL record new state")?,
                    cause: r.cause("SEL record cause")?,
                }),
                1 => SelBody::PowerDenied {
                    level: r.u8("SEL record level")?,
                    watts: r.u32("SEL record watts")?,
                },
                k => {
                    return Err(DecodeError::Value {
                        field: "SEL record kind",
                        value: k.into(),
                    });
                }
            };
            sel.push((fru, body));
        }
        if r.left() > 0 {
            return Err(DecodeError::Trailing(r.left()));
        }
        Ok(Snapshot {
            generation,
            frus,
            powered,
            waiting,
            sel,
            sel_dropped,
        })
    }

    /// The shelf of `config` in this snapshot's state (automatic activation: the caller sets
    /// [`Shelf::set_manual_activation`] as it runs).
    ///
    /// # Errors
    /// [`RestoreError`] when the snapshot's FRUs are not the model's boards, or its parts
    /// contradict each other (a grant without a granted level, a FRU waiting for power outside
    /// M3, an overdrawn feed, a SEL larger than the model's, …).
    pub fn restore(&self, config: &Config) -> Result<Shelf, RestoreError> {
        let model: Vec<FruAddr> = config
            .board
            .iter()
            .map(|b| FruAddr {
                ipmb: b.ipmb_address,
                fru_id: b.fru_id,
            })
            .collect();
        let ours: Vec<FruAddr> = self.frus.iter().map(|f| f.addr).collect();
        if ours != model {
            return Err(RestoreError::Model {
                snapshot: ours,
                model,
            });
        }
        let bad = |m: String| Err(RestoreError::Inconsistent(m));
        for f in &self.frus {
            use MState::*;
            let ok = match (f.state, f.granted) {
                (M0 | M1 | M2, Some(_)) | (M4 | M5, None) => false,
                (M7, _) => !matches!(f.before_lost, M0 | M7),
                _ => true,
            };
            if !ok {
                return bad(format!(
                    "FRU {} in {} (before M7: {}) with granted level {:?}",
                    f.addr, f.state, f.before_lost, f.granted
                ));
            }
            let powered = self.powered.iter().find(|p| p.fru == f.addr);
            if powered.map(|p| p.level) != f.granted {
                return bad(format!(
                    "FRU {} has granted level {:?} but the budget {:?}",
                    f.addr,
                    f.granted,
                    powered.map(|p| p.level)
                ));
            }
            let waiting = self.waiting.iter().any(|w| w.fru == f.addr);
            if waiting && (f.state != M3 || f.granted.is_some()) {
                return bad(format!(
                    "FRU {} waits for power in {} with granted level {:?}",
                    f.addr, f.state, f.granted
                ));
            }
        }
        let frus: Vec<Fru> = self
            .frus
            .iter()
            .map(|f| Fru::from_parts(f.state, f.before_lost, f.policy, f.granted))
            .collect();
        // Build the requests from the model (order and feeds) with the replicated levels.
        let skeleton = Shelf::new(config);
        let requests = |list: &[PowerEntry]| -> Result<Vec<_>, RestoreError> {
            list.iter()
                .map(|p| {
                    skeleton
                        .power_request(p.fru, p.level, p.watts)
                        .ok_or_else(|| {
                            RestoreError::Inconsistent(format!("power for unknown FRU {}", p.fru))
                        })
                })
                .collect()
        };
        let budget = PowerBudget::from_parts(
            config.feed.iter().map(|f| f.max_watts),
            requests(&self.powered)?,
            requests(&self.waiting)?,
        )
        .ok_or_else(|| {
            RestoreError::Inconsistent(
                "the power grants overdraw a feed or name a FRU twice".to_owned(),
            )
        })?;
        if let Some((fru, _)) = self.sel.iter().find(|(f, _)| !model.contains(f)) {
            return bad(format!("SEL record about FRU {fru}, not in the model"));
        }
        let sel = Sel::from_parts(
            config.shelf.sel_capacity,
            self.sel.iter().copied(),
            self.sel_dropped,
        )
        .ok_or_else(|| {
            RestoreError::Inconsistent(format!(
                "{} SEL records, the model's SEL holds {}",
                self.sel.len(),
                config.shelf.sel_capacity
            ))
        })?;
        Shelf::from_parts(config, frus, budget, sel).ok_or_else(|| {
            RestoreError::Inconsistent("one FRU machine per board expected".to_owned())
        })
    }
}

impl fmt::Display for Snapshot {
    /// `generation 7: 0x82/0 M4, 0x84/0 M1 …; 3 SEL records`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation {}:", self.generation)?;
        for (i, fru) in self.frus.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{} {}", fru.addr, fru.state)?;
        }
        write!(f, "; {} SEL records", self.sel.len())
    }
}

/// Simulated boards in the state the shelf's FRUs say they are in: what the boards of a
/// simulated shelf would be after the active shelf manager died (real IPMCs outlive it; the
/// simulated ones live inside `shelfd`, so the new active builds them again). Present unless
/// in M0; a board that was told to activate (M3 and later) is activating; a powered one runs
/// its payload at its granted level; a powered board with the `vanishes` knob answers only
/// outside M7 (the simulated boards go silent only through that knob). What the shelf could
/// not learn is rebuilt as the shelf last knew it: a board pulled out while in M7 (its IPMC
/// silent) is rebuilt present, and one reconnected while in M7 but not yet asked again is
/// rebuilt silent.
pub fn simulated_boards(config: &Config, shelf: &Shelf) -> SimIpmc {
    let mut sim = SimIpmc::new(config);
    for b in &config.board {
        let addr = FruAddr {
            ipmb: b.ipmb_address,
            fru_id: b.fru_id,
        };
        let Some((_, fru)) = shelf.frus().find(|(a, _)| *a == addr) else {
            continue;
        };
        let state = match fru.state() {
            MState::M7 => fru.state_before_lost(),
            s => s,
        };
        if state == MState::M0 {
            continue;
        }
        sim.insert(&b.name);
        if matches!(state, MState::M3 | MState::M4 | MState::M5 | MState::M6) {
            let _ = sim.send(
                addr,
                ToIpmc::Command(crate::hotswap::Command::SetFruActivation(true)),
            );
            if let Some(level) = fru.granted_level()
                && state != MState::M3
            {
                let _ = sim.send(
                    addr,
                    ToIpmc::Command(crate::hotswap::Command::SetPowerLevel(level)),
                );
                // A `vanishes` board stopped answering at power-up; the shelf knows it once
                // it found it in M7. Until then (and after a reconnection) it answers.
                if fru.state() != MState::M7 {
                    sim.reconnect(&b.name);
                }
            }
        }
    }
    // What the boards reported while being set up is what the shelf already knows.
    while sim.poll_report().is_some() {}
    sim
}

fn len16(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
}

/// A bounds-checked reader over an encoded snapshot.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DecodeError::Truncated(field))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn addr(&mut self, field: &'static str) -> Result<FruAddr, DecodeError> {
        let b = self.take(2, field)?;
        Ok(FruAddr {
            ipmb: b[0],
            fru_id: b[1],
        })
    }

    fn state(&mut self, field: &'static str) -> Result<MState, DecodeError> {
        let v = self.u8(field)?;
        MState::ALL
            .get(usize::from(v))
            .copied()
            .ok_or(DecodeError::Value {
                field,
                value: v.into(),
            })
    }

    fn cause(&mut self, field: &'static str) -> Result<Cause, DecodeError> {
        let v = self.u8(field)?;
        Ok(match v {
            0 => Cause::Normal,
            1 => Cause::ShelfManagerCommand,
            2 => Cause::HandleSwitch,
            3 => Cause::Programmatic,
            4 => Cause::Communication,
            5 => Cause::CommunicationLocal,
            6 => Cause::SurpriseExtraction,
            7 => Cause::ProvidedInformation,
            8 => Cause::InvalidHardwareAddress,
            9 => Cause::UnexpectedDeactivation,
            0xF => Cause::Unknown,
            _ => {
                return Err(DecodeError::Value {
                    field,
                    value: v.into(),
                });
            }
        })
    }

    fn power_list(&mut self, field: &'static str) -> Result<Vec<PowerEntry>, DecodeError> {
        let n = self.u16(field)?;
        let mut out = Vec::with_capacity(usize::from(n).min(self.left() / 7));
        for _ in 0..n {
            let fru = self.addr(field)?;
            let level = self.u8(field)?;
            let watts = self.u32(field)?;
            out.push(PowerEntry { fru, level, watts });
        }
        Ok(out)
    }
}

/// The body of the `replica_decode` fuzz target, public so the unit tests run it too.
pub mod fuzzing {
    use super::Snapshot;
    use crate::model::Config;

    /// Arbitrary bytes as a snapshot, restored against the example shelf when they decode:
    /// never a panic; a decoded snapshot encodes back to the same bytes.
    pub fn fuzz_decode(data: &[u8]) {
        static CONFIG: std::sync::OnceLock<Option<Config>> = std::sync::OnceLock::new();
        let Ok(s) = Snapshot::decode(data) else {
            return;
        };
        assert_eq!(s.encode(), data, "decode then encode gives the same bytes");
        if let Some(config) = CONFIG.get_or_init(|| {
            Config::from_str(
                include_str!("../../../configs/shelf-sim.toml"),
                "shelf-sim.toml",
            )
            .ok()
        }) && let Ok(shelf) = s.restore(config)
        {
            let back = Snapshot::of(&shelf, s.generation);
            let again = back
                .restore(config)
                .expect("a restored shelf's snapshot restores");
            assert_eq!(again, shelf, "restore(of(shelf)) is the same shelf");
            let _ = super::simulated_boards(config, &shelf);
        }
    }
}

#[cfg(test)]
mod tests;
