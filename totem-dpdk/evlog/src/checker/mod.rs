//! The extended-virtual-synchrony checker: reads an event log ([`crate::log`]) and reports
//! every violated property.
//!
//! [`check`] indexes the events once (per node, per message, per ring) and then runs one
//! function per [`Property`]; each is near-linear in the number of events. It works from the
//! log alone: parameters come from [`CheckParams`], else from the log's `meta` line, else from
//! Totem's defaults. At most [`CheckParams::max_violations_per_property`] violations are kept
//! per property (the rest are only counted), so a broken run still gives a readable report.
//!
//! The properties are listed, with the research note's E/P numbers, in `docs/event-log.md`.
//!
//! ```
//! use totem_evlog::checker::{check, CheckParams};
//! use totem_evlog::log::read_log;
//!
//! let log = br#"{"ev":"meta","nodes":1,"drained":true}
//! {"t":1,"node":1,"ev":"config","kind":"regular","ring":"1.4","members":[1]}
//! {"t":2,"node":1,"ev":"send","msg":"1:1","len":3,"hash":"ba7816bf8f01cfea","kind":"agreed","prio":2}
//! {"t":3,"node":1,"ev":"deliver","msg":"1:1","ring":"1.4","seq":1,"kind":"agreed","hash":"ba7816bf8f01cfea","len":3}
//! "#;
//! let events = read_log(&log[..]).unwrap();
//! let report = check(&events, &CheckParams::default());
//! assert!(report.is_ok(), "{report}");
//! ```

mod config;
mod delivery;
mod index;
mod membership;
mod token;

/// Hash maps keyed by the log's small integer ids. The checker reads local log files, so it
/// trades SipHash's flooding resistance for speed: a multiply-rotate hash of each word.
mod fast {
    use std::hash::{BuildHasherDefault, Hasher};

    /// `std::collections::HashMap` with [`IdHasher`].
    pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IdHasher>>;
    /// `std::collections::HashSet` with [`IdHasher`].
    pub(crate) type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<IdHasher>>;

    /// Folds each written word into the state with a xor, a multiplication by an odd constant
    /// (2^64 / golden ratio) and a rotation.
    #[derive(Default, Clone, Copy)]
    pub(crate) struct IdHasher(u64);

    impl IdHasher {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;

        fn add(&mut self, word: u64) {
            self.0 = (self.0 ^ word).wrapping_mul(Self::K).rotate_left(29);
        }
    }

    impl Hasher for IdHasher {
        fn finish(&self) -> u64 {
            // Mix the high bits into the low ones, which pick the bucket.
            let h = self.0.wrapping_mul(Self::K);
            h ^ (h >> 32)
        }

        fn write(&mut self, bytes: &[u8]) {
            for chunk in bytes.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                self.add(u64::from_le_bytes(word));
            }
        }

        fn write_u8(&mut self, n: u8) {
            self.add(u64::from(n));
        }

        fn write_u32(&mut self, n: u32) {
            self.add(u64::from(n));
        }

        fn write_u64(&mut self, n: u64) {
            self.add(n);
        }

        fn write_usize(&mut self, n: usize) {
            self.add(n as u64);
        }
    }
}

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::log::{ConfigKind, LogError, LogEvent, read_log_with_lines};
use index::Index;
use totem_dpdk::NodeId;

/// Default `window_size` (corosync's default).
pub const DEFAULT_WINDOW_SIZE: u32 = 50;
/// Default `max_messages` (corosync's default).
pub const DEFAULT_MAX_MESSAGES: u32 = 17;
/// Default bound on a token's retransmit list (corosync's `RETRANSMIT_ENTRIES_MAX`).
pub const DEFAULT_MAX_RTR: u32 = 30;

/// A property the checker asserts. The number is the one used in `docs/event-log.md`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// Property 1: Every delivery matches a send of the same id, hash, length and kind, by its sender (E1).
    NoCreation,
    /// Property 2: A node delivers each message at most once (E2).
    NoDuplication,
    /// Property 3: One total order is consistent with every node's deliveries (E7, P1).
    TotalOrder,
    /// Property 4: No gaps in a regular configuration (E7).
    NoGaps,
    /// Property 5: A node that does not crash delivers its own sends (E10; drained runs only).
    SelfDelivery,
    /// Property 6: Causal order within a ring (E11).
    CausalOrder,
    /// Property 7: Safe delivery (E12).
    SafeDelivery,
    /// Property 8: Messages are delivered in their own configuration (E6).
    MessageInConfig,
    /// Property 9: Configuration events are well formed and include their node (E3).
    ConfigEvents,
    /// Property 10: Token invariants (P2, P3, P6, P7, M4).
    TokenInvariants,
    /// Property 11: The log itself is well formed (per-node time, crash/restart pairing, unique ids).
    WellFormedLog,
    /// Property 12: A ring id names one member list in the whole log, each node's regular ring
    /// seqs strictly increase (across restarts too), and transitional configurations between
    /// the same two rings agree (E4, M1).
    RingIdUnique,
    /// Property 13: Each node's configurations form the EVS sequence regular, \[transitional\],
    /// regular, … (E5).
    ConfigSequence,
    /// Property 14: Transitional deliveries keep increasing seq, and after a gap come only from
    /// transitional members (E8).
    TransitionalDelivery,
    /// Property 15: Failure atomicity: nodes with the same transitional configuration
    /// delivered the same messages of the ending ring in the same order (E9).
    FailureAtomicity,
    /// Property 16: Convergence: after the last fault, the live nodes install one common ring
    /// of exactly themselves within the bound (L1; drained runs with a fault time and bound).
    Convergence,
    /// Property 17: Members that were never faulted stay together: two nodes never named by a
    /// fault, whose link always worked, install the same regular configurations and never one
    /// without the other (only with [`CheckParams::stable_pairs`]).
    StableMembers,
}

impl Property {
    /// Every property, in number order.
    pub const ALL: [Property; 17] = [
        Property::NoCreation,
        Property::NoDuplication,
        Property::TotalOrder,
        Property::NoGaps,
        Property::SelfDelivery,
        Property::CausalOrder,
        Property::SafeDelivery,
        Property::MessageInConfig,
        Property::ConfigEvents,
        Property::TokenInvariants,
        Property::WellFormedLog,
        Property::RingIdUnique,
        Property::ConfigSequence,
        Property::TransitionalDelivery,
        Property::FailureAtomicity,
        Property::Convergence,
        Property::StableMembers,
    ];

    /// The property's number (1-based), as in `docs/event-log.md`.
    pub fn number(self) -> u32 {
        self as u32 + 1
    }

    /// A short kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Property::NoCreation => "no-creation",
            Property::NoDuplication => "no-duplication",
            Property::TotalOrder => "total-order",
            Property::NoGaps => "no-gaps",
            Property::SelfDelivery => "self-delivery",
            Property::CausalOrder => "causal-order",
            Property::SafeDelivery => "safe-delivery",
            Property::MessageInConfig => "message-in-config",
            Property::ConfigEvents => "config-events",
            Property::TokenInvariants => "token-invariants",
            Property::WellFormedLog => "well-formed-log",
            Property::RingIdUnique => "ring-id-unique",
            Property::ConfigSequence => "config-sequence",
            Property::TransitionalDelivery => "transitional-delivery",
            Property::FailureAtomicity => "failure-atomicity",
            Property::Convergence => "convergence",
            Property::StableMembers => "stable-members",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. {}", self.number(), self.name())
    }
}

/// One violated property at one place in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub property: Property,
    /// What happened, naming node, message, ring and sequence number.
    pub message: String,
    /// Index (0-based) in the checked event slice of the event that shows the violation.
    pub event: Option<usize>,
    /// 1-based line number of that event, when the log was read from a file ([`check_file`]).
    pub line: Option<usize>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.property)?;
        match (self.line, self.event) {
            (Some(line), _) => write!(f, " line {line}:")?,
            (None, Some(ev)) => write!(f, " event #{ev}:")?,
            (None, None) => f.write_str(":")?,
        }
        write!(f, " {}", self.message)
    }
}

/// Checker parameters. A `None` field is taken from the log's `meta` line, else from the
/// default. `CheckParams::default()` therefore checks a log with its own parameters.
/// `last_fault_ns` and `converge_bound_ns` are the exception: only the caller (the simulator)
/// knows them, and without both property 16 is not checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckParams {
    /// Upper bound of a token's `fcc` (default [`DEFAULT_WINDOW_SIZE`]).
    pub window_size: Option<u32>,
    /// Frames per token visit, new plus retransmitted (default [`DEFAULT_MAX_MESSAGES`]).
    pub max_messages: Option<u32>,
    /// Entries in a token's retransmit list (default [`DEFAULT_MAX_RTR`]).
    pub max_rtr: Option<u32>,
    /// The run ended quiescent, so liveness properties (self-delivery, safe delivery to every
    /// member) are enforced (default `false`).
    pub drained: Option<bool>,
    /// Time (ns) of the run's last fault (crash, restart, partition, pause or link fault).
    /// With [`CheckParams::converge_bound_ns`] and a drained run, enables property 16
    /// (convergence). The simulator sets it; the `meta` line does not carry it (yet).
    pub last_fault_ns: Option<u64>,
    /// How long (ns) after `last_fault_ns` the live nodes may take to install their final
    /// common ring (property 16).
    pub converge_bound_ns: Option<u64>,
    /// Pairs of nodes that no fault touched: neither was crashed, restarted, paused, started
    /// late or cut off, the link between them always worked, and no link lost, duplicated,
    /// reordered or corrupted frames. Enables property 17 for each pair. Only the caller (the
    /// simulator, from its schedule) knows them.
    pub stable_pairs: Option<Vec<(NodeId, NodeId)>>,
    /// The logs are real processes' ([`check_files`]): a node's log may have lost its last
    /// lines at a crash, so a delivered message whose send is missing is accepted when its
    /// sender crashed where that send would have been (property 1). The simulator, which logs
    /// every event at once, leaves it off.
    pub lost_tails: bool,
    /// Violations kept per property; more are only counted.
    pub max_violations_per_property: usize,
}

impl Default for CheckParams {
    fn default() -> CheckParams {
        CheckParams {
            window_size: None,
            max_messages: None,
            max_rtr: None,
            drained: None,
            last_fault_ns: None,
            converge_bound_ns: None,
            stable_pairs: None,
            lost_tails: false,
            max_violations_per_property: 20,
        }
    }
}

impl CheckParams {
    /// Parameters taken from the first `meta` line of `events` (fields it lacks stay `None`,
    /// i.e. default). [`check`] does this by itself for `None` fields; this makes it explicit.
    pub fn from_log(events: &[LogEvent]) -> CheckParams {
        let mut params = CheckParams::default();
        if let Some(m) = events.iter().find_map(|e| match e {
            LogEvent::Meta(m) => Some(m),
            _ => None,
        }) {
            params.window_size = m.window_size;
            params.max_messages = m.max_messages;
            params.max_rtr = m.max_rtr;
            params.drained = m.drained;
        }
        params
    }
}

/// The parameters a check actually used.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EffectiveParams {
    /// Upper bound of `fcc`.
    pub window_size: u32,
    /// Frames per token visit.
    pub max_messages: u32,
    /// Retransmit-list entries.
    pub max_rtr: u32,
    /// Whether liveness properties were enforced.
    pub drained: bool,
    /// Node count from the `meta` line, if any.
    pub nodes: Option<u32>,
    /// Time of the last fault, if given ([`CheckParams::last_fault_ns`]).
    pub last_fault_ns: Option<u64>,
    /// Convergence bound, if given ([`CheckParams::converge_bound_ns`]).
    pub converge_bound_ns: Option<u64>,
}

impl EffectiveParams {
    /// Whether property 16 (convergence) is checked: a drained run with both the time of its
    /// last fault and the convergence bound given.
    pub fn checks_convergence(&self) -> bool {
        self.drained && self.last_fault_ns.is_some() && self.converge_bound_ns.is_some()
    }
}

/// The result of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Violations found, grouped by property in number order; at most
    /// [`CheckParams::max_violations_per_property`] per property.
    pub violations: Vec<Violation>,
    /// All violations found per property, including those not kept in `violations`.
    pub violation_counts: BTreeMap<Property, u64>,
    /// Parameters used.
    pub params: EffectiveParams,
    /// Events checked (including `meta`).
    pub events: u64,
    /// `send` events.
    pub sends: u64,
    /// `deliver` events.
    pub delivered: u64,
    /// Distinct messages delivered somewhere.
    pub messages: u64,
    /// `config` events.
    pub configs: u64,
    /// `config` events of kind `regular`.
    pub regular_configs: u64,
    /// `config` events of kind `transitional`.
    pub transitional_configs: u64,
    /// `token` events.
    pub tokens: u64,
    /// `stored` events.
    pub stored: u64,
    /// `crash` events.
    pub crashes: u64,
    /// `restart` events.
    pub restarts: u64,
    /// `service` events: counted, and otherwise skipped by every property.
    pub service: u64,
    /// Distinct nodes that logged events.
    pub nodes: u64,
    /// Distinct ring ids seen.
    pub rings: u64,
}

impl Report {
    /// No violation at all.
    pub fn is_ok(&self) -> bool {
        self.violation_counts.is_empty()
    }

    /// Violations found for `property` (including those not kept).
    pub fn count(&self, property: Property) -> u64 {
        self.violation_counts.get(&property).copied().unwrap_or(0)
    }

    /// The properties with at least one violation, in number order.
    pub fn violated(&self) -> Vec<Property> {
        self.violation_counts.keys().copied().collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} events: {} nodes, {} rings, {} sends, {} deliveries of {} messages, {} configs \
             ({} regular, {} transitional), {} tokens, {} stored, {} crashes, {} restarts, \
             {} service (not checked)",
            self.events,
            self.nodes,
            self.rings,
            self.sends,
            self.delivered,
            self.messages,
            self.configs,
            self.regular_configs,
            self.transitional_configs,
            self.tokens,
            self.stored,
            self.crashes,
            self.restarts,
            self.service
        )?;
        let p = &self.params;
        write!(
            f,
            "params: window_size {} max_messages {} max_rtr {} drained {}",
            p.window_size, p.max_messages, p.max_rtr, p.drained
        )?;
        if let Some(t) = p.last_fault_ns {
            write!(f, " last_fault_ns {t}")?;
        }
        if let Some(b) = p.converge_bound_ns {
            write!(f, " converge_bound_ns {b}")?;
        }
        writeln!(f)?;
        if self.is_ok() {
            return writeln!(f, "OK: no violations");
        }
        for (prop, n) in &self.violation_counts {
            writeln!(f, "VIOLATED [{prop}]: {n}")?;
        }
        for v in &self.violations {
            writeln!(f, "{v}")?;
        }
        let kept = self.violations.len() as u64;
        let total: u64 = self.violation_counts.values().sum();
        if total > kept {
            writeln!(f, "({} more not shown)", total - kept)?;
        }
        Ok(())
    }
}

/// Collects violations, keeping at most `limit` per property.
pub(crate) struct Sink {
    limit: usize,
    counts: BTreeMap<Property, u64>,
    kept: BTreeMap<Property, Vec<Violation>>,
}

impl Sink {
    fn new(limit: usize) -> Sink {
        Sink {
            limit,
            counts: BTreeMap::new(),
            kept: BTreeMap::new(),
        }
    }

    /// Records a violation; `message` is only formatted when the violation is kept.
    pub(crate) fn report(
        &mut self,
        property: Property,
        event: Option<u32>,
        message: impl FnOnce() -> String,
    ) {
        let n = self.counts.entry(property).or_insert(0);
        *n += 1;
        if *n <= self.limit as u64 {
            self.kept.entry(property).or_default().push(Violation {
                property,
                message: message(),
                event: event.map(|e| e as usize),
                line: None,
            });
        }
    }
}

/// Checks `events` against every property. `service` events are counted
/// ([`Report::service`]) and otherwise skipped.
///
/// # Panics
/// If `events` has more than `u32::MAX` entries.
pub fn check(events: &[LogEvent], params: &CheckParams) -> Report {
    let ix = Index::build(events);
    let meta = ix.meta;
    let eff = EffectiveParams {
        window_size: params
            .window_size
            .or(meta.and_then(|m| m.window_size))
            .unwrap_or(DEFAULT_WINDOW_SIZE),
        max_messages: params
            .max_messages
            .or(meta.and_then(|m| m.max_messages))
            .unwrap_or(DEFAULT_MAX_MESSAGES),
        max_rtr: params
            .max_rtr
            .or(meta.and_then(|m| m.max_rtr))
            .unwrap_or(DEFAULT_MAX_RTR),
        drained: params
            .drained
            .or(meta.and_then(|m| m.drained))
            .unwrap_or(false),
        nodes: meta.and_then(|m| m.nodes),
        last_fault_ns: params.last_fault_ns,
        converge_bound_ns: params.converge_bound_ns,
    };
    let mut sink = Sink::new(params.max_violations_per_property);

    delivery::no_creation(&ix, params.lost_tails, &mut sink);
    delivery::no_duplication(&ix, &mut sink);
    delivery::total_order(&ix, &mut sink);
    delivery::no_gaps(&ix, &mut sink);
    if eff.drained {
        delivery::self_delivery(&ix, &mut sink);
    }
    delivery::causal_order(&ix, &mut sink);
    delivery::safe_delivery(&ix, eff.drained, &mut sink);
    delivery::message_in_config(&ix, &mut sink);
    config::config_events(&ix, &mut sink);
    token::token_invariants(&ix, &eff, &mut sink);
    index::well_formed(&ix, &eff, &mut sink);
    config::ring_id_unique(&ix, &mut sink);
    config::config_sequence(&ix, &mut sink);
    membership::transitional_delivery(&ix, &mut sink);
    membership::failure_atomicity(&ix, &mut sink);
    if eff.checks_convergence() {
        membership::convergence(&ix, &eff, &mut sink);
    }
    if let Some(pairs) = &params.stable_pairs {
        membership::stable_members(&ix, pairs, eff.drained, &mut sink);
    }

    let mut report = Report {
        violations: sink.kept.into_values().flatten().collect(),
        violation_counts: sink.counts,
        params: eff,
        events: events.len() as u64,
        sends: 0,
        delivered: ix.dlv.len() as u64,
        messages: ix.place.len() as u64,
        configs: 0,
        regular_configs: 0,
        transitional_configs: 0,
        tokens: 0,
        stored: 0,
        crashes: 0,
        restarts: 0,
        service: 0,
        nodes: ix.nodes.len() as u64,
        rings: ix.rings.len() as u64,
    };
    for ev in events {
        match ev {
            LogEvent::Send(_) => report.sends += 1,
            LogEvent::Config(c) => {
                report.configs += 1;
                match c.kind {
                    ConfigKind::Regular => report.regular_configs += 1,
                    ConfigKind::Transitional => report.transitional_configs += 1,
                }
            }
            LogEvent::Token(_) => report.tokens += 1,
            LogEvent::Stored(_) => report.stored += 1,
            LogEvent::Crash { .. } => report.crashes += 1,
            LogEvent::Restart { .. } => report.restarts += 1,
            LogEvent::Service(_) => report.service += 1,
            LogEvent::Meta(_) | LogEvent::Deliver(_) => {}
        }
    }
    report
}

/// Reads the log at `path` and checks it with the parameters of its `meta` line (or the
/// defaults). Violations carry the line number of their event.
///
/// # Errors
/// When the file cannot be opened or a line is not a valid event.
pub fn check_file(path: impl AsRef<Path>) -> Result<Report, LogError> {
    check_file_with(path, &CheckParams::default())
}

/// Checks the per-node logs of one run together (a real cluster writes one file per node;
/// each node's lines stay in their file's order, which is all the checker needs), with the
/// parameters of the first `meta` line or the defaults. A violation's message starts with the
/// file of its event, and its `line` is the line in that file.
///
/// # Errors
/// When a file cannot be opened or a line is not a valid event (the error names the file).
pub fn check_files<P: AsRef<Path>>(paths: &[P]) -> Result<Report, LogError> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| LogError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let read = read_log_with_lines(BufReader::with_capacity(1 << 16, file)).map_err(|e| {
            LogError::InFile {
                path: path.display().to_string(),
                source: Box::new(e),
            }
        })?;
        files.push(read);
    }
    mark_lost_tails(&mut files);
    let mut events = Vec::new();
    // For each event: (file index, line).
    let mut origin = Vec::new();
    for (k, (evs, lines)) in files.into_iter().enumerate() {
        origin.extend(lines.into_iter().map(|l| (k, l)));
        events.extend(evs);
    }
    let params = CheckParams {
        lost_tails: true,
        ..CheckParams::default()
    };
    let mut report = check(&events, &params);
    for v in &mut report.violations {
        if let Some(&(k, line)) = v.event.and_then(|e| origin.get(e)) {
            v.line = Some(line);
            v.message = format!("{}: {}", paths[k].as_ref().display(), v.message);
        }
    }
    Ok(report)
}

/// A real node's log says nothing about what the process did after its last line reached the
/// file: a process killed with `SIGKILL` loses the lines it still buffered. So the end of its
/// life is put right after its last line: a `crash` that a restart wrote (at its own start
/// time) is moved back there, and a node whose log ends without one, that another node later
/// reports failed and no node saw leave, gets one there. What the others did after that point (a safe
/// delivery, say) then asks nothing of it that its log could not show.
///
/// `service` lines do not count as a node's last line: the executive writes them on another
/// thread than its Totem events, so a Totem event that happened before one may still have been
/// on its way to the file.
fn mark_lost_tails(files: &mut [(Vec<LogEvent>, Vec<usize>)]) {
    let totem = |e: &LogEvent| !matches!(e, LogEvent::Service(_));
    for (events, _) in files.iter_mut() {
        let mut prev: Option<u64> = None;
        for ev in events.iter_mut() {
            if !totem(ev) {
                continue;
            }
            if let (LogEvent::Crash { t, node }, Some(prev)) = (&*ev, prev) {
                let after = prev.saturating_add(1);
                if after < *t {
                    *ev = LogEvent::Crash {
                        t: after,
                        node: *node,
                    };
                }
            }
            prev = ev.t();
        }
    }
    // Nodes reported failed, with when: (node, t of the report); and nodes anyone saw leave
    // (a graceful stop writes out its log before the process exits).
    let configs = || {
        files
            .iter()
            .flat_map(|(events, _)| events.iter())
            .filter_map(|e| match e {
                LogEvent::Config(c) => Some(c),
                _ => None,
            })
    };
    let failed: Vec<(NodeId, u64)> = configs()
        .flat_map(|c| c.failed.iter().map(move |n| (*n, c.t)))
        .collect();
    let left: Vec<NodeId> = configs().flat_map(|c| c.left.iter().copied()).collect();
    for (events, lines) in files.iter_mut() {
        let Some(last) = events.iter().rev().find(|e| e.node().is_some() && totem(e)) else {
            continue;
        };
        if matches!(last, LogEvent::Crash { .. }) {
            continue;
        }
        let (Some(node), Some(t)) = (last.node(), last.t()) else {
            continue;
        };
        if failed.iter().any(|&(n, at)| n == node && at > t) && !left.contains(&node) {
            events.push(LogEvent::Crash {
                t: t.saturating_add(1),
                node,
            });
            let line = lines.last().copied().unwrap_or(0);
            lines.push(line);
        }
    }
}

/// [`check_file`] with explicit parameters (`None` fields still come from the `meta` line).
///
/// # Errors
/// When the file cannot be opened or a line is not a valid event.
pub fn check_file_with(path: impl AsRef<Path>, params: &CheckParams) -> Result<Report, LogError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| LogError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let (events, lines) = read_log_with_lines(BufReader::with_capacity(1 << 16, file))?;
    let mut report = check(&events, params);
    for v in &mut report.violations {
        v.line = v.event.and_then(|e| lines.get(e).copied());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::read_log;

    /// Node 1 delivers a safe message after node 3's log ends: node 3 was killed with lines
    /// still buffered, and node 1 then reports it failed. Nothing in node 3's file can show
    /// whether it stored the frame, so nothing is asked of it. Without node 1's report, node
    /// 3's log simply lacks the `stored` event, and that is a violation.
    #[test]
    fn a_killed_nodes_log_is_not_held_to_what_it_could_not_write() {
        let dir = std::env::temp_dir().join(format!("evlog-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node1 = |report_failed: bool| {
            let mut lines = vec![
                r#"{"t":10,"node":1,"ev":"config","kind":"regular","ring":"1.8","members":[1,3],"joined":[1,3]}"#,
                r#"{"t":20,"node":1,"ev":"send","msg":"1:1","len":5,"hash":"0000000000000001","kind":"safe","prio":1}"#,
                r#"{"t":30,"node":1,"ev":"stored","ring":"1.8","seq":1}"#,
                r#"{"t":40,"node":1,"ev":"deliver","msg":"1:1","ring":"1.8","seq":1,"kind":"safe","hash":"0000000000000001","len":5}"#,
            ];
            if report_failed {
                lines.extend([
                    r#"{"t":50,"node":1,"ev":"config","kind":"transitional","ring":"1.8","members":[1],"failed":[3]}"#,
                    r#"{"t":51,"node":1,"ev":"config","kind":"regular","ring":"1.12","members":[1],"failed":[3]}"#,
                ]);
            }
            lines.join("\n") + "\n"
        };
        let node3 = r#"{"t":11,"node":3,"ev":"config","kind":"regular","ring":"1.8","members":[1,3],"joined":[1,3]}"#
            .to_owned()
            + "\n";
        let (p1, p3) = (dir.join("node1.jsonl"), dir.join("node3.jsonl"));
        std::fs::write(&p3, &node3).unwrap();
        let safe = |r: &Report| {
            r.violations
                .iter()
                .filter(|v| v.property == Property::SafeDelivery)
                .count()
        };
        std::fs::write(&p1, node1(true)).unwrap();
        let killed = check_files(&[&p1, &p3]).unwrap();
        assert_eq!(safe(&killed), 0, "{killed}");
        std::fs::write(&p1, node1(false)).unwrap();
        let alive = check_files(&[&p1, &p3]).unwrap();
        assert_eq!(safe(&alive), 1, "{alive}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    /// Node 1 delivers node 3's message 3:2, whose `send` line node 3 never wrote: node 3
    /// sent the frame, then was killed before its log reached the file (node 1 then reports
    /// it failed). Real logs (`check_files`) read that as the lost tail; the same events
    /// checked as a simulator's (no lost tails) are a creation. A missing send numbered below
    /// one node 3 did log, or from a node that did not crash, stays a violation.
    #[test]
    fn a_send_lost_with_a_killed_senders_tail_is_not_a_creation() {
        let dir = std::env::temp_dir().join(format!("evlog-send-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node1 = |msg: &str, report_failed: bool| {
            let mut lines = vec![
                r#"{"t":10,"node":1,"ev":"config","kind":"regular","ring":"1.8","members":[1,3],"joined":[1,3]}"#.to_owned(),
                r#"{"t":40,"node":1,"ev":"deliver","msg":"3:1","ring":"1.8","seq":1,"kind":"agreed","hash":"0000000000000001","len":5}"#.to_owned(),
                format!(r#"{{"t":41,"node":1,"ev":"deliver","msg":"{msg}","ring":"1.8","seq":2,"kind":"agreed","hash":"0000000000000002","len":5}}"#),
            ];
            if report_failed {
                lines.extend([
                    r#"{"t":50,"node":1,"ev":"config","kind":"transitional","ring":"1.8","members":[1],"failed":[3]}"#.to_owned(),
                    r#"{"t":51,"node":1,"ev":"config","kind":"regular","ring":"1.12","members":[1],"failed":[3]}"#.to_owned(),
                ]);
            }
            lines.join("\n") + "\n"
        };
        let node3 = [
            r#"{"t":11,"node":3,"ev":"config","kind":"regular","ring":"1.8","members":[1,3],"joined":[1,3]}"#,
            r#"{"t":20,"node":3,"ev":"send","msg":"3:1","len":5,"hash":"0000000000000001","kind":"agreed","prio":1}"#,
        ]
        .join("\n")
            + "\n";
        let (p1, p3) = (dir.join("node1.jsonl"), dir.join("node3.jsonl"));
        std::fs::write(&p3, &node3).unwrap();
        let created = |r: &Report| {
            r.violations
                .iter()
                .filter(|v| v.property == Property::NoCreation)
                .count()
        };
        std::fs::write(&p1, node1("3:2", true)).unwrap();
        let killed = check_files(&[&p1, &p3]).unwrap();
        assert_eq!(created(&killed), 0, "{killed}");
        // The same logs as a simulator's: a creation.
        let mut events = read_log(std::fs::read(&p1).unwrap().as_slice()).unwrap();
        events.extend(read_log(node3.as_bytes()).unwrap());
        events.push(LogEvent::Crash {
            t: 21,
            node: NodeId(3),
        });
        assert_eq!(created(&check(&events, &CheckParams::default())), 1);
        // Node 3 logged a later send (3:3) before it died: 3:2 was not in the lost tail.
        let later = node3.clone()
            + r#"{"t":22,"node":3,"ev":"send","msg":"3:3","len":5,"hash":"0000000000000003","kind":"agreed","prio":1}"#
            + "\n";
        std::fs::write(&p3, &later).unwrap();
        let logged_later = check_files(&[&p1, &p3]).unwrap();
        assert_eq!(created(&logged_later), 1, "{logged_later}");
        std::fs::write(&p3, &node3).unwrap();
        // Node 3 not reported failed (no crash): a creation.
        std::fs::write(&p1, node1("3:2", false)).unwrap();
        let alive = check_files(&[&p1, &p3]).unwrap();
        assert_eq!(created(&alive), 1, "{alive}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
