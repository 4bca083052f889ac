//! This node's quorum in the event log: a `quorum` service line at start and at every change
//! (`docs/event-log.md`, "`service`").
//!
//! The core stays pure; the runtime compares after each input. What is compared is the pair
//! (the core's answer, [`ExecCore::quorate`]; the quorum service's last computed
//! configuration, its `quorum_quorate` statistic): the core says not quorate from every
//! transitional configuration until the next configuration's quorum is computed, while the
//! service still holds the last one. So a quorate node that goes through a configuration
//! change logs `not_quorate` with `suspended` (the numbers of the ending ring), then `quorate`
//! or `not_quorate` with the new ring's numbers.
//!
//! The statistics are visited only when something may have changed: the core's answer or ring
//! changed, or a service sync was running (the quorum service computes a configuration's
//! quorum when its sync step ends). An executive without a quorum service logs nothing.

use ais_core::exec::ExecCore;
use dataplane::stats::{Visit, Visitor};
use serde_json::{Map, Value};
use totem_dpdk::RingId;

/// The service name in the log's `service` field.
pub const SERVICE: &str = "quorum";

/// The quorum service's statistics that go into a line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Numbers {
    /// The service ran (it reported `quorum_quorate`).
    present: bool,
    quorate: bool,
    total_votes: u64,
    expected_votes: u64,
    quorum: u64,
    waiting_for_all: bool,
}

impl Visitor for Numbers {
    fn counter(&mut self, _name: &'static str, _value: u64) {}

    fn gauge(&mut self, name: &'static str, value: u64) {
        match name {
            "quorum_quorate" => {
                self.present = true;
                self.quorate = value != 0;
            }
            "quorum_total_votes" => self.total_votes = value,
            "quorum_expected_votes" => self.expected_votes = value,
            "quorum_needed" => self.quorum = value,
            "quorum_waiting_for_all" => self.waiting_for_all = value != 0,
            _ => {}
        }
    }
}

/// One line to write: `what`, the ring, the fields of `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumLine {
    /// `"quorate"` or `"not_quorate"`: the core's answer.
    pub what: &'static str,
    /// The core's current regular ring (none before the first).
    pub ring: Option<RingId>,
    /// `total_votes`, `expected_votes`, `quorum`, `waiting_for_all`, `suspended`.
    pub data: Map<String, Value>,
}

/// Watches the core's quorum between inputs.
#[derive(Debug, Default)]
pub struct QuorumWatch {
    /// (core answer, service's answer) last logged; `None` before the first line.
    logged: Option<(bool, bool)>,
    /// The core's answer and ring after the last input, and whether it was syncing.
    seen: Option<(bool, RingId, bool)>,
}

impl QuorumWatch {
    /// The line to write after an input, if this node's quorum changed (or, the first time,
    /// the state it starts in).
    pub fn check(&mut self, core: &ExecCore) -> Option<QuorumLine> {
        let now = (core.quorate(), core.ring(), core.syncing());
        let maybe_changed = match self.seen {
            None => true,
            Some((quorate, ring, was_syncing)) => {
                was_syncing || now.2 || quorate != now.0 || ring != now.1
            }
        };
        self.seen = Some(now);
        if !maybe_changed {
            return None;
        }
        let mut n = Numbers::default();
        core.visit(&mut n);
        if !n.present {
            return None;
        }
        let key = (core.quorate(), n.quorate);
        if self.logged == Some(key) {
            return None;
        }
        self.logged = Some(key);
        let ring = core.ring();
        let mut data = Map::new();
        data.insert("total_votes".into(), n.total_votes.into());
        data.insert("expected_votes".into(), n.expected_votes.into());
        data.insert("quorum".into(), n.quorum.into());
        data.insert("waiting_for_all".into(), n.waiting_for_all.into());
        data.insert("suspended".into(), (!key.0 && key.1).into());
        Some(QuorumLine {
            what: if key.0 { "quorate" } else { "not_quorate" },
            ring: (ring != RingId::default()).then_some(ring),
            data,
        })
    }
}
