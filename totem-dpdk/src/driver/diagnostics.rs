//! What the driver reports: its counters ([`DriverStats`]), the status snapshot other
//! threads read ([`DriverStatus`]), and rate-limited logs of refused frames and process pauses.

use std::sync::PoisonError;
use std::time::Duration as StdDuration;

use dataplane::Transport;

use super::run::Loop;
use super::{EventSink, STATUS_INTERVAL};
use crate::srp;
use crate::types::{NodeId, RingId};

/// Counters of a driver run, returned by [`Driver::stop`](super::Driver::stop).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Loop iterations.
    pub iterations: u64,
    /// Frames received and given to the core.
    pub frames_in: u64,
    /// Frames queued on the transport (one per core transmit).
    pub frames_out: u64,
    /// Frames the transport refused (full after a flush and one retry, too large, unknown
    /// destination); they are dropped and Totem's retransmission repairs the loss.
    pub send_errors: u64,
    /// Other transport errors (receive, flush, wait), counted and otherwise ignored.
    pub io_errors: u64,
    /// Submit requests answered.
    pub submits: u64,
    /// Frames the core addressed to this node itself, handed straight back to it.
    pub frames_looped: u64,
    /// Member addresses learned from frames of nodes the transport did not know
    /// ([`Transport::learn_member`]; UDP multicast discovers its members this way).
    pub members_learned: u64,
    /// Events forwarded to the events channel.
    pub events: u64,
    /// The core's counters when the thread ended.
    pub core: srp::Stats,
    /// The transport's counters when the thread ended.
    pub transport: dataplane::Stats,
}

/// A snapshot of the driver thread's state, refreshed at least every [`STATUS_INTERVAL`] and
/// whenever the membership state or ring changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStatus {
    /// Where the node is in the membership protocol.
    pub state: srp::MembState,
    /// The current ring.
    pub ring: RingId,
    /// The current ring's members.
    pub members: Vec<NodeId>,
    /// Messages waiting in the core's send queues.
    pub queued_messages: usize,
    /// The driver's counters (their `core` and `transport` fields are filled in too; with
    /// more than one network, `transport` is the sum over the networks).
    pub stats: DriverStats,
    /// The redundant-ring mode, with more than one network.
    pub rrp_mode: Option<crate::rrp::RrpMode>,
    /// Each network's state and counters (one entry with one network).
    pub networks: Vec<super::NetworkStatus>,
    /// The transport's own counters ([`Transport::visit_backend`]: DPDK's drops by reason,
    /// ...), summed over the networks by name.
    pub backend: dataplane::stats::Collect,
}

impl DriverStatus {
    /// Whether some network is marked faulty (never with one network).
    pub fn network_faulty(&self) -> bool {
        self.networks
            .iter()
            .any(|n| matches!(n.rrp.state, crate::rrp::NetState::Faulty(_)))
    }
}

/// The driver's own counters (the transport's and the core's are visited by
/// [`DriverStatus`]); `frames_in` and `frames_out` are the transport's.
impl dataplane::stats::Visit for DriverStats {
    fn visit(&self, v: &mut dyn dataplane::stats::Visitor) {
        v.counter("driver_iterations", self.iterations);
        v.counter("driver_send_errors", self.send_errors);
        v.counter("driver_io_errors", self.io_errors);
        v.counter("driver_submits", self.submits);
        v.counter("driver_frames_looped", self.frames_looped);
        v.counter("driver_members_learned", self.members_learned);
        v.counter("driver_events", self.events);
    }
}

/// Every layer under the executive: the transport, the Totem core (with frame protection),
/// the driver, and the messages waiting in the core's send queues.
impl dataplane::stats::Visit for DriverStatus {
    fn visit(&self, v: &mut dyn dataplane::stats::Visitor) {
        self.stats.transport.visit(v);
        for &(name, kind, value) in &self.backend.0 {
            match kind {
                dataplane::stats::Kind::Counter => v.counter(name, value),
                dataplane::stats::Kind::Gauge => v.gauge(name, value),
            }
        }
        self.stats.core.visit(v);
        self.stats.visit(v);
        v.gauge("queued_messages", self.queued_messages as u64);
        if let Some(mode) = self.rrp_mode {
            v.gauge(
                "rrp_mode",
                match mode {
                    crate::rrp::RrpMode::Active => 1,
                    crate::rrp::RrpMode::Passive => 2,
                },
            );
        }
        super::networks::visit_networks(&self.networks, v);
    }
}

/// Logs frames the protection layer refused, at most once per [`DIAG_INTERVAL`] per kind
/// (a node with the wrong key sends many), with the number suppressed in between.
#[derive(Default)]
pub(super) struct Diagnostics {
    /// Per kind: when it was last logged and how many were suppressed since.
    last: [Option<(std::time::Instant, u64)>; 3],
}

/// Shortest interval between two log lines of one kind of refused frame.
pub const DIAG_INTERVAL: StdDuration = StdDuration::from_secs(10);

impl Diagnostics {
    pub(super) fn refused(
        &mut self,
        from: std::net::SocketAddr,
        e: crate::crypto::OpenError,
        mine: Option<u32>,
        frame: &[u8],
    ) {
        use crate::crypto::OpenError;
        let kind = match e {
            OpenError::BadTag | OpenError::BadCrc | OpenError::Malformed => 0,
            OpenError::UnknownEpoch { .. } => 1,
            OpenError::Replayed { .. }
            | OpenError::TooOld { .. }
            | OpenError::Misdirected { .. } => 2,
        };
        let now = std::time::Instant::now();
        let suppressed = match &mut self.last[kind] {
            Some((at, n)) if now.duration_since(*at) < DIAG_INTERVAL => {
                *n += 1;
                return;
            }
            slot => {
                let n = slot.map_or(0, |(_, n)| n);
                *slot = Some((now, 0));
                n
            }
        };
        let more = if suppressed > 0 {
            format!(" ({suppressed} more since the last report)")
        } else {
            String::new()
        };
        match e {
            OpenError::UnknownEpoch { epoch, .. } if mine.is_some_and(|m| epoch > m) => {
                tracing::error!(
                    "frame from {from} uses key epoch {epoch}, but this node only has epoch {}: the cluster was rekeyed while this node was away; copy the current key file from a running node and restart aisexec{more}",
                    mine.unwrap_or(0)
                );
            }
            OpenError::UnknownEpoch { epoch, .. } => {
                tracing::warn!(
                    "frame from {from} uses key epoch {epoch}, older than this node's {}: that node missed a rekey and needs the current key file{more}",
                    mine.unwrap_or(0)
                );
            }
            OpenError::Replayed { .. }
            | OpenError::TooOld { .. }
            | OpenError::Misdirected { .. } => {
                tracing::warn!("replayed frame from {from} refused ({e}){more}");
            }
            _ => match super::networks::tag_of_refused(frame) {
                Some((net, networks)) => tracing::error!(
                    "frame from {from} refused: it carries a redundant-ring network tag (its \
                     network {net} of {networks}), but this node is configured with one network; \
                     every node must list the same networks in the same order{more}"
                ),
                None => tracing::warn!("invalid digest from {from} ({e}){more}"),
            },
        }
    }
}

impl<T: Transport, S: EventSink> Loop<T, S> {
    /// Publishes a fresh [`DriverStatus`] when the state or ring changed or
    /// [`STATUS_INTERVAL`] passed.
    pub(super) fn maybe_publish_status(&mut self) {
        let key = (self.core.state(), self.core.ring_id());
        if self.status_key != Some(key) || self.status_at.elapsed() >= STATUS_INTERVAL {
            self.publish_status();
        }
    }

    pub(super) fn publish_status(&mut self) {
        self.status_key = Some((self.core.state(), self.core.ring_id()));
        self.status_at = std::time::Instant::now();
        let mut stats = self.stats.clone();
        stats.core = self.core.stats().clone();
        stats.transport = self.transport_stats();
        let snapshot = DriverStatus {
            state: self.core.state(),
            ring: self.core.ring_id(),
            members: self.core.members().to_vec(),
            queued_messages: self.core.queued_messages(),
            stats,
            rrp_mode: self.rrp.as_ref().map(|n| n.rrp.config().mode),
            networks: self.network_status(),
            backend: self.backend_counters(),
        };
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// Every network's [`Transport::visit_backend`] counters, summed by name.
    fn backend_counters(&self) -> dataplane::stats::Collect {
        let mut sum = dataplane::stats::Collect::default();
        self.transport.visit_backend(&mut sum);
        for t in &self.others {
            let mut c = dataplane::stats::Collect::default();
            t.visit_backend(&mut c);
            for (name, kind, value) in c.0 {
                match sum.0.iter_mut().find(|e| e.0 == name) {
                    Some(e) => e.2 += value,
                    None => sum.0.push((name, kind, value)),
                }
            }
        }
        sum
    }

    /// One warning per pause the core detected (its own process did not run).
    pub(super) fn log_pauses(&mut self) {
        let stats = self.core.stats();
        if stats.pauses_detected > self.pauses_logged {
            self.pauses_logged = stats.pauses_detected;
            tracing::warn!(
                paused_ms = stats.last_pause.as_millis(),
                threshold_ms = self.core.config().pause_threshold.as_millis(),
                "process paused {} ms (past the pause threshold of {} ms; token timeout {} ms); \
                 its expired timers were restarted and the membership messages queued meanwhile \
                 ignored, so no member is declared failed for it. Look for CPU starvation, \
                 swapping, a VM pause or a stalled write; consider a larger totem.token",
                stats.last_pause.as_millis(),
                self.core.config().pause_threshold.as_millis(),
                self.core.config().token_timeout.as_millis()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use dataplane::stats::{Collect, Visit, duplicate, names};

    use super::*;

    /// Every layer's statistics under one executive, each name once, with the values of the
    /// fields they come from.
    #[test]
    fn every_layer_is_visited_under_unique_names() {
        let mut stats = DriverStats {
            send_errors: 3,
            ..DriverStats::default()
        };
        stats.core.gathers = 5;
        stats.core.crypto.bad_tag = 1;
        stats.core.crypto.bad_crc = 2;
        stats.transport.frames_in = 7;
        let status = DriverStatus {
            state: srp::MembState::Operational,
            ring: RingId::default(),
            members: Vec::new(),
            queued_messages: 4,
            stats,
            rrp_mode: Some(crate::rrp::RrpMode::Active),
            networks: vec![super::super::NetworkStatus::default(); 2],
            backend: dataplane::stats::Collect(vec![(
                "dpdk_tx_no_mbuf",
                dataplane::stats::Kind::Counter,
                6,
            )]),
        };
        let all = names(&status);
        assert_eq!(duplicate(&all), None, "{all:?}");
        let mut c = Collect::default();
        status.visit(&mut c);
        for (name, value) in [
            ("frames_in", 7),
            ("dpdk_tx_no_mbuf", 6),
            ("gathers", 5),
            ("invalid_digest", 3),
            ("driver_send_errors", 3),
            ("queued_messages", 4),
            ("rrp_networks", 2),
            ("rrp_net1_state", 0),
        ] {
            assert_eq!(c.get(name), Some(value), "{name}");
        }
    }
}
