//! Flow control from the clients' outboxes back to the senders: the decision, pure.
//!
//! The runtime queues every answer and callback for a client in that client's outbox, which
//! the IPC loop drains as the client reads. A client that reads its callbacks more slowly
//! than the ring delivers them (a live load generator on a loaded machine) would see its
//! outbox grow without end; a client that does not read at all must not hold the cluster.
//! The rule:
//!
//! - The runtime reports, at every tick, each connection's outbox depth (packets and bytes)
//!   and how many packets the IPC loop has taken from it so far ([`OutboxDepth`]).
//! - A connection **makes progress** while its outbox is empty or the loop took a packet from
//!   it within the last [`OutboxLimits::stall_ns`].
//! - This node is **backlogged** from the moment a connection that makes progress holds more
//!   than the high-water mark ([`OutboxLimits::high_packets`] or
//!   [`OutboxLimits::high_bytes`]) until every connection that makes progress holds less
//!   than the low-water mark (hysteresis: no flapping at the mark).
//! - A connection that made no progress for `stall_ns` does not count: the senders go on,
//!   and the runtime's hard limit disconnects it once its outbox is full. A client that
//!   stopped reading holds the senders for `stall_ns` at most.
//!
//! The executive core multicasts this node's state to the ring (every node learns which
//! members are backlogged, in the total order) and the services answer their clients'
//! multicasts TRY_AGAIN while any member is ([`super::Context::backlogged`]): a slow reader
//! at one node slows the senders at every node, as the ring's own flow control does for a
//! slow ring.

use std::collections::BTreeMap;

use super::ConnId;

pub mod checker;

/// The marks of [`OutboxGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Backlogged above this many packets in one progressing outbox...
    pub high_packets: u64,
    /// ... or above this many bytes.
    pub high_bytes: u64,
    /// No longer backlogged once every progressing outbox holds fewer packets than this...
    pub low_packets: u64,
    /// ... and fewer bytes than this.
    pub low_bytes: u64,
    /// A connection whose loop took nothing for this long (nanoseconds) while packets wait
    /// is stalled: it no longer holds the senders.
    pub stall_ns: u64,
}

impl Default for OutboxLimits {
    /// High water 4096 packets or 8 MiB, low water 1024 packets and 2 MiB, stalled after 2 s
    /// without progress.
    fn default() -> Self {
        OutboxLimits {
            high_packets: 4096,
            high_bytes: 8 << 20,
            low_packets: 1024,
            low_bytes: 2 << 20,
            stall_ns: 2_000_000_000,
        }
    }
}

/// One connection's outbox, as the runtime sees it at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxDepth {
    /// The connection.
    pub conn: ConnId,
    /// Packets waiting.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets the IPC loop has taken from this outbox since the connection opened.
    pub taken: u64,
}

#[derive(Debug, Clone, Copy)]
struct Watch {
    taken: u64,
    /// When it last made progress (nanoseconds).
    progress_at: u64,
    /// Reported stalled already (counted once per stall).
    stalled: bool,
    /// Its outbox was empty at the last observation (the stall clock starts when packets
    /// first wait).
    was_empty: bool,
}

/// What one [`OutboxGate::observe`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateChange {
    /// The node's state changed to this (`Some(true)`: now backlogged).
    pub backlogged: Option<bool>,
    /// Connections that became stalled at this observation (above the high-water mark, no
    /// progress for `stall_ns`).
    pub stalled: Vec<ConnId>,
}

/// The high/low-water decision over every local client's outbox (see the module
/// documentation).
#[derive(Debug, Clone)]
pub struct OutboxGate {
    limits: OutboxLimits,
    watches: BTreeMap<ConnId, Watch>,
    on: bool,
}

impl OutboxGate {
    /// A gate with `limits`, not backlogged.
    pub fn new(limits: OutboxLimits) -> OutboxGate {
        OutboxGate {
            limits,
            watches: BTreeMap::new(),
            on: false,
        }
    }

    /// Whether this node is backlogged.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Its limits.
    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }

    /// Every open connection's outbox at `now` (nanoseconds; connections not listed are
    /// forgotten): the state change, if any.
    pub fn observe(&mut self, now: u64, depths: &[OutboxDepth]) -> GateChange {
        let l = self.limits;
        let mut change = GateChange::default();
        let mut above_high = false;
        let mut above_low = false;
        let mut seen = BTreeMap::new();
        for d in depths {
            let mut w = self.watches.get(&d.conn).copied().unwrap_or(Watch {
                taken: d.taken,
                progress_at: now,
                stalled: false,
                was_empty: true,
            });
            if w.was_empty || d.packets == 0 || d.taken != w.taken {
                w.progress_at = now;
                w.stalled = false;
            }
            w.taken = d.taken;
            w.was_empty = d.packets == 0;
            let high = d.packets > l.high_packets || d.bytes > l.high_bytes;
            let progressing = now.saturating_sub(w.progress_at) < l.stall_ns;
            if progressing {
                above_high |= high;
                above_low |= d.packets >= l.low_packets || d.bytes >= l.low_bytes;
            } else if high && !w.stalled {
                w.stalled = true;
                change.stalled.push(d.conn);
            }
            seen.insert(d.conn, w);
        }
        self.watches = seen;
        let on = if self.on { above_low } else { above_high };
        if on != self.on {
            self.on = on;
            change.backlogged = Some(on);
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn limits() -> OutboxLimits {
        OutboxLimits {
            high_packets: 100,
            high_bytes: 1 << 20,
            low_packets: 10,
            low_bytes: 64 << 10,
            stall_ns: 500 * MS,
        }
    }

    fn d(conn: ConnId, packets: u64, taken: u64) -> OutboxDepth {
        OutboxDepth {
            conn,
            packets,
            bytes: packets * 100,
            taken,
        }
    }

    #[test]
    fn on_above_high_water_off_below_low_water() {
        let mut g = OutboxGate::new(limits());
        assert_eq!(g.observe(0, &[d(1, 100, 0), d(2, 5, 0)]).backlogged, None);
        assert_eq!(
            g.observe(MS, &[d(1, 101, 1), d(2, 5, 0)]).backlogged,
            Some(true)
        );
        // Between the marks: stays on.
        assert_eq!(
            g.observe(2 * MS, &[d(1, 50, 60), d(2, 5, 0)]).backlogged,
            None
        );
        assert!(g.is_on());
        // Another connection between the marks keeps it on too.
        assert_eq!(
            g.observe(3 * MS, &[d(1, 9, 110), d(2, 10, 1)]).backlogged,
            None
        );
        assert_eq!(
            g.observe(4 * MS, &[d(1, 9, 110), d(2, 9, 2)]).backlogged,
            Some(false)
        );
        // Below the high mark: stays off.
        assert_eq!(g.observe(5 * MS, &[d(1, 99, 110)]).backlogged, None);
        assert!(!g.is_on());
    }

    #[test]
    fn bytes_count_as_well_as_packets() {
        let mut g = OutboxGate::new(limits());
        let big = OutboxDepth {
            conn: 1,
            packets: 20,
            bytes: 2 << 20,
            taken: 0,
        };
        assert_eq!(g.observe(0, &[big]).backlogged, Some(true));
        let still = OutboxDepth {
            bytes: 64 << 10,
            taken: 5,
            ..big
        };
        assert_eq!(
            g.observe(
                MS,
                &[OutboxDepth {
                    packets: 1,
                    ..still
                }]
            )
            .backlogged,
            None
        );
        let drained = OutboxDepth {
            packets: 1,
            bytes: 1000,
            taken: 30,
            conn: 1,
        };
        assert_eq!(g.observe(2 * MS, &[drained]).backlogged, Some(false));
    }

    /// A client that reads, however slowly, keeps the gate on; one that stops reading stops
    /// holding the senders after the stall time, and is reported once.
    #[test]
    fn a_stalled_connection_stops_holding_the_senders() {
        let mut g = OutboxGate::new(limits());
        assert_eq!(g.observe(0, &[d(1, 500, 0)]).backlogged, Some(true));
        // Slow but moving: one packet taken every 400 ms.
        let mut taken = 0;
        for step in 1..10 {
            taken += 1;
            let c = g.observe(step * 400 * MS, &[d(1, 500, taken)]);
            assert_eq!(c, GateChange::default(), "step {step}");
        }
        assert!(g.is_on());
        // Stops: on until the stall time has passed since the last packet taken.
        let last = 9 * 400 * MS;
        assert_eq!(
            g.observe(last + 499 * MS, &[d(1, 600, taken)]).backlogged,
            None
        );
        let c = g.observe(last + 500 * MS, &[d(1, 700, taken)]);
        assert_eq!(
            c,
            GateChange {
                backlogged: Some(false),
                stalled: vec![1]
            }
        );
        // Reported once; it does not turn the gate on again while stalled.
        assert_eq!(
            g.observe(last + 900 * MS, &[d(1, 5000, taken)]),
            GateChange::default()
        );
        // It reads again: it counts again.
        assert_eq!(
            g.observe(last + 901 * MS, &[d(1, 4000, taken + 1000)])
                .backlogged,
            Some(true)
        );
    }

    #[test]
    fn an_empty_outbox_is_never_stalled_and_closed_connections_are_forgotten() {
        let mut g = OutboxGate::new(limits());
        assert_eq!(g.observe(0, &[d(1, 0, 0)]), GateChange::default());
        // Idle for long, then a burst: it counts (it was not stalled, nothing waited).
        assert_eq!(
            g.observe(10_000 * MS, &[d(1, 200, 0)]).backlogged,
            Some(true)
        );
        // The connection closed: nothing holds the gate.
        assert_eq!(g.observe(10_001 * MS, &[]).backlogged, Some(false));
    }
}
