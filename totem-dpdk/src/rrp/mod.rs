//! Redundant rings: one Totem ring over 1 to 4 networks, invisible to the single-ring core.
//!
//! [`Rrp`] sits between the SRP core ([`crate::srp::Totem`]) and the transports, one per
//! network. It is pure like the core: time comes in with every call, and its verdicts come out
//! as values.
//!
//! # Calling contract
//! - Outgoing: for every [`crate::srp::Transmit`] the core produces, [`Rrp::networks_for`] says
//!   on which networks to send it ([`NetSet`]); send the same bytes on each.
//! - Incoming: give every frame received on network `n` to [`Rrp::handle_frame`] first; pass
//!   it to the core only when the verdict is [`Verdict::Deliver`].
//! - Time: call [`Rrp::handle_timeout`] when [`Rrp::poll_timeout`] is reached (early calls do
//!   nothing harmful), then drain [`Rrp::poll_event`] (a network marked faulty or restored).
//!
//! # Modes
//! - [`RrpMode::Active`]: every frame goes out on every network, faulty ones included (a
//!   receiver takes the first copy, so a faulty network costs no frame and needs no probe to
//!   prove it works again: its copies are the evidence).
//! - [`RrpMode::Passive`]: data frames (`Mcast`) go out on one network, round robin over the
//!   networks not marked faulty; tokens and membership frames go out on every network, so they
//!   keep measuring every network (faulty ones included) and the ring survives the loss of a
//!   network before it is detected. The core takes a token only from a network this node
//!   sends data on (so the token never overtakes the data and the ring's flow control follows
//!   the network that carries it), and each visit's data starts on the next network (so a
//!   frame re-sent first at every visit does not always take the same one).
//!
//! # Duplicates
//! The first copy of a frame is delivered; copies of the same bytes from the same sender
//! received on any network within [`RrpConfig::memory`] are dropped ([`Verdict::Duplicate`]).
//! The key is a hash of the frame's header, its first bytes, its last bytes (the CRC trailer
//! or the AEAD tag) and its length; with frame protection on, every transmission carries a
//! fresh nonce in those bytes, so a replay on one network of a frame opened from another one
//! is refused here within the memory and by the shared replay window of
//! [`crate::crypto::FrameCrypto`] after it. `memory` stays below the join interval, because
//! without protection a re-sent join message has the same bytes as the previous one.
//!
//! # Fault detection
//! For every frame that was sent on every network (all frames in active mode, all but data
//! frames in passive mode), the copies that have not arrived [`RrpConfig::copy_timeout`]
//! after the first one count as *missed* on their network. Every
//! [`RrpConfig::check_interval`] each network's window is judged: a window where at least
//! [`RrpConfig::bad_window_permille`] of the expected copies were missed is *bad* and raises
//! the network's problem counter by one; a good window lowers it by one (the counters
//! decay); a window with nothing expected changes nothing. At
//! [`RrpConfig::problem_threshold`] the network is marked faulty, with a cause read from the
//! bad window ([`FaultCause`]): nothing arrived (`Lost`), everything from some senders and
//! something from others (`OneWay`: some direction towards this node is cut), or part of it
//! (`Lossy`). A faulty network is re-enabled by itself after
//! [`RrpConfig::reenable_windows`] consecutive good windows, with no operator action.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::time::{Duration, Instant};
use crate::types::NodeId;

/// Most networks one ring can use.
pub const MAX_NETWORKS: usize = 4;

/// Frame type byte of a data frame (`wire::FrameType::Mcast`), offset 3 of the header.
const MCAST: u8 = 2;
/// Frame type byte of the ORF token (`wire::FrameType::OrfToken`).
const TOKEN: u8 = 1;
/// Offset of the frame type in the common header.
const TYPE_AT: usize = 3;
/// Bytes of the start of a frame that enter the duplicate key (header, crypto header with the
/// nonce, the protocol header with sender, ring and sequence number).
const KEY_HEAD: usize = 64;
/// Bytes of the end of a frame that enter the duplicate key (CRC trailer or AEAD tag).
const KEY_TAIL: usize = 16;

/// How frames use the networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[doc(alias = "rrp_mode")]
pub enum RrpMode {
    /// Every frame on every network (corosync `rrp_mode: active`).
    #[default]
    Active,
    /// Data frames spread over the working networks, the rest on all of them (corosync
    /// `rrp_mode: passive`).
    Passive,
}

/// A network's index, 0 to [`MAX_NETWORKS`] − 1 (corosync's `ringnumber`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[doc(alias = "ringnumber")]
pub struct NetId(pub u8);

/// A set of networks (a bit per network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NetSet(pub u8);

impl NetSet {
    /// The networks `0..n`.
    pub fn first(n: usize) -> NetSet {
        NetSet(((1u16 << n.min(8)) - 1) as u8)
    }

    /// True if `net` is in the set.
    pub fn contains(self, net: NetId) -> bool {
        self.0 & (1 << net.0) != 0
    }

    /// The set with `net` added.
    pub fn with(self, net: NetId) -> NetSet {
        NetSet(self.0 | (1 << net.0))
    }

    /// How many networks.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True for no network.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The networks, ascending.
    pub fn iter(self) -> impl Iterator<Item = NetId> {
        (0..8u8).filter(move |i| self.0 & (1 << i) != 0).map(NetId)
    }
}

/// What can be wrong with an [`RrpConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RrpConfigError {
    /// `networks` is outside 1..=4.
    #[error("{0} networks: a ring uses 1 to 4 networks")]
    Networks(usize),
    /// A timer or threshold is zero or inconsistent.
    #[error("redundant ring detection: {0}")]
    Detection(&'static str),
}

/// The redundant-ring layer's settings. Defaults are explained on each field
/// (`docs/rings.md` has the reasoning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrpConfig {
    /// How many networks (1 to 4). With 1 the layer passes everything through untouched.
    pub networks: usize,
    /// Active or passive.
    pub mode: RrpMode,
    /// How long after a frame's first copy the other copies may still arrive before they count
    /// as missed (corosync `rrp_token_expired_timeout`). Default 5 ms: far above the skew of
    /// two LANs, far below a token timeout.
    #[doc(alias = "rrp_token_expired_timeout")]
    pub copy_timeout: Duration,
    /// How long a frame's key is remembered to drop its later copies. Default 20 ms; must be
    /// at least `copy_timeout` and below the core's join interval (25 ms by default), because a
    /// re-sent join without frame protection repeats its bytes.
    pub memory: Duration,
    /// Length of a judging window (corosync `rrp_problem_count_timeout` decrements its
    /// counters at this period). Default 50 ms.
    #[doc(alias = "rrp_problem_count_timeout")]
    pub check_interval: Duration,
    /// A window in which at least this share of the expected copies was missed, per mille, is
    /// bad. Default 200 (20%): lighter loss is masked by the other networks and does not mark
    /// a network faulty; a network losing half its frames is.
    pub bad_window_permille: u32,
    /// Problem counter value (bad windows not compensated by good ones) at which the network
    /// is marked faulty (corosync `rrp_problem_count_threshold`). Default 3: a lost network is
    /// marked within about 150 ms.
    #[doc(alias = "rrp_problem_count_threshold")]
    pub problem_threshold: u32,
    /// Consecutive good windows after which a faulty network is re-enabled by itself. Default
    /// 4 (200 ms of clean copies), so a network that flaps faster stays faulty.
    #[doc(alias = "rrp_autorecovery_check_timeout")]
    pub reenable_windows: u32,
}

impl RrpConfig {
    /// `networks` networks in `mode`, with the default detection settings.
    pub fn new(networks: usize, mode: RrpMode) -> RrpConfig {
        RrpConfig {
            networks,
            mode,
            copy_timeout: Duration::from_millis(5),
            memory: Duration::from_millis(20),
            check_interval: Duration::from_millis(50),
            bad_window_permille: 200,
            problem_threshold: 3,
            reenable_windows: 4,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A network count outside 1..=4, a zero timer or threshold, `memory` below
    /// `copy_timeout`, or a share above 1000 per mille.
    pub fn validate(&self) -> Result<(), RrpConfigError> {
        if !(1..=MAX_NETWORKS).contains(&self.networks) {
            return Err(RrpConfigError::Networks(self.networks));
        }
        if self.copy_timeout == Duration::ZERO || self.check_interval == Duration::ZERO {
            return Err(RrpConfigError::Detection("timers must not be zero"));
        }
        if self.memory < self.copy_timeout {
            return Err(RrpConfigError::Detection(
                "memory must be at least copy_timeout",
            ));
        }
        if self.problem_threshold == 0 || self.reenable_windows == 0 {
            return Err(RrpConfigError::Detection("thresholds must not be zero"));
        }
        if self.bad_window_permille == 0 || self.bad_window_permille > 1000 {
            return Err(RrpConfigError::Detection(
                "bad_window_permille must be 1..=1000",
            ));
        }
        Ok(())
    }
}

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// The first copy: give it to the core.
    Deliver,
    /// A copy already received on this or another network: drop it.
    Duplicate,
}

/// Why a network was marked faulty, as seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultCause {
    /// Nothing arrived on it in the bad window.
    Lost,
    /// Everything from some senders was missed while frames from others arrived: traffic
    /// from those senders to this node is cut on this network (one direction).
    OneWay,
    /// Part of the copies was missed.
    Lossy,
}

/// A network's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NetState {
    /// In use.
    #[default]
    Working,
    /// Marked faulty: passive mode sends no data frame on it; it is still listened to, and it
    /// comes back after enough good windows.
    Faulty(FaultCause),
    /// Taken out of use by the operator ([`Rrp::set_enabled`], `aisctl ring disable`): nothing
    /// is sent on it and it is not judged; copies still received on it are deduplicated as
    /// usual. It stays so until enabled again.
    Disabled,
}

impl std::fmt::Display for NetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetState::Working => "working",
            NetState::Faulty(FaultCause::Lost) => "faulty (lost)",
            NetState::Faulty(FaultCause::OneWay) => "faulty (one-way)",
            NetState::Faulty(FaultCause::Lossy) => "faulty (lossy)",
            NetState::Disabled => "disabled",
        })
    }
}

impl NetState {
    /// The state as the gauge `rrp_net<N>_state`: 0 working, 1 lost, 2 one-way, 3 lossy,
    /// 4 disabled.
    pub fn gauge(self) -> u64 {
        match self {
            NetState::Working => 0,
            NetState::Faulty(FaultCause::Lost) => 1,
            NetState::Faulty(FaultCause::OneWay) => 2,
            NetState::Faulty(FaultCause::Lossy) => 3,
            NetState::Disabled => 4,
        }
    }

    /// The inverse of [`NetState::gauge`] (`None` for another value).
    pub fn from_gauge(value: u64) -> Option<NetState> {
        Some(match value {
            0 => NetState::Working,
            1 => NetState::Faulty(FaultCause::Lost),
            2 => NetState::Faulty(FaultCause::OneWay),
            3 => NetState::Faulty(FaultCause::Lossy),
            4 => NetState::Disabled,
            _ => return None,
        })
    }
}

/// Why [`Rrp::set_enabled`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RrpAdminError {
    /// No such network.
    #[error("network {net} does not exist (this node has {networks})")]
    NoSuchNetwork {
        /// The network asked for.
        net: u8,
        /// How many this node has.
        networks: usize,
    },
    /// Disabling it would leave no network in use.
    #[error("network {0} is the last one enabled: disabling it would cut this node off")]
    LastNetwork(u8),
}

/// A network marked faulty or re-enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrpEvent {
    /// The network was marked faulty (corosync's "Marking ringid N interface X FAULTY").
    Faulty {
        /// Which network.
        net: NetId,
        /// Why.
        cause: FaultCause,
    },
    /// The network works again and is back in use (corosync's "Automatically recovered ring").
    Restored {
        /// Which network.
        net: NetId,
    },
}

/// One network's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Its state.
    pub state: NetState,
    /// Bad windows not yet compensated by good ones.
    pub problem_count: u32,
    /// Consecutive good windows while faulty.
    pub good_windows: u32,
    /// Frames received on it (copies included).
    pub frames_received: u64,
    /// Frames it delivered first to the core.
    pub first_copies: u64,
    /// Copies dropped because another network (or this one) brought the frame earlier.
    pub duplicates: u64,
    /// Copies that did not arrive within `copy_timeout` of the first.
    pub copies_missed: u64,
    /// Of the missed copies, those that arrived later anyway (a slow network).
    pub late_copies: u64,
    /// Frames the layer sent on it.
    pub frames_sent: u64,
    /// Bad windows.
    pub bad_windows: u64,
    /// Times it was marked faulty.
    pub marked_faulty: u64,
    /// Times it was re-enabled.
    pub restored: u64,
    /// Passive mode: token copies that arrived here first while this node marked the
    /// network faulty; kept as evidence, not given to the core (the copy from a working
    /// network is).
    pub faulty_tokens: u64,
}

/// The redundant-ring layer's counters, per network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RrpStats {
    /// One entry per network.
    pub nets: Vec<NetStats>,
}

impl dataplane::stats::Visit for RrpStats {
    fn visit(&self, v: &mut dyn dataplane::stats::Visitor) {
        // A Visitor takes static names: the per-network counters are summed here, and each
        // network's state is a gauge per network (see `NetState::gauge`).
        const STATE: [&str; MAX_NETWORKS] = [
            "rrp_net0_state",
            "rrp_net1_state",
            "rrp_net2_state",
            "rrp_net3_state",
        ];
        const PROBLEMS: [&str; MAX_NETWORKS] = [
            "rrp_net0_problem_count",
            "rrp_net1_problem_count",
            "rrp_net2_problem_count",
            "rrp_net3_problem_count",
        ];
        for (i, n) in self.nets.iter().enumerate() {
            v.gauge(STATE[i], n.state.gauge());
            v.gauge(PROBLEMS[i], u64::from(n.problem_count));
        }
        let sum = |f: fn(&NetStats) -> u64| self.nets.iter().map(f).sum::<u64>();
        v.counter("rrp_duplicates", sum(|n| n.duplicates));
        v.counter("rrp_copies_missed", sum(|n| n.copies_missed));
        v.counter("rrp_marked_faulty", sum(|n| n.marked_faulty));
        v.counter("rrp_restored", sum(|n| n.restored));
    }
}

/// Deliberate defects, for the simulator's proof that its checks catch a broken layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Defect {
    /// None (the real layer).
    #[default]
    None,
    /// Every frame goes out on network 0 only: no failover.
    NoFailover,
    /// No duplicate is dropped: every copy goes to the core.
    NoDedup,
    /// Passive mode gives the core the first copy of a token from any network, faulty ones
    /// included (the layer before the fix of issue 21's saturated cut).
    TokenOvertakes,
}

/// One remembered frame.
#[derive(Debug, Clone, Copy)]
struct Seen {
    from: NodeId,
    /// Networks its copies arrived on.
    arrived: NetSet,
    /// It was sent on every network, so a missing copy is evidence.
    replicated: bool,
    /// Already judged (`copy_timeout` passed).
    judged: bool,
    /// A copy went to the core (false only for a passive token whose copies so far came on
    /// networks this node marks faulty).
    delivered: bool,
    /// Judged when forgotten (at `memory`) rather than at `copy_timeout`: its first copy came
    /// on a faulty network, ahead of the queues of the working ones.
    deferred: bool,
}

/// One network's judging window.
#[derive(Debug, Clone, Default)]
struct Window {
    expected: u32,
    missed: u32,
    /// Per sender: (expected, missed), in arrival order of senders (few entries).
    senders: Vec<(NodeId, u32, u32)>,
}

impl Window {
    fn count(&mut self, from: NodeId, missed: bool) {
        self.expected += 1;
        self.missed += u32::from(missed);
        match self.senders.iter_mut().find(|(n, _, _)| *n == from) {
            Some(s) => {
                s.1 += 1;
                s.2 += u32::from(missed);
            }
            None => self.senders.push((from, 1, u32::from(missed))),
        }
    }

    fn cause(&self) -> FaultCause {
        if self.missed == self.expected {
            FaultCause::Lost
        } else if self.senders.iter().any(|&(_, e, m)| m == e) {
            FaultCause::OneWay
        } else {
            FaultCause::Lossy
        }
    }
}

/// The redundant-ring layer of one node. See the [module documentation](self).
#[derive(Debug)]
pub struct Rrp {
    cfg: RrpConfig,
    me: NodeId,
    defect: Defect,
    all: NetSet,
    /// The networks not disabled by the operator (never empty).
    enabled: NetSet,
    /// Frames remembered, by key (already a hash: not hashed again).
    seen: HashMap<u64, Seen, BuildHasherDefault<KeyHasher>>,
    /// Keys in arrival order of their first copy.
    order: VecDeque<(Instant, u64)>,
    /// How many keys at the front of `order` were judged.
    judged: usize,
    windows: Vec<Window>,
    /// End of the current judging window (`None` until the first frame).
    window_end: Option<Instant>,
    /// Next network for a data frame in passive mode.
    next_net: usize,
    /// Tokens this node sent (passive mode starts each visit's data on the next network).
    visits: usize,
    stats: RrpStats,
    events: VecDeque<RrpEvent>,
}

impl Rrp {
    /// The layer of node `me`.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(cfg: RrpConfig, me: NodeId) -> Result<Rrp, RrpConfigError> {
        cfg.validate()?;
        let n = cfg.networks;
        Ok(Rrp {
            all: NetSet::first(n),
            enabled: NetSet::first(n),
            me,
            defect: Defect::None,
            seen: HashMap::default(),
            order: VecDeque::new(),
            judged: 0,
            windows: vec![Window::default(); n],
            window_end: None,
            next_net: 0,
            visits: 0,
            stats: RrpStats {
                nets: vec![NetStats::default(); n],
            },
            events: VecDeque::new(),
            cfg,
        })
    }

    /// Builds a deliberately broken layer (simulator tests only).
    pub fn set_defect(&mut self, defect: Defect) {
        self.defect = defect;
    }

    /// The configuration.
    pub fn config(&self) -> &RrpConfig {
        &self.cfg
    }

    /// Counters and states.
    pub fn stats(&self) -> &RrpStats {
        &self.stats
    }

    /// A network's state.
    ///
    /// # Panics
    /// If `net` is not one of the configured networks.
    pub fn state(&self, net: NetId) -> NetState {
        self.stats.nets[usize::from(net.0)].state
    }

    /// Takes network `net` out of use (`enabled` false: nothing is sent on it, it is not
    /// judged; [`NetState::Disabled`]) or puts it back (`true`: [`NetState::Working`] with its
    /// problem counter at 0). Setting the state it already has does nothing. The operator's
    /// `aisctl ring disable|enable N`; the other nodes see its copies from this node go
    /// missing and mark it faulty (one-way) on their side until it is enabled again.
    ///
    /// # Errors
    /// A network this node does not have, or disabling the last enabled network.
    pub fn set_enabled(&mut self, net: NetId, enabled: bool) -> Result<(), RrpAdminError> {
        let i = usize::from(net.0);
        if i >= self.cfg.networks {
            return Err(RrpAdminError::NoSuchNetwork {
                net: net.0,
                networks: self.cfg.networks,
            });
        }
        let ns = &mut self.stats.nets[i];
        if enabled {
            if ns.state == NetState::Disabled {
                ns.state = NetState::Working;
                ns.problem_count = 0;
                ns.good_windows = 0;
                self.enabled = self.enabled.with(net);
                tracing::info!(net = net.0, "network enabled by the operator");
            }
            return Ok(());
        }
        if ns.state == NetState::Disabled {
            return Ok(());
        }
        if self.enabled == NetSet::default().with(net) {
            return Err(RrpAdminError::LastNetwork(net.0));
        }
        ns.state = NetState::Disabled;
        ns.good_windows = 0;
        self.enabled = NetSet(self.enabled.0 & !(1 << net.0));
        tracing::warn!(net = net.0, "network disabled by the operator");
        Ok(())
    }

    /// The networks to send `frame` on.
    pub fn networks_for(&mut self, frame: &[u8]) -> NetSet {
        if self.cfg.networks == 1 {
            return self.all;
        }
        if self.cfg.mode == RrpMode::Passive && frame.get(TYPE_AT) == Some(&TOKEN) {
            // The token ends this node's visit. The next visit's data starts on the next
            // network, whatever the number of frames this one sent: a frame re-sent first at
            // every visit (the lowest one missing) must not land on the same network every
            // time, or a network losing frames before it is marked faulty (150 ms) loses it
            // every time, and its receiver is removed (FAILED TO RECEIVE).
            self.visits = self.visits.wrapping_add(1);
            self.next_net = self.visits % self.cfg.networks;
        }
        let set = if self.defect == Defect::NoFailover {
            NetSet(1)
        } else if self.cfg.mode == RrpMode::Passive && frame.get(TYPE_AT) == Some(&MCAST) {
            self.pick_data_network()
        } else {
            self.enabled
        };
        for net in set.iter() {
            self.stats.nets[usize::from(net.0)].frames_sent += 1;
        }
        set
    }

    /// Passive mode: the next working network, round robin; all networks faulty: the next one
    /// anyway (a node never stops sending).
    fn pick_data_network(&mut self) -> NetSet {
        let n = self.cfg.networks;
        for i in 0..n {
            let net = (self.next_net + i) % n;
            if self.stats.nets[net].state == NetState::Working {
                self.next_net = (net + 1) % n;
                return NetSet(1 << net);
            }
        }
        for i in 0..n {
            let net = (self.next_net + i) % n;
            if self.enabled.contains(NetId(net as u8)) {
                self.next_net = (net + 1) % n;
                return NetSet(1 << net);
            }
        }
        NetSet(1)
    }

    /// A frame received on `net` at `now`: deliver it to the core, or drop it as a copy.
    /// Never panics on any input (a frame too short to carry a header is delivered, for the
    /// core to count as malformed).
    pub fn handle_frame(&mut self, now: Instant, net: NetId, frame: &[u8]) -> Verdict {
        if self.cfg.networks == 1 {
            return Verdict::Deliver;
        }
        let Some(ns) = self.stats.nets.get_mut(usize::from(net.0)) else {
            return Verdict::Deliver;
        };
        ns.frames_received += 1;
        self.expire(now);
        let key = frame_key(frame);
        let clocks = self.clocks(net, frame);
        if let Some(seen) = self.seen.get_mut(&key) {
            let ns = &mut self.stats.nets[usize::from(net.0)];
            if seen.judged && !seen.arrived.contains(net) {
                ns.late_copies += 1;
            }
            seen.arrived = seen.arrived.with(net);
            if !seen.delivered && clocks {
                // The first copy of a passive token from a network that carries data.
                seen.delivered = true;
                ns.first_copies += 1;
                return Verdict::Deliver;
            }
            ns.duplicates += 1;
            if self.defect == Defect::NoDedup {
                return Verdict::Deliver;
            }
            return Verdict::Duplicate;
        }
        if clocks {
            self.stats.nets[usize::from(net.0)].first_copies += 1;
        } else {
            self.stats.nets[usize::from(net.0)].faulty_tokens += 1;
        }
        let from = frame.get(4..8).map_or(NodeId::NONE, |b| {
            NodeId(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        });
        let replicated = from != self.me
            && (self.cfg.mode == RrpMode::Active || frame.get(TYPE_AT) != Some(&MCAST));
        self.seen.insert(
            key,
            Seen {
                from,
                arrived: NetSet::default().with(net),
                replicated,
                judged: false,
                delivered: clocks,
                deferred: false,
            },
        );
        self.order.push_back((now, key));
        if self.window_end.is_none() {
            self.window_end = Some(now + self.cfg.check_interval);
        }
        if clocks {
            Verdict::Deliver
        } else {
            Verdict::Duplicate
        }
    }

    /// Whether a copy of `frame` arriving on `net` may be the one the core takes. Always,
    /// except a token in passive mode on a network this node does not use for data (marked
    /// faulty or disabled) while another is working: in passive mode the token must travel
    /// the networks the data travels, behind the data this node's predecessor sent before it.
    /// A copy overtaking them on an idle faulty network would let the ring stamp frames as
    /// fast as that network carries tokens while the working network's queue overflows
    /// (docs/rings.md, "Passive mode: the token travels with the data").
    fn clocks(&self, net: NetId, frame: &[u8]) -> bool {
        if self.cfg.mode != RrpMode::Passive
            || frame.get(TYPE_AT) != Some(&TOKEN)
            || self.defect == Defect::TokenOvertakes
        {
            return true;
        }
        let working = |n: NetId| self.stats.nets[usize::from(n.0)].state == NetState::Working;
        working(net) || !self.enabled.iter().any(working)
    }

    /// When to call [`Rrp::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let judge = self
            .order
            .get(self.judged)
            .map(|(t, _)| *t + self.cfg.copy_timeout);
        let forget = self.order.front().map(|(t, _)| *t + self.cfg.memory);
        [judge, forget, self.window_end].into_iter().flatten().min()
    }

    /// Judges the copies and the windows due at `now`. Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.cfg.networks == 1 {
            return;
        }
        self.expire(now);
    }

    /// The next network event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RrpEvent> {
        self.events.pop_front()
    }

    /// Judges copies whose time is up, closes windows, forgets old keys.
    fn expire(&mut self, now: Instant) {
        while let Some(&(first, key)) = self.order.get(self.judged) {
            let due = first + self.cfg.copy_timeout;
            if due > now {
                break;
            }
            // Copies judged after the window they belong to closed still count in the next.
            self.close_windows(due);
            self.judged += 1;
            let Some(seen) = self.seen.get_mut(&key) else {
                continue;
            };
            seen.judged = true;
            if !seen.replicated {
                continue;
            }
            if !seen.delivered {
                // Its first copy overtook the working networks' queues: waiting only
                // `copy_timeout` for their copies would count a queue as a loss.
                seen.deferred = true;
                continue;
            }
            let (from, arrived) = (seen.from, seen.arrived);
            self.count_copies(from, arrived);
        }
        self.close_windows(now);
        while let Some(&(first, key)) = self.order.front() {
            if first + self.cfg.memory > now || self.judged == 0 {
                break;
            }
            self.order.pop_front();
            self.judged -= 1;
            if let Some(seen) = self.seen.remove(&key)
                && seen.deferred
            {
                self.count_copies(seen.from, seen.arrived);
            }
        }
    }

    /// Counts one replicated frame's copies in each enabled network's window.
    fn count_copies(&mut self, from: NodeId, arrived: NetSet) {
        for net in self.enabled.iter() {
            let i = usize::from(net.0);
            let missed = !arrived.contains(net);
            self.windows[i].count(from, missed);
            if missed {
                self.stats.nets[i].copies_missed += 1;
            }
        }
    }

    /// Closes every window that ended at or before `now`.
    fn close_windows(&mut self, now: Instant) {
        while let Some(end) = self.window_end.filter(|end| *end <= now) {
            for i in 0..self.cfg.networks {
                let w = std::mem::take(&mut self.windows[i]);
                self.judge(NetId(i as u8), &w);
            }
            // An idle node (nothing remembered) stops its windows until the next frame.
            self.window_end = if self.order.is_empty() {
                None
            } else {
                Some(end + self.cfg.check_interval)
            };
        }
    }

    fn judge(&mut self, net: NetId, w: &Window) {
        if w.expected == 0 || !self.enabled.contains(net) {
            return;
        }
        let cfg = &self.cfg;
        let ns = &mut self.stats.nets[usize::from(net.0)];
        let bad = u64::from(w.missed) * 1000
            >= u64::from(w.expected) * u64::from(cfg.bad_window_permille);
        if bad {
            ns.bad_windows += 1;
            ns.good_windows = 0;
            ns.problem_count = (ns.problem_count + 1).min(cfg.problem_threshold);
            if ns.state == NetState::Working && ns.problem_count >= cfg.problem_threshold {
                let cause = w.cause();
                ns.state = NetState::Faulty(cause);
                ns.marked_faulty += 1;
                tracing::warn!(net = net.0, ?cause, "network marked faulty");
                self.events.push_back(RrpEvent::Faulty { net, cause });
            }
            return;
        }
        ns.problem_count = ns.problem_count.saturating_sub(1);
        if let NetState::Faulty(_) = ns.state {
            ns.good_windows += 1;
            if ns.good_windows >= cfg.reenable_windows {
                ns.state = NetState::Working;
                ns.good_windows = 0;
                ns.problem_count = 0;
                ns.restored += 1;
                tracing::info!(net = net.0, "network works again, re-enabled");
                self.events.push_back(RrpEvent::Restored { net });
            }
        }
    }
}

/// Passes a [`frame_key`] through as its own hash (it is one already).
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// The duplicate key of a frame: FNV-1a over its length, its first [`KEY_HEAD`] bytes and its
/// last [`KEY_TAIL`] bytes. Deterministic (no per-process random state).
fn frame_key(frame: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for b in (frame.len() as u64).to_le_bytes() {
        eat(b);
    }
    let head = frame.len().min(KEY_HEAD);
    frame[..head].iter().for_each(|&b| eat(b));
    let tail = frame.len().saturating_sub(KEY_TAIL).max(head);
    frame[tail..].iter().for_each(|&b| eat(b));
    // Final mix (splitmix64's), so that both ends of the key are spread for the table.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
