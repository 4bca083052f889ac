//! The driver over more than one network (redundant rings, [`crate::rrp`]): the network tag
//! each frame carries, the check that every node lists the same networks in the same order,
//! the operator's commands, and what the status and the event sink learn about each network.
//!
//! # The network tag
//! With more than one network, every frame the driver sends ends with two bytes the core never
//! sees: [`TAG_MAGIC`] and `net << 4 | networks` (the network it was sent on, and how many
//! networks the sender has). The receiver strips them before the redundant-ring layer and the
//! core, so the copies of a frame on every network stay byte for byte the same to them. A
//! frame whose tag is missing (a sender with one network, whose frames are untagged), names
//! another count, or another network than the one it arrived on, is dropped, counted in
//! [`NetworkStatus::mismatched`] and reported as a [`NetworkEvent::Mismatch`] that names the
//! sender: the two nodes' configurations list different networks, or the same networks in
//! another order. The core's largest frame is [`TAG_LEN`] bytes smaller than the transport's
//! MTU so that the tag always fits. With one network nothing is added: the frames and the
//! path are those of a driver without redundant rings, and a tagged frame arriving there is
//! refused by the core (its CRC or tag covers the frame without the two bytes), which the
//! driver's log then explains.

use std::fmt;
use std::net::SocketAddr;

use crate::rrp::{FaultCause, MAX_NETWORKS, NetState, NetStats, RrpEvent};
use crate::types::NodeId;

/// First byte of the network tag.
pub const TAG_MAGIC: u8 = 0xA5;
/// Length of the network tag at the end of each frame (more than one network only).
pub const TAG_LEN: usize = 2;

/// The tag of a frame sent on network `net` by a node with `networks` networks.
pub(super) fn tag(net: usize, networks: usize) -> [u8; TAG_LEN] {
    [TAG_MAGIC, ((net as u8) << 4) | (networks as u8 & 0x0F)]
}

/// What a frame's tag says: `Ok(body)` without the tag, or what does not match.
pub(super) fn untag(frame: &[u8], net: usize, networks: usize) -> Result<&[u8], Mismatch> {
    let Some(split) = frame.len().checked_sub(TAG_LEN) else {
        return Err(Mismatch::Untagged);
    };
    let (body, t) = frame.split_at(split);
    if t[0] != TAG_MAGIC {
        return Err(Mismatch::Untagged);
    }
    let (theirs, count) = (usize::from(t[1] >> 4), usize::from(t[1] & 0x0F));
    if count != networks {
        return Err(Mismatch::Count { theirs: count });
    }
    if theirs != net {
        return Err(Mismatch::Order { theirs });
    }
    Ok(body)
}

/// The network tag of a frame a one-network driver refused, if it has one: `(net,
/// networks)` of its sender (a hint for the log only: an untagged frame may end so by chance).
pub(super) fn tag_of_refused(frame: &[u8]) -> Option<(usize, usize)> {
    let split = frame.len().checked_sub(TAG_LEN)?;
    let t = &frame[split..];
    let (net, count) = (usize::from(t[1] >> 4), usize::from(t[1] & 0x0F));
    (t[0] == TAG_MAGIC && (2..=MAX_NETWORKS).contains(&count) && net < count)
        .then_some((net, count))
}

/// How a frame's network tag disagrees with this node's networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// No tag: the sender has one network (or is not a Totem node).
    Untagged,
    /// The sender has `theirs` networks.
    Count {
        /// Its number of networks.
        theirs: usize,
    },
    /// The sender sent it on its network `theirs`, and it arrived on another one here: the
    /// networks are listed in another order.
    Order {
        /// Its network number.
        theirs: usize,
    },
}

/// What happened to a network, for the event log (through
/// [`EventSink::network`](super::EventSink::network)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// The redundant-ring layer marked the network faulty.
    Faulty {
        /// The network.
        net: u8,
        /// Why, as this node sees it.
        cause: FaultCause,
    },
    /// The network works again and was re-enabled by itself.
    Restored {
        /// The network.
        net: u8,
    },
    /// The operator took the network out of use (`aisctl ring disable`).
    Disabled {
        /// The network.
        net: u8,
    },
    /// The operator put the network back in use (`aisctl ring enable`).
    Enabled {
        /// The network.
        net: u8,
    },
    /// A frame whose network tag disagrees with this node's networks (see the [module
    /// documentation](self)); reported at most once per sender and network per
    /// [`DIAG_INTERVAL`](super::DIAG_INTERVAL).
    Mismatch {
        /// The network it arrived on.
        net: u8,
        /// Its sender (from the frame's header; 0 if it has none).
        from: NodeId,
        /// The sender's address.
        addr: SocketAddr,
        /// What disagrees.
        problem: Mismatch,
        /// How many networks this node has.
        networks: usize,
    },
}

impl From<RrpEvent> for NetworkEvent {
    fn from(e: RrpEvent) -> NetworkEvent {
        match e {
            RrpEvent::Faulty { net, cause } => NetworkEvent::Faulty { net: net.0, cause },
            RrpEvent::Restored { net } => NetworkEvent::Restored { net: net.0 },
        }
    }
}

impl fmt::Display for NetworkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NetworkEvent::Faulty { net, cause } => {
                write!(
                    f,
                    "network {net} marked faulty ({})",
                    NetState::Faulty(cause)
                )
            }
            NetworkEvent::Restored { net } => {
                write!(f, "network {net} works again: re-enabled by itself")
            }
            NetworkEvent::Disabled { net } => write!(f, "network {net} disabled by the operator"),
            NetworkEvent::Enabled { net } => write!(f, "network {net} enabled by the operator"),
            NetworkEvent::Mismatch {
                net,
                from,
                addr,
                problem,
                networks,
            } => match problem {
                Mismatch::Untagged => write!(
                    f,
                    "frame from node {} ({addr}) on network {net} carries no network tag: that node \
                     is configured with one network, this one with {networks}; every node must list \
                     the same networks in the same order (frames dropped)",
                    from.0
                ),
                Mismatch::Count { theirs } => write!(
                    f,
                    "node {} ({addr}) is configured with {theirs} networks, this node with \
                     {networks}; every node must list the same networks in the same order (frames \
                     dropped)",
                    from.0
                ),
                Mismatch::Order { theirs } => write!(
                    f,
                    "node {} ({addr}) sent on its network {theirs} a frame that arrived on this \
                     node's network {net}: the two configurations list the networks in another \
                     order (frames dropped)",
                    from.0
                ),
            },
        }
    }
}

/// One network of a running driver, in [`super::DriverStatus::networks`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkStatus {
    /// The redundant-ring layer's state and counters of the network (with one network: always
    /// working, counters 0: the layer does not run).
    pub rrp: NetStats,
    /// Its transport's counters.
    pub transport: dataplane::Stats,
    /// Frames dropped because their network tag disagreed with this node's networks.
    pub mismatched: u64,
}

macro_rules! per_net {
    ($($i:literal),*) => {
        [$([
            concat!("rrp_net", $i, "_state"),
            concat!("rrp_net", $i, "_problem_count"),
            concat!("rrp_net", $i, "_frames_received"),
            concat!("rrp_net", $i, "_first_copies"),
            concat!("rrp_net", $i, "_duplicates"),
            concat!("rrp_net", $i, "_copies_missed"),
            concat!("rrp_net", $i, "_late_copies"),
            concat!("rrp_net", $i, "_frames_sent"),
            concat!("rrp_net", $i, "_marked_faulty"),
            concat!("rrp_net", $i, "_restored"),
            concat!("rrp_net", $i, "_mismatched"),
            concat!("rrp_net", $i, "_tx_errors"),
        ]),*]
    };
}

/// The names each network's values are visited under (`rrp_net<N>_…`).
pub const NET_NAMES: [[&str; 12]; MAX_NETWORKS] = per_net!(0, 1, 2, 3);

/// Visits every network's state and counters under [`NET_NAMES`], and `rrp_networks`; nothing
/// with one network (the transport's own counters are visited by the status).
pub(super) fn visit_networks(nets: &[NetworkStatus], v: &mut dyn dataplane::stats::Visitor) {
    if nets.len() < 2 {
        return;
    }
    v.gauge("rrp_networks", nets.len() as u64);
    for (n, names) in nets.iter().zip(NET_NAMES.iter()) {
        let r = &n.rrp;
        v.gauge(names[0], r.state.gauge());
        v.gauge(names[1], u64::from(r.problem_count));
        v.counter(names[2], r.frames_received);
        v.counter(names[3], r.first_copies);
        v.counter(names[4], r.duplicates);
        v.counter(names[5], r.copies_missed);
        v.counter(names[6], r.late_copies);
        v.counter(names[7], r.frames_sent);
        v.counter(names[8], r.marked_faulty);
        v.counter(names[9], r.restored);
        v.counter(names[10], n.mismatched);
        v.counter(names[11], n.transport.tx_errors);
    }
}

/// The `rrp_receive` fuzz target: what a driver over two networks does with received bytes
/// before the core. `data` is a series of records `[net, advance_ms, len_hi, len_lo, bytes…]`:
/// each frame arrives on network `net % 3` (2 is not a network: refused) `advance_ms` later,
/// goes through the network tag check and, if its tag is right, through the redundant-ring
/// layer (active mode, then passive from the middle of the data), whose timers fire as due; a
/// record with `len` 0xFFFF instead toggles network `net % 2` off or on (the operator's
/// command).
///
/// # Panics
/// If the tag check or the layer panics, or breaks its own rules: a body that is not the frame
/// without its last two bytes, a frame delivered twice within the layer's memory, a disabled
/// network used to send, or no network left to send on.
pub fn fuzz_receive(data: &[u8]) {
    use crate::rrp::{NetId, Rrp, RrpConfig, RrpMode, Verdict};
    use crate::time::{Duration, Instant};
    let mut rrp = Rrp::new(RrpConfig::new(2, RrpMode::Active), crate::types::NodeId(2))
        .expect("valid config");
    let mut now = Instant(0);
    let mut rest = data;
    let mut first: std::collections::HashMap<Vec<u8>, Instant> = std::collections::HashMap::new();
    let mut disabled = [false; 2];
    let half = data.len() / 2;
    while rest.len() >= 4 {
        if rest.len() <= half && rrp.config().mode == RrpMode::Active {
            rrp = Rrp::new(RrpConfig::new(2, RrpMode::Passive), crate::types::NodeId(2))
                .expect("valid config");
            first.clear();
            disabled = [false; 2];
        }
        let net = usize::from(rest[0] % 3);
        now = now + Duration::from_millis(u64::from(rest[1]));
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        rest = &rest[4..];
        if let Some(at) = rrp.poll_timeout().filter(|at| *at <= now) {
            rrp.handle_timeout(at);
        }
        while rrp.poll_event().is_some() {}
        if len == 0xFFFF {
            let n = net % 2;
            let on = disabled[n];
            if rrp.set_enabled(NetId(n as u8), on).is_ok() {
                disabled[n] = !on;
            }
            assert!(!(disabled[0] && disabled[1]), "no network left");
            continue;
        }
        let len = len.min(rest.len());
        let (frame, next) = rest.split_at(len);
        rest = next;
        let sent = rrp.networks_for(frame);
        assert!(!sent.is_empty(), "a frame sent on no network");
        for (i, off) in disabled.iter().enumerate() {
            assert!(
                !(*off && sent.contains(NetId(i as u8))),
                "sent on disabled network {i}"
            );
        }
        let Ok(body) = untag(frame, net, 2) else {
            continue;
        };
        assert_eq!(body, &frame[..frame.len() - TAG_LEN]);
        if rrp.handle_frame(now, NetId(net as u8), body) == Verdict::Deliver {
            // Delivered again only once the layer may have forgotten it (its memory, 20 ms).
            if let Some(at) = first.get(body) {
                assert!(
                    now.saturating_since(*at) >= Duration::from_millis(20),
                    "a copy delivered twice within the layer's memory"
                );
            }
            first.insert(body.to_vec(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_reads_back_and_every_disagreement_is_named() {
        let mut f = b"frame body".to_vec();
        f.extend_from_slice(&tag(1, 2));
        assert_eq!(untag(&f, 1, 2), Ok(&b"frame body"[..]));
        assert_eq!(untag(&f, 0, 2), Err(Mismatch::Order { theirs: 1 }));
        assert_eq!(untag(&f, 1, 3), Err(Mismatch::Count { theirs: 2 }));
        assert_eq!(untag(b"frame body", 0, 2), Err(Mismatch::Untagged));
        assert_eq!(untag(b"x", 0, 2), Err(Mismatch::Untagged));
        assert_eq!(untag(b"", 0, 2), Err(Mismatch::Untagged));
        assert_eq!(tag_of_refused(&f), Some((1, 2)));
        assert_eq!(tag_of_refused(b"frame body"), None);
        assert_eq!(tag_of_refused(b""), None);
    }

    #[test]
    fn the_fuzz_target_runs_on_a_few_inputs() {
        let mut f = b"frame body of some length".to_vec();
        f.extend_from_slice(&tag(1, 2));
        let len = (f.len() as u16).to_be_bytes();
        let mut data = Vec::new();
        for net in [1u8, 0, 1, 1, 2] {
            data.extend_from_slice(&[net, 1, len[0], len[1]]);
            data.extend_from_slice(&f);
        }
        data.extend_from_slice(&[1, 0, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 0, 30, 0, 3, 1, 2]);
        fuzz_receive(&data);
        fuzz_receive(&[]);
        fuzz_receive(&[0, 0, 0xFF]);
    }

    #[test]
    fn per_network_names_are_unique() {
        let all: Vec<&str> = NET_NAMES.iter().flatten().copied().collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }
}
